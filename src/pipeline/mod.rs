//! The analysis pipeline of each camera: frames from ingest (a `media::Sink` of kind
//! `Analysis`) -> GStreamer decoding ([`crate::decode::LiveDecoder`]) -> the motion
//! detector (`vigil-motion`) -> its owned consumers, in this order per analysed frame:
//!
//! - [`pictures`]: the live snapshot and the open event's peak frame (its thumbnail);
//! - [`alerting`]: arming and start/end alerts on the [`crate::alerts::AlertHub`];
//! - the timeline ([`crate::events::Recorder`]): the motion history and closed events;
//! - the status: motion state, arming, counters.
//!
//! One OS thread per camera, at a lower priority than recording ([`ANALYSIS_NICE`]). Its
//! input queue is bounded and fed with `try_send`, so a slow decoder makes analysis drop
//! frames (to the next keyframe), never recording. Closed events cross to the timeline as
//! one type, [`crate::media::MotionEvent`].

pub mod alerting;
mod analyser;
pub mod pictures;

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context;

use crate::alerts::AlertHub;
use crate::config::CameraConfig;
use crate::events::Recorder;
use crate::index::Index;
use crate::media::StreamMsg;
use crate::status::SharedStatus;

pub use pictures::{SNAPSHOT_WIDTH, THUMBNAIL_WIDTH};

/// Nice value of analysis threads (recording threads keep 0).
pub const ANALYSIS_NICE: libc::c_int = 10;
/// Frames the analyser may have queued before ingest skips it to the next keyframe.
pub const ANALYSIS_QUEUE: usize = 64;

/// A running analysis thread.
pub struct Analysis {
    tx: SyncSender<StreamMsg>,
    thread: JoinHandle<()>,
    control: ZoneControl,
    overlay: Arc<MotionOverlay>,
}

/// New zones, masks and arming for a running analysis (the console's zone editor).
#[derive(Clone, Debug)]
pub struct ZoneUpdate {
    pub zones: Vec<crate::motion::Zone>,
    pub masks: Vec<crate::motion::Polygon>,
    pub arm: crate::schedule::Arming,
}

/// The live motion overlay of one camera (the console's Setup): while someone watches,
/// the analysis thread publishes each analysed frame's motion as JSON (see
/// `Analyser::overlay`); nothing is built while nobody does.
pub struct MotionOverlay {
    watchers: std::sync::atomic::AtomicUsize,
    tx: tokio::sync::watch::Sender<Option<Arc<str>>>,
}

impl Default for MotionOverlay {
    fn default() -> Self {
        MotionOverlay {
            watchers: Default::default(),
            tx: tokio::sync::watch::channel(None).0,
        }
    }
}

/// Keeps a viewer counted while it lives.
pub struct OverlayWatch {
    overlay: Arc<MotionOverlay>,
    /// The latest frame's JSON, as the analysis thread publishes them.
    pub rx: tokio::sync::watch::Receiver<Option<Arc<str>>>,
}

impl Drop for OverlayWatch {
    fn drop(&mut self) {
        (self.overlay.watchers).fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl MotionOverlay {
    /// Starts watching: frames are published until the returned value is dropped.
    pub fn watch(self: &Arc<Self>) -> OverlayWatch {
        (self.watchers).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OverlayWatch {
            overlay: self.clone(),
            rx: self.tx.subscribe(),
        }
    }

    fn watched(&self) -> bool {
        self.watchers.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    fn publish(&self, json: String) {
        self.tx.send_replace(Some(json.into()));
    }
}

/// Hands zone updates to a camera's analysis thread. The thread takes the latest at its
/// next message (a frame, or within a second without frames) and applies it as soon as
/// no event is open, so that an event never changes zones half-way: the background model
/// is kept (no calibration) and recording is not touched.
#[derive(Clone, Default)]
pub struct ZoneControl(Arc<Mutex<Option<ZoneUpdate>>>);

impl ZoneControl {
    /// Replaces any update not yet taken.
    pub fn send(&self, u: ZoneUpdate) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(u);
    }

    fn take(&self) -> Option<ZoneUpdate> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Starts the analysis of `camera` (whose motion analysis is enabled): opens its timeline
/// in `index` and starts its thread. Errors: the timeline cannot be opened (the index
/// refused the camera's or a zone's id), or the thread cannot be created.
pub fn start(
    camera: &CameraConfig,
    index: &Index,
    status: SharedStatus,
    alerts: AlertHub,
) -> anyhow::Result<Analysis> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<StreamMsg>(ANALYSIS_QUEUE);
    let zones: Vec<String> = camera.zones.iter().map(|z| z.name.clone()).collect();
    let recorder = Recorder::new(index.clone(), &camera.name, &zones)
        .with_context(|| format!("camera {}: cannot open its timeline", camera.name))?;
    let control = ZoneControl::default();
    let overlay = Arc::new(MotionOverlay::default());
    let a = analyser::Analyser::new(
        camera.clone(),
        status,
        recorder,
        alerts,
        (control.clone(), overlay.clone()),
    );
    let thread = std::thread::Builder::new()
        .name(format!("motion-{}", camera.name))
        .spawn(move || a.run(rx))?;
    Ok(Analysis {
        tx,
        thread,
        control,
        overlay,
    })
}

impl Analysis {
    /// The queue ingest feeds (as a sink of kind `Analysis`).
    pub fn sender(&self) -> SyncSender<StreamMsg> {
        self.tx.clone()
    }

    /// This camera's live motion overlay.
    pub fn overlay(&self) -> Arc<MotionOverlay> {
        self.overlay.clone()
    }

    /// Where the console's zone editor sends this camera's new zones.
    pub fn zone_control(&self) -> ZoneControl {
        self.control.clone()
    }

    /// Stops the thread (blocking): it closes any open event, flushes the timeline and
    /// exits. Call once ingest has stopped feeding it.
    pub fn stop(self) {
        let _ = self.tx.send(StreamMsg::Shutdown);
        let _ = self.thread.join();
    }
}
