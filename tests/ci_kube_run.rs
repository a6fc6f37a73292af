//! The Argo Workflow and the Tekton Pipeline that `strata ci` writes, run
//! by a local harness standing in for a cluster (no apiserver can run
//! here). The harness reads only the emitted document: each task's
//! dependencies, its script and its environment, the parameters
//! substituted as the controller would. Each task's step runs as a
//! container of the emitted image (the Debian base with git and this
//! strata, built first), the Docker config "Secret" mounted where the
//! document mounts it, and a fresh engine (the second engine of
//! ci/setup.sh, emptied of everything but the base) standing in for the
//! DinD sidecar. A task runs when all it depends on succeeded, as both
//! controllers do, one at a time. Afterwards each release tag points at
//! the content tag `strata plan` computes; a broken RUN in a mid-tree
//! image fails its task, skips every task below it and publish, and moves
//! no release tag. The measured task times give the DAG's critical path:
//! what a cluster with enough nodes would take (docs/build-farm.md).

use crate::ci::yaml;
use crate::ci_act::{commit, release_tags, sample_in_git};
use crate::common::engine::{self, Namespace};
use crate::common::kube::{self, argo_tasks, critical_path, fresh_engine, run, tekton_tasks, Pod};
use crate::push::{docker_config, registry};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn the_emitted_workloads_run_on_a_local_stand_in_for_a_cluster() {
    let Some(r) = registry() else { return };
    if !engine::available("ci_kube_run") {
        return;
    }
    let Some((host, certs)) = crate::tls::tls_engine() else {
        return;
    };
    let certs = certs.display().to_string();
    let _engine = crate::common::second_engine();
    let config = docker_config(&r.host, &r.user, &r.password);
    kube::build_task_image(Path::new(env!("CARGO_BIN_EXE_strata")));

    for system in ["argo", "tekton"] {
        let ns = Namespace::new(&format!("kube-{system}"));
        let t = sample_in_git(&ns, &r);
        let url = t.path().display().to_string();
        let pod = Pod {
            host: &host,
            certs: &certs,
            config: config.path(),
            tree: t.path(),
        };
        let emit = || {
            let out = Command::new(env!("CARGO_BIN_EXE_strata"))
                .current_dir(t.path())
                .args([
                    "ci",
                    system,
                    "--all",
                    "--image",
                    kube::TASK_IMAGE,
                    "--git-url",
                    &url,
                    "--login-credentials",
                    "registry-config",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let docs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .split("\n---\n")
                .skip(1)
                .map(yaml)
                .collect();
            match system {
                "argo" => argo_tasks(&docs[0]),
                _ => tekton_tasks(&docs[0]),
            }
        };
        let tasks = emit();
        let ran = run(&tasks, &pod);
        assert!(ran.failed.is_empty(), "{system}: failed {:?}", ran.failed);
        assert_eq!(ran.succeeded.len(), tasks.len(), "{system}: every task ran");
        let published = release_tags(&t, &r, &ns);
        for (name, (release, content)) in &published {
            assert!(release.is_some(), "{system} {name}: a release tag");
            assert_eq!(
                release, content,
                "{system} {name}: the content tag plan computes"
            );
        }
        let sum: Duration = ran.took.values().sum();
        eprintln!(
            "{system}: {} tasks one at a time in {:.1} s; critical path {:.1} s",
            tasks.len(),
            sum.as_secs_f64(),
            critical_path(&tasks, &ran.took).as_secs_f64()
        );

        // A broken mid-tree image: its task fails, the tasks below it and
        // publish are skipped, no release tag moves.
        let nova = t.read("images/nova/nova-base/Dockerfile.j2");
        t.write(
            "images/nova/nova-base/Dockerfile.j2",
            &format!("{nova}\nRUN exit 3\n"),
        );
        commit(&t, "a broken nova-base");
        let tasks = emit();
        let ran = run(&tasks, &pod);
        assert_eq!(
            ran.failed,
            BTreeSet::from(["nova-base".to_string()]),
            "{system}"
        );
        for below in [
            "nova-api",
            "nova-compute",
            "nova-conductor",
            "strata-publish",
        ] {
            assert!(
                !ran.took.contains_key(below),
                "{system}: {below} was skipped"
            );
        }
        assert!(
            ran.succeeded.contains("keystone"),
            "{system}: the rest still built"
        );
        for (name, (release, _)) in release_tags(&t, &r, &ns) {
            assert_eq!(
                release, published[&name].0,
                "{system} {name}: its release tag did not move"
            );
        }
        fresh_engine(&pod);
    }
}
