//! `strata deploy`: build and push the image components of the devfiles'
//! default deploy commands (as `build --push`), then print (or write, or
//! `kubectl apply`) their manifests with every built image pinned by digest.

use crate::commands::session::Session;
use crate::commands::settings::Settings;
use crate::graph::load::{self, Options};
use crate::util::error::{Code, Result};
use crate::{commands::prepare, integrations::deploy, report, report::progress};
use std::path::Path;

pub fn run(opts: &Options, out: Option<&Path>, apply: bool, mode: progress::Mode) -> Result<Code> {
    let loaded = load::load(opts)?;
    let root = loaded.tree.root.clone();
    let steps = deploy::steps(&loaded, apply)?;
    let (images, manifests) = (
        steps.images,
        steps.manifests.into_iter().cloned().collect::<Vec<_>>(),
    );
    let session = if images.is_empty() {
        None
    } else {
        let mut session = Session::of(prepare::narrow(loaded, &images, None)?)?;
        let settings = Settings::deploy(session.config(), mode)?
            .with_secrets(session.config(), session.root())?;
        let (code, summary) = super::build::build(&mut session, &settings)?;
        if code != Code::Success {
            report::note("strata: deploy stopped: the images did not all build and push; no manifest was written");
            return Ok(code);
        }
        Some((session, summary))
    };
    let pinned = match &session {
        Some((s, summary)) => deploy::pins(&s.scope.loaded, summary),
        None => Default::default(),
    };
    let manifests: Vec<&crate::tree::devfile::Manifest> = manifests.iter().collect();
    let files = deploy::manifests(&manifests, &pinned)?;
    let all: String = files.iter().map(|(_, text)| text.as_str()).collect();
    if let Some(dir) = out {
        for path in deploy::write(&root.join(dir), &files)? {
            report::note(&format!("strata: wrote {}", path.display()));
        }
    }
    if apply {
        return deploy::apply(&all);
    }
    if out.is_none() {
        report::out(&all);
    }
    Ok(Code::Success)
}
