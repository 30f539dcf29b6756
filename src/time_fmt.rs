//! UTC time as Vigil stores and shows it: i64 microseconds since the Unix epoch inside,
//! RFC 3339 at the edges (config, CLI, HTTP).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats µs since the epoch as RFC 3339 UTC with microseconds.
pub fn rfc3339(us: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses RFC 3339 (any offset) into µs since the epoch.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1000) as i64)
        .map_err(|e| {
            format!("{s:?} is not an RFC 3339 time ({e}); expected e.g. 2026-11-22T20:15:00Z")
        })
}

/// `YYYY-MM-DD` and `YYYYMMDDTHHMMSS.ffffffZ` for segment paths.
pub fn path_parts(us: i64) -> (String, String) {
    let t = OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let day = format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day());
    let name = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    );
    (day, name)
}

/// Inverse of the file-name half of [`path_parts`].
pub fn parse_path_name(name: &str) -> Option<i64> {
    let b = name.as_bytes();
    if b.len() != 23 || b[8] != b'T' || b[15] != b'.' || b[22] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| name.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        num(0..4)? as i32,
        time::Month::try_from(num(4..6)? as u8).ok()?,
        num(6..8)? as u8,
    )
    .ok()?;
    let tod = time::Time::from_hms_micro(
        num(9..11)? as u8,
        num(11..13)? as u8,
        num(13..15)? as u8,
        num(16..22)?,
    )
    .ok()?;
    let t = time::PrimitiveDateTime::new(date, tod).assume_utc();
    Some((t.unix_timestamp_nanos() / 1000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let us = 1_763_842_530_123_456;
        assert_eq!(parse_rfc3339(&rfc3339(us)).unwrap(), us);
        let (_, name) = path_parts(us);
        assert_eq!(parse_path_name(&name), Some(us));
        assert!(parse_rfc3339("yesterday").is_err());
        assert_eq!(
            parse_rfc3339("2026-11-22T21:00:00+01:00").unwrap(),
            parse_rfc3339("2026-11-22T20:00:00Z").unwrap()
        );
    }
}
