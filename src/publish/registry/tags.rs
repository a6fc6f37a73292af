//! A repository's tags as retention sees them (digest, creation time, the
//! manifests an index names), deleting a manifest, and the bearer tokens
//! those reads ask for.

use super::*;

/// Tags asked for per page of a tag list, and the most pages read.
const TAG_PAGE: usize = 1000;
const MAX_TAG_PAGES: usize = 10_000;

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
            let asked =
                self.client()
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
    pub(super) async fn token(
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
