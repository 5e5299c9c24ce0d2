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

use super::seal::{seal_window, window_believed, Row, StoreKey};
use super::{StoreError, Write};
use crate::approval::breakglass::Window;
use crate::approval::{HoldRequest, State};

/// Every column of a row, in [`row`]'s order.
const COLUMNS: &str = "id, state, created_ms, expires_ms, requester, database, sql_hash, body, mac";

#[derive(Clone)]
pub(super) struct Store {
    conn: Arc<Mutex<Connection>>,
    key: StoreKey,
}

impl Store {
    pub(super) fn open(path: &Path, key: StoreKey) -> Result<Store, StoreError> {
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
                 ON requests (requester, database, sql_hash, state);
             CREATE TABLE IF NOT EXISTS break_glass (
                 identity TEXT PRIMARY KEY,
                 body TEXT NOT NULL,
                 mac TEXT NOT NULL
             );",
        )?;
        // Files made before rows were sealed get the column; their
        // unsealed rows are ignored.
        let sealed: bool = conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('requests') WHERE name = 'mac'",
            [],
            |r| r.get(0),
        )?;
        if !sealed {
            conn.execute_batch("ALTER TABLE requests ADD COLUMN mac TEXT")?;
        }
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            key,
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
        let r = Row::sealed(request, &self.key)?;
        self.with(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO requests ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    r.id,
                    r.state,
                    r.created_ms,
                    r.expires_ms,
                    r.requester,
                    r.database,
                    r.sql_hash,
                    r.body,
                    r.mac
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<HoldRequest>, StoreError> {
        let id = id.to_string();
        let key = self.key.clone();
        self.with(move |c| read(c, &id, &key)).await
    }

    pub(super) async fn list(
        &self,
        state: Option<State>,
        limit: usize,
    ) -> Result<Vec<HoldRequest>, StoreError> {
        let key = self.key.clone();
        self.with(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM requests WHERE (?1 IS NULL OR state = ?1)
                 ORDER BY created_ms DESC, id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![state.map(State::name), limit as i64], row)?;
            believed(rows, &key)
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
        let key = self.key.clone();
        self.with(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM requests
                 WHERE requester = ?1 AND database = ?2 AND sql_hash = ?3 AND state = ?4
                 ORDER BY created_ms DESC"
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(keys), row)?;
            believed(rows, &key)
        })
        .await
    }

    pub(super) async fn update<T: Send + 'static>(
        &self,
        id: &str,
        change: impl FnOnce(&mut HoldRequest) -> (Write, T) + Send + 'static,
    ) -> Result<Option<(HoldRequest, T)>, StoreError> {
        let id = id.to_string();
        let key = self.key.clone();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(mut request) = read(&tx, &id, &key)? else {
                return Ok(None);
            };
            let (write, answer) = change(&mut request);
            if let Write::Store = write {
                let r = Row::sealed(&request, &key)?;
                tx.execute(
                    "UPDATE requests SET state = ?2, body = ?3, mac = ?4 WHERE id = ?1",
                    params![r.id, r.state, r.body, r.mac],
                )?;
                tx.commit()?;
            }
            Ok(Some((request, answer)))
        })
        .await
    }
}

impl Store {
    /// Stores `window`, replacing the identity's earlier one.
    pub(super) async fn put_window(&self, window: &Window) -> Result<(), StoreError> {
        let body = serde_json::to_string(window)?;
        let mac = seal_window(&self.key, &window.identity, &body);
        let identity = window.identity.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO break_glass (identity, body, mac) VALUES (?1, ?2, ?3)
                 ON CONFLICT (identity) DO UPDATE SET body = excluded.body, mac = excluded.mac",
                params![identity, body, mac],
            )?;
            Ok(())
        })
        .await
    }

    /// Removes `identity`'s window; the one that was stored, if believed.
    pub(super) async fn take_window(&self, identity: &str) -> Result<Option<Window>, StoreError> {
        let identity = identity.to_string();
        let key = self.key.clone();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(String, String)> = tx
                .query_row(
                    "SELECT body, mac FROM break_glass WHERE identity = ?1",
                    [&identity],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            tx.execute("DELETE FROM break_glass WHERE identity = ?1", [&identity])?;
            tx.commit()?;
            Ok(found
                .and_then(|(body, mac)| window_believed(&key, &identity, &body, &mac, "embedded")))
        })
        .await
    }

    /// Every stored window that is believed (ended ones too).
    pub(super) async fn windows(&self) -> Result<Vec<Window>, StoreError> {
        let key = self.key.clone();
        self.with(move |c| {
            let mut stmt =
                c.prepare("SELECT identity, body, mac FROM break_glass ORDER BY identity")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (identity, body, mac) = row?;
                out.extend(window_believed(&key, &identity, &body, &mac, "embedded"));
            }
            Ok(out)
        })
        .await
    }
}

/// Request `id`, if it exists and its seal verifies.
fn read(c: &Connection, id: &str, key: &StoreKey) -> Result<Option<HoldRequest>, StoreError> {
    let found = c
        .query_row(
            &format!("SELECT {COLUMNS} FROM requests WHERE id = ?1"),
            [id],
            row,
        )
        .optional()?;
    Ok(found.and_then(|r| r.believed(key, "embedded")))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        state: r.get(1)?,
        created_ms: r.get(2)?,
        expires_ms: r.get(3)?,
        requester: r.get(4)?,
        database: r.get(5)?,
        sql_hash: r.get(6)?,
        body: r.get(7)?,
        mac: r.get(8)?,
    })
}

/// The requests of `rows` whose seals verify; the others are logged and
/// left out.
fn believed(
    rows: impl Iterator<Item = rusqlite::Result<Row>>,
    key: &StoreKey,
) -> Result<Vec<HoldRequest>, StoreError> {
    let mut out = Vec::new();
    for r in rows {
        out.extend(r?.believed(key, "embedded"));
    }
    Ok(out)
}
