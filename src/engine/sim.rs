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
//!
//! Every simulated engine of a process shares one simulated registry: a
//! push puts the image there under `repo@digest`, and a pull by that name
//! (taking `push_ms` too) brings it to another engine, as a pool needs.

use super::{BuildRequest, Engine, EngineError, ImageInfo, Log};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Image IDs unique over every simulated engine of the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The simulated registry: `repo@digest` → image.
fn registry() -> &'static Mutex<HashMap<String, ImageInfo>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, ImageInfo>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

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
    failures: HashMap<String, u32>,
    /// tag → image id: every name looked up at once, as an engine does.
    tagged: HashMap<String, String>,
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

impl ImageInfo {
    /// Whether `name` is this image's ID, one of its tags or a `repo@digest` of it.
    fn named(&self, name: &str) -> bool {
        self.id == name
            || self
                .tags
                .iter()
                .chain(&self.repo_digests)
                .any(|t| t == name)
    }
}

impl State {
    /// The id of the image `name` names: its id, a tag, or a `repo@digest`.
    fn find(&self, name: &str) -> Option<String> {
        if self.images.contains_key(name) {
            return Some(name.to_string());
        }
        if let Some(id) = self.tagged.get(name) {
            return Some(id.clone());
        }
        self.images
            .values()
            .find(|i| i.named(name))
            .map(|i| i.id.clone())
    }
}

impl SimEngine {
    /// The script's step for the image a reference names (`repo/name:tag`,
    /// `repo/name@digest`).
    fn step_of(&self, reference: &str) -> Step {
        let name = reference
            .rsplit('/')
            .next()
            .unwrap_or(reference)
            .split([':', '@'])
            .next()
            .unwrap_or_default();
        self.script.images.get(name).cloned().unwrap_or_default()
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
            let id = format!("sha256:{:064x}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
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

    /// Untag `name`; the image goes with its last name (as the Docker
    /// engine removes a name strata made).
    fn remove_image<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let mut state = self.state.lock().expect("sim state");
            let Some(id) = state.tagged.remove(name) else {
                return Ok(());
            };
            let gone = state.images.get_mut(&id).is_some_and(|info| {
                info.tags.retain(|t| t != name);
                info.tags.is_empty() && info.repo_digests.is_empty()
            });
            if gone {
                state.images.remove(&id);
            }
            Ok(())
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
                .find(image_id)
                .ok_or_else(|| EngineError::Failed(format!("no image {image_id}")))?;
            if let Some(old) = state.tagged.insert(reference.to_string(), id.clone()) {
                if let Some(info) = state.images.get_mut(&old) {
                    info.tags.retain(|t| t != reference);
                }
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
            let found = registry()
                .lock()
                .expect("sim registry")
                .get(reference)
                .cloned();
            let Some(mut image) = found else {
                return Err(EngineError::Failed(format!(
                    "the simulated registry has no `{reference}`"
                )));
            };
            let step = self.step_of(reference);
            tokio::time::sleep(Duration::from_millis(step.push_ms)).await;
            image.tags.clear();
            let mut state = self.state.lock().expect("sim state");
            state.images.entry(image.id.clone()).or_insert(image);
            Ok(())
        }
        .boxed()
    }

    fn push<'a>(&'a self, reference: &'a str, log: Log) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let step = self.step_of(reference);
            tokio::time::sleep(Duration::from_millis(step.push_ms)).await;
            let fail = step.push_fail;
            let mut state = self.state.lock().expect("sim state");
            let id = state.tagged.get(reference).cloned().unwrap_or_default();
            let Some(image) = state.images.get_mut(&id) else {
                return Err(EngineError::Failed(format!(
                    "no image is tagged `{reference}`"
                )));
            };
            if !fail {
                // The digest names the image, as a registry's names its manifest.
                let digest = format!("sha256:{}", &image.id[7..]);
                let pinned = crate::util::reference::pinned(reference, &digest);
                if !image.repo_digests.contains(&pinned) {
                    image.repo_digests.push(pinned.clone());
                }
                registry()
                    .lock()
                    .expect("sim registry")
                    .insert(pinned, image.clone());
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
                .find(reference)
                .and_then(|id| state.images.get(&id).cloned()))
        }
        .boxed()
    }
}
