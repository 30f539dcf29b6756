//! `GET /api/cameras/{name}/live`: a camera's live video as a WebSocket (viewer role),
//! fed from ingest through the camera's `live::Hub`, not from segment files. First a
//! text message `{"type":"init","codec":"avc1.64001f","width":1920,"height":1080}` and
//! the init segment (`ftyp` + `moov`) as a binary message, then one binary message per
//! picture (`prft` + `moof` + `mdat`; the `prft` box carries the picture's UTC as an NTP
//! timestamp), from a keyframe on: what a browser appends to a Media Source Extensions
//! `SourceBuffer`. New stream parameters send a new init pair. A viewer that falls
//! behind loses pictures up to the next keyframe (its queue is its own). Each connection
//! is audited (`live.view`).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::live::LiveMsg;

pub(super) async fn websocket(
    State(st): State<AppState>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    ws: super::Upgrade,
) -> Response {
    if let Err(refused) = super::alerts::same_origin(&headers) {
        return refused.into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(hub) = st.live.get(&name).cloned() else {
        let msg = if st.cameras.iter().any(|(n, _)| *n == name) {
            format!("camera {name:?} has no live stream (it is disabled)")
        } else {
            format!("unknown camera {name:?}")
        };
        return ApiError(axum::http::StatusCode::NOT_FOUND, msg).into_response();
    };
    let stop = st.shutdown.clone();
    ws.on_upgrade(move |socket| forward(socket, hub.subscribe(), stop))
}

async fn forward(
    mut socket: WebSocket,
    mut rx: crate::live::ViewerRx,
    mut stop: crate::base::cancel::CancelToken,
) {
    let mut ping = tokio::time::interval(Duration::from_secs(15));
    loop {
        let msgs = tokio::select! {
            m = rx.recv() => match m {
                Some(LiveMsg::Init { codec, width, height, segment }) => {
                    let head = serde_json::json!({
                        "type": "init", "codec": codec, "width": width, "height": height,
                    });
                    vec![Message::Text(head.to_string().into()), Message::Binary(segment)]
                }
                Some(LiveMsg::Fragment(bytes)) => vec![Message::Binary(bytes)],
                None => break,
            },
            _ = ping.tick() => vec![Message::Ping(Vec::new().into())],
            incoming = socket.recv() => match incoming {
                // The viewer closed or went away; anything else it sends is ignored.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            },
            () = stop.cancelled() => break,
        };
        for m in msgs {
            if socket.send(m).await.is_err() {
                return;
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
