//! The chain of custody of an evidence package (`custody.jsonl`): hash-chained records,
//! each signed with the recorder's key and carrying its certificate, appended one at a
//! time under a file lock. [`super::package`] writes the first (the export);
//! `vigil evidence custody` and downloads append; [`super::verify`] checks the chain.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::keys::{Keys, fingerprint};
use super::package::{PackageError, io};
use crate::base::time::rfc3339;

/// One signed custody record as a JSONL line: the record's canonical JSON with `prev`
/// (the previous line's SHA-256, 64 zeros for the first), `signer_sha256`,
/// `signer_cert` (hex DER) and `signature` (hex RSA PKCS #1 v1.5 SHA-256 over the canonical JSON without
/// `signature`).
pub fn custody_line(
    mut rec: serde_json::Value,
    prev: &str,
    keys: &Keys,
) -> Result<String, PackageError> {
    use der::Encode;
    use rsa::signature::{SignatureEncoding, Signer};
    rec["prev"] = prev.into();
    rec["signer_sha256"] = fingerprint(&keys.recorder).into();
    // The signer's certificate itself (hex DER): a record added on another recorder of
    // the site, or after a key rotation, verifies against the site CA alone.
    rec["signer_cert"] = hex::encode(
        keys.recorder
            .to_der()
            .map_err(|e| PackageError::Refused(e.to_string()))?,
    )
    .into();
    let body =
        serde_json_canonicalizer::to_vec(&rec).map_err(|e| PackageError::Refused(e.to_string()))?;
    let sig = rsa::pkcs1v15::SigningKey::<Sha256>::new(keys.key.clone()).sign(&body);
    rec["signature"] = hex::encode(sig.to_bytes()).into();
    serde_json_canonicalizer::to_string(&rec).map_err(|e| PackageError::Refused(e.to_string()))
}

/// A package's chain of custody held for writing: an exclusive lock (`flock`) on its
/// `custody.jsonl`, so that appends from the daemon (downloads) and from `vigil evidence
/// custody` are made one at a time, each after the last, and a copy taken meanwhile
/// (a download's ZIP) sees whole records. Released when dropped.
pub struct CustodyLock {
    file: std::fs::File,
    path: PathBuf,
}

impl CustodyLock {
    /// Waits for the lock on `dir`'s `custody.jsonl`. Errors: no such file (not a
    /// package).
    pub fn acquire(dir: &Path) -> Result<CustodyLock, PackageError> {
        let path = dir.join("custody.jsonl");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(CustodyLock { file, path })
    }

    /// Appends a record: `rec` (its `action`, `by` and whatever else it says) gets the
    /// next `seq` and `time` (now), is chained to the last record and signed
    /// ([`custody_line`]); the file is synced. Returns `seq` and the new line's SHA-256
    /// (hex). Errors: an empty chain (its first record, the export, is gone), a write.
    pub fn append(
        &mut self,
        mut rec: serde_json::Value,
        keys: &Keys,
    ) -> Result<(u64, String), PackageError> {
        // The time is taken under the lock, so that records are in time order too.
        let now_us = crate::base::time::now_us();
        use std::io::{Read, Seek, Write};
        let mut text = String::new();
        (self.file.rewind())
            .and_then(|()| self.file.read_to_string(&mut text))
            .map_err(io(&self.path))?;
        let last = text.lines().last().ok_or_else(|| {
            PackageError::Refused(format!(
                "{}: empty (its first record, the export, is gone)",
                self.path.display()
            ))
        })?;
        let seq = serde_json::from_str::<serde_json::Value>(last)
            .ok()
            .and_then(|v| v["seq"].as_u64())
            .unwrap_or(0)
            + 1;
        rec["seq"] = seq.into();
        rec["time"] = rfc3339(now_us).into();
        let line = custody_line(rec, &hex::encode(Sha256::digest(last.as_bytes())), keys)?;
        // (The file is opened for appending: the write goes to its end.)
        (self.file.write_all(format!("{line}\n").as_bytes()))
            .and_then(|()| self.file.sync_all())
            .map_err(io(&self.path))?;
        Ok((seq, hex::encode(Sha256::digest(line.as_bytes()))))
    }
}

/// [`CustodyLock::append`] under the lock, for one record.
pub fn append_custody(
    dir: &Path,
    rec: serde_json::Value,
    keys: &Keys,
) -> Result<(u64, String), PackageError> {
    CustodyLock::acquire(dir)?.append(rec, keys)
}
