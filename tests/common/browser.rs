//! Headless Chromium (Debian's) for tests: driven over the DevTools protocol as a person
//! would use a page, and as a player of Vigil's MP4 files.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use super::common::{TestDir, vigil_config, wait_for};

/// Headless Chromium (Debian's) driven over the DevTools protocol, as a person would use
/// the page: navigate, type into the form, click. Killed on drop.
pub struct Browser {
    child: std::process::Child,
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
}

impl Browser {
    pub fn start(t: &TestDir) -> Browser {
        Browser::start_sized(t, 1400, 500)
    }

    /// With a window of `width` × `height` CSS pixels.
    pub fn start_sized(t: &TestDir, width: u32, height: u32) -> Browser {
        // A profile of its own: Chromium writes its DevTools port there.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = t.join(&format!("chromium-profile-{n}"));
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(t.join(&format!("chromium-{n}.log"))).unwrap())
            .spawn()
            .expect("chromium (apt install chromium; scripts/test installs it)");
        // Chromium writes the port it chose into the profile.
        let port: u16 = wait_for(Duration::from_secs(30), "chromium's DevTools port", || {
            std::fs::read_to_string(profile.join("DevToolsActivePort"))
                .ok()?
                .lines()
                .next()?
                .parse()
                .ok()
        });
        let ws = wait_for(Duration::from_secs(30), "chromium's page target", || {
            let list: serde_json::Value = ureq::get(&format!("http://127.0.0.1:{port}/json/list"))
                .call()
                .ok()?
                .body_mut()
                .read_json()
                .ok()?;
            list.as_array()?
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(String::from))
        });
        let (socket, _) = tungstenite::connect(ws).unwrap();
        Browser {
            child,
            socket,
            next_id: 1,
        }
    }

    /// Sends a DevTools command and returns its result.
    pub fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(tungstenite::Message::Text(msg.to_string().into()))
            .unwrap();
        loop {
            let m = self.socket.read().unwrap();
            let tungstenite::Message::Text(text) = m else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page (awaiting promises) and returns its value.
    pub fn eval(&mut self, js: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
        );
        r["result"]["value"].clone()
    }

    /// Polls `js` until it is true.
    pub fn wait(&mut self, js: &str, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.eval(js) != serde_json::Value::Bool(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; page: {}",
                self.eval("document.documentElement.outerHTML")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Pointer events on the element `selector` (a canvas): each step is (type, x, y) with
    /// x, y normalised to the element's box, as a person's clicks and drags would send.
    pub fn pointer(&mut self, selector: &str, steps: &[(&str, f64, f64)]) {
        let steps = serde_json::to_string(steps).unwrap();
        self.eval(&format!(
            "(() => {{ const c = document.querySelector({selector:?}), r = c.getBoundingClientRect(); \
               for (const [type, x, y] of {steps}) c.dispatchEvent(new PointerEvent(type, {{ bubbles: true, \
                 pointerId: 1, clientX: r.left + x * r.width, clientY: r.top + y * r.height }})); return true; }})()"
        ));
    }

    /// Clicks at each of `points` (normalised) on the element `selector`.
    pub fn click_at(&mut self, selector: &str, points: &[[f64; 2]]) {
        let steps: Vec<(&str, f64, f64)> = (points.iter())
            .flat_map(|&[x, y]| [("pointerdown", x, y), ("pointerup", x, y)])
            .collect();
        self.pointer(selector, &steps);
    }

    /// The viewport as a JPEG (quality 80), for the README's pictures.
    pub fn screenshot_jpeg(&mut self, path: &std::path::Path) {
        use base64ct::Encoding;
        let r = self.call(
            "Page.captureScreenshot",
            serde_json::json!({ "format": "jpeg", "quality": 80 }),
        );
        let jpeg = base64ct::Base64::decode_vec(r["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, jpeg).unwrap();
    }

    pub fn screenshot(&mut self, path: &std::path::Path) {
        use base64ct::Encoding;
        let r = self.call("Page.captureScreenshot", serde_json::json!({}));
        let png = base64ct::Base64::decode_vec(r["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What Chromium made of a video file (see [`play`]).
#[derive(Debug)]
pub struct Played {
    /// The duration the file declares, s.
    pub duration: f64,
    pub width: u64,
    /// Frames Chromium decoded while playing.
    pub decoded_frames: u64,
    /// How far playback got, s.
    pub reached: f64,
    /// The media error, if any (`MediaError.message`).
    pub error: Option<String>,
    /// Audio tracks Chromium sees (0 without audio).
    pub audio: bool,
}

/// Plays `file` in headless Chromium (muted, at 4x) for up to `seconds` of media time from
/// `from`, as a person would watch an exported clip, and reports what it decoded.
pub fn play(t: &TestDir, file: &std::path::Path, from: f64, seconds: f64) -> Played {
    let page = t.join(&format!(
        "play-{}.html",
        file.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &page,
        format!(
            "<video id=v muted preload=auto src=\"{}\"></video>",
            file.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    let mut b = Browser::start(t);
    b.call(
        "Page.navigate",
        serde_json::json!({ "url": format!("file://{}", page.display()) }),
    );
    b.wait("document.getElementById('v') !== null", "the player page");
    let js = format!(
        r#"new Promise(done => {{
            const v = document.getElementById('v');
            const report = () => done(JSON.stringify({{
                duration: v.duration, width: v.videoWidth,
                decoded: v.getVideoPlaybackQuality().totalVideoFrames,
                reached: v.currentTime, error: v.error ? (v.error.message || String(v.error.code)) : null,
                audio: v.mozHasAudio || v.webkitAudioDecodedByteCount > 0 || (v.audioTracks ? v.audioTracks.length > 0 : false)
            }}));
            const go = () => {{
                v.currentTime = {from};
                v.playbackRate = 4;
                v.play().catch(() => {{}});
                const stop = () => {{ if (v.currentTime >= {from} + {seconds} || v.ended || v.error) report(); else setTimeout(stop, 100); }};
                stop();
            }};
            v.onerror = report;
            if (v.readyState >= 1) go(); else v.onloadedmetadata = go;
            setTimeout(report, 60000);
        }})"#
    );
    let r = b.call(
        "Runtime.evaluate",
        serde_json::json!({ "expression": js, "returnByValue": true, "awaitPromise": true }),
    );
    let report = r["result"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("Chromium playing {}: {r}", file.display()));
    let v: serde_json::Value = serde_json::from_str(report).unwrap();
    Played {
        duration: v["duration"].as_f64().unwrap_or(f64::NAN),
        width: v["width"].as_u64().unwrap_or(0),
        decoded_frames: v["decoded"].as_u64().unwrap_or(0),
        reached: v["reached"].as_f64().unwrap_or(0.0),
        error: v["error"].as_str().map(String::from),
        audio: v["audio"].as_bool().unwrap_or(false),
    }
}

/// Adds `name` with `role` to the config's storage; the password is "<name>'s long
/// password".
pub fn add_user(cfg: &std::path::Path, name: &str, role: &str) {
    let (ok, _, err) = vigil_config(
        cfg,
        &["user", "add", name, "--role", role],
        &format!("{name}'s long password\n"),
    );
    assert!(ok, "{err}");
}

/// Opens the daemon's page at `base`, which sends the browser to the login form, and
/// logs in as `name` (see [`add_user`]) with the form.
pub fn log_in(b: &mut Browser, base: &str, name: &str) {
    b.call(
        "Page.navigate",
        serde_json::json!({ "url": format!("{base}/") }),
    );
    b.wait("!!document.getElementById('password')", "the login page");
    b.eval(&format!(
        "document.getElementById('user').value = {name:?}; \
         document.getElementById('password').value = {:?}; \
         document.querySelector('button[type=submit]').click(); true",
        format!("{name}'s long password")
    ));
}
