//! The inputs of each image, listed once: what goes into its build (the
//! rendered Dockerfile, the context files `.dockerignore` keeps, declared
//! build args, platform, configured labels) and which files of the tree it is
//! made from. The fingerprint hashes this list, the plan explains a change by
//! comparing two of them, `affected` matches changed paths against it, and
//! the build request takes its args and labels from it.
//! Knows nothing of engines, parents' fingerprints or base digests.

use crate::engine::context::{self, Entry};
use crate::engine::dockerignore::Ignore;
use crate::graph::load::Loaded;
use crate::util::error::{Error, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Inputs {
    /// Files of the tree the image is made from, relative to the root: the
    /// configuration, `image.yaml`, the Dockerfile (or its template and every
    /// template that template reaches).
    pub sources: Vec<String>,
    /// The context folder relative to the root.
    pub context_dir: String,
    /// The context entries `.dockerignore` keeps, sorted by path.
    pub context: Vec<Entry>,
    /// The context's `.dockerignore` rules (to judge paths that no longer exist).
    pub ignore: Ignore,
    /// Image test files inside the context (relative to it): inputs of the
    /// verdict, not of the image, so left out of both.
    pub leave_out: Vec<String>,
    /// Build args the Dockerfile declares: the tree's, then the image's own.
    pub args: BTreeMap<String, String>,
    /// Configured labels: the tree's, then the image's own.
    pub labels: BTreeMap<String, String>,
    /// `build.platform` (empty: the engine's own).
    pub platform: String,
    /// The stage to build: the image's `target:`, else `build.target` when
    /// its Dockerfile has a stage of that name (empty: the last stage).
    pub target: String,
    /// The ids of the secrets given to the run (`build.secrets`, `--secret`)
    /// that its Dockerfile mounts: inputs (their values are not).
    pub secrets: Vec<String>,
}

impl Inputs {
    /// Whether a change to `path` (relative to the tree root) changes this image.
    pub fn touched_by(&self, path: &str) -> bool {
        let under =
            |p: &str, dir: &str| p.is_empty() || dir == p || dir.starts_with(&format!("{p}/"));
        if self.sources.iter().any(|s| under(path, s)) || under(path, &self.context_dir) {
            return true;
        }
        let rel = if self.context_dir.is_empty() {
            Some(path)
        } else {
            path.strip_prefix(&format!("{}/", self.context_dir))
        };
        match rel {
            Some(rel) if self.leave_out.iter().any(|t| t == rel) => false,
            Some(rel) => rel == ".dockerignore" || !self.ignore.excludes(rel),
            None => false,
        }
    }
}

/// The image's test files (`build.tests`, then its own `tests:`) that lie
/// in its build context, relative to the context.
fn tests_in_context(
    tree: &crate::tree::config::Tree,
    image: &crate::tree::discover::Image,
) -> Vec<String> {
    let files = tree
        .config
        .build
        .tests
        .iter()
        .map(|t| tree.root.join(t))
        .chain(image.spec.tests.iter().map(|t| image.dir.join(t)));
    let context = image
        .context
        .canonicalize()
        .unwrap_or_else(|_| image.context.clone());
    files
        .filter_map(|f| {
            let f = f.canonicalize().ok()?;
            Some(
                f.strip_prefix(&context)
                    .ok()?
                    .to_string_lossy()
                    .replace('\\', "/"),
            )
        })
        .collect()
}

fn relative(root: &Path, p: &Path) -> String {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canon(p)
        .strip_prefix(canon(root))
        .map(|r| r.to_string_lossy().replace('\\', "/"))
        .unwrap_or_else(|_| p.to_string_lossy().into_owned())
}

/// The inputs of every image of `loaded` (index-aligned); context folders are
/// walked in parallel. A bad `.dockerignore` or an unreadable context is an error.
pub fn collect(loaded: &Loaded) -> Result<Vec<Inputs>> {
    let tree = &loaded.tree;
    let config_file = relative(&tree.root, &tree.config_file);
    loaded
        .images
        .par_iter()
        .enumerate()
        .map(|(id, image)| {
            let fail = |e: String| Error::input(format!("image `{}`: {e}", image.name));
            let ignore = context::ignore_rules(&image.context).map_err(|e| fail(e.message))?;
            let leave_out = tests_in_context(tree, image);
            let mut context = context::entries(&image.context).map_err(|e| fail(e.message))?;
            context.retain(|e| !leave_out.contains(&e.rel));
            let mut sources = loaded.renderer.template_files(image);
            sources.push(format!("{}/image.yaml", image.rel_dir));
            sources.push(image.dockerfile_path());
            sources.push(config_file.clone());
            sources.sort();
            sources.dedup();
            let mut args = crate::graph::load::build_args(tree, image);
            args.retain(|k, _| loaded.parsed[id].args.contains(k));
            let mut labels = tree.config.build.labels.clone();
            labels.extend(image.spec.labels.clone());
            Ok(Inputs {
                sources,
                context_dir: relative(&tree.root, &image.context),
                context,
                ignore,
                leave_out,
                args,
                labels,
                platform: image
                    .spec
                    .platform
                    .clone()
                    .unwrap_or_else(|| tree.config.build.platform.clone()),
                target: match &image.spec.target {
                    Some(own) => own.clone(),
                    // The tree's target applies where the Dockerfile has that stage.
                    None => {
                        let wanted = &tree.config.build.target;
                        if loaded.parsed[id].stage(wanted).is_some() {
                            wanted.clone()
                        } else {
                            String::new()
                        }
                    }
                },
                secrets: tree
                    .config
                    .build
                    .secrets
                    .keys()
                    .filter(|k| loaded.parsed[id].secrets.contains(*k))
                    .cloned()
                    .collect(),
            })
        })
        .collect()
}
