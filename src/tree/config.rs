//! Loads `strata.yaml` and applies `--set KEY=VALUE` overrides.
//! Owns the shape of the tree's configuration; knows nothing of images.

use crate::util::error::{Error, Result};
use crate::util::yaml::parse as parse_yaml;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "strata.yaml";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Folders searched for image folders.
    pub images: Vec<String>,
    /// Folders for `{% include %}`, `{% import %}`, `{% extends %}`.
    pub templates: Vec<String>,
    pub registry: String,
    pub namespace: String,
    pub prefix: String,
    pub tag: String,
    /// Extra release tags of every image (before each image's own `tags:`).
    pub tags: Vec<String>,
    /// Template variables.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// The platforms every image is built for (`[linux/amd64, linux/arm64]`):
    /// one record per image and platform, one manifest list per image.
    /// Empty: the one platform of `build.platform` (or the engine's).
    pub platforms: Vec<String>,
    /// Template variables per platform (`linux/arm64: {debian_arch: arm64}`),
    /// over `vars` when an image renders for that platform (a key
    /// `linux/arm64` also serves `linux/arm64/v8`).
    pub platform_vars: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Named lists of selectors, used as `@NAME`.
    pub profiles: BTreeMap<String, Vec<String>>,
    pub build: BuildConfig,
    pub render: RenderConfig,
    /// Registries spoken to over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// Globs of image names left out of the tree (as `enabled: false`).
    pub exclude: Vec<String>,
    /// What `strata prune` keeps in the registry.
    pub retention: Retention,
    /// Devfiles whose image components join the tree, relative to the root.
    pub devfiles: Vec<String>,
    /// The engines a run builds on (`--engine` replaces them); more than
    /// one shares images through `registry:`.
    pub engines: Vec<crate::engine::pool::Spec>,
}

/// `retention:`: tags matching `keep` (and `keep-*` tags) stay; other tags
/// older than `max_age` go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Globs of tags never deleted.
    pub keep: Vec<String>,
    pub max_age: Option<Age>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep: vec!["latest".into()],
            max_age: None,
        }
    }
}

/// A duration written `30m`, `12h`, `7d` or `2w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Age(pub std::time::Duration);

impl TryFrom<String> for Age {
    type Error = Error;
    fn try_from(text: String) -> Result<Age> {
        let t = text.trim();
        let unit = t.chars().last().unwrap_or(' ');
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => 0,
        };
        match t[..t.len() - unit.len_utf8().min(t.len())].parse::<u64>() {
            Ok(n) if secs > 0 => Ok(Age(std::time::Duration::from_secs(n * secs))),
            _ => Err(Error::input(format!(
                "`{text}` is not a duration: write a whole number and a unit, as `90s`, `30m`, `12h`, `7d` or `2w`"
            ))),
        }
    }
}

impl From<Age> for String {
    fn from(a: Age) -> String {
        let s = a.0.as_secs();
        match s {
            s if s % (7 * 86_400) == 0 && s > 0 => format!("{}w", s / (7 * 86_400)),
            s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
            s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }
}

/// `render:` settings. The defaults are strata's; Jinja2's (and Kolla's)
/// are `trim_blocks: false, lstrip_blocks: false, keep_trailing_newline:
/// false, undefined: lenient` (see docs/templates.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RenderConfig {
    /// The most template instructions one image may take to render (a
    /// template that never ends is stopped here); 0 = no limit.
    pub fuel: u64,
    /// Remove the first newline after a block tag.
    pub trim_blocks: bool,
    /// Strip spaces and tabs from the start of a line up to a block tag.
    pub lstrip_blocks: bool,
    /// Keep the template's last newline.
    pub keep_trailing_newline: bool,
    pub undefined: Undefined,
    /// Print values as Jinja2 (Python) does: `True`, `False`, `None`,
    /// `['a', 'b']`, `{'k': 1}`; otherwise `true`, `none`, `["a", "b"]`.
    pub python_repr: bool,
    /// Environment variables templates see as `env`: a list of names, or
    /// `true` for the whole environment. None by default.
    pub env: EnvVars,
    /// Helpers of another generator's templates: `kolla`.
    pub compat: Compat,
    /// Kolla's repository data (`kolla/template/repos.yaml`), relative to
    /// the tree root; used by `handle_repos` and `cleanup_repos`.
    pub repos_yaml: String,
    /// A file merged over `repos_yaml` section by section, as
    /// `kolla-build --repos-yaml` does.
    pub repos_yaml_override: String,
}

/// What an undefined value does in a template.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Undefined {
    /// Printing, iterating or testing it is an error naming the variable.
    #[default]
    Strict,
    /// As in Jinja2: prints as nothing, is false, iterates as empty, length 0.
    Lenient,
}

/// Template helpers of another generator.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compat {
    #[default]
    #[serde(rename = "")]
    None,
    /// `customizable`, `handle_repos`, `cleanup_repos`,
    /// `debian_package_install`, `raise_error`, as in Kolla.
    Kolla,
}

/// `render.env`: `true`, `false` or a list of variable names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum EnvVars {
    All(bool),
    Names(Vec<String>),
}

impl Default for EnvVars {
    fn default() -> Self {
        EnvVars::Names(Vec::new())
    }
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            fuel: 10_000_000,
            trim_blocks: true,
            lstrip_blocks: true,
            keep_trailing_newline: true,
            undefined: Undefined::Strict,
            python_repr: false,
            env: EnvVars::default(),
            compat: Compat::None,
            repos_yaml: String::new(),
            repos_yaml_override: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BuildConfig {
    /// Builds at once; default the number of CPUs.
    pub jobs: Option<usize>,
    pub args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub retries: u32,
    pub pull: bool,
    /// `auto` (BuildKit wherever the engine has it, the default),
    /// `buildkit` or `classic`.
    pub builder: Option<crate::engine::Builder>,
    /// The older spelling of `builder: buildkit`.
    pub buildkit: bool,
    /// Secrets `RUN --mount=type=secret,id=ID` may read (BuildKit), by id:
    /// `{file: PATH}` (relative to the tree root) or `{env: VAR}`. Their ids
    /// are inputs of the images that mount them; their values never are.
    pub secrets: BTreeMap<String, SecretSpec>,
    /// The key `--attest-dir` signs provenance and SBOMs with (`--sign-key`
    /// wins over it).
    pub sign: SignConfig,
    /// Pushes at once.
    pub push_jobs: usize,
    /// Platform passed to the engine (e.g. `linux/amd64`); empty = engine default.
    pub platform: String,
    /// When `--push` moves release tags in the registry.
    pub publish: Publish,
    /// The stage to build in every image without its own `target:` whose
    /// Dockerfile has a stage of that name; the others build their last.
    pub target: String,
    /// The network `RUN` steps use (`docker build --network`): e.g. `host`,
    /// `none`; empty = the engine's default. Not an input of the image.
    pub network: String,
    /// container-structure-test files run for every image, relative to the
    /// tree root (before each image's own `tests:`).
    pub tests: Vec<String>,
}

/// Where a secret's value is: one of a file or an environment variable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// `build.sign`: a PKCS#8 PEM key file (relative to the tree root) and,
/// for an encrypted key, the environment variable holding its passphrase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SignConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Default `STRATA_SIGN_PASSPHRASE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_env: Option<String>,
}

/// `build.publish`: `all` moves the registry's release tags only once every
/// selected image is built or up to date and uploaded; `each` moves an
/// image's as soon as it is uploaded.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Publish {
    #[default]
    All,
    Each,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            images: vec!["images".into()],
            templates: vec!["templates".into()],
            registry: String::new(),
            namespace: "strata".into(),
            prefix: String::new(),
            tag: "latest".into(),
            tags: Vec::new(),
            vars: BTreeMap::new(),
            platforms: Vec::new(),
            platform_vars: BTreeMap::new(),
            profiles: BTreeMap::new(),
            build: BuildConfig::default(),
            render: RenderConfig::default(),
            insecure_registries: Vec::new(),
            exclude: Vec::new(),
            retention: Retention::default(),
            devfiles: Vec::new(),
            engines: Vec::new(),
        }
    }
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            jobs: None,
            args: BTreeMap::new(),
            labels: BTreeMap::new(),
            retries: 0,
            pull: false,
            builder: None,
            buildkit: false,
            secrets: BTreeMap::new(),
            sign: SignConfig::default(),
            push_jobs: 2,
            platform: String::new(),
            publish: Publish::All,
            target: String::new(),
            network: String::new(),
            tests: Vec::new(),
        }
    }
}

/// The loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The tree's root folder (where `strata.yaml` is).
    pub root: PathBuf,
    /// The configuration file as read (`root/strata.yaml` unless `--config`).
    pub config_file: PathBuf,
    pub config: Config,
    /// `--var` and `--var-file` values for devfiles.
    pub devfile_vars: std::collections::BTreeMap<String, String>,
}

impl Config {
    /// The reference an image named `name` is built and pushed as.
    pub fn reference(&self, name: &str) -> String {
        format!("{}:{}", self.repository(name), self.tag)
    }

    /// The reference without its tag.
    pub fn repository(&self, name: &str) -> String {
        let mut r = String::new();
        if !self.registry.is_empty() {
            r.push_str(self.registry.trim_end_matches('/'));
            r.push('/');
        }
        if !self.namespace.is_empty() {
            r.push_str(self.namespace.trim_matches('/'));
            r.push('/');
        }
        r.push_str(&self.prefix);
        r.push_str(name);
        r
    }
}

/// Fail unless `path` (a file or folder strata is about to read) resolves,
/// symlinks followed, inside the tree `root`. `what` says what it is, for
/// the message ("templates folder `..`"). A path that does not exist passes:
/// whoever reads it reports that.
pub fn inside_tree(root: &Path, path: &Path, what: &str) -> Result<()> {
    let Ok(real) = path.canonicalize() else {
        return Ok(());
    };
    let root = root.canonicalize().map_err(|e| Error::read(root, e))?;
    if real.starts_with(&root) {
        return Ok(());
    }
    Err(Error::input(format!(
        "{what} resolves to `{}`, outside the tree `{}`",
        real.display(),
        root.display()
    ))
    .help("strata reads only files inside the tree (symlinks included): copy what you need into the tree"))
}

/// Load the tree at `root`: `config_file` (default `strata.yaml` in `root`), then `sets`.
pub fn load(root: &Path, config_file: Option<&Path>, sets: &[String]) -> Result<Tree> {
    let path = match config_file {
        Some(p) => root.join(p),
        None => root.join(CONFIG_FILE),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::input(format!("no `{}` in `{}`", display_name(&path, root), root.display()))
                .help("run strata inside an image tree, point at one with `-C DIR`, or name the file with `--config FILE` (an empty strata.yaml is a valid tree)")
        } else {
            Error::read(&path, e)
        }
    })?;
    let mut config: Config = if text.trim().is_empty() {
        Config::default()
    } else {
        parse_yaml(&display_name(&path, root), &text)?
    };
    for set in sets {
        config = apply_set(config, set)?;
    }
    Ok(Tree {
        root: root.to_path_buf(),
        config_file: path,
        config,
        devfile_vars: Default::default(),
    })
}

/// The tree of one devfile (`--devfile FILE`, or a folder with a devfile
/// and no strata.yaml): the defaults, no image folders, `sets` applied.
pub fn devfile_tree(root: &Path, devfile: &Path, sets: &[String]) -> Result<Tree> {
    let mut config = Config {
        images: Vec::new(),
        devfiles: vec![devfile.to_string_lossy().into_owned()],
        ..Config::default()
    };
    for set in sets {
        config = apply_set(config, set)?;
    }
    Ok(Tree {
        root: root.to_path_buf(),
        config_file: root.join(devfile),
        config,
        devfile_vars: Default::default(),
    })
}

/// `path` relative to `root` where it is inside, for messages.
pub fn display_name(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Apply one `KEY=VALUE` override, KEY a dotted path (`vars.base_image`, `build.jobs`).
fn apply_set(config: Config, set: &str) -> Result<Config> {
    let bad = |why: String| {
        Error::input(format!("invalid `--set {set}`: {why}"))
            .help("use `--set KEY=VALUE` with KEY a dotted path into strata.yaml, e.g. `--set tag=2026.1` or `--set vars.base_image=debian:bookworm-slim`")
    };
    let (key, value) = set
        .split_once('=')
        .ok_or_else(|| bad("missing `=`".into()))?;
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(bad("empty key".into()));
    }
    let mut root = serde_json::to_value(&config).expect("config serializes");
    let existed = path.iter().try_fold(&root, |v, p| v.get(p)).is_some();
    let old = value_at(&mut root, &path)
        .ok_or_else(|| bad(format!("`{key}` is not a key that takes a value")))?
        .take();
    let as_string = serde_json::Value::String(value.to_string());
    let typed = match &old {
        serde_json::Value::Number(_)
        | serde_json::Value::Bool(_)
        | serde_json::Value::Null
        | serde_json::Value::Array(_)
            if existed =>
        {
            serde_saphyr::from_str::<serde_json::Value>(value).unwrap_or(as_string.clone())
        }
        // A template variable given as a YAML list or map (`[a, b]`, `{k: v}`).
        _ if path[0] == "vars" && value.trim_start().starts_with(['[', '{']) => {
            serde_saphyr::from_str::<serde_json::Value>(value).map_err(|e| {
                bad(format!(
                    "the value is not a YAML list or map: {}",
                    e.without_snippet().to_string().lines().next().unwrap_or("")
                ))
            })?
        }
        _ => as_string.clone(),
    };
    for candidate in [typed, as_string] {
        *value_at(&mut root, &path).expect("slot exists") = candidate;
        if let Ok(config) = serde_json::from_value::<Config>(root.clone()) {
            return Ok(config);
        }
    }
    *value_at(&mut root, &path).expect("slot exists") =
        serde_json::Value::String(value.to_string());
    let err = serde_json::from_value::<Config>(root).unwrap_err();
    Err(bad(err.to_string().replace("unknown field", "unknown key")))
}

/// The value at `path`, created in maps where missing.
fn value_at<'a>(
    mut v: &'a mut serde_json::Value,
    path: &[&str],
) -> Option<&'a mut serde_json::Value> {
    for part in path {
        // A slot just made (`build.secrets.ID`) holds the next level.
        if v.is_null() {
            *v = serde_json::Value::Object(Default::default());
        }
        let map = v.as_object_mut()?;
        v = map
            .entry(part.to_string())
            .or_insert(serde_json::Value::Null);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_joins_parts() {
        let mut c = Config::default();
        assert_eq!(c.reference("base"), "strata/base:latest");
        c.registry = "reg:5000".into();
        c.prefix = "os-".into();
        c.tag = "1".into();
        assert_eq!(c.reference("base"), "reg:5000/strata/os-base:1");
        c.namespace.clear();
        assert_eq!(c.reference("base"), "reg:5000/os-base:1");
    }

    #[test]
    fn set_overrides_scalars_by_path() {
        let c = Config::default();
        let c = apply_set(c, "tag=2026.1").unwrap();
        assert_eq!(c.tag, "2026.1");
        let c = apply_set(c, "build.jobs=8").unwrap();
        assert_eq!(c.build.jobs, Some(8));
        let c = apply_set(c, "vars.version=1.10").unwrap();
        assert_eq!(c.vars["version"], serde_json::json!("1.10"));
        let c = apply_set(c, "build.pull=true").unwrap();
        assert!(c.build.pull);
        let c = apply_set(c, "build.args.X=a=b").unwrap();
        assert_eq!(c.build.args["X"], "a=b");
        let c = apply_set(c, "vars.keystone_packages_append=[a, 'b c']").unwrap();
        assert_eq!(
            c.vars["keystone_packages_append"],
            serde_json::json!(["a", "b c"])
        );
        let c = apply_set(c, "render.undefined=lenient").unwrap();
        assert_eq!(c.render.undefined, Undefined::Lenient);
        let c = apply_set(c, "render.env=true").unwrap();
        assert_eq!(c.render.env, EnvVars::All(true));
    }

    #[test]
    fn set_rejects_unknown_keys_and_bad_values() {
        let e = apply_set(Config::default(), "build.jobz=3").unwrap_err();
        assert!(e.message.contains("jobz"), "{}", e.message);
        let e = apply_set(Config::default(), "build.jobs=many").unwrap_err();
        assert!(e.message.contains("build.jobs=many"), "{}", e.message);
        assert!(apply_set(Config::default(), "tag").is_err());
        assert!(apply_set(Config::default(), "tag.x=1").is_err());
    }

    #[test]
    fn yaml_errors_name_file_and_line() {
        let e = parse_yaml::<Config>("strata.yaml", "tag: x\nnamspace: y\n").unwrap_err();
        assert!(
            e.message.contains("unknown key `namspace`"),
            "{}",
            e.message
        );
        let s = e.snippet.unwrap();
        assert_eq!(s.span, (7, 8));
    }

    #[test]
    fn ages_take_a_unit() {
        let c: Config = parse_yaml("s", "retention: {max_age: 7d}").unwrap();
        assert_eq!(
            c.retention.max_age,
            Some(Age(std::time::Duration::from_secs(7 * 86_400)))
        );
        let e = parse_yaml::<Config>("s", "retention: {max_age: 7 days}").unwrap_err();
        assert!(
            e.message.contains("`7 days` is not a duration"),
            "{}",
            e.message
        );
        assert!(e.message.contains("`7d`"), "{}", e.message);
        let c = apply_set(Config::default(), "retention.max_age=12h").unwrap();
        assert_eq!(String::from(c.retention.max_age.unwrap()), "12h");
    }

    #[test]
    fn yaml_scalars_become_strings_for_args() {
        let c: Config = parse_yaml("s", "build: {args: {VERSION: 1.10, ON: true}}").unwrap();
        assert_eq!(c.build.args["VERSION"], "1.10");
    }
}
