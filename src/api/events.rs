//! The investigator's resources: `/api/events` (search, one event, its thumbnail),
//! `/api/events/counts`, `/api/activity`, `/api/timeline`, `/api/timeline/strip` and
//! `/api/search/region`.
//! Each is a thin layer over [`crate::events`], run on the blocking pool (sled reads).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState, blocking};
use crate::base::time::{parse_rfc3339, rfc3339};
use crate::events::{self, EventQuery, Order, QueryError};

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Bad(m) => ApiError(StatusCode::BAD_REQUEST, m),
            QueryError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
            QueryError::Index(e) => e.into(),
            QueryError::Io { .. } => {
                tracing::error!("reading a recording: {e}");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot read the recording".into(),
                )
            }
        }
    }
}

/// Query parameters as (key, value) pairs, keys checked against `allowed` (a typo is an
/// error, not a silently ignored filter). Repeated keys are allowed (`camera=a&camera=b`).
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn parse(raw: Option<String>, allowed: &[&str]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        for (k, _) in &pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad(format!(
                    "unknown parameter {k:?} (expected one of: {})",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Params(pairs))
    }

    pub(super) fn one(&self, key: &str) -> Result<Option<&str>, ApiError> {
        let mut it = self.0.iter().filter(|(k, _)| k == key);
        let v = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(ApiError::bad(format!(
                "parameter {key} given more than once"
            )));
        }
        Ok(v)
    }

    /// All values of `key`, each also split at commas.
    /// Every value of `key` (repeated or comma-separated). Errors: an empty value
    /// (`camera=`), which would otherwise widen a search to everything.
    pub(super) fn all(&self, key: &str) -> Result<Vec<String>, ApiError> {
        let values: Vec<String> = (self.0.iter())
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::to_owned)
            .collect();
        if values.iter().any(|v| v.is_empty()) {
            return Err(ApiError::bad(format!(
                "{key} must not be empty (leave it out for all)"
            )));
        }
        Ok(values)
    }

    pub(super) fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.one(key)?
            .ok_or_else(|| ApiError::bad(format!("missing parameter: {key}")))
    }

    pub(super) fn time(&self, key: &str) -> Result<i64, ApiError> {
        parse_rfc3339(self.required(key)?).map_err(|e| ApiError::bad(format!("{key}: {e}")))
    }

    pub(super) fn parsed<T: std::str::FromStr>(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<T>, ApiError> {
        self.one(key)?
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad(format!("{key} must be {what}, not {v:?}")))
            })
            .transpose()
    }
}

fn event_id(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad(format!("event id must be a number, not {s:?}")))
}

/// The range and filters shared by the event queries: `start`, `end`, `camera`, `zone`,
/// `min_score`, `min_duration` (seconds).
fn filters(p: &Params) -> Result<EventQuery, ApiError> {
    let finite = |key: &str, what: &str| -> Result<Option<f64>, ApiError> {
        match p.parsed::<f64>(key, what)? {
            Some(v) if !v.is_finite() || v < 0.0 => {
                Err(ApiError::bad(format!("{key} must be {what}, not {v}")))
            }
            v => Ok(v),
        }
    };
    let min_duration = finite("min_duration", "a number of seconds, 0 or more")?;
    Ok(EventQuery {
        start_us: p.time("start")?,
        end_us: p.time("end")?,
        cameras: p.all("camera")?,
        zones: p.all("zone")?,
        min_score: finite("min_score", "a number, 0 or more")?.map(|v| v as f32),
        min_duration_us: min_duration.map(|s| (s * 1e6) as i64),
        acknowledged: p.parsed("acknowledged", "true or false")?,
        ..Default::default()
    })
}

/// `GET /api/events?start=&end=&camera=&zone=&min_score=&min_duration=&order=&limit=&cursor=`
pub(super) async fn list(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(
        raw,
        &[
            "start",
            "end",
            "camera",
            "zone",
            "min_score",
            "min_duration",
            "acknowledged",
            "order",
            "limit",
            "cursor",
        ],
    )?;
    let q = EventQuery {
        order: p
            .one("order")?
            .map(str::parse)
            .transpose()?
            .unwrap_or(Order::Asc),
        limit: p.parsed("limit", "a whole number")?.unwrap_or(100),
        cursor: p.one("cursor")?.map(str::to_owned),
        ..filters(&p)?
    };
    let index = st.index.clone();
    let page = blocking(move || events::search(&index, &q)).await??;
    Ok(Json(page).into_response())
}

/// `GET /api/events/counts?start=&end=&camera=&zone=&min_score=&min_duration=`
pub(super) async fn counts(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(
        raw,
        &[
            "start",
            "end",
            "camera",
            "zone",
            "min_score",
            "min_duration",
        ],
    )?;
    let q = filters(&p)?;
    let index = st.index.clone();
    let counts = blocking(move || events::count_by_zone(&index, &q)).await??;
    Ok(Json(serde_json::json!({ "counts": counts })).into_response())
}

/// `GET /api/events/{id}`
pub(super) async fn one(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = event_id(&id)?;
    let index = st.index.clone();
    let ev = blocking(move || events::get(&index, id)).await??;
    Ok(Json(ev).into_response())
}

/// `GET /api/events/{id}/thumbnail.jpg`
pub(super) async fn thumbnail(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = event_id(&id)?;
    let index = st.index.clone();
    let (exists, jpeg) = blocking(move || -> Result<_, QueryError> {
        Ok((index.event(id)?.is_some(), index.thumbnail(id)?))
    })
    .await??;
    match jpeg {
        Some(j) => Ok((
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                // An open event's thumbnail (its first frame) becomes its peak frame when
                // it closes: revalidate.
                (header::CACHE_CONTROL, "private, no-cache"),
            ],
            j.to_vec(),
        )
            .into_response()),
        None if exists => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("event {id} has no thumbnail"),
        )),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no event {id}"))),
    }
}

/// `GET /api/activity?camera=&start=&end=&bucket=` (bucket in seconds, whole minutes)
pub(super) async fn activity(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw, &["camera", "start", "end", "bucket"])?;
    let camera = p.required("camera")?.to_owned();
    let (t0, t1) = (p.time("start")?, p.time("end")?);
    let bucket: i64 = p.parsed("bucket", "a number of seconds")?.unwrap_or(3600);
    let index = st.index.clone();
    let b = blocking(move || {
        events::activity(&index, &camera, t0, t1, bucket.saturating_mul(1_000_000))
    })
    .await??;
    Ok(Json(serde_json::json!({ "buckets": b })).into_response())
}

/// `GET /api/timeline?camera=&start=&end=`: what a timeline view draws for one camera:
/// recorded segments, the gaps between them, events, and motion intensity in about 300
/// buckets of whole minutes.
pub(super) async fn timeline(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw, &["camera", "start", "end"])?;
    let camera = p.required("camera")?.to_owned();
    let (t0, t1) = (p.time("start")?, p.time("end")?);
    let index = st.index.clone();
    let now = crate::base::time::now_us();
    let out = blocking(move || events::timeline(&index, &camera, t0, t1, now)).await??;
    Ok(Json(out).into_response())
}

/// `GET /api/timeline/strip?camera=&start=&end=&columns=N`: one camera's lane of the
/// console's timeline, bucketed per pixel column ([`events::Strip`]).
pub(super) async fn strip(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw, &["camera", "start", "end", "columns"])?;
    let camera = p.required("camera")?.to_owned();
    let (t0, t1) = (p.time("start")?, p.time("end")?);
    let n: usize = p
        .parsed("columns", "a number of columns")?
        .ok_or_else(|| ApiError::bad("missing parameter: columns"))?;
    let cols = events::Columns::new(t0, t1, n)?;
    let index = st.index.clone();
    let now = crate::base::time::now_us();
    let out = blocking(move || events::strip(&index, &camera, cols, now)).await??;
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegionRequest {
    #[serde(default)]
    cameras: Vec<String>,
    polygon: Vec<[f64; 2]>,
    start: String,
    end: String,
}

/// `POST /api/search/region` with `{"cameras": [...], "polygon": [[x, y], ...], "start":
/// RFC3339, "end": RFC3339}`: intervals with motion inside the polygon.
pub(super) async fn region(
    State(st): State<AppState>,
    body: Result<Json<RegionRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(r) = body.map_err(|e| ApiError::bad(e.body_text()))?;
    let t0 = parse_rfc3339(&r.start).map_err(|e| ApiError::bad(format!("start: {e}")))?;
    let t1 = parse_rfc3339(&r.end).map_err(|e| ApiError::bad(format!("end: {e}")))?;
    let index = st.index.clone();
    let intervals =
        blocking(move || events::region_search(&index, &r.cameras, &r.polygon, t0, t1)).await??;
    Ok(Json(serde_json::json!({ "intervals": intervals })).into_response())
}

/// `POST /api/events/{id}/ack` with an optional `{"note": "..."}`: an operator acknowledges
/// an event's alert (also while it is still open). 409 if it was already acknowledged;
/// the acknowledgement goes out to alert subscribers as an `ack` alert.
pub(super) async fn acknowledge(
    State(st): State<AppState>,
    Path(id): Path<String>,
    axum::Extension(who): axum::Extension<super::auth::Principal>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct AckRequest {
        #[serde(default)]
        note: String,
    }
    let id = event_id(&id)?;
    let req: AckRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AckRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("body: {e}")))?
    };
    if req.note.chars().count() > 500 {
        return Err(ApiError::bad("note is longer than 500 characters"));
    }
    if req.note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::bad("note contains control characters"));
    }
    let index = st.index.clone();
    let now = crate::base::time::now_us();
    let (result, camera) = blocking(move || -> Result<_, QueryError> {
        let record = index.event(id)?;
        if record.is_none() && index.thumbnail(id)?.is_none() {
            return Err(QueryError::NotFound(format!("no event {id}")));
        }
        let camera = match &record {
            Some(r) => events::Cameras::load(&index)?.name(r.camera_id),
            None => String::new(), // still open: its record is written when it closes
        };
        let ack = crate::index::Ack {
            user: who.user,
            time_us: now,
            note: req.note,
        };
        Ok((index.acknowledge(id, &ack)?.map(|()| ack), camera))
    })
    .await??;
    match result {
        Ok(ack) => {
            let _ = st.alerts.send(crate::alerts::Alert::new(
                crate::alerts::AlertKind::Ack,
                &camera,
                None,
                id,
                now,
                0.0,
            ));
            Ok(Json(events::AckView::from(ack)).into_response())
        }
        Err(first) => Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "event {id} was already acknowledged by {} at {}",
                first.user,
                rfc3339(first.time_us)
            ),
        )),
    }
}
