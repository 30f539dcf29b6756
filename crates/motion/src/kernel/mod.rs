//! The fused frame-difference kernel: one pass over a GRAY8 frame and the background.
//!
//! Per pixel (SIMD, 16 or 32 at a time): absolute difference against the background,
//! threshold, a changed-mask bit (the vector compare's movemask, so the mask costs 1/8 byte
//! a pixel and later stages find runs 64 pixels at a time), and the background update, a
//! running average in fixed point (8.6) with one rate for still pixels and a slower one for
//! changing pixels, so that an object is not absorbed while it moves. Per non-zero mask
//! word (64 pixels, while the row is still in L1): masked pixels cleared and changed pixels
//! counted per zone label and per motion-grid cell, each a popcount of the word under a
//! precomputed bit mask ([`LabelWords`], [`Grid`]), so the cost does not grow with how
//! fragmented the changes are (compression noise makes thousands of tiny runs a frame).
//!
//! Pure computation: no I/O, no allocation per frame, no async. Every SIMD path computes
//! exactly what [`row_scalar`] computes; `tests/kernel_props.rs` checks it with proptest.
//! Hand-written intrinsics: no maintained crate offers this fused diff + threshold +
//! selective update + label counting, and `benches/kernel.rs` measures the gain.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Words of a [`BitMask`] row `width` pixels wide.
pub fn words_for(width: usize) -> usize {
    width.div_ceil(64)
}

/// A 0/1 mask of changed pixels, one bit per pixel: pixel `x` of a row is bit `x % 64` of
/// the row's word `x / 64`. Rows are padded to whole words; padding bits are always 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitMask {
    height: usize,
    width: usize,
    stride: usize,
    words: Vec<u64>,
}

impl BitMask {
    pub fn new(height: usize, width: usize) -> BitMask {
        let stride = words_for(width);
        BitMask {
            height,
            width,
            stride,
            words: vec![0; stride * height],
        }
    }

    /// A mask with pixel (y, x) set where `f(y, x)`.
    pub fn from_fn(height: usize, width: usize, mut f: impl FnMut(usize, usize) -> bool) -> Self {
        let mut m = BitMask::new(height, width);
        for y in 0..height {
            for x in 0..width {
                if f(y, x) {
                    m.set(y, x);
                }
            }
        }
        m
    }

    /// (height, width), as ndarray's `dim`.
    pub fn dim(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    pub fn row(&self, y: usize) -> &[u64] {
        &self.words[y * self.stride..(y + 1) * self.stride]
    }

    pub fn row_mut(&mut self, y: usize) -> &mut [u64] {
        &mut self.words[y * self.stride..(y + 1) * self.stride]
    }

    pub fn get(&self, y: usize, x: usize) -> bool {
        assert!(x < self.width);
        self.row(y)[x / 64] >> (x % 64) & 1 == 1
    }

    pub fn set(&mut self, y: usize, x: usize) {
        assert!(x < self.width);
        self.row_mut(y)[x / 64] |= 1 << (x % 64);
    }

    /// Set pixels in the whole mask.
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    pub fn clear(&mut self) {
        self.words.fill(0);
    }
}

/// Set bits of a mask row in pixels `[x0, x1)` (`x1` may run past the row's words).
#[inline]
pub fn count_range(row: &[u64], x0: usize, x1: usize) -> u32 {
    let x1 = x1.min(row.len() * 64);
    if x0 >= x1 {
        return 0;
    }
    let (w0, w1) = (x0 / 64, (x1 - 1) / 64);
    let lo = !0u64 << (x0 % 64);
    let hi = !0u64 >> (63 - (x1 - 1) % 64);
    if w0 == w1 {
        return (row[w0] & lo & hi).count_ones();
    }
    (row[w0] & lo).count_ones()
        + row[w0 + 1..w1].iter().map(|w| w.count_ones()).sum::<u32>()
        + (row[w1] & hi).count_ones()
}

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
    #[cfg(target_arch = "aarch64")]
    Neon,
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
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Impl::Neon;
            }
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
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            v.push(Impl::Neon);
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
            #[cfg(target_arch = "aarch64")]
            Impl::Neon => "neon",
        }
    }

    /// Runs the per-pixel part over one row; returns the number of changed pixels.
    ///
    /// `frame` and `bg` must have the same length and `changed` [`words_for`] that length;
    /// every word of `changed` is written (padding bits 0).
    pub fn row(self, frame: &[u8], bg: &mut [u16], changed: &mut [u64], p: &KernelParams) -> u32 {
        assert!(bg.len() == frame.len() && changed.len() == words_for(frame.len()));
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
            // SAFETY: `Neon` is only constructed after runtime detection; lengths were
            // checked above.
            #[cfg(target_arch = "aarch64")]
            Impl::Neon => unsafe { arm::row_neon(frame, bg, changed, p) },
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

/// The scalar reference: `changed` gets bit `x` set where pixel `x` changed.
pub fn row_scalar(frame: &[u8], bg: &mut [u16], changed: &mut [u64], p: &KernelParams) -> u32 {
    changed.fill(0);
    tail_scalar(frame, bg, changed, 0, p)
}

/// Pixels `from..` of a row whose mask words are already zero from `from` on.
fn tail_scalar(
    frame: &[u8],
    bg: &mut [u16],
    changed: &mut [u64],
    from: usize,
    p: &KernelParams,
) -> u32 {
    let mut n = 0;
    let mut x = from;
    // Bits gather in a register and reach memory once per word.
    while x < frame.len() {
        let end = ((x / 64 + 1) * 64).min(frame.len());
        let mut bits = 0u64;
        for (i, (&f, b)) in frame[x..end].iter().zip(&mut bg[x..end]).enumerate() {
            bits |= (pixel(f, b, p) as u64) << ((x + i) % 64);
        }
        changed[x / 64] |= bits;
        n += bits.count_ones();
        x = end;
    }
    n
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "aarch64")]
mod arm;

/// Maps pixel columns and rows to motion-grid cells.
#[derive(Clone, Debug)]
pub struct Grid {
    pub cols: usize,
    pub rows: usize,
    col_cell: Vec<u16>,
    row_cell: Vec<u16>,
    /// Per mask word of a row: the (grid column, bits of the word's pixels in it) pieces,
    /// `word_cells[word_cell_start[i]..word_cell_start[i + 1]]`.
    word_cell_start: Vec<u32>,
    word_cells: Vec<(u16, u64)>,
}

impl Grid {
    pub fn new(width: usize, height: usize, cols: usize, rows: usize) -> Grid {
        assert!(cols > 0 && rows > 0 && width > 0 && height > 0);
        let col_cell: Vec<u16> = (0..width).map(|x| (x * cols / width) as u16).collect();
        let (word_cell_start, word_cells) = pieces(&col_cell);
        Grid {
            cols,
            rows,
            col_cell,
            row_cell: (0..height).map(|y| (y * rows / height) as u16).collect(),
            word_cell_start,
            word_cells,
        }
    }

    /// Adds the set pixels of `row` (pixel row `y` of a mask) in `[x0, x1)` to `cells`
    /// (row-major, as [`FrameCounts::cells`]).
    pub fn add_range(&self, row: &[u64], y: usize, x0: usize, x1: usize, cells: &mut [u32]) {
        let x1 = x1.min(self.col_cell.len());
        if x0 >= x1 {
            return;
        }
        let cell_row = self.row_cell[y] as usize * self.cols;
        let (w0, w1) = (x0 / 64, (x1 - 1) / 64);
        for (wi, &word) in row.iter().enumerate().take(w1 + 1).skip(w0) {
            let lo = if wi == w0 { !0u64 << (x0 % 64) } else { !0 };
            let hi = if wi == w1 {
                !0u64 >> (63 - (x1 - 1) % 64)
            } else {
                !0
            };
            let k = word & lo & hi;
            if k == 0 {
                continue;
            }
            for &(cell, bits) in self.word_cells(wi) {
                cells[cell_row + cell as usize] += (k & bits).count_ones();
            }
        }
    }

    fn word_cells(&self, word: usize) -> &[(u16, u64)] {
        &self.word_cells
            [self.word_cell_start[word] as usize..self.word_cell_start[word + 1] as usize]
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

/// The next run of set bits in a [`BitMask`] row at or after pixel `from`, as `[x0, x1)`:
/// `trailing_zeros` of the word finds its start and of the inverted word its end, so a
/// sparse row costs one test per 64 pixels.
pub fn next_run(row: &[u64], from: usize) -> Option<(usize, usize)> {
    let n = row.len();
    let mut wi = from / 64;
    if wi >= n {
        return None;
    }
    let mut word = row[wi] & (!0u64 << (from % 64));
    while word == 0 {
        wi += 1;
        if wi >= n {
            return None;
        }
        word = row[wi];
    }
    let x0 = wi * 64 + word.trailing_zeros() as usize;
    let mut holes = !row[wi] & (!0u64 << (x0 % 64));
    while holes == 0 {
        wi += 1;
        if wi >= n {
            // Padding bits are 0, so only a row that is a whole number of words ends here.
            return Some((x0, n * 64));
        }
        holes = !row[wi];
    }
    Some((x0, wi * 64 + holes.trailing_zeros() as usize))
}

/// Splits a row of per-pixel values into per-mask-word pieces: for each word, (value, bits
/// of the word's pixels with that value), in order, as (start index per word + 1, pieces).
fn pieces<T: Copy + PartialEq>(row: &[T]) -> (Vec<u32>, Vec<(T, u64)>) {
    let mut start = vec![0u32];
    let mut out: Vec<(T, u64)> = Vec::new();
    for (i, chunk) in row.chunks(64).enumerate() {
        let first = out.len();
        for (b, &v) in chunk.iter().enumerate() {
            match out[first..].iter_mut().find(|(pv, _)| *pv == v) {
                Some((_, bits)) => *bits |= 1 << b,
                None => out.push((v, 1 << b)),
            }
        }
        debug_assert_eq!(start.len(), i + 1);
        start.push(out.len() as u32);
    }
    (start, out)
}

/// A label map (each pixel's zone label; 0 = masked) in the form the kernel counts with:
/// per row and mask word, the bits of unmasked pixels and the (label, bits) pieces. Built
/// once per resolution.
#[derive(Clone, Debug)]
pub struct LabelWords {
    words_per_row: usize,
    /// Per (row, word): bits of the pixels whose label is not 0.
    keep: Vec<u64>,
    /// Per (row, word) + 1: start of its pieces in `pieces`.
    piece_start: Vec<u32>,
    /// (label, bits), label never 0.
    pieces: Vec<(u8, u64)>,
}

impl LabelWords {
    pub fn new(labels: ArrayView2<u8>) -> LabelWords {
        let (h, w) = labels.dim();
        let wpr = words_for(w);
        let mut lw = LabelWords {
            words_per_row: wpr,
            keep: Vec::with_capacity(h * wpr),
            piece_start: vec![0],
            pieces: Vec::new(),
        };
        for row in labels.rows() {
            let row: Vec<u8> = row.iter().copied().collect();
            let (start, pieces) = pieces(&row);
            for word in 0..wpr {
                let mine = &pieces[start[word] as usize..start[word + 1] as usize];
                let mut keep = 0;
                for &(label, bits) in mine.iter().filter(|(l, _)| *l != 0) {
                    keep |= bits;
                    lw.pieces.push((label, bits));
                }
                lw.keep.push(keep);
                lw.piece_start.push(lw.pieces.len() as u32);
            }
        }
        lw
    }

    /// (height, width in words).
    fn dim_words(&self) -> (usize, usize) {
        (
            self.keep.len() / self.words_per_row.max(1),
            self.words_per_row,
        )
    }

    #[inline]
    fn word(&self, y: usize, word: usize) -> (u64, &[(u8, u64)]) {
        let i = y * self.words_per_row + word;
        (
            self.keep[i],
            &self.pieces[self.piece_start[i] as usize..self.piece_start[i + 1] as usize],
        )
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
    pub labels: &'a LabelWords,
    pub grid: &'a Grid,
    pub params: &'a KernelParams,
}

impl Pass<'_> {
    /// Runs the kernel over a whole frame: updates `bg`, writes the mask of changed,
    /// unmasked pixels to `changed`, and fills `counts`.
    ///
    /// All views must be `height x width` with contiguous rows (row strides may differ: a
    /// decoder's padded rows are fine).
    pub fn run(
        &self,
        frame: ArrayView2<u8>,
        bg: ArrayViewMut2<u16>,
        changed: &mut BitMask,
        counts: &mut FrameCounts,
    ) {
        process(self, frame, bg, changed, counts)
    }
}

fn process(
    pass: &Pass,
    frame: ArrayView2<u8>,
    mut bg: ArrayViewMut2<u16>,
    changed: &mut BitMask,
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
    assert_eq!(labels.dim_words(), (h, words_for(w)));
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
        let c = changed.row_mut(y);
        if imp.row(f, b, c, p) == 0 {
            continue;
        }
        let cell_row = grid.row_cell[y] as usize * grid.cols;
        for (i, word) in c.iter_mut().enumerate() {
            if *word == 0 {
                continue;
            }
            let (keep, labels_here) = labels.word(y, i);
            let k = *word & keep;
            *word = k;
            if k == 0 {
                continue;
            }
            counts.changed += k.count_ones();
            for &(label, bits) in labels_here {
                counts.labels[label as usize] += (k & bits).count_ones();
            }
            for &(cell, bits) in grid.word_cells(i) {
                counts.cells[cell_row + cell as usize] += (k & bits).count_ones();
            }
        }
    }
}

#[cfg(test)]
mod tests;
