//! Clips end to end: a real RTSP camera recorded into short segments, then clips of
//! arbitrary ranges (not on keyframes, across segments) over HTTP and with `vigil export`,
//! checked with ffprobe (frames and duration match the request), byte ranges, ETag, and
//! bad requests.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use vigil::base::time::rfc3339;

fn get_bytes(
    d: &TestDaemon,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = d.get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.call().unwrap();
    let h = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    (status, h, body)
}

fn header<'a>(h: &'a [(String, String)], k: &str) -> &'a str {
    &h.iter().find(|(n, _)| n == k).unwrap().1
}

#[test]
fn clips_match_the_requested_range() {
    let t = TestDir::new();
    let metrics_port = free_port();
    let r = site(
        &t,
        &[("cam", "a"), ("cam2", "b")],
        &["--gop-seconds", "1"],
        &format!("segment_seconds = 3\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\""),
    );
    // Wait for 10 s of indexed recording.
    let segs = wait_for(Duration::from_secs(40), "10 s recorded", || {
        let v = r.daemon.get_json(&format!(
            "/api/recordings?camera=cam&start={}&end={}",
            rfc3339(vigil::base::time::now_us() - 600_000_000),
            rfc3339(vigil::base::time::now_us() + 60_000_000)
        ));
        let segs = v["segments"].as_array().unwrap().clone();
        let first = segs.first()?["start_us"].as_i64()?;
        let last = segs.last()?["end_us"].as_i64()?;
        (last - first > 10_500_000).then_some(segs)
    });
    metrics_served_both_ways(&r.daemon, metrics_port);

    // 6 s from 1.3 s in: not on a keyframe (1 s GOP), across a segment boundary (3 s).
    let start = segs[0]["start_us"].as_i64().unwrap() + 1_300_000;
    let end = start + 6_000_000;
    let url = format!(
        "/api/clips/cam.mp4?start={}&end={}",
        rfc3339(start),
        rfc3339(end)
    );
    let (code, h, body) = get_bytes(&r.daemon, &url, &[]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&h, "content-type"), "video/mp4");
    assert_eq!(header(&h, "content-length"), body.len().to_string());
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    let clip = t.join("clip.mp4");
    std::fs::write(&clip, &body).unwrap();
    let (frames, duration) = ffprobe(&clip);
    // 15 fps: 90 frames presented; the frames before the start (from the keyframe) are
    // decoded but not shown.
    assert!((89..=91).contains(&frames), "{frames} frames");
    assert!((duration - 6.0).abs() < 0.1, "{duration} s");

    ranges_and_etag(&r.daemon, &url, &body, &h);

    bad_clip_requests_refused(&r.daemon, start, end);

    clip_views_audited(&r.daemon, start, end);

    // `vigil export`: from the index once the daemon is stopped.
    let export = |out: &std::path::Path| {
        Command::new(VIGIL)
            .args([
                "export",
                "--config",
                r.cfg.to_str().unwrap(),
                "--camera",
                "cam",
            ])
            .args(["--start", &rfc3339(start), "--end", &rfc3339(end), "-o"])
            .arg(out)
            .output()
            .unwrap()
    };
    let cfg_text = std::fs::read_to_string(&r.cfg).unwrap();
    assert!(cfg_text.contains("127.0.0.1:0"));
    // The config's port is 0 (chosen at start): while the daemon runs, export says why it
    // cannot proceed instead of failing obscurely.
    let o = export(&t.join("running.mp4"));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("listen port 0"),
        "{o:?}"
    );
    r.daemon.stop();
    let out = t.join("exported.mp4");
    let o = export(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        body,
        "export equals the HTTP clip"
    );
    // The same window from both cameras into one folder.
    let dir = t.join("case-42");
    let o = Command::new(VIGIL)
        .args(["export", "--config", r.cfg.to_str().unwrap()])
        .args(["--camera", "cam", "--camera", "cam2"])
        .args(["--start", &rfc3339(start), "--end", &rfc3339(end), "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    for (f, cam) in files.iter().zip(["cam-", "cam2-"]) {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(cam) && name.ends_with(".mp4"), "{name}");
        let (frames, secs) = ffprobe(f);
        assert!(
            (secs - 6.0).abs() < 0.1 && (89..=91).contains(&frames),
            "{name}: {frames} frames, {secs} s"
        );
    }

    audit_chain_finds_tampering(&r.cfg, &r.storage);
}

/// Prometheus metrics on their own address without authentication, and on the API's
/// with a token only.
fn metrics_served_both_ways(d: &TestDaemon, metrics_port: u16) {
    // Prometheus metrics on their own address, without authentication.
    let text = ureq::get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("vigil_camera_up{camera=\"cam\"}"), 1.0);
    assert!(value("vigil_camera_frames_total{camera=\"cam2\"}") > 100.0);
    assert!(value("vigil_camera_fps{camera=\"cam\"}") > 10.0);
    assert!(value("vigil_camera_segments_written_total{camera=\"cam\"}") >= 3.0);
    assert!(value("vigil_storage_bytes") > 0.0);
    // And on the API's, with a token only.
    let api = d
        .get("/metrics")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(api.contains("vigil_camera_up{camera=\"cam\"} 1"), "{api}");
    let anonymous = lenient().get(&d.url("/metrics")).call().unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// Byte ranges, 416 past the end, 304 for the ETag, and the same bytes again.
fn ranges_and_etag(d: &TestDaemon, url: &str, body: &[u8], h: &[(String, String)]) {
    // Byte ranges and the ETag.
    let etag = header(h, "etag").to_string();
    let len = body.len();
    for (range, from, to) in [
        ("bytes=0-99".to_string(), 0, 100),
        (format!("bytes={}-", len - 1000), len - 1000, len),
        ("bytes=-500".to_string(), len - 500, len),
        (format!("bytes=1000-{}", len / 2), 1000, len / 2 + 1),
    ] {
        let (code, h, part) = get_bytes(d, url, &[("Range", &range)]);
        assert_eq!(code, 206, "{range}");
        assert_eq!(part, body[from..to], "{range}");
        assert_eq!(
            header(&h, "content-range"),
            format!("bytes {from}-{}/{len}", to - 1)
        );
    }
    let (code, h, _) = get_bytes(d, url, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(code, 416);
    assert_eq!(header(&h, "content-range"), format!("bytes */{len}"));
    let (code, _, _) = get_bytes(d, url, &[("If-None-Match", &etag)]);
    assert_eq!(code, 304);
    // The same request again is byte-identical (and has the same ETag).
    let (_, h2, again) = get_bytes(d, url, &[]);
    assert_eq!(header(&h2, "etag"), etag);
    assert!(again == body);
}

/// Bad clip requests get a 4xx with a message.
fn bad_clip_requests_refused(d: &TestDaemon, start: i64, end: i64) {
    // Bad requests.
    for (u, code) in [
        (
            format!(
                "/api/clips/nope.mp4?start={}&end={}",
                rfc3339(start),
                rfc3339(end)
            ),
            404,
        ),
        (
            format!(
                "/api/clips/cam.mp4?start={}&end={}",
                rfc3339(end),
                rfc3339(start)
            ),
            400,
        ),
        (format!("/api/clips/cam.mp4?start={}", rfc3339(start)), 400),
        (
            format!(
                "/api/clips/cam.mp4?start={}&end={}",
                rfc3339(start),
                rfc3339(start + 90_000_000_000)
            ),
            400,
        ),
        (
            format!(
                "/api/clips/cam.mp4?start={}&end={}",
                rfc3339(start - 86_400_000_000),
                rfc3339(start - 86_000_000_000)
            ),
            404,
        ),
        (
            format!(
                "/api/clips/cam.avi?start={}&end={}",
                rfc3339(start),
                rfc3339(end)
            ),
            404,
        ),
    ] {
        let (got, body) = d.get_status(&u);
        assert_eq!(got, code, "{u}: {body}");
        assert!(body["error"].is_string(), "{u}: {body}");
    }
}

/// The clip views are in the audit log, once per view.
fn clip_views_audited(d: &TestDaemon, start: i64, end: i64) {
    // The audit log recorded the clip views (once per view, not per byte range), with the
    // client's address and the range asked for.
    let audit = d.get_json(&format!(
        "/api/audit?start={}&end={}",
        rfc3339(vigil::base::time::now_us() - 600_000_000),
        rfc3339(vigil::base::time::now_us() + 60_000_000)
    ));
    let views: Vec<&serde_json::Value> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["action"] == "clip.view"
                && r["params"]["path"] == "/api/clips/cam.mp4"
                && r["params"]["query"]["end"] == rfc3339(end)
        })
        .collect();
    // The first GET, "bytes=0-99" (other ranges are the same view), the 304, the repeat.
    let codes: Vec<u64> = views
        .iter()
        .map(|v| v["params"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, vec![200, 206, 304, 200], "{audit}");
    // By the user whose token made the requests.
    assert!(views.iter().all(|v| v["user"] == "admin"), "{audit}");
    // Refused requests are recorded too.
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["params"]["path"] == "/api/clips/nope.mp4" && r["params"]["status"] == 404)
    );
    assert!(
        views[0]["source"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(views[0]["params"]["query"]["start"], rfc3339(start));
    assert_eq!(views[0]["params"]["status"], 200);
}

/// Every view and export is in the hash-chained audit log; tampering is found.
fn audit_chain_finds_tampering(cfg: &std::path::Path, storage: &std::path::Path) {
    // Every view and export is in the hash-chained audit log; tampering is found.
    let verify = || {
        Command::new(VIGIL)
            .args(["audit", "verify", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = verify();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}");
    assert!(out.contains("chain intact"), "{out}");
    let log = storage.join("audit.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("\"clip.export\"").count(),
        3,
        "one per exported file"
    );
    let mut lines: Vec<&str> = text.lines().collect();
    // The first request served over HTTP: its source address is changed.
    let i = lines.iter().position(|l| l.contains("127.0.0.1")).unwrap();
    let edited = lines[i].replace("127.0.0.1", "10.0.0.9");
    lines[i] = &edited;
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let o = verify();
    assert_eq!(o.status.code(), Some(3));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let want = format!("line {}: does not follow line {}", i + 2, i + 1);
    assert!(out.contains(&want), "{want}: {out}");
}
