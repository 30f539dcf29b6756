//! The admin's phases of `tests/console.rs`: Setup (the zone editor, the live motion
//! overlay, the health report) and Audit, against the daemon that test started.

use std::time::Duration;

use super::browser::{Browser, log_in};
use super::common::*;
use super::{day_around_now, ms};
use vigil::base::time::rfc3339;

fn sha(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// An admin in Setup moves a corner of the fixture's zone "left" and draws a new zone
/// where only the bobbing object goes; saved, the config file has both (its comments
/// and the other camera untouched), the audit has the old and new hashes, and the next
/// event of the bobbing object is in the new zone, with no gap in the recording. A zone
/// that would make the config invalid is refused with the config's own message.
pub fn admin_moves_a_zone(t: &TestDir, d: &TestDaemon, cfg: &std::path::Path) {
    let before = std::fs::read_to_string(cfg).unwrap();
    let mut b = Browser::start_sized(t, 1400, 1000);
    log_in(&mut b, &d.base, "ada");
    b.wait("!!document.querySelector('#wall figure')", "the wall");
    b.eval("location.hash = '#setup?camera=fixture'; true");
    b.wait(
        "!document.getElementById('view-setup').hidden && window.vigilSetup && vigilSetup.editor && \
         vigilSetup.editor.camera === 'fixture' && document.getElementById('zone-picture').naturalWidth > 0",
        "the zone editor with the fixture's picture",
    );
    // The corner of "left" at (0.5, 0.3) to (0.45, 0.3).
    b.pointer(
        "#zone-canvas",
        &[
            ("pointerdown", 0.5, 0.3),
            ("pointermove", 0.47, 0.3),
            ("pointermove", 0.45, 0.3),
            ("pointerup", 0.45, 0.3),
        ],
    );
    // A new zone, clicked corner by corner, named "bobber".
    b.eval("document.getElementById('zone-add').click(); true");
    b.click_at(
        "#zone-canvas",
        &[[0.75, 0.2], [0.9, 0.2], [0.9, 0.35], [0.75, 0.35]],
    );
    b.eval(
        "(() => { const i = [...document.querySelectorAll('#zone-list .z-name')].pop(); \
           i.value = 'bobber'; i.dispatchEvent(new Event('change')); return true; })()",
    );
    let saved_at = vigil::base::time::now_us();
    b.eval("document.getElementById('zone-save').click(); true");
    b.wait(
        "vigilSetup.saved === 1 || !!vigilSetup.saveError",
        "the zones saved",
    );
    assert_eq!(
        b.eval("vigilSetup.saveError || null"),
        serde_json::Value::Null
    );
    health_report(&mut b);
    motion_overlay(&mut b);
    b.screenshot(&t.join("setup.png"));
    drop(b);

    let after = std::fs::read_to_string(cfg).unwrap();
    assert!(after.contains("name = \"bobber\""), "{after}");
    let zones = vigil::config::edit::camera_zones(&after, "fixture")
        .unwrap()
        .zones;
    let left = &zones.iter().find(|z| z.name == "left").unwrap().polygon;
    assert!(
        (left[1][0] - 0.45).abs() < 0.01 && (left[1][1] - 0.3).abs() < 0.01,
        "the moved corner: {left:?}"
    );
    assert_eq!(left.len(), 4);
    assert!(
        after.contains("# The loading bay."),
        "the comment was lost:\n{after}"
    );
    let tail = |s: &str| s[s.find("name = \"cam2\"").unwrap()..].to_owned();
    assert_eq!(tail(&after), tail(&before), "the other camera changed");
    // The audit has the change with both hashes; the new one is the file's.
    let audit = d.get_json(&format!(
        "/api/audit?{}&action=config.zones",
        day_around_now()
    ));
    let rec = &audit["records"][0];
    assert_eq!(rec["user"], "ada", "{audit}");
    assert_eq!(rec["params"]["old_sha256"], sha(&before));
    assert_eq!(rec["params"]["new_sha256"], sha(&after));

    // The next bobbing object is in "bobber" (applied once no event was open).
    // (Until the analysis takes the zones, the index does not know "bobber": 404.)
    let ev = wait_for(Duration::from_secs(60), "an event in the new zone", || {
        let (_, v) = d.get_status(&format!(
            "/api/events?camera=fixture&zone=bobber&start={}&end={}",
            rfc3339(saved_at),
            rfc3339(saved_at + 3_600_000_000)
        ));
        v["events"].as_array()?.first().cloned()
    });
    assert!(
        ev["zones"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("right")),
        "{ev}"
    );
    assert!(d.camera("fixture")["zones_changed"].as_u64().unwrap() >= 1);
    // Recording went on: no gap around the change.
    let rec = d.get_json(&format!(
        "/api/recordings?camera=fixture&start={}&end={}",
        rfc3339(saved_at - 5_000_000),
        rfc3339(ms(&ev, "end_ms") * 1000)
    ));
    assert_eq!(rec["gaps"], serde_json::json!([]), "{rec}");
    zone_edits_refused(d, cfg, &before, &after);
    renames_a_zone(t, d, cfg);
}

/// A zone renamed in the editor keeps its table in the file: the comment above it stays
/// with it under the new name.
fn renames_a_zone(t: &TestDir, d: &TestDaemon, cfg: &std::path::Path) {
    let mut b = Browser::start_sized(t, 1400, 1000);
    log_in(&mut b, &d.base, "ada");
    b.wait("!!document.querySelector('#wall figure')", "the wall");
    b.eval("location.hash = '#setup?camera=fixture'; true");
    b.wait(
        "!document.getElementById('view-setup').hidden && window.vigilSetup && vigilSetup.editor && \
         vigilSetup.editor.camera === 'fixture' && vigilSetup.editor.zones.length > 0",
        "the zone editor",
    );
    let first = b.eval("vigilSetup.editor.zones[0].name");
    let first = first.as_str().unwrap().to_owned();
    b.eval(
        "(() => { const i = document.querySelector('#zone-list .z-name'); \
           i.value = 'dock'; i.dispatchEvent(new Event('change')); \
           document.getElementById('zone-save').click(); return true; })()",
    );
    b.wait(
        "vigilSetup.saved >= 1 || !!vigilSetup.saveError",
        "the renamed zone saved",
    );
    assert_eq!(
        b.eval("vigilSetup.saveError || null"),
        serde_json::Value::Null
    );
    let text = std::fs::read_to_string(cfg).unwrap();
    assert!(
        text.contains("# The loading bay.\n[[cameras.zones]]\nname = \"dock\"")
            && !text.contains(&format!("name = \"{first}\"")),
        "{first} renamed to dock:\n{text}"
    );
}

/// Zone edits the API refuses, each leaving the file as it was: a zone of two corners
/// (400 with the config's message), a file changed since it was read (409), an unknown
/// camera (404), a body without masks (400).
fn zone_edits_refused(d: &TestDaemon, cfg: &std::path::Path, before: &str, after: &str) {
    let (before, after) = (before.to_owned(), after.to_owned());
    // A zone of two corners: refused with the config's message; the file unchanged.
    let mut r = ureq::put(&d.url("/api/cameras/fixture/zones"))
        .header("Authorization", &format!("Bearer {}", d.token))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(serde_json::json!({
            "zones": [{ "name": "thin", "polygon": [[0.1, 0.1], [0.2, 0.2]] }],
            "masks": [], "config_sha256": sha(&after),
        }))
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let msg = r.body_mut().read_to_string().unwrap();
    // The message names the zone and the problem, not a line of text never written.
    assert!(
        msg.contains("nothing was written")
            && msg.contains("zone \\\"thin\\\": polygon needs at least 3 points")
            && !msg.contains("vigil.toml:"),
        "{msg}"
    );
    // A file changed since it was read (409), an unknown camera (404), a body without
    // masks (400: leaving them out must not delete them).
    let put = |path: &str, body: serde_json::Value| {
        let mut r = ureq::put(&d.url(path))
            .header("Authorization", &format!("Bearer {}", d.token))
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let zone =
        serde_json::json!([{ "name": "a", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.1, 0.3]] }]);
    let (code, msg) = put(
        "/api/cameras/fixture/zones",
        serde_json::json!({ "zones": zone, "masks": [], "config_sha256": sha(&before) }),
    );
    assert_eq!(code, 409, "{msg}");
    let (code, msg) = put(
        "/api/cameras/nope/zones",
        serde_json::json!({ "zones": zone, "masks": [], "config_sha256": sha(&after) }),
    );
    assert_eq!(code, 404, "{msg}");
    let (code, msg) = put(
        "/api/cameras/fixture/zones",
        serde_json::json!({ "zones": zone, "config_sha256": sha(&after) }),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("masks"), "{msg}");
    assert_eq!(std::fs::read_to_string(cfg).unwrap(), after);
    // The invalid and the stale edit are on record, with why they were refused.
    let refused = d.get_json(&format!(
        "/api/audit?{}&action=config.zones.refused",
        super::day_around_now()
    ));
    let statuses: Vec<_> = refused["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["params"]["status"].as_u64().unwrap())
        .collect();
    assert!(
        statuses.contains(&400) && statuses.contains(&409),
        "{refused}"
    );
}

/// The live motion overlay: frames arrive while it is on; one with motion has changed
/// pixels, kept-blob cells and the zones they hit, and the editor says so.
fn motion_overlay(b: &mut Browser) {
    b.eval("document.getElementById('overlay-on').click(); true");
    b.wait(
        "vigilSetup.overlay.frames > 0 && !!vigilSetup.overlay.last && vigilSetup.overlay.last.motion && \
         vigilSetup.overlay.last.zones.length > 0",
        "an overlay frame with motion in a zone",
    );
    let o = b.eval("vigilSetup.overlay.last");
    assert!(
        o["changed"].as_str().unwrap().chars().any(|c| c != '0'),
        "{o}"
    );
    assert!(
        o["cells"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_u64().unwrap() > 0),
        "{o}"
    );
    let text = b.eval("document.getElementById('overlay-state').textContent");
    assert!(
        text.as_str().unwrap().starts_with("motion, score"),
        "{text}"
    );
    b.eval("document.getElementById('overlay-on').click(); true");
    b.wait("vigilSetup.overlay.socket === null", "the overlay off");
}

/// The health report of each camera: recorded share, gaps, motion per zone.
fn health_report(b: &mut Browser) {
    b.wait("vigilSetup.loaded === 2", "both cameras' reports");
    let fixture =
        b.eval("document.querySelector('article.health[data-camera=fixture]').textContent");
    let fixture = fixture.as_str().unwrap();
    for want in [
        "streaming since",
        "Recorded",
        "% of the period",
        "left",
        "right",
        "events",
    ] {
        assert!(
            fixture.contains(want),
            "no {want:?} in the report: {fixture}"
        );
    }
    let r = b.eval("vigilSetup.reports.fixture");
    assert!(r["recorded"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["motionSeconds"].as_u64().unwrap() > 0, "{r}");
}

/// An admin's Audit view: the investigator's records by user and action, newest first,
/// and the chain verified intact.
pub fn admin_reads_the_audit(t: &TestDir, d: &TestDaemon) {
    let mut b = Browser::start_sized(t, 1400, 900);
    log_in(&mut b, &d.base, "ada");
    b.wait("!!document.querySelector('#wall figure')", "the wall");
    b.eval("location.hash = '#audit?user=ivan&action=clip.view'; true");
    b.wait(
        "!document.getElementById('view-audit').hidden && vigilAudit.records.length > 0",
        "the investigator's clip views",
    );
    let rows = b.eval("vigilAudit.records.map(r => [r.user, r.action, r.seq])");
    let rows = rows.as_array().unwrap();
    assert!(
        rows.iter().all(|r| r[0] == "ivan" && r[1] == "clip.view"),
        "{rows:?}"
    );
    let seqs: Vec<u64> = rows.iter().map(|r| r[2].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {seqs:?}"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#audit-rows tr').length")
            .as_u64()
            .unwrap() as usize,
        rows.len()
    );
    b.eval("document.getElementById('audit-verify').click(); true");
    b.wait(
        "vigilAudit.verified && vigilAudit.verified.intact === true",
        "the chain verified",
    );
    assert!(
        b.eval("document.getElementById('audit-verify-state').textContent")
            .as_str()
            .unwrap()
            .starts_with("intact")
    );
    b.screenshot(&t.join("audit.png"));
}
