//! The registry as the shared state (real engine, the htpasswd registry on
//! loopback): fresh workers skip what is published, parents are pulled by
//! digest, `--push` uploads what the registry lacks, and release tags move
//! all together or not at all.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::{git, git_at, TestTree};
use crate::push::{docker_config, manifest_digest, registry, Registry};
use std::collections::BTreeMap;

/// base → mid → leaf (with a context file), and other on base.
fn tree(ns: &Namespace, host: &str) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{host}'\nnamespace: {}\nvars: {{base_image: '{BASE_IMAGE}'}}\n",
            ns.0
        ),
    )
    .write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base > /base\n",
    )
    .write(
        "images/mid/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo mid > /mid\n",
    )
    .write(
        "images/leaf/Dockerfile.j2",
        "FROM {{ image_ref('mid') }}\nCOPY files/ /leaf/\n",
    )
    .write("images/leaf/files/x", "1\n")
    .write(
        "images/other/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo other > /other\n",
    );
    t
}

struct Setup {
    r: Registry,
    ns: Namespace,
    t: TestTree,
    config: tempfile::TempDir,
}

fn setup(test: &str) -> Option<Setup> {
    let r = registry()?;
    if !engine::available(test) {
        return None;
    }
    let ns = Namespace::new(test);
    let t = tree(&ns, &r.host);
    let config = docker_config(&r.host, &r.user, &r.password);
    Some(Setup { r, ns, t, config })
}

impl Setup {
    /// `strata build ARGS --summary s.json`: the exit code, stderr, and
    /// each image's summary entry by name.
    fn build(&self, args: &[&str]) -> (i32, String, BTreeMap<String, serde_json::Value>) {
        let _ = std::fs::remove_file(self.t.path().join("s.json"));
        let mut all = vec!["build", "--progress", "plain", "--summary", "s.json"];
        all.extend_from_slice(args);
        let out = self
            .t
            .command(&all)
            .env("DOCKER_CONFIG", self.config.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.t.path().join("s.json")).unwrap_or_default(),
        )
        .unwrap_or_default();
        let images = summary["images"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| (i["name"].as_str().unwrap().to_string(), i.clone()))
                    .collect()
            })
            .unwrap_or_default();
        (out.status.code().unwrap_or(-1), stderr, images)
    }

    fn latest(&self, name: &str) -> Option<String> {
        manifest_digest(&self.r, &format!("{}/{name}", self.ns.0), "latest")
    }

    fn local(&self, name: &str) -> String {
        format!("{}/{}/{name}:latest", self.r.host, self.ns.0)
    }
}

const ALL: [&str; 4] = ["base", "mid", "leaf", "other"];

#[test]
fn a_fresh_worker_builds_nothing_published_and_pulls_parents_by_digest() {
    let Some(s) = setup("fresh-worker") else {
        return;
    };
    let (code, err, first) = s.build(&["--push"]);
    assert_eq!(code, 0, "{err}");
    for n in ALL {
        assert!(
            first[n]["digest"].as_str().unwrap().starts_with("sha256:"),
            "{n}"
        );
    }
    // A fresh worker: the engine holds nothing of the namespace.
    s.ns.clear();
    let plan =
        s.t.command(&["plan", "--json"])
            .env("DOCKER_CONFIG", s.config.path())
            .output()
            .unwrap();
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    for item in plan.as_array().unwrap() {
        assert_eq!(item["action"], "skip", "{item}");
        assert!(item["reasons"][0]
            .as_str()
            .unwrap()
            .contains("up to date in the registry"));
        let name = item["name"].as_str().unwrap();
        assert_eq!(item["registry_digest"], first[name]["digest"], "{name}");
    }
    let (code, err, again) = s.build(&[]);
    assert_eq!(code, 0, "{err}");
    for n in ALL {
        assert_eq!(again[n]["status"], "up-to-date", "{n}");
        assert!(engine::inspect(&s.local(n)).is_none(), "{n} was pulled");
    }
    // One leaf changes: only it is built, on its parent pulled by digest.
    s.t.write("images/leaf/files/x", "2\n");
    let (code, err, third) = s.build(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(third["leaf"]["status"], "built");
    for n in ["base", "mid", "other"] {
        assert_ne!(
            third.get(n).map(|i| i["status"].clone()),
            Some("built".into()),
            "{n}"
        );
    }
    let mid_digest = first["mid"]["digest"].as_str().unwrap();
    assert_eq!(third["leaf"]["parents"]["mid"], mid_digest);
    let repo_digests = std::process::Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &s.local("mid"),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&repo_digests.stdout).contains(mid_digest),
        "mid:latest here is the image of that digest"
    );
    assert!(
        engine::inspect(&s.local("other")).is_none(),
        "nothing else pulled"
    );
    assert_eq!(
        engine::run_in(&s.local("leaf"), &["cat", "/leaf/x"]).trim(),
        "2"
    );
}

#[test]
fn build_then_push_publishes_every_image() {
    let Some(s) = setup("build-then-push") else {
        return;
    };
    let (code, err, built) = s.build(&[]);
    assert_eq!(code, 0, "{err}");
    for n in ALL {
        assert!(s.latest(n).is_none(), "{n} not pushed yet");
        let (start, end) = (&built[n]["started_at"], &built[n]["finished_at"]);
        assert!(
            start.as_str().unwrap() <= end.as_str().unwrap(),
            "{n}: {start} {end}"
        );
        assert!(!built[n]["engine"].as_str().unwrap().is_empty());
    }
    let (code, err, pushed) = s.build(&["--push", "--metadata-file", "m.json"]);
    assert_eq!(code, 0, "{err}");
    let metadata: serde_json::Value = serde_json::from_str(&s.t.read("m.json")).unwrap();
    for n in ALL {
        assert_eq!(metadata[n]["ref"], s.local(n));
        assert_eq!(metadata[n]["digest"], pushed[n]["digest"]);
    }
    for n in ALL {
        assert_eq!(pushed[n]["status"], "up-to-date", "{n}");
        assert_eq!(
            pushed[n]["pushed"][0].as_str(),
            Some(s.local(n).as_str()),
            "{n}"
        );
        assert_eq!(s.latest(n).as_deref(), pushed[n]["digest"].as_str(), "{n}");
    }
    // Pushing again uploads nothing and moves the tags to the same digests.
    let (code, err, again) = s.build(&["--push"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("pushing"), "nothing uploaded again:\n{err}");
    for n in ALL {
        assert_eq!(again[n]["digest"], pushed[n]["digest"], "{n}");
    }
}

#[test]
fn a_failed_image_moves_no_release_tag_and_a_rerun_reuses_the_uploads() {
    let Some(s) = setup("atomic-publish") else {
        return;
    };
    let (code, err, _) = s.build(&["--push"]);
    assert_eq!(code, 0, "{err}");
    let before: Vec<Option<String>> = ALL.iter().map(|n| s.latest(n)).collect();
    s.t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base-2 > /base\n",
    );
    s.t.write(
        "images/other/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN false\n",
    );
    let (code, err, failed) = s.build(&["--push"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no release tag was moved in the registry"),
        "{err}"
    );
    assert_eq!(failed["other"]["status"], "failed");
    let after: Vec<Option<String>> = ALL.iter().map(|n| s.latest(n)).collect();
    assert_eq!(before, after, "release tags unchanged in the registry");
    // Fixed: everything publishes; what was uploaded is not built again.
    s.t.write(
        "images/other/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo other-2 > /other\n",
    );
    let (code, err, fixed) = s.build(&["--push"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fixed["other"]["status"], "built");
    for n in ["base", "mid", "leaf"] {
        assert_eq!(fixed[n]["status"], "up-to-date", "{n}");
    }
    for (n, old) in ALL.iter().zip(&before) {
        let now = s.latest(n);
        assert_ne!(&now, old, "{n} moved");
        assert_eq!(now.as_deref(), fixed[*n]["digest"].as_str(), "{n}");
    }
}

#[test]
fn publish_moves_the_release_tags_of_a_pushed_set() {
    let Some(s) = setup("publish-cmd") else {
        return;
    };
    let publish = || {
        let out =
            s.t.command(&["publish"])
                .env("DOCKER_CONFIG", s.config.path())
                .output()
                .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code().unwrap_or(-1), stdout, stderr)
    };
    let (code, _, err) = publish();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nothing was published"), "{err}");
    // The fan-out jobs: content tags only.
    let (code, err, pushed) = s.build(&["--push", "--no-publish"]);
    assert_eq!(code, 0, "{err}");
    for n in ALL {
        assert!(s.latest(n).is_none(), "{n}: no release tag yet");
        assert!(pushed[n]["pushed"].as_array().unwrap().is_empty());
    }
    let (code, out, err) = publish();
    assert_eq!(code, 0, "{err}");
    for n in ALL {
        assert!(
            out.contains(&format!("{n} | {} -> sha256:", s.local(n))),
            "{out}"
        );
        let fp = &pushed[n]["fingerprint"].as_str().unwrap()[..24];
        let content = manifest_digest(&s.r, &format!("{}/{n}", s.ns.0), &format!("fp-{fp}"));
        assert!(content.is_some());
        assert_eq!(s.latest(n), content, "{n}");
    }
}

#[test]
fn a_base_from_the_registry_is_known_by_its_digest_on_a_fresh_worker() {
    let Some(s) = setup("registry-base") else {
        return;
    };
    // The base lives in the registry, as `debian:bookworm` would.
    // Outside the tree's namespace, as `debian:bookworm` would be.
    let base = format!("{}/{}-upstream/busybox:latest", s.r.host, s.ns.0);
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_CONFIG", s.config.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker(&["tag", BASE_IMAGE, &base]);
    docker(&["push", &base]);
    s.t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nvars: {{base_image: '{base}'}}\n",
            s.r.host, s.ns.0
        ),
    );
    let (code, err, _) = s.build(&["--push"]);
    assert_eq!(code, 0, "{err}");
    // A fresh worker: neither the images nor the base's tag are here.
    s.ns.clear();
    docker(&["rmi", &base]);
    assert!(engine::inspect(&base).is_none());
    let (code, err, again) = s.build(&[]);
    assert_eq!(code, 0, "{err}");
    for n in ALL {
        assert_eq!(again[n]["status"], "up-to-date", "{n}: {err}");
    }
}

#[test]
fn an_older_commit_published_last_never_takes_a_tag_from_a_newer_one() {
    let Some(s) = setup("commit-race") else {
        return;
    };
    let dir = s.t.path();
    s.t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nvars: {{base_image: '{BASE_IMAGE}'}}\ntags: ['{{{{ git.branch }}}}', '{{{{ git.short }}}}']\n",
            s.r.host, s.ns.0
        ),
    );
    s.t.write(".gitignore", "s.json\n");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "old"]);
    let old = git(dir, &["rev-parse", "--short", "HEAD"]);
    s.t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo new > /base\n",
    );
    git(dir, &["commit", "-q", "-am", "new"]);
    let new = git(dir, &["rev-parse", "--short", "HEAD"]);

    // The newer commit publishes first: every image gets the commit tag.
    let (code, err, newer) = s.build(&["--push"]);
    assert_eq!(code, 0, "{err}");
    let tag = |n: &str, t: &str| manifest_digest(&s.r, &format!("{}/{n}", s.ns.0), t);
    for n in ALL {
        assert_eq!(
            tag(n, &new).as_deref(),
            newer[n]["digest"].as_str(),
            "{n}:{new}"
        );
        assert_eq!(tag(n, "main"), tag(n, &new), "{n}:main");
    }
    // The older commit, same branch, finishes last.
    git(dir, &["reset", "-q", "--hard", &old]);
    let (code, err, older) = s.build(&["--push"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("a newer commit ({new}")), "{err}");
    for n in ALL {
        assert_eq!(
            tag(n, "latest").as_deref(),
            newer[n]["digest"].as_str(),
            "{n}:latest kept"
        );
        assert_eq!(
            tag(n, "main").as_deref(),
            newer[n]["digest"].as_str(),
            "{n}:main kept"
        );
        assert_eq!(
            tag(n, &old).as_deref(),
            older[n]["digest"].as_str(),
            "{n}:{old} is new"
        );
    }
    assert_ne!(older["base"]["digest"], newer["base"]["digest"]);
}

#[test]
fn git_tags_outside_git_are_a_clear_error() {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        "tag: '{{ git.short }}'\nvars: {base_image: 'x:1'}\n",
    )
    .write("images/a/Dockerfile", "FROM scratch\n");
    let run = t.run(&["list"]).expect(2);
    assert!(run.stderr.contains("git work tree"), "{}", run.stderr);
}

#[test]
fn a_content_tag_without_the_fingerprint_label_is_never_trusted() {
    let Some(s) = setup("untrusted-tag") else {
        return;
    };
    let plan = |s: &Setup| -> serde_json::Value {
        let out =
            s.t.command(&["plan", "--json", "base"])
                .env("DOCKER_CONFIG", s.config.path())
                .output()
                .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let fp = plan(&s)[0]["fingerprint"].as_str().unwrap()[..24].to_string();
    // Someone pushes an unrelated image by hand under the content tag.
    let forged = format!("{}/{}/base:fp-{fp}", s.r.host, s.ns.0);
    for args in [vec!["tag", BASE_IMAGE, &forged], vec!["push", &forged]] {
        let out = std::process::Command::new("docker")
            .args(&args)
            .env("DOCKER_CONFIG", s.config.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::process::Command::new("docker")
        .args(["rmi", &forged])
        .output();
    let forged_digest = manifest_digest(&s.r, &format!("{}/base", s.ns.0), &format!("fp-{fp}"));
    let p = plan(&s);
    assert_eq!(p[0]["action"], "build", "{p}");
    assert_eq!(p[0]["registry_digest"], serde_json::Value::Null);
    let (code, err, built) = s.build(&["--push", "base"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(built["base"]["status"], "built");
    let now = manifest_digest(&s.r, &format!("{}/base", s.ns.0), &format!("fp-{fp}"));
    assert_ne!(
        now, forged_digest,
        "the content tag now holds the real image"
    );
}

#[test]
fn a_registry_that_cannot_be_reached_during_the_lookup_is_exit_3() {
    if !engine::available("lookup unreachable") {
        return;
    }
    let host = crate::common::closed_address();
    let ns = Namespace::new("lookup-unreachable");
    let t = tree(&ns, &host);
    let run = t.run(&["plan"]).expect(3);
    assert!(
        run.stderr
            .contains(&format!("cannot reach the registry `{host}`")),
        "{}",
        run.stderr
    );
}

#[test]
fn the_sample_set_on_a_fresh_worker() {
    let Some(r) = registry() else { return };
    if !engine::available("sample fresh worker") {
        return;
    }
    let ns = Namespace::new("sample-fresh");
    let t = TestTree::sample();
    // Every image also tagged with the commit, as a CI job would.
    let yaml = t.read("strata.yaml");
    t.write(
        "strata.yaml",
        &format!("{yaml}tags: ['{{{{ git.short }}}}']\n"),
    );
    t.write(".gitignore", "*.json\n");
    git(t.path(), &["init", "-q", "-b", "main"]);
    git(t.path(), &["add", "."]);
    git(t.path(), &["commit", "-q", "-m", "sample"]);
    let short = git(t.path(), &["rev-parse", "--short", "HEAD"]);
    let config = docker_config(&r.host, &r.user, &r.password);
    let set = [
        "--set".to_string(),
        format!("registry={}", r.host),
        "--set".to_string(),
        ns.set(),
    ];
    let strata = |args: &[&str]| {
        let mut all: Vec<&str> = set.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let out = t
            .command(&all)
            .env("DOCKER_CONFIG", config.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        (String::from_utf8_lossy(&out.stdout).to_string(), err)
    };
    let images = |file: &str| -> BTreeMap<String, serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&t.read(file)).unwrap();
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["name"].as_str().unwrap().to_string(), i.clone()))
            .collect()
    };
    strata(&["build", "--push", "--summary", "pushed.json"]);
    let pushed = images("pushed.json");
    assert_eq!(pushed.len(), 13);
    for (name, image) in &pushed {
        let at_commit = manifest_digest(&r, &format!("{}/{name}", ns.0), &short);
        assert_eq!(
            at_commit.as_deref(),
            image["digest"].as_str(),
            "{name}:{short}"
        );
    }
    ns.clear();
    let (plan, _) = strata(&["plan"]);
    assert!(plan.contains("0 to build, 13 up to date"), "{plan}");
    assert_eq!(
        plan.matches("up to date in the registry").count(),
        13,
        "{plan}"
    );
    strata(&["build", "--summary", "noop.json"]);
    assert!(images("noop.json")
        .values()
        .all(|i| i["status"] == "up-to-date"));
    for name in pushed.keys() {
        let reference = format!("{}/{}/{name}:latest", r.host, ns.0);
        assert!(engine::inspect(&reference).is_none(), "{name} was pulled");
    }
    // A leaf changes: only it is built, on its parent pulled by digest.
    let leaf = t.path().join("images/nova/nova-api/Dockerfile.j2");
    let mut text = std::fs::read_to_string(&leaf).unwrap();
    text.push_str("RUN echo changed > /changed\n");
    std::fs::write(&leaf, text).unwrap();
    strata(&["build", "--summary", "leaf.json"]);
    let leaf = images("leaf.json");
    let built: Vec<&String> = leaf
        .keys()
        .filter(|n| leaf[*n]["status"] == "built")
        .collect();
    assert_eq!(built, ["nova-api"]);
    assert_eq!(
        leaf["nova-api"]["parents"]["nova-base"], pushed["nova-base"]["digest"],
        "built on nova-base as published"
    );
}

/// Commit `message` in `dir` at `date` (committer and author time).
fn commit_at(dir: &std::path::Path, message: &str, date: &str) {
    git_at(dir, &["commit", "-q", "-am", message], Some(date));
}

/// The release race when the published commit is not in the local history
/// (issue "Hostile and real-world", item 34): a depth-1 CI clone and a
/// force-pushed branch move the tag when their commit is newer by commit
/// time; an older commit never takes it, whichever rule decides.
#[test]
fn shallow_clones_and_force_pushes_decide_by_commit_time() {
    let Some(s) = setup("commit-time") else {
        return;
    };
    let origin = s.t.path();
    s.t.write(".gitignore", "s.json\n");
    git(origin, &["init", "-q", "-b", "main"]);
    git(origin, &["add", "."]);
    commit_at(origin, "a", "2026-01-01T00:00:00Z");
    let edit = |text: &str| {
        s.t.write(
            "images/base/Dockerfile.j2",
            &format!("FROM {{{{ base_image }}}}\nRUN echo {text} > /base\n"),
        );
    };
    let (code, err, _) = s.build(&["--push"]);
    assert_eq!(code, 0, "{err}");
    let latest = || s.latest("base");
    // Build and push in a fresh clone of `origin` at depth `depth`.
    let work = tempfile::tempdir().unwrap();
    let mut clones = 0;
    let mut in_clone = |depth: &str| {
        clones += 1;
        let clone = work.path().join(format!("c{clones}"));
        let url = format!("file://{}", origin.display());
        let mut args = vec!["clone", "-q", "-b", "main"];
        if !depth.is_empty() {
            args.extend(["--depth", depth]);
        }
        args.extend([url.as_str(), clone.to_str().unwrap()]);
        git(work.path(), &args);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("-C")
            .arg(&clone)
            .args(["build", "--push", "--progress", "plain"])
            .env("DOCKER_CONFIG", s.config.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    // A depth-1 clone of a newer commit: the published one is unknown there.
    edit("b");
    commit_at(origin, "b", "2026-01-02T00:00:00Z");
    let before = latest();
    let (code, err) = in_clone("1");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("decided by commit time"), "{err}");
    assert_ne!(latest(), before, "latest moved to b");
    let b = latest();

    // A force-push: main rewritten from a; b is gone from every clone.
    git(origin, &["reset", "-q", "--hard", "HEAD~1"]);
    edit("c");
    commit_at(origin, "c", "2026-01-03T00:00:00Z");
    git(origin, &["reflog", "expire", "--expire=now", "--all"]);
    git(origin, &["gc", "-q", "--prune=now"]);
    let (code, err) = in_clone("");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("decided by commit time"), "{err}");
    assert_ne!(latest(), b, "latest moved to c");
    let c = latest();

    // An older commit (by time) from a clone that does not know c: kept.
    git(origin, &["reset", "-q", "--hard", "HEAD~1"]);
    edit("d");
    commit_at(origin, "d", "2026-01-02T12:00:00Z");
    let (code, err) = in_clone("1");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("(decided by commit time)") && err.contains("kept"),
        "{err}"
    );
    assert_eq!(latest(), c, "an older commit never takes the tag");
}
