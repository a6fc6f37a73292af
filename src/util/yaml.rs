//! YAML files as strata reads them (strata.yaml, image.yaml, devfiles,
//! test files, scripts of the simulated engine): deserialized with
//! serde-saphyr, an error pointing at the file, line and column with what
//! to do. Knows nothing of what the files mean.

use crate::util::error::{Error, Result};
use serde::de::DeserializeOwned;

/// Deserialize YAML `text` from the file `name`, mapping errors to a located message.
pub fn parse<T: DeserializeOwned>(name: &str, text: &str) -> Result<T> {
    serde_saphyr::from_str(text).map_err(|e| {
        let message = e.without_snippet().to_string();
        let message = message.lines().next().unwrap_or("invalid YAML").trim();
        let message = match message.rfind(" at line ") {
            Some(i) => &message[..i],
            None => message,
        };
        let (message, help) = explain_yaml_error(message);
        let err = Error::input(format!("{name}: {message}")).help(help);
        match e.location() {
            Some(loc) if loc.line() > 0 => {
                let offset = char_offset(text, loc.line() as usize, loc.column() as usize);
                let end = token_end(text, offset);
                err.at(name, text, offset..end, "here")
            }
            _ => err,
        }
    })
}

fn explain_yaml_error(message: &str) -> (String, String) {
    if message.contains("unknown field") {
        let keys = message.split("expected").nth(1).unwrap_or("").trim();
        let valid = if keys.is_empty() {
            String::new()
        } else {
            format!("; expected {keys}")
        };
        let first = message.split(", expected").next().unwrap_or(message);
        let first = first.replace("unknown field", "unknown key");
        (first, format!("remove or rename the key{valid}"))
    } else {
        (
            message.to_string(),
            "fix the YAML at the marked place".to_string(),
        )
    }
}

/// Byte offset of the 1-based (line, column) of `text`, columns counted in chars.
fn char_offset(text: &str, line: usize, column: usize) -> usize {
    let start = crate::util::error::line_range(text, line).start;
    let rest = &text[start..];
    rest.char_indices()
        .nth(column.saturating_sub(1))
        .map(|(i, _)| start + i)
        .unwrap_or(start)
}

/// End of the word starting at `offset` (a key or scalar), at least one char.
fn token_end(text: &str, offset: usize) -> usize {
    let rest = &text[offset..];
    let len = rest
        .find([':', '\n', ' ', ',', ']', '}'])
        .unwrap_or(rest.len());
    offset + len.max(rest.chars().next().map_or(0, char::len_utf8))
}
