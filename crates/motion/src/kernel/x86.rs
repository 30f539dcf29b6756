//! The x86_64 paths of the kernel (SSE2, AVX2): the same computation as `row_scalar`, 16 or 32 pixels at a time.

use super::{BG_FRAC_BITS, KernelParams, tail_scalar};
use std::arch::x86_64::*;

/// 16 pixels per step.
#[target_feature(enable = "sse2")]
pub unsafe fn row_sse2(frame: &[u8], bg: &mut [u16], changed: &mut [u64], p: &KernelParams) -> u32 {
    let n = frame.len();
    changed.fill(0);
    let mut x = 0;
    let mut count = 0u32;
    let half = _mm_set1_epi16(1 << (BG_FRAC_BITS - 1));
    let bias = _mm_set1_epi8(i8::MIN);
    let thr = _mm_set1_epi8((p.threshold ^ 0x80) as i8);
    let zero = _mm_setzero_si128();
    let rs = _mm_set1_epi16(1 << (p.shift_still - 1));
    let rm = _mm_set1_epi16(1 << (p.shift_moving - 1));
    let ss = _mm_cvtsi32_si128(p.shift_still as i32);
    let sm = _mm_cvtsi32_si128(p.shift_moving as i32);
    while x + 16 <= n {
        // SAFETY: x + 16 <= n for `frame` and `bg` (equal lengths); x / 64 < words_for(n).
        unsafe {
            let f = _mm_loadu_si128(frame.as_ptr().add(x) as *const __m128i);
            let bp = bg.as_mut_ptr().add(x) as *mut __m128i;
            let b_lo = _mm_loadu_si128(bp);
            let b_hi = _mm_loadu_si128(bp.add(1));
            let b8 = _mm_packus_epi16(
                _mm_srli_epi16(_mm_add_epi16(b_lo, half), BG_FRAC_BITS as i32),
                _mm_srli_epi16(_mm_add_epi16(b_hi, half), BG_FRAC_BITS as i32),
            );
            let d = _mm_or_si128(_mm_subs_epu8(f, b8), _mm_subs_epu8(b8, f));
            let ch = _mm_cmpgt_epi8(_mm_xor_si128(d, bias), thr);
            let bits = _mm_movemask_epi8(ch) as u32 as u64;
            // x is a multiple of 16: the 16 bits never straddle two words.
            *changed.get_unchecked_mut(x / 64) |= bits << (x % 64);
            count += bits.count_ones();
            let r = (rs, rm, ss, sm);
            let nb_lo = upd_sse2(
                b_lo,
                _mm_unpacklo_epi8(f, zero),
                _mm_unpacklo_epi8(ch, ch),
                r,
            );
            let nb_hi = upd_sse2(
                b_hi,
                _mm_unpackhi_epi8(f, zero),
                _mm_unpackhi_epi8(ch, ch),
                r,
            );
            _mm_storeu_si128(bp, nb_lo);
            _mm_storeu_si128(bp.add(1), nb_hi);
        }
        x += 16;
    }
    count + tail_scalar(frame, bg, changed, x, p)
}

/// Background update of 8 pixels: `b += round((f << 6 - b) >> s)`, `s` by mask `m`.
#[inline]
#[target_feature(enable = "sse2")]
fn upd_sse2(
    b: __m128i,
    f16: __m128i,
    m: __m128i,
    (rs, rm, ss, sm): (__m128i, __m128i, __m128i, __m128i),
) -> __m128i {
    let diff = _mm_sub_epi16(_mm_slli_epi16(f16, BG_FRAC_BITS as i32), b);
    let us = _mm_sra_epi16(_mm_add_epi16(diff, rs), ss);
    let um = _mm_sra_epi16(_mm_add_epi16(diff, rm), sm);
    _mm_add_epi16(
        b,
        _mm_or_si128(_mm_and_si128(m, um), _mm_andnot_si128(m, us)),
    )
}

/// Background update of 16 pixels, as [`upd_sse2`].
#[inline]
#[target_feature(enable = "avx2")]
fn upd_avx2(
    b: __m256i,
    f16: __m256i,
    m: __m256i,
    (rs, rm, ss, sm): (__m256i, __m256i, __m128i, __m128i),
) -> __m256i {
    let diff = _mm256_sub_epi16(_mm256_slli_epi16(f16, BG_FRAC_BITS as i32), b);
    let us = _mm256_sra_epi16(_mm256_add_epi16(diff, rs), ss);
    let um = _mm256_sra_epi16(_mm256_add_epi16(diff, rm), sm);
    _mm256_add_epi16(
        b,
        _mm256_or_si256(_mm256_and_si256(m, um), _mm256_andnot_si256(m, us)),
    )
}

/// 32 pixels per step.
#[target_feature(enable = "avx2")]
pub unsafe fn row_avx2(frame: &[u8], bg: &mut [u16], changed: &mut [u64], p: &KernelParams) -> u32 {
    let n = frame.len();
    changed.fill(0);
    let mut x = 0;
    let mut count = 0u32;
    let half = _mm256_set1_epi16(1 << (BG_FRAC_BITS - 1));
    let bias = _mm256_set1_epi8(i8::MIN);
    let thr = _mm256_set1_epi8((p.threshold ^ 0x80) as i8);
    let rs = _mm256_set1_epi16(1 << (p.shift_still - 1));
    let rm = _mm256_set1_epi16(1 << (p.shift_moving - 1));
    let ss = _mm_cvtsi32_si128(p.shift_still as i32);
    let sm = _mm_cvtsi32_si128(p.shift_moving as i32);
    while x + 32 <= n {
        // SAFETY: x + 32 <= n for `frame` and `bg` (equal lengths); x / 64 < words_for(n).
        unsafe {
            let f = _mm256_loadu_si256(frame.as_ptr().add(x) as *const __m256i);
            let bp = bg.as_mut_ptr().add(x) as *mut __m256i;
            let b_a = _mm256_loadu_si256(bp); // pixels 0..16
            let b_b = _mm256_loadu_si256(bp.add(1)); // pixels 16..32
            // packus works per 128-bit lane; permute restores pixel order.
            let b8 = _mm256_permute4x64_epi64(
                _mm256_packus_epi16(
                    _mm256_srli_epi16(_mm256_add_epi16(b_a, half), BG_FRAC_BITS as i32),
                    _mm256_srli_epi16(_mm256_add_epi16(b_b, half), BG_FRAC_BITS as i32),
                ),
                0b11_01_10_00,
            );
            let d = _mm256_or_si256(_mm256_subs_epu8(f, b8), _mm256_subs_epu8(b8, f));
            let ch = _mm256_cmpgt_epi8(_mm256_xor_si256(d, bias), thr);
            let bits = _mm256_movemask_epi8(ch) as u32 as u64;
            // x is a multiple of 32: the 32 bits never straddle two words.
            *changed.get_unchecked_mut(x / 64) |= bits << (x % 64);
            count += bits.count_ones();
            let r = (rs, rm, ss, sm);
            let f_lo = _mm256_castsi256_si128(f);
            let f_hi = _mm256_extracti128_si256(f, 1);
            let c_lo = _mm256_castsi256_si128(ch);
            let c_hi = _mm256_extracti128_si256(ch, 1);
            let nb_a = upd_avx2(
                b_a,
                _mm256_cvtepu8_epi16(f_lo),
                _mm256_cvtepi8_epi16(c_lo),
                r,
            );
            let nb_b = upd_avx2(
                b_b,
                _mm256_cvtepu8_epi16(f_hi),
                _mm256_cvtepi8_epi16(c_hi),
                r,
            );
            _mm256_storeu_si256(bp, nb_a);
            _mm256_storeu_si256(bp.add(1), nb_b);
        }
        x += 32;
    }
    count + tail_scalar(frame, bg, changed, x, p)
}
