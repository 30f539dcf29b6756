//! Bookmarks in the running daemon (in this process): set as an instant or a range with a
//! note, listed by range, camera and text, deleted by their author or an admin, refused
//! with a message when malformed, and audited.

mod common;

use common::*;

fn post_json(d: &TestDaemon, token: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut r = lenient()
        .post(&d.url("/api/bookmarks"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(body)
        .unwrap();
    let code = r.status().as_u16();
    (code, r.body_mut().read_json().unwrap_or_default())
}

#[test]
fn bookmarks_are_set_searched_and_deleted_by_their_author() {
    let t = TestDir::new();
    let cfg = idle_camera_config(&t, "");
    let (ok, _, err) = vigil_config(
        &cfg,
        &["user", "add", "ines", "--role", "investigator"],
        "ines's long password\n",
    );
    assert!(ok, "{err}");
    let (ok, ines, err) = vigil_config(&cfg, &["token", "create", "--user", "ines"], "");
    assert!(ok, "{err}");
    let ines = ines.trim().to_owned();
    let d = TestDaemon::start(&cfg);

    // An instant and a range, by ines.
    let (code, van) = post_json(
        &d,
        &ines,
        serde_json::json!({"camera": "cam", "start": "2026-11-30T02:10:00Z", "note": "Van at the gate"}),
    );
    assert_eq!(code, 201, "{van}");
    assert_eq!(van["end"], van["start"], "an instant: {van}");
    let (code, pallet) = post_json(
        &d,
        &ines,
        serde_json::json!({"camera": "cam", "start": "2026-11-30T02:40:00Z",
                           "end": "2026-11-30T02:45:00Z", "note": "the pallet leaves"}),
    );
    assert_eq!(code, 201, "{pallet}");
    assert_eq!(pallet["user"], "ines");

    // Listed in time order; by range, camera and text (case-insensitive).
    let list = |q: &str| d.get_json(&format!("/api/bookmarks?{q}"))["bookmarks"].clone();
    let night = "start=2026-11-30T02:00:00Z&end=2026-11-30T04:00:00Z";
    let all = list(night);
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all[0]["note"], "Van at the gate");
    assert_eq!(list(&format!("{night}&q=VAN"))[0]["id"], van["id"]);
    assert_eq!(list(&format!("{night}&q=lorry")), serde_json::json!([]));
    assert_eq!(
        list(&format!("{night}&camera=cam"))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A range overlapping the pallet's only.
    let late = list("start=2026-11-30T02:44:00Z&end=2026-11-30T03:00:00Z");
    assert_eq!(late.as_array().unwrap().len(), 1, "{late}");
    assert_eq!(late[0]["id"], pallet["id"]);

    // Malformed requests: a 4xx that says why.
    for (body, code, words) in [
        (
            serde_json::json!({"camera": "cam", "start": "2026-11-30T02:10:00Z", "note": " "}),
            400,
            "note",
        ),
        (
            serde_json::json!({"camera": "nope", "start": "2026-11-30T02:10:00Z", "note": "x"}),
            404,
            "unknown camera",
        ),
        (
            serde_json::json!({"camera": "cam", "start": "2026-11-30T03:00:00Z", "end": "2026-11-30T02:00:00Z", "note": "x"}),
            400,
            "end must be after start",
        ),
        (
            serde_json::json!({"camera": "cam", "start": "yesterday", "note": "x"}),
            400,
            "start",
        ),
    ] {
        let (got, v) = post_json(&d, &ines, body.clone());
        assert_eq!(got, code, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(words), "{body}: {v}");
    }
    let (code, v) = d.get_status("/api/bookmarks?start=2026-11-30T02:00:00Z");
    assert_eq!(code, 400, "{v}");

    // Deleting: only by its author or an admin.
    let mut r = lenient()
        .post(&d.url("/api/bookmarks"))
        .header("Authorization", format!("Bearer {}", d.token))
        .send_json(serde_json::json!({"camera": "cam", "start": "2026-11-30T03:00:00Z", "note": "admin's"}))
        .unwrap();
    let admins: serde_json::Value = r.body_mut().read_json().unwrap();
    let del = |token: &str, id: &serde_json::Value| {
        let mut r = lenient()
            .delete(&d.url(&format!("/api/bookmarks/{id}")))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let code = r.status().as_u16();
        (
            code,
            r.body_mut()
                .read_json::<serde_json::Value>()
                .unwrap_or_default(),
        )
    };
    let (code, v) = del(&ines, &admins["id"]);
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("author"), "{v}");
    assert_eq!(del(&d.token, &pallet["id"]).0, 200, "an admin may");
    assert_eq!(del(&ines, &van["id"]).0, 200, "its author may");
    assert_eq!(del(&ines, &van["id"]).0, 404);
    let left = list(night);
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left[0]["id"], admins["id"]);

    // Audited: who set what, and who deleted.
    d.stop();
    let log = vigil::audit::AuditLog::new(&vigil::storage::Layout::new(t.join("storage")));
    let records = log.records().unwrap();
    let set = (records.iter())
        .find(|r| r.action == "bookmark.create" && r.user == "ines")
        .expect("bookmark.create");
    assert_eq!(set.params["body"]["note"], "Van at the gate");
    assert!(
        records
            .iter()
            .any(|r| r.action == "bookmark.delete" && r.user == "ines")
    );
    assert!(records.iter().any(|r| r.action == "bookmarks.list"));
}
