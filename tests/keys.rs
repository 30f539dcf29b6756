//! `vigil keys`: the site CA and recorder certificate that sign evidence packages,
//! checked with openssl (an implementation other than Vigil's): the chain verifies, the
//! fingerprints printed are openssl's, private keys are 0600, a second `init` is
//! refused, a rotation keeps the old certificate verifiable, an organisation's CA made
//! by openssl imports and a mismatched key or a certificate from another CA does not.
//! Every change is in the audit log.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").args(args).output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn fingerprint(cert: &Path) -> String {
    let (ok, out) = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert!(ok, "{out}");
    out.trim().rsplit('=').next().unwrap().to_owned()
}

fn verify(ca: &Path, cert: &Path) -> (bool, String) {
    openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ])
}

fn config(t: &TestDir, name: &str) -> std::path::PathBuf {
    let storage = t.join(&format!("{name}-storage"));
    t.write(
        &format!("{name}.toml"),
        &format!("[storage]\ndir = {:?}\n", storage.to_str().unwrap()),
    )
}

#[test]
fn keys_init_rotate_and_import_verified_by_openssl() {
    let t = TestDir::new();
    let cfg = config(&t, "site");
    let dir = t.join("site-storage/signing.keys");
    let (ok, out, err) = vigil_config(
        &cfg,
        &[
            "keys",
            "init",
            "--site",
            "ACME Depot, North",
            "--recorder",
            "nvr1",
            "--bits",
            "2048",
        ],
        "",
    );
    assert!(ok, "{out}{err}");
    let (ca, rec) = (dir.join("site-ca.pem"), dir.join("recorder.pem"));
    let (ok, v) = verify(&ca, &rec);
    assert!(ok, "{v}");
    // The fingerprints printed for the acceptance record are openssl's.
    assert!(out.contains(&fingerprint(&ca)), "{out}");
    assert!(out.contains(&fingerprint(&rec)), "{out}");
    for key in ["site-ca.key.pem", "recorder.key.pem"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
        // The key is the certificate's (openssl: same public key).
        let (_, from_key) = openssl(&["pkey", "-in", dir.join(key).to_str().unwrap(), "-pubout"]);
        let cert = if key.starts_with("site") { &ca } else { &rec };
        let (_, from_cert) = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
        assert_eq!(from_key, from_cert, "{key}");
    }
    let (_, text) = openssl(&["x509", "-in", rec.to_str().unwrap(), "-noout", "-text"]);
    assert!(
        text.contains("Digital Signature, Non Repudiation") && text.contains("CA:FALSE"),
        "{text}"
    );
    assert!(!out.contains("PRIVATE KEY") && !err.contains("PRIVATE KEY"));

    // Set up once: a second init is refused and changes nothing.
    let (ok, _, err) = vigil_config(&cfg, &["keys", "init", "--site", "other"], "");
    assert!(!ok && err.contains("exists already"), "{err}");
    assert!(verify(&ca, &rec).0);

    // Rotation: a new recorder certificate under the same CA; the old one is kept and
    // still verifies. Another site's name is refused (the CA names its own).
    let old = fingerprint(&rec);
    let (ok, _, err) = vigil_config(
        &cfg,
        &["keys", "rotate", "--site", "Other Org", "--bits", "2048"],
        "",
    );
    assert!(
        !ok && err.contains("rotate with the --site it was made with"),
        "{err}"
    );
    assert_eq!(fingerprint(&rec), old);
    let (ok, out, err) = vigil_config(
        &cfg,
        &[
            "keys",
            "rotate",
            "--site",
            "ACME Depot, North",
            "--recorder",
            "nvr1",
            "--bits",
            "2048",
        ],
        "",
    );
    assert!(ok, "{out}{err}");
    assert_ne!(fingerprint(&rec), old);
    assert!(verify(&ca, &rec).0);
    let retired: Vec<_> = std::fs::read_dir(dir.join("retired"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(retired.len(), 1);
    assert_eq!(fingerprint(&retired[0]), old);
    assert!(verify(&ca, &retired[0]).0);
    let (ok, shown, _) = vigil_config(&cfg, &["keys", "show"], "");
    assert!(ok && shown.contains(&fingerprint(&rec)), "{shown}");

    // An organisation's CA made by openssl, and a recorder certificate it issued.
    let org = t.join("org");
    std::fs::create_dir_all(&org).unwrap();
    let p = |f: &str| org.join(f).to_str().unwrap().to_owned();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "30",
            "-subj",
            "/O=Org/CN=Org CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("rec.key"),
            "-out",
            &p("rec.csr"),
            "-subj",
            "/O=Org/CN=nvr2",
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &p("rec.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("rec.pem"),
            "-days",
            "30",
            "-sha256",
        ],
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &p("other.key"),
            "-out",
            &p("other.pem"),
            "-days",
            "30",
            "-subj",
            "/O=Org/CN=Org CA",
        ],
    ] {
        let (ok, out) = openssl(&args);
        assert!(ok, "{args:?}: {out}");
    }
    let org_cfg = config(&t, "org");
    let import = |ca: &str, cert: &str, key: &str| {
        vigil_config(
            &org_cfg,
            &[
                "keys",
                "import",
                "--ca",
                &p(ca),
                "--cert",
                &p(cert),
                "--key",
                &p(key),
            ],
            "",
        )
    };
    // A key that is not the certificate's; a certificate from another CA of the same
    // name (its signature does not verify): refused, nothing written.
    let (ok, _, err) = import("ca.pem", "rec.pem", "other.key");
    assert!(
        !ok && err.contains("the private key is not this certificate's"),
        "{err}"
    );
    let (ok, _, err) = import("other.pem", "rec.pem", "rec.key");
    assert!(!ok && err.contains("not issued by the site CA"), "{err}");
    assert!(!t.join("org-storage/signing.keys/recorder.pem").exists());
    let (ok, out, err) = import("ca.pem", "rec.pem", "rec.key");
    assert!(ok, "{out}{err}");
    assert!(out.contains(&fingerprint(&org.join("rec.pem"))), "{out}");
    let imported = t.join("org-storage/signing.keys");
    assert!(
        !imported.join("site-ca.key.pem").exists(),
        "the organisation keeps its CA key"
    );
    // Without the CA's key, rotation says what to do instead.
    let (ok, _, err) = vigil_config(&org_cfg, &["keys", "rotate", "--site", "Org"], "");
    assert!(!ok && err.contains("have the organisation issue"), "{err}");

    // Every change is on record, with the fingerprints.
    let audit = std::fs::read_to_string(t.join("site-storage/audit.log")).unwrap();
    for action in ["keys.init", "keys.rotate"] {
        assert!(
            audit.contains(&format!("\"action\":\"{action}\"")),
            "{audit}"
        );
    }
    assert!(audit.contains(&fingerprint(&rec)), "{audit}");
    let audit = std::fs::read_to_string(t.join("org-storage/audit.log")).unwrap();
    assert!(audit.contains("\"action\":\"keys.import\""), "{audit}");
}
