//! `strata build --push` to the loopback registry with htpasswd auth
//! (started by ci/setup.sh; address and credentials in the environment).

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::{Running, TestTree};

pub(crate) struct Registry {
    pub(crate) host: String,
    pub(crate) user: String,
    pub(crate) password: String,
}

pub(crate) fn registry() -> Option<Registry> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("STRATA_TEST_REGISTRY"),
        get("STRATA_TEST_REGISTRY_USER"),
        get("STRATA_TEST_REGISTRY_PASSWORD"),
    ) {
        (Some(host), Some(user), Some(password)) => Some(Registry {
            host,
            user,
            password,
        }),
        _ => {
            let msg = "push tests need STRATA_TEST_REGISTRY* (run through ci/test.sh)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED {msg}");
            None
        }
    }
}

fn base64(data: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = data.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (c as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Docker config folder holding `user:password` for `host`.
pub(crate) fn docker_config(host: &str, user: &str, password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let auth = base64(&format!("{user}:{password}"));
    std::fs::write(
        dir.path().join("config.json"),
        format!("{{\"auths\": {{\"{host}\": {{\"auth\": \"{auth}\"}}}}}}"),
    )
    .unwrap();
    dir
}

fn tree(ns: &Namespace, host: &str) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{host}'\nnamespace: {}\nvars: {{base_image: '{BASE_IMAGE}'}}\n",
            ns.0
        ),
    );
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base > /base\n",
    );
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo app > /app\n",
    );
    t.write("images/app/image.yaml", "tags: [extra]\n");
    t
}

fn manifest_status(r: &Registry, path: &str, password: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            &format!("{}:{password}", r.user),
        ])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
        ])
        .arg(format!("http://{}/v2/{path}", r.host))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn push_with_the_right_password_reaches_the_registry() {
    let Some(r) = registry() else { return };
    if !engine::available("push") {
        return;
    }
    let ns = Namespace::new("push-ok");
    let t = tree(&ns, &r.host);
    let config = docker_config(&r.host, &r.user, &r.password);
    let out = t
        .command(&[
            "build",
            "--push",
            "--progress",
            "plain",
            "--summary",
            "s.json",
            "--logs-dir",
            "logs",
        ])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for path in [
        format!("{}/base/manifests/latest", ns.0),
        format!("{}/app/manifests/latest", ns.0),
        format!("{}/app/manifests/extra", ns.0),
    ] {
        assert_eq!(manifest_status(&r, &path, &r.password), "200", "{path}");
    }
    assert_eq!(
        manifest_status(&r, &format!("{}/app/manifests/latest", ns.0), "wrong"),
        "401",
        "the registry checks passwords"
    );
    // Each image is also published under its content tag, the same image.
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    for image in summary["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        let fp = &image["fingerprint"].as_str().unwrap()[..24];
        let repo = format!("{}/{name}", ns.0);
        let content = manifest_digest(&r, &repo, &format!("fp-{fp}"));
        assert!(content.is_some(), "{repo}:fp-{fp} is in the registry");
        assert_eq!(content, manifest_digest(&r, &repo, "latest"));
        assert_eq!(
            image["pushed"][0].as_str().unwrap(),
            format!("{}/{repo}:latest", r.host)
        );
    }
    assert!(!stderr.contains(&r.password));
}

#[test]
fn push_with_a_wrong_password_fails_clearly_without_leaking_it() {
    let Some(r) = registry() else { return };
    if !engine::available("push") {
        return;
    }
    let ns = Namespace::new("push-bad");
    let t = tree(&ns, &r.host);
    let wrong = "not-the-password-7f3a";
    let config = docker_config(&r.host, &r.user, wrong);
    let out = t
        .command(&[
            "build",
            "--push",
            "--progress",
            "plain",
            "--summary",
            "s.json",
            "--junit",
            "j.xml",
            "--logs-dir",
            "logs",
            "base",
        ])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Refused credentials are found before anything is built: exit 3.
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("the registry `{}` refused access", r.host)),
        "{stderr}"
    );
    assert!(stderr.contains("docker login"), "{stderr}");
    assert!(
        engine::inspect(&format!("{}/{}/base:latest", r.host, ns.0)).is_none(),
        "nothing was built"
    );
    let mut everything = format!("{stdout}{stderr}");
    for file in ["s.json", "j.xml"] {
        everything.push_str(&std::fs::read_to_string(t.path().join(file)).unwrap_or_default());
    }
    if let Ok(logs) = std::fs::read_dir(t.path().join("logs")) {
        for entry in logs {
            everything.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
    }
    assert!(
        !everything.contains(wrong),
        "the password appears in output or files"
    );
    assert!(!everything.contains(&base64(&format!("{}:{wrong}", r.user))));
    assert_eq!(
        manifest_status(&r, &format!("{}/base/manifests/latest", ns.0), &r.password),
        "404"
    );
}

#[test]
fn an_unreachable_registry_is_exit_3_and_nothing_is_built() {
    if !engine::available("unreachable registry") {
        return;
    }
    let host = crate::common::closed_address();
    let ns = Namespace::new("push-unreachable");
    let t = tree(&ns, &host);
    let out = t.command(&["build", "--push", "base"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach the registry `{host}`")),
        "{stderr}"
    );
    assert!(engine::inspect(&format!("{host}/{}/base:latest", ns.0)).is_none());
}

/// The digest the registry serves for `repo:tag` (an image, or an OCI
/// index of a multi-platform set), if any.
pub(crate) fn manifest_digest(r: &Registry, repo: &str, tag: &str) -> Option<String> {
    let out = std::process::Command::new("curl")
        .args(["-s", "-I", "-u", &format!("{}:{}", r.user, r.password)])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json",
        ])
        .arg(format!("http://{}/v2/{repo}/manifests/{tag}", r.host))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    head.lines()
        .find_map(|l| {
            l.strip_prefix("Docker-Content-Digest: ")
                .or_else(|| l.strip_prefix("docker-content-digest: "))
        })
        .map(|d| d.trim().to_string())
}

#[test]
fn an_interrupted_upload_moves_no_tag_here_or_in_the_registry() {
    let Some(r) = registry() else { return };
    if !engine::available("interrupted upload") {
        return;
    }
    let ns = Namespace::new("push-interrupt");
    let t = tree(&ns, &r.host);
    let config = docker_config(&r.host, &r.user, &r.password);
    let build = |args: &[&str]| {
        let mut cmd = t.command(args);
        cmd.env("DOCKER_CONFIG", config.path());
        cmd
    };
    let out = build(&["build", "--push"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = format!("{}/{}/base:latest", r.host, ns.0);
    let local_before = engine::inspect(&base).unwrap().0;
    let repo = format!("{}/base", ns.0);
    let remote_before = manifest_digest(&r, &repo, "latest").expect("base:latest pushed");
    // A new base with a layer large enough that its upload takes a while.
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN dd if=/dev/urandom of=/big bs=1M count=400 2>/dev/null\n",
    );
    let mut run = Running::spawn(build(&[
        "build",
        "--push",
        "--progress",
        "plain",
        "--summary",
        "s.json",
    ]));
    run.wait_for("pushing", 300);
    run.interrupt();
    let (code, stderr) = run.finish();
    assert_eq!(code, 130, "{stderr}");
    assert_eq!(
        engine::inspect(&base).unwrap().0,
        local_before,
        "local tag moved"
    );
    assert_eq!(
        manifest_digest(&r, &repo, "latest").as_deref(),
        Some(remote_before.as_str()),
        "registry tag moved"
    );
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    let images = summary["images"].as_array().unwrap();
    let status = |n: &str| images.iter().find(|i| i["name"] == n).unwrap()["status"].clone();
    assert_eq!(status("base"), "cancelled", "{summary}");
    assert_eq!(status("app"), "cancelled", "{summary}");
    assert!(images
        .iter()
        .all(|i| i["pushed"].as_array().unwrap().is_empty()));
}

#[test]
fn pull_refreshes_bases_and_rebuilds_what_is_on_them() {
    let Some(r) = registry() else { return };
    if !engine::available("pull") {
        return;
    }
    let ns = Namespace::new("pull");
    let config = docker_config(&r.host, &r.user, &r.password);
    let base = format!("{}/{}/busybox:latest", r.host, ns.0);
    let docker = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = std::process::Command::new("docker");
        cmd.args(args)
            .env("DOCKER_CONFIG", config.path())
            .env("DOCKER_BUILDKIT", "0");
        if stdin.is_some() {
            cmd.stdin(std::process::Stdio::piped());
        }
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // The base lives in the registry.
    docker(&["tag", BASE_IMAGE, &base], None);
    docker(&["push", &base], None);
    let old = engine::inspect(&base).unwrap().0;
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("namespace: {}\nvars: {{base_image: '{base}'}}\n", ns.0),
    );
    t.write(
        "images/root/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo root > /root-layer\n",
    );
    t.write(
        "images/leaf/Dockerfile.j2",
        "FROM {{ image_ref('root') }}\nRUN true\n",
    );
    t.write(
        "images/other/Dockerfile",
        "FROM scratch\nCOPY Dockerfile /\n",
    );
    let build = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["build", "--progress", "plain", "--summary", "s.json"];
        args.extend(extra);
        let out = t
            .command(&args)
            .env("DOCKER_CONFIG", config.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["status"] == "built")
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(build(&[]).len(), 3);
    assert_eq!(
        build(&["--pull"]),
        Vec::<String>::new(),
        "the same base pulled again changes nothing"
    );
    // A security update reaches the registry; this engine still has the old base.
    let new = docker(
        &["build", "-q", "-t", &base, "-"],
        Some(&format!("FROM {base}\nRUN echo patched > /patch\n")),
    );
    docker(&["push", &base], None);
    docker(&["tag", &old, &base], None);
    assert_eq!(
        build(&[]),
        Vec::<String>::new(),
        "without --pull the local base is used"
    );
    assert_eq!(
        build(&["--pull"]),
        ["root", "leaf"],
        "everything on the new base, nothing else"
    );
    assert_eq!(engine::inspect(&base).unwrap().0, new);
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &base, &new])
        .output();
}
