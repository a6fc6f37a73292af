//! The run's page (`--report run.html`, `strata report`), checked in a
//! real browser: Debian's headless chromium over WebDriver. A real run of
//! the sample set with one mid-tree image made to fail (its `RUN` echoes a
//! `<script>`), pushed to the loopback registry with htpasswd auth and a
//! build secret: the states in the DOM, the failing step's line in the
//! panel, the fragment link, nothing of the log run as script, no
//! secret in the page, no console error, a screenshot kept under target/.

use crate::common::browser::{self, Browser};
use crate::common::engine::{self, Namespace};
use crate::common::TestTree;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Where the screenshots are kept for CI to upload.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-test");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn url(path: &Path, fragment: &str) -> String {
    format!("file://{}{fragment}", path.display())
}

#[test]
fn the_page_of_a_failed_run_shows_what_failed_and_what_it_skipped() {
    if !engine::available("report") || !browser::available("report") {
        return;
    }
    let Some(r) = crate::push::registry() else {
        return;
    };
    let ns = Namespace::new("report-page");
    let t = TestTree::sample();
    let base = t.read("images/nova/nova-base/Dockerfile.j2");
    t.write(
        "images/nova/nova-base/Dockerfile.j2",
        &format!(
            "{base}\nRUN echo \"<script>window.pwned=1</script><img src=x onerror=window.pwned=2>\" && echo {} && exit 3\n",
            crate::common::nonce()
        ),
    );
    let keystone = t.read("images/keystone/keystone/Dockerfile.j2");
    t.write(
        "images/keystone/keystone/Dockerfile.j2",
        &format!("{keystone}\nRUN --mount=type=secret,id=tok test -s /run/secrets/tok\n"),
    );
    let secret = format!("planted-secret-{}", crate::common::nonce());
    let config = crate::push::docker_config(&r.host, &r.user, &r.password);
    let registry = format!("registry={}", r.host);
    let out = t
        .command(&[
            "--set",
            &ns.set(),
            "--set",
            &registry,
            "build",
            "--push",
            "--progress",
            "plain",
            "--secret",
            "id=tok,env=STRATA_TEST_TOK",
            "--logs-dir",
            "logs",
            "--summary",
            "s.json",
            "--report",
            "run.html",
        ])
        .env("STRATA_TEST_TOK", &secret)
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let page_path = t.path().join("run.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    for (what, value) in [
        ("build secret", &secret),
        ("registry password", &r.password),
    ] {
        assert!(!page.contains(value.as_str()), "the {what} is in the page");
    }
    assert!(
        !page.contains(" src=\"http") && !page.contains("<link"),
        "nothing fetched"
    );

    let b = Browser::start();
    b.open(&url(&page_path, ""));
    let states = b.script(
        "const o = {}; for (const n of document.querySelectorAll('#graph .node')) \
         o[n.dataset.name] = n.dataset.state; return o;",
    );
    assert_eq!(states["nova-base"], "failed", "{states}");
    for skipped in ["nova-api", "nova-compute", "nova-conductor"] {
        assert_eq!(states[skipped], "parent-failed", "{skipped}: {states}");
    }
    for built in ["base", "openstack-base", "keystone", "horizon", "tools"] {
        assert_eq!(states[built], "built", "{built}: {states}");
    }
    assert_eq!(states.as_object().unwrap().len(), 13, "{states}");
    let first = b.script("return document.getElementById('first-failure').textContent");
    assert!(first.as_str().unwrap().contains("nova-base"), "{first}");

    // A real click on the failed image: its panel, the failing step marked.
    b.click("#graph .node[data-name='nova-base']");
    let failing = b.script(
        "const l = document.querySelector('#panel .log .failing'); return l && l.textContent",
    );
    let failing = failing
        .as_str()
        .unwrap_or_else(|| panic!("no failing line marked"));
    assert!(
        failing.contains("RUN echo") && failing.contains("exit 3"),
        "{failing}"
    );
    assert_eq!(
        b.script("return document.getElementById('panel-state').textContent"),
        "failed"
    );
    // The planted markup is shown as text, and none of it ran.
    let shown = b.script(
        "return [...document.querySelectorAll('#panel .log .line')]\
         .some(l => l.textContent.includes('<script>window.pwned=1</script>'))",
    );
    assert_eq!(shown, json!(true));
    assert_eq!(b.script("return typeof window.pwned"), "undefined");
    assert_eq!(
        b.script("return document.querySelectorAll('#panel .log script, #panel .log img').length"),
        0
    );
    let shot = b.screenshot();
    std::fs::write(artifacts().join("failed-run.png"), &shot).unwrap();

    // Filtering by name and by state.
    let visible = b.script(
        "const f = document.getElementById('name-filter'); f.value = 'nova'; \
         f.dispatchEvent(new Event('input')); \
         return [...document.querySelectorAll('#graph .node:not(.dim)')].map(n => n.dataset.name).sort()",
    );
    assert_eq!(
        visible,
        json!(["nova-api", "nova-base", "nova-compute", "nova-conductor"])
    );

    // A pasted link opens its image's panel.
    b.open(&url(&page_path, "#image=nova-api"));
    assert_eq!(
        b.script("return document.getElementById('panel').dataset.name"),
        "nova-api"
    );
    let panel = b.script("return document.getElementById('panel').textContent");
    assert!(
        panel.as_str().unwrap().contains("nova-base failed"),
        "{panel}"
    );
    // A built image's panel: its registry digest and content tag (no
    // release tag moved: the set failed), its parents by digest, its tests.
    b.open(&url(&page_path, "#image=keystone"));
    let panel = b.script("return document.getElementById('panel').textContent");
    let panel = panel.as_str().unwrap();
    assert!(
        panel.contains("digestsha256:") && panel.contains("content tagfp-"),
        "{panel}"
    );
    assert!(panel.contains("keystone-base sha256:"), "{panel}");
    assert!(!panel.contains("tags moved"), "{panel}");
    assert!(
        panel.contains("passrelease file"),
        "its image tests: {panel}"
    );
    let severe: Vec<_> = b
        .console()
        .into_iter()
        .filter(|(l, _)| l == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
    std::fs::copy(&page_path, artifacts().join("failed-run.html")).unwrap();
}

#[test]
fn a_page_from_files_that_are_not_all_there_says_what_is_missing() {
    if !browser::available("report") {
        return;
    }
    let t = TestTree::new();
    t.write(
        "old.json",
        r#"{"schema": 7, "images": [{"name": "a", "state": "done"}, {"name": "b", "status": "failed", "needs": ["a"]}]}"#,
    );
    t.write("broken.json", "{ not json");
    t.run(&[
        "report",
        "old.json",
        "broken.json",
        "--logs",
        "no-such-dir",
        "-o",
        "page.html",
    ])
    .expect(0);
    let b = Browser::start();
    b.open(&url(&t.path().join("page.html"), "#image=b"));
    let missing = b.script("return document.getElementById('missing').textContent");
    let missing = missing.as_str().unwrap();
    assert!(
        missing.contains("broken.json") && missing.contains("not JSON"),
        "{missing}"
    );
    assert!(missing.contains("no-such-dir` is not there"), "{missing}");
    let states =
        b.script("return [...document.querySelectorAll('#graph .node')].map(n => n.dataset.state)");
    assert_eq!(states, json!(["unknown", "failed"]));
    assert_eq!(
        b.script("return document.getElementById('panel').dataset.name"),
        "b"
    );
    let severe: Vec<_> = b
        .console()
        .into_iter()
        .filter(|(l, _)| l == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

#[test]
fn a_report_path_that_cannot_be_written_is_exit_2_before_building() {
    let t = crate::common::small_tree();
    for bad in ["run.txt", "/proc/strata-none/run.html"] {
        let out = t
            .command(&["build", "--engine", "tcp://127.0.0.1:1", "--report", bad])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(t.path().join("taken"), "a file").unwrap();
    let out = t
        .command(&[
            "build",
            "--engine",
            "tcp://127.0.0.1:1",
            "--report",
            "taken/run.html",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("taken"), "{stderr}");
}

#[test]
fn a_200_image_page_stays_small_and_says_where_each_whole_log_is() {
    let t = TestTree::new();
    let mut summary = Vec::new();
    std::fs::create_dir_all(t.path().join("logs")).unwrap();
    let line = "step output of a verbose build, long enough to count\n".repeat(4000);
    for i in 0..200 {
        let needs: Vec<String> = (i > 0)
            .then(|| format!("img-{}", (i - 1) / 3))
            .into_iter()
            .collect();
        summary.push(
            json!({"name": format!("img-{i}"), "status": "built", "duration_s": 1.0,
            "started_at": "2026-12-07T10:00:00Z", "finished_at": "2026-12-07T10:00:01Z",
            "needs": needs, "fingerprint": format!("{i:064}")}),
        );
        std::fs::write(t.path().join(format!("logs/img-{i}.log")), &line).unwrap();
    }
    t.write(
        "s.json",
        &json!({"images": summary, "duration_s": 60.0}).to_string(),
    );
    t.run(&["report", "s.json", "--logs", "logs", "-o", "big.html"])
        .expect(0);
    let page = std::fs::read_to_string(t.path().join("big.html")).unwrap();
    assert!(page.len() < 5 << 20, "{} bytes", page.len());
    assert!(page.contains("\"truncated\":true"), "the logs were cut");
    assert!(
        page.contains("img-199.log"),
        "it says where the whole log is"
    );
}

/// On the debootstrapped Debian base: an image published once, then again
/// with `apt-get install less`: its panel's package diff against the
/// previous publication is exactly `less` added.
#[test]
fn the_panel_shows_the_packages_added_since_the_previous_publication() {
    const DEBIAN: &str = "strata-ci/debian:bookworm";
    if !engine::available("report sbom diff") || !browser::available("report sbom diff") {
        return;
    }
    if engine::inspect(DEBIAN).is_none() {
        let msg = format!("the sbom diff test needs `{DEBIAN}` (run through ci/test.sh)");
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
        eprintln!("SKIPPED {msg}");
        return;
    }
    let Some(r) = crate::push::registry() else {
        return;
    };
    let ns = Namespace::new("report-sbom");
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nvars: {{base_image: '{DEBIAN}'}}\n",
            r.host, ns.0
        ),
    );
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base > /base\n",
    );
    let tools = "FROM {{ image_ref('base') }}\nRUN echo tools > /tools\n";
    t.write("images/tools/Dockerfile.j2", tools);
    let config = crate::push::docker_config(&r.host, &r.user, &r.password);
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "--push", "--no-tests", "--attest-dir", "sboms"];
        args.extend_from_slice(extra);
        let out = t
            .command(&args)
            .env("DOCKER_CONFIG", config.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    build(&[]);
    t.write(
        "images/tools/Dockerfile.j2",
        &format!("{tools}RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends less >/dev/null && rm -rf /var/lib/apt/lists/*\n"),
    );
    build(&["--summary", "s.json", "--report", "run.html"]);
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    let tools = &summary["images"][1];
    assert_eq!(tools["name"], "tools");
    assert!(
        tools["previous_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{tools}"
    );

    let b = Browser::start();
    b.open(&url(&t.path().join("run.html"), "#image=tools"));
    let diff = b.script(
        "const d = document.querySelector('#panel .sbom-diff td'); return d && d.textContent",
    );
    let diff = diff
        .as_str()
        .unwrap_or_else(|| panic!("no package diff in the panel"));
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(lines.len(), 1, "{diff}");
    assert!(lines[0].starts_with("+ less "), "{diff}");
    std::fs::write(artifacts().join("sbom-diff.png"), b.screenshot()).unwrap();
    // The base did not change: no diff is shown for it.
    b.open(&url(&t.path().join("run.html"), "#image=base"));
    assert_eq!(
        b.script("return document.querySelectorAll('#panel .sbom-diff').length"),
        0
    );
    std::fs::write(artifacts().join("sbom-diff.png"), b.screenshot()).unwrap();
}

/// `publish --report`: the page names every reference the publication
/// moved, with its digest.
#[test]
fn the_page_of_a_publication_names_the_references_it_moved() {
    if !engine::available("publish report") || !browser::available("publish report") {
        return;
    }
    let Some(r) = crate::push::registry() else {
        return;
    };
    let ns = Namespace::new("report-publish");
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{}'}}\n", engine::BASE_IMAGE),
    );
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base > /base\n",
    );
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo app > /app\n",
    );
    let config = crate::push::docker_config(&r.host, &r.user, &r.password);
    let sets = [
        "--set".to_string(),
        ns.set(),
        "--set".into(),
        format!("registry={}", r.host),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let run = |args: &[&str]| {
        let all: Vec<&str> = sets.iter().copied().chain(args.iter().copied()).collect();
        let out = t
            .command(&all)
            .env("DOCKER_CONFIG", config.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["build", "--push", "--no-publish", "--no-tests"]);
    run(&["publish", "--report", "pub.html"]);
    let b = Browser::start();
    b.open(&url(&t.path().join("pub.html"), ""));
    let published = b.script("return document.getElementById('published').textContent");
    let published = published.as_str().unwrap();
    let images = b.script(
        "return document.querySelectorAll('#graph .node[data-state=\"up-to-date\"]').length",
    );
    assert!(images.as_u64().unwrap() >= 1, "{published}");
    assert!(
        published.contains(&format!("{}/{}/", r.host, ns.0)),
        "{published}"
    );
    assert!(
        published.contains(&format!("Published: {images} references")),
        "{published}"
    );
}
