//! The commands that only read the tree (no engine): `list`, `graph`,
//! `render`, `affected`; and `timeline`, `completions`, `man`.

use crate::commands::cli::{Cli, GraphFormat};
use crate::graph::load::{self, Loaded, Options};
use crate::graph::select::Selection;
use crate::util::error::{Code, Error, Result};
use crate::{graph::select, plan::affected as hit, plan::inputs, report, report::show};
use clap::{CommandFactory, ValueEnum};
use std::path::{Path, PathBuf};

fn selected(opts: &Options, selectors: &[String]) -> Result<(Loaded, Selection)> {
    let loaded = load::load(opts)?;
    let sel = select::select(&loaded.graph, &loaded.tree.config, selectors)?;
    Ok((loaded, sel))
}

fn print(text: &str) -> Result<Code> {
    report::out(text);
    Ok(Code::Success)
}

pub fn list(opts: &Options, selectors: &[String], json: bool) -> Result<Code> {
    let (loaded, sel) = selected(opts, selectors)?;
    print(&show::list(&loaded.graph, &sel, json))
}

pub fn graph(opts: &Options, selectors: &[String], format: GraphFormat) -> Result<Code> {
    let (loaded, sel) = selected(opts, selectors)?;
    let format = format.to_possible_value().expect("named");
    print(&show::graph(&loaded.graph, &sel, format.get_name()))
}

pub fn render(opts: &Options, selectors: &[String], out: Option<&Path>) -> Result<Code> {
    let (loaded, sel) = selected(opts, selectors)?;
    let out = out.map(|o| loaded.tree.root.join(o));
    print(&show::render(&loaded.rendered, &sel, out.as_deref())?)
}

/// The images (and everything built on them) a change to `paths` rebuilds.
pub fn affected(opts: &Options, paths: &[String], json: bool) -> Result<Code> {
    let loaded = load::load(opts)?;
    let inputs = inputs::collect(&loaded)?;
    let hit = hit::affected(&loaded.graph, &inputs, paths);
    let names: Vec<&str> = loaded
        .graph
        .order
        .iter()
        .filter(|i| hit.contains(i))
        .map(|&i| loaded.graph.nodes[i].name.as_str())
        .collect();
    print(&match json {
        true => serde_json::to_string_pretty(&names).unwrap_or_default() + "\n",
        false => names.iter().map(|n| format!("{n}\n")).collect(),
    })
}

pub fn timeline(opts: &Options, summary: &Path, out: &PathBuf) -> Result<Code> {
    let root = &opts.dir;
    let bars = crate::report::timeline::read(&root.join(summary))?;
    crate::report::timeline::write(&root.join(out), &bars)?;
    Ok(Code::Success)
}

pub fn completions(shell: clap_complete::Shell) -> Result<Code> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "strata", &mut out);
    print(&String::from_utf8_lossy(&out))
}

pub fn man() -> Result<Code> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Error::input(format!("cannot render the manual: {e}")))?;
    print(&String::from_utf8_lossy(&out))
}
