//! strata: build whole sets of container images from a tree of Jinja-templated
//! Dockerfiles. The pipeline of DESIGN.md, one folder per stage, in order
//! (see docs/architecture.md):
//! tree → render → graph → plan → execute → publish (+ supply) → report,
//! driven by `commands` (the CLI, settings and session), with the engine
//! behind a trait (`engine`), the hand-offs to other systems
//! (`integrations`) and the shared helpers (`util`).
//! Modules are private; what the integration tests and benchmarks use is
//! re-exported below.

mod commands;
mod engine;
mod execute;
mod graph;
mod integrations;
mod plan;
mod publish;
mod render;
mod report;
mod tree;
mod util;

pub use commands::cli::Cli;
pub use commands::run;
pub use engine::context::{entries as context_entries, Kind as EntryKind};
pub use engine::sim::{Script, SimEngine, Step};
pub use execute::{execute, Event, Observer, Options as RunOptions, Order, Status};
pub use graph::load::{load, Loaded, Options};
pub use plan::fingerprint::{context_inputs, fingerprints, Fingerprint};
pub use plan::inputs::collect as collect_inputs;
pub use plan::{plan, Ask, Item, Known};
pub use util::error::Code;

/// Print an error for people (file, line, the line itself, what to do) and
/// return the exit status of a run.
pub fn exit_status(result: util::error::Result<Code>) -> i32 {
    match result {
        Ok(code) => code.status(),
        Err(err) => {
            report::error(&err);
            err.code().status()
        }
    }
}
