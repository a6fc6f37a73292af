//! BuildKit, the default builder, against what a user would otherwise run.
//!
//! 1. The sample set, `build --force --no-cache --no-tests -j 2`, on
//!    BuildKit (no flag) and on `--builder classic`, in turn, 3 runs each:
//!    medians and the ratio classic/BuildKit.
//! 2. strata's own cost per image on BuildKit: a generated 40-image tree
//!    (1 root, 8 children, 31 grandchildren, `RUN sleep` of known lengths)
//!    built with `-j 1`, against the same rendered Dockerfiles sent one
//!    after another straight to the Engine API with BuildKit (bollard's
//!    `/build` with a session, the tag set so children find their parent)
//!    by a few lines below. A nonce defeats the layer cache; 3 runs each in
//!    turn; medians and strata's overhead in % and ms per image.
//!
//! Needs ci/setup.sh (engine and busybox base). Run: `cargo bench --bench buildkit`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const N: usize = 40;
const RUNS: usize = 3;

fn strata(dir: &Path, args: &[&str]) -> Duration {
    common::strata_run(env!("CARGO_BIN_EXE_strata"), dir, args)
}

fn sample_set() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_sample(dir.path());
    let ns = format!("namespace=strata-bench-bk{}", std::process::id());
    let base = [
        "--set",
        &ns,
        "build",
        "--force",
        "--no-cache",
        "--no-tests",
        "-j",
        "2",
        "--progress",
        "quiet",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    strata(dir.path(), &with(&[])); // warm-up: the base and the engine
    let (mut bk, mut classic) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        bk.push(strata(dir.path(), &with(&[])));
        classic.push(strata(dir.path(), &with(&["--builder", "classic"])));
    }
    let (bk, classic) = (common::median(bk), common::median(classic));
    println!("sample set (13 images), --force --no-cache --no-tests -j 2, medians of {RUNS}:");
    println!("  BuildKit (default)  {:6.1} s", bk.as_secs_f64());
    println!("  --builder classic   {:6.1} s", classic.as_secs_f64());
    println!(
        "  classic / BuildKit  {:6.2}x",
        classic.as_secs_f64() / bk.as_secs_f64()
    );
    cleanup(&ns["namespace=".len()..]);
}

fn parent(i: usize) -> Option<usize> {
    match i {
        0 => None,
        1..=8 => Some(0),
        i => Some(1 + (i - 9) % 8),
    }
}

fn write_tree(dir: &Path, ns: &str) {
    std::fs::write(
        dir.join("strata.yaml"),
        format!("namespace: {ns}\nvars: {{base_image: 'strata-ci/busybox:latest', nonce: '0'}}\n"),
    )
    .unwrap();
    for i in 0..N {
        let from = match parent(i) {
            None => "{{ base_image }}".to_string(),
            Some(p) => format!("{{{{ image_ref('img{p:02}') }}}}"),
        };
        let d = dir.join(format!("images/img{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        let sleep = ["0.2", "0.4", "0.6"][i % 3];
        let text = format!("FROM {from}\nRUN echo {{{{ nonce }}}} img{i:02} && sleep {sleep}\n");
        std::fs::write(d.join("Dockerfile.j2"), text).unwrap();
    }
}

/// The 40 rendered Dockerfiles built one by one through the Engine API
/// with BuildKit, parents first: the engine's own time.
fn engine_api(rt: &tokio::runtime::Runtime, dir: &Path, ns: &str, nonce: &str) -> Duration {
    use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
    use futures_util::StreamExt;
    let out = dir.join(format!("rendered-{nonce}"));
    let ok = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("-C")
        .arg(dir)
        .args(["--set", &format!("vars.nonce={nonce}"), "render", "--out"])
        .arg(&out)
        .status()
        .unwrap()
        .success();
    assert!(ok, "strata render");
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let start = Instant::now();
    for i in 0..N {
        let text = std::fs::read(out.join(format!("img{i:02}/Dockerfile"))).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "Dockerfile", text.as_slice())
            .unwrap();
        let body = bytes::Bytes::from(tar.into_inner().unwrap());
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(format!("{ns}/img{i:02}:latest")),
            version: BuilderVersion::BuilderBuildKit,
            session: Some(format!("bench-{nonce}-{i}")),
            rm: true,
            ..Default::default()
        };
        rt.block_on(async {
            let mut s = docker.build_image(options, None, Some(bollard::body_full(body)));
            while let Some(item) = s.next().await {
                item.expect("the build");
            }
        });
    }
    start.elapsed()
}

fn overhead() {
    let dir = tempfile::tempdir().unwrap();
    let ns = format!("strata-bench-bko{}", std::process::id());
    write_tree(dir.path(), &ns);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = |nonce: String| {
        let set = format!("vars.nonce={nonce}");
        strata(
            dir.path(),
            &[
                "--set",
                &set,
                "build",
                "-j",
                "1",
                "--no-tests",
                "--progress",
                "quiet",
            ],
        )
    };
    // BuildKit's cache is keyed by content, across runs: a nonce per run.
    let nonce = |what: &str| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        format!("{what}{}-{}", std::process::id(), t.as_nanos())
    };
    run(nonce("warm"));
    let (mut api, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        api.push(engine_api(&rt, dir.path(), &ns, &nonce("api")));
        ours.push(run(nonce("strata")));
    }
    let (api, ours) = (common::median(api), common::median(ours));
    let sleeps: f64 = (0..N).map(|i| [0.2, 0.4, 0.6][i % 3]).sum();
    println!(
        "{N} images on BuildKit, -j 1 ({sleeps:.1} s of RUN sleep in all), medians of {RUNS}:"
    );
    println!("  Engine API, one by one  {:6.1} s", api.as_secs_f64());
    println!("  strata -j 1             {:6.1} s", ours.as_secs_f64());
    println!(
        "  strata's overhead       {:+6.1} % ({:+.0} ms per image)",
        (ours.as_secs_f64() / api.as_secs_f64() - 1.0) * 100.0,
        (ours.as_secs_f64() - api.as_secs_f64()) * 1000.0 / N as f64
    );
    cleanup(&ns);
}

fn cleanup(ns: &str) {
    let script = format!("docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^{ns}/' | xargs -r docker rmi -f >/dev/null");
    let _ = Command::new("sh").arg("-c").arg(script).status();
}

fn main() {
    if !Command::new("docker")
        .args(["image", "inspect", "strata-ci/busybox:latest"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!(
            "buildkit bench: needs the engine and strata-ci/busybox:latest (run ci/setup.sh)"
        );
        return;
    }
    sample_set();
    overhead();
}
