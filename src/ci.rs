//! `strata ci`: the set as jobs of an existing CI system. One job per image
//! to build (every selected image with `--all`), each waiting only for its
//! parents' jobs and running `strata build NAME --no-deps --push
//! --no-publish` (content tags only, so any worker can build the children),
//! then one job running `strata publish`, which moves every release tag
//! once every image job succeeded. The registry is the only thing jobs share.
//! GitLab: a child pipeline with `needs:`; GitHub Actions: a workflow with
//! `needs:`; Jenkins: a Jenkins Job Builder pipeline job whose declarative
//! script runs each level's images in `parallel`; Zuul: jobs with
//! `dependencies:` in a project pipeline.

use clap::ValueEnum;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Gitlab,
    Github,
    Jenkins,
    Zuul,
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
/// the options `strata ci` was given (so jobs see the same tree).
pub struct Invocation {
    pub prefix: String,
    pub selectors: Vec<String>,
}

impl Invocation {
    pub fn new(
        dir: &std::path::Path,
        config: Option<&std::path::Path>,
        sets: &[String],
        excludes: &[String],
        selectors: &[String],
    ) -> Invocation {
        let mut prefix = String::from("strata");
        if dir != std::path::Path::new(".") && !dir.as_os_str().is_empty() {
            let _ = write!(prefix, " -C {}", quote(&dir.display().to_string()));
        }
        if let Some(c) = config {
            let _ = write!(prefix, " --config {}", quote(&c.display().to_string()));
        }
        for s in sets {
            let _ = write!(prefix, " --set {}", quote(s));
        }
        for e in excludes {
            let _ = write!(prefix, " --exclude {}", quote(e));
        }
        Invocation {
            prefix,
            selectors: selectors.to_vec(),
        }
    }

    fn build(&self, job: &Job) -> String {
        format!(
            "{} build {} --no-deps --push --no-publish --progress plain --summary summary-{}.json --junit junit-{}.xml",
            self.prefix,
            quote(&job.name),
            job.name,
            job.name
        )
    }

    fn publish(&self) -> String {
        let sel: Vec<String> = self.selectors.iter().map(|s| quote(s)).collect();
        let sel = if sel.is_empty() {
            String::new()
        } else {
            format!(" {}", sel.join(" "))
        };
        format!("{} publish{sel}", self.prefix)
    }
}

/// A word for a shell: quoted when it holds anything but safe characters.
fn quote(s: &str) -> String {
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
fn y(s: &str) -> String {
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
        _ => name.to_string(),
    }
}

/// The publish job's name, which no image job takes.
fn publish_name(jobs: &[Job]) -> String {
    let mut name = "strata-publish".to_string();
    while jobs.iter().any(|j| j.name == name) {
        name.insert(0, '_');
    }
    name
}

/// The pipeline for `system`.
pub fn emit(system: System, jobs: &[Job], inv: &Invocation) -> String {
    match system {
        System::Gitlab => gitlab(jobs, inv),
        System::Github => github(jobs, inv),
        System::Jenkins => jenkins(jobs, inv),
        System::Zuul => zuul(jobs, inv),
    }
}

const HEADER: &str = "# Generated by `strata ci`: one job per image, each waiting for its parents' jobs,\n# building with `--push --no-publish` (content tags only); the last job moves the\n# release tags. Jobs share only the registry; each needs an engine, `strata`, and\n# registry credentials in its Docker config.\n";

fn gitlab(jobs: &[Job], inv: &Invocation) -> String {
    let mut x = String::from(HEADER);
    x.push_str("# Run it as a child pipeline: `trigger: {include: [{artifact: strata-ci.yml, job: …}]}`.\nstages: [build, publish]\n");
    for j in jobs {
        let _ = writeln!(x, "\n{}:", y(&ident(&j.name, System::Gitlab)));
        x.push_str("  stage: build\n");
        if !j.parents.is_empty() {
            let needs: Vec<String> = j
                .parents
                .iter()
                .map(|p| y(&ident(p, System::Gitlab)))
                .collect();
            let _ = writeln!(x, "  needs: [{}]", needs.join(", "));
        } else {
            x.push_str("  needs: []\n");
        }
        let _ = writeln!(x, "  script:\n    - {}", y(&inv.build(j)));
        let _ = writeln!(
            x,
            "  artifacts:\n    when: always\n    paths: [{}]\n    reports:\n      junit: {}",
            y(&format!("summary-{}.json", j.name)),
            y(&format!("junit-{}.xml", j.name))
        );
    }
    let needs: Vec<String> = jobs
        .iter()
        .map(|j| y(&ident(&j.name, System::Gitlab)))
        .collect();
    let _ = writeln!(x, "\n{}:", y(&publish_name(jobs)));
    x.push_str("  stage: publish\n");
    let _ = writeln!(x, "  needs: [{}]", needs.join(", "));
    let _ = writeln!(x, "  script:\n    - {}", y(&inv.publish()));
    x
}

fn github(jobs: &[Job], inv: &Invocation) -> String {
    let mut x = String::from(HEADER);
    x.push_str("name: strata\non:\n  workflow_dispatch: {}\njobs:\n");
    for j in jobs {
        let _ = writeln!(x, "  {}:", ident(&j.name, System::Github));
        let _ = writeln!(x, "    name: {}", y(&j.name));
        x.push_str("    runs-on: ubuntu-latest\n");
        if !j.parents.is_empty() {
            let needs: Vec<String> = j.parents.iter().map(|p| ident(p, System::Github)).collect();
            let _ = writeln!(x, "    needs: [{}]", needs.join(", "));
        }
        x.push_str("    steps:\n      - uses: actions/checkout@v4\n");
        let _ = writeln!(x, "      - run: {}", y(&inv.build(j)));
        let _ = writeln!(
            x,
            "      - uses: actions/upload-artifact@v4\n        if: always()\n        with:\n          name: {}\n          path: {}",
            y(&format!("strata-{}", j.name)),
            y(&format!("summary-{0}.json\njunit-{0}.xml", j.name))
        );
    }
    let needs: Vec<String> = jobs
        .iter()
        .map(|j| ident(&j.name, System::Github))
        .collect();
    let _ = writeln!(x, "  {}:", ident(&publish_name(jobs), System::Github));
    x.push_str("    runs-on: ubuntu-latest\n");
    if !needs.is_empty() {
        let _ = writeln!(x, "    needs: [{}]", needs.join(", "));
    }
    x.push_str("    steps:\n      - uses: actions/checkout@v4\n");
    let _ = writeln!(x, "      - run: {}", y(&inv.publish()));
    x
}

/// Levels: an image's level is one more than its deepest parent's.
fn levels(jobs: &[Job]) -> Vec<Vec<&Job>> {
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

/// Groovy single-quoted string.
fn groovy(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn jenkins(jobs: &[Job], inv: &Invocation) -> String {
    let mut dsl = String::from("pipeline {\n  agent any\n  stages {\n");
    for (n, level) in levels(jobs).iter().enumerate() {
        let _ = writeln!(
            dsl,
            "    stage({}) {{\n      parallel {{",
            groovy(&format!("level {}", n + 1))
        );
        for j in level {
            let _ = writeln!(
                dsl,
                "        stage({}) {{\n          steps {{ sh {} }}\n          post {{ always {{ junit allowEmptyResults: true, testResults: {}\n                          archiveArtifacts artifacts: {}, allowEmptyArchive: true }} }}\n        }}",
                groovy(&j.name),
                groovy(&inv.build(j)),
                groovy(&format!("junit-{}.xml", j.name)),
                groovy(&format!("summary-{}.json", j.name))
            );
        }
        dsl.push_str("      }\n    }\n");
    }
    let _ = writeln!(
        dsl,
        "    stage('publish') {{\n      steps {{ sh {} }}\n    }}",
        groovy(&inv.publish())
    );
    dsl.push_str("  }\n}\n");
    let mut x = String::from(HEADER);
    x.push_str("# Jenkins Job Builder: `jenkins-jobs update` this file. Declarative pipelines have no\n# job graph, so each level (images whose parents are all in earlier levels) runs in\n# `parallel`, and the next level starts when the whole level is done.\n");
    x.push_str("- job:\n    name: strata-images\n    project-type: pipeline\n    sandbox: true\n    dsl: |\n");
    // Job Builder formats `{name}` in strings: braces are doubled.
    for line in dsl.lines() {
        let _ = writeln!(x, "      {}", line.replace('{', "{{").replace('}', "}}"));
    }
    x
}

fn zuul(jobs: &[Job], inv: &Invocation) -> String {
    let mut x = String::from(HEADER);
    x.push_str(
        "# zuul.d/strata.yaml; playbooks/strata-build.yaml runs `strata_command` (docs/ci.md).\n",
    );
    x.push_str("- job:\n    name: strata-build\n    abstract: true\n    run: playbooks/strata-build.yaml\n");
    for j in jobs {
        let _ = writeln!(
            x,
            "\n- job:\n    name: {}\n    parent: strata-build\n    vars:\n      strata_command: {}",
            y(&format!("strata-build-{}", j.name)),
            y(&inv.build(j))
        );
    }
    let publish = publish_name(jobs);
    let _ = writeln!(
        x,
        "\n- job:\n    name: {}\n    parent: strata-build\n    vars:\n      strata_command: {}",
        y(&publish),
        y(&inv.publish())
    );
    x.push_str("\n- project:\n    check:\n      jobs:\n");
    for j in jobs {
        let name = y(&format!("strata-build-{}", j.name));
        if j.parents.is_empty() {
            let _ = writeln!(x, "        - {name}");
        } else {
            let deps: Vec<String> = j
                .parents
                .iter()
                .map(|p| y(&format!("strata-build-{p}")))
                .collect();
            let _ = writeln!(
                x,
                "        - {name}:\n            dependencies: [{}]",
                deps.join(", ")
            );
        }
    }
    let deps: Vec<String> = jobs
        .iter()
        .map(|j| y(&format!("strata-build-{}", j.name)))
        .collect();
    if deps.is_empty() {
        let _ = writeln!(x, "        - {}", y(&publish));
    } else {
        let _ = writeln!(
            x,
            "        - {}:\n            dependencies: [{}]",
            y(&publish),
            deps.join(", ")
        );
    }
    x
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
    }
}
