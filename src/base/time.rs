//! Time as Vigil keeps it: i64 microseconds since the Unix epoch (UTC) inside, RFC 3339
//! at the edges (config, CLI, HTTP).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The wall clock now, µs since the Unix epoch (0 if the clock is before 1970).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Formats µs since the epoch as RFC 3339 UTC with microseconds.
pub fn rfc3339(us: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses RFC 3339 (any offset) into µs since the epoch. Errors: the text, why, and an
/// example of the expected form.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1000) as i64)
        .map_err(|e| {
            format!("{s:?} is not an RFC 3339 time ({e}); expected e.g. 2026-11-22T20:15:00Z")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let us = 1_763_842_530_123_456;
        assert_eq!(parse_rfc3339(&rfc3339(us)).unwrap(), us);
        assert!(parse_rfc3339("yesterday").is_err());
        assert_eq!(
            parse_rfc3339("2026-11-22T21:00:00+01:00").unwrap(),
            parse_rfc3339("2026-11-22T20:00:00Z").unwrap()
        );
    }
}
