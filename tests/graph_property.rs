//! Random DAGs written as trees of Dockerfiles come back as the same graph.

use crate::common::TestTree;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// A DAG on `n` images: edges only from a lower to a higher index.
fn dag() -> impl Strategy<Value = (usize, BTreeSet<(usize, usize)>)> {
    (1usize..24).prop_flat_map(|n| {
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|c| (0..c).map(move |p| (p, c))).collect();
        let len = pairs.len();
        (
            Just(n),
            proptest::sample::subsequence(pairs, 0..=len.min(40)),
        )
            .prop_map(|(n, edges)| (n, edges.into_iter().collect()))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn written_dags_come_back((n, edges) in dag()) {
        let t = TestTree::new();
        t.write("strata.yaml", "namespace: ns\n");
        for c in 0..n {
            let parents: Vec<usize> = edges.iter().filter(|e| e.1 == c).map(|e| e.0).collect();
            // The first parent as FROM, the others through COPY --from and RUN --mount,
            // some in a nested grouping folder, some templated, some plain.
            let mut text = match parents.first() {
                Some(p) => format!("FROM {{{{ image_ref('img{p}') }}}} AS main\n"),
                None => "ARG BASE=debian\nFROM ${BASE}:12\n".to_string(),
            };
            for (k, p) in parents.iter().enumerate().skip(1) {
                if k % 2 == 0 {
                    text.push_str(&format!("COPY --from=ns/img{p}:latest /a /b\n"));
                } else {
                    text.push_str(&format!("RUN --mount=type=bind,from={{{{ namespace }}}}/img{p},target=/m \\\n    true\n"));
                }
            }
            let folder = if c % 3 == 0 { format!("images/group/img{c}") } else { format!("images/img{c}") };
            t.write(&format!("{folder}/Dockerfile.j2"), &text);
        }
        let run = t.run(&["graph", "--format", "json"]);
        prop_assert_eq!(run.code, 0, "{}", run.stderr);
        let g: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let got: BTreeSet<(usize, usize)> = g["edges"].as_array().unwrap().iter().map(|e| {
            let id = |k: &str| e[k].as_str().unwrap().trim_start_matches("img").parse::<usize>().unwrap();
            (id("from"), id("to"))
        }).collect();
        prop_assert_eq!(got, edges);
        prop_assert_eq!(g["nodes"].as_array().unwrap().len(), n);
    }
}
