//! Live progress of a build, drawn by the scheduler's one loop.
//! `Plain`: one line per event, prefixed with the image name, never
//! interleaved mid-line (CI logs, pipes). `Fancy`: indicatif, one line per
//! running image under an overall bar; finished images are printed above it.
//! `Quiet`: only failures and the one-line result. Knows nothing of engines
//! or the graph.

use crate::execute::{Event, Outcome, Status};
use crate::plan::Item as Job;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Auto,
    Tty,
    Plain,
    Quiet,
}

pub trait Progress {
    fn started(&mut self, job: &Job);
    fn line(&mut self, job: &Job, line: &str);
    fn pushing(&mut self, job: &Job);
    fn finished(&mut self, job: &Job, outcome: &Outcome);
    /// Print a line that is not about one image.
    fn note(&mut self, text: &str);
    fn done(&mut self);
}

/// The display for `mode`; `names` are the images that will run (for the
/// count and the width of the name column).
pub fn choose<'a>(mode: Mode, names: impl Iterator<Item = &'a str>) -> Box<dyn Progress> {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (total, width) = names.fold((0, 0), |(n, w), name| (n + 1, w.max(name.len())));
    match mode {
        Mode::Quiet => Box::new(Quiet),
        Mode::Plain => Box::new(Plain),
        Mode::Tty => Box::new(Fancy::new(total, width)),
        Mode::Auto if tty && std::env::var_os("CI").is_none() => Box::new(Fancy::new(total, width)),
        Mode::Auto => Box::new(Plain),
    }
}

/// The step a build is at, from one line of its output: the classic
/// builder's `Step 2/6 : RUN …`, BuildKit's `[2/4] RUN …` (also after
/// `#5 `), Podman's `STEP 2/4: RUN …`. None for other lines.
pub fn step_of(line: &str) -> Option<&str> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"^(?:#\d+ )?(\[[^\]]*\d+/\d+\] .*|Step \d+/\d+ : .*|STEP \d+/\d+: .*)$")
            .expect("valid regex")
    });
    re.captures(line.trim_end())
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

pub fn describe(outcome: &Outcome) -> String {
    let text = describe_step(outcome);
    let n = outcome.tests.len();
    match (outcome.status.is_ok(), n) {
        (_, 0) => text,
        (true, 1) => format!("{text}; ✓ 1 test"),
        (true, n) => format!("{text}; ✓ {n} tests"),
        (false, _) => text,
    }
}

fn describe_step(outcome: &Outcome) -> String {
    let secs = outcome.duration.as_secs_f64();
    match outcome.status {
        Status::Built => {
            let id = outcome.image_id.as_deref().unwrap_or_default();
            let short = id.strip_prefix("sha256:").unwrap_or(id);
            let retried = if outcome.attempts > 1 {
                format!(" after {} attempts", outcome.attempts)
            } else {
                String::new()
            };
            format!(
                "built in {secs:.1}s{retried} ({})",
                &short[..short.len().min(12)]
            )
        }
        Status::UpToDate => "up to date".into(),
        Status::Failed => format!(
            "FAILED after {secs:.1}s: {}",
            outcome.error.as_deref().unwrap_or("unknown error")
        ),
        Status::ParentFailed => format!(
            "not built: parent `{}` failed",
            outcome.failed_parent.as_deref().unwrap_or("?")
        ),
        // Why, when it says more than the word (a newer edit, an upload cut).
        Status::Cancelled => outcome.error.clone().unwrap_or_else(|| "cancelled".into()),
    }
}

/// Failures only (with their log tail), as plain lines.
struct Quiet;

impl Progress for Quiet {
    fn started(&mut self, _: &Job) {}
    fn line(&mut self, _: &Job, _: &str) {}
    fn pushing(&mut self, _: &Job) {}
    fn finished(&mut self, job: &Job, outcome: &Outcome) {
        if outcome.status == Status::Failed {
            Plain.finished(job, outcome);
        }
    }
    fn note(&mut self, _: &str) {}
    fn done(&mut self) {}
}

/// `name | text` lines on stderr, each written whole.
struct Plain;

fn say(name: &str, text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{name} | {text}");
}

impl Progress for Plain {
    fn started(&mut self, job: &Job) {
        say(&job.name, &format!("building {}", job.reference));
    }
    fn line(&mut self, job: &Job, line: &str) {
        say(&job.name, line);
    }
    fn pushing(&mut self, job: &Job) {
        say(&job.name, &format!("pushing {}", job.reference));
    }
    fn finished(&mut self, job: &Job, outcome: &Outcome) {
        say(&job.name, &describe(outcome));
        if outcome.status == Status::Failed {
            print_tail(&job.name, &outcome.tail, &mut |l| say(&job.name, l));
        }
    }
    fn note(&mut self, text: &str) {
        eprintln!("{text}");
    }
    fn done(&mut self) {}
}

fn print_tail(name: &str, tail: &VecDeque<String>, out: &mut dyn FnMut(&str)) {
    if tail.is_empty() {
        return;
    }
    out(&format!(
        "last {} lines of the log of `{name}`:",
        tail.len()
    ));
    for l in tail {
        out(&format!("  {l}"));
    }
}

/// indicatif bars: an overall bar and one line per running image.
struct Fancy {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: HashMap<String, ProgressBar>,
    done: u64,
    failed: u64,
    parent_failed: u64,
    /// The width of the name column.
    width: usize,
}

impl Fancy {
    fn new(total: usize, width: usize) -> Fancy {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} images  {elapsed_precise}  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(200));
        Fancy {
            multi,
            overall,
            bars: HashMap::new(),
            done: 0,
            failed: 0,
            parent_failed: 0,
            width,
        }
    }
}

impl Progress for Fancy {
    fn started(&mut self, job: &Job) {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "  {{spinner}} {{prefix:{}.bold}} {{elapsed:>4}} {{wide_msg}}",
                self.width
            ))
            .expect("valid template"),
        );
        bar.set_prefix(job.name.clone());
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars.insert(job.name.clone(), bar);
    }
    fn line(&mut self, job: &Job, line: &str) {
        if let Some(bar) = self.bars.get(&job.name) {
            if let Some(step) = step_of(line) {
                bar.set_message(step.to_string());
            } else if line.starts_with("push") || line.starts_with("strata:") {
                bar.set_message(line.to_string());
            }
        }
    }
    fn pushing(&mut self, job: &Job) {
        if let Some(bar) = self.bars.get(&job.name) {
            bar.set_message(format!("pushing {}", job.reference));
        }
    }
    fn finished(&mut self, job: &Job, outcome: &Outcome) {
        if let Some(bar) = self.bars.remove(&job.name) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let mark = match outcome.status {
            Status::Built | Status::UpToDate => "✓",
            Status::Cancelled => "-",
            _ => "✗",
        };
        let _ = self.multi.println(format!(
            "{mark} {:w$} {}",
            job.name,
            describe(outcome),
            w = self.width
        ));
        if outcome.status == Status::Failed {
            let multi = self.multi.clone();
            print_tail(&job.name, &outcome.tail, &mut |l| {
                let _ = multi.println(format!("    {l}"));
            });
        }
        self.done += 1;
        match outcome.status {
            Status::Failed => self.failed += 1,
            Status::ParentFailed => self.parent_failed += 1,
            _ => {}
        }
        // The same words as the closing table.
        let counts: Vec<String> = [
            (self.failed, "failed"),
            (self.parent_failed, "parent-failed"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        self.overall.set_message(counts.join(", "));
        self.overall.set_position(self.done);
    }
    fn note(&mut self, text: &str) {
        let _ = self.multi.println(text);
    }
    fn done(&mut self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Routes scheduler events to a progress display and the per-image log files.
pub struct Display<'a> {
    pub progress: Box<dyn Progress>,
    pub logs: Option<&'a mut crate::report::LogFiles>,
}

impl<'a> Display<'a> {
    /// The display of a run of `plan`, its events also written to `logs`.
    /// With `--no-deps` it first says which stale parents are taken as they are.
    pub fn for_plan(
        plan: &crate::plan::Plan,
        mode: Mode,
        logs: Option<&'a mut crate::report::LogFiles>,
        no_deps: bool,
    ) -> Display<'a> {
        let mut progress = choose(mode, plan.to_build().map(|i| i.name.as_str()));
        if no_deps {
            progress.note(&crate::report::show::no_deps_note(&plan.stale_outside));
        }
        Display { progress, logs }
    }
}

impl crate::execute::Observer for Display<'_> {
    fn event(&mut self, items: &[Job], event: Event) {
        match event {
            Event::Started { item } => {
                self.progress.started(&items[item]);
                if let Some(l) = self.logs.as_deref_mut() {
                    l.line(
                        &items[item].name,
                        &format!("strata: building {}", items[item].reference),
                    );
                }
            }
            Event::Line { item, line } => {
                if let Some(l) = self.logs.as_deref_mut() {
                    l.line(&items[item].name, line);
                }
                self.progress
                    .line(&items[item], &crate::execute::clip_line(line));
            }
            Event::Pushing { item } => self.progress.pushing(&items[item]),
            Event::Finished { item, outcome } => {
                if let Some(l) = self.logs.as_deref_mut() {
                    l.line(&items[item].name, &format!("strata: {}", describe(outcome)));
                }
                self.progress.finished(&items[item], outcome);
            }
            Event::Note { text } => self.progress.note(text),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_step_is_read_from_every_builder() {
        let cases = [
            ("Step 2/6 : RUN make", Some("Step 2/6 : RUN make")),
            (
                "#7 [2/4] RUN apt-get update",
                Some("[2/4] RUN apt-get update"),
            ),
            (
                "[stage-1 3/5] COPY . /src",
                Some("[stage-1 3/5] COPY . /src"),
            ),
            ("STEP 2/4: RUN echo hi", Some("STEP 2/4: RUN echo hi")),
            (" ---> Running in 1234", None),
            ("#7 0.512 hello", None),
            ("stepping 2/4", None),
        ];
        for (line, want) in cases {
            assert_eq!(super::step_of(line), want, "{line}");
        }
    }
}
