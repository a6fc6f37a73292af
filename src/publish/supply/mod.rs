//! The supply chain, the attest step of publishing. Takes the plan, the
//! run and each image's record; reads packages (`sbom`: dpkg, apk and rpm
//! databases, written as SPDX 2.3 or CycloneDX), states how each image
//! was made (`provenance`: SLSA v1 in-toto statements), and signs both
//! (`sign`: DSSE envelopes, Ed25519/ECDSA keys). Gives the files of
//! `--attest-dir`; the publish stage attaches them as referrers once the
//! release tags moved.
//!
//! The SBOM stage, after the run: for every image of the plan that an
//! engine holds (built now or up to date), its packages read through the
//! engine (`sbom`), written to `--attest-dir` as `<image>.spdx.json` (or
//! `.cdx.json`) unless the file there already describes this fingerprint.
//! Reads the plan and the run; only `registry_holders` asks a registry.

pub mod provenance;
pub mod sbom;
pub mod sign;

use crate::engine::Engine;
use crate::execute::{Run, Status};
use crate::plan::{Item, Plan};
use crate::util::error::{Error, Result};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// `--sbom-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// SPDX 2.3 JSON.
    #[default]
    Spdx,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Spdx => "spdx.json",
            Format::Cyclonedx => "cdx.json",
        }
    }
}

/// What the stage wrote (or found current) for one image.
#[derive(Debug, Clone)]
pub struct Attested {
    pub file: PathBuf,
    /// The time reading its package database took (0 when the file was current).
    pub seconds: f64,
}

/// The SBOM file of image `name` in `dir`.
pub fn file(dir: &Path, name: &str, format: Format) -> PathBuf {
    dir.join(format!("{name}.{}", format.extension()))
}

/// Whether the file already describes `fingerprint` built as `image` (an
/// image rebuilt with the same inputs, e.g. for a package update, is not).
fn current(path: &Path, fingerprint: &str, image: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let id = image.strip_prefix("sha256:").unwrap_or(image);
    if id.is_empty() || !text.contains(id) {
        return false;
    }
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let spdx = doc["documentNamespace"]
        .as_str()
        .is_some_and(|n| n.ends_with(fingerprint));
    let cdx = doc["metadata"]["properties"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["name"] == "strata:fingerprint" && p["value"] == fingerprint)
    });
    spdx || cdx
}

/// Write the SBOM of every image an engine holds; one per item (None: not held).
pub async fn sboms(
    plan: &Plan,
    run: &Run,
    engine_of: &(dyn Fn(usize) -> Arc<dyn Engine> + Sync),
    dir: &Path,
    format: Format,
) -> Result<Vec<Option<Attested>>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let id_of = |i: usize| -> Option<String> {
        let o = &run.outcomes[i];
        match o.status {
            Status::Built => o.image_id.clone(),
            Status::UpToDate => plan.items[i]
                .image_id
                .clone()
                .or_else(|| o.image_id.clone()),
            _ => None,
        }
    };
    let work = plan.items.iter().enumerate().map(|(i, item)| {
        let image = id_of(i);
        let engine = engine_of(i);
        let parent = item.parents.first().map(|&p| {
            let pi = &plan.items[p];
            (
                pi.reference.clone(),
                id_of(p).unwrap_or_default(),
                file(dir, &pi.name, format),
            )
        });
        async move {
            let image = image?;
            let path = file(dir, &item.name, format);
            if current(&path, &item.fingerprint.hash, &image) {
                return Some(Ok(Attested {
                    file: path,
                    seconds: 0.0,
                }));
            }
            Some(write(item, &image, engine.as_ref(), parent, &path, format).await)
        }
    });
    let done: Vec<Option<Result<Attested>>> =
        futures_util::stream::iter(work).buffered(4).collect().await;
    done.into_iter().map(|d| d.transpose()).collect()
}

async fn write(
    item: &Item,
    image: &str,
    engine: &dyn Engine,
    parent: Option<(String, String, PathBuf)>,
    path: &Path,
    format: Format,
) -> Result<Attested> {
    let start = Instant::now();
    let inventory = sbom::inventory(engine, image)
        .await
        .map_err(|e| Error::engine(format!("the SBOM of `{}`: {e}", item.name)))?;
    let seconds = start.elapsed().as_secs_f64();
    let parent_file = parent.as_ref().map(|(_, _, f)| {
        f.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let created = crate::util::clock::now_rfc3339();
    let subject = sbom::spdx::Subject {
        reference: &item.reference,
        digest: image,
        fingerprint: &item.fingerprint.hash,
        parent: parent
            .as_ref()
            .zip(parent_file)
            .map(|((r, d, _), f)| (r.as_str(), d.as_str(), f)),
        created: &created,
    };
    let doc = match format {
        Format::Spdx => sbom::spdx::document(&inventory, &subject),
        Format::Cyclonedx => {
            let mut doc = sbom::cyclonedx::document(&inventory, &subject);
            doc["metadata"]["properties"] =
                serde_json::json!([{"name": "strata:fingerprint", "value": item.fingerprint.hash}]);
            doc
        }
    };
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    std::fs::write(path, text).map_err(|e| Error::write(path, e))?;
    Ok(Attested {
        file: path.to_path_buf(),
        seconds,
    })
}

/// The (name, version) of every package the SBOM at `path` lists (either format).
pub fn read_packages(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read(path)
        .map_err(|e| Error::input(format!("cannot read `{}`: {e}", path.display())))?;
    packages_of(&text, &format!("`{}`", path.display()))
}

/// The (name, version) of every package an SBOM document lists; `what`
/// names it in errors.
fn packages_of(text: &[u8], what: &str) -> Result<Vec<(String, String)>> {
    let doc: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| Error::input(format!("{what} is not JSON: {e}")))?;
    if doc["bomFormat"] == "CycloneDX" {
        let comps = doc["components"].as_array().cloned().unwrap_or_default();
        return Ok(comps
            .iter()
            .filter_map(|c| {
                Some((
                    c["name"].as_str()?.to_string(),
                    c["version"].as_str()?.to_string(),
                ))
            })
            .collect());
    }
    Ok(sbom::spdx::packages(&doc))
}

/// `name version` of each package that one of `queries` matches.
fn hits(packages: Vec<(String, String)>, queries: &[sbom::version::Query]) -> Vec<String> {
    packages
        .into_iter()
        .filter(|(n, v)| queries.iter().any(|q| q.matches(n, v)))
        .map(|(n, v)| format!("{n} {v}"))
        .collect()
}

/// What the registry holds of `images` ((name, reference) pairs): the
/// images whose attached SBOM holds a package `queries` match, with the
/// matches, in the order given; and the images with no SBOM there.
///
/// An image's packages never change under its digest, so they are kept in
/// the cache folder by digest: asking again costs one request per image
/// (its tag's digest) instead of four.
pub async fn registry_holders(
    registry: &crate::publish::registry::Registry,
    images: &[(String, String)],
    queries: &[sbom::version::Query],
) -> Result<(Vec<(String, Vec<String>)>, Vec<String>)> {
    let reads = images.iter().map(|(name, reference)| async move {
        let found = registry_packages(registry, reference).await?;
        Ok::<_, Error>((name.clone(), found.map(|p| hits(p, queries))))
    });
    let done: Vec<Result<(String, Option<Vec<String>>)>> = futures_util::stream::iter(reads)
        .buffered(32)
        .collect()
        .await;
    let (mut held, mut missing) = (Vec::new(), Vec::new());
    for d in done {
        match d? {
            (name, None) => missing.push(name),
            (name, Some(h)) if !h.is_empty() => held.push((name, h)),
            _ => {}
        }
    }
    Ok((held, missing))
}

/// The packages of the image at `reference` by its attached SBOM (None:
/// not there), from the cache when its digest was read before.
async fn registry_packages(
    registry: &crate::publish::registry::Registry,
    reference: &str,
) -> Result<Option<Vec<(String, String)>>> {
    let Some(digest) = registry.manifest_digest(reference).await? else {
        return Ok(None);
    };
    let cached = crate::plan::history::cache_dir().map(|d| {
        d.join("sbom-packages")
            .join(digest.trim_start_matches("sha256:"))
    });
    if let Some(list) = cached
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|b| serde_json::from_slice::<Vec<(String, String)>>(&b).ok())
    {
        return Ok(Some(list));
    }
    let pinned = format!("{}@{digest}", crate::util::reference::repository(reference));
    let Some(doc) = registry.attached_sbom(&pinned).await? else {
        return Ok(None);
    };
    let packages = packages_of(&doc, &format!("the SBOM of `{reference}`"))?;
    if let Some(file) = cached {
        let _ = file.parent().map(std::fs::create_dir_all);
        let _ = std::fs::write(&file, serde_json::to_vec(&packages).unwrap_or_default());
    }
    Ok(Some(packages))
}

/// The images whose SBOM in `dir` holds a package `queries` match, with the
/// matching `name version`s, in file-name order. Images are named by their
/// SBOM files (`<image>.spdx.json`, `<image>.cdx.json`).
pub fn holders(dir: &Path, queries: &[sbom::version::Query]) -> Result<Vec<(String, Vec<String>)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::input(format!(
            "cannot read the SBOM folder `{}`: {e}",
            dir.display()
        ))
        .help("build with --attest-dir DIR first; it writes one SBOM per image there")
    })?;
    let mut files: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let image = [Format::Spdx, Format::Cyclonedx]
                .iter()
                .find_map(|f| name.strip_suffix(&format!(".{}", f.extension())))?;
            Some((image.to_string(), e.path()))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for (image, path) in files {
        let hits = hits(read_packages(&path)?, queries);
        if !hits.is_empty() {
            out.push((image, hits));
        }
    }
    Ok(out)
}

/// `--sign-key`, loaded.
pub type Signer = sign::Key;

/// The provenance of every image built in this run (needs the summary:
/// digests, parents, tests), as `<image>.provenance.json`; with a key, as
/// DSSE envelopes `<image>.provenance.dsse.json`, and the SBOM too, as an
/// in-toto statement about the same digest, `<image>.sbom.dsse.json`.
/// `runs` has one entry per plan item, `None` for an image not built here.
/// Each written provenance file goes into `written` as (item, path).
pub fn provenance(
    plan: &Plan,
    runs: &[Option<provenance::Run>],
    dir: &Path,
    format: Format,
    selection: &[String],
    key: Option<&Signer>,
    written: &mut Vec<(usize, String)>,
) -> Result<()> {
    for (i, (item, run)) in plan.items.iter().zip(runs).enumerate() {
        let Some(run) = run else {
            continue;
        };
        let parents = item
            .parents
            .iter()
            .map(|&p| (plan.items[p].name.clone(), plan.items[p].reference.clone()))
            .collect();
        let statement = provenance::statement(item, run, &parents, selection);
        let (name, document) = match key {
            None => (format!("{}.provenance.json", item.name), statement.clone()),
            Some(key) => {
                let body = serde_json::to_vec(&statement).unwrap_or_default();
                let envelope = sign::envelope(IN_TOTO, &body, key)?;
                (format!("{}.provenance.dsse.json", item.name), envelope)
            }
        };
        let path = dir.join(name);
        write_json(&path, &document)?;
        written.push((i, path.display().to_string()));
        let Some(key) = key else {
            continue;
        };
        let sbom_file = file(dir, &item.name, format);
        if let Ok(text) = std::fs::read_to_string(&sbom_file) {
            let predicate: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let predicate_type = match format {
                Format::Spdx => "https://spdx.dev/Document",
                Format::Cyclonedx => "https://cyclonedx.org/bom",
            };
            let sbom = serde_json::json!({
                "_type": provenance::STATEMENT,
                "subject": statement["subject"],
                "predicateType": predicate_type,
                "predicate": predicate,
            });
            let body = serde_json::to_vec(&sbom).unwrap_or_default();
            let path = dir.join(format!("{}.sbom.dsse.json", item.name));
            write_json(&path, &sign::envelope(IN_TOTO, &body, key)?)?;
        }
    }
    Ok(())
}

/// The payload type of an in-toto statement in a DSSE envelope.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    std::fs::write(path, text).map_err(|e| Error::write(path, e))
}

/// The files of image `name` to attach in the registry, with their
/// artifact type and media type: the SBOM and the provenance, as DSSE
/// envelopes when they were signed.
pub fn artifacts(
    dir: &Path,
    name: &str,
    format: Format,
) -> Vec<(PathBuf, (&'static str, &'static str))> {
    let sbom_type = match format {
        Format::Spdx => "application/spdx+json",
        Format::Cyclonedx => "application/vnd.cyclonedx+json",
    };
    use crate::publish::registry::attach::DSSE;
    let signed = dir.join(format!("{name}.provenance.dsse.json"));
    match signed.exists() {
        true => vec![
            (
                dir.join(format!("{name}.sbom.dsse.json")),
                (sbom_type, DSSE),
            ),
            (signed, (IN_TOTO, DSSE)),
        ],
        false => vec![
            (file(dir, name, format), (sbom_type, sbom_type)),
            (
                dir.join(format!("{name}.provenance.json")),
                (IN_TOTO, IN_TOTO),
            ),
        ],
    }
}

/// Whether the provenance of image `name` in `dir` (plain or signed) is
/// about the manifest `digest`: what is attached to an image must describe it.
pub fn about(dir: &Path, name: &str, digest: &str) -> bool {
    let read = |file: &str| -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(dir.join(format!("{name}.{file}"))).ok()?;
        serde_json::from_str(&text).ok()
    };
    let statement = read("provenance.json").or_else(|| {
        let envelope = read("provenance.dsse.json")?;
        let payload = crate::util::base64::decode(envelope["payload"].as_str()?)?;
        serde_json::from_slice(&payload).ok()
    });
    statement.is_some_and(|s| {
        s["subject"][0]["digest"]["sha256"]
            .as_str()
            .is_some_and(|hex| digest.strip_prefix("sha256:") == Some(hex))
    })
}
