//! The sample set (13 images) built and published three ways beyond one
//! `strata build`, the makespan of each from the first job's start to the
//! release tags moved (medians of STRATA_BENCH_RUNS rounds, default 3; a
//! new salt in the base each round, so every image is built afresh; the
//! image tests run in all three, as the jobs run them):
//! 1. the engine pool: `strata build --push` over the main engine and the
//!    two of ci/setup.sh;
//! 2. the GitHub workflow `strata ci github` writes, run by act on this
//!    machine's engine (`-P ubuntu-latest=-self-hosted`, as many jobs at
//!    once as there are cores);
//! 3. the Argo Workflow `strata ci argo` writes, on the local stand-in
//!    for a cluster (tests/common/kube.rs: each task a container of the
//!    emitted image, one at a time, on an emptied engine); with the
//!    critical path of its measured task times, what a cluster with enough
//!    nodes would take.
//!
//! Needs ci/setup.sh. Run: `cargo bench --bench farm`.

mod common;
// The tests' stand-in for a cluster; the bench runs only its Argo side.
#[allow(dead_code)]
#[path = "../tests/common/kube.rs"]
mod kube;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_strata");

fn sh(dir: &Path, cmd: &str) {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sample-set tree in git, pushing to namespace `ns`, salted.
fn tree(ns: &str, registry: &str, salt: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    common::copy_sample(t.path());
    let cfg = std::fs::read_to_string(t.path().join("strata.yaml")).unwrap();
    let cfg = cfg
        .replace("registry: \"\"", &format!("registry: \"{registry}\""))
        .replace("namespace: strata", &format!("namespace: {ns}"));
    std::fs::write(t.path().join("strata.yaml"), cfg).unwrap();
    let base = t.path().join("images/base/Dockerfile.j2");
    let text = std::fs::read_to_string(&base).unwrap();
    std::fs::write(&base, format!("{text}\nRUN echo {salt} > /salt\n")).unwrap();
    sh(
        t.path(),
        "git init -q && git add -A && git -c user.email=b@strata -c user.name=b commit -qm set",
    );
    t
}

fn emit(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let runs: usize = std::env::var("STRATA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let host = common::setting("STRATA_TEST_REGISTRY");
    let (user, password) = (
        common::setting("STRATA_TEST_REGISTRY_USER"),
        common::setting("STRATA_TEST_REGISTRY_PASSWORD"),
    );
    let pool = common::setting("STRATA_TEST_POOL_ENGINES");
    let act = common::setting("STRATA_TEST_ACT");
    let (tls, certs) = (
        common::setting("STRATA_TEST_TLS_HOST"),
        common::setting("STRATA_TEST_TLS_CERTS"),
    );
    let config = common::docker_config(&host, &user, &password);
    let bin_dir = PathBuf::from(BIN).parent().unwrap().display().to_string();
    kube::build_task_image(Path::new(BIN));
    let (mut pooled, mut acted, mut harnessed, mut bound) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..runs {
        let salt = format!(
            "{}-{round}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        );

        // 1. The pool.
        let ns = format!("strata-bench-farm-pool-{}-{round}", std::process::id());
        let t = tree(&ns, &host, &salt);
        let mut args = vec!["build", "--push", "--engine", "docker"];
        for e in pool.split_whitespace() {
            args.extend(["--engine", e]);
        }
        let (out, took) = common::time(|| {
            Command::new(BIN)
                .current_dir(t.path())
                .args(&args)
                .env("DOCKER_CONFIG", config.path())
                .output()
                .unwrap()
        });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        pooled.push(took);

        // 2. act.
        let ns = format!("strata-bench-farm-act-{}-{round}", std::process::id());
        let t = tree(&ns, &host, &salt);
        let setup = format!("echo '{bin_dir}' >> \"$GITHUB_PATH\"");
        let flow = emit(
            t.path(),
            &[
                "ci",
                "github",
                "--all",
                "--setup",
                &setup,
                "--login-user",
                "REG_USER",
                "--login-password",
                "REG_PASS",
                "--no-artifacts",
            ],
        );
        std::fs::create_dir_all(t.path().join(".github/workflows")).unwrap();
        std::fs::write(t.path().join(".github/workflows/strata.yml"), flow).unwrap();
        sh(
            t.path(),
            "git add -A && git -c user.email=b@strata -c user.name=b commit -qm flow",
        );
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(
            secrets.path().join("s"),
            format!("REG_USER={user}\nREG_PASS={password}\n"),
        )
        .unwrap();
        let docker = tempfile::tempdir().unwrap();
        let (out, took) = common::time(|| {
            Command::new(&act)
                .args([
                    "workflow_dispatch",
                    "-P",
                    "ubuntu-latest=-self-hosted",
                    "--secret-file",
                ])
                .arg(secrets.path().join("s"))
                .arg("--env")
                .arg(format!("DOCKER_CONFIG={}", docker.path().display()))
                .current_dir(t.path())
                .output()
                .unwrap()
        });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        acted.push(took);

        // 3. The Argo Workflow on the stand-in.
        let ns = format!("strata-bench-farm-argo-{}-{round}", std::process::id());
        let t = tree(&ns, &host, &salt);
        let url = t.path().display().to_string();
        let text = emit(
            t.path(),
            &[
                "ci",
                "argo",
                "--all",
                "--image",
                kube::TASK_IMAGE,
                "--git-url",
                &url,
                "--login-credentials",
                "registry-config",
            ],
        );
        let doc: serde_json::Value =
            serde_saphyr::from_str(text.split("\n---\n").nth(1).unwrap()).unwrap();
        let tasks = kube::argo_tasks(&doc);
        let pod = kube::Pod {
            host: &tls,
            certs: &certs,
            config: config.path(),
            tree: t.path(),
        };
        let start = Instant::now();
        let ran = kube::run(&tasks, &pod);
        harnessed.push(start.elapsed());
        assert!(
            ran.failed.is_empty() && ran.succeeded.len() == tasks.len(),
            "{:?}",
            ran.failed
        );
        bound.push(kube::critical_path(&tasks, &ran.took));
        kube::fresh_engine(&pod);
    }
    let s = |v: Vec<Duration>| common::median(v).as_secs_f64();
    println!("the sample set (13 images) built and published, makespans, medians of {runs}:");
    println!(
        "  engine pool (3 engines, strata build --push): {:.1} s",
        s(pooled)
    );
    println!(
        "  GitHub workflow run by act (one engine, jobs as many at once as cores): {:.1} s",
        s(acted)
    );
    println!(
        "  Argo Workflow on the local stand-in (each task a container of the emitted image, one at a time, on an emptied engine): {:.1} s; its critical path of measured task times: {:.1} s",
        s(harnessed),
        s(bound)
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg("docker images --format '{{.Repository}}:{{.Tag}}' | grep 'strata-bench-farm-' | xargs -r docker rmi -f >/dev/null")
        .status();
}
