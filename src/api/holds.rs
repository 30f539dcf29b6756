//! Legal holds over HTTP: investigators place them, admins release them; retention never
//! deletes held recording (see [`crate::index::Hold`]).
//!
//! - `GET /api/holds[?camera=C]`: the holds, oldest first.
//! - `POST /api/holds` with `{"camera": C, "start": T, "end": T, "reason": R}`, or
//!   `{"event": ID, "reason": R}` for an event's clip window (pre- and post-roll).
//! - `DELETE /api/holds/{id}`: releases one (admin).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Principal;
use super::events::Params;
use super::{ApiError, AppState, blocking};
use crate::base::time::{parse_rfc3339, rfc3339};
use crate::events::{self, Cameras, QueryError};
use crate::index::Hold;

fn view(h: &Hold, cameras: &Cameras) -> serde_json::Value {
    serde_json::json!({
        "id": h.id,
        "camera": cameras.name(h.camera_id),
        "start": rfc3339(h.start_us),
        "end": rfc3339(h.end_us),
        "start_us": h.start_us,
        "end_us": h.end_us,
        "reason": h.reason,
        "user": h.user,
        "created": rfc3339(h.created_us),
    })
}

pub(super) async fn list(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw, &["camera"])?;
    let camera = p.one("camera")?.map(String::from);
    let index = st.index.clone();
    let out = blocking(move || -> Result<_, QueryError> {
        let cameras = Cameras::load(&index)?;
        let only = camera.map(|c| cameras.id(&c)).transpose()?;
        Ok(index
            .holds()?
            .iter()
            .filter(|h| only.is_none_or(|id| h.camera_id == id))
            .map(|h| view(h, &cameras))
            .collect::<Vec<_>>())
    })
    .await??;
    Ok(Json(serde_json::json!({ "holds": out })).into_response())
}

pub(super) async fn create(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HoldRequest {
        camera: Option<String>,
        start: Option<String>,
        end: Option<String>,
        event: Option<u64>,
        reason: String,
    }
    let r: HoldRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("body: {e}")))?;
    let reason = super::person_text(&r.reason, "reason", false)?;
    enum Target {
        Range(String, i64, i64),
        Event(u64),
    }
    let target = match (r.event, r.camera, r.start, r.end) {
        (Some(id), None, None, None) => Target::Event(id),
        (None, Some(c), Some(s), Some(e)) => {
            let t0 = parse_rfc3339(&s).map_err(|e| ApiError::bad(format!("start: {e}")))?;
            let t1 = parse_rfc3339(&e).map_err(|e| ApiError::bad(format!("end: {e}")))?;
            events::check_range(t0, t1)?;
            Target::Range(c, t0, t1)
        }
        _ => {
            return Err(ApiError::bad(
                "give either camera, start and end, or event (and a reason)",
            ));
        }
    };
    let index = st.index.clone();
    let now = crate::base::time::now_us();
    let hold = blocking(move || -> Result<_, QueryError> {
        let cameras = Cameras::load(&index)?;
        let (camera_id, t0, t1) = match target {
            Target::Range(c, t0, t1) => (cameras.id(&c)?, t0, t1),
            Target::Event(id) => {
                let e = index
                    .event(id)?
                    .ok_or_else(|| QueryError::NotFound(format!("no event {id}")))?;
                (e.camera_id, e.clip_start_us, e.clip_end_us)
            }
        };
        let h = index.add_hold(camera_id, t0, t1, &reason, &who.user, now)?;
        Ok(view(&h, &cameras))
    })
    .await??;
    tracing::info!(user = %hold["user"], "legal hold {} placed", hold["id"]);
    Ok((StatusCode::CREATED, Json(hold)).into_response())
}

pub(super) async fn release(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("hold id must be a number, not {id:?}")))?;
    let index = st.index.clone();
    let released = blocking(move || -> Result<_, QueryError> {
        let cameras = Cameras::load(&index)?;
        Ok(index.release_hold(id)?.map(|h| view(&h, &cameras)))
    })
    .await??;
    match released {
        Some(h) => Ok(Json(h).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no hold {id}"))),
    }
}
