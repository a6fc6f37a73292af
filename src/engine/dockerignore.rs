//! `.dockerignore` with Docker's own semantics (moby/patternmatcher): one
//! pattern a line, `#` comments, `!` exceptions, patterns cleaned and anchored
//! at the context root, `*` and `?` within one path element, `**` across
//! elements, `\` escapes; a pattern that matches a parent folder matches
//! everything under it; the last matching pattern decides.
//! Knows nothing of tar files or engines.

use regex::Regex;

#[derive(Debug, Clone)]
struct Pattern {
    regex: Regex,
    exclusion: bool,
}

/// The rules of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
    /// The cleaned pattern texts, in order, `!` kept (for fingerprints and messages).
    pub lines: Vec<String>,
}

impl Ignore {
    /// Parse the text of a `.dockerignore`. An invalid pattern is an error naming it.
    pub fn parse(text: &str) -> crate::util::error::Result<Ignore> {
        let mut ignore = Ignore::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exclusion = pattern.starts_with('!');
            if exclusion {
                pattern = pattern[1..].trim();
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let regex = Regex::new(&to_regex(&cleaned)).map_err(|e| {
                crate::util::error::Error::input(format!("invalid pattern `{line}`: {e}"))
            })?;
            ignore.lines.push(if exclusion {
                format!("!{cleaned}")
            } else {
                cleaned
            });
            ignore.patterns.push(Pattern { regex, exclusion });
        }
        Ok(ignore)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any rule is an `!` exception (then an excluded folder may still hold kept files).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let parents: Vec<&str> = path.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            let mut m = p.regex.is_match(path);
            if !m && parents.len() > 1 {
                let mut prefix = String::new();
                for (i, part) in parents[..parents.len() - 1].iter().enumerate() {
                    if i > 0 {
                        prefix.push('/');
                    }
                    prefix.push_str(part);
                    if p.regex.is_match(&prefix) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Docker's translation of a pattern into an anchored regular expression.
fn to_regex(pattern: &str) -> String {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    re.push_str(&regex::escape(&next.to_string()));
                }
                None => re.push_str("\\\\"),
            },
            // Docker escapes exactly these; `[`, `]`, `^` and `-` keep their class meaning.
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            c => re.push(c),
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("**/*.md", "docs/a/README.md", true),
            ("**/*.md", "README.md", true),
            ("/build", "build/x", true),
            ("build/", "build/x", true),
            ("./build", "build", true),
            ("docs", "docs/a/b", true),
            ("d?cs", "docs", true),
            ("d?cs", "d/cs", false),
            ("docs/**", "docs/a/b", true),
            ("**", "anything/at/all", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("\\*literal", "*literal", true),
            ("\\*literal", "xliteral", false),
            ("[abc].txt", "b.txt", true),
            ("[^abc].txt", "b.txt", false),
            ("file.txt", "filextxt", false),
            ("*\ndocs\n!docs/keep", "docs/keep", false),
            ("*\n!docs\ndocs/x", "docs/x", true),
            ("docs\n!docs/keep", "docs/other", true),
            ("!docs/keep\ndocs", "docs/keep", true),
            ("# comment\n  spaced  ", "spaced", true),
            ("# comment", "# comment", false),
        ];
        for (rules, path, want) in cases {
            let ig = Ignore::parse(rules).unwrap();
            assert_eq!(ig.excludes(path), *want, "rules {rules:?} path {path}");
        }
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("../a"), "../a");
    }
}
