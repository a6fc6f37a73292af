//! The scheduler: runs a plan on an engine. Items to skip are up to date at
//! once; items to build start as soon as their parents are built, at most
//! `jobs` at once, the one with the longest (weighted) chain of descendants
//! first. One loop owns all state and all observer calls; build and push
//! tasks only send messages. Outcomes are index-aligned with the plan's items.
//! Knows nothing of Docker, templates or terminals. See "Build states" in
//! docs/scheduler.md and the state machine in docs/architecture.md.

use crate::engine::{Engine, EngineError, Log};
use crate::plan::{Action, Item};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

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
    pub order: Order,
    /// Expected relative duration of each item (for the critical path); None = 1 each.
    pub weights: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Built,
    UpToDate,
    Failed,
    ParentFailed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Built => "built",
            Status::UpToDate => "up-to-date",
            Status::Failed => "failed",
            Status::ParentFailed => "parent-failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether the image is there as asked (built or already up to date).
    pub fn is_ok(self) -> bool {
        matches!(self, Status::Built | Status::UpToDate)
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub image_id: Option<String>,
    /// Time spent building (all attempts) and pushing.
    pub duration: Duration,
    pub error: Option<String>,
    /// For `parent-failed`: the failed ancestor it waited for.
    pub failed_parent: Option<String>,
    pub attempts: u32,
    /// The last `TAIL_LINES` lines of its log.
    pub tail: VecDeque<String>,
}

impl Outcome {
    fn new(status: Status) -> Outcome {
        Outcome {
            status,
            image_id: None,
            duration: Duration::ZERO,
            error: None,
            failed_parent: None,
            attempts: 0,
            tail: VecDeque::new(),
        }
    }
}

/// What the scheduler tells its observer, always from the one loop.
pub enum Event<'a> {
    Started { item: usize },
    Line { item: usize, line: &'a str },
    Pushing { item: usize },
    Finished { item: usize, outcome: &'a Outcome },
}

pub trait Observer {
    fn event(&mut self, items: &[Item], event: Event);
}

/// The result of a run; `outcomes` is index-aligned with the plan's items.
pub struct Run {
    pub outcomes: Vec<Outcome>,
    pub interrupted: bool,
    pub wall: Duration,
}

enum Msg {
    Line(usize, String),
    Built(usize, Result<String, EngineError>, Duration, u32),
    Pushed(usize, Result<(), EngineError>, Duration),
}

/// The state of one item; see docs/architecture.md.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Waiting for parents (or for a slot, once ready).
    Waiting,
    Running,
    Pushing,
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

/// All state of one run, owned by the loop in `execute`.
struct Scheduler<'a> {
    items: &'a [Item],
    opts: &'a Options,
    observer: &'a mut dyn Observer,
    engine: Arc<dyn Engine>,
    prio: Vec<f64>,
    children: Vec<Vec<usize>>,
    /// Parents each item still waits for.
    missing: Vec<usize>,
    state: Vec<State>,
    outcomes: Vec<Option<Outcome>>,
    tails: Vec<VecDeque<String>>,
    heap: BinaryHeap<Ready>,
    fifo: VecDeque<usize>,
    tasks: JoinSet<()>,
    tx: mpsc::UnboundedSender<Msg>,
    push_slots: Arc<tokio::sync::Semaphore>,
    running: usize,
    stopping: bool,
}

impl<'a> Scheduler<'a> {
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

    /// The one place an item ends: record its outcome and tell the observer.
    fn finish(&mut self, i: usize, mut outcome: Outcome) {
        self.state[i] = State::Done;
        outcome.tail = std::mem::take(&mut self.tails[i]);
        self.observer.event(
            self.items,
            Event::Finished {
                item: i,
                outcome: &outcome,
            },
        );
        self.outcomes[i] = Some(outcome);
    }

    /// Items to skip are up to date before anything starts; an item to
    /// build is ready once every parent to build is built.
    fn skip_up_to_date(&mut self) {
        for i in 0..self.items.len() {
            if self.items[i].action == Action::Skip {
                self.state[i] = State::Done;
                self.outcomes[i] = Some(Outcome::new(Status::UpToDate));
                for k in 0..self.children[i].len() {
                    self.missing[self.children[i][k]] -= 1;
                }
            }
        }
        for i in 0..self.items.len() {
            if self.state[i] == State::Waiting && self.missing[i] == 0 {
                self.ready(i);
            }
        }
    }

    fn release_children(&mut self, i: usize) {
        for k in 0..self.children[i].len() {
            let c = self.children[i][k];
            self.missing[c] -= 1;
            if self.missing[c] == 0 && self.state[c] == State::Waiting {
                self.ready(c);
            }
        }
    }

    fn start_ready(&mut self) {
        while !self.stopping && self.running < self.opts.jobs.max(1) {
            let Some(i) = self.next_ready() else { break };
            self.state[i] = State::Running;
            self.running += 1;
            self.observer.event(self.items, Event::Started { item: i });
            self.tasks.spawn(build_task(
                i,
                self.items[i].clone(),
                self.engine.clone(),
                self.opts.retries,
                self.tx.clone(),
            ));
        }
    }

    fn stop(&mut self) {
        self.stopping = true;
        self.tasks.abort_all();
    }

    fn line(&mut self, i: usize, line: &str) {
        let tail = &mut self.tails[i];
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_string());
        self.observer
            .event(self.items, Event::Line { item: i, line });
    }

    fn built(
        &mut self,
        i: usize,
        result: Result<String, EngineError>,
        took: Duration,
        attempts: u32,
    ) {
        self.running -= 1;
        let mut o = Outcome::new(Status::Built);
        o.duration = took;
        o.attempts = attempts;
        match result {
            Ok(id) => o.image_id = Some(id),
            Err(e) => {
                o.status = Status::Failed;
                o.error = Some(e.to_string());
                self.finish(i, o);
                self.fail_descendants(i);
                if self.opts.fail_fast {
                    self.stop();
                }
                return;
            }
        }
        if self.opts.push {
            self.state[i] = State::Pushing;
            self.observer.event(self.items, Event::Pushing { item: i });
            self.tasks.spawn(push_task(
                i,
                self.items[i].clone(),
                self.engine.clone(),
                self.push_slots.clone(),
                self.tx.clone(),
            ));
            self.outcomes[i] = Some(o);
        } else {
            self.finish(i, o);
        }
        self.release_children(i);
    }

    fn pushed(&mut self, i: usize, result: Result<(), EngineError>, took: Duration) {
        let Some(mut o) = self.outcomes[i].take() else {
            return;
        };
        o.duration += took;
        if let Err(e) = result {
            o.status = Status::Failed;
            o.error = Some(e.to_string());
            if self.opts.fail_fast {
                self.stop();
            }
        }
        self.finish(i, o);
    }

    /// Mark every item waiting on `failed` as parent-failed; none of them starts.
    fn fail_descendants(&mut self, failed: usize) {
        let name = self.items[failed].name.clone();
        let mut todo = self.children[failed].clone();
        while let Some(c) = todo.pop() {
            if self.state[c] != State::Waiting {
                continue;
            }
            let mut o = Outcome::new(Status::ParentFailed);
            o.failed_parent = Some(name.clone());
            o.error = Some(format!("not built: parent `{name}` failed"));
            self.finish(c, o);
            todo.extend(self.children[c].clone());
        }
    }

    /// After the loop: builds that finished while stopping keep their
    /// outcome; whatever did not finish was cancelled.
    fn wind_up(&mut self, rx: &mut mpsc::UnboundedReceiver<Msg>) {
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Built(i, Ok(id), took, attempts) = msg {
                if self.outcomes[i].is_none() {
                    let mut o = Outcome::new(Status::Built);
                    o.image_id = Some(id);
                    o.duration = took;
                    o.attempts = attempts;
                    self.finish(i, o);
                }
            }
        }
        for i in 0..self.items.len() {
            let pushing = self.state[i] == State::Pushing;
            if self.outcomes[i].is_none() || pushing {
                let mut o = self.outcomes[i]
                    .take()
                    .unwrap_or_else(|| Outcome::new(Status::Cancelled));
                o.status = Status::Cancelled;
                if pushing {
                    o.error = Some("cancelled while pushing".into());
                }
                self.finish(i, o);
            }
        }
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
    let start = Instant::now();
    let n = items.len();
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut s = Scheduler {
        items,
        opts,
        observer,
        engine,
        prio: priorities(items, opts.weights.as_deref()),
        children: children(items),
        missing: items.iter().map(|j| j.parents.len()).collect(),
        state: vec![State::Waiting; n],
        outcomes: vec![None; n],
        tails: vec![VecDeque::new(); n],
        heap: BinaryHeap::new(),
        fifo: VecDeque::new(),
        tasks: JoinSet::new(),
        tx,
        push_slots: Arc::new(tokio::sync::Semaphore::new(opts.push_jobs.max(1))),
        running: 0,
        stopping: false,
    };
    s.skip_up_to_date();
    let mut interrupted = false;
    tokio::pin!(interrupt);
    loop {
        s.start_ready();
        while s.tasks.try_join_next().is_some() {}
        if s.tasks.is_empty() && rx.is_empty() {
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
        };
        match msg {
            Some(Msg::Line(i, line)) => s.line(i, &line),
            Some(Msg::Built(i, result, took, attempts)) => s.built(i, result, took, attempts),
            Some(Msg::Pushed(i, result, took)) => s.pushed(i, result, took),
            None if s.stopping => {
                // Aborted tasks: drain what is left.
                while s.tasks.join_next().await.is_some() {}
                break;
            }
            None => {}
        }
    }
    s.wind_up(&mut rx);
    Run {
        outcomes: s.outcomes.into_iter().flatten().collect(),
        interrupted,
        wall: start.elapsed(),
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

fn line_sink(i: usize, tx: &mpsc::UnboundedSender<Msg>) -> Log {
    let tx = tx.clone();
    Arc::new(move |line: &str| {
        let _ = tx.send(Msg::Line(i, line.to_string()));
    })
}

/// Build one item (with retries), then tag it; nothing is tagged unless the build succeeded.
async fn build_task(
    i: usize,
    item: Item,
    engine: Arc<dyn Engine>,
    retries: u32,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let begun = Instant::now();
    let log = line_sink(i, &tx);
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        let result = engine.build(item.request.clone(), log.clone()).await;
        let result = match result {
            Ok(id) => tag_all(&*engine, &id, &item).await.map(|_| id),
            Err(e) => Err(e),
        };
        match result {
            Err(EngineError::Failed(e)) if attempts <= retries => {
                log(&format!(
                    "strata: attempt {attempts} failed ({e}); retrying ({attempts} of {retries})"
                ));
            }
            other => break other,
        }
    };
    let _ = tx.send(Msg::Built(i, result, begun.elapsed(), attempts));
}

/// Push one built item's reference and extra tags, `slots` pushes at once.
async fn push_task(
    i: usize,
    item: Item,
    engine: Arc<dyn Engine>,
    slots: Arc<tokio::sync::Semaphore>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let _slot = slots.acquire_owned().await;
    let begun = Instant::now();
    let log = line_sink(i, &tx);
    let mut result = Ok(());
    for r in std::iter::once(&item.reference).chain(&item.extra_tags) {
        result = engine.push(r, log.clone()).await.map_err(|e| match e {
            EngineError::Failed(m) => EngineError::Failed(format!("push of `{r}` failed: {m}")),
            other => other,
        });
        if result.is_err() {
            break;
        }
    }
    let _ = tx.send(Msg::Pushed(i, result, begun.elapsed()));
}

async fn tag_all(engine: &dyn Engine, id: &str, item: &Item) -> Result<(), EngineError> {
    for r in std::iter::once(&item.reference).chain(&item.extra_tags) {
        engine.tag(id, r).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sim::{Script, SimEngine, Step};
    use crate::plan::Item;

    struct Record(Vec<(String, &'static str)>);

    impl Observer for Record {
        fn event(&mut self, items: &[Item], event: Event) {
            match event {
                Event::Started { item } => self.0.push((items[item].name.clone(), "started")),
                Event::Finished { item, outcome } => self
                    .0
                    .push((items[item].name.clone(), outcome.status.as_str())),
                _ => {}
            }
        }
    }

    fn job(name: &str, parents: &[usize]) -> Item {
        crate::plan::Item::to_build(name, &format!("t/{name}:latest"), parents)
    }

    fn opts(jobs: usize) -> Options {
        Options {
            jobs,
            retries: 0,
            fail_fast: false,
            push: false,
            push_jobs: 1,
            order: Order::CriticalPath,
            weights: None,
        }
    }

    fn script(steps: &[(&str, Step)]) -> Script {
        Script {
            default_ms: 10,
            images: steps
                .iter()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect(),
        }
    }

    async fn run(
        jobs: &[Item],
        engine: Arc<SimEngine>,
        o: &Options,
    ) -> (Run, Vec<(String, &'static str)>) {
        let mut rec = Record(Vec::new());
        let r = execute(jobs, engine, o, &mut rec, std::future::pending()).await;
        (r, rec.0)
    }

    #[tokio::test(start_paused = true)]
    async fn failure_marks_descendants_and_spares_the_rest() {
        let jobs = [
            job("base", &[]),
            job("bad", &[0]),
            job("child", &[1]),
            job("grand", &[2]),
            job("other", &[0]),
        ];
        let fail = Step {
            fail: true,
            ..Default::default()
        };
        let engine = Arc::new(SimEngine::new(script(&[("bad", fail)])));
        let (r, events) = run(&jobs, engine.clone(), &opts(2)).await;
        let st: Vec<Status> = r.outcomes.iter().map(|o| o.status).collect();
        assert_eq!(
            st,
            [
                Status::Built,
                Status::Failed,
                Status::ParentFailed,
                Status::ParentFailed,
                Status::Built
            ]
        );
        assert_eq!(r.outcomes[3].failed_parent.as_deref(), Some("bad"));
        assert_eq!(
            engine.builds(),
            ["base", "bad", "other"],
            "descendants never start"
        );
        assert!(!events.contains(&("child".into(), "started")));
    }

    #[tokio::test(start_paused = true)]
    async fn fail_fast_cancels_the_rest() {
        let jobs = [
            job("slow", &[]),
            job("bad", &[]),
            job("after", &[0]),
            job("queued", &[]),
        ];
        let engine = Arc::new(SimEngine::new(script(&[
            (
                "slow",
                Step {
                    ms: Some(10_000),
                    ..Default::default()
                },
            ),
            (
                "bad",
                Step {
                    ms: Some(5),
                    fail: true,
                    ..Default::default()
                },
            ),
        ])));
        let mut o = opts(2);
        o.fail_fast = true;
        let (r, _) = run(&jobs, engine.clone(), &o).await;
        let st: Vec<Status> = r.outcomes.iter().map(|o| o.status).collect();
        assert_eq!(
            st,
            [
                Status::Cancelled,
                Status::Failed,
                Status::Cancelled,
                Status::Cancelled
            ]
        );
        assert!(!engine.builds().contains(&"queued".to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_recover_a_flaky_build() {
        let jobs = [job("flaky", &[])];
        let engine = Arc::new(SimEngine::new(script(&[(
            "flaky",
            Step {
                fail_times: 2,
                ..Default::default()
            },
        )])));
        let mut o = opts(1);
        o.retries = 1;
        let (r, _) = run(&jobs, engine.clone(), &o).await;
        assert_eq!(
            r.outcomes[0].status,
            Status::Failed,
            "two failures, one retry"
        );
        let engine = Arc::new(SimEngine::new(script(&[(
            "flaky",
            Step {
                fail_times: 2,
                ..Default::default()
            },
        )])));
        o.retries = 2;
        let (r, _) = run(&jobs, engine.clone(), &o).await;
        assert_eq!(r.outcomes[0].status, Status::Built);
        assert_eq!(r.outcomes[0].attempts, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_j_at_once_and_parents_first() {
        let mut jobs = vec![job("root", &[])];
        for i in 0..20 {
            jobs.push(job(&format!("c{i}"), &[0]));
        }
        let engine = Arc::new(SimEngine::new(script(&[])));
        let (r, events) = run(&jobs, engine, &opts(3)).await;
        assert!(r.outcomes.iter().all(|o| o.status == Status::Built));
        let mut running = 0i32;
        let mut max = 0;
        for (name, what) in &events {
            match *what {
                "started" => running += 1,
                _ => running -= 1,
            }
            max = max.max(running);
            if name != "root" && *what == "started" {
                assert!(
                    events.iter().position(|e| e == &("root".into(), "built"))
                        < events.iter().position(|e| e == &(name.clone(), "started"))
                );
            }
        }
        assert_eq!(max, 3);
        // 1 root + 20 children of 10 ms at -j 3: 10 + ceil(20/3)*10 ms.
        assert_eq!(r.wall.as_millis(), 80);
    }

    #[tokio::test(start_paused = true)]
    async fn critical_path_first() {
        // a → a1 → a2 (long chain), b, c, d leaves: with -j 1 the chain's root goes first.
        let jobs = [
            job("b", &[]),
            job("c", &[]),
            job("a", &[]),
            job("a1", &[2]),
            job("a2", &[3]),
        ];
        let engine = Arc::new(SimEngine::new(script(&[])));
        let (_, events) = run(&jobs, engine.clone(), &opts(1)).await;
        assert_eq!(engine.builds()[0], "a");
        drop(events);
        let engine = Arc::new(SimEngine::new(script(&[])));
        let mut o = opts(1);
        o.order = Order::Fifo;
        run(&jobs, engine.clone(), &o).await;
        assert_eq!(engine.builds()[0], "b");
    }

    #[tokio::test(start_paused = true)]
    async fn push_failure_fails_the_image_but_children_build() {
        let mut parent = job("parent", &[]);
        parent.extra_tags = vec!["t/parent:extra".into()];
        let jobs = [parent, job("child", &[0])];
        let engine = Arc::new(SimEngine::new(script(&[(
            "child",
            Step {
                push_fail: true,
                ..Default::default()
            },
        )])));
        let mut o = opts(2);
        o.push = true;
        let (r, _) = run(&jobs, engine.clone(), &o).await;
        assert_eq!(r.outcomes[0].status, Status::Built);
        assert_eq!(r.outcomes[1].status, Status::Failed);
        assert!(r.outcomes[1]
            .error
            .as_deref()
            .unwrap()
            .contains("push of `t/child:latest` failed"));
        assert_eq!(
            engine.pushes(),
            ["t/parent:latest", "t/parent:extra", "t/child:latest"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn interrupt_cancels_everything_running() {
        let jobs = [job("a", &[]), job("b", &[0])];
        let engine = Arc::new(SimEngine::new(script(&[(
            "a",
            Step {
                ms: Some(60_000),
                ..Default::default()
            },
        )])));
        let mut rec = Record(Vec::new());
        let stop = tokio::time::sleep(Duration::from_millis(100));
        let r = execute(&jobs, engine.clone(), &opts(2), &mut rec, stop).await;
        assert!(r.interrupted);
        assert_eq!(r.outcomes[0].status, Status::Cancelled);
        assert_eq!(r.outcomes[1].status, Status::Cancelled);
        assert!(
            engine.inspect("t/a:latest").await.unwrap().is_none(),
            "nothing tagged"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn up_to_date_items_never_reach_the_engine_and_release_children() {
        let mut base = job("base", &[]);
        base.action = Action::Skip;
        let jobs = [base, job("child", &[0])];
        let engine = Arc::new(SimEngine::new(script(&[])));
        let (r, events) = run(&jobs, engine.clone(), &opts(2)).await;
        assert_eq!(r.outcomes[0].status, Status::UpToDate);
        assert_eq!(r.outcomes[1].status, Status::Built);
        assert_eq!(engine.builds(), ["child"]);
        assert!(
            !events.iter().any(|(n, _)| n == "base"),
            "no event for a skip"
        );
    }

    /// A task that sent its last message but had not completed when the loop
    /// looked must still be reaped: many short runs on real threads all end.
    #[test]
    fn runs_always_end_on_a_multithreaded_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for round in 0..300 {
                let jobs: Vec<Item> = (0..6)
                    .map(|i| job(&format!("j{i}"), if i > 0 { &[0] } else { &[] }))
                    .collect();
                let engine = Arc::new(SimEngine::new(Script {
                    default_ms: 0,
                    images: Default::default(),
                }));
                let o = opts(1 + round % 3);
                let mut rec = Record(Vec::new());
                let run = tokio::time::timeout(
                    Duration::from_secs(10),
                    execute(&jobs, engine, &o, &mut rec, std::future::pending()),
                )
                .await
                .unwrap_or_else(|_| panic!("round {round}: the scheduler hung"));
                assert!(run.outcomes.iter().all(|o| o.status == Status::Built));
            }
        });
    }
}
