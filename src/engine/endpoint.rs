//! Which engine the docker CLI would talk to, found the same way:
//! `DOCKER_HOST` (unless unset or empty), else the context named by
//! `DOCKER_CONTEXT` or the Docker config's `currentContext`, else the
//! default socket. A context is read from the Docker config folder
//! (`DOCKER_CONFIG`, else `~/.docker`): `contexts/meta/*/meta.json`, and its
//! TLS material from `contexts/tls/*/docker/{ca,cert,key}.pem`. With
//! `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` (default the
//! config folder) say whether and with what to speak TLS, as for the CLI.

use super::EngineError;
use std::path::PathBuf;

pub const DEFAULT: &str = "unix:///var/run/docker.sock";

/// Where the engine is and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub host: String,
    /// The folder holding `ca.pem`, `cert.pem` and `key.pem`, for TLS.
    pub tls: Option<PathBuf>,
}

/// The engine's address, or why it cannot be found (said to the user).
pub fn endpoint() -> Result<String, EngineError> {
    resolve().map(|e| e.host)
}

/// The engine's address and TLS material, or why they cannot be found.
pub fn resolve() -> Result<Endpoint, EngineError> {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return for_host(host);
    }
    let config = config_dir();
    let name = match std::env::var("DOCKER_CONTEXT")
        .ok()
        .filter(|c| !c.is_empty())
    {
        Some(name) => name,
        None => current_context(&config).unwrap_or_default(),
    };
    if name.is_empty() || name == "default" {
        return Ok(Endpoint {
            host: DEFAULT.into(),
            tls: None,
        });
    }
    let (host, tls) = context(&config, &name)?;
    if host.starts_with("ssh://") {
        return Err(EngineError::Unreachable(format!(
            "the docker context `{name}` is `{host}`, and strata does not speak ssh; \
             forward the socket (`ssh -NL /tmp/docker.sock:/var/run/docker.sock HOST`) \
             and set DOCKER_HOST=unix:///tmp/docker.sock"
        )));
    }
    with_tls(host, tls, &format!("the docker context `{name}`"))
}

/// An engine named by its address (`DOCKER_HOST`, or one of a pool):
/// `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` say whether and with what to
/// speak TLS to a `tcp://` one, as for the CLI; `https://` always does.
pub fn for_host(host: String) -> Result<Endpoint, EngineError> {
    let verify = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0");
    let tls = (host.starts_with("https://") || (verify && host.starts_with("tcp://"))).then(|| {
        std::env::var_os("DOCKER_CERT_PATH")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(config_dir)
    });
    with_tls(host, tls, "DOCKER_CERT_PATH")
}

/// Check that the TLS folder holds what a client needs.
fn with_tls(host: String, tls: Option<PathBuf>, from: &str) -> Result<Endpoint, EngineError> {
    if let Some(dir) = &tls {
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            if !dir.join(f).is_file() {
                return Err(EngineError::Unreachable(format!(
                    "{from} asks for TLS, and `{}` has no `{f}`; it needs ca.pem, cert.pem and key.pem",
                    dir.display()
                )));
            }
        }
    }
    Ok(Endpoint { host, tls })
}

fn config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"),
    }
}

fn current_context(config: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(config.join("config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["currentContext"].as_str().map(str::to_string)
}

/// The docker endpoint of context `name`, and its TLS folder when it has one.
fn context(config: &std::path::Path, name: &str) -> Result<(String, Option<PathBuf>), EngineError> {
    let meta = config.join("contexts").join("meta");
    let entries = std::fs::read_dir(&meta).map_err(|_| missing(name, &meta))?;
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("meta.json")) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if json["Name"].as_str() != Some(name) {
            continue;
        }
        let host = json["Endpoints"]["docker"]["Host"]
            .as_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                EngineError::Unreachable(format!(
                    "the docker context `{name}` names no docker endpoint"
                ))
            })?;
        if json["Endpoints"]["docker"]["SkipTLSVerify"].as_bool() == Some(true) {
            return Err(EngineError::Unreachable(format!(
                "the docker context `{name}` skips verifying the engine's certificate, which strata does not do; \
                 give the context the engine's CA (`docker context update {name} --docker \"host={host},ca=…,cert=…,key=…\"`)"
            )));
        }
        let tls_dir = config
            .join("contexts")
            .join("tls")
            .join(entry.file_name())
            .join("docker");
        return Ok((host.to_string(), tls_dir.is_dir().then_some(tls_dir)));
    }
    Err(missing(name, &meta))
}

fn missing(name: &str, meta: &std::path::Path) -> EngineError {
    EngineError::Unreachable(format!(
        "the docker context `{name}` does not exist (looked in {}); `docker context ls` lists them",
        meta.display()
    ))
}
