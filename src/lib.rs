//! strata: build whole sets of container images from a tree of Jinja-templated
//! Dockerfiles. The pipeline of DESIGN.md, one module per stage:
//! config → discover → render → dockerfile (parse) → graph → select → …

pub mod affected;
pub mod build;
pub mod cli;
pub mod config;
pub mod context;
pub mod discover;
pub mod dockerfile;
pub mod dockerignore;
pub mod engine;
pub mod error;
pub mod execute;
pub mod fingerprint;
pub mod graph;
pub mod load;
pub mod plan;
pub mod progress;
pub mod render;
pub mod report;
pub mod select;
pub mod show;

/// Print an error for people (file, line, the line itself, what to do) and
/// return the exit code of a run.
pub fn exit_code(result: error::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(err) => {
            let code = err.exit_code();
            let color = std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let handler = miette::GraphicalReportHandler::new_themed(if color {
                miette::GraphicalTheme::unicode()
            } else {
                miette::GraphicalTheme::unicode_nocolor()
            })
            .with_links(false)
            .with_wrap_lines(false);
            let mut text = String::new();
            if handler.render_report(&mut text, &err).is_err() {
                text = format!("error: {err}");
            }
            eprint!("{text}");
            code
        }
    }
}
