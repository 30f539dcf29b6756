//! Shared test harness: real processes (the `vigil` binary as daemon and as fake camera),
//! real HTTP, real ffprobe. Every child is killed when its guard drops, and every server
//! binds 127.0.0.1.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod api;
mod inprocess;
mod media;
// Each test binary uses some of these.
#[allow(unused_imports)]
pub use api::*;
#[allow(unused_imports)]
pub use inprocess::*;
#[allow(unused_imports)]
pub use media::*;

pub const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// A child process killed (SIGKILL) on drop unless already stopped.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }
    /// SIGTERM and wait; panics if it does not exit within `timeout`.
    pub fn stop(mut self, timeout: Duration) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "process did not stop in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
    /// Waits for a stdout line containing `needle` and returns it.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line containing {needle:?} within {timeout:?}"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `vigil ARGS`, collecting stdout lines; stderr goes to the file `log`.
pub fn spawn(args: &[&str], log: &Path) -> Proc {
    spawn_env(args, log, &[])
}

/// [`spawn`] with extra environment variables.
pub fn spawn_env(args: &[&str], log: &Path, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(VIGIL);
    cmd.args(args)
        .envs(env.iter().copied())
        .env(
            "VIGIL_LOG",
            std::env::var("VIGIL_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("NO_COLOR", "1");
    spawn_cmd(cmd, log)
}

/// Spawns any command, collecting stdout lines; stderr goes to the file `log`.
pub fn spawn_cmd(mut cmd: Command, log: &Path) -> Proc {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Proc { child, lines: rx }
}

/// A fake camera serving `paths`; returns it and its port.
pub fn fake_camera(paths: &[&str], port: u16, extra: &[&str], log: &Path) -> (Proc, u16) {
    let port_s = port.to_string();
    let mut args = vec!["fake-camera", "--port", &port_s];
    for p in paths {
        args.extend(["--path", p]);
    }
    args.extend(extra);
    let p = spawn(&args, log);
    let line = p.wait_line("rtsp://", Duration::from_secs(20));
    let port = line
        .trim_start_matches("rtsp://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (p, port)
}

/// Starts `vigil run` (see [`Daemon::start`]).
pub fn daemon(config: &Path, log: &Path) -> Daemon {
    Daemon::start(config, log, &[])
}

/// [`daemon`] with extra environment variables.
pub fn daemon_env(config: &Path, log: &Path, env: &[(&str, &str)]) -> Daemon {
    Daemon::start(config, log, env)
}

/// Logs in with `POST /api/login`; returns the session cookie (`name=value`) and the
/// CSRF token, or the refusal's status and message.
pub fn login(base: &str, user: &str, password: &str) -> Result<(String, String), (u16, String)> {
    let mut r = lenient()
        .post(&format!("{base}/api/login"))
        .send_json(serde_json::json!({ "user": user, "password": password }))
        .unwrap();
    let code = r.status().as_u16();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let body: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
    match (code, cookie) {
        (200, Some(c)) => Ok((c, body["csrf"].as_str().unwrap().to_owned())),
        _ => Err((code, body["error"].as_str().unwrap_or("").to_owned())),
    }
}

/// The password of the admin every test daemon has.
pub const ADMIN_PASSWORD: &str = "test admin password";

/// Adds the user `admin` (role admin) to the config's storage if it is not there, and
/// returns a new API token for it (each daemon value makes its own); None if the CLI could not (a test
/// of an unusable storage dir).
pub fn admin_token(config: &Path) -> Option<String> {
    let cfg = config.to_str()?;
    let token = || {
        let args = ["token", "create", "--config", cfg, "--user", "admin"];
        let (ok, out, _) = vigil_cli(&[&args[..], &["--label", "tests"]].concat(), "");
        let token = out.trim().to_owned();
        (ok && token.starts_with("vgl_")).then_some(token)
    };
    // The admin exists after the first start: one CLI call (no password hashing).
    token().or_else(|| {
        let add = ["user", "add", "--config", cfg, "admin", "--role", "admin"];
        let (ok, _, err) = vigil_cli(&add, &format!("{ADMIN_PASSWORD}\n"));
        (ok || err.contains("already exists")).then(token)?
    })
}

/// `vigil <cmd> <sub> --config CFG <rest...>` with `stdin`: (success, stdout, stderr).
pub fn vigil_config(cfg: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let (cmd, rest) = args.split_at(2);
    let mut full = cmd.to_vec();
    full.extend(["--config", cfg.to_str().unwrap()]);
    full.extend_from_slice(rest);
    vigil_cli(&full, stdin)
}

/// Runs the `vigil` CLI with `stdin`; returns (success, stdout, stderr).
pub fn vigil_cli(args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(VIGIL)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// An agent that returns 4xx/5xx responses instead of failing on them.
pub fn lenient() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Polls `f` every 200 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub struct TestDir {
    pub dir: tempfile::TempDir,
}

impl TestDir {
    /// A fresh temporary dir; kept (and printed) when VIGIL_KEEP_TEST_DIRS is set, to read
    /// the daemon and camera logs of a failed test.
    pub fn new() -> Self {
        let keep = std::env::var_os("VIGIL_KEEP_TEST_DIRS").is_some();
        let dir = tempfile::Builder::new()
            .prefix("vigil-test-")
            .disable_cleanup(keep)
            .tempdir()
            .unwrap();
        if keep {
            eprintln!("test dir: {}", dir.path().display());
        }
        TestDir { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config with `cameras` (name, url) recording into `storage`.
pub fn config(storage: &Path, cameras: &[(&str, String)], storage_extra: &str) -> String {
    let mut s = format!(
        "[storage]\ndir = {:?}\n{storage_extra}\n[server]\nlisten = \"127.0.0.1:0\"\n",
        storage.display().to_string()
    );
    for (name, url) in cameras {
        s += &format!("\n[[cameras]]\nname = \"{name}\"\nurl = \"{url}\"\n");
    }
    s
}

/// Opens the (stopped) daemon's index and returns every segment record.
pub fn indexed_segments(storage: &Path) -> Vec<vigil::index::SegmentRecord> {
    let ix = vigil::index::Index::open(&vigil::storage::Layout::new(storage).index()).unwrap();
    let v: Vec<_> = ix.all_segments().collect::<Result<_, _>>().unwrap();
    v
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A 10 s clip at 15 fps (1080p at about 4 Mbit/s, or 360p at about 600 kbit/s), made
/// once with GStreamer's x264.
pub fn load_clip(dir: &Path, small: bool) -> std::path::PathBuf {
    clip_of(dir, small, 10)
}

/// [`load_clip`] of `seconds` seconds.
pub fn clip_of(dir: &Path, small: bool, seconds: u32) -> std::path::PathBuf {
    let (w, h, kbps) = if small {
        (640, 360, 600)
    } else {
        (1920, 1080, 4000)
    };
    let p = match seconds {
        10 => dir.join(format!("load-{h}p15-{kbps}kbps.mp4")),
        s => dir.join(format!("load-{h}p15-{kbps}kbps-{s}s.mp4")),
    };
    let frames = seconds * 15;
    if p.exists() {
        return p;
    }
    let launch = format!(
        "-q compositor name=c ! video/x-raw,width={w},height={h} ! videoconvert \
         ! x264enc bitrate={kbps} key-int-max=30 speed-preset=veryfast tune=zerolatency \
         ! h264parse ! mp4mux ! filesink location={} \
         videotestsrc num-buffers={frames} pattern=smpte ! video/x-raw,width={w},height={h},framerate=15/1 \
         ! c.sink_0 videotestsrc num-buffers={frames} pattern=ball background-color=0x00000000 \
         ! video/x-raw,format=AYUV,width={},height={},framerate=15/1 ! c.sink_1",
        p.display(),
        w / 3,
        h / 2
    );
    let st = std::process::Command::new("gst-launch-1.0")
        .args(launch.split_whitespace())
        .status()
        .expect("gst-launch-1.0 (apt install gstreamer1.0-tools)");
    assert!(st.success(), "could not make the load clip");
    p
}

/// One fake camera process serving each `(camera, path)` (with `cam_args`), and a config
/// recording them into `<t>/storage` with `storage_extra` in `[storage]`: (the camera, its
/// port, the storage dir, the config file).
fn served(
    t: &TestDir,
    cameras: &[(&str, &str)],
    cam_args: &[&str],
    storage_extra: &str,
) -> (Proc, u16, PathBuf, PathBuf) {
    let paths: Vec<&str> = cameras.iter().map(|c| c.1).collect();
    let (cam, port) = fake_camera(&paths, 0, cam_args, &t.join("cam.log"));
    let storage = t.join("storage");
    let cams: Vec<(&str, String)> = cameras
        .iter()
        .map(|(name, path)| (*name, format!("rtsp://127.0.0.1:{port}/{path}")))
        .collect();
    let cfg = t.write("vigil.toml", &config(&storage, &cams, storage_extra));
    (cam, port, storage, cfg)
}

/// The usual end-to-end set-up: one fake camera process and the daemon recording it.
pub struct Rig {
    /// The fake camera: keep it bound (`cam: _cam`) or it stops.
    pub cam: Proc,
    pub port: u16,
    pub storage: PathBuf,
    pub cfg: PathBuf,
    pub daemon: Daemon,
}

/// Serves each `(camera, path)` from one fake camera (with `cam_args`) and runs the daemon
/// recording them into `<t>/storage`, with `storage_extra` in `[storage]`.
pub fn rig(t: &TestDir, cameras: &[(&str, &str)], cam_args: &[&str], storage_extra: &str) -> Rig {
    let (cam, port, storage, cfg) = served(t, cameras, cam_args, storage_extra);
    let daemon = daemon(&cfg, &t.join("daemon.log"));
    Rig {
        cam,
        port,
        storage,
        cfg,
        daemon,
    }
}

/// [`Rig`] with the daemon in this process ([`TestDaemon`], which holds its token).
pub struct Site {
    /// The fake camera: keep it bound (`cam: _cam`) or it stops.
    pub cam: Proc,
    pub port: u16,
    pub storage: PathBuf,
    pub cfg: PathBuf,
    pub daemon: TestDaemon,
}

/// [`rig`] with the daemon run in this process.
pub fn site(t: &TestDir, cameras: &[(&str, &str)], cam_args: &[&str], storage_extra: &str) -> Site {
    let (cam, port, storage, cfg) = served(t, cameras, cam_args, storage_extra);
    let daemon = TestDaemon::start(&cfg);
    Site {
        cam,
        port,
        storage,
        cfg,
        daemon,
    }
}

/// A config with one camera `cam` that nobody serves (the API answers regardless), in
/// `t`'s `storage` dir; `server_extra` goes into `[server]`.
pub fn idle_camera_config(t: &TestDir, server_extra: &str) -> PathBuf {
    let port = free_port();
    let text = config(
        &t.join("storage"),
        &[("cam", format!("rtsp://127.0.0.1:{port}/x"))],
        "",
    )
    .replace("[server]\n", &format!("[server]\n{server_extra}"));
    t.write("vigil.toml", &text)
}

/// A documented path with its placeholders filled for the camera `cam` and id 1.
pub fn fill_path(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{file}", "cam.mp4")
        .replace("{name}", "cam")
}

/// The ground-truth crossing clip looped by a fake camera, and a daemon config for it
/// (the fixture's zones and mask) with `storage_extra` in `[storage]`.
pub fn crossing_camera(t: &TestDir, storage_extra: &str) -> (Proc, PathBuf) {
    let clip = fixture("motion/crossing.mp4");
    let (cam, port) = fake_camera(
        &["x"],
        0,
        &["--file", clip.to_str().unwrap()],
        &t.join("cam.log"),
    );
    let url = format!("rtsp://127.0.0.1:{port}/x");
    (cam, fixture_camera_config(t, &url, storage_extra, ""))
}

/// A config for the ground-truth fixture camera `fixture` (zones, mask and motion settings
/// of `fixtures/motion/zones.toml`) recording into `<t>/storage`, with its stream at
/// `url` and these extra lines in the camera's table (`detect_url = ...`, say).
pub fn fixture_camera_config(
    t: &TestDir,
    url: &str,
    storage_extra: &str,
    camera_extra: &str,
) -> PathBuf {
    let zones = std::fs::read_to_string(fixture("motion/zones.toml")).unwrap();
    let cam_part = &zones[zones.find("[[cameras]]").unwrap()..];
    let cam_part = cam_part.replace(
        "url = \"rtsp://127.0.0.1:8554/fixture\"",
        &format!("url = \"{url}\"\n{camera_extra}"),
    );
    let text = format!(
        "[storage]\ndir = {:?}\n{storage_extra}\n[server]\nlisten = \"127.0.0.1:0\"\n{cam_part}",
        t.join("storage").display().to_string()
    );
    t.write("vigil.toml", &text)
}

/// The `alert` events of an SSE stream (`/api/alerts/stream`) of a prepared request: each
/// event's JSON arrives on the channel.
pub fn sse_alerts_from(
    req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
) -> std::sync::mpsc::Receiver<serde_json::Value> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = req.call().unwrap();
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        ready_tx.send(()).unwrap();
        let reader = std::io::BufReader::new(r.body_mut().with_config().limit(u64::MAX).reader());
        let mut event = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(d) = line.strip_prefix("data: ")
                && event == "alert"
                && tx.send(serde_json::from_str(d).unwrap()).is_err()
            {
                break;
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    rx
}

/// `vigil check` (with `--repair`) on a config: exit code and standard output.
pub fn vigil_check(cfg: &Path, repair: bool) -> (i32, String) {
    let mut c = Command::new(VIGIL);
    c.args(["check", "--config", cfg.to_str().unwrap()]);
    if repair {
        c.arg("--repair");
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Copies the directory tree `from` to `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Hex SHA-256 of a file by coreutils' `sha256sum` (an implementation other than Vigil's).
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A response as [`call`] reads it.
pub struct Answer {
    pub code: u16,
    pub body: String,
    /// The `Location` header (redirects are not followed).
    pub location: Option<String>,
}

/// One request with optional headers (a POST, PUT or PATCH sends `body`, or `{}`, as JSON), no redirect
/// followed, 10 s at most (a hang is a failure); the body of an event stream is not read.
pub fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut r = if method == "get" || method == "delete" {
        let mut q = if method == "get" {
            agent.get(url)
        } else {
            agent.delete(url)
        };
        for (k, v) in headers {
            q = q.header(*k, *v);
        }
        q.call().unwrap()
    } else {
        let q = if method == "put" {
            agent.put(url)
        } else if method == "patch" {
            agent.patch(url)
        } else {
            agent.post(url)
        };
        let mut q = q.header("content-type", "application/json");
        for (k, v) in headers {
            q = q.header(*k, *v);
        }
        q.send(body.unwrap_or("{}")).unwrap()
    };
    let code = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let streaming = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let body = if streaming {
        String::new()
    } else {
        r.body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default()
    };
    Answer {
        code,
        body,
        location,
    }
}
