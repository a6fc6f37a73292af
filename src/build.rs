//! The `build` and `plan` commands: drive the stages in order,
//! load → select → fingerprint → plan → execute → report, handing each
//! stage's output to the next. Every stage does its own work elsewhere.

use crate::cli::{BuildArgs, PlanArgs};
use crate::config::Config;
use crate::error::{Code, Error, Result};
use crate::execute::{self, Order};
use crate::inputs::{self, Inputs};
use crate::load::{self, Loaded, Options};
use crate::plan::{self, Ask, Known, Plan};
use crate::progress::{self, Display};
use crate::report::{self, LogFiles, Summary};
use crate::{affected, engine, fingerprint, git, history, lock, registry, select, show, survey};

/// A loaded tree, the inputs of its images, and the selection: selectors,
/// narrowed to what changed since `since` when given.
struct Scope {
    loaded: Loaded,
    inputs: Vec<Inputs>,
    selected: Vec<usize>,
}

fn scope(opts: &Options, selectors: &[String], since: Option<&str>) -> Result<Scope> {
    let loaded = load::load(opts)?;
    let inputs = inputs::collect(&loaded)?;
    let sel = select::select(&loaded.graph, &loaded.tree.config, selectors)?;
    let mut selected = sel.ids;
    if let Some(rev) = since {
        let changed = git::changed_since(&loaded.tree.root, rev)?;
        let hit = affected::affected(&loaded.graph, &inputs, &changed);
        selected.retain(|i| hit.contains(i));
    }
    Ok(Scope {
        loaded,
        inputs,
        selected,
    })
}

/// Fingerprints and the plan: what exists is asked of the engine first.
async fn prepare(s: &Scope, engine: &dyn engine::Engine, ask: Ask, pull: bool) -> Result<Plan> {
    let graph = &s.loaded.graph;
    let pull = pull || s.loaded.tree.config.build.pull;
    let bases = survey::bases(graph, engine, pull).await?;
    let dockerfiles: Vec<&str> = s.loaded.rendered.iter().map(|r| r.text.as_str()).collect();
    let fps = fingerprint::fingerprints(graph, &dockerfiles, &s.inputs, &bases)?;
    let existing = survey::existing(graph, &s.selected, engine).await?;
    let past = history::recall(existing.values().map(String::as_str));
    let known = Known { existing, past };
    Ok(plan::plan(graph, &s.selected, &fps, &known, ask))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::engine(format!("cannot start the async runtime: {e}")))
}

pub fn show_plan(opts: &Options, args: &PlanArgs) -> Result<String> {
    let s = scope(opts, args.selectors, args.since)?;
    let plan = runtime()?.block_on(async {
        let engine = engine::connect(args.engine, &s.loaded.tree.root).await?;
        prepare(&s, engine.as_ref(), args.ask, args.pull).await
    })?;
    Ok(show::plan(&plan, args.json))
}

pub fn run(opts: &Options, args: &BuildArgs) -> Result<Code> {
    let s = scope(opts, &args.selectors, args.since.as_deref())?;
    let root = &s.loaded.tree.root;
    // Outputs are checked before anything is built: a bad path is exit 2.
    for path in args.summary.iter().chain(&args.junit) {
        report::check_writable(&root.join(path))?;
    }
    // One run per engine and namespace; the plan is made under the lock.
    let config = &s.loaded.tree.config;
    let scope_key = format!("{}/{}", config.registry, config.namespace);
    let _lock = lock::acquire(
        &engine::identity(&args.engine, root),
        &scope_key,
        !args.no_wait,
    )?;
    let logs_dir = args.logs_dir.as_ref().map(|d| root.join(d));
    let mut logs = logs_dir.map(|d| LogFiles::new(&d)).transpose()?;
    let runtime = runtime()?;
    let code = runtime.block_on(build(&s, args, logs.as_mut()));
    // Everything that matters is written; a tar writer still blocked on an
    // engine that stopped reading must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

async fn build(s: &Scope, args: &BuildArgs, mut logs: Option<&mut LogFiles>) -> Result<Code> {
    let (loaded, inputs) = (&s.loaded, &s.inputs);
    let config = &loaded.tree.config;
    let engine = engine::connect(&args.engine, &loaded.tree.root).await?;
    let mut plan = prepare(s, engine.as_ref(), args.ask, args.pull).await?;
    if args.push && !args.engine.starts_with("sim:") {
        // A registry that cannot be reached or refuses us is exit 3, found
        // before anything is built.
        let refs: Vec<&str> = plan
            .to_build()
            .flat_map(|item| execute::release_refs(item).map(String::as_str))
            .collect();
        if !refs.is_empty() {
            registry::Registry::new(refs.iter().copied(), &config.insecure_registries)
                .check_push(&refs)
                .await?;
        }
    }
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
    let opts = run_options(args, config);
    let stop = execute::interrupted();
    let run = execute::execute(&plan.items, engine.clone(), &opts, &mut display, stop).await;
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
    let root = &loaded.tree.root;
    let files = [&args.summary, &args.junit].map(|p| p.as_ref().map(|p| root.join(p)));
    let written = report::finish(&summary, &files, args.progress == progress::Mode::Quiet);
    let code = match (run.interrupted, summary.any_failed(), written) {
        (true, _, _) => Code::Interrupted,
        (false, true, _) => Code::Failed,
        (false, false, false) => Code::Report,
        (false, false, true) => Code::Success,
    };
    if run.interrupted {
        eprintln!("strata: interrupted; existing tags were left as they were");
    }
    Ok(code)
}

fn run_options(args: &BuildArgs, config: &Config) -> execute::Options {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    execute::Options {
        jobs: args.jobs.or(config.build.jobs).unwrap_or(cpus),
        retries: args.retries.unwrap_or(config.build.retries),
        fail_fast: args.fail_fast,
        push: args.push,
        push_jobs: config.build.push_jobs,
        order: Order::CriticalPath,
        weights: None,
    }
}
