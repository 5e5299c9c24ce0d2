//! CancelRequest routing.
//!
//! Clients get backend keys Airlock makes up, never the upstream's: a
//! client that learned the upstream's key could cancel other agents'
//! queries on that server directly. A CancelRequest is looked up here and,
//! if it names a live session, re-sent upstream with that session's real key,
//! and the session is told — a statement waiting for approval is withdrawn.

use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

type Key = (i32, i32);

#[derive(Default)]
pub struct CancelMap {
    /// Client-facing key → the upstream key, and the session's count of
    /// cancel requests.
    sessions: Mutex<HashMap<Key, (Key, watch::Sender<u64>)>>,
}

impl CancelMap {
    /// Issues a fresh client-facing key for a session whose upstream key is
    /// `upstream`. The key is withdrawn when the guard drops.
    pub fn register(self: &Arc<Self>, upstream: Key) -> CancelKey {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let mut rng = rand::thread_rng();
        let key = loop {
            let candidate = (rng.gen_range(1..i32::MAX), rng.gen::<i32>());
            if !sessions.contains_key(&candidate) {
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

    /// A CancelRequest for `key`: the upstream key to cancel with, if the
    /// session is live; the session's count of cancels goes up.
    pub fn cancel(&self, key: Key) -> Option<Key> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let (upstream, cancels) = sessions.get(&key)?;
        cancels.send_modify(|n| *n += 1);
        Some(*upstream)
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

    #[test]
    fn keys_map_to_upstream_and_vanish_with_the_session() {
        let map = Arc::new(CancelMap::default());
        let guard = map.register((42, 7));
        let key = guard.key();
        assert_ne!(key, (42, 7));
        let cancelled = guard.cancelled();
        assert!(!cancelled.has_changed().unwrap());
        assert_eq!(map.cancel(key), Some((42, 7)));
        assert!(cancelled.has_changed().unwrap());
        drop(guard);
        assert_eq!(map.cancel(key), None);
    }
}
