//! Multi-platform sets: one record per image and platform. With two or
//! more platforms (`platforms:`, or `--platform a,b`), every image becomes
//! one image per platform it is built for, named `name@arch` (`@arm-v7`
//! with a variant, `@windows-amd64` off Linux), built as
//! `repository:<tag>-<arch>` for that platform. Everything after works on
//! these records as on any image: each renders with its platform's values,
//! has its own fingerprint, plan row, content tag, parents of the same
//! platform (`image_ref` resolves within the platform), engine, tests and
//! summary row. `publish` then writes each image's release tags as one
//! index of its platforms. A set of one platform is left as it is;
//! `--platform` naming some of a set's platforms builds only their records.

use crate::tree::config::{Config, Tree};
use crate::tree::discover::Image;
use crate::util::error::{Error, Result};

/// The platforms of the set: `platforms:`, else a `build.platform` that
/// lists several (`--platform a,b`); empty for a one-platform set.
pub fn of(config: &Config) -> Vec<String> {
    let listed: Vec<String> = match config.platforms.is_empty() {
        false => config.platforms.clone(),
        true => config
            .build
            .platform
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
    };
    let mut out: Vec<String> = Vec::new();
    for p in listed {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    match out.len() {
        0 | 1 => Vec::new(),
        _ => out,
    }
}

/// `--platform` (`build.platform`) over a set whose `platforms:` lists
/// more: the platforms this run builds, each one of the set's; None when
/// it names no narrower list. A run so narrowed builds and tags those
/// records and writes no index (an index names every platform of its image).
pub fn narrowed(config: &Config) -> Result<Option<Vec<String>>> {
    if config.platforms.is_empty() || config.build.platform.trim().is_empty() {
        return Ok(None);
    }
    let mut asked: Vec<String> = Vec::new();
    for p in config.build.platform.split(',').map(str::trim) {
        if p.is_empty() || asked.iter().any(|a| a == p) {
            continue;
        }
        if !config.platforms.iter().any(|s| s == p) {
            return Err(Error::input(format!(
                "--platform `{p}` is not one of the set's platforms ({})",
                config.platforms.join(", ")
            ))
            .help("give platforms listed under `platforms:` in strata.yaml, or add it there"));
        }
        asked.push(p.to_string());
    }
    Ok((asked.len() < of(config).len()).then_some(asked))
}

/// The part of a record's name after `@`: `arm64`, `arm-v7`, `windows-amd64`.
pub fn suffix(platform: &str) -> String {
    let mut parts: Vec<&str> = platform.split('/').collect();
    if parts.first() == Some(&"linux") && parts.len() > 1 {
        parts.remove(0);
    }
    parts.join("-")
}

/// The name of image `name`'s record for `platform`.
pub fn record_name(name: &str, platform: &str) -> String {
    format!("{name}@{}", suffix(platform))
}

/// Replace every image by one record per platform it is built for.
pub fn expand(tree: &mut Tree, images: Vec<Image>) -> Result<Vec<Image>> {
    let platforms = of(&tree.config);
    if platforms.is_empty() {
        return Ok(images);
    }
    let only = narrowed(&tree.config)?.unwrap_or_else(|| platforms.clone());
    // The records carry their platform; the set's is no single one.
    tree.config.build.platform.clear();
    let config = &tree.config;
    let mut out = Vec::with_capacity(images.len() * platforms.len());
    for image in images {
        let own: Vec<String> = match (&image.spec.platform, image.spec.platforms.is_empty()) {
            (Some(p), _) => vec![p.clone()],
            (None, true) => platforms.clone(),
            (None, false) => image.spec.platforms.clone(),
        };
        if let Some(p) = own.iter().find(|p| !platforms.contains(p)) {
            return Err(Error::input(format!(
                "image `{}` asks for platform `{p}`, which is not one of the set's ({})",
                image.name,
                platforms.join(", ")
            ))
            .help("list it under `platforms:` in strata.yaml, or narrow the image to the set's platforms"));
        }
        let reference = image.reference(config);
        let (repository, tag) = split_tag(&reference);
        let own: Vec<String> = platforms
            .iter()
            .filter(|p| own.contains(p))
            .cloned()
            .collect();
        for p in own.iter().filter(|p| only.contains(p)) {
            let mut record = image.clone();
            record.name = record_name(&image.name, p);
            record.spec.platform = Some(p.clone());
            // Every platform of the image: the index names them all.
            record.spec.platforms = own.clone();
            // The release tags are the image's: one index over its platforms.
            record.spec.platform_of = Some(image.name.clone());
            record.spec.release_reference = Some(reference.clone());
            record.reference = Some(format!("{repository}:{tag}-{}", suffix(p)));
            out.push(record);
        }
    }
    Ok(out)
}

/// Point the `FROM` lines and `COPY --from=` flags of each record that name
/// a tree image literally (`FROM {{ namespace }}/base:{{ tag }}`, as Kolla's
/// templates do, instead of `image_ref`) at that image's record of the same
/// platform: its tag gets the record's `-<arch>`. `texts` (the rendered
/// Dockerfiles) are index-aligned with `images`.
pub fn retarget<'a>(
    config: &Config,
    images: &[Image],
    texts: impl Iterator<Item = &'a mut String>,
) {
    let registry = config.registry.trim_end_matches('/');
    let short = |r: &str| -> String {
        let r = match r.strip_prefix(registry).and_then(|r| r.strip_prefix('/')) {
            Some(rest) if !registry.is_empty() => rest,
            _ => r,
        };
        let (repo, tag) = split_tag(r);
        format!("{repo}:{tag}")
    };
    let released: std::collections::HashSet<String> = images
        .iter()
        .filter_map(|i| i.spec.release_reference.as_deref().map(short))
        .collect();
    if released.is_empty() {
        return;
    }
    let from = regex::Regex::new(
        r"(?im)^(\s*FROM\s+(?:--\S+\s+)*|\s*COPY\s+(?:--\S+\s+)*?--from=)([^\s=]+)(\s|$)",
    )
    .expect("a valid pattern");
    for (image, text) in images.iter().zip(texts) {
        let Some(platform) = image
            .spec
            .platform
            .as_deref()
            .filter(|_| image.spec.platform_of.is_some())
        else {
            continue;
        };
        let retargeted = from.replace_all(text, |c: &regex::Captures| {
            let named = &c[2];
            match released.contains(&short(named)) {
                true => {
                    let (repo, tag) = split_tag(named);
                    format!("{}{repo}:{tag}-{}{}", &c[1], suffix(platform), &c[3])
                }
                false => c[0].to_string(),
            }
        });
        if let std::borrow::Cow::Owned(t) = retargeted {
            *text = t;
        }
    }
}

/// `repository` and `tag` of a reference (`latest` when it has none).
pub fn split_tag(reference: &str) -> (&str, &str) {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    match last.rsplit_once(':') {
        Some((_, tag)) => (&reference[..reference.len() - tag.len() - 1], tag),
        None => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_named_by_arch_and_variant() {
        assert_eq!(suffix("linux/arm64"), "arm64");
        assert_eq!(suffix("linux/arm/v7"), "arm-v7");
        assert_eq!(suffix("windows/amd64"), "windows-amd64");
        assert_eq!(record_name("app", "linux/amd64"), "app@amd64");
        assert_eq!(split_tag("r:5000/ns/app:1.0"), ("r:5000/ns/app", "1.0"));
        assert_eq!(split_tag("r:5000/ns/app"), ("r:5000/ns/app", "latest"));
    }

    #[test]
    fn one_platform_is_no_multi_platform_set() {
        let mut c = Config::default();
        c.build.platform = "linux/arm64".into();
        assert!(of(&c).is_empty());
        c.build.platform = "linux/amd64, linux/arm64".into();
        assert_eq!(of(&c), ["linux/amd64", "linux/arm64"]);
        c.platforms = vec!["linux/arm64".into(), "linux/arm64".into()];
        assert!(of(&c).is_empty());
    }

    #[test]
    fn platform_narrows_a_set_to_platforms_of_its_own() {
        let mut c = Config {
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            ..Config::default()
        };
        assert_eq!(narrowed(&c).unwrap(), None);
        c.build.platform = "linux/arm64".into();
        assert_eq!(narrowed(&c).unwrap(), Some(vec!["linux/arm64".to_string()]));
        c.build.platform = "linux/arm64,linux/amd64".into();
        assert_eq!(narrowed(&c).unwrap(), None, "the whole set");
        c.build.platform = "linux/s390x".into();
        let e = narrowed(&c).unwrap_err();
        assert!(
            e.message.contains("`linux/s390x` is not one of the set's"),
            "{}",
            e.message
        );
    }
}
