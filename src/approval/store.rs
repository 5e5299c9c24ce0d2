//! Where hold requests live, and the change feed that wakes a waiting
//! statement the moment its request is decided.
//!
//! Two backends keep the same rows: the embedded one ([`embedded`], SQLite
//! under `state_dir`, the default) and the shared one ([`shared`], a
//! PostgreSQL database several gateways use, so that a statement held by
//! one is decided through the inbox of any). Both offer the same few
//! primitives — insert, read, list, find, and `update`, a read-modify-write
//! of one request under a row lock — and everything that decides anything
//! (votes, expiry, withdrawal, defer-mode claims) is written once, here, on
//! top of them. Two approvers deciding at once are applied one after the
//! other, never lost, whichever gateways they use.

mod embedded;
mod seal;
mod shared;

pub use seal::StoreKey;

use std::path::Path;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{now_ms, vote, Approver, HoldRequest, Outcome, State, VoteError};
use crate::config::StoreLocation;
use crate::identity::Role;

/// The approval requests of this gateway (or of every gateway sharing the
/// store), and who is told when one changes.
#[derive(Clone)]
pub struct Approvals {
    backend: Backend,
    changes: broadcast::Sender<String>,
    created: broadcast::Sender<HoldRequest>,
}

#[derive(Clone)]
enum Backend {
    Embedded(embedded::Store),
    Shared(shared::Store),
}

/// A failure of the store itself (not a refused decision).
#[derive(Debug, thiserror::Error)]
#[error("approval store: {0}")]
pub struct StoreError(String);

impl StoreError {
    pub fn vanished(id: &str) -> Self {
        StoreError(format!("request {id} vanished"))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError(format!("a stored request is unreadable: {e}"))
    }
}

/// What an [`update`](Backend::update) callback asks of the store.
enum Write {
    Keep,
    Store,
}

impl Approvals {
    /// Opens the store `location` names: the embedded file is created if
    /// missing; the shared database gets its table if missing, and this
    /// gateway starts listening for the changes other gateways make.
    ///
    /// Every row is sealed with `key` and a row whose seal does not verify
    /// is ignored: every gateway sharing a store must hold the same key.
    pub async fn open(location: &StoreLocation, key: StoreKey) -> Result<Approvals, StoreError> {
        match location {
            StoreLocation::Embedded(path) => Self::open_embedded(path, key),
            StoreLocation::Shared(url) => {
                let (changes, created) = feeds();
                let store = shared::Store::connect(url, key, changes.clone()).await?;
                Ok(Approvals {
                    backend: Backend::Shared(store),
                    changes,
                    created,
                })
            }
        }
    }

    /// Opens (or creates) the embedded store at `path`.
    pub fn open_embedded(path: &Path, key: StoreKey) -> Result<Approvals, StoreError> {
        let (changes, created) = feeds();
        Ok(Approvals {
            backend: Backend::Embedded(embedded::Store::open(path, key)?),
            changes,
            created,
        })
    }

    fn changed(&self, id: &str) {
        let _ = self.changes.send(id.to_string());
    }

    /// Ids of requests as they change (created, decided, ended) — here,
    /// and with the shared store, on every gateway sharing it.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// New requests this gateway made, whole, as they are stored (for
    /// notifications: each request is announced once, by the gateway that
    /// holds its statement).
    pub fn subscribe_created(&self) -> broadcast::Receiver<HoldRequest> {
        self.created.subscribe()
    }

    pub async fn create(&self, request: &HoldRequest) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Embedded(s) => s.insert(request).await?,
            Backend::Shared(s) => s.insert(request).await?,
        }
        self.changed(&request.id);
        let _ = self.created.send(request.clone());
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<HoldRequest>, StoreError> {
        match &self.backend {
            Backend::Embedded(s) => s.get(id).await,
            Backend::Shared(s) => s.get(id).await,
        }
    }

    /// Requests newest first: those in `state`, or all; at most `limit`.
    pub async fn list(
        &self,
        state: Option<State>,
        limit: usize,
    ) -> Result<Vec<HoldRequest>, StoreError> {
        match &self.backend {
            Backend::Embedded(s) => s.list(state, limit).await,
            Backend::Shared(s) => s.list(state, limit).await,
        }
    }

    /// Requests in `state` from `requester` for one statement (by its
    /// hash) on `database`, newest first.
    async fn matching(
        &self,
        state: State,
        requester: &str,
        database: &str,
        sql_hash: &str,
    ) -> Result<Vec<HoldRequest>, StoreError> {
        match &self.backend {
            Backend::Embedded(s) => s.matching(state, requester, database, sql_hash).await,
            Backend::Shared(s) => s.matching(state, requester, database, sql_hash).await,
        }
    }

    /// Applies `change` to request `id` under its row lock and stores the
    /// result if `change` says so; returns the request as it now is and
    /// what `change` returned, or `None` if there is no such request.
    async fn update<T: Send + 'static>(
        &self,
        id: &str,
        change: impl FnOnce(&mut HoldRequest) -> (Write, T) + Send + 'static,
    ) -> Result<Option<(HoldRequest, T)>, StoreError> {
        // Whether this change is the one that decided the request, for
        // the decision metrics: counted once, by the gateway that made it.
        let change = move |request: &mut HoldRequest| {
            let was_pending = request.state == State::Pending;
            let (write, t) = change(request);
            let decided =
                was_pending && request.state != State::Pending && matches!(write, Write::Store);
            (write, (t, decided))
        };
        let updated = match &self.backend {
            Backend::Embedded(s) => s.update(id, change).await?,
            Backend::Shared(s) => s.update(id, change).await?,
        };
        let Some((request, (t, decided))) = updated else {
            return Ok(None);
        };
        self.changed(&request.id);
        if decided {
            let waited = now_ms().saturating_sub(request.created_ms);
            crate::metrics::get().hold_decided(
                request.state.name(),
                std::time::Duration::from_millis(waited),
            );
        }
        Ok(Some((request, t)))
    }

    /// Records one approver's decision; returns the request as it now is.
    pub async fn vote(
        &self,
        id: &str,
        approver: &str,
        role: Role,
        groups: &[String],
        approve: bool,
        reason: &str,
    ) -> Result<HoldRequest, Decided> {
        let (approver, groups, reason) =
            (approver.to_string(), groups.to_vec(), reason.to_string());
        let updated = self
            .update(id, move |request| {
                let who = Approver {
                    name: &approver,
                    role,
                    groups: &groups,
                };
                let outcome = vote(request, &who, approve, &reason, now_ms());
                // An expiry found while voting is kept; a refused vote is not.
                let write = if outcome.is_ok() || request.state == State::Expired {
                    Write::Store
                } else {
                    Write::Keep
                };
                (write, outcome)
            })
            .await
            .map_err(Decided::Store)?;
        match updated {
            None => Err(Decided::Refused(VoteError::NotFound(id.to_string()))),
            Some((request, Ok(()))) => Ok(request),
            Some((_, Err(refused))) => Err(Decided::Refused(refused)),
        }
    }

    /// Approves pending request `id` under break-glass `window`: its one
    /// vote names the window and the admin who opened it. Returns the
    /// request as it now is (`None` if it was no longer pending).
    pub async fn approve_break_glass(
        &self,
        id: &str,
        window: &crate::approval::breakglass::Window,
    ) -> Result<Option<HoldRequest>, StoreError> {
        let vote = crate::approval::Vote {
            approver: window.approver(),
            approve: true,
            reason: format!("break-glass window: {}", window.reason),
            at_ms: now_ms(),
        };
        let updated = self
            .update(id, move |request| {
                if request.state != State::Pending {
                    return (Write::Keep, false);
                }
                request.votes.push(vote);
                request.state = State::Approved;
                (Write::Store, true)
            })
            .await?;
        Ok(updated.and_then(|(request, approved)| approved.then_some(request)))
    }

    /// Stores break-glass `window` (replacing its identity's earlier one),
    /// for every gateway sharing the store.
    pub async fn put_window(
        &self,
        window: &crate::approval::breakglass::Window,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Embedded(s) => s.put_window(window).await,
            Backend::Shared(s) => s.put_window(window).await,
        }
    }

    /// Removes `identity`'s break-glass window; the one removed, if any was
    /// stored (ended or not).
    pub async fn take_window(
        &self,
        identity: &str,
    ) -> Result<Option<crate::approval::breakglass::Window>, StoreError> {
        match &self.backend {
            Backend::Embedded(s) => s.take_window(identity).await,
            Backend::Shared(s) => s.take_window(identity).await,
        }
    }

    /// Every stored break-glass window, ended ones included.
    pub async fn windows(&self) -> Result<Vec<crate::approval::breakglass::Window>, StoreError> {
        match &self.backend {
            Backend::Embedded(s) => s.windows().await,
            Backend::Shared(s) => s.windows().await,
        }
    }

    /// Records what request `id`'s statement did when it ran.
    pub async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<(), StoreError> {
        self.update(id, move |request| {
            request.outcome = Some(outcome);
            (Write::Store, ())
        })
        .await?;
        Ok(())
    }

    /// Ends the requests a previous run of gateway `gateway` left pending:
    /// the sessions that held them ended with that run (a crash, a kill),
    /// so their statements can no longer run. Returns the requests ended.
    pub async fn withdraw_orphans(&self, gateway: &str) -> Result<Vec<HoldRequest>, StoreError> {
        let mut ended = Vec::new();
        for request in self.list(Some(State::Pending), i64::MAX as usize).await? {
            if request.gateway.as_deref() != Some(gateway) {
                continue;
            }
            let why =
                "the gateway holding it stopped before a decision; the statement can no longer run";
            if let Some(r) = self.end(&request.id, State::Withdrawn, why).await? {
                if r.state == State::Withdrawn {
                    ended.push(r);
                }
            }
        }
        Ok(ended)
    }

    /// Ends a pending request as expired or withdrawn; returns the request
    /// as it now is (unchanged if it was decided meanwhile).
    pub async fn end(
        &self,
        id: &str,
        state: State,
        because: &str,
    ) -> Result<Option<HoldRequest>, StoreError> {
        let because = because.to_string();
        let updated = self
            .update(id, move |request| {
                if request.state != State::Pending {
                    return (Write::Keep, ());
                }
                request.state = state;
                request.ended_because = Some(because);
                (Write::Store, ())
            })
            .await?;
        Ok(updated.map(|(request, ())| request))
    }

    /// Defer mode: the approved, unexpired, not yet used request of
    /// `requester` for the same statement text on `database`, marked used
    /// under its row lock — an approval runs the statement once, even when
    /// two sessions (or two gateways) re-send it at the same moment.
    pub async fn claim_approved(
        &self,
        requester: &str,
        database: &str,
        sql_hash: &str,
    ) -> Result<Option<HoldRequest>, StoreError> {
        let candidates = self
            .matching(State::Approved, requester, database, sql_hash)
            .await?;
        for candidate in candidates {
            let claimed = self
                .update(&candidate.id, |request| {
                    let now = now_ms();
                    let usable = request.state == State::Approved
                        && request.consumed_ms.is_none()
                        && request.expires_ms > now;
                    if !usable {
                        return (Write::Keep, false);
                    }
                    request.consumed_ms = Some(now);
                    (Write::Store, true)
                })
                .await?;
            if let Some((request, true)) = claimed {
                return Ok(Some(request));
            }
        }
        Ok(None)
    }

    /// Defer mode: a pending, unexpired request for the same statement of
    /// the same requester, so that re-sending it early does not make another.
    pub async fn find_pending(
        &self,
        requester: &str,
        database: &str,
        sql_hash: &str,
    ) -> Result<Option<HoldRequest>, StoreError> {
        let now = now_ms();
        Ok(self
            .matching(State::Pending, requester, database, sql_hash)
            .await?
            .into_iter()
            .find(|r| r.expires_ms > now))
    }

    /// Waits until request `id` is no longer pending, or `deadline`
    /// passes (then returns it as it is). Wakes on the change feed, and
    /// looks again every second in case a change was missed (a shared
    /// store's listener reconnecting, say).
    pub async fn wait(
        &self,
        id: &str,
        deadline: tokio::time::Instant,
    ) -> Result<HoldRequest, StoreError> {
        let mut changes = self.subscribe();
        loop {
            let request = self
                .get(id)
                .await?
                .ok_or_else(|| StoreError::vanished(id))?;
            if request.state != State::Pending || tokio::time::Instant::now() >= deadline {
                return Ok(request);
            }
            let next = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            loop {
                match tokio::time::timeout_at(next, changes.recv()).await {
                    Ok(Ok(changed)) if changed != id => continue,
                    _ => break,
                }
            }
        }
    }
}

fn feeds() -> (broadcast::Sender<String>, broadcast::Sender<HoldRequest>) {
    (broadcast::channel(1024).0, broadcast::channel(1024).0)
}

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum Decided {
    #[error("{0}")]
    Refused(VoteError),
    #[error("{0}")]
    Store(StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: &str, quorum: u32) -> HoldRequest {
        let mut r = super::super::tests::request(quorum);
        r.id = id.to_string();
        r.created_ms = now_ms();
        r.expires_ms = now_ms() + 60_000;
        r
    }

    #[tokio::test]
    async fn decisions_wake_the_waiting_statement() {
        let dir = tempfile::tempdir().unwrap();
        let store = Approvals::open_embedded(
            &dir.path().join("approvals.sqlite3"),
            StoreKey::new([1; 32]),
        )
        .unwrap();
        store.create(&pending("r-1", 1)).await.unwrap();
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                let started = std::time::Instant::now();
                (store.wait("r-1", deadline).await.unwrap(), started)
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let groups = vec!["dba".to_string()];
        let decided = store
            .vote("r-1", "ana", Role::Approver, &groups, true, "ok")
            .await
            .unwrap();
        let at = std::time::Instant::now();
        assert_eq!(decided.state, State::Approved);
        let (seen, _) = waiter.await.unwrap();
        assert_eq!(seen.state, State::Approved);
        assert!(at.elapsed() < Duration::from_millis(500));
        // Refused decisions change nothing.
        let err = store
            .vote("r-1", "bo", Role::Approver, &groups, true, "")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already approved"), "{err}");
        assert_eq!(
            store.list(Some(State::Approved), 10).await.unwrap().len(),
            1
        );
        assert!(store
            .list(Some(State::Pending), 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_request_ended_as_withdrawn_cannot_be_approved() {
        let dir = tempfile::tempdir().unwrap();
        let store = Approvals::open_embedded(&dir.path().join("a.sqlite3"), StoreKey::new([1; 32]))
            .unwrap();
        store.create(&pending("r-2", 1)).await.unwrap();
        let ended = store
            .end("r-2", State::Withdrawn, "the client cancelled")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ended.state, State::Withdrawn);
        let groups = vec!["dba".to_string()];
        let err = store
            .vote("r-2", "ana", Role::Approver, &groups, true, "")
            .await
            .unwrap_err();
        let Decided::Refused(VoteError::Closed(state)) = err else {
            panic!("{err:?}");
        };
        assert_eq!(
            state,
            "withdrawn (the client cancelled) and its statement will never run"
        );
    }
}
