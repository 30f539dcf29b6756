//! Recovery: reconciling the index with the segment files on disk.
//!
//! Used at daemon start (fix what a crash leaves: open segments, garbage, missing files,
//! orphan files) and by `vigil check` (report every inconsistency; with `--repair`, fix
//! them all). Orphans are segment files no index entry points at (a crash between
//! creating a segment and its first index commit): those that play are adopted (indexed
//! from what the file says), unless they overlap what the index has; the rest are moved
//! to `lost+found/`, never deleted.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{fmp4, integrity};
use crate::index::{EndReason, Index, Keyframe, Op, SegmentRecord};
use crate::storage::Layout;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Report only; change nothing.
    Report,
    /// What the daemon does at start: everything `Repair` does.
    Startup,
    /// Repair open segments, finish deletions, forget entries whose file is gone, adopt
    /// orphans that play and move the rest to `lost+found/`.
    Repair,
}

#[derive(Debug, Default)]
pub struct Report {
    pub segments_checked: u64,
    /// Human-readable problems found (and, unless in Report mode, what was done).
    pub problems: Vec<String>,
    pub orphans: Vec<String>,
    /// Bytes cut from the tails of interrupted segments.
    pub truncated_bytes: u64,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.orphans.is_empty()
    }
}

/// Reconciles `index` with the segment files of `storage`: (1) finishes interrupted
/// deletions, (2) checks every indexed segment against its file (interrupted tails cut,
/// missing files forgotten), (3) adopts or sets aside files no entry points at. In
/// [`Mode::Report`] nothing changes and the report says what would be done. Errors: the
/// index or the filesystem refused a change.
pub fn reconcile(index: &Index, storage: &Layout, mode: Mode) -> anyhow::Result<Report> {
    let mut rep = Report::default();
    let fix = mode != Mode::Report;
    finish_deletions(index, storage, fix, &mut rep)?;
    let indexed = check_indexed(index, storage, fix, &mut rep)?;
    adopt_orphans(index, storage, &indexed, fix, &mut rep)?;
    if fix {
        rep.orphans.clear();
    }
    index.flush()?;
    Ok(rep)
}

/// Step 1: unfinished deletions (listed in `garbage`).
fn finish_deletions(
    index: &Index,
    storage: &Layout,
    fix: bool,
    rep: &mut Report,
) -> anyhow::Result<()> {
    for g in index.garbage()? {
        let still_indexed = index.all_segments().any(|r| r.is_ok_and(|r| r.file == g));
        if still_indexed {
            rep.problems
                .push(format!("{g}: listed for deletion but still indexed"));
            if fix {
                index.apply(&[Op::ForgetGarbage(g)])?;
            }
            continue;
        }
        rep.problems.push(format!("{g}: deletion was interrupted"));
        if fix {
            match std::fs::remove_file(storage.segment(&g)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => anyhow::bail!("cannot delete {g}: {e}"),
            }
            index.apply(&[Op::ForgetGarbage(g)])?;
        }
    }
    Ok(())
}

/// Step 2: every indexed segment against its file; returns the files the index names.
fn check_indexed(
    index: &Index,
    storage: &Layout,
    fix: bool,
    rep: &mut Report,
) -> anyhow::Result<HashSet<String>> {
    let mut indexed = HashSet::new();
    let records: Vec<SegmentRecord> = index.all_segments().collect::<Result<_, _>>()?;
    let mut ops = Vec::new();
    for r in records {
        rep.segments_checked += 1;
        indexed.insert(r.file.clone());
        let path = storage.segment(&r.file);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(_) => {
                rep.problems.push(format!(
                    "{}: indexed but the file is gone{}",
                    r.file,
                    if fix { "; entry dropped" } else { "" }
                ));
                ops.extend(Op::forget(&r));
                continue;
            }
        };
        if !r.is_open() && len == r.bytes {
            continue;
        }
        let what = if r.is_open() {
            "was being written when the daemon stopped".to_string()
        } else if len < r.bytes {
            format!("file has {len} bytes, index says {}", r.bytes)
        } else {
            format!(
                "file has {len} bytes, index says {}: tail past the index",
                r.bytes
            )
        };
        match rebuild(&path, Some(&r))? {
            Some(new) => {
                rep.truncated_bytes += len - new.bytes;
                rep.problems.push(format!(
                    "{}: {what}; indexed {} frames ({} bytes) that play, cut {} bytes",
                    r.file,
                    new.frames,
                    new.bytes,
                    len - new.bytes
                ));
                if fix {
                    let mut new = new;
                    let f = truncate_and_finish(&path, &new)?;
                    // An interrupted segment is hashed now (`Recovered` says when); a
                    // closed one keeps the hash taken when it closed, the reference a
                    // changed file is found against (`vigil check --verify-hashes`).
                    new.sha256 = if r.is_open() {
                        Some(integrity::file_sha256(&f, new.bytes)?)
                    } else {
                        r.sha256
                    };
                    ops.push(Op::PutSegment(new));
                }
            }
            None => {
                rep.problems
                    .push(format!("{}: {what}; nothing playable, removed", r.file));
                if fix {
                    std::fs::remove_file(&path)?;
                    ops.extend(Op::forget(&r));
                }
            }
        }
    }
    if fix && !ops.is_empty() {
        index.commit(&ops)?;
    }
    Ok(indexed)
}

/// Step 3: files no index entry points at are adopted if they play and overlap nothing
/// indexed, else moved to `lost+found/` (never deleted).
fn adopt_orphans(
    index: &Index,
    storage: &Layout,
    indexed: &HashSet<String>,
    fix: bool,
    rep: &mut Report,
) -> anyhow::Result<()> {
    let cameras: std::collections::HashMap<String, u32> = index.cameras()?.into_iter().collect();
    for f in crate::storage::segment_files(storage.dir())? {
        if indexed.contains(&f) {
            continue;
        }
        rep.orphans.push(f.clone());
        if !fix {
            continue;
        }
        let path = storage.segment(&f);
        let mut adopted = adopt(&path, &f, &cameras)?;
        let mut why = "does not play";
        if let Some(rec) = &adopted {
            if let Some(existing) = index.get_segment(rec.camera_id, rec.start_us)? {
                // Same camera and start as an indexed segment (a copy, a restored backup):
                // never replace what the index has.
                rep.problems
                    .push(format!("{f}: duplicates indexed segment {}", existing.file));
                adopted = None;
                why = "duplicates an indexed segment";
            } else if let Some(other) = index
                .segments_overlapping(rec.camera_id, rec.start_us, rec.end_us)?
                .first()
            {
                // A camera's segments never overlap (ARCHITECTURE.md, invariants).
                rep.problems
                    .push(format!("{f}: overlaps indexed segment {}", other.file));
                adopted = None;
                why = "overlaps an indexed segment";
            }
        }
        match adopted {
            Some(mut rec) => {
                let file = truncate_and_finish(&path, &rec)?;
                rec.sha256 = Some(integrity::file_sha256(&file, rec.bytes)?);
                rep.problems
                    .push(format!("{f}: orphan file adopted ({} frames)", rec.frames));
                index.commit(&[Op::PutSegment(rec)])?;
            }
            None => {
                let dest = storage.lost_found_for(&f);
                std::fs::create_dir_all(dest.parent().unwrap())?;
                std::fs::rename(&path, &dest)?;
                rep.problems
                    .push(format!("{f}: orphan file {why}; moved to lost+found/"));
            }
        }
    }
    Ok(())
}

/// Scans a segment file and returns the record of its playable prefix (None if there is
/// no playable frame). `base` supplies identity fields when the index knows the segment.
pub fn rebuild(path: &Path, base: Option<&SegmentRecord>) -> anyhow::Result<Option<SegmentRecord>> {
    rebuild_from(&mut std::fs::File::open(path)?, base)
}

/// [`rebuild`] from any reader of a segment's bytes.
pub fn rebuild_from<R: std::io::Read + std::io::Seek>(
    r: &mut R,
    base: Option<&SegmentRecord>,
) -> anyhow::Result<Option<SegmentRecord>> {
    let scan = fmp4::scan(r)?;
    if scan.fragments.is_empty() {
        return Ok(None);
    }
    let (codec, w, h) = entry_info(&scan.sample_entry);
    let start_us = match base {
        Some(b) => b.start_us,
        None => match scan.fragments[0].utc_us {
            Some(u) => u,
            None => return Ok(None),
        },
    };
    let mut keyframes = Vec::new();
    for fr in &scan.fragments {
        if fr.samples.first().is_some_and(|s| s.is_key) {
            keyframes.push(Keyframe {
                t_90k: fr.base_decode_time,
                offset: fr.offset,
            });
        }
    }
    let duration_90k = scan.duration_90k();
    Ok(Some(SegmentRecord {
        camera_id: base.map(|b| b.camera_id).unwrap_or(0),
        file: base.map(|b| b.file.clone()).unwrap_or_default(),
        start_us,
        end_us: start_us + duration_90k as i64 * 100 / 9,
        duration_90k,
        bytes: scan.valid_len,
        frames: scan.frames() as u32,
        init_len: scan.init_len as u32,
        mehd_offset: scan.mehd_duration_offset.unwrap_or(0) as u32,
        keyframes,
        codec: base.map(|b| b.codec.clone()).unwrap_or(codec),
        width: base.map(|b| b.width).unwrap_or(w),
        height: base.map(|b| b.height).unwrap_or(h),
        end_reason: match base.map(|b| b.end_reason) {
            Some(EndReason::Open) | None => EndReason::Recovered,
            Some(other) => other,
        },
        run: base.map(|b| b.run).unwrap_or(0),
        // Set by the caller once the file is repaired.
        sha256: None,
    }))
}

fn adopt(
    path: &Path,
    rel: &str,
    cameras: &std::collections::HashMap<String, u32>,
) -> anyhow::Result<Option<SegmentRecord>> {
    let camera = rel.split('/').next().unwrap_or("");
    let Some(&id) = cameras.get(camera) else {
        return Ok(None);
    };
    let Some(mut rec) = rebuild(path, None)? else {
        return Ok(None);
    };
    rec.camera_id = id;
    rec.file = rel.to_owned();
    Ok(Some(rec))
}

/// Cuts the file to the record's length and writes its duration into `mehd`; fsyncs.
/// Returns the file, for its SHA-256.
fn truncate_and_finish(path: &Path, r: &SegmentRecord) -> anyhow::Result<std::fs::File> {
    let f = OpenOptions::new().read(true).write(true).open(path)?;
    f.set_len(r.bytes)?;
    if r.mehd_offset > 0 {
        f.write_all_at(&r.duration_90k.to_be_bytes(), r.mehd_offset as u64)?;
    }
    f.sync_all()?;
    Ok(f)
}

/// Codec string, width and height from an `avc1`/`hvc1` sample entry.
fn entry_info(entry: &[u8]) -> (String, u16, u16) {
    let fourcc = entry.get(4..8).unwrap_or(b"????");
    let w = entry
        .get(32..34)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .unwrap_or(0);
    let h = entry
        .get(34..36)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .unwrap_or(0);
    // avcC follows the 86-byte VisualSampleEntry; bytes 1..4 of its body are
    // profile, compatibility and level: the RFC 6381 "avc1.PPCCLL" string.
    let codec = if fourcc == b"avc1" {
        match entry.get(86 + 8..86 + 8 + 4) {
            Some(b) => format!("avc1.{:02X}{:02X}{:02X}", b[1], b[2], b[3]),
            None => "avc1".into(),
        }
    } else {
        String::from_utf8_lossy(fourcc).into_owned()
    };
    (codec, w, h)
}
