//! Review's players across their clip windows: `tests/console.rs` runs it against the
//! daemon it started.

use super::browser::Browser;
use super::ms;
use std::time::Duration;

/// At 4× across several windows of recording (3 s before, 8 s after the instant asked,
/// instead of 10 minutes, so that this takes seconds): each next window is loaded ahead
/// and handed over to with its picture ready, nothing is loaded on demand after the
/// first, and the pictures run on without a jump back or a skip.
pub fn plays_across_windows(b: &mut Browser, a: &serde_json::Value) {
    let start = ms(a, "start_ms");
    let end = start + 30_000;
    // The recording must reach past the end on both cameras.
    let wait = end + 3_000 - vigil::base::time::now_us() / 1000;
    if wait > 0 {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
    b.eval(&format!(
        "(async () => {{ vigilReview.clock.pause(); await vigilReview.setWindow(3000, 8000); \
           await vigilReview.clock.seek({start}); return true; }})()"
    ));
    b.wait(
        "vigilReview.players.every(p => p.base != null && p.loads === 1)",
        "both players loaded once",
    );
    // Every picture player 0 presents: its UTC and the wall time it came.
    b.eval(
        "window.shownLog = []; (function log() { const p = vigilReview.players[0]; \
           const l = window.shownLog; if (p.shown != null && (!l.length || l[l.length - 1][0] !== p.shown)) \
           l.push([p.shown, performance.now()]); if (l.length < 100000) requestAnimationFrame(log); })(); \
         document.getElementById('speed').value = '4'; document.getElementById('speed').dispatchEvent(new Event('change')); \
         vigilReview.clock.play(); true",
    );
    b.wait(
        &format!("vigilReview.clock.now() > {end}"),
        "the clock 30 s on",
    );
    let counts = b.eval(
        "vigilReview.players.map(p => ({ loads: p.loads, swaps: p.swaps, cold: p.coldSwaps, late: p.lateSwaps || 0 }))",
    );
    let log = b.eval(
        "(() => { vigilReview.clock.pause(); \
           document.getElementById('speed').value = '1'; document.getElementById('speed').dispatchEvent(new Event('change')); \
           return window.shownLog; })()",
    );
    let log: Vec<(f64, f64)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x[0].as_f64().unwrap(), x[1].as_f64().unwrap()))
        .collect();
    // A skip is media time the wall time between two pictures does not explain at 4×
    // (a busy machine presenting fewer pictures makes longer steps, not skips).
    let (mut back, mut skip, mut step, mut stall) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for w in log.windows(2) {
        let (d, wall) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
        back = back.min(d);
        step = step.max(d);
        skip = skip.max(d - 4.0 * wall);
        stall = stall.max(wall);
    }
    eprintln!(
        "across windows at 4x: {counts}; {} pictures; longest media step {step:.0} ms, \
         most media beyond 4x the wall time {skip:.0} ms, longest wait for a picture {stall:.0} ms",
        log.len()
    );
    for p in counts.as_array().unwrap() {
        assert_eq!(p["loads"], 1, "a window was loaded on demand: {counts}");
        assert!(p["swaps"].as_u64().unwrap() >= 2, "{counts}");
        assert_eq!(p["cold"], 0, "a hand-over without its picture: {counts}");
    }
    assert!(log.len() > 50, "only {} pictures", log.len());
    assert!(back > -1.0, "the pictures went back {back} ms");
    // (At most four frames at the fixture's 15 fps, 67 ms of wall time at 4×: the new
    // element's clock starts as it is shown. A late hand-over skipped 1.6 s.)
    assert!(skip < 267.0, "the pictures skipped {skip} ms: {counts}");
    b.eval("vigilReview.setWindow(30000, 600000).then(() => true)");
    // At 16× into the live edge: on at 1×, and the view says so.
    b.eval(
        "(async () => { await vigilReview.clock.seek(Date.now() - 6000); \
           document.getElementById('speed').value = '16'; document.getElementById('speed').dispatchEvent(new Event('change')); \
           vigilReview.clock.play(); return true; })()",
    );
    b.wait(
        "vigilReview.clock.rate === 1 && document.getElementById('speed').value === '1' && \
         document.getElementById('player-state').textContent.includes('live edge')",
        "1× at the live edge",
    );
    b.eval("vigilReview.clock.pause(); true");
}
