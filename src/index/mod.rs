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

use std::path::Path;

use serde::{Deserialize, Serialize};

mod events;
mod holds;
pub use events::{Ack, EventEntry, EventRecord, EventScope, MotionMinute, MotionSecond};
pub use holds::Hold;

pub const SCHEMA_VERSION: u32 = 1;

const META_SCHEMA: &[u8] = b"schema_version";
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
}

pub type Result<T> = std::result::Result<T, IndexError>;

impl IndexError {
    /// Whether the store failed for lack of disk space.
    pub fn is_disk_full(&self) -> bool {
        match self {
            IndexError::Sled(sled::Error::Io(e)) => {
                matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
            }
            _ => false,
        }
    }
}

/// Why a segment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// Still being written.
    Open,
    /// Rotated at a keyframe after `segment_seconds`.
    Rotation,
    /// The stream's codec parameters changed.
    ParamsChange,
    /// The camera connection was lost.
    Disconnect,
    /// Frames were dropped (the writer fell behind, or packet loss dropped pictures for
    /// longer than a still picture may stand in for them).
    Dropped,
    /// The daemon shut down cleanly.
    Shutdown,
    /// Found open after a crash and repaired.
    Recovered,
    /// A write failed (for example, the disk is full).
    WriteError,
    /// The camera's timestamps broke the timeline (a step back, a jump forward, or a
    /// clock that left the drift bound); the next segment starts on a new timeline.
    /// Added after schema 1's first release: appended, so older records still decode.
    TimestampJump,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Open => "open",
            EndReason::Rotation => "rotation",
            EndReason::ParamsChange => "params-change",
            EndReason::Disconnect => "disconnect",
            EndReason::Dropped => "dropped-frames",
            EndReason::Shutdown => "shutdown",
            EndReason::Recovered => "recovered",
            EndReason::WriteError => "write-error",
            EndReason::TimestampJump => "timestamp-jump",
        }
    }
}

/// A keyframe: its time from the segment start and the byte offset of the fragment it
/// begins (every keyframe begins a fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyframe {
    pub t_90k: u64,
    pub offset: u64,
}

/// One segment file, as the index knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub camera_id: u32,
    /// Path relative to the storage dir.
    pub file: String,
    /// UTC of the first frame, µs since the Unix epoch.
    pub start_us: i64,
    /// UTC just after the last committed frame.
    pub end_us: i64,
    /// Media duration of the committed frames, 90 kHz.
    pub duration_90k: u64,
    /// Committed (durable, playable) length of the file.
    pub bytes: u64,
    pub frames: u32,
    pub init_len: u32,
    /// Byte offset of `mehd`'s duration field, patched when the segment closes.
    pub mehd_offset: u32,
    pub keyframes: Vec<Keyframe>,
    pub codec: String,
    pub width: u16,
    pub height: u16,
    pub end_reason: EndReason,
    /// RTSP session counter: segments with the same run id are contiguous.
    pub run: u64,
}

impl SegmentRecord {
    pub fn is_open(&self) -> bool {
        self.end_reason == EndReason::Open
    }
}

/// `segments` key: camera id (u32 BE) ++ start µs (i64 BE, offset by 2^63 to keep order).
pub fn segment_key(camera_id: u32, start_us: i64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&camera_id.to_be_bytes());
    k[4..].copy_from_slice(&((start_us as u64) ^ (1 << 63)).to_be_bytes());
    k
}

pub fn decode_segment_key(k: &[u8]) -> Option<(u32, i64)> {
    if k.len() != 12 {
        return None;
    }
    let cam = u32::from_be_bytes(k[..4].try_into().ok()?);
    let t = u64::from_be_bytes(k[4..].try_into().ok()?) ^ (1 << 63);
    Some((cam, t as i64))
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

/// The sled database and its trees.
#[derive(Clone)]
pub struct Index {
    db: sled::Db,
    meta: sled::Tree,
    cameras: sled::Tree,
    segments: sled::Tree,
    garbage: sled::Tree,
    holds: sled::Tree,
    zones: sled::Tree,
    events: sled::Tree,
    ev_time: sled::Tree,
    ev_camera: sled::Tree,
    ev_zone: sled::Tree,
    thumbs: sled::Tree,
    motion: sled::Tree,
    acks: sled::Tree,
}

impl Index {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Index> {
        // Flushing is explicit (see `commit`); sled's own periodic flush is a backstop.
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(1000))
            .open()?;
        Self::from_db(db)
    }

    /// A throw-away in-memory index, for tests and benchmarks.
    pub fn temporary() -> Result<Index> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Index> {
        let meta = db.open_tree("meta")?;
        match meta.get(META_SCHEMA)? {
            None => {
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4]));
                if found != SCHEMA_VERSION {
                    return Err(IndexError::Schema { found });
                }
            }
        }
        Ok(Index {
            cameras: db.open_tree("cameras")?,
            segments: db.open_tree("segments")?,
            garbage: db.open_tree("garbage")?,
            holds: db.open_tree("holds")?,
            zones: db.open_tree("zones")?,
            events: db.open_tree("events")?,
            ev_time: db.open_tree("events_by_time")?,
            ev_camera: db.open_tree("events_by_camera")?,
            ev_zone: db.open_tree("events_by_zone")?,
            thumbs: db.open_tree("thumbnails")?,
            motion: db.open_tree("motion")?,
            acks: db.open_tree("acks")?,
            meta,
            db,
        })
    }

    /// The stable id of a camera name, assigned on first use.
    pub fn camera_id(&self, name: &str) -> Result<u32> {
        let (id, new) = self.assign_id(&self.cameras, name.as_bytes(), META_NEXT_CAMERA)?;
        if new {
            self.db.flush()?;
        }
        Ok(id)
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

    /// All known cameras as (name, id).
    pub fn cameras(&self) -> Result<Vec<(String, u32)>> {
        let mut out = Vec::new();
        for kv in self.cameras.iter() {
            let (k, v) = kv?;
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4])),
            ));
        }
        Ok(out)
    }

    /// Applies `ops` atomically and makes them durable before returning.
    pub fn commit(&self, ops: &[Op]) -> Result<()> {
        self.apply(ops)?;
        self.db.flush()?;
        Ok(())
    }

    /// Applies `ops` atomically without waiting for durability.
    pub fn apply(&self, ops: &[Op]) -> Result<()> {
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

    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    pub fn get_segment(&self, camera_id: u32, start_us: i64) -> Result<Option<SegmentRecord>> {
        match self.segments.get(segment_key(camera_id, start_us))? {
            Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
            None => Ok(None),
        }
    }

    /// Segments of one camera overlapping `[t0, t1)`, in time order.
    ///
    /// A range scan: segments of one camera never overlap, so the only segment that
    /// starts before `t0` and can still overlap it is the last one starting before `t0`.
    pub fn segments_overlapping(
        &self,
        camera_id: u32,
        t0: i64,
        t1: i64,
    ) -> Result<Vec<SegmentRecord>> {
        let mut out = Vec::new();
        let lo = segment_key(camera_id, i64::MIN);
        let k0 = segment_key(camera_id, t0);
        if let Some(kv) = self.segments.range(lo..k0).next_back() {
            let r: SegmentRecord = postcard::from_bytes(&kv?.1)?;
            if r.end_us > t0 {
                out.push(r);
            }
        }
        for kv in self.segments.range(k0..segment_key(camera_id, t1)) {
            out.push(postcard::from_bytes(&kv?.1)?);
        }
        Ok(out)
    }

    /// Every segment of one camera, oldest first.
    pub fn camera_segments(
        &self,
        camera_id: u32,
    ) -> impl Iterator<Item = Result<SegmentRecord>> + '_ {
        self.segments
            .range(segment_key(camera_id, i64::MIN)..=segment_key(camera_id, i64::MAX))
            .map(|kv| Ok(postcard::from_bytes(&kv?.1)?))
    }

    /// The oldest segment of one camera.
    pub fn oldest_segment(&self, camera_id: u32) -> Result<Option<SegmentRecord>> {
        self.camera_segments(camera_id).next().transpose()
    }

    /// Every segment of every camera.
    pub fn all_segments(&self) -> impl Iterator<Item = Result<SegmentRecord>> + '_ {
        self.segments
            .iter()
            .map(|kv| Ok(postcard::from_bytes(&kv?.1)?))
    }

    /// Files deleted from the index but perhaps not yet from disk.
    pub fn garbage(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for kv in self.garbage.iter() {
            out.push(String::from_utf8_lossy(&kv?.0).into_owned());
        }
        Ok(out)
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(cam: u32, start: i64, end: i64) -> SegmentRecord {
        SegmentRecord {
            camera_id: cam,
            file: format!("c{cam}/{start}.mp4"),
            start_us: start,
            end_us: end,
            duration_90k: ((end - start) * 9 / 100) as u64,
            bytes: 1000,
            frames: 10,
            init_len: 100,
            mehd_offset: 50,
            keyframes: vec![Keyframe {
                t_90k: 0,
                offset: 100,
            }],
            codec: "avc1.640028".into(),
            width: 640,
            height: 360,
            end_reason: EndReason::Rotation,
            run: 1,
        }
    }

    #[test]
    fn key_order_is_time_order() {
        let a = segment_key(1, -5);
        let b = segment_key(1, 3);
        let c = segment_key(2, -10);
        assert!(a < b && b < c);
        assert_eq!(decode_segment_key(&b), Some((1, 3)));
    }

    #[test]
    fn overlap_query() {
        let ix = Index::temporary().unwrap();
        let ops: Vec<Op> = (0..10)
            .map(|i| Op::PutSegment(rec(1, i * 100, i * 100 + 90)))
            .chain([Op::PutSegment(rec(2, 150, 250))])
            .collect();
        ix.commit(&ops).unwrap();
        let got: Vec<i64> = ix
            .segments_overlapping(1, 195, 420)
            .unwrap()
            .iter()
            .map(|r| r.start_us)
            .collect();
        assert_eq!(got, vec![200, 300, 400]);
        let got: Vec<i64> = ix
            .segments_overlapping(1, 150, 250)
            .unwrap()
            .iter()
            .map(|r| r.start_us)
            .collect();
        assert_eq!(got, vec![100, 200]);
        assert_eq!(ix.segments_overlapping(1, 1000, 2000).unwrap().len(), 0);
        assert_eq!(ix.segments_overlapping(2, 0, 1000).unwrap().len(), 1);
    }

    #[test]
    fn camera_ids_are_stable() {
        let ix = Index::temporary().unwrap();
        let a = ix.camera_id("a").unwrap();
        let b = ix.camera_id("b").unwrap();
        assert_ne!(a, b);
        assert_eq!(ix.camera_id("a").unwrap(), a);
    }

    #[test]
    fn delete_goes_through_garbage() {
        let ix = Index::temporary().unwrap();
        ix.commit(&[Op::PutSegment(rec(1, 0, 90))]).unwrap();
        ix.commit(&[Op::DeleteSegment {
            camera_id: 1,
            start_us: 0,
            file: "c1/0.mp4".into(),
        }])
        .unwrap();
        assert!(ix.get_segment(1, 0).unwrap().is_none());
        assert_eq!(ix.garbage().unwrap(), vec!["c1/0.mp4".to_string()]);
        ix.commit(&[Op::ForgetGarbage("c1/0.mp4".into())]).unwrap();
        assert!(ix.garbage().unwrap().is_empty());
    }
}
