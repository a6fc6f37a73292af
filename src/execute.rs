//! The scheduler: builds jobs on an engine, at most `jobs` at once, each as
//! soon as its parents are built; among ready jobs, the one with the longest
//! (weighted) chain of descendants first. One loop owns all state and all
//! observer calls; build and push tasks only send messages.
//! Knows nothing of Docker, templates or terminals. See "Build states" in
//! docs/scheduler.md.

use crate::engine::{BuildRequest, Engine, EngineError, Log};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

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
            Some(_) = tasks.join_next(), if stopping => None,
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
                match result {
                    Ok(id) if opts.push => {
                        state[i] = State::Pushing;
                        let mut o = Outcome::new(Status::Built);
                        o.image_id = Some(id);
                        o.duration = took;
                        o.attempts = attempts;
                        outcomes[i] = Some(o);
                        observer.event(jobs, Event::Pushing { job: i });
                        let job = jobs[i].clone();
                        let (engine, tx, slots) = (engine.clone(), tx.clone(), push_slots.clone());
                        tasks.spawn(async move {
                            let _slot = slots.acquire_owned().await;
                            let begun = Instant::now();
                            let log = line_sink(i, &tx);
                            let mut result = Ok(());
                            for r in std::iter::once(&job.reference).chain(&job.extra_tags) {
                                result = engine.push(r, log.clone()).await.map_err(|e| match e {
                                    EngineError::Failed(m) => {
                                        EngineError::Failed(format!("push of `{r}` failed: {m}"))
                                    }
                                    other => other,
                                });
                                if result.is_err() {
                                    break;
                                }
                            }
                            let _ = tx.send(Msg::Pushed(i, result, begun.elapsed()));
                        });
                        release_children(i, &children, &mut missing, &state, |c| {
                            push_ready(c, &mut heap, &mut fifo)
                        });
                    }
                    Ok(id) => {
                        state[i] = State::Done;
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
                        release_children(i, &children, &mut missing, &state, |c| {
                            push_ready(c, &mut heap, &mut fifo)
                        });
                    }
                    Err(e) => {
                        state[i] = State::Done;
                        let mut o = Outcome::new(Status::Failed);
                        o.error = Some(e.to_string());
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
                        fail_descendants(i, jobs, &children, &mut state, &mut outcomes, observer);
                        if opts.fail_fast {
                            stopping = true;
                            tasks.abort_all();
                        }
                    }
                }
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

async fn tag_all(engine: &dyn Engine, id: &str, job: &Job) -> Result<(), EngineError> {
    for r in std::iter::once(&job.reference).chain(&job.extra_tags) {
        engine.tag(id, r).await?;
    }
    Ok(())
}
