//! The real engine for end-to-end tests: present or loudly missing, a
//! namespace of its own per test, and images removed afterwards.

use std::process::Command;

pub const BASE_IMAGE: &str = "strata-ci/busybox:latest";

/// Whether the engine and the busybox base are there. Under CI a missing
/// engine fails the test; on a laptop the test is skipped with a message.
pub fn available(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", BASE_IMAGE])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let msg = format!("{test}: needs a Docker engine with `{BASE_IMAGE}` (run ci/setup.sh)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED {msg}");
    }
    ok
}

/// A namespace used by one test only; its images are removed on drop.
pub struct Namespace(pub String);

impl Namespace {
    pub fn new(test: &str) -> Namespace {
        Namespace(format!(
            "strata-test-{}-{}",
            std::process::id(),
            test.replace('_', "-")
        ))
    }

    pub fn set(&self) -> String {
        format!("namespace={}", self.0)
    }

    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}:latest", self.0)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Namespace {
    /// Remove every image of this namespace from the engine (a fresh worker).
    pub fn clear(&self) {
        self.clear_on(None);
    }

    /// The same on the engine at `host` (None: the docker CLI's own).
    pub fn clear_on(&self, host: Option<&str>) {
        let docker = || {
            let mut cmd = Command::new("docker");
            if let Some(h) = host {
                cmd.args(["-H", h]);
            }
            cmd
        };
        // Tagged images by tag, images pulled by digest by `repo@digest`.
        let Ok(out) = docker()
            .args([
                "images",
                "--digests",
                "--format",
                "{{.Repository}} {{.Tag}} {{.Digest}}",
            ])
            .output()
        else {
            return;
        };
        let refs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!("{}/", self.0)))
            .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                [repo, tag, _] if tag != "<none>" => Some(format!("{repo}:{tag}")),
                [repo, _, digest] if digest != "<none>" => Some(format!("{repo}@{digest}")),
                _ => None,
            })
            .collect();
        if !refs.is_empty() {
            let _ = docker().arg("rmi").arg("-f").args(&refs).output();
        }
    }
}

/// `docker image inspect` of `reference`: (id, labels), or None.
pub fn inspect(reference: &str) -> Option<(String, serde_json::Value)> {
    let out = Command::new("docker")
        .args(["image", "inspect", reference])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((
        v[0]["Id"].as_str()?.to_string(),
        v[0]["Config"]["Labels"].clone(),
    ))
}

/// Run a command in a fresh container of `reference`; its stdout.
pub fn run_in(reference: &str, cmd: &[&str]) -> String {
    let out = Command::new("docker")
        .args(["run", "--rm", reference])
        .args(cmd)
        .output()
        .expect("docker run");
    assert!(
        out.status.success(),
        "docker run {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The filesystem layers of `reference`, bottom first (empty when absent).
pub fn layers(reference: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            reference,
        ])
        .output()
        .expect("docker image inspect");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// `docker tag SOURCE TARGET`.
pub fn tag(source: &str, target: &str) {
    let ok = Command::new("docker")
        .args(["tag", source, target])
        .status()
        .expect("docker tag")
        .success();
    assert!(ok, "docker tag {source} {target}");
}
