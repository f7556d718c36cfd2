//! Login sessions: a bounded table in memory, keyed by the BLAKE3 hash of a random 256-bit
//! session id that lives only in the officer's cookie.
//!
//! A session ends after `idle` without a request, `absolute` after login whatever happens,
//! at logout, and when its officer's account is removed; it holds no grant (grants are read
//! from the account at each request, so a revocation shows at the next page load). The table
//! holds at most [`MAX_SESSIONS`]: when full, expired sessions are dropped, then the least
//! recently used one. Sessions do not survive a restart of the node: officers log in again.
//!
//! The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, and over HTTPS `Secure` with the
//! `__Host-` prefix (no `Domain`, so no other host can set or read it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 10_000;

/// How far a session has come through the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Password checked; the TOTP code is still due.
    Totp,
    /// Password checked; the operator requires TOTP and the officer has none yet: only its
    /// set-up is open.
    SetupTotp,
    /// Logged in with a one-time password: only choosing a new one is open.
    ChangePassword,
    /// Logged in.
    Full,
}

/// What a request learns about its session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The officer.
    pub officer: String,
    /// The login stage.
    pub stage: Stage,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

#[derive(Debug)]
struct Entry {
    info: SessionInfo,
    created: Instant,
    last_seen: Instant,
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Entry>>,
    idle: Duration,
    absolute: Duration,
    /// The cookie's name (`__Host-` prefixed over HTTPS).
    pub cookie_name: &'static str,
    https: bool,
}

fn key(id: &str) -> [u8; 32] {
    *blake3::hash(id.as_bytes()).as_bytes()
}

fn random_hex() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, bytes.as_mut());
    Zeroizing::new(hex::encode(*bytes))
}

impl Sessions {
    /// An empty table.
    pub fn new(idle: Duration, absolute: Duration, https: bool) -> Sessions {
        Sessions {
            table: Mutex::new(HashMap::new()),
            idle,
            absolute,
            cookie_name: if https {
                "__Host-liaison-session"
            } else {
                "liaison-session"
            },
            https,
        }
    }

    /// Starts a session for `officer` at `stage`; returns the session id for the cookie.
    pub fn create(&self, officer: &str, stage: Stage) -> Zeroizing<String> {
        let id = random_hex();
        let now = Instant::now();
        let entry = Entry {
            info: SessionInfo {
                officer: officer.to_owned(),
                stage,
                csrf: random_hex().to_string(),
            },
            created: now,
            last_seen: now,
        };
        if let Ok(mut table) = self.table.lock() {
            if table.len() >= MAX_SESSIONS {
                table.retain(|_, e| !self.expired(e, now));
            }
            if table.len() >= MAX_SESSIONS {
                let oldest = table
                    .iter()
                    .min_by_key(|(_, e)| e.last_seen)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    table.remove(&k);
                }
            }
            table.insert(key(&id), entry);
        }
        id
    }

    fn expired(&self, e: &Entry, now: Instant) -> bool {
        now.duration_since(e.last_seen) > self.idle || now.duration_since(e.created) > self.absolute
    }

    /// The live session with this id, marked as used now; an expired one is dropped.
    pub fn get(&self, id: &str) -> Option<SessionInfo> {
        let k = key(id);
        let now = Instant::now();
        let mut table = self.table.lock().ok()?;
        let entry = table.get_mut(&k)?;
        if self.expired(entry, now) {
            table.remove(&k);
            return None;
        }
        entry.last_seen = now;
        Some(entry.info.clone())
    }

    /// Moves a session to another login stage.
    pub fn set_stage(&self, id: &str, stage: Stage) {
        if let Ok(mut table) = self.table.lock() {
            if let Some(e) = table.get_mut(&key(id)) {
                e.info.stage = stage;
            }
        }
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(&key(id));
        }
    }

    /// Ends every session of `officer` (account removed, password changed elsewhere).
    pub fn remove_officer(&self, officer: &str) {
        if let Ok(mut table) = self.table.lock() {
            table.retain(|_, e| e.info.officer != officer);
        }
    }

    /// The `Set-Cookie` value that stores `id`.
    pub fn cookie(&self, id: &str) -> String {
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Strict{}",
            self.cookie_name,
            if self.https { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that deletes the session cookie.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            self.cookie_name,
            if self.https { "; Secure" } else { "" }
        )
    }
}

/// Whether a presented CSRF token is the session's, in constant time.
pub fn csrf_matches(info: &SessionInfo, presented: &str) -> bool {
    info.csrf.len() == presented.len()
        && bool::from(info.csrf.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_absolute_timeouts() {
        let s = Sessions::new(Duration::from_millis(50), Duration::from_secs(60), false);
        let id = s.create("ana", Stage::Full);
        assert_eq!(s.get(&id).map(|i| i.officer), Some("ana".to_owned()));
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&id).is_none(), "idle session still alive");

        let s = Sessions::new(Duration::from_secs(60), Duration::from_millis(50), true);
        let id = s.create("ana", Stage::Full);
        std::thread::sleep(Duration::from_millis(80));
        assert!(
            s.get(&id).is_none(),
            "session past its absolute timeout still alive"
        );
        assert!(s.cookie("x").contains("Secure"));
        assert!(s.cookie("x").starts_with("__Host-"));
    }

    #[test]
    fn logout_and_removal_end_sessions() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60), false);
        let a = s.create("ana", Stage::Full);
        let b = s.create("ana", Stage::Full);
        let c = s.create("bo", Stage::Full);
        s.remove(&a);
        assert!(s.get(&a).is_none());
        s.remove_officer("ana");
        assert!(s.get(&b).is_none());
        let info = s.get(&c).expect("bo's session");
        assert!(csrf_matches(&info, &info.csrf.clone()));
        assert!(!csrf_matches(&info, "0"));
        assert!(!s.cookie("x").contains("Secure"));
        assert!(s.cookie("x").contains("HttpOnly; SameSite=Strict"));
    }
}
