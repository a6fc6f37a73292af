//! One run over several engines: the main engine and the two of ci/setup.sh
//! (ci/engine.sh: each its own data-root, socket and bridge), sharing only
//! the loopback registry. The sample set built over three engines is in the
//! registry with the right parents, spread over engines and built once; an
//! engine killed mid-run leaves the set to the others; engines that do not
//! answer at the start are left out.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::{Running, TestTree};
use crate::push::{docker_config, manifest_digest, registry, Registry};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The two extra engines of ci/setup.sh, or None (skipped on a laptop,
/// a failure under CI).
fn pool_engines() -> Option<Vec<String>> {
    let hosts = crate::common::settings(&["STRATA_TEST_POOL_ENGINES"], "the engine pool")?;
    let hosts: Vec<String> = hosts[0].split_whitespace().map(str::to_string).collect();
    assert_eq!(hosts.len(), 2, "STRATA_TEST_POOL_ENGINES: {hosts:?}");
    Some(hosts)
}

/// The pool engines are used by one test at a time.
fn pool_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a pool test needs: the registry and credentials for it, the two
/// extra engines, and the pool to itself. None (skipped, or a failure under
/// CI) when the machine lacks them.
struct Pool {
    r: Registry,
    config: tempfile::TempDir,
    extra: Vec<String>,
    _lock: std::sync::MutexGuard<'static, ()>,
}

fn pool(test: &str) -> Option<Pool> {
    let r = registry()?;
    if !engine::available(test) {
        return None;
    }
    let extra = pool_engines()?;
    let _lock = pool_lock();
    let config = docker_config(&r.host, &r.user, &r.password);
    Some(Pool {
        r,
        config,
        extra,
        _lock,
    })
}

fn docker_on(host: &str, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(["-H", host])
        .args(args)
        .output()
        .expect("docker")
}

/// The image ID `reference` has on the engine at `host`, if any.
fn id_on(host: &str, reference: &str) -> Option<String> {
    let out = docker_on(host, &["image", "inspect", "-f", "{{.Id}}", reference]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn summary(t: &TestTree) -> serde_json::Value {
    serde_json::from_str(&t.read("s.json")).expect("summary JSON")
}

const MAIN: &str = "unix:///var/run/docker.sock";

#[test]
fn the_sample_set_over_three_engines_is_in_the_registry_built_once_on_its_parents() {
    let Some(Pool {
        r,
        config,
        extra,
        _lock,
    }) = pool("pool_sample")
    else {
        return;
    };
    let ns = Namespace::new("pool-sample");
    let t = TestTree::sample();
    let hosts = [MAIN.to_string(), extra[0].clone(), extra[1].clone()];
    let mut args = vec![
        "--set".to_string(),
        ns.set(),
        "--set".to_string(),
        format!("registry={}", r.host),
        "build".to_string(),
        "--push".to_string(),
        "--summary".to_string(),
        "s.json".to_string(),
    ];
    for h in &hosts {
        args.extend(["--engine".to_string(), format!("{h}=2")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = |args: &[&str]| {
        t.command(args)
            .env("DOCKER_CONFIG", config.path())
            .output()
            .unwrap()
    };
    let _clear = ClearOn(extra.clone(), ns.0.clone());
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("building on 3 engines"), "{stderr}");

    let s = summary(&t);
    let images = s["images"].as_array().unwrap();
    assert_eq!(images.len(), 13);
    let mut used = BTreeSet::new();
    for image in images {
        let name = image["name"].as_str().unwrap();
        assert_eq!(image["status"], "built", "{image}");
        let on = image["engine"].as_str().unwrap();
        assert!(hosts.iter().any(|h| h == on), "{name} on `{on}`");
        used.insert(on.to_string());
        // In the registry under its release tag, the digest the summary gives.
        let digest = manifest_digest(&r, &format!("{}/{name}", ns.0), "latest");
        assert_eq!(digest.as_deref(), image["digest"].as_str(), "{name}");
        // Built once: every engine that has it has the same image.
        let reference = image["ref"].as_str().unwrap();
        let ids: BTreeSet<String> = hosts.iter().filter_map(|h| id_on(h, reference)).collect();
        assert_eq!(ids.len(), 1, "{name} differs between engines: {ids:?}");
        assert_eq!(
            Some(ids.iter().next().unwrap().as_str()),
            image["image_id"].as_str(),
            "{name}"
        );
    }
    assert!(used.len() > 1, "every image on one engine: {used:?}");

    // A child's file system holds its parent's files: pulled here from the
    // registry, nova-api's layers begin with nova-base's, and it has the
    // base's release file.
    let pulled = |name: &str| {
        let reference = format!("{}/{}/{name}:latest", r.host, ns.0);
        let ok = Command::new("docker")
            .args(["--config", &config.path().display().to_string()])
            .args(["pull", "-q", &reference])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        reference
    };
    for (child, parent) in [
        ("nova-api", "nova-base"),
        ("nova-base", "openstack-base"),
        ("keystone-ssh", "keystone-base"),
    ] {
        let (c, p) = (
            engine::layers(&pulled(child)),
            engine::layers(&pulled(parent)),
        );
        assert!(
            !p.is_empty() && c.starts_with(&p),
            "{child} is not on {parent}"
        );
    }
    let release = engine::run_in(&pulled("nova-api"), &["cat", "/etc/strata/release"]);
    assert_eq!(release.trim(), "2026.1");

    // Up to date on every engine and in the registry: nothing to build.
    let mut plan_args = vec!["--set", &args[1], "--set", &args[3], "plan"];
    for h in &hosts {
        plan_args.extend(["--engine", h.as_str()]);
    }
    let plan = run(&plan_args);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("0 to build, 13 up to date"), "{text}");
}

/// Removes a namespace's images from the extra engines when the test ends
/// (the main engine's go with the Namespace).
struct ClearOn(Vec<String>, String);

impl Drop for ClearOn {
    fn drop(&mut self) {
        for host in &self.0 {
            Namespace(self.1.clone()).clear_on(Some(host));
        }
    }
}

/// An engine started for one test (ci/engine.sh), stopped by its pid files
/// when the test ends, however it ends.
struct OwnEngine {
    name: &'static str,
    host: String,
}

impl OwnEngine {
    fn start(name: &'static str, n: u32) -> OwnEngine {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(repo.join("ci/engine.sh"))
            .args(["start", name, &n.to_string()])
            .output()
            .expect("ci/engine.sh");
        assert!(
            out.status.success(),
            "ci/engine.sh start {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        OwnEngine {
            name,
            host: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }
    }

    /// Send its dockerd `signal` (`KILL`: a machine that goes away;
    /// `STOP`: one that hangs, still accepting connections).
    fn signal(&self, signal: &str) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let pid_file = repo.join(format!("target/ci/engines/{}/dockerd.pid", self.name));
        let pid = std::fs::read_to_string(&pid_file).expect("pid file");
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), pid.trim()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for OwnEngine {
    fn drop(&mut self) {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let _ = Command::new(repo.join("ci/engine.sh"))
            .args(["stop", self.name])
            .output();
    }
}

/// `root` on the busybox base, and `children` images on it, each sleeping
/// `sleep` seconds in a RUN step.
fn sleepy_tree(ns: &Namespace, r: &Registry, children: usize, sleep: u32) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nvars: {{base_image: '{BASE_IMAGE}'}}\n",
            r.host, ns.0
        ),
    );
    t.write(
        "images/root/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo root > /root-file\n",
    );
    for i in 1..=children {
        t.write(
            &format!("images/c{i}/Dockerfile.j2"),
            &format!(
                "FROM {}/{}/root:latest\nRUN sleep {sleep} && echo c{i} > /c{i}\n",
                r.host, ns.0
            ),
        );
    }
    t
}

#[test]
fn an_engine_killed_mid_run_leaves_the_set_to_the_others() {
    engine_lost_mid_run("KILL", "pool-kill", 3, "connection");
}

#[test]
fn an_engine_that_hangs_mid_run_is_found_and_left() {
    engine_lost_mid_run("STOP", "pool-hang", 4, "no answer to a ping");
}

/// A root and six children over the main engine, pool-1 and an engine of
/// the test's own, which gets `signal` while a build runs on it: the run
/// completes on the other two, saying once that it lost it and why
/// (`why`), and the summary says where each image went.
fn engine_lost_mid_run(signal: &str, name: &'static str, n: u32, why: &str) {
    let Some(Pool {
        r,
        config,
        extra,
        _lock,
    }) = pool(name)
    else {
        return;
    };
    let victim = OwnEngine::start(name, n);
    let ns = Namespace::new(name);
    let t = sleepy_tree(&ns, &r, 6, 4);
    // The classic builder's RUN steps are containers, which show when a
    // build runs on the victim (BuildKit's are not); losing an engine is
    // the same on either builder.
    let mut cmd = t.command(&[
        "build",
        "--builder",
        "classic",
        "--progress",
        "plain",
        "--summary",
        "s.json",
        "--engine",
        &format!("{MAIN}=1"),
        "--engine",
        &format!("{}=1", extra[0]),
        "--engine",
        &format!("{}=1", victim.host),
    ]);
    cmd.env("DOCKER_CONFIG", config.path());
    let _clear = ClearOn(vec![extra[0].clone()], ns.0.clone());
    let running = Running::spawn(cmd);
    // Kill the engine while a build runs on it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let ps = docker_on(&victim.host, &["ps", "-q"]);
        if !String::from_utf8_lossy(&ps.stdout).trim().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no build ever ran on the victim engine"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    victim.signal(signal);
    let (code, stderr) = running.finish();
    if signal == "STOP" {
        victim.signal("CONT");
    }
    assert_eq!(code, 0, "{stderr}");
    let lost: Vec<&str> = stderr.lines().filter(|l| l.contains(" lost (")).collect();
    assert_eq!(lost.len(), 1, "{stderr}");
    assert!(lost[0].contains(&victim.host), "{}", lost[0]);
    assert!(lost[0].contains(why), "{}", lost[0]);

    let s = summary(&t);
    assert_eq!(s["engines_lost"][0]["engine"], victim.host.as_str());
    let images = s["images"].as_array().unwrap();
    assert_eq!(images.len(), 7);
    for image in images {
        let name = image["name"].as_str().unwrap();
        assert_eq!(image["status"], "built", "{image}");
        let on = image["engine"].as_str().unwrap();
        assert!(
            [MAIN, extra[0].as_str(), victim.host.as_str()].contains(&on),
            "{name} on `{on}`"
        );
        // Whatever ran on the lost engine and did not finish there was
        // built again elsewhere; what is in the registry is what the
        // summary names.
        let content = format!("fp-{}", &image["fingerprint"].as_str().unwrap()[..24]);
        let digest = manifest_digest(&r, &format!("{}/{name}", ns.0), &content);
        assert_eq!(digest.as_deref(), image["digest"].as_str(), "{name}");
    }
    // The children were built where they ran, not all on one engine.
    let spread: BTreeSet<&str> = images
        .iter()
        .map(|i| i["engine"].as_str().unwrap())
        .collect();
    assert!(spread.len() > 1, "{spread:?}");
}

#[test]
fn engines_that_do_not_answer_at_the_start_are_left_out() {
    let Some(r) = registry() else { return };
    if !engine::available("pool_start") {
        return;
    }
    let config = docker_config(&r.host, &r.user, &r.password);
    let ns = Namespace::new("pool-start");
    let t = sleepy_tree(&ns, &r, 1, 0);
    let gone = "unix:///nonexistent/strata-test/docker.sock";
    // One answers: the run goes on there, naming the other.
    let out = t
        .command(&[
            "--set",
            &ns.set(),
            "--set",
            &format!("registry={}", r.host),
            "build",
            "--engine",
            "docker",
            "--engine",
            gone,
        ])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("engine {gone} left out of this run")),
        "{stderr}"
    );
    // None answers: exit 3, both named, nothing built.
    let other = "tcp://".to_string() + &crate::common::closed_address();
    let out = t
        .command(&[
            "--set",
            &format!("registry={}", r.host),
            "plan",
            "--engine",
            gone,
            "--engine",
            &other,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("none of the 2 engines answers"), "{stderr}");
    assert!(stderr.contains(gone) && stderr.contains(&other), "{stderr}");
    // Several engines without a registry: exit 2 before any is asked.
    let out = t
        .command(&[
            "--set",
            "registry=",
            "build",
            "--engine",
            "docker",
            "--engine",
            gone,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`registry:` is not set"), "{stderr}");
    // A bad --engine is exit 2 with what to give.
    let out = t
        .command(&["plan", "--engine", "docker=0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("HOST[=JOBS]"), "{stderr}");
}

#[test]
fn a_tls_engine_joins_a_pool_with_the_cli_variables() {
    let Some(r) = registry() else { return };
    if !engine::available("pool_tls") {
        return;
    }
    let Some((host, certs)) = crate::tls::tls_engine() else {
        return;
    };
    let _engine = crate::common::second_engine();
    let config = docker_config(&r.host, &r.user, &r.password);
    let ns = Namespace::new("pool-tls");
    let t = sleepy_tree(&ns, &r, 1, 0);
    let plan = |tls: bool| {
        let mut cmd = t.command(&["plan", "--engine", "docker", "--engine", &host]);
        cmd.env("DOCKER_CONFIG", config.path());
        if tls {
            cmd.env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", &certs);
        }
        cmd.output().unwrap()
    };
    // With DOCKER_TLS_VERIFY and DOCKER_CERT_PATH both engines answer.
    let out = plan(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("left out"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 to build"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without them the TLS-only engine is named and left out.
    let out = plan(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("engine {host} left out of this run")),
        "{stderr}"
    );
}

#[test]
fn a_base_only_in_the_registry_is_pulled_with_its_credentials_on_each_engine() {
    let Some(Pool {
        r,
        config,
        extra,
        _lock,
    }) = pool("pool_base")
    else {
        return;
    };
    let ns = Namespace::new("pool-base");
    let _clear = ClearOn(vec![extra[0].clone()], ns.0.clone());
    // The base is only in the registry (htpasswd), outside the tree's
    // namespace: neither engine has it.
    let base_ns = Namespace(format!("{}-base", ns.0));
    let _clear_base = ClearOn(vec![extra[0].clone()], base_ns.0.clone());
    let base = format!("{}/{}/busybox:base", r.host, base_ns.0);
    engine::tag(BASE_IMAGE, &base);
    let cli = |host: &str, args: &[&str]| {
        Command::new("docker")
            .args(["--config", &config.path().display().to_string(), "-H", host])
            .args(args)
            .output()
            .unwrap()
    };
    let pushed = cli(MAIN, &["push", &base]);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    cli(MAIN, &["rmi", &base]);
    assert!(id_on(MAIN, &base).is_none() && id_on(&extra[0], &base).is_none());
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("registry: '{}'\nnamespace: {}\n", r.host, ns.0),
    );
    for name in ["a", "b"] {
        t.write(
            &format!("images/{name}/Dockerfile.j2"),
            &format!("FROM {base}\nRUN echo {name} > /{name}\n"),
        );
    }
    let out = t
        .command(&[
            "build",
            "--summary",
            "s.json",
            "--engine",
            &format!("{MAIN}=1"),
            "--engine",
            &format!("{}=1", extra[0]),
        ])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let s = summary(&t);
    let on: BTreeSet<&str> = s["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["engine"].as_str().unwrap())
        .collect();
    assert_eq!(on.len(), 2, "one image on each engine: {on:?}\n{stderr}");
    // Each engine fetched the base with the credentials (BuildKit keeps it
    // in its own store, the classic builder in the engine's): the images
    // built there stand on its layers.
    let bottom = engine::layers(BASE_IMAGE)[0].clone();
    for image in s["images"].as_array().unwrap() {
        let (host, reference) = (
            image["engine"].as_str().unwrap(),
            image["ref"].as_str().unwrap(),
        );
        let out = docker_on(
            host,
            &[
                "image",
                "inspect",
                "-f",
                "{{index .RootFS.Layers 0}}",
                reference,
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            bottom,
            "{reference} on {host}"
        );
    }
}

/// A multi-platform set over a pool of one engine per platform: pool-1
/// listed for amd64, pool-2 for arm64 (emulated). Every record lands on
/// the engine of its platform, and each image's index names both.
#[test]
fn each_platform_builds_on_the_engine_listed_for_it() {
    let Some(Pool {
        r,
        config,
        extra,
        _lock,
    }) = pool("pool_multiarch")
    else {
        return;
    };
    let arm = "strata-ci/busybox:arm64";
    if id_on(&extra[1], arm).is_none() {
        let msg =
            format!("the multi-arch pool test needs `{arm}` on the pool engines (run ci/setup.sh)");
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
        eprintln!("SKIPPED {msg}");
        return;
    }
    let ns = Namespace::new("pool-multiarch");
    let _clear = ClearOn(extra.clone(), ns.0.clone());
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nplatforms: [linux/amd64, linux/arm64]\n\
             vars: {{base_image: '{}'}}\nplatform_vars: {{linux/arm64: {{base_image: '{arm}'}}}}\n\
             engines: [{{host: '{}', platforms: [linux/amd64]}}, {{host: '{}', platforms: [linux/arm64]}}]\n",
            r.host, ns.0, engine::BASE_IMAGE, extra[0], extra[1]
        ),
    );
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN uname -m > /uname\n",
    );
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN cat /uname > /app\n",
    );
    let out = t
        .command(&["build", "--push", "--summary", "s.json"])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let s = summary(&t);
    for image in s["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        let want = if name.ends_with("@arm64") {
            &extra[1]
        } else {
            &extra[0]
        };
        assert_eq!(image["engine"].as_str(), Some(want.as_str()), "{name}");
        assert_eq!(image["status"], "built", "{name}");
    }
    assert_eq!(s["images"].as_array().unwrap().len(), 4);
    let indexes = s["indexes"].as_array().unwrap();
    assert_eq!(indexes.len(), 2, "{s}");
    for ix in indexes {
        assert_eq!(
            ix["platforms"],
            serde_json::json!(["linux/amd64", "linux/arm64"]),
            "{ix}"
        );
        let image = ix["image"].as_str().unwrap();
        let served = crate::push::manifest_digest(&r, &format!("{}/{image}", ns.0), "latest");
        assert_eq!(served.as_deref(), ix["digest"].as_str(), "{image}");
    }
}
