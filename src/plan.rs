//! The plan: for each selected image (and, unless `--no-deps`, each stale
//! ancestor), build or skip, and why. An image is up to date when its
//! reference exists and carries the fingerprint computed now.
//! Knows nothing of engines or progress: what exists is passed in.

use crate::fingerprint::{self, Fingerprint};
use crate::graph::Graph;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Build,
    Skip,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: usize,
    pub action: Action,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Parents first.
    pub items: Vec<Item>,
    /// Stale parents left out by `--no-deps`, by name.
    pub stale_outside: Vec<String>,
}

impl Plan {
    pub fn to_build(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.action == Action::Build)
    }
}

/// `existing` maps each reference the engine has to the fingerprint label it
/// carries (empty when it has none).
pub fn plan(
    graph: &Graph,
    selected: &[usize],
    fps: &[Fingerprint],
    existing: &HashMap<String, String>,
    force: bool,
    no_deps: bool,
) -> Plan {
    let stale = |id: usize| existing.get(&graph.nodes[id].reference) != Some(&fps[id].hash);
    let chosen: BTreeSet<usize> = selected.iter().copied().collect();
    let mut scope = chosen.clone();
    let mut stale_outside = BTreeSet::new();
    for &id in selected {
        for a in graph.ancestors(id) {
            if !chosen.contains(&a) && stale(a) {
                if no_deps {
                    stale_outside.insert(graph.nodes[a].name.clone());
                } else {
                    scope.insert(a);
                }
            }
        }
    }
    let mut building = BTreeSet::new();
    let mut items = Vec::new();
    for &id in graph.order.iter().filter(|i| scope.contains(i)) {
        let forced = force && chosen.contains(&id);
        let (action, reasons) = if stale(id) {
            (Action::Build, why(graph, id, fps, existing, &building))
        } else if forced {
            (Action::Build, vec!["forced".to_string()])
        } else {
            (Action::Skip, vec!["up to date".to_string()])
        };
        if action == Action::Build {
            building.insert(id);
        }
        items.push(Item {
            id,
            action,
            reasons,
        });
    }
    Plan {
        items,
        stale_outside: stale_outside.into_iter().collect(),
    }
}

fn why(
    graph: &Graph,
    id: usize,
    fps: &[Fingerprint],
    existing: &HashMap<String, String>,
    building: &BTreeSet<usize>,
) -> Vec<String> {
    let Some(old) = existing.get(&graph.nodes[id].reference) else {
        return vec!["not built yet".into()];
    };
    if old.is_empty() {
        return vec!["the existing image has no strata fingerprint".into()];
    }
    if let Some(manifest) = fingerprint::recall(old) {
        let reasons = fingerprint::explain(&manifest, &fps[id].manifest);
        if !reasons.is_empty() {
            return reasons;
        }
    }
    let parents: Vec<String> = graph.nodes[id]
        .parents
        .iter()
        .filter(|p| building.contains(p))
        .map(|&p| format!("parent {} will be rebuilt", graph.nodes[p].name))
        .collect();
    if parents.is_empty() {
        vec!["inputs changed since it was built (no record of the old inputs in the cache)".into()]
    } else {
        parents
    }
}
