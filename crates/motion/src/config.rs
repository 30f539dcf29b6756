//! What a detector is configured with: its zones, masks and thresholds. Validation of the
//! values as written in a file belongs to the application (`vigil::config`); these types
//! only say what each value means.

/// A polygon in normalised image coordinates (x, y in 0..=1, origin top left).
pub type Polygon = Vec<[f64; 2]>;

/// A named region of the image whose motion is reported on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub polygon: Polygon,
    /// Motion in this zone counts only if it covers at least this fraction of the image.
    /// Below the camera's [`DetectorConfig::min_area`] it also makes the zone more
    /// sensitive: blobs down to this size whose centre lies in the zone are kept (a
    /// distant person), while the rest of the image keeps the camera's minimum.
    pub min_area: Option<f64>,
    /// ... and at least this fraction of the zone (overrides
    /// [`DetectorConfig::zone_min_fraction`]).
    pub min_fraction: Option<f64>,
}

/// The detector's thresholds and timings (`[motion]` and `[cameras.motion]` in Vigil's
/// configuration file, less the keys that say how frames are sampled).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// A pixel changed if it differs from the background by more than this (grey levels).
    pub threshold: u8,
    /// Background learning rate for still pixels: 2^-shift per frame.
    pub background_shift: u8,
    /// ... and for changing pixels (slower, so moving objects are not absorbed).
    pub moving_background_shift: u8,
    /// Smallest moving blob, as a fraction of the image; smaller ones are noise.
    pub min_area: f64,
    /// A zone has motion if moving blobs cover at least this fraction of it.
    pub zone_min_fraction: f64,
    /// More than this fraction of the image changing at once is a lighting change.
    pub lighting_fraction: f64,
    /// Frames ignored after a lighting change while exposure settles.
    pub lighting_quiet_frames: u32,
    /// A kept blob whose changed pixels correlate with the background at least this much
    /// (normalised cross-correlation) is a change of light (a shadow, a beam), not an
    /// object; above 1 (e.g. 2) the test is off.
    pub light_correlation: f64,
    /// Frames that only train the background after start or a resolution change.
    pub calibration_frames: u32,
    /// Consecutive motion frames that open an event.
    pub min_frames: u32,
    /// Seconds without motion that close an event.
    pub post_roll: f64,
    /// An event still going after this long is closed and a new one opens, so that
    /// continuous motion (a busy street) still yields searchable events and clips.
    pub max_event_seconds: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            threshold: 25,
            background_shift: 4,
            moving_background_shift: 6,
            // 0.2% of the image: about 460 pixels at 640x360. A person crossing a typical
            // scene covers several times that; a small bird a fraction of it.
            min_area: 0.002,
            zone_min_fraction: 0.0,
            lighting_fraction: 0.4,
            lighting_quiet_frames: 2,
            light_correlation: 0.9,
            calibration_frames: 5,
            min_frames: 2,
            post_roll: 5.0,
            max_event_seconds: 120.0,
        }
    }
}
