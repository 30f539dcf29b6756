//! Blobs: 8-connected components of a changed-pixel mask, found by runs (cheap when
//! motion is sparse), on the 2x2-pooled mask with areas counted in the full mask, and the
//! per-zone and per-grid-cell counts of the blobs that were kept.
//!
//! Connected-component labelling by union-find over runs (Rosenfeld & Pfaltz, 1966; the
//! run-based variant as in He et al., "Fast connected-component labeling", 2009).

use crate::kernel::{self, BitMask, Grid};
use crate::zones::LabelMap;

/// A connected region of changed pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blob {
    pub area: u32,
    /// x0, y0, x1, y1 in pixels (x1, y1 exclusive).
    pub bbox: [u32; 4],
}

pub(crate) fn union(a: [u32; 4], b: [u32; 4]) -> [u32; 4] {
    [
        a[0].min(b[0]),
        a[1].min(b[1]),
        a[2].max(b[2]),
        a[3].max(b[3]),
    ]
}

/// Runs of changed pixels and their blob, reused across frames.
#[derive(Default)]
pub(crate) struct RunScratch {
    /// (y, x0, x1, blob root index into `parent`)
    runs: Vec<(u32, u32, u32, u32)>,
    parent: Vec<u32>,
    /// Final blob index of each run.
    run_blob: Vec<u32>,
    /// Label histogram scratch for zone counting.
    hist: Vec<u32>,
}

impl RunScratch {
    fn find(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let p = self.parent[i as usize];
            self.parent[i as usize] = self.parent[p as usize];
            i = p;
        }
        i
    }

    /// Changed pixels per zone of the kept blobs' runs of a 2x2-pooled mask: each block
    /// counts its changed pixels in `fine` (the mask before pooling) under the label of its
    /// top-left pixel.
    pub(crate) fn count_zones_pooled(
        &mut self,
        kept: &[bool],
        labels: &LabelMap,
        fine: &BitMask,
        zone_px: &mut [u32],
    ) {
        if zone_px.is_empty() {
            return;
        }
        let h = fine.dim().0;
        self.hist.clear();
        self.hist.resize(labels.num_labels(), 0);
        for (r, &(y, x0, x1, _)) in self.runs.iter().enumerate() {
            if !kept[self.run_blob[r] as usize] {
                continue;
            }
            let y = 2 * y as usize;
            let lrow = labels.labels.row(y);
            let lrow = lrow.as_slice().expect("contiguous labels");
            let (a, b) = (fine.row(y), (y + 1 < h).then(|| fine.row(y + 1)));
            for x in x0 as usize..x1 as usize {
                let n = kernel::count_range(a, 2 * x, 2 * x + 2)
                    + b.map_or(0, |b| kernel::count_range(b, 2 * x, 2 * x + 2));
                self.hist[lrow[2 * x] as usize] += n;
            }
        }
        labels.zone_counts(&self.hist, zone_px);
    }
}

impl RunScratch {
    /// Changed pixels per grid cell of the kept blobs' runs of a 2x2-pooled mask, counted in
    /// `fine` (the mask before pooling).
    pub(crate) fn count_cells_pooled(
        &self,
        kept: &[bool],
        grid: &Grid,
        fine: &BitMask,
        cells: &mut [u32],
    ) {
        let h = fine.dim().0;
        for (r, &(y, x0, x1, _)) in self.runs.iter().enumerate() {
            if !kept[self.run_blob[r] as usize] {
                continue;
            }
            let (x0, x1) = (2 * x0 as usize, 2 * x1 as usize);
            for fy in [2 * y as usize, 2 * y as usize + 1] {
                if fy < h {
                    grid.add_range(fine.row(fy), fy, x0, x1, cells);
                }
            }
        }
    }
}

/// Pools a mask 2x2: a block is set in `pooled` if any of its pixels is set in `fine`.
/// Word-parallel: OR the two rows, OR each bit pair, then gather the even bits.
pub(crate) fn pool2(fine: &BitMask, pooled: &mut BitMask) {
    let h = fine.dim().0;
    for y2 in 0..h.div_ceil(2) {
        let a = fine.row(2 * y2);
        let b = (2 * y2 + 1 < h).then(|| fine.row(2 * y2 + 1));
        let word = |i: usize| match a.get(i) {
            Some(&w) => {
                let w = w | b.map_or(0, |b| b[i]);
                even_bits(w | w >> 1)
            }
            None => 0,
        };
        for (i, out) in pooled.row_mut(y2).iter_mut().enumerate() {
            *out = word(2 * i) | word(2 * i + 1) << 32;
        }
    }
}

/// Removes speckle from a changed mask before labelling: a pixel stays only if a
/// horizontal neighbour (left or right) and a vertical one (above or below) changed too.
/// Rain and snow streaks, one pixel wide, and isolated noise go; an object's body, two
/// pixels or more across, stays (it loses single-pixel slivers at its edge). Word-wide
/// shifts and ANDs, no I/O: about five operations per 64 pixels.
pub(crate) fn despeckle(src: &BitMask, dst: &mut BitMask) {
    let h = src.dim().0;
    for y in 0..h {
        let row = src.row(y);
        let up = (y > 0).then(|| src.row(y - 1));
        let down = (y + 1 < h).then(|| src.row(y + 1));
        let out = dst.row_mut(y);
        for i in 0..row.len() {
            let w = row[i];
            if w == 0 {
                out[i] = 0;
                continue;
            }
            let prev = if i > 0 { row[i - 1] } else { 0 };
            let next = row.get(i + 1).copied().unwrap_or(0);
            let left = w << 1 | prev >> 63;
            let right = w >> 1 | next << 63;
            let vert = up.map_or(0, |r| r[i]) | down.map_or(0, |r| r[i]);
            out[i] = w & (left | right) & vert;
        }
    }
}

/// Bits 0, 2, 4, .. 62 of `x` packed into the low 32 bits.
fn even_bits(x: u64) -> u64 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | x >> 1) & 0x3333_3333_3333_3333;
    x = (x | x >> 2) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | x >> 4) & 0x00ff_00ff_00ff_00ff;
    x = (x | x >> 8) & 0x0000_ffff_0000_ffff;
    (x | x >> 16) & 0x0000_0000_ffff_ffff
}

#[cfg(test)]
#[test]
fn despeckle_equals_the_per_pixel_rule() {
    let (h, w) = (37, 150); // rows of three words, the last partly used
    let mut seed = 12345u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for density in [5, 30, 60] {
        let m = BitMask::from_fn(h, w, |_, _| rnd() % 100 < density);
        let mut got = BitMask::new(h, w);
        despeckle(&m, &mut got);
        let on = |y: i64, x: i64| {
            y >= 0
                && x >= 0
                && (y as usize) < h
                && (x as usize) < w
                && m.get(y as usize, x as usize)
        };
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                let want =
                    on(y, x) && (on(y, x - 1) || on(y, x + 1)) && (on(y - 1, x) || on(y + 1, x));
                assert_eq!(
                    got.get(y as usize, x as usize),
                    want,
                    "({y}, {x}) at {density}%"
                );
            }
        }
    }
    // A vertical streak one pixel wide goes; a 2x2 block stays.
    let m = BitMask::from_fn(10, 10, |y, x| {
        (x == 2 && y < 6) || ((7..9).contains(&y) && (5..7).contains(&x))
    });
    let mut got = BitMask::new(10, 10);
    despeckle(&m, &mut got);
    assert_eq!(got.count(), 4);
}

/// 8-connected components of a mask, by runs (cheap when motion is sparse).
#[cfg(test)]
fn blobs(mask: &BitMask, s: &mut RunScratch) -> Vec<Blob> {
    blobs_weighted(mask, None, s)
}

/// [`blobs`] of a 2x2-pooled mask whose areas are counted in `fine`, the mask before
/// pooling (each pixel counts 1 without it).
pub(crate) fn blobs_weighted(
    mask: &BitMask,
    fine: Option<&BitMask>,
    s: &mut RunScratch,
) -> Vec<Blob> {
    s.runs.clear();
    s.parent.clear();
    let h = mask.dim().0;
    let mut prev_start = 0usize; // index of the previous row's first run
    for y in 0..h {
        let row = mask.row(y);
        let row_start = s.runs.len();
        let mut prev = prev_start;
        let mut x = 0;
        while let Some((x0, x1)) = kernel::next_run(row, x) {
            x = x1;
            let id = s.runs.len() as u32;
            s.runs.push((y as u32, x0 as u32, x as u32, id));
            s.parent.push(id);
            // Join runs of the previous row that touch [x0 - 1, x + 1). Both rows' runs are
            // sorted by x: skip (for good) those that end left of this run, then join until
            // one starts right of it. Linear in the runs of the two rows.
            while prev < row_start && (s.runs[prev].2 as usize) < x0 {
                prev += 1;
            }
            let mut p = prev;
            while p < row_start && (s.runs[p].1 as usize) <= x {
                let (a, b) = (s.find(p as u32), s.find(id));
                if a != b {
                    s.parent[a.max(b) as usize] = a.min(b);
                }
                p += 1;
            }
        }
        prev_start = row_start;
    }
    let mut out: Vec<Blob> = Vec::new();
    let mut root_blob = vec![u32::MAX; s.runs.len()];
    s.run_blob.clear();
    for r in 0..s.runs.len() {
        let root = s.find(r as u32) as usize;
        let (y, x0, x1, _) = s.runs[r];
        if root_blob[root] == u32::MAX {
            root_blob[root] = out.len() as u32;
            out.push(Blob {
                area: 0,
                bbox: [x0, y, x1, y + 1],
            });
        }
        let b = &mut out[root_blob[root] as usize];
        b.area += match fine {
            Some(f) => {
                let (fy, (x0, x1)) = (2 * y as usize, (2 * x0 as usize, 2 * x1 as usize));
                kernel::count_range(f.row(fy), x0, x1)
                    + if fy + 1 < f.dim().0 {
                        kernel::count_range(f.row(fy + 1), x0, x1)
                    } else {
                        0
                    }
            }
            None => x1 - x0,
        };
        b.bbox = union(b.bbox, [x0, y, x1, y + 1]);
        s.run_blob.push(root_blob[root]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn mask(rows: &[&str]) -> Array2<u8> {
        let w = rows[0].len();
        Array2::from_shape_fn((rows.len(), w), |(y, x)| {
            (rows[y].as_bytes()[x] == b'#') as u8
        })
    }

    fn bits(m: &Array2<u8>) -> BitMask {
        let (h, w) = m.dim();
        BitMask::from_fn(h, w, |y, x| m[(y, x)] == 1)
    }

    #[test]
    fn blobs_are_8_connected_components() {
        let m = mask(&[
            "##......#.",
            ".#......#.",
            "..#.....##",
            "..........",
            "#...###...",
            "....#.#...",
        ]);
        let mut s = RunScratch::default();
        let mut b = blobs(&bits(&m), &mut s);
        b.sort_by_key(|b| (b.bbox[1], b.bbox[0]));
        assert_eq!(
            b,
            vec![
                Blob {
                    area: 4,
                    bbox: [0, 0, 3, 3]
                }, // diagonal: 8-connected
                Blob {
                    area: 4,
                    bbox: [8, 0, 10, 3]
                },
                Blob {
                    area: 1,
                    bbox: [0, 4, 1, 5]
                },
                Blob {
                    area: 5,
                    bbox: [4, 4, 7, 6]
                },
            ]
        );
    }

    /// Naive 8-connected flood fill, the reference for `blobs`.
    fn flood(m: &Array2<u8>) -> Vec<Blob> {
        let (h, w) = m.dim();
        let mut seen = Array2::<bool>::from_elem((h, w), false);
        let mut out = Vec::new();
        for y0 in 0..h {
            for x0 in 0..w {
                if m[(y0, x0)] == 0 || seen[(y0, x0)] {
                    continue;
                }
                let mut b = Blob {
                    area: 0,
                    bbox: [x0 as u32, y0 as u32, x0 as u32 + 1, y0 as u32 + 1],
                };
                let mut stack = vec![(y0, x0)];
                seen[(y0, x0)] = true;
                while let Some((y, x)) = stack.pop() {
                    b.area += 1;
                    b.bbox = union(b.bbox, [x as u32, y as u32, x as u32 + 1, y as u32 + 1]);
                    for dy in -1i64..=1 {
                        for dx in -1i64..=1 {
                            let (ny, nx) = (y as i64 + dy, x as i64 + dx);
                            if ny < 0 || nx < 0 || ny >= h as i64 || nx >= w as i64 {
                                continue;
                            }
                            let (ny, nx) = (ny as usize, nx as usize);
                            if m[(ny, nx)] == 1 && !seen[(ny, nx)] {
                                seen[(ny, nx)] = true;
                                stack.push((ny, nx));
                            }
                        }
                    }
                }
                out.push(b);
            }
        }
        out
    }

    #[test]
    fn blobs_equal_naive_flood_fill_on_random_masks() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut s = RunScratch::default();
        for _ in 0..300 {
            let (h, w) = (rng.usize(1..24), rng.usize(1..150));
            let density = rng.f64();
            let m = Array2::from_shape_fn((h, w), |_| (rng.f64() < density) as u8);
            let key = |b: &Blob| (b.bbox, b.area);
            let mut got = blobs(&bits(&m), &mut s);
            let mut want = flood(&m);
            got.sort_by_key(key);
            want.sort_by_key(key);
            assert_eq!(got, want, "mask {m:?}");
        }
    }

    #[test]
    fn pooled_blobs_keep_exact_areas() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut s = RunScratch::default();
        for _ in 0..200 {
            let (h, w) = (rng.usize(1..30), rng.usize(1..300));
            let density = rng.f64() * 0.5;
            let m = Array2::from_shape_fn((h, w), |_| (rng.f64() < density) as u8);
            let fine = bits(&m);
            let mut pooled = BitMask::new(h.div_ceil(2), w.div_ceil(2));
            pool2(&fine, &mut pooled);
            for y in 0..h.div_ceil(2) {
                for x in 0..w.div_ceil(2) {
                    let mut n = 0;
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        if 2 * y + dy < h && 2 * x + dx < w {
                            n += m[(2 * y + dy, 2 * x + dx)];
                        }
                    }
                    assert_eq!(pooled.get(y, x), n > 0, "({y}, {x}) of {m:?}");
                }
            }
            // Padding bits stay 0 (runs rely on it).
            assert_eq!(
                pooled.count() as usize,
                (0..h.div_ceil(2))
                    .flat_map(|y| (0..w.div_ceil(2)).map(move |x| (y, x)))
                    .filter(|&(y, x)| pooled.get(y, x))
                    .count()
            );
            let b = blobs_weighted(&pooled, Some(&fine), &mut s);
            assert_eq!(
                b.iter().map(|b| b.area).sum::<u32>(),
                m.iter().map(|&v| v as u32).sum::<u32>()
            );
            // Pooling only ever joins blobs.
            assert!(b.len() <= blobs(&bits(&m), &mut s).len());
        }
    }

    #[test]
    fn u_shape_merges_late() {
        let m = mask(&["#...#", "#...#", "#####"]);
        let b = blobs(&bits(&m), &mut RunScratch::default());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].area, 9);
    }
}
