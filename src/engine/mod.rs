//! What runs builds: a Docker-compatible Engine API behind one trait.
//! `docker` talks to a real engine through bollard; `sim` pretends, with
//! durations and failures from a script, for scheduler tests and benchmarks.
//! What an engine is sent lives here too: an image's build context
//! (`context`: the files under its folder, less what `.dockerignore`
//! excludes, as docker's own client reads it), which the fingerprint hashes
//! entry for entry so that what is hashed is what is built.
//! Takes build requests and contexts; gives image IDs, logs and
//! verdicts' raw material (containers, files, configs).
//! Knows nothing of the graph, the plan or progress output.

pub mod buildkit;
mod classic;
mod containers;
pub mod context;
pub mod docker;
pub mod dockerignore;
pub mod emulation;
mod endpoint;
pub mod pool;
pub mod sim;

use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// One image to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub name: String,
    /// The rendered Dockerfile.
    pub dockerfile: String,
    pub context: PathBuf,
    pub args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// e.g. `linux/amd64`; empty = the engine's own.
    pub platform: String,
    /// The builder asked for; each engine resolves `Auto` (`Engine::builder`).
    pub builder: Builder,
    /// BuildKit: the secrets `RUN --mount=type=secret` may read.
    pub secrets: Vec<Secret>,
    /// BuildKit: the SSH agents `RUN --mount=type=ssh` may use.
    pub ssh: Vec<SshAgent>,
    /// The image's fingerprint: what the engine may key its copy of the
    /// context by (empty: nothing is kept between builds).
    pub key: String,
    /// Run every step afresh, not from the engine's layer cache.
    pub no_cache: bool,
    /// The stage to build; empty = the last.
    pub target: String,
    /// The network for `RUN` steps; empty = the engine's default.
    pub network: String,
    /// With a target that is not the last stage: the line (1-based) of the
    /// next stage's `FROM`, before which the label step goes, so that the
    /// target image carries strata's labels.
    pub labels_before_line: Option<usize>,
    /// The Dockerfile's escape character (its `# escape=` directive, as the
    /// parser read it), for the label step.
    pub escape: Escape,
    /// Context files (relative to it) not sent: the image's test files.
    pub leave_out: Vec<String>,
    /// What its `FROM` lines name (bases and parents): the credentials of
    /// their registries go with the build, for the builder to pull what the
    /// engine lacks.
    pub from: Vec<String>,
}

/// Which builder builds: BuildKit where the engine has it (the default),
/// or the classic one.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// BuildKit on every engine that has it, the classic builder elsewhere
    /// (Podman builds with Buildah).
    #[default]
    Auto,
    #[value(name = "buildkit")]
    BuildKit,
    Classic,
}

impl Builder {
    pub fn name(self) -> &'static str {
        match self {
            Builder::Auto => "auto",
            Builder::BuildKit => "buildkit",
            Builder::Classic => "classic",
        }
    }
}

/// A secret a build may read: its id and where its value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub id: String,
    pub source: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// An SSH agent a build may use: its id (`default`) and its socket.
#[derive(Debug, Clone)]
pub struct SshAgent {
    pub id: String,
    pub socket: PathBuf,
    /// An agent this run started (for a key file): it stops when the last
    /// copy of this handle goes.
    pub owned: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl SshAgent {
    pub fn socket(id: &str, socket: PathBuf) -> SshAgent {
        SshAgent {
            id: id.to_string(),
            socket,
            owned: None,
        }
    }
}

/// Splits streamed text into whole lines.
#[derive(Default)]
pub(crate) struct Lines(String);

impl Lines {
    pub(crate) fn push(&mut self, text: &str, log: &Log) {
        self.0.push_str(text);
        while let Some(i) = self.0.find('\n') {
            let line: String = self.0.drain(..=i).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            log(line);
        }
    }

    pub(crate) fn finish(&mut self, log: &Log) {
        if !self.0.is_empty() {
            log(&std::mem::take(&mut self.0));
        }
    }
}

/// A Dockerfile's escape character, `\\` unless its `# escape=` directive
/// says otherwise (the parser reads it; the engine only uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escape(pub char);

impl Default for Escape {
    fn default() -> Self {
        Escape('\\')
    }
}

/// An image the engine has.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageInfo {
    pub id: String,
    /// `repo:tag` references pointing at it.
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    /// `repo@sha256:…` for each registry it was pulled from or pushed to.
    pub repo_digests: Vec<String>,
    /// `os/architecture[/variant]`, e.g. `linux/amd64`; empty when unknown.
    pub platform: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum EngineError {
    /// The engine or registry cannot be reached or refused us: exit 3.
    #[error("{0}")]
    Unreachable(String),
    /// This one operation failed (a RUN step, a push): the image fails.
    #[error("{0}")]
    Failed(String),
}

/// A command to run in a container of an image, as image tests do: the
/// image's entrypoint cleared, `cmd` run as is, `env` added.
#[derive(Debug, Clone, Default)]
pub struct ContainerRun {
    pub image: String,
    pub cmd: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// Commit the container's file system as a new image afterwards.
    pub commit: bool,
    /// How long the command may run; then the container is removed and
    /// the run fails.
    pub timeout: std::time::Duration,
}

/// What a container run gave.
#[derive(Debug, Clone, Default)]
pub struct ContainerOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
    /// With `commit`: the new image.
    pub committed: Option<String>,
}

/// A path of an image's file system, as the engine's archive of it names it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathEntry {
    /// The tar type flag: `b'0'` file, `b'1'` hard link, `b'2'` symlink, `b'5'` folder, …
    pub kind: u8,
    /// The tar header's mode: permissions and set-id/sticky bits.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// A link's target.
    pub link: String,
    /// A regular file's content.
    pub content: Option<Vec<u8>>,
}

/// An image's configuration, as image tests read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    /// `KEY=VALUE`, in order.
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub workdir: String,
    pub user: String,
    pub labels: HashMap<String, String>,
    /// Port numbers without the protocol (`8080`).
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
}

/// Where build and push output goes, one whole line at a time.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

pub trait Engine: Send + Sync {
    /// Whether this is Podman's Docker-compatible service (it builds with
    /// Buildah: no BuildKit).
    fn is_podman(&self) -> bool {
        false
    }
    /// Fails when the engine does not answer.
    fn ping(&self) -> BoxFuture<'_, Result<(), EngineError>>;

    /// The platform the engine runs on (`linux/amd64`), None when unknown.
    fn native_platform(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async { None })
    }

    /// The platforms other than its own that it builds emulated (qemu),
    /// as far as can be told without a build; empty when unknown.
    fn emulated_platforms(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { Vec::new() })
    }

    /// Whether a one-step build for `platform` from `base` (`RUN true`)
    /// runs here and yields an image of that platform: the last way to
    /// learn an emulated platform, for an engine that tells of none.
    fn probe_platform<'a>(&'a self, platform: &'a str, base: &'a str) -> BoxFuture<'a, bool> {
        let _ = (platform, base);
        Box::pin(async { false })
    }

    /// The builder this engine builds with when `asked` is asked for.
    fn builder(&self, asked: Builder) -> Builder {
        match asked {
            Builder::Auto => Builder::BuildKit,
            other => other,
        }
    }
    /// Build; the image ID on success. Nothing is tagged.
    fn build(&self, request: BuildRequest, log: Log) -> BoxFuture<'_, Result<String, EngineError>>;
    /// Point `reference` at `image_id`.
    fn tag<'a>(
        &'a self,
        image_id: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Fetch `reference` from its registry (refresh a base image).
    fn pull<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Push `reference` to its registry.
    fn push<'a>(&'a self, reference: &'a str, log: Log) -> BoxFuture<'a, Result<(), EngineError>>;
    /// The image a reference points at, if the engine has it.
    fn inspect<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<ImageInfo>, EngineError>>;
    /// Run a command in a new container and remove the container, whatever happens.
    fn run_container(
        &self,
        run: ContainerRun,
    ) -> BoxFuture<'_, Result<ContainerOutput, EngineError>> {
        let _ = run;
        Box::pin(async { Err(no_containers()) })
    }
    /// The first entry of the engine's archive of `path` in a container of
    /// `image` (never started, removed afterwards); None when there is none.
    fn read_path<'a>(
        &'a self,
        image: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Option<PathEntry>, EngineError>> {
        let _ = (image, path);
        Box::pin(async { Err(no_containers()) })
    }
    /// The configuration of an image.
    fn image_config<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<ImageConfig, EngineError>> {
        let _ = image;
        Box::pin(async { Err(no_containers()) })
    }
    /// Start a container of `run.image` that runs until stopped (`strata
    /// watch --run`): its entrypoint kept, `run.cmd` when given, its output
    /// sent to `log` line by line. Gives the container's ID.
    fn serve(&self, run: ContainerRun, log: Log) -> BoxFuture<'_, Result<String, EngineError>> {
        let _ = (run, log);
        Box::pin(async { Err(no_containers()) })
    }
    /// Stop and remove a container `serve` started.
    fn stop_serving<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ()> {
        let _ = id;
        Box::pin(async {})
    }
    /// Remove every container this engine made for image tests that is
    /// still there (a run interrupted while a test ran).
    fn remove_containers(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// Remove a name strata made (a committed setup step's image, a hold
    /// tag): the image goes only when nothing else names it, its parents
    /// never.
    fn remove_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        let _ = image;
        Box::pin(async { Err(no_containers()) })
    }
}

fn no_containers() -> EngineError {
    EngineError::Failed(
        "this engine cannot run containers (image tests need a Docker-compatible engine)".into(),
    )
}

/// Connect to the engine named by `spec`: `docker` (`DOCKER_HOST`, else the
/// default socket) or `sim:SCRIPT.yaml` (the simulated engine, the script
/// relative to `root`). Fails with exit 3 when the engine does not answer.
pub async fn connect(
    spec: &str,
    root: &std::path::Path,
) -> crate::util::error::Result<Arc<dyn Engine>> {
    if let Some(script) = spec.strip_prefix("sim:") {
        let path = root.join(script);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| crate::util::error::Error::read(&path, e))?;
        let script: sim::Script = crate::util::yaml::parse(script, &text)?;
        return Ok(Arc::new(sim::SimEngine::new(script)));
    }
    let timeout = answer_timeout()?;
    let engine = docker::DockerEngine::connect(timeout)
        .await
        .map_err(unreachable)?
        .with_push_idle(push_idle_timeout()?);
    tokio::time::timeout(timeout, engine.ping())
        .await
        .map_err(|_| {
            unreachable(EngineError::Unreachable(format!(
                "the Docker engine at `{}` did not answer a ping within {} s",
                docker::endpoint(),
                timeout.as_secs()
            )))
        })?
        .map_err(unreachable)?;
    Ok(Arc::new(engine))
}

/// How long the engine has to answer the first requests of a run:
/// `STRATA_ENGINE_TIMEOUT` seconds, 30 by default.
fn answer_timeout() -> crate::util::error::Result<std::time::Duration> {
    seconds("STRATA_ENGINE_TIMEOUT", 30)
}

/// How long a push may go without a byte moving (the engine's progress
/// stream silent) before it fails: `STRATA_REGISTRY_TIMEOUT` seconds, 60 by
/// default. A registry that accepts the connection and never answers an
/// upload would otherwise hold the run forever.
fn push_idle_timeout() -> crate::util::error::Result<std::time::Duration> {
    seconds("STRATA_REGISTRY_TIMEOUT", 60)
}

/// A whole number of seconds above 0 from the environment variable `name`.
fn seconds(name: &str, default: u64) -> crate::util::error::Result<std::time::Duration> {
    let Some(v) = std::env::var(name).ok().filter(|v| !v.is_empty()) else {
        return Ok(std::time::Duration::from_secs(default));
    };
    match v.parse::<u64>() {
        Ok(s) if s > 0 => Ok(std::time::Duration::from_secs(s)),
        _ => Err(crate::util::error::Error::input(format!(
            "{name} must be a whole number of seconds above 0, not `{v}`"
        ))),
    }
}

/// Which engine `spec` names, for locks and messages.
pub fn identity(spec: &str, root: &std::path::Path) -> String {
    match spec.strip_prefix("sim:") {
        Some(script) => format!("sim:{}", root.join(script).display()),
        None => docker::endpoint(),
    }
}

/// An engine error met before anything was built, as an error for people.
pub fn unreachable(e: EngineError) -> crate::util::error::Error {
    use crate::util::error::Error;
    match e {
        EngineError::Unreachable(m) => Error::engine(m).help(
            "start the Docker engine, or point strata at one with DOCKER_HOST (e.g. `DOCKER_HOST=unix:///run/user/1000/docker.sock` or `tcp://host:2375`)",
        ),
        EngineError::Failed(m) => Error::engine(format!("the engine refused: {m}")),
    }
}
