//! Image references as engines and registries spell them
//! (`[host[:port]/]path[:tag][@digest]`): the repository and the tag, the
//! registry host, the short form without it, the content tag strata pushes,
//! and the credentials the Docker config files for that registry.
//! Where a reference must be valid it is parsed by `oci_client::Reference`
//! (ports, digests, the default registry); the text is never split at a
//! guessed `:`. Knows nothing of the tree, engines or the plan.

use crate::util::error::{Error, Result};

/// A reference taken apart, borrowing the text it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    /// Everything before the tag and digest, registry included as written.
    pub repository: &'a str,
    /// The tag as written, if any.
    pub tag: Option<&'a str>,
    /// `sha256:…`, if the reference pins one.
    pub digest: Option<&'a str>,
}

impl<'a> Parts<'a> {
    /// The tag, `latest` when none is written.
    pub fn tag_or_latest(&self) -> &'a str {
        self.tag.unwrap_or("latest")
    }
}

/// Take `reference` apart without judging it: the digest after `@`, the
/// tag after a `:` in the last path component (a registry's port is never
/// taken for a tag).
pub fn parts(reference: &str) -> Parts<'_> {
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => Parts {
            repository: &rest[..last_slash + i],
            tag: Some(&rest[last_slash + i + 1..]),
            digest,
        },
        None => Parts {
            repository: rest,
            tag: None,
            digest,
        },
    }
}

/// A reference a user gave (on the command line, in a file): it must be a
/// valid OCI reference, else exit 2 naming it.
pub fn parse(reference: &str) -> Result<Parts<'_>> {
    oci_client::Reference::try_from(reference).map_err(|e| {
        Error::input(format!("`{reference}` is not an image reference: {e}")).help(
            "give `[REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]`, e.g. `127.0.0.1:5000/strata/base:1`",
        )
    })?;
    Ok(parts(reference))
}

/// Repository and tag (`latest` when none is written).
pub fn split(reference: &str) -> (&str, &str) {
    let p = parts(reference);
    (p.repository, p.tag_or_latest())
}

/// The repository of `reference`, without tag or digest.
pub fn repository(reference: &str) -> &str {
    parts(reference).repository
}

/// The registry host of `reference`, or None for Docker Hub (Docker's
/// rule: the first component names a host when it has a `.` or a `:`, or
/// is `localhost`).
pub fn registry_of(reference: &str) -> Option<&str> {
    let (first, rest) = reference.split_once('/')?;
    (!rest.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost"))
        .then_some(first)
}

/// `reference` without its registry host (`ns/name:tag`), the form a
/// child's `FROM` may name an image of the tree by.
pub fn short(reference: &str) -> &str {
    match registry_of(reference) {
        Some(host) => &reference[host.len() + 1..],
        None => reference,
    }
}

/// The immutable tag of an image's inputs: `repo:fp-<first 24 hex>`.
pub fn content_tag(reference: &str, fingerprint: &str) -> String {
    let repo = repository(reference);
    format!("{repo}:fp-{}", fingerprint.get(..24).unwrap_or(fingerprint))
}

/// The tag that holds an image from the end of its build until its own tags
/// are on it (`repo:strata-hold-<pid>-<hash of the reference>`): an
/// untagged image is what `docker image prune` takes. Never pushed;
/// removed by the run. One per reference, not per repository: images that
/// share a repository (a multi-platform set's records, variant tags) build
/// at once, and one's hold going must not take the other's image.
pub fn hold_tag(reference: &str) -> String {
    let hash = blake3::hash(reference.as_bytes()).to_hex();
    format!(
        "{}:strata-hold-{}-{}",
        repository(reference),
        std::process::id(),
        &hash[..16]
    )
}

/// `repo@digest`: the image a reference pointed at, pinned.
pub fn pinned(reference: &str, digest: &str) -> String {
    format!("{}@{digest}", repository(reference))
}

/// Credentials for the registry of `reference` from the Docker config
/// (`DOCKER_CONFIG`, `auths`, `credsStore`, `credHelpers`), with the server
/// name they are filed under; None when there are none. Never logged.
/// Asked once per server and Docker config in a process: a run asks for
/// every image, and a `credsStore` answers by starting a helper process.
pub fn credential_for(reference: &str) -> Option<(&str, docker_credential::DockerCredential)> {
    use docker_credential::DockerCredential as C;
    type Known = std::collections::HashMap<(String, Option<std::ffi::OsString>), Option<C>>;
    static KNOWN: std::sync::OnceLock<std::sync::Mutex<Known>> = std::sync::OnceLock::new();
    let server = registry_of(reference).unwrap_or("https://index.docker.io/v1/");
    let key = (server.to_string(), std::env::var_os("DOCKER_CONFIG"));
    let copy = |c: &C| match c {
        C::UsernamePassword(u, p) => C::UsernamePassword(u.clone(), p.clone()),
        C::IdentityToken(t) => C::IdentityToken(t.clone()),
    };
    let mut known = KNOWN.get_or_init(Default::default).lock().ok()?;
    let found = known
        .entry(key)
        .or_insert_with(|| docker_credential::get_credential(server).ok());
    Some((server, copy(found.as_ref()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_never_at_the_port() {
        assert_eq!(split("127.0.0.1:5000/a/b:1"), ("127.0.0.1:5000/a/b", "1"));
        assert_eq!(
            split("127.0.0.1:5000/a/b"),
            ("127.0.0.1:5000/a/b", "latest")
        );
        assert_eq!(split("strata/base"), ("strata/base", "latest"));
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = format!("127.0.0.1:5000/a/b@{digest}");
        let p = parse(&r).unwrap();
        assert_eq!(p.repository, "127.0.0.1:5000/a/b");
        assert_eq!((p.tag, p.digest), (None, Some(digest.as_str())));
        let r = format!("localhost:5000/b:v1@{digest}");
        assert_eq!(parts(&r).tag, Some("v1"));
        assert_eq!(registry_of("127.0.0.1:5000/a/b:1"), Some("127.0.0.1:5000"));
        assert_eq!(registry_of("strata/base:1"), None);
        assert_eq!(registry_of("localhost/base"), Some("localhost"));
        assert_eq!(short("127.0.0.1:5000/a/b:1"), "a/b:1");
        assert_eq!(
            content_tag("h:1/a/b:x", &"f".repeat(64)),
            format!("h:1/a/b:fp-{}", "f".repeat(24))
        );
        assert!(parse("127.0.0.1:5000/a/b@sha256:12").is_err());
        assert!(parse("Upper/Case").is_err());
    }
}
