//! Containers for image tests, on the Docker engine: run a command (and
//! commit the result, for setup steps), read one path of an image through
//! the engine's archive endpoint, read an image's configuration. Every
//! container made here is removed before the call returns, whatever happens.
//! The calls are those Google's container-structure-test makes, so a test
//! file gives the same verdict in both.

use super::docker::DockerEngine;
use super::{ContainerOutput, ContainerRun, EngineError, ImageConfig, PathEntry};
use bollard::container::LogOutput;
use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptions, DownloadFromContainerOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions,
};
use futures_util::StreamExt;

/// The label of the containers `strata watch --run` starts (its value:
/// the watch's process ID).
pub const SERVED: &str = "org.strata.watch";

/// A stream's bytes cut into whole lines.
#[derive(Default)]
struct Lines(Vec<u8>);

impl Lines {
    fn feed(&mut self, bytes: &[u8], log: &super::Log) {
        self.0.extend_from_slice(bytes);
        while let Some(end) = self.0.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=end).collect();
            log(String::from_utf8_lossy(&line[..end]).trim_end_matches('\r'));
        }
    }

    fn flush(&mut self, log: &super::Log) {
        if !self.0.is_empty() {
            log(&String::from_utf8_lossy(&std::mem::take(&mut self.0)));
        }
    }
}

/// The most of a file read for a content test.
const MAX_CONTENT: usize = 64 << 20;

fn failed(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Failed(format!("{what}: {e}"))
}

impl DockerEngine {
    async fn create(&self, body: ContainerCreateBody) -> Result<String, EngineError> {
        let image = body.image.clone().unwrap_or_default();
        self.docker()
            .create_container(None, body)
            .await
            .map(|c| {
                if let Ok(mut live) = self.live.lock() {
                    live.insert(c.id.clone());
                }
                c.id
            })
            .map_err(|e| failed(&format!("cannot create a container of `{image}`"), e))
    }

    /// Remove every test container still there (an interrupted run: its
    /// tasks were dropped mid-test).
    pub(super) async fn remove_live(&self) {
        let ids: Vec<String> = match self.live.lock() {
            Ok(mut live) => live.drain().collect(),
            Err(_) => return,
        };
        for id in ids {
            self.remove(&id).await;
        }
    }

    async fn remove(&self, id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(id);
        }
        let _ = self
            .docker()
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
    }

    pub(super) async fn run_in_container(
        &self,
        run: ContainerRun,
    ) -> Result<ContainerOutput, EngineError> {
        let id = self
            .create(ContainerCreateBody {
                image: Some(run.image.clone()),
                cmd: Some(run.cmd.clone()),
                entrypoint: Some(vec![String::new()]),
                env: (!run.env.is_empty()).then(|| run.env.clone()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            })
            .await?;
        let result = self.run_created(&id, run.commit, run.timeout).await;
        self.remove(&id).await;
        result
    }

    async fn run_created(
        &self,
        id: &str,
        commit: bool,
        timeout: std::time::Duration,
    ) -> Result<ContainerOutput, EngineError> {
        let docker = self.docker();
        docker
            .start_container(id, None)
            .await
            .map_err(|e| failed("cannot start the test container", e))?;
        let mut exit_code = 0;
        let waited = tokio::time::timeout(timeout, async {
            let mut wait = docker.wait_container(id, None);
            while let Some(r) = wait.next().await {
                match r {
                    Ok(w) => exit_code = w.status_code,
                    Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => {
                        exit_code = code
                    }
                    Err(e) => return Err(failed("waiting for the test container", e)),
                }
            }
            Ok(())
        })
        .await;
        match waited {
            Ok(result) => result?,
            Err(_) => {
                return Err(EngineError::Failed(format!(
                    "the command did not end within {}s (the test's `timeout:`, 10m by default); its container was removed",
                    timeout.as_secs()
                )))
            }
        }
        let mut out = ContainerOutput {
            exit_code,
            ..Default::default()
        };
        let mut logs = docker.logs(
            id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        while let Some(chunk) = logs.next().await {
            match chunk.map_err(|e| failed("reading the test container's output", e))? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    out.stdout.push_str(&String::from_utf8_lossy(&message))
                }
                LogOutput::StdErr { message } => {
                    out.stderr.push_str(&String::from_utf8_lossy(&message))
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        if commit {
            let image = docker
                .commit_container(
                    CommitContainerOptions {
                        container: Some(id.to_string()),
                        ..Default::default()
                    },
                    ContainerConfig::default(),
                )
                .await
                .map_err(|e| failed("cannot commit the setup step", e))?;
            out.committed = Some(image.id);
        }
        Ok(out)
    }

    /// `strata watch --run`: a container of `run.image` (its entrypoint
    /// kept, `run.cmd` when given) started and left running, its output
    /// sent to `log` line by line until it ends or is stopped. Labelled
    /// `SERVED`, so what a killed watch left is found by label.
    pub(super) async fn serve_container(
        &self,
        run: ContainerRun,
        log: super::Log,
    ) -> Result<String, EngineError> {
        let labels = [(SERVED.to_string(), std::process::id().to_string())];
        let body = ContainerCreateBody {
            image: Some(run.image.clone()),
            cmd: (!run.cmd.is_empty()).then(|| run.cmd.clone()),
            env: (!run.env.is_empty()).then(|| run.env.clone()),
            labels: Some(labels.into_iter().collect()),
            ..Default::default()
        };
        let docker = self.docker();
        let id = docker
            .create_container(None, body)
            .await
            .map_err(|e| failed(&format!("cannot create a container of `{}`", run.image), e))?
            .id;
        if let Err(e) = docker.start_container(&id, None).await {
            self.remove(&id).await;
            return Err(failed(
                &format!("cannot start a container of `{}`", run.image),
                e,
            ));
        }
        let follow = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut logs = docker.logs(&id, Some(follow));
        tokio::spawn(async move {
            let (mut out, mut err) = (Lines::default(), Lines::default());
            while let Some(Ok(chunk)) = logs.next().await {
                match chunk {
                    LogOutput::StdErr { message } => err.feed(&message, &log),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        out.feed(&message, &log)
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
            out.flush(&log);
            err.flush(&log);
        });
        Ok(id)
    }

    /// Stop and remove a container `serve_container` started.
    pub(super) async fn stop_served(&self, id: &str) {
        self.remove(id).await;
    }

    pub(super) async fn read_image_path(
        &self,
        image: &str,
        path: &str,
    ) -> Result<Option<PathEntry>, EngineError> {
        let id = self
            .create(ContainerCreateBody {
                image: Some(image.to_string()),
                cmd: Some(vec!["NOOP_COMMAND_DO_NOT_RUN".into()]),
                ..Default::default()
            })
            .await?;
        let result = self.first_entry(&id, path).await;
        self.remove(&id).await;
        result
    }

    /// Read the archive of `path` until its first entry is whole.
    async fn first_entry(&self, id: &str, path: &str) -> Result<Option<PathEntry>, EngineError> {
        let mut stream = self.docker().download_from_container(
            id,
            Some(DownloadFromContainerOptions {
                path: path.to_string(),
            }),
        );
        let mut buf: Vec<u8> = Vec::new();
        loop {
            match stream.next().await {
                Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
                Some(Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                })) => return Ok(None),
                Some(Err(e)) => {
                    return Err(failed(&format!("cannot read `{path}` of the image"), e))
                }
                None => return Ok(parse_first(&buf, true)),
            }
            if let Some(entry) = parse_first(&buf, false) {
                return Ok(Some(entry));
            }
            if buf.len() > MAX_CONTENT + (1 << 20) {
                return Err(EngineError::Failed(format!(
                    "`{path}` is larger than {} MiB",
                    MAX_CONTENT >> 20
                )));
            }
        }
    }

    pub(super) async fn config_of(&self, image: &str) -> Result<ImageConfig, EngineError> {
        let i = self
            .docker()
            .inspect_image(image)
            .await
            .map_err(|e| failed(&format!("cannot inspect `{image}`"), e))?;
        let c = i.config.unwrap_or_default();
        Ok(ImageConfig {
            env: c.env.unwrap_or_default(),
            cmd: c.cmd,
            entrypoint: c.entrypoint,
            workdir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
            exposed_ports: c
                .exposed_ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.split('/').next().unwrap_or_default().to_string())
                .collect(),
            volumes: c.volumes.unwrap_or_default(),
        })
    }

    pub(super) async fn remove_test_image(&self, image: &str) -> Result<(), EngineError> {
        self.docker()
            .remove_image(
                image,
                // Only this name: an image it is the last name of goes,
                // never its parents (the untagged image under test is the
                // parent of a committed setup step).
                Some(RemoveImageOptions {
                    force: false,
                    noprune: true,
                    ..Default::default()
                }),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| failed(&format!("cannot remove `{image}`"), e))
    }
}

/// The first real entry of the tar in `buf`, once it is whole (or, at the
/// end of the stream, whatever there is).
fn parse_first(buf: &[u8], complete: bool) -> Option<PathEntry> {
    let mut archive = tar::Archive::new(buf);
    let mut entries = archive.entries().ok()?;
    let mut entry = match entries.next()? {
        Ok(e) => e,
        Err(_) => return None,
    };
    let header = entry.header().clone();
    let kind = header.entry_type().as_byte();
    let content = if header.entry_type().is_file() {
        let size = header.size().ok()? as usize;
        let mut data = Vec::with_capacity(size.min(MAX_CONTENT));
        use std::io::Read;
        if entry.read_to_end(&mut data).is_err() || data.len() < size {
            let _ = complete;
            return None;
        }
        Some(data)
    } else {
        None
    };
    Some(PathEntry {
        kind,
        mode: header.mode().unwrap_or(0),
        uid: header.uid().unwrap_or(0),
        gid: header.gid().unwrap_or(0),
        link: entry
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.to_string_lossy().to_string())
            .unwrap_or_default(),
        content,
    })
}
