//! The `build`, `plan` and `publish` commands: drive the stages in order,
//! load → select → fingerprint → plan → execute → report, handing each
//! stage's output to the next. Every stage does its own work elsewhere.

use crate::config::Config;
use crate::error::{Code, Error, Result};
use crate::execute::{self, Order};
use crate::load::Options;
use crate::plan::{self, Ask, Plan};
use crate::prepare::{engine_specs, prepare, registry_for, runtime, scope, Scope};
use crate::progress::{self, Display};
use crate::report::{self, LogFiles, Summary};
use crate::{engine, git, history, lock, publish, registry, show};
use std::path::PathBuf;

/// The `build` command's arguments, as the command line gave them.
#[derive(Debug, Clone)]
pub(crate) struct BuildArgs {
    pub(crate) selectors: Vec<String>,
    pub(crate) jobs: Option<usize>,
    pub(crate) push: bool,
    pub(crate) ask: Ask,
    pub(crate) fail_fast: bool,
    pub(crate) retries: Option<u32>,
    pub(crate) pull: bool,
    pub(crate) progress: progress::Mode,
    pub(crate) logs_dir: Option<PathBuf>,
    pub(crate) summary: Option<PathBuf>,
    pub(crate) junit: Option<PathBuf>,
    pub(crate) metadata_file: Option<PathBuf>,
    /// Draw the run as a Gantt chart here.
    pub(crate) timeline: Option<PathBuf>,
    /// Build with BuildKit (also `build.buildkit: true`).
    pub(crate) buildkit: bool,
    /// `--engine HOST[=JOBS]`: empty = `engines:` in strata.yaml, else `docker`.
    pub(crate) engines: Vec<engine::pool::Spec>,
    /// Select what changed since this git revision (and what is built on it).
    pub(crate) since: Option<String>,
    /// Fail instead of waiting for another run's lock.
    pub(crate) no_wait: bool,
    /// Push content tags only; `strata publish` moves release tags later.
    pub(crate) no_publish: bool,
    /// Build without the engine's layer cache.
    pub(crate) no_cache: bool,
    /// Run no image tests (the summary says so).
    pub(crate) no_tests: bool,
    /// `strata test`: run the tests of the selected images, which must be
    /// built already; build nothing.
    pub(crate) test_only: bool,
}

impl Default for BuildArgs {
    /// Every image, the Docker engine, nothing pushed, output as the terminal allows.
    fn default() -> Self {
        BuildArgs {
            selectors: Vec::new(),
            jobs: None,
            push: false,
            ask: Ask::default(),
            fail_fast: false,
            retries: None,
            pull: false,
            progress: progress::Mode::Auto,
            logs_dir: None,
            summary: None,
            junit: None,
            metadata_file: None,
            timeline: None,
            buildkit: false,
            engines: Vec::new(),
            since: None,
            no_wait: false,
            no_publish: false,
            no_cache: false,
            no_tests: false,
            test_only: false,
        }
    }
}

/// The `plan` command's arguments.
pub(crate) struct PlanArgs<'a> {
    pub(crate) selectors: &'a [String],
    pub(crate) json: bool,
    pub(crate) ask: Ask,
    pub(crate) pull: bool,
    pub(crate) engines: &'a [engine::pool::Spec],
    pub(crate) since: Option<&'a str>,
}

pub fn show_plan(opts: &Options, args: &PlanArgs) -> Result<String> {
    let s = scope(opts, args.selectors, args.since)?;
    let specs = engine_specs(&s, args.engines)?;
    let (plan, _) = runtime()?.block_on(async {
        let engines = engine::pool::connect(&specs, &s.loaded.tree.root, 1).await?;
        let registry = registry_for(&s, specs.iter().all(|e| e.is_sim()));
        prepare(
            &s,
            &engines,
            registry.as_ref(),
            args.ask,
            args.pull,
            engines.len() > 1,
        )
        .await
    })?;
    let mut plan = plan;
    plan::attach_tests(&mut plan, &s.suites, crate::history::passed);
    let mut out = show::plan(&plan, args.json);
    // What devfiles hold that strata does not build, and who needs root.
    let mut notes = String::new();
    for d in &s.loaded.devfiles {
        for (name, why) in &d.unbuildable {
            notes.push_str(&format!(
                "not built by strata: {name} ({}): {why}\n",
                d.path
            ));
        }
    }
    for item in &plan.items {
        if s.loaded.images[item.id].spec.root_required {
            notes.push_str(&format!(
                "{}: rootRequired (the devfile says its build needs root)\n",
                item.name
            ));
        }
    }
    if args.json {
        eprint!("{notes}");
    } else {
        out.push_str(&notes);
    }
    Ok(out)
}

/// The selected images and what each is built on (direct parents among
/// them), parents first: every selected image with `all`, else those the
/// engine and registry lack with their current inputs (what a fan-out has
/// to build). For `strata ci`.
fn docker() -> [engine::pool::Spec; 1] {
    [engine::pool::Spec {
        host: "docker".into(),
        jobs: None,
    }]
}

pub fn jobs(opts: &Options, selectors: &[String], all: bool) -> Result<Vec<(String, Vec<String>)>> {
    let s = scope(opts, selectors, None)?;
    let graph = &s.loaded.graph;
    let wanted: std::collections::BTreeSet<usize> = if all {
        s.selected.iter().copied().collect()
    } else {
        let (plan, _) = runtime()?.block_on(async {
            let engines = engine::pool::connect(&docker(), &s.loaded.tree.root, 1).await?;
            let registry = registry_for(&s, false);
            prepare(&s, &engines, registry.as_ref(), Ask::default(), false, true).await
        })?;
        plan.to_build().map(|i| i.id).collect()
    };
    Ok(graph
        .order
        .iter()
        .filter(|i| wanted.contains(i))
        .map(|&i| {
            let parents = graph.nodes[i]
                .parents
                .iter()
                .filter(|p| wanted.contains(p))
                .map(|&p| graph.nodes[p].name.clone())
                .collect();
            (graph.nodes[i].name.clone(), parents)
        })
        .collect())
}

/// `strata publish`: every image of the selection (and the stale parents
/// the plan adds) must be in the registry under its current content tag;
/// then each release reference moves to it. Nothing moves otherwise.
pub fn publish(opts: &Options, selectors: &[String], engine_spec: &str) -> Result<Code> {
    let s = scope(opts, selectors, None)?;
    let spec = engine::pool::Spec::parse(engine_spec)?;
    let Some(registry) = registry_for(&s, spec.is_sim()) else {
        return Err(Error::input(
            "`strata publish` moves tags in a registry, and `registry:` is not set",
        )
        .help("set `registry:` in strata.yaml (or --set registry=HOST)"));
    };
    runtime()?.block_on(async {
        let engines = engine::pool::connect(&[spec], &s.loaded.tree.root, 1).await?;
        let (plan, _) = prepare(&s, &engines, Some(&registry), Ask::default(), false, true).await?;
        let missing: Vec<&str> = plan
            .items
            .iter()
            .filter(|i| i.published.is_none())
            .map(|i| i.name.as_str())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "strata: nothing was published: not in the registry with their current inputs: {}\n  \
                 help: push them first (`strata build --push`)",
                missing.join(", ")
            );
            return Ok(Code::Failed);
        }
        let items: Vec<&plan::Item> = plan.items.iter().collect();
        let commit = publish::Commit::head(&s.loaded.tree.root);
        let done = publish::release(&items, &registry, commit.as_ref()).await;
        let mut failed = 0;
        for (item, d) in items.iter().zip(&done) {
            let digest = d.digest.as_deref().unwrap_or("");
            for r in &d.moved {
                println!("{} | {r} -> {digest}", item.name);
            }
            if let Some(e) = &d.error {
                failed += 1;
                eprintln!("strata: {} | {e}", item.name);
            }
        }
        Ok(if failed == 0 { Code::Success } else { Code::Failed })
    })
}

pub fn run(opts: &Options, args: &BuildArgs) -> Result<Code> {
    let s = scope(opts, &args.selectors, args.since.as_deref())?;
    let root = &s.loaded.tree.root;
    // Outputs are checked before anything is built: a bad path is exit 2.
    for path in args
        .summary
        .iter()
        .chain(&args.junit)
        .chain(&args.metadata_file)
        .chain(&args.timeline)
    {
        if !report::is_stdout(path) {
            report::check_writable(&root.join(path))?;
        }
    }
    let specs = engine_specs(&s, &args.engines)?;
    // One run per engine and namespace; the plan is made under the locks
    // (taken in one order, so two runs over the same engines never wait
    // on each other crosswise).
    let config = &s.loaded.tree.config;
    let scope_key = format!("{}/{}", config.registry, config.namespace);
    let mut names: Vec<String> = specs.iter().map(|e| engine::pool::name(e, root)).collect();
    names.sort();
    names.dedup();
    let _locks = names
        .iter()
        .map(|name| lock::acquire(name, &scope_key, !args.no_wait))
        .collect::<Result<Vec<_>>>()?;
    let mut logs = match &args.logs_dir {
        Some(d) => Some(LogFiles::new(&root.join(d))?),
        // Without --logs-dir the logs of failed images are still kept.
        None => history::cache_dir().and_then(|c| LogFiles::for_failures(&c.join("logs"))),
    };
    let runtime = runtime()?;
    let code = runtime.block_on(build(&s, args, &specs, logs.as_mut()));
    // Everything that matters is written; a tar writer still blocked on an
    // engine that stopped reading must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

async fn build(
    s: &Scope,
    args: &BuildArgs,
    specs: &[engine::pool::Spec],
    mut logs: Option<&mut LogFiles>,
) -> Result<Code> {
    let (loaded, inputs) = (&s.loaded, &s.inputs);
    let config = &loaded.tree.config;
    let mut opts = run_options(args, config);
    let engines = engine::pool::connect(specs, &loaded.tree.root, opts.jobs).await?;
    let several = engines.len() > 1;
    if let Some(podman) = engines.iter().find(|m| m.engine.is_podman()) {
        if args.buildkit || config.build.buildkit {
            return Err(Error::input(format!(
                "--buildkit: the engine at `{}` is Podman, which builds with Buildah, not BuildKit",
                podman.name
            ))
            .help("leave out --buildkit (and build.buildkit) with Podman"));
        }
    }
    let sim = specs.iter().all(|e| e.is_sim());
    let registry = registry_for(s, sim);
    // Several engines hand every image on through its content tag.
    let (mut plan, holds) = prepare(
        s,
        &engines,
        registry.as_ref(),
        args.ask,
        args.pull,
        args.push || several,
    )
    .await?;
    if args.push && registry.is_none() && !sim {
        // A registry that cannot be reached or refuses us is exit 3, found
        // before anything is built. With `registry:` set, `prepare` has
        // asked it about every image of the run already.
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
    if args.test_only {
        only_tests(&mut plan, s)?;
    }
    if !args.no_tests {
        let passed = |fp: &str, key: &str| !args.test_only && crate::history::passed(fp, key);
        plan::attach_tests(&mut plan, &s.suites, passed);
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
    for item in &mut plan.items {
        item.request.no_cache = args.no_cache;
    }
    // Up-to-date images keep the names their siblings' FROM lines use.
    for (k, item) in plan.items.iter().enumerate() {
        if item.action == plan::Action::Build || item.aliases.is_empty() {
            continue;
        }
        for (m, held) in engines.iter().zip(&holds) {
            if !held[k] {
                continue;
            }
            for alias in &item.aliases {
                m.engine
                    .tag(&item.reference, alias)
                    .await
                    .map_err(engine::unreachable)?;
            }
        }
    }
    let mut display = Display {
        progress: progress::choose(args.progress, plan.to_build().map(|i| i.name.as_str())),
        logs: logs.as_deref_mut(),
    };
    if args.ask.no_deps {
        display
            .progress
            .note(&show::no_deps_note(&plan.stale_outside));
    }
    // The critical path weighs each image by its last build time here
    // (one small file each: read only when something is to be built).
    if plan.to_build().next().is_some() {
        opts.weights = history::expected_durations(
            plan.items.iter().map(|i| engine::split_tag(&i.reference).0),
        );
    }
    if several {
        opts.push = true;
        opts.publish_each &= args.push;
        display.progress.note(&format!(
            "strata: building on {} engines: {}",
            engines.len(),
            engines
                .iter()
                .map(|m| format!("{} ({} at once)", m.name, m.jobs))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let single = engines[0].name.clone();
    let pool = execute::Pool {
        members: engines,
        holds,
    };
    let stop = execute::interrupted();
    let mut run = execute::execute_on(&plan.items, pool, &opts, &mut display, stop).await;
    display.progress.done();
    drop(display);
    if let (true, false, false, Some(r)) =
        (args.push, opts.publish_each, args.no_publish, &registry)
    {
        publish_set(&plan, &mut run, r, &loaded.tree.root).await;
    }
    for (item, o) in plan.items.iter().zip(&run.outcomes) {
        if o.status == execute::Status::Built {
            history::remember(&item.fingerprint);
            history::remember_duration(
                engine::split_tag(&item.reference).0,
                o.duration.as_secs_f64(),
            );
        }
    }
    let mut summary = Summary::new(&plan, &run);
    summary.tests_skipped = args.no_tests;
    if args.no_tests {
        eprintln!("strata: --no-tests: no image test ran");
    }
    let root = &loaded.tree.root;
    for (image, o) in summary.images.iter_mut().zip(&run.outcomes) {
        image.engine = match (&o.engine, several) {
            (Some(name), _) => name.clone(),
            (None, true) => String::new(),
            (None, false) => single.clone(),
        };
    }
    summary.engines_lost = run
        .lost
        .iter()
        .map(|(name, why)| report::LostEngine {
            engine: name.clone(),
            error: why.clone(),
        })
        .collect();
    let files = [&args.summary, &args.junit, &args.metadata_file].map(|p| {
        p.as_ref().map(|p| {
            if report::is_stdout(p) {
                p.clone()
            } else {
                root.join(p)
            }
        })
    });
    let kept = logs.and_then(|l| l.close(&summary));
    let quiet = args.progress == progress::Mode::Quiet;
    let written = report::finish(&summary, &files, quiet, kept.as_deref());
    let drawn = args.timeline.as_ref().is_none_or(|path| {
        let bars: Vec<crate::timeline::Bar> = summary
            .images
            .iter()
            .map(|i| crate::timeline::Bar {
                name: i.name.clone(),
                status: i.status.as_str().to_string(),
                started_at: i.started_at.clone(),
                finished_at: i.finished_at.clone(),
                parents: i.parents.clone(),
            })
            .collect();
        match crate::timeline::write(&root.join(path), &bars) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("strata: {e}");
                false
            }
        }
    });
    let written = written && drawn;
    let code = match (run.interrupted, summary.any_failed(), written) {
        _ if run.all_lost => {
            eprintln!("strata: every engine was lost; the run could not go on");
            Code::Unreachable
        }
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

/// `strata test`: the selected images must exist with their current inputs
/// (nothing is built); each is tested again.
fn only_tests(plan: &mut Plan, s: &Scope) -> Result<()> {
    let selected: std::collections::BTreeSet<usize> = s.selected.iter().copied().collect();
    let stale: Vec<&str> = plan
        .items
        .iter()
        .filter(|i| selected.contains(&i.id) && (i.action == plan::Action::Build || !i.local))
        .map(|i| i.name.as_str())
        .collect();
    if !stale.is_empty() {
        return Err(Error::input(format!(
            "not built with their current inputs here, so there is nothing to test: {}",
            stale.join(", ")
        ))
        .help("build them first: `strata build` (which runs their tests too)"));
    }
    plan.items.retain(|i| selected.contains(&i.id));
    let positions: std::collections::HashMap<usize, usize> = plan
        .items
        .iter()
        .enumerate()
        .map(|(k, i)| (i.id, k))
        .collect();
    for item in &mut plan.items {
        item.parents = s.loaded.graph.nodes[item.id]
            .parents
            .iter()
            .filter_map(|p| positions.get(p).copied())
            .collect();
    }
    Ok(())
}

/// The publish step of a `--push` run: every release tag moves in the
/// registry, or none does when an image of the set failed.
async fn publish_set(
    plan: &Plan,
    run: &mut execute::Run,
    registry: &registry::Registry,
    root: &std::path::Path,
) {
    if run.interrupted {
        eprintln!("strata: interrupted; no release tag was moved in the registry");
        return;
    }
    let not_ok = run.outcomes.iter().filter(|o| !o.status.is_ok()).count();
    if not_ok > 0 {
        eprintln!(
            "strata: no release tag was moved in the registry: {not_ok} of {} images did not build or upload",
            plan.items.len()
        );
        return;
    }
    let items: Vec<&plan::Item> = plan.items.iter().collect();
    let commit = publish::Commit::head(root);
    let done = publish::release(&items, registry, commit.as_ref()).await;
    for (o, d) in run.outcomes.iter_mut().zip(done) {
        o.pushed = d.moved;
        o.digest = d.digest.or(o.digest.take());
        if let Some(e) = d.error {
            o.status = execute::Status::Failed;
            o.error = Some(e);
        }
    }
}

fn run_options(args: &BuildArgs, config: &Config) -> execute::Options {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    execute::Options {
        jobs: args.jobs.or(config.build.jobs).unwrap_or(cpus),
        retries: args.retries.unwrap_or(config.build.retries),
        fail_fast: args.fail_fast,
        push: args.push,
        push_jobs: config.build.push_jobs,
        publish_each: config.build.publish == crate::config::Publish::Each && !args.no_publish,
        order: Order::CriticalPath,
        weights: None,
    }
}
