//! Runs the stages that need no engine, in order:
//! config → discover → render → parse → graph. Every later command starts here.

use crate::graph::dockerfile::{self, Parsed};
use crate::graph::{self, Graph};
use crate::render::{Rendered, Renderer};
use crate::tree::config::{self, Tree};
use crate::tree::discover::{self, Image};
use crate::util::error::Result;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the user pointed strata at.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dir: PathBuf,
    pub config: Option<PathBuf>,
    pub sets: Vec<String>,
    pub overrides: Vec<PathBuf>,
    /// `--exclude` globs, added to `exclude:`.
    pub exclude: Vec<String>,
    /// `--devfile FILE`: a devfile to read (its images join the tree).
    pub devfile: Option<PathBuf>,
    /// `--var KEY=VALUE` for devfiles.
    pub vars: Vec<String>,
    /// `--var-file FILE` for devfiles.
    pub var_files: Vec<PathBuf>,
}

/// A tree, rendered and understood. Vectors are index-aligned with `graph.nodes`.
pub struct Loaded {
    pub tree: Tree,
    /// The devfiles read, for `plan` and `deploy`.
    pub devfiles: Vec<crate::tree::devfile::Devfile>,
    pub images: Vec<Image>,
    pub rendered: Vec<Rendered>,
    pub parsed: Vec<Parsed>,
    pub graph: Graph,
    pub renderer: Renderer,
}

/// Build args as the parser expands `ARG` defaults with them: the tree's,
/// then the image's own.
pub(crate) fn build_args(tree: &Tree, image: &Image) -> BTreeMap<String, String> {
    let mut args = tree.config.build.args.clone();
    args.extend(image.spec.args.clone());
    args
}

/// The tree the user pointed at: `strata.yaml` (or `--config`), else a
/// devfile (`--devfile`, or `devfile.yaml` in a folder without
/// `strata.yaml`); the command line's devfile variables and excludes added.
pub fn tree(opts: &Options) -> Result<Tree> {
    let dir: &Path = if opts.dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &opts.dir
    };
    let no_config = opts.config.is_none() && !dir.join(config::CONFIG_FILE).exists();
    let found_devfile = || {
        crate::tree::devfile::NAMES
            .iter()
            .map(PathBuf::from)
            .find(|n| dir.join(n).is_file())
    };
    let mut tree = match &opts.devfile {
        // `--devfile` alone: the devfile is the tree.
        Some(d) if no_config => config::devfile_tree(dir, d, &opts.sets)?,
        Some(d) => {
            let mut t = config::load(dir, opts.config.as_deref(), &opts.sets)?;
            t.config.devfiles.push(d.to_string_lossy().into_owned());
            t
        }
        None => match found_devfile().filter(|_| no_config) {
            Some(d) => config::devfile_tree(dir, &d, &opts.sets)?,
            None => config::load(dir, opts.config.as_deref(), &opts.sets)?,
        },
    };
    let var_files: Vec<PathBuf> = opts.var_files.iter().map(|f| dir.join(f)).collect();
    tree.devfile_vars = crate::tree::devfile::variables(&opts.vars, &var_files)?;
    tree.config.exclude.extend(opts.exclude.iter().cloned());
    Ok(tree)
}

pub fn load(opts: &Options) -> Result<Loaded> {
    let mut tree = tree(opts)?;
    let mut devfiles = Vec::new();
    let mut extra = Vec::new();
    for d in &tree.config.devfiles {
        let path = tree.root.join(d);
        config::inside_tree(&tree.root, &path, &format!("devfile `{d}`"))?;
        let df = crate::tree::devfile::read(&tree.root, &path, &tree.devfile_vars)?;
        extra.extend(df.images.iter().map(|i| (df.path.clone(), i.clone())));
        devfiles.push(df);
    }
    let mut found = discover::discover(&tree, extra)?;
    crate::graph::tags::expand(&mut tree, &mut found.images)?;
    crate::tree::names::check(&tree, &found.images)?;
    found.images = crate::tree::platforms::expand(&mut tree, found.images)?;
    let overrides: Vec<PathBuf> = opts.overrides.iter().map(|o| tree.root.join(o)).collect();
    let renderer = Renderer::new(&tree, &found.images, &found.left_out, &overrides)?;
    let mut rendered = renderer.render_all(&found.images)?;
    let texts = rendered.iter_mut().map(|r| &mut r.text);
    crate::tree::platforms::retarget(&tree.config, &found.images, texts);
    let parsed: Vec<Result<Parsed>> = found
        .images
        .par_iter()
        .zip(&rendered)
        .map(|(image, r)| {
            dockerfile::parse(
                &format!("{} (rendered)", image.dockerfile_path()),
                &r.text,
                &build_args(&tree, image),
            )
        })
        .collect();
    let parsed = parsed.into_iter().collect::<Result<Vec<_>>>()?;
    let texts: Vec<&str> = rendered.iter().map(|r| r.text.as_str()).collect();
    let graph = graph::build(
        &tree.config,
        &found.images,
        &parsed,
        &texts,
        &found.left_out,
    )?;
    Ok(Loaded {
        devfiles,
        tree,
        images: found.images,
        rendered,
        parsed,
        graph,
        renderer,
    })
}
