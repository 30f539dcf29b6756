//! Motion kernel throughput at 640x360, 1280x720 and 1920x1080: the scalar reference, each
//! SIMD path this CPU has, and plain copies of the same bytes (frame + background read,
//! background + bit mask written) as the memory-bandwidth yardstick, in the same run.
//!
//! `cargo bench --bench kernel`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use vigil::motion::kernel::{self, BitMask, FrameCounts, Grid, Impl, KernelParams, LabelWords};
use vigil::motion::zones::LabelMap;

fn bench(c: &mut Criterion) {
    for (w, h) in [(640usize, 360usize), (1280, 720), (1920, 1080)] {
        let mut g = c.benchmark_group(format!("kernel_{w}x{h}"));
        g.throughput(Throughput::Elements((w * h) as u64));
        // A realistic frame pair: noise around a mid-grey background, with a moving
        // person-sized block changing about 3% of the pixels.
        let mut rng = fastrand::Rng::with_seed(1);
        let frame = Array2::from_shape_fn((h, w), |(y, x)| {
            let in_obj =
                (w / 2..w / 2 + w / 10).contains(&x) && (h / 4..h / 4 + h / 3).contains(&y);
            if in_obj {
                200
            } else {
                120u8.wrapping_add(rng.u8(0..6))
            }
        });
        let zones = vec![
            vec![[0.1, 0.1], [0.6, 0.1], [0.6, 0.9], [0.1, 0.9]],
            vec![[0.4, 0.2], [0.9, 0.2], [0.9, 0.8], [0.4, 0.8]],
        ];
        let masks = vec![vec![[0.0, 0.0], [0.2, 0.0], [0.2, 0.2], [0.0, 0.2]]];
        let labels = LabelMap::new(&zones, &masks, w, h).unwrap();
        let grid = Grid::new(w, h, 32, 18);
        let label_words = LabelWords::new(labels.labels.view());
        let p = KernelParams::default();
        for imp in Impl::available() {
            let mut bg = Array2::from_elem((h, w), 120u16 << kernel::BG_FRAC_BITS);
            let mut ch = BitMask::new(h, w);
            let mut counts = FrameCounts::new(labels.num_labels(), &grid);
            g.bench_function(imp.name(), |b| {
                b.iter(|| {
                    let pass = kernel::Pass {
                        imp,
                        labels: &label_words,
                        grid: &grid,
                        params: &p,
                    };
                    pass.run(frame.view(), bg.view_mut(), &mut ch, &mut counts);
                    counts.changed
                })
            });
        }
        // Yardstick: move the bytes the kernel must (read the frame and the u16 background,
        // write the background and the 1-bit mask: 5 1/8 bytes a pixel) as plainly as it can
        // be done: the background copied, the frame read (XOR-folded 8 bytes at a time) and
        // an eighth of it copied as the mask. Labels are read only where pixels changed, so
        // they are left out.
        let src16 = Array2::from_elem((h, w), 7u16);
        let mut dst16 = Array2::from_elem((h, w), 0u16);
        let mut dst_bits = vec![0u8; w * h / 8];
        g.bench_function("copy", |b| {
            b.iter(|| {
                dst16
                    .as_slice_mut()
                    .unwrap()
                    .copy_from_slice(src16.as_slice().unwrap());
                let f = frame.as_slice().unwrap();
                let fold = f
                    .chunks_exact(8)
                    .fold(0u64, |a, c| a ^ u64::from_le_bytes(c.try_into().unwrap()));
                dst_bits.copy_from_slice(&f[..w * h / 8]);
                fold ^ dst_bits[0] as u64
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
