//! TLS for the daemon's own clients and server: rustls with the ring provider (no
//! OpenSSL, no cmake), installed once per process.
//!
//! Clients (webhooks, and the CLI asking a daemon that serves HTTPS) trust the public
//! web roots, or only the certificates of a given PEM file (a private CA, or a
//! self-signed daemon certificate).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

/// Makes ring rustls's process-wide provider (idempotent).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP(S) client that returns 4xx/5xx answers (not errors), trusting `ca_file`'s
/// certificates if given, the public web roots otherwise.
pub fn agent(ca_file: Option<&Path>, timeout: Option<Duration>) -> anyhow::Result<ureq::Agent> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    install_provider();
    let mut tls = TlsConfig::builder();
    if let Some(f) = ca_file {
        let pem = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        anyhow::ensure!(
            !certs.is_empty(),
            "{} holds no PEM certificate",
            f.display()
        );
        tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
    }
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout)
        .tls_config(tls.build())
        .build()
        .into())
}
