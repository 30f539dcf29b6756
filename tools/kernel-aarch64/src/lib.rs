//! `vigil::motion::kernel` on its own (see Cargo.toml): the same source file as the main
//! crate's, so the NEON path can be built and tested without GStreamer for aarch64.

#[path = "../../../src/motion/kernel.rs"]
pub mod kernel;

pub mod motion {
    pub use super::kernel;
}
