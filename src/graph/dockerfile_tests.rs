//! The Dockerfile parser's cases, as tables.

use super::*;

fn refs(text: &str) -> Vec<(String, usize, RefKind)> {
    parse("Dockerfile", text, &BTreeMap::new())
        .unwrap()
        .refs
        .into_iter()
        .map(|r| (r.reference, r.line, r.kind))
        .collect()
}

use RefKind::*;

/// Docker's rule for parser directives: only at the very top, and
/// the first line that is not a known directive ends them.
#[test]
fn escape_directive_table() {
    let cases: &[(&str, char)] = &[
        ("# escape=`\nFROM a\n", '`'),
        ("#escape = `\nFROM a\n", '`'),
        ("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n", '`'),
        ("# ESCAPE=`\nFROM a\n", '`'),
        // A plain comment first: the directive is a comment too.
        ("# a comment\n# escape=`\nFROM a\n", '\\'),
        // An unknown directive, an empty line, an instruction first.
        ("# unknown=x\n# escape=`\nFROM a\n", '\\'),
        ("\n# escape=`\nFROM a\n", '\\'),
        ("FROM a\n# escape=`\n", '\\'),
        ("FROM a\n", '\\'),
    ];
    for (text, want) in cases {
        assert_eq!(escape_char(text), *want, "{text:?}");
        assert_eq!(
            parse("Dockerfile", text, &BTreeMap::new()).unwrap().escape,
            *want
        );
    }
}

#[test]
fn finds_references_table() {
    type Case<'a> = (&'a str, &'a [(&'a str, usize, RefKind)]);
    let cases: &[Case] = &[
        ("FROM debian:bookworm\n", &[("debian:bookworm", 1, From)]),
        ("from --platform=linux/amd64 a/b:1 as build\nFROM build\n", &[("a/b:1", 1, From)]),
        ("ARG BASE=x/base\nARG TAG\nFROM ${BASE}:${TAG:-latest}\n", &[("x/base:latest", 3, From)]),
        ("FROM a AS one\nFROM b\nCOPY --from=one /x /y\nCOPY --from=0 /x /y\nCOPY --from=c/d:2 /x /y\n", &[("a", 1, From), ("b", 2, From), ("c/d:2", 5, CopyFrom)]),
        ("FROM a\nRUN --mount=type=bind,from=tools,target=/t \\\n    ls /t\n", &[("a", 1, From), ("tools", 2, MountFrom)]),
        ("# comment\nFROM \\\n  # inside\n  a:1\n", &[("a:1", 2, From)]),
        ("FROM a\nRUN <<EOF\nFROM not/this\nEOF\nFROM b\n", &[("a", 1, From), ("b", 5, From)]),
        ("FROM a\nCOPY <<-EOT /f\n\tFROM no\n\tEOT\nFROM b\n", &[("a", 1, From), ("b", 5, From)]),
        ("# escape=`\nFROM a `\n  AS x\nFROM x\n", &[("a", 2, From)]),
        ("FROM scratch\nCOPY --from=docker.io/library/busybox:1 / /\n", &[("docker.io/library/busybox:1", 2, CopyFrom)]),
        ("FROM a AS Build\nFROM BUILD\n", &[("a", 1, From)]),
        // A `<<` that Docker does not read as a heredoc swallows nothing.
        ("FROM a\nRUN echo \"a<<END\" > /x\nCOPY --from=k/b /x /y\n", &[("a", 1, From), ("k/b", 3, CopyFrom)]),
        ("FROM a\nRUN echo 'x <<EOF' > /x\nCOPY --from=k/b /x /y\n", &[("a", 1, From), ("k/b", 3, CopyFrom)]),
        ("FROM a\nRUN echo a<<END\nCOPY --from=k/b /x /y\n", &[("a", 1, From), ("k/b", 3, CopyFrom)]),
        ("FROM a\nRUN echo $((1<<2)) > /x\nCOPY --from=k/b /x /y\n", &[("a", 1, From), ("k/b", 3, CopyFrom)]),
        ("FROM a\nRUN cat <<\"EOF\" > /x\nFROM no\nEOF\nFROM b\n", &[("a", 1, From), ("b", 5, From)]),
        ("FROM a\nRUN cat <<'EOF' > /x\nFROM no\nEOF\nFROM b\n", &[("a", 1, From), ("b", 5, From)]),
        ("FROM a\nRUN <<ONE cat && <<TWO cat\nFROM no\nONE\nFROM no2\nTWO\nFROM b\n", &[("a", 1, From), ("b", 7, From)]),
        ("FROM a\nCOPY <<EOF /dest\nFROM no\nEOF\nFROM b\n", &[("a", 1, From), ("b", 5, From)]),
        ("FROM a\nENV X=\"<<EOF\"\nFROM b\n", &[("a", 1, From), ("b", 3, From)]),
        ("FROM a\nLABEL note=\"<<EOF\"\nFROM b\n", &[("a", 1, From), ("b", 3, From)]),
        ("FROM a\nRUN echo \"<<EOF\"\nFROM b\n", &[("a", 1, From), ("b", 3, From)]),
        ("FROM a\nRUN echo <<\"EOF'\nFROM b\n", &[("a", 1, From), ("b", 3, From)]),
    ];
    for (text, want) in cases {
        let want: Vec<_> = want
            .iter()
            .map(|(r, l, k)| (r.to_string(), *l, *k))
            .collect();
        assert_eq!(refs(text), want, "for {text:?}");
    }
}

#[test]
fn declared_args_are_collected_from_every_stage() {
    let p = parse("D", "ARG A=1\nFROM x\nARG B\nARG C=3 D\n", &BTreeMap::new()).unwrap();
    assert_eq!(
        p.args.iter().map(String::as_str).collect::<Vec<_>>(),
        ["A", "B", "C", "D"]
    );
}

#[test]
fn build_args_override_global_arg_defaults() {
    let args = BTreeMap::from([("TAG".to_string(), "9".to_string())]);
    let p = parse("D", "ARG TAG=1\nFROM a:$TAG\n", &args).unwrap();
    assert_eq!(p.refs[0].reference, "a:9");
}

#[test]
fn bad_from_is_an_error_with_line() {
    for (text, line) in [
        ("FROM\n", 1),
        ("ARG X\nFROM a b c d\n", 2),
        ("FROM Not:Valid:Ref\n", 1),
        ("FROM ${EMPTY}\n", 1),
    ] {
        let e = parse("D", text, &BTreeMap::new()).unwrap_err();
        let s = e.snippet.expect("located");
        assert_eq!(
            text[..s.span.0].matches('\n').count() + 1,
            line,
            "{text:?}: {}",
            e.message
        );
    }
    assert!(parse("D", "RUN true\n", &BTreeMap::new()).is_err());
    assert!(parse("D", "# only a comment\n", &BTreeMap::new()).is_err());
}

#[test]
fn final_base_follows_stages() {
    let p = parse(
        "D",
        "FROM a AS one\nFROM one AS two\nFROM b\nFROM two\n",
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(p.final_base(), Some("a"));
    let p = parse("D", "FROM scratch\n", &BTreeMap::new()).unwrap();
    assert_eq!(p.final_base(), None);
}

#[test]
fn normalize_familiar_forms() {
    assert_eq!(normalize("docker.io/library/debian"), "debian:latest");
    assert_eq!(normalize("debian:12"), "debian:12");
    assert_eq!(normalize("docker.io/strata/base:1"), "strata/base:1");
    assert_eq!(normalize("localhost:5000/a/b"), "localhost:5000/a/b:latest");
    assert_eq!(normalize("a@sha256:00"), "a@sha256:00");
}

#[test]
fn expansion_forms() {
    let vars = HashMap::from([
        ("A".to_string(), "1".to_string()),
        ("E".to_string(), String::new()),
    ]);
    assert_eq!(
        expand("$A-${A}-${B:-x}-${A:+y}-${E:-z}-${E-w}-\\$A", &vars),
        "1-1-x-y-z--$A"
    );
}
