//! The record of past inputs: the manifest of every fingerprint strata built,
//! kept in the user's cache folder so that a later plan can say which input
//! changed ("file `start.sh` changed") rather than only that something did.
//! Losing it costs only precision of the reasons (see docs/incremental.md).
//! Knows nothing of engines or the plan: the plan gets what it recalls as data.

use crate::plan::fingerprint::{Fingerprint, Manifest};
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

/// The image `fingerprint` names (its ID or registry digest) passed the
/// tests of `tests_key` here before.
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

/// Where the last build time of each repository is kept.
fn duration_file(repository: &str) -> Option<PathBuf> {
    let name = blake3::hash(repository.as_bytes()).to_hex();
    cache_dir().map(|d| d.join("durations").join(&name.as_str()[..16]))
}

/// Remember how long the last build of `repository` took (seconds).
pub fn remember_duration(repository: &str, seconds: f64) {
    if let Some(path) = duration_file(repository) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, format!("{seconds:.3}\n"));
    }
}

/// Expected build times, index-aligned with `repositories`: the last one
/// recorded for each, and for those never built here the mean of the
/// others. None when none was ever built here (every image counts alike).
pub fn expected_durations<'a>(repositories: impl IntoIterator<Item = &'a str>) -> Option<Vec<f64>> {
    let known: Vec<Option<f64>> = repositories
        .into_iter()
        .map(|r| {
            let text = std::fs::read_to_string(duration_file(r)?).ok()?;
            text.trim().parse::<f64>().ok().filter(|s| *s > 0.0)
        })
        .collect();
    let seen: Vec<f64> = known.iter().flatten().copied().collect();
    if seen.is_empty() {
        return None;
    }
    let mean = seen.iter().sum::<f64>() / seen.len() as f64;
    Some(known.into_iter().map(|k| k.unwrap_or(mean)).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn expected_durations_are_the_last_recorded_and_the_mean_for_the_rest() {
        let unique = format!(
            "test.invalid/strata-{}-{:?}",
            std::process::id(),
            std::time::Instant::now()
        );
        let (a, b, c) = (
            format!("{unique}/a"),
            format!("{unique}/b"),
            format!("{unique}/c"),
        );
        assert_eq!(super::expected_durations([a.as_str(), b.as_str()]), None);
        super::remember_duration(&a, 2.0);
        super::remember_duration(&b, 5.0);
        super::remember_duration(&b, 4.0);
        assert_eq!(
            super::expected_durations([a.as_str(), b.as_str(), c.as_str()]),
            Some(vec![2.0, 4.0, 3.0])
        );
    }
}
