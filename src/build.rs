//! The `build` and `plan` commands: drive the stages in order,
//! load → select → fingerprint → plan → execute → report, handing each
//! stage's output to the next. Every stage does its own work elsewhere.

use crate::error::{Code, Error, Result};
use crate::execute::{self, Order};
use crate::inputs::{self, Inputs};
use crate::load::{self, Loaded, Options};
use crate::plan::{self, Ask, Known, Plan};
use crate::progress::{self, Display};
use crate::report::{self, LogFiles, Summary};
use crate::{affected, engine, fingerprint, git, history, select, show, survey};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct BuildArgs {
    pub selectors: Vec<String>,
    pub jobs: Option<usize>,
    pub push: bool,
    pub ask: Ask,
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

/// The `plan` command's arguments.
pub struct PlanArgs<'a> {
    pub selectors: &'a [String],
    pub json: bool,
    pub ask: Ask,
    pub pull: bool,
    pub engine: &'a str,
    pub since: Option<&'a str>,
}

/// The selection: selectors, narrowed to what changed since `since` when given.
fn selection(
    loaded: &Loaded,
    inputs: &[Inputs],
    selectors: &[String],
    since: Option<&str>,
) -> Result<Vec<usize>> {
    let sel = select::select(&loaded.graph, &loaded.tree.config, selectors)?;
    let Some(rev) = since else { return Ok(sel.ids) };
    let hit = affected::affected(
        &loaded.graph,
        inputs,
        &git::changed_since(&loaded.tree.root, rev)?,
    );
    Ok(sel.ids.into_iter().filter(|i| hit.contains(i)).collect())
}

/// Fingerprints and the plan: what exists is asked of the engine first.
async fn prepare(
    loaded: &Loaded,
    inputs: &[Inputs],
    selected: &[usize],
    engine: &dyn engine::Engine,
    ask: Ask,
    pull: bool,
) -> Result<Plan> {
    let graph = &loaded.graph;
    let bases = survey::bases(graph, engine, pull || loaded.tree.config.build.pull).await?;
    let dockerfiles: Vec<&str> = loaded.rendered.iter().map(|r| r.text.as_str()).collect();
    let fps = fingerprint::fingerprints(graph, &dockerfiles, inputs, &bases)?;
    let existing = survey::existing(graph, selected, engine).await?;
    let past = history::recall(existing.values().map(String::as_str));
    Ok(plan::plan(
        graph,
        selected,
        &fps,
        &Known { existing, past },
        ask,
    ))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::engine(format!("cannot start the async runtime: {e}")))
}

pub fn show_plan(opts: &Options, args: &PlanArgs) -> Result<String> {
    let loaded = load::load(opts)?;
    let inputs = inputs::collect(&loaded)?;
    let selected = selection(&loaded, &inputs, args.selectors, args.since)?;
    let plan = runtime()?.block_on(async {
        let engine = engine::connect(args.engine, &loaded.tree.root).await?;
        prepare(
            &loaded,
            &inputs,
            &selected,
            engine.as_ref(),
            args.ask,
            args.pull,
        )
        .await
    })?;
    Ok(show::plan(&plan, args.json))
}

pub fn run(opts: &Options, args: &BuildArgs) -> Result<Code> {
    let loaded = load::load(opts)?;
    let root = &loaded.tree.root;
    // Outputs are checked before anything is built: a bad path is exit 2.
    for path in args.summary.iter().chain(&args.junit) {
        report::check_writable(&root.join(path))?;
    }
    let mut logs = args
        .logs_dir
        .as_ref()
        .map(|d| LogFiles::new(&root.join(d)))
        .transpose()?;
    let inputs = inputs::collect(&loaded)?;
    let selected = selection(&loaded, &inputs, &args.selectors, args.since.as_deref())?;
    let runtime = runtime()?;
    let code = runtime.block_on(build(&loaded, &inputs, &selected, args, logs.as_mut()));
    // Everything that matters is written; a tar writer still blocked on an
    // engine that stopped reading must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

async fn build(
    loaded: &Loaded,
    inputs: &[Inputs],
    selected: &[usize],
    args: &BuildArgs,
    mut logs: Option<&mut LogFiles>,
) -> Result<Code> {
    let config = &loaded.tree.config;
    let engine = engine::connect(&args.engine, &loaded.tree.root).await?;
    let mut plan = prepare(
        loaded,
        inputs,
        selected,
        engine.as_ref(),
        args.ask,
        args.pull,
    )
    .await?;
    // Two git calls; a no-op build needs no labels.
    let labels = match plan.to_build().next() {
        Some(_) => git::oci_labels(&loaded.tree.root),
        None => Default::default(),
    };
    plan::requests(
        &mut plan,
        loaded,
        inputs,
        &labels,
        args.buildkit || config.build.buildkit,
    );
    let mut display = Display {
        progress: progress::choose(args.progress, plan.to_build().count()),
        logs: logs.as_deref_mut(),
    };
    if args.ask.no_deps {
        display
            .progress
            .note(&show::no_deps_note(&plan.stale_outside));
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
    let run = execute::execute(
        &plan.items,
        engine.clone(),
        &opts,
        &mut display,
        interrupted(),
    )
    .await;
    display.progress.done();
    drop(display);
    if let Some(l) = logs {
        l.flush();
    }
    for (item, o) in plan.items.iter().zip(&run.outcomes) {
        if o.status == execute::Status::Built {
            history::remember(&item.fingerprint);
        }
    }
    let summary = Summary::new(&plan, &run);
    let mut code = match (run.interrupted, summary.any_failed()) {
        (true, _) => Code::Interrupted,
        (false, true) => Code::Failed,
        (false, false) => Code::Success,
    };
    // A report that cannot be written now is said, and the build's exit code stays.
    let root = &loaded.tree.root;
    let writes = [
        (
            &args.summary,
            report::write_summary as fn(&std::path::Path, &Summary) -> Result<()>,
        ),
        (&args.junit, report::write_junit),
    ];
    for (path, write) in writes {
        if let Some(Err(e)) = path.as_ref().map(|p| write(&root.join(p), &summary)) {
            eprintln!("strata: {e}");
            if code == Code::Success {
                code = Code::Report;
            }
        }
    }
    let table = report::table(&summary);
    match args.progress {
        progress::Mode::Quiet => eprintln!("{}", table.lines().next().unwrap_or_default()),
        _ => eprint!("{table}"),
    }
    if run.interrupted {
        eprintln!("strata: interrupted; existing tags were left as they were");
    }
    Ok(code)
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
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
