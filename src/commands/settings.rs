//! Settings resolved once: the raw flags of a command (as clap parsed
//! them) and strata.yaml become one typed value before anything runs, as
//! ripgrep turns its low-level args into high-level ones. Every default,
//! every "flag or config", every output path and the engines of a run are
//! decided here and nowhere else. Knows nothing of engines' answers, the
//! plan or the scheduler.

use crate::engine::pool::Spec;
use crate::plan::Ask;
use crate::report;
use crate::report::progress;
use crate::tree::config::{Config, Publish as PublishMode};
use crate::util::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Build inputs given on the command line, as `docker build` and
/// `buildx bake` take them; the same as `--set build.args.KEY=VALUE` and
/// `--set build.platform=P` (so `plan` given the same flags agrees).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct InputFlags {
    /// A build arg for every image (repeatable); overrides `build.args`.
    #[arg(long = "build-arg", value_name = "KEY=VALUE", value_parser = key_value)]
    build_args: Vec<String>,
    /// The platform to build for, e.g. `linux/amd64`; several
    /// (`linux/amd64,linux/arm64`) make a multi-platform set; on a set
    /// with `platforms:`, those of its platforms only (no index written).
    /// Overrides `build.platform`.
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    /// The stage to build in the images that have one of that name and no
    /// `target:` of their own (sets `build.target`); the others build their last.
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// The network for RUN steps, e.g. `host` or `none` (sets `build.network`).
    #[arg(long, value_name = "MODE")]
    network: Option<String>,
    /// A secret for `RUN --mount=type=secret,id=ID` (BuildKit), as docker
    /// takes it: `id=ID,src=FILE` or `id=ID,env=VAR` (repeatable; sets
    /// `build.secrets.ID`). Its id is an input of the images that mount it;
    /// its value is never kept, logged or fingerprinted.
    #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR", value_parser = secret_set)]
    secrets: Vec<String>,
}

impl InputFlags {
    /// The `--set` overrides these flags stand for.
    pub fn sets(&self) -> impl Iterator<Item = String> + '_ {
        let args = self.build_args.iter().map(|kv| format!("build.args.{kv}"));
        args.chain(self.platform.iter().map(|p| format!("build.platform={p}")))
            .chain(self.target.iter().map(|t| format!("build.target={t}")))
            .chain(self.network.iter().map(|n| format!("build.network={n}")))
            .chain(self.secrets.iter().cloned())
    }
}

/// `--secret id=ID,src=FILE|env=VAR` as the `--set` it stands for
/// (docker's syntax: also `source=`, `type=file|env`; `id=ID` alone reads
/// the variable ID). A relative file is taken from the working folder.
fn secret_set(s: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::input(format!("invalid `--secret {s}`: {why}"))
            .help("give `--secret id=ID,src=FILE` or `--secret id=ID,env=VAR`")
    };
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v),
            Some(("src" | "source", v)) => src = Some(v),
            Some(("env", v)) => env = Some(v),
            Some(("type", v)) => kind = Some(v),
            _ => return Err(bad(&format!("`{part}` is not id=, src=, env= or type="))),
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad("no `id=`"))?;
    if id.contains(['.', '=', ',']) || id.chars().any(char::is_whitespace) {
        return Err(bad(
            "an id with `.`, `=`, `,` or spaces cannot be given here; name it in `build.secrets`",
        ));
    }
    let file = |f: &str| {
        let path = std::path::Path::new(f);
        let abs = std::env::current_dir().map_or(path.to_path_buf(), |d| d.join(path));
        ("file", abs.to_string_lossy().into_owned())
    };
    let (key, value) = match (src.filter(|f| !f.is_empty()), env, kind) {
        (Some(_), Some(_), _) => return Err(bad("give src= or env=, not both")),
        (Some(f), None, None | Some("file")) => file(f),
        (Some(v), None, Some("env")) | (None, Some(v), None | Some("env")) => {
            ("env", v.to_string())
        }
        (None, None, None | Some("env")) => ("env", id.to_string()),
        (None, None, Some("file")) => return Err(bad("type=file needs src=FILE")),
        _ => return Err(bad("`type=` is file or env")),
    };
    Ok(format!("build.secrets.{id}.{key}={value}"))
}

fn key_value(s: &str) -> Result<String> {
    match s.split_once('=') {
        Some((k, _)) if !k.is_empty() => Ok(s.to_string()),
        _ => Err(Error::input(format!("`{s}` is not KEY=VALUE"))),
    }
}

/// `--engine HOST[=JOBS]`: clap shows an error's message only, so the
/// help goes into it.
pub fn engine_spec(text: &str) -> Result<Spec> {
    Spec::parse(text).map_err(|e| match e.help {
        Some(help) => Error::input(format!("{}\n  help: {help}", e.message)),
        None => e,
    })
}

/// What `build` and `test` show and write about a run.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportFlags {
    #[arg(long, value_enum, default_value_t = progress::Mode::Auto)]
    pub progress: progress::Mode,
    /// Write DIR/<image>.log with the whole output of each image.
    #[arg(long, value_name = "DIR")]
    pub logs_dir: Option<PathBuf>,
    /// Write the summary JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Write JUnit XML to FILE: one test case per image test (and, for
    /// `build`, one per image).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the run's page to FILE.html: the set as a graph coloured by
    /// outcome, each image's panel (why, parents, log, tests, tags, SBOM
    /// diff, provenance), the timeline. One file, no network.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

impl Default for ReportFlags {
    fn default() -> Self {
        ReportFlags {
            progress: progress::Mode::Auto,
            logs_dir: None,
            summary: None,
            junit: None,
            report: None,
        }
    }
}

/// `strata build`'s flags, as given.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BuildFlags {
    pub selectors: Vec<String>,
    #[command(flatten)]
    pub inputs: InputFlags,
    /// Do not use the engine's layer cache for the images built (every step
    /// runs afresh; add --force to rebuild up-to-date images too).
    #[arg(long)]
    pub no_cache: bool,
    /// Print only failed images and the result (same as --progress quiet).
    #[arg(short = 'q', long, conflicts_with = "progress")]
    pub quiet: bool,
    /// Builds at once [default: build.jobs, else the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    /// Upload what the registry lacks under content tags (`repo:fp-…`), then
    /// move the release tags there once every image is done (`build.publish`).
    /// Credentials from the Docker config.
    #[arg(long)]
    pub push: bool,
    /// Rebuild the selection even when it is up to date (stale parents are built too).
    #[arg(long)]
    pub force: bool,
    /// Build only the selection, on whatever parent images exist.
    #[arg(long)]
    pub no_deps: bool,
    /// Stop starting builds at the first failure and cancel running ones.
    #[arg(long)]
    pub fail_fast: bool,
    /// Retry a failed build N times [default: build.retries].
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Refresh base images from their registries first (also `build.pull: true`);
    /// a new base rebuilds every image on it.
    #[arg(long)]
    pub pull: bool,
    /// Only images whose inputs changed since git revision REV, and what is built on them.
    #[arg(long, value_name = "REV")]
    pub since: Option<String>,
    /// Which builder builds: `auto` (the default: BuildKit on every Docker
    /// engine, the classic builder on Podman, which builds with Buildah),
    /// `buildkit` or `classic` [default: build.builder].
    #[arg(long, value_name = "BUILDER", value_enum)]
    pub builder: Option<crate::engine::Builder>,
    /// The same as `--builder buildkit` (also `build.buildkit: true`).
    #[arg(long, conflicts_with = "builder")]
    pub buildkit: bool,
    /// Forward an SSH agent to `RUN --mount=type=ssh` (BuildKit), as docker
    /// does: `default` (the agent of SSH_AUTH_SOCK) or `ID=SOCKET` (an
    /// agent's socket) or `ID=KEYFILE` (a key, loaded into an agent of this
    /// run's own that ends with it). Repeatable. Nothing of a key is kept.
    #[arg(long = "ssh", value_name = "default|ID=PATH")]
    pub ssh: Vec<String>,
    /// Write an SBOM of every image the engine holds (the packages of its
    /// dpkg or apk database, read without running it) to DIR/<image>.spdx.json,
    /// and the SLSA provenance of every image built to
    /// DIR/<image>.provenance.json; with --push they are attached to the
    /// images in the registry once their tags moved. The summary names each file.
    #[arg(long, value_name = "DIR")]
    pub attest_dir: Option<PathBuf>,
    /// The SBOM format: SPDX 2.3 JSON, or CycloneDX 1.6 JSON (DIR/<image>.cdx.json).
    #[arg(long, value_enum, default_value = "spdx", requires = "attest_dir")]
    pub sbom_format: crate::publish::supply::Format,
    /// Rebuild the selected images whose SBOM holds a package matching
    /// NAME[@RANGE] (e.g. `openssl@<3.0.15`), and what is built on them,
    /// as if forced (with --pull, on fresh bases). The SBOMs are read from
    /// --attest-dir, else from the registry. Repeatable.
    #[arg(long = "package", value_name = "NAME[@RANGE]")]
    pub packages: Vec<String>,
    /// Sign the provenance and SBOM of every image built as DSSE envelopes
    /// with this key (a PKCS#8 PEM, Ed25519 or ECDSA P-256; when encrypted,
    /// its passphrase is read from STRATA_SIGN_PASSPHRASE or the variable
    /// `build.sign.passphrase_env` names), written beside them in
    /// --attest-dir. Default `build.sign.key`. The key is never shown or copied.
    #[arg(long, value_name = "FILE", requires = "attest_dir")]
    pub sign_key: Option<PathBuf>,
    /// With --push: upload content tags only and move no release tag in the
    /// registry (CI fan-out jobs; run `strata publish` once at the end).
    #[arg(long, requires = "push")]
    pub no_publish: bool,
    /// When the commit a release tag's image was built from is not in the
    /// local history and the commit times cannot tell which is newer, keep
    /// the tag (the default moves it, with a warning).
    #[arg(long)]
    pub keep_on_unknown: bool,
    /// When another run is building the same namespace on the same engine,
    /// fail at once (exit 3) instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub reports: ReportFlags,
    /// Run no image tests (the summary says they were skipped).
    #[arg(long)]
    pub no_tests: bool,
    /// Draw the run as a Gantt chart: FILE.svg, or FILE.html (with hovers).
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
    /// Write {name: {ref, digest}} of every image to FILE, like
    /// `docker buildx bake --metadata-file` (digest: the registry's, with --push).
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Build on this engine, JOBS builds at once (default --jobs); repeat
    /// it to build over several. `docker` is the one DOCKER_HOST (or the
    /// docker context) names; also `unix:///…`, `tcp://HOST:PORT` (TLS with
    /// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH), or `sim:SCRIPT.yaml` (a
    /// simulated engine). Replaces `engines:` in strata.yaml. With more
    /// than one, images pass between engines through `registry:` (each is
    /// pushed to its content tag as soon as it is built, and pulled by
    /// digest where a child is built); an engine that stops answering is
    /// left out and its builds run elsewhere.
    #[arg(long = "engine", value_name = "HOST[=JOBS]", value_parser = engine_spec)]
    pub engines: Vec<Spec>,
}

/// `strata test`'s flags: the reporting flags of `build`.
#[derive(clap::Args, Debug, Clone)]
pub struct TestFlags {
    pub selectors: Vec<String>,
    /// Tests at once [default: build.jobs, else the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    #[command(flatten)]
    pub reports: ReportFlags,
    #[arg(long, value_name = "ENGINE", default_value = "docker", hide = true, value_parser = engine_spec)]
    pub engine: Spec,
}

/// Which image tests a run runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tests {
    /// After each build, and on up-to-date images whose tests have not passed.
    Run,
    /// None (`--no-tests`); the summary says so.
    Skip,
    /// `strata test`: the tests of the selected images, which must be built; nothing is built.
    Only,
}

/// Where the release tags of a pushed run move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// All at once at the end, or none when anything failed (`build.publish: all`).
    Set,
    /// Each image's as soon as it is uploaded (`build.publish: each`).
    Each,
    /// None: content tags only (`--no-publish`, or no `--push`).
    No,
}

/// Everything a run was asked to do, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Builds at once (per engine without its own `=JOBS`).
    pub jobs: usize,
    pub retries: u32,
    pub fail_fast: bool,
    /// `--push`: the set is pushed to the registry.
    pub push: bool,
    /// Content tags are uploaded as images finish: `--push`, or any run
    /// over several engines (the hand-off between them).
    pub upload: bool,
    pub publish: Publish,
    /// Uploads at once.
    pub push_jobs: usize,
    /// The builder asked for; each engine resolves `auto`.
    pub builder: crate::engine::Builder,
    /// Secrets offered to every build (BuildKit), checked readable.
    pub secrets: Vec<crate::engine::Secret>,
    /// SSH agents offered to every build (BuildKit).
    pub ssh: Vec<crate::engine::SshAgent>,
    pub pull: bool,
    pub no_cache: bool,
    pub tests: Tests,
    pub ask: Ask,
    /// Wait for another run's lock (else exit 3 at once).
    pub wait: bool,
    /// The race rule keeps a tag it cannot decide on (`--keep-on-unknown`).
    pub keep_on_unknown: bool,
    /// The engines of the run: `--engine`, else `engines:`, else `docker`.
    pub engines: Vec<Spec>,
    /// `--attest-dir`: where SBOMs go, and their format.
    pub attest: Option<(PathBuf, crate::publish::supply::Format)>,
    /// `--sign-key` (else `build.sign.key`) with --attest-dir, checked loadable.
    pub sign_key: Option<crate::publish::supply::sign::KeyFile>,
    /// How the run's progress is shown (`--progress`, `--quiet`).
    pub progress: progress::Mode,
    pub reports: report::Files,
}

impl Settings {
    /// strata.yaml's values for everything a flag can change, over
    /// `engines` (empty: `engines:` of strata.yaml, else `docker`).
    pub fn new(config: &Config, engines: &[Spec]) -> Result<Settings> {
        let engines = crate::engine::pool::specs(engines, &config.engines);
        if engines.len() > 1 && config.registry.is_empty() && !engines.iter().all(Spec::is_sim) {
            return Err(Error::input(format!(
                "{} engines share the images they build through a registry, and `registry:` is not set",
                engines.len()
            ))
            .help("set `registry:` in strata.yaml (or --set registry=HOST), or build on one engine"));
        }
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let build = &config.build;
        Ok(Settings {
            jobs: build.jobs.unwrap_or(cpus),
            retries: build.retries,
            fail_fast: false,
            push: false,
            upload: engines.len() > 1,
            publish: Publish::No,
            push_jobs: build.push_jobs,
            builder: match (build.builder, build.buildkit) {
                (Some(b), _) => b,
                (None, true) => crate::engine::Builder::BuildKit,
                (None, false) => crate::engine::Builder::Auto,
            },
            secrets: Vec::new(),
            ssh: Vec::new(),
            pull: build.pull,
            no_cache: false,
            tests: Tests::Run,
            ask: Ask::default(),
            wait: true,
            keep_on_unknown: false,
            engines,
            attest: None,
            sign_key: None,
            progress: progress::Mode::Auto,
            reports: report::Files {
                quiet: false,
                logs_dir: None,
                summary: None,
                junit: None,
                metadata: None,
                timeline: None,
                page: None,
            },
        })
    }

    /// `strata build`.
    pub fn build(flags: &BuildFlags, config: &Config, root: &Path) -> Result<Settings> {
        let progress = match flags.quiet {
            true => progress::Mode::Quiet,
            false => flags.reports.progress,
        };
        if let Some(path) = &flags.timeline {
            crate::report::timeline::check_path(path)?;
        }
        let files = [&flags.metadata_file, &flags.timeline];
        let reports = Settings::files(&flags.reports, progress, files, root)?;
        let mut s = Settings::new(config, &flags.engines)?;
        s.reports = reports;
        s.progress = progress;
        s.jobs = flags.jobs.map_or(s.jobs, |j| j as usize);
        s.retries = flags.retries.unwrap_or(s.retries);
        s.fail_fast = flags.fail_fast;
        s.push = flags.push;
        s.upload |= flags.push;
        s.publish = match (flags.push, flags.no_publish, config.build.publish) {
            (false, _, _) | (true, true, _) => Publish::No,
            (true, false, PublishMode::Each) => Publish::Each,
            (true, false, PublishMode::All) => Publish::Set,
        };
        if flags.buildkit {
            s.builder = crate::engine::Builder::BuildKit;
        }
        s.builder = flags.builder.unwrap_or(s.builder);
        s.ssh = crate::commands::ssh::agents(&flags.ssh)?;
        s.pull |= flags.pull;
        s.no_cache = flags.no_cache;
        s.tests = if flags.no_tests {
            Tests::Skip
        } else {
            Tests::Run
        };
        s.ask = Ask {
            force: flags.force,
            no_deps: flags.no_deps,
        };
        s.wait = !flags.no_wait;
        s.keep_on_unknown = flags.keep_on_unknown;
        s.attest = flags
            .attest_dir
            .as_ref()
            .map(|d| (root.join(d), flags.sbom_format));
        let sign = &config.build.sign;
        s.sign_key = (flags.sign_key.as_ref())
            .or(sign.key.as_ref())
            .filter(|_| s.attest.is_some())
            .map(|k| crate::publish::supply::sign::KeyFile {
                path: root.join(k),
                passphrase_env: (sign.passphrase_env.clone())
                    .unwrap_or_else(|| crate::publish::supply::sign::PASSPHRASE_ENV.into()),
            });
        if let Some(key) = &s.sign_key {
            crate::publish::supply::sign::Key::load(key)?;
        }
        Ok(s)
    }

    /// `strata test`: the selected images' tests, no retries, nothing built.
    pub fn test(flags: &TestFlags, config: &Config, root: &Path) -> Result<Settings> {
        let r = &flags.reports;
        let reports = Settings::files(r, r.progress, [&None, &None], root)?;
        let mut s = Settings::new(config, std::slice::from_ref(&flags.engine))?;
        s.reports = reports;
        s.progress = r.progress;
        s.jobs = flags.jobs.map_or(s.jobs, |j| j as usize);
        s.retries = 0;
        s.pull = false;
        s.tests = Tests::Only;
        Ok(s)
    }

    /// `strata deploy`: its images built and pushed as `build --push` does.
    pub fn deploy(config: &Config, progress: progress::Mode) -> Result<Settings> {
        let mut s = Settings::new(config, &[])?;
        s.push = true;
        s.upload = true;
        s.publish = match config.build.publish {
            PublishMode::Each => Publish::Each,
            PublishMode::All => Publish::Set,
        };
        s.progress = progress;
        s.reports.quiet = progress == progress::Mode::Quiet;
        Ok(s)
    }

    /// The secrets of `build.secrets` (and `--secret`), each checked.
    pub fn with_secrets(mut self, config: &Config, root: &Path) -> Result<Settings> {
        self.secrets = secrets(&config.build.secrets, root)?;
        Ok(self)
    }

    /// Whether every engine is simulated (no registry is consulted).
    pub fn simulated(&self) -> bool {
        self.engines.iter().all(Spec::is_sim)
    }
}

/// `build.secrets`, each checked: exactly one of `file` (relative to the
/// tree root, readable) and `env` (set). A missing source is exit 2 before
/// anything builds.
pub fn secrets(
    specs: &std::collections::BTreeMap<String, crate::tree::config::SecretSpec>,
    root: &Path,
) -> Result<Vec<crate::engine::Secret>> {
    use crate::engine::{Secret, SecretSource};
    let mut out = Vec::new();
    for (id, spec) in specs {
        let help = "give each secret `file: PATH` or `env: VAR` (or --secret id=ID,src=FILE)";
        let source = match (&spec.file, &spec.env) {
            (Some(f), None) => {
                let path = root.join(f);
                std::fs::File::open(&path).map_err(|e| {
                    Error::input(format!(
                        "secret `{id}`: cannot read `{}`: {e}",
                        path.display()
                    ))
                    .help("point the secret at a readable file")
                })?;
                SecretSource::File(path)
            }
            (None, Some(var)) => {
                if std::env::var_os(var).is_none() {
                    return Err(Error::input(format!(
                        "secret `{id}`: the environment variable `{var}` is not set"
                    ))
                    .help(format!("export {var}=… before the run")));
                }
                SecretSource::Env(var.clone())
            }
            (Some(_), Some(_)) => {
                return Err(
                    Error::input(format!("secret `{id}` has both `file` and `env`")).help(help),
                )
            }
            (None, None) => {
                return Err(
                    Error::input(format!("secret `{id}` has neither `file` nor `env`")).help(help),
                )
            }
        };
        out.push(Secret {
            id: id.clone(),
            source,
        });
    }
    Ok(out)
}

impl Settings {
    /// Output paths against `root`, each checked writable now: a bad path
    /// is exit 2 before anything is built.
    fn files(
        flags: &ReportFlags,
        progress: progress::Mode,
        [metadata, timeline]: [&Option<PathBuf>; 2],
        root: &Path,
    ) -> Result<report::Files> {
        let file = |p: &Option<PathBuf>| -> Result<Option<PathBuf>> {
            let Some(p) = p else { return Ok(None) };
            if report::is_stdout(p) {
                return Ok(Some(p.clone()));
            }
            let path = root.join(p);
            report::check_writable(&path)?;
            Ok(Some(path))
        };
        Ok(report::Files {
            quiet: progress == progress::Mode::Quiet,
            logs_dir: flags.logs_dir.as_ref().map(|d| root.join(d)),
            summary: file(&flags.summary)?,
            junit: file(&flags.junit)?,
            metadata: file(metadata)?,
            timeline: file(timeline)?,
            page: match &flags.report {
                Some(p) => {
                    let path = root.join(p);
                    report::page::check_path(&path)?;
                    Some(path)
                }
                None => None,
            },
        })
    }
}
