//! `vigil check` and `--repair` on every kind of inconsistency between index and files:
//! a file cut short, a file that is gone, an orphan that plays, an orphan that does not.

mod common;

use std::time::Duration;

use common::*;

fn check(cfg: &std::path::Path, repair: bool) -> (i32, String) {
    vigil_check(cfg, repair)
}

/// Camera `c` recorded in 2 s segments until `n` are written, then the daemon stopped:
/// (its fake camera, the storage dir, the config).
fn recorded(t: &TestDir, n: u64) -> (Proc, std::path::PathBuf, std::path::PathBuf) {
    let Site {
        cam,
        storage,
        cfg,
        daemon: d,
        ..
    } = site(t, &[("c", "c")], &[], "segment_seconds = 2");
    wait_for(Duration::from_secs(40), &format!("{n} segments"), || {
        (d.camera("c")["segments_written"].as_u64().unwrap() >= n).then_some(())
    });
    d.stop();
    (cam, storage, cfg)
}

/// Drops a segment's index entry (as when the daemon died between creating the file and
/// indexing it): the file becomes an orphan.
fn unindex(storage: &std::path::Path, s: &vigil::index::SegmentRecord) {
    let ix = vigil::index::Index::open(&vigil::storage::Layout::new(storage).index()).unwrap();
    ix.commit(&[
        vigil::index::Op::DeleteSegment {
            camera_id: s.camera_id,
            start_us: s.start_us,
            file: s.file.clone(),
        },
        vigil::index::Op::ForgetGarbage(s.file.clone()),
    ])
    .unwrap();
}

#[test]
fn check_reports_and_repair_fixes_every_inconsistency() {
    let t = TestDir::new();
    let (_cam, storage, cfg) = recorded(&t, 4);
    assert_eq!(check(&cfg, false).0, 0);

    let segs = indexed_segments(&storage);
    assert!(segs.len() >= 4);
    // 1. Cut segment 0 inside its last fragment: what precedes it still plays.
    let cut = &segs[0];
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(storage.join(&cut.file))
        .unwrap();
    f.set_len(cut.bytes - 100).unwrap();
    let playable = vigil::record::fmp4::scan(&mut &f).unwrap();
    assert!(playable.frames() > 0 && playable.frames() < cut.frames as u64);
    drop(f);
    // 2. Remove segment 1's file.
    std::fs::remove_file(storage.join(&segs[1].file)).unwrap();
    // 3. An orphan that plays: segment 3 with its index entry gone (as when the daemon
    //    died between creating a file and indexing it).
    unindex(&storage, &segs[3]);
    let orphan = std::path::PathBuf::from(&segs[3].file);
    // 4. A copy of segment 2 under another name: an orphan that duplicates an entry.
    let day = std::path::Path::new(&segs[2].file).parent().unwrap();
    let copy = day.join("20200101T000000.000000Z.mp4");
    std::fs::copy(storage.join(&segs[2].file), storage.join(&copy)).unwrap();
    // 5. An orphan that does not play.
    let junk = day.join("20200101T000001.000000Z.mp4");
    std::fs::write(storage.join(&junk), b"not a video").unwrap();

    let (code, out) = check(&cfg, false);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(&cut.file) && out.contains("index says"),
        "{out}"
    );
    assert!(
        out.contains(&segs[1].file) && out.contains("file is gone"),
        "{out}"
    );
    assert!(
        out.contains(&format!("orphan: {}", orphan.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("orphan: {}", junk.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("orphan: {}", copy.display())),
        "{out}"
    );
    // Report mode changed nothing.
    assert_eq!(indexed_segments(&storage).len(), segs.len() - 1);

    let (code, out) = check(&cfg, true);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("adopted") && out.contains("lost+found"),
        "{out}"
    );
    assert!(out.contains("duplicates indexed segment"), "{out}");
    let (code, out) = check(&cfg, false);
    assert_eq!(code, 0, "still not clean after --repair: {out}");
    assert!(out.contains("clean"), "{out}");

    let after = indexed_segments(&storage);
    let fixed = after.iter().find(|s| s.file == cut.file).unwrap();
    assert!(
        fixed.frames as u64 == playable.frames() && fixed.bytes == playable.valid_len,
        "{fixed:?}"
    );
    assert!(!after.iter().any(|s| s.file == segs[1].file));
    let adopted = after
        .iter()
        .find(|s| s.file == orphan.to_str().unwrap())
        .expect("orphan adopted");
    // The file carries everything but why the segment ended and its RTSP run.
    let mut expected = segs[3].clone();
    expected.end_reason = vigil::index::EndReason::Recovered;
    expected.run = 0;
    assert_eq!(
        adopted, &expected,
        "adopted record differs from the original"
    );
    let original = after.iter().find(|s| s.file == segs[2].file).unwrap();
    assert_eq!(
        original, &segs[2],
        "the duplicate replaced the original entry"
    );
    assert_eq!(storage.join("lost+found").read_dir().unwrap().count(), 2);
    assert_segments_play(&storage, &after);
}

/// The daemon adopts orphans at start-up (a crash between creating a segment and its
/// first index commit): one that plays is indexed, one that duplicates an indexed segment
/// and one that does not play go to `lost+found/`; the storage status lists what
/// recovery did, and `check` is clean afterwards.
#[test]
fn daemon_adopts_orphans_at_start_up() {
    let t = TestDir::new();
    let (_cam, storage, cfg) = recorded(&t, 3);
    let segs = indexed_segments(&storage);
    // Segment 1 loses its index entry: an orphan that plays.
    unindex(&storage, &segs[1]);
    let day = std::path::Path::new(&segs[0].file).parent().unwrap();
    // A copy of segment 0 under a later name: the same start and camera.
    let overlap = day.join("29990101T000000.000000Z.mp4");
    std::fs::copy(storage.join(&segs[0].file), storage.join(&overlap)).unwrap();
    let junk = day.join("29990101T000001.000000Z.mp4");
    std::fs::write(storage.join(&junk), b"not a video").unwrap();
    assert_eq!(check(&cfg, false).0, 3);

    let d = TestDaemon::start(&cfg);
    let st = d.get_json("/api/storage");
    let lines: Vec<String> = st["startup_recovery"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let has = |f: &std::path::Path, what: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(f.to_str().unwrap()) && l.contains(what))
    };
    assert!(
        has(std::path::Path::new(&segs[1].file), "adopted"),
        "{lines:?}"
    );
    assert!(
        has(
            &overlap,
            "duplicates an indexed segment; moved to lost+found"
        ),
        "{lines:?}"
    );
    assert!(has(&junk, "lost+found"), "{lines:?}");
    let r = d.get_json("/api/recordings?camera=c");
    assert!(
        r["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["file"] == segs[1].file.as_str()),
        "{r}"
    );
    d.stop();
    let (code, out) = check(&cfg, false);
    assert_eq!(code, 0, "{out}");
    assert_eq!(storage.join("lost+found").read_dir().unwrap().count(), 2);
    let after = indexed_segments(&storage);
    let adopted = after.iter().find(|s| s.file == segs[1].file).unwrap();
    assert_eq!(
        (adopted.start_us, adopted.frames, adopted.bytes),
        (segs[1].start_us, segs[1].frames, segs[1].bytes)
    );
    assert_segments_play(&storage, &after);
}

/// Each closed segment's record-time SHA-256 is what `sha256sum` reads from its file;
/// `--verify-hashes` finds a byte changed and bytes appended (exit 3, the file and why),
/// `--repair` cuts the appended tail (the file is intact again) but cannot make the
/// changed byte right.
#[test]
fn verify_hashes_finds_segments_changed_since_recorded() {
    let t = TestDir::new();
    let (_cam, storage, cfg) = recorded(&t, 3);
    let segs = indexed_segments(&storage);
    assert!(segs.len() >= 3);
    for s in &segs {
        assert_eq!(
            s.sha256.map(hex::encode),
            Some(sha256sum(&storage.join(&s.file))),
            "{}",
            s.file
        );
    }
    let verify = |repair: bool| {
        let mut args = vec![
            "check",
            "--config",
            cfg.to_str().unwrap(),
            "--verify-hashes",
        ];
        if repair {
            args.push("--repair");
        }
        let out = std::process::Command::new(VIGIL)
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = verify(false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "hashes: {} segments intact, 0 changed",
            segs.len()
        )),
        "{out}"
    );

    // One byte flipped in the middle of segment 0; one byte appended to segment 1.
    use std::os::unix::fs::FileExt;
    let (a, b) = (&segs[0], &segs[1]);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(storage.join(&a.file))
        .unwrap();
    let mut byte = [0u8];
    f.read_exact_at(&mut byte, a.bytes / 2).unwrap();
    f.write_all_at(&[byte[0] ^ 0x01], a.bytes / 2).unwrap();
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(storage.join(&b.file))
        .unwrap();
    f.write_all_at(&[0], b.bytes).unwrap();
    let (code, out) = verify(false);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(&format!("changed: {}: SHA-256 ", a.file))
            && out.contains("its bytes changed"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "changed: {}: has {} bytes, {} when recorded",
            b.file,
            b.bytes + 1,
            b.bytes
        )),
        "{out}"
    );
    assert!(out.contains("2 changed since recorded"), "{out}");
    // Repair cuts the tail past the index (segment 1 is as recorded again) but leaves
    // the changed byte, which still fails.
    let (code, out) = verify(true);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("1 changed since recorded"), "{out}");
    assert!(
        out.contains(&format!("changed: {}: SHA-256 ", a.file)),
        "{out}"
    );
    assert_eq!(
        sha256sum(&storage.join(&b.file)),
        hex::encode(b.sha256.unwrap())
    );

    // While the daemon records: the same check through its API (admin), and the CLI
    // asks it there when the index is locked.
    let port = free_port();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&cfg, text).unwrap();
    let d = daemon(&cfg, &t.join("daemon2.log"));
    let r = d.get_json("/api/storage/verify");
    assert_eq!(r["changed"][0]["file"], a.file.as_str(), "{r}");
    assert!(r["intact"].as_u64().unwrap() >= 2, "{r}");
    let out = std::process::Command::new(VIGIL)
        .args([
            "check",
            "--config",
            cfg.to_str().unwrap(),
            "--verify-hashes",
        ])
        .env("VIGIL_TOKEN", d.token.as_deref().unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains(&format!("changed: {}: SHA-256 ", a.file))
            && text.contains("through the running daemon"),
        "{text}"
    );
}
