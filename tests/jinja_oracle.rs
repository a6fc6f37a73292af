//! Jinja2 behaviours strata offers under `render:` (whitespace settings,
//! lenient and strict undefined, Python methods, Python's printing of
//! values) against Python's Jinja2 itself rendering the same template with
//! the same settings: the same output, or an error in both, case by case.
//! Jinja2 comes from the virtual environment ci/setup.sh makes
//! (`STRATA_TEST_KOLLA_VENV`).

use crate::common::TestTree;
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

/// Renders each case with Jinja2: `{ok, text}` per case.
const JINJA2: &str = r#"
import json, sys, jinja2
out = []
for case in json.load(sys.stdin):
    env = jinja2.Environment(
        trim_blocks=case["trim_blocks"],
        lstrip_blocks=case["lstrip_blocks"],
        keep_trailing_newline=case["keep_trailing_newline"],
        undefined=jinja2.StrictUndefined if case["undefined"] == "strict" else jinja2.Undefined,
    )
    try:
        out.append({"ok": True, "text": env.from_string(case["template"]).render(case["vars"])})
    except Exception as e:
        out.append({"ok": False, "text": "%s: %s" % (type(e).__name__, e)})
json.dump(out, sys.stdout)
"#;

struct Case {
    name: &'static str,
    /// trim_blocks, lstrip_blocks, keep_trailing_newline
    ws: (bool, bool, bool),
    undefined: &'static str,
    template: &'static str,
    vars: serde_json::Value,
}

const JINJA2_WS: (bool, bool, bool) = (false, false, false);
const STRATA_WS: (bool, bool, bool) = (true, true, true);

/// Whitespace around block tags, Kolla's `\` continuations before a block
/// tag among them (the line `trim_blocks` used to join with the next).
const BLOCKS: &str = "FROM scratch\n{% if true %}\n    RUN a\n{% endif %}\n  {% for i in [1, 2] %}\nRUN {{ i }}\n  {% endfor %}\nEND\n";
const CONTINUATION: &str = "FROM scratch\nRUN usermod --append keystone \\\n    {%- if groups %}\n    && usermod --groups {{ groups }} keystone \\\n    {%- endif %}\n    && mkdir -p /var/lib/keystone\n";
const MARKERS: &str = "FROM scratch\nLABEL a=1\n  {%- if true %}\nA\n  {%+ if true %}B{% endif %}\n{% endif -%}\n   C\n{# a comment #}\nD\n";
const MACRO: &str = "FROM scratch\n{% macro install(packages, chain=False) -%}\n{% if packages is defined and packages|length > 0 -%}\n    {% if not chain -%} RUN {% endif -%}\n    apt-get install {{ packages | join(' ') }}\n{%- endif %}\n{%- endmacro %}\n{{ install(['a', 'b']) }}\n{{ install([]) }}\n{{ install() }}\nEND";

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let ws_settings = [
        (false, false, false),
        (true, false, false),
        (false, true, false),
        (false, false, true),
        (true, true, false),
        (true, true, true),
    ];
    for (i, template) in [BLOCKS, CONTINUATION, MARKERS, MACRO]
        .into_iter()
        .enumerate()
    {
        for ws in ws_settings {
            cases.push(Case {
                name: ["blocks", "continuation", "markers", "macro"][i],
                ws,
                undefined: "lenient",
                template,
                vars: json!({"groups": "kolla"}),
            });
        }
    }
    let lenient = [
        ("print undefined", "FROM scratch\n[{{ missing }}]"),
        ("if undefined", "FROM scratch\n{% if missing %}y{% else %}n{% endif %}"),
        ("length of undefined", "FROM scratch\n{{ missing | length }}"),
        ("loop over undefined", "FROM scratch\n[{% for x in missing %}{{ x }}{% endfor %}]"),
        ("is defined", "FROM scratch\n{% if missing is defined %}y{% else %}n{% endif %}"),
        ("default", "FROM scratch\n{{ missing | default('fallback') }}"),
        ("or", "FROM scratch\n{{ missing or 'alt' }}"),
        ("attribute of undefined", "FROM scratch\n{{ missing.attr }}"),
        ("missing key", "FROM scratch\n[{{ env.http_proxy }}]{% if env.http_proxy %}proxy{% endif %}"),
        ("macro argument not given", "FROM scratch\n{% macro m(a, b) %}[{{ a }}|{{ b }}]{% if b %}b{% endif %}{% endmacro %}{{ m(1) }}"),
        ("undefined in a join", "FROM scratch\n{{ ['a', missing, 'b'] | join(',') }}"),
        ("join with an attribute", "FROM scratch\n{{ users | join(', ', attribute='uid') }}"),
        ("join of values", "FROM scratch\n{{ [1, true, none, 'x'] | join('-') }}"),
    ];
    for (name, template) in lenient {
        for undefined in ["lenient", "strict"] {
            cases.push(Case {
                name,
                ws: JINJA2_WS,
                undefined,
                template,
                vars: json!({"env": {}, "users": [{"uid": 1}, {"uid": 2}]}),
            });
        }
    }
    let methods = [
        ("str.endswith", "{{ service.endswith('-api') }} {{ service.endswith('-base') }}"),
        ("str.startswith", "{{ service.startswith('nova') }}"),
        ("str.split", "{% for p in 'a,b,,c'.split(',') %}<{{ p }}>{% endfor %}"),
        ("str.split no argument", "{{ ' a  b '.split() | join('|') }}"),
        ("str.replace", "{{ service.replace('-', '_') }}"),
        ("str.upper lower title", "{{ 'aB c'.upper() }} {{ 'aB c'.lower() }} {{ 'aB c'.title() }}"),
        ("str.strip", "[{{ '  x  '.strip() }}][{{ '--x--'.lstrip('-') }}][{{ 'x\\n'.rstrip() }}]"),
        ("str.join", "{{ ', '.join(packages) }}"),
        ("str.find count", "{{ 'banana'.find('an') }} {{ 'banana'.rfind('an') }} {{ 'banana'.count('a') }}"),
        ("str.format", "{{ '{}.{}'.format(3, 11) }}"),
        ("dict.items", "{% for k, v in users.items() %}{{ k }}={{ v.uid }};{% endfor %}"),
        ("dict.keys values get", "{{ users.keys() | list | join(',') }} {{ users.get('nova').uid }} {{ users.get('nope', 'none') }}"),
        ("list.count", "{{ packages.count('vim') }}"),
        ("is digit", "{{ '2026'.isdigit() }} {{ 'x1'.isalnum() }}"),
    ];
    for (name, body) in methods {
        cases.push(Case {
            name,
            ws: STRATA_WS,
            undefined: "strict",
            template: Box::leak(format!("FROM scratch\n{body}\n").into_boxed_str()),
            vars: json!({
                "service": "nova-api",
                "packages": ["vim", "curl", "vim"],
                "users": {"keystone": {"uid": 42425}, "nova": {"uid": 42436}},
            }),
        });
    }
    let values = [
        (
            "print booleans and none",
            "{{ true }} {{ false }} {{ none }} {{ missing is defined }}",
        ),
        ("print a list", "{{ packages }}"),
        ("print a map", "{{ users.keystone }}"),
        (
            "print a nested list",
            "{{ [['a', 1], [true, none], \"it's\"] }}",
        ),
    ];
    for (name, body) in values {
        cases.push(Case {
            name,
            ws: STRATA_WS,
            undefined: "lenient",
            template: Box::leak(format!("FROM scratch\n{body}\n").into_boxed_str()),
            vars: json!({"packages": ["vim", "curl"], "users": {"keystone": {"uid": 42425}}}),
        });
    }
    cases
}

fn jinja2(cases: &[Case]) -> Option<Vec<(bool, String)>> {
    let venv = match std::env::var("STRATA_TEST_KOLLA_VENV")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(v) => v,
        None => {
            let msg = "the Jinja2 oracle needs STRATA_TEST_KOLLA_VENV (run through ci/test.sh)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED {msg}");
            return None;
        }
    };
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            json!({
                "template": c.template,
                "vars": c.vars,
                "trim_blocks": c.ws.0,
                "lstrip_blocks": c.ws.1,
                "keep_trailing_newline": c.ws.2,
                "undefined": c.undefined,
            })
        })
        .collect();
    let mut child = Command::new(format!("{venv}/bin/python"))
        .args(["-c", JINJA2])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the Jinja2 script failed");
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    Some(
        results
            .iter()
            .map(|r| {
                (
                    r["ok"].as_bool().unwrap(),
                    r["text"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    )
}

/// strata's rendering of one case: the text, or the error.
fn strata(case: &Case) -> (bool, String) {
    let t = TestTree::new();
    let config = json!({
        "render": {
            "trim_blocks": case.ws.0,
            "lstrip_blocks": case.ws.1,
            "keep_trailing_newline": case.ws.2,
            "undefined": case.undefined,
            "python_repr": true,
        },
        "vars": case.vars,
    });
    t.write("strata.yaml", &config.to_string());
    t.write("images/x/Dockerfile.j2", case.template);
    let out = t.path().join("out");
    let run = t.run(&["render", "--out", out.to_str().unwrap()]);
    match run.code {
        0 => (
            true,
            std::fs::read_to_string(out.join("x/Dockerfile")).unwrap(),
        ),
        2 => (false, run.stderr),
        code => panic!("{}: exit {code}: {}", case.name, run.stderr),
    }
}

#[test]
fn jinja2_behaviours_render_as_jinja2_renders_them() {
    let cases = cases();
    let Some(expected) = jinja2(&cases) else {
        return;
    };
    assert!(cases.len() >= 60, "{}", cases.len());
    let mut disagree = Vec::new();
    for (case, (ok, text)) in cases.iter().zip(&expected) {
        let (our_ok, ours) = strata(case);
        let agree = match (ok, our_ok) {
            (true, true) => ours == *text,
            (false, false) => true,
            _ => false,
        };
        if !agree {
            disagree.push(format!(
                "{} (trim {}, lstrip {}, keep newline {}, {}):\n  jinja2: {}{text:?}\n  strata: {}{ours:?}",
                case.name,
                case.ws.0,
                case.ws.1,
                case.ws.2,
                case.undefined,
                if *ok { "" } else { "error " },
                if our_ok { "" } else { "error " },
            ));
        }
    }
    // Both sides refuse what they should: some cases are errors in both.
    assert!(expected.iter().any(|(ok, _)| !ok));
    assert!(
        disagree.is_empty(),
        "{} of {} cases differ:\n{}",
        disagree.len(),
        cases.len(),
        disagree.join("\n")
    );
}
