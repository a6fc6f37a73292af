//! Which platforms an engine builds emulated, when its configuration does
//! not list them: `docker build --platform linux/arm64` builds on an amd64
//! host whose kernel hands arm64 binaries to qemu, and so does strata.
//! For an engine on this machine (a Unix socket) the kernel's binfmt_misc
//! handlers say it: a `qemu-<arch>` entry that is `enabled` and has the
//! `F` flag (the interpreter is opened when registered, so it works inside
//! a container's root, as Debian's qemu-user-static registers it).
//! For an engine elsewhere, BuildKit's worker list says it
//! (`buildkit::workers`), as `docker buildx inspect` shows it.
//! Knows nothing of builds or the plan.

use std::path::Path;

/// Where the kernel lists its binfmt handlers.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// The command that registers the emulators, as Debian packages them.
pub const INSTALL: &str = "apt-get install qemu-user-static binfmt-support";

/// The qemu handler that runs `platform`'s binaries (`linux/arm64` →
/// `qemu-aarch64`); None for a platform qemu-user does not emulate.
pub fn handler(platform: &str) -> Option<&'static str> {
    let mut parts = platform.split('/');
    if parts.next()? != "linux" {
        return None;
    }
    Some(match (parts.next()?, parts.next()) {
        ("arm64", _) => "qemu-aarch64",
        ("arm", _) => "qemu-arm",
        ("amd64", _) => "qemu-x86_64",
        ("386", _) => "qemu-i386",
        ("ppc64le", _) => "qemu-ppc64le",
        ("s390x", _) => "qemu-s390x",
        ("riscv64", _) => "qemu-riscv64",
        ("mips64le", _) => "qemu-mips64el",
        _ => return None,
    })
}

/// The platforms whose binaries the kernel in `dir` runs through an
/// enabled qemu handler with the F flag, in a fixed order; `native` (the
/// engine's own) is left out. Each Linux platform an arch stands for
/// (`linux/arm/v7` and `linux/arm/v6` for `qemu-arm`).
pub fn from_binfmt(dir: &Path, native: Option<&str>) -> Vec<String> {
    const PLATFORMS: [&str; 9] = [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
        "linux/mips64le",
    ];
    PLATFORMS
        .iter()
        .filter(|p| Some(**p) != native)
        .filter(|p| handler(p).is_some_and(|h| usable(&dir.join(h))))
        .map(|p| p.to_string())
        .collect()
}

/// Of the platforms a worker list names, those that need an emulator on
/// an engine of platform `native`: not its own, and not one its CPU runs
/// as it is (linux/386 on amd64, 32-bit arm on arm64).
pub fn emulated_of(listed: Vec<String>, native: Option<&str>) -> Vec<String> {
    let native = native.unwrap_or_default();
    let runs_as_is = |p: &str| {
        p == native
            || p.starts_with(&format!("{native}/"))
            || (native == "linux/amd64" && p == "linux/386")
            || (native.starts_with("linux/arm64") && p.starts_with("linux/arm/"))
    };
    listed.into_iter().filter(|p| !runs_as_is(p)).collect()
}

/// A handler file that says `enabled` and whose `flags:` hold `F`.
fn usable(file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    let enabled = text.lines().next().map(str::trim) == Some("enabled");
    let fixed = text
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .is_some_and(|f| f.contains('F'));
    enabled && fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(handlers: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in handlers {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn an_enabled_handler_with_the_f_flag_emulates_its_platform() {
        let ok = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\n";
        let off = "disabled\ninterpreter /usr/bin/qemu-arm-static\nflags: F\n";
        let no_f = "enabled\ninterpreter /usr/bin/qemu-s390x-static\nflags: OC\n";
        let dir = dir_with(&[
            ("qemu-aarch64", ok),
            ("qemu-arm", off),
            ("qemu-s390x", no_f),
        ]);
        assert_eq!(
            from_binfmt(dir.path(), Some("linux/amd64")),
            ["linux/arm64"]
        );
    }

    #[test]
    fn the_native_platform_is_not_emulated() {
        let ok = "enabled\ninterpreter /usr/bin/qemu-x86_64-static\nflags: F\n";
        let dir = dir_with(&[("qemu-x86_64", ok)]);
        assert!(from_binfmt(dir.path(), Some("linux/amd64")).is_empty());
        assert_eq!(
            from_binfmt(dir.path(), Some("linux/arm64")),
            ["linux/amd64"]
        );
    }

    #[test]
    fn a_worker_list_is_emulated_but_for_what_the_cpu_runs_as_it_is() {
        let listed = ["linux/amd64", "linux/386", "linux/arm64", "linux/arm/v7"];
        let listed: Vec<String> = listed.iter().map(|p| p.to_string()).collect();
        let on_amd = emulated_of(listed.clone(), Some("linux/amd64"));
        assert_eq!(on_amd, ["linux/arm64", "linux/arm/v7"]);
        assert_eq!(
            emulated_of(listed, Some("linux/arm64")),
            ["linux/amd64", "linux/386"]
        );
    }

    #[test]
    fn platforms_map_to_qemu_handlers() {
        assert_eq!(handler("linux/arm64/v8"), Some("qemu-aarch64"));
        assert_eq!(handler("linux/arm/v7"), Some("qemu-arm"));
        assert_eq!(handler("windows/amd64"), None);
        assert_eq!(handler("linux/sparc"), None);
    }
}
