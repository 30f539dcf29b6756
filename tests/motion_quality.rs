//! Detection quality on the ground-truth fixtures (fixtures/make_motion.py), through the
//! real `vigil analyze`: event recall, precision, timing and zone attribution; plus
//! controls showing that the mask, lighting suppression and minimum area are what keep
//! the false positives out.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

const CLIPS: [&str; 5] = ["crossing", "lighting", "sway", "tiny-fast", "dark-noisy"];
/// How far an event's start or end may be from the truth (analysis runs at 5 fps, and an
/// event needs 2 consecutive motion frames).
const TOLERANCE_MS: i64 = 500;

fn analyze(config: &std::path::Path, clip: &str) -> Vec<Value> {
    let out = Command::new(VIGIL)
        .args([
            "analyze",
            "--config",
            config.to_str().unwrap(),
            "--camera",
            "fixture",
        ])
        .arg(fixture(&format!("motion/{clip}.mp4")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{clip}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("frames/s") && err.contains("events"),
        "no summary: {err}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{clip}: bad JSON {l:?}: {e}")))
        .collect()
}

fn matches(ev: &Value, truth: &Value) -> bool {
    let d = |k: &str| (ev[k].as_i64().unwrap() - truth[k].as_i64().unwrap()).abs();
    d("start_ms") <= TOLERANCE_MS && d("end_ms") <= TOLERANCE_MS
}

#[test]
fn recall_precision_and_zones_on_ground_truth() {
    let cfg = fixture("motion/zones.toml");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("motion/truth.json")).unwrap())
            .unwrap();
    let (mut tp, mut fp, mut fn_, mut zones_ok) = (0, 0, 0, 0);
    let mut report = String::new();
    for clip in CLIPS {
        let got = analyze(&cfg, clip);
        let want = truth[clip].as_array().unwrap();
        for ev in &got {
            assert_eq!(ev["camera"], "fixture");
            let b: Vec<f64> = ev["bbox"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert!(
                b[0] <= b[2] && b[1] <= b[3] && b.iter().all(|v| (0.0..=1.0).contains(v)),
                "{ev}"
            );
            assert!(ev["peak_score"].as_f64().unwrap() > 0.0, "{ev}");
        }
        for t in want {
            match got.iter().find(|e| matches(e, t)) {
                Some(e) => {
                    tp += 1;
                    if e["zones"] == t["zones"] {
                        zones_ok += 1;
                    } else {
                        report +=
                            &format!("{clip}: zones {} vs truth {}\n", e["zones"], t["zones"]);
                    }
                }
                None => {
                    fn_ += 1;
                    report += &format!("{clip}: missed {t}\n");
                }
            }
        }
        for e in &got {
            if !want.iter().any(|t| matches(e, t)) {
                fp += 1;
                report += &format!("{clip}: false event {e}\n");
            }
        }
    }
    let recall = tp as f64 / (tp + fn_) as f64;
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    eprintln!("recall {recall:.2}, precision {precision:.2}, zones {zones_ok}/{tp}");
    assert_eq!((recall, precision), (1.0, 1.0), "{report}");
    assert_eq!(zones_ok, tp, "{report}");
}

#[test]
fn controls_each_suppression_is_what_prevents_false_events() {
    let t = TestDir::new();
    let base = std::fs::read_to_string(fixture("motion/zones.toml")).unwrap();
    // Without the mask, the swaying foliage is motion.
    let no_mask = t.write(
        "no-mask.toml",
        &base[..base.find("[[cameras.masks]]").unwrap()],
    );
    assert!(
        !analyze(&no_mask, "sway").is_empty(),
        "sway without a mask should move"
    );
    // The texture test alone (lighting suppression off) keeps the light step out: it
    // keeps the background's texture.
    let texture_only = t.write(
        "texture-only.toml",
        &base.replace(
            "post_roll = 2.0",
            "post_roll = 2.0\nlighting_fraction = 1.0",
        ),
    );
    assert!(
        analyze(&texture_only, "lighting").is_empty(),
        "the change-of-light test alone should keep the light step out"
    );
    // Without either, the light step is motion.
    let no_light = t.write(
        "no-lighting.toml",
        &base.replace(
            "post_roll = 2.0",
            "post_roll = 2.0\nlighting_fraction = 1.0\nlight_correlation = 2.0",
        ),
    );
    assert!(
        !analyze(&no_light, "lighting").is_empty(),
        "the light step should register"
    );
    // With no minimum area, the bird-sized object opens an event.
    let no_min = t.write(
        "no-min-area.toml",
        &base.replace("post_roll = 2.0", "post_roll = 2.0\nmin_area = 0.0"),
    );
    assert!(
        !analyze(&no_min, "tiny-fast").is_empty(),
        "the tiny object should register"
    );
}

#[test]
fn analyze_errors_are_clear() {
    let cfg = fixture("motion/zones.toml");
    let out = Command::new(VIGIL)
        .args([
            "analyze",
            "--config",
            cfg.to_str().unwrap(),
            "--camera",
            "nope",
            "x.mp4",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no camera \"nope\""));
    let out = Command::new(VIGIL)
        .args([
            "analyze",
            "--config",
            cfg.to_str().unwrap(),
            "--camera",
            "fixture",
            "/nonexistent.mp4",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}
