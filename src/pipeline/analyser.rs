//! The analysis thread of one camera: the decoder runs (one per stream parameters and
//! ingest timeline, each from a keyframe), the detector, and the hand-over of each
//! analysed frame and closed event to the consumers (see the module above).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::alerting::{Alerting, Announced};
use super::pictures::Pictures;
use crate::alerts::AlertHub;
use crate::base::time::rfc3339;
use crate::config::CameraConfig;
use crate::decode::{DecodeOptions, LiveDecoder, LumaFrame};
use crate::events::{MotionEvent, Recorder};
use crate::media::{Frame, StreamMsg, VideoParams};
use crate::motion::detector::{Detector, Event, FrameResult};
use crate::status::SharedStatus;

pub(super) struct Analyser {
    camera: CameraConfig,
    status: SharedStatus,
    /// Writes events and motion history to the index.
    recorder: Recorder,
    pictures: Pictures,
    alerting: Alerting,
    detector: Detector,
    /// Zone updates from the console, and one waiting for the open event to close.
    control: super::ZoneControl,
    pending: Option<super::ZoneUpdate>,
    overlay: Arc<super::MotionOverlay>,
}

/// One decoder run: from a keyframe, while the stream's parameters and timeline last.
struct Run {
    decoder: LiveDecoder,
    params: Arc<VideoParams>,
    /// The ingest timeline its frames are on (a new one restarts the run).
    timeline: u64,
    /// (tick, utc) of the decoder's time zero: the detector's clock starts there.
    base: (i64, i64),
    /// When the decoder's CPU time was last added to the status.
    cpu_sampled: Instant,
}

impl Analyser {
    pub(super) fn new(
        camera: CameraConfig,
        status: SharedStatus,
        recorder: Recorder,
        alerts: AlertHub,
        (control, overlay): (super::ZoneControl, Arc<super::MotionOverlay>),
    ) -> Self {
        let zones = camera.zones.iter().map(|z| z.name.clone()).collect();
        Analyser {
            alerting: Alerting::new(&camera.name, zones, camera.arm.clone(), alerts),
            detector: new_detector(&camera),
            camera,
            status,
            recorder,
            pictures: Pictures::default(),
            control,
            pending: None,
            overlay,
        }
    }

    pub(super) fn run(mut self, rx: Receiver<StreamMsg>) {
        // Recording comes first: this thread, and every thread it creates (GStreamer's
        // streaming threads, libav's decoder threads inherit a thread's nice value on
        // Linux), runs at lower priority. Failure only means equal priority.
        // SAFETY: setpriority on our own thread id has no memory-safety preconditions.
        unsafe {
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::gettid() as libc::id_t,
                super::ANALYSIS_NICE,
            );
        }
        let mut run: Option<Run> = None;
        self.status
            .analysis(&self.camera.name, |s| s.motion_enabled = true);
        loop {
            // While no frames come (the camera is away), the timeline's writes the index
            // lost or refused are still written again.
            let msg = rx.recv_timeout(Duration::from_secs(1));
            self.zone_updates();
            let msg = match msg {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    self.recorder.sync();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                StreamMsg::Frame(f) => self.frame(f, &mut run),
                StreamMsg::EndRun => self.end(&mut run),
                StreamMsg::Shutdown => break,
                // Audio is not analysed.
                StreamMsg::Audio(_) => {}
            }
        }
        self.end(&mut run);
        self.status
            .analysis(&self.camera.name, |s| s.motion = false);
        let unconfirmed = self.recorder.finish();
        if unconfirmed > 0 {
            tracing::warn!(
                camera = %self.camera.name,
                "{unconfirmed} timeline writes not known to be durable at exit",
            );
        }
    }

    /// Takes the latest zone update from the console and applies the waiting one once no
    /// event is open.
    fn zone_updates(&mut self) {
        if let Some(u) = self.control.take() {
            self.pending = Some(u);
            self.status
                .analysis(&self.camera.name, |s| s.zones_pending = true);
        }
        if self.pending.is_none() || self.detector.event_open() {
            return;
        }
        let u = self.pending.take().expect("checked above");
        let names: Vec<String> = u.zones.iter().map(|z| z.name.clone()).collect();
        if let Err(e) = self.recorder.set_zones(&names) {
            self.pending = Some(u); // tried again at the next message
            return self.timeline_error(e);
        }
        if let Err(e) = self.detector.set_zones(&u.zones, &u.masks) {
            // Validated with the config before it was sent; kept out all the same.
            self.error(format!("new zones not applied: {e}"));
            let old: Vec<String> = self.camera.zones.iter().map(|z| z.name.clone()).collect();
            let _ = self.recorder.set_zones(&old);
            return;
        }
        self.alerting.set_zones(names.clone(), u.arm.clone());
        tracing::info!(camera = %self.camera.name, zones = ?names, masks = u.masks.len(),
            "zones changed");
        self.camera.zones = u.zones;
        self.camera.masks = u.masks;
        self.camera.arm = u.arm;
        self.status.analysis(&self.camera.name, |s| {
            s.zones_pending = false;
            s.zones_changed += 1;
        });
    }

    /// Decodes one frame and analyses what the decoder has ready.
    fn frame(&mut self, f: Frame, run: &mut Option<Run>) {
        // New parameters or a new timeline (a reconnect, or a discontinuity in the
        // camera's clock): a new decoder from the next keyframe.
        if run
            .as_ref()
            .is_some_and(|r| !Arc::ptr_eq(&r.params, &f.params) || r.timeline != f.timeline)
        {
            self.end(run);
        }
        if run.is_none() {
            if !f.is_key {
                return; // a decoder starts at a keyframe
            }
            match self.new_run(&f) {
                Ok(r) => *run = Some(r),
                Err(e) => return self.error(format!("starting decoder: {e:#}")),
            }
        }
        let r = run.as_mut().unwrap();
        let ns = |t: i64| ((t - r.base.0).max(0) as u64) * 100_000 / 9;
        let pts_ns = ns(f.dts_90k + f.cts_90k as i64);
        let dts_ns = ns(f.dts_90k);
        let res = r
            .decoder
            .push(f.data, pts_ns, dts_ns, f.is_key)
            .and_then(|()| self.drain(r));
        if let Err(e) = res {
            // Restart the decoder at the next keyframe; keep the detector.
            self.error(format!("{e:#}"));
            *run = None;
        }
    }

    fn new_run(&mut self, f: &Frame) -> anyhow::Result<Run> {
        let m = &self.camera.motion;
        let opts = DecodeOptions {
            width: m.width,
            fps: Some(m.fps),
            mode: m.decode,
            threads: 1,
        };
        let decoder = LiveDecoder::new(f.params.encoding, &f.params.codec_config, &opts)?;
        self.pictures.new_run();
        Ok(Run {
            decoder,
            params: f.params.clone(),
            timeline: f.timeline,
            // Time zero of the decoder: a second before the first decode time, so that
            // pictures displayed before it (open GOPs) still have positive times.
            base: {
                let zero = f.dts_90k - 90_000;
                let pts = f.dts_90k + f.cts_90k as i64;
                (zero, f.utc_us - (pts - zero) * 100 / 9)
            },
            cpu_sampled: Instant::now(),
        })
    }

    /// Analyses every decoded frame that is ready.
    fn drain(&mut self, r: &mut Run) -> anyhow::Result<()> {
        r.decoder.poll_bus()?;
        while let Some(frame) = r.decoder.pull()? {
            let t_ms = frame.pts.map(|p| p.mseconds()).unwrap_or(0);
            let t = Instant::now();
            let (res, closed) = self.detector.frame(frame.view(), t_ms)?;
            let detector_seconds = t.elapsed().as_secs_f64();
            let utc_us = r.base.1 + t_ms as i64 * 1000;
            if self.overlay.watched() {
                self.overlay.publish(self.overlay_json(&res, utc_us));
            }
            self.analysed(&frame, &res, utc_us);
            let errors = r.decoder.decode_errors;
            let (armed, disarmed) = self.alerting.armed_now(utc_us);
            self.status.analysis(&self.camera.name, |s| {
                s.motion = res.motion;
                s.motion_score = res.score;
                s.armed = armed;
                s.disarmed_zones = disarmed;
                s.analysed_frames += 1;
                s.motion_seconds += detector_seconds;
                s.decode_errors = errors;
            });
            if let Some(ev) = closed {
                self.closed(ev, r.base.1);
            }
        }
        if r.cpu_sampled.elapsed() >= Duration::from_secs(1) {
            r.cpu_sampled = Instant::now();
            let cpu = r.decoder.cpu_seconds();
            self.status
                .analysis(&self.camera.name, |s| s.decode_seconds += cpu);
        }
        Ok(())
    }

    /// One analysed frame for the motion overlay: `changed` (the changed pixels before
    /// blob filtering, `changed_cols` × `changed_rows` blocks as hex of row-major bits,
    /// least significant first), `cells` (per grid cell, the share covered by the blobs
    /// kept, 0..=255), the zones with motion, the score, and whether the frame was seen
    /// as a lighting change, calibration, or inside an open event.
    fn overlay_json(&self, res: &FrameResult, utc_us: i64) -> String {
        let (cols, rows, flags) = self
            .detector
            .changed_preview(160)
            .unwrap_or((0, 0, Vec::new()));
        let mut packed = vec![0u8; flags.len().div_ceil(8)];
        for (i, &f) in flags.iter().enumerate() {
            packed[i / 8] |= f << (i % 8);
        }
        let zones: Vec<&str> = (res.zones.iter())
            .filter_map(|&z| self.camera.zones.get(z).map(|z| z.name.as_str()))
            .collect();
        serde_json::json!({
            "time": rfc3339(utc_us),
            "changed_cols": cols, "changed_rows": rows, "changed": hex::encode(packed),
            "grid_cols": res.grid_cols, "grid_rows": res.grid_rows, "cells": res.grid,
            "zones": zones, "score": res.score, "motion": res.motion,
            "lighting_change": res.lighting_change, "calibrating": res.calibrating,
            "event_open": self.detector.event_open(),
        })
        .to_string()
    }

    /// Hands one analysed frame at `utc_us` to the pictures, the alerts and the timeline.
    fn analysed(&mut self, frame: &LumaFrame, res: &FrameResult, utc_us: i64) {
        match self.pictures.snapshot(frame) {
            Some(Ok(j)) => self
                .status
                .set_snapshot(&self.camera.name, utc_us, j.into()),
            Some(Err(e)) => tracing::warn!(camera = %self.camera.name, "snapshot: {e}"),
            None => {}
        }
        if res.peak
            && let Err(e) = self.pictures.peak(frame)
        {
            tracing::warn!(camera = %self.camera.name, "thumbnail: {e}");
        }
        if res.opened {
            self.opened(utc_us, res.score as f32);
        }
        (self.alerting).zones_joined(&res.new_zones, utc_us, res.score as f32);
        if let Err(e) = self.recorder.frame(utc_us, res) {
            self.timeline_error(e);
        }
    }

    /// An event opened: give it its id, store its first frame as a provisional thumbnail
    /// (so the alert's thumbnail URL works at once) and announce it.
    fn opened(&mut self, utc_us: i64, score: f32) {
        let id = match self.recorder.new_event_id() {
            Ok(id) => id,
            Err(e) => return self.timeline_error(e),
        };
        if let Some(j) = self.pictures.peak_jpeg()
            && let Err(e) = self.recorder.put_thumbnail(id, &j)
        {
            self.timeline_error(e);
        }
        self.alerting.opened(id, utc_us, score);
    }

    /// Ends a decoder run: analyses what the decoder still holds, closes the open event,
    /// saves the motion history, and starts a new detector (a new background).
    fn end(&mut self, run: &mut Option<Run>) {
        if let Some(r) = run.as_mut() {
            let _ = self.drain(r);
        }
        if let Some(ev) = self.detector.finish() {
            let base = run.as_ref().map(|r| r.base.1).unwrap_or(0);
            self.closed(ev, base);
        }
        *run = None;
        if let Err(e) = self.recorder.save() {
            self.timeline_error(e);
        }
        self.detector = new_detector(&self.camera);
    }

    /// An event closed: placed on the UTC clock (`base_utc`: µs at the detector's time
    /// zero), stored with its thumbnail, its end alerts sent, the status told.
    fn closed(&mut self, ev: Event, base_utc: i64) {
        let m = &self.camera.motion;
        let mut event = MotionEvent {
            id: None,
            camera: ev.camera,
            start_us: base_utc + ev.start_ms as i64 * 1000,
            end_us: base_utc + ev.end_ms as i64 * 1000,
            clip_start_us: base_utc + ev.start_ms as i64 * 1000 - (m.pre_roll * 1e6) as i64,
            clip_end_us: base_utc + ev.end_ms as i64 * 1000 + (m.detector.post_roll * 1e6) as i64,
            zones: ev.zones,
            peak_score: ev.peak_score,
            bbox: ev.bbox,
        };
        let thumbnail = match self.pictures.take_thumbnail() {
            Some(Ok(j)) => Some(j),
            Some(Err(e)) => {
                tracing::warn!(camera = %self.camera.name, "thumbnail: {e}");
                None
            }
            None => None,
        };
        let (id, announced) = match self.alerting.take_open() {
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
            if let Err(e) = self.recorder.event(id, &event, thumbnail) {
                self.timeline_error(e);
            }
            event.id = Some(id);
            (self.alerting).closed(id, &announced, event.end_us, event.peak_score as f32);
        }
        tracing::info!(camera = %event.camera, id = event.id.unwrap_or(0), zones = ?event.zones,
            score = event.peak_score, "motion event {} .. {}", rfc3339(event.start_us),
            rfc3339(event.end_us));
        self.status.analysis(&self.camera.name, |s| {
            s.motion_events += 1;
            s.last_event = Some(event);
        });
    }

    /// The index refused a write (a full disk, say): analysis goes on, the status says so.
    fn timeline_error(&mut self, e: crate::index::IndexError) {
        tracing::warn!(camera = %self.camera.name, "timeline: {e}");
        self.status.analysis(&self.camera.name, |s| {
            s.timeline_errors += 1;
            s.set_error(format!("timeline: {e}"));
        });
    }

    fn error(&mut self, e: String) {
        tracing::warn!(camera = %self.camera.name, "motion analysis: {e}");
        self.status.analysis(&self.camera.name, |s| {
            s.analysis_errors += 1;
            s.set_error(format!("motion analysis: {e}"));
        });
    }
}

/// A fresh detector for the camera (a new background, calibrating).
fn new_detector(camera: &CameraConfig) -> Detector {
    let m = &camera.motion;
    let mut d = Detector::new(
        &camera.name,
        &camera.zones,
        &camera.masks,
        m.detector.clone(),
    );
    d.set_frame_interval_ms(1000 / m.fps as u64);
    d
}
