//! Where each item runs when a run has several engines: their free slots,
//! which items each holds, and the engines lost on the way. With one
//! engine every item runs on it and it holds everything it needs.

use crate::engine::pool::Member;
use crate::engine::Engine;
use std::sync::Arc;

/// The engines a plan runs on (what each holds up to date is on the items:
/// `Item::held_on`).
pub struct Pool {
    pub members: Vec<Member>,
}

impl Pool {
    /// One engine, `jobs` builds at once.
    pub fn one(engine: Arc<dyn Engine>, jobs: usize) -> Pool {
        Pool {
            members: vec![Member {
                name: String::new(),
                engine,
                jobs,
                platforms: Vec::new(),
                emulated: Vec::new(),
                listed: false,
                probed: Vec::new(),
            }],
        }
    }
}

pub(super) struct Placement {
    members: Vec<Member>,
    /// Builds running on each engine.
    running: Vec<usize>,
    lost: Vec<bool>,
    holds: Vec<Vec<bool>>,
    /// The engine each item runs (or ran) its step on.
    placed: Vec<Option<usize>>,
    /// Items holding a build slot.
    in_slot: Vec<bool>,
    /// Health checks each engine failed in a row.
    misses: Vec<u32>,
}

impl Placement {
    pub(super) fn new(pool: Pool, plan: &[crate::plan::Item]) -> Placement {
        let (n, items) = (pool.members.len(), plan.len());
        let mut holds = vec![vec![false; items]; n];
        for (i, item) in plan.iter().enumerate() {
            for &e in item.held_on.iter().filter(|&&e| e < n) {
                holds[e][i] = true;
            }
        }
        Placement {
            running: vec![0; n],
            lost: vec![false; n],
            members: pool.members,
            holds,
            placed: vec![None; items],
            in_slot: vec![false; items],
            misses: vec![0; n],
        }
    }

    /// More than one engine: images pass between them through the registry.
    pub(super) fn several(&self) -> bool {
        self.members.len() > 1
    }

    pub(super) fn any_free(&self) -> bool {
        (0..self.members.len()).any(|e| self.free(e))
    }

    fn free(&self, e: usize) -> bool {
        !self.lost[e] && self.running[e] < self.members[e].jobs.max(1)
    }

    /// An engine with a free slot that builds `platform`, for an item
    /// built on `parents`: the one that holds most of them (fewest pulls),
    /// then the one with most free slots, then the first named.
    pub(super) fn choose(&self, parents: &[usize], platform: &str) -> Option<usize> {
        (0..self.members.len())
            .filter(|&e| self.free(e) && self.members[e].builds(platform))
            .max_by_key(|&e| {
                let held = parents.iter().filter(|&&p| self.holds[e][p]).count();
                let free = self.members[e].jobs.max(1) - self.running[e];
                (held, free, std::cmp::Reverse(e))
            })
    }

    /// Item `i` takes a slot on engine `e`.
    pub(super) fn start(&mut self, i: usize, e: usize) {
        self.running[e] += 1;
        self.in_slot[i] = true;
        self.placed[i] = Some(e);
    }

    /// Item `i` gives its slot back (its build ended).
    pub(super) fn release_slot(&mut self, i: usize) {
        if std::mem::take(&mut self.in_slot[i]) {
            if let Some(e) = self.placed[i] {
                self.running[e] -= 1;
            }
        }
    }

    /// Item `i`'s upload runs on engine `e` (no slot taken).
    pub(super) fn place(&mut self, i: usize, e: usize) {
        self.placed[i] = Some(e);
    }

    pub(super) fn placed(&self, i: usize) -> Option<usize> {
        self.placed[i]
    }

    pub(super) fn engine_of(&self, i: usize) -> Arc<dyn Engine> {
        self.members[self.placed[i].unwrap_or(0)].engine.clone()
    }

    /// The name of the engine item `i` ran on, in a run over several.
    pub(super) fn name_of(&self, i: usize) -> Option<String> {
        let e = self.placed[i]?;
        self.several().then(|| self.members[e].name.clone())
    }

    pub(super) fn name(&self, e: usize) -> &str {
        &self.members[e].name
    }

    pub(super) fn holds(&self, e: usize, i: usize) -> bool {
        self.holds[e][i]
    }

    pub(super) fn hold(&mut self, e: usize, i: usize) {
        self.holds[e][i] = true;
    }

    /// The first engine still answering that holds item `i`.
    pub(super) fn holder(&self, i: usize) -> Option<usize> {
        (0..self.members.len()).find(|&e| !self.lost[e] && self.holds[e][i])
    }

    /// Engine `e` stopped answering: it holds nothing and takes nothing
    /// more. True when it was not known lost before.
    pub(super) fn lose(&mut self, e: usize) -> bool {
        let first = !self.lost[e];
        self.lost[e] = true;
        self.holds[e].iter_mut().for_each(|h| *h = false);
        first
    }

    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// The engines still in the run, to ask whether they answer.
    pub(super) fn to_check(&self) -> Vec<(usize, Arc<dyn Engine>)> {
        (0..self.members.len())
            .filter(|&e| !self.lost[e])
            .map(|e| (e, self.members[e].engine.clone()))
            .collect()
    }

    /// Record a health check of engine `e`; true when it has now failed
    /// two in a row (and is not known lost already).
    pub(super) fn answered(&mut self, e: usize, ok: bool) -> bool {
        self.misses[e] = if ok { 0 } else { self.misses[e] + 1 };
        !self.lost[e] && self.misses[e] >= 2
    }

    pub(super) fn all_lost(&self) -> bool {
        self.lost.iter().all(|&l| l)
    }
}
