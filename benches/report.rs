//! The run's page at scale (medians of 5, one run): a 200-image run on the
//! simulated engine (the page is measured, not builds), each image's log
//! padded to 200 kB as a verbose build's would be.
//! 1. `strata report` of its summary and logs: time and page size;
//! 2. opening it in headless chromium to a drawn screenshot (load, script,
//!    layout, paint), against the same for an empty page: the difference
//!    is the page's own cost (budget: under 1 s).
//!
//! Needs Debian's chromium (ci/setup.sh). Run: `cargo bench --bench report`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_strata");

/// Headless chromium from start to a screenshot of `page` written.
fn open(page: &Path, shot: &Path) -> Duration {
    let (out, took) = common::time(|| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1400,1000",
            ])
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}#image=img-199", page.display()))
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

fn main() {
    if !Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("report bench: needs chromium (run ci/setup.sh)");
        return;
    }
    let runs = 5;
    let tree = tempfile::tempdir().unwrap();
    let dir = tree.path();
    common::write_tree(dir, 200, &|i| format!("RUN echo {i}"));
    std::fs::write(dir.join("sim.yaml"), "default_ms: 1\n").unwrap();
    let sim = format!("sim:{}", dir.join("sim.yaml").display());
    common::strata_run(
        BIN,
        dir,
        &[
            "build",
            "--engine",
            &sim,
            "--no-tests",
            "--logs-dir",
            "logs",
            "--summary",
            "s.json",
        ],
    );
    let pad = "step output of a verbose build, as long as a real one\n".repeat(3800);
    for entry in std::fs::read_dir(dir.join("logs")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, text + &pad).unwrap();
    }
    let logs: u64 = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let mut make = Vec::new();
    for _ in 0..runs {
        make.push(common::strata_run(
            BIN,
            dir,
            &["report", "s.json", "--logs", "logs", "-o", "run.html"],
        ));
    }
    let size = std::fs::metadata(dir.join("run.html")).unwrap().len();
    std::fs::write(
        dir.join("empty.html"),
        "<!doctype html><title>empty</title>",
    )
    .unwrap();
    let (mut page, mut empty) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        page.push(open(&dir.join("run.html"), &dir.join("page.png")));
        empty.push(open(&dir.join("empty.html"), &dir.join("empty.png")));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (make, page, empty) = (
        common::median(make),
        common::median(page),
        common::median(empty),
    );
    println!(
        "the run's page, 200 images, {:.1} MB of logs, medians of {runs}:",
        logs as f64 / 1e6
    );
    println!(
        "  strata report: {:.0} ms; the page {:.2} MB (budget 5 MB)",
        ms(make),
        size as f64 / 1e6
    );
    println!(
        "  headless chromium to a screenshot: the page {:.0} ms, an empty page {:.0} ms; the page's own cost {:.0} ms (budget 1000 ms)",
        ms(page),
        ms(empty),
        ms(page) - ms(empty)
    );
}
