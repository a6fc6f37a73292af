//! SLSA v1 provenance of an image built in a run: an in-toto Statement
//! (`https://in-toto.io/Statement/v1`, predicate
//! `https://slsa.dev/provenance/v1`) whose subject is the image by digest
//! (the registry's manifest digest when it was pushed, else its image ID).
//! What strata knows goes in: the parameters asked for (never a secret's
//! value: only ids), the git commit and source, the context's digest, each
//! parent and base by digest, the fingerprint, builder and engine, when it
//! ran and the image tests' verdicts. Knows nothing of engines.

use crate::execute::imagetest::TestResult;
use crate::plan::Item;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::BTreeMap;

pub const STATEMENT: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE: &str = "https://slsa.dev/provenance/v1";
/// strata's build type: what `externalParameters` mean.
pub const BUILD_TYPE: &str = "https://strata.invalid/build-types/image/v1";

/// A `sha256:…` (or bare hex) digest as an in-toto DigestSet.
fn digest_set(digest: &str) -> Value {
    match digest.split_once(':') {
        Some((alg, hex)) => json!({ alg: hex }),
        None => json!({ "sha256": digest }),
    }
}

/// The SHA-256 of the image's context: its kept files and links as the
/// fingerprint lists them (path and content hash), in order.
fn context_digest(item: &Item) -> String {
    let mut h = sha2::Sha256::new();
    for (what, value) in &item.fingerprint.manifest.inputs {
        if what.starts_with("file ") {
            h.update(format!("{what}\0{value}\n").as_bytes());
        }
    }
    format!("{:x}", h.finalize())
}

/// What a run did to one image, as its provenance records it: the subject
/// digest, the parents it was built on (name → digest), where and how it
/// was built, when, and its tests' verdicts.
pub struct Run<'a> {
    pub digest: &'a str,
    pub parents: &'a BTreeMap<String, String>,
    pub builder: &'a str,
    pub engine: &'a str,
    pub started_at: Option<&'a str>,
    pub finished_at: Option<&'a str>,
    pub tests: &'a [TestResult],
    /// The ids of the secrets it was given (never their values).
    pub secrets: Vec<String>,
}

/// The statement for `item`, built as `report` says, on `selection`;
/// `parents` gives each parent's reference by name.
pub fn statement(
    item: &Item,
    report: &Run,
    parents: &BTreeMap<String, String>,
    selection: &[String],
) -> Value {
    let subject_digest = report.digest;
    let labels = &item.request.labels;
    let mut deps = Vec::new();
    if let Some(rev) = labels.get("org.opencontainers.image.revision") {
        let source = labels
            .get("org.opencontainers.image.source")
            .cloned()
            .unwrap_or_default();
        let uri = match source.is_empty() {
            true => "git".to_string(),
            false => format!("git+{source}"),
        };
        deps.push(json!({"uri": uri, "digest": {"gitCommit": rev}}));
    }
    deps.push(json!({"name": "context", "digest": {"sha256": context_digest(item)}}));
    for (name, digest) in report.parents {
        let mut d = json!({"name": format!("parent:{name}"), "digest": digest_set(digest)});
        if let Some(reference) = parents.get(name) {
            d["uri"] = json!(format!(
                "docker://{}",
                crate::util::reference::repository(reference)
            ));
        }
        deps.push(d);
    }
    for (what, value) in &item.fingerprint.manifest.inputs {
        if let Some(base) = what.strip_prefix("base ") {
            let mut d =
                json!({"uri": format!("docker://{}", crate::util::reference::repository(base))});
            if value.starts_with("sha256:") {
                d["digest"] = digest_set(value);
            }
            deps.push(d);
        }
    }
    let tests: Vec<Value> = report
        .tests
        .iter()
        .map(|t| {
            let verdict = if t.passed { "passed" } else { "failed" };
            json!({
                "name": format!("test:{}", t.name),
                "content": crate::util::base64::encode(verdict.as_bytes()),
                "annotations": {"passed": t.passed, "file": t.file, "duration_s": t.duration.as_secs_f64()},
            })
        })
        .collect();
    json!({
        "_type": STATEMENT,
        "subject": [{"name": item.reference, "digest": digest_set(subject_digest)}],
        "predicateType": PREDICATE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "image": item.name,
                    "selection": selection,
                    "reference": item.reference,
                    "tags": item.extra_tags,
                    "buildArgs": item.request.args,
                    "platform": item.request.platform,
                    "target": item.request.target,
                    "secrets": report.secrets,
                },
                "internalParameters": {
                    "fingerprint": item.fingerprint.hash,
                    "builder": report.builder,
                    "engine": crate::util::url::shown(report.engine),
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": format!("https://strata.invalid/strata@{}", env!("CARGO_PKG_VERSION"))},
                "metadata": {
                    "invocationId": format!("strata-{}-{}", std::process::id(), report.started_at.unwrap_or_default()),
                    "startedOn": report.started_at,
                    "finishedOn": report.finished_at,
                },
                "byproducts": tests,
            },
        },
    })
}
