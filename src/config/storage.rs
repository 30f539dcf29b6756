//! `[storage]`: where recordings go, how long they are kept, segment length and the
//! commit interval.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator, resolve};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    dir: Spanned<String>,
    retain_days: Option<Spanned<f64>>,
    max_bytes: Option<Spanned<String>>,
    min_free: Option<Spanned<String>>,
    segment_seconds: Option<Spanned<i64>>,
    commit_interval_ms: Option<Spanned<i64>>,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub dir: PathBuf,
    pub retain_days: Option<f64>,
    pub max_bytes: Option<u64>,
    /// Keep at least this much free on the storage filesystem (deleting oldest first).
    pub min_free: Option<u64>,
    pub segment_seconds: u32,
    /// How often buffered video is fsynced and committed to the index. Bounds the loss
    /// after a power failure; see ARCHITECTURE.md.
    pub commit_interval_ms: u32,
}

impl StorageConfig {
    /// What a `[storage]` section with only `dir` gives: no age or byte limit, the default
    /// free-space floor (2% of the disk, at most 4 GiB), 60 s segments, commits every 1 s.
    pub fn new(dir: impl Into<PathBuf>) -> StorageConfig {
        StorageConfig {
            dir: dir.into(),
            retain_days: None,
            max_bytes: None,
            min_free: None,
            segment_seconds: 60,
            commit_interval_ms: 1000,
        }
    }

    /// The storage directory's layout: where everything in it lives.
    pub fn layout(&self) -> crate::storage::Layout {
        crate::storage::Layout::new(self.dir.clone())
    }
}

/// Validates `[storage]`; `base` is the config file's directory.
pub(super) fn validate(
    storage: RawStorage,
    base: &Path,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) -> StorageConfig {
    let dir = resolve(base, storage.dir.get_ref());
    if storage.dir.get_ref().is_empty() {
        errs.push(loc.error(storage.dir.span(), "storage.dir is empty".into()));
    } else if let Err(e) = check_storage_dir(&dir) {
        errs.push(loc.error(
            storage.dir.span(),
            format!("storage.dir {}: {e}", dir.display()),
        ));
    }
    let retain_days = storage.retain_days.as_ref().and_then(|d| {
        if !(*d.get_ref() > 0.0 && d.get_ref().is_finite()) {
            errs.push(loc.error(d.span(), "storage.retain_days must be > 0".into()));
            None
        } else {
            Some(*d.get_ref())
        }
    });
    // `min_free = "0"` turns the free-space floor off (the default is 2% of the disk).
    let mut bytes_key = |v: &Option<Spanned<String>>, key: &str| -> Option<u64> {
        let v = v.as_ref()?;
        match v.get_ref().parse::<bytesize::ByteSize>() {
            Ok(b) if b.as_u64() > 0 || key == "min_free" => Some(b.as_u64()),
            Ok(_) => {
                errs.push(loc.error(v.span(), format!("storage.{key} must be > 0")));
                None
            }
            Err(e) => {
                errs.push(loc.error(
                    v.span(),
                    format!("storage.{key}: {e} (expected e.g. \"500 GiB\" or \"2 TiB\")"),
                ));
                None
            }
        }
    };
    let max_bytes = bytes_key(&storage.max_bytes, "max_bytes");
    let min_free = bytes_key(&storage.min_free, "min_free");
    let segment_seconds = match &storage.segment_seconds {
        None => 60,
        Some(s) if (1..=3600).contains(s.get_ref()) => *s.get_ref() as u32,
        Some(s) => {
            errs.push(loc.error(s.span(), "storage.segment_seconds must be 1..=3600".into()));
            60
        }
    };
    let commit_interval_ms = match &storage.commit_interval_ms {
        None => 1000,
        Some(s) if (50..=10_000).contains(s.get_ref()) => *s.get_ref() as u32,
        Some(s) => {
            errs.push(loc.error(
                s.span(),
                "storage.commit_interval_ms must be 50..=10000".into(),
            ));
            1000
        }
    };
    StorageConfig {
        dir,
        retain_days,
        max_bytes,
        min_free,
        segment_seconds,
        commit_interval_ms,
    }
}

/// The storage dir must exist and be writable, or be creatable (its nearest existing
/// ancestor is a writable directory).
fn check_storage_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err("exists but is not a directory".into()),
        Ok(_) => probe_writable(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut anc = dir.parent();
            while let Some(a) = anc {
                if a.as_os_str().is_empty() {
                    return probe_writable(Path::new("."));
                }
                if a.exists() {
                    return if a.is_dir() {
                        probe_writable(a)
                            .map_err(|e| format!("does not exist and cannot be created: {e}"))
                    } else {
                        Err(format!("{} is not a directory", a.display()))
                    };
                }
                anc = a.parent();
            }
            Err("does not exist".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn probe_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".vigil-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("not writable ({e})")),
    }
}
