//! Which engine the docker CLI would talk to, found the same way:
//! `DOCKER_HOST` (unless unset or empty), else the context named by
//! `DOCKER_CONTEXT` or the Docker config's `currentContext`, else the
//! default socket. A context is read from the Docker config folder
//! (`DOCKER_CONFIG`, else `~/.docker`): `contexts/meta/*/meta.json`.

use std::path::PathBuf;

pub const DEFAULT: &str = "unix:///var/run/docker.sock";

/// The engine's address, or why it cannot be found (said to the user).
pub fn endpoint() -> Result<String, String> {
    if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
        return Ok(host);
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
        return Ok(DEFAULT.into());
    }
    let (host, tls) = context(&config, &name)?;
    if tls {
        return Err(format!(
            "the docker context `{name}` connects with TLS, which strata does not support yet; \
             reach the engine through a socket or plain tcp:// in DOCKER_HOST"
        ));
    }
    if host.starts_with("ssh://") {
        return Err(format!(
            "the docker context `{name}` is `{host}`, and strata does not speak ssh; \
             forward the socket (`ssh -NL /tmp/docker.sock:/var/run/docker.sock HOST`) \
             and set DOCKER_HOST=unix:///tmp/docker.sock"
        ));
    }
    Ok(host)
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

/// The docker endpoint of context `name`, and whether it has TLS material.
fn context(config: &std::path::Path, name: &str) -> Result<(String, bool), String> {
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
            .ok_or_else(|| format!("the docker context `{name}` names no docker endpoint"))?;
        let tls_dir = config
            .join("contexts")
            .join("tls")
            .join(entry.file_name())
            .join("docker");
        return Ok((host.to_string(), tls_dir.is_dir()));
    }
    Err(missing(name, &meta))
}

fn missing(name: &str, meta: &std::path::Path) -> String {
    format!(
        "the docker context `{name}` does not exist (looked in {}); `docker context ls` lists them",
        meta.display()
    )
}
