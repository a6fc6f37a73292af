//! The scheduler over a pool of simulated engines: placement beside
//! parents, hand-off by digest through the simulated registry, an engine
//! that dies mid-run, and every engine lost.

use super::tasks::content_ref;
use super::tests::{job, opts, script, Record};
use super::*;
use crate::engine::sim::{SimEngine, Step};
use crate::plan::Item;

/// An engine that dies when its `after`-th build starts: that build and
/// everything after it fail, and it no longer answers a ping. With `hang`
/// it stops answering instead: every call from then on waits for ever.
struct Dying {
    inner: SimEngine,
    after: usize,
    hang: bool,
    started: std::sync::atomic::AtomicUsize,
    dead: std::sync::atomic::AtomicBool,
}

impl Dying {
    fn new(after: usize) -> Dying {
        Dying {
            inner: SimEngine::new(script(&[])),
            after,
            hang: false,
            started: Default::default(),
            dead: Default::default(),
        }
    }

    fn hung(after: usize) -> Dying {
        Dying {
            hang: true,
            ..Dying::new(after)
        }
    }

    async fn dead(&self) -> Result<(), EngineError> {
        match self.dead.load(std::sync::atomic::Ordering::SeqCst) {
            true if self.hang => std::future::pending().await,
            true => Err(EngineError::Failed("connection refused".into())),
            false => Ok(()),
        }
    }
}

impl Engine for Dying {
    fn ping(&self) -> futures_util::future::BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { self.dead().await })
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
                self.dead().await?;
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
            self.dead().await?;
            self.inner.tag(id, r).await
        })
    }
    fn pull<'a>(
        &'a self,
        r: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.dead().await?;
            self.inner.pull(r).await
        })
    }
    fn push<'a>(
        &'a self,
        r: &'a str,
        log: crate::engine::Log,
    ) -> futures_util::future::BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            self.dead().await?;
            self.inner.push(r, log).await
        })
    }
    fn inspect<'a>(
        &'a self,
        r: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<crate::engine::ImageInfo>, EngineError>>
    {
        Box::pin(async move {
            self.dead().await?;
            self.inner.inspect(r).await
        })
    }
}

fn member(name: &str, engine: Arc<dyn Engine>, jobs: usize) -> crate::engine::pool::Member {
    crate::engine::pool::Member {
        name: name.into(),
        engine,
        jobs,
        platforms: Vec::new(),
        emulated: Vec::new(),
        listed: false,
        probed: Vec::new(),
    }
}

async fn run_pool(jobs: &[Item], members: Vec<crate::engine::pool::Member>) -> Run {
    let mut o = opts(1);
    o.push = true;
    let pool = Pool { members };
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

#[tokio::test(start_paused = true)]
async fn a_hung_engine_is_found_by_its_health_checks_and_its_builds_run_elsewhere() {
    let jobs: Vec<Item> = std::iter::once(job("base", &[]))
        .chain((1..=4).map(|i| job(&format!("c{i}"), &[0])))
        .collect();
    let healthy = Arc::new(SimEngine::new(script(&[])));
    // Builds base, then hangs on its second build: nothing ever errors.
    let hung = Arc::new(Dying::hung(2));
    let run = tokio::time::timeout(
        Duration::from_secs(600),
        run_pool(
            &jobs,
            vec![member("hung", hung, 2), member("healthy", healthy, 1)],
        ),
    )
    .await
    .expect("the run ends");
    assert!(
        run.outcomes.iter().all(|o| o.status == Status::Built),
        "{:?}",
        run.outcomes.iter().map(|o| &o.error).collect::<Vec<_>>()
    );
    assert_eq!(run.lost.len(), 1);
    assert!(run.lost[0].1.contains("twice running"), "{:?}", run.lost);
    let on = engines_of(&run);
    assert!(on[1..].iter().all(|e| *e == "healthy"), "{on:?}");
}

#[tokio::test(start_paused = true)]
async fn every_engine_hanging_ends_the_run_with_all_lost() {
    let jobs: Vec<Item> = std::iter::once(job("base", &[]))
        .chain((1..=3).map(|i| job(&format!("c{i}"), &[0])))
        .collect();
    // One hangs on its first build; the other never answers from the start.
    let idle = Dying::hung(1);
    idle.dead.store(true, std::sync::atomic::Ordering::SeqCst);
    let run = tokio::time::timeout(
        Duration::from_secs(600),
        run_pool(
            &jobs,
            vec![
                member("first", Arc::new(Dying::hung(1)), 1),
                member("idle", Arc::new(idle), 1),
            ],
        ),
    )
    .await
    .expect("the run ends");
    assert!(run.all_lost);
    assert_eq!(run.lost.len(), 2, "{:?}", run.lost);
    assert!(run.outcomes.iter().all(|o| o.status == Status::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn a_busy_platform_never_idles_the_engine_of_another() {
    // Two arm64 chains outrank one amd64 image on the critical path; the
    // arm64 engine takes one build at a time. The amd64 engine must start
    // its image at once, not after the arm64 builds ahead of it in line.
    let on = |mut item: Item, platform: &str| {
        item.request.platform = platform.into();
        item
    };
    let jobs = [
        on(job("a1", &[]), "linux/arm64"),
        on(job("a2", &[0]), "linux/arm64"),
        on(job("b1", &[]), "linux/arm64"),
        on(job("b2", &[2]), "linux/arm64"),
        on(job("c", &[]), "linux/amd64"),
    ];
    let slow = Step {
        ms: Some(100),
        ..Default::default()
    };
    let steps: Vec<(&str, Step)> = ["a1", "a2", "b1", "b2"]
        .into_iter()
        .map(|n| (n, slow.clone()))
        .collect();
    let for_platform = |name: &str, platform: &str| crate::engine::pool::Member {
        platforms: vec![platform.into()],
        ..member(name, Arc::new(SimEngine::new(script(&steps))), 1)
    };
    let pool = Pool {
        members: vec![
            for_platform("arm", "linux/arm64"),
            for_platform("amd", "linux/amd64"),
        ],
    };
    let mut rec = Record(Vec::new());
    let started = tokio::time::Instant::now();
    let run = execute_on(&jobs, pool, &opts(1), &mut rec, std::future::pending()).await;
    assert!(run.outcomes.iter().all(|o| o.status == Status::Built));
    assert_eq!(engines_of(&run), ["arm", "arm", "arm", "arm", "amd"]);
    let c_done = rec.0.iter().position(|e| *e == ("c".into(), "built"));
    let a1_done = rec.0.iter().position(|e| *e == ("a1".into(), "built"));
    assert!(
        c_done < a1_done,
        "c waited behind arm64 builds: {:?}",
        rec.0
    );
    // The arm64 engine's four builds in a row are the whole run.
    assert!(started.elapsed() < Duration::from_millis(450));
}
