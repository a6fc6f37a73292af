use super::tasks::content_ref;
use super::*;
use crate::engine::sim::{Script, SimEngine, Step};
use crate::plan::Item;

pub(super) struct Record(pub(super) Vec<(String, &'static str)>);

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

pub(super) fn job(name: &str, parents: &[usize]) -> Item {
    crate::plan::Item::to_build(name, &format!("t/{name}:latest"), parents)
}

pub(super) fn opts(jobs: usize) -> Options {
    Options {
        jobs,
        retries: 0,
        fail_fast: false,
        push: false,
        push_jobs: 1,
        publish_each: false,
        order: Order::CriticalPath,
        weights: None,
        stale: None,
    }
}

pub(super) fn script(steps: &[(&str, Step)]) -> Script {
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

#[tokio::test(start_paused = true)]
async fn a_stale_item_is_cancelled_with_what_waits_on_it_and_the_rest_runs_on() {
    let jobs = [
        job("base", &[]),
        job("edited", &[0]),
        job("below", &[1]),
        job("sibling", &[0]),
    ];
    let slow = |ms| Step {
        ms: Some(ms),
        ..Default::default()
    };
    let engine = Arc::new(SimEngine::new(script(&[
        ("edited", slow(10_000)),
        ("sibling", slow(3_000)),
    ])));
    let stale = Arc::new(Stale::default());
    let mut o = opts(2);
    o.stale = Some(stale.clone());
    let tell = stale.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        tell.cancel([1]);
    });
    let started = Instant::now();
    let (r, events) = run(&jobs, engine.clone(), &o).await;
    let st: Vec<Status> = r.outcomes.iter().map(|o| o.status).collect();
    use Status::*;
    assert_eq!(st, [Built, Cancelled, Cancelled, Built]);
    assert!(r.outcomes[2].error.as_deref().unwrap().contains("`edited`"));
    assert!(!events.contains(&("below".into(), "started")));
    assert!(!r.interrupted, "a stale item is no interrupt");
    // The sibling ran to its end; the edited build did not.
    let took = started.elapsed();
    assert!(took < Duration::from_millis(10_000), "{took:?}");
    assert!(took >= Duration::from_millis(3_000), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stale_item_still_in_line_never_starts() {
    let jobs = [job("first", &[]), job("queued", &[]), job("other", &[])];
    let slow = Step {
        ms: Some(5_000),
        ..Default::default()
    };
    let engine = Arc::new(SimEngine::new(script(&[("first", slow)])));
    let stale = Arc::new(Stale::default());
    stale.cancel([1]);
    let mut o = opts(1);
    o.stale = Some(stale);
    let (r, _) = run(&jobs, engine.clone(), &o).await;
    let st: Vec<Status> = r.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(st, [Status::Built, Status::Cancelled, Status::Built]);
    assert_eq!(engine.builds(), ["first", "other"]);
}
