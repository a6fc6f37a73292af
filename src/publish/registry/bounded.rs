//! Reading manifests and configuration blobs with every body bounded: a
//! registry that sends a body without end (or a huge one) stops the read at
//! the limit, exit 3 naming it, instead of filling the memory. Manifests
//! are capped at 4 MiB, as containerd caps them; configuration blobs at
//! 8 MiB. The digest a registry names is checked against what it sent.

use super::{refused, unreachable, Registry, Target, MANIFEST_TYPES};
use crate::util::error::{Error, Result};
use oci_client::secrets::RegistryAuth;

/// The most of a manifest read (containerd's limit).
pub const MANIFEST_LIMIT: usize = 4 << 20;
/// The most of an image configuration blob read.
pub const CONFIG_LIMIT: usize = 8 << 20;

/// What a bounded read brought: the body, its media type, its digest.
pub(super) struct Fetched {
    pub(super) body: Vec<u8>,
    pub(super) kind: String,
    pub(super) digest: String,
}

impl Registry {
    /// GET `/v2/<repository>/<kind>/<reference>` (`kind`: `manifests` or
    /// `blobs`) with the credentials of `t`, reading at most `limit`
    /// bytes; None when the registry has no such thing.
    pub(super) async fn fetch(
        &self,
        t: &Target,
        kind: &str,
        reference: &str,
        limit: usize,
    ) -> Result<Option<Fetched>> {
        let host = &t.host;
        let scheme = if self.http.contains(host) {
            "http"
        } else {
            "https"
        };
        let url = format!(
            "{scheme}://{host}/v2/{}/{kind}/{reference}",
            t.parsed.repository()
        );
        let client = self.web.clone().map_err(|e| unreachable(host, &e))?;
        let basic = match &t.auth {
            RegistryAuth::Basic(u, p) => Some((u.clone(), p.clone())),
            _ => None,
        };
        let send = |bearer: Option<String>| {
            let mut req = client.get(&url).header("Accept", MANIFEST_TYPES.join(", "));
            match (&bearer, &basic) {
                (Some(token), _) => req = req.bearer_auth(token),
                (None, Some((u, p))) => req = req.basic_auth(u, Some(p)),
                _ => {}
            }
            req.send()
        };
        let mut res = send(None).await.map_err(|e| unreachable(host, &e))?;
        if res.status() == reqwest::StatusCode::UNAUTHORIZED {
            let path = t.parsed.repository();
            if let Some(token) = self
                .token(&client, &res, path, "pull", basic.as_ref())
                .await
            {
                res = send(Some(token)).await.map_err(|e| unreachable(host, &e))?;
            }
        }
        match res.status().as_u16() {
            200..=299 => {}
            404 => return Ok(None),
            401 | 403 => return Err(refused(host, basic.is_none())),
            code => {
                return Err(unreachable(
                    host,
                    &format!("GET {url} answered HTTP {code}"),
                ))
            }
        }
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (named, kind_header) = (header("docker-content-digest"), header("content-type"));
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| unreachable(host, &e))? {
            if body.len() + chunk.len() > limit {
                return Err(Error::engine(format!(
                    "the registry `{host}` sent more than {} MiB for {kind} `{reference}` of `{}`; reading stopped there",
                    limit >> 20,
                    t.parsed.repository()
                ))
                .help("a manifest or image configuration is never that large: check the registry (or what answers at its address)"));
            }
            body.extend_from_slice(&chunk);
        }
        let digest = format!(
            "sha256:{:x}",
            sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&body))
        );
        let expected = named.or_else(|| {
            reference
                .starts_with("sha256:")
                .then(|| reference.to_string())
        });
        if let Some(expected) = expected.filter(|e| e.starts_with("sha256:") && *e != digest) {
            return Err(Error::engine(format!(
                "the registry `{host}` failed an integrity check: it named the digest `{expected}` for content whose digest is `{digest}`"
            ))
            .help("the registry (or something between) altered what it served; nothing was moved: check the registry and its storage"));
        }
        let kind = kind_header.unwrap_or_else(|| {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            v["mediaType"]
                .as_str()
                .unwrap_or(MANIFEST_TYPES[0])
                .to_string()
        });
        Ok(Some(Fetched { body, kind, digest }))
    }
}
