//! `render.compat: kolla`: the template helpers OpenStack Kolla gives its
//! Dockerfile templates, behaving as Kolla 23's own (`kolla/template/
//! filters.py` and `methods.py`), so Kolla's tree renders byte for byte as
//! `kolla-build --template-only` renders it.
//!
//! - the filter `customizable(list, type)`: the per-image customisation
//!   variables `<image>_<type>_override`, `_append`, `_remove`;
//! - `debian_package_install(packages, clean=true)`;
//! - `handle_repos(names, mode)` and `cleanup_repos()`, from Kolla's
//!   repository data (`render.repos_yaml`, `render.repos_yaml_override`);
//! - `raise_error(message)`.

use crate::tree::config::Tree;
use crate::util::error::{Error, Result};
use indexmap::IndexMap;
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, ErrorKind, State};
use serde_json::Value as Json;
use std::collections::HashSet;
use std::sync::Arc;

/// One repository's settings (`url`, `suite`, `distro`, ...), in file order.
type Repo = IndexMap<String, Json>;
/// The commands that write `/etc/yum.repos.d/REPO.repo` for an rpm
/// repository (Kolla's `handle_repos`, enable).
fn yum_repo(
    repo: &str,
    r: &Repo,
    field: &dyn Fn(&str) -> std::result::Result<String, minijinja::Error>,
) -> std::result::Result<String, minijinja::Error> {
    let mut out = String::new();
    let name = field("name")?;
    out += &format!("grep -rlF '[{name}]' /etc/yum.repos.d/ 2>/dev/null | xargs -r rm -f");
    out += " && ";
    out += &format!("echo '[{name}]' >/etc/yum.repos.d/{repo}.repo && echo 'name={name}' >>/etc/yum.repos.d/{repo}.repo && echo 'enabled=1' >>/etc/yum.repos.d/{repo}.repo");
    if truthy(get(r, "gpgcheck")) {
        out += &format!(
            " && echo 'gpgcheck={}' >>/etc/yum.repos.d/{repo}.repo",
            field("gpgcheck")?
        );
    }
    if truthy(get(r, "repo_gpgcheck")) {
        out += &format!(
            " && echo 'repo_gpgcheck={}' >>/etc/yum.repos.d/{repo}.repo",
            field("repo_gpgcheck")?
        );
    }
    if !["baseurl", "metalink", "mirrorlist"]
        .iter()
        .any(|k| r.contains_key(*k))
    {
        return Err(error(format!(
            "Repository '{repo}' has no baseurl, metalink, or mirrorlist"
        )));
    }
    if !r.contains_key("gpgkey") {
        return Err(error(format!("Repository '{repo}' has no gpgkey")));
    }
    for (i, key) in field("gpgkey")?.lines().enumerate() {
        if i == 0 {
            out += &format!(" && echo 'gpgkey={key}' >>/etc/yum.repos.d/{repo}.repo");
        } else {
            out += &format!(" && echo '       {key}' >>/etc/yum.repos.d/{repo}.repo");
        }
    }
    if r.contains_key("baseurl") {
        for url in field("baseurl")?.lines() {
            out += &format!(" && echo 'baseurl={url}' >>/etc/yum.repos.d/{repo}.repo");
        }
    } else if r.contains_key("metalink") {
        out += &format!(
            " && echo 'metalink={}' >>/etc/yum.repos.d/{repo}.repo",
            field("metalink")?
        );
    } else {
        out += &format!(
            " && echo 'mirrorlist={}' >>/etc/yum.repos.d/{repo}.repo",
            field("mirrorlist")?
        );
    }
    Ok(out)
}

/// Section (`deb`, `debian`, `debian-aarch64`, ...) → repository name → settings.
type RepoData = IndexMap<String, IndexMap<String, Repo>>;

const BACKUP_DIR: &str = "/tmp/kolla-repos-backup";

/// Add Kolla's helpers to `env`.
pub fn install(env: &mut Environment<'static>, tree: &Tree) -> Result<()> {
    let repos = Arc::new(Repos::load(tree)?);
    env.add_filter("customizable", customizable);
    env.add_function("debian_package_install", debian_package_install);
    env.add_function(
        "raise_error",
        |message: String| -> std::result::Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    let r = repos.clone();
    env.add_function(
        "handle_repos",
        move |state: &State, names: Value, mode: String| r.handle(state, &names, &mode),
    );
    env.add_function("cleanup_repos", move |state: &State| repos.cleanup(state));
    Ok(())
}

fn error(message: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message.into())
}

/// Kolla's `customizable`: `<image>_<type>_override` replaces the list,
/// `_append` extends it, `_remove` takes each listed item out once.
fn customizable(
    state: &State,
    list: Value,
    call_type: String,
) -> std::result::Result<Value, minijinja::Error> {
    if list.is_undefined() {
        return Ok(list);
    }
    let image = state
        .lookup("image_name")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let name = format!("{}_{call_type}_", image.replace('-', "_"));
    if let Some(v) = state.lookup(&format!("{name}override")) {
        return Ok(v);
    }
    let mut items: Vec<Value> = list
        .try_iter()
        .map_err(|_| error(format!("customizable: `{list}` is not a list")))?
        .collect();
    if let Some(more) = state.lookup(&format!("{name}append")) {
        items.extend(more.try_iter()?);
    }
    if let Some(gone) = state.lookup(&format!("{name}remove")) {
        for removal in gone.try_iter()? {
            if let Some(i) = items.iter().position(|v| *v == removal) {
                items.remove(i);
            }
        }
    }
    Ok(Value::from(items))
}

/// Kolla's `debian_package_install`: `apt-get install` for package names,
/// download and `dpkg -i` for `http…` URLs, joined with `&&`.
fn debian_package_install(
    packages: Value,
    clean: Option<bool>,
) -> std::result::Result<String, minijinja::Error> {
    let clean = clean.unwrap_or(true);
    let (mut regular, mut urls) = (Vec::new(), Vec::new());
    for p in packages.try_iter()? {
        let p = p.to_string();
        if p.starts_with("http") {
            urls.push(p);
        } else {
            regular.push(p);
        }
    }
    let mut cmds = Vec::new();
    if !regular.is_empty() {
        cmds.push("apt-get --error-on=any update".to_string());
        cmds.push(format!(
            "apt-get -y install --no-install-recommends {}",
            regular.join(" ")
        ));
        if clean {
            cmds.push("apt-get clean".into());
            cmds.push("rm -rf /var/lib/apt/lists/*".into());
        }
    }
    for url in urls {
        let name = &url[url.rfind('/').map_or(0, |i| i + 1)..];
        cmds.push(format!("curl --location {url} -o {name}"));
        cmds.push(format!("dpkg -i {name}"));
        cmds.push(format!("rm -rf {name}"));
    }
    Ok(cmds.join(" && "))
}

/// A YAML value as Python's `str()` prints it.
fn py(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Python truthiness of an optional setting.
fn truthy(v: Option<&Json>) -> bool {
    match v {
        None | Some(Json::Null) | Some(Json::Bool(false)) => false,
        Some(Json::String(s)) => !s.is_empty(),
        Some(Json::Number(n)) => n.as_f64() != Some(0.0),
        Some(Json::Array(a)) => !a.is_empty(),
        Some(Json::Object(o)) => !o.is_empty(),
        Some(Json::Bool(true)) => true,
    }
}

fn get<'a>(repo: &'a Repo, key: &str) -> Option<&'a Json> {
    repo.get(key)
}

/// One distribution's repositories, and which distribution that is.
struct Lists {
    list: IndexMap<String, Repo>,
    default_list: IndexMap<String, Repo>,
    package_type: String,
    distro: String,
    arch: String,
}

/// The repository data: the merged (`repos_yaml` + override) and the plain one.
struct Repos {
    merged: Option<RepoData>,
    default: Option<RepoData>,
    overridden: bool,
}

impl Repos {
    fn load(tree: &Tree) -> Result<Repos> {
        let r = &tree.config.render;
        if r.repos_yaml.is_empty() {
            return Ok(Repos {
                merged: None,
                default: None,
                overridden: false,
            });
        }
        let read = |rel: &str| -> Result<RepoData> {
            let path = tree.root.join(rel);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::read(&path, e).help("`render.repos_yaml` names Kolla's repository data, `kolla/template/repos.yaml` in a checkout of Kolla")
            })?;
            crate::util::yaml::parse(rel, &text)
        };
        let default = read(&r.repos_yaml)?;
        let mut merged = default.clone();
        let overridden = !r.repos_yaml_override.is_empty();
        if overridden {
            for (section, repos) in read(&r.repos_yaml_override)? {
                merged.entry(section).or_default().extend(repos);
            }
        }
        Ok(Repos {
            merged: Some(merged),
            default: Some(default),
            overridden,
        })
    }

    fn data(&self) -> std::result::Result<(&RepoData, &RepoData), minijinja::Error> {
        match (&self.merged, &self.default) {
            (Some(m), Some(d)) => Ok((m, d)),
            _ => Err(error(
                "Kolla's repository data is not configured: set `render.repos_yaml` in strata.yaml (`kolla/template/repos.yaml` in a checkout of Kolla)",
            )),
        }
    }

    /// The repositories of the image's distribution: merged and default.
    fn lists(&self, state: &State) -> std::result::Result<Lists, minijinja::Error> {
        let (merged, default) = self.data()?;
        let var = |name: &str| {
            state
                .lookup(name)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        let (package_type, distro, arch) = (
            var("base_package_type"),
            var("base_distro"),
            var("base_arch"),
        );
        Ok(Lists {
            list: build_repo_list(merged, &package_type, &distro, &arch),
            default_list: build_repo_list(default, &package_type, &distro, &arch),
            package_type,
            distro,
            arch,
        })
    }

    /// Kolla's `handle_repos`. Over 100 lines on purpose: it follows
    /// `kolla/template/methods.py` branch for branch, so that the two can
    /// be read side by side.
    fn handle(
        &self,
        state: &State,
        names: &Value,
        mode: &str,
    ) -> std::result::Result<String, minijinja::Error> {
        if names.kind() != ValueKind::Seq {
            return Err(error(
                "handle_repos: the first argument should be a list of repositories",
            ));
        }
        let Lists {
            list,
            default_list,
            package_type,
            distro,
            arch,
        } = self.lists(state)?;
        let var = |name: &str| {
            state
                .lookup(name)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        if package_type == "rpm" && self.overridden {
            check_rpm_overrides(&list, &default_list)?;
        }
        let names: Vec<String> = names.try_iter()?.map(|v| v.to_string()).collect();
        let mut commands = String::new();
        let mut backed_up = HashSet::new();
        for (index, repo) in names.iter().enumerate() {
            let last = index == names.len() - 1;
            let Some(r) = list.get(repo) else {
                return Err(error(format!(
                    "handle_repos: no repository `{repo}` for {distro} ({package_type}, {arch}) in the repository data (sections `{package_type}`, `{distro}`, `{distro}-{arch}`); image `{}`",
                    var("image_name")
                )));
            };
            let field = |key: &str| {
                get(r, key).map(py).ok_or_else(|| {
                    error(format!("handle_repos: repository `{repo}` has no `{key}`"))
                })
            };
            if package_type == "rpm" {
                if mode == "enable" {
                    if !truthy(get(r, "distro")) {
                        if truthy(get(r, "build_only")) {
                            let file = file_group(r, default_list.get(repo))
                                .unwrap_or_else(|| format!("{repo}.repo"));
                            if backed_up.insert(file.clone()) {
                                commands += &format!("mkdir -p {BACKUP_DIR} && cp /etc/yum.repos.d/{file} {BACKUP_DIR}/{file} 2>/dev/null || true && touch {BACKUP_DIR}/{file}.enabled && ");
                            }
                        }
                        commands += &yum_repo(repo, r, &field)?;
                    } else {
                        commands +=
                            &format!("dnf config-manager --enable {} || true", field("name")?);
                    }
                    if !last {
                        commands += " && ";
                    }
                } else if mode == "disable" && truthy(get(r, "distro")) {
                    commands += &format!("dnf config-manager --disable {} || true", field("name")?);
                }
            } else if package_type == "deb" && mode == "enable" && !truthy(get(r, "distro")) {
                if truthy(get(r, "build_only")) {
                    let file = format!("/etc/apt/sources.list.d/{repo}.sources");
                    if backed_up.insert(file) {
                        commands += &format!("mkdir -p {BACKUP_DIR} && cp /etc/apt/sources.list.d/{repo}.sources {BACKUP_DIR}/{repo}.sources 2>/dev/null || true && touch {BACKUP_DIR}/{repo}.enabled && ");
                    }
                }
                let key = field("gpg_key")?;
                let signed_by = if key.starts_with('/') {
                    key
                } else {
                    format!("/etc/kolla/apt-keys/{key}")
                };
                let suite = field("suite")?.replace(
                    "{openstack_release_codename}",
                    &var("openstack_release_codename").to_lowercase(),
                );
                let (url, component) = (field("url")?, field("component")?);
                let file = format!("/etc/apt/sources.list.d/{repo}.sources");
                commands += &format!("echo 'Uris: {url}' >{file} && echo 'Components: {component}' >>{file} && echo 'Types: deb' >>{file} && echo 'Suites: {suite}' >>{file} && echo 'Signed-By: {signed_by}' >>{file}");
                if truthy(get(r, "trusted")) {
                    commands += &format!(" && echo 'Trusted: yes' >>{file}");
                }
                if r.contains_key("arch") {
                    commands += &format!(" && echo 'Architectures: {}' >>{file}", field("arch")?);
                }
                if !last {
                    commands += " && ";
                }
            }
        }
        Ok(if commands.is_empty() {
            commands
        } else {
            format!("RUN {commands}")
        })
    }

    /// Kolla's `cleanup_repos`: restore or remove the `build_only` repositories.
    fn cleanup(&self, state: &State) -> std::result::Result<String, minijinja::Error> {
        let Lists {
            list,
            default_list,
            package_type,
            ..
        } = self.lists(state)?;
        let mut cmds = Vec::new();
        let mut restored = HashSet::new();
        for (name, r) in &list {
            if !truthy(get(r, "build_only")) {
                continue;
            }
            if package_type == "rpm" && !truthy(get(r, "distro")) {
                let own = format!("{name}.repo");
                let group = file_group(r, default_list.get(name)).unwrap_or_else(|| own.clone());
                if group != own {
                    cmds.push(format!("rm -f /etc/yum.repos.d/{own}"));
                    if !restored.insert(group.clone()) {
                        continue;
                    }
                }
                cmds.push(format!("[ -f {BACKUP_DIR}/{group}.enabled ] && ( mv {BACKUP_DIR}/{group} /etc/yum.repos.d/{group} 2>/dev/null || rm -f /etc/yum.repos.d/{group} ) || true"));
            } else if package_type == "deb" && !truthy(get(r, "distro")) {
                cmds.push(format!("[ -f {BACKUP_DIR}/{name}.enabled ] && ( mv {BACKUP_DIR}/{name}.sources /etc/apt/sources.list.d/{name}.sources 2>/dev/null || rm -f /etc/apt/sources.list.d/{name}.sources ) || true"));
            }
        }
        if cmds.is_empty() {
            return Ok(String::new());
        }
        cmds.push(format!("rm -rf {BACKUP_DIR}"));
        Ok(format!("RUN {}", cmds.join(" \\\n    && ")))
    }
}

/// The repository's `file_group`, else the one the default data gives it.
fn file_group(repo: &Repo, default: Option<&Repo>) -> Option<String> {
    [Some(repo), default]
        .into_iter()
        .flatten()
        .find_map(|r| get(r, "file_group").filter(|v| truthy(Some(v))).map(py))
}

/// Kolla's `_build_repo_list`: the sections for the package type, the
/// distribution and distribution-architecture, later ones merged over
/// earlier ones (a merged entry with its own URL is no longer `distro`).
fn build_repo_list(
    data: &RepoData,
    package_type: &str,
    distro: &str,
    arch: &str,
) -> IndexMap<String, Repo> {
    let mut result: IndexMap<String, Repo> = IndexMap::new();
    for section in [
        package_type.to_string(),
        distro.to_string(),
        format!("{distro}-{arch}"),
    ] {
        let Some(repos) = data.get(&section) else {
            continue;
        };
        for (name, info) in repos {
            match result.get_mut(name) {
                Some(existing) => {
                    existing.extend(info.iter().map(|(k, v)| (k.clone(), v.clone())));
                    if ["baseurl", "metalink", "mirrorlist", "url"]
                        .iter()
                        .any(|k| existing.contains_key(*k))
                    {
                        existing.shift_remove("distro");
                    }
                }
                None => {
                    result.insert(name.clone(), info.clone());
                }
            }
        }
    }
    result
}

/// Kolla refuses an override that takes one distro repository of a shared
/// `.repo` file away from the distro but leaves the others.
fn check_rpm_overrides(
    list: &IndexMap<String, Repo>,
    default: &IndexMap<String, Repo>,
) -> std::result::Result<(), minijinja::Error> {
    let was_distro = |r: &str| default.get(r).is_some_and(|d| truthy(get(d, "distro")));
    let overridden: Vec<&String> = list
        .iter()
        .filter(|(r, d)| !truthy(get(d, "distro")) && was_distro(r))
        .map(|(r, _)| r)
        .collect();
    if overridden.is_empty() {
        return Ok(());
    }
    let groups: HashSet<String> = overridden
        .iter()
        .filter_map(|r| {
            default
                .get(*r)
                .and_then(|d| get(d, "file_group"))
                .filter(|v| truthy(Some(v)))
                .map(py)
        })
        .collect();
    let mut still: Vec<&String> = list
        .iter()
        .filter(|(r, d)| {
            truthy(get(d, "distro"))
                && !overridden.contains(r)
                && get(d, "file_group").is_some_and(|g| groups.contains(&py(g)))
        })
        .map(|(r, _)| r)
        .collect();
    still.sort();
    if still.is_empty() {
        return Ok(());
    }
    let mut overridden = overridden;
    overridden.sort();
    Err(error(format!(
        "Repositories {overridden:?} override distro-provided repos and will remove their .repo file. Repositories {still:?} are still using distro defaults and share the same file. Please also override them in your repos.yaml."
    )))
}
