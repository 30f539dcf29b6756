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
    // The daemon as a process: in this binary the index test below counts the index's
    // reopens, which the threads of an in-process daemon beside it can delay.
    let t = TestDir::new();
    let Rig {
        cam: _cam,
        storage,
        cfg,
        daemon: d,
        ..
    } = rig(
        &t,
        &[("r", "r")],
        &["--bitrate-kbps", "1500"],
        "segment_seconds = 2\nmax_bytes = \"1 MiB\"",
    );
    let first = wait_for(Duration::from_secs(30), "first segment", || {
        let r = d.get_json("/api/recordings?camera=r");
        r["segments"][0]["start_us"].as_i64()
    });
    let st = wait_for(
        Duration::from_secs(60),
        "retention to delete 3 segments",
        || {
            let s = d.get_json("/api/storage");
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

/// A free-space floor that deleting every recording could not reach (here: larger than
/// the disk, as when another program fills it) keeps the recordings and says why,
/// instead of deleting each segment as it closes.
#[test]
fn a_free_space_floor_beyond_reach_keeps_the_recordings() {
    let t = TestDir::new();
    let Rig {
        cam: _cam,
        daemon: d,
        ..
    } = rig(
        &t,
        &[("r", "r")],
        &[],
        "segment_seconds = 2\nmin_free = \"1000000 GiB\"",
    );
    wait_for(Duration::from_secs(30), "3 segments", || {
        (d.camera("r")["segments_written"].as_u64()? >= 3).then_some(())
    });
    let st = d.get_json("/api/storage");
    assert_eq!(st["deleted_segments"], 0, "{st}");
    assert!(
        st["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("another program is filling the disk")),
        "{st}"
    );
    let r = d.get_json("/api/recordings?camera=r");
    let closed = r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["end_reason"] != "open")
        .count();
    assert!(closed >= 2, "{r}");
}

/// Fills the filesystem holding `dir` with a file until ENOSPC, leaving `leave` bytes free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let p = dir.join("filler");
    let free = vigil::storage::free_bytes(dir).unwrap();
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
    // Motion analysis on: its timeline writes to the index too, so either the writer or
    // the index may be the first to meet the full disk. `min_free = 0` for the worst
    // case: with the default, retention frees space before the writers meet the full
    // disk (tested below).
    let cfg = t.write(
        "vigil.toml",
        &config(
            &storage,
            &[("f", format!("rtsp://127.0.0.1:{port}/f"))],
            "segment_seconds = 2\nmin_free = \"0\"",
        ),
    );
    let mut d = daemon(&cfg, &t.join("daemon.log"));
    wait_for(Duration::from_secs(30), "recording", || {
        let s = d.camera("f");
        (s["segments_written"].as_u64().unwrap() >= 1).then_some(())
    });
    // Another process fills the disk to the last byte: only Vigil's own recordings can be
    // freed, and the index (on the same disk) cannot grow either.
    let filler = fill(&mnt, 0);
    let st = wait_for(Duration::from_secs(60), "a disk-full event", || {
        let s = d.get_json("/api/storage");
        (s["disk_full_events"].as_u64().unwrap() >= 1).then_some(s)
    });
    assert!(
        st["last_error"].as_str().unwrap().contains("disk full"),
        "{st}"
    );
    let cam = d.camera("f");
    assert!(cam["write_errors"].as_u64().unwrap() >= 1, "{cam}");
    // What the full disk cost is counted, not silent.
    assert!(cam["unwritten_frames"].as_u64().unwrap() >= 1, "{cam}");
    // Recording goes on in the space retention frees (in this worst case, in bursts: each
    // burst fills what one deletion freed).
    let before = d.camera("f")["frames"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let after = d.camera("f");
    assert!(
        after["frames"].as_u64().unwrap() > before + 30,
        "writer did not resume: before {before}, after {after}; recordings {}",
        d.get_json("/api/recordings?camera=f")
    );
    assert!(d.proc.is_running(), "daemon died on a full disk");
    assert!(
        d.get_json("/api/storage")["deleted_segments"]
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

/// Another process fills the disk while nothing else is writing (the camera is gone), so
/// the first to write is retention itself (a deletion is indexed before its file is
/// unlinked: if sled needs new space for it, the index meets the full disk first, then
/// releases its reserve and reopens; the index-level test below makes that certain).
/// Retention frees space to `min_free`, the reserve is in place, a hold can be placed
/// and recording resumes when the camera comes back. Then the daemon is restarted on a
/// disk filled again: it starts, frees space and records. Nothing committed is lost;
/// only the oldest recordings are deleted.
#[test]
fn full_disk_with_the_camera_gone_and_at_start_up() {
    let t = TestDir::new();
    let mnt = t.join("mnt");
    let _fs = Tmpfs::mount(&mnt, "32m");
    let storage = mnt.join("storage");
    let (cam, port) = fake_camera(&["f"], 0, &["--bitrate-kbps", "1500"], &t.join("cam.log"));
    let cfg = t.write(
        "vigil.toml",
        &config(
            &storage,
            &[("f", format!("rtsp://127.0.0.1:{port}/f"))],
            "segment_seconds = 2",
        ),
    );
    let d = daemon(&cfg, &t.join("daemon.log"));
    let st = d.get_json("/api/storage");
    // 32 MiB filesystem: the defaults are 2% free (655 kB) and a 2 MiB index reserve.
    assert_eq!(st["min_free"].as_u64(), Some((32u64 << 20) / 50), "{st}");
    assert_eq!(st["index_reserve_bytes"].as_u64(), Some(2 << 20), "{st}");
    assert_eq!(st["index_reserve_held"], true, "{st}");
    assert!(storage.join("index.sled.reserve").exists());
    wait_for(Duration::from_secs(30), "4 segments", || {
        let s = d.camera("f");
        (s["segments_written"].as_u64().unwrap() >= 4).then_some(())
    });
    // The camera goes away: its segment closes, nothing writes any more.
    cam.kill9();
    wait_for(
        Duration::from_secs(30),
        "the camera's segment to close",
        || {
            let r = d.get_json("/api/recordings?camera=f");
            let segs = r["segments"].as_array().unwrap().clone();
            (segs.last()?["end_reason"] != "open").then_some(())
        },
    );
    let before = indexed_segments_live(&d);
    let filler = fill(&mnt, 0);
    let st = wait_for(
        Duration::from_secs(60),
        "retention to free space (index open, reserve in place)",
        || {
            let s = d.get_json("/api/storage");
            (s["deleted_segments"].as_u64().unwrap() >= 1
                && s["index_available"] == true
                && s["index_reserve_held"] == true
                && s["free_bytes"].as_u64()? >= (32u64 << 20) / 50)
                .then_some(s)
        },
    );
    eprintln!("storage after the disk filled: {st}");
    // A hold can be placed (the index writes and flushes again).
    let now = vigil::base::time::rfc3339(vigil::base::time::now_us());
    let body =
        serde_json::json!({"camera": "f", "start": before[0].0, "end": now, "reason": "case 9"});
    let mut r = d.post("/api/holds").send_json(&body).unwrap();
    let code = r.status().as_u16();
    assert_eq!(code, 201, "{}", r.body_mut().read_to_string().unwrap());
    // Retention deleted the oldest only; nothing else was lost.
    let after = indexed_segments_live(&d);
    assert!(after.len() < before.len(), "{before:?} {after:?}");
    assert_eq!(after[..], before[before.len() - after.len()..]);
    // The camera comes back on the same port: recording resumes.
    let (cam, _) = fake_camera(
        &["f"],
        port,
        &["--bitrate-kbps", "1500"],
        &t.join("cam2.log"),
    );
    let f0 = d.camera("f")["segments_written"].as_u64().unwrap();
    wait_for(Duration::from_secs(30), "recording to resume", || {
        let s = d.camera("f");
        (s["segments_written"].as_u64().unwrap() >= f0 + 2).then_some(())
    });
    let token = d.token.clone();
    assert!(d.stop(Duration::from_secs(20)).success());

    // A restart on a disk that filled while the daemon was down (the CLI cannot make a
    // token on it: the first one serves).
    std::fs::remove_file(&filler).unwrap();
    let filler = fill(&mnt, 0);
    let d = Daemon::start_as(&cfg, &t.join("daemon2.log"), &[], token);
    wait_for(
        Duration::from_secs(30),
        "recording after a restart on a full disk",
        || {
            let s = d.camera("f");
            (s["segments_written"].as_u64().unwrap() >= 2).then_some(())
        },
    );
    let st = d.get_json("/api/storage");
    assert!(st["deleted_segments"].as_u64().unwrap() >= 1, "{st}");
    assert!(d.stop(Duration::from_secs(20)).success());
    drop(cam);
    std::fs::remove_file(filler).unwrap();
    let segs = indexed_segments(&storage);
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
    let ix = vigil::index::Index::open(&storage.join("index.sled")).unwrap();
    assert_eq!(ix.holds().unwrap().len(), 1);
}

/// Closed segments of camera f as the API lists them: (start, end) RFC 3339.
fn indexed_segments_live(d: &Daemon) -> Vec<(String, String)> {
    let r = d.get_json("/api/recordings?camera=f");
    r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["end_reason"] != "open")
        .map(|s| {
            (
                s["start"].as_str().unwrap().to_owned(),
                s["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The index alone on a small filesystem that another process fills: a commit fails
/// with a full disk, the index releases its reserve and reopens at once, the refused
/// commit succeeds when made again, and everything committed is there after a restart.
#[test]
fn index_reopens_after_a_full_disk_and_keeps_what_was_committed() {
    use vigil::index::{Index, Keyframe, Op, SegmentRecord};
    let t = TestDir::new();
    let mnt = t.join("mnt");
    let _fs = Tmpfs::mount(&mnt, "16m");
    let path = mnt.join("index.sled");
    let rec = |i: i64| SegmentRecord {
        // Big records (100 keyframes each), so that the small filesystem fills.
        keyframes: (0..100)
            .map(|k| Keyframe {
                t_90k: k * 900,
                offset: k * 10,
            })
            .collect(),
        ..SegmentRecord::for_test(1, format!("c/{i}.mp4"), i * 1_000_000, (i + 1) * 1_000_000)
    };
    let ix = Index::open(&path).unwrap();
    ix.set_reserve(2 << 20).unwrap();
    assert!(ix.reserve_held());
    for i in 0..10 {
        ix.commit(&[Op::PutSegment(rec(i))]).unwrap();
    }
    let filler = fill(&mnt, 0);
    // Commit until the disk refuses (sled writes its log in 512 KiB segments).
    let mut refused = None;
    for i in 10..100_000 {
        if let Err(e) = ix.commit(&[Op::PutSegment(rec(i))]) {
            assert!(e.is_disk_full(), "{e}");
            refused = Some(i);
            break;
        }
    }
    let refused = refused.expect("the disk never filled");
    assert!(ix.take_disk_full());
    assert!(!ix.reserve_held(), "the reserve was not released");
    assert_eq!(ix.reopens(), 1, "the index did not reopen at once");
    // The refused record, committed again, is durable now.
    ix.commit(&[Op::PutSegment(rec(refused))]).unwrap();
    drop(ix);
    std::fs::remove_file(filler).unwrap();
    // sled's background flusher may hold the old store (and its file lock) for a moment
    // after the last handle is dropped: wait for the lock, nothing else.
    let t0 = std::time::Instant::now();
    let ix = loop {
        match Index::open(&path) {
            Ok(ix) => break ix,
            Err(e) if e.to_string().contains("lock") && t0.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("reopening the index: {e}"),
        }
    };
    let got: Vec<i64> = ix
        .all_segments()
        .map(|r| r.unwrap().start_us / 1_000_000)
        .collect();
    assert_eq!(got, (0..=refused).collect::<Vec<_>>());
}

/// A clip of the oldest recording is requested and its response held open (the client
/// reads one chunk, then waits) while retention (by bytes) needs to delete exactly those
/// segments: retention deletes newer ones instead, the response is never cut (the clip
/// leases its segments), and the leased segments go once the response has ended. The
/// clip is larger than what the server and the sockets buffer, so without the lease the
/// reads after the pause would find the files gone.
#[test]
fn a_clip_being_served_is_not_cut_by_retention() {
    use std::io::Read;
    let t = TestDir::new();
    let Rig {
        cam: _cam,
        daemon: d,
        ..
    } = rig(
        &t,
        &[("r", "r")],
        &[
            "--bitrate-kbps",
            "12000",
            "--width",
            "1280",
            "--height",
            "720",
        ],
        "segment_seconds = 2\nmax_bytes = \"20 MiB\"",
    );
    wait_for(
        Duration::from_secs(60),
        "retention to start deleting",
        || {
            let s = d.get_json("/api/storage");
            (s["deleted_segments"].as_u64().unwrap() >= 1).then_some(())
        },
    );
    let r = d.get_json("/api/recordings?camera=r");
    let segs = r["segments"].as_array().unwrap();
    let (first, start) = (
        segs[0]["file"].as_str().unwrap().to_owned(),
        segs[0]["start_us"].as_i64().unwrap(),
    );
    let url = format!(
        "/api/clips/r.mp4?start={}&end={}",
        vigil::base::time::rfc3339(start),
        vigil::base::time::rfc3339(start + 10_000_000)
    );
    let mut resp = d.get(&url).call().unwrap();
    assert_eq!(resp.status(), 200);
    let len: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        len > 8_000_000,
        "a clip of {len} bytes is too small to outlast the buffers"
    );
    let mut reader = resp.body_mut().with_config().limit(1 << 30).reader();
    let mut body = vec![0u8; 64 * 1024];
    reader.read_exact(&mut body).unwrap();
    // Retention runs while the response waits: it must delete newer segments.
    let deleted = d.get_json("/api/storage")["deleted_segments"]
        .as_u64()
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "retention to delete 3 segments",
        || {
            let s = d.get_json("/api/storage");
            (s["deleted_segments"].as_u64().unwrap() >= deleted + 3).then_some(())
        },
    );
    let r = d.get_json("/api/recordings?camera=r");
    assert_eq!(
        r["segments"][0]["file"], first,
        "retention deleted a segment being served"
    );
    reader
        .read_to_end(&mut body)
        .expect("the clip response was cut");
    drop(reader);
    assert_eq!(body.len(), len, "clip shorter than its Content-Length");
    let file = t.join("clip.mp4");
    std::fs::write(&file, &body).unwrap();
    let (frames, secs) = ffprobe(&file);
    assert!(frames >= 9 * 15 && secs > 9.0, "{frames} frames, {secs} s");
    // The lease ended with the response: the oldest segment goes now.
    wait_for(
        Duration::from_secs(20),
        "the clip's segments to be deleted",
        || {
            let r = d.get_json("/api/recordings?camera=r");
            (r["segments"][0]["file"] != first.as_str()).then_some(())
        },
    );
    assert!(d.stop(Duration::from_secs(20)).success());
}
