//! Scheduler quality on the simulated engine: random DAGs of 1,000 images
//! with random durations, `-j 8`. Reports makespan ÷ lower bound, where the
//! lower bound is the larger of the longest weighted path and total work ÷ 8,
//! for critical-path-first (by descendant chain length, as `strata build`
//! orders, and by known durations) and for first-in-first-out.
//! Time is tokio's paused clock: makespans are exact, not wall-clock noise.
//!
//! Run: `cargo bench --bench scheduler`.

use std::sync::Arc;
use strata::{Event, Item as Job, Observer, Order, RunOptions as Options, Script, SimEngine, Step};

struct Silent;
impl Observer for Silent {
    fn event(&mut self, _: &[Job], _: Event) {}
}

/// xorshift64*: a small deterministic generator, seeded per DAG.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn dag(seed: u64, n: usize) -> (Vec<Job>, Vec<u64>) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut jobs = Vec::with_capacity(n);
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let mut parents = Vec::new();
        if i > 0 && rng.below(10) > 0 {
            let k = 1 + rng.below(3) as usize;
            let window = i.min(60);
            for _ in 0..k {
                let p = i - 1 - rng.below(window as u64) as usize;
                if !parents.contains(&p) {
                    parents.push(p);
                }
            }
        }
        let name = format!("img{i}");
        jobs.push(Job::to_build(
            &name,
            &format!("bench/{name}:latest"),
            &parents,
        ));
        ms.push(1 + rng.below(120));
    }
    (jobs, ms)
}

fn lower_bound(jobs: &[Job], ms: &[u64], j: usize) -> f64 {
    let w: Vec<f64> = ms.iter().map(|&m| m as f64).collect();
    let mut finish = vec![0.0f64; jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        finish[i] = w[i] + job.parents.iter().map(|&p| finish[p]).fold(0.0, f64::max);
    }
    let longest = finish.iter().copied().fold(0.0, f64::max);
    longest.max(w.iter().sum::<f64>() / j as f64)
}

fn makespan(jobs: &[Job], ms: &[u64], order: Order, weights: Option<Vec<f64>>) -> f64 {
    let script = Script {
        default_ms: 1,
        images: jobs
            .iter()
            .zip(ms)
            .map(|(j, &m)| {
                (
                    j.name.clone(),
                    Step {
                        ms: Some(m),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = Arc::new(SimEngine::new(script));
        let opts = Options {
            jobs: 8,
            retries: 0,
            fail_fast: false,
            push: false,
            push_jobs: 1,
            publish_each: false,
            order,
            weights,
            stale: None,
        };
        let run = strata::execute(jobs, engine, &opts, &mut Silent, std::future::pending()).await;
        assert!(run
            .outcomes
            .iter()
            .all(|o| o.status == strata::Status::Built));
        run.wall.as_secs_f64() * 1000.0
    })
}

fn main() {
    let (n, dags) = (1000, 20);
    let mut ratios: [Vec<f64>; 3] = Default::default();
    let mut cp_worse_than_fifo = 0;
    for seed in 1..=dags {
        let (jobs, ms) = dag(seed, n);
        let lb = lower_bound(&jobs, &ms, 8);
        let weights = ms.iter().map(|&m| m as f64).collect();
        let cp = makespan(&jobs, &ms, Order::CriticalPath, None) / lb;
        let cpw = makespan(&jobs, &ms, Order::CriticalPath, Some(weights)) / lb;
        let fifo = makespan(&jobs, &ms, Order::Fifo, None) / lb;
        if cp > fifo + 1e-9 {
            cp_worse_than_fifo += 1;
        }
        ratios[0].push(cp);
        ratios[1].push(cpw);
        ratios[2].push(fifo);
    }
    let stats = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        (
            s.iter().sum::<f64>() / s.len() as f64,
            s[s.len() / 2],
            s[s.len() - 1],
        )
    };
    println!("scheduler: {dags} random DAGs of {n} images, durations 1–120 ms, -j 8; makespan ÷ lower bound");
    for (label, v) in [
        ("critical path (chain length)", &ratios[0]),
        ("critical path (durations)", &ratios[1]),
        ("first in, first out", &ratios[2]),
    ] {
        let (mean, median, worst) = stats(v);
        println!("  {label:30} mean {mean:.3}  median {median:.3}  worst {worst:.3}");
    }
    println!(
        "  critical path (chain length) worse than FIFO on {cp_worse_than_fifo} of {dags} DAGs"
    );
}
