//! Which images a change to some paths would rebuild: the images whose
//! inputs hold a changed path (a context file `.dockerignore` keeps, the
//! image's template or a template it includes, imports or extends, its
//! `image.yaml`; `strata.yaml` holds every image), plus everything built on
//! them. `--since REV` asks git for the changed paths.
//! Knows nothing of engines or fingerprints.

use crate::dockerignore::Ignore;
use crate::error::{Error, Result};
use crate::load::Loaded;
use std::collections::BTreeSet;
use std::path::Path;

/// Ids of the images a change to `paths` (relative to the tree root) affects,
/// descendants included.
pub fn affected(loaded: &Loaded, paths: &[String]) -> BTreeSet<usize> {
    let clean: Vec<String> = paths
        .iter()
        .map(|p| p.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect();
    let root = loaded
        .tree
        .root
        .canonicalize()
        .unwrap_or_else(|_| loaded.tree.root.clone());
    let config_files = ["strata.yaml".to_string()];
    let mut hit = BTreeSet::new();
    for (id, image) in loaded.images.iter().enumerate() {
        let mut inputs: Vec<String> = loaded.renderer.template_files(image);
        inputs.push(format!("{}/image.yaml", image.rel_dir));
        inputs.push(image.dockerfile_path());
        inputs.extend(config_files.iter().cloned());
        let context = image
            .context
            .canonicalize()
            .unwrap_or_else(|_| image.context.clone());
        let context_rel = context
            .strip_prefix(&root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let ignore = std::fs::read_to_string(context.join(".dockerignore"))
            .ok()
            .and_then(|t| Ignore::parse(&t).ok())
            .unwrap_or_default();
        let touches = |p: &str| {
            if inputs
                .iter()
                .any(|i| i == p || i.starts_with(&format!("{p}/")))
            {
                return true;
            }
            // A folder that holds the context, or a path inside it that is kept.
            if context_rel.starts_with(&format!("{p}/")) || context_rel == p || p.is_empty() {
                return true;
            }
            match p.strip_prefix(&format!("{context_rel}/")) {
                Some(rel) => rel == ".dockerignore" || !ignore.excludes(rel),
                None => false,
            }
        };
        if clean.iter().any(|p| touches(p)) {
            hit.insert(id);
        }
    }
    let mut out = BTreeSet::new();
    for id in hit {
        out.extend(loaded.graph.descendants(id));
    }
    out
}

/// Paths changed between `rev` and the working tree (untracked files
/// included), relative to the tree root; paths outside the tree are left out.
pub fn changed_since(root: &Path, rev: &str) -> Result<Vec<String>> {
    let git = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .map_err(|e| Error::input(format!("--since needs git: {e}")))?;
        if !out.status.success() {
            return Err(Error::input(format!("--since {rev}: `git {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
                .help("give a revision git knows (a commit, branch or tag) and run inside the repository that holds the tree"));
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    };
    // Both listings are relative to the tree root (git runs with -C root).
    let mut paths = git(&[
        "diff",
        "--name-only",
        "--no-renames",
        "--relative",
        rev,
        "--",
    ])?;
    paths.push_str(&git(&["ls-files", "--others", "--exclude-standard"])?);
    let mut out: Vec<String> = paths
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}
