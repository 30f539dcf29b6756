use super::*;

fn params(width: u32) -> Arc<VideoParams> {
    Arc::new(VideoParams::for_test(width, 360))
}

fn frame(p: &Arc<VideoParams>, timeline: u64, dts: i64, key: bool) -> Frame {
    Frame {
        dts_90k: dts,
        cts_90k: 0,
        utc_us: 1_700_000_000_000_000 + dts * 100 / 9,
        is_key: key,
        leading: false,
        data: Bytes::from(vec![key as u8; 100]),
        params: p.clone(),
        timeline,
        discontinuity: None,
    }
}

/// An init segment and fragments, read back by the recorder's own scanner: decode
/// times, durations, key flags and UTC.
fn scanned(init: &LiveMsg, frags: &[Bytes]) -> fmp4::ScanResult {
    let LiveMsg::Init { segment, .. } = init else {
        panic!("not an init segment")
    };
    let mut file = segment.to_vec();
    for f in frags {
        file.extend_from_slice(f);
    }
    fmp4::scan(&mut std::io::Cursor::new(file)).unwrap()
}

fn fragments(out: Vec<Packaged>) -> (Vec<LiveMsg>, Vec<Bytes>) {
    let (mut inits, mut frags) = (Vec::new(), Vec::new());
    for o in out {
        match o {
            Packaged::Init(i) => inits.push(i),
            Packaged::Fragment { bytes, .. } => frags.push(bytes),
        }
    }
    (inits, frags)
}

/// Pictures become one-frame fragments, each sent when its successor gives its duration;
/// a new timeline continues the live clock; the scanner reads them as the recorder's.
#[test]
fn fragments_continue_one_live_clock_across_timelines() {
    let p = params(640);
    let mut pk = Packager::default();
    let mut out = Vec::new();
    for f in [
        frame(&p, 1, 0, true),
        frame(&p, 1, 6000, false),
        frame(&p, 1, 12_000, false),
        // A new session: its own decode times, far from the last.
        frame(&p, 2, 900_000, true),
        frame(&p, 2, 903_000, false),
    ] {
        out.extend(pk.frame(f, true));
    }
    out.extend(pk.end_run());
    let (inits, frags) = fragments(out);
    assert_eq!(inits.len(), 1, "one init segment for one set of parameters");
    let s = scanned(&inits[0], &frags);
    assert_eq!(s.problem, None);
    let got: Vec<(u64, u32, bool)> = (s.fragments.iter())
        .map(|f| {
            (
                f.base_decode_time,
                f.samples[0].duration,
                f.samples[0].is_key,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, 6000, true),
            (6000, 6000, false),
            // The last of its timeline: the nominal duration.
            (12_000, 6000, false),
            (18_000, 3000, true),
            (21_000, 6000, false),
        ]
    );
    assert_eq!(s.fragments[3].utc_us, Some(1_700_000_010_000_000));
}

/// Nobody watching: nothing is packaged, but the clocks go on.
#[test]
fn nothing_is_packaged_while_nobody_watches() {
    let p = params(640);
    let mut pk = Packager::default();
    let mut n = 0;
    for dts in [0, 6000, 12_000] {
        n += fragments(pk.frame(frame(&p, 1, dts, dts == 0), false))
            .1
            .len();
    }
    assert_eq!(n, 0);
    let (_, frags) = fragments(pk.frame(frame(&p, 1, 18_000, false), true));
    assert_eq!(frags.len(), 1);
}

/// New parameters: a new init segment before the first picture that uses them.
#[test]
fn new_parameters_send_a_new_init_segment() {
    let (a, b) = (params(640), params(1280));
    let mut pk = Packager::default();
    let mut out = Vec::new();
    out.extend(pk.frame(frame(&a, 1, 0, true), true));
    out.extend(pk.frame(frame(&a, 1, 6000, false), true));
    out.extend(pk.frame(frame(&b, 1, 12_000, true), true));
    out.extend(pk.end_run());
    let kinds: Vec<&str> = (out.iter())
        .map(|o| match o {
            Packaged::Init(LiveMsg::Init { width, .. }) if *width == 640 => "init 640",
            Packaged::Init(_) => "init 1280",
            Packaged::Fragment { .. } => "fragment",
        })
        .collect();
    assert_eq!(
        kinds,
        ["init 640", "fragment", "fragment", "init 1280", "fragment"]
    );
}

fn is_key_fragment(m: &LiveMsg) -> Option<bool> {
    match m {
        // The test pictures' bytes say whether they are keyframes.
        LiveMsg::Fragment(b) => Some(b[b.len() - 1] == 1),
        LiveMsg::Init { .. } => None,
    }
}

/// A viewer starts with the init segment and a keyframe; one that falls behind loses
/// pictures up to the next keyframe, while another viewer gets every picture.
#[test]
fn a_slow_viewer_drops_to_the_next_keyframe_alone() {
    let hub = Hub::default();
    let p = params(640);
    let mut pk = Packager::default();
    // Before any viewer: the stream's init is kept for those who come.
    for o in pk.frame(frame(&p, 1, 0, true), true) {
        hub.publish(o);
    }
    let mut fast = hub.subscribe();
    let mut slow = hub.subscribe();
    assert!(matches!(fast.try_recv(), Ok(LiveMsg::Init { .. })));
    assert!(matches!(slow.try_recv(), Ok(LiveMsg::Init { .. })));
    // A GOP of 30 twice, then a keyframe; the fast viewer reads as it goes.
    let mut fast_got = Vec::new();
    for i in 1..=(2 * VIEWER_QUEUE as i64) {
        let key = i % 30 == 0;
        for o in pk.frame(frame(&p, 1, i * 6000, key), true) {
            hub.publish(o);
        }
        while let Ok(m) = fast.try_recv() {
            fast_got.push(is_key_fragment(&m).unwrap());
        }
    }
    // The first picture (a keyframe) and every one after it, but the last (held).
    assert_eq!(fast_got.len(), 2 * VIEWER_QUEUE);
    assert!(fast_got[0]);
    let mut slow_got = Vec::new();
    while let Ok(m) = slow.try_recv() {
        slow_got.push(is_key_fragment(&m).unwrap());
    }
    assert_eq!(slow_got.len(), VIEWER_QUEUE, "its queue filled");
    assert!(hub.dropped() > 0);
    // Read up: it starts again at the next keyframe.
    for i in (2 * VIEWER_QUEUE as i64 + 1)..(2 * VIEWER_QUEUE as i64 + 40) {
        let key = i % 30 == 0;
        for o in pk.frame(frame(&p, 1, i * 6000, key), true) {
            hub.publish(o);
        }
    }
    let next: Vec<bool> = std::iter::from_fn(|| slow.try_recv().ok())
        .map(|m| is_key_fragment(&m).unwrap())
        .collect();
    assert!(!next.is_empty() && next[0], "{next:?}");
    // A viewer that left is forgotten at the next picture; with the last one gone,
    // nobody is watching (ingest's live sink closes its gate).
    assert!(hub.watching().load(Ordering::Relaxed));
    drop(fast);
    for o in pk.frame(frame(&p, 1, 1_000_000, false), true) {
        hub.publish(o);
    }
    assert_eq!(hub.viewers(), 1);
    drop(slow);
    for o in pk.frame(frame(&p, 1, 1_006_000, false), true) {
        hub.publish(o);
    }
    assert_eq!(hub.viewers(), 0);
    assert!(!hub.watching().load(Ordering::Relaxed));
}
