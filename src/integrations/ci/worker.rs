//! What a CI job needs besides strata's own command, so that the emitted
//! file runs with no hand edits: how strata gets onto the worker (a
//! command, or a container image that has it), how the worker logs in to
//! the registry (by the names of the system's secrets, never their
//! values), which runner runs it, and whether artifacts are uploaded.
//! Every value is checked before anything is written: names of secrets
//! are identifiers, and the rest passes the same injection rules as the
//! invocation (`carried`).

use super::{carried, quote, System};
use crate::util::error::{Error, Result};

/// The worker options of `strata ci`, as given (None: today's default).
#[derive(Debug, Clone, Default)]
pub struct Worker {
    /// A shell command run first in every job (`cargo install …`).
    pub setup: Option<String>,
    /// A container image that has strata and the docker CLI; the job runs
    /// in it with the engine's socket.
    pub image: Option<String>,
    /// GitHub `runs-on`, GitLab `tags`, Jenkins agent label, Zuul nodeset.
    pub runner: Option<String>,
    /// The login: GitHub secrets or GitLab CI variables naming the user
    /// and the password; or the Jenkins credentials ID / Zuul secret name.
    pub login_user: Option<String>,
    pub login_password: Option<String>,
    pub login_credentials: Option<String>,
    /// Upload the summaries and JUnit files (the default).
    pub artifacts: bool,
    /// The registry the set is pushed to (from the tree), for the login.
    pub registry: String,
    /// Tekton and Argo: the engine the tasks use instead of a
    /// Docker-in-Docker sidecar; resource requests (`cpu=2,memory=4Gi`);
    /// the service account; where the tree is cloned from, at which
    /// revision (default: the tree's `origin` and its HEAD commit).
    pub engine: Option<String>,
    pub requests: Option<String>,
    pub service_account: Option<String>,
    pub git_url: String,
    pub git_revision: String,
}

/// Where a login puts the two values for the command that logs in.
pub const USER_VAR: &str = "STRATA_REGISTRY_USER";
pub const PASSWORD_VAR: &str = "STRATA_REGISTRY_PASSWORD";

impl Worker {
    /// The options for `system`, each checked: exit 2 naming the value
    /// and what to give instead.
    pub fn checked(self, system: System) -> Result<Worker> {
        for (flag, value) in [
            ("--setup", &self.setup),
            ("--image", &self.image),
            ("--runner", &self.runner),
        ] {
            if let Some(v) = value {
                carried(system, flag, v)?;
                if v.trim().is_empty() {
                    return Err(Error::input(format!("{flag} is empty"))
                        .help("give a value, or leave the option out"));
                }
            }
        }
        let pair = self.login_user.is_some() || self.login_password.is_some();
        let by_id = self.login_credentials.is_some();
        match system {
            System::Github | System::Gitlab if by_id => {
                return Err(Error::input("--login-credentials names a Jenkins credential or a Zuul secret")
                    .help("on GitHub and GitLab, name the two secrets (variables): --login-user NAME --login-password NAME"));
            }
            System::Jenkins | System::Zuul | System::Tekton | System::Argo if pair => {
                return Err(Error::input("--login-user and --login-password name GitHub secrets or GitLab variables")
                    .help("on Jenkins give a username-password credential's ID, on Zuul a secret with `username` and `password`, on Kubernetes a Secret of type dockerconfigjson: --login-credentials NAME"));
            }
            _ => {}
        }
        if pair && (self.login_user.is_none() || self.login_password.is_none()) {
            return Err(Error::input("a login needs both --login-user and --login-password")
                .help("name the secret (variable) that holds the user and the one that holds the password"));
        }
        for (flag, name) in [
            ("--login-user", &self.login_user),
            ("--login-password", &self.login_password),
            ("--login-credentials", &self.login_credentials),
        ] {
            if let Some(n) = name {
                identifier(flag, n, flag == "--login-credentials")?;
            }
        }
        if (pair || by_id) && self.registry.is_empty() {
            return Err(
                Error::input("a login was asked for, and the tree names no `registry:`")
                    .help("set `registry:` in strata.yaml (or --set registry=HOST)"),
            );
        }
        self.kube_checks(system)?;
        if system == System::Zuul && self.image.is_some() {
            return Err(
                Error::input("--image: Zuul runs jobs on nodes, not in a container image")
                    .help("use --runner NODESET (a nodeset whose image has strata) or --setup CMD"),
            );
        }
        carried(system, "the registry", &self.registry)?;
        Ok(self)
    }

    /// The Kubernetes options: only for Tekton and Argo, which need an
    /// image and a place to clone from.
    fn kube_checks(&self, system: System) -> Result<()> {
        let kube = matches!(system, System::Tekton | System::Argo);
        let kube_only = [
            ("--engine", &self.engine),
            ("--requests", &self.requests),
            ("--service-account", &self.service_account),
        ];
        for (flag, value) in kube_only {
            match value {
                Some(_) if !kube => {
                    return Err(Error::input(format!(
                        "{flag} is for `strata ci tekton` and `strata ci argo`"
                    ))
                    .help("leave it out for this system"));
                }
                Some(v) => carried(system, flag, v)?,
                None => {}
            }
        }
        if kube {
            if self.image.is_none() {
                return Err(Error::input("a Kubernetes task runs in a container image: give --image IMAGE")
                    .help("an image that has strata, git and the docker CLI, e.g. one built from this repository"));
            }
            if self.git_url.is_empty() {
                return Err(Error::input(
                    "the tasks clone the tree, and it has no `origin` remote",
                )
                .help("give --git-url URL (and --git-revision REV)"));
            }
            carried(system, "--git-url", &self.git_url)?;
            carried(system, "--git-revision", &self.git_revision)?;
            if let Some(r) = &self.requests {
                let ok = r.split(',').all(|kv| {
                    kv.split_once('=')
                        .is_some_and(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
                });
                if !ok {
                    return Err(
                        Error::input(format!("--requests `{r}`: not NAME=QUANTITY,…"))
                            .help("e.g. --requests cpu=2,memory=4Gi"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Whether the jobs log in.
    pub fn logs_in(&self) -> bool {
        self.login_user.is_some() || self.login_credentials.is_some()
    }

    /// The shell command that logs in with the two variables set.
    pub fn login_command(&self) -> String {
        format!(
            "printf '%s' \"${PASSWORD_VAR}\" | docker login {} --username \"${USER_VAR}\" --password-stdin",
            quote(&self.registry)
        )
    }
}

/// A secret's name must be an identifier (`A-Z a-z 0-9 _`, not starting
/// with a digit); a credentials ID may also hold `-` and `.`.
fn identifier(flag: &str, name: &str, id: bool) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || (id && (c == '-' || c == '.'));
    let ok = !name.is_empty()
        && name.chars().all(ok_char)
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        return Ok(());
    }
    Err(Error::input(format!(
        "{flag} `{}`: not the name of a secret",
        name.escape_debug()
    ))
    .help("give the secret's (variable's) name, e.g. REGISTRY_PASSWORD, never its value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> Worker {
        Worker {
            registry: "registry.example:5000".into(),
            artifacts: true,
            ..Default::default()
        }
    }

    #[test]
    fn secret_names_are_identifiers_and_logins_fit_the_system() {
        let named = |u: &str, p: &str| Worker {
            login_user: Some(u.into()),
            login_password: Some(p.into()),
            ..worker()
        };
        assert!(named("REG_USER", "REG_PASS")
            .checked(System::Github)
            .is_ok());
        for bad in ["${{ github.token }}", "a b", "1X", "X;rm", ""] {
            assert!(named("U", bad).checked(System::Github).is_err(), "{bad}");
        }
        assert!(named("U", "P").checked(System::Jenkins).is_err());
        let id = Worker {
            login_credentials: Some("registry-creds".into()),
            ..worker()
        };
        assert!(id.clone().checked(System::Jenkins).is_ok());
        assert!(id.checked(System::Gitlab).is_err());
        let half = Worker {
            login_user: Some("U".into()),
            ..worker()
        };
        assert!(half.checked(System::Github).is_err());
        let no_registry = Worker {
            registry: String::new(),
            ..named("U", "P")
        };
        assert!(no_registry.checked(System::Github).is_err());
        let setup = Worker {
            setup: Some("echo ${{ secrets.X }}".into()),
            ..worker()
        };
        assert!(setup.checked(System::Github).is_err());
        let image = Worker {
            image: Some("strata:1".into()),
            ..worker()
        };
        assert!(image.checked(System::Zuul).is_err());
    }
}
