//! What is recorded: one camera's segments in a time range, and the gaps between them
//! with why recording stopped before each (`GET /api/recordings`, `vigil recordings`).

use serde::{Deserialize, Serialize};

use super::{Cameras, QueryError, check_range};
use crate::base::time::rfc3339;
use crate::index::{EndReason, Index, SegmentRecord};

/// A segment as the API and the CLI show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentView {
    /// RFC 3339 UTC of the first frame and just after the last.
    pub start: String,
    pub end: String,
    /// The same, µs since the epoch.
    pub start_us: i64,
    pub end_us: i64,
    /// Media duration, milliseconds.
    pub duration_ms: f64,
    pub frames: u32,
    pub bytes: u64,
    pub keyframes: usize,
    /// RFC 6381 codec string (`avc1.640028`).
    pub codec: String,
    pub width: u16,
    pub height: u16,
    /// Its file, relative to the storage directory.
    pub file: String,
    /// Still being written.
    pub open: bool,
    /// Why it ended (`rotation`, `disconnect`, `timestamp-jump`, ...; see `index::EndReason`).
    pub end_reason: String,
    /// Hex SHA-256 of the file taken when it closed (or at recovery, `end_reason`
    /// `recovered`); absent while open and for segments recorded before hashes were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl SegmentView {
    fn of(s: &SegmentRecord) -> SegmentView {
        SegmentView {
            start: rfc3339(s.start_us),
            end: rfc3339(s.end_us),
            start_us: s.start_us,
            end_us: s.end_us,
            duration_ms: s.duration_90k as f64 / 90.0,
            frames: s.frames,
            bytes: s.bytes,
            keyframes: s.keyframes.len(),
            codec: s.codec.clone(),
            width: s.width,
            height: s.height,
            file: s.file.clone(),
            open: s.is_open(),
            end_reason: s.end_reason.as_str().to_owned(),
            sha256: s.sha256.map(hex::encode),
        }
    }
}

/// An interval of a range without recording. Shown with its times also as RFC 3339
/// (`start`, `end`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Gap {
    /// µs since the epoch.
    pub start_us: i64,
    pub end_us: i64,
    /// Why recording stopped before the gap: the end reason of the segment before it,
    /// "interrupted" if that one was rotated (the segment after it was lost: a crash
    /// before it held a playable fragment, or it could not be created), or
    /// "no-recording" if nothing precedes it in the range.
    pub reason: String,
}

impl Serialize for Gap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut g = s.serialize_struct("Gap", 5)?;
        g.serialize_field("start", &rfc3339(self.start_us))?;
        g.serialize_field("end", &rfc3339(self.end_us))?;
        g.serialize_field("start_us", &self.start_us)?;
        g.serialize_field("end_us", &self.end_us)?;
        g.serialize_field("reason", &self.reason)?;
        g.end()
    }
}

/// Gaps longer than this between consecutive segments are reported.
pub const GAP_TOLERANCE_US: i64 = 500_000;

/// The uncovered intervals of `[t0, t1)` given one camera's segments in time order.
pub fn gaps(segs: &[SegmentRecord], t0: i64, t1: i64) -> Vec<Gap> {
    let gap = |start_us: i64, end_us: i64, reason: &str| Gap {
        start_us,
        end_us,
        reason: reason.to_owned(),
    };
    let mut out = Vec::new();
    let mut cursor = t0;
    let mut reason = "no-recording";
    for s in segs {
        if s.start_us - cursor > GAP_TOLERANCE_US {
            out.push(gap(cursor, s.start_us.min(t1), reason));
        }
        cursor = cursor.max(s.end_us);
        reason = match s.end_reason {
            // The writer opens the next segment at once after these: a gap after one
            // means that segment was lost (a crash before it held a playable fragment,
            // or it could not be created).
            EndReason::Rotation | EndReason::ParamsChange => "interrupted",
            r => r.as_str(),
        };
    }
    // After the last segment: a gap only if it is closed (an open one is the live edge).
    if segs.last().is_none_or(|s| !s.is_open()) && t1 - cursor > GAP_TOLERANCE_US {
        out.push(gap(cursor, t1, reason));
    }
    out
}

/// One camera's recordings in a range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recordings {
    pub camera: String,
    /// The range asked for (RFC 3339).
    pub start: String,
    pub end: String,
    /// Segments overlapping it, in time order.
    pub segments: Vec<SegmentView>,
    /// The gaps in it, up to `now` (the future is not a gap).
    pub gaps: Vec<Gap>,
}

/// The segments of `camera` overlapping `[t0, t1)` (µs) and the gaps up to `now_us`.
/// Errors: a bad range (400), an unknown camera (404), the index.
pub fn recordings(
    index: &Index,
    camera: &str,
    t0: i64,
    t1: i64,
    now_us: i64,
) -> Result<Recordings, QueryError> {
    check_range(t0, t1)?;
    let id = Cameras::load(index)?.id(camera)?;
    let segs = index.segments_overlapping(id, t0, t1)?;
    Ok(Recordings {
        camera: camera.to_owned(),
        start: rfc3339(t0),
        end: rfc3339(t1),
        gaps: gaps(&segs, t0, t1.min(now_us)),
        segments: segs.iter().map(SegmentView::of).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: i64, end: i64, reason: EndReason) -> SegmentRecord {
        SegmentRecord {
            end_reason: reason,
            ..SegmentRecord::for_test(1, "", start, end)
        }
    }

    #[test]
    fn gaps_between_runs() {
        let s = 1_000_000;
        let segs = vec![
            seg(0, 10 * s, EndReason::Rotation),
            seg(10 * s, 20 * s, EndReason::Disconnect),
            seg(25 * s, 30 * s, EndReason::Open),
        ];
        let g = gaps(&segs, 0, 40 * s);
        assert_eq!(
            g,
            vec![Gap {
                start_us: 20 * s,
                end_us: 25 * s,
                reason: "disconnect".into()
            }]
        );
        // A rotated segment followed by a gap: the next one was lost.
        let lost = vec![
            seg(0, 10 * s, EndReason::Rotation),
            seg(18 * s, 20 * s, EndReason::Shutdown),
        ];
        assert_eq!(gaps(&lost, 0, 20 * s)[0].reason, "interrupted");
        let g = gaps(&segs[..2], -5 * s, 22 * s);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].reason, "no-recording");
        assert_eq!(g[1].start_us, 20 * s);
    }
}
