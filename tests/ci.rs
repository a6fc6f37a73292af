//! `strata ci`: the pipelines it emits pass the systems' own checkers
//! (check-jsonschema's vendored GitLab and GitHub schemas, Jenkins Job
//! Builder; Zuul's loader needs a Zuul deployment, so its output is checked
//! structurally), every job waits for exactly its parents' jobs, and the
//! GitLab pipeline, executed job by job on a fresh engine with only the
//! registry shared, leaves the registry as a one-machine `build --push`
//! does.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;
use crate::push::{docker_config, manifest_digest, registry};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn ci_venv() -> Option<PathBuf> {
    match std::env::var("STRATA_TEST_CI_VENV")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(v) => Some(v.into()),
        None => {
            let msg = "CI checker tests need STRATA_TEST_CI_VENV (run through ci/test.sh)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED {msg}");
            None
        }
    }
}

/// image → its parents, from `strata list --json`.
pub(crate) fn parents_of(t: &TestTree) -> BTreeMap<String, BTreeSet<String>> {
    let run = t.run(&["list", "--json"]).expect(0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    list.iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["parents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// check-jsonschema (the CI systems' vendored schemas) accepts `file`.
fn schema_accepts(venv: &Path, schema: &str, file: &Path) {
    let out = Command::new(venv.join("bin/check-jsonschema"))
        .args(["--builtin-schema", schema])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{schema}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn yaml(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn names(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn emitted_pipelines_pass_the_systems_own_checkers() {
    let Some(venv) = ci_venv() else { return };
    let t = TestTree::sample();
    let parents = parents_of(&t);
    let emit = |system: &str| {
        let run = t.run(&["ci", system, "--all"]).expect(0);
        let file = t.path().join(format!("{system}.yml"));
        std::fs::write(&file, &run.stdout).unwrap();
        (file, run.stdout)
    };
    let check = |schema: &str, file: &PathBuf| schema_accepts(&venv, schema, file);

    // GitLab: valid, each job needs exactly its parents, publish needs all.
    let (file, text) = emit("gitlab");
    check("vendor.gitlab-ci", &file);
    let doc = yaml(&text);
    for (image, ps) in &parents {
        assert_eq!(&names(&doc[image]["needs"]), ps, "{image}");
        assert!(doc[image]["script"][0]
            .as_str()
            .unwrap()
            .contains(&format!("build {image} --no-deps --push --no-publish")));
        assert_eq!(
            doc[image]["artifacts"]["reports"]["junit"],
            format!("junit-{image}.xml")
        );
    }
    assert_eq!(
        names(&doc["strata-publish"]["needs"]),
        parents.keys().cloned().collect()
    );
    let publish = doc["strata-publish"]["script"][0].as_str().unwrap();
    assert!(
        publish.starts_with("strata -C ") && publish.ends_with(" publish"),
        "{publish}"
    );

    // GitHub Actions: the same graph.
    let (file, text) = emit("github");
    check("vendor.github-workflows", &file);
    let doc = yaml(&text);
    for (image, ps) in &parents {
        let id = image.replace('.', "_");
        assert_eq!(&names(&doc["jobs"][&id]["needs"]), ps, "{image}");
    }
    assert_eq!(
        names(&doc["jobs"]["strata-publish"]["needs"]).len(),
        parents.len()
    );

    // Jenkins Job Builder turns it into a job; each image's stage comes in
    // a later level than its parents', publish last.
    let (file, _) = emit("jenkins");
    let out_dir = t.path().join("jjb");
    let out = Command::new(venv.join("bin/jenkins-jobs"))
        .args(["test", "-o"])
        .arg(&out_dir)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read_to_string(out_dir.join("strata-images")).unwrap();
    let pos = |stage: &str| {
        xml.find(&format!("stage('{stage}')"))
            .unwrap_or_else(|| panic!("{stage} in\n{xml}"))
    };
    let level_of = |image: &str| xml[..pos(image)].matches("stage('level ").count();
    for (image, ps) in &parents {
        for p in ps {
            assert!(level_of(p) < level_of(image), "{p} before {image}");
        }
    }
    assert!(pos("publish") > parents.keys().map(|i| pos(i)).max().unwrap());

    // Zuul: checked structurally (its loader needs a running deployment).
    let (_, text) = emit("zuul");
    let docs: Vec<serde_json::Value> = serde_json::from_value(yaml(&text)).unwrap();
    let project = docs.iter().find_map(|d| d.get("project")).unwrap();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for j in project["check"]["jobs"].as_array().unwrap() {
        match j {
            serde_json::Value::String(n) => {
                deps.insert(n.clone(), BTreeSet::new());
            }
            serde_json::Value::Object(o) => {
                let (n, v) = o.iter().next().unwrap();
                deps.insert(n.clone(), names(&v["dependencies"]));
            }
            _ => panic!("{j}"),
        }
    }
    for (image, ps) in &parents {
        let want: BTreeSet<String> = ps.iter().map(|p| format!("strata-build-{p}")).collect();
        assert_eq!(deps[&format!("strata-build-{image}")], want, "{image}");
        let job = docs
            .iter()
            .find(|d| d["job"]["name"] == format!("strata-build-{image}"))
            .unwrap();
        assert_eq!(job["job"]["parent"], "strata-build");
    }
    assert_eq!(deps["strata-publish"].len(), parents.len());
}

/// The jobs of a GitLab pipeline in an order that respects `needs`.
fn gitlab_order(doc: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    let jobs: BTreeMap<String, (BTreeSet<String>, Vec<String>)> = doc
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.get("script").is_some())
        .map(|(k, v)| {
            let script = v["script"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            (k.clone(), (names(&v["needs"]), script))
        })
        .collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    while done.len() < jobs.len() {
        let next = jobs
            .iter()
            .find(|(k, (needs, _))| !done.contains(*k) && needs.iter().all(|n| done.contains(n)))
            .map(|(k, (_, s))| (k.clone(), s.clone()))
            .expect("no cycle in needs");
        done.insert(next.0.clone());
        order.push(next);
    }
    order
}

#[test]
fn the_gitlab_pipeline_executed_on_fresh_engines_publishes_what_one_machine_does() {
    let Some(r) = registry() else { return };
    if !engine::available("ci_executed") {
        return;
    }
    let Some((host, certs)) = crate::tls::tls_engine() else {
        return;
    };
    let certs = certs.display().to_string();
    let _engine = crate::common::second_engine();
    let config = docker_config(&r.host, &r.user, &r.password);
    let fan = Namespace::new("ci-fan-out");
    let one = Namespace::new("ci-one-machine");
    let t = TestTree::sample();
    let sets = |ns: &Namespace| {
        vec![
            "--set".to_string(),
            ns.set(),
            "--set".to_string(),
            format!("registry={}", r.host),
        ]
    };

    // The worker: the second engine, emptied of everything but the base
    // before each job; strata on PATH; the registry's credentials.
    let docker2 = |args: &[&str]| {
        Command::new("docker")
            .args([
                "--tlsverify",
                "--tlscacert",
                &format!("{certs}/ca.pem"),
                "--tlscert",
                &format!("{certs}/cert.pem"),
                "--tlskey",
                &format!("{certs}/key.pem"),
                "-H",
                &host,
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let fresh_engine = || {
        let out = docker2(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
        let ids: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with(&format!("{BASE_IMAGE} ")))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect();
        let base = String::from_utf8_lossy(
            &docker2(&["image", "inspect", "-f", "{{.Id}}", BASE_IMAGE]).stdout,
        )
        .trim()
        .to_string();
        for id in ids.iter().filter(|id| !base.contains(id.as_str())) {
            docker2(&["rmi", "-f", id]);
        }
    };
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_strata"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut ci_args: Vec<String> = sets(&fan);
    ci_args.extend(["ci".to_string(), "gitlab".to_string()]);
    let ci_args: Vec<&str> = ci_args.iter().map(String::as_str).collect();
    let pipeline = t
        .command(&ci_args)
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    assert!(
        pipeline.status.success(),
        "{}",
        String::from_utf8_lossy(&pipeline.stderr)
    );
    let doc = yaml(&String::from_utf8_lossy(&pipeline.stdout));
    let order = gitlab_order(&doc);
    assert_eq!(order.len(), 14, "13 images and publish");
    assert_eq!(order.last().unwrap().0, "strata-publish");
    for (job, script) in &order {
        if job == "strata-publish" {
            // Nothing released before the last job.
            assert!(manifest_digest(&r, &format!("{}/base", fan.0), "latest").is_none());
        }
        fresh_engine();
        for line in script {
            let out = Command::new("sh")
                .args(["-c", line])
                .current_dir(t.path())
                .env("PATH", &path)
                .env("DOCKER_HOST", &host)
                .env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", &certs)
                .env("DOCKER_CONFIG", config.path())
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "job {job}: {line}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    fresh_engine();

    // The same tree built and pushed on one machine.
    let mut one_args: Vec<String> = sets(&one);
    one_args.extend(["build", "--push", "--summary", "one.json"].map(String::from));
    let one_args: Vec<&str> = one_args.iter().map(String::as_str).collect();
    let built = t
        .command(&one_args)
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(&t.read("one.json")).unwrap();
    for image in summary["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        let fp = image["fingerprint"].as_str().unwrap();
        let content = format!("fp-{}", &fp[..24]);
        // The same inputs: the fan-out pushed the same content tag …
        let fanned = manifest_digest(&r, &format!("{}/{name}", fan.0), &content)
            .unwrap_or_else(|| panic!("{name}: {content} pushed by its job"));
        // … and the release tag moved to it, once, at the end.
        assert_eq!(
            manifest_digest(&r, &format!("{}/{name}", fan.0), "latest").as_deref(),
            Some(fanned.as_str()),
            "{name}"
        );
        assert!(
            manifest_digest(&r, &format!("{}/{name}", one.0), &content).is_some(),
            "{name}"
        );
    }
}

/// A multi-platform set fans out one job per image and platform: each
/// record's job needs exactly its parents of the same platform, the
/// publish job (which writes the indexes) needs them all, and the
/// pipelines pass GitLab's and GitHub's own schemas.
#[test]
fn a_multi_platform_set_fans_out_one_job_per_record() {
    let Some(venv) = ci_venv() else { return };
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        "registry: 'registry.example:5000'\nnamespace: ci\nplatforms: [linux/amd64, linux/arm64]\n\
         vars: {base_image: 'debian:bookworm'}\n",
    );
    t.write("images/base/Dockerfile.j2", "FROM {{ base_image }}\n");
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo {{ arch }}\n",
    );
    let parents = parents_of(&t);
    assert_eq!(
        parents.keys().map(String::as_str).collect::<Vec<_>>(),
        ["app@amd64", "app@arm64", "base@amd64", "base@arm64"]
    );
    assert_eq!(
        parents["app@arm64"],
        BTreeSet::from(["base@arm64".to_string()])
    );
    for (system, schema) in [
        ("gitlab", "vendor.gitlab-ci"),
        ("github", "vendor.github-workflows"),
    ] {
        let run = t.run(&["ci", system, "--all"]).expect(0);
        let file = t.path().join(format!("{system}.yml"));
        std::fs::write(&file, &run.stdout).unwrap();
        schema_accepts(&venv, schema, &file);
        let doc = yaml(&run.stdout);
        let jobs = if system == "github" {
            &doc["jobs"]
        } else {
            &doc
        };
        for (record, ps) in &parents {
            let id = match system {
                "github" => record.replace('@', "_"),
                _ => record.clone(),
            };
            let want: BTreeSet<String> = ps
                .iter()
                .map(|p| match system {
                    "github" => p.replace('@', "_"),
                    _ => p.clone(),
                })
                .collect();
            assert_eq!(names(&jobs[&id]["needs"]), want, "{system} {record}");
        }
        assert_eq!(names(&jobs["strata-publish"]["needs"]).len(), 4, "{system}");
    }
    let gitlab = yaml(&t.run(&["ci", "gitlab", "--all"]).expect(0).stdout);
    let script = gitlab["app@arm64"]["script"][0].as_str().unwrap();
    assert!(
        script.contains("build app@arm64 --no-deps --push --no-publish"),
        "{script}"
    );
}

/// With the worker options, each file still passes its system's own
/// checker, carries them where the system reads them, and never puts a
/// secret's expression into a shell command; bad values are exit 2.
#[test]
fn the_worker_options_land_where_each_system_reads_them() {
    let Some(venv) = ci_venv() else { return };
    let t = TestTree::sample();
    let reg = "registry=127.0.0.1:5000";
    let emit = |system: &str, extra: &[&str]| {
        let mut args = vec![
            "--set",
            reg,
            "ci",
            system,
            "--all",
            "--setup",
            "cargo install --locked strata",
            "--runner",
            "builders",
        ];
        args.extend_from_slice(extra);
        let run = t.run(&args).expect(0);
        let file = t.path().join(format!("{system}-worker.yml"));
        std::fs::write(&file, &run.stdout).unwrap();
        (file, run.stdout)
    };
    let login = ["--login-user", "REG_USER", "--login-password", "REG_PASS"];

    let (file, text) = emit(
        "github",
        &[&login[..], &["--image", "ghcr.io/acme/strata:1"]].concat(),
    );
    schema_accepts(&venv, "vendor.github-workflows", &file);
    let doc = yaml(&text);
    let job = &doc["jobs"]["keystone"];
    assert_eq!(job["runs-on"], "builders");
    assert_eq!(job["container"]["image"], "ghcr.io/acme/strata:1");
    assert_eq!(
        job["env"]["STRATA_REGISTRY_PASSWORD"],
        "${{ secrets.REG_PASS }}"
    );
    let runs: Vec<&str> = (job["steps"].as_array().unwrap().iter())
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert_eq!(runs[0], "cargo install --locked strata");
    assert!(
        runs[1].contains("docker login 127.0.0.1:5000") && runs[1].contains("--password-stdin")
    );
    assert!(runs.iter().all(|r| !r.contains("secrets.")), "{runs:?}");

    let (file, text) = emit("gitlab", &login);
    schema_accepts(&venv, "vendor.gitlab-ci", &file);
    let doc = yaml(&text);
    assert_eq!(doc["default"]["tags"][0], "builders");
    let before: Vec<&str> = (doc["default"]["before_script"].as_array().unwrap().iter())
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(before[0], "cargo install --locked strata");
    assert!(before[1].contains("\"$REG_PASS\""), "{before:?}");

    let (file, _) = emit(
        "jenkins",
        &["--login-credentials", "registry-creds", "--no-artifacts"],
    );
    let out_dir = t.path().join("jjb-worker");
    let out = Command::new(venv.join("bin/jenkins-jobs"))
        .args(["test", "-o"])
        .arg(&out_dir)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read_to_string(out_dir.join("strata-images")).unwrap();
    assert!(xml.contains("agent { label 'builders' }"), "{xml}");
    assert!(
        xml.contains("usernamePassword(credentialsId: 'registry-creds'"),
        "{xml}"
    );
    assert!(!xml.contains("archiveArtifacts"), "--no-artifacts: {xml}");

    let (_, text) = emit("zuul", &["--login-credentials", "registry-creds"]);
    let docs: Vec<serde_json::Value> = serde_json::from_value(yaml(&text)).unwrap();
    let base = docs
        .iter()
        .find(|d| d["job"]["name"] == "strata-build")
        .unwrap();
    assert_eq!(base["job"]["nodeset"], "builders");
    assert_eq!(base["job"]["secrets"][0]["secret"], "registry-creds");
    assert_eq!(
        base["job"]["vars"]["strata_setup"],
        "cargo install --locked strata"
    );

    for (system, bad) in [
        (
            "github",
            vec![
                "--login-user",
                "${{ github.token }}",
                "--login-password",
                "P",
            ],
        ),
        ("github", vec!["--setup", "echo ${{ secrets.X }}"]),
        ("github", vec!["--login-credentials", "creds"]),
        (
            "jenkins",
            vec!["--login-user", "U", "--login-password", "P"],
        ),
        ("zuul", vec!["--image", "strata:1"]),
        ("gitlab", vec!["--runner", "a\nb"]),
    ] {
        let mut args = vec!["--set", reg, "ci", system, "--all"];
        args.extend(bad.iter().copied());
        t.run(&args).expect(2);
    }
}

/// Zuul's own configuration schemas (PyPI zuul: the voluptuous schemas its
/// loader applies to each job and project) accept the emitted file, plain
/// and with the worker options, and refuse a misspelt key.
#[test]
fn zuul_s_own_schemas_accept_the_emitted_jobs() {
    let Some(v) = crate::common::settings(&["STRATA_TEST_ZUUL_VENV"], "the Zuul schema check")
    else {
        return;
    };
    let python = PathBuf::from(&v[0]).join("bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zuul_check.py");
    let t = TestTree::sample();
    let check = |file: &Path| {
        Command::new(&python)
            .arg(&script)
            .arg(file)
            .output()
            .unwrap()
    };
    let worker = [
        "--setup",
        "pip install strata",
        "--runner",
        "builders",
        "--login-credentials",
        "registry-creds",
    ];
    for extra in [&[][..], &worker[..]] {
        let mut args = vec![
            "--set",
            "registry=registry.example:5000",
            "ci",
            "zuul",
            "--all",
        ];
        args.extend_from_slice(extra);
        let text = t.run(&args).expect(0).stdout;
        let file = t.path().join("zuul.yaml");
        std::fs::write(&file, &text).unwrap();
        let out = check(&file);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&file, text.replacen("dependencies:", "dependencis:", 1)).unwrap();
        assert!(!check(&file).status.success(), "a misspelt key passed");
    }
}
