//! `vigil analyze` end to end (release binary) on 40 s H.264 clips at 640x360 (~600 kbit/s)
//! and 1920x1080 (~4 Mbit/s), 15 fps: CPU per analysed frame, split into decoding (every
//! frame must be decoded) and motion, at the default settings (640 px wide, 5 fps) and
//! with every frame analysed.
//!
//! `cargo bench --bench analyze`

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let t = TestDir::new();
    for (label, small) in [("640x360", true), ("1920x1080", false)] {
        // 40 s, so that one-time costs (plugin loading, zone rasterising) do not dominate.
        let clip = clip_of(&dir, small, 40);
        for fps in [5, 15] {
            let cfg = t.write(
                &format!("{label}-{fps}.toml"),
                &format!(
                    "[storage]\ndir = {:?}\n[motion]\nfps = {fps}\n[[cameras]]\nname = \"b\"\nurl = \"rtsp://127.0.0.1:1/b\"\n\
                     [[cameras.zones]]\nname = \"z\"\npolygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]\n",
                    t.join("s").display().to_string()
                ),
            );
            // Best of three, to keep other load out of the figure.
            let mut best: Option<(f64, f64, String)> = None;
            for _ in 0..3 {
                let out = Command::new(VIGIL)
                    .args([
                        "analyze",
                        "--config",
                        cfg.to_str().unwrap(),
                        "--camera",
                        "b",
                    ])
                    .arg(&clip)
                    .output()
                    .unwrap();
                assert!(out.status.success());
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                let cpu = err
                    .lines()
                    .find(|l| l.starts_with("CPU per analysed frame"))
                    .unwrap()
                    .to_string();
                let num = |key: &str| -> f64 {
                    let at = cpu.find(key).unwrap() + key.len();
                    cpu[at..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                };
                let (dec, mot) = (num("decode "), num("motion "));
                if best.as_ref().is_none_or(|b| dec + mot < b.0 + b.1) {
                    best = Some((dec, mot, err.lines().next().unwrap_or("").to_string()));
                }
            }
            let (dec, mot, summary) = best.unwrap();
            println!(
                "{label} at {fps} fps analysed: decode {dec:.3} ms, motion {mot:.3} ms per analysed frame \
                 (motion = {:.1}% of decode) — {summary}",
                mot / dec * 100.0
            );
        }
    }
}
