//! With qemu's arm64 handler switched off, a two-platform set with no
//! `engines:` is exit 2 before anything builds, naming the platform, the
//! engine and the command that registers the emulator; switched on again,
//! the same tree plans both platforms. A test binary of its own: switching
//! a binfmt handler off is machine-wide, the integration tests build arm64
//! in parallel threads, and cargo runs test binaries one after another.

#[path = "common/mod.rs"]
mod common;

const HANDLER: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

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

#[test]
fn without_the_arm64_handler_a_two_platform_set_is_exit_2_before_building() {
    if !common::engine::available("emulation") {
        return;
    }
    if !enabled() {
        let msg = format!("the emulation test needs `{HANDLER}` enabled (run through ci/test.sh)");
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
        eprintln!("SKIPPED {msg}");
        return;
    }
    let t = common::TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "namespace: strata-test-emulation-{}\nplatforms: [linux/amd64, linux/arm64]\n\
             vars: {{base_image: '{}'}}\n",
            std::process::id(),
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
        "apt-get install qemu-user-static binfmt-support",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    let engines = t.run(&["plan", "--json"]).expect(0);
    assert!(engines.stdout.contains("base@arm64"), "{}", engines.stdout);
}
