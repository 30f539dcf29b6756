//! Live alerts for operators' pages:
//!
//! - `GET /api/alerts/stream`: Server-Sent Events. Each alert is an event named `alert`
//!   whose data is the JSON of [`crate::alerts::Alert`]; a subscriber that falls behind
//!   gets an event named `lagged` with how many alerts it missed. A comment every 15 s
//!   keeps proxies from closing an idle stream.
//! - `GET /api/alerts/ws`: the same as a WebSocket: one text message per alert (its JSON),
//!   `{"lagged": N}` when behind, pings every 15 s.
//!
//! Both end when the daemon shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket};
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;

pub(super) async fn stream(
    State(st): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = st.alerts.subscribe();
    let events = futures_util::stream::unfold((rx, st.shutdown), |(mut rx, mut stop)| async move {
        let next = tokio::select! {
            r = rx.recv() => r,
            () = stop.cancelled() => return None,
        };
        let ev = match next {
            Ok(a) => Event::default()
                .event("alert")
                .json_data(&a)
                .unwrap_or_else(|_| Event::default().comment("unencodable alert")),
            Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(ev), (rx, stop)))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// A browser's WebSocket handshake carries its page's `Origin`: one from another site is
/// refused (cookies are SameSite=Strict already; this covers older browsers too).
pub(super) async fn websocket(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    ws: super::Upgrade,
) -> Result<Response, super::ApiError> {
    same_origin(&headers)?;
    Ok(ws?.on_upgrade(move |socket| forward(socket, st)))
}

/// Refuses (403) a WebSocket handshake whose `Origin` is not this server's host.
pub(super) fn same_origin(headers: &axum::http::HeaderMap) -> Result<(), super::ApiError> {
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    if let Some(origin) = origin {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if Some(origin_host) != host {
            return Err(super::ApiError(
                axum::http::StatusCode::FORBIDDEN,
                format!("WebSocket from another origin ({origin}) refused"),
            ));
        }
    }
    Ok(())
}

async fn forward(mut socket: WebSocket, st: AppState) {
    let mut rx = st.alerts.subscribe();
    let mut stop = st.shutdown;
    let mut ping = tokio::time::interval(Duration::from_secs(15));
    loop {
        let msg = tokio::select! {
            r = rx.recv() => match r {
                Ok(a) => match serde_json::to_string(&a) {
                    Ok(j) => Message::Text(j.into()),
                    Err(_) => continue,
                },
                Err(RecvError::Lagged(n)) => Message::Text(format!("{{\"lagged\":{n}}}").into()),
                Err(RecvError::Closed) => break,
            },
            _ = ping.tick() => Message::Ping(Vec::new().into()),
            incoming = socket.recv() => match incoming {
                // The client closed or went away; anything else it sends is ignored.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            },
            () = stop.cancelled() => break,
        };
        if socket.send(msg).await.is_err() {
            break;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
