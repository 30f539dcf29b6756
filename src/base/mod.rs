//! Foundation helpers that every layer may use: cancellation ([`cancel`]), time
//! ([`time`]: the wall clock in µs and RFC 3339 at the edges) and the clock seam
//! ([`clock`]: realtime and monotonic time, real or simulated) and the geometry of drawn
//! polygons ([`polygon`]). Nothing here imports
//! another Vigil module.

pub mod cancel;
pub mod clock;
pub mod polygon;
pub mod time;
