//! Configuration: the TOML file format, its validation, and errors that name the file,
//! line and column of what is wrong.
//!
//! Parsing happens in two steps: `toml` + serde turn the text into the `Raw*` structs
//! (syntax errors, unknown keys and wrong types come out of that step with a span), then
//! [`Config::from_raw`] checks meaning (names, polygons, URLs, storage) using the spans it
//! kept with `toml::Spanned` so every error points at a line.

//!
//! One file per section ([`storage`], [`server`], [`camera`], [`motion`], [`alerts`]), each
//! with its raw struct, its validated struct and its validator; this module holds the
//! file as a whole, the errors and the helpers the sections share. Domain types belong to
//! the modules that own them: zones, polygons and the detector's settings to
//! `vigil-motion`, arming schedules to [`crate::schedule`].

mod alerts;
mod camera;
pub mod edit;
mod motion;
mod server;
mod storage;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use alerts::{MqttConfig, WebhookConfig};
pub use camera::{CameraConfig, DEFAULT_CAMERA_TIMEOUT, PasswordSource, TransportKind};
pub use motion::MotionConfig;
pub use server::{DEFAULT_LISTEN, ServerConfig, TlsConfig};
pub use storage::StorageConfig;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    storage: Spanned<storage::RawStorage>,
    #[serde(default)]
    server: Option<server::RawServer>,
    #[serde(default)]
    motion: Option<motion::RawMotion>,
    #[serde(default)]
    mqtt: Option<Spanned<alerts::RawMqtt>>,
    #[serde(default)]
    webhooks: Vec<Spanned<alerts::RawWebhook>>,
    #[serde(default)]
    metrics: Option<server::RawMetrics>,
    #[serde(default)]
    schedules: Vec<Spanned<alerts::RawSchedule>>,
    #[serde(default)]
    cameras: Vec<Spanned<camera::RawCamera>>,
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
        let storage = storage::validate(raw.storage.into_inner(), base, loc, &mut errs);
        let server = server::validate(raw.server, raw.metrics, base, loc, &mut errs);
        let mqtt = alerts::mqtt(raw.mqtt, loc, &mut errs);
        let webhooks = alerts::webhooks(raw.webhooks, base, loc, &mut errs);
        let schedules = alerts::schedules(raw.schedules, loc, &mut errs);
        let global_motion = raw.motion.unwrap_or_default();
        // Check the global section on its own too, so its errors show once, with its lines.
        let _ = motion::validate(&global_motion, None, loc, &mut errs);
        let shared = camera::Shared {
            global_motion: &global_motion,
            schedules: &schedules,
            base,
        };
        let cameras = camera::validate_all(raw.cameras, &shared, loc, &mut errs);
        if !errs.is_empty() {
            return Err(ConfigErrors(errs));
        }
        use sha2::Digest;
        Ok(Config {
            file: loc.file.to_owned(),
            sha256: hex::encode(sha2::Sha256::digest(loc.text.as_bytes())),
            storage,
            server,
            mqtt,
            webhooks,
            cameras,
        })
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
