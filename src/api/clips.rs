//! `/api/cameras/{name}/frame.jpg?t=`: a recorded still. `/api/clips/{camera}.mp4?start=&end=`
//! and `/api/events/{id}/clip.mp4`: clips streamed
//! from a [`ClipPlan`], with `Content-Length`, `ETag` (`If-None-Match` gives 304) and
//! single byte ranges (`Range: bytes=a-b`, `a-`, `-n`; 206 or 416).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::events::Params;
use super::{ApiError, AppState, blocking};
use crate::events::{self, QueryError};
use crate::export::{self, ClipPlan};

/// `GET /api/clips/{camera}.mp4?start=&end=`
pub(super) async fn clip(
    State(st): State<AppState>,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let camera = file
        .strip_suffix(".mp4")
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                "clips are /api/clips/{camera}.mp4".into(),
            )
        })?
        .to_owned();
    // (`purpose=export`: audited as an export, see `api::audit`.)
    let p = Params::parse(raw, &["start", "end", "purpose"])?;
    if let Some(v) = p.one("purpose")?.filter(|v| *v != "export") {
        return Err(ApiError::bad(format!("purpose must be export, not {v:?}")));
    }
    let (t0, t1) = (p.time("start")?, p.time("end")?);
    let index = st.index.clone();
    let storage = st.storage.clone();
    let name = camera.clone();
    let plan = blocking(move || -> Result<ClipPlan, ApiError> {
        let id = events::Cameras::load(&index)?.id(&name)?;
        Ok(export::plan(&index, &storage, id, t0, t1)?)
    })
    .await??;
    Ok(serve(
        plan,
        &headers,
        &format!("{camera}-{}.mp4", file_time(t0)),
        method == Method::HEAD,
    ))
}

/// `GET /api/cameras/{name}/frame.jpg?t=RFC3339[&width=N]`: the recorded picture on
/// screen at `t` (decoded from the recording; `width` 32..=1920, default 320).
pub(super) async fn frame(
    State(st): State<AppState>,
    Path(camera): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw, &["t", "width"])?;
    let t = p.time("t")?;
    let width: u32 = p.parsed("width", "a number of pixels")?.unwrap_or(320);
    if !(32..=1920).contains(&width) {
        return Err(ApiError::bad(format!(
            "width must be 32..=1920, not {width}"
        )));
    }
    let index = st.index.clone();
    let storage = st.storage.clone();
    let jpeg = blocking(move || -> Result<Vec<u8>, ApiError> {
        let id = events::Cameras::load(&index)?.id(&camera)?;
        Ok(export::still_jpeg(&index, &storage, id, t, width)?)
    })
    .await??;
    // A picture of the last minutes may come from a segment still being written (the
    // picture at `t` not committed yet, an earlier one shown): not kept by the browser.
    let recent = t > crate::base::time::now_us() - 10 * 60 * 1_000_000;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (
                header::CACHE_CONTROL,
                if recent {
                    "private, no-cache"
                } else {
                    "private, max-age=3600"
                },
            ),
        ],
        jpeg,
    )
        .into_response())
}

/// `GET /api/events/{id}/clip.mp4`: the event with its pre- and post-roll.
pub(super) async fn event_clip(
    State(st): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("event id must be a number, not {id:?}")))?;
    let index = st.index.clone();
    let storage = st.storage.clone();
    let (plan, camera) = blocking(move || -> Result<(ClipPlan, String), ApiError> {
        let ev = index
            .event(id)?
            .ok_or_else(|| QueryError::NotFound(format!("no event {id}")))?;
        // Asked for just after the event closed (an operator following its end alert),
        // the post-roll may still be on its way to the index (committed every
        // commit_interval_ms): wait for the recording to reach it, a few seconds at most.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
        while std::time::Instant::now() < deadline {
            let segs =
                index.segments_overlapping(ev.camera_id, ev.clip_start_us, ev.clip_end_us)?;
            match segs.last() {
                Some(s) if s.is_open() && s.end_us < ev.clip_end_us => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                _ => break,
            }
        }
        let camera = events::Cameras::load(&index)?.name(ev.camera_id);
        let plan = export::plan(
            &index,
            &storage,
            ev.camera_id,
            ev.clip_start_us,
            ev.clip_end_us,
        )
        .map_err(|e| match e {
            QueryError::NotFound(_) => ApiError(
                StatusCode::NOT_FOUND,
                format!("the video of event {id} is no longer recorded (retention)"),
            ),
            e => e.into(),
        })?;
        Ok((plan, camera))
    })
    .await??;
    Ok(serve(
        plan,
        &headers,
        &format!("{camera}-event-{id}.mp4"),
        method == Method::HEAD,
    ))
}

fn file_time(us: i64) -> String {
    crate::base::time::rfc3339(us).replace([':', '-'], "")
}

/// A byte range request: `Ok(None)` for the whole body, `Err(())` if unsatisfiable.
fn range(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.strip_prefix("bytes=") else {
        return Ok(None); // another unit: ignore, as RFC 9110 allows
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: send the whole body
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (from, to) = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len)
        }
        (false, _) => {
            let from: u64 = a.parse().map_err(|_| ())?;
            let to = if b.is_empty() {
                len
            } else {
                let last: u64 = b.parse().map_err(|_| ())?;
                if last < from {
                    return Err(());
                }
                (last + 1).min(len)
            };
            (from, to)
        }
        (true, true) => return Err(()),
    };
    if from >= len {
        return Err(());
    }
    Ok(Some((from, to)))
}

/// How long a clip response waits for a client that reads nothing.
const CLIENT_STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// The response for a plan: its bytes (or a range of them), or for `HEAD` only the
/// headers (nothing is read).
fn serve(plan: ClipPlan, headers: &HeaderMap, filename: &str, head: bool) -> Response {
    let len = plan.len;
    let etag = plan.etag.clone();
    let gaps = gaps_header(&plan.gaps);
    let (first, last) = (plan.start_us, plan.start_us + plan.duration_us);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let (status, from, to) = match range(headers, len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Err(()) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                axum::Json(serde_json::json!({
                    "error": format!("the Range header asks for bytes this {len}-byte clip does not have")
                })),
            )
                .into_response();
        }
    };
    // The file reads run on a blocking thread and hand 1 MiB chunks to the response.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let read_to = if head { from } else { to };
    tokio::task::spawn_blocking(move || {
        let mut pos = from;
        while pos < read_to {
            let mut buf = vec![0u8; ((read_to - pos) as usize).min(1 << 20)];
            let r = match plan.read_at(pos, &mut buf) {
                Ok(0) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file shorter than indexed",
                )),
                Ok(n) => {
                    buf.truncate(n);
                    pos += n as u64;
                    Ok(bytes::Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = r.is_err();
            if let Err(e) = &r {
                tracing::error!("clip: {e}");
            }
            // A client that takes nothing for a minute is let go: the plan (and its
            // lease on the segments, which retention respects) must not live forever.
            let rt = tokio::runtime::Handle::current();
            match rt.block_on(tokio::time::timeout(CLIENT_STALL, tx.send(r))) {
                Ok(Ok(())) if !failed => {}
                Ok(_) => break, // the client went away, or the read failed (response cut)
                Err(_) => {
                    tracing::warn!("clip: the client took nothing for 60 s; response ended");
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, "video/mp4".parse().unwrap());
    h.insert(header::CONTENT_LENGTH, (to - from).into());
    h.insert(header::ACCEPT_RANGES, "bytes".parse().unwrap());
    h.insert(header::ETAG, etag.parse().unwrap());
    if let Ok(v) = format!("inline; filename=\"{filename}\"").parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(g) = gaps.and_then(|g| g.parse().ok()) {
        h.insert("x-vigil-gaps", g);
    }
    // Where the file's time 0 and its end are on the wall clock: a player maps its
    // position to UTC with these (a HEAD request gives them without the bytes).
    for (name, us) in [("x-vigil-start", first), ("x-vigil-end", last)] {
        if let Ok(v) = crate::base::time::rfc3339(us).parse() {
            h.insert(name, v);
        }
    }
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            format!("bytes {from}-{}/{len}", to - 1).parse().unwrap(),
        );
    }
    resp
}

/// `X-Vigil-Gaps`: the recording gaps inside the clip as RFC 3339 intervals
/// `start/end`, comma-separated (absent when there are none). In the file the last
/// picture before a gap is held until it ends, so players keep the video after a gap at
/// its wall-clock position.
fn gaps_header(gaps: &[(i64, i64)]) -> Option<String> {
    (!gaps.is_empty()).then(|| {
        gaps.iter()
            .map(|&(a, b)| {
                format!(
                    "{}/{}",
                    crate::base::time::rfc3339(a),
                    crate::base::time::rfc3339(b)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, v.parse().unwrap());
        range(&h, len)
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(r("bytes=0-99", 1000), Ok(Some((0, 100))));
        assert_eq!(r("bytes=900-", 1000), Ok(Some((900, 1000))));
        assert_eq!(r("bytes=-100", 1000), Ok(Some((900, 1000))));
        assert_eq!(r("bytes=-5000", 1000), Ok(Some((0, 1000))));
        assert_eq!(r("bytes=990-2000", 1000), Ok(Some((990, 1000))));
        assert_eq!(r("bytes=1000-", 1000), Err(()));
        assert_eq!(r("bytes=5-1", 1000), Err(()));
        assert_eq!(r("bytes=-0", 1000), Err(()));
        assert_eq!(r("bytes=x-1", 1000), Err(()));
        assert_eq!(r("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(r("items=0-1", 1000), Ok(None));
        assert_eq!(range(&HeaderMap::new(), 1000), Ok(None));
    }
}
