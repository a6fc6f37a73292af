//! The registry as shared state, measured on a generated 200-image tree
//! pushed to the loopback registry of ci/setup.sh:
//! 1. a fresh worker's no-op `strata build` (every image published, none on
//!    the engine), against what a `docker pull`-based script does: pulling
//!    every image (one `docker pull` after another), same run;
//! 2. `strata publish` of the 200 release tags (manifest puts only).
//!
//! Needs ci/setup.sh. Run: `cargo bench --bench registry`
//! (reads target/ci/registry.env for the registry and its credentials).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const N: usize = 200;

fn env() -> Option<(String, String, String)> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci/registry.env");
    let text = std::fs::read_to_string(file).ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    Some((
        get("STRATA_TEST_REGISTRY")?,
        get("STRATA_TEST_REGISTRY_USER")?,
        get("STRATA_TEST_REGISTRY_PASSWORD")?,
    ))
}

fn run(cmd: &mut Command) -> Duration {
    let (out, took) = common::time(|| cmd.output().unwrap());
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    let Some((host, user, password)) = env() else {
        println!("registry: SKIPPED, no target/ci/registry.env (run ci/setup.sh first)");
        return;
    };
    let config = tempfile::tempdir().unwrap();
    let login = Command::new("docker")
        .args(["login", "-u", &user, "--password-stdin", &host])
        .env("DOCKER_CONFIG", config.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(password.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(login.success(), "docker login");
    // A fixed namespace: the registry keeps what an earlier run pushed, so a
    // re-run finds it published and builds nothing (the registry's storage
    // lives under target/ci/).
    let ns = "bench-registry".to_string();
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(dir.path(), N, &|i| format!("RUN echo step-{i} > /step"));
    let yaml = dir.path().join("strata.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        text.replace(
            "namespace: bench",
            &format!("registry: '{host}'\nnamespace: {ns}"),
        ),
    )
    .unwrap();
    let strata = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("-C")
            .arg(dir.path())
            .args(args)
            .env("DOCKER_CONFIG", config.path());
        c
    };
    let refs: Vec<String> = (0..N)
        .map(|i| format!("{host}/{ns}/{}:latest", common::name(i)))
        .collect();
    let clear = || {
        let out = Command::new("docker")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
            .unwrap();
        let mine: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!("/{ns}/")))
            .map(str::to_string)
            .collect();
        for chunk in mine.chunks(100) {
            let _ = Command::new("docker")
                .arg("rmi")
                .arg("-f")
                .args(chunk)
                .output();
        }
    };
    let full = run(strata(&["build", "--push", "--progress", "quiet"])
        .arg("-j")
        .arg("2"));
    println!(
        "registry: {N} images built and pushed (or found published by an earlier run) in {:.0} s",
        full.as_secs_f64()
    );

    let mut noop = Vec::new();
    let mut pulls = Vec::new();
    for _ in 0..3 {
        clear();
        noop.push(run(&mut strata(&["build", "--progress", "quiet"])));
        let (_, took) = common::time(|| {
            for r in &refs {
                run(Command::new("docker")
                    .args(["pull", "-q", r])
                    .env("DOCKER_CONFIG", config.path()));
            }
        });
        pulls.push(took);
    }
    for _ in 0..4 {
        clear();
        noop.push(run(&mut strata(&["build", "--progress", "quiet"])));
    }
    let noop_median = common::median(noop.clone());
    let pull_median = common::median(pulls.clone());
    println!(
        "fresh-worker no-op build, {N} images published, empty engine: median {:.0} ms ({} runs); \
         docker pull of every image: median {:.1} s ({} runs); strata {:.0}x faster",
        noop_median.as_secs_f64() * 1e3,
        noop.len(),
        pull_median.as_secs_f64(),
        pulls.len(),
        pull_median.as_secs_f64() / noop_median.as_secs_f64()
    );

    let mut publish = Vec::new();
    for _ in 0..5 {
        publish.push(run(&mut strata(&["publish"])));
    }
    println!(
        "publish of {N} release tags (manifest puts): median {:.0} ms (min {:.0}, max {:.0}, 5 runs)",
        common::median(publish.clone()).as_secs_f64() * 1e3,
        publish.iter().min().unwrap().as_secs_f64() * 1e3,
        publish.iter().max().unwrap().as_secs_f64() * 1e3,
    );
    clear();
}
