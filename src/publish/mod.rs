//! Stage 6, publish. Takes the plan and what execute built and pushed;
//! talks to the registry through one OCI client (`registry`: manifests,
//! tags, image indexes, referrers), prunes what the retention rules let
//! go (`retention`), and attaches the supply chain's attestations
//! (`supply`). Gives what moved, per release reference, to the report.
//!
//! Moving release tags in the registry: the last step of a `--push` run
//! (`build.publish: all`) and the `publish` command. Each release reference
//! is pointed at the manifest of the image's content tag (a manifest put by
//! digest: no layer moves). The step runs only when every image of the set
//! is there; the caller decides that.
//!
//! No races between commits: before moving a release tag that exists, the
//! commit its image was built from (`org.opencontainers.image.revision`) is
//! read; unless it is the commit being published or one of its ancestors,
//! the tag is kept, so a run for an older commit that finishes last never
//! takes a tag from a newer one.

pub mod registry;
pub mod retention;
pub mod supply;

use crate::execute::Indexed;
use crate::plan::Item;
use crate::util::reference::content_tag as content_ref;
use futures_util::StreamExt;
use registry::Registry;
use std::path::Path;

/// What the step did for one item: the references moved and the digest
/// they now point at, those kept for a newer commit, or the error that
/// stopped it.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub moved: Vec<String>,
    pub kept: Vec<String>,
    pub digest: Option<String>,
    pub error: Option<String>,
}

/// The commit being published, and the work tree that knows its history.
pub struct Commit<'a> {
    pub root: &'a Path,
    pub id: String,
    /// Its committer time (seconds since the epoch).
    pub time: Option<i64>,
    /// `--keep-on-unknown`: when nothing can tell which commit is newer,
    /// keep the tag instead of moving it with a warning.
    pub keep_on_unknown: bool,
}

/// What the race rule says of one release tag, and which rule said it.
#[derive(Debug, PartialEq)]
pub enum Race {
    Move(Option<String>),
    Keep(String),
}

impl Commit<'_> {
    /// The commit checked out in `root`; None outside git (no race check).
    pub fn head(root: &Path, keep_on_unknown: bool) -> Option<Commit<'_>> {
        let (id, time) = crate::util::git::commit_and_time(root)?;
        Some(Commit {
            root,
            id,
            time,
            keep_on_unknown,
        })
    }

    /// Whether a tag whose image was built from `published` (committed at
    /// `at`) may move to this commit's image. Ancestry decides when git
    /// knows both commits; else their commit times; a tie or a missing
    /// time moves the tag with a warning (or keeps it, `keep_on_unknown`).
    pub fn race(&self, published: &str, at: Option<i64>) -> Race {
        if published == self.id {
            return Race::Move(None);
        }
        let short = published.get(..7).unwrap_or(published);
        match crate::util::git::is_ancestor(self.root, published, &self.id) {
            Some(true) => return Race::Move(None),
            Some(false) => {
                return Race::Keep(format!(
                    "a newer commit ({short}) is published (decided by ancestry)"
                ))
            }
            None => {}
        }
        let unknown = format!("the published commit ({short}) is not in the local history");
        match (at, self.time) {
            (Some(theirs), Some(ours)) if theirs > ours => Race::Keep(format!(
                "a newer commit ({short}) is published: {unknown}, and it was committed {}s after this one (decided by commit time)",
                theirs - ours
            )),
            (Some(theirs), Some(ours)) if theirs < ours => Race::Move(Some(format!(
                "{unknown}; this commit is {}s newer (decided by commit time)",
                ours - theirs
            ))),
            _ if self.keep_on_unknown => Race::Keep(format!(
                "{unknown} and the commit times do not tell which is newer (--keep-on-unknown)"
            )),
            _ => Race::Move(Some(format!(
                "warning: {unknown} and the commit times do not tell which is newer; moved (--keep-on-unknown keeps it)"
            ))),
        }
    }
}

/// Point every release reference of `items` at its content tag's manifest,
/// 16 images at once.
pub async fn release(
    items: &[&Item],
    registry: &Registry,
    commit: Option<&Commit<'_>>,
) -> Vec<Published> {
    futures_util::stream::iter(items)
        .map(|item| async move {
            let source = content_ref(&item.reference, &item.fingerprint.hash);
            if item.action == crate::plan::Action::Build {
                registry.forget(&source);
            }
            let mut done = Published {
                moved: Vec::new(),
                kept: Vec::new(),
                digest: None,
                error: None,
            };
            for r in item.release_refs() {
                match may_move(registry, commit, r).await {
                    Ok(true) => {}
                    Ok(false) => {
                        done.kept.push(r.clone());
                        continue;
                    }
                    Err(e) => {
                        done.error = Some(e);
                        break;
                    }
                }
                match registry.copy_tag(&source, r).await {
                    Ok(digest) => {
                        done.digest = Some(digest);
                        done.moved.push(r.clone());
                    }
                    Err(e) => {
                        done.error = Some(format!("cannot move `{r}`: {e}"));
                        break;
                    }
                }
            }
            done
        })
        .buffered(16)
        .collect()
        .await
}

/// The race rule for release reference `r` (none without a commit):
/// whether it may move, the reason said on stderr when it has one; the
/// error when the registry cannot say what `r` holds.
async fn may_move(
    registry: &Registry,
    commit: Option<&Commit<'_>>,
    r: &str,
) -> Result<bool, String> {
    let Some(commit) = commit else {
        return Ok(true);
    };
    let race = match registry.revision(r).await {
        Ok(Some((published, at))) => commit.race(&published, at),
        Ok(None) => Race::Move(None),
        Err(e) => return Err(format!("cannot read `{r}`: {e}")),
    };
    match race {
        Race::Keep(why) => {
            eprintln!("strata: kept `{r}`: {why}");
            Ok(false)
        }
        Race::Move(why) => {
            if let Some(why) = why {
                eprintln!("strata: moving `{r}`: {why}");
            }
            Ok(true)
        }
    }
}

/// Write each image's index over its platforms' records (`Item::index`):
/// only for an image whose every record is published (`published[i]`:
/// its content tag is in the registry and its own tags moved); an image
/// with a record that is not gets no index, and says so. The race rule
/// holds for each release reference as for a single image's (an index's
/// commit is its platforms' images'), when `commit` is given.
pub async fn indexes(
    items: &[&Item],
    published: &[bool],
    registry: &Registry,
    commit: Option<&Commit<'_>>,
) -> Vec<Indexed> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(part) = &item.index else { continue };
        match groups.iter_mut().find(|(image, _)| *image == part.image) {
            Some((_, members)) => members.push(i),
            None => groups.push((&part.image, vec![i])),
        }
    }
    let mut out = Vec::new();
    for (image, members) in groups {
        let part = |i: usize| items[i].index.as_ref();
        let platforms: Vec<String> = members
            .iter()
            .filter_map(|&i| Some(part(i)?.platform.clone()))
            .collect();
        let mut done = Indexed {
            image: image.to_string(),
            digest: None,
            platforms,
            moved: Vec::new(),
            kept: Vec::new(),
            error: None,
        };
        let all = members.first().and_then(|&i| part(i)).map(|p| &p.all);
        if all.is_some_and(|all| all.len() > done.platforms.len()) {
            eprintln!(
                "strata: no index written for `{image}`: this run has {} of its platforms ({}); a run over all of them writes it",
                done.platforms.join(", "),
                all.map(|a| a.join(", ")).unwrap_or_default()
            );
            continue;
        }
        if let Some(&i) = members.iter().find(|&&i| !published[i]) {
            done.error = Some(format!(
                "`{}` is not published: no index was written",
                items[i].name
            ));
            out.push(done);
            continue;
        }
        let parts: Vec<(String, String)> = members
            .iter()
            .filter_map(|&i| {
                let p = part(i)?;
                Some((
                    content_ref(&items[i].reference, &items[i].fingerprint.hash),
                    p.platform.clone(),
                ))
            })
            .collect();
        let mut refs = Vec::new();
        for r in members
            .first()
            .and_then(|&i| part(i))
            .map_or(&[][..], |p| &p.refs)
        {
            match may_move(registry, commit, r).await {
                Ok(true) => refs.push(r.clone()),
                Ok(false) => done.kept.push(r.clone()),
                Err(e) => done.error = Some(e),
            }
        }
        if done.error.is_some() || refs.is_empty() {
            out.push(done);
            continue;
        }
        match registry.put_index(&refs, &parts).await {
            Ok(digest) => {
                done.digest = Some(digest);
                done.moved = refs;
            }
            Err(e) => done.error = Some(format!("the index was not written: {}", e.message)),
        }
        out.push(done);
    }
    out
}
