//! The committer: the one thread that writes recording state to the index.
//!
//! Writers send it records whose bytes they have already fsynced; it applies them in
//! batches (group commit: one sled flush per tick for all cameras) and runs retention,
//! so that index updates and deletions never race. Deletion order: the index entry is
//! removed and the file listed in `garbage` in one batch, the batch is flushed, then the
//! file is unlinked and its garbage entry dropped. A crash in between leaves a garbage
//! entry that startup finishes.
//!
//! Refused records are kept: when a commit fails (the index broke and is being reopened,
//! see [`Index`]), the records stay pending and the next tick commits them again,
//! merged with newer ones (a newer record of the same segment replaces the older), so
//! none is lost or indexed twice. Free space: the filesystem is kept above `min_free`
//! (checked every tick), plus the index's reserve while that is released after a full
//! disk; the reserve is allocated again once there is room.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::writer::CommitMsg;
use crate::base::clock::Clock;
use crate::base::time::now_us;
use crate::index::{ClockStep, Index, Op, SegmentRecord};
use crate::status::SharedStatus;
use crate::storage::Layout;

#[derive(Clone, Debug)]
pub struct RetentionPolicy {
    /// The storage directory whose segments retention deletes.
    pub storage: Layout,
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
    /// Records received and not yet committed (the newest per segment).
    pending: BTreeMap<(u32, i64), SegmentRecord>,
    /// The last error logged, and when: a broken index fails every tick, the log says so
    /// once in a while.
    last_logged: Option<(String, Instant)>,
    /// Where time comes from (the system's clocks, or a simulated clock in tests).
    clock: Clock,
    /// The wall clock and the monotonic clock at the last tick, to see the wall clock step.
    clocks: (i64, Duration),
    /// Wall clock steps seen (persisted in the index), and the ticket of their last
    /// write until a flush covers it.
    clock_steps: Vec<ClockStep>,
    steps_ticket: Option<crate::index::Ticket>,
    /// `Index::reopens` when the totals were last counted.
    counted_at_reopens: u64,
    /// Deletion candidates from the last scan, oldest first, for when the index cannot
    /// be read on a full disk.
    fallback: std::collections::VecDeque<SegmentRecord>,
    /// Deletions done while the index was unavailable, to be indexed.
    unindexed: Vec<Op>,
}

/// Deletion candidates kept for a full disk on which the index cannot be read.
const FALLBACK_CANDIDATES: usize = 16;

/// How long after a forward clock step the segment open then may still end, stamped by
/// the clock before it (the timing model breaks the timeline within a few seconds).
const STEP_MARGIN_US: i64 = 60_000_000;

/// A wall clock that moves this much more (or less) than the monotonic clock between two
/// ticks has stepped (µs): NTP slews by far less, a manual `date -s` or a VM restore
/// steps.
pub const CLOCK_STEP_US: i64 = 2_000_000;

/// How often the same error is logged again.
const LOG_AGAIN_EVERY: Duration = Duration::from_secs(30);

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
        let clock_steps = index.clock_steps()?;
        let (reserve, held) = (index.reserve_bytes(), index.reserve_held());
        status.storage(|s| {
            s.index_available = true;
            s.index_reserve_held = held;
            s.clock_steps = clock_steps.clone();
            s.min_free = policy.min_free;
            s.index_reserve_bytes = reserve;
            s.dir = policy.storage.dir().display().to_string();
            s.total_bytes = total;
            s.segments = n;
            s.max_bytes = policy.max_bytes;
            s.retain_days = policy.retain_days;
        });
        let clock = crate::base::clock::real();
        Ok(Committer {
            index,
            status,
            policy,
            tick,
            total_bytes: total,
            segments: n,
            open_bytes: HashMap::new(),
            pending: BTreeMap::new(),
            last_logged: None,
            clocks: (now_us(), clock.monotonic()),
            clock,
            clock_steps,
            steps_ticket: None,
            counted_at_reopens: 0,
            fallback: Default::default(),
            unindexed: Vec::new(),
        })
    }

    /// Takes its time from `clock` (tests pass a simulated one).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clocks = (clock.realtime_us(), clock.monotonic());
        self.clock = clock;
        self
    }

    pub fn run(mut self, rx: Receiver<CommitMsg>) {
        let mut last_retention: Option<Duration> = None;
        let mut shutting_down = false;
        while !shutting_down {
            let mut disk_full = false;
            let deadline = Instant::now() + self.tick;
            loop {
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(CommitMsg::Put(r)) => self.receive(r),
                    Ok(CommitMsg::DiskFull) => disk_full = true,
                    Ok(CommitMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                        shutting_down = true;
                        while let Ok(m) = rx.try_recv() {
                            if let CommitMsg::Put(r) = m {
                                self.receive(r);
                            }
                        }
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
            if self.pending.is_empty() && !self.unindexed.is_empty() {
                if let Err(e) = self.catch_up() {
                    self.error(format!("indexing deletions: {e}"));
                }
            } else if self.pending.is_empty() {
                // Others' writes (events, motion history) become durable here too.
                if let Err(e) = self.index.flush() {
                    self.error(format!("index flush: {e}"));
                }
            } else if let Err(e) = self.commit_pending() {
                let n = self.pending.len();
                self.error(format!("index commit ({n} records kept for retry): {e}"));
            }
            self.watch_clock();
            disk_full |= self.index.take_disk_full();
            if disk_full {
                // The index releases its reserve itself when it meets the full disk.
                self.status.storage(|s| {
                    s.disk_full_events += 1;
                    s.last_error = Some("disk full: deleting oldest recordings".into());
                    s.last_error_us = Some(now_us());
                });
                if let Err(e) = self.delete_oldest("disk full") {
                    self.error(format!("retention: {e}"));
                }
            }
            // The byte limit and free space are cheap to check: every tick.
            if let Err(e) = self
                .enforce_max_bytes()
                .and_then(|()| self.enforce_min_free())
            {
                self.error(format!("retention: {e}"));
            }
            let mono = self.clock.monotonic();
            if disk_full || last_retention.is_none_or(|t| mono.saturating_sub(t) >= RETENTION_EVERY)
            {
                last_retention = Some(mono);
                if let Err(e) = self.retention(self.clock.realtime_us()) {
                    self.error(format!("retention: {e}"));
                }
                let (bytes, reopens, available) = (
                    self.index.size_on_disk(),
                    self.index.reopens(),
                    self.index.is_available(),
                );
                self.status.storage(|s| {
                    s.index_bytes = bytes;
                    s.index_reopens = reopens;
                    s.index_available = available;
                });
            }
            self.restore_reserve();
            let (pending, held) = (self.pending.len() as u64, self.index.reserve_held());
            self.status.storage(|s| {
                s.index_pending_records = pending;
                s.index_reserve_held = held;
            });
        }
        // Shutting down: a few more tries for refused records (the index may be reopening).
        for _ in 0..20 {
            if self.pending.is_empty() || self.commit_pending().is_ok() {
                break;
            }
            std::thread::sleep(crate::index::REOPEN_EVERY);
        }
        if !self.pending.is_empty() {
            tracing::error!(
                "{} index records could not be committed before exit; start-up recovery \
                 rebuilds them from the segment files",
                self.pending.len()
            );
        }
        if let Err(e) = self.index.flush() {
            tracing::error!("final index flush failed: {e}");
        }
    }

    /// Notices a step of the wall clock since the last tick: logged, shown in the storage
    /// status, kept in the index. Recording itself follows the recorder's timing model
    /// (ARCHITECTURE.md, "Clock steps"); this is for retention and the record.
    fn watch_clock(&mut self) {
        // The steps' last write is written again until a flush covers it.
        if let Some(t) = self.steps_ticket {
            if self.index.is_durable(&t) {
                self.steps_ticket = None;
            } else if self.index.is_lost(&t) {
                self.save_clock_steps();
            }
        }
        let (wall, mono) = (self.clock.realtime_us(), self.clock.monotonic());
        let expected = self.clocks.0 + mono.saturating_sub(self.clocks.1).as_micros() as i64;
        self.clocks = (wall, mono);
        let delta = wall - expected;
        if delta.abs() < CLOCK_STEP_US {
            return;
        }
        // Recordings stamped by the clock before the step end by then, or by the newest
        // end indexed (ahead of the clock after an earlier step back).
        let newest = self
            .index
            .newest_end_us()
            .ok()
            .flatten()
            .unwrap_or(i64::MIN);
        let step = ClockStep {
            at_us: wall,
            delta_us: delta,
            recorded_until_us: newest.max(expected),
        };
        tracing::warn!(
            "the system clock stepped {} by {:.1} s (now {}): recordings keep their times; \
             retention ages those made before a forward step by the time that really passed",
            if delta > 0 { "forward" } else { "back" },
            delta.abs() as f64 / 1e6,
            crate::base::time::rfc3339(wall)
        );
        self.clock_steps.push(step);
        let drop = self.clock_steps.len().saturating_sub(64);
        self.clock_steps.drain(..drop);
        self.save_clock_steps();
        let shown = self.clock_steps.clone();
        self.status.storage(|s| s.clock_steps = shown);
    }

    fn save_clock_steps(&mut self) {
        let generation = self.index.generation();
        match self.index.put_clock_steps(&self.clock_steps) {
            Ok(()) => self.steps_ticket = Some(self.index.ticket(generation)),
            Err(e) => {
                self.steps_ticket = Some(crate::index::Ticket::REFUSED);
                self.error(format!("recording a clock step: {e}"));
            }
        }
    }

    /// `end_us` of a segment moved by the forward clock steps made after it was recorded
    /// (it ended by the newest end at the step, plus [`STEP_MARGIN_US`] for the segment
    /// that was open then): its age is then the time that really passed. A segment
    /// recorded just after a small step may be counted as before it: it is kept that
    /// step longer, never shorter.
    fn true_end(&self, end_us: i64) -> i64 {
        (self.clock_steps.iter())
            .filter(|s| {
                s.delta_us > 0 && end_us <= s.recorded_until_us.saturating_add(STEP_MARGIN_US)
            })
            .fold(end_us, |e, s| e.saturating_add(s.delta_us))
    }

    /// Logs an error (the same one at most every [`LOG_AGAIN_EVERY`]) and shows it in
    /// the storage status.
    fn error(&mut self, msg: String) {
        let again = match &self.last_logged {
            Some((m, at)) => *m != msg || at.elapsed() >= LOG_AGAIN_EVERY,
            None => true,
        };
        if again {
            tracing::error!("{msg}");
            self.last_logged = Some((msg.clone(), Instant::now()));
        }
        self.status.storage(|s| {
            s.last_error = Some(msg);
            s.last_error_us = Some(now_us());
        });
    }

    fn receive(&mut self, r: SegmentRecord) {
        self.pending.insert((r.camera_id, r.start_us), r);
    }

    #[cfg(test)]
    fn commit(&mut self, puts: Vec<SegmentRecord>) -> crate::index::Result<()> {
        for r in puts {
            self.receive(r);
        }
        self.commit_pending()
    }

    /// Commits the pending records in one batch; on success they are durable and
    /// counted, on failure nothing changes and they stay pending.
    fn commit_pending(&mut self) -> crate::index::Result<()> {
        self.catch_up()?;
        let mut ops = Vec::with_capacity(self.pending.len());
        let (mut total, mut n) = (self.total_bytes, self.segments);
        let mut open_changes = Vec::with_capacity(self.pending.len());
        for (&key, r) in &self.pending {
            let old = match self.open_bytes.get(&key) {
                Some(b) => Some(*b),
                None => self
                    .index
                    .get_segment(r.camera_id, r.start_us)?
                    .map(|o| o.bytes),
            };
            if r.frames == 0 && !r.is_open() {
                // Closed without a playable frame: the writer removed the file.
                open_changes.push((key, None));
                if let Some(b) = old {
                    total = total.saturating_sub(b);
                    n = n.saturating_sub(1);
                    ops.extend(Op::forget(r));
                }
                continue;
            }
            match old {
                Some(b) => total = (total + r.bytes).saturating_sub(b),
                None => {
                    total += r.bytes;
                    n += 1;
                }
            }
            open_changes.push((key, r.is_open().then_some(r.bytes)));
            ops.push(Op::PutSegment(r.clone()));
        }
        self.index.commit(&ops)?;
        self.pending.clear();
        for (key, open) in open_changes {
            match open {
                Some(b) => self.open_bytes.insert(key, b),
                None => self.open_bytes.remove(&key),
            };
        }
        (self.total_bytes, self.segments) = (total, n);
        self.status.storage(|s| {
            s.total_bytes = total;
            s.segments = n;
        });
        Ok(())
    }

    /// Indexes the deletions made while the index was unavailable, then, after a reopen,
    /// counts from what the store holds (it may hold a refused batch after all: sled
    /// flushed it before the error), not from what we believed.
    fn catch_up(&mut self) -> crate::index::Result<()> {
        if !self.unindexed.is_empty() {
            self.index.commit(&self.unindexed)?;
            self.unindexed.clear();
        }
        let reopens = self.index.reopens();
        if reopens != self.counted_at_reopens {
            self.recount()?;
            self.counted_at_reopens = reopens;
        }
        Ok(())
    }

    /// Totals and open segments from the index itself.
    fn recount(&mut self) -> crate::index::Result<()> {
        let (mut total, mut n, mut open) = (0, 0, HashMap::new());
        for r in self.index.all_segments() {
            let r = r?;
            total += r.bytes;
            n += 1;
            if r.is_open() {
                open.insert((r.camera_id, r.start_us), r.bytes);
            }
        }
        (self.total_bytes, self.segments, self.open_bytes) = (total, n, open);
        Ok(())
    }

    /// Free space to keep: `min_free`, plus the index's reserve while it is released
    /// (so that retention makes room to allocate it again).
    fn free_target(&self) -> u64 {
        let reserve = if self.index.reserve_held() {
            0
        } else {
            self.index.reserve_bytes()
        };
        self.policy.min_free.unwrap_or(0) + reserve
    }

    fn enforce_min_free(&mut self) -> crate::index::Result<()> {
        let target = self.free_target();
        if target == 0 {
            return Ok(());
        }
        // A floor that deleting every recording could not reach (another program fills
        // the disk) is not pursued: it would empty the recorder and gain nothing that a
        // real full disk would not take back at once. Recording goes on into the space
        // left; a full disk then deletes the oldest as it always does. With the index
        // down the disk is full in earnest: the fallback below frees what it can.
        // (The index's reserve, which retention restores too, is left out of this
        // comparison: on a small disk it can outweigh the recordings.)
        let floor = self.policy.min_free.unwrap_or(0);
        let free = self.policy.storage.free_bytes();
        if self.index.is_available()
            && free.is_some_and(|f| floor.saturating_sub(f) > self.total_bytes)
        {
            self.error(format!(
                "free space is below storage.min_free ({floor} bytes) by more than all \
                 recordings hold: another program is filling the disk; recordings are \
                 kept until it is full"
            ));
            return Ok(());
        }
        while self.policy.storage.free_bytes().is_some_and(|f| f < target) {
            match self.delete_oldest("min_free") {
                Ok(true) => {}
                Ok(false) => break,
                // The index cannot even be read (it could not reopen on the full disk):
                // free space from what the last scan found deletable, index it later.
                Err(e) => {
                    if !self.delete_without_index()? {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// The oldest deletable segments (closed, not held), up to [`FALLBACK_CANDIDATES`]
    /// across cameras, for [`Committer::delete_without_index`].
    fn refresh_fallback(&mut self) -> crate::index::Result<()> {
        let mut found = Vec::new();
        for (_, id) in self.index.cameras()? {
            let mut n = 0;
            for r in self.index.camera_segments(id).take(1000) {
                let r = r?;
                if r.is_open() || self.index.is_held(id, r.start_us, r.end_us)? {
                    continue;
                }
                found.push(r);
                n += 1;
                if n == FALLBACK_CANDIDATES {
                    break;
                }
            }
        }
        found.sort_by_key(|r| r.start_us);
        found.truncate(FALLBACK_CANDIDATES);
        self.fallback = found.into();
        Ok(())
    }

    /// Deletes the oldest candidate of the last scan while the index is unavailable: the
    /// file now, its index entry once the index is back ([`Committer::unindexed`]). Holds
    /// cannot have been placed meanwhile (placing one needs the index); leases are
    /// respected. False if there is no candidate left.
    fn delete_without_index(&mut self) -> crate::index::Result<bool> {
        while let Some(r) = self.fallback.pop_front() {
            let key = (r.camera_id, r.start_us);
            if !self.index.begin_delete(key) {
                continue;
            }
            tracing::warn!(
                file = %r.file,
                "index unavailable on a full disk: deleting the oldest segment now, \
                 indexing the deletion later"
            );
            self.policy.storage.unlink_segment(&r.file);
            self.index.end_delete(key);
            self.unindexed.extend(Op::forget(&r));
            self.total_bytes = self.total_bytes.saturating_sub(r.bytes);
            self.segments = self.segments.saturating_sub(1);
            self.deleted(r.bytes);
            return Ok(true);
        }
        Ok(false)
    }

    /// Allocates the index's reserve again once the disk has room for it and `min_free`.
    fn restore_reserve(&mut self) {
        if self.index.reserve_held() || self.index.reserve_bytes() == 0 {
            return;
        }
        let need = self.index.reserve_bytes() + self.policy.min_free.unwrap_or(0);
        if self.policy.storage.free_bytes().is_some_and(|f| f >= need)
            && self.index.restore_reserve()
        {
            tracing::info!("index reserve allocated again");
        }
    }

    /// Deletes by age, then by total bytes, then by free space; oldest first, never an
    /// open or held segment, nor one a reader leases (a clip being served).
    pub fn retention(&mut self, now: i64) -> crate::index::Result<()> {
        if let Some(days) = self.policy.retain_days {
            let cutoff = now - (days * 86_400e6) as i64;
            for (_, id) in self.index.cameras()? {
                let mut doomed = Vec::new();
                for r in self.index.camera_segments(id) {
                    let r = r?;
                    if self.true_end(r.end_us) > cutoff {
                        break;
                    }
                    if !r.is_open() && !self.index.is_held(id, r.start_us, r.end_us)? {
                        doomed.push(r);
                    }
                }
                for r in doomed {
                    // A leased segment is deleted by a later pass, once its reader is done.
                    self.delete(r, "age")?;
                }
            }
        }
        self.enforce_max_bytes()?;
        self.enforce_min_free()?;
        self.refresh_fallback()?;
        let free = self.policy.storage.free_bytes();
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
                if r.is_open()
                    || self.index.is_leased((id, r.start_us))
                    || self.index.is_held(id, r.start_us, r.end_us)?
                {
                    continue;
                }
                if best.as_ref().is_none_or(|b| r.start_us < b.start_us) {
                    best = Some(r);
                }
                break;
            }
        }
        match best {
            Some(r) => self.delete(r, why),
            None => Ok(false),
        }
    }

    /// Deletes one segment, unless a reader leases it (then false: a later pass does).
    fn delete(&mut self, r: SegmentRecord, why: &str) -> crate::index::Result<bool> {
        let key = (r.camera_id, r.start_us);
        if !self.index.begin_delete(key) {
            return Ok(false);
        }
        let done = self.delete_unleased(r, why);
        self.index.end_delete(key);
        done.map(|()| true)
    }

    fn delete_unleased(&mut self, r: SegmentRecord, why: &str) -> crate::index::Result<()> {
        tracing::info!(file = %r.file, bytes = r.bytes, "retention ({why}): deleting segment");
        let op = Op::delete(&r);
        let path = self.policy.storage.segment(&r.file);
        match self.index.commit(std::slice::from_ref(&op)) {
            Ok(()) => Layout::unlink(&path),
            Err(e) if e.is_disk_full() => {
                // The index cannot record the deletion because the disk is full (the index
                // shares it; it releases its reserve and reopens). Free the space first,
                // then record it. A crash in between, or an index that is not back yet,
                // leaves an entry whose file is gone: start-up recovery drops it, and the
                // next deletion pass picks it first (it is the oldest).
                tracing::warn!(
                    "index full; deleting {} before indexing the deletion",
                    r.file
                );
                Layout::unlink(&path);
                self.commit_retrying(&op)?;
            }
            Err(e) => return Err(e),
        }
        // The deletion is committed: count it whatever happens next (a garbage entry
        // left behind is finished at start-up).
        self.total_bytes = self.total_bytes.saturating_sub(r.bytes);
        self.segments = self.segments.saturating_sub(1);
        if let Err(e) = self.index.apply(&[Op::ForgetGarbage(r.file.clone())]) {
            tracing::warn!(
                "forgetting {} in garbage: {e} (start-up finishes it)",
                r.file
            );
        }
        self.deleted(r.bytes);
        Ok(())
    }

    /// A segment of `bytes` was deleted (the totals already updated): the status says so.
    fn deleted(&self, bytes: u64) {
        let (t, n) = (self.total_bytes, self.segments);
        self.status.storage(|s| {
            s.total_bytes = t;
            s.segments = n;
            s.deleted_segments += 1;
            s.deleted_bytes += bytes;
        });
    }
}

impl Committer {
    /// Commits one op, retrying for up to two seconds while the index reopens.
    fn commit_retrying(&self, op: &Op) -> crate::index::Result<()> {
        let mut tries = 0;
        loop {
            match self.index.commit(std::slice::from_ref(op)) {
                Err(crate::index::IndexError::Unavailable(_)) | Err(_) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(crate::index::REOPEN_EVERY);
                }
                r => return r,
            }
        }
    }
}

/// `storage.min_free` when the configuration leaves it out: 2% of the filesystem, at
/// most 4 GiB (an hour of 64 cameras at 150 kB/s is 35 GB; 4 GiB is minutes of headroom
/// for the rest of the system, not a recording budget).
pub fn default_min_free(fs_bytes: u64) -> u64 {
    (fs_bytes / 50).min(4 << 30)
}

/// The index's disk reserve for a filesystem of `fs_bytes`: 1%, between 2 MiB (four of
/// sled's 512 KiB log segments) and 64 MiB (an index of a year's recording of 64
/// cameras grows by far less between a full disk and retention's first deletion).
pub fn default_index_reserve(fs_bytes: u64) -> u64 {
    (fs_bytes / 100).clamp(2 << 20, 64 << 20)
}

#[cfg(test)]
mod tests;
