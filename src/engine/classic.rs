//! The classic builder of a Docker engine (and Podman's Buildah behind
//! the same API): the context as a tar with the rendered Dockerfile and
//! strata's labels as one appended `LABEL` step. BuildKit is `buildkit/`.

use super::docker::{failed, from_credentials, DockerEngine};
use super::{context, BuildRequest, EngineError, Lines, Log};
use bollard::models::BuildInfoAux;
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use futures_util::StreamExt;

impl DockerEngine {
    /// The classic builder: the context as a tar with the rendered
    /// Dockerfile (and a `.dockerignore` hiding both), labels as one step.
    pub(super) async fn build_classic(
        &self,
        req: BuildRequest,
        log: Log,
    ) -> Result<String, EngineError> {
        // No context folder: a context of the Dockerfile alone.
        let mut entries = match req.context.as_os_str().is_empty() {
            true => Vec::new(),
            false => context::entries(&req.context).map_err(|e| EngineError::Failed(e.message))?,
        };
        entries.retain(|e| !req.leave_out.contains(&e.rel));
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        // One LABEL step instead of the builder's one step per label option.
        let dockerfile = match req.labels_before_line {
            Some(n) => {
                let cut: usize = req
                    .dockerfile
                    .split_inclusive('\n')
                    .take(n - 1)
                    .map(str::len)
                    .sum();
                let (head, tail) = req.dockerfile.split_at(cut);
                with_labels(head, req.escape.0, &req.labels) + tail
            }
            None => with_labels(&req.dockerfile, req.escape.0, &req.labels),
        };
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = context::ChunkWriter::new(tx);
            context::write_tar(&entries, &dockerfile, true, &mut w)
        });
        let body =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
            );
        let options = BuildImageOptions {
            dockerfile: context::DOCKERFILE_NAME.to_string(),
            buildargs: Some(req.args.clone().into_iter().collect()),
            platform: req.platform.clone(),
            rm: true,
            forcerm: true,
            nocache: req.no_cache,
            target: req.target.clone(),
            networkmode: (!req.network.is_empty()).then(|| req.network.clone()),
            version: BuilderVersion::BuilderV1,
            ..Default::default()
        };
        let credentials = from_credentials(&req.from);
        let mut stream =
            self.docker
                .build_image(options, credentials, Some(bollard::body_try_stream(body)));
        let mut lines = Lines::default();
        let mut id = None;
        let mut error = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = &info.stream {
                        lines.push(text, &log);
                    }
                    if let Some(status) = &info.status {
                        lines.push(&format!("{status}\n"), &log);
                    }
                    if let Some(detail) = info.error_detail {
                        error = Some(detail.message.unwrap_or_else(|| "the build failed".into()));
                    }
                    if let Some(BuildInfoAux::Default(image)) = info.aux {
                        id = image.id.or(id);
                    }
                }
                Err(e) => {
                    error = Some(failed(e).to_string());
                    break;
                }
            }
        }
        lines.finish(&log);
        let written = writer
            .await
            .map_err(|e| EngineError::Failed(e.to_string()))?;
        if let Some(e) = error {
            log(&format!("error: {e}"));
            return Err(EngineError::Failed(e));
        }
        if let Err(e) = written {
            return Err(EngineError::Failed(format!(
                "cannot send the build context: {e}"
            )));
        }
        id.ok_or_else(|| EngineError::Failed("the engine reported no image ID".into()))
    }
}

/// The Dockerfile with one `LABEL` instruction appended (one step instead of
/// the builder's one step per label option). It stays a separate
/// instruction whatever the file's escape character (`# escape=`) and last
/// line: a line continuation left open at the end of the file (which the
/// builder ends there anyway) is closed first. Values are quoted and
/// escaped so that the builder keeps them literally (`$` is not expanded).
fn with_labels(
    dockerfile: &str,
    escape: char,
    labels: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut lines: Vec<&str> = dockerfile.trim_end().lines().collect();
    // The line whose trailing escape still continues at the end of the file.
    let mut open: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if open.is_some() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        open = t.ends_with(escape).then_some(i);
    }
    let closed;
    if let Some(i) = open {
        let t = lines[i].trim_end();
        closed = t[..t.len() - escape.len_utf8()].to_string();
        lines[i] = &closed;
    }
    let mut out = lines.join("\n");
    if labels.is_empty() {
        return out + "\n";
    }
    let quote = |s: &str| {
        let mut q = String::from('"');
        for c in s.chars() {
            match c {
                c if c == escape || c == '"' || c == '$' => {
                    q.push(escape);
                    q.push(c);
                }
                c if c.is_control() => q.push(' '),
                c => q.push(c),
            }
        }
        q.push('"');
        q
    };
    out.push_str("\nLABEL");
    for (k, v) in labels {
        out.push_str(&format!(" {}={}", quote(k), quote(v)));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_one_quoted_instruction() {
        let labels = [
            ("a.b".to_string(), "say \"hi\"".to_string()),
            ("c".to_string(), "x\\y".to_string()),
        ]
        .into();
        assert_eq!(
            super::with_labels("FROM x\n\n", '\\', &labels),
            "FROM x\nLABEL \"a.b\"=\"say \\\"hi\\\"\" \"c\"=\"x\\\\y\"\n"
        );
        let dollar = [("k".to_string(), "$HOME".to_string())].into();
        assert_eq!(
            super::with_labels("# escape=`\nFROM x\nRUN a `\n  b `\n# note\n", '`', &dollar),
            "# escape=`\nFROM x\nRUN a `\n  b \n# note\nLABEL \"k\"=\"`$HOME\"\n"
        );
    }
}
