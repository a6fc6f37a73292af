//! A pool of engines on real engines: the makespan of a generated tree of
//! 43 images whose RUN steps sleep known durations, built with
//! `strata build --push` on 1 engine × 2 jobs and on 3 engines × 2 jobs
//! (the main engine and the two of ci/setup.sh, sharing the loopback
//! registry), each ÷ its lower bound: the larger of the longest chain and
//! all the work ÷ the slots. Two bounds: with the work the RUN sleeps
//! alone, and with each image's time as one engine builds it (its sleep
//! plus the engine's fixed cost of a build and the content tag's upload,
//! from the one-engine run's summary). The three-engine makespan includes
//! every registry hand-off (content tag pushed after each build, parents
//! pulled by digest). Then the cost of one hand-off for a busybox image:
//! a push of a content tag and a pull by digest on another engine.
//!
//! Each run builds every image afresh (a new `salt` in every RUN step).
//! Medians of STRATA_BENCH_RUNS runs (3), the two set-ups alternating.
//! Needs ci/setup.sh. Run: `cargo bench --bench pool`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LEVEL2: usize = 6;
const LEVEL3: usize = 36;

/// Sleep seconds of image `i`: the root 3, level two 4 each, level three 4 to 12.
fn sleep_s(i: usize) -> u64 {
    match i {
        0 => 3,
        i if i <= LEVEL2 => 4,
        i => 4 + ((i * 7) % 9) as u64,
    }
}

fn parent(i: usize) -> Option<usize> {
    match i {
        0 => None,
        i if i <= LEVEL2 => Some(0),
        i => Some(1 + i % LEVEL2),
    }
}

fn name(i: usize) -> String {
    format!("img{i:02}")
}

fn write_tree(dir: &Path, registry: &str) {
    let w = |rel: String, text: String| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "strata.yaml".into(),
        format!(
            "registry: '{registry}'\nnamespace: bench-pool\n\
             vars: {{base_image: 'strata-ci/busybox:latest', salt: '0'}}\n"
        ),
    );
    for i in 0..=LEVEL2 + LEVEL3 {
        let from = match parent(i) {
            None => "{{ base_image }}".to_string(),
            Some(p) => format!("{{{{ image_ref('{}') }}}}", name(p)),
        };
        w(
            format!("images/{}/Dockerfile.j2", name(i)),
            format!(
                "FROM {from}\nRUN sleep {} && echo {{{{ salt }}}} > /done-{}\n",
                sleep_s(i),
                name(i)
            ),
        );
    }
}

/// The lower bound of the makespan on `slots` slots, in seconds, when
/// image `i` takes `work[i]`: the longer of the longest chain and all the
/// work spread evenly over the slots.
fn lower_bound(work: &[f64], slots: f64) -> f64 {
    let mut chain = vec![0.0; work.len()];
    for i in 0..work.len() {
        chain[i] = work[i] + parent(i).map_or(0.0, |p| chain[p]);
    }
    let longest = chain.iter().copied().fold(0.0, f64::max);
    longest.max(work.iter().sum::<f64>() / slots)
}

/// Each image's time in a run's summary (its build, its content tag's
/// upload and its tag moves), by image number.
fn durations(summary: &Path) -> Vec<f64> {
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    let mut d = vec![0.0; LEVEL2 + LEVEL3 + 1];
    for image in s["images"].as_array().unwrap() {
        let i: usize = image["name"].as_str().unwrap()[3..].parse().unwrap();
        d[i] = image["duration_s"].as_f64().unwrap();
    }
    d
}

fn main() {
    let registry = common::setting("STRATA_TEST_REGISTRY");
    let user = common::setting("STRATA_TEST_REGISTRY_USER");
    let password = common::setting("STRATA_TEST_REGISTRY_PASSWORD");
    let pool = common::setting("STRATA_TEST_POOL_ENGINES");
    let extra: Vec<&str> = pool.split_whitespace().collect();
    assert_eq!(extra.len(), 2, "STRATA_TEST_POOL_ENGINES: {pool}");
    let runs: usize = std::env::var("STRATA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    let config = tempfile::tempdir().unwrap();
    let auth = Command::new("sh")
        .args(["-c", &format!("printf %s '{user}:{password}' | base64 -w0")])
        .output()
        .unwrap();
    std::fs::write(
        config.path().join("config.json"),
        format!(
            "{{\"auths\": {{\"{registry}\": {{\"auth\": \"{}\"}}}}}}",
            String::from_utf8_lossy(&auth.stdout)
        ),
    )
    .unwrap();
    let tree = tempfile::tempdir().unwrap();
    write_tree(tree.path(), &registry);

    let main = "unix:///var/run/docker.sock";
    let one = vec![format!("{main}=2")];
    let three = vec![
        format!("{main}=2"),
        format!("{}=2", extra[0]),
        format!("{}=2", extra[1]),
    ];
    let mut salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The last run of each set-up leaves its summary and timeline here.
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-pool");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut build = |engines: &[String]| -> Duration {
        salt += 1;
        let stem = out_dir.join(format!("{}-engines", engines.len()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.arg("-C")
            .arg(tree.path())
            .args(["--set", &format!("vars.salt={salt}")])
            .args(["build", "--push", "--progress", "quiet"])
            .arg("--summary")
            .arg(stem.with_extension("json"))
            .arg("--timeline")
            .arg(stem.with_extension("svg"))
            .env("DOCKER_CONFIG", config.path());
        for e in engines {
            cmd.args(["--engine", e]);
        }
        let (out, took) = common::time(|| cmd.output().unwrap());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    };
    let (mut t1, mut t3) = (Vec::new(), Vec::new());
    for round in 0..runs {
        t3.push(build(&three));
        t1.push(build(&one));
        eprintln!(
            "round {}: 3×2 {:.1} s, 1×2 {:.1} s",
            round + 1,
            t3[round].as_secs_f64(),
            t1[round].as_secs_f64()
        );
    }
    let (m1, m3) = (
        common::median(t1).as_secs_f64(),
        common::median(t3).as_secs_f64(),
    );
    let n = LEVEL2 + LEVEL3 + 1;
    let sleeps: Vec<f64> = (0..n).map(|i| sleep_s(i) as f64).collect();
    // Each image's own time as one engine builds it (no pulls): the RUN
    // sleep, the engine's fixed cost of a build, the content tag's upload.
    let measured = durations(&out_dir.join("1-engines.json"));
    let fixed = (measured.iter().sum::<f64>() - sleeps.iter().sum::<f64>()) / n as f64;
    println!(
        "pool: {n} images, {} s of RUN sleeps, medians of {runs}",
        sleeps.iter().sum::<f64>()
    );
    println!("  each image's fixed cost on one engine (build steps, upload): {fixed:.2} s");
    println!("  set-up              makespan   ÷ bound of sleeps      ÷ bound of measured times");
    for (label, m, slots) in [
        ("1 engine  × 2 jobs", m1, 2.0),
        ("3 engines × 2 jobs", m3, 6.0),
    ] {
        let (a, b) = (lower_bound(&sleeps, slots), lower_bound(&measured, slots));
        println!(
            "  {label}  {m:7.1} s   {:.3} (of {a:5.1} s)    {:.3} (of {b:5.1} s)",
            m / a,
            m / b
        );
    }
    println!("  speed-up 3 engines over 1: {:.2}×", m1 / m3);

    // One hand-off: push a content tag from the main engine, pull it by
    // digest on another (the docker CLI, the same engine calls strata makes).
    let cfg = config.path().display().to_string();
    let docker = |host: &str, args: &[&str]| {
        let mut cmd = Command::new("docker");
        cmd.args(["--config", &cfg, "-H", host]).args(args);
        let (out, took) = common::time(|| cmd.output().unwrap());
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            took,
        )
    };
    let (mut pushes, mut pulls) = (Vec::new(), Vec::new());
    let ctx = tempfile::tempdir().unwrap();
    for k in 0..5 {
        salt += 1;
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM strata-ci/busybox:latest\nRUN echo {salt} > /handoff\n"),
        )
        .unwrap();
        let reference = format!("{registry}/bench-pool/handoff:fp-{salt}");
        docker(
            main,
            &[
                "build",
                "-q",
                "-t",
                &reference,
                &ctx.path().display().to_string(),
            ],
        );
        pushes.push(docker(main, &["push", "-q", &reference]).1);
        let (digests, _) = docker(
            main,
            &[
                "image",
                "inspect",
                "-f",
                "{{index .RepoDigests 0}}",
                &reference,
            ],
        );
        pulls.push(docker(extra[k % 2], &["pull", "-q", &digests]).1);
        docker(extra[k % 2], &["rmi", &digests]);
        docker(main, &["rmi", &reference]);
    }
    let (push, pull) = (common::median(pushes), common::median(pulls));
    println!(
        "  hand-off of a busybox image: push {:.0} ms + pull by digest {:.0} ms = {:.0} ms (medians of 5)",
        push.as_secs_f64() * 1e3,
        pull.as_secs_f64() * 1e3,
        (push + pull).as_secs_f64() * 1e3
    );

    // The images of the runs go (their names; what they held is then
    // dangling and goes with them); the base stays. Best effort.
    for host in [main, extra[0], extra[1]] {
        let format = "{{.Repository}} {{.Tag}} {{.Digest}}";
        let (list, _) = docker(host, &["images", "--digests", "--format", format]);
        let refs: Vec<String> = list
            .lines()
            .filter(|l| l.contains("bench-pool/"))
            .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                [repo, tag, _] if tag != "<none>" => Some(format!("{repo}:{tag}")),
                [repo, _, digest] if digest != "<none>" => Some(format!("{repo}@{digest}")),
                _ => None,
            })
            .collect();
        for chunk in refs.chunks(50) {
            let _ = Command::new("docker")
                .args(["-H", host, "rmi"])
                .args(chunk)
                .output();
        }
    }
}
