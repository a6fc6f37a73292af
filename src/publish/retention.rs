//! Retention in the registry: `strata prune` deletes the tags that are older
//! than `retention.max_age` and match no `keep` glob; `strata keep REF` marks
//! one build as an exception with a `keep-…` tag, which is always kept.
//! The registry deletes by digest, and that removes every tag on it: a
//! digest that a kept tag also points at is never deleted.
//! Deciding (`decide`) is pure; the commands ask and tell the registry.

use crate::publish::registry::{Registry, TagInfo};
use crate::tree::config::Config;
use crate::util::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

/// Tags `strata keep` adds start with this; `keep:` always protects them.
pub const KEEP_PREFIX: &str = "keep-";

/// What happens to one tag, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub repository: String,
    pub info: TagInfo,
    /// Its age, when it has a creation time.
    pub age: Option<Duration>,
    pub delete: bool,
    pub why: String,
}

/// How old `created` (RFC 3339) is at `now` (seconds since the epoch).
fn age(created: &str, now: i64) -> Option<Duration> {
    let t = time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(Duration::from_secs((now - t.unix_timestamp()).max(0) as u64))
}

/// An age for people: `3d`, `5h`, `40m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s => format!("{}m", s / 60),
    }
}

/// Decide for every tag of `repository`: kept by a glob (or `keep-…`), kept
/// because young or of unknown age, kept because its digest is also under
/// a kept tag, else deleted.
pub fn decide(
    repository: &str,
    tags: &[TagInfo],
    keep: &globset::GlobSet,
    keep_globs: &[String],
    max_age: Duration,
    now: i64,
) -> Vec<Decision> {
    let mut out: Vec<Decision> = tags
        .iter()
        .map(|t| {
            let a = t.created.as_deref().and_then(|c| age(c, now));
            let (delete, why) = if t.tag.starts_with(KEEP_PREFIX) {
                (false, "kept: marked with `strata keep`".to_string())
            } else if let Some(g) = keep.matches(&t.tag).first() {
                (false, format!("kept: matches `{}`", keep_globs[*g]))
            } else {
                match a {
                    None => (false, "kept: no creation time".to_string()),
                    Some(a) if a <= max_age => (false, format!("kept: {} old", human(a))),
                    Some(a) => (
                        true,
                        format!("older than {}: {} old", human(max_age), human(a)),
                    ),
                }
            };
            Decision {
                repository: repository.to_string(),
                info: t.clone(),
                age: a,
                delete,
                why,
            }
        })
        .collect();
    // A digest under a kept tag stays, and with it every tag on it; so
    // does every manifest a kept index names (deleting it would take that
    // platform out of the index).
    let mut kept: BTreeMap<String, String> = BTreeMap::new();
    for d in out.iter().filter(|d| !d.delete) {
        kept.insert(
            d.info.digest.clone(),
            format!("shared with `{}`", d.info.tag),
        );
        for child in &d.info.children {
            let why = format!("a platform of the kept index `{}`", d.info.tag);
            kept.entry(child.clone()).or_insert(why);
        }
    }
    for d in &mut out {
        if let (true, Some(why)) = (d.delete, kept.get(&d.info.digest)) {
            d.delete = false;
            d.why = format!("kept: {why}");
        }
    }
    out
}

/// The table `prune` prints: one line per tag.
pub fn table(decisions: &[Decision], dry_run: bool) -> String {
    let w_repo = decisions
        .iter()
        .map(|d| d.repository.len())
        .max()
        .unwrap_or(10)
        .max(10);
    let w_tag = decisions
        .iter()
        .map(|d| d.info.tag.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:w_repo$}  {:w_tag$}  {:12}  {:>5}  ACTION  WHY",
        "REPOSITORY", "TAG", "DIGEST", "AGE"
    );
    for d in decisions {
        let digest = d
            .info
            .digest
            .strip_prefix("sha256:")
            .unwrap_or(&d.info.digest);
        let action = match (d.delete, dry_run) {
            (true, true) => "would delete",
            (true, false) => "delete",
            (false, _) => "keep",
        };
        let _ = writeln!(
            out,
            "{:w_repo$}  {:w_tag$}  {:12}  {:>5}  {action}  {}",
            d.repository,
            d.info.tag,
            &digest[..digest.len().min(12)],
            d.age.map(human).unwrap_or_else(|| "?".into()),
            d.why
        );
    }
    out
}

/// The keep globs of the configuration plus `--keep`, as one matcher.
pub fn keep_set(config: &Config, more: &[String]) -> Result<(globset::GlobSet, Vec<String>)> {
    let globs: Vec<String> = config.retention.keep.iter().chain(more).cloned().collect();
    let mut set = globset::GlobSetBuilder::new();
    for g in &globs {
        set.add(globset::Glob::new(g).map_err(|e| {
            Error::input(format!("invalid keep glob `{g}`: {}", e.kind()))
                .help("`retention.keep` and `--keep` take tag globs such as `stable-*`")
        })?);
    }
    let set = set
        .build()
        .map_err(|e| Error::input(format!("invalid keep globs: {e}")))?;
    Ok((set, globs))
}

/// Delete what `decisions` say, one manifest per digest; the registry is
/// first asked (with a digest that cannot exist) whether it deletes at
/// all, so that a registry that refuses leaves nothing half-deleted.
pub async fn apply(registry: &Registry, decisions: &[Decision]) -> Result<usize> {
    let digests: BTreeSet<(&str, &str)> = decisions
        .iter()
        .filter(|d| d.delete)
        .map(|d| (d.repository.as_str(), d.info.digest.as_str()))
        .collect();
    if let Some((repo, _)) = digests.iter().next() {
        registry
            .delete(repo, &format!("sha256:{}", "0".repeat(64)))
            .await?;
    }
    let mut deleted = 0;
    for (repo, digest) in digests {
        if registry.delete(repo, digest).await? {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// What `prune` keeps: the keep globs (and their text, for the table),
/// the age past which a tag goes, and now (seconds since the epoch).
pub struct Rules<'a> {
    pub keep: &'a globset::GlobSet,
    pub globs: &'a [String],
    pub max_age: Duration,
    pub now: i64,
}

/// Ask the registry for every tag of `repos` and decide for each.
pub async fn survey(
    registry: &Registry,
    repos: &[String],
    rules: &Rules<'_>,
) -> Result<Vec<Decision>> {
    let mut decisions = Vec::new();
    for repo in repos {
        let tags = registry.tags(repo).await?;
        let (keep, globs) = (rules.keep, rules.globs);
        decisions.extend(decide(repo, &tags, keep, globs, rules.max_age, rules.now));
    }
    Ok(decisions)
}

fn registry_for(config: &Config, refs: &[String]) -> Result<Registry> {
    if config.registry.is_empty() {
        return Err(
            Error::input("retention works on a registry, and `registry:` is not set")
                .help("set `registry:` in strata.yaml (or --set registry=HOST)"),
        );
    }
    Ok(Registry::new(
        refs.iter().map(String::as_str),
        &config.insecure_registries,
    ))
}

/// `strata keep REF`: tag the image `REF` points at as `keep-<tag>` in the
/// same repository, which `prune` never deletes. REF is a reference
/// (`repo:tag` or `repo@sha256:…`, kept as `keep-sha256-<12 hex>`), or
/// `IMAGE[:TAG]` for an image of the tree (`images`: the tree's names).
pub fn keep_refs(config: &Config, images: &[&str], reference: &str) -> Result<(String, String)> {
    let given = crate::util::reference::parse(reference)?;
    let full = if given.repository.contains('/') {
        reference.to_string()
    } else if images.contains(&given.repository) {
        let rest = &reference[given.repository.len()..];
        format!("{}{rest}", config.repository(given.repository))
    } else {
        return Err(Error::input(format!(
            "`{reference}` names no image of the tree and no repository"
        ))
        .help("give a whole reference (`REGISTRY/NAMESPACE/NAME:TAG` or `…@sha256:…`), or `IMAGE:TAG` with IMAGE an image of the tree (`strata list`)"));
    };
    let p = crate::util::reference::parse(&full)?;
    let label = match (p.tag, p.digest) {
        (Some(tag), _) => tag.to_string(),
        (None, Some(digest)) => {
            let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
            format!("sha256-{}", &hex[..hex.len().min(12)])
        }
        (None, None) => "latest".to_string(),
    };
    if label.starts_with(KEEP_PREFIX) {
        return Err(Error::input(format!("`{full}` is a keep tag already")));
    }
    let target = format!("{}:{KEEP_PREFIX}{label}", p.repository);
    Ok((full, target))
}

/// The registry of a retention command, for `refs`.
pub fn registry(config: &Config, refs: &[String]) -> Result<Registry> {
    registry_for(config, refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(tag: &str, digest: &str, created: Option<&str>) -> TagInfo {
        TagInfo {
            tag: tag.into(),
            digest: digest.into(),
            created: created.map(str::to_string),
            children: Vec::new(),
        }
    }

    #[test]
    fn old_tags_go_unless_kept_or_shared_with_a_kept_one() {
        let now = time::macros::datetime!(2026-11-23 0:00 UTC).unix_timestamp();
        let tags = [
            tag("master", "sha256:a", Some("2026-01-01T00:00:00Z")),
            tag("feature-x", "sha256:a", Some("2026-01-01T00:00:00Z")),
            tag("feature-y", "sha256:b", Some("2026-11-01T00:00:00Z")),
            tag("feature-z", "sha256:c", Some("2026-11-20T00:00:00Z")),
            tag("stable-2026.1", "sha256:d", Some("2025-01-01T00:00:00Z")),
            tag("keep-feature-y", "sha256:e", Some("2025-01-01T00:00:00Z")),
            tag("unknown", "sha256:f", None),
        ];
        let cfg = Config {
            retention: crate::tree::config::Retention {
                keep: vec!["master".into(), "stable-*".into()],
                max_age: None,
            },
            ..Config::default()
        };
        // Decide with `retention.keep` and the `--keep` globs `more`.
        let decide_with = |tags: &[TagInfo], more: &[String]| {
            let (set, globs) = keep_set(&cfg, more).unwrap();
            let week = Duration::from_secs(7 * 86_400);
            decide("r/app", tags, &set, &globs, week, now)
        };
        let d = decide_with(&tags, &[]);
        let gone: Vec<&str> = d
            .iter()
            .filter(|d| d.delete)
            .map(|d| d.info.tag.as_str())
            .collect();
        assert_eq!(gone, ["feature-y"]);
        let why = |t: &str| d.iter().find(|d| d.info.tag == t).unwrap().why.clone();
        assert_eq!(why("feature-x"), "kept: shared with `master`");
        assert_eq!(why("stable-2026.1"), "kept: matches `stable-*`");
        assert_eq!(why("keep-feature-y"), "kept: marked with `strata keep`");
        assert_eq!(why("feature-z"), "kept: 3d old");
        assert_eq!(why("unknown"), "kept: no creation time");
        assert!(table(&d, true).contains("would delete"));
        // A kept index keeps the manifests it names, under any tag.
        let mut index = tag("multiarch-1", "sha256:i", Some("2025-01-01T00:00:00Z"));
        index.children = vec!["sha256:b".into()];
        let mut tags = tags.to_vec();
        tags.push(index);
        let d = decide_with(&tags, &["multiarch-*".to_string()]);
        let why = |t: &str| d.iter().find(|d| d.info.tag == t).unwrap().why.clone();
        assert_eq!(
            why("feature-y"),
            "kept: a platform of the kept index `multiarch-1`"
        );
        assert!(d.iter().all(|d| !d.delete), "nothing old is unkept now");
    }
}
