//! The aarch64 path of the kernel (NEON): the same computation as `row_scalar`, 16 pixels at a time.

use super::{BG_FRAC_BITS, KernelParams, tail_scalar};
use std::arch::aarch64::*;

/// 16 pixels per step. NEON has unsigned absolute difference and compare, a rounding
/// narrowing shift (the background's rounding to 8 bits) and a rounding shift by a
/// register (the update's rounding shift), so each is one instruction; only the
/// movemask must be built (bit weights, then a horizontal add per 8 lanes).
#[target_feature(enable = "neon")]
pub unsafe fn row_neon(frame: &[u8], bg: &mut [u16], changed: &mut [u64], p: &KernelParams) -> u32 {
    let n = frame.len();
    changed.fill(0);
    let mut x = 0;
    let mut count = 0u32;
    let thr = vdupq_n_u8(p.threshold);
    let ss = vdupq_n_s16(-(p.shift_still as i16));
    let sm = vdupq_n_s16(-(p.shift_moving as i16));
    const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: a 16-byte load from a 16-byte array.
    let weights = unsafe { vld1q_u8(WEIGHTS.as_ptr()) };
    while x + 16 <= n {
        // SAFETY: x + 16 <= n for `frame` and `bg` (equal lengths); x / 64 < words_for(n).
        unsafe {
            let f = vld1q_u8(frame.as_ptr().add(x));
            let bp = bg.as_mut_ptr().add(x);
            let b_lo = vld1q_u16(bp);
            let b_hi = vld1q_u16(bp.add(8));
            let b8 = vcombine_u8(
                vrshrn_n_u16::<{ BG_FRAC_BITS as i32 }>(b_lo),
                vrshrn_n_u16::<{ BG_FRAC_BITS as i32 }>(b_hi),
            );
            let ch = vcgtq_u8(vabdq_u8(f, b8), thr);
            let m = vandq_u8(ch, weights);
            let bits = vaddv_u8(vget_low_u8(m)) as u64 | (vaddv_u8(vget_high_u8(m)) as u64) << 8;
            // x is a multiple of 16: the 16 bits never straddle two words.
            *changed.get_unchecked_mut(x / 64) |= bits << (x % 64);
            count += bits.count_ones();
            let nb_lo = upd(b_lo, vget_low_u8(f), vget_low_u8(ch), ss, sm);
            let nb_hi = upd(b_hi, vget_high_u8(f), vget_high_u8(ch), ss, sm);
            vst1q_u16(bp, nb_lo);
            vst1q_u16(bp.add(8), nb_hi);
        }
        x += 16;
    }
    count + tail_scalar(frame, bg, changed, x, p)
}

/// Background update of 8 pixels: `b += round((f << 6 - b) >> s)`, `s` by mask `ch`
/// (vrshlq by a negative amount is exactly that rounding right shift).
#[inline]
#[target_feature(enable = "neon")]
fn upd(b: uint16x8_t, f: uint8x8_t, ch: uint8x8_t, ss: int16x8_t, sm: int16x8_t) -> uint16x8_t {
    let diff = vsubq_s16(
        vreinterpretq_s16_u16(vshll_n_u8::<{ BG_FRAC_BITS as i32 }>(f)),
        vreinterpretq_s16_u16(b),
    );
    let us = vrshlq_s16(diff, ss);
    let um = vrshlq_s16(diff, sm);
    let m = vreinterpretq_u16_s16(vmovl_s8(vreinterpret_s8_u8(ch)));
    vreinterpretq_u16_s16(vaddq_s16(vreinterpretq_s16_u16(b), vbslq_s16(m, um, us)))
}
