//! Checks, before any engine is contacted, that every name strata will hand
//! to Docker is one Docker accepts: image references (registry, namespace,
//! prefix + folder name, at most 255 characters), tags, label keys, build-arg
//! names, the platform and `-j`. A bad one is exit 2 naming the file (with
//! its line when the value is written there) and the rule.
//! Grammar from the distribution `reference` package. Knows nothing of engines.

use crate::tree::config::{display_name, Tree};
use crate::tree::discover::{Image, SPEC_FILE};
use crate::util::error::{Error, Result};
use regex::Regex;
use std::path::Path;
use std::sync::OnceLock;

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("a valid pattern"))
}

/// One path component of a repository: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_component(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$").is_match(s)
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").is_match(s)
}

/// A registry host with an optional port.
fn is_registry(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(?:\.(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*(?::[0-9]+)?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]+)?$").is_match(s)
}

/// A platform: `os[/arch[/variant]]`, one only.
fn is_platform(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[a-z0-9_]+(?:/[a-z0-9_]+){0,2}$").is_match(s)
}

/// A label key or build-arg name the builder takes as one word.
fn is_key(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '=' || c == '"')
}

const COMPONENT_RULE: &str = "lowercase letters and digits, separated by `.`, `_`, `__` or dashes, starting and ending with a letter or digit";
const TAG_RULE: &str =
    "letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, at most 128 characters";

/// An error about `value`, at its first mention in the file `path` if any.
fn bad(root: &Path, path: &Path, value: &str, message: String, rule: &str) -> Error {
    let name = display_name(path, root);
    let err = Error::input(format!("{name}: {message}")).help(format!("the rule: {rule}"));
    match std::fs::read_to_string(path) {
        Ok(text) if !value.is_empty() => match text.find(value) {
            Some(at) => err.at(&name, &text, at..at + value.len(), "here"),
            None => err,
        },
        _ => err,
    }
}

/// `build.platform` (one, or several separated by commas), `platforms:`
/// and the keys of `platform_vars:` name platforms.
fn platforms(tree: &Tree) -> Result<()> {
    let c = &tree.config;
    let fail = |value: &str, message: String, rule: &str| {
        Err(bad(&tree.root, &tree.config_file, value, message, rule))
    };
    let listed = c.build.platform.split(',').map(str::trim);
    if let Some(p) = (listed.filter(|p| !p.is_empty()))
        .chain(c.platforms.iter().map(String::as_str))
        .find(|p| !is_platform(p))
    {
        return fail(
            p,
            format!("`{p}` is not a platform (`build.platform`, `--platform` or `platforms:`)"),
            "`os/arch[/variant]`, e.g. `linux/amd64`; several separated by commas",
        );
    }
    if let Some(p) = c.platform_vars.keys().find(|p| !is_platform(p)) {
        return fail(
            p,
            format!("`platform_vars: {{{p}: …}}` does not name one platform"),
            "key each entry by one `os/arch[/variant]`, e.g. `linux/arm64`",
        );
    }
    Ok(())
}

/// Check the tree's configuration and every image before anything else runs.
pub fn check(tree: &Tree, images: &[Image]) -> Result<()> {
    let c = &tree.config;
    let file = &tree.config_file;
    let fail =
        |value: &str, message: String, rule: &str| Err(bad(&tree.root, file, value, message, rule));
    let registry = c.registry.trim_end_matches('/');
    if registry.contains('@') {
        // Never echoed: it holds credentials.
        return Err(Error::input(format!(
            "`registry:` holds credentials (`…@{}`); strata never reads them from there",
            crate::util::url::shown(registry)
        ))
        .help("give the host alone (`registry: host:port`) and the credentials to `docker login`, which files them in the Docker config strata reads"));
    }
    if !registry.is_empty() && !is_registry(registry) {
        return fail(
            registry,
            format!("`registry: {registry}` is not a registry host"),
            "a host name or IP address, with an optional `:port`",
        );
    }
    for part in c
        .namespace
        .trim_matches('/')
        .split('/')
        .filter(|_| !c.namespace.is_empty())
    {
        if !is_component(part) {
            return fail(
                part,
                format!(
                    "`namespace: {}` is not a valid repository path (`{part}`)",
                    c.namespace
                ),
                COMPONENT_RULE,
            );
        }
    }
    if !is_tag(&c.tag) {
        return fail(
            &c.tag,
            format!("`tag: {}` is not a valid tag", c.tag),
            TAG_RULE,
        );
    }
    for t in &c.tags {
        if !is_tag(t) {
            return fail(t, format!("`tags: {t}` is not a valid tag"), TAG_RULE);
        }
    }
    if c.build.jobs == Some(0) {
        return fail(
            "jobs",
            "`build.jobs: 0` would build nothing".into(),
            "at least 1",
        );
    }
    platforms(tree)?;
    for k in c.build.labels.keys() {
        if !is_key(k) {
            return fail(
                k,
                format!("label key `{k}` is not one word"),
                "no spaces, `=` or quotes",
            );
        }
    }
    for k in c.build.args.keys() {
        if !is_key(k) {
            return fail(
                k,
                format!("build arg `{k}` is not one word"),
                "no spaces, `=` or quotes",
            );
        }
    }
    images
        .iter()
        .try_for_each(|image| check_image(tree, image))?;
    let mut seen: std::collections::HashMap<String, &str> = Default::default();
    for image in images {
        if let Some(other) = seen.insert(image.reference(c), &image.name) {
            return Err(Error::input(format!(
                "images `{other}` and `{}` are both built as `{}`",
                image.name,
                image.reference(c)
            ))
            .help("give one of them another `repository:` or `tag:` in its image.yaml"));
        }
    }
    Ok(())
}

/// Check one image: its name, repository length, tags, label and arg keys.
fn check_image(tree: &Tree, image: &Image) -> Result<()> {
    let c = &tree.config;
    let spec = image.dir.join(SPEC_FILE);
    let folder = format!("image folder `{}`", image.rel_dir);
    let name = format!("{}{}", c.prefix, image.name);
    if !is_component(&name) {
        return Err(
            Error::input(format!("{folder}: `{name}` is not a valid image name")).help(format!(
                "rename the folder (and `prefix:`, if any); the rule: {COMPONENT_RULE}"
            )),
        );
    }
    if let Some(repo) = &image.spec.repository {
        if let Some(part) = repo.split('/').find(|p| !is_component(p)) {
            let message = format!("`repository: {repo}` is not a valid repository path (`{part}`)");
            return Err(bad(&tree.root, &spec, repo, message, COMPONENT_RULE));
        }
    }
    if let Some(tag) = &image.spec.tag {
        if !is_tag(tag) {
            let message = format!("`tag: {tag}` is not a valid tag");
            return Err(bad(&tree.root, &spec, tag, message, TAG_RULE));
        }
    }
    let reference = image.reference(c);
    let repository = crate::util::reference::repository(&reference).to_string();
    if repository.len() > 255 {
        return Err(Error::input(format!(
            "{folder}: the repository `{repository}` is {} characters long",
            repository.len()
        ))
        .help("Docker allows at most 255: shorten the folder name, `prefix:` or `namespace:`"));
    }
    for t in &image.spec.tags {
        if !is_tag(t) {
            let message = format!("`{t}` is not a valid tag");
            return Err(bad(&tree.root, &spec, t, message, TAG_RULE));
        }
    }
    for k in image.spec.labels.keys().chain(image.spec.args.keys()) {
        if !is_key(k) {
            let message = format!("`{k}` is not one word");
            return Err(bad(
                &tree.root,
                &spec,
                k,
                message,
                "no spaces, `=` or quotes",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_grammar() {
        for ok in ["a", "base", "nova-api", "a.b", "a_b", "a__b", "a--b", "k8s"] {
            assert!(is_component(ok), "{ok}");
        }
        for bad in ["Child", "a b", "a@b", "-a", "a-", "_a", "a___b", "", "a:b"] {
            assert!(!is_component(bad), "{bad}");
        }
        for ok in ["latest", "2026.1", "UPPER", "_x", "a-b.c_d"] {
            assert!(is_tag(ok), "{ok}");
        }
        for bad in ["Bad Tag!", "UPPER:x", "-x", ".x", "", &"x".repeat(129)] {
            assert!(!is_tag(bad), "{bad}");
        }
        for ok in [
            "127.0.0.1:5000",
            "localhost",
            "registry.example.com",
            "[::1]:5000",
        ] {
            assert!(is_registry(ok), "{ok}");
        }
        assert!(!is_registry("http://x"));
        assert!(is_platform("linux/amd64") && is_platform("linux/arm/v7"));
        assert!(!is_platform("linux/amd64,linux/arm64") && !is_platform("Linux"));
    }
}
