//! A simulated engine: builds take the time a script says and fail where it
//! says; images live in memory. For scheduler tests and benchmarks at scale,
//! never a stand-in for the real engine in end-to-end tests.
//!
//! Script (YAML), every key optional:
//! ```yaml
//! default_ms: 10
//! images:
//!   base: {ms: 200}
//!   flaky: {ms: 50, fail_times: 1}   # fails once, then builds
//!   broken: {ms: 5, fail: true}
//!   remote: {push_ms: 300, push_fail: false}
//! ```

use super::{BuildRequest, Engine, EngineError, ImageInfo, Log};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Script {
    pub default_ms: u64,
    pub images: BTreeMap<String, Step>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Step {
    pub ms: Option<u64>,
    pub fail: bool,
    pub fail_times: u32,
    pub push_fail: bool,
    /// How long a push of this image takes.
    pub push_ms: u64,
}

#[derive(Default)]
struct State {
    /// image id -> info
    images: HashMap<String, ImageInfo>,
    next_id: u64,
    failures: HashMap<String, u32>,
    /// Every build started, in order (names).
    pub builds: Vec<String>,
    pub pushes: Vec<String>,
}

pub struct SimEngine {
    script: Script,
    state: Mutex<State>,
}

impl SimEngine {
    pub fn new(script: Script) -> SimEngine {
        SimEngine {
            script,
            state: Mutex::new(State::default()),
        }
    }

    /// Names of the images whose builds started, in order.
    pub fn builds(&self) -> Vec<String> {
        self.state.lock().expect("sim state").builds.clone()
    }

    pub fn pushes(&self) -> Vec<String> {
        self.state.lock().expect("sim state").pushes.clone()
    }
}

impl Engine for SimEngine {
    fn ping(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        async { Ok(()) }.boxed()
    }

    fn build(&self, req: BuildRequest, log: Log) -> BoxFuture<'_, Result<String, EngineError>> {
        async move {
            let step = self
                .script
                .images
                .get(&req.name)
                .cloned()
                .unwrap_or_default();
            self.state
                .lock()
                .expect("sim state")
                .builds
                .push(req.name.clone());
            log(&format!("Step 1/1 : simulated build of {}", req.name));
            tokio::time::sleep(Duration::from_millis(
                step.ms.unwrap_or(self.script.default_ms),
            ))
            .await;
            let mut state = self.state.lock().expect("sim state");
            let failed_before = state.failures.entry(req.name.clone()).or_default();
            if step.fail || *failed_before < step.fail_times {
                *failed_before += 1;
                log("simulated failure");
                return Err(EngineError::Failed(format!(
                    "simulated failure of {}",
                    req.name
                )));
            }
            state.next_id += 1;
            let id = format!("sha256:{:064x}", state.next_id);
            let labels = req.labels.into_iter().collect();
            state.images.insert(
                id.clone(),
                ImageInfo {
                    id: id.clone(),
                    tags: Vec::new(),
                    labels,
                    repo_digests: Vec::new(),
                    platform: String::new(),
                },
            );
            Ok(id)
        }
        .boxed()
    }

    fn tag<'a>(
        &'a self,
        image_id: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let mut state = self.state.lock().expect("sim state");
            // The source is an image ID or a reference, as for `docker tag`.
            let id = state
                .images
                .values()
                .find(|i| i.id == image_id || i.tags.iter().any(|t| t == image_id))
                .map(|i| i.id.clone())
                .ok_or_else(|| EngineError::Failed(format!("no image {image_id}")))?;
            for info in state.images.values_mut() {
                info.tags.retain(|t| t != reference);
            }
            if let Some(info) = state.images.get_mut(&id) {
                info.tags.push(reference.to_string());
            }
            Ok(())
        }
        .boxed()
    }

    fn pull<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            Err(EngineError::Failed(format!(
                "the simulated engine cannot pull `{reference}`"
            )))
        }
        .boxed()
    }

    fn push<'a>(&'a self, reference: &'a str, log: Log) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let name = reference
                .rsplit('/')
                .next()
                .unwrap_or(reference)
                .split(':')
                .next()
                .unwrap_or_default();
            let step = self.script.images.get(name).cloned().unwrap_or_default();
            tokio::time::sleep(Duration::from_millis(step.push_ms)).await;
            let fail = step.push_fail;
            let mut state = self.state.lock().expect("sim state");
            if !state
                .images
                .values()
                .any(|i| i.tags.iter().any(|t| t == reference))
            {
                return Err(EngineError::Failed(format!(
                    "no image is tagged `{reference}`"
                )));
            }
            state.pushes.push(reference.to_string());
            drop(state);
            if fail {
                log("simulated push failure");
                return Err(EngineError::Failed(format!(
                    "simulated push failure of {reference}"
                )));
            }
            Ok(())
        }
        .boxed()
    }

    fn inspect<'a>(
        &'a self,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<ImageInfo>, EngineError>> {
        async move {
            let state = self.state.lock().expect("sim state");
            Ok(state
                .images
                .values()
                .find(|i| i.id == reference || i.tags.iter().any(|t| t == reference))
                .cloned())
        }
        .boxed()
    }
}
