//! What the tests say to a daemon over HTTP, with the credentials the daemon value owns
//! (the admin's API token, or a session a test logged in with): [`Api`], implemented by
//! the in-process [`super::TestDaemon`], the process [`Daemon`] and a [`Session`]. Nothing is looked up
//! by URL.

use std::time::{Duration, Instant};

use super::Proc;

/// A daemon the tests talk to. Requests return 4xx/5xx responses as they are; the
/// `get_json` family panics on anything but 200.
pub trait Api {
    /// `http(s)://127.0.0.1:<port>`.
    fn base(&self) -> &str;
    /// The header that authenticates this value's requests: (name, value).
    fn credential(&self) -> Option<(&'static str, String)>;

    /// The URL of `path` (`/api/...`).
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// An authenticated GET of `path`.
    fn get(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        authenticated(self, super::lenient().get(&self.url(path)))
    }

    /// An authenticated DELETE of `path`.
    fn delete(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        authenticated(self, super::lenient().delete(&self.url(path)))
    }

    /// An authenticated POST of `path`.
    fn post(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        authenticated(self, super::lenient().post(&self.url(path)))
    }

    /// GET `path`: (status, JSON body or null).
    fn get_status(&self, path: &str) -> (u16, serde_json::Value) {
        let mut r = self
            .get(path)
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let code = r.status().as_u16();
        (code, r.body_mut().read_json().unwrap_or_default())
    }

    /// GET `path`, which must succeed: its JSON body.
    fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.get_status(path);
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }

    /// Camera `name`'s status.
    fn camera(&self, name: &str) -> serde_json::Value {
        let cams = self.get_json("/api/cameras");
        (cams["cameras"].as_array().unwrap().iter())
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no camera {name} in {cams}"))
    }

    /// Polls camera `name`'s status until `ok` accepts it; on timeout the panic shows the
    /// last status seen.
    fn wait_status(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        mut ok: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.camera(name);
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status: {s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until camera `name` is streaming.
    fn wait_streaming(&self, name: &str) {
        self.wait_status(name, Duration::from_secs(30), "streaming", |s| {
            s["state"] == "streaming"
        });
    }

    /// The live alerts (`/api/alerts/stream`, Server-Sent Events) from now on.
    fn alerts(&self) -> std::sync::mpsc::Receiver<serde_json::Value> {
        super::sse_alerts_from(self.get("/api/alerts/stream"))
    }
}

fn authenticated<A: Api + ?Sized, B>(a: &A, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    match a.credential() {
        Some((h, v)) => r.header(h, v),
        None => r,
    }
}

/// `vigil run` as a process of its own (for what an in-process daemon cannot do: kill -9,
/// signals, libfaketime, an environment of its own), with its credentials.
pub struct Daemon {
    pub proc: Proc,
    /// `http://127.0.0.1:<port>` (or https).
    pub base: String,
    /// The admin's API token, if the storage could have one (see `admin_token`).
    pub token: Option<String>,
    credential: Option<(&'static str, String)>,
}

impl Api for Daemon {
    fn base(&self) -> &str {
        &self.base
    }
    fn credential(&self) -> Option<(&'static str, String)> {
        self.credential.clone()
    }
}

impl Daemon {
    /// Starts `vigil run --config CONFIG` with `env` (stderr to `log`), after making sure
    /// its storage has an admin with an API token, and waits for its listener.
    pub fn start(config: &std::path::Path, log: &std::path::Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_as(config, log, env, super::admin_token(config))
    }

    /// [`Daemon::start`] with the admin's `token` of an earlier start (a restart where the
    /// CLI cannot make one: a full disk).
    pub fn start_as(
        config: &std::path::Path,
        log: &std::path::Path,
        env: &[(&str, &str)],
        token: Option<String>,
    ) -> Daemon {
        let proc = super::spawn_env(&["run", "--config", config.to_str().unwrap()], log, env);
        let line = proc.wait_line("listening on", Duration::from_secs(30));
        let base = line
            .trim_start_matches("listening on ")
            .trim_end_matches('/')
            .to_string();
        Daemon {
            proc,
            base,
            credential: token
                .as_ref()
                .map(|t| ("Authorization", format!("Bearer {t}"))),
            token,
        }
    }

    /// SIGTERM and wait; panics if it does not exit within `timeout`.
    pub fn stop(self, timeout: Duration) -> std::process::ExitStatus {
        self.proc.stop(timeout)
    }

    /// SIGKILL and wait.
    pub fn kill9(self) {
        self.proc.kill9()
    }
}

/// A daemon this test did not start (`vigil demo`, say), asked with a session cookie.
pub struct Session {
    pub base: String,
    cookie: String,
}

impl Session {
    /// Logs in to the daemon at `base` as `user`.
    pub fn login(base: &str, user: &str, password: &str) -> Session {
        let (cookie, _) = super::login(base, user, password)
            .unwrap_or_else(|e| panic!("login as {user} at {base}: {e:?}"));
        Session {
            base: base.to_owned(),
            cookie,
        }
    }
}

impl Api for Session {
    fn base(&self) -> &str {
        &self.base
    }
    fn credential(&self) -> Option<(&'static str, String)> {
        Some(("Cookie", self.cookie.clone()))
    }
}
