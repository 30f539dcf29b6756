//! Conformance: Vigil records RTSP servers and camera behaviours it did not write, and its
//! recordings pass players and verifiers it did not write.
//!
//! Servers (all bound to 127.0.0.1, started here, stopped when their stdin closes):
//! GStreamer's rtsp-server serving files through `qtdemux ! parse ! pay`
//! (`tests/servers/gst_file_server.py`), VLC's RTSP output over UDP
//! (`tests/servers/vlc_server.sh`), ffmpeg pushing to rtsp-server-perl, read over UDP
//! (`tests/servers/perl_push.sh`), and, for camera faults no stock server produces, a
//! small misbehaving camera (`tests/servers/badcam.py`, itself checked against ffmpeg).
//! Media is generated here with ffmpeg (x264/x265), a few seconds each.
//!
//! For each camera ("cell"): at least 97% of its seconds recorded, no reconnect loop,
//! every segment's ffprobe frame count and duration equal to the index, FFmpeg decodes
//! every segment without an error, segments never overlap, and a 30 s clip that crosses
//! a segment boundary plays in Chromium (H.264 cells; Debian's Chromium has no H.265
//! decoder) and in FFmpeg.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "conformance/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use harness::*;

/// GStreamer's rtsp-server serving files: H.264 with and without B-frames, H.265 with
/// B-frames, H.264 with AAC (recorded, and with `audio = false`), 1080p with B-frames,
/// and H.264 with G.711 (audio skipped).
#[test]
fn gstreamer_rtsp_server_serving_files() {
    let t = TestDir::new();
    let media = [
        ("gst-h264", H264),
        ("gst-h264-b", Media { bframes: 2, ..H264 }),
        (
            "gst-h265-b",
            Media {
                codec: "h265",
                bframes: 2,
                ..H264
            },
        ),
        (
            "gst-h264-aac",
            Media {
                audio: true,
                ..H264
            },
        ),
        (
            "gst-1080-b",
            Media {
                width: 1920,
                height: 1080,
                bframes: 2,
                ..H264
            },
        ),
    ];
    let mut servers = Vec::new();
    let mut cells = Vec::new();
    for (name, m) in media {
        let file = m.make(&t.join(""));
        let mut args = vec![
            file.to_str().unwrap().to_string(),
            "--codec".into(),
            m.codec.into(),
        ];
        if m.audio {
            args.push("--audio".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let s = start_server("gst_file_server.py", &args, &t.join(&format!("{name}.log")));
        let mut cell = Cell::new(name, &s.url);
        cell.chromium = m.codec == "h264";
        cell.motion = m.bframes > 0 && m.width < 1920;
        if m.audio {
            cell.audio = "aac";
        }
        cells.push(cell);
        servers.push(s);
    }
    // The same AAC camera with `audio = false`; and a camera with G.711 (PCMU), which
    // MP4 players do not accept: its video is recorded, its audio skipped with a reason.
    let aac = Media {
        audio: true,
        ..H264
    }
    .make(&t.join(""));
    let s = start_server(
        "gst_file_server.py",
        &[aac.to_str().unwrap(), "--audio"],
        &t.join("gst-audio-off.log"),
    );
    let mut cell = Cell::new("gst-audio-off", &s.url);
    cell.extra = "audio = false".into();
    cell.audio = "off";
    cells.push(cell);
    servers.push(s);
    let plain = H264.make(&t.join(""));
    let s = start_server(
        "gst_file_server.py",
        &[plain.to_str().unwrap(), "--pcmu"],
        &t.join("gst-pcmu.log"),
    );
    let mut cell = Cell::new("gst-pcmu", &s.url);
    cell.audio = "skipped: pcmu/8000";
    cells.push(cell);
    servers.push(s);
    record_and_check(&t, &cells);
}

/// VLC's RTSP output (RTP over UDP only): H.264 with B-frames, and H.264 with AAC.
#[test]
fn vlc_rtsp_output_over_udp() {
    let t = TestDir::new();
    let mut servers = Vec::new();
    let mut cells = Vec::new();
    for (name, m) in [
        ("vlc-b", Media { bframes: 2, ..H264 }),
        (
            "vlc-aac",
            Media {
                audio: true,
                ..H264
            },
        ),
    ] {
        let file = m.make(&t.join(""));
        let s = start_server(
            "vlc_server.sh",
            &[file.to_str().unwrap()],
            &t.join(&format!("{name}.log")),
        );
        let mut cell = Cell::new(name, &s.url);
        cell.extra = "transport = \"udp\"".into();
        if m.audio {
            cell.audio = "aac";
        }
        cells.push(cell);
        servers.push(s);
    }
    record_and_check(&t, &cells);
}

/// `badcam.py` serving `file` with `faults`, as camera `name` of a run.
fn badcam(t: &TestDir, name: &str, file: &Path, faults: &[&str]) -> (Server, Cell) {
    let mut args = vec!["--media", file.to_str().unwrap()];
    args.extend(faults);
    let s = start_server("badcam.py", &args, &t.join(&format!("{name}.log")));
    let cell = Cell::new(name, &s.url);
    (s, cell)
}

/// Cameras with faults that no stock server produces: a clock stepping back once, a clock
/// 1.2x fast, a marker bit on every slice, lost packets (joining mid-fragment), a clock
/// jumping forward, RTP timestamp wrap-around, parameter sets only in the SDP or only
/// in-band, keepalives answered with errors, a malformed audio fmtp, and a stream that
/// ends every 15 s.
#[test]
fn misbehaving_cameras() {
    let t = TestDir::new();
    let plain = H264.make(&t.join(""));
    let b = Media { bframes: 2, ..H264 }.make(&t.join(""));
    let sliced = Media { slices: 4, ..H264 }.make(&t.join(""));
    let mut servers = Vec::new();
    let mut cells = Vec::new();
    let mut add = |name: &str, file: &Path, faults: &[&str], f: &dyn Fn(&mut Cell)| {
        let (s, mut c) = badcam(&t, name, file, faults);
        f(&mut c);
        servers.push(s);
        cells.push(c);
    };
    // One step back: pictures follow on to the next keyframe, where the segment closes
    // (timestamp-jump); nothing lost; decoded live across it.
    add("step-back", &b, &["--step-back", "12:2"], &|c| {
        c.jumps = 1..=1;
        c.motion = true;
    });
    add("fast-clock", &plain, &["--clock-rate", "1.2"], &|c| {
        c.clock_rate = Some(1.0 / 1.2)
    });
    add("slices", &sliced, &["--marker-every-slice"], &|_| {});
    // Each lost packet costs the pictures up to the next keyframe (2 s GOPs).
    add(
        "lossy",
        &b,
        &["--drop-packets", "0.002", "--start-mid-fu"],
        &|c| c.coverage = 0.80,
    );
    add("jump-forward", &plain, &["--jump-forward", "12:30"], &|c| {
        c.jumps = 1..=1
    });
    add("wrap", &b, &["--initial-ts", "4294000000"], &|_| {});
    // What passed before the timing model, kept passing: parameter sets only in the SDP
    // or only in the stream, keepalives (every 2 s) answered with errors, and an audio
    // track with a malformed fmtp (video recorded, audio skipped).
    add("sdp-params", &b, &["--params", "sdp"], &|_| {});
    add("inband-params", &b, &["--params", "inband"], &|_| {});
    add(
        "keepalive-errors",
        &plain,
        &["--keepalive-error", "--session-timeout", "4"],
        &|_| {},
    );
    add("bad-fmtp", &plain, &["--bad-audio-fmtp"], &|c| {
        c.audio = "skipped: mpeg4-generic/16000";
    });
    // A camera that ends its stream every 15 s: reconnected each time, a gap each time.
    add("ends", &b, &["--end-after", "15"], &|c| {
        c.reconnects = 2..=3;
        c.min_gaps = 2;
        c.coverage = 0.80;
    });
    record_and_check(&t, &cells);
}

/// A camera that pushes: ffmpeg publishing to rtsp-server-perl (RECORD over UDP), read
/// by Vigil over UDP: H.264 and H.265, both with B-frames.
#[test]
fn pushed_stream_via_rtsp_server_perl() {
    let t = TestDir::new();
    let mut servers = Vec::new();
    let mut cells = Vec::new();
    for (name, m) in [
        ("pushed-h264", Media { bframes: 2, ..H264 }),
        (
            "pushed-h265",
            Media {
                codec: "h265",
                bframes: 2,
                ..H264
            },
        ),
    ] {
        let file = m.make(&t.join(""));
        let s = start_server(
            "perl_push.sh",
            &[file.to_str().unwrap()],
            &t.join(&format!("{name}.log")),
        );
        let mut cell = Cell::new(name, &s.url);
        cell.extra = "transport = \"udp\"".into();
        cell.chromium = m.codec == "h264";
        cells.push(cell);
        servers.push(s);
    }
    record_and_check(&t, &cells);
}

/// Nothing hangs silently: a server that accepts and never answers, and one that answers
/// PLAY and sends nothing. Each camera shows which RTSP step it is stuck in and since
/// when, misses its deadline (`timeout_seconds`), is counted, logged with the step and
/// the server's address, backed off and retried.
#[test]
fn stalled_servers_are_timed_out_and_retried() {
    let t = TestDir::new();
    let file = H264.make(&t.join(""));
    let (_a, describe) = badcam(&t, "silent", &file, &["--stall-before-describe"]);
    let (_b, play) = badcam(&t, "mute", &file, &["--stall-after-play"]);
    let storage = t.join("storage");
    let cfg = t.write(
        "vigil.toml",
        &format!(
            "[storage]\ndir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [[cameras]]\nname = \"silent\"\nurl = \"{}\"\ntimeout_seconds = 2\n\
             [[cameras]]\nname = \"mute\"\nurl = \"{}\"\ntimeout_seconds = 2\n",
            storage.display().to_string(),
            describe.url,
            play.url
        ),
    );
    let d = daemon(&cfg, &t.join("daemon.log"));
    // While stuck, the status names the step.
    let s = wait_for(Duration::from_secs(10), "silent stuck in describe", || {
        let s = d.camera("silent");
        (s["state"] == "connecting" && s["connect_step"] == "describe").then_some(s)
    });
    assert!(s["since"].is_string(), "{s}");
    wait_for(
        Duration::from_secs(10),
        "mute stuck before its first picture",
        || {
            let s = d.camera("mute");
            (s["state"] == "connecting" && s["connect_step"] == "first-picture").then_some(())
        },
    );
    // Then each misses its deadline again and again: counted and retried.
    for (cam, step) in [("silent", "DESCRIBE"), ("mute", "first picture")] {
        let s = wait_for(Duration::from_secs(30), &format!("{cam} retried"), || {
            let s = d.camera(cam);
            (s["timeouts"].as_u64() >= Some(2) && s["reconnects"].as_u64() >= Some(2)).then_some(s)
        });
        let err = s["last_error"].as_str().unwrap_or_default().to_string();
        assert!(
            err.contains(step) || err.contains(&step.replace(' ', "-")),
            "{cam}: {s}"
        );
    }
    let metrics = d
        .get("/metrics")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("vigil_camera_timeouts_total{camera=\"silent\"}"),
        "{metrics}"
    );
    assert!(d.stop(Duration::from_secs(20)).success());
    let log = std::fs::read_to_string(t.join("daemon.log")).unwrap();
    let port = describe
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert!(
        log.lines().any(
            |l| l.contains("no answer to DESCRIBE") && l.contains(&format!("127.0.0.1:{port}"))
        ),
        "the log names the step and the server:\n{log}"
    );
}

/// The misbehaving camera is checked against FFmpeg as a client, so that a failure in
/// its cells is Vigil's: FFmpeg records its plain stream (B-frames, and 4 slices with a
/// marker on each) completely and decodes it cleanly, and sees the fast clock as a fast
/// clock.
#[test]
fn badcam_is_what_ffmpeg_records() {
    let t = TestDir::new();
    let b = Media { bframes: 2, ..H264 }.make(&t.join(""));
    let sliced = Media { slices: 4, ..H264 }.make(&t.join(""));
    // 120 pictures: 8 s at 15 fps; their timestamps span 119 frame intervals of the
    // camera's clock.
    for (name, file, faults, rate) in [
        ("plain", &b, &[][..], 1.0),
        ("slices", &sliced, &["--marker-every-slice"][..], 1.0),
        ("fast", &b, &["--clock-rate", "1.2"][..], 1.2),
    ] {
        let (_s, cell) = badcam(&t, name, file, faults);
        let out = t.join(&format!("ffmpeg-{name}.mp4"));
        let st = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-rtsp_transport",
                "tcp",
                "-i",
                &cell.url,
            ])
            .args(["-frames:v", "120", "-c", "copy"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "{name}: ffmpeg could not record");
        let (frames, _) = ffprobe(&out);
        assert!(
            (118..=120).contains(&frames),
            "{name}: ffmpeg recorded {frames} of 120"
        );
        decodes_cleanly(&out).unwrap();
        let dts = ffprobe_dts(&out);
        let got = dts.last().unwrap() - dts.first().unwrap();
        let want = (frames - 1) as f64 / 15.0 * rate;
        assert!(
            (got - want).abs() < 0.3,
            "{name}: {got} s of timestamps, expected {want}"
        );
    }
}

/// Plays the file named by `VIGIL_PLAY` in Chromium and prints what it decoded (a tool
/// for looking into a failed cell: `VIGIL_PLAY=clip.mp4 cargo test --test conformance
/// -- --ignored --nocapture chromium_plays`).
#[test]
#[ignore]
fn chromium_plays() {
    let t = TestDir::new();
    let src = PathBuf::from(std::env::var("VIGIL_PLAY").expect("VIGIL_PLAY"));
    let file = t.join("file.mp4");
    std::fs::copy(&src, &file).unwrap();
    println!("{:?}", browser::play(&t, &file, 10.0, 8.0));
}

/// Hostile servers beside a good camera, in one daemon: garbage instead of RTP after
/// PLAY, interleaved frames of 64 KiB of random bytes, RTP with random payloads, a
/// random SDP, a DESCRIBE claiming 4 GB and trickling bytes, and answers whose headers
/// never end. The daemon does not crash or grow without bound, each hostile camera is
/// refused or timed out and retried (the fuzzed one records what it can and counts the
/// damage), and the good camera is recorded without a gap.
#[test]
fn hostile_servers_never_harm_the_daemon_or_a_good_camera() {
    let _one_at_a_time = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestDir::new();
    let file = H264.make(&t.join(""));
    let (_good, good) = badcam(&t, "good", &file, &[]);
    let modes = [
        "garbage-after-play",
        "huge-frames",
        "fuzz-rtp",
        "bad-sdp",
        "huge-content-length",
        "endless-headers",
    ];
    let mut servers = Vec::new();
    let mut cfg = format!(
        "[storage]\ndir = {:?}\nsegment_seconds = 4\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [[cameras]]\nname = \"good\"\nurl = \"{}\"\n",
        t.join("storage").display().to_string(),
        good.url
    );
    for m in modes {
        let (s, c) = badcam(&t, m, &file, &["--hostile", m, "--seed", "7"]);
        cfg += &format!(
            "[[cameras]]\nname = \"{m}\"\nurl = \"{}\"\ntimeout_seconds = 2\n",
            c.url
        );
        servers.push(s);
    }
    let cfg = t.write("vigil.toml", &cfg);
    let mut d = daemon(&cfg, &t.join("daemon.log"));
    d.wait_streaming("good");
    let started = vigil::base::time::now_us();
    let mut peak_rss = 0u64;
    for _ in 0..25 {
        std::thread::sleep(Duration::from_secs(1));
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.proc.pid())).unwrap();
        let rss: u64 = (status.lines())
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        peak_rss = peak_rss.max(rss * 1024);
    }
    let ended = vigil::base::time::now_us();
    assert!(d.proc.is_running(), "the daemon died");
    // Seven sessions, one decoder at most each: far below this unless something buffers
    // what a hostile server sends without bound.
    assert!(peak_rss < 400 << 20, "RSS reached {} MiB", peak_rss >> 20);
    for m in modes {
        let s = d.camera(m);
        if m == "fuzz-rtp" {
            let damage = s["packet_errors"].as_u64().unwrap_or(0)
                + s["dropped_pictures"].as_u64().unwrap_or(0);
            assert!(damage > 0, "{m}: no damage counted: {s}");
        } else {
            assert_ne!(s["state"], "streaming", "{m}: {s}");
            assert!(
                s["reconnects"].as_u64().unwrap_or(0) >= 1,
                "{m}: never retried: {s}"
            );
            assert!(
                s["last_error"].as_str().is_some_and(|e| !e.is_empty()),
                "{m}: no error shown: {s}"
            );
        }
    }
    // The good camera: one run, no gap, every frame.
    let g = d.camera("good");
    assert_eq!(g["reconnects"].as_u64(), Some(0), "{g}");
    let r = d.get_json(&format!(
        "/api/recordings?camera=good&start={}&end={}",
        vigil::base::time::rfc3339(started),
        vigil::base::time::rfc3339(ended - 2_000_000)
    ));
    assert!(
        r["gaps"].as_array().unwrap().is_empty(),
        "the good camera has gaps: {r}"
    );
    assert!(d.stop(Duration::from_secs(20)).success());
    let log = std::fs::read_to_string(t.join("daemon.log")).unwrap();
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
    let storage = t.join("storage");
    let segs: Vec<_> = indexed_segments(&storage)
        .into_iter()
        .filter(|s| s.file.starts_with("good/"))
        .collect();
    let frames: u64 = segs.iter().map(|s| s.frames as u64).sum();
    // 25 s after it streamed, less up to a second: recording starts at the first
    // keyframe after the first picture, and the stop cuts the last moment (the no-gap
    // check above is the one about losing frames).
    assert!(frames >= 24 * 15, "good camera: {frames} frames in 25 s");
    assert_segments_play(&storage, &segs);
}
