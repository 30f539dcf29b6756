//! Browser sessions, kept across daemon restarts so that a restart in the middle of an
//! incident does not log every operator out.
//!
//! A session id is 32 random bytes (hex) sent only in an HttpOnly, SameSite=Strict
//! cookie; sessions are keyed by the id's SHA-256, in memory and in the file, so neither
//! a memory dump nor the file hands out cookies. Each session has its own CSRF token,
//! required on every state-changing request (useless without the cookie). A session ends
//! after `idle` without use, after `max` in all, at logout, and as soon as its user is
//! deleted or changes password (the session remembers a fingerprint of the password
//! hash). Times are UTC µs passed in, so the rules are unit-tested without sleeping.
//!
//! The file (`sessions.json` beside `auth.json`, mode 0600): `{"version": 1,
//! "sessions": {"<sha256 of id, hex>": {user, password_fp, csrf, created_us,
//! last_used_us}}}`, replaced atomically (write, fsync, rename, fsync of the directory).
//! It is written at every login and logout (so a logout survives a crash) and when a
//! session's last use moved by more than [`SAVE_USE_EVERY_US`] since the last write (so
//! the idle limit after a restart is late by at most that). A damaged file is set aside
//! (`sessions.json.bad`) and everyone logs in again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    /// Fingerprint of the user's password hash when the session began.
    pub password_fp: String,
    pub csrf: String,
    /// UTC µs.
    created_us: i64,
    last_used_us: i64,
}

/// Why a session id was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    Unknown,
    Expired,
}

/// How far a session's last use may move before the file is written again, µs.
pub const SAVE_USE_EVERY_US: i64 = 60_000_000;

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    sessions: HashMap<String, Session>,
}

pub struct Sessions {
    idle: Duration,
    max: Duration,
    /// Sessions by id hash, and the last-use times as last written.
    map: Mutex<(HashMap<String, Session>, HashMap<String, i64>)>,
    path: Option<PathBuf>,
    /// A write failed: the file is behind (a logout in it may be missing). Written again
    /// at the next call, at most every [`RETRY_SAVE_US`].
    unsaved: Mutex<Option<i64>>,
}

/// How often a failed write of the sessions file is tried again, µs.
const RETRY_SAVE_US: i64 = 5_000_000;

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// A short fingerprint of a password hash (changes when the password does).
pub fn password_fp(hash: &str) -> String {
    key(hash)[..16].to_owned()
}

impl Sessions {
    /// Sessions in memory only.
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            idle,
            max,
            map: Mutex::new(Default::default()),
            path: None,
            unsaved: Mutex::new(None),
        }
    }

    /// Sessions kept in `path`: loads those still alive at `now_us`.
    pub fn open(path: PathBuf, idle: Duration, max: Duration, now_us: i64) -> Sessions {
        let mut s = Sessions::new(idle, max);
        match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice::<File>(&b) {
                Ok(f) if f.version == 1 => {
                    let alive: HashMap<String, Session> = (f.sessions.into_iter())
                        .filter(|(_, v)| !s.expired(v, now_us))
                        .collect();
                    let saved: HashMap<String, i64> = (alive.iter())
                        .map(|(k, v)| (k.clone(), v.last_used_us))
                        .collect();
                    *s.map.get_mut().unwrap() = (alive, saved);
                    tracing::info!("{} browser sessions restored", s.len());
                }
                Ok(f) => set_aside(&path, &format!("version {}", f.version)),
                Err(e) => set_aside(&path, &e.to_string()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot read {}: {e}; no sessions restored", path.display()),
        }
        s.path = Some(path);
        s
    }

    /// The longest a session can live (the cookie's Max-Age).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Starts a session; returns its id (for the cookie) and the session.
    pub fn create(&self, user: &str, password_hash: &str, now_us: i64) -> (String, Session) {
        let id = random_hex(32);
        let s = Session {
            user: user.into(),
            password_fp: password_fp(password_hash),
            csrf: random_hex(24),
            created_us: now_us,
            last_used_us: now_us,
        };
        let mut g = self.map.lock().unwrap();
        // Forget expired sessions now and then (here: on every login).
        g.0.retain(|_, s| !self.expired(s, now_us));
        g.0.insert(key(&id), s.clone());
        self.save(&mut g);
        (id, s)
    }

    fn expired(&self, s: &Session, now_us: i64) -> bool {
        let (idle, max) = (self.idle.as_micros() as i64, self.max.as_micros() as i64);
        now_us - s.last_used_us > idle || now_us - s.created_us > max
    }

    /// The session of a cookie's id, marking it used.
    pub fn get(&self, id: &str, now_us: i64) -> Result<Session, Rejected> {
        let mut g = self.map.lock().unwrap();
        self.retry_save(&mut g, now_us);
        let k = key(id);
        let Some(s) = g.0.get(&k) else {
            return Err(Rejected::Unknown);
        };
        if self.expired(s, now_us) {
            g.0.remove(&k);
            self.save(&mut g);
            return Err(Rejected::Expired);
        }
        let s = g.0.get_mut(&k).unwrap();
        s.last_used_us = s.last_used_us.max(now_us);
        let s = s.clone();
        if g.1
            .get(&k)
            .is_none_or(|t| s.last_used_us - t > SAVE_USE_EVERY_US)
        {
            self.save(&mut g);
        }
        Ok(s)
    }

    pub fn remove(&self, id: &str) -> bool {
        let mut g = self.map.lock().unwrap();
        let found = g.0.remove(&key(id)).is_some();
        if found {
            self.save(&mut g);
        }
        found
    }

    /// Ends every session of a user (deleted, or password changed).
    pub fn remove_user(&self, user: &str) {
        let mut g = self.map.lock().unwrap();
        let n = g.0.len();
        g.0.retain(|_, s| s.user != user);
        if g.0.len() != n {
            self.save(&mut g);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the file again if the last write failed (at most every [`RETRY_SAVE_US`]).
    fn retry_save(&self, g: &mut (HashMap<String, Session>, HashMap<String, i64>), now_us: i64) {
        let due = self
            .unsaved
            .lock()
            .unwrap()
            .is_some_and(|t| now_us - t >= RETRY_SAVE_US || now_us < t);
        if due {
            self.save(g);
        }
    }

    /// Writes the file (if any); a failure is logged, the sessions stay in memory and the
    /// write is tried again (see `unsaved`).
    fn save(&self, g: &mut (HashMap<String, Session>, HashMap<String, i64>)) {
        let Some(path) = &self.path else {
            return;
        };
        let f = File {
            version: 1,
            sessions: g.0.clone(),
        };
        match write_atomically(path, &serde_json::to_vec(&f).expect("sessions serialise")) {
            Ok(()) => {
                g.1 =
                    g.0.iter()
                        .map(|(k, v)| (k.clone(), v.last_used_us))
                        .collect()
            }
            Err(e) => tracing::warn!("cannot save sessions to {}: {e}", path.display()),
        }
    }
}

fn set_aside(path: &Path, why: &str) {
    let bad = path.with_extension("json.bad");
    tracing::warn!(
        "{} is damaged ({why}): moved to {}; everyone logs in again",
        path.display(),
        bad.display()
    );
    let _ = std::fs::rename(path, bad);
}

/// Replaces `path` with `bytes` (mode 0600): a temporary file, fsync, rename, fsync of
/// the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    // A leftover temporary file may have other permissions: start afresh.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_or_old_and_end_at_logout() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t0 = 1_800_000_000_000_000i64;
        let secs = |n: i64| n * 1_000_000;
        let (id, sess) = s.create("alice", "$argon2id$x", t0);
        assert_eq!(id.len(), 64);
        let got = s.get(&id, t0 + secs(50)).unwrap();
        assert_eq!((&got.user, &got.csrf), (&sess.user, &sess.csrf));
        // Used at 50 s, so still alive at 100 s; idle from 100 to 161 s ends it.
        assert!(s.get(&id, t0 + secs(100)).is_ok());
        assert_eq!(s.get(&id, t0 + secs(161)), Err(Rejected::Expired));
        assert_eq!(s.get(&id, t0 + secs(162)), Err(Rejected::Unknown));

        // Kept busy, it still ends at `max`.
        let (id, _) = s.create("alice", "$argon2id$x", t0);
        for m in 1..=5 {
            assert!(s.get(&id, t0 + secs(m * 55)).is_ok());
        }
        assert_eq!(s.get(&id, t0 + secs(301)), Err(Rejected::Expired));

        let (id, _) = s.create("bob", "h", t0);
        let (other, _) = s.create("bob", "h", t0);
        assert!(s.remove(&id));
        assert_eq!(s.get(&id, t0), Err(Rejected::Unknown));
        s.remove_user("bob");
        assert_eq!(s.get(&other, t0), Err(Rejected::Unknown));
        assert_ne!(password_fp("a"), password_fp("b"));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }

    /// Sessions survive a restart (the file holds only id hashes); logouts and expiry
    /// survive it too; a damaged file is set aside.
    #[test]
    fn sessions_survive_a_restart_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::storage::Layout::new(dir.path()).sessions();
        let (idle, max) = (Duration::from_secs(60), Duration::from_secs(3600));
        let t0 = 1_800_000_000_000_000i64;
        let s = Sessions::open(path.clone(), idle, max, t0);
        let (kept, sess) = s.create("alice", "h", t0);
        let (gone, _) = s.create("bob", "h", t0);
        let (idle_one, _) = s.create("carol", "h", t0);
        assert!(s.remove(&gone));
        // Used at 50 s: written (more than a minute? no: 50 s), then at 70 s: written.
        s.get(&kept, t0 + 50_000_000).unwrap();
        s.get(&kept, t0 + 70_000_000).unwrap();
        drop(s);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&kept) && !text.contains(&gone) && text.contains(&key(&kept)));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Restarted at 100 s: alice's session is back with its CSRF token; bob logged
        // out; carol's was idle for more than a minute.
        let s = Sessions::open(path.clone(), idle, max, t0 + 100_000_000);
        let got = s.get(&kept, t0 + 100_000_000).unwrap();
        assert_eq!(
            (got.user.as_str(), got.csrf.as_str()),
            ("alice", sess.csrf.as_str())
        );
        assert_eq!(s.get(&gone, t0 + 100_000_000), Err(Rejected::Unknown));
        assert_eq!(s.get(&idle_one, t0 + 100_000_000), Err(Rejected::Unknown));
        drop(s);
        std::fs::write(&path, b"{not json").unwrap();
        let s = Sessions::open(path.clone(), idle, max, t0);
        assert!(s.is_empty());
        assert!(path.with_extension("json.bad").exists());
    }
}
