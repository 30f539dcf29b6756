//! A still picture of a camera's recording at an instant, for the console's search
//! results (`GET /api/cameras/{name}/frame.jpg?t=`): the clip from the keyframe at or
//! before `t` to just after `t`, planned as for an export, written to a temporary file
//! and decoded with GStreamer (`crate::decode`); the picture is the last one presented at
//! or before `t`, the picture on screen at `t`.
//!
//! The clip starts at the keyframe itself rather than at `t` with an edit list hiding
//! the pictures before: GStreamer's qtdemux (1.22) sometimes presents nothing of a
//! one-second clip whose edit starts between two samples (FFmpeg and Chromium play it).

use std::sync::atomic::{AtomicU64, Ordering};

use super::plan;
use crate::decode::{DecodeMode, DecodeOptions, decode_file};
use crate::events::QueryError;
use crate::index::Index;
use crate::storage::Layout;

/// The still at `t_us` (UTC µs) of camera `camera_id`, as a JPEG at most `max_width`
/// pixels wide. Errors: no recording at `t_us` (404), reading or decoding it (500).
pub fn still_jpeg(
    index: &Index,
    storage: &Layout,
    camera_id: u32,
    t_us: i64,
    max_width: u32,
) -> Result<Vec<u8>, QueryError> {
    let probe = plan(index, storage, camera_id, t_us, t_us + 1_000_000)?;
    if probe.start_us > t_us || probe.frames == 0 {
        return Err(QueryError::NotFound("no recording at that instant".into()));
    }
    let key = probe.decode_start_us;
    drop(probe);
    let p = plan(index, storage, camera_id, key, t_us + 1_000)?;
    // Created exclusively (a planted file or symlink makes it fail, never followed),
    // readable by the daemon's user only, under a name nobody can guess.
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "vigil-still-{}-{}-{:016x}.mp4",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        fastrand::u64(..)
    ));
    struct Remove<'a>(&'a std::path::Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _remove = Remove(&path);
    let io = |e: std::io::Error| QueryError::Io {
        path: path.clone(),
        err: e,
    };
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true).mode(0o600);
        o.open(&path).map_err(io)?
    };
    let mut file = std::io::BufWriter::new(file);
    p.write_range(0, p.len, &mut file).map_err(io)?;
    std::io::Write::flush(&mut file).map_err(io)?;
    drop(file);
    let opts = DecodeOptions {
        width: max_width,
        fps: None,
        mode: DecodeMode::Full,
        threads: 1,
    };
    // The last picture at or before t (media time 0 is the keyframe).
    let target = gstreamer::ClockTime::from_useconds((t_us - key).max(0) as u64);
    let mut picture = None;
    decode_file(&path, &opts, |frame| match frame.pts {
        Some(pts) if pts > target && picture.is_some() => false,
        _ => {
            picture = Some(frame);
            true
        }
    })
    .map_err(|e| decode_error(&e))?;
    let img = (picture.ok_or_else(|| QueryError::NotFound("no picture at that instant".into()))?)
        .rgb(max_width)
        .map_err(|e| decode_error(&e))?;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&img)
        .map_err(|e| decode_error(&anyhow::anyhow!(e)))?;
    Ok(out)
}

fn decode_error(e: &anyhow::Error) -> QueryError {
    QueryError::Io {
        path: "the recording".into(),
        err: std::io::Error::other(format!("decoding a still: {e:#}")),
    }
}
