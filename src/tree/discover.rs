//! Finds the images of a tree: every folder under the configured image folders
//! that holds a `Dockerfile.j2` or `Dockerfile`, named after the folder, with
//! its optional `image.yaml`. Knows nothing of templates or Dockerfile syntax.

use crate::tree::config::{display_name, inside_tree, Tree};
use crate::util::error::{Error, Result};
use crate::util::yaml::parse as parse_yaml;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const TEMPLATE_FILE: &str = "Dockerfile.j2";
pub const PLAIN_FILE: &str = "Dockerfile";
pub const SPEC_FILE: &str = "image.yaml";

/// Per-image settings from `image.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImageSpec {
    pub enabled: bool,
    pub args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Extra tags the image is also tagged and pushed as.
    pub tags: Vec<String>,
    /// The repository it is built as, instead of `prefix` + its folder's
    /// name (registry and namespace still apply): several images may share
    /// one repository as variant tags, as docker-library's trees do
    /// (`buildpack-deps:trixie-curl`, `buildpack-deps:trixie-scm`).
    pub repository: Option<String>,
    /// Its release tag, instead of the tree's `tag`.
    pub tag: Option<String>,
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Build context folder, relative to the image folder.
    pub context: Option<String>,
    /// Dockerfile (template) name, relative to the image folder.
    pub dockerfile: Option<String>,
    /// The stage to build (`docker build --target`); default the last.
    pub target: Option<String>,
    /// container-structure-test files, relative to the image folder.
    pub tests: Vec<String>,
    /// The platform to build for, over `build.platform`.
    pub platform: Option<String>,
    /// The platforms of a multi-platform set (`platforms:`) this image is
    /// built for; empty: all of them.
    pub platforms: Vec<String>,
    /// Set by `platforms::expand` on the record of one platform of a
    /// multi-platform set: the image's own name (the record is `name@arch`).
    #[serde(skip)]
    pub platform_of: Option<String>,
    /// With `platform_of`: the image's own release reference (its index's).
    #[serde(skip)]
    pub release_reference: Option<String>,
    /// The network of `RUN` steps, over `build.network`.
    pub network: Option<String>,
    /// A devfile's `rootRequired`: recorded and shown.
    pub root_required: bool,
    /// A devfile's `autoBuild: false`: built only when selected by name.
    pub auto_build: bool,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            enabled: true,
            args: BTreeMap::new(),
            labels: BTreeMap::new(),
            tags: Vec::new(),
            repository: None,
            tag: None,
            vars: BTreeMap::new(),
            context: None,
            dockerfile: None,
            target: None,
            tests: Vec::new(),
            platform: None,
            platforms: Vec::new(),
            platform_of: None,
            release_reference: None,
            network: None,
            root_required: false,
            auto_build: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    /// The image folder.
    pub dir: PathBuf,
    /// The image folder relative to the tree root, `/`-separated.
    pub rel_dir: String,
    /// The Dockerfile or template, relative to the image folder.
    pub dockerfile: String,
    /// Whether `dockerfile` is a Jinja template (ends in `.j2`).
    pub templated: bool,
    /// The build context folder.
    pub context: PathBuf,
    pub spec: ImageSpec,
    /// The reference it is built as, when not the tree's own naming (a
    /// devfile's `imageName`).
    pub reference: Option<String>,
}

impl Image {
    /// The reference this image is built and pushed as: the tree's naming,
    /// or a devfile's `imageName` (one without `/` gets the tree's
    /// registry and namespace, as odo's image-registry preference does; one
    /// without a tag gets the tree's `tag`).
    pub fn reference(&self, config: &crate::tree::config::Config) -> String {
        let Some(name) = &self.reference else {
            let repository = match &self.spec.repository {
                Some(r) => {
                    let mut c = config.clone();
                    c.prefix.clear();
                    c.repository(r)
                }
                None => config.repository(&self.name),
            };
            return format!(
                "{repository}:{}",
                self.spec.tag.as_ref().unwrap_or(&config.tag)
            );
        };
        let full = if name.contains('/') {
            name.clone()
        } else {
            let mut c = config.clone();
            c.prefix.clear();
            let (repo, tag) = name.split_once(':').unwrap_or((name, ""));
            let repo = c.repository(repo);
            if tag.is_empty() {
                repo
            } else {
                format!("{repo}:{tag}")
            }
        };
        let last = full.rsplit('/').next().unwrap_or(&full);
        if last.contains(':') || full.contains('@') {
            full
        } else {
            format!("{full}:{}", config.tag)
        }
    }

    /// The Dockerfile (template) path relative to the tree root, for messages.
    pub fn dockerfile_path(&self) -> String {
        format!("{}/{}", self.rel_dir, self.dockerfile)
    }
}

/// The images of a tree, sorted by name, and the names of those left out.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub images: Vec<Image>,
    pub left_out: LeftOut,
}

/// Images of the tree that are not built, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct LeftOut {
    /// `enabled: false` in their image.yaml.
    pub disabled: Vec<String>,
    /// Matched by a glob of `exclude:` (or `--exclude`).
    pub excluded: Vec<String>,
}

/// The `exclude:` globs as one matcher.
fn exclusions(tree: &Tree) -> Result<globset::GlobSet> {
    let mut set = globset::GlobSetBuilder::new();
    for pattern in &tree.config.exclude {
        let glob = globset::Glob::new(pattern).map_err(|e| {
            Error::input(format!("invalid `exclude` glob `{pattern}`: {}", e.kind()))
                .help("`exclude:` takes image name globs such as `nova-*` or `ironic-pxe`")
        })?;
        set.add(glob);
    }
    set.build()
        .map_err(|e| Error::input(format!("invalid `exclude` globs: {e}")))
}

/// The images of the tree's image folders, and `extra` ones (a devfile's,
/// with the file they come from), checked for unique names and left out by
/// `exclude:` alike.
pub fn discover(tree: &Tree, extra: Vec<(String, Image)>) -> Result<Discovered> {
    let excluded = exclusions(tree)?;
    let mut images: Vec<Image> = Vec::new();
    let mut left_out = LeftOut::default();
    let mut seen: HashMap<String, String> = HashMap::new();
    for folder in &tree.config.images {
        let top = tree.root.join(folder);
        if !top.is_dir() {
            return Err(Error::input(format!(
                "image folder `{folder}` does not exist in `{}`",
                tree.root.display()
            ))
            .help(
                "create it, or set `images:` in strata.yaml to the folders that hold your images",
            ));
        }
        inside_tree(&tree.root, &top, &format!("image folder `{folder}`"))?;
        let mut walk = walkdir::WalkDir::new(&top)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = walk.next() {
            let entry = entry.map_err(|e| {
                Error::input(format!(
                    "cannot read `{}`: {e}",
                    display_name(e.path().unwrap_or(&top), &tree.root)
                ))
            })?;
            if !entry.file_type().is_dir() {
                continue;
            }
            let dir = entry.path();
            if entry.depth() > 0 && entry.file_name().to_string_lossy().starts_with('.') {
                walk.skip_current_dir();
                continue;
            }
            let Some(image) = read_image(tree, dir)? else {
                continue;
            };
            // An image folder is a build context: its subfolders are not images.
            walk.skip_current_dir();
            if let Some(other) = seen.insert(image.name.clone(), image.rel_dir.clone()) {
                return Err(Error::input(format!(
                    "two images are named `{}`: `{other}` and `{}`",
                    image.name, image.rel_dir
                ))
                .help("image names come from folder names and must be unique in the tree: rename one folder"));
            }
            if excluded.is_match(&image.name) {
                left_out.excluded.push(image.name);
            } else if image.spec.enabled {
                images.push(image);
            } else {
                left_out.disabled.push(image.name);
            }
        }
    }
    for (origin, image) in extra {
        if let Some(other) = seen.insert(image.name.clone(), origin.clone()) {
            return Err(Error::input(format!(
                "two images are named `{}`: in `{other}` and in `{origin}`",
                image.name
            ))
            .help("image names must be unique in the tree: rename one component or folder"));
        }
        if excluded.is_match(&image.name) {
            left_out.excluded.push(image.name);
        } else {
            images.push(image);
        }
    }
    if images.is_empty() {
        let folders: Vec<String> = tree
            .config
            .images
            .iter()
            .map(|f| format!("`{f}`"))
            .collect();
        if !left_out.excluded.is_empty() {
            return Err(Error::input(format!(
                "every image under {} is excluded",
                folders.join(", ")
            ))
            .help("check the globs of `exclude:` in strata.yaml and `--exclude`"));
        }
        return Err(
            Error::input(format!("no images found under {}", folders.join(", ")))
                .help("an image is a folder holding a `Dockerfile.j2` or `Dockerfile`"),
        );
    }
    images.sort_by(|a, b| a.name.cmp(&b.name));
    left_out.disabled.sort();
    left_out.excluded.sort();
    Ok(Discovered { images, left_out })
}

/// The image in `dir`, if `dir` is an image folder.
fn read_image(tree: &Tree, dir: &Path) -> Result<Option<Image>> {
    let spec_path = dir.join(SPEC_FILE);
    let rel_dir = display_name(dir, &tree.root).replace('\\', "/");
    for file in [SPEC_FILE, TEMPLATE_FILE, PLAIN_FILE] {
        let path = dir.join(file);
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        // The walk follows no links: only a file that is a link can lead out.
        if meta.file_type().is_symlink() {
            inside_tree(&tree.root, &path, &format!("`{rel_dir}/{file}`"))?;
        }
        if !path.is_file() {
            let what = if meta.file_type().is_symlink() {
                "a link to nothing"
            } else {
                "not a file"
            };
            return Err(Error::input(format!("`{rel_dir}/{file}` is {what}"))
                .help(format!("make `{rel_dir}/{file}` a file, or remove it")));
        }
    }
    let spec: Option<ImageSpec> = match std::fs::read_to_string(&spec_path) {
        Ok(text) if text.trim().is_empty() => Some(ImageSpec::default()),
        Ok(text) => Some(parse_yaml(&display_name(&spec_path, &tree.root), &text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::read(&spec_path, e)),
    };
    let dockerfile = match spec.as_ref().and_then(|s| s.dockerfile.clone()) {
        Some(d) => {
            inside_tree(
                &tree.root,
                &dir.join(&d),
                &format!("`{rel_dir}/{SPEC_FILE}` dockerfile `{d}`"),
            )?;
            if !inside(&d) || !dir.join(&d).is_file() {
                return Err(Error::input(format!("`{rel_dir}/{SPEC_FILE}` names dockerfile `{d}`, which is not a file in `{rel_dir}`"))
                    .help("`dockerfile:` is a path inside the image folder"));
            }
            d
        }
        None if dir.join(TEMPLATE_FILE).is_file() => TEMPLATE_FILE.to_string(),
        None if dir.join(PLAIN_FILE).is_file() => PLAIN_FILE.to_string(),
        None if spec.is_some() => {
            return Err(Error::input(format!("`{rel_dir}` has an `{SPEC_FILE}` but no `{TEMPLATE_FILE}` or `{PLAIN_FILE}`"))
                .help(format!("add `{rel_dir}/{TEMPLATE_FILE}`, or remove `{rel_dir}/{SPEC_FILE}` if this folder is not an image")));
        }
        None => return Ok(None),
    };
    let spec = spec.unwrap_or_default();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let context = match &spec.context {
        Some(c) => {
            let path = dir.join(c);
            let canonical = path.canonicalize().ok().filter(|p| p.is_dir());
            let root = tree
                .root
                .canonicalize()
                .map_err(|e| Error::read(&tree.root, e))?;
            match canonical {
                Some(p) if p.starts_with(&root) => path,
                _ => {
                    return Err(Error::input(format!("`{rel_dir}/{SPEC_FILE}` names context `{c}`, which is not a folder inside the tree"))
                        .help("`context:` is a folder relative to the image folder, inside the tree"))
                }
            }
        }
        None => dir.to_path_buf(),
    };
    Ok(Some(Image {
        templated: dockerfile.ends_with(".j2"),
        name,
        dir: dir.to_path_buf(),
        rel_dir,
        dockerfile,
        context,
        spec,
        reference: None,
    }))
}

/// Whether the relative path `p` stays inside its folder.
pub fn inside(p: &str) -> bool {
    let path = Path::new(p);
    !path.is_absolute()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}
