//! The Docker engine through bollard (the Engine API over the socket or
//! `DOCKER_HOST`, version negotiated; 1.41 and newer). BuildKit (through
//! our own session, `buildkit/`) wherever the engine has it, else the
//! classic builder, which is also there on request.
//! Knows nothing of the graph: it builds, tags, pushes and lists images.

use super::{BuildRequest, Builder, Engine, EngineError, ImageInfo, Log};
use crate::util::reference::split as split_tag;
use bollard::query_parameters::{CreateImageOptions, PushImageOptions, TagImageOptions};
use bollard::Docker;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use std::time::Duration;

pub struct DockerEngine {
    pub(super) docker: Docker,
    host: String,
    /// Where it is, for the connections of a BuildKit session.
    end: super::endpoint::Endpoint,
    podman: bool,
    /// It builds with BuildKit over the API (Docker on Linux, API 1.39+).
    buildkit: bool,
    /// Containers made for image tests and not yet removed.
    pub(super) live: std::sync::Mutex<std::collections::HashSet<String>>,
    /// How long a push may go without progress before it fails.
    push_idle: Duration,
}

impl DockerEngine {
    /// Connect as the docker CLI does: `DOCKER_HOST`, else (unset or empty)
    /// the default socket. Gives up when the engine has not answered the
    /// version check within `timeout`.
    pub async fn connect(timeout: Duration) -> Result<DockerEngine, EngineError> {
        let end = super::endpoint::resolve()?;
        Self::connect_to(end, timeout).await
    }

    /// Connect to the engine at `end` (one of a pool).
    pub async fn connect_to(
        end: super::endpoint::Endpoint,
        timeout: Duration,
    ) -> Result<DockerEngine, EngineError> {
        let host = end.host.clone();
        let docker = match &end.tls {
            Some(dir) => {
                // rustls finds its crypto through the process-wide provider.
                let _ = rustls::crypto::ring::default_provider().install_default();
                Docker::connect_with_ssl(
                    &host,
                    &dir.join("key.pem"),
                    &dir.join("cert.pem"),
                    &dir.join("ca.pem"),
                    120,
                    bollard::API_DEFAULT_VERSION,
                )
            }
            None => Docker::connect_with_host(&host),
        }
        .map_err(|e| unreachable(&host, &e))?;
        let docker = tokio::time::timeout(timeout, docker.negotiate_version())
            .await
            .map_err(|_| {
                unreachable(
                    &host,
                    &format!("no answer within {} s", timeout.as_secs_f64()),
                )
            })?
            .map_err(|e| unreachable(&host, &e))?;
        let version = docker.version().await.ok().unwrap_or_default();
        let podman = version
            .components
            .unwrap_or_default()
            .iter()
            .any(|c| c.name.contains("Podman"));
        let api = docker.client_version();
        let buildkit = !podman
            && version.os.as_deref().is_none_or(|os| os == "linux")
            && (api.major_version, api.minor_version) >= (1, 39);
        Ok(DockerEngine {
            docker,
            host,
            end,
            podman,
            buildkit,
            live: Default::default(),
            push_idle: Duration::from_secs(60),
        })
    }
}

impl DockerEngine {
    /// A push fails after `idle` without a word from the engine.
    pub(super) fn with_push_idle(mut self, idle: Duration) -> DockerEngine {
        self.push_idle = idle;
        self
    }

    pub(super) fn docker(&self) -> &Docker {
        &self.docker
    }
}

/// The engine the docker CLI would use, for messages and locks.
pub fn endpoint() -> String {
    let host = super::endpoint::endpoint().unwrap_or_else(|_| super::endpoint::DEFAULT.into());
    crate::util::url::shown(&host)
}

fn unreachable(host: &str, e: &dyn std::fmt::Display) -> EngineError {
    let host = crate::util::url::shown(host);
    EngineError::Unreachable(format!("cannot reach the Docker engine at `{host}`: {e}"))
}

pub(super) fn failed(e: bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { message, .. } => EngineError::Failed(message),
        E::DockerStreamError { error } => EngineError::Failed(error),
        other => EngineError::Failed(other.to_string()),
    }
}

impl Engine for DockerEngine {
    fn is_podman(&self) -> bool {
        self.podman
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        async move {
            self.docker
                .ping()
                .await
                .map(|_| ())
                .map_err(|e| unreachable(&self.host, &e))
        }
        .boxed()
    }

    fn native_platform(&self) -> BoxFuture<'_, Option<String>> {
        async move {
            let info = self.docker.info().await.ok()?;
            let os = info.os_type.filter(|o| !o.is_empty())?;
            let arch = match info.architecture?.as_str() {
                "x86_64" => "amd64".to_string(),
                "aarch64" => "arm64".to_string(),
                "armv7l" => "arm/v7".to_string(),
                other => other.to_string(),
            };
            Some(format!("{os}/{arch}"))
        }
        .boxed()
    }

    /// On this machine (a Unix socket): the kernel's qemu handlers, read
    /// now. Elsewhere: BuildKit's worker list, where the engine serves it.
    /// (The worker list is found once, when the engine starts: a handler
    /// switched off later is still listed, so it is not asked first.)
    fn emulated_platforms(&self) -> BoxFuture<'_, Vec<String>> {
        async move {
            let native = self.native_platform().await;
            let native = native.as_deref();
            if self.host.starts_with("unix://") {
                let dir = std::path::Path::new(super::emulation::BINFMT_DIR);
                return super::emulation::from_binfmt(dir, native);
            }
            if !self.buildkit {
                return Vec::new();
            }
            let api = self.docker.client_version();
            let api = format!("/v{}.{}", api.major_version, api.minor_version);
            let ask = super::buildkit::workers::platforms(&self.end, &api);
            match tokio::time::timeout(Duration::from_secs(10), ask).await {
                Ok(Ok(list)) => super::emulation::emulated_of(list, native),
                _ => Vec::new(),
            }
        }
        .boxed()
    }

    /// With the classic builder, which every engine has; the image it
    /// leaves is removed. Its platform must be the one asked for: an
    /// engine that takes a local base of another platform as it is runs
    /// that base's binaries natively, which proves nothing.
    fn probe_platform<'a>(&'a self, platform: &'a str, base: &'a str) -> BoxFuture<'a, bool> {
        async move {
            let req = BuildRequest {
                name: "strata-probe".into(),
                dockerfile: format!("FROM {base}\nRUN true\n"),
                platform: platform.into(),
                builder: Builder::Classic,
                from: vec![base.into()],
                labels: [("org.strata.probe".to_string(), "1".to_string())].into(),
                // A step cached from an earlier probe would run nothing.
                no_cache: true,
                ..Default::default()
            };
            let quiet: Log = std::sync::Arc::new(|_| {});
            let build = self.build_classic(req, quiet);
            let Ok(Ok(id)) = tokio::time::timeout(Duration::from_secs(300), build).await else {
                return false;
            };
            let built = self.inspect(&id).await.ok().flatten();
            let _ = self.remove_image(&id).await;
            built.is_some_and(|i| super::pool::same_platform(&i.platform, platform))
        }
        .boxed()
    }

    fn builder(&self, asked: Builder) -> Builder {
        match asked {
            Builder::Auto if self.buildkit => Builder::BuildKit,
            Builder::Auto => Builder::Classic,
            other => other,
        }
    }

    fn build(&self, req: BuildRequest, log: Log) -> BoxFuture<'_, Result<String, EngineError>> {
        async move {
            if self.builder(req.builder) == Builder::BuildKit {
                let api = self.docker.client_version();
                let api = format!("/v{}.{}", api.major_version, api.minor_version);
                let credentials = session_credentials(&req.from);
                return super::buildkit::build(&self.end, &api, &req, credentials, &log).await;
            }
            self.build_classic(req, log).await
        }
        .boxed()
    }

    fn tag<'a>(
        &'a self,
        image_id: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let (repo, tag) = split_tag(reference);
            let options = TagImageOptions {
                repo: Some(repo.to_string()),
                tag: Some(tag.to_string()),
            };
            self.docker
                .tag_image(image_id, Some(options))
                .await
                .map_err(failed)
        }
        .boxed()
    }

    fn pull<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            // `repo@sha256:…` pulls by digest: the API takes it as the tag.
            let (repo, tag) = match reference.split_once('@') {
                Some((repo, digest)) => (repo, digest),
                None => split_tag(reference),
            };
            let options = CreateImageOptions {
                from_image: Some(repo.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            };
            let mut stream =
                self.docker
                    .create_image(Some(options), None, credentials_for(reference));
            while let Some(item) = stream.next().await {
                let info = item.map_err(failed)?;
                if let Some(detail) = info.error_detail {
                    return Err(EngineError::Failed(
                        detail.message.unwrap_or_else(|| "the pull failed".into()),
                    ));
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn push<'a>(&'a self, reference: &'a str, log: Log) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let (repo, tag) = split_tag(reference);
            let credentials = credentials_for(reference);
            let options = PushImageOptions {
                tag: Some(tag.to_string()),
                ..Default::default()
            };
            let mut stream = self.docker.push_image(repo, Some(options), credentials);
            let mut last = String::new();
            // The engine retries a layer that fails ("Retrying in N
            // seconds", for each layer, each second): said once, counted.
            let mut retries = 0;
            loop {
                let next = tokio::time::timeout(self.push_idle, stream.next()).await;
                let Ok(next) = next else {
                    let message = format!(
                        "nothing moved for {} s: the registry does not answer the upload (STRATA_REGISTRY_TIMEOUT)",
                        self.push_idle.as_secs()
                    );
                    log(&format!("push error: {message}"));
                    return Err(EngineError::Failed(message));
                };
                let Some(item) = next else { break };
                let info = match item {
                    Ok(info) => info,
                    Err(e) if retries > 0 => {
                        let message = format!("{e} (after the engine retried {retries} times)");
                        return Err(EngineError::Failed(message));
                    }
                    Err(e) => return Err(failed(e)),
                };
                if let Some(detail) = info.error_detail {
                    let mut message = detail.message.unwrap_or_else(|| "the push failed".into());
                    if retries > 0 {
                        message = format!("{message} (after the engine retried {retries} times)");
                    }
                    log(&format!("push error: {message}"));
                    return Err(EngineError::Failed(message));
                }
                if let Some(status) = info
                    .status
                    .as_deref()
                    .filter(|s| s.starts_with("Retrying in"))
                {
                    retries += 1;
                    if retries == 1 {
                        log(&format!(
                            "push: {status} (further retries are counted, not shown)"
                        ));
                    }
                    continue;
                }
                if let Some(status) = info.status {
                    // Layer progress repeats; log each distinct status once.
                    if status != last
                        && info
                            .progress_detail
                            .as_ref()
                            .is_none_or(|p| p.current.is_none())
                    {
                        log(&format!("push: {status}"));
                        last = status;
                    }
                }
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
            match self.docker.inspect_image(reference).await {
                Ok(i) => Ok(Some(ImageInfo {
                    id: i.id.unwrap_or_default(),
                    tags: i.repo_tags.unwrap_or_default(),
                    labels: i.config.and_then(|c| c.labels).unwrap_or_default(),
                    repo_digests: i.repo_digests.unwrap_or_default(),
                    platform: match (i.os, i.architecture, i.variant) {
                        (Some(os), Some(arch), Some(v)) if !v.is_empty() => {
                            format!("{os}/{arch}/{v}")
                        }
                        (Some(os), Some(arch), _) => format!("{os}/{arch}"),
                        _ => String::new(),
                    },
                })),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(None),
                // The engine answered, and refused this one question.
                Err(e @ bollard::errors::Error::DockerResponseServerError { .. }) => Err(
                    EngineError::Failed(format!("cannot inspect `{reference}`: {e}")),
                ),
                Err(e) => Err(unreachable(&self.host, &e)),
            }
        }
        .boxed()
    }

    fn run_container(
        &self,
        run: super::ContainerRun,
    ) -> BoxFuture<'_, Result<super::ContainerOutput, EngineError>> {
        self.run_in_container(run).boxed()
    }

    fn remove_containers(&self) -> BoxFuture<'_, ()> {
        self.remove_live().boxed()
    }

    fn serve(
        &self,
        run: super::ContainerRun,
        log: super::Log,
    ) -> BoxFuture<'_, Result<String, EngineError>> {
        self.serve_container(run, log).boxed()
    }

    fn stop_serving<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ()> {
        self.stop_served(id).boxed()
    }

    fn read_path<'a>(
        &'a self,
        image: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Option<super::PathEntry>, EngineError>> {
        self.read_image_path(image, path).boxed()
    }

    fn image_config<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<super::ImageConfig, EngineError>> {
        self.config_of(image).boxed()
    }

    fn remove_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        self.remove_test_image(image).boxed()
    }
}

/// The credentials of the registries of `references` (what the build's
/// `FROM` lines name), by server, for the builder to pull what the engine
/// lacks (a fresh engine of a pool, a fresh CI worker). None when none.
pub(super) fn from_credentials(
    references: &[String],
) -> Option<std::collections::HashMap<String, bollard::auth::DockerCredentials>> {
    let found: std::collections::HashMap<_, _> = references
        .iter()
        .filter_map(|r| credentials_for(r))
        .filter_map(|c| Some((c.serveraddress.clone()?, c)))
        .collect();
    (!found.is_empty()).then_some(found)
}

/// The same credentials as BuildKit's session hands them out: host →
/// (user, secret); an identity token is the secret with no user.
fn session_credentials(
    references: &[String],
) -> std::collections::HashMap<String, (String, String)> {
    from_credentials(references)
        .unwrap_or_default()
        .into_iter()
        .map(|(host, c)| {
            let pair = match c.identitytoken {
                Some(token) => (String::new(), token),
                None => (
                    c.username.unwrap_or_default(),
                    c.password.unwrap_or_default(),
                ),
            };
            (host, pair)
        })
        .collect()
}

/// Registry credentials for bollard (see `credential_for`).
fn credentials_for(reference: &str) -> Option<bollard::auth::DockerCredentials> {
    let (server, credential) = crate::util::reference::credential_for(reference)?;
    match credential {
        docker_credential::DockerCredential::UsernamePassword(user, password) => {
            Some(bollard::auth::DockerCredentials {
                username: Some(user),
                password: Some(password),
                serveraddress: Some(server.to_string()),
                ..Default::default()
            })
        }
        docker_credential::DockerCredential::IdentityToken(token) => {
            Some(bollard::auth::DockerCredentials {
                identitytoken: Some(token),
                serveraddress: Some(server.to_string()),
                ..Default::default()
            })
        }
    }
}
