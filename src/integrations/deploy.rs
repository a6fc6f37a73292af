//! A devfile's default `deploy` command, as odo runs it, but with the
//! images built as a set: which components it deploys, the references of
//! the built images pinned by digest (`repo@sha256:…`, as `ko resolve`
//! does), the manifests written with them, and `kubectl apply`. The
//! command (`commands/deploy.rs`) builds the images first and hands the
//! build's summary over in memory.

use crate::graph::load::Loaded;
use crate::report::Summary;
use crate::tree::devfile;
use crate::util::error::{Code, Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the default deploy commands of a tree's devfiles name: the image
/// components to build and the manifests to write.
pub struct Steps<'a> {
    pub images: Vec<String>,
    pub manifests: Vec<&'a devfile::Manifest>,
}

/// The deploy steps of `loaded`, checked: there must be some, `kubectl`
/// must be there for `apply`, and a registry to push to.
pub fn steps(loaded: &Loaded, apply: bool) -> Result<Steps<'_>> {
    let steps: Vec<(&devfile::Devfile, &String)> = loaded
        .devfiles
        .iter()
        .flat_map(|d| d.deploy.iter().map(move |s| (d, s)))
        .collect();
    if steps.is_empty() {
        return Err(Error::input("no devfile of this tree has a default `deploy` command")
            .help("add a command with `group: {kind: deploy, isDefault: true}` whose `apply` (or composite) names the components to deploy"));
    }
    if apply {
        kubectl_runs()?;
    }
    let found = Steps {
        images: steps
            .iter()
            .filter(|(d, s)| d.images.iter().any(|i| &i.name == *s))
            .map(|(_, s)| s.to_string())
            .collect(),
        manifests: steps
            .iter()
            .filter_map(|(d, s)| d.manifests.iter().find(|m| &m.component == *s))
            .collect(),
    };
    check_registry(loaded, &found.images)?;
    Ok(found)
}

/// Every image deploy builds is pushed: `registry:`, or a reference that
/// names its registry (a fully qualified `imageName`).
fn check_registry(loaded: &Loaded, images: &[String]) -> Result<()> {
    let config = &loaded.tree.config;
    let unplaced: Vec<&str> = images
        .iter()
        .filter(|name| {
            let id = loaded.graph.index(name);
            let reference = id.map(|i| loaded.graph.nodes[i].reference.as_str());
            config.registry.is_empty()
                && reference.is_none_or(|r| crate::util::reference::registry_of(r).is_none())
        })
        .map(String::as_str)
        .collect();
    if !unplaced.is_empty() {
        return Err(Error::input(format!(
            "deploy pushes the images, and `registry:` is not set (nor named by the imageName of {})",
            unplaced.join(", ")
        ))
        .help("set `registry:` in strata.yaml, or pass `--set registry=HOST[:PORT]`, or name the registry in the imageName"));
    }
    Ok(())
}

/// The lists of a pod spec whose entries' `image:` names an image.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The `image:` of every container (`containers`, `initContainers`,
/// `ephemeralContainers`, wherever they stand: a Pod, a Deployment's
/// template, a CronJob's job template) that names a built image becomes
/// its pinned reference, as kustomize's `images:` does; names, labels,
/// selectors and other strings equal to an image name stay as written.
pub fn pin(doc: &mut serde_json::Value, pinned: &BTreeMap<String, String>) {
    use serde_json::Value;
    match doc {
        Value::Array(a) => a.iter_mut().for_each(|v| pin(v, pinned)),
        Value::Object(o) => {
            for (key, value) in o.iter_mut() {
                match value {
                    Value::Array(list) if CONTAINER_LISTS.contains(&key.as_str()) => {
                        for c in list.iter_mut() {
                            if let Some(Value::String(s)) = c.get_mut("image") {
                                if let Some(p) = pinned.get(s.as_str()) {
                                    *s = p.clone();
                                }
                            }
                        }
                    }
                    other => pin(other, pinned),
                }
            }
        }
        _ => {}
    }
}

/// Every name a built image goes by (its reference, its repository, the
/// devfile's `imageName` as written) → `repo@digest`, from the summary.
pub fn pins(loaded: &Loaded, summary: &Summary) -> BTreeMap<String, String> {
    let written: BTreeMap<&str, &str> = loaded
        .devfiles
        .iter()
        .flat_map(|d| d.image_names.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    let mut pinned = BTreeMap::new();
    for image in &summary.images {
        let Some(digest) = &image.digest else {
            continue;
        };
        let repo = crate::util::reference::repository(&image.reference);
        let to = crate::util::reference::pinned(&image.reference, digest);
        for from in [image.reference.clone(), repo.to_string()] {
            pinned.insert(from, to.clone());
        }
        if let Some(w) = written.get(image.name.as_str()) {
            pinned.insert(w.to_string(), to.clone());
            if !w.rsplit('/').next().unwrap_or(w).contains(':') {
                pinned.insert(format!("{w}:latest"), to.clone());
            }
        }
    }
    pinned
}

/// Each manifest as YAML with the built images pinned: (component, text).
pub fn manifests(
    manifests: &[&devfile::Manifest],
    pinned: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for m in manifests {
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&m.text).map_err(|e| {
            Error::input(format!(
                "the manifest of component `{}` is not YAML: {}",
                m.component,
                e.without_snippet()
            ))
        })?;
        let mut text = String::new();
        for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
            pin(&mut doc, pinned);
            // Long single-line values (pinned references) stay plain scalars.
            let mut options = serde_saphyr::SerializerOptions::default();
            options.prefer_block_scalars = false;
            let yaml = serde_saphyr::to_string_with_options(&doc, options).map_err(|e| {
                Error::input(format!(
                    "cannot write the manifest of `{}`: {e}",
                    m.component
                ))
            })?;
            text.push_str("---\n");
            text.push_str(&yaml);
            if !yaml.ends_with('\n') {
                text.push('\n');
            }
        }
        files.push((m.component.clone(), text));
    }
    Ok(files)
}

/// Write `DIR/<component>.yaml` for each manifest; the paths written.
pub fn write(dir: &Path, files: &[(String, String)]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let mut written = Vec::new();
    for (component, text) in files {
        let path = dir.join(format!("{component}.yaml"));
        std::fs::write(&path, text).map_err(|e| Error::write(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// Pipe `all` to `kubectl apply -f -`: exit 1 when kubectl fails.
pub fn apply(all: &str) -> Result<Code> {
    let mut child = std::process::Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::input(format!("cannot run kubectl: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(all.as_bytes());
    }
    let status = child
        .wait()
        .map_err(|e| Error::input(format!("kubectl: {e}")))?;
    Ok(if status.success() {
        Code::Success
    } else {
        Code::Failed
    })
}

/// `--apply` needs a `kubectl` that runs (`kubectl version --client`),
/// found before anything is built.
fn kubectl_runs() -> Result<()> {
    let help = "install kubectl (and point it at the cluster), or leave out --apply to print the manifests, or --out DIR to write them";
    let ran = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .stdin(std::process::Stdio::null())
        .output();
    match ran {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(Error::input(format!(
            "--apply pipes the manifests to `kubectl apply -f -`, and `kubectl version --client` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .help(help)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::input(
            "--apply pipes the manifests to `kubectl apply -f -`, and `kubectl` is not on PATH",
        )
        .help(help)),
        Err(e) => Err(Error::input(format!(
            "--apply pipes the manifests to `kubectl apply -f -`, and `kubectl` cannot be run: {e}"
        ))
        .help(help)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_replaces_whole_values_only() {
        let mut doc = serde_json::json!({"spec": {"containers": [{"image": "web:1"}, {"image": "web:10"}], "note": "web:1 here"}});
        let pinned = BTreeMap::from([("web:1".to_string(), "r/web@sha256:ab".to_string())]);
        pin(&mut doc, &pinned);
        assert_eq!(doc["spec"]["containers"][0]["image"], "r/web@sha256:ab");
        assert_eq!(doc["spec"]["containers"][1]["image"], "web:10");
        assert_eq!(doc["spec"]["note"], "web:1 here");
        // odo's usual devfile: a Deployment named as its image.
        let pinned = BTreeMap::from([("web".to_string(), "r/web@sha256:ab".to_string())]);
        let mut doc = serde_json::json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {
                "initContainers": [{"name": "web", "image": "web"}],
                "containers": [{"name": "web", "image": "web", "args": ["web"]}]}}}
        });
        pin(&mut doc, &pinned);
        assert_eq!(doc["metadata"]["name"], "web");
        assert_eq!(doc["metadata"]["labels"]["app"], "web");
        assert_eq!(doc["spec"]["selector"]["matchLabels"]["app"], "web");
        let pod = &doc["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["name"], "web");
        assert_eq!(pod["containers"][0]["args"][0], "web");
        assert_eq!(pod["containers"][0]["image"], "r/web@sha256:ab");
        assert_eq!(pod["initContainers"][0]["image"], "r/web@sha256:ab");
    }
}
