//! An engine reached over TLS, as the docker CLI reaches it: through a
//! docker context made by `docker context create` with a CA and a client
//! certificate, and through `DOCKER_HOST` + `DOCKER_TLS_VERIFY` +
//! `DOCKER_CERT_PATH`. ci/setup.sh runs a second dockerd that speaks TLS
//! only (`STRATA_TEST_TLS_HOST`, certificates in `STRATA_TEST_TLS_CERTS`).

use crate::common::engine::BASE_IMAGE;
use crate::common::TestTree;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The TLS-only engine of ci/setup.sh: its address and certificates folder.
pub(crate) fn tls_engine() -> Option<(String, PathBuf)> {
    let mut v = crate::common::settings(
        &["STRATA_TEST_TLS_HOST", "STRATA_TEST_TLS_CERTS"],
        "the TLS engine",
    )?;
    let certs = v.pop()?;
    Some((v.pop()?, certs.into()))
}

fn docker(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap()
}

#[test]
fn a_tls_context_and_tls_variables_reach_the_engine() {
    let Some((host, certs)) = tls_engine() else {
        return;
    };
    let config = tempfile::tempdir().unwrap();
    let cert = |f: &str| certs.join(f).display().to_string();
    let made = docker(
        config.path(),
        &[
            "context",
            "create",
            "strata-tls",
            "--docker",
            &format!(
                "host={host},ca={},cert={},key={}",
                cert("ca.pem"),
                cert("cert.pem"),
                cert("key.pem")
            ),
        ],
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let ns = format!("strata-tls-{}", std::process::id());
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("namespace: {ns}\nvars: {{base_image: '{BASE_IMAGE}'}}\n"),
    )
    .write(
        "images/app/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo over tls > /tls\n",
    );
    let strata = |envs: &[(&str, &str)], args: &[&str]| {
        let mut cmd = t.command(args);
        cmd.env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_HOST");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = strata(
        &[("DOCKER_CONTEXT", "strata-tls")],
        &["build", "--progress", "plain", "--summary", "s.json"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    assert_eq!(summary["images"][0]["engine"], host.as_str());
    // Built there, and only there.
    let there = docker(
        config.path(),
        &[
            "--context",
            "strata-tls",
            "run",
            "--rm",
            &format!("{ns}/app:latest"),
            "cat",
            "/tls",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&there.stdout), "over tls\n");
    let here = Command::new("docker")
        .args(["image", "inspect", &format!("{ns}/app:latest")])
        .output()
        .unwrap();
    assert!(!here.status.success(), "not on the main engine");

    // The variables the CLI reads: the same engine, up to date.
    let vars = [
        ("DOCKER_HOST", host.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
    ];
    let out = strata(&vars, &["build", "--progress", "plain"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("1 images: 1 up-to-date"), "{err}");

    // A certificate folder without the client key: exit 3, saying what is missing.
    let partial = tempfile::tempdir().unwrap();
    std::fs::copy(certs.join("ca.pem"), partial.path().join("ca.pem")).unwrap();
    std::fs::copy(certs.join("cert.pem"), partial.path().join("cert.pem")).unwrap();
    let out = strata(
        &[
            ("DOCKER_HOST", host.as_str()),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", partial.path().to_str().unwrap()),
        ],
        &["plan"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("has no `key.pem`"), "{err}");

    // A CA that did not sign the engine's certificate: refused, exit 3.
    let wrong = tempfile::tempdir().unwrap();
    std::fs::copy(certs.join("cert.pem"), wrong.path().join("ca.pem")).unwrap();
    std::fs::copy(certs.join("cert.pem"), wrong.path().join("cert.pem")).unwrap();
    std::fs::copy(certs.join("key.pem"), wrong.path().join("key.pem")).unwrap();
    let out = strata(
        &[
            ("DOCKER_HOST", host.as_str()),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", wrong.path().to_str().unwrap()),
        ],
        &["plan"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&host), "{err}");
    let _ = docker(
        config.path(),
        &[
            "--context",
            "strata-tls",
            "rmi",
            &format!("{ns}/app:latest"),
        ],
    );
}

/// A remote engine with no `platforms:` builds what BuildKit's worker
/// list says it can, emulated platforms included: a two-platform set
/// plans its arm64 records on the TLS engine (its binfmt handlers cannot
/// be read from here), where an engine of its own platform only would be
/// exit 2.
#[test]
fn a_remote_engine_builds_the_platforms_its_buildkit_workers_list() {
    let Some((host, certs)) = tls_engine() else {
        return;
    };
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "namespace: strata-tls-workers-{}\nplatforms: [linux/amd64, linux/arm64]\n\
             vars: {{base_image: '{BASE_IMAGE}'}}\n",
            std::process::id()
        ),
    );
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN true\n",
    );
    let out = t
        .command(&["plan"])
        .env("DOCKER_HOST", &host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &certs)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("base@arm64"), "{stdout}");
}
