//! The `build` command: load the tree, choose what to build, run the
//! scheduler on an engine, and report. Glue between the stages; each stage
//! does its own work.

use crate::engine::{self, docker::DockerEngine, sim::SimEngine, BuildRequest, Engine};
use crate::error::{Error, Kind, Result};
use crate::execute::{self, Job, Order, Status};
use crate::load::{self, Loaded, Options};
use crate::progress::{self, Display};
use crate::report::{self, ImageReport, LogFiles, Summary};
use crate::{fingerprint, plan, select};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

/// The label every image strata builds carries: its name in the tree.
pub const IMAGE_LABEL: &str = "io.strata.image";

#[derive(Debug, Clone)]
pub struct BuildArgs {
    pub selectors: Vec<String>,
    pub jobs: Option<usize>,
    pub push: bool,
    pub force: bool,
    pub no_deps: bool,
    pub fail_fast: bool,
    pub retries: Option<u32>,
    pub pull: bool,
    pub progress: progress::Mode,
    pub logs_dir: Option<PathBuf>,
    pub summary: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// Build with BuildKit (also `build.buildkit: true`).
    pub buildkit: bool,
    /// `docker` (default) or `sim:SCRIPT.yaml`.
    pub engine: String,
    /// Select what changed since this git revision (and what is built on it).
    pub since: Option<String>,
}

/// The selection: selectors, narrowed to what changed since `since` when given.
pub fn selection(loaded: &Loaded, selectors: &[String], since: Option<&str>) -> Result<Vec<usize>> {
    let sel = select::select(&loaded.graph, &loaded.tree.config, selectors)?;
    let Some(rev) = since else { return Ok(sel.ids) };
    let changed = crate::affected::changed_since(&loaded.tree.root, rev)?;
    let hit = crate::affected::affected(loaded, &changed);
    Ok(sel.ids.into_iter().filter(|i| hit.contains(i)).collect())
}

pub fn run(opts: &Options, args: &BuildArgs) -> Result<i32> {
    let loaded = load::load(opts)?;
    let selected = selection(&loaded, &args.selectors, args.since.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(Kind::Engine, format!("cannot start the async runtime: {e}")))?;
    let code = runtime.block_on(build(&loaded, selected, args));
    // Everything that matters is written; a tar writer still blocked on an
    // engine that stopped reading must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

async fn connect(spec: &str, root: &std::path::Path) -> Result<Arc<dyn Engine>> {
    if let Some(script) = spec.strip_prefix("sim:") {
        let path = root.join(script);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let script: engine::sim::Script = crate::config::parse_yaml(script, &text)?;
        return Ok(Arc::new(SimEngine::new(script)));
    }
    let engine = DockerEngine::connect().await.map_err(engine_error)?;
    engine.ping().await.map_err(engine_error)?;
    Ok(Arc::new(engine))
}

fn engine_error(e: engine::EngineError) -> Error {
    Error::engine(e.to_string()).help(
        "start the Docker engine, or point strata at one with DOCKER_HOST (e.g. `DOCKER_HOST=unix:///run/user/1000/docker.sock` or `tcp://host:2375`)",
    )
}

async fn build(loaded: &Loaded, selected: Vec<usize>, args: &BuildArgs) -> Result<i32> {
    let config = &loaded.tree.config;
    let graph = &loaded.graph;
    let engine = connect(&args.engine, &loaded.tree.root).await?;

    let pull = args.pull || config.build.pull;
    let (fps, plan) = prepare(
        loaded,
        &selected,
        engine.as_ref(),
        args.force,
        args.no_deps,
        pull,
    )
    .await?;
    let order: Vec<usize> = plan.to_build().map(|i| i.id).collect();
    let index: BTreeMap<usize, usize> = order.iter().enumerate().map(|(k, &id)| (id, k)).collect();
    // Two git calls; a no-op build needs no labels.
    let labels = if order.is_empty() {
        BTreeMap::new()
    } else {
        oci_labels(&loaded.tree.root)
    };
    let jobs: Vec<Job> = order
        .iter()
        .map(|&id| {
            let image = &loaded.images[id];
            let node = &graph.nodes[id];
            let mut l = config.build.labels.clone();
            l.extend(image.spec.labels.clone());
            l.extend(labels.clone());
            l.insert("org.opencontainers.image.title".into(), image.name.clone());
            l.insert(IMAGE_LABEL.into(), image.name.clone());
            l.insert(fingerprint::LABEL.into(), fps[id].hash.clone());
            let (repo, _) = engine::split_tag(&node.reference);
            Job {
                name: image.name.clone(),
                reference: node.reference.clone(),
                extra_tags: image
                    .spec
                    .tags
                    .iter()
                    .map(|t| format!("{repo}:{t}"))
                    .collect(),
                request: BuildRequest {
                    name: image.name.clone(),
                    dockerfile: loaded.rendered[id].text.clone(),
                    context: image.context.clone(),
                    args: loaded.build_args(id),
                    labels: l,
                    platform: config.build.platform.clone(),
                    pull: false, // bases were refreshed before planning
                    buildkit: args.buildkit || config.build.buildkit,
                },
                parents: node
                    .parents
                    .iter()
                    .filter_map(|p| index.get(p).copied())
                    .collect(),
            }
        })
        .collect();

    let mut logs = match &args.logs_dir {
        Some(dir) => Some(LogFiles::new(&loaded.tree.root.join(dir))?),
        None => None,
    };
    let mut display = Display {
        progress: progress::choose(args.progress, jobs.len()),
        tails: vec![VecDeque::new(); jobs.len()],
        logs: logs.as_mut(),
    };
    if args.no_deps {
        display.progress.note(
            "strata: --no-deps: building only the selection, on whatever parent images exist",
        );
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let opts = execute::Options {
        jobs: args.jobs.or(config.build.jobs).unwrap_or(cpus),
        retries: args.retries.unwrap_or(config.build.retries),
        fail_fast: args.fail_fast,
        push: args.push,
        push_jobs: config.build.push_jobs,
        order: Order::CriticalPath,
        weights: None,
    };
    let run = execute::execute(&jobs, engine.clone(), &opts, &mut display, interrupted()).await;
    display.progress.done();
    let tails = std::mem::take(&mut display.tails);
    drop(display);
    if let Some(l) = logs.as_mut() {
        l.flush();
    }

    let mut images = Vec::new();
    let reasons: BTreeMap<usize, &Vec<String>> =
        plan.items.iter().map(|i| (i.id, &i.reasons)).collect();
    for item in plan.items.iter().filter(|i| i.action == plan::Action::Skip) {
        images.push(ImageReport {
            name: graph.nodes[item.id].name.clone(),
            reference: graph.nodes[item.id].reference.clone(),
            status: Status::UpToDate,
            fingerprint: Some(fps[item.id].hash.clone()),
            image_id: None,
            duration_s: 0.0,
            error: None,
            reasons: item.reasons.clone(),
            failed_parent: None,
            tail: VecDeque::new(),
        });
    }
    for (k, ((job, o), &id)) in jobs.iter().zip(&run.outcomes).zip(&order).enumerate() {
        if o.status == Status::Built {
            fingerprint::remember(&fps[id]);
        }
        images.push(ImageReport {
            name: job.name.clone(),
            reference: job.reference.clone(),
            status: o.status,
            fingerprint: Some(fps[id].hash.clone()),
            image_id: o.image_id.clone(),
            duration_s: o.duration.as_secs_f64(),
            error: o.error.clone(),
            reasons: reasons[&id].clone(),
            failed_parent: o.failed_parent.clone(),
            tail: tails[k].clone(),
        });
    }
    let position: BTreeMap<&str, usize> = graph
        .order
        .iter()
        .enumerate()
        .map(|(k, &i)| (graph.nodes[i].name.as_str(), k))
        .collect();
    images.sort_by_key(|i| position[i.name.as_str()]);
    let summary = Summary {
        images,
        duration_s: run.wall.as_secs_f64(),
    };
    if let Some(p) = &args.summary {
        report::write_summary(&loaded.tree.root.join(p), &summary)?;
    }
    if let Some(p) = &args.junit {
        report::write_junit(&loaded.tree.root.join(p), &summary)?;
    }
    if args.progress != progress::Mode::Quiet {
        eprint!("{}", report::table(&summary));
    }
    if run.interrupted {
        eprintln!("strata: interrupted; existing tags were left as they were");
        return Ok(130);
    }
    let bad = summary
        .images
        .iter()
        .any(|i| !matches!(i.status, Status::Built | Status::UpToDate));
    Ok(if bad { 1 } else { 0 })
}

/// Fingerprints and the plan: base digests (one inspect per base), what
/// exists (one call for every image carrying a fingerprint), then the plan.
pub async fn prepare(
    loaded: &Loaded,
    selected: &[usize],
    engine: &dyn Engine,
    force: bool,
    no_deps: bool,
    pull: bool,
) -> Result<(Vec<fingerprint::Fingerprint>, plan::Plan)> {
    let mut bases = BTreeMap::new();
    let all_bases: BTreeSet<&String> = loaded.graph.nodes.iter().flat_map(|n| &n.bases).collect();
    if pull {
        // Refresh bases first, so that a new upstream base changes the fingerprints.
        for b in &all_bases {
            engine.pull(b).await.map_err(|e| {
                Error::engine(format!("cannot refresh base `{b}`: {e}"))
                    .help("check that the registry is reachable and the credentials in the Docker config, or build without --pull")
            })?;
        }
    }
    for b in all_bases {
        if let Some(info) = engine.inspect(b).await.map_err(engine_error)? {
            bases.insert(b.clone(), info.id);
        }
    }
    let fps = fingerprint::fingerprints(loaded, &bases)?;
    // What exists: the images in scope (the selection and its ancestors),
    // inspected 16 at a time. Listing every image instead costs the engine
    // time in proportion to all the images it holds (see docs/incremental.md).
    let mut scope = BTreeSet::new();
    for &id in selected {
        scope.extend(loaded.graph.ancestors(id));
    }
    let found: Vec<(
        usize,
        Result<Option<engine::ImageInfo>, engine::EngineError>,
    )> = futures_util::stream::iter(scope)
        .map(|id| async move { (id, engine.inspect(&loaded.graph.nodes[id].reference).await) })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut existing = HashMap::new();
    for (id, info) in found {
        if let Some(image) = info.map_err(engine_error)? {
            // An image without the label exists but was not built by strata: empty.
            let fp = image
                .labels
                .get(fingerprint::LABEL)
                .cloned()
                .unwrap_or_default();
            existing.insert(loaded.graph.nodes[id].reference.clone(), fp);
        }
    }
    let plan = plan::plan(&loaded.graph, selected, &fps, &existing, force, no_deps);
    Ok((fps, plan))
}

/// The `plan` command: what `build` would do, and why.
pub struct PlanArgs<'a> {
    pub pull: bool,
    pub selectors: &'a [String],
    pub json: bool,
    pub force: bool,
    pub no_deps: bool,
    pub engine: &'a str,
    pub since: Option<&'a str>,
}

pub fn show_plan(opts: &Options, args: &PlanArgs) -> Result<String> {
    let loaded = load::load(opts)?;
    let selected = selection(&loaded, args.selectors, args.since)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(Kind::Engine, format!("cannot start the async runtime: {e}")))?;
    let (fps, plan) = runtime.block_on(async {
        let engine = connect(args.engine, &loaded.tree.root).await?;
        let pull = args.pull || loaded.tree.config.build.pull;
        prepare(
            &loaded,
            &selected,
            engine.as_ref(),
            args.force,
            args.no_deps,
            pull,
        )
        .await
    })?;
    let graph = &loaded.graph;
    if args.json {
        let items: Vec<serde_json::Value> = plan
            .items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": graph.nodes[i.id].name,
                    "ref": graph.nodes[i.id].reference,
                    "fingerprint": fps[i.id].hash,
                    "action": i.action,
                    "reasons": i.reasons,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&items).expect("serializes") + "\n");
    }
    let w = plan
        .items
        .iter()
        .map(|i| graph.nodes[i.id].name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for i in &plan.items {
        let action = match i.action {
            plan::Action::Build => "build",
            plan::Action::Skip => "skip ",
        };
        out.push_str(&format!(
            "{action}  {:w$}  {}\n",
            graph.nodes[i.id].name,
            i.reasons.join("; ")
        ));
    }
    let n = plan.to_build().count();
    out.push_str(&format!(
        "{n} to build, {} up to date\n",
        plan.items.len() - n
    ));
    Ok(out)
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
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

/// OCI labels that describe this build: created, and revision and source from git.
fn oci_labels(root: &std::path::Path) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.opencontainers.image.created".to_string(),
        rfc3339_now(),
    );
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    if let Some(rev) = git(&["rev-parse", "HEAD"]) {
        labels.insert("org.opencontainers.image.revision".to_string(), rev);
    }
    if let Some(url) = git(&["remote", "get-url", "origin"]) {
        labels.insert(
            "org.opencontainers.image.source".to_string(),
            strip_userinfo(&url),
        );
    }
    labels
}

/// A URL without `user:password@` (credentials never go into labels).
fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            if path.is_empty() {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_string(),
    }
}

fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo("https://u:secret@git.example/a/b.git"),
            "https://git.example/a/b.git"
        );
        assert_eq!(strip_userinfo("git@host:a/b.git"), "git@host:a/b.git");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
