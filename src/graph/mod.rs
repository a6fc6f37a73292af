//! Stage 3, the graph. Takes the tree (stage 1) and the rendered
//! Dockerfiles (stage 2); parses each (`dockerfile`: its `FROM`, `COPY
//! --from` and `ARG` lines, with their places for errors), links them
//! here, resolves the tags each image gets (`tags`) and the selectors of
//! a command line (`select`). `load` runs stages 1 to 3 in one call and
//! gives `Loaded`: what the plan (stage 4) and every command start from.
//!
//! The dependency graph of a tree: an edge parent → child for every reference
//! a rendered Dockerfile makes to an image of the tree; every other reference
//! is a base. Detects cycles and references that look like a tree image but
//! are none. Knows nothing of engines, fingerprints or selection.

pub mod dockerfile;
pub mod load;
pub mod select;
pub mod tags;

use crate::tree::config::Config;
use crate::tree::discover::{Image, LeftOut};
use crate::util::error::{did_you_mean, Error, Result};
use dockerfile::{normalize, Parsed};
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub reference: String,
    /// Image folder relative to the tree root.
    pub path: String,
    /// Parents (indexes into `Graph::nodes`), sorted by name.
    pub parents: Vec<usize>,
    /// The parent the final stage is built on, if it is an image of the tree.
    pub primary_parent: Option<usize>,
    /// Bases in familiar form (`debian:bookworm-slim`), sorted.
    pub bases: Vec<String>,
    /// Built only when selected by name (a devfile's `autoBuild: false`).
    pub manual: bool,
}

#[derive(Debug, Clone)]
pub struct Graph {
    /// Sorted by name; the index is the image's id everywhere downstream.
    pub nodes: Vec<Node>,
    /// Every id, parents before children, ties by name.
    pub order: Vec<usize>,
    /// Children of each id, sorted by name.
    pub children: Vec<Vec<usize>>,
}

impl Graph {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    /// `id` and every image built on it, directly or not.
    pub fn descendants(&self, id: usize) -> BTreeSet<usize> {
        self.walk(id, |i| &self.children[i])
    }

    /// `id` and every image it is built on, directly or not.
    pub fn ancestors(&self, id: usize) -> BTreeSet<usize> {
        self.walk(id, |i| &self.nodes[i].parents)
    }

    fn walk<'a>(&'a self, id: usize, next: impl Fn(usize) -> &'a Vec<usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::from([id]);
        let mut todo = vec![id];
        while let Some(i) = todo.pop() {
            for &n in next(i) {
                if seen.insert(n) {
                    todo.push(n);
                }
            }
        }
        seen
    }
}

/// Build the graph. `images`, `parsed` and `rendered` are index-aligned and sorted by name;
/// `rendered` is used for messages; `left_out` names images with `enabled:
/// false` or matched by `exclude:`.
pub fn build(
    config: &Config,
    images: &[Image],
    parsed: &[Parsed],
    rendered: &[&str],
    left_out: &LeftOut,
) -> Result<Graph> {
    let registry = config.registry.trim_end_matches('/');
    let strip_registry = |r: String| -> String {
        match r.strip_prefix(registry).and_then(|r| r.strip_prefix('/')) {
            Some(rest) if !registry.is_empty() => rest.to_string(),
            _ => r,
        }
    };
    let (by_ref, by_repo) = tree_references(config, images, &strip_registry);
    let tree_prefix = {
        let ns = config.namespace.trim_matches('/');
        if ns.is_empty() && config.prefix.is_empty() {
            None
        } else if ns.is_empty() {
            Some(config.prefix.clone())
        } else {
            Some(format!("{ns}/{}", config.prefix))
        }
    };

    let mut nodes = Vec::with_capacity(images.len());
    let mut dag = DiGraph::with_capacity(images.len(), images.len());
    let ids: Vec<NodeIndex> = (0..images.len()).map(|i| dag.add_node(i)).collect();
    let mut edge_lines: HashMap<(usize, usize), usize> = HashMap::new();
    for (i, (image, p)) in images.iter().zip(parsed).enumerate() {
        let file = format!("{} (rendered)", image.dockerfile_path());
        let mut parents = BTreeSet::new();
        let mut bases = BTreeSet::new();
        for r in &p.refs {
            let familiar = normalize(&r.reference);
            let local = strip_registry(familiar.clone());
            if let Some(&parent) = by_ref.get(&local) {
                parents.insert(parent);
                edge_lines.entry((parent, i)).or_insert(r.line);
                continue;
            }
            // A tag of a repository the tree builds that no image produces:
            // a misspelt variant, never an outside base.
            if let Some(err) = unknown_variant(&by_repo, &local) {
                return Err(err.at_line(&file, rendered[i], r.line, "here"));
            }
            if let Some(prefix) = &tree_prefix {
                if let Some(rest) = local.strip_prefix(prefix.as_str()) {
                    let name = rest.split([':', '@']).next().unwrap_or(rest);
                    let at = |e: Error| e.at_line(&file, rendered[i], r.line, "here");
                    let tree = Tree {
                        config,
                        images,
                        left_out,
                        prefix,
                    };
                    return Err(at(tree.no_such_image(image, &r.reference, name)));
                }
            }
            bases.insert(familiar);
        }
        for &parent in &parents {
            dag.add_edge(ids[parent], ids[i], ());
        }
        let primary_parent = p
            .final_base()
            .and_then(|b| by_ref.get(&strip_registry(normalize(b))).copied());
        nodes.push(Node {
            name: image.name.clone(),
            reference: image.reference(config),
            manual: !image.spec.auto_build,
            path: image.rel_dir.clone(),
            parents: parents.into_iter().collect(),
            primary_parent,
            bases: bases.into_iter().collect(),
        });
    }
    let mut children = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for &p in &n.parents {
            children[p].push(i);
        }
    }
    let order = topological_order(&dag)
        .map_err(|cycle| cycle_error(&cycle, &nodes, images, &edge_lines))?;
    Ok(Graph {
        nodes,
        order,
        children,
    })
}

/// Every reference an image of the tree is known by (registry-less,
/// normalized) → its id, and each repository → those references.
type ByRef = HashMap<String, usize>;
type ByRepo = HashMap<String, Vec<String>>;

fn tree_references(
    config: &Config,
    images: &[Image],
    strip_registry: &dyn Fn(String) -> String,
) -> (ByRef, ByRepo) {
    let mut by_ref: HashMap<String, usize> = images
        .iter()
        .enumerate()
        .map(|(i, img)| (strip_registry(normalize(&img.reference(config))), i))
        .collect();
    // A devfile's image is also known by its `imageName` as written, the
    // name its siblings' Dockerfiles use in `FROM`.
    for (i, img) in images.iter().enumerate() {
        if let Some(written) = &img.reference {
            by_ref
                .entry(strip_registry(normalize(written)))
                .or_insert(i);
        }
    }
    let mut by_repo: HashMap<String, Vec<String>> = HashMap::new();
    for r in by_ref.keys() {
        let repo = crate::util::reference::repository(r).to_string();
        by_repo.entry(repo).or_default().push(r.clone());
    }
    (by_ref, by_repo)
}

/// `reference` (registry-less, normalized) names a repository the tree
/// builds (`by_repo`: repository → its references) under a tag none of its
/// images has: the error, with the tags that exist.
fn unknown_variant(by_repo: &HashMap<String, Vec<String>>, reference: &str) -> Option<Error> {
    let wanted = crate::util::reference::repository(reference);
    let mut candidates = by_repo.get(wanted)?.clone();
    if candidates.iter().any(|c| c == reference) {
        return None;
    }
    candidates.sort();
    Some(
        Error::input(format!(
            "`{reference}` is a tag of `{wanted}`, a repository this tree builds, and no image of the tree produces it"
        ))
        .help(format!("the tree builds {}; fix the tag (or add an image with `repository:`/`tag:` for it)", candidates.join(", "))),
    )
}

/// The images form a cycle: the path, and where each image uses the next.
fn cycle_error(
    cycle: &[usize],
    nodes: &[Node],
    images: &[Image],
    edge_lines: &HashMap<(usize, usize), usize>,
) -> Error {
    let path: Vec<&str> = cycle.iter().map(|&i| nodes[i].name.as_str()).collect();
    let wheres: Vec<String> = cycle
        .windows(2)
        .map(|w| {
            format!(
                "`{}` uses `{}` at {}:{}",
                nodes[w[1]].name,
                nodes[w[0]].name,
                images[w[1]].dockerfile_path(),
                edge_lines[&(w[0], w[1])]
            )
        })
        .collect();
    Error::input(format!("the images form a cycle: {}", path.join(" → "))).help(format!(
        "an image cannot be built on itself, directly or through others; remove one of these uses:\n{}",
        wheres.join("\n")
    ))
}

/// What a reference in the tree's namespace is checked against.
struct Tree<'a> {
    config: &'a Config,
    images: &'a [Image],
    left_out: &'a LeftOut,
    /// `namespace/prefix`.
    prefix: &'a str,
}

impl Tree<'_> {
    /// `image` uses `reference`, in the tree's namespace, that names no
    /// image of the tree as built (`name` is its image part): say why.
    fn no_such_image(&self, image: &Image, reference: &str, name: &str) -> Error {
        let (images, prefix) = (self.images, self.prefix);
        if let Ok(j) = images.binary_search_by(|x| x.name.as_str().cmp(name)) {
            return Error::input(format!("image `{}` uses `{reference}`, image `{name}` of this tree at another tag or registry", image.name))
                .help(format!("the tree builds `{}`; use `{{{{ image_ref(\"{name}\") }}}}` to refer to it", images[j].reference(self.config)));
        }
        if self.left_out.disabled.iter().any(|d| d == name) {
            return Error::input(format!(
                "image `{}` is built on `{name}`, which is disabled",
                image.name
            ))
            .help(format!(
                "enable `{name}` (remove `enabled: false` from its image.yaml) or disable `{}` too",
                image.name
            ));
        }
        if self.left_out.excluded.iter().any(|d| d == name) {
            return Error::input(format!("image `{}` is built on `{name}`, which is excluded", image.name))
                .help(format!("exclude `{}` too (`exclude:` in strata.yaml or `--exclude`), or stop excluding `{name}`", image.name));
        }
        let hint =
            did_you_mean(name, images.iter().map(|x| x.name.as_str())).unwrap_or_else(|| {
                "check the image name, or move this base out of the tree's namespace".into()
            });
        Error::input(format!("image `{}` uses `{reference}`: it is in this tree's namespace (`{prefix}`), but no image is named `{name}`", image.name))
            .help(hint)
    }
}

/// Topological order of the DAG, ready images taken by name (ids are in
/// name order); on a cycle, the cycle as a path that starts and ends at the
/// same id. petgraph finds whether there is one.
fn topological_order(dag: &DiGraph<usize, ()>) -> std::result::Result<Vec<usize>, Vec<usize>> {
    use petgraph::Direction::{Incoming, Outgoing};
    if let Err(cycle) = petgraph::algo::toposort(dag, None) {
        return Err(cycle_through(dag, cycle.node_id()));
    }
    let mut missing: Vec<usize> = dag
        .node_indices()
        .map(|n| dag.neighbors_directed(n, Incoming).count())
        .collect();
    let mut ready: BTreeSet<usize> = (0..missing.len()).filter(|&i| missing[i] == 0).collect();
    let mut order = Vec::with_capacity(missing.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for c in dag.neighbors_directed(NodeIndex::new(i), Outgoing) {
            missing[c.index()] -= 1;
            if missing[c.index()] == 0 {
                ready.insert(c.index());
            }
        }
    }
    Ok(order)
}

/// A cycle through `start`, as ids from the smallest name round to itself.
fn cycle_through(dag: &DiGraph<usize, ()>, start: NodeIndex) -> Vec<usize> {
    // The nodes of start's strongly connected component all lie on cycles;
    // follow parents inside it until one repeats.
    let scc = petgraph::algo::kosaraju_scc(dag)
        .into_iter()
        .find(|c| c.contains(&start))
        .unwrap_or_else(|| vec![start]);
    let mut path = vec![start];
    let mut at = start;
    loop {
        let Some(next) = dag
            .neighbors_directed(at, petgraph::Direction::Incoming)
            .filter(|p| scc.contains(p))
            .min()
        else {
            return vec![start.index(), start.index()];
        };
        at = next;
        if let Some(pos) = path.iter().position(|&p| p == at) {
            let mut cycle: Vec<usize> = path[pos..].iter().map(|n| n.index()).collect();
            cycle.reverse();
            // Start at the smallest name for a stable message.
            let min = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, &i)| i)
                .map_or(0, |(k, _)| k);
            cycle.rotate_left(min);
            cycle.push(cycle[0]);
            return cycle;
        }
        path.push(at);
    }
}
