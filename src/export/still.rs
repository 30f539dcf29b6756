//! A still picture of a camera's recording at an instant, for the console's search
//! results (`GET /api/cameras/{name}/frame.jpg?t=`): the clip of `[t, t + 1 s)` planned
//! as for an export (from the keyframe at or before `t`, with an edit list starting at
//! `t`), written to a temporary file and decoded with GStreamer (`crate::decode`); the
//! picture is the first one the decoder presents at or after the edit's start, the
//! picture on screen at `t`.

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
    let p = plan(index, storage, camera_id, t_us, t_us + 1_000_000)?;
    if p.start_us > t_us + 1_000_000 || p.frames == 0 {
        return Err(QueryError::NotFound("no recording at that instant".into()));
    }
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "vigil-still-{}-{}.mp4",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
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
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    p.write_range(0, p.len, &mut file).map_err(io)?;
    std::io::Write::flush(&mut file).map_err(io)?;
    drop(file);
    let opts = DecodeOptions {
        width: max_width,
        fps: None,
        mode: DecodeMode::Full,
        threads: 1,
    };
    let mut picture = None;
    decode_file(&path, &opts, |frame| {
        picture = Some(frame.rgb(max_width));
        false
    })
    .map_err(|e| decode_error(&e))?;
    let img = (picture.ok_or_else(|| QueryError::NotFound("no picture at that instant".into()))?)
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
