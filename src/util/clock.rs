//! The wall clock, in the forms strata writes it: a date for tag
//! templates, RFC 3339 for summaries, log names and timelines.

/// Today in UTC as `YYYYMMDD`.
pub fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

/// Now, as RFC 3339 in UTC to the second (`2026-11-23T10:00:00Z`).
pub fn now_rfc3339() -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// Now, as RFC 3339 in UTC to the millisecond, for the start and end of
/// each image's step (a timeline needs finer than seconds).
pub fn now_rfc3339_millis() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
        let ms = super::now_rfc3339_millis();
        assert_eq!(ms.len(), 24, "{ms}");
        assert_eq!(super::today().len(), 8);
    }
}
