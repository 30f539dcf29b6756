//! Segment write + index insert throughput: one camera's 60 s of 1080p video at 15 fps and
//! about 4 Mbit/s (900 frames, a keyframe every 2 s) through the real writer, committer and
//! an on-disk sled index, including every fsync and the final close.
//!
//! `cargo bench --bench record`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil::config::StorageConfig;
use vigil::media::{Frame, StreamMsg, VideoParams};

const FPS: i64 = 15;
const FRAMES: usize = 900;

fn frames(params: &Arc<VideoParams>, t0_us: i64) -> Vec<Frame> {
    (0..FRAMES)
        .map(|i| {
            let key = i % 30 == 0;
            // ~4 Mbit/s: keyframes ~120 kB, others ~30 kB.
            let size = if key {
                120_000
            } else {
                29_500 + (i * 37) % 1000
            };
            Frame {
                dts_90k: i as i64 * 90_000 / FPS,
                cts_90k: 0,
                utc_us: t0_us + i as i64 * 1_000_000 / FPS,
                is_key: key,
                leading: false,
                data: vec![(i % 251) as u8; size].into(),
                params: params.clone(),
                timeline: 1,
                discontinuity: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::var("VIGIL_BENCH_DIR").unwrap_or(".".into())).unwrap();
    let params = Arc::new(VideoParams::for_test(1920, 1080));
    let layout = vigil::storage::Layout::new(dir.path());
    let index = vigil::record::open_index(&layout).unwrap();
    // No free-space floor: nothing here is deleted.
    let storage = StorageConfig {
        min_free: Some(0),
        ..StorageConfig::new(dir.path())
    };
    let bytes: u64 = frames(&params, 0).iter().map(|f| f.data.len() as u64).sum();
    let mut g = c.benchmark_group("segment_write");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    let mut t0 = 1_700_000_000_000_000i64;
    g.bench_function("60s_1080p_4mbps_900_frames", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                t0 += 3_600_000_000;
                let input = frames(&params, t0);
                let status = Arc::new(vigil::status::Status::default());
                // The daemon's starter: start-up recovery, the committer thread, the writer.
                let recording = vigil::record::start(&storage, &layout, &index, &status).unwrap();
                let mut w = recording.writer("bench").unwrap();
                // Pace nothing: this measures the cost, not real time. The commit interval
                // is wall-clock, so fsyncs happen about once per second of this run.
                let start = Instant::now();
                for f in input {
                    w.handle(StreamMsg::Frame(f));
                }
                w.handle(StreamMsg::Shutdown);
                recording.stop();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
