//! `strata watch` on the real engine and a real file system: the real
//! binary watches a copy of the sample set while the test edits it.

use crate::common::engine::{self, Namespace};
use crate::common::{Running, TestTree};
use std::collections::BTreeSet;
use std::process::Command;

/// The images the last run built, from its summary.
fn built(t: &TestTree) -> BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_str(&t.read("s.json")).expect("summary json");
    let images = v["images"].as_array().expect("images");
    (images.iter())
        .filter(|i| i["status"] == "built")
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Start `strata watch --progress plain --summary s.json ARGS` and wait
/// for its first build.
fn watch(t: &TestTree, ns: &Namespace, args: &[&str], stdout: bool) -> Running {
    let mut cmd = t.command(&["--set", &ns.set(), "watch", "--progress", "plain"]);
    cmd.args(["--summary", "s.json"]).args(args);
    let mut run = Running::spawn_reading(cmd, stdout);
    run.wait_for("watching for changes", 300);
    run
}

/// Wait for the `n`th "watching" line: the loop is idle again.
fn idle(run: &mut Running, n: usize) {
    run.wait_for_count("watching for changes", n, 300);
}

fn append(t: &TestTree, rel: &str, text: &str) {
    let old = t.read(rel);
    t.write(rel, &format!("{old}{text}"));
}

/// Containers the watch `run` started that are still there, and hold tags.
fn leftovers(ns: &Namespace, pid: u32) -> (String, String) {
    let ps = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=org.strata.watch={pid}"),
        ])
        .output()
        .unwrap();
    let images = Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .unwrap();
    let holds: Vec<String> = String::from_utf8_lossy(&images.stdout)
        .lines()
        .filter(|l| l.starts_with(&ns.0) && l.contains("strata-hold"))
        .map(str::to_string)
        .collect();
    (
        String::from_utf8_lossy(&ps.stdout).trim().to_string(),
        holds.join(" "),
    )
}

#[test]
fn a_leaf_edit_rebuilds_one_image_a_base_edit_its_descendants_and_a_touch_nothing() {
    if !engine::available("watch") {
        return;
    }
    let t = TestTree::sample();
    let ns = Namespace::new("watch-edits");
    let mut run = watch(&t, &ns, &["nova-base+"], false);
    let first = built(&t);
    assert!(
        first.contains("nova-api") && !first.contains("keystone"),
        "{first:?}"
    );

    append(
        &t,
        "images/nova/nova-api/Dockerfile.j2",
        "RUN echo leaf-edit\n",
    );
    idle(&mut run, 2);
    assert_eq!(built(&t), names(&["nova-api"]), "{}", run.seen);

    // A touch, a swap file, a .git file: no input changed.
    let touched = t.path().join("images/nova/nova-compute/Dockerfile.j2");
    let mtime = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&touched)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    run.wait_for("no input changed; nothing rebuilt", 60);
    t.write("images/nova/nova-api/.Dockerfile.j2.swp", "swap");
    t.write(".git/index.lock", "");
    run.wait_for("never inputs", 60);

    append(&t, "images/base/Dockerfile.j2", "RUN echo base-edit\n");
    idle(&mut run, 4);
    let expected = [
        "base",
        "openstack-base",
        "nova-base",
        "nova-api",
        "nova-compute",
    ];
    assert_eq!(
        built(&t),
        names(&[&expected[..], &["nova-conductor"]].concat()),
        "{}",
        run.seen
    );

    let pid = run.child.id();
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, 130, "{stderr}");
    assert_eq!(leftovers(&ns, pid), (String::new(), String::new()));
    // The run lock went with it: a build that will not wait starts at once.
    let again = t.run(&["--set", &ns.set(), "build", "--no-wait", "nova-base+"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
}

#[test]
fn an_edit_during_a_build_cancels_it_at_the_engine_and_the_last_edit_wins() {
    if !engine::available("watch") {
        return;
    }
    let t = TestTree::sample();
    let ns = Namespace::new("watch-cancel");
    let mut run = watch(&t, &ns, &["cron"], false);
    let marker = format!("sleep 4{}", std::process::id() % 10);
    append(
        &t,
        "images/cron/Dockerfile.j2",
        &format!("RUN echo slow-step-begins && {marker}\n"),
    );
    // Its RUN line, then its output: the slow step runs at the engine now.
    run.wait_for_count("slow-step-begins", 2, 120);
    let running = || {
        Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap()
    };
    assert!(running().status.success(), "the step runs: {}", run.seen);
    let dockerfile = t
        .read("images/cron/Dockerfile.j2")
        .replace(&marker, "echo quick");
    t.write("images/cron/Dockerfile.j2", &dockerfile);
    run.wait_for("a newer edit made it stale", 60);
    idle(&mut run, 2);
    assert!(
        !running().status.success(),
        "the cancelled build's step still runs at the engine"
    );
    let pid = run.child.id();
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, 130, "{stderr}");
    // The tag holds the last edit's image: the plan finds it up to date.
    let plan = t.run(&["--set", &ns.set(), "plan", "--json", "cron"]);
    let items: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    let cron = (items.as_array().unwrap().iter())
        .find(|i| i["name"] == "cron")
        .unwrap();
    assert_eq!(cron["action"], "skip", "{cron}\n{stderr}");
    let (_, labels) = engine::inspect(&ns.reference("cron")).unwrap();
    assert_eq!(labels["io.strata.fingerprint"], cron["fingerprint"]);
    assert_eq!(leftovers(&ns, pid).1, "", "no hold tag is left");
}

#[test]
fn a_syntax_error_shows_where_and_the_next_fix_builds() {
    if !engine::available("watch") {
        return;
    }
    let t = TestTree::sample();
    let ns = Namespace::new("watch-error");
    let mut run = watch(&t, &ns, &["cron"], false);
    let good = t.read("images/cron/Dockerfile.j2");
    t.write(
        "images/cron/Dockerfile.j2",
        &format!("{good}{{% if broken %}}\nRUN true\n"),
    );
    run.wait_for("Dockerfile.j2:", 60);
    idle(&mut run, 2);
    t.write(
        "images/cron/Dockerfile.j2",
        &format!("{good}RUN echo fixed\n"),
    );
    idle(&mut run, 3);
    assert_eq!(built(&t), names(&["cron"]), "{}", run.seen);
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, 130);
    assert!(stderr.contains("images/cron/Dockerfile.j2:"), "{stderr}");
}

#[test]
fn run_restarts_the_container_with_the_new_image() {
    if !engine::available("watch") {
        return;
    }
    let t = TestTree::sample();
    let ns = Namespace::new("watch-run");
    append(
        &t,
        "images/cron/Dockerfile.j2",
        "RUN echo first-version > /marker\n",
    );
    let show = ["--run", "cron", "--", "sh", "-c", "cat /marker; sleep 600"];
    let mut run = watch(&t, &ns, &[&["cron"][..], &show].concat(), true);
    run.wait_for("cron | first-version", 60);
    let edited = t
        .read("images/cron/Dockerfile.j2")
        .replace("first-version", "second-version");
    t.write("images/cron/Dockerfile.j2", &edited);
    run.wait_for("cron | second-version", 120);
    let pid = run.child.id();
    let (containers, _) = leftovers(&ns, pid);
    assert_eq!(
        containers.lines().count(),
        1,
        "the previous container was stopped"
    );
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, 130, "{stderr}");
    assert_eq!(leftovers(&ns, pid), (String::new(), String::new()));
}

#[test]
fn push_is_refused() {
    let t = TestTree::sample();
    let run = t.run(&["watch", "--push"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("strata build --push"), "{}", run.stderr);
}
