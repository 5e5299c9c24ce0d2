//! The embedded approval store: requests in SQLite under `state_dir`, and
//! a change feed so that a waiting statement resumes the moment its
//! request is decided.
//!
//! Each request is one row: its id, state and expiry as columns (for the
//! queries) and the whole request as JSON. A decision is a read-modify-
//! write inside an immediate transaction, so two approvers deciding at
//! once are applied one after the other, never lost.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::broadcast;

use super::{now_ms, vote, Approver, HoldRequest, State, VoteError};
use crate::identity::Role;

/// The approval requests of this gateway (or of every gateway sharing the
/// file), and who is told when one changes.
#[derive(Clone)]
pub struct Approvals {
    conn: Arc<Mutex<Connection>>,
    changes: broadcast::Sender<String>,
    created: broadcast::Sender<HoldRequest>,
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

impl Approvals {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Approvals, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError(format!("cannot create `{}`: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError(format!("cannot open `{}`: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS requests (
                 id TEXT PRIMARY KEY,
                 state TEXT NOT NULL,
                 created_ms INTEGER NOT NULL,
                 expires_ms INTEGER NOT NULL,
                 requester TEXT NOT NULL,
                 database TEXT NOT NULL,
                 sql_hash TEXT NOT NULL,
                 body TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS requests_state ON requests (state, created_ms);
             CREATE INDEX IF NOT EXISTS requests_statement
                 ON requests (requester, database, sql_hash, state);",
        )?;
        let (changes, _) = broadcast::channel(1024);
        let (created, _) = broadcast::channel(1024);
        Ok(Approvals {
            conn: Arc::new(Mutex::new(conn)),
            changes,
            created,
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> T {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .expect("the approval store task panicked")
    }

    fn changed(&self, id: &str) {
        let _ = self.changes.send(id.to_string());
    }

    /// Ids of requests as they change (created, decided, ended).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// New requests, whole, as they are stored (for notifications).
    pub fn subscribe_created(&self) -> broadcast::Receiver<HoldRequest> {
        self.created.subscribe()
    }

    pub async fn create(&self, request: &HoldRequest) -> Result<(), StoreError> {
        let body = serde_json::to_string(request).map_err(|e| StoreError(e.to_string()))?;
        let r = request.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO requests (id, state, created_ms, expires_ms, requester, database, sql_hash, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    r.id,
                    r.state.name(),
                    r.created_ms as i64,
                    r.expires_ms as i64,
                    r.requester,
                    r.database,
                    r.sql_hash,
                    body
                ],
            )
        })
        .await?;
        self.changed(&request.id);
        let _ = self.created.send(request.clone());
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<HoldRequest>, StoreError> {
        let id = id.to_string();
        self.with(move |c| read(c, &id)).await
    }

    /// Requests newest first: those in `state`, or all; at most `limit`.
    pub async fn list(
        &self,
        state: Option<State>,
        limit: usize,
    ) -> Result<Vec<HoldRequest>, StoreError> {
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT body FROM requests WHERE (?1 IS NULL OR state = ?1)
                 ORDER BY created_ms DESC, id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![state.map(State::name), limit as i64], |r| {
                r.get::<_, String>(0)
            })?;
            let mut out = Vec::new();
            for body in rows {
                out.push(parse(&body?)?);
            }
            Ok(out)
        })
        .await
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
        let (id, approver, groups, reason) = (
            id.to_string(),
            approver.to_string(),
            groups.to_vec(),
            reason.to_string(),
        );
        let result = self
            .with(
                move |c| -> Result<Result<HoldRequest, VoteError>, StoreError> {
                    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let Some(mut request) = read(&tx, &id)? else {
                        return Ok(Err(VoteError::NotFound(id)));
                    };
                    let who = Approver {
                        name: &approver,
                        role,
                        groups: &groups,
                    };
                    let outcome = vote(&mut request, &who, approve, &reason, now_ms());
                    // An expiry found while voting is kept; a refused vote is not.
                    if outcome.is_ok() || request.state == State::Expired {
                        write(&tx, &request)?;
                        tx.commit()?;
                    }
                    Ok(outcome.map(|()| request))
                },
            )
            .await;
        match result {
            Ok(Ok(request)) => {
                self.changed(&request.id);
                Ok(request)
            }
            Ok(Err(refused)) => Err(Decided::Refused(refused)),
            Err(e) => Err(Decided::Store(e)),
        }
    }

    /// Ends a pending request as expired or withdrawn; returns the request
    /// as it now is (unchanged if it was decided meanwhile).
    pub async fn end(
        &self,
        id: &str,
        state: State,
        because: &str,
    ) -> Result<Option<HoldRequest>, StoreError> {
        let (id, because) = (id.to_string(), because.to_string());
        let ended = self
            .with(move |c| -> Result<Option<HoldRequest>, StoreError> {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let Some(mut request) = read(&tx, &id)? else {
                    return Ok(None);
                };
                if request.state == State::Pending {
                    request.state = state;
                    request.ended_because = Some(because);
                    write(&tx, &request)?;
                    tx.commit()?;
                }
                Ok(Some(request))
            })
            .await?;
        if let Some(r) = &ended {
            self.changed(&r.id);
        }
        Ok(ended)
    }

    /// Defer mode: the approved, unexpired, not yet used request of
    /// `requester` for the same statement text on `database`, marked used
    /// in the same transaction — an approval runs the statement once.
    pub async fn claim_approved(
        &self,
        requester: &str,
        database: &str,
        sql_hash: &str,
    ) -> Result<Option<HoldRequest>, StoreError> {
        let (requester, database, sql_hash) = (
            requester.to_string(),
            database.to_string(),
            sql_hash.to_string(),
        );
        let claimed = self
            .with(move |c| -> Result<Option<HoldRequest>, StoreError> {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_ms();
                let found = matching(&tx, "approved", &requester, &database, &sql_hash)?
                    .into_iter()
                    .find(|r| r.consumed_ms.is_none() && r.expires_ms > now);
                let Some(mut request) = found else {
                    return Ok(None);
                };
                request.consumed_ms = Some(now);
                write(&tx, &request)?;
                tx.commit()?;
                Ok(Some(request))
            })
            .await?;
        if let Some(r) = &claimed {
            self.changed(&r.id);
        }
        Ok(claimed)
    }

    /// Defer mode: a pending, unexpired request for the same statement of
    /// the same requester, so that re-sending it early does not make another.
    pub async fn find_pending(
        &self,
        requester: &str,
        database: &str,
        sql_hash: &str,
    ) -> Result<Option<HoldRequest>, StoreError> {
        let (requester, database, sql_hash) = (
            requester.to_string(),
            database.to_string(),
            sql_hash.to_string(),
        );
        self.with(move |c| {
            let now = now_ms();
            Ok(matching(c, "pending", &requester, &database, &sql_hash)?
                .into_iter()
                .find(|r| r.expires_ms > now))
        })
        .await
    }

    /// Waits until request `id` is no longer pending, or `deadline`
    /// passes (then returns it as it is). Wakes on this process's change
    /// feed, and looks again every second for decisions made elsewhere.
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
                .ok_or_else(|| StoreError(format!("request {id} vanished")))?;
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

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum Decided {
    #[error("{0}")]
    Refused(VoteError),
    #[error("{0}")]
    Store(StoreError),
}

/// Requests in `state` from `requester` for this statement, newest first.
fn matching(
    c: &Connection,
    state: &str,
    requester: &str,
    database: &str,
    sql_hash: &str,
) -> Result<Vec<HoldRequest>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT body FROM requests
         WHERE requester = ?1 AND database = ?2 AND sql_hash = ?3 AND state = ?4
         ORDER BY created_ms DESC",
    )?;
    let rows = stmt.query_map(params![requester, database, sql_hash, state], |r| {
        r.get::<_, String>(0)
    })?;
    let mut out = Vec::new();
    for body in rows {
        out.push(parse(&body?)?);
    }
    Ok(out)
}

fn read(c: &Connection, id: &str) -> Result<Option<HoldRequest>, StoreError> {
    let body: Option<String> = c
        .query_row("SELECT body FROM requests WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    body.map(|b| parse(&b)).transpose()
}

fn write(c: &Connection, request: &HoldRequest) -> Result<(), StoreError> {
    let body = serde_json::to_string(request).map_err(|e| StoreError(e.to_string()))?;
    c.execute(
        "UPDATE requests SET state = ?2, body = ?3 WHERE id = ?1",
        params![request.id, request.state.name(), body],
    )?;
    Ok(())
}

fn parse(body: &str) -> Result<HoldRequest, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError(format!("a stored request is unreadable: {e}")))
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
        let store = Approvals::open(&dir.path().join("approvals.sqlite3")).unwrap();
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
        let store = Approvals::open(&dir.path().join("a.sqlite3")).unwrap();
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
        assert!(matches!(
            err,
            Decided::Refused(VoteError::Closed("withdrawn"))
        ));
    }
}
