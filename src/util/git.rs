//! What strata asks git about the tree: the OCI labels describing a build
//! (created, revision, source) and the paths changed since a revision.
//! Knows nothing of images; a tree outside git simply gets fewer labels.

use crate::util::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

fn git(root: &Path, args: &[&str]) -> Option<String> {
    Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// OCI labels that describe this build: created, and revision and source from git.
pub fn oci_labels(root: &Path) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.opencontainers.image.created".to_string(),
        crate::util::clock::now_rfc3339(),
    );
    if let Some((rev, time)) = commit_and_time(root) {
        labels.insert("org.opencontainers.image.revision".to_string(), rev);
        if let Some(t) = time {
            labels.insert(COMMIT_TIME_LABEL.to_string(), t.to_string());
        }
    }
    if let Some(url) = git(root, &["remote", "get-url", "origin"]) {
        labels.insert(
            "org.opencontainers.image.source".to_string(),
            crate::util::url::public(&url),
        );
    }
    labels
}

/// The label with the committer time of the commit an image was built
/// from (seconds since the epoch): what decides between two commits when
/// one of them is not in the local history (a shallow clone, a force-push).
pub const COMMIT_TIME_LABEL: &str = "io.strata.commit-time";

/// The commit checked out and its committer time (one git call).
pub fn commit_and_time(root: &Path) -> Option<(String, Option<i64>)> {
    let out = git(root, &["log", "-1", "--format=%H %ct", "HEAD"])?;
    let (id, time) = out.split_once(' ').unwrap_or((&out, ""));
    Some((id.to_string(), time.trim().parse().ok()))
}

/// The commit checked out, its short form and branch, for tag templates;
/// None outside a git work tree. The branch is empty when HEAD is detached.
pub fn head(root: &Path) -> Option<(String, String, String)> {
    let commit = git(root, &["rev-parse", "HEAD"])?;
    let short = git(root, &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| commit[..7].into());
    let branch = git(root, &["branch", "--show-current"]).unwrap_or_default();
    Some((commit, short, branch))
}

/// Whether commit `older` is `newer` or one of its ancestors; None when git
/// cannot tell (a commit unknown here, e.g. in a shallow clone).
pub fn is_ancestor(root: &Path, older: &str, newer: &str) -> Option<bool> {
    let status = Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "merge-base",
            "--is-ancestor",
            "--end-of-options",
            older,
            newer,
        ])
        .stderr(Stdio::null())
        .status()
        .ok()?;
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

/// Paths changed between `rev` and the working tree (untracked files
/// included), relative to the tree root; paths outside the tree are left out.
/// `rev` is always taken as a revision, never as an option of git.
pub fn changed_since(root: &Path, rev: &str) -> Result<Vec<String>> {
    let run = |args: &[&str]| -> Result<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .map_err(|e| Error::input(format!("--since needs git: {e}")))?;
        if !out.status.success() {
            return Err(Error::input(format!(
                "--since {rev}: `git {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .help("give a revision git knows (a commit, branch or tag) and run inside the repository that holds the tree"));
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    };
    if rev.starts_with('-') || rev.is_empty() {
        return Err(Error::input(format!("--since `{rev}` is not a revision"))
            .help("give a commit, branch or tag, e.g. `--since origin/main` or `--since HEAD~1`"));
    }
    // `rev^{commit}` resolves to a commit or fails; it is then passed after
    // `--end-of-options`, so no value can be read as an option.
    let commit = run(&[
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &format!("{rev}^{{commit}}"),
    ])?;
    let commit = commit.trim();
    let mut paths = run(&[
        "diff",
        "--name-only",
        "--no-renames",
        "--relative",
        "--end-of-options",
        commit,
        "--",
    ])?;
    paths.push_str(&run(&["ls-files", "--others", "--exclude-standard"])?);
    let mut out: Vec<String> = paths
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}
