//! An evidence package as one ZIP file: written stored (no compression, ZIP64, entries
//! dated by their files, in path order), read back also when a receiver re-zipped it
//! with deflate or zipped its folder; entries that would leave the folder are refused.

use std::path::{Path, PathBuf};

use super::package::{PackageError, io, walk};

/// Where the package is in an extracted ZIP `dir`: `dir` itself, or the one folder in it
/// that holds `case.json` (a ZIP of the package's folder rather than of its contents).
pub fn package_root(dir: &Path) -> PathBuf {
    if dir.join("case.json").is_file() {
        return dir.to_owned();
    }
    let entries: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    match entries.as_slice() {
        [only] if only.join("case.json").is_file() => only.clone(),
        _ => dir.to_owned(),
    }
}

/// Writes the package folder `dir` as the new ZIP file `out`: every file stored (not
/// compressed: video does not compress, and a stored entry's bytes are the file's),
/// ZIP64 so that files over 4 GiB fit, in path order.
pub fn zip_dir(dir: &Path, out: &Path) -> Result<(), PackageError> {
    let f = std::fs::File::create_new(out).map_err(io(out))?;
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut files = Vec::new();
    walk(dir, dir, &mut files).map_err(io(dir))?;
    files.sort();
    let zerr = |e: zip::result::ZipError| PackageError::Io {
        path: out.to_owned(),
        err: std::io::Error::other(e),
    };
    for rel in files {
        let p = dir.join(&rel);
        // Each entry dated by its file (UTC; ZIP keeps local time without a zone and
        // even seconds), not the format's default of 1980.
        let opts = match std::fs::metadata(&p).and_then(|m| m.modified()) {
            Ok(t) => zip_time(t).map_or(opts, |d| opts.last_modified_time(d)),
            Err(_) => opts,
        };
        z.start_file(rel.as_str(), opts).map_err(zerr)?;
        std::io::copy(&mut std::fs::File::open(&p).map_err(io(&p))?, &mut z).map_err(io(out))?;
    }
    z.finish().map_err(zerr)?.sync_all().map_err(io(out))
}

fn zip_time(t: std::time::SystemTime) -> Option<zip::DateTime> {
    let z = jiff::Timestamp::try_from(t)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC);
    zip::DateTime::from_date_and_time(
        u16::try_from(z.year()).ok()?,
        z.month() as u8,
        z.day() as u8,
        z.hour() as u8,
        z.minute() as u8,
        z.second() as u8,
    )
    .ok()
}

/// Extracts the package ZIP `zip` into the new folder `dest`. Entries whose names would
/// leave the folder (`..`, absolute paths) are refused.
pub fn unzip(zip: &Path, dest: &Path) -> Result<(), PackageError> {
    let zerr = |e: zip::result::ZipError| PackageError::Io {
        path: zip.to_owned(),
        err: std::io::Error::other(e),
    };
    let mut a = zip::ZipArchive::new(std::fs::File::open(zip).map_err(io(zip))?).map_err(zerr)?;
    for i in 0..a.len() {
        let mut f = a.by_index(i).map_err(zerr)?;
        let Some(rel) = f.enclosed_name() else {
            return Err(PackageError::Refused(format!(
                "{}: entry {:?} would leave the package",
                zip.display(),
                String::from_utf8_lossy(f.name_raw())
            )));
        };
        let p = dest.join(rel);
        if f.is_dir() {
            std::fs::create_dir_all(&p).map_err(io(&p))?;
            continue;
        }
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        let mut o = std::fs::File::create_new(&p).map_err(io(&p))?;
        std::io::copy(&mut f, &mut o).map_err(io(&p))?;
    }
    Ok(())
}
