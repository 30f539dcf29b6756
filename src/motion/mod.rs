//! Motion analytics. The pure core (kernel, zones, blobs, detector) is the `vigil-motion`
//! crate (`crates/motion`), re-exported here; [`live`] runs it on a camera's decoded frames.

pub use vigil_motion::{Polygon, Zone, blobs, detector, kernel, zones};

pub mod live;
