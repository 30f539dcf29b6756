//! The committer: the one thread that writes recording state to the index.
//!
//! Writers send it records whose bytes they have already fsynced; it applies them in
//! batches (group commit: one sled flush per tick for all cameras) and runs retention,
//! so that index updates and deletions never race. Deletion order: the index entry is
//! removed and the file listed in `garbage` in one batch, the batch is flushed, then the
//! file is unlinked and its garbage entry dropped. A crash in between leaves a garbage
//! entry that startup finishes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::writer::CommitMsg;
use crate::index::{Index, Op, SegmentRecord};
use crate::status::{SharedStatus, now_us};

#[derive(Clone, Debug)]
pub struct RetentionPolicy {
    pub dir: PathBuf,
    pub retain_days: Option<f64>,
    pub max_bytes: Option<u64>,
    pub min_free: Option<u64>,
}

pub struct Committer {
    index: Index,
    status: SharedStatus,
    policy: RetentionPolicy,
    tick: Duration,
    /// Committed bytes of all indexed segments.
    total_bytes: u64,
    segments: u64,
    /// Bytes of open segments as last committed, to keep `total_bytes` exact.
    open_bytes: HashMap<(u32, i64), u64>,
}

/// How often retention runs when nothing forces it.
const RETENTION_EVERY: Duration = Duration::from_secs(10);

impl Committer {
    pub fn new(
        index: Index,
        status: SharedStatus,
        policy: RetentionPolicy,
        tick: Duration,
    ) -> crate::index::Result<Self> {
        let mut total = 0;
        let mut n = 0;
        for r in index.all_segments() {
            let r = r?;
            total += r.bytes;
            n += 1;
        }
        status.storage(|s| {
            s.dir = policy.dir.display().to_string();
            s.total_bytes = total;
            s.segments = n;
            s.max_bytes = policy.max_bytes;
            s.retain_days = policy.retain_days;
        });
        Ok(Committer {
            index,
            status,
            policy,
            tick,
            total_bytes: total,
            segments: n,
            open_bytes: HashMap::new(),
        })
    }

    pub fn run(mut self, rx: Receiver<CommitMsg>) {
        let mut last_retention = Instant::now() - RETENTION_EVERY;
        let mut shutting_down = false;
        while !shutting_down {
            let mut puts = Vec::new();
            let mut disk_full = false;
            let deadline = Instant::now() + self.tick;
            loop {
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(CommitMsg::Put(r)) => puts.push(r),
                    Ok(CommitMsg::DiskFull) => disk_full = true,
                    Ok(CommitMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                        shutting_down = true;
                        while let Ok(m) = rx.try_recv() {
                            if let CommitMsg::Put(r) = m {
                                puts.push(r);
                            }
                        }
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
            if !puts.is_empty()
                && let Err(e) = self.commit(puts)
            {
                tracing::error!("index commit failed: {e}");
                self.status.storage(|s| {
                    s.last_error = Some(format!("index commit: {e}"));
                    s.last_error_at = Some(crate::time_fmt::rfc3339(now_us()));
                });
            }
            if disk_full {
                self.status.storage(|s| {
                    s.disk_full_events += 1;
                    s.last_error = Some("disk full: deleting oldest recordings".into());
                    s.last_error_at = Some(crate::time_fmt::rfc3339(now_us()));
                });
                if let Err(e) = self.delete_oldest("disk full") {
                    tracing::error!("retention: {e}");
                }
            }
            // The byte limit is a cheap comparison: enforce it on every tick.
            if let Err(e) = self.enforce_max_bytes() {
                tracing::error!("retention: {e}");
            }
            if disk_full || last_retention.elapsed() >= RETENTION_EVERY {
                last_retention = Instant::now();
                if let Err(e) = self.retention(now_us()) {
                    tracing::error!("retention: {e}");
                }
                self.status
                    .storage(|s| s.index_bytes = self.index.size_on_disk());
            }
        }
        if let Err(e) = self.index.flush() {
            tracing::error!("final index flush failed: {e}");
        }
    }

    fn commit(&mut self, puts: Vec<SegmentRecord>) -> crate::index::Result<()> {
        let mut ops = Vec::with_capacity(puts.len());
        for r in puts {
            let key = (r.camera_id, r.start_us);
            let old = match self.open_bytes.get(&key) {
                Some(b) => Some(*b),
                None => self
                    .index
                    .get_segment(r.camera_id, r.start_us)?
                    .map(|o| o.bytes),
            };
            if r.frames == 0 && !r.is_open() {
                // Closed without a playable frame: the writer removed the file.
                self.open_bytes.remove(&key);
                if let Some(b) = old {
                    self.total_bytes -= b;
                    self.segments -= 1;
                    ops.push(Op::DeleteSegment {
                        camera_id: r.camera_id,
                        start_us: r.start_us,
                        file: r.file.clone(),
                    });
                    ops.push(Op::ForgetGarbage(r.file));
                }
                continue;
            }
            match old {
                Some(b) => self.total_bytes = self.total_bytes + r.bytes - b,
                None => {
                    self.total_bytes += r.bytes;
                    self.segments += 1;
                }
            }
            if r.is_open() {
                self.open_bytes.insert(key, r.bytes);
            } else {
                self.open_bytes.remove(&key);
            }
            ops.push(Op::PutSegment(r));
        }
        self.index.commit(&ops)?;
        let (t, n) = (self.total_bytes, self.segments);
        self.status.storage(|s| {
            s.total_bytes = t;
            s.segments = n;
        });
        Ok(())
    }

    /// Deletes by age, then by total bytes, then by free space; oldest first, never an
    /// open or held segment.
    pub fn retention(&mut self, now: i64) -> crate::index::Result<()> {
        if let Some(days) = self.policy.retain_days {
            let cutoff = now - (days * 86_400e6) as i64;
            for (_, id) in self.index.cameras()? {
                let mut doomed = Vec::new();
                for r in self.index.camera_segments(id) {
                    let r = r?;
                    if r.end_us > cutoff {
                        break;
                    }
                    if !r.is_open() && !self.index.is_held(id, r.start_us, r.end_us)? {
                        doomed.push(r);
                    }
                }
                for r in doomed {
                    self.delete(r, "age")?;
                }
            }
        }
        self.enforce_max_bytes()?;
        if let Some(min_free) = self.policy.min_free {
            while free_bytes(&self.policy.dir).is_some_and(|f| f < min_free) {
                if !self.delete_oldest("min_free")? {
                    break;
                }
            }
        }
        let free = free_bytes(&self.policy.dir);
        self.status.storage(|s| s.free_bytes = free);
        Ok(())
    }

    fn enforce_max_bytes(&mut self) -> crate::index::Result<()> {
        if let Some(max) = self.policy.max_bytes {
            while self.total_bytes > max {
                if !self.delete_oldest("max_bytes")? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Deletes the oldest deletable segment across all cameras; false if there is none.
    fn delete_oldest(&mut self, why: &str) -> crate::index::Result<bool> {
        let mut best: Option<SegmentRecord> = None;
        for (_, id) in self.index.cameras()? {
            // The first closed, unheld segment of this camera; bounded look-ahead so a long
            // hold cannot make this a full scan.
            for r in self.index.camera_segments(id).take(1000) {
                let r = r?;
                if r.is_open() || self.index.is_held(id, r.start_us, r.end_us)? {
                    continue;
                }
                if best.as_ref().is_none_or(|b| r.start_us < b.start_us) {
                    best = Some(r);
                }
                break;
            }
        }
        match best {
            Some(r) => {
                self.delete(r, why)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn delete(&mut self, r: SegmentRecord, why: &str) -> crate::index::Result<()> {
        tracing::info!(file = %r.file, bytes = r.bytes, "retention ({why}): deleting segment");
        let op = Op::DeleteSegment {
            camera_id: r.camera_id,
            start_us: r.start_us,
            file: r.file.clone(),
        };
        let path = self.policy.dir.join(&r.file);
        match self.index.commit(std::slice::from_ref(&op)) {
            Ok(()) => unlink(&path)?,
            Err(e) if e.is_disk_full() => {
                // The index cannot record the deletion because the disk is full (the index
                // shares it). Free the space first, then record it. A crash in between
                // leaves an entry whose file is gone, which start-up recovery drops.
                tracing::warn!(
                    "index full; deleting {} before indexing the deletion",
                    r.file
                );
                unlink(&path)?;
                self.index.commit(&[op])?;
            }
            Err(e) => return Err(e),
        }
        self.index.apply(&[Op::ForgetGarbage(r.file.clone())])?;
        self.total_bytes -= r.bytes;
        self.segments -= 1;
        let (t, n) = (self.total_bytes, self.segments);
        self.status.storage(|s| {
            s.total_bytes = t;
            s.segments = n;
            s.deleted_segments += 1;
            s.deleted_bytes += r.bytes;
        });
        Ok(())
    }
}

/// Removes a segment file and, if it was the last, its day directory. A file that cannot
/// be removed stays listed in `garbage`, and start-up retries it.
fn unlink(path: &std::path::Path) -> crate::index::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(day) = path.parent() {
                let _ = std::fs::remove_dir(day); // only succeeds when empty
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot delete {}: {e}", path.display()),
    }
    Ok(())
}

/// Bytes available to unprivileged writers on the filesystem holding `dir`.
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{EndReason, Keyframe};
    use std::sync::Arc;

    fn rec(cam: u32, start_s: i64, bytes: u64, reason: EndReason) -> SegmentRecord {
        SegmentRecord {
            camera_id: cam,
            file: format!("c{cam}/d/{start_s}.mp4"),
            start_us: start_s * 1_000_000,
            end_us: (start_s + 10) * 1_000_000,
            duration_90k: 900_000,
            bytes,
            frames: 150,
            init_len: 700,
            mehd_offset: 600,
            keyframes: vec![Keyframe {
                t_90k: 0,
                offset: 700,
            }],
            codec: "avc1.64001F".into(),
            width: 640,
            height: 360,
            end_reason: reason,
            run: 1,
        }
    }

    fn setup(policy: impl FnOnce(PathBuf) -> RetentionPolicy) -> (tempfile::TempDir, Committer) {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::temporary().unwrap();
        assert_eq!(ix.camera_id("a").unwrap(), 1);
        assert_eq!(ix.camera_id("b").unwrap(), 2);
        let c = Committer::new(
            ix,
            Arc::new(crate::status::Status::default()),
            policy(dir.path().to_owned()),
            Duration::from_millis(10),
        )
        .unwrap();
        (dir, c)
    }

    fn put(c: &mut Committer, dir: &std::path::Path, r: SegmentRecord) {
        let p = dir.join(&r.file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, vec![0u8; r.bytes as usize]).unwrap();
        c.commit(vec![r]).unwrap();
    }

    fn remaining(c: &Committer) -> Vec<(u32, i64)> {
        c.index
            .all_segments()
            .map(|r| r.unwrap())
            .map(|r| (r.camera_id, r.start_us / 1_000_000))
            .collect()
    }

    #[test]
    fn max_bytes_deletes_oldest_first_across_cameras_never_open() {
        let (dir, mut c) = setup(|dir| RetentionPolicy {
            dir,
            retain_days: None,
            max_bytes: Some(3500),
            min_free: None,
        });
        let d = dir.path();
        put(&mut c, d, rec(1, 0, 1000, EndReason::Rotation));
        put(&mut c, d, rec(2, 5, 1000, EndReason::Rotation));
        put(&mut c, d, rec(1, 10, 1000, EndReason::Rotation));
        put(&mut c, d, rec(2, 15, 1000, EndReason::Rotation));
        put(&mut c, d, rec(1, 20, 1000, EndReason::Open));
        assert_eq!(c.total_bytes, 5000);
        c.retention(0).unwrap();
        assert_eq!(remaining(&c), vec![(1, 10), (1, 20), (2, 15)]);
        assert_eq!(c.total_bytes, 3000);
        assert!(!d.join("c1/d/0.mp4").exists() && !d.join("c2/d/5.mp4").exists());
        assert!(d.join("c1/d/10.mp4").exists());
        assert!(c.index.garbage().unwrap().is_empty());
        // Only the open segment is left above the limit: it is never deleted.
        c.policy.max_bytes = Some(10);
        c.retention(0).unwrap();
        assert_eq!(remaining(&c), vec![(1, 20)]);
    }

    #[test]
    fn age_deletes_segments_that_ended_before_the_cutoff() {
        let (dir, mut c) = setup(|dir| RetentionPolicy {
            dir,
            retain_days: Some(1.0),
            max_bytes: None,
            min_free: None,
        });
        let d = dir.path();
        let day = 86_400;
        put(&mut c, d, rec(1, 0, 10, EndReason::Rotation));
        put(&mut c, d, rec(1, day - 10, 10, EndReason::Rotation)); // ends at `day`
        put(&mut c, d, rec(2, day, 10, EndReason::Rotation));
        c.retention((2 * day) * 1_000_000).unwrap();
        assert_eq!(remaining(&c), vec![(2, day)]);
    }

    #[test]
    fn growing_open_segment_is_counted_once() {
        let (dir, mut c) = setup(|dir| RetentionPolicy {
            dir,
            retain_days: None,
            max_bytes: None,
            min_free: None,
        });
        let d = dir.path();
        put(&mut c, d, rec(1, 0, 100, EndReason::Open));
        put(&mut c, d, rec(1, 0, 300, EndReason::Open));
        put(&mut c, d, rec(1, 0, 500, EndReason::Rotation));
        assert_eq!((c.total_bytes, c.segments), (500, 1));
    }
}
