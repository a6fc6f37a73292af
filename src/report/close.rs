//! The end of a run: the summary of every image (with the engines it ran
//! on), the report files asked for, the timeline, the closing table with
//! what failed, and the exit code. The one place a build or test run's
//! last words are printed. Knows nothing of engines or scheduling.

use super::{finish, LogFiles, LostEngine, Summary};
use crate::execute::Run;
use crate::plan::Plan;
use crate::util::error::{Code, Result};
use std::path::{Path, PathBuf};

/// The files a run writes (paths resolved, checked writable before the
/// run; `-` is standard output), and whether the closing words are
/// printed (not with `--progress quiet`).
#[derive(Debug, Clone)]
pub struct Files {
    pub quiet: bool,
    pub logs_dir: Option<PathBuf>,
    pub summary: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    pub metadata: Option<PathBuf>,
    pub timeline: Option<PathBuf>,
    /// `--report`: the run's page.
    pub page: Option<PathBuf>,
}

impl LogFiles {
    /// The log files of a run: in `dir`, else (without `--logs-dir`) the
    /// logs of failed images are still kept in the cache folder.
    pub fn for_run(dir: Option<&Path>) -> Result<Option<LogFiles>> {
        Ok(match dir {
            Some(d) => Some(LogFiles::new(d)?),
            None => crate::plan::history::cache_dir()
                .and_then(|c| LogFiles::for_failures(&c.join("logs"))),
        })
    }
}

/// What happened to every image of `plan` in `run`: with one engine, every
/// image names it; with several, the one it was built (or uploaded) on.
pub fn summarize(plan: &Plan, run: &Run, engines: &[String], tests_skipped: bool) -> Summary {
    let mut summary = Summary::new(plan, run);
    summary.tests_skipped = tests_skipped;
    let several = engines.len() > 1;
    let single = engines.first().cloned().unwrap_or_default();
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
        .map(|(name, why)| LostEngine {
            engine: name.clone(),
            error: why.clone(),
        })
        .collect();
    summary
}

/// Say what the run has to say, write every file asked for, print the
/// closing table, and decide the exit code.
pub fn close(summary: &Summary, run: &Run, files: &Files, mut logs: Option<LogFiles>) -> Code {
    for note in &run.notes {
        eprintln!("{note}");
    }
    if summary.tests_skipped {
        eprintln!("strata: --no-tests: no image test ran");
    }
    let paged = files
        .page
        .as_ref()
        .is_none_or(|path| page(path, summary, logs.as_mut()));
    let kept = logs.and_then(|mut l| l.close(summary));
    let outputs = [&files.summary, &files.junit, &files.metadata].map(Clone::clone);
    let written = finish(summary, &outputs, files.quiet, kept.as_deref());
    let drawn = files.timeline.as_ref().is_none_or(|path| {
        match crate::report::timeline::write(path, &bars(summary)) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("strata: {e}");
                false
            }
        }
    });
    let code = match (
        run.interrupted,
        summary.any_failed(),
        written && drawn && paged,
    ) {
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
    code
}

/// Write the run's page, from the logs before only those of failed
/// images are kept; whether it was written.
fn page(path: &Path, summary: &Summary, logs: Option<&mut LogFiles>) -> bool {
    let logs = logs.map(|l| {
        l.flush();
        (l.dir.as_path(), !l.failed_only)
    });
    let sources = crate::report::page::Sources {
        summary: serde_json::to_value(summary).ok(),
        logs,
        attest: None,
        missing: Vec::new(),
        key: None,
        beside: path.parent(),
    };
    match crate::report::page::write(path, sources) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("strata: {e}");
            false
        }
    }
}

/// The timeline's bars: what it needs of each image of the summary.
fn bars(summary: &Summary) -> Vec<crate::report::timeline::Bar> {
    summary
        .images
        .iter()
        .map(|i| crate::report::timeline::Bar {
            name: i.name.clone(),
            status: i.status.as_str().to_string(),
            started_at: i.started_at.clone(),
            finished_at: i.finished_at.clone(),
            parents: i.parents.clone(),
        })
        .collect()
}

/// Print a command's output on stdout; a closed pipe (`strata list | head`)
/// is not an error.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
}

/// Print a line for people on stderr.
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// An error for people, on stderr: file, line, the line itself, what to do.
pub fn error(err: &crate::util::error::Error) {
    let color = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let handler = miette::GraphicalReportHandler::new_themed(if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    })
    .with_links(false)
    .with_wrap_lines(false);
    let mut text = String::new();
    if handler.render_report(&mut text, err).is_err() {
        text = format!("error: {err}");
    }
    eprint!("{text}");
}

/// What `strata publish` moved: `name | ref -> digest` per reference on
/// stdout, each error on stderr; exit 1 when any image's move failed.
pub fn published(plan: &Plan, done: &[crate::publish::Published]) -> Code {
    let mut failed = 0;
    let mut text = String::new();
    for (item, d) in plan.items.iter().zip(done) {
        let digest = d.digest.as_deref().unwrap_or("");
        for r in &d.moved {
            text.push_str(&format!("{} | {r} -> {digest}\n", item.name));
        }
        if let Some(e) = &d.error {
            failed += 1;
            note(&format!("strata: {} | {e}", item.name));
        }
    }
    out(&text);
    if failed == 0 {
        Code::Success
    } else {
        Code::Failed
    }
}
