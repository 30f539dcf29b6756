//! The frame and the stream: what ingest hands on and every consumer reads. [`Frame`]
//! (one encoded picture on the recorder's timeline), [`VideoParams`], [`AudioFrame`],
//! the one message a camera's stream is made of ([`StreamMsg`]), and [`Sink`]: a
//! consumer's bounded queue with its drop policy. Ingest publishes to a list of sinks
//! and imports none of their modules; the writer (`record`) and the analyser (`motion`)
//! read the same messages. A new consumer (a live view, a publisher) is a new sink. And
//! what analysis finds in the stream: [`MotionEvent`], the one event type from the
//! analysis pipeline to the timeline, the status and the log; and [`DecodeMode`], how much
//! of a stream the analysis decodes.
//!
//! Frames share their data (`bytes::Bytes`) and parameters (`Arc`): a frame handed to
//! several sinks is never copied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

/// Codec parameters of a stream; a new `Arc` means new parameters.
#[derive(Debug)]
pub struct VideoParams {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Nominal frame duration (90 kHz) from the stream's timing info, if it has one. Used
    /// only for the last frame of a run, whose successor never arrives.
    pub nominal_duration: Option<u32>,
    /// A complete `avc1`/`hvc1` sample entry box.
    pub sample_entry: Vec<u8>,
    /// "h264" or "h265".
    pub encoding: &'static str,
    /// The decoder configuration record (`avcC`/`hvcC` body) for decoders.
    pub codec_config: Vec<u8>,
    /// The session's audio track, when the camera sends audio that is recorded (AAC).
    pub audio: Option<Arc<AudioTrack>>,
}

impl VideoParams {
    /// H.264 parameters of `width` x `height` at 15 fps with a placeholder `avc1` sample
    /// entry (86 bytes, zeros), for tests and benchmarks of recording (nothing decodes it).
    #[doc(hidden)]
    pub fn for_test(width: u32, height: u32) -> VideoParams {
        let mut sample_entry = vec![0, 0, 0, 86, b'a', b'v', b'c', b'1'];
        sample_entry.resize(86, 0);
        VideoParams {
            codec: "avc1.640028".into(),
            width,
            height,
            nominal_duration: Some(6000),
            sample_entry,
            encoding: "h264",
            codec_config: Vec::new(),
            audio: None,
        }
    }
}

/// A motion event as analysis hands it on (to the timeline, the status and the log): the
/// detector's event (`vigil_motion::detector::Event`, media milliseconds) placed on the
/// camera's UTC clock, with its clip window. The index stores it as an
/// `index::EventRecord`; the API shows it as an `events::EventView`.
#[derive(Clone, Debug, PartialEq)]
pub struct MotionEvent {
    /// Its id in the timeline (`None` if it could not be stored).
    pub id: Option<u64>,
    pub camera: String,
    /// UTC µs of the first motion frame and just after the last.
    pub start_us: i64,
    pub end_us: i64,
    /// The event's clip: `pre_roll` s before the start to `post_roll` s after the end
    /// (recording is continuous, so that video is on disk until retention takes it).
    pub clip_start_us: i64,
    pub clip_end_us: i64,
    /// Zones with motion, by name.
    pub zones: Vec<String>,
    /// Largest fraction of the unmasked image in moving blobs (0..1).
    pub peak_score: f64,
    /// Union of the moving blobs' boxes: x0, y0, x1, y1 normalised to 0..1.
    pub bbox: [f64; 4],
}

/// A recorded audio track's description: its MP4 sample entry (`mp4a` with `esds`,
/// ISO/IEC 14496-14) and timescale (the sample rate, Hz).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioTrack {
    pub sample_entry: Vec<u8>,
    pub timescale: u32,
}

/// One audio frame (raw AAC access unit), placed on the recorder's clock.
#[derive(Clone)]
pub struct AudioFrame {
    /// UTC of its first sample, µs.
    pub utc_us: i64,
    /// Its length in samples (the audio track's timescale), 1024 for AAC-LC.
    pub duration: u32,
    pub data: bytes::Bytes,
}

/// Why a timeline breaks before a frame: whatever a consumer has open ends there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    /// Pictures were dropped before this one (a full queue).
    Dropped,
    /// The camera's clock broke the timeline (`ingest::timing`).
    TimestampJump,
}

/// One encoded picture (length-prefixed NAL units, as MP4 stores them), on the recorder's
/// timeline (see `ingest::timing`).
#[derive(Clone)]
pub struct Frame {
    /// Decode time in 90 kHz units on the recorder's clock, from the start of its
    /// timeline; strictly increasing within a timeline.
    pub dts_90k: i64,
    /// Presentation minus decode time, 90 kHz (non-zero only with B-frames).
    pub cts_90k: i32,
    /// UTC of this picture's presentation, µs since the epoch.
    pub utc_us: i64,
    pub is_key: bool,
    /// An H.265 RASL picture: it references pictures before the CRA it follows, so it is
    /// left out when that CRA starts a segment.
    pub leading: bool,
    /// Shared between consumers without copying.
    pub data: bytes::Bytes,
    pub params: Arc<VideoParams>,
    /// Timeline counter: a new value means a new, unrelated timeline (a new RTSP session,
    /// or a discontinuity in the camera's timestamps).
    pub timeline: u64,
    /// Why whatever is open must end before this picture (set per sink: see [`Sink`]).
    pub discontinuity: Option<Break>,
}

/// What a camera's stream is made of, as each sink receives it.
pub enum StreamMsg {
    Frame(Frame),
    /// Audio goes into the open segment's audio track by its UTC (a segment has one when
    /// its video's parameters carry an audio track).
    Audio(AudioFrame),
    /// The RTSP session ended (camera gone, network error), or its timeline broke
    /// (analysis sinks): close what is open.
    EndRun,
    /// Finish what is open and exit.
    Shutdown,
}

/// How a sink is fed, and what happens when its queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    /// The segment writer: a full queue drops pictures up to the next keyframe (never a
    /// broken GOP), and the frame after the drop carries [`Break::Dropped`]; a timeline
    /// break travels on the next frame; audio too; a closed queue is an error.
    Recording,
    /// The motion analyser: a full queue skips to the next keyframe; a timeline break is
    /// an `EndRun`; no audio; a closed queue is ignored.
    Analysis,
    /// The camera's live hub (`live::Hub`), which fans out to viewers: as `Analysis`.
    Live,
}

/// What became of one frame offered to a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// Dropped by the sink's policy (its owner counts it).
    Dropped,
    /// The consumer is gone.
    Closed,
    /// Not offered: the sink's gate is closed (its consumer has nobody to serve).
    Unwatched,
}

/// One consumer's queue for one RTSP session (its drop state starts clean with each:
/// [`Sink::fresh`]).
#[derive(Clone)]
pub struct Sink {
    kind: SinkKind,
    tx: SyncSender<StreamMsg>,
    /// Frames are offered only while this is set (see [`Sink::gated`]).
    gate: Option<Arc<AtomicBool>>,
    /// Skipping to the next keyframe since a frame could not be queued.
    dropping: bool,
    /// The next frame ends what is open, for this reason (recording).
    pending_break: Option<Break>,
}

impl Sink {
    /// A sink of `kind` feeding `tx`.
    pub fn new(kind: SinkKind, tx: SyncSender<StreamMsg>) -> Sink {
        Sink {
            kind,
            tx,
            gate: None,
            dropping: false,
            pending_break: None,
        }
    }

    /// This sink, offered frames only while `gate` is set: a consumer with nobody to
    /// serve (the live hub without viewers) then costs ingest nothing. Measured: 64
    /// recorded 1080p cameras took 17.5% of a core with an ungated live sink and 10.0%
    /// without one (`cargo bench --bench load`).
    pub fn gated(mut self, gate: Arc<AtomicBool>) -> Sink {
        self.gate = Some(gate);
        self
    }

    /// The same consumer with a clean drop state, for a new session.
    pub fn fresh(&self) -> Sink {
        Sink {
            dropping: false,
            pending_break: None,
            ..self.clone()
        }
    }

    pub fn kind(&self) -> SinkKind {
        self.kind
    }

    /// Offers a frame (its `discontinuity` is set here from this sink's state). Never
    /// blocks.
    pub fn frame(&mut self, f: &Frame) -> Delivery {
        if self
            .gate
            .as_ref()
            .is_some_and(|g| !g.load(Ordering::Relaxed))
        {
            return Delivery::Unwatched;
        }
        if self.dropping && !f.is_key {
            return Delivery::Dropped;
        }
        let mut f = f.clone();
        if self.kind == SinkKind::Recording {
            // A broken timeline says more than dropped frames.
            f.discontinuity = self
                .pending_break
                .or(self.dropping.then_some(Break::Dropped));
        }
        match self.tx.try_send(StreamMsg::Frame(f)) {
            Ok(()) => {
                self.dropping = false;
                self.pending_break = None;
                Delivery::Queued
            }
            Err(TrySendError::Full(_)) => {
                self.dropping = true;
                Delivery::Dropped
            }
            Err(TrySendError::Disconnected(_)) => Delivery::Closed,
        }
    }

    /// The timeline broke: recording ends what is open at the next frame, analysis now.
    pub fn timeline_break(&mut self, why: Break) {
        match self.kind {
            SinkKind::Recording => self.pending_break = Some(why),
            SinkKind::Analysis | SinkKind::Live => {
                let _ = self.tx.try_send(StreamMsg::EndRun);
            }
        }
    }

    /// Offers an audio frame (recording sinks only; others take none). Never blocks.
    pub fn audio(&mut self, a: &AudioFrame) -> Delivery {
        if self.kind != SinkKind::Recording {
            return Delivery::Queued;
        }
        match self.tx.try_send(StreamMsg::Audio(a.clone())) {
            Ok(()) => Delivery::Queued,
            Err(TrySendError::Full(_)) => Delivery::Dropped,
            Err(TrySendError::Disconnected(_)) => Delivery::Closed,
        }
    }

    /// The session ended. Never blocks (a full queue is ended by the next frame's
    /// timeline, which is new).
    pub fn end_run(&self) {
        let _ = self.tx.try_send(StreamMsg::EndRun);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(key: bool) -> Frame {
        Frame {
            dts_90k: 0,
            cts_90k: 0,
            utc_us: 0,
            is_key: key,
            leading: false,
            data: bytes::Bytes::from_static(b"x"),
            params: Arc::new(VideoParams {
                codec: "avc1".into(),
                width: 2,
                height: 2,
                nominal_duration: None,
                sample_entry: vec![],
                encoding: "h264",
                codec_config: vec![],
                audio: None,
            }),
            timeline: 1,
            discontinuity: None,
        }
    }

    fn take(rx: &std::sync::mpsc::Receiver<StreamMsg>) -> Vec<(bool, Option<Break>)> {
        rx.try_iter()
            .filter_map(|m| match m {
                StreamMsg::Frame(f) => Some((f.is_key, f.discontinuity)),
                _ => None,
            })
            .collect()
    }

    /// A gated sink is offered nothing while its gate is closed, and everything once it
    /// opens; a fresh copy shares the gate.
    #[test]
    fn a_gated_sink_takes_frames_only_while_its_gate_is_open() {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let gate = Arc::new(AtomicBool::new(false));
        let mut s = Sink::new(SinkKind::Live, tx).gated(gate.clone());
        assert_eq!(s.frame(&frame(true)), Delivery::Unwatched);
        assert!(take(&rx).is_empty());
        gate.store(true, Ordering::Relaxed);
        assert_eq!(s.frame(&frame(true)), Delivery::Queued);
        assert_eq!(s.fresh().frame(&frame(false)), Delivery::Queued);
        gate.store(false, Ordering::Relaxed);
        assert_eq!(s.fresh().frame(&frame(true)), Delivery::Unwatched);
        assert_eq!(take(&rx).len(), 2);
    }

    #[test]
    fn recording_drops_to_the_next_keyframe_and_marks_the_gap() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let mut s = Sink::new(SinkKind::Recording, tx);
        assert_eq!(s.frame(&frame(true)), Delivery::Queued);
        assert_eq!(s.frame(&frame(false)), Delivery::Queued);
        assert_eq!(s.frame(&frame(false)), Delivery::Dropped, "queue full");
        assert_eq!(take(&rx).len(), 2);
        assert_eq!(s.frame(&frame(false)), Delivery::Dropped, "not a keyframe");
        s.timeline_break(Break::TimestampJump);
        assert_eq!(s.frame(&frame(true)), Delivery::Queued);
        assert_eq!(s.frame(&frame(false)), Delivery::Queued);
        // The break says more than the drop; after it, nothing.
        assert_eq!(
            take(&rx),
            vec![(true, Some(Break::TimestampJump)), (false, None)]
        );
        s.frame(&frame(true));
        s.frame(&frame(true));
        s.frame(&frame(true));
        take(&rx);
        assert_eq!(s.frame(&frame(true)), Delivery::Queued);
        assert_eq!(take(&rx), vec![(true, Some(Break::Dropped))]);
        drop(rx);
        assert_eq!(s.frame(&frame(true)), Delivery::Closed);
    }

    #[test]
    fn analysis_skips_to_keyframes_and_ends_runs_at_breaks() {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let mut s = Sink::new(SinkKind::Analysis, tx);
        assert_eq!(s.frame(&frame(true)), Delivery::Queued);
        assert_eq!(s.frame(&frame(false)), Delivery::Dropped);
        assert_eq!(take(&rx), vec![(true, None)]);
        assert_eq!(s.frame(&frame(false)), Delivery::Dropped);
        s.timeline_break(Break::TimestampJump);
        assert!(matches!(rx.try_recv(), Ok(StreamMsg::EndRun)));
        assert_eq!(s.frame(&frame(true)), Delivery::Queued);
        assert_eq!(
            take(&rx),
            vec![(true, None)],
            "analysis frames carry no break"
        );
        let a = AudioFrame {
            utc_us: 0,
            duration: 1024,
            data: bytes::Bytes::new(),
        };
        assert_eq!(s.audio(&a), Delivery::Queued);
        assert!(rx.try_recv().is_err(), "analysis takes no audio");
    }
}

/// How much of a stream the analysis decodes (`[motion] decode`, `vigil analyze --decode`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum DecodeMode {
    /// Every frame (needed for P-frame references), then thinned to the analysis fps.
    Full,
    /// Skip B-frames in the decoder (cheaper only for streams that have them).
    SkipB,
    /// Decode keyframes only: by far the cheapest, at one analysed frame per GOP.
    KeyframesOnly,
}
