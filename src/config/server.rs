//! `[server]` and `[metrics]`: the API's address, TLS, browser sessions and the login
//! lockout; the Prometheus listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
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
pub(super) struct RawMetrics {
    listen: Spanned<String>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

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

/// `server.tls_cert` and `server.tls_key` (both or neither), resolved against `base`.
fn tls(
    server: &RawServer,
    base: &Path,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> Option<TlsConfig> {
    match (&server.tls_cert, &server.tls_key) {
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
    }
}

/// Validates `[server]` and `[metrics]`; `base` is the config file's directory.
pub(super) fn validate(
    server: Option<RawServer>,
    metrics: Option<RawMetrics>,
    base: &Path,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> ServerConfig {
    let server = server.unwrap_or_default();
    let tls = tls(&server, base, loc, errs);
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

    let metrics_listen = metrics
        .and_then(|m| loopback_addr(&m.listen, "metrics.listen", "127.0.0.1:9100", loc, errs));
    ServerConfig {
        listen,
        metrics_listen,
        tls,
        allow_insecure_remote,
        session_idle,
        session_max,
        login_max_failures,
        lockout,
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
