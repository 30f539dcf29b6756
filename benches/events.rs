//! The event timeline at scale, in an on-disk sled index: 1,000,000 synthetic events over
//! 30 days, 32 cameras with 8 zones each (1 to 3 zones per event, 2 to 60 s long).
//!
//! - inserts: events per second through `Index::put_events` (batches of 1,000, in time
//!   order as a live system writes them), and index bytes per event;
//! - a 1-hour search on one zone (`events::search`, first page of 100): p50 and p99 over
//!   1,000 random queries;
//! - a 30-day count by zone (`events::count_by_zone`) for one camera and for all cameras;
//! - region search over 24 h of one camera's motion history (motion in 30% of the seconds);
//! - the console's timeline lane (`events::strip`) over 7 days of one camera (motion
//!   history with motion in 30% of the seconds, its ~7,000 events), 1,500 columns.
//!
//! `VIGIL_BENCH_DIR=/tmp cargo bench --bench events` (the index goes in a temporary dir
//! under VIGIL_BENCH_DIR, default the current directory).

use std::time::{Duration, Instant};

use vigil::events::{self, EventQuery};
use vigil::index::{EventRecord, Index, MotionMinute, MotionSecond};

const CAMERAS: u32 = 32;
const ZONES: u32 = 8;
const DAYS: i64 = 30;
const T0: i64 = 1_700_000_000_000_000;
const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // VIGIL_BENCH_EVENTS overrides the count (for profiling).
    let events_n: u64 = std::env::var("VIGIL_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let base = std::env::var("VIGIL_BENCH_DIR").unwrap_or(".".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let ix = Index::open(&dir.path().join("index.sled")).unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    let mut zone_ids = Vec::new();
    for c in 0..CAMERAS {
        let cam = ix.camera_id(&format!("cam{c:02}")).unwrap();
        let z: Vec<(String, u32)> = (0..ZONES)
            .map(|z| {
                let name = format!("zone{z}");
                let id = ix.zone_id(cam, &name).unwrap();
                (name, id)
            })
            .collect();
        zone_ids.push((cam, z));
    }

    insert(&ix, &mut rng, &zone_ids, events_n);
    search(&ix, &mut rng);
    count(&ix);
    region(&ix, &mut rng, &zone_ids);
    strip(&ix, &mut rng, &zone_ids);
}

/// Inserts `events_n` events, in time order (events are written as they close).
fn insert(
    ix: &Index,
    rng: &mut fastrand::Rng,
    zone_ids: &[(u32, Vec<(String, u32)>)],
    events_n: u64,
) {
    let mut starts: Vec<i64> = (0..events_n).map(|_| T0 + rng.i64(0..DAYS * DAY)).collect();
    starts.sort_unstable();
    let t = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for start in starts {
        let (cam, zones) = &zone_ids[rng.usize(..zone_ids.len())];
        let end = start + rng.i64(2_000_000..60_000_000);
        let mut zs: Vec<&(String, u32)> = (0..rng.usize(1..=3))
            .map(|_| &zones[rng.usize(..zones.len())])
            .collect();
        zs.sort_by_key(|z| z.1);
        zs.dedup_by_key(|z| z.1);
        batch.push((
            EventRecord {
                id: ix.new_event_id().unwrap(),
                camera_id: *cam,
                start_us: start,
                end_us: end,
                clip_start_us: start - 3_000_000,
                clip_end_us: end + 5_000_000,
                zones: zs.iter().map(|z| z.0.clone()).collect(),
                zone_ids: zs.iter().map(|z| z.1).collect(),
                peak_score: rng.f32() * 0.2,
                bbox: [0.1, 0.2, 0.3, 0.4],
                has_thumbnail: false,
            },
            None,
        ));
        if batch.len() == 1000 {
            ix.put_events(&batch).unwrap();
            batch.clear();
        }
    }
    ix.put_events(&batch).unwrap();
    ix.flush().unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "insert: {events_n} events in {secs:.1} s = {:.0} events/s; index {:.0} MB on disk = {:.0} bytes/event",
        events_n as f64 / secs,
        ix.size_on_disk() as f64 / 1e6,
        ix.size_on_disk() as f64 / events_n as f64
    );
}

/// 1-hour searches on one zone.
fn search(ix: &Index, rng: &mut fastrand::Rng) {
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..1000 {
        let c = rng.u32(..CAMERAS);
        let start = T0 + rng.i64(0..DAYS * DAY - HOUR);
        let q = EventQuery {
            start_us: start,
            end_us: start + HOUR,
            cameras: vec![format!("cam{c:02}")],
            zones: vec![format!("zone{}", rng.u32(..ZONES))],
            limit: 100,
            ..Default::default()
        };
        let t = Instant::now();
        let page = events::search(ix, &q).unwrap();
        times.push(t.elapsed());
        found += page.total;
    }
    println!(
        "1-hour search on one zone: p50 {:.2} ms, p99 {:.2} ms ({:.1} events per query)",
        percentile(&mut times, 0.5).as_secs_f64() * 1e3,
        percentile(&mut times, 0.99).as_secs_f64() * 1e3,
        found as f64 / 1000.0
    );
}

/// 30-day counts by zone.
fn count(ix: &Index) {
    for (what, cameras) in [
        ("one camera", vec!["cam07".to_string()]),
        ("all 32 cameras", vec![]),
    ] {
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..10 {
            let q = EventQuery {
                start_us: T0,
                end_us: T0 + DAYS * DAY,
                cameras: cameras.clone(),
                ..Default::default()
            };
            let t = Instant::now();
            let counts = events::count_by_zone(ix, &q).unwrap();
            times.push(t.elapsed());
            total = counts.values().map(|z| z[""]).sum::<u64>();
        }
        println!(
            "30-day count by zone, {what} ({total} events): median {:.1} ms, max {:.1} ms",
            percentile(&mut times, 0.5).as_secs_f64() * 1e3,
            percentile(&mut times, 1.0).as_secs_f64() * 1e3,
        );
    }
}

/// Region search over 24 h of one camera's motion history: motion in 30% of the
/// seconds, a blob of a few cells wandering over the 32x18 grid.
/// One camera's motion history: `minutes` minutes from `T0`, motion in 30% of the
/// seconds (a 3×4-cell blob each). Returns the seconds with motion.
fn history(
    ix: &Index,
    rng: &mut fastrand::Rng,
    zones: &(u32, Vec<(String, u32)>),
    minutes: i64,
) -> u64 {
    let (cam, zone_ids) = (zones.0, &zones.1);
    let (cols, rows) = (32u16, 18u16);
    let mut seconds = 0;
    for m in 0..minutes {
        let mut minute = MotionMinute {
            cols,
            rows,
            zone_ids: zone_ids.iter().map(|z| z.1).collect(),
            seconds: Vec::new(),
        };
        for s in 0..60u8 {
            if rng.f64() >= 0.3 {
                continue;
            }
            let mut cells = vec![0u64; (cols as usize * rows as usize).div_ceil(64)];
            let (cx, cy) = (
                rng.usize(..cols as usize - 3),
                rng.usize(..rows as usize - 4),
            );
            for y in cy..cy + 4 {
                for x in cx..cx + 3 {
                    let i = y * cols as usize + x;
                    cells[i / 64] |= 1 << (i % 64);
                }
            }
            minute.seconds.push(MotionSecond {
                second: s,
                cells,
                peak: rng.u16(..),
                zones: 1,
            });
            seconds += 1;
        }
        ix.put_motion_minute(cam, T0 + m * 60_000_000, &minute)
            .unwrap();
    }
    ix.flush().unwrap();
    seconds
}

fn region(ix: &Index, rng: &mut fastrand::Rng, zone_ids: &[(u32, Vec<(String, u32)>)]) {
    let seconds = history(ix, rng, &zone_ids[3], 24 * 60);
    let poly = [[0.1, 0.5], [0.3, 0.5], [0.3, 0.9], [0.1, 0.9]];
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let iv = events::region_search(ix, &["cam03".into()], &poly, T0, T0 + DAY).unwrap();
        times.push(t.elapsed());
        n = iv.len();
    }
    println!(
        "region search, 24 h of one camera ({seconds} seconds with motion): median {:.1} ms, max {:.1} ms, {n} intervals",
        percentile(&mut times, 0.5).as_secs_f64() * 1e3,
        percentile(&mut times, 1.0).as_secs_f64() * 1e3,
    );
}

fn strip(ix: &Index, rng: &mut fastrand::Rng, zone_ids: &[(u32, Vec<(String, u32)>)]) {
    let seconds = history(ix, rng, &zone_ids[4], 7 * 24 * 60);
    let cols = events::Columns::new(T0, T0 + 7 * DAY, 1500).unwrap();
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let s = events::strip(ix, "cam04", cols, T0 + 7 * DAY).unwrap();
        times.push(t.elapsed());
        n = s.events_total;
    }
    println!(
        "timeline lane, 7 days of one camera ({seconds} seconds with motion, {n} events), 1500 columns: median {:.1} ms, max {:.1} ms",
        percentile(&mut times, 0.5).as_secs_f64() * 1e3,
        percentile(&mut times, 1.0).as_secs_f64() * 1e3,
    );
}
