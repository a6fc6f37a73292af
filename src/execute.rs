//! The scheduler: builds jobs on an engine, at most `jobs` at once, each as
//! soon as its parents are built; among ready jobs, the one with the longest
//! (weighted) chain of descendants first. One loop owns all state and all
//! observer calls; build and push tasks only send messages.
//! Knows nothing of Docker, templates or terminals. See "Build states" in
//! docs/scheduler.md.

use crate::engine::{BuildRequest, Engine, EngineError, Log};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// One image to build.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub reference: String,
    /// Extra references tagged (and pushed) after the build.
    pub extra_tags: Vec<String>,
    pub request: BuildRequest,
    /// Indexes of the jobs this one waits for.
    pub parents: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Longest chain of descendants first.
    CriticalPath,
    /// In the order jobs became ready.
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
    /// Expected relative duration of each job (for the critical path); None = 1 each.
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
        }
    }
}

/// What the scheduler tells its observer, always from the one loop.
pub enum Event<'a> {
    Started { job: usize },
    Line { job: usize, line: &'a str },
    Pushing { job: usize },
    Finished { job: usize, outcome: &'a Outcome },
}

pub trait Observer {
    fn event(&mut self, jobs: &[Job], event: Event);
}

/// The result of a run; `outcomes` is index-aligned with the jobs.
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Waiting,
    Running,
    Pushing,
    Done,
}

/// Longest weighted path from each job to a leaf, the job itself included.
pub fn priorities(jobs: &[Job], weights: Option<&[f64]>) -> Vec<f64> {
    let mut children = vec![Vec::new(); jobs.len()];
    for (i, j) in jobs.iter().enumerate() {
        for &p in &j.parents {
            children[p].push(i);
        }
    }
    let mut prio = vec![0.0; jobs.len()];
    // Jobs come parents first, so children are done when walked backwards.
    for i in (0..jobs.len()).rev() {
        let own = weights.map_or(1.0, |w| w[i]);
        prio[i] = own + children[i].iter().map(|&c| prio[c]).fold(0.0, f64::max);
    }
    prio
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

/// Run every job. `interrupt` resolves when the user asks to stop.
pub async fn execute(
    jobs: &[Job],
    engine: Arc<dyn Engine>,
    opts: &Options,
    observer: &mut dyn Observer,
    interrupt: impl std::future::Future<Output = ()>,
) -> Run {
    let start = Instant::now();
    let n = jobs.len();
    let prio = priorities(jobs, opts.weights.as_deref());
    let mut children = vec![Vec::new(); n];
    let mut missing: Vec<usize> = jobs.iter().map(|j| j.parents.len()).collect();
    for (i, j) in jobs.iter().enumerate() {
        for &p in &j.parents {
            children[p].push(i);
        }
    }
    let mut state = vec![State::Waiting; n];
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut heap = BinaryHeap::new();
    let mut fifo = VecDeque::new();
    let push_ready =
        |i: usize, heap: &mut BinaryHeap<Ready>, fifo: &mut VecDeque<usize>| match opts.order {
            Order::CriticalPath => heap.push(Ready(prio[i], i)),
            Order::Fifo => fifo.push_back(i),
        };
    for i in (0..n).filter(|&i| missing[i] == 0) {
        push_ready(i, &mut heap, &mut fifo);
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut tasks = JoinSet::new();
    let push_slots = Arc::new(tokio::sync::Semaphore::new(opts.push_jobs.max(1)));
    let mut running = 0usize;
    let mut stopping = false;
    let mut interrupted = false;
    tokio::pin!(interrupt);

    loop {
        while !stopping && running < opts.jobs.max(1) {
            let next = match opts.order {
                Order::CriticalPath => heap.pop().map(|r| r.1),
                Order::Fifo => fifo.pop_front(),
            };
            let Some(i) = next else { break };
            state[i] = State::Running;
            running += 1;
            observer.event(jobs, Event::Started { job: i });
            tasks.spawn(build_task(
                i,
                jobs[i].clone(),
                engine.clone(),
                opts.retries,
                tx.clone(),
            ));
        }
        while tasks.try_join_next().is_some() {}
        if tasks.is_empty() && rx.is_empty() {
            break;
        }
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = &mut interrupt, if !interrupted => {
                interrupted = true;
                stopping = true;
                tasks.abort_all();
                None
            }
            // Reap finished tasks, or the set never empties.
            Some(_) = tasks.join_next() => None,
        };
        let Some(msg) = msg else {
            if stopping {
                // Aborted tasks: drain what is left.
                while tasks.join_next().await.is_some() {}
                break;
            }
            continue;
        };
        match msg {
            Msg::Line(i, line) => observer.event(
                jobs,
                Event::Line {
                    job: i,
                    line: &line,
                },
            ),
            Msg::Built(i, result, took, attempts) => {
                running -= 1;
                let mut o = Outcome::new(if result.is_ok() {
                    Status::Built
                } else {
                    Status::Failed
                });
                o.duration = took;
                o.attempts = attempts;
                match result {
                    Ok(id) => o.image_id = Some(id),
                    Err(e) => o.error = Some(e.to_string()),
                }
                if o.status == Status::Failed {
                    state[i] = State::Done;
                    observer.event(
                        jobs,
                        Event::Finished {
                            job: i,
                            outcome: &o,
                        },
                    );
                    outcomes[i] = Some(o);
                    fail_descendants(i, jobs, &children, &mut state, &mut outcomes, observer);
                    if opts.fail_fast {
                        stopping = true;
                        tasks.abort_all();
                    }
                    continue;
                }
                if opts.push {
                    state[i] = State::Pushing;
                    observer.event(jobs, Event::Pushing { job: i });
                    tasks.spawn(push_task(
                        i,
                        jobs[i].clone(),
                        engine.clone(),
                        push_slots.clone(),
                        tx.clone(),
                    ));
                } else {
                    state[i] = State::Done;
                    observer.event(
                        jobs,
                        Event::Finished {
                            job: i,
                            outcome: &o,
                        },
                    );
                }
                outcomes[i] = Some(o);
                release_children(i, &children, &mut missing, &state, |c| {
                    push_ready(c, &mut heap, &mut fifo)
                });
            }
            Msg::Pushed(i, result, took) => {
                state[i] = State::Done;
                let mut o = outcomes[i].take().expect("built before pushed");
                o.duration += took;
                if let Err(e) = result {
                    o.status = Status::Failed;
                    o.error = Some(e.to_string());
                    if opts.fail_fast {
                        stopping = true;
                        tasks.abort_all();
                    }
                }
                observer.event(
                    jobs,
                    Event::Finished {
                        job: i,
                        outcome: &o,
                    },
                );
                outcomes[i] = Some(o);
            }
        }
    }
    // Builds that finished (and were tagged) while the run was stopping.
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Built(i, Ok(id), took, attempts) = msg {
            if outcomes[i].is_none() {
                let mut o = Outcome::new(Status::Built);
                o.image_id = Some(id);
                o.duration = took;
                o.attempts = attempts;
                observer.event(
                    jobs,
                    Event::Finished {
                        job: i,
                        outcome: &o,
                    },
                );
                outcomes[i] = Some(o);
            }
        }
    }
    // Whatever did not finish was cancelled.
    for i in 0..n {
        if outcomes[i].is_none() || state[i] == State::Pushing {
            let mut o = outcomes[i]
                .take()
                .unwrap_or_else(|| Outcome::new(Status::Cancelled));
            o.status = Status::Cancelled;
            if state[i] == State::Pushing {
                o.error = Some("cancelled while pushing".into());
            }
            observer.event(
                jobs,
                Event::Finished {
                    job: i,
                    outcome: &o,
                },
            );
            outcomes[i] = Some(o);
        }
    }
    Run {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.expect("every job has an outcome"))
            .collect(),
        interrupted,
        wall: start.elapsed(),
    }
}

fn release_children(
    i: usize,
    children: &[Vec<usize>],
    missing: &mut [usize],
    state: &[State],
    mut ready: impl FnMut(usize),
) {
    for &c in &children[i] {
        missing[c] -= 1;
        if missing[c] == 0 && state[c] == State::Waiting {
            ready(c);
        }
    }
}

/// Mark every job waiting on `failed` as parent-failed; none of them starts.
fn fail_descendants(
    failed: usize,
    jobs: &[Job],
    children: &[Vec<usize>],
    state: &mut [State],
    outcomes: &mut [Option<Outcome>],
    observer: &mut dyn Observer,
) {
    let mut todo = children[failed].clone();
    while let Some(c) = todo.pop() {
        if state[c] != State::Waiting {
            continue;
        }
        state[c] = State::Done;
        let mut o = Outcome::new(Status::ParentFailed);
        o.failed_parent = Some(jobs[failed].name.clone());
        o.error = Some(format!("not built: parent `{}` failed", jobs[failed].name));
        observer.event(
            jobs,
            Event::Finished {
                job: c,
                outcome: &o,
            },
        );
        outcomes[c] = Some(o);
        todo.extend(&children[c]);
    }
}

fn line_sink(i: usize, tx: &mpsc::UnboundedSender<Msg>) -> Log {
    let tx = tx.clone();
    Arc::new(move |line: &str| {
        let _ = tx.send(Msg::Line(i, line.to_string()));
    })
}

/// Build one job (with retries), then tag it; nothing is tagged unless the build succeeded.
async fn build_task(
    i: usize,
    job: Job,
    engine: Arc<dyn Engine>,
    retries: u32,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let begun = Instant::now();
    let log = line_sink(i, &tx);
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        let result = engine.build(job.request.clone(), log.clone()).await;
        let result = match result {
            Ok(id) => tag_all(&*engine, &id, &job).await.map(|_| id),
            Err(e) => Err(e),
        };
        match result {
            Err(EngineError::Failed(e)) if attempts <= retries => {
                log(&format!(
                    "strata: attempt {attempts} failed ({e}); retrying ({} of {retries})",
                    attempts
                ));
            }
            other => break other,
        }
    };
    let _ = tx.send(Msg::Built(i, result, begun.elapsed(), attempts));
}

/// Push one built job's reference and extra tags, `slots` pushes at once.
async fn push_task(
    i: usize,
    job: Job,
    engine: Arc<dyn Engine>,
    slots: Arc<tokio::sync::Semaphore>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let _slot = slots.acquire_owned().await;
    let begun = Instant::now();
    let log = line_sink(i, &tx);
    let mut result = Ok(());
    for r in std::iter::once(&job.reference).chain(&job.extra_tags) {
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

async fn tag_all(engine: &dyn Engine, id: &str, job: &Job) -> Result<(), EngineError> {
    for r in std::iter::once(&job.reference).chain(&job.extra_tags) {
        engine.tag(id, r).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sim::{Script, SimEngine, Step};

    struct Record(Vec<(String, &'static str)>);

    impl Observer for Record {
        fn event(&mut self, jobs: &[Job], event: Event) {
            match event {
                Event::Started { job } => self.0.push((jobs[job].name.clone(), "started")),
                Event::Finished { job, outcome } => self
                    .0
                    .push((jobs[job].name.clone(), outcome.status.as_str())),
                _ => {}
            }
        }
    }

    fn job(name: &str, parents: &[usize]) -> Job {
        Job {
            name: name.into(),
            reference: format!("t/{name}:latest"),
            extra_tags: Vec::new(),
            request: BuildRequest {
                name: name.into(),
                ..Default::default()
            },
            parents: parents.to_vec(),
        }
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
        jobs: &[Job],
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
                let jobs: Vec<Job> = (0..6)
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
