//! An index written by the first release (`fixtures/index/v1/`, schema 1) opens with
//! this build (migrated to schema 2: segment records gain `sha256`) and reads back what that release's API said about it: segments, events
//! with their zones, the acknowledgement, the hold, the motion history. The schema moves
//! only with a migration this test then exercises (see `index::SCHEMA_VERSION`).

mod common;

use common::*;
use vigil::index::{EventScope, Index};

fn json(name: &str) -> serde_json::Value {
    let p = fixture(&format!("index/v1/{name}"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn index_of_the_previous_release_opens_and_reads_the_same() {
    let t = TestDir::new();
    let path = t.join("index.sled");
    copy_dir(&fixture("index/v1/index.sled"), &path);
    // Twice: the first open migrates (when there is anything to migrate), the second
    // reads the result.
    drop(Index::open(&path).unwrap());
    let ix = Index::open(&path).unwrap();
    let cams = ix.cameras().unwrap();
    assert_eq!(cams.len(), 1);
    let (name, cam) = (&cams[0].0, cams[0].1);
    assert_eq!(name, "cam");

    same_segments(&ix, cam);
    let zone_ids = same_events(&ix, cam);
    same_holds(&ix);
    same_motion_history(&ix, cam, &zone_ids);

    // And it takes new writes like any index.
    let id = ix.new_event_id().unwrap();
    assert!(id > 4, "ids restart below the old ones: {id}");
}

/// The segments read as the previous release listed them.
fn same_segments(ix: &Index, cam: u32) {
    let rec = json("recordings.json");
    let want: Vec<(i64, i64, u64, u64, String)> = (rec["segments"].as_array().unwrap().iter())
        .map(|s| {
            (
                s["start_us"].as_i64().unwrap(),
                s["end_us"].as_i64().unwrap(),
                s["frames"].as_u64().unwrap(),
                s["bytes"].as_u64().unwrap(),
                s["end_reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let got: Vec<(i64, i64, u64, u64, String)> = ix
        .camera_segments(cam)
        .map(|s| {
            let s = s.unwrap();
            (
                s.start_us,
                s.end_us,
                s.frames as u64,
                s.bytes,
                s.end_reason.as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);
    // Schema 2: recorded before hashes were kept, so none.
    assert!(ix.camera_segments(cam).all(|s| s.unwrap().sha256.is_none()));
}

/// The events, their zones, thumbnails and acknowledgements read as before; returns the
/// camera's zone ids.
fn same_events(ix: &Index, cam: u32) -> Vec<(String, u32)> {
    let ev = json("events.json");
    let events = ev["events"].as_array().unwrap();
    let ids: Vec<u64> = ix
        .scan_events(EventScope::All, i64::MIN / 2, i64::MAX / 2)
        .unwrap()
        .map(|e| e.unwrap().id)
        .collect();
    assert_eq!(
        ids,
        events
            .iter()
            .map(|e| e["id"].as_u64().unwrap())
            .collect::<Vec<_>>()
    );
    for e in events {
        let r = ix.event(e["id"].as_u64().unwrap()).unwrap().unwrap();
        assert_eq!(r.start_us / 1000, e["start_ms"].as_i64().unwrap());
        assert_eq!(r.end_us / 1000, e["end_ms"].as_i64().unwrap());
        let zones: Vec<&str> = (e["zones"].as_array().unwrap().iter())
            .map(|z| z.as_str().unwrap())
            .collect();
        assert_eq!(r.zones, zones);
        assert_eq!(r.has_thumbnail, e["has_thumbnail"].as_bool().unwrap());
        if r.has_thumbnail {
            assert!(
                ix.thumbnail(r.id)
                    .unwrap()
                    .is_some_and(|j| j.starts_with(&[0xff, 0xd8]))
            );
        }
    }
    // Zone ids resolve as they did.
    let zone_ids = ix.zone_ids(cam).unwrap();
    let names: Vec<&str> = zone_ids.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"left") && names.contains(&"right"),
        "{zone_ids:?}"
    );
    for (z, id) in &zone_ids {
        let n = ix
            .count_events(EventScope::Zone(*id), i64::MIN / 2, i64::MAX / 2)
            .unwrap();
        let want = events
            .iter()
            .filter(|e| e["zones"].as_array().unwrap().iter().any(|x| x == z))
            .count() as u64;
        assert_eq!(n, want, "zone {z}");
    }
    let ack = ix.ack(1).unwrap().expect("event 1 was acknowledged");
    assert_eq!(
        (ack.user.as_str(), ack.note.as_str()),
        ("admin", "checked, a delivery")
    );
    zone_ids
}

/// The holds read as before.
fn same_holds(ix: &Index) {
    let holds = json("holds.json");
    let h = &holds["holds"][0];
    let got = ix.holds().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (
            got[0].id,
            got[0].start_us,
            got[0].end_us,
            got[0].reason.as_str(),
            got[0].user.as_str()
        ),
        (
            h["id"].as_u64().unwrap(),
            h["start_us"].as_i64().unwrap(),
            h["end_us"].as_i64().unwrap(),
            h["reason"].as_str().unwrap(),
            h["user"].as_str().unwrap()
        )
    );
}

/// Motion history: the seconds with motion, overall and per zone, as before.
fn same_motion_history(ix: &Index, cam: u32, zone_ids: &[(String, u32)]) {
    let act = json("activity.json");
    let b = &act["buckets"][0];
    let mut seconds = 0u64;
    let mut per_zone = std::collections::HashMap::<String, u64>::new();
    for m in ix.motion_minutes(cam, i64::MIN / 2, i64::MAX / 2) {
        let (_, m) = m.unwrap();
        for s in &m.seconds {
            seconds += 1;
            for (bit, zid) in m.zone_ids.iter().enumerate() {
                if s.zones & (1 << bit) != 0 {
                    let name = &zone_ids.iter().find(|(_, i)| i == zid).unwrap().0;
                    *per_zone.entry(name.clone()).or_default() += 1;
                }
            }
        }
    }
    assert_eq!(seconds, b["motion_seconds"].as_u64().unwrap());
    for (z, n) in b["zones"].as_object().unwrap() {
        assert_eq!(
            per_zone.get(z).copied().unwrap_or(0),
            n.as_u64().unwrap(),
            "zone {z}"
        );
    }
}
