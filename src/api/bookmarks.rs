//! Bookmarks over HTTP (investigator role): an instant or a range of a camera's recording
//! marked with a note, listed and searched (see [`crate::index::Bookmark`]). Setting and
//! deleting are audited (`bookmark.create`, `bookmark.delete`), as is listing
//! (`bookmarks.list`).
//!
//! - `GET /api/bookmarks?start=T&end=T[&camera=C][&q=TEXT]`: the bookmarks overlapping
//!   [start, end), of any of the cameras given, whose note contains `q` (case-insensitive),
//!   in time order.
//! - `POST /api/bookmarks` with `{"camera": C, "start": T, "end": T?, "note": N}` (no end:
//!   an instant): 201 and the bookmark.
//! - `DELETE /api/bookmarks/{id}`: by its author, or an admin.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Principal;
use super::events::Params;
use super::{ApiError, AppState, blocking};
use crate::auth::Role;
use crate::base::time::{parse_rfc3339, rfc3339};
use crate::events::{self, Cameras, QueryError};
use crate::index::Bookmark;

fn view(b: &Bookmark, cameras: &Cameras) -> serde_json::Value {
    serde_json::json!({
        "id": b.id,
        "camera": cameras.name(b.camera_id),
        "start": rfc3339(b.start_us),
        "end": rfc3339(b.end_us),
        "start_us": b.start_us,
        "end_us": b.end_us,
        "note": b.note,
        "user": b.user,
        "created": rfc3339(b.created_us),
    })
}

pub(super) async fn list(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw, &["start", "end", "camera", "q"])?;
    let (t0, t1) = (p.time("start")?, p.time("end")?);
    events::check_range(t0, t1)?;
    let names = p.all("camera")?;
    let q = p.one("q")?.map(str::to_lowercase);
    let index = st.index.clone();
    let out = blocking(move || -> Result<_, QueryError> {
        let cameras = Cameras::load(&index)?;
        let only = (names.iter())
            .map(|c| cameras.id(c))
            .collect::<Result<Vec<u32>, _>>()?;
        let mut found: Vec<Bookmark> = (index.bookmarks()?.into_iter())
            .filter(|b| only.is_empty() || only.contains(&b.camera_id))
            // An instant at t0 is in [t0, t1); a range overlaps it.
            .filter(|b| b.start_us < t1 && (b.end_us > t0 || b.start_us >= t0))
            .filter(|b| q.as_ref().is_none_or(|q| b.note.to_lowercase().contains(q)))
            .collect();
        found.sort_by_key(|b| (b.start_us, b.id));
        Ok(found.iter().map(|b| view(b, &cameras)).collect::<Vec<_>>())
    })
    .await??;
    Ok(Json(serde_json::json!({ "bookmarks": out })).into_response())
}

pub(super) async fn create(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BookmarkRequest {
        camera: String,
        start: String,
        end: Option<String>,
        note: String,
    }
    let r: BookmarkRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("body: {e}")))?;
    let note = super::person_text(&r.note, "note", true)?;
    let t0 = parse_rfc3339(&r.start).map_err(|e| ApiError::bad(format!("start: {e}")))?;
    let t1 = match &r.end {
        Some(e) => {
            let t1 = parse_rfc3339(e).map_err(|e| ApiError::bad(format!("end: {e}")))?;
            events::check_range(t0, t1)?;
            t1
        }
        None => t0,
    };
    let index = st.index.clone();
    let now = crate::base::time::now_us();
    let b = blocking(move || -> Result<_, QueryError> {
        let cameras = Cameras::load(&index)?;
        let b = index.add_bookmark(Bookmark {
            id: 0,
            camera_id: cameras.id(&r.camera)?,
            start_us: t0,
            end_us: t1,
            note,
            user: who.user,
            created_us: now,
        })?;
        Ok(view(&b, &cameras))
    })
    .await??;
    Ok((StatusCode::CREATED, Json(b)).into_response())
}

pub(super) async fn delete(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("bookmark id must be a number, not {id:?}")))?;
    let index = st.index.clone();
    let deleted = blocking(move || -> Result<_, ApiError> {
        let cameras = Cameras::load(&index).map_err(ApiError::from)?;
        let Some(b) =
            (index.bookmarks().map_err(QueryError::from)?.into_iter()).find(|b| b.id == id)
        else {
            return Ok(None);
        };
        if b.user != who.user && who.role < Role::Admin {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "bookmark {id} is {}'s: only its author or an admin may delete it",
                    b.user
                ),
            ));
        }
        let gone = index.delete_bookmark(id).map_err(QueryError::from)?;
        Ok(gone.map(|b| view(&b, &cameras)))
    })
    .await??;
    match deleted {
        Some(b) => Ok(Json(b).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no bookmark {id}"))),
    }
}
