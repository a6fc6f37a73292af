//! The page of a run (`--report run.html`, `strata report`): one HTML file
//! that holds everything, its script and style inlined, no network. The
//! facts come from the files a run leaves (`model`); the script
//! (`page.js`) draws the graph by level, the panels, the timeline's links
//! and the filters from them. Every text of a run goes in as JSON data and
//! out through `textContent`: a log line is never markup.

mod model;

#[cfg(test)]
use model::diff;
pub use model::{model, Sources};

use crate::util::error::{Error, Result};
use std::path::Path;

const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// A page is HTML: any other name is refused before anything is built
/// (exit 2), as a path that cannot be written is.
pub fn check_path(path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => crate::report::check_writable(path),
        _ => Err(Error::input(format!(
            "`{}`: the run's page is HTML, and this name does not end in .html",
            path.display()
        ))
        .help("name it `….html`, e.g. `--report run.html`")),
    }
}

/// The page of `sources`, written to `path`.
pub fn write(path: &Path, sources: Sources) -> Result<()> {
    let page = render(&model(sources));
    std::fs::write(path, page).map_err(|e| Error::write(path, e))
}

/// The whole page around `data`.
pub fn render(data: &serde_json::Value) -> String {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>strata run</title>\n<style>{STYLE}</style></head>\n<body>\n\
         <header id=\"head\"></header>\n<div id=\"missing\"></div>\n\
         <nav id=\"filters\"></nav>\n<main><section id=\"graph\"></section>\
         <aside id=\"panel\" hidden></aside></main>\n<section id=\"timeline\"></section>\n\
         <script type=\"application/json\" id=\"data\">{}</script>\n\
         <script>{SCRIPT}</script>\n</body></html>\n",
        inert(&json)
    )
}

/// JSON that cannot end the `<script>` element it sits in, nor be read as
/// markup: `<`, `>` and `&` as JSON escapes (and the two line separators
/// old script parsers stop at).
fn inert(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_text_of_a_run_can_close_the_data_element() {
        let data = serde_json::json!({"images": [{"name": "a", "error": "</script><script>x()</script>"}]});
        let page = render(&data);
        let inside = page.split("id=\"data\">").nth(1).unwrap();
        let inside = inside.split("</script>").next().unwrap();
        assert!(!inside.contains('<'), "{inside}");
        let back: serde_json::Value = serde_json::from_str(inside).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn a_diff_names_added_removed_and_changed_packages() {
        let p = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let before = p(&[("bash", "5.2"), ("gone", "1"), ("libc6", "2.36-9")]);
        let now = p(&[
            ("bash", "5.2"),
            ("less", "590-2"),
            ("libc6", "2.36-9+deb12u4"),
        ]);
        let (added, removed, changed) = diff(&before, &now);
        assert_eq!(added, ["less 590-2"]);
        assert_eq!(removed, ["gone 1"]);
        assert_eq!(
            changed,
            [["libc6", "2.36-9", "2.36-9+deb12u4"].map(String::from)]
        );
    }

    #[test]
    fn a_summary_of_another_kind_still_gives_a_page_that_says_so() {
        let data = model(Sources {
            summary: Some(serde_json::json!({"version": 99, "runs": []})),
            logs: None,
            attest: None,
            missing: Vec::new(),
            key: None,
            beside: None,
        });
        let missing = data["missing"].as_array().unwrap();
        assert!(missing
            .iter()
            .any(|m| m.as_str().unwrap().contains("no `images` list")));
        assert!(missing
            .iter()
            .any(|m| m.as_str().unwrap().contains("no log folder")));
        assert!(render(&data).contains("id=\"data\""));
    }
}
