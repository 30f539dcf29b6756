//! Checks of an evidence package by tools that are not Vigil (qpdf and poppler's tools
//! on report.pdf, Python's zipfile re-zipping it), for `tests/evidence_package.rs`.

use std::path::Path;
use std::process::Command;

/// `report.pdf` as tools that are not Vigil read it: qpdf finds its structure sound,
/// pdftotext its text (the case, the package id, every media file's SHA-256), pdffonts
/// every font embedded, pdfimages one JPEG per event thumbnail (passed through, not
/// re-encoded), pdfinfo its PDF/A-2u identification.
pub fn check_report(pkg: &Path, manifest: &serde_json::Value) {
    let pdf = pkg.join("report.pdf");
    let run = |cmd: &str, args: &[&str]| {
        let o = Command::new(cmd)
            .args(args)
            .arg(&pdf)
            .args(if cmd == "pdftotext" {
                &["-"][..]
            } else {
                &[][..]
            })
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (ok, out) = run("qpdf", &["--check"]);
    assert!(
        ok && out.contains("No syntax or stream encoding errors"),
        "qpdf --check: {out}"
    );
    let (ok, text) = run("pdftotext", &["-raw"]);
    assert!(ok, "{text}");
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "Pallet missing",
        "PD-2026-118",
        "police request",
        manifest["package_id"].as_str().unwrap(),
    ] {
        assert!(flat.contains(want), "report.pdf lacks {want:?}:\n{text}");
    }
    for f in manifest["files"].as_array().unwrap() {
        let sha = f["sha256"].as_str().unwrap();
        assert!(flat.contains(sha), "report.pdf lacks {sha}:\n{text}");
    }
    let (ok, fonts) = run("pdffonts", &[]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(ok && rows.len() >= 2, "{fonts}");
    for r in &rows {
        // name type encoding emb sub uni object ID
        let cols: Vec<&str> = r.split_whitespace().collect();
        let n = cols.len();
        assert!(
            n >= 7 && cols[n - 5] == "yes" && cols[n - 3] == "yes",
            "font not embedded or without Unicode: {r}\n{fonts}"
        );
    }
    let thumbs = std::fs::read_dir(pkg.join("thumbnails")).unwrap().count();
    let (ok, images) = run("pdfimages", &["-list"]);
    let jpegs = images
        .lines()
        .skip(2)
        .filter(|l| l.split_whitespace().nth(8) == Some("jpeg"))
        .count();
    assert!(
        ok && thumbs > 0 && jpegs == thumbs,
        "{thumbs} thumbnails, images:\n{images}"
    );
    let (ok, meta) = run("pdfinfo", &["-meta"]);
    assert!(ok, "{meta}");
    let part = meta.contains("<pdfaid:part>2</pdfaid:part>") || meta.contains("pdfaid:part=\"2\"");
    let level = meta.contains("<pdfaid:conformance>U</pdfaid:conformance>")
        || meta.contains("pdfaid:conformance=\"U\"");
    assert!(part && level, "no PDF/A-2u identification:\n{meta}");
}

/// The ZIP `from` written again by Python's zipfile as `to`, with `compression` (a
/// zipfile constant) and every entry's name under `prefix`.
pub fn rezip(from: &Path, to: &Path, compression: &str, prefix: &str) {
    let py = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import sys, zipfile\na = zipfile.ZipFile(sys.argv[1])\nb = zipfile.ZipFile(sys.argv[2], 'w', {compression})\n[b.writestr('{prefix}' + i.filename, a.read(i)) for i in a.infolist()]\nb.close()"
            ),
        ])
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
}
