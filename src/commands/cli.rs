//! The command line, as clap parses it: the global options, the commands
//! and their flags. Only parses; `settings.rs` resolves, the command files run.

use crate::commands::settings::{engine_spec, BuildFlags, InputFlags, TestFlags};
use crate::graph::load::Options;
use crate::report::progress;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The version and the git commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("STRATA_COMMIT"), ")");

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version = VERSION,
    about = "Build whole sets of container images from a tree of Jinja-templated Dockerfiles",
    long_about = "strata renders every Dockerfile.j2 of a tree, learns from the rendered FROM lines which image is \
built on which, builds the images in parallel in dependency order and rebuilds exactly what changed.\n\n\
Selectors: NAME, a glob (`nova-*`), `re:REGEX`, `NAME+` (NAME and every image built on it), \
`+NAME` (NAME and its ancestors), `@PROFILE` (a list under `profiles:` in strata.yaml). No selector = every image.\n\n\
Exit codes: 0 all good; 1 an image failed (a build, a push); 2 invalid input, nothing built; 3 engine or registry \
unreachable or refusing the credentials, or another run holds the lock (--no-wait), nothing built; 4 built, but a \
report file could not be written; 130 interrupted.\n\n\
The user guide: docs/SUMMARY.md in strata's source tree, an mdBook (`mdbook serve docs`); README.md is its front page."
)]
pub struct Cli {
    /// Run as if started in DIR (the tree root); other paths are relative to it.
    #[arg(short = 'C', value_name = "DIR", global = true, default_value = ".")]
    pub dir: PathBuf,
    /// The tree's configuration file [default: DIR/strata.yaml].
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Override a strata.yaml value by dotted path, e.g. `--set tag=2026.1`, `--set vars.base_image=x`.
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    pub sets: Vec<String>,
    /// A template whose blocks replace those of every image (repeatable, applied in order);
    /// it may start with `{% extends parent_template %}`.
    #[arg(long = "override", value_name = "FILE", global = true)]
    pub overrides: Vec<PathBuf>,
    /// Leave out the images whose names match GLOB (repeatable), as `exclude:` in strata.yaml does.
    #[arg(long = "exclude", value_name = "GLOB", global = true)]
    pub exclude: Vec<String>,
    /// Read this devfile: its `image` components join the tree (alone when there is no strata.yaml).
    #[arg(long, value_name = "FILE", global = true)]
    pub devfile: Option<PathBuf>,
    /// A devfile variable, over the devfile's `variables` (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE", global = true)]
    pub vars: Vec<String>,
    /// A file of devfile variables, one KEY=VALUE a line (repeatable).
    #[arg(long = "var-file", value_name = "FILE", global = true)]
    pub var_files: Vec<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List images, their references, parents and bases.
    List {
        selectors: Vec<String>,
        /// JSON: [{name, ref, path, parents, bases}].
        #[arg(long)]
        json: bool,
    },
    /// Show the dependency graph.
    Graph {
        selectors: Vec<String>,
        #[arg(long, value_enum, default_value_t = GraphFormat::Tree)]
        format: GraphFormat,
    },
    /// Print rendered Dockerfiles, or write them to DIR/<image>/Dockerfile.
    Render {
        selectors: Vec<String>,
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// What `build` would build, and why (asks the engine what exists).
    Plan(PlanFlags),
    /// Build images in dependency order, in parallel, on the Docker engine.
    Build(Box<BuildFlags>),
    /// Build the selection, then rebuild and test what each saved edit affects.
    ///
    /// Builds as `build` does, then watches the tree: templates, files under
    /// an image's folder, image.yaml, strata.yaml, var files, image-test
    /// files, .dockerignore. Each burst of saves is one re-plan: exactly the
    /// edited images and those built on them are rebuilt, and exactly the
    /// tests whose image or file changed run again. An edit made while a
    /// build runs cancels the builds it makes stale. A bad edit is shown and
    /// the watch goes on. Never pushes. Ctrl-C stops (exit 130), leaving no
    /// container and no lock.
    Watch(Box<WatchFlags>),
    /// Run the image tests of images that are built already.
    ///
    /// The tests (`tests:` in image.yaml, `build.tests`) run again; nothing
    /// is built. Exit 1 when a test fails.
    Test(TestFlags),
    /// Move a pushed set's release tags to its content tags (all or nothing).
    ///
    /// Moves the release tags (`tag`, `tags:`) of a pushed set in the
    /// registry to its content tags: all or nothing, manifests only. The
    /// step a CI fan-out runs once at the end, after its
    /// `build --push --no-publish` jobs. Exit 1, moving nothing, when an
    /// image is not in the registry with its current inputs.
    Publish {
        selectors: Vec<String>,
        /// Keep a release tag when its commit is unknown here and the commit
        /// times cannot tell which is newer (the default moves it, warning).
        #[arg(long)]
        keep_on_unknown: bool,
        /// Attach the SBOM and provenance that `build --push --no-publish
        /// --attest-dir DIR` wrote to each image whose release tags move
        /// (only files about the digest published).
        #[arg(long, value_name = "DIR")]
        attest_dir: Option<PathBuf>,
        /// The SBOM format the build wrote.
        #[arg(long, value_enum, default_value = "spdx", requires = "attest_dir")]
        sbom_format: crate::publish::supply::Format,
        /// Write the publication's page to FILE.html: each image, the
        /// references moved to its digest, the indexes.
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
        #[arg(long, value_name = "ENGINE", default_value = "docker", hide = true, value_parser = engine_spec)]
        engine: crate::engine::pool::Spec,
    },
    /// Delete old tags from the registry by `retention:` in strata.yaml.
    ///
    /// Tags older than `max_age` that match no `keep` glob (and no
    /// `keep-…` tag of `strata keep`), never a digest a kept tag shares.
    /// Prints the table of what goes and why; that is all it does unless
    /// --yes is given (as `docker image prune -f`), terminal or not.
    /// `retention.max_age` must be set: it has no default.
    Prune {
        selectors: Vec<String>,
        /// Print the table only; delete nothing.
        #[arg(long, conflicts_with = "yes")]
        dry_run: bool,
        /// Delete what the table says goes (without it nothing is deleted).
        #[arg(long)]
        yes: bool,
        /// Also keep tags matching GLOB (repeatable), besides `retention.keep`.
        #[arg(long = "keep", value_name = "GLOB")]
        keep: Vec<String>,
    },
    /// Keep one build for good (tag it `keep-<tag>`).
    ///
    /// Tag REF (a reference, or IMAGE:TAG of the
    /// tree) as `keep-<tag>` in its repository; `strata prune` never deletes
    /// it (delete that tag to let it age again).
    Keep {
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// Print a pipeline for GitLab, GitHub Actions, Jenkins or Zuul, or the
    /// set as a Tekton Pipeline or an Argo Workflow.
    ///
    /// One job (task) per image to build (`strata build NAME --no-deps
    /// --push --no-publish`), each waiting for its parents' jobs, then one
    /// `strata publish` job. Without --all, only images the engine and
    /// registry lack (asks them). The worker options make the file run as
    /// emitted: how strata gets there, the login (by secret names), the
    /// runner, the artifacts (docs/ci.md).
    Ci {
        system: crate::integrations::ci::System,
        selectors: Vec<String>,
        /// A job for every selected image, built or not (asks nothing).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        worker: WorkerFlags,
    },
    /// Run a devfile's deploy: build, push, print manifests pinned by digest.
    ///
    /// The default deploy command: build and push its image
    /// components (as `build --push`), then print its kubernetes/openshift
    /// manifests with every built image pinned by digest (`repo@sha256:…`).
    Deploy {
        /// Write DIR/<component>.yaml instead of printing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Pipe the manifests to `kubectl apply -f -`.
        #[arg(long)]
        apply: bool,
        #[arg(long, value_enum, default_value_t = progress::Mode::Auto)]
        progress: progress::Mode,
    },
    /// The images (and everything built on them) that a change to PATHs would rebuild.
    Affected {
        /// Paths relative to the tree root (files or folders). With
        /// --package: image selectors, the images whose SBOMs are read
        /// (default: every image).
        #[arg(required_unless_present = "packages", value_name = "PATH|SELECTOR")]
        paths: Vec<String>,
        /// JSON: a list of image names (with --package: {image: ["name version"]}).
        #[arg(long)]
        json: bool,
        /// The images whose SBOM holds a package matching NAME[@RANGE]
        /// (`openssl@<3.0.15`, `bash@>=5.2,<5.3`), read from --attest-dir,
        /// else from the registry (the SBOM attached to each image's
        /// release tag by `build --push --attest-dir`). Repeatable.
        #[arg(long = "package", value_name = "NAME[@RANGE]")]
        packages: Vec<String>,
        /// The folder `build --attest-dir` wrote the SBOMs to.
        #[arg(long, value_name = "DIR")]
        attest_dir: Option<PathBuf>,
    },
    /// Check the signed provenance of REF (from `build --attest-dir DIR
    /// --sign-key`): its signature with the public key, its subject against
    /// the digest the registry serves for REF, and that every parent and
    /// base it names by digest is in the registry. Exit 1 on a mismatch.
    Verify {
        /// The image's reference, as built: `registry/namespace/name:tag`.
        reference: String,
        /// The public key (PEM) of the signing key.
        #[arg(long, value_name = "PUB")]
        key: PathBuf,
        /// Where `build` wrote the provenance.
        #[arg(long, value_name = "DIR")]
        attest_dir: PathBuf,
    },
    /// Draw a run again from its summary: `strata timeline s.json -o run.svg` (or .html).
    Timeline {
        /// A summary written by `strata build --summary FILE`.
        summary: PathBuf,
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: PathBuf,
    },
    /// The page of a run done elsewhere: `strata report s.json -o run.html`
    /// (several summaries, e.g. those CI jobs uploaded, are merged).
    Report(ReportArgs),
    /// Print a shell completion script: `strata completions bash > /etc/bash_completion.d/strata`.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff): `strata man > strata.1 && man ./strata.1`.
    Man,
}

/// What `strata ci`'s jobs need besides strata's command, so that the
/// file runs as emitted. Names of secrets, never their values.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WorkerFlags {
    /// A shell command run first in every job, that puts strata on the
    /// worker: `--setup 'cargo install --locked --git URL strata'`.
    #[arg(long, value_name = "CMD")]
    pub setup: Option<String>,
    /// A container image that has strata and the docker CLI: each job
    /// runs in it, given the engine's socket (GitHub `container:`, GitLab
    /// `image:`, a Jenkins docker agent; not on Zuul).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Which runner runs the jobs: GitHub `runs-on` (default
    /// ubuntu-latest), GitLab `tags`, the Jenkins agent's label, the Zuul
    /// nodeset.
    #[arg(long, value_name = "LABEL")]
    pub runner: Option<String>,
    /// GitHub and GitLab: the secret (CI/CD variable) holding the
    /// registry user; the jobs run `docker login` with it.
    #[arg(long, value_name = "NAME", requires = "login_password")]
    pub login_user: Option<String>,
    /// GitHub and GitLab: the secret (CI/CD variable) holding the
    /// registry password (GitHub passes it through `env:`, never `run:`).
    #[arg(long, value_name = "NAME", requires = "login_user")]
    pub login_password: Option<String>,
    /// Jenkins: the ID of a username-password credential
    /// (`withCredentials`); Zuul: a secret with `username` and `password`.
    #[arg(long, value_name = "ID")]
    pub login_credentials: Option<String>,
    /// Upload no artifacts (each job's summary and JUnit file).
    #[arg(long)]
    pub no_artifacts: bool,
    /// Tekton, Argo: the engine the tasks build on (`tcp://HOST:2376`)
    /// instead of a Docker-in-Docker sidecar in each task's pod.
    #[arg(long, value_name = "HOST")]
    pub engine: Option<String>,
    /// Tekton, Argo: each task's resource requests: `cpu=2,memory=4Gi`.
    #[arg(long, value_name = "NAME=QTY,...")]
    pub requests: Option<String>,
    /// Tekton, Argo: the service account the pods run as.
    #[arg(long, value_name = "NAME")]
    pub service_account: Option<String>,
    /// Tekton, Argo: where each task clones the tree (default: the tree's
    /// `origin` remote).
    #[arg(long, value_name = "URL")]
    pub git_url: Option<String>,
    /// Tekton, Argo: the revision cloned (default: the tree's HEAD commit).
    #[arg(long, value_name = "REV")]
    pub git_revision: Option<String>,
}

/// `strata report`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Summaries written by `strata build --summary FILE` (or test, publish).
    #[arg(required = true, value_name = "SUMMARY.json")]
    pub summaries: Vec<std::path::PathBuf>,
    /// The page to write (HTML, one self-contained file).
    #[arg(short = 'o', long = "out", value_name = "FILE.html")]
    pub out: std::path::PathBuf,
    /// The folder of the run's `<image>.log` files (its `--logs-dir`).
    #[arg(long, value_name = "DIR")]
    pub logs: Option<std::path::PathBuf>,
    /// Where the run wrote SBOMs and provenance (its `--attest-dir`).
    #[arg(long, value_name = "DIR")]
    pub attest_dir: Option<std::path::PathBuf>,
    /// The public key (PEM) that checks signed provenance.
    #[arg(long, value_name = "PUB")]
    pub key: Option<std::path::PathBuf>,
}

/// `strata watch`'s flags: `build`'s, and how to watch.
#[derive(clap::Args, Debug, Clone)]
pub struct WatchFlags {
    #[command(flatten)]
    pub build: BuildFlags,
    /// How long the tree must stay still before a burst of saves counts as
    /// one change (`200ms`, `1s`, or milliseconds).
    #[arg(long, value_name = "TIME", default_value = "200ms", value_parser = parse_duration)]
    pub debounce: std::time::Duration,
    /// After each rebuild that changed IMAGE (and after the first build),
    /// start one container of it, its output prefixed `IMAGE | `, stopping
    /// the one before: the `compose watch` habit.
    #[arg(long, value_name = "IMAGE")]
    pub run: Option<String>,
    /// The command for `--run`'s container, after `--` (default: the
    /// image's own).
    #[arg(last = true, value_name = "CMD", requires = "run")]
    pub cmd: Vec<String>,
}

/// `250ms`, `2s`, or a number of milliseconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.strip_suffix("ms") {
        Some(n) => (n, 1),
        None => match t.strip_suffix('s') {
            Some(n) => (n, 1000),
            None => (t, 1),
        },
    };
    let n: u64 = (number.trim().parse())
        .map_err(|_| format!("`{text}` is not a time: give `200ms`, `1s` or milliseconds"))?;
    Ok(std::time::Duration::from_millis(n * unit))
}

/// `strata plan`'s flags.
#[derive(clap::Args, Debug, Clone)]
pub struct PlanFlags {
    pub selectors: Vec<String>,
    #[command(flatten)]
    pub inputs: InputFlags,
    /// JSON: [{name, ref, fingerprint, action, reasons}].
    #[arg(long)]
    pub json: bool,
    /// Plan to rebuild the selection regardless.
    #[arg(long)]
    pub force: bool,
    /// Leave stale parents out.
    #[arg(long)]
    pub no_deps: bool,
    /// Only images whose inputs changed since git revision REV, and what is built on them.
    #[arg(long, value_name = "REV")]
    pub since: Option<String>,
    /// Refresh base images from their registries first (also `build.pull: true`).
    #[arg(long)]
    pub pull: bool,
    /// Ask these engines what exists (repeatable; as for `build`).
    #[arg(long = "engine", value_name = "HOST[=JOBS]", value_parser = engine_spec)]
    pub engines: Vec<crate::engine::pool::Spec>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Tree,
    Dot,
    Mermaid,
    Json,
}

impl Cli {
    /// The options every command loads the tree with.
    pub fn options(&self) -> Options {
        Options {
            dir: self.dir.clone(),
            config: self.config.clone(),
            sets: self.sets.clone(),
            overrides: self.overrides.clone(),
            exclude: self.exclude.clone(),
            devfile: self.devfile.clone(),
            vars: self.vars.clone(),
            var_files: self.var_files.clone(),
        }
    }
}
