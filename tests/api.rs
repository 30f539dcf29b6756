//! HTTP API parameter handling: every bad parameter gets a 4xx with a message, never a 500.
//! The daemon runs in this process ([`TestDaemon`]).

mod common;

use common::*;

#[test]
fn bad_recordings_parameters_get_4xx_with_message() {
    let t = TestDir::new();
    let cfg = idle_camera_config(&t, "");
    let d = TestDaemon::start(&cfg);
    // The first request after the listener opens already lists every configured camera
    // (even one that never connects), so clients never see a partial list.
    let cams = d.get_json("/api/cameras");
    let names: Vec<_> = cams["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, vec![serde_json::json!("cam")], "{cams}");
    assert_eq!(cams["cameras"][0]["motion_enabled"], true, "{cams}");
    let r = |q: &str| d.get_status(&format!("/api/recordings{q}"));
    let cases = [
        ("", 400, "missing parameter: camera"),
        ("?camera=nope", 404, "unknown camera"),
        ("?camera=cam&start=yesterday", 400, "start:"),
        ("?camera=cam&end=2026-13-01T00:00:00Z", 400, "end:"),
        (
            "?camera=cam&start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            400,
            "end must be after start",
        ),
        (
            "?camera=cam&start=2020-01-01T00:00:00Z&end=2026-01-01T00:00:00Z",
            400,
            "longer than 366 days",
        ),
    ];
    for (q, code, msg) in cases {
        let (got, body) = r(q);
        assert_eq!(got, code, "{q}: {body}");
        assert!(body["error"].as_str().unwrap().contains(msg), "{q}: {body}");
    }
    let (ok, body) = r("?camera=cam&start=2026-01-01T00:00:00%2B01:00&end=2026-01-01T01:00:00Z");
    assert_eq!(ok, 200, "{body}");
    assert_eq!(body["start"], "2025-12-31T23:00:00Z");
    let (code, body) = d.get_status("/api/nothing-here");
    assert_eq!(code, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("/api/nothing-here"),
        "{body}"
    );
    // A known path with a method it does not take: 405 with a message.
    let mut resp = d.delete("/api/events/counts").call().unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let body: serde_json::Value = resp.body_mut().read_json().unwrap();
    assert!(body["error"].as_str().unwrap().contains("DELETE"), "{body}");
    // A plain GET of a WebSocket route: a 4xx with a JSON message saying so.
    for path in [
        "/api/alerts/ws",
        "/api/cameras/cam/live",
        "/api/cameras/cam/motion",
    ] {
        let (code, body) = d.get_status(path);
        assert!((400..500).contains(&code), "{path}: {code} {body}");
        assert!(
            body["error"].as_str().unwrap().contains("WebSocket"),
            "{path}: {body}"
        );
    }
    assert_eq!(
        ureq::get(&d.url("/health"))
            .call() // no credentials: /health is public
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
        "ok\n"
    );
    d.stop();
}

/// The OpenAPI document and the router agree: every route of the router is documented
/// with its method and every documented operation is routed (read from the source), and
/// the running daemon serves the document and answers each documented GET.
#[test]
fn openapi_document_matches_the_routes() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../src/api/openapi.json")).unwrap();
    let src = include_str!("../src/api/mod.rs");
    let mut routed = std::collections::BTreeSet::new();
    for part in src.split(".route(\"").skip(1) {
        let (path, rest) = part.split_once('"').unwrap();
        let method = rest.trim_start_matches(", ").split('(').next().unwrap();
        routed.insert((path.to_string(), method.to_string()));
    }
    let mut documented = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((path.clone(), method.clone()));
        }
    }
    assert_eq!(routed, documented, "router vs openapi.json");

    let t = TestDir::new();
    let cfg = idle_camera_config(&t, "");
    let d = TestDaemon::start(&cfg);
    assert_eq!(d.get_json("/api/openapi.json"), doc);
    for (path, method) in &documented {
        if method != "get" || path == "/api/alerts/stream" {
            continue; // POST is tested elsewhere; the stream never ends
        }
        let mut r = d.get(&fill_path(path)).call().unwrap();
        let code = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        // An unrouted path is axum's bare 404; handlers answer, or refuse with a message.
        assert!(
            code != 404 || body.contains("\"error\""),
            "{path}: {code} {body:?}"
        );
        assert!(code < 500, "{path}: {code} {body}");
    }
    d.stop();
}
