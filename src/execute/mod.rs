//! Stage 5, execute, with the test step. Takes the plan and an engine
//! per record (`pool`: which engine builds what); builds, pushes and
//! tests (`tasks`, `imagetest`), parents first, and ends each image in
//! one state (`ends`, `outcome`). Gives the `Run`: one outcome per plan
//! item, which publish (stage 6) and the report read.
//!
//! The scheduler: runs a plan on an engine. Items to skip are up to date at
//! once; items to build start as soon as their parents are built, at most
//! `jobs` at once, the one with the longest (weighted) chain of descendants
//! first. One loop owns all state and all observer calls; build and push
//! tasks only send messages. Outcomes are index-aligned with the plan's items.
//! Knows nothing of Docker, templates or terminals. See "Build states" in
//! docs/scheduler.md and the state machine in docs/architecture.md.

use crate::engine::{Engine, EngineError};
use crate::plan::{Action, Item};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

mod ends;
pub mod imagetest;
mod outcome;
mod pool;
mod tasks;
pub use outcome::{clip_line, Event, Indexed, Observer, Outcome, Run, Status};
pub use pool::Pool;

/// How often each engine of a pool is asked whether it answers, and how
/// long it has to answer.
const HEALTH_EVERY: Duration = Duration::from_secs(10);

/// Lines of each image's log kept for its outcome (shown under a failure).
pub const TAIL_LINES: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Longest chain of descendants first.
    CriticalPath,
    /// In the order items became ready.
    Fifo,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    pub retries: u32,
    pub fail_fast: bool,
    pub push: bool,
    pub push_jobs: usize,
    /// With `push`: move each image's release tags in the registry as soon
    /// as it is uploaded (`build.publish: each`); otherwise they move only
    /// on this engine, and the registry's are left to the publish step.
    pub publish_each: bool,
    pub order: Order,
    /// Expected relative duration of each item (for the critical path); None = 1 each.
    pub weights: Option<Vec<f64>>,
    /// Items to cancel mid-run, when they are told (`strata watch`: a newer
    /// edit made them stale); the rest run to their end.
    pub stale: Option<Arc<Stale>>,
}

/// Items of a running plan to cancel: what a newer edit made stale. The
/// run aborts their builds at the engine and cancels what waits on them.
#[derive(Debug, Default)]
pub struct Stale {
    items: std::sync::Mutex<Vec<usize>>,
    told: tokio::sync::Notify,
}

impl Stale {
    /// Cancel these items (plan indexes) of the run, if it still runs them.
    pub fn cancel(&self, items: impl IntoIterator<Item = usize>) {
        if let Ok(mut stale) = self.items.lock() {
            stale.extend(items);
        }
        self.told.notify_one();
    }

    fn take(&self) -> Vec<usize> {
        self.items
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

/// Resolves when items are told stale (never without a `Stale`).
async fn told(stale: Option<&Stale>) {
    match stale {
        Some(s) => s.told.notified().await,
        None => std::future::pending().await,
    }
}

enum Msg {
    Line(usize, String),
    Built(usize, Result<String, EngineError>, Duration, u32),
    /// The content tag is in the registry (with its digest, in a pool).
    Uploaded(usize, Result<(), EngineError>, Duration, Option<String>),
    /// The item's engine stopped answering during its step (a pool only).
    Lost(usize, String),
    /// The release tags moved (those in the list), or one failed.
    Released(usize, Result<(), EngineError>, Vec<String>, Duration),
    /// An image only in the registry was pulled by digest and tagged.
    Fetched(usize, Result<(), EngineError>, Duration),
    /// An image's tests ran (before its `Built`).
    /// With the ID of the image tested.
    Tested(usize, Vec<imagetest::TestResult>, String),
}

impl Msg {
    fn item(&self) -> usize {
        match *self {
            Msg::Line(i, ..)
            | Msg::Built(i, ..)
            | Msg::Uploaded(i, ..)
            | Msg::Lost(i, ..)
            | Msg::Released(i, ..)
            | Msg::Fetched(i, ..)
            | Msg::Tested(i, ..) => i,
        }
    }
}

/// The state of one item; see docs/architecture.md.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Waiting for parents (or for a slot, once ready).
    Waiting,
    Running,
    /// Built; its content tag is being uploaded (`--push`).
    Pushing,
    /// Uploaded; its release tags are moving. Never aborted.
    Releasing,
    Done,
}

/// Longest weighted path from each item to a leaf, the item itself included.
pub fn priorities(items: &[Item], weights: Option<&[f64]>) -> Vec<f64> {
    let children = children(items);
    let mut prio = vec![0.0; items.len()];
    // Items come parents first, so children are done when walked backwards.
    for i in (0..items.len()).rev() {
        let own = weights.map_or(1.0, |w| w[i]);
        prio[i] = own + children[i].iter().map(|&c| prio[c]).fold(0.0, f64::max);
    }
    prio
}

fn children(items: &[Item]) -> Vec<Vec<usize>> {
    let mut children = vec![Vec::new(); items.len()];
    for (i, item) in items.iter().enumerate() {
        for &p in &item.parents {
            children[p].push(i);
        }
    }
    children
}

#[derive(PartialEq)]
struct Ready(f64, usize);
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

/// Everything the loop knows of one item: one record per image, changed
/// only by the loop (its state only through `set_state`).
struct Slot {
    state: State,
    /// Parents it still waits for.
    missing: usize,
    /// How it ended, or (while pushing or releasing) how its build ended.
    outcome: Option<Outcome>,
    /// The last `TAIL_LINES` lines of its log.
    tail: VecDeque<String>,
    /// When its step started (RFC 3339).
    started: Option<String>,
    /// Its test verdicts, until it finishes.
    tested: Vec<imagetest::TestResult>,
    /// Its task, to abort it when its engine goes down.
    handle: Option<tokio::task::AbortHandle>,
    /// The registry digest of its content tag, once known.
    digest: Option<String>,
    /// Cancelled as stale: what its aborted task still sends is dropped.
    stale: bool,
}

impl Slot {
    /// An item waiting for its parents.
    fn new(item: &Item) -> Slot {
        Slot {
            state: State::Waiting,
            missing: item.parents.len(),
            outcome: None,
            tail: VecDeque::new(),
            started: None,
            tested: Vec::new(),
            handle: None,
            digest: item.published.clone(),
            stale: false,
        }
    }
}

/// All state of one run, owned by the loop in `execute`.
struct Scheduler<'a> {
    items: &'a [Item],
    /// The items as tasks share them (one copy per run, not per task).
    shared: Vec<Arc<Item>>,
    slots: Vec<Slot>,
    opts: &'a Options,
    observer: &'a mut dyn Observer,
    /// The engines, and where each item runs.
    place: pool::Placement,
    /// Engines lost during the run, with why.
    lost: Vec<(String, String)>,
    prio: Vec<f64>,
    children: Vec<Vec<usize>>,
    heap: BinaryHeap<Ready>,
    fifo: VecDeque<usize>,
    tasks: JoinSet<()>,
    /// Release-tag moves: short, and never aborted, so an interrupt never
    /// leaves an image's tags half moved.
    releasing: JoinSet<()>,
    tx: mpsc::UnboundedSender<Msg>,
    push_slots: Arc<tokio::sync::Semaphore>,
    stopping: bool,
}

impl<'a> Scheduler<'a> {
    fn new(
        items: &'a [Item],
        pool: Pool,
        opts: &'a Options,
        observer: &'a mut dyn Observer,
        tx: mpsc::UnboundedSender<Msg>,
    ) -> Scheduler<'a> {
        Scheduler {
            items,
            shared: items.iter().cloned().map(Arc::new).collect(),
            slots: items.iter().map(Slot::new).collect(),
            opts,
            observer,
            place: pool::Placement::new(pool, items),
            lost: Vec::new(),
            prio: priorities(items, opts.weights.as_deref()),
            children: children(items),
            heap: BinaryHeap::new(),
            fifo: VecDeque::new(),
            tasks: JoinSet::new(),
            releasing: JoinSet::new(),
            tx,
            push_slots: Arc::new(tokio::sync::Semaphore::new(opts.push_jobs.max(1))),
            stopping: false,
        }
    }

    fn ready(&mut self, i: usize) {
        match self.opts.order {
            Order::CriticalPath => self.heap.push(Ready(self.prio[i], i)),
            Order::Fifo => self.fifo.push_back(i),
        }
    }

    fn next_ready(&mut self) -> Option<usize> {
        match self.opts.order {
            Order::CriticalPath => self.heap.pop().map(|r| r.1),
            Order::Fifo => self.fifo.pop_front(),
        }
    }

    /// Every change of an item's state goes through here (see the state
    /// machine in docs/architecture.md); a change it does not allow is a bug.
    fn set_state(&mut self, i: usize, to: State) {
        use State::*;
        let from = self.slots[i].state;
        debug_assert!(
            matches!(
                (from, to),
                (Waiting, Running | Pushing | Done)
                    | (Running, Pushing | Done | Waiting)
                    | (Pushing, Releasing | Done | Waiting)
                    | (Releasing, Done | Waiting)
            ),
            "item {i}: {from:?} -> {to:?}"
        );
        self.slots[i].state = to;
    }

    /// The one place an item ends: record its outcome and tell the observer
    /// (an item up to date from the start is no news to it).
    fn finish(&mut self, i: usize, mut outcome: Outcome) {
        let news = !(self.slots[i].state == State::Waiting && outcome.status == Status::UpToDate);
        self.set_state(i, State::Done);
        let slot = &mut self.slots[i];
        if let Some(at) = slot.started.take() {
            outcome.started_at = Some(at);
            outcome.finished_at = Some(crate::util::clock::now_rfc3339_millis());
        }
        outcome.tail = std::mem::take(&mut slot.tail);
        outcome.tests = std::mem::take(&mut slot.tested);
        outcome.engine = self.place.name_of(i);
        let item = &self.items[i];
        if item.action == crate::plan::Action::Build && self.place.placed(i).is_some() {
            let engine = self.place.engine_of(i);
            outcome.builder = Some(engine.builder(item.request.builder).name());
        }
        if news {
            let event = Event::Finished {
                item: i,
                outcome: &outcome,
            };
            self.observer.event(self.items, event);
        }
        self.slots[i].outcome = Some(outcome);
    }

    /// Items to skip are up to date before anything starts, except those
    /// that must first be pulled (only in the registry, something to build
    /// on them) or, with `--push`, uploaded (the registry lacks them): their
    /// children wait for that. An item to build is ready once every parent
    /// is done.
    fn skip_up_to_date(&mut self) {
        for i in 0..self.items.len() {
            let item = &self.items[i];
            if item.action != Action::Skip {
                continue;
            }
            let mut o = Outcome::new(Status::UpToDate);
            o.digest = item.published.clone().or(item.published_digest.clone());
            o.image_id = item.image_id.clone();
            // Several engines: what is only in the registry is pulled by
            // digest where something is built on it, not here.
            if item.fetch && !self.place.several() {
                self.set_state(i, State::Running);
                self.slots[i].outcome = Some(o);
                let task = tasks::fetch(
                    i,
                    self.shared[i].clone(),
                    self.place.engine_of(i),
                    self.tx.clone(),
                );
                self.spawn_for(i, task);
            } else if self.opts.push && item.published.is_none() {
                if let Some(e) = self.place.holder(i) {
                    self.place.place(i, e);
                }
                self.set_state(i, State::Pushing);
                o.image_id = Some(item.reference.clone());
                self.slots[i].outcome = Some(o);
                self.observer.event(self.items, Event::Pushing { item: i });
                self.upload(i, Some(item.reference.clone()));
            } else {
                self.finish(i, o);
                for k in 0..self.children[i].len() {
                    self.slots[self.children[i][k]].missing -= 1;
                }
            }
        }
        for i in 0..self.items.len() {
            if self.slots[i].state == State::Waiting && self.slots[i].missing == 0 {
                self.ready(i);
            }
        }
    }

    /// Upload item `i` under its content tag (`source`: an existing image
    /// that gets the tag first).
    fn upload(&mut self, i: usize, source: Option<String>) {
        let task = tasks::upload(
            i,
            self.shared[i].clone(),
            source,
            self.on(i),
            self.push_slots.clone(),
            self.tx.clone(),
        );
        self.spawn_for(i, task);
    }

    fn fetched(&mut self, i: usize, result: Result<(), EngineError>, took: Duration) {
        let Some(mut o) = self.slots[i].outcome.take() else {
            return;
        };
        o.duration = took;
        self.end_step(i, o, result);
    }

    fn release_children(&mut self, i: usize) {
        for k in 0..self.children[i].len() {
            let c = self.children[i][k];
            self.slots[c].missing -= 1;
            if self.slots[c].missing == 0 && self.slots[c].state == State::Waiting {
                self.ready(c);
            }
        }
    }

    /// Run item `i`'s build, test or upload task.
    fn spawn_for(
        &mut self,
        i: usize,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.slots[i].handle = Some(self.tasks.spawn(task));
    }

    /// Ask every engine still in the run whether it answers (a pool only),
    /// one question per engine at a time.
    fn check_engines(&mut self, checks: &mut JoinSet<(usize, bool)>, asking: &mut [bool]) {
        for (e, engine) in self.place.to_check() {
            if std::mem::replace(&mut asking[e], true) {
                continue;
            }
            checks.spawn(async move {
                let answer = tokio::time::timeout(HEALTH_EVERY, engine.ping()).await;
                (e, matches!(answer, Ok(Ok(()))))
            });
        }
    }

    /// The engine item `i` runs on, for a task.
    fn on(&self, i: usize) -> tasks::On {
        tasks::On {
            engine: self.place.engine_of(i),
            pool: self.place.several(),
        }
    }

    /// Start ready items, highest priority first, each on the engine with
    /// a free slot that holds most of its parents. An item whose engines
    /// are all busy waits without holding back the items after it that
    /// another engine can take (an arm64 build never idles the amd64 one).
    fn start_ready(&mut self) {
        let mut waiting = Vec::new();
        while !self.stopping && self.place.any_free() {
            let Some(i) = self.next_ready() else { break };
            if self.slots[i].state != State::Waiting {
                continue; // cancelled as stale while in line
            }
            let item = &self.items[i];
            let Some(e) = self.place.choose(&item.parents, &item.request.platform) else {
                waiting.push(i);
                continue;
            };
            self.place.start(i, e);
            self.set_state(i, State::Running);
            self.slots[i].started = Some(crate::util::clock::now_rfc3339_millis());
            self.observer.event(self.items, Event::Started { item: i });
            if self.place.several() {
                let text = format!("strata: on engine {}", self.place.name(e));
                self.line(i, &text);
            }
            let item = self.shared[i].clone();
            // Parents this engine lacks: pulled by digest before the build.
            let missing: Vec<tasks::Pinned> = match self.place.several() {
                false => Vec::new(),
                true => item
                    .parents
                    .iter()
                    .filter(|&&p| !self.place.holds(e, p))
                    .map(|&p| tasks::Pinned {
                        item: self.shared[p].clone(),
                        digest: self.slots[p].digest.clone().unwrap_or_default(),
                    })
                    .collect(),
            };
            if item.action == Action::Test {
                // Pulled by digest first unless this engine holds it.
                let pinned = match self.place.several() {
                    true => (!self.place.holds(e, i)).then(|| self.slots[i].digest.clone()),
                    false => (!item.local).then(|| item.published.clone()),
                };
                let pinned = pinned.map(|d| tasks::Pinned {
                    item: item.clone(),
                    digest: d.unwrap_or_default(),
                });
                let task = tasks::test_existing(i, item, self.on(i), pinned, self.tx.clone());
                self.spawn_for(i, task);
            } else {
                let task = tasks::build(
                    i,
                    item,
                    self.on(i),
                    missing,
                    self.opts.retries,
                    self.opts.push,
                    self.tx.clone(),
                );
                self.spawn_for(i, task);
            }
        }
        // Back where they were: first in line when a slot frees.
        match self.opts.order {
            Order::CriticalPath => waiting.into_iter().for_each(|i| self.ready(i)),
            Order::Fifo => waiting
                .into_iter()
                .rev()
                .for_each(|i| self.fifo.push_front(i)),
        }
    }

    fn stop(&mut self) {
        self.stopping = true;
        self.tasks.abort_all();
    }

    fn line(&mut self, i: usize, line: &str) {
        let tail = &mut self.slots[i].tail;
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(clip_line(line).into_owned());
        self.observer
            .event(self.items, Event::Line { item: i, line });
    }
}

/// Run every item of a plan. `interrupt` resolves when the user asks to stop.
pub async fn execute(
    items: &[Item],
    engine: Arc<dyn Engine>,
    opts: &Options,
    observer: &mut dyn Observer,
    interrupt: impl std::future::Future<Output = ()>,
) -> Run {
    execute_on(
        items,
        Pool::one(engine, opts.jobs),
        opts,
        observer,
        interrupt,
    )
    .await
}

/// Run every item of a plan over the engines of `pool` (`opts.jobs` is
/// not used: each engine has its own slots). With several, every item's
/// step includes the upload of its content tag (`opts.push`), the hand-off
/// to engines that build on it.
pub async fn execute_on(
    items: &[Item],
    pool: Pool,
    opts: &Options,
    observer: &mut dyn Observer,
    interrupt: impl std::future::Future<Output = ()>,
) -> Run {
    let start = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut s = Scheduler::new(items, pool, opts, observer, tx);
    s.skip_up_to_date();
    let mut interrupted = false;
    tokio::pin!(interrupt);
    // With several engines each is asked every HEALTH_EVERY whether it
    // answers: one that fails twice running is down, even when no step of
    // its own has failed (a hung engine, a cut network).
    let mut health = tokio::time::interval(HEALTH_EVERY);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checks: JoinSet<(usize, bool)> = JoinSet::new();
    let mut asking = vec![false; s.place.len()];
    loop {
        s.start_ready();
        while s.tasks.try_join_next().is_some() {}
        while s.releasing.try_join_next().is_some() {}
        if s.tasks.is_empty() && s.releasing.is_empty() && rx.is_empty() {
            break;
        }
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = &mut interrupt, if !interrupted => {
                interrupted = true;
                s.stop();
                None
            }
            // Reap finished tasks, or the set never empties.
            Some(_) = s.tasks.join_next() => None,
            Some(_) = s.releasing.join_next() => None,
            _ = health.tick(), if s.place.several() && !s.stopping => {
                s.check_engines(&mut checks, &mut asking);
                None
            }
            _ = told(opts.stale.as_deref()), if !s.stopping => {
                let items = opts.stale.as_deref().map(Stale::take).unwrap_or_default();
                s.cancel_stale(&items);
                None
            }
            Some(Ok((e, answered))) = checks.join_next() => {
                asking[e] = false;
                if s.place.answered(e, answered) {
                    let why = format!(
                        "no answer to a ping within {} s, twice running",
                        HEALTH_EVERY.as_secs()
                    );
                    s.engine_down(e, why);
                }
                None
            }
        };
        match msg {
            Some(msg) => s.handle(msg),
            None if s.stopping => {
                // Aborted tasks: drain what is left. Tag moves under way end
                // by themselves; `wind_up` reads what they report.
                while s.tasks.join_next().await.is_some() {}
                while s.releasing.join_next().await.is_some() {}
                break;
            }
            None => {}
        }
    }
    s.wind_up(&mut rx);
    Run {
        all_lost: s.place.all_lost(),
        lost: s.lost,
        outcomes: s
            .slots
            .into_iter()
            .filter_map(|slot| slot.outcome)
            .collect(),
        interrupted,
        wall: start.elapsed(),
        notes: Vec::new(),
        indexes: Vec::new(),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod pool_tests;
#[cfg(test)]
mod tests;
