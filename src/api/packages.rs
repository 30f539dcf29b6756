//! Evidence packages on the recorder, over HTTP (investigator role): the packages a case
//! was exported as (`POST /api/cases/{id}/export` writes them under
//! `<storage>/evidence.packages/`), and each one downloaded as a ZIP.
//!
//! - `GET /api/cases/{id}/packages`: `{"packages": [{"name", "package_id", "created",
//!   "files", "bytes", "custody_records"}]}`, oldest first. Audited as `case.packages`.
//! - `GET /api/cases/{id}/packages/{name}.zip`: the package as one ZIP (stored, ZIP64;
//!   [`crate::evidence::package::zip_dir`]), after a signed `copied` record (who, their
//!   role) is appended to its chain of custody, so the copy carries its own hand-over;
//!   record and copy are made under the chain's lock. Audited as
//!   `case.package.download` with the package id, the record's `seq` and SHA-256. `HEAD`
//!   is refused (405): it copies and records nothing. 404 for a name that is not one of the case's
//!   packages; 409 without signing keys.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::Principal;
use super::{ApiError, AppState, AuditResult, blocking};
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
    method: axum::http::Method,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = case_id(&id)?;
    let name = file
        .strip_suffix(".zip")
        .ok_or_else(|| ApiError::bad("ask for the package as NAME.zip"))?
        .to_owned();
    let (storage, source) = (st.storage.clone(), who.user.clone());
    let role = format!("{:?}", who.role).to_lowercase();
    let head = method == axum::http::Method::HEAD;
    let (zip, record, bytes) = blocking(move || -> Result<_, ApiError> {
        let root = storage.evidence_packages();
        if !folders(&root, id).contains(&name) {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("case {id} has no package {name:?}"),
            ));
        }
        if head {
            // Its size is only known once the copy is made, which is a hand-over.
            return Err(ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "HEAD is not offered: the size of a package's ZIP is known once a copy is \
                 made, which is recorded in its chain of custody; GET it"
                    .into(),
            ));
        }
        let dir = root.join(&name);
        let keys = keys::load(&storage.signing_keys())
            .map_err(|e| ApiError(StatusCode::CONFLICT, e.to_string()))?;
        let failed =
            |e: package::PackageError| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        // The record and the copy under the chain's lock: concurrent downloads (and
        // `vigil evidence custody`) append one after another, and each ZIP holds whole
        // records. The record says a copy was sent; the recorder cannot know whether
        // the transfer completed.
        let mut lock = package::CustodyLock::acquire(&dir).map_err(failed)?;
        let rec = serde_json::json!({
            "action": "copied", "by": source, "role": role,
            "note": "a copy sent as a ZIP through the recorder's API",
        });
        let (seq, line_sha) = lock.append(rec, &keys).map_err(failed)?;
        // Made in a private file beside the packages (same disk), opened, then unlinked:
        // it lives as long as the response reads it.
        let tmp = root.join(format!(".download-{}.zip", package::package_id()));
        let made = package::zip_dir(&dir, &tmp);
        drop(lock);
        let opened = made.and_then(|()| {
            std::fs::File::open(&tmp).map_err(|err| package::PackageError::Io {
                path: tmp.clone(),
                err,
            })
        });
        let _ = std::fs::remove_file(&tmp);
        let f = opened.map_err(failed)?;
        let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
        let package_id = package::package_id_of(&dir);
        Ok((Some(f), Some((seq, line_sha, package_id)), bytes))
    })
    .await??;
    let mut resp = match zip {
        Some(zip) => Response::new(Body::from_stream(chunks(tokio::fs::File::from_std(zip)))),
        None => Response::new(Body::empty()),
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, "application/zip".parse().unwrap());
    if !head {
        h.insert(header::CONTENT_LENGTH, bytes.into());
    }
    if let Ok(v) = format!("attachment; filename=\"{file}\"").parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some((seq, line_sha, package_id)) = record {
        resp.extensions_mut().insert(AuditResult(serde_json::json!({
            "package": file, "package_id": package_id, "custody_seq": seq,
            "custody_record_sha256": line_sha, "bytes": bytes,
        })));
    }
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
