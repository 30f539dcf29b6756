//! Vigil's motion core: the fused frame-difference kernel ([`kernel`]), zones and masks
//! rasterised to label maps ([`zones`]), connected blobs ([`blobs`]) and the per-camera
//! event detector ([`detector`]), configured by [`config`].
//!
//! Everything here is pure computation on luma frames with timestamps: no I/O, async,
//! GStreamer or status. Callers (Vigil's analysis pipeline, `vigil analyze`) decode and run
//! it on their own threads, never on an async executor. It is its own crate so that it is
//! built and tested without GStreamer, natively and for aarch64 (NEON) under qemu-user.

pub mod blobs;
pub mod config;
pub mod detector;
pub mod kernel;
pub mod zones;

pub use config::{DetectorConfig, Polygon, Zone};
