//! The emitted GitHub workflow, executed for real by act (a real
//! implementation of the Actions runner, offline here), its jobs on this
//! machine's engine (`-P ubuntu-latest=-self-hosted`): the file runs as
//! emitted (`--setup`, the login by secret names), every job runs, jobs a
//! level apart run at the same time, each builds exactly its own image,
//! publish runs last, the release tags point at the content tags `strata
//! plan` computes for the commit; a second run builds nothing; a failed
//! mid-tree job skips every image below it and the publish job, and no
//! release tag moves.

use crate::common::engine::{self, Namespace};
use crate::common::{git, TestTree};
use crate::push::{docker_config, manifest_digest, registry, Registry};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn act() -> Option<String> {
    let v = crate::common::settings(&["STRATA_TEST_ACT"], "the act test")?;
    Some(v[0].clone())
}

/// One act run: its exit code and, per job (image name, `strata-publish`
/// for the publish job), its lines in order of the run's whole output.
struct Ran {
    code: i32,
    lines: Vec<(String, String)>,
}

impl Ran {
    fn of(&self, job: &str) -> Vec<&str> {
        (self.lines.iter())
            .filter(|(j, _)| j == job)
            .map(|(_, l)| l.as_str())
            .collect()
    }
    /// Where in the whole output a job's first and last lines are.
    fn span(&self, job: &str) -> Option<(usize, usize)> {
        let at: Vec<usize> = (self.lines.iter().enumerate())
            .filter(|(_, (j, _))| j == job)
            .map(|(i, _)| i)
            .collect();
        Some((*at.first()?, *at.last()?))
    }
    fn succeeded(&self, job: &str) -> bool {
        self.of(job).iter().any(|l| l.contains("Job succeeded"))
    }
}

fn run_act(act: &str, t: &TestTree, r: &Registry, docker: &Path) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    let text = format!("REG_USER={}\nREG_PASS={}\n", r.user, r.password);
    std::fs::write(&secrets, text).unwrap();
    let out = Command::new(act)
        .args([
            "workflow_dispatch",
            "-P",
            "ubuntu-latest=-self-hosted",
            "--log-prefix-job-id",
            // The registry's user is `strata`: masked, it would hide every
            // job's output; strata never prints the password either way.
            "--insecure-secrets",
        ])
        .arg("--secret-file")
        .arg(&secrets)
        .arg("--env")
        .arg(format!("DOCKER_CONFIG={}", docker.display()))
        .current_dir(t.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let lines = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?;
            let (job, line) = rest.split_once(']')?;
            Some((job.trim().to_string(), line.to_string()))
        })
        .collect();
    Ran {
        code: out.status.code().unwrap_or(-1),
        lines,
    }
}

/// Each image's release tag's digest, and its content tag's (by `plan`).
pub(crate) fn release_tags(
    t: &TestTree,
    r: &Registry,
    ns: &Namespace,
) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let config = docker_config(&r.host, &r.user, &r.password);
    let plan = (t.command(&["plan", "--json"]))
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    (plan.as_array().unwrap().iter())
        .map(|i| {
            let name = i["name"].as_str().unwrap().to_string();
            let fp = i["fingerprint"].as_str().unwrap();
            let repo = format!("{}/{name}", ns.0);
            let release = manifest_digest(r, &repo, "latest");
            let content = manifest_digest(r, &repo, &format!("fp-{}", &fp[..24]));
            (name, (release, content))
        })
        .collect()
}

/// The sample set pushing to `ns` on the test registry, committed in a
/// new git repository (the jobs clone or copy it).
pub(crate) fn sample_in_git(ns: &Namespace, r: &Registry) -> TestTree {
    let t = TestTree::sample();
    let config = (t.read("strata.yaml"))
        .replace("registry: \"\"", &format!("registry: \"{}\"", r.host))
        .replace("namespace: strata", &format!("namespace: {}", ns.0));
    t.write("strata.yaml", &config);
    git(t.path(), &["init", "-q"]);
    commit(&t, "the sample set");
    t
}

/// Commit everything in the tree.
pub(crate) fn commit(t: &TestTree, msg: &str) {
    git(t.path(), &["add", "-A"]);
    let who = ["-c", "user.email=ci@strata", "-c", "user.name=ci"];
    git(t.path(), &[&who[..], &["commit", "-qm", msg]].concat());
}

#[test]
fn act_runs_the_emitted_workflow_as_emitted() {
    if !engine::available("act") {
        return;
    }
    let (Some(act), Some(r)) = (act(), registry()) else {
        return;
    };
    let ns = Namespace::new("act");
    let t = sample_in_git(&ns, &r);
    let bin = Path::new(env!("CARGO_BIN_EXE_strata"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    let emit = || {
        let setup = format!("echo '{bin}' >> \"$GITHUB_PATH\"");
        // In the tree, as a user would run it: no `-C` for the jobs to carry.
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .current_dir(t.path())
            .args([
                "ci",
                "github",
                "--all",
                "--setup",
                &setup,
                "--login-user",
                "REG_USER",
                "--login-password",
                "REG_PASS",
                "--no-artifacts",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.write(
            ".github/workflows/strata.yml",
            &String::from_utf8_lossy(&out.stdout),
        );
    };
    emit();
    commit(&t, "the workflow");
    let docker = tempfile::tempdir().unwrap();
    let empty_config = docker_config("unused.invalid", "x", "y");
    std::fs::copy(
        empty_config.path().join("config.json"),
        docker.path().join("config.json"),
    )
    .unwrap();

    let first = run_act(&act, &t, &r, docker.path());
    let names: Vec<String> = release_tags(&t, &r, &ns).into_keys().collect();
    assert_eq!(first.code, 0, "{:?}", first.lines);
    for name in &names {
        assert!(first.succeeded(name), "{name}: {:?}", first.of(name));
        let building: Vec<&str> = (first.of(name).into_iter())
            .filter(|l| l.contains(" | building "))
            .collect();
        assert_eq!(building.len(), 1, "{name} builds only itself: {building:?}");
        assert!(
            building[0].contains(&format!("{name} | building")),
            "{building:?}"
        );
    }
    // Each job started after its parents' jobs ended, and jobs the graph
    // allows at once ran at once (act runs as many as there are cores).
    let graph = t.run(&["graph", "--format", "json"]).expect(0);
    let graph: serde_json::Value = serde_json::from_str(&graph.stdout).unwrap();
    for e in graph["edges"].as_array().unwrap() {
        let (p, c) = (e["from"].as_str().unwrap(), e["to"].as_str().unwrap());
        let (pe, cs) = (first.span(p).unwrap().1, first.span(c).unwrap().0);
        assert!(pe < cs, "{c} started before its parent {p} ended");
    }
    let spans: Vec<(usize, usize)> = names.iter().map(|n| first.span(n).unwrap()).collect();
    let overlapping = (0..spans.len())
        .flat_map(|a| (a + 1..spans.len()).map(move |b| (a, b)))
        .filter(|&(a, b)| spans[a].0 < spans[b].1 && spans[b].0 < spans[a].1)
        .count();
    assert!(overlapping > 0, "no two jobs ran at once: {spans:?}");
    // Publish last: it starts after every image job ended.
    let publish = first.span("strata-publish").expect("the publish job ran");
    for name in &names {
        assert!(
            first.span(name).unwrap().1 < publish.0,
            "{name} ended before publish started"
        );
    }
    assert!(first.succeeded("strata-publish"));
    let published = release_tags(&t, &r, &ns);
    for (name, (release, content)) in &published {
        assert!(release.is_some(), "{name}: a release tag");
        assert_eq!(
            release, content,
            "{name}: the release tag is the content tag plan computes"
        );
    }

    // The same commit again: nothing is built, nothing moves.
    let second = run_act(&act, &t, &r, docker.path());
    assert_eq!(second.code, 0, "{:?}", second.lines);
    assert!(
        !second.lines.iter().any(|(_, l)| l.contains(" | building ")),
        "{:?}",
        second.lines
    );
    assert_eq!(release_tags(&t, &r, &ns), published);

    // A broken RUN in a mid-tree image: it fails, everything below it and
    // the publish job are skipped, no release tag moves.
    let nova = t.read("images/nova/nova-base/Dockerfile.j2");
    t.write(
        "images/nova/nova-base/Dockerfile.j2",
        &format!("{nova}\nRUN exit 3\n"),
    );
    t.write(
        "images/base/Dockerfile.j2",
        &(t.read("images/base/Dockerfile.j2") + "\nRUN echo second > /second\n"),
    );
    emit();
    commit(&t, "a broken nova-base");
    let third = run_act(&act, &t, &r, docker.path());
    assert_ne!(third.code, 0);
    assert!(
        third
            .of("nova-base")
            .iter()
            .any(|l| l.contains("Job failed")),
        "{:?}",
        third.of("nova-base")
    );
    for below in [
        "nova-api",
        "nova-compute",
        "nova-conductor",
        "strata-publish",
    ] {
        assert!(
            !third.succeeded(below),
            "{below} must not run: {:?}",
            third.of(below)
        );
        assert!(
            !third.of(below).iter().any(|l| l.contains("| building ")),
            "{below}"
        );
    }
    assert!(
        third.succeeded("base"),
        "base rebuilt: {:?}",
        third.of("base")
    );
    for (name, (release, _)) in release_tags(&t, &r, &ns) {
        assert_eq!(
            release, published[&name].0,
            "{name}: its release tag did not move"
        );
    }
}
