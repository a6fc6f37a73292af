//! A stand-in for a cluster, labelled so: it tests our documents'
//! commands, not Kubernetes. It runs the tasks of an emitted Argo Workflow
//! or Tekton Pipeline reading only the document (each task's dependencies,
//! image, script and environment, parameters substituted as the controller
//! would): each task's step is a container of the emitted image on the
//! machine's engine, with the Docker config "Secret" mounted where the
//! document mounts it. The Docker-in-Docker sidecar is stood in for by the
//! second engine of ci/setup.sh, emptied of every image but the base before
//! each task (a fresh sidecar is empty too). A task runs when everything
//! it depends on succeeded, as both controllers do; one at a time. Shared
//! by tests/ci_kube_run.rs and benches/farm.rs.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The base image every engine of the test machine holds.
const BASE_IMAGE: &str = "strata-ci/busybox:latest";

/// One task of the workload as the document gives it.
pub struct Task {
    pub name: String,
    pub after: Vec<String>,
    /// The step's container image, its shell script and environment.
    image: String,
    script: String,
    env: Vec<(String, String)>,
    /// Where the document mounts the Docker config Secret.
    secret_at: Option<String>,
}

/// Argo: the DAG's tasks, each template's container script with the
/// task's `{{inputs.parameters.command}}` and `{{workflow.parameters.*}}`.
pub fn argo_tasks(doc: &Value) -> Vec<Task> {
    let spec = &doc["spec"];
    let wf: BTreeMap<String, String> = (spec["arguments"]["parameters"].as_array().unwrap().iter())
        .map(|p| {
            (
                format!(
                    "{{{{workflow.parameters.{}}}}}",
                    p["name"].as_str().unwrap()
                ),
                p["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let templates = spec["templates"].as_array().unwrap();
    let dag = templates
        .iter()
        .find(|t| t["name"] == spec["entrypoint"])
        .unwrap();
    (dag["dag"]["tasks"].as_array().unwrap().iter())
        .map(|t| {
            let template = templates
                .iter()
                .find(|x| x["name"] == t["template"])
                .unwrap();
            let c = &template["container"];
            let command = t["arguments"]["parameters"][0]["value"].as_str().unwrap();
            let script = c["args"][0]
                .as_str()
                .unwrap()
                .replace("{{inputs.parameters.command}}", command);
            let env = (c["env"].as_array().unwrap().iter())
                .map(|e| {
                    let mut v = e["value"].as_str().unwrap().to_string();
                    for (k, val) in &wf {
                        v = v.replace(k, val);
                    }
                    (e["name"].as_str().unwrap().to_string(), v)
                })
                .collect();
            Task {
                name: t["name"].as_str().unwrap().into(),
                after: names(&t["dependencies"]),
                image: c["image"].as_str().unwrap().into(),
                script,
                env,
                secret_at: c["volumeMounts"][0]["mountPath"].as_str().map(String::from),
            }
        })
        .collect()
}

/// Tekton: the Pipeline's tasks, each step's script and env with
/// `$(params.*)` from the Pipeline's defaults.
pub fn tekton_tasks(pipeline: &Value) -> Vec<Task> {
    let defaults: BTreeMap<String, String> =
        (pipeline["spec"]["params"].as_array().unwrap().iter())
            .map(|p| {
                (
                    format!("$(params.{})", p["name"].as_str().unwrap()),
                    p["default"].as_str().unwrap().to_string(),
                )
            })
            .collect();
    (pipeline["spec"]["tasks"].as_array().unwrap().iter())
        .map(|t| {
            let step = &t["taskSpec"]["steps"][0];
            let env = (step["env"].as_array().unwrap().iter())
                .map(|e| {
                    let v = e["value"].as_str().unwrap();
                    (
                        e["name"].as_str().unwrap().to_string(),
                        defaults.get(v).cloned().unwrap_or(v.to_string()),
                    )
                })
                .collect();
            Task {
                name: t["name"].as_str().unwrap().into(),
                after: names(&t["runAfter"]),
                image: step["image"].as_str().unwrap().into(),
                script: step["script"].as_str().unwrap().to_string(),
                env,
                secret_at: step["volumeMounts"][0]["mountPath"]
                    .as_str()
                    .map(String::from),
            }
        })
        .collect()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array().map_or(Vec::new(), |a| {
        a.iter().map(|x| x.as_str().unwrap().to_string()).collect()
    })
}

/// What became of each task, and how long each that ran took.
pub struct Ran {
    pub succeeded: BTreeSet<String>,
    pub failed: BTreeSet<String>,
    pub took: BTreeMap<String, Duration>,
}

/// The pod's world: the stand-in engine, the Secret's contents, the tree.
pub struct Pod<'a> {
    pub host: &'a str,
    pub certs: &'a str,
    pub config: &'a Path,
    /// The tree's git repository, which the tasks clone.
    pub tree: &'a Path,
}

pub fn run(tasks: &[Task], pod: &Pod) -> Ran {
    let mut ran = Ran {
        succeeded: BTreeSet::new(),
        failed: BTreeSet::new(),
        took: BTreeMap::new(),
    };
    let mut decided: BTreeSet<String> = BTreeSet::new();
    while decided.len() < tasks.len() {
        let next = tasks
            .iter()
            .find(|t| !decided.contains(&t.name) && t.after.iter().all(|a| decided.contains(a)))
            .expect("the DAG has no cycle");
        decided.insert(next.name.clone());
        if !next.after.iter().all(|a| ran.succeeded.contains(a)) {
            continue; // skipped: something it depends on did not succeed
        }
        fresh_engine(pod);
        let start = Instant::now();
        let out = pod_run(next, pod);
        ran.took.insert(next.name.clone(), start.elapsed());
        match out.status.success() {
            true => ran.succeeded.insert(next.name.clone()),
            false => ran.failed.insert(next.name.clone()),
        };
    }
    ran
}

/// The task's step as a container of its image, on the machine's engine:
/// its script, its environment, the Secret's mount; the DinD sidecar's
/// address replaced by the stand-in engine (with its TLS material); the
/// tree's repository mounted where the clone URL names it.
fn pod_run(task: &Task, pod: &Pod) -> std::process::Output {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", "host"]);
    for (k, v) in &task.env {
        let v = match k.as_str() {
            "DOCKER_HOST" => pod.host,
            _ => v,
        };
        cmd.args(["-e", &format!("{k}={v}")]);
    }
    cmd.args([
        "-e",
        "DOCKER_TLS_VERIFY=1",
        "-e",
        "DOCKER_CERT_PATH=/stand-in/certs",
        "-e",
        "NO_COLOR=1",
    ]);
    cmd.args(["-v", &format!("{}:/stand-in/certs:ro", pod.certs)]);
    cmd.args([
        "-v",
        &format!("{}:{}:ro", pod.tree.display(), pod.tree.display()),
    ]);
    if let Some(at) = &task.secret_at {
        cmd.args(["-v", &format!("{}:{at}:ro", pod.config.display())]);
    }
    cmd.arg(&task.image).args(["sh", "-c", &task.script]);
    cmd.output().unwrap()
}

/// The image the tasks run in, as `--image` names it: the debootstrapped
/// Debian base with git, and this strata binary.
pub const TASK_IMAGE: &str = "strata-ci/strata-task:latest";

/// Build `TASK_IMAGE` on the machine's engine (the apt layer is cached).
pub fn build_task_image(strata: &Path) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(strata, dir.path().join("strata")).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM strata-ci/debian:bookworm\n\
         RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends git ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*\n\
         COPY strata /usr/local/bin/strata\n",
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", TASK_IMAGE])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the task image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The second engine, emptied of every image but the base.
pub fn fresh_engine(pod: &Pod) {
    let docker = |args: &[&str]| {
        Command::new("docker")
            .args([
                "--tlsverify",
                "--tlscacert",
                &format!("{}/ca.pem", pod.certs),
            ])
            .args([
                "--tlscert",
                &format!("{}/cert.pem", pod.certs),
                "--tlskey",
                &format!("{}/key.pem", pod.certs),
                "-H",
                pod.host,
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let base =
        String::from_utf8_lossy(&docker(&["image", "inspect", "-f", "{{.Id}}", BASE_IMAGE]).stdout)
            .trim()
            .to_string();
    let all = docker(&["images", "-q", "--no-trunc"]);
    for id in String::from_utf8_lossy(&all.stdout)
        .lines()
        .filter(|id| *id != base)
    {
        docker(&["rmi", "-f", id]);
    }
}

/// The longest chain of dependencies by the task times measured.
pub fn critical_path(tasks: &[Task], took: &BTreeMap<String, Duration>) -> Duration {
    let mut best: BTreeMap<&str, Duration> = BTreeMap::new();
    for t in tasks {
        let before = t
            .after
            .iter()
            .filter_map(|a| best.get(a.as_str()))
            .max()
            .copied()
            .unwrap_or_default();
        best.insert(
            &t.name,
            before + took.get(&t.name).copied().unwrap_or_default(),
        );
    }
    best.values().max().copied().unwrap_or_default()
}
