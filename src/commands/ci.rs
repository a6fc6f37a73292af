//! `strata ci SYSTEM`: a pipeline for an existing CI system, one job per
//! image to build (each waiting for its parents' jobs) and one publish
//! job. Without `--all`, only the images the engine and registry lack.

use crate::commands::cli::{Cli, WorkerFlags};
use crate::commands::session::Session;
use crate::commands::settings::Settings;
use crate::engine::pool::Spec;
use crate::integrations::ci::{self, System};
use crate::util::error::{Code, Result};
use std::collections::BTreeSet;

pub fn run(
    cli: &Cli,
    system: System,
    selectors: &[String],
    all: bool,
    flags: &WorkerFlags,
) -> Result<Code> {
    let mut session = Session::open(&cli.options(), selectors, None)?;
    let worker = ci::Worker {
        setup: flags.setup.clone(),
        image: flags.image.clone(),
        runner: flags.runner.clone(),
        login_user: flags.login_user.clone(),
        login_password: flags.login_password.clone(),
        login_credentials: flags.login_credentials.clone(),
        artifacts: !flags.no_artifacts,
        registry: session.config().registry.clone(),
        engine: flags.engine.clone(),
        requests: flags.requests.clone(),
        service_account: flags.service_account.clone(),
        git_url: flags
            .git_url
            .clone()
            .unwrap_or_else(|| origin(session.root())),
        git_revision: (flags.git_revision.clone())
            .or_else(|| crate::util::git::commit_and_time(session.root()).map(|(c, _)| c))
            .unwrap_or_else(|| "HEAD".into()),
    };
    // What cannot reach a job safely is refused before anything is asked.
    let given = ci::Given {
        dir: &cli.dir,
        config: cli.config.as_deref(),
        sets: &cli.sets,
        excludes: &cli.exclude,
        overrides: &cli.overrides,
        devfile: cli.devfile.as_deref(),
        vars: &cli.vars,
        var_files: &cli.var_files,
        selectors,
        worker,
    };
    let inv = ci::Invocation::new(&given, system)?;
    let wanted: BTreeSet<usize> = if all {
        session.scope.selected.iter().copied().collect()
    } else {
        let mut settings = Settings::new(session.config(), &[Spec::docker()])?;
        settings.upload = true;
        session.plan(&settings)?.to_build().map(|i| i.id).collect()
    };
    let jobs = ci::jobs(&session.scope.loaded.graph, &wanted);
    for job in &jobs {
        ci::carried(system, "the image name", &job.name)?;
    }
    if matches!(system, System::Tekton | System::Argo) {
        for record in ci::unplaced(&jobs) {
            crate::report::note(&format!(
                "strata: warning: {record}: no kubernetes.io/arch names its platform, so its task has no node selector and may run on any node"
            ));
        }
    }
    crate::report::out(&ci::emit(system, &jobs, &inv));
    Ok(Code::Success)
}

/// The tree's `origin` remote (without credentials), empty when it has none.
fn origin(root: &std::path::Path) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["remote", "get-url", "origin"])
        .output();
    out.ok()
        .filter(|o| o.status.success())
        .map(|o| crate::util::url::public(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_default()
}
