//! Stage 7, the report: everything a person or a program is shown.
//! Takes the plan, the run, what was published and attested; gives the
//! live progress of a run (`progress`: plain lines or a redrawn display),
//! the summary and its files, the closing table and the exit code
//! (`close`), the timeline SVG (`timeline`, through `xml`), and what
//! `list`, `graph`, `render` and `plan` print (`show`).
//!
//! What a build leaves behind: per-image log files, the summary JSON of
//! DESIGN.md, JUnit XML for CI, and the final table on the terminal.
//! Knows nothing of engines or scheduling.

use crate::execute::{Run, Status};
use crate::plan::Plan;
use crate::util::error::{Error, Result};
use serde::Serialize;

mod close;
pub mod page;
pub mod progress;
pub mod show;
pub mod timeline;
mod xml;
pub use close::{close, error, note, out, published, summarize, Files};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One line of the report: what happened to one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub name: String,
    #[serde(rename = "ref")]
    pub reference: String,
    /// A record of a multi-platform set: its image and platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub status: Status,
    pub fingerprint: Option<String>,
    pub image_id: Option<String>,
    pub duration_s: f64,
    pub error: Option<String>,
    /// Why it was built or skipped (the plan's reasons).
    pub reasons: Vec<String>,
    /// References moved in the registry by this run (`--push`).
    pub pushed: Vec<String>,
    /// The registry's manifest digest of the image, when known.
    pub digest: Option<String>,
    /// When its step began and ended (RFC 3339), for images it ran.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The engine it ran on (`DOCKER_HOST` or the socket); with several,
    /// the one it was built (or uploaded) on, empty when it ran on none.
    pub engine: String,
    /// The builder that built it: `buildkit` or `classic` (empty when it
    /// was not built in this run).
    pub builder: String,
    /// How its engine built it: `native`, or `emulated` (qemu) for a
    /// platform other than the engine's own; absent when not built here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_mode: Option<&'static str>,
    /// `--attest-dir`: its SBOM file, and how long reading its package
    /// database took (0 when the file already described it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbom: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbom_s: Option<f64>,
    /// `--attest-dir`: its SLSA provenance (a DSSE envelope with `--sign-key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    /// The digests of the artifacts attached to it in the registry (its
    /// SBOM and provenance), once its release tags moved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<String>,
    /// For an image built: each parent in this run's plan → the image it
    /// was built on (the registry digest when the parent came from there,
    /// else the engine's image ID).
    pub parents: std::collections::BTreeMap<String, String>,
    /// Its image tests' verdicts, when they ran in this run.
    pub tests: Vec<crate::execute::imagetest::TestResult>,
    /// The images of the run it is built on (names), whatever happened.
    pub needs: Vec<String>,
    /// Skipped (`parent-failed`): the parent whose failure skipped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_parent: Option<String>,
    /// Up to date in the registry only, and pulled by digest for a build.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pulled: bool,
    /// The digest its release reference pointed at before this run, when
    /// the run moved it (`--push` with `--attest-dir`), and that
    /// image's SBOM as the registry held it (written beside this one's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbom_previous: Option<String>,
    #[serde(skip)]
    pub tail: VecDeque<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub images: Vec<ImageReport>,
    pub duration_s: f64,
    /// `--no-tests`: no image test ran.
    pub tests_skipped: bool,
    /// Engines of a pool that stopped answering during the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub engines_lost: Vec<LostEngine>,
    /// A multi-platform set: each image's index (its digest, platforms and
    /// the references moved to it); each platform's record is in `images`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<crate::execute::Indexed>,
    /// The commit of the tree the run built, when it is in git.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Summary {
    /// Name each image's SBOM (`--attest-dir`).
    pub fn name_sboms(&mut self, sboms: &[Option<crate::publish::supply::Attested>]) {
        for (image, a) in self.images.iter_mut().zip(sboms) {
            if let Some(a) = a {
                image.sbom = Some(a.file.display().to_string());
                image.sbom_s = Some((a.seconds * 1000.0).round() / 1000.0);
            }
        }
    }
}

/// An engine lost during a run, and the error that showed it.
#[derive(Debug, Clone, Serialize)]
pub struct LostEngine {
    pub engine: String,
    pub error: String,
}

impl Summary {
    /// What happened to every item of `plan` in `run` (parents first).
    pub fn new(plan: &Plan, run: &Run) -> Summary {
        let images = plan
            .items
            .iter()
            .zip(&run.outcomes)
            .map(|(item, o)| ImageReport {
                name: item.name.clone(),
                reference: item.reference.clone(),
                image: item.index.as_ref().map(|p| p.image.clone()),
                platform: item.index.as_ref().map(|p| p.platform.clone()),
                status: o.status,
                fingerprint: Some(item.fingerprint.hash.clone()),
                image_id: o.image_id.clone(),
                duration_s: o.duration.as_secs_f64(),
                error: o.error.clone(),
                reasons: item.reasons.clone(),
                pushed: o.pushed.clone(),
                digest: o.digest.clone(),
                started_at: o.started_at.clone(),
                finished_at: o.finished_at.clone(),
                engine: String::new(),
                builder: o.builder.unwrap_or_default().to_string(),
                build_mode: None,
                sbom: None,
                sbom_s: None,
                provenance: None,
                attestations: Vec::new(),
                parents: item
                    .parents
                    .iter()
                    .filter(|_| o.status == Status::Built)
                    .filter_map(|&k| {
                        let p = &run.outcomes[k];
                        let used = p.digest.clone().or_else(|| p.image_id.clone())?;
                        Some((plan.items[k].name.clone(), used))
                    })
                    .collect(),
                tests: o.tests.clone(),
                needs: (item.parents.iter())
                    .map(|&k| plan.items[k].name.clone())
                    .collect(),
                failed_parent: o.failed_parent.clone(),
                pulled: item.fetch,
                previous_digest: None,
                sbom_previous: None,
                tail: o.tail.clone(),
            })
            .collect();
        Summary {
            images,
            duration_s: run.wall.as_secs_f64(),
            tests_skipped: false,
            engines_lost: Vec::new(),
            indexes: run.indexes.clone(),
            commit: None,
        }
    }

    /// Whether any image ended other than built or up to date.
    pub fn any_failed(&self) -> bool {
        self.images.iter().any(|i| !i.status.is_ok())
    }
}

/// `DIR/<image>.log`, opened on first line, appended line by line.
pub struct LogFiles {
    dir: PathBuf,
    files: HashMap<String, std::io::BufWriter<std::fs::File>>,
    /// Keep only the logs of images that failed (the folder strata picks
    /// when no `--logs-dir` is given).
    failed_only: bool,
}

/// How long the logs of failed images are kept when no `--logs-dir` is given.
const KEEP_FAILED_LOGS: Duration = Duration::from_secs(7 * 24 * 3600);

impl LogFiles {
    /// Fails (before anything is built) when `dir` cannot hold log files.
    pub fn new(dir: &Path) -> Result<LogFiles> {
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        check_writable(&dir.join(".strata-write-check"))?;
        Ok(LogFiles {
            dir: dir.to_path_buf(),
            files: HashMap::new(),
            failed_only: false,
        })
    }

    /// Without `--logs-dir`: a folder per run under `runs`, of which only
    /// the logs of failed images are kept; folders older than a week go.
    /// None when no such folder can be made (logs are then only shown).
    pub fn for_failures(runs: &Path) -> Option<LogFiles> {
        if let Ok(old) = std::fs::read_dir(runs) {
            for entry in old.flatten() {
                let age = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                if age.is_some_and(|a| a > KEEP_FAILED_LOGS) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let stamp = crate::util::clock::now_rfc3339().replace(':', "");
        let dir = runs.join(format!("{stamp}-{}", std::process::id()));
        let mut logs = LogFiles::new(&dir).ok()?;
        logs.failed_only = true;
        Some(logs)
    }

    /// The end of the run: flush, and (in a folder strata picked) drop the
    /// logs of images that did not fail. The folder of the logs kept.
    pub fn close(&mut self, summary: &Summary) -> Option<PathBuf> {
        self.flush();
        if !self.failed_only {
            return Some(self.dir.clone());
        }
        self.files.clear();
        for image in summary.images.iter().filter(|i| i.status != Status::Failed) {
            let _ = std::fs::remove_file(self.dir.join(format!("{}.log", image.name)));
        }
        // Only an empty folder is removed: nothing failed.
        std::fs::remove_dir(&self.dir)
            .is_err()
            .then(|| self.dir.clone())
    }

    pub fn line(&mut self, name: &str, line: &str) {
        if !self.files.contains_key(name) {
            let path = self.dir.join(format!("{name}.log"));
            match std::fs::File::create(&path) {
                Ok(f) => {
                    self.files
                        .insert(name.to_string(), std::io::BufWriter::new(f));
                }
                Err(e) => {
                    eprintln!("strata: cannot write `{}`: {e}", path.display());
                    return;
                }
            }
        }
        if let Some(f) = self.files.get_mut(name) {
            let _ = writeln!(f, "{line}");
        }
    }

    pub fn flush(&mut self) {
        for f in self.files.values_mut() {
            let _ = f.flush();
        }
    }
}

pub fn write_summary(path: &Path, summary: &Summary) -> Result<()> {
    let text = serde_json::to_string_pretty(summary)
        .map_err(|e| Error::input(format!("cannot write the summary: {e}")))?;
    write_file(path, &(text + "\n"))
}

/// `{name: {ref, digest}}` for every image, like `buildx bake --metadata-file`.
pub fn write_metadata(path: &Path, summary: &Summary) -> Result<()> {
    let map: serde_json::Map<String, serde_json::Value> = summary
        .images
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                serde_json::json!({"ref": i.reference, "digest": i.digest}),
            )
        })
        .collect();
    let text = serde_json::to_string_pretty(&map)
        .map_err(|e| Error::input(format!("cannot write the metadata file: {e}")))?;
    write_file(path, &(text + "\n"))
}

/// Fail now, before anything is built, if a report could not be written to
/// `path` later: its folder is created and a file is opened there for
/// writing (and removed again if it did not exist).
pub fn check_writable(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
    }
    if path.is_dir() {
        return Err(Error::write(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a folder"),
        ));
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::write(path, e))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// `-` names standard output, as for `docker buildx bake --metadata-file -`.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if is_stdout(path) {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| Error::write(path, e));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::write(path, e))
}

/// JUnit XML: one test case per image; failures carry the error and log tail;
/// `parent-failed` and `cancelled` are skipped, naming why. Then one test
/// case per image test (classname the image), its failure the mismatch.
pub fn write_junit(path: &Path, summary: &Summary) -> Result<()> {
    let count = |s: Status| summary.images.iter().filter(|i| i.status == s).count();
    let failures = count(Status::Failed);
    let skipped = count(Status::ParentFailed) + count(Status::Cancelled);
    let tests: Vec<(&str, &crate::execute::imagetest::TestResult)> = summary
        .images
        .iter()
        .flat_map(|i| i.tests.iter().map(move |t| (i.name.as_str(), t)))
        .collect();
    let test_failures = tests.iter().filter(|(_, t)| !t.passed).count();
    let test_time: f64 = tests.iter().map(|(_, t)| t.duration.as_secs_f64()).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let head = format!(
        "tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\"",
        summary.images.len(),
        summary.duration_s
    );
    let all = format!(
        "tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\"",
        summary.images.len() + tests.len(),
        failures + test_failures,
        summary.duration_s
    );
    let _ = writeln!(x, "<testsuites name=\"strata\" {all}>");
    let _ = writeln!(x, "  <testsuite name=\"strata build\" {head}>");
    for i in &summary.images {
        let _ = write!(
            x,
            "    <testcase classname=\"strata\" name=\"{}\" time=\"{:.3}\"",
            xml::escape(&i.name),
            i.duration_s
        );
        match i.status {
            Status::Built | Status::UpToDate => {
                let _ = writeln!(
                    x,
                    ">\n      <system-out>{} {}</system-out>\n    </testcase>",
                    xml::escape(&i.reference),
                    i.status.as_str()
                );
            }
            Status::Failed => {
                let error = i.error.as_deref().unwrap_or("failed");
                let tail: Vec<&str> = i.tail.iter().map(String::as_str).collect();
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"build\">{}</failure>\n    </testcase>",
                    xml::escape(error),
                    xml::escape(&tail.join("\n"))
                );
            }
            Status::ParentFailed => {
                let parent = i.failed_parent.as_deref().unwrap_or("?");
                let _ = writeln!(
                    x,
                    ">\n      <skipped message=\"parent `{}` failed\"/>\n    </testcase>",
                    xml::escape(parent)
                );
            }
            Status::Cancelled => {
                let _ = writeln!(
                    x,
                    ">\n      <skipped message=\"cancelled\"/>\n    </testcase>"
                );
            }
        }
    }
    x.push_str("  </testsuite>\n");
    if !tests.is_empty() {
        let _ = writeln!(
            x,
            "  <testsuite name=\"strata image tests\" tests=\"{}\" failures=\"{test_failures}\" errors=\"0\" skipped=\"0\" time=\"{test_time:.3}\">",
            tests.len()
        );
        for (image, t) in &tests {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" time=\"{:.3}\"",
                xml::escape(image),
                xml::escape(&t.name),
                xml::escape(&t.file),
                t.duration.as_secs_f64()
            );
            if t.passed {
                x.push_str("/>\n");
            } else {
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"image test\">{}</failure>\n    </testcase>",
                    xml::escape(&t.message),
                    xml::escape(&t.message)
                );
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    write_file(path, &x)
}

/// The end of a run: write the summary and JUnit files asked for (`files`) and print
/// the closing table (only its first line when `quiet`). A file that cannot
/// be written is said; returns whether every file was written.
pub fn finish(
    summary: &Summary,
    files: &[Option<PathBuf>; 3],
    quiet: bool,
    logs: Option<&Path>,
) -> bool {
    let mut ok = true;
    let writes = [write_summary, write_junit, write_metadata];
    for (path, write) in files.iter().zip(writes) {
        if let Some(Err(e)) = path.as_deref().map(|p| write(p, summary)) {
            eprintln!("strata: {e}");
            ok = false;
        }
    }
    let table = table(summary);
    match quiet {
        true => eprintln!("{}", table.lines().next().unwrap_or_default()),
        false => {
            eprint!("{table}");
            eprint!("{}", failures_again(summary, logs));
        }
    }
    ok
}

/// After the table, so that no failure scrolls away: each failed image's
/// last log lines and where its whole log is.
fn failures_again(summary: &Summary, logs: Option<&Path>) -> String {
    let mut out = String::new();
    for i in summary.images.iter().filter(|i| i.status == Status::Failed) {
        let full = logs
            .map(|d| d.join(format!("{}.log", i.name)))
            .filter(|p| p.exists())
            .map(|p| format!("; the whole log: {}", p.display()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\n{} failed: the last {} lines of its log{full}",
            i.name,
            i.tail.len()
        );
        for line in &i.tail {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// The closing table: counts per status and the slowest builds.
pub fn table(summary: &Summary) -> String {
    let mut out = String::new();
    let statuses = [
        Status::Built,
        Status::UpToDate,
        Status::Failed,
        Status::ParentFailed,
        Status::Cancelled,
    ];
    let counts: Vec<String> = statuses
        .iter()
        .map(|&s| (s, summary.images.iter().filter(|i| i.status == s).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "{} images: {} in {}",
        summary.images.len(),
        if counts.is_empty() {
            "nothing to do".into()
        } else {
            counts.join(", ")
        },
        human(Duration::from_secs_f64(summary.duration_s))
    );
    let mut built: Vec<&ImageReport> = summary
        .images
        .iter()
        .filter(|i| i.status == Status::Built)
        .collect();
    built.sort_by(|a, b| b.duration_s.total_cmp(&a.duration_s));
    if !built.is_empty() {
        let w = built
            .iter()
            .take(5)
            .map(|i| i.name.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "slowest:");
        for i in built.iter().take(5) {
            let _ = writeln!(
                out,
                "  {:w$}  {}",
                i.name,
                human(Duration::from_secs_f64(i.duration_s))
            );
        }
    }
    for i in summary.images.iter().filter(|i| i.status == Status::Failed) {
        let _ = writeln!(
            out,
            "failed: {}: {}",
            i.name,
            i.error.as_deref().unwrap_or_default()
        );
    }
    out
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}
