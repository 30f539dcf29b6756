//! The timing model: from a camera's RTP presentation times to the recorder's decode
//! timeline, composition offsets and UTC. Pure computation (no I/O, no clock reads: the
//! caller passes each picture's arrival time), so every rule here is unit-tested.
//!
//! What a camera gives: per picture, an RTP timestamp (90 kHz, RFC 6184 §5.1 / RFC 7798
//! §4.1: the *presentation* time), pictures sent in *decode* order (so B-frames make
//! the timestamps go back and forth), on the camera's own clock, which may run fast or
//! slow, step, or jump. What a recorder needs: a strictly increasing decode time (DTS)
//! per sample, a composition offset (PTS − DTS, signed: ISO/IEC 14496-12 `trun` version
//! 1 and `ctts` version 1), and the UTC of every picture, true to the recorder's clock.
//!
//! 1. **Discontinuities.** A picture whose presentation time is more than
//!    [`REORDER_LIMIT_90K`] (1 s) behind the newest one seen, or that jumps forward more
//!    than [`MAX_FORWARD_JUMP_US`] (3 s) beyond the wall-clock time that passed, breaks the
//!    timeline at the next keyframe: until then the pictures follow on from the last
//!    one (they depend on those before the step), then everything pending is released,
//!    [`Output::Discontinuity`] is returned, and a new timeline starts at the keyframe,
//!    anchored to the arrival times. The recorder closes the segment there (end reason
//!    `timestamp-jump`) and starts the next one at that keyframe. Nothing is lost and
//!    nothing is fatal.
//! 2. **Decode times.** With a reorder depth `D` (pictures that may be displayed before
//!    one already received: the SPS's `max_num_reorder_frames`, or learnt from the
//!    stream), each picture waits until `D` later pictures have arrived; its DTS is then
//!    the smallest presentation time not yet used (the i-th picture in decode order gets
//!    the i-th smallest PTS), as FFmpeg's `pts_buffer` does for streams without DTS. So
//!    DTS is strictly increasing, equals PTS for streams without B-frames (`D = 0`, no
//!    delay), and sample durations are the display intervals. A picture displayed
//!    earlier than one already given a DTS shows that `D` was too small: `D` grows (up
//!    to 16) and the picture gets the next tick.
//! 3. **Camera clock to recorder clock.** The recorder timeline advances by the camera's
//!    RTP time times a rate `k`: exactly 1 while the camera's clock is within
//!    [`RATE_TOLERANCE`] (500 ppm) of the recorder's, otherwise the measured rate, plus a
//!    slew of at most [`MAX_SLEW`] (1%) that pulls the stamps back towards the arrival
//!    times when they differ by more than [`PHASE_DEADBAND_US`] (100 ms). The rate is
//!    measured once a second from the earliest-arriving picture of each second (the one
//!    least delayed by the network) against the first such picture of the timeline.
//! 4. **The bound.** A picture's UTC is never more than 1 s ahead of the recorder's clock
//!    at its arrival ([`MAX_AHEAD_US`]; pictures cannot arrive before they are taken),
//!    and never more than 2 s behind it for 3 s in a row ([`MAX_BEHIND_US`]); either
//!    breaks the timeline as in 1 (`Clock` kind), which re-anchors it (plus, until the
//!    next keyframe, the drift of a GOP). A new timeline
//!    never starts before the end of the previous one (`floor_us`), so a camera's
//!    recordings never overlap and a reconnect always leaves a gap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A backward step in presentation time larger than this is a clock step, not B-frame
/// reordering (90 kHz: 1 s; GOP reordering spans a few frames).
pub const REORDER_LIMIT_90K: i64 = 90_000;
/// A forward jump of presentation time this much beyond the wall-clock time that passed
/// is a clock jump (µs).
pub const MAX_FORWARD_JUMP_US: i64 = 3_000_000;
/// A change of the least lag between two one-second blocks larger than this is a clock
/// step, not a rate (µs). A camera clock off by 2x changes it by 1 s per block.
pub const STEP_LAG_US: i64 = 1_500_000;
/// Camera clocks within this of the recorder's are taken as exact (rate 1).
pub const RATE_TOLERANCE: f64 = 500e-6;
/// Largest extra rate applied to pull the stamps back to the arrival times.
pub const MAX_SLEW: f64 = 0.01;
/// Phase errors below this are left alone (µs).
pub const PHASE_DEADBAND_US: i64 = 100_000;
/// Stamps this far ahead of the arrival time break the timeline (µs).
pub const MAX_AHEAD_US: i64 = 1_000_000;
/// Stamps this far behind the arrival time for [`BEHIND_BLOCKS`] seconds in a row break
/// the timeline (µs).
pub const MAX_BEHIND_US: i64 = 2_000_000;
const BEHIND_BLOCKS: u32 = 3;
/// Deepest reordering accepted (H.264's DPB holds at most 16 frames).
pub const MAX_REORDER: usize = 16;
/// Furthest back (frame intervals) a picture may be displayed, before one that already
/// has its decode time, to count as reordering in a stream that did not declare it.
const LEARN_FRAMES: i64 = 4;
const BLOCK_US: i64 = 1_000_000;

/// Why a timeline broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jump {
    /// Presentation time went back more than [`REORDER_LIMIT_90K`].
    Backward,
    /// Presentation time leapt ahead of the wall clock by more than
    /// [`MAX_FORWARD_JUMP_US`].
    Forward,
    /// The camera's clock left the bound of the recorder's (see the module docs, 4).
    Clock,
}

/// A picture on the recorder's timeline.
#[derive(Debug)]
pub struct Timed<T> {
    /// Decode time, 90 kHz, on the recorder's clock, from the start of the timeline;
    /// strictly increasing within one.
    pub dts_90k: i64,
    /// Presentation minus decode time, 90 kHz (negative for pictures displayed before
    /// their decode time on this timeline, as with B-frames).
    pub cts_90k: i32,
    /// UTC of the picture's presentation, µs since the epoch.
    pub utc_us: i64,
    /// Timeline counter (see [`CameraClock::timeline`]).
    pub timeline: u64,
    pub payload: T,
}

/// What [`Timing::push`] and [`Timing::flush`] give back, in order.
#[derive(Debug)]
pub enum Output<T> {
    Picture(Timed<T>),
    /// The timeline broke before the next picture: `delta_us` is the size of the step
    /// that broke it (camera time minus recorder time, µs; negative = backward).
    Discontinuity {
        kind: Jump,
        delta_us: i64,
    },
}

/// What outlives one RTSP session: the camera's clock rate, its reorder depth, the end of
/// its last timeline and the timeline counter.
#[derive(Clone, Debug)]
pub struct CameraClock {
    /// Recorder µs per camera µs (1.0 unless the camera's clock is off by more than
    /// [`RATE_TOLERANCE`]).
    pub rate: f64,
    /// Reorder depth `D`.
    pub reorder: usize,
    /// Whether the stream's SPS declared `D` (then a picture out of its order is a clock
    /// step, not reordering to learn).
    pub declared: bool,
    /// UTC (µs) just past the last picture of the previous timeline: a new one starts no
    /// earlier.
    pub floor_us: i64,
    /// Incremented for each new timeline (each session and each discontinuity).
    pub timeline: u64,
}

impl Default for CameraClock {
    fn default() -> Self {
        CameraClock {
            rate: 1.0,
            reorder: 0,
            declared: false,
            floor_us: i64::MIN,
            timeline: 0,
        }
    }
}

struct Pending<T> {
    pts: i64,
    arrival_us: i64,
    payload: T,
}

/// The linear map from camera time (RTP ticks) to recorder time (90 kHz ticks) in use.
#[derive(Clone, Copy, Debug)]
struct Map {
    /// Camera ticks at the anchor.
    raw: i64,
    /// Recorder ticks (fractional) at the anchor.
    out: f64,
    k: f64,
}

impl Map {
    fn at(&self, raw: i64) -> f64 {
        self.out + (raw - self.raw) as f64 * self.k
    }
}

/// One second's earliest arrival relative to its stamp.
struct Block {
    start_us: i64,
    /// Smallest (arrival − stamp) of the block, µs, with that picture's (camera decode
    /// time, arrival).
    min_lag: i64,
    at: (i64, i64),
}

/// One timeline in progress.
struct Line {
    /// UTC at recorder tick 0 (known once anchored).
    utc0: i64,
    /// While anchoring: the first picture's arrival.
    anchoring: Option<i64>,
    /// How far ahead of the arrivals the floor forced the anchor (µs): tolerated on top
    /// of [`MAX_AHEAD_US`] while the slew pulls it back.
    allowance_us: i64,
    map: Map,
    max_pts: i64,
    max_pts_arrival: i64,
    last_dts: Option<i64>,
    /// The last emitted picture's recorder decode tick, to keep ticks strictly increasing.
    last_out: Option<i64>,
    /// The interval before it (recorder ticks).
    last_interval: Option<i64>,
    /// ... and in camera ticks.
    last_raw_interval: Option<i64>,
    /// Rate reference: the first block's earliest picture (camera decode time, arrival).
    first: Option<(i64, i64)>,
    block: Option<Block>,
    /// The previous block's least lag, to tell a step from a rate.
    prev_lag: Option<i64>,
    behind_blocks: u32,
    /// The timeline must break at the next keyframe (why, and by how much, µs).
    broken: Option<(Jump, i64)>,
}

/// The timing state of one session. See the module docs.
pub struct Timing<T> {
    pub clock: CameraClock,
    line: Option<Line>,
    queue: VecDeque<Pending<T>>,
    heap: BinaryHeap<Reverse<i64>>,
    /// Pictures given a DTS later than their order allowed (the reorder depth grew).
    pub reorder_violations: u64,
    /// Pictures in a row displayed before one that already had its decode time.
    violations: u32,
    /// The stream's nominal frame duration (90 kHz), for the last picture of a timeline.
    nominal_90k: Option<i64>,
}

fn ticks_to_us(t: f64) -> f64 {
    t * 100.0 / 9.0
}

/// How long a new timeline collects pictures before it is anchored (µs): long enough to
/// see past a burst of buffered pictures that some servers send right after PLAY.
const ANCHOR_US: i64 = 1_000_000;

impl<T> Timing<T> {
    /// Starts a session's timing with what the camera's earlier sessions learnt.
    pub fn new(clock: CameraClock) -> Self {
        Timing {
            clock,
            line: None,
            queue: VecDeque::new(),
            heap: BinaryHeap::new(),
            reorder_violations: 0,
            violations: 0,
            nominal_90k: None,
        }
    }

    /// Sets the reorder depth the stream declares (never lowers a learnt one).
    pub fn declare_reorder(&mut self, d: usize) {
        self.clock.reorder = self.clock.reorder.max(d.min(MAX_REORDER));
        self.clock.declared = true;
    }

    /// The stream's nominal frame duration (90 kHz), from its parameters: what the writer
    /// gives the last picture of a run, so where the next timeline may start.
    pub fn set_nominal(&mut self, ticks: Option<u32>) {
        self.nominal_90k = ticks.map(i64::from);
    }

    /// Current rate (recorder µs per camera µs), including the phase slew.
    pub fn rate(&self) -> f64 {
        self.line
            .as_ref()
            .map(|l| l.map.k)
            .unwrap_or(self.clock.rate)
    }

    /// Last measured (arrival − stamp) of the earliest picture of a second, µs: how far
    /// behind the recorder's clock the stamps run (negative: ahead).
    pub fn lag_us(&self) -> Option<i64> {
        self.line.as_ref()?.block.as_ref().map(|b| b.min_lag)
    }

    /// Feeds one picture: `pts` is its RTP presentation time (90 kHz, unwrapped; as
    /// retina's `Timestamp::elapsed`), `arrival_us` the recorder's UTC when it arrived.
    /// Returns the pictures whose decode times are now known, and any discontinuity, in
    /// order. A new timeline holds its first second of pictures to anchor it.
    pub fn push(&mut self, pts: i64, arrival_us: i64, is_key: bool, payload: T) -> Vec<Output<T>> {
        let mut out = Vec::new();
        if let Some((kind, delta_us)) = self.check_jump(pts, arrival_us) {
            self.drain(&mut out);
            if self.clock.reorder > 0 {
                // With reordering, pictures after the step cannot be placed among those
                // before it in presentation order: break now; the recording resumes at
                // the next keyframe.
                self.end_line();
                out.push(Output::Discontinuity { kind, delta_us });
            } else {
                // Pictures up to the next keyframe depend on those before the step: they
                // follow on (bridged), and the timeline breaks at that keyframe.
                self.heap.clear();
                let l = self.line.as_mut().unwrap();
                let next = l
                    .last_out
                    .map_or(0.0, |o| (o + l.last_interval.unwrap_or(0)) as f64);
                l.map = Map {
                    raw: pts,
                    out: next,
                    k: l.map.k,
                };
                l.max_pts = pts;
                l.max_pts_arrival = arrival_us;
                l.last_dts = None;
                l.first = None;
                l.block = None;
                l.broken.get_or_insert((kind, delta_us));
            }
        }
        if is_key && let Some((kind, delta_us)) = self.line.as_mut().and_then(|l| l.broken.take()) {
            self.drain(&mut out);
            self.end_line();
            out.push(Output::Discontinuity { kind, delta_us });
        }
        if self.line.is_none() {
            self.start_line(pts, arrival_us);
        }
        let l = self.line.as_mut().unwrap();
        if pts > l.max_pts {
            l.max_pts = pts;
            l.max_pts_arrival = arrival_us;
        }
        match l.last_dts {
            Some(d) if pts <= d => {
                // Displayed before a picture that already has its decode time: deeper
                // reordering than assumed (check_jump told it from a clock step).
                self.violations += 1;
                self.clock.reorder = (self.clock.reorder + 1).min(MAX_REORDER);
            }
            _ => self.violations = 0,
        }
        if let Some(a0) = l.anchoring {
            let done = arrival_us - a0 >= ANCHOR_US;
            self.queue.push_back(Pending {
                pts,
                arrival_us,
                payload,
            });
            self.heap.push(Reverse(pts));
            if !done {
                return out;
            }
            self.anchor();
        } else {
            self.queue.push_back(Pending {
                pts,
                arrival_us,
                payload,
            });
            self.heap.push(Reverse(pts));
        }
        while self.queue.len() > self.clock.reorder {
            self.emit_one(&mut out);
        }
        out
    }

    /// Releases every pending picture (end of session or of a timeline).
    pub fn flush(&mut self) -> Vec<Output<T>> {
        let mut out = Vec::new();
        self.drain(&mut out);
        if let Some((kind, delta_us)) = self.line.as_mut().and_then(|l| l.broken.take()) {
            out.push(Output::Discontinuity { kind, delta_us });
        }
        self.end_line();
        out
    }

    fn drain(&mut self, out: &mut Vec<Output<T>>) {
        if self.line.as_ref().is_some_and(|l| l.anchoring.is_some()) {
            self.anchor();
        }
        while !self.queue.is_empty() {
            self.emit_one(out);
        }
    }

    fn end_line(&mut self) {
        self.line = None;
        self.heap.clear();
    }

    fn start_line(&mut self, pts: i64, arrival_us: i64) {
        self.clock.timeline += 1;
        self.line = Some(Line {
            utc0: arrival_us,
            anchoring: Some(arrival_us),
            allowance_us: 0,
            map: Map {
                raw: pts,
                out: 0.0,
                k: self.clock.rate,
            },
            max_pts: pts,
            max_pts_arrival: arrival_us,
            last_dts: None,
            last_out: None,
            last_interval: None,
            last_raw_interval: None,
            first: None,
            prev_lag: None,
            block: None,
            behind_blocks: 0,
            broken: None,
        });
    }

    /// Fixes the timeline's UTC: the latest at which no picture collected so far is
    /// stamped after its arrival, and never before the end of the previous timeline.
    fn anchor(&mut self) {
        let l = self.line.as_mut().unwrap();
        if l.anchoring.take().is_none() {
            return;
        }
        // Judge each picture by the decode time it will get (the i-th in decode order
        // gets the i-th smallest presentation time): B-frames arrive after pictures
        // displayed later, so their presentation times would bias the anchor.
        let mut sorted: Vec<i64> = self.queue.iter().map(|p| p.pts).collect();
        sorted.sort_unstable();
        let latest = self
            .queue
            .iter()
            .zip(&sorted)
            .map(|(p, &dts)| p.arrival_us - ticks_to_us(l.map.at(dts)) as i64)
            .min()
            .unwrap_or(l.utc0);
        // The first decode time may precede the first presentation time (an open GOP's
        // leading pictures): it is the one that must not precede the floor.
        let first_out = sorted.first().map_or(0.0, |&d| l.map.at(d)).min(0.0);
        let floor = self
            .clock
            .floor_us
            .saturating_sub(ticks_to_us(first_out) as i64);
        l.utc0 = latest.max(floor);
        l.allowance_us = l.utc0 - latest;
    }

    fn check_jump(&self, pts: i64, arrival_us: i64) -> Option<(Jump, i64)> {
        let l = self.line.as_ref()?;
        let wall_ticks = (arrival_us - l.max_pts_arrival).max(0) as f64 * 0.09 / self.clock.rate;
        let delta_us = ticks_to_us((pts - l.max_pts) as f64 - wall_ticks) as i64;
        if pts < l.max_pts - REORDER_LIMIT_90K {
            return Some((Jump::Backward, delta_us));
        }
        if delta_us > MAX_FORWARD_JUMP_US {
            return Some((Jump::Forward, delta_us));
        }
        // A picture displayed before one that already has its decode time is reordering
        // only while that stays plausible: never in a stream that declared its depth, at
        // most LEARN_FRAMES frame intervals and 0.3 s back, and not picture after picture
        // (a small step shifts every later picture back; reordering interleaves).
        if let Some(d) = l.last_dts
            && pts <= d
        {
            let interval = l.last_raw_interval.unwrap_or(3000).max(1);
            let back = d - pts;
            let learnable = !self.clock.declared
                && back <= LEARN_FRAMES * interval
                && back <= 27_000
                && self.violations < 2 * (self.clock.reorder as u32 + 1)
                && self.clock.reorder < MAX_REORDER;
            if !learnable {
                return Some((Jump::Backward, -ticks_to_us(back as f64) as i64));
            }
        }
        None
    }

    fn emit_one(&mut self, out: &mut Vec<Output<T>>) {
        let p = self.queue.pop_front().unwrap();
        let l = self.line.as_mut().unwrap();
        let mut dts = self.heap.pop().map(|Reverse(v)| v).unwrap_or(p.pts);
        if let Some(last) = l.last_dts
            && dts <= last
        {
            dts = last + 1;
            self.reorder_violations += 1;
        }
        if let Some(last) = l.last_dts {
            l.last_raw_interval = Some(dts - last);
        }
        l.last_dts = Some(dts);
        let mut dts_out = l.map.at(dts).round() as i64;
        if let Some(last) = l.last_out {
            if dts_out <= last {
                dts_out = last + 1;
            }
            l.last_interval = Some(dts_out - last);
        }
        l.last_out = Some(dts_out);
        let pts_out = l.map.at(p.pts).round() as i64;
        let cts = (pts_out - dts_out).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        let dts_utc = l.utc0 + ticks_to_us(dts_out as f64).round() as i64;
        let utc_us = l.utc0 + ticks_to_us((dts_out + cts as i64) as f64).round() as i64;
        // The recording of this picture ends one frame interval later (the writer gives
        // the last picture of a run the previous one's duration).
        let interval = l.last_interval.or(self.nominal_90k).unwrap_or(3000);
        self.clock.floor_us = self
            .clock
            .floor_us
            .max(dts_utc + ticks_to_us(interval as f64).ceil() as i64 + 1)
            .max(utc_us + 1);
        self.observe(dts, dts_utc, p.arrival_us);
        out.push(Output::Picture(Timed {
            dts_90k: dts_out,
            cts_90k: cts,
            utc_us,
            timeline: self.clock.timeline,
            payload: p.payload,
        }));
    }

    /// Clock control, per picture in decode order (its decode time `dts` in camera ticks,
    /// stamped `stamp_us`, arrived at `arrival_us`): once a second, adjusts the rate and
    /// judges the bound; a break takes effect before the next picture.
    fn observe(&mut self, dts: i64, stamp_us: i64, arrival_us: i64) {
        let l = self.line.as_mut().unwrap();
        let lag = arrival_us - stamp_us;
        let block = l.block.get_or_insert(Block {
            start_us: arrival_us,
            min_lag: lag,
            at: (dts, arrival_us),
        });
        // A block ends after a second, or at once if the recorder's clock stepped back
        // (arrivals before the block's start).
        if (0..BLOCK_US).contains(&(arrival_us - block.start_us)) {
            if lag < block.min_lag {
                block.min_lag = lag;
                block.at = (dts, arrival_us);
            }
            return;
        }
        // A second has passed: judge it, then start the next block with this picture.
        let (min_lag, at) = (block.min_lag, block.at);
        l.block = Some(Block {
            start_us: arrival_us,
            min_lag: lag,
            at: (dts, arrival_us),
        });
        // A sudden change of lag between two blocks is a step of a clock (the recorder's
        // or the camera's), not a rate: the rate is left as it was and measured afresh
        // from here; the bound below re-anchors the timeline if the step is out of it.
        let stepped = l
            .prev_lag
            .is_some_and(|p| (min_lag - p).abs() > STEP_LAG_US);
        l.prev_lag = Some(min_lag);
        if stepped {
            l.first = Some(at);
        }
        let first = *l.first.get_or_insert(at);
        let cam_us = ticks_to_us((at.0 - first.0) as f64);
        let wall_us = (at.1 - first.1) as f64;
        if !stepped && wall_us >= 2e6 && cam_us > 0.0 {
            let r = (wall_us / cam_us).clamp(0.25, 4.0);
            // Gross errors are acted on at once; fine ones once the span makes them
            // measurable above the network's jitter.
            if (r - 1.0).abs() > 0.02 || wall_us >= 10e6 {
                self.clock.rate = if (r - 1.0).abs() <= RATE_TOLERANCE {
                    1.0
                } else {
                    r
                };
            }
        }
        let slew = if min_lag.abs() > PHASE_DEADBAND_US {
            1.0 + (min_lag as f64 / 20e6).clamp(-MAX_SLEW, MAX_SLEW)
        } else {
            1.0
        };
        let k = self.clock.rate * slew;
        if k != l.map.k {
            // Re-base at this decode time so the timeline stays continuous.
            l.map = Map {
                raw: dts,
                out: l.map.at(dts),
                k,
            };
        }
        l.allowance_us = l.allowance_us.min((-min_lag).max(0));
        l.behind_blocks = if min_lag > MAX_BEHIND_US {
            l.behind_blocks + 1
        } else {
            0
        };
        if min_lag < -(MAX_AHEAD_US + l.allowance_us) || l.behind_blocks >= BEHIND_BLOCKS {
            l.broken.get_or_insert((Jump::Clock, -min_lag));
        }
    }
}

/// Audio frames on the recorder's clock: the audio stream's own RTP timeline (its clock
/// is the sample rate), advanced at the camera clock's measured rate (the video's,
/// [`CameraClock::rate`]: one crystal drives both), anchored like the video (the first
/// second held, then the latest UTC at which none of it is stamped after its arrival),
/// and re-anchored at an arrival when the stamps stray more than 1 s from the arrivals.
pub struct AudioClock<T> {
    rate_hz: i64,
    /// (RTP time, UTC µs, rate) at the last re-basing.
    base: Option<(i64, f64, f64)>,
    last_ts: i64,
    held: Vec<(i64, i64, T)>,
}

impl<T> AudioClock<T> {
    pub fn new(rate_hz: u32) -> Self {
        AudioClock {
            rate_hz: rate_hz.max(1) as i64,
            base: None,
            last_ts: 0,
            held: Vec::new(),
        }
    }

    fn at(&self, ts: i64) -> f64 {
        let (t0, u0, k) = self.base.unwrap();
        u0 + (ts - t0) as f64 * 1e6 * k / self.rate_hz as f64
    }

    /// One frame: its RTP time `ts` (unwrapped), arrival (UTC µs), the camera clock's
    /// rate `k`. Returns the frames whose UTC is now known, in order.
    pub fn push(&mut self, ts: i64, arrival_us: i64, k: f64, payload: T) -> Vec<(i64, T)> {
        let mut out = Vec::new();
        let Some((_, _, k0)) = self.base else {
            self.held.push((ts, arrival_us, payload));
            if arrival_us - self.held[0].1 >= ANCHOR_US {
                let t0 = self.held[0].0;
                let u0 = self
                    .held
                    .iter()
                    .map(|h| h.1 as f64 - (h.0 - t0) as f64 * 1e6 * k / self.rate_hz as f64)
                    .fold(f64::INFINITY, f64::min);
                self.base = Some((t0, u0, k));
                for (t, _, p) in std::mem::take(&mut self.held) {
                    self.last_ts = t;
                    out.push((self.at(t).round() as i64, p));
                }
            }
            return out;
        };
        if k != k0 {
            // Re-base at the last frame so that the stamps stay continuous.
            self.base = Some((self.last_ts, self.at(self.last_ts), k));
        }
        let mut utc = self.at(ts);
        if (utc - arrival_us as f64).abs() > MAX_AHEAD_US as f64 {
            self.base = Some((ts, arrival_us as f64, k));
            utc = arrival_us as f64;
        }
        self.last_ts = ts;
        out.push((utc.round() as i64, payload));
        out
    }

    /// Releases held frames (end of session), stamped at their arrival.
    pub fn flush(&mut self) -> Vec<(i64, T)> {
        std::mem::take(&mut self.held)
            .into_iter()
            .map(|(_, a, p)| (a, p))
            .collect()
    }
}

#[cfg(test)]
mod tests;
