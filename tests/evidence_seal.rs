//! The ONVIF Export File Format seal (`evidence::eff`) on a real MP4, checked by a second
//! implementation: this test finds the signature box with its own box walk, and openssl
//! verifies the RSASSA-PSS signature (SHA-256, salt 20) over the file with the signature
//! zeroed, with the public key of the embedded certificate; ffprobe still plays the file
//! with every frame. One byte changed anywhere, or bytes appended, and verification fails.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use vigil::evidence::{eff, keys};

/// (offset, length) of the payload of the first box of type `kind` under the path
/// `meta/ipro/sinf/schi/<kind>` of the last top-level box, by a walk of its own.
fn find_in_seal(file: &[u8], kind: &[u8; 4]) -> (usize, usize) {
    let be32 = |b: &[u8], i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
    let mut at = 0;
    let mut last = 0;
    while at < file.len() {
        last = at;
        at += be32(file, at);
    }
    assert_eq!(&file[last + 4..last + 8], b"meta");
    // Walk a box body's children for `want`: (payload offset, payload length).
    let walk = |start: usize, end: usize, want: &[u8; 4]| {
        let mut i = start;
        while i < end {
            let size = be32(file, i);
            if &file[i + 4..i + 8] == want {
                return (i + 8, size - 8);
            }
            i += size;
        }
        panic!("no {}", String::from_utf8_lossy(want));
    };
    let meta_end = last + be32(file, last);
    let (ipro, n) = walk(last + 12, meta_end, b"ipro");
    let (sinf, n) = walk(ipro + 6, ipro + n, b"sinf");
    let (schi, n) = walk(sinf, sinf + n, b"schi");
    walk(schi, schi + n, kind)
}

fn openssl_verifies(file: &Path, t: &TestDir) -> bool {
    let bytes = std::fs::read(file).unwrap();
    let (sig_at, sig_len) = find_in_seal(&bytes, b"sibo");
    let (cert_at, cert_len) = find_in_seal(&bytes, b"cert");
    let mut zeroed = bytes.clone();
    zeroed[sig_at..sig_at + sig_len].fill(0);
    std::fs::write(t.join("zeroed.mp4"), &zeroed).unwrap();
    std::fs::write(t.join("sig.bin"), &bytes[sig_at..sig_at + sig_len]).unwrap();
    std::fs::write(t.join("cert.der"), &bytes[cert_at..cert_at + cert_len]).unwrap();
    let pubkey = Command::new("openssl")
        .args([
            "x509",
            "-inform",
            "DER",
            "-in",
            t.join("cert.der").to_str().unwrap(),
            "-pubkey",
            "-noout",
        ])
        .output()
        .unwrap();
    assert!(pubkey.status.success());
    std::fs::write(t.join("pub.pem"), &pubkey.stdout).unwrap();
    let out = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:20",
        ])
        .args(["-sigopt", "rsa_mgf1_md:sha256"])
        .args(["-verify", t.join("pub.pem").to_str().unwrap()])
        .args(["-signature", t.join("sig.bin").to_str().unwrap()])
        .arg(t.join("zeroed.mp4"))
        .output()
        .unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

fn frames(file: &Path) -> u64 {
    ffprobe(file).0
}

#[test]
fn sealed_mp4_verifies_with_openssl_and_still_plays() {
    let t = TestDir::new();
    let k = keys::init(&t.join("keys"), "ACME Depot", "nvr1", 2048).unwrap();
    let file = t.join("export.mp4");
    std::fs::copy(fixture("motion/crossing.mp4"), &file).unwrap();
    let before = frames(&file);
    let info = eff::SealInfo {
        unit_name: "nvr1".into(),
        unit_url: "https://nvr1.example:8443/".into(),
        time_us: 1_796_000_000_000_000,
        operator: "ivan (investigator)".into(),
        tracks: vec![eff::TrackSource {
            track_id: 1,
            name: "loading-bay".into(),
            url: "rtsp://10.0.0.7/stream1".into(),
            origin_us: 1_795_999_000_000_123,
        }],
        user_info: "case 7 (PD-2026-118)".into(),
    };
    eff::seal(&file, &info, &k.key, &k.recorder).unwrap();

    // Vigil's verifier, and what the seal says.
    let v = eff::verify(&file).unwrap();
    assert_eq!(keys::fingerprint(&v.cert), keys::fingerprint(&k.recorder));
    assert_eq!(v.operator, "ivan (investigator)");
    assert_eq!(v.time_us, 1_796_000_000_000_000);
    assert_eq!(v.user_info, "case 7 (PD-2026-118)");
    assert_eq!(v.origins, vec![(1, 1_795_999_000_000_123)]);
    // openssl's, over the bytes the format says are signed.
    assert!(
        openssl_verifies(&file, &t),
        "openssl does not verify the seal"
    );
    // Still an MP4 every player reads, every frame there.
    assert_eq!(frames(&file), before);

    // One byte changed in the media: both refuse it.
    let bytes = std::fs::read(&file).unwrap();
    let mut bad = bytes.clone();
    bad[bytes.len() / 3] ^= 0x01;
    let changed = t.join("changed.mp4");
    std::fs::write(&changed, &bad).unwrap();
    assert!(matches!(
        eff::verify(&changed),
        Err(eff::SealError::BadSignature)
    ));
    assert!(!openssl_verifies(&changed, &t));
    // A byte in the seal's own text (the operator): refused.
    let pos = bytes.windows(4).position(|w| w == b"ivan").unwrap();
    let mut bad = bytes.clone();
    bad[pos] = b'e';
    std::fs::write(&changed, &bad).unwrap();
    assert!(matches!(
        eff::verify(&changed),
        Err(eff::SealError::BadSignature)
    ));
    // Bytes appended after the seal: no longer the last box.
    let mut bad = bytes.clone();
    bad.extend_from_slice(&[0, 0, 0, 8, b'f', b'r', b'e', b'e']);
    std::fs::write(&changed, &bad).unwrap();
    let e = eff::verify(&changed).unwrap_err();
    assert!(e.to_string().contains("not the seal's meta"), "{e}");
    // Never sealed.
    let e = eff::verify(&fixture("motion/crossing.mp4")).unwrap_err();
    assert!(matches!(e, eff::SealError::NotSealed(_)), "{e}");
}
