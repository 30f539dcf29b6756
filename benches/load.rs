//! Load run: N looped 1080p cameras (15 fps, about 4 Mbit/s, served without re-encoding by
//! `vigil fake-camera --file`) recorded by the real daemon; reports the daemon's CPU per
//! camera (from /proc, the RTSP server's own CPU excluded), RSS, dropped frames and MB/s.
//!
//! `cargo bench --bench load` — environment: VIGIL_LOAD_CAMERAS (default 64),
//! VIGIL_LOAD_SECONDS (default 60), VIGIL_BENCH_DIR (where to record; default target/),
//! VIGIL_LOAD_SIZE (`1080p`, the default, at ~4 Mbit/s; or `360p` at ~600 kbit/s, a
//! typical substream), VIGIL_LOAD_MOTION (`1`: live motion analysis of every camera too;
//! default off, so that the default run measures recording alone),
//! VIGIL_LOAD_RECORDERS (comma-separated, in order, default `vigil`: `vigil` and/or
//! `ffmpeg`, the recording path Frigate uses, one `ffmpeg -c copy -f segment` process per
//! camera with Frigate's default record arguments; each recorder records the same
//! server's same streams for the same time, one after the other, and the run ends with
//! the ratio of their CPU per camera).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn status_kb(pid: i32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Proportional set size of a process, KiB (shared pages divided among their users).
fn pss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            n += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            };
        }
    }
    n
}

/// A 60 s clip with B-frames (1080p ~4 Mbit/s or 360p ~600 kbit/s, 15 fps, GOP 2 s),
/// made once with ffmpeg, served by GStreamer's rtsp-server: one URL, a pipeline per
/// camera. Returns the server and the cameras' URLs.
fn b_frame_server(base: &Path, work: &Path, small: bool, n: usize) -> (Proc, Vec<String>) {
    let (size, rate) = if small {
        ("640x360", "600k")
    } else {
        ("1920x1080", "4M")
    };
    let clip = base.join(format!("load-bframes-{size}.mp4"));
    if !clip.exists() {
        let st = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate=15"))
            .args([
                "-t", "60", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset",
            ])
            .args(["veryfast", "-bf", "2", "-g", "30", "-b:v", rate])
            .arg(&clip)
            .status()
            .unwrap();
        assert!(st.success(), "ffmpeg");
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/gst_file_server.py");
    let mut cmd = std::process::Command::new("/usr/bin/python3");
    cmd.arg(script)
        .arg(&clip)
        .args(["--max-seconds", "3600"])
        .stdin(std::process::Stdio::piped());
    let p = spawn_cmd(cmd, &work.join("cam.log"));
    let line = p.wait_line("URL ", Duration::from_secs(30));
    let url = line.trim_start_matches("URL ").trim().to_string();
    (p, vec![url; n])
}

/// What one recorder cost over the measured window.
struct Measure {
    name: &'static str,
    /// CPU of one core, percent, all of the recorder's processes.
    cpu_pct: f64,
    /// Resident memory, MiB, summed over its processes (peak: the sum of their peaks).
    rss_mib: f64,
    peak_mib: f64,
    written_mb_s: f64,
    server_pct: f64,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only on bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_num("VIGIL_LOAD_CAMERAS", 64) as usize;
    let secs = env_num("VIGIL_LOAD_SECONDS", 60);
    let base_dir = std::env::var("VIGIL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&base_dir).unwrap();
    let small = std::env::var("VIGIL_LOAD_SIZE").is_ok_and(|s| s == "360p");
    let motion = std::env::var("VIGIL_LOAD_MOTION").is_ok_and(|s| s == "1");
    let bframes = std::env::var("VIGIL_LOAD_BFRAMES").is_ok_and(|s| s == "1");
    let recorders = std::env::var("VIGIL_LOAD_RECORDERS").unwrap_or_else(|_| "vigil".into());
    let work = tempfile::tempdir_in(&base_dir).unwrap();
    let (cam, urls) = if bframes {
        b_frame_server(&base_dir, work.path(), small, n)
    } else {
        let clip = load_clip(&base_dir, small);
        let count = n.to_string();
        let (cam, port) = fake_camera(
            &[],
            0,
            &[
                "--count",
                &count,
                "--file",
                clip.to_str().unwrap(),
                "--fps",
                "15",
            ],
            &work.path().join("cam.log"),
        );
        let urls = (1..=n)
            .map(|i| format!("rtsp://127.0.0.1:{port}/cam{i}"))
            .collect::<Vec<_>>();
        (cam, urls)
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "load run: {n} cameras, {}{} 15 fps each, motion analysis {}, {secs} s per recorder, {cores} cores",
        if bframes {
            "B-frames (x264 -bf 2), "
        } else {
            ""
        },
        if small {
            "640x360 ~600 kbit/s"
        } else {
            "1080p ~4 Mbit/s"
        },
        if motion {
            "on (640 px wide, 5 fps)"
        } else {
            "off"
        }
    );
    let mut measures = Vec::new();
    for r in recorders.split(',').map(str::trim) {
        let dir = work.path().join(r);
        std::fs::create_dir_all(&dir).unwrap();
        measures.push(match r {
            "vigil" => run_vigil(&dir, &urls, &cam, secs, motion),
            "ffmpeg" => run_ffmpeg(&dir, &urls, &cam, secs),
            other => panic!("VIGIL_LOAD_RECORDERS: unknown recorder {other:?}"),
        });
    }
    println!();
    for m in &measures {
        println!(
            "  {:<6} CPU {:6.1}% of one core = {:.3}% per camera; RSS {:.1} MiB (peak {:.1}); {:.1} MB/s written; RTSP server {:.1}% (excluded)",
            m.name,
            m.cpu_pct,
            m.cpu_pct / n as f64,
            m.rss_mib,
            m.peak_mib,
            m.written_mb_s,
            m.server_pct
        );
    }
    if let (Some(v), Some(f)) = (
        measures.iter().find(|m| m.name == "vigil"),
        measures.iter().find(|m| m.name == "ffmpeg"),
    ) {
        println!(
            "  vigil / ffmpeg: CPU {:.2}, RSS {:.2}",
            v.cpu_pct / f.cpu_pct,
            v.rss_mib / f.rss_mib
        );
    }
}

fn run_vigil(dir: &Path, urls: &[String], cam: &Proc, secs: u64, motion: bool) -> Measure {
    let n = urls.len();
    let storage = dir.join("storage");
    let cams: Vec<(String, String)> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| (format!("cam{}", i + 1), u.clone()))
        .collect();
    let cams_ref: Vec<(&str, String)> = cams.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    let cfg = dir.join("vigil.toml");
    let mut text = config(&storage, &cams_ref, "segment_seconds = 60");
    text = text.replacen(
        "[server]",
        &format!("[motion]\nenabled = {motion}\n\n[server]"),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let d = daemon(&cfg, &dir.join("daemon.log"));
    wait_for(Duration::from_secs(120), "all cameras streaming", || {
        let v = d.get_json("/api/cameras");
        let up = v["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == "streaming")
            .count();
        (up == n).then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    let totals = |v: &serde_json::Value, key: &str| -> u64 {
        v["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[key].as_u64().unwrap())
            .sum()
    };
    let v0 = d.get_json("/api/cameras");
    let (d_cpu0, c_cpu0, bytes0, t0) = (
        cpu_seconds(d.proc.pid()),
        cpu_seconds(cam.pid()),
        dir_bytes(&storage),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let el = t0.elapsed().as_secs_f64();
    let v1 = d.get_json("/api/cameras");
    let d_cpu = cpu_seconds(d.proc.pid()) - d_cpu0;
    let c_cpu = cpu_seconds(cam.pid()) - c_cpu0;
    let written = dir_bytes(&storage) - bytes0;
    let frames = totals(&v1, "frames") - totals(&v0, "frames");
    let dropped = totals(&v1, "dropped_frames");
    let analysed = totals(&v1, "analysed_frames") - totals(&v0, "analysed_frames");
    let analysis_dropped = totals(&v1, "analysis_dropped");
    let reconnects = totals(&v1, "reconnects");
    let rss = status_kb(d.proc.pid(), "VmRSS:");
    let hwm = status_kb(d.proc.pid(), "VmHWM:");
    println!("vigil:");
    println!(
        "  daemon CPU       {:.1}% of one core = {:.3}% per camera",
        d_cpu / el * 100.0,
        d_cpu / el * 100.0 / n as f64
    );
    println!(
        "  daemon RSS       {:.1} MiB (peak {:.1} MiB)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "  frames recorded  {frames} ({:.1}/s; expected {:.0}/s)",
        frames as f64 / el,
        n as f64 * 15.0
    );
    println!("  dropped frames   {dropped} (recording); reconnects {reconnects}");
    if motion {
        println!(
            "  motion           {:.1} frames/s analysed (expected {:.0}/s); {analysis_dropped} frames skipped by the analysers",
            analysed as f64 / el,
            n as f64 * 5.0
        );
    }
    println!("  written          {:.1} MB/s", written as f64 / el / 1e6);
    println!(
        "  RTSP server CPU  {:.1}% of one core (excluded above)",
        c_cpu / el * 100.0
    );
    assert!(d.stop(Duration::from_secs(60)).success());
    Measure {
        name: "vigil",
        cpu_pct: d_cpu / el * 100.0,
        rss_mib: rss as f64 / 1024.0,
        peak_mib: hwm as f64 / 1024.0,
        written_mb_s: written as f64 / el / 1e6,
        server_pct: c_cpu / el * 100.0,
    }
}

/// Frigate's recording path: per camera `ffmpeg -c copy -f segment` with the arguments
/// of Frigate's defaults (frigate/ffmpeg_presets.py: global `-hide_banner -loglevel
/// warning -threads 2`, input `preset-rtsp-generic`, output `preset-record-generic`:
/// `-f segment -segment_time 10 -segment_format mp4 -reset_timestamps 1 -strftime 1
/// -c copy -an`).
fn run_ffmpeg(dir: &Path, urls: &[String], cam: &Proc, secs: u64) -> Measure {
    let n = urls.len();
    let start = |i: usize| {
        let u = &urls[i];
        let out = dir.join(format!("cam{}", i + 1));
        std::fs::create_dir_all(&out).unwrap();
        let mut cmd = std::process::Command::new("ffmpeg");
        // Frigate's global arguments and its `preset-rtsp-generic` input preset.
        cmd.args([
            "-hide_banner",
            "-loglevel",
            "warning",
            "-threads",
            "2",
            "-nostdin",
        ])
        .args([
            "-avoid_negative_ts",
            "make_zero",
            "-fflags",
            "+genpts+discardcorrupt",
        ])
        .args(["-rtsp_transport", "tcp", "-timeout", "5000000"])
        .args(["-use_wallclock_as_timestamps", "1"])
        .args(["-i", u])
        .args([
            "-f",
            "segment",
            "-segment_time",
            "10",
            "-segment_format",
            "mp4",
        ])
        .args([
            "-reset_timestamps",
            "1",
            "-strftime",
            "1",
            "-c",
            "copy",
            "-an",
        ])
        .arg(out.join("%Y%m%d%H%M%S.mp4"));
        spawn_cmd(cmd, &dir.join(format!("ffmpeg{}.log", i + 1)))
    };
    // Started a little apart, and restarted if one exits while they all connect, as
    // Frigate's watchdog restarts them.
    let mut procs: Vec<Proc> = Vec::new();
    for i in 0..n {
        procs.push(start(i));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut restarts = 0;
    wait_for(Duration::from_secs(180), "every ffmpeg writing", || {
        for (i, p) in procs.iter_mut().enumerate() {
            if !p.is_running() {
                restarts += 1;
                *p = start(i);
            }
        }
        (1..=n)
            .all(|i| dir_bytes(&dir.join(format!("cam{i}"))) > 0)
            .then_some(())
    });
    if restarts > 0 {
        println!("ffmpeg: {restarts} processes restarted while connecting");
    }
    std::thread::sleep(Duration::from_secs(5));
    let pids: Vec<i32> = procs.iter().map(|p| p.pid()).collect();
    let cpu = |pids: &[i32]| pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();
    let (f_cpu0, c_cpu0, bytes0, t0) = (
        cpu(&pids),
        cpu_seconds(cam.pid()),
        dir_bytes(dir),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let el = t0.elapsed().as_secs_f64();
    let f_cpu = cpu(&pids) - f_cpu0;
    let c_cpu = cpu_seconds(cam.pid()) - c_cpu0;
    let written = dir_bytes(dir) - bytes0;
    let rss: u64 = pids.iter().map(|&p| status_kb(p, "VmRSS:")).sum();
    let hwm: u64 = pids.iter().map(|&p| status_kb(p, "VmHWM:")).sum();
    // RSS counts the shared libraries' pages in every process; PSS shares them out.
    let pss: u64 = pids.iter().map(|&p| pss_kb(p)).sum();
    for mut p in procs {
        assert!(
            p.is_running(),
            "an ffmpeg exited early (see its log in {})",
            dir.display()
        );
        p.signal(libc::SIGINT);
        p.stop(Duration::from_secs(10));
    }
    println!("ffmpeg ({n} processes):");
    println!(
        "  CPU              {:.1}% of one core = {:.3}% per camera",
        f_cpu / el * 100.0,
        f_cpu / el * 100.0 / n as f64
    );
    println!(
        "  RSS              {:.1} MiB summed (peaks summed {:.1} MiB); PSS {:.1} MiB summed",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        pss as f64 / 1024.0
    );
    println!("  written          {:.1} MB/s", written as f64 / el / 1e6);
    Measure {
        name: "ffmpeg",
        cpu_pct: f_cpu / el * 100.0,
        rss_mib: rss as f64 / 1024.0,
        peak_mib: hwm as f64 / 1024.0,
        written_mb_s: written as f64 / el / 1e6,
        server_pct: c_cpu / el * 100.0,
    }
}
