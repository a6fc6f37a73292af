//! Regression tests for the defects a hostile tester found (issue "Never
//! stale, never outside the tree, …"), each on the real binary; the ones
//! that build use the real engine.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;

fn busybox(t: &TestTree) {
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{BASE_IMAGE}'}}\n"),
    );
}

/// Defect 1: after `--no-deps` on a stale parent, the child is stale until
/// rebuilt on the current parent, and the run names the stale parent.
#[test]
fn a_child_built_on_a_stale_parent_stays_stale() {
    if !engine::available("a_child_built_on_a_stale_parent") {
        return;
    }
    let ns = Namespace::new("no-deps-stale");
    let t = TestTree::new();
    busybox(&t);
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo v1 > /etc/v\n",
    )
    .write(
        "images/child/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN true\n",
    );
    let set = ns.set();
    t.run(&["--set", &set, "build", "--progress", "plain"])
        .expect(0);
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo v2 > /etc/v\n",
    );
    let run = t
        .run(&[
            "--set",
            &set,
            "build",
            "--no-deps",
            "child",
            "--progress",
            "plain",
        ])
        .expect(0);
    assert!(
        run.stderr
            .contains("stale parents left as they are: `base`"),
        "{}",
        run.stderr
    );
    assert_eq!(
        engine::run_in(&ns.reference("child"), &["cat", "/etc/v"]),
        "v1\n"
    );
    // The next full build must rebuild both.
    let plan = t.run(&["--set", &set, "plan", "--json"]).expect(0);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let actions: Vec<(&str, &str)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("base", "build"), ("child", "build")]);
    t.run(&["--set", &set, "build", "--progress", "plain"])
        .expect(0);
    assert_eq!(
        engine::run_in(&ns.reference("child"), &["cat", "/etc/v"]),
        "v2\n"
    );
    let again = t.run(&["--set", &set, "plan"]).expect(0);
    assert!(again.stdout.contains("0 to build"), "{}", again.stdout);
}

/// Defect 2: every file and folder strata reads resolves inside the tree.
#[test]
fn nothing_outside_the_tree_is_read() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "TOP-SECRET-CONTENT\n").unwrap();
    let secret = outside.path().join("secret");
    type Setup<'a> = Box<dyn Fn(&TestTree) + 'a>;
    let cases: Vec<(&str, Setup, &[&str])> = vec![
        (
            "templates: /etc",
            Box::new(|t: &TestTree| {
                t.write("strata.yaml", "templates: [/etc]\n");
            }),
            &["list"],
        ),
        (
            "templates: ../..",
            Box::new(|t: &TestTree| {
                t.write("strata.yaml", "templates: ['../..']\n");
            }),
            &["list"],
        ),
        (
            "templates folder linked to /",
            Box::new(|t: &TestTree| {
                std::os::unix::fs::symlink("/", t.path().join("templates")).unwrap();
            }),
            &["list"],
        ),
        (
            "image.yaml linked outside",
            Box::new(|t: &TestTree| {
                std::os::unix::fs::symlink(&secret, t.path().join("images/a/image.yaml")).unwrap();
            }),
            &["list"],
        ),
        (
            "Dockerfile linked outside",
            Box::new(|t: &TestTree| {
                std::os::unix::fs::symlink(&secret, t.path().join("images/b/Dockerfile")).unwrap();
            }),
            &["render", "b"],
        ),
        (
            ".dockerignore linked outside",
            Box::new(|t: &TestTree| {
                std::os::unix::fs::symlink(&secret, t.path().join("images/a/.dockerignore"))
                    .unwrap();
            }),
            &["affected", "images/a"],
        ),
    ];
    for (what, setup, args) in cases {
        let t = TestTree::new();
        t.write("strata.yaml", "namespace: x\n")
            .write("images/a/Dockerfile.j2", "FROM debian:12\n");
        std::fs::create_dir_all(t.path().join("images/b")).unwrap();
        setup(&t);
        let run = t.run(args).expect(2);
        assert!(run.stderr.contains("outside the"), "{what}: {}", run.stderr);
        assert!(
            !run.stderr.contains("TOP-SECRET") && !run.stdout.contains("TOP-SECRET"),
            "{what}"
        );
    }
    // A Dockerfile.j2 that is a folder or a dangling link is an error, not a dropped image.
    for kind in ["folder", "dangling"] {
        let t = TestTree::new();
        t.write("strata.yaml", "namespace: x\n")
            .write("images/a/Dockerfile.j2", "FROM debian:12\n");
        let p = t.path().join("images/b/Dockerfile.j2");
        std::fs::create_dir_all(t.path().join("images/b")).unwrap();
        if kind == "folder" {
            std::fs::create_dir(&p).unwrap();
        } else {
            std::os::unix::fs::symlink("no-such-file", &p).unwrap();
        }
        let run = t.run(&["list"]).expect(2);
        assert!(
            run.stderr.contains("images/b/Dockerfile.j2"),
            "{kind}: {}",
            run.stderr
        );
    }
}

/// Defects 4 and 5, and `-j 0`: names and tags Docker refuses are exit 2
/// naming the folder or key, before any engine is contacted.
#[test]
fn names_and_tags_docker_refuses_are_bad_input() {
    let long = "a".repeat(254);
    type Case<'a> = (String, Option<(String, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "namespace: Probe-Bad\n".into(),
            None,
            vec!["build"],
            "Probe-Bad",
        ),
        ("tag: 'UPPER:x'\n".into(), None, vec!["build"], "UPPER:x"),
        (
            "namespace: x\n".into(),
            Some(("images/a/image.yaml".into(), "tags: ['Bad Tag!']\n")),
            vec!["build"],
            "Bad Tag!",
        ),
        (
            "namespace: x\n".into(),
            Some(("images/Child/Dockerfile".into(), "FROM debian\n")),
            vec!["build"],
            "images/Child",
        ),
        (
            "namespace: x\n".into(),
            Some(("images/a b/Dockerfile".into(), "FROM debian\n")),
            vec!["build"],
            "a b",
        ),
        (
            "namespace: x\n".into(),
            Some(("images/-lead/Dockerfile".into(), "FROM debian\n")),
            vec!["build"],
            "-lead",
        ),
        (
            "namespace: x\n".into(),
            Some(("images/a@b/Dockerfile".into(), "FROM debian\n")),
            vec!["build"],
            "a@b",
        ),
        (
            "namespace: x\n".into(),
            Some((format!("images/{long}/Dockerfile"), "FROM debian\n")),
            vec!["build"],
            "255",
        ),
        (
            "build: {platform: 'linux/amd64,linux/arm 64'}\n".into(),
            None,
            vec!["build"],
            "is not a platform",
        ),
        (
            "build: {labels: {'a b': x}}\n".into(),
            None,
            vec!["build"],
            "a b",
        ),
        ("build: {jobs: 0}\n".into(), None, vec!["build"], "jobs"),
        ("namespace: x\n".into(), None, vec!["build", "-j", "0"], "0"),
    ];
    for (config, extra, args, names) in cases {
        let t = TestTree::new();
        t.write("strata.yaml", &config)
            .write("images/a/Dockerfile.j2", "FROM debian:12\n");
        if let Some((path, text)) = &extra {
            t.write(path, text);
        }
        // An engine that cannot be reached: only bad input may be reported.
        let out = t
            .command(&args)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap();
        let run = crate::common::Run::new(out, t.path()).expect(2);
        assert!(
            run.stderr.contains(names),
            "{config} {extra:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("cannot reach"),
            "{config}: {}",
            run.stderr
        );
    }
}

/// Defect 6: an error on a line longer than 65,535 columns never panics.
#[test]
fn errors_on_very_long_lines_do_not_panic() {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "namespace: x\nvars: {{a: '{}', b: [}}\n",
            "y".repeat(70_000)
        ),
    )
    .write("images/a/Dockerfile.j2", "FROM debian:12\n");
    let run = t.run(&["list"]).expect(2);
    assert!(run.stderr.contains("strata.yaml"), "{}", run.stderr);
    t.write("strata.yaml", "namespace: x\n").write(
        "images/a/Dockerfile.j2",
        &format!(
            "FROM debian:12\nRUN echo {} {{{{ nope }}}}\n",
            "y".repeat(70_000)
        ),
    );
    let run = t.run(&["render"]).expect(2);
    assert!(
        run.stderr.contains("undefined variable `nope`"),
        "{}",
        run.stderr
    );
}

/// Defect 7: `--since` is a revision, never a git option; a computed
/// include depends on every template.
#[test]
fn since_is_never_an_option_and_computed_includes_count() {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        "namespace: x\nvars: {snippet: 'snippet.j2'}\n",
    )
    .write(
        "images/a/Dockerfile.j2",
        "FROM debian:12\n{% include snippet %}\n",
    )
    .write("images/b/Dockerfile.j2", "FROM debian:12\n")
    .write("templates/snippet.j2", "RUN true\n");
    let run = t
        .run(&[
            "plan",
            "--since=--output=written-by-git",
            "--engine",
            "sim:none.yaml",
        ])
        .expect(2);
    assert!(run.stderr.contains("is not a revision"), "{}", run.stderr);
    assert!(!t.path().join("written-by-git").exists());
    let run = t.run(&["affected", "templates/snippet.j2"]).expect(0);
    assert_eq!(run.stdout, "a\n");
}

/// Defect 9: the appended LABEL step is its own instruction whatever the
/// escape character and last line, and label values stay literal. The same
/// Dockerfiles build with `docker build` to the same file contents.
#[test]
fn the_label_step_never_breaks_a_valid_dockerfile() {
    if !engine::available("the_label_step_never_breaks") {
        return;
    }
    let ns = Namespace::new("label-step");
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "vars: {{base_image: '{BASE_IMAGE}'}}\nbuild: {{labels: {{dollar: '$HOME ${{a:?x}}', quote: 'say \"hi\" \\\\ `tick`'}}}}\n"
        ),
    )
    .write("images/base/Dockerfile.j2", "FROM {{ base_image }}\nRUN echo base > /etc/b \\\n")
    .write(
        "images/tick/Dockerfile.j2",
        "# escape=`\nFROM {{ image_ref('base') }}\nRUN echo tick > /etc/t `\n  && echo two >> /etc/t `\n",
    );
    let set = ns.set();
    let run = t.run(&["--set", &set, "build", "--progress", "plain"]);
    let run = run.expect(0);
    for image in ["base", "tick"] {
        let (_, labels) = engine::inspect(&ns.reference(image)).unwrap();
        assert_eq!(labels["dollar"], "$HOME ${a:?x}", "{image}: {}", run.stderr);
        assert_eq!(labels["quote"], "say \"hi\" \\\\ `tick`", "{image}");
        assert_eq!(
            labels["io.strata.image"], image,
            "{image} carries its own labels"
        );
    }
    assert_eq!(
        engine::run_in(&ns.reference("tick"), &["cat", "/etc/t"]),
        "tick\ntwo\n"
    );
    // The oracle: docker build of the rendered file, tagged beside ours.
    let out = t.path().join("rendered");
    t.run(&["--set", &set, "render", "--out", "rendered"])
        .expect(0);
    let theirs = format!("{}/tick:docker-build", ns.0);
    let status = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &theirs, "-f"])
        .arg(out.join("tick/Dockerfile"))
        .arg(t.path().join("images/tick"))
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(engine::run_in(&theirs, &["cat", "/etc/t"]), "tick\ntwo\n");
}

/// Defect 10: a template that never ends stops with a clear error.
#[test]
fn a_template_that_never_ends_is_stopped() {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: x\nrender: {fuel: 100000}\n").write(
        "images/a/Dockerfile.j2",
        "FROM debian:12\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n",
    );
    let run = t.run(&["render"]).expect(2);
    assert!(
        run.stderr.contains("image `a`") && run.stderr.contains("render.fuel"),
        "{}",
        run.stderr
    );
}

/// A quoted `<<` is not a heredoc: the `COPY --from` after it still makes
/// its image a parent, so the child is never built before it.
#[test]
fn a_quoted_heredoc_marker_swallows_no_line() {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: hd\n")
        .write(
            "images/tools/Dockerfile",
            "FROM scratch\nCOPY Dockerfile /t\n",
        )
        .write(
            "images/app/Dockerfile.j2",
            "FROM scratch\nRUN echo \"a<<END\" > /x\nCOPY --from={{ image_ref('tools') }} /t /t\n",
        );
    let run = t.run(&["graph", "--format", "json"]).expect(0);
    let graph: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        graph["edges"],
        serde_json::json!([{"from": "tools", "to": "app"}]),
        "{}",
        run.stdout
    );
}
