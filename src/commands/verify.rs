//! `strata verify REF --key PUB --attest-dir DIR`: the signed provenance of
//! REF (written by `build --attest-dir DIR --sign-key`) checked three ways:
//! its signature against the public key, its subject against the digest
//! the registry serves for REF, and each dependency it names by registry
//! digest (parents, bases) against the registry. Exit 1 on any mismatch,
//! with the reason.

use crate::graph::load::Options;
use crate::publish::registry::{Lookup, Registry};
use crate::report;
use crate::util::error::{Code, Error, Result};
use std::path::Path;

pub fn run(opts: &Options, reference: &str, key: &Path, dir: &Path) -> Result<Code> {
    let dir = opts.dir.join(dir);
    let key = opts.dir.join(key);
    let Some(envelope) = find(&dir, reference)? else {
        report::note(&format!(
            "strata: verify: no signed provenance of `{reference}` in `{}`",
            dir.display()
        ));
        return Ok(Code::Failed);
    };
    let payload = match crate::publish::supply::sign::open(&envelope, &key) {
        Ok(p) => p,
        Err(e) => {
            report::note(&format!("strata: verify `{reference}`: {}", e.message));
            return Ok(Code::Failed);
        }
    };
    let statement: serde_json::Value = serde_json::from_slice(&payload)
        .map_err(|e| Error::input(format!("the provenance of `{reference}` is not JSON: {e}")))?;
    let config = crate::tree::config::load(&opts.dir, opts.config.as_deref(), &opts.sets)?.config;
    let rt = crate::commands::session::runtime()?;
    let problems = rt.block_on(check(&statement, reference, &config.insecure_registries))?;
    if problems.is_empty() {
        let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .map_or(0, Vec::len);
        report::out(&format!(
            "verified {reference}: signature, subject {}, {deps} dependencies\n",
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap_or_default()
        ));
        return Ok(Code::Success);
    }
    for p in &problems {
        report::note(&format!("strata: verify `{reference}`: {p}"));
    }
    Ok(Code::Failed)
}

/// The envelope in `dir` whose statement's subject is `reference`.
fn find(dir: &Path, reference: &str) -> Result<Option<serde_json::Value>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::input(format!("cannot read `{}`: {e}", dir.display())))?;
    for e in entries.flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .ends_with(".provenance.dsse.json")
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(envelope) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let body = envelope["payload"]
            .as_str()
            .and_then(crate::util::base64::decode);
        let statement: Option<serde_json::Value> =
            body.and_then(|b| serde_json::from_slice(&b).ok());
        if statement.is_some_and(|s| s["subject"][0]["name"] == reference) {
            return Ok(Some(envelope));
        }
    }
    Ok(None)
}

/// What does not match the registry.
async fn check(
    statement: &serde_json::Value,
    reference: &str,
    insecure: &[String],
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut refs = vec![reference.to_string()];
    for d in &deps {
        if let (Some(uri), Some(digest)) = (d["uri"].as_str(), d["digest"]["sha256"].as_str()) {
            if let Some(repo) = uri.strip_prefix("docker://") {
                refs.push(format!("{repo}@sha256:{digest}"));
            }
        }
    }
    let registry = Registry::new(refs.iter().map(String::as_str), insecure);
    let want = statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .unwrap_or_default();
    match registry.lookup(reference).await? {
        Lookup::Present(d) if d == format!("sha256:{want}") => {}
        Lookup::Present(d) => problems.push(format!(
            "the registry serves {d}; the provenance is about sha256:{want}"
        )),
        Lookup::Absent => problems.push("the registry does not have it".to_string()),
    }
    for dep in &refs[1..] {
        if let Lookup::Absent = registry.lookup(dep).await? {
            problems.push(format!("dependency `{dep}` is not in the registry"));
        }
    }
    Ok(problems)
}
