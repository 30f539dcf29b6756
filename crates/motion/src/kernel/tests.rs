//! Unit tests of the kernel: each SIMD path against the scalar reference on fixed cases.

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
        let mut changed = BitMask::new(h, w);
        let grid = Grid::new(w, h, 4, 2);
        let mut counts = FrameCounts::new(3, &grid);
        let mut frame = Array2::<u8>::from_elem((h, w), 100);
        // A bright 10x10 square at (40..50, 10..20) and another in the masked strip.
        frame.slice_mut(ndarray::s![10..20, 40..50]).fill(200);
        frame.slice_mut(ndarray::s![0..5, 0..5]).fill(200);
        let lw = LabelWords::new(labels.view());
        let pass = Pass {
            imp,
            labels: &lw,
            grid: &grid,
            params: &p,
        };
        pass.run(frame.view(), bg.view_mut(), &mut changed, &mut counts);
        assert_eq!(counts.changed, 100, "{imp:?}");
        assert_eq!(counts.labels, vec![0, 0, 100]);
        assert_eq!(changed.count(), 100);
        assert!(changed.get(10, 40) && changed.get(19, 49) && !changed.get(0, 0));
        assert_eq!(counts.cells.iter().sum::<u32>(), 100);
        // Cells are 16x18: the square lies in columns 2 (x 40..48) and 3 (48..50), row 0/1.
        assert_eq!(counts.cells[2] + counts.cells[6], 80);
        // A still scene is absorbed: after enough frames nothing changes (88 frames for
        // this step at 2^-6; see the default).
        for _ in 0..120 {
            pass.run(frame.view(), bg.view_mut(), &mut changed, &mut counts);
        }
        assert_eq!(counts.changed, 0, "{imp:?}");
    }
}

/// `next_run` and `count_range` against a plain bit-by-bit reading, at every width
/// around the word boundaries.
#[test]
fn runs_and_ranges_match_bit_by_bit() {
    let mut rng = fastrand::Rng::with_seed(5);
    for _ in 0..400 {
        let w = rng.usize(1..200);
        let density = rng.f64();
        let m = BitMask::from_fn(1, w, |_, _| rng.f64() < density);
        let bit = |x: usize| x < w && m.get(0, x);
        let mut want = Vec::new();
        let mut x = 0;
        while x < w {
            if bit(x) {
                let x0 = x;
                while bit(x) {
                    x += 1;
                }
                want.push((x0, x));
            } else {
                x += 1;
            }
        }
        let mut got = Vec::new();
        let mut x = 0;
        while let Some((x0, x1)) = next_run(m.row(0), x) {
            got.push((x0, x1));
            x = x1;
        }
        assert_eq!(got, want, "width {w}");
        let (a, b) = (rng.usize(0..=w), rng.usize(0..=w + 70));
        let n = (a..b).filter(|&x| bit(x)).count() as u32;
        assert_eq!(count_range(m.row(0), a, b), n, "[{a}, {b}) of width {w}");
    }
}

/// Every aarch64 CPU has NEON: the property tests must be comparing it, not just the
/// scalar path with itself.
#[test]
fn simd_path_is_detected() {
    let all = Impl::available();
    #[cfg(target_arch = "aarch64")]
    assert!(
        all.contains(&Impl::Neon) && Impl::best() == Impl::Neon,
        "{all:?}"
    );
    #[cfg(target_arch = "x86_64")]
    assert!(all.contains(&Impl::Sse2), "{all:?}");
    eprintln!("kernel implementations: {all:?}, best {:?}", Impl::best());
}

#[test]
fn grid_areas_cover_the_frame() {
    let g = Grid::new(640, 360, 32, 18);
    let a = g.cell_areas();
    assert_eq!(a.iter().sum::<u32>(), 640 * 360);
    assert!(a.iter().all(|&c| c == 20 * 20));
}
