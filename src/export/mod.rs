//! Clips: any time range of one camera as one playable MP4, remuxed from its segments
//! without re-encoding.
//!
//! A clip is planned, not copied: [`plan`] reads the segments' `moof`s (never their frame
//! data), picks the samples from the keyframe at or before the start to the last frame
//! before the end, and describes the clip as a header (`ftyp` + `moov` with an edit list
//! that starts playback at the requested time + `mdat` header) followed by byte ranges of
//! the segment files. Its length and ETag are known before the first byte is sent, so
//! HTTP Range requests are served from the plan ([`ClipPlan::read_at`]). Across a
//! recording gap the last picture before it is held until the gap ends, so a clip's
//! media time is wall-clock time and its declared duration is its media's; the gaps are
//! listed in [`ClipPlan::gaps`]. A plan leases its segments ([`crate::index::Lease`]):
//! retention deletes none of them until the plan is dropped, so a clip being streamed is
//! never cut short.

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod still;
pub use still::still_jpeg;

use crate::events::QueryError;
use crate::index::{Index, Lease, SegmentRecord};
use crate::record::fmp4::{self, Chunk, ClipTrack, Sample};
use crate::storage::Layout;

/// Longest clip one request may ask for.
pub const MAX_CLIP_US: i64 = 24 * 3_600_000_000;

/// Where a clip's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Header(bytes::Bytes),
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Header(b) => b.len() as u64,
            Piece::File { len, .. } => *len,
        }
    }
}

/// A clip, ready to be streamed.
#[derive(Clone, Debug)]
pub struct ClipPlan {
    pub pieces: Vec<Piece>,
    pub len: u64,
    /// Changes whenever the bytes would (other segments, other lengths, other range).
    pub etag: String,
    /// Frames in the file (from the keyframe before the start) and those presented:
    /// whose presentation time lies inside the edit, as players (FFmpeg, Chromium) count
    /// them; a frame that begins before the requested start is hidden even if it would
    /// last past it.
    pub frames: u64,
    pub presented_frames: u64,
    /// UTC at which the first and the last presented frame are shown (the edit maps the
    /// file's media time to the wall clock), µs.
    pub first_frame_us: i64,
    pub last_frame_us: i64,
    /// Audio frames in the file (0 without audio).
    pub audio_frames: u64,
    /// UTC of the first presented frame and the presented duration (wall clock, gaps
    /// included).
    pub start_us: i64,
    pub duration_us: i64,
    /// UTC of the file's first sample (the keyframe at or before the start).
    pub decode_start_us: i64,
    /// Recording gaps inside the clip, UTC µs `[start, end)`. The last picture before a
    /// gap lasts until its end, so the video after it keeps its wall-clock position.
    pub gaps: Vec<(i64, i64)>,
    /// Keeps retention from deleting the segments until the clip is served.
    _lease: Arc<Lease>,
}

/// Samples further apart than this (after the previous one's duration) are separated
/// by a recording gap, µs. Within a run, segments follow each other to the microsecond.
pub const GAP_US: i64 = 50_000;

struct Picked {
    path: PathBuf,
    /// UTC of the sample's start.
    utc_us: i64,
    sample: Sample,
    /// Offset of its data in the file.
    offset: u64,
    entry: usize,
    /// Index of its fragment in the whole clip (a chunk never spans fragments).
    fragment: usize,
}

/// The index of `e` in `entries`, added if new.
fn entry_index(entries: &mut Vec<Vec<u8>>, e: &[u8]) -> usize {
    match entries.iter().position(|x| x == e) {
        Some(i) => i,
        None => {
            entries.push(e.to_vec());
            entries.len() - 1
        }
    }
}

/// Stretches the sample before each gap (more than [`GAP_US`] between one sample's end
/// and the next one's start) to the gap's end, so that media time stays wall-clock time;
/// returns the gaps. `rate`: the track's timescale.
fn close_gaps(picked: &[Picked], samples: &mut [Sample], rate: u32) -> Vec<(i64, i64)> {
    let end_of = |p: &Picked| p.utc_us + p.sample.duration as i64 * 1_000_000 / rate as i64;
    let mut gaps = Vec::new();
    for i in 1..picked.len() {
        let (prev_end, next) = (end_of(&picked[i - 1]), picked[i].utc_us);
        if next - prev_end > GAP_US {
            let stretched = (next - picked[i - 1].utc_us) as u64 * rate as u64 / 1_000_000;
            samples[i - 1].duration = stretched.min(u32::MAX as u64) as u32;
            gaps.push((prev_end, next));
        }
    }
    gaps
}

/// The frames a player presents: those whose presentation time (decode time plus
/// composition offset, 90 kHz, from the file's first sample) lies in the edit
/// `[media_time, media_time + duration)` (ISO/IEC 14496-12 8.6.6), with the first and
/// last of those times.
struct Presented {
    count: u64,
    first: Option<i64>,
    last: Option<i64>,
}

fn presented(samples: &[Sample], media_time: u64, duration: u64) -> Presented {
    let (lo, hi) = (media_time as i64, (media_time + duration) as i64);
    let mut p = Presented {
        count: 0,
        first: None,
        last: None,
    };
    let mut dts = 0i64;
    for s in samples {
        let pts = dts + s.cts_offset as i64;
        if (lo..hi).contains(&pts) {
            p.count += 1;
            p.first = Some(p.first.map_or(pts, |f| f.min(pts)));
            p.last = Some(p.last.map_or(pts, |l| l.max(pts)));
        }
        dts += s.duration as i64;
    }
    p
}

/// Plans the clip of `[start_us, end_us)` of one camera: its video and, when every
/// segment in the range has the same kind of audio track, its audio.
pub fn plan(
    index: &Index,
    storage: &Layout,
    camera_id: u32,
    start_us: i64,
    end_us: i64,
) -> Result<ClipPlan, QueryError> {
    if end_us <= start_us {
        return Err(QueryError::Bad("end must be after start".into()));
    }
    if end_us - start_us > MAX_CLIP_US {
        return Err(QueryError::Bad(
            "a clip may be at most 24 hours long".into(),
        ));
    }
    let (segs, lease) = leased_segments(index, camera_id, start_us, end_us)?;
    let c = collect(storage, &segs, end_us)?;
    let (picked, audio) = (&c.picked, &c.audio);
    // Start at the last keyframe at or before the start (or the first one after it, if
    // the recording begins later).
    let first = picked
        .iter()
        .rposition(|p| p.sample.is_key && p.utc_us <= start_us)
        .or_else(|| picked.iter().position(|p| p.sample.is_key))
        .ok_or_else(|| QueryError::NotFound("no recording of this camera in that range".into()))?;
    let picked = &picked[first..];
    // Keep only the samples that end after the start (frames before it are there only to
    // decode from the keyframe; the edit list hides them).
    let presented_from = picked
        .iter()
        .position(|p| p.utc_us + (p.sample.duration as i64 * 1_000_000 / 90_000) > start_us)
        .unwrap_or(picked.len());
    if presented_from == picked.len() {
        return Err(QueryError::NotFound(
            "no recording of this camera in that range".into(),
        ));
    }
    let mut samples: Vec<Sample> = picked.iter().map(|p| p.sample).collect();
    // Gaps between runs of samples: the last sample before each lasts until its end, so
    // that media time is wall-clock time from `picked[0]` (players keep the video after a
    // gap at its position; an edit list with empty edits would say the same, but FFmpeg,
    // and so Chromium, ignore empty edits after the first).
    let mut gaps = close_gaps(picked, &mut samples, 90_000);
    // The edit: from the first presented instant to the end of the last sample (or the
    // requested end), in 90 kHz units of the media timeline that starts at `picked[0]`.
    let media_t = |utc: i64| ((utc - picked[0].utc_us).max(0) as u64 * 90_000) / 1_000_000;
    let last = picked.last().unwrap();
    let last_end = last.utc_us + (samples.last().unwrap().duration as i64 * 1_000_000 / 90_000);
    let shown_start = start_us.max(picked[presented_from].utc_us);
    let shown_end = end_us.min(last_end);
    let edit_media_time = media_t(shown_start);
    let edit_duration = media_t(shown_end).saturating_sub(edit_media_time);
    gaps.retain(|&(a, b)| b > shown_start && a < shown_end);
    let shown = presented(&samples, edit_media_time, edit_duration);
    let at = |pts: i64| shown_start + (pts - edit_media_time as i64) * 1_000_000 / 90_000;

    // Audio from the first video sample on (what plays with the video).
    let audio: &[Picked] = if c.with_audio {
        let from = audio
            .iter()
            .position(|a| a.utc_us >= picked[0].utc_us)
            .unwrap_or(audio.len());
        &audio[from..]
    } else {
        &[]
    };
    let mut audio_samples: Vec<Sample> = audio.iter().map(|p| p.sample).collect();
    let rate = c.audio_rate.unwrap_or(1);
    close_gaps(audio, &mut audio_samples, rate);

    let (chunks, pieces_data) = interleave(picked, audio);
    let mut tracks = vec![ClipTrack {
        track: fmp4::VIDEO_TRACK,
        timescale: 90_000,
        width: c.dims.0,
        height: c.dims.1,
        sample_entries: c.entries.iter().map(|e| e.as_slice()).collect(),
        samples: &samples,
        edit_delay: 0,
        edit_media_time,
        edit_duration,
    }];
    if let Some(first) = audio.first() {
        // The audio edit covers the same instants as the video's: from the shown start
        // (or the first audio sample, if later: an empty edit before it) to the end.
        let from = shown_start.max(first.utc_us);
        tracks.push(ClipTrack {
            track: fmp4::AUDIO_TRACK,
            timescale: rate,
            width: 0,
            height: 0,
            sample_entries: c.audio_entries.iter().map(|e| e.as_slice()).collect(),
            samples: &audio_samples,
            edit_delay: media_t(from) - media_t(shown_start),
            edit_media_time: (from - first.utc_us) as u64 * rate as u64 / 1_000_000,
            edit_duration: media_t(shown_end).saturating_sub(media_t(from)),
        });
    }
    let header = fmp4::clip_header(&tracks, &chunks);
    let mut pieces = vec![Piece::Header(header.into())];
    pieces.extend(pieces_data);
    let len = pieces.iter().map(Piece::len).sum();
    let mut h = std::hash::DefaultHasher::new();
    (camera_id, start_us, end_us, len).hash(&mut h);
    for s in &segs {
        (&s.file, s.bytes, s.start_us).hash(&mut h);
    }
    Ok(ClipPlan {
        etag: format!("\"{:016x}\"", h.finish()),
        len,
        frames: samples.len() as u64,
        presented_frames: shown.count,
        first_frame_us: shown.first.map_or(shown_start, at),
        last_frame_us: shown.last.map_or(shown_start, at),
        audio_frames: audio_samples.len() as u64,
        start_us: shown_start,
        duration_us: shown_end - shown_start,
        decode_start_us: picked.first().map_or(shown_start, |p| p.utc_us),
        gaps,
        pieces,
        _lease: Arc::new(lease),
    })
}

/// The samples of `segs` (video and audio, each with its file, offset and UTC) up to
/// `end_us`, and their sample entries. Audio only if every segment has it, at one rate.
struct Collected {
    entries: Vec<Vec<u8>>,
    audio_entries: Vec<Vec<u8>>,
    audio_rate: Option<u32>,
    with_audio: bool,
    picked: Vec<Picked>,
    audio: Vec<Picked>,
    dims: (u32, u32),
}

fn collect(storage: &Layout, segs: &[SegmentRecord], end_us: i64) -> Result<Collected, QueryError> {
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut audio_entries: Vec<Vec<u8>> = Vec::new();
    let mut audio_rate: Option<u32> = None;
    let mut with_audio = true;
    let mut picked: Vec<Picked> = Vec::new();
    let mut audio: Vec<Picked> = Vec::new();
    let mut dims = (0u32, 0u32);
    let mut fragment = 0usize;
    for seg in segs {
        let path = storage.segment(&seg.file);
        let scanned = scan_committed(&path, seg)?;
        let entry = entry_index(&mut entries, &scanned.sample_entry);
        // Audio only if every segment has it, at one sample rate.
        let audio_entry = match &scanned.audio {
            Some(a) if audio_rate.is_none_or(|r| r == a.timescale) && a.timescale > 0 => {
                audio_rate = Some(a.timescale);
                Some(entry_index(&mut audio_entries, &a.sample_entry))
            }
            _ => {
                with_audio = false;
                None
            }
        };
        dims = (seg.width as u32, seg.height as u32);
        let first_bdt = scanned.fragments.first().map_or(0, |f| f.base_decode_time);
        for f in &scanned.fragments {
            fragment += 1;
            let frag_utc = f.utc_us.unwrap_or(
                seg.start_us + ((f.base_decode_time - first_bdt) * 1_000_000 / 90_000) as i64,
            );
            let (mut t90, mut off) = (0u64, f.data_offset);
            for s in &f.samples {
                let utc = frag_utc + (t90 * 1_000_000 / 90_000) as i64;
                t90 += s.duration as u64;
                if utc < end_us {
                    picked.push(Picked {
                        path: path.clone(),
                        utc_us: utc,
                        sample: *s,
                        offset: off,
                        entry,
                        fragment,
                    });
                }
                off += s.size as u64;
            }
            // The fragment's audio follows its video data; its decode times count from
            // the segment's start.
            if let (Some(run), Some(ae), Some(rate)) = (&f.audio, audio_entry, audio_rate) {
                let mut t = run.base_decode_time;
                for s in &run.samples {
                    let utc = seg.start_us + (t as i128 * 1_000_000 / rate as i128) as i64;
                    t += s.duration as u64;
                    if utc < end_us {
                        audio.push(Picked {
                            path: path.clone(),
                            utc_us: utc,
                            sample: *s,
                            offset: off,
                            entry: ae,
                            fragment,
                        });
                    }
                    off += s.size as u64;
                }
            }
        }
    }
    Ok(Collected {
        entries,
        audio_entries,
        audio_rate,
        with_audio,
        picked,
        audio,
        dims,
    })
}

/// The clip's chunks in data order (per fragment, its video samples, then its audio
/// samples; contiguous samples of one track in one fragment are one chunk), and the file
/// ranges that hold them.
fn interleave(picked: &[Picked], audio: &[Picked]) -> (Vec<Chunk>, Vec<Piece>) {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut pieces_data: Vec<Piece> = Vec::new();
    let (mut v, mut a) = (0usize, 0usize);
    let mut prev: Option<(u32, usize, u64)> = None; // (track, fragment, end offset)
    while v < picked.len() || a < audio.len() {
        let take_video =
            a == audio.len() || (v < picked.len() && picked[v].fragment <= audio[a].fragment);
        let (track, p) = if take_video {
            v += 1;
            (fmp4::VIDEO_TRACK, &picked[v - 1])
        } else {
            a += 1;
            (fmp4::AUDIO_TRACK, &audio[a - 1])
        };
        let contiguous = prev == Some((track, p.fragment, p.offset));
        if contiguous {
            let c = chunks.last_mut().unwrap();
            c.samples += 1;
            c.bytes += p.sample.size as u64;
            if let Some(Piece::File { len, .. }) = pieces_data.last_mut() {
                *len += p.sample.size as u64;
            }
        } else {
            chunks.push(Chunk {
                track,
                samples: 1,
                entry: p.entry as u32 + 1,
                bytes: p.sample.size as u64,
            });
            pieces_data.push(Piece::File {
                path: p.path.clone(),
                offset: p.offset,
                len: p.sample.size as u64,
            });
        }
        prev = Some((track, p.fragment, p.offset + p.sample.size as u64));
    }
    (chunks, pieces_data)
}

/// The segments overlapping `[t0, t1)`, leased: retention leaves them alone until the
/// plan (and every clone of it, such as the one a response streams from) is dropped.
fn leased_segments(
    index: &Index,
    camera_id: u32,
    t0: i64,
    t1: i64,
) -> Result<(Vec<SegmentRecord>, Lease), QueryError> {
    let key = |s: &SegmentRecord| (s.camera_id, s.start_us);
    for _ in 0..10 {
        let segs = index.segments_overlapping(camera_id, t0, t1)?;
        // Refused while retention deletes one of them; once leased, those still indexed
        // stay until the lease ends.
        if let Some(lease) = index.lease(segs.iter().map(key).collect()) {
            let now = index.segments_overlapping(camera_id, t0, t1)?;
            if now.iter().map(key).eq(segs.iter().map(key)) {
                return Ok((now, lease));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(QueryError::NotFound(
        "retention is deleting this range of the recording".into(),
    ))
}

/// Scans a segment, keeping the fragments within its committed (indexed) length: an open
/// segment has more bytes on disk than are durable and indexed.
fn scan_committed(path: &Path, seg: &SegmentRecord) -> Result<fmp4::ScanResult, QueryError> {
    let io = |err| QueryError::Io {
        path: path.to_owned(),
        err,
    };
    let f = File::open(path).map_err(io)?;
    let mut r = fmp4::scan(&mut BufReader::with_capacity(16 * 1024, f)).map_err(io)?;
    r.fragments.retain(|f| f.end <= seg.bytes);
    Ok(r)
}

impl ClipPlan {
    /// Reads up to `buf.len()` bytes of the clip at `pos`; returns how many (0 at the end).
    pub fn read_at(&self, mut pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        let mut at = 0u64;
        for p in &self.pieces {
            let len = p.len();
            if filled == buf.len() {
                break;
            }
            if pos >= at + len {
                at += len;
                continue;
            }
            let within = pos - at;
            let n = ((len - within) as usize).min(buf.len() - filled);
            match p {
                Piece::Header(b) => buf[filled..filled + n]
                    .copy_from_slice(&b[within as usize..within as usize + n]),
                Piece::File { path, offset, .. } => {
                    let mut f = File::open(path)?;
                    f.seek(SeekFrom::Start(offset + within))?;
                    f.read_exact(&mut buf[filled..filled + n])?;
                }
            }
            filled += n;
            pos += n as u64;
            at += len;
        }
        Ok(filled)
    }

    /// Writes the whole clip (or `[from, to)` of it) to `out`.
    pub fn write_range(
        &self,
        from: u64,
        to: u64,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = from;
        while pos < to {
            let want = ((to - pos) as usize).min(buf.len());
            let n = self.read_at(pos, &mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file shorter than indexed",
                ));
            }
            out.write_all(&buf[..n])?;
            pos += n as u64;
        }
        Ok(())
    }
}
