//! Attestations attached to an image in the registry, as OCI 1.1 artifacts:
//! a manifest whose `subject` is the image's manifest, whose `artifactType`
//! says what it holds, with the empty config and the document as its one
//! layer. Registries with the referrers API index it themselves; for the
//! others (Docker's registry 2.8) the referrers tag schema: an OCI index
//! tagged `sha256-<hex of the subject>` lists every artifact about it.

use super::{bounded, header, Registry, Target};
use crate::util::error::{Error, Result};
use serde_json::{json, Value};
use sha2::Digest;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The media type of a signed document.
pub const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
/// The most of an attached document read.
const DOCUMENT_LIMIT: usize = 64 << 20;

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(data))
}

impl Registry {
    /// Attach `document` (of `media_type`, as an artifact of
    /// `artifact_type`) to the image `subject` (`repo@sha256:…`, which must
    /// be there). The artifact's manifest digest.
    pub async fn attach(
        &self,
        subject: &str,
        artifact_type: &str,
        media_type: &str,
        document: &[u8],
    ) -> Result<String> {
        let t = Target::of(subject)?;
        let digest = t
            .parsed
            .digest()
            .map(str::to_string)
            .ok_or_else(|| Error::input(format!("`{subject}` names no digest to attach to")))?;
        let image = self
            .fetch(&t, "manifests", &digest, bounded::MANIFEST_LIMIT)
            .await?
            .ok_or_else(|| Error::input(format!("the registry has no `{subject}` to attach to")))?;
        let layer =
            json!({"mediaType": media_type, "digest": sha256(document), "size": document.len()});
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY, "digest": sha256(b"{}"), "size": 2},
            "layers": [layer],
            "subject": {"mediaType": image.kind, "digest": digest, "size": image.body.len()},
        });
        let body = serde_json::to_vec(&manifest).unwrap_or_default();
        let manifest_digest = sha256(&body);
        let repo = t.parsed.repository().to_string();
        let at = |reference: &str| Target::of(&format!("{}/{repo}{reference}", t.host));
        let pushed = async {
            self.client()
                .auth(&t.parsed, &t.auth, oci_client::RegistryOperation::Push)
                .await?;
            self.client()
                .push_blob(&t.parsed, b"{}".to_vec(), &sha256(b"{}"))
                .await?;
            self.client()
                .push_blob(&t.parsed, document.to_vec(), &sha256(document))
                .await?;
            let by_digest = at(&format!("@{manifest_digest}")).map_err(|e| {
                oci_client::errors::OciDistributionError::GenericError(Some(e.message))
            })?;
            self.client()
                .push_manifest_raw(&by_digest.parsed, body.clone(), header(OCI_MANIFEST))
                .await?;
            Ok(())
        };
        t.answer(pushed).await?.ok_or_else(|| {
            Error::engine(format!(
                "the registry refused the {artifact_type} artifact of `{subject}`"
            ))
        })?;
        // The registry indexes referrers itself, or we keep the tag schema's index.
        if self.referrers_api(&t, &digest).await?.is_some() {
            return Ok(manifest_digest);
        }
        let descriptor = json!({
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": body.len(),
            "artifactType": artifact_type,
        });
        self.add_referrer(&t, &digest, descriptor).await?;
        Ok(manifest_digest)
    }

    /// The referrers tag schema: add `descriptor` to the index tagged
    /// `sha256-<hex>` of `subject` (made when there is none).
    async fn add_referrer(&self, t: &Target, subject: &str, descriptor: Value) -> Result<()> {
        let repo = t.parsed.repository().to_string();
        let tag = format!("{}-{}", &subject[..6], &subject[7..]);
        let index_t = Target::of(&format!("{}/{repo}:{tag}", t.host))?;
        let mut index: Value = match self
            .fetch(&index_t, "manifests", &tag, bounded::MANIFEST_LIMIT)
            .await?
        {
            Some(old) => serde_json::from_slice(&old.body).unwrap_or_default(),
            None => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
        };
        let list = index["manifests"].as_array_mut().ok_or_else(|| {
            Error::engine(format!(
                "the referrers index `{tag}` of `{repo}` is not an OCI index"
            ))
        })?;
        list.retain(|m| m["digest"] != descriptor["digest"]);
        list.push(descriptor);
        let body = serde_json::to_vec(&index).unwrap_or_default();
        self.put_manifest(&index_t, body, OCI_INDEX, || {
            Error::engine(format!(
                "the registry refused the referrers index `{tag}` of `{repo}`"
            ))
        })
        .await
    }

    /// The referrers API's index of `subject`, None when the registry has
    /// no such API (remembered per host: one 404 is enough).
    async fn referrers_api(&self, t: &Target, subject: &str) -> Result<Option<Value>> {
        let known_absent = self
            .no_referrers_api
            .lock()
            .is_ok_and(|hosts| hosts.contains(&t.host));
        if known_absent {
            return Ok(None);
        }
        let found = self
            .fetch(t, "referrers", subject, bounded::MANIFEST_LIMIT)
            .await?;
        if found.is_none() {
            if let Ok(mut hosts) = self.no_referrers_api.lock() {
                hosts.insert(t.host.clone());
            }
        }
        Ok(found.map(|f| serde_json::from_slice(&f.body).unwrap_or_default()))
    }

    /// The descriptors of the artifacts attached to `subject`: the
    /// referrers API's, else the referrers tag schema's index.
    async fn referrers(&self, t: &Target, subject: &str) -> Result<Vec<Value>> {
        let index = match self.referrers_api(t, subject).await? {
            Some(index) => Some(index),
            None => {
                let tag = format!("{}-{}", &subject[..6], &subject[7..]);
                self.fetch(t, "manifests", &tag, bounded::MANIFEST_LIMIT)
                    .await?
                    .map(|f| serde_json::from_slice(&f.body).unwrap_or_default())
            }
        };
        Ok(index
            .and_then(|i: Value| i["manifests"].as_array().cloned())
            .unwrap_or_default())
    }

    /// The digest of the manifest at `reference`, read with the run's one
    /// HTTP client (one request); None when the registry has none.
    pub async fn manifest_digest(&self, reference: &str) -> Result<Option<String>> {
        let t = Target::of(reference)?;
        let found = self
            .fetch(&t, "manifests", &t.tag_or_digest(), bounded::MANIFEST_LIMIT)
            .await?;
        Ok(found.map(|f| f.digest))
    }

    /// The SBOM attached to the image at `reference` (SPDX or CycloneDX,
    /// taken out of its DSSE envelope when signed; the newest when there
    /// are several); None when the image or its SBOM is not there. Three
    /// requests for `repo@sha256:…` (the referrers, the artifact's
    /// manifest, the document), one more for a tag.
    pub async fn attached_sbom(&self, reference: &str) -> Result<Option<Vec<u8>>> {
        let t = Target::of(reference)?;
        let subject = match t.parsed.digest() {
            Some(d) => d.to_string(),
            None => match self
                .fetch(&t, "manifests", &t.tag_or_digest(), bounded::MANIFEST_LIMIT)
                .await?
            {
                Some(image) => image.digest,
                None => return Ok(None),
            },
        };
        let sbom_types = ["application/spdx+json", "application/vnd.cyclonedx+json"];
        let referrers = self.referrers(&t, &subject).await?;
        let Some(artifact) = referrers.iter().rev().find_map(|d| {
            sbom_types
                .contains(&d["artifactType"].as_str()?)
                .then(|| d["digest"].as_str())?
        }) else {
            return Ok(None);
        };
        let Some(manifest) = self
            .fetch(&t, "manifests", artifact, bounded::MANIFEST_LIMIT)
            .await?
        else {
            return Ok(None);
        };
        let manifest: Value = serde_json::from_slice(&manifest.body).unwrap_or_default();
        let layer = &manifest["layers"][0];
        let Some(digest) = layer["digest"].as_str() else {
            return Ok(None);
        };
        let Some(document) = self.fetch(&t, "blobs", digest, DOCUMENT_LIMIT).await? else {
            return Ok(None);
        };
        if layer["mediaType"] != DSSE {
            return Ok(Some(document.body));
        }
        let envelope: Value = serde_json::from_slice(&document.body).unwrap_or_default();
        let statement: Value = envelope["payload"]
            .as_str()
            .and_then(crate::util::base64::decode)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Some(
            serde_json::to_vec(&statement["predicate"]).unwrap_or_default(),
        ))
    }
}
