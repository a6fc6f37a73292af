//! Rebuild exactly what changed, on the real engine: a sequence of edits to
//! the sample set, each followed by a build whose rebuilt set is checked.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;
use std::collections::BTreeSet;
use std::process::Command;

struct Session {
    t: TestTree,
    sets: Vec<String>,
    cache: tempfile::TempDir,
}

impl Session {
    /// `strata [--set …] EXTRA… build … [SEL…]`: `extra` items that are not
    /// `--set` pairs are build arguments (selectors, `--force`).
    fn build(&self, extra: &[&str]) -> (BTreeSet<String>, serde_json::Value) {
        let mut args: Vec<&str> = Vec::new();
        for s in &self.sets {
            args.extend(["--set", s.as_str()]);
        }
        let mut rest = Vec::new();
        let mut it = extra.iter();
        while let Some(a) = it.next() {
            if *a == "--set" {
                args.extend(["--set", it.next().expect("value")]);
            } else {
                rest.push(*a);
            }
        }
        args.extend(["build", "--progress", "plain", "--summary", "s.json"]);
        args.extend(rest);
        let out = self
            .t
            .command(&args)
            .env("STRATA_CACHE_DIR", self.cache.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&self.t.read("s.json")).unwrap();
        let built = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["status"] == "built")
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        for i in v["images"].as_array().unwrap() {
            assert!(
                ["built", "up-to-date"].contains(&i["status"].as_str().unwrap()),
                "{i}"
            );
            assert_eq!(i["fingerprint"].as_str().unwrap().len(), 64);
        }
        (built, v)
    }

    fn plan(&self, extra: &[&str]) -> serde_json::Value {
        let mut args: Vec<&str> = Vec::new();
        for s in &self.sets {
            args.extend(["--set", s.as_str()]);
        }
        args.extend(extra);
        args.extend(["plan", "--json"]);
        let out = self
            .t
            .command(&args)
            .env("STRATA_CACHE_DIR", self.cache.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn reasons(plan: &serde_json::Value, name: &str) -> Vec<String> {
    let item = plan
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap();
    item["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn rebuilds_exactly_what_changed() {
    if !engine::available("incremental") {
        return;
    }
    let ns = Namespace::new("incremental");
    // A base image of this test's own, so it can be re-tagged safely.
    let base = format!("{}-base/busybox:latest", ns.0);
    assert!(Command::new("docker")
        .args(["tag", BASE_IMAGE, &base])
        .status()
        .unwrap()
        .success());
    let s = Session {
        t: TestTree::sample(),
        sets: vec![ns.set(), format!("vars.base_image={base}")],
        cache: tempfile::tempdir().unwrap(),
    };
    s.t.write("images/keystone/keystone-base/extra.conf", "workers = 1\n");
    let all: BTreeSet<String> = s.build(&[]).0;
    assert_eq!(all.len(), 13);

    // Nothing changed: nothing built, everything up to date.
    let (built, v) = s.build(&[]);
    assert_eq!(built, set(&[]));
    assert!(v["images"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "up-to-date"));

    // A file of a middle-level image: it and everything built on it.
    s.t.write("images/keystone/keystone-base/extra.conf", "workers = 2\n");
    assert_eq!(
        reasons(&s.plan(&[]), "keystone-base"),
        ["file extra.conf changed"]
    );
    assert_eq!(
        reasons(&s.plan(&[]), "keystone"),
        ["parent keystone-base will be rebuilt"]
    );
    let (built, _) = s.build(&[]);
    assert_eq!(
        built,
        set(&[
            "keystone-base",
            "keystone",
            "keystone-fernet",
            "keystone-ssh",
            "tools"
        ])
    );

    // A macro some images use: those and their descendants.
    let macros = s.t.read("templates/macros.j2").replace(
        "mkdir -p /var/lib/{{ name }} /etc/{{ name }}",
        "mkdir -p /var/lib/{{ name }} /etc/{{ name }} /run/{{ name }}",
    );
    s.t.write("templates/macros.j2", &macros);
    assert_eq!(reasons(&s.plan(&[]), "cron"), ["Dockerfile changed"]);
    let (built, _) = s.build(&[]);
    let users = [
        "cron",
        "horizon",
        "keystone-base",
        "keystone",
        "keystone-fernet",
        "keystone-ssh",
        "nova-base",
        "nova-api",
        "nova-compute",
        "nova-conductor",
        "tools",
    ];
    assert_eq!(built, set(&users));

    // A file .dockerignore excludes, and a touched file: nothing.
    s.t.write("images/base/files/README.md", "changed notes\n");
    s.t.write("images/base/files/tmp/scratch.txt", "changed scratch\n");
    let start = s.t.read("images/base/files/kolla_start");
    std::thread::sleep(std::time::Duration::from_millis(10));
    s.t.write("images/base/files/kolla_start", &start);
    assert_eq!(s.build(&[]).0, set(&[]));

    // A build arg that one image declares: it and its descendants.
    let (built, _) = s.build(&["--set", "build.args.OPENSTACK_RELEASE=2026.2"]);
    let on_openstack: BTreeSet<String> = all
        .iter()
        .filter(|n| !["base", "cron"].contains(&n.as_str()))
        .cloned()
        .collect();
    assert_eq!(built, on_openstack);

    // A selection whose stale parent is built first; --force rebuilds the selection.
    s.t.write("images/nova/nova-base/extra", "x\n");
    let release = ["--set", "build.args.OPENSTACK_RELEASE=2026.2"];
    assert_eq!(
        s.build(&[release[0], release[1], "nova-api"]).0,
        set(&["nova-base", "nova-api"])
    );
    assert_eq!(
        s.build(&["--set", "build.args.OPENSTACK_RELEASE=2026.2", "nova-api"])
            .0,
        set(&[])
    );
    let (built, v) = s.build(&[
        "--set",
        "build.args.OPENSTACK_RELEASE=2026.2",
        "--force",
        "cron",
    ]);
    assert_eq!(
        built,
        set(&["cron"]),
        "--force rebuilds the selection, not its up-to-date parents"
    );
    let cron = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "cron")
        .unwrap()
        .clone();
    assert_eq!(cron["reasons"], serde_json::json!(["forced"]));

    // A new image behind the base reference: everything on it.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("printf 'FROM {base}\\nRUN echo security-update > /update\\n' | DOCKER_BUILDKIT=0 docker build -q -t {base} -"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = s.plan(&["--set", "build.args.OPENSTACK_RELEASE=2026.2"]);
    assert_eq!(reasons(&plan, "base"), [format!("base {base} changed")]);
    assert_eq!(
        s.build(&["--set", "build.args.OPENSTACK_RELEASE=2026.2"]).0,
        all
    );
    let _ = Command::new("docker").args(["rmi", "-f", &base]).output();
}
