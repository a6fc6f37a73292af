//! Zuul: jobs with `dependencies:` in a project pipeline, the publish
//! job depending on all of them. The abstract job carries the worker
//! options: the runner as its `nodeset`, the setup as `strata_setup`, the
//! login as the secret `strata_registry` (a Zuul secret with `username`
//! and `password`) and `strata_registry_host`; the playbook (docs/ci.md)
//! runs them before `strata_command`.

use super::{ids, y, Invocation, Job, System, HEADER};
use std::fmt::Write as _;

pub fn zuul(jobs: &[Job], inv: &Invocation) -> String {
    let mut x = String::from(HEADER);
    x.push_str(
        "# zuul.d/strata.yaml; playbooks/strata-build.yaml runs `strata_command` (docs/ci.md).\n",
    );
    x.push_str("- job:\n    name: strata-build\n    abstract: true\n    run: playbooks/strata-build.yaml\n");
    let w = &inv.worker;
    if let Some(runner) = &w.runner {
        let _ = writeln!(x, "    nodeset: {}", y(runner));
    }
    if let Some(id) = &w.login_credentials {
        let _ = writeln!(
            x,
            "    secrets:\n      - name: strata_registry\n        secret: {}",
            y(id)
        );
    }
    let mut vars = Vec::new();
    if let Some(setup) = &w.setup {
        vars.push(format!("      strata_setup: {}", y(setup)));
    }
    if w.logs_in() {
        vars.push(format!("      strata_registry_host: {}", y(&w.registry)));
    }
    if !vars.is_empty() {
        let _ = writeln!(x, "    vars:\n{}", vars.join("\n"));
    }
    for j in jobs {
        let _ = writeln!(
            x,
            "\n- job:\n    name: {}\n    parent: strata-build\n    vars:\n      strata_command: {}",
            y(&format!("strata-build-{}", j.name)),
            y(&inv.build(j))
        );
    }
    let publish = ids(jobs, System::Zuul)[""].clone();
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
