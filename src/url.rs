//! URLs and engine or registry addresses as strata shows them: never with
//! the credentials a user may have written into them (`user:pass@`), in a
//! label, a message, a log or a lock key.

/// A remote URL fit to publish: no `user:password@` (even with an unencoded
/// `/` in the password), no query string (`?private_token=…`), no fragment.
pub fn public(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            // The user info ends at the last `@` before the path; a password
            // may hold `/`, so look for `@` in the whole rest first.
            let rest = match rest.rsplit_once('@') {
                Some((_, host_and_path)) => host_and_path,
                None => rest,
            };
            format!("{scheme}://{rest}")
        }
        None => url.to_string(),
    }
}

/// An address as it may be shown: `public`, and for a scheme-less
/// `user:pass@host[:port][/path]` the part after the last `@`.
pub fn shown(address: &str) -> String {
    if address.contains("://") {
        return public(address);
    }
    match address.rsplit_once('@') {
        Some((_, host)) => host.to_string(),
        None => address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_queries_are_stripped() {
        for (url, public) in [
            (
                "https://u:secret@git.example/a/b.git",
                "https://git.example/a/b.git",
            ),
            (
                "https://u:se/cr@et@git.example/a/b.git",
                "https://git.example/a/b.git",
            ),
            (
                "https://git.example/a/b.git?private_token=xyz",
                "https://git.example/a/b.git",
            ),
            (
                "https://oauth2:tok@git.example/a.git#frag",
                "https://git.example/a.git",
            ),
            ("git@host:a/b.git", "git@host:a/b.git"),
        ] {
            assert_eq!(super::public(url), public, "{url}");
        }
        assert_eq!(shown("tcp://u:p@10.0.0.2:2376"), "tcp://10.0.0.2:2376");
        assert_eq!(shown("u:p@registry.example:5000"), "registry.example:5000");
        assert_eq!(
            shown("unix:///var/run/docker.sock"),
            "unix:///var/run/docker.sock"
        );
    }
}
