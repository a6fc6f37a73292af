//! The front half every command shares: load the tree and select
//! (`scope`), then fingerprint and plan against what the engines and the
//! registry hold (`prepare`), and the registry a run consults. The session
//! (`session.rs`) calls these; commands never do.

use crate::graph::load::{self, Loaded, Options};
use crate::plan::inputs::{self, Inputs};
use crate::plan::{self, Ask, Known, Plan};
use crate::tree::testfiles;
use crate::util::error::Result;
use crate::{
    commands::survey, engine, graph::select, plan::affected, plan::fingerprint, plan::history,
    publish::registry, util::git,
};
use std::path::PathBuf;
use std::sync::Arc;

/// A loaded tree, the inputs of its images, and the selection: selectors,
/// narrowed to what changed since `since` when given.
pub(crate) struct Scope {
    pub(crate) loaded: Loaded,
    pub(crate) inputs: Vec<Inputs>,
    pub(crate) selected: Vec<usize>,
    /// Image tests by graph id (selected images and their ancestors).
    pub(crate) suites: Vec<Option<Arc<testfiles::Suite>>>,
}

pub(crate) fn scope(opts: &Options, selectors: &[String], since: Option<&str>) -> Result<Scope> {
    narrow(load::load(opts)?, selectors, since)
}

/// The scope of a tree loaded already.
pub(crate) fn narrow(loaded: Loaded, selectors: &[String], since: Option<&str>) -> Result<Scope> {
    let inputs = inputs::collect(&loaded)?;
    let sel = select::select(&loaded.graph, &loaded.tree.config, selectors)?;
    let mut selected = sel.ids;
    if let Some(rev) = since {
        let changed = git::changed_since(&loaded.tree.root, rev)?;
        let hit = affected::affected(&loaded.graph, &inputs, &changed);
        selected.retain(|i| hit.contains(i));
    }
    let suites = tests_of(&loaded, &selected)?;
    Ok(Scope {
        loaded,
        inputs,
        selected,
        suites,
    })
}

/// Each image's fingerprint as the tree alone gives it (bases by name,
/// not digest), by image name: two of these differ where an edit changed
/// an image or anything it is built on (`strata watch`).
pub(crate) fn tree_fingerprints(s: &Scope) -> Result<std::collections::HashMap<String, String>> {
    let graph = &s.loaded.graph;
    let dockerfiles: Vec<&str> = s.loaded.rendered.iter().map(|r| r.text.as_str()).collect();
    let fps = fingerprint::fingerprints(graph, &dockerfiles, &s.inputs, &Default::default())?;
    let names = graph.nodes.iter().map(|n| n.name.clone());
    Ok(names.zip(fps.into_iter().map(|f| f.hash)).collect())
}

/// The registry to consult, when the tree names one (`registry:`, or
/// images whose references name their registry, as a devfile's fully
/// qualified `imageName` does); never with the simulated engine.
pub(crate) fn registry_for(s: &Scope, sim: bool) -> Option<registry::Registry> {
    let config = &s.loaded.tree.config;
    let graph = &s.loaded.graph;
    let named = graph
        .nodes
        .iter()
        .any(|n| crate::util::reference::registry_of(&n.reference).is_some());
    if (config.registry.is_empty() && !named) || sim {
        return None;
    }
    let refs = graph.nodes.iter().map(|n| n.reference.as_str());
    let bases = graph
        .nodes
        .iter()
        .flat_map(|n| n.bases.iter().map(String::as_str));
    Some(registry::Registry::new(
        refs.chain(bases),
        &config.insecure_registries,
    ))
}

/// Fingerprints and the plan: what exists is asked of the engines first
/// (bases of the first), then of the registry (for a push, of every
/// image: what it lacks is uploaded; else only of those the engines lack).
/// Each item records the engines that hold it up to date (`held_on`).
pub(crate) async fn prepare(
    s: &Scope,
    engines: &[engine::pool::Member],
    registry: Option<&registry::Registry>,
    ask: Ask,
    pull: bool,
    push: bool,
) -> Result<Plan> {
    let graph = &s.loaded.graph;
    let pull = pull || s.loaded.tree.config.build.pull;
    let first = engines[0].engine.as_ref();
    let bases = survey::bases(graph, first, registry, pull).await?;
    let dockerfiles: Vec<&str> = s.loaded.rendered.iter().map(|r| r.text.as_str()).collect();
    let fps = fingerprint::fingerprints(graph, &dockerfiles, &s.inputs, &bases)?;
    let on: Vec<&dyn engine::Engine> = engines.iter().map(|m| m.engine.as_ref()).collect();
    let (held, each) = survey::existing_on(graph, &s.selected, &on, &fps).await?;
    let existing: std::collections::HashMap<String, String> = held
        .iter()
        .map(|(r, h)| (r.clone(), h.fingerprint.clone()))
        .collect();
    let past = history::recall(existing.values().map(String::as_str));
    let published = match registry {
        Some(r) => survey::published(graph, &s.selected, &fps, &existing, r, push).await?,
        None => Default::default(),
    };
    let known = Known {
        existing,
        past,
        published,
    };
    let mut plan = plan::plan(graph, &s.selected, &fps, &known, ask);
    for item in &mut plan.items {
        let fp = &item.fingerprint.hash;
        item.held_on = (0..each.len())
            .filter(|&e| each[e].get(&item.reference).map(|h| &h.fingerprint) == Some(fp))
            .collect();
        // What the summary says of an image up to date here: its ID, and
        // the registry's digest when the engine knows it.
        if let Some(h) = held.get(&item.reference).filter(|h| &h.fingerprint == fp) {
            item.image_id = Some(h.id.clone());
            item.published_digest = item.published.clone().or(h.digest.clone());
        } else if let (Some(_), Some(r)) = (&item.published, registry) {
            // Only in the registry: its config digest is the ID it has once pulled.
            item.image_id = r.config_of(&crate::util::reference::content_tag(&item.reference, fp));
        }
    }
    Ok(plan)
}

/// The image tests of the selected images and their ancestors (by graph
/// id): the tree's `build.tests`, then the image's own `tests:` (relative to
/// its folder). Read and checked before the engine is asked anything: a
/// bad file is exit 2 and nothing is built.
fn tests_of(loaded: &Loaded, selected: &[usize]) -> Result<Vec<Option<Arc<testfiles::Suite>>>> {
    let root = &loaded.tree.root;
    let mut wanted: std::collections::BTreeSet<usize> = selected.iter().copied().collect();
    for &id in selected {
        wanted.extend(loaded.graph.ancestors(id));
    }
    let mut suites = vec![None; loaded.images.len()];
    let mut reader = testfiles::Reader::default();
    for id in wanted {
        let image = &loaded.images[id];
        let mut paths: Vec<PathBuf> = loaded
            .tree
            .config
            .build
            .tests
            .iter()
            .map(|t| root.join(t))
            .collect();
        paths.extend(image.spec.tests.iter().map(|t| image.dir.join(t)));
        for p in &paths {
            crate::tree::config::inside_tree(
                root,
                p,
                &format!(
                    "image test file `{}`",
                    crate::tree::config::display_name(p, root)
                ),
            )?;
        }
        suites[id] = reader.suite(root, &paths)?.map(Arc::new);
    }
    Ok(suites)
}
