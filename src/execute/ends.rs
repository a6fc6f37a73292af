//! How each step ends: a build, an upload, a tag move, a fetch, a lost
//! engine; failures and what they do to the items waiting; and the wind-up
//! after the loop. Part of the scheduler's one loop (`mod.rs`), which owns
//! all state; nothing here runs in a task.

use super::{tasks, Event};
use super::{Msg, Outcome, Scheduler, State, Status};
use crate::engine::EngineError;
use crate::plan::Action;
use std::time::Duration;
use tokio::sync::mpsc;

impl Scheduler<'_> {
    /// A build ended. Without `--push` that ends the item's step; with it,
    /// the upload starts and children wait for the whole step.
    fn built(
        &mut self,
        i: usize,
        result: Result<String, EngineError>,
        took: Duration,
        attempts: u32,
    ) {
        self.place.release_slot(i);
        if result.is_ok() {
            // The engine now holds the item and every parent it was built on.
            if let Some(e) = self.place.placed(i) {
                self.place.hold(e, i);
                for k in 0..self.items[i].parents.len() {
                    self.place.hold(e, self.items[i].parents[k]);
                }
            }
        }
        // An up-to-date image that was only tested stays up to date.
        let tested_only = self.items[i].action == Action::Test;
        let mut o = Outcome::new(if tested_only {
            Status::UpToDate
        } else {
            Status::Built
        });
        o.duration = took;
        o.attempts = attempts;
        o.digest = self.items[i].published.clone();
        match result {
            Ok(id) => o.image_id = Some(id),
            Err(e) => return self.fail(i, o, e),
        }
        if self.opts.push && !(tested_only && self.items[i].published.is_some()) {
            self.set_state(i, State::Pushing);
            self.observer.event(self.items, Event::Pushing { item: i });
            self.upload(i, None);
            self.slots[i].outcome = Some(o);
        } else {
            self.finish(i, o);
            self.release_children(i);
        }
    }

    /// The content tag is uploaded: move the release tags, unless the run
    /// is stopping (then no tag moves at all).
    fn uploaded(
        &mut self,
        i: usize,
        result: Result<(), EngineError>,
        took: Duration,
        digest: Option<String>,
    ) {
        let Some(mut o) = self.slots[i].outcome.take() else {
            return;
        };
        o.duration += took;
        if digest.is_some() {
            self.slots[i].digest = digest.clone();
            o.digest = o.digest.or(digest);
        }
        if let Err(e) = result {
            return self.fail(i, o, e);
        }
        if self.stopping {
            o.status = Status::Cancelled;
            o.error = Some("cancelled after the upload; no tag was moved".into());
            return self.finish(i, o);
        }
        self.set_state(i, State::Releasing);
        let id = o.image_id.clone().unwrap_or_default();
        self.slots[i].outcome = Some(o);
        self.releasing.spawn(tasks::release(
            i,
            self.shared[i].clone(),
            id,
            self.on(i),
            self.opts.publish_each,
            self.tx.clone(),
        ));
    }

    fn released(
        &mut self,
        i: usize,
        result: Result<(), EngineError>,
        moved: Vec<String>,
        took: Duration,
    ) {
        let Some(mut o) = self.slots[i].outcome.take() else {
            return;
        };
        o.duration += took;
        o.pushed = moved;
        self.end_step(i, o, result);
    }

    /// The item's whole step is over: a failure fails it and what waits
    /// on it; success finishes it and lets its children start.
    pub(super) fn end_step(&mut self, i: usize, o: Outcome, result: Result<(), EngineError>) {
        match result {
            Err(e) => self.fail(i, o, e),
            Ok(()) => {
                self.finish(i, o);
                self.release_children(i);
            }
        }
    }

    /// The item's step failed: nothing waiting on it starts.
    fn fail(&mut self, i: usize, mut o: Outcome, e: EngineError) {
        o.status = Status::Failed;
        o.error = Some(e.to_string());
        self.finish(i, o);
        self.fail_descendants(i);
        if self.opts.fail_fast {
            self.stop();
        }
    }

    /// Mark every item waiting on `failed` as parent-failed; none of them starts.
    fn fail_descendants(&mut self, failed: usize) {
        let name = self.items[failed].name.clone();
        self.end_descendants(failed, |o| {
            o.status = Status::ParentFailed;
            o.failed_parent = Some(name.clone());
            o.error = Some(format!("not built: parent `{name}` failed"));
        });
    }

    /// End every item waiting on `i` as `mark` says; none of them starts.
    fn end_descendants(&mut self, i: usize, mark: impl Fn(&mut Outcome)) {
        let stale = self.slots[i].stale;
        let mut todo = self.children[i].clone();
        while let Some(c) = todo.pop() {
            if self.slots[c].state != State::Waiting {
                continue;
            }
            self.slots[c].stale = stale;
            let mut o = Outcome::new(Status::Cancelled);
            mark(&mut o);
            self.finish(c, o);
            todo.extend(self.children[c].clone());
        }
    }

    /// Item `i`'s engine stopped answering: the engine is lost (said once),
    /// and the item goes back to the queue to run elsewhere. When no
    /// engine is left the run stops.
    fn lost(&mut self, i: usize, why: String) {
        if !matches!(
            self.slots[i].state,
            State::Running | State::Pushing | State::Releasing
        ) {
            return;
        }
        self.place.release_slot(i);
        let Some(e) = self.place.placed(i) else {
            return;
        };
        self.lose_engine(e, why);
        self.requeue(i, e);
    }

    /// Engine `e` failed its health checks: it is lost, and every build or
    /// upload running there is aborted and goes back to the queue. (Tag
    /// moves under way are left to end by themselves, as on an interrupt.)
    pub(super) fn engine_down(&mut self, e: usize, why: String) {
        self.lose_engine(e, why);
        for i in 0..self.items.len() {
            if self.place.placed(i) == Some(e)
                && matches!(self.slots[i].state, State::Running | State::Pushing)
            {
                if let Some(task) = self.slots[i].handle.take() {
                    task.abort();
                }
                self.place.release_slot(i);
                self.requeue(i, e);
            }
        }
    }

    /// Say once that engine `e` is lost; it holds nothing from now on.
    /// With no engine left the run stops.
    fn lose_engine(&mut self, e: usize, why: String) {
        if self.place.lose(e) {
            let name = self.place.name(e).to_string();
            let text = format!(
                "strata: engine {name} lost ({why}); what ran there goes back to the queue"
            );
            self.observer.event(self.items, Event::Note { text: &text });
            self.lost.push((name, why));
        }
        if self.place.all_lost() {
            self.stop();
        }
    }

    /// Item `i`'s step ended with its engine `e` lost: back to the queue
    /// (or, with no engine left, the run stops).
    fn requeue(&mut self, i: usize, e: usize) {
        let slot = &mut self.slots[i];
        slot.outcome = None;
        slot.tail.clear();
        slot.tested.clear();
        slot.started = None;
        self.set_state(i, State::Waiting);
        if self.place.all_lost() {
            return self.stop();
        }
        if self.items[i].action == Action::Skip {
            // Up to date only on the lost engine and not yet uploaded.
            let mut o = Outcome::new(Status::Failed);
            o.error = Some(format!(
                "its only up-to-date copy was on engine {}, which was lost before the upload; build it again",
                self.place.name(e)
            ));
            self.finish(i, o);
            self.fail_descendants(i);
            return;
        }
        if !self.stopping {
            self.ready(i);
        }
    }

    /// An item's tests ran: keep the verdicts for its outcome, and
    /// remember a pass of these test files by the image tested (its ID: the
    /// digest of its configuration, the same on every engine that has it).
    fn tested(
        &mut self,
        i: usize,
        results: Vec<crate::execute::imagetest::TestResult>,
        image: &str,
    ) {
        let item = &self.items[i];
        if let (Some(suite), true) = (&item.tests, results.iter().all(|r| r.passed)) {
            crate::plan::history::remember_pass(image, &suite.key);
        }
        self.slots[i].tested = results;
    }

    /// Items a newer edit made stale: a build under way is aborted at the
    /// engine, one waiting never starts, and what waits on either is
    /// cancelled too. Uploads and tag moves are never cut.
    pub(super) fn cancel_stale(&mut self, items: &[usize]) {
        for &i in items {
            let state = self.slots[i].state;
            let building = self.items[i].action != Action::Skip;
            if !matches!(state, State::Waiting | State::Running) || self.slots[i].stale || !building
            {
                continue;
            }
            if let Some(task) = self.slots[i].handle.take() {
                task.abort();
            }
            self.place.release_slot(i);
            self.slots[i].stale = true;
            let mut o = Outcome::new(Status::Cancelled);
            o.error = Some("cancelled: a newer edit made it stale; nothing was tagged".into());
            self.finish(i, o);
            self.cancel_descendants(i);
        }
    }

    fn cancel_descendants(&mut self, stale: usize) {
        let name = self.items[stale].name.clone();
        self.end_descendants(stale, |o| {
            o.error = Some(format!(
                "cancelled: its parent `{name}` was made stale by a newer edit"
            ));
        });
    }

    pub(super) fn handle(&mut self, msg: Msg) {
        if self.slots[msg.item()].stale {
            return; // the last words of an aborted task
        }
        match msg {
            Msg::Line(i, line) => self.line(i, &line),
            Msg::Built(i, result, took, attempts) => self.built(i, result, took, attempts),
            Msg::Uploaded(i, result, took, digest) => self.uploaded(i, result, took, digest),
            Msg::Lost(i, why) => self.lost(i, why),
            Msg::Released(i, result, moved, took) => self.released(i, result, moved, took),
            Msg::Fetched(i, result, took) => self.fetched(i, result, took),
            Msg::Tested(i, results, image) => self.tested(i, results, &image),
        }
    }

    /// After the loop: what finished while stopping keeps its outcome
    /// (an image built for `--push` but not uploaded moved no tag, so it
    /// counts as cancelled); whatever did not finish was cancelled.
    pub(super) fn wind_up(&mut self, rx: &mut mpsc::UnboundedReceiver<Msg>) {
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Built(i, Ok(id), took, attempts) if self.slots[i].outcome.is_none() => {
                    let mut o = Outcome::new(Status::Built);
                    o.image_id = Some(id);
                    o.duration = took;
                    o.attempts = attempts;
                    if self.opts.push {
                        o.status = Status::Cancelled;
                        o.error = Some(
                            "built, then cancelled before the upload; no tag was moved".into(),
                        );
                    }
                    self.finish(i, o);
                }
                Msg::Built(..) => {}
                other => self.handle(other),
            }
        }
        for i in 0..self.items.len() {
            let pushing = self.slots[i].state == State::Pushing;
            if self.slots[i].outcome.is_none() || pushing {
                let mut o = self.slots[i]
                    .outcome
                    .take()
                    .unwrap_or_else(|| Outcome::new(Status::Cancelled));
                o.status = Status::Cancelled;
                if pushing {
                    o.error = Some("cancelled during the upload; no tag was moved".into());
                }
                self.finish(i, o);
            }
        }
    }
}
