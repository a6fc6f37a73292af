//! Image tests: `strata test` against Google's `container-structure-test`
//! running the same 44 cases (tests/fixtures/structure: 37 command, file
//! and content tests and 7 metadata tests) on the same image, one after the
//! other, medians of 3 after a warm-up.
//!
//! Needs ci/setup.sh (engine, busybox base, container-structure-test).
//! Run: `cargo bench --bench imagetest`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn main() {
    let cst = common::setting("STRATA_TEST_CST");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/structure");
    let tree = tempfile::tempdir().unwrap();
    let dir = tree.path().join("images/subject");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<String> = vec!["cases.yaml".into()];
    files.extend((0..7).map(|i| format!("metadata{i}.yaml")));
    for f in files
        .iter()
        .chain(std::iter::once(&"Dockerfile.j2".to_string()))
    {
        std::fs::copy(fixtures.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("image.yaml"),
        format!("tests: [{}]\n", files.join(", ")),
    )
    .unwrap();
    std::fs::write(
        tree.path().join("strata.yaml"),
        "namespace: bench-imagetest\nvars: {base_image: 'strata-ci/busybox:latest'}\n",
    )
    .unwrap();
    let strata = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("-C")
            .arg(tree.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        strata(&["build", "--no-tests"]).status.success(),
        "build the subject"
    );
    let ours = || {
        let (out, took) = common::time(|| strata(&["test", "--progress", "quiet"]));
        // Some cases fail on purpose: exit 1 with every test run.
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    };
    let configs: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
    let theirs = || {
        let mut cmd = Command::new(&cst);
        cmd.args([
            "test",
            "--image",
            "bench-imagetest/subject:latest",
            "--output",
            "json",
        ]);
        for c in &configs {
            cmd.arg("--config").arg(c);
        }
        let (out, took) = common::time(|| cmd.output().unwrap());
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("its JSON report");
        assert_eq!(report["Total"], 44, "{report}");
        took
    };
    ours();
    theirs();
    let (mut a, mut b): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        a.push(ours());
        b.push(theirs());
    }
    let (a, b) = (common::median(a), common::median(b));
    println!("44 image tests on one image, medians of 3 (one after the other):");
    println!("  container-structure-test  {:>8.2} s", b.as_secs_f64());
    println!("  strata test               {:>8.2} s", a.as_secs_f64());
    println!(
        "  strata is {:.1}x faster",
        b.as_secs_f64() / a.as_secs_f64()
    );
}
