//! An image's packages as a CycloneDX 1.6 JSON BOM: the image is the
//! metadata component (type container) and depends on every package, each
//! a library component with its purl.

use super::spdx::Subject;
use super::Inventory;
use serde_json::{json, Value};

/// A random (version 4) UUID, for the BOM's serial number.
fn uuid() -> String {
    let mut b = crate::util::url::random::<16>().unwrap_or_else(|| {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        let mut b = [0u8; 16];
        b.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
        b
    });
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The CycloneDX 1.6 BOM.
pub fn document(inv: &Inventory, s: &Subject) -> Value {
    let components: Vec<Value> = inv
        .packages
        .iter()
        .map(|p| {
            let purl = p.purl(inv.distro.as_ref());
            let mut c = json!({
                "type": "library",
                "bom-ref": purl,
                "name": p.name,
                "version": p.version,
                "purl": purl,
                "properties": [{"name": "strata:arch", "value": p.arch}],
            });
            if let Some(src) = &p.source {
                c["properties"]
                    .as_array_mut()
                    .expect("an array")
                    .push(json!({"name": "strata:source", "value": src}));
            }
            c
        })
        .collect();
    let refs: Vec<&Value> = components.iter().map(|c| &c["bom-ref"]).collect();
    let mut image = json!({
        "type": "container",
        "bom-ref": "image",
        "name": s.reference,
        "version": s.digest,
    });
    if let Some((reference, digest, file)) = &s.parent {
        image["pedigree"] = json!({
            "ancestors": [{"type": "container", "name": reference, "version": digest,
                           "description": format!("its own SBOM: {file}")}],
        });
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid()),
        "version": 1,
        "metadata": {
            "timestamp": s.created,
            "tools": {"components": [{"type": "application", "name": "strata", "version": env!("CARGO_PKG_VERSION")}]},
            "component": image,
        },
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": refs}],
    })
}
