//! Motion analytics: the pure core (kernel, zones, blobs, detector), the `vigil-motion`
//! crate (`crates/motion`), re-exported here. Running it on a camera's live frames is
//! [`crate::pipeline`]'s job.

pub use vigil_motion::{DetectorConfig, Polygon, Zone, blobs, detector, kernel, zones};
