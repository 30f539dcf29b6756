//! Writes one camera's timeline from its analysis thread: each closed event (with its
//! thumbnail) in one transaction, and the motion history a minute record at a time.
//!
//! The minute being filled is rewritten every [`HISTORY_WRITE_EVERY`] while it has new
//! motion, so a crash loses at most that much history; events are durable at the next
//! index flush (the committer flushes twice a second).

use std::time::{Duration, Instant};

use crate::index::{EventRecord, Index, MotionMinute, MotionSecond, Result};
use crate::motion::detector::FrameResult;
use crate::motion::live::LiveEvent;

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
}

impl Recorder {
    pub fn new(index: Index, camera: &str, zones: &[String]) -> Result<Recorder> {
        let camera_id = index.camera_id(camera)?;
        let zone_ids = zones
            .iter()
            .map(|z| index.zone_id(camera_id, z))
            .collect::<Result<Vec<u32>>>()?;
        Ok(Recorder {
            index,
            camera_id,
            zone_names: zones.to_vec(),
            zone_ids,
            minute: None,
            last_write: Instant::now(),
        })
    }

    pub fn camera_id(&self) -> u32 {
        self.camera_id
    }

    /// Adds one analysed frame at `utc_us` to the motion history.
    pub fn frame(&mut self, utc_us: i64, res: &FrameResult) -> Result<()> {
        let start = utc_us.div_euclid(MINUTE_US) * MINUTE_US;
        if self.minute.as_ref().is_some_and(|(t, _, _)| *t != start) {
            self.save()?;
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
                for &z in &res.zones {
                    s.zones |= 1 << z;
                }
                *dirty = true;
            }
        }
        if self.last_write.elapsed() >= HISTORY_WRITE_EVERY {
            self.save()?;
        }
        Ok(())
    }

    /// Writes the minute being filled if it changed.
    pub fn save(&mut self) -> Result<()> {
        self.last_write = Instant::now();
        if let Some((t, m, dirty)) = &mut self.minute
            && *dirty
        {
            self.index.put_motion_minute(self.camera_id, *t, m)?;
            *dirty = false;
        }
        Ok(())
    }

    /// An id for an event that just opened (stored when it closes).
    pub fn new_event_id(&self) -> Result<u64> {
        self.index.new_event_id()
    }

    /// Stores a thumbnail ahead of its event (an open event's first frame, for alerts).
    pub fn put_thumbnail(&self, id: u64, jpeg: &[u8]) -> Result<()> {
        self.index.put_thumbnail(id, jpeg)
    }

    /// Stores a closed event under `id` with its JPEG thumbnail.
    pub fn event(&mut self, id: u64, ev: &LiveEvent, thumbnail: Option<Vec<u8>>) -> Result<()> {
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
        self.index.put_events(&[(r, thumbnail)])
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
}
