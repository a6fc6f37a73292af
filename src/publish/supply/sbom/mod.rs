//! Software bills of materials: the packages an image holds, read from its
//! package database through the engine's archive endpoint, with no
//! container run: Debian and Ubuntu (`/var/lib/dpkg/status`), Alpine
//! (`/lib/apk/db/installed`), Rocky/RHEL 9 and Fedora
//! (`/var/lib/rpm/rpmdb.sqlite`, `rpm.rs`); the distribution from
//! `/etc/os-release`.
//! Written as SPDX 2.3 JSON (`spdx.rs`) or CycloneDX 1.6 JSON
//! (`cyclonedx.rs`); read back for "which images hold package X"
//! (`version.rs` compares versions). Knows nothing of the graph.

pub mod cyclonedx;
pub mod rpm;
pub mod spdx;
pub mod version;

use crate::engine::{Engine, EngineError};

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The source package, when it differs from the name (`openssl` for `libssl3`).
    pub source: Option<String>,
    /// `deb`, `apk` or `rpm`: the purl type.
    pub kind: &'static str,
}

/// What an image holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    /// `/etc/os-release`'s `ID` and `VERSION_ID` (`debian`, `12`).
    pub distro: Option<(String, String)>,
    pub packages: Vec<Package>,
}

impl Package {
    /// Its package URL: `pkg:deb/debian/openssl@3.0.15-1?arch=amd64&distro=debian-12`.
    pub fn purl(&self, distro: Option<&(String, String)>) -> String {
        let namespace = match (self.kind, distro) {
            (_, Some((id, _))) => id.as_str(),
            ("apk", None) => "alpine",
            ("rpm", None) => "redhat",
            _ => "debian",
        };
        // rpm's epoch is a qualifier of its purl; dpkg's stays in the version.
        let (epoch, version) = match self.version.split_once(':') {
            Some((e, v)) if self.kind == "rpm" => (Some(e), v),
            _ => (None, self.version.as_str()),
        };
        let mut purl = format!(
            "pkg:{}/{namespace}/{}@{}?arch={}",
            self.kind,
            crate::util::url::encode(&self.name),
            crate::util::url::encode(version),
            crate::util::url::encode(&self.arch)
        );
        if let Some(epoch) = epoch {
            purl.push_str(&format!("&epoch={epoch}"));
        }
        if let Some((id, version)) = distro.filter(|(_, v)| !v.is_empty()) {
            purl.push_str(&format!("&distro={id}-{version}"));
        }
        if let Some(source) = &self.source {
            purl.push_str(&format!("&upstream={}", crate::util::url::encode(source)));
        }
        purl
    }
}

/// Read what `image` holds through `engine` (five archive requests at most:
/// os-release and its link target, then the first package database found).
pub async fn inventory(engine: &dyn Engine, image: &str) -> Result<Inventory, EngineError> {
    let text = |entry: Option<crate::engine::PathEntry>| {
        entry
            .and_then(|e| e.content)
            .map(|c| String::from_utf8_lossy(&c).into_owned())
    };
    let mut os = engine.read_path(image, "/etc/os-release").await?;
    if let Some(link) = os
        .as_ref()
        .filter(|e| e.kind == b'2')
        .map(|e| e.link.clone())
    {
        let target = match link.starts_with('/') {
            true => link,
            false => format!("/etc/{link}"),
        };
        os = engine.read_path(image, &target).await?;
    }
    let distro = text(os).map(|t| os_release(&t));
    if let Some(status) = text(engine.read_path(image, "/var/lib/dpkg/status").await?) {
        let packages = dpkg(&status);
        return Ok(Inventory { distro, packages });
    }
    if let Some(db) = text(engine.read_path(image, "/lib/apk/db/installed").await?) {
        let packages = apk(&db);
        return Ok(Inventory { distro, packages });
    }
    let bytes = |e: Option<crate::engine::PathEntry>| e.and_then(|e| e.content);
    let Some(db) = bytes(engine.read_path(image, "/var/lib/rpm/rpmdb.sqlite").await?) else {
        return Ok(Inventory {
            distro,
            packages: Vec::new(),
        });
    };
    let wal = bytes(
        engine
            .read_path(image, "/var/lib/rpm/rpmdb.sqlite-wal")
            .await?,
    );
    let packages = rpm::sqlite(&db, wal.as_deref().filter(|w| !w.is_empty()))
        .map_err(|e| EngineError::Failed(format!("reading /var/lib/rpm/rpmdb.sqlite: {e}")))?;
    Ok(Inventory { distro, packages })
}

/// `ID` and `VERSION_ID` of an os-release file.
fn os_release(text: &str) -> (String, String) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("ID"), get("VERSION_ID"))
}

/// The installed packages of a dpkg status file.
pub fn dpkg(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields = std::collections::HashMap::new();
        for line in para.lines() {
            if line.starts_with([' ', '\t']) {
                continue; // a continuation (descriptions, conffiles)
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k, v.trim());
            }
        }
        let installed = fields
            .get("Status")
            .is_some_and(|s| s.split_whitespace().last() == Some("installed"));
        let (Some(name), Some(version), true) =
            (fields.get("Package"), fields.get("Version"), installed)
        else {
            continue;
        };
        let source = fields
            .get("Source")
            .map(|s| s.split_whitespace().next().unwrap_or_default().to_string())
            .filter(|s| s != name);
        out.push(Package {
            name: name.to_string(),
            version: version.to_string(),
            arch: fields.get("Architecture").unwrap_or(&"").to_string(),
            source,
            kind: "deb",
        });
    }
    out.sort();
    out
}

/// The packages of an apk database.
pub fn apk(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let get = |k: &str| para.lines().find_map(|l| l.strip_prefix(&format!("{k}:")));
        if let (Some(name), Some(version)) = (get("P"), get("V")) {
            out.push(Package {
                name: name.into(),
                version: version.into(),
                arch: get("A").unwrap_or_default().into(),
                source: get("o").filter(|o| *o != name).map(str::to_string),
                kind: "apk",
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_keeps_installed_packages_only() {
        let status = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl (3.0.15-1~deb12u1)\nVersion: 3.0.15-1~deb12u1\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b7\nArchitecture: amd64\n";
        let p = dpkg(status);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].name.as_str(), p[0].source.as_deref()), ("bash", None));
        assert_eq!(p[1].source.as_deref(), Some("openssl"));
        let distro = ("debian".to_string(), "12".to_string());
        assert_eq!(
            p[0].purl(Some(&distro)),
            "pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64&distro=debian-12"
        );
    }

    #[test]
    fn apk_database_is_read() {
        let db =
            "C:Q1x\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\n";
        let p = apk(db);
        assert_eq!(
            p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["busybox", "musl"]
        );
        assert_eq!(p[1].source, None);
    }
}
