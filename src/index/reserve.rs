//! The index's disk reserve: space kept allocated in a file beside the store, released
//! when the store meets a full disk (so that it can reopen and record deletions) and taken
//! again once retention has made room.

use std::path::{Path, PathBuf};

use super::Index;

/// The reserve file of the index at `index`: a sibling, so on the same filesystem.
pub fn reserve_path(index: &Path) -> PathBuf {
    let mut p = index.as_os_str().to_owned();
    p.push(".reserve");
    PathBuf::from(p)
}

/// Space kept allocated in a file so that the index has room after the disk fills.
///
/// Allocated with `posix_fallocate` (a sparse file would reserve nothing).
pub(super) struct Reserve {
    path: PathBuf,
    pub(super) bytes: u64,
    pub(super) held: bool,
}

impl Reserve {
    pub(super) fn new(path: PathBuf, bytes: u64) -> Reserve {
        Reserve {
            path,
            bytes,
            held: false,
        }
    }

    pub(super) fn take(&mut self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&self.path)?;
        // SAFETY: a valid open file descriptor; offsets are in range for off_t.
        let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, self.bytes as libc::off_t) };
        if rc != 0 {
            let e = std::io::Error::from_raw_os_error(rc);
            drop(f);
            let _ = std::fs::remove_file(&self.path);
            return Err(e);
        }
        f.sync_all()?;
        self.held = true;
        Ok(())
    }

    pub(super) fn release(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.held = false;
    }
}

impl Index {
    /// Keeps `bytes` of the index's filesystem allocated in a file beside it, released
    /// when the store meets a full disk (so that it can reopen and record deletions) and
    /// taken again by [`Index::restore_reserve`]. No-op for a temporary index.
    pub fn set_reserve(&self, bytes: u64) -> std::io::Result<()> {
        let Some(path) = &self.shared.path else {
            return Ok(());
        };
        let r = Reserve::new(reserve_path(path), bytes);
        let mut g = self.shared.reserve.lock().unwrap();
        let r = g.insert(r);
        r.take()
    }

    /// Allocates the reserve again if it was released and `free` bytes (of the
    /// filesystem, reserve not counted) allow; true if it is in place.
    pub fn restore_reserve(&self) -> bool {
        match self.shared.reserve.lock().unwrap().as_mut() {
            Some(r) => r.held || r.take().is_ok(),
            None => true,
        }
    }

    /// Whether the reserve is allocated now.
    pub fn reserve_held(&self) -> bool {
        self.shared
            .reserve
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|r| r.held)
    }

    /// The reserve's size in bytes (0 without one).
    pub fn reserve_bytes(&self) -> u64 {
        self.shared
            .reserve
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |r| r.bytes)
    }

    /// Frees the reserve's space (the store met, or is about to meet, a full disk).
    pub fn release_reserve(&self) {
        if let Some(r) = self.shared.reserve.lock().unwrap().as_mut()
            && r.held
        {
            r.release();
            tracing::warn!("disk full: index reserve of {} bytes released", r.bytes);
        }
    }
}
