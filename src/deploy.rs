//! `strata deploy`: a devfile's default `deploy` command, as odo runs it,
//! but with the images built as a set: its `image` components are built
//! and pushed as `build --push` does, then its `kubernetes`/`openshift`
//! components are written out (or piped to `kubectl apply -f -`) with every
//! reference to a built image pinned by digest (`repo@sha256:…`), as
//! `ko resolve` does.

use crate::build::{self, BuildArgs};
use crate::devfile;
use crate::error::{Code, Error, Result};
use crate::load::{self, Options};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

pub struct DeployArgs {
    pub out: Option<PathBuf>,
    pub apply: bool,
    pub progress: crate::progress::Mode,
}

pub fn run(opts: &Options, args: &DeployArgs) -> Result<Code> {
    let loaded = load::load(opts)?;
    let root = loaded.tree.root.clone();
    let steps: Vec<(&devfile::Devfile, &String)> = loaded
        .devfiles
        .iter()
        .flat_map(|d| d.deploy.iter().map(move |s| (d, s)))
        .collect();
    if steps.is_empty() {
        return Err(Error::input("no devfile of this tree has a default `deploy` command")
            .help("add a command with `group: {kind: deploy, isDefault: true}` whose `apply` (or composite) names the components to deploy"));
    }
    if args.apply && which("kubectl").is_none() {
        return Err(Error::input("--apply pipes the manifests to `kubectl apply -f -`, and `kubectl` is not on PATH")
            .help("install kubectl (and point it at the cluster), or leave out --apply to print the manifests, or --out DIR to write them"));
    }
    if loaded.tree.config.registry.is_empty() {
        return Err(
            Error::input("deploy pushes the images, and `registry:` is not set")
                .help("set `registry:` in strata.yaml, or pass `--set registry=HOST[:PORT]`"),
        );
    }
    let images: Vec<String> = steps
        .iter()
        .filter(|(d, s)| d.images.iter().any(|i| &i.name == *s))
        .map(|(_, s)| s.to_string())
        .collect();
    let manifests: Vec<&devfile::Manifest> = steps
        .iter()
        .filter_map(|(d, s)| d.manifests.iter().find(|m| &m.component == *s))
        .collect();
    let mut pinned: BTreeMap<String, String> = BTreeMap::new();
    if !images.is_empty() {
        // The build's summary says what was pushed where.
        let summary =
            std::env::temp_dir().join(format!("strata-deploy-{}.json", std::process::id()));
        let code = build::run(opts, &build_args(&images, summary.clone(), args.progress));
        let text = std::fs::read_to_string(&summary).unwrap_or_default();
        let _ = std::fs::remove_file(&summary);
        let code = code?;
        if code != Code::Success {
            eprintln!("strata: deploy stopped: the images did not all build and push; no manifest was written");
            return Ok(code);
        }
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let written: BTreeMap<&str, &str> = loaded
            .devfiles
            .iter()
            .flat_map(|d| d.image_names.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        for image in json["images"].as_array().into_iter().flatten() {
            let (Some(name), Some(reference), Some(digest)) = (
                image["name"].as_str(),
                image["ref"].as_str(),
                image["digest"].as_str(),
            ) else {
                continue;
            };
            let repo = crate::engine::split_tag(reference).0;
            let to = format!("{repo}@{digest}");
            for from in [reference.to_string(), repo.to_string()] {
                pinned.insert(from, to.clone());
            }
            if let Some(w) = written.get(name) {
                pinned.insert(w.to_string(), to.clone());
                if !w.rsplit('/').next().unwrap_or(w).contains(':') {
                    pinned.insert(format!("{w}:latest"), to.clone());
                }
            }
        }
    }
    let mut all = String::new();
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
            devfile::pin(&mut doc, &pinned);
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
        all.push_str(&text);
        files.push((m.component.clone(), text));
    }
    if let Some(dir) = &args.out {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
        for (component, text) in &files {
            let path = dir.join(format!("{component}.yaml"));
            std::fs::write(&path, text).map_err(|e| Error::write(&path, e))?;
            eprintln!("strata: wrote {}", path.display());
        }
    }
    if args.apply {
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
        return Ok(if status.success() {
            Code::Success
        } else {
            Code::Failed
        });
    }
    if args.out.is_none() {
        print!("{all}");
    }
    Ok(Code::Success)
}

fn build_args(images: &[String], summary: PathBuf, progress: crate::progress::Mode) -> BuildArgs {
    BuildArgs {
        selectors: images.to_vec(),
        push: true,
        progress,
        summary: Some(summary),
        ..BuildArgs::default()
    }
}

/// The program `name` on PATH, if any.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
