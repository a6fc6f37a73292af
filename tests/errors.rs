//! Every kind of bad input: one clear message naming the file and line,
//! exit 2, nothing else happens (stdout stays empty).

use crate::common::{small_tree, TestTree};

/// Run `list` on `t`, expect exit 2 and nothing on stdout, return stderr.
fn fails(t: &TestTree) -> String {
    let run = t.run(&["list"]).expect(2);
    assert_eq!(run.stdout, "", "nothing but the error is printed");
    run.stderr
}

macro_rules! error_case {
    ($name:ident, |$t:ident| $setup:block) => {
        #[test]
        fn $name() {
            let $t = small_tree();
            $setup
            insta::assert_snapshot!(fails(&$t));
        }
    };
}

error_case!(yaml_syntax_error, |t| {
    t.write(
        "strata.yaml",
        "namespace: strata\nvars: {base_image: [unclosed\n",
    );
});

error_case!(unknown_config_key, |t| {
    t.write("strata.yaml", "namespace: strata\nbuild:\n  jobz: 4\n");
});

error_case!(unknown_key_in_image_yaml, |t| {
    t.write("images/app/image.yaml", "args: {A: '1'}\nenable: false\n");
});

error_case!(template_syntax_error, |t| {
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\n{% if %}\nRUN true\n",
    );
});

error_case!(undefined_variable, |t| {
    t.write(
        "templates/common.j2",
        "RUN echo {{ image_name }}\nRUN install {{ packages }}\n",
    );
});

error_case!(missing_include, |t| {
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\n{% include 'nowhere.j2' %}\n",
    );
});

error_case!(image_ref_of_unknown_image, |t| {
    t.write("images/app/Dockerfile.j2", "FROM {{ image_ref('bsae') }}\n");
});

error_case!(include_outside_the_loader, |t| {
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\n{% include '../../etc/passwd' %}\n",
    );
});

error_case!(image_yaml_without_dockerfile, |t| {
    t.write("images/orphan/image.yaml", "args: {A: '1'}\n");
});

error_case!(duplicate_image_names, |t| {
    t.write("images/group/app/Dockerfile", "FROM scratch\n");
});

error_case!(cycle_is_printed_as_a_path, |t| {
    t.write("images/base/Dockerfile.j2", "FROM {{ image_ref('app') }}\n");
});

error_case!(unparsable_from, |t| {
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }} AS\nRUN true\n",
    );
});

error_case!(from_with_invalid_reference, |t| {
    t.write(
        "images/base/Dockerfile.j2",
        "ARG TAG\nFROM debian:${TAG}:x\n",
    );
});

error_case!(typo_in_tree_namespace, |t| {
    t.write("images/app/Dockerfile.j2", "FROM strata/bsae:latest\n");
});

error_case!(empty_tree, |t| {
    t.remove("images/app").remove("images/base");
});

error_case!(dockerfile_without_from, |t| {
    t.write("images/app/Dockerfile", "RUN true\n")
        .remove("images/app/Dockerfile.j2");
});

#[test]
fn missing_config_names_the_folder() {
    let t = TestTree::new();
    let err = fails(&t);
    assert!(err.contains("no `strata.yaml` in `[TREE]`"), "{err}");
}

#[test]
fn selector_matching_nothing_suggests_close_names() {
    let t = small_tree();
    let run = t.run(&["list", "ap"]).expect(2);
    insta::assert_snapshot!(run.stderr);
    let run = t.run(&["list", "re:zz.*"]).expect(2);
    assert!(
        run.stderr.contains("selector `re:zz.*` matches no image"),
        "{}",
        run.stderr
    );
    let run = t.run(&["list", "@nope"]).expect(2);
    assert!(
        run.stderr.contains("no profile named `nope`"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_set_is_exit_2() {
    let t = small_tree();
    let run = t.run(&["--set", "build.jobs=many", "list"]).expect(2);
    assert!(
        run.stderr.contains("invalid `--set build.jobs=many`"),
        "{}",
        run.stderr
    );
    let run = t.run(&["--set", "nope=1", "list"]).expect(2);
    assert!(run.stderr.contains("unknown key `nope`"), "{}", run.stderr);
}

#[test]
fn render_out_is_not_written_on_error() {
    let t = small_tree();
    t.write("templates/common.j2", "{{ nope }}");
    t.run(&["render", "--out", "out"]).expect(2);
    assert!(
        !t.path().join("out").exists(),
        "nothing is written when input is bad"
    );
}

error_case!(every_broken_template_is_reported, |t| {
    t.write("images/one/Dockerfile.j2", "FROM scratch\n{% if %}\n")
        .write(
            "images/two/Dockerfile.j2",
            "FROM scratch\nRUN {{ nothing }}\n",
        )
        .write(
            "images/three/Dockerfile.j2",
            "FROM scratch\nRUN {{ 'x'.nomethod() }}\n",
        );
});

error_case!(excluded_parent_of_a_kept_image, |t| {
    t.write(
        "strata.yaml",
        "namespace: strata\nvars: {base_image: 'debian:bookworm-slim'}\nexclude: [ba*]\n",
    );
});

error_case!(unknown_undefined_behaviour, |t| {
    t.write(
        "strata.yaml",
        "namespace: strata\nrender: {undefined: loose}\n",
    );
});

error_case!(environment_not_asked_for, |t| {
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo {{ env.HOME }}\n",
    );
});

/// More than 20 broken images: the first 20 are shown, and the count.
#[test]
fn many_render_errors_are_capped() {
    let t = small_tree();
    for i in 0..25 {
        t.write(
            &format!("images/bad{i:02}/Dockerfile.j2"),
            "FROM scratch\nRUN {{ nope }}\n",
        );
    }
    let err = fails(&t);
    assert!(err.contains("25 of 27 images cannot be rendered"), "{err}");
    assert!(err.contains("5 more not"), "{err}");
    assert_eq!(err.matches("cannot render image `bad").count(), 20, "{err}");
}

/// The environment reaches templates only as far as `render.env` names it.
#[test]
fn env_is_what_render_env_names() {
    let t = small_tree();
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo [{{ env.STRATA_T_PROXY }}] [{{ env.STRATA_T_OTHER | default('unset') }}]\n",
    );
    let render = |config: &str| {
        t.write("strata.yaml", config);
        let out = t
            .command(&["render", "base"])
            .env("STRATA_T_PROXY", "http://proxy:3128")
            .env("STRATA_T_OTHER", "other")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let base = "namespace: strata\nvars: {base_image: 'debian:bookworm-slim'}\n";
    let named = render(&format!("{base}render: {{env: [STRATA_T_PROXY]}}\n"));
    assert!(named.contains("[http://proxy:3128] [unset]"), "{named}");
    let all = render(&format!("{base}render: {{env: true}}\n"));
    assert!(all.contains("[http://proxy:3128] [other]"), "{all}");
}

/// `exclude:` and `--exclude` leave images out; the rest renders.
#[test]
fn excluded_images_are_left_out() {
    let t = small_tree();
    t.write("images/broken/Dockerfile.j2", "FROM scratch\n{% if %}\n");
    let run = t.run(&["--exclude", "brok*", "list", "--json"]).expect(0);
    let names: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&run.stdout)
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["base", "app"], "in build order");
    t.write(
        "strata.yaml",
        "namespace: strata\nvars: {base_image: 'debian:bookworm-slim'}\nexclude: [broken, app]\n",
    );
    let run = t.run(&["list", "--json"]).expect(0);
    assert!(
        run.stdout.contains("\"base\"") && !run.stdout.contains("\"app\""),
        "{}",
        run.stdout
    );
    let run = t.run(&["--exclude", "[", "list"]).expect(2);
    assert!(
        run.stderr.contains("invalid `exclude` glob"),
        "{}",
        run.stderr
    );
}
