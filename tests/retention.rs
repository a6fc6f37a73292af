//! Retention on a real registry (Debian's docker-registry with deletion
//! enabled and htpasswd auth, from ci/setup.sh): a repository filled with
//! master, branch, release, exception and content-tag builds of faked ages
//! (the creation label set at build time) loses exactly the old branch and
//! content tags; a digest a branch tag shares with `master` survives; a
//! dry run deletes nothing; a registry without deletion is exit 3 and keeps
//! everything.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;
use crate::push::{docker_config, registry, Registry};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Build an image created at `created` and push it as `repo:tag` (and
/// `repo:also` for each of `also`).
fn push(repo: &str, tags: &[&str], created: &str, config: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {BASE_IMAGE}\nLABEL org.opencontainers.image.created=\"{created}\" unique=\"{repo}:{}\"\n", tags[0]),
    )
    .unwrap();
    let first = format!("{repo}:{}", tags[0]);
    let ok = Command::new("docker")
        .args(["build", "-q", "-t", &first])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for tag in tags {
        let r = format!("{repo}:{tag}");
        Command::new("docker")
            .args(["tag", &first, &r])
            .output()
            .unwrap();
        let out = Command::new("docker")
            .args(["--config"])
            .arg(config)
            .args(["push", &r])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "push {r}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for tag in tags {
        Command::new("docker")
            .args(["rmi", &format!("{repo}:{tag}")])
            .output()
            .unwrap();
    }
}

fn tags_in(r: &Registry, host: &str, repo_path: &str, auth: bool) -> BTreeSet<String> {
    let mut cmd = Command::new("curl");
    cmd.arg("-s");
    if auth {
        cmd.args(["-u", &format!("{}:{}", r.user, r.password)]);
    }
    let out = cmd
        .arg(format!("http://{host}/v2/{repo_path}/tags/list"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn tree(host: &str, ns: &Namespace) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{host}'\nnamespace: {}\nvars: {{base_image: '{BASE_IMAGE}'}}\nretention:\n  keep: [latest, master, \"stable-*\"]\n  max_age: 7d\n",
            ns.0
        ),
    )
    .write("images/app/Dockerfile.j2", "FROM {{ base_image }}\n");
    t
}

#[test]
fn prune_deletes_exactly_the_old_unkept_tags() {
    let Some(r) = registry() else { return };
    if !engine::available("retention") {
        return;
    }
    let ns = Namespace::new("retention");
    let config = docker_config(&r.host, &r.user, &r.password);
    let repo_path = format!("{}/app", ns.0);
    let repo = format!("{}/{repo_path}", r.host);
    let now = time::OffsetDateTime::now_utc();
    let old = rfc3339(now - time::Duration::days(30));
    let young = rfc3339(now - time::Duration::days(1));
    push(&repo, &["master", "feature-shared"], &old, config.path());
    push(&repo, &["feature-old"], &old, config.path());
    push(&repo, &["feature-new"], &young, config.path());
    push(&repo, &["stable-2026.1"], &old, config.path());
    push(&repo, &["exception"], &old, config.path());
    push(&repo, &["fp-0123456789abcdef01234567"], &old, config.path());
    push(&repo, &["latest"], &old, config.path());
    let all = tags_in(&r, &r.host, &repo_path, true);
    assert_eq!(all.len(), 8, "{all:?}");

    let t = tree(&r.host, &ns);
    let strata = |args: &[&str]| {
        t.command(args)
            .env("DOCKER_CONFIG", config.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // The exception: kept for good.
    let out = strata(&["keep", "app:exception"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{repo}:keep-exception -> sha256:"))
    );

    // A dry run: the table, nothing deleted.
    let out = strata(&["prune", "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let line = |tag: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(tag))
            .unwrap_or_else(|| panic!("{tag} in\n{table}"))
            .to_string()
    };
    assert!(line("feature-old").contains("would delete"), "{table}");
    assert!(
        line("feature-old").contains("older than 7d: 30d old"),
        "{table}"
    );
    assert!(
        line("fp-0123456789abcdef01234567").contains("would delete"),
        "{table}"
    );
    assert!(
        line("feature-shared").contains("kept: shared with `master`"),
        "{table}"
    );
    assert!(line("master").contains("kept: matches `master`"), "{table}");
    assert!(
        line("stable-2026.1").contains("kept: matches `stable-*`"),
        "{table}"
    );
    assert!(
        line("keep-exception").contains("kept: marked with `strata keep`"),
        "{table}"
    );
    assert!(
        line("exception").contains("kept: shared with `keep-exception`"),
        "{table}"
    );
    assert!(line("feature-new").contains("kept: 1d old"), "{table}");
    assert_eq!(
        tags_in(&r, &r.host, &repo_path, true).len(),
        9,
        "a dry run deletes nothing"
    );

    // Without --yes nothing is deleted, terminal or not (a CI job that
    // meant --dry-run must not delete).
    let out = strata(&["prune"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing was deleted (run with --yes to delete)"),
        "{err}"
    );
    assert_eq!(tags_in(&r, &r.host, &repo_path, true).len(), 9);

    // For real: exactly the two old, unkept tags go.
    let out = strata(&["prune", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = tags_in(&r, &r.host, &repo_path, true);
    let expected: BTreeSet<String> = [
        "master",
        "feature-shared",
        "feature-new",
        "stable-2026.1",
        "exception",
        "keep-exception",
        "latest",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(left, expected);
    // `--keep` adds a glob for one run; nothing else is old and unkept now.
    let out = strata(&["prune", "--yes", "--keep", "feature-*"]);
    assert!(out.status.success());
    assert_eq!(tags_in(&r, &r.host, &repo_path, true), expected);
}

#[test]
fn a_registry_that_does_not_delete_is_exit_3_and_keeps_everything() {
    if !engine::available("retention_no_delete") {
        return;
    }
    if Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_err()
    {
        let msg = "needs Debian's docker-registry (run through ci/test.sh)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED {msg}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::closed_address();
    std::fs::write(
        dir.path().join("config.yml"),
        format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: \"{port}\"}}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut server = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(&mut server);
    for _ in 0..50 {
        if Command::new("curl")
            .args(["-sf", &format!("http://{port}/v2/")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ns = Namespace::new("retention-no-delete");
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("config.json"), "{}").unwrap();
    let repo_path = format!("{}/app", ns.0);
    let old = rfc3339(time::OffsetDateTime::now_utc() - time::Duration::days(30));
    push(
        &format!("{port}/{repo_path}"),
        &["feature-old"],
        &old,
        config.path(),
    );
    let none = Registry {
        host: port.clone(),
        user: String::new(),
        password: String::new(),
    };
    assert_eq!(tags_in(&none, &port, &repo_path, false).len(), 1);
    let t = tree(&port, &ns);
    let out = t
        .command(&["prune", "--yes"])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("does not allow deleting"), "{err}");
    assert!(err.contains("REGISTRY_STORAGE_DELETE_ENABLED"), "{err}");
    assert_eq!(
        tags_in(&none, &port, &repo_path, false).len(),
        1,
        "nothing deleted"
    );
}

/// Bad retention settings: exit 2 with the accepted forms.
#[test]
fn a_bad_max_age_is_exit_2_naming_the_forms() {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        "registry: 127.0.0.1:1\nvars: {base_image: x}\nretention: {max_age: 7 days}\n",
    )
    .write("images/app/Dockerfile.j2", "FROM {{ base_image }}\n");
    let run = t.run(&["prune", "--dry-run"]).expect(2);
    assert!(
        run.stderr.contains("`7 days` is not a duration"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("`7d`") && run.stderr.contains("`12h`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("strata.yaml:3"), "{}", run.stderr);
}

/// A kept image index keeps every manifest it names, even one that is also
/// under an old tag of its own (issue "Hostile and real-world", item 26):
/// deleting that digest would take a platform out of the index.
#[test]
fn a_kept_index_keeps_its_platforms() {
    let Some(r) = registry() else { return };
    if !engine::available("retention-index") {
        return;
    }
    let ns = Namespace::new("retention-index");
    let config = docker_config(&r.host, &r.user, &r.password);
    let repo_path = format!("{}/app", ns.0);
    let repo = format!("{}/{repo_path}", r.host);
    let old = rfc3339(time::OffsetDateTime::now_utc() - time::Duration::days(30));
    push(&repo, &["fp-00000000000000000000old1"], &old, config.path());
    let auth = format!("{}:{}", r.user, r.password);
    let v2 = "application/vnd.docker.distribution.manifest.v2+json";
    let url = |tag: &str| format!("http://{}/v2/{repo_path}/manifests/{tag}", r.host);
    let head = Command::new("curl")
        .args(["-s", "-I", "-u", &auth, "-H", &format!("Accept: {v2}")])
        .arg(url("fp-00000000000000000000old1"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(|v| v.trim().to_string())
            .unwrap()
    };
    let (child, size) = (field("docker-content-digest"), field("content-length"));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{v2}","digest":"{child}","size":{size},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
    );
    let put = Command::new("curl")
        .args(["-s", "-f", "-X", "PUT", "-u", &auth])
        .args([
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
        ])
        .args(["--data-binary", &index])
        .arg(url("multiarch-1"))
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );

    let t = tree(&r.host, &ns);
    let out = t
        .command(&["prune", "--yes", "--keep", "multiarch-*"])
        .env("DOCKER_CONFIG", config.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("kept: a platform of the kept index `multiarch-1`"),
        "{table}"
    );
    let child_there = Command::new("curl")
        .args([
            "-s",
            "-f",
            "-o",
            "/dev/null",
            "-u",
            &auth,
            "-H",
            &format!("Accept: {v2}"),
        ])
        .arg(url(&child))
        .status()
        .unwrap();
    assert!(child_there.success(), "the index's platform is still there");
}
