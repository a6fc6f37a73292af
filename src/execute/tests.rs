use super::tasks::content_ref;
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
        publish_each: false,
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
async fn a_push_uploads_the_content_tag_then_moves_release_tags() {
    let mut parent = job("parent", &[]);
    parent.extra_tags = vec!["t/parent:extra".into()];
    let jobs = [parent, job("child", &[0])];
    let engine = Arc::new(SimEngine::new(script(&[])));
    let mut o = opts(2);
    o.push = true;
    o.publish_each = true;
    let (r, _) = run(&jobs, engine.clone(), &o).await;
    assert!(r.outcomes.iter().all(|o| o.status == Status::Built));
    assert_eq!(
        engine.pushes(),
        [
            content_ref(&jobs[0]),
            "t/parent:latest".into(),
            "t/parent:extra".into(),
            content_ref(&jobs[1]),
            "t/child:latest".into(),
        ]
    );
    assert_eq!(r.outcomes[0].pushed, ["t/parent:latest", "t/parent:extra"]);
    assert!(content_ref(&jobs[0]).starts_with("t/parent:fp-"));
}

#[tokio::test(start_paused = true)]
async fn publish_all_uploads_content_tags_and_moves_release_tags_here_only() {
    let mut base = job("base", &[]);
    base.action = Action::Skip;
    base.published = Some("sha256:feed".into());
    let mut kept = job("kept", &[]);
    kept.action = Action::Skip;
    let jobs = [base, job("child", &[0]), kept];
    let engine = Arc::new(SimEngine::new(script(&[])));
    // `kept` exists on the engine but not in the registry.
    let id = engine
        .build(jobs[2].request.clone(), Arc::new(|_: &str| {}))
        .await
        .unwrap();
    engine.tag(&id, "t/kept:latest").await.unwrap();
    let mut o = opts(2);
    o.push = true;
    let (r, _) = run(&jobs, engine.clone(), &o).await;
    let statuses: Vec<Status> = r.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [Status::UpToDate, Status::Built, Status::UpToDate]
    );
    // Only what the registry lacks is uploaded, and no release tag is pushed.
    let mut pushes = engine.pushes();
    pushes.sort();
    let mut want = vec![content_ref(&jobs[1]), content_ref(&jobs[2])];
    want.sort();
    assert_eq!(pushes, want);
    assert!(engine.inspect("t/child:latest").await.unwrap().is_some());
    assert_eq!(r.outcomes[0].digest.as_deref(), Some("sha256:feed"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_upload_moves_no_tag_and_no_child_starts() {
    let jobs = [job("parent", &[]), job("child", &[0]), job("other", &[])];
    let engine = Arc::new(SimEngine::new(script(&[(
        "parent",
        Step {
            push_fail: true,
            ..Default::default()
        },
    )])));
    let mut o = opts(2);
    o.push = true;
    let (r, _) = run(&jobs, engine.clone(), &o).await;
    assert_eq!(r.outcomes[0].status, Status::Failed);
    assert!(r.outcomes[0]
        .error
        .as_deref()
        .unwrap()
        .contains(&format!("push of `{}` failed", content_ref(&jobs[0]))));
    assert_eq!(r.outcomes[1].status, Status::ParentFailed);
    assert_eq!(r.outcomes[2].status, Status::Built);
    assert!(engine.inspect("t/parent:latest").await.unwrap().is_none());
    assert!(engine.inspect("t/other:latest").await.unwrap().is_some());
    assert_eq!(engine.builds(), ["parent", "other"]);
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_during_the_upload_moves_no_tag() {
    let jobs = [job("a", &[])];
    let engine = Arc::new(SimEngine::new(script(&[(
        "a",
        Step {
            push_ms: 60_000,
            ..Default::default()
        },
    )])));
    let mut o = opts(1);
    o.push = true;
    let mut rec = Record(Vec::new());
    let stop = tokio::time::sleep(Duration::from_millis(1_000));
    let r = execute(&jobs, engine.clone(), &o, &mut rec, stop).await;
    assert!(r.interrupted);
    assert_eq!(r.outcomes[0].status, Status::Cancelled);
    assert!(r.outcomes[0]
        .error
        .as_deref()
        .unwrap()
        .contains("no tag was moved"));
    assert!(engine.inspect("t/a:latest").await.unwrap().is_none());
    assert!(r.outcomes[0].pushed.is_empty());
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

/// An engine that dies when its `after`-th build starts: that build and
/// everything after it fail, and it no longer answers a ping.
struct Dying {
    inner: SimEngine,
    after: usize,
    started: std::sync::atomic::AtomicUsize,
    dead: std::sync::atomic::AtomicBool,
}

impl Dying {
    fn new(after: usize) -> Dying {
        Dying {
            inner: SimEngine::new(script(&[])),
            after,
            started: Default::default(),
            dead: Default::default(),
        }
    }

    fn dead(&self) -> Result<(), EngineError> {
        match self.dead.load(std::sync::atomic::Ordering::SeqCst) {
            true => Err(EngineError::Failed("connection refused".into())),
            false => Ok(()),
        }
    }
}

impl Engine for Dying {
    fn ping(&self) -> futures_util::future::BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { self.dead() })
    }
    fn build(
        &self,
        request: crate::engine::BuildRequest,
        log: crate::engine::Log,
    ) -> futures_util::future::BoxFuture<'_, Result<String, EngineError>> {
        Box::pin(async move {
            use std::sync::atomic::Ordering::SeqCst;
            if self.started.fetch_add(1, SeqCst) + 1 >= self.after {
                tokio::time::sleep(Duration::from_millis(5)).await;
                self.dead.store(true, SeqCst);
                return Err(EngineError::Failed("connection reset by peer".into()));
            }
            self.inner.build(request, log).await
        })
    }
    fn tag<'a>(
        &'a self,
        id: &'a str,
        r: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.dead()?;
            self.inner.tag(id, r).await
        })
    }
    fn pull<'a>(
        &'a self,
        r: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.dead()?;
            self.inner.pull(r).await
        })
    }
    fn push<'a>(
        &'a self,
        r: &'a str,
        log: crate::engine::Log,
    ) -> futures_util::future::BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.dead()?;
            self.inner.push(r, log).await
        })
    }
    fn inspect<'a>(
        &'a self,
        r: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<crate::engine::ImageInfo>, EngineError>>
    {
        Box::pin(async move {
            self.dead()?;
            self.inner.inspect(r).await
        })
    }
}

fn member(name: &str, engine: Arc<dyn Engine>, jobs: usize) -> crate::engine::pool::Member {
    crate::engine::pool::Member {
        name: name.into(),
        engine,
        jobs,
    }
}

async fn run_pool(jobs: &[Item], members: Vec<crate::engine::pool::Member>) -> Run {
    let mut o = opts(1);
    o.push = true;
    let pool = Pool {
        members,
        holds: Vec::new(),
    };
    let mut rec = Record(Vec::new());
    execute_on(jobs, pool, &o, &mut rec, std::future::pending()).await
}

fn engines_of(run: &Run) -> Vec<&str> {
    run.outcomes
        .iter()
        .map(|o| o.engine.as_deref().unwrap_or(""))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_pool_builds_children_where_their_parents_are_and_pulls_the_rest() {
    // base; a and b on base; c on a. One slot per engine.
    let jobs = [
        job("base", &[]),
        job("a", &[0]),
        job("b", &[0]),
        job("c", &[1]),
    ];
    let slow = |ms| Step {
        ms: Some(ms),
        ..Default::default()
    };
    let e0 = Arc::new(SimEngine::new(script(&[
        ("a", slow(100)),
        ("b", slow(100)),
    ])));
    let e1 = Arc::new(SimEngine::new(script(&[
        ("a", slow(100)),
        ("b", slow(100)),
    ])));
    let run = run_pool(
        &jobs,
        vec![member("e0", e0.clone(), 1), member("e1", e1.clone(), 1)],
    )
    .await;
    assert!(
        run.outcomes.iter().all(|o| o.status == Status::Built),
        "{:?}",
        run.outcomes.iter().map(|o| &o.error).collect::<Vec<_>>()
    );
    let on = engines_of(&run);
    // base first, on the first engine; a beside it, b on the other (which
    // pulls base); c where a is.
    assert_eq!(on[0], "e0");
    assert_eq!(on[1], "e0", "{on:?}");
    assert_eq!(on[2], "e1", "{on:?}");
    assert_eq!(on[3], on[1], "c is built where its parent a is: {on:?}");
    // Nothing built twice; every image's content tag was pushed once.
    let mut built = e0.builds();
    built.extend(e1.builds());
    built.sort();
    assert_eq!(built, ["a", "b", "base", "c"]);
    let pushes: Vec<String> = e0.pushes().into_iter().chain(e1.pushes()).collect();
    for j in &jobs {
        assert_eq!(
            pushes.iter().filter(|p| **p == content_ref(j)).count(),
            1,
            "{pushes:?}"
        );
    }
    // b's engine got base from the registry, by digest.
    let base_on_e1 = e1.inspect(&jobs[0].reference).await.unwrap().unwrap();
    let digest = run.outcomes[0].digest.clone().expect("base's digest");
    assert!(
        base_on_e1
            .repo_digests
            .contains(&format!("t/base@{digest}")),
        "{base_on_e1:?}"
    );
    assert!(run.lost.is_empty() && !run.all_lost);
}

#[tokio::test(start_paused = true)]
async fn a_lost_engine_hands_its_builds_to_the_others() {
    let jobs: Vec<Item> = std::iter::once(job("base", &[]))
        .chain((1..=6).map(|i| job(&format!("c{i}"), &[0])))
        .collect();
    let healthy = Arc::new(SimEngine::new(script(&[])));
    // Builds base, then dies on its second build.
    let dying = Arc::new(Dying::new(2));
    let run = run_pool(
        &jobs,
        vec![member("dying", dying, 2), member("healthy", healthy, 1)],
    )
    .await;
    assert!(
        run.outcomes.iter().all(|o| o.status == Status::Built),
        "{:?}",
        run.outcomes.iter().map(|o| &o.error).collect::<Vec<_>>()
    );
    assert_eq!(run.lost.len(), 1);
    assert_eq!(run.lost[0].0, "dying");
    assert!(!run.all_lost);
    let on = engines_of(&run);
    assert_eq!(on[0], "dying", "base was built before the engine died");
    assert!(on[1..].iter().all(|e| *e == "healthy"), "{on:?}");
}

#[tokio::test(start_paused = true)]
async fn losing_every_engine_ends_the_run() {
    let jobs: Vec<Item> = std::iter::once(job("base", &[]))
        .chain((1..=4).map(|i| job(&format!("c{i}"), &[0])))
        .collect();
    let run = run_pool(
        &jobs,
        vec![
            member("one", Arc::new(Dying::new(2)), 1),
            member("two", Arc::new(Dying::new(1)), 1),
        ],
    )
    .await;
    assert!(run.all_lost);
    assert_eq!(run.lost.len(), 2);
    assert!(run
        .outcomes
        .iter()
        .skip(1)
        .all(|o| o.status == Status::Cancelled));
}
