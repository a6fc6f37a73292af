//! `strata watch`, measured on the sample set (medians of 5, one run):
//! 1. save to the first build request at the engine, for a leaf edit,
//!    beside a fresh `strata build keystone` of the same edit (process
//!    start to its build request: it reads the tree again);
//! 2. save to "tested" for a leaf edit, beside a plain `docker build` of
//!    that image's rendered Dockerfile (what a one-image-per-service watch
//!    such as compose watch runs), as a ratio; and beside the same build
//!    with strata's one LABEL step appended, as strata sends it;
//! 3. a base edit: the images watch rebuilt, counted against what
//!    `strata plan` says the same edit rebuilds;
//! 4. idle CPU while watching a generated 200-image tree, over 60 s.
//!
//! "The build request" is the image's `building` line, printed as the
//! request is sent. Needs ci/setup.sh (engine and busybox base).
//! Run: `cargo bench --bench watch`.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_strata");
const LEAF: &str = "images/keystone/keystone/Dockerfile.j2";

/// A running watch, its stderr lines with the instant each was read.
struct Watching {
    child: Child,
    lines: Receiver<(Instant, String)>,
}

impl Watching {
    fn start(dir: &Path, args: &[&str]) -> Watching {
        let mut child = Command::new(BIN)
            .arg("-C")
            .arg(dir)
            .args(["watch", "--progress", "plain"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut w = Watching { child, lines };
        w.until("watching for changes");
        w
    }

    /// When the next line holding `needle` was read (all lines before it
    /// are read too).
    fn until(&mut self, needle: &str) -> Instant {
        loop {
            let (at, line) = (self.lines.recv_timeout(Duration::from_secs(600)))
                .unwrap_or_else(|_| panic!("no `{needle}` line from strata watch"));
            if line.contains(needle) {
                return at;
            }
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Append a step that makes the image new.
fn edit(dir: &Path, rel: &str, n: usize) -> Instant {
    let path = dir.join(rel);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("RUN echo edit-{n}-{}\n", std::process::id()));
    let at = Instant::now();
    std::fs::write(&path, text).unwrap();
    at
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_ms(v: Vec<Duration>) -> f64 {
    ms(common::median(v))
}

/// `strata build keystone` from a fresh process: until its build request.
fn fresh_build_request(dir: &Path, set: &str) -> Duration {
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .arg("-C")
        .arg(dir)
        .args([
            "--set",
            set,
            "build",
            "--builder",
            "classic",
            "--progress",
            "plain",
        ])
        .arg("keystone")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut took = None;
    for line in stderr.lines().map_while(Result::ok) {
        if took.is_none() && line.contains("keystone | building") {
            took = Some(start.elapsed());
        }
    }
    assert!(child.wait().unwrap().success());
    took.expect("a build request")
}

/// `docker build` of keystone's rendered Dockerfile. The classic builder,
/// and so strata too in this bench: the docker CLI here has no buildx, and
/// without it the CLI refuses BuildKit.
/// With `label`: strata's own last step appended, one `LABEL` of the
/// labels strata gives an image (values that change with each edit), so
/// that the two builds run the same steps.
fn docker_build(dir: &Path, set: &str, reference: &str, label: Option<usize>) -> Duration {
    common::strata_run(
        BIN,
        dir,
        &["--set", set, "render", "keystone", "--out", "out"],
    );
    if let Some(n) = label {
        let file = dir.join("out/keystone/Dockerfile");
        let text = std::fs::read_to_string(&file).unwrap();
        let step = format!(
            "LABEL \"io.strata.fingerprint\"=\"{n:064}\" \"io.strata.image\"=\"keystone\" \"org.opencontainers.image.title\"=\"keystone\"\n"
        );
        std::fs::write(&file, text + &step).unwrap();
    }
    let (out, took) = common::time(|| {
        Command::new("docker")
            .args(["build", "-q", "-t", reference, "-f"])
            .arg(dir.join("out/keystone/Dockerfile"))
            .arg(dir.join("images/keystone/keystone"))
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn count_built(summary: &Path) -> usize {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
    let images = v["images"].as_array().unwrap();
    images.iter().filter(|i| i["status"] == "built").count()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn main() {
    if !Command::new("docker")
        .args(["image", "inspect", "strata-ci/busybox:latest"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("watch bench: needs the engine and strata-ci/busybox:latest (run ci/setup.sh)");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("XDG_CACHE_HOME", cache.path());
    let ns = format!("strata-bench-watch-{}", std::process::id());
    let set = format!("namespace={ns}");
    let sample = tempfile::tempdir().unwrap();
    let dir = sample.path();
    common::copy_sample(dir);
    let runs = 5;

    // 1 and 2: leaf edits under watch, then the same edits built fresh.
    let args = [
        "--set",
        &set,
        "--builder",
        "classic",
        "--summary",
        "s.json",
        "keystone+",
    ];
    let mut w = Watching::start(dir, &args);
    let (mut to_request, mut to_built, mut to_tested) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..runs {
        let saved = edit(dir, LEAF, n);
        to_request.push(w.until("keystone | building") - saved);
        to_built.push(w.until("keystone | strata: running") - saved);
        to_tested.push(w.until("keystone | built in") - saved);
        w.until("watching for changes");
    }
    // 3: a base edit, planned in a copy of the tree first.
    let copy = tempfile::tempdir().unwrap();
    common::copy_sample(copy.path());
    std::fs::copy(dir.join(LEAF), copy.path().join(LEAF)).unwrap();
    edit(copy.path(), "images/base/Dockerfile.j2", 99);
    let plan = Command::new(BIN)
        .arg("-C")
        .arg(copy.path())
        .args(["--set", &set, "plan", "--json", "keystone+"])
        .output()
        .unwrap();
    let planned: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let planned = (planned.as_array().unwrap().iter())
        .filter(|i| i["action"] == "build")
        .count();
    std::fs::copy(
        copy.path().join("images/base/Dockerfile.j2"),
        dir.join("images/base/Dockerfile.j2"),
    )
    .unwrap();
    w.until("watching for changes");
    let rebuilt = count_built(&dir.join("s.json"));
    w.stop();

    let (mut fresh, mut docker, mut labelled) = (Vec::new(), Vec::new(), Vec::new());
    let reference = format!("{ns}/keystone:latest");
    for n in 0..runs {
        edit(dir, LEAF, 100 + n);
        fresh.push(fresh_build_request(dir, &set));
        edit(dir, LEAF, 200 + n);
        docker.push(docker_build(dir, &set, &reference, None));
        edit(dir, LEAF, 300 + n);
        labelled.push(docker_build(dir, &set, &reference, Some(n)));
    }

    // 4: idle CPU on a 200-image tree (the simulated engine: the watcher
    // is measured, not builds).
    let big = tempfile::tempdir().unwrap();
    common::write_tree(big.path(), 200, &|i| format!("RUN echo {i}"));
    std::fs::write(big.path().join("sim.yaml"), "default_ms: 1\n").unwrap();
    let sim = format!("sim:{}", big.path().join("sim.yaml").display());
    let w = Watching::start(big.path(), &["--engine", &sim, "--no-tests"]);
    let (before, start) = (cpu_ticks(w.child.id()), Instant::now());
    std::thread::sleep(Duration::from_secs(60));
    let ticks = cpu_ticks(w.child.id()) - before;
    let wall = start.elapsed().as_secs_f64();
    w.stop();
    let hz = 100.0; // USER_HZ on Linux
    let idle_pct = ticks as f64 / hz / wall * 100.0;

    let (req, fresh_req) = (median_ms(to_request), median_ms(fresh));
    let (tested, docker_ms) = (median_ms(to_tested), median_ms(docker));
    let built = median_ms(to_built);
    let labelled_ms = median_ms(labelled);
    println!("strata watch, sample set, medians of {runs} (debounce 200 ms, classic builder throughout):");
    println!(
        "  leaf edit, save to build request: watch {req:.0} ms, {:.0} ms after the debounce; a fresh `strata build keystone` {fresh_req:.0} ms from its start ({:.1}x the watch's time after the debounce)",
        req - 200.0,
        fresh_req / (req - 200.0)
    );
    println!(
        "  leaf edit, save to built: watch {built:.0} ms; plain `docker build` of the image {docker_ms:.0} ms (ratio {:.2})",
        built / docker_ms
    );
    println!(
        "    the same steps as strata sends them (`docker build` with strata's LABEL step appended): {labelled_ms:.0} ms, ratio {:.2}; the LABEL step alone {:.0} ms (the classic builder commits it as a step; BuildKit takes labels with no step)",
        built / labelled_ms,
        labelled_ms - docker_ms
    );
    println!(
        "  leaf edit, save to built and tested (its 6 image tests): watch {tested:.0} ms (ratio {:.2} to the plain build, which tests nothing)",
        tested / docker_ms
    );
    println!(
        "  base edit: watch rebuilt {rebuilt} images; `strata plan` of the same edit: {planned}"
    );
    println!(
        "  idle, 200-image tree: {idle_pct:.2} % of one core over {wall:.0} s ({ticks} ticks)"
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^{ns}' | xargs -r docker rmi -f >/dev/null"))
        .status();
}
