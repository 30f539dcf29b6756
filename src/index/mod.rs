//! The recording index: sled trees, their key layouts and value encodings.
//!
//! Everything that touches sled lives here, so the store could be swapped. Keys are
//! big-endian so that sled's byte order is time order; values are postcard-encoded
//! structs. The layout is documented in ARCHITECTURE.md ("Index") and guarded by
//! [`SCHEMA_VERSION`].
//!
//! Durability: writers call [`Index::commit`], which applies a batch and then flushes
//! sled's log (fsync). Callers must have fsynced the segment bytes a record describes
//! before committing it, so the index never points at bytes that are not on disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

mod bookmarks;
mod cases;
mod events;
mod holds;
mod leases;
mod reserve;
mod segments;
pub use bookmarks::Bookmark;
pub use cases::{Case, CaseItem, ItemSource};
pub use events::{Ack, EventEntry, EventRecord, EventScope, MotionMinute, MotionSecond};
pub use holds::Hold;
pub use leases::{Lease, SegmentKey};
use reserve::Reserve;
pub use reserve::reserve_path;
pub use segments::{EndReason, Keyframe, SegmentRecord, decode_segment_key, segment_key};

/// The index's schema version. It moves only with a migration in [`MIGRATIONS`] and a
/// test that opens an index of the version before (`tests/index_upgrade.rs`, on the
/// fixture `fixtures/index/`).
/// Schema 2 added `SegmentRecord::sha256`.
pub const SCHEMA_VERSION: u32 = 2;

/// Migration `i` turns schema `i + 1` into `i + 2`.
type Migration = fn(&Trees) -> Result<()>;
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize - 1] = [segments_with_sha256];

/// 1 → 2: every segment record gets `sha256: None` (recorded before hashes were kept).
/// One batch. A schema 1 record never decodes as schema 2 (its `sha256` tag is missing:
/// postcard reports the end of input), so one that does was migrated already (a
/// migration interrupted after its batch, before the version was written) and is kept.
fn segments_with_sha256(t: &Trees) -> Result<()> {
    let mut batch = sled::Batch::default();
    for kv in t.segments.iter() {
        let (k, v) = kv?;
        if postcard::from_bytes::<SegmentRecord>(&v).is_ok() {
            continue;
        }
        let old: segments::SegmentRecordV1 = postcard::from_bytes(&v)?;
        batch.insert(k, postcard::to_stdvec(&SegmentRecord::from(old))?);
    }
    t.segments.apply_batch(batch)?;
    Ok(())
}

const META_SCHEMA: &[u8] = b"schema_version";
const META_CLOCK_STEPS: &[u8] = b"clock_steps";
const META_NEXT_CAMERA: &[u8] = b"next_camera_id";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index store: {0}")]
    Sled(#[from] sled::Error),
    #[error("index record is corrupt: {0}")]
    Decode(#[from] postcard::Error),
    #[error(
        "index schema version {found} is not supported (this build reads version {SCHEMA_VERSION})"
    )]
    Schema { found: u32 },
    #[error("index is corrupt: {0}")]
    Corrupt(String),
    /// The store broke (an I/O error) and is not open again yet; retry later.
    #[error("index unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, IndexError>;

impl IndexError {
    /// Whether the store could not be opened because another process holds it (sled
    /// takes an exclusive lock: a running daemon).
    pub fn is_locked(&self) -> bool {
        matches!(self, IndexError::Sled(sled::Error::Io(e))
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.to_string().contains("could not acquire lock"))
    }

    /// Whether the store failed for lack of disk space.
    pub fn is_disk_full(&self) -> bool {
        match self {
            IndexError::Sled(e) => is_disk_full(e),
            _ => false,
        }
    }
}

/// A step of the system's wall clock seen while recording: `at_us` is the wall clock just
/// after it (UTC µs), `delta_us` how far it moved beyond the time that passed (negative:
/// back), `recorded_until_us` the newest segment end then (recordings up to there were
/// stamped by the clock before the step). Kept in `meta` (key `clock_steps`, postcard `Vec<ClockStep>`, the newest 64) so
/// that retention measures the age of recordings made before a forward step by the time
/// that really passed, also after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStep {
    pub at_us: i64,
    pub delta_us: i64,
    pub recorded_until_us: i64,
}

/// A change to apply in one atomic batch.
#[derive(Debug, Clone)]
pub enum Op {
    PutSegment(SegmentRecord),
    /// Removes a segment and records its file in `garbage` until it is unlinked.
    DeleteSegment {
        camera_id: u32,
        start_us: i64,
        file: String,
    },
    /// The file is gone: forget it.
    ForgetGarbage(String),
}

impl Op {
    /// Removing segment `r` from the index.
    pub fn delete(r: &SegmentRecord) -> Op {
        Op::DeleteSegment {
            camera_id: r.camera_id,
            start_us: r.start_us,
            file: r.file.clone(),
        }
    }

    /// Forgetting segment `r` whose file is already gone: its entry, and its file in
    /// `garbage`.
    pub fn forget(r: &SegmentRecord) -> [Op; 2] {
        [Op::delete(r), Op::ForgetGarbage(r.file.clone())]
    }
}

/// The sled database and its trees: one generation of the store.
pub(crate) struct Trees {
    /// Which generation of the store this is (see [`Epochs`]).
    generation: u64,
    db: sled::Db,
    meta: sled::Tree,
    cameras: sled::Tree,
    segments: sled::Tree,
    garbage: sled::Tree,
    holds: sled::Tree,
    bookmarks: sled::Tree,
    cases: sled::Tree,
    zones: sled::Tree,
    events: sled::Tree,
    ev_time: sled::Tree,
    ev_camera: sled::Tree,
    ev_zone: sled::Tree,
    thumbs: sled::Tree,
    motion: sled::Tree,
    acks: sled::Tree,
}

/// The index: a handle every user shares (clones are cheap and see the same store).
///
/// Recovery from I/O errors: sled remembers the first I/O error it meets (ENOSPC, EIO)
/// and refuses every later write until the process restarts. So when an operation fails
/// with an I/O error, the handle drops that generation of the store and opens the files
/// again (at once if no other thread still holds the old one, else on the next
/// operation, at most every [`REOPEN_EVERY`]); meanwhile operations fail with
/// [`IndexError::Unavailable`]. sled recovers what was flushed; writes that were not
/// flushed are gone, so a writer keeps what it wrote until [`Index::is_durable`] says a
/// flush covered it (see [`Ticket`]), and writes it again otherwise. When the store met
/// a full disk, the [`Reserve`] is released first so that it has room to reopen.
#[derive(Clone)]
pub struct Index {
    shared: Arc<Shared>,
}

struct Shared {
    /// None for a temporary index (which cannot be reopened).
    path: Option<PathBuf>,
    current: RwLock<Option<Arc<Trees>>>,
    reopen: Mutex<ReopenState>,
    epochs: Mutex<Epochs>,
    /// Set when the store met a full disk; taken by [`Index::take_disk_full`].
    disk_full: AtomicBool,
    reopens: AtomicU64,
    reserve: Mutex<Option<Reserve>>,
    /// Segments being read, which retention must not delete yet.
    leases: Arc<Mutex<leases::Table>>,
}

#[derive(Default)]
struct ReopenState {
    last_attempt: Option<Instant>,
    last_error: String,
}

/// Flush bookkeeping: `generation` counts reopens; `next_flush` numbers flushes as they
/// start; `durable` is one past the number of the newest successful flush of this
/// generation.
#[derive(Default)]
struct Epochs {
    generation: u64,
    next_flush: u64,
    durable: u64,
}

/// Proof of a write's place in the store's history, from [`Index::ticket`] taken just
/// after the write: the write is durable once a flush that started after it succeeded
/// in the same generation ([`Index::is_durable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
    epoch: u64,
}

impl Ticket {
    /// A ticket that is never durable: for a write that failed, to be written again.
    pub const REFUSED: Ticket = Ticket {
        generation: u64::MAX,
        epoch: u64::MAX,
    };
}

/// How often a broken store is reopened at most.
pub const REOPEN_EVERY: Duration = Duration::from_millis(200);

impl Index {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Index> {
        let trees = Self::open_trees(path)?;
        Ok(Self::new(Some(path.to_owned()), trees))
    }

    /// A throw-away in-memory index, for tests and benchmarks.
    pub fn temporary() -> Result<Index> {
        let trees = Trees::of(sled::Config::new().temporary(true).open()?)?;
        Ok(Self::new(None, trees))
    }

    fn new(path: Option<PathBuf>, trees: Trees) -> Index {
        Index {
            shared: Arc::new(Shared {
                path,
                current: RwLock::new(Some(Arc::new(trees))),
                reopen: Mutex::new(ReopenState::default()),
                epochs: Mutex::new(Epochs::default()),
                disk_full: AtomicBool::new(false),
                reopens: AtomicU64::new(0),
                reserve: Mutex::new(None),
                leases: Default::default(),
            }),
        }
    }

    /// The store at `path` without the schema check (a test writes a bad version).
    #[cfg(test)]
    fn open_trees_unchecked(path: &Path) -> Trees {
        Trees::open(sled::Config::new().path(path).open().unwrap()).unwrap()
    }

    fn open_trees(path: &Path) -> Result<Trees> {
        // Flushing is explicit (see `commit`); sled's own periodic flush is a backstop.
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(1000))
            .open()?;
        Trees::of(db)
    }

    /// The current generation of the store, reopening it if it broke.
    fn trees(&self) -> Result<Arc<Trees>> {
        if let Some(t) = self.shared.current.read().unwrap().as_ref() {
            return Ok(t.clone());
        }
        self.reopen()
    }

    /// Runs `f` on the current store; an I/O error breaks this generation (see [`Index`]).
    fn with<T>(&self, f: impl FnOnce(&Trees) -> Result<T>) -> Result<T> {
        let t = self.trees()?;
        let r = f(&t);
        if let Err(IndexError::Sled(e)) = &r
            && matches!(e, sled::Error::Io(_) | sled::Error::ReportableBug(_))
        {
            self.broken(t, e);
        }
        r
    }

    /// Drops the generation `t` after an I/O error and tries to open the store again.
    fn broken(&self, t: Arc<Trees>, e: &sled::Error) {
        let Some(path) = &self.shared.path else {
            return;
        };
        // Whoever drops the generation, a full disk is signalled and the reserve freed.
        if is_disk_full(e) {
            self.shared.disk_full.store(true, Ordering::SeqCst);
            self.release_reserve();
        }
        {
            let mut cur = self.shared.current.write().unwrap();
            if !cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, &t)) {
                return; // another thread already dropped it
            }
            *cur = None;
            let mut ep = self.shared.epochs.lock().unwrap();
            ep.generation += 1;
            ep.durable = ep.next_flush;
        }
        drop(t);
        tracing::error!(
            "index at {}: {e}; reopening it (writes since the last flush are written again)",
            path.display()
        );
        let _ = self.reopen();
    }

    /// A reference to the current generation: while it lives, a reopen cannot take
    /// sled's lock, as when another thread is still using the old generation.
    #[cfg(test)]
    pub(crate) fn pin_generation(&self) -> Arc<Trees> {
        self.trees().unwrap()
    }

    /// Drops the current generation as an I/O error would, and reopens.
    #[cfg(test)]
    pub(crate) fn force_reopen(&self) {
        let t = self.trees().unwrap();
        self.shared.reopen.lock().unwrap().last_attempt = None;
        self.broken(t, &sled::Error::Io(std::io::Error::other("test")));
    }

    fn reopen(&self) -> Result<Arc<Trees>> {
        let Some(path) = &self.shared.path else {
            return Err(IndexError::Unavailable(
                "the temporary index is gone".into(),
            ));
        };
        let mut st = self.shared.reopen.lock().unwrap();
        if let Some(t) = self.shared.current.read().unwrap().as_ref() {
            return Ok(t.clone());
        }
        if st.last_attempt.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
            return Err(IndexError::Unavailable(st.last_error.clone()));
        }
        st.last_attempt = Some(Instant::now());
        match Self::open_trees(path) {
            Ok(mut trees) => {
                trees.generation = self.shared.epochs.lock().unwrap().generation;
                let t = Arc::new(trees);
                *self.shared.current.write().unwrap() = Some(t.clone());
                self.shared.reopens.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("index at {} reopened", path.display());
                Ok(t)
            }
            Err(e) => {
                if e.is_disk_full() {
                    self.shared.disk_full.store(true, Ordering::SeqCst);
                    self.release_reserve();
                }
                st.last_error = format!("reopening after an error: {e}");
                Err(IndexError::Unavailable(st.last_error.clone()))
            }
        }
    }

    /// Whether the store met a full disk since the last call (the committer then frees
    /// space).
    pub fn take_disk_full(&self) -> bool {
        self.shared.disk_full.swap(false, Ordering::SeqCst)
    }

    /// How many times the store was reopened after an error.
    pub fn reopens(&self) -> u64 {
        self.shared.reopens.load(Ordering::Relaxed)
    }

    /// Whether the store is open now (false between an error and a successful reopen).
    pub fn is_available(&self) -> bool {
        self.shared.current.read().unwrap().is_some()
    }

    /// The generation writes go to now: take it before a write, and the write's
    /// [`Ticket`] after it ([`Index::ticket`]).
    pub fn generation(&self) -> u64 {
        self.shared.epochs.lock().unwrap().generation
    }

    /// The ticket of writes made since [`Index::generation`] returned `generation` and
    /// that returned before this call. If the store was reopened in between, the ticket
    /// is already lost (the writes may have gone to the old generation): they are written
    /// again, never taken for durable.
    pub fn ticket(&self, generation: u64) -> Ticket {
        let ep = self.shared.epochs.lock().unwrap();
        Ticket {
            generation,
            epoch: ep.next_flush,
        }
    }

    /// Whether the writes a ticket covers are durable. False once the store was reopened
    /// without a flush covering them: write them again.
    pub fn is_durable(&self, t: &Ticket) -> bool {
        let ep = self.shared.epochs.lock().unwrap();
        t.generation == ep.generation && ep.durable > t.epoch
    }

    /// Whether a ticket's writes were lost to a reopen (never durable: write them again).
    pub fn is_lost(&self, t: &Ticket) -> bool {
        let ep = self.shared.epochs.lock().unwrap();
        t.generation != ep.generation
    }

    fn flush_trees(&self, t: &Trees) -> Result<()> {
        let n = {
            let mut ep = self.shared.epochs.lock().unwrap();
            ep.next_flush += 1;
            ep.next_flush - 1
        };
        t.db.flush()?;
        // Only a flush of the current generation makes its writes durable.
        let mut ep = self.shared.epochs.lock().unwrap();
        if ep.generation == t.generation {
            ep.durable = ep.durable.max(n + 1);
        }
        Ok(())
    }

    /// The stable id of a camera name, assigned on first use.
    pub fn camera_id(&self, name: &str) -> Result<u32> {
        self.with(|t| {
            let (id, new) = t.assign_id(&t.cameras, name.as_bytes(), META_NEXT_CAMERA)?;
            if new {
                self.flush_trees(t)?;
            }
            Ok(id)
        })
    }

    /// All known cameras as (name, id).
    pub fn cameras(&self) -> Result<Vec<(String, u32)>> {
        self.with(|t| {
            let mut out = Vec::new();
            for kv in t.cameras.iter() {
                let (k, v) = kv?;
                out.push((
                    String::from_utf8_lossy(&k).into_owned(),
                    u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4])),
                ));
            }
            Ok(out)
        })
    }

    /// Applies `ops` atomically and makes them durable before returning. On an error
    /// nothing is known to be durable: commit the same ops again (they are idempotent).
    pub fn commit(&self, ops: &[Op]) -> Result<()> {
        self.with(|t| {
            t.apply(ops)?;
            self.flush_trees(t)
        })
    }

    /// Applies `ops` atomically without waiting for durability.
    pub fn apply(&self, ops: &[Op]) -> Result<()> {
        self.with(|t| t.apply(ops))
    }

    /// Makes every write that returned before this call durable.
    pub fn flush(&self) -> Result<()> {
        self.with(|t| self.flush_trees(t))
    }

    /// Decodes the values of a sled scan; an unavailable store yields one error.
    fn scan<V: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        f: impl FnOnce(&Trees) -> sled::Iter,
    ) -> Box<dyn Iterator<Item = Result<V>> + Send> {
        match self.trees() {
            Ok(t) => Box::new(f(&t).map(|kv| Ok(postcard::from_bytes(&kv?.1)?))),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    /// The clock steps recorded so far, oldest first.
    pub fn clock_steps(&self) -> Result<Vec<ClockStep>> {
        self.with(|t| match t.meta.get(META_CLOCK_STEPS)? {
            Some(v) => Ok(postcard::from_bytes(&v)?),
            None => Ok(Vec::new()),
        })
    }

    /// Stores the clock steps (the caller keeps the newest 64); durable at the next flush.
    pub fn put_clock_steps(&self, steps: &[ClockStep]) -> Result<()> {
        let v = postcard::to_stdvec(steps)?;
        self.with(|t| {
            t.meta.insert(META_CLOCK_STEPS, v)?;
            Ok(())
        })
    }

    /// Files deleted from the index but perhaps not yet from disk.
    pub fn garbage(&self) -> Result<Vec<String>> {
        self.with(|t| {
            let mut out = Vec::new();
            for kv in t.garbage.iter() {
                out.push(String::from_utf8_lossy(&kv?.0).into_owned());
            }
            Ok(out)
        })
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.trees()
            .ok()
            .and_then(|t| t.db.size_on_disk().ok())
            .unwrap_or(0)
    }
}

impl Trees {
    fn of(db: sled::Db) -> Result<Trees> {
        let meta = db.open_tree("meta")?;
        let found = match meta.get(META_SCHEMA)? {
            None => {
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                SCHEMA_VERSION
            }
            Some(v) => u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4])),
        };
        if found == 0 || found > SCHEMA_VERSION {
            return Err(IndexError::Schema { found });
        }
        drop(meta);
        let t = Trees::open(db)?;
        // Older schemas are migrated one version at a time, each step durable.
        for from in found..SCHEMA_VERSION {
            tracing::warn!("index: migrating schema {from} to {}", from + 1);
            MIGRATIONS[(from - 1) as usize](&t)?;
            t.meta.insert(META_SCHEMA, &(from + 1).to_be_bytes())?;
            t.db.flush()?;
        }
        Ok(t)
    }

    /// Every tree of the store, by name (generation 0 until the handle sets it).
    fn open(db: sled::Db) -> sled::Result<Trees> {
        Ok(Trees {
            generation: 0,
            meta: db.open_tree("meta")?,
            cameras: db.open_tree("cameras")?,
            segments: db.open_tree("segments")?,
            garbage: db.open_tree("garbage")?,
            holds: db.open_tree("holds")?,
            bookmarks: db.open_tree("bookmarks")?,
            cases: db.open_tree("cases")?,
            zones: db.open_tree("zones")?,
            events: db.open_tree("events")?,
            ev_time: db.open_tree("events_by_time")?,
            ev_camera: db.open_tree("events_by_camera")?,
            ev_zone: db.open_tree("events_by_zone")?,
            thumbs: db.open_tree("thumbnails")?,
            motion: db.open_tree("motion")?,
            acks: db.open_tree("acks")?,
            db,
        })
    }

    /// The u32 BE id stored under `key` in `tree`, or a new one from the `meta` counter
    /// `counter` (race-free: compare-and-swap). Returns (id, whether it is new).
    fn assign_id(&self, tree: &sled::Tree, key: &[u8], counter: &[u8]) -> Result<(u32, bool)> {
        let get = |v: &[u8]| u32::from_be_bytes(v.try_into().unwrap_or([0; 4]));
        if let Some(v) = tree.get(key)? {
            return Ok((get(&v), false));
        }
        let id = self
            .meta
            .update_and_fetch(counter, |old| {
                Some((old.map(get).unwrap_or(0) + 1).to_be_bytes().to_vec())
            })?
            .map(|v| get(&v))
            .unwrap_or(1);
        match tree.compare_and_swap(key, None as Option<&[u8]>, Some(&id.to_be_bytes()))? {
            Ok(()) => Ok((id, true)),
            // Another thread assigned it first: use theirs (our counter value is skipped).
            Err(_) => self.assign_id(tree, key, counter),
        }
    }

    fn apply(&self, ops: &[Op]) -> Result<()> {
        let mut seg = sled::Batch::default();
        let mut garbage = sled::Batch::default();
        for op in ops {
            match op {
                Op::PutSegment(r) => {
                    seg.insert(
                        &segment_key(r.camera_id, r.start_us),
                        postcard::to_stdvec(r)?,
                    );
                }
                Op::DeleteSegment {
                    camera_id,
                    start_us,
                    file,
                } => {
                    seg.remove(&segment_key(*camera_id, *start_us));
                    garbage.insert(file.as_bytes(), &[]);
                }
                Op::ForgetGarbage(file) => garbage.remove(file.as_bytes()),
            }
        }
        // Garbage first: if we crash between the two, a file is at worst listed as garbage
        // while still indexed, and startup re-checks garbage entries against the index.
        self.garbage.apply_batch(garbage)?;
        self.segments.apply_batch(seg)?;
        Ok(())
    }
}

fn is_disk_full(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(e) => {
            // sled hands out its remembered error as a copy: kind and text survive, the
            // raw OS error does not.
            matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
                || matches!(
                    e.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
                || e.to_string().contains("No space left")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
