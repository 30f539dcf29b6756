//! Live status shared between the recording and analysis threads and the HTTP API. Per
//! camera, each stage keeps its own statistics behind its own lock: [`IngestStats`]
//! (ingest: state and since when, rates, what was received, lost and dropped),
//! [`RecordingStats`] (the segment writer), [`AnalysisStats`] (the analysis pipeline);
//! [`Status::cameras`] hands them out together ([`CameraStages`]); the API composes its view
//! (and formats the times) from them. For storage, [`StorageStatus`] (bytes, retention, disk errors; the committer and
//! start-up recovery). The daemon seeds each camera's entry before anything runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::base::time::now_us;
use crate::media::MotionEvent;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    Starting,
    Connecting,
    WaitingStaleSession,
    Streaming,
    Backoff,
    Disabled,
    Stopped,
}

/// What ingest knows of a camera's stream (written by `ingest`; the daemon marks a disabled
/// camera's state before anything runs).
#[derive(Clone, Debug, Serialize)]
pub struct IngestStats {
    pub state: CameraState,
    /// When `state` was entered, µs since the epoch (shown as RFC 3339 `since`).
    #[serde(skip)]
    pub since_us: i64,
    /// Pictures per second received, and the bitrate received (bits/s), over ~2 s.
    pub fps: f64,
    pub bitrate_bps: f64,
    /// Pictures received whole from the recorded stream (the camera's `url`) and offered
    /// to the writer and the analyser (what they could not take is counted apart:
    /// `dropped_frames`, `analysis_dropped`).
    pub received_frames: u64,
    /// Video bytes received.
    pub bytes: u64,
    pub reconnects: u64,
    /// The RTSP step under way while `connecting`: "connect" (TCP), "describe",
    /// "setup", "play" or "first-picture".
    pub connect_step: Option<&'static str>,
    /// RTSP steps and playing sessions that missed their deadline (`timeout_seconds`).
    pub timeouts: u64,
    /// Frames the writer could not take (it fell behind); it skips to the next keyframe.
    pub dropped_frames: u64,
    /// RTP packets the camera sent that never arrived (sequence-number gaps).
    pub lost_packets: u64,
    /// Packets that could not be depacketized (a fragment without its start, a corrupt
    /// NAL unit, a wrong SSRC): dropped, and the session goes on.
    pub packet_errors: u64,
    /// Pictures dropped after loss or a packet error, up to the next keyframe (they
    /// would reference pictures that never arrived).
    pub dropped_pictures: u64,
    /// Times the camera's timestamps broke the timeline (step back, jump forward, clock
    /// out of bounds): each closed a segment with end reason `timestamp-jump`.
    pub timestamp_jumps: u64,
    /// The camera clock's rate against the recorder's as applied (1.0 = exact; 0.833 for a
    /// camera whose clock runs 1.2x fast), including any phase slew.
    pub clock_rate: f64,
    /// How far the stamps trail the arrival times (earliest picture of the last second),
    /// ms; negative = ahead.
    pub clock_lag_ms: Option<f64>,
    /// Pictures the stream may reorder (B-frames): declared by the SPS or learnt.
    pub reorder_depth: u32,
    /// The audio track: "aac 48000 Hz, 1 ch" while recorded, "off" (`audio = false`),
    /// "none" (the camera sends none), or "skipped: <why>" (a codec MP4 players do not
    /// accept, such as G.711, or a failed SETUP); null before the first session.
    pub audio: Option<String>,
    /// Audio frames received, and those the writer's queue had no room for.
    pub audio_frames: u64,
    pub audio_dropped: u64,
    /// Frames the analyser could not take because it fell behind (recording is
    /// unaffected); it skips to the next keyframe.
    pub analysis_dropped: u64,
    /// Pictures the live hub could not take because it fell behind (its viewers skip to
    /// the next keyframe; recording is unaffected).
    pub live_dropped: u64,
    /// State of the `detect_url` session, when the camera has one.
    pub detect_state: Option<CameraState>,
    pub detect_error: Option<String>,
    #[serde(skip)]
    error: Option<StageError>,
}

/// A stage's last error: (order of errors across all stages, µs since the epoch, text).
/// Ordered by a counter, not by the wall clock, which may step back.
type StageError = (u64, i64, String);

/// Numbers stage errors in the order they happen.
static ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn stage_error(e: String) -> Option<StageError> {
    let n = ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some((n, now_us(), e))
}

/// What the segment writer knows of a camera's recording (written by `record::writer`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecordingStats {
    /// Frames written to segment files (counted when a fragment is written).
    pub frames: u64,
    pub codec: Option<String>,
    pub width: u32,
    pub height: u32,
    /// A segment is open.
    pub recording: bool,
    pub segments_written: u64,
    pub write_errors: u64,
    /// Frames lost because nothing could be written (a full or failing disk): from a
    /// write error until a segment opens again.
    pub unwritten_frames: u64,
    #[serde(skip)]
    error: Option<StageError>,
}

/// What motion analysis knows of a camera (written by `pipeline` only).
#[derive(Clone, Debug, Serialize)]
pub struct AnalysisStats {
    /// Motion analysis runs for this camera.
    pub motion_enabled: bool,
    /// Motion in the last analysed frame.
    pub motion: bool,
    /// Fraction of the unmasked image moving in the last analysed frame.
    pub motion_score: f64,
    /// Whether motion on the camera raises alerts now (its arming schedule), and the
    /// zones whose schedules hold their alerts back now.
    pub armed: bool,
    pub disarmed_zones: Vec<String>,
    /// New zones from the console wait for the open event to close.
    pub zones_pending: bool,
    /// Times the zones were changed from the console since the daemon started.
    pub zones_changed: u64,
    pub motion_events: u64,
    pub analysed_frames: u64,
    pub analysis_errors: u64,
    /// Events or motion history the index refused to store (a full disk, say).
    pub timeline_errors: u64,
    pub decode_errors: u64,
    /// Time spent in the motion detector (kernel, blobs, zones), seconds.
    pub motion_seconds: f64,
    /// CPU time of the analysis pipeline's GStreamer threads (decoding, scaling), seconds.
    pub decode_seconds: f64,
    /// The last motion event that closed (the API shows it with its times formatted).
    #[serde(skip)]
    pub last_event: Option<MotionEvent>,
    #[serde(skip)]
    error: Option<StageError>,
}

/// A camera's statistics from every stage, as [`Status::cameras`] hands them out.
#[derive(Clone, Debug)]
pub struct CameraStages {
    pub name: String,
    pub ingest: IngestStats,
    pub recording: RecordingStats,
    pub analysis: AnalysisStats,
}

impl CameraStages {
    /// The newest error of any stage: (µs since the epoch, text).
    pub fn last_error(&self) -> Option<(i64, &str)> {
        [
            &self.ingest.error,
            &self.recording.error,
            &self.analysis.error,
        ]
        .into_iter()
        .flatten()
        .max_by_key(|(n, _, _)| *n)
        .map(|(_, t, e)| (*t, e.as_str()))
    }
}

impl Default for IngestStats {
    fn default() -> Self {
        IngestStats {
            state: CameraState::Starting,
            since_us: now_us(),
            fps: 0.0,
            bitrate_bps: 0.0,
            received_frames: 0,
            bytes: 0,
            reconnects: 0,
            connect_step: None,
            timeouts: 0,
            dropped_frames: 0,
            lost_packets: 0,
            packet_errors: 0,
            dropped_pictures: 0,
            timestamp_jumps: 0,
            clock_rate: 1.0,
            clock_lag_ms: None,
            reorder_depth: 0,
            audio: None,
            audio_frames: 0,
            audio_dropped: 0,
            analysis_dropped: 0,
            live_dropped: 0,
            detect_state: None,
            detect_error: None,
            error: None,
        }
    }
}

impl Default for AnalysisStats {
    fn default() -> Self {
        AnalysisStats {
            motion_enabled: false,
            motion: false,
            motion_score: 0.0,
            armed: true,
            disarmed_zones: Vec::new(),
            zones_pending: false,
            zones_changed: 0,
            motion_events: 0,
            analysed_frames: 0,
            analysis_errors: 0,
            timeline_errors: 0,
            decode_errors: 0,
            motion_seconds: 0.0,
            decode_seconds: 0.0,
            last_event: None,
            error: None,
        }
    }
}

impl IngestStats {
    pub fn set_state(&mut self, s: CameraState) {
        if self.state != s {
            self.state = s;
            self.since_us = now_us();
        }
    }

    /// Records `e` as this stage's last error (shown as `last_error` if no stage's error
    /// is newer).
    pub fn set_error(&mut self, e: String) {
        self.error = stage_error(e);
    }
}

impl RecordingStats {
    /// Records `e` as this stage's last error (shown as `last_error` if no stage's error
    /// is newer).
    pub fn set_error(&mut self, e: String) {
        self.error = stage_error(e);
    }
}

impl AnalysisStats {
    /// Records `e` as this stage's last error (shown as `last_error` if no stage's error
    /// is newer).
    pub fn set_error(&mut self, e: String) {
        self.error = stage_error(e);
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StorageStatus {
    pub dir: String,
    pub total_bytes: u64,
    pub segments: u64,
    pub max_bytes: Option<u64>,
    pub retain_days: Option<f64>,
    pub free_bytes: Option<u64>,
    pub deleted_segments: u64,
    pub deleted_bytes: u64,
    pub disk_full_events: u64,
    pub last_error: Option<String>,
    /// When `last_error` happened, µs since the epoch (the API shows `last_error_at`).
    #[serde(skip)]
    pub last_error_us: Option<i64>,
    pub index_bytes: u64,
    /// What start-up recovery found and did (interrupted segments repaired, orphan
    /// files adopted or moved to `lost+found/`, ...), one line each, at most 100.
    pub startup_recovery: Vec<String>,
    /// Free space retention keeps (the configured or default `min_free`).
    pub min_free: Option<u64>,
    /// Times the index was reopened after an I/O error.
    pub index_reopens: u64,
    /// Whether the index is open (false between an error and its reopening).
    pub index_available: bool,
    /// Segment records received and not yet committed (kept for retry).
    pub index_pending_records: u64,
    /// The index's disk reserve: its size, and whether it is allocated now (it is
    /// released when the disk fills, and allocated again once there is room).
    pub index_reserve_bytes: u64,
    pub index_reserve_held: bool,
    /// Steps of the system's wall clock seen while recording (the newest 64; the API shows
    /// them with their times formatted).
    #[serde(skip)]
    pub clock_steps: Vec<crate::index::ClockStep>,
}

/// The registry everyone shares: each stage's statistics per camera, each behind its
/// own lock and written by its owner only, and the storage's.
#[derive(Default)]
pub struct Status {
    ingest: Mutex<BTreeMap<String, IngestStats>>,
    recording: Mutex<BTreeMap<String, RecordingStats>>,
    analysis: Mutex<BTreeMap<String, AnalysisStats>>,
    storage: Mutex<StorageStatus>,
    /// The latest picture of each analysed camera: (frame UTC µs, JPEG).
    snapshots: Mutex<BTreeMap<String, (i64, bytes::Bytes)>>,
}

pub type SharedStatus = Arc<Status>;

fn with<T: Default, R>(
    m: &Mutex<BTreeMap<String, T>>,
    name: &str,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    f(m.lock().unwrap().entry(name.to_owned()).or_default())
}

impl Status {
    pub fn set_snapshot(&self, camera: &str, utc_us: i64, jpeg: bytes::Bytes) {
        self.snapshots
            .lock()
            .unwrap()
            .insert(camera.to_owned(), (utc_us, jpeg));
    }

    pub fn snapshot(&self, camera: &str) -> Option<(i64, bytes::Bytes)> {
        self.snapshots.lock().unwrap().get(camera).cloned()
    }

    /// Camera `name`'s ingest statistics (ingest writes them).
    pub fn ingest<R>(&self, name: &str, f: impl FnOnce(&mut IngestStats) -> R) -> R {
        with(&self.ingest, name, f)
    }

    /// Camera `name`'s recording statistics (its segment writer writes them).
    pub fn recording<R>(&self, name: &str, f: impl FnOnce(&mut RecordingStats) -> R) -> R {
        with(&self.recording, name, f)
    }

    /// Camera `name`'s analysis statistics (its analysis pipeline writes them).
    pub fn analysis<R>(&self, name: &str, f: impl FnOnce(&mut AnalysisStats) -> R) -> R {
        with(&self.analysis, name, f)
    }

    /// Every camera any stage has reported on, in name order.
    pub fn cameras(&self) -> Vec<CameraStages> {
        let ingest = self.ingest.lock().unwrap().clone();
        let recording = self.recording.lock().unwrap().clone();
        let analysis = self.analysis.lock().unwrap().clone();
        let names: std::collections::BTreeSet<&String> = ingest
            .keys()
            .chain(recording.keys())
            .chain(analysis.keys())
            .collect();
        (names.into_iter())
            .map(|n| CameraStages {
                name: n.clone(),
                ingest: ingest.get(n).cloned().unwrap_or_default(),
                recording: recording.get(n).cloned().unwrap_or_default(),
                analysis: analysis.get(n).cloned().unwrap_or_default(),
            })
            .collect()
    }

    pub fn storage<R>(&self, f: impl FnOnce(&mut StorageStatus) -> R) -> R {
        f(&mut self.storage.lock().unwrap())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Camera `a` with ingest and writer statistics (and an error from each, the writer's
    /// newer), camera `b` with analysis statistics only.
    pub(crate) fn example() -> Status {
        let st = Status::default();
        st.ingest("a", |s| {
            s.set_state(CameraState::Streaming);
            s.received_frames = 30;
            s.set_error("ingest: old".into());
        });
        st.recording("a", |s| {
            s.frames = 29;
            s.set_error("writer: newer".into());
        });
        st.analysis("b", |s| s.motion_enabled = true);
        st
    }

    /// Each stage writes its own statistics; the newest error of any stage is the camera's.
    #[test]
    fn stages_are_handed_out_together() {
        let cams = example().cameras();
        assert_eq!(cams.len(), 2);
        let a = &cams[0];
        assert_eq!(a.name, "a");
        assert_eq!(a.ingest.state, CameraState::Streaming);
        assert_eq!(a.ingest.received_frames, 30);
        assert_eq!(a.recording.frames, 29);
        assert!(!a.analysis.motion_enabled);
        assert_eq!(a.last_error().unwrap().1, "writer: newer");
        let b = &cams[1];
        assert_eq!(b.name, "b");
        assert!(b.analysis.motion_enabled);
        assert_eq!(b.ingest.state, CameraState::Starting);
        assert!(b.last_error().is_none());
    }
}
