//! `[motion]` (defaults for every camera) and `[cameras.motion]` (one camera's
//! overrides): how frames are sampled for analysis, and the detector's settings
//! ([`vigil_motion::DetectorConfig`]).

use serde::Deserialize;
use toml::Spanned;
use vigil_motion::DetectorConfig;

use super::{ConfigError, Locator, fraction};

/// `[motion]` (global defaults) and `[cameras.motion]` (per camera); every key optional.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMotion {
    enabled: Option<bool>,
    width: Option<Spanned<i64>>,
    fps: Option<Spanned<i64>>,
    decode: Option<crate::media::DecodeMode>,
    threshold: Option<Spanned<i64>>,
    background_shift: Option<Spanned<i64>>,
    moving_background_shift: Option<Spanned<i64>>,
    min_area: Option<Spanned<f64>>,
    zone_min_fraction: Option<Spanned<f64>>,
    lighting_fraction: Option<Spanned<f64>>,
    light_correlation: Option<Spanned<f64>>,
    lighting_quiet_frames: Option<Spanned<i64>>,
    calibration_frames: Option<Spanned<i64>>,
    min_frames: Option<Spanned<i64>>,
    post_roll: Option<Spanned<f64>>,
    max_event_seconds: Option<Spanned<f64>>,
    pre_roll: Option<Spanned<f64>>,
}

/// Motion analysis of one camera (`[motion]` defaults, `[cameras.motion]` per camera): how
/// frames are sampled for the detector, and the detector's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionConfig {
    pub enabled: bool,
    /// Analysis width in pixels (height keeps the aspect ratio).
    pub width: u32,
    /// Frames analysed per second.
    pub fps: u32,
    pub decode: crate::media::DecodeMode,
    /// Seconds of video kept before an event's start for its clip.
    pub pre_roll: f64,
    /// Thresholds, noise filter and event timing.
    pub detector: DetectorConfig,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            enabled: true,
            width: 640,
            fps: 5,
            decode: crate::media::DecodeMode::Full,
            pre_roll: 3.0,
            detector: DetectorConfig::default(),
        }
    }
}

/// Merges `[motion]` defaults and a camera's `[cameras.motion]` over the built-in
/// defaults, validating each value where it was written. Errors of the global section are
/// reported only when `cam` is None.
pub(super) fn validate(
    global: &RawMotion,
    cam: Option<&RawMotion>,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> MotionConfig {
    let mut m = MotionConfig::default();
    let mut local = Vec::new();
    let sections: Vec<(&RawMotion, bool)> = match cam {
        None => vec![(global, true)],
        Some(c) => vec![(global, false), (c, true)],
    };
    for (r, report) in sections {
        let errs: &mut Vec<ConfigError> = if report { &mut *errs } else { &mut local };
        let int =
            |v: &Option<Spanned<i64>>, lo: i64, hi: i64, key: &str, errs: &mut Vec<ConfigError>| {
                let v = v.as_ref()?;
                let x = *v.get_ref();
                if (lo..=hi).contains(&x) {
                    Some(x)
                } else {
                    errs.push(loc.error(
                        v.span(),
                        format!("motion.{key} must be {lo}..={hi}, not {x}"),
                    ));
                    None
                }
            };
        let frac = |v: &Option<Spanned<f64>>, key: &str, errs: &mut Vec<ConfigError>| {
            fraction(v, loc, errs, &format!("motion.{key}"))
        };
        if let Some(e) = r.enabled {
            m.enabled = e;
        }
        if let Some(d) = r.decode {
            m.decode = d;
        }
        if let Some(x) = int(&r.width, 64, 3840, "width", errs) {
            if x % 2 == 0 {
                m.width = x as u32;
            } else if let Some(v) = &r.width {
                errs.push(loc.error(v.span(), "motion.width must be even".into()));
            }
        }
        if let Some(x) = int(&r.fps, 1, 60, "fps", errs) {
            m.fps = x as u32;
        }
        if let Some(x) = int(&r.threshold, 1, 254, "threshold", errs) {
            m.detector.threshold = x as u8;
        }
        if let Some(x) = int(&r.background_shift, 1, 12, "background_shift", errs) {
            m.detector.background_shift = x as u8;
        }
        if let Some(x) = int(
            &r.moving_background_shift,
            1,
            12,
            "moving_background_shift",
            errs,
        ) {
            m.detector.moving_background_shift = x as u8;
        }
        if let Some(x) = int(
            &r.lighting_quiet_frames,
            0,
            100,
            "lighting_quiet_frames",
            errs,
        ) {
            m.detector.lighting_quiet_frames = x as u32;
        }
        if let Some(x) = int(&r.calibration_frames, 0, 1000, "calibration_frames", errs) {
            m.detector.calibration_frames = x as u32;
        }
        if let Some(x) = int(&r.min_frames, 1, 100, "min_frames", errs) {
            m.detector.min_frames = x as u32;
        }
        if let Some(x) = frac(&r.min_area, "min_area", errs) {
            m.detector.min_area = x;
        }
        if let Some(x) = frac(&r.zone_min_fraction, "zone_min_fraction", errs) {
            m.detector.zone_min_fraction = x;
        }
        if let Some(x) = frac(&r.lighting_fraction, "lighting_fraction", errs) {
            m.detector.lighting_fraction = x;
        }
        if let Some(v) = &r.light_correlation {
            let x = *v.get_ref();
            if (0.5..=2.0).contains(&x) {
                m.detector.light_correlation = x;
            } else {
                errs.push(loc.error(
                    v.span(),
                    format!("motion.light_correlation must be 0.5..=2 (above 1: off), not {x}"),
                ));
            }
        }
        if let Some(v) = &r.max_event_seconds {
            let x = *v.get_ref();
            if (10.0..=3600.0).contains(&x) {
                m.detector.max_event_seconds = x;
            } else {
                errs.push(loc.error(
                    v.span(),
                    format!("motion.max_event_seconds must be 10..=3600, not {x}"),
                ));
            }
        }
        for (v, key, dst) in [
            (&r.post_roll, "post_roll", &mut m.detector.post_roll),
            (&r.pre_roll, "pre_roll", &mut m.pre_roll),
        ] {
            if let Some(v) = v {
                let x = *v.get_ref();
                if (0.0..=600.0).contains(&x) {
                    *dst = x;
                } else {
                    errs.push(loc.error(
                        v.span(),
                        format!("motion.{key} must be 0..=600 seconds, not {x}"),
                    ));
                }
            }
        }
    }
    m
}
