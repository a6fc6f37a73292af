//! What attestations cost.
//!
//! 1. The sample set, `build --force --no-cache --no-tests -j 2`, with and
//!    without `--attest-dir DIR --sign-key KEY` (SBOM, provenance, signing;
//!    no registry), in turn, 3 runs each: medians and the added share.
//! 2. `strata affected --package` over 200 images' SBOMs in a folder (each a
//!    Debian image's SPDX document, 90-odd packages), 5 runs: median.
//! 3. The same over the registry: 200 Debian images pushed with their SBOMs
//!    attached (once; the registry keeps them under target/ci), read by
//!    `affected --package` without a folder through the open loopback
//!    registry and through the htpasswd one (the same storage), 5 runs each.
//!
//! Needs ci/setup.sh (engine, busybox and Debian bases) and openssl.
//! Run: `cargo bench --bench attest [-- sample|folder|registry]`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const RUNS: usize = 3;

fn strata(dir: &Path, args: &[&str]) -> Duration {
    common::strata_run(env!("CARGO_BIN_EXE_strata"), dir, args)
}

fn sample_set() {
    let dir = tempfile::tempdir().unwrap();
    common::copy_sample(dir.path());
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(dir.path().join("key.pem"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl genpkey");
    let ns = format!("namespace=strata-bench-att{}", std::process::id());
    let base = [
        "--set",
        &ns,
        "build",
        "--force",
        "--no-cache",
        "--no-tests",
        "-j",
        "2",
        "--progress",
        "quiet",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    let attest = ["--attest-dir", "att", "--sign-key", "key.pem"];
    strata(dir.path(), &with(&[]));
    let (mut plain, mut attested) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        plain.push(strata(dir.path(), &with(&[])));
        attested.push(strata(dir.path(), &with(&attest)));
    }
    let (plain, attested) = (common::median(plain), common::median(attested));
    println!("sample set (13 images), --force --no-cache --no-tests -j 2, medians of {RUNS}:");
    println!(
        "  build                                   {:6.2} s",
        plain.as_secs_f64()
    );
    println!(
        "  build --attest-dir --sign-key           {:6.2} s",
        attested.as_secs_f64()
    );
    println!(
        "  added                                   {:+6.1} %",
        (attested.as_secs_f64() / plain.as_secs_f64() - 1.0) * 100.0
    );
    let script = format!("docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^{}/' | xargs -r docker rmi -f >/dev/null", &ns["namespace=".len()..]);
    let _ = Command::new("sh").arg("-c").arg(script).status();
}

fn affected_200() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strata.yaml"),
        "vars: {base_image: 'strata-ci/debian:bookworm'}\nnamespace: strata-bench-sbom\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("images/deb")).unwrap();
    std::fs::write(
        dir.path().join("images/deb/Dockerfile.j2"),
        "FROM {{ base_image }}\nRUN true\n",
    )
    .unwrap();
    strata(
        dir.path(),
        &[
            "build",
            "--no-tests",
            "--attest-dir",
            "one",
            "--progress",
            "quiet",
        ],
    );
    let doc = std::fs::read(dir.path().join("one/deb.spdx.json")).unwrap();
    std::fs::create_dir_all(dir.path().join("sboms")).unwrap();
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("sboms/img{i:03}.spdx.json")), &doc).unwrap();
    }
    let args = [
        "affected",
        "--package",
        "libc6@<99",
        "--attest-dir",
        "sboms",
    ];
    strata(dir.path(), &args);
    let times: Vec<Duration> = (0..5).map(|_| strata(dir.path(), &args)).collect();
    println!(
        "affected --package over 200 SBOMs in a folder: median {:.0} ms (5 runs)",
        common::median(times).as_secs_f64() * 1e3
    );
    let _ = Command::new("docker")
        .args(["rmi", "-f", "strata-bench-sbom/deb:latest"])
        .output();
}

/// `KEY` of target/ci/registry.env.
fn setting(key: &str) -> Option<String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci/registry.env");
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_string())
}

fn affected_registry_200() {
    let (Some(open), Some(auth), Some(user), Some(password)) = (
        setting("STRATA_TEST_OPEN_REGISTRY"),
        setting("STRATA_TEST_REGISTRY"),
        setting("STRATA_TEST_REGISTRY_USER"),
        setting("STRATA_TEST_REGISTRY_PASSWORD"),
    ) else {
        println!("affected over the registry: SKIPPED, no registries in target/ci/registry.env (run ci/setup.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A fixed namespace: a re-run finds the set published and builds nothing.
    std::fs::write(
        dir.path().join("strata.yaml"),
        format!("registry: '{open}'\nnamespace: bench-sbom\nvars: {{base_image: 'strata-ci/debian:bookworm'}}\n"),
    )
    .unwrap();
    for i in 0..200 {
        let image = dir.path().join(format!("images/img{i:03}"));
        std::fs::create_dir_all(&image).unwrap();
        std::fs::write(
            image.join("Dockerfile.j2"),
            format!("FROM {{{{ base_image }}}}\nLABEL strata.bench.image={i}\n"),
        )
        .unwrap();
    }
    let first = strata(
        dir.path(),
        &[
            "build",
            "--push",
            "--no-tests",
            "-j",
            "2",
            "--attest-dir",
            "att",
            "--progress",
            "quiet",
        ],
    );
    println!(
        "200 Debian images built, pushed and attested (or found published) in {:.0} s",
        first.as_secs_f64()
    );
    let args = ["affected", "--package", "libc6@<99"];
    let count = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("-C")
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    let holders = String::from_utf8_lossy(&count.stdout).lines().count();
    assert_eq!(holders, 200, "{}", String::from_utf8_lossy(&count.stderr));
    let config = common::docker_config(&auth, &user, &password);
    // Cold: an empty cache folder (a fresh worker), four requests per
    // image; warm: the packages kept by digest, one request per image.
    let cache = tempfile::tempdir().unwrap();
    let time = |registry: &str, cold: bool| -> Duration {
        if cold {
            let _ = std::fs::remove_dir_all(cache.path().join("strata"));
        }
        let set = format!("registry={registry}");
        let (out, took) = common::time(|| {
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .arg("-C")
                .arg(dir.path())
                .args(["--set", &set])
                .args(args)
                .env("DOCKER_CONFIG", config.path())
                .env("XDG_CACHE_HOME", cache.path())
                .output()
                .unwrap()
        });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 200);
        took
    };
    let ms = |v: Vec<Duration>| common::median(v).as_secs_f64() * 1e3;
    let mut rows = Vec::new();
    for (label, registry) in [("open", &open), ("htpasswd", &auth)] {
        let cold: Vec<Duration> = (0..5).map(|_| time(registry, true)).collect();
        let warm: Vec<Duration> = (0..5).map(|_| time(registry, false)).collect();
        rows.push((label, ms(cold), ms(warm)));
    }
    println!("affected --package over 200 images' SBOMs in the registry, medians of 5:");
    for (label, cold, warm) in rows {
        println!(
            "  {label:9} cold (4 requests per image) {cold:6.0} ms   warm (1 request per image) {warm:6.0} ms"
        );
    }
    // The registry's floor: the same 800 requests of a cold run, all at
    // once (16 in flight, one connection pool), with nothing between them.
    let floor = registry_floor(&open);
    println!("  the open registry's floor for those 800 requests (16 in flight): {floor:.0} ms");
    let script = "docker images --format '{{.Repository}}:{{.Tag}}' | grep '/bench-sbom/' | xargs -r docker rmi -f >/dev/null";
    let _ = Command::new("sh").arg("-c").arg(script).status();
}

/// The time the open registry takes to answer the four requests of a cold
/// `affected` for each of the 200 images, all issued at once (16 in
/// flight, one connection pool) by a minimal client, with nothing between
/// them: the chain's digests are read first, untimed. Median of 5.
fn registry_floor(host: &str) -> f64 {
    use futures_util::StreamExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
    let get = |url: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(&url)
                .header("Accept", accept)
                .send()
                .await
                .unwrap();
            let digest = r
                .headers()
                .get("docker-content-digest")
                .map(|v| v.to_str().unwrap().to_string());
            (digest, r.bytes().await.unwrap())
        }
    };
    let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
    let urls: Vec<String> = rt.block_on(async {
        let mut urls = Vec::new();
        for i in 0..200 {
            let base = format!("http://{host}/v2/bench-sbom/img{i:03}");
            let manifest = format!("{base}/manifests/latest");
            let (digest, _) = get(manifest.clone()).await;
            let index = format!("{base}/manifests/sha256-{}", &digest.unwrap()[7..]);
            let (_, body) = get(index.clone()).await;
            let sbom = json(&body)["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|m| m["artifactType"] == "application/spdx+json")
                .unwrap()["digest"]
                .as_str()
                .unwrap()
                .to_string();
            let artifact = format!("{base}/manifests/{sbom}");
            let (_, body) = get(artifact.clone()).await;
            let blob = format!(
                "{base}/blobs/{}",
                json(&body)["layers"][0]["digest"].as_str().unwrap()
            );
            urls.extend([manifest, index, artifact, blob]);
        }
        urls
    });
    let times: Vec<Duration> = (0..5)
        .map(|_| {
            common::time(|| {
                rt.block_on(
                    futures_util::stream::iter(urls.iter().cloned().map(get))
                        .buffer_unordered(16)
                        .for_each(|_| async {}),
                )
            })
            .1
        })
        .collect();
    common::median(times).as_secs_f64() * 1e3
}

fn main() {
    let have = |image: &str| {
        Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("strata-ci/busybox:latest") || !have("strata-ci/debian:bookworm") {
        eprintln!("attest bench: needs the engine, strata-ci/busybox:latest and strata-ci/debian:bookworm (run ci/setup.sh)");
        return;
    }
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |part: &str| only.as_deref().is_none_or(|o| o == part);
    if want("sample") {
        sample_set();
    }
    if want("folder") {
        affected_200();
    }
    if want("registry") {
        affected_registry_200();
    }
}
