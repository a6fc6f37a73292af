//! Signed provenance (`build --push --attest-dir --sign-key`) against the
//! real registry: the subject and parents are the digests the registry
//! serves, the commit is the tree's HEAD, securesystemslib (the outside
//! oracle) verifies the DSSE envelopes with the public key, a tampered byte
//! fails both it and `strata verify`, and neither a secret's value nor the
//! key appears anywhere.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::{sh, TestTree};
use std::path::{Path, PathBuf};
use std::process::Command;

fn venv() -> Option<PathBuf> {
    match std::env::var("STRATA_TEST_SBOM_VENV").ok() {
        Some(v) => Some(PathBuf::from(v)),
        None => {
            let msg = "attest tests need STRATA_TEST_SBOM_VENV (run through ci/test.sh)";
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
            eprintln!("SKIPPED {msg}");
            None
        }
    }
}

/// securesystemslib's verdict on `envelope` with the public key `public`.
fn oracle(venv: &Path, envelope: &Path, public: &Path) -> bool {
    let script = "import json, sys\nfrom cryptography.hazmat.primitives.serialization import load_pem_public_key\nfrom securesystemslib.signer import SSlibKey\nfrom securesystemslib.dsse import Envelope\nenv = Envelope.from_dict(json.load(open(sys.argv[1])))\nkeyid = list(env.signatures)[0]\nkey = SSlibKey.from_crypto(load_pem_public_key(open(sys.argv[2], 'rb').read()), keyid=keyid)\nenv.verify([key], 1)\n";
    Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(script)
        .arg(envelope)
        .arg(public)
        .output()
        .unwrap()
        .status
        .success()
}

/// The referrers tag schema's index of `digest` in `repo`, when there is one.
fn referrers(r: &crate::push::Registry, repo: &str, digest: &str) -> Option<serde_json::Value> {
    let out = Command::new("curl")
        .args(["-sf", "-u", &format!("{}:{}", r.user, r.password)])
        .args(["-H", "Accept: application/vnd.oci.image.index.v1+json"])
        .arg(format!(
            "http://{}/v2/{repo}/manifests/sha256-{}",
            r.host,
            &digest[7..]
        ))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// An empty tree that pushes to the test registry in namespace `ns`.
fn registry_tree(r: &crate::push::Registry, ns: &Namespace) -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!(
            "registry: '{}'\nnamespace: {}\nvars: {{base_image: '{BASE_IMAGE}'}}\n",
            r.host, ns.0
        ),
    );
    t
}

#[test]
fn a_set_that_fails_gets_nothing_attached() {
    let Some(r) = crate::push::registry() else {
        return;
    };
    if !engine::available("attest failed set") {
        return;
    }
    let config = crate::push::docker_config(&r.host, &r.user, &r.password);
    let ns = Namespace::new("attest-failed");
    let t = registry_tree(&r, &ns);
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo app > /app\n",
    );
    t.write(
        "images/broken/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN exit 1\n",
    );
    let out = t
        .command(&[
            "build",
            "--push",
            "--no-tests",
            "--attest-dir",
            "att",
            "--summary",
            "s.json",
        ])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(&t.read("s.json")).unwrap();
    let app = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "app")
        .unwrap()
        .clone();
    assert_eq!(app["status"], "built");
    let content = format!("fp-{}", &app["fingerprint"].as_str().unwrap()[..24]);
    let repo = format!("{}/app", ns.0);
    let digest = crate::push::manifest_digest(&r, &repo, &content)
        .expect("app was uploaded under its content tag");
    assert!(app["attestations"].is_null(), "{app}");
    assert!(
        referrers(&r, &repo, &digest).is_none(),
        "something is attached to an unpublished image"
    );
}

#[test]
fn signed_provenance_matches_the_registry_and_verifies_outside_strata() {
    let Some(venv) = venv() else { return };
    let Some(r) = crate::push::registry() else {
        return;
    };
    if !engine::available("attest") {
        return;
    }
    let config = crate::push::docker_config(&r.host, &r.user, &r.password);
    let ns = Namespace::new("attest");
    let t = registry_tree(&r, &ns);
    t.write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN echo base > /base\n",
    );
    t.write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\nRUN --mount=type=secret,id=tok wc -c /run/secrets/tok > /tok-size\n",
    );
    sh(
        t.path(),
        "git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm tree",
    );
    let head = sh(t.path(), "git rev-parse HEAD");
    let secret = format!("attest-secret-{}", std::process::id());
    let passphrase = format!("attest-passphrase-{}", std::process::id());
    // The third key is encrypted and named by `build.sign.key`, its
    // passphrase in the environment.
    for (alg, args, encrypted) in [
        ("ed25519", "-algorithm ed25519", false),
        ("p256", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", false),
        ("p256enc", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass env:STRATA_SIGN_PASSPHRASE", true),
    ] {
        let gen = format!("openssl genpkey {args} -out {alg}.pem && openssl pkey -in {alg}.pem -passin env:STRATA_SIGN_PASSPHRASE -pubout -out {alg}.pub");
        let made = Command::new("sh").arg("-c").arg(&gen).current_dir(t.path())
            .env("STRATA_SIGN_PASSPHRASE", &passphrase).status().unwrap();
        assert!(made.success(), "{gen}");
        let dir = format!("att-{alg}");
        let key_arg = match encrypted {
            false => ["--sign-key".to_string(), format!("{alg}.pem")],
            true => ["--set".to_string(), format!("build.sign.key={alg}.pem")],
        };
        let build = |passphrase: &str| {
            t.command(&[
                "build",
                "--push",
                "--no-tests",
                "--force",
                "--summary",
                "s.json",
            ])
            .args(["--attest-dir", &dir, &key_arg[0], &key_arg[1]])
            .args(["--secret", "id=tok,env=STRATA_TEST_TOK"])
            .env("DOCKER_CONFIG", config.path())
            .env("STRATA_TEST_TOK", &secret)
            .env("STRATA_SIGN_PASSPHRASE", passphrase)
            .output()
            .unwrap()
        };
        if encrypted {
            let wrong = build("not-the-passphrase");
            let err = String::from_utf8_lossy(&wrong.stderr);
            assert_eq!(wrong.status.code(), Some(2), "{err}");
            assert!(err.contains("does not open it"), "{err}");
        }
        let out = build(&passphrase);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let env_file = t.path().join(format!("{dir}/app.provenance.dsse.json"));
        let envelope: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&env_file).unwrap()).unwrap();
        let payload = sh(t.path(), &format!("python3 -c \"import json,base64;print(base64.b64decode(json.load(open('{}'))['payload']).decode())\"", env_file.display()));
        let statement: serde_json::Value = serde_json::from_str(&payload).unwrap();
        // The SLSA v1 shape, and what it says.
        assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
        let def = &statement["predicate"]["buildDefinition"];
        for field in [
            "buildType",
            "externalParameters",
            "internalParameters",
            "resolvedDependencies",
        ] {
            assert!(!def[field].is_null(), "{field}");
        }
        assert!(!statement["predicate"]["runDetails"]["builder"]["id"].is_null());
        let digest = |name: &str| {
            crate::push::manifest_digest(&r, &format!("{}/{name}", ns.0), "latest").unwrap()
        };
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .map(|d| format!("sha256:{d}")),
            Some(digest("app"))
        );
        let deps = def["resolvedDependencies"].as_array().unwrap();
        let parent = deps
            .iter()
            .find(|d| d["name"] == "parent:base")
            .expect("the parent");
        assert_eq!(
            parent["digest"]["sha256"]
                .as_str()
                .map(|d| format!("sha256:{d}")),
            Some(digest("base"))
        );
        assert!(
            deps.iter()
                .any(|d| d["digest"]["gitCommit"] == head.as_str()),
            "{deps:?}"
        );
        assert_eq!(
            def["externalParameters"]["secrets"],
            serde_json::json!(["tok"])
        );
        // The oracle and strata agree: it verifies …
        let public = t.path().join(format!("{alg}.pub"));
        assert!(
            oracle(&venv, &env_file, &public),
            "securesystemslib rejects the {alg} envelope"
        );
        assert!(oracle(
            &venv,
            &t.path().join(format!("{dir}/app.sbom.dsse.json")),
            &public
        ));
        let reference = format!("{}/{}/app:latest", r.host, ns.0);
        let verify = |key: &str| {
            t.command(&["verify", &reference, "--key", key, "--attest-dir", &dir])
                .env("DOCKER_CONFIG", config.path())
                .output()
                .unwrap()
        };
        let ok = verify(&format!("{alg}.pub"));
        assert_eq!(
            ok.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        // Both are attached to the image in the registry (referrers tag schema).
        let index =
            referrers(&r, &format!("{}/app", ns.0), &digest("app")).expect("the referrers index");
        let types: std::collections::BTreeSet<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["artifactType"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["application/spdx+json", "application/vnd.in-toto+json"].into()
        );
        // … and a byte changed in the payload fails both.
        let mut bad = envelope.clone();
        let p = bad["payload"].as_str().unwrap().to_string();
        let flipped = match p.strip_prefix('e') {
            Some(rest) => format!("f{rest}"),
            None => format!("e{}", &p[1..]),
        };
        bad["payload"] = serde_json::json!(flipped);
        std::fs::write(&env_file, serde_json::to_string(&bad).unwrap()).unwrap();
        assert!(
            !oracle(&venv, &env_file, &public),
            "securesystemslib accepts a tampered envelope"
        );
        let tampered = verify(&format!("{alg}.pub"));
        assert_eq!(tampered.status.code(), Some(1));
        // Neither the secret's value nor the key is anywhere.
        let key_body = std::fs::read_to_string(t.path().join(format!("{alg}.pem"))).unwrap();
        let key_line = key_body.lines().nth(1).unwrap();
        let mut everything = stderr + &t.read("s.json");
        for e in std::fs::read_dir(t.path().join(&dir)).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            everything.push_str(&text);
            if let Some(p) = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["payload"].as_str().map(str::to_string))
            {
                everything.push_str(&sh(t.path(), &format!("echo {p} | base64 -d")));
            }
        }
        assert!(
            !everything.contains(&secret),
            "the secret's value is in the attestations or reports"
        );
        assert!(
            !everything.contains(key_line),
            "the key is in the attestations or reports"
        );
        assert!(
            !everything.contains(&passphrase),
            "the passphrase is in the attestations or reports"
        );
    }
}
