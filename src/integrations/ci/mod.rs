//! `strata ci`: the set as jobs of an existing CI system. One job per image
//! to build (every selected image with `--all`), each waiting only for its
//! parents' jobs and running `strata build NAME --no-deps --push
//! --no-publish` (content tags only, so any worker can build the children),
//! then one job running `strata publish`, which moves every release tag
//! once every image job succeeded. The registry is the only thing jobs share.
//! GitLab: a child pipeline with `needs:`; GitHub Actions: a workflow with
//! `needs:`; Jenkins: a Jenkins Job Builder pipeline job whose declarative
//! script runs each level's images in `parallel`; Zuul: jobs with
//! `dependencies:` in a project pipeline; Tekton and Argo (`kube`): the
//! set as a Kubernetes workload. What a job needs besides strata's command
//! (setup, image, runner, login, artifacts) is `worker`.

mod github;
mod gitlab;
mod jenkins;
mod kube;
mod worker;
mod zuul;

pub use kube::unplaced;
pub use worker::Worker;

use crate::util::error::{Error, Result};
use clap::ValueEnum;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Gitlab,
    Github,
    Jenkins,
    Zuul,
    /// A Tekton `Pipeline` and `PipelineRun` (tekton.dev/v1).
    Tekton,
    /// An Argo `Workflow` with a DAG template.
    Argo,
}

/// One image's job.
pub struct Job {
    pub name: String,
    /// Names of the images whose jobs this one waits for.
    pub parents: Vec<String>,
}

/// The jobs for the images of `wanted` (graph ids), parents first, each
/// waiting for its parents among them.
pub fn jobs(graph: &crate::graph::Graph, wanted: &std::collections::BTreeSet<usize>) -> Vec<Job> {
    graph
        .order
        .iter()
        .filter(|i| wanted.contains(i))
        .map(|&i| Job {
            name: graph.nodes[i].name.clone(),
            parents: graph.nodes[i]
                .parents
                .iter()
                .filter(|p| wanted.contains(p))
                .map(|&p| graph.nodes[p].name.clone())
                .collect(),
        })
        .collect()
}

/// The `strata` invocation every job starts with: the tree's place and
/// every option `strata ci` was given that changes the set or its inputs
/// (so jobs build exactly what the plan showed).
pub struct Invocation {
    pub prefix: String,
    pub selectors: Vec<String>,
    /// What the jobs need besides strata's command.
    pub worker: Worker,
}

/// What `strata ci` was given, as the jobs must see it again.
pub struct Given<'a> {
    pub dir: &'a std::path::Path,
    pub config: Option<&'a std::path::Path>,
    pub sets: &'a [String],
    pub excludes: &'a [String],
    pub overrides: &'a [std::path::PathBuf],
    pub devfile: Option<&'a std::path::Path>,
    pub vars: &'a [String],
    pub var_files: &'a [std::path::PathBuf],
    pub selectors: &'a [String],
    pub worker: Worker,
}

impl Invocation {
    /// The invocation for `system`; a value the system's file cannot carry
    /// safely is refused (exit 2), naming it.
    pub fn new(given: &Given, system: System) -> Result<Invocation> {
        let mut words: Vec<(&str, String)> = Vec::new();
        if given.dir != std::path::Path::new(".") && !given.dir.as_os_str().is_empty() {
            words.push(("-C", given.dir.display().to_string()));
        }
        if let Some(c) = given.config {
            words.push(("--config", c.display().to_string()));
        }
        words.extend(given.sets.iter().map(|s| ("--set", s.clone())));
        words.extend(given.excludes.iter().map(|e| ("--exclude", e.clone())));
        words.extend(
            given
                .overrides
                .iter()
                .map(|o| ("--override", o.display().to_string())),
        );
        if let Some(d) = given.devfile {
            words.push(("--devfile", d.display().to_string()));
        }
        words.extend(given.vars.iter().map(|v| ("--var", v.clone())));
        words.extend(
            given
                .var_files
                .iter()
                .map(|f| ("--var-file", f.display().to_string())),
        );
        let mut prefix = String::from("strata");
        for (flag, value) in &words {
            carried(system, flag, value)?;
            let _ = write!(prefix, " {flag} {}", quote(value));
        }
        for s in given.selectors {
            carried(system, "a selector", s)?;
        }
        Ok(Invocation {
            prefix,
            selectors: given.selectors.to_vec(),
            worker: given.worker.clone().checked(system)?,
        })
    }

    pub(super) fn build(&self, job: &Job) -> String {
        format!(
            "{} build {} --no-deps --push --no-publish --progress plain --summary {} --junit {}",
            self.prefix,
            quote(&job.name),
            quote(&format!("summary-{}.json", job.name)),
            quote(&format!("junit-{}.xml", job.name)),
        )
    }

    pub(super) fn publish(&self) -> String {
        let sel: Vec<String> = self.selectors.iter().map(|s| quote(s)).collect();
        let sel = if sel.is_empty() {
            String::new()
        } else {
            format!(" {}", sel.join(" "))
        };
        format!("{} publish{sel}", self.prefix)
    }
}

/// Whether `value` (given as `flag`) can reach a job of `system` as the
/// very text given: control characters (a newline, U+0085, DEL, ESC) are
/// refused everywhere; GitHub evaluates `${{ … }}` in `run:` and `env:`
/// before any shell sees it, and Zuul's Ansible templates `{{ … }}` and
/// `{% … %}` in job variables, so those are refused there.
pub fn carried(system: System, flag: &str, value: &str) -> Result<()> {
    let refuse = |why: &str, help: &str| {
        Err(
            Error::input(format!("{flag} `{}`: {why}", value.escape_debug()))
                .help(help.to_string()),
        )
    };
    if value.chars().any(char::is_control) {
        return refuse(
            "holds a control character, which no CI file carries safely",
            "give the value without newlines or other control characters",
        );
    }
    match system {
        System::Github if value.contains("${{") => refuse(
            "holds `${{`, which GitHub Actions would evaluate before the shell runs the job",
            "put the value in strata.yaml (or a file the job reads) instead of the command line",
        ),
        System::Zuul if value.contains("{{") || value.contains("{%") => refuse(
            "holds `{{` or `{%`, which Ansible would template in the job's variables",
            "put the template in strata.yaml (`tag:`, `tags:` and `vars` are templated there)",
        ),
        System::Tekton if value.contains("$(") => refuse(
            "holds `$(`, which Tekton would replace (`$(params.…)`) before any shell runs",
            "put the value in strata.yaml instead of the command line",
        ),
        System::Argo if value.contains("{{") => refuse(
            "holds `{{`, which Argo would template (`{{inputs.…}}`) before any shell runs",
            "put the value in strata.yaml instead of the command line",
        ),
        _ => Ok(()),
    }
}

/// A word for a shell: quoted when it holds anything but safe characters.
pub(super) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A YAML string: always double-quoted, escaped.
pub(super) fn y(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// An identifier the system accepts for a job: the image name, with
/// characters it refuses replaced (and a leading `_` where one must not
/// start with a digit).
fn ident(name: &str, system: System) -> String {
    match system {
        System::Github => {
            let mut id: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if !id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                id.insert(0, '_');
            }
            id
        }
        System::Gitlab => {
            const RESERVED: [&str; 12] = [
                "image",
                "services",
                "stages",
                "types",
                "before_script",
                "after_script",
                "variables",
                "cache",
                "include",
                "pages",
                "default",
                "workflow",
            ];
            if RESERVED.contains(&name) {
                format!("build-{name}")
            } else {
                name.to_string()
            }
        }
        // A Kubernetes name (DNS-1123 label): lowercase letters, digits, `-`.
        System::Tekton | System::Argo => {
            let id: String = (name.to_ascii_lowercase().chars())
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let id = id.trim_matches('-');
            let id = &id[..id.len().min(50)];
            match id.is_empty() {
                true => "image".into(),
                false => id.to_string(),
            }
        }
        _ => name.to_string(),
    }
}

/// Each job's identifier, one-to-one: where two names map to one
/// identifier (GitHub's `a.b` and `a_b`; GitLab's renamed `image` and a real
/// `build-image`), the later one gets a suffix; the publish job's name
/// (under `""`) is taken by no image job.
pub(super) fn ids(jobs: &[Job], system: System) -> BTreeMap<String, String> {
    let mut taken = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    let sep = if system == System::Github { '_' } else { '-' };
    for name in jobs.iter().map(|j| j.name.as_str()).chain([""]) {
        let base = match name {
            "" => ident("strata-publish", system),
            _ => ident(name, system),
        };
        let mut id = base.clone();
        let mut n = 1;
        while taken.contains(&id) || (name.is_empty() && jobs.iter().any(|j| j.name == id)) {
            n += 1;
            id = format!("{base}{sep}{n}");
        }
        taken.insert(id.clone());
        out.insert(name.to_string(), id);
    }
    out
}

/// The pipeline for `system`.
pub fn emit(system: System, jobs: &[Job], inv: &Invocation) -> String {
    match system {
        System::Gitlab => gitlab::gitlab(jobs, inv),
        System::Github => github::github(jobs, inv),
        System::Jenkins => jenkins::jenkins(jobs, inv),
        System::Zuul => zuul::zuul(jobs, inv),
        System::Tekton => kube::tekton(jobs, inv),
        System::Argo => kube::argo(jobs, inv),
    }
}

pub(super) const HEADER: &str = "# Generated by `strata ci`: one job per image, each waiting for its parents' jobs,\n# building with `--push --no-publish` (content tags only); the last job moves the\n# release tags. Jobs share only the registry; each needs an engine, `strata`, and\n# registry credentials in its Docker config.\n";

/// Levels: an image's level is one more than its deepest parent's.
pub(super) fn levels(jobs: &[Job]) -> Vec<Vec<&Job>> {
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    for j in jobs {
        let l = j
            .parents
            .iter()
            .filter_map(|p| level.get(p.as_str()))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        level.insert(&j.name, l);
    }
    let depth = level.values().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); depth];
    for j in jobs {
        out[level[j.name.as_str()]].push(j);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_put_children_after_all_their_parents() {
        let jobs = vec![
            Job {
                name: "a".into(),
                parents: vec![],
            },
            Job {
                name: "b".into(),
                parents: vec!["a".into()],
            },
            Job {
                name: "c".into(),
                parents: vec![],
            },
            Job {
                name: "d".into(),
                parents: vec!["b".into(), "c".into()],
            },
        ];
        let l: Vec<Vec<&str>> = levels(&jobs)
            .iter()
            .map(|l| l.iter().map(|j| j.name.as_str()).collect())
            .collect();
        assert_eq!(l, vec![vec!["a", "c"], vec!["b"], vec!["d"]]);
        assert_eq!(ident("9lives.x", System::Github), "_9lives_x");
        assert_eq!(ident("image", System::Gitlab), "build-image");
        assert_eq!(quote("it's"), r"'it'\''s'");
        let named = |names: &[&str]| -> Vec<Job> {
            names
                .iter()
                .map(|n| Job {
                    name: n.to_string(),
                    parents: vec![],
                })
                .collect()
        };
        let gh = ids(&named(&["a.b", "a_b", "strata-publish"]), System::Github);
        assert_eq!(
            (gh["a.b"].as_str(), gh["a_b"].as_str(), gh[""].as_str()),
            ("a_b", "a_b_2", "strata-publish_2")
        );
        let gl = ids(&named(&["build-image", "image"]), System::Gitlab);
        assert_eq!(
            (gl["build-image"].as_str(), gl["image"].as_str()),
            ("build-image", "build-image-2")
        );
    }
}
