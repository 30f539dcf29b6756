//! Checks of recorded media with ffprobe (an independent demuxer): frame counts and
//! durations, per-packet rows, decode times, and agreement with the index.

use std::path::Path;
use std::process::Command;

/// Frames and duration (s) of a media file as ffprobe counts them.
pub fn ffprobe(path: &Path) -> (u64, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (apt install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = v["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let dur = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    (frames, dur)
}

/// Rows of numbers FFmpeg shows for `stream` (`v:0`, `a:0`) of a file: `entries` as in
/// `ffprobe -show_entries` (`packet=dts_time`, `frame=pts`, ...), one row per packet or
/// frame; rows with a missing value are left out.
pub fn ffprobe_rows(path: &Path, stream: &str, entries: &str) -> Vec<Vec<f64>> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            entries,
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.trim()
                .trim_end_matches(',')
                .split(',')
                .map(|v| v.parse().ok())
                .collect()
        })
        .collect()
}

/// Decode times (s) of the video stream's packets, as FFmpeg reads them.
pub fn ffprobe_dts(path: &Path) -> Vec<f64> {
    ffprobe_rows(path, "v:0", "packet=dts_time")
        .into_iter()
        .map(|r| r[0])
        .collect()
}

/// Checks a segment file against its index record with FFmpeg: the frame count FFmpeg
/// decodes, and the span of its decode times, which must equal the indexed duration less
/// the last sample's (that one FFmpeg only guesses: fragmented MP4 has no `stts`, so
/// FFmpeg's per-packet durations come from the frame rate).
pub fn ffprobe_matches_index(path: &Path, rec: &vigil::index::SegmentRecord) -> Result<(), String> {
    let (frames, _) = ffprobe(path);
    if frames != rec.frames as u64 {
        return Err(format!(
            "{}: ffprobe {frames} frames, index {}",
            rec.file, rec.frames
        ));
    }
    let dts = ffprobe_dts(path);
    let span = dts.last().unwrap_or(&0.0) - dts.first().unwrap_or(&0.0);
    let scan = vigil::record::fmp4::scan(&mut std::fs::File::open(path).unwrap()).unwrap();
    let last = scan
        .fragments
        .last()
        .and_then(|f| f.samples.last())
        .map_or(0, |s| s.duration);
    let want = (rec.duration_90k - last as u64) as f64 / 90_000.0;
    if (span - want).abs() > 0.002 {
        return Err(format!(
            "{}: ffprobe decode times span {span} s, index {want} s (+ last sample)",
            rec.file
        ));
    }
    Ok(())
}

/// Number of video packets in a file (no decoding: corrupt frames count too).
pub fn ffprobe_packets(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

/// Checks that every indexed segment plays in ffprobe with the indexed frame count and
/// duration (to the millisecond).
pub fn assert_segments_play(storage: &Path, segs: &[vigil::index::SegmentRecord]) {
    for s in segs {
        let path = storage.join(&s.file);
        if let Err(e) = ffprobe_matches_index(&path, s) {
            panic!("{e}");
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            s.bytes,
            "{}: file length vs index",
            s.file
        );
    }
}
