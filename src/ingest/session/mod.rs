//! One RTSP session of a camera: connect, DESCRIBE, SETUP (video, and audio when it can be
//! recorded), PLAY, then pictures until the stream ends, fails, or stays silent for the
//! camera's `timeout`. Slices and fields under one RTP timestamp become one picture;
//! packet errors and lost packets drop pictures to the next keyframe; timestamps go
//! through the timing model. Pending pictures are released on every way out, so nothing
//! received is lost.

use std::sync::Arc;

use futures_util::StreamExt;
use retina::client::{
    Credentials, Demuxed, PlayOptions, SessionGroup, SessionOptions, SetupOptions, TeardownPolicy,
    Transport,
};
use retina::codec::{
    AudioFrame as RetinaAudio, CodecItem, FrameFormat, ParametersRef, VideoFrame,
    VideoParametersCodec,
};

use super::outlet::{Outlet, Picture};
use super::timing::{AudioClock, CameraClock, Timing};
use super::{IngestTask, Role, h26x, socket, step};
use crate::base::time::now_us;
use crate::config::TransportKind;
use crate::media::{AudioFrame, AudioTrack, VideoParams};
use crate::status::CameraState;

/// tokio's clock, so that a session's deadlines follow the runtime's time (paused and
/// advanced by hand in tests) as its `tokio::time::timeout`s do.
use tokio::time::Instant;

/// The picture being assembled: (RTP presentation time, arrival UTC µs, picture).
type Held = Option<(i64, i64, Picture)>;

/// The audio stream set up beside the video: (stream index, clock rate, track).
type AudioSetup = Option<(usize, u32, Arc<AudioTrack>)>;

impl IngestTask {
    /// One RTSP session, until it ends; `delivered` is set if it handed on a picture.
    pub(super) async fn session(
        &self,
        group: Arc<SessionGroup>,
        clock: &mut CameraClock,
        delivered: &mut bool,
    ) -> anyhow::Result<()> {
        let mut timing = Timing::new(clock.clone());
        let mut outlet = Outlet::new(self);
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

    /// Opens the session and receives until it ends.
    async fn stream(
        &self,
        group: Arc<SessionGroup>,
        timing: &mut Timing<Picture>,
        outlet: &mut Outlet<'_>,
        held: &mut Held,
    ) -> anyhow::Result<()> {
        let (mut demuxed, mut rx) = self.open(group).await?;
        while let Some(item) = rx.next(&mut demuxed).await? {
            match item {
                CodecItem::VideoFrame(f) => rx.video(f, &demuxed, timing, outlet, held)?,
                CodecItem::AudioFrame(a) => rx.audio(a, timing, outlet),
                _ => {}
            }
        }
        Ok(())
    }

    /// Connect, DESCRIBE, SETUP and PLAY, each under the camera's deadline.
    async fn open(&self, group: Arc<SessionGroup>) -> anyhow::Result<(Demuxed, Receiver<'_>)> {
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
        let demuxed = playing.demuxed()?;
        self.set_step(Some("first-picture"));
        tracing::info!(camera = %cam.name, role = ?self.role, server = %self.server(), "playing");
        // Over TCP, the socket wakes this task once per picture or so, not per packet.
        let coalescer = socket::Coalescer::new(
            sock.filter(|_| matches!(cam.transport, TransportKind::Tcp)),
            &cam.name,
        );
        Ok((demuxed, Receiver::new(self, stream_i, audio, coalescer)))
    }

    /// Sets up the camera's audio stream, if it has one, audio is on, and MP4 can hold its
    /// codec (AAC); otherwise says why not, once per session, in the log and the status.
    /// Returns (stream index, clock rate, track). A refused SETUP costs the audio only.
    async fn setup_audio(
        &self,
        session: &mut retina::client::Session<retina::client::Described>,
        transport: Transport,
    ) -> anyhow::Result<AudioSetup> {
        let cam = &self.camera;
        let found = session.streams().iter().position(|s| s.media() == "audio");
        let status = |v: String| {
            if self.role == Role::Record {
                self.status.ingest(&cam.name, |s| s.audio = Some(v));
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
            Arc::new(AudioTrack {
                sample_entry: entry,
                timescale: rate,
            }),
        )))
    }
}

/// A video frame of retina's (one or more NAL units under one RTP timestamp), as the
/// receiver's rules see it.
struct VideoUnit {
    /// RTP presentation time (90 kHz, extended).
    pts: i64,
    /// RTP packets lost just before it.
    loss: u64,
    /// retina's random-access flag (an H.264 IDR).
    rap: bool,
    /// Arrival, µs since the epoch.
    arrival: i64,
    /// Length-prefixed NAL units.
    data: Vec<u8>,
}

/// A playing session's receiving side: what it knows of the stream so far.
struct Receiver<'a> {
    task: &'a IngestTask,
    stream_i: usize,
    audio: AudioSetup,
    params: Option<Arc<VideoParams>>,
    /// Pictures are dropped up to the next keyframe after loss or a packet error.
    need_key: bool,
    last_picture: Instant,
    streaming: bool,
    last_packet_error: Option<String>,
    duplicate_logged: bool,
    /// A packet error came after the last picture.
    error_pending: bool,
    /// Whether the stream codes frames only (no field pairs under one timestamp).
    progressive: bool,
    /// Audio's place on the recorder's clock.
    audio_clock: Option<AudioClock<(u32, bytes::Bytes)>>,
    window: RateWindow,
    coalescer: socket::Coalescer,
}

impl<'a> Receiver<'a> {
    fn new(
        task: &'a IngestTask,
        stream_i: usize,
        audio: AudioSetup,
        coalescer: socket::Coalescer,
    ) -> Self {
        Receiver {
            task,
            stream_i,
            audio,
            params: None,
            need_key: false,
            last_picture: Instant::now(),
            streaming: false,
            last_packet_error: None,
            duplicate_logged: false,
            error_pending: false,
            progressive: true,
            audio_clock: None,
            window: RateWindow::new(Instant::now()),
            coalescer,
        }
    }

    /// The next item of the stream; `None` when it ended cleanly. Packet errors are
    /// counted and skipped (to the next keyframe); silence for the camera's `timeout`, the
    /// end of the stream after a packet error, and connection errors end the session.
    async fn next(&mut self, demuxed: &mut Demuxed) -> anyhow::Result<Option<CodecItem>> {
        let (task, cam) = (self.task, &self.task.camera);
        let timeout = cam.timeout;
        loop {
            let left = timeout.saturating_sub(self.last_picture.elapsed());
            let wait = self.coalescer.guard().map_or(left, |g| g.min(left));
            return match tokio::time::timeout(wait, demuxed.next()).await {
                Err(_) if wait < left => {
                    // The stream slowed down under a low-water mark: wake per byte.
                    self.coalescer.relax();
                    continue;
                }
                Err(_) => {
                    task.status.ingest(&cam.name, |s| s.timeouts += 1);
                    let what = if self.streaming {
                        "no picture"
                    } else {
                        "no first picture"
                    };
                    let why = (self.last_packet_error.as_ref())
                        .map(|e| {
                            format!(" (last packet error: {})", e.lines().next().unwrap_or(""))
                        })
                        .unwrap_or_default();
                    anyhow::bail!(
                        "{what} for {} s from {}{why}",
                        timeout.as_secs_f64(),
                        task.server()
                    );
                }
                // retina ends the stream after some packet errors (those found while
                // assembling a picture): say so rather than "stream ended".
                Ok(None) => match self.last_packet_error.take().filter(|_| self.error_pending) {
                    Some(e) => anyhow::bail!(
                        "the stream ended after a packet error: {}",
                        e.lines().next().unwrap_or("")
                    ),
                    None => Ok(None),
                },
                Ok(Some(Err(e))) if is_packet_error(&e) => {
                    // The depacketizer dropped the damaged access unit; carry on from the
                    // next keyframe.
                    let first = self.last_packet_error.is_none();
                    task.status.ingest(&cam.name, |s| s.packet_errors += 1);
                    if first {
                        tracing::warn!(camera = %cam.name, "packet error (dropping to the next keyframe; further ones are counted, not logged): {}", e.to_string().lines().next().unwrap_or(""));
                    }
                    self.last_packet_error = Some(e.to_string());
                    self.error_pending = true;
                    self.need_key = true;
                    continue;
                }
                Ok(Some(Err(e))) => Err(e.into()),
                Ok(Some(Ok(item))) => Ok(Some(item)),
            };
        }
    }

    /// An audio frame: placed on the recorder's clock and handed on, if it is the stream
    /// that was set up.
    fn audio(&mut self, a: RetinaAudio, timing: &Timing<Picture>, outlet: &mut Outlet<'_>) {
        let Some((stream, rate, _)) = &self.audio else {
            return;
        };
        if *stream != a.stream_id() {
            return;
        }
        let clock = self
            .audio_clock
            .get_or_insert_with(|| AudioClock::new(*rate));
        let frame = (
            a.frame_length().get(),
            bytes::Bytes::copy_from_slice(a.data()),
        );
        let ts = a.timestamp().elapsed();
        for (utc, (duration, data)) in clock.push(ts, now_us(), timing.clock.rate, frame) {
            outlet.audio_frame(AudioFrame {
                utc_us: utc,
                duration,
                data,
            });
        }
    }

    /// New stream parameters (or the first): the track's parameters, the reorder depth
    /// and whether the stream is progressive, from the SPS.
    fn parameters(
        &mut self,
        demuxed: &Demuxed,
        timing: &mut Timing<Picture>,
    ) -> anyhow::Result<()> {
        let stream = &demuxed.streams()[self.stream_i];
        let Some(ParametersRef::Video(v)) = stream.parameters() else {
            return Ok(());
        };
        let encoding = if stream.encoding_name() == "h265" {
            "h265"
        } else {
            "h264"
        };
        let mut vp = video_params(v, encoding)?;
        vp.audio = self.audio.as_ref().map(|a| a.2.clone());
        timing.set_nominal(vp.nominal_duration);
        self.params = Some(Arc::new(vp));
        let sps = match v.codec_params() {
            VideoParametersCodec::H264 { sps, .. } => Some(sps.clone()),
            VideoParametersCodec::H265 { sps, .. } => Some(sps.clone()),
            _ => None,
        };
        if let Some(s) = &sps {
            if let Some(d) = h26x::reorder_depth(encoding, s) {
                timing.declare_reorder(d);
            }
            self.progressive = h26x::progressive(encoding, s);
        }
        Ok(())
    }

    /// A video frame (one or more NAL units of one RTP timestamp): joined to the picture
    /// being assembled, or the start of the next one (the previous one then goes to the
    /// timing model and on to the sinks).
    fn video(
        &mut self,
        f: VideoFrame,
        demuxed: &Demuxed,
        timing: &mut Timing<Picture>,
        outlet: &mut Outlet<'_>,
        held: &mut Held,
    ) -> anyhow::Result<()> {
        let arrival = now_us();
        if f.has_new_parameters() || self.params.is_none() {
            self.parameters(demuxed, timing)?;
        }
        let unit = VideoUnit {
            pts: f.timestamp().elapsed(),
            loss: f.loss() as u64,
            rap: f.is_random_access_point(),
            arrival,
            data: f.into_data(),
        };
        self.unit(unit, timing, outlet, held)
    }

    /// [`Receiver::video`] once the frame is ours: the drop and assembly rules, free of
    /// retina's types (so they are unit-tested).
    fn unit(
        &mut self,
        u: VideoUnit,
        timing: &mut Timing<Picture>,
        outlet: &mut Outlet<'_>,
        held: &mut Held,
    ) -> anyhow::Result<()> {
        let (task, cam) = (self.task, &self.task.camera);
        let Some(p) = self.params.clone() else {
            return Ok(()); // no parameters yet: nothing can be written
        };
        let VideoUnit {
            pts,
            loss,
            rap,
            arrival,
            data,
        } = u;
        if loss > 0 {
            task.status.ingest(&cam.name, |s| s.lost_packets += loss);
        }
        let is_key = rap || h26x::irap(p.encoding, &data);
        let leading = h26x::rasl(p.encoding, &data);
        tracing::trace!(camera = %cam.name, pts, key = is_key, loss, "frame");
        self.last_picture = Instant::now();
        self.error_pending = false;
        self.window.add(data.len());
        self.coalescer
            .picture(data.len(), self.last_picture.into_std());
        // Slices of one picture (several NAL units under one RTP timestamp, even
        // with a marker bit after each) are one picture, and so are the two fields
        // of an interlaced frame. A new picture under the timestamp of the previous
        // one in a progressive stream (VLC's first pictures of a stream) has no time
        // of its own: dropped, with what depends on it.
        if let Some((t, _, h)) = held.as_mut()
            && *t == pts
        {
            if self.progressive && h26x::starts_picture(p.encoding, &data) {
                if !self.duplicate_logged {
                    self.duplicate_logged = true;
                    tracing::warn!(camera = %cam.name, "pictures with the timestamp of the previous one: dropped to the next keyframe (further ones are counted, not logged)");
                }
                self.need_key = true;
                task.status.ingest(&cam.name, |s| s.dropped_pictures += 1);
            } else if loss > 0 {
                // A slice of this picture was lost: the picture is incomplete.
                *held = None;
                self.need_key = true;
                task.status.ingest(&cam.name, |s| s.dropped_pictures += 1);
            } else {
                h.data.extend_from_slice(&data);
                h.is_key |= is_key;
            }
            return Ok(());
        }
        if loss > 0 && !is_key {
            self.need_key = true;
        }
        if let Some((t, a, h)) = held.take() {
            let key = h.is_key;
            outlet.emit(timing.push(t, a, key, h))?;
        }
        if self.need_key && !is_key {
            // Counted once per picture, not per slice.
            if h26x::starts_picture(p.encoding, &data) {
                task.status.ingest(&cam.name, |s| s.dropped_pictures += 1);
            }
            return Ok(());
        }
        self.need_key = false;
        if !self.streaming {
            self.streaming = true;
            task.set_step(None);
            task.set_state(CameraState::Streaming);
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
        if let Some((fps, bps, bytes, _)) = self.window.rate(Instant::now()) {
            let (rate, lag, depth) = (timing.rate(), timing.lag_us(), timing.clock.reorder);
            task.status.ingest(&cam.name, |s| {
                s.fps = fps;
                s.bitrate_bps = bps;
                s.bytes += bytes;
                s.clock_rate = rate;
                s.clock_lag_ms = lag.map(|l| l as f64 / 1000.0);
                s.reorder_depth = depth as u32;
            });
        }
        Ok(())
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

/// Frame and byte rates over windows of at least [`RateWindow::SPAN`].
struct RateWindow {
    start: Instant,
    frames: u64,
    bytes: u64,
}

impl RateWindow {
    /// The shortest window a rate is given for.
    const SPAN: std::time::Duration = std::time::Duration::from_secs(2);

    fn new(now: Instant) -> Self {
        RateWindow {
            start: now,
            frames: 0,
            bytes: 0,
        }
    }

    /// Counts a picture of `n` bytes.
    fn add(&mut self, n: usize) {
        self.frames += 1;
        self.bytes += n as u64;
    }

    /// Once the window spans [`Self::SPAN`] at `now`: (pictures/s, bits/s, bytes, pictures)
    /// over it, and a new window starts at `now`.
    fn rate(&mut self, now: Instant) -> Option<(f64, f64, u64, u64)> {
        let el = now.saturating_duration_since(self.start);
        if el < Self::SPAN {
            return None;
        }
        let el = el.as_secs_f64();
        let r = (
            self.frames as f64 / el,
            self.bytes as f64 * 8.0 / el,
            self.bytes,
            self.frames,
        );
        *self = RateWindow::new(now);
        Some(r)
    }
}

/// Whether a retina error concerns one packet (the session can go on: the depacketizer
/// has discarded the damaged access unit) rather than the connection. retina's errors are
/// opaque; its packet-level ones (`RtpPacketError`, `PacketError`) are the only ones whose
/// message carries the packet context (`pkt: `).
fn is_packet_error(e: &retina::Error) -> bool {
    e.to_string().contains("\npkt: ")
}

#[cfg(test)]
mod tests;
