//! Auditing the API: a middleware that appends one record per audited request (searches,
//! views of events, thumbnails, clips and live video, timelines, the audit itself) to the hash-chained
//! [`crate::audit::AuditLog`], and `GET /api/audit` to read it.
//!
//! A player fetches a clip as many byte ranges: only the request for the whole clip or
//! its first bytes is recorded. Requests refused for want of credentials (401) are not
//! recorded (logins and bad tokens are, by [`super::auth`]); refusals for want of a role
//! or a CSRF token (403) are, on any route, as `access.denied` (with what was `tried`
//! when the route is audited). A clip fetched with `purpose=export` (the console's
//! Export) is `clip.export`, not `clip.view`.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Principal;
use super::events::Params;
use super::{ApiError, AppState, blocking};

/// The audit action of a request, if it is audited.
fn action(method: &str, path: &str) -> Option<&'static str> {
    let p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match (method, p.as_slice()) {
        ("GET", ["api", "events"]) => "events.search",
        ("GET", ["api", "events", "counts"]) => "events.count",
        ("GET", ["api", "events", _]) => "event.view",
        ("GET", ["api", "events", _, "thumbnail.jpg"]) => "event.thumbnail",
        ("GET", ["api", "events", _, "clip.mp4"]) => "clip.view",
        ("GET", ["api", "clips", _]) => "clip.view",
        ("GET", ["api", "timeline"]) => "timeline.view",
        ("GET", ["api", "timeline", "strip"]) => "timeline.view",
        ("GET", ["api", "cameras", _, "live"]) => "live.view",
        ("GET", ["api", "cameras", _, "frame.jpg"]) => "frame.view",
        ("GET", ["api", "cameras", _, "motion"]) => "motion.view",
        ("GET", ["api", "activity"]) => "activity.view",
        ("GET", ["api", "recordings"]) => "recordings.list",
        ("POST", ["api", "search", "region"]) => "search.region",
        ("POST", ["api", "events", _, "ack"]) => "alert.ack",
        ("GET", ["api", "audit"]) => "audit.view",
        ("GET", ["api", "audit", "verify"]) => "audit.verify",
        ("GET", ["api", "users"]) => "users.view",
        ("GET", ["api", "holds"]) => "holds.list",
        ("POST", ["api", "holds"]) => "hold.create",
        ("DELETE", ["api", "holds", _]) => "hold.release",
        ("GET", ["api", "bookmarks"]) => "bookmarks.list",
        ("POST", ["api", "bookmarks"]) => "bookmark.create",
        ("DELETE", ["api", "bookmarks", _]) => "bookmark.delete",
        ("GET", ["api", "cases"]) => "cases.list",
        ("POST", ["api", "cases"]) => "case.create",
        ("GET", ["api", "cases", _]) => "case.view",
        ("PATCH", ["api", "cases", _]) => "case.update",
        ("POST", ["api", "cases", _, "items"]) => "case.item.add",
        ("DELETE", ["api", "cases", _, "items", _]) => "case.item.remove",
        ("POST", ["api", "cases", _, "export"]) => "case.export",
        ("GET", ["api", "cases", _, "packages"]) => "case.packages",
        ("GET", ["api", "storage", "verify"]) => "storage.verify",
        ("GET", ["api", "cases", _, "packages", _]) => "case.package.download",
        _ => return None,
    })
}

pub(super) async fn middleware(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let Some(user) = req.extensions().get::<Principal>().map(|p| p.user.clone()) else {
        return next.run(req).await;
    };
    let Some(action) = action(&method, &path) else {
        let source = super::auth::source(&req);
        let resp = next.run(req).await;
        if resp.status() == axum::http::StatusCode::FORBIDDEN {
            let params = serde_json::json!({ "method": method, "path": path, "status": 403 });
            super::auth::audit(&st, &user, &source, "access.denied", params).await;
        }
        return resp;
    };
    let partial = req
        .headers()
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| !r.trim().starts_with("bytes=0-"));
    let source = super::auth::source(&req);
    let query: serde_json::Map<String, serde_json::Value> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
            .collect();
    // A POST's or PATCH's (small, JSON) body is part of what was asked.
    let (req, body) = if method == "POST" || method == "PATCH" {
        let (parts, b) = req.into_parts();
        let bytes = axum::body::to_bytes(b, 64 * 1024).await.unwrap_or_default();
        let body = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        (Request::from_parts(parts, Body::from(bytes)), body)
    } else {
        (req, None)
    };
    let resp = next.run(req).await;
    if partial {
        return resp;
    }
    let status = resp.status();
    let mut params = serde_json::json!({
        "path": path,
        "query": query,
        "body": body,
        "status": status.as_u16(),
    });
    if let Some(r) = resp.extensions().get::<super::AuditResult>() {
        params["result"] = r.0.clone();
    }
    // Refused for want of a role (or a CSRF token): on record as such, whatever was
    // tried, so that one filter finds every refusal.
    let action = if status == axum::http::StatusCode::FORBIDDEN {
        params["method"] = method.into();
        params["tried"] = action.into();
        "access.denied"
    } else if action == "clip.view" && params["query"]["purpose"] == "export" {
        // The console's Export downloads the clip to keep it, not to watch it.
        "clip.export"
    } else {
        action
    };
    let log = st.audit.clone();
    // Fail closed: what cannot be recorded is not shown.
    match blocking(move || log.append(&user, &source, action, params)).await {
        Ok(Ok(_)) => resp,
        Ok(Err(e)) => {
            tracing::error!("audit log: {e}");
            ApiError(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot be written; nothing is shown until it can".into(),
            )
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /api/audit?start=&end=[&user=][&action=][&order=asc|desc][&limit=]`: records in
/// the range by any of the users and any of the actions given (all if none), oldest
/// first (or newest first), at most `limit` (default 1000).
pub(super) async fn list(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw, &["start", "end", "user", "action", "order", "limit"])?;
    let (t0, t1) = (p.time("start")?, p.time("end")?);
    crate::events::check_range(t0, t1)?;
    let limit: usize = p.parsed("limit", "a whole number")?.unwrap_or(1000);
    let (users, actions) = (p.all("user")?, p.all("action")?);
    let order: crate::events::Order = p.one("order")?.unwrap_or("asc").parse()?;
    let log = st.audit.clone();
    let records = blocking(move || log.records())
        .await?
        .map_err(|e| ApiError(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut out: Vec<_> = records
        .into_iter()
        .filter(|r| crate::base::time::parse_rfc3339(&r.time).is_ok_and(|t| t >= t0 && t < t1))
        .filter(|r| users.is_empty() || users.contains(&r.user))
        .filter(|r| actions.is_empty() || actions.contains(&r.action))
        .collect();
    if order == crate::events::Order::Desc {
        out.reverse();
    }
    out.truncate(limit);
    Ok(Json(serde_json::json!({ "records": out })).into_response())
}

/// `GET /api/audit/verify`: the whole log's hash chain checked (each record's `prev` is
/// the SHA-256 of the line before; the head file matches the last line):
/// `{"records": n, "intact": bool, "problems": ["line 7: ...", ...]}`.
pub(super) async fn verify(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(raw, &[])?;
    let log = st.audit.clone();
    let (n, problems) = blocking(move || log.verify())
        .await?
        .map_err(|e| ApiError(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(serde_json::json!({
        "records": n, "intact": problems.is_empty(), "problems": problems,
    }))
    .into_response())
}
