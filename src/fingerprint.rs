//! Fingerprints: a content hash of everything that goes into one image's
//! build (see "Fingerprints" in DESIGN.md). One traversal lists the inputs as
//! a manifest of (input, hash) pairs; the fingerprint is the hash of that
//! list, and the plan explains a change by comparing two lists.
//! Context files are hashed in parallel. Knows nothing of engines: base
//! digests are passed in.

use crate::context::{self, Kind};
use crate::error::{Error, Result};
use crate::load::Loaded;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

pub const VERSION: &str = "strata-fp-v1";
/// The label every built image carries with its fingerprint.
pub const LABEL: &str = "io.strata.fingerprint";

/// The inputs of one image, in a fixed order: `(what, hash or value)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub inputs: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Fingerprint {
    pub hash: String,
    pub manifest: Manifest,
}

impl Manifest {
    fn push(&mut self, what: impl Into<String>, value: impl Into<String>) {
        self.inputs.push((what.into(), value.into()));
    }

    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(VERSION.as_bytes());
        for (what, value) in &self.inputs {
            for part in [what, value] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }
}

fn hash_bytes(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

fn hash_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// The context inputs of one folder: every kept file and link, sorted by path.
pub fn context_inputs(dir: &std::path::Path) -> std::result::Result<Vec<(String, String)>, String> {
    let entries = context::entries(dir)?;
    entries
        .par_iter()
        .filter(|e| !matches!(e.kind, Kind::Dir))
        .map(|e| match &e.kind {
            Kind::File { executable, .. } => {
                let h =
                    hash_file(&e.path).map_err(|err| format!("cannot read `{}`: {err}", e.rel))?;
                Ok((
                    format!("file {}", e.rel),
                    format!("{}{h}", if *executable { "x:" } else { "" }),
                ))
            }
            Kind::Symlink { target } => Ok((format!("file {}", e.rel), format!("link:{target}"))),
            Kind::Dir => unreachable!("filtered"),
        })
        .collect()
}

/// Fingerprints of every image of `loaded` (index-aligned). `bases` maps a
/// base reference (familiar form) to its digest or image ID where known.
pub fn fingerprints(loaded: &Loaded, bases: &BTreeMap<String, String>) -> Result<Vec<Fingerprint>> {
    let graph = &loaded.graph;
    // Contexts first, in parallel; they do not depend on each other.
    let contexts: Vec<std::result::Result<Vec<(String, String)>, String>> = loaded
        .images
        .par_iter()
        .map(|i| context_inputs(&i.context))
        .collect();
    let mut out: Vec<Option<Fingerprint>> = vec![None; graph.nodes.len()];
    for &id in &graph.order {
        let image = &loaded.images[id];
        let mut m = Manifest::default();
        m.push(
            "Dockerfile",
            hash_bytes(loaded.rendered[id].text.as_bytes()),
        );
        let files = contexts[id]
            .as_ref()
            .map_err(|e| Error::input(format!("image `{}`: {e}", image.name)))?;
        m.inputs.extend(files.iter().cloned());
        for (k, v) in loaded.build_args(id) {
            m.push(format!("build arg {k}"), v);
        }
        m.push("platform", loaded.tree.config.build.platform.clone());
        // Configured labels only: created/revision/source change every build.
        let mut all_labels = loaded.tree.config.build.labels.clone();
        all_labels.extend(image.spec.labels.clone());
        for (k, v) in all_labels {
            m.push(format!("label {k}"), v);
        }
        for &p in &graph.nodes[id].parents {
            let parent = out[p].as_ref().expect("parents come first");
            m.push(
                format!("parent {}", graph.nodes[p].name),
                parent.hash.clone(),
            );
        }
        for b in &graph.nodes[id].bases {
            m.push(
                format!("base {b}"),
                bases.get(b).cloned().unwrap_or_else(|| b.clone()),
            );
        }
        out[id] = Some(Fingerprint {
            hash: m.hash(),
            manifest: m,
        });
    }
    Ok(out.into_iter().map(|f| f.expect("every image")).collect())
}

/// Why `new` differs from `old`, in words.
pub fn explain(old: &Manifest, new: &Manifest) -> Vec<String> {
    let old_map: BTreeMap<&str, &str> = old
        .inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let new_map: BTreeMap<&str, &str> = new
        .inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut reasons = Vec::new();
    for (k, v) in &new_map {
        match old_map.get(k) {
            Some(o) if o == v => {}
            Some(_) => reasons.push(changed(k, "changed")),
            None => reasons.push(changed(k, "added")),
        }
    }
    for k in old_map.keys().filter(|k| !new_map.contains_key(*k)) {
        reasons.push(changed(k, "removed"));
    }
    reasons
}

fn changed(what: &str, how: &str) -> String {
    if let Some(parent) = what.strip_prefix("parent ") {
        return if how == "changed" {
            format!("parent {parent} will be rebuilt")
        } else {
            format!("parent {parent} {how}")
        };
    }
    format!("{what} {how}")
}

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

/// Keep the manifest of a built fingerprint, to explain later changes.
pub fn remember(fp: &Fingerprint) {
    let Some(dir) = cache_dir().map(|d| d.join("manifests")) else {
        return;
    };
    if std::fs::create_dir_all(&dir).is_ok() {
        let text = serde_json::to_string(&fp.manifest).expect("serializes");
        let _ = std::fs::write(dir.join(format!("{}.json", fp.hash)), text);
    }
}

/// The manifest recorded for fingerprint `hash`, if any.
pub fn recall(hash: &str) -> Option<Manifest> {
    let path = cache_dir()?.join("manifests").join(format!("{hash}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> Manifest {
        Manifest {
            inputs: pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn explanations_name_the_input() {
        let old = m(&[
            ("Dockerfile", "1"),
            ("file a.sh", "2"),
            ("build arg V", "1"),
            ("parent base", "x"),
            ("file gone", "3"),
        ]);
        let new = m(&[
            ("Dockerfile", "9"),
            ("file a.sh", "2"),
            ("build arg V", "2"),
            ("parent base", "y"),
            ("file new", "4"),
        ]);
        assert_eq!(
            explain(&old, &new),
            [
                "Dockerfile changed",
                "build arg V changed",
                "file new added",
                "parent base will be rebuilt",
                "file gone removed"
            ]
        );
        assert_ne!(old.hash(), new.hash());
        assert_eq!(old.hash(), old.clone().hash());
    }

    #[test]
    fn boundaries_are_unambiguous() {
        assert_ne!(m(&[("ab", "c")]).hash(), m(&[("a", "bc")]).hash());
    }
}
