//! Package versions as dpkg orders them (`epoch:upstream-revision`, `~`
//! before everything, digits by value; apk versions order the same way
//! for the forms they share), and `NAME@RANGE` queries such as
//! `openssl@<3.0.15` or `bash@>=5.2,<5.3`.

use crate::util::error::{Error, Result};
use std::cmp::Ordering;

fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: one part (upstream or revision).
fn part(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (x, y) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if x != y {
                return x.cmp(&y);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first = Ordering::Equal;
        while i < a.len() && j < b.len() && a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            if first == Ordering::Equal {
                first = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if a.get(i).is_some_and(u8::is_ascii_digit) {
            return Ordering::Greater;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            return Ordering::Less;
        }
        if first != Ordering::Equal {
            return first;
        }
    }
    Ordering::Equal
}

/// Compare two versions as dpkg does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let split = |v: &str| {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) => {
                (e.parse::<u64>().unwrap_or(0), r)
            }
            _ => (0, v),
        };
        let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
        (epoch, upstream.to_string(), revision.to_string())
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| part(ra.as_bytes(), rb.as_bytes()))
}

/// `NAME[@RANGE]`: a package and the versions that match.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub name: String,
    /// (operator, version), all of which must hold; none: any version.
    pub range: Vec<(Ordering, bool, String)>,
}

impl Query {
    pub fn parse(spec: &str) -> Result<Query> {
        let bad = |why: &str| {
            Error::input(format!("invalid --package `{spec}`: {why}"))
                .help("give NAME or NAME@RANGE, e.g. `openssl@<3.0.15` or `bash@>=5.2,<5.3`")
        };
        let (name, range) = spec.split_once('@').unwrap_or((spec, ""));
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad("no package name"));
        }
        let mut out = Vec::new();
        for cond in range.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let (op, version) = [
                ("<=", (Ordering::Less, true)),
                (">=", (Ordering::Greater, true)),
                ("==", (Ordering::Equal, true)),
                ("<", (Ordering::Less, false)),
                (">", (Ordering::Greater, false)),
                ("=", (Ordering::Equal, true)),
            ]
            .iter()
            .find_map(|(p, op)| cond.strip_prefix(p).map(|v| (*op, v.trim())))
            .unwrap_or(((Ordering::Equal, true), cond));
            if version.is_empty() {
                return Err(bad(&format!("`{cond}` names no version")));
            }
            out.push((op.0, op.1, version.to_string()));
        }
        Ok(Query {
            name: name.to_string(),
            range: out,
        })
    }

    /// Whether package `name` at `version` matches.
    pub fn matches(&self, name: &str, version: &str) -> bool {
        name == self.name
            && self.range.iter().all(|(want, or_equal, v)| {
                let got = compare(version, v);
                got == *want && *want != Ordering::Equal || (*or_equal && got == Ordering::Equal)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_dpkg_orders_them() {
        let ordered = [
            "1.0~rc1", "1.0", "1.0-1", "1.0-1+b1", "1.0a", "1.2", "1.10", "1:0.1",
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(w[1], w[0]), Ordering::Greater);
        }
        assert_eq!(
            compare("3.0.15-1~deb12u1", "3.0.15-1~deb12u1"),
            Ordering::Equal
        );
        assert_eq!(compare("3.0.14-1~deb12u2", "3.0.15"), Ordering::Less);
    }

    #[test]
    fn queries_match_ranges() {
        let q = Query::parse("openssl@<3.0.15").unwrap();
        assert!(q.matches("openssl", "3.0.14-1~deb12u2"));
        assert!(!q.matches("openssl", "3.0.15-1"));
        assert!(!q.matches("libssl3", "3.0.1"));
        let q = Query::parse("bash@>=5.2,<5.3").unwrap();
        assert!(
            q.matches("bash", "5.2.15-2+b7")
                && !q.matches("bash", "5.3")
                && !q.matches("bash", "5.1")
        );
        assert!(Query::parse("bash").unwrap().matches("bash", "1"));
        assert!(Query::parse("bash@=5.2").unwrap().matches("bash", "5.2"));
        assert!(Query::parse("@1").is_err() && Query::parse("x@<").is_err());
    }
}
