//! Asks the engine what exists, before planning: the image ID of every base
//! (an input of the fingerprints; refreshed first with `--pull`) and the
//! fingerprint label of every image in scope (the selection and its
//! ancestors, inspected 16 at a time). Knows nothing of how the plan decides.

use crate::engine::{self, Engine, ImageInfo};
use crate::graph::Graph;
use crate::plan::fingerprint;
use crate::util::error::{Error, Result};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Base reference (familiar form) → its identity: the registry digest it
/// was pulled by (the same on every machine), else the image ID of an
/// image built or imported here. A base the engine lacks is looked up in
/// its registry when one is given (a fresh worker); one that cannot be
/// found either way is left out (the build will pull it).
pub async fn bases(
    graph: &Graph,
    engine: &dyn Engine,
    registry: Option<&crate::publish::registry::Registry>,
    pull: bool,
) -> Result<BTreeMap<String, String>> {
    let all: BTreeSet<&String> = graph.nodes.iter().flat_map(|n| &n.bases).collect();
    if pull {
        // Refresh bases first, so that a new upstream base changes the fingerprints.
        for b in &all {
            engine.pull(b).await.map_err(|e| {
                Error::engine(format!("cannot refresh base `{b}`: {e}"))
                    .help("check that the registry is reachable and the credentials in the Docker config, or build without --pull")
            })?;
        }
    }
    let mut out = BTreeMap::new();
    for b in all {
        match engine.inspect(b).await.map_err(engine::unreachable)? {
            Some(info) => {
                let id = pulled_by(b, &info.repo_digests).unwrap_or(info.id);
                out.insert(b.clone(), id);
            }
            None => {
                let Some(r) = registry else { continue };
                if let Ok(crate::publish::registry::Lookup::Present(digest)) = r.lookup(b).await {
                    out.insert(b.clone(), digest);
                }
            }
        }
    }
    Ok(out)
}

/// The digest among `repo_digests` (`repo@sha256:…`) of `reference`'s repository.
fn pulled_by(reference: &str, repo_digests: &[String]) -> Option<String> {
    let (repo, _) = crate::util::reference::split(reference);
    repo_digests.iter().find_map(|d| {
        let (r, digest) = d.split_once('@')?;
        (r == repo).then(|| digest.to_string())
    })
}

/// An image of the tree an engine has: its fingerprint label (empty when
/// it has none), its image ID, and the digest its registry knows it by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    pub fingerprint: String,
    pub id: String,
    pub digest: Option<String>,
}

/// Reference → what the engine holds under it, for the
/// images of `selected` and their ancestors that the engine has. Listing
/// every image instead costs the engine time in proportion to all the images
/// it holds (see docs/incremental.md).
pub async fn existing(
    graph: &Graph,
    selected: &[usize],
    engine: &dyn Engine,
) -> Result<HashMap<String, Held>> {
    let mut scope = BTreeSet::new();
    for &id in selected {
        scope.extend(graph.ancestors(id));
    }
    let found: Vec<(
        usize,
        std::result::Result<Option<ImageInfo>, engine::EngineError>,
    )> = futures_util::stream::iter(scope)
        .map(|id| async move { (id, engine.inspect(&graph.nodes[id].reference).await) })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut out = HashMap::new();
    for (id, info) in found {
        if let Some(image) = info.map_err(engine::unreachable)? {
            let reference = &graph.nodes[id].reference;
            let held = Held {
                fingerprint: image
                    .labels
                    .get(fingerprint::LABEL)
                    .cloned()
                    .unwrap_or_default(),
                digest: pulled_by(reference, &image.repo_digests),
                id: image.id,
            };
            out.insert(reference.clone(), held);
        }
    }
    Ok(out)
}

/// What each engine of a run holds ([`existing`] asked of each), merged:
/// an image counts with the label of an engine that has it up to date
/// (`fps`) when one does. Also what each engine holds, as given.
pub async fn existing_on(
    graph: &Graph,
    selected: &[usize],
    engines: &[&dyn Engine],
    fps: &[fingerprint::Fingerprint],
) -> Result<(HashMap<String, Held>, Vec<HashMap<String, Held>>)> {
    let each = futures_util::future::join_all(
        engines
            .iter()
            .map(|engine| existing(graph, selected, *engine)),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    let current: HashMap<&str, &str> = graph
        .nodes
        .iter()
        .zip(fps)
        .map(|(n, fp)| (n.reference.as_str(), fp.hash.as_str()))
        .collect();
    let mut merged: HashMap<String, Held> = HashMap::new();
    for found in &each {
        for (reference, held) in found {
            let up_to_date = current.get(reference.as_str()) == Some(&held.fingerprint.as_str());
            if up_to_date || !merged.contains_key(reference) {
                merged.insert(reference.clone(), held.clone());
            }
        }
    }
    Ok((merged, each))
}

/// Registry questions in flight at once: each waits mostly on the network.
const LOOKUPS: usize = 64;

/// Reference → (fingerprint, manifest digest) for the images in scope that
/// the registry holds under their content tag, with that fingerprint label;
/// asked 16 at a time, nothing pulled. Only those the engine lacks up to
/// date are asked, unless `all` (a push: what the registry lacks is uploaded).
pub async fn published(
    graph: &Graph,
    selected: &[usize],
    fps: &[fingerprint::Fingerprint],
    existing: &HashMap<String, String>,
    registry: &crate::publish::registry::Registry,
    all: bool,
) -> Result<HashMap<String, (String, String)>> {
    let mut scope = BTreeSet::new();
    for &id in selected {
        scope.extend(graph.ancestors(id));
    }
    let ask: Vec<usize> = scope
        .into_iter()
        .filter(|&id| all || existing.get(&graph.nodes[id].reference) != Some(&fps[id].hash))
        .filter(|&id| crate::util::reference::registry_of(&graph.nodes[id].reference).is_some())
        .collect();
    let found: Vec<(usize, Result<Option<String>>)> = futures_util::stream::iter(ask)
        .map(|id| async move {
            let content =
                crate::util::reference::content_tag(&graph.nodes[id].reference, &fps[id].hash);
            (id, registry.published(&content, &fps[id].hash).await)
        })
        .buffer_unordered(LOOKUPS)
        .collect()
        .await;
    let mut out = HashMap::new();
    for (id, digest) in found {
        if let Some(digest) = digest? {
            out.insert(
                graph.nodes[id].reference.clone(),
                (fps[id].hash.clone(), digest),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_base_is_known_by_the_digest_of_its_own_repository() {
        let digests = [
            "other/repo@sha256:aaa".to_string(),
            "127.0.0.1:5055/ns/busybox@sha256:bbb".to_string(),
        ];
        assert_eq!(
            super::pulled_by("127.0.0.1:5055/ns/busybox:latest", &digests).as_deref(),
            Some("sha256:bbb")
        );
        assert_eq!(super::pulled_by("debian:bookworm", &digests), None);
    }
}
