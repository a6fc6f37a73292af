//! "Which images hold package X" (`affected --package`, `build
//! --package`): the SBOMs `build --attest-dir DIR` wrote, or without a
//! folder, the SBOMs attached in the registry to each selected image's
//! release reference.

use crate::graph::load::Options;
use crate::publish::registry::Registry;
use crate::publish::supply::sbom::version::Query;
use crate::report;
use crate::util::error::{Code, Error, Result};
use std::path::Path;

/// The images holding a package that one of `packages` (`NAME[@RANGE]`)
/// matches, with the matches, in tree order.
pub fn find(
    opts: &Options,
    selectors: &[String],
    packages: &[String],
    dir: Option<&Path>,
) -> Result<Vec<(String, Vec<String>)>> {
    let queries = packages
        .iter()
        .map(|p| Query::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let loaded = crate::graph::load::load(opts)?;
    let config = &loaded.tree.config;
    let sel = crate::graph::select::select(&loaded.graph, config, selectors)?;
    if let Some(dir) = dir {
        let selected = |name: &str| sel.ids.iter().any(|&i| loaded.graph.nodes[i].name == name);
        let mut found = crate::publish::supply::holders(&opts.dir.join(dir), &queries)?;
        found.retain(|(image, _)| selected(image));
        return Ok(found);
    }
    if config.registry.is_empty() {
        return Err(Error::input(
            "--package reads the SBOMs attached in the registry, and no `registry:` is set",
        )
        .help("set `registry:` (the set's images must be pushed with --attest-dir), or give --attest-dir DIR"));
    }
    let images: Vec<(String, String)> = sel
        .ids
        .iter()
        .map(|&i| {
            let node = &loaded.graph.nodes[i];
            (node.name.clone(), node.reference.clone())
        })
        .collect();
    let registry = Registry::new(
        images.iter().map(|(_, r)| r.as_str()),
        &config.insecure_registries,
    );
    let rt = crate::commands::session::runtime()?;
    let (held, missing) = rt.block_on(crate::publish::supply::registry_holders(
        &registry, &images, &queries,
    ))?;
    if !missing.is_empty() {
        report::note(&format!(
            "strata: no SBOM attached in the registry to: {}\n  \
             help: push them with `strata build --push --attest-dir DIR`",
            missing.join(", ")
        ));
    }
    Ok(held)
}

/// `strata affected --package`: print the holders (`--json`: with versions).
pub fn affected(
    opts: &Options,
    selectors: &[String],
    packages: &[String],
    dir: Option<&Path>,
    json: bool,
) -> Result<Code> {
    let found = find(opts, selectors, packages, dir)?;
    report::out(&match json {
        true => {
            let map: serde_json::Map<String, serde_json::Value> = found
                .into_iter()
                .map(|(i, v)| (i, serde_json::json!(v)))
                .collect();
            serde_json::to_string_pretty(&map).unwrap_or_default() + "\n"
        }
        false => found
            .iter()
            .map(|(i, v)| format!("{i}  {}\n", v.join(", ")))
            .collect(),
    });
    Ok(Code::Success)
}
