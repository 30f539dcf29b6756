//! `vigil recordings` and `GET /api/recordings` are one read service: the CLI asks the
//! running daemon (which holds the index) or, once it is stopped, reads the index itself,
//! and gives the same answer; both reads are audited under the same action. The daemon runs
//! in this process.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use vigil::base::time::{now_us, rfc3339};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

fn recordings(cfg: &std::path::Path, token: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(VIGIL);
    c.args(["recordings", "--config", cfg.to_str().unwrap()])
        .args(args);
    match token {
        Some(t) => c.env("VIGIL_TOKEN", t),
        None => c.env_remove("VIGIL_TOKEN"),
    };
    c.output().unwrap()
}

#[test]
fn cli_and_api_list_the_same_recordings_and_both_are_audited() {
    let t = TestDir::new();
    let (_cam, port) = fake_camera(&["c"], 0, &[], &t.join("cam.log"));
    let storage = t.join("storage");
    // A fixed port, so that the CLI can ask the running daemon.
    let text = config(
        &storage,
        &[("c", format!("rtsp://127.0.0.1:{port}/c"))],
        "segment_seconds = 2",
    )
    .replace("127.0.0.1:0", &format!("127.0.0.1:{}", free_port()));
    let cfg = t.write("vigil.toml", &text);
    let t0 = now_us() - 1_000_000;
    let daemon = TestDaemon::start(&cfg);
    wait_for(Duration::from_secs(40), "3 segments", || {
        (daemon.camera("c")["segments_written"].as_u64().unwrap() >= 3).then_some(())
    });
    // A range that ended: its gaps do not depend on when it is asked.
    let t1 = now_us() - 500_000;
    let range = [
        "--camera",
        "c",
        "--since",
        &rfc3339(t0),
        "--until",
        &rfc3339(t1),
    ];
    let api = through_the_daemon(&cfg, &daemon, (t0, t1), &range);
    daemon.stop();
    from_the_index(&cfg, (t0, t1), &range, &api);

    // Both reads are in the audit log under one action: through the API as the token's
    // user, from the index as the CLI's.
    let log = vigil::audit::AuditLog::new(&vigil::storage::Layout::new(&storage));
    let listed: Vec<_> = (log.records().unwrap().into_iter())
        .filter(|r| r.action == "recordings.list")
        .collect();
    assert!(listed.iter().any(|r| r.user == "admin"), "{listed:?}");
    assert!(
        listed
            .iter()
            .any(|r| r.source == "cli" && r.params["camera"] == "c"),
        "{listed:?}"
    );
    assert_eq!(log.verify().unwrap().1, Vec::<String>::new());
}

/// `vigil recordings` asks the running daemon (with a token) and answers what the API
/// answers; without a token it says how to give one. Returns the API's answer.
fn through_the_daemon(
    cfg: &std::path::Path,
    daemon: &TestDaemon,
    (t0, t1): (i64, i64),
    range: &[&str],
) -> serde_json::Value {
    let token = daemon.token.clone();
    // Ingest counts what it received, the writer what it wrote.
    let s = daemon.camera("c");
    let (received, written) = (
        s["received_frames"].as_u64().unwrap(),
        s["frames"].as_u64().unwrap(),
    );
    assert!(written > 0 && received >= written, "{s}");

    let api = daemon.get_json(&format!(
        "/api/recordings?camera=c&start={}&end={}",
        rfc3339(t0),
        rfc3339(t1)
    ));
    assert!(api["segments"].as_array().unwrap().len() >= 2, "{api}");
    let out = recordings(cfg, Some(&token), &[range, &["--json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli, api, "the CLI asked the daemon");
    // Without a token the CLI says how to give one, in words (not the lock's OS error).
    let out = recordings(cfg, None, range);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        err.contains("it is locked") && err.contains("VIGIL_TOKEN"),
        "{err}"
    );
    assert!(!err.contains("Os {"), "{err}");
    // Errors come back with the daemon's message.
    let out = recordings(
        cfg,
        Some(&token),
        &[
            "--camera",
            "nope",
            "--since",
            &rfc3339(t0),
            "--until",
            &rfc3339(t1),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown camera"),
        "{out:?}"
    );
    api
}

/// With the daemon stopped, `vigil recordings` reads the index: the same segments.
fn from_the_index(
    cfg: &std::path::Path,
    (t0, t1): (i64, i64),
    range: &[&str],
    api: &serde_json::Value,
) {
    // The daemon stopped: the same answer from the index, as text and as JSON.
    let out = recordings(cfg, None, &[range, &["--json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let direct: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The segment that was open is closed now (its end and reason changed).
    let starts = |v: &serde_json::Value| -> Vec<i64> {
        (v["segments"].as_array().unwrap().iter())
            .map(|s| s["start_us"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(starts(&direct), starts(api));
    assert_eq!(direct["segments"][0], api["segments"][0]);
    let out = recordings(cfg, None, range);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("segment ")).count(),
        api["segments"].as_array().unwrap().len(),
        "{text}"
    );
    // A bad range is refused with the library's message.
    let out = recordings(
        cfg,
        None,
        &[
            "--camera",
            "c",
            "--since",
            &rfc3339(t1),
            "--until",
            &rfc3339(t0),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("end must be after start"));
}
