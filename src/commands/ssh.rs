//! `--ssh`: the SSH agents a BuildKit build may forward to
//! `RUN --mount=type=ssh`, found as docker finds them: `default` is the
//! agent of `SSH_AUTH_SOCK`; `ID=PATH` is an agent's socket, or a private
//! key, which goes into an agent of this run's own (OpenSSH's `ssh-agent`,
//! started here and stopped when the run ends; the key is never copied).
//! Knows nothing of builds.

use crate::engine::SshAgent;
use crate::util::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The agents `specs` name, each checked now (exit 2 before anything builds).
pub fn agents(specs: &[String]) -> Result<Vec<SshAgent>> {
    let mut out: Vec<SshAgent> = Vec::new();
    for spec in specs {
        let (id, paths) = match spec.split_once('=') {
            Some((id, paths)) => (id, paths.split(',').collect::<Vec<_>>()),
            None => (spec.as_str(), Vec::new()),
        };
        if id.is_empty() || out.iter().any(|a| a.id == id) {
            return Err(
                Error::input(format!("invalid `--ssh {spec}`: an empty or repeated id"))
                    .help("give `--ssh default` or `--ssh ID=PATH`, each id once"),
            );
        }
        let agent = match paths.as_slice() {
            [] | [""] => default_agent(spec)?,
            [path] if is_socket(Path::new(path)) => SshAgent::socket(id, PathBuf::from(path)),
            keys => private_agent(id, keys)?,
        };
        out.push(SshAgent {
            id: id.to_string(),
            ..agent
        });
    }
    Ok(out)
}

fn default_agent(spec: &str) -> Result<SshAgent> {
    let sock = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty());
    match sock.map(PathBuf::from) {
        Some(path) if is_socket(&path) => Ok(SshAgent::socket(spec, path)),
        Some(path) => Err(Error::input(format!(
            "--ssh {spec}: SSH_AUTH_SOCK is `{}`, which is not a socket",
            path.display()
        ))
        .help("start an agent (`eval $(ssh-agent)`, `ssh-add`) or give --ssh ID=KEYFILE")),
        None => Err(
            Error::input(format!("--ssh {spec}: SSH_AUTH_SOCK is not set"))
                .help("start an agent (`eval $(ssh-agent)`, `ssh-add`) or give --ssh ID=KEYFILE"),
        ),
    }
}

#[cfg(unix)]
fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(not(unix))]
fn is_socket(_: &Path) -> bool {
    false
}

/// An `ssh-agent` of our own holding `keys`; it stops when the last
/// request that offers it is dropped.
fn private_agent(id: &str, keys: &[&str]) -> Result<SshAgent> {
    for key in keys {
        if !Path::new(key).is_file() {
            return Err(Error::input(format!(
                "--ssh {id}=…: `{key}` is neither an agent's socket nor a key file"
            ))
            .help("give the path of a private key or of an agent's socket"));
        }
    }
    let dir = std::env::temp_dir().join(format!("strata-ssh-{}-{id}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::write(&dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let socket = dir.join("agent.sock");
    let missing = |e: std::io::Error| {
        Error::input(format!(
            "--ssh {id}=KEY needs OpenSSH's ssh-agent and ssh-add: {e}"
        ))
        .help("install the OpenSSH client (Debian: openssh-client), or give an agent's socket")
    };
    let child = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(missing)?;
    let owned = Owned {
        child: std::sync::Mutex::new(child),
        dir,
    };
    for _ in 0..100 {
        if is_socket(&socket) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for key in keys {
        let out = std::process::Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &socket)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(missing)?;
        if !out.status.success() {
            return Err(Error::input(format!(
                "--ssh {id}: ssh-add cannot load `{key}`: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .help("a key with a passphrase must be loaded into your own agent: ssh-add it and give --ssh default"));
        }
    }
    Ok(SshAgent {
        id: id.to_string(),
        socket,
        owned: Some(Arc::new(owned)),
    })
}

/// The agent process this run started, and its folder.
#[derive(Debug)]
pub struct Owned {
    child: std::sync::Mutex<std::process::Child>,
    dir: PathBuf,
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Ok(child) = self.child.get_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_specs_are_refused() {
        assert!(super::agents(&["=x".into()]).is_err());
        assert!(super::agents(&["k=/nonexistent/key".into()]).is_err());
    }
}
