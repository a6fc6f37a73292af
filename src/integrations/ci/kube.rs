//! The set as a Kubernetes workload: a Tekton `Pipeline` and `PipelineRun`
//! (tekton.dev/v1), or an Argo `Workflow` with a DAG template. One task
//! per image (per record on a multi-platform set) after exactly its
//! parents' tasks, then the publish task after all of them; a failed task
//! skips what comes after it (both systems' own rule). Each task clones
//! the tree at the run's revision, then runs strata in the image given
//! (`--image`), against a Docker-in-Docker sidecar (as Tekton's own
//! docker-build task does) or the engine `--engine` names, with the
//! registry's Docker config from a Kubernetes Secret (`--login-credentials`).
//! Records of another architecture get a `kubernetes.io/arch` node selector.

use super::worker::Worker;
use super::{ids, Invocation, Job, System, HEADER};
use serde_json::{json, Value};

/// Where the tree is cloned, and where the Docker config is mounted.
const SRC: &str = "/workspace/src";
const DOCKER_CONFIG: &str = "/strata/docker";
const DIND: &str = "docker:dind";

/// The architectures Kubernetes labels Linux nodes with.
const ARCHES: [&str; 8] = [
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le",
];

/// The node architecture of a record (`base@arm64` → `arm64`, `base@arm-v7`
/// → `arm`); None for an image of one platform, or a record whose
/// platform no `kubernetes.io/arch` names (`unplaced`).
fn arch(name: &str) -> Option<&str> {
    let (_, suffix) = name.rsplit_once('@')?;
    let first = suffix.split('-').next()?;
    ARCHES.contains(&first).then_some(first)
}

/// The records that get no node selector: their platform is not a Linux
/// architecture Kubernetes labels nodes with (`windows-amd64`). Their
/// pods may land on a node of any architecture.
pub fn unplaced(jobs: &[Job]) -> Vec<&str> {
    (jobs.iter())
        .filter(|j| j.name.contains('@') && arch(&j.name).is_none())
        .map(|j| j.name.as_str())
        .collect()
}

/// The task's container environment: the engine and the Docker config.
fn env(w: &Worker) -> Value {
    let host = w
        .engine
        .clone()
        .unwrap_or_else(|| "tcp://localhost:2375".into());
    let mut env = vec![json!({"name": "DOCKER_HOST", "value": host})];
    if w.login_credentials.is_some() {
        env.push(json!({"name": "DOCKER_CONFIG", "value": DOCKER_CONFIG}));
    }
    Value::Array(env)
}

/// The Docker-in-Docker sidecar, unless an engine was named.
fn sidecars(w: &Worker) -> Value {
    match &w.engine {
        Some(_) => json!([]),
        None => json!([{
            "name": "dind",
            "image": DIND,
            "securityContext": {"privileged": true},
            "env": [{"name": "DOCKER_TLS_CERTDIR", "value": ""}],
            "args": ["--host=tcp://0.0.0.0:2375"],
        }]),
    }
}

/// `--requests cpu=2,memory=4Gi` as a resources block.
fn resources(w: &Worker) -> Option<Value> {
    let requests = w.requests.as_ref()?;
    let map: serde_json::Map<String, Value> = (requests.split(','))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), json!(v.trim())))
        .collect();
    Some(json!({ "requests": map }))
}

/// The volume of the Docker config Secret, when there is one.
fn secret_volume(w: &Worker) -> Option<Value> {
    let name = w.login_credentials.as_ref()?;
    Some(json!({
        "name": "docker-config",
        "secret": {"secretName": name, "items": [{"key": ".dockerconfigjson", "path": "config.json"}]},
    }))
}

/// The shell script of a task: clone the tree at the revision, run `command`.
fn script(command: &str) -> String {
    format!(
        "set -eu\ngit clone --quiet \"$GIT_URL\" {SRC}\ncd {SRC}\ngit checkout --quiet \"$GIT_REVISION\"\n{command}\n"
    )
}

fn yaml(docs: &[Value]) -> String {
    let mut out = String::from(HEADER);
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(d).unwrap_or_default());
    }
    out
}

pub fn tekton(jobs: &[Job], inv: &Invocation) -> String {
    let w = &inv.worker;
    let ids = ids(jobs, System::Tekton);
    let image = w.image.clone().unwrap_or_default();
    let task = |id: &str, command: String, after: Vec<&str>| {
        let mut step = json!({
            "name": "strata",
            "image": image,
            "env": [
                {"name": "GIT_URL", "value": "$(params.git-url)"},
                {"name": "GIT_REVISION", "value": "$(params.git-revision)"},
            ],
            "script": script(&command),
        });
        let extra = env(w);
        step["env"]
            .as_array_mut()
            .unwrap()
            .extend(extra.as_array().unwrap().iter().cloned());
        if let Some(r) = resources(w) {
            step["computeResources"] = r;
        }
        if w.login_credentials.is_some() {
            step["volumeMounts"] = json!([{"name": "docker-config", "mountPath": DOCKER_CONFIG}]);
        }
        let mut spec = json!({
            "params": [{"name": "git-url", "type": "string"}, {"name": "git-revision", "type": "string"}],
            "steps": [step],
            "sidecars": sidecars(w),
        });
        if let Some(v) = secret_volume(w) {
            spec["volumes"] = json!([v]);
        }
        let mut t = json!({
            "name": id,
            "params": [
                {"name": "git-url", "value": "$(params.git-url)"},
                {"name": "git-revision", "value": "$(params.git-revision)"},
            ],
            "taskSpec": spec,
        });
        if !after.is_empty() {
            t["runAfter"] = json!(after);
        }
        t
    };
    let mut tasks: Vec<Value> = (jobs.iter())
        .map(|j| {
            let after = j.parents.iter().map(|p| ids[p].as_str()).collect();
            task(&ids[&j.name], inv.build(j), after)
        })
        .collect();
    let all = jobs.iter().map(|j| ids[&j.name].as_str()).collect();
    tasks.push(task(&ids[""], inv.publish(), all));
    let pipeline = json!({
        "apiVersion": "tekton.dev/v1",
        "kind": "Pipeline",
        "metadata": {"name": "strata"},
        "spec": {
            "params": [
                {"name": "git-url", "type": "string", "default": w.git_url},
                {"name": "git-revision", "type": "string", "default": w.git_revision},
            ],
            "tasks": tasks,
        },
    });
    let mut template = json!({});
    if let Some(sa) = &w.service_account {
        template["serviceAccountName"] = json!(sa);
    }
    let specs: Vec<Value> = (jobs.iter())
        .filter_map(|j| {
            let a = arch(&j.name)?;
            Some(json!({"pipelineTaskName": ids[&j.name], "podTemplate": {"nodeSelector": {"kubernetes.io/arch": a}}}))
        })
        .collect();
    let mut run_spec = json!({"pipelineRef": {"name": "strata"}, "taskRunTemplate": template});
    if !specs.is_empty() {
        run_spec["taskRunSpecs"] = json!(specs);
    }
    let run = json!({
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"generateName": "strata-"},
        "spec": run_spec,
    });
    yaml(&[pipeline, run])
}

pub fn argo(jobs: &[Job], inv: &Invocation) -> String {
    let w = &inv.worker;
    let ids = ids(jobs, System::Argo);
    let mut container = json!({
        "image": w.image.clone().unwrap_or_default(),
        "command": ["sh", "-c"],
        "args": [script("{{inputs.parameters.command}}")],
        "env": env(w),
    });
    container["env"].as_array_mut().unwrap().extend([
        json!({"name": "GIT_URL", "value": "{{workflow.parameters.git-url}}"}),
        json!({"name": "GIT_REVISION", "value": "{{workflow.parameters.git-revision}}"}),
    ]);
    if let Some(r) = resources(w) {
        container["resources"] = r;
    }
    if w.login_credentials.is_some() {
        container["volumeMounts"] = json!([{"name": "docker-config", "mountPath": DOCKER_CONFIG}]);
    }
    // One template per architecture: the node selector is a template's.
    let mut arches: Vec<Option<&str>> = jobs.iter().map(|j| arch(&j.name)).collect();
    arches.push(None);
    arches.sort();
    arches.dedup();
    let template_of = |a: Option<&str>| a.map_or("strata".to_string(), |a| format!("strata-{a}"));
    let mut templates: Vec<Value> = Vec::new();
    let mut dag: Vec<Value> = (jobs.iter())
        .map(|j| {
            let mut t = json!({
                "name": ids[&j.name],
                "template": template_of(arch(&j.name)),
                "arguments": {"parameters": [{"name": "command", "value": inv.build(j)}]},
            });
            if !j.parents.is_empty() {
                t["dependencies"] = json!(j.parents.iter().map(|p| &ids[p]).collect::<Vec<_>>());
            }
            t
        })
        .collect();
    let mut publish = json!({
        "name": ids[""],
        "template": "strata",
        "arguments": {"parameters": [{"name": "command", "value": inv.publish()}]},
    });
    if !jobs.is_empty() {
        publish["dependencies"] = json!(jobs.iter().map(|j| &ids[&j.name]).collect::<Vec<_>>());
    }
    dag.push(publish);
    templates.push(json!({"name": "set", "dag": {"tasks": dag}}));
    for a in arches {
        let mut t = json!({
            "name": template_of(a),
            "inputs": {"parameters": [{"name": "command"}]},
            "container": container,
            "sidecars": sidecars(w),
        });
        if let Some(a) = a {
            t["nodeSelector"] = json!({"kubernetes.io/arch": a});
        }
        templates.push(t);
    }
    let mut spec = json!({
        "entrypoint": "set",
        "arguments": {"parameters": [
            {"name": "git-url", "value": w.git_url},
            {"name": "git-revision", "value": w.git_revision},
        ]},
        "templates": templates,
    });
    if let Some(sa) = &w.service_account {
        spec["serviceAccountName"] = json!(sa);
    }
    if let Some(v) = secret_volume(w) {
        spec["volumes"] = json!([v]);
    }
    let workflow = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "strata-"},
        "spec": spec,
    });
    yaml(&[workflow])
}
