//! Ingest: one async task per camera that holds an RTSP session with retina, turns its
//! video frames into [`Frame`]s and publishes them to the camera's sinks (`media::Sink`:
//! the writer, the analyser; ingest imports neither), and reconnects with exponential
//! backoff and jitter (1 s to 10 s) when the camera goes away.
//!
//! Every RTSP step has a deadline (`timeout_seconds`); a packet that cannot be
//! depacketized, or lost packets, drop pictures up to the next keyframe and the session
//! goes on; NAL units under one RTP timestamp are one picture; timestamps go through the
//! timing model (`timing`), which never ends a session.
//!
//! Nothing here decodes video. Before each new session the task waits out stale sessions
//! of the previous one (retina's `SessionGroup`), which some servers (live555) keep
//! streaming into a reused connection otherwise.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use retina::client::{
    Credentials, PlayOptions, SessionGroup, SessionOptions, SetupOptions, TeardownPolicy, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use timing::{AudioClock, CameraClock, Jump, Output, Timed, Timing};

use crate::base::cancel::CancelToken;
use crate::base::time::now_us;
use crate::config::{CameraConfig, TransportKind};
use crate::media::{AudioFrame, Break, Delivery, Frame, Sink, SinkKind, StreamMsg, VideoParams};
use crate::status::{CameraState, SharedStatus};

pub mod h26x;
pub mod socket;
pub mod timing;

pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts: a camera back from a power cycle (a PoE switch
/// rebooting) is recorded again within this; an attempt costs a TCP connection.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A session that lasted this long resets the backoff (as does one that delivered a
/// picture).
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// Delay before reconnect attempt `failures` (1-based): 1 s doubling to 10 s, with up to
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
    /// Where the stream goes (`media::Sink`): the segment writer (none for a detect-only
    /// session) and motion analysis, if enabled; frames are shared, not copied.
    pub sinks: Vec<(SinkKind, SyncSender<StreamMsg>)>,
    pub status: SharedStatus,
    pub cancel: CancelToken,
}

/// Whether a retina error concerns one packet (the session can go on: the depacketizer
/// has discarded the damaged access unit) rather than the connection. retina's errors are
/// opaque; its packet-level ones (`RtpPacketError`, `PacketError`) are the only ones whose
/// message carries the packet context (`pkt: `).
fn is_packet_error(e: &retina::Error) -> bool {
    e.to_string().contains("\npkt: ")
}

/// One picture as assembled from retina's frames (all NAL units of one RTP timestamp).
struct Picture {
    is_key: bool,
    /// An H.265 RASL picture (see `h26x::rasl`).
    leading: bool,
    data: Vec<u8>,
    params: Arc<VideoParams>,
}

/// A session's output side: its sinks (each with its own drop policy) and the counters.
struct Outlet<'a> {
    task: &'a IngestTask,
    sinks: Vec<Sink>,
    /// Pictures handed on in this session.
    pictures: u64,
}

impl Outlet<'_> {
    fn emit(&mut self, out: Vec<Output<Picture>>) -> anyhow::Result<()> {
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
        self.task.status.camera(cam, |s| s.timestamp_jumps += 1);
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
        for sink in &mut self.sinks {
            match (sink.frame(&frame), sink.kind()) {
                (Delivery::Queued, _) => {}
                // The writer fell behind: it skips to the next keyframe rather than write
                // a broken GOP.
                (Delivery::Dropped, SinkKind::Recording) => {
                    self.task.status.camera(cam, |s| s.dropped_frames += 1)
                }
                // Analysis is behind: it skips to the next keyframe; recording goes on.
                (Delivery::Dropped, SinkKind::Analysis) => {
                    self.task.status.camera(cam, |s| s.analysis_dropped += 1)
                }
                (Delivery::Closed, SinkKind::Recording) => anyhow::bail!("writer stopped"),
                (Delivery::Closed, SinkKind::Analysis) => {}
            }
        }
        Ok(())
    }
}

/// Runs `fut` as RTSP step `step` under the camera's deadline.
async fn step<T, E: Into<anyhow::Error>>(
    task: &IngestTask,
    step: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    task.set_step(Some(step));
    let t = task.camera.timeout;
    match tokio::time::timeout(t, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => {
            task.status.camera(&task.camera.name, |s| s.timeouts += 1);
            if step == "connect" {
                anyhow::bail!(
                    "no TCP connection to {} within {} s",
                    task.server(),
                    t.as_secs_f64()
                );
            }
            anyhow::bail!(
                "no answer to {} within {} s from {}",
                step.to_uppercase(),
                t.as_secs_f64(),
                task.server()
            )
        }
    }
}

impl IngestTask {
    fn set_state(&self, st: CameraState) {
        let name = &self.camera.name;
        match self.role {
            Role::Record => self.status.camera(name, |s| s.set_state(st)),
            Role::Detect => self.status.camera(name, |s| s.detect_state = Some(st)),
        }
    }

    /// Which RTSP step is under way (shown with the `connecting` state).
    fn set_step(&self, step: Option<&'static str>) {
        if self.role == Role::Record {
            self.status
                .camera(&self.camera.name, |s| s.connect_step = step);
        }
    }

    fn url(&self) -> &url::Url {
        match self.role {
            Role::Record => &self.camera.url,
            Role::Detect => self.camera.detect_url.as_ref().unwrap_or(&self.camera.url),
        }
    }

    /// The server's address as `host:port`, for messages (never the credentials).
    fn server(&self) -> String {
        let u = self.url();
        format!(
            "{}:{}",
            u.host_str().unwrap_or("?"),
            u.port_or_known_default().unwrap_or(554)
        )
    }

    pub async fn run(self) {
        let name = self.camera.name.clone();
        let mut cancel = self.cancel.clone();
        let group = Arc::new(SessionGroup::default().named(name.clone()));
        let mut failures = 0u32;
        // What the camera's sessions learn about its clock outlives each of them.
        let mut clock = CameraClock::default();
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
            let started = Instant::now();
            let mut delivered = false;
            let result = tokio::select! {
                r = self.session(group.clone(), &mut clock, &mut delivered) => r,
                _ = cancel.cancelled() => Ok(()),
            };
            self.set_step(None);
            if cancel.is_cancelled() {
                break; // the writer gets Shutdown and closes with that reason
            }
            for sink in self.sinks() {
                sink.end_run();
            }
            // A session that delivered pictures was a success, however short: the
            // camera is back at the first delay (a camera that flaps every few seconds
            // is recorded between its drops; waiting up to a minute would lose that).
            if delivered || started.elapsed() >= HEALTHY_SESSION {
                failures = 0;
            }
            failures += 1;
            // One line for the status and the log (retina's errors carry multi-line
            // packet and connection context, and hex dumps of what the server sent: at
            // debug level).
            let msg = match result {
                Ok(()) => "stream ended".to_string(),
                Err(e) => {
                    let full = format!("{e:#}");
                    tracing::debug!(camera = %name, "{full}");
                    full.lines()
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches(';')
                        .to_owned()
                }
            };
            let delay = backoff(failures);
            tracing::warn!(camera = %name, role = ?self.role, server = %self.server(), "{msg}; reconnecting in {:.1} s", delay.as_secs_f64());
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

    /// Sets up the camera's audio stream, if it has one, audio is on, and MP4 can hold its
    /// codec (AAC); otherwise says why not, once per session, in the log and the status.
    /// Returns (stream index, clock rate, track). A refused SETUP costs the audio only.
    async fn setup_audio(
        &self,
        session: &mut retina::client::Session<retina::client::Described>,
        transport: Transport,
    ) -> anyhow::Result<Option<(usize, u32, Arc<crate::media::AudioTrack>)>> {
        let cam = &self.camera;
        let found = session.streams().iter().position(|s| s.media() == "audio");
        let status = |v: String| {
            if self.role == Role::Record {
                self.status.camera(&cam.name, |s| s.audio = Some(v));
            }
        };
        let Some(i) = found.filter(|_| self.role == Role::Record) else {
            status("none".into());
            return Ok(None);
        };
        if !cam.audio {
            status("off".into());
            return Ok(None);
        }
        let s = &session.streams()[i];
        let what = format!("{}/{}", s.encoding_name(), s.clock_rate_hz());
        let entry = match s.parameters() {
            Some(ParametersRef::Audio(a)) => a
                .mp4_sample_entry()
                .build()
                .map(|e| (e, a.clock_rate(), a.channels().get()))
                .map_err(|_| "MP4 players do not accept it".to_string()),
            _ => Err("no parameters for it in the SDP".to_string()),
        };
        let (entry, rate, channels) = match entry {
            Ok(x) => x,
            Err(why) => {
                tracing::info!(camera = %cam.name, "audio {what} not recorded: {why}");
                status(format!("skipped: {what}: {why}"));
                return Ok(None);
            }
        };
        let setup = step(
            self,
            "setup",
            session.setup(
                i,
                SetupOptions::default()
                    .transport(transport)
                    .frame_format(FrameFormat::MP4),
            ),
        )
        .await;
        if let Err(e) = setup {
            tracing::warn!(camera = %cam.name, "audio {what} not recorded: SETUP failed: {e:#}");
            status(format!("skipped: {what}: SETUP failed"));
            return Ok(None);
        }
        status(format!("aac {rate} Hz, {channels} ch"));
        Ok(Some((
            i,
            rate,
            Arc::new(crate::media::AudioTrack {
                sample_entry: entry,
                timescale: rate,
            }),
        )))
    }

    /// Hands an audio frame (placed on the recorder's clock by `timing::AudioClock`) to the
    /// writer.
    fn audio_frame(&self, sinks: &mut [Sink], frame: AudioFrame) {
        self.status
            .camera(&self.camera.name, |s| s.audio_frames += 1);
        for sink in sinks {
            // Never blocks: audio that does not fit is dropped and counted (the video
            // matters more).
            if sink.audio(&frame) == Delivery::Dropped {
                self.status
                    .camera(&self.camera.name, |s| s.audio_dropped += 1);
            }
        }
    }

    /// This task's sinks, fresh for a session.
    fn sinks(&self) -> Vec<Sink> {
        (self.sinks.iter())
            .map(|(kind, tx)| Sink::new(*kind, tx.clone()))
            .collect()
    }

    /// One RTSP session: connect, DESCRIBE, SETUP, PLAY, then pictures until the stream
    /// ends, fails, or stays silent for `timeout`. Pending pictures are released on
    /// every way out, so nothing received is lost.
    /// One RTSP session, until it ends; `delivered` is set if it handed on a picture.
    async fn session(
        &self,
        group: Arc<SessionGroup>,
        clock: &mut CameraClock,
        delivered: &mut bool,
    ) -> anyhow::Result<()> {
        let mut timing = Timing::new(clock.clone());
        let mut outlet = Outlet {
            task: self,
            sinks: self.sinks(),
            pictures: 0,
        };
        let mut held = None;
        let r = self
            .stream(group, &mut timing, &mut outlet, &mut held)
            .await;
        *delivered = outlet.pictures > 0 || held.is_some();
        // The picture being assembled when the session ended is complete (its next
        // frame would have had another timestamp).
        let mut flushed = Ok(());
        if let Some((t, a, h)) = held.take() {
            let key = h.is_key;
            flushed = outlet.emit(timing.push(t, a, key, h));
        }
        let flushed = flushed.and(outlet.emit(timing.flush()));
        *clock = timing.clock.clone();
        r.and(flushed)
    }

    async fn stream(
        &self,
        group: Arc<SessionGroup>,
        timing: &mut Timing<Picture>,
        outlet: &mut Outlet<'_>,
        held: &mut Option<(i64, i64, Picture)>,
    ) -> anyhow::Result<()> {
        let cam = &self.camera;
        let creds = match (&cam.username, cam.read_password()?) {
            (Some(u), p) => Some(Credentials {
                username: u.clone(),
                password: p.unwrap_or_default(),
            }),
            (None, _) => None,
        };
        // The TCP connection on its own first, so that an unreachable address (a
        // firewall, a dead host) is told apart from a server that does not answer.
        let (host, port) = (
            self.url().host_str().unwrap_or_default().to_owned(),
            self.url().port_or_known_default().unwrap_or(554),
        );
        step(
            self,
            "connect",
            tokio::net::TcpStream::connect((host, port)),
        )
        .await?;
        // retina opens its own connection; the socket it opens is found for the
        // receive low-water mark (`socket`).
        let (mut session, sock) = step(self, "describe", async {
            let (described, sock) = socket::find_socket(
                retina::client::Session::describe(
                    self.url().clone(),
                    SessionOptions::default()
                        .creds(creds)
                        .session_group(group)
                        .teardown(TeardownPolicy::Auto)
                        .user_agent(format!("Vigil/{}", env!("CARGO_PKG_VERSION"))),
                ),
                port,
            )
            .await;
            described.map(|s| (s, sock))
        })
        .await?;
        let stream_i = session
            .streams()
            .iter()
            .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"))
            .ok_or_else(|| anyhow::anyhow!("the camera offers no H.264 or H.265 video stream"))?;
        let transport: Transport = match cam.transport {
            TransportKind::Tcp => Transport::default(),
            TransportKind::Udp => "udp".parse().expect("valid transport"),
        };
        step(
            self,
            "setup",
            session.setup(
                stream_i,
                SetupOptions::default()
                    .transport(transport.clone())
                    .frame_format(FrameFormat::MP4),
            ),
        )
        .await?;
        let audio = self.setup_audio(&mut session, transport.clone()).await?;
        // No timestamp policy in retina: the timing model judges timestamps and never
        // ends a session for them.
        let playing = step(self, "play", session.play(PlayOptions::default())).await?;
        let mut demuxed = playing.demuxed()?;
        self.set_step(Some("first-picture"));
        tracing::info!(camera = %cam.name, role = ?self.role, server = %self.server(), "playing");

        let timeout = cam.timeout;
        let mut params: Option<Arc<VideoParams>> = None;
        // Pictures are dropped up to the next keyframe after loss or a packet error.
        let mut need_key = false;
        let mut last_picture = Instant::now();
        let mut streaming = false;
        let mut last_packet_error: Option<String> = None;
        let mut duplicate_logged = false;
        // A packet error came after the last picture.
        let mut error_pending = false;
        // Whether the stream codes frames only (no field pairs under one timestamp).
        let mut progressive = true;
        // Audio's place on the recorder's clock.
        let mut audio_clock: Option<AudioClock<(u32, bytes::Bytes)>> = None;
        let mut window = RateWindow::new();
        // Over TCP, the socket wakes this task once per picture or so, not per packet.
        let mut coalescer = socket::Coalescer::new(
            sock.filter(|_| matches!(cam.transport, TransportKind::Tcp)),
            &cam.name,
        );
        loop {
            let left = timeout.saturating_sub(last_picture.elapsed());
            let wait = coalescer.guard().map_or(left, |g| g.min(left));
            let item = match tokio::time::timeout(wait, demuxed.next()).await {
                Err(_) if wait < left => {
                    // The stream slowed down under a low-water mark: wake per byte.
                    coalescer.relax();
                    continue;
                }
                Err(_) => {
                    self.status.camera(&cam.name, |s| s.timeouts += 1);
                    let what = if streaming {
                        "no picture"
                    } else {
                        "no first picture"
                    };
                    let why = last_packet_error
                        .map(|e| {
                            format!(" (last packet error: {})", e.lines().next().unwrap_or(""))
                        })
                        .unwrap_or_default();
                    anyhow::bail!(
                        "{what} for {} s from {}{why}",
                        timeout.as_secs_f64(),
                        self.server()
                    );
                }
                // retina ends the stream after some packet errors (those found while
                // assembling a picture): say so rather than "stream ended".
                Ok(None) => match last_packet_error.filter(|_| error_pending) {
                    Some(e) => anyhow::bail!(
                        "the stream ended after a packet error: {}",
                        e.lines().next().unwrap_or("")
                    ),
                    None => return Ok(()),
                },
                Ok(Some(Err(e))) if is_packet_error(&e) => {
                    // The depacketizer dropped the damaged access unit; carry on from the
                    // next keyframe.
                    let first = last_packet_error.is_none();
                    self.status.camera(&cam.name, |s| s.packet_errors += 1);
                    if first {
                        tracing::warn!(camera = %cam.name, "packet error (dropping to the next keyframe; further ones are counted, not logged): {}", e.to_string().lines().next().unwrap_or(""));
                    }
                    last_packet_error = Some(e.to_string());
                    error_pending = true;
                    need_key = true;
                    continue;
                }
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(Some(Ok(item))) => item,
            };
            let f = match item {
                CodecItem::VideoFrame(f) => f,
                CodecItem::AudioFrame(a)
                    if audio.as_ref().is_some_and(|x| x.0 == a.stream_id()) =>
                {
                    let clock = audio_clock
                        .get_or_insert_with(|| AudioClock::new(audio.as_ref().unwrap().1));
                    let frame = (
                        a.frame_length().get(),
                        bytes::Bytes::copy_from_slice(a.data()),
                    );
                    let ts = a.timestamp().elapsed();
                    for (utc, (duration, data)) in
                        clock.push(ts, now_us(), timing.clock.rate, frame)
                    {
                        self.audio_frame(
                            &mut outlet.sinks,
                            AudioFrame {
                                utc_us: utc,
                                duration,
                                data,
                            },
                        );
                    }
                    continue;
                }
                _ => continue,
            };
            let arrival = now_us();
            if (f.has_new_parameters() || params.is_none())
                && let Some(ParametersRef::Video(v)) = demuxed.streams()[stream_i].parameters()
            {
                let encoding = if demuxed.streams()[stream_i].encoding_name() == "h265" {
                    "h265"
                } else {
                    "h264"
                };
                let mut vp = video_params(v, encoding)?;
                vp.audio = audio.as_ref().map(|a| a.2.clone());
                timing.set_nominal(vp.nominal_duration);
                params = Some(Arc::new(vp));
                let sps = match v.codec_params() {
                    VideoParametersCodec::H264 { sps, .. } => Some(sps.clone()),
                    VideoParametersCodec::H265 { sps, .. } => Some(sps.clone()),
                    _ => None,
                };
                if let Some(s) = &sps {
                    if let Some(d) = h26x::reorder_depth(encoding, s) {
                        timing.declare_reorder(d);
                    }
                    progressive = h26x::progressive(encoding, s);
                }
            }
            let Some(p) = params.clone() else {
                continue; // no parameters yet: nothing can be written
            };
            let pts = f.timestamp().elapsed();
            let loss = f.loss();
            if loss > 0 {
                self.status
                    .camera(&cam.name, |s| s.lost_packets += loss as u64);
            }
            let rap = f.is_random_access_point();
            let data = f.into_data();
            let is_key = rap || h26x::irap(p.encoding, &data);
            let leading = h26x::rasl(p.encoding, &data);
            tracing::trace!(camera = %cam.name, pts, key = is_key, loss, "frame");
            last_picture = Instant::now();
            error_pending = false;
            window.add(data.len());
            coalescer.picture(data.len(), last_picture);
            // Slices of one picture (several NAL units under one RTP timestamp, even
            // with a marker bit after each) are one picture, and so are the two fields
            // of an interlaced frame. A new picture under the timestamp of the previous
            // one in a progressive stream (VLC's first pictures of a stream) has no time
            // of its own: dropped, with what depends on it.
            if let Some((t, _, h)) = held.as_mut()
                && *t == pts
            {
                if progressive && h26x::starts_picture(p.encoding, &data) {
                    if !duplicate_logged {
                        duplicate_logged = true;
                        tracing::warn!(camera = %cam.name, "pictures with the timestamp of the previous one: dropped to the next keyframe (further ones are counted, not logged)");
                    }
                    need_key = true;
                    self.status.camera(&cam.name, |s| s.dropped_pictures += 1);
                } else if loss > 0 {
                    // A slice of this picture was lost: the picture is incomplete.
                    *held = None;
                    need_key = true;
                    self.status.camera(&cam.name, |s| s.dropped_pictures += 1);
                } else {
                    h.data.extend_from_slice(&data);
                    h.is_key |= is_key;
                }
                continue;
            }
            if loss > 0 && !is_key {
                need_key = true;
            }
            if let Some((t, a, h)) = held.take() {
                let key = h.is_key;
                outlet.emit(timing.push(t, a, key, h))?;
            }
            if need_key && !is_key {
                // Counted once per picture, not per slice.
                if h26x::starts_picture(p.encoding, &data) {
                    self.status.camera(&cam.name, |s| s.dropped_pictures += 1);
                }
                continue;
            }
            need_key = false;
            if !streaming {
                streaming = true;
                self.set_step(None);
                self.set_state(CameraState::Streaming);
            }
            *held = Some((
                pts,
                arrival,
                Picture {
                    is_key,
                    leading,
                    data,
                    params: p,
                },
            ));
            if let Some((fps, bps, bytes, _)) = window.rate() {
                let (rate, lag, depth) = (timing.rate(), timing.lag_us(), timing.clock.reorder);
                self.status.camera(&cam.name, |s| {
                    s.fps = fps;
                    s.bitrate_bps = bps;
                    s.bytes += bytes;
                    s.clock_rate = rate;
                    s.clock_lag_ms = lag.map(|l| l as f64 / 1000.0);
                    s.reorder_depth = depth as u32;
                });
            }
        }
    }
}

/// The recorder's view of retina's video parameters.
fn video_params(
    v: &retina::codec::VideoParameters,
    encoding: &'static str,
) -> anyhow::Result<VideoParams> {
    let mut b = v.mp4_sample_entry();
    if let Some((h, vv)) = v.pixel_aspect_ratio()
        && let (Ok(h), Ok(vv)) = (u16::try_from(h), u16::try_from(vv))
    {
        b = b.with_aspect_ratio((h, vv));
    }
    let (width, height) = v.pixel_dimensions();
    Ok(VideoParams {
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
        encoding,
        codec_config: v.extra_data().to_vec(),
        audio: None,
    })
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
            assert!(d20 >= Duration::from_millis(7_500) && d20 <= MAX_BACKOFF);
        }
    }
}
