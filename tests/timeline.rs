//! The investigator's timeline end to end: the ground-truth crossing clip looped by a real
//! RTSP server -> the daemon records and analyses it -> events with thumbnails searchable
//! by zone, time, score and duration (HTTP and `vigil events`), motion history for region
//! search after the fact, activity and timeline views; bad parameters get a 4xx. The
//! daemon runs in this process; the test's phases are the functions below it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use vigil::base::time::{parse_rfc3339, rfc3339};

fn post_json(d: &TestDaemon, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let mut r = d.post(path).send_json(body).unwrap();
    (
        r.status().as_u16(),
        r.body_mut().read_json().unwrap_or(serde_json::Value::Null),
    )
}

/// Subscribes to the WebSocket variant: each text message's JSON arrives on the channel.
fn ws_alerts(d: &TestDaemon) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = std::sync::mpsc::channel();
    use tungstenite::client::IntoClientRequest;
    let url = format!("{}/api/alerts/ws", d.base.replacen("http", "ws", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", d.token).parse().unwrap(),
    );
    let (mut socket, _) = tungstenite::connect(req).unwrap();
    std::thread::spawn(move || {
        while let Ok(m) = socket.read() {
            if let tungstenite::Message::Text(t) = m
                && tx.send(serde_json::from_str(&t).unwrap()).is_err()
            {
                break;
            }
        }
    });
    rx
}

fn ids(v: &serde_json::Value) -> Vec<u64> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect()
}

/// An event's length, ms.
fn dur(e: &serde_json::Value) -> i64 {
    e["end_ms"].as_i64().unwrap() - e["start_ms"].as_i64().unwrap()
}

/// What the phases share: the daemon and the range searched, [t0, far).
struct Ctx<'a> {
    d: &'a TestDaemon,
    t0: i64,
    far: i64,
}

impl Ctx<'_> {
    fn range(&self, t1: i64) -> String {
        format!("start={}&end={}", rfc3339(self.t0), rfc3339(t1))
    }
}

/// `vigil events --json` over [t0, far) with `args`, with `token` in `VIGIL_TOKEN`.
fn events_cli(
    cfg: &std::path::Path,
    token: &str,
    t0: i64,
    far: i64,
    args: &[&str],
) -> Vec<serde_json::Value> {
    let out = Command::new(VIGIL)
        .env("VIGIL_TOKEN", token)
        .args(["events", "--config", cfg.to_str().unwrap(), "--since"])
        .arg(rfc3339(t0))
        .arg("--until")
        .arg(rfc3339(far))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .collect::<Vec<_>>()
}

#[test]
fn events_thumbnails_region_search_and_queries() {
    let t = TestDir::new();
    let (_cam, cfg) = crossing_camera(&t, "");
    // A fixed port, so that `vigil events` can find the running daemon from the config.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace("127.0.0.1:0", &format!("127.0.0.1:{}", free_port()));
    std::fs::write(&cfg, text).unwrap();
    let t0 = vigil::base::time::now_us() - 60_000_000;
    let d = TestDaemon::start(&cfg);
    let alerts = d.alerts();
    let ws = ws_alerts(&d);
    let far = vigil::base::time::now_us() + 3_600_000_000;
    let c = Ctx { d: &d, t0, far };
    let (a, b) = stored_events(&c);
    let (id_a, id_b) = (a["id"].as_u64().unwrap(), b["id"].as_u64().unwrap());
    live_alerts(&c, &alerts, &ws, &a, &b);
    acknowledgements(&c, &alerts, id_a, id_b);
    thumbnails(&c, id_a, id_b);
    filters(&c, &a, &b);
    let via_api = events_cli_asks_the_daemon(&c, &cfg, id_a);
    region_search(&c, &a, &b);
    clip_activity_and_timeline(&c, &t, &b, id_a, id_b);
    bad_parameters_get_4xx(&c);

    // With the daemon stopped, `vigil events` reads the index itself: the same events.
    let token = d.token.clone();
    d.stop();
    let direct = events_cli(&cfg, &token, t0, far, &["--json", "--zone", "left"]);
    assert_eq!(direct[0], via_api[0]);
}

/// The clip's first loop gives two stored events with the true zones and times.
fn stored_events(c: &Ctx) -> (serde_json::Value, serde_json::Value) {
    let (d, far) = (c.d, c.far);
    let range = |t1: i64| c.range(t1);
    // The clip's first loop: a crossing through "left" and "right" (1.5-5.5 s), then an
    // object bobbing inside "right" only (11-14 s). Both close 2 s (post_roll) later.
    let page = wait_for(Duration::from_secs(60), "two stored events", || {
        let v = d.get_json(&format!("/api/events?{}", range(far)));
        (v["total"].as_u64().unwrap() >= 2).then_some(v)
    });
    let evs = page["events"].as_array().unwrap();
    let (a, b) = (&evs[0], &evs[1]);
    assert_eq!(a["camera"], "fixture");
    assert_eq!(a["zones"], serde_json::json!(["left", "right"]), "{page}");
    assert_eq!(b["zones"], serde_json::json!(["right"]), "{page}");
    assert!((3_000..=5_000).contains(&dur(a)), "truth 4 s: {a}");
    assert!((2_000..=4_000).contains(&dur(b)), "truth 3 s: {b}");
    // Start to start: 9.5 s in the clip.
    let gap = b["start_ms"].as_i64().unwrap() - a["start_ms"].as_i64().unwrap();
    assert!(
        (8_500..=10_500).contains(&gap),
        "{gap} ms between starts: {page}"
    );
    for e in [a, b] {
        assert_eq!(e["video"], "available", "{e}");
        assert_eq!(e["has_thumbnail"], true, "{e}");
        assert_eq!(
            parse_rfc3339(e["start"].as_str().unwrap()).unwrap() / 1000,
            e["start_ms"].as_i64().unwrap()
        );
        let start = parse_rfc3339(e["start"].as_str().unwrap()).unwrap();
        let clip_start = parse_rfc3339(e["clip_start"].as_str().unwrap()).unwrap();
        assert_eq!(start - clip_start, 3_000_000, "pre_roll: {e}");
    }
    (a.clone(), b.clone())
}

/// The live alerts of the second event over SSE and the WebSocket, and the event and
/// status views.
fn live_alerts(
    c: &Ctx,
    alerts: &std::sync::mpsc::Receiver<serde_json::Value>,
    ws: &std::sync::mpsc::Receiver<serde_json::Value>,
    a: &serde_json::Value,
    b: &serde_json::Value,
) {
    let d = c.d;
    let id_b = b["id"].as_u64().unwrap();
    let id_a = a["id"].as_u64().unwrap();
    // Live alerts (SSE): for the second event, motion starts on the camera and in
    // "right", then ends in "right" and on the camera, with the stored event's id.
    // (The record is stored just before the end alerts go out: wait for the last one.)
    let mut got: Vec<serde_json::Value> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !got
        .iter()
        .any(|a| a["event_id"] == id_b && a["kind"] == "end" && a["zone"].is_null())
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match alerts.recv_timeout(left) {
            Ok(a) => got.push(a),
            Err(_) => break,
        }
    }
    let of_b: Vec<(String, Option<String>)> = got
        .iter()
        .filter(|a| a["event_id"] == id_b)
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["zone"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let s = |k: &str, z: Option<&str>| (k.to_string(), z.map(str::to_owned));
    assert_eq!(
        of_b,
        vec![
            s("start", None),
            s("start", Some("right")),
            s("end", Some("right")),
            s("end", None)
        ],
        "{got:?}"
    );
    let start_b = got.iter().find(|a| a["event_id"] == id_b).unwrap();
    let lag = start_b["time_us"].as_i64().unwrap() - b["start_ms"].as_i64().unwrap() * 1000;
    assert!(
        (0..=500_000).contains(&lag),
        "start alert {lag} us after the event's start"
    );
    assert_eq!(
        start_b["thumbnail_url"],
        format!("/api/events/{id_b}/thumbnail.jpg")
    );
    assert_eq!(start_b["camera"], "fixture");
    // The WebSocket variant delivered the same alerts (its own connection: the last one
    // may arrive a moment after the SSE stream's).
    let b_sse: Vec<&serde_json::Value> = got.iter().filter(|a| a["event_id"] == id_b).collect();
    let mut via_ws: Vec<serde_json::Value> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while via_ws.iter().filter(|a| a["event_id"] == id_b).count() < b_sse.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match ws.recv_timeout(left) {
            Ok(a) => via_ws.push(a),
            Err(_) => break,
        }
    }
    let b_ws: Vec<&serde_json::Value> = via_ws.iter().filter(|a| a["event_id"] == id_b).collect();
    assert_eq!(b_ws, b_sse);
    assert_eq!(&d.get_json(&format!("/api/events/{id_a}")), a);
    // The status links the last event.
    let s = d.camera("fixture");
    assert!(s["last_event"]["id"].as_u64().unwrap() >= id_b, "{s}");
}

/// An operator acknowledges the first event: once (409 after), visible on the event,
/// announced to alert subscribers.
fn acknowledgements(
    c: &Ctx,
    alerts: &std::sync::mpsc::Receiver<serde_json::Value>,
    id_a: u64,
    id_b: u64,
) {
    let d = c.d;
    let ack_url = format!("/api/events/{id_a}/ack");
    let (code, v) = post_json(
        d,
        &ack_url,
        &serde_json::json!({"note": "checked: a visitor"}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["by"].as_str(), v["note"].as_str()),
        (Some("admin"), Some("checked: a visitor"))
    );
    let (code, v) = post_json(d, &ack_url, &serde_json::json!({}));
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("already acknowledged by admin")
    );
    let e = d.get_json(&format!("/api/events/{id_a}"));
    assert_eq!(e["acknowledged"]["note"], "checked: a visitor");
    for (body, code, msg) in [
        (
            serde_json::json!({"note": "x".repeat(501)}),
            400,
            "longer than 500",
        ),
        (
            serde_json::json!({"note": "a\u{7}b"}),
            400,
            "control characters",
        ),
        (serde_json::json!({"nope": 1}), 400, "unknown field"),
    ] {
        let (got, v) = post_json(d, &format!("/api/events/{id_b}/ack"), &body);
        assert_eq!(got, code, "{v}");
        assert!(v["error"].as_str().unwrap().contains(msg), "{v}");
    }
    let (code, _) = post_json(d, "/api/events/999999999/ack", &serde_json::json!({}));
    assert_eq!(code, 404);
    let acked = wait_for(Duration::from_secs(5), "the ack alert", || {
        alerts.try_iter().find(|a| a["kind"] == "ack")
    });
    assert_eq!(
        (acked["event_id"].as_u64(), acked["camera"].as_str()),
        (Some(id_a), Some("fixture"))
    );
}

/// Thumbnails: JPEG of the peak frame, 320 px wide (the 320x180 clip is not upscaled).
fn thumbnails(c: &Ctx, id_a: u64, id_b: u64) {
    let d = c.d;
    for id in [id_a, id_b] {
        let mut r = d
            .get(&format!("/api/events/{id}/thumbnail.jpg"))
            .call()
            .unwrap();
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        let bytes = r.body_mut().read_to_vec().unwrap();
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (320, 180));
        // The moving object (bright, value 220 on a darker scene) is in the frame.
        let bright = img.to_luma8().pixels().filter(|p| p.0[0] > 200).count();
        assert!(
            bright > 300,
            "{bright} bright pixels: no object in thumbnail {id}"
        );
    }
}

/// Filters: zone, duration, score, order, pagination; counts by zone.
fn filters(c: &Ctx, a: &serde_json::Value, b: &serde_json::Value) {
    let (d, far) = (c.d, c.far);
    let range = |t1: i64| c.range(t1);
    let (id_a, id_b) = (a["id"].as_u64().unwrap(), b["id"].as_u64().unwrap());
    let q = |extra: &str| d.get_json(&format!("/api/events?{}&{extra}", range(far)));
    let left = q("zone=left");
    assert!(
        ids(&left).contains(&id_a) && !ids(&left).contains(&id_b),
        "{left}"
    );
    let right = q("camera=fixture&zone=right");
    assert!(ids(&right).contains(&id_a) && ids(&right).contains(&id_b));
    let long = q(&format!(
        "min_duration={}",
        (dur(a) + dur(b)) as f64 / 2000.0
    ));
    assert!(
        ids(&long).contains(&id_a) && !ids(&long).contains(&id_b),
        "{long}"
    );
    assert_eq!(q("min_score=0.99")["total"], 0);
    let desc = q("order=desc");
    assert!(ids(&desc).windows(2).all(|w| w[0] > w[1]), "{desc}");
    let p1 = q("limit=1");
    assert_eq!(ids(&p1), vec![id_a]);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = q(&format!("limit=1&cursor={cursor}"));
    assert_eq!(ids(&p2), vec![id_b]);
    assert_eq!(p1["total"], p2["total"]);
    let counts = d.get_json(&format!("/api/events/counts?{}", range(far)));
    let c = &counts["counts"]["fixture"];
    assert!(
        c["left"].as_u64().unwrap() >= 1 && c["right"].as_u64().unwrap() >= 2,
        "{counts}"
    );
    assert!(c[""].as_u64().unwrap() >= 2, "{counts}");
}

/// `vigil events` while the daemon runs (it holds the index: the CLI asks its API).
/// Without a token it says how to give one. Returns what it found.
fn events_cli_asks_the_daemon(c: &Ctx, cfg: &std::path::Path, id_a: u64) -> Vec<serde_json::Value> {
    let (d, t0, far) = (c.d, c.t0, c.far);
    // Without a token it says how to give one.
    let out = Command::new(VIGIL)
        .args(["events", "--config", cfg.to_str().unwrap()])
        .args(["--since", &rfc3339(t0), "--until", &rfc3339(far)])
        .env_remove("VIGIL_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("VIGIL_TOKEN"),
        "{out:?}"
    );
    let via_api = events_cli(cfg, &d.token, t0, far, &["--json", "--zone", "left"]);
    assert_eq!(via_api[0]["id"], id_a);
    assert_eq!(via_api[0]["zones"], serde_json::json!(["left", "right"]));
    via_api
}

/// Region search after the fact, from the motion history (saved every 10 s).
fn region_search(c: &Ctx, a: &serde_json::Value, b: &serde_json::Value) {
    let (d, t0, far) = (c.d, c.t0, c.far);
    let region = |poly: serde_json::Value| {
        let (code, v) = post_json(
            d,
            "/api/search/region",
            &serde_json::json!({
                "cameras": ["fixture"], "polygon": poly,
                "start": rfc3339(t0), "end": rfc3339(far),
            }),
        );
        assert_eq!(code, 200, "{v}");
        v["intervals"].as_array().unwrap().clone()
    };
    let within = |iv: &serde_json::Value, e: &serde_json::Value| {
        let (s, en) = (
            iv["start_us"].as_i64().unwrap(),
            iv["end_us"].as_i64().unwrap(),
        );
        let (es, ee) = (
            e["start_ms"].as_i64().unwrap() * 1000,
            e["end_ms"].as_i64().unwrap() * 1000,
        );
        s >= es - 1_000_000 && en <= ee + 1_000_000
    };
    // Lower left, where only the first crossing passes.
    let low_left = serde_json::json!([[0.05, 0.55], [0.3, 0.55], [0.3, 0.8], [0.05, 0.8]]);
    let iv = wait_for(Duration::from_secs(15), "motion history saved", || {
        let iv = region(low_left.clone());
        (!iv.is_empty()).then_some(iv)
    });
    assert!(within(&iv[0], a), "{iv:?} vs {a}");
    assert!(iv.iter().all(|i| !within(i, b)), "{iv:?}");
    // Upper right, where only the bobbing object goes (its seconds may be in the next
    // save of the history).
    let up_right = wait_for(
        Duration::from_secs(15),
        "the second event's history",
        || {
            let iv = region(serde_json::json!([
                [0.75, 0.2],
                [0.9, 0.2],
                [0.9, 0.35],
                [0.75, 0.35]
            ]));
            iv.iter().any(|i| within(i, b)).then_some(iv)
        },
    );
    assert!(up_right.iter().any(|i| within(i, b)), "{up_right:?}");
    assert!(up_right.iter().all(|i| !within(i, a)), "{up_right:?}");
    // Nothing moves at the top in the middle.
    assert!(region(serde_json::json!([[0.35, 0.0], [0.45, 0.0], [0.45, 0.15]])).is_empty());
}

/// The second event's clip (pre-roll + event + post-roll, playable), the activity
/// histogram and the timeline view.
fn clip_activity_and_timeline(c: &Ctx, t: &TestDir, b: &serde_json::Value, id_a: u64, id_b: u64) {
    let (d, far) = (c.d, c.far);
    let range = |t1: i64| c.range(t1);
    let mut r = d
        .get(&format!("/api/events/{id_b}/clip.mp4"))
        .call()
        .unwrap();
    let clip = t.join("event.mp4");
    std::fs::write(
        &clip,
        r.body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap(),
    )
    .unwrap();
    let (frames, secs) = ffprobe(&clip);
    let want = (dur(b) + 5_000) as f64 / 1000.0;
    assert!(
        (secs - want).abs() < 0.2,
        "event clip of {secs} s, want {want}"
    );
    assert!(
        (frames as f64 - want * 15.0).abs() <= 3.0,
        "{frames} frames for {want} s"
    );
    let (code, body) = d.get_status("/api/events/999999999/clip.mp4");
    assert_eq!(code, 404, "{body}");

    // Activity (scrub bar) and the timeline view.
    let act = d.get_json(&format!(
        "/api/activity?camera=fixture&{}&bucket=60",
        range(far)
    ));
    let buckets = act["buckets"].as_array().unwrap();
    let secs: u64 = buckets
        .iter()
        .map(|b| b["motion_seconds"].as_u64().unwrap())
        .sum();
    assert!((5..=60).contains(&secs), "{secs} motion seconds: {act}");
    assert!(
        buckets
            .iter()
            .any(|b| b["zones"]["left"].as_u64().unwrap_or(0) > 0)
    );
    let tl = d.get_json(&format!("/api/timeline?camera=fixture&{}", range(far)));
    assert!(!tl["segments"].as_array().unwrap().is_empty(), "{tl}");
    assert!(ids(&tl).contains(&id_a), "{tl}");
}

/// Bad read requests: (path, status, words the error must contain). `{then}` stands for
/// a time before the test's events, `{now}` for now.
const BAD_READS: &[(&str, u16, &str)] = &[
    (
        "/api/events?start={now}&end={then}",
        400,
        "end must be after start",
    ),
    ("/api/events?end={now}", 400, "missing parameter: start"),
    ("/api/events?start=yesterday&end={now}", 400, "start:"),
    (
        "/api/events?start={then}&end={now}&camera=nope",
        404,
        "unknown camera",
    ),
    (
        "/api/events?start={then}&end={now}&zone=attic",
        404,
        "unknown zone",
    ),
    (
        "/api/events?start={then}&end={now}&limit=100000",
        400,
        "limit must be",
    ),
    (
        "/api/events?start={then}&end={now}&limit=-1",
        400,
        "limit must be",
    ),
    (
        "/api/events?start={then}&end={now}&min_score=lots",
        400,
        "min_score",
    ),
    (
        "/api/events?start={then}&end={now}&min_score=NaN",
        400,
        "min_score",
    ),
    (
        "/api/events?start={then}&end={now}&min_duration=-5",
        400,
        "min_duration",
    ),
    (
        "/api/events?start={then}&end={now}&camera=",
        400,
        "camera must not be empty",
    ),
    ("/api/events?start={then}&end={now}&order=up", 400, "order"),
    (
        "/api/events?start={then}&end={now}&cursor=xyz",
        400,
        "cursor",
    ),
    (
        "/api/events?start={then}&end={now}&cameras=fixture",
        400,
        "unknown parameter",
    ),
    ("/api/events/abc", 400, "event id"),
    ("/api/events/999999999", 404, "no event"),
    ("/api/events/999999999/thumbnail.jpg", 404, "no event"),
    (
        "/api/activity?camera=fixture&start={then}&end={now}&bucket=90",
        400,
        "minutes",
    ),
    (
        "/api/timeline?start={then}&end={now}",
        400,
        "missing parameter: camera",
    ),
];

/// Bad parameters: a 4xx with a message, never a 500.
fn bad_parameters_get_4xx(c: &Ctx) {
    let (d, t0) = (c.d, c.t0);
    let now = rfc3339(vigil::base::time::now_us());
    let then = rfc3339(t0);
    for (path, code, msg) in BAD_READS {
        let url = path.replace("{now}", &now).replace("{then}", &then);
        let (got, body) = d.get_status(&url);
        assert_eq!(got, *code, "{url}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(msg),
            "{url}: {body}"
        );
    }
    bad_region_searches(c, &then, &now);
}

/// Region searches with a bad polygon, range, camera or field get 4xx.
fn bad_region_searches(c: &Ctx, then: &str, now: &str) {
    let d = c.d;
    for (body, msg) in [
        (
            serde_json::json!({"polygon": [[0.1, 0.1], [0.2, 0.2]], "start": then, "end": now}),
            "at least 3 points",
        ),
        (
            serde_json::json!({"polygon": [[0.1, 0.1], [2.0, 0.2], [0.1, 0.3]], "start": then, "end": now}),
            "outside 0..1",
        ),
        (
            serde_json::json!({"polygon": "square", "start": then, "end": now}),
            "polygon",
        ),
        (
            serde_json::json!({"polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]], "start": then, "end": now}),
            "crosses itself",
        ),
        (
            serde_json::json!({"polygon": [[0.1, 0.1], [0.2, 0.2], [0.1, 0.3]], "start": now, "end": then}),
            "end must be after start",
        ),
        (
            serde_json::json!({"cameras": ["nope"], "polygon": [[0.1, 0.1], [0.2, 0.2], [0.1, 0.3]], "start": then, "end": now}),
            "unknown camera",
        ),
        (
            serde_json::json!({"polygon": [[0.1, 0.1], [0.2, 0.2], [0.1, 0.3]], "start": then, "end": now, "color": 1}),
            "unknown field",
        ),
    ] {
        let (got, v) = post_json(d, "/api/search/region", &body);
        assert!((400..500).contains(&got), "{body}: {got} {v}");
        assert!(v["error"].as_str().unwrap().contains(msg), "{body}: {v}");
    }
}
