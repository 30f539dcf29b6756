//! What a timeline view draws for one camera (`GET /api/timeline`): its recorded
//! segments, the gaps between them, its events, and motion intensity in about 300 buckets
//! of whole minutes.

use serde::Serialize;

use super::{
    ActivityBucket, Cameras, EventQuery, EventView, MAX_LIMIT, QueryError, activity, check_range,
    gaps, search,
};
use crate::base::time::rfc3339;
use crate::index::Index;

/// A recorded segment's span on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Span {
    /// RFC 3339 UTC, and µs since the epoch.
    pub start: String,
    pub end: String,
    pub start_us: i64,
    pub end_us: i64,
}

/// One camera's timeline over a range.
#[derive(Debug, Serialize)]
pub struct Timeline {
    pub camera: String,
    /// The range (RFC 3339).
    pub start: String,
    pub end: String,
    pub segments: Vec<Span>,
    /// Gaps up to now (see [`super::Gap`]).
    pub gaps: Vec<super::Gap>,
    /// The range's events, oldest first (at most [`MAX_LIMIT`]).
    pub events: Vec<EventView>,
    /// Events in the range, over all pages.
    pub events_total: u64,
    /// The width of each motion bucket.
    pub bucket_seconds: i64,
    /// Seconds of motion per bucket (and per zone).
    pub motion: Vec<ActivityBucket>,
}

/// The timeline of `camera` over `[t0, t1)` (µs), with gaps up to `now_us`. Errors: a bad
/// range (400), an unknown camera (404), the index.
pub fn timeline(
    index: &Index,
    camera: &str,
    t0: i64,
    t1: i64,
    now_us: i64,
) -> Result<Timeline, QueryError> {
    check_range(t0, t1)?;
    let id = Cameras::load(index)?.id(camera)?;
    let segs = index.segments_overlapping(id, t0, t1)?;
    let bucket = ((t1 - t0) / 300).div_euclid(60_000_000).max(1) * 60_000_000;
    let motion = activity(index, camera, t0, t1, bucket)?;
    let page = search(
        index,
        &EventQuery {
            start_us: t0,
            end_us: t1,
            cameras: vec![camera.to_owned()],
            limit: MAX_LIMIT,
            ..Default::default()
        },
    )?;
    Ok(Timeline {
        camera: camera.to_owned(),
        start: rfc3339(t0),
        end: rfc3339(t1),
        segments: (segs.iter())
            .map(|s| Span {
                start: rfc3339(s.start_us),
                end: rfc3339(s.end_us),
                start_us: s.start_us,
                end_us: s.end_us,
            })
            .collect(),
        gaps: gaps(&segs, t0, t1.min(now_us)),
        events: page.events,
        events_total: page.total,
        bucket_seconds: bucket / 1_000_000,
        motion,
    })
}
