//! With qemu's arm64 handler switched off, a two-platform set with no
//! `engines:` is exit 2 before anything builds, naming the platform, the
//! engine, the failed probe build and the command that registers the
//! emulator; switched on again, the same tree plans both platforms. Where
//! strata cannot read the handlers (its own mount of binfmt_misc is empty,
//! as in a container given the host's engine socket), the probe build
//! finds the emulation and both platforms build. A test binary of its own:
//! switching a binfmt handler off is machine-wide, the integration tests
//! build arm64 in parallel threads, and cargo runs test binaries one after
//! another.

#[path = "common/mod.rs"]
mod common;

const HANDLER: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
const ARM64_BASE: &str = "strata-ci/busybox:arm64";

/// The handler, switched off while this lives and on again when it is
/// dropped, also when the test fails.
struct Off;

impl Off {
    fn new() -> std::io::Result<Off> {
        std::fs::write(HANDLER, "0").map(|()| Off)
    }
}

impl Drop for Off {
    fn drop(&mut self) {
        let _ = std::fs::write(HANDLER, "1");
    }
}

fn enabled() -> bool {
    std::fs::read_to_string(HANDLER).is_ok_and(|t| t.starts_with("enabled"))
}

/// The tests take turns: one switches the machine's handler off.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether the handler is on; when it is not, under CI that fails the
/// test, on a laptop it is skipped with a message.
fn ready() -> bool {
    if !common::engine::available("emulation") {
        return false;
    }
    if !enabled() {
        let msg = format!("the emulation test needs `{HANDLER}` enabled (run through ci/test.sh)");
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
        eprintln!("SKIPPED {msg}");
        return false;
    }
    true
}

/// A one-image set for amd64 and arm64 (each from its own busybox) in
/// namespace `ns`, with no `engines:`.
fn two_platform_tree(ns: &str) -> common::TestTree {
    let t = common::TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "namespace: {ns}\nplatforms: [linux/amd64, linux/arm64]\n\
             vars: {{base_image: '{}'}}\n\
             platform_vars: {{linux/arm64: {{base_image: '{ARM64_BASE}'}}}}\n",
            common::engine::BASE_IMAGE
        ),
    );
    t.write(
        "images/base/Dockerfile.j2",
        &format!(
            "FROM {{{{ base_image }}}}\nRUN echo {} > /n\n",
            common::nonce()
        ),
    );
    t
}

#[test]
fn without_the_arm64_handler_a_two_platform_set_is_exit_2_before_building() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    if !ready() {
        return;
    }
    let t = two_platform_tree(&format!("strata-test-emulation-{}", std::process::id()));
    let off = Off::new().expect("switch the handler off (as root)");
    assert!(!enabled(), "{HANDLER} is off");
    let out = t.command(&["build"]).output().unwrap();
    drop(off);
    assert!(enabled(), "{HANDLER} is on again");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in [
        "no engine of this run builds linux/arm64",
        "`qemu-aarch64`",
        "a one-step build for it failed on",
        "apt-get install qemu-user-static binfmt-support",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    let engines = t.run(&["plan", "--json"]).expect(0);
    assert!(engines.stdout.contains("base@arm64"), "{}", engines.stdout);
}

#[test]
fn where_strata_cannot_read_the_handlers_a_probe_build_finds_the_emulation() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    if !ready() {
        return;
    }
    let ns = format!("strata-test-probe-{}", std::process::id());
    let t = two_platform_tree(&ns);
    // strata's own view of binfmt_misc is an empty folder; the engine's
    // kernel still runs arm64 binaries through qemu.
    let strata = env!("CARGO_BIN_EXE_strata");
    let out = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs none /proc/sys/fs/binfmt_misc && exec {strata} build --progress plain"
        ))
        .current_dir(t.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("tells of no linux/arm64 emulation"),
        "{stderr}"
    );
    assert!(
        stderr.contains("linux/arm64 on "),
        "said emulated: {stderr}"
    );
    assert!(enabled(), "the machine's handler is untouched");
    let arch = common::sh(
        t.path(),
        &format!("docker image inspect -f '{{{{.Architecture}}}}' {ns}/base:latest-arm64"),
    );
    assert_eq!(arch, "arm64");
    // The probe (labelled so) left no image behind.
    let dangling = common::sh(t.path(), "docker images -aq -f label=org.strata.probe");
    assert!(dangling.is_empty(), "{dangling}");
    let _ = common::sh(
        t.path(),
        &format!(
            "docker rmi -f {ns}/base:latest-arm64 {ns}/base:latest-amd64 >/dev/null 2>&1 || true"
        ),
    );
}
