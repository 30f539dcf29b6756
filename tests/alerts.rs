//! Alerts to integrations, from the ground-truth crossing clip looped by a real RTSP
//! server: MQTT against a real broker (Debian's mosquitto, started by the test on
//! 127.0.0.1): availability (online, then offline on shutdown and as the last will after
//! SIGKILL), retained motion ON/OFF per camera and per zone, and event JSON; and a webhook
//! receiver (a small HTTP server in the test) that fails the first delivery, checks the
//! retry and every HMAC-SHA256 signature.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;
use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};

/// One request a webhook receiver got: (headers, lower-case names; body).
type Hook = (Vec<(String, String)>, Vec<u8>);

/// A webhook receiver on 127.0.0.1: answers 500 to the first request and 200 after;
/// sends each request's (headers, body) on the channel.
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<Hook>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut conn) = conn else { break };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(": ") {
                    headers.push((k.to_ascii_lowercase(), v.to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if tx.send((headers, body)).is_err() {
                break;
            }
        }
    });
    (port, rx)
}

fn broker(t: &TestDir) -> (Proc, u16) {
    let port = free_port();
    let conf = t.write(
        "mosquitto.conf",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    );
    let mut cmd = Command::new("mosquitto");
    cmd.arg("-c").arg(&conf);
    let p = spawn_cmd(cmd, &t.join("mosquitto.log"));
    wait_for(Duration::from_secs(10), "mosquitto listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (p, port)
}

/// `mosquitto_sub` on `vigil/#`: lines of "retained-flag topic payload" (the flag is 1
/// only for stored retained messages delivered on subscribing, 0 for live ones).
fn subscribe(t: &TestDir, port: u16, name: &str, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "vigil/#"])
        .args(["-F", "%r %t %p"])
        .args(extra);
    spawn_cmd(cmd, &t.join(name))
}

#[test]
fn alerts_reach_mosquitto_and_webhooks() {
    let t = TestDir::new();
    let (_broker, mqtt_port) = broker(&t);
    let sub = subscribe(&t, mqtt_port, "sub.log", &[]);
    let (hook_port, hooks) = webhook_receiver();
    let clip = fixture("motion/crossing.mp4");
    let (_cam, port) = fake_camera(
        &["x"],
        0,
        &["--file", clip.to_str().unwrap()],
        &t.join("cam.log"),
    );
    let cfg = fixture_camera_config(
        &t,
        &format!("rtsp://127.0.0.1:{port}/x"),
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\n\
             [[webhooks]]\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nsecret_env = \"HOOK_SECRET\"\n"
        ),
        "",
    );
    // (The [mqtt] table sits inside the storage part of the template: move it out.)
    let text = std::fs::read_to_string(&cfg).unwrap();
    let (storage, rest) = text.split_once("[mqtt]").unwrap();
    let (mqtt, rest) = rest.split_once("[server]").unwrap();
    std::fs::write(&cfg, format!("{storage}[server]{rest}\n[mqtt]{mqtt}")).unwrap();
    // Without its secret the daemon refuses to start, naming the variable.
    let o = Command::new(VIGIL)
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env_remove("HOOK_SECRET")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("HOOK_SECRET (secret_env) is not set"));
    let secret = "s3cret-hook";
    let d = daemon_env(&cfg, &t.join("daemon.log"), &[("HOOK_SECRET", secret)]);
    let expect = |want: &str| sub.wait_line(want, Duration::from_secs(40));
    expect(" vigil/available online");
    // The first crossing: camera and both zones ON, then OFF; the events topic carries
    // the start and end alerts as JSON.
    expect(" vigil/fixture/motion ON");
    let start = expect(" vigil/events ");
    let v: serde_json::Value = serde_json::from_str(start.splitn(3, ' ').nth(2).unwrap()).unwrap();
    assert_eq!(v["kind"], "start");
    assert_eq!(v["camera"], "fixture");
    let id = v["event_id"].as_u64().unwrap();
    expect(" vigil/fixture/left/motion ON");
    expect(" vigil/fixture/right/motion ON");
    expect(" vigil/fixture/left/motion OFF");
    expect(" vigil/fixture/right/motion OFF");
    expect(" vigil/fixture/motion OFF");
    let end = expect(" vigil/events ");
    let v: serde_json::Value = serde_json::from_str(end.splitn(3, ' ').nth(2).unwrap()).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["event_id"].as_u64()),
        (Some("end"), Some(id))
    );
    // Webhooks: the same alerts, in order, each signed; the first delivery failed (500)
    // and was retried.
    let mut got: Vec<serde_json::Value> = Vec::new();
    while got.len() < 7 {
        let (headers, body) = hooks
            .recv_timeout(Duration::from_secs(20))
            .expect("webhook");
        let h = |k: &str| headers.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(h("content-type"), "application/json");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{}.", h("x-vigil-timestamp")).as_bytes());
        mac.update(&body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            h("x-vigil-signature"),
            format!("sha256={hex}"),
            "bad signature"
        );
        got.push(serde_json::from_slice(&body).unwrap());
    }
    assert_eq!(got[0], got[1], "the failed first delivery is retried");
    let kinds: Vec<(String, Option<String>)> = got[1..]
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().into(),
                a["zone"].as_str().map(Into::into),
            )
        })
        .collect();
    let k = |kind: &str, z: Option<&str>| (kind.to_string(), z.map(str::to_owned));
    assert_eq!(
        kinds,
        vec![
            k("start", None),
            k("start", Some("left")),
            k("start", Some("right")),
            k("end", Some("left")),
            k("end", Some("right")),
            k("end", None)
        ]
    );
    assert!(got[1..].iter().all(|a| a["event_id"] == id));
    // A clean stop says offline.
    assert!(d.stop(Duration::from_secs(20)).success());
    expect(" vigil/available offline");
    // Retained: a new subscriber gets the last states at once.
    let late = subscribe(&t, mqtt_port, "late.log", &["-W", "5"]);
    late.wait_line("1 vigil/available offline", Duration::from_secs(5));
    late.wait_line("1 vigil/fixture/motion OFF", Duration::from_secs(5));

    // SIGKILL: the broker publishes the last will.
    let d = daemon_env(&cfg, &t.join("daemon2.log"), &[("HOOK_SECRET", secret)]);
    expect(" vigil/available online");
    d.kill9();
    expect(" vigil/available offline");
}
