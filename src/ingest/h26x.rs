//! What ingest reads from H.264/H.265 NAL units: how many pictures a stream may reorder
//! (from its sequence parameter set: the depth the timing model's decode-time assignment
//! waits for, `ingest::timing`), and whether a frame begins a new picture.
//!
//! H.264 (ISO/IEC 14496-10 §E.2.1): `max_num_reorder_frames` of the VUI's bitstream
//! restrictions, parsed by `h264-reader`; without them, 0 for the Baseline profile (no
//! B slices, §A.2.1) and for a stream with at most one reference frame (a B picture
//! needs a past and a future reference), otherwise unknown (learnt from the stream).
//! H.265 (ISO/IEC 23008-2 §7.3.2.2.1): `sps_max_num_reorder_pics` of the highest
//! sub-layer, always present; read here with `h264-reader`'s Exp-Golomb bit reader
//! because retina's H.265 SPS parser is private and no maintained crate parses it alone.

use h264_reader::rbsp::{BitRead, BitReader, decode_nal};

/// Whether `data` (length-prefixed NAL units, 4-byte lengths, as retina's MP4 frame
/// format gives them) begins a new picture: its first slice is the picture's first. H.264
/// §7.4.1.2.4: `first_mb_in_slice` is 0 (ue(v) 0 is the single bit 1, the first bit
/// after the one-byte NAL header); H.265 §7.4.7.1: `first_slice_segment_in_pic_flag`
/// (the first bit after the two-byte header). Frames with no slice count as new.
pub fn starts_picture(encoding: &str, data: &[u8]) -> bool {
    let mut rest = data;
    while rest.len() > 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let Some(nal) = rest.get(4..4 + len) else {
            return true;
        };
        rest = &rest[4 + len..];
        let vcl = match encoding {
            "h265" => nal.first().map(|b| (b >> 1) & 0x3f).is_some_and(|t| t < 32),
            _ => nal
                .first()
                .map(|b| b & 0x1f)
                .is_some_and(|t| (1..=5).contains(&t)),
        };
        if vcl {
            let at = if encoding == "h265" { 2 } else { 1 };
            return nal.get(at).is_none_or(|b| b & 0x80 != 0);
        }
    }
    true
}

/// The declared reorder depth, if the SPS tells it. `sps` is the whole NAL unit (with
/// its header, with emulation prevention bytes), as retina gives it.
pub fn reorder_depth(encoding: &str, sps: &[u8]) -> Option<usize> {
    match encoding {
        "h264" => h264(sps),
        "h265" => h265(sps).ok(),
        _ => None,
    }
}

/// The type of the first VCL NAL unit of `data` (length-prefixed NAL units), if any.
fn first_vcl_type(encoding: &str, data: &[u8]) -> Option<u8> {
    let mut rest = data;
    while rest.len() > 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let nal = rest.get(4..4 + len)?;
        rest = &rest[4 + len..];
        let t = match encoding {
            "h265" => (nal.first()? >> 1) & 0x3f,
            _ => nal.first()? & 0x1f,
        };
        let vcl = if encoding == "h265" {
            t < 32
        } else {
            (1..=5).contains(&t)
        };
        if vcl {
            return Some(t);
        }
    }
    None
}

/// Whether an H.265 picture is an IRAP (BLA, IDR or CRA, types 16..=23, §7.4.2.2): a
/// random access point. retina marks IDR only; CRA is what x265 and open-GOP encoders
/// put at each GOP. (H.264: retina's flag is right.)
pub fn irap(encoding: &str, data: &[u8]) -> bool {
    encoding == "h265" && first_vcl_type(encoding, data).is_some_and(|t| (16..=23).contains(&t))
}

/// Whether an H.265 picture is a RASL picture (types 8, 9): it follows a CRA in decode
/// order but references pictures before it, so it cannot be decoded in a segment that
/// starts at that CRA.
pub fn rasl(encoding: &str, data: &[u8]) -> bool {
    encoding == "h265" && matches!(first_vcl_type(encoding, data), Some(8 | 9))
}

/// Whether the stream codes whole frames only: H.264 `frame_mbs_only_flag` (§7.4.2.1.1).
/// Otherwise two fields may share one timestamp, each starting a picture: together they
/// are one frame, one MP4 sample. H.265 and unparseable SPSs count as progressive.
pub fn progressive(encoding: &str, sps: &[u8]) -> bool {
    encoding != "h264"
        || parse_h264(sps).is_none_or(|s| {
            matches!(
                s.frame_mbs_flags,
                h264_reader::nal::sps::FrameMbsFlags::Frames
            )
        })
}

fn parse_h264(sps: &[u8]) -> Option<h264_reader::nal::sps::SeqParameterSet> {
    if sps.len() < 4 {
        return None;
    }
    // decode_nal skips the one-byte H.264 NAL header itself.
    let rbsp = decode_nal(sps).ok()?;
    h264_reader::nal::sps::SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()
}

fn h264(sps: &[u8]) -> Option<usize> {
    let sps = parse_h264(sps)?;
    if let Some(b) = sps
        .vui_parameters
        .as_ref()
        .and_then(|v| v.bitstream_restrictions.as_ref())
    {
        return Some(b.max_num_reorder_frames as usize);
    }
    if u8::from(sps.profile_idc) == 66 || sps.max_num_ref_frames <= 1 {
        return Some(0);
    }
    None
}

fn h265(nal: &[u8]) -> Result<usize, h264_reader::rbsp::BitReaderError> {
    if nal.len() < 4 {
        return Err(h264_reader::rbsp::BitReaderError::ExpGolombTooLarge(
            "short SPS",
        ));
    }
    // H.265's NAL header is two bytes; decode_nal skips one.
    let rbsp = decode_nal(&nal[1..])
        .map_err(|e| h264_reader::rbsp::BitReaderError::ReaderErrorFor("rbsp", e))?;
    let mut r = BitReader::new(&rbsp[..]);
    let _vps_id: u8 = r.read(4, "sps_video_parameter_set_id")?;
    let max_sub_layers_minus1: u8 = r.read(3, "sps_max_sub_layers_minus1")?;
    let _nesting = r.read_bool("sps_temporal_id_nesting_flag")?;
    // profile_tier_level(1, sps_max_sub_layers_minus1), §7.3.3.
    skip(&mut r, 96)?; // general profile (88 bits) + general_level_idc (8)
    let mut present = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        let profile = r.read_bool("sub_layer_profile_present_flag")?;
        let level = r.read_bool("sub_layer_level_present_flag")?;
        present.push((profile, level));
    }
    if max_sub_layers_minus1 > 0 {
        skip(&mut r, 2 * (8 - max_sub_layers_minus1 as u32))?; // reserved_zero_2bits
    }
    for (profile, level) in present {
        skip(
            &mut r,
            if profile { 88 } else { 0 } + if level { 8 } else { 0 },
        )?;
    }
    r.read_ue("sps_seq_parameter_set_id")?;
    if r.read_ue("chroma_format_idc")? == 3 {
        r.read_bool("separate_colour_plane_flag")?;
    }
    r.read_ue("pic_width_in_luma_samples")?;
    r.read_ue("pic_height_in_luma_samples")?;
    if r.read_bool("conformance_window_flag")? {
        for _ in 0..4 {
            r.read_ue("conf_win_offset")?;
        }
    }
    r.read_ue("bit_depth_luma_minus8")?;
    r.read_ue("bit_depth_chroma_minus8")?;
    r.read_ue("log2_max_pic_order_cnt_lsb_minus4")?;
    let all = r.read_bool("sps_sub_layer_ordering_info_present_flag")?;
    let mut reorder = 0;
    for _ in (if all { 0 } else { max_sub_layers_minus1 })..=max_sub_layers_minus1 {
        r.read_ue("sps_max_dec_pic_buffering_minus1")?;
        reorder = r.read_ue("sps_max_num_reorder_pics")?;
        r.read_ue("sps_max_latency_increase_plus1")?;
    }
    Ok(reorder as usize)
}

fn skip<R: BitRead>(r: &mut R, mut bits: u32) -> Result<(), h264_reader::rbsp::BitReaderError> {
    while bits > 0 {
        let n = bits.min(32);
        let _: u32 = r.read(n, "profile_tier_level")?;
        bits -= n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn h264_bitstream_restrictions() {
        // x264, High profile, 2 B-frames (`-bf 2`): max_num_reorder_frames = 2.
        let sps = hex(X264_BF2_SPS);
        assert_eq!(reorder_depth("h264", &sps), Some(2));
    }

    #[test]
    fn h265_reorder_pics() {
        // x265, `bframes=2`: sps_max_num_reorder_pics = 2.
        let sps = hex(X265_BF2_SPS);
        assert_eq!(reorder_depth("h265", &sps), Some(2));
    }

    fn au(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend((n.len() as u32).to_be_bytes());
            v.extend(*n);
        }
        v
    }

    #[test]
    fn first_slice_of_a_picture() {
        // H.264: SEI then an IDR slice with first_mb_in_slice 0 (bit 1), then a slice
        // further down the picture (first_mb_in_slice 1: bits 010).
        assert!(starts_picture(
            "h264",
            &au(&[&[0x06, 0x05], &[0x65, 0x88, 0x84]])
        ));
        assert!(!starts_picture("h264", &au(&[&[0x65, 0x40, 0x84]])));
        assert!(!starts_picture("h264", &au(&[&[0x41, 0x5a]])));
        // H.265: TRAIL_R (type 1) with and without first_slice_segment_in_pic_flag.
        assert!(starts_picture("h265", &au(&[&[0x02, 0x01, 0xd0]])));
        assert!(!starts_picture("h265", &au(&[&[0x02, 0x01, 0x50]])));
        // No slice at all, or garbage: treated as a new picture.
        assert!(starts_picture("h264", &au(&[&[0x06, 0x05]])));
        assert!(starts_picture("h264", &[0, 0, 0, 9, 1]));
    }

    #[test]
    fn h265_random_access_and_leading_pictures() {
        // CRA_NUT (21), RASL_N (8), TRAIL_R (1), IDR_W_RADL (19).
        let nal = |t: u8| au(&[&[t << 1, 0x01, 0xd0]]);
        assert!(irap("h265", &nal(21)) && irap("h265", &nal(19)));
        assert!(!irap("h265", &nal(1)) && !irap("h264", &au(&[&[0x65, 0x88]])));
        assert!(rasl("h265", &nal(8)) && !rasl("h265", &nal(1)) && !rasl("h265", &nal(21)));
    }

    #[test]
    fn x264_progressive() {
        assert!(progressive("h264", &hex(X264_BF2_SPS)));
        assert!(progressive("h265", &hex(X265_BF2_SPS)));
    }

    #[test]
    fn garbage_is_unknown() {
        assert_eq!(reorder_depth("h264", &[0x67]), None);
        assert_eq!(reorder_depth("h265", &[0x42, 0x01]), None);
        assert_eq!(reorder_depth("mjpeg", &[1, 2, 3]), None);
    }

    // Captured from `ffmpeg -f lavfi -i testsrc2=size=640x360:rate=15 -c:v libx264 -bf 2`
    // and `-c:v libx265 -x265-params bframes=2` (ffmpeg 5.1, Debian 12).
    const X264_BF2_SPS: &str = "67640016acd940a02ff970110000030001000003001e0f162d96";
    const X265_BF2_SPS: &str =
        "42010101600000030090000003000003003fa0050201696595924932bc05a020000003002000000301e1";
}
