//! The per-camera segment writer: turns frames into fragmented-MP4 segment files and hands
//! durable progress to the committer.
//!
//! One OS thread per camera (never on the async executor). Frames arrive through a bounded
//! channel from the ingest task. The write order per segment is:
//! create file (O_EXCL) -> write init -> fsync file and directory -> index the segment as
//! open; then per fragment: write -> (every `commit_interval`) fsync -> send the updated
//! record to the committer, which commits it to sled. The index therefore never describes
//! bytes that are not on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use crate::base::clock::Clock;

use super::fmp4::{self, Sample};
use crate::index::{EndReason, Keyframe, SegmentRecord};
use crate::media::{AudioFrame, Break, Frame, StreamMsg, VideoParams};
use crate::status::SharedStatus;

/// What the committer receives.
pub enum CommitMsg {
    /// Index this record (the bytes it describes are already fsynced).
    Put(SegmentRecord),
    /// A write failed for lack of space: free some now.
    DiskFull,
    /// Flush and exit once every writer has sent its last record.
    Shutdown,
}

pub struct WriterConfig {
    pub camera: String,
    pub camera_id: u32,
    /// Where segment files go.
    pub storage: crate::storage::Layout,
    pub segment_seconds: u32,
    pub commit_interval: Duration,
}

/// Longest a fragment may buffer before it is written out.
const MAX_FRAGMENT_90K: i64 = 90_000;
/// Longest the writer lets frames gather in its queue before handling them.
const GATHER: Duration = Duration::from_millis(250);
/// Pictures dropped within a timeline (to the next keyframe after packet loss) leave the
/// last picture before them on screen for the gap, up to this long (90 kHz, 5 s); a
/// longer gap ends the segment, so it shows as a gap in the recordings.
const MAX_SAMPLE_90K: i64 = 5 * 90_000;
/// Used for the last frame of a run, whose successor never comes, when neither an earlier
/// frame of the run nor the stream's timing info tells its duration.
const DEFAULT_DURATION: u32 = 3_000;

struct OpenSegment {
    file: File,
    path: PathBuf,
    rec: SegmentRecord,
    /// What the index has (durable).
    committed: SegmentRecord,
    seq: u32,
    /// Decode time (recorder timeline) of the segment's first sample.
    start_dts: i64,
    params: Arc<VideoParams>,
    /// Monotonic time of the last fsync (the clock's).
    last_sync: Duration,
    /// Where the next audio sample goes (audio timescale, from the segment's start).
    audio_next: Option<u64>,
}

struct Pending {
    frame: Frame,
}

pub struct SegmentWriter {
    cfg: WriterConfig,
    commit_tx: Sender<CommitMsg>,
    status: SharedStatus,
    seg: Option<OpenSegment>,
    pending: Option<Pending>,
    /// The current fragment: samples with known durations, and their data.
    frag: Vec<(Sample, bytes::Bytes)>,
    /// Decode time of the current fragment's first sample.
    frag_start: Option<i64>,
    last_duration: u32,
    /// Whether `last_duration` was measured in the current run.
    seen_duration: bool,
    waiting_for_key: bool,
    last_open_attempt: Option<Duration>,
    /// Where monotonic time comes from (the system's, or a simulated clock in tests).
    clock: Clock,
    /// A write failed and no segment has opened since (frames are being lost).
    unwritable: bool,
    /// Audio waiting for the fragment that covers its time.
    audio: std::collections::VecDeque<AudioFrame>,
    /// A segment just started: its keyframe's leading (RASL) pictures are left out.
    skip_leading: bool,
}

/// Audio is kept at most this long waiting for its video (µs).
const AUDIO_BACKLOG_US: i64 = 10_000_000;
/// An audio frame whose UTC differs from where the previous one ends by more than this
/// starts anew from its UTC (lost packets, a new timeline), µs.
const AUDIO_SLACK_US: i64 = 100_000;

impl SegmentWriter {
    pub fn new(cfg: WriterConfig, commit_tx: Sender<CommitMsg>, status: SharedStatus) -> Self {
        SegmentWriter {
            cfg,
            commit_tx,
            status,
            seg: None,
            pending: None,
            frag: Vec::new(),
            frag_start: None,
            last_duration: DEFAULT_DURATION,
            seen_duration: false,
            waiting_for_key: true,
            last_open_attempt: None,
            clock: crate::base::clock::real(),
            unwritable: false,
            audio: Default::default(),
            skip_leading: false,
        }
    }

    /// Takes its time from `clock` (tests pass a simulated one).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn audio(&mut self, a: AudioFrame) {
        let newest = a.utc_us;
        self.audio.push_back(a);
        while self
            .audio
            .front()
            .is_some_and(|f| newest - f.utc_us > AUDIO_BACKLOG_US)
        {
            self.audio.pop_front();
        }
    }

    /// The audio run of a fragment of `seg` that ends at `end_us` (UTC): the queued
    /// frames before it, on the segment's audio timeline.
    fn audio_run(
        seg: &mut OpenSegment,
        queue: &mut std::collections::VecDeque<AudioFrame>,
        end_us: i64,
    ) -> Option<(fmp4::AudioRun, Vec<bytes::Bytes>)> {
        let rate = seg.params.audio.as_ref()?.timescale as i64;
        let mut run = fmp4::AudioRun {
            base_decode_time: 0,
            samples: Vec::new(),
        };
        let mut data = Vec::new();
        let mut times: Vec<u64> = Vec::new();
        while let Some(f) = queue.front() {
            if f.utc_us >= end_us {
                break;
            }
            let f = queue.pop_front().unwrap();
            if f.utc_us < seg.rec.start_us {
                continue; // before the segment
            }
            let from_utc =
                ((f.utc_us - seg.rec.start_us) as i128 * rate as i128 / 1_000_000) as u64;
            // Continue where the previous frame ended unless its UTC says otherwise.
            let t = match seg.audio_next {
                Some(next)
                    if ((from_utc as i64 - next as i64) * 1_000_000 / rate).abs()
                        <= AUDIO_SLACK_US =>
                {
                    next
                }
                Some(next) if from_utc < next => continue, // overlaps what is written
                _ => from_utc,
            };
            if let Some(last) = run.samples.last_mut() {
                // A gap inside the fragment: the previous frame lasts until this one.
                last.duration = (t - times.last().unwrap()) as u32;
            } else {
                run.base_decode_time = t;
            }
            times.push(t);
            run.samples.push(Sample {
                duration: f.duration,
                size: f.data.len() as u32,
                is_key: true,
                cts_offset: 0,
            });
            seg.audio_next = Some(t + f.duration as u64);
            data.push(f.data);
        }
        (!run.samples.is_empty()).then_some((run, data))
    }

    /// Runs until `Shutdown` or the channel closes.
    ///
    /// Frames are let gather in the queue while the open fragment is not due
    /// ([`SegmentWriter::gather_for`]), so the thread wakes a few times a fragment, not
    /// per frame (measured with 64 cameras: the writers' context switches were a third
    /// of the daemon's CPU). The frame that completes a fragment is handled as it
    /// arrives, so the loss bound does not move.
    pub fn run(mut self, rx: Receiver<StreamMsg>) {
        while let Ok(msg) = rx.recv() {
            if !self.handle(msg) {
                return;
            }
            loop {
                match rx.try_recv() {
                    Ok(msg) => {
                        if !self.handle(msg) {
                            return;
                        }
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        self.end_run(EndReason::Shutdown);
                        return;
                    }
                }
            }
            if let Some(d) = self.gather_for() {
                std::thread::sleep(d);
            }
        }
        self.end_run(EndReason::Shutdown);
    }

    /// How long frames may gather before the open fragment is due: until about a frame
    /// before it reaches [`MAX_FRAGMENT_90K`] (the last picture's decode time on the
    /// camera's clock, which runs with the wall clock), at most [`GATHER`]. `None`
    /// (wait for the next message) when no fragment is open or it is due.
    fn gather_for(&self) -> Option<Duration> {
        let start = self.frag_start?;
        let last = self.pending.as_ref()?.frame.dts_90k;
        let left_90k = start + MAX_FRAGMENT_90K - last - 2 * self.last_duration as i64;
        (left_90k > 0).then(|| GATHER.min(Duration::from_micros(left_90k as u64 * 100 / 9)))
    }

    /// Processes one message; returns false after `Shutdown` (the segment is closed).
    pub fn handle(&mut self, msg: StreamMsg) -> bool {
        match msg {
            StreamMsg::Frame(f) => self.frame(f),
            StreamMsg::Audio(a) => self.audio(a),
            StreamMsg::EndRun => self.end_run(EndReason::Disconnect),
            StreamMsg::Shutdown => {
                self.end_run(EndReason::Shutdown);
                return false;
            }
        }
        true
    }

    fn frame(&mut self, f: Frame) {
        // Lost pictures, a broken timeline or a new session: whatever is open ends here.
        if let Some(why) = f.discontinuity {
            self.end_run(match why {
                Break::Dropped => EndReason::Dropped,
                Break::TimestampJump => EndReason::TimestampJump,
            });
        } else if self
            .pending
            .as_ref()
            .is_some_and(|p| p.frame.timeline != f.timeline)
            || self.seg.as_ref().is_some_and(|s| s.rec.run != f.timeline)
        {
            self.end_run(EndReason::Disconnect);
        }
        // Leading pictures of the CRA that starts the segment cannot be decoded in it:
        // the CRA stays on screen for their time instead.
        if self.skip_leading {
            if f.leading && self.seg.is_some() {
                return;
            }
            if !f.is_key {
                self.skip_leading = false;
            }
        }
        // Give the held-back picture its duration, now that its successor is here.
        if let Some(p) = self.pending.take() {
            let d = f.dts_90k - p.frame.dts_90k;
            if d > 0 && d <= MAX_SAMPLE_90K {
                self.last_duration = d as u32;
                self.seen_duration = true;
                self.push_sample(p.frame, d as u32);
            } else {
                // Pictures were dropped for longer than a still picture may stand in.
                self.pending = Some(p);
                self.end_run(EndReason::Dropped);
            }
        }
        if self.seg.is_none() || self.waiting_for_key {
            if !f.is_key {
                self.unwritten(1);
                return; // nothing plays before a keyframe
            }
            if self.seg.is_none() {
                // Do not hammer a full disk: retry at most once a second.
                let now = self.clock.monotonic();
                if let Some(t) = self.last_open_attempt
                    && now.saturating_sub(t) < Duration::from_secs(1)
                {
                    self.unwritten(1);
                    return;
                }
                self.last_open_attempt = Some(now);
                if let Err(e) = self.open_segment(&f) {
                    self.write_failed(e, "creating segment");
                    self.unwritten(1);
                    return;
                }
                self.unwritable = false;
            }
            self.waiting_for_key = false;
        } else if f.is_key {
            let seg = self.seg.as_ref().unwrap();
            let params_changed = !Arc::ptr_eq(&seg.params, &f.params);
            let long_enough = f.dts_90k - seg.start_dts >= self.cfg.segment_seconds as i64 * 90_000;
            if params_changed || long_enough {
                self.close_segment(if params_changed {
                    EndReason::ParamsChange
                } else {
                    EndReason::Rotation
                });
                if let Err(e) = self.open_segment(&f) {
                    self.write_failed(e, "creating segment");
                    return;
                }
            } else {
                self.flush_fragment();
            }
        } else if let Some(start) = self.frag_start
            && f.dts_90k - start >= MAX_FRAGMENT_90K
        {
            self.flush_fragment();
        }
        if self.seg.is_some() {
            self.pending = Some(Pending { frame: f });
        }
    }

    fn push_sample(&mut self, f: Frame, duration: u32) {
        if self.seg.is_none() {
            return;
        }
        if self.frag.is_empty() {
            self.frag_start = Some(f.dts_90k);
        }
        self.frag.push((
            Sample {
                duration,
                size: f.data.len() as u32,
                is_key: f.is_key,
                cts_offset: f.cts_90k,
            },
            f.data,
        ));
    }

    /// Ends the current run: the held-back frame gets a nominal duration, everything is
    /// written, and the segment is closed.
    fn end_run(&mut self, reason: EndReason) {
        if let Some(p) = self.pending.take() {
            let d = match (self.seen_duration, p.frame.params.nominal_duration) {
                (true, _) => self.last_duration,
                (false, Some(n)) => n,
                (false, None) => DEFAULT_DURATION,
            };
            self.push_sample(p.frame, d);
        }
        if self.seg.is_some() {
            self.close_segment(reason);
        }
        if reason != EndReason::TimestampJump {
            // The session ended: its audio went with its video.
            self.audio.clear();
        }
        self.waiting_for_key = true;
        self.seen_duration = false;
    }

    fn open_segment(&mut self, f: &Frame) -> io::Result<()> {
        let rel = crate::storage::segment_name(&self.cfg.camera, f.utc_us);
        let path = self.cfg.storage.segment(&rel);
        let dir = path.parent().unwrap();
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            sync_dir(dir.parent().unwrap())?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let init = fmp4::init_segment(
            &f.params.sample_entry,
            f.params.width,
            f.params.height,
            f.params.audio.as_deref(),
        );
        let res = (|| {
            file.write_all(&init.bytes)?;
            file.sync_data()?;
            sync_dir(dir)
        })();
        if let Err(e) = res {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        // The segment starts at its first sample's decode time.
        let start_us = f.utc_us - f.cts_90k as i64 * 100 / 9;
        let rec = SegmentRecord {
            camera_id: self.cfg.camera_id,
            file: rel,
            start_us,
            end_us: start_us,
            duration_90k: 0,
            bytes: init.bytes.len() as u64,
            frames: 0,
            init_len: init.bytes.len() as u32,
            mehd_offset: init.mehd_duration_offset as u32,
            keyframes: Vec::new(),
            codec: f.params.codec.clone(),
            width: f.params.width as u16,
            height: f.params.height as u16,
            end_reason: EndReason::Open,
            run: f.timeline,
            sha256: None,
        };
        let _ = self.commit_tx.send(CommitMsg::Put(rec.clone()));
        self.status.recording(&self.cfg.camera, |s| {
            s.recording = true;
            s.codec = Some(f.params.codec.clone());
            s.width = f.params.width;
            s.height = f.params.height;
        });
        self.skip_leading = true;
        self.seg = Some(OpenSegment {
            file,
            path,
            committed: rec.clone(),
            rec,
            seq: 0,
            start_dts: f.dts_90k,
            params: f.params.clone(),
            last_sync: self.clock.monotonic(),
            audio_next: None,
        });
        Ok(())
    }

    /// Writes the buffered fragment and, when the commit interval has passed, makes it
    /// durable and sends it to the committer.
    fn flush_fragment(&mut self) {
        if let Err(e) = self.write_fragment() {
            self.write_failed(e, "writing fragment");
            return;
        }
        let due = self.seg.as_ref().is_some_and(|s| {
            self.clock.monotonic().saturating_sub(s.last_sync) >= self.cfg.commit_interval
        });
        if due && let Err(e) = self.sync_and_commit() {
            self.write_failed(e, "syncing segment");
        }
    }

    fn write_fragment(&mut self) -> io::Result<()> {
        let Some(seg) = self.seg.as_mut() else {
            self.frag.clear();
            return Ok(());
        };
        if self.frag.is_empty() {
            return Ok(());
        }
        let start = self.frag_start.take().unwrap();
        let samples: Vec<Sample> = self.frag.iter().map(|(s, _)| *s).collect();
        seg.seq += 1;
        let base = (start - seg.start_dts) as u64;
        let utc = seg.rec.start_us + base as i64 * 100 / 9;
        let dur: u64 = samples.iter().map(|s| s.duration as u64).sum();
        let end_us = seg.rec.start_us + ((base + dur) as i64 * 100 / 9);
        let audio = Self::audio_run(seg, &mut self.audio, end_us);
        let header =
            fmp4::fragment_header(seg.seq, base, utc, &samples, audio.as_ref().map(|a| &a.0));
        let offset = seg.rec.bytes;
        // One `writev` from the frames' own buffers: no copy of the fragment's data.
        let mut slices: Vec<io::IoSlice> = Vec::with_capacity(1 + self.frag.len() + 64);
        slices.push(io::IoSlice::new(&header));
        slices.extend(self.frag.iter().map(|(_, d)| io::IoSlice::new(d)));
        slices.extend(audio.iter().flat_map(|a| &a.1).map(|d| io::IoSlice::new(d)));
        let len: usize = slices.iter().map(|b| b.len()).sum();
        write_all_vectored(&mut seg.file, &mut slices)?;
        let r = &mut seg.rec;
        if samples[0].is_key {
            r.keyframes.push(Keyframe {
                t_90k: r.duration_90k,
                offset,
            });
        }
        r.bytes += len as u64;
        r.frames += samples.len() as u32;
        r.duration_90k += samples.iter().map(|s| s.duration as u64).sum::<u64>();
        r.end_us = r.start_us + (r.duration_90k as i64 * 100 / 9);
        let n = samples.len() as u64;
        self.status.recording(&self.cfg.camera, |s| {
            s.frames += n;
        });
        self.frag.clear();
        Ok(())
    }

    fn sync_and_commit(&mut self) -> io::Result<()> {
        let Some(seg) = self.seg.as_mut() else {
            return Ok(());
        };
        seg.file.sync_data()?;
        seg.last_sync = self.clock.monotonic();
        if seg.rec != seg.committed {
            seg.committed = seg.rec.clone();
            let _ = self.commit_tx.send(CommitMsg::Put(seg.rec.clone()));
        }
        Ok(())
    }

    fn close_segment(&mut self, reason: EndReason) {
        if let Err(e) = self.write_fragment() {
            self.write_failed(e, "writing fragment");
            return;
        }
        let Some(seg) = self.seg.as_mut() else {
            return;
        };
        // Tell players the duration up front (mehd), then make it all durable.
        let dur = seg.rec.duration_90k.to_be_bytes();
        let res = seg
            .file
            .write_all_at(&dur, seg.rec.mehd_offset as u64)
            .and_then(|_| seg.file.sync_data());
        if let Err(e) = res {
            self.write_failed(e, "closing segment");
            return;
        }
        let mut seg = self.seg.take().unwrap();
        seal(&mut seg.rec, &seg.file);
        if seg.rec.frames == 0 {
            // Nothing playable: forget it entirely.
            drop(seg.file);
            let _ = std::fs::remove_file(&seg.path);
            seg.rec.end_reason = reason;
            let _ = self.commit_tx.send(CommitMsg::Put(seg.rec)); // committer drops empties
        } else {
            seg.rec.end_reason = reason;
            let _ = self.commit_tx.send(CommitMsg::Put(seg.rec));
            self.status
                .recording(&self.cfg.camera, |s| s.segments_written += 1);
        }
        self.status
            .recording(&self.cfg.camera, |s| s.recording = false);
    }

    /// A write failed: keep what is durable, close the segment there, ask for space if the
    /// disk is full, and wait for the next keyframe to try again.
    /// Counts frames lost because nothing could be written (after a write error, until
    /// a segment opens again); frames before a stream's first keyframe are not.
    fn unwritten(&mut self, n: u64) {
        if self.unwritable && n > 0 {
            self.status
                .recording(&self.cfg.camera, |s| s.unwritten_frames += n);
        }
    }

    fn write_failed(&mut self, e: io::Error, what: &str) {
        let full = is_disk_full(&e);
        tracing::warn!(camera = %self.cfg.camera, "{what}: {e}");
        self.unwritable = true;
        let mut lost = self.frag.len() as u64 + self.pending.is_some() as u64;
        self.frag.clear();
        self.frag_start = None;
        self.pending = None;
        if let Some(mut seg) = self.seg.take() {
            let mut rec = seg.committed.clone();
            // Written but not durable: cut off with the rest.
            lost += seg.rec.frames.saturating_sub(rec.frames) as u64;
            let _ = seg.file.set_len(rec.bytes);
            let _ = seg.file.seek(SeekFrom::End(0));
            let _ = seg.file.sync_data();
            rec.end_reason = EndReason::WriteError;
            if rec.frames > 0 {
                seal(&mut rec, &seg.file);
            }
            if rec.frames == 0 {
                drop(seg.file);
                let _ = std::fs::remove_file(&seg.path);
            }
            let _ = self.commit_tx.send(CommitMsg::Put(rec));
        }
        self.unwritten(lost);
        if full {
            let _ = self.commit_tx.send(CommitMsg::DiskFull);
        }
        self.waiting_for_key = true;
        let msg = format!("{what}: {e}");
        self.status.recording(&self.cfg.camera, |s| {
            s.recording = false;
            s.write_errors += 1;
            s.set_error(msg);
        });
    }
}

pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// fsyncs a directory so that entries created in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes all of `bufs` with `writev`, as many calls as it takes.
fn write_all_vectored(f: &mut std::fs::File, mut bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        match f.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// Takes the SHA-256 of a closing segment's file (its `bytes` bytes, durable by now) into
/// its record. A file that cannot be read back keeps no hash (`vigil check
/// --verify-hashes` counts it as unhashed); recording goes on.
fn seal(rec: &mut SegmentRecord, file: &std::fs::File) {
    match super::integrity::file_sha256(file, rec.bytes) {
        Ok(h) => rec.sha256 = Some(h),
        Err(e) => tracing::warn!(file = rec.file, "segment SHA-256 not taken: {e}"),
    }
}
