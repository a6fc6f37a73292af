//! `strata ci tekton` and `strata ci argo`: the set as a Kubernetes
//! workload, checked by outside tools, not by our own reading. Each
//! document is validated against the upstream schemas kept in
//! tests/schemas (with their source and version), made to refuse unknown
//! fields as `kubectl apply --validate=strict` does; the Argo Workflow is
//! also loaded through the Argo Workflows Python SDK's own models (PyPI
//! `argo-workflows`), every field one the models know. Then the task graph
//! is compared with `strata graph`: each image's task after exactly its
//! parents', the publish task after all; arm64 records on arm64 nodes.
//! No Kubernetes apiserver can run here: these are the checks a cluster's
//! admission would make first, not a run on one.

use crate::ci::{ci_venv, parents_of, yaml};
use crate::common::TestTree;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas")
}

fn argo_venv() -> Option<PathBuf> {
    let v = crate::common::settings(&["STRATA_TEST_ARGO_VENV"], "the Argo SDK check")?;
    Some(PathBuf::from(&v[0]))
}

/// Every object schema that lists its properties refuses other keys
/// (unless Kubernetes says it keeps unknown fields).
fn strict(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let keeps = m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            if m.contains_key("properties") && !keeps && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(strict);
        }
        Value::Array(a) => a.iter_mut().for_each(strict),
        _ => {}
    }
}

/// check-jsonschema accepts `doc` against the strict form of `schema`.
fn valid(venv: &Path, dir: &Path, schema: &str, doc: &Value, what: &str) {
    let (ok, said) = accepts(venv, dir, schema, doc, what);
    assert!(ok, "{what}: {said}");
}

/// Whether check-jsonschema accepts `doc`, and what it said.
fn accepts(venv: &Path, dir: &Path, schema: &str, doc: &Value, what: &str) -> (bool, String) {
    let mut s: Value =
        serde_json::from_str(&std::fs::read_to_string(schemas().join(schema)).unwrap()).unwrap();
    strict(&mut s);
    let (schema_file, doc_file) = (
        dir.join(format!("{what}.schema.json")),
        dir.join(format!("{what}.json")),
    );
    std::fs::write(&schema_file, s.to_string()).unwrap();
    std::fs::write(&doc_file, doc.to_string()).unwrap();
    let out = Command::new(venv.join("bin/check-jsonschema"))
        .arg("--schemafile")
        .arg(&schema_file)
        .arg(&doc_file)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

fn documents(text: &str) -> Vec<Value> {
    text.split("\n---\n").skip(1).map(yaml).collect()
}

fn emit(t: &TestTree, system: &str) -> String {
    let run = t.run(&[
        "ci",
        system,
        "--all",
        "--image",
        "registry.example:5000/tools/strata:1",
        "--git-url",
        "https://git.example/set.git",
        "--login-credentials",
        "registry-config",
        "--requests",
        "cpu=1,memory=2Gi",
        "--service-account",
        "strata-builder",
    ]);
    run.expect(0).stdout
}

/// task → what it waits for, and the record names each task stands for.
fn check_graph(
    parents: &BTreeMap<String, BTreeSet<String>>,
    graph: &BTreeMap<String, BTreeSet<String>>,
) {
    let task = |record: &str| record.replace('@', "-");
    for (record, ps) in parents {
        let want: BTreeSet<String> = ps.iter().map(|p| task(p)).collect();
        assert_eq!(graph.get(&task(record)), Some(&want), "{record}");
    }
    let all: BTreeSet<String> = parents.keys().map(|r| task(r)).collect();
    assert_eq!(graph["strata-publish"], all, "publish after every image");
    assert_eq!(
        graph.len(),
        parents.len() + 1,
        "no task missing, none extra"
    );
}

fn tekton_graph(pipeline: &Value) -> BTreeMap<String, BTreeSet<String>> {
    (pipeline["spec"]["tasks"].as_array().unwrap().iter())
        .map(|t| {
            let after = t["runAfter"].as_array().map_or(BTreeSet::new(), |a| {
                a.iter().map(|x| x.as_str().unwrap().to_string()).collect()
            });
            (t["name"].as_str().unwrap().to_string(), after)
        })
        .collect()
}

fn trees() -> Vec<TestTree> {
    let multi = TestTree::new();
    multi.write(
        "strata.yaml",
        "registry: 'registry.example:5000'\nnamespace: ci\nplatforms: [linux/amd64, linux/arm64]\n\
         vars: {base_image: 'debian:bookworm'}\n",
    );
    multi.write("images/base/Dockerfile.j2", "FROM {{ base_image }}\n");
    multi.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo {{ arch }}\n",
    );
    let sample = TestTree::sample();
    let config = sample
        .read("strata.yaml")
        .replace("registry: \"\"", "registry: \"registry.example:5000\"");
    sample.write("strata.yaml", &config);
    vec![sample, multi]
}

#[test]
fn tekton_documents_pass_the_upstream_schemas_and_keep_the_graph() {
    let Some(venv) = ci_venv() else { return };
    for t in trees() {
        let parents = parents_of(&t);
        let docs = documents(&emit(&t, "tekton"));
        assert_eq!(docs.len(), 2);
        let (pipeline, run) = (&docs[0], &docs[1]);
        assert_eq!(
            (pipeline["kind"].as_str(), run["kind"].as_str()),
            (Some("Pipeline"), Some("PipelineRun"))
        );
        valid(
            &venv,
            t.path(),
            "tekton-v1.15.0-pipeline-v1.schema.json",
            pipeline,
            "pipeline",
        );
        valid(
            &venv,
            t.path(),
            "tekton-v1.15.0-pipelinerun-v1.schema.json",
            run,
            "pipelinerun",
        );
        check_graph(&parents, &tekton_graph(pipeline));
        // The check can fail: a misspelt field is refused.
        let mut typo = pipeline.clone();
        typo["spec"]["tasks"][1]["runAftr"] = typo["spec"]["tasks"][1]["runAfter"].take();
        let schema = "tekton-v1.15.0-pipeline-v1.schema.json";
        assert!(
            !accepts(&venv, t.path(), schema, &typo, "typo").0,
            "a misspelt field passed"
        );
        let task = &pipeline["spec"]["tasks"][0]["taskSpec"];
        assert_eq!(
            task["sidecars"][0]["securityContext"]["privileged"], true,
            "a DinD sidecar"
        );
        assert_eq!(
            task["volumes"][0]["secret"]["secretName"],
            "registry-config"
        );
        assert_eq!(
            task["steps"][0]["computeResources"]["requests"]["memory"],
            "2Gi"
        );
        assert_eq!(
            run["spec"]["taskRunTemplate"]["serviceAccountName"],
            "strata-builder"
        );
        for spec in run["spec"]["taskRunSpecs"].as_array().into_iter().flatten() {
            let name = spec["pipelineTaskName"].as_str().unwrap();
            let arch = spec["podTemplate"]["nodeSelector"]["kubernetes.io/arch"]
                .as_str()
                .unwrap();
            assert!(name.ends_with(&format!("-{arch}")), "{name} on {arch}");
        }
        let multi = parents.keys().any(|r| r.contains('@'));
        assert_eq!(run["spec"]["taskRunSpecs"].is_array(), multi);
    }
}

#[test]
fn the_argo_workflow_passes_the_upstream_schema_and_the_sdk_models() {
    let (Some(venv), Some(argo)) = (ci_venv(), argo_venv()) else {
        return;
    };
    for t in trees() {
        let parents = parents_of(&t);
        let docs = documents(&emit(&t, "argo"));
        assert_eq!(docs.len(), 1);
        let workflow = &docs[0];
        valid(
            &venv,
            t.path(),
            "argo-workflows-v4.1.2-workflow-v1alpha1.schema.json",
            workflow,
            "workflow",
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/argo_strict.py");
        let mut child = Command::new(argo.join("bin/python"))
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(workflow.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the SDK refuses it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let graph: BTreeMap<String, BTreeSet<String>> =
            serde_json::from_slice(&out.stdout).unwrap();
        check_graph(&parents, &graph);
        let templates = workflow["spec"]["templates"].as_array().unwrap();
        if parents.keys().any(|r| r.contains('@')) {
            let arm = templates
                .iter()
                .find(|t| t["name"] == "strata-arm64")
                .expect("an arm64 template");
            assert_eq!(arm["nodeSelector"]["kubernetes.io/arch"], "arm64");
        }
        assert_eq!(workflow["spec"]["serviceAccountName"], "strata-builder");
    }
}

#[test]
fn a_kubernetes_workload_refuses_what_it_cannot_carry() {
    let t = TestTree::sample();
    for bad in [
        vec!["ci", "tekton", "--all", "--git-url", "https://g/x.git"],
        vec!["ci", "argo", "--all", "--image", "s:1"],
        vec![
            "ci",
            "argo",
            "--all",
            "--image",
            "s:1",
            "--git-url",
            "https://g/{{x}}.git",
        ],
        vec![
            "ci",
            "tekton",
            "--all",
            "--image",
            "s:$(params.x)",
            "--git-url",
            "https://g/x.git",
        ],
        vec![
            "ci",
            "tekton",
            "--all",
            "--image",
            "s:1",
            "--git-url",
            "https://g/x.git",
            "--requests",
            "cpu",
        ],
        vec!["ci", "github", "--all", "--engine", "tcp://b:2376"],
    ] {
        t.run(&bad).expect(2);
    }
}

/// A record whose platform no `kubernetes.io/arch` names gets no node
/// selector, and the run says so, naming it; `arm/v7` goes to `arm` nodes.
#[test]
fn a_platform_without_a_node_selector_is_a_warning_naming_it() {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        "registry: 'registry.example:5000'\nplatforms: [linux/arm/v7, windows/amd64]\nvars: {base_image: 'debian:bookworm'}\n",
    );
    t.write("images/base/Dockerfile.j2", "FROM {{ base_image }}\n");
    let run = t
        .run(&[
            "ci",
            "argo",
            "--all",
            "--image",
            "s:1",
            "--git-url",
            "https://g/x.git",
        ])
        .expect(0);
    assert!(
        run.stderr.contains("warning: base@windows-amd64"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("base@arm-v7"), "{}", run.stderr);
    let doc = &documents(&run.stdout)[0];
    let arm = (doc["spec"]["templates"].as_array().unwrap().iter())
        .find(|t| t["nodeSelector"]["kubernetes.io/arch"] == "arm");
    assert!(arm.is_some(), "{doc}");
}
