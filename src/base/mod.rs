//! Foundation helpers that every layer may use: cancellation ([`cancel`]) and time
//! ([`time`]: the wall clock in µs and RFC 3339 at the edges). Nothing here imports
//! another Vigil module.

pub mod cancel;
pub mod time;
