//! What `list`, `graph` and `render` show for the sample set and small trees.

use crate::common::{small_tree, TestTree};

fn stdout(t: &TestTree, args: &[&str]) -> String {
    t.run(args).expect(0).stdout
}

fn names(t: &TestTree, args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.insert(0, "list");
    all.push("--json");
    let v: serde_json::Value = serde_json::from_str(&stdout(t, &all)).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn graph_tree_of_the_sample_set() {
    insta::assert_snapshot!(stdout(&TestTree::sample(), &["graph"]));
}

#[test]
fn render_of_sample_images() {
    let t = TestTree::sample();
    insta::assert_snapshot!(
        "render_keystone_base",
        stdout(&t, &["render", "keystone-base"])
    );
    insta::assert_snapshot!("render_horizon", stdout(&t, &["render", "horizon"]));
    insta::assert_snapshot!("render_tools", stdout(&t, &["render", "tools"]));
}

#[test]
fn list_json_has_the_design_shape() {
    let t = TestTree::sample();
    let v: serde_json::Value = serde_json::from_str(&stdout(&t, &["list", "--json"])).unwrap();
    let tools = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "tools")
        .expect("tools listed");
    assert_eq!(tools["ref"], "strata/tools:latest");
    assert_eq!(tools["path"], "images/tools");
    assert_eq!(
        tools["parents"],
        serde_json::json!(["base", "keystone-base", "openstack-base"])
    );
    assert_eq!(tools["bases"], serde_json::json!([]));
    let base = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "base")
        .unwrap();
    assert_eq!(
        base["bases"],
        serde_json::json!(["strata-ci/busybox:latest"])
    );
    assert_eq!(v.as_array().unwrap().len(), 13);
}

#[test]
fn graph_formats_agree() {
    let t = TestTree::sample();
    let g: serde_json::Value =
        serde_json::from_str(&stdout(&t, &["graph", "--format", "json"])).unwrap();
    let edges: Vec<(String, String)> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(g["nodes"].as_array().unwrap().len(), 13);
    assert!(g["nodes"][0].get("ref").is_some());
    assert!(edges.contains(&("keystone-base".into(), "tools".into())));
    assert_eq!(edges.len(), 14);
    let dot = stdout(&t, &["graph", "--format", "dot"]);
    for (from, to) in &edges {
        assert!(dot.contains(&format!("\"{from}\" -> \"{to}\";")), "{dot}");
    }
    let mermaid = stdout(&t, &["graph", "--format", "mermaid"]);
    assert!(mermaid.starts_with("graph TD\n"));
    assert_eq!(mermaid.matches(" --> ").count(), edges.len());
}

#[test]
fn selectors() {
    let t = TestTree::sample();
    assert_eq!(
        names(&t, &["nova-base+"]),
        ["nova-base", "nova-api", "nova-compute", "nova-conductor"]
    );
    assert_eq!(
        names(&t, &["+keystone"]),
        ["base", "openstack-base", "keystone-base", "keystone"]
    );
    assert_eq!(
        names(&t, &["keystone-*"]),
        ["keystone-base", "keystone-fernet", "keystone-ssh"]
    );
    assert_eq!(
        names(&t, &["re:nova-(api|compute)"]),
        ["nova-api", "nova-compute"]
    );
    assert_eq!(names(&t, &["@core"]), ["base", "openstack-base"]);
    assert_eq!(names(&t, &["@api"]), ["horizon", "nova-api"]);
    assert_eq!(names(&t, &["cron", "base"]), ["base", "cron"]);
    assert_eq!(names(&t, &[]).len(), 13);
}

#[test]
fn render_out_writes_one_dockerfile_per_image() {
    let t = TestTree::sample();
    let run = t
        .run(&["render", "--out", "out", "keystone-base+"])
        .expect(0);
    assert_eq!(run.stdout, "");
    assert_eq!(
        t.read("out/keystone/Dockerfile"),
        stdout(&t, &["render", "keystone"])
    );
    assert!(t.path().join("out/keystone-ssh/Dockerfile").is_file());
    assert!(!t.path().join("out/nova-api").exists());
}

#[test]
fn overrides_replace_blocks_for_every_image() {
    let t = TestTree::sample();
    t.write(
        "over.j2",
        "{% extends parent_template %}\n{% block nova_api_footer %}\nRUN echo overridden {{ image_name }}\n{% endblock %}\n\
         {% block keystone_footer %}\nRUN echo keystone {{ release }}\n{% endblock %}\n",
    );
    t.write(
        "over2.j2",
        "{% block nova_api_footer %}\n{{ super() }}RUN echo second\n{% endblock %}\n",
    );
    let out = stdout(&t, &["--override", "over.j2", "render", "nova-api"]);
    assert!(
        out.contains("/etc/strata/command\nRUN echo overridden nova-api\nRUN echo \"nova-api\""),
        "{out}"
    );
    let out = stdout(&t, &["--override", "over.j2", "render", "keystone"]);
    assert!(out.contains("RUN echo keystone 2026.1\n"), "{out}");
    let out = stdout(
        &t,
        &[
            "--override",
            "over.j2",
            "--override",
            "over2.j2",
            "render",
            "nova-api",
        ],
    );
    assert!(
        out.contains("RUN echo overridden nova-api\nRUN echo second\n"),
        "{out}"
    );
    let untouched = stdout(&t, &["render", "cron"]);
    assert_eq!(
        stdout(&t, &["--override", "over.j2", "render", "cron"]),
        untouched
    );
}

#[test]
fn block_tags_leave_no_blank_lines_and_trailing_newline_is_kept() {
    let t = small_tree();
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\n{% for p in ['a', 'b'] %}\n    {% if p == 'a' %}\nRUN echo {{ p }}\n    {% endif %}\n{% endfor %}\n",
    );
    assert_eq!(
        stdout(&t, &["render", "app"]),
        "FROM strata/base:latest\nRUN echo a\n"
    );
}

#[test]
fn set_config_and_dir_options() {
    let t = small_tree();
    t.write("other.yaml", "namespace: acme\nregistry: 'reg.test:5000'\nprefix: os-\ntag: '1'\nvars: {base_image: 'debian:12'}\n");
    let v: serde_json::Value = serde_json::from_str(&stdout(
        &t,
        &[
            "--config",
            "other.yaml",
            "--set",
            "tag=2026.1",
            "list",
            "--json",
            "app",
        ],
    ))
    .unwrap();
    assert_eq!(v[0]["ref"], "reg.test:5000/acme/os-app:2026.1");
    assert_eq!(v[0]["parents"], serde_json::json!(["base"]));
    let out = stdout(
        &t,
        &[
            "--set",
            "vars.base_image=docker.io/library/alpine",
            "list",
            "--json",
            "base",
        ],
    );
    assert!(
        out.contains("\"alpine:latest\""),
        "bases are normalised: {out}"
    );
}

#[test]
fn parents_from_plain_from_lines_and_registry_prefix() {
    let t = small_tree();
    t.write("strata.yaml", "namespace: strata\nregistry: 'reg.test:5000'\nvars: {base_image: 'debian:bookworm-slim'}\n");
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ namespace }}/{{ prefix }}base:{{ tag }}\n",
    );
    t.write(
        "images/tool/Dockerfile",
        "FROM reg.test:5000/strata/base AS b\nFROM scratch\nCOPY --from=b / /\n",
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&t, &["list", "--json"])).unwrap();
    for e in v.as_array().unwrap() {
        if e["name"] != "base" {
            assert_eq!(e["parents"], serde_json::json!(["base"]), "{e}");
        }
    }
}

#[test]
fn image_yaml_disables_and_sets_vars() {
    let t = small_tree();
    t.write(
        "images/extra/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN echo {{ greeting }}\n",
    );
    t.write("images/extra/image.yaml", "vars: {greeting: hello}\n");
    assert!(stdout(&t, &["render", "extra"]).contains("RUN echo hello"));
    t.write("images/extra/image.yaml", "enabled: false\n");
    assert_eq!(names(&t, &[]), ["base", "app"]);
}

#[test]
fn completions_man_page_and_version() {
    let t = TestTree::new();
    let bash = t.run(&["completions", "bash"]).expect(0);
    assert!(
        bash.stdout.contains("complete -F _strata"),
        "{}",
        bash.stdout
    );
    assert!(bash.stdout.contains("--no-publish"));
    let zsh = t.run(&["completions", "zsh"]).expect(0);
    assert!(zsh.stdout.starts_with("#compdef strata"));
    let man = t.run(&["man"]).expect(0);
    assert!(
        man.stdout.contains(".TH strata"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains("publish"));
    let bad = t.run(&["completions", "tcsh"]).expect(2);
    assert!(bad.stderr.contains("possible values"), "{}", bad.stderr);
    let version = t.run(&["--version"]).expect(0);
    let head = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let expected = head.unwrap_or_else(|| "unknown".into());
    assert_eq!(
        version.stdout.trim(),
        format!("strata {} ({expected})", env!("CARGO_PKG_VERSION"))
    );
}

/// On a terminal (a pty from `script`): finished images line up in a column.
#[test]
fn the_terminal_display_lines_names_up() {
    let t = TestTree::new();
    t.write("strata.yaml", "namespace: pty\n")
        .write("images/a/Dockerfile", "FROM scratch\nCOPY Dockerfile /a\n")
        .write(
            "images/a-much-longer-name/Dockerfile",
            "FROM scratch\nCOPY Dockerfile /b\n",
        )
        .write("sim.yaml", "images: {a: {ms: 300}}\n");
    let typescript = t.path().join("typescript");
    let command = format!(
        "{} -C {} build --engine sim:sim.yaml --progress tty",
        env!("CARGO_BIN_EXE_strata"),
        t.path().display()
    );
    let status = std::process::Command::new("script")
        .args(["-qfec", &command])
        .arg(&typescript)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("script (util-linux) runs strata on a pty");
    assert!(status.success());
    let raw = std::fs::read_to_string(&typescript).unwrap();
    let escapes = regex::Regex::new(r"\x1b\[[0-9;]*[A-Za-z]").unwrap();
    let text = escapes.replace_all(&raw, "");
    let columns: Vec<usize> = text
        .split(['\r', '\n'])
        .filter(|l| l.starts_with("✓ "))
        .map(|l| l.find(" built in").expect("a built line"))
        .collect();
    assert_eq!(columns.len(), 2, "{text}");
    assert_eq!(columns[0], columns[1], "{text}");
    assert!(raw.contains("\x1b[1m"), "names are bold on a terminal");

    // NO_COLOR: the same display without colour or bold.
    let status = std::process::Command::new("script")
        .args(["-qfec", &format!("{command} --force")])
        .arg(&typescript)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let raw = std::fs::read_to_string(&typescript).unwrap();
    let styles = regex::Regex::new(r"\x1b\[[0-9;]*m").unwrap();
    assert!(
        !styles.is_match(&raw),
        "a colour or style code under NO_COLOR"
    );
}
