//! A 1-hour clip of a 1080p, 4 Mbit/s, 15 fps camera (61 segments of 60 s written by the
//! real segment writer, 1.8 GB) served from the page cache: time to plan it and to the
//! first byte, and throughput, both through the library (`ClipPlan::write_range` to a
//! sink) and over HTTP (the daemon's router on 127.0.0.1, read by an HTTP client); and
//! the hour as an evidence package, exported and verified.
//!
//! `VIGIL_BENCH_DIR=/tmp cargo bench --bench clips` (needs about 2 GB of disk there).

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use vigil::config::StorageConfig;
use vigil::media::{Frame, StreamMsg, VideoParams};

const FPS: i64 = 15;
const T0: i64 = 1_700_000_000_000_000;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir_in(std::env::var("VIGIL_BENCH_DIR").unwrap_or(".".into())).unwrap();
    let params = Arc::new(VideoParams::for_test(1920, 1080));
    let layout = vigil::storage::Layout::new(dir.path());
    let index = vigil::record::open_index(&layout).unwrap();
    // No free-space floor: nothing here is deleted.
    let storage = StorageConfig {
        min_free: Some(0),
        ..StorageConfig::new(dir.path())
    };
    let cam = index.camera_id("cam").unwrap();
    let status = Arc::new(vigil::status::Status::default());
    // The daemon's starter: start-up recovery, the committer thread, the writer.
    let recording = vigil::record::start(&storage, &layout, &index, &status).unwrap();
    let mut w = recording.writer("cam").unwrap();
    let t = Instant::now();
    write_hour(&mut w, &params);
    w.handle(StreamMsg::Shutdown);
    recording.stop();
    println!(
        "wrote 61 min of 1080p 4 Mbit/s in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // A 1-hour clip starting between keyframes.
    let (start, end) = (T0 + 20_500_000, T0 + 20_500_000 + 3_600_000_000);
    let plan = || vigil::export::plan(&index, &layout, cam, start, end).unwrap();
    let p = library(&plan);
    http(&index, &layout, status, cam, (start, end), p.len);
    evidence(&index, &layout, dir.path(), (start, end));
}

/// The hour as a case exported as an evidence package (remux, ONVIF seal, hashes,
/// signed manifest) and verified offline: MB of video per second for each.
fn evidence(
    index: &vigil::index::Index,
    layout: &vigil::storage::Layout,
    dir: &std::path::Path,
    (start, end): (i64, i64),
) {
    use vigil::evidence::{cases, keys, package};
    let k = keys::init(&dir.join("keys"), "Bench", "nvr", 3072).unwrap();
    let f = cases::CaseFields {
        title: Some("bench".into()),
        ..Default::default()
    };
    let c = cases::create(index, &f, "bench", T0).unwrap();
    let req = cases::ItemRequest::Range {
        cameras: vec!["cam".into()],
        start_us: start,
        end_us: end,
        note: String::new(),
    };
    // Added once the hour is recorded.
    cases::add_item(index, c.id, &req, "bench", end + 1_000_000).unwrap();
    let c = cases::get(index, c.id).unwrap();
    let audit = vigil::audit::AuditLog::new(layout);
    let rec = package::Recorder {
        index,
        storage: layout,
        audit: &audit,
        keys: &k,
    };
    let urls = vec![("cam".to_string(), "rtsp://10.0.0.1/cam".to_string())];
    let who = package::Exporter {
        user: "bench",
        role: "investigator",
        recorder: "nvr",
        host: "nvr",
        camera_urls: &urls,
    };
    let mut best = (f64::MAX, f64::MAX, 0u64);
    for i in 0..3 {
        let out = dir.join(format!("package{i}"));
        let t = Instant::now();
        let e = package::export(&rec, &c, &who, &out, end + 1_000_000).unwrap();
        let te = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let v = vigil::evidence::verify::verify(&out);
        let tv = t.elapsed().as_secs_f64();
        assert!(v.intact(), "{:?}", v.problems);
        best = (best.0.min(te), best.1.min(tv), e.media_bytes);
        std::fs::remove_dir_all(&out).unwrap();
    }
    println!(
        "evidence package of the hour ({:.2} GB of video): exported (remux, seal, hashes, signed manifest) in {:.2} s = {:.0} MB/s; verified offline in {:.2} s = {:.0} MB/s (best of 3)",
        best.2 as f64 / 1e9,
        best.0,
        best.2 as f64 / best.0 / 1e6,
        best.1,
        best.2 as f64 / best.1 / 1e6
    );
}

/// Writes 61 minutes of 1080p at about 4 Mbit/s (a keyframe every 30 frames).
fn write_hour(w: &mut vigil::record::writer::SegmentWriter, params: &Arc<VideoParams>) {
    let frames = 61 * 60 * FPS;
    for i in 0..frames {
        let key = i % 30 == 0;
        let size = if key {
            120_000
        } else {
            29_500 + (i * 37) as usize % 1000
        };
        w.handle(StreamMsg::Frame(Frame {
            dts_90k: i * 90_000 / FPS,
            cts_90k: 0,
            utc_us: T0 + i * 1_000_000 / FPS,
            is_key: key,
            leading: false,
            data: vec![(i % 251) as u8; size].into(),
            params: params.clone(),
            timeline: 1,
            discontinuity: None,
        }));
    }
}

/// The clip through the library: plan, first byte, streaming. Returns the last plan.
fn library(plan: &dyn Fn() -> vigil::export::ClipPlan) -> vigil::export::ClipPlan {
    // Warm the page cache (the files were just written, so mostly already there).
    let p = plan();
    p.write_range(0, p.len, &mut std::io::sink()).unwrap();
    let mut first = Vec::new();
    let mut plans = Vec::new();
    let mut best_lib = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let p = plan();
        plans.push(t.elapsed());
        let mut buf = vec![0u8; 64 * 1024];
        p.read_at(0, &mut buf).unwrap();
        first.push(t.elapsed());
        let t = Instant::now();
        p.write_range(0, p.len, &mut std::io::sink()).unwrap();
        best_lib = best_lib.min(t.elapsed().as_secs_f64());
    }
    first.sort();
    plans.sort();
    println!(
        "library: 1-hour clip of {:.2} GB ({} frames): plan {:.1} ms, first byte {:.1} ms (median of 5); streamed at {:.2} GB/s (best of 5)",
        p.len as f64 / 1e9,
        p.presented_frames,
        plans[2].as_secs_f64() * 1e3,
        first[2].as_secs_f64() * 1e3,
        p.len as f64 / best_lib / 1e9
    );
    p
}

/// The clip over HTTP: the daemon's server on loopback.
fn http(
    index: &vigil::index::Index,
    layout: &vigil::storage::Layout,
    status: Arc<vigil::status::Status>,
    cam: u32,
    (start, end): (i64, i64),
    len: u64,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Every API request is authenticated: an investigator's token, as an integration has.
    let users = vigil::auth::AuthStore::new(layout);
    users
        .add_user("bench", vigil::auth::Role::Investigator, "bench password 1")
        .unwrap();
    let (token, _) = users.create_token("bench", "bench").unwrap();
    // The daemon's server starter, on a free loopback port.
    let server_cfg = vigil::config::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let state = vigil::api::AppState {
        index: index.clone(),
        status,
        cameras: Arc::new(vec![("cam".into(), cam)]),
        storage: layout.clone(),
        alerts: vigil::alerts::hub(),
        live: Default::default(),
        shutdown: vigil::base::cancel::new().1,
        audit: vigil::audit::AuditLog::new(layout),
        gate: Arc::new(vigil::api::auth::Gate::new(layout, &server_cfg, false)),
        setup: Arc::new(vigil::api::setup::Setup {
            file: "vigil.toml".into(),
            lock: Default::default(),
            controls: Default::default(),
            overlays: Default::default(),
        }),
    };
    let mut addr = None;
    let _server = rt
        .block_on(vigil::api::serve(state, &server_cfg, |a| addr = Some(a)))
        .unwrap();
    let addr = addr.unwrap();
    let url = format!(
        "http://{addr}/api/clips/cam.mp4?start={}&end={}",
        vigil::base::time::rfc3339(start),
        vigil::base::time::rfc3339(end)
    );
    let mut ttfb = Vec::new();
    let mut best_http = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let mut r = ureq::get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        let mut reader = r.body_mut().with_config().limit(u64::MAX).reader();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = reader.read(&mut buf).unwrap() as u64;
        ttfb.push(t.elapsed());
        loop {
            let k = reader.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        assert_eq!(n, len);
        best_http = best_http.min(t.elapsed().as_secs_f64());
    }
    ttfb.sort();
    println!(
        "HTTP: first byte {:.1} ms (median of 5); streamed at {:.2} GB/s (best of 5)",
        ttfb[2].as_secs_f64() * 1e3,
        len as f64 / best_http / 1e9
    );
}
