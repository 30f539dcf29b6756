//! `GET /api/alerts/stream`: live alerts as Server-Sent Events. Each alert is an event
//! named `alert` whose data is the JSON of [`crate::alerts::Alert`]; a subscriber that
//! falls behind gets an event named `lagged` with how many alerts it missed. A comment
//! every 15 s keeps proxies from closing an idle stream. The stream ends when the daemon
//! shuts down.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
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
