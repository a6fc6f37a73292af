//! What runs builds: a Docker-compatible Engine API behind one trait.
//! `docker` talks to a real engine through bollard; `sim` pretends, with
//! durations and failures from a script, for scheduler tests and benchmarks.
//! Knows nothing of the graph, the plan or progress output.

pub mod docker;
pub mod sim;

use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// One image to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub name: String,
    /// The rendered Dockerfile.
    pub dockerfile: String,
    pub context: PathBuf,
    pub args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// e.g. `linux/amd64`; empty = the engine's own.
    pub platform: String,
    /// Ask the engine to refresh base images first.
    pub pull: bool,
    /// Build with BuildKit instead of the classic builder.
    pub buildkit: bool,
}

/// An image the engine has.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageInfo {
    pub id: String,
    /// `repo:tag` references pointing at it.
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum EngineError {
    /// The engine or registry cannot be reached or refused us: exit 3.
    #[error("{0}")]
    Unreachable(String),
    /// This one operation failed (a RUN step, a push): the image fails.
    #[error("{0}")]
    Failed(String),
}

/// Where build and push output goes, one whole line at a time.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

pub trait Engine: Send + Sync {
    /// Where the engine is, for messages (`unix:///var/run/docker.sock`).
    fn describe(&self) -> String;
    /// Fails when the engine does not answer.
    fn ping(&self) -> BoxFuture<'_, Result<(), EngineError>>;
    /// Build; the image ID on success. Nothing is tagged.
    fn build(&self, request: BuildRequest, log: Log) -> BoxFuture<'_, Result<String, EngineError>>;
    /// Point `reference` at `image_id`.
    fn tag<'a>(
        &'a self,
        image_id: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Fetch `reference` from its registry (refresh a base image).
    fn pull<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Push `reference` to its registry.
    fn push<'a>(&'a self, reference: &'a str, log: Log) -> BoxFuture<'a, Result<(), EngineError>>;
    /// The image a reference points at, if the engine has it.
    fn inspect<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<ImageInfo>, EngineError>>;
}

/// Split `reference` into repository and tag (`latest` when none).
pub fn split_tag(reference: &str) -> (&str, &str) {
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            &reference[last_slash + i + 1..],
        ),
        None => (reference, "latest"),
    }
}

/// The registry host of `reference`, or None for Docker Hub.
pub fn registry_of(reference: &str) -> Option<&str> {
    let (first, rest) = reference.split_once('/')?;
    (!rest.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost"))
        .then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split() {
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b:1"),
            ("127.0.0.1:5000/a/b", "1")
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/a/b"),
            ("127.0.0.1:5000/a/b", "latest")
        );
        assert_eq!(registry_of("127.0.0.1:5000/a/b:1"), Some("127.0.0.1:5000"));
        assert_eq!(registry_of("strata/base:1"), None);
        assert_eq!(registry_of("localhost/base"), Some("localhost"));
    }
}
