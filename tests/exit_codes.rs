//! The exit-code contract of DESIGN.md on the real binary: unusable output
//! paths are exit 2 before anything is built; a report that cannot be written
//! after the build keeps the build's code (1 when an image failed, else 4);
//! `--progress quiet` still says what failed.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;

fn tree() -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{BASE_IMAGE}'}}\n"),
    )
    .write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base > /etc/layers\n",
    );
    t
}

/// (arguments, what the message must name). Every case: exit 2, one clear
/// message, and no build started (no engine is needed to say so).
#[test]
fn unusable_output_paths_are_refused_before_building() {
    let cases: &[(&[&str], &str)] = &[
        (&["build", "--summary", "strata.yaml/x.json"], "strata.yaml"),
        (&["build", "--junit", "strata.yaml/j.xml"], "strata.yaml"),
        (&["build", "--summary", "images"], "images"),
        (&["build", "--logs-dir", "strata.yaml"], "strata.yaml"),
        (&["build", "--logs-dir", "strata.yaml/logs"], "strata.yaml"),
        (&["render", "--out", "strata.yaml/out"], "strata.yaml"),
    ];
    for (args, names) in cases {
        let t = tree();
        let run = t.run(args).expect(2);
        assert!(
            run.stderr.contains("cannot write") && run.stderr.contains(names),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("building") && !run.stderr.contains("images:"),
            "{args:?}: nothing may be built: {}",
            run.stderr
        );
    }
}

/// The summary's folder is replaced by a file while the build runs: the
/// write fails after the build. The code stays the build's.
#[test]
fn a_report_that_fails_after_the_build_keeps_the_build_code() {
    if !engine::available("a_report_that_fails_after_the_build") {
        return;
    }
    for (broken, code) in [(false, 4), (true, 1)] {
        let ns = Namespace::new(&format!("late-report-{broken}"));
        let t = tree();
        let step = if broken {
            "RUN sleep 3 && false"
        } else {
            "RUN sleep 3"
        };
        t.write(
            "images/slow/Dockerfile.j2",
            &format!("FROM {{{{ image_ref('base') }}}}\n{step}\n"),
        );
        let child = t
            .command(&[
                "--set",
                &ns.set(),
                "build",
                "--progress",
                "plain",
                "--summary",
                "out/s.json",
            ])
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // The check before the build made `out/`; make it unusable mid-build.
        let out = t.path().join("out");
        for _ in 0..100 {
            if out.is_dir() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::fs::remove_dir_all(&out).expect("out/ was created by the check");
        std::fs::write(&out, "not a folder").unwrap();
        let run = crate::common::Run::new(child.wait_with_output().unwrap(), t.path()).expect(code);
        assert!(run.stderr.contains("cannot write"), "{}", run.stderr);
        assert!(
            run.stderr.contains("images:"),
            "the closing table is printed: {}",
            run.stderr
        );
        if broken {
            assert!(run.stderr.contains("1 failed"), "{}", run.stderr);
        }
    }
}

#[test]
fn quiet_still_reports_failures_and_the_result() {
    if !engine::available("quiet_still_reports_failures") {
        return;
    }
    let ns = Namespace::new("quiet");
    let t = tree();
    t.write(
        "images/bad/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo quiet-marker && false\n",
    );
    let run = t
        .run(&["--set", &ns.set(), "build", "--progress", "quiet"])
        .expect(1);
    assert!(run.stderr.contains("bad | FAILED"), "{}", run.stderr);
    assert!(
        run.stderr.contains("quiet-marker"),
        "log tail: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("2 images: 1 built, 1 failed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("base | building"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("slowest:"),
        "one line only: {}",
        run.stderr
    );
}

/// One image's push refused is that image's failure (exit 1), not exit 3:
/// the others build and move their tags. (The simulated engine refuses the
/// push; a registry that refuses everyone is exit 3, see push.rs.)
#[test]
fn one_refused_push_is_exit_1_and_the_rest_publish() {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: exit\nbuild: {publish: each}\n")
        .write("images/a/Dockerfile", "FROM scratch\nCOPY Dockerfile /a\n")
        .write("images/b/Dockerfile", "FROM scratch\nCOPY Dockerfile /b\n")
        .write("sim.yaml", "images: {a: {push_fail: true}}\n");
    let run = t
        .run(&[
            "build",
            "--push",
            "--engine",
            "sim:sim.yaml",
            "--summary",
            "s.json",
        ])
        .expect(1);
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    let image = |n: &str| {
        summary["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(image("a")["status"], "failed", "{}", run.stderr);
    assert!(image("a")["error"]
        .as_str()
        .unwrap()
        .contains("push of `exit/a:fp-"));
    assert_eq!(image("a")["pushed"], serde_json::json!([]));
    assert_eq!(image("b")["status"], "built");
    assert_eq!(image("b")["pushed"], serde_json::json!(["exit/b:latest"]));
}

/// `--summary -` and `--junit -` write to standard output.
#[test]
fn reports_can_go_to_stdout() {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: out\n")
        .write("images/a/Dockerfile", "FROM scratch\nCOPY Dockerfile /a\n")
        .write("sim.yaml", "images: {}\n");
    let run = t
        .run(&["build", "--engine", "sim:sim.yaml", "--summary", "-", "-q"])
        .expect(0);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).expect(&run.stdout);
    assert_eq!(summary["images"][0]["name"], "a");
    assert!(!t.path().join("-").exists());
    let run = t
        .run(&[
            "build",
            "--engine",
            "sim:sim.yaml",
            "--force",
            "--junit",
            "-",
            "-q",
        ])
        .expect(0);
    assert!(run.stdout.starts_with("<?xml"), "{}", run.stdout);
    assert!(run.stdout.contains("name=\"a\""), "{}", run.stdout);
}
