//! A session's output side: pictures from the timing model handed to the camera's sinks
//! (`media::Sink`, each with its own drop policy), timeline breaks, audio, and the counters
//! of what was dropped.

use std::sync::Arc;

use super::IngestTask;
use super::timing::{Jump, Output, Timed};
use crate::media::{AudioFrame, Break, Delivery, Frame, Sink, SinkKind, VideoParams};

/// One picture as assembled from retina's frames (all NAL units of one RTP timestamp).
pub(super) struct Picture {
    pub is_key: bool,
    /// An H.265 RASL picture (see `h26x::rasl`).
    pub leading: bool,
    pub data: Vec<u8>,
    pub params: Arc<VideoParams>,
}

/// A session's output side: its sinks (each with its own drop policy) and the counters.
pub(super) struct Outlet<'a> {
    pub task: &'a IngestTask,
    pub sinks: Vec<Sink>,
    /// Pictures handed on in this session.
    pub pictures: u64,
}

impl<'a> Outlet<'a> {
    /// The output side of a new session of `task`.
    pub fn new(task: &'a IngestTask) -> Self {
        Outlet {
            task,
            sinks: task.sinks(),
            pictures: 0,
        }
    }

    pub fn emit(&mut self, out: Vec<Output<Picture>>) -> anyhow::Result<()> {
        for o in out {
            match o {
                Output::Picture(p) => {
                    self.pictures += 1;
                    self.picture(p)?
                }
                Output::Discontinuity { kind, delta_us } => self.discontinuity(kind, delta_us),
            }
        }
        Ok(())
    }

    fn discontinuity(&mut self, kind: Jump, delta_us: i64) {
        let cam = &self.task.camera.name;
        let what = match kind {
            Jump::Backward => "stepped back",
            Jump::Forward => "jumped forward",
            Jump::Clock => "and the recorder's clock drifted apart (or one of them stepped)",
        };
        tracing::warn!(
            camera = %cam,
            "the camera's clock {what} by {:.3} s: segment closed, timeline re-anchored to the recorder's clock",
            delta_us as f64 / 1e6
        );
        self.task.status.ingest(cam, |s| s.timestamp_jumps += 1);
        for sink in &mut self.sinks {
            sink.timeline_break(Break::TimestampJump);
        }
    }

    fn picture(&mut self, p: Timed<Picture>) -> anyhow::Result<()> {
        let cam = &self.task.camera.name;
        let frame = Frame {
            dts_90k: p.dts_90k,
            cts_90k: p.cts_90k,
            utc_us: p.utc_us,
            is_key: p.payload.is_key,
            leading: p.payload.leading,
            data: bytes::Bytes::from(p.payload.data),
            params: p.payload.params,
            timeline: p.timeline,
            discontinuity: None,
        };
        tracing::trace!(camera = %cam, dts = p.dts_90k, cts = p.cts_90k, key = frame.is_key, timeline = p.timeline, "picture");
        // Counted as it is offered, so that it never trails the writer's count (an
        // uncontended lock a picture: nothing next to the sinks' queues).
        if self.task.role == super::Role::Record {
            self.task.status.ingest(cam, |s| s.received_frames += 1);
        }
        for sink in &mut self.sinks {
            match (sink.frame(&frame), sink.kind()) {
                (Delivery::Queued | Delivery::Unwatched, _) => {}
                // The writer fell behind: it skips to the next keyframe rather than write
                // a broken GOP.
                (Delivery::Dropped, SinkKind::Recording) => {
                    self.task.status.ingest(cam, |s| s.dropped_frames += 1)
                }
                // Analysis is behind: it skips to the next keyframe; recording goes on.
                (Delivery::Dropped, SinkKind::Analysis) => {
                    self.task.status.ingest(cam, |s| s.analysis_dropped += 1)
                }
                // The live hub is behind: viewers skip to the next keyframe.
                (Delivery::Dropped, SinkKind::Live) => {
                    self.task.status.ingest(cam, |s| s.live_dropped += 1)
                }
                (Delivery::Closed, SinkKind::Recording) => anyhow::bail!("writer stopped"),
                (Delivery::Closed, SinkKind::Analysis | SinkKind::Live) => {}
            }
        }
        Ok(())
    }

    /// Hands an audio frame (placed on the recorder's clock by `timing::AudioClock`) to the
    /// writer.
    pub fn audio_frame(&mut self, frame: AudioFrame) {
        self.task
            .status
            .ingest(&self.task.camera.name, |s| s.audio_frames += 1);
        for sink in &mut self.sinks {
            // Never blocks: audio that does not fit is dropped and counted (the video
            // matters more).
            if sink.audio(&frame) == Delivery::Dropped {
                self.task
                    .status
                    .ingest(&self.task.camera.name, |s| s.audio_dropped += 1);
            }
        }
    }
}
