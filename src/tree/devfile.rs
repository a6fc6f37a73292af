//! Devfiles (2.x, as odo and Eclipse Che read them) as image trees: every
//! `image` component with a Dockerfile becomes an image; `kubernetes` and
//! `openshift` components are the manifests `strata deploy` hands on, with
//! the built images pinned by digest; the default `deploy` command says
//! which, in order. `{{name}}` variables (the devfile's `variables`,
//! `--var`, `--var-file`) are substituted in the text before it is read, so
//! an unknown one is reported at its file and line.
//! Knows nothing of templates, the graph or engines.

use crate::tree::config::display_name;
use crate::tree::discover::{Image, ImageSpec};
use crate::util::error::{Error, Result};
use crate::util::yaml::parse as parse_yaml;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file names looked for in a folder, in order.
pub const NAMES: [&str; 2] = ["devfile.yaml", ".devfile.yaml"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: String,
    #[serde(default)]
    #[allow(dead_code)]
    variables: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    components: Vec<serde_json::Value>,
    #[serde(default)]
    commands: Vec<serde_json::Value>,
    parent: Option<serde_json::Value>,
}

/// A manifest component, its variables substituted.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub component: String,
    /// The YAML documents, as written (inlined, or read from `uri`).
    pub text: String,
}

/// What a devfile gives the tree.
#[derive(Debug, Clone, Default)]
pub struct Devfile {
    /// Relative to the tree root.
    pub path: String,
    pub images: Vec<Image>,
    /// Image name → `imageName` as the devfile writes it (substituted).
    pub image_names: BTreeMap<String, String>,
    pub manifests: Vec<Manifest>,
    /// Components strata cannot build, with the reason.
    pub unbuildable: Vec<(String, String)>,
    /// The default deploy command's `apply` steps, composites followed:
    /// component names in order. Empty when there is no deploy command.
    pub deploy: Vec<String>,
}

/// `--var KEY=VALUE` and `--var-file FILE` (`KEY=VALUE` lines, `#` comments).
pub fn variables(vars: &[String], files: &[PathBuf]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| Error::read(f, e))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').ok_or_else(|| {
                Error::input(format!(
                    "{}:{}: `{line}` is not KEY=VALUE",
                    f.display(),
                    n + 1
                ))
                .help("a variable file holds one KEY=VALUE a line, as for `odo --var-file`")
            })?;
            out.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    for v in vars {
        let (k, val) = v
            .split_once('=')
            .ok_or_else(|| Error::input(format!("`--var {v}` is not KEY=VALUE")))?;
        out.insert(k.to_string(), val.to_string());
    }
    Ok(out)
}

/// Replace every `{{name}}` in `text` (the file `name` for messages).
/// The devfile's own `variables:`, as text.
fn own_variables(text: &str) -> BTreeMap<String, String> {
    #[derive(Deserialize)]
    struct Vars {
        #[serde(default)]
        variables: BTreeMap<String, serde_json::Value>,
    }
    let own: Vars = serde_saphyr::from_str(text).unwrap_or(Vars {
        variables: BTreeMap::new(),
    });
    own.variables
        .into_iter()
        .map(|(k, v)| {
            let text = v.as_str().map(str::to_string);
            (k, text.unwrap_or_else(|| v.to_string()))
        })
        .collect()
}

/// Substitute `{{name}}` in every string of `value` (keys stay as written).
/// An unknown variable is located in the devfile's `text`.
fn substitute_in(
    file: &str,
    text: &str,
    value: &mut serde_json::Value,
    vars: &BTreeMap<String, String>,
) -> Result<()> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains("{{") => {
            *s = substitute(file, s, vars)
                .map_err(|e| substitute(file, text, vars).err().unwrap_or(e))?;
        }
        Value::Array(items) => {
            for v in items {
                substitute_in(file, text, v, vars)?;
            }
        }
        Value::Object(map) => {
            for v in map.values_mut() {
                substitute_in(file, text, v, vars)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn substitute(file: &str, text: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + len].trim();
        out.push_str(&rest[..start]);
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                let at = offset + start;
                let mut known: Vec<&str> = vars.keys().map(String::as_str).collect();
                known.sort();
                return Err(Error::input(format!("{file}: undefined variable `{name}`"))
                    .help(format!(
                        "define it under `variables:` in the devfile, or pass `--var {name}=VALUE` (known: {})",
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ))
                    .at(file, text, at..at + len + 2, "not defined"));
            }
        }
        offset += start + len + 2;
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The devfile schema's rule for component names
/// (`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, at most 63): no path can hide in one.
fn is_component_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&name.len())
        && name.chars().all(|c| ok(c) || c == '-')
        && name.starts_with(ok)
        && name.ends_with(ok)
}

/// The manifest of a kubernetes/openshift component: inlined, or read
/// from `uri`, a path relative to the devfile that must resolve inside the
/// tree (symlinks included); its variables substituted.
fn component_manifest(
    dir: &Path,
    root: &Path,
    cname: &str,
    k: &serde_json::Value,
    vars: &BTreeMap<String, String>,
    located: &dyn Fn(&str, String, &str) -> Error,
) -> Result<String> {
    if let Some(inlined) = k.get("inlined").and_then(|v| v.as_str()) {
        return Ok(inlined.to_string());
    }
    let Some(uri) = k.get("uri").and_then(|v| v.as_str()) else {
        return Err(located(
            cname,
            format!("component `{cname}` has neither `inlined` nor `uri`"),
            "a kubernetes component needs its manifest inlined or named by `uri`",
        ));
    };
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Err(located(uri, format!("component `{cname}` names a manifest by URL (`{uri}`)"), "vendor the manifest into the project and name it by path: builds and deploys must not depend on the network silently"));
    }
    let p = dir.join(uri);
    let what = format!("component `{cname}`'s manifest `{uri}`");
    crate::tree::config::inside_tree(root, &p, &what)?;
    let outside = || Path::new(uri).is_absolute() || !p.starts_with(root);
    if !p.exists() && outside() {
        return Err(located(
            uri,
            format!("{what} is outside the tree"),
            "strata reads only files inside the tree: name a manifest inside it",
        ));
    }
    let t = std::fs::read_to_string(&p).map_err(|e| {
        located(
            uri,
            format!("component `{cname}`: cannot read `{uri}`: {e}"),
            "`uri` is a path relative to the devfile",
        )
    })?;
    substitute(&display_name(&p, root), &t, vars)
}

/// Read the devfile at `path` (inside `root`), `vars` over its own variables.
pub fn read(root: &Path, path: &Path, vars: &BTreeMap<String, String>) -> Result<Devfile> {
    let name = display_name(path, root);
    let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
    let dir = path.parent().unwrap_or(root).to_path_buf();
    let mut all = own_variables(&text);
    all.extend(vars.clone());
    // Variables are substituted into the parsed string values, never into
    // the YAML text: a value cannot add structure (as odo does it).
    let mut raw: Raw = parse_yaml(&name, &text)?;
    for value in raw.components.iter_mut().chain(raw.commands.iter_mut()) {
        substitute_in(&name, &text, value, &all)?;
    }
    let located = |needle: &str, message: String, help: &str| {
        let err = Error::input(format!("{name}: {message}")).help(help.to_string());
        match text.find(needle).filter(|_| !needle.is_empty()) {
            Some(i) => err.at(&name, &text, i..i + needle.len(), "here"),
            None => err,
        }
    };
    let version_ok = raw
        .schema_version
        .strip_prefix("2.")
        .and_then(|r| r.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| m <= 3);
    if !version_ok {
        return Err(located(
            &raw.schema_version,
            format!("unknown devfile schemaVersion `{}`", raw.schema_version),
            "strata reads devfiles of schemaVersion 2.0.0 to 2.3.x",
        ));
    }
    if raw.parent.is_some() {
        return Err(located(
            "parent:",
            "a devfile with a `parent` is not read by strata".into(),
            "flatten it first (`odo` or the devfile library resolve parents), then point strata at the result",
        ));
    }
    let mut df = Devfile {
        path: name.clone(),
        ..Default::default()
    };
    let mut names = Vec::new();
    for c in &raw.components {
        let Some(obj) = c.as_object() else {
            return Err(located("components:", "a component is not a mapping".into(), "each entry of `components:` is a mapping with a `name` and one kind (`image`, `kubernetes`, …)"));
        };
        let Some(cname) = obj.get("name").and_then(|n| n.as_str()) else {
            return Err(located(
                "components:",
                "a component has no `name`".into(),
                "give every component a name",
            ));
        };
        if !is_component_name(cname) {
            return Err(located(
                cname,
                format!("component name `{cname}` is not a devfile component name"),
                "a name is at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit (the devfile schema's rule)",
            ));
        }
        names.push(cname.to_string());
        if let Some(image) = obj.get("image") {
            component_image(&mut df, root, &dir, &name, &text, cname, image)?;
        } else if let Some(k) = obj.get("kubernetes").or_else(|| obj.get("openshift")) {
            let text = component_manifest(&dir, root, cname, k, &all, &located)?;
            df.manifests.push(Manifest {
                component: cname.to_string(),
                text,
            });
        } else if obj.contains_key("container") || obj.contains_key("volume") {
            // The inner loop's components: nothing to build.
        } else {
            let kind = obj
                .keys()
                .find(|k| *k != "name" && *k != "attributes")
                .cloned()
                .unwrap_or_default();
            df.unbuildable.push((
                cname.to_string(),
                format!("`{kind}` components are not built by strata"),
            ));
        }
    }
    df.deploy = deploy_steps(&raw.commands, &name, &text)?;
    for step in &df.deploy {
        if !names.contains(step) {
            return Err(located(
                step,
                format!("the deploy command applies `{step}`, which is no component"),
                "apply a component of this devfile",
            ));
        }
    }
    Ok(df)
}

fn component_image(
    df: &mut Devfile,
    root: &Path,
    dir: &Path,
    file: &str,
    text: &str,
    cname: &str,
    image: &serde_json::Value,
) -> Result<()> {
    let located = |needle: &str, message: String, help: &str| {
        let err = Error::input(format!("{file}: {message}")).help(help.to_string());
        match text.find(needle).filter(|_| !needle.is_empty()) {
            Some(i) => err.at(file, text, i..i + needle.len(), "here"),
            None => err,
        }
    };
    let Some(docker) = image.get("dockerfile") else {
        df.unbuildable.push((
            cname.into(),
            "an image component without `dockerfile` (e.g. buildpacks) is not built by strata"
                .into(),
        ));
        return Ok(());
    };
    if docker.get("git").is_some() || docker.get("devfileRegistry").is_some() {
        let what = if docker.get("git").is_some() {
            "dockerfile.git"
        } else {
            "dockerfile.devfileRegistry"
        };
        df.unbuildable.push((cname.into(), format!("`{what}` sources are not built by strata: check the Dockerfile into the project and name it by `uri`")));
        return Ok(());
    }
    let image_name = image
        .get("imageName")
        .and_then(|v| v.as_str())
        .unwrap_or(cname)
        .to_string();
    let uri = docker
        .get("uri")
        .and_then(|v| v.as_str())
        .unwrap_or("Dockerfile");
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Err(located(uri, format!("image `{cname}` names its Dockerfile by URL (`{uri}`)"), "vendor the Dockerfile into the project and name it by path: builds must not depend on the network silently"));
    }
    let project = dir.display().to_string();
    let expand = |p: &str| {
        p.replace("${PROJECT_SOURCE}", &project)
            .replace("$PROJECT_SOURCE", &project)
    };
    let dockerfile = dir.join(expand(uri));
    if !dockerfile.is_file() {
        return Err(located(
            uri,
            format!("image `{cname}`: the Dockerfile `{uri}` does not exist"),
            "`dockerfile.uri` is a path relative to the devfile",
        ));
    }
    let context = match docker.get("buildContext").and_then(|v| v.as_str()) {
        Some(c) => dir.join(expand(c)),
        None => dir.to_path_buf(),
    };
    if !context.is_dir() {
        return Err(located(
            cname,
            format!(
                "image `{cname}`: the build context `{}` is not a folder",
                context.display()
            ),
            "`dockerfile.buildContext` is a folder relative to the devfile",
        ));
    }
    crate::tree::config::inside_tree(root, &dockerfile, &format!("image `{cname}`'s Dockerfile"))?;
    crate::tree::config::inside_tree(root, &context, &format!("image `{cname}`'s build context"))?;
    let mut spec = ImageSpec::default();
    let args: Vec<String> = docker
        .get("args")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut i = 0;
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (args[i].clone(), None),
        };
        if !["--build-arg", "--target", "--platform", "--network"].contains(&flag.as_str()) {
            return Err(located(&flag, format!("image `{cname}`: strata does not understand the docker build argument `{flag}`"), "strata takes --build-arg, --target, --platform and --network from `args`; odo would pass the rest to the CLI unchecked"));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i).cloned().ok_or_else(|| {
                    located(
                        &flag,
                        format!("image `{cname}`: `{flag}` without a value"),
                        "give the flag its value",
                    )
                })?
            }
        };
        match flag.as_str() {
            "--build-arg" => {
                let (k, v) = value.split_once('=').unwrap_or((&value, ""));
                spec.args.insert(k.to_string(), v.to_string());
            }
            "--target" => spec.target = Some(value),
            "--platform" => spec.platform = Some(value),
            "--network" => spec.network = Some(value),
            other => {
                return Err(located(other, format!("image `{cname}`: strata does not understand the docker build argument `{other}`"), "strata takes --build-arg, --target, --platform and --network from `args`; odo would pass the rest to the CLI unchecked"));
            }
        }
        i += 1;
    }
    spec.root_required = docker
        .get("rootRequired")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    spec.auto_build = image
        .get("autoBuild")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let rel = |p: &Path| display_name(p, root).replace('\\', "/");
    let file_dir = dockerfile.parent().unwrap_or(dir).to_path_buf();
    df.image_names.insert(cname.to_string(), image_name.clone());
    df.images.push(Image {
        name: cname.to_string(),
        dir: file_dir.clone(),
        rel_dir: rel(&file_dir),
        dockerfile: dockerfile
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default(),
        templated: false,
        context,
        spec,
        reference: Some(image_name),
    });
    Ok(())
}

/// The default deploy command's apply steps, composites followed.
fn deploy_steps(commands: &[serde_json::Value], file: &str, text: &str) -> Result<Vec<String>> {
    let by_id: BTreeMap<&str, &serde_json::Value> = commands
        .iter()
        .filter_map(|c| Some((c.get("id")?.as_str()?, c)))
        .collect();
    let group = |c: &serde_json::Value| {
        c.get("apply")
            .or_else(|| c.get("composite"))
            .or_else(|| c.get("exec"))
            .and_then(|k| k.get("group"))
            .cloned()
    };
    let deploys: Vec<&serde_json::Value> = commands
        .iter()
        .filter(|c| group(c).is_some_and(|g| g["kind"] == "deploy"))
        .collect();
    let chosen = deploys
        .iter()
        .find(|c| group(c).is_some_and(|g| g["isDefault"] == true))
        .or(if deploys.len() == 1 {
            deploys.first()
        } else {
            None
        });
    let Some(start) = chosen else {
        return Ok(Vec::new());
    };
    let mut steps = Vec::new();
    let mut stack = vec![(*start, 0usize)];
    let mut seen = Vec::new();
    while let Some((c, depth)) = stack.pop() {
        let id = c.get("id").and_then(|v| v.as_str()).unwrap_or("?");
        if depth > 32 || seen.contains(&id.to_string()) && c.get("composite").is_some() {
            return Err(
                Error::input(format!("{file}: the deploy command `{id}` includes itself"))
                    .help("remove the cycle of composite commands"),
            );
        }
        seen.push(id.to_string());
        if let Some(apply) = c.get("apply") {
            if let Some(comp) = apply.get("component").and_then(|v| v.as_str()) {
                steps.push(comp.to_string());
            }
        } else if let Some(comp) = c.get("composite") {
            let ids: Vec<&str> = comp["commands"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            for sub in ids.iter().rev() {
                let Some(cmd) = by_id.get(sub) else {
                    let err = Error::input(format!(
                        "{file}: the composite command `{id}` names `{sub}`, which is no command"
                    ));
                    return Err(match text.find(sub) {
                        Some(i) => err.at(file, text, i..i + sub.len(), "here"),
                        None => err,
                    });
                };
                stack.push((cmd, depth + 1));
            }
        } else if c.get("exec").is_some() {
            return Err(Error::input(format!("{file}: the deploy command `{id}` runs `exec`, which strata does not do")).help("strata's deploy applies image and kubernetes components; run exec commands with odo"));
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_substituted_and_unknown_ones_located() {
        let vars = BTreeMap::from([("IMG".to_string(), "acme/web".to_string())]);
        assert_eq!(
            substitute("d", "a: {{IMG}}\nb: {{ IMG }}:1\n", &vars).unwrap(),
            "a: acme/web\nb: acme/web:1\n"
        );
        let e = substitute("d", "a: 1\nb: {{NOPE}}\n", &vars).unwrap_err();
        assert!(
            e.message.contains("undefined variable `NOPE`"),
            "{}",
            e.message
        );
        assert_eq!(e.snippet.unwrap().span, (8, 8));
    }
}
