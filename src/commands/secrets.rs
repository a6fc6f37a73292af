//! What strata keeps of a secret: nothing of its value. A secret's value is
//! not an input of the image that reads it (its id is), so a new value does
//! not rebuild; but `plan` says when the value differs from the one an
//! up-to-date image was built with. For that, a build leaves in the cache
//! folder, per fingerprint, a keyed BLAKE3 of each value it was given; the
//! key is random, made once per cache folder (mode 0600) and never leaves
//! it, so the record cannot be checked against guessed values elsewhere.
//! Losing the record only loses the note.

use crate::engine::{Secret, SecretSource};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn dir() -> Option<PathBuf> {
    crate::plan::history::cache_dir().map(|d| d.join("secrets"))
}

/// The cache folder's key, made on first use.
fn key() -> Option<[u8; 32]> {
    let dir = dir()?;
    let path = dir.join("key");
    if let Ok(bytes) = std::fs::read(&path) {
        return bytes.try_into().ok();
    }
    std::fs::create_dir_all(&dir).ok()?;
    let key = crate::util::url::random::<32>()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    use std::io::Write;
    match options.open(&path) {
        Ok(mut f) => f.write_all(&key).ok().map(|_| key),
        // Another run made it first: use theirs.
        Err(_) => std::fs::read(&path).ok()?.try_into().ok(),
    }
}

/// The keyed digests of the values of `ids` among `secrets` (those readable).
fn digests(ids: &[String], secrets: &[Secret]) -> BTreeMap<String, String> {
    let Some(key) = key() else {
        return BTreeMap::new();
    };
    ids.iter()
        .filter_map(|id| {
            let s = secrets.iter().find(|s| &s.id == id)?;
            let value = match &s.source {
                SecretSource::File(p) => std::fs::read(p).ok()?,
                SecretSource::Env(v) => std::env::var_os(v)?.into_encoded_bytes(),
            };
            let d = blake3::keyed_hash(&key, &value).to_hex().to_string();
            Some((id.clone(), d))
        })
        .collect()
}

fn record(fingerprint: &str) -> Option<PathBuf> {
    let ok = !fingerprint.is_empty() && fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| dir().map(|d| d.join(format!("{fingerprint}.json"))))?
}

/// After a build of `fingerprint` that was given `ids`: keep their digests.
pub fn remember(fingerprint: &str, ids: &[String], secrets: &[Secret]) {
    let Some(path) = record(fingerprint).filter(|_| !ids.is_empty()) else {
        return;
    };
    if let Ok(text) = serde_json::to_string(&digests(ids, secrets)) {
        let _ = std::fs::write(path, text);
    }
}

/// The ids among `ids` whose value differs from the one the image of
/// `fingerprint` was built with here (none when there is no record).
pub fn changed(fingerprint: &str, ids: &[String], secrets: &[Secret]) -> Vec<String> {
    let Some(text) = record(fingerprint).and_then(|p| std::fs::read_to_string(p).ok()) else {
        return Vec::new();
    };
    let Ok(then) = serde_json::from_str::<BTreeMap<String, String>>(&text) else {
        return Vec::new();
    };
    let now = digests(ids, secrets);
    ids.iter()
        .filter(|id| then.get(*id) != now.get(*id))
        .cloned()
        .collect()
}
