//! `strata test`: run the image tests of the selected images, which must
//! be built already with their current inputs; nothing is built.

use crate::commands::session::Session;
use crate::commands::settings::{Settings, TestFlags};
use crate::graph::load::Options;
use crate::util::error::{Code, Result};

pub fn run(opts: &Options, flags: &TestFlags) -> Result<Code> {
    let mut session = Session::open(opts, &flags.selectors, None)?;
    let settings = Settings::test(flags, session.config(), session.root())?;
    Ok(super::build::build(&mut session, &settings)?.0)
}
