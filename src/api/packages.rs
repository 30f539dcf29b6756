//! Evidence packages on the recorder, over HTTP (investigator role): the packages a case
//! was exported as (`POST /api/cases/{id}/export` writes them under
//! `<storage>/evidence.packages/`), and each one downloaded as a ZIP.
//!
//! - `GET /api/cases/{id}/packages`: `{"packages": [{"name", "package_id", "created",
//!   "files", "bytes", "custody_records"}]}`, oldest first. Audited as `case.packages`.
//! - `GET /api/cases/{id}/packages/{name}.zip`: the package as one ZIP (stored, ZIP64;
//!   [`crate::evidence::package::zip_dir`]), after a signed `downloaded` record (who,
//!   their role, from where) is appended to its chain of custody, so the copy carries
//!   its own hand-over. Audited as `case.package.download` with the record's `seq`.
//!   404 for a name that is not one of the case's packages; 409 without signing keys.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::Principal;
use super::{ApiError, AppState, AuditResult, blocking};
use crate::base::time::now_us;
use crate::evidence::{keys, package};

/// The case's package folders (`case<ID>-<UTC>`), oldest first.
fn folders(root: &std::path::Path, id: u64) -> Vec<String> {
    let prefix = format!("case{id}-");
    let mut names: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

fn case_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad(format!("case id must be a number, not {raw:?}")))
}

pub(super) async fn list(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = case_id(&id)?;
    let (index, root) = (st.index.clone(), st.storage.evidence_packages());
    let out = blocking(move || -> Result<_, ApiError> {
        crate::evidence::cases::get(&index, id)?;
        let mut out = Vec::new();
        for name in folders(&root, id) {
            let dir = root.join(&name);
            let manifest: serde_json::Value = std::fs::read(dir.join("case.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let mut files = Vec::new();
            let _ = package::walk(&dir, &dir, &mut files);
            let bytes: u64 = files
                .iter()
                .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
                .map(|m| m.len())
                .sum();
            let custody =
                std::fs::read_to_string(dir.join("custody.jsonl")).map_or(0, |t| t.lines().count());
            out.push(serde_json::json!({
                "name": name, "package_id": manifest["package_id"], "created": manifest["created"],
                "files": files.len(), "bytes": bytes, "custody_records": custody,
            }));
        }
        Ok(out)
    })
    .await??;
    Ok(Json(serde_json::json!({ "packages": out })).into_response())
}

pub(super) async fn download(
    State(st): State<AppState>,
    axum::Extension(who): axum::Extension<Principal>,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = case_id(&id)?;
    let name = file
        .strip_suffix(".zip")
        .ok_or_else(|| ApiError::bad("ask for the package as NAME.zip"))?
        .to_owned();
    let (storage, source) = (st.storage.clone(), who.user.clone());
    let role = format!("{:?}", who.role).to_lowercase();
    let (zip, seq, bytes) = blocking(move || -> Result<_, ApiError> {
        let root = storage.evidence_packages();
        if !folders(&root, id).contains(&name) {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("case {id} has no package {name:?}"),
            ));
        }
        let dir = root.join(&name);
        let keys = keys::load(&storage.signing_keys())
            .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
        let rec = serde_json::json!({
            "action": "downloaded", "by": source, "role": role,
            "note": "copied as a ZIP through the recorder's API",
        });
        let seq = package::append_custody(&dir, rec, &keys, now_us())
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        // Made in a private file beside the packages (same disk), opened, then unlinked:
        // it lives as long as the response reads it.
        let tmp = root.join(format!(".download-{}.zip", package::package_id()));
        let made = package::zip_dir(&dir, &tmp);
        let opened = made.and_then(|()| {
            std::fs::File::open(&tmp).map_err(|err| package::PackageError::Io {
                path: tmp.clone(),
                err,
            })
        });
        let _ = std::fs::remove_file(&tmp);
        let f = opened.map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
        Ok((f, seq, bytes))
    })
    .await??;
    let stream = chunks(tokio::fs::File::from_std(zip));
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, "application/zip".parse().unwrap());
    h.insert(header::CONTENT_LENGTH, bytes.into());
    if let Ok(v) = format!("attachment; filename=\"{file}\"").parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp.extensions_mut().insert(AuditResult(
        serde_json::json!({ "package": file, "custody_seq": seq, "bytes": bytes }),
    ));
    Ok(resp)
}

/// A file's bytes as a stream of 1 MiB chunks.
fn chunks(f: tokio::fs::File) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(Some(f), |f| async move {
        use tokio::io::AsyncReadExt;
        let mut f = f?;
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
