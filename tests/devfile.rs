//! Devfiles (written to the devfile 2.2 specification) as image trees, on
//! the real engine and the loopback registry: image components built in
//! the order their FROM lines give, variables in imageName, uri and
//! manifests, docker-build args, autoBuild, components strata does not
//! build listed by plan, and `deploy` writing manifests that name the exact
//! digests the registry serves. Bad devfiles are exit 2 with file and line.

use crate::common::engine::{self, Namespace, BASE_IMAGE};
use crate::common::TestTree;
use crate::push::{docker_config, manifest_digest, registry};

/// A single-image service.
const SINGLE: &str = r#"schemaVersion: 2.2.0
metadata:
  name: hello
components:
  - name: hello
    image:
      imageName: hello
      dockerfile:
        uri: Dockerfile
        buildContext: .
  - name: hello-deploy
    kubernetes:
      uri: deploy.yaml
commands:
  - id: build
    apply: {component: hello}
  - id: deploy
    composite:
      commands: [build, apply]
      group: {kind: deploy, isDefault: true}
  - id: apply
    apply: {component: hello-deploy}
"#;

/// A multi-image application: `shop-base` under `web` and `api`.
const SHOP: &str = r#"schemaVersion: 2.2.0
metadata:
  name: shop
variables:
  WEB_IMAGE: shop-web
  API_DOCKERFILE: api/Dockerfile
  GREETING: hello from the devfile
  REPLICAS: "2"
components:
  - name: shop-base
    image:
      imageName: shop-base
      dockerfile:
        uri: base.Dockerfile
  - name: web
    image:
      imageName: "{{WEB_IMAGE}}:v1"
      dockerfile:
        uri: web/Dockerfile
        buildContext: ${PROJECT_SOURCE}/web
        rootRequired: true
        args: ["--build-arg", "GREETING={{GREETING}}", "--target=runtime"]
  - name: api
    image:
      imageName: shop-api
      dockerfile:
        uri: "{{API_DOCKERFILE}}"
  - name: tools
    image:
      imageName: shop-tools
      autoBuild: false
      dockerfile:
        uri: tools/Dockerfile
  - name: from-git
    image:
      imageName: elsewhere
      dockerfile:
        git:
          remotes: {origin: "https://example.invalid/app.git"}
  - name: web-deploy
    kubernetes:
      inlined: |
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: {{REPLICAS}}
          template:
            spec:
              containers:
                - name: web
                  image: "{{WEB_IMAGE}}:v1"
                - name: sidecar
                  image: busybox:latest
  - name: api-deploy
    kubernetes:
      uri: k8s/api.yaml
  - name: runtime
    container:
      image: busybox:latest
commands:
  - id: build-images
    composite:
      commands: [build-web, build-api]
  - id: build-web
    apply: {component: web}
  - id: build-api
    apply: {component: api}
  - id: deploy
    composite:
      commands: [build-images, deploy-web, deploy-api]
      group: {kind: deploy, isDefault: true}
  - id: deploy-web
    apply: {component: web-deploy}
  - id: deploy-api
    apply: {component: api-deploy}
"#;

fn shop() -> TestTree {
    let t = TestTree::new();
    t.write("devfile.yaml", SHOP)
        .write("base.Dockerfile", &format!("FROM {BASE_IMAGE}\nRUN echo base > /base\n"))
        .write(
            "web/Dockerfile",
            "FROM shop-base AS build\nARG GREETING\nRUN echo \"$GREETING\" > /greeting\n\
             FROM shop-base AS runtime\nCOPY --from=build /greeting /greeting\n\
             FROM runtime AS debug\nRUN echo debug > /debug\n",
        )
        .write("api/Dockerfile", "FROM shop-base\nCOPY api.txt /api.txt\n")
        .write("api.txt", "api\n")
        .write("tools/Dockerfile", "FROM shop-base\nRUN echo tools > /tools\n")
        .write(
            "k8s/api.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: api\nspec:\n  containers:\n    - name: api\n      image: shop-api\n",
        );
    t
}

#[test]
fn a_devfile_tree_lists_its_images_in_from_order() {
    let t = shop();
    let run = t.run(&["list", "--json"]).expect(0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = list.iter().map(|i| i["name"].as_str().unwrap()).collect();
    // autoBuild: false is left out unless named.
    assert_eq!(names, ["shop-base", "api", "web"]);
    assert_eq!(list[1]["parents"], serde_json::json!(["shop-base"]));
    assert_eq!(list[2]["parents"], serde_json::json!(["shop-base"]));
    assert_eq!(
        list[2]["ref"], "strata/shop-web:v1",
        "a relative imageName gets the namespace"
    );
    let named = t.run(&["list", "tools"]).expect(0);
    assert!(named.stdout.contains("shop-tools"), "{}", named.stdout);
    let globbed = t.run(&["list", "to*"]).expect(2);
    assert!(
        globbed
            .stderr
            .contains("matches only images built on request"),
        "{}",
        globbed.stderr
    );
}

#[test]
fn a_devfile_builds_pushes_and_deploys_pinned_by_digest() {
    let Some(r) = registry() else { return };
    if !engine::available("devfile") {
        return;
    }
    let ns = Namespace::new("devfile");
    let config = docker_config(&r.host, &r.user, &r.password);
    let t = shop();
    let set_ns = ns.set();
    let reg = format!("registry={}", r.host);
    let with = |args: &[&str]| {
        let mut all = vec!["--set", set_ns.as_str(), "--set", reg.as_str()];
        all.extend_from_slice(args);
        t.command(&all)
            .env("DOCKER_CONFIG", config.path())
            .output()
            .unwrap()
    };
    // plan names what strata does not build, and who needs root.
    let plan = with(&["plan"]);
    let out = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(
        out.contains("not built by strata: from-git (devfile.yaml): `dockerfile.git`"),
        "{out}"
    );
    assert!(out.contains("web: rootRequired"), "{out}");

    let deploy = with(&["deploy", "--out", "manifests", "--progress", "plain"]);
    let err = String::from_utf8_lossy(&deploy.stderr);
    assert!(deploy.status.success(), "{err}");
    // Built on one another, with the devfile's build arg and target.
    let web = format!("{}/{}/shop-web:v1", r.host, ns.0);
    assert_eq!(
        engine::run_in(&web, &["cat", "/greeting"]),
        "hello from the devfile\n"
    );
    assert_eq!(engine::run_in(&web, &["cat", "/base"]), "base\n");
    assert!(
        engine::run_in(&web, &["ls", "/"])
            .lines()
            .all(|l| l != "debug"),
        "target: runtime"
    );

    let web_digest = manifest_digest(&r, &format!("{}/shop-web", ns.0), "v1").expect("web pushed");
    let api_digest =
        manifest_digest(&r, &format!("{}/shop-api", ns.0), "latest").expect("api pushed");
    let deployment = t.read("manifests/web-deploy.yaml");
    assert!(
        deployment.contains(&format!("image: {}/{}/shop-web@{web_digest}", r.host, ns.0)),
        "{deployment}"
    );
    assert!(
        deployment.contains("replicas: 2"),
        "variables in manifests: {deployment}"
    );
    assert!(
        deployment.contains("image: busybox:latest"),
        "other images untouched: {deployment}"
    );
    let pod = t.read("manifests/api-deploy.yaml");
    assert!(
        pod.contains(&format!("image: {}/{}/shop-api@{api_digest}", r.host, ns.0)),
        "{pod}"
    );
    // The manifests parse as the Kubernetes objects they were.
    let doc: serde_json::Value = serde_saphyr::from_str(&deployment).unwrap();
    assert_eq!(doc["kind"], "Deployment");
    // Not built: autoBuild false and not in the deploy command.
    assert!(manifest_digest(&r, &format!("{}/shop-tools", ns.0), "latest").is_none());

    // --apply without kubectl: a clear error, before anything is built.
    let mut cmd = t.command(&["--set", &ns.set(), "deploy", "--apply"]);
    cmd.env("PATH", "/nonexistent");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`kubectl` is not on PATH"));
    // A `kubectl` that is there but cannot run: the same, not a build first.
    let bin = tempfile::tempdir().unwrap();
    std::fs::write(bin.path().join("kubectl"), "not a program\n").unwrap();
    let mut cmd = t.command(&["--set", &ns.set(), "deploy", "--apply"]);
    cmd.env("PATH", bin.path());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`kubectl` cannot be run"), "{err}");
    assert!(!err.contains("building"), "{err}");
}

#[test]
fn a_single_image_devfile_given_by_flag_with_variables() {
    let Some(r) = registry() else { return };
    if !engine::available("devfile_single") {
        return;
    }
    let ns = Namespace::new("devfile-single");
    let config = docker_config(&r.host, &r.user, &r.password);
    let t = TestTree::new();
    t.write("service/hello.devfile.yaml", SINGLE)
        .write(
            "service/Dockerfile",
            "FROM {BASE}\nRUN echo hello > /hello\n".replace("{BASE}", BASE_IMAGE).as_str(),
        )
        .write(
            "service/deploy.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\nspec:\n  containers:\n    - name: hello\n      image: hello\n",
        )
        .write("vars.env", "# unused here\nEXTRA=1\n");
    let out = t
        .command(&[
            "--devfile",
            "service/hello.devfile.yaml",
            "--var-file",
            "vars.env",
            "--set",
            &ns.set(),
            "--set",
            &format!("registry={}", r.host),
            "deploy",
        ])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = manifest_digest(&r, &format!("{}/hello", ns.0), "latest").expect("pushed");
    assert!(
        stdout.contains(&format!("image: {}/{}/hello@{digest}", r.host, ns.0)),
        "{stdout}"
    );
}

#[test]
fn bad_devfiles_are_exit_2_with_file_and_line() {
    let cases: &[(&str, &str, &str)] = &[
        ("schemaVersion: 3.0.0\ncomponents: []\n", "unknown devfile schemaVersion `3.0.0`", "devfile.yaml:1"),
        ("schemaVersion: 2.2.0\ncomponents:\n  - just a string\n", "a component is not a mapping", "devfile.yaml:2"),
        (
            "schemaVersion: 2.2.0\ncomponents:\n  - name: web\n    image:\n      imageName: web\n      dockerfile: {uri: nowhere/Dockerfile}\n",
            "the Dockerfile `nowhere/Dockerfile` does not exist",
            "devfile.yaml:6",
        ),
        (
            "schemaVersion: 2.2.0\ncomponents:\n  - name: web\n    image:\n      imageName: \"{{NOPE}}\"\n      dockerfile: {uri: Dockerfile}\n",
            "undefined variable `NOPE`",
            "devfile.yaml:5",
        ),
        (
            "schemaVersion: 2.2.0\ncomponents:\n  - name: web\n    image:\n      imageName: web\n      dockerfile:\n        uri: Dockerfile\n        args: [\"--squash\"]\n",
            "does not understand the docker build argument `--squash`",
            "devfile.yaml:8",
        ),
    ];
    for (text, message, place) in cases {
        let t = TestTree::new();
        t.write("devfile.yaml", text)
            .write("Dockerfile", &format!("FROM {BASE_IMAGE}\n"));
        let run = t.run(&["build"]).expect(2);
        assert!(run.stderr.contains(message), "{message}: {}", run.stderr);
        assert!(run.stderr.contains(place), "{place}: {}", run.stderr);
    }
}

/// `devfiles:` in strata.yaml adds a devfile's images to a tree of its own.
#[test]
fn a_strata_tree_takes_images_from_a_devfile() {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        &format!("namespace: mixed\nvars: {{base_image: '{BASE_IMAGE}'}}\ndevfiles: [app/devfile.yaml]\n"),
    )
    .write("images/base/Dockerfile.j2", "FROM {{ base_image }}\n")
    .write(
        "app/devfile.yaml",
        "schemaVersion: 2.2.0\ncomponents:\n  - name: app\n    image:\n      imageName: app\n      dockerfile: {uri: Dockerfile}\n",
    )
    .write("app/Dockerfile", "FROM mixed/base:latest\n");
    let run = t.run(&["list", "--json"]).expect(0);
    let list: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    let app = list.iter().find(|i| i["name"] == "app").unwrap();
    assert_eq!(
        app["parents"],
        serde_json::json!(["base"]),
        "built on the tree's own image"
    );
    assert_eq!(app["ref"], "mixed/app:latest");
    // A Dockerfile named by URL: a clear error, nothing fetched.
    t.write(
        "app/devfile.yaml",
        "schemaVersion: 2.2.0\ncomponents:\n  - name: app\n    image:\n      imageName: app\n      dockerfile: {uri: 'https://example.invalid/Dockerfile'}\n",
    );
    let run = t.run(&["list"]).expect(2);
    assert!(
        run.stderr.contains("names its Dockerfile by URL"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("app/devfile.yaml:6"), "{}", run.stderr);
}
