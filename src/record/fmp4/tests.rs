//! Unit tests of the segment format: boxes written, scanned back, damaged input.

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
    build_av(frags, None)
}

/// A segment with these video fragments and, with `audio`, an audio track whose
/// fragments hold these runs.
fn build_av(frags: &[Vec<Sample>], audio: Option<(&AudioTrack, &[AudioRun])>) -> Vec<u8> {
    let init = init_segment(&fake_entry(), 640, 360, audio.map(|a| a.0));
    let mut out = init.bytes;
    let mut t = 0u64;
    for (i, s) in frags.iter().enumerate() {
        let run = audio.and_then(|a| a.1.get(i));
        out.extend(fragment_header(
            i as u32 + 1,
            t,
            1_700_000_000_000_000 + t as i64,
            s,
            run,
        ));
        for smp in s {
            out.extend(std::iter::repeat_n(0xab, smp.size as usize));
            t += smp.duration as u64;
        }
        for smp in run.iter().flat_map(|r| &r.samples) {
            out.extend(std::iter::repeat_n(0xcd, smp.size as usize));
        }
    }
    out
}

#[test]
fn audio_track_round_trip() {
    let track = AudioTrack {
        sample_entry: {
            let mut b = BoxBuf::new();
            b.open(b"mp4a");
            b.zeros(28);
            b.close();
            b.buf
        },
        timescale: 48_000,
    };
    let a = |base, n: usize| AudioRun {
        base_decode_time: base,
        samples: vec![s(1024, 200, true); n],
    };
    let runs = [a(10, 3), a(3082, 2)];
    let frags = vec![
        vec![s(6000, 100, true), s(6000, 50, false)],
        vec![s(6000, 70, true)],
    ];
    let f = build_av(&frags, Some((&track, &runs)));
    let r = scan(&mut Cursor::new(&f)).unwrap();
    assert_eq!(r.problem, None);
    assert_eq!(r.valid_len, f.len() as u64);
    assert_eq!(r.audio.as_ref(), Some(&track));
    assert_eq!(r.sample_entry, fake_entry());
    assert_eq!(r.fragments[0].samples, frags[0]);
    assert_eq!(r.fragments[0].audio.as_ref(), Some(&runs[0]));
    assert_eq!(r.fragments[1].audio.as_ref(), Some(&runs[1]));
    // A fragment without audio has no audio traf.
    let f = build_av(&frags, Some((&track, &runs[..1])));
    let r = scan(&mut Cursor::new(&f)).unwrap();
    assert_eq!(r.problem, None);
    assert_eq!(r.fragments[1].audio, None);
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
fn an_absurd_sample_count_is_a_problem_not_an_allocation() {
    let frags = vec![vec![s(6000, 100, true)], vec![s(6000, 70, true)]];
    let mut f = build(&frags);
    // The second fragment's trun claims 4 billion samples (found by the hostile
    // input test: the count sized a 59 GB allocation).
    let at = f.windows(4).rposition(|w| w == b"trun").unwrap() + 8;
    f[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let r = scan(&mut Cursor::new(&f)).unwrap();
    assert_eq!(r.fragments.len(), 1);
    assert!(
        r.problem.as_deref().unwrap().contains("claims"),
        "{:?}",
        r.problem
    );
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
