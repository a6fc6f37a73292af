//! The record of past inputs: the manifest of every fingerprint strata built,
//! kept in the user's cache folder so that a later plan can say which input
//! changed ("file `start.sh` changed") rather than only that something did.
//! Losing it costs only precision of the reasons (see docs/incremental.md).
//! Knows nothing of engines or the plan: the plan gets what it recalls as data.

use crate::fingerprint::{Fingerprint, Manifest};
use std::collections::HashMap;
use std::path::PathBuf;

/// Where manifests of past builds are kept: `$STRATA_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("STRATA_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("strata"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("strata"))
}

fn manifests() -> Option<PathBuf> {
    cache_dir().map(|d| d.join("manifests"))
}

/// Keep the manifest of a built fingerprint, to explain later changes.
pub fn remember(fp: &Fingerprint) {
    let Some(dir) = manifests() else { return };
    if std::fs::create_dir_all(&dir).is_ok() {
        if let Ok(text) = serde_json::to_string(&fp.manifest) {
            let _ = std::fs::write(dir.join(format!("{}.json", fp.hash)), text);
        }
    }
}

/// The manifests recorded for the given fingerprints (those that have one).
pub fn recall<'a>(hashes: impl IntoIterator<Item = &'a str>) -> HashMap<String, Manifest> {
    let Some(dir) = manifests() else {
        return HashMap::new();
    };
    hashes
        .into_iter()
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter_map(|h| {
            let text = std::fs::read_to_string(dir.join(format!("{h}.json"))).ok()?;
            Some((h.to_string(), serde_json::from_str(&text).ok()?))
        })
        .collect()
}

/// Where passing test verdicts are kept: one empty file per fingerprint and
/// test-file key.
fn verdict(fingerprint: &str, tests_key: &str) -> Option<PathBuf> {
    let name = blake3::hash(format!("{fingerprint}\n{tests_key}").as_bytes()).to_hex();
    cache_dir().map(|d| d.join("verdicts").join(name.as_str()))
}

/// The image of `fingerprint` passed the tests of `tests_key` here before.
pub fn passed(fingerprint: &str, tests_key: &str) -> bool {
    verdict(fingerprint, tests_key).is_some_and(|p| p.exists())
}

/// Remember that the image of `fingerprint` passed the tests of `tests_key`.
pub fn remember_pass(fingerprint: &str, tests_key: &str) {
    if let Some(path) = verdict(fingerprint, tests_key) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, b"");
    }
}
