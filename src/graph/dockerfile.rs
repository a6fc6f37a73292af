//! Reads a rendered Dockerfile for the images it uses: every `FROM`
//! (with global `ARG` expansion, `--platform`, `AS name`), `COPY --from=` and
//! `RUN --mount=…,from=…`. Stage names and stage indexes are not references.
//! Knows nothing of the tree: which references are images of the tree is the
//! graph's business.

use crate::util::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefKind {
    From,
    CopyFrom,
    MountFrom,
}

/// A reference to an image outside this Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub reference: String,
    /// 1-based line of the instruction.
    pub line: usize,
    pub kind: RefKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The image or stage this stage starts from, expanded.
    pub base: String,
    pub platform: Option<String>,
    pub alias: Option<String>,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub stages: Vec<Stage>,
    pub refs: Vec<Ref>,
    /// Every `ARG` name declared, in any stage: the build args that matter.
    pub args: std::collections::BTreeSet<String>,
    /// The escape character (`# escape=`), `\\` by default.
    pub escape: char,
    /// The ids of the secrets its `RUN --mount=type=secret` steps read.
    pub secrets: std::collections::BTreeSet<String>,
}

impl Parsed {
    /// The position of the stage named `name` (`AS name`, any case).
    pub fn stage(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| {
            s.alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(name))
        })
    }

    /// The reference the final stage is built from, following stage names.
    pub fn final_base(&self) -> Option<&str> {
        let mut stage = self.stages.last()?;
        loop {
            let base = stage.base.to_ascii_lowercase();
            match self
                .stages
                .iter()
                .position(|s| s.alias.as_deref() == Some(base.as_str()))
            {
                Some(i) if !std::ptr::eq(&self.stages[i], stage) => stage = &self.stages[i],
                _ => return (stage.base != "scratch").then_some(stage.base.as_str()),
            }
        }
    }
}

/// One instruction: its keyword, arguments (continuations joined) and first line.
struct Instruction {
    keyword: String,
    args: String,
    line: usize,
}

/// Parse `text` (the rendered Dockerfile called `name` in messages);
/// `build_args` override the defaults of global `ARG`s.
/// Longer than 100 lines on purpose: one pass over the instructions, each
/// keyword's rule beside the others, as Docker's own parser reads them.
pub fn parse(name: &str, text: &str, build_args: &BTreeMap<String, String>) -> Result<Parsed> {
    let mut parsed = Parsed {
        escape: escape_char(text),
        ..Parsed::default()
    };
    let mut args: HashMap<String, String> = HashMap::new();
    let mut aliases: Vec<String> = Vec::new();
    let err = |line: usize, message: String, help: &str| {
        Error::input(format!("{name}: {message}"))
            .help(help.to_string())
            .at_line(name, text, line, "here")
    };
    for ins in instructions(text) {
        let line = ins.line;
        if ins.keyword == "ARG" {
            for word in split_words(&ins.args) {
                parsed
                    .args
                    .insert(word.split('=').next().unwrap_or_default().to_string());
            }
        }
        match ins.keyword.as_str() {
            "ARG" if parsed.stages.is_empty() => {
                for word in split_words(&ins.args) {
                    let (key, default) = match word.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(unquote(v))),
                        None => (word.clone(), None),
                    };
                    let value = build_args
                        .get(&key)
                        .cloned()
                        .or(default)
                        .unwrap_or_default();
                    args.insert(key, value);
                }
            }
            "FROM" => {
                let words = split_words(&ins.args);
                let (image, alias, platform) = from_parts(&words, &args, &ins.args)
                    .map_err(|(message, help)| err(line, message, help))?;
                let base = expand(image, &args);
                let is_stage = aliases.contains(&base.to_ascii_lowercase());
                if !is_stage && base != "scratch" {
                    if !valid_reference(&base) {
                        let shown = if base == image {
                            format!("`{base}`")
                        } else {
                            format!("`{base}` (from `{image}`)")
                        };
                        return Err(err(
                            line,
                            format!("FROM names {shown}, which is not a valid image reference"),
                            "an image reference is `[registry/]name[:tag][@digest]` in lower case; check the template variables that build it",
                        ));
                    }
                    parsed.refs.push(Ref {
                        reference: base.clone(),
                        line,
                        kind: RefKind::From,
                    });
                }
                if let Some(a) = &alias {
                    aliases.push(a.clone());
                }
                parsed.stages.push(Stage {
                    base,
                    platform,
                    alias,
                    line,
                });
            }
            "COPY" | "RUN" => {
                if parsed.stages.is_empty() {
                    return Err(err(
                        line,
                        format!("`{}` before the first FROM", ins.keyword),
                        "a Dockerfile starts with FROM (only ARG may come before it)",
                    ));
                }
                let (kind, sources) = if ins.keyword == "COPY" {
                    (RefKind::CopyFrom, flag_values(&ins.args, "from"))
                } else {
                    let mounts = flag_values(&ins.args, "mount");
                    parsed
                        .secrets
                        .extend(mounts.iter().filter_map(|m| mount_secret(m)));
                    (
                        RefKind::MountFrom,
                        mounts.iter().filter_map(|m| mount_from(m)).collect(),
                    )
                };
                for source in sources {
                    let source = expand(&source, &args);
                    let stage = source.parse::<usize>().is_ok()
                        || aliases.contains(&source.to_ascii_lowercase());
                    if stage || source.is_empty() {
                        continue;
                    }
                    if !valid_reference(&source) {
                        return Err(err(
                            line,
                            format!("`{source}` is neither a stage nor a valid image reference"),
                            "name an earlier stage (`AS name`) or an image reference",
                        ));
                    }
                    parsed.refs.push(Ref {
                        reference: source,
                        line,
                        kind,
                    });
                }
            }
            _ => {}
        }
    }
    if parsed.stages.is_empty() {
        return Err(Error::input(format!("{name}: no FROM instruction"))
            .help("a Dockerfile needs at least one `FROM image`"));
    }
    Ok(parsed)
}

/// A `FROM` line: the image as written, the stage name (lower case) and
/// `--platform` (expanded).
type FromParts<'w> = (&'w str, Option<String>, Option<String>);

/// What a `FROM` line says, or the message and help for an error.
fn from_parts<'w>(
    words: &'w [String],
    args: &HashMap<String, String>,
    text: &str,
) -> std::result::Result<FromParts<'w>, (String, &'static str)> {
    let mut platform = None;
    let mut rest = Vec::new();
    for w in words {
        if let Some(flag) = w.strip_prefix("--") {
            match flag.split_once('=') {
                Some(("platform", v)) => platform = Some(expand(&unquote(v), args)),
                _ => {
                    return Err((
                        format!("unknown FROM flag `{w}`"),
                        "FROM takes only `--platform=…`",
                    ))
                }
            }
        } else {
            rest.push(w.as_str());
        }
    }
    match rest.as_slice() {
        [image] => Ok((image, None, platform)),
        [image, as_, alias] if as_.eq_ignore_ascii_case("as") => {
            Ok((image, Some(alias.to_ascii_lowercase()), platform))
        }
        [] => Err((
            "FROM names no image".into(),
            "write `FROM image[:tag] [AS name]`",
        )),
        _ => Err((
            format!("cannot parse `FROM {}`", text.trim()),
            "write `FROM [--platform=…] image[:tag] [AS name]`",
        )),
    }
}

/// Split a Dockerfile into instructions: comments dropped, continuations
/// joined, heredoc bodies skipped.
fn instructions(text: &str) -> Vec<Instruction> {
    let lines: Vec<&str> = text.lines().collect();
    let escape = escape_char(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = lines[i].trim();
        if first.is_empty() || first.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut joined = String::new();
        loop {
            let raw = lines[i].trim_end();
            let (body, continues) = match raw.strip_suffix(escape) {
                Some(b) => (b, true),
                None => (raw, false),
            };
            joined.push_str(body);
            i += 1;
            if !continues {
                break;
            }
            // Comment and empty lines inside a continuation are skipped.
            while i < lines.len()
                && (lines[i].trim().starts_with('#') || lines[i].trim().is_empty())
            {
                i += 1;
            }
            if i >= lines.len() {
                break;
            }
            joined.push(' ');
        }
        let (keyword, args) = match joined.trim().split_once(char::is_whitespace) {
            Some((k, a)) => (k.to_ascii_uppercase(), a.trim().to_string()),
            None => (joined.trim().to_ascii_uppercase(), String::new()),
        };
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (delimiter, strip_tabs) in heredocs(&args) {
                while i < lines.len() {
                    let l = if strip_tabs {
                        lines[i].trim_start_matches('\t')
                    } else {
                        lines[i]
                    };
                    i += 1;
                    if l == delimiter {
                        break;
                    }
                }
            }
        }
        out.push(Instruction {
            keyword,
            args,
            line: start + 1,
        });
    }
    out
}

/// The escape character of a Dockerfile: its `# escape=` parser
/// directive, else `\`. Docker's rule: directives are only read at the
/// very top, and the first line that is not a known directive (a plain
/// comment, an unknown `# key=value`, an empty line, an instruction) ends
/// them, so `# note` before `# escape=` disables it.
pub fn escape_char(dockerfile: &str) -> char {
    for line in dockerfile.lines() {
        let Some(directive) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = directive.split_once('=') else {
            break;
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            break;
        }
        match key.to_ascii_lowercase().as_str() {
            "escape" => return value.trim().chars().next().unwrap_or('\\'),
            "syntax" | "check" => continue,
            _ => break,
        }
    }
    '\\'
}

/// Heredoc delimiters opened on an instruction line: `<<EOF`, `<<-EOF`,
/// `<<"EOF"`. As in Docker's parser, only a whole word (quotes respected)
/// that starts with `<<` opens one: `echo "a<<END"` and `a<<END` do not.
fn heredocs(args: &str) -> Vec<(String, bool)> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r#"^<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)(["']?)$"#).expect("valid regex")
    });
    split_words(args)
        .iter()
        .filter_map(|w| re.captures(w))
        .filter(|c| c[2] == c[4])
        .map(|c| (c[3].to_string(), &c[1] == "-"))
        .collect()
}

/// Whitespace-separated words, quotes kept together.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for ch in s.chars() {
        match quote {
            Some(q) if ch == q => {
                quote = None;
                cur.push(ch);
            }
            Some(_) => cur.push(ch),
            None if ch == '"' || ch == '\'' => {
                quote = Some(ch);
                cur.push(ch);
            }
            None if ch.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].to_string();
        }
    }
    t.to_string()
}

/// Values of the leading `--flag=value` options of an instruction.
fn flag_values(args: &str, flag: &str) -> Vec<String> {
    let prefix = format!("--{flag}=");
    split_words(args)
        .into_iter()
        .take_while(|w| w.starts_with("--"))
        .filter_map(|w| w.strip_prefix(&prefix).map(unquote))
        .collect()
}

/// The `from=` of a `--mount` specification.
fn mount_from(spec: &str) -> Option<String> {
    spec.split(',')
        .find_map(|kv| kv.trim().strip_prefix("from=").map(unquote))
}

/// The secret id of a `--mount=type=secret,…` specification: its `id=`,
/// else (as BuildKit has it) the last part of its target path.
fn mount_secret(spec: &str) -> Option<String> {
    let kv: Vec<(&str, &str)> = spec
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .collect();
    let get = |keys: &[&str]| {
        kv.iter()
            .find(|(k, _)| keys.contains(k))
            .map(|(_, v)| unquote(v))
    };
    if get(&["type"]).as_deref() != Some("secret") {
        return None;
    }
    get(&["id"]).or_else(|| {
        get(&["target", "dst", "destination"])
            .and_then(|t| t.rsplit('/').next().map(str::to_string))
    })
}

/// Expand `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` (and `-`/`+`).
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
        } else if c == '$' && chars.get(i + 1) == Some(&'{') {
            let Some(len) = chars[i + 2..].iter().position(|&c| c == '}') else {
                out.extend(&chars[i..]);
                break;
            };
            let inner: String = chars[i + 2..i + 2 + len].iter().collect();
            out.push_str(&expand_braced(&inner, vars));
            i += len + 3;
        } else if c == '$'
            && chars
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
        {
            let len = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count();
            let key: String = chars[i + 1..i + 1 + len].iter().collect();
            out.push_str(vars.get(&key).map(String::as_str).unwrap_or(""));
            i += len + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn expand_braced(inner: &str, vars: &HashMap<String, String>) -> String {
    let ops = [":-", ":+", "-", "+"];
    for op in ops {
        if let Some((key, word)) = inner.split_once(op) {
            if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let value = vars.get(key);
                let set = value.is_some_and(|v| !op.starts_with(':') || !v.is_empty());
                return match (op.ends_with('-'), set) {
                    (true, true) => value.cloned().unwrap_or_default(),
                    (true, false) => expand(word, vars),
                    (false, true) => expand(word, vars),
                    (false, false) => String::new(),
                };
            }
        }
    }
    vars.get(inner).cloned().unwrap_or_default()
}

/// Whether `s` is a well-formed image reference.
pub fn valid_reference(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        let domain = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?";
        regex::Regex::new(&format!(
            r"^{domain}{component}(?:/{component})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{{32,}})?$"
        ))
        .expect("valid regex")
    });
    re.is_match(s)
}

/// The familiar form of a reference: `docker.io/library/` dropped, `:latest` added
/// when there is neither tag nor digest. `docker.io/library/debian` → `debian:latest`.
pub fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let mut repo = repo.to_string();
    for hub in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = repo.strip_prefix(hub) {
            repo = rest
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(rest)
                .to_string();
        }
    }
    let mut out = repo;
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    out
}

#[cfg(test)]
#[path = "dockerfile_tests.rs"]
mod tests;
