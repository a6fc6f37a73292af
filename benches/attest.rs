//! What attestations cost.
//!
//! 1. The sample set, `build --force --no-cache --no-tests -j 2`, with and
//!    without `--attest-dir DIR --sign-key KEY` (SBOM, provenance, signing;
//!    no registry), in turn, 3 runs each: medians and the added share.
//! 2. `strata affected --package` over 200 images' SBOMs in a folder (each a
//!    Debian image's SPDX document, 90-odd packages), 5 runs: median.
//!
//! Needs ci/setup.sh (engine, busybox and Debian bases) and openssl.
//! Run: `cargo bench --bench attest`.

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
    sample_set();
    affected_200();
}
