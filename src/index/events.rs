//! The event and motion-history trees of the index (layout in ARCHITECTURE.md, "Index").
//!
//! An event is written once, when it closes: its record and thumbnail, then its three
//! time-ordered index entries (see [`Index::put_events`] for the crash argument). Index
//! entries carry what filters need (end, peak score, camera), so counting
//! and filtering never read the records; only the page returned does.
//!
//! Events are keyed by start time. A query for events overlapping `[t0, t1)` scans starts
//! in `[t0 - longest, t1)`, where `longest` is the longest event ever stored (kept in
//! `meta`), and drops those that ended before `t0`.

use serde::{Deserialize, Serialize};

use super::{Index, IndexError, Result};

const META_NEXT_ZONE: &[u8] = b"next_zone_id";
const HOUR_US: i64 = 3_600_000_000;
/// Newest events whose hourly counts start-up recomputes (the crash window is far smaller).
const RECOUNT_NEWEST: usize = 256;
const META_LONGEST_EVENT: &[u8] = b"longest_event_us";

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
    fn value(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&ts(self.end_us));
        v[8..12].copy_from_slice(&self.peak_score.to_be_bytes());
        v[12..].copy_from_slice(&self.camera_id.to_be_bytes());
        v
    }

    /// From a key ending in ts(start) ++ id and its value.
    fn decode(key: &[u8], v: &[u8]) -> Option<EventEntry> {
        if key.len() < 16 || v.len() != 16 {
            return None;
        }
        let k = &key[key.len() - 16..];
        Some(EventEntry {
            start_us: unts(&k[..8]),
            id: u64::from_be_bytes(k[8..].try_into().ok()?),
            end_us: unts(&v[..8]),
            peak_score: f32::from_be_bytes(v[8..12].try_into().ok()?),
            camera_id: u32::from_be_bytes(v[12..].try_into().ok()?),
        })
    }
}

/// Which time-ordered event index to scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventScope {
    All,
    Camera(u32),
    Zone(u32),
}

impl EventScope {
    /// Key prefix in `event_hours`: a kind byte, then the id.
    fn hours_prefix(self) -> Vec<u8> {
        let mut k = match self {
            EventScope::All => vec![0],
            EventScope::Camera(_) => vec![1],
            EventScope::Zone(_) => vec![2],
        };
        k.extend_from_slice(&self.prefix());
        k
    }

    fn hour_key(self, t: i64) -> Vec<u8> {
        let mut k = self.hours_prefix();
        k.extend_from_slice(&ts(t.div_euclid(HOUR_US) * HOUR_US));
        k
    }

    /// The scopes an event is counted in.
    fn of(r: &EventRecord) -> impl Iterator<Item = EventScope> + '_ {
        [EventScope::All, EventScope::Camera(r.camera_id)]
            .into_iter()
            .chain(r.zone_ids.iter().map(|&z| EventScope::Zone(z)))
    }

    fn prefix(self) -> Vec<u8> {
        match self {
            EventScope::All => Vec::new(),
            EventScope::Camera(c) => c.to_be_bytes().to_vec(),
            EventScope::Zone(z) => z.to_be_bytes().to_vec(),
        }
    }
}

fn entry_key(prefix: &[u8], start_us: i64, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 16);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&ts(start_us));
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// sled merge operator of `event_hours`: adds a u64 BE delta to a u64 BE count.
pub(super) fn add_count(_key: &[u8], old: Option<&[u8]>, delta: &[u8]) -> Option<Vec<u8>> {
    let get = |b: Option<&[u8]>| {
        b.and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)
    };
    Some((get(old) + get(Some(delta))).to_be_bytes().to_vec())
}

/// Adds an event's three kinds of index entries to batches.
fn add_entries(
    r: &EventRecord,
    time: &mut sled::Batch,
    camera: &mut sled::Batch,
    zone: &mut sled::Batch,
) {
    let v = EventEntry {
        id: r.id,
        start_us: r.start_us,
        end_us: r.end_us,
        peak_score: r.peak_score,
        camera_id: r.camera_id,
    }
    .value();
    time.insert(entry_key(&[], r.start_us, r.id), &v);
    camera.insert(entry_key(&r.camera_id.to_be_bytes(), r.start_us, r.id), &v);
    for z in &r.zone_ids {
        zone.insert(entry_key(&z.to_be_bytes(), r.start_us, r.id), &v);
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
        if let Some(v) = self.zones.get(&key)? {
            return Ok(u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4])));
        }
        let id = self
            .meta
            .update_and_fetch(META_NEXT_ZONE, |old| {
                let n = old
                    .map(|o| u32::from_be_bytes(o.try_into().unwrap_or([0; 4])))
                    .unwrap_or(0)
                    + 1;
                Some(n.to_be_bytes().to_vec())
            })?
            .map(|v| u32::from_be_bytes(v.as_ref().try_into().unwrap()))
            .unwrap_or(1);
        match self
            .zones
            .compare_and_swap(&key, None as Option<&[u8]>, Some(&id.to_be_bytes()))?
        {
            Ok(()) => Ok(id),
            Err(_) => self.zone_id(camera_id, name),
        }
    }

    /// Every zone id ever assigned to one camera, as (name, id).
    pub fn zone_ids(&self, camera_id: u32) -> Result<Vec<(String, u32)>> {
        let mut out = Vec::new();
        for kv in self.zones.scan_prefix(camera_id.to_be_bytes()) {
            let (k, v) = kv?;
            out.push((
                String::from_utf8_lossy(&k[4..]).into_owned(),
                u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4])),
            ));
        }
        Ok(out)
    }

    /// A new event id: unique and increasing (gaps after a crash are possible).
    pub fn new_event_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()? + 1)
    }

    /// Stores events with their optional JPEG thumbnails. Durable at the next
    /// [`Index::flush`] (the committer's tick).
    ///
    /// Written as one batch per tree, records and thumbnails first, then the index
    /// entries: sled recovers a prefix of its log, so after a crash an entry never points
    /// at a missing record; a record whose entries were lost is re-indexed by
    /// [`Index::reindex_tail_events`] at start-up. (A multi-tree transaction measured no
    /// faster, `benches/events.rs`, and cannot hold the hourly counts' merges.)
    pub fn put_events(&self, events: &[(EventRecord, Option<Vec<u8>>)]) -> Result<()> {
        let mut records = sled::Batch::default();
        let mut thumbs = sled::Batch::default();
        let (mut time, mut camera, mut zone) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        let mut longest = 0;
        for (r, thumb) in events {
            records.insert(&r.id.to_be_bytes(), postcard::to_stdvec(r)?);
            if let Some(t) = thumb {
                thumbs.insert(&r.id.to_be_bytes(), t.as_slice());
            }
            add_entries(r, &mut time, &mut camera, &mut zone);
            longest = longest.max(r.end_us - r.start_us);
        }
        self.thumbs.apply_batch(thumbs)?;
        self.events.apply_batch(records)?;
        self.ev_time.apply_batch(time)?;
        self.ev_camera.apply_batch(camera)?;
        self.ev_zone.apply_batch(zone)?;
        self.raise_longest_event(longest)?;
        // Hourly counts last (start-up recounts the newest events' hours after a crash).
        let mut deltas: std::collections::HashMap<Vec<u8>, u64> = Default::default();
        for (r, _) in events {
            for s in EventScope::of(r) {
                *deltas.entry(s.hour_key(r.start_us)).or_default() += 1;
            }
        }
        for (k, n) in deltas {
            self.ev_hours.merge(k, n.to_be_bytes())?;
        }
        Ok(())
    }

    /// Recounts, from the index entries, the hourly counts that the newest events touch:
    /// after a crash they may lag the entries. Idempotent; run at start-up.
    pub fn recount_newest_event_hours(&self) -> Result<()> {
        let mut keys = std::collections::BTreeSet::new();
        for kv in self.events.iter().rev().take(RECOUNT_NEWEST) {
            let r: EventRecord = postcard::from_bytes(&kv?.1)?;
            for s in EventScope::of(&r) {
                keys.insert((s, r.start_us.div_euclid(HOUR_US) * HOUR_US));
            }
        }
        for (s, hour) in keys {
            let n = self.count_starts(s, hour, hour + HOUR_US)?;
            self.ev_hours.insert(s.hour_key(hour), &n.to_be_bytes())?;
        }
        Ok(())
    }

    /// Entries of `scope` whose start is in `[t0, t1)` (a key-only range scan).
    fn count_starts(&self, scope: EventScope, t0: i64, t1: i64) -> Result<u64> {
        let tree = self.entry_tree(scope);
        let p = scope.prefix();
        let mut n = 0;
        for kv in tree.range(entry_key(&p, t0, 0)..entry_key(&p, t1, 0)) {
            kv?;
            n += 1;
        }
        Ok(n)
    }

    fn entry_tree(&self, scope: EventScope) -> &sled::Tree {
        match scope {
            EventScope::All => &self.ev_time,
            EventScope::Camera(_) => &self.ev_camera,
            EventScope::Zone(_) => &self.ev_zone,
        }
    }

    /// How many events of `scope` overlap `[t0, t1)`: those that started before `t0` and
    /// were still going (a scan of the look-back window), plus those that started in
    /// the range: hourly counts for the whole hours, entry scans for the partial hours at
    /// either end. Exactly [`Index::scan_events`]`.count()`, without reading most entries.
    pub fn count_events(&self, scope: EventScope, t0: i64, t1: i64) -> Result<u64> {
        if t1 <= t0 {
            return Ok(0);
        }
        let mut n = 0;
        let p = scope.prefix();
        let lo = entry_key(&p, t0.saturating_sub(self.longest_event_us()?), 0);
        for kv in self.entry_tree(scope).range(lo..entry_key(&p, t0, 0)) {
            let (k, v) = kv?;
            if EventEntry::decode(&k, &v).is_some_and(|e| e.end_us > t0) {
                n += 1;
            }
        }
        let h0 = (t0 + HOUR_US - 1).div_euclid(HOUR_US) * HOUR_US; // first whole hour
        let h1 = t1.div_euclid(HOUR_US) * HOUR_US; // end of the last whole hour
        if h0 >= h1 {
            return Ok(n + self.count_starts(scope, t0, t1)?);
        }
        n += self.count_starts(scope, t0, h0)? + self.count_starts(scope, h1, t1)?;
        for kv in self.ev_hours.range(scope.hour_key(h0)..scope.hour_key(h1)) {
            let (_, v) = kv?;
            n += v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
        }
        Ok(n)
    }

    fn raise_longest_event(&self, longest: i64) -> Result<()> {
        self.meta.fetch_and_update(META_LONGEST_EVENT, |old| {
            let old = old
                .map(|v| i64::from_be_bytes(v.try_into().unwrap_or([0; 8])))
                .unwrap_or(0);
            Some(old.max(longest).to_be_bytes().to_vec())
        })?;
        Ok(())
    }

    /// After a crash: indexes the newest events whose entries were not written (walks
    /// back from the newest record until one is indexed). Returns how many.
    pub fn reindex_tail_events(&self) -> Result<usize> {
        let mut n = 0;
        let (mut time, mut camera, mut zone) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        let mut longest = 0;
        for kv in self.events.iter().rev() {
            let r: EventRecord = postcard::from_bytes(&kv?.1)?;
            let key = entry_key(&r.camera_id.to_be_bytes(), r.start_us, r.id);
            if self.ev_camera.contains_key(key)? {
                break;
            }
            add_entries(&r, &mut time, &mut camera, &mut zone);
            longest = longest.max(r.end_us - r.start_us);
            n += 1;
        }
        if n > 0 {
            self.ev_time.apply_batch(time)?;
            self.ev_camera.apply_batch(camera)?;
            self.ev_zone.apply_batch(zone)?;
            self.raise_longest_event(longest)?;
        }
        Ok(n)
    }

    pub fn event(&self, id: u64) -> Result<Option<EventRecord>> {
        match self.events.get(id.to_be_bytes())? {
            Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
            None => Ok(None),
        }
    }

    pub fn thumbnail(&self, id: u64) -> Result<Option<sled::IVec>> {
        Ok(self.thumbs.get(id.to_be_bytes())?)
    }

    /// The longest event stored, µs (bounds how far before a range its events can start).
    pub fn longest_event_us(&self) -> Result<i64> {
        Ok(self
            .meta
            .get(META_LONGEST_EVENT)?
            .map(|v| i64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])))
            .unwrap_or(0))
    }

    /// Index entries of events overlapping `[t0, t1)` in `scope`, in start order (the
    /// iterator is double-ended: `.rev()` for newest first). A range scan over starts in
    /// `[t0 - longest event, t1)`.
    pub fn scan_events(
        &self,
        scope: EventScope,
        t0: i64,
        t1: i64,
    ) -> Result<impl DoubleEndedIterator<Item = Result<EventEntry>> + use<>> {
        let tree = self.entry_tree(scope);
        let p = scope.prefix();
        let lo = entry_key(&p, t0.saturating_sub(self.longest_event_us()?), 0);
        let hi = entry_key(&p, t1, 0);
        Ok(tree.range(lo..hi).filter_map(move |kv| match kv {
            Err(e) => Some(Err(e.into())),
            Ok((k, v)) => match EventEntry::decode(&k, &v) {
                Some(e) if e.end_us > t0 => Some(Ok(e)),
                Some(_) => None,
                None => Some(Err(IndexError::Corrupt(format!(
                    "event index entry of {} bytes",
                    v.len()
                )))),
            },
        }))
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
        self.motion.insert(k, postcard::to_stdvec(m)?)?;
        Ok(())
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
        self.motion.range(lo..hi).map(|kv| {
            let (k, v) = kv?;
            Ok((unts(&k[4..]), postcard::from_bytes(&v)?))
        })
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
        assert_eq!(ix.reindex_tail_events().unwrap(), 0);
        for tree in [&ix.ev_time, &ix.ev_camera, &ix.ev_zone] {
            tree.clear().unwrap();
        }
        let ids = || -> Vec<u64> {
            ix.scan_events(EventScope::Zone(7), 0, 1_000)
                .unwrap()
                .map(|e| e.unwrap().id)
                .collect()
        };
        assert!(ids().is_empty());
        assert_eq!(ix.reindex_tail_events().unwrap(), 2);
        assert_eq!(ids(), vec![1, 2]);
        assert_eq!(ix.reindex_tail_events().unwrap(), 0);
    }

    /// Counting with hourly counts equals counting the scan, for random events and ranges
    /// (aligned and not), also after the hourly counts are recomputed at start-up.
    #[test]
    fn hourly_counts_equal_scans() {
        let ix = Index::temporary().unwrap();
        let mut rng = fastrand::Rng::with_seed(9);
        const H: i64 = HOUR_US;
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
        // Hourly counts lost (a crash before they were written): start-up recounts.
        ix.ev_hours.clear().unwrap();
        let mut newest = ix
            .events
            .iter()
            .rev()
            .take(RECOUNT_NEWEST)
            .map(|kv| postcard::from_bytes::<EventRecord>(&kv.unwrap().1).unwrap());
        let r = newest.next().unwrap();
        let h = r.start_us.div_euclid(H) * H;
        ix.recount_newest_event_hours().unwrap();
        let want = ix
            .count_starts(EventScope::Camera(r.camera_id), h, h + H)
            .unwrap();
        let got = ix
            .ev_hours
            .get(EventScope::Camera(r.camera_id).hour_key(h))
            .unwrap()
            .map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap()));
        assert_eq!(got, Some(want));
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
