//! Alerts to an MQTT broker (rumqttc), for home-automation and VMS integrations:
//!
//! - `<prefix>/available`: `online` (retained) once connected; `offline` (retained) on
//!   shutdown, and as the last will if the daemon dies;
//! - `<prefix>/<camera>/motion`: `ON` / `OFF` (retained);
//! - `<prefix>/<camera>/<zone>/motion`: `ON` / `OFF` (retained);
//! - `<prefix>/events`: the JSON of each camera-level start and end alert.
//!
//! Publishing never blocks analysis: alerts come from the broadcast hub, and a publish
//! that does not fit the client's queue (broker unreachable for long) is dropped and
//! counted. rumqttc reconnects by itself; this module only keeps polling, with a pause
//! after an error.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::broadcast::error::RecvError;

use super::{Alert, AlertHub, AlertKind};
use crate::base::cancel::CancelToken;
use crate::config::MqttConfig;

/// A topic level from a camera or zone name: MQTT separators and wildcards replaced.
fn level(name: &str) -> String {
    name.replace(['/', '+', '#'], "_")
}

/// The (topic, payload, retained) messages of one alert.
pub fn messages(prefix: &str, a: &Alert) -> Vec<(String, Vec<u8>, bool)> {
    let state = match a.kind {
        AlertKind::Start => "ON",
        AlertKind::End => "OFF",
        AlertKind::Ack => {
            return vec![(
                format!("{prefix}/events"),
                serde_json::to_vec(a).unwrap_or_default(),
                false,
            )];
        }
    };
    let cam = level(&a.camera);
    match &a.zone {
        Some(z) => vec![(
            format!("{prefix}/{cam}/{}/motion", level(z)),
            state.into(),
            true,
        )],
        None => vec![
            (format!("{prefix}/{cam}/motion"), state.into(), true),
            (
                format!("{prefix}/events"),
                serde_json::to_vec(a).unwrap_or_default(),
                false,
            ),
        ],
    }
}

/// Reads the broker password, if one is configured. The error names the variable only.
pub fn password(cfg: &MqttConfig) -> anyhow::Result<Option<String>> {
    match &cfg.password_env {
        None => Ok(None),
        Some(var) => std::env::var(var).map(Some).map_err(|_| {
            anyhow::anyhow!("mqtt: environment variable {var} (password_env) is not set")
        }),
    }
}

/// Publishes alerts until `stop`; then says `offline` and disconnects.
pub async fn run(cfg: MqttConfig, password: Option<String>, hub: AlertHub, mut stop: CancelToken) {
    let prefix = cfg.topic_prefix.clone();
    let available = format!("{prefix}/available");
    let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_last_will(LastWill::new(&available, "offline", QoS::AtLeastOnce, true));
    if let Some(u) = &cfg.username {
        opts.set_credentials(u, password.unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    let broker = format!("{}:{}", cfg.host, cfg.port);
    let driver = {
        let client = client.clone();
        let available = available.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!("mqtt: connected to {broker}");
                        failing = false;
                        let _ = client.try_publish(&available, QoS::AtLeastOnce, true, "online");
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(e) => {
                        if !failing {
                            tracing::warn!("mqtt: {broker}: {e}; retrying");
                            failing = true;
                        }
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        })
    };
    let mut rx = hub.subscribe();
    let mut dropped = 0u64;
    loop {
        let next = tokio::select! {
            r = rx.recv() => r,
            () = stop.cancelled() => break,
        };
        match next {
            Ok(a) => {
                for (topic, payload, retain) in messages(&prefix, &a) {
                    if client
                        .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                        .is_err()
                    {
                        dropped += 1;
                        if dropped.is_power_of_two() {
                            tracing::warn!("mqtt: {dropped} messages dropped (broker unreachable)");
                        }
                    }
                }
            }
            Err(RecvError::Lagged(n)) => tracing::warn!("mqtt: fell behind, {n} alerts skipped"),
            Err(RecvError::Closed) => break,
        }
    }
    let _ = client.try_publish(&available, QoS::AtLeastOnce, true, "offline");
    let _ = client.try_disconnect();
    // Give the event loop a moment to send them; a broker that is down gets the will.
    let _ = tokio::time::timeout(Duration::from_secs(3), driver).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_payloads() {
        let a = Alert::new(AlertKind::Start, "front", Some("door/left#1"), 7, 0, 0.5);
        assert_eq!(
            messages("vigil", &a),
            vec![(
                "vigil/front/door_left_1/motion".into(),
                b"ON".to_vec(),
                true
            )]
        );
        let a = Alert::new(AlertKind::End, "front", None, 7, 0, 0.5);
        let m = messages("site/a", &a);
        assert_eq!(m[0], ("site/a/front/motion".into(), b"OFF".to_vec(), true));
        assert_eq!(m[1].0, "site/a/events");
        assert!(!m[1].2);
        let v: serde_json::Value = serde_json::from_slice(&m[1].1).unwrap();
        assert_eq!(v["event_id"], 7);
        assert_eq!(v["kind"], "end");
    }
}
