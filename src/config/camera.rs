//! `[[cameras]]`: each camera's RTSP source, credentials, transport, timeouts, zones,
//! masks, motion overrides and arming.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;
use vigil_motion::{Polygon, Zone};

use super::motion::{MotionConfig, RawMotion};
use super::{ConfigError, Locator, alerts::arm, fraction, resolve, valid_name};
use crate::schedule::{Arming, Schedule};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCamera {
    name: Spanned<String>,
    url: Spanned<String>,
    detect_url: Option<Spanned<String>>,
    username: Option<String>,
    password_env: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    transport: Option<Spanned<String>>,
    timeout_seconds: Option<Spanned<f64>>,
    #[serde(default = "default_true")]
    audio: bool,
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default)]
    zones: Vec<Spanned<RawZone>>,
    #[serde(default)]
    masks: Vec<Spanned<RawMask>>,
    #[serde(default)]
    motion: Option<RawMotion>,
    arm: Option<Spanned<String>>,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    name: Spanned<String>,
    polygon: Spanned<Vec<[f64; 2]>>,
    min_area: Option<Spanned<f64>>,
    min_fraction: Option<Spanned<f64>>,
    arm: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMask {
    polygon: Spanned<Vec<[f64; 2]>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    Tcp,
    Udp,
}

/// Where a camera's password comes from. The password itself is read only when
/// connecting and is never stored in a struct that derives `Debug`.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    None,
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct CameraConfig {
    pub name: String,
    pub url: url::Url,
    pub detect_url: Option<url::Url>,
    pub username: Option<String>,
    pub password: PasswordSource,
    pub transport: TransportKind,
    /// Deadline for each RTSP step (connect and DESCRIBE, SETUP, PLAY, the first
    /// picture), and the longest a playing session may go without a picture before it is
    /// dead and reconnected (`timeout_seconds`, default 10 s).
    pub timeout: std::time::Duration,
    /// Record the camera's audio, if it sends AAC (`audio`, default true).
    pub audio: bool,
    pub enabled: bool,
    pub zones: Vec<Zone>,
    pub masks: Vec<Polygon>,
    pub motion: MotionConfig,
    /// When motion on the camera as a whole, and in each zone, raises alerts.
    pub arm: Arming,
}

/// Default [`CameraConfig::timeout`].
pub const DEFAULT_CAMERA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl CameraConfig {
    /// Reads the password from its source. Errors name the source, never the value.
    pub fn read_password(&self) -> anyhow::Result<Option<String>> {
        match &self.password {
            PasswordSource::None => Ok(None),
            PasswordSource::Env(var) => match std::env::var(var) {
                Ok(v) => Ok(Some(v)),
                Err(_) => anyhow::bail!(
                    "camera {}: environment variable {var} (password_env) is not set",
                    self.name
                ),
            },
            PasswordSource::File(p) => match std::fs::read_to_string(p) {
                Ok(v) => Ok(Some(v.trim_end_matches(['\n', '\r']).to_owned())),
                Err(e) => anyhow::bail!(
                    "camera {}: cannot read password_file {}: {e}",
                    self.name,
                    p.display()
                ),
            },
        }
    }
}

/// What the cameras share: the global `[motion]` section, the schedules, and where the file
/// is.
pub(super) struct Shared<'a> {
    pub global_motion: &'a RawMotion,
    pub schedules: &'a [Arc<Schedule>],
    pub base: &'a Path,
}

/// Validates every `[[cameras]]` entry; names must be unique.
pub(super) fn validate_all(
    raw: Vec<Spanned<RawCamera>>,
    shared: &Shared,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> Vec<CameraConfig> {
    let mut cameras: Vec<CameraConfig> = Vec::new();
    for cam in raw {
        let cam = cam.into_inner();
        let name = cam.name.get_ref().clone();
        if !valid_name(&name) {
            errs.push(loc.error(
                cam.name.span(),
                format!("camera name {name:?} must be 1-64 characters of [a-z0-9_-]"),
            ));
        } else if cameras.iter().any(|c| c.name == name) {
            errs.push(loc.error(cam.name.span(), format!("duplicate camera name {name:?}")));
        }
        cameras.push(validate(cam, name, shared, loc, errs));
    }
    cameras
}

fn validate(
    cam: RawCamera,
    name: String,
    shared: &Shared,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> CameraConfig {
    let base = shared.base;
    let url = check_url(&cam.url, loc, errs, "url");
    let detect_url = cam
        .detect_url
        .as_ref()
        .and_then(|u| check_url(u, loc, errs, "detect_url"));
    let password = match (&cam.password_env, &cam.password_file) {
        (Some(_), Some(f)) => {
            errs.push(loc.error(
                f.span(),
                "set either password_env or password_file, not both".into(),
            ));
            PasswordSource::None
        }
        (Some(e), None) => {
            if e.get_ref().is_empty() {
                errs.push(loc.error(e.span(), "password_env is empty".into()));
            }
            PasswordSource::Env(e.get_ref().clone())
        }
        (None, Some(f)) => PasswordSource::File(resolve(base, f.get_ref())),
        (None, None) => PasswordSource::None,
    };
    let transport = match cam
        .transport
        .as_ref()
        .map(|t| (t.get_ref().as_str(), t.span()))
    {
        None | Some(("tcp", _)) => TransportKind::Tcp,
        Some(("udp", _)) => TransportKind::Udp,
        Some((other, span)) => {
            errs.push(loc.error(
                span,
                format!("transport {other:?}: expected \"tcp\" or \"udp\""),
            ));
            TransportKind::Tcp
        }
    };
    let timeout = match &cam.timeout_seconds {
        None => DEFAULT_CAMERA_TIMEOUT,
        Some(v) if (1.0..=300.0).contains(v.get_ref()) => {
            std::time::Duration::from_secs_f64(*v.get_ref())
        }
        Some(v) => {
            errs.push(loc.error(
                v.span(),
                format!("timeout_seconds must be from 1 to 300, not {}", v.get_ref()),
            ));
            DEFAULT_CAMERA_TIMEOUT
        }
    };
    let (zones, zone_arm) = zones(cam.zones, &name, shared.schedules, loc, errs);
    let mut masks = Vec::new();
    for m in cam.masks {
        let m = m.into_inner();
        check_polygon(&m.polygon, loc, errs, "mask");
        masks.push(m.polygon.into_inner());
    }
    let motion = super::motion::validate(shared.global_motion, cam.motion.as_ref(), loc, errs);
    CameraConfig {
        name,
        url: url.unwrap_or_else(|| "rtsp://invalid/".parse().unwrap()),
        detect_url,
        username: cam.username,
        password,
        transport,
        timeout,
        audio: cam.audio,
        enabled: cam.enabled,
        zones,
        masks,
        motion,
        arm: Arming {
            camera: arm(&cam.arm, shared.schedules, loc, errs),
            zones: zone_arm,
        },
    }
}

/// Validates a camera's `[[cameras.zones]]`: the zones, and each one's arming schedule.
fn zones(
    raw: Vec<Spanned<RawZone>>,
    name: &str,
    schedules: &[Arc<Schedule>],
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> (Vec<Zone>, Vec<Option<Arc<Schedule>>>) {
    let mut zones: Vec<Zone> = Vec::new();
    let mut zone_arm = Vec::new();
    for z in raw {
        let z = z.into_inner();
        let zname = z.name.get_ref().clone();
        if !valid_name(&zname) {
            errs.push(loc.error(
                z.name.span(),
                format!("zone name {zname:?} must be 1-64 characters of [a-z0-9_-]"),
            ));
        } else if zones.iter().any(|o| o.name == zname) {
            errs.push(loc.error(
                z.name.span(),
                format!("duplicate zone name {zname:?} in camera {name:?}"),
            ));
        }
        check_polygon(&z.polygon, loc, errs, &format!("zone {zname:?}"));
        let min_area = fraction(&z.min_area, loc, errs, "min_area");
        let min_fraction = fraction(&z.min_fraction, loc, errs, "min_fraction");
        zones.push(Zone {
            name: zname,
            polygon: z.polygon.into_inner(),
            min_area,
            min_fraction,
        });
        zone_arm.push(arm(&z.arm, schedules, loc, errs));
    }
    (zones, zone_arm)
}

fn check_url(
    u: &Spanned<String>,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
    key: &str,
) -> Option<url::Url> {
    match url::Url::parse(u.get_ref()) {
        Ok(url) if url.scheme() != "rtsp" => {
            errs.push(loc.error(
                u.span(),
                format!(
                    "{key}: scheme {:?} is not supported (expected rtsp://)",
                    url.scheme()
                ),
            ));
            None
        }
        Ok(url) if url.host_str().is_none_or(|h| h.is_empty()) => {
            errs.push(loc.error(u.span(), format!("{key}: has no host")));
            None
        }
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            // Never echo the URL: it holds a secret.
            errs.push(loc.error(
                u.span(),
                format!(
                    "{key}: credentials in the URL are not allowed; use username and password_env"
                ),
            ));
            None
        }
        Ok(url) => Some(url),
        Err(e) => {
            errs.push(loc.error(u.span(), format!("{key}: invalid URL: {e}")));
            None
        }
    }
}

fn check_polygon(
    p: &Spanned<Vec<[f64; 2]>>,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
    what: &str,
) {
    let pts = p.get_ref();
    if pts.len() < 3 {
        errs.push(loc.error(
            p.span(),
            format!("{what}: polygon needs at least 3 points, has {}", pts.len()),
        ));
    }
    // The shoelace area: corners in a line (or all on one spot) cover nothing, so such
    // a zone could never see motion and such a mask never hide any.
    let area = (0..pts.len())
        .map(|i| {
            let ([x0, y0], [x1, y1]) = (pts[i], pts[(i + 1) % pts.len()]);
            x0 * y1 - x1 * y0
        })
        .sum::<f64>()
        .abs()
        / 2.0;
    // (A bow tie's halves can cancel in the shoelace sum: a polygon with little area
    // that crosses itself, its corners not all in a line, is called crossing.)
    let crossing = if pts.len() >= 4 {
        crate::base::polygon::crossing_edges(pts)
    } else {
        None
    };
    if pts.len() >= 3 && area < 1e-6 && (crossing.is_none() || crate::base::polygon::in_line(pts)) {
        errs.push(loc.error(
            p.span(),
            format!("{what}: polygon has no area (its corners are in a line)"),
        ));
    } else if let Some((i, j)) = crossing {
        errs.push(loc.error(
            p.span(),
            format!(
                "{what}: polygon crosses itself (the edge from point {i} to {} crosses the one from point {j} to {}); list the corners in order around the shape",
                (i + 1) % pts.len(),
                (j + 1) % pts.len()
            ),
        ));
    }
    for (i, [x, y]) in pts.iter().enumerate() {
        if !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y) {
            errs.push(loc.error(
                p.span(),
                format!("{what}: point {i} [{x}, {y}] is outside 0..1 (coordinates are fractions of the image)"),
            ));
            break;
        }
    }
}
