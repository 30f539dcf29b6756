//! Ingest: one async task per camera that holds an RTSP session with retina, turns its
//! video frames into [`Frame`]s for the camera's writer thread, and reconnects with
//! exponential backoff and jitter (1 s to 60 s) when the camera goes away.
//!
//! Nothing here decodes video. Before each new session the task waits out stale sessions
//! of the previous one (retina's `SessionGroup`), which some servers (live555) keep
//! streaming into a reused connection otherwise.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{
    Credentials, PlayOptions, SessionGroup, SessionOptions, SetupOptions, TeardownPolicy, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use tokio_util_shim::CancelToken;

use crate::config::{CameraConfig, TransportKind};
use crate::motion::live::{AnalysisFrame, AnalysisMsg};
use crate::record::writer::{Frame, VideoParams, WriterMsg};
use crate::status::{CameraState, SharedStatus, now_us};

pub mod tokio_util_shim {
    //! A minimal cancellation token on top of `tokio::sync::watch`.
    #[derive(Clone)]
    pub struct CancelToken(tokio::sync::watch::Receiver<bool>);
    pub struct CancelSource(tokio::sync::watch::Sender<bool>);

    pub fn new() -> (CancelSource, CancelToken) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (CancelSource(tx), CancelToken(rx))
    }
    impl CancelSource {
        pub fn cancel(&self) {
            let _ = self.0.send(true);
        }
        /// Another token of this source.
        pub fn token(&self) -> CancelToken {
            CancelToken(self.0.subscribe())
        }
    }
    impl CancelToken {
        pub fn is_cancelled(&self) -> bool {
            *self.0.borrow()
        }
        pub async fn cancelled(&mut self) {
            let _ = self.0.wait_for(|v| *v).await;
        }
    }
}

pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A session that streamed this long resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);
/// No frame for this long means the session is dead.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Delay before reconnect attempt `failures` (1-based): 1 s doubling to 60 s, with up to
/// 25% random jitter so that many cameras behind one failed switch do not reconnect in
/// lockstep.
pub fn backoff(failures: u32) -> Duration {
    let base = MIN_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(6));
    let base = base.min(MAX_BACKOFF);
    let jitter = 1.0 - fastrand::f64() * 0.25;
    base.mul_f64(jitter).max(MIN_BACKOFF.mul_f64(0.75))
}

/// What a session is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The camera's `url`: recorded (and analysed, unless a detect session exists).
    Record,
    /// The camera's `detect_url`: analysed only; reports as `detect_state`/`detect_error`.
    Detect,
}

pub struct IngestTask {
    pub camera: CameraConfig,
    pub role: Role,
    /// The segment writer (none for a detect-only session).
    pub writer: Option<SyncSender<WriterMsg>>,
    /// Motion analysis, if enabled: gets every frame too (shared, not copied).
    pub analysis: Option<SyncSender<AnalysisMsg>>,
    pub status: SharedStatus,
    pub cancel: CancelToken,
}

impl IngestTask {
    fn set_state(&self, st: CameraState) {
        let name = &self.camera.name;
        match self.role {
            Role::Record => self.status.camera(name, |s| s.set_state(st)),
            Role::Detect => self.status.camera(name, |s| s.detect_state = Some(st)),
        }
    }

    fn url(&self) -> &url::Url {
        match self.role {
            Role::Record => &self.camera.url,
            Role::Detect => self.camera.detect_url.as_ref().unwrap_or(&self.camera.url),
        }
    }

    pub async fn run(self) {
        let name = self.camera.name.clone();
        let mut cancel = self.cancel.clone();
        let group = Arc::new(SessionGroup::default().named(name.clone()));
        let mut failures = 0u32;
        let mut run = 0u64;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let stale = group.stale_sessions();
            if stale.num_sessions > 0 {
                self.set_state(CameraState::WaitingStaleSession);
                tracing::info!(camera = %name, n = stale.num_sessions, "waiting for stale sessions to end");
                tokio::select! {
                    _ = group.await_stale_sessions(&stale) => {}
                    _ = tokio::time::sleep(Duration::from_secs(70)) => {}
                    _ = cancel.cancelled() => break,
                }
            }
            self.set_state(CameraState::Connecting);
            run += 1;
            let started = Instant::now();
            let result = tokio::select! {
                r = self.session(group.clone(), run) => r,
                _ = cancel.cancelled() => Ok(()),
            };
            if cancel.is_cancelled() {
                break; // the writer gets Shutdown and closes with that reason
            }
            if let Some(w) = &self.writer {
                let _ = w.try_send(WriterMsg::EndRun);
            }
            if let Some(a) = &self.analysis {
                let _ = a.try_send(AnalysisMsg::EndRun);
            }
            if started.elapsed() >= HEALTHY_SESSION {
                failures = 0;
            }
            failures += 1;
            let msg = match result {
                Ok(()) => "stream ended".to_string(),
                Err(e) => format!("{e:#}"),
            };
            let delay = backoff(failures);
            tracing::warn!(camera = %name, role = ?self.role, "{msg}; reconnecting in {:.1} s", delay.as_secs_f64());
            match self.role {
                Role::Record => self.status.camera(&name, |s| {
                    s.set_state(CameraState::Backoff);
                    s.set_error(msg);
                    s.reconnects += 1;
                    s.fps = 0.0;
                    s.bitrate_bps = 0.0;
                }),
                Role::Detect => self.status.camera(&name, |s| {
                    s.detect_state = Some(CameraState::Backoff);
                    s.detect_error = Some(msg);
                }),
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => break,
            }
        }
        self.set_state(CameraState::Stopped);
    }

    async fn session(&self, group: Arc<SessionGroup>, run: u64) -> anyhow::Result<()> {
        let cam = &self.camera;
        let creds = match (&cam.username, cam.read_password()?) {
            (Some(u), p) => Some(Credentials {
                username: u.clone(),
                password: p.unwrap_or_default(),
            }),
            (None, _) => None,
        };
        let mut session = retina::client::Session::describe(
            self.url().clone(),
            SessionOptions::default()
                .creds(creds)
                .session_group(group)
                .teardown(TeardownPolicy::Auto)
                .user_agent(format!("Vigil/{}", env!("CARGO_PKG_VERSION"))),
        )
        .await?;
        let stream_i = session
            .streams()
            .iter()
            .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"))
            .ok_or_else(|| anyhow::anyhow!("the camera offers no H.264 or H.265 video stream"))?;
        let transport = match cam.transport {
            TransportKind::Tcp => Transport::default(),
            TransportKind::Udp => "udp".parse().expect("valid transport"),
        };
        session
            .setup(
                stream_i,
                SetupOptions::default()
                    .transport(transport)
                    .frame_format(FrameFormat::MP4),
            )
            .await?;
        let mut demuxed = session
            .play(
                PlayOptions::default()
                    .enforce_timestamps_with_max_jump_secs(NonZeroU32::new(10).unwrap()),
            )
            .await?
            .demuxed()?;
        self.set_state(CameraState::Streaming);
        tracing::info!(camera = %cam.name, role = ?self.role, "streaming");

        let mut params: Option<Arc<VideoParams>> = None;
        let mut base: Option<(i64, i64)> = None; // (pts, utc) of the first frame
        let mut dropping = false;
        let mut analysis_dropping = false;
        let mut window = RateWindow::new();
        loop {
            let item = match tokio::time::timeout(FRAME_TIMEOUT, demuxed.next()).await {
                Err(_) => anyhow::bail!("no data for {} s", FRAME_TIMEOUT.as_secs()),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(Some(Ok(item))) => item,
            };
            let CodecItem::VideoFrame(f) = item else {
                continue;
            };
            if (f.has_new_parameters() || params.is_none())
                && let Some(ParametersRef::Video(v)) = demuxed.streams()[stream_i].parameters()
            {
                let mut b = v.mp4_sample_entry();
                if let Some((h, vv)) = v.pixel_aspect_ratio()
                    && let (Ok(h), Ok(vv)) = (u16::try_from(h), u16::try_from(vv))
                {
                    b = b.with_aspect_ratio((h, vv));
                }
                let (width, height) = v.pixel_dimensions();
                params = Some(Arc::new(VideoParams {
                    codec: v.rfc6381_codec().to_owned(),
                    width,
                    height,
                    // frame_rate() is (seconds numerator, denominator) per frame.
                    nominal_duration: v
                        .frame_rate()
                        .filter(|&(n, d)| n > 0 && d > 0)
                        .map(|(n, d)| (90_000u64 * n as u64 / d as u64) as u32)
                        .filter(|&t| t > 0 && t <= 90_000),
                    sample_entry: b.build()?,
                    encoding: if demuxed.streams()[stream_i].encoding_name() == "h265" {
                        "h265"
                    } else {
                        "h264"
                    },
                    codec_config: v.extra_data().to_vec(),
                }));
            }
            let Some(p) = params.clone() else {
                continue; // no parameters yet: nothing can be written
            };
            let pts = f.timestamp().elapsed();
            let (pts0, utc0) = *base.get_or_insert((pts, now_us()));
            let utc = utc0 + (pts - pts0) * 100 / 9;
            let is_key = f.is_random_access_point();
            let lost = f.loss() > 0;
            let data = bytes::Bytes::from(f.into_data());
            window.add(data.len());
            if let Some(a) = &self.analysis {
                if analysis_dropping && !is_key {
                    self.status.camera(&cam.name, |s| s.analysis_dropped += 1);
                } else {
                    let m = AnalysisMsg::Frame(AnalysisFrame {
                        pts_90k: pts,
                        utc_us: utc,
                        is_key,
                        data: data.clone(),
                        params: p.clone(),
                    });
                    match a.try_send(m) {
                        Ok(()) => analysis_dropping = false,
                        Err(TrySendError::Full(_)) => {
                            // Analysis is behind: skip to the next keyframe; recording goes on.
                            analysis_dropping = true;
                            self.status.camera(&cam.name, |s| s.analysis_dropped += 1);
                        }
                        Err(TrySendError::Disconnected(_)) => {}
                    }
                }
            }
            let Some(writer) = &self.writer else {
                continue; // a detect-only session
            };
            if dropping && !is_key {
                self.status.camera(&cam.name, |s| s.dropped_frames += 1);
                continue;
            }
            let msg = WriterMsg::Frame(Frame {
                pts_90k: pts,
                utc_us: utc,
                is_key,
                data,
                params: p,
                run,
                discontinuity: dropping || lost,
            });
            match writer.try_send(msg) {
                Ok(()) => dropping = false,
                Err(TrySendError::Full(_)) => {
                    // The writer fell behind: skip to the next keyframe rather than write a
                    // broken GOP.
                    dropping = true;
                    self.status.camera(&cam.name, |s| s.dropped_frames += 1);
                }
                Err(TrySendError::Disconnected(_)) => anyhow::bail!("writer stopped"),
            }
            if let Some((fps, bps, bytes, frames)) = window.rate() {
                self.status.camera(&cam.name, |s| {
                    s.fps = fps;
                    s.bitrate_bps = bps;
                    s.bytes += bytes;
                    let _ = frames;
                });
            }
        }
    }
}

/// Frame and byte rates over ~2 s windows.
struct RateWindow {
    start: Instant,
    frames: u64,
    bytes: u64,
}

impl RateWindow {
    fn new() -> Self {
        RateWindow {
            start: Instant::now(),
            frames: 0,
            bytes: 0,
        }
    }
    fn add(&mut self, n: usize) {
        self.frames += 1;
        self.bytes += n as u64;
    }
    fn rate(&mut self) -> Option<(f64, f64, u64, u64)> {
        let el = self.start.elapsed().as_secs_f64();
        if el < 2.0 {
            return None;
        }
        let r = (
            self.frames as f64 / el,
            self.bytes as f64 * 8.0 / el,
            self.bytes,
            self.frames,
        );
        *self = RateWindow::new();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps_with_jitter() {
        for _ in 0..100 {
            let d1 = backoff(1);
            assert!(d1 >= Duration::from_millis(750) && d1 <= Duration::from_secs(1));
            let d3 = backoff(3);
            assert!(d3 >= Duration::from_secs(3) && d3 <= Duration::from_secs(4));
            let d20 = backoff(20);
            assert!(d20 >= Duration::from_secs(45) && d20 <= MAX_BACKOFF);
        }
    }
}
