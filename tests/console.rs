//! The console as its people use it, in headless Chromium (Debian's), against a daemon
//! recording the ground-truth crossing fixture (looped by a real RTSP server) and a
//! second camera: an investigator reviews (timeline lanes with the motion heat and the
//! events where the recording put them, an event clicked plays from its first frame, two
//! cameras on one clock, speeds, frame steps, keyboard), bookmarks, exports a range of
//! both cameras (the downloads pass ffprobe), places a hold and searches a region; an
//! admin edits zones and reads the audit (`console/admin.rs`); a viewer gets none of these.
//! The timeline's own logic has unit tests in `tests/console/*.mjs`, run here with Node.

#[path = "console/admin.rs"]
mod admin;
#[path = "common/browser.rs"]
mod browser;
#[path = "console/cases.rs"]
mod cases;
mod common;
#[path = "console/windows.rs"]
mod windows;

use std::time::Duration;

use browser::{Browser, add_user, log_in};
use common::*;
use vigil::base::time::rfc3339;

/// `node --test tests/console/`: the timeline's time ↔ pixel mapping, bucketing, zoom.
#[test]
fn timeline_logic_unit_tests_in_node() {
    let out = std::process::Command::new("node")
        .args(["--test", "tests/console/"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("node (apt install nodejs; scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The runner found and ran the tests (a path typo would run none and pass).
    assert!(text.contains("# pass 7"), "{text}");
}

/// `start=...&end=...` from a day before now to a day after.
fn day_around_now() -> String {
    let now = vigil::base::time::now_us();
    let day = 86_400_000_000;
    format!("start={}&end={}", rfc3339(now - day), rfc3339(now + day))
}

fn ms(e: &serde_json::Value, key: &str) -> i64 {
    e[key].as_i64().unwrap()
}

#[test]
fn investigator_reviews_bookmarks_exports_and_holds_in_chromium() {
    let t = TestDir::new();
    let (_cam, cfg) = crossing_camera(&t, "");
    let (_cam2, port2) = fake_camera(&["cam2"], 0, &[], &t.join("cam2.log"));
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    // A comment the zone editor must keep.
    text = text.replacen(
        "[[cameras.zones]]",
        "# The loading bay.\n[[cameras.zones]]",
        1,
    );
    text += &format!("\n[[cameras]]\nname = \"cam2\"\nurl = \"rtsp://127.0.0.1:{port2}/cam2\"\n");
    std::fs::write(&cfg, text).unwrap();
    add_user(&cfg, "ivan", "investigator");
    add_user(&cfg, "vera", "viewer");
    add_user(&cfg, "ada", "admin");
    let t0 = vigil::base::time::now_us() - 60_000_000;
    let d = TestDaemon::start(&cfg);
    d.wait_streaming("cam2");
    // The fixture's first loop: a crossing through "left" and "right", then an object
    // bobbing in "right" (tests/timeline.rs checks them against the ground truth).
    let far = vigil::base::time::now_us() + 3_600_000_000;
    let page = wait_for(Duration::from_secs(60), "two events on the fixture", || {
        let v = d.get_json(&format!(
            "/api/events?camera=fixture&start={}&end={}",
            rfc3339(t0),
            rfc3339(far)
        ));
        (v["total"].as_u64().unwrap() >= 2).then_some(v)
    });
    let a = page["events"][0].clone();
    assert_eq!(a["zones"], serde_json::json!(["left", "right"]), "{page}");
    // Enough recording after it on both cameras to play across.
    std::thread::sleep(Duration::from_secs(6));

    let mut b = Browser::start_sized(&t, 1400, 1000);
    log_in(&mut b, &d.base, "ivan");
    b.wait(
        "!!document.querySelector('#nav a[data-view=review]:not([hidden])')",
        "the Review link",
    );
    // A link with the view in it, as an investigator would paste into a case note.
    let span = 600;
    let at = rfc3339(ms(&a, "start_ms") * 1000);
    b.eval(&format!(
        "location.hash = '#review?cameras=fixture,cam2&t={at}&span={span}'; true"
    ));
    b.wait(
        "window.vigilReview && vigilReview.strips.fixture && vigilReview.strips.cam2 && \
         !document.getElementById('view-review').hidden",
        "the review view with both lanes",
    );
    timeline_shows_heat_and_events(&mut b, &a);
    plays_an_event_from_its_first_frame(&mut b, &a);
    two_cameras_on_one_clock(&mut b);
    speeds_steps_and_keys(&mut b, &a);
    windows::plays_across_windows(&mut b, &a);
    b.screenshot(&t.join("review.png"));
    bookmark_export_and_hold(&mut b, &d, &t, &a);
    searches_a_region(&mut b, &d, t0, &a);
    paused_before_the_recording_stays_quiet(&mut b, &d, t0);

    // The audit log has the investigator's timeline and clip views.
    let actions: Vec<String> = d.get_json(&format!("/api/audit?{}", day_around_now()))["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["user"] == "ivan")
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "timeline.view",
        "clip.view",
        "clip.export",
        "events.search",
        "bookmark.create",
        "hold.create",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "no {want} in {actions:?}"
        );
    }
    assert_eq!(
        b.eval("document.querySelector('#nav a[data-view=audit]').hidden"),
        serde_json::Value::Bool(true),
        "an investigator sees the Audit link"
    );
    drop(b);
    admin::admin_moves_a_zone(&t, &d, &cfg);
    admin::admin_reads_the_audit(&t, &d);
    viewer_has_no_review(&t, &d);
}

/// The fixture's lane: hot heat-strip pixels over the event, its span drawn in the event
/// row, and the event in the list.
fn timeline_shows_heat_and_events(b: &mut Browser, a: &serde_json::Value) {
    let id = a["id"].as_u64().unwrap();
    b.wait(
        &format!("!!document.querySelector('#event-rows tr[data-event=\"{id}\"] img')"),
        "the event in the list, with its picture",
    );
    // The canvas at the middle of the event: the heat row (4..20 px into the lane) is
    // coloured, and so is the event row (22..36 px); a minute earlier, nothing moved.
    let probe = |b: &mut Browser, t_ms: i64, y: u32| -> Vec<u64> {
        let v = b.eval(&format!(
            "(() => {{ const c = document.getElementById('timeline'), s = vigilReview.scale; \
               const dpr = window.devicePixelRatio || 1; \
               const x = Math.round(s.x({t_ms}) * dpr), y = Math.round({y} * dpr); \
               return [...c.getContext('2d').getImageData(x, y, 1, 1).data]; }})()"
        ));
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let mid = (ms(a, "start_ms") + ms(a, "end_ms")) / 2;
    // Lane 0 starts at the axis (22 px).
    let heat = probe(b, mid, 22 + 10);
    assert!(
        heat[0] > 180 && heat[2] < 120,
        "no heat over the event: {heat:?}"
    );
    let span = probe(b, mid, 22 + 28);
    assert!(
        span[..3] != [253, 253, 253] && span[3] > 0,
        "no event span: {span:?}"
    );
    // The strip's data: motion in the event's columns.
    let hot = b.eval(&format!(
        "(() => {{ const s = vigilReview.strips.fixture, sc = vigilReview.scale; \
           const c = Math.floor(({mid} * 1000 - s.start_us) * s.columns / (s.end_us - s.start_us)); \
           return s.motion[c]; }})()"
    ));
    assert!(hot.as_u64().unwrap() > 0, "{hot}");
}

/// Clicking the event's row plays it: the first picture shown is the event's first
/// frame (its UTC from the file's X-Vigil-Start and the presented frame's media time, as
/// `requestVideoFrameCallback` reports it), and the video advances.
fn plays_an_event_from_its_first_frame(b: &mut Browser, a: &serde_json::Value) {
    let id = a["id"].as_u64().unwrap();
    b.eval(&format!(
        "document.querySelector('#event-rows tr[data-event=\"{id}\"]').click(); true"
    ));
    b.wait(
        "vigilReview.players[0].seekShown != null",
        "the first picture after the seek",
    );
    let shown = b.eval("vigilReview.players[0].seekShown");
    let shown = shown.as_f64().unwrap();
    let start = ms(a, "start_ms") as f64;
    eprintln!(
        "first picture shown: {:.0} ms from the event's start",
        shown - start
    );
    // Playing from the event: its first frame, or (playback having begun before the
    // browser reported a picture) the next.
    let frame = 1000.0 / b.eval("vigilReview.fps()").as_f64().unwrap();
    assert!(
        (-1.0..frame + 1.0).contains(&(shown - start)),
        "shown {shown} vs start {start}"
    );
    let now = |b: &mut Browser| {
        b.eval("vigilReview.players[0].video.currentTime")
            .as_f64()
            .unwrap()
    };
    let c1 = now(b);
    std::thread::sleep(Duration::from_secs(2));
    let c2 = now(b);
    assert!(c2 > c1 + 1.0, "the video did not advance: {c1} -> {c2}");
    assert!(b.eval("vigilReview.clock.playing") == serde_json::Value::Bool(true));
}

/// Both players show the same instant while they play: sampled together, their UTCs are
/// within a frame (40 ms at 25 fps) once they have settled.
fn two_cameras_on_one_clock(b: &mut Browser) {
    b.wait(
        "vigilReview.players.length === 2 && vigilReview.players.every(p => p.base != null && !p.video.paused)",
        "both players playing",
    );
    std::thread::sleep(Duration::from_secs(2));
    let drift = b.eval(
        "(async () => { const out = []; for (let i = 0; i < 20; i++) { \
           const [p, q] = vigilReview.players; out.push(Math.abs(p.utc() - q.utc())); \
           await new Promise(r => setTimeout(r, 100)); } return out; })()",
    );
    let drift: Vec<f64> = drift
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    eprintln!("drift between the two players (ms): {drift:?}");
    let max = drift.iter().cloned().fold(0.0, f64::max);
    assert!(max <= 40.0, "players more than a frame apart: {drift:?}");
}

/// 4× plays faster than 1×; pausing and stepping moves one frame; the keyboard does the
/// same as the buttons.
fn speeds_steps_and_keys(b: &mut Browser, a: &serde_json::Value) {
    let clock = |b: &mut Browser| b.eval("vigilReview.clock.now()").as_f64().unwrap();
    b.eval("document.getElementById('speed').value = '4'; document.getElementById('speed').dispatchEvent(new Event('change')); true");
    let c1 = clock(b);
    std::thread::sleep(Duration::from_secs(2));
    let c2 = clock(b);
    assert!(c2 - c1 > 4_000.0, "4× advanced only {} ms in 2 s", c2 - c1);
    let key = |b: &mut Browser, k: &str| {
        b.eval(&format!(
            "document.dispatchEvent(new KeyboardEvent('keydown', {{ key: {k:?}, bubbles: true }})); true"
        ));
    };
    key(b, " ");
    b.wait(
        "!vigilReview.clock.playing && vigilReview.players.every(p => p.video.paused)",
        "paused by the space bar",
    );
    // Paused, a seek to the event's start shows its first frame; "." the next frame.
    let start = ms(a, "start_ms");
    let frame = 1000.0 / b.eval("vigilReview.fps()").as_f64().unwrap();
    let shown = |b: &mut Browser| {
        b.wait(
            "vigilReview.players[0].seekShown != null",
            "a picture after the seek",
        );
        b.eval("vigilReview.players[0].seekShown").as_f64().unwrap()
    };
    b.eval(&format!("vigilReview.clock.seek({start}).then(() => true)"));
    let first = shown(b);
    eprintln!(
        "paused seek: picture {:.1} ms from the event's start; base {}, currentTime {}",
        first - start as f64,
        b.eval("vigilReview.players[0].base"),
        b.eval("vigilReview.players[0].video.currentTime")
    );
    assert!((first - start as f64).abs() < 1.0, "{first} vs {start}");
    key(b, ".");
    b.wait(
        &format!("vigilReview.clock.now() > {start} + 1"),
        "a step forward",
    );
    let next = shown(b);
    assert!(
        (next - first - frame).abs() < 1.0,
        "one frame on showed {} ms later",
        next - first
    );
    key(b, ",");
    b.wait(
        &format!("vigilReview.clock.now() < {start} + 1"),
        "a step back",
    );
    let back = shown(b);
    assert!(
        (back - first).abs() < 1.0,
        "a step back did not return to the event's first frame: {back} vs {first}"
    );
    b.eval("document.getElementById('speed').value = '1'; document.getElementById('speed').dispatchEvent(new Event('change')); true");
}

/// A bookmark at the clock, a range selected by shift-dragging over the timeline, its
/// export (one MP4 per camera, downloaded, read by ffprobe) and a hold on it.
fn bookmark_export_and_hold(b: &mut Browser, d: &TestDaemon, t: &TestDir, a: &serde_json::Value) {
    b.eval("document.getElementById('mark-note').value = 'pallet leaves'; document.getElementById('bookmark').click(); true");
    b.wait(
        "document.getElementById('action-state').textContent === 'bookmarked on 2 camera(s)' && \
         vigilReview.strips.fixture.bookmarks.some(m => m.text === 'pallet leaves')",
        "the bookmark on the lane",
    );
    let range = day_around_now();
    let marks = d.get_json(&format!("/api/bookmarks?{range}&q=pallet"));
    assert_eq!(marks["bookmarks"][0]["user"], "ivan", "{marks}");
    // On each camera shown, as holds are.
    let mut on: Vec<&str> = (marks["bookmarks"].as_array().unwrap().iter())
        .map(|m| m["camera"].as_str().unwrap())
        .collect();
    on.sort();
    assert_eq!(on, ["cam2", "fixture"], "{marks}");

    // Shift-drag over 6 s from 3 s into the event (both cameras recorded by then: the
    // event is in the fixture's first seconds).
    let (from, to) = (ms(a, "start_ms") + 3_000, ms(a, "start_ms") + 9_000);
    b.eval(&format!(
        "(() => {{ const c = document.getElementById('timeline'), s = vigilReview.scale, r = c.getBoundingClientRect(); \
           const ev = (type, t) => c.dispatchEvent(new PointerEvent(type, {{ bubbles: true, shiftKey: true, pointerId: 1, \
             clientX: r.left + s.x(t), clientY: r.top + 22 + 25 }})); \
           ev('pointerdown', {from}); ev('pointermove', ({from} + {to}) / 2); ev('pointermove', {to}); ev('pointerup', {to}); \
           return true; }})()"
    ));
    let sel = b.eval("[vigilReview.selection.a, vigilReview.selection.b]");
    let sel: Vec<f64> = sel
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // The selection is where the pointer went, to a pixel (600 s over the canvas).
    assert!(
        (sel[0] - from as f64).abs() < 1_500.0 && (sel[1] - to as f64).abs() < 1_500.0,
        "{sel:?}"
    );
    assert_eq!(
        b.eval("document.getElementById('export').disabled"),
        serde_json::Value::Bool(false)
    );

    let downloads = t.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    b.call(
        "Page.setDownloadBehavior",
        serde_json::json!({ "behavior": "allow", "downloadPath": downloads.to_str().unwrap() }),
    );
    b.eval("document.getElementById('export').click(); true");
    b.wait(
        "vigilReview.exports && vigilReview.exports.length === 2 && vigilReview.exports.every(j => j.done || j.error)",
        "both exports",
    );
    let errors = b.eval("vigilReview.exports.map(j => j.error).filter(Boolean)");
    assert_eq!(errors, serde_json::json!([]), "export errors");
    let files: Vec<std::path::PathBuf> =
        wait_for(Duration::from_secs(20), "two downloaded MP4s", || {
            let f: Vec<_> = std::fs::read_dir(&downloads)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
                .collect();
            (f.len() == 2).then_some(f)
        });
    let selected = (sel[1] - sel[0]) / 1000.0;
    for f in &files {
        let (frames, duration) = ffprobe(f);
        eprintln!("{}: {frames} frames, {duration:.2} s", f.display());
        assert!(frames > 0, "{}", f.display());
        assert!(
            (duration - selected).abs() < 1.0,
            "{}: {duration} s for a {selected} s selection",
            f.display()
        );
    }
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("fixture-"))
            && names.iter().any(|n| n.starts_with("cam2-")),
        "{names:?}"
    );
    assert_eq!(
        b.eval("vigilReview.exports.map(j => j.mode)"),
        serde_json::json!(["page", "page"])
    );
    // Files above the page's limit go to the browser's own downloads (streamed to disk):
    // the same bytes.
    let first = t.join("first-export");
    std::fs::rename(&downloads, &first).unwrap();
    std::fs::create_dir_all(&downloads).unwrap();
    b.eval("vigilReview.exportInMemoryMax = 0; document.getElementById('export').click(); true");
    b.wait(
        "vigilReview.exports.length === 2 && vigilReview.exports.every(j => j.mode === 'browser')",
        "both exports handed to the browser",
    );
    for name in &names {
        let got = wait_for(Duration::from_secs(20), name, || {
            std::fs::read(downloads.join(name))
                .ok()
                .filter(|b| !b.is_empty())
        });
        assert!(
            got == std::fs::read(first.join(name)).unwrap(),
            "{name} differs between the page's and the browser's download"
        );
    }
    b.eval("vigilReview.exportInMemoryMax = 256e6; true");

    b.eval("document.getElementById('mark-note').value = 'case 42'; document.getElementById('hold').click(); true");
    b.wait(
        "document.getElementById('action-state').textContent.startsWith('held on 2')",
        "the holds placed",
    );
    let holds = d.get_json("/api/holds");
    let placed: Vec<&serde_json::Value> = holds["holds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["reason"] == "case 42")
        .collect();
    assert_eq!(placed.len(), 2, "{holds}");
    b.wait(
        "vigilReview.strips.fixture.holds.some(h => h.text === 'case 42')",
        "the hold on the lane",
    );
    // The selection into a new case (held), the case out as an evidence package: refused
    // with what to do until the site has signing keys, then a package that verifies.
    b.eval(
        "document.getElementById('case-title').value = 'Pallet missing'; \
         document.getElementById('case-ref').value = 'PD-2026-118'; \
         document.getElementById('case-new').click(); true",
    );
    b.wait(
        "document.getElementById('case-pick').value !== '' && !document.getElementById('case-add').disabled",
        "the new case picked",
    );
    b.eval("document.getElementById('case-add').click(); true");
    b.wait(
        "document.getElementById('case-state').textContent.startsWith('item 1 added')",
        "the selection added to the case",
    );
    b.eval("document.getElementById('case-export').click(); true");
    b.wait(
        "!!vigilReview.caseExport && !!vigilReview.caseExport.error",
        "the export refused without keys",
    );
    let msg = b.eval("vigilReview.caseExport.error");
    assert!(msg.as_str().unwrap().contains("vigil keys init"), "{msg}");
    vigil::evidence::keys::init(&t.join("storage/signing.keys"), "ACME", "nvr1", 2048).unwrap();
    b.eval("vigilReview.caseExport = null; document.getElementById('case-export').click(); true");
    b.wait(
        "!!vigilReview.caseExport && (!!vigilReview.caseExport.dir || !!vigilReview.caseExport.error)",
        "the package exported",
    );
    let r = b.eval("vigilReview.caseExport");
    let dir = r["dir"].as_str().unwrap_or_else(|| panic!("{r}"));
    let o = std::process::Command::new(VIGIL)
        .args(["evidence", "verify", dir])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    cases::review_adds_and_downloads(b, d);

    // The link keeps the visible range, not only the playhead.
    let url = b.eval("location.hash");
    assert!(url.as_str().unwrap().contains("&from="), "{url}");
    // Esc drops the selection: Bookmark marks the playhead again.
    b.eval("document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true })); true");
    b.wait(
        "vigilReview.selection === null && document.getElementById('clear-selection').disabled",
        "the selection cleared",
    );
}

/// Search: a polygon drawn (clicked corner by corner) on the fixture's picture where only
/// the first crossing passes gives exactly that crossing's intervals (one per loop of the
/// clip), each with its recorded picture; a result plays in Review. The recorded still's
/// resource refuses bad parameters.
fn searches_a_region(b: &mut Browser, d: &TestDaemon, t0: i64, a: &serde_json::Value) {
    let now = vigil::base::time::now_us();
    b.eval(&format!(
        "location.hash = '#search?cameras=fixture&start={}&end={}'; true",
        rfc3339(t0),
        rfc3339(now + 60_000_000)
    ));
    b.wait(
        "!document.getElementById('view-search').hidden && \
         document.querySelector('#search-pictures figure[data-camera=fixture] img').naturalWidth > 0",
        "the fixture's picture in Search",
    );
    // Lower left, where only the first crossing passes (tests/timeline.rs).
    b.click_at(
        "#search-pictures figure[data-camera=fixture] canvas",
        &[[0.05, 0.55], [0.3, 0.55], [0.3, 0.8], [0.05, 0.8]],
    );
    b.wait(
        "vigilSearch.lastPolygons && JSON.parse(vigilSearch.lastPolygons)[0].length === 4",
        "the search for the drawn polygon",
    );
    let ms_taken = b.eval("vigilSearch.lastMs").as_f64().unwrap();
    eprintln!("region search, drawing to results: {ms_taken:.0} ms");
    let found = b.eval("vigilSearch.results");
    let found = found.as_array().unwrap();
    assert!(!found.is_empty(), "nothing found");
    // Every interval lies in a crossing of both zones (the first crossing of a loop),
    // none in the bobbing object's events; the first is event a.
    let events = d.get_json(&format!(
        "/api/events?camera=fixture&start={}&end={}&limit=1000",
        rfc3339(t0),
        rfc3339(now + 60_000_000)
    ));
    let events = events["events"].as_array().unwrap();
    let inside = |iv: &serde_json::Value, e: &serde_json::Value| {
        iv["start_us"].as_i64().unwrap() >= ms(e, "start_ms") * 1000 - 1_000_000
            && iv["end_us"].as_i64().unwrap() <= ms(e, "end_ms") * 1000 + 1_000_000
    };
    for iv in found {
        let e = events.iter().find(|e| inside(iv, e));
        let e = e.unwrap_or_else(|| panic!("{iv} is in no event: {events:?}"));
        assert_eq!(
            e["zones"],
            serde_json::json!(["left", "right"]),
            "{iv} in {e}"
        );
    }
    assert!(inside(&found[0], a), "{} vs {a}", found[0]);
    cases::search_adds(b, d);
    // (Pictures load as they scroll into view.)
    b.eval("document.querySelector('#search-rows tr[data-i] img').scrollIntoView(); true");
    b.wait(
        "document.querySelector('#search-rows tr[data-i] img').complete && \
         document.querySelector('#search-rows tr[data-i] img').naturalWidth === 160",
        "the first result's recorded picture",
    );
    b.eval("document.querySelector('#search-rows tr[data-i]').click(); true");
    b.wait(
        &format!(
            "!document.getElementById('view-review').hidden && vigilReview.clock.playing && \
             vigilReview.players[0].camera === 'fixture' && \
             Math.abs(vigilReview.players[0].utc() - {}) < 5000",
            found[0]["start_us"].as_i64().unwrap() / 1000
        ),
        "the result playing in Review",
    );
    // The still's resource: bad parameters, and an instant without recording.
    let at = rfc3339(ms(a, "start_ms") * 1000);
    let (code, _) = d.get_status(&format!("/api/cameras/fixture/frame.jpg?t={at}&width=10"));
    assert_eq!(code, 400);
    let (code, _) = d.get_status("/api/cameras/fixture/frame.jpg?t=yesterday");
    assert_eq!(code, 400);
    let (code, body) = d.get_status("/api/cameras/fixture/frame.jpg?t=2020-01-01T00:00:00Z");
    assert_eq!(code, 404, "{body}");
    let (code, _) = d.get_status(&format!("/api/cameras/nope/frame.jpg?t={at}"));
    assert_eq!(code, 404);
    // A picture of the last minutes (its segment may still be written) is not cached.
    let cache = b.eval(&format!(
        "fetch('/api/cameras/fixture/frame.jpg?t={at}').then(r => r.status + ' ' + r.headers.get('cache-control'))"
    ));
    assert_eq!(cache, "200 private, no-cache");
}

/// Paused at an instant before the recording starts (the file's X-Vigil-Start is later),
/// the player loads once and waits: no reload every tick (each one an audited clip view).
fn paused_before_the_recording_stays_quiet(b: &mut Browser, d: &TestDaemon, t0: i64) {
    let clip_views = |d: &TestDaemon| {
        let v = d.get_json(&format!(
            "/api/audit?{}&user=ivan&action=clip.view",
            day_around_now()
        ));
        v["records"].as_array().unwrap().len()
    };
    b.eval("vigilReview.clock.playing && vigilReview.clock.pause(); true");
    b.eval(&format!(
        "location.hash = '#review?cameras=fixture&t={}&span=600'; true",
        rfc3339(t0 + 45_000_000)
    ));
    b.wait(
        "!document.getElementById('view-review').hidden && vigilReview.players.length === 1 && \
         !vigilReview.clock.playing",
        "the review, paused",
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = clip_views(d);
    std::thread::sleep(Duration::from_secs(4));
    let after = clip_views(d);
    assert!(
        after - before <= 1,
        "{} clip views in 4 s while paused",
        after - before
    );
}

/// A viewer's console has no Review; the URL does not open it; the API refuses its data.
fn viewer_has_no_review(t: &TestDir, d: &TestDaemon) {
    let mut b = Browser::start(t);
    log_in(&mut b, &d.base, "vera");
    b.wait("!!document.querySelector('#wall figure')", "the wall");
    for view in ["review", "search", "audit"] {
        assert_eq!(
            b.eval(&format!(
                "document.querySelector('#nav a[data-view={view}]').hidden"
            )),
            serde_json::Value::Bool(true),
            "a viewer sees the {view} link"
        );
    }
    b.eval("location.hash = '#review?cameras=fixture'; true");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        b.eval("document.getElementById('view-review').hidden"),
        serde_json::Value::Bool(true)
    );
    assert_eq!(
        b.eval("document.getElementById('view-live').hidden"),
        serde_json::Value::Bool(false)
    );
    let status = b.eval(
        "fetch('/api/timeline/strip?camera=fixture&start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z&columns=10').then(r => r.status)",
    );
    assert_eq!(status, 403);
    for path in [
        "/api/audit/verify",
        "/api/cameras/fixture/frame.jpg?t=2026-01-01T00:00:00Z",
    ] {
        let status = b.eval(&format!("fetch({path:?}).then(r => r.status)"));
        assert_eq!(status, 403, "{path}");
    }
}

/// The console's shipped files stay small (the budget: 300 KB compressed), and
/// every module in `src/api/console/` is served (a file left out would 404 in the
/// browser). Compressed with the system's gzip, as a server or proxy would.
#[test]
fn console_assets_are_served_and_stay_small() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/console");
    let served: std::collections::BTreeSet<&str> = vigil::api::console::ASSETS
        .iter()
        .map(|(n, _, _)| *n)
        .collect();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".js") || name.ends_with(".css") {
            assert!(
                served.contains(name.as_str()),
                "{name} is not in console::ASSETS"
            );
        }
    }
    let mut raw = vigil::api::console::PAGE.len();
    let mut compressed = gzip_len(vigil::api::console::PAGE.as_bytes());
    for (name, _, bytes) in vigil::api::console::ASSETS {
        assert!(
            std::fs::read(dir.join(name)).unwrap() == *bytes,
            "{name} changed since the binary was built"
        );
        raw += bytes.len();
        compressed += gzip_len(bytes);
    }
    eprintln!("console: {raw} bytes, {compressed} bytes gzipped");
    assert!(compressed < 300_000, "{compressed} bytes compressed");
}

fn gzip_len(bytes: &[u8]) -> usize {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-9c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap().stdout.len()
}
