//! The daemon: wires config -> index and recovery -> writer threads and committer ->
//! ingest tasks -> HTTP, and shuts it all down in the reverse order so that every open
//! segment is finished and indexed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::index::Index;
use crate::ingest::{IngestTask, Role};
use crate::media::{SinkKind, StreamMsg};
use crate::record::committer::{Committer, RetentionPolicy};
use crate::record::recovery::{self, Mode};
use crate::record::writer::{CommitMsg, SegmentWriter, WriterConfig};
use crate::status::{CameraState, SharedStatus, Status};

/// Frames a writer may have queued before ingest starts dropping (about 30 s at 15 fps).
const WRITER_QUEUE: usize = 512;

/// Runs the daemon until `shutdown` resolves. Binds the HTTP listener first and reports
/// its address through `on_listen` (the demo prints it; tests read it).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    on_listen: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let dir = &config.storage.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create storage dir {}", dir.display()))?;
    // One layout of the storage directory for everything started here.
    let layout = crate::storage::Layout::new(dir.clone());
    let index_path = layout.index();
    let index = match Index::open(&index_path) {
        // The disk filled while the daemon was down: the reserve is there for this.
        Err(e) if e.is_disk_full() && crate::index::reserve_path(&index_path).exists() => {
            tracing::warn!("disk full at start-up: releasing the index reserve");
            let _ = std::fs::remove_file(crate::index::reserve_path(&index_path));
            Index::open(&index_path)
        }
        r => r,
    }
    .with_context(|| format!("cannot open index in {}", dir.display()))?;
    let status: SharedStatus = Arc::new(Status::default());

    // Free space and the index's reserve (see `index::Index`): sized from the filesystem.
    let fs = crate::record::committer::fs_bytes(dir).unwrap_or(0);
    let min_free = Some(
        config
            .storage
            .min_free
            .unwrap_or_else(|| crate::record::committer::default_min_free(fs)),
    );
    let reserve = crate::record::committer::default_index_reserve(fs);
    if let Err(e) = index.set_reserve(reserve) {
        // A full disk at start-up: retention makes room and the committer retries.
        tracing::warn!("index reserve of {reserve} bytes not allocated yet: {e}");
    }
    // Recovery writes to the index; on a full disk the index releases its reserve and
    // reopens (see `index::Index`), so a second try has room.
    let mut tries = 0;
    let report = loop {
        match recovery::reconcile(&index, dir, Mode::Startup) {
            Ok(r) => break r,
            Err(e) if tries < 5 && is_index_retryable(&e) => {
                tries += 1;
                tracing::warn!("recovery: {e:#}; retrying");
                std::thread::sleep(crate::index::REOPEN_EVERY);
            }
            Err(e) => return Err(e),
        }
    };
    for p in &report.problems {
        tracing::warn!("recovery: {p}");
    }
    status.storage(|s| s.startup_recovery = report.problems.iter().take(100).cloned().collect());
    // In case a crash kept an event's record but not its index entries (best effort: on
    // a full disk this waits for the next start).
    if let Err(e) = index.reindex_newest_events() {
        tracing::warn!("re-adding the newest events' index entries: {e}");
    }

    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<CommitMsg>();
    let mut committer = Committer::new(
        index.clone(),
        status.clone(),
        RetentionPolicy {
            storage: layout.clone(),
            retain_days: config.storage.retain_days,
            max_bytes: config.storage.max_bytes,
            min_free,
        },
        Duration::from_millis(config.storage.commit_interval_ms as u64 / 2),
    )?;
    // Make room before anything else writes (the audit log, the cameras): the disk may
    // have filled while the daemon was down.
    if let Err(e) = committer.retention(crate::base::time::now_us()) {
        tracing::error!("retention at start-up: {e}");
    }
    let committer = std::thread::Builder::new()
        .name("committer".into())
        .spawn(move || committer.run(commit_rx))?;

    let audit = crate::audit::AuditLog::new(dir);
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
        dir,
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

    let mut cameras = Vec::new();
    for c in &config.cameras {
        cameras.push((c.name.clone(), index.camera_id(&c.name)?));
    }

    let (cancel_src, cancel) = crate::base::cancel::new();
    let alert_hub = crate::alerts::hub();
    // The alert sinks (MQTT, webhooks) stop after the analysers, so that the end alerts of
    // events they close at shutdown still go out.
    let (sinks_stop, sinks_stop_token) = crate::base::cancel::new();
    let mqtt = match &config.mqtt {
        Some(m) => Some(tokio::spawn(crate::alerts::mqtt::run(
            m.clone(),
            crate::alerts::mqtt::password(m)?,
            alert_hub.clone(),
            sinks_stop_token,
        ))),
        None => None,
    };
    let mut webhooks = Vec::new();
    for w in &config.webhooks {
        webhooks.push(tokio::spawn(crate::alerts::webhook::run(
            w.clone(),
            crate::alerts::webhook::agent(w)?,
            crate::alerts::webhook::secret(w)?,
            alert_hub.clone(),
            sinks_stop.token(),
        )));
    }
    let mut analyzers = Vec::new();
    let mut writers = Vec::new();
    let mut tasks = Vec::new();
    for (cam, (_, id)) in config.cameras.iter().zip(&cameras) {
        // Every configured camera is in the status before the HTTP listener opens, so
        // `/api/cameras` never shows fewer cameras than configured (tasks fill in the rest).
        status.camera(&cam.name, |s| {
            s.motion_enabled = cam.enabled && cam.motion.enabled
        });
        if !cam.enabled {
            status.camera(&cam.name, |s| s.set_state(CameraState::Disabled));
            continue;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<StreamMsg>(WRITER_QUEUE);
        let w = SegmentWriter::new(
            WriterConfig {
                camera: cam.name.clone(),
                camera_id: *id,
                storage: layout.clone(),
                segment_seconds: config.storage.segment_seconds,
                commit_interval: Duration::from_millis(config.storage.commit_interval_ms as u64),
            },
            commit_tx.clone(),
            status.clone(),
        );
        writers.push((
            tx.clone(),
            std::thread::Builder::new()
                .name(format!("writer-{}", cam.name))
                .spawn(move || w.run(rx))?,
        ));
        let analysis = if cam.motion.enabled {
            let a = crate::pipeline::start(cam, &index, status.clone(), alert_hub.clone())?;
            let tx = a.sender();
            analyzers.push(a);
            Some(tx)
        } else {
            None
        };
        // With a detect_url, a second session feeds the analyser; the recorded one does not.
        let detect_session = analysis.is_some() && cam.detect_url.is_some();
        if detect_session {
            tasks.push(tokio::spawn(
                IngestTask {
                    camera: cam.clone(),
                    role: Role::Detect,
                    sinks: analysis
                        .iter()
                        .map(|a| (SinkKind::Analysis, a.clone()))
                        .collect(),
                    status: status.clone(),
                    cancel: cancel.clone(),
                }
                .run(),
            ));
        }
        tasks.push(tokio::spawn(
            IngestTask {
                camera: cam.clone(),
                role: Role::Record,
                sinks: std::iter::once((SinkKind::Recording, tx))
                    .chain(
                        analysis
                            .filter(|_| !detect_session)
                            .map(|a| (SinkKind::Analysis, a)),
                    )
                    .collect(),
                status: status.clone(),
                cancel: cancel.clone(),
            }
            .run(),
        ));
    }

    let app = api::router(AppState {
        index: index.clone(),
        status: status.clone(),
        cameras: Arc::new(cameras),
        storage: dir.clone(),
        alerts: alert_hub.clone(),
        shutdown: cancel.clone(),
        audit,
        gate,
    });
    let tls = match &config.server.tls {
        Some(t) => {
            // ring: no OpenSSL or cmake needed to build. Installing twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert, &t.key)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot use TLS certificate {} with key {}",
                            t.cert.display(),
                            t.key.display()
                        )
                    })?,
            )
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "serving plain HTTP on {addr} beyond loopback (server.allow_insecure_remote): \
             passwords, session cookies, tokens and video cross the network in clear"
        );
    }
    tracing::info!(
        "HTTP on {}://{addr}/",
        if tls.is_some() { "https" } else { "http" }
    );
    on_listen(addr);
    let metrics = match config.server.metrics_listen {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} (metrics.listen)"))?;
            tracing::info!("metrics on http://{}/metrics", l.local_addr()?);
            let app = api::metrics::router(status.clone());
            let mut stop = cancel.clone();
            Some(tokio::spawn(async move {
                axum::serve(l, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            }))
        }
        None => None,
    };
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let make_service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let http = match tls {
        Some(tls) => {
            // axum-server does the TLS handshakes; its handle stops it gracefully.
            let handle = axum_server::Handle::new();
            let server =
                axum_server::from_tcp_rustls(listener.into_std()?, tls)?.handle(handle.clone());
            tokio::spawn(async move {
                let _ = http_stop_rx.await;
                handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            tokio::spawn(async move { server.serve(make_service).await })
        }
        None => tokio::spawn(async move {
            axum::serve(listener, make_service)
                .with_graceful_shutdown(async {
                    let _ = http_stop_rx.await;
                })
                .await
        }),
    };

    shutdown.await;
    tracing::info!("shutting down: finishing open segments");
    cancel_src.cancel();
    for t in tasks {
        let _ = t.await;
    }
    for a in analyzers {
        let _ = tokio::task::spawn_blocking(move || a.stop()).await;
    }
    sinks_stop.cancel();
    if let Some(m) = mqtt {
        let _ = m.await;
    }
    for w in webhooks {
        let _ = w.await;
    }
    for (tx, _) in &writers {
        // Blocking send: the writer must see Shutdown even if its queue is full.
        let tx = tx.clone();
        let _ = tokio::task::spawn_blocking(move || tx.send(StreamMsg::Shutdown)).await;
    }
    for (_, h) in writers {
        let _ = tokio::task::spawn_blocking(move || h.join()).await;
    }
    let _ = commit_tx.send(CommitMsg::Shutdown);
    let _ = tokio::task::spawn_blocking(move || committer.join()).await;
    let _ = http_stop_tx.send(());
    let _ = http.await;
    if let Some(m) = metrics {
        let _ = m.await;
    }
    tracing::info!("stopped cleanly");
    Ok(())
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

/// Whether an error is the index meeting a full disk or reopening after an error.
fn is_index_retryable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<crate::index::IndexError>()
            .is_some_and(|e| {
                e.is_disk_full() || matches!(e, crate::index::IndexError::Unavailable(_))
            })
    })
}
