//! Stage 2, render. Takes the tree (stage 1: config, images, platforms);
//! gives each image's Dockerfile text, rendered per platform, with the
//! template sources it read (`sources`), Python-style string methods for
//! templates written for Jinja2 (`python`), and Kolla's template tree
//! made to render as kolla-build renders it (`kolla`). The graph (stage
//! 3) parses what it gives.
//!
//! Renders every image's `Dockerfile.j2` with one minijinja environment.
//!
//! Templates are compiled once and shared; rendering runs in parallel (rayon).
//! The loader sees the tree's template folders and the rendering image's own
//! folder, nothing else. Knows nothing of Dockerfile syntax or the graph.
//! See "Templates" in docs/templates.md for the choices made here.

mod kolla;
mod python;
mod sources;

use crate::tree::config::{Compat, EnvVars, Tree, Undefined};
use crate::tree::discover::{Image, LeftOut};
use crate::util::error::{did_you_mean, Error, Result};
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use rayon::prelude::*;
use sources::{load_template, Sources, IMAGE_PREFIX, OVERRIDE_PREFIX};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// One image's rendered Dockerfile.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub name: String,
    pub text: String,
}

/// The most a template may build: a joined string, and the rendered
/// Dockerfile itself (a template that builds more is an error at its line,
/// not a process that runs out of memory). minijinja caps a repeated string
/// (`"x" * n`) at 100 MB and a repeated list at 100M items itself.
pub const VALUE_LIMIT: usize = 64 << 20;

/// A writer that takes at most `VALUE_LIMIT` bytes.
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > VALUE_LIMIT {
            return Err(std::io::Error::other(format!(
                "the rendered Dockerfile passes {} MiB, the most a template may build",
                VALUE_LIMIT >> 20
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The most render errors shown at once.
const MAX_ERRORS: usize = 20;

/// The environment of a tree: its `render:` settings (undefined,
/// whitespace, Python's methods and printing, Kolla's helpers, fuel).
fn environment(tree: &Tree) -> Result<Environment<'static>> {
    let settings = &tree.config.render;
    let mut env = Environment::new();
    env.set_undefined_behavior(match settings.undefined {
        Undefined::Strict => UndefinedBehavior::Strict,
        Undefined::Lenient => UndefinedBehavior::Lenient,
    });
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(settings.trim_blocks)
        .lstrip_blocks(settings.lstrip_blocks)
        .keep_trailing_newline(settings.keep_trailing_newline)
        .build()
        .map_err(|e| Error::input(format!("render settings: {e}")))?;
    env.set_syntax(syntax);
    // Python's string, list and dict methods, as templates written for
    // Jinja2 call them (`name.endswith('-api')`, `d.items()`).
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    let (strict, python_repr) = (
        settings.undefined == Undefined::Strict,
        settings.python_repr,
    );
    env.add_filter(
        "join",
        move |value: Value,
              joiner: Option<String>,
              attribute: Option<String>,
              kwargs: minijinja::value::Kwargs| {
            let joiner = joiner.or(kwargs.get::<Option<String>>("d")?);
            let attribute = attribute.or(kwargs.get::<Option<String>>("attribute")?);
            kwargs.assert_all_used()?;
            python::join(
                &value,
                joiner.as_deref(),
                attribute.as_deref(),
                strict,
                python_repr,
            )
        },
    );
    if settings.python_repr {
        env.set_formatter(|out, state, value| match python::repr_top(value) {
            Some(text) => out.write_str(&text).map_err(minijinja::Error::from),
            None => minijinja::escape_formatter(out, state, value),
        });
    }
    if settings.compat == Compat::Kolla {
        kolla::install(&mut env, tree)?;
    }
    env.set_debug(true);
    let fuel = settings.fuel;
    env.set_fuel((fuel > 0).then_some(fuel));
    Ok(env)
}

/// `image_ref(name)`: the reference of an image of the tree; an unknown,
/// excluded or disabled name is an error that says what to do.
fn add_image_ref(
    env: &mut Environment<'static>,
    tree: &Tree,
    images: &[Image],
    left_out: &LeftOut,
) {
    let refs: Arc<BTreeMap<String, String>> = Arc::new(
        images
            .iter()
            .map(|i| (i.name.clone(), i.reference(&tree.config)))
            .collect(),
    );
    let left_out = left_out.clone();
    env.add_function(
        "image_ref",
        move |state: &minijinja::State, name: String| -> std::result::Result<String, minijinja::Error> {
            // In a multi-platform set, the parent of the same platform.
            let own = state
                .lookup(PLATFORM_KEY)
                .and_then(|p| p.as_str().map(|p| crate::tree::platforms::record_name(&name, p)))
                .and_then(|record| refs.get(&record).cloned());
            if let Some(r) = own {
                return Ok(r);
            }
            let why = if left_out.excluded.contains(&name) {
                Some("excluded (`exclude:` or `--exclude`): exclude this image too, or stop excluding it")
            } else if left_out.disabled.contains(&name) {
                Some("disabled (`enabled: false`): disable this image too, or enable it")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("image_ref(`{name}`): image `{name}` is {why}"),
                ));
            }
            refs.get(&name).cloned().ok_or_else(|| {
                let hint = did_you_mean(&name, refs.keys().map(String::as_str))
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("image_ref(`{name}`): no image named `{name}` in the tree{hint}"),
                )
            })
        },
    );
}

/// What every template sees of the tree: namespace, registry, prefix, tag,
/// `env` when asked for, and the tree's variables (converted once).
fn globals(tree: &Tree) -> BTreeMap<String, Value> {
    let c = &tree.config;
    let mut globals = BTreeMap::from([
        ("namespace".to_string(), Value::from(c.namespace.clone())),
        ("registry".to_string(), Value::from(c.registry.clone())),
        ("prefix".to_string(), Value::from(c.prefix.clone())),
        ("tag".to_string(), Value::from(c.tag.clone())),
    ]);
    if let Some(env) = environment_values(&c.render.env) {
        globals.insert("env".to_string(), env);
    }
    for (k, v) in &c.vars {
        globals.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
    }
    globals
}

/// Renders the images of one tree.
pub struct Renderer {
    env: Environment<'static>,
    sources: Arc<Sources>,
    globals: BTreeMap<String, Value>,
    /// The render budget per image (`render.fuel`).
    fuel: u64,
    /// `build.platform` (empty: the host's), and `platform_vars`.
    platform: String,
    platform_vars: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

/// The engine's name for the host's architecture (`amd64` for x86_64).
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "arm" => "arm",
        other => other,
    }
}

/// The context key `image_ref` reads the platform from (a tree may have a
/// variable named `platform` of its own).
const PLATFORM_KEY: &str = "__strata_platform";

/// Template variables, by name.
type Values = Vec<(String, Value)>;

/// What a template sees of the platform it renders for: the built-ins
/// `platform`, `os`, `arch`, `variant` (the host's when none is asked
/// for; a tree variable of the same name wins) with `PLATFORM_KEY`; and
/// the `platform_vars` whose key is that platform or a prefix of it, the
/// shorter key first (over every other variable).
fn platform_values(
    platform: &str,
    by_platform: &BTreeMap<String, BTreeMap<String, serde_json::Value>>,
) -> (Values, Values) {
    let platform = match platform {
        "" => format!("linux/{}", host_arch()),
        p => p.to_string(),
    };
    let mut parts = platform.splitn(3, '/');
    let (os, arch, variant) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let builtin: Values = [
        ("platform", platform.as_str()),
        ("os", os),
        ("arch", arch),
        ("variant", variant),
        (PLATFORM_KEY, platform.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), Value::from(v.to_string())))
    .collect();
    let mut out = Vec::new();
    let mut keys: Vec<&String> = by_platform
        .keys()
        .filter(|k| platform == **k || platform.starts_with(&format!("{k}/")))
        .collect();
    keys.sort_by_key(|k| k.len());
    for key in keys {
        for (k, v) in &by_platform[key] {
            out.push((k.clone(), Value::from(minijinja::value::Serde(v))));
        }
    }
    (builtin, out)
}

impl Renderer {
    pub fn new(
        tree: &Tree,
        images: &[Image],
        left_out: &LeftOut,
        overrides: &[PathBuf],
    ) -> Result<Renderer> {
        let sources = Arc::new(Sources::of(tree, images, overrides)?);
        let mut env = environment(tree)?;
        let loader_sources = sources.clone();
        env.set_loader(move |name| load_template(&loader_sources, name));
        let join_sources = sources.clone();
        env.set_path_join_callback(move |name, parent| Cow::Owned(join_sources.join(name, parent)));
        add_image_ref(&mut env, tree, images, left_out);
        Ok(Renderer {
            env,
            sources,
            globals: globals(tree),
            fuel: tree.config.render.fuel,
            platform: tree.config.build.platform.clone(),
            platform_vars: tree.config.platform_vars.clone(),
        })
    }

    /// Render every image (in parallel). Every image that cannot be
    /// rendered is reported (up to `MAX_ERRORS`), in image order.
    pub fn render_all(&self, images: &[Image]) -> Result<Vec<Rendered>> {
        let results: Vec<Result<Rendered>> =
            images.par_iter().map(|image| self.render(image)).collect();
        let mut rendered = Vec::with_capacity(results.len());
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(r) => rendered.push(r),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(rendered),
            1 => Err(errors.remove(0)),
            n => Err(Error::many(
                format!("{n} of {} images cannot be rendered", images.len()),
                errors,
                MAX_ERRORS,
            )),
        }
    }

    pub fn render(&self, image: &Image) -> Result<Rendered> {
        if !image.templated {
            let path = image.dir.join(&image.dockerfile);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::read(&path, e))?;
            return Ok(Rendered {
                name: image.name.clone(),
                text,
            });
        }
        let own = format!("{IMAGE_PREFIX}{}/{}", image.name, image.dockerfile);
        let entry = match self.sources.overrides.len() {
            0 => own.clone(),
            n => format!("{OVERRIDE_PREFIX}{}", n - 1),
        };
        let mut ctx = self.globals.clone();
        let platform = image.spec.platform.as_deref().unwrap_or(&self.platform);
        let (builtin, by_platform) = platform_values(platform, &self.platform_vars);
        for (k, v) in builtin {
            // The tree's own `vars` of these names win over the built-ins.
            ctx.entry(k).or_insert(v);
        }
        ctx.extend(by_platform);
        for (k, v) in &image.spec.vars {
            ctx.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
        }
        let name = image.spec.platform_of.as_ref().unwrap_or(&image.name);
        ctx.insert("image_name".into(), Value::from(name.clone()));
        ctx.insert("parent_template".into(), Value::from(own));
        let mut out = Bounded(Vec::new());
        let result = self
            .env
            .get_template(&entry)
            .and_then(|t| t.render_captured_to(Value::from(ctx), &mut out).map(|_| ()));
        result.map_err(|e| match e.kind() {
            ErrorKind::WriteFailure => Error::input(format!(
                "cannot render image `{}` (`{}`): the rendered Dockerfile passes {} MiB, the most a template may build",
                image.name,
                image.dockerfile_path(),
                VALUE_LIMIT >> 20
            ))
            .help("a loop or a repetition in the template builds far more than a Dockerfile; bound it"),
            _ => self.error(image, e),
        })?;
        let text = String::from_utf8(out.0).map_err(|_| {
            Error::input(format!(
                "image `{}`: the rendered Dockerfile is not UTF-8",
                image.name
            ))
        })?;
        Ok(Rendered {
            name: image.name.clone(),
            text,
        })
    }

    /// Every template file (relative to the root) that `image`'s template can reach,
    /// by following `include`, `import`, `from` and `extends` with literal names.
    /// A template that names one by an expression (`{% include name %}`) may
    /// reach any of them: then every file of the template folders counts.
    pub fn template_files(&self, image: &Image) -> Vec<String> {
        let mut computed = false;
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![format!("{IMAGE_PREFIX}{}/{}", image.name, image.dockerfile)];
        todo.extend((0..self.sources.overrides.len()).map(|i| format!("{OVERRIDE_PREFIX}{i}")));
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Ok(t) = self.env.get_template(&name) else {
                continue;
            };
            for dep in referenced_templates(t.source()) {
                todo.push(self.sources.join(&dep, &name));
            }
            computed |= has_computed_reference(t.source());
        }
        let mut files: Vec<String> = seen
            .iter()
            .filter_map(|n| {
                self.sources
                    .file(n)
                    .ok()
                    .flatten()
                    .map(|_| self.sources.display(n))
            })
            .collect();
        if computed {
            let root = self
                .sources
                .root
                .canonicalize()
                .unwrap_or_else(|_| self.sources.root.clone());
            for dir in &self.sources.template_dirs {
                for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
                    if let Ok(rel) = entry.path().strip_prefix(&root) {
                        files.push(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
        }
        files.sort();
        files.dedup();
        files
    }

    /// A minijinja error as a located message. Errors in included templates
    /// come wrapped; the innermost one is where the mistake is.
    fn error(&self, image: &Image, outer: minijinja::Error) -> Error {
        let mut chain = vec![&outer];
        while let Some(inner) = std::error::Error::source(*chain.last().expect("non-empty"))
            .and_then(|s| s.downcast_ref::<minijinja::Error>())
        {
            chain.push(inner);
        }
        let e = *chain.last().expect("non-empty");
        let included_from: Vec<String> = chain[..chain.len() - 1]
            .iter()
            .rev()
            .filter_map(|w| Some(format!("{}:{}", self.sources.display(w.name()?), w.line()?)))
            .collect();
        let name = e.name().unwrap_or_default().to_string();
        let file = self.sources.display(&name);
        let source = e.template_source().map(str::to_string);
        let detail = e.detail().unwrap_or_default().to_string();
        let range = e.range();
        let snippet_text = |r: &std::ops::Range<usize>| {
            source
                .as_deref()
                .and_then(|s| s.get(r.clone()))
                .map(str::to_string)
        };
        let (message, label, help) = match e.kind() {
            ErrorKind::SyntaxError => (
                format!("template syntax error: {detail}"),
                "here".to_string(),
                "fix the template syntax at the marked place".to_string(),
            ),
            ErrorKind::UndefinedError => {
                let what = range
                    .as_ref()
                    .and_then(snippet_text)
                    .map(|s| format!(" `{}`", s.trim()))
                    .unwrap_or_default();
                let help = if what.starts_with(" `env") {
                    "templates see the environment as `env` only when strata.yaml asks for it: `render: {env: [NAME, ...]}` (or `env: true` for all of it)"
                } else {
                    "define it under `vars:` in strata.yaml or in the image's image.yaml, pass `--set vars.NAME=VALUE`, or guard it with `{% if NAME is defined %}`"
                };
                (
                    format!("undefined variable{what}"),
                    "not defined".to_string(),
                    help.to_string(),
                )
            }
            ErrorKind::OutOfFuel => (
                format!(
                    "rendering stopped after {} template instructions (`render.fuel`)",
                    self.fuel
                ),
                "still running here".to_string(),
                "a loop that never ends, or a very large one? Fix the template, or raise `render.fuel` in strata.yaml (0 = no limit)".to_string(),
            ),
            ErrorKind::TemplateNotFound => (
                format!("template not found: {detail}"),
                "included here".to_string(),
                format!(
                    "templates are looked up in the image's own folder and in {}",
                    self.sources.template_dir_names.join(", ")
                ),
            ),
            _ => {
                let help = if detail.starts_with("refused") {
                    "include shared templates by their path inside a template folder".to_string()
                } else {
                    "fix the template at the marked place".to_string()
                };
                let message = if detail.is_empty() {
                    e.kind().to_string()
                } else {
                    detail.clone()
                };
                (message, "here".to_string(), help)
            }
        };
        let location = match (name.is_empty(), included_from.is_empty()) {
            (true, _) => String::new(),
            (false, true) => format!(" (`{file}`)"),
            (false, false) => format!(
                " (`{file}`, included from `{}`)",
                included_from.join("`, `")
            ),
        };
        let err = Error::input(format!(
            "cannot render image `{}`{location}: {message}",
            image.name
        ))
        .help(help);
        match (source, range, e.line()) {
            (Some(src), Some(r), _) => err.at(&file, &src, r, label),
            (Some(src), None, Some(line)) => err.at_line(&file, &src, line, label),
            _ => err,
        }
    }
}

/// Literal template names in `include`, `import`, `from` and `extends` tags.
/// Whether `source` names a template by an expression rather than a literal.
fn has_computed_reference(source: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r#"\{%-?\s*(?:include|import|from|extends)\s+([^\s"'\[])"#)
            .expect("valid regex")
    });
    re.is_match(source)
}

fn referenced_templates(source: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r#"\{%-?\s*(?:include|import|from|extends)\s+(?:\[([^\]]*)\]|["']([^"']+)["'])"#,
        )
        .expect("valid regex")
    });
    static LIT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let lit = LIT.get_or_init(|| regex::Regex::new(r#"["']([^"']+)["']"#).expect("valid regex"));
    let mut out = Vec::new();
    for c in re.captures_iter(source) {
        if let Some(list) = c.get(1) {
            out.extend(lit.captures_iter(list.as_str()).map(|m| m[1].to_string()));
        } else if let Some(m) = c.get(2) {
            out.push(m.as_str().to_string());
        }
    }
    out
}

/// The process environment as the template variable `env`, as much of it as
/// `render.env` asks for (a variable that is not set is left out).
fn environment_values(wanted: &EnvVars) -> Option<Value> {
    let vars: BTreeMap<String, String> = match wanted {
        EnvVars::All(false) => return None,
        EnvVars::Names(names) if names.is_empty() => return None,
        EnvVars::All(true) => std::env::vars().collect(),
        EnvVars::Names(names) => names
            .iter()
            .filter_map(|n| Some((n.clone(), std::env::var(n).ok()?)))
            .collect(),
    };
    Some(Value::from(vars))
}
