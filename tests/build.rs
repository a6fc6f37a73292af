//! `strata build` on the real Docker engine.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::{Running, TestTree};
use std::collections::BTreeMap;

fn summary(t: &TestTree, file: &str) -> BTreeMap<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&t.read(file)).expect("summary json");
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

fn statuses(t: &TestTree, file: &str) -> BTreeMap<String, String> {
    summary(t, file)
        .into_iter()
        .map(|(k, v)| (k, v["status"].as_str().unwrap().to_string()))
        .collect()
}

/// base on busybox, then whatever `images` add (name, Dockerfile body after FROM base).
fn busybox_tree(images: &[(&str, &str)]) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{BASE_IMAGE}'}}\n"),
    );
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base > /etc/layers\n",
    );
    for (name, body) in images {
        t.write(&format!("images/{name}/Dockerfile.j2"), body);
    }
    t
}

#[test]
fn sample_set_builds_with_labels_and_layers() {
    if !engine::available("sample_set_builds") {
        return;
    }
    let ns = Namespace::new("sample");
    let t = TestTree::sample();
    let run = t.run(&[
        "--set",
        &ns.set(),
        "build",
        "--progress",
        "plain",
        "--summary",
        "out/summary.json",
        "--junit",
        "out/junit.xml",
        "--logs-dir",
        "out/logs",
    ]);
    let run = run.expect(0);
    let s = statuses(&t, "out/summary.json");
    assert_eq!(s.len(), 13);
    assert!(s.values().all(|v| v == "built"), "{s:?}");
    for name in s.keys() {
        let (id, labels) =
            engine::inspect(&ns.reference(name)).unwrap_or_else(|| panic!("{name} exists"));
        assert_eq!(
            summary(&t, "out/summary.json")[name]["image_id"],
            id.as_str()
        );
        assert_eq!(labels["io.strata.image"], name.as_str());
        assert_eq!(labels["org.opencontainers.image.title"], name.as_str());
        assert_eq!(labels["org.opencontainers.image.vendor"], "strata sample");
        assert!(labels["org.opencontainers.image.created"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
        let log = t.read(&format!("out/logs/{name}.log"));
        assert!(log.contains("exporting to image"), "{log}");
    }
    // A child's filesystem holds what each ancestor added.
    let layers = engine::run_in(&ns.reference("keystone"), &["cat", "/etc/strata/images"]);
    assert_eq!(layers, "base\nopenstack-base\nkeystone-base\nkeystone\n");
    // Build args from strata.yaml and image.yaml, extra tags, image labels.
    let conf = engine::run_in(
        &ns.reference("horizon"),
        &[
            "cat",
            "/etc/strata/horizon.conf",
            "/etc/strata/openstack-release",
        ],
    );
    assert_eq!(conf, "theme=material port=8080\nopenstack 2026.1\n");
    let (horizon, labels) = engine::inspect(&ns.reference("horizon")).unwrap();
    assert_eq!(
        engine::inspect(&format!("{}/horizon:dashboard", ns.0))
            .unwrap()
            .0,
        horizon
    );
    assert_eq!(labels["org.opencontainers.image.description"], "dashboard");
    // The multi-stage image copied from another image of the tree.
    let copied = engine::run_in(
        &ns.reference("tools"),
        &["cat", "/usr/share/strata/keystone.conf"],
    );
    assert!(copied.contains("# rendered for keystone-base"), "{copied}");
    // .dockerignore kept docs and scratch files out of base.
    let files = engine::run_in(&ns.reference("base"), &["find", "/usr/local/share/strata"]);
    assert!(
        files.contains("kolla_start") && !files.contains("README.md") && !files.contains("tmp"),
        "{files}"
    );
    let junit = t.read("out/junit.xml");
    assert_eq!(junit.matches("<testcase classname=\"strata\"").count(), 13);
    // The sample set's image tests: a case each, all passing.
    assert!(
        junit.contains("<testsuite name=\"strata image tests\""),
        "{junit}"
    );
    assert!(junit.matches("<testcase ").count() > 13 + 40, "{junit}");
    assert!(junit.contains("failures=\"0\""));
    assert!(!junit.contains("<failure"));
    assert!(run.stderr.contains("13 images: 13 built"), "{}", run.stderr);
}

#[test]
fn a_failure_stops_its_descendants_and_nothing_else() {
    if !engine::available("failure") {
        return;
    }
    let ns = Namespace::new("failure");
    let t = busybox_tree(&[
        (
            "broken",
            "FROM {{ image_ref('base') }}\nRUN echo about to fail && exit 3\n",
        ),
        ("child", "FROM {{ image_ref('broken') }}\nRUN true\n"),
        ("grandchild", "FROM {{ image_ref('child') }}\nRUN true\n"),
        (
            "sibling",
            "FROM {{ image_ref('base') }}\nRUN echo fine > /fine\n",
        ),
    ]);
    let run = t.run(&[
        "--set",
        &ns.set(),
        "build",
        "--progress",
        "plain",
        "--summary",
        "s.json",
        "--junit",
        "j.xml",
        "--logs-dir",
        "logs",
    ]);
    let run = run.expect(1);
    let s = statuses(&t, "s.json");
    assert_eq!(s["base"], "built", "{}", run.stderr);
    assert_eq!(s["sibling"], "built", "{}", run.stderr);
    assert_eq!(s["broken"], "failed");
    assert_eq!(s["child"], "parent-failed");
    assert_eq!(s["grandchild"], "parent-failed");
    let log = t.read("logs/broken.log");
    assert!(
        log.contains("RUN echo about to fail && exit 3") && log.contains("about to fail"),
        "{log}"
    );
    // BuildKit's words (the classic builder's: "returned a non-zero code: 3").
    let error = summary(&t, "s.json")["broken"]["error"].clone();
    assert!(error.as_str().unwrap().contains("exit code: 3"), "{error}");
    assert!(
        !run.stderr.contains("child | building"),
        "a child of a failed image never starts:\n{}",
        run.stderr
    );
    // The tail is printed under the failure, after the streamed output.
    let tail = run
        .stderr
        .split("broken | FAILED")
        .nth(1)
        .unwrap_or_default();
    assert!(
        tail.contains("lines of the log of `broken`:") && tail.contains("about to fail"),
        "log tail printed under the failure:\n{}",
        run.stderr
    );
    assert!(
        engine::inspect(&ns.reference("broken")).is_none(),
        "nothing tagged for a failed build"
    );
    assert!(engine::inspect(&ns.reference("child")).is_none());
    let junit = t.read("j.xml");
    assert!(
        junit.contains("<skipped message=\"parent `broken` failed\"/>"),
        "{junit}"
    );
    assert!(junit.contains("<failure message="), "{junit}");
}

#[test]
fn fail_fast_cancels_running_builds() {
    if !engine::available("fail_fast") {
        return;
    }
    let ns = Namespace::new("failfast");
    let t = busybox_tree(&[
        ("slow", "FROM {{ image_ref('base') }}\nRUN sleep 60\n"),
        (
            "broken",
            "FROM {{ image_ref('base') }}\nRUN sleep 2 && false\n",
        ),
        ("later", "FROM {{ image_ref('slow') }}\nRUN true\n"),
    ]);
    let started = std::time::Instant::now();
    t.run(&[
        "--set",
        &ns.set(),
        "build",
        "-j",
        "2",
        "--fail-fast",
        "--progress",
        "plain",
        "--summary",
        "s.json",
    ])
    .expect(1);
    let s = statuses(&t, "s.json");
    assert_eq!(s["broken"], "failed");
    assert_eq!(s["slow"], "cancelled");
    assert_eq!(s["later"], "cancelled");
    assert!(
        started.elapsed().as_secs() < 55,
        "the 60 s build was not waited for"
    );
    assert!(engine::inspect(&ns.reference("slow")).is_none());
}

#[test]
fn interrupt_leaves_the_previous_tag() {
    if !engine::available("interrupt") {
        return;
    }
    let ns = Namespace::new("interrupt");
    let t = busybox_tree(&[("sleepy", "FROM {{ image_ref('base') }}\nRUN echo v1 > /v\n")]);
    t.run(&["--set", &ns.set(), "build", "--progress", "plain"])
        .expect(0);
    let (before, _) = engine::inspect(&ns.reference("sleepy")).unwrap();
    t.write(
        "images/sleepy/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo started-sleeping && sleep 60\n",
    );
    let mut run = Running::spawn(t.command(&[
        "--set",
        &ns.set(),
        "build",
        "--progress",
        "plain",
        "--summary",
        "s.json",
        "sleepy",
    ]));
    run.wait_for("started-sleeping", 60);
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, 130, "{stderr}");
    assert_eq!(statuses(&t, "s.json")["sleepy"], "cancelled");
    let (after, _) = engine::inspect(&ns.reference("sleepy")).unwrap();
    assert_eq!(before, after, "the tag still points at the previous image");
}

#[test]
fn engine_unreachable_is_exit_3() {
    let t = busybox_tree(&[]);
    let run = t
        .command(&["build"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("cannot reach the Docker engine at `unix:///nonexistent/docker.sock`"),
        "{err}"
    );
    assert!(err.contains("DOCKER_HOST"), "{err}");
}

#[test]
fn an_empty_docker_host_means_the_default_socket() {
    if !engine::available("empty DOCKER_HOST") {
        return;
    }
    let t = busybox_tree(&[]);
    let run = t
        .command(&["plan"])
        .env("DOCKER_HOST", "")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&run.stdout).contains("base"));
}

#[test]
fn an_engine_that_never_answers_is_given_up_on() {
    // Accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let t = busybox_tree(&[]);
    let run = t
        .command(&["plan"])
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .env("STRATA_ENGINE_TIMEOUT", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{err}");
    assert!(err.contains("no answer within 2 s"), "{err}");
    let bad = t
        .command(&["plan"])
        .env("STRATA_ENGINE_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("STRATA_ENGINE_TIMEOUT"));
}

#[test]
fn invalid_input_builds_nothing() {
    let t = busybox_tree(&[("app", "FROM {{ image_ref('base') }}\nRUN {{ nope }}\n")]);
    let run = t
        .command(&["build"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "bad input is found before the engine is asked"
    );
}

#[test]
fn buildkit_builds_the_same_tree() {
    if !engine::available("buildkit") {
        return;
    }
    let ns = Namespace::new("buildkit");
    let t = busybox_tree(&[
        ("app", "FROM {{ image_ref('base') }}\nCOPY files/ /files/\nRUN echo app >> /etc/layers && echo hello-from-buildkit\n"),
        ("broken", "FROM {{ image_ref('base') }}\nRUN echo going-down && exit 7\n"),
        ("after", "FROM {{ image_ref('broken') }}\nRUN true\n"),
    ]);
    t.write("images/app/files/keep.txt", "keep\n");
    t.write("images/app/files/skip.txt", "skip\n");
    t.write("images/app/.dockerignore", "files/skip.txt\n");
    let run = t.run(&[
        "--set",
        &ns.set(),
        "--set",
        "build.buildkit=true",
        "build",
        "--progress",
        "plain",
        "--summary",
        "s.json",
        "--logs-dir",
        "logs",
    ]);
    let run = run.expect(1);
    let s = statuses(&t, "s.json");
    assert_eq!(
        (s["base"].as_str(), s["app"].as_str()),
        ("built", "built"),
        "{}",
        run.stderr
    );
    assert_eq!(
        (s["broken"].as_str(), s["after"].as_str()),
        ("failed", "parent-failed")
    );
    assert_eq!(
        engine::run_in(&ns.reference("app"), &["cat", "/etc/layers"]),
        "base\napp\n"
    );
    assert_eq!(
        engine::run_in(&ns.reference("app"), &["ls", "/files"]),
        "keep.txt\n"
    );
    let (_, labels) = engine::inspect(&ns.reference("app")).unwrap();
    assert_eq!(labels["io.strata.image"], "app");
    assert!(
        t.read("logs/app.log").contains("hello-from-buildkit"),
        "BuildKit step output reaches the log"
    );
    assert!(t.read("logs/broken.log").contains("going-down"));
    assert!(
        summary(&t, "s.json")["broken"]["error"]
            .as_str()
            .unwrap()
            .contains("exit code: 7"),
        "{:?}",
        summary(&t, "s.json")["broken"]
    );
    assert!(engine::inspect(&ns.reference("broken")).is_none());
}

#[test]
fn engine_colour_codes_never_reach_output_logs_or_junit() {
    if !engine::available("colour codes") {
        return;
    }
    let ns = Namespace::new("colour");
    let t = busybox_tree(&[(
        "colour",
        "FROM {{ image_ref('base') }}\nRUN printf '\\033[31mred-line\\033[0m\\n' && exit 1\n",
    )]);
    let run = t
        .command(&[
            "--set",
            &ns.set(),
            "build",
            "--progress",
            "plain",
            "--logs-dir",
            "logs",
            "--junit",
            "j.xml",
            "--summary",
            "s.json",
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    for (what, text) in [
        ("stderr", stderr),
        ("log", t.read("logs/colour.log")),
        ("junit", t.read("j.xml")),
        ("summary", t.read("s.json")),
    ] {
        assert!(text.contains("red-line"), "{what}: {text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains("\\u001b"),
            "{what} has an escape: {text}"
        );
    }
}

#[test]
fn build_args_platform_no_cache_and_quiet_from_the_command_line() {
    if !engine::available("flags") {
        return;
    }
    let ns = Namespace::new("flags");
    let t = busybox_tree(&[(
        "hello",
        "FROM {{ image_ref('base') }}\nARG GREETING=hi\nRUN echo $GREETING > /g\n",
    )]);
    let set = ns.set();
    let with = |args: &[&str]| {
        let mut all = vec!["--set", set.as_str()];
        all.extend_from_slice(args);
        t.run(&all)
    };
    with(&[
        "build",
        "--build-arg",
        "GREETING=hello",
        "--platform",
        "linux/amd64",
        "-q",
    ])
    .expect(0);
    assert_eq!(
        engine::run_in(&ns.reference("hello"), &["cat", "/g"]).trim(),
        "hello"
    );
    // The same flags to `plan`: nothing to build; without them the arg differs.
    let same = with(&[
        "plan",
        "--build-arg",
        "GREETING=hello",
        "--platform",
        "linux/amd64",
    ])
    .expect(0);
    assert!(same.stdout.contains("0 to build"), "{}", same.stdout);
    let other = with(&["plan", "--platform", "linux/amd64"]).expect(0);
    assert!(
        other.stdout.contains("build arg GREETING"),
        "{}",
        other.stdout
    );
    // --no-cache runs every step afresh; -q prints only the result.
    let fresh = with(&[
        "build",
        "--force",
        "--no-cache",
        "--progress",
        "plain",
        "--build-arg",
        "GREETING=hello",
        "--platform",
        "linux/amd64",
        "hello",
    ])
    .expect(0);
    assert!(!fresh.stderr.contains("Using cache"), "{}", fresh.stderr);
    let quiet = with(&[
        "build",
        "-q",
        "--build-arg",
        "GREETING=hello",
        "--platform",
        "linux/amd64",
    ])
    .expect(0);
    assert_eq!(quiet.stderr.lines().count(), 1, "{}", quiet.stderr);
    let bad = with(&["build", "--build-arg", "NOVALUE"]).expect(2);
    assert!(bad.stderr.contains("is not KEY=VALUE"), "{}", bad.stderr);
    // Two platforms make a multi-platform set; no engine of this run
    // builds Windows images, so nothing builds.
    let two = with(&["build", "--platform", "linux/amd64,windows/amd64"]).expect(2);
    assert!(
        two.stderr
            .contains("no engine of this run builds windows/amd64"),
        "{}",
        two.stderr
    );
}

#[test]
fn a_platform_no_engine_builds_is_refused_before_building() {
    if !engine::available("platform check") {
        return;
    }
    let ns = Namespace::new("platform");
    let t = busybox_tree(&[]);
    let run = t.run(&[
        "--set",
        &ns.set(),
        "build",
        "--platform",
        "windows/amd64",
        "--progress",
        "plain",
    ]);
    // No engine of the run builds Windows images, natively or emulated:
    // refused before anything builds (never "built" with a Linux image
    // tagged as Windows). arm64 is built emulated: tests/multiarch.rs.
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("platforms:"), "{}", run.stderr);
    assert!(
        engine::inspect(&ns.reference("base")).is_none(),
        "nothing tagged"
    );
    eprintln!(
        "{}",
        run.stderr
            .lines()
            .filter(|l| l.contains("windows/amd64"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn failures_are_repeated_after_the_table_and_their_logs_kept() {
    if !engine::available("failure logs") {
        return;
    }
    let ns = Namespace::new("failure-logs");
    let cache = tempfile::tempdir().unwrap();
    let t = busybox_tree(&[(
        "broken",
        "FROM {{ image_ref('base') }}\nRUN echo the-reason-it-broke && exit 3\n",
    )]);
    let run = t
        .command(&["--set", &ns.set(), "build", "--progress", "plain"])
        .env("STRATA_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    // After the closing table: the tail again, and where the whole log is.
    let after = &stderr[stderr.find("images: ").expect("the table")..];
    let line = after
        .lines()
        .find(|l| l.starts_with("broken failed: the last"))
        .unwrap_or_else(|| panic!("{after}"));
    assert!(after.contains("the-reason-it-broke"), "{after}");
    let path = line.split("the whole log: ").nth(1).expect("a path");
    let log = std::fs::read_to_string(path).unwrap();
    assert!(
        log.contains("[1/2] FROM") && log.contains("the-reason-it-broke"),
        "{log}"
    );
    // Only the failed image's log is kept, under the cache folder.
    assert!(std::path::Path::new(path).starts_with(cache.path().join("logs")));
    let dir = std::path::Path::new(path).parent().unwrap();
    let kept: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(kept, ["broken.log"]);
    // A run where nothing fails leaves no folder behind.
    t.remove("images/broken");
    let ok = t
        .command(&["--set", &ns.set(), "build", "--progress", "plain"])
        .env("STRATA_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(
        std::fs::read_dir(cache.path().join("logs"))
            .unwrap()
            .count(),
        1
    );
}

/// Docker contexts as the docker CLI makes them (`docker context create`)
/// choose the engine as they do for the CLI.
#[test]
fn docker_contexts_choose_the_engine_as_for_the_docker_cli() {
    if !engine::available("docker contexts") {
        return;
    }
    let config = tempfile::tempdir().unwrap();
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker(&[
        "context",
        "create",
        "strata-good",
        "--docker",
        "host=unix:///var/run/docker.sock",
    ]);
    docker(&[
        "context",
        "create",
        "strata-bad",
        "--docker",
        "host=unix:///nonexistent/engine.sock",
    ]);
    let t = busybox_tree(&[]);
    let plan = |context: Option<&str>, host: Option<&str>| {
        let mut cmd = t.command(&["plan"]);
        cmd.env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_HOST");
        if let Some(c) = context {
            cmd.env("DOCKER_CONTEXT", c);
        }
        if let Some(h) = host {
            cmd.env("DOCKER_HOST", h);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(plan(Some("strata-good"), None).0, Some(0));
    let (code, err) = plan(Some("strata-bad"), None);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("unix:///nonexistent/engine.sock"), "{err}");
    // `docker context use` sets the current context for both tools.
    docker(&["context", "use", "strata-bad"]);
    let (code, err) = plan(None, None);
    assert_eq!(code, Some(3), "{err}");
    // DOCKER_HOST wins over any context, as for the CLI.
    assert_eq!(plan(None, Some("unix:///var/run/docker.sock")).0, Some(0));
    let (code, err) = plan(Some("no-such-context"), None);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("`no-such-context` does not exist"), "{err}");
}

#[test]
fn target_stages_and_the_build_network() {
    if !engine::available("target and network") {
        return;
    }
    let ns = Namespace::new("target");
    let stages = "FROM {{ image_ref('base') }} AS first\nRUN echo first > /stage\n\
                  FROM {{ image_ref('base') }} AS second\nRUN echo second > /stage\n";
    let t = busybox_tree(&[
        ("staged", stages),
        ("own", stages),
        (
            "offline",
            "FROM {{ image_ref('base') }}\nRUN cat /proc/net/dev > /netdev\n",
        ),
    ]);
    t.write("images/own/image.yaml", "target: second\n");
    let set = ns.set();
    t.run(&[
        "--set",
        &set,
        "build",
        "--target",
        "first",
        "--network",
        "none",
    ])
    .expect(0);
    let cat = |name: &str, file: &str| engine::run_in(&ns.reference(name), &["cat", file]);
    assert_eq!(cat("staged", "/stage").trim(), "first");
    assert_eq!(
        cat("own", "/stage").trim(),
        "second",
        "the image's own target wins"
    );
    assert!(
        !cat("offline", "/netdev").contains("eth0"),
        "built without a network"
    );
    // The target is an input: another one rebuilds; the network is not.
    let plan = t
        .run(&["--set", &set, "plan", "--target", "second"])
        .expect(0);
    assert!(plan.stdout.contains("build  staged"), "{}", plan.stdout);
    assert!(plan.stdout.contains("skip   own"), "{}", plan.stdout);
    let plan = t
        .run(&["--set", &set, "plan", "--target", "first"])
        .expect(0);
    assert!(plan.stdout.contains("0 to build"), "{}", plan.stdout);
}
