//! The incremental promise, measured:
//! 1. no-op `strata build` on the sample set after a full build, against
//!    sending every image to the engine again and letting its layer cache
//!    answer (what `bake` and `kolla-build` do), same run;
//! 2. no-op `strata build` on a generated 200-image tree;
//! 3. context hashing throughput on a 1 GiB context (many small files and a
//!    few large ones), warm page cache.
//!
//! Needs ci/setup.sh (engine and busybox base). Run: `cargo bench --bench incremental`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn strata(dir: &Path, args: &[&str]) -> Duration {
    common::strata_run(env!("CARGO_BIN_EXE_strata"), dir, args)
}

/// Every rendered Dockerfile through `docker build`, parents first: the
/// engine's layer cache answers each step.
fn engine_cache(dir: &Path, ns: &str) -> Duration {
    let out = dir.join("rendered");
    strata(
        dir,
        &[
            "--set",
            &format!("namespace={ns}"),
            "render",
            "--out",
            "rendered",
        ],
    );
    let list = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("-C")
        .arg(dir)
        .args(["--set", &format!("namespace={ns}"), "list", "--json"])
        .output()
        .unwrap();
    let images: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let (_, took) = common::time(|| {
        for i in images.as_array().unwrap() {
            let name = i["name"].as_str().unwrap();
            let context = dir.join(i["path"].as_str().unwrap());
            let b = Command::new("docker")
                .args(["build", "-q", "-t", i["ref"].as_str().unwrap(), "-f"])
                .arg(out.join(name).join("Dockerfile"))
                .arg(&context)
                .env("DOCKER_BUILDKIT", "0")
                .output()
                .unwrap();
            assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
        }
    });
    took
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    if !Command::new("docker")
        .args(["image", "inspect", "strata-ci/busybox:latest"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!(
            "incremental bench: needs the engine and strata-ci/busybox:latest (run ci/setup.sh)"
        );
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("STRATA_CACHE_DIR", cache.path());
    let ns = format!("strata-bench-noop-{}", std::process::id());

    // 1. The sample set.
    let sample = tempfile::tempdir().unwrap();
    common::copy_sample(sample.path());
    let set = format!("namespace={ns}");
    strata(
        sample.path(),
        &["--set", &set, "build", "--progress", "quiet"],
    );
    let noop = common::median(
        (0..7)
            .map(|_| {
                strata(
                    sample.path(),
                    &["--set", &set, "build", "--progress", "quiet"],
                )
            })
            .collect(),
    );
    let cached = common::median(
        (0..3)
            .map(|_| engine_cache(sample.path(), &format!("{ns}-cache")))
            .collect(),
    );
    println!("no-op build, sample set (13 images): strata {:.0} ms; every image through the engine's layer cache {:.0} ms; strata {:.0}x faster", ms(noop), ms(cached), cached.as_secs_f64() / noop.as_secs_f64());

    // 2. A generated 200-image tree.
    let big = tempfile::tempdir().unwrap();
    // Two steps per image: the no-op, not the full build, is what is measured.
    std::fs::write(
        big.path().join("strata.yaml"),
        "vars: {base_image: 'strata-ci/busybox:latest'}\n",
    )
    .unwrap();
    for i in 0..200 {
        let from = match common::parent_of(i, 200) {
            None => "{{ base_image }}".to_string(),
            Some(p) => format!("{{{{ image_ref('{}') }}}}", common::name(p)),
        };
        let d = big.path().join(format!("images/{}", common::name(i)));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("Dockerfile.j2"),
            format!("FROM {from}\nRUN echo {i} > /id\n"),
        )
        .unwrap();
    }
    let set200 = format!("namespace={ns}-200");
    let (_, full) = common::time(|| {
        strata(
            big.path(),
            &["--set", &set200, "build", "-j", "4", "--progress", "quiet"],
        )
    });
    let noop200 = common::median(
        (0..7)
            .map(|_| {
                strata(
                    big.path(),
                    &["--set", &set200, "build", "--progress", "quiet"],
                )
            })
            .collect(),
    );
    println!(
        "no-op build, generated tree (200 images): {:.0} ms (full build was {:.0} s)",
        ms(noop200),
        full.as_secs_f64()
    );

    // 3. Hashing a 1 GiB context: 12,000 files of 64 KiB and 4 of 64 MiB.
    let ctx = tempfile::tempdir().unwrap();
    let mut total = 0u64;
    let block: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    for i in 0..12_000 {
        let p = ctx.path().join(format!("d{}/f{i}", i % 100));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut data = block.clone();
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(p, data).unwrap();
        total += 64 * 1024;
    }
    for i in 0..4 {
        let big: Vec<u8> = (0..64 * 1024 * 1024u32)
            .map(|k| (k.wrapping_mul(2_654_435_761).wrapping_add(i) >> 24) as u8)
            .collect();
        std::fs::write(ctx.path().join(format!("large{i}.bin")), big).unwrap();
        total += 64 * 1024 * 1024;
    }
    strata::context_inputs(&strata::context_entries(ctx.path()).unwrap()).unwrap(); // warm the page cache
    let runs: Vec<Duration> = (0..5)
        .map(|_| {
            common::time(|| {
                strata::context_inputs(&strata::context_entries(ctx.path()).unwrap()).unwrap()
            })
            .1
        })
        .collect();
    let t = common::median(runs);
    println!(
        "context hashing, {:.2} GiB in 12,004 files: {:.0} ms, {:.0} MB/s",
        total as f64 / (1u64 << 30) as f64,
        ms(t),
        total as f64 / 1e6 / t.as_secs_f64()
    );

    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^{ns}' | xargs -r docker rmi -f >/dev/null"))
        .status();
}
