//! The console: the web pages people use (live wall, review, search, setup, audit),
//! served from assets embedded in the binary (`src/api/console/`: plain ES modules, no
//! build step, no CDN), same origin as the API they call.
//!
//! `GET /` gives the console's page to a logged-in user (a redirect to `/login`
//! otherwise); `GET /console/{file}` gives its scripts and style sheet to anyone (they
//! hold no data: every datum comes from the API, behind the role that may see it).

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::ApiError;
use super::auth::Principal;

/// The console's files: (name, content type, bytes).
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("console/console.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/app.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/live.js"),
    ),
    (
        "setup.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/setup.js"),
    ),
    (
        "status.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/status.js"),
    ),
    (
        "timeline.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/timeline.js"),
    ),
    (
        "player.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/player.js"),
    ),
    (
        "review.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/review.js"),
    ),
    (
        "audit.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/audit.js"),
    ),
    (
        "search.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/search.js"),
    ),
];

/// The page itself (also counted in the console's size).
pub const PAGE: &str = include_str!("console/index.html");

/// `GET /`: the console for a logged-in user, otherwise a redirect to the login page.
pub(super) async fn page(req: axum::extract::Request) -> Response {
    if req.extensions().get::<Principal>().is_none() {
        return Redirect::to("/login").into_response();
    }
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response()
}

/// `GET /console/{file}`: one of [`ASSETS`], revalidated by its ETag (a hash of its
/// bytes) so that a new binary's console is never mixed with a cached old one.
pub(super) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(&(_, kind, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == file) else {
        return ApiError(StatusCode::NOT_FOUND, format!("no console file {file:?}"))
            .into_response();
    };
    let etag = etag(bytes);
    if (headers.get(header::IF_NONE_MATCH)).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response()
}

fn etag(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode(&sha2::Sha256::digest(bytes)[..12]))
}
