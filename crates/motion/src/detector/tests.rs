//! Unit tests of the detector: grid counts, zones, sensitive zones, light versus objects.
use super::*;
use ndarray::Array2;
/// The grid handed to the timeline counts kept blobs only: a person-sized block shows
/// in exactly the cells it covers, with its pixel counts; scattered noise pixels (each
/// far below min_area) show nowhere.
#[test]
fn grid_counts_kept_blobs_not_noise() {
    let (h, w) = (180, 320); // 32x18 cells of 10x10 pixels
    let zone = Zone {
        name: "all".into(),
        polygon: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
        min_area: None,
        min_fraction: None,
    };
    let mut d = Detector::new("c", &[zone], &[], DetectorConfig::default());
    let grey = Array2::<u8>::from_elem((h, w), 100);
    for i in 0..10 {
        d.frame(grey.view(), i * 200).unwrap();
    }
    let mut f = grey.clone();
    // A 30x40 block at x 105..135, y 42..82, and one noise pixel every 37 pixels.
    f.slice_mut(ndarray::s![42..82, 105..135]).fill(220);
    for i in (0..h * w).step_by(37) {
        let (y, x) = (i / w, i % w);
        // (Noise next to the block joins it: pooling links pixels up to 3 apart.)
        if !(36..88).contains(&y) || !(99..141).contains(&x) {
            f[(y, x)] = 220;
        }
    }
    let (res, _) = d.frame(f.view(), 2000).unwrap();
    assert!(res.motion);
    assert_eq!((res.grid_cols, res.grid_rows), (32, 18));
    for cy in 0..18 {
        for cx in 0..32 {
            // Covered pixels of this 10x10 cell.
            let xs = (cx * 10..cx * 10 + 10)
                .filter(|x| (105..135).contains(x))
                .count();
            let ys = (cy * 10..cy * 10 + 10)
                .filter(|y| (42..82).contains(y))
                .count();
            let want = (xs * ys * 255 / 100) as u8;
            assert_eq!(res.grid[cy * 32 + cx], want, "cell ({cx}, {cy})");
        }
    }
}

/// A zone whose min_area is below the camera's keeps smaller blobs inside it (a
/// distant person) and only there: the same small block elsewhere is still noise, and
/// a camera without such a zone ignores it everywhere.
#[test]
fn a_sensitive_zone_keeps_small_blobs_inside_it_only() {
    let (h, w) = (180, 320);
    let far = Zone {
        name: "far".into(),
        polygon: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 0.3], [0.0, 0.3]],
        min_area: Some(0.0012),
        min_fraction: Some(0.0),
    };
    let all = Zone {
        name: "all".into(),
        polygon: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
        min_area: None,
        min_fraction: None,
    };
    // A 6x15 block (90 px, under the default 0.002 of the image = 116 px).
    let run = |zones: &[Zone], y: usize| {
        let mut d = Detector::new("c", zones, &[], DetectorConfig::default());
        let grey = Array2::<u8>::from_elem((h, w), 100);
        for i in 0..10 {
            d.frame(grey.view(), i * 200).unwrap();
        }
        let mut f = grey.clone();
        f.slice_mut(ndarray::s![y..y + 15, 150..156]).fill(220);
        d.frame(f.view(), 2000).unwrap().0
    };
    let r = run(&[all.clone(), far.clone()], 20);
    assert!(r.motion && r.zones.contains(&1), "{r:?}");
    assert!(
        !run(&[all.clone(), far], 120).motion,
        "outside the far band"
    );
    assert!(!run(&[all], 20).motion, "no sensitive zone");
}

/// Over a textured scene, a soft shadow (the texture kept, darker) is light, not
/// motion; a person-sized block with its own surface in the same place is motion.
#[test]
fn a_shadow_keeps_the_texture_an_object_replaces_it() {
    let (h, w) = (180, 320);
    let all = Zone {
        name: "all".into(),
        polygon: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
        min_area: None,
        min_fraction: None,
    };
    let scene = Array2::from_shape_fn((h, w), |(y, x)| {
        (115.0 + 50.0 * ((x as f64) * 0.13 + (y as f64) * 0.07).sin()) as u8
    });
    let run = |f: &Array2<u8>| {
        let mut d = Detector::new(
            "c",
            std::slice::from_ref(&all),
            &[],
            DetectorConfig::default(),
        );
        for i in 0..10 {
            d.frame(scene.view(), i * 200).unwrap();
        }
        d.frame(f.view(), 2000).unwrap().0
    };
    let mut shadow = scene.clone();
    shadow
        .slice_mut(ndarray::s![40..140, 100..180])
        .mapv_inplace(|v| (v as f64 * 0.55) as u8);
    assert!(!run(&shadow).motion, "a shadow raised motion");
    let mut person = scene.clone();
    person.slice_mut(ndarray::s![60..120, 130..154]).fill(220);
    assert!(run(&person).motion, "a person raised none");
}

/// New zones apply at once, keeping the background (no calibration): the same block
/// is in "left" before and in "right" after the zones move; a bad zone set is refused
/// and changes nothing.
#[test]
fn zones_move_without_calibrating_again() {
    let (h, w) = (180, 320);
    let zone = |name: &str, x0: f64, x1: f64| Zone {
        name: name.into(),
        polygon: vec![[x0, 0.0], [x1, 0.0], [x1, 1.0], [x0, 1.0]],
        min_area: None,
        min_fraction: None,
    };
    let mut d = Detector::new(
        "c",
        &[zone("left", 0.0, 0.5)],
        &[],
        DetectorConfig::default(),
    );
    let grey = Array2::<u8>::from_elem((h, w), 100);
    for i in 0..10 {
        d.frame(grey.view(), i * 200).unwrap();
    }
    let mut f = grey.clone();
    f.slice_mut(ndarray::s![42..82, 105..135]).fill(220); // x 0.33..0.42
    let mut t = 2000;
    while !d.event_open() && t < 4000 {
        let (res, _) = d.frame(f.view(), t).unwrap();
        assert_eq!(res.zones, vec![0]);
        t += 200;
    }
    assert!(d.event_open());
    // The zones move while the event is open: it keeps "left" where it still exists.
    d.set_zones(&[zone("right", 0.3, 1.0), zone("left", 0.0, 0.1)], &[])
        .unwrap();
    let (res, _) = d.frame(f.view(), t).unwrap();
    assert!(!res.calibrating, "calibrating again");
    assert_eq!(res.zones, vec![0], "{:?}", res.zones);
    assert_eq!(res.new_zones, vec![0]);
    // Too many zones: refused, the zones stay.
    let many: Vec<Zone> = (0..=crate::zones::MAX_ZONES)
        .map(|i| zone(&format!("z{i}"), 0.0, 1.0))
        .collect();
    assert!(d.set_zones(&many, &[]).is_err());
    let (res, _) = d.frame(f.view(), t + 200).unwrap();
    assert_eq!(res.zones, vec![0]);
}

/// Motion that never stops is cut into events of `max_event_seconds`, back to back.
#[test]
fn continuous_motion_is_split_at_the_maximum_length() {
    let (h, w) = (180, 320);
    let zone = Zone {
        name: "all".into(),
        polygon: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
        min_area: None,
        min_fraction: None,
    };
    let cfg = DetectorConfig {
        max_event_seconds: 10.0,
        ..DetectorConfig::default()
    };
    let mut d = Detector::new("c", &[zone], &[], cfg);
    let mut events = Vec::new();
    for i in 0..150u64 {
        // A 30x40 block sweeping right 5 px a frame (5 fps: 30 s), wrapping.
        let x0 = (i as usize * 5) % (w - 30);
        let mut f = Array2::<u8>::from_elem((h, w), 100);
        if i >= 10 {
            f.slice_mut(ndarray::s![60..100, x0..x0 + 30]).fill(220);
        }
        let (_, closed) = d.frame(f.view(), i * 200).unwrap();
        events.extend(closed);
    }
    events.extend(d.finish());
    assert!(events.len() >= 2, "{events:?}");
    for e in &events[..events.len() - 1] {
        assert!((9_800..=10_400).contains(&(e.end_ms - e.start_ms)), "{e:?}");
    }
    for pair in events.windows(2) {
        assert!(pair[1].start_ms - pair[0].end_ms <= 200, "gap: {events:?}");
    }
}
