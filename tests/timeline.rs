//! `build --timeline` and `strata timeline`: the picture of a run, drawn
//! from the summary. The simulated engine gives builds of known lengths.

use crate::common::TestTree;

fn tree() -> TestTree {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: tl\n")
        .write(
            "images/root/Dockerfile",
            "FROM scratch\nCOPY Dockerfile /r\n",
        )
        .write(
            "images/long/Dockerfile.j2",
            "FROM {{ image_ref('root') }}\nCOPY Dockerfile /l\n",
        )
        .write(
            "images/short/Dockerfile.j2",
            "FROM {{ image_ref('root') }}\nCOPY Dockerfile /s\n",
        )
        .write(
            "sim.yaml",
            "images: {root: {ms: 400}, long: {ms: 1200}, short: {ms: 300}}\n",
        );
    t
}

#[test]
fn the_timeline_has_a_bar_per_image_as_long_as_its_build() {
    let t = tree();
    t.run(&[
        "build",
        "-j",
        "2",
        "--engine",
        "sim:sim.yaml",
        "--summary",
        "s.json",
        "--timeline",
        "run.svg",
        "-q",
    ])
    .expect(0);
    let text = t.read("run.svg");
    let doc = roxmltree::Document::parse(&text).expect("the SVG is XML");
    let bars: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("bar"))
        .collect();
    assert_eq!(bars.len(), 3, "{text}");
    let width = |name: &str| -> f64 {
        let bar = bars
            .iter()
            .find(|b| b.attribute("data-name") == Some(name))
            .unwrap_or_else(|| panic!("no bar for {name}"));
        bar.attribute("width").unwrap().parse().unwrap()
    };
    // Widths follow durations (the engine's times, give or take scheduling).
    let ratio = width("long") / width("root");
    assert!((2.4..3.6).contains(&ratio), "long/root = {ratio}");
    assert!(width("short") < width("root"));
    // long and short ran at once: two rows; the critical path is root → long.
    let outlined: Vec<&str> = bars
        .iter()
        .filter(|b| b.attribute("stroke").is_some())
        .map(|b| b.attribute("data-name").unwrap())
        .collect();
    assert_eq!(outlined.len(), 2, "{outlined:?}");
    assert!(outlined.contains(&"root") && outlined.contains(&"long"));
    let ys: std::collections::BTreeSet<&str> =
        bars.iter().map(|b| b.attribute("y").unwrap()).collect();
    assert_eq!(ys.len(), 2, "two slots");

    // Drawn again from the summary, as a page.
    t.run(&["timeline", "s.json", "-o", "run.html"]).expect(0);
    let html = t.read("run.html");
    assert!(
        html.starts_with("<!doctype html>") && html.contains("<svg"),
        "{html}"
    );
    assert!(html.contains("<title>long: built"));

    // It renders: rsvg-convert (Debian's librsvg2-bin, from ci/setup.sh).
    match std::process::Command::new("rsvg-convert")
        .arg("-o")
        .arg(t.path().join("run.png"))
        .arg(t.path().join("run.svg"))
        .status()
    {
        Ok(status) => {
            assert!(status.success());
            let png = std::fs::read(t.path().join("run.png")).unwrap();
            assert!(png.starts_with(b"\x89PNG"));
        }
        Err(e) => {
            let msg = format!("rsvg-convert not found ({e}): run ci/setup.sh");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED {msg}");
        }
    }
}

#[test]
fn a_bad_summary_is_a_clear_error() {
    let t = tree();
    t.write("s.json", "{\"not\": \"a summary\"}");
    let run = t.run(&["timeline", "s.json", "-o", "x.svg"]).expect(2);
    assert!(
        run.stderr.contains("not a strata summary"),
        "{}",
        run.stderr
    );
}

/// A name that is neither `.svg` nor `.html` is refused before building.
#[test]
fn a_timeline_of_another_kind_is_refused_before_building() {
    let t = tree();
    let args = [
        "build",
        "--engine",
        "sim:sim.yaml",
        "--progress",
        "plain",
        "--timeline",
        "run.png",
    ];
    let run = t.run(&args).expect(2);
    assert!(run.stderr.contains("SVG or HTML"), "{}", run.stderr);
    assert!(!run.stderr.contains("building"), "{}", run.stderr);
    assert!(!t.path().join("run.png").exists());
}

/// A no-op run (everything up to date) draws a picture that says nothing
/// was built, and exits 0 (an incremental CI run must not fail).
#[test]
fn a_no_op_run_draws_a_note_and_succeeds() {
    use crate::common::engine::{self, Namespace, BASE_IMAGE};
    if !engine::available("a_no_op_run_draws_a_note") {
        return;
    }
    let ns = Namespace::new("timeline-noop");
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{BASE_IMAGE}'}}\n"),
    )
    .write(
        "images/one/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN true\n",
    );
    let set = ns.set();
    t.run(&["--set", &set, "build", "--progress", "plain"])
        .expect(0);
    t.run(&[
        "--set",
        &set,
        "build",
        "--progress",
        "plain",
        "--timeline",
        "noop.svg",
    ])
    .expect(0);
    let svg = t.read("noop.svg");
    assert!(
        svg.contains("nothing was built; 1 image was up to date"),
        "{svg}"
    );
}
