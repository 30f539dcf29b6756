//! Bad configs: each class is rejected by `vigil check-config` (exit 2) with
//! file:line:column and what is wrong; `vigil run` refuses them too.

mod common;

use common::*;

fn check(t: &TestDir, name: &str, text: &str) -> (i32, String) {
    let p = t.write(name, text);
    let out = std::process::Command::new(VIGIL)
        .args(["check-config", p.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

const CAM: &str = "[[cameras]]\nname = \"a\"\nurl = \"rtsp://127.0.0.1:8554/a\"\n";

/// Bad configs, one per class of mistake: (case, text, the line the error must name, words
/// it must contain). `{storage}` stands for a valid `[storage]` table, `{CAM}` for a
/// valid camera.
const BAD_CONFIGS: &[(&str, &str, usize, &str)] = &[
    (
        "syntax",
        "{storage}\n[[cameras]\n",
        4,
        "unclosed array table",
    ),
    (
        "unknown key",
        "{storage}colour = 1\n",
        3,
        "unknown field `colour`",
    ),
    (
        "unknown camera key",
        "{storage}{CAM}fps = 4\n",
        6,
        "unknown field `fps`",
    ),
    (
        "duplicate name",
        "{storage}{CAM}{CAM}",
        7,
        "duplicate camera name",
    ),
    (
        "bad name",
        "{storage}[[cameras]]\nname = \"Front Door\"\nurl = \"rtsp://h/\"\n",
        4,
        "[a-z0-9_-]",
    ),
    (
        "short polygon",
        "{storage}{CAM}[[cameras.zones]]\nname = \"z\"\npolygon = [[0.1, 0.1], [0.2, 0.2]]\n",
        8,
        "at least 3 points",
    ),
    (
        "flat polygon",
        "{storage}{CAM}[[cameras.zones]]\nname = \"z\"\npolygon = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]\n",
        8,
        "has no area",
    ),
    (
        "polygon crossing itself",
        "{storage}{CAM}[[cameras.zones]]\nname = \"z\"\npolygon = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]\n",
        8,
        "crosses itself (the edge from point 0 to 1 crosses the one from point 2 to 3)",
    ),
    (
        "outside 0..1",
        "{storage}{CAM}[[cameras.masks]]\npolygon = [[0.1, 0.1], [1.2, 0.2], [0.3, 0.9]]\n",
        7,
        "outside 0..1",
    ),
    (
        "bad url scheme",
        "{storage}[[cameras]]\nname = \"a\"\nurl = \"http://127.0.0.1/a\"\n",
        5,
        "scheme",
    ),
    (
        "bad url",
        "{storage}[[cameras]]\nname = \"a\"\nurl = \"rtsp://\"\n",
        5,
        "url",
    ),
    (
        "credentials in url",
        "{storage}[[cameras]]\nname = \"a\"\nurl = \"rtsp://admin:hunter2@cam/\"\n",
        5,
        "credentials in the URL",
    ),
    (
        "storage under a file",
        "[storage]\ndir = \"/etc/hostname/vigil\"\n",
        2,
        "Not a directory",
    ),
    (
        "unwritable storage",
        "[storage]\ndir = \"/proc/vigil-storage\"\n",
        2,
        "storage.dir",
    ),
    (
        "bad size",
        "{storage}max_bytes = \"lots\"\n",
        3,
        "max_bytes",
    ),
    (
        "non-loopback listen without TLS",
        "{storage}[server]\nlisten = \"0.0.0.0:8080\"\n",
        4,
        "beyond loopback the API needs TLS",
    ),
    (
        "TLS cert without key",
        "{storage}[server]\ntls_cert = \"cert.pem\"\n",
        4,
        "set both or neither",
    ),
    (
        "TLS files missing",
        "{storage}[server]\ntls_cert = \"nope.pem\"\ntls_key = \"nope.key\"\n",
        4,
        "server.tls_cert: cannot read",
    ),
    (
        "session idle",
        "{storage}[server]\nsession_idle_minutes = 0\n",
        4,
        "server.session_idle_minutes must be more than 0",
    ),
    (
        "login failures",
        "{storage}[server]\nlogin_max_failures = 1000\n",
        4,
        "server.login_max_failures must be 1..=100",
    ),
    (
        "bad transport",
        "{storage}{CAM}transport = \"sctp\"\n",
        6,
        "expected \"tcp\" or \"udp\"",
    ),
    (
        "camera timeout out of range",
        "{storage}{CAM}timeout_seconds = 0.5\n",
        6,
        "timeout_seconds must be from 1 to 300, not 0.5",
    ),
    (
        "audio not a boolean",
        "{storage}{CAM}audio = \"yes\"\n",
        6,
        "invalid type: string \"yes\", expected a boolean",
    ),
    ("missing storage", "{CAM}", 1, "missing field `storage`"),
    (
        "motion threshold",
        "{storage}[motion]\nthreshold = 300\n",
        4,
        "motion.threshold must be 1..=254",
    ),
    (
        "camera motion key",
        "{storage}{CAM}[cameras.motion]\nsensitivity = 3\n",
        7,
        "unknown field `sensitivity`",
    ),
    (
        "camera motion fraction",
        "{storage}{CAM}[cameras.motion]\nmin_area = 2.5\n",
        7,
        "motion.min_area must be a fraction",
    ),
    (
        "zone min_fraction",
        "{storage}{CAM}[[cameras.zones]]\nname = \"z\"\npolygon = [[0.1, 0.1], [0.2, 0.2], [0.1, 0.3]]\nmin_fraction = -1.0\n",
        9,
        "min_fraction must be a fraction",
    ),
    (
        "odd width",
        "{storage}[motion]\nwidth = 641\n",
        4,
        "motion.width must be even",
    ),
    (
        "mqtt url not mqtt://",
        "{storage}[mqtt]\nurl = \"tcp://broker:1883\"\n",
        4,
        "expected mqtt://host",
    ),
    (
        "mqtt credentials in url",
        "{storage}[mqtt]\nurl = \"mqtt://vigil:hunter2@broker\"\n",
        4,
        "credentials in the URL",
    ),
    (
        "mqtt wildcard prefix",
        "{storage}[mqtt]\nurl = \"mqtt://broker\"\ntopic_prefix = \"site/#\"\n",
        5,
        "without wildcards",
    ),
    (
        "webhook CA for http",
        "{storage}[[webhooks]]\nurl = \"http://example.com/h\"\nsecret_env = \"S\"\nca_file = \"ca.pem\"\n",
        6,
        "ca_file is for https URLs",
    ),
    (
        "schedule window",
        "{storage}[[schedules]]\nname = \"night\"\narmed = [\"Mon-Fry 18:00-08:00\"]\n",
        5,
        "schedule \"night\": \"Fry\" is not a day",
    ),
    (
        "schedule time zone",
        "{storage}[[schedules]]\nname = \"night\"\ntimezone = \"Mars/Base\"\narmed = []\n",
        5,
        "time zone \"Mars/Base\"",
    ),
    (
        "schedule armed and disarmed",
        "{storage}[[schedules]]\nname = \"night\"\narmed = []\ndisarmed = []\n",
        4,
        "set exactly one of armed or disarmed",
    ),
    (
        "unknown schedule",
        "{storage}{CAM}arm = \"nights\"\n",
        6,
        "no schedule named \"nights\"",
    ),
    (
        "webhook scheme",
        "{storage}[[webhooks]]\nurl = \"ftp://example.com/h\"\nsecret_env = \"S\"\n",
        4,
        "expected http(s)://host",
    ),
    (
        "webhook without secret",
        "{storage}[[webhooks]]\nurl = \"http://127.0.0.1/h\"\n",
        3,
        "missing field `secret_env`",
    ),
    (
        "metrics beyond loopback",
        "{storage}[metrics]\nlisten = \"0.0.0.0:9100\"\n",
        4,
        "only loopback",
    ),
    (
        "max event too short",
        "{storage}[motion]\nmax_event_seconds = 1\n",
        4,
        "max_event_seconds must be 10..=3600",
    ),
    (
        "mqtt unknown key",
        "{storage}[mqtt]\nurl = \"mqtt://broker\"\nqos = 2\n",
        5,
        "unknown field",
    ),
];

#[test]
fn each_bad_config_class_names_file_line_and_problem() {
    let t = TestDir::new();
    let dir = t.join("storage").display().to_string();
    let storage = format!("[storage]\ndir = {dir:?}\n");
    for (i, (case, text, line, words)) in BAD_CONFIGS.iter().enumerate() {
        let name = format!("bad{i}.toml");
        let text = text.replace("{storage}", &storage).replace("{CAM}", CAM);
        let (code, msg) = check(&t, &name, &text);
        assert_eq!(code, 2, "{case}: exit code; output: {msg}");
        let want = format!("{name}:{line}:");
        assert!(msg.contains(&want), "{case}: expected {want:?} in {msg:?}");
        assert!(msg.contains(words), "{case}: expected {words:?} in {msg:?}");
        assert!(!msg.contains("hunter2"), "{case}: secret echoed: {msg}");
    }
}

#[test]
fn shipped_configs_are_valid_and_run_refuses_bad_ones() {
    let root = env!("CARGO_MANIFEST_DIR");
    for f in ["config/demo.toml", "config/example.toml"] {
        let text = std::fs::read_to_string(format!("{root}/{f}")).unwrap();
        // The shipped storage dirs may not be writable here: point them at a temp dir.
        let t = TestDir::new();
        let text = text
            .replace(
                "\"/var/lib/vigil\"",
                &format!("{:?}", t.join("s").display().to_string()),
            )
            .replace(
                "\"/tmp/vigil-demo\"",
                &format!("{:?}", t.join("s").display().to_string()),
            );
        let (code, msg) = check(&t, "c.toml", &text);
        assert_eq!(code, 0, "{f}: {msg}");
    }
    let t = TestDir::new();
    let p = t.write("bad.toml", "[storage]\ndir = 7\n");
    let out = std::process::Command::new(VIGIL)
        .args(["run", "--config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2:"), "{err}");
}

/// An API address in use stops `vigil run` before anything starts: a clear error, no
/// index, no audit record, no recording.
#[test]
fn an_address_in_use_stops_the_daemon_before_it_starts() {
    let t = TestDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let text = std::fs::read_to_string(idle_camera_config(&t, ""))
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let cfg = t.write("taken.toml", &text);
    let out = std::process::Command::new(VIGIL)
        .args(["run", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    let storage = t.join("storage");
    assert!(!storage.join("audit.log").exists(), "the daemon started");
    assert!(!storage.join("index.sled").exists(), "the daemon started");
    drop(taken);
}
