//! Moving release tags in the registry: the last step of a `--push` run
//! (`build.publish: all`) and the `publish` command. Each release reference
//! is pointed at the manifest of the image's content tag (a manifest put by
//! digest: no layer moves). The step runs only when every image of the set
//! is there; the caller decides that.

use crate::execute::release_refs;
use crate::plan::Item;
use crate::registry::{content_ref, Registry};
use futures_util::StreamExt;

/// What the step did for one item: the references moved and the digest
/// they now point at, or the error that stopped it.
pub struct Published {
    pub moved: Vec<String>,
    pub digest: Option<String>,
    pub error: Option<String>,
}

/// Point every release reference of `items` at its content tag's manifest,
/// 16 images at once.
pub async fn release(items: &[&Item], registry: &Registry) -> Vec<Published> {
    futures_util::stream::iter(items)
        .map(|item| async move {
            let source = content_ref(&item.reference, &item.fingerprint.hash);
            let mut done = Published {
                moved: Vec::new(),
                digest: None,
                error: None,
            };
            for r in release_refs(item) {
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
