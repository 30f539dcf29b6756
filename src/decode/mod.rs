//! Decoding for analysis (GStreamer): encoded video in, luma planes at the analysis size
//! out. Runs on GStreamer's own threads, never on the tokio executor.
//!
//! Pipeline: source -> parser -> [keyframes only: drop delta units] -> avdec_h264/h265 ->
//! videoscale (to the analysis width, aspect kept, in the decoder's native format) ->
//! [videorate: analysis fps] -> appsink. Only the Y plane is read (zero copy); nothing is
//! converted to GRAY8, which measured slower than decoding itself.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use ndarray::ArrayView2;

pub use crate::media::DecodeMode;

#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// Analysis width in pixels (height follows the aspect ratio, rounded to even).
    pub width: u32,
    /// Frames per second to analyse; `None` keeps every decoded frame.
    pub fps: Option<u32>,
    pub mode: DecodeMode,
    /// Decoder threads (0 = as many as cores; 1 suits many cameras at once).
    pub threads: u32,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            width: 640,
            fps: Some(5),
            mode: DecodeMode::Full,
            threads: 1,
        }
    }
}

/// One decoded frame's luma plane, borrowed from the GStreamer buffer (no copy).
pub struct LumaFrame {
    /// Presentation time from the start of the input's media timeline.
    pub pts: Option<gst::ClockTime>,
    pub width: usize,
    pub height: usize,
    stride: usize,
    offset: usize,
    info: gst_video::VideoInfo,
    map: gst::buffer::MappedBuffer<gst::buffer::Readable>,
}

impl LumaFrame {
    /// The Y plane as a `height x width` view (rows may be padded).
    pub fn view(&self) -> ArrayView2<'_, u8> {
        let data = &self.map.as_slice()[self.offset..];
        let len = (self.height - 1) * self.stride + self.width;
        ArrayView2::from_shape(
            ndarray::ShapeBuilder::strides((self.height, self.width), (self.stride, 1)),
            &data[..len],
        )
        .expect("plane fits its buffer")
    }

    /// The whole frame in colour (grey for a GRAY8 stream), scaled to at most `max_width`
    /// pixels wide, for thumbnails. GStreamer's `VideoConverter` does the colour
    /// conversion and scaling in place, without a pipeline; a few hundred µs at 640x360,
    /// so it is for the occasional frame, not every frame.
    pub fn rgb(&self, max_width: u32) -> anyhow::Result<image::RgbImage> {
        let (w0, h0) = (self.info.width(), self.info.height());
        let w = max_width.clamp(1, w0.max(1));
        let h = ((h0 as u64 * w as u64 / w0.max(1) as u64) as u32).max(1);
        let out_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w, h)
            .fps(self.info.fps())
            .build()?;
        let conv = gst_video::VideoConverter::new(&self.info, &out_info, None)?;
        let src = gst_video::VideoFrameRef::from_buffer_ref_readable(self.map.buffer(), &self.info)
            .map_err(|_| anyhow::anyhow!("cannot map the frame"))?;
        let mut out = gst::Buffer::with_size(out_info.size())?;
        let mut img = image::RgbImage::new(w, h);
        {
            let out = out.get_mut().expect("a new buffer is writable");
            let mut dst = gst_video::VideoFrameRef::from_buffer_ref_writable(out, &out_info)
                .map_err(|_| anyhow::anyhow!("cannot map the thumbnail"))?;
            conv.frame_ref(&src, &mut dst);
            let stride = gst_video::prelude::VideoFrameExt::plane_stride(&dst)[0] as usize;
            let data = dst.plane_data(0)?;
            let row = w as usize * 3;
            for (y, dst_row) in img.chunks_exact_mut(row).enumerate() {
                dst_row.copy_from_slice(&data[y * stride..y * stride + row]);
            }
        }
        Ok(img)
    }
}

/// Counters of one decode run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub frames: u64,
    /// Decoder warnings (corrupt data it concealed or skipped).
    pub decode_errors: u64,
}

/// Decodes a file (MP4, MKV, MPEG-TS or raw H.264/H.265) as fast as possible, calling
/// `on_frame` for each analysed frame; `on_frame` returns false to stop early.
pub fn decode_file(
    path: &Path,
    opts: &DecodeOptions,
    mut on_frame: impl FnMut(LumaFrame) -> bool,
) -> anyhow::Result<DecodeStats> {
    gst::init().context("cannot initialise GStreamer")?;
    if !path.is_file() {
        bail!("{}: no such file", path.display());
    }
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", path.to_str().context("path is not UTF-8")?);
    let parse = make("parsebin")?;
    let (tail_head, sink) = tail(&pipeline, opts)?;
    pipeline.add_many([&src, &parse])?;
    src.link(&parse)?;
    let linked = Arc::new(Mutex::new(None::<String>));
    {
        let pipeline = pipeline.downgrade();
        let linked = linked.clone();
        let mode = opts.mode;
        let threads = opts.threads;
        parse.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline.upgrade() else {
                return;
            };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let Some(name) = caps.structure(0).map(|s| s.name().to_string()) else {
                return;
            };
            let mut l = linked.lock().unwrap();
            if l.is_some() || !name.starts_with("video/") {
                return; // one video stream; audio and others are ignored
            }
            match decode_chain(&pipeline, &name, mode, threads, &tail_head) {
                Ok(first) => {
                    if pad.link(&first.static_pad("sink").unwrap()).is_ok() {
                        *l = Some(name);
                    }
                }
                Err(e) => *l = Some(format!("error: {e}")),
            }
        });
    }
    run_to_end(&pipeline, &sink, &linked, path, &mut on_frame)
}

fn make(factory: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("GStreamer element {factory} is missing (install gstreamer1.0-plugins-* and gstreamer1.0-libav)"))
}

/// Parser-side chain for `caps_name` (parser, optional keyframe filter, decoder), linked
/// to `next`; returns its first element.
fn decode_chain(
    pipeline: &gst::Pipeline,
    caps_name: &str,
    mode: DecodeMode,
    threads: u32,
    next: &gst::Element,
) -> anyhow::Result<gst::Element> {
    let (parser, decoder) = match caps_name {
        "video/x-h264" => ("h264parse", "avdec_h264"),
        "video/x-h265" => ("h265parse", "avdec_h265"),
        other => bail!("unsupported video codec {other} (H.264 and H.265 are)"),
    };
    let parse = make(parser)?;
    let dec = make(decoder)?;
    dec.set_property("max-threads", threads as i32);
    // Never turn a run of corrupt frames into a pipeline error: conceal and go on.
    dec.set_property("max-errors", -1i32);
    if mode == DecodeMode::SkipB {
        dec.set_property_from_str("skip-frame", "1");
    }
    let mut chain = vec![parse.clone()];
    if mode == DecodeMode::KeyframesOnly {
        let drop = make("identity")?;
        drop.set_property_from_str("drop-buffer-flags", "delta-unit");
        chain.push(drop);
    }
    chain.push(dec);
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    chain.last().unwrap().link(next)?;
    for e in &chain {
        e.sync_state_with_parent()?;
    }
    Ok(parse)
}

/// The scaling/thinning tail shared by all sources: returns (its first element, appsink).
fn tail(
    pipeline: &gst::Pipeline,
    opts: &DecodeOptions,
) -> anyhow::Result<(gst::Element, gst_app::AppSink)> {
    if opts.width < 16 || !opts.width.is_multiple_of(2) {
        bail!(
            "analysis width must be even and at least 16, not {}",
            opts.width
        );
    }
    let scale = make("videoscale")?;
    let mut elems = vec![scale.clone()];
    let caps = gst::Caps::builder("video/x-raw")
        .field(
            "format",
            gst::List::new(["I420", "NV12", "Y42B", "Y444", "GRAY8", "YV12", "NV21"]),
        )
        // Up to the analysis width: smaller inputs keep their size (no upscaling).
        .field("width", gst::IntRange::new(16, opts.width as i32))
        // Square pixels: videoscale then derives the height from the display aspect ratio
        // (otherwise it keeps the height and stretches the pixels).
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let filter = make("capsfilter")?;
    filter.set_property("caps", &caps);
    elems.push(filter);
    if let Some(fps) = opts.fps {
        let rate = make("videorate")?;
        rate.set_property("drop-only", true);
        rate.set_property("max-rate", fps as i32);
        elems.push(rate);
    }
    let sink = gst_app::AppSink::builder().sync(false).build();
    elems.push(sink.clone().upcast());
    pipeline.add_many(&elems)?;
    gst::Element::link_many(&elems)?;
    Ok((scale, sink))
}

fn run_to_end(
    pipeline: &gst::Pipeline,
    sink: &gst_app::AppSink,
    linked: &Mutex<Option<String>>,
    path: &Path,
    on_frame: &mut impl FnMut(LumaFrame) -> bool,
) -> anyhow::Result<DecodeStats> {
    let mut stats = DecodeStats::default();
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().unwrap();
    let result = loop {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) {
            let frame = luma(&sample)?;
            stats.frames += 1;
            if !on_frame(frame) {
                break Ok(());
            }
            continue;
        }
        if sink.is_eos() {
            break Ok(());
        }
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let _ = pipeline.set_state(gst::State::Null);
                    if let Some(l) = linked
                        .lock()
                        .unwrap()
                        .as_ref()
                        .filter(|l| l.starts_with("error:"))
                    {
                        bail!("{}: {}", path.display(), &l[7..]);
                    }
                    bail!("{}: {}", path.display(), e.error());
                }
                gst::MessageView::Warning(_) => stats.decode_errors += 1,
                _ => {}
            }
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    if stats.frames == 0 {
        match linked.lock().unwrap().as_ref() {
            Some(l) if l.starts_with("error:") => bail!("{}: {}", path.display(), &l[7..]),
            None => bail!("{}: no video stream found", path.display()),
            _ => {}
        }
    }
    result.map(|()| stats)
}

/// The Y plane of a sample, mapped without copying.
fn luma(sample: &gst::Sample) -> anyhow::Result<LumaFrame> {
    let caps = sample.caps().context("sample without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps)?;
    let buffer = sample.buffer_owned().context("sample without buffer")?;
    let (offset, stride) = match buffer.meta::<gst_video::VideoMeta>() {
        Some(m) => (m.offset()[0], m.stride()[0] as usize),
        None => (info.offset()[0], info.stride()[0] as usize),
    };
    Ok(LumaFrame {
        pts: buffer.pts(),
        width: info.width() as usize,
        height: info.height() as usize,
        stride,
        offset,
        info,
        map: buffer
            .into_mapped_buffer_readable()
            .map_err(|_| anyhow::anyhow!("cannot map buffer"))?,
    })
}

/// Decodes frames pushed one at a time: the live path, fed with the RTSP frames that are
/// being recorded. `push` blocks while the decoder is behind (bounded queue), so the
/// caller's own bounded channel, and not memory, absorbs a slow decoder.
pub struct LiveDecoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
    /// Decoder warnings seen (corrupt data concealed).
    pub decode_errors: u64,
    cpu: ThreadCpu,
}

/// CPU time of one pipeline's threads, found by name in `/proc/self/task`.
///
/// The pipeline has no queue, so parsing, decoding and scaling run in the appsrc's
/// streaming thread, which GStreamer names after the element and pad (`vd<N>:src`), and
/// in libav's worker threads, which it starts and which inherit that name. Summing their
/// user + system time gives the decode cost per camera, whatever the codec does with
/// threads. Threads are sampled, so the time of a thread that ended since the last
/// sample is lost (a pipeline restart); the resolution is the kernel's clock tick.
struct ThreadCpu {
    prefix: String,
    /// Ticks seen per thread id at the last sample.
    seen: std::collections::HashMap<u32, u64>,
}

impl ThreadCpu {
    /// Seconds of CPU since the last call.
    fn sample(&mut self) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return 0.0;
        };
        let mut delta = 0u64;
        let mut now = std::collections::HashMap::new();
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let p = e.path();
            let named = std::fs::read_to_string(p.join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with(&self.prefix));
            if !named {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(p.join("stat")) else {
                continue;
            };
            // Fields after the parenthesised name: state is 3rd, utime 14th, stime 15th.
            let Some(rest) = stat.rsplit_once(") ").map(|r| r.1) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            delta += ticks.saturating_sub(self.seen.get(&tid).copied().unwrap_or(0));
            now.insert(tid, ticks);
        }
        self.seen = now;
        delta as f64 / hz
    }
}

impl LiveDecoder {
    /// `encoding` is "h264" or "h265"; `codec_config` the `avcC`/`hvcC` record of the
    /// stream (frames are pushed length-prefixed, as MP4 stores them).
    pub fn new(encoding: &str, codec_config: &[u8], opts: &DecodeOptions) -> anyhow::Result<Self> {
        gst::init().context("cannot initialise GStreamer")?;
        let (caps_name, format) = match encoding {
            "h264" => ("video/x-h264", "avc"),
            "h265" => ("video/x-h265", "hvc1"),
            other => bail!("unsupported encoding {other}"),
        };
        let caps = gst::Caps::builder(caps_name)
            .field("stream-format", format)
            .field("alignment", "au")
            .field("codec_data", gst::Buffer::from_slice(codec_config.to_vec()))
            .build();
        let pipeline = gst::Pipeline::new();
        // A short unique name: its streaming thread is named `<name>:src` (15 bytes at
        // most on Linux), which is how its CPU time is found.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "vd{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100_000
        );
        let src = gst_app::AppSrc::builder()
            .name(&name)
            .caps(&caps)
            .format(gst::Format::Time)
            .is_live(false)
            .block(true)
            .max_bytes(4 << 20)
            .build();
        let (head, sink) = tail(&pipeline, opts)?;
        pipeline.add(&src)?;
        let first = decode_chain(&pipeline, caps_name, opts.mode, opts.threads, &head)?;
        src.link(&first)?;
        pipeline
            .set_state(gst::State::Playing)
            .context("cannot start the decoding pipeline")?;
        Ok(LiveDecoder {
            pipeline,
            src,
            sink,
            decode_errors: 0,
            cpu: ThreadCpu {
                prefix: format!("{name}:"),
                seen: Default::default(),
            },
        })
    }

    /// CPU seconds the pipeline's threads (decoding and scaling) used since the last
    /// call. Reads `/proc`: call it about once a second, not per frame.
    pub fn cpu_seconds(&mut self) -> f64 {
        self.cpu.sample()
    }

    /// Queues one frame, in decode order, with its presentation and decode times (ns
    /// from the decoder's time zero).
    pub fn push(
        &self,
        data: bytes::Bytes,
        pts_ns: u64,
        dts_ns: u64,
        is_key: bool,
    ) -> anyhow::Result<()> {
        let mut buf = gst::Buffer::from_slice(data);
        {
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_nseconds(pts_ns));
            b.set_dts(gst::ClockTime::from_nseconds(dts_ns));
            if !is_key {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        self.src
            .push_buffer(buf)
            .map_err(|e| anyhow::anyhow!("decoder refused a frame: {e:?}"))?;
        Ok(())
    }

    /// A decoded frame if one is ready (never waits).
    pub fn pull(&self) -> anyhow::Result<Option<LumaFrame>> {
        match self.sink.try_pull_sample(gst::ClockTime::ZERO) {
            Some(s) => Ok(Some(luma(&s)?)),
            None => Ok(None),
        }
    }

    /// Counts decoder warnings; returns the pipeline's error if it failed.
    pub fn poll_bus(&mut self) -> anyhow::Result<()> {
        let bus = self.pipeline.bus().unwrap();
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => bail!("decoder: {}", e.error()),
                gst::MessageView::Warning(_) => self.decode_errors += 1,
                _ => {}
            }
        }
        Ok(())
    }
}

impl Drop for LiveDecoder {
    fn drop(&mut self) {
        let _ = self.src.end_of_stream();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
