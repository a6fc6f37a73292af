//! Values printed as Jinja2 prints them, through Python's `str()`:
//! `True`, `None`, `['a', 'b']`, `{'k': 1}` (`render.python_repr`).

use minijinja::value::{Value, ValueKind};

/// How `{{ value }}` prints `value`, where that differs from minijinja:
/// booleans, none, lists and maps. None: print as minijinja does.
pub fn repr_top(value: &Value) -> Option<String> {
    match value.kind() {
        ValueKind::Bool | ValueKind::None | ValueKind::Seq | ValueKind::Map => Some(repr(value)),
        _ => None,
    }
}

/// The `join` filter as Jinja2's: every item printed as `{{ item }}`
/// prints it (`python_repr`), an undefined item empty, or an error when
/// undefined values are `strict` (minijinja's own skips them silently).
pub fn join(
    value: &Value,
    joiner: Option<&str>,
    attribute: Option<&str>,
    strict: bool,
    python_repr: bool,
) -> Result<String, minijinja::Error> {
    if value.is_undefined() && !strict {
        return Ok(String::new());
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        let item = match attribute {
            Some(path) => path.split('.').try_fold(item, |v, part| v.get_attr(part))?,
            None => item,
        };
        if item.is_undefined() && strict {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::UndefinedError,
                "an item to join is undefined",
            ));
        }
        if i > 0 {
            out.push_str(joiner.unwrap_or(""));
        }
        match python_repr.then(|| repr_top(&item)).flatten() {
            Some(text) => out.push_str(&text),
            None if item.is_undefined() || item.is_none() && !python_repr => {}
            None => out.push_str(&item.to_string()),
        }
        if out.len() > super::VALUE_LIMIT {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!(
                    "join: the joined string passes {} MiB (after {} items), the most a template may build",
                    super::VALUE_LIMIT >> 20,
                    i + 1
                ),
            ));
        }
    }
    Ok(out)
}

/// Python's `repr()` of a value.
fn repr(value: &Value) -> String {
    match value.kind() {
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.to_string(),
        ValueKind::None => "None".to_string(),
        ValueKind::Undefined => String::new(),
        ValueKind::String => string(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = value
                .try_iter()
                .map(|it| it.map(|v| repr(&v)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = value
                .try_iter()
                .map(|keys| {
                    keys.map(|k| {
                        let v = value.get_item(&k).unwrap_or_default();
                        format!("{}: {}", repr(&k), repr(&v))
                    })
                    .collect()
                })
                .unwrap_or_default();
            format!("{{{}}}", items.join(", "))
        }
        _ => value.to_string(),
    }
}

/// Python's `repr()` of a string: single quotes unless the text holds a
/// single quote and no double one.
fn string(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_python_prints_them() {
        let v = |j: serde_json::Value| Value::from(minijinja::value::Serde(&j));
        assert_eq!(repr_top(&Value::from(true)).unwrap(), "True");
        assert_eq!(repr_top(&Value::from(())).unwrap(), "None");
        assert_eq!(repr_top(&Value::from("plain")), None);
        assert_eq!(
            repr_top(&v(serde_json::json!(["a", "it's", 1, true, null]))).unwrap(),
            r#"['a', "it's", 1, True, None]"#
        );
        assert_eq!(
            repr_top(&v(serde_json::json!({"k": ["x"], "n": 2}))).unwrap(),
            "{'k': ['x'], 'n': 2}"
        );
        assert_eq!(string("a'b\"c\\\n"), r#"'a\'b"c\\\n'"#);
    }
}
