//! BuildKit, the default builder, on the real engine: the sample set on
//! both builders, `COPY .` sees exactly the context, secrets reach their
//! step and nothing else, SSH agents are forwarded, cache mounts persist.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;
use std::collections::BTreeMap;
use std::process::Command;

fn summary(t: &TestTree, file: &str) -> BTreeMap<String, serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&t.read(file)).expect("summary json");
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

fn tree(images: &[(&str, &str)]) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{BASE_IMAGE}'}}\n"),
    );
    for (name, body) in images {
        t.write(&format!("images/{name}/Dockerfile.j2"), body);
    }
    t
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The sample set on one builder: all built and tested, then a no-op.
fn sample_on(builder: Option<&str>, ns: &Namespace) {
    let t = TestTree::sample();
    let set = ns.set();
    let mut args = vec![
        "--set",
        &set,
        "build",
        "--progress",
        "plain",
        "--summary",
        "s.json",
    ];
    if let Some(b) = builder {
        args.extend(["--builder", b]);
    }
    let run = t.run(&args).expect(0);
    let s = summary(&t, "s.json");
    let want = builder.unwrap_or("buildkit");
    for (name, image) in &s {
        assert_eq!(image["status"], "built", "{name}: {}", run.stderr);
        assert_eq!(image["builder"], want, "{name}");
        assert!(
            image["tests"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["passed"] == true),
            "{name}: {}",
            image["tests"]
        );
    }
    // `docker history` says which builder made the layers.
    let history = docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}",
        &ns.reference("keystone"),
    ]);
    assert_eq!(
        history.lines().any(|c| c == "buildkit.dockerfile.v0"),
        want == "buildkit",
        "{history}"
    );
    let again = t.run(&args).expect(0);
    assert!(
        again.stderr.contains("13 images: 13 up-to-date"),
        "{}",
        again.stderr
    );
}

#[test]
fn the_sample_set_builds_on_buildkit_by_default_and_on_classic_when_asked() {
    if !engine::available("buildkit default") {
        return;
    }
    sample_on(None, &Namespace::new("bk-default"));
    sample_on(Some("classic"), &Namespace::new("bk-classic"));
}

#[test]
fn copy_dot_copies_the_context_and_nothing_strata_adds() {
    if !engine::available("buildkit context") {
        return;
    }
    let ns = Namespace::new("bk-context");
    let t = tree(&[("app", "FROM {{ base_image }}\nCOPY . /ctx/\n")]);
    t.write(
        "images/app/.dockerignore",
        "*.log\n!logs/keep.log\nsub/secret*\n",
    );
    for f in [
        "a.txt",
        "b.log",
        "sub/c.txt",
        "sub/secret.key",
        "logs/x.log",
        "logs/keep.log",
    ] {
        t.write(&format!("images/app/{f}"), f);
    }
    for builder in ["buildkit", "classic"] {
        t.run(&["--set", &ns.set(), "build", "--force", "--builder", builder])
            .expect(0);
        let listing = engine::run_in(&ns.reference("app"), &["find", "/ctx"]);
        let mut got: Vec<&str> = listing.lines().collect();
        got.sort();
        // Docker's rules: `*.log` is the top level only; `!logs/keep.log`
        // is moot (logs/ is not excluded); `sub/secret*` goes.
        assert_eq!(
            got,
            [
                "/ctx",
                "/ctx/Dockerfile.j2",
                "/ctx/a.txt",
                "/ctx/logs",
                "/ctx/logs/keep.log",
                "/ctx/logs/x.log",
                "/ctx/sub",
                "/ctx/sub/c.txt",
            ],
            "{builder}"
        );
    }
}

fn sha256(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Every file under `dir`, read whole.
fn all_text(dir: &std::path::Path) -> String {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).to_string())
        .collect()
}

#[test]
fn a_secret_reaches_its_step_and_nothing_else() {
    if !engine::available("buildkit secret") {
        return;
    }
    let ns = Namespace::new("bk-secret");
    let t = tree(&[(
        "app",
        "FROM {{ base_image }}\nRUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -d' ' -f1 > /token.sha\n",
    )]);
    let value = format!("s3cret-{}-value", std::process::id());
    t.write("token.txt", &value);
    let secret = format!("id=token,src={}", t.path().join("token.txt").display());
    let set = ns.set();
    let build = |extra: &[&str]| {
        let mut args = vec!["--set", &set, "build", "--progress", "plain"];
        args.extend([
            "--secret",
            &secret,
            "--summary",
            "s.json",
            "--junit",
            "j.xml",
        ]);
        args.extend([
            "--logs-dir",
            "logs",
            "--metadata-file",
            "m.json",
            "--timeline",
            "t.html",
        ]);
        args.extend(extra);
        t.run(&args)
    };
    let run = build(&[]).expect(0);
    let image = ns.reference("app");
    assert_eq!(
        engine::run_in(&image, &["cat", "/token.sha"]).trim(),
        sha256(&value)
    );
    // Nowhere else: the image's file system, history, labels, reports, logs, output.
    let saved = Command::new("docker")
        .args(["save", &image])
        .output()
        .unwrap()
        .stdout;
    assert!(
        !String::from_utf8_lossy(&saved).contains(&value),
        "in `docker save`"
    );
    let history = docker(&["history", "--no-trunc", &image]);
    let inspect = docker(&["image", "inspect", &image]);
    for (what, text) in [
        ("history", history),
        ("inspect", inspect),
        (
            "reports and logs",
            all_text(&t.path().join("logs"))
                + &t.read("s.json")
                + &t.read("j.xml")
                + &t.read("m.json")
                + &t.read("t.html"),
        ),
        ("output", run.stderr.clone() + &run.stdout),
    ] {
        assert!(
            !text.contains(&value),
            "the secret's value is in the {what}"
        );
    }
    // Its value is not an input: a new one builds nothing, and plan says so.
    t.write("token.txt", "another-value");
    let plan = t
        .run(&["--set", &ns.set(), "plan", "--secret", &secret])
        .expect(0);
    assert!(plan.stdout.contains("0 to build"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("secret `token` changed since this image was built"),
        "{}",
        plan.stdout
    );
    build(&["--force"]).expect(0);
    assert_eq!(
        engine::run_in(&image, &["cat", "/token.sha"]).trim(),
        sha256("another-value")
    );
    // Its id is: without the secret the image is stale.
    let plan = t.run(&["--set", &ns.set(), "plan", "--json"]).expect(0);
    assert!(
        plan.stdout.contains("\"action\": \"build\""),
        "{}",
        plan.stdout
    );
    // A missing source is exit 2 before anything builds.
    let missing = t
        .run(&[
            "--set",
            &ns.set(),
            "build",
            "--secret",
            "id=token,src=nope.txt",
        ])
        .expect(2);
    assert!(
        missing.stderr.contains("secret `token`"),
        "{}",
        missing.stderr
    );
    let unset = t
        .run(&[
            "--set",
            &ns.set(),
            "build",
            "--secret",
            "id=token,env=STRATA_NO_SUCH_VAR",
        ])
        .expect(2);
    assert!(
        unset.stderr.contains("STRATA_NO_SUCH_VAR"),
        "{}",
        unset.stderr
    );
}

#[test]
fn a_cache_mount_keeps_files_between_images() {
    if !engine::available("buildkit cache mount") {
        return;
    }
    let ns = Namespace::new("bk-cache");
    let step = |name: &str| {
        format!("RUN --mount=type=cache,id=strata-test-{},target=/cache echo {name} >> /cache/seen && cp /cache/seen /seen\n", std::process::id())
    };
    let t = tree(&[
        (
            "first",
            &format!("FROM {{{{ base_image }}}}\n{}", step("first")),
        ),
        (
            "second",
            &format!("FROM {{{{ image_ref('first') }}}}\n{}", step("second")),
        ),
    ]);
    t.run(&["--set", &ns.set(), "build", "--no-tests"])
        .expect(0);
    assert_eq!(
        engine::run_in(&ns.reference("second"), &["cat", "/seen"]),
        "first\nsecond\n"
    );
}

#[test]
fn ssh_agents_are_forwarded_and_no_key_is_kept() {
    if !engine::available("buildkit ssh") {
        return;
    }
    let debian = "strata-ci/debian:bookworm";
    if engine::inspect(debian).is_none() {
        let msg = format!("buildkit ssh: needs `{debian}` (run ci/setup.sh)");
        assert!(std::env::var("CI").is_err(), "{msg}");
        eprintln!("SKIPPED {msg}");
        return;
    }
    let ns = Namespace::new("bk-ssh");
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{debian}'}}\n"),
    );
    t.write(
        "images/tools/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-client >/dev/null\n",
    );
    t.write(
        "images/keys/Dockerfile.j2",
        // The key is new each run; the engine's cache must not answer for it.
        &format!(
            "FROM {{{{ image_ref('tools') }}}}\nRUN echo {}\nRUN --mount=type=ssh ssh-add -l > /default-keys\nRUN --mount=type=ssh,id=deploy ssh-add -l > /deploy-keys\n",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ),
    );
    let key = t.path().join("id_test");
    let ok = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "strata-test-key",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen");
    // `default` is the caller's agent; `deploy=KEY` an agent of the run's own.
    let sock = t.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let deploy = format!("deploy={}", key.display());
    let run = t
        .command(&[
            "--set",
            &ns.set(),
            "build",
            "--no-tests",
            "--ssh",
            "default",
            "--ssh",
            &deploy,
        ])
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{err}");
    let fingerprint = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout);
    let fingerprint = fingerprint.split_whitespace().nth(1).unwrap();
    let image = ns.reference("keys");
    for file in ["/default-keys", "/deploy-keys"] {
        let listed = engine::run_in(&image, &["cat", file]);
        assert!(
            listed.contains(fingerprint) && listed.contains("strata-test-key"),
            "{file}: {listed}"
        );
    }
    let private = std::fs::read_to_string(&key).unwrap();
    let body = private.lines().nth(1).unwrap();
    let saved = Command::new("docker")
        .args(["save", &image])
        .output()
        .unwrap()
        .stdout;
    assert!(
        !String::from_utf8_lossy(&saved).contains(body),
        "the key is in the image"
    );
    // The run's own agent is gone with the run.
    let leftover = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .any(|e| {
            e.file_name().to_string_lossy().starts_with("strata-ssh-")
                && e.path().join("agent.sock").exists()
        });
    assert!(!leftover, "an agent of strata's is still there");
}

#[test]
fn a_frontend_the_engine_cannot_get_is_a_clear_error() {
    if !engine::available("buildkit syntax") {
        return;
    }
    let ns = Namespace::new("bk-syntax");
    let t = tree(&[(
        "app",
        "# syntax=strata-test.invalid/no/such-frontend:1\nFROM {{ base_image }}\nRUN true\n",
    )]);
    let run = t
        .run(&["--set", &ns.set(), "build", "--summary", "s.json"])
        .expect(1);
    let s = summary(&t, "s.json");
    let error = s["app"]["error"].as_str().unwrap();
    assert!(
        error.contains("names a Dockerfile frontend image the engine cannot get"),
        "{error}\n{}",
        run.stderr
    );
}

#[test]
fn the_same_tree_in_two_namespaces_builds_each_on_its_own_parent() {
    if !engine::available("buildkit namespaces") {
        return;
    }
    // Same content, names of the same length: the child's fingerprint is the
    // same in both (parents count by fingerprint), its Dockerfile is not.
    let (one, two) = (Namespace::new("bk-ns-1"), Namespace::new("bk-ns-2"));
    let t = tree(&[
        (
            "base",
            "FROM {{ base_image }}\nRUN echo {{ namespace }} > /ns\n",
        ),
        ("app", "FROM {{ image_ref('base') }}\nRUN cat /ns > /seen\n"),
    ]);
    for ns in [&one, &two] {
        t.run(&["--set", &ns.set(), "build", "--no-tests"])
            .expect(0);
        assert_eq!(
            engine::run_in(&ns.reference("app"), &["cat", "/seen"]).trim(),
            ns.0
        );
    }
}

/// Whether a process whose command line holds `needle` runs on this machine
/// (a BuildKit step's processes are the engine's children, not containers).
fn running(needle: &str) -> bool {
    let out = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains(needle) && !l.contains("ps -eo"))
}

#[test]
fn ctrl_c_cancels_the_buildkit_build_itself() {
    if !engine::available("buildkit interrupt") {
        return;
    }
    let ns = Namespace::new("bk-interrupt");
    // A sleep no other test runs, to find it among the engine's processes.
    let seconds = 3000 + std::process::id() % 997;
    // `woke-$((40 + 2))` prints `woke-42` only once the step runs.
    let t = tree(&[(
        "sleepy",
        &format!(
            "FROM {{{{ base_image }}}}\nRUN echo {} && echo woke-$((40 + 2)) && sleep {seconds}\n",
            crate::common::nonce()
        ),
    )]);
    let mut run = crate::common::Running::spawn(t.command(&[
        "--set",
        &ns.set(),
        "build",
        "--progress",
        "plain",
        "--summary",
        "s.json",
    ]));
    run.wait_for("woke-42", 60);
    let needle = format!("sleep {seconds}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !running(&needle) {
        assert!(std::time::Instant::now() < deadline, "the step never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, 130, "{stderr}");
    assert_eq!(summary(&t, "s.json")["sleepy"]["status"], "cancelled");
    // The engine stops the build when its client goes: the step is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while running(&needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "the step still runs after Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        engine::inspect(&ns.reference("sleepy")).is_none(),
        "nothing tagged"
    );
}
