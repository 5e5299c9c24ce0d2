//! CancelRequest routing.
//!
//! A client's BackendKeyData carries the upstream's real process id — so
//! `pg_backend_pid()`, `pg_stat_activity` and the sender pid of a
//! NOTIFY all agree with what the driver was told — and a secret Airlock
//! makes up, never the upstream's: a client that learned the upstream's
//! secret could cancel its session's queries on that server directly,
//! past Airlock (and past the session's end, when the connection serves
//! another agent from the pool).
//!
//! A CancelRequest is looked up here by the pair (pid, secret) and, if it
//! names a live session, re-sent upstream with that session's real key, and
//! the session is told — a statement waiting for approval is withdrawn. The
//! pid alone never identifies a session: it is public, and a pid is reused
//! once its connection closes, so a request must carry the secret of the
//! session that holds the pid now.
//!
//! With the pid known, only the 32-bit secret is left to guess (as with the
//! server itself); an address that sends many requests naming no live
//! session has its cancel requests ignored for a while.

use crate::identity::LoginThrottle;
use rand::Rng;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// A backend key: (process id, secret).
type Key = (i32, i32);

/// Cancel requests naming no live session that one address may send within
/// [`MISS_WINDOW`] before its cancel requests are ignored for
/// [`MISS_LOCKOUT`]. A client misses only when its session ended just
/// before its cancel arrived; a hundred a minute is guessing.
const MAX_MISSES: u32 = 100;
const MISS_WINDOW: Duration = Duration::from_secs(60);
const MISS_LOCKOUT: Duration = Duration::from_secs(60);

pub struct CancelMap {
    /// Client-facing key → the upstream key, and the session's count of
    /// cancel requests.
    sessions: Mutex<HashMap<Key, (Key, watch::Sender<u64>)>>,
    misses: LoginThrottle,
}

impl Default for CancelMap {
    fn default() -> Self {
        Self {
            sessions: Default::default(),
            misses: LoginThrottle::new(MAX_MISSES, MISS_WINDOW, MISS_LOCKOUT),
        }
    }
}

/// What became of a CancelRequest.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancel {
    /// The session is live: cancel upstream with this key.
    Forward(Key),
    /// No live session has this key.
    NoSession,
    /// The address sent too many requests naming no session; ignored.
    Throttled,
}

impl CancelMap {
    /// Issues a client-facing key for a session whose upstream key is
    /// `upstream`: the upstream's pid with a fresh random secret. The key
    /// is withdrawn when the guard drops.
    pub fn register(self: &Arc<Self>, upstream: Key) -> CancelKey {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut rng = rand::thread_rng();
        // Two live sessions never share an upstream pid, but a guard can
        // outlive its connection by a moment; the secret keeps them apart.
        let key = loop {
            let candidate = (upstream.0, rng.gen::<i32>());
            if candidate.1 != upstream.1 && !sessions.contains_key(&candidate) {
                break candidate;
            }
        };
        let (cancels, cancelled) = watch::channel(0);
        sessions.insert(key, (upstream, cancels));
        CancelKey {
            map: self.clone(),
            key,
            cancelled,
        }
    }

    /// A CancelRequest for `key` from `from`: the upstream key to cancel
    /// with, if the pid and secret name a live session (whose count of
    /// cancels then goes up).
    pub fn cancel(&self, key: Key, from: IpAddr) -> Cancel {
        if self.misses.check(&from).is_err() {
            return Cancel::Throttled;
        }
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(&key) {
            Some((upstream, cancels)) => {
                cancels.send_modify(|n| *n += 1);
                Cancel::Forward(*upstream)
            }
            None => {
                drop(sessions);
                self.misses.record_failure(&from);
                Cancel::NoSession
            }
        }
    }
}

/// A registered client-facing key; unregisters itself on drop.
pub struct CancelKey {
    map: Arc<CancelMap>,
    key: Key,
    cancelled: watch::Receiver<u64>,
}

impl CancelKey {
    pub fn key(&self) -> Key {
        self.key
    }

    /// Changes with every CancelRequest for this session.
    pub fn cancelled(&self) -> watch::Receiver<u64> {
        self.cancelled.clone()
    }
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.map
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn keys_carry_the_upstream_pid_and_vanish_with_the_session() {
        let map = Arc::new(CancelMap::default());
        let guard = map.register((42, 7));
        let key = guard.key();
        assert_eq!(key.0, 42, "the client sees the server's pid");
        assert_ne!(key.1, 7, "never the server's secret");
        let cancelled = guard.cancelled();
        assert!(!cancelled.has_changed().unwrap());
        assert_eq!(map.cancel(key, HERE), Cancel::Forward((42, 7)));
        assert!(cancelled.has_changed().unwrap());
        drop(guard);
        assert_eq!(map.cancel(key, HERE), Cancel::NoSession);
    }

    #[test]
    fn the_pid_alone_cancels_nothing() {
        let map = Arc::new(CancelMap::default());
        let guard = map.register((42, 7));
        let (pid, secret) = guard.key();
        for wrong in [
            secret.wrapping_add(1),
            secret ^ 1,
            0,
            7,
            -1,
            i32::MIN,
            i32::MAX,
        ] {
            if wrong != secret {
                assert_eq!(map.cancel((pid, wrong), HERE), Cancel::NoSession, "{wrong}");
            }
        }
        assert!(!guard.cancelled().has_changed().unwrap());
    }

    #[test]
    fn a_reused_pid_is_cancelled_only_with_its_new_secret() {
        let map = Arc::new(CancelMap::default());
        let first = map.register((42, 7));
        let old = first.key();
        // The connection closes; the server gives the pid to a new one
        // (while the old guard may still be about to drop).
        let second = map.register((42, 9));
        let new = second.key();
        assert_ne!(old, new);
        assert_eq!(map.cancel(old, HERE), Cancel::Forward((42, 7)));
        assert_eq!(map.cancel(new, HERE), Cancel::Forward((42, 9)));
        drop(first);
        assert_eq!(map.cancel(old, HERE), Cancel::NoSession);
        assert_eq!(map.cancel(new, HERE), Cancel::Forward((42, 9)));
    }

    #[test]
    fn an_address_that_guesses_is_ignored_for_a_while() {
        let map = Arc::new(CancelMap::default());
        let guard = map.register((42, 7));
        let (pid, secret) = guard.key();
        let guesser = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
        let mut wrong = secret;
        for _ in 0..MAX_MISSES {
            wrong = wrong.wrapping_add(1);
            assert_eq!(map.cancel((pid, wrong), guesser), Cancel::NoSession);
        }
        // Even the right secret is ignored from there now…
        assert_eq!(map.cancel((pid, secret), guesser), Cancel::Throttled);
        assert!(!guard.cancelled().has_changed().unwrap());
        // …but not from elsewhere.
        assert_eq!(map.cancel((pid, secret), HERE), Cancel::Forward((42, 7)));
    }
}
