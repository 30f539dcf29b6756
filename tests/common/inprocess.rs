//! The daemon run inside the test process: `vigil::daemon::run` on a runtime thread of
//! its own, as `vigil run` runs it (the same config file, the HTTP listener on the
//! config's address, port 0 by default), stopped cleanly when the value is stopped or
//! dropped. The value owns its credentials (an admin's API token), and its request
//! requests (the [`super::Api`] methods) carry them.
//!
//! For tests that need no process of their own (kill -9, libfaketime and signals do).

use std::path::Path;
use std::time::Duration;

/// A running in-process daemon.
pub struct TestDaemon {
    /// `http://127.0.0.1:<port>` (https when the config has a certificate).
    pub base: String,
    /// The admin's API token (`vigil token create` before the start).
    pub token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl TestDaemon {
    /// Starts the daemon of `config` (after making its admin and token with the CLI, as an
    /// installer would) and waits for its listener.
    pub fn start(config: &Path) -> TestDaemon {
        let token = super::admin_token(config).expect("an admin token");
        let cfg = vigil::config::Config::load(config).expect("a valid config");
        let scheme = if cfg.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("test-daemon".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                rt.block_on(vigil::daemon::run(
                    cfg,
                    async {
                        let _ = stopped.await;
                    },
                    move |addr| {
                        let _ = addr_tx.send(addr);
                    },
                ))
            })
            .unwrap();
        let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => panic!("the daemon did not start: {:?}", thread.join()),
        };
        TestDaemon {
            base: format!("{scheme}://{addr}"),
            token,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the daemon as SIGTERM would and waits for it: every open segment is
    /// finished and indexed. Panics if it failed.
    pub fn stop(mut self) {
        self.shut_down().expect("the daemon stopped cleanly");
    }

    fn shut_down(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().expect("the daemon thread panicked"),
            None => Ok(()),
        }
    }
}

impl super::Api for TestDaemon {
    fn base(&self) -> &str {
        &self.base
    }
    fn credential(&self) -> Option<(&'static str, String)> {
        Some(("Authorization", format!("Bearer {}", self.token)))
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}
