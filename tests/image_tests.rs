//! Image tests gate the publish (real engine, the htpasswd registry on
//! loopback): the sample set's tests pass; a failing test fails its image,
//! its descendants are not built, nothing of theirs reaches the registry,
//! and JUnit gets a test case per image test. A test file is an input of
//! the verdict only: editing it re-runs tests without a rebuild. Bad test
//! files are exit 2 before anything is built.

use crate::common::engine::{self, Namespace};
use crate::common::TestTree;
use crate::push::{docker_config, manifest_digest, registry};

const FAILING: &str = r#"schemaVersion: 2.0.0
commandTests:
  - name: keystone-base has a glance user
    command: grep
    args: ["^glance:", "/etc/passwd"]
    expectedOutput: ["glance"]
"#;

#[test]
fn a_failing_test_keeps_its_image_and_descendants_out_of_the_registry() {
    let Some(r) = registry() else { return };
    if !engine::available("failing_image_test") {
        return;
    }
    let ns = Namespace::new("failing-image-test");
    let t = TestTree::sample();
    t.write(
        "images/keystone/keystone-base/image.yaml",
        "tests: [failing.yaml]\n",
    )
    .write("images/keystone/keystone-base/failing.yaml", FAILING);
    let config = docker_config(&r.host, &r.user, &r.password);
    let out = t
        .command(&[
            "--set",
            &format!("registry={}", r.host),
            "--set",
            &ns.set(),
            "--set",
            "build.publish=each",
            "build",
            "--push",
            "--progress",
            "plain",
            "--summary",
            "s.json",
            "--junit",
            "j.xml",
        ])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("image test `keystone-base has a glance user`"),
        "{err}"
    );
    assert!(
        err.contains("not found in output"),
        "says what was expected and what came: {err}"
    );

    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    let status = |name: &str| {
        summary["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{name} in the summary"))
            .clone()
    };
    assert_eq!(status("keystone-base")["status"], "failed");
    for child in ["keystone", "keystone-fernet", "keystone-ssh"] {
        assert_eq!(status(child)["status"], "parent-failed", "{child}");
    }
    let base = status("base");
    assert_eq!(base["status"], "built");
    let tests = base["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 4, "{tests:?}");
    assert!(tests
        .iter()
        .all(|t| t["passed"] == true && t["duration_s"].is_number()));
    let failed = status("keystone-base");
    let failing: Vec<&serde_json::Value> = failed["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["passed"] == false)
        .collect();
    assert_eq!(failing.len(), 1);
    assert!(failing[0]["message"]
        .as_str()
        .unwrap()
        .contains("Expected string 'glance'"));

    // The registry: passing images under their release tags, the failing
    // one and its descendants under no tag at all.
    let repo = |name: &str| format!("{}/{name}", ns.0);
    for name in ["base", "openstack-base", "nova-api", "horizon"] {
        assert!(
            manifest_digest(&r, &repo(name), "latest").is_some(),
            "{name} published"
        );
    }
    for name in ["keystone-base", "keystone", "keystone-ssh"] {
        assert!(
            manifest_digest(&r, &repo(name), "latest").is_none(),
            "{name} not published"
        );
    }
    let fp = failed["fingerprint"].as_str().unwrap();
    assert!(
        manifest_digest(&r, &repo("keystone-base"), &format!("fp-{}", &fp[..24])).is_none(),
        "not even its content tag"
    );
    // Nor tagged on the engine.
    assert!(engine::inspect(&ns.reference("keystone-base")).is_none());

    // JUnit: one case per image test, classname the image.
    let junit = t.read("j.xml");
    assert!(
        junit.contains(r#"<testsuite name="strata image tests""#),
        "{junit}"
    );
    assert!(
        junit.contains(
            r#"<testcase classname="keystone-base" name="keystone-base has a glance user""#
        ),
        "{junit}"
    );
    assert!(
        junit.contains(r#"<testcase classname="horizon" name="build args reach the config""#),
        "{junit}"
    );
    assert!(junit.contains(r#"type="image test""#), "{junit}");
}

fn small(ns: &Namespace) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("namespace: {}\nvars: {{base_image: '{}'}}\n", ns.0, engine::BASE_IMAGE),
    )
    .write("images/app/Dockerfile.j2", "FROM {{ base_image }}\nCOPY . /app/\n")
    .write("images/app/image.yaml", "tests: [tests.yaml]\n")
    .write(
        "images/app/tests.yaml",
        "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: image.yaml copied\n    path: /app/image.yaml\n",
    );
    t
}

fn summary_of(t: &TestTree) -> serde_json::Value {
    serde_json::from_str(&t.read("s.json")).unwrap()
}

#[test]
fn editing_a_test_reruns_the_tests_and_rebuilds_nothing() {
    if !engine::available("edit_image_test") {
        return;
    }
    let ns = Namespace::new("edit-image-test");
    let t = small(&ns);
    // Verdicts are remembered per fingerprint: a cache folder of its own,
    // or an earlier run of this test would have passed these tests already.
    let cache = tempfile::tempdir().unwrap();
    let run = |t: &TestTree, args: &[&str]| {
        let out = t
            .command(args)
            .env("STRATA_CACHE_DIR", cache.path())
            .output()
            .unwrap();
        crate::common::Run::new(out, t.path())
    };
    let build = |t: &TestTree| {
        run(
            t,
            &[
                "--set",
                &ns.set(),
                "build",
                "--progress",
                "plain",
                "--summary",
                "s.json",
            ],
        )
        .expect(0)
    };
    build(&t);
    let first = summary_of(&t);
    assert_eq!(first["images"][0]["status"], "built");
    assert_eq!(first["images"][0]["tests"].as_array().unwrap().len(), 1);
    let id = engine::inspect(&ns.reference("app")).unwrap().0;
    // The test file is not in the image: not sent with the context.
    let ls = engine::run_in(&ns.reference("app"), &["ls", "/app"]);
    assert!(!ls.contains("tests.yaml"), "{ls}");

    // Unchanged: no build, no test.
    build(&t);
    let again = summary_of(&t);
    assert_eq!(again["images"][0]["status"], "up-to-date");
    assert!(again["images"][0]["tests"].as_array().unwrap().is_empty());

    // A test edited: tested again on the same image, not rebuilt.
    t.write(
        "images/app/tests.yaml",
        "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: image.yaml copied\n    path: /app/image.yaml\n  - name: template copied\n    path: /app/Dockerfile.j2\n",
    );
    let plan = run(&t, &["--set", &ns.set(), "plan"]).expect(0);
    assert!(plan.stdout.contains("test   app"), "{}", plan.stdout);
    let affected = t.run(&["affected", "images/app/tests.yaml"]).expect(0);
    assert!(
        affected.stdout.trim().is_empty(),
        "a test file rebuilds nothing: {}",
        affected.stdout
    );
    let run = build(&t);
    assert!(
        run.stderr.contains("up to date; ✓ 2 tests"),
        "{}",
        run.stderr
    );
    let edited = summary_of(&t);
    assert_eq!(edited["images"][0]["status"], "up-to-date");
    assert_eq!(edited["images"][0]["tests"].as_array().unwrap().len(), 2);
    assert_eq!(
        engine::inspect(&ns.reference("app")).unwrap().0,
        id,
        "not rebuilt"
    );
    build(&t);
    assert!(summary_of(&t)["images"][0]["tests"]
        .as_array()
        .unwrap()
        .is_empty());

    // `strata test` runs them again; a failing one is exit 1 and says which.
    t.write(
        "images/app/tests.yaml",
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: wrong answer\n    command: echo\n    args: ['41']\n    expectedOutput: ['^42']\n",
    );
    let run = t.run(&[
        "--set",
        &ns.set(),
        "test",
        "--summary",
        "s.json",
        "--junit",
        "j.xml",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("image test `wrong answer`"),
        "{}",
        run.stderr
    );
    assert!(t
        .read("j.xml")
        .contains("Expected string &apos;^42&apos; not found in output &apos;41"));
    // --no-tests: skipped, and the summary says so.
    t.run(&[
        "--set",
        &ns.set(),
        "build",
        "--no-tests",
        "--summary",
        "s.json",
    ])
    .expect(0);
    assert_eq!(summary_of(&t)["tests_skipped"], true);
    // Nothing left behind by the tests.
    let left = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("ancestor={}", ns.reference("app")),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty());
}

/// Bad test files: exit 2 naming the file and line, before the engine is asked.
#[test]
fn bad_test_files_are_exit_2_with_file_and_line() {
    let cases = [
        ("schemaVersion: 2.0.0\ncommandTests:\n  - name: x\n    command: true\n    expectedOutputs: [a]\n", "unknown key `expectedOutputs`", "tests.yaml:5"),
        ("schemaVersion: 2.0.0\ncommandTests:\n  - name: x\n    command: echo\n    expectedOutput: ['(unclosed']\n", "invalid regular expression `(unclosed`", "tests.yaml:5"),
        ("schemaVersion: 1.0.0\n", "unknown schemaVersion `1.0.0`", "tests.yaml:1"),
        ("schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: x\n    path: /x\n    isExecutableBy: everyone\n", "isExecutableBy: everyone", "tests.yaml:5"),
    ];
    for (text, message, place) in cases {
        let t = TestTree::new();
        t.write(
            "strata.yaml",
            "namespace: bad\nvars: {base_image: 'strata-ci/busybox:latest'}\n",
        )
        .write("images/app/Dockerfile.j2", "FROM {{ base_image }}\n")
        .write("images/app/image.yaml", "tests: [tests.yaml]\n")
        .write("images/app/tests.yaml", text);
        // An unreachable engine: the error comes first, nothing is asked.
        let out = t
            .command(&["build"])
            .env(
                "DOCKER_HOST",
                format!("tcp://{}", crate::common::closed_address()),
            )
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{message}: {err}");
        assert!(err.contains(message), "{err}");
        assert!(
            err.contains(&format!("images/app/{place}")),
            "{place}: {err}"
        );
    }
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        "vars: {base_image: 'strata-ci/busybox:latest'}\nbuild: {tests: [nowhere.yaml]}\n",
    )
    .write("images/app/Dockerfile.j2", "FROM {{ base_image }}\n");
    let run = t.run(&["plan"]).expect(2);
    assert!(
        run.stderr
            .contains("image test file `nowhere.yaml` does not exist"),
        "{}",
        run.stderr
    );
}
