//! Plausible scenes for the demo's simulated cameras, drawn here as raw I420 pictures: a
//! door in a brick wall, a yard with a fence and a tree, a facade with windows. People
//! (figures of about a third of the picture's height) cross at irregular times, with quiet
//! stretches of 8 to 30 s between them, so that a newcomer sees motion events start and
//! end, alerts arrive and the timeline take shape. The first crossing starts 3 s in. The
//! schedule is fixed by a seed (one per camera) and repeats every [`CYCLE_S`] seconds.
//!
//! Pure: no I/O; `fake_camera` pushes the pictures into an encoder.

/// The schedule repeats after this many seconds.
pub const CYCLE_S: f64 = 300.0;

/// Where a camera looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A door in the middle of a brick wall; people walk past it along the pavement.
    Door,
    /// Grass, a fence and a tree; people cross on a diagonal.
    Yard,
    /// A facade with rows of windows above a pavement.
    Facade,
}

/// One crossing: when, how long, and where, in normalised coordinates (0..1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Walk {
    pub start_s: f64,
    pub duration_s: f64,
    /// Where the feet are at the start and at the end.
    pub from: (f64, f64),
    pub to: (f64, f64),
    /// Figure height, a fraction of the picture's.
    pub height: f64,
    /// Clothing luma (Y).
    pub luma: u8,
}

/// A scene: its background and its people.
pub struct Scene {
    width: usize,
    height: usize,
    /// The background, I420 (Y, then U and V at half resolution).
    background: Vec<u8>,
    walks: Vec<Walk>,
}

impl Scene {
    /// The scene of `place` at `width` x `height` (even), its crossings drawn from `seed`.
    pub fn new(place: Place, width: u32, height: u32, seed: u64) -> Scene {
        let (w, h) = (width as usize & !1, height as usize & !1);
        Scene {
            width: w,
            height: h,
            background: background(place, w, h),
            walks: schedule(place, seed),
        }
    }

    /// The crossings of one cycle, in time order.
    pub fn walks(&self) -> &[Walk] {
        &self.walks
    }

    /// People in the picture at `t_s` seconds: their boxes (x0, y0, x1, y1), normalised.
    pub fn people_at(&self, t_s: f64) -> Vec<[f64; 4]> {
        let t = t_s.rem_euclid(CYCLE_S);
        (self.walks.iter())
            .filter(|w| t >= w.start_s && t < w.start_s + w.duration_s)
            .map(|w| {
                let k = (t - w.start_s) / w.duration_s;
                let x = w.from.0 + (w.to.0 - w.from.0) * k;
                let y = w.from.1 + (w.to.1 - w.from.1) * k;
                // Nearer the camera (lower in the picture) is larger.
                let hgt = w.height * (0.8 + 0.4 * y);
                let wid = hgt * 0.35 * self.height as f64 / self.width as f64;
                [x - wid / 2.0, y - hgt, x + wid / 2.0, y]
            })
            .collect()
    }

    /// Bytes of one I420 picture.
    pub fn frame_len(&self) -> usize {
        self.width * self.height * 3 / 2
    }

    /// Draws the picture at `t_s` seconds into `out` (I420, [`Self::frame_len`] bytes).
    pub fn draw(&self, t_s: f64, out: &mut [u8]) {
        out.copy_from_slice(&self.background);
        let t = t_s.rem_euclid(CYCLE_S);
        for (b, w) in self
            .people_at(t_s)
            .iter()
            .zip((self.walks.iter()).filter(|w| t >= w.start_s && t < w.start_s + w.duration_s))
        {
            self.figure(out, *b, w.luma, t);
        }
    }

    /// A person: legs that swing, a body, a head.
    fn figure(&self, out: &mut [u8], b: [f64; 4], luma: u8, t: f64) {
        let (w, h) = (self.width as f64, self.height as f64);
        let (x0, y0, x1, y1) = (b[0] * w, b[1] * h, b[2] * w, b[3] * h);
        let (bw, bh) = (x1 - x0, y1 - y0);
        let head = (bh * 0.16).max(2.0);
        let cx = (x0 + x1) / 2.0;
        // Head (skin tone), body (clothes), legs (dark), swinging at 1.6 steps a second.
        self.rect(out, cx - head * 0.4, y0, cx + head * 0.4, y0 + head, 170);
        self.rect(out, x0, y0 + head, x1, y0 + bh * 0.58, luma);
        let swing = (t * std::f64::consts::TAU * 0.8).sin() * bw * 0.25;
        let legs = y0 + bh * 0.58;
        self.rect(
            out,
            cx - bw * 0.35 + swing,
            legs,
            cx - bw * 0.05 + swing,
            y1,
            40,
        );
        self.rect(
            out,
            cx + bw * 0.05 - swing,
            legs,
            cx + bw * 0.35 - swing,
            y1,
            40,
        );
    }

    fn rect(&self, out: &mut [u8], x0: f64, y0: f64, x1: f64, y1: f64, luma: u8) {
        let clamp = |v: f64, max: usize| (v.max(0.0) as usize).min(max);
        let (x0, x1) = (clamp(x0, self.width), clamp(x1, self.width));
        let (y0, y1) = (clamp(y0, self.height), clamp(y1, self.height));
        for y in y0..y1 {
            out[y * self.width + x0..y * self.width + x1].fill(luma);
        }
    }
}

/// A deterministic pseudo-random sequence (SplitMix64), so that a camera's schedule is
/// the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// The crossings of one cycle: the first 3 s in, then quiet stretches of 8 to 30 s.
fn schedule(place: Place, seed: u64) -> Vec<Walk> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut t = 3.0;
    while t < CYCLE_S - 20.0 {
        let duration_s = rng.range(5.0, 11.0);
        let leftwards = rng.next() < 0.5;
        let (from, to) = match place {
            Place::Door | Place::Facade => {
                let y = rng.range(0.9, 0.97);
                ((-0.05, y), (1.05, y))
            }
            Place::Yard => ((-0.05, rng.range(0.55, 0.7)), (1.05, rng.range(0.85, 0.97))),
        };
        let (from, to) = if leftwards { (to, from) } else { (from, to) };
        out.push(Walk {
            start_s: t,
            duration_s,
            from,
            to,
            height: rng.range(0.3, 0.4),
            luma: [60, 90, 200, 230][(rng.next() * 4.0) as usize % 4],
        });
        t += duration_s + rng.range(8.0, 30.0);
    }
    out
}

/// The still picture of a place, I420.
fn background(place: Place, w: usize, h: usize) -> Vec<u8> {
    let mut img = vec![0u8; w * h * 3 / 2];
    let (luma, chroma) = img.split_at_mut(w * h);
    let y_at = |x: usize, y: usize| -> u8 {
        let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
        match place {
            Place::Door => {
                if fy > 0.92 {
                    115 // pavement
                } else if (0.38..0.52).contains(&fx) && fy > 0.3 {
                    if (0.49..0.5).contains(&fx) && (0.6..0.64).contains(&fy) {
                        200
                    } else {
                        70
                    } // door, handle
                } else {
                    brick(x, y)
                }
            }
            Place::Facade => {
                if fy < 0.12 {
                    190 // sky
                } else if fy > 0.92 {
                    115
                } else {
                    let wx = (fx * 8.0).fract();
                    let wy = ((fy - 0.12) * 5.0).fract();
                    if (0.25..0.75).contains(&wx) && (0.2..0.75).contains(&wy) && fy < 0.8 {
                        if (0.48..0.52).contains(&wx) { 150 } else { 45 } // window, mullion
                    } else {
                        brick(x, y)
                    }
                }
            }
            Place::Yard => {
                if fy < 0.4 {
                    // A tree against the sky.
                    let crown = (fx - 0.78).hypot((fy - 0.22) * 1.6) < 0.14;
                    let trunk = (0.77..0.79).contains(&fx) && fy > 0.25;
                    if crown || trunk { 60 } else { 185 }
                } else if fy < 0.5 {
                    if x % 24 < 3 || (fy - 0.45).abs() < 0.006 {
                        150
                    } else {
                        95
                    } // fence
                } else {
                    // Grass: a fixed texture.
                    let n = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)) % 23;
                    (88 + n) as u8
                }
            }
        }
    };
    for y in 0..h {
        for x in 0..w {
            luma[y * w + x] = y_at(x, y);
        }
    }
    // Chroma at half resolution: a warm wall, a dark brown door, green grass and tree, a
    // blue sky, grey pavement.
    let (cw, ch) = (w / 2, h / 2);
    let (cu, cv) = chroma.split_at_mut(cw * ch);
    for y in 0..ch {
        for x in 0..cw {
            let (fx, fy) = (x as f64 / cw as f64, y as f64 / ch as f64);
            let (u, v) = match place {
                _ if fy > 0.92 && place != Place::Yard => (128, 132),
                Place::Door if (0.38..0.52).contains(&fx) && fy > 0.3 => (118, 150),
                Place::Door => (112, 152),
                Place::Facade if fy < 0.12 => (150, 118),
                Place::Facade => (114, 146),
                Place::Yard if fy < 0.4 && luma[y * 2 * w + x * 2] < 100 => (100, 112),
                Place::Yard if fy < 0.4 => (150, 118),
                Place::Yard if fy < 0.5 => (118, 134),
                Place::Yard => (96, 108),
            };
            cu[y * cw + x] = u;
            cv[y * cw + x] = v;
        }
    }
    img
}

/// A brick wall's luma at (x, y): courses 12 px high, bricks 28 px long, offset every
/// other course, mortar lighter.
fn brick(x: usize, y: usize) -> u8 {
    let course = y / 12;
    let off = if course.is_multiple_of(2) { 0 } else { 14 };
    if y % 12 < 2 || (x + off) % 28 < 2 {
        150
    } else {
        100 + ((course * 7 + (x + off) / 28 * 13) % 17) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Crossings start early, last seconds, and leave quiet stretches between them; the
    /// same seed gives the same schedule.
    #[test]
    fn crossings_come_at_irregular_times_with_quiet_between() {
        let s = Scene::new(Place::Door, 640, 360, 7);
        let w = s.walks();
        assert!(w.len() >= 8, "{} crossings in {CYCLE_S} s", w.len());
        assert_eq!(w[0].start_s, 3.0);
        let gaps: Vec<f64> = (w.windows(2))
            .map(|p| p[1].start_s - (p[0].start_s + p[0].duration_s))
            .collect();
        assert!(gaps.iter().all(|g| (8.0..=30.0).contains(g)), "{gaps:?}");
        let distinct = gaps
            .iter()
            .map(|g| (g * 10.0) as i64)
            .collect::<std::collections::BTreeSet<_>>();
        assert!(distinct.len() > gaps.len() / 2, "not irregular: {gaps:?}");
        assert_eq!(Scene::new(Place::Door, 640, 360, 7).walks(), w);
        assert_ne!(Scene::new(Place::Door, 640, 360, 8).walks(), w);
    }

    /// A person is drawn where `people_at` says, about a third of the picture high, and
    /// the picture is the background elsewhere; between crossings it is the background.
    #[test]
    fn people_are_drawn_where_they_are() {
        let s = Scene::new(Place::Yard, 320, 180, 1);
        let w = s.walks()[0];
        let t = w.start_s + w.duration_s / 2.0;
        let people = s.people_at(t);
        assert_eq!(people.len(), 1);
        let [x0, y0, x1, y1] = people[0];
        assert!((0.2..0.55).contains(&(y1 - y0)), "{:?}", people[0]);
        let mut pic = vec![0; s.frame_len()];
        s.draw(t, &mut pic);
        let changed: Vec<usize> = (0..320 * 180)
            .filter(|&i| pic[i] != s.background[i])
            .collect();
        assert!(!changed.is_empty());
        for i in changed {
            let (x, y) = ((i % 320) as f64 / 320.0, (i / 320) as f64 / 180.0);
            assert!(
                x >= x0 - 0.02 && x <= x1 + 0.02 && y >= y0 - 0.01 && y <= y1 + 0.01,
                "({x}, {y})"
            );
        }
        let quiet = w.start_s + w.duration_s + 1.0;
        assert!(s.people_at(quiet).is_empty());
        s.draw(quiet, &mut pic);
        assert_eq!(pic, s.background);
    }
}
