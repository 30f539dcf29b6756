//! The daemon: a short ordered list of starters (the index; recording: start-up recovery
//! and the committer; the audit log; the alert channels; per camera its writer, analysis
//! pipeline and ingest sessions; the API), each returning a handle, and the stops: ingest
//! first, then analysis (its last events' end alerts), the alert channels, recording
//! (every open segment finished and indexed), and the API last (it answers until the end).

use std::sync::Arc;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::ingest::{IngestTask, Role};
use crate::media::{Sink, SinkKind, StreamMsg};
use crate::record;
use crate::status::{CameraState, SharedStatus, Status};

/// Runs the daemon until `shutdown` resolves. Binds the HTTP (and metrics) listeners
/// first, so that an address in use stops it before anything starts; reports the API's
/// address through `on_listen` when it starts serving (the demo prints it; tests read it).
///
/// Starts, in order: the index, recording (start-up recovery, committer), the audit log's
/// start record, the alert channels, per camera its writer, analysis and ingest sessions,
/// then the API. Stops ingest, analysis, the alert channels and recording in that order, so
/// that every open segment is finished and indexed and the end alerts of events closed at
/// shutdown go out; the API (and metrics) answer until the end.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    on_listen: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let listeners = api::bind(&config.server).await?;
    let dir = &config.storage.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create storage dir {}", dir.display()))?;
    // One layout of the storage directory for everything started here.
    let layout = config.storage.layout();
    let index = record::open_index(&layout)?;
    let status: SharedStatus = Arc::new(Status::default());
    let mut recording = record::start(&config.storage, &layout, &index, &status)?;

    let audit = crate::audit::AuditLog::new(&layout);
    audit
        .append(
            "daemon",
            "local",
            "daemon.start",
            serde_json::json!({
                "config": config.file.display().to_string(),
                "config_sha256": config.sha256,
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )
        .context("cannot write the audit log")?;
    let gate = Arc::new(api::auth::Gate::new(
        &layout,
        &config.server,
        config.server.tls.is_some(),
    ));
    match gate.store.data() {
        Ok(d) if d.users.is_empty() => tracing::warn!(
            "no users yet: nobody can use the API or the web page; add an admin with \
             `vigil user add --config <file> <name> --role admin`"
        ),
        Ok(_) => {}
        Err(e) => anyhow::bail!("{e}"),
    }

    let (cancel_src, cancel) = crate::base::cancel::new();
    let alert_hub = crate::alerts::hub();
    let channels = crate::alerts::start(config.mqtt.as_ref(), &config.webhooks, &alert_hub)?;
    let mut cameras = Vec::new();
    let mut analyses = Vec::new();
    let mut tasks = Vec::new();
    let mut live = std::collections::HashMap::new();
    let mut zone_controls = std::collections::HashMap::new();
    let mut overlays = std::collections::HashMap::new();
    for cam in &config.cameras {
        cameras.push((cam.name.clone(), index.camera_id(&cam.name)?));
        // Every configured camera is in the status before the HTTP listener opens, so
        // `/api/cameras` never shows fewer cameras than configured (tasks fill in the rest).
        status.analysis(&cam.name, |s| {
            s.motion_enabled = cam.enabled && cam.motion.enabled
        });
        status.ingest(&cam.name, |s| {
            if !cam.enabled {
                s.set_state(CameraState::Disabled)
            }
        });
        if !cam.enabled {
            continue;
        }
        let recorded = recording.start_writer(&cam.name)?;
        let analysis = if cam.motion.enabled {
            let a = crate::pipeline::start(cam, &index, status.clone(), alert_hub.clone())?;
            let tx = a.sender();
            zone_controls.insert(cam.name.clone(), a.zone_control());
            overlays.insert(cam.name.clone(), a.overlay());
            analyses.push(a);
            Some(tx)
        } else {
            None
        };
        let hub = crate::live::Hub::default();
        // Fed only while someone watches.
        let live_tx = Sink::new(SinkKind::Live, hub.start(&cam.name)?).gated(hub.watching());
        live.insert(cam.name.clone(), hub);
        let sinks = Sinks {
            recorded,
            analysis,
            live: live_tx,
        };
        tasks.extend(start_ingest(cam, sinks, &status, &cancel));
    }

    let state = AppState {
        index: index.clone(),
        status: status.clone(),
        cameras: Arc::new(cameras),
        storage: layout.clone(),
        alerts: alert_hub.clone(),
        live: Arc::new(live),
        shutdown: cancel.clone(),
        audit,
        gate,
        setup: Arc::new(crate::api::setup::Setup {
            file: config.file.clone(),
            lock: tokio::sync::Mutex::new(()),
            controls: zone_controls,
            overlays,
        }),
    };
    let server = listeners.serve(state, on_listen)?;

    shutdown.await;
    tracing::info!("shutting down: finishing open segments");
    cancel_src.cancel();
    for t in tasks {
        let _ = t.await;
    }
    for a in analyses {
        let _ = tokio::task::spawn_blocking(move || a.stop()).await;
    }
    channels.stop().await;
    let _ = tokio::task::spawn_blocking(move || recording.stop()).await;
    server.stop().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Starts a camera's ingest sessions: the recorded stream feeds its writer and (without a
/// `detect_url`) its analysis; with a `detect_url` and analysis, a second session feeds
/// the analysis and the recorded one is only recorded.
/// A camera's consumers: its writer's queue, its analyser's (if motion analysis runs) and
/// its live hub's.
struct Sinks {
    recorded: std::sync::mpsc::SyncSender<StreamMsg>,
    analysis: Option<std::sync::mpsc::SyncSender<StreamMsg>>,
    live: Sink,
}

fn start_ingest(
    cam: &crate::config::CameraConfig,
    Sinks {
        recorded,
        analysis,
        live,
    }: Sinks,
    status: &SharedStatus,
    cancel: &crate::base::cancel::CancelToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let task = |role, sinks| {
        tokio::spawn(
            IngestTask {
                camera: cam.clone(),
                role,
                sinks,
                status: status.clone(),
                cancel: cancel.clone(),
                sessions: Arc::new(crate::ingest::Rtsp),
            }
            .run(),
        )
    };
    let mut tasks = Vec::new();
    let detect_session = analysis.is_some() && cam.detect_url.is_some();
    if detect_session {
        let sinks = analysis
            .iter()
            .map(|a| Sink::new(SinkKind::Analysis, a.clone()));
        tasks.push(task(Role::Detect, sinks.collect()));
    }
    let sinks = [Sink::new(SinkKind::Recording, recorded), live]
        .into_iter()
        .chain((analysis.filter(|_| !detect_session)).map(|a| Sink::new(SinkKind::Analysis, a)));
    tasks.push(task(Role::Record, sinks.collect()));
    tasks
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (call
/// it inside the runtime, before start-up), so a signal during start-up (recovery, an
/// init system stopping the service at once) stops the daemon cleanly rather than
/// killing it. Errors: the handlers cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
