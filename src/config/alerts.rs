//! `[mqtt]`, `[[webhooks]]` and `[[schedules]]`: where alerts go and when they are armed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator, valid_name};
use crate::schedule::Schedule;

/// `[[schedules]]`: when alerts are armed (see [`crate::schedule`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    name: Spanned<String>,
    timezone: Option<Spanned<String>>,
    armed: Option<Spanned<Vec<String>>>,
    disarmed: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    url: Spanned<String>,
    secret_env: Spanned<String>,
    ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    url: Spanned<String>,
    client_id: Option<String>,
    username: Option<String>,
    password_env: Option<Spanned<String>>,
    topic_prefix: Option<Spanned<String>>,
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

/// Validates `[mqtt]`.
pub(super) fn mqtt(
    raw: Option<Spanned<RawMqtt>>,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> Option<MqttConfig> {
    raw.map(|m| {
        let m = m.into_inner();
        let (mut host, mut port) = (String::new(), 1883);
        match url::Url::parse(m.url.get_ref()) {
            Ok(u) if u.scheme() == "mqtt" && u.host_str().is_some() => {
                if !u.username().is_empty() || u.password().is_some() {
                    errs.push(
                        loc.error(
                            m.url.span(),
                            "mqtt.url: credentials in the URL are not allowed; use username \
                         and password_env"
                                .into(),
                        ),
                    );
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
        let topic_prefix = match m.topic_prefix {
            Some(p)
                if p.get_ref().is_empty()
                    || p.get_ref().contains(['#', '+'])
                    || p.get_ref().starts_with('/')
                    || p.get_ref().ends_with('/') =>
            {
                errs.push(
                    loc.error(
                        p.span(),
                        "mqtt.topic_prefix: must be non-empty, without wildcards (# +) or \
                     leading/trailing /"
                            .into(),
                    ),
                );
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
    })
}

/// Validates `[[webhooks]]`; `base` is the config file's directory.
pub(super) fn webhooks(
    raw: Vec<Spanned<RawWebhook>>,
    base: &Path,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> Vec<WebhookConfig> {
    let mut webhooks = Vec::new();
    for w in raw {
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
                        errs.push(loc.error(f.span(), "webhooks.ca_file is for https URLs".into()));
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

    webhooks
}

/// Validates `[[schedules]]`.
pub(super) fn schedules(
    raw: Vec<Spanned<RawSchedule>>,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> Vec<Arc<Schedule>> {
    let mut schedules: Vec<Arc<Schedule>> = Vec::new();
    for s in raw {
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
    schedules
}

/// The schedule an `arm = "..."` key names (an error if there is none).
pub(super) fn arm(
    a: &Option<Spanned<String>>,
    schedules: &[Arc<Schedule>],
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> Option<Arc<Schedule>> {
    let a = a.as_ref()?;
    let found = schedules.iter().find(|s| &s.name == a.get_ref()).cloned();
    if found.is_none() {
        errs.push(loc.error(
            a.span(),
            format!("arm: no schedule named {:?} ([[schedules]])", a.get_ref()),
        ));
    }
    found
}
