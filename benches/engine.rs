//! strata on the real engine: a generated tree of 40 busybox images whose
//! `RUN sleep` steps take known times (1 root, 8 children, 31 grandchildren).
//! Reports wall time at `-j 1` and `-j 4`, and strata's own overhead per
//! image: `-j 1` wall time minus the time the engine took for the same 40
//! builds (the same Dockerfiles, labels included) run one by one through
//! `docker build`, both on the classic builder (`benches/buildkit.rs` does
//! the same on BuildKit, the default).
//! A nonce in every Dockerfile defeats the layer cache between runs.
//!
//! Needs ci/setup.sh (engine and busybox base). Run: `cargo bench --bench engine`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const N: usize = 40;

fn parent(i: usize) -> Option<usize> {
    match i {
        0 => None,
        1..=8 => Some(0),
        i => Some(1 + (i - 9) % 8),
    }
}

fn write_tree(dir: &Path) {
    std::fs::write(
        dir.join("strata.yaml"),
        "namespace: strata-bench\nvars: {base_image: 'strata-ci/busybox:latest', nonce: '0'}\n",
    )
    .unwrap();
    for i in 0..N {
        let from = match parent(i) {
            None => "{{ base_image }}".to_string(),
            Some(p) => format!("{{{{ image_ref('img{p:02}') }}}}"),
        };
        let sleep = ["0.2", "0.4", "0.6"][i % 3];
        let d = dir.join(format!("images/img{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("Dockerfile.j2"),
            format!("FROM {from}\nRUN echo {{{{ nonce }}}} img{i:02} && sleep {sleep}\n"),
        )
        .unwrap();
    }
}

fn strata(dir: &Path, nonce: &str, jobs: &str) -> Duration {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("-C")
        .arg(dir)
        .args([
            "--set",
            &format!("vars.nonce={nonce}"),
            "build",
            "--builder",
            "classic",
            "-j",
            jobs,
            "--progress",
            "quiet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

/// The same builds, one `docker build` each, parents first: the engine's own time.
fn docker_cli(dir: &Path, nonce: &str) -> Duration {
    let out = dir.join(format!("rendered-{nonce}"));
    let status = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("-C")
        .arg(dir)
        .args(["--set", &format!("vars.nonce={nonce}"), "render", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let mut total = Duration::ZERO;
    for i in 0..N {
        let folder = out.join(format!("img{i:02}"));
        // Exactly what strata sends: the rendered text plus its one LABEL step.
        let rendered = std::fs::read_to_string(folder.join("Dockerfile")).unwrap();
        let labels = format!(
            "LABEL \"io.strata.image\"=\"img{i:02}\" \"org.opencontainers.image.created\"=\"{nonce}\" \"org.opencontainers.image.title\"=\"img{i:02}\"\n"
        );
        std::fs::write(
            folder.join("Dockerfile"),
            rendered.trim_end().to_string() + "\n" + &labels,
        )
        .unwrap();
        let start = Instant::now();
        let b = Command::new("docker")
            .args([
                "build",
                "-q",
                "-t",
                &format!("strata-bench/img{i:02}:latest"),
                ".",
            ])
            .current_dir(&folder)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        total += start.elapsed();
        assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    }
    total
}

fn main() {
    if !Command::new("docker")
        .args(["image", "inspect", "strata-ci/busybox:latest"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("engine bench: needs the engine and strata-ci/busybox:latest (run ci/setup.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path());
    let run = std::process::id();
    strata(dir.path(), &format!("warm{run}"), "4"); // warm the engine
    let cli = docker_cli(dir.path(), &format!("cli{run}"));
    let j1 = strata(dir.path(), &format!("j1{run}"), "1");
    let j4 = strata(dir.path(), &format!("j4{run}"), "4");
    let sleeps: f64 = (0..N).map(|i| [0.2, 0.4, 0.6][i % 3]).sum();
    println!("engine: {N} busybox images, {sleeps:.1} s of RUN sleep in all");
    println!(
        "  docker build, one by one (engine time): {:.1} s",
        cli.as_secs_f64()
    );
    println!(
        "  strata -j 1: {:.1} s   overhead {:+.0} ms per image",
        j1.as_secs_f64(),
        (j1.as_secs_f64() - cli.as_secs_f64()) * 1000.0 / N as f64
    );
    println!(
        "  strata -j 4: {:.1} s   speed-up over -j 1: {:.2}x",
        j4.as_secs_f64(),
        j1.as_secs_f64() / j4.as_secs_f64()
    );
    let _ = Command::new("sh").arg("-c").arg("docker images --format '{{.Repository}}:{{.Tag}}' | grep '^strata-bench/' | xargs -r docker rmi -f >/dev/null").status();
}
