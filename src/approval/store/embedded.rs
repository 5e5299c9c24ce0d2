//! The embedded backend: requests in one SQLite file (WAL, synchronous
//! FULL), each a row with its id, state, expiry and the statement's match
//! keys as columns (for the queries) and the whole request as JSON.
//!
//! SQLite calls block, so each runs on tokio's blocking pool; row locks are
//! immediate transactions (SQLite locks the whole file, which for a few
//! decisions a second is no contention at all).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{StoreError, Write};
use crate::approval::{HoldRequest, State};

#[derive(Clone)]
pub(super) struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    pub(super) fn open(path: &Path) -> Result<Store, StoreError> {
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
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError(format!("the approval store task failed: {e}")))?
    }

    pub(super) async fn insert(&self, request: &HoldRequest) -> Result<(), StoreError> {
        let body = serde_json::to_string(request)?;
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
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<HoldRequest>, StoreError> {
        let id = id.to_string();
        self.with(move |c| read(c, &id)).await
    }

    pub(super) async fn list(
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
            rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
        })
        .await
    }

    pub(super) async fn matching(
        &self,
        state: State,
        requester: &str,
        database: &str,
        sql_hash: &str,
    ) -> Result<Vec<HoldRequest>, StoreError> {
        let keys = [
            requester.to_string(),
            database.to_string(),
            sql_hash.to_string(),
            state.name().to_string(),
        ];
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT body FROM requests
                 WHERE requester = ?1 AND database = ?2 AND sql_hash = ?3 AND state = ?4
                 ORDER BY created_ms DESC",
            )?;
            let rows =
                stmt.query_map(rusqlite::params_from_iter(keys), |r| r.get::<_, String>(0))?;
            rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
        })
        .await
    }

    pub(super) async fn update<T: Send + 'static>(
        &self,
        id: &str,
        change: impl FnOnce(&mut HoldRequest) -> (Write, T) + Send + 'static,
    ) -> Result<Option<(HoldRequest, T)>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut request) = read(&tx, &id)? else {
                return Ok(None);
            };
            let (write, answer) = change(&mut request);
            if let Write::Store = write {
                let body = serde_json::to_string(&request)?;
                tx.execute(
                    "UPDATE requests SET state = ?2, body = ?3 WHERE id = ?1",
                    params![request.id, request.state.name(), body],
                )?;
                tx.commit()?;
            }
            Ok(Some((request, answer)))
        })
        .await
    }
}

fn read(c: &Connection, id: &str) -> Result<Option<HoldRequest>, StoreError> {
    let body: Option<String> = c
        .query_row("SELECT body FROM requests WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
}
