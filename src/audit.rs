//! The audit log: who searched, viewed and exported what, append-only and hash-chained.
//!
//! `<storage>/audit.log` holds one JSON record per line: `seq` (0, 1, 2, ...), `time`,
//! `user`, `source` (client address, or `cli`), `action`, `params`, and `prev`, the
//! SHA-256 (hex) of the previous line exactly as written (all zeros for the first). Any
//! edit, removal or reordering of a line breaks the next line's `prev` or the `seq`
//! sequence; `<storage>/audit.head` holds the last line's seq and hash, so that cutting
//! lines off the end is found too. (Someone able to rewrite both files consistently can
//! only be caught by keeping the head hash elsewhere as well.)
//!
//! Appends take an exclusive `flock` on the log, so the daemon and a CLI command never
//! interleave. Secrets are never passed in: callers give query parameters and names.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub time: String,
    pub user: String,
    pub source: String,
    pub action: String,
    pub params: serde_json::Value,
    pub prev: String,
}

fn hex_sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The audit log of one storage dir.
#[derive(Clone, Debug)]
pub struct AuditLog {
    path: PathBuf,
    head: PathBuf,
}

/// Holds an exclusive flock while alive.
struct Locked(File);

impl Locked {
    fn new(f: File) -> std::io::Result<Locked> {
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Locked(f))
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

impl AuditLog {
    /// The audit log of the storage directory `layout`.
    pub fn new(layout: &crate::storage::Layout) -> AuditLog {
        AuditLog {
            path: layout.audit_log(),
            head: layout.audit_head(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record (durably: fsynced before returning).
    pub fn append(
        &self,
        user: &str,
        source: &str,
        action: &str,
        params: serde_json::Value,
    ) -> std::io::Result<u64> {
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)?;
        let mut lock = Locked::new(f)?;
        // Chain onto what the head says was written last, not onto whatever the last line
        // now is: a last line altered since then stays detectable after this append.
        let head = std::fs::read_to_string(&self.head).ok().and_then(|h| {
            let (s, hash) = h.trim().split_once(' ')?;
            Some((s.parse::<u64>().ok()? + 1, hash.to_owned()))
        });
        let (seq, prev) = match (head, last_line(&mut lock.0)?) {
            (Some(h), _) => h,
            (None, None) => (0, GENESIS.to_string()),
            (None, Some(line)) => {
                let seq = serde_json::from_str::<Record>(&line)
                    .map(|r| r.seq + 1)
                    // A damaged last line: keep chaining after it; `verify` reports it.
                    .unwrap_or(0);
                (seq, hex_sha256(line.as_bytes()))
            }
        };
        let rec = Record {
            seq,
            time: crate::base::time::rfc3339(crate::base::time::now_us()),
            user: user.to_owned(),
            source: source.to_owned(),
            action: action.to_owned(),
            params,
            prev,
        };
        let line = serde_json::to_string(&rec)?;
        lock.0.write_all(format!("{line}\n").as_bytes())?;
        lock.0.sync_data()?;
        let tmp = self.head.with_extension("head.tmp");
        std::fs::write(&tmp, format!("{seq} {}\n", hex_sha256(line.as_bytes())))?;
        std::fs::rename(&tmp, &self.head)?;
        Ok(seq)
    }

    /// Records, oldest first (unparseable lines are skipped).
    pub fn records(&self) -> std::io::Result<Vec<Record>> {
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect())
    }

    /// Checks the chain; returns the number of records and every problem found, each
    /// naming the line (1-based) where the chain breaks.
    pub fn verify(&self) -> std::io::Result<(u64, Vec<String>)> {
        let mut problems = Vec::new();
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.head.exists() {
                    problems.push("audit.log is missing but audit.head exists".into());
                }
                return Ok((0, problems));
            }
            Err(e) => return Err(e),
        };
        let mut prev_hash = GENESIS.to_string();
        let mut n = 0u64;
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line?;
            let lineno = i + 1;
            match serde_json::from_str::<Record>(&line) {
                Err(e) => problems.push(format!("line {lineno}: not a record ({e})")),
                Ok(r) => {
                    if r.seq != i as u64 {
                        problems.push(format!(
                            "line {lineno}: sequence number {} where {i} was expected (records removed or reordered)",
                            r.seq
                        ));
                    }
                    if r.prev != prev_hash {
                        problems.push(format!(
                            "line {lineno}: does not follow line {} (that record was altered, removed or reordered)",
                            lineno.saturating_sub(1)
                        ));
                    }
                }
            }
            prev_hash = hex_sha256(line.as_bytes());
            n += 1;
        }
        match std::fs::read_to_string(&self.head) {
            Ok(h) => {
                let want = format!("{} {prev_hash}", n.saturating_sub(1));
                if n > 0 && h.trim() != want {
                    problems.push(format!(
                        "the last record (line {n}) is not the one audit.head names ({}): records were removed from the end or the last one was altered",
                        h.trim()
                    ));
                }
            }
            Err(_) if n > 0 => problems.push("audit.head is missing".into()),
            Err(_) => {}
        }
        Ok((n, problems))
    }
}

/// The last line of a file (without its newline), reading backwards from the end.
fn last_line(f: &mut File) -> std::io::Result<Option<String>> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let mut buf = Vec::new();
    let mut pos = len;
    loop {
        let step = pos.min(4096);
        pos -= step;
        let mut chunk = vec![0u8; step as usize];
        f.seek(SeekFrom::Start(pos))?;
        std::io::Read::read_exact(f, &mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if let Some(i) = body.iter().rposition(|&c| c == b'\n') {
            return Ok(Some(String::from_utf8_lossy(&body[i + 1..]).into_owned()));
        }
        if pos == 0 {
            return Ok(Some(String::from_utf8_lossy(body).into_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: usize) -> (tempfile::TempDir, AuditLog) {
        let d = tempfile::tempdir().unwrap();
        let a = AuditLog::new(&crate::storage::Layout::new(d.path()));
        for i in 0..n {
            a.append(
                "alice",
                "127.0.0.1:5000",
                "clip.view",
                serde_json::json!({ "i": i }),
            )
            .unwrap();
        }
        (d, a)
    }

    fn lines(a: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(a.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(a: &AuditLog, l: &[String]) {
        std::fs::write(
            a.path(),
            l.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    }

    #[test]
    fn intact_chain_verifies() {
        let (_d, a) = log_with(5);
        assert_eq!(a.verify().unwrap(), (5, vec![]));
        let r = a.records().unwrap();
        assert_eq!(r.len(), 5);
        assert_eq!(r[0].prev, GENESIS);
        assert_eq!(r[4].seq, 4);
        assert_eq!(r[2].params["i"], 2);
    }

    #[test]
    fn edits_removals_reorders_and_truncation_are_found() {
        // An edited record: the next line no longer follows it.
        let (_d, a) = log_with(5);
        let mut l = lines(&a);
        l[2] = l[2].replace("alice", "mallory");
        write_lines(&a, &l);
        let (_, p) = a.verify().unwrap();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("line 4: does not follow line 3"), "{p:?}");

        // A removed record.
        let (_d, a) = log_with(5);
        let mut l = lines(&a);
        l.remove(1);
        write_lines(&a, &l);
        let (_, p) = a.verify().unwrap();
        assert!(
            p.iter().any(|p| p.starts_with("line 2: sequence number 2")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("line 2: does not follow line 1")),
            "{p:?}"
        );

        // Two records swapped.
        let (_d, a) = log_with(5);
        let mut l = lines(&a);
        l.swap(1, 2);
        write_lines(&a, &l);
        let (_, p) = a.verify().unwrap();
        assert!(p.iter().any(|p| p.starts_with("line 2:")), "{p:?}");

        // The last record removed, or altered: only the head shows it.
        let (_d, a) = log_with(5);
        let mut l = lines(&a);
        l.pop();
        write_lines(&a, &l);
        let (_, p) = a.verify().unwrap();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("audit.head"), "{p:?}");
        let (_d, a) = log_with(3);
        let mut l = lines(&a);
        l[2] = l[2].replace("clip.view", "clip.vieW");
        write_lines(&a, &l);
        assert_eq!(a.verify().unwrap().1.len(), 1);

        // Appending after tampering keeps chaining (and the break stays visible).
        a.append("bob", "cli", "clip.export", serde_json::json!({}))
            .unwrap();
        let (n, p) = a.verify().unwrap();
        assert_eq!(n, 4);
        assert!(!p.is_empty());
    }
}
