//! strata's `.dockerignore` matcher against the engine itself: the Docker
//! CLI's classic builder copies a context with `COPY . /ctx/` into a
//! `FROM scratch` image; what arrived must be exactly what strata keeps.

use crate::common::engine;
use std::collections::BTreeSet;
use std::process::Command;

const PATHS: &[&str] = &[
    "a.txt",
    "b.md",
    "README.md",
    "docs/guide.md",
    "docs/api/ref.md",
    "docs/keep.txt",
    "src/main.rs",
    "src/lib.rs",
    "src/nested/deep/x.rs",
    "build/out.bin",
    "build/keep/important.txt",
    ".env",
    "secret.key",
    "logs/a.log",
    "logs/b.log",
    "logs/keep.log",
    "tmp/x",
    "tmp/y/z",
    "star*file",
    "q?mark",
    "space name.txt",
    "data/1.csv",
    "data/2.csv",
    "data/archive/3.csv",
    "node_modules/pkg/index.js",
    "node_modules/pkg/README.md",
    "vendor/a/b/c.txt",
    "x/y/z/w.txt",
    "x/w.txt",
    "[x].txt",
];

const RULES: &[&str] = &[
    "*.md",
    "**/*.md",
    "docs\n!docs/keep.txt",
    "!docs/keep.txt\ndocs",
    "build\n!build/keep",
    "/src/nested\nlogs/*.log\n!logs/keep.log",
    "?.txt\ntmp/**",
    "star\\*file\nq\\?mark\n\\[x\\].txt",
    "**\n!src\n!Dockerfile",
    "data/*.csv\nnode_modules\nvendor/**/c.txt\n./.env\nsecret.*",
    "x/**/w.txt\n# comment\n  space name.txt  \n",
    "*/\n!docs/api",
    "**/keep*\n!build/keep/important.txt",
    "link",
];

fn engine_copy(dir: &std::path::Path, tag: &str) -> BTreeSet<String> {
    // No cache: a cached `COPY` image can be removed by another test's
    // cleanup between the builder finding it and using it ("unable to find
    // image sha256:…", seen once in a full run).
    let build = Command::new("docker")
        .args(["build", "--no-cache", "-q", "-t", tag, "."])
        .current_dir(dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let create = Command::new("docker")
        .args(["create", tag, "/none"])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&create.stdout).trim().to_string();
    let export = Command::new("sh")
        .arg("-c")
        .arg(format!("docker export {id} | tar -t"))
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rm", &id]).output();
    let _ = Command::new("docker").args(["rmi", tag]).output();
    String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("ctx/"))
        .filter(|l| !l.is_empty() && !l.ends_with('/'))
        .filter(|l| *l != "Dockerfile" && *l != ".dockerignore")
        .map(str::to_string)
        .collect()
}

#[test]
fn dockerignore_matches_the_engine() {
    if !engine::available("dockerignore_oracle") {
        return;
    }
    // Rule sets under which the engine left files out: the oracle must
    // discriminate, not agree on copying everything.
    let mut excluding = 0;
    for (k, rules) in RULES.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        for p in PATHS {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, p).unwrap();
        }
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY . /ctx/\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".dockerignore"), rules).unwrap();
        let ours: BTreeSet<String> = strata::context_entries(dir.path())
            .unwrap()
            .into_iter()
            .filter(|e| !matches!(e.kind, strata::EntryKind::Dir))
            .map(|e| e.rel)
            .filter(|r| r != "Dockerfile")
            .collect();
        let theirs = engine_copy(
            dir.path(),
            &format!("strata-test-oracle-{}-{k}", std::process::id()),
        );
        assert_eq!(
            ours, theirs,
            "rules {rules:?}: strata keeps (left), the engine copied (right)"
        );
        if theirs.len() < PATHS.len() + 1 {
            excluding += 1;
        }
    }
    assert_eq!(excluding, RULES.len(), "every rule set excludes something");
}
