//! Unit tests of the committer: group commit, refused records, retention by age (with clock steps), bytes and free space.

use super::*;
use crate::base::clock::Clocks;
use crate::index::EndReason;
use std::sync::Arc;

fn rec(cam: u32, start_s: i64, bytes: u64, reason: EndReason) -> SegmentRecord {
    SegmentRecord {
        bytes,
        end_reason: reason,
        ..SegmentRecord::for_test(
            cam,
            format!("c{cam}/d/{start_s}.mp4"),
            start_s * 1_000_000,
            (start_s + 10) * 1_000_000,
        )
    }
}

fn setup(
    policy: impl FnOnce(std::path::PathBuf) -> RetentionPolicy,
) -> (tempfile::TempDir, Committer) {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::temporary().unwrap();
    assert_eq!(ix.camera_id("a").unwrap(), 1);
    assert_eq!(ix.camera_id("b").unwrap(), 2);
    let c = Committer::new(
        ix,
        Arc::new(crate::status::Status::default()),
        policy(dir.path().to_owned()),
        Duration::from_millis(10),
    )
    .unwrap();
    (dir, c)
}

fn put(c: &mut Committer, dir: &std::path::Path, r: SegmentRecord) {
    let p = crate::storage::Layout::new(dir).segment(&r.file);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, vec![0u8; r.bytes as usize]).unwrap();
    c.commit(vec![r]).unwrap();
}

fn remaining(c: &Committer) -> Vec<(u32, i64)> {
    c.index
        .all_segments()
        .map(|r| r.unwrap())
        .map(|r| (r.camera_id, r.start_us / 1_000_000))
        .collect()
}

#[test]
fn max_bytes_deletes_oldest_first_across_cameras_never_open() {
    let (dir, mut c) = setup(|dir| RetentionPolicy {
        storage: Layout::new(dir),
        retain_days: None,
        max_bytes: Some(3500),
        min_free: None,
    });
    let d = dir.path();
    put(&mut c, d, rec(1, 0, 1000, EndReason::Rotation));
    put(&mut c, d, rec(2, 5, 1000, EndReason::Rotation));
    put(&mut c, d, rec(1, 10, 1000, EndReason::Rotation));
    put(&mut c, d, rec(2, 15, 1000, EndReason::Rotation));
    put(&mut c, d, rec(1, 20, 1000, EndReason::Open));
    assert_eq!(c.total_bytes, 5000);
    c.retention(0).unwrap();
    assert_eq!(remaining(&c), vec![(1, 10), (1, 20), (2, 15)]);
    assert_eq!(c.total_bytes, 3000);
    assert!(!d.join("c1/d/0.mp4").exists() && !d.join("c2/d/5.mp4").exists());
    assert!(d.join("c1/d/10.mp4").exists());
    assert!(c.index.garbage().unwrap().is_empty());
    // Only the open segment is left above the limit: it is never deleted.
    c.policy.max_bytes = Some(10);
    c.retention(0).unwrap();
    assert_eq!(remaining(&c), vec![(1, 20)]);
}

#[test]
fn age_deletes_segments_that_ended_before_the_cutoff() {
    let (dir, mut c) = setup(|dir| RetentionPolicy {
        storage: Layout::new(dir),
        retain_days: Some(1.0),
        max_bytes: None,
        min_free: None,
    });
    let d = dir.path();
    let day = 86_400;
    put(&mut c, d, rec(1, 0, 10, EndReason::Rotation));
    put(&mut c, d, rec(1, day - 10, 10, EndReason::Rotation)); // ends at `day`
    put(&mut c, d, rec(2, day, 10, EndReason::Rotation));
    c.retention((2 * day) * 1_000_000).unwrap();
    assert_eq!(remaining(&c), vec![(2, day)]);
}

#[test]
fn growing_open_segment_is_counted_once() {
    let (dir, mut c) = setup(|dir| RetentionPolicy {
        storage: Layout::new(dir),
        retain_days: None,
        max_bytes: None,
        min_free: None,
    });
    let d = dir.path();
    put(&mut c, d, rec(1, 0, 100, EndReason::Open));
    put(&mut c, d, rec(1, 0, 300, EndReason::Open));
    put(&mut c, d, rec(1, 0, 500, EndReason::Rotation));
    assert_eq!((c.total_bytes, c.segments), (500, 1));
}

/// A committer over an on-disk index (which can be reopened) with camera "a" (id 1)
/// and no retention limits.
fn on_disk() -> (tempfile::TempDir, Index, Committer) {
    let dir = tempfile::tempdir().unwrap();
    let ix = Index::open(&dir.path().join("index.sled")).unwrap();
    assert_eq!(ix.camera_id("a").unwrap(), 1);
    let c = Committer::new(
        ix.clone(),
        Arc::new(crate::status::Status::default()),
        RetentionPolicy {
            storage: Layout::new(dir.path()),
            retain_days: None,
            max_bytes: None,
            min_free: None,
        },
        Duration::from_millis(10),
    )
    .unwrap();
    (dir, ix, c)
}

/// Records refused while the index reopens stay pending and are committed once,
/// counted once, when it is back.
#[test]
fn refused_records_are_kept_and_committed_once() {
    let (_dir, ix, mut c) = on_disk();
    c.commit(vec![rec(1, 0, 1000, EndReason::Open)]).unwrap();
    // Another thread still holds the old generation: the reopen has to wait.
    let pinned = ix.pin_generation();
    ix.force_reopen();
    assert!(!ix.is_available());
    let refused = c.commit(vec![
        rec(1, 0, 1500, EndReason::Rotation),
        rec(1, 10, 700, EndReason::Open),
    ]);
    assert!(
        matches!(refused, Err(crate::index::IndexError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!((c.total_bytes, c.segments, c.pending.len()), (1000, 1, 2));
    // A newer record of a pending segment replaces the older.
    c.receive(rec(1, 10, 900, EndReason::Open));
    drop(pinned);
    std::thread::sleep(crate::index::REOPEN_EVERY);
    c.commit_pending().unwrap();
    assert!(ix.is_available() && c.pending.is_empty());
    assert_eq!((c.total_bytes, c.segments), (2400, 2));
    let got: Vec<(i64, u64)> = remaining(&c)
        .iter()
        .map(|&(cam, s)| {
            let r = ix.get_segment(cam, s * 1_000_000).unwrap().unwrap();
            (s, r.bytes)
        })
        .collect();
    assert_eq!(got, vec![(0, 1500), (10, 900)]);
}

/// After the wall clock stepped forward a day, recordings made before the step are
/// aged by the time that really passed: a 12-hour retention keeps them until 12 hours
/// have really passed, then deletes them.
#[test]
fn retention_ages_recordings_across_a_forward_clock_step() {
    let (dir, mut c) = setup(|dir| RetentionPolicy {
        storage: Layout::new(dir),
        retain_days: Some(0.5),
        max_bytes: None,
        min_free: None,
    });
    let d = dir.path();
    let day = 86_400i64;
    put(&mut c, d, rec(1, 0, 10, EndReason::Rotation)); // ends at 10 s
    // At 20 s of real time the clock jumps to a day later.
    c.clock_steps = vec![ClockStep {
        at_us: (day + 20) * 1_000_000,
        delta_us: day * 1_000_000,
        recorded_until_us: 10_000_000,
    }];
    put(&mut c, d, rec(1, day + 21, 10, EndReason::Rotation));
    c.retention((day + 30) * 1_000_000).unwrap();
    assert_eq!(remaining(&c), vec![(1, 0), (1, day + 21)]);
    // 12 real hours after it was recorded (the clock reads a day more), the first
    // goes; the second, recorded 11 s later, stays.
    c.retention((day + 12 * 3600 + 20) * 1_000_000).unwrap();
    assert_eq!(remaining(&c), vec![(1, day + 21)]);
}

/// The committer sees the wall clock step (and only a step: time passing, or a slew under
/// [`CLOCK_STEP_US`], is none) from its clock alone, and records it with the newest end
/// recorded before it; driven by a simulated clock, without sleeping.
#[test]
fn wall_clock_steps_are_seen_and_recorded() {
    let (dir, c) = setup(|dir| RetentionPolicy {
        storage: Layout::new(dir),
        retain_days: None,
        max_bytes: None,
        min_free: None,
    });
    let clock = crate::base::clock::SimulatedClocks::new(1_000_000_000_000);
    let mut c = c.with_clock(clock.clone());
    put(
        &mut c,
        dir.path(),
        rec(1, 1_000_000, 10, EndReason::Rotation),
    );
    // An hour passes, with a slew of 1.5 s: no step.
    clock.advance(Duration::from_secs(3600));
    clock.step_realtime(1_500_000);
    c.watch_clock();
    assert!(c.clock_steps.is_empty());
    // `date -s` a day ahead.
    clock.advance(Duration::from_secs(1));
    clock.step_realtime(86_400_000_000);
    c.watch_clock();
    assert_eq!(c.clock_steps.len(), 1, "{:?}", c.clock_steps);
    let s = &c.clock_steps[0];
    assert_eq!(s.delta_us, 86_400_000_000);
    assert_eq!(s.at_us, clock.realtime_us());
    // Recordings up to the segment's end (and the time expected before the step) were
    // stamped by the clock before it.
    assert_eq!(s.recorded_until_us, s.at_us - s.delta_us);
    assert_eq!(c.index.clock_steps().unwrap(), c.clock_steps);
    // Back by ten minutes: a second step, negative.
    clock.step_realtime(-600_000_000);
    c.watch_clock();
    assert_eq!(c.clock_steps.len(), 2);
    assert_eq!(c.clock_steps[1].delta_us, -600_000_000);
}

/// On a full disk with the index unreadable (it could not reopen), retention deletes
/// the oldest candidates of its last scan and indexes the deletions once the index
/// is back; totals stay right.
#[test]
fn a_full_disk_with_the_index_down_still_frees_space() {
    let (dir, ix, mut c) = on_disk();
    let d = dir.path().to_owned();
    for i in 0..3 {
        put(&mut c, &d, rec(1, i * 10, 100, EndReason::Rotation));
    }
    put(&mut c, &d, rec(1, 30, 100, EndReason::Open));
    c.refresh_fallback().unwrap();
    let pinned = ix.pin_generation();
    ix.force_reopen();
    assert!(!ix.is_available());
    // Nothing but the three closed segments may go, whatever the target.
    c.policy.min_free = Some(u64::MAX / 2);
    assert!(c.enforce_min_free().is_err());
    for i in 0..3 {
        assert!(!d.join(format!("c1/d/{}.mp4", i * 10)).exists());
    }
    assert!(d.join("c1/d/30.mp4").exists());
    assert_eq!((c.total_bytes, c.segments), (100, 1));
    drop(pinned);
    std::thread::sleep(crate::index::REOPEN_EVERY);
    c.policy.min_free = None;
    c.catch_up().unwrap();
    assert_eq!(remaining(&c), vec![(1, 30)]);
    assert!(ix.garbage().unwrap().is_empty());
    c.recount().unwrap();
    assert_eq!((c.total_bytes, c.segments), (100, 1));
}

/// A free-space floor that deleting every recording could not reach (another program
/// fills the disk) deletes nothing and says why; with the index down (the disk full in
/// earnest) the fallback above still frees space.
#[test]
fn an_unreachable_free_space_floor_keeps_the_recordings() {
    let (dir, _ix, mut c) = on_disk();
    let d = dir.path().to_owned();
    for i in 0..3 {
        put(&mut c, &d, rec(1, i * 10, 100, EndReason::Rotation));
    }
    let free = c.policy.storage.free_bytes().unwrap();
    c.policy.min_free = Some(free + (1 << 30));
    c.enforce_min_free().unwrap();
    assert_eq!(remaining(&c), vec![(1, 0), (1, 10), (1, 20)]);
    let err = c
        .status
        .storage(|s| s.last_error.clone())
        .unwrap_or_default();
    assert!(err.contains("another program is filling the disk"), "{err}");
}
