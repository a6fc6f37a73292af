//! A session: what a command that talks to engines opens once. The loaded
//! and selected tree (`prepare::scope`), the async runtime, the run locks,
//! the engines (one shape: the settings' specs, connected in `plan`) and
//! the registry. `plan` is the only connect-and-prepare; `execute`,
//! `publish` and `remember` drive the stages after it. Commands call these
//! and never an engine themselves. Knows nothing of clap or of how results
//! are shown.

use crate::commands::prepare::{self, Scope};
use crate::commands::settings::{Publish, Settings, Tests};
use crate::engine::pool::Member;
use crate::execute::{self, Order, Run, Status};
use crate::graph::load::Options;
use crate::plan::{self, Action, Plan};
use crate::tree::config::Config;
use crate::util::error::{Error, Result};
use crate::{
    commands::lock, engine, plan::history, publish, publish::registry, report::progress, util::git,
};
use std::path::Path;

mod supply;

pub struct Session {
    pub scope: Scope,
    /// The registry consulted (set by `plan`; none without `registry:` or
    /// with the simulated engine).
    pub registry: Option<registry::Registry>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Connected by `plan`, handed to the scheduler by `execute`.
    engines: Vec<Member>,
    /// The names of the engines of the run, as the summary gives them.
    pub engine_names: Vec<String>,
    locks: Vec<Option<lock::RunLock>>,
    /// What `engines` were connected as: a watch's next plan keeps them.
    connected_as: Option<(Vec<engine::pool::Spec>, usize)>,
    /// Items a newer edit makes stale mid-run (`strata watch`).
    stale: Option<std::sync::Arc<execute::Stale>>,
}

impl Session {
    /// Load the tree and select: selectors, narrowed to what changed since
    /// `since` when given. Bad input is exit 2 here, before any engine.
    pub fn open(opts: &Options, selectors: &[String], since: Option<&str>) -> Result<Session> {
        Session::of(prepare::scope(opts, selectors, since)?)
    }

    /// A session over a scope made already.
    pub fn of(scope: Scope) -> Result<Session> {
        let runtime = runtime()?;
        Ok(Session {
            scope,
            registry: None,
            runtime: Some(runtime),
            engines: Vec::new(),
            engine_names: Vec::new(),
            locks: Vec::new(),
            stale: None,
            connected_as: None,
        })
    }

    /// The tree as it is now, loaded again (`strata watch`): the engines,
    /// locks and runtime stay.
    pub fn rescope(&mut self, scope: Scope) {
        self.scope = scope;
    }

    /// The next `execute` cancels the items `stale` is told of (`strata
    /// watch`); None: nothing is cancelled but by an interrupt.
    pub fn cancel_when_stale(&mut self, stale: Option<std::sync::Arc<execute::Stale>>) {
        self.stale = stale;
    }

    pub fn config(&self) -> &Config {
        &self.scope.loaded.tree.config
    }

    pub fn root(&self) -> &Path {
        &self.scope.loaded.tree.root
    }

    /// One run per engine and namespace: the lock of every engine of the
    /// run, taken in one order (so two runs over the same engines never
    /// wait on each other crosswise).
    /// Taken once per session: a watch keeps its locks from run to run.
    pub fn lock(&mut self, s: &Settings) -> Result<()> {
        if !self.locks.is_empty() {
            return Ok(());
        }
        let config = self.config();
        let scope_key = format!("{}/{}", config.registry, config.namespace);
        let mut names: Vec<String> = s
            .engines
            .iter()
            .map(|e| engine::pool::lock_key(e, self.root()))
            .collect();
        names.sort();
        names.dedup();
        self.locks = names
            .iter()
            .map(|name| lock::acquire(name, &scope_key, s.wait))
            .collect::<Result<Vec<_>>>()?;
        Ok(())
    }

    fn block_on<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        match &self.runtime {
            Some(rt) => rt.block_on(work),
            None => unreachable!("the runtime lives until the session is dropped"),
        }
    }

    /// Connect the engines and plan: fingerprints, what exists where, build
    /// or skip and why; then the plan completes its records (tests, build
    /// requests, what each engine holds). Up-to-date images get their
    /// local aliases here. Exit 2 or 3 before anything is built.
    pub fn plan(&mut self, s: &Settings) -> Result<Plan> {
        self.registry = prepare::registry_for(&self.scope, s.simulated());
        let (scope, registry) = (&self.scope, self.registry.as_ref());
        let root = scope.loaded.tree.root.clone();
        let connected = std::mem::take(&mut self.engines);
        let same = self.connected_as.as_ref() == Some(&(s.engines.clone(), s.jobs));
        let work = async {
            let mut engines = match same && answer(&connected).await {
                true => connected,
                false => engine::pool::connect(&s.engines, &root, s.jobs).await?,
            };
            builders_fit(&engines, s)?;
            let mut plan =
                prepare::prepare(scope, &engines, registry, s.ask, s.pull, s.upload).await?;
            if s.push && registry.is_none() && !s.simulated() {
                check_push(
                    &plan,
                    scope.loaded.tree.config.insecure_registries.as_slice(),
                )
                .await?;
            }
            complete(&mut plan, scope, s)?;
            for (platform, base) in probes(&plan) {
                engine::pool::probe(&mut engines, &platform, &base).await;
            }
            platforms_fit(&engines, &plan)?;
            say_emulated(&engines, &plan);
            let mut builders: Vec<&str> = engines
                .iter()
                .map(|m| m.engine.builder(s.builder).name())
                .collect();
            builders.sort();
            builders.dedup();
            plan.builder = builders.join("/");
            tag_aliases(&engines, &plan).await?;
            Ok::<_, Error>((engines, plan))
        };
        let (engines, plan) = self.block_on(work)?;
        self.connected_as = Some((s.engines.clone(), s.jobs));
        self.engine_names = engines.iter().map(|m| m.name.clone()).collect();
        self.engines = engines;
        Ok(plan)
    }

    /// `strata watch --run`: a container of `run.image` started on the
    /// first engine, its output to `log`; stopped by `stop_serving`.
    pub fn serve(&self, run: engine::ContainerRun, log: engine::Log) -> Result<Served> {
        let engine = (self.engines.first().map(|m| m.engine.clone()))
            .ok_or_else(|| Error::engine("no engine is connected"))?;
        let image = run.image.clone();
        let id = self.block_on(engine.serve(run, log));
        let id = id.map_err(|e| Error::engine(format!("--run `{image}`: {e}")))?;
        Ok(Served { engine, id })
    }

    pub fn stop_serving(&self, served: Served) {
        self.block_on(served.engine.stop_serving(&served.id));
    }

    /// Name in the summary how each image built here was built: natively,
    /// or emulated by the engine that built it.
    pub fn name_build_modes(&self, plan: &Plan, summary: &mut crate::report::Summary) {
        for (item, image) in plan.items.iter().zip(summary.images.iter_mut()) {
            if image.status != execute::Status::Built {
                continue;
            }
            let p = &item.request.platform;
            let member = (self.engines.iter()).find(|m| m.name == image.engine);
            let member = member.or(self.engines.first().filter(|_| self.engines.len() == 1));
            image.build_mode = member.map(|m| match m.emulates(p) {
                true => "emulated",
                false => "native",
            });
        }
    }

    /// Run the plan over the engines `plan` connected, showing progress.
    pub fn execute(&mut self, plan: &Plan, s: &Settings, display: &mut progress::Display) -> Run {
        let mut opts = execute::Options {
            jobs: s.jobs,
            retries: s.retries,
            fail_fast: s.fail_fast,
            push: s.upload,
            push_jobs: s.push_jobs,
            publish_each: s.publish == Publish::Each,
            order: Order::CriticalPath,
            weights: None,
            stale: self.stale.clone(),
        };
        // The critical path weighs each image by its last build time here
        // (one small file each: read only when something is to be built).
        if plan.to_build().next().is_some() {
            let keys: Vec<String> = plan.items.iter().map(duration_key).collect();
            opts.weights = history::expected_durations(keys.iter().map(String::as_str));
        }
        if self.engines.len() > 1 {
            display.progress.note(&format!(
                "strata: building on {} engines: {}",
                self.engines.len(),
                self.engines
                    .iter()
                    .map(|m| format!("{} ({} at once)", m.name, m.jobs))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let engines: Vec<_> = self.engines.iter().map(|m| m.engine.clone()).collect();
        let pool = execute::Pool {
            members: self.engines.clone(),
        };
        let work = execute::execute_on(&plan.items, pool, &opts, display, execute::interrupted());
        let run = self.block_on(work);
        // An interrupted run dropped its tests mid-way: their containers
        // go, and so do the hold tags of builds that never got their own.
        let cleanup = futures_util::future::join_all(engines.iter().map(|e| e.remove_containers()));
        self.block_on(cleanup);
        // So do those of builds cancelled as stale.
        let cancelled = |i: usize| run.outcomes[i].status == Status::Cancelled;
        let all = run.interrupted || run.all_lost;
        if all || run.outcomes.iter().any(|o| o.status == Status::Cancelled) {
            let holds: Vec<String> = (plan.items.iter().enumerate())
                .filter(|&(i, item)| item.action != Action::Skip && (all || cancelled(i)))
                .map(|(_, i)| crate::util::reference::hold_tag(&i.reference))
                .collect();
            let unhold = futures_util::future::join_all(
                engines
                    .iter()
                    .flat_map(|e| holds.iter().map(move |h| e.remove_image(h))),
            );
            self.block_on(unhold);
        }
        display.progress.done();
        run
    }

    /// The publish step of a `--push` run (`build.publish: all`): every
    /// release tag moves in the registry, or none does when an image of
    /// the set failed or the run was interrupted.
    pub fn publish(&self, plan: &Plan, run: &mut Run, s: &Settings) {
        let Some(registry) = self.registry.as_ref() else {
            return;
        };
        let items: Vec<&plan::Item> = plan.items.iter().collect();
        // `publish: each`: an image's index once all its platforms moved.
        if s.publish == Publish::Each && s.push {
            let published: Vec<bool> = run.outcomes.iter().map(|o| !o.pushed.is_empty()).collect();
            run.indexes = self.block_on(publish::indexes(&items, &published, registry, None));
            return;
        }
        if s.publish != Publish::Set || !run.publishable(plan.items.len()) {
            return;
        }
        let commit = publish::Commit::head(&self.scope.loaded.tree.root, s.keep_on_unknown);
        let work = publish::release(&items, registry, commit.as_ref());
        let done = self.block_on(work);
        let published: Vec<bool> = done.iter().map(|d| d.error.is_none()).collect();
        for (o, d) in run.outcomes.iter_mut().zip(done) {
            o.pushed = d.moved;
            o.digest = d.digest.or(o.digest.take());
            if let Some(e) = d.error {
                o.status = Status::Failed;
                o.error = Some(e);
            }
        }
        let work = publish::indexes(&items, &published, registry, commit.as_ref());
        run.indexes = self.block_on(work);
        for ix in run.indexes.iter().filter(|ix| ix.error.is_some()) {
            for (item, o) in plan.items.iter().zip(run.outcomes.iter_mut()) {
                if item.index.as_ref().is_some_and(|p| p.image == ix.image) {
                    o.status = Status::Failed;
                    o.error = ix.error.clone();
                }
            }
        }
    }

    /// `strata publish`: move every release reference of `plan` to its
    /// content tag (all in the registry already).
    /// With a multi-platform set, each image's index too.
    pub fn release(
        &self,
        plan: &Plan,
        s: &Settings,
    ) -> Result<(Vec<publish::Published>, Vec<execute::Indexed>)> {
        let registry = self.registry.as_ref().ok_or_else(no_registry)?;
        let items: Vec<&plan::Item> = plan.items.iter().collect();
        let commit = publish::Commit::head(&self.scope.loaded.tree.root, s.keep_on_unknown);
        let done = self.block_on(publish::release(&items, registry, commit.as_ref()));
        let published: Vec<bool> = done.iter().map(|d| d.error.is_none()).collect();
        let work = publish::indexes(&items, &published, registry, commit.as_ref());
        let indexes = self.block_on(work);
        Ok((done, indexes))
    }

    /// Remember what was built: its inputs (to explain the next plan) and
    /// how long it took (to weigh the next critical path).
    pub fn remember(&self, plan: &Plan, run: &Run) {
        for (item, o) in plan.items.iter().zip(&run.outcomes) {
            if o.status == Status::Built {
                history::remember(&item.fingerprint);
                let ids = &self.scope.inputs[item.id].secrets;
                crate::commands::secrets::remember(
                    &item.fingerprint.hash,
                    ids,
                    &item.request.secrets,
                );
                history::remember_duration(&duration_key(item), o.duration.as_secs_f64());
            }
        }
    }
}

/// A container `Session::serve` started, and the engine it runs on.
pub struct Served {
    engine: std::sync::Arc<dyn engine::Engine>,
    id: String,
}

impl Drop for Session {
    /// Everything that matters is written; a tar writer still blocked on an
    /// engine that stopped reading must not keep the process alive.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_millis(500));
        }
    }
}

/// The async runtime of a command (engines and registries are asked
/// concurrently).
/// What an image's last build time is kept under: its repository, and for
/// a record of a multi-platform set its platform too (an emulated arm64
/// build takes many times its amd64 twin's time).
fn duration_key(item: &plan::Item) -> String {
    let repository = crate::util::reference::repository(&item.reference);
    match &item.index {
        Some(part) => format!("{repository} {}", part.platform),
        None => repository.to_string(),
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::engine(format!("cannot start the async runtime: {e}")))
}

/// `strata publish` and its kin move tags in a registry.
pub fn no_registry() -> Error {
    Error::input("`strata publish` moves tags in a registry, and `registry:` is not set")
        .help("set `registry:` in strata.yaml (or --set registry=HOST)")
}

/// Whether every engine connected before still answers (a watch's next
/// plan keeps them then; none connected: no).
async fn answer(engines: &[Member]) -> bool {
    let pings = engines.iter().map(|m| m.engine.ping());
    !engines.is_empty()
        && futures_util::future::join_all(pings)
            .await
            .iter()
            .all(Result::is_ok)
}

/// BuildKit was asked for, and an engine is Podman (Buildah builds there).
/// Every image to build has an engine that builds its platform: exit 2
/// naming the platform before anything builds.
fn platforms_fit(engines: &[Member], plan: &Plan) -> Result<()> {
    let missing = plan.items.iter().find(|i| {
        i.action == Action::Build && !engines.iter().any(|m| m.builds(&i.request.platform))
    });
    let Some(item) = missing else {
        return Ok(());
    };
    let p = &item.request.platform;
    let have: Vec<String> = engines
        .iter()
        .map(|m| format!("{} ({})", m.name, m.platforms.join(", ")))
        .collect();
    let local = engines.iter().any(|m| m.name.starts_with("unix://"));
    let handler = engine::emulation::handler(p).filter(|_| local);
    let mut handler = handler.map_or(String::new(), |h| {
        format!(
            "; no qemu handler for it (`{h}`) is enabled with the F flag in {}",
            engine::emulation::BINFMT_DIR
        )
    });
    let probed: Vec<&str> = (engines.iter())
        .filter(|m| m.probed.contains(p))
        .map(|m| m.name.as_str())
        .collect();
    if !probed.is_empty() {
        handler += &format!("; a one-step build for it failed on {}", probed.join(", "));
    }
    Err(Error::input(format!(
        "no engine of this run builds {p} (for `{}`); the engines build: {}{handler}",
        item.name,
        have.join("; ")
    ))
    .help(format!(
        "register the emulator on the engine's machine: `{}` (it registers qemu's binfmt handlers with the F flag); or list {p} under an engine's `platforms:` in strata.yaml; or add an engine of that platform",
        engine::emulation::INSTALL
    )))
}

/// For each platform of an image to build: a base of the set it is built
/// from (not one of its images, not `scratch`), which a probe build for
/// that platform can start from.
fn probes(plan: &Plan) -> Vec<(String, String)> {
    let mut wanted: Vec<(String, String)> = Vec::new();
    for item in plan.items.iter().filter(|i| i.action == Action::Build) {
        let p = &item.request.platform;
        if p.is_empty() || wanted.iter().any(|(w, _)| w == p) {
            continue;
        }
        let base = (item.request.from.iter())
            .find(|f| !item.parent_refs.contains(f) && f.as_str() != "scratch");
        if let Some(base) = base {
            wanted.push((p.clone(), base.clone()));
        }
    }
    wanted
}

/// Say once per run which platforms an engine will build emulated.
fn say_emulated(engines: &[Member], plan: &Plan) {
    let mut said = std::collections::BTreeSet::new();
    for item in plan.items.iter().filter(|i| i.action == Action::Build) {
        let p = &item.request.platform;
        let natively = engines.iter().any(|m| m.builds(p) && !m.emulates(p));
        for m in engines.iter().filter(|m| !natively && m.emulates(p)) {
            if said.insert((m.name.clone(), p.clone())) {
                crate::report::note(&format!("strata: {p} on {}: emulated (qemu)", m.name));
            }
        }
    }
}

fn builders_fit(engines: &[Member], s: &Settings) -> Result<()> {
    match engines.iter().find(|m| m.engine.is_podman()) {
        Some(podman) if s.builder == engine::Builder::BuildKit => Err(Error::input(format!(
            "--builder buildkit: the engine at `{}` is Podman, which builds with Buildah, not BuildKit",
            podman.name
        ))
        .help("leave the builder at `auto` (each engine builds with its own), or build on Docker")),
        _ => Ok(()),
    }
}

/// `--push` without `registry:`: the registries the references name must
/// take our credentials, found before anything is built (exit 3). With
/// `registry:` set, `prepare` has asked it about every image already.
async fn check_push(plan: &Plan, insecure: &[String]) -> Result<()> {
    let refs: Vec<&str> = plan
        .to_build()
        .flat_map(|item| item.release_refs().map(String::as_str))
        .collect();
    if refs.is_empty() {
        return Ok(());
    }
    registry::Registry::new(refs.iter().copied(), insecure)
        .check_push(&refs)
        .await
}

/// The plan completes its own records: with `strata test` only the
/// selected images (each must be built); their tests; the build requests.
fn complete(plan: &mut Plan, scope: &Scope, s: &Settings) -> Result<()> {
    let loaded = &scope.loaded;
    if s.tests == Tests::Only {
        plan::keep_selected(plan, &scope.selected, &loaded.graph)?;
    }
    match s.tests {
        Tests::Skip => {}
        Tests::Only => plan::attach_tests(plan, &scope.suites, |_, _| false),
        Tests::Run => plan::attach_tests(plan, &scope.suites, history::passed),
    }
    // Two git calls; a no-op build needs no labels.
    let labels = match plan.to_build().next() {
        Some(_) => git::oci_labels(&loaded.tree.root),
        None => Default::default(),
    };
    let asked = engine::BuildRequest {
        builder: s.builder,
        secrets: s.secrets.clone(),
        ssh: s.ssh.clone(),
        no_cache: s.no_cache,
        ..Default::default()
    };
    plan::requests(plan, loaded, &scope.inputs, &labels, &asked);
    secret_notes(plan, scope, s);
    Ok(())
}

/// A secret whose value changed since an image was built here: an image
/// up to date says so; one to build is built without the engine's cache
/// (else the step that read the old value comes back from the cache).
fn secret_notes(plan: &mut Plan, scope: &Scope, s: &Settings) {
    for item in plan.items.iter_mut() {
        let ids = &scope.inputs[item.id].secrets;
        for id in crate::commands::secrets::changed(&item.fingerprint.hash, ids, &s.secrets) {
            item.reasons.push(match item.action {
                Action::Build => {
                    item.request.no_cache = true;
                    format!("secret `{id}` changed since the last build: built without the engine's cache")
                }
                _ => format!(
                    "secret `{id}` changed since this image was built; not rebuilt: a secret's value is not an input (--force rebuilds)"
                ),
            });
        }
    }
}

/// Up-to-date images keep the names their siblings' FROM lines use, on
/// every engine that holds them.
async fn tag_aliases(engines: &[Member], plan: &Plan) -> Result<()> {
    for item in &plan.items {
        if item.action == Action::Build {
            continue;
        }
        for &e in &item.held_on {
            for alias in &item.aliases {
                engines[e]
                    .engine
                    .tag(&item.reference, alias)
                    .await
                    .map_err(engine::unreachable)?;
            }
        }
    }
    Ok(())
}
