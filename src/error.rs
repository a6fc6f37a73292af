//! The one error type of strata: what went wrong, where, what to do, and the
//! exit code it maps to (see "Exit codes" in DESIGN.md).
//! Knows nothing of the pipeline; stages build errors with the helpers here.

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};
use std::fmt;
use std::path::Path;

/// What kind of failure this is; decides the exit code. (Failed builds
/// and interrupts are results, not errors: `build` returns 1 or 130.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad config, template, Dockerfile, graph or selector: exit 2, nothing built.
    Input,
    /// The engine or registry is unreachable or refused: exit 3.
    Engine,
}

/// A place in a file to point at.
#[derive(Debug)]
pub struct Snippet {
    pub source: NamedSource<String>,
    pub span: (usize, usize),
    pub label: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub snippet: Option<Box<Snippet>>,
    pub help: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(Kind::Input, message)
    }

    pub fn engine(message: impl Into<String>) -> Self {
        Self::new(Kind::Engine, message)
    }

    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            snippet: None,
            help: None,
        }
    }

    /// Point at `range` (bytes) of `text`, the contents of the file `name`.
    pub fn at(
        mut self,
        name: impl AsRef<str>,
        text: &str,
        range: std::ops::Range<usize>,
        label: impl Into<String>,
    ) -> Self {
        let start = floor_char_boundary(text, range.start.min(text.len()));
        let end = floor_char_boundary(text, range.end.clamp(start, text.len()));
        self.snippet = Some(Box::new(Snippet {
            source: NamedSource::new(name.as_ref(), text.to_string()).with_language("text"),
            span: (start, end - start),
            label: label.into(),
        }));
        self
    }

    /// Point at a whole 1-based line of `text`.
    pub fn at_line(
        self,
        name: impl AsRef<str>,
        text: &str,
        line: usize,
        label: impl Into<String>,
    ) -> Self {
        let range = line_range(text, line);
        self.at(name, text, range, label)
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// An I/O failure on `path`: the user's input could not be read or written.
    pub fn io(path: &Path, err: std::io::Error) -> Self {
        Error::input(format!("cannot access `{}`: {err}", path.display()))
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            Kind::Input => 2,
            Kind::Engine => 3,
        }
    }
}

impl Diagnostic for Error {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.snippet.as_ref().map(|s| &s.source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let s = self.snippet.as_ref()?;
        let label = LabeledSpan::new(Some(s.label.clone()), s.span.0, s.span.1);
        Some(Box::new(std::iter::once(label)))
    }
}

/// Byte range of the 1-based `line` of `text`, without its newline.
pub fn line_range(text: &str, line: usize) -> std::ops::Range<usize> {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let trimmed = l.trim_end_matches(['\n', '\r']);
            return start..start + trimmed.len();
        }
        start += l.len();
    }
    text.len()..text.len()
}

/// 1-based line number of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Up to three names from `candidates` close to `name`, closest first.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// "did you mean `a`, `b`?" or None.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let close = suggest(name, candidates);
    if close.is_empty() {
        None
    } else {
        let list: Vec<String> = close.iter().map(|c| format!("`{c}`")).collect();
        Some(format!("did you mean {}?", list.join(", ")))
    }
}
