//! `strata prune` and `strata keep`: retention in the registry. What goes
//! is decided by `publish/retention.rs`; here the tree is loaded, the registry
//! asked and told, and the table handed to the report.

use crate::commands::session::runtime;
use crate::graph::load::{self, Options};
use crate::util::error::{Code, Error, Result};
use crate::{graph::select, publish::retention, report};

/// The table of what goes and why; deleted unless `dry_run`.
pub fn prune(opts: &Options, selectors: &[String], dry_run: bool, keep: &[String]) -> Result<Code> {
    let loaded = load::load(opts)?;
    let config = &loaded.tree.config;
    let Some(max_age) = config.retention.max_age else {
        return Err(Error::input("`retention.max_age` is not set: strata prune does not know what is old")
            .help("set it in strata.yaml, e.g. `retention: {keep: [latest, master, \"stable-*\"], max_age: 7d}`"));
    };
    let (keep, globs) = retention::keep_set(config, keep)?;
    let sel = select::select(&loaded.graph, config, selectors)?;
    let repos: Vec<String> = sel
        .ids
        .iter()
        .map(|&i| config.repository(&loaded.graph.nodes[i].name))
        .collect();
    let registry = retention::registry(config, &repos)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let rules = retention::Rules {
        keep: &keep,
        globs: &globs,
        max_age: max_age.0,
        now,
    };
    let rt = runtime()?;
    let decisions = rt.block_on(retention::survey(&registry, &repos, &rules))?;
    report::out(&retention::table(&decisions, dry_run));
    let (doomed, all) = (
        decisions.iter().filter(|d| d.delete).count(),
        decisions.len(),
    );
    if dry_run {
        report::note(&format!(
            "strata: dry run: {doomed} of {all} tags would be deleted; nothing was deleted (run with --yes to delete)"
        ));
        return Ok(Code::Success);
    }
    let deleted = rt.block_on(retention::apply(&registry, &decisions))?;
    report::note(&format!(
        "strata: {doomed} of {all} tags deleted ({deleted} manifests); the registry frees their layers at its next garbage collection"
    ));
    Ok(Code::Success)
}

/// Tag the image `reference` points at as `keep-<tag>` in its repository.
pub fn keep(opts: &Options, reference: &str) -> Result<Code> {
    let loaded = load::load(opts)?;
    let names: Vec<&str> = loaded.graph.nodes.iter().map(|n| n.name.as_str()).collect();
    let config = &loaded.tree.config;
    let (full, target) = retention::keep_refs(config, &names, reference)?;
    let registry = retention::registry(config, &[full.clone(), target.clone()])?;
    let digest = runtime()?.block_on(registry.copy_tag(&full, &target))?;
    report::out(&format!(
        "{target} -> {digest} (kept by strata prune until the tag is removed)\n"
    ));
    Ok(Code::Success)
}
