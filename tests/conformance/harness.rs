//! The conformance harness: test media generated with ffmpeg, the foreign servers
//! (started here, stopped when their stdin closes), a "cell" (a camera of a server with
//! what it must show), and the checks every cell passes: seconds recorded, no reconnect
//! loop, ffprobe agrees with the index, FFmpeg decodes cleanly, audio, order.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::browser;
use super::common::*;

/// How long each camera records.
pub(crate) const RECORD: Duration = Duration::from_secs(40);

/// A test video file: codec, size, B-frames, slices per picture, AAC audio.
#[derive(Clone, Copy)]
pub(crate) struct Media {
    pub(crate) codec: &'static str,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) bframes: u32,
    pub(crate) slices: u32,
    pub(crate) audio: bool,
}

pub(crate) const H264: Media = Media {
    codec: "h264",
    width: 640,
    height: 360,
    bframes: 0,
    slices: 1,
    audio: false,
};

impl Media {
    pub(crate) fn name(&self) -> String {
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
    pub(crate) fn make(&self, dir: &Path) -> PathBuf {
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
pub(crate) struct Server {
    pub(crate) child: std::process::Child,
    pub(crate) url: String,
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
pub(crate) fn start_server(program: &str, args: &[&str], log: &Path) -> Server {
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
pub(crate) struct Cell {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) extra: String,
    /// Timestamp jumps the camera's faults must cause (inclusive range).
    pub(crate) jumps: std::ops::RangeInclusive<u64>,
    /// Reconnects allowed (none: no reconnect loop).
    pub(crate) reconnects: std::ops::RangeInclusive<u64>,
    /// Whether Chromium can play it (H.264).
    pub(crate) chromium: bool,
    /// The least fraction of its seconds that must be recorded.
    pub(crate) coverage: f64,
    /// Motion analysis on (off by default: it only costs CPU where decoding is not what
    /// the cell checks).
    pub(crate) motion: bool,
    /// Recording gaps (segments more than 0.5 s apart) there must be at least.
    pub(crate) min_gaps: usize,
    /// The camera clock rate the status must show (±5%), where the camera's is off.
    pub(crate) clock_rate: Option<f64>,
    /// The camera's audio status that is expected ("aac ..." prefix, "off", "none",
    /// "skipped: ..." prefix); an "aac" cell must have audio in every segment and clip.
    pub(crate) audio: &'static str,
}

impl Cell {
    pub(crate) fn new(name: &str, url: &str) -> Cell {
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
pub(crate) static RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Records `cells` for [`RECORD`] with one daemon (10 s segments), then checks each.
pub(crate) fn record_and_check(t: &TestDir, cells: &[Cell]) {
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
    let d = daemon(&cfg, &t.join("daemon.log"));
    let started = vigil::base::time::now_us();
    std::thread::sleep(RECORD);
    // A 30 s clip from the middle of the run crosses at least two segment boundaries.
    let (c0, c1) = (started + 6_000_000, started + 36_000_000);
    let mut clips = Vec::new();
    for c in cells {
        let url = format!(
            "/api/clips/{}.mp4?start={}&end={}",
            c.name,
            vigil::base::time::rfc3339(c0),
            vigil::base::time::rfc3339(c1)
        );
        let path = t.join(&format!("{}-clip.mp4", c.name));
        match d.get(&url).call() {
            Ok(mut r) if r.status() == 200 => {
                let body = r.body_mut().with_config().limit(1 << 30).read_to_vec();
                std::fs::write(&path, body.unwrap()).unwrap()
            }
            Ok(r) => panic!("{}: clip: {}", c.name, r.status()),
            Err(e) => panic!("{}: clip: {e}", c.name),
        }
        clips.push(path);
    }
    let status: Vec<serde_json::Value> = cells.iter().map(|c| d.camera(&c.name)).collect();
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
pub(crate) fn check_cell(
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
pub(crate) fn check_audio(c: &Cell, path: &Path, video_s: f64) -> Result<(), String> {
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
pub(crate) fn presented_in_order(path: &Path) -> Result<(), String> {
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
pub(crate) fn decodes_cleanly(path: &Path) -> Result<(), String> {
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
