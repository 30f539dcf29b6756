//! Live video for viewers: per camera, a [`Hub`] fed by ingest (a `media::Sink` of kind
//! `SinkKind::Live`, which skips to the next keyframe when the hub falls behind) that
//! packages each picture as a one-frame fragmented-MP4 fragment (`prft` + `moof` + `mdat`,
//! ISO/IEC 14496-12; the `prft` box carries the picture's UTC) and hands it to every viewer.
//!
//! Each viewer has its own bounded queue ([`VIEWER_QUEUE`] messages): a viewer that falls
//! behind loses pictures up to the next keyframe, never the others' and never recording.
//! A viewer starts with the stream's init segment (`ftyp` + `moov`) and then the next
//! keyframe; new stream parameters (a resolution change, a new session with a new SPS) send
//! a new init segment and start again at a keyframe. Nothing is packaged while nobody
//! watches.
//!
//! Decode times run on one continuous live clock (90 kHz) across sessions and timeline
//! breaks, as Media Source Extensions want them; each picture's duration is known when the
//! next arrives, so a picture is sent one picture late (one frame interval of latency).
//!
//! The hub runs on a thread of its own (`live-<camera>`), off the tokio executor; viewers
//! read tokio channels.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::media::{Frame, StreamMsg, VideoParams};
use crate::record::fmp4;

/// Messages a viewer's queue holds (about 4 s at 15 fps).
pub const VIEWER_QUEUE: usize = 64;

/// Pictures the hub's own queue (from ingest) holds.
pub const HUB_QUEUE: usize = 32;

/// What a viewer receives.
#[derive(Clone, Debug)]
pub enum LiveMsg {
    /// The stream's init segment and its codec (RFC 6381, e.g. `avc1.64001f`), for
    /// `MediaSource.addSourceBuffer('video/mp4; codecs="..."')`.
    Init {
        codec: String,
        width: u32,
        height: u32,
        segment: Bytes,
    },
    /// One picture as a fragment: `prft` (its UTC), `moof`, `mdat`.
    Fragment(Bytes),
}

/// A viewer's end of the stream.
pub type ViewerRx = tokio::sync::mpsc::Receiver<LiveMsg>;

struct Viewer {
    tx: tokio::sync::mpsc::Sender<LiveMsg>,
    /// Waiting for a keyframe: it just joined, fell behind, or the parameters changed.
    waiting_key: bool,
}

#[derive(Default)]
struct Shared {
    viewers: Vec<Viewer>,
    /// The current stream's init segment.
    init: Option<LiveMsg>,
    /// Pictures viewers lost (a full queue, up to the next keyframe).
    dropped: u64,
}

/// A camera's live stream: viewers subscribe to it.
#[derive(Clone, Default)]
pub struct Hub {
    shared: Arc<Mutex<Shared>>,
    /// Set while anyone watches: ingest's live sink is gated on it.
    watching: Arc<AtomicBool>,
}

impl Hub {
    /// A new viewer: its queue starts with the current init segment, if the stream has
    /// parameters yet, then fragments from the next keyframe.
    pub fn subscribe(&self) -> ViewerRx {
        let (tx, rx) = tokio::sync::mpsc::channel(VIEWER_QUEUE);
        let mut s = self.shared.lock().unwrap();
        if let Some(init) = &s.init {
            let _ = tx.try_send(init.clone());
        }
        s.viewers.push(Viewer {
            tx,
            waiting_key: true,
        });
        self.watching.store(true, Ordering::Relaxed);
        rx
    }

    /// Set while anyone watches (cleared at the first picture after the last one left):
    /// the gate of ingest's live sink (`media::Sink::gated`).
    pub fn watching(&self) -> Arc<AtomicBool> {
        self.watching.clone()
    }

    /// Viewers now (those whose receiver was dropped are counted until the next picture).
    pub fn viewers(&self) -> usize {
        self.shared.lock().unwrap().viewers.len()
    }

    /// Pictures viewers lost because they fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().unwrap().dropped
    }

    /// Starts the hub's thread reading ingest's messages from a new queue; returns the
    /// queue's sender (for a `SinkKind::Live` sink). The thread ends at `Shutdown` or
    /// when every sender is gone. Errors: the thread cannot be started.
    pub fn start(&self, camera: &str) -> std::io::Result<SyncSender<StreamMsg>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(HUB_QUEUE);
        let hub = self.clone();
        std::thread::Builder::new()
            .name(format!("live-{camera}"))
            .spawn(move || hub.run(rx))?;
        Ok(tx)
    }

    fn run(self, rx: Receiver<StreamMsg>) {
        let mut p = Packager::default();
        while let Ok(m) = rx.recv() {
            match m {
                StreamMsg::Frame(f) => {
                    for out in p.frame(f, self.viewers() > 0) {
                        self.publish(out);
                    }
                }
                StreamMsg::EndRun => {
                    if let Some(out) = p.end_run() {
                        self.publish(out);
                    }
                }
                StreamMsg::Audio(_) => {}
                StreamMsg::Shutdown => break,
            }
        }
    }

    /// Hands one packaged item to every viewer, by its drop policy.
    fn publish(&self, out: Packaged) {
        let mut s = self.shared.lock().unwrap();
        let Shared {
            viewers,
            init: current,
            dropped,
        } = &mut *s;
        match out {
            Packaged::Init(init) => {
                for v in viewers.iter_mut() {
                    v.waiting_key = true;
                    let _ = v.tx.try_send(init.clone());
                }
                *current = Some(init);
            }
            Packaged::Fragment { is_key, bytes } => {
                viewers.retain_mut(|v| {
                    if v.tx.is_closed() {
                        return false;
                    }
                    if v.waiting_key && !is_key {
                        return true;
                    }
                    match v.tx.try_send(LiveMsg::Fragment(bytes.clone())) {
                        Ok(()) => {
                            v.waiting_key = false;
                            true
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                            v.waiting_key = true;
                            *dropped += 1;
                            true
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
                    }
                });
                self.watching.store(!viewers.is_empty(), Ordering::Relaxed);
            }
        }
    }
}

/// What the packager makes of the stream.
enum Packaged {
    /// New parameters: the init segment viewers need first.
    Init(LiveMsg),
    /// A picture's fragment.
    Fragment { is_key: bool, bytes: Bytes },
}

/// Turns pictures into fragments on a continuous live clock: pure, no I/O.
#[derive(Default)]
struct Packager {
    params: Option<Arc<VideoParams>>,
    /// The picture waiting for its successor (its duration), on the live clock.
    held: Option<(Frame, u64)>,
    /// The current timeline and what to add to its decode times to get the live clock's.
    timeline: Option<(u64, i64)>,
    /// Where the live clock has got to: the end of the last picture sent.
    end: u64,
    seq: u32,
}

/// A picture's duration when no successor tells it (90 kHz): the stream's nominal one,
/// or 1/15 s.
fn nominal(f: &Frame) -> u32 {
    f.params.nominal_duration.unwrap_or(6000)
}

impl Packager {
    /// Takes a picture; returns what is ready to send. With `packaging` false (nobody
    /// watches) it only keeps its clocks.
    fn frame(&mut self, f: Frame, packaging: bool) -> Vec<Packaged> {
        let mut out = Vec::new();
        let new_params = !self
            .params
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, &f.params));
        let same_timeline = self.timeline.is_some_and(|(t, _)| t == f.timeline);
        // The held picture ends where this one starts, on the same timeline.
        if let Some((h, live_dts)) = self.held.take() {
            let duration = if same_timeline && !new_params {
                (f.dts_90k - h.dts_90k).clamp(1, 180_000) as u32
            } else {
                nominal(&h)
            };
            out.extend(self.package(h, live_dts, duration, packaging));
        }
        if new_params {
            self.params = Some(f.params.clone());
            let init = fmp4::init_segment(
                &f.params.sample_entry,
                f.params.width,
                f.params.height,
                None,
            );
            out.push(Packaged::Init(LiveMsg::Init {
                codec: f.params.codec.clone(),
                width: f.params.width,
                height: f.params.height,
                segment: Bytes::from(init.bytes),
            }));
        }
        if !same_timeline || new_params {
            // A new timeline continues the live clock where it got to.
            self.timeline = Some((f.timeline, self.end as i64 - f.dts_90k));
        }
        let offset = self.timeline.map_or(0, |(_, o)| o);
        let live_dts = (f.dts_90k + offset).max(self.end as i64) as u64;
        self.held = Some((f, live_dts));
        out
    }

    /// The session ended: the held picture goes with its nominal duration.
    fn end_run(&mut self) -> Option<Packaged> {
        let (h, live_dts) = self.held.take()?;
        self.timeline = None;
        let d = nominal(&h);
        self.package(h, live_dts, d, true)
    }

    fn package(
        &mut self,
        f: Frame,
        live_dts: u64,
        duration: u32,
        packaging: bool,
    ) -> Option<Packaged> {
        self.end = live_dts + duration as u64;
        if !packaging {
            return None;
        }
        self.seq = self.seq.wrapping_add(1);
        let sample = fmp4::Sample {
            duration,
            size: f.data.len() as u32,
            is_key: f.is_key,
            cts_offset: f.cts_90k,
        };
        let mut bytes = fmp4::fragment_header(self.seq, live_dts, f.utc_us, &[sample], None);
        bytes.extend_from_slice(&f.data);
        Some(Packaged::Fragment {
            is_key: f.is_key,
            bytes: Bytes::from(bytes),
        })
    }
}

#[cfg(test)]
mod tests;
