//! `strata affected PATH...` and `--since REV`: which images a change touches.

use crate::common::TestTree;

fn affected(t: &TestTree, paths: &[&str]) -> Vec<String> {
    let mut args = vec!["affected", "--json"];
    args.extend(paths);
    let run = t.run(&args).expect(0);
    serde_json::from_str(&run.stdout).unwrap()
}

fn tree() -> TestTree {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: ns\n");
    t.write(
        "images/a/Dockerfile.j2",
        "FROM debian\n{% include 'x.j2' %}\n",
    );
    t.write("images/a/files/run.sh", "echo a\n");
    t.write("images/a/files/notes.md", "notes\n");
    t.write("images/a/.dockerignore", "**/*.md\n");
    t.write(
        "images/b/Dockerfile.j2",
        "FROM debian\n{% import 'y.j2' as y %}\n{{ y.m() }}\n",
    );
    t.write("images/c/Dockerfile.j2", "FROM {{ image_ref('a') }}\n");
    t.write("images/group/d/Dockerfile", "FROM debian\n");
    t.write("images/group/d/image.yaml", "args: {X: '1'}\n");
    t.write("templates/x.j2", "{% include 'z.j2' %}\n");
    t.write("templates/y.j2", "{% macro m() %}RUN true{% endmacro %}\n");
    t.write("templates/z.j2", "RUN echo z\n");
    t
}

#[test]
fn paths_map_to_images_and_their_descendants() {
    let t = tree();
    assert_eq!(affected(&t, &["templates/x.j2"]), ["a", "c"]);
    assert_eq!(
        affected(&t, &["templates/z.j2"]),
        ["a", "c"],
        "templates included by included templates count"
    );
    assert_eq!(
        affected(&t, &["templates/y.j2"]),
        ["b"],
        "imported macros count"
    );
    assert_eq!(affected(&t, &["images/a/files/run.sh"]), ["a", "c"]);
    assert_eq!(
        affected(&t, &["images/a/files/notes.md"]),
        Vec::<String>::new(),
        ".dockerignore'd files change nothing"
    );
    assert_eq!(affected(&t, &["images/a/.dockerignore"]), ["a", "c"]);
    assert_eq!(affected(&t, &["images/group/d/image.yaml"]), ["d"]);
    assert_eq!(
        affected(&t, &["images/group"]),
        ["d"],
        "a folder affects what is inside it"
    );
    assert_eq!(affected(&t, &["./images/c/"]), ["c"]);
    assert_eq!(affected(&t, &["strata.yaml"]), ["a", "b", "c", "d"]);
    assert_eq!(affected(&t, &["README.md"]), Vec::<String>::new());
}

#[test]
fn since_selects_what_changed_in_git() {
    let t = tree();
    t.write("sim.yaml", "default_ms: 1\n");
    let git = |args: &[&str]| crate::common::git(t.path(), args);
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "init"]);
    let plan = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["plan", "--json", "--engine", "sim:sim.yaml"];
        args.extend(extra);
        let run = t.run(&args).expect(0);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        plan(&["--since", "HEAD"]),
        Vec::<String>::new(),
        "nothing changed"
    );
    t.write("templates/y.j2", "{% macro m() %}RUN false{% endmacro %}\n");
    assert_eq!(plan(&["--since", "HEAD"]), ["b"]);
    t.write("images/a/files/new.sh", "untracked\n");
    assert_eq!(
        plan(&["--since", "HEAD"]),
        ["a", "b", "c"],
        "untracked files count"
    );
    assert_eq!(
        plan(&["--since", "HEAD", "c"]),
        ["a", "c"],
        "selectors narrow it; stale parents still come first"
    );
    let run = t
        .run(&["plan", "--since", "no-such-rev", "--engine", "sim:sim.yaml"])
        .expect(2);
    assert!(run.stderr.contains("--since no-such-rev"), "{}", run.stderr);
}
