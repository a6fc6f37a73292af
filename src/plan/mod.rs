//! Stage 4, the plan. Takes `Loaded` (stages 1-3) and what exists (the
//! engines' and the registry's answers, asked by the session); lists each
//! image's inputs once (`inputs`), hashes them into its fingerprint and
//! the explanation of it (`fingerprint`), reads what past runs left
//! (`history`: fingerprints, durations, verdicts), and answers which
//! images a change to some paths touches (`affected`). Gives the `Plan`:
//! one `Item` per image, with its action, reasons and build request, which
//! execute (stage 5) runs and every later stage reads.
//!
//! The plan: the one record of each image in a run. For each selected image
//! (and, unless `--no-deps`, each stale ancestor): its fingerprint, build or
//! skip and why, and the ready-made build request. The scheduler runs it and
//! the report reads it; nothing is joined back by name.
//! An image is up to date when its reference exists and carries the
//! fingerprint computed now. Knows nothing of engines or progress: what
//! exists and the record of past inputs are passed in.

pub mod affected;
pub mod fingerprint;
pub mod history;
pub mod inputs;

use crate::engine::BuildRequest;
use crate::graph::load::Loaded;
use crate::graph::Graph;
use fingerprint::{Fingerprint, Manifest};
use inputs::Inputs;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The label every image strata builds carries: its name in the tree.
pub const IMAGE_LABEL: &str = "io.strata.image";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Build,
    Skip,
    /// Up to date, but its tests have not passed for its current test
    /// files: run them on the existing image (pulled first when only the
    /// registry has it), no rebuild.
    Test,
}

/// One image of the run.
#[derive(Debug, Clone)]
pub struct Item {
    /// The image's id in the graph.
    pub id: usize,
    pub name: String,
    pub reference: String,
    /// Extra references tagged (and pushed) after the build.
    pub extra_tags: Vec<String>,
    /// What the image is (or will be) built from; with `--no-deps` this
    /// names the parent images really used, not the current ones.
    pub fingerprint: Fingerprint,
    pub action: Action,
    pub reasons: Vec<String>,
    /// Positions in `Plan::items` of the parents this item waits for.
    pub parents: Vec<usize>,
    /// References of all its parents in the tree, planned or not: each must
    /// point at the same image before and after its build.
    pub parent_refs: Vec<String>,
    /// The engine has it, up to date.
    pub local: bool,
    /// The registry has it, up to date, under its content tag: the digest.
    pub published: Option<String>,
    /// Up to date in the registry only, and an image to build is on it:
    /// pulled by digest before that build.
    pub fetch: bool,
    /// What the engine is asked to build (meaningful for `Build` items).
    pub request: BuildRequest,
    /// Its image tests, run after the build and before any tag moves.
    pub tests: Option<std::sync::Arc<crate::tree::testfiles::Suite>>,
    /// Other names it gets on the engine only, never pushed: a devfile's
    /// `imageName` as written, which its siblings' `FROM` lines use.
    pub aliases: Vec<String>,
    /// The engines of the run (by position) that hold it up to date.
    pub held_on: Vec<usize>,
    /// Up to date on an engine: its image ID there, and the digest its
    /// registry knows it by (for the summary of an image not built).
    pub image_id: Option<String>,
    pub published_digest: Option<String>,
    /// A record of one platform of a multi-platform set: its part of the
    /// image's index.
    pub index: Option<IndexPart>,
}

/// One platform's part of an image's index (multi-platform sets): the
/// image, this record's platform, and the release references the index is
/// written at (the image's, which no record moves itself).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexPart {
    pub image: String,
    pub platform: String,
    pub refs: Vec<String>,
    /// Every platform of the image (its index names them all).
    pub all: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Parents first.
    pub items: Vec<Item>,
    /// Stale parents left out by `--no-deps`, by name.
    pub stale_outside: Vec<String>,
    /// The builder the run's engines build with (`buildkit`, `classic`, or
    /// both as `buildkit/classic` for a pool that mixes them).
    pub builder: String,
}

impl Item {
    /// An item to build with no inputs recorded (scheduler tests and benchmarks).
    pub fn to_build(name: &str, reference: &str, parents: &[usize]) -> Item {
        Item {
            id: 0,
            name: name.into(),
            reference: reference.into(),
            extra_tags: Vec::new(),
            fingerprint: Manifest::default().into(),
            action: Action::Build,
            reasons: Vec::new(),
            parents: parents.to_vec(),
            parent_refs: Vec::new(),
            local: false,
            published: None,
            fetch: false,
            request: BuildRequest {
                name: name.into(),
                ..Default::default()
            },
            tests: None,
            aliases: Vec::new(),
            held_on: Vec::new(),
            image_id: None,
            published_digest: None,
            index: None,
        }
    }
}

impl Item {
    /// The references a finished item's step moves: its own, then extra tags.
    pub fn release_refs(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.reference).chain(&self.extra_tags)
    }
}

impl Plan {
    pub fn to_build(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.action == Action::Build)
    }
}

/// What the engine (or registry) already holds, and what is remembered of it.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Reference → the fingerprint label its image carries (empty: none).
    pub existing: HashMap<String, String>,
    /// Fingerprint → the manifest it was built from (the record of past inputs).
    pub past: HashMap<String, Manifest>,
    /// Reference → (fingerprint, manifest digest) of the images whose
    /// content tag the registry holds, with that fingerprint label.
    pub published: HashMap<String, (String, String)>,
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask {
    pub force: bool,
    pub no_deps: bool,
}

pub fn plan(
    graph: &Graph,
    selected: &[usize],
    fps: &[Fingerprint],
    known: &Known,
    ask: Ask,
) -> Plan {
    let existing_fp = |id: usize| known.existing.get(&graph.nodes[id].reference);
    let published = |id: usize, fp: &str| {
        known
            .published
            .get(&graph.nodes[id].reference)
            .filter(|(p, _)| p == fp)
            .map(|(_, digest)| digest.clone())
    };
    let fresh = |id: usize, fp: &str| {
        existing_fp(id).map(String::as_str) == Some(fp) || published(id, fp).is_some()
    };
    let chosen: BTreeSet<usize> = selected.iter().copied().collect();
    let mut scope = chosen.clone();
    let mut stale_outside = BTreeSet::new();
    for &id in selected {
        for a in graph.ancestors(id) {
            if !chosen.contains(&a) && !fresh(a, &fps[a].hash) {
                if ask.no_deps {
                    stale_outside.insert(a);
                } else {
                    scope.insert(a);
                }
            }
        }
    }
    let used = built_on(graph, fps, &stale_outside, known);
    let stale = |id: usize| !fresh(id, &used[id].hash);
    // A parent only in the registry joins the plan when something is built
    // on it: it is pulled by digest first (`fetch`).
    let building: Vec<usize> = scope
        .iter()
        .copied()
        .filter(|&id| stale(id) || (ask.force && chosen.contains(&id)))
        .collect();
    for id in building {
        for &p in &graph.nodes[id].parents {
            if existing_fp(p) != Some(&used[p].hash) && published(p, &used[p].hash).is_some() {
                scope.insert(p);
            }
        }
    }
    let mut position = HashMap::new();
    let mut items = Vec::new();
    for &id in graph.order.iter().filter(|i| scope.contains(i)) {
        let (action, reasons) = if stale(id) {
            let reasons = why(graph, id, &used, known, &items, &position);
            (Action::Build, reasons)
        } else if ask.force && chosen.contains(&id) {
            (Action::Build, vec!["forced".to_string()])
        } else {
            (
                Action::Skip,
                vec![up_to_date(
                    published(id, &used[id].hash),
                    existing_fp(id) == Some(&used[id].hash),
                )],
            )
        };
        let mut item = Item::to_build(&graph.nodes[id].name, &graph.nodes[id].reference, &[]);
        item.id = id;
        item.fingerprint = used[id].clone();
        (item.action, item.reasons) = (action, reasons);
        let parents = &graph.nodes[id].parents;
        item.parents = parents
            .iter()
            .filter_map(|p| position.get(p).copied())
            .collect();
        item.parent_refs = parents
            .iter()
            .map(|&p| graph.nodes[p].reference.clone())
            .collect();
        item.local = existing_fp(id) == Some(&used[id].hash);
        item.published = published(id, &used[id].hash);
        item.request = BuildRequest::default();
        position.insert(id, items.len());
        items.push(item);
    }
    mark_fetches(&mut items);
    Plan {
        items,
        stale_outside: stale_outside
            .into_iter()
            .map(|i| graph.nodes[i].name.clone())
            .collect(),
        builder: String::new(),
    }
}

/// A parent up to date only in the registry, with something to build on
/// it, is pulled by digest first.
fn mark_fetches(items: &mut [Item]) {
    for i in 0..items.len() {
        if items[i].action == Action::Build {
            for k in items[i].parents.clone() {
                let parent = &mut items[k];
                parent.fetch = parent.action == Action::Skip && !parent.local;
            }
        }
    }
}

/// The fingerprint of what each image is really built on: a parent left
/// stale by `--no-deps` (`stale_outside`) is the image that exists, not the
/// current one.
fn built_on(
    graph: &Graph,
    fps: &[Fingerprint],
    stale_outside: &BTreeSet<usize>,
    known: &Known,
) -> Vec<Fingerprint> {
    let existing_fp = |id: usize| known.existing.get(&graph.nodes[id].reference);
    let mut used: Vec<Fingerprint> = fps.to_vec();
    for &id in &graph.order {
        let mut manifest: Option<Manifest> = None;
        for &p in &graph.nodes[id].parents {
            let parent_fp = if stale_outside.contains(&p) {
                existing_fp(p).cloned().unwrap_or_default()
            } else {
                used[p].hash.clone()
            };
            if parent_fp != fps[p].hash {
                let m = manifest.as_ref().unwrap_or(&used[id].manifest);
                manifest = Some(m.with_parent(&graph.nodes[p].name, &parent_fp));
            }
        }
        if let Some(m) = manifest {
            used[id] = m.into();
        }
    }
    used
}

/// Why an image is up to date: here (`local`), else in the registry.
fn up_to_date(published: Option<String>, local: bool) -> String {
    if local {
        return "up to date".to_string();
    }
    let digest = published.unwrap_or_default();
    let short = digest.get(..19).unwrap_or(&digest);
    format!("up to date in the registry ({short}…)")
}

fn why(
    graph: &Graph,
    id: usize,
    fps: &[Fingerprint],
    known: &Known,
    items: &[Item],
    position: &HashMap<usize, usize>,
) -> Vec<String> {
    let Some(old) = known.existing.get(&graph.nodes[id].reference) else {
        return vec!["not built yet".into()];
    };
    if old.is_empty() {
        return vec!["the existing image has no strata fingerprint".into()];
    }
    if let Some(manifest) = known.past.get(old) {
        let reasons = fingerprint::explain(manifest, &fps[id].manifest);
        if !reasons.is_empty() {
            return reasons;
        }
    }
    let parents: Vec<String> = graph.nodes[id]
        .parents
        .iter()
        .filter(|p| {
            position
                .get(p)
                .is_some_and(|&k| items[k].action == Action::Build)
        })
        .map(|&p| format!("parent {} will be rebuilt", graph.nodes[p].name))
        .collect();
    if parents.is_empty() {
        vec!["inputs changed since it was built (no record of the old inputs in the cache)".into()]
    } else {
        parents
    }
}

/// `strata test`: keep only the selected images, each of which must exist
/// with its current inputs (nothing is built); the stale ancestors the plan
/// added leave with their records, and parents are renumbered.
pub fn keep_selected(
    plan: &mut Plan,
    selected: &[usize],
    graph: &Graph,
) -> crate::util::error::Result<()> {
    let selected: BTreeSet<usize> = selected.iter().copied().collect();
    let stale: Vec<&str> = plan
        .items
        .iter()
        .filter(|i| selected.contains(&i.id) && (i.action == Action::Build || !i.local))
        .map(|i| i.name.as_str())
        .collect();
    if !stale.is_empty() {
        return Err(crate::util::error::Error::input(format!(
            "not built with their current inputs here, so there is nothing to test: {}",
            stale.join(", ")
        ))
        .help("build them first: `strata build` (which runs their tests too)"));
    }
    plan.items.retain(|i| selected.contains(&i.id));
    let positions: HashMap<usize, usize> = plan
        .items
        .iter()
        .enumerate()
        .map(|(k, i)| (i.id, k))
        .collect();
    for item in &mut plan.items {
        item.parents = graph.nodes[item.id]
            .parents
            .iter()
            .filter_map(|p| positions.get(p).copied())
            .collect();
    }
    Ok(())
}

/// Give each item its tests (`suites` by graph id; none with `--no-tests`).
/// An up-to-date item whose tests have not passed (`passed(fingerprint,
/// key)`) for its current test files is to be tested, not rebuilt.
pub fn attach_tests(
    plan: &mut Plan,
    suites: &[Option<std::sync::Arc<crate::tree::testfiles::Suite>>],
    passed: impl Fn(&str, &str) -> bool,
) {
    for item in &mut plan.items {
        item.tests = suites.get(item.id).cloned().flatten();
        let Some(suite) = &item.tests else { continue };
        // A verdict belongs to the image that was tested (its ID, the same
        // on every engine and in the registry as its config digest), never
        // to every image of the same inputs.
        let tested = item.image_id.as_deref();
        if item.action == Action::Skip && !tested.is_some_and(|t| passed(t, &suite.key)) {
            item.action = Action::Test;
            item.reasons =
                vec!["up to date; its tests have not passed with the current test files".into()];
        }
    }
}

/// Where the label step goes when `target` is not the last stage: before
/// the next stage's `FROM`.
fn labels_before(parsed: &crate::graph::dockerfile::Parsed, target: &str) -> Option<usize> {
    if target.is_empty() {
        return None;
    }
    let i = parsed.stage(target)?;
    parsed.stages.get(i + 1).map(|next| next.line)
}

/// Fill in the build request of every item to build (`asked` holds what
/// the run asks of every build: builder, secrets, SSH agents, no-cache): the rendered
/// Dockerfile, the context, the declared build args, and the labels (the
/// configured ones, `extra` such as OCI labels from git, the image's name and
/// its fingerprint).
pub fn requests(
    plan: &mut Plan,
    loaded: &Loaded,
    inputs: &[Inputs],
    extra: &BTreeMap<String, String>,
    asked: &BuildRequest,
) {
    for item in plan.items.iter_mut() {
        let image = &loaded.images[item.id];
        let (repo, _) = crate::util::reference::split(&item.reference);
        let mut tags: Vec<&String> = loaded.tree.config.tags.iter().collect();
        tags.extend(&image.spec.tags);
        tags.dedup();
        item.extra_tags = tags
            .into_iter()
            .filter(|t| **t != loaded.tree.config.tag)
            .map(|t| format!("{repo}:{t}"))
            .collect();
        if let (Some(of), Some(release)) = (&image.spec.platform_of, &image.spec.release_reference)
        {
            let (repo, _) = crate::util::reference::split(release);
            let refs = std::iter::once(release.clone())
                .chain(item.extra_tags.iter().map(|t| {
                    let tag = t.rsplit_once(':').map_or(t.as_str(), |(_, tag)| tag);
                    format!("{repo}:{tag}")
                }))
                .collect();
            item.index = Some(IndexPart {
                image: of.clone(),
                platform: image.spec.platform.clone().unwrap_or_default(),
                refs,
                all: image.spec.platforms.clone(),
            });
            item.extra_tags.clear();
        } else if let Some(written) = &image.reference {
            let full = if written.rsplit('/').next().is_some_and(|l| l.contains(':')) {
                written.clone()
            } else {
                format!("{written}:latest")
            };
            if full != item.reference {
                item.aliases = vec![full];
            }
        }
        if item.action == Action::Skip {
            continue;
        }
        let input = &inputs[item.id];
        let mut labels = input.labels.clone();
        labels.extend(extra.clone());
        labels.insert("org.opencontainers.image.title".into(), item.name.clone());
        labels.insert(IMAGE_LABEL.into(), item.name.clone());
        labels.insert(fingerprint::LABEL.into(), item.fingerprint.hash.clone());
        item.request = BuildRequest {
            name: item.name.clone(),
            dockerfile: loaded.rendered[item.id].text.clone(),
            context: image.context.clone(),
            args: input.args.clone(),
            labels,
            platform: input.platform.clone(),
            builder: asked.builder,
            secrets: asked.secrets.clone(),
            ssh: asked.ssh.clone(),
            key: item.fingerprint.hash.clone(),
            no_cache: asked.no_cache,
            target: input.target.clone(),
            network: image
                .spec
                .network
                .clone()
                .unwrap_or_else(|| loaded.tree.config.build.network.clone()),
            labels_before_line: labels_before(&loaded.parsed[item.id], &input.target),
            escape: crate::engine::Escape(loaded.parsed[item.id].escape),
            leave_out: input.leave_out.clone(),
            from: loaded.graph.nodes[item.id]
                .bases
                .iter()
                .chain(&item.parent_refs)
                .cloned()
                .collect(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Node;

    fn chain() -> Graph {
        let node = |name: &str, parents: Vec<usize>| Node {
            name: name.into(),
            reference: format!("t/{name}:1"),
            path: name.into(),
            primary_parent: parents.first().copied(),
            parents,
            bases: Vec::new(),
            manual: false,
        };
        Graph {
            nodes: vec![
                node("base", vec![]),
                node("leaf", vec![2]),
                node("mid", vec![0]),
            ],
            order: vec![0, 2, 1],
            children: vec![vec![2], vec![], vec![1]],
        }
    }

    fn fp(hash: &str) -> Fingerprint {
        Fingerprint {
            hash: hash.into(),
            manifest: Manifest::default(),
        }
    }

    /// `strata test mid leaf` with a stale `base` the plan added: the base
    /// leaves, and every other record stays with its image.
    #[test]
    fn keeping_the_selection_keeps_each_row_with_its_image() {
        let graph = chain();
        let fps = [fp("b2"), fp("l1"), fp("m1")];
        let known = Known {
            existing: [("t/base:1", "b1"), ("t/leaf:1", "l1"), ("t/mid:1", "m1")]
                .map(|(r, f)| (r.to_string(), f.to_string()))
                .into(),
            ..Known::default()
        };
        let mut plan = plan(&graph, &[1, 2], &fps, &known, Ask::default());
        let names: Vec<&str> = plan.items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["base", "mid", "leaf"]);
        for (k, item) in plan.items.iter_mut().enumerate() {
            item.held_on = vec![k];
            item.aliases = vec![format!("alias-of-{}", item.name)];
        }
        keep_selected(&mut plan, &[1, 2], &graph).unwrap();
        let rows: Vec<(&str, &[usize], &str, &[usize])> = plan
            .items
            .iter()
            .map(|i| {
                (
                    i.name.as_str(),
                    &i.held_on[..],
                    i.aliases[0].as_str(),
                    &i.parents[..],
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("mid", &[1][..], "alias-of-mid", &[][..]),
                ("leaf", &[2][..], "alias-of-leaf", &[0][..]),
            ]
        );
        // A selected image that is not built is refused, naming it.
        let mut plan = super::plan(&graph, &[0, 2], &fps, &known, Ask::default());
        let err = keep_selected(&mut plan, &[0, 2], &graph).unwrap_err();
        assert!(
            err.message.ends_with("nothing to test: base"),
            "{}",
            err.message
        );
    }
}
