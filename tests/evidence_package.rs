//! The evidence package end to end: a case with an event and a range of the crossing
//! fixture, exported by `vigil evidence export`, checked by tools that are not Vigil
//! (`sha256sum -c`, `openssl cms -verify`, ffprobe) and by `vigil evidence verify`; then
//! the tamper suite: a byte changed in a media file, in case.json, in a custody record;
//! a file added, removed, renamed; custody records reordered; the CA swapped for
//! another; the manifest re-signed by a key not under the site CA. Each is found, with
//! the file and the reason.

#[path = "common/browser.rs"]
mod browser;
#[path = "evidence/checks.rs"]
mod checks;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use checks::{check_report, rezip};
use common::*;
use vigil::base::time::{now_us, rfc3339};

fn verify(pkg: &Path) -> (bool, String) {
    let o = Command::new(VIGIL)
        .args(["evidence", "verify"])
        .arg(pkg)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn sha256sum_ok(pkg: &Path) -> bool {
    Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(pkg)
        .output()
        .unwrap()
        .status
        .success()
}

/// `openssl cms -verify` of the detached signature `p7s` of `content`, in `pkg`, with
/// the package's CA (the command VERIFY.txt gives).
fn openssl_cms_ok(pkg: &Path, p7s: &str, content: &str) -> (bool, String) {
    let o = Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-in", p7s, "-content", content,
        ])
        .args(["-CAfile", "certs/site-ca.pem", "-out", "/dev/null"])
        .current_dir(pkg)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `vigil evidence export --case ID --out OUT`: (success, stdout, stderr).
fn export_to(cfg: &Path, id: u64, out: &Path) -> (bool, String, String) {
    let out = out.to_str().unwrap();
    vigil_config(
        cfg,
        &[
            "evidence",
            "export",
            "--case",
            &id.to_string(),
            "--out",
            out,
        ],
        "",
    )
}

/// A way to damage a copy of the package.
type Damage<'a> = Box<dyn Fn(&Path) + 'a>;

/// A fresh copy of the package to damage.
fn copy(pkg: &Path, t: &TestDir, name: &str) -> PathBuf {
    let p = t.join(name);
    copy_dir(pkg, &p);
    p
}

/// Rewrites the package's SHA256SUMS with the current hashes of the files it lists (as
/// someone hiding a change would).
fn resum(pkg: &Path) {
    let sums: String = std::fs::read_to_string(pkg.join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|l| {
            let name = l.split_once("  ").unwrap().1;
            let h = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
                std::fs::read(pkg.join(name)).unwrap(),
            ));
            format!("{}  {name}\n", hex::encode(h))
        })
        .collect();
    std::fs::write(pkg.join("SHA256SUMS"), sums).unwrap();
}

fn replace_in(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap().replace(from, to);
    std::fs::write(path, s).unwrap();
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn exported_case_verifies_and_every_tampering_is_found() {
    let t = TestDir::new();
    let (_cam, cfg) = crossing_camera(&t, "");
    let t0 = now_us() - 60_000_000;
    let d = TestDaemon::start(&cfg);
    let far = now_us() + 3_600_000_000;
    let ev = wait_for(Duration::from_secs(60), "an event on the fixture", || {
        let v = d.get_json(&format!(
            "/api/events?camera=fixture&start={}&end={}",
            rfc3339(t0),
            rfc3339(far)
        ));
        v["events"].as_array()?.first().cloned()
    });
    std::thread::sleep(Duration::from_secs(4));
    let auth = format!("Bearer {}", d.token);
    let post = |path: &str, body: serde_json::Value| {
        let a = call(
            "post",
            &d.url(path),
            &[("Authorization", &auth)],
            Some(&body.to_string()),
        );
        assert!(a.code < 300, "{path}: {}", a.body);
        serde_json::from_str::<serde_json::Value>(&a.body).unwrap()
    };
    let case = post(
        "/api/cases",
        serde_json::json!({ "title": "Pallet missing", "reference": "PD-2026-118", "legal_basis": "police request" }),
    );
    let id = case["id"].as_u64().unwrap();
    post(
        &format!("/api/cases/{id}/items"),
        serde_json::json!({ "kind": "event", "event_id": ev["id"] }),
    );
    let (a, b) = (
        ev["start_ms"].as_i64().unwrap() * 1000,
        ev["start_ms"].as_i64().unwrap() * 1000 + 4_000_000,
    );
    post(
        &format!("/api/cases/{id}/items"),
        serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": rfc3339(a), "end": rfc3339(b) }),
    );
    // A range that starts before the recording did: the manifest lists the gap.
    post(
        &format!("/api/cases/{id}/items"),
        serde_json::json!({ "kind": "range", "cameras": ["fixture"], "start": rfc3339(t0), "end": rfc3339(b) }),
    );
    d.stop();

    // Keys, then the export (the daemon stopped: on the index).
    let (ok, out, err) = vigil_config(
        &cfg,
        &[
            "keys",
            "init",
            "--site",
            "ACME Depot",
            "--recorder",
            "nvr1",
            "--bits",
            "2048",
        ],
        "",
    );
    assert!(ok, "{out}{err}");
    let pkg = t.join("pkg");
    let (ok, out, err) = export_to(&cfg, id, &pkg);
    assert!(ok, "{out}{err}");
    eprintln!("{out}");

    // Tools that are not Vigil.
    assert!(sha256sum_ok(&pkg), "sha256sum -c failed");
    let (ok, msg) = openssl_cms_ok(&pkg, "case.json.p7s", "case.json");
    assert!(ok, "openssl cms -verify: {msg}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("case.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "vigil-evidence/1");
    assert_eq!(manifest["case"]["reference"], "PD-2026-118");
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{manifest}");
    let early = files
        .iter()
        .find(|f| f["requested"]["start"] == rfc3339(t0))
        .unwrap();
    assert_eq!(early["gaps"][0]["start"], rfc3339(t0), "{early}");
    assert_eq!(early["gaps"][0]["end"], early["actual"]["start"], "{early}");
    for f in files {
        let path = pkg.join(f["path"].as_str().unwrap());
        let (frames, duration) = ffprobe(&path);
        // The frames a player shows are the manifest's, first to last.
        let shown = ffprobe_rows(&path, "v:0", "frame=pts_time");
        assert_eq!(
            Some(frames),
            f["frames"].as_u64(),
            "{path:?}: ffprobe's frames (pts {:?}) vs the manifest's {f}",
            shown
                .iter()
                .take(3)
                .chain(shown.iter().rev().take(2))
                .collect::<Vec<_>>()
        );
        let span = |s: &serde_json::Value| {
            (vigil::base::time::parse_rfc3339(s["end"].as_str().unwrap()).unwrap()
                - vigil::base::time::parse_rfc3339(s["start"].as_str().unwrap()).unwrap())
                as f64
                / 1e6
        };
        // Its first and last frame are as far apart as the manifest says (ffprobe's
        // presentation times), and on the index's frame grid: the fixture's 15 fps from
        // the first source segment's start.
        let pts_span = shown.last().unwrap()[0] - shown[0][0];
        assert!(
            (pts_span - span(&f["actual"])).abs() < 0.002,
            "{path:?}: frames {pts_span} s apart, the manifest says {}",
            f["actual"]
        );
        let us =
            |v: &serde_json::Value| vigil::base::time::parse_rfc3339(v.as_str().unwrap()).unwrap();
        let from_segment = us(&f["actual"]["start"]) - us(&f["source_segments"][0]["start"]);
        let off_grid = (from_segment as f64 / (1e6 / 15.0)).fract();
        assert!(
            !(0.02..=0.98).contains(&off_grid),
            "{path:?}: the first frame is {from_segment} µs into its segment, not on a frame: {f}"
        );
        assert!(
            (duration - span(&f["actual"])).abs() < 0.2,
            "{duration} s vs {}",
            f["actual"]
        );
        // Chromium (another demuxer and decoder) plays the sealed file to its end: the
        // seal's boxes after the media harm nothing.
        // (The player page is written in the test dir and names the file relatively.)
        let beside = t.join(path.file_name().unwrap().to_str().unwrap());
        std::fs::copy(&path, &beside).unwrap();
        let p = browser::play(&t, &beside, 0.0, duration);
        assert!(
            p.error.is_none()
                && (p.duration - duration).abs() < 0.1
                && p.reached >= duration - 0.2
                && p.decoded_frames >= frames,
            "Chromium on {path:?}: {p:?} ({frames} frames, {duration} s)"
        );
        assert_eq!(f["processing"], "remux-only");
        assert!(
            f["source_segments"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["sha256"].is_string()),
            "{f}"
        );
        assert_eq!(f["camera"]["name"], "fixture");
    }
    // The event's picture, a JPEG.
    let thumb = std::fs::read(pkg.join(format!("thumbnails/event-{}.jpg", ev["id"])))
        .expect("the event's thumbnail");
    assert_eq!(&thumb[..2], &[0xFF, 0xD8]);
    // The canonical form: what RFC 8785 gives for the parsed manifest is the file.
    assert!(
        !std::fs::read_to_string(pkg.join("case.json"))
            .unwrap()
            .contains('\n')
    );
    check_report(&pkg, &manifest);
    // An item that ends after now (allowed up to a minute ahead) is not exported yet: the
    // export says so instead of listing time that has not happened as a gap.
    let (ok, out, err) = vigil_config(&cfg, &["case", "create", "--title", "Unfinished"], "");
    assert!(ok, "{out}{err}");
    let unfinished = out.trim().to_owned();
    let (ok, out, err) = vigil_config(
        &cfg,
        &[
            "case",
            "add",
            &unfinished,
            "--camera",
            "fixture",
            "--start",
            &rfc3339(a),
            "--end",
            &rfc3339(now_us() + 30_000_000),
        ],
        "",
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = export_to(&cfg, unfinished.parse().unwrap(), &t.join("unfinished"));
    assert!(!ok && err.contains("after now"), "{out}{err}");
    // What is no package at all says so, with exit 2 (3 is for a package with problems).
    let empty = t.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (path, why) in [
        (t.join("nothing-here"), "no such file or folder"),
        (pkg.join("case.json"), "not a ZIP evidence package"),
        (empty, "it has no case.json"),
    ] {
        let o = Command::new(VIGIL)
            .args(["evidence", "verify"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code() == Some(2) && err.contains(why),
            "{path:?}: {err}"
        );
    }
    let (ok, out) = verify(&pkg);
    assert!(ok && out.contains("intact"), "{out}");
    // The CA's fingerprint, for the acceptance record, as openssl gives it.
    let fp = Command::new("openssl")
        .args([
            "x509",
            "-in",
            "certs/site-ca.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ])
        .current_dir(&pkg)
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        out.contains(&format!("SHA-256 fingerprint {fp}: compare it")),
        "{out}"
    );

    // The same case as one ZIP: every entry stored, read by Python's zipfile (another
    // implementation), whose extraction passes sha256sum; Vigil verifies the ZIP itself.
    let zip = t.join("pkg.zip");
    let (ok, out, err) = export_to(&cfg, id, &zip);
    assert!(
        ok && zip.is_file() && !t.join("pkg.zip.d").exists(),
        "{out}{err}"
    );
    let unzipped = t.join("unzipped");
    let py = Command::new("python3")
        .args(["-c", "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())\nimport time\nassert all(i.date_time[0] == time.gmtime().tm_year for i in z.infolist()), [i.date_time for i in z.infolist()]\nz.extractall(sys.argv[2])\nprint(len(z.infolist()))"])
        .arg(&zip)
        .arg(&unzipped)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert!(sha256sum_ok(&unzipped), "sha256sum -c in the extracted ZIP");
    let (ok, out) = verify(&zip);
    assert!(ok && out.contains("intact"), "{out}");
    // Re-zipped by a receiver with deflate (Python's zipfile): still read and intact.
    let deflated = t.join("deflated.zip");
    rezip(&zip, &deflated, "zipfile.ZIP_DEFLATED", "");
    let (ok, out) = verify(&deflated);
    assert!(ok && out.contains("intact"), "{out}");
    // A ZIP of the package's folder (its files one level down), as zipping the folder
    // itself makes: found and intact.
    let nested = t.join("nested.zip");
    rezip(&zip, &nested, "zipfile.ZIP_STORED", "PD-2026-118/");
    let (ok, out) = verify(&nested);
    assert!(ok && out.contains("intact"), "{out}");
    // A hand-over recorded in the ZIP itself.
    let o = Command::new(VIGIL)
        .args(["evidence", "custody", "--config", cfg.to_str().unwrap()])
        .arg(&zip)
        .args([
            "--action",
            "transferred",
            "--by",
            "Ivan",
            "--to",
            "Det. Ruiz",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ok, out) = verify(&zip);
    assert!(ok && out.contains("custody chain: 2 records"), "{out}");

    // Hand-overs recorded in a copy: each appended record is chained and signed, also
    // after a key rotation (its certificate under the same CA); the files' sums hold.
    let handed = copy(&pkg, &t, "handed");
    let custody = |args: &[&str]| {
        let o = Command::new(VIGIL)
            .args([
                "evidence",
                "custody",
                "--config",
                cfg.to_str().unwrap(),
                handed.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    custody(&[
        "--action",
        "transferred",
        "--by",
        "ivan (ACME security)",
        "--to",
        "Det. Ines Ruiz, City Police",
    ]);
    let (ok, out, err) = vigil_config(
        &cfg,
        &[
            "keys",
            "rotate",
            "--site",
            "ACME Depot",
            "--recorder",
            "nvr1",
            "--bits",
            "2048",
        ],
        "",
    );
    assert!(ok, "{out}{err}");
    custody(&[
        "--action",
        "received",
        "--by",
        "Det. Ines Ruiz, City Police",
    ]);
    // A name with a line break in it is refused, and nothing is appended.
    let o = Command::new(VIGIL)
        .args([
            "evidence",
            "custody",
            "--config",
            cfg.to_str().unwrap(),
            handed.to_str().unwrap(),
        ])
        .args(["--action", "note", "--by", "x\nforged line"])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("control characters")
    );
    // So is one that reads differently from what it says (a right-to-left override).
    let o = Command::new(VIGIL)
        .args(["evidence", "custody", "--config", cfg.to_str().unwrap()])
        .arg(&handed)
        .args(["--action", "note", "--by", "Iv\u{202E}an"])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("U+202E"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(sha256sum_ok(&handed));
    let (ok, out) = verify(&handed);
    assert!(ok && out.contains("custody chain: 3 records"), "{out}");
    // The package exported before the rotation still verifies.
    let (ok, out) = verify(&pkg);
    assert!(ok, "{out}");

    // The tamper suite: each found, with the file and the reason.
    let media = files[0]["path"].as_str().unwrap().to_owned();
    let cases: Vec<(&str, Damage<'_>, &str, &str)> = vec![
        (
            "media-byte",
            Box::new(|p: &Path| flip(&p.join(&media), 5000)),
            media.as_str(),
            "the file changed",
        ),
        (
            "manifest-byte",
            Box::new(|p: &Path| {
                replace_in(&p.join("case.json"), "Pallet missing", "Pallet mislaid")
            }),
            "case.json.p7s",
            "changed after it was signed",
        ),
        (
            "custody-byte",
            Box::new(|p: &Path| {
                replace_in(&p.join("custody.jsonl"), "\"exported\"", "\"exporter\"")
            }),
            "custody.jsonl",
            "signature does not verify",
        ),
        (
            "added",
            Box::new(|p: &Path| std::fs::write(p.join("media/extra.mp4"), b"x").unwrap()),
            "media/extra.mp4",
            "not listed in SHA256SUMS",
        ),
        (
            "removed",
            Box::new(|p: &Path| std::fs::remove_file(p.join("events.json")).unwrap()),
            "events.json",
            "missing",
        ),
        (
            "renamed",
            Box::new(|p: &Path| {
                std::fs::rename(p.join("events.json"), p.join("events2.json")).unwrap()
            }),
            "events2.json",
            "not listed",
        ),
        (
            "ca-swapped",
            Box::new(|p: &Path| {
                let other = p.join("../other-ca");
                let _ = vigil::evidence::keys::init(&other, "Mallory", "x", 2048).unwrap();
                std::fs::copy(other.join("site-ca.pem"), p.join("certs/site-ca.pem")).unwrap();
            }),
            "certs/site-ca.pem",
            "differs from SHA256SUMS",
        ),
        (
            "custody-emptied",
            Box::new(|p: &Path| std::fs::write(p.join("custody.jsonl"), b"").unwrap()),
            "custody.jsonl",
            "its first record, the export that case.json names, is gone",
        ),
        (
            "certs-removed",
            Box::new(|p: &Path| std::fs::remove_dir_all(p.join("certs")).unwrap()),
            "custody.jsonl",
            "cannot be checked without certs/site-ca.pem",
        ),
    ];
    for (name, damage, file, why) in &cases {
        let p = copy(&pkg, &t, name);
        damage(&p);
        let (ok, out) = verify(&p);
        assert!(!ok, "{name}: not found:\n{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("FAILED: ") && l.contains(file) && l.contains(why)),
            "{name}: expected {file}: …{why}… in\n{out}"
        );
    }
    // The CA swapped also breaks the signatures' chain.
    let (ok, out) = verify(&t.join("ca-swapped"));
    assert!(!ok && out.contains("site CA did not issue"), "{out}");
    // No "ok" line says what a failure contradicts: with the media changed or the CA
    // gone, no line says the seals verify; the missing CA is named once.
    for name in ["media-byte", "certs-removed"] {
        let (_, out) = verify(&t.join(name));
        assert!(!out.contains("seals verify"), "{name}: {out}");
    }
    let (_, out) = verify(&t.join("certs-removed"));
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("FAILED: certs/site-ca.pem"))
            .count(),
        1,
        "{out}"
    );

    // An unsigned-by-the-manifest file changed and SHA256SUMS made to match: the signed
    // SHA256SUMS.p7s catches it, for openssl as for Vigil.
    let p = copy(&pkg, &t, "resummed");
    replace_in(&p.join("events.json"), "\"peak_score\"", "\"peak_score\" ");
    resum(&p);
    assert!(sha256sum_ok(&p));
    assert!(
        !openssl_cms_ok(&p, "SHA256SUMS.p7s", "SHA256SUMS").0,
        "openssl accepted a changed SHA256SUMS"
    );
    let (ok, out) = verify(&p);
    assert!(
        !ok && out.contains("FAILED: SHA256SUMS.p7s: the signed digest is not the file's"),
        "{out}"
    );

    // Custody records reordered: a second, valid record, then the two swapped.
    let k = vigil::evidence::keys::load(&t.join("storage/signing.keys")).unwrap();
    let p = copy(&pkg, &t, "reordered");
    let first = std::fs::read_to_string(p.join("custody.jsonl")).unwrap();
    let first = first.trim_end();
    let prev = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(first.as_bytes()));
    let second = vigil::evidence::package::custody_line(
        serde_json::json!({ "seq": 2, "time": rfc3339(now_us()), "action": "transferred", "by": "ivan", "to": "Det. Ruiz" }),
        &prev,
        &k,
    )
    .unwrap();
    std::fs::write(p.join("custody.jsonl"), format!("{first}\n{second}\n")).unwrap();
    let (ok, out) = verify(&p);
    assert!(
        ok && out.contains("custody chain: 2 records"),
        "a valid appended record: {out}"
    );
    std::fs::write(p.join("custody.jsonl"), format!("{second}\n{first}\n")).unwrap();
    let (ok, out) = verify(&p);
    assert!(
        !ok && out.contains("does not follow the line before"),
        "{out}"
    );
    // A validly chained and signed record dated before the one it follows.
    let early = vigil::evidence::package::custody_line(
        serde_json::json!({ "seq": 2, "time": rfc3339(now_us() - 86_400_000_000), "action": "note", "by": "ivan" }),
        &prev,
        &k,
    )
    .unwrap();
    std::fs::write(p.join("custody.jsonl"), format!("{first}\n{early}\n")).unwrap();
    let (ok, out) = verify(&p);
    assert!(
        !ok && out.contains("is before the record's before it"),
        "{out}"
    );

    // A source segment changed since it was recorded: the export is refused, nothing
    // is left behind.
    let seg = &indexed_segments(&t.join("storage"))[0];
    flip(&t.join("storage").join(&seg.file), (seg.bytes / 2) as usize);
    let again = t.join("again");
    let (ok, out, err) = export_to(&cfg, id, &again);
    assert!(
        !ok && err.contains("changed since it was recorded"),
        "{out}{err}"
    );
    assert!(!again.exists());

    // Re-signed by a key not under the site CA (SHA256SUMS made to match): refused.
    let p = copy(&pkg, &t, "resigned");
    let rogue = vigil::evidence::keys::init(&t.join("rogue"), "Rogue", "r", 2048).unwrap();
    let manifest = std::fs::read(p.join("case.json")).unwrap();
    let sig =
        vigil::evidence::cms::sign_detached(&manifest, &rogue.key, &rogue.recorder, &[]).unwrap();
    std::fs::write(p.join("case.json.p7s"), &sig).unwrap();
    resum(&p);
    assert!(sha256sum_ok(&p));
    assert!(
        !openssl_cms_ok(&p, "case.json.p7s", "case.json").0,
        "openssl accepted a signer outside the site CA"
    );
    let (ok, out) = verify(&p);
    assert!(
        !ok && out
            .contains("FAILED: case.json.p7s: signed by a certificate the site CA did not issue"),
        "{out}"
    );
}
