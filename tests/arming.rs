//! Arming schedules in the running daemon: a zone whose schedule is disarmed raises no
//! alerts, while its motion is still detected and stored in the timeline; an armed zone
//! (in another time zone) and the camera alert as usual; the camera status says which
//! zones are disarmed.

mod common;

use std::time::Duration;

use common::*;
use vigil::base::time::rfc3339;

#[test]
fn disarmed_zones_are_recorded_but_raise_no_alerts() {
    let t = TestDir::new();
    let (_cam, cfg) = crossing_camera(&t, "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("name = \"left\"\n") && text.contains("name = \"right\"\n"));
    let text = text
        .replace("name = \"left\"\n", "name = \"left\"\narm = \"never\"\n")
        .replace("name = \"right\"\n", "name = \"right\"\narm = \"always\"\n")
        + "\n[[schedules]]\nname = \"never\"\narmed = []\n\
           \n[[schedules]]\nname = \"always\"\ntimezone = \"Pacific/Auckland\"\ndisarmed = []\n";
    std::fs::write(&cfg, text).unwrap();
    let t0 = vigil::base::time::now_us() - 60_000_000;
    let d = TestDaemon::start(&cfg);
    let alerts = d.alerts();

    // The clip's first crossing goes through "left" and "right"; collect its alerts up to
    // the camera's end alert.
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let a = alerts
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no camera end alert; got {got:?}"));
        let done = a["kind"] == "end" && a["zone"].is_null();
        got.push((
            a["kind"].as_str().unwrap().to_owned(),
            a["zone"].as_str().map(String::from),
            a["event_id"].as_u64().unwrap(),
        ));
        if done {
            break;
        }
    }
    let id = got[0].2;
    let first: Vec<_> = got.iter().filter(|g| g.2 == id).cloned().collect();
    let k = |kind: &str, zone: Option<&str>| (kind.to_owned(), zone.map(String::from), id);
    assert_eq!(
        first,
        vec![
            k("start", None),
            k("start", Some("right")),
            k("end", Some("right")),
            k("end", None),
        ],
        "no alert for the disarmed zone: {got:?}"
    );
    // The event itself has both zones: disarming holds back alerts, not the record.
    let far = vigil::base::time::now_us() + 3_600_000_000;
    let ev = wait_for(Duration::from_secs(20), "the stored event", || {
        let (code, v) = d.get_status(&format!("/api/events/{id}"));
        (code == 200).then_some(v)
    });
    assert_eq!(ev["zones"], serde_json::json!(["left", "right"]), "{ev}");
    let list = d.get_json(&format!(
        "/api/events?start={}&end={}&zone=left",
        rfc3339(t0),
        rfc3339(far)
    ));
    assert!(list["total"].as_u64().unwrap() >= 1, "{list}");
    let s = d.camera("fixture");
    assert_eq!(s["armed"], true, "{s}");
    assert_eq!(s["disarmed_zones"], serde_json::json!(["left"]), "{s}");
    // The latest picture, for live view: a JPEG of the camera's 320x180 image.
    let mut r = d.get("/api/cameras/fixture/snapshot.jpg").call().unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert!(r.headers().contains_key("x-vigil-time"));
    let img = image::load_from_memory(&r.body_mut().read_to_vec().unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (320, 180));
    let (code, body) = d.get_status("/api/cameras/nope/snapshot.jpg");
    assert_eq!(code, 404, "{body}");
    // The analysis pipeline's decoding threads were found and their CPU time counted.
    assert!(s["decode_seconds"].as_f64().unwrap() > 0.0, "{s}");
    d.stop();
}
