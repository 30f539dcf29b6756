//! Vigil: a video-surveillance recorder and motion-analytics engine.
//!
//! The modules follow the path a frame takes: [`ingest`] (RTSP sessions) -> [`record`]
//! (segment files, commit, retention, recovery) -> [`index`] (sled) -> [`api`] (HTTP).
//! [`daemon`] wires them together; [`cli`] is the command line; [`fake_camera`] is the
//! RTSP test source used by the demo and the tests. See ARCHITECTURE.md.

pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod base;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod events;
pub mod export;
pub mod fake_camera;
pub mod index;
pub mod ingest;
pub mod media;
pub mod motion;
pub mod pipeline;
pub mod record;
pub mod status;
pub mod storage;
pub mod tls;
