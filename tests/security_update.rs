//! The operator's security-update flow against the real registry: a set
//! installs a package from an apt repository (served here, over HTTP, to
//! the build's containers); `build --push --no-publish --attest-dir` then
//! `publish --attest-dir` attaches each image's SBOM; a fixed version is
//! published in the repository (nothing in the tree changes, so the plan
//! builds nothing); `affected --package` reads the SBOMs from the registry
//! and names exactly the holders of the old version; `build --package …
//! --pull` rebuilds exactly those and what is built on them, and after it
//! the registry's SBOMs, and `dpkg-query` in the images, hold the fix.

use crate::common::engine::{self, Namespace};
use crate::common::TestTree;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const DEBIAN: &str = "strata-ci/debian:bookworm";

/// A static file server on every address (the build's containers reach it
/// at the bridge's gateway), one thread per connection, `Connection: close`.
fn serve(dir: PathBuf) -> u16 {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&conn);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let head = line.starts_with("HEAD");
                while let Ok(n) = reader.read_line(&mut String::new()) {
                    if n <= 2 {
                        break;
                    }
                }
                let file = dir.join(path.trim_start_matches('/').trim_start_matches("./"));
                let mut out = &conn;
                let _ = match std::fs::read(&file).ok().filter(|_| file.is_file()) {
                    Some(body) => {
                        let _ = write!(
                            out,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        if head {
                            Ok(())
                        } else {
                            out.write_all(&body)
                        }
                    }
                    None => write!(
                        out,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                };
            });
        }
    });
    port
}

/// Publish `strata-probe` at `version` as the only package of the flat
/// apt repository in `repo`.
fn publish_probe(repo: &Path, version: &str) {
    let work = tempfile::tempdir().unwrap();
    let pkg = work.path().join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("usr/share/strata-probe")).unwrap();
    let control = format!(
        "Package: strata-probe\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@t>\nDescription: probe\n"
    );
    std::fs::write(pkg.join("DEBIAN/control"), &control).unwrap();
    std::fs::write(pkg.join("usr/share/strata-probe/version"), version).unwrap();
    let name = format!("strata-probe_{version}_all.deb");
    let built = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(repo.join(&name))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = std::fs::read(repo.join(&name)).unwrap();
    let sha = Command::new("sha256sum")
        .arg(repo.join(&name))
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout);
    let packages = format!(
        "{}Filename: ./{name}\nSize: {}\nSHA256: {}\n\n",
        control.replace("Description: probe\n", ""),
        deb.len(),
        sha.split_whitespace().next().unwrap()
    );
    std::fs::write(repo.join("Packages"), packages).unwrap();
}

fn built(t: &TestTree, summary: &str) -> BTreeSet<String> {
    let s: serde_json::Value = serde_json::from_str(&t.read(summary)).unwrap();
    s["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "built")
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_security_update_rebuilds_exactly_the_images_holding_the_old_version() {
    let Some(r) = crate::push::registry() else {
        return;
    };
    if engine::inspect(DEBIAN).is_none() {
        let msg = format!("the security-update test needs `{DEBIAN}` (run through ci/test.sh)");
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
        eprintln!("SKIPPED {msg}");
        return;
    }
    let config = crate::push::docker_config(&r.host, &r.user, &r.password);
    let ns = Namespace::new("security-update");
    let repo = tempfile::tempdir().unwrap();
    publish_probe(repo.path(), "1.0");
    let port = serve(repo.path().to_path_buf());
    // The base comes from the registry, as a fresh worker's would (--pull).
    // Outside the tree's namespace (which names only the tree's images).
    let base = format!("{}/{}-base/debian:bookworm", r.host, ns.0);
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .env("DOCKER_CONFIG", config.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    docker(&["tag", DEBIAN, &base]);
    docker(&["push", &base]);
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nvars: {{base_image: '{base}', apt: 'http://172.17.0.1:{port}/'}}\n",
            r.host, ns.0
        ),
    );
    let install = "RUN echo 'deb [trusted=yes] {{ apt }} ./' > /etc/apt/sources.list.d/probe.list \\\n && apt-get -qq -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/probe.list -o Dir::Etc::sourceparts=- update \\\n && apt-get install -qq -y strata-probe >/dev/null && rm -rf /var/lib/apt/lists/*\n";
    t.write(
        "images/probed/Dockerfile.j2",
        &format!("FROM {{{{ base_image }}}}\n{install}"),
    );
    t.write(
        "images/child/Dockerfile.j2",
        "FROM {{ image_ref('probed') }}\nRUN echo child > /child\n",
    );
    t.write(
        "images/leaf/Dockerfile.j2",
        "FROM {{ image_ref('child') }}\nRUN echo leaf > /leaf\n",
    );
    t.write(
        "images/plain/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo plain > /plain\n",
    );
    let strata = |args: &[&str]| {
        let out = t
            .command(args)
            .env("DOCKER_CONFIG", config.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(0), "strata {args:?}: {err}");
        (String::from_utf8_lossy(&out.stdout).to_string(), err)
    };
    // A CI fan-out: content tags first, then one publish that attaches.
    strata(&[
        "build",
        "--push",
        "--no-publish",
        "--no-tests",
        "--attest-dir",
        "att",
    ]);
    let (_, published) = strata(&["publish", "--attest-dir", "att"]);
    for name in ["probed", "child", "leaf", "plain"] {
        assert!(
            published.contains(&format!("{name}: 2 attestations attached")),
            "{published}"
        );
    }
    let holders = |range: &str| -> BTreeSet<String> {
        let (out, _) = strata(&["affected", "--package", &format!("strata-probe@{range}")]);
        out.lines()
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let old: BTreeSet<String> = ["child", "leaf", "probed"].map(String::from).into();
    assert_eq!(holders("<1.1"), old, "from the registry's SBOMs");
    let before = crate::push::manifest_digest(&r, &format!("{}/probed", ns.0), "latest");
    // The fix is published upstream; the tree does not change.
    publish_probe(repo.path(), "1.1");
    let (plan, _) = strata(&["plan"]);
    assert!(plan.contains("0 to build"), "{plan}");
    strata(&[
        "build",
        "--push",
        "--no-tests",
        "--pull",
        "--attest-dir",
        "att",
        "--package",
        "strata-probe@<1.1",
        "--summary",
        "s.json",
    ]);
    assert_eq!(
        built(&t, "s.json"),
        old,
        "exactly the holders and their descendants"
    );
    // The release tag moved to the rebuilt image (same content tag, new manifest).
    let served = crate::push::manifest_digest(&r, &format!("{}/probed", ns.0), "latest");
    assert_ne!(served, before, "the release tag still names the old image");
    assert_eq!(holders("<1.1"), BTreeSet::new());
    assert_eq!(holders(">=1.1"), old);
    let installed = engine::run_in(
        &format!("{}/{}/leaf:latest", r.host, ns.0),
        &["cat", "/usr/share/strata-probe/version"],
    );
    assert_eq!(installed.trim(), "1.1");
    let _ = Command::new("docker").args(["rmi", &base]).output();
}
