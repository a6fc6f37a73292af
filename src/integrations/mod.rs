//! Other systems strata hands a set to, after the stages: the CI
//! pipelines `strata ci` writes (`ci`: one job per image, parents first,
//! then one publish job), and a devfile's deploy step with the built
//! images pinned by digest (`deploy`). Takes the graph, or a finished
//! run's summary; gives files for the other system.
//! Knows nothing of engines or of how a build runs.

pub mod ci;
pub mod deploy;
