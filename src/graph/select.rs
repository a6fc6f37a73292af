//! Turns selectors into a set of images: `NAME`, a glob `keystone-*`,
//! `re:REGEX`, `NAME+` (with descendants), `+NAME` (with ancestors),
//! `@PROFILE`. No selector selects every image. Knows nothing of builds.

use crate::graph::Graph;
use crate::tree::config::Config;
use crate::util::error::{did_you_mean, Error, Result};
use std::collections::BTreeSet;

/// The selected image ids, in build order (parents first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub ids: Vec<usize>,
    /// Membership by id, for constant-time `contains`.
    member: Vec<bool>,
}

impl Selection {
    fn new(graph: &Graph, ids: Vec<usize>) -> Selection {
        let mut member = vec![false; graph.nodes.len()];
        for &i in &ids {
            member[i] = true;
        }
        Selection { ids, member }
    }

    pub fn contains(&self, id: usize) -> bool {
        self.member.get(id).copied().unwrap_or(false)
    }
}

pub fn select(graph: &Graph, config: &Config, selectors: &[String]) -> Result<Selection> {
    // An image built only on request (`autoBuild: false`) is selected by
    // its exact name only.
    let automatic = |i: &usize| !graph.nodes[*i].manual;
    if selectors.is_empty() {
        let ids = graph.order.iter().copied().filter(automatic).collect();
        return Ok(Selection::new(graph, ids));
    }
    let mut chosen = BTreeSet::new();
    for s in selectors {
        let hit = matches(graph, config, s, &mut Vec::new())?;
        let kept: Vec<usize> = hit
            .iter()
            .copied()
            .filter(|i| automatic(i) || graph.nodes[*i].name == *s)
            .collect();
        if kept.is_empty() {
            let names: Vec<&str> = hit.iter().map(|&i| graph.nodes[i].name.as_str()).collect();
            return Err(Error::input(format!(
                "selector `{s}` matches only images built on request (`autoBuild: false`): {}",
                names.join(", ")
            ))
            .help("name them exactly to build them"));
        }
        chosen.extend(kept);
    }
    let ids = graph
        .order
        .iter()
        .copied()
        .filter(|i| chosen.contains(i))
        .collect();
    Ok(Selection::new(graph, ids))
}

fn matches(
    graph: &Graph,
    config: &Config,
    selector: &str,
    profiles_seen: &mut Vec<String>,
) -> Result<BTreeSet<usize>> {
    let names = || graph.names();
    let none = || {
        Error::input(format!("selector `{selector}` matches no image"))
            .help("`strata list` shows every image; selectors are NAME, a glob, re:REGEX, NAME+, +NAME or @PROFILE")
    };
    if let Some(profile) = selector.strip_prefix('@') {
        let Some(list) = config.profiles.get(profile) else {
            let hint =
                did_you_mean(profile, config.profiles.keys().map(String::as_str)).or_else(|| {
                    Some(format!(
                        "profiles are defined under `profiles:` in strata.yaml{}",
                        known(config.profiles.keys())
                    ))
                });
            return Err(Error::input(format!("no profile named `{profile}`"))
                .help(hint.unwrap_or_default()));
        };
        if profiles_seen.iter().any(|p| p == profile) {
            return Err(Error::input(format!("profile `{profile}` includes itself"))
                .help("remove the `@` entry that refers back to it"));
        }
        profiles_seen.push(profile.to_string());
        let mut out = BTreeSet::new();
        for s in list {
            out.extend(matches(graph, config, s, profiles_seen)?);
        }
        profiles_seen.pop();
        return Ok(out);
    }
    if let Some(pattern) = selector.strip_prefix("re:") {
        let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            Error::input(format!(
                "invalid regular expression in selector `{selector}`: {e}"
            ))
        })?;
        let out: BTreeSet<usize> = names()
            .enumerate()
            .filter(|(_, n)| re.is_match(n))
            .map(|(i, _)| i)
            .collect();
        return if out.is_empty() { Err(none()) } else { Ok(out) };
    }
    if let Some(name) = selector.strip_suffix('+') {
        let ids = exact(graph, selector, name)?;
        return Ok(ids
            .into_iter()
            .flat_map(|id| graph.descendants(id))
            .collect());
    }
    if let Some(name) = selector.strip_prefix('+') {
        let ids = exact(graph, selector, name)?;
        return Ok(ids.into_iter().flat_map(|id| graph.ancestors(id)).collect());
    }
    if selector.contains(['*', '?', '[']) {
        let glob = globset::Glob::new(selector)
            .map_err(|e| Error::input(format!("invalid glob in selector `{selector}`: {e}")))?
            .compile_matcher();
        let out: BTreeSet<usize> = names()
            .enumerate()
            .filter(|(_, n)| glob.is_match(n))
            .map(|(i, _)| i)
            .collect();
        return if out.is_empty() { Err(none()) } else { Ok(out) };
    }
    Ok(exact(graph, selector, selector)?.into_iter().collect())
}

/// The image named `name`; in a multi-platform set, a name without `@arch`
/// names the image's record of every platform (`app` → `app@amd64`, `app@arm64`).
fn exact(graph: &Graph, selector: &str, name: &str) -> Result<Vec<usize>> {
    if let Some(id) = graph.index(name) {
        return Ok(vec![id]);
    }
    let records: Vec<usize> = (graph.nodes.iter().enumerate())
        .filter(|(_, n)| n.name.split_once('@').is_some_and(|(base, _)| base == name))
        .map(|(i, _)| i)
        .collect();
    if !records.is_empty() {
        return Ok(records);
    }
    Err({
        let hint = did_you_mean(name, graph.names())
            .unwrap_or_else(|| "`strata list` shows every image; selectors are NAME, a glob, re:REGEX, NAME+, +NAME or @PROFILE".into());
        Error::input(format!(
            "selector `{selector}` matches no image: no image is named `{name}`"
        ))
        .help(hint)
    })
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<String> = names.map(|n| format!("`@{n}`")).collect();
    if list.is_empty() {
        " (this tree defines none)".into()
    } else {
        format!("; this tree has {}", list.join(", "))
    }
}
