//! Where templates come from: the tree's template folders, each image's
//! own folder, and `--override` files, each name resolved inside them
//! (symlinks included) and nowhere else. The loader `render` installs.

use super::{Image, Tree};
use crate::tree::config::display_name;
use crate::tree::discover::inside;
use crate::util::error::{Error, Result};
use minijinja::ErrorKind;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(super) const IMAGE_PREFIX: &str = "image:";
pub(super) const OVERRIDE_PREFIX: &str = "override:";

/// Where each template name comes from.
pub(super) struct Sources {
    pub(super) root: PathBuf,
    /// Template folders, in search order, canonical.
    pub(super) template_dirs: Vec<PathBuf>,
    pub(super) template_dir_names: Vec<String>,
    /// image name -> image folder (canonical).
    pub(super) image_dirs: HashMap<String, PathBuf>,
    pub(super) overrides: Vec<PathBuf>,
}

impl Sources {
    /// The file behind a template name, if it is allowed and exists.
    pub(super) fn file(&self, name: &str) -> std::result::Result<Option<PathBuf>, String> {
        if let Some(rest) = name.strip_prefix(IMAGE_PREFIX) {
            let (image, rel) = rest.split_once('/').unwrap_or((rest, ""));
            let Some(dir) = self.image_dirs.get(image) else {
                return Ok(None);
            };
            return Ok(confined(dir, rel));
        }
        if let Some(index) = name.strip_prefix(OVERRIDE_PREFIX) {
            return Ok(index
                .parse::<usize>()
                .ok()
                .and_then(|i| self.overrides.get(i))
                .cloned());
        }
        if !inside(name) {
            return Err(format!(
                "refused to load `{name}`: templates are loaded only from the template folders ({}) and the image's own folder",
                self.template_dir_names.join(", ")
            ));
        }
        Ok(self
            .template_dirs
            .iter()
            .find_map(|dir| confined(dir, name)))
    }

    /// Resolve `name` as referenced from the template `parent`: a file in the
    /// including image's own folder wins, else the name is looked up in the
    /// template folders.
    pub(super) fn join(&self, name: &str, parent: &str) -> String {
        if let Some(rest) = parent.strip_prefix(IMAGE_PREFIX) {
            let image = rest.split('/').next().unwrap_or_default();
            if let Some(dir) = self.image_dirs.get(image) {
                if !name.starts_with(IMAGE_PREFIX) && confined(dir, name).is_some() {
                    return format!("{IMAGE_PREFIX}{image}/{name}");
                }
            }
        }
        name.to_string()
    }

    /// A template name as a path for people: relative to the tree root.
    pub(super) fn display(&self, name: &str) -> String {
        match self.file(name) {
            Ok(Some(path)) => {
                let root = self
                    .root
                    .canonicalize()
                    .unwrap_or_else(|_| self.root.clone());
                display_name(&path, &root)
            }
            _ => name.to_string(),
        }
    }
}

/// `dir/rel` if it is a file that stays inside `dir` (symlinks resolved);
/// `dir` is canonical. Only a path with a link in it is resolved whole.
fn confined(dir: &Path, rel: &str) -> Option<PathBuf> {
    if !inside(rel) {
        return None;
    }
    let mut path = dir.to_path_buf();
    for part in Path::new(rel).components() {
        if part == std::path::Component::CurDir {
            continue;
        }
        path.push(part);
        if path.symlink_metadata().ok()?.file_type().is_symlink() {
            let real = dir.join(rel).canonicalize().ok()?;
            return (real.starts_with(dir) && real.is_file()).then_some(real);
        }
    }
    path.is_file().then_some(path)
}

impl Sources {
    /// The folders templates may come from: the tree's template folders,
    /// every image's own folder (canonical), and the override files.
    pub(super) fn of(tree: &Tree, images: &[Image], overrides: &[PathBuf]) -> Result<Sources> {
        let canon = |p: &Path| p.canonicalize().map_err(|e| Error::read(p, e));
        let mut template_dirs = Vec::new();
        let mut template_dir_names = Vec::new();
        for folder in &tree.config.templates {
            let dir = tree.root.join(folder);
            template_dir_names.push(format!("`{folder}`"));
            crate::tree::config::inside_tree(
                &tree.root,
                &dir,
                &format!("templates folder `{folder}`"),
            )?;
            if dir.is_dir() {
                template_dirs.push(canon(&dir)?);
            }
        }
        let mut override_files = Vec::new();
        for o in overrides {
            if !o.is_file() {
                return Err(Error::input(format!("override template `{}` does not exist", o.display()))
                    .help("`--override FILE` names a template file whose blocks replace those of every image"));
            }
            override_files.push(canon(o)?);
        }
        // Image folders were found by a walk that follows no link below the
        // image folders of strata.yaml: each is its canonical image folder
        // joined with the rest of its path.
        let mut tops = Vec::new();
        for folder in &tree.config.images {
            let top = tree.root.join(folder);
            if top.is_dir() {
                tops.push((top.clone(), canon(&top)?));
            }
        }
        let image_dirs = images
            .iter()
            .map(|i| {
                let dir = tops
                    .iter()
                    .find_map(|(top, real)| Some(real.join(i.dir.strip_prefix(top).ok()?)));
                Ok((
                    i.name.clone(),
                    match dir {
                        Some(d) => d,
                        None => canon(&i.dir)?,
                    },
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Sources {
            root: tree.root.clone(),
            template_dirs,
            template_dir_names,
            image_dirs,
            overrides: override_files,
        })
    }
}

/// The loader: a template by name from the allowed sources only; an
/// override file gets its place in the chain of overrides.
pub(super) fn load_template(
    sources: &Sources,
    name: &str,
) -> std::result::Result<Option<String>, minijinja::Error> {
    let path = sources
        .file(name)
        .map_err(|why| minijinja::Error::new(ErrorKind::InvalidOperation, why))?;
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot read `{}`: {e}", path.display()),
        )
    })?;
    Ok(Some(
        match name
            .strip_prefix(OVERRIDE_PREFIX)
            .and_then(|i| i.parse::<usize>().ok())
        {
            Some(index) => chain_override(&text, index),
            None => text,
        },
    ))
}

/// Override `index` extends the previous override, the first one the image's
/// own template (`parent_template`). An override without `extends` gets one.
pub(super) fn chain_override(text: &str, index: usize) -> String {
    let parent = if index == 0 {
        "parent_template".to_string()
    } else {
        format!("\"{OVERRIDE_PREFIX}{}\"", index - 1)
    };
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    if first.contains("extends") {
        if index == 0 {
            text.to_string()
        } else {
            text.replacen("parent_template", &parent, 1)
        }
    } else {
        format!("{{% extends {parent} %}}{text}")
    }
}
