//! Configuration: the TOML file format, its validation, and errors that name the file,
//! line and column of what is wrong.
//!
//! Parsing happens in two steps: `toml` + serde turn the text into the `Raw*` structs
//! (syntax errors, unknown keys and wrong types come out of that step with a span), then
//! [`Config::from_raw`] checks meaning (names, polygons, URLs, storage) using the spans it
//! kept with `toml::Spanned` so every error points at a line.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::alerts::schedule::{Arming, Schedule};
use toml::Spanned;
use vigil_motion::{DetectorConfig, Polygon, Zone};

/// One problem in a config file, located by line and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// All the problems found in one file (validation keeps going after the first).
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    storage: Spanned<RawStorage>,
    #[serde(default)]
    server: Option<RawServer>,
    #[serde(default)]
    motion: Option<RawMotion>,
    #[serde(default)]
    mqtt: Option<Spanned<RawMqtt>>,
    #[serde(default)]
    webhooks: Vec<Spanned<RawWebhook>>,
    #[serde(default)]
    metrics: Option<RawMetrics>,
    #[serde(default)]
    schedules: Vec<Spanned<RawSchedule>>,
    #[serde(default)]
    cameras: Vec<Spanned<RawCamera>>,
}

/// `[[schedules]]`: when alerts are armed (see [`crate::alerts::schedule`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: Spanned<String>,
    timezone: Option<Spanned<String>>,
    armed: Option<Spanned<Vec<String>>>,
    disarmed: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    secret_env: Spanned<String>,
    ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: Spanned<String>,
    client_id: Option<String>,
    username: Option<String>,
    password_env: Option<Spanned<String>>,
    topic_prefix: Option<Spanned<String>>,
}

/// `[motion]` (global defaults) and `[cameras.motion]` (per camera); every key optional.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawMotion {
    enabled: Option<bool>,
    width: Option<Spanned<i64>>,
    fps: Option<Spanned<i64>>,
    decode: Option<crate::decode::DecodeMode>,
    threshold: Option<Spanned<i64>>,
    background_shift: Option<Spanned<i64>>,
    moving_background_shift: Option<Spanned<i64>>,
    min_area: Option<Spanned<f64>>,
    zone_min_fraction: Option<Spanned<f64>>,
    lighting_fraction: Option<Spanned<f64>>,
    lighting_quiet_frames: Option<Spanned<i64>>,
    calibration_frames: Option<Spanned<i64>>,
    min_frames: Option<Spanned<i64>>,
    post_roll: Option<Spanned<f64>>,
    max_event_seconds: Option<Spanned<f64>>,
    pre_roll: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    dir: Spanned<String>,
    retain_days: Option<Spanned<f64>>,
    max_bytes: Option<Spanned<String>>,
    min_free: Option<Spanned<String>>,
    segment_seconds: Option<Spanned<i64>>,
    commit_interval_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    #[serde(default)]
    allow_insecure_remote: bool,
    session_idle_minutes: Option<Spanned<f64>>,
    session_max_hours: Option<Spanned<f64>>,
    login_max_failures: Option<Spanned<i64>>,
    lockout_minutes: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
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
struct RawZone {
    name: Spanned<String>,
    polygon: Spanned<Vec<[f64; 2]>>,
    min_area: Option<Spanned<f64>>,
    min_fraction: Option<Spanned<f64>>,
    arm: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMask {
    polygon: Spanned<Vec<[f64; 2]>>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from and the SHA-256 (hex) of its text: the daemon records both
    /// in the audit log at start, so configuration changes show there.
    pub file: PathBuf,
    pub sha256: String,
    pub storage: StorageConfig,
    pub server: ServerConfig,
    pub mqtt: Option<MqttConfig>,
    pub webhooks: Vec<WebhookConfig>,
    pub cameras: Vec<CameraConfig>,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub dir: PathBuf,
    pub retain_days: Option<f64>,
    pub max_bytes: Option<u64>,
    /// Keep at least this much free on the storage filesystem (deleting oldest first).
    pub min_free: Option<u64>,
    pub segment_seconds: u32,
    /// How often buffered video is fsynced and committed to the index. Bounds the loss
    /// after a power failure; see ARCHITECTURE.md.
    pub commit_interval_ms: u32,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `[metrics] listen`: Prometheus `/metrics` on its own address (none by default).
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the API over HTTPS with this certificate chain and key (PEM).
    pub tls: Option<TlsConfig>,
    /// Plain HTTP beyond loopback was asked for explicitly (the daemon warns at start).
    pub allow_insecure_remote: bool,
    /// A browser session ends after this long unused...
    pub session_idle: std::time::Duration,
    /// ... and after this long in all.
    pub session_max: std::time::Duration,
    /// Failed logins (per user name, and per client address) within `lockout` that lock
    /// them out for `lockout`.
    pub login_max_failures: u32,
    pub lockout: std::time::Duration,
}

/// `server.tls_cert` and `server.tls_key`, resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ServerConfig {
    /// The defaults of an empty `[server]` section.
    fn default() -> Self {
        use std::time::Duration;
        ServerConfig {
            listen: DEFAULT_LISTEN.parse().unwrap(),
            metrics_listen: None,
            tls: None,
            allow_insecure_remote: false,
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            login_max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// `[[webhooks]]`: alerts POSTed as JSON, signed with HMAC-SHA256.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub url: url::Url,
    /// Environment variable holding the signing secret (never logged).
    pub secret_env: String,
    /// For https: trust only the certificates in this PEM file (a private CA or the
    /// receiver's self-signed certificate) instead of the public web roots.
    pub ca_file: Option<PathBuf>,
}

/// `[mqtt]`: alerts published to a broker.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    /// Environment variable holding the password (read at start, never logged).
    pub password_env: Option<String>,
    /// Topics are `<prefix>/<camera>/motion`, `<prefix>/events`, ...
    pub topic_prefix: String,
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

/// Motion analysis of one camera (`[motion]` defaults, `[cameras.motion]` per camera): how
/// frames are sampled for the detector, and the detector's own settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionConfig {
    pub enabled: bool,
    /// Analysis width in pixels (height keeps the aspect ratio).
    pub width: u32,
    /// Frames analysed per second.
    pub fps: u32,
    pub decode: crate::decode::DecodeMode,
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
            decode: crate::decode::DecodeMode::Full,
            pre_roll: 3.0,
            detector: DetectorConfig::default(),
        }
    }
}

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

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: 0,
                column: 0,
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates config text; `path` is used for error messages and to resolve
    /// relative paths (relative to the file's directory).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let loc = Locator { file: path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ConfigErrors(vec![loc.error(span, e.message().to_owned())])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_raw(raw, &loc, base)
    }

    fn from_raw(raw: RawConfig, loc: &Locator, base: &Path) -> Result<Config, ConfigErrors> {
        let mut errs = Vec::new();
        let storage_span = raw.storage.span();
        let storage = raw.storage.into_inner();

        let dir = resolve(base, storage.dir.get_ref());
        if storage.dir.get_ref().is_empty() {
            errs.push(loc.error(storage.dir.span(), "storage.dir is empty".into()));
        } else if let Err(e) = check_storage_dir(&dir) {
            errs.push(loc.error(
                storage.dir.span(),
                format!("storage.dir {}: {e}", dir.display()),
            ));
        }
        let retain_days = storage.retain_days.as_ref().and_then(|d| {
            if !(*d.get_ref() > 0.0 && d.get_ref().is_finite()) {
                errs.push(loc.error(d.span(), "storage.retain_days must be > 0".into()));
                None
            } else {
                Some(*d.get_ref())
            }
        });
        // `min_free = "0"` turns the free-space floor off (the default is 2% of the disk).
        let mut bytes_key = |v: &Option<Spanned<String>>, key: &str| -> Option<u64> {
            let v = v.as_ref()?;
            match v.get_ref().parse::<bytesize::ByteSize>() {
                Ok(b) if b.as_u64() > 0 || key == "min_free" => Some(b.as_u64()),
                Ok(_) => {
                    errs.push(loc.error(v.span(), format!("storage.{key} must be > 0")));
                    None
                }
                Err(e) => {
                    errs.push(loc.error(
                        v.span(),
                        format!("storage.{key}: {e} (expected e.g. \"500 GiB\" or \"2 TiB\")"),
                    ));
                    None
                }
            }
        };
        let max_bytes = bytes_key(&storage.max_bytes, "max_bytes");
        let min_free = bytes_key(&storage.min_free, "min_free");
        let segment_seconds = match &storage.segment_seconds {
            None => 60,
            Some(s) if (1..=3600).contains(s.get_ref()) => *s.get_ref() as u32,
            Some(s) => {
                errs.push(loc.error(s.span(), "storage.segment_seconds must be 1..=3600".into()));
                60
            }
        };
        let commit_interval_ms = match &storage.commit_interval_ms {
            None => 1000,
            Some(s) if (50..=10_000).contains(s.get_ref()) => *s.get_ref() as u32,
            Some(s) => {
                errs.push(loc.error(
                    s.span(),
                    "storage.commit_interval_ms must be 50..=10000".into(),
                ));
                1000
            }
        };
        let _ = storage_span;

        let server = raw.server.unwrap_or_default();
        let tls = match (&server.tls_cert, &server.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let mut file = |v: &Spanned<String>, key: &str| {
                    let p = base.join(v.get_ref());
                    if let Err(e) = std::fs::metadata(&p) {
                        errs.push(loc.error(
                            v.span(),
                            format!("server.{key}: cannot read {}: {e}", p.display()),
                        ));
                    }
                    p
                };
                Some(TlsConfig {
                    cert: file(cert, "tls_cert"),
                    key: file(key, "tls_key"),
                })
            }
            (Some(v), None) | (None, Some(v)) => {
                errs.push(loc.error(
                    v.span(),
                    "server.tls_cert and server.tls_key go together: set both or neither".into(),
                ));
                None
            }
        };
        let listen = match &server.listen {
            None => DEFAULT_LISTEN.parse().unwrap(),
            Some(l) => match l.get_ref().parse::<SocketAddr>() {
                Ok(a) if a.ip().is_loopback() || tls.is_some() || server.allow_insecure_remote => a,
                Ok(a) => {
                    errs.push(loc.error(
                        l.span(),
                        format!(
                            "server.listen {a}: beyond loopback the API needs TLS \
                             (server.tls_cert and server.tls_key); to serve plain HTTP anyway \
                             (behind a TLS proxy on the same host, say) set \
                             server.allow_insecure_remote = true"
                        ),
                    ));
                    DEFAULT_LISTEN.parse().unwrap()
                }
                Err(e) => {
                    errs.push(loc.error(
                        l.span(),
                        format!(
                            "server.listen {:?}: {e} (expected e.g. \"{DEFAULT_LISTEN}\")",
                            l.get_ref()
                        ),
                    ));
                    DEFAULT_LISTEN.parse().unwrap()
                }
            },
        };
        let allow_insecure_remote = server.allow_insecure_remote;
        let defaults = ServerConfig::default();
        let mut seconds = |v: &Option<Spanned<f64>>, key: &str, unit: f64, max: f64, default| {
            let Some(v) = v else {
                return default;
            };
            let x = *v.get_ref();
            if x > 0.0 && x <= max {
                std::time::Duration::from_secs_f64(x * unit)
            } else {
                errs.push(loc.error(
                    v.span(),
                    format!("server.{key} must be more than 0 and at most {max}, not {x}"),
                ));
                default
            }
        };
        let session_idle = seconds(
            &server.session_idle_minutes,
            "session_idle_minutes",
            60.0,
            1440.0,
            defaults.session_idle,
        );
        let session_max = seconds(
            &server.session_max_hours,
            "session_max_hours",
            3600.0,
            720.0,
            defaults.session_max,
        );
        let lockout = seconds(
            &server.lockout_minutes,
            "lockout_minutes",
            60.0,
            1440.0,
            defaults.lockout,
        );
        let login_max_failures = match &server.login_max_failures {
            None => defaults.login_max_failures,
            Some(v) if (1..=100).contains(v.get_ref()) => *v.get_ref() as u32,
            Some(v) => {
                errs.push(loc.error(
                    v.span(),
                    format!(
                        "server.login_max_failures must be 1..=100, not {}",
                        v.get_ref()
                    ),
                ));
                defaults.login_max_failures
            }
        };

        let mqtt =
            raw.mqtt.map(|m| {
                let m = m.into_inner();
                let (mut host, mut port) = (String::new(), 1883);
                match url::Url::parse(m.url.get_ref()) {
                    Ok(u) if u.scheme() == "mqtt" && u.host_str().is_some() => {
                        if !u.username().is_empty() || u.password().is_some() {
                            errs.push(loc.error(
                            m.url.span(),
                            "mqtt.url: credentials in the URL are not allowed; use username \
                             and password_env"
                                .into(),
                        ));
                        }
                        host = u.host_str().unwrap().trim_matches(['[', ']']).to_owned();
                        port = u.port().unwrap_or(1883);
                    }
                    _ => errs.push(loc.error(
                        m.url.span(),
                        format!(
                            "mqtt.url {:?}: expected mqtt://host[:port]",
                            m.url.get_ref()
                        ),
                    )),
                }
                let topic_prefix =
                    match m.topic_prefix {
                        Some(p)
                            if p.get_ref().is_empty()
                                || p.get_ref().contains(['#', '+'])
                                || p.get_ref().starts_with('/')
                                || p.get_ref().ends_with('/') =>
                        {
                            errs.push(loc.error(
                        p.span(),
                        "mqtt.topic_prefix: must be non-empty, without wildcards (# +) or \
                         leading/trailing /"
                            .into(),
                    ));
                            "vigil".to_owned()
                        }
                        Some(p) => p.into_inner(),
                        None => "vigil".to_owned(),
                    };
                MqttConfig {
                    host,
                    port,
                    client_id: m.client_id.unwrap_or_else(|| "vigil".into()),
                    username: m.username,
                    password_env: m.password_env.map(|p| p.into_inner()),
                    topic_prefix,
                }
            });

        let metrics_listen = raw.metrics.and_then(|m| {
            loopback_addr(
                &m.listen,
                "metrics.listen",
                "127.0.0.1:9100",
                loc,
                &mut errs,
            )
        });
        let mut webhooks = Vec::new();
        for w in raw.webhooks {
            let w = w.into_inner();
            match url::Url::parse(w.url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                    if !u.username().is_empty() || u.password().is_some() {
                        errs.push(loc.error(
                            w.url.span(),
                            "webhooks.url: credentials in the URL are not allowed".into(),
                        ));
                    }
                    if w.secret_env.get_ref().is_empty() {
                        errs.push(loc.error(w.secret_env.span(), "secret_env is empty".into()));
                    }
                    let ca_file = w.ca_file.map(|f| {
                        let p = base.join(f.get_ref());
                        if u.scheme() != "https" {
                            errs.push(
                                loc.error(f.span(), "webhooks.ca_file is for https URLs".into()),
                            );
                        } else if let Err(e) = std::fs::metadata(&p) {
                            errs.push(loc.error(
                                f.span(),
                                format!("webhooks.ca_file: cannot read {}: {e}", p.display()),
                            ));
                        }
                        p
                    });
                    webhooks.push(WebhookConfig {
                        url: u,
                        secret_env: w.secret_env.into_inner(),
                        ca_file,
                    });
                }
                _ => errs.push(loc.error(
                    w.url.span(),
                    format!(
                        "webhooks.url {:?}: expected http(s)://host[:port]/path",
                        w.url.get_ref()
                    ),
                )),
            }
        }

        let mut schedules: Vec<Arc<Schedule>> = Vec::new();
        for s in raw.schedules {
            let s = s.into_inner();
            let sname = s.name.get_ref();
            if !valid_name(sname) {
                errs.push(loc.error(
                    s.name.span(),
                    format!("schedule name {sname:?} must be 1-64 characters of [a-z0-9_-]"),
                ));
            } else if schedules.iter().any(|o| &o.name == sname) {
                errs.push(loc.error(s.name.span(), format!("duplicate schedule {sname:?}")));
            }
            let (windows, invert) = match (&s.armed, &s.disarmed) {
                (Some(w), None) => (w, false),
                (None, Some(w)) => (w, true),
                _ => {
                    errs.push(loc.error(
                        s.name.span(),
                        format!("schedule {sname:?}: set exactly one of armed or disarmed"),
                    ));
                    continue;
                }
            };
            if let Some(tz) = &s.timezone
                && let Err(e) = Schedule::parse(sname, Some(tz.get_ref()), &[], false)
            {
                errs.push(loc.error(tz.span(), format!("schedule {sname:?}: {e}")));
                continue;
            }
            match Schedule::parse(
                sname,
                s.timezone.as_ref().map(|t| t.get_ref().as_str()),
                windows.get_ref(),
                invert,
            ) {
                Ok(sch) => schedules.push(Arc::new(sch)),
                Err(e) => errs.push(loc.error(windows.span(), format!("schedule {sname:?}: {e}"))),
            }
        }
        let arm = |a: &Option<Spanned<String>>, errs: &mut Vec<ConfigError>| {
            let a = a.as_ref()?;
            let found = schedules.iter().find(|s| &s.name == a.get_ref()).cloned();
            if found.is_none() {
                errs.push(loc.error(
                    a.span(),
                    format!("arm: no schedule named {:?} ([[schedules]])", a.get_ref()),
                ));
            }
            found
        };

        let global_motion = raw.motion.unwrap_or_default();
        // Check the global section on its own too, so its errors show once, with its lines.
        let _ = motion_config(&global_motion, None, loc, &mut errs);
        let mut cameras: Vec<CameraConfig> = Vec::new();
        for cam in raw.cameras {
            let cam_span = cam.span();
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
            let url = check_url(&cam.url, loc, &mut errs, "url");
            let detect_url = cam
                .detect_url
                .as_ref()
                .and_then(|u| check_url(u, loc, &mut errs, "detect_url"));
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
            let mut zones: Vec<Zone> = Vec::new();
            let mut zone_arm = Vec::new();
            for z in cam.zones {
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
                check_polygon(&z.polygon, loc, &mut errs, &format!("zone {zname:?}"));
                let min_area = fraction(&z.min_area, loc, &mut errs, "min_area");
                let min_fraction = fraction(&z.min_fraction, loc, &mut errs, "min_fraction");
                zones.push(Zone {
                    name: zname,
                    polygon: z.polygon.into_inner(),
                    min_area,
                    min_fraction,
                });
                zone_arm.push(arm(&z.arm, &mut errs));
            }
            let mut masks = Vec::new();
            for m in cam.masks {
                let m = m.into_inner();
                check_polygon(&m.polygon, loc, &mut errs, "mask");
                masks.push(m.polygon.into_inner());
            }
            let _ = cam_span;
            let motion = motion_config(&global_motion, cam.motion.as_ref(), loc, &mut errs);
            cameras.push(CameraConfig {
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
                    camera: arm(&cam.arm, &mut errs),
                    zones: zone_arm,
                },
            });
        }

        if errs.is_empty() {
            use sha2::Digest;
            Ok(Config {
                file: loc.file.to_owned(),
                sha256: hex::encode(sha2::Sha256::digest(loc.text.as_bytes())),
                storage: StorageConfig {
                    dir,
                    retain_days,
                    max_bytes,
                    min_free,
                    segment_seconds,
                    commit_interval_ms,
                },
                server: ServerConfig {
                    listen,
                    metrics_listen,
                    tls,
                    allow_insecure_remote,
                    session_idle,
                    session_max,
                    login_max_failures,
                    lockout,
                },
                mqtt,
                webhooks,
                cameras,
            })
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

/// A listen address for an unauthenticated listener (metrics): loopback only; `None` after an
/// error (pushed to `errs`).
fn loopback_addr(
    v: &Spanned<String>,
    key: &str,
    example: &str,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> Option<SocketAddr> {
    match v.get_ref().parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => Some(a),
        Ok(_) => {
            errs.push(loc.error(
                v.span(),
                format!(
                    "{key}: only loopback addresses (127.0.0.1, [::1]) are allowed, as it has no \
                     authentication (scrape /metrics on the API with a token instead)"
                ),
            ));
            None
        }
        Err(e) => {
            errs.push(loc.error(
                v.span(),
                format!("{key} {:?}: {e} (expected e.g. \"{example}\")", v.get_ref()),
            ));
            None
        }
    }
}

struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = start - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message,
        }
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The storage dir must exist and be writable, or be creatable (its nearest existing
/// ancestor is a writable directory).
fn check_storage_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err("exists but is not a directory".into()),
        Ok(_) => probe_writable(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut anc = dir.parent();
            while let Some(a) = anc {
                if a.as_os_str().is_empty() {
                    return probe_writable(Path::new("."));
                }
                if a.exists() {
                    return if a.is_dir() {
                        probe_writable(a)
                            .map_err(|e| format!("does not exist and cannot be created: {e}"))
                    } else {
                        Err(format!("{} is not a directory", a.display()))
                    };
                }
                anc = a.parent();
            }
            Err("does not exist".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn probe_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".vigil-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("not writable ({e})")),
    }
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

fn fraction(
    v: &Option<Spanned<f64>>,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
    key: &str,
) -> Option<f64> {
    let v = v.as_ref()?;
    let x = *v.get_ref();
    if (0.0..=1.0).contains(&x) {
        Some(x)
    } else {
        errs.push(loc.error(
            v.span(),
            format!("{key} must be a fraction in 0..1, not {x}"),
        ));
        None
    }
}

/// Merges `[motion]` defaults and a camera's `[cameras.motion]` over the built-in
/// defaults, validating each value where it was written. Errors of the global section are
/// reported only when `cam` is None.
fn motion_config(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(Path::new("/tmp/test.toml"), text)
    }

    fn storage() -> String {
        let d = std::env::temp_dir().join("vigil-config-unit");
        format!("[storage]\ndir = {:?}\n", d.display().to_string())
    }

    #[test]
    fn minimal_ok() {
        let c = parse(&format!(
            "{}\n[[cameras]]\nname = \"a\"\nurl = \"rtsp://127.0.0.1:8554/a\"\n",
            storage()
        ))
        .unwrap();
        assert_eq!(c.cameras.len(), 1);
        assert_eq!(c.storage.segment_seconds, 60);
        assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn error_points_at_line() {
        let text = format!(
            "{}\n[[cameras]]\nname = \"a\"\nurl = \"http://x/\"\n",
            storage()
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].line, 6, "{e}");
        assert!(e.0[0].message.contains("scheme"), "{e}");
    }

    #[test]
    fn bytes_units() {
        let c = parse(&format!("{}max_bytes = \"2 TiB\"\n", storage())).unwrap();
        assert_eq!(c.storage.max_bytes, Some(2 << 40));
    }
}
