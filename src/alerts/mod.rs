//! Live alerts: motion start and end per camera and per zone, as the detector sees them,
//! for operators (`/api/alerts/stream`, Server-Sent Events) and integrations.
//!
//! The analysis threads publish [`Alert`]s on a broadcast channel ([`AlertHub`]);
//! subscribers that fall behind lose the oldest alerts (and are told how many), never
//! slowing analysis.

pub mod mqtt;
pub mod webhook;

use serde::Serialize;

use crate::base::time::rfc3339;

/// Alerts kept for slow subscribers before the oldest are dropped.
pub const BACKLOG: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    Start,
    End,
    /// An operator acknowledged the event (`zone` absent, `score` 0).
    Ack,
}

/// Motion starting or ending on a camera (`zone` absent) or in one of its zones.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub camera: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub event_id: u64,
    /// UTC of the frame that triggered it (RFC 3339) and in µs.
    pub time: String,
    pub time_us: i64,
    /// Score of that frame (start) or the event's peak (end).
    pub score: f32,
    /// The event's thumbnail: its first motion frame at the start, its peak frame once
    /// it has ended.
    pub thumbnail_url: String,
}

impl Alert {
    pub fn new(
        kind: AlertKind,
        camera: &str,
        zone: Option<&str>,
        event_id: u64,
        time_us: i64,
        score: f32,
    ) -> Alert {
        Alert {
            kind,
            camera: camera.to_owned(),
            zone: zone.map(str::to_owned),
            event_id,
            time: rfc3339(time_us),
            time_us,
            score,
            thumbnail_url: format!("/api/events/{event_id}/thumbnail.jpg"),
        }
    }
}

/// Where alerts are published.
pub type AlertHub = tokio::sync::broadcast::Sender<Alert>;

pub fn hub() -> AlertHub {
    tokio::sync::broadcast::channel(BACKLOG).0
}

/// The alert channels that deliver beyond the API (MQTT, webhooks), as tokio tasks.
pub struct Channels {
    stop: crate::base::cancel::CancelSource,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the configured channels (`[mqtt]`, `[[webhooks]]`) on `hub`; call inside the
/// runtime. Errors: a password or secret's environment variable is not set, a webhook's CA
/// file is unusable.
pub fn start(
    mqtt: Option<&crate::config::MqttConfig>,
    webhooks: &[crate::config::WebhookConfig],
    hub: &AlertHub,
) -> anyhow::Result<Channels> {
    let (stop, token) = crate::base::cancel::new();
    let mut tasks = Vec::new();
    if let Some(m) = mqtt {
        let password = mqtt::password(m)?;
        tasks.push(tokio::spawn(mqtt::run(
            m.clone(),
            password,
            hub.clone(),
            token,
        )));
    }
    for w in webhooks {
        tasks.push(tokio::spawn(webhook::run(
            w.clone(),
            webhook::agent(w)?,
            webhook::secret(w)?,
            hub.clone(),
            stop.token(),
        )));
    }
    Ok(Channels { stop, tasks })
}

impl Channels {
    /// Stops the channels once what they hold is delivered or given up. Stop them after the
    /// analysers, so that the end alerts of events closed at shutdown still go out.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
