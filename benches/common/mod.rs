//! Generates Kolla-shaped trees for benchmarks: one root, ~30 children,
//! 4 levels, macros imported in every template, ~40 lines per template.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

/// Parent index of image `i` in a tree of `n`: 0 is the root, 1..=30 its
/// children, then a third level under those, the rest a fourth level.
pub fn parent_of(i: usize, n: usize) -> Option<usize> {
    let level2 = 30.min(n.saturating_sub(1));
    let level3 = ((n.saturating_sub(1 + level2)) * 2 / 5).max(1);
    match i {
        0 => None,
        i if i <= level2 => Some(0),
        i if i <= level2 + level3 => Some(1 + (i - level2 - 1) % level2),
        i => Some(level2 + 1 + (i - level2 - level3 - 1) % level3),
    }
}

pub fn name(i: usize) -> String {
    if i == 0 {
        "base".into()
    } else {
        format!("svc{i:05}")
    }
}

/// Write a tree of `n` images into `dir`; `run_step` is an extra RUN line per image.
pub fn write_tree(dir: &Path, n: usize, run_step: &dyn Fn(usize) -> String) {
    let w = |rel: String, text: String| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "strata.yaml".into(),
        "namespace: bench\nvars:\n  base_image: strata-ci/busybox:latest\n  release: '2026.1'\n  debug: false\n".into(),
    );
    w(
        "templates/macros.j2".into(),
        r#"{% macro add_user(name, uid) %}
RUN echo "{{ name }}:x:{{ uid }}:{{ uid }}::/var/lib/{{ name }}:/bin/sh" >> /etc/passwd \
    && mkdir -p /var/lib/{{ name }}
{% endmacro %}
{% macro configure(service, options) %}
RUN mkdir -p /etc/{{ service }} \
{% for key, value in options|items %}
    && echo "{{ key }} = {{ value }}" >> /etc/{{ service }}/{{ service }}.conf \
{% endfor %}
    && true
{% endmacro %}
"#
        .into(),
    );
    w(
        "templates/header.j2".into(),
        "LABEL name=\"{{ image_name }}\" release=\"{{ release }}\"\n".into(),
    );
    w(
        "templates/footer.j2".into(),
        "RUN echo \"{{ image_name }}\" >> /etc/strata-images\n".into(),
    );
    for i in 0..n {
        let from = match parent_of(i, n) {
            None => "{{ base_image }}".to_string(),
            Some(p) => format!("{{{{ image_ref(\"{}\") }}}}", name(p)),
        };
        let group = if i == 0 {
            String::new()
        } else {
            format!("group{}/", i % 17)
        };
        let me = name(i);
        let mut t = format!(
            "FROM {from}\n{{% include \"header.j2\" %}}\n{{% import \"macros.j2\" as m with context %}}\n\n\
             ARG SERVICE_VERSION=1.0\n{{{{ m.add_user(\"{me}\", {uid}) }}}}\n\
             {{{{ m.configure(\"{me}\", {{\"debug\": debug, \"release\": release, \"workers\": 4}}) }}}}\n",
            uid = 40000 + i
        );
        t.push_str(&run_step(i));
        t.push('\n');
        t.push_str(&format!("{{% block {}_header %}}{{% endblock %}}\n", me));
        for k in 0..8 {
            t.push_str(&format!(
                "{{% if debug %}}\nRUN echo debug-{k}\n{{% else %}}\nENV STEP_{k}=\"{{{{ image_name }}}}-{k}\"\n{{% endif %}}\n"
            ));
        }
        t.push_str(&format!(
            "{{% block {}_footer %}}{{% endblock %}}\n{{% include \"footer.j2\" %}}\n",
            me
        ));
        w(format!("images/{group}{me}/Dockerfile.j2"), t);
    }
}

/// Run `bin -C dir ARGS`, which must succeed; how long it took.
pub fn strata_run(bin: &str, dir: &Path, args: &[&str]) -> Duration {
    let (out, took) = time(|| {
        std::process::Command::new(bin)
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Median of the durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// A setting of the test machine: from the environment, else from
/// `target/ci/registry.env`, which ci/setup.sh writes.
pub fn setting(name: &str) -> String {
    if let Ok(v) = std::env::var(name) {
        return v;
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci/registry.env");
    std::fs::read_to_string(&file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("{name} is not set: run ci/setup.sh first"))
}

/// A copy of the repository's sample set (strata.yaml, images, templates,
/// image tests) in `dest`.
pub fn copy_sample(dest: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for top in ["strata.yaml", "images", "templates", "image-tests"] {
        for e in walkdir::WalkDir::new(repo.join(top)) {
            let e = e.unwrap();
            let to = dest.join(e.path().strip_prefix(repo).unwrap());
            if e.file_type().is_dir() {
                std::fs::create_dir_all(&to).unwrap();
            } else {
                std::fs::copy(e.path(), &to).unwrap();
            }
        }
    }
}

/// A Docker config folder holding basic credentials for `host`.
pub fn docker_config(host: &str, user: &str, password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let basic = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s' '{user}:{password}' | base64 -w0"))
        .output()
        .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        format!(
            "{{\"auths\": {{\"{host}\": {{\"auth\": \"{}\"}}}}}}",
            String::from_utf8_lossy(&basic.stdout)
        ),
    )
    .unwrap();
    dir
}
