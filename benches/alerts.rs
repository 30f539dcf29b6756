//! Alert latency: from a frame's arrival to its start alert reaching an SSE client.
//!
//! The ground-truth crossing clip is looped by a real RTSP server into the release daemon
//! for 50 s (six events); an SSE client on `/api/alerts/stream` notes when each
//! camera-level start alert arrives. A frame's UTC is its session's wall clock at the
//! first frame plus RTP time, i.e. when it arrived from a camera streaming in real time,
//! so latency = receive time − the alert's `time_us` (the UTC of the frame that opened the
//! event): that frame's queueing, decoding and analysis, and the alert's delivery.
//!
//! `cargo bench --bench alerts`

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::BufRead;
use std::time::{Duration, Instant};

use common::*;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let t = TestDir::new();
    let (_cam, cfg) = crossing_camera(&t, "");
    let d = daemon(&cfg, &t.join("daemon.log"));
    let mut r = d.get("/api/alerts/stream").call().unwrap();
    let reader = std::io::BufReader::new(r.body_mut().with_config().limit(u64::MAX).reader());
    let deadline = Instant::now() + Duration::from_secs(50);
    let mut lat_ms = Vec::new();
    let mut event = String::new();
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(data) = line.strip_prefix("data: ")
            && event == "alert"
        {
            let now = vigil::base::time::now_us();
            let a: serde_json::Value = serde_json::from_str(data).unwrap();
            if a["kind"] == "start" && a["zone"].is_null() {
                lat_ms.push((now - a["time_us"].as_i64().unwrap()) as f64 / 1000.0);
            }
        }
        if Instant::now() > deadline {
            break;
        }
    }
    drop(r);
    assert!(d.stop(Duration::from_secs(20)).success());
    lat_ms.sort_by(f64::total_cmp);
    println!(
        "alert latency (frame arrival -> SSE client), {} start alerts: median {:.0} ms, max {:.0} ms; all: {:?}",
        lat_ms.len(),
        lat_ms[lat_ms.len() / 2],
        lat_ms.last().unwrap(),
        lat_ms.iter().map(|v| v.round() as i64).collect::<Vec<_>>()
    );
}
