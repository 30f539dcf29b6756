//! `vigil analyze`: motion events of a video file, with a camera's zones, masks and motion
//! settings, as fast as decoding allows.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::decode::{DecodeOptions, decode_file};
use crate::motion::detector::Detector;

#[derive(clap::Args)]
#[command(after_help = "Prints one JSON object per event on stdout, e.g.\n  \
    {\"camera\":\"front-door\",\"start_ms\":15400,\"end_ms\":34600,\"zones\":[\"door\"],\
    \"peak_score\":0.031,\"bbox\":[0.12,0.4,0.31,0.98]}\n\
    Times are milliseconds from the start of the input's media timeline; bbox is x0, y0, x1, y1 \
    in fractions of the image. A summary (frames, speed, events, CPU split) goes to stderr.")]
pub struct Args {
    /// The config whose camera settings to use.
    #[arg(long, short)]
    config: PathBuf,
    /// The camera whose zones, masks and [cameras.motion] settings apply.
    #[arg(long)]
    camera: String,
    /// An MP4 (or MKV, MPEG-TS) file or a raw H.264/H.265 (Annex B) stream.
    input: PathBuf,
}

/// CPU time of the calling thread, or of the whole process.
fn cpu_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-parameter.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub fn main(a: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&a.config)?;
    let cam = config
        .cameras
        .iter()
        .find(|c| c.name == a.camera)
        .with_context(|| {
            let names: Vec<_> = config.cameras.iter().map(|c| c.name.as_str()).collect();
            format!(
                "no camera {:?} in {} (cameras: {names:?})",
                a.camera,
                a.config.display()
            )
        })?;
    let m = cam.motion.clone();
    let opts = DecodeOptions {
        width: m.width,
        fps: Some(m.fps),
        mode: m.decode,
        threads: 0,
    };
    let mut det = Detector::new(&cam.name, &cam.zones, &cam.masks, m.detector.clone());
    let interval_ms = 1000 / m.fps as u64;
    det.set_frame_interval_ms(interval_ms);
    let started = Instant::now();
    let cpu0 = cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID);
    let mut motion_cpu = Duration::ZERO;
    // The first frame also rasterises zones and allocates the background: reported apart.
    let mut setup_cpu = Duration::ZERO;
    let mut events = 0u64;
    let mut failed: Option<anyhow::Error> = None;
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    let stats = decode_file(&a.input, &opts, |f| {
        let t_ms = f.pts.map(|p| p.mseconds()).unwrap_or(n * interval_ms);
        n += 1;
        let c0 = cpu_time(libc::CLOCK_THREAD_CPUTIME_ID);
        let r = det.frame(f.view(), t_ms);
        let spent = cpu_time(libc::CLOCK_THREAD_CPUTIME_ID).saturating_sub(c0);
        if n == 1 {
            setup_cpu = spent;
        } else {
            motion_cpu += spent;
        }
        match r {
            Ok((_, Some(ev))) => {
                events += 1;
                let _ = writeln!(out, "{}", serde_json::to_string(&ev).unwrap());
                true
            }
            Ok(_) => true,
            Err(e) => {
                failed = Some(e.into());
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(ev) = det.finish() {
        events += 1;
        writeln!(out, "{}", serde_json::to_string(&ev)?)?;
    }
    out.flush()?;
    let wall = started.elapsed().as_secs_f64();
    let total_cpu = cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID).saturating_sub(cpu0);
    let frames = stats.frames.max(1) as f64;
    eprintln!(
        "analyzed {} frames in {wall:.2} s ({:.0} frames/s); {events} events; {} decode errors",
        stats.frames,
        stats.frames as f64 / wall.max(1e-9),
        stats.decode_errors
    );
    eprintln!(
        "CPU per analysed frame: decode {:.3} ms, motion {:.3} ms (plus {:.1} ms of set-up on the first frame)",
        total_cpu
            .saturating_sub(motion_cpu + setup_cpu)
            .as_secs_f64()
            * 1e3
            / frames,
        motion_cpu.as_secs_f64() * 1e3 / (frames - 1.0).max(1.0),
        setup_cpu.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
}
