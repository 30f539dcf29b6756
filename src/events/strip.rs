//! One camera's lane of the console's timeline (`GET /api/timeline/strip`): motion
//! intensity bucketed per pixel column at any zoom (5 minutes to 7 days across), the
//! events as spans with their zones, the recording gaps, and the holds and bookmarks
//! that touch the range. Everything is read for the visible range only.
//!
//! The column mapping ([`Columns`]) is the one the console's canvas uses
//! (`src/api/console/timeline.js`): column `i` of `n` over `[t0, t1)` covers
//! `[t0 + ⌈i·(t1−t0)/n⌉, t0 + ⌈(i+1)·(t1−t0)/n⌉)`.

use std::collections::HashMap;

use serde::Serialize;

use super::{Cameras, Gap, QueryError, bad, check_range, gaps};
use crate::index::{EventScope, Index};

/// The most columns a strip has (a 4K screen's width).
pub const MAX_COLUMNS: usize = 4096;
/// The longest range a strip covers.
pub const MAX_STRIP_US: i64 = 31 * 86_400_000_000;
/// The most events a strip lists (a 7-day lane of a busy camera has more; the
/// heat strip still shows their motion).
pub const MAX_STRIP_EVENTS: usize = 5000;

/// `n` equal columns over `[t0, t1)` (µs). Integer arithmetic (i128), so the server and
/// a client that rounds the same way agree to the microsecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Columns {
    pub t0: i64,
    pub t1: i64,
    pub n: usize,
}

impl Columns {
    /// Errors: an empty or reversed range, or `n` outside `1..=MAX_COLUMNS`.
    pub fn new(t0: i64, t1: i64, n: usize) -> Result<Columns, QueryError> {
        check_range(t0, t1)?;
        if t1 - t0 > MAX_STRIP_US {
            return Err(bad("a timeline strip covers at most 31 days"));
        }
        if n == 0 || n > MAX_COLUMNS {
            return Err(bad(format!("columns must be 1..={MAX_COLUMNS}, not {n}")));
        }
        if ((t1 - t0) as u64) < n as u64 {
            return Err(bad("a column must be at least a microsecond wide"));
        }
        Ok(Columns { t0, t1, n })
    }

    /// The start of column `i` (`i == n` gives `t1`): `t0 + ⌈i·(t1−t0)/n⌉`, the first
    /// instant that [`Columns::of`] puts in column `i`.
    pub fn start(&self, i: usize) -> i64 {
        let d = (self.t1 - self.t0) as i128;
        let n = self.n as i128;
        self.t0 + ((d * i as i128 + n - 1) / n) as i64
    }

    /// The column holding instant `t`, None outside the range.
    pub fn of(&self, t: i64) -> Option<usize> {
        (t >= self.t0 && t < self.t1).then(|| {
            ((t - self.t0) as i128 * self.n as i128 / (self.t1 - self.t0) as i128) as usize
        })
    }

    /// Adds the overlap of `[a, b)` with each column to `acc` (µs per column) and raises
    /// `peak` to `value` in each column it touches.
    pub fn spread(&self, a: i64, b: i64, value: u16, acc: &mut [i64], peak: &mut [u16]) {
        let (a, b) = (a.max(self.t0), b.min(self.t1));
        if a >= b {
            return;
        }
        let first = self.of(a).unwrap_or(0);
        let mut i = first;
        while i < self.n {
            let (c0, c1) = (self.start(i), self.start(i + 1));
            if c0 >= b {
                break;
            }
            acc[i] += b.min(c1) - a.max(c0);
            peak[i] = peak[i].max(value);
            i += 1;
        }
    }
}

/// An event on a lane.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StripEvent {
    pub id: u64,
    /// UTC µs of its first motion and just after its last.
    pub start_us: i64,
    pub end_us: i64,
    /// Indices into [`Strip::zones`] (empty: motion outside every zone).
    pub zones: Vec<usize>,
    pub peak_score: f32,
}

/// A hold or a bookmark on a lane.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mark {
    pub id: u64,
    pub start_us: i64,
    /// Equal to `start_us` for a bookmark of an instant.
    pub end_us: i64,
    /// The hold's reason or the bookmark's note.
    pub text: String,
    pub user: String,
}

impl From<crate::index::Hold> for Mark {
    fn from(h: crate::index::Hold) -> Mark {
        Mark {
            id: h.id,
            start_us: h.start_us,
            end_us: h.end_us,
            text: h.reason,
            user: h.user,
        }
    }
}

impl From<crate::index::Bookmark> for Mark {
    fn from(b: crate::index::Bookmark) -> Mark {
        Mark {
            id: b.id,
            start_us: b.start_us,
            end_us: b.end_us,
            text: b.note,
            user: b.user,
        }
    }
}

/// One camera's lane over a range, per column.
#[derive(Debug, Serialize)]
pub struct Strip {
    pub camera: String,
    pub start_us: i64,
    pub end_us: i64,
    pub columns: usize,
    /// Per column: the share of its time with motion, 0..=255 (255: motion throughout;
    /// any motion at all is at least 1).
    pub motion: Vec<u8>,
    /// Per column: the peak motion score (share of the picture that changed), in
    /// thousandths (0..=1000).
    pub peak: Vec<u16>,
    /// Zone names the events' `zones` refer to.
    pub zones: Vec<String>,
    /// Events overlapping the range, oldest first (at most [`MAX_STRIP_EVENTS`]).
    pub events: Vec<StripEvent>,
    /// Events overlapping the range in all.
    pub events_total: usize,
    /// Recording gaps up to `now_us`.
    pub gaps: Vec<Gap>,
    pub holds: Vec<Mark>,
    pub bookmarks: Vec<Mark>,
    /// The daemon's clock (UTC µs) when it answered: the lane's "now".
    pub now_us: i64,
}

/// The lane of `camera` over `cols`. Errors: an unknown camera (404), the index.
pub fn strip(index: &Index, camera: &str, cols: Columns, now_us: i64) -> Result<Strip, QueryError> {
    let cam = Cameras::load(index)?.id(camera)?;
    let (t0, t1) = (cols.t0, cols.t1);
    let (motion, peak) = heat(index, cam, cols)?;

    // Zones: the ones this camera's events name, in a stable order.
    let zone_ids = index.zone_ids(cam)?;
    let mut zone_of_event: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, (_, zid)) in zone_ids.iter().enumerate() {
        for e in index.scan_events(EventScope::Zone(*zid), t0, t1)? {
            zone_of_event.entry(e?.id).or_default().push(i);
        }
    }
    let mut events = Vec::new();
    let mut events_total = 0;
    for e in index.scan_events(EventScope::Camera(cam), t0, t1)? {
        let e = e?;
        events_total += 1;
        if events.len() < MAX_STRIP_EVENTS {
            events.push(StripEvent {
                id: e.id,
                start_us: e.start_us,
                end_us: e.end_us,
                zones: zone_of_event.remove(&e.id).unwrap_or_default(),
                peak_score: e.peak_score,
            });
        }
    }
    events.sort_unstable_by_key(|e| (e.start_us, e.id));

    let segs = index.segments_overlapping(cam, t0, t1)?;
    // An instant (end == start) counts at its start.
    let overlaps = |m: &Mark| m.start_us < t1 && m.end_us.max(m.start_us + 1) > t0;
    let holds = (index.holds()?.into_iter())
        .filter(|h| h.camera_id == cam)
        .map(Mark::from)
        .filter(overlaps)
        .collect();
    let bookmarks = (index.bookmarks()?.into_iter())
        .filter(|b| b.camera_id == cam)
        .map(Mark::from)
        .filter(overlaps)
        .collect();
    Ok(Strip {
        camera: camera.to_owned(),
        start_us: t0,
        end_us: t1,
        columns: cols.n,
        motion,
        peak,
        zones: zone_ids.into_iter().map(|(n, _)| n).collect(),
        events,
        events_total,
        gaps: gaps(&segs, t0, t1.min(now_us)),
        holds,
        bookmarks,
        now_us,
    })
}

/// Motion per column from the per-second motion history: (share 0..=255, peak ‰).
fn heat(index: &Index, cam: u32, cols: Columns) -> Result<(Vec<u8>, Vec<u16>), QueryError> {
    let mut acc = vec![0i64; cols.n];
    let mut peak = vec![0u16; cols.n];
    let minute0 = cols.t0.div_euclid(60_000_000) * 60_000_000;
    for m in index.motion_minutes(cam, minute0, cols.t1) {
        let (t, minute) = m?;
        for s in &minute.seconds {
            let a = t + s.second as i64 * 1_000_000;
            let permille = ((s.peak as u32 * 1000 + 32767) / 65535) as u16;
            cols.spread(a, a + 1_000_000, permille, &mut acc, &mut peak);
        }
    }
    let motion = (0..cols.n)
        .map(|i| {
            let width = (cols.start(i + 1) - cols.start(i)).max(1);
            match acc[i] {
                0 => 0,
                a => ((a as i128 * 255 / width as i128) as u8).max(1),
            }
        })
        .collect();
    Ok((motion, peak))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{EventRecord, MotionMinute, MotionSecond};

    const MIN: i64 = 60_000_000;

    #[test]
    fn columns_partition_the_range_exactly() {
        let c = Columns::new(1_000, 1_000 + 7 * 86_400_000_000, 1234).unwrap();
        assert_eq!(c.start(0), c.t0);
        assert_eq!(c.start(c.n), c.t1);
        for i in 0..c.n {
            let (a, b) = (c.start(i), c.start(i + 1));
            assert!(a < b);
            assert_eq!(c.of(a), Some(i));
            assert_eq!(c.of(b - 1), Some(i));
        }
        assert_eq!(c.of(c.t0 - 1), None);
        assert_eq!(c.of(c.t1), None);
    }

    #[test]
    fn columns_refuse_bad_shapes() {
        assert!(Columns::new(10, 10, 5).is_err());
        assert!(Columns::new(10, 20, 0).is_err());
        assert!(Columns::new(10, 20, MAX_COLUMNS + 1).is_err());
        assert!(Columns::new(0, MAX_STRIP_US + 1, 10).is_err());
    }

    #[test]
    fn spread_splits_a_second_over_narrow_columns() {
        // 4 s over 16 columns: a quarter of a second each.
        let c = Columns::new(0, 4_000_000, 16).unwrap();
        let (mut acc, mut peak) = (vec![0; 16], vec![0; 16]);
        c.spread(1_000_000, 2_000_000, 7, &mut acc, &mut peak);
        assert_eq!(&acc[4..8], &[250_000; 4]);
        assert_eq!(acc.iter().sum::<i64>(), 1_000_000);
        assert_eq!(peak.iter().filter(|&&p| p == 7).count(), 4);
        // Clipped at the range's edges.
        c.spread(-500_000, 500_000, 9, &mut acc, &mut peak);
        assert_eq!(&acc[0..2], &[250_000; 2]);
        c.spread(3_900_000, 9_000_000, 9, &mut acc, &mut peak);
        assert_eq!(acc[15], 100_000);
    }

    #[test]
    fn spread_over_wide_columns_adds_up_seconds() {
        // An hour over 6 columns of 10 minutes: a second lands in one.
        let c = Columns::new(0, 60 * MIN, 6).unwrap();
        let (mut acc, mut peak) = (vec![0; 6], vec![0; 6]);
        for s in 0..30 {
            c.spread(
                s * 1_000_000 + 12 * MIN,
                (s + 1) * 1_000_000 + 12 * MIN,
                3,
                &mut acc,
                &mut peak,
            );
        }
        assert_eq!(acc, vec![0, 30_000_000, 0, 0, 0, 0]);
        assert_eq!(peak, vec![0, 3, 0, 0, 0, 0]);
    }

    #[test]
    fn a_lane_has_heat_events_with_zones_gaps_and_marks() {
        let ix = Index::temporary().unwrap();
        let cam = ix.camera_id("yard").unwrap();
        let lawn = ix.zone_id(cam, "lawn").unwrap();
        let gate = ix.zone_id(cam, "gate").unwrap();
        // Motion in seconds 10..20 of minute 2, peak score 0.5.
        let minute = MotionMinute {
            cols: 2,
            rows: 1,
            zone_ids: vec![lawn],
            seconds: (10..20)
                .map(|s| MotionSecond {
                    second: s,
                    cells: vec![1],
                    peak: 32768,
                    zones: 1,
                })
                .collect(),
        };
        ix.put_motion_minute(cam, 2 * MIN, &minute).unwrap();
        let id = ix.new_event_id().unwrap();
        ix.put_events(&[(
            EventRecord {
                id,
                camera_id: cam,
                start_us: 2 * MIN + 10_000_000,
                end_us: 2 * MIN + 20_000_000,
                clip_start_us: 2 * MIN,
                clip_end_us: 3 * MIN,
                zones: vec!["gate".into()],
                zone_ids: vec![gate],
                peak_score: 0.5,
                bbox: [0.0; 4],
                has_thumbnail: false,
            },
            None,
        )])
        .unwrap();
        ix.add_hold(cam, MIN, 2 * MIN, "case 7", "ann", 0).unwrap();
        ix.add_hold(cam, 20 * MIN, 30 * MIN, "elsewhere", "ann", 0)
            .unwrap();
        ix.add_bookmark(crate::index::Bookmark {
            id: 0,
            camera_id: cam,
            start_us: 5 * MIN,
            end_us: 5 * MIN,
            note: "van".into(),
            user: "ann".into(),
            created_us: 0,
        })
        .unwrap();
        // 10 minutes over 10 columns, no segments: all a gap up to "now" (minute 8).
        let s = strip(&ix, "yard", Columns::new(0, 10 * MIN, 10).unwrap(), 8 * MIN).unwrap();
        assert_eq!(s.motion[2], (10 * 255 / 60) as u8);
        assert_eq!(s.peak[2], 500);
        assert_eq!(s.motion.iter().filter(|&&m| m > 0).count(), 1);
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events_total, 1);
        assert_eq!(
            s.events[0]
                .zones
                .iter()
                .map(|&z| s.zones[z].as_str())
                .collect::<Vec<_>>(),
            vec!["gate"]
        );
        assert_eq!(s.holds.len(), 1);
        assert_eq!(s.holds[0].text, "case 7");
        assert_eq!(s.bookmarks.len(), 1);
        assert_eq!(
            (s.bookmarks[0].start_us, s.bookmarks[0].end_us),
            (5 * MIN, 5 * MIN)
        );
        assert_eq!(s.gaps.len(), 1);
        assert_eq!((s.gaps[0].start_us, s.gaps[0].end_us), (0, 8 * MIN));
        assert!(matches!(
            strip(&ix, "nowhere", Columns::new(0, MIN, 1).unwrap(), 0),
            Err(QueryError::NotFound(_))
        ));
    }
}
