//! Browser sessions: in memory, so a restart logs everyone out (acceptable for a
//! recorder's web page, and nothing to steal from disk).
//!
//! A session id is 32 random bytes (hex) sent only in an HttpOnly, SameSite=Strict
//! cookie; the map is keyed by its SHA-256 so a memory dump does not hand out cookies.
//! Each session has its own CSRF token, required on every state-changing request. A
//! session ends after `idle` without use, after `max` in all, at logout, and as soon as
//! its user is deleted or changes password (the session remembers a fingerprint of the
//! password hash). Time is passed in so the rules are unit-tested without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub user: String,
    /// Fingerprint of the user's password hash when the session began.
    pub password_fp: String,
    pub csrf: String,
    created: Instant,
    last_used: Instant,
}

/// Why a session id was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    Unknown,
    Expired,
}

pub struct Sessions {
    idle: Duration,
    max: Duration,
    map: Mutex<HashMap<String, Session>>,
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    super::hex(&b)
}

fn key(id: &str) -> String {
    super::hex(&Sha256::digest(id.as_bytes()))
}

/// A short fingerprint of a password hash (changes when the password does).
pub fn password_fp(hash: &str) -> String {
    key(hash)[..16].to_owned()
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            idle,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The longest a session can live (the cookie's Max-Age).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Starts a session; returns its id (for the cookie) and the session.
    pub fn create(&self, user: &str, password_hash: &str, now: Instant) -> (String, Session) {
        let id = random_hex(32);
        let s = Session {
            user: user.into(),
            password_fp: password_fp(password_hash),
            csrf: random_hex(24),
            created: now,
            last_used: now,
        };
        let mut map = self.map.lock().unwrap();
        // Forget expired sessions now and then (here: on every login).
        map.retain(|_, s| !self.expired(s, now));
        map.insert(key(&id), s.clone());
        (id, s)
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_used) > self.idle || now.duration_since(s.created) > self.max
    }

    /// The session of a cookie's id, marking it used.
    pub fn get(&self, id: &str, now: Instant) -> Result<Session, Rejected> {
        let mut map = self.map.lock().unwrap();
        let k = key(id);
        let Some(s) = map.get_mut(&k) else {
            return Err(Rejected::Unknown);
        };
        if self.expired(s, now) {
            map.remove(&k);
            return Err(Rejected::Expired);
        }
        s.last_used = now;
        Ok(s.clone())
    }

    pub fn remove(&self, id: &str) -> bool {
        self.map.lock().unwrap().remove(&key(id)).is_some()
    }

    /// Ends every session of a user (deleted, or password changed).
    pub fn remove_user(&self, user: &str) {
        self.map.lock().unwrap().retain(|_, s| s.user != user);
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
        let t0 = Instant::now();
        let (id, sess) = s.create("alice", "$argon2id$x", t0);
        assert_eq!(id.len(), 64);
        let got = s.get(&id, t0 + Duration::from_secs(50)).unwrap();
        assert_eq!((&got.user, &got.csrf), (&sess.user, &sess.csrf));
        // Used at 50 s, so still alive at 100 s; idle from 100 to 161 s ends it.
        assert!(s.get(&id, t0 + Duration::from_secs(100)).is_ok());
        assert_eq!(
            s.get(&id, t0 + Duration::from_secs(161)),
            Err(Rejected::Expired)
        );
        assert_eq!(
            s.get(&id, t0 + Duration::from_secs(162)),
            Err(Rejected::Unknown)
        );

        // Kept busy, it still ends at `max`.
        let (id, _) = s.create("alice", "$argon2id$x", t0);
        for m in 1..=5 {
            assert!(s.get(&id, t0 + Duration::from_secs(m * 55)).is_ok());
        }
        assert_eq!(
            s.get(&id, t0 + Duration::from_secs(301)),
            Err(Rejected::Expired)
        );

        let (id, _) = s.create("bob", "h", t0);
        let (other, _) = s.create("bob", "h", t0);
        assert!(s.remove(&id));
        assert_eq!(s.get(&id, t0), Err(Rejected::Unknown));
        s.remove_user("bob");
        assert_eq!(s.get(&other, t0), Err(Rejected::Unknown));
        assert_ne!(password_fp("a"), password_fp("b"));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
