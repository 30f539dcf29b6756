//! Recording: segment files (fragmented MP4), the per-camera writer threads, the committer
//! that indexes their progress and applies retention, and crash recovery.
//!
//! [`open_index`] and [`start`] are how the daemon (and the benchmarks) start it: the index
//! opened even on a full disk, start-up recovery, the committer thread, then one writer
//! per camera ([`Recording::start_writer`]); [`Recording::stop`] finishes every open
//! segment and the last commit.

pub mod committer;
pub mod fmp4;
pub mod integrity;
pub mod recovery;
pub mod writer;

use std::sync::mpsc::{Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use crate::config::StorageConfig;
use crate::index::Index;
use crate::media::StreamMsg;
use crate::status::SharedStatus;
use crate::storage::Layout;
use committer::{Committer, RetentionPolicy};
use writer::{CommitMsg, SegmentWriter, WriterConfig};

/// Frames a writer may have queued before ingest starts dropping (about 30 s at 15 fps).
pub const WRITER_QUEUE: usize = 512;

/// Opens the index of `storage`. If the disk filled while the daemon was down, the index's
/// reserve is released so that it opens (the reserve is there for this; see `index`).
pub fn open_index(storage: &Layout) -> anyhow::Result<Index> {
    let path = storage.index();
    match Index::open(&path) {
        Err(e) if e.is_disk_full() && storage.index_reserve().exists() => {
            tracing::warn!("disk full at start-up: releasing the index reserve");
            let _ = std::fs::remove_file(storage.index_reserve());
            Index::open(&path)
                .with_context(|| format!("cannot open index in {}", storage.dir().display()))
        }
        Err(e) if e.is_locked() => anyhow::bail!(
            "the index in {} is locked: another Vigil daemon (or a `vigil check`) is using \
             this storage directory",
            storage.dir().display()
        ),
        r => r.with_context(|| format!("cannot open index in {}", storage.dir().display())),
    }
}

/// Recording as it runs: the committer thread and the writers started so far.
pub struct Recording {
    index: Index,
    status: SharedStatus,
    storage: Layout,
    segment_seconds: u32,
    commit_interval: Duration,
    commit_tx: Sender<CommitMsg>,
    committer: JoinHandle<()>,
    writers: Vec<(SyncSender<StreamMsg>, JoinHandle<()>)>,
}

/// Starts recording into `storage` (configured by `cfg`): sizes the index's disk reserve
/// and the free-space floor from the filesystem, reconciles index and files (start-up
/// recovery, retried while the index is reopening after a full disk), makes room
/// (retention) before anything writes, and starts the committer thread. Errors: recovery
/// failed for good, or the committer could not read the index.
pub fn start(
    cfg: &StorageConfig,
    storage: &Layout,
    index: &Index,
    status: &SharedStatus,
) -> anyhow::Result<Recording> {
    let dir = storage.dir();
    // Free space and the index's reserve (see `index::Index`): sized from the filesystem.
    let fs = crate::storage::fs_bytes(dir).unwrap_or(0);
    let min_free = Some(
        cfg.min_free
            .unwrap_or_else(|| committer::default_min_free(fs)),
    );
    let reserve = committer::default_index_reserve(fs);
    if let Err(e) = index.set_reserve(reserve) {
        // A full disk at start-up: retention makes room and the committer retries.
        tracing::warn!("index reserve of {reserve} bytes not allocated yet: {e}");
    }
    startup_recovery(index, storage, status)?;
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<CommitMsg>();
    let mut committer = Committer::new(
        index.clone(),
        status.clone(),
        RetentionPolicy {
            storage: storage.clone(),
            retain_days: cfg.retain_days,
            max_bytes: cfg.max_bytes,
            min_free,
        },
        Duration::from_millis(cfg.commit_interval_ms as u64 / 2),
    )?;
    // Make room before anything else writes (the audit log, the cameras): the disk may
    // have filled while the daemon was down.
    if let Err(e) = committer.retention(crate::base::time::now_us()) {
        tracing::error!("retention at start-up: {e}");
    }
    let committer = std::thread::Builder::new()
        .name("committer".into())
        .spawn(move || committer.run(commit_rx))?;
    Ok(Recording {
        index: index.clone(),
        status: status.clone(),
        storage: storage.clone(),
        segment_seconds: cfg.segment_seconds,
        commit_interval: Duration::from_millis(cfg.commit_interval_ms as u64),
        commit_tx,
        committer,
        writers: Vec::new(),
    })
}

/// Reconciles index and files before anything records. Recovery writes to the index; on
/// a full disk the index releases its reserve and reopens (see `index::Index`), so a
/// second try has room.
fn startup_recovery(index: &Index, storage: &Layout, status: &SharedStatus) -> anyhow::Result<()> {
    let mut tries = 0;
    let report = loop {
        match recovery::reconcile(index, storage, recovery::Mode::Startup) {
            Ok(r) => break r,
            Err(e) if tries < 5 && is_index_retryable(&e) => {
                tries += 1;
                tracing::warn!("recovery: {e:#}; retrying");
                std::thread::sleep(crate::index::REOPEN_EVERY);
            }
            Err(e) => return Err(e),
        }
    };
    for p in &report.problems {
        tracing::warn!("recovery: {p}");
    }
    status.storage(|s| s.startup_recovery = report.problems.iter().take(100).cloned().collect());
    // In case a crash kept an event's record but not its index entries (best effort: on
    // a full disk this waits for the next start).
    if let Err(e) = index.reindex_newest_events() {
        tracing::warn!("re-adding the newest events' index entries: {e}");
    }
    Ok(())
}

/// Whether an error is the index meeting a full disk or reopening after an error.
fn is_index_retryable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<crate::index::IndexError>()
            .is_some_and(|e| {
                e.is_disk_full() || matches!(e, crate::index::IndexError::Unavailable(_))
            })
    })
}

impl Recording {
    /// A writer for `camera` that commits through this recording's committer, for the
    /// caller to drive (`SegmentWriter::handle`) or run on a thread of its own.
    pub fn writer(&self, camera: &str) -> anyhow::Result<SegmentWriter> {
        let camera_id = self
            .index
            .camera_id(camera)
            .with_context(|| format!("camera {camera}: no id in the index"))?;
        Ok(SegmentWriter::new(
            WriterConfig {
                camera: camera.to_owned(),
                camera_id,
                storage: self.storage.clone(),
                segment_seconds: self.segment_seconds,
                commit_interval: self.commit_interval,
            },
            self.commit_tx.clone(),
            self.status.clone(),
        ))
    }

    /// Starts `camera`'s writer thread; returns the queue ingest feeds (as a sink of kind
    /// `Recording`, [`WRITER_QUEUE`] frames deep).
    pub fn start_writer(&mut self, camera: &str) -> anyhow::Result<SyncSender<StreamMsg>> {
        let w = self.writer(camera)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<StreamMsg>(WRITER_QUEUE);
        let thread = std::thread::Builder::new()
            .name(format!("writer-{camera}"))
            .spawn(move || w.run(rx))?;
        self.writers.push((tx.clone(), thread));
        Ok(tx)
    }

    /// Stops recording (blocking): every writer finishes its open segment, then the
    /// committer makes its last commit. Call once ingest has stopped.
    pub fn stop(self) {
        for (tx, _) in &self.writers {
            // Blocking send: the writer must see Shutdown even if its queue is full.
            let _ = tx.send(StreamMsg::Shutdown);
        }
        for (_, h) in self.writers {
            let _ = h.join();
        }
        let _ = self.commit_tx.send(CommitMsg::Shutdown);
        let _ = self.committer.join();
    }
}
