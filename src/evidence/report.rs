//! The evidence package's human-readable report, `report.pdf`: the case, its items, each
//! media file with its times, gaps and SHA-256, the events with their thumbnails, who
//! signed and how to verify. PDF/A-2u (ISO 19005-2, level U: every glyph maps to
//! Unicode), written by the `krilla` crate, which checks the PDF/A rules it can
//! check and refuses to write a file that breaks them.
//!
//! The report is a reading aid: `case.json` and its signature are authoritative, and the
//! report says so on every page. It is written after the manifest (it quotes the
//! manifest's SHA-256), so `SHA256SUMS` and its signature cover it, not the manifest.
//!
//! Text is set in DejaVu Sans and DejaVu Sans Mono (hashes, paths, commands), embedded
//! in the binary (`src/evidence/fonts/`, Bitstream Vera licence in `LICENSE` there) and
//! subset into the PDF. A character the fonts have no glyph for is printed as `?`
//! (PDF/A forbids the `.notdef` glyph); the manifest keeps the exact text.

use krilla::Document;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::image::Image;
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};
use skrifa::MetadataProvider;

use crate::events::EventView;

const SANS: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
const MONO: &[u8] = include_bytes!("fonts/DejaVuSansMono.ttf");

/// A4 in PDF points (1/72 inch).
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 50.0;
const LABEL_W: f32 = 130.0;
/// Events with a thumbnail in the report at most (all are in `events.json`).
pub const MAX_EVENTS: usize = 300;

/// What the report is made from.
pub struct ReportInput<'a> {
    /// The manifest as written to `case.json` (before canonical serialisation).
    pub manifest: &'a serde_json::Value,
    /// Hex SHA-256 of `case.json`'s bytes.
    pub manifest_sha256: &'a str,
    /// The events in the items' ranges, oldest first.
    pub events: &'a [EventView],
    /// An event's thumbnail (JPEG), by event id.
    pub thumbnail: &'a dyn Fn(u64) -> Option<Vec<u8>>,
    /// `VERIFY.txt`'s text.
    pub verify_text: &'a str,
    /// The export's time (UTC µs): the PDF's creation date.
    pub created_us: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("report.pdf: {0}")]
pub struct ReportError(String);

/// Renders the report. Errors: the PDF library refused the document (a PDF/A rule it
/// could not meet), which names the rule.
pub fn render(r: &ReportInput) -> Result<Vec<u8>, ReportError> {
    let mut l = Layout::new();
    content(&mut l, r, false);
    if l.sans.replaced.get() || l.mono.replaced.get() {
        // Laid out again with a note saying so near the top.
        l = Layout::new();
        content(&mut l, r, true);
    }
    let package = r.manifest["package_id"].as_str().unwrap_or("").to_owned();
    draw(l, r, &package)
}

/// One thing drawn on a page, at top-left-origin coordinates in points (`y` of text is
/// its baseline).
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        mono: bool,
        text: String,
    },
    Image {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        jpeg: Vec<u8>,
    },
    Rule {
        y: f32,
    },
}

/// Measured fonts: a face's glyph coverage and advance widths (skrifa, the reader
/// krilla itself uses).
struct Face {
    font: skrifa::FontRef<'static>,
    /// Whether [`Face::printable`] replaced a character.
    replaced: std::cell::Cell<bool>,
}

impl Face {
    fn new(data: &'static [u8]) -> Face {
        Face {
            font: skrifa::FontRef::new(data).expect("embedded font parses"),
            replaced: std::cell::Cell::new(false),
        }
    }

    /// `text` with every character this face cannot draw (and control characters but
    /// the line break) replaced by `?`.
    fn printable(&self, text: &str) -> String {
        let cmap = self.font.charmap();
        text.chars()
            .map(|c| {
                if c == '\n' {
                    c
                } else if c.is_control() || cmap.map(c).is_none() {
                    self.replaced.set(true);
                    '?'
                } else {
                    c
                }
            })
            .collect()
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        let cmap = self.font.charmap();
        let m = self.font.glyph_metrics(
            skrifa::instance::Size::new(size),
            skrifa::instance::LocationRef::default(),
        );
        text.chars()
            .map(|c| {
                cmap.map(c)
                    .and_then(|g| m.advance_width(g))
                    .unwrap_or(size * 0.6)
            })
            .sum()
    }
}

struct Layout {
    pages: Vec<Vec<Op>>,
    y: f32,
    sans: Face,
    mono: Face,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            pages: vec![Vec::new()],
            y: MARGIN,
            sans: Face::new(SANS),
            mono: Face::new(MONO),
        }
    }

    fn push(&mut self, op: Op) {
        self.pages.last_mut().expect("a page").push(op);
    }

    /// Starts a new page unless `h` points still fit above the footer.
    fn need(&mut self, h: f32) {
        if self.y + h > PAGE_H - MARGIN - 14.0 {
            self.pages.push(Vec::new());
            self.y = MARGIN;
        }
    }

    fn face(&self, mono: bool) -> &Face {
        if mono { &self.mono } else { &self.sans }
    }

    /// `text` broken into lines of at most `width` points: at spaces, or anywhere in a
    /// word too long for a line (hashes, paths).
    fn wrap(&self, text: &str, size: f32, mono: bool, width: f32) -> Vec<String> {
        let face = self.face(mono);
        let mut lines = Vec::new();
        for para in text.split('\n') {
            // A paragraph's indentation (commands in VERIFY.txt) is kept on each line.
            let body = para.trim_start_matches(' ');
            let indent = " ".repeat(para.len() - body.len());
            let mut line = indent.clone();
            for word in body.split(' ') {
                let candidate = if line.trim().is_empty() {
                    format!("{line}{word}")
                } else {
                    format!("{line} {word}")
                };
                if face.width(&candidate, size) <= width {
                    line = candidate;
                    continue;
                }
                if !line.trim().is_empty() {
                    lines.push(std::mem::replace(&mut line, indent.clone()));
                }
                for c in word.chars() {
                    line.push(c);
                    if face.width(&line, size) > width {
                        line.pop();
                        // A fingerprint breaks between its bytes (after a ':'), not
                        // inside one, where a reader could misread it.
                        let cut = line.rfind(':').map(|i| i + 1).filter(|&i| i < line.len());
                        let rest = match cut {
                            Some(i) => line.split_off(i),
                            None => String::new(),
                        };
                        lines.push(std::mem::replace(&mut line, format!("{rest}{c}")));
                    }
                }
            }
            lines.push(line);
        }
        lines
    }

    /// Wrapped text at `x`, `width` wide, moving down.
    fn text_at(&mut self, x: f32, width: f32, text: &str, size: f32, mono: bool) {
        let text = self.face(mono).printable(text);
        let lead = size * 1.35;
        for line in self.wrap(&text, size, mono, width) {
            self.need(lead);
            self.y += lead;
            self.push(Op::Text {
                x,
                y: self.y - size * 0.3,
                size,
                mono,
                text: line,
            });
        }
    }

    fn para(&mut self, text: &str, size: f32, mono: bool) {
        self.text_at(MARGIN, PAGE_W - 2.0 * MARGIN, text, size, mono);
    }

    fn heading(&mut self, text: &str, size: f32) {
        self.need(size * 3.0);
        self.y += size * 0.6;
        self.para(text, size, false);
        self.push(Op::Rule { y: self.y + 3.0 });
        self.y += 6.0;
    }

    /// A label and its value beside it (the value wrapped in its column).
    fn field(&mut self, label: &str, value: &str, mono: bool) {
        if value.is_empty() {
            return;
        }
        // A SHA-256 in hex (64 characters of DejaVu Sans Mono) fits its column at 9 pt.
        let size = if mono { 9.0 } else { 9.5 };
        self.need(size * 1.35);
        let top = self.y;
        self.push(Op::Text {
            x: MARGIN,
            y: top + size * 1.35 - size * 0.3,
            size,
            mono: false,
            text: self.sans.printable(label),
        });
        let w = PAGE_W - 2.0 * MARGIN - LABEL_W;
        self.text_at(MARGIN + LABEL_W, w, value, size, mono);
        self.y += 1.5;
    }

    fn gap(&mut self, h: f32) {
        self.y += h;
    }
}

fn s<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn content(l: &mut Layout, r: &ReportInput, replaced_note: bool) {
    let m = r.manifest;
    let case = &m["case"];
    l.para("Evidence report", 20.0, false);
    l.para(
        &format!("Case {}: {}", case["id"], s(case, "title")),
        14.0,
        false,
    );
    l.gap(4.0);
    l.para(
        "This report summarises the evidence package it is part of. The package's manifest \
         (case.json), its signature (case.json.p7s) and the media files are authoritative; \
         the last section says how to check them. All times are UTC.",
        9.0,
        false,
    );
    if replaced_note {
        l.para(
            "Some characters of this case's text have no glyph in the report's fonts and \
             are printed as \"?\"; case.json holds the exact text.",
            9.0,
            false,
        );
    }

    l.heading("Case", 13.0);
    l.field("Reference", s(case, "reference"), false);
    l.field("Requester", s(case, "requester"), false);
    l.field("Legal basis", s(case, "legal_basis"), false);
    l.field(
        "Opened",
        &format!("{} by {}", s(case, "created"), s(case, "created_by")),
        false,
    );

    l.heading("Package", 13.0);
    l.field("Package id", s(m, "package_id"), true);
    l.field("Format", s(m, "format"), false);
    l.field("Exported", s(m, "created"), false);
    let by = &m["exported_by"];
    l.field(
        "Exported by",
        &format!("{} (role: {})", s(by, "user"), s(by, "role")),
        false,
    );
    let ex = &m["exporter"];
    l.field(
        "Exporter",
        &format!(
            "{} {} on recorder {} (host {})",
            s(ex, "product"),
            s(ex, "version"),
            s(ex, "recorder"),
            s(ex, "host")
        ),
        false,
    );
    let ts = &m["time_sync"];
    l.field(
        "Recorder clock",
        &format!(
            "{} at export (maximum error {}, from the kernel's {})",
            if ts["synchronized"] == true {
                "synchronised"
            } else {
                "NOT synchronised"
            },
            duration_text(ts["max_error_us"].as_i64().unwrap_or(0)),
            s(ts, "source")
        ),
        false,
    );
    l.field("case.json SHA-256", r.manifest_sha256, true);
    l.field("Signer certificate", s(ex, "recorder_cert_sha256"), true);
    l.field("Site CA (SHA-256)", s(m, "site_ca_sha256"), true);
    l.field("Custody head", s(m, "custody_head"), true);
    l.field("Audit head", s(m, "audit_head"), true);

    l.heading("Items", 13.0);
    for it in case["items"].as_array().into_iter().flatten() {
        let cams: Vec<&str> = it["cameras"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        let kind = it["source"]["kind"].as_str().unwrap_or("range");
        l.field(
            &format!("Item {}", it["n"]),
            &format!(
                "{kind}: {} from {} to {}{}",
                cams.join(", "),
                s(it, "start"),
                s(it, "end"),
                it["note"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .map(|n| format!("; note: {n}"))
                    .unwrap_or_default()
            ),
            false,
        );
        let src = &it["source"];
        if kind == "search" {
            let corners: Vec<String> = (src["polygon"].as_array().into_iter().flatten())
                .map(|p| {
                    format!(
                        "({:.3}, {:.3})",
                        p[0].as_f64().unwrap_or(0.0),
                        p[1].as_f64().unwrap_or(0.0)
                    )
                })
                .collect();
            let us = |k: &str| crate::base::time::rfc3339(src[k].as_i64().unwrap_or(0));
            l.field(
                "",
                &format!(
                    "motion inside the polygon {} (0..1 of the picture) searched from {} to {}: {}",
                    corners.join(" "),
                    us("from_us"),
                    us("to_us"),
                    plural(src["intervals"].as_array().map_or(0, Vec::len), "interval")
                ),
                false,
            );
        } else if let Some(id) = src["event_id"].as_u64().or(src["bookmark_id"].as_u64()) {
            l.field("", &format!("{kind} {id}"), false);
        }
        l.field(
            "",
            &format!("added by {} at {}", s(it, "added_by"), s(it, "added")),
            false,
        );
    }

    if !s(case, "notes").is_empty() {
        l.heading("Notes", 13.0);
        l.para(s(case, "notes"), 9.5, false);
    }

    l.heading("Media files", 13.0);
    for f in m["files"].as_array().into_iter().flatten() {
        l.need(60.0);
        l.field("File", s(f, "path"), true);
        let cam = &f["camera"];
        l.field(
            "Camera",
            &format!("{} (id {}) {}", s(cam, "name"), cam["id"], s(cam, "url")),
            false,
        );
        l.field(
            "Requested",
            &format!(
                "{} to {}",
                s(&f["requested"], "start"),
                s(&f["requested"], "end")
            ),
            false,
        );
        l.field(
            "First, last frame",
            &format!("{} to {}", s(&f["actual"], "start"), s(&f["actual"], "end")),
            false,
        );
        let gaps: Vec<String> = f["gaps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| format!("{} to {}", s(g, "start"), s(g, "end")))
            .collect();
        l.field(
            "Gaps",
            &if gaps.is_empty() {
                "none".to_owned()
            } else {
                gaps.join("; ")
            },
            false,
        );
        l.field(
            "Video",
            &format!(
                "{} {}x{}, {} frames, {} (not re-encoded); {} bytes",
                s(f, "codec"),
                f["width"],
                f["height"],
                f["frames"],
                s(f, "processing"),
                f["bytes"]
            ),
            false,
        );
        l.field(
            "Sources",
            &format!(
                "{}, each with its recording-time SHA-256 in case.json",
                plural(
                    f["source_segments"].as_array().map_or(0, Vec::len),
                    "recorded segment"
                )
            ),
            false,
        );
        l.field("SHA-256", s(f, "sha256"), true);
        l.gap(6.0);
    }

    l.heading(&format!("Events ({})", r.events.len()), 13.0);
    if r.events.is_empty() {
        l.para("No motion events in the items' ranges.", 9.5, false);
    }
    for e in r.events.iter().take(MAX_EVENTS) {
        event(l, r, e);
    }
    if r.events.len() > MAX_EVENTS {
        l.para(
            &format!(
                "{} more events are listed in events.json.",
                r.events.len() - MAX_EVENTS
            ),
            9.5,
            false,
        );
    }

    l.heading("How to verify", 13.0);
    l.para(r.verify_text, 7.5, true);
}

/// "1 interval", "2 intervals".
fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// µs as people read a clock's error: "16 s", "250 ms", "40 µs".
fn duration_text(us: i64) -> String {
    if us >= 1_000_000 {
        format!("{:.1} s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{} ms", us / 1000)
    } else {
        format!("{us} µs")
    }
}

/// One event: its thumbnail at the left, what and when beside it.
fn event(l: &mut Layout, r: &ReportInput, e: &EventView) {
    let (tw, th) = (120.0, 68.0);
    l.need(th + 8.0);
    let top = l.y;
    if let Some(jpeg) = (r.thumbnail)(e.id)
        && let Ok(img) = Image::from_jpeg(jpeg.clone().into(), false)
    {
        let (w, h) = img.size();
        let scale = (tw / w as f32).min(th / h as f32);
        l.push(Op::Image {
            x: MARGIN,
            y: top + 2.0,
            w: w as f32 * scale,
            h: h as f32 * scale,
            jpeg,
        });
    }
    let x = MARGIN + tw + 10.0;
    let w = PAGE_W - MARGIN - x;
    l.text_at(x, w, &format!("Event {} on {}", e.id, e.camera), 9.5, false);
    l.text_at(x, w, &format!("{} to {}", e.start, e.end), 9.0, false);
    l.text_at(
        x,
        w,
        &format!(
            "zones: {}; peak score {:.3}",
            if e.zones.is_empty() {
                "(whole picture)".to_owned()
            } else {
                e.zones.join(", ")
            },
            e.peak_score
        ),
        9.0,
        false,
    );
    l.text_at(x, w, &format!("thumbnails/event-{}.jpg", e.id), 8.0, true);
    l.y = l.y.max(top + th + 8.0);
}

fn pdf_date(us: i64) -> DateTime {
    let t = jiff::Timestamp::from_microsecond(us)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC);
    DateTime::new(t.year() as u16)
        .month(t.month() as u8)
        .day(t.day() as u8)
        .hour(t.hour() as u8)
        .minute(t.minute() as u8)
        .second(t.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

fn draw(l: Layout, r: &ReportInput, package: &str) -> Result<Vec<u8>, ReportError> {
    let settings = krilla::SerializeSettings {
        configuration: krilla::configure::ConfigurationBuilder::new()
            .with_archival_validator(krilla::configure::Archival::A2_U)
            .finish()
            .map_err(|e| ReportError(format!("{e:?}")))?,
        ..Default::default()
    };
    let mut doc = Document::new_with(settings);
    let sans = Font::new(SANS.into(), 0).expect("embedded font");
    let mono = Font::new(MONO.into(), 0).expect("embedded font");
    let n = l.pages.len();
    let footer = |i: usize| {
        l.sans.printable(&format!(
            "Vigil evidence package {package} · page {} of {n} · case.json and its signature are authoritative",
            i + 1
        ))
    };
    for (i, ops) in l.pages.iter().enumerate() {
        let mut page = doc.start_page_with(PageSettings::from_wh(PAGE_W, PAGE_H).expect("A4"));
        let mut sf = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    mono: m,
                    text,
                } => sf.draw_text(
                    Point::from_xy(*x, *y),
                    if *m { mono.clone() } else { sans.clone() },
                    *size,
                    text,
                    false,
                    TextDirection::Auto,
                ),
                Op::Image { x, y, w, h, jpeg } => {
                    let img = Image::from_jpeg(jpeg.clone().into(), false)
                        .map_err(|e| ReportError(format!("thumbnail: {e}")))?;
                    sf.push_transform(&Transform::from_translate(*x, *y));
                    sf.draw_image(img, Size::from_wh(*w, *h).expect("positive size"));
                    sf.pop();
                }
                Op::Rule { y } => {
                    let mut pb = PathBuilder::new();
                    pb.push_rect(
                        Rect::from_xywh(MARGIN, *y, PAGE_W - 2.0 * MARGIN, 0.6)
                            .expect("positive size"),
                    );
                    if let Some(p) = pb.finish() {
                        sf.draw_path(&p);
                    }
                }
            }
        }
        sf.draw_text(
            Point::from_xy(MARGIN, PAGE_H - MARGIN + 10.0),
            sans.clone(),
            7.0,
            &footer(i),
            false,
            TextDirection::Auto,
        );
        sf.finish();
        page.finish();
    }
    let case = &r.manifest["case"];
    doc.set_metadata(
        Metadata::new()
            .title(format!(
                "Evidence report, case {}: {}",
                case["id"],
                s(case, "title")
            ))
            .creator(format!("Vigil {}", env!("CARGO_PKG_VERSION")))
            .producer(format!("Vigil {} (krilla)", env!("CARGO_PKG_VERSION")))
            .language("en".into())
            .document_id(package.to_owned())
            .creation_date(pdf_date(r.created_us)),
    );
    doc.finish().map_err(|e| ReportError(format!("{e:?}")))
}

#[cfg(test)]
mod tests;
