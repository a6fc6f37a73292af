//! What the page shows, read from the files a run leaves: the summary
//! JSON (read loosely, so that a summary of another strata version still
//! gives a page), the per-image logs, the SBOMs and the provenance. One
//! record per image; each thing that could not be read is named in
//! `missing` instead of failing.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the page's facts come from.
pub struct Sources<'a> {
    /// The summary, parsed (None: it could not be read; `missing` says why).
    pub summary: Option<Value>,
    /// The folder of `<image>.log` files, and whether it keeps every log
    /// (a `--logs-dir`) or only those of failed images.
    pub logs: Option<(&'a Path, bool)>,
    /// Where the SBOMs and provenance are (`--attest-dir`): each file the
    /// summary names is looked for there by its file name; without it, at
    /// the path the summary gives.
    pub attest: Option<&'a Path>,
    /// What could not be read so far (e.g. the summary itself).
    pub missing: Vec<String>,
    /// The public key that checks signed provenance, if one was given.
    pub key: Option<&'a Path>,
    /// The page's folder: the files under it are named relative to it,
    /// so that the names still hold when the folder is copied whole (a
    /// CI job's artifacts).
    pub beside: Option<&'a Path>,
}

/// `path` as the page names it: relative to `beside` when under it.
fn shown(path: &Path, beside: Option<&Path>) -> String {
    let rel = beside.and_then(|b| path.strip_prefix(b).ok());
    rel.unwrap_or(path).display().to_string()
}

/// The most log text the page keeps in all (per image: this over the
/// number of images, at most `LOG_MAX`): a 200-image run stays small.
const LOG_BUDGET: usize = 3 << 20;
const LOG_MAX: usize = 256 << 10;

/// The page's data: one JSON document the script draws from.
pub fn model(mut s: Sources) -> Value {
    let summary = s.summary.take().unwrap_or(Value::Null);
    let images = summary["images"].as_array().cloned().unwrap_or_default();
    if summary.is_object() && summary["images"].as_array().is_none() {
        s.missing
            .push("the summary has no `images` list: it is not one strata writes".into());
    }
    let names: Vec<String> = images.iter().map(|i| text(&i["name"])).collect();
    let needs: Vec<Vec<String>> = images.iter().map(needs_of).collect();
    let levels = levels(&names, &needs);
    let per_log = (LOG_BUDGET / images.len().max(1)).min(LOG_MAX);
    match s.logs {
        None => s.missing.push(
            "no log folder: the panels show no logs (give `--logs DIR`, the run's `--logs-dir`)"
                .into(),
        ),
        Some((dir, _)) if !dir.is_dir() => s
            .missing
            .push(format!("the log folder `{}` is not there", dir.display())),
        Some(_) => {}
    }
    let mut records = Vec::new();
    for (i, image) in images.iter().enumerate() {
        let mut r = image.as_object().cloned().unwrap_or_default();
        r.insert("needs".into(), json!(needs[i]));
        r.insert("level".into(), json!(levels[i]));
        r.insert("log".into(), log_of(&names[i], image, &s, per_log));
        r.insert("sbom_packages".into(), sbom_of(image, &s));
        r.insert("provenance_about".into(), provenance_of(image, &s));
        r.insert("content_tag".into(), json!(content_tag(image)));
        records.push(Value::Object(r));
    }
    let critical = critical_path(&names, &needs, &images);
    let critical_s: f64 = critical
        .iter()
        .map(|&i| images[i]["duration_s"].as_f64().unwrap_or(0.0))
        .sum();
    let first = first_failure(&images, &names, &needs);
    json!({
        "images": records,
        "wall_s": summary["duration_s"],
        "critical": critical.iter().map(|&i| names[i].clone()).collect::<Vec<_>>(),
        "critical_s": critical_s,
        "first_failure": first,
        "indexes": summary["indexes"],
        "tests_skipped": summary["tests_skipped"],
        "engines_lost": summary["engines_lost"],
        "commit": summary["commit"],
        "missing": s.missing,
        "timeline": timeline(&images),
    })
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The image's parents in the run: `needs` (every image), else the names
/// of `parents` (a summary written before `needs`, built images only).
fn needs_of(image: &Value) -> Vec<String> {
    match image["needs"].as_array() {
        Some(list) => list.iter().map(text).collect(),
        None => (image["parents"].as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

/// Each image's level: 0 for one with no parent in the run, else one
/// more than its highest parent (parents come first in a summary; a
/// parent not named is ignored).
fn levels(names: &[String], needs: &[Vec<String>]) -> Vec<usize> {
    let at: HashMap<&str, usize> = (names.iter().enumerate())
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut level = vec![0usize; names.len()];
    for i in 0..names.len() {
        level[i] = (needs[i].iter())
            .filter_map(|p| at.get(p.as_str()).filter(|&&k| k < i))
            .map(|&k| level[k] + 1)
            .max()
            .unwrap_or(0);
    }
    level
}

/// The chain of parents with the longest sum of durations, ending at the
/// image where that sum is highest: the run's lower bound on wall time
/// with unlimited engines.
fn critical_path(names: &[String], needs: &[Vec<String>], images: &[Value]) -> Vec<usize> {
    let at: HashMap<&str, usize> = (names.iter().enumerate())
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut best: Vec<(f64, Option<usize>)> = Vec::with_capacity(names.len());
    for i in 0..names.len() {
        let own = images[i]["duration_s"].as_f64().unwrap_or(0.0);
        let from = (needs[i].iter())
            .filter_map(|p| at.get(p.as_str()).copied().filter(|&k| k < i))
            .max_by(|&a, &b| best[a].0.total_cmp(&best[b].0));
        best.push((own + from.map_or(0.0, |k| best[k].0), from));
    }
    let Some(mut at) = (0..best.len()).max_by(|&a, &b| best[a].0.total_cmp(&best[b].0)) else {
        return Vec::new();
    };
    let mut path = vec![at];
    while let Some(k) = best[at].1 {
        path.push(k);
        at = k;
    }
    path.reverse();
    path
}

/// The first image that failed (by its end), its error, and every image
/// that was skipped below it.
fn first_failure(images: &[Value], names: &[String], needs: &[Vec<String>]) -> Value {
    let failed = (0..images.len())
        .filter(|&i| images[i]["status"] == "failed")
        .min_by_key(|&i| text(&images[i]["finished_at"]));
    let Some(f) = failed else {
        return Value::Null;
    };
    let mut below = vec![false; names.len()];
    let mut skipped = Vec::new();
    for i in 0..names.len() {
        let from_f = needs[i].iter().any(|p| {
            (names.iter().position(|n| n == p)).is_some_and(|k| k == f || (k < i && below[k]))
        });
        if from_f && i != f {
            below[i] = true;
            if images[i]["status"] == "parent-failed" {
                skipped.push(names[i].clone());
            }
        }
    }
    json!({"name": names[f], "error": images[f]["error"], "skipped": skipped})
}

/// The log of `name`: its text (the last part, when longer than `max`
/// bytes), where the whole of it is, and the line of the step that failed.
fn log_of(name: &str, image: &Value, s: &Sources, max: usize) -> Value {
    let Some((dir, keeps_all)) = s.logs else {
        return Value::Null;
    };
    let path = dir.join(format!("{name}.log"));
    let Ok(bytes) = std::fs::read(&path) else {
        let why = match (keeps_all, image["status"].as_str()) {
            (_, Some("up-to-date" | "parent-failed")) => "nothing ran for it in this run",
            (false, _) => "the run kept only the logs of failed images (`--logs-dir` keeps all)",
            _ => "no log file for it in the log folder",
        };
        return json!({"absent": why});
    };
    let cut = bytes.len().saturating_sub(max);
    let start = (cut..bytes.len())
        .find(|&i| i == 0 || bytes[i - 1] == b'\n')
        .unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    let failed = image["status"] == "failed";
    let step = failed.then(|| failing_step(&text)).flatten();
    json!({
        "text": text,
        "truncated": start > 0,
        "bytes": bytes.len(),
        "file": shown(&path, s.beside),
        "failing_line": step,
    })
}

/// The line (0-based) of the last step begun in a log: BuildKit's
/// `#N [k/n] RUN …` or the classic builder's `Step k/n : RUN …`.
fn failing_step(text: &str) -> Option<usize> {
    let step = regex::Regex::new(r"^(#\d+ \[[^\]]*\d+/\d+\] |Step \d+/\d+ : )").ok()?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| step.is_match(l))
        .map(|(i, _)| i)
        .last()
}

fn resolve(s: &Sources, path: &str) -> PathBuf {
    let p = Path::new(path);
    match (s.attest, p.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => p.to_path_buf(),
    }
}

/// The SBOM's package count, and the packages added, removed and changed
/// against the one of the image's previous publication (`sbom_previous`).
fn sbom_of(image: &Value, s: &Sources) -> Value {
    let Some(path) = image["sbom"].as_str() else {
        return Value::Null;
    };
    let read = |p: &str| crate::publish::supply::read_packages(&resolve(s, p));
    let now = match read(path) {
        Ok(p) => p,
        Err(e) => return json!({"absent": e.message}),
    };
    let mut out = Map::new();
    out.insert("count".into(), json!(now.len()));
    match image["sbom_previous"].as_str().map(read) {
        Some(Ok(before)) => {
            let (added, removed, changed) = diff(&before, &now);
            out.insert("added".into(), json!(added));
            out.insert("removed".into(), json!(removed));
            out.insert("changed".into(), json!(changed));
            out.insert("previous".into(), image["previous_digest"].clone());
        }
        Some(Err(e)) => {
            out.insert("previous_absent".into(), json!(e.message));
        }
        None => {}
    }
    Value::Object(out)
}

/// Package names added and removed, and `[name, before, now]` of those
/// whose version changed (each name once, sorted).
pub fn diff(
    before: &[(String, String)],
    now: &[(String, String)],
) -> (Vec<String>, Vec<String>, Vec<[String; 3]>) {
    let old: std::collections::BTreeMap<&str, &str> = before
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let new: std::collections::BTreeMap<&str, &str> =
        now.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let added = (new.keys())
        .filter(|n| !old.contains_key(*n))
        .map(|n| format!("{n} {}", new[n]))
        .collect();
    let removed = (old.keys())
        .filter(|n| !new.contains_key(*n))
        .map(|n| format!("{n} {}", old[n]))
        .collect();
    let changed = (new.iter())
        .filter_map(|(n, v)| {
            let was = old.get(n).filter(|w| *w != v)?;
            Some([n.to_string(), was.to_string(), v.to_string()])
        })
        .collect();
    (added, removed, changed)
}

/// The provenance's subject (name and digest) and its signature: whether
/// it is signed, and with `key`, whether it verified.
fn provenance_of(image: &Value, s: &Sources) -> Value {
    let Some(path) = image["provenance"].as_str() else {
        return Value::Null;
    };
    let file = resolve(s, path);
    let Some(doc) = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return json!({"absent": format!("`{}` could not be read", file.display())});
    };
    let signed = doc["signatures"].is_array();
    let (statement, verified) = match (signed, s.key) {
        (false, _) => (doc.clone(), Value::Null),
        (true, Some(key)) => match crate::publish::supply::sign::open(&doc, key) {
            Ok(p) => (serde_json::from_slice(&p).unwrap_or_default(), json!(true)),
            Err(e) => (unsigned_payload(&doc), json!(e.message)),
        },
        (true, None) => (unsigned_payload(&doc), Value::Null),
    };
    let subject = &statement["subject"][0];
    json!({
        "subject": text(&subject["name"]),
        "digest": subject["digest"]["sha256"].as_str().map(|d| format!("sha256:{d}")),
        "signed": signed,
        "verified": verified,
    })
}

/// The statement inside a DSSE envelope, read without checking it.
fn unsigned_payload(envelope: &Value) -> Value {
    (envelope["payload"].as_str())
        .and_then(crate::util::base64::decode)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// `fp-<24 hex>` of the fingerprint, as the registry names it.
fn content_tag(image: &Value) -> Option<String> {
    let fp = image["fingerprint"].as_str()?;
    Some(format!("fp-{}", &fp[..fp.len().min(24)]))
}

/// The timeline picture of the same summary (SVG), whose bars the script
/// links to the panels.
fn timeline(images: &[Value]) -> String {
    let bars: Vec<crate::report::timeline::Bar> = images
        .iter()
        .filter_map(|i| serde_json::from_value(i.clone()).ok())
        .collect();
    crate::report::timeline::svg(&bars).unwrap_or_default()
}
