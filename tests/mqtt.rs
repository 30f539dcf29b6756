//! MQTT alerts against a real broker (Debian's mosquitto, started by the test on
//! 127.0.0.1): availability (online, then offline on shutdown and as the last will after
//! SIGKILL), retained motion ON/OFF per camera and per zone, and event JSON, from the
//! ground-truth crossing clip looped by a real RTSP server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

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
fn alerts_reach_mosquitto() {
    let t = TestDir::new();
    let (_broker, mqtt_port) = broker(&t);
    let sub = subscribe(&t, mqtt_port, "sub.log", &[]);
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
        &format!("[mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\n"),
        "",
    );
    // (The [mqtt] table sits inside the storage part of the template: move it out.)
    let text = std::fs::read_to_string(&cfg).unwrap();
    let (storage, rest) = text.split_once("[mqtt]").unwrap();
    let (mqtt, rest) = rest.split_once("[server]").unwrap();
    std::fs::write(&cfg, format!("{storage}[server]{rest}\n[mqtt]{mqtt}")).unwrap();
    let (d, _base) = daemon(&cfg, &t.join("daemon.log"));
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
    // A clean stop says offline.
    assert!(d.stop(Duration::from_secs(20)).success());
    expect(" vigil/available offline");
    // Retained: a new subscriber gets the last states at once.
    let late = subscribe(&t, mqtt_port, "late.log", &["-W", "5"]);
    late.wait_line("1 vigil/available offline", Duration::from_secs(5));
    late.wait_line("1 vigil/fixture/motion OFF", Duration::from_secs(5));

    // SIGKILL: the broker publishes the last will.
    let (d, _) = daemon(&cfg, &t.join("daemon2.log"));
    expect(" vigil/available online");
    d.kill9();
    expect(" vigil/available offline");
}
