//! Alerts POSTed to webhooks as JSON, signed so that receivers can trust them:
//! `X-Vigil-Timestamp: <unix seconds>` and `X-Vigil-Signature: sha256=<hex>`, the
//! HMAC-SHA256 with the webhook's secret of `<timestamp>.<body>` (the timestamp lets a
//! receiver refuse replays).
//!
//! One task per webhook, fed by the alert hub: deliveries are in order, each retried with
//! backoff (1, 2, 4, 8, 16 s) while the receiver fails; a receiver that stays down makes
//! its task fall behind the hub and skip alerts (logged), never slowing analysis.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::broadcast::error::RecvError;

use super::{Alert, AlertHub};
use crate::base::cancel::CancelToken;
use crate::config::WebhookConfig;

const ATTEMPTS: u32 = 6;

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Reads the signing secret. The error names the variable only.
pub fn secret(cfg: &WebhookConfig) -> anyhow::Result<Vec<u8>> {
    match std::env::var(&cfg.secret_env) {
        Ok(s) if !s.is_empty() => Ok(s.into_bytes()),
        _ => anyhow::bail!(
            "webhook {}: environment variable {} (secret_env) is not set",
            cfg.url,
            cfg.secret_env
        ),
    }
}

/// The client of one webhook (https trusting `ca_file`, or the public roots).
pub fn agent(cfg: &WebhookConfig) -> anyhow::Result<ureq::Agent> {
    crate::tls::agent(cfg.ca_file.as_deref(), Some(Duration::from_secs(10)))
        .map_err(|e| anyhow::anyhow!("webhook {}: {e:#}", cfg.url))
}

/// One delivery attempt: Ok on a 2xx answer.
fn post(agent: &ureq::Agent, url: &str, secret: &[u8], body: &[u8]) -> Result<(), String> {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let r = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Vigil-Timestamp", ts.to_string())
        .header("X-Vigil-Signature", signature(secret, ts, body))
        .send(body)
        .map_err(|e| e.to_string())?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", r.status()))
    }
}

/// Delivers alerts until `stop`.
pub async fn run(
    cfg: WebhookConfig,
    agent: ureq::Agent,
    secret: Vec<u8>,
    hub: AlertHub,
    mut stop: CancelToken,
) {
    let url = cfg.url.to_string();
    let mut rx = hub.subscribe();
    loop {
        let next = tokio::select! {
            r = rx.recv() => r,
            () = stop.cancelled() => return,
        };
        let alert: Alert = match next {
            Ok(a) => a,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("webhook {url}: fell behind, {n} alerts skipped");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let body = serde_json::to_vec(&alert).unwrap_or_default();
        for attempt in 1..=ATTEMPTS {
            let (a, u, s, b) = (agent.clone(), url.clone(), secret.clone(), body.clone());
            let r = tokio::task::spawn_blocking(move || post(&a, &u, &s, &b))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match r {
                Ok(()) => break,
                Err(e) if attempt == ATTEMPTS => {
                    tracing::warn!(
                        "webhook {url}: gave up on an alert after {attempt} attempts: {e}"
                    );
                }
                Err(e) => {
                    tracing::debug!("webhook {url}: attempt {attempt}: {e}");
                    let pause = Duration::from_secs(1 << (attempt - 1));
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The HMAC is the standard one (RFC 4231 test case 2), and the signature is that HMAC
    /// over "<timestamp>.<body>".
    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            want,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // "<ts>.<body>" with ts = 12 and body = "3": the MAC input is "12.3".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"12.3");
        let direct = hex::encode(mac.finalize().into_bytes());
        assert_eq!(signature(b"k", 12, b"3"), format!("sha256={direct}"));
    }
}
