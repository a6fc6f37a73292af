//! Fingerprints: a content hash of everything that goes into one image's
//! build (see "Fingerprints" in DESIGN.md). The inputs listed once by
//! `inputs` become a manifest of (input, hash) pairs; the fingerprint is the
//! hash of that list, and the plan explains a change by comparing two lists.
//! Context files are hashed in parallel. Knows nothing of engines: base
//! digests are passed in.

use crate::engine::context::Kind;
use crate::graph::Graph;
use crate::plan::inputs::Inputs;
use crate::util::error::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;

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

    /// The same inputs with parent `name`'s fingerprint replaced by `hash`
    /// (an image built on an existing parent that is not the current one).
    pub fn with_parent(&self, name: &str, hash: &str) -> Manifest {
        let key = format!("parent {name}");
        let inputs = self
            .inputs
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if *k == key {
                        hash.to_string()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect();
        Manifest { inputs }
    }
}

impl From<Manifest> for Fingerprint {
    fn from(manifest: Manifest) -> Fingerprint {
        Fingerprint {
            hash: manifest.hash(),
            manifest,
        }
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

/// The context part of a manifest: every kept file and link, sorted by path.
pub fn context_inputs(
    entries: &[crate::engine::context::Entry],
) -> std::result::Result<Vec<(String, String)>, String> {
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
            Kind::Dir => Err("a folder is not hashed".into()),
        })
        .collect()
}

/// Fingerprints of every image (index-aligned with `graph.nodes`):
/// `dockerfiles` are the rendered texts, `bases` maps a base reference
/// (familiar form) to its digest or image ID where known.
pub fn fingerprints(
    graph: &Graph,
    dockerfiles: &[&str],
    inputs: &[Inputs],
    bases: &BTreeMap<String, String>,
) -> Result<Vec<Fingerprint>> {
    // Contexts first, in parallel; they do not depend on each other.
    let contexts: Vec<std::result::Result<Vec<(String, String)>, String>> = inputs
        .par_iter()
        .map(|i| context_inputs(&i.context))
        .collect();
    let mut out: Vec<Option<Fingerprint>> = vec![None; graph.nodes.len()];
    for &id in &graph.order {
        let input = &inputs[id];
        let mut m = Manifest::default();
        // An in-tree parent counts by its fingerprint (below), not by the
        // reference its `FROM` names: a tag that changes every commit
        // (`tag: "{{ git.short }}"`) must not make every child stale.
        let mut text = std::borrow::Cow::Borrowed(dockerfiles[id]);
        // Also its registry-less form (`ns/name:tag`, how a plain
        // `FROM {{ namespace }}/…` names it), after the full one.
        for &p in &graph.nodes[id].parents {
            let parent = &graph.nodes[p];
            let short = Some(crate::util::reference::short(&parent.reference))
                .filter(|s| *s != parent.reference)
                .map(str::to_string);
            for form in std::iter::once(parent.reference.clone()).chain(short) {
                if text.contains(form.as_str()) {
                    let marker = format!("<image {}>", parent.name);
                    text = std::borrow::Cow::Owned(text.replace(form.as_str(), &marker));
                }
            }
        }
        m.push("Dockerfile", hash_bytes(text.as_bytes()));
        let files = contexts[id]
            .as_ref()
            .map_err(|e| Error::input(format!("image `{}`: {e}", graph.nodes[id].name)))?;
        m.inputs.extend(files.iter().cloned());
        for (k, v) in &input.args {
            m.push(format!("build arg {k}"), v.clone());
        }
        m.push("platform", input.platform.clone());
        // Only when set, so that fingerprints without a target stay as they were.
        if !input.target.is_empty() {
            m.push("target", input.target.clone());
        }
        // A secret's id, never its value: adding or removing one it mounts
        // is a change; a new value is not (the plan says so).
        for id in &input.secrets {
            m.push(format!("secret {id}"), "given");
        }
        // Configured labels only: created/revision/source change every build.
        for (k, v) in &input.labels {
            m.push(format!("label {k}"), v.clone());
        }
        for &p in &graph.nodes[id].parents {
            let parent = out[p].as_ref().ok_or_else(|| {
                Error::input(format!(
                    "internal: parent of `{}` not ordered first",
                    graph.nodes[id].name
                ))
            })?;
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
        out[id] = Some(m.into());
    }
    Ok(out.into_iter().flatten().collect())
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
