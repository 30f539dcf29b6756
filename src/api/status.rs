//! The status resources: `GET /api/cameras` (each camera's stages composed into one flat
//! object, the shape the status page reads), `GET /api/storage`, `GET
//! /api/storage/verify` (the segments' record-time hashes checked), and the
//! latest analysed picture of a camera. The stages keep µs since the epoch; this is where
//! times become RFC 3339.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::base::time::rfc3339;
use crate::media::MotionEvent;
use crate::status::{AnalysisStats, CameraStages, IngestStats, RecordingStats, StorageStatus};

/// A camera's status as the API shows it.
#[derive(Serialize)]
pub struct CameraView {
    pub name: String,
    /// When the ingest state was entered (RFC 3339).
    pub since: String,
    /// Ingest's statistics (shown flattened, as are the next two).
    #[serde(flatten)]
    pub ingest: IngestStats,
    /// The segment writer's.
    #[serde(flatten)]
    pub recording: RecordingStats,
    /// The analysis pipeline's.
    #[serde(flatten)]
    pub analysis: AnalysisStats,
    /// The last motion event that closed.
    pub last_event: Option<EventSummary>,
    /// The newest error of any stage, and when (RFC 3339).
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// [`AnalysisStats::last_event`] with its times as RFC 3339.
#[derive(Serialize)]
pub struct EventSummary {
    /// Its id in the timeline (`/api/events/{id}`), if it was stored.
    id: Option<u64>,
    start: String,
    end: String,
    /// The event's clip window: `pre_roll` before `start` to `post_roll` after `end`.
    clip_start: String,
    clip_end: String,
    zones: Vec<String>,
    peak_score: f64,
    bbox: [f64; 4],
}

impl EventSummary {
    fn of(e: &MotionEvent) -> EventSummary {
        EventSummary {
            id: e.id,
            start: rfc3339(e.start_us),
            end: rfc3339(e.end_us),
            clip_start: rfc3339(e.clip_start_us),
            clip_end: rfc3339(e.clip_end_us),
            zones: e.zones.clone(),
            peak_score: e.peak_score,
            bbox: e.bbox,
        }
    }
}

impl CameraView {
    /// Composes a camera's stages.
    pub fn of(c: CameraStages) -> CameraView {
        let error = c.last_error().map(|(t, e)| (rfc3339(t), e.to_owned()));
        CameraView {
            since: rfc3339(c.ingest.since_us),
            last_event: c.analysis.last_event.as_ref().map(EventSummary::of),
            last_error_at: error.as_ref().map(|(t, _)| t.clone()),
            last_error: error.map(|(_, e)| e),
            name: c.name,
            ingest: c.ingest,
            recording: c.recording,
            analysis: c.analysis,
        }
    }
}

/// `GET /api/cameras`.
pub(super) async fn cameras(State(st): State<AppState>) -> impl IntoResponse {
    let cams: Vec<CameraView> = st
        .status
        .cameras()
        .into_iter()
        .map(CameraView::of)
        .collect();
    Json(serde_json::json!({ "cameras": cams }))
}

/// The storage's status as the API shows it.
#[derive(Serialize)]
struct StorageView {
    #[serde(flatten)]
    storage: StorageStatus,
    /// When `last_error` happened (RFC 3339).
    last_error_at: Option<String>,
    clock_steps: Vec<ClockStepView>,
}

/// A step of the wall clock: when (`at`, the wall clock after it), by how much, and the
/// newest recording end then; the µs fields as before, the times also as RFC 3339.
#[derive(Serialize)]
struct ClockStepView {
    at: String,
    recorded_until: String,
    #[serde(flatten)]
    step: crate::index::ClockStep,
}

/// `GET /api/storage`.
pub(super) async fn storage(State(st): State<AppState>) -> impl IntoResponse {
    Json(StorageView::of(st.status.storage(|s| s.clone())))
}

/// `GET /api/storage/verify` (admin): every closed segment's file against the SHA-256
/// its record took when it closed ([`crate::record::integrity::verify`]), while the
/// daemon records: `{"intact": N, "unhashed": N, "changed": [{"file", "why"}]}`. Reads
/// every byte kept (about 500 MB/s here); audited as `storage.verify`.
pub(super) async fn verify(
    State(st): State<AppState>,
) -> Result<axum::response::Response, super::ApiError> {
    let (index, storage) = (st.index.clone(), st.storage.clone());
    let rep = super::blocking(move || crate::record::integrity::verify(&index, &storage)).await??;
    let changed: Vec<_> = (rep.changed.iter())
        .map(|(file, why)| serde_json::json!({ "file": file, "why": why }))
        .collect();
    let mut resp = Json(serde_json::json!({
        "intact": rep.intact, "unhashed": rep.unhashed, "changed": changed,
    }))
    .into_response();
    resp.extensions_mut()
        .insert(super::AuditResult(serde_json::json!({
            "intact": rep.intact, "changed": rep.changed.len(),
        })));
    Ok(resp)
}

impl StorageView {
    fn of(storage: StorageStatus) -> StorageView {
        StorageView {
            last_error_at: storage.last_error_us.map(rfc3339),
            clock_steps: (storage.clock_steps.iter())
                .map(|s| ClockStepView {
                    at: rfc3339(s.at_us),
                    recorded_until: rfc3339(s.recorded_until_us),
                    step: *s,
                })
                .collect(),
            storage,
        }
    }
}

/// `GET /api/cameras/{name}/snapshot.jpg`: the camera's latest analysed picture (taken
/// every 2 s by its analysis thread; none for cameras without motion analysis).
pub(super) async fn snapshot(
    State(st): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    if !st.cameras.iter().any(|(n, _)| *n == name) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown camera {name:?}"),
        ));
    }
    let Some((utc_us, jpeg)) = st.status.snapshot(&name) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no picture of {name} yet (its motion analysis is off or has not started)"),
        ));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::HeaderName::from_static("x-vigil-time"),
                rfc3339(utc_us),
            ),
        ],
        jpeg,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API sees one flat object per camera, with the newest error of any stage and
    /// the times as RFC 3339.
    #[test]
    fn stages_compose_into_one_flat_camera() {
        let st = crate::status::tests::example();
        st.analysis("a", |s| {
            s.last_event = Some(MotionEvent {
                id: Some(7),
                camera: "a".into(),
                start_us: 1_700_000_000_000_000,
                end_us: 1_700_000_002_500_000,
                clip_start_us: 1_699_999_995_000_000,
                clip_end_us: 1_700_000_007_500_000,
                zones: vec!["door".into()],
                peak_score: 0.25,
                bbox: [0.1, 0.2, 0.3, 0.4],
            })
        });
        let a = CameraView::of(st.cameras().remove(0));
        let a = serde_json::to_value(&a).unwrap();
        assert_eq!(a["name"], "a");
        assert_eq!(a["state"], "streaming");
        assert_eq!(a["received_frames"], 30);
        assert_eq!(a["frames"], 29);
        assert_eq!(a["motion_enabled"], false);
        assert_eq!(a["last_error"], "writer: newer");
        assert!(a["last_error_at"].as_str().unwrap().ends_with('Z'), "{a}");
        assert!(a["since"].as_str().unwrap().ends_with('Z'), "{a}");
        assert_eq!(a["last_event"]["start"], "2023-11-14T22:13:20Z");
        assert_eq!(a["last_event"]["end"], "2023-11-14T22:13:22.5Z");
        assert_eq!(a["last_event"]["id"], 7);
        assert_eq!(a["last_event"]["zones"][0], "door");
        assert!(a.get("ingest").is_none() && a.get("error").is_none(), "{a}");
    }

    /// The storage's times as RFC 3339 (µs kept beside them where they were before).
    #[test]
    fn storage_times_are_formatted() {
        let s = StorageStatus {
            last_error: Some("disk full".into()),
            last_error_us: Some(1_700_000_000_000_000),
            clock_steps: vec![crate::index::ClockStep {
                at_us: 1_700_000_000_000_000,
                delta_us: -3_600_000_000,
                recorded_until_us: 1_700_003_600_000_000,
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(StorageView::of(s)).unwrap();
        assert_eq!(v["last_error"], "disk full");
        assert_eq!(v["last_error_at"], "2023-11-14T22:13:20Z");
        let step = &v["clock_steps"][0];
        assert_eq!(step["at"], "2023-11-14T22:13:20Z");
        assert_eq!(step["recorded_until"], "2023-11-14T23:13:20Z");
        assert_eq!(step["delta_us"], -3_600_000_000i64);
        assert_eq!(step["at_us"], 1_700_000_000_000_000i64);
        assert!(v.get("last_error_us").is_none(), "{v}");
    }
}
