//! Cases over the API (`/api/cases`): opened, changed, items of every kind added (each
//! placing a hold on its range on each of its cameras) and removed (the holds stay), bad
//! requests refused with a message, every step in the audit log. Against the looped
//! crossing fixture, whose events and motion history are real.

mod common;

use std::time::Duration;

use common::*;
use vigil::base::time::{now_us, rfc3339};

/// The exported package downloaded as a ZIP (as the console's link does): listed for the
/// case, verifies offline, carries a signed `copied` custody record naming who, and
/// the download is audited with that record; unknown names and other forms are refused.
fn download_package(
    d: &TestDaemon,
    t: &TestDir,
    id: u64,
    export: &serde_json::Value,
    (t0, far): (i64, i64),
) {
    let (code, list) = req(d, "get", &format!("/api/cases/{id}/packages"), None);
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["packages"][0]["name"], export["name"], "{list}");
    assert_eq!(
        list["packages"][0]["package_id"], export["package_id"],
        "{list}"
    );
    assert_eq!(list["packages"][0]["custody_records"], 1, "{list}");
    let url = d.url(export["download"].as_str().unwrap());
    let mut resp = ureq::get(&url)
        .header("Authorization", &format!("Bearer {}", d.token))
        .call()
        .unwrap();
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/zip"
    );
    let zip = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    let path = t.join("downloaded.zip");
    std::fs::write(&path, &zip).unwrap();
    let o = std::process::Command::new(VIGIL)
        .args(["evidence", "verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("intact"), "{out}");
    // Python's zipfile (not Vigil) reads the custody chain out of it.
    let py = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read('custody.jsonl').decode())",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let custody = String::from_utf8_lossy(&py.stdout);
    let last: serde_json::Value =
        serde_json::from_str(custody.trim().lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "copied", "{custody}");
    assert_eq!(last["seq"], 2, "{custody}");
    assert_eq!(last["by"], "admin", "{custody}");
    let audit = d.get_json(&format!(
        "/api/audit?start={}&end={}&action=case.package.download",
        rfc3339(t0),
        rfc3339(far)
    ));
    assert_eq!(
        audit["records"][0]["params"]["result"]["custody_seq"], 2,
        "{audit}"
    );
    // Downloads at once (and a HEAD, refused: it copies and records nothing): one
    // record each, one after another, and the package on the recorder still verifies.
    let auth = format!("Bearer {}", d.token);
    let head = ureq::head(&url).header("Authorization", &auth).call();
    assert!(
        matches!(head, Err(ureq::Error::StatusCode(405))),
        "{head:?}"
    );
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (url, auth) = (url.clone(), auth.clone());
            std::thread::spawn(move || {
                let mut r = ureq::get(&url)
                    .header("Authorization", &auth)
                    .call()
                    .unwrap();
                r.body_mut()
                    .with_config()
                    .limit(1 << 30)
                    .read_to_vec()
                    .unwrap()
                    .len()
            })
        })
        .collect();
    for th in threads {
        assert!(th.join().unwrap() > 100_000);
    }
    let o = std::process::Command::new(VIGIL)
        .args(["evidence", "verify", export["dir"].as_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("custody chain: 6 records"),
        "{out}"
    );
    for (path, want) in [
        (format!("/api/cases/{id}/packages/case{id}-nope.zip"), 404),
        (
            format!("/api/cases/{id}/packages/../../index.sled.zip"),
            404,
        ),
        (
            format!(
                "/api/cases/{id}/packages/{}",
                export["name"].as_str().unwrap()
            ),
            400,
        ),
        (
            format!(
                "/api/cases/{}/packages/{}.zip",
                id + 1,
                export["name"].as_str().unwrap()
            ),
            404,
        ),
    ] {
        let (code, r) = req(d, "get", &path, None);
        assert_eq!(code, want, "{path}: {r}");
        assert!(r["error"].is_string(), "{path}: {r}");
    }
}

fn req(
    d: &TestDaemon,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {}", d.token);
    let body = body.map(|b| b.to_string());
    let a = call(
        method,
        &d.url(path),
        &[("Authorization", &auth)],
        body.as_deref(),
    );
    (
        a.code,
        serde_json::from_str(&a.body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn cases_collect_items_and_hold_their_recording() {
    let t = TestDir::new();
    let (_cam, cfg) = crossing_camera(&t, "");
    // A fixed port, so that `vigil case` can ask the running daemon.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("127.0.0.1:0", &format!("127.0.0.1:{}", free_port())),
    )
    .unwrap();
    let t0 = now_us() - 60_000_000;
    let d = TestDaemon::start(&cfg);
    let far = now_us() + 3_600_000_000;
    let events = wait_for(Duration::from_secs(60), "an event on the fixture", || {
        let v = d.get_json(&format!(
            "/api/events?camera=fixture&start={}&end={}",
            rfc3339(t0),
            rfc3339(far)
        ));
        (v["total"].as_u64().unwrap() >= 1).then_some(v)
    });
    let ev = &events["events"][0];
    let ev_id = ev["id"].as_u64().unwrap();

    // Open a case; change it.
    let (code, c) = req(
        &d,
        "post",
        "/api/cases",
        Some(serde_json::json!({
            "title": "Pallet missing from loading bay", "reference": "PD-2026-118",
            "requester": "Det. Ines Ruiz, City Police",
        })),
    );
    assert_eq!(code, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    assert_eq!(id, 1, "cases are numbered 1, 2, ...: {c}");
    assert_eq!(c["items"], serde_json::json!([]));
    let (code, c) = req(
        &d,
        "patch",
        &format!("/api/cases/{id}"),
        Some(serde_json::json!({ "legal_basis": "Police request under section 12" })),
    );
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["legal_basis"], "Police request under section 12");
    assert_eq!(c["reference"], "PD-2026-118");

    let item =
        |body: serde_json::Value| req(&d, "post", &format!("/api/cases/{id}/items"), Some(body));
    let hold_of = |hid: &serde_json::Value| {
        let holds = d.get_json("/api/holds");
        holds["holds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| &h["id"] == hid)
            .cloned()
    };
    // A range: held on its camera, with the case in the reason.
    // (Recorded: from the event's start on.)
    let ev_start = ev["start_ms"].as_i64().unwrap() * 1000;
    let (a, z) = (rfc3339(ev_start), rfc3339(ev_start + 30_000_000));
    let (code, r) = item(
        serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": a, "end": z, "note": "before the theft" }),
    );
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["item"]["n"], 1);
    let h = hold_of(&r["item"]["holds"][0]).expect("the range's hold");
    assert_eq!(
        h["reason"],
        format!("case {id} (PD-2026-118): Pallet missing from loading bay")
    );
    assert_eq!(
        (h["start_us"].as_i64(), h["end_us"].as_i64()),
        (Some(ev_start), Some(ev_start + 30_000_000))
    );
    // An event: its clip window.
    let (code, r) = item(serde_json::json!({ "kind": "event", "event_id": ev_id }));
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["item"]["kind"], "event");
    let full = d.get_json(&format!("/api/events/{ev_id}"));
    let h = hold_of(&r["item"]["holds"][0]).unwrap();
    assert_eq!(h["start"], full["clip_start"], "{full}");
    // A bookmarked instant: 10 s either side, the bookmark's note.
    let at = ev["start_ms"].as_i64().unwrap() * 1000;
    let (code, b) = req(
        &d,
        "post",
        "/api/bookmarks",
        Some(
            serde_json::json!({ "camera": "fixture", "start": rfc3339(at), "note": "pallet leaves" }),
        ),
    );
    assert_eq!(code, 201, "{b}");
    let (code, r) = item(serde_json::json!({ "kind": "bookmark", "bookmark_id": b["id"] }));
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["item"]["note"], "pallet leaves");
    assert_eq!(
        r["item"]["end_us"].as_i64().unwrap() - r["item"]["start_us"].as_i64().unwrap(),
        20_000_000
    );
    // A region search where the crossing passed: polygon, range and intervals kept.
    let poly = serde_json::json!([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]);
    // (The motion history reaches the index a little after the event.)
    wait_for(Duration::from_secs(90), "motion history to search", || {
        let (code, v) = req(
            &d,
            "post",
            "/api/search/region",
            Some(serde_json::json!({
            "cameras": ["fixture"], "polygon": poly, "start": rfc3339(t0), "end": rfc3339(now_us()) })),
        );
        (code == 200 && !v["intervals"].as_array()?.is_empty()).then_some(())
    });
    let (code, r) = item(
        serde_json::json!({ "kind": "search", "cameras": ["fixture"], "polygon": poly, "start": rfc3339(t0), "end": rfc3339(now_us()) }),
    );
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["item"]["polygon"], poly);
    assert!(
        !r["item"]["intervals"].as_array().unwrap().is_empty(),
        "{r}"
    );
    assert_eq!(r["case"]["items"].as_array().unwrap().len(), 4);

    // Refused, with a message, changing nothing.
    for (body, want, msg) in [
        (
            serde_json::json!({ "kind": "event", "event_id": 999_999 }),
            404,
            "no event 999999",
        ),
        (
            serde_json::json!({ "kind": "bookmark", "bookmark_id": 999_999 }),
            404,
            "no bookmark",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": ["nope"], "start": a, "end": z }),
            404,
            "unknown camera",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": [], "start": a, "end": z }),
            400,
            "at least one",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": z, "end": a }),
            400,
            "end must be after start",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": "noon", "end": z }),
            400,
            "start:",
        ),
        (
            serde_json::json!({ "kind": "teleport" }),
            400,
            "unknown variant",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": rfc3339(t0 - 7_200_000_000), "end": rfc3339(t0 - 3_600_000_000) }),
            404,
            "no recording of camera fixture",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": ["fixture", "fixture"], "start": a, "end": z }),
            400,
            "named twice",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": rfc3339(t0 - 25 * 3_600_000_000), "end": z }),
            400,
            "at most 24 hours",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": rfc3339(now_us() + 3_600_000_000), "end": rfc3339(now_us() + 7_200_000_000) }),
            400,
            "starts in the future",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": a, "end": rfc3339(now_us() + 3_600_000_000) }),
            400,
            "ends in the future",
        ),
        (
            serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": a, "end": z, "note": "paid \u{202E}0001\u{202C} EUR" }),
            400,
            "U+202E",
        ),
        (
            serde_json::json!({ "kind": "search", "polygon": [[0.0, 0.0], [0.01, 0.0], [0.0, 0.01]], "start": rfc3339(t0 - 7_200_000_000), "end": rfc3339(t0 - 3_600_000_000) }),
            400,
            "found nothing",
        ),
    ] {
        let (code, r) = item(body.clone());
        assert_eq!(code, want, "{body}: {r}");
        assert!(r["error"].as_str().unwrap().contains(msg), "{body}: {r}");
    }
    for (method, path, body, want, msg) in [
        (
            "post",
            "/api/cases".to_string(),
            serde_json::json!({ "reference": "x" }),
            400,
            "title is required",
        ),
        (
            "post",
            "/api/cases".to_string(),
            serde_json::json!({ "title": "a", "colour": "red" }),
            400,
            "unknown field",
        ),
        (
            "post",
            "/api/cases".to_string(),
            serde_json::json!({ "title": "bell\u{7}" }),
            400,
            "control characters",
        ),
        (
            "patch",
            "/api/cases/999".to_string(),
            serde_json::json!({ "title": "x" }),
            404,
            "no case 999",
        ),
        (
            "patch",
            "/api/cases/abc".to_string(),
            serde_json::json!({ "title": "x" }),
            400,
            "must be a number",
        ),
        (
            "post",
            "/api/cases/999/items".to_string(),
            serde_json::json!({ "kind": "event", "event_id": ev_id }),
            404,
            "no case 999",
        ),
    ] {
        let (code, r) = req(&d, method, &path, Some(body.clone()));
        assert_eq!(code, want, "{method} {path} {body}: {r}");
        assert!(
            r["error"].as_str().unwrap().contains(msg),
            "{method} {path}: {r}"
        );
    }
    assert_eq!(
        d.get_json(&format!("/api/cases/{id}"))["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Removing an item keeps its hold; numbers are not reused.
    let (code, r) = req(&d, "delete", &format!("/api/cases/{id}/items/1"), None);
    assert_eq!(code, 200, "{r}");
    assert!(
        hold_of(&r["item"]["holds"][0]).is_some(),
        "the hold went with the item"
    );
    let (code, _) = req(&d, "delete", &format!("/api/cases/{id}/items/1"), None);
    assert_eq!(code, 404);
    let (_, r) = item(serde_json::json!({ "kind": "event", "event_id": ev_id }));
    assert_eq!(r["item"]["n"], 5, "{r}");
    let list = d.get_json("/api/cases");
    assert_eq!(list["cases"][0]["items"], 4, "{list}");

    // Every step is on record.
    let audit = d.get_json(&format!(
        "/api/audit?start={}&end={}&limit=10000",
        rfc3339(t0),
        rfc3339(far)
    ));
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for want in [
        "case.create",
        "case.update",
        "case.item.add",
        "case.item.remove",
        "case.view",
        "cases.list",
    ] {
        assert!(actions.contains(&want), "no {want} in {actions:?}");
    }
    let added = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "case.item.add" && r["params"]["status"] == 201)
        .count();
    assert_eq!(added, 5);

    // Export through the API: refused without the site's keys, then a package that
    // verifies offline.
    let (code, r) = req(&d, "post", &format!("/api/cases/{id}/export"), None);
    assert_eq!(code, 409, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("vigil keys init"),
        "{r}"
    );
    let (ok, out, err) = vigil_config(
        &cfg,
        &["keys", "init", "--site", "ACME", "--bits", "2048"],
        "",
    );
    assert!(ok, "{out}{err}");
    let (code, r) = req(&d, "post", &format!("/api/cases/{id}/export"), None);
    assert_eq!(code, 201, "{r}");
    let dir = r["dir"].as_str().unwrap();
    assert!(dir.contains("evidence.packages"), "{r}");
    let o = std::process::Command::new(VIGIL)
        .args(["evidence", "verify", dir])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let audit = d.get_json(&format!(
        "/api/audit?start={}&end={}&action=case.export",
        rfc3339(t0),
        rfc3339(far)
    ));
    assert_eq!(audit["records"].as_array().unwrap().len(), 2, "{audit}");
    assert_eq!(
        audit["records"][1]["params"]["result"]["package_id"], r["package_id"],
        "{audit}"
    );
    download_package(&d, &t, id, &r, (t0, far));
    // `vigil evidence export --out` while the daemon runs: made on the recorder, a copy
    // downloaded (a folder here), which verifies.
    let out = t.join("new/folder/cli-copy");
    let o = std::process::Command::new(VIGIL)
        .args(["evidence", "export", "--case", &id.to_string(), "--out"])
        .arg(&out)
        .args(["--config", cfg.to_str().unwrap()])
        .env("VIGIL_TOKEN", &d.token)
        .output()
        .unwrap();
    assert!(
        o.status.success() && out.join("report.pdf").is_file(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let o = std::process::Command::new(VIGIL)
        .args(["evidence", "verify"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // `vigil case` while the daemon runs: through its API, with the token.
    let token = d.token.clone();
    let cli = |args: &[&str]| {
        let o = std::process::Command::new(VIGIL)
            .arg("case")
            .args(args)
            .args(["--config", cfg.to_str().unwrap()])
            .env("VIGIL_TOKEN", &token)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli(&["list"]);
    assert!(
        ok && out.contains("Pallet missing from loading bay (PD-2026-118)")
            && out.contains("4 items"),
        "{out}{err}"
    );
    let (ok, out, err) = cli(&[
        "add",
        &id.to_string(),
        "--event",
        &ev_id.to_string(),
        "--note",
        "from the CLI",
    ]);
    assert!(ok && out.contains("item 6 added"), "{out}{err}");
    let (ok, _, err) = cli(&["add", &id.to_string(), "--event", "999999"]);
    assert!(!ok && err.contains("no event 999999"), "{err}");
    let (ok, out, _) = cli(&["show", &id.to_string(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        ok && v["items"].as_array().unwrap().len() == 5 && v["items"][4]["note"] == "from the CLI",
        "{v}"
    );
    d.stop();

    // With the daemon stopped: on the index, recording each step itself.
    let (ok, out, err) = cli(&[
        "create",
        "--title",
        "Van at the gate",
        "--reference",
        "INS-77",
    ]);
    assert!(ok, "{out}{err}");
    let id2 = out.trim().to_owned();
    let (ok, out, err) = cli(&[
        "add",
        &id2,
        "--camera",
        "fixture",
        "--start",
        &rfc3339(ev_start),
        "--end",
        &rfc3339(ev_start + 10_000_000),
    ]);
    assert!(ok && out.contains("item 1 added"), "{out}{err}");
    // A region search from the CLI (its corners as one argument).
    let (ok, out, err) = cli(&[
        "add",
        &id2,
        "--camera",
        "fixture",
        "--polygon",
        "0,0 1,0 1,1 0,1",
        "--start",
        &rfc3339(t0),
        "--end",
        &rfc3339(now_us()),
    ]);
    assert!(ok && out.contains("item 2 added"), "{out}{err}");
    let (ok, out, err) = cli(&["add", &id2, "--camera", "fixture", "--start", &rfc3339(t0)]);
    assert!(!ok && err.contains("give one of"), "{out}{err}");
    let (ok, out, _) = cli(&["show", &id2]);
    assert!(
        ok && out.contains("Van at the gate") && out.contains("item 1: range on fixture"),
        "{out}"
    );
    let log = std::fs::read_to_string(t.join("storage/audit.log")).unwrap();
    let cli_records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["source"] == "cli")
        .collect();
    for want in ["case.create", "case.item.add", "case.view"] {
        assert!(
            cli_records.iter().any(|r| r["action"] == want),
            "no {want} from the CLI"
        );
    }
}
