//! An image's packages as an SPDX 2.3 JSON document: the image is the
//! package the document describes (purpose CONTAINER), it CONTAINS each
//! installed package (with its purl), and it is a DESCENDANT_OF its
//! parent image in the tree, whose own document the comment names.

use super::Inventory;
use serde_json::{json, Value};

/// What the document is about.
pub struct Subject<'a> {
    /// The image's reference (`reg/ns/name:tag`).
    pub reference: &'a str,
    /// Its image ID or manifest digest.
    pub digest: &'a str,
    /// The fingerprint: with the name, what makes the namespace unique.
    pub fingerprint: &'a str,
    /// Its parent in the tree: (reference, digest, its document's file name).
    pub parent: Option<(&'a str, &'a str, String)>,
    pub created: &'a str,
}

fn id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The SPDX 2.3 document.
pub fn document(inv: &Inventory, s: &Subject) -> Value {
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Image",
        "name": s.reference,
        "versionInfo": s.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": checksum(s.digest),
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    for (i, p) in inv.packages.iter().enumerate() {
        let spdx_id = format!("SPDXRef-Package-{i}-{}", id(&p.name));
        let mut pkg = json!({
            "SPDXID": spdx_id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl(inv.distro.as_ref()),
            }],
        });
        if let Some(src) = &p.source {
            pkg["sourceInfo"] = json!(format!("built package from: {src}"));
        }
        packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": spdx_id,
        }));
    }
    let mut comment = String::from("Packages read from the image's package database by strata.");
    if let Some((reference, digest, file)) = &s.parent {
        packages.push(json!({
            "SPDXID": "SPDXRef-Parent",
            "name": reference,
            "versionInfo": digest,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": checksum(digest),
            "comment": format!("Its own SBOM: {file}"),
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "DESCENDANT_OF",
            "relatedSpdxElement": "SPDXRef-Parent",
        }));
        comment.push_str(&format!(" Built on {reference}, whose SBOM is {file}."));
    }
    let name = s.reference.rsplit('/').next().unwrap_or(s.reference);
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": s.reference,
        "documentNamespace": format!("https://spdx.org/spdxdocs/strata-{}-{}", id(name), s.fingerprint),
        "comment": comment,
        "creationInfo": {
            "created": s.created,
            "creators": [format!("Tool: strata-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// A `sha256:…` digest as an SPDX checksum (none for anything else).
fn checksum(digest: &str) -> Value {
    match digest.strip_prefix("sha256:") {
        Some(hex) => json!([{"algorithm": "SHA256", "checksumValue": hex}]),
        None => json!([]),
    }
}

/// The packages (name, version) an SPDX document lists, the image itself left out.
pub fn packages(doc: &Value) -> Vec<(String, String)> {
    doc["packages"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["primaryPackagePurpose"] != "CONTAINER")
                .filter_map(|p| {
                    Some((
                        p["name"].as_str()?.to_string(),
                        p["versionInfo"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}
