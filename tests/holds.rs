//! Legal holds in the running daemon: a held segment outlives retention by bytes until an
//! admin releases it. (Its own test binary, so that it does not run beside the full-disk
//! test and slow it down.) The daemon runs in this process.

mod common;

use std::time::Duration;

use common::*;

/// A legal hold keeps its recording through retention until an admin releases it; bad
/// hold requests get a 4xx with a message; holds are audited.
#[test]
fn legal_hold_survives_retention_until_released() {
    let t = TestDir::new();
    let r = site(
        &t,
        &[("r", "r")],
        &["--bitrate-kbps", "1500"],
        "segment_seconds = 2\nmax_bytes = \"1 MiB\"",
    );
    let d = &r.daemon;
    let first = wait_for(Duration::from_secs(30), "a closed segment", || {
        let v = d.get_json("/api/recordings?camera=r");
        let s = &v["segments"][0];
        (s["open"] == false).then(|| s.clone())
    });
    let (start, end) = (
        first["start"].as_str().unwrap(),
        first["end"].as_str().unwrap(),
    );
    for (body, code, msg) in [
        (serde_json::json!({}), 400, "missing field `reason`"),
        (
            serde_json::json!({"camera": "r", "reason": "x"}),
            400,
            "either camera, start and end",
        ),
        (
            serde_json::json!({"camera": "nope", "start": start, "end": end, "reason": "x"}),
            404,
            "unknown camera",
        ),
        (
            serde_json::json!({"camera": "r", "start": end, "end": start, "reason": "x"}),
            400,
            "end must be after start",
        ),
        (
            serde_json::json!({"camera": "r", "start": start, "end": end, "reason": " "}),
            400,
            "reason must have",
        ),
        (
            serde_json::json!({"event": 123456, "reason": "x"}),
            404,
            "no event 123456",
        ),
    ] {
        let mut a = d.post("/api/holds").send_json(&body).unwrap();
        let got: serde_json::Value = a.body_mut().read_json().unwrap();
        assert_eq!(a.status().as_u16(), code, "{body}: {got}");
        assert!(
            got["error"].as_str().unwrap().contains(msg),
            "{body}: {got}"
        );
    }
    let mut a = d.post("/api/holds")
        .send_json(serde_json::json!({"camera": "r", "start": start, "end": end, "reason": "case 12: till 3"}))
        .unwrap();
    assert_eq!(a.status(), 201);
    let hold: serde_json::Value = a.body_mut().read_json().unwrap();
    assert_eq!(
        (hold["user"].as_str(), hold["camera"].as_str()),
        (Some("admin"), Some("r"))
    );
    let held_file = first["file"].as_str().unwrap().to_owned();

    // Retention deletes around it: later segments go, the held one stays.
    wait_for(
        Duration::from_secs(60),
        "retention to delete 3 segments",
        || {
            let s = d.get_json("/api/storage");
            (s["deleted_segments"].as_u64().unwrap() >= 3).then_some(())
        },
    );
    let v = d.get_json(&format!("/api/recordings?camera=r&start={start}"));
    assert_eq!(v["segments"][0]["file"], held_file.as_str(), "{v}");
    assert!(r.storage.join(&held_file).exists());
    let list = d.get_json("/api/holds?camera=r");
    assert_eq!(list["holds"][0]["id"], hold["id"], "{list}");

    // Released (admin), it goes the way of the rest.
    let id = hold["id"].as_u64().unwrap();
    let del = d.delete(&format!("/api/holds/{id}")).call().unwrap();
    assert_eq!(del.status(), 200);
    let del = d.delete(&format!("/api/holds/{id}")).call().unwrap();
    assert_eq!(del.status(), 404);
    wait_for(
        Duration::from_secs(60),
        "the released segment deleted",
        || (!r.storage.join(&held_file).exists()).then_some(()),
    );
    r.daemon.stop();
    let audit = std::fs::read_to_string(r.storage.join("audit.log")).unwrap();
    assert!(audit.contains("\"hold.create\"") && audit.contains("\"hold.release\""));
    assert!(audit.contains("case 12: till 3"));
}
