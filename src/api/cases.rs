//! Cases over HTTP (investigator role; see [`crate::evidence::cases`]). Every request is
//! audited: `cases.list`, `case.view`, `case.create`, `case.update`, `case.item.add`,
//! `case.item.remove` (with the request's body and status).
//!
//! - `GET /api/cases`: every case (without items: `items` counts them), oldest first.
//! - `POST /api/cases` with `{"title": T, "reference": R?, "requester": Q?,
//!   "legal_basis": L?, "notes": N?}`: 201 and the case.
//! - `GET /api/cases/{id}`: the case with its items.
//! - `PATCH /api/cases/{id}` with any of those fields: the changed case.
//! - `POST /api/cases/{id}/items` with `{"kind": "range", "cameras": [C...], "start": T,
//!   "end": T}`, `{"kind": "event", "event_id": N}`, `{"kind": "bookmark",
//!   "bookmark_id": N}` or `{"kind": "search", "cameras": [C...], "polygon": [[x, y]...],
//!   "start": T, "end": T}`, each with an optional `"note"`: 201, the item (with its
//!   holds, one per camera) and the case.
//! - `DELETE /api/cases/{id}/items/{n}`: the item removed (its holds stay).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::auth::Principal;
use super::{ApiError, AppState, blocking};
use crate::base::time::{now_us, parse_rfc3339, rfc3339};
use crate::events::QueryError;
use crate::evidence::cases::{self, CaseFields, ItemRequest};
use crate::index::{Case, CaseItem};

/// An item as the API shows it: its stored form with RFC 3339 times.
pub(crate) fn item_view(it: &CaseItem) -> serde_json::Value {
    let mut v = serde_json::to_value(it).expect("plain data");
    v["start"] = rfc3339(it.start_us).into();
    v["end"] = rfc3339(it.end_us).into();
    v["added"] = rfc3339(it.added_us).into();
    v
}

/// A case as the API shows it (with its items, or only their count).
pub(crate) fn case_view(c: &Case, items: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(c).expect("plain data");
    v["created"] = rfc3339(c.created_us).into();
    v["updated"] = rfc3339(c.updated_us).into();
    v["items"] = if items {
        c.items.iter().map(item_view).collect::<Vec<_>>().into()
    } else {
        c.items.len().into()
    };
    v
}

fn id_of(raw: &str, what: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad(format!("{what} must be a number, not {raw:?}")))
}

fn body<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("body: {e}")))
}

pub(super) async fn list(State(st): State<AppState>) -> Result<Response, ApiError> {
    let index = st.index.clone();
    let all = blocking(move || index.cases()).await??;
    let out: Vec<_> = all.iter().map(|c| case_view(c, false)).collect();
    Ok(Json(serde_json::json!({ "cases": out })).into_response())
}

pub(super) async fn create(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    b: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let f: CaseFields = body(&b)?;
    let index = st.index.clone();
    let c = blocking(move || cases::create(&index, &f, &who.user, now_us())).await??;
    tracing::info!(user = c.created_by, "case {} opened", c.id);
    Ok((StatusCode::CREATED, Json(case_view(&c, true))).into_response())
}

pub(super) async fn one(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "case id")?;
    let index = st.index.clone();
    let c = blocking(move || cases::get(&index, id)).await??;
    Ok(Json(case_view(&c, true)).into_response())
}

pub(super) async fn update(
    State(st): State<AppState>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "case id")?;
    let f: CaseFields = body(&b)?;
    let index = st.index.clone();
    let c = blocking(move || cases::change(&index, id, &f, now_us())).await??;
    Ok(Json(case_view(&c, true)).into_response())
}

/// An item request with RFC 3339 `start`/`end` (turned into µs for the library).
fn item_request(b: &[u8]) -> Result<ItemRequest, ApiError> {
    let mut v: serde_json::Value = body(b)?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ApiError::bad("body: a JSON object"))?;
    for (from, to) in [("start", "start_us"), ("end", "end_us")] {
        if let Some(t) = obj.remove(from) {
            let s = t
                .as_str()
                .ok_or_else(|| ApiError::bad(format!("{from}: an RFC 3339 time")))?;
            let us = parse_rfc3339(s).map_err(|e| ApiError::bad(format!("{from}: {e}")))?;
            obj.insert(to.into(), us.into());
        }
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad(format!("body: {e}")))
}

pub(super) async fn add_item(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(id): Path<String>,
    b: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "case id")?;
    let req = item_request(&b)?;
    let index = st.index.clone();
    let (c, it) =
        blocking(move || cases::add_item(&index, id, &req, &who.user, now_us())).await??;
    tracing::info!("case {id}: item {} added, holds {:?}", it.n, it.holds);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "item": item_view(&it), "case": case_view(&c, true) })),
    )
        .into_response())
}

pub(super) async fn remove_item(
    State(st): State<AppState>,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = id_of(&id, "case id")?;
    let n: u32 = n
        .parse()
        .map_err(|_| ApiError::bad(format!("item must be a number, not {n:?}")))?;
    let index = st.index.clone();
    let (c, it) =
        blocking(move || -> Result<_, QueryError> { cases::remove_item(&index, id, n, now_us()) })
            .await??;
    Ok(
        Json(serde_json::json!({ "item": item_view(&it), "case": case_view(&c, true) }))
            .into_response(),
    )
}

/// `POST /api/cases/{id}/export`: the case as an evidence package, written under
/// `<storage>/evidence.packages/case<ID>-<UTC>/` (signed with the site's keys): 201 with
/// `package_id`, `name`, `dir`, `files`, `media_bytes`, `manifest_sha256` and `download`
/// (its ZIP's URL, [`super::packages`]). 409 without keys (`vigil keys init`) or items.
/// The audit record's `result` has the package's id, name and manifest hash.
pub(super) async fn export(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    use crate::evidence::{keys, package};
    let id = id_of(&id, "case id")?;
    let (index, storage, audit, file) = (
        st.index.clone(),
        st.storage.clone(),
        st.audit.clone(),
        st.setup.file.clone(),
    );
    let out = blocking(move || -> Result<_, ApiError> {
        let keys = keys::load(&storage.signing_keys())
            .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
        let case = cases::get(&index, id)?;
        let urls: Vec<(String, String)> = crate::config::Config::load(&file)
            .map(|c| {
                c.cameras
                    .iter()
                    .map(|c| (c.name.clone(), c.url.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let now = now_us();
        // To the millisecond (a second export within the same second gets its own).
        let dir = storage.evidence_packages().join(format!(
            "case{id}-{}{:03}Z",
            rfc3339(now)
                .split('.')
                .next()
                .unwrap_or("")
                .trim_end_matches('Z')
                .replace(':', ""),
            now.rem_euclid(1_000_000) / 1000
        ));
        let role = format!("{:?}", who.role).to_lowercase();
        let exporter = package::Exporter {
            user: &who.user,
            role: &role,
            recorder: &host,
            host: &host,
            camera_urls: &urls,
        };
        package::export(
            &package::Recorder {
                index: &index,
                storage: &storage,
                audit: &audit,
                keys: &keys,
            },
            &case,
            &exporter,
            &dir,
            now,
        )
        .map_err(|e| match e {
            package::PackageError::Query(q) => ApiError::from(q),
            package::PackageError::Refused(m) => ApiError(StatusCode::CONFLICT, m),
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })
    })
    .await??;
    tracing::info!(
        "case {id} exported as package {} to {}",
        out.package_id,
        out.dir.display()
    );
    let name = out
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut resp = (
        StatusCode::CREATED,
        Json(serde_json::json!({
            "package_id": out.package_id, "name": name, "dir": out.dir.display().to_string(), "files": out.files,
            "media_bytes": out.media_bytes, "manifest_sha256": out.manifest_sha256,
            "download": format!("/api/cases/{id}/packages/{name}.zip"),
        })),
    )
        .into_response();
    resp.extensions_mut()
        .insert(super::AuditResult(serde_json::json!({
            "package_id": out.package_id, "name": name, "manifest_sha256": out.manifest_sha256,
        })));
    Ok(resp)
}
