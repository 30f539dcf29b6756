//! The event and motion-history trees of the index (layout in ARCHITECTURE.md, "Index").
//!
//! An event is written once, when it closes: its record and thumbnail, then an index
//! entry in each of its scopes: global time, its camera, each of its zones. Entries are
//! packed into time buckets, one sled value per scope and bucket (see [`bucket_us`]): an
//! event costs a read-modify-write of a few small values instead of a tree insert per
//! entry, and a scan reads a few values per hour. Appending to a bucket is idempotent
//! (entries are kept sorted and unique by id), so re-adding after a crash is harmless.
//!
//! Entries carry what filters need (end, peak score, camera), so counting and filtering
//! never read the records; only the page returned does. A query for events overlapping
//! `[t0, t1)` reads the buckets of starts in `[t0 - longest, t1)`, where `longest` is the
//! longest event ever stored (kept in `meta`), and drops those that ended before `t0`.

use serde::{Deserialize, Serialize};

use super::{Index, Result, Trees};

const META_NEXT_ZONE: &[u8] = b"next_zone_id";
const META_LONGEST_EVENT: &[u8] = b"longest_event_us";
/// Newest events whose entries start-up writes again (the crash window is far smaller).
const REINDEX_NEWEST: usize = 256;
const ENTRY_LEN: usize = 32;

/// Time as 8 key bytes: big-endian with the sign bit flipped, so byte order is time order.
pub fn ts(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn unts(b: &[u8]) -> i64 {
    (u64::from_be_bytes(b[..8].try_into().unwrap()) ^ (1 << 63)) as i64
}

/// A motion event as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: u64,
    pub camera_id: u32,
    /// UTC µs of the first motion frame and just after the last.
    pub start_us: i64,
    pub end_us: i64,
    /// The clip window: pre-roll before `start_us`, post-roll after `end_us`.
    pub clip_start_us: i64,
    pub clip_end_us: i64,
    /// Zones with motion: names as configured then, and their ids.
    pub zones: Vec<String>,
    pub zone_ids: Vec<u32>,
    pub peak_score: f32,
    /// x0, y0, x1, y1 normalised to 0..1.
    pub bbox: [f32; 4],
    pub has_thumbnail: bool,
}

/// An operator's acknowledgement of an event's alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub user: String,
    pub time_us: i64,
    pub note: String,
}

/// An index entry: enough to filter and count without reading the record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventEntry {
    pub id: u64,
    pub start_us: i64,
    pub end_us: i64,
    pub peak_score: f32,
    pub camera_id: u32,
}

impl EventEntry {
    fn of(r: &EventRecord) -> EventEntry {
        EventEntry {
            id: r.id,
            start_us: r.start_us,
            end_us: r.end_us,
            peak_score: r.peak_score,
            camera_id: r.camera_id,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.start_us.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.end_us.to_be_bytes());
        out.extend_from_slice(&self.peak_score.to_be_bytes());
        out.extend_from_slice(&self.camera_id.to_be_bytes());
    }

    fn decode(b: &[u8]) -> EventEntry {
        let i64_at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().unwrap());
        EventEntry {
            start_us: i64_at(0),
            id: u64::from_be_bytes(b[8..16].try_into().unwrap()),
            end_us: i64_at(16),
            peak_score: f32::from_be_bytes(b[24..28].try_into().unwrap()),
            camera_id: u32::from_be_bytes(b[28..32].try_into().unwrap()),
        }
    }

    fn order(&self) -> (i64, u64) {
        (self.start_us, self.id)
    }
}

/// The entries of one bucket (a whole number of 32-byte entries; a damaged tail is
/// ignored rather than failing every query that touches it).
fn entries(v: &[u8]) -> impl DoubleEndedIterator<Item = EventEntry> + '_ {
    v.chunks_exact(ENTRY_LEN).map(EventEntry::decode)
}

/// A bucket with `add` merged in: sorted by (start, id), one entry per id.
fn merged(old: Option<&[u8]>, add: &[EventEntry]) -> Vec<u8> {
    let mut all: Vec<EventEntry> = old.map(|v| entries(v).collect()).unwrap_or_default();
    all.extend_from_slice(add);
    all.sort_by_key(|e| e.order());
    all.dedup_by_key(|e| e.id);
    let mut out = Vec::with_capacity(all.len() * ENTRY_LEN);
    for e in &all {
        e.encode(&mut out);
    }
    out
}

/// Which time-ordered event index to scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventScope {
    All,
    Camera(u32),
    Zone(u32),
}

/// Bucket length of a scope: sized so that even a busy site's buckets stay a few KB (the
/// global index sees every camera's events, a zone only its own).
pub fn bucket_us(scope: EventScope) -> i64 {
    match scope {
        EventScope::All => 60_000_000,
        EventScope::Camera(_) => 600_000_000,
        EventScope::Zone(_) => 3_600_000_000,
    }
}

impl EventScope {
    fn prefix(self) -> Vec<u8> {
        match self {
            EventScope::All => Vec::new(),
            EventScope::Camera(c) => c.to_be_bytes().to_vec(),
            EventScope::Zone(z) => z.to_be_bytes().to_vec(),
        }
    }

    /// The key of the bucket holding starts at `t`.
    fn bucket_key(self, t: i64) -> Vec<u8> {
        let b = bucket_us(self);
        let mut k = self.prefix();
        k.extend_from_slice(&ts(t.div_euclid(b) * b));
        k
    }

    /// The scopes an event is indexed in.
    fn of(r: &EventRecord) -> impl Iterator<Item = EventScope> + '_ {
        [EventScope::All, EventScope::Camera(r.camera_id)]
            .into_iter()
            .chain(r.zone_ids.iter().map(|&z| EventScope::Zone(z)))
    }
}

/// One second of a camera's motion history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MotionSecond {
    /// Second within the minute (0..60).
    pub second: u8,
    /// Grid cells with motion in any frame of this second, row-major, one bit per cell.
    pub cells: Vec<u64>,
    /// Peak score in this second, scaled to 0..=65535.
    pub peak: u16,
    /// Zones with motion, as bits over the minute's `zone_ids`.
    pub zones: u64,
}

/// A minute of one camera's motion history: only the seconds with motion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MotionMinute {
    pub cols: u16,
    pub rows: u16,
    /// Zone ids the `zones` bits of each second refer to.
    pub zone_ids: Vec<u32>,
    pub seconds: Vec<MotionSecond>,
}

impl Index {
    /// The stable id of a camera's zone, assigned on first use.
    pub fn zone_id(&self, camera_id: u32, name: &str) -> Result<u32> {
        let mut key = camera_id.to_be_bytes().to_vec();
        key.extend_from_slice(name.as_bytes());
        self.with(|t| Ok(t.assign_id(&t.zones, &key, META_NEXT_ZONE)?.0))
    }

    /// Every zone id ever assigned to one camera, as (name, id).
    pub fn zone_ids(&self, camera_id: u32) -> Result<Vec<(String, u32)>> {
        self.with(|t| {
            let mut out = Vec::new();
            for kv in t.zones.scan_prefix(camera_id.to_be_bytes()) {
                let (k, v) = kv?;
                out.push((
                    String::from_utf8_lossy(&k[4..]).into_owned(),
                    u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4])),
                ));
            }
            Ok(out)
        })
    }

    /// A new event id: unique and increasing (gaps after a crash are possible).
    pub fn new_event_id(&self) -> Result<u64> {
        self.with(|t| Ok(t.db.generate_id()? + 1))
    }

    /// Stores events with their optional JPEG thumbnails. Durable at the next
    /// [`Index::flush`] (the committer's tick): keep a [`super::Ticket`] and write them
    /// again unless it becomes durable. Writing an event again is harmless.
    ///
    /// Records and thumbnails first (a batch each), then the entries (an atomic
    /// read-modify-write per bucket): sled recovers a prefix of its log, so after a crash
    /// an entry never lacks its record, and start-up adds the entries of the newest
    /// records again ([`Index::reindex_newest_events`]).
    pub fn put_events(&self, events: &[(EventRecord, Option<Vec<u8>>)]) -> Result<()> {
        self.with(|t| {
            let mut records = sled::Batch::default();
            let mut thumbs = sled::Batch::default();
            for (r, thumb) in events {
                records.insert(&r.id.to_be_bytes(), postcard::to_stdvec(r)?);
                if let Some(t) = thumb {
                    thumbs.insert(&r.id.to_be_bytes(), t.as_slice());
                }
            }
            t.thumbs.apply_batch(thumbs)?;
            t.events.apply_batch(records)?;
            t.add_entries(events.iter().map(|(r, _)| r))
        })
    }

    /// After a crash: adds the entries of the newest records again (idempotent), in case
    /// a record was stored and its entries were not. Run at start-up.
    pub fn reindex_newest_events(&self) -> Result<()> {
        self.with(|t| {
            let mut newest = Vec::new();
            for kv in t.events.iter().rev().take(REINDEX_NEWEST) {
                newest.push(postcard::from_bytes::<EventRecord>(&kv?.1)?);
            }
            t.add_entries(newest.iter())
        })
    }

    pub fn event(&self, id: u64) -> Result<Option<EventRecord>> {
        self.with(|t| match t.events.get(id.to_be_bytes())? {
            Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
            None => Ok(None),
        })
    }

    /// Records the first acknowledgement of an event; returns the existing one if it was
    /// already acknowledged (atomic: two operators cannot both be first). Durable when
    /// it returns.
    pub fn acknowledge(&self, id: u64, ack: &Ack) -> Result<std::result::Result<(), Ack>> {
        let v = postcard::to_stdvec(ack)?;
        self.with(|t| {
            match t
                .acks
                .compare_and_swap(id.to_be_bytes(), None as Option<&[u8]>, Some(v))?
            {
                Ok(()) => {
                    self.flush_trees(t)?;
                    Ok(Ok(()))
                }
                Err(e) => Ok(Err(postcard::from_bytes(
                    e.current.as_deref().unwrap_or_default(),
                )?)),
            }
        })
    }

    pub fn ack(&self, id: u64) -> Result<Option<Ack>> {
        self.with(|t| match t.acks.get(id.to_be_bytes())? {
            Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
            None => Ok(None),
        })
    }

    /// Stores (replaces) an event's thumbnail, possibly before its record.
    pub fn put_thumbnail(&self, id: u64, jpeg: &[u8]) -> Result<()> {
        self.with(|t| {
            t.thumbs.insert(id.to_be_bytes(), jpeg)?;
            Ok(())
        })
    }

    pub fn thumbnail(&self, id: u64) -> Result<Option<sled::IVec>> {
        self.with(|t| Ok(t.thumbs.get(id.to_be_bytes())?))
    }

    /// The longest event stored, µs (bounds how far before a range its events can start).
    pub fn longest_event_us(&self) -> Result<i64> {
        self.with(|t| t.longest_event_us())
    }

    /// Index entries of events overlapping `[t0, t1)` in `scope`, in start order (the
    /// iterator is double-ended: `.rev()` for newest first): the buckets of starts in
    /// `[t0 - longest event, t1)`.
    pub fn scan_events(
        &self,
        scope: EventScope,
        t0: i64,
        t1: i64,
    ) -> Result<impl DoubleEndedIterator<Item = Result<EventEntry>> + use<>> {
        self.with(|t| {
            let lo_t = t0.saturating_sub(t.longest_event_us()?);
            let mut out = Vec::new();
            for kv in t
                .entry_tree(scope)
                .range(scope.bucket_key(lo_t)..=scope.bucket_key(t1 - 1))
            {
                let (_, v) = kv?;
                out.extend(
                    entries(&v).filter(|e| e.start_us >= lo_t && e.start_us < t1 && e.end_us > t0),
                );
            }
            Ok(out.into_iter().map(Ok))
        })
    }

    /// How many events of `scope` overlap `[t0, t1)`: [`Index::scan_events`]`.count()`,
    /// but buckets wholly inside the range are counted by their length alone.
    pub fn count_events(&self, scope: EventScope, t0: i64, t1: i64) -> Result<u64> {
        if t1 <= t0 {
            return Ok(0);
        }
        self.with(|t| {
            let b = bucket_us(scope);
            let lo_t = t0.saturating_sub(t.longest_event_us()?);
            let mut n = 0u64;
            for kv in t
                .entry_tree(scope)
                .range(scope.bucket_key(lo_t)..=scope.bucket_key(t1 - 1))
            {
                let (k, v) = kv?;
                let start = unts(&k[k.len() - 8..]);
                if start >= t0 && start + b <= t1 {
                    n += (v.len() / ENTRY_LEN) as u64;
                } else {
                    n += entries(&v)
                        .filter(|e| e.start_us >= lo_t && e.start_us < t1 && e.end_us > t0)
                        .count() as u64;
                }
            }
            Ok(n)
        })
    }

    /// Stores (replaces) one minute of a camera's motion history.
    pub fn put_motion_minute(
        &self,
        camera_id: u32,
        minute_us: i64,
        m: &MotionMinute,
    ) -> Result<()> {
        let mut k = camera_id.to_be_bytes().to_vec();
        k.extend_from_slice(&ts(minute_us));
        let v = postcard::to_stdvec(m)?;
        self.with(|t| {
            t.motion.insert(k, v)?;
            Ok(())
        })
    }

    /// A camera's motion history minutes starting in `[t0, t1)`, oldest first, as
    /// (minute start µs, minute).
    pub fn motion_minutes(
        &self,
        camera_id: u32,
        t0: i64,
        t1: i64,
    ) -> impl Iterator<Item = Result<(i64, MotionMinute)>> + use<> {
        let p = camera_id.to_be_bytes();
        let mut lo = p.to_vec();
        lo.extend_from_slice(&ts(t0));
        let mut hi = p.to_vec();
        hi.extend_from_slice(&ts(t1));
        let (it, err) = match self.trees() {
            Ok(t) => (Some(t.motion.range(lo..hi)), None),
            Err(e) => (None, Some(Err(e))),
        };
        err.into_iter().chain(it.into_iter().flatten().map(|kv| {
            let (k, v) = kv?;
            Ok((unts(&k[4..]), postcard::from_bytes(&v)?))
        }))
    }
}

impl Trees {
    fn entry_tree(&self, scope: EventScope) -> &sled::Tree {
        match scope {
            EventScope::All => &self.ev_time,
            EventScope::Camera(_) => &self.ev_camera,
            EventScope::Zone(_) => &self.ev_zone,
        }
    }

    fn longest_event_us(&self) -> Result<i64> {
        Ok(self
            .meta
            .get(META_LONGEST_EVENT)?
            .map(|v| i64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])))
            .unwrap_or(0))
    }

    /// Adds records' entries to their buckets and raises the longest-event bound.
    fn add_entries<'a>(&self, records: impl Iterator<Item = &'a EventRecord>) -> Result<()> {
        let mut buckets: std::collections::BTreeMap<(EventScope, Vec<u8>), Vec<EventEntry>> =
            Default::default();
        let mut longest = 0;
        for r in records {
            longest = longest.max(r.end_us - r.start_us);
            for s in EventScope::of(r) {
                buckets
                    .entry((s, s.bucket_key(r.start_us)))
                    .or_default()
                    .push(EventEntry::of(r));
            }
        }
        self.meta.fetch_and_update(META_LONGEST_EVENT, |old| {
            let old = old
                .map(|v| i64::from_be_bytes(v.try_into().unwrap_or([0; 8])))
                .unwrap_or(0);
            Some(old.max(longest).to_be_bytes().to_vec())
        })?;
        for ((scope, key), add) in buckets {
            self.entry_tree(scope)
                .fetch_and_update(key, |old| Some(merged(old, &add)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u64, cam: u32, start: i64, end: i64, zones: &[u32]) -> EventRecord {
        EventRecord {
            id,
            camera_id: cam,
            start_us: start,
            end_us: end,
            clip_start_us: start - 3,
            clip_end_us: end + 5,
            zones: zones.iter().map(|z| format!("z{z}")).collect(),
            zone_ids: zones.to_vec(),
            peak_score: id as f32 / 100.0,
            bbox: [0.1, 0.2, 0.3, 0.4],
            has_thumbnail: id == 1,
        }
    }

    #[test]
    fn events_by_scope_overlapping_a_range() {
        let ix = Index::temporary().unwrap();
        ix.put_events(&[
            (ev(1, 1, 100, 200, &[7]), Some(b"jpeg".to_vec())),
            (ev(2, 1, 150, 1_000, &[7, 8]), None),
            (ev(3, 2, 300, 400, &[9]), None),
            (ev(4, 1, -50, 10, &[]), None),
        ])
        .unwrap();
        let ids = |s: EventScope, t0, t1| -> Vec<u64> {
            ix.scan_events(s, t0, t1)
                .unwrap()
                .map(|e| e.unwrap().id)
                .collect()
        };
        // The long event 2 (started at 150) overlaps [500, 600): found by the look-back.
        assert_eq!(ids(EventScope::All, 500, 600), vec![2]);
        assert_eq!(ids(EventScope::All, 0, 1_000), vec![4, 1, 2, 3]);
        assert_eq!(ids(EventScope::All, 10, 100), Vec::<u64>::new());
        assert_eq!(ids(EventScope::Camera(1), 0, 1_000), vec![4, 1, 2]);
        assert_eq!(ids(EventScope::Camera(2), 0, 1_000), vec![3]);
        assert_eq!(ids(EventScope::Zone(7), 0, 1_000), vec![1, 2]);
        assert_eq!(ids(EventScope::Zone(8), 0, 1_000), vec![2]);
        let newest_first: Vec<u64> = ix
            .scan_events(EventScope::All, 0, 1_000)
            .unwrap()
            .rev()
            .map(|e| e.unwrap().id)
            .collect();
        assert_eq!(newest_first, vec![3, 2, 1, 4]);
        let e = ix
            .scan_events(EventScope::Zone(9), 0, 1_000)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            e,
            EventEntry {
                id: 3,
                start_us: 300,
                end_us: 400,
                peak_score: 0.03,
                camera_id: 2
            }
        );
        assert_eq!(ix.event(2).unwrap().unwrap(), ev(2, 1, 150, 1_000, &[7, 8]));
        assert_eq!(ix.thumbnail(1).unwrap().unwrap().as_ref(), b"jpeg");
        assert!(ix.thumbnail(2).unwrap().is_none());
        assert_eq!(ix.longest_event_us().unwrap(), 850);
    }

    /// A crash after the records but before their entries: start-up re-indexes them.
    #[test]
    fn unindexed_tail_events_are_reindexed() {
        let ix = Index::temporary().unwrap();
        ix.put_events(&[
            (ev(1, 1, 100, 200, &[7]), None),
            (ev(2, 1, 300, 400, &[7]), None),
        ])
        .unwrap();
        ix.reindex_newest_events().unwrap();
        assert_eq!(
            ix.scan_events(EventScope::All, 0, 1_000).unwrap().count(),
            2
        );
        let t = ix.trees().unwrap();
        for tree in [&t.ev_time, &t.ev_camera, &t.ev_zone] {
            tree.clear().unwrap();
        }
        let ids = || -> Vec<u64> {
            ix.scan_events(EventScope::Zone(7), 0, 1_000)
                .unwrap()
                .map(|e| e.unwrap().id)
                .collect()
        };
        assert!(ids().is_empty());
        ix.reindex_newest_events().unwrap();
        assert_eq!(ids(), vec![1, 2]);
        // Idempotent: entries are never doubled.
        ix.reindex_newest_events().unwrap();
        assert_eq!(ids(), vec![1, 2]);
        assert_eq!(ix.count_events(EventScope::All, 0, 1_000).unwrap(), 2);
    }

    /// Counting (whole buckets by their length) equals counting the scan, for random events
    /// and ranges, aligned on buckets and not.
    #[test]
    fn bucket_counts_equal_scans() {
        let ix = Index::temporary().unwrap();
        let mut rng = fastrand::Rng::with_seed(9);
        const H: i64 = 3_600_000_000;
        let mut batch = Vec::new();
        for id in 1..=2000u64 {
            let start = rng.i64(0..48 * H);
            let zones: Vec<u32> = (0..rng.u32(0..3)).map(|_| rng.u32(1..4)).collect();
            let mut zones = zones;
            zones.sort_unstable();
            zones.dedup();
            batch.push((
                ev(id, rng.u32(1..3), start, start + rng.i64(1..2 * H), &zones),
                None,
            ));
            if batch.len() == 300 {
                ix.put_events(&batch).unwrap();
                batch.clear();
            }
        }
        ix.put_events(&batch).unwrap();
        let scopes = [
            EventScope::All,
            EventScope::Camera(1),
            EventScope::Camera(2),
            EventScope::Zone(1),
            EventScope::Zone(3),
        ];
        let check = |ix: &Index| {
            let mut rng = fastrand::Rng::with_seed(10);
            for i in 0..300 {
                let (a, b) = if i % 3 == 0 {
                    (rng.i64(-2..50) * H, rng.i64(-2..50) * H)
                } else {
                    (rng.i64(-H..50 * H), rng.i64(-H..50 * H))
                };
                let (t0, t1) = (a.min(b), a.max(b) + 1);
                for s in scopes {
                    let want = ix.scan_events(s, t0, t1).unwrap().count() as u64;
                    assert_eq!(
                        ix.count_events(s, t0, t1).unwrap(),
                        want,
                        "{s:?} [{t0}, {t1})"
                    );
                }
            }
        };
        check(&ix);
    }

    #[test]
    fn zone_ids_are_stable_per_camera() {
        let ix = Index::temporary().unwrap();
        let a = ix.zone_id(1, "door").unwrap();
        let b = ix.zone_id(2, "door").unwrap();
        assert_ne!(a, b);
        assert_eq!(ix.zone_id(1, "door").unwrap(), a);
        assert_eq!(ix.zone_ids(1).unwrap(), vec![("door".to_string(), a)]);
    }

    #[test]
    fn motion_minutes_by_range() {
        let ix = Index::temporary().unwrap();
        let m = |s: u8| MotionMinute {
            cols: 2,
            rows: 1,
            zone_ids: vec![5],
            seconds: vec![MotionSecond {
                second: s,
                cells: vec![0b10],
                peak: 100,
                zones: 1,
            }],
        };
        for (cam, t) in [(1, 0), (1, 60_000_000), (2, 60_000_000), (1, 120_000_000)] {
            ix.put_motion_minute(cam, t, &m(t as u8)).unwrap();
        }
        let got: Vec<(i64, MotionMinute)> = ix
            .motion_minutes(1, 60_000_000, 180_000_000)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                (60_000_000, m(60_000_000u32 as u8)),
                (120_000_000, m(120_000_000u32 as u8))
            ]
        );
    }
}
