//! Prints what `list`, `graph` and `render` show: text for people, JSON and
//! graph languages for programs (shapes of DESIGN.md). Knows nothing of builds.

use crate::graph::select::Selection;
use crate::graph::Graph;
use crate::plan::{Action, Plan};
use crate::render::Rendered;
use crate::util::error::{Error, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Serialize)]
struct ListEntry<'a> {
    name: &'a str,
    #[serde(rename = "ref")]
    reference: &'a str,
    path: &'a str,
    parents: Vec<&'a str>,
    bases: &'a [String],
}

pub fn list(graph: &Graph, sel: &Selection, json: bool) -> String {
    let entries: Vec<ListEntry> = sel
        .ids
        .iter()
        .map(|&i| {
            let n = &graph.nodes[i];
            ListEntry {
                name: &n.name,
                reference: &n.reference,
                path: &n.path,
                parents: n
                    .parents
                    .iter()
                    .map(|&p| graph.nodes[p].name.as_str())
                    .collect(),
                bases: &n.bases,
            }
        })
        .collect();
    if json {
        return serde_json::to_string_pretty(&entries).unwrap_or_default() + "\n";
    }
    let width = |f: &dyn Fn(&ListEntry) -> usize| entries.iter().map(f).max().unwrap_or(0);
    let (wn, wr) = (
        width(&|e| e.name.len()).max(4),
        width(&|e| e.reference.len()).max(3),
    );
    let mut out = format!("{:wn$}  {:wr$}  BUILT ON\n", "NAME", "REF");
    for e in &entries {
        let mut on: Vec<String> = e.parents.iter().map(|p| p.to_string()).collect();
        on.extend(e.bases.iter().map(|b| format!("{b} (base)")));
        let _ = writeln!(
            out,
            "{:wn$}  {:wr$}  {}",
            e.name,
            e.reference,
            on.join(", ")
        );
    }
    out
}

pub fn graph(graph: &Graph, sel: &Selection, format: &str) -> String {
    match format {
        "json" => graph_json(graph, sel),
        "dot" => {
            let mut out = String::from("digraph strata {\n  rankdir=LR;\n  node [shape=box];\n");
            for &i in &sel.ids {
                let _ = writeln!(out, "  \"{}\";", graph.nodes[i].name);
            }
            for (p, c) in edges(graph, sel) {
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\";",
                    graph.nodes[p].name, graph.nodes[c].name
                );
            }
            out + "}\n"
        }
        "mermaid" => {
            let mut out = String::from("graph TD\n");
            for &i in &sel.ids {
                let _ = writeln!(out, "  n{i}[\"{}\"]", graph.nodes[i].name);
            }
            for (p, c) in edges(graph, sel) {
                let _ = writeln!(out, "  n{p} --> n{c}");
            }
            out
        }
        _ => tree(graph, sel),
    }
}

fn edges(graph: &Graph, sel: &Selection) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for &c in &sel.ids {
        for &p in &graph.nodes[c].parents {
            if sel.contains(p) {
                out.push((p, c));
            }
        }
    }
    out.sort_by(|a, b| {
        (&graph.nodes[a.0].name, &graph.nodes[a.1].name)
            .cmp(&(&graph.nodes[b.0].name, &graph.nodes[b.1].name))
    });
    out
}

fn graph_json(graph: &Graph, sel: &Selection) -> String {
    let nodes: Vec<serde_json::Value> = sel
        .ids
        .iter()
        .map(|&i| serde_json::json!({"name": graph.nodes[i].name, "ref": graph.nodes[i].reference}))
        .collect();
    let edges: Vec<serde_json::Value> = edges(graph, sel)
        .into_iter()
        .map(|(p, c)| serde_json::json!({"from": graph.nodes[p].name, "to": graph.nodes[c].name}))
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({"nodes": nodes, "edges": edges}))
        .expect("serializes")
        + "\n"
}

/// An indented tree: each image under the parent its final stage is built on;
/// other parents are named beside it, bases beside the roots.
fn tree(graph: &Graph, sel: &Selection) -> String {
    let shown = |i: usize| sel.contains(i);
    let tree_parent = |i: usize| {
        let n = &graph.nodes[i];
        n.primary_parent
            .filter(|&p| shown(p))
            .or_else(|| n.parents.iter().copied().find(|&p| shown(p)))
    };
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); graph.nodes.len()];
    let mut roots = Vec::new();
    for &i in &sel.ids {
        match tree_parent(i) {
            Some(p) => kids[p].push(i),
            None => roots.push(i),
        }
    }
    let by_name =
        |v: &mut Vec<usize>| v.sort_by(|a, b| graph.nodes[*a].name.cmp(&graph.nodes[*b].name));
    by_name(&mut roots);
    kids.iter_mut().for_each(by_name);

    let mut out = String::new();
    let mut stack: Vec<(usize, String, bool, bool)> = roots
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &r)| (r, String::new(), k == 0, true))
        .collect();
    while let Some((i, indent, last, root)) = stack.pop() {
        let n = &graph.nodes[i];
        let mut notes: Vec<String> = Vec::new();
        let others: Vec<&str> = n
            .parents
            .iter()
            .filter(|&&p| Some(p) != tree_parent(i))
            .map(|&p| graph.nodes[p].name.as_str())
            .collect();
        if !others.is_empty() {
            notes.push(format!("also uses {}", others.join(", ")));
        }
        if root && !n.bases.is_empty() {
            notes.push(format!("on {}", n.bases.join(", ")));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join("; "))
        };
        let branch = if root {
            ""
        } else if last {
            "└── "
        } else {
            "├── "
        };
        let _ = writeln!(out, "{indent}{branch}{}{notes}", n.name);
        let child_indent = if root {
            String::new()
        } else {
            format!("{indent}{}", if last { "    " } else { "│   " })
        };
        for (k, &c) in kids[i].iter().enumerate().rev() {
            stack.push((c, child_indent.clone(), k + 1 == kids[i].len(), false));
        }
    }
    out
}

/// Rendered Dockerfiles: into `out/<image>/Dockerfile`, or to stdout
/// (with a header line per image when there are several).
pub fn render(rendered: &[Rendered], sel: &Selection, out: Option<&Path>) -> Result<String> {
    match out {
        Some(dir) => {
            use rayon::prelude::*;
            sel.ids.par_iter().try_for_each(|&i| {
                let folder = dir.join(&rendered[i].name);
                std::fs::create_dir_all(&folder).map_err(|e| Error::write(&folder, e))?;
                let file = folder.join("Dockerfile");
                std::fs::write(&file, &rendered[i].text).map_err(|e| Error::write(&file, e))
            })?;
            Ok(String::new())
        }
        None if sel.ids.len() == 1 => Ok(rendered[sel.ids[0]].text.clone()),
        None => {
            let mut text = String::new();
            for &i in &sel.ids {
                let _ = writeln!(text, "### strata: {} ###", rendered[i].name);
                text.push_str(&rendered[i].text);
                if !text.ends_with('\n') {
                    text.push('\n');
                }
            }
            Ok(text)
        }
    }
}

/// What `plan` shows: a line per image (action, name, reasons) and a count,
/// or `[{name, ref, fingerprint, action, reasons, …}]` as JSON (a record
/// of a multi-platform set also names its `image` and `platform`).
pub fn plan(plan: &Plan, json: bool) -> String {
    if json {
        let items: Vec<serde_json::Value> = plan
            .items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": i.name,
                    "ref": i.reference,
                    "fingerprint": i.fingerprint.hash,
                    "action": i.action,
                    "reasons": i.reasons,
                    "registry_digest": i.published,
                    "builder": (i.action == Action::Build).then_some(&plan.builder),
                    "image": i.index.as_ref().map(|p| &p.image),
                    "platform": i.index.as_ref().map(|p| &p.platform)
                        .or(Some(&i.request.platform).filter(|p| !p.is_empty())),
                })
            })
            .collect();
        return serde_json::to_string_pretty(&items).unwrap_or_default() + "\n";
    }
    let w = plan.items.iter().map(|i| i.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for i in &plan.items {
        let action = match i.action {
            Action::Build => "build",
            Action::Skip => "skip ",
            Action::Test => "test ",
        };
        let _ = writeln!(out, "{action}  {:w$}  {}", i.name, i.reasons.join("; "));
    }
    let n = plan.to_build().count();
    let t = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Test)
        .count();
    let tested = if t > 0 {
        format!(" ({t} to test)")
    } else {
        String::new()
    };
    let with = match n > 0 && !plan.builder.is_empty() {
        true => format!(" (builder: {})", plan.builder),
        false => String::new(),
    };
    let _ = writeln!(
        out,
        "{n} to build{with}, {} up to date{tested}",
        plan.items.len() - n
    );
    if !plan.stale_outside.is_empty() {
        let _ = writeln!(out, "{}", no_deps_note(&plan.stale_outside));
    }
    out
}

/// What `--no-deps` says: that parents are taken as they are, naming the stale ones.
pub fn no_deps_note(stale: &[String]) -> String {
    let mut note =
        "strata: --no-deps: building only the selection, on whatever parent images exist"
            .to_string();
    if !stale.is_empty() {
        let names: Vec<String> = stale.iter().map(|n| format!("`{n}`")).collect();
        let _ = write!(
            note,
            "\nstrata: --no-deps: stale parents left as they are: {} (their children stay stale until rebuilt on the current ones)",
            names.join(", ")
        );
    }
    note
}

/// What `plan` adds under its table: images devfiles hold that strata does
/// not build, and images whose devfile says their build needs root.
pub fn plan_notes(loaded: &crate::graph::load::Loaded, plan: &crate::plan::Plan) -> String {
    let mut notes = String::new();
    for d in &loaded.devfiles {
        for (name, why) in &d.unbuildable {
            let _ = writeln!(notes, "not built by strata: {name} ({}): {why}", d.path);
        }
    }
    for item in &plan.items {
        if loaded.images[item.id].spec.root_required {
            let _ = writeln!(
                notes,
                "{}: rootRequired (the devfile says its build needs root)",
                item.name
            );
        }
    }
    notes
}
