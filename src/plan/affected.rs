//! Which images a change to some paths would rebuild: the images whose
//! inputs (listed once by `inputs`) hold a changed path, plus everything
//! built on them. Knows nothing of engines or fingerprints.

use crate::graph::Graph;
use crate::plan::inputs::Inputs;
use std::collections::BTreeSet;

/// Ids of the images a change to `paths` (relative to the tree root) affects,
/// descendants included.
pub fn affected(graph: &Graph, inputs: &[Inputs], paths: &[String]) -> BTreeSet<usize> {
    let clean: Vec<&str> = paths
        .iter()
        .map(|p| p.trim_start_matches("./").trim_end_matches('/'))
        .collect();
    let mut out = BTreeSet::new();
    for (id, input) in inputs.iter().enumerate() {
        if clean.iter().any(|p| input.touched_by(p)) {
            out.extend(graph.descendants(id));
        }
    }
    out
}
