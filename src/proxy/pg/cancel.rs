//! CancelRequest routing.
//!
//! Clients get backend keys Airlock makes up, never the upstream's: a
//! client that learned the upstream's key could cancel other agents'
//! queries on that server directly. A CancelRequest is looked up here and,
//! if it names a live session, re-sent upstream with that session's real key.

use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Key = (i32, i32);

#[derive(Default)]
pub struct CancelMap {
    sessions: Mutex<HashMap<Key, Key>>,
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
        sessions.insert(key, upstream);
        CancelKey {
            map: self.clone(),
            key,
        }
    }

    /// The upstream key behind a client-facing one.
    pub fn lookup(&self, key: Key) -> Option<Key> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()
    }
}

/// A registered client-facing key; unregisters itself on drop.
pub struct CancelKey {
    map: Arc<CancelMap>,
    key: Key,
}

impl CancelKey {
    pub fn key(&self) -> Key {
        self.key
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
        assert_eq!(map.lookup(key), Some((42, 7)));
        drop(guard);
        assert_eq!(map.lookup(key), None);
    }
}
