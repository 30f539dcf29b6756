//! Ingest: one async task per camera that holds an RTSP session with retina, turns its
//! video frames into `media::Frame`s and publishes them to the camera's sinks (`media::Sink`:
//! the writer, the analyser; ingest imports neither), and reconnects with exponential
//! backoff and jitter (1 s to 10 s) when the camera goes away.
//!
//! Every RTSP step has a deadline (`timeout_seconds`); a packet that cannot be
//! depacketized, or lost packets, drop pictures up to the next keyframe and the session
//! goes on; NAL units under one RTP timestamp are one picture; timestamps go through the
//! timing model (`timing`), which never ends a session.
//!
//! Nothing here decodes video. Before each new session the task waits out stale sessions
//! of the previous one (retina's `SessionGroup`), which some servers (live555) keep
//! streaming into a reused connection otherwise.
//!
//! Here: the task's reconnect loop and backoff. `session`: one RTSP session (open, receive,
//! assemble pictures). `outlet`: handing pictures and audio to the sinks. `timing`: the
//! timing model. `socket`: the TCP receive low-water mark. `h26x`: NAL unit facts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

// Tokio's clock (the system's, unless a test paused it): how long a session lasted is
// measured on the same clock as the backoff sleeps.
use tokio::time::Instant;

use retina::client::SessionGroup;
use timing::CameraClock;

use crate::base::cancel::CancelToken;
use crate::config::CameraConfig;
use crate::media::Sink;
use crate::status::{CameraState, SharedStatus};

pub mod h26x;
mod outlet;
mod session;
pub mod socket;
pub mod timing;

pub const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts: a camera back from a power cycle (a PoE switch
/// rebooting) is recorded again within this; an attempt costs a TCP connection.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A session that lasted this long resets the backoff (as does one that delivered a
/// picture).
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// Delay before reconnect attempt `failures` (1-based): 1 s doubling to 10 s, with up to
/// 25% random jitter so that many cameras behind one failed switch do not reconnect in
/// lockstep.
pub fn backoff(failures: u32) -> Duration {
    let base = MIN_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(6));
    let base = base.min(MAX_BACKOFF);
    let jitter = 1.0 - fastrand::f64() * 0.25;
    base.mul_f64(jitter).max(MIN_BACKOFF.mul_f64(0.75))
}

/// The count of consecutive failed sessions after one that `lasted` and `delivered` (a
/// picture) or not: a session that delivered pictures was a success, however short, and
/// so is one that lasted [`HEALTHY_SESSION`]: the next wait is the first delay again (a
/// camera that flaps every few seconds is recorded between its drops; waiting up to
/// [`MAX_BACKOFF`] would lose that). Pure, so the reconnect policy is unit-tested.
pub fn failures_after(failures: u32, delivered: bool, lasted: Duration) -> u32 {
    if delivered || lasted >= HEALTHY_SESSION {
        1
    } else {
        failures.saturating_add(1)
    }
}

/// What a session is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The camera's `url`: recorded (and analysed, unless a detect session exists).
    Record,
    /// The camera's `detect_url`: analysed only; reports as `detect_state`/`detect_error`.
    Detect,
}

/// A session as a future: it resolves when the session ends.
pub type SessionFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// The RTSP-opener seam: how the task runs one session. [`Rtsp`] opens a real one with
/// retina (`session`); tests put a script in its place to unit-test the reconnect loop
/// (backoff, its reset, the status, the sinks' run ends) on tokio's paused clock.
pub trait Sessions: Send + Sync {
    /// Runs one session of `task` until it ends; sets `delivered` if it handed on a
    /// picture. `clock` is what the camera's sessions learnt of its clock.
    fn session<'a>(
        &'a self,
        task: &'a IngestTask,
        group: Arc<SessionGroup>,
        clock: &'a mut CameraClock,
        delivered: &'a mut bool,
    ) -> SessionFuture<'a>;
}

/// Sessions with the camera over RTSP (retina).
pub struct Rtsp;

impl Sessions for Rtsp {
    fn session<'a>(
        &'a self,
        task: &'a IngestTask,
        group: Arc<SessionGroup>,
        clock: &'a mut CameraClock,
        delivered: &'a mut bool,
    ) -> SessionFuture<'a> {
        Box::pin(task.session(group, clock, delivered))
    }
}

/// One camera's ingest: one RTSP session after another, for as long as it runs.
pub struct IngestTask {
    pub camera: CameraConfig,
    pub role: Role,
    /// Where the stream goes (`media::Sink`): the segment writer (none for a detect-only
    /// session) and motion analysis, if enabled; frames are shared, not copied.
    pub sinks: Vec<Sink>,
    pub status: SharedStatus,
    pub cancel: CancelToken,
    /// How sessions are run ([`Rtsp`], or a test's script).
    pub sessions: Arc<dyn Sessions>,
}

/// Runs `fut` as RTSP step `step` under the camera's deadline.
async fn step<T, E: Into<anyhow::Error>>(
    task: &IngestTask,
    step: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    task.set_step(Some(step));
    let t = task.camera.timeout;
    match tokio::time::timeout(t, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => {
            task.status.ingest(&task.camera.name, |s| s.timeouts += 1);
            if step == "connect" {
                anyhow::bail!(
                    "no TCP connection to {} within {} s",
                    task.server(),
                    t.as_secs_f64()
                );
            }
            anyhow::bail!(
                "no answer to {} within {} s from {}",
                step.to_uppercase(),
                t.as_secs_f64(),
                task.server()
            )
        }
    }
}

impl IngestTask {
    fn set_state(&self, st: CameraState) {
        let name = &self.camera.name;
        match self.role {
            Role::Record => self.status.ingest(name, |s| s.set_state(st)),
            Role::Detect => self.status.ingest(name, |s| s.detect_state = Some(st)),
        }
    }

    /// Which RTSP step is under way (shown with the `connecting` state).
    fn set_step(&self, step: Option<&'static str>) {
        if self.role == Role::Record {
            self.status
                .ingest(&self.camera.name, |s| s.connect_step = step);
        }
    }

    fn url(&self) -> &url::Url {
        match self.role {
            Role::Record => &self.camera.url,
            Role::Detect => self.camera.detect_url.as_ref().unwrap_or(&self.camera.url),
        }
    }

    /// The server's address as `host:port`, for messages (never the credentials).
    fn server(&self) -> String {
        let u = self.url();
        format!(
            "{}:{}",
            u.host_str().unwrap_or("?"),
            u.port_or_known_default().unwrap_or(554)
        )
    }

    pub async fn run(self) {
        let name = self.camera.name.clone();
        let mut cancel = self.cancel.clone();
        let group = Arc::new(SessionGroup::default().named(name.clone()));
        let mut failures = 0u32;
        // What the camera's sessions learn about its clock outlives each of them.
        let mut clock = CameraClock::default();
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let stale = group.stale_sessions();
            if stale.num_sessions > 0 {
                self.set_state(CameraState::WaitingStaleSession);
                tracing::info!(camera = %name, n = stale.num_sessions, "waiting for stale sessions to end");
                tokio::select! {
                    _ = group.await_stale_sessions(&stale) => {}
                    _ = tokio::time::sleep(Duration::from_secs(70)) => {}
                    _ = cancel.cancelled() => break,
                }
            }
            self.set_state(CameraState::Connecting);
            let started = Instant::now();
            let mut delivered = false;
            let result = tokio::select! {
                r = self.sessions.session(&self, group.clone(), &mut clock, &mut delivered) => r,
                _ = cancel.cancelled() => Ok(()),
            };
            self.set_step(None);
            if cancel.is_cancelled() {
                break; // the writer gets Shutdown and closes with that reason
            }
            for sink in self.sinks() {
                sink.end_run();
            }
            failures = failures_after(failures, delivered, started.elapsed());
            // One line for the status and the log (retina's errors carry multi-line
            // packet and connection context, and hex dumps of what the server sent: at
            // debug level).
            let msg = match result {
                Ok(()) => "stream ended".to_string(),
                Err(e) => {
                    let full = format!("{e:#}");
                    tracing::debug!(camera = %name, "{full}");
                    full.lines()
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches(';')
                        .to_owned()
                }
            };
            let delay = backoff(failures);
            tracing::warn!(camera = %name, role = ?self.role, server = %self.server(), "{msg}; reconnecting in {:.1} s", delay.as_secs_f64());
            match self.role {
                Role::Record => self.status.ingest(&name, |s| {
                    s.set_state(CameraState::Backoff);
                    s.set_error(msg);
                    s.reconnects += 1;
                    s.fps = 0.0;
                    s.bitrate_bps = 0.0;
                }),
                Role::Detect => self.status.ingest(&name, |s| {
                    s.detect_state = Some(CameraState::Backoff);
                    s.detect_error = Some(msg);
                }),
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => break,
            }
        }
        self.set_state(CameraState::Stopped);
    }

    /// This task's sinks, fresh for a session.
    fn sinks(&self) -> Vec<Sink> {
        (self.sinks.iter()).map(Sink::fresh).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{SinkKind, StreamMsg};

    /// A script in place of RTSP: each session fails with the given message after the
    /// given time, or ends after delivering pictures (message `None`); the time each one
    /// started is kept.
    struct Script {
        plan: Vec<(Option<&'static str>, Duration)>,
        started: std::sync::Mutex<Vec<tokio::time::Instant>>,
    }

    impl Sessions for Script {
        fn session<'a>(
            &'a self,
            _task: &'a IngestTask,
            _group: Arc<SessionGroup>,
            _clock: &'a mut CameraClock,
            delivered: &'a mut bool,
        ) -> SessionFuture<'a> {
            Box::pin(async move {
                let n = {
                    let mut s = self.started.lock().unwrap();
                    s.push(tokio::time::Instant::now());
                    s.len() - 1
                };
                let Some(&(outcome, lasts)) = self.plan.get(n) else {
                    return std::future::pending().await;
                };
                tokio::time::sleep(lasts).await;
                match outcome {
                    Some(e) => Err(anyhow::anyhow!("{e}")),
                    None => {
                        *delivered = true;
                        Ok(())
                    }
                }
            })
        }
    }

    /// The reconnect loop on tokio's paused clock: delays double from 1 s with jitter,
    /// a session that delivered pictures resets them, each end of a session ends the
    /// sinks' run, and the status counts the reconnects and keeps the last error.
    #[tokio::test(start_paused = true)]
    async fn reconnects_back_off_and_a_delivering_session_resets_the_delay() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[storage]\ndir = {:?}\n[[cameras]]\nname = \"c\"\nurl = \"rtsp://127.0.0.1:1/c\"\n",
            dir.path().display().to_string()
        );
        let cfg = crate::config::Config::parse(&dir.path().join("v.toml"), &text).unwrap();
        let script = Arc::new(Script {
            plan: vec![
                (Some("refused"), Duration::ZERO),
                (Some("refused"), Duration::ZERO),
                (Some("refused"), Duration::ZERO),
                (None, Duration::ZERO),
                (Some("refused again"), Duration::ZERO),
                (Some("refused"), Duration::ZERO),
                (Some("refused"), Duration::ZERO),
                // Silent, but healthy for long enough: the delay starts over too.
                (Some("no picture for 10 s"), HEALTHY_SESSION),
            ],
            started: Default::default(),
        });
        let (tx, rx) = std::sync::mpsc::sync_channel(100);
        let (stop, cancel) = crate::base::cancel::new();
        let status: SharedStatus = Default::default();
        let task = IngestTask {
            camera: cfg.cameras[0].clone(),
            role: Role::Record,
            sinks: vec![Sink::new(SinkKind::Recording, tx)],
            status: status.clone(),
            cancel,
            sessions: script.clone(),
        };
        let run = tokio::spawn(task.run());
        while script.started.lock().unwrap().len() < 9 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        run.await.unwrap();
        let t = script.started.lock().unwrap().clone();
        let gaps: Vec<f64> = t.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        let within = |g: f64, lo: f64, hi: f64| (lo..=hi + 0.06).contains(&g);
        assert!(within(gaps[0], 0.75, 1.0), "{gaps:?}");
        assert!(within(gaps[1], 1.5, 2.0), "{gaps:?}");
        assert!(within(gaps[2], 3.0, 4.0), "{gaps:?}");
        // The fourth session delivered: the next delay is the first again.
        assert!(within(gaps[3], 0.75, 1.0), "{gaps:?}");
        assert!(within(gaps[4], 1.5, 2.0), "{gaps:?}");
        assert!(within(gaps[5], 3.0, 4.0), "{gaps:?}");
        // The eighth session lasted HEALTHY_SESSION (on the paused clock): then 1 s again.
        let after_healthy = gaps[7] - HEALTHY_SESSION.as_secs_f64();
        assert!(within(after_healthy, 0.75, 1.0), "{gaps:?}");
        let s = status.ingest("c", |s| s.clone());
        assert_eq!(s.reconnects, 8);
        assert_eq!(s.state, CameraState::Stopped);
        let cams = status.cameras();
        let error = cams[0].last_error().map(|(_, e)| e.to_owned());
        assert!(
            error.as_deref().unwrap().contains("no picture"),
            "{error:?}"
        );
        let ends = std::iter::from_fn(|| rx.try_recv().ok())
            .filter(|m| matches!(m, StreamMsg::EndRun))
            .count();
        assert_eq!(ends, 8);
    }

    #[test]
    fn failed_sessions_grow_the_delay_and_a_success_resets_it() {
        let short = Duration::from_secs(2);
        let mut f = 0;
        for n in 1..=5 {
            f = failures_after(f, false, short);
            assert_eq!(f, n);
        }
        assert!(backoff(f) >= Duration::from_secs(7));
        // A picture delivered, however short the session: back to the first delay.
        assert_eq!(failures_after(f, true, Duration::ZERO), 1);
        // A long session without a picture (a camera sending only audio) counts too.
        assert_eq!(failures_after(f, false, HEALTHY_SESSION), 1);
        assert_eq!(failures_after(u32::MAX, false, short), u32::MAX);
    }

    #[test]
    fn backoff_grows_and_caps_with_jitter() {
        for _ in 0..100 {
            let d1 = backoff(1);
            assert!(d1 >= Duration::from_millis(750) && d1 <= Duration::from_secs(1));
            let d3 = backoff(3);
            assert!(d3 >= Duration::from_secs(3) && d3 <= Duration::from_secs(4));
            let d20 = backoff(20);
            assert!(d20 >= Duration::from_millis(7_500) && d20 <= MAX_BACKOFF);
        }
    }
}
