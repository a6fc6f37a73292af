//! `strata build`: open the session, plan, execute, publish, report.
//! The shape every run takes (`test` and `deploy` run it too).

use crate::commands::session::Session;
use crate::commands::settings::{BuildFlags, Settings, Tests};
use crate::graph::load::Options;
use crate::plan::Plan;
use crate::report::progress::Display;
use crate::report::{self, LogFiles, Summary};
use crate::util::error::{Code, Result};

pub fn run(mut opts: Options, flags: &BuildFlags) -> Result<Code> {
    opts.sets.extend(flags.inputs.sets());
    let mut selectors = flags.selectors.clone();
    if !flags.packages.is_empty() {
        let holders = package_holders(&opts, flags)?;
        if holders.is_empty() {
            report::note("strata: no image's SBOM holds such a package; nothing to build");
            return Ok(Code::Success);
        }
        selectors = holders.into_iter().map(|h| format!("{h}+")).collect();
    }
    let mut session = Session::open(&opts, &selectors, flags.since.as_deref())?;
    let mut settings = Settings::build(flags, session.config(), session.root())?
        .with_secrets(session.config(), session.root())?;
    // A rebuild for a package update must fetch it again: not from the cache.
    settings.ask.force |= !flags.packages.is_empty();
    settings.no_cache |= !flags.packages.is_empty();
    Ok(build(&mut session, &settings)?.0)
}

/// `--package`: the images whose SBOM (in --attest-dir, else in the
/// registry) holds a match, among the selected ones.
fn package_holders(opts: &Options, flags: &BuildFlags) -> Result<Vec<String>> {
    let dir = flags.attest_dir.as_deref();
    let found = super::holders::find(opts, &flags.selectors, &flags.packages, dir)?;
    for (image, versions) in &found {
        report::note(&format!("strata: {image} holds {}", versions.join(", ")));
    }
    Ok(found.into_iter().map(|(i, _)| i).collect())
}

/// Run a whole build in `session` as `settings` say; how it ended and
/// what happened to every image.
pub(crate) fn build(session: &mut Session, settings: &Settings) -> Result<(Code, Summary)> {
    session.lock(settings)?;
    let plan = session.plan(settings)?;
    run_plan(session, settings, &plan)
}

/// Everything after the plan: execute, publish, attest, report.
pub(crate) fn run_plan(
    session: &mut Session,
    settings: &Settings,
    plan: &Plan,
) -> Result<(Code, Summary)> {
    let mut logs = LogFiles::for_run(settings.reports.logs_dir.as_deref())?;
    let no_deps = settings.ask.no_deps;
    let before = session.released_before(plan, settings);
    let mut display = Display::for_plan(plan, settings.progress, logs.as_mut(), no_deps);
    let mut run = session.execute(plan, settings, &mut display);
    drop(display);
    session.publish(plan, &mut run, settings);
    session.remember(plan, &run);
    let sboms = session.attest(plan, &run, settings);
    let skipped = settings.tests == Tests::Skip;
    let mut summary = report::summarize(plan, &run, &session.engine_names, skipped);
    summary.commit = crate::util::git::commit_and_time(session.root()).map(|(c, _)| c);
    summary.name_sboms(&sboms);
    session.previous_sboms(plan, &before, &mut summary, settings);
    session.name_build_modes(plan, &mut summary);
    session.provenance(plan, &mut summary, settings);
    let moved: Vec<(usize, String)> = (plan.items.iter().zip(&summary.images).enumerate())
        .filter(|(_, (item, image))| image.pushed.contains(&item.reference))
        .filter_map(|(i, (_, image))| Some((i, image.digest.clone()?)))
        .collect();
    for (i, attached) in session.attach(plan, &moved, settings) {
        summary.images[i].attestations = attached;
    }
    let code = report::close(&summary, &run, &settings.reports, logs);
    Ok((code, summary))
}
