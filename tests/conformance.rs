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

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// How long each camera records.
const RECORD: Duration = Duration::from_secs(40);

/// A test video file: codec, size, B-frames, slices per picture, AAC audio.
#[derive(Clone, Copy)]
struct Media {
    codec: &'static str,
    width: u32,
    height: u32,
    bframes: u32,
    slices: u32,
    audio: bool,
}

const H264: Media = Media {
    codec: "h264",
    width: 640,
    height: 360,
    bframes: 0,
    slices: 1,
    audio: false,
};

impl Media {
    fn name(&self) -> String {
        format!(
            "{}-{}x{}-b{}-s{}{}",
            self.codec,
            self.width,
            self.height,
            self.bframes,
            self.slices,
            if self.audio { "-aac" } else { "" }
        )
    }

    /// Encodes 20 s of a moving test pattern (15 fps, a keyframe every 2 s) into `dir`.
    fn make(&self, dir: &Path) -> PathBuf {
        let out = dir.join(format!("{}.mp4", self.name()));
        if out.exists() {
            return out;
        }
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "testsrc2=size={}x{}:rate=15",
                self.width, self.height
            ));
        if self.audio {
            cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
        }
        cmd.args(["-t", "20", "-pix_fmt", "yuv420p", "-g", "30"]);
        match self.codec {
            "h264" => {
                cmd.args(["-c:v", "libx264", "-preset", "veryfast", "-bf"])
                    .arg(self.bframes.to_string())
                    .arg("-x264-params")
                    .arg(format!("slices={}", self.slices));
            }
            _ => {
                cmd.args(["-c:v", "libx265", "-preset", "veryfast", "-x265-params"])
                    .arg(format!(
                        "bframes={}:keyint=30:min-keyint=30:log-level=error",
                        self.bframes
                    ))
                    .args(["-tag:v", "hvc1"]);
            }
        }
        if self.audio {
            cmd.args(["-c:a", "aac", "-b:a", "64k"]);
        }
        let st = cmd.arg(&out).status().expect("ffmpeg (apt install ffmpeg)");
        assert!(st.success(), "ffmpeg could not make {}", self.name());
        out
    }
}

/// A server process started with a pipe on stdin (closing it stops the server).
struct Server {
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program args` and waits for the line that tells where it serves: `URL <url>`,
/// or `PORT <n>` (then the URL is `rtsp://127.0.0.1:<n>/stream`).
fn start_server(program: &str, args: &[&str], log: &Path) -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers")
        .join(program);
    // Debian's python3 (PyGObject is installed for it alone), bash for the others.
    let interpreter = if program.ends_with(".py") {
        "/usr/bin/python3"
    } else {
        "bash"
    };
    let mut child = Command::new(interpreter)
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let url = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.starts_with("URL ") => break l[4..].trim().to_string(),
            Ok(l) if l.starts_with("PORT ") => {
                break format!("rtsp://127.0.0.1:{}/stream", l[5..].trim());
            }
            Ok(_) => {}
            Err(_) => panic!(
                "{program} did not start; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    };
    Server { child, url }
}

/// One camera of a run: its name, URL, extra config lines and what is expected of it.
struct Cell {
    name: String,
    url: String,
    extra: String,
    /// Timestamp jumps the camera's faults must cause (inclusive range).
    jumps: std::ops::RangeInclusive<u64>,
    /// Reconnects allowed (none: no reconnect loop).
    reconnects: std::ops::RangeInclusive<u64>,
    /// Whether Chromium can play it (H.264).
    chromium: bool,
    /// The least fraction of its seconds that must be recorded.
    coverage: f64,
    /// Motion analysis on (off by default: it only costs CPU where decoding is not what
    /// the cell checks).
    motion: bool,
    /// Recording gaps (segments more than 0.5 s apart) there must be at least.
    min_gaps: usize,
    /// The camera clock rate the status must show (±5%), where the camera's is off.
    clock_rate: Option<f64>,
    /// The camera's audio status that is expected ("aac ..." prefix, "off", "none",
    /// "skipped: ..." prefix); an "aac" cell must have audio in every segment and clip.
    audio: &'static str,
}

impl Cell {
    fn new(name: &str, url: &str) -> Cell {
        Cell {
            name: name.into(),
            url: url.into(),
            extra: String::new(),
            jumps: 0..=0,
            reconnects: 0..=0,
            chromium: true,
            coverage: 0.97,
            motion: false,
            min_gaps: 0,
            clock_rate: None,
            audio: "none",
        }
    }
}

/// One run records at a time: on 2 cores, two runs of many cameras plus their checks
/// (FFmpeg decoding every segment, Chromium) starve the servers and each other.
static RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Records `cells` for [`RECORD`] with one daemon (10 s segments), then checks each.
fn record_and_check(t: &TestDir, cells: &[Cell]) {
    let _one_at_a_time = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let storage = t.join("storage");
    let mut cfg = format!(
        "[storage]\ndir = {:?}\nsegment_seconds = 10\n[server]\nlisten = \"127.0.0.1:0\"\n",
        storage.display().to_string()
    );
    for c in cells {
        cfg += &format!(
            "\n[[cameras]]\nname = \"{}\"\nurl = \"{}\"\n{}\n[cameras.motion]\nenabled = {}\n",
            c.name, c.url, c.extra, c.motion
        );
    }
    let cfg = t.write("vigil.toml", &cfg);
    let (d, base) = daemon(&cfg, &t.join("daemon.log"));
    let started = vigil::base::time::now_us();
    std::thread::sleep(RECORD);
    // A 30 s clip from the middle of the run crosses at least two segment boundaries.
    let (c0, c1) = (started + 6_000_000, started + 36_000_000);
    let mut clips = Vec::new();
    for c in cells {
        let url = format!(
            "{base}/api/clips/{}.mp4?start={}&end={}",
            c.name,
            vigil::base::time::rfc3339(c0),
            vigil::base::time::rfc3339(c1)
        );
        let path = t.join(&format!("{}-clip.mp4", c.name));
        match get(&url).call() {
            Ok(mut r) => {
                let body = r.body_mut().with_config().limit(1 << 30).read_to_vec();
                std::fs::write(&path, body.unwrap()).unwrap()
            }
            Err(e) => panic!("{}: clip: {e}", c.name),
        }
        clips.push(path);
    }
    let status: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| camera_status(&base, &c.name))
        .collect();
    let stopped = vigil::base::time::now_us();
    assert!(d.stop(Duration::from_secs(30)).success());
    let ended = vigil::base::time::now_us();
    let all = indexed_segments(&storage);
    let ids: Vec<u32> = {
        let ix = vigil::index::Index::open(&vigil::storage::Layout::new(&storage).index()).unwrap();
        let cams = ix.cameras().unwrap();
        cells
            .iter()
            .map(|c| {
                cams.iter()
                    .find(|(n, _)| *n == c.name)
                    .map_or(u32::MAX, |x| x.1)
            })
            .collect()
    };
    let mut failures = Vec::new();
    for ((c, s), (id, clip)) in cells.iter().zip(&status).zip(ids.iter().zip(&clips)) {
        let segs: Vec<_> = all.iter().filter(|r| r.camera_id == *id).cloned().collect();
        if let Err(e) = check_cell(t, c, s, &segs, &storage, clip, started, (stopped, ended)) {
            // The daemon's log lines about the camera say what happened (CI keeps no
            // test directories).
            let log = std::fs::read_to_string(t.join("daemon.log")).unwrap_or_default();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&format!("camera={}", c.name)))
                .collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            failures.push(format!(
                "{}: {e}\nstatus: {s}\nsegments: {:?}\nlog:\n{tail}",
                c.name,
                segs.iter()
                    .map(|r| (
                        r.start_us - started,
                        r.end_us - started,
                        r.end_reason.as_str()
                    ))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(daemon log: {})",
        failures.join("\n\n"),
        t.join("daemon.log").display()
    );
}

#[allow(clippy::too_many_arguments)]
fn check_cell(
    t: &TestDir,
    c: &Cell,
    status: &serde_json::Value,
    segs: &[vigil::index::SegmentRecord],
    storage: &Path,
    clip: &Path,
    started: i64,
    (stopped, ended): (i64, i64),
) -> Result<(), String> {
    if segs.is_empty() {
        return Err("nothing recorded".into());
    }
    let reconnects = status["reconnects"].as_u64().unwrap_or(99);
    if !c.reconnects.contains(&reconnects) {
        return Err(format!(
            "{reconnects} reconnects, expected {:?}",
            c.reconnects
        ));
    }
    if c.motion {
        // Decoded live with the right presentation and decode times: analysed at the
        // configured rate, without analysis errors.
        let analysed = status["analysed_frames"].as_u64().unwrap_or(0);
        let errors = status["analysis_errors"].as_u64().unwrap_or(99);
        if analysed < 100 || errors > 0 {
            return Err(format!(
                "motion analysis: {analysed} frames, {errors} errors"
            ));
        }
    }
    let audio = status["audio"].as_str().unwrap_or_default();
    if !audio.starts_with(c.audio) {
        return Err(format!("audio {audio:?}, expected {:?}", c.audio));
    }
    let jumps = status["timestamp_jumps"].as_u64().unwrap_or(99);
    if !c.jumps.contains(&jumps) {
        return Err(format!("{jumps} timestamp jumps, expected {:?}", c.jumps));
    }
    // Never overlapping, in order.
    for w in segs.windows(2) {
        if w[1].start_us < w[0].end_us {
            return Err(format!(
                "{} starts {} µs before {} ends",
                w[1].file,
                w[0].end_us - w[1].start_us,
                w[0].file
            ));
        }
    }
    let gaps = segs
        .windows(2)
        .filter(|w| w[1].start_us - w[0].end_us > 500_000)
        .count();
    if gaps < c.min_gaps {
        return Err(format!(
            "{gaps} recording gaps, expected at least {}",
            c.min_gaps
        ));
    }
    if let Some(want) = c.clock_rate {
        let rate = status["clock_rate"].as_f64().unwrap_or(0.0);
        if (rate / want - 1.0).abs() > 0.05 {
            return Err(format!("clock rate {rate}, expected {want}"));
        }
    }
    // Coverage: from the first picture (allowing 4 s to connect and reach a keyframe)
    // to the stop, in pictures (15 fps; pictures held over dropped ones do not count)
    // and in recorded time, which must not exceed the wall-clock time either (a camera
    // clock running fast must not stretch the recordings).
    let recorded: i64 = segs.iter().map(|s| s.duration_90k as i64 * 100 / 9).sum();
    let frames: u64 = segs.iter().map(|s| s.frames as u64).sum();
    // The camera's seconds: from when it was playing (a slow server's DESCRIBE, SETUP
    // and PLAY are not recording time) plus a GOP to the first keyframe, or at least
    // 4 s after the daemon started.
    let playing = match (reconnects, status["since"].as_str()) {
        (0, Some(since)) => vigil::base::time::parse_rfc3339(since).unwrap_or(started),
        _ => started,
    };
    let window = stopped - (started + 4_000_000).max(playing + 2_500_000);
    let coverage = recorded as f64 / window as f64;
    let frame_coverage = frames as f64 / (window as f64 / 1e6 * 15.0);
    // (The daemon records until it has stopped; its first picture is stamped by the
    // time it was taken, up to a second before it arrived.)
    if coverage.min(frame_coverage) < c.coverage || recorded > ended - started + 1_000_000 {
        return Err(format!(
            "{:.1}% of {:.1} s recorded ({:.1}% of the pictures) in {} segments; \
             playing {:.1} s after the daemon started",
            coverage * 100.0,
            window as f64 / 1e6,
            frame_coverage * 100.0,
            segs.len(),
            (playing - started) as f64 / 1e6
        ));
    }
    // Every segment: ffprobe agrees with the index; FFmpeg decodes it without an error.
    for s in segs {
        let path = storage.join(&s.file);
        ffprobe_matches_index(&path, s)?;
        decodes_cleanly(&path)?;
        presented_in_order(&path)?;
        check_audio(c, &path, s.duration_90k as f64 / 90_000.0)?;
    }
    // The clip: FFmpeg decodes it, its duration is the range's, and Chromium plays it.
    decodes_cleanly(clip)?;
    let (frames, dur) = ffprobe(clip);
    // 15 fps, less what loss dropped (at most what the coverage allows).
    if (dur - 30.0).abs() > 0.5 || (frames as f64) < 450.0 * c.coverage - 15.0 {
        return Err(format!("clip: {frames} frames, {dur} s for 30 s"));
    }
    check_audio(c, clip, dur)?;
    if c.chromium {
        let p = browser::play(t, clip, 10.0, 8.0);
        if p.error.is_some() || p.decoded_frames < 30 || p.reached < 17.0 || p.width == 0 {
            return Err(format!("clip in Chromium: {p:?}"));
        }
        if p.audio != (c.audio == "aac") {
            return Err(format!("clip in Chromium: audio decoded: {}", p.audio));
        }
    }
    Ok(())
}

/// An "aac" cell's file has an audio track presented from the video's start (to 350 ms:
/// audio and video are aligned by their arrival times) to its end (to 250 ms); other
/// cells' files have none.
fn check_audio(c: &Cell, path: &Path, video_s: f64) -> Result<(), String> {
    let packets: Vec<(f64, f64)> = ffprobe_rows(path, "a:0", "packet=pts_time,duration_time")
        .into_iter()
        .filter(|r| r.len() == 2)
        .map(|r| (r[0], r[1]))
        .collect();
    if c.audio != "aac" {
        return match packets.len() {
            0 => Ok(()),
            n => Err(format!(
                "{}: {n} audio packets, expected none",
                path.display()
            )),
        };
    }
    let (Some(first), Some(last)) = (packets.first(), packets.last()) else {
        return Err(format!("{}: no audio", path.display()));
    };
    // Presentation starts at 0 in segments and clips (a clip's edit list gives the
    // packets before its start negative times).
    let start = first.0.max(0.0);
    let end = last.0 + last.1;
    if start > 0.35 || (end - video_s).abs() > 0.25 {
        return Err(format!(
            "{}: audio {start:.3}..{end:.3} s for video of {video_s:.3} s",
            path.display()
        ));
    }
    Ok(())
}

/// The pictures FFmpeg decodes from `path` have strictly increasing presentation times
/// (B-frames' composition offsets put each picture in its place).
fn presented_in_order(path: &Path) -> Result<(), String> {
    let pts: Vec<f64> = ffprobe_rows(path, "v:0", "frame=pts")
        .into_iter()
        .map(|r| r[0])
        .collect();
    match pts.windows(2).position(|w| w[1] <= w[0]) {
        Some(i) => Err(format!(
            "{}: picture {} presented at {} after one at {}",
            path.display(),
            i + 1,
            pts[i + 1],
            pts[i]
        )),
        None => Ok(()),
    }
}

/// FFmpeg decodes `path` without printing a single error. (`-enc_time_base -1` keeps
/// the file's 90 kHz timestamps: by default FFmpeg rescales to 1/frame-rate for its null
/// output, and two pictures less than a nominal frame apart then collide there.)
fn decodes_cleanly(path: &Path) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !err.trim().is_empty() {
        return Err(format!(
            "ffmpeg decoding {}: {}",
            path.display(),
            err.lines().take(5).collect::<Vec<_>>().join(" | ")
        ));
    }
    Ok(())
}

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
    let (d, base) = daemon(&cfg, &t.join("daemon.log"));
    // While stuck, the status names the step.
    let s = wait_for(Duration::from_secs(10), "silent stuck in describe", || {
        let s = camera_status(&base, "silent");
        (s["state"] == "connecting" && s["connect_step"] == "describe").then_some(s)
    });
    assert!(s["since"].is_string(), "{s}");
    wait_for(
        Duration::from_secs(10),
        "mute stuck before its first picture",
        || {
            let s = camera_status(&base, "mute");
            (s["state"] == "connecting" && s["connect_step"] == "first-picture").then_some(())
        },
    );
    // Then each misses its deadline again and again: counted and retried.
    for (cam, step) in [("silent", "DESCRIBE"), ("mute", "first picture")] {
        let s = wait_for(Duration::from_secs(30), &format!("{cam} retried"), || {
            let s = camera_status(&base, cam);
            (s["timeouts"].as_u64() >= Some(2) && s["reconnects"].as_u64() >= Some(2)).then_some(s)
        });
        let err = s["last_error"].as_str().unwrap_or_default().to_string();
        assert!(
            err.contains(step) || err.contains(&step.replace(' ', "-")),
            "{cam}: {s}"
        );
    }
    let metrics = get(&format!("{base}/metrics"))
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
    let (mut d, base) = daemon(&cfg, &t.join("daemon.log"));
    wait_streaming(&base, "good");
    let started = vigil::base::time::now_us();
    let mut peak_rss = 0u64;
    for _ in 0..25 {
        std::thread::sleep(Duration::from_secs(1));
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
        let rss: u64 = (status.lines())
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        peak_rss = peak_rss.max(rss * 1024);
    }
    let ended = vigil::base::time::now_us();
    assert!(d.is_running(), "the daemon died");
    // Seven sessions, one decoder at most each: far below this unless something buffers
    // what a hostile server sends without bound.
    assert!(peak_rss < 400 << 20, "RSS reached {} MiB", peak_rss >> 20);
    for m in modes {
        let s = camera_status(&base, m);
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
    let g = camera_status(&base, "good");
    assert_eq!(g["reconnects"].as_u64(), Some(0), "{g}");
    let r = get_json(&format!(
        "{base}/api/recordings?camera=good&start={}&end={}",
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
