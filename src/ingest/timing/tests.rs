//! Unit tests of the timing model: each rule of the module documentation, on synthetic cameras.

use super::*;

const T0: i64 = 1_700_000_000_000_000;

/// Feeds `n` pictures at `fps` in decode order with presentation offsets (in frames)
/// from `pattern` (repeating), the camera clock running `rate` times the real one,
/// arrivals with a deterministic jitter of up to `jitter_us`.
fn run(
    t: &mut Timing<usize>,
    n: usize,
    fps: f64,
    pattern: &[i64],
    rate: f64,
    jitter_us: i64,
) -> Vec<Output<usize>> {
    let mut out = Vec::new();
    let frame_us = 1e6 / fps;
    for i in 0..n {
        let pos =
            (i as i64 / pattern.len() as i64) * pattern.len() as i64 + pattern[i % pattern.len()];
        let pts = 1_000 + (pos as f64 * frame_us * 0.09 * rate).round() as i64;
        let arrival = T0 + (i as f64 * frame_us) as i64 + (i as i64 * 7919) % (jitter_us + 1);
        out.extend(t.push(pts, arrival, i % pattern.len() == 0, i));
    }
    out.extend(t.flush());
    out
}

fn pictures(o: &[Output<usize>]) -> Vec<&Timed<usize>> {
    o.iter()
        .filter_map(|x| match x {
            Output::Picture(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn jumps(o: &[Output<usize>]) -> Vec<Jump> {
    o.iter()
        .filter_map(|x| match x {
            Output::Discontinuity { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

#[test]
fn healthy_camera_keeps_exact_rtp_durations() {
    let mut t = Timing::new(CameraClock::default());
    let o = run(&mut t, 25 * 120, 25.0, &[0], 1.0, 20_000);
    let p = pictures(&o);
    assert_eq!(p.len(), 25 * 120);
    assert!(jumps(&o).is_empty());
    for w in p.windows(2) {
        assert_eq!(w[1].dts_90k - w[0].dts_90k, 3600);
        assert_eq!(w[0].cts_90k, 0);
    }
    assert_eq!(t.clock.rate, 1.0);
}

#[test]
fn b_frames_get_increasing_dts_and_signed_offsets() {
    // Decode order I0 P3 B1 B2, P6 B4 B5, ...: presentation offsets in frames.
    let mut t = Timing::new(CameraClock::default());
    t.declare_reorder(2);
    let pattern = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11];
    let o = run(&mut t, 130, 15.0, &pattern, 1.0, 0);
    let p = pictures(&o);
    assert_eq!(p.len(), 130);
    assert_eq!(t.reorder_violations, 0);
    for w in p.windows(2) {
        assert_eq!(w[1].dts_90k - w[0].dts_90k, 6000, "display interval");
    }
    // Presentation times are the input's, in the input's order.
    let pts: Vec<i64> = p.iter().map(|x| x.dts_90k + x.cts_90k as i64).collect();
    assert_eq!(pts[..4], [0, 18000, 6000, 12000]);
    assert!(p.iter().any(|x| x.cts_90k < 0));
    // Anchored so that no picture is stamped after its arrival.
    assert!(p[0].utc_us <= T0 && p[0].utc_us > T0 - 100_000);
}

#[test]
fn undeclared_b_frames_are_learnt() {
    let mut t = Timing::new(CameraClock::default());
    let pattern = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11];
    let o = run(&mut t, 130, 15.0, &pattern, 1.0, 0);
    let p = pictures(&o);
    assert_eq!(p.len(), 130);
    // I P B B needs one picture of look-ahead for decode times.
    assert!(t.clock.reorder >= 1);
    for w in p.windows(2) {
        assert!(w[1].dts_90k > w[0].dts_90k);
    }
    // Once learnt, durations are exact again.
    for w in p[20..].windows(2) {
        assert_eq!(w[1].dts_90k - w[0].dts_90k, 6000);
    }
}

#[test]
fn a_backward_step_breaks_the_timeline_once_and_loses_nothing() {
    let mut t = Timing::new(CameraClock::default());
    let mut o = Vec::new();
    for i in 0..300i64 {
        let mut pts = i * 6000;
        if i >= 160 {
            pts -= 2 * 90_000;
        }
        o.extend(t.push(pts, T0 + i * 66_667, i % 30 == 0, i as usize));
    }
    o.extend(t.flush());
    assert_eq!(jumps(&o), [Jump::Backward]);
    let p = pictures(&o);
    assert_eq!(p.len(), 300);
    // Up to the next keyframe (180) the pictures follow on, on the same timeline.
    assert_eq!(p[160].timeline, p[159].timeline);
    assert_eq!(p[160].dts_90k - p[159].dts_90k, 6000);
    // The new timeline starts there, at the arrival time: no overlap, no lie.
    assert!(p[180].timeline > p[179].timeline);
    assert!(p[180].utc_us > p[179].utc_us);
    assert!((p[180].utc_us - (T0 + 180 * 66_667)).abs() < 10_000);
    let breaks: Vec<usize> = o
        .iter()
        .scan(0usize, |n, x| {
            Some(match x {
                Output::Picture(_) => {
                    *n += 1;
                    None
                }
                Output::Discontinuity { .. } => Some(*n),
            })
        })
        .flatten()
        .collect();
    assert_eq!(breaks, [180], "the break comes right before the keyframe");
}

#[test]
fn a_forward_jump_breaks_the_timeline() {
    let mut t = Timing::new(CameraClock::default());
    let mut o = Vec::new();
    for i in 0..100i64 {
        let pts = i * 6000 + if i >= 50 { 3600 * 90_000 } else { 0 };
        o.extend(t.push(pts, T0 + i * 66_667, i % 30 == 0, i as usize));
    }
    o.extend(t.flush());
    assert_eq!(jumps(&o), [Jump::Forward]);
    let p = pictures(&o);
    assert_eq!(
        p[50].dts_90k - p[49].dts_90k,
        6000,
        "bridged to the keyframe"
    );
    assert!((p[99].utc_us - (T0 + 99 * 66_667)).abs() < 10_000);
}

#[test]
fn rtp_gap_matching_the_wall_clock_is_no_jump() {
    // Packets lost for 5 s (UDP): presentation and wall clock advance together.
    let mut t = Timing::new(CameraClock::default());
    let mut o = Vec::new();
    for i in (0..50i64).chain(125..200) {
        o.extend(t.push(i * 6000, T0 + i * 66_667, i % 30 == 0, i as usize));
    }
    o.extend(t.flush());
    assert!(jumps(&o).is_empty());
}

#[test]
fn fast_and_slow_clocks_stay_within_the_bound() {
    for rate in [1.2, 0.8, 1.0004, 1.003] {
        let mut t = Timing::new(CameraClock::default());
        let fps = 15.0;
        let n = (fps * 600.0) as usize; // ten minutes
        let o = run(&mut t, n, fps, &[0], rate, 30_000);
        assert!(jumps(&o).is_empty(), "rate {rate}: {:?}", jumps(&o));
        let p = pictures(&o);
        let frame_us = 1e6 / fps;
        let mut worst = 0i64;
        for (i, x) in p.iter().enumerate() {
            let arrival = T0 + (i as f64 * frame_us) as i64;
            let err = x.utc_us - arrival;
            assert!(err < MAX_AHEAD_US, "rate {rate}: {err} µs ahead at {i}");
            assert!(-err < MAX_BEHIND_US, "rate {rate}: {err} µs behind at {i}");
            if i > n / 2 {
                worst = worst.max(err.abs());
            }
        }
        // After settling, within the phase deadband plus the jitter.
        assert!(worst < 150_000, "rate {rate}: settled error {worst} µs");
        // Ten minutes of recorder time for ten minutes of video.
        let span_us = ticks_to_us((p[n - 1].dts_90k - p[0].dts_90k) as f64);
        let wall_us = (n - 1) as f64 * frame_us;
        assert!(
            (span_us - wall_us).abs() < 300_000.0,
            "rate {rate}: {span_us} vs {wall_us}"
        );
        if (rate - 1.0f64).abs() < RATE_TOLERANCE {
            assert_eq!(t.clock.rate, 1.0);
        }
    }
}

#[test]
fn a_burst_of_old_pictures_is_stamped_in_the_past() {
    // A server that sends 3 s of buffered pictures at once after PLAY, then live
    // ones: anchoring on the first picture would stamp the live ones 3 s ahead.
    let mut t = Timing::new(CameraClock::default());
    let mut o = Vec::new();
    for i in 0..300i64 {
        let arrival = if i < 45 { T0 } else { T0 + (i - 45) * 66_667 };
        o.extend(t.push(i * 6000, arrival, i % 30 == 0, i as usize));
    }
    o.extend(t.flush());
    assert!(jumps(&o).is_empty());
    let p = pictures(&o);
    assert!(
        (p[0].utc_us - (T0 - 45 * 66_667)).abs() < 1_000,
        "{}",
        p[0].utc_us - T0
    );
    assert!((p[299].utc_us - (T0 + 254 * 66_667)).abs() < 1_000);
}

#[test]
fn a_clock_that_changes_pace_is_reanchored_and_bounded() {
    // Healthy for a minute, then the camera's clock suddenly runs at 0.3x.
    let mut t = Timing::new(CameraClock::default());
    let mut o = Vec::new();
    let mut pts = 0f64;
    let n = 15 * 240;
    for i in 0..n as i64 {
        pts += if i < 15 * 60 { 6000.0 } else { 1800.0 };
        o.extend(t.push(pts as i64, T0 + i * 66_667, i % 30 == 0, i as usize));
    }
    o.extend(t.flush());
    assert!(jumps(&o).contains(&Jump::Clock), "{:?}", jumps(&o));
    let p = pictures(&o);
    assert_eq!(p.len(), n);
    for (i, x) in p.iter().enumerate() {
        let err = x.utc_us - (T0 + i as i64 * 66_667);
        // The bound, plus the 3 s it takes to judge, plus a GOP (2 s) to the break.
        assert!(
            err < MAX_AHEAD_US && -err < MAX_BEHIND_US + 3_000_000 + 2_000_000,
            "{err} at {i}"
        );
    }
    let last = p.last().unwrap().utc_us - (T0 + (n as i64 - 1) * 66_667);
    assert!(last.abs() < 150_000, "{last}");
}

/// The recorder's own wall clock steps (arrival times are read from it): back an
/// hour, then forward a day. Each breaks the timeline within the time it takes to
/// judge; stamps never go back (the floor: no overlap), and after the forward step
/// they follow the new clock; the camera's rate is not mistaken for the step.
#[test]
fn recorder_clock_steps_break_the_timeline_without_overlap() {
    let mut t = Timing::new(CameraClock::default());
    let mut o = Vec::new();
    let n = 15 * 60;
    let hour = 3_600_000_000i64;
    let mut breaks = Vec::new();
    for i in 0..n as i64 {
        let real = T0 + i * 66_667;
        let wall = match i {
            _ if i < 15 * 20 => real,
            _ if i < 15 * 40 => real - hour,
            _ => real + 24 * hour,
        };
        let out = t.push(1000 + i * 6000, wall, i % 30 == 0, i as usize);
        if out
            .iter()
            .any(|x| matches!(x, Output::Discontinuity { .. }))
        {
            breaks.push(i);
        }
        o.extend(out);
    }
    o.extend(t.flush());
    assert_eq!(t.clock.rate, 1.0, "a clock step is not a rate");
    assert_eq!(
        jumps(&o),
        vec![Jump::Clock, Jump::Clock],
        "breaks at {breaks:?}"
    );
    // Judged within a second or three, plus a GOP to the keyframe.
    assert!((300..300 + 15 * 4).contains(&breaks[0]), "{breaks:?}");
    assert!((600..600 + 15 * 6).contains(&breaks[1]), "{breaks:?}");
    let p = pictures(&o);
    assert_eq!(p.len(), n);
    for w in p.windows(2) {
        assert!(
            w[1].utc_us > w[0].utc_us,
            "stamps went back at {}",
            w[1].payload
        );
    }
    // After the day forward, the stamps are the new clock's.
    let last = p.last().unwrap().utc_us - (T0 + (n as i64 - 1) * 66_667 + 24 * hour);
    assert!(last.abs() < 200_000, "{last}");
}

#[test]
fn a_small_step_back_is_a_step_not_reordering() {
    // Half a second back in a stream without B-frames, declared (Baseline) or not.
    for declared in [false, true] {
        let mut t = Timing::new(CameraClock::default());
        if declared {
            t.declare_reorder(0);
        }
        let mut o = Vec::new();
        for i in 0..300i64 {
            let pts = i * 6000 - if i >= 150 { 45_000 } else { 0 };
            o.extend(t.push(pts, T0 + i * 66_667, i % 30 == 0, i as usize));
        }
        o.extend(t.flush());
        assert_eq!(jumps(&o), [Jump::Backward], "declared {declared}");
        assert_eq!(t.clock.reorder, 0, "declared {declared}");
        let p = pictures(&o);
        assert_eq!(p.len(), 300);
        for w in p.windows(2).filter(|w| w[0].timeline == w[1].timeline) {
            assert_eq!(w[1].dts_90k - w[0].dts_90k, 6000, "declared {declared}");
        }
    }
}

#[test]
fn a_step_in_a_b_frame_stream_breaks_at_once_in_presentation_order() {
    let mut t = Timing::new(CameraClock::default());
    t.declare_reorder(2);
    let pattern = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11];
    let mut o = Vec::new();
    for i in 0..260usize {
        let pos = (i / 13 * 13) as i64 + pattern[i % 13];
        let pts = pos * 6000 - if i >= 100 { 2 * 90_000 } else { 0 };
        o.extend(t.push(pts, T0 + i as i64 * 66_667, i % 13 == 0, i));
    }
    o.extend(t.flush());
    assert_eq!(jumps(&o), [Jump::Backward]);
    let p = pictures(&o);
    assert_eq!(p.len(), 260);
    // Within each timeline: decode times increase, presentation times are distinct
    // and each picture keeps its place in presentation order.
    for line in [p[0].timeline, p[259].timeline] {
        let mine: Vec<_> = p.iter().filter(|x| x.timeline == line).collect();
        for w in mine.windows(2) {
            assert!(w[1].dts_90k > w[0].dts_90k);
        }
        let mut pts: Vec<(i64, usize)> = mine
            .iter()
            .map(|x| (x.dts_90k + x.cts_90k as i64, x.payload))
            .collect();
        pts.sort();
        for w in pts.windows(2) {
            assert!(w[1].0 > w[0].0);
        }
    }
}

#[test]
fn audio_follows_the_camera_clock_without_gaps_or_overlaps() {
    // 48 kHz AAC (1024 samples a frame) from a camera whose clock runs 1.2x fast, with
    // a burst of 0.5 s of buffered frames after PLAY; the video learnt the rate 1/1.2
    // after 3 s.
    let mut a = AudioClock::new(48_000);
    let frame_us = 1024.0 * 1e6 / 48_000.0;
    let mut out = Vec::new();
    for i in 0..2000i64 {
        let ts = (i as f64 * 1024.0 * 1.2) as i64;
        let real = i as f64 * frame_us;
        let arrival = T0 + real.max(500_000.0) as i64; // the first 0.5 s at once
        let k = if real < 3e6 { 1.0 } else { 1.0 / 1.2 };
        out.extend(a.push(ts, arrival, k, i));
    }
    assert_eq!(out.len(), 2000);
    // Stamps increase, and after the rate is known they follow the real time.
    for w in out.windows(2) {
        assert!(w[1].0 > w[0].0);
    }
    let (u, i) = *out.last().unwrap();
    let err = u - (T0 + (i as f64 * frame_us) as i64);
    assert!(err.abs() < 600_000, "{err}");
    // The burst was stamped in the past, not at its arrival.
    assert!(out[0].0 < T0);
}

#[test]
fn a_new_timeline_never_starts_before_the_previous_end() {
    let mut clock = CameraClock::default();
    let mut t = Timing::new(clock.clone());
    let mut o = Vec::new();
    for i in 0..30i64 {
        o.extend(t.push(i * 6000, T0 + i * 66_667, i % 30 == 0, 0));
    }
    o.extend(t.flush());
    let end = pictures(&o).last().unwrap().utc_us;
    clock = t.clock.clone();
    // Reconnected, and the first picture arrives "before" the old end (a clock
    // that ran ahead).
    let mut t = Timing::new(clock);
    let mut o2 = t.push(0, end - 500_000, true, 0);
    o2.extend(t.flush());
    assert!(pictures(&o2)[0].utc_us > end);
}
