//! The registry, asked directly over the Distribution API (OCI), never
//! through the engine: nothing is pulled to answer a question. HTTP for
//! loopback registries and those under `insecure_registries:`, else HTTPS;
//! credentials from the Docker config, as the docker CLI finds them.
//!
//! Today it answers one question before a `--push` run builds anything:
//! can every registry the run pushes to be reached, and does it take our
//! credentials? If not, the run stops with exit 3 and builds nothing.

use crate::error::{Error, Result};
use crate::reference::registry_of;
use oci_client::errors::{OciDistributionError as E, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::time::Duration;

pub mod attach;
mod bounded;

/// Tags asked for per page of a tag list, and the most pages read.
const TAG_PAGE: usize = 1000;
const MAX_TAG_PAGES: usize = 10_000;

/// How long a registry has to answer before it counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Registry {
    client: Client,
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
        let config = oci_client::client::ClientConfig {
            protocol: oci_client::client::ClientProtocol::HttpsExcept(http.clone()),
            connect_timeout: Some(TIMEOUT),
            read_timeout: Some(TIMEOUT),
            ..Default::default()
        };
        let web = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .read_timeout(TIMEOUT)
            .build()
            .map_err(|e| e.to_string());
        Registry {
            client: Client::new(config),
            web,
            no_referrers_api: Default::default(),
            http,
            manifests: Default::default(),
            configs: Default::default(),
        }
    }

    /// The digest `reference` points at, if the registry has it. Exit 3
    /// when the registry cannot be reached or refuses the credentials.
    pub async fn lookup(&self, reference: &str) -> Result<Lookup> {
        let t = Target::of(reference)?;
        // Each call authenticates as needed (tokens are cached per repository).
        let asked = self.client.fetch_manifest_digest(&t.parsed, &t.auth);
        Ok(match t.answer(asked).await? {
            Some(digest) => Lookup::Present(digest),
            None => Lookup::Absent,
        })
    }

    /// Write one OCI image index at every reference of `targets`, naming
    /// the manifest under each `(content_ref, platform)` by digest with its
    /// platform (`linux/arm64/v8`). The index's digest.
    pub async fn put_index(
        &self,
        targets: &[String],
        parts: &[(String, String)],
    ) -> Result<String> {
        let mut manifests = Vec::new();
        for (source, platform) in parts {
            let (body, kind, digest) = self.manifest_of(source).await?;
            let mut p = platform.splitn(3, '/');
            let mut plat = serde_json::json!({
                "os": p.next().unwrap_or_default(),
                "architecture": p.next().unwrap_or_default(),
            });
            if let Some(v) = p.next() {
                plat["variant"] = serde_json::json!(v);
            }
            manifests.push(serde_json::json!({
                "mediaType": kind, "digest": digest, "size": body.len(), "platform": plat,
            }));
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let body = serde_json::to_vec(&index).unwrap_or_default();
        let digest = format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(&body));
        for target in targets {
            let t = Target::of(target)?;
            let put = async {
                self.client
                    .auth(&t.parsed, &t.auth, oci_client::RegistryOperation::Push)
                    .await?;
                self.client
                    .push_manifest_raw(
                        &t.parsed,
                        body.clone(),
                        header("application/vnd.oci.image.index.v1+json"),
                    )
                    .await?;
                Ok(())
            };
            t.answer(put).await?.ok_or_else(|| {
                Error::engine(format!(
                    "the registry refused the image index for `{target}`"
                ))
            })?;
        }
        Ok(digest)
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
        let Some((manifest, config)) = self.image(&t).await? else {
            return Ok(None);
        };
        let label = &config["config"]["Labels"][crate::fingerprint::LABEL];
        if label.as_str() != Some(fp) {
            return Ok(None);
        }
        let json: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap_or_default();
        if let (Some(config), Ok(mut configs)) =
            (json["config"]["digest"].as_str(), self.configs.lock())
        {
            configs.insert(content_ref.to_string(), config.to_string());
        }
        // Kept for `copy_tag`: moving a release tag to it is then one put.
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

    /// The manifest `t` names and its image configuration, both read
    /// bounded; None when the registry lacks it, or it is a list or index
    /// (no configuration of its own: not one of ours).
    async fn image(&self, t: &Target) -> Result<Option<(bounded::Fetched, serde_json::Value)>> {
        let tag = t.tag_or_digest();
        let read = async {
            let Some(manifest) = self
                .fetch(t, "manifests", &tag, bounded::MANIFEST_LIMIT)
                .await?
            else {
                return Ok(None);
            };
            let json: serde_json::Value =
                serde_json::from_slice(&manifest.body).unwrap_or_default();
            let Some(config_digest) = json["config"]["digest"].as_str() else {
                return Ok(None);
            };
            let Some(config) = self
                .fetch(t, "blobs", config_digest, bounded::CONFIG_LIMIT)
                .await?
            else {
                return Ok(None);
            };
            let config = serde_json::from_slice(&config.body).unwrap_or_default();
            Ok(Some((manifest, config)))
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
    /// not exist or the image has no revision label.
    pub async fn revision(&self, reference: &str) -> Result<Option<(String, Option<i64>)>> {
        let t = Target::of(reference)?;
        let Some((_, config)) = self.image(&t).await? else {
            return Ok(None);
        };
        let labels = &config["config"]["Labels"];
        let time = labels[crate::git::COMMIT_TIME_LABEL]
            .as_str()
            .and_then(|t| t.parse().ok());
        Ok(labels["org.opencontainers.image.revision"]
            .as_str()
            .map(|rev| (rev.to_string(), time)))
    }

    /// Point `target` at the manifest `source` points at, in the same
    /// repository: one manifest put, no layer moves. The digest moved to.
    pub async fn copy_tag(&self, source: &str, target: &str) -> Result<String> {
        let t = Target::of(target)?;
        // Not there: "cannot point … at …: the registry has no manifest …".
        let (body, kind, digest) = self.manifest_of(source).await.map_err(|mut e| {
            if matches!(e.kind, crate::error::Kind::Input) {
                e.message = format!("cannot point `{target}` at `{source}`: {}", e.message);
            }
            e
        })?;
        let moved = async {
            // Credentials (a push-scoped token where the registry uses
            // tokens) for the client's manifest put.
            self.client
                .auth(&t.parsed, &t.auth, oci_client::RegistryOperation::Push)
                .await?;
            self.client
                .push_manifest_raw(&t.parsed, body, header(&kind))
                .await?;
            Ok(digest)
        };
        t.answer(moved).await?.ok_or_else(|| {
            Error::engine(format!(
                "cannot point `{target}` at `{source}`: the registry refused the manifest"
            ))
        })
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

/// One tag of a repository, as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TagInfo {
    pub tag: String,
    /// The manifest digest it points at.
    pub digest: String,
    /// The image's `org.opencontainers.image.created` label (else the
    /// config's `created`), RFC 3339; None when it has neither.
    pub created: Option<String>,
    /// For an image index (a manifest list): the digests of the manifests
    /// it names, which deleting them would take from it.
    pub children: Vec<String>,
}

impl Registry {
    /// Every tag of `repository` (`host/ns/name`), with its digest and
    /// creation time (one manifest and one config read per tag; a config
    /// shared by several tags is read once).
    pub async fn tags(&self, repository: &str) -> Result<Vec<TagInfo>> {
        let t = Target::of(&format!("{repository}:latest"))?;
        let mut names: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut last: Option<String> = None;
        for page_number in 1.. {
            let asked = self
                .client
                .list_tags(&t.parsed, &t.auth, Some(TAG_PAGE), last.as_deref());
            let Some(page) = t.answer(asked).await? else {
                break;
            };
            let full = page.tags.len() >= TAG_PAGE;
            let fresh: Vec<String> = page
                .tags
                .into_iter()
                .filter(|t| seen.insert(t.clone()))
                .collect();
            // A page with nothing new: the registry ignores `last=`, and
            // would be asked forever; so would one with no end.
            if (full && fresh.is_empty()) || page_number > MAX_TAG_PAGES {
                return Err(Error::engine(format!(
                    "the registry `{}` pages its tag list of `{repository}` without end (page {page_number} brought no new tag, or over {MAX_TAG_PAGES} pages); nothing was deleted",
                    t.host
                ))
                .help("the registry does not follow the Distribution API's tag-list pagination (`n` and `last`): upgrade or fix it"));
            }
            last = fresh.last().cloned();
            names.extend(fresh);
            if !full || last.is_none() {
                break;
            }
        }
        let mut configs: std::collections::HashMap<String, Option<String>> = Default::default();
        let mut out = Vec::new();
        for tag in names {
            let r = Target::of(&format!("{repository}:{tag}"))?;
            let Some(m) = self
                .fetch(&r, "manifests", &tag, bounded::MANIFEST_LIMIT)
                .await?
            else {
                continue;
            };
            let digest = m.digest;
            let manifest: serde_json::Value = serde_json::from_slice(&m.body).unwrap_or_default();
            let children = manifest["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["digest"].as_str().map(str::to_string))
                .collect();
            let created = match manifest["config"]["digest"].as_str() {
                None => None,
                Some(config) if configs.contains_key(config) => configs[config].clone(),
                Some(config) => {
                    let blob = self
                        .fetch(&r, "blobs", config, bounded::CONFIG_LIMIT)
                        .await?;
                    let c: serde_json::Value = blob
                        .and_then(|b| serde_json::from_slice(&b.body).ok())
                        .unwrap_or_default();
                    let created = c["config"]["Labels"]["org.opencontainers.image.created"]
                        .as_str()
                        .or(c["created"].as_str())
                        .map(str::to_string);
                    configs.insert(config.to_string(), created.clone());
                    created
                }
            };
            out.push(TagInfo {
                tag,
                digest,
                created,
                children,
            });
        }
        Ok(out)
    }

    /// Delete the manifest `digest` of `repository` (every tag on it goes).
    /// `Ok(false)` when it was not there. A registry that does not allow
    /// deleting is exit 3, with the setting to change.
    pub async fn delete(&self, repository: &str, digest: &str) -> Result<bool> {
        let t = Target::of(&format!("{repository}:latest"))?;
        let host = t.host.clone();
        let path = repository
            .strip_prefix(&format!("{host}/"))
            .unwrap_or(repository);
        let scheme = if self.http.contains(&host) {
            "http"
        } else {
            "https"
        };
        let url = format!("{scheme}://{host}/v2/{path}/manifests/{digest}");
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| unreachable(&host, &e))?;
        let basic = match &t.auth {
            RegistryAuth::Basic(u, p) => Some((u.clone(), p.clone())),
            _ => None,
        };
        let send = |bearer: Option<String>| {
            let mut req = client
                .delete(&url)
                .header("Accept", MANIFEST_TYPES.join(", "));
            match (&bearer, &basic) {
                (Some(token), _) => req = req.bearer_auth(token),
                (None, Some((u, p))) => req = req.basic_auth(u, Some(p)),
                _ => {}
            }
            req.send()
        };
        let mut res = send(None).await.map_err(|e| unreachable(&host, &e))?;
        if res.status() == reqwest::StatusCode::UNAUTHORIZED {
            if let Some(token) = self
                .token(&client, &res, path, "delete", basic.as_ref())
                .await
            {
                res = send(Some(token))
                    .await
                    .map_err(|e| unreachable(&host, &e))?;
            }
        }
        match res.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            405 => Err(Error::engine(format!(
                "the registry `{host}` does not allow deleting images (HTTP 405); nothing was deleted"
            ))
            .help("enable deletion in the registry's configuration: `storage: {delete: {enabled: true}}` in its config.yml (REGISTRY_STORAGE_DELETE_ENABLED=true for the registry container), then run again")),
            401 | 403 => Err(refused(&host, basic.is_none())),
            code => Err(unreachable(&host, &format!("DELETE {url} answered HTTP {code}"))),
        }
    }

    /// A bearer token for `action` (`pull`, `delete`) on `path`, from the
    /// realm a 401 names.
    async fn token(
        &self,
        client: &reqwest::Client,
        res: &reqwest::Response,
        path: &str,
        action: &str,
        basic: Option<&(String, String)>,
    ) -> Option<String> {
        let challenge = res.headers().get("www-authenticate")?.to_str().ok()?;
        let rest = challenge.strip_prefix("Bearer ")?;
        let field = |name: &str| {
            rest.split(',').find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm = field("realm")?;
        let mut req = client
            .get(&realm)
            .query(&[("scope", format!("repository:{path}:{action}"))]);
        if let Some(service) = field("service") {
            req = req.query(&[("service", service)]);
        }
        if let Some((u, p)) = basic {
            req = req.basic_auth(u, Some(p));
        }
        let body: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
        body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .map(str::to_string)
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
    match crate::reference::credential_for(reference) {
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
