//! The storage directory's layout: where the index, the segment files, `lost+found/`,
//! the audit log and the user and session files live, and how segment files are named.
//! Everything else asks [`Layout`] for a path instead of joining names itself, so that a
//! second storage tier (object storage) can later answer behind the same calls.
//!
//! ```text
//! <dir>/index.sled/             the index (sled), and index.sled.reserve beside it
//! <dir>/<camera>/<YYYY-MM-DD>/<YYYYMMDDTHHMMSS.ffffffZ>.mp4   a segment (UTC start)
//! <dir>/lost+found/             files recovery would not index (never deleted)
//! <dir>/audit.log, audit.head   the audit log and its head
//! <dir>/auth.json, auth.lock    users and API tokens
//! <dir>/sessions.json           browser sessions (hashed ids)
//! ```

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

/// The layout of one storage directory.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of storage directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }

    /// The storage directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes available to unprivileged writers on the storage filesystem.
    pub fn free_bytes(&self) -> Option<u64> {
        free_bytes(&self.dir)
    }

    /// Removes the segment file at `rel` (relative to the storage directory, as the index
    /// names it) and, if it was the last, its day directory. A file that cannot be removed
    /// is logged; the caller keeps it listed in the index's `garbage`, and start-up retries.
    pub fn unlink_segment(&self, rel: &str) {
        Self::unlink(&self.segment(rel))
    }

    /// [`Layout::unlink_segment`] by full path. A file already gone is no error.
    pub fn unlink(path: &Path) {
        match std::fs::remove_file(path) {
            Ok(()) => {
                if let Some(day) = path.parent() {
                    let _ = std::fs::remove_dir(day); // only succeeds when empty
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot delete {}: {e}", path.display()),
        }
    }

    /// The index (a sled directory).
    pub fn index(&self) -> PathBuf {
        self.dir.join("index.sled")
    }

    /// A segment file from its name relative to the directory (as the index keeps it).
    pub fn segment(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The site's evidence signing keys (`evidence::keys`); the name has a dot, so no
    /// camera's directory can be it.
    pub fn signing_keys(&self) -> PathBuf {
        self.dir.join("signing.keys")
    }

    /// Where the daemon writes exported evidence packages (`POST /api/cases/{id}/export`).
    pub fn evidence_packages(&self) -> PathBuf {
        self.dir.join("evidence.packages")
    }

    /// The index's disk reserve file (beside the index, so on the same filesystem; the
    /// same path as `index::reserve_path(&self.index())`).
    pub fn index_reserve(&self) -> PathBuf {
        self.dir.join("index.sled.reserve")
    }

    /// Where recovery moves the file `rel` (relative to the storage directory) that it
    /// will not index: `lost+found/` with the path flattened (`/` becomes `_`).
    pub fn lost_found_for(&self, rel: &str) -> PathBuf {
        self.lost_found().join(rel.replace('/', "_"))
    }

    /// Where files that recovery will not index are moved.
    pub fn lost_found(&self) -> PathBuf {
        self.dir.join("lost+found")
    }

    /// The audit log (one JSON record per line).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// The audit log's head (sequence and hash of its last record).
    pub fn audit_head(&self) -> PathBuf {
        self.dir.join("audit.head")
    }

    /// Users and API tokens.
    pub fn users(&self) -> PathBuf {
        self.dir.join("auth.json")
    }

    /// The lock taken while `auth.json` is changed.
    pub fn users_lock(&self) -> PathBuf {
        self.dir.join("auth.lock")
    }

    /// Browser sessions.
    pub fn sessions(&self) -> PathBuf {
        self.dir.join("sessions.json")
    }
}

/// The relative name of a new segment of `camera` starting at `utc_us` (µs since the
/// epoch): `<camera>/<YYYY-MM-DD>/<YYYYMMDDTHHMMSS.ffffffZ>.mp4`, in UTC.
pub fn segment_name(camera: &str, utc_us: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(utc_us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{camera}/{:04}-{:02}-{:02}/{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z.mp4",
        t.year(),
        t.month() as u8,
        t.day(),
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The start time (µs since the epoch) in a segment file's stem
/// (`YYYYMMDDTHHMMSS.ffffffZ`, as [`segment_name`] writes it), or `None`.
pub fn parse_segment_stem(stem: &str) -> Option<i64> {
    let b = stem.as_bytes();
    if b.len() != 23 || b[8] != b'T' || b[15] != b'.' || b[22] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| stem.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        num(0..4)? as i32,
        time::Month::try_from(num(4..6)? as u8).ok()?,
        num(6..8)? as u8,
    )
    .ok()?;
    let tod = time::Time::from_hms_micro(
        num(9..11)? as u8,
        num(11..13)? as u8,
        num(13..15)? as u8,
        num(16..22)?,
    )
    .ok()?;
    let t = time::PrimitiveDateTime::new(date, tod).assume_utc();
    Some((t.unix_timestamp_nanos() / 1000) as i64)
}

/// Segment files under `dir`, as names relative to it (`camera/day/name.mp4`), sorted.
/// Camera names are `[a-z0-9_-]`, so `index.sled` and `lost+found` are skipped.
pub fn segment_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let Ok(cams) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for cam in cams {
        let cam = cam?;
        let cam_name = cam.file_name().to_string_lossy().into_owned();
        if !cam.file_type()?.is_dir() || cam_name.contains(['.', '+']) {
            continue;
        }
        for day in std::fs::read_dir(cam.path())? {
            let day = day?;
            if !day.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(day.path())? {
                let f = f?;
                let name = f.file_name().to_string_lossy().into_owned();
                if name.ends_with(".mp4") {
                    out.push(format!(
                        "{cam_name}/{}/{name}",
                        day.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Bytes available to unprivileged writers on the filesystem holding `dir`.
#[allow(clippy::unnecessary_cast)] // the field types are narrower on 32-bit targets
pub fn free_bytes(dir: &Path) -> Option<u64> {
    statvfs(dir).map(|s| s.f_bavail as u64 * s.f_frsize as u64)
}

/// Size of the filesystem holding `dir`, bytes.
#[allow(clippy::unnecessary_cast)] // the field types are narrower on 32-bit targets
pub fn fs_bytes(dir: &Path) -> Option<u64> {
    statvfs(dir).map(|s| s.f_blocks as u64 * s.f_frsize as u64)
}

fn statvfs(dir: &Path) -> Option<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_where_the_index_looks_for_it() {
        let l = Layout::new("/srv/vigil");
        assert_eq!(l.index_reserve(), crate::index::reserve_path(&l.index()));
        assert_eq!(
            l.lost_found_for("cam/2026-11-30/x.mp4"),
            Path::new("/srv/vigil/lost+found/cam_2026-11-30_x.mp4")
        );
    }

    #[test]
    fn segment_names_round_trip_and_sort_by_time() {
        let us = 1_763_842_530_123_456;
        let name = segment_name("door", us);
        assert_eq!(name, "door/2025-11-22/20251122T201530.123456Z.mp4");
        let stem = name.rsplit('/').next().unwrap().trim_end_matches(".mp4");
        assert_eq!(parse_segment_stem(stem), Some(us));
        assert!(segment_name("door", us) < segment_name("door", us + 1));
        for bad in [
            "",
            "20251122T201530.123456",
            "2025112XT201530.123456Z",
            "20251322T201530.123456Z",
        ] {
            assert_eq!(parse_segment_stem(bad), None, "{bad}");
        }
    }

    #[test]
    fn segment_files_lists_segments_only() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(d.path());
        for rel in [segment_name("a", 0), segment_name("b", 1_000_000)] {
            let p = l.segment(&rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        std::fs::create_dir_all(l.index()).unwrap();
        std::fs::create_dir_all(l.lost_found().join("x")).unwrap();
        std::fs::write(l.lost_found().join("x/y.mp4"), b"").unwrap();
        std::fs::write(l.audit_log(), b"").unwrap();
        assert_eq!(
            segment_files(l.dir()).unwrap(),
            vec![segment_name("a", 0), segment_name("b", 1_000_000)]
        );
    }
}
