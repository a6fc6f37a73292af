//! Regression tests for the hostile and real-world defect sweep (issue
//! "Hostile and real-world"), each on the real binary; those that build or
//! push use the real engine and the htpasswd registry on loopback. Each
//! test names the item of the issue it covers.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;
use crate::push::{docker_config, manifest_digest, registry, Registry};

/// A two-image tree in the test registry, with an extra release tag.
struct Pushed {
    r: Registry,
    ns: Namespace,
    t: TestTree,
    config: tempfile::TempDir,
}

fn pushed(test: &str, extra: &str) -> Option<Pushed> {
    let r = registry()?;
    if !engine::available(test) {
        return None;
    }
    let ns = Namespace::new(test);
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nvars: {{base_image: '{BASE_IMAGE}'}}\n{extra}",
            r.host, ns.0
        ),
    )
    .write(
        "images/base/Dockerfile.j2",
        &format!("FROM {{{{ base_image }}}}\nRUN echo {test} > /base\n"),
    )
    .write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo app > /app\n",
    );
    let config = docker_config(&r.host, &r.user, &r.password);
    Some(Pushed { r, ns, t, config })
}

impl Pushed {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .t
            .command(args)
            .env("DOCKER_CONFIG", self.config.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn digest(&self, name: &str, tag: &str) -> Option<String> {
        manifest_digest(&self.r, &format!("{}/{name}", self.ns.0), tag)
    }
}

/// Item 4: `strata publish` after `build --push --no-publish` moves every
/// release tag, `tags:` included (the CI fan-out's publish job).
#[test]
fn publish_moves_the_extra_release_tags_too() {
    let Some(p) = pushed("sweep-publish-tags", "tags: [stable]\n") else {
        return;
    };
    let (code, _, err) = p.run(&["build", "--push", "--no-publish", "--progress", "plain"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.digest("app", "latest"), None, "nothing published yet");
    let (code, out, err) = p.run(&["publish"]);
    assert_eq!(code, 0, "{err}");
    for name in ["base", "app"] {
        let latest = p.digest(name, "latest").expect("latest moved");
        assert_eq!(p.digest(name, "stable"), Some(latest.clone()), "{out}");
        assert!(out.contains(&format!(":stable -> {latest}")), "{out}");
    }
}

/// Item 9: `strata keep REPO@sha256:…` keeps exactly that manifest; an
/// image that is not in the tree is bad input (exit 2), not an
/// unreachable registry.
#[test]
fn keep_takes_a_digest_and_refuses_unknown_images() {
    let Some(p) = pushed("sweep-keep-digest", "") else {
        return;
    };
    let (code, _, err) = p.run(&["build", "--push", "--progress", "plain"]);
    assert_eq!(code, 0, "{err}");
    let digest = p.digest("base", "latest").expect("pushed");
    let pinned = format!("{}/{}/base@{digest}", p.r.host, p.ns.0);
    let (code, out, err) = p.run(&["keep", &pinned]);
    assert_eq!(code, 0, "{err}");
    let hex = &digest["sha256:".len()..];
    let tag = format!("keep-sha256-{}", &hex[..12]);
    assert!(
        out.starts_with(&format!("{}/{}/base:{tag} -> {digest}", p.r.host, p.ns.0)),
        "{out}"
    );
    assert_eq!(p.digest("base", &tag), Some(digest));
    let (code, _, err) = p.run(&["keep", "nosuch:1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`nosuch:1` names no image of the tree"),
        "{err}"
    );
    let (code, _, err) = p.run(&["keep", "Base:1"]);
    assert_eq!(code, 2, "{err}");
}

/// Item 11: the summary of an image found up to date gives what strata
/// found: its image ID (and, pushed, its registry digest).
#[test]
fn an_up_to_date_image_has_its_id_and_digest_in_the_summary() {
    let Some(p) = pushed("sweep-up-to-date-id", "") else {
        return;
    };
    let (code, _, err) = p.run(&["build", "--push", "--progress", "plain"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = p.run(&["build", "--progress", "plain", "--summary", "s.json"]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&p.t.read("s.json")).expect("summary");
    for image in summary["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        assert_eq!(image["status"], "up-to-date", "{image}");
        let reference = format!("{}/{}/{name}:latest", p.r.host, p.ns.0);
        let (id, _) = engine::inspect(&reference).expect("on the engine");
        assert_eq!(image["image_id"].as_str(), Some(id.as_str()), "{image}");
        assert_eq!(
            image["digest"].as_str(),
            p.digest(name, "latest").as_deref()
        );
    }
}

/// Item 25: the run lock keys on the engine's socket, not on how its
/// address is spelled: a second run through `unix:////var/run/../run/…`
/// waits for (or with --no-wait is refused by) the first.
#[test]
fn the_lock_holds_however_the_socket_is_spelled() {
    if !engine::available("lock-spelling") {
        return;
    }
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h,
        _ => "unix:///var/run/docker.sock".to_string(),
    };
    let Some(path) = socket.strip_prefix("unix://") else {
        eprintln!("SKIPPED the_lock_holds_however_the_socket_is_spelled: DOCKER_HOST is not a unix socket");
        return;
    };
    let dir = std::path::Path::new(path).parent().unwrap();
    let file = std::path::Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy();
    let last = dir.file_name().unwrap().to_string_lossy();
    let odd = format!("unix:///{}/../{last}/{file}", dir.display());
    let ns = Namespace::new("lock-spelling");
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{BASE_IMAGE}'}}\n"),
    )
    .write(
        "images/slow/Dockerfile.j2",
        &format!(
            "FROM {{{{ base_image }}}}\nRUN echo slow-sleeping {} && sleep 5\n",
            crate::common::nonce()
        ),
    );
    let set = ns.set();
    let mut first =
        crate::common::Running::spawn(t.command(&["--set", &set, "build", "--progress", "plain"]));
    first.wait_for("slow-sleeping", 120);
    let out = t
        .command(&["--set", &set, "build", "--no-wait"])
        .env("DOCKER_HOST", &odd)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{odd}: {err}");
    assert!(err.contains("another strata run (pid"), "{err}");
    let (code, err) = first.finish();
    assert_eq!(code, 0, "{err}");
}

/// Item 24: credentials written into an engine or registry address are
/// never echoed.
#[test]
fn credentials_in_addresses_are_never_shown() {
    let t = TestTree::new();
    t.write("strata.yaml", "registry: 'ci:hunter2@127.0.0.1:9'\n")
        .write("images/one/Dockerfile", "FROM scratch\n");
    let run = t.run(&["list"]).expect(2);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    assert!(run.stderr.contains("holds credentials"), "{}", run.stderr);
    t.write("strata.yaml", "namespace: x\n");
    let addr = crate::common::closed_address();
    let out = t
        .command(&["plan"])
        .env("DOCKER_HOST", format!("tcp://ci:hunter2@{addr}"))
        .env("STRATA_ENGINE_TIMEOUT", "3")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains(&format!("tcp://{addr}")), "{err}");
}

/// A `strata` stand-in that writes the words it was given, NUL-separated,
/// to `$STRATA_ARGS_OUT`: what a CI job's shell really passed.
fn fake_strata() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strata");
    std::fs::write(
        &path,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$STRATA_ARGS_OUT\"\n",
    )
    .unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    dir
}

/// Run one job's command line in a shell, as the CI system's runner
/// would, with the stand-in `strata`: the words it received.
fn words_of(line: &str, fake: &std::path::Path, work: &std::path::Path) -> Vec<String> {
    let out = work.join("args");
    let _ = std::fs::remove_file(&out);
    let path = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = std::process::Command::new("sh")
        .args(["-c", line])
        .current_dir(work)
        .env("PATH", path)
        .env("STRATA_ARGS_OUT", &out)
        .status()
        .unwrap();
    assert!(status.success(), "{line}");
    let bytes = std::fs::read(&out).unwrap_or_default();
    bytes
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).to_string())
        .collect()
}

/// The build command of the job for image `a` in each system's file.
fn job_line(system: &str, text: &str) -> String {
    let doc: serde_json::Value =
        serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    match system {
        "gitlab" => doc["a"]["script"][0].as_str().unwrap().to_string(),
        "github" => doc["jobs"]["a"]["steps"][1]["run"]
            .as_str()
            .unwrap()
            .to_string(),
        "zuul" => doc
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["job"]["name"] == "strata-build-a")
            .map(|d| {
                d["job"]["vars"]["strata_command"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap(),
        _ => {
            // Jenkins: the Groovy single-quoted string of `sh '…'` in the
            // Job Builder's dsl (whose braces are doubled).
            let dsl = doc[0]["job"]["dsl"]
                .as_str()
                .unwrap()
                .replace("{{", "{")
                .replace("}}", "}");
            let at = dsl.find("steps { sh '").unwrap() + "steps { sh '".len();
            let mut out = String::new();
            let mut chars = dsl[at..].chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next().unwrap()),
                    '\'' => break,
                    c => out.push(c),
                }
            }
            out
        }
    }
}

/// Items 3, 22, 23, 30: every emitter carries hostile values to the job's
/// shell exactly as given (shown by running the emitted command in `sh`),
/// or refuses them with exit 2; every option that changes the set reaches
/// the jobs; job ids stay one-to-one.
#[test]
fn hostile_values_reach_ci_jobs_as_given_or_are_refused() {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: hostile\n")
        .write("images/a/Dockerfile", "FROM scratch\n")
        .write("over.j2", "{% extends parent_template %}\n");
    let fake = fake_strata();
    let hostile = [
        "$(touch pwned)",
        "`touch pwned`",
        "a; touch pwned",
        "it's \"quoted\"",
        "${HOME} $HOME",
        "* ?",
        ": # not a comment",
        "&anchor *alias !tag",
        "- item",
        "{a: b}",
        "[x, y]",
        "%{x} @x | > <",
        "back\\slash",
        "x {{ curly }}",
    ];
    for system in ["gitlab", "github", "jenkins", "zuul"] {
        for value in hostile {
            let set = format!("vars.x={value}");
            let run = t.run(&[
                "--set",
                &set,
                "--override",
                "over.j2",
                "--var",
                "K=v",
                "ci",
                system,
                "--all",
            ]);
            if system == "zuul" && value.contains("{{") {
                assert_eq!(run.code, 2, "{system} {value}: {}", run.stderr);
                continue;
            }
            assert_eq!(run.code, 0, "{system} {value}: {}", run.stderr);
            let words = words_of(&job_line(system, &run.stdout), fake.path(), t.path());
            let at = words.iter().position(|w| w == "--set").expect("--set");
            assert_eq!(words[at + 1], set, "{system}: {words:?}");
            for (flag, given) in [("--override", "over.j2"), ("--var", "K=v")] {
                let i = words
                    .iter()
                    .position(|w| w == flag)
                    .unwrap_or_else(|| panic!("{system}: {flag} dropped: {words:?}"));
                assert_eq!(words[i + 1], given);
            }
            assert!(!t.path().join("pwned").exists(), "{system} {value}");
        }
        for value in ["a\nb", "a\u{85}b", "a\u{7f}b", "a\u{1b}[31mb"] {
            let set = format!("vars.x={value}");
            let run = t.run(&["--set", &set, "ci", system, "--all"]);
            assert_eq!(run.code, 2, "{system} {value:?}: {}", run.stderr);
            assert!(run.stderr.contains("control character"), "{}", run.stderr);
        }
    }
    let run = t.run(&[
        "--set",
        "vars.x=${{ secrets.GITHUB_TOKEN }}",
        "ci",
        "github",
        "--all",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("GitHub Actions would evaluate"),
        "{}",
        run.stderr
    );
}

/// Item 30: names that map to one job id get distinct ids; no job is lost.
#[test]
fn colliding_ci_job_ids_get_a_suffix() {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: ids\n");
    for name in ["a.b", "a_b", "image", "build-image", "strata-publish"] {
        t.write(&format!("images/{name}/Dockerfile"), "FROM scratch\n");
    }
    for (system, jobs) in [("github", "jobs"), ("gitlab", "")] {
        let run = t.run(&["ci", system, "--all"]).expect(0);
        let doc: serde_json::Value = serde_saphyr::from_str(&run.stdout).unwrap();
        let map = if jobs.is_empty() { &doc } else { &doc[jobs] };
        let ids: Vec<&String> = map
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !["stages", "name", "on", "jobs"].contains(&k.as_str()))
            .collect();
        assert_eq!(ids.len(), 6, "{system}: five images and publish: {ids:?}");
    }
}

/// Items 1, 2, 20: a devfile cannot read or write outside the tree, and a
/// variable's value never adds YAML structure.
#[test]
fn devfiles_stay_inside_the_tree_and_variables_stay_values() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("secret.yaml"),
        "kind: Secret # hunter2\n",
    )
    .unwrap();
    let t = TestTree::new();
    let devfile = |uri: &str| {
        format!(
            "schemaVersion: 2.2.0\ncomponents:\n  - name: app\n    image:\n      imageName: app\n      dockerfile: {{uri: Dockerfile}}\n  - name: deploy\n    kubernetes: {{uri: '{uri}'}}\ncommands:\n  - id: d\n    apply: {{component: deploy}}\n    group: {{kind: deploy, isDefault: true}}\n"
        )
    };
    t.write("Dockerfile", "FROM scratch\n");
    let secret = outside.path().join("secret.yaml").display().to_string();
    let relative = format!("../../../../../../../../..{secret}");
    for uri in [secret.as_str(), relative.as_str(), "/proc/self/environ"] {
        t.write("devfile.yaml", &devfile(uri));
        let run = t.run(&["--set", "registry=127.0.0.1:9", "deploy", "--out", "m"]);
        assert_eq!(run.code, 2, "{uri}: {}", run.stderr);
        assert!(
            run.stderr.contains("outside the tree"),
            "{uri}: {}",
            run.stderr
        );
        assert!(!run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"));
    }
    // A component name that is a path: refused by the devfile schema's rule.
    t.write(
        "devfile.yaml",
        &devfile("k.yaml")
            .replace("name: deploy", "name: ../../../../tmp/x/evil")
            .replace("component: deploy", "component: ../../../../tmp/x/evil"),
    )
    .write("k.yaml", "kind: ConfigMap\n");
    let run = t.run(&["list"]).expect(2);
    assert!(
        run.stderr.contains("is not a devfile component name"),
        "{}",
        run.stderr
    );
    // Values are substituted into parsed strings: quotes and newlines in a
    // value stay in that value (before, they broke or added YAML).
    t.write(
        "devfile.yaml",
        "schemaVersion: 2.2.0\ncomponents:\n  - name: app\n    image:\n      imageName: app\n      dockerfile:\n        uri: Dockerfile\n        args: [\"--build-arg\", \"G={{G}}\"]\n",
    );
    let injected =
        "x\"]\n  - name: evil\n    image: {imageName: evil, dockerfile: {uri: Dockerfile}}\n#";
    let run = t
        .run(&["--var", &format!("G={injected}"), "list", "--json"])
        .expect(0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = list.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app"], "{}", run.stdout);
}

const META_PASSING: &str = "schemaVersion: 2.0.0\nmetadataTest:\n  envVars:\n    - key: PATH\n      value: /bin\n      isRegex: true\n";
const FAILING_FILE: &str = "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: no such file\n    path: /nope\n    shouldExist: true\n";

/// Item 8: an edited test file is re-run by the next build, whatever runs
/// came before (`build --no-tests`, a failing `test`, `build --push`).
#[test]
fn an_edited_test_file_is_run_again_after_any_sequence() {
    let Some(p) = pushed("sweep-test-key", "") else {
        return;
    };
    p.t.write("images/app/image.yaml", "tests: [fail.yaml]\n")
        .write("images/app/fail.yaml", FAILING_FILE)
        .write("images/app/meta.yaml", META_PASSING);
    let build = |args: &[&str]| {
        let mut all = vec!["build", "--progress", "plain", "--summary", "s.json"];
        all.extend_from_slice(args);
        let (code, _, err) = p.run(&all);
        let s: serde_json::Value = serde_json::from_str(&p.t.read("s.json")).unwrap_or_default();
        let app = s["images"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == "app").cloned())
            .unwrap_or_default();
        (code, err, app)
    };
    assert_eq!(build(&["--no-tests"]).0, 0);
    let (code, _, err) = p.run(&["test", "app"]);
    assert_eq!(code, 1, "{err}");
    p.t.write("images/app/image.yaml", "tests: [meta.yaml]\n");
    let (code, err, app) = build(&["--push"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(app["tests"].as_array().map(Vec::len), Some(1), "{app}");
    let (code, err, app) = build(&[]);
    assert_eq!(
        (code, app["status"].as_str()),
        (0, Some("up-to-date")),
        "{err}"
    );
    assert_eq!(
        app["tests"].as_array().map(Vec::len),
        Some(0),
        "passed already: {app}"
    );
    p.t.write(
        "images/app/meta.yaml",
        &META_PASSING.replace("/bin", "/usr"),
    );
    let (code, err, app) = build(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(app["status"], "up-to-date", "not rebuilt: {app}");
    assert_eq!(
        app["tests"].as_array().map(Vec::len),
        Some(1),
        "run again: {app}"
    );
    let (_, plan, _) = p.run(&["plan"]);
    assert!(plan.contains("0 to build"), "{plan}");
}

/// A registry that misbehaves, on loopback: each request's method and path
/// go to `answer`, which gives the status, extra headers and body. The
/// requests seen are kept, in order.
struct FakeRegistry {
    host: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// One request on `stream`.
fn serve(
    stream: std::net::TcpStream,
    answer: fn(&str, &str) -> Answer,
    log: &std::sync::Mutex<Vec<String>>,
) {
    use std::io::{BufRead, BufReader, Write};
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = std::io::Read::read_exact(&mut reader, &mut body);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    log.lock().unwrap().push(format!("{method} {path}"));
    let (status, headers, body) = answer(method, path);
    // Status 0: never answer; status 1: drop the connection at once.
    if status == 0 {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        return;
    }
    if status == 1 {
        return;
    }
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&body);
}

fn fake_registry(answer: fn(&str, &str) -> Answer) -> FakeRegistry {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(20_000) {
            let log = log.clone();
            std::thread::spawn(move || serve(stream, answer, &log));
        }
    });
    FakeRegistry { host, seen }
}

/// Item 29: a registry that ignores tag-list pagination stops `prune`
/// with exit 3 naming it, instead of asking forever.
#[test]
fn a_registry_that_pages_forever_stops_prune() {
    let r = fake_registry(|_, path| {
        if path.contains("/tags/list") {
            let tags: Vec<String> = (0..1000).map(|i| format!("\"t{i}\"")).collect();
            let body = format!("{{\"name\": \"x\", \"tags\": [{}]}}", tags.join(","));
            return (
                200,
                vec![("Content-Type", "application/json".into())],
                body.into_bytes(),
            );
        }
        (200, vec![], b"{}".to_vec())
    });
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: p\nretention: {{max_age: 1d}}\n",
            r.host
        ),
    )
    .write("images/one/Dockerfile", "FROM scratch\n");
    let run = t.run(&["prune", "--dry-run"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("`{}` pages its tag list", r.host)),
        "{}",
        run.stderr
    );
    let asked = r
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("/tags/list"))
        .count();
    assert_eq!(asked, 2, "the second page brought nothing new");
}

/// Item 10: a registry that serves a manifest under the wrong digest is an
/// integrity failure (exit 3, said as such), and nothing is moved.
#[test]
fn a_wrong_digest_from_the_registry_is_an_integrity_failure() {
    let r = fake_registry(|method, path| {
        if method == "GET" && path.contains("/manifests/") {
            let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#.to_vec();
            let wrong = format!("sha256:{}", "0".repeat(64));
            return (
                200,
                vec![
                    (
                        "Content-Type",
                        "application/vnd.docker.distribution.manifest.v2+json".into(),
                    ),
                    ("Docker-Content-Digest", wrong),
                ],
                body,
            );
        }
        (200, vec![], b"{}".to_vec())
    });
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("registry: '{}'\nnamespace: d\n", r.host),
    )
    .write("images/one/Dockerfile", "FROM scratch\n");
    let run = t.run(&["keep", "one:v1"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("failed an integrity check"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("cannot reach"), "{}", run.stderr);
    let seen = r.seen.lock().unwrap();
    assert!(
        !seen.iter().any(|l| l.starts_with("PUT")),
        "nothing moved: {seen:?}"
    );
}

/// Item 5: an image test with a `setup:` step passes during `build` (the
/// committed setup image's removal took the untagged image under test).
/// Items 17, 31: from the end of its build an image is held by a tag, so
/// another job's `docker image prune` cannot take it; the hold goes after.
#[test]
fn setup_steps_work_in_build_and_a_prune_mid_run_takes_nothing() {
    if !engine::available("setup-step-in-build") {
        return;
    }
    let ns = Namespace::new("setup-in-build");
    let t = TestTree::new();
    t.write("strata.yaml", &format!("vars: {{base_image: '{BASE_IMAGE}'}}\n"))
        .write("images/app/Dockerfile.j2", "FROM {{ base_image }}\nRUN echo app > /app\n")
        .write("images/app/image.yaml", "tests: [t.yaml]\nlabels: {sweep.test: setup-in-build}\n")
        .write(
            "images/app/t.yaml",
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: setup is seen\n    setup: [[\"touch\", \"/tmp/ready\"]]\n    command: sh\n    args: [\"-c\", \"sleep 4 && ls /tmp/ready\"]\n    expectedOutput: [\"/tmp/ready\"]\n",
        );
    let set = ns.set();
    let mut run =
        crate::common::Running::spawn(t.command(&["--set", &set, "build", "--progress", "plain"]));
    run.wait_for("running 1 image tests", 120);
    let repo = format!("{}/app", ns.0);
    let held = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}", &repo])
        .output()
        .unwrap();
    let held = String::from_utf8_lossy(&held.stdout).to_string();
    assert!(held.contains(&format!("{repo}:strata-hold-")), "{held}");
    // Only this test's images: the engine is shared with the other tests.
    let pruned = std::process::Command::new("docker")
        .args([
            "image",
            "prune",
            "-f",
            "--filter",
            "label=sweep.test=setup-in-build",
        ])
        .status()
        .unwrap();
    assert!(pruned.success());
    let (code, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("✓ 1 test"), "{err}");
    let after = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}", &repo])
        .output()
        .unwrap();
    let after = String::from_utf8_lossy(&after.stdout).to_string();
    assert!(!after.contains("strata-hold-"), "the hold is gone: {after}");
    assert!(after.contains(&format!("{repo}:latest")), "{after}");
}

/// Item 15: a command test that never ends fails at its `timeout:`, its
/// container removed; an interrupted test's container is removed too; a
/// huge output stays whole in the log file only.
#[test]
fn image_tests_are_bounded_in_time_and_output() {
    if !engine::available("bounded-image-tests") {
        return;
    }
    let ns = Namespace::new("bounded-tests");
    let t = TestTree::new();
    let test_file = |command: &str, extra: &str| {
        format!("schemaVersion: 2.0.0\ncommandTests:\n  - name: bounded\n    command: sh\n    args: [\"-c\", \"{command}\"]\n    expectedOutput: [\"never printed\"]\n{extra}")
    };
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{BASE_IMAGE}'}}\n"),
    )
    .write(
        "images/app/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN true\n",
    )
    .write("images/app/image.yaml", "tests: [t.yaml]\n")
    .write(
        "images/app/t.yaml",
        &test_file("sleep 100017", "    timeout: 3s\n"),
    );
    let set = ns.set();
    let leftovers = || {
        let out = std::process::Command::new("docker")
            .args(["ps", "-a", "--no-trunc", "--format", "{{.Command}}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("100017")
    };
    let run = t
        .run(&["--set", &set, "build", "--progress", "plain"])
        .expect(1);
    assert!(
        run.stderr.contains("did not end within 3s"),
        "{}",
        run.stderr
    );
    assert!(!leftovers(), "the timed-out container is gone");

    t.write("images/app/t.yaml", &test_file("sleep 100017", ""));
    let mut running =
        crate::common::Running::spawn(t.command(&["--set", &set, "build", "--progress", "plain"]));
    running.wait_for("running 1 image tests", 120);
    std::thread::sleep(std::time::Duration::from_secs(1));
    running.interrupt();
    let (code, err) = running.finish();
    assert_eq!(code, 130, "{err}");
    assert!(
        !leftovers(),
        "the interrupted test's container is gone: {err}"
    );

    t.write(
        "images/app/t.yaml",
        &test_file("head -c 5000000 /dev/zero | tr '\\\\\\\\0' x", ""),
    );
    let run = t
        .run(&[
            "--set",
            &set,
            "build",
            "--progress",
            "plain",
            "--logs-dir",
            "logs",
            "--summary",
            "s.json",
        ])
        .expect(1);
    assert!(
        run.stderr.len() < 64 << 10,
        "stderr is {} bytes",
        run.stderr.len()
    );
    let summary = t.read("s.json");
    assert!(
        summary.len() < 64 << 10,
        "the summary is {} bytes",
        summary.len()
    );
    assert!(
        summary.contains("bytes cut; the whole message is in the image's log file"),
        "{summary}"
    );
    let log = std::fs::metadata(t.path().join("logs/app.log"))
        .unwrap()
        .len();
    assert!(log > 5_000_000, "the log file has it whole: {log} bytes");
}

/// Item 16: a template that builds gigabytes is a template error with its
/// file (and, for a join, its line), exit 2, in bounded memory.
#[test]
fn a_template_cannot_build_gigabytes() {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: mem\n");
    for (template, says) in [
        (
            "FROM scratch\n{{ ([\"x\" * 1000000] * 100000) | join }}\n",
            "Dockerfile.j2:2",
        ),
        (
            "FROM scratch\n{% for i in range(200) %}{{ \"y\" * 1000000 }}{% endfor %}\n",
            "the rendered Dockerfile passes 64 MiB",
        ),
    ] {
        t.write("images/a/Dockerfile.j2", template);
        let run = t.run(&["list"]).expect(2);
        assert!(
            run.stderr.contains("the most a template may build"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(says), "{}", run.stderr);
    }
}

/// What a registry answers besides uploads: `/v2/` is there, and nothing else.
fn registry_basics(path: &str) -> Answer {
    if path == "/v2/" {
        return (200, vec![], b"{}".to_vec());
    }
    let unknown = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#;
    (
        404,
        vec![("Content-Type", "application/json".into())],
        unknown.to_vec(),
    )
}

/// A tree of one image on busybox whose `registry:` is a loopback registry
/// answering with `answer` (its uploads fail, one way or another).
fn uploads_fail(answer: fn(&str, &str) -> Answer) -> (FakeRegistry, TestTree) {
    let r = fake_registry(answer);
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: uploads\nvars: {{base_image: '{BASE_IMAGE}'}}\n",
            r.host
        ),
    );
    (r, t)
}

/// Item 14: a registry that takes the connection and never answers an
/// upload fails that image after STRATA_REGISTRY_TIMEOUT without progress;
/// the run ends and nothing is moved.
#[test]
fn an_upload_that_never_moves_fails_at_the_registry_timeout() {
    if !engine::available("upload-timeout") {
        return;
    }
    let (r, t) = uploads_fail(|method, path| match (method, path) {
        ("POST", p) if p.contains("/blobs/uploads") => (0, vec![], vec![]),
        _ => registry_basics(path),
    });
    t.write(
        "images/one/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo upload-timeout > /x\n",
    );
    let begun = std::time::Instant::now();
    let out = t
        .command(&["build", "--push", "--progress", "plain"])
        .env("STRATA_REGISTRY_TIMEOUT", "3")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing moved for 3 s"), "{err}");
    assert!(
        begun.elapsed() < std::time::Duration::from_secs(120),
        "{err}"
    );
    let seen = r.seen.lock().unwrap();
    assert!(
        !seen
            .iter()
            .any(|l| l.starts_with("PUT") && l.contains("/manifests/")),
        "nothing moved: {seen:?}"
    );
    let _ = std::process::Command::new("sh")
        .args(["-c", &format!("docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^{}/uploads/' | xargs -r docker rmi -f >/dev/null", r.host)])
        .status();
}

/// Item 18: a tree named as docker-library names its variants, tags of one
/// repository built on each other, is one chain, built in order; a tag of
/// that repository no image produces is exit 2 with the candidates.
#[test]
fn variant_tags_of_one_repository_form_a_chain() {
    let t = TestTree::new();
    let write = |ns: &str| {
        t.write(
            "strata.yaml",
            &format!("namespace: '{ns}'\nvars: {{base_image: '{BASE_IMAGE}'}}\n"),
        );
        let variants = [
            ("curl", "{{ base_image }}", "trixie-curl"),
            (
                "scm",
                "{{ namespace ~ '/' if namespace }}buildpack-deps:trixie-curl",
                "trixie-scm",
            ),
            (
                "full",
                "{{ namespace ~ '/' if namespace }}buildpack-deps:trixie-scm",
                "trixie",
            ),
        ];
        for (dir, from, tag) in variants {
            t.write(
                &format!("images/{dir}/Dockerfile.j2"),
                &format!("FROM {from}\nRUN echo {tag} >> /variants\n"),
            )
            .write(
                &format!("images/{dir}/image.yaml"),
                &format!("repository: buildpack-deps\ntag: {tag}\n"),
            );
        }
    };
    write("");
    let run = t.run(&["list", "--json"]).expect(0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let of = |name: &str| list.iter().find(|i| i["name"] == name).unwrap().clone();
    assert_eq!(of("curl")["ref"], "buildpack-deps:trixie-curl");
    assert_eq!(of("scm")["parents"], serde_json::json!(["curl"]));
    assert_eq!(of("full")["parents"], serde_json::json!(["scm"]));
    assert_eq!(of("full")["bases"], serde_json::json!([]));
    t.write(
        "images/full/Dockerfile.j2",
        "FROM buildpack-deps:trixie-scn\n",
    );
    let run = t.run(&["list"]).expect(2);
    assert!(
        run.stderr
            .contains("`buildpack-deps:trixie-scn` is a tag of `buildpack-deps`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("buildpack-deps:trixie-curl, buildpack-deps:trixie-scm"),
        "{}",
        run.stderr
    );
    t.write(
        "images/full/image.yaml",
        "repository: buildpack-deps\ntag: trixie-scm\n",
    );
    let run = t.run(&["list"]).expect(2);
    assert!(
        run.stderr
            .contains("are both built as `buildpack-deps:trixie-scm`"),
        "{}",
        run.stderr
    );

    if !engine::available("variant-tags") {
        return;
    }
    let ns = Namespace::new("variant-tags");
    write(&ns.0);
    t.run(&["build", "--progress", "plain"]).expect(0);
    let full = format!("{}/buildpack-deps:trixie", ns.0);
    assert_eq!(
        engine::run_in(&full, &["cat", "/variants"]),
        "trixie-curl\ntrixie-scm\ntrixie\n"
    );
    let scm = engine::layers(&format!("{}/buildpack-deps:trixie-scm", ns.0));
    assert!(engine::layers(&full).starts_with(&scm));
    let plan = t.run(&["plan"]).expect(0);
    assert!(plan.stdout.contains("0 to build"), "{}", plan.stdout);
}

/// Item 7: a devfile whose `imageName` names its registry deploys without
/// `registry:`, and `build --push` moves that release tag too.
#[test]
fn a_fully_qualified_image_name_is_pushed_where_it_says() {
    let Some(r) = registry() else { return };
    if !engine::available("qualified-image-name") {
        return;
    }
    let ns = Namespace::new("qualified");
    let image = format!("{}/{}/full:v1", r.host, ns.0);
    let t = TestTree::new();
    t.write("Dockerfile", &format!("FROM {BASE_IMAGE}\nRUN echo qualified > /q\n"))
        .write(
            "devfile.yaml",
            &format!(
                "schemaVersion: 2.2.0\ncomponents:\n  - name: full\n    image:\n      imageName: '{image}'\n      dockerfile: {{uri: Dockerfile}}\n  - name: k\n    kubernetes:\n      inlined: |\n        kind: Pod\n        metadata: {{name: full}}\n        spec:\n          containers: [{{name: full, image: '{image}'}}]\ncommands:\n  - id: d\n    composite: {{commands: [b, a], group: {{kind: deploy, isDefault: true}}}}\n  - id: b\n    apply: {{component: full}}\n  - id: a\n    apply: {{component: k}}\n"
            ),
        );
    let config = docker_config(&r.host, &r.user, &r.password);
    let out = t
        .command(&["deploy", "--progress", "plain"])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let digest = manifest_digest(&r, &format!("{}/full", ns.0), "v1").expect("v1 pushed");
    let manifests = String::from_utf8_lossy(&out.stdout);
    assert!(
        manifests.contains(&format!("{}/{}/full@{digest}", r.host, ns.0)),
        "{manifests}"
    );
    assert!(manifests.contains("name: full"), "names stay: {manifests}");
}

/// Item 13: a registry that sends a manifest far over 4 MiB (containerd's
/// cap) is stopped at the cap: exit 3 naming it, nothing moved.
#[test]
fn an_oversized_manifest_is_cut_off_at_the_cap() {
    let r = fake_registry(|method, path| {
        if method == "GET" && path.contains("/manifests/") {
            let body = vec![b' '; 64 << 20];
            return (
                200,
                vec![(
                    "Content-Type",
                    "application/vnd.docker.distribution.manifest.v2+json".into(),
                )],
                body,
            );
        }
        (200, vec![], b"{}".to_vec())
    });
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("registry: '{}'\nnamespace: big\n", r.host),
    )
    .write("images/one/Dockerfile", "FROM scratch\n");
    let out = t.command(&["keep", "one:v1"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("the registry `{}` sent more than 4 MiB", r.host)),
        "{err}"
    );
    let seen = r.seen.lock().unwrap();
    assert!(
        !seen.iter().any(|l| l.starts_with("PUT")),
        "nothing moved: {seen:?}"
    );
}

/// Item 32: a push the engine keeps retrying logs its first retry and the
/// first error with the count, not thirty lines of "Retrying in N seconds".
#[test]
fn a_retried_push_logs_the_first_error_and_a_count() {
    if !engine::available("push-retries") {
        return;
    }
    let (r, t) = uploads_fail(|method, path| match (method, path) {
        ("POST", p) if p.contains("/blobs/uploads") => (1, vec![], vec![]),
        _ => registry_basics(path),
    });
    t.write(
        "images/one/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo push-retries > /x\n",
    );
    let out = t
        .command(&[
            "build",
            "--push",
            "--progress",
            "plain",
            "--summary",
            "s.json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let retrying = err
        .lines()
        .filter(|l| l.starts_with("one | push: Retrying in"))
        .count();
    assert_eq!(retrying, 1, "one retry line as it happens:\n{err}");
    let summary = t.read("s.json");
    assert!(summary.contains("after the engine retried"), "{summary}");
    let _ = std::process::Command::new("sh")
        .args(["-c", &format!("docker images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep '^{}/uploads/' | xargs -r docker rmi -f >/dev/null", r.host)])
        .status();
}
