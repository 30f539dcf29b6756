//! The segment file format: fragmented MP4 (ISO/IEC 14496-12), written and parsed.
//!
//! A segment file is `ftyp`, `moov` (one video track, timescale 90 kHz, the sample entry
//! that retina builds from the stream's parameters, and an `mvex/mehd` whose duration is
//! filled in when the segment is closed), then fragments: `prft` (UTC of the fragment's
//! first frame) + `moof` + `mdat`. Every keyframe starts a fragment, so a keyframe's byte
//! offset is a fragment boundary. A crash can only cut the last fragment short; everything
//! before it plays, and [`scan`] finds where the playable prefix ends.
//!
//! Hand-written on purpose: the writer emits about a dozen fixed-layout boxes around the
//! sample entry retina already builds, and recovery needs byte-exact control over where
//! each fragment begins and ends. The `mp4-atom` crate would need retina's entry re-parsed
//! into its own types and does not help with the crash-tail scan.

use std::io::{self, Read, Seek, SeekFrom};

/// Media timescale of every segment: RTP's 90 kHz video clock.
pub const TIMESCALE: u32 = 90_000;

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
    b.u32(2); // next_track_ID
    b.close();
}

fn tkhd(b: &mut BoxBuf, width: u32, height: u32, duration: u64) {
    b.open_full(b"tkhd", 1, 0x3); // enabled | in_movie
    b.u64(0);
    b.u64(0);
    b.u32(1); // track_ID
    b.u32(0);
    b.u64(duration);
    b.zeros(8);
    b.u16(0); // layer
    b.u16(0); // alternate_group
    b.u16(0); // volume
    b.u16(0);
    b.matrix();
    b.u32(width << 16);
    b.u32(height << 16);
    b.close();
}

/// `mdhd`, `hdlr`, and the opening of `minf` up to (not including) `stbl`. Leaves `mdia`
/// and `minf` open.
fn media_head(b: &mut BoxBuf, duration: u64) {
    b.open(b"mdia");
    b.open_full(b"mdhd", 1, 0);
    b.u64(0);
    b.u64(0);
    b.u32(TIMESCALE);
    b.u64(duration);
    b.u16(0x55c4); // language "und"
    b.u16(0);
    b.close();
    b.open_full(b"hdlr", 0, 0);
    b.u32(0);
    b.bytes(b"vide");
    b.zeros(12);
    b.bytes(b"Vigil video\0");
    b.close();
    b.open(b"minf");
    b.open_full(b"vmhd", 0, 1);
    b.zeros(8);
    b.close();
    b.open(b"dinf");
    b.open_full(b"dref", 0, 0);
    b.u32(1);
    b.open_full(b"url ", 0, 1); // self-contained
    b.close();
    b.close();
    b.close();
}

/// Builds `ftyp` + `moov` for one video track.
///
/// `sample_entry` is a complete `avc1`/`hvc1` box (retina's `mp4_sample_entry().build()`).
pub fn init_segment(sample_entry: &[u8], width: u32, height: u32) -> Init {
    let mut b = BoxBuf::new();
    ftyp(&mut b);
    b.open(b"moov");
    mvhd(&mut b, 0);
    b.open(b"trak");
    tkhd(&mut b, width, height, 0);
    media_head(&mut b, 0);
    b.open(b"stbl");
    b.open_full(b"stsd", 0, 0);
    b.u32(1);
    b.bytes(sample_entry);
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

    b.open(b"mvex");
    b.open_full(b"mehd", 1, 0);
    let mehd_duration_offset = b.buf.len() as u64;
    b.u64(0);
    b.close();
    b.open_full(b"trex", 0, 0);
    b.u32(1); // track_ID
    b.u32(1); // default_sample_description_index
    b.u32(0);
    b.u32(0);
    b.u32(0);
    b.close();
    b.close(); // mvex
    b.close(); // moov
    Init {
        bytes: b.buf,
        mehd_duration_offset,
    }
}

/// A run of consecutive samples stored contiguously (one fragment's, in a clip).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub samples: u32,
    /// 1-based index into the clip's sample entries.
    pub entry: u32,
    /// Bytes of sample data.
    pub bytes: u64,
}

/// A clip as one progressive (non-fragmented) MP4: what goes in its `moov`.
pub struct ClipTrack<'a> {
    pub width: u32,
    pub height: u32,
    /// Distinct sample entries (`avc1`/`hvc1` boxes) in order of first use.
    pub sample_entries: Vec<&'a [u8]>,
    pub samples: &'a [Sample],
    pub chunks: &'a [Chunk],
    /// The edit: where presentation starts in the media (90 kHz from the first sample,
    /// which is a keyframe at or before the requested start) and how long it lasts.
    pub edit_media_time: u64,
    pub edit_duration: u64,
}

/// Builds everything of a clip that precedes its sample data: `ftyp`, `moov` (with an
/// edit list, so players start at the requested time although the data starts at the
/// keyframe before it) and a 64-bit `mdat` header. The chunks' data follows it, in order.
pub fn clip_header(t: &ClipTrack) -> Vec<u8> {
    // The header's length does not depend on the offsets it holds: build it once with
    // zeros to learn where the data starts, then for real.
    let len = clip_header_at(t, 0).len() as u64;
    let out = clip_header_at(t, len);
    debug_assert_eq!(out.len() as u64, len);
    out
}

fn clip_header_at(t: &ClipTrack, data_start: u64) -> Vec<u8> {
    let media_duration: u64 = t.samples.iter().map(|s| s.duration as u64).sum();
    let mut b = BoxBuf::new();
    ftyp(&mut b);
    b.open(b"moov");
    mvhd(&mut b, t.edit_duration);
    b.open(b"trak");
    tkhd(&mut b, t.width, t.height, t.edit_duration);
    b.open(b"edts");
    b.open_full(b"elst", 1, 0);
    b.u32(1);
    b.u64(t.edit_duration);
    b.u64(t.edit_media_time);
    b.u16(1); // media_rate_integer
    b.u16(0);
    b.close();
    b.close();
    media_head(&mut b, media_duration);
    b.open(b"stbl");
    b.open_full(b"stsd", 0, 0);
    b.u32(t.sample_entries.len() as u32);
    for e in &t.sample_entries {
        b.bytes(e);
    }
    b.close();
    // Decoding times: runs of equal durations.
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for s in t.samples {
        match runs.last_mut() {
            Some((n, d)) if *d == s.duration => *n += 1,
            _ => runs.push((1, s.duration)),
        }
    }
    b.open_full(b"stts", 0, 0);
    b.u32(runs.len() as u32);
    for (n, d) in runs {
        b.u32(n);
        b.u32(d);
    }
    b.close();
    if t.samples.iter().any(|s| s.cts_offset != 0) {
        // Composition offsets, version 1 (signed), in runs.
        let mut runs: Vec<(u32, i32)> = Vec::new();
        for s in t.samples {
            match runs.last_mut() {
                Some((n, o)) if *o == s.cts_offset => *n += 1,
                _ => runs.push((1, s.cts_offset)),
            }
        }
        b.open_full(b"ctts", 1, 0);
        b.u32(runs.len() as u32);
        for (n, o) in runs {
            b.u32(n);
            b.u32(o as u32);
        }
        b.close();
    }
    b.open_full(b"stss", 0, 0);
    let keys: Vec<u32> = (1..)
        .zip(t.samples)
        .filter(|(_, s)| s.is_key)
        .map(|(i, _)| i)
        .collect();
    b.u32(keys.len() as u32);
    for k in keys {
        b.u32(k);
    }
    b.close();
    let mut stsc: Vec<(u32, u32, u32)> = Vec::new();
    for (i, c) in (1..).zip(t.chunks) {
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
    b.u32(t.chunks.len() as u32);
    let mut off = data_start;
    for c in t.chunks {
        b.u64(off);
        off += c.bytes;
    }
    b.close();
    b.close(); // stbl
    b.close(); // minf
    b.close(); // mdia
    b.close(); // trak
    b.close(); // moov
    let data: u64 = t.chunks.iter().map(|c| c.bytes).sum();
    b.u32(1); // size in largesize
    b.bytes(b"mdat");
    b.u64(16 + data);
    b.buf
}

/// `trun` flags: data offset, per-sample duration, size and flags present.
const TRUN_FLAGS: u32 = 0x000001 | 0x000100 | 0x000200 | 0x000400;
/// ... and per-sample composition time offsets (ISO/IEC 14496-12 §8.8.8), written only
/// when a fragment has a non-zero one.
const TRUN_CTS: u32 = 0x000800;
const KEY_FLAGS: u32 = 0x0200_0000;
const NON_KEY_FLAGS: u32 = 0x0101_0000;

/// Builds everything of a fragment that precedes the frame data: `prft`, `moof` and the
/// `mdat` header. The caller writes the samples' data right after it, in order.
pub fn fragment_header(
    seq: u32,
    base_decode_time: u64,
    utc_us: i64,
    samples: &[Sample],
) -> Vec<u8> {
    let mut b = BoxBuf::new();
    b.open_full(b"prft", 1, 0);
    b.u32(1); // reference_track_ID
    b.u64(unix_us_to_ntp(utc_us));
    b.u64(base_decode_time);
    b.close();
    let moof_start = b.buf.len();
    b.open(b"moof");
    b.open_full(b"mfhd", 0, 0);
    b.u32(seq);
    b.close();
    b.open(b"traf");
    b.open_full(b"tfhd", 0, 0x020000); // default-base-is-moof
    b.u32(1);
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
    b.u32(0); // data_offset, patched below
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
    b.close(); // moof
    let moof_len = b.buf.len() - moof_start;
    let data_offset = (moof_len + 8) as u32;
    b.buf[data_offset_pos..data_offset_pos + 4].copy_from_slice(&data_offset.to_be_bytes());
    let payload: u64 = samples.iter().map(|s| s.size as u64).sum();
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

/// A complete fragment found by [`scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of the fragment's first box (`prft`, or `moof` if there is none).
    pub offset: u64,
    /// Offset just past its `mdat`.
    pub end: u64,
    /// Offset of the first sample's data.
    pub data_offset: u64,
    pub base_decode_time: u64,
    pub utc_us: Option<i64>,
    pub samples: Vec<Sample>,
}

/// What a scan of a segment file found.
#[derive(Debug)]
pub struct ScanResult {
    /// Length of the init segment (`ftyp` + `moov`), 0 if incomplete.
    pub init_len: u64,
    pub sample_entry: Vec<u8>,
    pub mehd_duration_offset: Option<u64>,
    pub fragments: Vec<Fragment>,
    /// Bytes up to the end of the last complete fragment: the playable prefix.
    pub valid_len: u64,
    pub file_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub problem: Option<String>,
}

impl ScanResult {
    pub fn frames(&self) -> u64 {
        self.fragments.iter().map(|f| f.samples.len() as u64).sum()
    }
    pub fn duration_90k(&self) -> u64 {
        self.fragments
            .iter()
            .flat_map(|f| f.samples.iter())
            .map(|s| s.duration as u64)
            .sum()
    }
}

fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes(s.try_into().unwrap()))
}

fn rd_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().unwrap()))
}

/// Iterates the child boxes of `b` as (fourcc, body start, body end) in `b`'s coordinates.
fn children(b: &[u8]) -> impl Iterator<Item = ([u8; 4], usize, usize)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let size = rd_u32(b, pos)? as usize;
        if size < 8 || pos + size > b.len() {
            return None;
        }
        let fourcc: [u8; 4] = b[pos + 4..pos + 8].try_into().unwrap();
        let r = (fourcc, pos + 8, pos + size);
        pos += size;
        Some(r)
    })
}

fn find<'a>(b: &'a [u8], path: &[&[u8; 4]]) -> Option<(&'a [u8], usize)> {
    let mut cur = b;
    let mut base = 0;
    for want in path {
        let (_, s, e) = children(cur).find(|(f, _, _)| f == *want)?;
        base += s;
        cur = &cur[s..e];
    }
    Some((cur, base))
}

/// Parses a `moof` body into (seq, base decode time, data offset rel. to moof, samples).
fn parse_moof(moof: &[u8]) -> Result<(u64, i64, Vec<Sample>), String> {
    let traf = find(moof, &[b"traf"]).ok_or("moof without traf")?.0;
    let tfhd = find(traf, &[b"tfhd"]).ok_or("traf without tfhd")?.0;
    let tfhd_flags = rd_u32(tfhd, 0).ok_or("short tfhd")? & 0xff_ffff;
    if tfhd_flags & 0x020000 == 0 {
        return Err("tfhd without default-base-is-moof".into());
    }
    let tfdt = find(traf, &[b"tfdt"]).ok_or("traf without tfdt")?.0;
    let base = if tfdt.first() == Some(&1) {
        rd_u64(tfdt, 4).ok_or("short tfdt")?
    } else {
        rd_u32(tfdt, 4).ok_or("short tfdt")? as u64
    };
    let trun = find(traf, &[b"trun"]).ok_or("traf without trun")?.0;
    let flags = rd_u32(trun, 0).ok_or("short trun")? & 0xff_ffff;
    if flags != TRUN_FLAGS && flags != TRUN_FLAGS | TRUN_CTS {
        return Err(format!("unexpected trun flags {flags:#x}"));
    }
    let cts = flags & TRUN_CTS != 0;
    let stride = if cts { 16 } else { 12 };
    let n = rd_u32(trun, 4).ok_or("short trun")? as usize;
    let data_offset = rd_u32(trun, 8).ok_or("short trun")? as i32 as i64;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let at = 12 + i * stride;
        let duration = rd_u32(trun, at).ok_or("short trun")?;
        let size = rd_u32(trun, at + 4).ok_or("short trun")?;
        let sflags = rd_u32(trun, at + 8).ok_or("short trun")?;
        let cts_offset = if cts {
            rd_u32(trun, at + 12).ok_or("short trun")? as i32
        } else {
            0
        };
        samples.push(Sample {
            duration,
            size,
            is_key: sflags & 0x0001_0000 == 0,
            cts_offset,
        });
    }
    Ok((base, data_offset, samples))
}

/// A parsed `moof` waiting for its `mdat`: (offset, base decode time, data offset,
/// samples, preceding `prft` as (offset, UTC µs)).
type PendingMoof = (u64, u64, i64, Vec<Sample>, Option<(u64, i64)>);

/// Reads a segment file box by box and returns its structure and playable prefix.
///
/// Reads only box headers and `moof`s, never frame data, so it is cheap even for large
/// files. A truncated or garbled tail ends the scan: `valid_len` is where it stopped.
pub fn scan<R: Read + Seek>(r: &mut R) -> io::Result<ScanResult> {
    let file_len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    let mut res = ScanResult {
        init_len: 0,
        sample_entry: Vec::new(),
        mehd_duration_offset: None,
        fragments: Vec::new(),
        valid_len: 0,
        file_len,
        problem: None,
    };
    let mut pos = 0u64;
    let mut pending_prft: Option<(u64, i64)> = None;
    let mut pending_moof: Option<PendingMoof> = None;
    let mut seen_ftyp = false;
    loop {
        if pos == file_len {
            if pending_moof.is_some() || pending_prft.is_some() {
                res.problem = Some("file ends inside a fragment".into());
            }
            break;
        }
        if file_len - pos < 8 {
            res.problem = Some(format!("{} stray bytes at end", file_len - pos));
            break;
        }
        let mut hdr = [0u8; 8];
        r.seek(SeekFrom::Start(pos))?;
        r.read_exact(&mut hdr)?;
        let size = u32::from_be_bytes(hdr[..4].try_into().unwrap()) as u64;
        let fourcc: [u8; 4] = hdr[4..].try_into().unwrap();
        if size < 8 {
            res.problem = Some(format!("bad box size {size} at offset {pos}"));
            break;
        }
        if pos + size > file_len {
            res.problem = Some(format!(
                "{} box at offset {pos} is cut short ({} of {size} bytes)",
                String::from_utf8_lossy(&fourcc),
                file_len - pos
            ));
            break;
        }
        let body_len = (size - 8) as usize;
        match &fourcc {
            b"ftyp" if pos == 0 => seen_ftyp = true,
            b"moov" if seen_ftyp && res.init_len == 0 => {
                let mut body = vec![0u8; body_len];
                r.read_exact(&mut body)?;
                if let Some((stsd, _)) = find(&body, &[b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
                    && let Some((_, s, e)) = children(stsd.get(8..).unwrap_or(&[])).next()
                {
                    // `s` is the entry's body start; its header is the 8 bytes before.
                    res.sample_entry = stsd[8 + s - 8..8 + e].to_vec();
                }
                if let Some((_, off)) = find(&body, &[b"mvex", b"mehd"]) {
                    res.mehd_duration_offset = Some(pos + 8 + off as u64 + 4);
                }
                if res.sample_entry.is_empty() {
                    res.problem = Some("moov has no sample entry".into());
                    break;
                }
                res.init_len = pos + size;
                res.valid_len = res.init_len;
            }
            b"prft" if res.init_len > 0 && pending_moof.is_none() => {
                let mut body = vec![0u8; body_len];
                r.read_exact(&mut body)?;
                let ntp = rd_u64(&body, 8).unwrap_or(0);
                pending_prft = Some((pos, ntp_to_unix_us(ntp)));
            }
            b"moof" if res.init_len > 0 && pending_moof.is_none() => {
                let mut body = vec![0u8; body_len];
                r.read_exact(&mut body)?;
                match parse_moof(&body) {
                    Ok((base, data_off, samples)) => {
                        pending_moof = Some((pos, base, data_off, samples, pending_prft.take()));
                    }
                    Err(e) => {
                        res.problem = Some(format!("bad moof at offset {pos}: {e}"));
                        break;
                    }
                }
            }
            b"mdat" if pending_moof.is_some() => {
                let (moof_pos, base, data_off, samples, prft) = pending_moof.take().unwrap();
                let want: u64 = samples.iter().map(|s| s.size as u64).sum();
                if want != size - 8 || moof_pos as i64 + data_off != (pos + 8) as i64 {
                    res.problem = Some(format!(
                        "mdat at offset {pos} holds {} bytes, its moof describes {want}",
                        size - 8
                    ));
                    break;
                }
                res.fragments.push(Fragment {
                    offset: prft.map(|p| p.0).unwrap_or(moof_pos),
                    end: pos + size,
                    data_offset: pos + 8,
                    base_decode_time: base,
                    utc_us: prft.map(|p| p.1),
                    samples,
                });
                res.valid_len = pos + size;
            }
            other => {
                res.problem = Some(format!(
                    "unexpected {} box at offset {pos}",
                    String::from_utf8_lossy(other)
                ));
                break;
            }
        }
        pos += size;
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn fake_entry() -> Vec<u8> {
        let mut b = BoxBuf::new();
        b.open(b"avc1");
        b.zeros(78);
        b.close();
        b.buf
    }

    fn build(frags: &[Vec<Sample>]) -> Vec<u8> {
        let init = init_segment(&fake_entry(), 640, 360);
        let mut out = init.bytes;
        let mut t = 0u64;
        for (i, s) in frags.iter().enumerate() {
            out.extend(fragment_header(
                i as u32 + 1,
                t,
                1_700_000_000_000_000 + t as i64,
                s,
            ));
            for smp in s {
                out.extend(std::iter::repeat_n(0xab, smp.size as usize));
                t += smp.duration as u64;
            }
        }
        out
    }

    fn s(d: u32, size: u32, k: bool) -> Sample {
        Sample {
            duration: d,
            size,
            is_key: k,
            cts_offset: 0,
        }
    }

    #[test]
    fn round_trip() {
        let frags = vec![
            vec![s(6000, 100, true), s(6000, 50, false)],
            vec![s(6000, 70, true)],
        ];
        let f = build(&frags);
        let r = scan(&mut Cursor::new(&f)).unwrap();
        assert_eq!(r.problem, None);
        assert_eq!(r.valid_len, f.len() as u64);
        assert_eq!(r.fragments.len(), 2);
        assert_eq!(r.fragments[0].samples, frags[0]);
        assert_eq!(r.fragments[1].base_decode_time, 12000);
        assert_eq!(r.fragments[1].utc_us, Some(1_700_000_000_000_000 + 12000));
        assert_eq!(r.sample_entry, fake_entry());
        assert_eq!(r.frames(), 3);
    }

    #[test]
    fn composition_offsets_round_trip() {
        let mut b = s(6000, 40, false);
        b.cts_offset = -6000;
        let mut p = s(6000, 60, false);
        p.cts_offset = 12000;
        let frags = vec![vec![s(6000, 100, true), p, b, b], vec![s(6000, 70, true)]];
        let f = build(&frags);
        let r = scan(&mut Cursor::new(&f)).unwrap();
        assert_eq!(r.problem, None);
        assert_eq!(r.fragments[0].samples, frags[0]);
        assert_eq!(r.fragments[1].samples, frags[1]);
    }

    #[test]
    fn truncated_tail_is_cut_at_last_fragment() {
        let frags = vec![vec![s(6000, 100, true)], vec![s(6000, 70, true)]];
        let f = build(&frags);
        let full = scan(&mut Cursor::new(&f)).unwrap();
        for cut in full.fragments[1].offset as usize + 1..f.len() {
            let r = scan(&mut Cursor::new(&f[..cut])).unwrap();
            assert_eq!(r.fragments.len(), 1, "cut at {cut}");
            assert_eq!(r.valid_len, full.fragments[0].end);
            assert!(r.problem.is_some());
        }
    }

    #[test]
    fn ntp_round_trip() {
        for us in [0i64, 1, 999_999, 1_763_000_000_123_456] {
            assert_eq!(ntp_to_unix_us(unix_us_to_ntp(us)), us);
        }
    }
}
