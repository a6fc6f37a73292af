//! Multi-platform sets, measured:
//!
//! 1. A fresh worker's no-op `strata build` of a 200-image tree for
//!    linux/amd64 and linux/arm64 (400 records), everything published, on
//!    the open loopback registry, beside the registry's floor: the same
//!    requests (each record's content-tag manifest, then its config blob;
//!    64 records at once, as strata asks) made by a minimal client with one
//!    connection pool. Then the same through the htpasswd registry (one
//!    bcrypt check per request). Then one platform's no-op beside its
//!    floor. Medians of 5.
//! 2. The sample set for both platforms on a pool of two engines against
//!    two one-platform runs back to back on the same pool, `--force
//!    --no-cache --no-tests`, medians of 3 rounds; arm64 emulated. Twice:
//!    one engine per platform (bashbrew's shape: each architecture on its
//!    own builders), then both engines listed for both platforms.
//!
//! Needs ci/setup.sh (registries, pool engines, arm64 base, binfmt).
//! Run: `cargo bench --bench multiarch [-- noop|pool]`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const N: usize = 200;
const ARM64_BASE: &str = "strata-ci/busybox:arm64";

/// `strata -C dir ARGS` with `DOCKER_CONFIG=config`; it must succeed.
fn strata(dir: &Path, config: &Path, args: &[&str]) -> Duration {
    let (out, took) = common::time(|| {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("DOCKER_CONFIG", config)
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "strata {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn clear_engine(ns: &str) {
    let script = format!(
        "docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '/{ns}/' | grep -v '<none>' | xargs -r docker rmi -f >/dev/null"
    );
    let _ = Command::new("sh").arg("-c").arg(script).status();
}

/// The open registry's time for the requests of a fresh-worker lookup of
/// every record: the content tag's manifest, then its config, 64 records
/// at once, one connection pool. Median of 5.
fn floor(host: &str, ns: &str, content_tags: &[(String, String)]) -> Duration {
    use futures_util::StreamExt;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
    let get = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).header("Accept", accept).send().await;
            r.unwrap().bytes().await.unwrap()
        }
    };
    let one = |(repo, tag): (String, String)| async move {
        let base = format!("http://{host}/v2/{ns}/{repo}");
        let m = get(format!("{base}/manifests/{tag}")).await;
        let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
        let config = m["config"]["digest"].as_str().unwrap().to_string();
        get(format!("{base}/blobs/{config}")).await;
    };
    let times = (0..5)
        .map(|_| {
            common::time(|| {
                rt.block_on(
                    futures_util::stream::iter(content_tags.iter().cloned().map(one))
                        .buffer_unordered(64)
                        .for_each(|_| async {}),
                )
            })
            .1
        })
        .collect();
    common::median(times)
}

fn noop() {
    let open = common::setting("STRATA_TEST_OPEN_REGISTRY");
    let auth = common::setting("STRATA_TEST_REGISTRY");
    let config = common::docker_config(
        &auth,
        &common::setting("STRATA_TEST_REGISTRY_USER"),
        &common::setting("STRATA_TEST_REGISTRY_PASSWORD"),
    );
    // A fixed namespace: the registry keeps the set, so a re-run starts at once.
    let ns = "bench-multiarch";
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(dir.path(), N, &|i| format!("LABEL bench.step={i}"));
    let yaml = dir.path().join("strata.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap().replace(
        "namespace: bench\n",
        &format!(
            "registry: '{open}'\nnamespace: {ns}\nplatforms: [linux/amd64, linux/arm64]\n\
             platform_vars: {{linux/arm64: {{base_image: '{ARM64_BASE}'}}}}\n\
             engines: [{{host: docker, platforms: [linux/amd64, linux/arm64]}}]\n"
        ),
    );
    std::fs::write(&yaml, text).unwrap();
    let cfg = config.path();
    let first = strata(
        dir.path(),
        cfg,
        &[
            "build",
            "--push",
            "--no-tests",
            "-j",
            "2",
            "--progress",
            "quiet",
        ],
    );
    println!(
        "{N} images x 2 platforms built and pushed (or found published) in {:.0} s",
        first.as_secs_f64()
    );
    // The content tags, as `plan --json` names them.
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("-C")
        .arg(dir.path())
        .args(["plan", "--json"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tags_of = |platform: Option<&str>| -> Vec<(String, String)> {
        plan.as_array()
            .unwrap()
            .iter()
            .filter(|i| platform.is_none_or(|p| i["platform"] == p))
            .map(|i| {
                let name = i["name"].as_str().unwrap();
                let repo = name.split('@').next().unwrap().to_string();
                let fp = i["fingerprint"].as_str().unwrap();
                (repo, format!("fp-{}", &fp[..24]))
            })
            .collect()
    };
    let tags = tags_of(None);
    assert_eq!(
        tags.len(),
        2 * N,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |registry: &str, platform: &str| -> Duration {
        clear_engine(ns);
        let set = format!("registry={registry}");
        strata(
            dir.path(),
            cfg,
            &[
                "--set",
                &set,
                "build",
                "--platform",
                platform,
                "--progress",
                "quiet",
            ],
        )
    };
    let both = "linux/amd64,linux/arm64";
    let open_runs: Vec<Duration> = (0..5).map(|_| run(&open, both)).collect();
    let auth_runs: Vec<Duration> = (0..5).map(|_| run(&auth, both)).collect();
    let one_runs: Vec<Duration> = (0..5).map(|_| run(&open, "linux/amd64")).collect();
    let floor_one = floor(&open, ns, &tags_of(Some("linux/amd64")));
    let floor = floor(&open, ns, &tags);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (o, a) = (common::median(open_runs), common::median(auth_runs));
    let one = common::median(one_runs);
    println!(
        "fresh-worker no-op build, {N} images x 2 platforms = {} records, medians of 5:",
        2 * N
    );
    println!("  strata, open registry                 {:6.0} ms", ms(o));
    println!(
        "  the registry's floor (same {} requests) {:6.0} ms   strata / floor {:.2}",
        4 * N,
        ms(floor),
        o.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  strata, htpasswd registry             {:6.0} ms   (2 requests per record)",
        ms(a)
    );
    println!("the same, one platform (--platform linux/amd64, {N} records):");
    println!("  strata, open registry                 {:6.0} ms", ms(one));
    println!(
        "  the registry's floor (same {} requests) {:6.0} ms   strata / floor {:.2}",
        2 * N,
        ms(floor_one),
        one.as_secs_f64() / floor_one.as_secs_f64()
    );
    clear_engine(ns);
}

/// The sample set both ways on a pool of two engines whose `engines:`
/// entries `shape` writes (from the two hosts); medians of 3 rounds.
fn pool_as(label: &str, hosts: &[&str], shape: &dyn Fn(&str, &str) -> String) {
    let open = common::setting("STRATA_TEST_OPEN_REGISTRY");
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("config.json"), "{}").unwrap();
    let dir = tempfile::tempdir().unwrap();
    common::copy_sample(dir.path());
    let yaml = dir.path().join("strata.yaml");
    let ns = format!("bench-mp-pool-{}", std::process::id());
    let text = std::fs::read_to_string(&yaml)
        .unwrap()
        .replace("registry: \"\"", &format!("registry: '{open}'"))
        .replace("namespace: strata", &format!("namespace: {ns}"))
        + &format!(
            "platform_vars: {{linux/arm64: {{base_image: '{ARM64_BASE}'}}}}\nengines: [{}]\n",
            shape(hosts[0], hosts[1])
        );
    std::fs::write(&yaml, text).unwrap();
    let cfg = config.path();
    let build = |platform: &str| {
        strata(
            dir.path(),
            cfg,
            &[
                "build",
                "--push",
                "--force",
                "--no-cache",
                "--no-tests",
                "--platform",
                platform,
                "--progress",
                "quiet",
            ],
        )
    };
    let (mut set, mut apart) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        set.push(build("linux/amd64,linux/arm64"));
        apart.push(build("linux/amd64") + build("linux/arm64"));
    }
    let (s, a) = (common::median(set), common::median(apart));
    println!("sample set (13 images) on 2 engines, {label}; --force --no-cache --no-tests, medians of 3:");
    println!(
        "  both platforms in one set          {:6.1} s",
        s.as_secs_f64()
    );
    println!(
        "  amd64 then arm64, two runs         {:6.1} s",
        a.as_secs_f64()
    );
    println!(
        "  set / two runs                     {:6.2}",
        s.as_secs_f64() / a.as_secs_f64()
    );
    for h in hosts {
        let script = format!(
            "docker -H {h} images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '/{ns}/' | grep -v '<none>' | xargs -r docker -H {h} rmi -f >/dev/null"
        );
        let _ = Command::new("sh").arg("-c").arg(script).status();
    }
}

fn pool() {
    let engines = common::setting("STRATA_TEST_POOL_ENGINES");
    let hosts: Vec<&str> = engines.split_whitespace().collect();
    pool_as("one engine per platform", &hosts, &|a, b| {
        format!(
            "{{host: '{a}', jobs: 2, platforms: [linux/amd64]}}, \
             {{host: '{b}', jobs: 2, platforms: [linux/arm64]}}"
        )
    });
    pool_as("both listed for both platforms", &hosts, &|a, b| {
        format!(
            "{{host: '{a}', jobs: 2, platforms: [linux/amd64, linux/arm64]}}, \
             {{host: '{b}', jobs: 2, platforms: [linux/amd64, linux/arm64]}}"
        )
    });
}

fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let want = |part: &str| only.as_deref().is_none_or(|o| o == part);
    if want("noop") {
        noop();
    }
    if want("pool") {
        pool();
    }
}
