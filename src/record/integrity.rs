//! Segment integrity: each segment file's SHA-256, taken when the segment closes (by its
//! writer, over the bytes it has just made durable) or when recovery finishes one a crash
//! interrupted, and kept in its index record; and the check that finds any file whose
//! bytes changed since (`vigil check --verify-hashes`).
//!
//! The digest is of the whole file, exactly what `sha256sum` reads, so that anyone can
//! compare a segment with its record without Vigil. It is taken at close rather than as
//! the fragments are written because closing patches the `mehd` duration near the
//! start of the file; reading the file back then comes from the page cache (measured in
//! `benches/record.rs`: "segment close with SHA-256").

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::index::{Index, SegmentRecord};
use crate::storage::Layout;

/// SHA-256 of the first `len` bytes of `file` (read with positioned reads: the file's
/// cursor is not moved). Errors: the file is shorter than `len`, or a read failed.
pub fn file_sha256(file: &File, len: u64) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let want = ((len - at) as usize).min(buf.len());
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ends at {at} bytes, {len} expected"),
            ));
        }
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(h.finalize().into())
}

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct HashReport {
    /// Segments whose file matched its record-time SHA-256.
    pub intact: u64,
    /// Segments without one: still open, or recorded before hashes were kept.
    pub unhashed: u64,
    /// `(file, why)` for each segment whose file no longer matches: its bytes changed,
    /// its length changed, or it cannot be read.
    pub changed: Vec<(String, String)>,
}

/// Checks every closed, hashed segment's file against its record: same length, same
/// SHA-256. Errors: the index cannot be read (a file that cannot be read is a finding,
/// not an error).
pub fn verify(index: &Index, storage: &Layout) -> crate::index::Result<HashReport> {
    let mut rep = HashReport::default();
    for r in index.all_segments() {
        let r: SegmentRecord = r?;
        let Some(want) = r.sha256.filter(|_| !r.is_open()) else {
            rep.unhashed += 1;
            continue;
        };
        match check_one(&storage.segment(&r.file), &r, &want) {
            Ok(()) => rep.intact += 1,
            Err(why) => rep.changed.push((r.file.clone(), why)),
        }
    }
    Ok(rep)
}

fn check_one(path: &Path, r: &SegmentRecord, want: &[u8; 32]) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let len = f
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    if len != r.bytes {
        return Err(format!("has {len} bytes, {} when recorded", r.bytes));
    }
    let got = file_sha256(&f, len).map_err(|e| format!("cannot be read: {e}"))?;
    if &got != want {
        return Err(format!(
            "SHA-256 {} differs from {} when recorded: its bytes changed",
            hex::encode(got),
            hex::encode(want)
        ));
    }
    Ok(())
}
