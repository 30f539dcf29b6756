//! HTTPS: the daemon serves its API over TLS (rustls) from a configured certificate and
//! key; `Secure` cookies; the CLI asks an HTTPS daemon trusting its certificate; webhooks
//! are delivered over https to a receiver with a private certificate (`ca_file`); plain
//! HTTP beyond loopback needs an explicit setting. Certificates come from openssl.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem).
fn self_signed(t: &TestDir, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        t.join(&format!("{name}.pem")),
        t.join(&format!("{name}.key")),
    );
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-subj", "/CN=vigil-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (cert, key)
}

/// A client trusting only `cert`.
fn client(cert: &std::path::Path) -> ureq::Agent {
    vigil::tls::agent(Some(cert), Some(Duration::from_secs(10))).unwrap()
}

#[test]
fn api_over_https_with_secure_cookies_and_the_cli() {
    let t = TestDir::new();
    let (cert, key) = self_signed(&t, "server");
    let storage = t.join("storage");
    let cfg = t.write(
        "vigil.toml",
        &config(&storage, &[], "").replace(
            "[server]\n",
            &format!("[server]\ntls_cert = {cert:?}\ntls_key = {key:?}\n"),
        ),
    );
    let d = TestDaemon::start(&cfg);
    let base = d.base.clone();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let https = client(&cert);
    let mut r = https.get(&format!("{base}/health")).call().unwrap();
    assert_eq!(r.body_mut().read_to_string().unwrap(), "ok\n");

    // Logging in sets a Secure, HttpOnly, SameSite=Strict cookie.
    let cli_ok = |args: &[&str], stdin: &str| {
        let (ok, out, err) = vigil_cli(args, stdin);
        assert!(ok, "{args:?}: {err}");
        out
    };
    let c = cfg.to_str().unwrap();
    cli_ok(
        &[
            "user",
            "add",
            "--config",
            c,
            "ines",
            "--role",
            "investigator",
        ],
        "ines long password\n",
    );
    let r = https
        .post(&format!("{base}/api/login"))
        .send_json(serde_json::json!({ "user": "ines", "password": "ines long password" }))
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let token = d.token.clone();
    let r = https
        .get(&format!("{base}/api/storage"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);

    // A client that does not trust the certificate is refused by TLS itself; plain
    // HTTP on the TLS port gets nothing usable.
    let public_roots = vigil::tls::agent(None, Some(Duration::from_secs(10))).unwrap();
    let e = public_roots
        .get(&format!("{base}/health"))
        .call()
        .unwrap_err();
    assert!(format!("{e}").to_lowercase().contains("certificate"), "{e}");
    let plain = base.replacen("https://", "http://", 1);
    assert!(
        lenient()
            .get(&format!("{plain}/health"))
            .call()
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );

    // `vigil events` asks the HTTPS daemon (the index is locked), trusting its certificate.
    let port = base.rsplit(':').next().unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let cfg2 = t.write("vigil-port.toml", &text);
    let o = Command::new(VIGIL)
        .args(["events", "--config", cfg2.to_str().unwrap()])
        .args([
            "--since",
            "2026-01-01T00:00:00Z",
            "--until",
            "2026-01-02T00:00:00Z",
        ])
        .env("VIGIL_TOKEN", &token)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    d.stop();
    let audit = std::fs::read_to_string(storage.join("audit.log")).unwrap();
    assert!(audit.contains("\"events.search\""), "{audit}");

    // A certificate that is not one is refused at start with a clear message.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let o = Command::new(VIGIL)
        .args(["run", "--config", c])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot use TLS certificate"), "{err}");
}

/// Plain HTTP beyond loopback is refused unless asked for explicitly (then the daemon
/// warns; not run here, since tests bind loopback only).
#[test]
fn plain_http_beyond_loopback_needs_an_explicit_setting() {
    let t = TestDir::new();
    let storage = t.join("storage");
    let base = config(&storage, &[], "").replace("127.0.0.1:0", "0.0.0.0:8080");
    let check = |text: &str| {
        let p = t.write("c.toml", text);
        Command::new(VIGIL)
            .args(["check-config", p.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = check(&base);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs TLS"));
    let o = check(&base.replace("[server]\n", "[server]\nallow_insecure_remote = true\n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (cert, key) = self_signed(&t, "s");
    let o = check(&base.replace(
        "[server]\n",
        &format!("[server]\ntls_cert = {cert:?}\ntls_key = {key:?}\n"),
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// An https webhook receiver (rustls, in this test) with a self-signed certificate,
/// trusted through `ca_file`: it gets the signed alert JSON. Returns its port and the
/// bodies it received.
fn https_receiver(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (u16, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    vigil::tls::install_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { break };
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut reader = BufReader::new(&mut tls);
            let mut sig = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if let Some(v) = line.trim_end().strip_prefix("X-Vigil-Signature:") {
                    sig = v.trim().to_owned();
                } else if let Some(v) = line.trim_end().strip_prefix("x-vigil-signature:") {
                    sig = v.trim().to_owned();
                }
            }
            let mut body = vec![0u8; len];
            // (A client that gave up in the handshake sent nothing.)
            if len == 0 || reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            tls.conn.send_close_notify();
            let _ = tls.flush();
            if tx.send((sig, body)).is_err() {
                break;
            }
        }
    });
    (port, rx)
}

#[test]
fn webhooks_over_https_with_a_private_certificate() {
    let t = TestDir::new();
    let (cert, key) = self_signed(&t, "hook");
    let (port, got) = https_receiver(&cert, &key);
    let url = format!("https://127.0.0.1:{port}/hook");
    let cfg = vigil::config::WebhookConfig {
        url: url.parse().unwrap(),
        secret_env: "UNUSED".into(),
        ca_file: Some(cert.clone()),
    };
    // The daemon's delivery path: its agent, signing and retries.
    let hub = vigil::alerts::hub();
    let (src, stop) = vigil::base::cancel::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agent = vigil::alerts::webhook::agent(&cfg).unwrap();
    let task = rt.spawn(vigil::alerts::webhook::run(
        cfg.clone(),
        agent,
        b"hook secret".to_vec(),
        hub.clone(),
        stop,
    ));
    // Let the task subscribe, then send an alert.
    std::thread::sleep(Duration::from_millis(200));
    let alert = vigil::alerts::Alert::new(
        vigil::alerts::AlertKind::Start,
        "front",
        Some("door"),
        42,
        vigil::base::time::now_us(),
        0.5,
    );
    hub.send(alert).unwrap();
    let (sig, body) = got.recv_timeout(Duration::from_secs(20)).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["camera"].as_str(), v["event_id"].as_u64()),
        (Some("front"), Some(42))
    );
    assert!(sig.starts_with("sha256="), "{sig:?}");
    src.cancel();
    rt.block_on(task).unwrap();

    // Without ca_file the receiver's self-signed certificate is not trusted.
    let untrusted = vigil::config::WebhookConfig {
        ca_file: None,
        ..cfg
    };
    let agent = vigil::alerts::webhook::agent(&untrusted).unwrap();
    let e = agent.post(&url).send("{}").unwrap_err();
    assert!(format!("{e}").to_lowercase().contains("certificate"), "{e}");
}
