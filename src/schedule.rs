//! Arming schedules: when a camera's or a zone's motion raises alerts.
//!
//! A schedule is a list of weekly windows in a time zone, written the way a site's
//! security plan says them: `"Mon-Fri 18:00-08:00"` (each of those evenings until the
//! next morning), `"Sat,Sun"` (whole days), `"daily 12:00-13:00"`. A window whose end is
//! not after its start runs past midnight into the next day. The windows say when the
//! schedule is armed, or (`disarmed = [...]` in the config) when it is not: "alerts only
//! out of office hours" is `disarmed = ["Mon-Fri 08:00-18:00"]`. An empty `armed` list
//! is never armed. Local wall-clock time is evaluated per instant in the schedule's time zone
//! (the system's by default), so daylight-saving changes need nothing special.
//!
//! Disarmed motion is still detected and recorded in the timeline; only alerts (SSE,
//! WebSocket, MQTT, webhooks) are held back.

use std::sync::Arc;

use jiff::tz::TimeZone;

/// One weekly window: on each `days` (0 = Monday), from `start` to `end` minutes after
/// midnight, `end` possibly on the next day.
#[derive(Clone, Debug, PartialEq)]
struct Window {
    days: [bool; 7],
    start: u16,
    /// Minutes from that day's midnight; > 1440 when the window runs past midnight.
    end: u16,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    tz: TimeZone,
    windows: Vec<Window>,
    /// The windows are when it is disarmed.
    invert: bool,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Result<usize, String> {
    let l = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| l.len() >= 3 && d.starts_with(&l[..3]) && d[..3] == l[..3])
        .ok_or_else(|| format!("{s:?} is not a day (Mon, Tue, ... Sun)"))
}

fn minutes(s: &str) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time (HH:MM, 00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) || s.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn window(text: &str) -> Result<Window, String> {
    let mut parts = text.split_whitespace();
    let days_part = parts.next().ok_or("empty window")?;
    let times = parts.next();
    if parts.next().is_some() {
        return Err(format!(
            "{text:?}: expected \"DAYS [HH:MM-HH:MM]\", e.g. \"Mon-Fri 18:00-08:00\""
        ));
    }
    let mut days = [false; 7];
    if days_part.eq_ignore_ascii_case("daily") {
        days = [true; 7];
    } else {
        for item in days_part.split(',') {
            match item.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    // "Fri-Mon" wraps over the week's end.
                    let mut d = a;
                    loop {
                        days[d] = true;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days[day(item)?] = true,
            }
        }
    }
    let (start, end) = match times {
        None => (0, 1440),
        Some(t) => {
            let (a, b) = t
                .split_once('-')
                .ok_or_else(|| format!("{t:?}: expected HH:MM-HH:MM"))?;
            let (a, b) = (minutes(a)?, minutes(b)?);
            if a == 1440 {
                return Err(format!("{t:?}: a window cannot start at 24:00"));
            }
            (a, if b <= a { b + 1440 } else { b })
        }
    };
    Ok(Window { days, start, end })
}

/// When a camera's motion raises alerts: a schedule for the camera as a whole and one per
/// zone (indexed like the camera's zones); `None` means always armed.
#[derive(Debug, Clone, Default)]
pub struct Arming {
    pub camera: Option<Arc<Schedule>>,
    pub zones: Vec<Option<Arc<Schedule>>>,
}

impl Arming {
    /// Motion on the camera as a whole raises alerts at `utc_us` (µs since the epoch).
    pub fn camera_armed(&self, utc_us: i64) -> bool {
        self.camera.as_ref().is_none_or(|s| s.armed(utc_us))
    }

    /// Motion in zone `zone` (an index into the camera's zones) raises alerts at `utc_us`.
    pub fn zone_armed(&self, zone: usize, utc_us: i64) -> bool {
        (self.zones.get(zone).and_then(|z| z.as_ref())).is_none_or(|s| s.armed(utc_us))
    }
}

impl Schedule {
    /// Parses windows; `tz` is an IANA name ("Europe/Berlin") or None for the system's;
    /// `invert`: the windows are when it is disarmed.
    pub fn parse(
        name: &str,
        tz: Option<&str>,
        windows: &[String],
        invert: bool,
    ) -> Result<Schedule, String> {
        let tz = match tz {
            Some(n) => TimeZone::get(n)
                .map_err(|e| format!("time zone {n:?}: {e} (expected e.g. \"Europe/Berlin\")"))?,
            None => TimeZone::system(),
        };
        let windows = windows
            .iter()
            .map(|w| window(w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule {
            name: name.into(),
            tz,
            windows,
            invert,
        })
    }

    /// Whether alerts are armed at `utc_us` (µs since the Unix epoch).
    pub fn armed(&self, utc_us: i64) -> bool {
        let Ok(ts) = jiff::Timestamp::from_microsecond(utc_us) else {
            return true; // out of range: never hold an alert back for it
        };
        let local = ts.to_zoned(self.tz.clone());
        let today = local.weekday().to_monday_zero_offset() as usize;
        let yesterday = (today + 6) % 7;
        let now = (local.hour() as u16) * 60 + local.minute() as u16;
        let inside = self.windows.iter().any(|w| {
            (w.days[today] && now >= w.start && now < w.end)
                || (w.days[yesterday] && w.end > 1440 && now < w.end - 1440)
        });
        inside != self.invert
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_microsecond()
    }

    #[test]
    fn office_hours_overnight_and_weekends() {
        // 2026-11-23 is a Monday. UTC, to read the times directly.
        let s = Schedule::parse(
            "after-hours",
            Some("UTC"),
            &["Mon-Fri 18:00-08:00".into(), "Sat,Sun".into()],
            false,
        )
        .unwrap();
        assert!(!s.armed(at("2026-11-23T12:00:00Z"))); // Monday noon
        assert!(s.armed(at("2026-11-23T18:00:00Z"))); // Monday 18:00
        assert!(s.armed(at("2026-11-24T07:59:00Z"))); // Tuesday early (Monday's night)
        assert!(!s.armed(at("2026-11-24T08:00:00Z")));
        assert!(s.armed(at("2026-11-28T12:00:00Z"))); // Saturday
        // Monday early: Sunday's whole day ends at midnight and Monday's evening window
        // has not begun (the night before Monday needs "Sun 18:00-08:00", say).
        assert!(!s.armed(at("2026-11-30T07:00:00Z")));
        // The same plan said the other way round: disarmed in office hours.
        let office =
            Schedule::parse("x", Some("UTC"), &["Mon-Fri 08:00-18:00".into()], true).unwrap();
        for t in [
            "2026-11-23T12:00:00Z",
            "2026-11-30T07:00:00Z",
            "2026-11-28T12:00:00Z",
        ] {
            assert_eq!(office.armed(at(t)), t != "2026-11-23T12:00:00Z", "{t}");
        }
        let sun_only = Schedule::parse("x", Some("UTC"), &["Sun".into()], false).unwrap();
        assert!(!sun_only.armed(at("2026-11-30T00:30:00Z")));
        assert!(sun_only.armed(at("2026-11-29T23:59:00Z")));
        // Friday's night runs into Saturday morning.
        let fri = Schedule::parse("x", Some("UTC"), &["Fri 22:00-06:00".into()], false).unwrap();
        assert!(fri.armed(at("2026-11-28T05:00:00Z")));
        assert!(!fri.armed(at("2026-11-28T22:30:00Z")));
        // Day ranges wrap over the week's end; an empty schedule is never armed.
        let wrap =
            Schedule::parse("x", Some("UTC"), &["Fri-Mon 09:00-10:00".into()], false).unwrap();
        assert!(wrap.armed(at("2026-11-29T09:30:00Z"))); // Sunday
        assert!(!wrap.armed(at("2026-11-25T09:30:00Z"))); // Wednesday
        let never = Schedule::parse("never", Some("UTC"), &[], false).unwrap();
        assert!(!never.armed(at("2026-11-25T09:30:00Z")));
        let daily =
            Schedule::parse("x", Some("UTC"), &["daily 00:00-24:00".into()], false).unwrap();
        assert!(daily.armed(at("2026-11-25T23:59:59Z")));
    }

    #[test]
    fn local_time_across_daylight_saving() {
        // Berlin: UTC+1 in winter, UTC+2 in summer (from 2026-03-29 01:00 UTC).
        let s = Schedule::parse(
            "x",
            Some("Europe/Berlin"),
            &["daily 08:00-09:00".into()],
            false,
        )
        .unwrap();
        assert!(s.armed(at("2026-03-28T07:30:00Z"))); // 08:30 CET
        assert!(!s.armed(at("2026-03-30T07:30:00Z"))); // 09:30 CEST
        assert!(s.armed(at("2026-03-30T06:30:00Z"))); // 08:30 CEST
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        let err = |w: &str| Schedule::parse("x", Some("UTC"), &[w.into()], false).unwrap_err();
        assert!(err("Mon-Fry 18:00-08:00").contains("\"Fry\" is not a day"));
        assert!(err("Mon 25:00-08:00").contains("is not a time"));
        assert!(err("Mon 8:00-9:00").contains("is not a time"));
        assert!(err("Mon 18:00").contains("expected HH:MM-HH:MM"));
        assert!(err("Mon 18:00-19:00 extra").contains("expected \"DAYS"));
        assert!(err("Mon 24:00-08:00").contains("cannot start at 24:00"));
        let e = Schedule::parse("x", Some("Mars/Olympus"), &[], false).unwrap_err();
        assert!(e.contains("time zone \"Mars/Olympus\""), "{e}");
    }
}
