//! Region search after the fact: a polygon drawn on the camera image, answered from the
//! per-second motion history (one bit per grid cell), never by decoding video.

use serde::Serialize;

use super::{Cameras, QueryError, bad, check_range};
use crate::base::time::rfc3339;
use crate::index::Index;
use crate::motion::zones::contains;

/// Seconds without motion that still join two stretches into one interval.
const JOIN_GAP_S: i64 = 2;

/// A stretch of time with motion inside the region on one camera.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub camera: String,
    pub start: String,
    pub end: String,
    pub start_us: i64,
    pub end_us: i64,
    /// Seconds with motion in the region within the interval.
    pub seconds: u32,
    /// Peak score (whole image) over those seconds.
    pub peak_score: f32,
}

/// Checks a polygon in normalised image coordinates.
pub fn check_polygon(poly: &[[f64; 2]]) -> Result<(), QueryError> {
    if poly.len() < 3 {
        return Err(bad(format!(
            "polygon needs at least 3 points, has {}",
            poly.len()
        )));
    }
    if poly.len() > 1000 {
        return Err(bad("polygon has more than 1000 points"));
    }
    for (i, p) in poly.iter().enumerate() {
        if !p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)) {
            return Err(bad(format!(
                "polygon point {i} ({}, {}) is outside 0..1",
                p[0], p[1]
            )));
        }
    }
    if let Some((i, j)) = crate::base::polygon::crossing_edges(poly) {
        return Err(bad(format!(
            "polygon crosses itself (the edge from point {i} to {} crosses the one from point {j} to {}); list the corners in order around the shape",
            (i + 1) % poly.len(),
            (j + 1) % poly.len()
        )));
    }
    Ok(())
}

/// The grid cells a polygon selects, as bits: cells whose centre it contains; if it
/// contains no centre (a polygon smaller than a cell), the cells of its vertices.
pub fn cell_mask(poly: &[[f64; 2]], cols: usize, rows: usize) -> Vec<u64> {
    let mut m = vec![0u64; (cols * rows).div_ceil(64)];
    let mut set = |cx: usize, cy: usize| {
        let i = cy * cols + cx;
        m[i / 64] |= 1 << (i % 64);
    };
    for cy in 0..rows {
        for cx in 0..cols {
            let (x, y) = (
                (cx as f64 + 0.5) / cols as f64,
                (cy as f64 + 0.5) / rows as f64,
            );
            if contains(poly, x, y) {
                set(cx, cy);
            }
        }
    }
    if m.iter().any(|&w| w != 0) {
        return m;
    }
    let mut set = |cx: usize, cy: usize| {
        let i = cy * cols + cx;
        m[i / 64] |= 1 << (i % 64);
    };
    for p in poly {
        let cx = ((p[0] * cols as f64) as usize).min(cols - 1);
        let cy = ((p[1] * rows as f64) as usize).min(rows - 1);
        set(cx, cy);
    }
    m
}

/// When anything moved inside `polygon` on `cameras` (all if empty) in `[start, end)`:
/// intervals, oldest first per camera, cameras in the order given.
pub fn region_search(
    index: &Index,
    cameras: &[String],
    polygon: &[[f64; 2]],
    start_us: i64,
    end_us: i64,
) -> Result<Vec<Interval>, QueryError> {
    check_range(start_us, end_us)?;
    check_polygon(polygon)?;
    let cams = Cameras::load(index)?;
    let mut out = Vec::new();
    let minute0 = start_us.div_euclid(60_000_000) * 60_000_000;
    for cam in cams.ids(cameras)? {
        let name = cams.name(cam);
        let mut mask: Option<((u16, u16), Vec<u64>)> = None;
        let mut cur: Option<Interval> = None;
        for m in index.motion_minutes(cam, minute0, end_us) {
            let (t, minute) = m?;
            let dims = (minute.cols, minute.rows);
            if mask.as_ref().is_none_or(|(d, _)| *d != dims) {
                mask = Some((dims, cell_mask(polygon, dims.0 as usize, dims.1 as usize)));
            }
            let bits = &mask.as_ref().unwrap().1;
            for s in &minute.seconds {
                let st = t + s.second as i64 * 1_000_000;
                if st + 1_000_000 <= start_us || st >= end_us {
                    continue;
                }
                if !s.cells.iter().zip(bits).any(|(a, b)| a & b != 0) {
                    continue;
                }
                let score = s.peak as f32 / 65535.0;
                match &mut cur {
                    Some(i) if st - i.end_us <= JOIN_GAP_S * 1_000_000 => {
                        i.end_us = st + 1_000_000;
                        i.seconds += 1;
                        i.peak_score = i.peak_score.max(score);
                    }
                    _ => {
                        out.extend(cur.take());
                        cur = Some(Interval {
                            camera: name.clone(),
                            start: String::new(),
                            end: String::new(),
                            start_us: st,
                            end_us: st + 1_000_000,
                            seconds: 1,
                            peak_score: score,
                        });
                    }
                }
            }
        }
        out.extend(cur.take());
    }
    for i in &mut out {
        i.start = rfc3339(i.start_us);
        i.end = rfc3339(i.end_us);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{MotionMinute, MotionSecond};

    #[test]
    fn polygon_cells() {
        // Left half of a 4x2 grid: centres at x 0.125 and 0.375.
        let m = cell_mask(&[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]], 4, 2);
        assert_eq!(m, vec![0b0011_0011]);
        // A tiny triangle inside cell (3, 1) contains no centre: its vertices select it.
        // (Vertices on cell edges above did not add neighbours.)
        let m = cell_mask(&[[0.8, 0.6], [0.85, 0.6], [0.8, 0.65]], 4, 2);
        assert_eq!(m, vec![1 << 7]);
    }

    #[test]
    fn bad_polygons_are_refused() {
        assert!(check_polygon(&[[0.0, 0.0], [1.0, 1.0]]).is_err());
        assert!(check_polygon(&[[0.0, 0.0], [1.0, 1.5], [0.0, 1.0]]).is_err());
        assert!(check_polygon(&[[0.0, f64::NAN], [1.0, 1.0], [0.0, 1.0]]).is_err());
        assert!(check_polygon(&[[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]).is_ok());
    }

    #[test]
    fn intervals_join_short_gaps_and_respect_the_region() {
        let ix = Index::temporary().unwrap();
        let cam = ix.camera_id("c").unwrap();
        // 2x1 grid: bit 0 = left cell, bit 1 = right cell.
        let sec = |second: u8, cells: u64| MotionSecond {
            second,
            cells: vec![cells],
            peak: 6553,
            zones: 0,
        };
        let minute = MotionMinute {
            cols: 2,
            rows: 1,
            zone_ids: vec![],
            // Left: 10, 11, 13 (joined: gap of 1 s) and 30; right only: 20.
            seconds: vec![sec(10, 1), sec(11, 1), sec(13, 3), sec(20, 2), sec(30, 1)],
        };
        let t0 = 1_800_000_000_000_000i64;
        ix.put_motion_minute(cam, t0, &minute).unwrap();
        let left = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]];
        let got = region_search(&ix, &[], &left, t0, t0 + 60_000_000).unwrap();
        let spans: Vec<(i64, i64, u32)> = got
            .iter()
            .map(|i| {
                (
                    (i.start_us - t0) / 1_000_000,
                    (i.end_us - t0) / 1_000_000,
                    i.seconds,
                )
            })
            .collect();
        assert_eq!(spans, vec![(10, 14, 3), (30, 31, 1)]);
        assert_eq!(got[0].camera, "c");
        assert!((got[0].peak_score - 0.1).abs() < 1e-4);
        let right = [[0.6, 0.0], [1.0, 0.0], [1.0, 1.0], [0.6, 1.0]];
        let got = region_search(&ix, &["c".into()], &right, t0, t0 + 60_000_000).unwrap();
        assert_eq!(
            got.iter()
                .map(|i| (i.start_us - t0) / 1_000_000)
                .collect::<Vec<_>>(),
            vec![13, 20]
        );
        // The range clips: only second 30 from 25 s on.
        let got = region_search(&ix, &[], &left, t0 + 25_000_000, t0 + 60_000_000).unwrap();
        assert_eq!(got.len(), 1);
        assert!(matches!(
            region_search(&ix, &["nope".into()], &left, t0, t0 + 1),
            Err(QueryError::NotFound(_))
        ));
    }
}
