//! Builds with BuildKit through the Engine API, as the docker CLI makes
//! them: a session of our own (the context and the Dockerfile as two
//! folders, registry credentials, secrets, SSH agents) and
//! `POST /build?version=2&remote=client-session` on it. The Dockerfile
//! never enters the context; labels go through the API (no extra step).
//! BuildKit's status stream becomes numbered log lines like
//! `docker build --progress=plain`'s. Knows nothing of the graph.

mod filesync;
mod session;
pub(super) mod wire;
pub mod workers;

use super::endpoint::Endpoint;
use super::{BuildRequest, EngineError, Log};
use bollard::models::{BuildInfo, BuildInfoAux};
use http_body_util::BodyExt;

/// Build `req` on the engine at `end` (API prefix `api`, e.g. `/v1.41`);
/// the image ID.
pub async fn build(
    end: &Endpoint,
    api: &str,
    req: &BuildRequest,
    credentials: std::collections::HashMap<String, (String, String)>,
    log: &Log,
) -> Result<String, EngineError> {
    let mut entries = crate::engine::context::entries(&req.context)
        .map_err(|e| EngineError::Failed(e.message))?;
    entries.retain(|e| !req.leave_out.contains(&e.rel));
    let id = session_id(&req.name);
    // The engine keeps a copy of our folders under this key and asks only
    // for files whose size or time changed (times are zero here). So the
    // key covers every byte sent: the fingerprint covers each context
    // file's content, and the rendered Dockerfile (which names parents by
    // reference, not by fingerprint) is added whole.
    let key = match req.key.is_empty() {
        true => id.clone(),
        false => {
            let mut h = blake3::Hasher::new();
            h.update(req.key.as_bytes());
            h.update(b"\n");
            h.update(req.dockerfile.as_bytes());
            format!("strata-{}", h.finalize().to_hex())
        }
    };
    let offer = session::Offer {
        folders: filesync::Folders::new(&entries, &req.dockerfile),
        credentials,
        secrets: req.secrets.clone(),
        ssh: req.ssh.clone(),
    };
    let unreachable = |e: std::io::Error| {
        EngineError::Unreachable(format!(
            "cannot reach the Docker engine at `{}`: {e}",
            crate::util::url::shown(&end.host)
        ))
    };
    let _session = session::open(end, api, &id, &key, offer)
        .await
        .map_err(unreachable)?;
    let mut send = wire::connect(end).await.map_err(unreachable)?;
    let query = wire::query(&params(req, &id));
    let request = wire::request("POST", &format!("{api}/build?{query}"))
        .header(http::header::CONTENT_TYPE, "application/x-tar")
        .body(http_body_util::Empty::new())
        .map_err(|e| EngineError::Failed(e.to_string()))?;
    let res = send
        .send_request(request)
        .await
        .map_err(|e| unreachable(std::io::Error::other(e)))?;
    if !res.status().is_success() {
        let why = wire::refusal(res).await;
        log(&format!("error: {why}"));
        return Err(EngineError::Failed(why));
    }
    follow(res.into_body(), log).await
}

/// The build's query: BuildKit, our session, labels through the API.
fn params(req: &BuildRequest, id: &str) -> Vec<(&'static str, String)> {
    let json = |m: &std::collections::BTreeMap<String, String>| {
        serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
    };
    let mut q = vec![
        ("version", "2".to_string()),
        ("session", id.to_string()),
        ("buildid", id.to_string()),
        ("remote", "client-session".to_string()),
        ("dockerfile", filesync::DOCKERFILE.to_string()),
        ("buildargs", json(&req.args)),
        ("labels", json(&req.labels)),
        ("rm", "1".to_string()),
        ("forcerm", "1".to_string()),
    ];
    for (k, v) in [
        ("platform", &req.platform),
        ("target", &req.target),
        ("networkmode", &req.network),
    ] {
        if !v.is_empty() {
            q.push((k, v.clone()));
        }
    }
    if req.no_cache {
        q.push(("nocache", "1".to_string()));
    }
    q
}

/// Read the build's JSON lines to the end: log them, and the image ID.
async fn follow(mut body: hyper::body::Incoming, log: &Log) -> Result<String, EngineError> {
    let mut pending: Vec<u8> = Vec::new();
    let mut status = Status::default();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| EngineError::Failed(format!("the engine broke off the build: {e}")))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            status.line(&line, log);
        }
    }
    status.line(&pending, log);
    status.stream.finish(log);
    status.vertices.finish(log);
    if let Some(e) = status.error {
        log(&format!("error: {e}"));
        let e = match hint(&e) {
            Some(h) => format!("{e} ({h})"),
            None => e,
        };
        return Err(EngineError::Failed(e));
    }
    status
        .id
        .ok_or_else(|| EngineError::Failed("the engine reported no image ID".into()))
}

#[derive(Default)]
struct Status {
    vertices: Vertices,
    stream: super::Lines,
    id: Option<String>,
    error: Option<String>,
}

impl Status {
    fn line(&mut self, line: &[u8], log: &Log) {
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            return;
        }
        let info: BuildInfo = match serde_json::from_str(text.trim()) {
            Ok(info) => info,
            Err(_) => return log(text.trim_end()),
        };
        if let Some(s) = &info.stream {
            self.stream.push(s, log);
        }
        if let Some(detail) = info.error_detail {
            self.error = Some(detail.message.unwrap_or_else(|| "the build failed".into()));
        }
        match info.aux {
            Some(BuildInfoAux::Default(image)) => self.id = image.id.or(self.id.take()),
            Some(BuildInfoAux::BuildKit(s)) => self.vertices.push(&s, log),
            None => {}
        }
    }
}

/// What to do about a frontend that cannot be had or is too old.
fn hint(error: &str) -> Option<&'static str> {
    if error.contains("frontend gateway") {
        return Some(
            "the `# syntax=` line names a Dockerfile frontend image the engine cannot get; \
             remove the line to use the engine's built-in frontend, or make that image available to the engine",
        );
    }
    let newer = error.contains("Unknown flag: link")
        || (error.contains("dockerfile parse error") && error.contains("unknown instruction"));
    newer.then_some(
        "heredocs and `COPY --link` need Dockerfile frontend 1.4 or newer, and this engine's \
         built-in one is older; add `# syntax=docker/dockerfile:1.4` where the engine can get that image, or use a newer engine",
    )
}

/// A BuildKit session id, unique per build.
fn session_id(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("strata-{name}-{}-{nanos}", std::process::id())
}

/// BuildKit's status updates as `--progress=plain` shows them: each step
/// (vertex) numbered `#N` in the order it appears, `#N CACHED` when the
/// cache had it, its output lines under its number, `#N DONE 1.2s` and
/// `#N ERROR: …`.
#[derive(Default)]
struct Vertices {
    numbers: std::collections::HashMap<String, usize>,
    done: std::collections::HashSet<String>,
    /// Each step's output not yet ended by a newline.
    partial: std::collections::BTreeMap<usize, String>,
}

impl Vertices {
    fn push(&mut self, status: &bollard::moby::buildkit::v1::StatusResponse, log: &Log) {
        for v in &status.vertexes {
            if v.started.is_none() && !v.cached {
                continue;
            }
            let next = self.numbers.len() + 1;
            let n = *self.numbers.entry(v.digest.clone()).or_insert_with(|| {
                log(&format!("#{next} {}", v.name));
                next
            });
            if self.done.contains(&v.digest) {
                continue;
            }
            if v.cached {
                log(&format!("#{n} CACHED"));
                self.done.insert(v.digest.clone());
            } else if !v.error.is_empty() {
                log(&format!("#{n} ERROR: {}", v.error));
                self.done.insert(v.digest.clone());
            } else if let (Some(a), Some(b)) = (&v.started, &v.completed) {
                let secs = (b.seconds - a.seconds) as f64 + f64::from(b.nanos - a.nanos) / 1e9;
                log(&format!("#{n} DONE {secs:.1}s"));
                self.done.insert(v.digest.clone());
            }
        }
        for l in &status.logs {
            let n = self.numbers.get(&l.vertex).copied().unwrap_or(0);
            let buf = self.partial.entry(n).or_default();
            buf.push_str(&String::from_utf8_lossy(&l.msg));
            while let Some(i) = buf.find('\n') {
                let line: String = buf.drain(..=i).collect();
                log(&format!("#{n} {}", line.trim_end_matches(['\n', '\r'])));
            }
        }
    }

    /// Output left without a final newline.
    fn finish(&mut self, log: &Log) {
        for (n, rest) in std::mem::take(&mut self.partial) {
            if !rest.is_empty() {
                log(&format!("#{n} {rest}"));
            }
        }
    }
}
