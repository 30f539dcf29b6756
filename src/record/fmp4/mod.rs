//! The segment file format: fragmented MP4 (ISO/IEC 14496-12), written and parsed.
//!
//! A segment file is `ftyp`, `moov` (a video track, ID 1, timescale 90 kHz, and, when the
//! camera sends AAC, an audio track, ID 2, timescale = its sample rate; the sample entries
//! that retina builds from the stream's parameters; an `mvex/mehd` whose duration is
//! filled in when the segment is closed), then fragments: `prft` (UTC of the fragment's
//! first frame) + `moof` (a `traf` per track that has samples in it) + `mdat` (the video
//! samples, then the audio samples). Every keyframe starts a fragment, so a keyframe's byte
//! offset is a fragment boundary. A crash can only cut the last fragment short; everything
//! before it plays, and [`scan`] finds where the playable prefix ends.
//!
//! Hand-written on purpose: the writer emits about a dozen fixed-layout boxes around the
//! sample entry retina already builds, and recovery needs byte-exact control over where
//! each fragment begins and ends. The `mp4-atom` crate would need retina's entry re-parsed
//! into its own types and does not help with the crash-tail scan.

pub use crate::media::AudioTrack;

/// Media timescale of every segment's video (and of the movie): RTP's 90 kHz video clock.
pub const TIMESCALE: u32 = 90_000;
/// Track IDs.
pub const VIDEO_TRACK: u32 = 1;
pub const AUDIO_TRACK: u32 = 2;

/// Seconds between 1900-01-01 (NTP epoch) and 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// One frame as it goes into a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Duration in 90 kHz units.
    pub duration: u32,
    /// Size of the frame data in bytes (length-prefixed NAL units).
    pub size: u32,
    pub is_key: bool,
    /// Composition offset: presentation minus decode time, 90 kHz (signed; non-zero only
    /// for streams with B-frames). Written in `trun` (version 1) and `ctts` (version 1).
    pub cts_offset: i32,
}

struct BoxBuf {
    buf: Vec<u8>,
    stack: Vec<usize>,
}

impl BoxBuf {
    fn new() -> Self {
        BoxBuf {
            buf: Vec::with_capacity(1024),
            stack: Vec::new(),
        }
    }
    fn open(&mut self, fourcc: &[u8; 4]) {
        self.stack.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(fourcc);
    }
    fn open_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) {
        self.open(fourcc);
        self.u32(((version as u32) << 24) | (flags & 0x00ff_ffff));
    }
    fn close(&mut self) {
        let start = self.stack.pop().expect("unbalanced box");
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    fn matrix(&mut self) {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }
}

/// The init segment (`ftyp` + `moov`) and where its `mehd` duration field sits.
pub struct Init {
    pub bytes: Vec<u8>,
    /// Byte offset of the 64-bit fragment duration in `mehd`, patched at close.
    pub mehd_duration_offset: u64,
}

fn ftyp(b: &mut BoxBuf) {
    b.open(b"ftyp");
    b.bytes(b"isom");
    b.u32(0x200);
    for brand in [b"isom", b"iso5", b"iso6", b"mp41"] {
        b.bytes(brand);
    }
    b.close();
}

/// `mvhd` with a duration in [`TIMESCALE`] units (0: all in fragments).
fn mvhd(b: &mut BoxBuf, duration: u64) {
    b.open_full(b"mvhd", 1, 0);
    b.u64(0); // creation_time
    b.u64(0); // modification_time
    b.u32(TIMESCALE);
    b.u64(duration);
    b.u32(0x0001_0000); // rate 1.0
    b.u16(0x0100); // volume 1.0
    b.zeros(10);
    b.matrix();
    b.zeros(24); // pre_defined
    b.u32(3); // next_track_ID
    b.close();
}

fn tkhd(b: &mut BoxBuf, track: u32, width: u32, height: u32, duration: u64) {
    b.open_full(b"tkhd", 1, 0x3); // enabled | in_movie
    b.u64(0);
    b.u64(0);
    b.u32(track);
    b.u32(0);
    b.u64(duration);
    b.zeros(8);
    b.u16(0); // layer
    b.u16(if track == AUDIO_TRACK { 1 } else { 0 }); // alternate_group
    b.u16(if track == AUDIO_TRACK { 0x0100 } else { 0 }); // volume
    b.u16(0);
    b.matrix();
    b.u32(width << 16);
    b.u32(height << 16);
    b.close();
}

/// `mdhd`, `hdlr`, and the opening of `minf` up to (not including) `stbl`. Leaves `mdia`
/// and `minf` open. `audio`: a sound track (`soun`, `smhd`), else video.
fn media_head(b: &mut BoxBuf, timescale: u32, duration: u64, audio: bool) {
    b.open(b"mdia");
    b.open_full(b"mdhd", 1, 0);
    b.u64(0);
    b.u64(0);
    b.u32(timescale);
    b.u64(duration);
    b.u16(0x55c4); // language "und"
    b.u16(0);
    b.close();
    b.open_full(b"hdlr", 0, 0);
    b.u32(0);
    b.bytes(if audio { b"soun" } else { b"vide" });
    b.zeros(12);
    b.bytes(if audio {
        b"Vigil audio\0"
    } else {
        b"Vigil video\0"
    });
    b.close();
    b.open(b"minf");
    if audio {
        b.open_full(b"smhd", 0, 0);
        b.zeros(4);
    } else {
        b.open_full(b"vmhd", 0, 1);
        b.zeros(8);
    }
    b.close();
    b.open(b"dinf");
    b.open_full(b"dref", 0, 0);
    b.u32(1);
    b.open_full(b"url ", 0, 1); // self-contained
    b.close();
    b.close();
    b.close();
}

/// An empty `trak` of a fragmented file (its samples are all in fragments).
fn empty_trak(b: &mut BoxBuf, track: u32, entry: &[u8], timescale: u32, dims: (u32, u32)) {
    b.open(b"trak");
    tkhd(b, track, dims.0, dims.1, 0);
    media_head(b, timescale, 0, track == AUDIO_TRACK);
    b.open(b"stbl");
    b.open_full(b"stsd", 0, 0);
    b.u32(1);
    b.bytes(entry);
    b.close();
    for empty in [b"stts", b"stsc", b"stco"] {
        b.open_full(empty, 0, 0);
        b.u32(0);
        b.close();
    }
    b.open_full(b"stsz", 0, 0);
    b.u32(0);
    b.u32(0);
    b.close();
    b.close(); // stbl
    b.close(); // minf
    b.close(); // mdia
    b.close(); // trak
}

fn trex(b: &mut BoxBuf, track: u32) {
    b.open_full(b"trex", 0, 0);
    b.u32(track);
    b.u32(1); // default_sample_description_index
    b.u32(0);
    b.u32(0);
    b.u32(0); // default flags: sync samples (audio; video sets its own per sample)
    b.close();
}

/// Builds `ftyp` + `moov` for a video track and, optionally, an audio track.
///
/// `sample_entry` is a complete `avc1`/`hvc1` box (retina's `mp4_sample_entry().build()`).
pub fn init_segment(
    sample_entry: &[u8],
    width: u32,
    height: u32,
    audio: Option<&AudioTrack>,
) -> Init {
    let mut b = BoxBuf::new();
    ftyp(&mut b);
    b.open(b"moov");
    mvhd(&mut b, 0);
    empty_trak(
        &mut b,
        VIDEO_TRACK,
        sample_entry,
        TIMESCALE,
        (width, height),
    );
    if let Some(a) = audio {
        empty_trak(&mut b, AUDIO_TRACK, &a.sample_entry, a.timescale, (0, 0));
    }
    b.open(b"mvex");
    b.open_full(b"mehd", 1, 0);
    let mehd_duration_offset = b.buf.len() as u64;
    b.u64(0);
    b.close();
    trex(&mut b, VIDEO_TRACK);
    if audio.is_some() {
        trex(&mut b, AUDIO_TRACK);
    }
    b.close(); // mvex
    b.close(); // moov
    Init {
        bytes: b.buf,
        mehd_duration_offset,
    }
}

/// A run of consecutive samples of one track stored contiguously (one fragment's, in a
/// clip). A clip's chunks are listed in the order of their data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// [`VIDEO_TRACK`] or [`AUDIO_TRACK`].
    pub track: u32,
    pub samples: u32,
    /// 1-based index into the track's sample entries.
    pub entry: u32,
    /// Bytes of sample data.
    pub bytes: u64,
}

/// One track of a clip, a progressive (non-fragmented) MP4: what goes in its `trak`.
pub struct ClipTrack<'a> {
    /// [`VIDEO_TRACK`] or [`AUDIO_TRACK`].
    pub track: u32,
    /// The track's media timescale (90 kHz for video, the sample rate for audio).
    pub timescale: u32,
    /// Video size (0 for audio).
    pub width: u32,
    pub height: u32,
    /// Distinct sample entries (`avc1`/`hvc1`/`mp4a` boxes) in order of first use.
    pub sample_entries: Vec<&'a [u8]>,
    pub samples: &'a [Sample],
    /// Nothing to show for this long first (movie timescale): an empty edit, for a track
    /// whose first sample comes after the clip's start.
    pub edit_delay: u64,
    /// The edit: where presentation starts in the media (the track's timescale, from its
    /// first sample, for video a keyframe at or before the requested start) and how long
    /// it lasts (movie timescale, 90 kHz).
    pub edit_media_time: u64,
    pub edit_duration: u64,
}

/// Builds everything of a clip that precedes its sample data: `ftyp`, `moov` (a `trak`
/// per track, each with an edit list, so players start at the requested time although
/// the data starts at the keyframe before it) and a 64-bit `mdat` header. The chunks'
/// data follows it, in the order of `chunks`.
pub fn clip_header(tracks: &[ClipTrack], chunks: &[Chunk]) -> Vec<u8> {
    // The header's length does not depend on the offsets it holds: build it once with
    // zeros to learn where the data starts, then for real.
    let len = clip_header_at(tracks, chunks, 0).len() as u64;
    let out = clip_header_at(tracks, chunks, len);
    debug_assert_eq!(out.len() as u64, len);
    out
}

fn clip_header_at(tracks: &[ClipTrack], chunks: &[Chunk], data_start: u64) -> Vec<u8> {
    let duration = tracks
        .iter()
        .map(|t| t.edit_delay + t.edit_duration)
        .max()
        .unwrap_or(0);
    let mut b = BoxBuf::new();
    ftyp(&mut b);
    b.open(b"moov");
    mvhd(&mut b, duration);
    for t in tracks {
        clip_trak(&mut b, t, chunks, data_start);
    }
    b.close(); // moov
    let data: u64 = chunks.iter().map(|c| c.bytes).sum();
    b.u32(1); // size in largesize
    b.bytes(b"mdat");
    b.u64(16 + data);
    b.buf
}

fn clip_trak(b: &mut BoxBuf, t: &ClipTrack, chunks: &[Chunk], data_start: u64) {
    let media_duration: u64 = t.samples.iter().map(|s| s.duration as u64).sum();
    b.open(b"trak");
    tkhd(
        b,
        t.track,
        t.width,
        t.height,
        t.edit_delay + t.edit_duration,
    );
    b.open(b"edts");
    b.open_full(b"elst", 1, 0);
    b.u32(if t.edit_delay > 0 { 2 } else { 1 });
    if t.edit_delay > 0 {
        b.u64(t.edit_delay);
        b.u64(u64::MAX); // media_time -1: empty
        b.u16(1);
        b.u16(0);
    }
    b.u64(t.edit_duration);
    b.u64(t.edit_media_time);
    b.u16(1); // media_rate_integer
    b.u16(0);
    b.close();
    b.close();
    media_head(b, t.timescale, media_duration, t.track == AUDIO_TRACK);
    b.open(b"stbl");
    b.open_full(b"stsd", 0, 0);
    b.u32(t.sample_entries.len() as u32);
    for e in &t.sample_entries {
        b.bytes(e);
    }
    b.close();
    sample_tables(b, t.samples);
    // This track's chunks, and where each one's data starts in the file.
    let mut mine: Vec<(&Chunk, u64)> = Vec::new();
    let mut off = data_start;
    for c in chunks {
        if c.track == t.track {
            mine.push((c, off));
        }
        off += c.bytes;
    }
    let mut stsc: Vec<(u32, u32, u32)> = Vec::new();
    for (i, (c, _)) in (1..).zip(&mine) {
        if stsc
            .last()
            .is_none_or(|l| (l.1, l.2) != (c.samples, c.entry))
        {
            stsc.push((i, c.samples, c.entry));
        }
    }
    b.open_full(b"stsc", 0, 0);
    b.u32(stsc.len() as u32);
    for (first, n, entry) in stsc {
        b.u32(first);
        b.u32(n);
        b.u32(entry);
    }
    b.close();
    b.open_full(b"stsz", 0, 0);
    b.u32(0);
    b.u32(t.samples.len() as u32);
    for s in t.samples {
        b.u32(s.size);
    }
    b.close();
    b.open_full(b"co64", 0, 0);
    b.u32(mine.len() as u32);
    for (_, off) in &mine {
        b.u64(*off);
    }
    b.close();
    b.close(); // stbl
    b.close(); // minf
    b.close(); // mdia
    b.close(); // trak
}

/// Runs of equal values: (count, value), in order.
fn runs<T: PartialEq>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

/// A clip track's `stts` (decoding times, in runs of equal durations), `ctts` (composition
/// offsets, version 1, signed, in runs; only when some are not 0) and `stss` (sync samples;
/// only when some are not keyframes): ISO/IEC 14496-12 8.6.1.2, 8.6.1.3, 8.6.2.
fn sample_tables(b: &mut BoxBuf, samples: &[Sample]) {
    b.open_full(b"stts", 0, 0);
    let durations = runs(samples.iter().map(|s| s.duration));
    b.u32(durations.len() as u32);
    for (n, d) in durations {
        b.u32(n);
        b.u32(d);
    }
    b.close();
    if samples.iter().any(|s| s.cts_offset != 0) {
        // Composition offsets, version 1 (signed).
        b.open_full(b"ctts", 1, 0);
        let offsets = runs(samples.iter().map(|s| s.cts_offset));
        b.u32(offsets.len() as u32);
        for (n, o) in offsets {
            b.u32(n);
            b.u32(o as u32);
        }
        b.close();
    }
    if samples.iter().any(|s| !s.is_key) {
        b.open_full(b"stss", 0, 0);
        let keys: Vec<u32> = (1..)
            .zip(samples)
            .filter(|(_, s)| s.is_key)
            .map(|(i, _)| i)
            .collect();
        b.u32(keys.len() as u32);
        for k in keys {
            b.u32(k);
        }
        b.close();
    }
}

/// `trun` flags: data offset, per-sample duration, size and flags present.
const TRUN_FLAGS: u32 = 0x000001 | 0x000100 | 0x000200 | 0x000400;
/// ... and per-sample composition time offsets (ISO/IEC 14496-12 §8.8.8), written only
/// when a fragment has a non-zero one.
const TRUN_CTS: u32 = 0x000800;
const KEY_FLAGS: u32 = 0x0200_0000;
const NON_KEY_FLAGS: u32 = 0x0101_0000;

/// An audio run of a fragment: its first sample's decode time (the audio track's
/// timescale, from the segment's start) and its samples (all sync samples).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioRun {
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
}

fn traf(b: &mut BoxBuf, track: u32, base_decode_time: u64, samples: &[Sample]) -> usize {
    b.open(b"traf");
    b.open_full(b"tfhd", 0, 0x020000); // default-base-is-moof
    b.u32(track);
    b.close();
    b.open_full(b"tfdt", 1, 0);
    b.u64(base_decode_time);
    b.close();
    let cts = samples.iter().any(|s| s.cts_offset != 0);
    if cts {
        // Version 1: signed offsets (B-frames displayed before their decode time).
        b.open_full(b"trun", 1, TRUN_FLAGS | TRUN_CTS);
    } else {
        b.open_full(b"trun", 0, TRUN_FLAGS);
    }
    b.u32(samples.len() as u32);
    let data_offset_pos = b.buf.len();
    b.u32(0); // data_offset, patched by the caller
    for s in samples {
        b.u32(s.duration);
        b.u32(s.size);
        b.u32(if s.is_key { KEY_FLAGS } else { NON_KEY_FLAGS });
        if cts {
            b.u32(s.cts_offset as u32);
        }
    }
    b.close();
    b.close(); // traf
    data_offset_pos
}

/// Builds everything of a fragment that precedes the frame data: `prft`, `moof` and the
/// `mdat` header. The caller writes the video samples' data right after it, in order,
/// then the audio samples'.
pub fn fragment_header(
    seq: u32,
    base_decode_time: u64,
    utc_us: i64,
    samples: &[Sample],
    audio: Option<&AudioRun>,
) -> Vec<u8> {
    let audio = audio.filter(|a| !a.samples.is_empty());
    let mut b = BoxBuf::new();
    b.open_full(b"prft", 1, 0);
    b.u32(VIDEO_TRACK); // reference_track_ID
    b.u64(unix_us_to_ntp(utc_us));
    b.u64(base_decode_time);
    b.close();
    let moof_start = b.buf.len();
    b.open(b"moof");
    b.open_full(b"mfhd", 0, 0);
    b.u32(seq);
    b.close();
    let video_pos = traf(&mut b, VIDEO_TRACK, base_decode_time, samples);
    let audio_pos = audio.map(|a| traf(&mut b, AUDIO_TRACK, a.base_decode_time, &a.samples));
    b.close(); // moof
    let moof_len = b.buf.len() - moof_start;
    let video_bytes: u64 = samples.iter().map(|s| s.size as u64).sum();
    let data_offset = (moof_len + 8) as u32;
    b.buf[video_pos..video_pos + 4].copy_from_slice(&data_offset.to_be_bytes());
    let mut payload = video_bytes;
    if let (Some(pos), Some(a)) = (audio_pos, audio) {
        let off = data_offset + video_bytes as u32;
        b.buf[pos..pos + 4].copy_from_slice(&off.to_be_bytes());
        payload += a.samples.iter().map(|s| s.size as u64).sum::<u64>();
    }
    b.u32((payload + 8) as u32);
    b.bytes(b"mdat");
    b.buf
}

fn unix_us_to_ntp(us: i64) -> u64 {
    let us = us.max(0) as u64;
    let secs = us / 1_000_000 + NTP_UNIX_OFFSET;
    let frac = ((us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

fn ntp_to_unix_us(ntp: u64) -> i64 {
    let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET);
    let frac = ((ntp & 0xffff_ffff) * 1_000_000 + (1 << 31)) >> 32;
    (secs * 1_000_000 + frac) as i64
}

mod scan;
pub use scan::{Fragment, ScanResult, scan};

#[cfg(test)]
mod tests;
