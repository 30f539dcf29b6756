//! Unit tests of the segment writer, driven by a simulated clock.

use super::*;
use crate::base::clock::SimulatedClocks;
use crate::media::{Frame, VideoParams};
use std::sync::Arc;

fn frame(i: i64, params: &Arc<VideoParams>) -> StreamMsg {
    StreamMsg::Frame(Frame {
        dts_90k: i * 6000,
        cts_90k: 0,
        utc_us: 1_700_000_000_000_000 + i * 66_667,
        is_key: i % 30 == 0,
        leading: false,
        data: vec![(i % 251) as u8; 2000].into(),
        params: params.clone(),
        timeline: 1,
        discontinuity: None,
    })
}

/// Fragments are written as media time goes, but made durable and committed only
/// once `commit_interval` of (monotonic) time has passed: driven by a simulated
/// clock, without sleeping.
#[test]
fn commits_follow_the_commit_interval_of_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let params = Arc::new(VideoParams::for_test(640, 360));
    let (tx, rx) = std::sync::mpsc::channel();
    let clock = SimulatedClocks::new(1_700_000_000_000_000);
    let mut w = SegmentWriter::new(
        WriterConfig {
            camera: "c".into(),
            camera_id: 1,
            storage: crate::storage::Layout::new(dir.path()),
            segment_seconds: 60,
            commit_interval: Duration::from_secs(1),
        },
        tx,
        Arc::new(crate::status::Status::default()),
    )
    .with_clock(clock.clone());
    let puts = |rx: &std::sync::mpsc::Receiver<CommitMsg>| -> Vec<SegmentRecord> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|m| match m {
                CommitMsg::Put(r) => Some(r),
                _ => None,
            })
            .collect()
    };
    // 4 s of media (fragments of at most 1 s written) while no time passes: only the
    // segment's opening record.
    for i in 0..60 {
        assert!(w.handle(frame(i, &params)));
    }
    let opened = puts(&rx);
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].frames, 0);
    // A second passes: the next fragment written is synced and committed.
    clock.advance(Duration::from_secs(1));
    for i in 60..75 {
        assert!(w.handle(frame(i, &params)));
    }
    let committed = puts(&rx);
    assert_eq!(committed.len(), 1, "{committed:?}");
    assert!(committed[0].frames >= 60, "{:?}", committed[0]);
    // No time passes: nothing more is committed until the interval has passed again.
    for i in 75..120 {
        assert!(w.handle(frame(i, &params)));
    }
    assert!(puts(&rx).is_empty());
    clock.advance(Duration::from_millis(999));
    for i in 120..135 {
        assert!(w.handle(frame(i, &params)));
    }
    assert!(puts(&rx).is_empty());
    clock.advance(Duration::from_millis(1));
    for i in 135..150 {
        assert!(w.handle(frame(i, &params)));
    }
    assert_eq!(puts(&rx).len(), 1);
    // Shutdown closes and commits the segment.
    assert!(!w.handle(StreamMsg::Shutdown));
    let closed = puts(&rx);
    assert_eq!(
        closed.last().unwrap().end_reason,
        crate::index::EndReason::Shutdown
    );
}
