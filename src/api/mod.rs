//! HTTP API and the console (axum). One handler per resource:
//! `/health`, `/api/cameras`, `/api/storage`, `/api/recordings`, `/` and `/console/*`
//! (the console, [`console`]), and the timeline's resources in [`events`].
//!
//! Routes are grouped by the least role that may use them (see [`router`]); [`auth`]
//! says who is asking and enforces the role, [`audit`] records what they asked.
//! Bad parameters get a 4xx with a JSON `{"error": "..."}` message.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};

mod alerts;
mod audit;
pub mod auth;
mod bookmarks;
mod cases;
mod clips;
pub mod console;
mod events;
mod holds;
mod live;
pub mod metrics;
mod packages;
mod serve;
pub mod setup;
mod status;

pub use serve::{Listeners, Server, bind, serve};

use crate::base::time::now_us;
use crate::base::time::parse_rfc3339;
use crate::index::Index;
use crate::status::SharedStatus;

#[derive(Clone)]
pub struct AppState {
    pub index: Index,
    pub status: SharedStatus,
    /// Configured cameras as (name, id).
    pub cameras: Arc<Vec<(String, u32)>>,
    /// The storage directory's layout (segment paths in the index are relative to it).
    pub storage: crate::storage::Layout,
    /// Live alerts from the analysers.
    pub alerts: crate::alerts::AlertHub,
    /// Each enabled camera's live video, by name.
    pub live: Arc<std::collections::HashMap<String, crate::live::Hub>>,
    /// The hash-chained audit log of who searched, viewed and exported what.
    pub audit: crate::audit::AuditLog,
    /// Users, tokens, sessions and the login lockout.
    pub gate: Arc<auth::Gate>,
    /// The config file and each analysed camera's zone control (the zone editor).
    pub setup: Arc<setup::Setup>,
    /// Cancelled when the daemon shuts down: ends long-lived responses (alert streams),
    /// which graceful shutdown would otherwise wait for forever.
    pub shutdown: crate::base::cancel::CancelToken,
}

/// The API. Each group of routes is open to its role and the ones above it
/// (viewer < operator < investigator < admin); only the public group is open to anyone.
/// The OpenAPI document gives each operation's role (`x-vigil-role`), and the
/// authorisation matrix test (tests/auth.rs) checks every route against it.
pub fn router(state: AppState) -> axum::Router {
    use crate::auth::Role;
    let need = |r: Role| axum::middleware::from_fn_with_state(r, auth::require);
    let public = axum::Router::new()
        .route("/", get(console::page))
        .route("/console/{file}", get(console::asset))
        .route("/health", get(health))
        .route("/login", get(auth::login_page))
        .route("/api/login", post(auth::login));
    let viewer = axum::Router::new()
        .route("/api/session", get(auth::current))
        .route("/api/logout", post(auth::logout))
        .route("/api/openapi.json", get(openapi))
        .route("/api/cameras", get(status::cameras))
        .route("/api/storage", get(status::storage))
        .route("/api/cameras/{name}/snapshot.jpg", get(status::snapshot))
        .route("/api/cameras/{name}/live", get(live::websocket))
        .route("/metrics", get(metrics::api))
        .route_layer(need(Role::Viewer));
    let operator = axum::Router::new()
        .route("/api/alerts/stream", get(alerts::stream))
        .route("/api/alerts/ws", get(alerts::websocket))
        .route("/api/events/{id}", get(events::one))
        .route("/api/events/{id}/thumbnail.jpg", get(events::thumbnail))
        .route("/api/events/{id}/ack", post(events::acknowledge))
        .route_layer(need(Role::Operator));
    let investigator = axum::Router::new()
        .route("/api/recordings", get(recordings))
        .route("/api/events", get(events::list))
        .route("/api/events/counts", get(events::counts))
        .route("/api/activity", get(events::activity))
        .route("/api/timeline", get(events::timeline))
        .route("/api/timeline/strip", get(events::strip))
        .route("/api/search/region", post(events::region))
        .route("/api/clips/{file}", get(clips::clip))
        .route("/api/events/{id}/clip.mp4", get(clips::event_clip))
        .route("/api/cameras/{name}/frame.jpg", get(clips::frame))
        .route("/api/holds", get(holds::list))
        .route("/api/holds", post(holds::create))
        .route("/api/bookmarks", get(bookmarks::list))
        .route("/api/bookmarks", post(bookmarks::create))
        .route("/api/bookmarks/{id}", delete(bookmarks::delete))
        .route("/api/cases", get(cases::list))
        .route("/api/cases", post(cases::create))
        .route("/api/cases/{id}", get(cases::one))
        .route("/api/cases/{id}", patch(cases::update))
        .route("/api/cases/{id}/items", post(cases::add_item))
        .route("/api/cases/{id}/items/{n}", delete(cases::remove_item))
        .route("/api/cases/{id}/export", post(cases::export))
        .route("/api/cases/{id}/packages", get(packages::list))
        .route("/api/cases/{id}/packages/{file}", get(packages::download))
        .route_layer(need(Role::Investigator));
    let admin = axum::Router::new()
        .route("/api/audit", get(audit::list))
        .route("/api/audit/verify", get(audit::verify))
        .route("/api/users", get(auth::users))
        .route("/api/cameras/{name}/zones", get(setup::get))
        .route("/api/cameras/{name}/zones", put(setup::put))
        .route("/api/cameras/{name}/motion", get(setup::motion))
        .route("/api/holds/{id}", delete(holds::release))
        .route("/api/storage/verify", get(status::verify))
        .route_layer(need(Role::Admin));
    axum::Router::new()
        .merge(public)
        .merge(viewer)
        .merge(operator)
        .merge(investigator)
        .merge(admin)
        // Unknown paths and methods get a message too, like every other 4xx.
        .fallback(|uri: axum::http::Uri| async move {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no such resource: {}", uri.path()),
            )
        })
        .method_not_allowed_fallback(|m: axum::http::Method, uri: axum::http::Uri| async move {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{m} is not allowed on {}", uri.path()),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(body_limit))
        .with_state(state)
}

/// The largest request body the API accepts: its bodies are small JSON documents.
pub const MAX_BODY: usize = 64 * 1024;

/// Refuses request bodies over [`MAX_BODY`] with 413 and a message saying so (before
/// authentication reads anything, and before a handler could mistake a cut body for
/// malformed JSON); passes smaller ones on, read.
async fn body_limit(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let too_big = |n: Option<u64>| {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            match n {
                Some(n) => format!("request body is {n} bytes; the API accepts at most 64 KiB"),
                None => "request body is over 64 KiB, the most the API accepts".into(),
            },
        )
        .into_response()
    };
    let declared = (req.headers().get(axum::http::header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_big(declared);
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(b),
            ))
            .await
        }
        Err(_) => too_big(None),
    }
}

/// What a handler adds to its request's audit record (as `result`), put in the
/// response's extensions: what the request made (a package's id, a custody record).
#[derive(Clone, Debug)]
pub(crate) struct AuditResult(pub serde_json::Value);

/// An API error: status code and a message for the caller.
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// A plain request to a WebSocket route: the rejection's status (400, 426, ...) with a
/// JSON message like every other refusal.
impl From<axum::extract::ws::rejection::WebSocketUpgradeRejection> for ApiError {
    fn from(e: axum::extract::ws::rejection::WebSocketUpgradeRejection) -> Self {
        ApiError(
            e.status(),
            format!(
                "this is a WebSocket route: connect with a WebSocket client ({})",
                e.body_text()
            ),
        )
    }
}

/// The `WebSocketUpgrade` extractor, or its rejection as an `ApiError`.
pub(super) type Upgrade = Result<
    axum::extract::ws::WebSocketUpgrade,
    axum::extract::ws::rejection::WebSocketUpgradeRejection,
>;

impl From<crate::index::IndexError> for ApiError {
    fn from(e: crate::index::IndexError) -> Self {
        tracing::error!("index: {e}");
        match e {
            // The store is being reopened after an I/O error: the client may retry.
            crate::index::IndexError::Unavailable(_) => ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{e}; retry in a few seconds"),
            ),
            // The index met a full disk: it reopens and retention frees space.
            _ if e.is_disk_full() => ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the index cannot write: the disk is full; retention is freeing space, \
                 retry in a few seconds"
                    .into(),
            ),
            _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "index error".into()),
        }
    }
}

/// Runs index work on the blocking pool (sled reads block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A person's text (a hold's reason, a bookmark's note), trimmed: 1 to 500 characters, no
/// control characters (but newlines, where `newlines`). Errors name it as `what`.
fn person_text(raw: &str, what: &str, newlines: bool) -> Result<String, ApiError> {
    let text = raw.trim().to_owned();
    if text.is_empty() || text.chars().count() > 500 {
        return Err(ApiError::bad(format!(
            "{what} must have 1 to 500 characters"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !(newlines && c == '\n'))
    {
        return Err(ApiError::bad(format!("{what} contains control characters")));
    }
    Ok(text)
}

/// A case as `GET /api/cases/{id}` shows it (for `vigil case` working on the index).
pub fn cases_view(c: &crate::index::Case) -> serde_json::Value {
    cases::case_view(c, true)
}

/// A case item as the API shows it.
pub fn case_item_view(it: &crate::index::CaseItem) -> serde_json::Value {
    cases::item_view(it)
}

/// The API described in OpenAPI 3 (kept true by `tests/api.rs`).
async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

async fn health() -> &'static str {
    "ok\n"
}

async fn recordings(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = events::Params::parse(raw, &["camera", "start", "end"])?;
    let camera = q.required("camera")?.to_owned();
    let now = now_us();
    let t0 = match q.one("start")? {
        Some(s) => parse_rfc3339(s).map_err(|e| ApiError::bad(format!("start: {e}")))?,
        None => now - 3_600_000_000,
    };
    let t1 = match q.one("end")? {
        Some(s) => parse_rfc3339(s).map_err(|e| ApiError::bad(format!("end: {e}")))?,
        None => now,
    };
    let index = st.index.clone();
    let r = blocking(move || crate::events::recordings(&index, &camera, t0, t1, now)).await??;
    Ok(Json(r).into_response())
}
