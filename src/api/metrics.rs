//! `GET /metrics`: Prometheus text exposition of the cameras' and the storage's status,
//! served on its own loopback address without authentication (`[metrics] listen`), and on
//! the main API for any authenticated user (a viewer's token is enough for a scraper).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::status::{CameraStages, CameraState, SharedStatus, StorageStatus};

/// The router of the metrics listener.
pub fn router(status: SharedStatus) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(status)
}

/// `GET /metrics` on the main API.
pub(super) async fn api(State(st): State<super::AppState>) -> impl IntoResponse {
    metrics(State(st.status)).await
}

async fn metrics(State(status): State<SharedStatus>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&status),
    )
}

/// The exposition text.
pub fn render(status: &SharedStatus) -> String {
    let cams = status.cameras();
    let mut out = String::new();
    for (name, kind, help, get) in CAMERA_METRICS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for c in &cams {
            let _ = writeln!(out, "{name}{{camera=\"{}\"}} {}", escape(&c.name), get(c));
        }
    }
    let s = status.storage(|s| s.clone());
    for (name, kind, help, get) in STORAGE_METRICS {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            get(&s)
        );
    }
    out
}

/// A metric: name, Prometheus type, help text and how to read it from the status.
type Metric<T> = (&'static str, &'static str, &'static str, fn(&T) -> f64);

/// Per-camera metrics (label `camera`).
const CAMERA_METRICS: [Metric<CameraStages>; 25] = [
    (
        "vigil_camera_up",
        "gauge",
        "1 while the camera streams",
        |c| (c.ingest.state == CameraState::Streaming) as u8 as f64,
    ),
    (
        "vigil_camera_fps",
        "gauge",
        "frames per second received",
        |c| c.ingest.fps,
    ),
    (
        "vigil_camera_bitrate_bits_per_second",
        "gauge",
        "bitrate received",
        |c| c.ingest.bitrate_bps,
    ),
    (
        "vigil_camera_received_frames_total",
        "counter",
        "pictures received whole from the recorded stream",
        |c| c.ingest.received_frames as f64,
    ),
    (
        "vigil_camera_frames_total",
        "counter",
        "frames written to segment files",
        |c| c.recording.frames as f64,
    ),
    (
        "vigil_camera_bytes_total",
        "counter",
        "video bytes received",
        |c| c.ingest.bytes as f64,
    ),
    (
        "vigil_camera_reconnects_total",
        "counter",
        "RTSP reconnections",
        |c| c.ingest.reconnects as f64,
    ),
    (
        "vigil_camera_dropped_frames_total",
        "counter",
        "frames the recorder dropped because its writer fell behind",
        |c| c.ingest.dropped_frames as f64,
    ),
    (
        "vigil_camera_unwritten_frames_total",
        "counter",
        "frames lost because nothing could be written (full or failing disk)",
        |c| c.recording.unwritten_frames as f64,
    ),
    (
        "vigil_camera_lost_packets_total",
        "counter",
        "RTP packets lost on the way (sequence-number gaps)",
        |c| c.ingest.lost_packets as f64,
    ),
    (
        "vigil_camera_packet_errors_total",
        "counter",
        "packets that could not be depacketized (dropped; the session goes on)",
        |c| c.ingest.packet_errors as f64,
    ),
    (
        "vigil_camera_dropped_pictures_total",
        "counter",
        "pictures dropped after loss or a packet error, up to the next keyframe",
        |c| c.ingest.dropped_pictures as f64,
    ),
    (
        "vigil_camera_timestamp_jumps_total",
        "counter",
        "times the camera's timestamps broke the timeline (segment closed, re-anchored)",
        |c| c.ingest.timestamp_jumps as f64,
    ),
    (
        "vigil_camera_timeouts_total",
        "counter",
        "RTSP steps and sessions that missed their deadline",
        |c| c.ingest.timeouts as f64,
    ),
    (
        "vigil_camera_clock_rate",
        "gauge",
        "camera clock rate applied to the recorder's (1 = exact)",
        |c| c.ingest.clock_rate,
    ),
    (
        "vigil_camera_segments_written_total",
        "counter",
        "segments written",
        |c| c.recording.segments_written as f64,
    ),
    (
        "vigil_camera_write_errors_total",
        "counter",
        "segment write errors",
        |c| c.recording.write_errors as f64,
    ),
    (
        "vigil_camera_analysed_frames_total",
        "counter",
        "frames analysed for motion",
        |c| c.analysis.analysed_frames as f64,
    ),
    (
        "vigil_camera_analysis_dropped_total",
        "counter",
        "frames the analyser skipped",
        |c| c.ingest.analysis_dropped as f64,
    ),
    (
        "vigil_camera_decode_errors_total",
        "counter",
        "decoder errors",
        |c| c.analysis.decode_errors as f64,
    ),
    (
        "vigil_camera_motion_seconds_total",
        "counter",
        "time in the motion detector (kernel, blobs, zones)",
        |c| c.analysis.motion_seconds,
    ),
    (
        "vigil_camera_decode_seconds_total",
        "counter",
        "CPU time of the analysis pipeline's decoding and scaling threads",
        |c| c.analysis.decode_seconds,
    ),
    (
        "vigil_camera_motion",
        "gauge",
        "1 while motion is seen",
        |c| c.analysis.motion as u8 as f64,
    ),
    (
        "vigil_camera_motion_score",
        "gauge",
        "moving fraction of the image",
        |c| c.analysis.motion_score,
    ),
    (
        "vigil_camera_motion_events_total",
        "counter",
        "motion events",
        |c| c.analysis.motion_events as f64,
    ),
];

/// Storage and index metrics.
const STORAGE_METRICS: [Metric<StorageStatus>; 10] = [
    (
        "vigil_storage_bytes",
        "gauge",
        "bytes of recordings kept",
        |s| s.total_bytes as f64,
    ),
    ("vigil_storage_segments", "gauge", "segments kept", |s| {
        s.segments as f64
    }),
    (
        "vigil_storage_free_bytes",
        "gauge",
        "free bytes on the storage filesystem",
        |s| s.free_bytes.unwrap_or(0) as f64,
    ),
    (
        "vigil_retention_deleted_segments_total",
        "counter",
        "segments deleted by retention",
        |s| s.deleted_segments as f64,
    ),
    (
        "vigil_retention_deleted_bytes_total",
        "counter",
        "bytes deleted by retention",
        |s| s.deleted_bytes as f64,
    ),
    (
        "vigil_disk_full_total",
        "counter",
        "writes that failed for lack of space",
        |s| s.disk_full_events as f64,
    ),
    (
        "vigil_index_bytes",
        "gauge",
        "size of the sled index on disk",
        |s| s.index_bytes as f64,
    ),
    (
        "vigil_index_reopens_total",
        "counter",
        "times the index was reopened after an I/O error",
        |s| s.index_reopens as f64,
    ),
    (
        "vigil_index_pending_records",
        "gauge",
        "segment records refused by the index and kept for retry",
        |s| s.index_pending_records as f64,
    ),
    (
        "vigil_index_reserve_held",
        "gauge",
        "1 while the index's disk reserve is allocated",
        |s| s.index_reserve_held as u8 as f64,
    ),
];

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let st: SharedStatus = Default::default();
        st.recording("front", |c| c.frames = 42);
        st.ingest("front", |c| c.fps = 15.0);
        st.storage(|s| s.total_bytes = 1000);
        let text = render(&st);
        assert!(text.contains("# TYPE vigil_camera_frames_total counter\nvigil_camera_frames_total{camera=\"front\"} 42\n"), "{text}");
        assert!(text.contains("vigil_camera_fps{camera=\"front\"} 15\n"));
        assert!(text.contains("vigil_storage_bytes 1000\n"));
        // Every sample line is `name{labels} value` or `name value` with a number.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
