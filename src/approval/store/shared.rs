//! The shared backend: requests in a PostgreSQL table that several gateways
//! use, so that a statement held by one is decided through the inbox (or
//! API) of any of them.
//!
//! Queries go through a small deadpool of connections. Row locks are
//! `SELECT … FOR UPDATE`; every stored change also sends
//! `NOTIFY airlock_hold_requests, '<id>'` in the same transaction, so it is
//! announced exactly when it commits. One more connection per gateway
//! LISTENs and feeds those ids into the gateway's change feed — that is
//! what wakes a statement held on gateway A the moment an approver decides
//! on gateway B. If the listening connection drops it is re-opened; waiting
//! statements also look again every second, so a missed notification
//! delays a statement, never loses it.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};

use super::seal::{seal_window, window_believed, Row, StoreKey};
use super::{StoreError, Write};
use crate::approval::breakglass::Window;
use crate::approval::{HoldRequest, State};

/// The channel every gateway LISTENs on (and the table's name).
const CHANNEL: &str = "airlock_hold_requests";

/// Every column of a row, in [`row`]'s order.
const COLUMNS: &str = "id, state, created_ms, expires_ms, requester, database, sql_hash, body, mac";

/// Connections for Airlock's own queries: decisions are short, and a
/// waiting statement reads its request once a second at most.
const POOL_SIZE: usize = 8;

#[derive(Clone)]
pub(super) struct Store {
    pool: Pool,
    key: StoreKey,
}

impl Store {
    /// Connects, creates the table if missing, and starts the listener
    /// that forwards other gateways' changes into `changes`.
    pub(super) async fn connect(
        url: &str,
        key: StoreKey,
        changes: broadcast::Sender<String>,
    ) -> Result<Store, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError(format!("not a usable PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("airlock approvals");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError(e.to_string()))?;
        let store = Store { pool, key };
        store.create_table().await?;
        // The first LISTEN happens before `connect` returns, so no change
        // made after this gateway starts can be missed.
        let listening = listen(&config).await?;
        tokio::spawn(forward_changes(config, listening, changes));
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError(format!("cannot reach the shared store: {e}")))
    }

    async fn create_table(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Gateways starting together would race on CREATE TABLE IF NOT
        // EXISTS (it is not atomic in PostgreSQL); the lock orders them.
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext('airlock_hold_requests'));
             CREATE TABLE IF NOT EXISTS airlock_hold_requests (
                 id text PRIMARY KEY,
                 state text NOT NULL,
                 created_ms bigint NOT NULL,
                 expires_ms bigint NOT NULL,
                 requester text NOT NULL,
                 database text NOT NULL,
                 sql_hash text NOT NULL,
                 body text NOT NULL
             );
             -- Tables made before rows were sealed get the column; their
             -- unsealed rows are ignored.
             ALTER TABLE airlock_hold_requests ADD COLUMN IF NOT EXISTS mac text;
             CREATE INDEX IF NOT EXISTS airlock_hold_requests_state
                 ON airlock_hold_requests (state, created_ms);
             CREATE INDEX IF NOT EXISTS airlock_hold_requests_statement
                 ON airlock_hold_requests (requester, database, sql_hash, state);
             CREATE TABLE IF NOT EXISTS airlock_break_glass (
                 identity text PRIMARY KEY,
                 body text NOT NULL,
                 mac text NOT NULL
             );",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn insert(&self, request: &HoldRequest) -> Result<(), StoreError> {
        let row = Row::sealed(request, &self.key)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            &format!("INSERT INTO airlock_hold_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            &[
                &row.id,
                &row.state,
                &row.created_ms,
                &row.expires_ms,
                &row.requester,
                &row.database,
                &row.sql_hash,
                &row.body,
                &row.mac,
            ],
        )
        .await?;
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &request.id])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<HoldRequest>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM airlock_hold_requests WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.and_then(|r| self.believed(&r)))
    }

    pub(super) async fn list(
        &self,
        state: Option<State>,
        limit: usize,
    ) -> Result<Vec<HoldRequest>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM airlock_hold_requests
                     WHERE ($1::text IS NULL OR state = $1)
                     ORDER BY created_ms DESC, id DESC LIMIT $2"
                ),
                &[&state.map(State::name), &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| self.believed(r)).collect())
    }

    pub(super) async fn matching(
        &self,
        state: State,
        requester: &str,
        database: &str,
        sql_hash: &str,
    ) -> Result<Vec<HoldRequest>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM airlock_hold_requests
                     WHERE requester = $1 AND database = $2 AND sql_hash = $3 AND state = $4
                     ORDER BY created_ms DESC"
                ),
                &[&requester, &database, &sql_hash, &state.name()],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| self.believed(r)).collect())
    }

    pub(super) async fn update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut HoldRequest) -> (Write, T),
    ) -> Result<Option<(HoldRequest, T)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                &format!("SELECT {COLUMNS} FROM airlock_hold_requests WHERE id = $1 FOR UPDATE"),
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        // A row that is not believed is not decided on either.
        let Some(mut request) = self.believed(&row) else {
            return Ok(None);
        };
        let (write, answer) = change(&mut request);
        if let Write::Store = write {
            let row = Row::sealed(&request, &self.key)?;
            tx.execute(
                "UPDATE airlock_hold_requests SET state = $2, body = $3, mac = $4 WHERE id = $1",
                &[&row.id, &row.state, &row.body, &row.mac],
            )
            .await?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &request.id])
                .await?;
            tx.commit().await?;
        }
        Ok(Some((request, answer)))
    }
}

impl Store {
    /// Stores `window`, replacing the identity's earlier one.
    pub(super) async fn put_window(&self, window: &Window) -> Result<(), StoreError> {
        let body = serde_json::to_string(window)?;
        let mac = seal_window(&self.key, &window.identity, &body);
        self.client()
            .await?
            .execute(
                "INSERT INTO airlock_break_glass (identity, body, mac) VALUES ($1, $2, $3)
                 ON CONFLICT (identity) DO UPDATE SET body = excluded.body, mac = excluded.mac",
                &[&window.identity, &body, &mac],
            )
            .await?;
        Ok(())
    }

    /// Removes `identity`'s window; the one that was stored, if believed.
    pub(super) async fn take_window(&self, identity: &str) -> Result<Option<Window>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "DELETE FROM airlock_break_glass WHERE identity = $1 RETURNING body, mac",
                &[&identity],
            )
            .await?;
        Ok(row.and_then(|r| {
            let (body, mac): (String, String) = (r.get(0), r.get(1));
            window_believed(&self.key, identity, &body, &mac, "shared")
        }))
    }

    /// Every stored window that is believed (ended ones too).
    pub(super) async fn windows(&self) -> Result<Vec<Window>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT identity, body, mac FROM airlock_break_glass ORDER BY identity",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let (identity, body, mac): (String, String, String) =
                    (r.get(0), r.get(1), r.get(2));
                window_believed(&self.key, &identity, &body, &mac, "shared")
            })
            .collect())
    }

    /// The request a fetched row holds, if its seal verifies (see
    /// [`super::seal`]); a row that does not is logged and ignored.
    fn believed(&self, r: &tokio_postgres::Row) -> Option<HoldRequest> {
        let row = match row(r) {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(error = %e, "a row of the shared approval store is unreadable: ignored");
                return None;
            }
        };
        row.believed(&self.key, "shared")
    }
}

fn row(r: &tokio_postgres::Row) -> Result<Row, tokio_postgres::Error> {
    Ok(Row {
        id: r.try_get(0)?,
        state: r.try_get(1)?,
        created_ms: r.try_get(2)?,
        expires_ms: r.try_get(3)?,
        requester: r.try_get(4)?,
        database: r.try_get(5)?,
        sql_hash: r.try_get(6)?,
        body: r.try_get(7)?,
        mac: r.try_get(8)?,
    })
}

/// A connection that has run LISTEN, and the stream of its notifications.
struct Listening {
    _client: tokio_postgres::Client,
    notifications: tokio::sync::mpsc::UnboundedReceiver<String>,
}

async fn listen(config: &tokio_postgres::Config) -> Result<Listening, StoreError> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, notifications) = tokio::sync::mpsc::unbounded_channel();
    // The connection object delivers notifications only while polled, so
    // it gets its own task; it ends when the connection does.
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the shared approval store's listening connection failed");
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(Listening {
        _client: client,
        notifications,
    })
}

/// Forwards notified ids into the change feed for as long as anyone may
/// subscribe; re-opens the listening connection when it drops.
async fn forward_changes(
    config: tokio_postgres::Config,
    mut listening: Listening,
    changes: broadcast::Sender<String>,
) {
    loop {
        while let Some(id) = listening.notifications.recv().await {
            let _ = changes.send(id);
        }
        tracing::warn!("lost the shared approval store's change feed; reconnecting");
        let mut pause = Duration::from_millis(200);
        listening = loop {
            tokio::time::sleep(pause).await;
            match listen(&config).await {
                Ok(l) => break l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen on the shared approval store yet");
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        };
        tracing::info!("listening on the shared approval store again");
    }
}
