//! Motion analytics: the fused frame-difference kernel ([`kernel`]) and zones rasterised to
//! label maps ([`zones`]). The detector state machine, noise filtering and GStreamer
//! decoding build on these (issue 3, in progress).
//!
//! Everything here is pure computation, free of I/O and async: callers run it on their
//! own threads, never on the tokio executor.

pub mod detector;
pub mod kernel;
pub mod live;
pub mod zones;
