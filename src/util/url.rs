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

/// `s` percent-encoded but for RFC 3986's unreserved characters (query
/// values, purl parts: `+` and `:` of versions included).
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `n` random bytes from the system's secure source.
pub fn random<const N: usize>() -> Option<[u8; N]> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut b).ok().map(|_| b)
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
