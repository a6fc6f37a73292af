//! Rendering Kolla's own tree: `kolla-build --template-only --base debian`
//! against `strata render --out` with examples/kolla/strata.yaml, on the
//! same tree (Kolla 23.0.0, 188 images), one after the other, 5 runs each
//! after a warm-up; medians of wall time and of each process's peak memory.
//!
//! Needs ci/setup.sh (Kolla in target/ci). Run: `cargo bench --bench kolla`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `cmd` to its end: wall time and the process's peak memory (bytes).
/// The child is reaped by `wait4`, which also gives its resource usage.
#[allow(clippy::zombie_processes)]
fn measure(mut cmd: Command) -> (Duration, u64) {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, once; `usage` is a valid rusage.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let took = start.elapsed();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    (took, usage.ru_maxrss as u64 * 1024)
}

fn median_bytes(mut v: Vec<u64>) -> u64 {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let venv = PathBuf::from(common::setting("STRATA_TEST_KOLLA_VENV"));
    let src = PathBuf::from(common::setting("STRATA_TEST_KOLLA_SRC"));
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kolla/strata.yaml");
    let work = tempfile::tempdir().unwrap();
    // Each run writes into a folder of its own: removing the last run's
    // files first would time the file system's clean-up, not the tools.
    let runs = std::cell::Cell::new(0);
    let fresh = |tool: &str| {
        runs.set(runs.get() + 1);
        work.path().join(format!("{tool}-{}", runs.get()))
    };
    let kolla = || {
        let out = fresh("kolla");
        let mut cmd = Command::new(venv.join("bin/kolla-build"));
        cmd.args(["--template-only", "--base", "debian", "--work-dir"])
            .arg(&out);
        measure(cmd)
    };
    let strata = || {
        let out = fresh("strata");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.arg("-C")
            .arg(&src)
            .arg("--config")
            .arg(&config)
            .args(["render", "--out"])
            .arg(&out);
        measure(cmd)
    };
    kolla();
    strata();
    let (mut kt, mut km, mut st, mut sm) = (vec![], vec![], vec![], vec![]);
    for _ in 0..5 {
        let (t, m) = kolla();
        kt.push(t);
        km.push(m);
        let (t, m) = strata();
        st.push(t);
        sm.push(m);
    }
    let (k, s) = (common::median(kt), common::median(st));
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("Kolla 23.0.0, 188 images, medians of 5 (one after the other):");
    println!(
        "  kolla-build --template-only  {:>9.1} ms   peak {:>6.1} MiB",
        k.as_secs_f64() * 1e3,
        mib(median_bytes(km))
    );
    println!(
        "  strata render --out          {:>9.1} ms   peak {:>6.1} MiB",
        s.as_secs_f64() * 1e3,
        mib(median_bytes(sm))
    );
    println!(
        "  strata is {:.0}x faster (target: at least 250x)",
        k.as_secs_f64() / s.as_secs_f64()
    );
}
