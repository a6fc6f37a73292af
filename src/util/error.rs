//! The one error type of strata: what went wrong, where, what to do, and the
//! exit code it maps to (see "Exit codes" in DESIGN.md).
//! Knows nothing of the pipeline; stages build errors with the helpers here.

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};
use std::fmt;
use std::path::Path;

/// What kind of failure this is; decides the exit code (see `Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad config, template, Dockerfile, graph, selector, or an output path
    /// that cannot be written: exit 2, nothing built.
    Input,
    /// The engine or registry is unreachable or refused us before anything
    /// was built: exit 3.
    Engine,
}

/// How a run ends: the one place exit codes are decided (DESIGN.md, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Everything selected is built (or was up to date), tested and pushed.
    Success,
    /// One or more images failed (a build, a test, or one image's push refused).
    Failed,
    /// Invalid input; nothing was built.
    Input,
    /// Engine or registry unreachable, or refusing the credentials, before anything was built.
    Unreachable,
    /// Every image built, but a report file (`--summary`, `--junit`, a log)
    /// could not be written afterwards.
    Report,
    /// Interrupted (SIGINT or SIGTERM).
    Interrupted,
}

impl Code {
    /// The process exit status.
    pub fn status(self) -> i32 {
        match self {
            Code::Success => 0,
            Code::Failed => 1,
            Code::Input => 2,
            Code::Unreachable => 3,
            Code::Report => 4,
            Code::Interrupted => 130,
        }
    }
}

impl From<Kind> for Code {
    fn from(kind: Kind) -> Code {
        match kind {
            Kind::Input => Code::Input,
            Kind::Engine => Code::Unreachable,
        }
    }
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
    /// More errors of the same run, shown after this one.
    pub related: Vec<Error>,
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
            related: Vec::new(),
        }
    }

    /// Several errors at once, the first `max` of them shown in full.
    pub fn many(message: impl Into<String>, mut errors: Vec<Error>, max: usize) -> Self {
        let kind = errors.first().map_or(Kind::Input, |e| e.kind);
        let hidden = errors.len().saturating_sub(max);
        errors.truncate(max);
        let help = if hidden > 0 {
            format!("the first {max} are shown, {hidden} more not; fix these and run again")
        } else {
            "each is shown below".to_string()
        };
        let mut e = Error::new(kind, message).help(help);
        e.related = errors;
        e
    }

    /// Point at `range` (bytes) of `text`, the contents of the file `name`.
    /// A very long line is shown as a window around the place (the display
    /// cannot draw columns past 65,535, and nobody reads them).
    pub fn at(
        mut self,
        name: impl AsRef<str>,
        text: &str,
        range: std::ops::Range<usize>,
        label: impl Into<String>,
    ) -> Self {
        let start = floor_char_boundary(text, range.start.min(text.len()));
        let end = floor_char_boundary(text, range.end.clamp(start, text.len()));
        let (source, span) = window(text, start, end);
        self.snippet = Some(Box::new(Snippet {
            source: NamedSource::new(name.as_ref(), source).with_language("text"),
            span,
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

    /// The user's input at `path` could not be read.
    pub fn read(path: &Path, err: std::io::Error) -> Self {
        Error::input(format!("cannot read `{}`: {err}", path.display()))
    }

    /// An output at `path` could not be written (checked before building,
    /// so this is bad input: exit 2).
    pub fn write(path: &Path, err: std::io::Error) -> Self {
        Error::input(format!("cannot write `{}`: {err}", path.display()))
            .help("choose a path in a folder you can write to")
    }

    pub fn code(&self) -> Code {
        self.kind.into()
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

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|e| e as &dyn Diagnostic)))
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

/// Lines longer than this are cut to a window around the place shown.
const MAX_LINE: usize = 1000;
/// Bytes kept either side of the place in a cut line.
const CONTEXT: usize = 120;

/// `text` with the line holding `start` cut to a window around `start..end`
/// when it is too long (other lines unchanged, so line numbers hold), and
/// the span (offset, length) in the result.
fn window(text: &str, start: usize, end: usize) -> (String, (usize, usize)) {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    if line_end - line_start <= MAX_LINE {
        return (text.to_string(), (start, end - start));
    }
    let from = floor_char_boundary(text, start.saturating_sub(CONTEXT).max(line_start));
    let end = end.min(line_end).min(start + CONTEXT);
    let to = floor_char_boundary(text, (end + CONTEXT).min(line_end));
    let end = floor_char_boundary(text, end);
    let (head, tail) = (
        if from > line_start { "…" } else { "" },
        if to < line_end { "…" } else { "" },
    );
    let mut out = String::with_capacity(start - from + MAX_LINE);
    out.push_str(&text[..line_start]);
    out.push_str(head);
    let offset = out.len() + (start - from);
    out.push_str(&text[from..to]);
    out.push_str(tail);
    out.push_str(&text[line_end..]);
    (out, (offset, end - start))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let table = [
            (Code::Success, 0),
            (Code::Failed, 1),
            (Code::Input, 2),
            (Code::Unreachable, 3),
            (Code::Report, 4),
            (Code::Interrupted, 130),
        ];
        for (code, status) in table {
            assert_eq!(code.status(), status, "{code:?}");
        }
        assert_eq!(Error::input("x").code(), Code::Input);
        assert_eq!(Error::engine("x").code(), Code::Unreachable);
        let e = Error::write(Path::new("a/b"), std::io::Error::other("no"));
        assert_eq!(e.code(), Code::Input);
    }

    #[test]
    fn long_lines_are_cut_around_the_place() {
        let long = format!(
            "first\n{}NEEDLE{}\nlast\n",
            "x".repeat(70_000),
            "é".repeat(40_000)
        );
        let at = long.find("NEEDLE").unwrap();
        let (text, (offset, len)) = window(&long, at, at + 6);
        assert_eq!(&text[offset..offset + len], "NEEDLE");
        assert!(text.starts_with("first\n…") && text.ends_with("…\nlast\n"));
        assert!(text.len() < 1000, "{}", text.len());
        let short = "a\nbb\n";
        assert_eq!(window(short, 2, 4), (short.to_string(), (2, 2)));
    }
}
