//! `strata publish`: every image of the selection (and the stale parents
//! the plan adds) must be in the registry under its current content tag;
//! then each release reference moves to it. Nothing moves otherwise. With
//! --attest-dir, what the build wrote there is attached to each image
//! whose tags moved.

use crate::commands::session::{self, Session};
use crate::commands::settings::Settings;
use crate::engine::pool::Spec;
use crate::graph::load::Options;
use crate::report;
use crate::util::error::{Code, Result};

pub fn run(
    opts: &Options,
    selectors: &[String],
    engine: &Spec,
    keep_on_unknown: bool,
    attest: Option<(std::path::PathBuf, crate::publish::supply::Format)>,
    page: Option<std::path::PathBuf>,
) -> Result<Code> {
    if let Some(p) = &page {
        report::page::check_path(p)?;
    }
    let mut session = Session::open(opts, selectors, None)?;
    if session.config().registry.is_empty() || engine.is_sim() {
        return Err(session::no_registry());
    }
    let mut settings = Settings::new(session.config(), std::slice::from_ref(engine))?;
    settings.upload = true;
    settings.keep_on_unknown = keep_on_unknown;
    settings.attest = attest;
    let plan = session.plan(&settings)?;
    let missing: Vec<&str> = plan
        .items
        .iter()
        .filter(|i| i.published.is_none())
        .map(|i| i.name.as_str())
        .collect();
    if !missing.is_empty() {
        if let Some(p) = &page {
            let nothing = vec![crate::publish::Published::default(); plan.items.len()];
            write_page(p, &plan, &nothing, &[], &missing)?;
        }
        report::note(&format!(
            "strata: nothing was published: not in the registry with their current inputs: {}\n  \
             help: push them first (`strata build --push`)",
            missing.join(", ")
        ));
        return Ok(Code::Failed);
    }
    let (done, indexes) = session.release(&plan, &settings)?;
    if let Some(p) = &page {
        write_page(p, &plan, &done, &indexes, &[])?;
    }
    for ix in &indexes {
        match (&ix.digest, &ix.error) {
            (Some(d), _) => report::note(&format!(
                "strata: {}: index {d} ({}) at {}",
                ix.image,
                ix.platforms.join(", "),
                ix.moved.join(", ")
            )),
            (None, Some(e)) => report::note(&format!("strata: {}: {e}", ix.image)),
            _ => {}
        }
    }
    if indexes.iter().any(|ix| ix.error.is_some()) {
        return Ok(Code::Failed);
    }
    let moved: Vec<(usize, String)> = (done.iter().enumerate())
        .filter(|(_, p)| !p.moved.is_empty())
        .filter_map(|(i, p)| Some((i, p.digest.clone()?)))
        .collect();
    for (i, attached) in session.attach(&plan, &moved, &settings) {
        report::note(&format!(
            "strata: {}: {} attestations attached",
            plan.items[i].name,
            attached.len()
        ));
    }
    Ok(report::published(&plan, &done))
}

/// The publication's page: each image up to date in the registry (or
/// failed: not there, or its tag refused), the references moved, the
/// indexes.
fn write_page(
    path: &std::path::Path,
    plan: &crate::plan::Plan,
    done: &[crate::publish::Published],
    indexes: &[crate::execute::Indexed],
    missing: &[&str],
) -> Result<()> {
    let images: Vec<serde_json::Value> = (plan.items.iter().zip(done))
        .map(|(item, d)| {
            let absent = missing.contains(&item.name.as_str());
            let error = match absent {
                true => Some("not in the registry with its current inputs".to_string()),
                false => d.error.clone(),
            };
            serde_json::json!({
                "name": item.name, "ref": item.reference, "fingerprint": item.fingerprint.hash,
                "status": if error.is_some() { "failed" } else { "up-to-date" },
                "reasons": item.reasons, "error": error, "pushed": d.moved, "digest": d.digest,
                "needs": item.parents.iter().map(|&k| &plan.items[k].name).collect::<Vec<_>>(),
            })
        })
        .collect();
    let summary = serde_json::json!({"images": images, "indexes": indexes});
    let sources = report::page::Sources {
        summary: Some(summary),
        logs: None,
        attest: None,
        missing: vec!["a publication runs no build: there are no logs".into()],
        key: None,
        beside: None,
    };
    report::page::write(path, sources)
}
