//! `/api/cameras/{name}/zones` (admin): the console's zone and mask editor. `GET` reads
//! the camera's zones and masks from the config file (and the schedules that can arm
//! them); `PUT` rewrites them in the file (`config::edit`: comments and everything else
//! kept), after validating the whole new file as `vigil run` would: the new file is
//! written and synced beside the old one, `config.zones` recorded in the audit log with
//! the file's SHA-256 before and after (what cannot be recorded is not changed), then
//! renamed over the old one; and it hands the new zones to
//! the camera's running analysis (`pipeline::ZoneControl`), which applies them as soon as
//! no event is open, without stopping recording.

use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::Digest;

use super::auth::Principal;
use super::{ApiError, AppState, blocking};
use crate::config::edit::{self, ZoneEdit};

/// What the zone editor needs of the daemon: its config file, one editor at a time, and
/// each analysed camera's control.
pub struct Setup {
    /// The file the daemon was started with.
    pub file: PathBuf,
    pub lock: tokio::sync::Mutex<()>,
    pub controls: std::collections::HashMap<String, crate::pipeline::ZoneControl>,
    /// Each analysed camera's live motion overlay.
    pub overlays: std::collections::HashMap<String, std::sync::Arc<crate::pipeline::MotionOverlay>>,
}

/// `GET /api/cameras/{name}/motion` (WebSocket, admin): the camera's live motion overlay,
/// one text message (JSON, see `Analyser::overlay_json`) per analysed frame while the
/// socket is open. Same-origin check as the live video's.
pub(super) async fn motion(
    State(st): State<AppState>,
    Path(camera): Path<String>,
    headers: axum::http::HeaderMap,
    ws: super::Upgrade,
) -> Result<Response, ApiError> {
    super::alerts::same_origin(&headers)?;
    let ws = ws?;
    let overlay = (st.setup.overlays.get(&camera)).cloned().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no camera {camera:?} with motion analysis"),
        )
    })?;
    let mut shutdown = st.shutdown.clone();
    Ok(ws.on_upgrade(move |mut socket| async move {
        use axum::extract::ws::Message;
        let mut watch = overlay.watch();
        loop {
            tokio::select! {
                changed = watch.rx.changed() => {
                    if changed.is_err() { break; }
                    let json = watch.rx.borrow_and_update().clone();
                    if let Some(j) = json
                        && socket.send(Message::Text(j.as_ref().into())).await.is_err()
                    {
                        break;
                    }
                }
                m = socket.recv() => if !matches!(m, Some(Ok(_))) { break },
                _ = shutdown.cancelled() => break,
            }
        }
    }))
}

fn sha256(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn read(file: &std::path::Path) -> Result<String, ApiError> {
    std::fs::read_to_string(file).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the config file {}: {e}", file.display()),
        )
    })
}

/// `GET /api/cameras/{name}/zones`: `{"zones": [...], "masks": [...], "schedules": [...],
/// "config_sha256": ...}`.
pub(super) async fn get(
    State(st): State<AppState>,
    Path(camera): Path<String>,
) -> Result<Response, ApiError> {
    let setup = st.setup.clone();
    let out = blocking(move || -> Result<serde_json::Value, ApiError> {
        let text = read(&setup.file)?;
        let z = edit::camera_zones(&text, &camera).map_err(edit_error)?;
        let mut v = serde_json::to_value(z).expect("plain data");
        v["config_sha256"] = sha256(&text).into();
        Ok(v)
    })
    .await??;
    Ok(Json(out).into_response())
}

fn edit_error(e: edit::EditError) -> ApiError {
    match e {
        edit::EditError::NoCamera(m) => ApiError(StatusCode::NOT_FOUND, m),
        edit::EditError::Unsupported(m) => ApiError(StatusCode::CONFLICT, m),
    }
}

/// Every field is required: a client that leaves out `masks` does not delete them by
/// accident, nor one without `config_sha256` overwrite a change it never saw.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesRequest {
    zones: Vec<ZoneEdit>,
    masks: Vec<Vec<[f64; 2]>>,
    /// The `config_sha256` the editor read: a file changed since (by another editor or
    /// by hand) is not overwritten (409).
    config_sha256: String,
}

/// `PUT /api/cameras/{name}/zones` with `{"zones": [...], "masks": [...],
/// "config_sha256": ...}`: 400 with the config error (file, line, what) if the new file
/// would not load, 409 if the file changed since it was read, 404 for an unknown camera.
pub(super) async fn put(
    State(st): State<AppState>,
    Path(camera): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let who = req.extensions().get::<Principal>().cloned();
    let who = who.ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "not logged in".into()))?;
    let source = super::auth::source(&req);
    let body = axum::body::to_bytes(req.into_body(), super::MAX_BODY)
        .await
        .map_err(|e| ApiError::bad(format!("body: {e}")))?;
    let ZonesRequest {
        zones,
        masks,
        config_sha256,
    } = serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("body: {e}")))?;
    let setup = st.setup.clone();
    let _one_editor = setup.lock.lock().await;
    let file = setup.file.clone();
    let checked = {
        let (name, file) = (camera.clone(), file.clone());
        let (zones, masks) = (zones.clone(), masks.clone());
        blocking(move || -> Result<_, ApiError> {
            let old = read(&file)?;
            edit::camera_zones(&old, &name).map_err(edit_error)?;
            if config_sha256 != sha256(&old) {
                return Err(ApiError(
                    StatusCode::CONFLICT,
                    "the config file changed since the zones were read: reload them".into(),
                ));
            }
            let new = edit::set_camera_zones(&old, &name, &zones, &masks).map_err(edit_error)?;
            // (The errors' lines and columns would point into text that was never
            // written: the messages alone, which name the zone.)
            let config = crate::config::Config::parse(&file, &new).map_err(|e| {
                let msgs: Vec<&str> = e.0.iter().map(|e| e.message.as_str()).collect();
                ApiError::bad(format!(
                    "the zones are not valid, nothing was written: {}",
                    msgs.join("; ")
                ))
            })?;
            Ok((old, new, config))
        })
        .await?
    };
    let (old, new, config) = match checked {
        Ok(c) => c,
        // An edit refused for what it asked (invalid zones, a stale file) is on record
        // too: who tried to change the site's detection, and why it did not happen.
        Err(e) if e.0 == StatusCode::BAD_REQUEST || e.0 == StatusCode::CONFLICT => {
            let log = st.audit.clone();
            let (user, source) = (who.user.clone(), source.clone());
            let params = serde_json::json!({
                "camera": camera, "status": e.0.as_u16(), "error": e.1,
                "zones": zones.iter().map(|z| z.name.as_str()).collect::<Vec<_>>(),
            });
            blocking(move || log.append(&user, &source, "config.zones.refused", params))
                .await?
                .map_err(|e| tracing::error!("audit log: {e}"))
                .ok();
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let (old_hash, new_hash) = (sha256(&old), sha256(&new));
    let params = serde_json::json!({
        "camera": camera, "config": file.display().to_string(),
        "old_sha256": old_hash, "new_sha256": new_hash,
        "zones": zones.iter().map(|z| z.name.as_str()).collect::<Vec<_>>(),
        "masks": masks.len(),
    });
    // The new file is on disk beside the old one before the change is recorded; it
    // replaces the old one only once it is.
    let prepared = if old == new {
        None
    } else {
        let (f, text) = (file.clone(), new.clone());
        let p = blocking(move || edit::prepare(&f, &text)).await?;
        Some(p.map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "cannot write beside the config file {}: {e}",
                    file.display()
                ),
            )
        })?)
    };
    let log = st.audit.clone();
    let user = who.user.clone();
    blocking(move || log.append(&user, &source, "config.zones", params))
        .await?
        .map_err(|e| {
            tracing::error!("audit log: {e}");
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot be written; the config is not changed".into(),
            )
        })?;
    if let Some(p) = prepared {
        blocking(move || p.commit()).await?.map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot replace the config file {}: {e}", file.display()),
            )
        })?;
    }
    let cam = (config.cameras.iter())
        .find(|c| c.name == camera)
        .expect("set_camera_zones found it");
    let applied = match setup.controls.get(&camera) {
        Some(c) => {
            c.send(crate::pipeline::ZoneUpdate {
                zones: cam.zones.clone(),
                masks: cam.masks.clone(),
                arm: cam.arm.clone(),
            });
            "pending"
        }
        // Motion analysis is off for it: the file is what changes.
        None => "file only",
    };
    tracing::info!(
        camera,
        user = who.user,
        old = old_hash,
        new = new_hash,
        "zones saved"
    );
    let mut v = serde_json::to_value(edit::camera_zones(&new, &camera).expect("just written"))
        .expect("plain data");
    v["config_sha256"] = new_hash.into();
    v["applied"] = applied.into();
    Ok(Json(v).into_response())
}
