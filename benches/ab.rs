//! A paired A/B of two `strata` binaries on the same inputs, run in turn
//! (A B A B …) so that a machine that drifts slows both alike: the
//! pipeline (`graph --format json` on generated 200- and 5,000-image trees)
//! and a no-op `build` of the sample set after a full build (and of a
//! generated 200-image tree with `STRATA_AB_200=1`). Prints each side's median and the median of the
//! pairwise ratios B/A.
//!
//! Run: `STRATA_AB_OLD=/path/to/old/strata cargo bench --bench ab` (A is
//! the old binary, B this one). Build the old one from another commit,
//! e.g. `git worktree add /tmp/old REV && cargo build --release` there.
//! The no-op builds need ci/setup.sh (engine and busybox base).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn timed(bin: &str, dir: &Path, args: &[&str]) -> Duration {
    common::strata_run(bin, dir, args)
}

/// `runs` pairs of A then B; prints medians and the median ratio B/A.
fn pairs(what: &str, a: &str, b: &str, dir: &Path, args: &[&str], runs: usize) {
    timed(a, dir, args);
    timed(b, dir, args);
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let x = timed(a, dir, args);
        let y = timed(b, dir, args);
        ratio.push(y.as_secs_f64() / x.as_secs_f64());
        ta.push(x);
        tb.push(y);
    }
    ratio.sort_by(f64::total_cmp);
    println!(
        "{what}: A median {:.1} ms, B median {:.1} ms, B/A median {:.3} (min {:.3}, max {:.3}, {runs} pairs)",
        common::median(ta).as_secs_f64() * 1e3,
        common::median(tb).as_secs_f64() * 1e3,
        ratio[ratio.len() / 2],
        ratio[0],
        ratio[ratio.len() - 1],
    );
}

fn main() {
    let Ok(a) = std::env::var("STRATA_AB_OLD") else {
        println!("ab: set STRATA_AB_OLD to the strata binary to compare with; nothing measured");
        return;
    };
    let b = env!("CARGO_BIN_EXE_strata");
    for (n, runs) in [(200usize, 15usize), (5000, 7)] {
        let dir = tempfile::tempdir().unwrap();
        common::write_tree(dir.path(), n, &|i| format!("RUN echo step-{i}"));
        let what = format!("pipeline/{n} images (graph --format json)");
        pairs(
            &what,
            &a,
            b,
            dir.path(),
            &["graph", "--format", "json"],
            runs,
        );
    }
    if std::process::Command::new("docker")
        .args(["image", "inspect", "strata-ci/busybox:latest"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let ns = format!("--set=namespace=ab-{}", std::process::id());
        let sample = Path::new(env!("CARGO_MANIFEST_DIR"));
        let noop = [ns.as_str(), "build", "--progress", "quiet", "--no-tests"];
        timed(b, sample, &noop);
        pairs("no-op build, sample set", &a, b, sample, &noop, 9);
        // A generated 200-image tree: its full build takes minutes, so only
        // with STRATA_AB_200=1.
        if std::env::var("STRATA_AB_200").is_ok_and(|v| v == "1") {
            let dir = tempfile::tempdir().unwrap();
            common::write_tree(dir.path(), 200, &|i| format!("RUN echo step-{i}"));
            let full = [ns.as_str(), "build", "--progress", "quiet", "-j", "4"];
            timed(b, dir.path(), &full);
            pairs("no-op build, 200 images", &a, b, dir.path(), &noop, 9);
        }
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^ab-{}/' | xargs -r docker rmi -f >/dev/null",
                    std::process::id()
                ),
            ])
            .status();
    } else {
        println!("ab: no engine with strata-ci/busybox:latest (run ci/setup.sh); no-op builds not measured");
    }
}
