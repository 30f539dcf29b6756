//! Vigil: a video-surveillance recorder and motion-analytics engine.
//!
//! The modules follow the path a frame takes: [`ingest`] (RTSP sessions) publishes
//! [`media`] frames to sinks: [`record`] (segment files, commit, retention, recovery) ->
//! [`index`] (sled), and [`pipeline`] (decoding, the [`motion`] detector, alerts, the
//! [`events`] timeline); [`api`] (HTTP) and [`cli`] read what they leave. [`base`] and
//! [`storage`] are the foundation (time, cancellation, the clock seam; the storage
//! directory's layout); [`daemon`] wires everything together; [`fake_camera`] is the
//! RTSP test source used by the demo and the tests. See ARCHITECTURE.md, "Layering".

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
pub mod evidence;
pub mod export;
pub mod fake_camera;
pub mod index;
pub mod ingest;
pub mod live;
pub mod media;
pub mod motion;
pub mod pipeline;
pub mod record;
pub mod schedule;
pub mod status;
pub mod storage;
pub mod tls;
