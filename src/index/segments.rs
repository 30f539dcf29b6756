//! Segment records: what the index knows of each segment file, the `segments` tree's key
//! layout, and the queries on it.

use serde::{Deserialize, Serialize};

use super::{Index, Result};

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
    /// SHA-256 of the whole file (its `bytes` bytes, exactly what `sha256sum` reads), taken
    /// when the segment closed, or at recovery for one a crash interrupted (`end_reason`
    /// `Recovered`); `None` while open and for segments recorded before schema 2.
    pub sha256: Option<[u8; 32]>,
}

/// A segment record as schema 1 stored it (no `sha256`): read by the migration to 2.
#[derive(Deserialize)]
pub(super) struct SegmentRecordV1 {
    camera_id: u32,
    file: String,
    start_us: i64,
    end_us: i64,
    duration_90k: u64,
    bytes: u64,
    frames: u32,
    init_len: u32,
    mehd_offset: u32,
    keyframes: Vec<Keyframe>,
    codec: String,
    width: u16,
    height: u16,
    end_reason: EndReason,
    run: u64,
}

impl From<SegmentRecordV1> for SegmentRecord {
    fn from(r: SegmentRecordV1) -> Self {
        SegmentRecord {
            camera_id: r.camera_id,
            file: r.file,
            start_us: r.start_us,
            end_us: r.end_us,
            duration_90k: r.duration_90k,
            bytes: r.bytes,
            frames: r.frames,
            init_len: r.init_len,
            mehd_offset: r.mehd_offset,
            keyframes: r.keyframes,
            codec: r.codec,
            width: r.width,
            height: r.height,
            end_reason: r.end_reason,
            run: r.run,
            sha256: None,
        }
    }
}

impl SegmentRecord {
    pub fn is_open(&self) -> bool {
        self.end_reason == EndReason::Open
    }

    /// A closed segment record for tests and benchmarks (the one builder they share):
    /// camera `camera_id`, file `file`, `[start_us, end_us)` with the media duration of
    /// that span, 1,000 bytes of which the first 100 are the init segment, 10 frames, one
    /// keyframe at the start of the data, H.264 640x360, ended by rotation, run 1.
    /// Override what a test needs with struct update syntax.
    #[doc(hidden)]
    pub fn for_test(camera_id: u32, file: impl Into<String>, start_us: i64, end_us: i64) -> Self {
        SegmentRecord {
            camera_id,
            file: file.into(),
            start_us,
            end_us,
            duration_90k: ((end_us - start_us).max(0) * 9 / 100) as u64,
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
            sha256: None,
        }
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

impl Index {
    pub fn get_segment(&self, camera_id: u32, start_us: i64) -> Result<Option<SegmentRecord>> {
        self.with(
            |t| match t.segments.get(segment_key(camera_id, start_us))? {
                Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
                None => Ok(None),
            },
        )
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
        self.with(|t| {
            let mut out = Vec::new();
            let lo = segment_key(camera_id, i64::MIN);
            let k0 = segment_key(camera_id, t0);
            if let Some(kv) = t.segments.range(lo..k0).next_back() {
                let r: SegmentRecord = postcard::from_bytes(&kv?.1)?;
                if r.end_us > t0 {
                    out.push(r);
                }
            }
            for kv in t.segments.range(k0..segment_key(camera_id, t1)) {
                out.push(postcard::from_bytes(&kv?.1)?);
            }
            Ok(out)
        })
    }

    /// Every segment of one camera, oldest first.
    pub fn camera_segments(
        &self,
        camera_id: u32,
    ) -> impl Iterator<Item = Result<SegmentRecord>> + use<> {
        self.scan(move |t| {
            t.segments
                .range(segment_key(camera_id, i64::MIN)..=segment_key(camera_id, i64::MAX))
        })
    }

    /// The oldest segment of one camera.
    pub fn oldest_segment(&self, camera_id: u32) -> Result<Option<SegmentRecord>> {
        self.camera_segments(camera_id).next().transpose()
    }

    /// Every segment of every camera.
    pub fn all_segments(&self) -> impl Iterator<Item = Result<SegmentRecord>> + use<> {
        self.scan(|t| t.segments.iter())
    }

    /// The newest end of any segment of any camera (µs), if there is one.
    pub fn newest_end_us(&self) -> Result<Option<i64>> {
        let mut newest: Option<i64> = None;
        for (_, id) in self.cameras()? {
            let last = self.with(|t| {
                match t
                    .segments
                    .range(segment_key(id, i64::MIN)..=segment_key(id, i64::MAX))
                    .next_back()
                {
                    Some(kv) => Ok(Some(postcard::from_bytes::<SegmentRecord>(&kv?.1)?.end_us)),
                    None => Ok(None),
                }
            })?;
            newest = newest.max(last);
        }
        Ok(newest)
    }
}
