//! The evidence package, `vigil-evidence/1`: everything a case's recipient needs to see
//! that the video is what the cameras recorded, unaltered, who exported it and when, and
//! to check that without Vigil. Written as a folder:
//!
//! | path | what |
//! |---|---|
//! | `media/<camera>/<from>_<to>.mp4` | each item's range of each camera, remuxed from the segments (never re-encoded), sealed as the ONVIF Export File Format defines ([`super::eff`]) |
//! | `case.json` | the manifest, canonical JSON (RFC 8785) |
//! | `case.json.p7s` | its detached CMS signature (DER) by the recorder's certificate ([`super::cms`]) |
//! | `SHA256SUMS` | `sha256sum -c` format: every file but itself and `custody.jsonl` |
//! | `custody.jsonl` | the chain of custody: hash-chained records, each signed; later records (verification, transfer) are appended, so it is outside `SHA256SUMS` and its first record's hash is in the manifest |
//! | `audit-extract.jsonl` | the audit log's records that touch the case, then the audit head |
//! | `events.json`, `thumbnails/event-<id>.jpg` | the motion events in the items' ranges, each with its peak picture |
//! | `certs/site-ca.pem`, `certs/recorder.pem` | the site CA and the recorder certificate |
//! | `report.pdf` | a human-readable report (PDF/A-2u, [`super::report`]): case, items, media times and hashes, events with thumbnails, signer, how to verify |
//! | `VERIFY.txt` | how to verify, with the exact commands |
//!
//! [`super::verify`] checks one offline.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use super::archive::{package_root, unzip, zip_dir};
pub use super::custody::{CustodyLock, append_custody, custody_line};
use super::keys::{Keys, fingerprint};
use super::{cms, eff};
use crate::base::time::rfc3339;
use crate::events::{self, Cameras, EventQuery, Order, QueryError};
use crate::index::{Case, Index};
use crate::storage::Layout;

/// The format's name and version, in the manifest.
pub const FORMAT: &str = "vigil-evidence/1";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{0}")]
    Seal(#[from] eff::SealError),
    #[error("{0}")]
    Cms(#[from] cms::CmsError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Report(#[from] super::report::ReportError),
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |err| PackageError::Io {
        path: path.to_owned(),
        err,
    }
}

/// Who exports, from where.
pub struct Exporter<'a> {
    pub user: &'a str,
    pub role: &'a str,
    /// This recorder's name and host.
    pub recorder: &'a str,
    pub host: &'a str,
    /// Camera name → stream URL (without credentials: the config refuses them in URLs).
    pub camera_urls: &'a [(String, String)],
}

/// One exported media file, as the manifest lists it.
#[derive(Clone, Debug, Serialize)]
pub struct MediaFile {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// The case items it is for (two items of the same camera and range share a file).
    pub items: Vec<u32>,
    pub camera: CameraRef,
    pub requested: Span,
    /// UTC at which the first and the last presented frame are shown (RFC 3339, µs).
    pub actual: Span,
    /// Recording gaps inside the range, `[start, end)` (RFC 3339).
    pub gaps: Vec<Span>,
    pub codec: String,
    pub width: u16,
    pub height: u16,
    pub frames: u64,
    pub processing: &'static str,
    /// The segments it was remuxed from, with the SHA-256 each got when it was recorded.
    pub source_segments: Vec<SourceSegment>,
    /// The ONVIF export seal: algorithm and the signer's certificate fingerprint.
    pub seal: SealRef,
}

#[derive(Clone, Debug, Serialize)]
pub struct CameraRef {
    pub name: String,
    pub id: u32,
    pub url: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Span {
    pub start: String,
    pub end: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceSegment {
    pub file: String,
    pub start: String,
    pub end: String,
    /// Hex SHA-256 taken when it closed (`null` for segments recorded before that).
    pub sha256: Option<String>,
    pub end_reason: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct SealRef {
    pub format: &'static str,
    pub algorithm: &'static str,
    pub cert_sha256: String,
}

fn span(a: i64, b: i64) -> Span {
    Span {
        start: rfc3339(a),
        end: rfc3339(b),
    }
}

pub(super) fn sha256_file(path: &Path) -> Result<(String, u64), PackageError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(io(path))?;
    Ok((hex::encode(h.finalize()), n))
}

/// `20261201T020304.567Z`: a UTC time for file names, to the millisecond (two items
/// share a file only if their ranges are the same to the millisecond).
fn stamp(us: i64) -> String {
    let ms = us.div_euclid(1000) * 1000;
    let t = rfc3339(ms).replace(['-', ':'], "");
    match t.split_once('.') {
        Some((s, frac)) => format!("{s}.{:0<3.3}Z", frac.trim_end_matches('Z')),
        None => format!("{}.000Z", t.trim_end_matches('Z')),
    }
}

/// A new random package id (UUID version 4 text).
/// The gaps of `[start_us, end_us)` that `plan` does not show: before its first frame
/// (the recording began later), inside it, and after its last (the recording ended
/// earlier), each longer than [`crate::export::GAP_US`]. (Items that end after the
/// export's time are refused before: what had not happened yet is no gap.)
fn range_gaps(plan: &crate::export::ClipPlan, start_us: i64, end_us: i64) -> Vec<(i64, i64)> {
    let gap = crate::export::GAP_US;
    let shown_end = plan.start_us + plan.duration_us;
    let mut gaps = Vec::new();
    if plan.start_us - start_us > gap {
        gaps.push((start_us, plan.start_us));
    }
    gaps.extend(plan.gaps.iter().copied());
    if end_us - shown_end > gap {
        gaps.push((shown_end, end_us));
    }
    gaps
}

/// A fresh random UUID (version 4, RFC 9562), as a package's id.
pub fn package_id() -> String {
    use rsa::rand_core::RngCore;
    let mut b = [0u8; 16];
    rsa::rand_core::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The kernel's view of the clock's synchronisation (`adjtimex`): whether NTP (or PTP)
/// keeps it in sync, and its maximum error in µs.
fn time_sync() -> serde_json::Value {
    // SAFETY: adjtimex with modes 0 only reads the kernel's state into `tx`.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    serde_json::json!({
        "synchronized": state >= 0 && state != libc::TIME_ERROR,
        "max_error_us": tx.maxerror,
        "source": "adjtimex",
    })
}

/// What [`export`] made.
#[derive(Debug)]
pub struct Exported {
    pub package_id: String,
    pub dir: PathBuf,
    pub files: usize,
    pub media_bytes: u64,
    /// Hex SHA-256 of `case.json`.
    pub manifest_sha256: String,
}

/// What an export reads: the recorder's index, storage, audit log and signing keys.
pub struct Recorder<'a> {
    pub index: &'a Index,
    pub storage: &'a Layout,
    pub audit: &'a crate::audit::AuditLog,
    pub keys: &'a Keys,
}

/// An item that ends at most this far after the export's time is waited for (its end,
/// and a commit of the recording, µs); one ending later refuses the export.
const WAIT_FOR_END_US: i64 = 5_000_000;
const COMMIT_MARGIN_US: i64 = 2_000_000;

/// Exports case `case` to the new folder `out` (refused if it exists), signed with the
/// recorder's keys, as of `now_us`. An item ending up to 5 s after it (a region search's
/// interval can end in the current second) is waited for; one ending later is refused.
/// Errors: the case, an item without recording, I/O, signing.
pub fn export(
    rec: &Recorder<'_>,
    case: &Case,
    who: &Exporter<'_>,
    out: &Path,
    mut now_us: i64,
) -> Result<Exported, PackageError> {
    let latest = case
        .items
        .iter()
        .map(|i| i.end_us)
        .max()
        .unwrap_or(i64::MIN);
    if latest > now_us && latest - now_us <= WAIT_FOR_END_US {
        let wait = latest + COMMIT_MARGIN_US - now_us;
        std::thread::sleep(std::time::Duration::from_micros(wait as u64));
        now_us += wait;
    }
    let existed = out.exists();
    let r = export_into(rec, case, who, out, now_us);
    // A failed export leaves nothing half-made behind.
    if r.is_err() && !existed {
        let _ = std::fs::remove_dir_all(out);
    }
    r
}

fn export_into(
    rec: &Recorder<'_>,
    case: &Case,
    who: &Exporter<'_>,
    out: &Path,
    now_us: i64,
) -> Result<Exported, PackageError> {
    let Recorder {
        index,
        storage,
        audit,
        keys,
    } = *rec;
    if case.items.is_empty() {
        return Err(PackageError::Refused(format!(
            "case {} has no items to export",
            case.id
        )));
    }
    if out.exists() {
        return Err(PackageError::Refused(format!(
            "{} exists already: give a new folder",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let package_id = package_id();
    let cams = Cameras::load(index)?;
    let cert_sha = fingerprint(&keys.recorder);
    let mut media = Vec::new();
    let mut events_out = Vec::new();
    for item in &case.items {
        for camera in &item.cameras {
            let cam_id = cams.id(camera)?;
            let rel = format!(
                "media/{camera}/{}_{}.mp4",
                stamp(item.start_us),
                stamp(item.end_us)
            );
            // Two items of the same camera and range share one file.
            if let Some(m) = media.iter_mut().find(|m: &&mut MediaFile| m.path == rel) {
                m.items.push(item.n);
                continue;
            }
            if item.end_us > now_us {
                return Err(PackageError::Refused(format!(
                    "item {} ends at {}, after now ({}): export the case once it is recorded",
                    item.n,
                    rfc3339(item.end_us),
                    rfc3339(now_us)
                )));
            }
            // (Retention cannot have taken it, the item holds it; a recording that was
            // never there is refused when the item is added.)
            let plan = crate::export::plan(index, storage, cam_id, item.start_us, item.end_us)
                .map_err(|e| match e {
                    QueryError::NotFound(m) => QueryError::NotFound(format!(
                        "item {} ({camera}, {} to {}): {m}",
                        item.n,
                        rfc3339(item.start_us),
                        rfc3339(item.end_us)
                    )),
                    e => e,
                })?;
            let path = out.join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).map_err(io(&path))?;
            {
                let mut f = std::fs::File::create(&path).map_err(io(&path))?;
                plan.write_range(0, plan.len, &mut f).map_err(io(&path))?;
            }
            let url = (who.camera_urls.iter().find(|(n, _)| n == camera))
                .map(|(_, u)| u.clone())
                .unwrap_or_default();
            let mut tracks = vec![eff::TrackSource {
                track_id: 1,
                name: camera.clone(),
                url: url.clone(),
                origin_us: plan.decode_start_us,
            }];
            if plan.audio_frames > 0 {
                tracks.push(eff::TrackSource {
                    track_id: 2,
                    name: camera.clone(),
                    url: url.clone(),
                    origin_us: plan.decode_start_us,
                });
            }
            let info = eff::SealInfo {
                unit_name: who.recorder.to_owned(),
                unit_url: format!("vigil://{}", who.host),
                time_us: now_us,
                operator: format!("{} ({})", who.user, who.role),
                tracks,
                user_info: format!("case {} {}; package {package_id}", case.id, case.reference),
            };
            eff::seal(&path, &info, &keys.key, &keys.recorder)?;
            let (sha, bytes) = sha256_file(&path)?;
            let segs = index
                .segments_overlapping(cam_id, item.start_us, item.end_us)
                .map_err(QueryError::from)?;
            // The sources must still be what was recorded: a segment whose bytes changed
            // since is not exported as evidence (nor blessed by a new seal).
            for seg in &segs {
                let Some(want) = seg.sha256.filter(|_| !seg.is_open()) else {
                    continue;
                };
                let p = storage.segment(&seg.file);
                let f = std::fs::File::open(&p).map_err(io(&p))?;
                let got = crate::record::integrity::file_sha256(&f, seg.bytes).map_err(io(&p))?;
                if got != want {
                    return Err(PackageError::Refused(format!(
                        "segment {} changed since it was recorded (its SHA-256 differs; see `vigil check --verify-hashes`): not exported",
                        seg.file
                    )));
                }
            }
            let first = segs.first();
            media.push(MediaFile {
                path: rel,
                sha256: sha,
                bytes,
                items: vec![item.n],
                camera: CameraRef {
                    name: camera.clone(),
                    id: cam_id,
                    url,
                },
                requested: span(item.start_us, item.end_us),
                actual: span(plan.first_frame_us, plan.last_frame_us),
                gaps: range_gaps(&plan, item.start_us, item.end_us)
                    .into_iter()
                    .map(|(a, b)| span(a, b))
                    .collect(),
                codec: first.map(|s| s.codec.clone()).unwrap_or_default(),
                width: first.map_or(0, |s| s.width),
                height: first.map_or(0, |s| s.height),
                frames: plan.presented_frames,
                processing: "remux-only",
                source_segments: segs
                    .iter()
                    .map(|s| SourceSegment {
                        file: s.file.clone(),
                        start: rfc3339(s.start_us),
                        end: rfc3339(s.end_us),
                        sha256: s.sha256.map(hex::encode),
                        end_reason: s.end_reason.as_str(),
                    })
                    .collect(),
                seal: SealRef {
                    format: "ONVIF Export File Format 26.06",
                    algorithm: "RSASSA-PSS SHA-256 MGF1-SHA-256 salt 20",
                    cert_sha256: cert_sha.clone(),
                },
            });
            let q = EventQuery {
                start_us: item.start_us,
                end_us: item.end_us,
                cameras: vec![camera.clone()],
                zones: vec![],
                min_score: None,
                min_duration_us: None,
                acknowledged: None,
                order: Order::Asc,
                limit: events::MAX_LIMIT,
                cursor: None,
            };
            events_out.extend(events::search(index, &q)?.events);
        }
    }
    let write = |rel: &str, bytes: &[u8]| -> Result<(), PackageError> {
        let p = out.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        std::fs::write(&p, bytes).map_err(io(&p))
    };
    // Each event's thumbnail (its peak picture), named by the event.
    events_out.sort_by_key(|e| e.id);
    events_out.dedup_by_key(|e| e.id);
    for e in &events_out {
        if let Some(jpeg) = index.thumbnail(e.id).map_err(QueryError::from)? {
            write(&format!("thumbnails/event-{}.jpg", e.id), &jpeg)?;
        }
    }
    write(
        "events.json",
        &serde_json::to_vec_pretty(&serde_json::json!({ "events": events_out }))
            .expect("plain data"),
    )?;
    use der::EncodePem;
    let pem = |c: &x509_cert::Certificate| {
        c.to_pem(der::pem::LineEnding::LF)
            .map_err(|e| PackageError::Refused(e.to_string()))
    };
    write("certs/site-ca.pem", pem(&keys.ca)?.as_bytes())?;
    write("certs/recorder.pem", pem(&keys.recorder)?.as_bytes())?;

    // The audit records that touch this case, and the head they chain to.
    let case_path = format!("/api/cases/{}", case.id);
    let mut extract = String::new();
    if let Ok(text) = std::fs::read_to_string(audit.path()) {
        for line in text.lines() {
            let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let p = &r["params"];
            let touches = p["path"]
                .as_str()
                .is_some_and(|s| s == case_path || s.starts_with(&format!("{case_path}/")))
                || p["case"].as_u64() == Some(case.id)
                || (r["action"] == "case.create"
                    && p["status"] == 201
                    && line.contains(&format!(
                        "\"title\":{}",
                        serde_json::to_string(&case.title).unwrap_or_default()
                    )));
            if touches {
                extract.push_str(line);
                extract.push('\n');
            }
        }
    }
    let head = std::fs::read_to_string(audit.path().with_extension("head")).unwrap_or_default();
    extract.push_str(&serde_json::json!({ "audit_head": head.trim() }).to_string());
    extract.push('\n');
    write("audit-extract.jsonl", extract.as_bytes())?;

    // The chain of custody, its first record: the export.
    let first = custody_line(
        serde_json::json!({
            "seq": 1, "time": rfc3339(now_us), "action": "exported", "by": who.user, "role": who.role,
            "package_id": package_id, "case": case.id, "recorder": who.recorder, "host": who.host,
        }),
        &"0".repeat(64),
        keys,
    )?;
    write("custody.jsonl", format!("{first}\n").as_bytes())?;
    let custody_head = hex::encode(Sha256::digest(first.as_bytes()));

    let verify_txt = verify_text(&fingerprint(&keys.ca), &cert_sha);
    write("VERIFY.txt", verify_txt.as_bytes())?;

    let (ca_sha, _) = (fingerprint(&keys.ca), ());
    let manifest = serde_json::json!({
        "format": FORMAT,
        "package_id": package_id,
        "created": rfc3339(now_us),
        "exported_by": { "user": who.user, "role": who.role },
        "exporter": { "product": "Vigil", "version": env!("CARGO_PKG_VERSION"), "recorder": who.recorder, "host": who.host, "recorder_cert_sha256": cert_sha },
        "time_sync": time_sync(),
        "case": {
            "id": case.id, "title": case.title, "reference": case.reference, "requester": case.requester,
            "legal_basis": case.legal_basis, "notes": case.notes, "created_by": case.created_by, "created": rfc3339(case.created_us),
            "items": case.items.iter().map(|it| serde_json::json!({
                "n": it.n, "source": it.source, "cameras": it.cameras, "start": rfc3339(it.start_us), "end": rfc3339(it.end_us),
                "note": it.note, "holds": it.holds, "added_by": it.added_by, "added": rfc3339(it.added_us),
            })).collect::<Vec<_>>(),
        },
        "files": media,
        "holds": index.holds().map_err(QueryError::from)?.iter()
            .filter(|h| case.items.iter().any(|it| it.holds.contains(&h.id)))
            .map(|h| serde_json::json!({ "id": h.id, "camera": cams.name(h.camera_id), "start": rfc3339(h.start_us), "end": rfc3339(h.end_us), "reason": h.reason, "user": h.user }))
            .collect::<Vec<_>>(),
        "custody_head": custody_head,
        "audit_head": head.trim(),
        "site_ca_sha256": ca_sha,
    });
    let manifest_value = manifest;
    let manifest = serde_json_canonicalizer::to_vec(&manifest_value)
        .map_err(|e| PackageError::Refused(e.to_string()))?;
    write("case.json", &manifest)?;
    write(
        "case.json.p7s",
        &cms::sign_detached(
            &manifest,
            &keys.key,
            &keys.recorder,
            std::slice::from_ref(&keys.ca),
        )?,
    )?;

    // The report quotes the manifest's hash: written after it, covered by SHA256SUMS.
    let mut by_time = events_out.clone();
    by_time.sort_by_key(|e| (e.start_ms, e.id));
    let thumbnail = |id: u64| index.thumbnail(id).ok().flatten().map(|b| b.to_vec());
    let pdf = super::report::render(&super::report::ReportInput {
        manifest: &manifest_value,
        manifest_sha256: &hex::encode(Sha256::digest(&manifest)),
        events: &by_time,
        thumbnail: &thumbnail,
        verify_text: &verify_txt,
        created_us: now_us,
    })?;
    write("report.pdf", &pdf)?;

    // SHA256SUMS: every file but itself and the custody chain, sorted.
    let mut files = Vec::new();
    walk(out, out, &mut files).map_err(io(out))?;
    files.retain(|f| f != "SHA256SUMS" && f != "SHA256SUMS.p7s" && f != "custody.jsonl");
    files.sort();
    let mut sums = String::new();
    for f in &files {
        let (sha, _) = sha256_file(&out.join(f))?;
        sums.push_str(&format!("{sha}  {f}\n"));
    }
    write("SHA256SUMS", sums.as_bytes())?;
    // Signed too, so that openssl and sha256sum alone cover every file (the manifest
    // names the media; this names everything).
    write(
        "SHA256SUMS.p7s",
        &cms::sign_detached(
            sums.as_bytes(),
            &keys.key,
            &keys.recorder,
            std::slice::from_ref(&keys.ca),
        )?,
    )?;
    Ok(Exported {
        package_id,
        dir: out.to_owned(),
        files: files.len() + 2,
        media_bytes: media.iter().map(|m| m.bytes).sum(),
        manifest_sha256: hex::encode(Sha256::digest(&manifest)),
    })
}

/// The package id the manifest in `dir` names (`null` if it cannot be read).
pub fn package_id_of(dir: &Path) -> serde_json::Value {
    std::fs::read(dir.join("case.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|m| m["package_id"].clone())
        .unwrap_or_default()
}

/// Every file under `dir`, as paths relative to `root` with `/`.
pub fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            walk(root, &e.path(), out)?;
        } else {
            out.push(
                e.path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
    Ok(())
}

fn verify_text(ca_sha: &str, rec_sha: &str) -> String {
    format!(
        "How to verify this evidence package ({FORMAT})\n\
         ================================================\n\n\
         Compare the site CA's fingerprint with the one in the site's acceptance record:\n\n\
         \x20   openssl x509 -in certs/site-ca.pem -noout -fingerprint -sha256\n\
         \x20   (the CA in this package has {ca_sha}: the record's must be the same)\n\n\
         1. Every file is as exported (all but custody.jsonl, which grows with each hand-over),\n\
         \x20  and the list of them is signed by the recorder, under the site CA:\n\n\
         \x20   openssl cms -verify -binary -inform DER -in SHA256SUMS.p7s -content SHA256SUMS \\\n\
         \x20       -CAfile certs/site-ca.pem -out /dev/null\n\
         \x20   sha256sum -c SHA256SUMS\n\n\
         \x20  (Signatures are checked at the time they were made: after the recorder certificate\n\
         \x20  expires, add `-attime` with the signing time, as `openssl cms -cmsout -print` shows it.)\n\n\
         2. The manifest is signed by the recorder, under the site CA:\n\n\
         \x20   openssl cms -verify -binary -inform DER -in case.json.p7s -content case.json \\\n\
         \x20       -CAfile certs/site-ca.pem -out /dev/null\n\n\
         3. Each video file carries an ONVIF Export File Format seal (RSASSA-PSS over the file),\n\
         \x20  signed by the recorder certificate (SHA-256 fingerprint {rec_sha}); any\n\
         \x20  ONVIF-conformant export player verifies it.\n\n\
         4. Everything above, plus the seals, the custody chain and the times in the manifest,\n\
         \x20  offline, without the recorder:\n\n\
         \x20   vigil evidence verify .\n\n\
         The manifest (case.json, canonical JSON as RFC 8785 defines) lists each file's\n\
         SHA-256, the camera, the requested and the actual times of the first and last frame,\n\
         the gaps in the recording, and the recording-time SHA-256 of the segments it was\n\
         remuxed from (never re-encoded).\n"
    )
}
