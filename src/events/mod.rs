//! The event timeline: what the live detector leaves behind (events with thumbnails, the
//! per-second motion history) and the queries investigators run on it. One library API
//! behind the CLI (`vigil events`) and HTTP (`/api/events`, `/api/timeline`,
//! `/api/search/region`).
//!
//! - [`Recorder`]: per camera, in the analysis thread; writes events and motion history.
//! - [`search`]: events by time range, cameras and zones (any of), minimum score and
//!   duration, in either order, with a total count and cursor pagination.
//! - [`activity`]: seconds of motion per zone per bucket (a scrub bar's histogram).
//! - [`region_search`]: when anything moved inside a polygon drawn after the fact,
//!   answered from the motion history alone, without decoding video.
//! - [`recordings`]: one camera's segments in a range and the gaps between them, with
//!   why recording stopped before each; [`timeline`]: what a timeline view draws (the
//!   segments, gaps, events and motion intensity of one camera).
//!
//! Every read fails with one error type, [`QueryError`] (clips and exports too).

mod recorder;
mod recordings;
mod region;
mod strip;
mod timeline;

pub use recorder::Recorder;
pub use recordings::{GAP_TOLERANCE_US, Gap, Recordings, SegmentView, gaps, recordings};
pub use region::{Interval, region_search};
pub use strip::{Columns, Mark, Strip, StripEvent, strip};
pub use timeline::{Timeline, timeline};

pub use crate::media::MotionEvent;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::base::time::rfc3339;
use crate::index::{EventEntry, EventRecord, EventScope, Index, IndexError};

/// Largest page a query may ask for.
pub const MAX_LIMIT: usize = 1000;
/// Longest range a query may cover.
pub const MAX_RANGE_US: i64 = 366 * 86_400_000_000;

/// What a read of the recorded library (a query, a timeline, a clip or an export) can fail
/// with; one type for the HTTP API (status codes below) and the CLI.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request is malformed (HTTP 400).
    #[error("{0}")]
    Bad(String),
    /// It names something that does not exist, or is no longer recorded (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The index could not be read (HTTP 503 while it reopens, else 500).
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A segment file could not be read (HTTP 500; the path is logged, not shown).
    #[error("reading {path}: {err}")]
    Io {
        path: std::path::PathBuf,
        err: std::io::Error,
    },
}

fn bad(msg: impl Into<String>) -> QueryError {
    QueryError::Bad(msg.into())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    Desc,
}

impl std::str::FromStr for Order {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, QueryError> {
        match s {
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            _ => Err(bad(format!("order must be asc or desc, not {s:?}"))),
        }
    }
}

/// An event search.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Events overlapping `[start_us, end_us)`.
    pub start_us: i64,
    pub end_us: i64,
    /// Any of these cameras (all if empty).
    pub cameras: Vec<String>,
    /// Any of these zones (all if empty), on the selected cameras.
    pub zones: Vec<String>,
    pub min_score: Option<f32>,
    pub min_duration_us: Option<i64>,
    /// Only events whose alert was (true) or was not (false) acknowledged.
    pub acknowledged: Option<bool>,
    pub order: Order,
    pub limit: usize,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// An event as queries return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub id: u64,
    pub camera: String,
    /// UTC, RFC 3339.
    pub start: String,
    pub end: String,
    /// UTC, milliseconds since the Unix epoch.
    pub start_ms: i64,
    pub end_ms: i64,
    pub zones: Vec<String>,
    pub peak_score: f32,
    /// x0, y0, x1, y1 normalised to 0..1.
    pub bbox: [f32; 4],
    pub clip_start: String,
    pub clip_end: String,
    pub has_thumbnail: bool,
    /// Whether the event's video is still on disk: `available`, `partial` (retention
    /// deleted its beginning) or `deleted`.
    pub video: String,
    /// The operator's acknowledgement, if any.
    #[serde(default)]
    pub acknowledged: Option<AckView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AckView {
    pub by: String,
    pub at: String,
    pub note: String,
}

impl From<crate::index::Ack> for AckView {
    fn from(a: crate::index::Ack) -> Self {
        AckView {
            by: a.user,
            at: rfc3339(a.time_us),
            note: a.note,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// Events matching the query, over all pages.
    pub total: u64,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Camera names and ids known to the index (configured now or in the past, so that old
/// evidence stays searchable).
pub struct Cameras {
    by_name: HashMap<String, u32>,
    by_id: HashMap<u32, String>,
}

impl Cameras {
    pub fn load(index: &Index) -> Result<Cameras, QueryError> {
        let all = index.cameras()?;
        Ok(Cameras {
            by_name: all.iter().cloned().collect(),
            by_id: all.into_iter().map(|(n, i)| (i, n)).collect(),
        })
    }

    pub fn id(&self, name: &str) -> Result<u32, QueryError> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| QueryError::NotFound(format!("unknown camera {name:?}")))
    }

    pub fn name(&self, id: u32) -> String {
        self.by_id
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}"))
    }

    fn ids(&self, names: &[String]) -> Result<Vec<u32>, QueryError> {
        if names.is_empty() {
            let mut all: Vec<u32> = self.by_id.keys().copied().collect();
            all.sort_unstable();
            return Ok(all);
        }
        names.iter().map(|n| self.id(n)).collect()
    }
}

/// Checks a time range: ordered and at most [`MAX_RANGE_US`].
pub fn check_range(start_us: i64, end_us: i64) -> Result<(), QueryError> {
    if end_us <= start_us {
        return Err(bad("end must be after start"));
    }
    if end_us - start_us > MAX_RANGE_US {
        return Err(bad("range is longer than 366 days"));
    }
    Ok(())
}

/// The index scopes a query reads: its zones, else its cameras, else everything.
fn scopes(index: &Index, cams: &Cameras, q: &EventQuery) -> Result<Vec<EventScope>, QueryError> {
    if q.zones.is_empty() {
        if q.cameras.is_empty() {
            return Ok(vec![EventScope::All]);
        }
        return Ok(cams
            .ids(&q.cameras)?
            .into_iter()
            .map(EventScope::Camera)
            .collect());
    }
    let mut out = Vec::new();
    let camera_ids = cams.ids(&q.cameras)?;
    for z in &q.zones {
        let before = out.len();
        for &c in &camera_ids {
            for (name, id) in index.zone_ids(c)? {
                if &name == z {
                    out.push(EventScope::Zone(id));
                }
            }
        }
        if out.len() == before {
            return Err(QueryError::NotFound(format!(
                "unknown zone {z:?}{}",
                if q.cameras.is_empty() {
                    String::new()
                } else {
                    format!(" on camera {}", q.cameras.join(", "))
                }
            )));
        }
    }
    Ok(out)
}

fn cursor_of(e: &EventEntry) -> String {
    format!("{}.{}", e.start_us, e.id)
}

fn parse_cursor(s: &str) -> Result<(i64, u64), QueryError> {
    let err = || bad(format!("malformed cursor {s:?}"));
    let (a, b) = s.split_once('.').ok_or_else(err)?;
    Ok((a.parse().map_err(|_| err())?, b.parse().map_err(|_| err())?))
}

/// The entries matching `q`, deduplicated and sorted in its order.
fn matching(index: &Index, cams: &Cameras, q: &EventQuery) -> Result<Vec<EventEntry>, QueryError> {
    check_range(q.start_us, q.end_us)?;
    check_filters(q)?;
    let keep = |e: &EventEntry| {
        q.min_score.is_none_or(|m| e.peak_score >= m)
            && q.min_duration_us.is_none_or(|m| e.end_us - e.start_us >= m)
    };
    let scopes = scopes(index, cams, q)?;
    let mut out: Vec<EventEntry> = Vec::new();
    for s in &scopes {
        for e in index.scan_events(*s, q.start_us, q.end_us)? {
            let e = e?;
            if !keep(&e) {
                continue;
            }
            if let Some(a) = q.acknowledged
                && index.ack(e.id)?.is_some() != a
            {
                continue;
            }
            out.push(e);
        }
    }
    if scopes.len() > 1 {
        out.sort_unstable_by_key(|e| (e.start_us, e.id));
        out.dedup_by_key(|e| e.id);
    }
    if q.order == Order::Desc {
        out.reverse();
    }
    Ok(out)
}

/// The score and duration filters must be numbers, 0 or more (the same rule for the API
/// and the CLI, whichever reads the index).
fn check_filters(q: &EventQuery) -> Result<(), QueryError> {
    if let Some(s) = q.min_score
        && !(s.is_finite() && s >= 0.0)
    {
        return Err(bad(format!(
            "min_score must be a number, 0 or more, not {s}"
        )));
    }
    if let Some(d) = q.min_duration_us
        && d < 0
    {
        return Err(bad(format!(
            "min_duration must be a number of seconds, 0 or more, not {}",
            d as f64 / 1e6
        )));
    }
    Ok(())
}

/// Runs an event search: one page and the total.
pub fn search(index: &Index, q: &EventQuery) -> Result<EventPage, QueryError> {
    if q.limit == 0 || q.limit > MAX_LIMIT {
        return Err(bad(format!(
            "limit must be 1..={MAX_LIMIT}, not {}",
            q.limit
        )));
    }
    let cursor = q.cursor.as_deref().map(parse_cursor).transpose()?;
    let cams = Cameras::load(index)?;
    let all = matching(index, &cams, q)?;
    let after = match cursor {
        None => 0,
        Some(c) => all
            .iter()
            .position(|e| match q.order {
                Order::Asc => (e.start_us, e.id) > c,
                Order::Desc => (e.start_us, e.id) < c,
            })
            .unwrap_or(all.len()),
    };
    let page = &all[after..(after + q.limit).min(all.len())];
    let mut oldest = HashMap::new();
    let mut events = Vec::with_capacity(page.len());
    for e in page {
        match index.event(e.id)? {
            Some(r) => events.push(view(index, &cams, &r, &mut oldest)?),
            // Only if sled lost a record but kept its entry; never seen.
            None => tracing::warn!("event {} is indexed but its record is missing", e.id),
        }
    }
    Ok(EventPage {
        total: all.len() as u64,
        next_cursor: (after + q.limit < all.len()).then(|| cursor_of(page.last().unwrap())),
        events,
    })
}

/// One event by id.
pub fn get(index: &Index, id: u64) -> Result<EventView, QueryError> {
    let r = index
        .event(id)?
        .ok_or_else(|| QueryError::NotFound(format!("no event {id}")))?;
    view(index, &Cameras::load(index)?, &r, &mut HashMap::new())
}

/// Whether an event's video survives: retention deletes oldest first, so comparing with
/// the camera's oldest segment tells.
fn video_state(
    index: &Index,
    r: &EventRecord,
    oldest: &mut HashMap<u32, Option<i64>>,
) -> Result<&'static str, QueryError> {
    let first = match oldest.get(&r.camera_id) {
        Some(v) => *v,
        None => {
            let v = index.oldest_segment(r.camera_id)?.map(|s| s.start_us);
            oldest.insert(r.camera_id, v);
            v
        }
    };
    Ok(match first {
        Some(t) if t <= r.start_us => "available",
        Some(t) if t < r.end_us => "partial",
        _ => "deleted",
    })
}

fn view(
    index: &Index,
    cams: &Cameras,
    r: &EventRecord,
    oldest: &mut HashMap<u32, Option<i64>>,
) -> Result<EventView, QueryError> {
    Ok(EventView {
        id: r.id,
        camera: cams.name(r.camera_id),
        start: rfc3339(r.start_us),
        end: rfc3339(r.end_us),
        start_ms: r.start_us.div_euclid(1000),
        end_ms: r.end_us.div_euclid(1000),
        zones: r.zones.clone(),
        peak_score: r.peak_score,
        bbox: r.bbox,
        clip_start: rfc3339(r.clip_start_us),
        clip_end: rfc3339(r.clip_end_us),
        has_thumbnail: r.has_thumbnail,
        video: video_state(index, r, oldest)?.to_string(),
        acknowledged: index.ack(r.id)?.map(AckView::from),
    })
}

/// Event counts per zone (and per camera, under `""`) for the query's range and filters.
pub fn count_by_zone(
    index: &Index,
    q: &EventQuery,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>, QueryError> {
    check_range(q.start_us, q.end_us)?;
    check_filters(q)?;
    let cams = Cameras::load(index)?;
    let mut out = BTreeMap::new();
    for c in cams.ids(&q.cameras)? {
        let mut per: BTreeMap<String, u64> = BTreeMap::new();
        let zones = index.zone_ids(c)?;
        let n = |scope| -> Result<u64, QueryError> {
            if q.min_score.is_none() && q.min_duration_us.is_none() {
                return Ok(index.count_events(scope, q.start_us, q.end_us)?);
            }
            let mut n = 0;
            for e in index.scan_events(scope, q.start_us, q.end_us)? {
                let e = e?;
                if q.min_score.is_none_or(|m| e.peak_score >= m)
                    && q.min_duration_us.is_none_or(|m| e.end_us - e.start_us >= m)
                {
                    n += 1;
                }
            }
            Ok(n)
        };
        per.insert(String::new(), n(EventScope::Camera(c))?);
        for (name, id) in zones {
            if q.zones.is_empty() || q.zones.contains(&name) {
                per.insert(name, n(EventScope::Zone(id))?);
            }
        }
        out.insert(cams.name(c), per);
    }
    Ok(out)
}

/// One bucket of an activity histogram.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivityBucket {
    pub start: String,
    pub start_us: i64,
    /// Seconds with motion anywhere on the camera.
    pub motion_seconds: u32,
    /// Seconds with motion per zone (zones without motion left out).
    pub zones: BTreeMap<String, u32>,
    /// Peak score in the bucket.
    pub peak_score: f32,
}

/// Seconds of motion per bucket (and per zone) for one camera, from the motion history:
/// the data behind a scrub bar. `bucket_us` must be a multiple of a minute.
pub fn activity(
    index: &Index,
    camera: &str,
    start_us: i64,
    end_us: i64,
    bucket_us: i64,
) -> Result<Vec<ActivityBucket>, QueryError> {
    check_range(start_us, end_us)?;
    if bucket_us < 60_000_000 || bucket_us % 60_000_000 != 0 {
        return Err(bad("bucket must be a whole number of minutes"));
    }
    if (end_us - start_us) / bucket_us > 10_000 {
        return Err(bad("more than 10000 buckets: use a larger bucket"));
    }
    let cams = Cameras::load(index)?;
    let cam = cams.id(camera)?;
    let names: HashMap<u32, String> = index
        .zone_ids(cam)?
        .into_iter()
        .map(|(n, i)| (i, n))
        .collect();
    let first = start_us.div_euclid(bucket_us) * bucket_us;
    let mut out: Vec<ActivityBucket> = (0..)
        .map(|i| first + i * bucket_us)
        .take_while(|&t| t < end_us)
        .map(|t| ActivityBucket {
            start: rfc3339(t),
            start_us: t,
            motion_seconds: 0,
            zones: BTreeMap::new(),
            peak_score: 0.0,
        })
        .collect();
    let minute0 = start_us.div_euclid(60_000_000) * 60_000_000;
    for m in index.motion_minutes(cam, minute0, end_us) {
        let (t, minute) = m?;
        for s in &minute.seconds {
            let st = t + s.second as i64 * 1_000_000;
            if st < start_us || st >= end_us {
                continue;
            }
            let b = &mut out[((st - first) / bucket_us) as usize];
            b.motion_seconds += 1;
            b.peak_score = b.peak_score.max(s.peak as f32 / 65535.0);
            for (i, z) in minute.zone_ids.iter().enumerate() {
                if s.zones & (1 << i) != 0 {
                    let name = names.get(z).cloned().unwrap_or_else(|| format!("#{z}"));
                    *b.zones.entry(name).or_default() += 1;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Op, SegmentRecord};

    fn seg(cam: u32, start: i64, end: i64) -> SegmentRecord {
        SegmentRecord::for_test(cam, format!("f{start}"), start, end)
    }

    fn ev(ix: &Index, cam: u32, start: i64, end: i64, zones: &[&str], score: f32) -> u64 {
        let id = ix.new_event_id().unwrap();
        let zone_ids = zones.iter().map(|z| ix.zone_id(cam, z).unwrap()).collect();
        ix.put_events(&[(
            EventRecord {
                id,
                camera_id: cam,
                start_us: start,
                end_us: end,
                clip_start_us: start,
                clip_end_us: end,
                zones: zones.iter().map(|z| z.to_string()).collect(),
                zone_ids,
                peak_score: score,
                bbox: [0.0; 4],
                has_thumbnail: false,
            },
            None,
        )])
        .unwrap();
        id
    }

    fn q(start_us: i64, end_us: i64) -> EventQuery {
        EventQuery {
            start_us,
            end_us,
            limit: 10,
            ..Default::default()
        }
    }

    /// Retention deletes oldest first: an event before the camera's oldest segment has
    /// lost its video, one straddling it part of it.
    #[test]
    fn events_say_when_retention_deleted_their_video() {
        let ix = Index::temporary().unwrap();
        let cam = ix.camera_id("c").unwrap();
        let other = ix.camera_id("d").unwrap();
        ix.commit(&[
            Op::PutSegment(seg(cam, 100, 200)),
            Op::PutSegment(seg(cam, 200, 300)),
        ])
        .unwrap();
        let gone = ev(&ix, cam, 10, 50, &[], 0.1);
        let partial = ev(&ix, cam, 80, 120, &[], 0.1);
        let kept = ev(&ix, cam, 150, 250, &[], 0.1);
        let never = ev(&ix, other, 150, 250, &[], 0.1);
        let video = |id| get(&ix, id).unwrap().video;
        assert_eq!(video(gone), "deleted");
        assert_eq!(video(partial), "partial");
        assert_eq!(video(kept), "available");
        assert_eq!(video(never), "deleted");
        assert!(matches!(get(&ix, 12345), Err(QueryError::NotFound(_))));
    }

    /// Score and duration filters are refused unless numbers, 0 or more, by the library
    /// itself (so the CLI reading the index answers as the API does).
    #[test]
    fn bad_filters_are_refused_by_the_library() {
        let ix = Index::temporary().unwrap();
        ix.camera_id("c").unwrap();
        let q = |min_score, min_duration_us| EventQuery {
            start_us: 0,
            end_us: 1_000_000,
            min_score,
            min_duration_us,
            limit: 10,
            ..Default::default()
        };
        for bad in [
            q(Some(f32::NAN), None),
            q(Some(-1.0), None),
            q(None, Some(-5)),
        ] {
            assert!(matches!(search(&ix, &bad), Err(QueryError::Bad(_))));
            assert!(matches!(count_by_zone(&ix, &bad), Err(QueryError::Bad(_))));
        }
        assert!(search(&ix, &q(Some(0.5), Some(0))).is_ok());
    }

    #[test]
    fn zones_of_many_cameras_merge_without_duplicates() {
        let ix = Index::temporary().unwrap();
        let (a, b) = (ix.camera_id("a").unwrap(), ix.camera_id("b").unwrap());
        let e1 = ev(&ix, a, 100, 200, &["door", "yard"], 0.2);
        let e2 = ev(&ix, b, 150, 160, &["door"], 0.05);
        let e3 = ev(&ix, a, 300, 400, &["yard"], 0.3);
        let ids = |q: &EventQuery| -> Vec<u64> {
            search(&ix, q)
                .unwrap()
                .events
                .iter()
                .map(|e| e.id)
                .collect()
        };
        // "door" exists on both cameras; e1 is in two of the asked zones but listed once.
        let mut zq = q(0, 1000);
        zq.zones = vec!["door".into(), "yard".into()];
        assert_eq!(ids(&zq), vec![e1, e2, e3]);
        zq.cameras = vec!["b".into()];
        zq.zones = vec!["door".into()];
        assert_eq!(ids(&zq), vec![e2]);
        zq.zones = vec!["yard".into()];
        assert!(matches!(search(&ix, &zq), Err(QueryError::NotFound(m)) if m.contains("yard")));
        let mut sq = q(0, 1000);
        sq.min_score = Some(0.1);
        sq.min_duration_us = Some(50);
        assert_eq!(ids(&sq), vec![e1, e3]);
        // Pages of one, newest first, and the total on each.
        let mut pq = q(0, 1000);
        pq.order = Order::Desc;
        pq.limit = 1;
        let mut seen = Vec::new();
        loop {
            let p = search(&ix, &pq).unwrap();
            assert_eq!(p.total, 3);
            seen.extend(p.events.iter().map(|e| e.id));
            match p.next_cursor {
                Some(c) => pq.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, vec![e3, e2, e1]);
        let counts = count_by_zone(&ix, &q(0, 1000)).unwrap();
        assert_eq!(counts["a"][""], 2);
        assert_eq!(counts["a"]["yard"], 2);
        assert_eq!(counts["b"]["door"], 1);
        for bad_q in [q(10, 10), q(0, MAX_RANGE_US + 1)] {
            assert!(matches!(search(&ix, &bad_q), Err(QueryError::Bad(_))));
        }
    }
}
