//! The commands: one small file each, run on a parsed command line. A
//! command resolves its settings, opens a session (or only loads the
//! tree), calls the stages in order and hands what they made to the
//! report. Commands never call an engine and never print themselves.
//! See "Settings, session, command" in docs/architecture.md.
//!
//! Above the stages: the command line (`cli`), the settings resolved from
//! it and strata.yaml once (`settings`), and the session that drives the
//! stages in order (`session`): the front half every command shares
//! (`prepare`), what the engines and the registry hold (`survey`), the
//! run locks (`lock`), and the secrets and SSH agents a build is given
//! (`secrets`, `ssh`). The only place that connects to engines.
//! `watcher` is `strata watch`'s loop: the session planned and run again
//! after each change to the tree.

mod build;
mod ci;
pub mod cli;
mod deploy;
mod holders;
mod lock;
mod plan;
mod prepare;
mod prune;
mod publish;
mod report;
mod secrets;
mod session;
mod settings;
mod show;
mod ssh;
mod survey;
mod test;
mod verify;
mod watch;
mod watcher;

use crate::util::error::{Code, Result};
use cli::{Cli, Command};

/// Run the parsed command line; returns how it ended.
pub fn run(cli: Cli) -> Result<Code> {
    let opts = cli.options();
    match &cli.command {
        Command::List { selectors, json } => show::list(&opts, selectors, *json),
        Command::Graph { selectors, format } => show::graph(&opts, selectors, *format),
        Command::Render { selectors, out } => show::render(&opts, selectors, out.as_deref()),
        Command::Plan(flags) => plan::run(opts, flags),
        Command::Build(flags) => build::run(opts, flags),
        Command::Test(flags) => test::run(&opts, flags),
        Command::Watch(flags) => watch::run(opts, flags),
        Command::Publish {
            selectors,
            keep_on_unknown,
            attest_dir,
            sbom_format,
            report,
            engine,
        } => {
            let attest = attest_dir
                .as_ref()
                .map(|d| (opts.dir.join(d), *sbom_format));
            let page = report.as_ref().map(|p| opts.dir.join(p));
            publish::run(&opts, selectors, engine, *keep_on_unknown, attest, page)
        }
        Command::Prune {
            selectors,
            dry_run,
            yes,
            keep,
        } => prune::prune(&opts, selectors, *dry_run || !*yes, keep),
        Command::Keep { reference } => prune::keep(&opts, reference),
        Command::Ci {
            system,
            selectors,
            all,
            worker,
        } => ci::run(&cli, *system, selectors, *all, worker),
        Command::Deploy {
            out,
            apply,
            progress,
        } => deploy::run(&opts, out.as_deref(), *apply, *progress),
        Command::Affected {
            paths,
            packages,
            attest_dir,
            json,
        } if !packages.is_empty() => {
            holders::affected(&opts, paths, packages, attest_dir.as_deref(), *json)
        }
        Command::Affected { paths, json, .. } => show::affected(&opts, paths, *json),
        Command::Verify {
            reference,
            key,
            attest_dir,
        } => verify::run(&opts, reference, key, attest_dir),
        Command::Timeline { summary, out } => show::timeline(&opts, summary, out),
        Command::Report(args) => report::run(&opts, args),
        Command::Completions { shell } => show::completions(*shell),
        Command::Man => show::man(),
    }
}
