//! Ingest against a real RTSP server: credentials (digest, basic, wrong), H.265, UDP,
//! connections dropped by the server, corrupt data, and a codec parameter change.

mod common;

use std::time::Duration;

use common::*;
use vigil::index::EndReason;

#[test]
fn credentials_digest_basic_and_wrong_password_never_logged() {
    let t = TestDir::new();
    let secret = "s3cret-Pa55";
    let auth = ["--user", "admin", "--password", secret];
    let digest = [&auth[..], &["--auth-method", "digest"]].concat();
    let basic = [&auth[..], &["--auth-method", "basic"]].concat();
    let (_c1, p1) = fake_camera(&["d"], 0, &digest, &t.join("cam1.log"));
    let (_c2, p2) = fake_camera(&["b"], 0, &basic, &t.join("cam2.log"));
    let pass_file = t.write("pass", &format!("{secret}\n"));
    let storage = t.join("storage");
    let text = format!(
        "[storage]\ndir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [[cameras]]\nname = \"digest\"\nurl = \"rtsp://127.0.0.1:{p1}/d\"\nusername = \"admin\"\npassword_env = \"VIGIL_TEST_PW\"\n\
         [[cameras]]\nname = \"basic\"\nurl = \"rtsp://127.0.0.1:{p2}/b\"\nusername = \"admin\"\npassword_file = {:?}\n\
         [[cameras]]\nname = \"wrong\"\nurl = \"rtsp://127.0.0.1:{p1}/d\"\nusername = \"admin\"\npassword_env = \"VIGIL_TEST_WRONG\"\n",
        storage.display().to_string(),
        pass_file.display().to_string()
    );
    let cfg = t.write("vigil.toml", &text);
    let d = daemon_env(
        &cfg,
        &t.join("daemon.log"),
        &[("VIGIL_TEST_PW", secret), ("VIGIL_TEST_WRONG", "not-it")],
    );
    d.wait_streaming("digest");
    d.wait_streaming("basic");
    let wrong = wait_for(Duration::from_secs(20), "wrong password refused", || {
        let s = d.camera("wrong");
        (s["reconnects"].as_u64().unwrap() >= 1).then_some(s)
    });
    assert_ne!(wrong["state"], "streaming");
    assert!(
        wrong["last_error"].as_str().unwrap().contains("401"),
        "{wrong}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let api: String = [
        "cameras",
        "storage",
        "recordings?camera=digest",
        "recordings?camera=wrong",
    ]
    .iter()
    .map(|r| d.get_json(&format!("/api/{r}")).to_string())
    .collect();
    assert!(d.stop(Duration::from_secs(20)).success());
    let segs = indexed_segments(&storage);
    assert!(segs.iter().any(|s| s.camera_id == 1) && segs.iter().any(|s| s.camera_id == 2));
    assert!(!segs.iter().any(|s| s.camera_id == 3));
    let log = std::fs::read_to_string(t.join("daemon.log")).unwrap();
    assert!(log.contains("401"), "the refusal is not logged:\n{log}");
    assert!(!log.contains(secret), "the password is in the log");
    assert!(!api.contains(secret), "the password is in an API response");
}

#[test]
fn h265_and_udp_record_playable_segments() {
    let t = TestDir::new();
    let (_c1, p1) = fake_camera(
        &["hevc"],
        0,
        &["--codec", "h265", "--bitrate-kbps", "500"],
        &t.join("cam1.log"),
    );
    let (_c2, p2) = fake_camera(&["u"], 0, &[], &t.join("cam2.log"));
    let storage = t.join("storage");
    let mut text = config(
        &storage,
        &[
            ("hevc", format!("rtsp://127.0.0.1:{p1}/hevc")),
            ("udp", format!("rtsp://127.0.0.1:{p2}/u")),
        ],
        "segment_seconds = 3",
    );
    text += "transport = \"udp\"\n"; // applies to the last camera
    let cfg = t.write("vigil.toml", &text);
    let d = TestDaemon::start(&cfg);
    d.wait_streaming("hevc");
    d.wait_streaming("udp");
    std::thread::sleep(Duration::from_secs(8));
    let hevc = d.camera("hevc");
    assert!(
        hevc["codec"].as_str().unwrap().starts_with("hvc1")
            || hevc["codec"].as_str().unwrap().starts_with("hev1"),
        "{hevc}"
    );
    d.stop();
    let segs = indexed_segments(&storage);
    for cam in [1, 2] {
        let n: u32 = segs
            .iter()
            .filter(|s| s.camera_id == cam)
            .map(|s| s.frames)
            .sum();
        assert!(n >= 90, "camera {cam}: only {n} frames");
    }
    assert_segments_play(&storage, &segs);
}

/// The server drops every connection (SIGUSR1), then sends 30 corrupt frames (SIGUSR2):
/// the daemon reconnects, keeps recording, and every frame received is in a segment that
/// ffprobe opens.
#[test]
fn dropped_connections_and_corrupt_data_keep_recording() {
    let t = TestDir::new();
    let clip = fixture("clips/scene-320x180.mp4");
    let Site {
        cam,
        storage,
        daemon: d,
        ..
    } = site(
        &t,
        &[("f", "f")],
        &["--file", clip.to_str().unwrap()],
        "segment_seconds = 2",
    );
    d.wait_streaming("f");
    std::thread::sleep(Duration::from_secs(3));
    cam.signal(libc::SIGUSR1);
    let s = wait_for(Duration::from_secs(30), "reconnect after drop", || {
        let s = d.camera("f");
        (s["reconnects"].as_u64().unwrap() >= 1 && s["state"] == "streaming").then_some(s)
    });
    let frames_before = s["frames"].as_u64().unwrap();
    cam.signal(libc::SIGUSR2);
    std::thread::sleep(Duration::from_secs(6));
    let s = d.camera("f");
    assert_eq!(s["state"], "streaming", "{s}");
    assert!(s["frames"].as_u64().unwrap() >= frames_before + 60, "{s}");
    d.stop();
    let segs = indexed_segments(&storage);
    assert!(
        segs.iter().any(|s| s.end_reason == EndReason::Disconnect),
        "{segs:?}"
    );
    for s in &segs {
        let path = storage.join(&s.file);
        assert_eq!(ffprobe_packets(&path), s.frames as u64, "{}", s.file);
    }
    let log = std::fs::read_to_string(t.join("cam.log")).unwrap();
    assert!(log.contains("injecting garbage"), "{log}");
}

/// A stream whose resolution changes mid-stream: each change starts a new segment (end
/// reason params-change) with its own sample entry, and each plays at its own size.
#[test]
fn codec_parameter_change_starts_new_segment() {
    let t = TestDir::new();
    let clip = fixture("clips/two-sizes.h264");
    let Site {
        cam: _cam,
        storage,
        daemon: d,
        ..
    } = site(
        &t,
        &[("p", "p")],
        &["--file", clip.to_str().unwrap()],
        "segment_seconds = 60",
    );
    d.wait_streaming("p");
    std::thread::sleep(Duration::from_secs(9));
    d.stop();
    let segs = indexed_segments(&storage);
    let changes = segs
        .iter()
        .filter(|s| s.end_reason == EndReason::ParamsChange)
        .count();
    assert!(changes >= 2, "{segs:?}");
    let sizes: std::collections::BTreeSet<_> = segs.iter().map(|s| (s.width, s.height)).collect();
    assert!(
        sizes.contains(&(320, 180)) && sizes.contains(&(256, 144)),
        "{sizes:?}"
    );
    for s in &segs {
        let out = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(storage.join(&s.file))
            .output()
            .unwrap();
        let wh = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(wh, format!("{},{}", s.width, s.height), "{}", s.file);
    }
    assert_segments_play(&storage, &segs);
}
