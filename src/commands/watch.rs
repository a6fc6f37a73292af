//! `strata watch`: build the selection, then rebuild and test what each
//! saved edit affects until Ctrl-C. The loop lives in `watcher`.

use crate::commands::cli::WatchFlags;
use crate::commands::watcher::{self, Watch};
use crate::graph::load::Options;
use crate::util::error::{Code, Error, Result};

pub fn run(mut opts: Options, flags: &WatchFlags) -> Result<Code> {
    let build = &flags.build;
    if build.push {
        return Err(
            Error::input("`strata watch` never publishes: --push is refused here")
                .help("watch to get the images right, then push them with `strata build --push`"),
        );
    }
    if !build.packages.is_empty() {
        return Err(
            Error::input("--package is for `strata build`, not `strata watch`")
                .help("watch the images that hold it by name: `strata watch IMAGE+`"),
        );
    }
    opts.sets.extend(build.inputs.sets());
    let watch = Watch {
        debounce: flags.debounce,
        run: flags.run.clone().map(|image| (image, flags.cmd.clone())),
    };
    watcher::run(&opts, build, &watch)
}
