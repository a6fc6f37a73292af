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

use crate::plan::Item;
use crate::reference::content_tag as content_ref;
use crate::registry::Registry;
use futures_util::StreamExt;
use std::path::Path;

/// What the step did for one item: the references moved and the digest
/// they now point at, those kept for a newer commit, or the error that
/// stopped it.
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
}

impl Commit<'_> {
    /// The commit checked out in `root`; None outside git (no race check).
    pub fn head(root: &Path) -> Option<Commit<'_>> {
        crate::git::head(root).map(|(id, _, _)| Commit { root, id })
    }

    /// Why a tag whose image was built from `published` must stay, if it must.
    fn keeps(&self, published: &str) -> Option<String> {
        if published == self.id {
            return None;
        }
        let short = published.get(..7).unwrap_or(published);
        match crate::git::is_ancestor(self.root, published, &self.id) {
            Some(true) => None,
            Some(false) => Some(format!("a newer commit ({short}) is published")),
            None => Some(format!(
                "the published commit ({short}) is unknown here; fetch more history to compare"
            )),
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
            let mut done = Published {
                moved: Vec::new(),
                kept: Vec::new(),
                digest: None,
                error: None,
            };
            for r in item.release_refs() {
                if let Some(commit) = commit {
                    let why = match registry.revision(r).await {
                        Ok(Some(published)) => commit.keeps(&published),
                        Ok(None) => None,
                        Err(e) => {
                            done.error = Some(format!("cannot read `{r}`: {e}"));
                            break;
                        }
                    };
                    if let Some(why) = why {
                        eprintln!("strata: kept `{r}`: {why}");
                        done.kept.push(r.clone());
                        continue;
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
