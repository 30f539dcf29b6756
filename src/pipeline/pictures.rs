//! The pictures analysis leaves behind: the live snapshot of each camera (every
//! [`SNAPSHOT_PERIOD`], at most [`SNAPSHOT_WIDTH`] wide, for `/api/cameras/{name}/snapshot.jpg`)
//! and each event's thumbnail (its peak frame, [`THUMBNAIL_WIDTH`] wide), as JPEG.

use std::time::{Duration, Instant};

use crate::decode::LumaFrame;

/// Width of event thumbnails (pixels; never upscaled).
pub const THUMBNAIL_WIDTH: u32 = 320;
/// Width (at most) and period of the live snapshot (`/api/cameras/{name}/snapshot.jpg`).
pub const SNAPSHOT_WIDTH: u32 = 640;
/// How often the live snapshot is taken (of the frame being analysed then).
pub const SNAPSHOT_PERIOD: Duration = Duration::from_secs(2);

/// One camera's snapshot clock and the open event's peak frame.
#[derive(Default)]
pub struct Pictures {
    /// When the last snapshot was taken (None: not yet in this decoder run).
    snapshot_at: Option<Instant>,
    /// The open event's peak frame so far, for its thumbnail.
    peak: Option<image::RgbImage>,
}

impl Pictures {
    /// A live snapshot of `frame` as JPEG, if one is due.
    pub fn snapshot(&mut self, frame: &LumaFrame) -> Option<Result<Vec<u8>, String>> {
        if self
            .snapshot_at
            .is_some_and(|t| t.elapsed() < SNAPSHOT_PERIOD)
        {
            return None;
        }
        self.snapshot_at = Some(Instant::now());
        Some(
            frame
                .rgb(SNAPSHOT_WIDTH)
                .map_err(|e| format!("{e:#}"))
                .and_then(|img| jpeg(&img).map_err(|e| e.to_string())),
        )
    }

    /// A new decoder run: the next frame gives a snapshot at once.
    pub fn new_run(&mut self) {
        self.snapshot_at = None;
    }

    /// `frame` is the open event's peak so far: keep it for the thumbnail.
    pub fn peak(&mut self, frame: &LumaFrame) -> Result<(), String> {
        self.peak = Some(frame.rgb(THUMBNAIL_WIDTH).map_err(|e| format!("{e:#}"))?);
        Ok(())
    }

    /// The peak frame so far as JPEG (a provisional thumbnail), keeping it.
    pub fn peak_jpeg(&self) -> Option<Vec<u8>> {
        self.peak.as_ref().and_then(|img| jpeg(img).ok())
    }

    /// The event closed: its thumbnail, the peak frame as JPEG (taken).
    pub fn take_thumbnail(&mut self) -> Option<Result<Vec<u8>, String>> {
        self.peak
            .take()
            .map(|img| jpeg(&img).map_err(|e| e.to_string()))
    }
}

/// Encodes a picture as JPEG (quality 80).
pub fn jpeg(img: &image::RgbImage) -> image::ImageResult<Vec<u8>> {
    let mut out = Vec::with_capacity(16 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(img)?;
    Ok(out)
}
