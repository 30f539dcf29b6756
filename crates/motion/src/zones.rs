//! Zones and masks rasterised to a label map, once per analysis resolution.
//!
//! Label 0: masked (ignored for motion). Label 1: in no zone (still counts as motion in
//! the frame). Labels 2..: one per distinct set of zones, so overlapping zones cost nothing
//! extra per pixel: the kernel counts labels, and [`LabelMap::zone_counts`] turns label
//! counts into zone counts.

use ndarray::Array2;

use crate::config::Polygon;

pub const MASKED: u8 = 0;
pub const NO_ZONE: u8 = 1;

/// Most zones per camera (a label's zone set is a 64-bit mask).
pub const MAX_ZONES: usize = 64;

#[derive(Clone, Debug)]
pub struct LabelMap {
    pub labels: Array2<u8>,
    /// For each label, the zones it belongs to (bit i = zone i).
    pub label_zones: Vec<u64>,
    /// Unmasked pixels of each zone.
    pub zone_areas: Vec<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZoneError {
    #[error("at most {MAX_ZONES} zones per camera")]
    TooManyZones,
    #[error("the zones overlap in more than 254 different ways")]
    TooManyOverlaps,
}

/// Even-odd test of the point (x, y) against a polygon in the same coordinates.
pub fn contains(poly: &[[f64; 2]], x: f64, y: f64) -> bool {
    let mut inside = false;
    let n = poly.len();
    for i in 0..n {
        let [xi, yi] = poly[i];
        let [xj, yj] = poly[(i + n - 1) % n];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
    }
    inside
}

impl LabelMap {
    /// Rasterises normalised polygons at `width` x `height`, testing pixel centres.
    pub fn new(
        zones: &[Polygon],
        masks: &[Polygon],
        width: usize,
        height: usize,
    ) -> Result<LabelMap, ZoneError> {
        if zones.len() > MAX_ZONES {
            return Err(ZoneError::TooManyZones);
        }
        let mut label_zones = vec![0u64, 0u64]; // MASKED, NO_ZONE
        let mut labels = Array2::<u8>::from_elem((height, width), NO_ZONE);
        let mut zone_areas = vec![0u32; zones.len()];
        for ((y, x), l) in labels.indexed_iter_mut() {
            let (px, py) = (
                (x as f64 + 0.5) / width as f64,
                (y as f64 + 0.5) / height as f64,
            );
            if masks.iter().any(|m| contains(m, px, py)) {
                *l = MASKED;
                continue;
            }
            let mut set = 0u64;
            for (i, z) in zones.iter().enumerate() {
                if contains(z, px, py) {
                    set |= 1 << i;
                    zone_areas[i] += 1;
                }
            }
            if set != 0 {
                let id = match label_zones.iter().skip(2).position(|&s| s == set) {
                    Some(i) => i + 2,
                    None => {
                        if label_zones.len() == 256 {
                            return Err(ZoneError::TooManyOverlaps);
                        }
                        label_zones.push(set);
                        label_zones.len() - 1
                    }
                };
                *l = id as u8;
            }
        }
        Ok(LabelMap {
            labels,
            label_zones,
            zone_areas,
        })
    }

    pub fn num_labels(&self) -> usize {
        self.label_zones.len()
    }

    /// Changed pixels per zone from changed pixels per label.
    pub fn zone_counts(&self, label_counts: &[u32], out: &mut [u32]) {
        out.fill(0);
        for (l, &n) in label_counts.iter().enumerate().skip(2) {
            if n == 0 {
                continue;
            }
            let mut set = self.label_zones[l];
            while set != 0 {
                let z = set.trailing_zeros() as usize;
                out[z] += n;
                set &= set - 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon {
        vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    }

    #[test]
    fn overlapping_zones_and_masks() {
        let zones = vec![rect(0.0, 0.0, 0.5, 1.0), rect(0.25, 0.0, 0.75, 1.0)];
        let masks = vec![rect(0.0, 0.0, 1.0, 0.25)];
        let m = LabelMap::new(&zones, &masks, 100, 40).unwrap();
        assert_eq!(m.labels[(0, 10)], MASKED);
        assert_eq!(m.labels[(20, 90)], NO_ZONE);
        let a = m.labels[(20, 10)];
        let ab = m.labels[(20, 40)];
        let b = m.labels[(20, 60)];
        assert_eq!(m.label_zones[a as usize], 0b01);
        assert_eq!(m.label_zones[ab as usize], 0b11);
        assert_eq!(m.label_zones[b as usize], 0b10);
        // 30 unmasked rows; zone 0 spans x 0..50, zone 1 x 25..75.
        assert_eq!(m.zone_areas, vec![50 * 30, 50 * 30]);
        let mut counts = vec![0u32; m.num_labels()];
        counts[a as usize] = 3;
        counts[ab as usize] = 5;
        counts[b as usize] = 7;
        counts[NO_ZONE as usize] = 100;
        let mut z = vec![0; 2];
        m.zone_counts(&counts, &mut z);
        assert_eq!(z, vec![8, 12]);
    }

    #[test]
    fn triangle_contains() {
        let t = vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        assert!(contains(&t, 0.2, 0.2));
        assert!(!contains(&t, 0.8, 0.8));
    }
}
