//! Login rate limiting and temporary lockout.
//!
//! Failures are counted per key (the user name tried, and the client address) in a
//! sliding window; `max_failures` within `window` locks the key for `lockout`. While
//! locked, logins are refused before the password is even checked (argon2 is costly on
//! purpose, so guessing must not be able to keep the CPU busy). A success clears the
//! user's count. Time is passed in for tests.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Limiter {
    max_failures: usize,
    window: Duration,
    lockout: Duration,
    state: Mutex<HashMap<String, Entry>>,
}

#[derive(Default)]
struct Entry {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Limiter {
    pub fn new(max_failures: u32, window: Duration, lockout: Duration) -> Limiter {
        Limiter {
            max_failures: max_failures.max(1) as usize,
            window,
            lockout,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` while `key` is locked out.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let map = self.state.lock().unwrap();
        match map.get(key).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure; returns true if it locked the key.
    pub fn fail(&self, key: &str, now: Instant) -> bool {
        let mut map = self.state.lock().unwrap();
        // Bound memory under a flood of distinct keys: drop entries that are idle.
        if map.len() > 10_000 {
            let (w, l) = (self.window, self.lockout);
            map.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now)
                    || e.failures
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < w.max(l))
            });
        }
        let e = map.entry(key.to_owned()).or_default();
        while e
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            e.failures.pop_front();
        }
        e.failures.push_back(now);
        if e.failures.len() >= self.max_failures {
            e.failures.clear();
            e.locked_until = Some(now + self.lockout);
            return true;
        }
        false
    }

    pub fn succeed(&self, key: &str) {
        self.state.lock().unwrap().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_in_window_and_unlocks_later() {
        let s = Duration::from_secs;
        let l = Limiter::new(3, s(60), s(300));
        let t0 = Instant::now();
        assert!(!l.fail("user:a", t0));
        assert!(!l.fail("user:a", t0 + s(10)));
        assert!(l.check("user:a", t0 + s(11)).is_ok());
        // Failures older than the window do not count.
        assert!(!l.fail("user:a", t0 + s(100)));
        assert!(!l.fail("user:a", t0 + s(101)));
        assert!(l.fail("user:a", t0 + s(102)));
        assert_eq!(l.check("user:a", t0 + s(103)), Err(s(299)));
        assert!(l.check("user:b", t0 + s(103)).is_ok());
        assert!(l.check("user:a", t0 + s(402)).is_ok());
        // A success clears the count.
        l.fail("user:b", t0);
        l.fail("user:b", t0);
        l.succeed("user:b");
        assert!(!l.fail("user:b", t0));
    }
}
