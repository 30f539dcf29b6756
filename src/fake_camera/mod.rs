//! The fake camera: an RTSP server (GStreamer's rtsp-server) on 127.0.0.1 serving test
//! streams, for the demo, tests and load runs.
//!
//! Three kinds of source per path:
//! - a generated test pattern: moving discs over a static pattern, encoded live with x264
//!   (size, fps, bitrate and GOP configurable);
//! - a plausible scene ([`scene`]: a door, a yard, a facade with people crossing now and
//!   then; the demo's), drawn in Rust and encoded live the same way;
//! - a pre-encoded H.264 file (MP4 or Annex B) loaded once and looped without re-encoding
//!   through `appsrc`, so that load tests measure Vigil and not the encoder.
//!
//! For failure tests it can drop every client connection (SIGUSR1, or [`Handle::drop_clients`])
//! and, for looped files, inject corrupt NAL units (SIGUSR2, or [`Handle::inject_garbage`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

pub mod scene;
use scene::{Place, Scene};

#[derive(Clone, Debug)]
pub struct Options {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    pub paths: Vec<String>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub gop_seconds: f64,
    /// Loop this pre-encoded H.264 file instead of generating a scene.
    pub file: Option<PathBuf>,
    /// Codec of the generated scene.
    pub codec: Codec,
    /// Plausible scenes ([`scene`]: a door, a yard, a facade, by path in turn, with
    /// people crossing now and then) instead of test patterns with a bouncing disc.
    pub scenes: bool,
    /// Require RTSP authentication.
    pub auth: Option<Auth>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Codec {
    H264,
    H265,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMethod {
    Basic,
    Digest,
}

#[derive(Clone, Debug)]
pub struct Auth {
    pub user: String,
    pub password: String,
    pub method: AuthMethod,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            paths: vec!["cam".into()],
            width: 640,
            height: 360,
            fps: 15,
            bitrate_kbps: 1000,
            gop_seconds: 2.0,
            file: None,
            codec: Codec::H264,
            scenes: false,
            auth: None,
        }
    }
}

/// A running fake camera server.
pub struct Handle {
    pub port: u16,
    main_loop: gst::glib::MainLoop,
    context: gst::glib::MainContext,
    server: rtsp::RTSPServer,
    garbage: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{}", self.port, path)
    }

    /// Closes every client connection (the camera "goes away" for an instant).
    pub fn drop_clients(&self) {
        let server = self.server.clone();
        self.context.invoke(move || {
            let n = server
                .client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove))
                .len();
            eprintln!("fake-camera: dropped {n} client connection(s)");
        });
    }

    /// The next `frames` frames of every looped file are replaced by corrupt NAL units.
    pub fn inject_garbage(&self, frames: u32) {
        self.garbage.store(frames, Ordering::SeqCst);
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One encoded access unit of a looped file (Annex B).
#[derive(Clone)]
struct AccessUnit {
    data: gst::glib::Bytes,
    is_key: bool,
}

/// Starts the server on its own thread and GLib main context.
pub fn start(opts: Options) -> anyhow::Result<Handle> {
    gst::init().context("cannot initialise GStreamer")?;
    validate(&opts)?;
    let aus = match &opts.file {
        Some(f) => Some(Arc::new(load_access_units(f)?)),
        None => None,
    };
    let garbage = Arc::new(AtomicU32::new(0));
    let context = gst::glib::MainContext::new();
    let main_loop = gst::glib::MainLoop::new(Some(&context), false);
    let server = rtsp::RTSPServer::new();
    server.set_address(&Ipv4Addr::LOCALHOST.to_string());
    server.set_service(&opts.port.to_string());
    if let Some(a) = &opts.auth {
        server.set_auth(Some(&auth(a)));
    }
    let mounts = server
        .mount_points()
        .context("server has no mount points")?;
    for (i, path) in opts.paths.iter().enumerate() {
        let factory = media_factory(&opts, i, aus.as_ref(), &garbage);
        mounts.add_factory(&format!("/{path}"), factory);
    }
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let thread = {
        let server = server.clone();
        let context = context.clone();
        let main_loop = main_loop.clone();
        std::thread::Builder::new()
            .name("fake-camera".into())
            .spawn(move || {
                let r = context.with_thread_default(|| {
                    let id = server.attach(Some(&context));
                    let _ =
                        port_tx.send(id.map(|_| server.bound_port()).map_err(|e| e.to_string()));
                    main_loop.run();
                });
                if let Err(e) = r {
                    eprintln!("fake-camera: {e}");
                }
            })?
    };
    let port = match port_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(p)) if p > 0 => p as u16,
        Ok(Ok(_)) => bail!("RTSP server did not bind"),
        Ok(Err(e)) => bail!("cannot start RTSP server on 127.0.0.1:{}: {e}", opts.port),
        Err(_) => bail!("RTSP server did not start"),
    };
    Ok(Handle {
        port,
        main_loop,
        context,
        server,
        garbage,
        thread: Some(thread),
    })
}

/// Refuses options the server cannot serve.
fn validate(opts: &Options) -> anyhow::Result<()> {
    if opts.paths.is_empty() {
        bail!("at least one path is needed");
    }
    for p in &opts.paths {
        if p.is_empty()
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        {
            bail!("path {p:?} must be letters, digits, '_' or '-'");
        }
    }
    if opts.fps == 0 || opts.width < 16 || opts.height < 16 || opts.bitrate_kbps == 0 {
        bail!("fps, width, height and bitrate must be positive (width, height >= 16)");
    }
    if opts.file.is_some() && opts.codec != Codec::H264 {
        bail!("--file serves H.264 only");
    }
    Ok(())
}

/// The server's authentication: `a`'s user and password, Basic or Digest only.
fn auth(a: &Auth) -> rtsp::RTSPAuth {
    let auth = rtsp::RTSPAuth::new();
    let token = rtsp::RTSPToken::builder()
        .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        .build();
    match a.method {
        AuthMethod::Basic => {
            auth.add_basic(&rtsp::RTSPAuth::make_basic(&a.user, &a.password), &token);
            auth.set_supported_methods(gstreamer_rtsp::RTSPAuthMethod::Basic);
        }
        AuthMethod::Digest => {
            auth.add_digest(&a.user, &a.password, &token);
            auth.set_supported_methods(gstreamer_rtsp::RTSPAuthMethod::Digest);
        }
    }
    auth
}

/// The media factory of path number `i`: a generated scene, or the access units of
/// `--file` pumped by an appsrc (with `garbage` frames of junk when asked).
fn media_factory(
    opts: &Options,
    i: usize,
    aus: Option<&Arc<Vec<AccessUnit>>>,
    garbage: &Arc<AtomicU32>,
) -> rtsp::RTSPMediaFactory {
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_shared(true);
    if opts.auth.is_some() {
        factory.add_role_from_structure(
            &gst::Structure::builder("user")
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
    }
    match aus {
        None if opts.scenes => {
            let (w, h) = (opts.width & !1, opts.height & !1);
            factory.set_launch(&format!(
                "( appsrc name=src is-live=true format=time do-timestamp=false \
                 caps=video/x-raw,format=I420,width={w},height={h},framerate={}/1 \
                 ! videoconvert ! {} )",
                opts.fps,
                encoder(opts)
            ));
            let place = [Place::Door, Place::Yard, Place::Facade][i % 3];
            let scene = Arc::new(Scene::new(place, w, h, i as u64 + 1));
            let fps = opts.fps;
            factory.connect_media_configure(move |_, media| {
                if let Some(src) = appsrc(media) {
                    let scene = scene.clone();
                    std::thread::spawn(move || pump_scene(src, &scene, fps));
                }
            });
        }
        None => factory.set_launch(&scene_launch(opts, i)),
        Some(aus) => {
            factory.set_launch(
                "( appsrc name=src is-live=true format=time do-timestamp=false \
                 caps=video/x-h264,stream-format=byte-stream,alignment=au \
                 ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
            );
            let aus = aus.clone();
            let garbage = garbage.clone();
            let fps = opts.fps;
            factory.connect_media_configure(move |_, media| {
                if let Some(src) = appsrc(media) {
                    let aus = aus.clone();
                    let garbage = garbage.clone();
                    std::thread::spawn(move || pump(src, &aus, fps, &garbage));
                }
            });
        }
    }
    factory
}

/// The appsrc named `src` of a media's pipeline.
fn appsrc(media: &rtsp::RTSPMedia) -> Option<gst_app::AppSrc> {
    let src = (media.element().downcast_ref::<gst::Bin>())?.by_name_recurse_up("src")?;
    src.downcast::<gst_app::AppSrc>().ok()
}

/// The encoder and payloader of a generated stream (raw video in, RTP out as `pay0`).
fn encoder(o: &Options) -> String {
    let gop = ((o.gop_seconds * o.fps as f64).round() as u32).max(1);
    match o.codec {
        Codec::H264 => format!(
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={} \
             ! rtph264pay name=pay0 pt=96 config-interval=-1",
            o.bitrate_kbps
        ),
        Codec::H265 => format!(
            "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={} \
             ! rtph265pay name=pay0 pt=96 config-interval=-1",
            o.bitrate_kbps
        ),
    }
}

/// Pushes the scene's pictures at `fps` until the media shuts down, stamped as [`pump`]
/// stamps access units (from the pipeline's running time when the stream starts).
fn pump_scene(src: gst_app::AppSrc, scene: &Scene, fps: u32) {
    let Some(base) = running_time(&src) else {
        return;
    };
    let mut next = Instant::now();
    for n in 0u64.. {
        let mut pic = vec![0u8; scene.frame_len()];
        scene.draw(n as f64 / fps as f64, &mut pic);
        if !push_paced(
            &src,
            gst::Buffer::from_mut_slice(pic),
            base,
            n,
            fps,
            &mut next,
        ) {
            return; // media shut down
        }
    }
}

/// Stamps picture `n` (`fps`, from running time `base`), pushes it, and sleeps until the
/// next one is due (`next`, advanced by a period). False once the media shut down.
fn push_paced(
    src: &gst_app::AppSrc,
    mut buf: gst::Buffer,
    base: gst::ClockTime,
    n: u64,
    fps: u32,
    next: &mut Instant,
) -> bool {
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(base + gst::ClockTime::from_nseconds(n * 1_000_000_000 / fps as u64));
        b.set_duration(gst::ClockTime::from_nseconds(1_000_000_000 / fps as u64));
    }
    if src.push_buffer(buf).is_err() {
        return false;
    }
    *next += Duration::from_secs_f64(1.0 / fps as f64);
    let now = Instant::now();
    if *next > now {
        std::thread::sleep(*next - now);
    } else {
        *next = now;
    }
    true
}

/// The pipeline's running time once it runs (the stream's timeline), or None if it never
/// starts within 30 s (the client went away before PLAY).
fn running_time(src: &gst_app::AppSrc) -> Option<gst::ClockTime> {
    let waiting = Instant::now();
    loop {
        if let Some(rt) = src.current_running_time() {
            return Some(rt);
        }
        if waiting.elapsed() > Duration::from_secs(30) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The launch line of a generated scene: a static background with a moving disc (and a
/// second, smaller one on odd paths) composited on top, encoded with x264.
fn scene_launch(o: &Options, i: usize) -> String {
    let (w, h, fps) = (o.width, o.height, o.fps);
    let bg = ["smpte", "smpte75", "pinwheel"][i % 3];
    let motion = ["sweep", "wavy", "hsweep"][i % 3];
    let enc = encoder(o);
    format!(
        "( compositor name=c background=black sink_1::xpos={bx} sink_1::ypos={by} ! video/x-raw,width={w},height={h},framerate={fps}/1 \
         ! videoconvert ! video/x-raw,format=I420 ! {enc} \
         videotestsrc is-live=true pattern={bg} ! video/x-raw,width={w},height={h},framerate={fps}/1 ! c.sink_0 \
         videotestsrc is-live=true pattern=ball motion={motion} background-color=0x00000000 \
         foreground-color=0xffff8000 ! video/x-raw,format=AYUV,width={bw},height={bh},framerate={fps}/1 \
         ! c.sink_1 )",
        // The moving disc's box sits in the middle third, where the demo's zones are.
        bx = w / 3,
        by = h / 3,
        bw = (w / 3).max(16) & !1,
        bh = (h / 2).max(16) & !1,
    )
}

/// Pushes the access units in a loop at `fps` until the media shuts down.
///
/// Timestamps are exact multiples of the frame period from the pipeline's running time
/// when the stream starts, as a camera's encoder clock gives them; stamping at push time
/// would add the pushing thread's scheduling jitter to every frame.
fn pump(src: gst_app::AppSrc, aus: &[AccessUnit], fps: u32, garbage: &AtomicU32) {
    // The pipeline's running time is the timeline of the stream.
    let Some(base) = running_time(&src) else {
        return;
    };
    let mut next = Instant::now();
    let mut rng = fastrand::Rng::new();
    for (n, au) in aus.iter().cycle().enumerate() {
        let bad = garbage
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |g| g.checked_sub(1))
            .is_ok();
        let mut buf = if bad {
            // A non-IDR slice NAL full of noise: valid framing, undecodable content.
            let mut v = vec![0, 0, 0, 1, 0x41];
            v.extend((0..2000).map(|_| rng.u8(1..=255)));
            gst::Buffer::from_mut_slice(v)
        } else {
            gst::Buffer::from_slice(au.data.clone())
        };
        if !au.is_key || bad {
            buf.get_mut()
                .unwrap()
                .set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        if !push_paced(&src, buf, base, n as u64, fps, &mut next) {
            return; // media shut down
        }
    }
}

/// Reads every access unit of an H.264 file (MP4 or Annex B) through GStreamer's demuxer and
/// parser, starting at the first keyframe.
fn load_access_units(path: &Path) -> anyhow::Result<Vec<AccessUnit>> {
    let is_mp4 = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("mp4" | "m4v" | "mov")
    );
    let launch = format!(
        "filesrc name=f {} ! h264parse config-interval=-1 \
         ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false",
        if is_mp4 { "! qtdemux" } else { "" }
    );
    let pipeline = gst::parse::launch(&launch)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    pipeline
        .by_name("f")
        .unwrap()
        .set_property("location", path.to_str().context("non-UTF-8 path")?);
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().unwrap();
    loop {
        match sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            Some(s) => {
                let b = s.buffer().context("sample without buffer")?;
                let m = b.map_readable()?;
                out.lock().unwrap().push(AccessUnit {
                    data: gst::glib::Bytes::from(m.as_slice()),
                    is_key: !b.flags().contains(gst::BufferFlags::DELTA_UNIT),
                });
            }
            None if sink.is_eos() => break,
            None => {
                if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
                    let _ = pipeline.set_state(gst::State::Null);
                    if let gst::MessageView::Error(e) = msg.view() {
                        bail!("cannot read {}: {}", path.display(), e.error());
                    }
                }
            }
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    let mut aus = std::mem::take(&mut *out.lock().unwrap());
    let first_key = aus
        .iter()
        .position(|a| a.is_key)
        .with_context(|| format!("{} has no H.264 keyframe", path.display()))?;
    aus.drain(..first_key);
    Ok(aus)
}

/// Runs the server until SIGINT/SIGTERM; SIGUSR1 drops clients, SIGUSR2 injects garbage.
/// Prints one `rtsp://` URL per path on stdout once listening.
pub fn run_cli(opts: Options) -> anyhow::Result<()> {
    let signals = block_signals();
    let paths = opts.paths.clone();
    let h = start(opts)?;
    for p in &paths {
        println!("{}", h.url(p));
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `signals` is an initialised sigset; `sig` a valid out-parameter.
        if unsafe { libc::sigwait(&signals, &mut sig) } != 0 {
            continue;
        }
        match sig {
            libc::SIGUSR1 => h.drop_clients(),
            libc::SIGUSR2 => {
                eprintln!("fake-camera: injecting garbage into 30 frames");
                h.inject_garbage(30);
            }
            _ => break,
        }
    }
    h.stop();
    Ok(())
}

/// Blocks SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 in this thread (and every thread it starts
/// afterwards) so that `sigwait` receives them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set manipulation on a local, zero-initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1, libc::SIGUSR2] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}
