//! The front half every command shares: load the tree and select
//! (`scope`), then fingerprint and plan against what the engines and the
//! registry hold (`prepare`). Which engines a run uses, and the registry it
//! consults, are decided here too.

use crate::error::{Error, Result};
use crate::imagetest;
use crate::inputs::{self, Inputs};
use crate::load::{self, Loaded, Options};
use crate::plan::{self, Ask, Known, Plan};
use crate::{affected, engine, fingerprint, git, history, registry, select, survey};
use std::path::PathBuf;
use std::sync::Arc;

/// A loaded tree, the inputs of its images, and the selection: selectors,
/// narrowed to what changed since `since` when given.
pub(crate) struct Scope {
    pub(crate) loaded: Loaded,
    pub(crate) inputs: Vec<Inputs>,
    pub(crate) selected: Vec<usize>,
    /// Image tests by graph id (selected images and their ancestors).
    pub(crate) suites: Vec<Option<Arc<imagetest::Suite>>>,
}

pub(crate) fn scope(opts: &Options, selectors: &[String], since: Option<&str>) -> Result<Scope> {
    let loaded = load::load(opts)?;
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

/// The registry to consult, when the tree names one (not with the simulated engine).
pub(crate) fn registry_for(s: &Scope, sim: bool) -> Option<registry::Registry> {
    let config = &s.loaded.tree.config;
    if config.registry.is_empty() || sim {
        return None;
    }
    let graph = &s.loaded.graph;
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

/// The engines of a run, their names and the registry requirement: more
/// than one needs `registry:` (exit 2 otherwise), the simulated engine none.
pub(crate) fn engine_specs(
    s: &Scope,
    cli: &[engine::pool::Spec],
) -> Result<Vec<engine::pool::Spec>> {
    let config = &s.loaded.tree.config;
    let specs = engine::pool::specs(cli, &config.engines);
    if specs.len() > 1 && config.registry.is_empty() && !specs.iter().all(|e| e.is_sim()) {
        return Err(Error::input(format!(
            "{} engines share the images they build through a registry, and `registry:` is not set",
            specs.len()
        ))
        .help("set `registry:` in strata.yaml (or --set registry=HOST), or build on one engine"));
    }
    Ok(specs)
}

/// Fingerprints and the plan: what exists is asked of the engines first
/// (bases of the first), then of the registry (for a push, of every
/// image: what it lacks is uploaded; else only of those the engines lack).
/// Also which plan items each engine holds up to date.
pub(crate) async fn prepare(
    s: &Scope,
    engines: &[engine::pool::Member],
    registry: Option<&registry::Registry>,
    ask: Ask,
    pull: bool,
    push: bool,
) -> Result<(Plan, Vec<Vec<bool>>)> {
    let graph = &s.loaded.graph;
    let pull = pull || s.loaded.tree.config.build.pull;
    let first = engines[0].engine.as_ref();
    let bases = survey::bases(graph, first, registry, pull).await?;
    let dockerfiles: Vec<&str> = s.loaded.rendered.iter().map(|r| r.text.as_str()).collect();
    let fps = fingerprint::fingerprints(graph, &dockerfiles, &s.inputs, &bases)?;
    let on: Vec<&dyn engine::Engine> = engines.iter().map(|m| m.engine.as_ref()).collect();
    let (existing, each) = survey::existing_on(graph, &s.selected, &on, &fps).await?;
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
    let plan = plan::plan(graph, &s.selected, &fps, &known, ask);
    let holds = each
        .iter()
        .map(|found| {
            plan.items
                .iter()
                .map(|i| found.get(&i.reference) == Some(&i.fingerprint.hash))
                .collect()
        })
        .collect();
    Ok((plan, holds))
}

/// The image tests of the selected images and their ancestors (by graph
/// id): the tree's `build.tests`, then the image's own `tests:` (relative to
/// its folder). Read and checked before the engine is asked anything: a
/// bad file is exit 2 and nothing is built.
fn tests_of(loaded: &Loaded, selected: &[usize]) -> Result<Vec<Option<Arc<imagetest::Suite>>>> {
    let root = &loaded.tree.root;
    let mut wanted: std::collections::BTreeSet<usize> = selected.iter().copied().collect();
    for &id in selected {
        wanted.extend(loaded.graph.ancestors(id));
    }
    let mut suites = vec![None; loaded.images.len()];
    let mut reader = imagetest::Reader::default();
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
            crate::config::inside_tree(
                root,
                p,
                &format!("image test file `{}`", crate::config::display_name(p, root)),
            )?;
        }
        suites[id] = reader.suite(root, &paths)?.map(Arc::new);
    }
    Ok(suites)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::engine(format!("cannot start the async runtime: {e}")))
}
