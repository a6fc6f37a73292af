//! Over random trees and random sets of edited images, the plan rebuilds
//! exactly the edited images and everything built on them.

use crate::common::TestTree;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use strata::{load, Options};

fn fingerprinted(t: &TestTree) -> (strata::Loaded, Vec<strata::Fingerprint>) {
    let loaded = load(&Options {
        dir: t.path().to_path_buf(),
        ..Default::default()
    })
    .unwrap();
    let inputs = strata::collect_inputs(&loaded).unwrap();
    let dockerfiles: Vec<&str> = loaded.rendered.iter().map(|r| r.text.as_str()).collect();
    let fps = strata::fingerprints(&loaded.graph, &dockerfiles, &inputs, &BTreeMap::new()).unwrap();
    (loaded, fps)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn rebuilt_set_is_edits_plus_descendants(
        parents in proptest::collection::vec(proptest::option::of(0usize..1000), 1..20),
        edits in proptest::collection::vec((0usize..1000, 0u8..4), 0..5),
    ) {
        let n = parents.len();
        let t = TestTree::new();
        t.write("strata.yaml", "namespace: p\n");
        t.write("templates/common.j2", "RUN true\n");
        for (i, p) in parents.iter().enumerate() {
            let from = match p.filter(|_| i > 0).map(|p| p % i) {
                Some(p) => format!("{{{{ image_ref('i{p}') }}}}"),
                None => "debian:12".to_string(),
            };
            t.write(&format!("images/i{i}/Dockerfile.j2"), &format!("FROM {from}\nARG V\nCOPY f /f\n"));
            t.write(&format!("images/i{i}/f"), "content\n");
        }
        let (loaded, before) = fingerprinted(&t);
        let existing: HashMap<String, String> =
            loaded.graph.nodes.iter().zip(&before).map(|(n, f)| (n.reference.clone(), f.hash.clone())).collect();
        // Edit some images: a context file, the template, an ignored file or a build arg.
        let mut edited = BTreeSet::new();
        for (target, kind) in &edits {
            let i = target % n;
            match kind {
                0 => { t.write(&format!("images/i{i}/f"), &format!("changed {target}\n")); edited.insert(i); }
                1 => { t.write(&format!("images/i{i}/Dockerfile.j2"), &t.read(&format!("images/i{i}/Dockerfile.j2")).replace("COPY f /f", "COPY f /g")); edited.insert(i); }
                2 => { t.write(&format!("images/i{i}/.dockerignore"), "notes\n"); t.write(&format!("images/i{i}/notes"), "ignored\n"); }
                _ => { t.write(&format!("images/i{i}/image.yaml"), "args: {V: '2'}\n"); edited.insert(i); }
            }
        }
        // A new .dockerignore is itself not a context file, so kind 2 changes nothing.
        let (loaded, after) = fingerprinted(&t);
        let all: Vec<usize> = loaded.graph.order.clone();
        let known = strata::Known {
            existing,
            past: HashMap::new(),
            ..Default::default()
        };
        let plan = strata::plan(&loaded.graph, &all, &after, &known, strata::Ask::default());
        let rebuilt: BTreeSet<String> = plan.to_build().map(|i| loaded.graph.nodes[i.id].name.clone()).collect();
        let mut expected = BTreeSet::new();
        for &i in &edited {
            let id = loaded.graph.index(&format!("i{i}")).unwrap();
            expected.extend(loaded.graph.descendants(id).into_iter().map(|d| loaded.graph.nodes[d].name.clone()));
        }
        prop_assert_eq!(rebuilt, expected);
    }
}
