//! The registry, asked directly over the Distribution API (OCI), never
//! through the engine: nothing is pulled to answer a question. HTTP for
//! loopback registries and those under `insecure_registries:`, else HTTPS;
//! credentials from the Docker config, as the docker CLI finds them.
//!
//! Today it answers one question before a `--push` run builds anything:
//! can every registry the run pushes to be reached, and does it take our
//! credentials? If not, the run stops with exit 3 and builds nothing.

use crate::util::error::{Error, Result};
use crate::util::reference::registry_of;
use oci_client::errors::{OciDistributionError as E, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::time::Duration;

pub mod attach;
mod index;
mod tags;
pub use tags::TagInfo;
mod bounded;

/// How long a registry has to answer before it counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Registry {
    /// The OCI client of puts and pushes, made when first needed (a
    /// no-op run never needs it; making one loads the system's CA store).
    client: std::sync::OnceLock<Client>,
    /// Registry hosts spoken to over plain HTTP.
    http: Vec<String>,
    /// The one HTTP client of the bounded reads (its connections are kept
    /// and reused); the error when it cannot be made.
    web: std::result::Result<reqwest::Client, String>,
    /// Hosts found without the referrers API (answered 404 once).
    no_referrers_api: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Content tag → (manifest bytes, media type) of images found published.
    manifests: std::sync::Mutex<std::collections::HashMap<String, Manifest>>,
    /// Content tag → the config digest of the image found published: its
    /// image ID once pulled, the identity its test verdicts are kept by.
    configs: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// An image read from the registry: its manifest, its config digest (the
/// image ID once pulled) and its labels.
struct Image {
    manifest: bounded::Fetched,
    config: String,
    labels: std::collections::HashMap<String, String>,
}

/// The parts of a manifest and of an image configuration read; serde skips
/// the rest without building it.
#[derive(serde::Deserialize)]
struct Described {
    config: Option<Descriptor>,
    /// An index's (or manifest list's) manifests.
    manifests: Option<Vec<Descriptor>>,
}

#[derive(serde::Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(serde::Deserialize)]
struct ImageConfig {
    config: Option<ContainerConfig>,
}

#[derive(serde::Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Labels")]
    labels: Option<std::collections::HashMap<String, String>>,
}

/// What the registry says of one reference.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// The manifest's digest.
    Present(String),
    Absent,
}

impl Registry {
    /// A client for these references; `insecure` lists registry hosts
    /// spoken to over plain HTTP besides loopback ones.
    pub fn new<'a>(refs: impl IntoIterator<Item = &'a str>, insecure: &[String]) -> Registry {
        let mut http: Vec<String> = insecure.to_vec();
        for r in refs {
            let host = registry_of(r).unwrap_or("docker.io");
            if is_loopback(host) && !http.iter().any(|h| h == host) {
                http.push(host.to_string());
            }
        }
        // reqwest finds TLS through the process-wide provider; set it once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let web = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .read_timeout(TIMEOUT)
            .build()
            .map_err(|e| e.to_string());
        Registry {
            client: std::sync::OnceLock::new(),
            web,
            no_referrers_api: Default::default(),
            http,
            manifests: Default::default(),
            configs: Default::default(),
        }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| {
            Client::new(oci_client::client::ClientConfig {
                protocol: oci_client::client::ClientProtocol::HttpsExcept(self.http.clone()),
                connect_timeout: Some(TIMEOUT),
                read_timeout: Some(TIMEOUT),
                ..Default::default()
            })
        })
    }

    /// The digest `reference` points at, if the registry has it. Exit 3
    /// when the registry cannot be reached or refuses the credentials.
    pub async fn lookup(&self, reference: &str) -> Result<Lookup> {
        let t = Target::of(reference)?;
        // Each call authenticates as needed (tokens are cached per repository).
        let asked = self.client().fetch_manifest_digest(&t.parsed, &t.auth);
        Ok(match t.answer(asked).await? {
            Some(digest) => Lookup::Present(digest),
            None => Lookup::Absent,
        })
    }

    /// Forget what a lookup read under `content_ref`: the image was built
    /// again in this run and its upload replaced the manifest there (the
    /// same inputs, e.g. `--force` or `--package`).
    pub fn forget(&self, content_ref: &str) {
        if let Ok(mut seen) = self.manifests.lock() {
            seen.remove(content_ref);
        }
    }

    /// The manifest at `source` (bytes, media type, digest): as read by an
    /// earlier lookup, else from the registry.
    async fn manifest_of(&self, source: &str) -> Result<Manifest> {
        let seen = self
            .manifests
            .lock()
            .ok()
            .and_then(|m| m.get(source).cloned());
        if let Some(known) = seen {
            return Ok(known);
        }
        let t = Target::of(source)?;
        let tag = t.tag_or_digest();
        let found = self
            .fetch(&t, "manifests", &tag, bounded::MANIFEST_LIMIT)
            .await?;
        found
            .map(|m| (bytes::Bytes::from(m.body), m.kind, m.digest))
            .ok_or_else(|| {
                Error::input(format!("the registry has no manifest `{source}`"))
                    .help("check the reference: `docker manifest inspect` or the registry's tag list shows what it has")
            })
    }

    /// The manifest digest of `content_ref` (an image's content tag) when
    /// the image there carries fingerprint `fp`; None when it is absent, or
    /// lacks the label (pushed by hand: never trusted). Exit 3 when the
    /// registry cannot be reached or refuses the credentials.
    pub async fn published(&self, content_ref: &str, fp: &str) -> Result<Option<String>> {
        let t = Target::of(content_ref)?;
        let Some(image) = self.image(&t, false).await? else {
            return Ok(None);
        };
        if image
            .labels
            .get(crate::plan::fingerprint::LABEL)
            .map(String::as_str)
            != Some(fp)
        {
            return Ok(None);
        }
        if let Ok(mut configs) = self.configs.lock() {
            configs.insert(content_ref.to_string(), image.config);
        }
        // Kept for `copy_tag`: moving a release tag to it is then one put.
        let manifest = image.manifest;
        let digest = manifest.digest.clone();
        if let Ok(mut seen) = self.manifests.lock() {
            let kept = (
                bytes::Bytes::from(manifest.body),
                manifest.kind,
                digest.clone(),
            );
            seen.insert(content_ref.to_string(), kept);
        }
        Ok(Some(digest))
    }

    /// The config digest of the image found published under `content_ref`
    /// (its image ID once pulled).
    pub fn config_of(&self, content_ref: &str) -> Option<String> {
        self.configs.lock().ok()?.get(content_ref).cloned()
    }

    /// The manifest `t` names, its config digest and the image's labels,
    /// both read bounded; None when the registry lacks it, or it is a list
    /// or index (no configuration of its own: not one of ours), unless
    /// `through_index`: then its first manifest's. Only the labels are
    /// decoded: a deep image's configuration holds a long history.
    async fn image(&self, t: &Target, through_index: bool) -> Result<Option<Image>> {
        let tag = t.tag_or_digest();
        let read = async {
            let Some(manifest) = self
                .fetch(t, "manifests", &tag, bounded::MANIFEST_LIMIT)
                .await?
            else {
                return Ok(None);
            };
            let config = match serde_json::from_slice(&manifest.body) {
                Ok(Described {
                    config: Some(Descriptor { digest }),
                    ..
                }) => digest,
                Ok(Described {
                    manifests: Some(list),
                    ..
                }) if through_index && !list.is_empty() => {
                    let first = Target {
                        parsed: t.parsed.clone_with_digest(list[0].digest.clone()),
                        host: t.host.clone(),
                        auth: t.auth.clone(),
                    };
                    return Box::pin(self.image(&first, false)).await;
                }
                _ => return Ok(None),
            };
            let Some(blob) = self
                .fetch(t, "blobs", &config, bounded::CONFIG_LIMIT)
                .await?
            else {
                return Ok(None);
            };
            let labels = serde_json::from_slice::<ImageConfig>(&blob.body)
                .ok()
                .and_then(|c| c.config?.labels)
                .unwrap_or_default();
            Ok(Some(Image {
                manifest,
                config,
                labels,
            }))
        };
        match tokio::time::timeout(TIMEOUT * 3, read).await {
            Ok(result) => result,
            Err(_) => Err(unreachable(
                &t.host,
                &format!("no whole answer within {} s", (TIMEOUT * 3).as_secs()),
            )),
        }
    }

    /// The commit the image at `reference` was built from (its
    /// `org.opencontainers.image.revision` label) and that commit's time
    /// (`io.strata.commit-time`, when recorded); None when the tag does
    /// not exist or the image has no revision label. For an index, its
    /// first platform's image's (a set's platforms share one commit).
    pub async fn revision(&self, reference: &str) -> Result<Option<(String, Option<i64>)>> {
        let t = Target::of(reference)?;
        let Some(Image { labels, .. }) = self.image(&t, true).await? else {
            return Ok(None);
        };
        let time = labels
            .get(crate::util::git::COMMIT_TIME_LABEL)
            .and_then(|t| t.parse().ok());
        Ok(labels
            .get("org.opencontainers.image.revision")
            .map(|rev| (rev.clone(), time)))
    }

    /// Point `target` at the manifest `source` points at, in the same
    /// repository: one manifest put, no layer moves. The digest moved to.
    pub async fn copy_tag(&self, source: &str, target: &str) -> Result<String> {
        let t = Target::of(target)?;
        // Not there: "cannot point … at …: the registry has no manifest …".
        let (body, kind, digest) = self.manifest_of(source).await.map_err(|mut e| {
            if matches!(e.kind, crate::util::error::Kind::Input) {
                e.message = format!("cannot point `{target}` at `{source}`: {}", e.message);
            }
            e
        })?;
        self.put_manifest(&t, body, &kind, || {
            Error::engine(format!(
                "cannot point `{target}` at `{source}`: the registry refused the manifest"
            ))
        })
        .await?;
        Ok(digest)
    }

    /// Put `body` (of media type `kind`) as the manifest `t` names, with
    /// push-scoped credentials (a token where the registry uses tokens);
    /// `refused()` is the error when the registry does not take it.
    async fn put_manifest(
        &self,
        t: &Target,
        body: impl Into<bytes::Bytes>,
        kind: &str,
        refused: impl FnOnce() -> Error,
    ) -> Result<()> {
        let put = async {
            self.client()
                .auth(&t.parsed, &t.auth, oci_client::RegistryOperation::Push)
                .await?;
            self.client()
                .push_manifest_raw(&t.parsed, body, header(kind))
                .await?;
            Ok(())
        };
        t.answer(put).await?.ok_or_else(refused)
    }

    /// Before a `--push` run: every registry among `refs` answers and takes
    /// our credentials (asked once per registry).
    pub async fn check_push(&self, refs: &[&str]) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for r in refs {
            if seen.insert(registry_of(r).unwrap_or("docker.io")) {
                self.lookup(r).await?;
            }
        }
        Ok(())
    }
}

/// Manifest kinds asked for: what `docker push` writes, then OCI's.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// A manifest as the registry serves it: bytes, media type, digest.
type Manifest = (bytes::Bytes, String, String);

/// One reference to ask about, with the registry's host and our credentials.
struct Target {
    parsed: Reference,
    host: String,
    auth: RegistryAuth,
}

impl Target {
    /// What the reference names in its repository: the digest, else the
    /// tag, else `latest`.
    fn tag_or_digest(&self) -> String {
        let p = &self.parsed;
        p.digest().or(p.tag()).unwrap_or("latest").to_string()
    }

    fn of(reference: &str) -> Result<Target> {
        let parsed = parse(reference)?;
        Ok(Target {
            host: parsed.resolve_registry().to_string(),
            auth: credentials(reference),
            parsed,
        })
    }

    /// The registry's answer within `TIMEOUT`: Some(value), None for "not
    /// there", or the error for people (exit 3).
    async fn answer<T>(
        &self,
        asked: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Result<Option<T>> {
        let anonymous = matches!(self.auth, RegistryAuth::Anonymous);
        match tokio::time::timeout(TIMEOUT, asked).await {
            Err(_) => Err(unreachable(
                &self.host,
                &format!("no answer within {} s", TIMEOUT.as_secs()),
            )),
            Ok(Ok(value)) => Ok(Some(value)),
            Ok(Err(e)) => classify(e, &self.host, anonymous).map(|_| None),
        }
    }
}

fn header(kind: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(kind)
        .unwrap_or_else(|_| http::HeaderValue::from_static(MANIFEST_TYPES[0]))
}

fn parse(reference: &str) -> Result<Reference> {
    reference
        .parse()
        .map_err(|e| Error::input(format!("`{reference}` is not a registry reference: {e}")))
}

/// An error from the registry: Ok when it only says "not there", else the
/// error for people (exit 3).
fn classify(e: E, host: &str, anonymous: bool) -> Result<()> {
    match e {
        e if is_absent(&e) => Ok(()),
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => Err(refused(host, anonymous)),
        E::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            Err(refused(host, anonymous))
        }
        E::DigestError(oci_client::errors::DigestError::VerificationError { expected, actual }) => {
            Err(Error::engine(format!(
                "the registry `{host}` failed an integrity check: it named the digest `{expected}` for content whose digest is `{actual}`"
            ))
            .help("the registry (or something between) altered what it served; nothing was moved: check the registry and its storage"))
        }
        e => Err(unreachable(host, &e)),
    }
}

fn is_absent(e: &E) -> bool {
    match e {
        E::ImageManifestNotFoundError(_) => true,
        E::ServerError { code: 404, .. } => true,
        E::RegistryError { envelope, .. } => envelope.errors.iter().all(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
            )
        }),
        _ => false,
    }
}

fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Credentials for the registry of `reference`; anonymous when none.
fn credentials(reference: &str) -> RegistryAuth {
    use docker_credential::DockerCredential as C;
    match crate::util::reference::credential_for(reference) {
        Some((_, C::UsernamePassword(u, p))) => RegistryAuth::Basic(u, p),
        Some((_, C::IdentityToken(t))) => RegistryAuth::Bearer(t),
        None => RegistryAuth::Anonymous,
    }
}

fn unreachable(host: &str, e: &dyn std::fmt::Display) -> Error {
    Error::engine(format!("cannot reach the registry `{host}`: {e}")).help(
        "check that the registry runs and the address in `registry:` is right; nothing was built",
    )
}

fn refused(host: &str, anonymous: bool) -> Error {
    let why = if anonymous {
        "it wants credentials and the Docker config has none for it"
    } else {
        "it refused the credentials in the Docker config"
    };
    Error::engine(format!("the registry `{host}` refused access: {why}")).help(format!(
        "log in first (`docker login {host}`); nothing was built"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_spoken_to_over_http() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5055",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["registry.example.com", "10.0.0.1:5000", "docker.io"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
