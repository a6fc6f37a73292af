//! `strata report SUMMARY.json… -o run.html`: the page of a run done
//! elsewhere (the files CI jobs uploaded), its summaries merged. What
//! cannot be read is said on the page; the page is always written.

use crate::commands::cli::ReportArgs;
use crate::graph::load::Options;
use crate::report::page;
use crate::util::error::{Code, Result};
use serde_json::Value;

pub fn run(opts: &Options, args: &ReportArgs) -> Result<Code> {
    let root = &opts.dir;
    let out = root.join(&args.out);
    page::check_path(&out)?;
    let mut missing = Vec::new();
    let mut merged: Option<Value> = None;
    for path in &args.summaries {
        let path = root.join(path);
        let read = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                serde_json::from_slice::<Value>(&b).map_err(|e| format!("not JSON: {e}"))
            });
        match read {
            Ok(v) => merged = Some(merge(merged, v)),
            Err(e) => missing.push(format!(
                "the summary `{}` could not be read: {e}",
                path.display()
            )),
        }
    }
    if merged.is_none() {
        missing.push("no summary could be read: the page has no images".into());
    }
    let logs = args.logs.as_ref().map(|d| root.join(d));
    let attest = args.attest_dir.as_ref().map(|d| root.join(d));
    let key = args.key.as_ref().map(|k| root.join(k));
    let sources = page::Sources {
        summary: merged,
        logs: logs.as_deref().map(|d| (d, true)),
        attest: attest.as_deref(),
        missing,
        key: key.as_deref(),
        beside: out.parent(),
    };
    page::write(&out, sources)?;
    crate::report::note(&format!("strata: wrote {}", out.display()));
    Ok(Code::Success)
}

/// One summary of several: the images of both, one record per name (the
/// one that ran in its job, where the other only found it up to date or
/// skipped), in the order first seen; the longest wall time; indexes of both.
fn merge(into: Option<Value>, next: Value) -> Value {
    let Some(mut into) = into else {
        return next;
    };
    let ran = |i: &Value| i["started_at"].is_string();
    let (Some(have), Some(more)) = (
        into["images"].as_array().cloned(),
        next["images"].as_array(),
    ) else {
        return into;
    };
    let mut images = have;
    for image in more {
        match images.iter().position(|i| i["name"] == image["name"]) {
            Some(k) if ran(image) || !ran(&images[k]) => images[k] = image.clone(),
            Some(_) => {}
            None => images.push(image.clone()),
        }
    }
    let wall = |v: &Value| v["duration_s"].as_f64().unwrap_or(0.0);
    let duration = wall(&into).max(wall(&next));
    let mut indexes = into["indexes"].as_array().cloned().unwrap_or_default();
    indexes.extend(next["indexes"].as_array().cloned().unwrap_or_default());
    into["images"] = Value::Array(images);
    into["duration_s"] = duration.into();
    into["indexes"] = Value::Array(indexes);
    if into["commit"].is_null() {
        into["commit"] = next["commit"].clone();
    }
    into
}
