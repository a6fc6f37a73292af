//! The work the scheduler hands out: build one item, upload it, move its
//! tags. Tasks share the items (`Arc`), touch only the engine and send
//! messages back; every decision and every cache write stays with the loop
//! in `mod.rs`.
//!
//! Without `--push` an item's step is its build, and its tags move right
//! after it. With `--push` the built image first gets its content tag
//! (`repo:fp-<24 hex of its fingerprint>`, which names inputs, not a
//! release) and that tag is uploaded; only then do its release tags move,
//! locally and in the registry. So a build or upload that fails or is
//! interrupted leaves every release tag where it was.

use super::Msg;
use crate::engine::{Engine, EngineError, ImageInfo, Log};
use crate::plan::Item;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Where an item's engine output goes: to the loop, one line at a time,
/// without the engine's colour codes (they would end up in plain output,
/// log files and JUnit).
pub(super) fn line_sink(i: usize, tx: &mpsc::UnboundedSender<Msg>) -> Log {
    let tx = tx.clone();
    Arc::new(move |line: &str| {
        let line = if line.contains('\x1b') {
            strip_ansi_escapes::strip_str(line)
        } else {
            line.to_string()
        };
        let _ = tx.send(Msg::Line(i, line));
    })
}

/// The immutable tag of an item's inputs: `repo:fp-<first 24 hex>`.
pub fn content_ref(item: &Item) -> String {
    crate::util::reference::content_tag(&item.reference, &item.fingerprint.hash)
}

/// An image of the plan to pull by digest (`repo@digest`) before a step.
pub(super) struct Pinned {
    pub(super) item: Arc<Item>,
    pub(super) digest: String,
}

/// Build one item (with retries), then tag it: with its release tags, or
/// with its content tag only when it is to be pushed first.
pub(super) async fn build(
    i: usize,
    item: Arc<Item>,
    on: On,
    missing: Vec<Pinned>,
    retries: u32,
    push: bool,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let begun = Instant::now();
    let log = line_sink(i, &tx);
    let engine = on.engine.clone();
    let mut attempts = 0;
    // Parents built (or kept) on another engine come by digest first.
    let mut pulled = Ok(());
    for parent in &missing {
        let why = " (its parent, from another engine)";
        pulled = pull_pinned(&*engine, parent, &log, why).await;
        if pulled.is_err() {
            break;
        }
    }
    let result = if let Err(e) = pulled {
        Err(e)
    } else {
        loop {
            attempts += 1;
            let (result, test_failed) = attempt(i, &item, &*engine, &log, &tx, push).await;
            match result {
                Err(EngineError::Failed(e)) if attempts <= retries && !test_failed => {
                    log(&format!(
                        "strata: attempt {attempts} failed ({e}); retrying ({attempts} of {retries})"
                    ));
                }
                other => break other,
            }
        }
    };
    if on.lost(i, &result, &tx).await {
        return;
    }
    let _ = tx.send(Msg::Built(i, result, begun.elapsed(), attempts));
}

/// One attempt at an item: build, hold the image by a run-scoped tag at
/// once (another job's `docker image prune` on a shared engine must not
/// take it while it is untagged), check its parents did not move and its
/// platform, test it, tag it; then let the hold go. Whether a test failed.
async fn attempt(
    i: usize,
    item: &Item,
    engine: &dyn Engine,
    log: &Log,
    tx: &mpsc::UnboundedSender<Msg>,
    push: bool,
) -> (Result<String, EngineError>, bool) {
    let before = match resolve(engine, &item.parent_refs).await {
        Ok(before) => before,
        Err(e) => return (Err(e), false),
    };
    let id = match engine.build(item.request.clone(), log.clone()).await {
        Ok(id) => id,
        Err(e) => return (Err(e), false),
    };
    let hold = crate::util::reference::hold_tag(&item.reference);
    let held = engine.tag(&id, &hold).await.map_err(|e| vanished(&id, e));
    let built = match held {
        Ok(()) => match still_on(engine, &before).await {
            Ok(()) => built_for(engine, &id, &item.request.platform).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    // Tests run on the built image before any tag moves; a failing test is
    // the image's verdict, not a flaky build: no retry.
    let (built, test_failed) = match built {
        Ok(()) => match test(i, item, engine, &id, log, tx).await {
            Ok(()) => (Ok(()), false),
            Err(e) => (Err(e), true),
        },
        Err(e) => (Err(e), false),
    };
    let result = match built {
        Ok(()) if push => engine.tag(&id, &content_ref(item)).await,
        Ok(()) => tag_all(engine, &id, item).await,
        Err(e) => Err(e),
    };
    // The hold goes; a failed image goes with it (nothing else names it).
    let _ = engine.remove_image(&hold).await;
    (
        result.map(|_| id.clone()).map_err(|e| vanished(&id, e)),
        test_failed,
    )
}

/// An image strata built that the engine no longer has: say that it
/// vanished (someone pruned or removed it), not a bare "No such image".
fn vanished(id: &str, e: EngineError) -> EngineError {
    match e {
        EngineError::Failed(m) if m.contains("No such image") => EngineError::Failed(format!(
            "image {} vanished before it was tagged; was the engine pruned (`docker image prune`, `docker rmi`) meanwhile? ({m})",
            id.strip_prefix("sha256:").map_or(id, |h| &h[..h.len().min(12)])
        )),
        other => other,
    }
}

/// Run the item's tests on `image` and report them; remember a pass. A
/// failing test fails the step with what was expected and what came.
async fn test(
    i: usize,
    item: &Item,
    engine: &dyn Engine,
    image: &str,
    log: &Log,
    tx: &mpsc::UnboundedSender<Msg>,
) -> Result<(), EngineError> {
    let Some(suite) = &item.tests else {
        return Ok(());
    };
    log(&format!("strata: running {} image tests", suite.count()));
    let results = crate::execute::imagetest::suite(engine, image, suite, log).await?;
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| {
            let message = r.message.replace('\n', "\\n");
            format!("image test `{}` ({}) failed: {message}", r.name, r.file)
        })
        .collect();
    let _ = tx.send(Msg::Tested(i, results, image.to_string()));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Failed(format!(
            "{}; nothing was tagged or pushed",
            failed.join("; ")
        )))
    }
}

/// Test an up-to-date image whose tests have not passed for the current
/// test files: pulled by digest first (`pinned`) when the engine lacks it.
pub(super) async fn test_existing(
    i: usize,
    item: Arc<Item>,
    on: On,
    pinned: Option<Pinned>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let engine = on.engine.clone();
    let begun = Instant::now();
    let log = line_sink(i, &tx);
    let mut result = Ok(());
    if let Some(p) = &pinned {
        result = pull_pinned(&*engine, p, &log, " to test it").await;
    }
    let result = match result {
        Ok(()) => match engine.inspect(&item.reference).await {
            Ok(Some(info)) => test(i, &item, &*engine, &info.id, &log, &tx)
                .await
                .map(|_| info.id),
            Ok(None) => Err(EngineError::Failed(format!("`{}` is gone", item.reference))),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if on.lost(i, &result, &tx).await {
        return;
    }
    let _ = tx.send(Msg::Built(i, result, begun.elapsed(), 1));
}

/// Upload an item under its content tag, `slots` uploads at once. A built
/// item has that tag already; an existing one (`source`) gets it first.
pub(super) async fn upload(
    i: usize,
    item: Arc<Item>,
    source: Option<String>,
    on: On,
    slots: Arc<tokio::sync::Semaphore>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let engine = on.engine.clone();
    let _slot = slots.acquire_owned().await;
    let begun = Instant::now();
    let log = line_sink(i, &tx);
    let r = content_ref(&item);
    let tagged = match &source {
        Some(s) => engine.tag(s, &r).await,
        None => Ok(()),
    };
    let result = match tagged {
        Ok(()) => engine.push(&r, log).await.map_err(|e| failed_push(&r, e)),
        Err(e) => Err(e),
    };
    if on.lost(i, &result, &tx).await {
        return;
    }
    // The registry's digest of what was pushed: engines of a pool pull it,
    // the summary and the provenance name it (also when no tag moves).
    let digest = match &result {
        Ok(()) => engine.inspect(&r).await.ok().flatten().and_then(|info| {
            let repo = crate::util::reference::repository(&r);
            info.repo_digests.iter().find_map(|d| {
                let (name, digest) = d.split_once('@')?;
                (name == repo).then(|| digest.to_string())
            })
        }),
        _ => None,
    };
    let _ = tx.send(Msg::Uploaded(i, result, begun.elapsed(), digest));
}

/// Move an uploaded item's release tags on this engine and, with `push`,
/// in the registry (the layers are there already, so each push only writes
/// a manifest). The scheduler never aborts this task: once started it
/// ends, interrupt or not.
pub(super) async fn release(
    i: usize,
    item: Arc<Item>,
    image_id: String,
    on: On,
    push: bool,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let engine = on.engine.clone();
    let begun = Instant::now();
    let log = line_sink(i, &tx);
    let mut moved = Vec::new();
    let mut result = Ok(());
    for r in item.release_refs() {
        let step = match tag_here(&*engine, &image_id, r).await {
            Ok(()) if push => engine.push(r, log.clone()).await,
            other => other,
        };
        if let Err(e) = step {
            result = Err(failed_push(r, e));
            break;
        }
        if push {
            moved.push(r.clone());
        }
    }
    if result.is_ok() {
        result = tag_aliases(&*engine, &image_id, &item).await;
    }
    if on.lost(i, &result, &tx).await {
        return;
    }
    let _ = tx.send(Msg::Released(i, result, moved, begun.elapsed()));
}

/// The engine a task runs on, and whether it is one of several.
pub(super) struct On {
    pub(super) engine: Arc<dyn Engine>,
    pub(super) pool: bool,
}

/// How long an engine of a pool has to answer after an error before it
/// counts as lost.
const LOST_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

impl On {
    /// In a pool, an error from an engine that no longer answers a ping is
    /// the engine's loss, not the item's: say so (the item goes back to
    /// the queue) and return true.
    async fn lost<T>(
        &self,
        i: usize,
        result: &Result<T, EngineError>,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> bool {
        let Err(e) = result else { return false };
        if !self.pool {
            return false;
        }
        let answer = tokio::time::timeout(LOST_AFTER, self.engine.ping()).await;
        if matches!(answer, Ok(Ok(()))) {
            return false;
        }
        let _ = tx.send(Msg::Lost(i, e.to_string()));
        true
    }
}

/// The images `parents` point at just before a build.
async fn resolve(
    engine: &dyn Engine,
    parents: &[String],
) -> Result<Vec<(String, ImageInfo)>, EngineError> {
    let mut found = Vec::new();
    for r in parents {
        if let Some(info) = engine.inspect(r).await? {
            found.push((r.clone(), info));
        }
    }
    Ok(found)
}

/// Check that every parent reference still points at the image it pointed
/// at when the build began, so that a tag moved by another program during
/// the build never ends up under a child. (Not a layer check: a parent may
/// be an earlier stage or a `COPY --from` source, not the final base.)
async fn still_on(engine: &dyn Engine, before: &[(String, ImageInfo)]) -> Result<(), EngineError> {
    for (r, parent) in before {
        let now = engine.inspect(r).await?;
        if now.map(|i| i.id) != Some(parent.id.clone()) {
            return Err(EngineError::Failed(format!(
                "`{r}` no longer points at the image this was built on (something moved it \
                 during the build); nothing was tagged"
            )));
        }
    }
    Ok(())
}

/// The image is for the platform asked for: the classic builder takes
/// `--platform linux/arm64` and may still build for the engine's own.
async fn built_for(engine: &dyn Engine, id: &str, platform: &str) -> Result<(), EngineError> {
    if platform.is_empty() {
        return Ok(());
    }
    let got = engine
        .inspect(id)
        .await?
        .map(|i| i.platform)
        .unwrap_or_default();
    // `linux/arm64` matches `linux/arm64/v8`; unknown (empty) is not checked.
    if got.is_empty() || got == platform || got.starts_with(&format!("{platform}/")) {
        return Ok(());
    }
    Err(EngineError::Failed(format!(
        "asked for {platform}, the engine built for {got}; nothing was tagged \
         (the classic builder cannot build for another platform: use --builder buildkit)"
    )))
}

/// Pull an image that is up to date only in the registry, by digest, and
/// point its reference here at exactly that image, for what is built on it.
pub(super) async fn fetch(
    i: usize,
    item: Arc<Item>,
    engine: Arc<dyn Engine>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let begun = Instant::now();
    let log = line_sink(i, &tx);
    let digest = item.published.clone().unwrap_or_default();
    let pinned = Pinned { item, digest };
    let result = pull_pinned(&*engine, &pinned, &log, "").await;
    let _ = tx.send(Msg::Fetched(i, result, begun.elapsed()));
}

/// Pull the item's published image by digest and point its reference (and
/// aliases) here at exactly that image.
async fn pull_pinned(
    engine: &dyn Engine,
    image: &Pinned,
    log: &Log,
    why: &str,
) -> Result<(), EngineError> {
    let item = &image.item;
    let pinned = crate::util::reference::pinned(&item.reference, &image.digest);
    log(&format!("pulling {pinned}{why}"));
    let result = match engine.pull(&pinned).await {
        Ok(()) => tag_item(engine, &pinned, item).await,
        Err(e) => Err(e),
    };
    result.map_err(|e| match e {
        EngineError::Failed(m) => EngineError::Failed(format!("pull of `{pinned}` failed: {m}")),
        other => other,
    })
}

fn failed_push(reference: &str, e: EngineError) -> EngineError {
    match e {
        EngineError::Failed(m) => EngineError::Failed(format!("push of `{reference}` failed: {m}")),
        other => other,
    }
}

async fn tag_all(engine: &dyn Engine, id: &str, item: &Item) -> Result<(), EngineError> {
    for r in item.release_refs() {
        tag_here(engine, id, r).await?;
    }
    tag_aliases(engine, id, item).await
}

/// Point an item's reference, and its local aliases, here at `id`.
async fn tag_item(engine: &dyn Engine, id: &str, item: &Item) -> Result<(), EngineError> {
    tag_here(engine, id, &item.reference).await?;
    tag_aliases(engine, id, item).await
}

/// The names the item's siblings' `FROM` lines use for it (a devfile's
/// `imageName` as written), on this engine only: never pushed.
async fn tag_aliases(engine: &dyn Engine, id: &str, item: &Item) -> Result<(), EngineError> {
    for a in &item.aliases {
        engine.tag(id, a).await?;
    }
    Ok(())
}

/// Point `reference` on this engine at `id`; a reference with a registry
/// also without it (`ns/name:tag`), the form a child's `FROM` may name an
/// image of the tree by (the graph matches both), so that the child is
/// built on this image and not on one pulled from elsewhere.
async fn tag_here(engine: &dyn Engine, id: &str, reference: &str) -> Result<(), EngineError> {
    engine.tag(id, reference).await?;
    let short = crate::util::reference::short(reference);
    if short != reference {
        engine.tag(id, short).await?;
    }
    Ok(())
}
