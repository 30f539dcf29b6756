//! The fused frame-difference kernel: one pass over a GRAY8 frame and the background.
//!
//! Per pixel (SIMD, 16 or 32 at a time): absolute difference against the background,
//! threshold, a changed-mask byte (0 or 1), and the background update, a running average
//! in fixed point (8.6) with one rate for still pixels and a slower one for changing
//! pixels, so that an object is not absorbed while it moves. Per changed pixel (sparse,
//! scalar, while the row is still in L1): counts per zone label and per motion-grid cell.
//!
//! Pure computation: no I/O, no allocation per frame, no async. Every SIMD path computes
//! exactly what [`row_scalar`] computes; `tests/kernel_props.rs` checks it with proptest.
//! Hand-written intrinsics: no maintained crate offers this fused diff + threshold +
//! selective update + label counting, and `benches/kernel.rs` measures the gain.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Fractional bits of the fixed-point background.
pub const BG_FRAC_BITS: u32 = 6;
/// Largest background value (255 in 8.6).
pub const BG_MAX: u16 = 255 << BG_FRAC_BITS;

/// Settings of one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelParams {
    /// A pixel changed if |frame - background| > threshold (grey levels).
    pub threshold: u8,
    /// Background rate for unchanged pixels: 2^-shift per frame (1..=12).
    pub shift_still: u8,
    /// Background rate for changed pixels (usually slower): 2^-shift (1..=12).
    pub shift_moving: u8,
}

impl Default for KernelParams {
    fn default() -> Self {
        KernelParams {
            threshold: 25,
            shift_still: 4,
            // A stopped object is absorbed in about ln(4)/ln(64/63) = 88 frames (18 s at
            // 5 fps) for a 100-level step; tuned with the detector.
            shift_moving: 6,
        }
    }
}

impl KernelParams {
    fn check(&self) {
        assert!((1..=12).contains(&self.shift_still) && (1..=12).contains(&self.shift_moving));
    }
}

/// Which implementation runs the per-pixel part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Sse2,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Impl {
    /// The fastest implementation this CPU supports (runtime dispatch).
    pub fn best() -> Impl {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                return Impl::Avx2;
            }
            Impl::Sse2
        }
        #[cfg(not(target_arch = "x86_64"))]
        Impl::Scalar
    }

    /// Every implementation this CPU can run, scalar first.
    pub fn available() -> Vec<Impl> {
        #[allow(unused_mut)]
        let mut v = vec![Impl::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            v.push(Impl::Sse2);
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(Impl::Avx2);
            }
        }
        v
    }

    pub fn name(self) -> &'static str {
        match self {
            Impl::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Impl::Sse2 => "sse2",
            #[cfg(target_arch = "x86_64")]
            Impl::Avx2 => "avx2",
        }
    }

    /// Runs the per-pixel part over one row; returns the number of changed pixels.
    ///
    /// `frame`, `bg` and `changed` must have the same length.
    pub fn row(self, frame: &[u8], bg: &mut [u16], changed: &mut [u8], p: &KernelParams) -> u32 {
        assert!(bg.len() == frame.len() && changed.len() == frame.len());
        p.check();
        match self {
            Impl::Scalar => row_scalar(frame, bg, changed, p),
            // SAFETY: SSE2 is part of the x86_64 baseline; lengths were checked above.
            #[cfg(target_arch = "x86_64")]
            Impl::Sse2 => unsafe { x86::row_sse2(frame, bg, changed, p) },
            // SAFETY: `Avx2` is only constructed after runtime detection (`best`,
            // `available`); lengths were checked above.
            #[cfg(target_arch = "x86_64")]
            Impl::Avx2 => unsafe { x86::row_avx2(frame, bg, changed, p) },
        }
    }
}

/// One pixel of the kernel: the definition every SIMD path must match.
#[inline(always)]
fn pixel(f: u8, bg: &mut u16, p: &KernelParams) -> bool {
    let b8 = ((*bg + (1 << (BG_FRAC_BITS - 1))) >> BG_FRAC_BITS) as u8;
    let changed = f.abs_diff(b8) > p.threshold;
    let diff = ((f as i32) << BG_FRAC_BITS) - *bg as i32;
    let s = if changed {
        p.shift_moving
    } else {
        p.shift_still
    } as i32;
    let up = (diff + (1 << (s - 1))) >> s;
    *bg = (*bg as i32 + up) as u16;
    changed
}

/// The scalar reference.
pub fn row_scalar(frame: &[u8], bg: &mut [u16], changed: &mut [u8], p: &KernelParams) -> u32 {
    let mut n = 0;
    for ((&f, b), c) in frame.iter().zip(bg.iter_mut()).zip(changed.iter_mut()) {
        let ch = pixel(f, b, p);
        *c = ch as u8;
        n += ch as u32;
    }
    n
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BG_FRAC_BITS, KernelParams, row_scalar};
    use std::arch::x86_64::*;

    /// 16 pixels per step.
    #[target_feature(enable = "sse2")]
    pub unsafe fn row_sse2(
        frame: &[u8],
        bg: &mut [u16],
        changed: &mut [u8],
        p: &KernelParams,
    ) -> u32 {
        let n = frame.len();
        let mut x = 0;
        let mut count = 0u32;
        let half = _mm_set1_epi16(1 << (BG_FRAC_BITS - 1));
        let bias = _mm_set1_epi8(i8::MIN);
        let thr = _mm_set1_epi8((p.threshold ^ 0x80) as i8);
        let one = _mm_set1_epi8(1);
        let zero = _mm_setzero_si128();
        let rs = _mm_set1_epi16(1 << (p.shift_still - 1));
        let rm = _mm_set1_epi16(1 << (p.shift_moving - 1));
        let ss = _mm_cvtsi32_si128(p.shift_still as i32);
        let sm = _mm_cvtsi32_si128(p.shift_moving as i32);
        while x + 16 <= n {
            // SAFETY: x + 16 <= n for all three slices (equal lengths).
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
                _mm_storeu_si128(
                    changed.as_mut_ptr().add(x) as *mut __m128i,
                    _mm_and_si128(ch, one),
                );
                count += (_mm_movemask_epi8(ch) as u32).count_ones();
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
        count + row_scalar(&frame[x..], &mut bg[x..], &mut changed[x..], p)
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
    pub unsafe fn row_avx2(
        frame: &[u8],
        bg: &mut [u16],
        changed: &mut [u8],
        p: &KernelParams,
    ) -> u32 {
        let n = frame.len();
        let mut x = 0;
        let mut count = 0u32;
        let half = _mm256_set1_epi16(1 << (BG_FRAC_BITS - 1));
        let bias = _mm256_set1_epi8(i8::MIN);
        let thr = _mm256_set1_epi8((p.threshold ^ 0x80) as i8);
        let one = _mm256_set1_epi8(1);
        let rs = _mm256_set1_epi16(1 << (p.shift_still - 1));
        let rm = _mm256_set1_epi16(1 << (p.shift_moving - 1));
        let ss = _mm_cvtsi32_si128(p.shift_still as i32);
        let sm = _mm_cvtsi32_si128(p.shift_moving as i32);
        while x + 32 <= n {
            // SAFETY: x + 32 <= n for all three slices (equal lengths).
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
                _mm256_storeu_si256(
                    changed.as_mut_ptr().add(x) as *mut __m256i,
                    _mm256_and_si256(ch, one),
                );
                count += (_mm256_movemask_epi8(ch) as u32).count_ones();
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
        count + row_scalar(&frame[x..], &mut bg[x..], &mut changed[x..], p)
    }
}

/// Maps pixel columns and rows to motion-grid cells.
#[derive(Clone, Debug)]
pub struct Grid {
    pub cols: usize,
    pub rows: usize,
    col_cell: Vec<u16>,
    row_cell: Vec<u16>,
    /// First column after each column of cells.
    cell_end: Vec<u32>,
}

impl Grid {
    pub fn new(width: usize, height: usize, cols: usize, rows: usize) -> Grid {
        assert!(cols > 0 && rows > 0 && width > 0 && height > 0);
        let col_cell: Vec<u16> = (0..width).map(|x| (x * cols / width) as u16).collect();
        let mut cell_end = vec![0u32; cols];
        for (x, &c) in col_cell.iter().enumerate() {
            cell_end[c as usize] = x as u32 + 1;
        }
        Grid {
            cols,
            rows,
            col_cell,
            row_cell: (0..height).map(|y| (y * rows / height) as u16).collect(),
            cell_end,
        }
    }

    /// Pixels in each cell, row-major.
    pub fn cell_areas(&self) -> Vec<u32> {
        let mut a = vec![0u32; self.cols * self.rows];
        for &r in &self.row_cell {
            for &c in &self.col_cell {
                a[r as usize * self.cols + c as usize] += 1;
            }
        }
        a
    }
}

/// The next run of non-zero bytes in a 0/1 mask row at or after `from`, as `[x0, x1)`.
///
/// Relies on mask bytes being exactly 0 or 1: it reads 8 bytes at a time and finds a run's
/// start with `trailing_zeros` of the word and its end with `trailing_zeros` of the word
/// XOR 0x0101.., so sparse rows cost about a byte compare per 8 pixels.
pub fn next_run(row: &[u8], from: usize) -> Option<(usize, usize)> {
    let w = row.len();
    let mut x = from;
    loop {
        if x >= w {
            return None;
        }
        if x + 8 <= w {
            let word = u64::from_le_bytes(row[x..x + 8].try_into().unwrap());
            if word == 0 {
                x += 8;
                continue;
            }
            x += (word.trailing_zeros() / 8) as usize;
            break;
        }
        if row[x] != 0 {
            break;
        }
        x += 1;
    }
    let x0 = x;
    loop {
        if x + 8 <= w {
            let zeros =
                u64::from_le_bytes(row[x..x + 8].try_into().unwrap()) ^ 0x0101_0101_0101_0101;
            if zeros == 0 {
                x += 8;
                continue;
            }
            return Some((x0, x + (zeros.trailing_zeros() / 8) as usize));
        }
        if x < w && row[x] != 0 {
            x += 1;
        } else {
            return Some((x0, x));
        }
    }
}

/// What one pass counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// Changed pixels outside masks.
    pub changed: u32,
    /// Changed pixels per label (index = label; label 0 is masked and never counted).
    pub labels: Vec<u32>,
    /// Changed pixels (outside masks) per grid cell, row-major.
    pub cells: Vec<u32>,
}

impl FrameCounts {
    pub fn new(labels: usize, grid: &Grid) -> Self {
        FrameCounts {
            changed: 0,
            labels: vec![0; labels],
            cells: vec![0; grid.cols * grid.rows],
        }
    }
    fn clear(&mut self) {
        self.changed = 0;
        self.labels.fill(0);
        self.cells.fill(0);
    }
}

/// What stays the same from frame to frame at one resolution.
#[derive(Clone, Copy)]
pub struct Pass<'a> {
    pub imp: Impl,
    /// Each pixel's zone label (0 = masked: its changes are neither counted nor kept in the
    /// mask, but the background still learns it).
    pub labels: ArrayView2<'a, u8>,
    pub grid: &'a Grid,
    pub params: &'a KernelParams,
}

impl Pass<'_> {
    /// Runs the kernel over a whole frame: updates `bg`, writes the mask of changed,
    /// unmasked pixels (0 or 1) to `changed`, and fills `counts`.
    ///
    /// All views must be `height x width` with contiguous rows (row strides may differ: a
    /// decoder's padded rows are fine).
    pub fn run(
        &self,
        frame: ArrayView2<u8>,
        bg: ArrayViewMut2<u16>,
        changed: ArrayViewMut2<u8>,
        counts: &mut FrameCounts,
    ) {
        process(self, frame, bg, changed, counts)
    }
}

fn process(
    pass: &Pass,
    frame: ArrayView2<u8>,
    mut bg: ArrayViewMut2<u16>,
    mut changed: ArrayViewMut2<u8>,
    counts: &mut FrameCounts,
) {
    let Pass {
        imp,
        labels,
        grid,
        params: p,
    } = *pass;
    let (h, w) = frame.dim();
    assert_eq!(bg.dim(), (h, w));
    assert_eq!(labels.dim(), (h, w));
    assert_eq!(changed.dim(), (h, w));
    assert_eq!((grid.row_cell.len(), grid.col_cell.len()), (h, w));
    counts.clear();
    for y in 0..h {
        let f = frame.row(y);
        let f = f.as_slice().expect("frame rows must be contiguous");
        let mut b = bg.row_mut(y);
        let b = b
            .as_slice_mut()
            .expect("background rows must be contiguous");
        let mut c = changed.row_mut(y);
        let c = c.as_slice_mut().expect("mask rows must be contiguous");
        let l = labels.row(y);
        let l = l.as_slice().expect("label rows must be contiguous");
        if imp.row(f, b, c, p) == 0 {
            continue;
        }
        let cell_row = grid.row_cell[y] as usize * grid.cols;
        // Sparse: visit runs of changed pixels only, found 8 mask bytes at a time (mask
        // bytes are 0 or 1). A run whose labels are all one non-masked label is counted
        // with one addition per label and per grid cell; others pixel by pixel.
        let mut x = 0;
        while let Some((x0, x1)) = next_run(c, x) {
            x = x1;
            let run = &l[x0..x];
            let first = run[0];
            if first != 0 && run.iter().all(|&v| v == first) {
                let n = (x - x0) as u32;
                counts.changed += n;
                counts.labels[first as usize] += n;
                let mut cx = x0;
                while cx < x {
                    let cell = grid.col_cell[cx] as usize;
                    let end = (grid.cell_end[cell] as usize).min(x);
                    counts.cells[cell_row + cell] += (end - cx) as u32;
                    cx = end;
                }
            } else {
                for px in x0..x {
                    let label = l[px];
                    if label == 0 {
                        c[px] = 0;
                    } else {
                        counts.changed += 1;
                        counts.labels[label as usize] += 1;
                        counts.cells[cell_row + grid.col_cell[px] as usize] += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn background_converges_and_motion_is_counted() {
        let (h, w) = (36, 64);
        let p = KernelParams::default();
        for imp in Impl::available() {
            let mut bg = Array2::<u16>::from_elem((h, w), 100 << BG_FRAC_BITS);
            let labels =
                Array2::<u8>::from_shape_fn(
                    (h, w),
                    |(_, x)| if x < 8 { 0 } else { 1 + (x >= 32) as u8 },
                );
            let mut changed = Array2::<u8>::zeros((h, w));
            let grid = Grid::new(w, h, 4, 2);
            let mut counts = FrameCounts::new(3, &grid);
            let mut frame = Array2::<u8>::from_elem((h, w), 100);
            // A bright 10x10 square at (40..50, 10..20) and another in the masked strip.
            frame.slice_mut(ndarray::s![10..20, 40..50]).fill(200);
            frame.slice_mut(ndarray::s![0..5, 0..5]).fill(200);
            let pass = Pass {
                imp,
                labels: labels.view(),
                grid: &grid,
                params: &p,
            };
            pass.run(frame.view(), bg.view_mut(), changed.view_mut(), &mut counts);
            assert_eq!(counts.changed, 100, "{imp:?}");
            assert_eq!(counts.labels, vec![0, 0, 100]);
            assert_eq!(changed.sum(), 100);
            assert_eq!(counts.cells.iter().sum::<u32>(), 100);
            // Cells are 16x18: the square lies in columns 2 (x 40..48) and 3 (48..50), row 0/1.
            assert_eq!(counts.cells[2] + counts.cells[6], 80);
            // A still scene is absorbed: after enough frames nothing changes (88 frames for
            // this step at 2^-6; see the default).
            for _ in 0..120 {
                pass.run(frame.view(), bg.view_mut(), changed.view_mut(), &mut counts);
            }
            assert_eq!(counts.changed, 0, "{imp:?}");
        }
    }

    #[test]
    fn grid_areas_cover_the_frame() {
        let g = Grid::new(640, 360, 32, 18);
        let a = g.cell_areas();
        assert_eq!(a.iter().sum::<u32>(), 640 * 360);
        assert!(a.iter().all(|&c| c == 20 * 20));
    }
}
