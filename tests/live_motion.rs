//! Live motion in the running daemon: the ground-truth crossing clip looped by a real RTSP
//! server, recorded and analysed at once; the camera status shows motion, the score and
//! the last event with its zones, and recording is unaffected.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn daemon_detects_crossings_live_with_zones() {
    let t = TestDir::new();
    let (_cam, cfg) = crossing_camera(&t, "segment_seconds = 4");
    let storage = t.join("storage");
    let d = TestDaemon::start(&cfg);
    let mut saw_motion = false;
    // The first crossing runs 1.5-5.5 s into the clip and closes 2 s later (post_roll).
    let s = wait_for(Duration::from_secs(40), "a live motion event", || {
        let s = d.camera("fixture");
        saw_motion |= s["motion"] == true && s["motion_score"].as_f64().unwrap() > 0.005;
        (s["motion_events"].as_u64().unwrap() >= 1).then_some(s)
    });
    assert_eq!(s["motion_enabled"], true);
    assert!(saw_motion, "motion never showed in the status: {s}");
    assert!(s["analysed_frames"].as_u64().unwrap() >= 20, "{s}");
    assert_eq!(s["analysis_errors"], 0, "{s}");
    let ev = &s["last_event"];
    assert_eq!(ev["zones"], serde_json::json!(["left", "right"]), "{s}");
    let t = |k: &str| vigil::base::time::parse_rfc3339(ev[k].as_str().unwrap()).unwrap();
    let dur = t("end") - t("start");
    // The clip keeps pre_roll (default 3 s) before and post_roll (2 s here) after.
    assert_eq!(t("start") - t("clip_start"), 3_000_000, "{s}");
    assert_eq!(t("clip_end") - t("end"), 2_000_000, "{s}");
    assert!(
        (3_000_000..=5_000_000).contains(&dur),
        "event of {dur} us (truth: 4 s): {s}"
    );
    // Recording went on beside the analysis.
    assert_eq!(s["dropped_frames"], 0, "{s}");
    d.stop();
    assert_segments_play(&storage, &indexed_segments(&storage));
}

/// With `detect_url`, a second session feeds the analyser and the recorded stream is only
/// recorded; losing the detect stream leaves recording untouched.
#[test]
fn detect_url_is_analysed_and_its_loss_does_not_stop_recording() {
    let t = TestDir::new();
    // Recorded: the generated scene, whose disc never stops (an event would never close).
    let (_main, main_port) = fake_camera(&["main"], 0, &[], &t.join("main.log"));
    // Detected: the ground-truth crossings, whose events close.
    let clip = fixture("motion/crossing.mp4");
    let (sub, sub_port) = fake_camera(
        &["sub"],
        0,
        &["--file", clip.to_str().unwrap()],
        &t.join("sub.log"),
    );
    let storage = t.join("storage");
    let cfg = fixture_camera_config(
        &t,
        &format!("rtsp://127.0.0.1:{main_port}/main"),
        "",
        &format!("detect_url = \"rtsp://127.0.0.1:{sub_port}/sub\""),
    );
    let d = TestDaemon::start(&cfg);
    let s = d.wait_status(
        "fixture",
        Duration::from_secs(40),
        "an event from the detect stream",
        |s| s["motion_events"].as_u64().unwrap() >= 1,
    );
    assert_eq!(s["detect_state"], "streaming", "{s}");
    assert_eq!(s["state"], "streaming", "{s}");
    assert_eq!(s["width"], 640, "the recorded stream is the main one: {s}");
    assert_eq!(
        s["last_event"]["zones"],
        serde_json::json!(["left", "right"]),
        "{s}"
    );
    // The detect camera goes away: analysis backs off, recording goes on.
    let frames = s["frames"].as_u64().unwrap();
    sub.kill9();
    let s = wait_for(Duration::from_secs(30), "detect session lost", || {
        let s = d.camera("fixture");
        (s["detect_state"] == "backoff").then_some(s)
    });
    assert!(s["detect_error"].is_string(), "{s}");
    std::thread::sleep(Duration::from_secs(3));
    let s = d.camera("fixture");
    assert_eq!(s["state"], "streaming", "{s}");
    assert!(
        s["frames"].as_u64().unwrap() > frames + 30,
        "recording stalled: {s}"
    );
    assert_eq!(s["reconnects"], 0, "{s}");
    d.stop();
    assert_segments_play(&storage, &indexed_segments(&storage));
}
