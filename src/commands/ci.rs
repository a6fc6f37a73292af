//! `strata ci SYSTEM`: a pipeline for an existing CI system, one job per
//! image to build (each waiting for its parents' jobs) and one publish
//! job. Without `--all`, only the images the engine and registry lack.

use crate::ci::{self, System};
use crate::cli::Cli;
use crate::engine::pool::Spec;
use crate::error::{Code, Result};
use crate::session::Session;
use crate::settings::Settings;
use std::collections::BTreeSet;

pub fn run(cli: &Cli, system: System, selectors: &[String], all: bool) -> Result<Code> {
    let mut session = Session::open(&cli.options(), selectors, None)?;
    let wanted: BTreeSet<usize> = if all {
        session.scope.selected.iter().copied().collect()
    } else {
        let mut settings = Settings::new(session.config(), &[Spec::docker()])?;
        settings.upload = true;
        session.plan(&settings)?.to_build().map(|i| i.id).collect()
    };
    let jobs = ci::jobs(&session.scope.loaded.graph, &wanted);
    let inv = ci::Invocation::new(
        &cli.dir,
        cli.config.as_deref(),
        &cli.sets,
        &cli.exclude,
        selectors,
    );
    crate::report::out(&ci::emit(system, &jobs, &inv));
    Ok(Code::Success)
}
