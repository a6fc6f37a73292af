//! Several engines in one run: which ones (`engines:` in strata.yaml or
//! `--engine HOST[=JOBS]`), each with its own number of build slots, and
//! connecting to them. An engine that does not answer at the start is named
//! and left out; the run goes on with the others.

use super::{Engine, EngineError};
use crate::util::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// One engine of a run, as asked for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `docker` (DOCKER_HOST, the docker context, else the default socket),
    /// `unix:///…`, `tcp://HOST:PORT`, `https://…`, or `sim:SCRIPT.yaml`.
    pub host: String,
    /// Builds at once on it; default `--jobs` (or `build.jobs`, or the CPUs here).
    #[serde(default)]
    pub jobs: Option<usize>,
    /// The platforms it builds (`[linux/amd64, linux/arm64]`, the others
    /// emulated); default its own only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

impl Spec {
    /// `HOST[=JOBS]`, as `--engine` takes it.
    pub fn parse(text: &str) -> Result<Spec> {
        let bad = |why: &str| {
            Error::input(format!("--engine `{text}`: {why}"))
                .help("give `--engine HOST[=JOBS]`, e.g. `--engine unix:///var/run/docker.sock=2` or `--engine tcp://10.0.0.12:2376=4`")
        };
        let (host, jobs) = match text.rsplit_once('=') {
            Some((host, n)) if !n.contains('/') && !n.contains(':') => {
                let jobs = n
                    .parse::<usize>()
                    .ok()
                    .filter(|&j| j > 0)
                    .ok_or_else(|| bad(&format!("`{n}` is not a number of builds above 0")))?;
                (host, Some(jobs))
            }
            _ => (text, None),
        };
        if host.is_empty() {
            return Err(bad("no engine address"));
        }
        Ok(Spec {
            host: host.to_string(),
            jobs,
            platforms: Vec::new(),
        })
    }

    /// The engine `DOCKER_HOST` (or the docker context) names.
    pub fn docker() -> Spec {
        Spec {
            host: "docker".into(),
            jobs: None,
            platforms: Vec::new(),
        }
    }

    pub fn is_sim(&self) -> bool {
        self.host.starts_with("sim:")
    }
}

/// One engine of the pool, connected.
#[derive(Clone)]
pub struct Member {
    /// The engine's address (or `sim:PATH`), as the summary and messages name it.
    pub name: String,
    pub engine: Arc<dyn Engine>,
    /// Builds at once on it.
    pub jobs: usize,
    /// The platforms it builds: its spec's, else its own and those it can
    /// run emulated (empty: unknown, as the simulated engine's).
    pub platforms: Vec<String>,
    /// Those of `platforms` it builds emulated (not its own).
    pub emulated: Vec<String>,
    /// Its platforms are listed in its spec: never probed.
    pub listed: bool,
    /// The platforms a probe build was tried for (`probe`), either way.
    pub probed: Vec<String>,
}

impl Member {
    /// Whether it builds for `platform` (empty: the engine's own, always).
    /// `linux/arm64` and `linux/arm64/v8` are one platform.
    pub fn builds(&self, platform: &str) -> bool {
        platform.is_empty()
            || self.platforms.is_empty()
            || self.platforms.iter().any(|p| same_platform(p, platform))
    }

    /// Whether it builds `platform` emulated rather than natively.
    pub fn emulates(&self, platform: &str) -> bool {
        !platform.is_empty() && self.emulated.iter().any(|p| same_platform(p, platform))
    }
}

/// `linux/arm64` and `linux/arm64/v8` are one platform.
pub fn same_platform(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

/// The engines of a run: those on the command line, else `engines:` in
/// strata.yaml, else the one `docker` names.
pub fn specs(cli: &[Spec], config: &[Spec]) -> Vec<Spec> {
    if !cli.is_empty() {
        cli.to_vec()
    } else if !config.is_empty() {
        config.to_vec()
    } else {
        vec![Spec::docker()]
    }
}

/// The name of the engine `spec` names, for locks, messages and the summary.
pub fn name(spec: &Spec, root: &Path) -> String {
    if spec.host == "docker" || spec.is_sim() {
        super::identity(&spec.host, root)
    } else {
        crate::util::url::shown(&spec.host)
    }
}

/// The key of the run lock of the engine `spec` names: its name, with a
/// `unix://` socket's path resolved (`unix:////var/run/../run/docker.sock`
/// and a symlinked `/var/run` are the same engine as `unix:///run/docker.sock`).
pub fn lock_key(spec: &Spec, root: &Path) -> String {
    let name = name(spec, root);
    match name.strip_prefix("unix://") {
        Some(path) => match std::fs::canonicalize(path) {
            Ok(real) => format!("unix://{}", real.display()),
            Err(_) => name,
        },
        None => name,
    }
}

/// Connect to every engine. With one, its failure is the run's (exit 3);
/// with several, each that does not answer is named on stderr and left
/// out, and only when none answers is it exit 3.
pub async fn connect(specs: &[Spec], root: &Path, jobs: usize) -> Result<Vec<Member>> {
    let tries = specs.iter().map(|spec| async move {
        let engine = connect_one(spec, root).await;
        (spec, engine)
    });
    let mut results = futures_util::future::join_all(tries).await;
    if results.len() == 1 {
        let (spec, engine) = results.remove(0);
        let engine = engine?;
        let (platforms, emulated) = platforms(spec, engine.as_ref()).await;
        return Ok(vec![Member {
            name: name(spec, root),
            platforms,
            emulated,
            engine,
            jobs: spec.jobs.unwrap_or(jobs),
            listed: !spec.platforms.is_empty(),
            probed: Vec::new(),
        }]);
    }
    let mut members = Vec::new();
    let mut lost = Vec::new();
    for (spec, engine) in results {
        match engine {
            Ok(engine) => {
                let (platforms, emulated) = platforms(spec, engine.as_ref()).await;
                members.push(Member {
                    name: name(spec, root),
                    platforms,
                    emulated,
                    engine,
                    jobs: spec.jobs.unwrap_or(jobs),
                    listed: !spec.platforms.is_empty(),
                    probed: Vec::new(),
                })
            }
            Err(e) => {
                eprintln!(
                    "strata: engine {} left out of this run: {}",
                    name(spec, root),
                    e.message
                );
                lost.push(name(spec, root));
            }
        }
    }
    if members.is_empty() {
        return Err(Error::engine(format!(
            "none of the {} engines answers: {}",
            lost.len(),
            lost.join(", ")
        ))
        .help(
            "start them, or name others with --engine HOST[=JOBS] (or `engines:` in strata.yaml)",
        ));
    }
    Ok(members)
}

/// The last way to learn that an engine builds `platform` emulated, when
/// none of the run's does by what they tell: a one-step build from `base`
/// (an image of that platform) on each engine whose platforms are not
/// listed, once per engine, which keeps the verdict (a watch keeps its
/// engines from run to run). Said on stderr, as it costs a build.
pub async fn probe(members: &mut [Member], platform: &str, base: &str) {
    if members.iter().any(|m| m.builds(platform)) {
        return;
    }
    let untried = |m: &&mut Member| !m.listed && !m.probed.iter().any(|p| p == platform);
    for m in members.iter_mut().filter(untried) {
        m.probed.push(platform.to_string());
        crate::report::note(&format!(
            "strata: {} tells of no {platform} emulation; trying a one-step build from {base}",
            m.name
        ));
        if m.engine.probe_platform(platform, base).await {
            m.platforms.push(platform.to_string());
            m.emulated.push(platform.to_string());
        }
    }
}

/// The platforms `spec`'s engine builds, and which of them emulated:
/// those listed (an explicit list wins), else its own and every platform
/// it can run emulated.
async fn platforms(spec: &Spec, engine: &dyn Engine) -> (Vec<String>, Vec<String>) {
    let native = engine.native_platform().await;
    if !spec.platforms.is_empty() {
        let emulated = (spec.platforms.iter())
            .filter(|p| native.as_deref().is_some_and(|n| !same_platform(n, p)))
            .cloned()
            .collect();
        return (spec.platforms.clone(), emulated);
    }
    let Some(native) = native else {
        return (Vec::new(), Vec::new());
    };
    let emulated = engine.emulated_platforms().await;
    let all = std::iter::once(native)
        .chain(emulated.iter().cloned())
        .collect();
    (all, emulated)
}

async fn connect_one(spec: &Spec, root: &Path) -> Result<Arc<dyn Engine>> {
    if spec.host == "docker" || spec.is_sim() {
        return super::connect(&spec.host, root).await;
    }
    let timeout = super::answer_timeout()?;
    let end = super::endpoint::for_host(spec.host.clone()).map_err(super::unreachable)?;
    let engine = super::docker::DockerEngine::connect_to(end, timeout)
        .await
        .map_err(super::unreachable)?
        .with_push_idle(super::push_idle_timeout()?);
    tokio::time::timeout(timeout, engine.ping())
        .await
        .map_err(|_| {
            super::unreachable(EngineError::Unreachable(format!(
                "the Docker engine at `{}` did not answer a ping within {} s",
                crate::util::url::shown(&spec.host),
                timeout.as_secs()
            )))
        })?
        .map_err(super::unreachable)?;
    Ok(Arc::new(engine))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_read_with_their_slots() {
        let s = Spec::parse("tcp://10.0.0.12:2376=4").unwrap();
        assert_eq!((s.host.as_str(), s.jobs), ("tcp://10.0.0.12:2376", Some(4)));
        let s = Spec::parse("unix:///var/run/docker.sock").unwrap();
        assert_eq!(
            (s.host.as_str(), s.jobs),
            ("unix:///var/run/docker.sock", None)
        );
        let e = Spec::parse("tcp://h:2376=0").unwrap_err();
        assert!(e.message.contains("above 0"), "{}", e.message);
        let e = Spec::parse("=2").unwrap_err();
        assert!(e.message.contains("no engine address"), "{}", e.message);
    }

    #[test]
    fn an_engine_builds_its_platforms_and_their_variants() {
        let m = |platforms: &[&str]| Member {
            name: String::new(),
            engine: Arc::new(crate::engine::sim::SimEngine::new(Default::default())),
            jobs: 1,
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
            emulated: Vec::new(),
            listed: true,
            probed: Vec::new(),
        };
        let amd = m(&["linux/amd64"]);
        assert!(amd.builds("linux/amd64") && amd.builds(""));
        assert!(!amd.builds("linux/arm64"));
        let both = m(&["linux/amd64", "linux/arm64"]);
        assert!(both.builds("linux/arm64/v8"));
        assert!(m(&[]).builds("linux/s390x"), "unknown: not refused");
    }
}
