//! The daemon run inside the test process: `vigil::daemon::run` on a runtime thread of
//! its own, as `vigil run` runs it (the same config file, the HTTP listener on the
//! config's address, port 0 by default), stopped cleanly when the value is stopped or
//! dropped. The value owns its credentials (an admin's API token), and its request
//! methods carry them: nothing is looked up by URL.
//!
//! For tests that need no process of their own (kill -9, libfaketime and signals do).

use std::path::Path;
use std::time::Duration;

/// A running in-process daemon.
pub struct TestDaemon {
    /// `http://127.0.0.1:<port>`.
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
            base: format!("http://{addr}"),
            token,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The URL of `path` (`/api/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An authenticated GET of `path` that returns 4xx/5xx responses as they are.
    pub fn get(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        super::lenient()
            .get(&self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
    }

    /// An authenticated DELETE of `path`.
    pub fn delete(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        super::lenient()
            .delete(&self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
    }

    /// An authenticated POST of `path`.
    pub fn post(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        super::lenient()
            .post(&self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
    }

    /// GET `path`: (status, JSON body or null).
    pub fn get_status(&self, path: &str) -> (u16, serde_json::Value) {
        let mut r = self.get(path).call().unwrap();
        let code = r.status().as_u16();
        (code, r.body_mut().read_json().unwrap_or_default())
    }

    /// GET `path`, which must succeed: its JSON body.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.get_status(path);
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }

    /// Camera `name`'s status.
    pub fn camera(&self, name: &str) -> serde_json::Value {
        let cams = self.get_json("/api/cameras");
        (cams["cameras"].as_array().unwrap().iter())
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no camera {name} in {cams}"))
    }

    /// Polls camera `name`'s status until `ok` accepts it; on timeout the panic shows the
    /// last status seen.
    pub fn wait_status(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        mut ok: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let s = self.camera(name);
            if ok(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; last status: {s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until camera `name` is streaming.
    pub fn wait_streaming(&self, name: &str) {
        self.wait_status(name, Duration::from_secs(30), "streaming", |s| {
            s["state"] == "streaming"
        });
    }

    /// The live alerts (`/api/alerts/stream`, Server-Sent Events) from now on.
    pub fn alerts(&self) -> std::sync::mpsc::Receiver<serde_json::Value> {
        super::sse_alerts_from(self.get("/api/alerts/stream"))
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

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}
