//! Storage limits in the running daemon: retention by bytes, and a full filesystem (a real
//! tmpfs mount; needs root, as in CI).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Retention by bytes: the daemon keeps its recordings under max_bytes by deleting the
/// oldest segments; what is left is the newest, contiguous run, and `check` is clean.
#[test]
fn max_bytes_keeps_newest_contiguous_segments() {
    let t = TestDir::new();
    let Rig {
        cam: _cam,
        storage,
        cfg,
        daemon: d,
        base,
        ..
    } = rig(
        &t,
        &[("r", "r")],
        &["--bitrate-kbps", "1500"],
        "segment_seconds = 2\nmax_bytes = \"1 MiB\"",
    );
    let first = wait_for(Duration::from_secs(30), "first segment", || {
        let r = get_json(&format!("{base}/api/recordings?camera=r"));
        r["segments"][0]["start_us"].as_i64()
    });
    let st = wait_for(
        Duration::from_secs(60),
        "retention to delete 3 segments",
        || {
            let s = get_json(&format!("{base}/api/storage"));
            (s["deleted_segments"].as_u64().unwrap() >= 3).then_some(s)
        },
    );
    // The open segment can grow past the limit between ticks: allow one segment of slack.
    assert!(
        st["total_bytes"].as_u64().unwrap() < (1 << 20) + 600_000,
        "{st}"
    );
    assert!(d.stop(Duration::from_secs(20)).success());

    let segs = indexed_segments(&storage);
    assert!(
        segs[0].start_us > first,
        "the oldest segment was not deleted first"
    );
    for w in segs.windows(2) {
        assert!(
            (w[1].start_us - w[0].end_us).abs() <= 1,
            "hole in the kept segments"
        );
    }
    assert_segments_play(&storage, &segs);
    let out = std::process::Command::new(VIGIL)
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A tmpfs mount, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI runs as root); run the tests as root"
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem holding `dir` with a file until ENOSPC, leaving `leave` bytes free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let p = dir.join("filler");
    let free = vigil::record::committer::free_bytes(dir).unwrap();
    let n = free.saturating_sub(leave);
    std::fs::write(&p, vec![0xffu8; n as usize]).unwrap();
    p
}

/// The disk fills up under the writer: the daemon does not crash, retention frees space,
/// the writer resumes, and status shows what happened; everything indexed still plays.
#[test]
fn full_disk_does_not_crash_and_writer_resumes() {
    let t = TestDir::new();
    let mnt = t.join("mnt");
    let _fs = Tmpfs::mount(&mnt, "24m");
    let storage = mnt.join("storage");
    let (_cam, port) = fake_camera(&["f"], 0, &["--bitrate-kbps", "1500"], &t.join("cam.log"));
    // Motion analysis off: its timeline writes to the index too, and when the index
    // (sled) is the one to meet the full disk it refuses every later write until a
    // restart (a known fault, README "What happens when things go wrong"; issue 10).
    // This test is about the writer.
    let cfg = t.write(
        "vigil.toml",
        &config(
            &storage,
            &[("f", format!("rtsp://127.0.0.1:{port}/f"))],
            "segment_seconds = 2\n[motion]\nenabled = false",
        ),
    );
    let (mut d, base) = daemon(&cfg, &t.join("daemon.log"));
    wait_for(Duration::from_secs(30), "recording", || {
        let s = camera_status(&base, "f");
        (s["segments_written"].as_u64().unwrap() >= 1).then_some(())
    });
    // Another process fills the disk to the last byte: only Vigil's own recordings can be
    // freed, and the index (on the same disk) cannot grow either.
    let filler = fill(&mnt, 0);
    let st = wait_for(Duration::from_secs(60), "a disk-full event", || {
        let s = get_json(&format!("{base}/api/storage"));
        (s["disk_full_events"].as_u64().unwrap() >= 1).then_some(s)
    });
    assert!(
        st["last_error"].as_str().unwrap().contains("disk full"),
        "{st}"
    );
    let cam = camera_status(&base, "f");
    assert!(cam["write_errors"].as_u64().unwrap() >= 1, "{cam}");
    // Recording goes on in the space retention frees (in this worst case, in bursts: each
    // burst fills what one deletion freed).
    let before = camera_status(&base, "f")["frames"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let after = camera_status(&base, "f");
    assert!(
        after["frames"].as_u64().unwrap() > before + 30,
        "writer did not resume: before {before}, after {after}; recordings {}",
        get_json(&format!("{base}/api/recordings?camera=f"))
    );
    assert!(d.is_running(), "daemon died on a full disk");
    assert!(
        get_json(&format!("{base}/api/storage"))["deleted_segments"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(d.stop(Duration::from_secs(20)).success());
    std::fs::remove_file(filler).unwrap();
    let segs = indexed_segments(&storage);
    assert!(!segs.is_empty());
    assert_segments_play(&storage, &segs);
}
