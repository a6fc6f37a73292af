//! SBOMs (`build --attest-dir`) on a real Debian base: each image's package
//! list equals `dpkg-query` inside it; the SPDX document passes spdx-tools'
//! validator and the CycloneDX one cyclonedx-python-lib's, the outside
//! oracles; `affected --package` and `build --package` find the holders.

use crate::common::engine::{self, Namespace};
use crate::common::{sh, TestTree};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

const DEBIAN: &str = "strata-ci/debian:bookworm";

fn venv() -> Option<PathBuf> {
    let ready = engine::inspect(DEBIAN).is_some();
    match std::env::var("STRATA_TEST_SBOM_VENV")
        .ok()
        .filter(|_| ready)
    {
        Some(v) => Some(PathBuf::from(v)),
        None => {
            let msg = format!(
                "sbom tests need `{DEBIAN}` and STRATA_TEST_SBOM_VENV (run through ci/test.sh)"
            );
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
            eprintln!("SKIPPED {msg}");
            None
        }
    }
}

fn tree() -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("vars: {{base_image: '{DEBIAN}'}}\n"),
    );
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base > /base\n",
    );
    t.write(
        "images/tools/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN apt-get update -qq && apt-get install -y -qq --no-install-recommends less >/dev/null && rm -rf /var/lib/apt/lists/*\n",
    );
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('tools') }}\nRUN echo app > /app\n",
    );
    t
}

/// The outside oracle's verdict: `cmd ARGS FILE` succeeds, else the test
/// fails with what it printed.
fn oracle_accepts(cmd: &std::path::Path, args: &[&str], file: &std::path::Path) {
    let check = Command::new(cmd).args(args).arg(file).output().unwrap();
    assert!(
        check.status.success(),
        "{} {}: {}{}",
        cmd.display(),
        file.display(),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// `name version arch` of every installed package, as dpkg-query lists them.
fn dpkg_query(image: &str) -> BTreeSet<String> {
    let f = "${db:Status-Status} ${Package} ${Version} ${Architecture}\\n";
    engine::run_in(image, &["dpkg-query", "-W", "-f", f])
        .lines()
        .filter_map(|l| l.strip_prefix("installed "))
        .map(str::to_string)
        .collect()
}

/// `name version arch` of every package an SPDX document lists.
fn spdx_packages(doc: &serde_json::Value) -> BTreeSet<String> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["primaryPackagePurpose"] != "CONTAINER")
        .map(|p| {
            let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
            let arch = purl
                .split("arch=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap();
            format!(
                "{} {} {arch}",
                p["name"].as_str().unwrap(),
                p["versionInfo"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn sboms_list_what_dpkg_lists_and_pass_the_validators() {
    let Some(venv) = venv() else { return };
    let ns = Namespace::new("sbom");
    let t = tree();
    let set = ns.set();
    t.run(&[
        "--set",
        &set,
        "build",
        "--no-tests",
        "--attest-dir",
        "sboms",
        "--summary",
        "s.json",
    ])
    .expect(0);
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    for image in summary["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        let file = t.path().join(format!("sboms/{name}.spdx.json"));
        assert_eq!(
            image["sbom"].as_str(),
            Some(file.to_str().unwrap()),
            "{image}"
        );
        assert!(image["sbom_s"].as_f64().unwrap() > 0.0, "{image}");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            spdx_packages(&doc),
            dpkg_query(&ns.reference(name)),
            "{name}"
        );
        oracle_accepts(&venv.join("bin/pyspdxtools"), &["-i"], &file);
    }
    let less = |name: &str| {
        dpkg_query(&ns.reference(name))
            .iter()
            .any(|p| p.starts_with("less "))
    };
    assert!(!less("base") && less("tools") && less("app"));
    // The same images as CycloneDX, validated against the 1.6 schema.
    t.run(&[
        "--set",
        &set,
        "build",
        "--no-tests",
        "--attest-dir",
        "cdx",
        "--sbom-format",
        "cyclonedx",
    ])
    .expect(0);
    let script = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\nerr = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\nprint(err or '')\nsys.exit(1 if err else 0)\n";
    for name in ["base", "tools", "app"] {
        let file = t.path().join(format!("cdx/{name}.cdx.json"));
        oracle_accepts(&venv.join("bin/python"), &["-c", script], &file);
    }
    // Which images hold a package, and the version range.
    let found = t
        .run(&["affected", "--package", "less", "--attest-dir", "sboms"])
        .expect(0);
    let names: Vec<&str> = found
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["app", "tools"], "{}", found.stdout);
    let none = t
        .run(&["affected", "--package", "less@<1", "--attest-dir", "sboms"])
        .expect(0);
    assert_eq!(none.stdout, "");
    let json = t
        .run(&[
            "affected",
            "--json",
            "--package",
            "less@>=1",
            "--attest-dir",
            "cdx",
        ])
        .expect(0);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        json["tools"][0].as_str().unwrap().starts_with("less "),
        "{json}"
    );
    // The operator's flow: rebuild exactly the holders and what is built on them.
    t.run(&[
        "--set",
        &set,
        "build",
        "--no-tests",
        "--package",
        "less",
        "--attest-dir",
        "sboms",
        "--summary",
        "p.json",
    ])
    .expect(0);
    let summary: serde_json::Value = serde_json::from_str(&t.read("p.json")).unwrap();
    let built: BTreeSet<&str> = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "built")
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(built, BTreeSet::from(["app", "tools"]), "{summary}");
}

/// The rpm packages a SPEC file for `name` builds (`rpmbuild`, Debian's rpm).
fn spec(name: &str, header: &str) -> String {
    format!("Name: {name}\n{header}Summary: probe\nLicense: MIT\n%description\nprobe\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\necho {name} > %{{buildroot}}/usr/share/{name}/file\n%files\n/usr/share/{name}/file\n")
}

#[test]
fn an_rpm_sqlite_database_is_read_as_rpm_lists_it() {
    let Some(venv) = venv() else { return };
    let has_rpm = Command::new("rpmbuild").arg("--version").output().is_ok();
    let msg = "the rpm test needs Debian's rpm (rpmbuild; run through ci/test.sh)";
    assert!(
        has_rpm || std::env::var("CI").map_or(true, |v| v != "true"),
        "{msg}"
    );
    if !has_rpm {
        eprintln!("SKIPPED {msg}");
        return;
    }
    let ns = Namespace::new("sbom-rpm");
    let t = TestTree::new();
    // A Rocky-like root: two packages installed by rpm into its SQLite
    // database at /var/lib/rpm, one with an epoch, one noarch.
    t.write(
        "rpm/a.spec",
        &spec("strata-probe", "Version: 1.0\nRelease: 3.el9\nEpoch: 2\n"),
    );
    t.write(
        "rpm/b.spec",
        &spec(
            "strata-noarch",
            "Version: 0.5\nRelease: 1.el9\nBuildArch: noarch\n",
        ),
    );
    t.write("root/etc/os-release", "ID=\"rocky\"\nVERSION_ID=\"9.3\"\n");
    let rpm = "--root \"$PWD/root\" --dbpath /var/lib/rpm";
    sh(
        t.path(),
        &format!("for s in rpm/*.spec; do rpmbuild --quiet --define \"_topdir $PWD/top\" --target x86_64 -bb $s; done \
         && rpm {rpm} -i --nodeps --ignoreos top/RPMS/*/*.rpm 2>/dev/null"),
    );
    // Outside the tree's namespace (which names only the tree's images).
    let base = format!("{}-rpm/base:latest", ns.0);
    sh(
        t.path(),
        &format!("tar -C root -c . | docker import - {base} >/dev/null"),
    );
    let listed: BTreeSet<String> = sh(
        t.path(),
        &format!("rpm {rpm} -qa --qf '%{{NAME}} %|EPOCH?{{%{{EPOCH}}:}}|%{{VERSION}}-%{{RELEASE}} %{{ARCH}}\\n'"),
    )
    .lines()
    .map(str::to_string)
    .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    t.write("strata.yaml", &format!("vars: {{base_image: '{base}'}}\n"));
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ base_image }}\nCOPY file /app\n",
    );
    t.write("images/app/file", "app\n");
    t.run(&[
        "--set",
        &ns.set(),
        "build",
        "--no-tests",
        "--attest-dir",
        "sboms",
    ])
    .expect(0);
    let file = t.path().join("sboms/app.spdx.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(spdx_packages(&doc), listed);
    let purls: Vec<&str> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str())
        .collect();
    assert!(
        purls
            .contains(&"pkg:rpm/rocky/strata-probe@1.0-3.el9?arch=x86_64&epoch=2&distro=rocky-9.3"),
        "{purls:?}"
    );
    oracle_accepts(&venv.join("bin/pyspdxtools"), &["-i"], &file);
    let found = t
        .run(&[
            "affected",
            "--package",
            "strata-probe@<2:1.1",
            "--attest-dir",
            "sboms",
        ])
        .expect(0);
    assert_eq!(
        found.stdout.split_whitespace().next(),
        Some("app"),
        "{}",
        found.stdout
    );
}
