//! Where a read command (`vigil events`, `vigil recordings`, `vigil export`) reads from:
//! the index itself while the daemon is stopped, else the running daemon's API (the daemon
//! holds the index's lock), with the API token in `VIGIL_TOKEN`. The choice is made here
//! and only here, and so is the audit of what the command read: through the API the daemon
//! records it; read from the index, the command appends the same action to the audit log
//! (the OS user, source `cli`), so the admin sees every read either way.

use anyhow::Context;

use super::DaemonApi;
use crate::audit::AuditLog;
use crate::base::time::rfc3339;
use crate::config::Config;
use crate::events::{self, EventPage, EventQuery, Order, Recordings};
use crate::index::Index;
use crate::storage::Layout;

/// The index (with the audit log of direct reads), or the running daemon.
pub(crate) enum Source {
    Index {
        index: Index,
        storage: Layout,
        audit: AuditLog,
        user: String,
    },
    Daemon(DaemonApi),
}

impl Source {
    /// Opens the index of `config`'s storage, or, if it is locked, prepares to ask the
    /// daemon. Errors: there is no index (the daemon never ran), or the index is locked
    /// and the daemon cannot be asked (no token, port chosen at start).
    pub fn open(config: &Config) -> anyhow::Result<Source> {
        let storage = config.storage.layout();
        let path = storage.index();
        if !path.exists() {
            anyhow::bail!("no index at {} (has the daemon ever run?)", path.display());
        }
        Ok(match Index::open(&path) {
            Ok(index) => Source::Index {
                index,
                audit: AuditLog::new(&storage),
                storage,
                user: super::os_user(),
            },
            // Locked by the running daemon: ask it.
            Err(e) if e.is_locked() => {
                Source::Daemon(DaemonApi::new(config, &path, "it is locked")?)
            }
            Err(e) => anyhow::bail!("cannot open index {}: {e}", path.display()),
        })
    }

    /// Appends a direct read to the audit log (what the daemon's API records for the
    /// same request).
    pub fn audit(&self, action: &str, params: serde_json::Value) -> anyhow::Result<()> {
        if let Source::Index { audit, user, .. } = self {
            audit
                .append(user, "cli", action, params)
                .context("cannot write the audit log")?;
        }
        Ok(())
    }

    /// One page of an event search.
    pub fn events(&self, q: &EventQuery) -> anyhow::Result<EventPage> {
        match self {
            Source::Index { index, .. } => {
                let page = events::search(index, q)?;
                self.audit("events.search", query_params(q))?;
                Ok(page)
            }
            Source::Daemon(api) => {
                let mut url = url::Url::parse(&format!("{}/api/events", api.base))?;
                url.query_pairs_mut().extend_pairs(query_pairs(q));
                let body: serde_json::Value = api.get(url.as_str())?.body_mut().read_json()?;
                Ok(serde_json::from_value(body)?)
            }
        }
    }

    /// One camera's segments and gaps in `[t0, t1)` (µs).
    pub fn recordings(&self, camera: &str, t0: i64, t1: i64) -> anyhow::Result<Recordings> {
        match self {
            Source::Index { index, .. } => {
                let now = crate::base::time::now_us();
                let r = events::recordings(index, camera, t0, t1, now)?;
                let params = serde_json::json!({
                    "camera": camera, "start": rfc3339(t0), "end": rfc3339(t1),
                });
                self.audit("recordings.list", params)?;
                Ok(r)
            }
            Source::Daemon(api) => {
                let mut url = url::Url::parse(&format!("{}/api/recordings", api.base))?;
                url.query_pairs_mut()
                    .append_pair("camera", camera)
                    .append_pair("start", &rfc3339(t0))
                    .append_pair("end", &rfc3339(t1));
                let body: serde_json::Value = api.get(url.as_str())?.body_mut().read_json()?;
                Ok(serde_json::from_value(body)?)
            }
        }
    }
}

/// An event query as the API's query parameters (`/api/events`).
fn query_pairs(q: &EventQuery) -> Vec<(&'static str, String)> {
    let mut p = vec![("start", rfc3339(q.start_us)), ("end", rfc3339(q.end_us))];
    p.extend(q.cameras.iter().map(|c| ("camera", c.clone())));
    p.extend(q.zones.iter().map(|z| ("zone", z.clone())));
    if let Some(s) = q.min_score {
        p.push(("min_score", s.to_string()));
    }
    if let Some(d) = q.min_duration_us {
        p.push(("min_duration", (d as f64 / 1e6).to_string()));
    }
    if let Some(a) = q.acknowledged {
        p.push(("acknowledged", a.to_string()));
    }
    let order = if q.order == Order::Desc {
        "desc"
    } else {
        "asc"
    };
    p.push(("order", order.into()));
    p.push(("limit", q.limit.to_string()));
    if let Some(c) = &q.cursor {
        p.push(("cursor", c.clone()));
    }
    p
}

/// The audit parameters of an event query: its API parameters (repeated keys as lists).
fn query_params(q: &EventQuery) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in query_pairs(q) {
        match m.get_mut(k) {
            Some(serde_json::Value::Array(a)) => a.push(v.into()),
            Some(old) => *old = serde_json::json!([old.take(), v]),
            None => {
                m.insert(k.into(), v.into());
            }
        }
    }
    serde_json::Value::Object(m)
}
