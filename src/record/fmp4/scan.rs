//! Parsing segment files back: [`scan`] walks the fragments of a (possibly cut) segment
//! and returns where its playable prefix ends, with every fragment's samples and UTC.

use std::io::{self, Read, Seek, SeekFrom};

use super::*;

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
    /// The video samples (their data starts at `data_offset`).
    pub samples: Vec<Sample>,
    /// The audio samples, if the fragment has any (their data follows the video's).
    pub audio: Option<AudioRun>,
}

/// What a scan of a segment file found.
#[derive(Debug)]
pub struct ScanResult {
    /// Length of the init segment (`ftyp` + `moov`), 0 if incomplete.
    pub init_len: u64,
    pub sample_entry: Vec<u8>,
    /// The audio track, if the file has one.
    pub audio: Option<AudioTrack>,
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

/// One `traf`: track ID, base decode time, data offset (relative to the `moof`), samples.
type TrackRun = (u32, u64, i64, Vec<Sample>);

fn parse_traf(traf: &[u8]) -> Result<TrackRun, String> {
    let tfhd = find(traf, &[b"tfhd"]).ok_or("traf without tfhd")?.0;
    let tfhd_flags = rd_u32(tfhd, 0).ok_or("short tfhd")? & 0xff_ffff;
    if tfhd_flags & 0x020000 == 0 {
        return Err("tfhd without default-base-is-moof".into());
    }
    let track = rd_u32(tfhd, 4).ok_or("short tfhd")?;
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
    // The count is the file's word: a damaged one must not size the allocation (the
    // box holds at most this many entries).
    if n > trun.len().saturating_sub(12) / stride {
        return Err(format!("trun claims {n} samples in {} bytes", trun.len()));
    }
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
    Ok((track, base, data_offset, samples))
}

/// A parsed `moof`: its video run and its audio run, if any.
struct Moof {
    video: TrackRun,
    audio: Option<TrackRun>,
}

/// Parses a `moof` body: one `traf` for the video track, optionally one for audio.
fn parse_moof(moof: &[u8]) -> Result<Moof, String> {
    let mut video = None;
    let mut audio = None;
    for (fourcc, s, e) in children(moof) {
        if &fourcc != b"traf" {
            continue;
        }
        let run = parse_traf(&moof[s..e])?;
        match run.0 {
            VIDEO_TRACK => video = Some(run),
            AUDIO_TRACK => audio = Some(run),
            t => return Err(format!("traf of unknown track {t}")),
        }
    }
    Ok(Moof {
        video: video.ok_or("moof without a video traf")?,
        audio,
    })
}

/// A parsed `moof` waiting for its `mdat`: (offset, the moof, preceding `prft` as
/// (offset, UTC µs)).
type PendingMoof = (u64, Moof, Option<(u64, i64)>);

/// The track facts of a `moov` box (body `body`, box at offset `pos`): the video sample
/// entry, the audio track, where `mehd`'s duration is. Errors: no video sample entry.
fn parse_moov(body: &[u8], pos: u64, res: &mut ScanResult) -> Result<(), String> {
    for (fourcc, ts, te) in children(body) {
        if &fourcc != b"trak" {
            continue;
        }
        let trak = &body[ts..te];
        let id = find(trak, &[b"tkhd"]).and_then(|(t, _)| {
            // tkhd v1: version/flags 4, two 8-byte times, then track_ID.
            rd_u32(t, if t.first() == Some(&1) { 20 } else { 12 })
        });
        let entry = find(trak, &[b"mdia", b"minf", b"stbl", b"stsd"]).and_then(|(stsd, _)| {
            // `s` is the entry's body start; its header is the 8 bytes
            // before.
            let (_, s, e) = children(stsd.get(8..).unwrap_or(&[])).next()?;
            Some(stsd[8 + s - 8..8 + e].to_vec())
        });
        let timescale = find(trak, &[b"mdia", b"mdhd"])
            .and_then(|(m, _)| rd_u32(m, if m.first() == Some(&1) { 20 } else { 12 }));
        match (id, entry) {
            (Some(VIDEO_TRACK), Some(e)) => res.sample_entry = e,
            (Some(AUDIO_TRACK), Some(e)) => {
                res.audio = Some(AudioTrack {
                    sample_entry: e,
                    timescale: timescale.unwrap_or(0),
                })
            }
            _ => {}
        }
    }
    if let Some((_, off)) = find(body, &[b"mvex", b"mehd"]) {
        res.mehd_duration_offset = Some(pos + 8 + off as u64 + 4);
    }
    if res.sample_entry.is_empty() {
        return Err("moov has no sample entry".into());
    }
    Ok(())
}

/// The fragment that the `mdat` box at `pos` (`size` bytes) completes, given its pending
/// `moof` (and `prft`). Errors: the `mdat` does not hold what the `moof` describes.
fn fragment(pending: PendingMoof, pos: u64, size: u64) -> Result<Fragment, String> {
    let (moof_pos, m, prft) = pending;
    let (_, base, data_off, samples) = m.video;
    let video: u64 = samples.iter().map(|s| s.size as u64).sum();
    let audio: u64 = m
        .audio
        .as_ref()
        .map_or(0, |a| a.3.iter().map(|s| s.size as u64).sum());
    let audio_ok = m
        .audio
        .as_ref()
        .is_none_or(|a| moof_pos as i64 + a.2 == (pos + 8 + video) as i64);
    if video + audio != size - 8 || moof_pos as i64 + data_off != (pos + 8) as i64 || !audio_ok {
        return Err(format!(
            "mdat at offset {pos} holds {} bytes, its moof describes {}",
            size - 8,
            video + audio
        ));
    }
    Ok(Fragment {
        offset: prft.map(|p| p.0).unwrap_or(moof_pos),
        end: pos + size,
        data_offset: pos + 8,
        base_decode_time: base,
        utc_us: prft.map(|p| p.1),
        samples,
        audio: m.audio.map(|a| AudioRun {
            base_decode_time: a.1,
            samples: a.3,
        }),
    })
}

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
        audio: None,
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
                if let Err(e) = parse_moov(&body, pos, &mut res) {
                    res.problem = Some(e);
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
                    Ok(m) => {
                        pending_moof = Some((pos, m, pending_prft.take()));
                    }
                    Err(e) => {
                        res.problem = Some(format!("bad moof at offset {pos}: {e}"));
                        break;
                    }
                }
            }
            b"mdat" if pending_moof.is_some() => {
                match fragment(pending_moof.take().unwrap(), pos, size) {
                    Ok(f) => res.fragments.push(f),
                    Err(e) => {
                        res.problem = Some(e);
                        break;
                    }
                }
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
