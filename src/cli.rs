//! The command line (clap) and what each command runs.

use crate::build::{self, BuildArgs, PlanArgs};
use crate::error::{Code, Result};
use crate::load::{self, Options};
use crate::plan::Ask;
use crate::{affected, inputs, progress, select, show};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::Write;
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
report file could not be written; 130 interrupted."
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
    /// Move the release tags (`tag`, `tags:`) of a pushed set in the
    /// registry to its content tags: all or nothing, manifests only. The
    /// step a CI fan-out runs once at the end, after its
    /// `build --push --no-publish` jobs. Exit 1, moving nothing, when an
    /// image is not in the registry with its current inputs.
    Publish {
        selectors: Vec<String>,
        #[arg(long, value_name = "ENGINE", default_value = "docker", hide = true)]
        engine: String,
    },
    /// Draw a run again from its summary: `strata timeline s.json -o run.svg` (or .html).
    Timeline {
        /// A summary written by `strata build --summary FILE`.
        summary: PathBuf,
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: PathBuf,
    },
    /// Print a shell completion script: `strata completions bash > /etc/bash_completion.d/strata`.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff): `strata man > strata.1 && man ./strata.1`.
    Man,
    /// What `build` would build, and why (asks the engine what exists).
    Plan {
        selectors: Vec<String>,
        #[command(flatten)]
        inputs: InputFlags,
        /// JSON: [{name, ref, fingerprint, action, reasons}].
        #[arg(long)]
        json: bool,
        /// Plan to rebuild the selection regardless.
        #[arg(long)]
        force: bool,
        /// Leave stale parents out.
        #[arg(long)]
        no_deps: bool,
        /// Only images whose inputs changed since git revision REV, and what is built on them.
        #[arg(long, value_name = "REV")]
        since: Option<String>,
        /// Refresh base images from their registries first (also `build.pull: true`).
        #[arg(long)]
        pull: bool,
        /// Ask these engines what exists (repeatable; as for `build`).
        #[arg(long = "engine", value_name = "HOST[=JOBS]", value_parser = engine_spec)]
        engines: Vec<crate::engine::pool::Spec>,
    },
    /// The images (and everything built on them) that a change to PATHs would rebuild.
    Affected {
        /// Paths relative to the tree root (files or folders).
        #[arg(required = true)]
        paths: Vec<String>,
        /// JSON: a list of image names.
        #[arg(long)]
        json: bool,
    },
    /// Build images in dependency order, in parallel, on the Docker engine.
    Build(BuildCommand),
    /// Delete old tags from the registry by `retention:` in strata.yaml.
    ///
    /// Tags older than `max_age` that match no `keep` glob (and no
    /// `keep-…` tag of `strata keep`), never a digest a kept tag shares.
    /// Prints the table of what goes and why; on a terminal that is all it
    /// does unless --yes is given.
    Prune {
        selectors: Vec<String>,
        /// Print the table only; delete nothing.
        #[arg(long, conflicts_with = "yes")]
        dry_run: bool,
        /// Delete without asking, even on a terminal.
        #[arg(long)]
        yes: bool,
        /// Also keep tags matching GLOB (repeatable), besides `retention.keep`.
        #[arg(long = "keep", value_name = "GLOB")]
        keep: Vec<String>,
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
    /// Print a pipeline for GitLab, GitHub Actions, Jenkins or Zuul.
    ///
    /// One job per image to
    /// build (`strata build NAME --no-deps --push --no-publish`), each
    /// waiting for its parents' jobs, then one `strata publish` job. Without
    /// --all, only images the engine and registry lack (asks them).
    Ci {
        system: crate::ci::System,
        selectors: Vec<String>,
        /// A job for every selected image, built or not (asks nothing).
        #[arg(long)]
        all: bool,
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
    /// Run the image tests of images that are built already.
    ///
    /// The tests (`tests:` in image.yaml, `build.tests`) run again; nothing
    /// is built. Exit 1 when a test fails.
    Test(TestCommand),
}

/// `strata test`: the reporting flags of `build`.
#[derive(clap::Args, Debug)]
pub struct TestCommand {
    selectors: Vec<String>,
    /// Tests at once [default: build.jobs, else the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    #[command(flatten)]
    reports: ReportFlags,
    #[arg(long, value_name = "ENGINE", default_value = "docker", hide = true)]
    engine: String,
}

/// What `build` and `test` show and write about a run.
#[derive(clap::Args, Debug)]
pub struct ReportFlags {
    #[arg(long, value_enum, default_value_t = progress::Mode::Auto)]
    progress: progress::Mode,
    /// Write DIR/<image>.log with the whole output of each image.
    #[arg(long, value_name = "DIR")]
    logs_dir: Option<PathBuf>,
    /// Write the summary JSON to FILE.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Write JUnit XML to FILE: one test case per image test (and, for
    /// `build`, one per image).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

/// Build inputs given on the command line, as `docker build` and
/// `buildx bake` take them; the same as `--set build.args.KEY=VALUE` and
/// `--set build.platform=P` (so `plan` given the same flags agrees).
#[derive(clap::Args, Debug, Clone)]
pub struct InputFlags {
    /// A build arg for every image (repeatable); overrides `build.args`.
    #[arg(long = "build-arg", value_name = "KEY=VALUE", value_parser = key_value)]
    build_args: Vec<String>,
    /// The platform to build for, e.g. `linux/amd64` (one); overrides `build.platform`.
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    /// The stage to build in the images that have one of that name and no
    /// `target:` of their own (sets `build.target`); the others build their last.
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// The network for RUN steps, e.g. `host` or `none` (sets `build.network`).
    #[arg(long, value_name = "MODE")]
    network: Option<String>,
}

impl InputFlags {
    fn sets(&self) -> impl Iterator<Item = String> + '_ {
        let args = self.build_args.iter().map(|kv| format!("build.args.{kv}"));
        args.chain(self.platform.iter().map(|p| format!("build.platform={p}")))
            .chain(self.target.iter().map(|t| format!("build.target={t}")))
            .chain(self.network.iter().map(|n| format!("build.network={n}")))
    }
}

fn key_value(s: &str) -> std::result::Result<String, String> {
    match s.split_once('=') {
        Some((k, _)) if !k.is_empty() => Ok(s.to_string()),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[derive(clap::Args, Debug)]
pub struct BuildCommand {
    selectors: Vec<String>,
    #[command(flatten)]
    inputs: InputFlags,
    /// Do not use the engine's layer cache for the images built (every step
    /// runs afresh; add --force to rebuild up-to-date images too).
    #[arg(long)]
    no_cache: bool,
    /// Print only failed images and the result (same as --progress quiet).
    #[arg(short = 'q', long, conflicts_with = "progress")]
    quiet: bool,
    /// Builds at once [default: build.jobs, else the number of CPUs].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    /// Upload what the registry lacks under content tags (`repo:fp-…`), then
    /// move the release tags there once every image is done (`build.publish`).
    /// Credentials from the Docker config.
    #[arg(long)]
    push: bool,
    /// Rebuild the selection even when it is up to date (stale parents are built too).
    #[arg(long)]
    force: bool,
    /// Build only the selection, on whatever parent images exist.
    #[arg(long)]
    no_deps: bool,
    /// Stop starting builds at the first failure and cancel running ones.
    #[arg(long)]
    fail_fast: bool,
    /// Retry a failed build N times [default: build.retries].
    #[arg(long, value_name = "N")]
    retries: Option<u32>,
    /// Refresh base images from their registries first (also `build.pull: true`);
    /// a new base rebuilds every image on it.
    #[arg(long)]
    pull: bool,
    /// Only images whose inputs changed since git revision REV, and what is built on them.
    #[arg(long, value_name = "REV")]
    since: Option<String>,
    /// Build with BuildKit instead of the classic builder (also `build.buildkit: true`).
    #[arg(long)]
    buildkit: bool,
    /// With --push: upload content tags only and move no release tag in the
    /// registry (CI fan-out jobs; run `strata publish` once at the end).
    #[arg(long, requires = "push")]
    no_publish: bool,
    /// When another run is building the same namespace on the same engine,
    /// fail at once (exit 3) instead of waiting for it.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    reports: ReportFlags,
    /// Run no image tests (the summary says they were skipped).
    #[arg(long)]
    no_tests: bool,
    /// Draw the run as a Gantt chart: FILE.svg, or FILE.html (with hovers).
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
    /// Write {name: {ref, digest}} of every image to FILE, like
    /// `docker buildx bake --metadata-file` (digest: the registry's, with --push).
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
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
    engines: Vec<crate::engine::pool::Spec>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Tree,
    Dot,
    Mermaid,
    Json,
}

impl Cli {
    fn options(&self) -> Options {
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

/// Run the parsed command line; returns how it ended.
pub fn run(cli: Cli) -> Result<Code> {
    let mut opts = cli.options();
    let out = match &cli.command {
        Command::Build(b) => {
            opts.sets.extend(b.inputs.sets());
            let args = BuildArgs {
                selectors: b.selectors.clone(),
                jobs: b.jobs.map(|j| j as usize),
                push: b.push,
                ask: Ask {
                    force: b.force,
                    no_deps: b.no_deps,
                },
                fail_fast: b.fail_fast,
                retries: b.retries,
                pull: b.pull,
                buildkit: b.buildkit,
                progress: if b.quiet {
                    progress::Mode::Quiet
                } else {
                    b.reports.progress
                },
                no_cache: b.no_cache,
                logs_dir: b.reports.logs_dir.clone(),
                summary: b.reports.summary.clone(),
                junit: b.reports.junit.clone(),
                metadata_file: b.metadata_file.clone(),
                timeline: b.timeline.clone(),
                engines: b.engines.clone(),
                since: b.since.clone(),
                no_wait: b.no_wait,
                no_publish: b.no_publish,
                no_tests: b.no_tests,
                test_only: false,
            };
            return build::run(&opts, &args);
        }
        Command::Prune {
            selectors,
            dry_run,
            yes,
            keep,
        } => {
            let args = crate::retention::PruneArgs {
                selectors: selectors.clone(),
                dry_run: *dry_run,
                yes: *yes,
                keep: keep.clone(),
            };
            return crate::retention::prune(&opts, &args);
        }
        Command::Keep { reference } => crate::retention::keep(&opts, reference)?,
        Command::Ci {
            system,
            selectors,
            all,
        } => {
            let jobs: Vec<crate::ci::Job> = build::jobs(&opts, selectors, *all)?
                .into_iter()
                .map(|(name, parents)| crate::ci::Job { name, parents })
                .collect();
            let inv = crate::ci::Invocation::new(
                &cli.dir,
                cli.config.as_deref(),
                &cli.sets,
                &cli.exclude,
                selectors,
            );
            crate::ci::emit(*system, &jobs, &inv)
        }
        Command::Deploy {
            out,
            apply,
            progress,
        } => {
            let args = crate::deploy::DeployArgs {
                out: out.clone(),
                apply: *apply,
                progress: *progress,
            };
            return crate::deploy::run(&opts, &args);
        }
        Command::Test(t) => {
            let args = BuildArgs {
                selectors: t.selectors.clone(),
                jobs: t.jobs.map(|j| j as usize),
                retries: Some(0),
                progress: t.reports.progress,
                logs_dir: t.reports.logs_dir.clone(),
                summary: t.reports.summary.clone(),
                junit: t.reports.junit.clone(),
                engines: vec![crate::engine::pool::Spec::parse(&t.engine)?],
                test_only: true,
                ..BuildArgs::default()
            };
            return build::run(&opts, &args);
        }
        Command::Plan {
            selectors,
            inputs,
            json,
            force,
            no_deps,
            since,
            pull,
            engines,
        } => {
            opts.sets.extend(inputs.sets());
            let args = PlanArgs {
                pull: *pull,
                selectors,
                json: *json,
                ask: Ask {
                    force: *force,
                    no_deps: *no_deps,
                },
                engines,
                since: since.as_deref(),
            };
            build::show_plan(&opts, &args)?
        }
        Command::Timeline { summary, out } => {
            let root = &opts.dir;
            let bars = crate::timeline::read(&root.join(summary))?;
            crate::timeline::write(&root.join(out), &bars)?;
            String::new()
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "strata", &mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| {
                    crate::error::Error::input(format!("cannot render the manual: {e}"))
                })?;
            String::from_utf8_lossy(&out).into_owned()
        }
        Command::Publish { selectors, engine } => {
            return build::publish(&opts, selectors, engine);
        }
        Command::Affected { paths, json } => {
            let loaded = load::load(&opts)?;
            let inputs = inputs::collect(&loaded)?;
            let hit = affected::affected(&loaded.graph, &inputs, paths);
            let names: Vec<&str> = loaded
                .graph
                .order
                .iter()
                .filter(|i| hit.contains(i))
                .map(|&i| loaded.graph.nodes[i].name.as_str())
                .collect();
            if *json {
                serde_json::to_string_pretty(&names).unwrap_or_default() + "\n"
            } else {
                names.iter().map(|n| format!("{n}\n")).collect()
            }
        }
        Command::List { selectors, json } => {
            let loaded = load::load(&opts)?;
            let sel = select::select(&loaded.graph, &loaded.tree.config, selectors)?;
            show::list(&loaded.graph, &sel, *json)
        }
        Command::Graph { selectors, format } => {
            let loaded = load::load(&opts)?;
            let sel = select::select(&loaded.graph, &loaded.tree.config, selectors)?;
            let format = format
                .to_possible_value()
                .expect("named")
                .get_name()
                .to_string();
            show::graph(&loaded.graph, &sel, &format)
        }
        Command::Render { selectors, out } => {
            let loaded = load::load(&opts)?;
            let sel = select::select(&loaded.graph, &loaded.tree.config, selectors)?;
            let out = out.as_ref().map(|o| loaded.tree.root.join(o));
            show::render(&loaded.rendered, &sel, out.as_deref())?
        }
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`strata list | head`) is not an error.
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush());
    Ok(Code::Success)
}

/// `--engine HOST[=JOBS]`.
fn engine_spec(text: &str) -> std::result::Result<crate::engine::pool::Spec, String> {
    crate::engine::pool::Spec::parse(text).map_err(|e| match e.help {
        Some(help) => format!("{}\n  help: {help}", e.message),
        None => e.message,
    })
}
