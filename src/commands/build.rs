//! `strata build`: open the session, plan, execute, publish, report.
//! The shape every run takes (`test` and `deploy` run it too).

use crate::error::{Code, Result};
use crate::load::Options;
use crate::progress::Display;
use crate::report::{self, LogFiles, Summary};
use crate::session::Session;
use crate::settings::{BuildFlags, Settings, Tests};

pub fn run(mut opts: Options, flags: &BuildFlags) -> Result<Code> {
    opts.sets.extend(flags.inputs.sets());
    let mut session = Session::open(&opts, &flags.selectors, flags.since.as_deref())?;
    let settings = Settings::build(flags, session.config(), session.root())?
        .with_secrets(session.config(), session.root())?;
    Ok(build(&mut session, &settings)?.0)
}

/// Run a whole build in `session` as `settings` say; how it ended and
/// what happened to every image.
pub(crate) fn build(session: &mut Session, settings: &Settings) -> Result<(Code, Summary)> {
    session.lock(settings)?;
    let mut logs = LogFiles::for_run(settings.reports.logs_dir.as_deref())?;
    let plan = session.plan(settings)?;
    let no_deps = settings.ask.no_deps;
    let mut display = Display::for_plan(&plan, settings.reports.progress, logs.as_mut(), no_deps);
    let mut run = session.execute(&plan, settings, &mut display);
    drop(display);
    session.publish(&plan, &mut run, settings);
    session.remember(&plan, &run);
    let skipped = settings.tests == Tests::Skip;
    let summary = report::summarize(&plan, &run, &session.engine_names, skipped);
    let code = report::close(&summary, &run, &settings.reports, logs);
    Ok((code, summary))
}
