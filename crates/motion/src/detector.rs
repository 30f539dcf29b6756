//! The per-camera motion detector: kernel pass -> speckle removal -> blobs (noise filter) -> lighting-change
//! suppression -> per-zone activity -> event state machine.
//!
//! Pure computation on luma frames with timestamps; the caller decodes and delivers.

use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use crate::blobs::{RunScratch, blobs_weighted, despeckle, pool2, union};
use crate::config::{DetectorConfig, Polygon, Zone};
use crate::kernel::{self, BitMask, FrameCounts, Grid, Impl, KernelParams, LabelWords, Pass};
use crate::zones::{LabelMap, MASKED, ZoneError};

/// A motion event, as `vigil analyze` prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub camera: String,
    /// From the start of the input's media timeline.
    pub start_ms: u64,
    pub end_ms: u64,
    pub zones: Vec<String>,
    /// Largest fraction of the unmasked image in moving blobs, over the event.
    pub peak_score: f64,
    /// Union of the moving blobs' boxes: x0, y0, x1, y1 normalised to 0..1.
    pub bbox: [f64; 4],
}

/// What one frame showed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameResult {
    /// Fraction of the unmasked image in kept blobs.
    pub score: f64,
    pub motion: bool,
    /// Zones with motion in this frame (indices into the camera's zones).
    pub zones: Vec<usize>,
    pub lighting_change: bool,
    pub calibrating: bool,
    /// This frame is the open event's peak so far (its thumbnail frame).
    pub peak: bool,
    /// An event opened with this frame.
    pub opened: bool,
    /// Zones (indices) that joined the open event with this frame, all of them when it
    /// opened.
    pub new_zones: Vec<usize>,
    /// Fraction of each motion-grid cell in kept blobs (0..=255), row-major: after noise
    /// filtering, so that search after the fact finds objects, not compression noise. All
    /// zero while calibrating, on a lighting change, and when nothing qualified.
    pub grid: Vec<u8>,
    pub grid_cols: u16,
    pub grid_rows: u16,
}

struct Open {
    start_ms: u64,
    last_motion_ms: u64,
    zones: u64,
    peak: f64,
    bbox: [u32; 4],
}

/// Per-resolution state, rebuilt when the frame size changes.
struct Geometry {
    width: usize,
    height: usize,
    labels: LabelMap,
    label_words: LabelWords,
    grid: Grid,
    /// Changed pixels in kept blobs per grid cell (scratch).
    kept_cells: Vec<u32>,
    bg: Array2<u16>,
    changed: BitMask,
    counts: FrameCounts,
    cell_areas: Vec<u32>,
    unmasked: u32,
    /// The changed mask pooled 2x2: set where a block has a changed pixel.
    pooled: BitMask,
    /// Scratch for the despeckled mask (swapped with `changed`).
    clean: BitMask,
}

pub struct Detector {
    camera: String,
    zone_names: Vec<String>,
    zone_polys: Vec<Polygon>,
    /// Per zone: (min_area as a fraction of the image, min fraction of the zone).
    zone_limits: Vec<(f64, f64)>,
    masks: Vec<Polygon>,
    cfg: DetectorConfig,
    params: KernelParams,
    imp: Impl,
    geo: Option<Geometry>,
    /// (width, height) of the current geometry, also while `geo` is taken out.
    dims: (usize, usize),
    frames_seen: u64,
    quiet_until_frame: u64,
    consecutive: u32,
    run_start_ms: u64,
    open: Option<Open>,
    frame_ms: u64,
    runs: RunScratch,
}

impl Detector {
    pub fn new(camera: &str, zones: &[Zone], masks: &[Polygon], cfg: DetectorConfig) -> Detector {
        Detector {
            camera: camera.to_owned(),
            zone_names: zones.iter().map(|z| z.name.clone()).collect(),
            zone_polys: zones.iter().map(|z| z.polygon.clone()).collect(),
            zone_limits: zones
                .iter()
                .map(|z| {
                    (
                        z.min_area.unwrap_or(0.0),
                        z.min_fraction.unwrap_or(cfg.zone_min_fraction),
                    )
                })
                .collect(),
            masks: masks.to_vec(),
            params: KernelParams {
                threshold: cfg.threshold,
                shift_still: cfg.background_shift,
                shift_moving: cfg.moving_background_shift,
            },
            cfg,
            imp: Impl::best(),
            geo: None,
            dims: (1, 1),
            frames_seen: 0,
            quiet_until_frame: 0,
            consecutive: 0,
            run_start_ms: 0,
            open: None,
            frame_ms: 200,
            runs: RunScratch::default(),
        }
    }

    fn ensure_geometry(&mut self, h: usize, w: usize) -> Result<(), ZoneError> {
        if self
            .geo
            .as_ref()
            .is_none_or(|g| (g.height, g.width) != (h, w))
        {
            let labels = LabelMap::new(&self.zone_polys, &self.masks, w, h)?;
            let grid = Grid::new(w, h, 32.min(w), 18.min(h));
            let counts = FrameCounts::new(labels.num_labels(), &grid);
            let cell_areas = grid.cell_areas();
            let unmasked = labels.labels.iter().filter(|&&l| l != MASKED).count() as u32;
            self.geo = Some(Geometry {
                width: w,
                height: h,
                label_words: LabelWords::new(labels.labels.view()),
                labels,
                kept_cells: vec![0; grid.cols * grid.rows],
                grid,
                bg: Array2::zeros((h, w)),
                changed: BitMask::new(h, w),
                counts,
                cell_areas,
                unmasked: unmasked.max(1),
                pooled: BitMask::new(h.div_ceil(2), w.div_ceil(2)),
                clean: BitMask::new(h, w),
            });
            // A new resolution starts a new background: calibrate again.
            self.frames_seen = 0;
            self.dims = (w, h);
        }
        Ok(())
    }

    /// Replaces the zones and masks (the console's zone editor) keeping the background
    /// model, so that analysis goes on without calibrating again. An open event keeps the
    /// zones it had that still exist by name. Errors: the zones cannot be labelled (too
    /// many, or overlapping in too many ways); the detector is then unchanged.
    pub fn set_zones(&mut self, zones: &[Zone], masks: &[Polygon]) -> Result<(), ZoneError> {
        let polys: Vec<Polygon> = zones.iter().map(|z| z.polygon.clone()).collect();
        if let Some(g) = self.geo.as_mut() {
            let labels = LabelMap::new(&polys, masks, g.width, g.height)?;
            g.counts = FrameCounts::new(labels.num_labels(), &g.grid);
            g.unmasked = (labels.labels.iter().filter(|&&l| l != MASKED).count() as u32).max(1);
            g.label_words = LabelWords::new(labels.labels.view());
            g.labels = labels;
        } else {
            // Checked now rather than at the next frame (any size will do).
            LabelMap::new(&polys, masks, 64, 36)?;
        }
        if let Some(open) = self.open.as_mut() {
            let mut bits = 0u64;
            for (i, name) in self.zone_names.iter().enumerate() {
                if open.zones & (1 << i) != 0
                    && let Some(j) = zones.iter().position(|z| &z.name == name)
                {
                    bits |= 1 << j;
                }
            }
            open.zones = bits;
        }
        self.zone_names = zones.iter().map(|z| z.name.clone()).collect();
        self.zone_polys = polys;
        self.zone_limits = (zones.iter())
            .map(|z| {
                (
                    z.min_area.unwrap_or(0.0),
                    z.min_fraction.unwrap_or(self.cfg.zone_min_fraction),
                )
            })
            .collect();
        self.masks = masks.to_vec();
        Ok(())
    }

    /// The smallest blob any part of the image keeps, as a fraction of the image: the
    /// camera's `min_area`, or a sensitive zone's smaller one.
    fn smallest_blob(&self, camera_min: f64) -> f64 {
        (self.zone_limits.iter())
            .map(|&(a, _)| a)
            .filter(|&a| a > 0.0)
            .fold(camera_min, f64::min)
    }

    /// The last frame's changed pixels (before blobs are filtered) reduced to `cols`
    /// columns (rows in proportion): (cols, rows, row-major flags, 1 where any pixel of the
    /// block changed), for the console's motion overlay. None before the first frame.
    pub fn changed_preview(&self, cols: usize) -> Option<(usize, usize, Vec<u8>)> {
        let g = self.geo.as_ref()?;
        let cols = cols.clamp(1, g.width);
        let rows = (g.height * cols).div_ceil(g.width).max(1);
        let mut out = vec![0u8; cols * rows];
        for y in 0..g.height {
            let r = y * rows / g.height;
            for (wi, &word) in g.changed.row(y).iter().enumerate() {
                let mut w = word;
                while w != 0 {
                    let x = wi * 64 + w.trailing_zeros() as usize;
                    w &= w - 1;
                    if x < g.width {
                        out[r * cols + x * cols / g.width] = 1;
                    }
                }
            }
        }
        Some((cols, rows, out))
    }

    /// Whether an event is open (motion now, or within its post-roll).
    pub fn event_open(&self) -> bool {
        self.open.is_some()
    }

    /// Analyses one frame at `t_ms`; returns the frame's result and any event that closed.
    pub fn frame(
        &mut self,
        luma: ArrayView2<u8>,
        t_ms: u64,
    ) -> Result<(FrameResult, Option<Event>), ZoneError> {
        let (h, w) = luma.dim();
        self.ensure_geometry(h, w)?;
        let mut geo = self.geo.take().expect("geometry");
        let r = self.frame_in(&mut geo, luma, t_ms);
        self.geo = Some(geo);
        Ok(r)
    }

    fn frame_in(
        &mut self,
        geo: &mut Geometry,
        luma: ArrayView2<u8>,
        t_ms: u64,
    ) -> (FrameResult, Option<Event>) {
        let (h, w) = luma.dim();
        let imp = self.imp;
        let params = self.params;
        let cfg = self.cfg.clone();
        let frames_seen = self.frames_seen;
        if frames_seen == 0 {
            geo.bg
                .zip_mut_with(&luma, |b, &f| *b = (f as u16) << kernel::BG_FRAC_BITS);
        }
        let pass = Pass {
            imp,
            labels: &geo.label_words,
            grid: &geo.grid,
            params: &params,
        };
        pass.run(luma, geo.bg.view_mut(), &mut geo.changed, &mut geo.counts);
        let mut res = FrameResult {
            grid: vec![0; geo.cell_areas.len()],
            grid_cols: geo.grid.cols as u16,
            grid_rows: geo.grid.rows as u16,
            ..Default::default()
        };
        let raw_fraction = geo.counts.changed as f64 / geo.unmasked as f64;
        self.frames_seen += 1;
        if frames_seen < cfg.calibration_frames as u64 {
            res.calibrating = true;
        } else if raw_fraction > cfg.lighting_fraction {
            // A sudden global change (lights, exposure, IR switch): learn the new scene now.
            geo.bg
                .zip_mut_with(&luma, |b, &f| *b = (f as u16) << kernel::BG_FRAC_BITS);
            res.lighting_change = true;
            self.quiet_until_frame = self.frames_seen + cfg.lighting_quiet_frames as u64;
        } else if self.frames_seen > self.quiet_until_frame
            && geo.counts.changed
                >= ((self.smallest_blob(cfg.min_area) * (w * h) as f64).ceil() as u32).max(1)
        {
            // (Fewer changed pixels than the smallest blob allowed: no blob can qualify,
            // so quiet frames, most frames of a surveillance camera, skip labelling.)
            let px = |fraction: f64| ((fraction * (w * h) as f64).ceil() as u32).max(1);
            let min_area = px(cfg.min_area);
            // A sensitive zone (its min_area below the camera's) keeps smaller blobs
            // whose centre lies in it: a distant person there, birds elsewhere ignored.
            let sensitive: Vec<(u64, u32)> = (self.zone_limits.iter().enumerate())
                .filter(|(_, (a, _))| *a > 0.0 && *a < cfg.min_area)
                .map(|(z, (a, _))| (1u64 << z, px(*a)))
                .collect();
            // Speckle (rain, snow, sensor noise: changes one pixel wide) goes before the
            // 2x2 pooling, which would otherwise link nearby specks into blobs.
            despeckle(&geo.changed, &mut geo.clean);
            std::mem::swap(&mut geo.changed, &mut geo.clean);
            // Blobs are labelled on the 2x2-pooled mask (a quarter of the pixels and runs;
            // linking within a block acts as a small dilation) with exact pixel areas.
            pool2(&geo.changed, &mut geo.pooled);
            let blobs = blobs_weighted(&geo.pooled, Some(&geo.changed), &mut self.runs);
            let mut kept_area = 0u32;
            let mut bbox = [u32::MAX, u32::MAX, 0, 0];
            let mut zone_px = vec![0u32; self.zone_polys.len()];
            let labels = &geo.labels;
            let keep = |b: &crate::blobs::Blob| {
                if b.area >= min_area {
                    return true;
                }
                if sensitive.iter().all(|&(_, a)| b.area < a) {
                    return false;
                }
                // The centre of its box, in pixels (the box is in pooled cells).
                let cx = ((b.bbox[0] + b.bbox[2]) as usize).min(w - 1);
                let cy = ((b.bbox[1] + b.bbox[3]) as usize).min(h - 1);
                let zones = labels.label_zones[labels.labels[(cy, cx)] as usize];
                sensitive
                    .iter()
                    .any(|&(bit, a)| zones & bit != 0 && b.area >= a)
            };
            // A blob whose changed pixels are the background under other light (a cloud
            // shadow, a headlight beam: the texture stays, scaled) is not an object.
            let kept: Vec<bool> = (blobs.iter())
                .map(|b| {
                    keep(b)
                        && !change_of_light(
                            cfg.light_correlation,
                            luma,
                            &geo.bg,
                            &geo.changed,
                            [
                                2 * b.bbox[0] as usize,
                                2 * b.bbox[1] as usize,
                                (2 * b.bbox[2] as usize).min(w),
                                (2 * b.bbox[3] as usize).min(h),
                            ],
                        )
                })
                .collect();
            for b in blobs.iter().zip(&kept).filter(|(_, k)| **k).map(|(b, _)| b) {
                kept_area += b.area;
                let [x0, y0, x1, y1] = b.bbox;
                bbox = union(
                    bbox,
                    [
                        2 * x0,
                        2 * y0,
                        (2 * x1).min(w as u32),
                        (2 * y1).min(h as u32),
                    ],
                );
            }
            if kept_area > 0 {
                self.runs
                    .count_zones_pooled(&kept, &geo.labels, &geo.changed, &mut zone_px);
                geo.kept_cells.fill(0);
                self.runs
                    .count_cells_pooled(&kept, &geo.grid, &geo.changed, &mut geo.kept_cells);
                for ((g, &c), &a) in res
                    .grid
                    .iter_mut()
                    .zip(&geo.kept_cells)
                    .zip(&geo.cell_areas)
                {
                    *g = (c * 255 / a.max(1)) as u8;
                }
            }
            res.score = kept_area as f64 / geo.unmasked as f64;
            res.motion = kept_area > 0;
            for (z, &px) in zone_px.iter().enumerate() {
                let area = geo.labels.zone_areas[z].max(1);
                let (min_area, min_fraction) = self.zone_limits[z];
                if px > 0
                    && px as f64 >= min_area * (w * h) as f64
                    && px as f64 / area as f64 >= min_fraction
                {
                    res.zones.push(z);
                }
            }
            if res.motion {
                let (peak, opened, new_zones) = self.track(t_ms, &res, bbox);
                res.peak = peak;
                res.opened = opened;
                res.new_zones = (0..self.zone_names.len())
                    .filter(|z| new_zones & (1 << z) != 0)
                    .collect();
            }
        }
        if !res.motion {
            self.consecutive = 0;
        }
        let closed = self.maybe_close(t_ms, res.motion);
        (res, closed)
    }

    /// Feeds a motion frame to the event state machine: (the open event's new peak, an
    /// event opened, bits of zones that joined the open event).
    fn track(&mut self, t_ms: u64, res: &FrameResult, bbox: [u32; 4]) -> (bool, bool, u64) {
        if self.consecutive == 0 {
            self.run_start_ms = t_ms;
        }
        self.consecutive += 1;
        let zones = res.zones.iter().fold(0u64, |m, &z| m | 1 << z);
        match &mut self.open {
            Some(o) => {
                o.last_motion_ms = t_ms;
                let joined = zones & !o.zones;
                o.zones |= zones;
                o.bbox = union(o.bbox, bbox);
                let new_peak = res.score > o.peak;
                o.peak = o.peak.max(res.score);
                (new_peak, false, joined)
            }
            None if self.consecutive >= self.cfg.min_frames => {
                self.open = Some(Open {
                    start_ms: self.run_start_ms,
                    last_motion_ms: t_ms,
                    zones,
                    peak: res.score,
                    bbox,
                });
                (true, true, zones)
            }
            None => (false, false, 0),
        }
    }

    fn maybe_close(&mut self, t_ms: u64, motion: bool) -> Option<Event> {
        let o = self.open.as_ref()?;
        if motion && t_ms >= o.start_ms + (self.cfg.max_event_seconds * 1000.0) as u64 {
            // Long enough: close it; the motion goes on as a new event from the next
            // motion frame (the run of motion frames already counts as confirmed).
            self.run_start_ms = t_ms + self.frame_ms;
            return self.finish();
        }
        if motion || t_ms < o.last_motion_ms + (self.cfg.post_roll * 1000.0) as u64 {
            return None;
        }
        self.finish()
    }

    /// Sets the nominal frame interval (for the end time of the last motion frame).
    pub fn set_frame_interval_ms(&mut self, ms: u64) {
        self.frame_ms = ms.max(1);
    }

    /// Ends the stream: closes any open event.
    pub fn finish(&mut self) -> Option<Event> {
        let o = self.open.take()?;
        let (w, h) = (self.dims.0 as f64, self.dims.1 as f64);
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        Some(Event {
            camera: self.camera.clone(),
            start_ms: o.start_ms,
            end_ms: o.last_motion_ms + self.frame_ms,
            zones: (0..self.zone_names.len())
                .filter(|z| o.zones & (1 << z) != 0)
                .map(|z| self.zone_names[z].clone())
                .collect(),
            peak_score: (o.peak * 1e4).round() / 1e4,
            bbox: [
                round(o.bbox[0] as f64 / w),
                round(o.bbox[1] as f64 / h),
                round(o.bbox[2] as f64 / w),
                round(o.bbox[3] as f64 / h),
            ],
        })
    }
}

/// Background texture (standard deviation, grey levels) needed to tell light from an
/// object: over a flat wall a shadow and a grey coat look alike, and the blob is kept.
const LIGHT_MIN_TEXTURE: f64 = 6.0;

/// Whether the changed pixels of box `[x0, y0, x1, y1)` (pixels) are the background
/// under other light: their values correlate with the background's (normalised
/// cross-correlation, invariant to gain and offset, as in texture-based shadow
/// detection: Heikkilä and Pietikäinen 2006, Sanin et al. 2012) while an object
/// replaces the texture. Pure computation over the box, no I/O.
fn change_of_light(
    min_ncc: f64,
    frame: ArrayView2<u8>,
    bg: &Array2<u16>,
    changed: &BitMask,
    [x0, y0, x1, y1]: [usize; 4],
) -> bool {
    if min_ncc > 1.0 {
        return false;
    }
    // Integer sums over the set bits only (64 pixels per mask word, skipped when empty).
    let (mut n, mut sf, mut sb, mut sff, mut sbb, mut sfb) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for y in y0..y1 {
        let (Some(f_row), Some(b_row)) = (frame.row(y).to_slice(), bg.row(y).to_slice()) else {
            return false;
        };
        let row = changed.row(y);
        for (wi, &word) in row.iter().enumerate().take(x1.div_ceil(64)).skip(x0 / 64) {
            let lo = if wi == x0 / 64 {
                !0u64 << (x0 % 64)
            } else {
                !0
            };
            let hi = if wi == (x1 - 1) / 64 {
                !0u64 >> (63 - (x1 - 1) % 64)
            } else {
                !0
            };
            let mut bits = word & lo & hi;
            while bits != 0 {
                let x = wi * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let f = f_row[x] as u64;
                let b = (b_row[x] >> kernel::BG_FRAC_BITS) as u64;
                n += 1;
                sf += f;
                sb += b;
                sff += f * f;
                sbb += b * b;
                sfb += f * b;
            }
        }
    }
    if n < 16 {
        return false;
    }
    let n = n as f64;
    let (sf, sb, sff, sbb, sfb) = (sf as f64, sb as f64, sff as f64, sbb as f64, sfb as f64);
    let var_f = sff / n - (sf / n).powi(2);
    let var_b = sbb / n - (sb / n).powi(2);
    if var_b.sqrt() < LIGHT_MIN_TEXTURE || var_f <= 0.0 {
        return false;
    }
    let cov = sfb / n - (sf / n) * (sb / n);
    cov / (var_f * var_b).sqrt() >= min_ncc
}

#[cfg(test)]
mod tests;
