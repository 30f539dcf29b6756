//! Writes one camera's timeline from its analysis thread: each closed event (with its
//! thumbnail) in one transaction, and the motion history a minute record at a time.
//!
//! The minute being filled is rewritten every [`HISTORY_WRITE_EVERY`] while it has new
//! motion, so a crash loses at most that much history; events are durable at the next
//! index flush (the committer flushes every tick).
//!
//! Nothing is lost when the index breaks and reopens (see [`Index`]): every write is kept
//! with its [`Ticket`] until a flush covers it, and written again (idempotently: records
//! are keyed by event id and minute) when the index lost it or refused it. A write the
//! index refused makes the call return the error (for the status), but the write is kept.
//! Event ids come from a small stock taken while the index is up, so an event that opens
//! while the index is reopening still gets one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::MotionEvent;
use crate::index::{EventRecord, Index, MotionMinute, MotionSecond, Result, Ticket};
use crate::motion::detector::FrameResult;

pub const HISTORY_WRITE_EVERY: Duration = Duration::from_secs(10);

const MINUTE_US: i64 = 60_000_000;

pub struct Recorder {
    index: Index,
    camera_id: u32,
    /// The camera's configured zones, in order, and their index ids.
    zone_names: Vec<String>,
    zone_ids: Vec<u32>,
    /// The minute being filled: (start µs, record, unsaved changes).
    minute: Option<(i64, MotionMinute, bool)>,
    last_write: Instant,
    /// Writes not yet known to be durable, oldest first.
    unconfirmed: VecDeque<(Ticket, Write)>,
    last_rewrite: Option<Instant>,
    /// Event ids taken ahead from the index.
    spare_ids: Vec<u64>,
    /// Writes given up because too many were waiting for a broken index.
    pub dropped_writes: u64,
}

/// A timeline write, kept until durable.
#[derive(Clone, Debug)]
enum Write {
    Minute(i64, MotionMinute),
    Event(EventRecord, Option<Vec<u8>>),
    Thumbnail(u64, Vec<u8>),
}

/// Writes kept for a broken index at most (about 3 hours of motion history of a busy
/// camera, or that many events); beyond, the oldest history minutes go first.
const MAX_UNCONFIRMED: usize = 1024;
/// Event ids kept in stock.
const SPARE_IDS: usize = 8;

impl Recorder {
    pub fn new(index: Index, camera: &str, zones: &[String]) -> Result<Recorder> {
        let camera_id = index.camera_id(camera)?;
        let zone_ids = zones
            .iter()
            .map(|z| index.zone_id(camera_id, z))
            .collect::<Result<Vec<u32>>>()?;
        let mut r = Recorder {
            index,
            camera_id,
            zone_names: zones.to_vec(),
            zone_ids,
            minute: None,
            last_write: Instant::now(),
            unconfirmed: VecDeque::new(),
            last_rewrite: None,
            spare_ids: Vec::new(),
            dropped_writes: 0,
        };
        r.stock_ids();
        Ok(r)
    }

    /// The camera's zones changed (the console's zone editor): `zones` in the detector's
    /// new order. New names get their ids; the motion history of the minute being filled
    /// keeps its bits. Errors: the index refused a new zone's id (nothing changes).
    pub fn set_zones(&mut self, zones: &[String]) -> Result<()> {
        let ids = (zones.iter())
            .map(|z| self.index.zone_id(self.camera_id, z))
            .collect::<Result<Vec<u32>>>()?;
        self.zone_names = zones.to_vec();
        self.zone_ids = ids;
        Ok(())
    }

    /// Writes not yet known to be durable.
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed.len()
    }

    /// At exit: flushes the index (the committer's next flush may not come) and
    /// returns how many writes are still not known to be durable.
    pub fn finish(&mut self) -> usize {
        self.sync();
        if !self.unconfirmed.is_empty() {
            if let Err(e) = self.index.flush() {
                tracing::warn!(
                    camera_id = self.camera_id,
                    "flushing the timeline at exit: {e}"
                );
            }
            self.sync();
        }
        self.unconfirmed.len()
    }

    fn stock_ids(&mut self) {
        while self.spare_ids.len() < SPARE_IDS {
            match self.index.new_event_id() {
                Ok(id) => self.spare_ids.insert(0, id),
                Err(_) => break,
            }
        }
    }

    fn put(&self, w: &Write) -> Result<()> {
        match w {
            Write::Minute(t, m) => self.index.put_motion_minute(self.camera_id, *t, m),
            Write::Event(r, thumb) => self.index.put_events(&[(r.clone(), thumb.clone())]),
            Write::Thumbnail(id, j) => self.index.put_thumbnail(*id, j),
        }
    }

    /// Writes `w` and keeps it until durable; an error means it was refused (and kept).
    fn write(&mut self, w: Write) -> Result<()> {
        if let Write::Minute(t, _) = &w {
            let t = *t;
            self.unconfirmed
                .retain(|(_, o)| !matches!(o, Write::Minute(u, _) if *u == t));
        }
        // An event's final thumbnail replaces the provisional one: an older write of
        // that must not be written again over it.
        if let Write::Event(r, Some(_)) = &w {
            let id = r.id;
            self.unconfirmed
                .retain(|(_, o)| !matches!(o, Write::Thumbnail(i, _) if *i == id));
        }
        let generation = self.index.generation();
        let r = self.put(&w);
        let ticket = match r {
            Ok(()) => self.index.ticket(generation),
            Err(_) => Ticket::REFUSED,
        };
        self.unconfirmed.push_back((ticket, w));
        while self.unconfirmed.len() > MAX_UNCONFIRMED {
            let i = (self.unconfirmed.iter())
                .position(|(_, w)| matches!(w, Write::Minute(..)))
                .unwrap_or(0);
            self.unconfirmed.remove(i);
            self.dropped_writes += 1;
        }
        r
    }

    /// Forgets writes that became durable and writes again those the index lost or
    /// refused (at most every [`crate::index::REOPEN_EVERY`]). Cheap: call it often.
    pub fn sync(&mut self) {
        while self
            .unconfirmed
            .front()
            .is_some_and(|(t, _)| self.index.is_durable(t))
        {
            self.unconfirmed.pop_front();
        }
        if self.unconfirmed.is_empty()
            || self
                .last_rewrite
                .is_some_and(|t| t.elapsed() < crate::index::REOPEN_EVERY)
            || !self.unconfirmed.iter().any(|(t, _)| self.index.is_lost(t))
        {
            return;
        }
        self.last_rewrite = Some(Instant::now());
        let mut rewritten = 0;
        for i in 0..self.unconfirmed.len() {
            if !self.index.is_lost(&self.unconfirmed[i].0) {
                continue;
            }
            let generation = self.index.generation();
            if self.put(&self.unconfirmed[i].1).is_err() {
                break;
            }
            self.unconfirmed[i].0 = self.index.ticket(generation);
            rewritten += 1;
        }
        if rewritten > 0 {
            tracing::info!(
                camera_id = self.camera_id,
                "timeline: {rewritten} writes the index lost or refused written again"
            );
        }
        self.stock_ids();
    }

    pub fn camera_id(&self) -> u32 {
        self.camera_id
    }

    /// Adds one analysed frame at `utc_us` to the motion history.
    pub fn frame(&mut self, utc_us: i64, res: &FrameResult) -> Result<()> {
        self.sync();
        let start = utc_us.div_euclid(MINUTE_US) * MINUTE_US;
        let mut refused = Ok(());
        if self.minute.as_ref().is_some_and(|(t, _, _)| *t != start) {
            // A refused write is kept (and written again): the new minute goes on.
            refused = self.save();
            self.minute = None;
        }
        if res.motion {
            let (_, m, dirty) = self.minute.get_or_insert_with(|| {
                (
                    start,
                    MotionMinute {
                        cols: res.grid_cols,
                        rows: res.grid_rows,
                        zone_ids: self.zone_ids.clone(),
                        seconds: Vec::new(),
                    },
                    false,
                )
            });
            if (m.cols, m.rows) == (res.grid_cols, res.grid_rows) {
                let second = ((utc_us - start) / 1_000_000) as u8;
                if m.seconds.last().is_none_or(|s| s.second != second) {
                    m.seconds.push(MotionSecond {
                        second,
                        cells: vec![0; res.grid.len().div_ceil(64)],
                        peak: 0,
                        zones: 0,
                    });
                }
                let s = m.seconds.last_mut().unwrap();
                for (i, &c) in res.grid.iter().enumerate() {
                    if c > 0 {
                        s.cells[i / 64] |= 1 << (i % 64);
                    }
                }
                s.peak = s
                    .peak
                    .max((res.score.clamp(0.0, 1.0) * 65535.0).round() as u16);
                // The minute's bits refer to its own list of zone ids: zones given by
                // `set_zones` mid-minute join the list.
                for &z in &res.zones {
                    let Some(&id) = self.zone_ids.get(z) else {
                        continue;
                    };
                    let bit = match m.zone_ids.iter().position(|&x| x == id) {
                        Some(b) => b,
                        None => {
                            m.zone_ids.push(id);
                            m.zone_ids.len() - 1
                        }
                    };
                    if bit < 64 {
                        s.zones |= 1 << bit;
                    }
                }
                *dirty = true;
            }
        }
        if self.last_write.elapsed() >= HISTORY_WRITE_EVERY {
            self.save()?;
        }
        refused
    }

    /// Writes the minute being filled if it changed.
    pub fn save(&mut self) -> Result<()> {
        self.sync();
        self.last_write = Instant::now();
        if let Some((t, m, dirty)) = &mut self.minute
            && *dirty
        {
            *dirty = false;
            let w = Write::Minute(*t, m.clone());
            return self.write(w);
        }
        Ok(())
    }

    /// An id for an event that just opened (stored when it closes).
    pub fn new_event_id(&mut self) -> Result<u64> {
        self.stock_ids();
        match self.spare_ids.pop() {
            Some(id) => Ok(id),
            None => self.index.new_event_id(),
        }
    }

    /// Stores a thumbnail ahead of its event (an open event's first frame, for alerts).
    pub fn put_thumbnail(&mut self, id: u64, jpeg: &[u8]) -> Result<()> {
        self.write(Write::Thumbnail(id, jpeg.to_vec()))
    }

    /// Stores a closed event under `id` with its JPEG thumbnail.
    pub fn event(&mut self, id: u64, ev: &MotionEvent, thumbnail: Option<Vec<u8>>) -> Result<()> {
        let mut zone_ids = Vec::with_capacity(ev.zones.len());
        for z in &ev.zones {
            zone_ids.push(match self.zone_names.iter().position(|n| n == z) {
                Some(i) => self.zone_ids[i],
                None => self.index.zone_id(self.camera_id, z)?,
            });
        }
        let r = EventRecord {
            id,
            camera_id: self.camera_id,
            start_us: ev.start_us,
            end_us: ev.end_us,
            clip_start_us: ev.clip_start_us,
            clip_end_us: ev.clip_end_us,
            zones: ev.zones.clone(),
            zone_ids,
            peak_score: ev.peak_score as f32,
            bbox: ev.bbox.map(|v| v as f32),
            has_thumbnail: thumbnail.is_some(),
        };
        self.write(Write::Event(r, thumbnail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(motion: bool, cells: &[usize], zones: &[usize], score: f64) -> FrameResult {
        let mut grid = vec![0u8; 6];
        for &c in cells {
            grid[c] = 10;
        }
        FrameResult {
            score,
            motion,
            zones: zones.to_vec(),
            grid,
            grid_cols: 3,
            grid_rows: 2,
            ..Default::default()
        }
    }

    #[test]
    fn frames_become_seconds_and_minutes() {
        let ix = Index::temporary().unwrap();
        let mut r = Recorder::new(ix.clone(), "c", &["door".into(), "yard".into()]).unwrap();
        let m0 = 1_800_000_000_000_000i64; // a whole minute
        // Two frames in second 58 (cells OR'd, peak kept), a quiet frame, one in second 59
        // and one in the next minute, which saves the first.
        r.frame(m0 + 58_000_000, &res(true, &[0], &[0], 0.1))
            .unwrap();
        r.frame(m0 + 58_500_000, &res(true, &[5], &[1], 0.2))
            .unwrap();
        r.frame(m0 + 58_700_000, &res(false, &[], &[], 0.0))
            .unwrap();
        r.frame(m0 + 59_100_000, &res(true, &[1], &[], 0.05))
            .unwrap();
        r.frame(m0 + 60_200_000, &res(true, &[2], &[0], 0.3))
            .unwrap();
        let got: Vec<(i64, MotionMinute)> = ix
            .motion_minutes(r.camera_id(), m0, m0 + 120_000_000)
            .map(|m| m.unwrap())
            .collect();
        assert_eq!(got.len(), 1, "the current minute is not saved yet");
        let (t, m) = &got[0];
        assert_eq!(*t, m0);
        assert_eq!((m.cols, m.rows), (3, 2));
        let door = ix.zone_id(r.camera_id(), "door").unwrap();
        assert_eq!(m.zone_ids[0], door);
        assert_eq!(
            m.seconds,
            vec![
                MotionSecond {
                    second: 58,
                    cells: vec![0b10_0001],
                    peak: (0.2f64 * 65535.0).round() as u16,
                    zones: 0b11
                },
                MotionSecond {
                    second: 59,
                    cells: vec![0b10],
                    peak: (0.05f64 * 65535.0).round() as u16,
                    zones: 0
                },
            ]
        );
        r.save().unwrap();
        assert_eq!(
            ix.motion_minutes(r.camera_id(), m0, m0 + 120_000_000)
                .count(),
            2
        );
    }

    /// Writes the index lost to a reopen are written again; none is given up, and once a
    /// flush covers them they are forgotten. Event ids keep coming while the index is
    /// down (from the stock).
    #[test]
    fn writes_survive_an_index_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sled");
        let ix = Index::open(&path).unwrap();
        let mut r = Recorder::new(ix.clone(), "c", &["door".into()]).unwrap();
        let id = r.new_event_id().unwrap();
        let ev = MotionEvent {
            id: None,
            camera: "c".into(),
            start_us: 1_000_000,
            end_us: 2_000_000,
            clip_start_us: 0,
            clip_end_us: 3_000_000,
            zones: vec!["door".into()],
            peak_score: 0.5,
            bbox: [0.1, 0.1, 0.2, 0.2],
        };
        r.event(id, &ev, Some(vec![0xff, 0xd8])).unwrap();
        let m0 = 1_800_000_000_000_000i64;
        r.frame(m0, &res(true, &[0], &[0], 0.1)).unwrap();
        r.save().unwrap();
        assert_eq!(r.unconfirmed(), 2);
        ix.force_reopen();
        // The next call writes both again; a flush makes them durable.
        r.sync();
        assert_eq!(r.unconfirmed(), 2);
        ix.flush().unwrap();
        r.sync();
        assert_eq!(r.unconfirmed(), 0);
        assert_eq!(r.dropped_writes, 0);
        // Ids in stock come out increasing and unique.
        let ids: Vec<u64> = (0..3).map(|_| r.new_event_id().unwrap()).collect();
        assert!(ids[0] > id && ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
        drop((r, ix));
        let ix = Index::open(&path).unwrap();
        assert_eq!(
            ix.event(id).unwrap().unwrap().zones,
            vec!["door".to_string()]
        );
        assert!(ix.thumbnail(id).unwrap().is_some());
        assert_eq!(ix.motion_minutes(1, m0, m0 + 60_000_000).count(), 1);
    }
}
