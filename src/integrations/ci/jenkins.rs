//! Jenkins: a Job Builder pipeline job whose declarative script runs
//! each level's images in `parallel`, then the publish stage. The agent
//! is the runner's label (or a docker agent of the image, given the
//! engine's socket); each stage's steps are the setup, then, inside
//! `withCredentials` of the login's ID, the login and strata.

use super::worker::{PASSWORD_VAR, USER_VAR};
use super::{levels, Invocation, Job, HEADER};
use std::fmt::Write as _;

/// Groovy single-quoted string (no `$` interpolation: the shell expands).
fn groovy(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub fn jenkins(jobs: &[Job], inv: &Invocation) -> String {
    let mut dsl = format!("pipeline {{\n  agent {}\n  stages {{\n", agent(inv));
    for (n, level) in levels(jobs).iter().enumerate() {
        let _ = writeln!(
            dsl,
            "    stage({}) {{\n      parallel {{",
            groovy(&format!("level {}", n + 1))
        );
        for j in level {
            let archive = match inv.worker.artifacts {
                true => format!(
                    "\n                          archiveArtifacts artifacts: {}, allowEmptyArchive: true",
                    groovy(&format!("summary-{}.json", j.name))
                ),
                false => String::new(),
            };
            let _ = writeln!(
                dsl,
                "        stage({}) {{\n          steps {{ {} }}\n          post {{ always {{ junit allowEmptyResults: true, testResults: {}{archive} }} }}\n        }}",
                groovy(&j.name),
                steps(inv, &inv.build(j)),
                groovy(&format!("junit-{}.xml", j.name)),
            );
        }
        dsl.push_str("      }\n    }\n");
    }
    let _ = writeln!(
        dsl,
        "    stage('publish') {{\n      steps {{ {} }}\n    }}",
        steps(inv, &inv.publish())
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

/// `any`, `{ label '…' }`, or a docker agent of the image.
fn agent(inv: &Invocation) -> String {
    let w = &inv.worker;
    match (&w.image, &w.runner) {
        (Some(image), runner) => {
            let label = runner
                .as_ref()
                .map_or(String::new(), |r| format!("; label {}", groovy(r)));
            format!(
                "{{ docker {{ image {}; args '-v /var/run/docker.sock:/var/run/docker.sock'{label} }} }}",
                groovy(image)
            )
        }
        (None, Some(runner)) => format!("{{ label {} }}", groovy(runner)),
        (None, None) => "any".into(),
    }
}

/// A stage's steps: the setup, then `command`, logged in first when asked.
fn steps(inv: &Invocation, command: &str) -> String {
    let w = &inv.worker;
    let mut out = String::new();
    if let Some(setup) = &w.setup {
        let _ = write!(out, "sh {}; ", groovy(setup));
    }
    match &w.login_credentials {
        Some(id) => {
            let _ = write!(
                out,
                "withCredentials([usernamePassword(credentialsId: {}, usernameVariable: '{USER_VAR}', passwordVariable: '{PASSWORD_VAR}')]) {{ sh {}; sh {} }}",
                groovy(id),
                groovy(&w.login_command()),
                groovy(command)
            );
        }
        None => {
            let _ = write!(out, "sh {}", groovy(command));
        }
    }
    out
}
