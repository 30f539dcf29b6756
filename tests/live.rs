//! Live video over a WebSocket (`/api/cameras/{name}/live`), fed from ingest: what two
//! viewers receive is an init segment and fragments from a keyframe on, which FFmpeg
//! (a player we did not write) reads as the camera's H.264 at its frame rate; the
//! fragments carry the pictures' UTC; unknown cameras and foreign origins are refused;
//! each view is audited.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message;

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

fn connect(d: &TestDaemon, camera: &str, origin: Option<&str>) -> tungstenite::Result<Socket> {
    use tungstenite::client::IntoClientRequest;
    let url = d
        .url(&format!("/api/cameras/{camera}/live"))
        .replacen("http", "ws", 1);
    let mut req = url.as_str().into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert(
        "authorization",
        format!("Bearer {}", d.token).parse().unwrap(),
    );
    if let Some(o) = origin {
        h.insert("origin", o.parse().unwrap());
    }
    tungstenite::connect(req).map(|(s, _)| s)
}

/// What a viewer received in `secs` seconds: the init message's JSON, the init segment
/// and the fragments, with the wall clock (µs) at which each fragment arrived.
struct Received {
    init: serde_json::Value,
    segment: Vec<u8>,
    fragments: Vec<(Vec<u8>, i64)>,
}

fn receive(mut s: Socket, secs: u64) -> Received {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut r = Received {
        init: serde_json::Value::Null,
        segment: Vec::new(),
        fragments: Vec::new(),
    };
    while Instant::now() < deadline {
        match s.read().unwrap() {
            Message::Text(t) => {
                assert!(r.init.is_null(), "a second init message: {t}");
                r.init = serde_json::from_str(&t).unwrap();
            }
            Message::Binary(b) if r.segment.is_empty() => {
                assert!(!r.init.is_null(), "binary before the init message");
                r.segment = b.to_vec();
            }
            Message::Binary(b) => r.fragments.push((b.to_vec(), vigil::base::time::now_us())),
            _ => {}
        }
    }
    let _ = s.close(None);
    r
}

#[test]
fn viewers_get_fragmented_mp4_that_ffmpeg_plays() {
    let t = TestDir::new();
    let site = site(&t, &[("cam", "cam")], &[], "");
    let d = &site.daemon;
    d.wait_streaming("cam");

    // Refusals first: an unknown camera, a page of another origin.
    match connect(d, "nope", None) {
        Err(tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 404);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default());
            assert!(body.contains("unknown camera"), "{body}");
        }
        other => panic!("unknown camera: {:?}", other.map(|_| ())),
    }
    match connect(d, "cam", Some("http://evil.example")) {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("cross-origin: {:?}", other.map(|_| ())),
    }

    // Two viewers at once.
    let a = connect(d, "cam", None).unwrap();
    let b = connect(d, "cam", Some(&d.base)).unwrap();
    let other = std::thread::spawn(move || receive(b, 6));
    let got = receive(a, 6);
    let got_b = other.join().unwrap();
    for r in [&got, &got_b] {
        assert!(
            r.init["codec"].as_str().unwrap().starts_with("avc1."),
            "{}",
            r.init
        );
        assert!(
            r.fragments.len() >= 4 * 15,
            "{} fragments",
            r.fragments.len()
        );
    }
    assert_eq!(got.init["width"], 640, "{}", got.init);

    // The recorder's own scanner: each fragment one picture, the first a keyframe, decode
    // times continuous, the pictures' UTC close to when they arrived.
    let mut file = got.segment.clone();
    for (f, _) in &got.fragments {
        file.extend_from_slice(f);
    }
    let s = vigil::record::fmp4::scan(&mut std::io::Cursor::new(&file)).unwrap();
    assert_eq!(s.problem, None);
    assert_eq!(s.fragments.len(), got.fragments.len());
    assert!(s.fragments[0].samples[0].is_key);
    for w in s.fragments.windows(2) {
        let end = w[0].base_decode_time + w[0].samples[0].duration as u64;
        assert_eq!(w[1].base_decode_time, end);
    }
    let lag_ms: Vec<i64> = (s.fragments.iter().zip(&got.fragments))
        .map(|(f, (_, at))| (at - f.utc_us.unwrap()) / 1000)
        .collect();
    // Loopback: arrival after the picture's time, and not by seconds (the latency figure
    // itself is a benchmark's; this only says the UTC is the picture's).
    assert!(
        lag_ms.iter().all(|&l| (-100..5000).contains(&l)),
        "{lag_ms:?}"
    );

    // FFmpeg reads it as the camera's stream: every picture, at 15 fps.
    let path = t.join("live.mp4");
    std::fs::write(&path, &file).unwrap();
    let (frames, secs) = ffprobe(&path);
    assert_eq!(frames, got.fragments.len() as u64, "{secs} s");
    assert!(
        (secs * 15.0 - frames as f64).abs() <= 2.0,
        "{frames} in {secs} s"
    );
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");

    // Each view is audited, by camera (the refused attempts too, with their status).
    let log = vigil::audit::AuditLog::new(&vigil::storage::Layout::new(&site.storage));
    let views: Vec<_> = (log.records().unwrap().into_iter())
        .filter(|r| r.action == "live.view" && r.params["status"] == 101)
        .collect();
    assert_eq!(views.len(), 2, "{views:?}");
    assert!(
        views
            .iter()
            .all(|r| r.user == "admin" && r.params["path"] == "/api/cameras/cam/live"),
        "{views:?}"
    );
}
