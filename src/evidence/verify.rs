//! Verifying a `vigil-evidence/1` package offline ([`super::package`] writes it), with
//! nothing but the package's own files: no recorder, config or network.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::keys::fingerprint;
use super::package::{sha256_file, walk};
use super::{cms, eff};

/// What [`verify`] found: the checks that passed, and each problem with its file.
#[derive(Debug, Default)]
pub struct Verification {
    pub passed: Vec<String>,
    /// `(file, reason)`.
    pub problems: Vec<(String, String)>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
    fn bad(&mut self, file: &str, why: impl Into<String>) {
        self.problems.push((file.to_owned(), why.into()));
    }
}

/// Verifies the package in `dir` offline, with nothing but its own files: every hash in
/// `SHA256SUMS` (and no file missing from it), the manifest's CMS signature and its
/// signer under `certs/site-ca.pem`, each media file's seal (signer the same recorder
/// certificate), its hash and size as the manifest lists them, its media times against
/// the manifest (the seal's media origin), and the custody chain (hashes, signatures by
/// a certificate under the site CA, the first record the manifest's head).
pub fn verify(dir: &Path) -> Verification {
    let mut v = Verification::default();
    let read = |rel: &str| std::fs::read(dir.join(rel));
    // 1. SHA256SUMS.
    let sums = match std::fs::read_to_string(dir.join("SHA256SUMS")) {
        Ok(s) => s,
        Err(e) => {
            v.bad("SHA256SUMS", format!("cannot be read: {e}"));
            String::new()
        }
    };
    let mut listed = std::collections::BTreeSet::new();
    for (i, line) in sums.lines().enumerate() {
        let Some((sha, name)) = line.split_once("  ") else {
            v.bad("SHA256SUMS", format!("line {} is not `HASH  FILE`", i + 1));
            continue;
        };
        listed.insert(name.to_owned());
        match sha256_file(&dir.join(name)) {
            Ok((got, _)) if got == sha => {}
            Ok((got, _)) => v.bad(
                name,
                format!("SHA-256 {got} differs from SHA256SUMS ({sha}): the file changed"),
            ),
            Err(_) => v.bad(name, "listed in SHA256SUMS but missing"),
        }
    }
    let mut present = Vec::new();
    let _ = walk(dir, dir, &mut present);
    for f in present {
        if f != "SHA256SUMS"
            && f != "SHA256SUMS.p7s"
            && f != "custody.jsonl"
            && !listed.contains(&f)
        {
            v.bad(&f, "not listed in SHA256SUMS: added after the export");
        }
    }
    if v.problems.is_empty() && !sums.is_empty() {
        v.passed.push(format!("SHA256SUMS: {} files", listed.len()));
    }
    // 2. The certificates and the manifest's signature.
    let ca = match super::keys::read_cert(&dir.join("certs/site-ca.pem")) {
        Ok(c) => {
            // What the package's trust rests on: to be compared with the site's
            // acceptance record (a forged CA can copy the name, not this).
            v.passed.push(format!(
                "site CA {} has SHA-256 fingerprint {}: compare it with the site's acceptance record",
                c.tbs_certificate.subject,
                fingerprint(&c)
            ));
            Some(c)
        }
        Err(e) => {
            // (Once: SHA256SUMS may have named it missing already.)
            if !v.problems.iter().any(|(f, _)| f == "certs/site-ca.pem") {
                v.bad("certs/site-ca.pem", e.to_string());
            }
            None
        }
    };
    let manifest_bytes = read("case.json").unwrap_or_default();
    let signer = match (read("case.json.p7s"), &ca) {
        (Ok(p7s), Some(ca)) => match cms::verify_detached(&p7s, &manifest_bytes) {
            Ok(cert) => match super::keys::check_issued(&cert, ca, Path::new("case.json.p7s")) {
                Ok(()) => {
                    v.passed.push(format!(
                        "case.json signed by {} (SHA-256 {})",
                        cert.tbs_certificate.subject,
                        fingerprint(&cert)
                    ));
                    Some(cert)
                }
                Err(_) => {
                    v.bad(
                        "case.json.p7s",
                        "signed by a certificate the site CA did not issue",
                    );
                    None
                }
            },
            Err(e) => {
                v.bad("case.json.p7s", e.to_string());
                None
            }
        },
        (Err(e), _) => {
            v.bad("case.json.p7s", format!("cannot be read: {e}"));
            None
        }
        (Ok(_), None) => {
            v.bad(
                "case.json.p7s",
                "cannot be checked without certs/site-ca.pem (nor can the media seals)",
            );
            None
        }
    };
    // The signature of SHA256SUMS: the same signer, under the same CA.
    match (read("SHA256SUMS.p7s"), &ca) {
        (Ok(p7s), Some(ca)) => match cms::verify_detached(&p7s, sums.as_bytes()) {
            Ok(cert)
                if super::keys::check_issued(&cert, ca, Path::new("SHA256SUMS.p7s")).is_ok() =>
            {
                v.passed.push("SHA256SUMS signed under the site CA".into());
            }
            Ok(_) => v.bad(
                "SHA256SUMS.p7s",
                "signed by a certificate the site CA did not issue",
            ),
            Err(e) => v.bad("SHA256SUMS.p7s", e.to_string()),
        },
        (Err(e), _) => v.bad("SHA256SUMS.p7s", format!("cannot be read: {e}")),
        _ => {}
    }
    let manifest: serde_json::Value = match serde_json::from_slice(&manifest_bytes) {
        Ok(m) => m,
        Err(e) => {
            v.bad("case.json", format!("not JSON: {e}"));
            return v;
        }
    };
    // 3. Each media file: listed hash and size, seal, times.
    let before_media = v.problems.len();
    for f in manifest["files"].as_array().into_iter().flatten() {
        let rel = f["path"].as_str().unwrap_or("");
        let path = dir.join(rel);
        match sha256_file(&path) {
            Ok((sha, bytes)) => {
                if f["sha256"] != sha.as_str() {
                    v.bad(rel, "SHA-256 differs from the manifest");
                }
                if f["bytes"].as_u64() != Some(bytes) {
                    v.bad(
                        rel,
                        format!("{bytes} bytes, the manifest says {}", f["bytes"]),
                    );
                }
            }
            Err(_) => {
                v.bad(rel, "listed in the manifest but missing");
                continue;
            }
        }
        match eff::verify(&path) {
            Ok(s) => {
                if signer
                    .as_ref()
                    .is_some_and(|c| fingerprint(c) != fingerprint(&s.cert))
                {
                    v.bad(
                        rel,
                        "sealed by another certificate than the manifest's signer",
                    );
                }
                if let Some(ca) = &ca
                    && super::keys::check_issued(&s.cert, ca, &path).is_err()
                {
                    v.bad(rel, "sealed by a certificate the site CA did not issue");
                }
                // The seal's media origin is the first sample's time; the manifest's
                // first frame is at or after it, within the clip.
                let first = f["actual"]["start"]
                    .as_str()
                    .and_then(|t| crate::base::time::parse_rfc3339(t).ok());
                match (s.origins.first(), first) {
                    (Some(&(_, origin)), Some(first))
                        if origin <= first && first - origin < 60_000_000 => {}
                    _ => v.bad(
                        rel,
                        "the seal's media times do not match the manifest's first frame",
                    ),
                }
            }
            Err(e) => v.bad(rel, format!("ONVIF seal: {e}")),
        }
    }
    let media_files = manifest["files"].as_array().map_or(0, Vec::len);
    if media_files > 0 && v.problems.len() == before_media && ca.is_some() {
        v.passed.push(format!(
            "{media_files} media files: seals verify, by the manifest's signer under the site CA"
        ));
    }
    // 4. The custody chain.
    match std::fs::read_to_string(dir.join("custody.jsonl")) {
        Ok(text) => {
            let mut prev = "0".repeat(64);
            let mut n = 0;
            let empty = text.trim().is_empty();
            if empty {
                v.bad(
                    "custody.jsonl",
                    "empty: its first record, the export that case.json names, is gone",
                );
            }
            let mut last_time = i64::MIN;
            if ca.is_none() {
                v.bad(
                    "custody.jsonl",
                    "its signatures cannot be checked without certs/site-ca.pem",
                );
            }
            for (i, line) in text.lines().enumerate().filter(|_| !empty) {
                let where_ = format!("custody.jsonl line {}", i + 1);
                let Ok(mut rec) = serde_json::from_str::<serde_json::Value>(line) else {
                    v.bad("custody.jsonl", format!("{where_} is not JSON"));
                    break;
                };
                let time = rec["time"].as_str().unwrap_or("");
                let us = crate::base::time::parse_rfc3339(time).unwrap_or(i64::MIN);
                if us < last_time {
                    v.bad(
                        "custody.jsonl",
                        format!("{where_}: its time {time} is before the record's before it"),
                    );
                }
                last_time = us;
                if rec["prev"] != prev.as_str() {
                    v.bad("custody.jsonl", format!("{where_}: does not follow the line before (removed, reordered or altered)"));
                }
                if i == 0
                    && manifest["custody_head"]
                        != hex::encode(Sha256::digest(line.as_bytes())).as_str()
                {
                    v.bad(
                        "custody.jsonl",
                        "the first record is not the one the manifest names",
                    );
                }
                let sig = rec.as_object_mut().and_then(|o| o.remove("signature"));
                let ok = (|| {
                    use der::Decode;
                    use rsa::signature::Verifier;
                    let sig = hex::decode(sig?.as_str()?).ok()?;
                    let body = serde_json_canonicalizer::to_vec(&rec).ok()?;
                    let key = x509_cert::Certificate::from_der(
                        &hex::decode(rec["signer_cert"].as_str()?).ok()?,
                    )
                    .ok()?;
                    if rec["signer_sha256"] != fingerprint(&key).as_str() {
                        return None;
                    }
                    super::keys::check_issued(&key, ca.as_ref()?, Path::new("custody.jsonl"))
                        .ok()?;
                    let public =
                        rsa::RsaPublicKey::try_from(der::referenced::OwnedToRef::owned_to_ref(
                            &key.tbs_certificate.subject_public_key_info,
                        ))
                        .ok()?;
                    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public)
                        .verify(
                            &body,
                            &rsa::pkcs1v15::Signature::try_from(sig.as_slice()).ok()?,
                        )
                        .ok()
                })();
                if ok.is_none() && ca.is_some() {
                    v.bad(
                        "custody.jsonl",
                        format!("{where_}: its signature does not verify"),
                    );
                }
                prev = hex::encode(Sha256::digest(line.as_bytes()));
                n += 1;
            }
            if !v.problems.iter().any(|(f, _)| f == "custody.jsonl") {
                // Records can only be appended, so one cut off the end leaves a valid
                // chain: the last record's hash is what a receipt (and the recorder's
                // audit log, which has each record) is compared with.
                v.passed.push(format!(
                    "custody chain: {n} records, the last with SHA-256 {prev} (compare with the \
                     last hand-over's receipt)"
                ));
            }
        }
        Err(e) => v.bad("custody.jsonl", format!("cannot be read: {e}")),
    }
    v
}
