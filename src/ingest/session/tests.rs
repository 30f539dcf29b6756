//! Unit tests of a session's receiving rules: loss, slices, reused timestamps.

use super::*;
use crate::media::{SinkKind, StreamMsg};

/// Length-prefixed H.264 slices: (NAL header, first byte of the slice header; its top
/// bit set means `first_mb_in_slice` = 0, a slice that starts a picture).
fn h264(slices: &[(u8, u8)]) -> Vec<u8> {
    slices
        .iter()
        .flat_map(|&(h, b)| [0, 0, 0, 2, h, b])
        .collect()
}
const IDR: (u8, u8) = (0x65, 0x88);
const P: (u8, u8) = (0x41, 0x9a);
/// A second slice of the same picture.
const P_MORE: (u8, u8) = (0x41, 0x40);

/// Runs `units` (pts, loss, rap, data) through a receiver of a recording task and
/// returns the frames its writer sink got (pts order) and the ingest statistics.
fn receive(
    units: Vec<(i64, u64, bool, Vec<u8>)>,
) -> (Vec<crate::media::Frame>, crate::status::IngestStats) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[storage]\ndir = {:?}\n[[cameras]]\nname = \"c\"\nurl = \"rtsp://127.0.0.1:1/c\"\n",
        dir.path().display().to_string()
    );
    let cfg = crate::config::Config::parse(&dir.path().join("v.toml"), &text).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(1000);
    let task = IngestTask {
        camera: cfg.cameras[0].clone(),
        role: Role::Record,
        sinks: vec![crate::media::Sink::new(SinkKind::Recording, tx)],
        status: Default::default(),
        cancel: crate::base::cancel::new().1,
        sessions: Arc::new(crate::ingest::Rtsp),
    };
    let mut r = Receiver::new(&task, 0, None, socket::Coalescer::new(None, "c"));
    r.params = Some(Arc::new(VideoParams {
        codec: "avc1.640028".into(),
        width: 640,
        height: 360,
        nominal_duration: Some(3000),
        encoding: "h264",
        codec_config: Vec::new(),
        audio: None,
        sample_entry: Vec::new(),
    }));
    let mut timing = Timing::new(CameraClock::default());
    let mut outlet = Outlet::new(&task);
    let mut held = None;
    let t0 = now_us();
    for (pts, loss, rap, data) in units {
        let u = VideoUnit {
            pts,
            loss,
            rap,
            arrival: t0 + pts * 100 / 9,
            data,
        };
        r.unit(u, &mut timing, &mut outlet, &mut held).unwrap();
    }
    if let Some((t, a, h)) = held.take() {
        let key = h.is_key;
        outlet.emit(timing.push(t, a, key, h)).unwrap();
    }
    outlet.emit(timing.flush()).unwrap();
    let frames = std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|m| match m {
            StreamMsg::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    let stats = task.status.ingest("c", |s| s.clone());
    (frames, stats)
}

/// Loss before a picture drops it and what depends on it, up to the next keyframe.
#[test]
fn loss_drops_pictures_to_the_next_keyframe() {
    let (frames, s) = receive(vec![
        (0, 0, true, h264(&[IDR])),
        (3000, 0, false, h264(&[P])),
        (6000, 2, false, h264(&[P])),
        (9000, 0, false, h264(&[P])),
        (12000, 0, true, h264(&[IDR])),
        (15000, 0, false, h264(&[P])),
    ]);
    let keys: Vec<bool> = frames.iter().map(|f| f.is_key).collect();
    assert_eq!(keys, [true, false, true, false]);
    assert_eq!((s.lost_packets, s.dropped_pictures), (2, 2));
    assert_eq!(s.received_frames, 4);
}

/// Slices under one timestamp are one picture (one sample with all of them); a slice
/// lost inside a picture drops that picture.
#[test]
fn slices_of_one_picture_are_one_sample() {
    let (frames, s) = receive(vec![
        (0, 0, true, h264(&[IDR])),
        (0, 0, false, h264(&[(0x65, 0x40)])),
        (3000, 0, false, h264(&[P])),
        (3000, 0, false, h264(&[P_MORE])),
        (6000, 0, false, h264(&[P])),
        (6000, 1, false, h264(&[P_MORE])),
        (9000, 0, true, h264(&[IDR])),
    ]);
    let sizes: Vec<usize> = frames.iter().map(|f| f.data.len()).collect();
    assert_eq!(sizes, [12, 12, 6]);
    assert!(frames[0].is_key && frames[2].is_key);
    assert_eq!(s.dropped_pictures, 1);
}

/// In a progressive stream, a new picture under the previous one's timestamp has no
/// time of its own: dropped, with what follows up to the next keyframe.
#[test]
fn a_picture_reusing_a_timestamp_is_dropped_to_the_next_keyframe() {
    let (frames, s) = receive(vec![
        (0, 0, true, h264(&[IDR])),
        (0, 0, false, h264(&[P])),
        (3000, 0, false, h264(&[P])),
        (6000, 0, true, h264(&[IDR])),
    ]);
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| f.is_key));
    assert_eq!(s.dropped_pictures, 2);
}

/// Rates are given once a window spans two seconds, over the whole window, and the next
/// window starts then.
#[test]
fn rates_are_taken_over_two_second_windows() {
    let t0 = Instant::now();
    let mut w = RateWindow::new(t0);
    for _ in 0..30 {
        w.add(1000);
    }
    assert!(
        w.rate(t0 + std::time::Duration::from_millis(1999))
            .is_none()
    );
    let t1 = t0 + std::time::Duration::from_millis(2500);
    let (fps, bps, bytes, frames) = w.rate(t1).unwrap();
    assert_eq!((bytes, frames), (30_000, 30));
    assert!((fps - 12.0).abs() < 1e-9, "{fps}");
    assert!((bps - 96_000.0).abs() < 1e-6, "{bps}");
    // A new window from t1: empty, and not due before t1 + 2 s.
    assert!(w.rate(t1 + std::time::Duration::from_secs(1)).is_none());
    let (fps, _, bytes, _) = w.rate(t1 + std::time::Duration::from_secs(2)).unwrap();
    assert_eq!((fps, bytes), (0.0, 0));
}
