//! The picture of a run: a Gantt chart drawn from a summary. One row per
//! build slot (images that ran at once stand on different rows), one bar
//! per image from its start to its end, coloured by how it ended, the
//! critical path outlined, idle time left blank, a time axis below. Hover a
//! bar for its name, status and times (an SVG `<title>`). `.html` wraps the
//! same SVG in a page. Knows nothing of engines: it reads the summary only.

use crate::util::error::{Error, Result};
use std::fmt::Write as _;
use std::path::Path;

/// What the picture needs of one image of a summary.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Bar {
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Parents in the run (names), for the critical path.
    #[serde(default)]
    pub parents: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct SummaryFile {
    images: Vec<Bar>,
}

/// The bars of a summary JSON file.
pub fn read(path: &Path) -> Result<Vec<Bar>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
    let summary: SummaryFile = serde_json::from_str(&text).map_err(|e| {
        Error::input(format!("{}: not a strata summary: {e}", path.display()))
            .help("write one with `strata build --summary FILE`")
    })?;
    Ok(summary.images)
}

/// A timeline is SVG (`.svg`) or an HTML page around it (`.html`); any
/// other name is refused before anything is built (exit 2).
pub fn check_path(path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg" | "html") => Ok(()),
        _ => Err(Error::input(format!(
            "`{}`: a timeline is drawn as SVG or HTML, and this name ends in neither",
            path.display()
        ))
        .help("name the file `….svg` or `….html` (for a PNG, convert the SVG, e.g. `rsvg-convert run.svg -o run.png`)")),
    }
}

/// Write the picture of `bars` to `path`: SVG, or HTML when it ends in `.html`.
pub fn write(path: &Path, bars: &[Bar]) -> Result<()> {
    check_path(path)?;
    let svg = svg(bars)?;
    let text = if path.extension().is_some_and(|e| e == "html") {
        format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>strata build timeline</title></head>\n<body>\n{svg}</body></html>\n"
        )
    } else {
        svg
    };
    std::fs::write(path, text).map_err(|e| Error::write(path, e))
}

/// One placed bar: start and end in seconds from the run's first start.
struct Placed<'a> {
    bar: &'a Bar,
    start: f64,
    end: f64,
    row: usize,
}

fn seconds(at: &str) -> Option<f64> {
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

const WIDTH: f64 = 960.0;
const LEFT: f64 = 20.0;
const ROW: f64 = 24.0;
const TOP: f64 = 30.0;

/// The SVG of `bars` (those with start and end times).
pub fn svg(bars: &[Bar]) -> Result<String> {
    let mut timed: Vec<(&Bar, f64, f64)> = bars
        .iter()
        .filter_map(|b| {
            let s = seconds(b.started_at.as_deref()?)?;
            let e = seconds(b.finished_at.as_deref()?)?;
            Some((b, s, e.max(s)))
        })
        .collect();
    if timed.is_empty() {
        return Ok(nothing_built(bars.len()));
    }
    timed.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.name.cmp(&b.0.name)));
    let (placed, rows) = place(timed);
    let total = placed.iter().map(|p| p.end).fold(0.0, f64::max).max(0.001);
    let critical = critical_path(&placed);
    let scale = (WIDTH - 2.0 * LEFT) / total;
    let height = TOP + ROW * rows as f64 + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"18\" font-size=\"13\">strata build: {} images in {:.1} s on {} slots; outlined: the critical path</text>",
        placed.len(),
        total,
        rows
    );
    for (i, p) in placed.iter().enumerate() {
        let x = LEFT + p.start * scale;
        let w = ((p.end - p.start) * scale).max(1.0);
        let y = TOP + p.row as f64 * ROW;
        let colour = match p.bar.status.as_str() {
            "built" => "#5b9b5b",
            "failed" => "#c0392b",
            "cancelled" => "#999999",
            _ => "#7f8fa6",
        };
        let outline = if critical.contains(&i) {
            " stroke=\"#000\" stroke-width=\"2\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<rect class=\"bar\" data-name=\"{name}\" x=\"{x:.2}\" y=\"{y:.1}\" width=\"{w:.2}\" height=\"{h:.1}\" fill=\"{colour}\"{outline}><title>{name}: {status}, {dur:.2} s (from {s:.2} s to {e:.2} s)</title></rect>",
            name = crate::report::xml::escape(&p.bar.name),
            h = ROW - 4.0,
            status = p.bar.status,
            dur = p.end - p.start,
            s = p.start,
            e = p.end,
        );
        if w > 7.0 * p.bar.name.len() as f64 {
            let _ = writeln!(
                out,
                "<text x=\"{:.2}\" y=\"{:.1}\" fill=\"#fff\">{}</text>",
                x + 3.0,
                y + ROW - 10.0,
                crate::report::xml::escape(&p.bar.name)
            );
        }
    }
    axis(&mut out, TOP + ROW * rows as f64 + 6.0, total, scale);
    out.push_str("</svg>\n");
    Ok(out)
}

/// The picture of a run in which no image ran (an incremental run that
/// found everything up to date): a line that says so.
fn nothing_built(images: usize) -> String {
    let were = match images {
        1 => "1 image was".to_string(),
        n => format!("{n} images were"),
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"60\" viewBox=\"0 0 {WIDTH} 60\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <text x=\"{LEFT}\" y=\"30\">strata build: nothing was built; {were} up to date</text>\n</svg>\n"
    )
}

/// Each bar (sorted by start) on the first row free at its start; the
/// bars placed, from the first start, and the number of rows.
fn place(timed: Vec<(&Bar, f64, f64)>) -> (Vec<Placed<'_>>, usize) {
    let t0 = timed[0].1;
    let mut row_ends: Vec<f64> = Vec::new();
    let mut placed = Vec::new();
    for (bar, s, e) in timed {
        let (start, end) = (s - t0, e - t0);
        let row = match row_ends.iter().position(|&r| r <= start + 1e-9) {
            Some(r) => r,
            None => {
                row_ends.push(0.0);
                row_ends.len() - 1
            }
        };
        row_ends[row] = end;
        placed.push(Placed {
            bar,
            start,
            end,
            row,
        });
    }
    (placed, row_ends.len())
}

/// The time axis at `axis_y`, ticks at a round step.
fn axis(out: &mut String, axis_y: f64, total: f64, scale: f64) {
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{axis_y}\" x2=\"{:.2}\" y2=\"{axis_y}\" stroke=\"#333\"/>",
        LEFT + total * scale
    );
    let step = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    ]
    .into_iter()
    .find(|s| total / s <= 12.0)
    .unwrap_or(3600.0);
    let mut t = 0.0;
    while t <= total + 1e-9 {
        let x = LEFT + t * scale;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.2}\" y1=\"{axis_y}\" x2=\"{x:.2}\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{x:.2}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            axis_y + 4.0,
            axis_y + 16.0,
            tick(t)
        );
        t += step;
    }
}

fn tick(t: f64) -> String {
    if t >= 60.0 {
        format!("{}m{:02}s", (t / 60.0) as u64, (t % 60.0) as u64)
    } else if t.fract().abs() < 1e-9 {
        format!("{t:.0}s")
    } else {
        format!("{t:.1}s")
    }
}

/// The chain that ended last: from the bar that ends last, back through
/// the parent that ended last before it started, as far as it goes.
fn critical_path(placed: &[Placed]) -> Vec<usize> {
    let by_name: std::collections::HashMap<&str, usize> = placed
        .iter()
        .enumerate()
        .map(|(i, p)| (p.bar.name.as_str(), i))
        .collect();
    let Some(mut at) = (0..placed.len()).max_by(|&a, &b| placed[a].end.total_cmp(&placed[b].end))
    else {
        return Vec::new();
    };
    let mut path = vec![at];
    while let Some(next) = placed[at]
        .bar
        .parents
        .keys()
        .filter_map(|n| by_name.get(n.as_str()).copied())
        .max_by(|&a, &b| placed[a].end.total_cmp(&placed[b].end))
    {
        path.push(next);
        at = next;
    }
    path
}
