//! Jenkins: a Job Builder pipeline job whose declarative script runs
//! each level's images in `parallel`, then the publish stage.

use super::{levels, Invocation, Job, HEADER};
use std::fmt::Write as _;

/// Groovy single-quoted string.
fn groovy(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub fn jenkins(jobs: &[Job], inv: &Invocation) -> String {
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
