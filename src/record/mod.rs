//! Recording: segment files (fragmented MP4), the per-camera writer threads, the committer
//! that indexes their progress and applies retention, and crash recovery.

pub mod committer;
pub mod fmp4;
pub mod recovery;
pub mod writer;
