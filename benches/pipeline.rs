//! `strata graph --format json` (discover + render + parse + graph) on
//! generated Kolla-shaped trees of 200 and 5,000 images: median wall time
//! over repeated runs and peak memory (max RSS, from GNU time).
//!
//! Run: `cargo bench --bench pipeline`. Budgets on a 2-core machine:
//! 200 images ≤ 100 ms; 5,000 images ≤ 2 s and ≤ 200 MB.

mod common;

use std::process::Command;

fn main() {
    let strata = env!("CARGO_BIN_EXE_strata");
    for (n, runs) in [(200usize, 21usize), (5000, 7)] {
        let dir = tempfile::tempdir().unwrap();
        common::write_tree(dir.path(), n, &|i| format!("RUN echo step-{i}"));
        let lines: usize = walkdir::WalkDir::new(dir.path().join("images"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
            .sum();
        let run = || {
            let out = Command::new("/usr/bin/time")
                .args(["-f", "%M"])
                .arg(strata)
                .arg("-C")
                .arg(dir.path())
                .args(["graph", "--format", "json"])
                .output()
                .expect("GNU time (/usr/bin/time) runs strata");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rss_kb: u64 = String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap()
                .parse()
                .unwrap();
            let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(g["nodes"].as_array().unwrap().len(), n);
            rss_kb
        };
        run(); // warm the page cache
        let mut times = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..runs {
            let (kb, t) = common::time(run);
            times.push(t);
            rss.push(kb);
        }
        let median = common::median(times.clone());
        println!(
            "pipeline/{n} images ({:.0} template lines each): median {:.1} ms (min {:.1}, max {:.1}, {runs} runs), peak RSS {:.1} MB",
            lines as f64 / n as f64,
            median.as_secs_f64() * 1e3,
            times.iter().min().unwrap().as_secs_f64() * 1e3,
            times.iter().max().unwrap().as_secs_f64() * 1e3,
            *rss.iter().max().unwrap() as f64 / 1024.0,
        );
    }
}
