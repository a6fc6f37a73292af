//! Regression tests for the hostile and real-world defect sweep (issue
//! "Hostile and real-world"), each on the real binary; those that build or
//! push use the real engine and the htpasswd registry on loopback. Each
//! test names the item of the issue it covers.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;
use crate::push::{docker_config, manifest_digest, registry, Registry};

/// A two-image tree in the test registry, with an extra release tag.
struct Pushed {
    r: Registry,
    ns: Namespace,
    t: TestTree,
    config: tempfile::TempDir,
}

fn pushed(test: &str, extra: &str) -> Option<Pushed> {
    let r = registry()?;
    if !engine::available(test) {
        return None;
    }
    let ns = Namespace::new(test);
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nvars: {{base_image: '{BASE_IMAGE}'}}\n{extra}",
            r.host, ns.0
        ),
    )
    .write(
        "images/base/Dockerfile.j2",
        &format!("FROM {{{{ base_image }}}}\nRUN echo {test} > /base\n"),
    )
    .write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo app > /app\n",
    );
    let config = docker_config(&r.host, &r.user, &r.password);
    Some(Pushed { r, ns, t, config })
}

impl Pushed {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .t
            .command(args)
            .env("DOCKER_CONFIG", self.config.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn digest(&self, name: &str, tag: &str) -> Option<String> {
        manifest_digest(&self.r, &format!("{}/{name}", self.ns.0), tag)
    }
}

/// Item 4: `strata publish` after `build --push --no-publish` moves every
/// release tag, `tags:` included (the CI fan-out's publish job).
#[test]
fn publish_moves_the_extra_release_tags_too() {
    let Some(p) = pushed("sweep-publish-tags", "tags: [stable]\n") else {
        return;
    };
    let (code, _, err) = p.run(&["build", "--push", "--no-publish", "--progress", "plain"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.digest("app", "latest"), None, "nothing published yet");
    let (code, out, err) = p.run(&["publish"]);
    assert_eq!(code, 0, "{err}");
    for name in ["base", "app"] {
        let latest = p.digest(name, "latest").expect("latest moved");
        assert_eq!(p.digest(name, "stable"), Some(latest.clone()), "{out}");
        assert!(out.contains(&format!(":stable -> {latest}")), "{out}");
    }
}

/// Item 9: `strata keep REPO@sha256:…` keeps exactly that manifest; an
/// image that is not in the tree is bad input (exit 2), not an
/// unreachable registry.
#[test]
fn keep_takes_a_digest_and_refuses_unknown_images() {
    let Some(p) = pushed("sweep-keep-digest", "") else {
        return;
    };
    let (code, _, err) = p.run(&["build", "--push", "--progress", "plain"]);
    assert_eq!(code, 0, "{err}");
    let digest = p.digest("base", "latest").expect("pushed");
    let pinned = format!("{}/{}/base@{digest}", p.r.host, p.ns.0);
    let (code, out, err) = p.run(&["keep", &pinned]);
    assert_eq!(code, 0, "{err}");
    let hex = &digest["sha256:".len()..];
    let tag = format!("keep-sha256-{}", &hex[..12]);
    assert!(
        out.starts_with(&format!("{}/{}/base:{tag} -> {digest}", p.r.host, p.ns.0)),
        "{out}"
    );
    assert_eq!(p.digest("base", &tag), Some(digest));
    let (code, _, err) = p.run(&["keep", "nosuch:1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`nosuch:1` names no image of the tree"),
        "{err}"
    );
    let (code, _, err) = p.run(&["keep", "Base:1"]);
    assert_eq!(code, 2, "{err}");
}

/// Item 11: the summary of an image found up to date gives what strata
/// found: its image ID (and, pushed, its registry digest).
#[test]
fn an_up_to_date_image_has_its_id_and_digest_in_the_summary() {
    let Some(p) = pushed("sweep-up-to-date-id", "") else {
        return;
    };
    let (code, _, err) = p.run(&["build", "--push", "--progress", "plain"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = p.run(&["build", "--progress", "plain", "--summary", "s.json"]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&p.t.read("s.json")).expect("summary");
    for image in summary["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        assert_eq!(image["status"], "up-to-date", "{image}");
        let reference = format!("{}/{}/{name}:latest", p.r.host, p.ns.0);
        let (id, _) = engine::inspect(&reference).expect("on the engine");
        assert_eq!(image["image_id"].as_str(), Some(id.as_str()), "{image}");
        assert_eq!(
            image["digest"].as_str(),
            p.digest(name, "latest").as_deref()
        );
    }
}

/// Item 25: the run lock keys on the engine's socket, not on how its
/// address is spelled: a second run through `unix:////var/run/../run/…`
/// waits for (or with --no-wait is refused by) the first.
#[test]
fn the_lock_holds_however_the_socket_is_spelled() {
    if !engine::available("lock-spelling") {
        return;
    }
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h,
        _ => "unix:///var/run/docker.sock".to_string(),
    };
    let Some(path) = socket.strip_prefix("unix://") else {
        eprintln!("SKIPPED the_lock_holds_however_the_socket_is_spelled: DOCKER_HOST is not a unix socket");
        return;
    };
    let dir = std::path::Path::new(path).parent().unwrap();
    let file = std::path::Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy();
    let last = dir.file_name().unwrap().to_string_lossy();
    let odd = format!("unix:///{}/../{last}/{file}", dir.display());
    let ns = Namespace::new("lock-spelling");
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{BASE_IMAGE}'}}\n"),
    )
    .write(
        "images/slow/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo slow-sleeping && sleep 5\n",
    );
    let set = ns.set();
    let mut first =
        crate::common::Running::spawn(t.command(&["--set", &set, "build", "--progress", "plain"]));
    first.wait_for("slow-sleeping", 120);
    let out = t
        .command(&["--set", &set, "build", "--no-wait"])
        .env("DOCKER_HOST", &odd)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{odd}: {err}");
    assert!(err.contains("another strata run (pid"), "{err}");
    let (code, err) = first.finish();
    assert_eq!(code, 0, "{err}");
}

/// Item 24: credentials written into an engine or registry address are
/// never echoed.
#[test]
fn credentials_in_addresses_are_never_shown() {
    let t = TestTree::new();
    t.write("strata.yaml", "registry: 'ci:hunter2@127.0.0.1:9'\n")
        .write("images/one/Dockerfile", "FROM scratch\n");
    let run = t.run(&["list"]).expect(2);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    assert!(run.stderr.contains("holds credentials"), "{}", run.stderr);
    t.write("strata.yaml", "namespace: x\n");
    let addr = crate::common::closed_address();
    let out = t
        .command(&["plan"])
        .env("DOCKER_HOST", format!("tcp://ci:hunter2@{addr}"))
        .env("STRATA_ENGINE_TIMEOUT", "3")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains(&format!("tcp://{addr}")), "{err}");
}
