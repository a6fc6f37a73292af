//! Two runs on one engine and namespace, and tags moved under a running
//! build: a child is never tagged on a parent it was not built on.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::{Running, TestTree};

/// `base` on busybox and `child` on `base`, whose build sleeps `secs`.
fn tree(ns: &Namespace, secs: u32) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "namespace: {}\nvars: {{base_image: '{BASE_IMAGE}'}}\n",
            ns.0
        ),
    );
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base > /base\n",
    );
    t.write(
        "images/child/Dockerfile.j2",
        &format!(
            "FROM {{{{ image_ref('base') }}}}\nRUN echo child-sleeping {} && sleep {secs}\n",
            crate::common::nonce()
        ),
    );
    t
}

#[test]
fn a_second_run_waits_for_the_first_or_fails_with_no_wait() {
    if !engine::available("lock") {
        return;
    }
    let ns = Namespace::new("lock");
    let t = tree(&ns, 6);
    let mut first = Running::spawn(t.command(&["build", "--progress", "plain"]));
    first.wait_for("child-sleeping", 120);

    let no_wait = t.run(&["build", "--no-wait"]).expect(3);
    assert!(
        no_wait.stderr.contains("another strata run (pid"),
        "{}",
        no_wait.stderr
    );
    assert!(no_wait.stderr.contains(&ns.0), "{}", no_wait.stderr);

    // A change to the base while the first run builds: the second run
    // waits, then rebuilds both on top of what the first left.
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base-2 > /base\n",
    );
    let mut second = Running::spawn(t.command(&["build", "--progress", "plain"]));
    second.wait_for("waiting for it to finish", 60);
    let (code, err) = first.finish();
    assert_eq!(code, 0, "{err}");
    let (code, err) = second.finish();
    assert_eq!(code, 0, "{err}");
    let base = engine::layers(&ns.reference("base"));
    let child = engine::layers(&ns.reference("child"));
    assert!(!base.is_empty());
    assert!(
        child.starts_with(&base),
        "child:latest is built on base:latest"
    );
    assert_eq!(
        engine::run_in(&ns.reference("child"), &["cat", "/base"]).trim(),
        "base-2"
    );
}

#[test]
fn a_parent_moved_during_the_build_is_never_tagged_under_its_child() {
    if !engine::available("moved parent") {
        return;
    }
    let ns = Namespace::new("moved-parent");
    let t = tree(&ns, 0);
    t.run(&["build"]).expect(0);
    let (child_before, _) = engine::inspect(&ns.reference("child")).unwrap();
    t.write(
        "images/child/Dockerfile.j2",
        &format!(
            "FROM {{{{ image_ref('base') }}}}\nRUN echo child-sleeping {} && sleep 5\n",
            crate::common::nonce()
        ),
    );
    let mut run = Running::spawn(t.command(&[
        "build",
        "--progress",
        "plain",
        "--summary",
        "s.json",
        "child",
    ]));
    run.wait_for("child-sleeping", 120);
    // Another program moves the parent's tag while the child builds.
    engine::tag(BASE_IMAGE, &ns.reference("base"));
    let (code, err) = run.finish();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no longer points at the image this was built on"),
        "{err}"
    );
    assert_eq!(
        engine::inspect(&ns.reference("child")).unwrap().0,
        child_before,
        "child:latest was not moved"
    );
}
