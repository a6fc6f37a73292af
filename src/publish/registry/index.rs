//! A multi-platform set's release tags: one OCI image index per image,
//! naming each platform's manifest by digest with its platform, written at
//! every release reference of the image.

use super::{Registry, Target};
use crate::util::error::{Error, Result};

impl Registry {
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
            let index_type = "application/vnd.oci.image.index.v1+json";
            self.put_manifest(&t, body.clone(), index_type, || {
                Error::engine(format!(
                    "the registry refused the image index for `{target}`"
                ))
            })
            .await?;
        }
        Ok(digest)
    }
}
