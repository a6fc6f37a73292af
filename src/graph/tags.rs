//! Tag templates. `tag:` and `tags:` (in `strata.yaml` and `image.yaml`)
//! may use `{{ git.commit }}`, `{{ git.short }}`, `{{ git.branch }}` and
//! `{{ date }}` (UTC, `YYYYMMDD`), e.g. `tags: ["{{ git.branch }}",
//! "{{ git.short }}"]`. They are expanded once, before names are checked,
//! so everything after sees plain tags. A branch name becomes a valid tag:
//! characters Docker refuses become `-` (`feature/x` → `feature-x`).

use crate::tree::config::Tree;
use crate::tree::discover::Image;
use crate::util::error::{Error, Result};

/// Expand every tag template of the tree and its images, in place.
pub fn expand(tree: &mut Tree, images: &mut [Image]) -> Result<()> {
    let templated = |t: &String| t.contains("{{") || t.contains("{%");
    let any = templated(&tree.config.tag)
        || tree.config.tags.iter().any(templated)
        || images.iter().any(|i| {
            i.spec
                .tags
                .iter()
                .chain(&i.spec.tag)
                .chain(&i.spec.repository)
                .any(templated)
        });
    if !any {
        return Ok(());
    }
    let ctx = Context::of(tree)?;
    let config_file = tree.config_file.display().to_string();
    let at = |place: &str| format!("`{place}` in {config_file}");
    tree.config.tag = ctx.render(&tree.config.tag, &at("tag"))?;
    for t in tree.config.tags.iter_mut() {
        *t = ctx.render(t, &at("tags"))?;
    }
    for image in images.iter_mut() {
        let place = format!("`tags` of image `{}`", image.name);
        for t in image.spec.tags.iter_mut() {
            *t = ctx.render(t, &place)?;
        }
        let place = format!("`tag`/`repository` of image `{}`", image.name);
        for t in image
            .spec
            .tag
            .iter_mut()
            .chain(image.spec.repository.iter_mut())
        {
            *t = ctx.render(t, &place)?;
        }
    }
    Ok(())
}

struct Context {
    env: minijinja::Environment<'static>,
    values: minijinja::Value,
}

impl Context {
    fn of(tree: &Tree) -> Result<Context> {
        let git = crate::util::git::head(&tree.root).map(|(commit, short, branch)| {
            minijinja::context! { commit, short, branch => as_tag(&branch) }
        });
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        Ok(Context {
            env,
            values: minijinja::context! { git, date => crate::util::clock::today() },
        })
    }

    fn render(&self, template: &str, place: &str) -> Result<String> {
        if !template.contains("{{") && !template.contains("{%") {
            return Ok(template.to_string());
        }
        let out = self.env.render_str(template, &self.values).map_err(|e| {
            let outside_git = template.contains("git.")
                && self.values.get_attr("git").is_ok_and(|g| g.is_none());
            let err = Error::input(format!("{place}: cannot expand `{template}`: {e}"));
            if outside_git {
                err.help("`git.*` needs the tree in a git work tree with a commit")
            } else {
                err.help("tags may use {{ git.commit }}, {{ git.short }}, {{ git.branch }} and {{ date }}")
            }
        })?;
        if out.is_empty() {
            return Err(
                Error::input(format!("{place}: `{template}` expands to an empty tag"))
                    .help("a detached HEAD has no branch; name one, or use {{ git.short }}"),
            );
        }
        Ok(out)
    }
}

/// `name` with every character a tag cannot hold replaced by `-`, no
/// leading `.` or `-`, at most 128 characters.
fn as_tag(name: &str) -> String {
    let t: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '-',
        })
        .collect();
    let t = t.trim_start_matches(['.', '-']);
    t.chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn branch_names_become_tags() {
        assert_eq!(super::as_tag("feature/new-x"), "feature-new-x");
        assert_eq!(super::as_tag("main"), "main");
        assert_eq!(super::as_tag("-odd"), "odd");
    }
}
