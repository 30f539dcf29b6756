//! Unit tests of the report's layout and PDF/A output.
use super::*;

fn manifest(title: &str) -> serde_json::Value {
    serde_json::json!({
        "package_id": "p-1", "format": "vigil-evidence/1", "created": "2026-12-01T00:00:00Z",
        "case": { "id": 7, "title": title, "notes": "line one\nline two",
                  "items": [{ "n": 1, "source": { "kind": "range" }, "cameras": ["door"],
                              "start": "2026-12-01T00:00:00Z", "end": "2026-12-01T00:01:00Z" }] },
        "files": [{ "path": "media/door/x.mp4", "sha256": "ab".repeat(32), "gaps": [] }],
        "time_sync": { "synchronized": true, "max_error_us": 500, "source": "adjtimex" },
    })
}

fn render_with(title: &str, events: &[EventView]) -> Result<Vec<u8>, ReportError> {
    render(&ReportInput {
        manifest: &manifest(title),
        manifest_sha256: &"cd".repeat(32),
        events,
        thumbnail: &|_| None,
        verify_text: "How\n    openssl cms -verify -binary -inform DER -in case.json.p7s -content case.json",
        created_us: 1_764_547_200_000_000,
    })
}

/// Characters the fonts cannot draw (CJK, emoji) and control characters become `?`:
/// PDF/A forbids the `.notdef` glyph, and krilla's validator would refuse the file.
#[test]
fn text_beyond_the_fonts_still_makes_a_valid_pdf_a() {
    let pdf = render_with("倉庫 📦 Lagerhalle Ærø — «ok»", &[]).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    // ... and the report says so (laid out as render() does).
    let r = |title: &str| {
        let m = manifest(title);
        let mut l = Layout::new();
        let input = ReportInput {
            manifest: &m,
            manifest_sha256: "x",
            events: &[],
            thumbnail: &|_| None,
            verify_text: "v",
            created_us: 0,
        };
        content(&mut l, &input, false);
        l.sans.replaced.get() || l.mono.replaced.get()
    };
    assert!(r("倉庫"));
    assert!(!r("Lagerhalle Ærø"));
    let l = Layout::new();
    assert_eq!(l.sans.printable("倉📦é\u{7}\n"), "??é?\n");
}

/// Long reports break into pages (each with its footer), and lines never run past the
/// margin: a word longer than the column is broken inside.
#[test]
fn long_reports_page_and_wrap() {
    let events: Vec<EventView> = (0..40)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "id": i, "camera": "door", "start": "2026-12-01T00:00:00Z",
                "end": "2026-12-01T00:00:10Z", "start_ms": 0, "end_ms": 10_000,
                "zones": ["in"], "peak_score": 0.5, "bbox": [0.0, 0.0, 1.0, 1.0],
                "clip_start": "", "clip_end": "", "has_thumbnail": false, "video": "available",
            }))
            .unwrap()
        })
        .collect();
    let mut l = Layout::new();
    content(
        &mut l,
        &ReportInput {
            manifest: &manifest("t"),
            manifest_sha256: "x",
            events: &events,
            thumbnail: &|_| None,
            verify_text: "v",
            created_us: 0,
        },
        false,
    );
    assert!(l.pages.len() >= 3, "{} pages", l.pages.len());
    let w = PAGE_W - 2.0 * MARGIN;
    for line in l.wrap(&"f".repeat(400), 9.0, true, w) {
        assert!(l.mono.width(&line, 9.0) <= w);
    }
    // A fingerprint breaks after a byte's ':', never inside a byte.
    let fp = (0..32)
        .map(|i| format!("{i:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let lines = l.wrap(&fp, 9.0, true, 200.0);
    assert!(lines.len() > 1, "{lines:?}");
    for line in &lines[..lines.len() - 1] {
        assert!(
            line.ends_with(':') && l.mono.width(line, 9.0) <= 200.0,
            "{lines:?}"
        );
    }
    assert_eq!(lines.concat(), fp);
    assert!(render_with("t", &events).is_ok());
}
