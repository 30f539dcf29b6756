//! The clock seam: wall-clock (realtime) and monotonic time behind one trait, so that the
//! timing of rotation, commits, retention and clock-step detection is unit-tested with a
//! simulated clock instead of sleeping. The daemon uses [`real`]; tests use
//! [`SimulatedClocks`] and move it by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where time comes from.
pub trait Clocks: Send + Sync + std::fmt::Debug {
    /// Wall-clock time, µs since the Unix epoch (may step: NTP, `date -s`, a VM restore).
    fn realtime_us(&self) -> i64;
    /// Monotonic time since a fixed origin of this clock (never steps).
    fn monotonic(&self) -> Duration;
}

/// A shared clock.
pub type Clock = Arc<dyn Clocks>;

/// The system's clocks.
#[derive(Debug)]
pub struct RealClocks {
    origin: Instant,
}

impl Clocks for RealClocks {
    fn realtime_us(&self) -> i64 {
        super::time::now_us()
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// The system's clocks, shared.
pub fn real() -> Clock {
    Arc::new(RealClocks {
        origin: Instant::now(),
    })
}

/// Clocks that move only when told: [`SimulatedClocks::advance`] moves both, as time
/// passing does; [`SimulatedClocks::step_realtime`] moves the wall clock alone, as a clock
/// step does.
#[derive(Debug, Default)]
pub struct SimulatedClocks {
    realtime_us: AtomicI64,
    monotonic_ns: AtomicU64,
}

impl SimulatedClocks {
    /// Starts at wall-clock time `realtime_us` (monotonic 0).
    pub fn new(realtime_us: i64) -> Arc<SimulatedClocks> {
        Arc::new(SimulatedClocks {
            realtime_us: AtomicI64::new(realtime_us),
            monotonic_ns: AtomicU64::new(0),
        })
    }

    /// Time passes: both clocks move by `d`.
    pub fn advance(&self, d: Duration) {
        self.monotonic_ns
            .fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        self.realtime_us
            .fetch_add(d.as_micros() as i64, Ordering::SeqCst);
    }

    /// The wall clock steps by `delta_us` (negative: back); monotonic time does not move.
    pub fn step_realtime(&self, delta_us: i64) {
        self.realtime_us.fetch_add(delta_us, Ordering::SeqCst);
    }
}

impl Clocks for SimulatedClocks {
    fn realtime_us(&self) -> i64 {
        self.realtime_us.load(Ordering::SeqCst)
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.monotonic_ns.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clocks_move_only_when_told() {
        let c = SimulatedClocks::new(1_000_000);
        assert_eq!(
            (c.realtime_us(), c.monotonic()),
            (1_000_000, Duration::ZERO)
        );
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.realtime_us(), 2_500_000);
        assert_eq!(c.monotonic(), Duration::from_millis(1500));
        c.step_realtime(-3_000_000);
        assert_eq!(c.realtime_us(), -500_000);
        assert_eq!(c.monotonic(), Duration::from_millis(1500));
        let r = real();
        let (a, b) = (r.monotonic(), r.monotonic());
        assert!(b >= a);
    }
}
