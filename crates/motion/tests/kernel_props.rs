//! Every SIMD path of the motion kernel equals the scalar reference exactly: random frames
//! and backgrounds, widths that are not a multiple of any vector width, rows that start at
//! unaligned addresses, random parameters, and many frames in a row (state carried in the
//! background).

use ndarray::{Array2, s};
use proptest::prelude::*;
use vigil_motion::kernel::{self, BitMask, FrameCounts, Grid, Impl, KernelParams, LabelWords};

fn params() -> impl Strategy<Value = KernelParams> {
    (any::<u8>(), 1u8..=12, 1u8..=12).prop_map(|(threshold, shift_still, shift_moving)| {
        KernelParams {
            threshold,
            shift_still,
            shift_moving,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// One row at a time, at every start offset 0..32 inside a buffer (unaligned).
    #[test]
    fn rows_match_scalar(
        len in 0usize..300,
        offset in 0usize..32,
        seed in any::<u64>(),
        p in params(),
    ) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let frame: Vec<u8> = (0..len + offset).map(|_| rng.u8(..)).collect();
        let bg0: Vec<u16> = (0..len + offset).map(|_| rng.u16(..=kernel::BG_MAX)).collect();
        let mut want_bg = bg0.clone();
        // Mask words start as garbage: every word must be written.
        let mut want_ch = vec![!0u64; kernel::words_for(len)];
        let want = kernel::row_scalar(&frame[offset..], &mut want_bg[offset..], &mut want_ch, &p);
        // The reference itself, bit by bit: bit x is set iff pixel x changed, padding is 0.
        prop_assert_eq!(want, want_ch.iter().map(|w| w.count_ones()).sum::<u32>());
        for x in 0..len {
            let b8 = ((bg0[offset + x] + (1 << (kernel::BG_FRAC_BITS - 1))) >> kernel::BG_FRAC_BITS) as u8;
            let changed = frame[offset + x].abs_diff(b8) > p.threshold;
            prop_assert_eq!(want_ch[x / 64] >> (x % 64) & 1 == 1, changed, "pixel {}", x);
        }
        for imp in Impl::available() {
            let mut bg = bg0.clone();
            let mut ch = vec![!0u64; kernel::words_for(len)];
            let got = imp.row(&frame[offset..], &mut bg[offset..], &mut ch, &p);
            prop_assert_eq!(got, want, "{:?} count", imp);
            prop_assert_eq!(&bg, &want_bg, "{:?} background", imp);
            prop_assert_eq!(&ch, &want_ch, "{:?} mask", imp);
        }
    }

    /// Whole frames through `process`, several in a row, with labels, masks and a grid.
    #[test]
    fn frames_match_scalar(
        w in 1usize..160,
        h in 1usize..24,
        frames in 1usize..5,
        seed in any::<u64>(),
        p in params(),
    ) {
        let mut rng = fastrand::Rng::with_seed(seed);
        // Blocks of labels (zones, masks) of random size; 1x1 blocks vary per pixel.
        let (bw, bh) = (rng.usize(1..16), rng.usize(1..8));
        let shift = rng.usize(0..4);
        let labels = Array2::from_shape_fn((h, w), |(y, x)| ((x / bw + y / bh + shift) % 4) as u8);
        let grid = Grid::new(w, h, 7.min(w), 3.min(h));
        let label_words = LabelWords::new(labels.view());
        let input: Vec<Array2<u8>> = (0..frames)
            .map(|_| Array2::from_shape_fn((h, w), |_| rng.u8(..)))
            .collect();
        let bg0 = Array2::from_shape_fn((h, w), |_| rng.u16(..=kernel::BG_MAX));
        let run = |imp: Impl| {
            let mut bg = bg0.clone();
            let mut ch = BitMask::new(h, w);
            let mut counts = FrameCounts::new(4, &grid);
            let mut all = Vec::new();
            for f in &input {
                let pass = kernel::Pass { imp, labels: &label_words, grid: &grid, params: &p };
                pass.run(f.view(), bg.view_mut(), &mut ch, &mut counts);
                all.push((counts.clone(), ch.clone()));
            }
            (bg, all)
        };
        let want = run(Impl::Scalar);
        // The counts equal a naive recount from the mask, the labels and the grid, and
        // masked pixels are never in the mask.
        for (c, ch) in &want.1 {
            let mut labels_n = vec![0u32; 4];
            let mut cells_n = vec![0u32; grid.cols * grid.rows];
            let mut set = 0;
            for y in 0..h {
                for x in 0..w {
                    if ch.get(y, x) {
                        set += 1;
                        prop_assert!(labels[(y, x)] != 0, "masked pixel in the mask");
                        labels_n[labels[(y, x)] as usize] += 1;
                        cells_n[(y * grid.rows / h) * grid.cols + x * grid.cols / w] += 1;
                    }
                }
            }
            // No padding bit is set either.
            prop_assert_eq!(ch.count(), set);
            prop_assert_eq!(c.changed, set);
            prop_assert_eq!(&c.labels, &labels_n);
            prop_assert_eq!(&c.cells, &cells_n);
        }
        for imp in Impl::available() {
            let got = run(imp);
            prop_assert_eq!(&got.0, &want.0, "{:?} background", imp);
            prop_assert!(got.1 == want.1, "{:?} counts or mask differ", imp);
        }
    }

    /// Frames whose rows are padded (a decoder's stride wider than the image).
    #[test]
    fn strided_rows_match(w in 1usize..80, pad in 1usize..40, h in 1usize..10, seed in any::<u64>()) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let p = KernelParams::default();
        let padded = Array2::from_shape_fn((h, w + pad), |_| rng.u8(..));
        let frame = padded.slice(s![.., ..w]);
        let labels = Array2::from_elem((h, w), 1u8);
        let grid = Grid::new(w, h, 1, 1);
        let mut results = Vec::new();
        for imp in Impl::available() {
            let mut bg = Array2::from_elem((h, w), 128u16 << kernel::BG_FRAC_BITS);
            let mut ch = BitMask::new(h, w);
            let mut counts = FrameCounts::new(2, &grid);
            let lw = LabelWords::new(labels.view());
            let pass = kernel::Pass { imp, labels: &lw, grid: &grid, params: &p };
            pass.run(frame, bg.view_mut(), &mut ch, &mut counts);
            results.push((bg, ch, counts));
        }
        for r in &results[1..] {
            prop_assert!(r == &results[0]);
        }
    }
}
