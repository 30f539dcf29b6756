//! Index range-query latency with a month of 60 s segments for 32 cameras (1,382,400
//! segment records in an on-disk sled index): one camera over 1 hour and over 1 day.
//!
//! `cargo bench --bench index` (building the index takes a minute or so first).

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use vigil::index::{Index, Keyframe, Op, SegmentRecord};

const CAMERAS: u32 = 32;
const SEGMENTS_PER_CAMERA: i64 = 30 * 24 * 60;
const T0: i64 = 1_700_000_000_000_000;
const SEG_US: i64 = 60_000_000;

fn record(cam: u32, i: i64) -> SegmentRecord {
    let start = T0 + i * SEG_US;
    // A 60 s 1080p segment of a 4 Mbit/s camera with a keyframe every 2 s.
    SegmentRecord {
        bytes: 30_000_000,
        frames: 900,
        init_len: 760,
        mehd_offset: 700,
        keyframes: (0..30)
            .map(|k| Keyframe {
                t_90k: k * 180_000,
                offset: 760 + k * 1_000_000,
            })
            .collect(),
        width: 1920,
        height: 1080,
        ..SegmentRecord::for_test(
            cam,
            format!("cam{cam}/2023-11-14/{i:08}.mp4"),
            start,
            start + SEG_US,
        )
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::var("VIGIL_BENCH_DIR").unwrap_or(".".into())).unwrap();
    let ix = Index::open(&dir.path().join("index.sled")).unwrap();
    let build = Instant::now();
    for cam in 1..=CAMERAS {
        ix.camera_id(&format!("cam{cam}")).unwrap();
        let mut ops = Vec::with_capacity(10_000);
        for i in 0..SEGMENTS_PER_CAMERA {
            ops.push(Op::PutSegment(record(cam, i)));
            if ops.len() == 10_000 {
                ix.apply(&ops).unwrap();
                ops.clear();
            }
        }
        ix.apply(&ops).unwrap();
    }
    ix.flush().unwrap();
    eprintln!(
        "built {} records in {:.1} s; index on disk: {} MB",
        CAMERAS as i64 * SEGMENTS_PER_CAMERA,
        build.elapsed().as_secs_f64(),
        ix.size_on_disk() / 1_000_000
    );
    let mut g = c.benchmark_group("index_query");
    let mut rng = fastrand::Rng::with_seed(7);
    for (name, span) in [("1_hour", 3_600_000_000i64), ("1_day", 86_400_000_000)] {
        g.bench_function(format!("one_camera_{name}"), |b| {
            b.iter(|| {
                let cam = rng.u32(1..=CAMERAS);
                let t = T0 + rng.i64(0..SEGMENTS_PER_CAMERA * SEG_US - span);
                let r = ix.segments_overlapping(cam, t, t + span).unwrap();
                assert!(r.len() as i64 >= span / SEG_US);
                r
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
