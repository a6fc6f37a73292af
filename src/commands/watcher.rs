//! `strata watch`'s loop: the tree watched (inotify through `notify`, a
//! burst of saves debounced into one change), each change one re-plan of
//! the selection, and the cancel rule: a change that arrives while a
//! build runs cancels, at the engine, exactly the builds it makes stale
//! (an edited image, or one built on it); the rest run to their end, and
//! the next plan builds what was cancelled. A bad edit is shown and the
//! loop goes on. See docs/watch.md.

use crate::commands::build::run_plan;
use crate::commands::prepare::{self, tree_fingerprints};
use crate::commands::session::{Served, Session};
use crate::commands::settings::{BuildFlags, Settings};
use crate::execute::Stale;
use crate::graph::load::Options;
use crate::plan::{Action, Plan};
use crate::report::{self, progress::Mode};
use crate::util::error::{Code, Error, Result};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What `watch` was asked, beyond `build`'s flags.
pub struct Watch {
    pub debounce: Duration,
    /// `--run IMAGE [-- CMD…]`.
    pub run: Option<(String, Vec<String>)>,
}

/// Build the selection, then rebuild what each change affects, until
/// SIGINT or SIGTERM (exit 130 then, with nothing left running).
pub fn run(opts: &Options, flags: &BuildFlags, watch: &Watch) -> Result<Code> {
    let root = std::fs::canonicalize(&opts.dir)
        .map_err(|e| Error::input(format!("cannot watch `{}`: {e}", opts.dir.display())))?;
    let plain = flags.reports.progress == Mode::Plain;
    let changes = Changes::watch(&root, watch.debounce, own_files(flags, &root), plain)?;
    // One listener for the whole watch: a signal between two runs (while
    // nothing else listens) still ends it.
    let waiting = super::session::runtime()?;
    let shared = changes.shared.clone();
    waiting.spawn(async move {
        crate::execute::interrupted().await;
        shared
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        shared.changed.notify_one();
    });
    let mut state = Loop {
        opts,
        flags,
        session: None,
        served: None,
        to_serve: None,
        first: true,
    };
    loop {
        let changed = changes.take();
        match state.once(&changes, &changed, watch) {
            Ok(Some(Code::Interrupted)) => break,
            Ok(Some(_)) => state.restart(watch)?,
            Ok(None) => report::note(&format!(
                "strata: watch: {} changed, no input changed; nothing rebuilt",
                paths(&changed)
            )),
            Err(e) => report::error(&e),
        }
        if changes.stopped() {
            break;
        }
        report::note("strata: watching for changes (Ctrl-C stops)");
        if !waiting.block_on(changes.next()) {
            break;
        }
    }
    if let (Some((served, _)), Some(session)) = (state.served.take(), &state.session) {
        session.stop_serving(served);
    }
    Ok(Code::Interrupted)
}

struct Loop<'a> {
    opts: &'a Options,
    flags: &'a BuildFlags,
    session: Option<Session>,
    /// `--run`'s container, and the image ID it runs.
    served: Option<(Served, String)>,
    /// The image ID of `--run`'s image after the last run, when it is there.
    to_serve: Option<String>,
    first: bool,
}

impl Loop<'_> {
    /// Load, plan and build once: the run's code, or None when nothing was
    /// to do after a change.
    fn once(
        &mut self,
        changes: &Changes,
        changed: &[String],
        watch: &Watch,
    ) -> Result<Option<Code>> {
        let (opts, flags) = (self.opts, self.flags);
        let scope = prepare::scope(opts, &flags.selectors, flags.since.as_deref())?;
        if let Some((name, _)) = &watch.run {
            let loaded = &scope.loaded;
            if !(scope.selected.iter()).any(|&i| loaded.graph.nodes[i].name == *name) {
                return Err(Error::input(format!(
                    "--run `{name}`: no such image among those watched"
                ))
                .help("name an image of the selection (`strata list` shows them)"));
            }
        }
        let before = tree_fingerprints(&scope)?;
        let session = match self.session.as_mut() {
            Some(session) => {
                session.rescope(scope);
                session
            }
            None => self.session.insert(Session::of(scope)?),
        };
        let settings = Settings::build(flags, session.config(), session.root())?
            .with_secrets(session.config(), session.root())?;
        session.lock(&settings)?;
        let plan = session.plan(&settings)?;
        if !self.first && plan.items.iter().all(|i| i.action == Action::Skip) {
            return Ok(None);
        }
        self.first = false;
        if !changed.is_empty() {
            report::note(&format!("strata: watch: {} changed", paths(changed)));
        }
        let stale = Arc::new(Stale::default());
        changes.running(Some(Running::new(
            opts,
            flags,
            &plan,
            before,
            stale.clone(),
        )));
        session.cancel_when_stale(Some(stale));
        let ran = run_plan(session, &settings, &plan);
        changes.running(None);
        session.cancel_when_stale(None);
        let (code, summary) = ran?;
        self.to_serve = watch.run.as_ref().and_then(|(name, _)| {
            (plan.items.iter().zip(&summary.images))
                .find(|(item, image)| item.name == *name && image.status.is_ok())
                .and_then(|(_, image)| image.image_id.clone())
        });
        Ok(Some(code))
    }

    /// `--run`: a container of the image as it is now, when it changed
    /// (the previous one stopped first); a failed rebuild leaves the
    /// running one as it was.
    fn restart(&mut self, watch: &Watch) -> Result<()> {
        let (Some((name, cmd)), Some(id), Some(session)) =
            (&watch.run, self.to_serve.clone(), self.session.as_ref())
        else {
            return Ok(());
        };
        if self
            .served
            .as_ref()
            .is_some_and(|(_, running)| *running == id)
        {
            return Ok(());
        }
        if let Some((old, _)) = self.served.take() {
            session.stop_serving(old);
        }
        let prefix = format!("{name} | ");
        let log: crate::engine::Log =
            Arc::new(move |line: &str| report::out(&format!("{prefix}{line}\n")));
        let run = crate::engine::ContainerRun {
            image: id.clone(),
            cmd: cmd.clone(),
            ..Default::default()
        };
        report::note(&format!("strata: watch: running `{name}` ({})", short(&id)));
        self.served = Some((session.serve(run, log)?, id));
        Ok(())
    }
}

fn short(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

/// `3 paths` or the one path.
fn paths(changed: &[String]) -> String {
    match changed {
        [one] => format!("`{one}`"),
        many => format!("{} paths", many.len()),
    }
}

/// The files a run writes itself (reports, logs, attestations): never a
/// change, or a report written inside the tree would rebuild forever.
/// Relative paths are the tree's, as the reports take them.
fn own_files(flags: &BuildFlags, root: &Path) -> Vec<PathBuf> {
    let r = &flags.reports;
    [
        &r.summary,
        &r.junit,
        &r.logs_dir,
        &flags.metadata_file,
        &flags.timeline,
        &flags.attest_dir,
    ]
    .into_iter()
    .flatten()
    .map(|p| root.join(p))
    .collect()
}

/// Whether a path (relative to the root) can never be an input: version
/// control's own folders, and the swap, backup and probe files editors
/// write beside the file saved (vim's `.x.swp` and `4913`, emacs' `x~`,
/// `.#x` and `#x#`, JetBrains' `___jb_tmp___`, kate's `.kate-swp`).
pub fn never_input(rel: &Path) -> bool {
    let vcs = |c: &std::path::Component| {
        matches!(
            c.as_os_str().to_str(),
            Some(".git" | ".hg" | ".svn" | ".jj")
        )
    };
    if rel.components().any(|c| vcs(&c)) {
        return true;
    }
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let swap = [
        ".swp",
        ".swo",
        ".swx",
        ".swpx",
        ".kate-swp",
        "___jb_tmp___",
        "___jb_old___",
    ];
    name.ends_with('~')
        || name.starts_with(".#")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || name == "4913"
        || swap.iter().any(|s| name.ends_with(s))
}

/// The cancel rule, while a plan runs: each of its items to build, and
/// the fingerprints the tree gave when it was planned (bases by name).
/// After a change the tree is read again; an item whose fingerprint
/// differs (it, or an image it is built on, was edited) is stale.
pub(crate) struct Running {
    opts: Options,
    selectors: Vec<String>,
    items: Vec<(usize, String)>,
    planned: HashMap<String, String>,
    stale: Arc<Stale>,
}

impl Running {
    fn new(
        opts: &Options,
        flags: &BuildFlags,
        plan: &Plan,
        planned: HashMap<String, String>,
        stale: Arc<Stale>,
    ) -> Running {
        let items = (plan.items.iter().enumerate())
            .filter(|(_, item)| item.action != Action::Skip)
            .map(|(i, item)| (i, item.name.clone()))
            .collect();
        Running {
            opts: opts.clone(),
            selectors: flags.selectors.clone(),
            items,
            planned,
            stale,
        }
    }

    /// Read the tree again and cancel what the change made stale. A tree
    /// that no longer loads cancels nothing: the next plan shows why.
    fn judge(&self) {
        let now = prepare::scope(&self.opts, &self.selectors, None)
            .and_then(|scope| tree_fingerprints(&scope));
        let Ok(now) = now else { return };
        let stale = (self.items.iter())
            .filter(|(_, name)| now.get(name) != self.planned.get(name))
            .map(|(i, _)| *i);
        self.stale.cancel(stale.collect::<Vec<_>>());
    }
}

/// The tree's changes since they were last taken, fed by the watcher's
/// thread.
struct Changes {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<Pending>,
    changed: tokio::sync::Notify,
    /// SIGINT or SIGTERM came.
    stopped: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Pending {
    /// Paths changed, relative to the root.
    paths: BTreeSet<String>,
    running: Option<Running>,
}

impl Changes {
    /// Watch everything under `root`; a change is told once the tree has
    /// been still for `debounce`.
    fn watch(root: &Path, debounce: Duration, own: Vec<PathBuf>, plain: bool) -> Result<Changes> {
        let shared = Arc::new(Shared::default());
        let (to, base) = (shared.clone(), root.to_path_buf());
        let handler = move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let mut kept = BTreeSet::new();
            let mut ignored = 0;
            let changes = events
                .iter()
                .filter(|e| !matches!(e.kind, EventKind::Access(_)));
            for path in changes.flat_map(|e| e.paths.iter()) {
                let Ok(rel) = path.strip_prefix(&base) else {
                    continue;
                };
                if own.iter().any(|o| path.starts_with(o)) {
                    continue;
                } else if never_input(rel) {
                    ignored += 1;
                } else {
                    kept.insert(rel.to_string_lossy().into_owned());
                }
            }
            if kept.is_empty() {
                if ignored > 0 && plain {
                    report::note(&format!(
                        "strata: watch: {ignored} change(s) to files that are never inputs (version control, editor swap files, this run's reports); nothing to do"
                    ));
                }
                return;
            }
            if let Ok(mut state) = to.state.lock() {
                state.paths.extend(kept);
                if let Some(running) = &state.running {
                    running.judge();
                }
            }
            to.changed.notify_one();
        };
        let watching = |e: notify_debouncer_full::notify::Error| {
            Error::input(format!("cannot watch `{}`: {e}", root.display()))
                .help("on Linux, raise fs.inotify.max_user_watches (sysctl) when the tree is large")
        };
        // The debouncer looks at a pending burst every tick (and sleeps on a
        // condvar while the tree is still): a fine tick costs nothing idle
        // and takes ~40 ms off the save-to-build time of the default quarter.
        let tick = (debounce / 20).max(Duration::from_millis(2));
        let mut debouncer = new_debouncer(debounce, Some(tick), handler).map_err(watching)?;
        debouncer
            .watch(root, RecursiveMode::Recursive)
            .map_err(watching)?;
        Ok(Changes {
            _debouncer: debouncer,
            shared,
        })
    }

    fn take(&self) -> Vec<String> {
        let state = self.shared.state.lock();
        state
            .map(|mut s| std::mem::take(&mut s.paths).into_iter().collect())
            .unwrap_or_default()
    }

    fn running(&self, running: Option<Running>) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.running = running;
        }
    }

    fn stopped(&self) -> bool {
        self.shared
            .stopped
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wait for a change: true, or false on SIGINT or SIGTERM.
    async fn next(&self) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            if self.shared.state.lock().is_ok_and(|s| !s.paths.is_empty()) {
                return true;
            }
            self.shared.changed.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::never_input;
    use std::path::Path;

    #[test]
    fn version_control_and_editor_files_are_never_inputs() {
        for p in [
            ".git/index",
            "a/.git/HEAD",
            "nova/.Dockerfile.j2.swp",
            "nova/4913",
        ] {
            assert!(never_input(Path::new(p)), "{p}");
        }
        for p in ["nova/x~", "nova/.#x", "nova/#x#", "nova/f.txt___jb_tmp___"] {
            assert!(never_input(Path::new(p)), "{p}");
        }
        for p in [
            "nova/Dockerfile.j2",
            "vars.yaml",
            "nova/#",
            "base/git/x",
            "nova/.gitignore",
        ] {
            assert!(!never_input(Path::new(p)), "{p}");
        }
    }
}
