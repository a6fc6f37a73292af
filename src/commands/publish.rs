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
) -> Result<Code> {
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
        report::note(&format!(
            "strata: nothing was published: not in the registry with their current inputs: {}\n  \
             help: push them first (`strata build --push`)",
            missing.join(", ")
        ));
        return Ok(Code::Failed);
    }
    let (done, indexes) = session.release(&plan, &settings)?;
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
