//! Multi-platform sets on the real engine (arm64 emulated with qemu's
//! binfmt handlers) and the real registry: one record per image and
//! platform, one index per image read back with skopeo (the outside
//! oracle), all-or-nothing publishing, reuse on a fresh worker, per-platform
//! rendering and fingerprints.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;
use std::collections::BTreeSet;
use std::process::Command;

const ARM64_BASE: &str = "strata-ci/busybox:arm64";

fn ready() -> Option<(crate::push::Registry, tempfile::TempDir)> {
    let r = crate::push::registry()?;
    let arm = engine::inspect(ARM64_BASE).is_some();
    let skopeo = Command::new("skopeo").arg("--version").output().is_ok();
    if !arm || !skopeo {
        let msg =
            format!("multi-arch tests need `{ARM64_BASE}` and skopeo (run through ci/test.sh)");
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
        eprintln!("SKIPPED {msg}");
        return None;
    }
    let config = crate::push::docker_config(&r.host, &r.user, &r.password);
    Some((r, config))
}

/// A two-image set for amd64 and arm64 in namespace `ns`, each platform
/// on its own busybox, `extra` appended to the child's Dockerfile.
fn tree(r: &crate::push::Registry, ns: &Namespace, extra: &str) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nplatforms: [linux/amd64, linux/arm64]\n\
             vars: {{base_image: '{BASE_IMAGE}', greeting: hello}}\n\
             platform_vars: {{linux/arm64: {{base_image: '{ARM64_BASE}'}}}}\n\
             engines: [{{host: docker, platforms: [linux/amd64, linux/arm64]}}]\n",
            r.host, ns.0
        ),
    );
    // A first step of the test's own: BuildKit's cache is shared across
    // namespaces, and another test's cleanup must not pull its layers away.
    t.write(
        "images/base/Dockerfile.j2",
        &format!(
            "FROM {{{{ base_image }}}}\nRUN echo {} > /nonce\nRUN echo '{{{{ arch }}}} {{{{ greeting }}}}' > /rendered && uname -m > /uname\n",
            crate::common::nonce()
        ),
    );
    t.write(
        "images/app/Dockerfile.j2",
        &format!("FROM {{{{ image_ref('base') }}}}\nRUN cat /rendered > /app\n{extra}"),
    );
    t
}

fn skopeo_raw(r: &crate::push::Registry, reference: &str) -> Option<serde_json::Value> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
        .arg(format!("{}:{}", r.user, r.password))
        .arg(format!("docker://{}/{reference}", r.host))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// `os/architecture` of every manifest of the index at `reference`, by digest.
fn platforms(r: &crate::push::Registry, reference: &str) -> Vec<(String, String)> {
    let index = skopeo_raw(r, reference).expect("the release tag is in the registry");
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            (
                format!(
                    "{}/{}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                ),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn statuses(t: &TestTree, file: &str) -> Vec<(String, String)> {
    let s: serde_json::Value = serde_json::from_str(&t.read(file)).unwrap();
    s["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `strata ARGS` in `t` with the registry's credentials.
fn run(t: &TestTree, config: &tempfile::TempDir, args: &[&str]) -> std::process::Output {
    t.command(args)
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap()
}

/// `strata ARGS` as `run`, which must exit 0; its stderr.
fn run_ok(t: &TestTree, config: &tempfile::TempDir, args: &[&str]) -> String {
    let out = run(t, config, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "strata {args:?}: {stderr}");
    stderr
}

fn built(t: &TestTree, file: &str) -> BTreeSet<String> {
    statuses(t, file)
        .into_iter()
        .filter(|(_, s)| s == "built")
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn a_two_platform_set_publishes_one_index_per_image_and_reuses_per_platform() {
    let Some((r, config)) = ready() else { return };
    let ns = Namespace::new("multiarch");
    let t = tree(&r, &ns, "");
    // A parent named literally, as Kolla's templates do: each record's
    // FROM is pointed at the parent's record of its platform.
    t.write(
        "images/lit/Dockerfile.j2",
        "FROM {{ registry }}/{{ namespace }}/base:{{ tag }}\nRUN cat /rendered > /lit\n\
         COPY --from={{ registry }}/{{ namespace }}/base:{{ tag }} /uname /base-uname\n",
    );
    let strata = |args: &[&str]| run(&t, &config, args);
    // Rendered per platform: `arch` differs, the parent is of the same platform.
    let rendered = t.run(&["render", "app"]).expect(0).stdout;
    assert!(
        rendered.contains(&format!("FROM {}/{}/base:latest-arm64", r.host, ns.0)),
        "{rendered}"
    );
    let lit = t.run(&["render", "lit"]).expect(0).stdout;
    for arch in ["amd64", "arm64"] {
        let parent = format!("{}/{}/base:latest-{arch}", r.host, ns.0);
        for line in [
            format!("FROM {parent}\n"),
            format!("COPY --from={parent} /uname"),
        ] {
            assert!(lit.contains(&line), "{lit}");
        }
    }
    let list = t.run(&["list"]).expect(0).stdout;
    for record in [
        "base@amd64",
        "base@arm64",
        "app@amd64",
        "app@arm64",
        "lit@arm64",
    ] {
        assert!(list.contains(record), "{list}");
    }
    let plan = strata(&["plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&plan.stderr)));
    let rows: BTreeSet<(String, String, String)> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("name"), s("image"), s("platform"))
        })
        .collect();
    assert!(
        rows.contains(&("app@arm64".into(), "app".into(), "linux/arm64".into())),
        "{plan}"
    );
    assert_eq!(rows.len(), 6);
    // An image test of the base runs on each platform's image (arm64
    // emulated): its own verdict per record, in the summary and JUnit.
    t.write("images/base/image.yaml", "tests: [arch.yaml]\n");
    t.write(
        "images/base/arch.yaml",
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: machine\n    command: cat\n    args: [/uname]\n    expectedOutput: ['(?m)^(x86_64|aarch64)$']\n",
    );
    run_ok(
        &t,
        &config,
        &["build", "--push", "--summary", "s.json", "--junit", "j.xml"],
    );
    assert_eq!(built(&t, "s.json").len(), 6);
    let junit = t.read("j.xml");
    for record in ["base@amd64", "base@arm64"] {
        assert!(
            junit.contains(&format!(r#"<testcase classname="{record}" name="machine""#)),
            "{junit}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    let tested: Vec<&serde_json::Value> = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["image"] == "base")
        .collect();
    assert_eq!(tested.len(), 2);
    for r in tested {
        assert_eq!(r["tests"][0]["passed"], true, "{r}");
    }
    for image in ["base", "app", "lit"] {
        let found = platforms(&r, &format!("{}/{image}:latest", ns.0));
        let names: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"], "{image}");
    }
    // The arm64 image, pulled by digest: an arm64 config, and it runs as aarch64.
    let arm = platforms(&r, &format!("{}/app:latest", ns.0))
        .into_iter()
        .find(|(p, _)| p == "linux/arm64")
        .unwrap()
        .1;
    let pinned = format!("{}/{}/app@{arm}", r.host, ns.0);
    let pulled = Command::new("docker")
        .env("DOCKER_CONFIG", config.path())
        .args(["pull", "-q", &pinned])
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let (_, _) = engine::inspect(&pinned).expect("pulled");
    let arch = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Architecture}}", &pinned])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&arch.stdout).trim(), "arm64");
    assert_eq!(
        engine::run_in(&pinned, &["cat", "/uname"]).trim(),
        "aarch64"
    );
    assert_eq!(
        engine::run_in(&pinned, &["cat", "/app"]).trim(),
        "arm64 hello"
    );
    // The child's layers start with its parent's of the same platform.
    let base_arm = format!("{}/{}/base:latest-arm64", r.host, ns.0);
    let (parent, child) = (
        engine::layers(&base_arm),
        engine::layers(&format!("{}/{}/app:latest-arm64", r.host, ns.0)),
    );
    assert_eq!(&child[..parent.len()], &parent[..]);
    // Files copied from a parent named literally come from its platform's image.
    let lit_arm = format!("{}/{}/lit:latest-arm64", r.host, ns.0);
    assert_eq!(
        engine::run_in(&lit_arm, &["cat", "/base-uname"]).trim(),
        "aarch64"
    );
    // A fresh worker: every record is up to date by its content tag.
    ns.clear();
    let _ = Command::new("docker").args(["rmi", &pinned]).output();
    let plan = strata(&["plan"]);
    let plan_out = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(plan_out.contains("0 to build"), "{plan_out}");
    run_ok(&t, &config, &["build", "--push", "--summary", "again.json"]);
    assert!(built(&t, "again.json").is_empty());
    // `--platform` narrows the set to its records of that platform; a push
    // then moves their own tags and writes no index of one platform.
    let app_index = platforms(&r, &format!("{}/app:latest", ns.0));
    let arm = strata(&["plan", "--json", "--platform", "linux/arm64"]);
    let arm: serde_json::Value = serde_json::from_slice(&arm.stdout).unwrap();
    let names: BTreeSet<&str> = arm
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["app@arm64", "base@arm64", "lit@arm64"])
    );
    let err = run_ok(
        &t,
        &config,
        &["build", "--push", "--platform", "linux/arm64"],
    );
    assert!(err.contains("no index written for `app`"), "{err}");
    assert_eq!(platforms(&r, &format!("{}/app:latest", ns.0)), app_index);
    // An arm64-only value rebuilds the arm64 records only.
    let yaml = t.read("strata.yaml").replace(
        &format!("base_image: '{ARM64_BASE}'"),
        &format!("base_image: '{ARM64_BASE}', greeting: hi"),
    );
    t.write("strata.yaml", &yaml);
    run_ok(&t, &config, &["build", "--push", "--summary", "arm.json"]);
    assert_eq!(
        built(&t, "arm.json"),
        BTreeSet::from(["app@arm64", "base@arm64", "lit@arm64"].map(String::from))
    );
    // A leaf edit rebuilds that leaf for every platform, and nothing else.
    let app = t.read("images/app/Dockerfile.j2") + "RUN echo edited > /edited\n";
    t.write("images/app/Dockerfile.j2", &app);
    run_ok(&t, &config, &["build", "--push", "--summary", "leaf.json"]);
    assert_eq!(
        built(&t, "leaf.json"),
        BTreeSet::from(["app@amd64", "app@arm64"].map(String::from))
    );
}

#[test]
fn a_platform_failing_for_one_image_moves_no_release_tag() {
    let Some((r, config)) = ready() else { return };
    let ns = Namespace::new("multiarch-fail");
    // Published once, whole.
    let t = tree(&r, &ns, "");
    let strata = |args: &[&str]| run(&t, &config, args);
    run_ok(&t, &config, &["build", "--push", "--no-tests"]);
    let before: Vec<Option<serde_json::Value>> = ["base", "app"]
        .iter()
        .map(|i| skopeo_raw(&r, &format!("{}/{i}:latest", ns.0)))
        .collect();
    // The base changes for both platforms; the app fails on arm64 only
    // (an arm64 value of `platform_vars`).
    let base = t
        .read("images/base/Dockerfile.j2")
        .replace("{{ greeting }}'", "{{ greeting }} v2'");
    t.write("images/base/Dockerfile.j2", &base);
    let app =
        t.read("images/app/Dockerfile.j2") + "RUN test '{{ fail | default(\"no\") }}' != yes\n";
    t.write("images/app/Dockerfile.j2", &app);
    let yaml = t.read("strata.yaml");
    let arm = format!("base_image: '{ARM64_BASE}'");
    t.write(
        "strata.yaml",
        &yaml.replace(&arm, &format!("{arm}, fail: 'yes'")),
    );
    let failed = strata(&["build", "--push", "--no-tests", "--summary", "f.json"]);
    assert_eq!(
        failed.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    let status: std::collections::BTreeMap<String, String> =
        statuses(&t, "f.json").into_iter().collect();
    assert_eq!(status["app@arm64"], "failed", "{status:?}");
    assert_eq!(status["app@amd64"], "built", "{status:?}");
    let after: Vec<Option<serde_json::Value>> = ["base", "app"]
        .iter()
        .map(|i| skopeo_raw(&r, &format!("{}/{i}:latest", ns.0)))
        .collect();
    assert_eq!(before, after, "a release tag of the set moved");
    // The fix touches arm64 only: the re-run builds only what failed, the
    // rest is up to date by the content tags the failed run uploaded.
    t.write(
        "strata.yaml",
        &yaml.replace(&arm, &format!("{arm}, fail: 'no'")),
    );
    run_ok(
        &t,
        &config,
        &["build", "--push", "--no-tests", "--summary", "ok.json"],
    );
    assert_eq!(
        built(&t, "ok.json"),
        BTreeSet::from(["app@arm64".to_string()])
    );
    assert_ne!(skopeo_raw(&r, &format!("{}/app:latest", ns.0)), after[1]);
}

#[test]
fn an_older_commit_never_takes_an_index_from_a_newer_one() {
    let Some((r, config)) = ready() else { return };
    let ns = Namespace::new("multiarch-race");
    let t = tree(&r, &ns, "");
    let dir = t.path();
    t.write(".gitignore", "*.json\n");
    crate::common::git(dir, &["init", "-q", "-b", "main"]);
    crate::common::git(dir, &["add", "."]);
    crate::common::git(dir, &["commit", "-q", "-m", "old"]);
    let old = crate::common::git(dir, &["rev-parse", "HEAD"]);
    let app = t.read("images/app/Dockerfile.j2") + "RUN echo new > /new\n";
    t.write("images/app/Dockerfile.j2", &app);
    crate::common::git(dir, &["commit", "-q", "-am", "new"]);
    let new = crate::common::git(dir, &["rev-parse", "--short", "HEAD"]);
    let strata = |args: &[&str]| run_ok(&t, &config, args);
    // The newer commit publishes first; then the older one finishes last.
    strata(&["build", "--push"]);
    let index = |image: &str| skopeo_raw(&r, &format!("{}/{image}:latest", ns.0));
    let newer = index("app").expect("the newer commit's index");
    crate::common::git(dir, &["reset", "-q", "--hard", &old]);
    let err = strata(&["build", "--push", "--summary", "older.json"]);
    assert!(
        err.contains(&format!("kept `{}/{}/app:latest`", r.host, ns.0))
            && err.contains(&format!("a newer commit ({new}")),
        "{err}"
    );
    assert_eq!(index("app").as_ref(), Some(&newer), "the index was kept");
    let summary: serde_json::Value = serde_json::from_str(&t.read("older.json")).unwrap();
    let app_index = summary["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["image"] == "app")
        .cloned()
        .unwrap();
    assert_eq!(
        app_index["kept"][0],
        format!("{}/{}/app:latest", r.host, ns.0),
        "{summary}"
    );
    assert!(
        app_index["moved"].as_array().unwrap().is_empty(),
        "{summary}"
    );
}

/// The engine listing of `tree`, which the tests below leave out or narrow.
const LISTED: &str = "engines: [{host: docker, platforms: [linux/amd64, linux/arm64]}]\n";

/// `tree` with its `engines:` line replaced by `engines` ("" for none).
fn tree_engines(r: &crate::push::Registry, ns: &Namespace, engines: &str) -> TestTree {
    let t = tree(r, ns, "");
    let yaml = t.read("strata.yaml");
    assert!(yaml.contains(LISTED), "{yaml}");
    t.write("strata.yaml", &yaml.replace(LISTED, engines));
    t
}

/// With no `engines:`, the engine builds arm64 as `docker build
/// --platform linux/arm64` does: through the qemu handler ci/setup.sh
/// registers. It says so once, and the summary names each record's way.
#[test]
fn a_two_platform_set_with_no_engine_listing_builds_arm64_emulated() {
    let Some((r, config)) = ready() else { return };
    let ns = Namespace::new("multiarch-emulated");
    let t = tree_engines(&r, &ns, "");
    let args = [
        "build",
        "--push",
        "--summary",
        "s.json",
        "--progress",
        "plain",
    ];
    let stderr = run_ok(&t, &config, &args);
    assert_eq!(stderr.matches(": emulated (qemu)").count(), 1, "{stderr}");
    assert!(stderr.contains("strata: linux/arm64 on "), "{stderr}");
    for name in ["base", "app"] {
        let mut got: Vec<String> = platforms(&r, &ns.reference(name))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        got.sort();
        assert_eq!(got, ["linux/amd64", "linux/arm64"], "{name}");
    }
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    let modes: BTreeSet<(String, String)> = (summary["images"].as_array().unwrap().iter())
        .map(|i| {
            let name = i["name"].as_str().unwrap().to_string();
            (name, i["build_mode"].as_str().unwrap_or("-").to_string())
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("app@amd64", "native"),
        ("app@arm64", "emulated"),
        ("base@amd64", "native"),
        ("base@arm64", "emulated"),
    ]
    .iter()
    .map(|(n, m)| (n.to_string(), m.to_string()))
    .collect();
    assert_eq!(modes, want, "{summary}");
}

/// An engine's explicit `platforms:` still wins over what it could emulate.
#[test]
fn an_explicit_engine_listing_still_narrows_its_platforms() {
    let Some((r, config)) = ready() else { return };
    let ns = Namespace::new("multiarch-narrowed");
    let narrowed = "engines: [{host: docker, platforms: [linux/amd64]}]\n";
    let t = tree_engines(&r, &ns, narrowed);
    let out = run(&t, &config, &["build"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no engine of this run builds linux/arm64"),
        "{stderr}"
    );
    assert!(!stderr.contains("emulated (qemu)"), "{stderr}");
    let local = format!("{}/{}", r.host, ns.reference("base"));
    assert!(engine::inspect(&local).is_none(), "nothing was built");
}
