//! Users, roles and API tokens: the store behind `vigil user` and `vigil token`.
//!
//! `<storage>/auth.json` holds users (name, role, argon2id password hash in PHC form) and
//! tokens (id, label, user, SHA-256 of the secret). It lives beside the index rather than
//! in sled because the CLI must change it while the daemon runs (sled is locked by the
//! daemon). Writes take an exclusive `flock` on `auth.lock`, write a temporary file and
//! rename it over the old one, so readers always see a whole file. Passwords and token
//! secrets are never stored or logged in clear: a token is shown once, when created.
//!
//! The daemon reads it through [`CachedAuth`] (reloaded when the file changes, so a token
//! revoked from the CLI stops working at once); [`session`] and [`limiter`] hold the
//! browser sessions and the login lockout, in memory.

pub mod limiter;
pub mod session;

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a user may do; each role includes the ones before it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Camera status and live view.
    Viewer,
    /// + alerts and acknowledgements.
    Operator,
    /// + search, clips, export, holds.
    Investigator,
    /// + users, configuration, audit.
    Admin,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// argon2id, PHC string.
    pub password_hash: String,
    pub created: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// Public part, shown in lists (`vgl_<id>_...`).
    pub id: String,
    pub label: String,
    pub user: String,
    /// SHA-256 (hex) of the secret part.
    pub secret_sha256: String,
    pub created: String,
    pub revoked: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthData {
    pub users: Vec<User>,
    pub tokens: Vec<Token>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Invalid(String),
    #[error("auth store {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("auth store {path} is damaged: {err}")]
    Corrupt {
        path: PathBuf,
        err: serde_json::Error,
    },
}

/// The auth store of one storage dir.
pub struct AuthStore {
    path: PathBuf,
    lock: PathBuf,
}

fn now() -> String {
    crate::base::time::rfc3339(crate::base::time::now_us())
}

/// Checks a user name: 1..=64 of `[a-z0-9_.-]`.
pub fn check_name(name: &str) -> Result<(), AuthError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(&c))
    {
        return Err(AuthError::Invalid(format!(
            "user name {name:?}: use 1 to 64 of a-z, 0-9, '_', '.', '-'"
        )));
    }
    Ok(())
}

/// Checks a new password: at least 12 characters.
pub fn check_password(p: &str) -> Result<(), AuthError> {
    if p.chars().count() < 12 {
        return Err(AuthError::Invalid(
            "the password must have at least 12 characters".into(),
        ));
    }
    Ok(())
}

pub fn hash_password(p: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(p.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

pub fn verify_password(hash: &str, p: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|h| Argon2::default().verify_password(p.as_bytes(), &h).is_ok())
}

impl AuthStore {
    /// The users and tokens of the storage directory `layout`.
    pub fn new(layout: &crate::storage::Layout) -> AuthStore {
        AuthStore {
            path: layout.users(),
            lock: layout.users_lock(),
        }
    }

    fn io(&self, err: std::io::Error) -> AuthError {
        AuthError::Io {
            path: self.path.clone(),
            err,
        }
    }

    pub fn load(&self) -> Result<AuthData, AuthError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|err| AuthError::Corrupt {
                path: self.path.clone(),
                err,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthData::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Changes the data under the lock and writes it back atomically (mode 0600).
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut AuthData) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        use std::os::unix::fs::OpenOptionsExt;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&self.lock)
            .map_err(|e| self.io(e))?;
        // SAFETY: flock on a descriptor we own; released when `lock` is closed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(self.io(std::io::Error::last_os_error()));
        }
        let mut data = self.load()?;
        let out = f(&mut data)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| self.io(e))?;
            w.write_all(&serde_json::to_vec_pretty(&data).expect("serialisable"))
                .and_then(|()| w.sync_all())
                .map_err(|e| self.io(e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        Ok(out)
    }

    pub fn add_user(&self, name: &str, role: Role, password: &str) -> Result<(), AuthError> {
        check_name(name)?;
        check_password(password)?;
        let hash = hash_password(password);
        self.update(|d| {
            if d.users.iter().any(|u| u.name == name) {
                return Err(AuthError::Invalid(format!("user {name} already exists")));
            }
            d.users.push(User {
                name: name.into(),
                role,
                password_hash: hash,
                created: now(),
            });
            Ok(())
        })
    }

    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AuthError> {
        check_password(password)?;
        let hash = hash_password(password);
        self.update(|d| match d.users.iter_mut().find(|u| u.name == name) {
            Some(u) => {
                u.password_hash = hash;
                Ok(())
            }
            None => Err(AuthError::Invalid(format!("no user {name}"))),
        })
    }

    /// Deletes a user and revokes their tokens. The last admin cannot be deleted.
    pub fn delete_user(&self, name: &str) -> Result<(), AuthError> {
        self.update(|d| {
            let Some(i) = d.users.iter().position(|u| u.name == name) else {
                return Err(AuthError::Invalid(format!("no user {name}")));
            };
            let admins = d.users.iter().filter(|u| u.role == Role::Admin).count();
            if d.users[i].role == Role::Admin && admins == 1 {
                return Err(AuthError::Invalid(format!(
                    "{name} is the last admin; add another admin first"
                )));
            }
            d.users.remove(i);
            for t in d.tokens.iter_mut().filter(|t| t.user == name) {
                t.revoked = true;
            }
            Ok(())
        })
    }

    /// The user if the password is right.
    pub fn check_login(&self, name: &str, password: &str) -> Result<Option<User>, AuthError> {
        Ok(self
            .load()?
            .users
            .into_iter()
            .find(|u| u.name == name)
            .filter(|u| verify_password(&u.password_hash, password)))
    }

    /// Creates a token for a user; returns (the full token, shown once; its record).
    pub fn create_token(&self, user: &str, label: &str) -> Result<(String, Token), AuthError> {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(&mut secret);
        let (id, secret) = (hex::encode(id), hex::encode(secret));
        let t = Token {
            id: id.clone(),
            label: label.into(),
            user: user.into(),
            secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
            created: now(),
            revoked: false,
        };
        let rec = t.clone();
        self.update(|d| {
            if !d.users.iter().any(|u| u.name == user) {
                return Err(AuthError::Invalid(format!("no user {user}")));
            }
            d.tokens.push(t);
            Ok(())
        })?;
        Ok((format!("vgl_{id}_{secret}"), rec))
    }

    pub fn revoke_token(&self, id: &str) -> Result<(), AuthError> {
        self.update(|d| match d.tokens.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                t.revoked = true;
                Ok(())
            }
            None => Err(AuthError::Invalid(format!("no token {id}"))),
        })
    }

    /// The user a bearer token belongs to, if it is valid and not revoked.
    pub fn check_token(&self, token: &str) -> Result<Option<User>, AuthError> {
        Ok(self.load()?.token_user(token).cloned())
    }
}

impl AuthData {
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The user a bearer token (`vgl_<id>_<secret>`) belongs to, if it is valid and not
    /// revoked.
    pub fn token_user(&self, token: &str) -> Option<&User> {
        let (id, secret) = token.strip_prefix("vgl_")?.split_once('_')?;
        let digest = hex::encode(Sha256::digest(secret.as_bytes()));
        let t = self.tokens.iter().find(|t| {
            t.id == id && !t.revoked && session::same_secret(&t.secret_sha256, &digest)
        })?;
        self.user(&t.user)
    }

    /// The public id of a token string, for logs and the audit (never the secret).
    pub fn token_id(token: &str) -> &str {
        token
            .strip_prefix("vgl_")
            .and_then(|t| t.split_once('_'))
            .map_or("malformed", |(id, _)| id)
    }
}

/// Verifies a login. An unknown user costs as much as a wrong password (a hash is
/// verified either way), so timing does not tell which user names exist.
pub fn verify_login(data: &AuthData, name: &str, password: &str) -> Option<User> {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    match data.user(name) {
        Some(u) => verify_password(&u.password_hash, password).then(|| u.clone()),
        None => {
            let _ = verify_password(
                DUMMY.get_or_init(|| hash_password("not a real password")),
                password,
            );
            None
        }
    }
}

/// The auth store as the daemon reads it: kept in memory and reloaded when the file
/// changes (its inode, size or modification time), which costs one `stat` per request.
pub struct CachedAuth {
    store: AuthStore,
    cur: Mutex<(Option<FileStamp>, Arc<AuthData>)>,
}

/// Inode, mtime (s, ns) and size: any write (a rename) changes it.
type FileStamp = (u64, i64, i64, u64);

impl CachedAuth {
    pub fn new(store: AuthStore) -> CachedAuth {
        CachedAuth {
            store,
            cur: Mutex::new((None, Arc::new(AuthData::default()))),
        }
    }

    pub fn store(&self) -> &AuthStore {
        &self.store
    }

    /// The current data (blocking: a `stat`, and a read when it changed).
    pub fn data(&self) -> Result<Arc<AuthData>, AuthError> {
        use std::os::unix::fs::MetadataExt;
        let stamp = match std::fs::metadata(&self.store.path) {
            Ok(m) => Some((m.ino(), m.mtime(), m.mtime_nsec(), m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.store.io(e)),
        };
        let mut cur = self.cur.lock().unwrap();
        if cur.0 != stamp {
            *cur = (stamp, Arc::new(self.store.load()?));
        }
        Ok(cur.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_passwords_and_tokens() {
        let d = tempfile::tempdir().unwrap();
        let s = AuthStore::new(&crate::storage::Layout::new(d.path()));
        s.add_user("alice", Role::Admin, "correct horse battery")
            .unwrap();
        assert!(
            s.add_user("alice", Role::Viewer, "another long one")
                .is_err()
        );
        assert!(s.add_user("Bob", Role::Viewer, "another long one").is_err());
        assert!(s.add_user("bob", Role::Viewer, "short").is_err());
        s.add_user("bob", Role::Investigator, "another long one")
            .unwrap();
        assert_eq!(
            s.check_login("alice", "correct horse battery")
                .unwrap()
                .unwrap()
                .role,
            Role::Admin
        );
        assert!(
            s.check_login("alice", "wrong password!!")
                .unwrap()
                .is_none()
        );
        assert!(
            s.check_login("carol", "correct horse battery")
                .unwrap()
                .is_none()
        );
        let text = std::fs::read_to_string(d.path().join("auth.json")).unwrap();
        assert!(!text.contains("correct horse"), "a password in clear");
        assert!(text.contains("$argon2id$"));

        s.set_password("bob", "a brand new secret").unwrap();
        assert!(s.check_login("bob", "another long one").unwrap().is_none());
        assert!(
            s.check_login("bob", "a brand new secret")
                .unwrap()
                .is_some()
        );

        let (token, rec) = s.create_token("bob", "vms").unwrap();
        assert!(token.starts_with(&format!("vgl_{}_", rec.id)));
        assert!(
            !std::fs::read_to_string(d.path().join("auth.json"))
                .unwrap()
                .contains(token.rsplit('_').next().unwrap())
        );
        assert_eq!(s.check_token(&token).unwrap().unwrap().name, "bob");
        assert!(s.check_token(&format!("{token}x")).unwrap().is_none());
        assert!(s.check_token("vgl_nothing").unwrap().is_none());
        s.revoke_token(&rec.id).unwrap();
        assert!(s.check_token(&token).unwrap().is_none());

        // Deleting a user revokes their tokens; the last admin stays.
        let (t2, _) = s.create_token("bob", "other").unwrap();
        s.delete_user("bob").unwrap();
        assert!(s.check_token(&t2).unwrap().is_none());
        assert!(s.delete_user("alice").is_err());
        assert!(Role::Admin > Role::Investigator && Role::Operator > Role::Viewer);
    }
}
