//! Serving the API: the listener (HTTPS with rustls when a certificate is configured;
//! plain HTTP otherwise, beyond loopback only with `allow_insecure_remote`), graceful
//! shutdown, and the separate Prometheus listener (`[metrics] listen`), which now stops
//! with the API, at the very end of shutdown.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::task::JoinHandle;

use super::{AppState, router};
use crate::config::ServerConfig;

/// The API (and metrics) listeners as they run.
pub struct Server {
    http: JoinHandle<std::io::Result<()>>,
    http_stop: tokio::sync::oneshot::Sender<()>,
    metrics: Option<(
        JoinHandle<std::io::Result<()>>,
        crate::base::cancel::CancelSource,
    )>,
}

/// The API's listener (and the metrics listener, if configured), bound but not serving
/// yet: the daemon binds them before it starts anything else, so that an address in use
/// stops it before recording starts.
pub struct Listeners {
    api: tokio::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    metrics: Option<tokio::net::TcpListener>,
    addr: SocketAddr,
}

/// Binds the listeners of `cfg` and loads its TLS certificate. Errors: an address cannot
/// be bound, the TLS certificate or key is unusable.
pub async fn bind(cfg: &ServerConfig) -> anyhow::Result<Listeners> {
    let tls = match &cfg.tls {
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
    let api = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = api.local_addr()?;
    let metrics = match cfg.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} (metrics.listen)"))?,
        ),
        None => None,
    };
    Ok(Listeners {
        api,
        tls,
        metrics,
        addr,
    })
}

/// [`bind`], then [`Listeners::serve`].
pub async fn serve(
    state: AppState,
    cfg: &ServerConfig,
    on_listen: impl FnOnce(SocketAddr),
) -> anyhow::Result<Server> {
    bind(cfg).await?.serve(state, on_listen)
}

impl Listeners {
    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the API (and metrics) from now on, reporting the API's address through
    /// `on_listen` (the demo prints it; tests read it), until [`Server::stop`].
    pub fn serve(
        self,
        state: AppState,
        on_listen: impl FnOnce(SocketAddr),
    ) -> anyhow::Result<Server> {
        let Listeners {
            api,
            tls,
            metrics,
            addr,
        } = self;
        let status = state.status.clone();
        let app = router(state);
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
        let metrics = match metrics {
            Some(l) => {
                tracing::info!("metrics on http://{}/metrics", l.local_addr()?);
                let app = super::metrics::router(status);
                let (stop_src, mut stop) = crate::base::cancel::new();
                let task = tokio::spawn(async move {
                    axum::serve(l, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await
                });
                Some((task, stop_src))
            }
            None => None,
        };
        let (http_stop, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
        let http = match tls {
            Some(tls) => {
                // axum-server does the TLS handshakes; its handle stops it gracefully.
                let handle = axum_server::Handle::new();
                let server =
                    axum_server::from_tcp_rustls(api.into_std()?, tls)?.handle(handle.clone());
                tokio::spawn(async move {
                    let _ = http_stop_rx.await;
                    handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
                });
                tokio::spawn(async move { server.serve(make_service).await })
            }
            None => tokio::spawn(async move {
                axum::serve(api, make_service)
                    .with_graceful_shutdown(async {
                        let _ = http_stop_rx.await;
                    })
                    .await
            }),
        };
        Ok(Server {
            http,
            http_stop,
            metrics,
        })
    }
}

impl Server {
    /// Stops the metrics listener, and the API's once its requests are answered (long-lived
    /// responses end on `AppState::shutdown`; TLS connections get 10 s).
    pub async fn stop(self) {
        if let Some((task, stop)) = self.metrics {
            stop.cancel();
            let _ = task.await;
        }
        let _ = self.http_stop.send(());
        let _ = self.http.await;
    }
}
