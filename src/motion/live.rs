//! Live motion analysis of one camera: frames tee'd from ingest -> [`LiveDecoder`] ->
//! [`Detector`] -> status and typed [`MotionMsg`]s for the timeline.
//!
//! One OS thread per camera. Its input channel is bounded and fed with `try_send`, so a
//! slow decoder makes analysis drop frames (to the next keyframe), never recording.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use crate::alerts::{Alert, AlertHub, AlertKind};
use crate::config::CameraConfig;
use crate::decode::{DecodeOptions, LiveDecoder};
use crate::events::Recorder;
use crate::media::{StreamMsg, VideoParams};
use crate::motion::detector::{Detector, Event};
use crate::status::SharedStatus;

/// Nice value of analysis threads (recording threads keep 0).
pub const ANALYSIS_NICE: libc::c_int = 10;

/// Width of event thumbnails (pixels; never upscaled).
pub const THUMBNAIL_WIDTH: u32 = 320;
/// Width (at most) and period of the live snapshot (`/api/cameras/{name}/snapshot.jpg`).
pub const SNAPSHOT_WIDTH: u32 = 640;
const SNAPSHOT_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// What the timeline receives.
#[derive(Clone, Debug)]
pub enum MotionMsg {
    /// One analysed frame.
    Frame {
        camera: Arc<str>,
        utc_us: i64,
        score: f32,
        motion: bool,
        /// Names of the zones with motion in this frame.
        zones: Vec<Arc<str>>,
        /// Fraction of each motion-grid cell in kept blobs, after noise filtering
        /// (0..=255), row-major.
        grid: Arc<[u8]>,
        grid_cols: u16,
        grid_rows: u16,
    },
    /// An event that just closed.
    Event(LiveEvent),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LiveEvent {
    /// Its id in the timeline (`None` if it could not be stored).
    pub id: Option<u64>,
    pub camera: String,
    pub start_us: i64,
    pub end_us: i64,
    /// The event's clip: `pre_roll` s before the start to `post_roll` s after the end
    /// (recording is continuous, so that video is on disk until retention takes it).
    pub clip_start_us: i64,
    pub clip_end_us: i64,
    pub zones: Vec<String>,
    pub peak_score: f64,
    pub bbox: [f64; 4],
}

/// What an open event's start alerts went out for.
#[derive(Default)]
struct Announced {
    camera: bool,
    zones: Vec<String>,
}

/// Whether alerts are armed now under an optional schedule (None: always).
pub struct LiveAnalyzer {
    camera: CameraConfig,
    status: SharedStatus,
    out: tokio::sync::broadcast::Sender<MotionMsg>,
    /// Writes events and motion history to the index.
    recorder: Recorder,
    /// The open event's peak frame so far, for its thumbnail.
    peak: Option<image::RgbImage>,
    alerts: AlertHub,
    /// The open event: its id, and what its start was announced for (the zones, and
    /// the camera as a whole), so that exactly those get an end alert. What was disarmed
    /// when its motion began is not announced (see [`crate::alerts::schedule`]).
    open: Option<(u64, Announced)>,
}

struct Run {
    decoder: LiveDecoder,
    params: Arc<VideoParams>,
    /// The ingest timeline its frames are on (a new one restarts the run).
    timeline: u64,
    /// (tick, utc) of the decoder's time zero: the detector's clock starts there.
    base: (i64, i64),
    /// When the decoder's CPU time was last added to the status.
    cpu_sampled: std::time::Instant,
    /// When the last live snapshot was taken (None: not yet in this run).
    snapshot_at: Option<std::time::Instant>,
}

impl LiveAnalyzer {
    pub fn new(
        camera: CameraConfig,
        status: SharedStatus,
        out: tokio::sync::broadcast::Sender<MotionMsg>,
        recorder: Recorder,
        alerts: AlertHub,
    ) -> Self {
        LiveAnalyzer {
            camera,
            status,
            out,
            recorder,
            peak: None,
            alerts,
            open: None,
        }
    }

    pub fn run(mut self, rx: Receiver<StreamMsg>) {
        // Recording comes first: this thread, and every thread it creates (GStreamer's
        // streaming threads, libav's decoder threads inherit a thread's nice value on
        // Linux), runs at lower priority. Failure only means equal priority.
        // SAFETY: setpriority on our own thread id has no memory-safety preconditions.
        unsafe {
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::gettid() as libc::id_t,
                ANALYSIS_NICE,
            );
        }
        let name: Arc<str> = self.camera.name.as_str().into();
        let zone_names: Vec<Arc<str>> = self
            .camera
            .zones
            .iter()
            .map(|z| z.name.as_str().into())
            .collect();
        let m = self.camera.motion.clone();
        let opts = DecodeOptions {
            width: m.width,
            fps: Some(m.fps),
            mode: m.decode,
            threads: 1,
        };
        let camera = self.camera.clone();
        let new_detector = || {
            let mut d = Detector::new(
                &camera.name,
                &camera.zones,
                &camera.masks,
                m.detector.clone(),
            );
            d.set_frame_interval_ms(1000 / m.fps as u64);
            d
        };
        let mut det = new_detector();
        let mut run: Option<Run> = None;
        self.status
            .camera(&self.camera.name, |s| s.motion_enabled = true);
        loop {
            // While no frames come (the camera is away), the timeline's writes the index
            // lost or refused are still written again.
            let msg = match rx.recv_timeout(std::time::Duration::from_secs(1)) {
                Ok(m) => m,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.recorder.sync();
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                StreamMsg::Frame(f) => {
                    // New parameters or a new timeline (a reconnect, or a discontinuity in
                    // the camera's clock): a new decoder from the next keyframe.
                    let stale = run.as_ref().is_some_and(|r| {
                        !Arc::ptr_eq(&r.params, &f.params) || r.timeline != f.timeline
                    });
                    if stale {
                        self.end(&mut det, &mut run, &name, &zone_names);
                        det = new_detector();
                    }
                    if run.is_none() {
                        if !f.is_key {
                            continue; // a decoder starts at a keyframe
                        }
                        match LiveDecoder::new(f.params.encoding, &f.params.codec_config, &opts) {
                            Ok(decoder) => {
                                run = Some(Run {
                                    decoder,
                                    params: f.params.clone(),
                                    timeline: f.timeline,
                                    // Time zero of the decoder: a second before the
                                    // first decode time, so that pictures displayed
                                    // before it (open GOPs) still have positive times.
                                    base: {
                                        let zero = f.dts_90k - 90_000;
                                        let pts = f.dts_90k + f.cts_90k as i64;
                                        (zero, f.utc_us - (pts - zero) * 100 / 9)
                                    },
                                    cpu_sampled: std::time::Instant::now(),
                                    snapshot_at: None,
                                })
                            }
                            Err(e) => {
                                self.error(format!("starting decoder: {e:#}"));
                                continue;
                            }
                        }
                    }
                    let r = run.as_mut().unwrap();
                    let ns = |t: i64| ((t - r.base.0).max(0) as u64) * 100_000 / 9;
                    let pts_ns = ns(f.dts_90k + f.cts_90k as i64);
                    let dts_ns = ns(f.dts_90k);
                    let res = r
                        .decoder
                        .push(f.data, pts_ns, dts_ns, f.is_key)
                        .and_then(|()| self.drain(r, &mut det, &name, &zone_names));
                    if let Err(e) = res {
                        // Restart the decoder at the next keyframe; keep the detector.
                        self.error(format!("{e:#}"));
                        run = None;
                    }
                }
                StreamMsg::EndRun => {
                    self.end(&mut det, &mut run, &name, &zone_names);
                    det = new_detector();
                }
                StreamMsg::Shutdown => break,
                // Audio is not analysed.
                StreamMsg::Audio(_) => {}
            }
        }
        self.end(&mut det, &mut run, &name, &zone_names);
        self.status.camera(&self.camera.name, |s| s.motion = false);
        let unconfirmed = self.recorder.finish();
        if unconfirmed > 0 {
            tracing::warn!(
                camera = %self.camera.name,
                "{} timeline writes not known to be durable at exit",
                self.recorder.unconfirmed()
            );
        }
    }

    /// An event opened: give it its id, store its first frame as a provisional thumbnail
    /// (so the alert's thumbnail URL works at once) and announce it.
    fn opened(&mut self, utc_us: i64, score: f32) {
        let id = match self.recorder.new_event_id() {
            Ok(id) => id,
            Err(e) => return self.timeline_error(e),
        };
        if let Some(j) = self.peak.as_ref().and_then(|img| jpeg(img).ok())
            && let Err(e) = self.recorder.put_thumbnail(id, &j)
        {
            self.timeline_error(e);
        }
        let camera = self.camera.arm.camera_armed(utc_us);
        self.open = Some((
            id,
            Announced {
                camera,
                zones: Vec::new(),
            },
        ));
        if camera {
            let _ = self.alerts.send(Alert::new(
                AlertKind::Start,
                &self.camera.name,
                None,
                id,
                utc_us,
                score,
            ));
        }
    }

    /// The index refused a write (a full disk, say): analysis goes on, the status says so.
    fn timeline_error(&mut self, e: crate::index::IndexError) {
        tracing::warn!(camera = %self.camera.name, "timeline: {e}");
        self.status.camera(&self.camera.name, |s| {
            s.timeline_errors += 1;
            s.set_error(format!("timeline: {e}"));
        });
    }

    fn error(&mut self, e: String) {
        tracing::warn!(camera = %self.camera.name, "motion analysis: {e}");
        self.status.camera(&self.camera.name, |s| {
            s.analysis_errors += 1;
            s.set_error(format!("motion analysis: {e}"));
        });
    }

    /// Analyses every decoded frame that is ready.
    fn drain(
        &mut self,
        r: &mut Run,
        det: &mut Detector,
        name: &Arc<str>,
        zone_names: &[Arc<str>],
    ) -> anyhow::Result<()> {
        r.decoder.poll_bus()?;
        while let Some(frame) = r.decoder.pull()? {
            let t_ms = frame.pts.map(|p| p.mseconds()).unwrap_or(0);
            let t = std::time::Instant::now();
            let (res, closed) = det.frame(frame.view(), t_ms)?;
            let detector_time = t.elapsed().as_secs_f64();
            let utc_us = r.base.1 + t_ms as i64 * 1000;
            if r.snapshot_at.is_none_or(|t| t.elapsed() >= SNAPSHOT_PERIOD) {
                r.snapshot_at = Some(std::time::Instant::now());
                match frame
                    .rgb(SNAPSHOT_WIDTH)
                    .map_err(|e| format!("{e:#}"))
                    .and_then(|img| jpeg(&img).map_err(|e| e.to_string()))
                {
                    Ok(j) => self
                        .status
                        .set_snapshot(&self.camera.name, utc_us, j.into()),
                    Err(e) => tracing::warn!(camera = %self.camera.name, "snapshot: {e}"),
                }
            }
            if res.peak {
                match frame.rgb(THUMBNAIL_WIDTH) {
                    Ok(img) => self.peak = Some(img),
                    Err(e) => tracing::warn!(camera = %self.camera.name, "thumbnail: {e:#}"),
                }
            }
            if res.opened {
                self.opened(utc_us, res.score as f32);
            }
            for &z in &res.new_zones {
                let zone = self.camera.zones[z].name.clone();
                if !self.camera.arm.zone_armed(z, utc_us) {
                    continue;
                }
                if let Some((id, Announced { zones, .. })) = &mut self.open {
                    let alert = Alert::new(
                        AlertKind::Start,
                        &self.camera.name,
                        Some(&zone),
                        *id,
                        utc_us,
                        res.score as f32,
                    );
                    zones.push(zone);
                    let _ = self.alerts.send(alert);
                }
            }
            if let Err(e) = self.recorder.frame(utc_us, &res) {
                self.timeline_error(e);
            }
            let errors = r.decoder.decode_errors;
            let camera_armed = self.camera.arm.camera_armed(utc_us);
            let disarmed: Vec<String> = (self.camera.zones.iter().enumerate())
                .filter(|&(i, _)| !self.camera.arm.zone_armed(i, utc_us))
                .map(|(_, z)| z.name.clone())
                .collect();
            self.status.camera(&self.camera.name, |s| {
                s.motion = res.motion;
                s.motion_score = res.score;
                s.armed = camera_armed;
                s.disarmed_zones = disarmed;
                s.analysed_frames += 1;
                s.motion_seconds += detector_time;
                s.decode_errors = errors;
            });
            let _ = self.out.send(MotionMsg::Frame {
                camera: name.clone(),
                utc_us,
                score: res.score as f32,
                motion: res.motion,
                zones: res.zones.iter().map(|&z| zone_names[z].clone()).collect(),
                grid: res.grid.into(),
                grid_cols: res.grid_cols,
                grid_rows: res.grid_rows,
            });
            if let Some(ev) = closed {
                self.emit(ev, r.base.1);
            }
        }
        if r.cpu_sampled.elapsed() >= std::time::Duration::from_secs(1) {
            r.cpu_sampled = std::time::Instant::now();
            let cpu = r.decoder.cpu_seconds();
            self.status
                .camera(&self.camera.name, |s| s.decode_seconds += cpu);
        }
        Ok(())
    }

    fn end(
        &mut self,
        det: &mut Detector,
        run: &mut Option<Run>,
        name: &Arc<str>,
        zones: &[Arc<str>],
    ) {
        if let Some(r) = run.as_mut() {
            let _ = self.drain(r, det, name, zones);
        }
        if let Some(ev) = det.finish() {
            let base = run.as_ref().map(|r| r.base.1).unwrap_or(0);
            self.emit(ev, base);
        }
        *run = None;
        if let Err(e) = self.recorder.save() {
            self.timeline_error(e);
        }
    }

    fn emit(&mut self, ev: Event, base_utc: i64) {
        let mut live = LiveEvent {
            id: None,
            camera: ev.camera,
            start_us: base_utc + ev.start_ms as i64 * 1000,
            end_us: base_utc + ev.end_ms as i64 * 1000,
            clip_start_us: base_utc + ev.start_ms as i64 * 1000
                - (self.camera.motion.pre_roll * 1e6) as i64,
            clip_end_us: base_utc
                + ev.end_ms as i64 * 1000
                + (self.camera.motion.detector.post_roll * 1e6) as i64,
            zones: ev.zones,
            peak_score: ev.peak_score,
            bbox: ev.bbox,
        };
        let thumbnail = self.peak.take().and_then(|img| match jpeg(&img) {
            Ok(j) => Some(j),
            Err(e) => {
                tracing::warn!(camera = %self.camera.name, "thumbnail: {e}");
                None
            }
        });
        let (id, announced) = match self.open.take() {
            Some(o) => o,
            None => match self.recorder.new_event_id() {
                Ok(id) => (id, Announced::default()),
                Err(e) => {
                    self.timeline_error(e);
                    (0, Announced::default())
                }
            },
        };
        if id != 0 {
            // A refused write is kept and written again once the index is back.
            if let Err(e) = self.recorder.event(id, &live, thumbnail) {
                self.timeline_error(e);
            }
            live.id = Some(id);
            let camera = announced.camera.then_some(None);
            for zone in announced
                .zones
                .iter()
                .map(|z| Some(z.as_str()))
                .chain(camera)
            {
                let _ = self.alerts.send(Alert::new(
                    AlertKind::End,
                    &self.camera.name,
                    zone,
                    id,
                    live.end_us,
                    live.peak_score as f32,
                ));
            }
        }
        tracing::info!(camera = %live.camera, id = ?live.id, zones = ?live.zones, score = live.peak_score,
            "motion event {} .. {}", crate::base::time::rfc3339(live.start_us), crate::base::time::rfc3339(live.end_us));
        let summary = crate::status::EventSummary {
            id: live.id,
            start: crate::base::time::rfc3339(live.start_us),
            end: crate::base::time::rfc3339(live.end_us),
            clip_start: crate::base::time::rfc3339(live.clip_start_us),
            clip_end: crate::base::time::rfc3339(live.clip_end_us),
            zones: live.zones.clone(),
            peak_score: live.peak_score,
            bbox: live.bbox,
        };
        self.status.camera(&self.camera.name, |s| {
            s.motion_events += 1;
            s.last_event = Some(summary);
        });
        let _ = self.out.send(MotionMsg::Event(live));
    }
}

/// Encodes a thumbnail as JPEG (quality 80).
fn jpeg(img: &image::RgbImage) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::with_capacity(16 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(img)?;
    Ok(out)
}
