//! `strata plan`: what `build` would build, and why (asks the engines and
//! the registry what exists; builds nothing).

use crate::commands::cli::PlanFlags;
use crate::commands::session::Session;
use crate::commands::settings::Settings;
use crate::graph::load::Options;
use crate::plan::Ask;
use crate::util::error::{Code, Result};
use crate::{report, report::show};

pub fn run(mut opts: Options, flags: &PlanFlags) -> Result<Code> {
    opts.sets.extend(flags.inputs.sets());
    let mut session = Session::open(&opts, &flags.selectors, flags.since.as_deref())?;
    let mut settings = Settings::new(session.config(), &flags.engines)?
        .with_secrets(session.config(), session.root())?;
    settings.ask = Ask {
        force: flags.force,
        no_deps: flags.no_deps,
    };
    settings.pull |= flags.pull;
    let plan = session.plan(&settings)?;
    // What devfiles hold that strata does not build, and who needs root.
    let notes = show::plan_notes(&session.scope.loaded, &plan);
    report::out(&show::plan(&plan, flags.json));
    match flags.json {
        true if !notes.is_empty() => report::note(notes.trim_end_matches('\n')),
        true => {}
        false => report::out(&notes),
    }
    Ok(Code::Success)
}
