//! Masked columns learned before the first transform of one runs.
//!
//! [`super::MaskedColumns`] learns from results as they pass. On its own
//! that leaves a window: a column nobody has yet read plainly through the
//! gateway is not known, so the first `reverse(email)`, `encode(…)` or
//! `email LIKE 'j%'` of it would run. So when a statement reads a column
//! through a transform and that column is not yet known, the gate first
//! reads a few rows of every table the statement reads — on a connection
//! of the session's own, as the session's login, with the result masked
//! and thrown away — and learns from what masking found there, exactly as
//! it learns from a result. A table sampled is not sampled again for a
//! while ([`SAMPLE_AGAIN_AFTER`]); a table it cannot read whole (a column
//! privilege) is sampled a column at a time.
//!
//! The sample is a plain `SELECT … LIMIT` of a table the statement itself
//! reads, capped in rows, bytes and time: the session could run it without
//! asking, so it gives the gateway no power the session lacks. It reaches
//! the database as the session's login (on PostgreSQL under the session's
//! `application_name` with `:sample`), so the database's own log shows it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{MaskStats, MaskedColumns, Masker};
use crate::policy::{MaskedColumns as Known, Policy, Transforms};
use crate::sql::{Classification, Dialect};

/// Rows read of each table.
pub const SAMPLE_ROWS: u64 = 200;
/// Bytes of values read of each table at most.
pub const SAMPLE_BYTES: u64 = 1 << 20;
/// How long the server may take over one sample.
pub const SAMPLE_TIME: Duration = Duration::from_secs(2);
/// A table sampled is sampled again after this long: rows written since
/// may hold what the sample did not.
pub const SAMPLE_AGAIN_AFTER: Duration = Duration::from_secs(600);
/// Tables sampled for one statement at most (a statement that reads more
/// not yet sampled is held), and columns tried one at a time in a table
/// that cannot be read whole.
const MAX_TABLES: usize = 8;
const MAX_COLUMNS: usize = 8;
/// Tables remembered as sampled; past this the memory starts again.
const MAX_REMEMBERED: usize = 10_000;

/// What a sample gives back.
pub type Sample<'a> = Pin<Box<dyn Future<Output = Result<MaskStats, SampleError>> + Send + 'a>>;

/// Why a sample gave nothing.
#[derive(Debug)]
pub enum SampleError {
    /// No such table (or schema, or database) where the sample looked: a
    /// name the session may resolve otherwise (its own `search_path`, a
    /// temporary table).
    Missing(String),
    /// The server refused the query (no such column, no privilege): the
    /// statement reads what the session cannot read either.
    Refused(String),
    /// The sample could not be taken (timeout, no connection): what the
    /// table holds is not known.
    Failed(String),
}

impl std::fmt::Display for SampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleError::Missing(why) | SampleError::Refused(why) | SampleError::Failed(why) => {
                f.write_str(why)
            }
        }
    }
}

/// Runs one query the gateway wrote, on a connection of a session's own,
/// with every row masked by `engine`; what masking found, by column.
pub trait Sampler: Send + Sync {
    fn sample<'a>(&'a self, database: &'a str, sql: &'a str, engine: Arc<Masker>) -> Sample<'a>;

    /// The tables a name without a schema (`"people"`, quoted) may mean
    /// in a session that changed its own search path: every table or view
    /// of that name, schema-qualified and quoted. Where a session cannot
    /// change how a name resolves, none.
    fn namesakes<'a>(
        &'a self,
        _table: &'a str,
    ) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + 'a>> {
        Box::pin(async { Vec::new() })
    }
}

/// A session's [`Sampler`], as the session's description carries it.
#[derive(Clone)]
pub struct Sampling(pub Arc<dyn Sampler>);

impl std::fmt::Debug for Sampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sampling")
    }
}

/// When each table was last sampled, per database.
#[derive(Default)]
pub struct Sampled(Mutex<HashMap<(String, String), Instant>>);

impl Sampled {
    fn is_fresh(&self, database: &str, table: &str) -> bool {
        let sampled = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sampled
            .get(&(database.to_string(), table.to_string()))
            .is_some_and(|at| at.elapsed() < SAMPLE_AGAIN_AFTER)
    }

    fn mark(&self, database: &str, table: &str) {
        let mut sampled = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if sampled.len() >= MAX_REMEMBERED {
            sampled.clear();
        }
        sampled.insert((database.to_string(), table.to_string()), Instant::now());
    }
}

/// The tables to sample before `classification` is decided: those read by
/// a statement that transforms a column not yet known to hold sensitive
/// values, when a rule of `policy` looks at such transforms and not
/// sampled lately. Empty — at the cost of a look at each statement — for
/// a statement without transforms.
pub fn tables_to_sample(
    classification: &Classification,
    policy: &Policy,
    columns: &MaskedColumns,
    sampled: &Sampled,
    database: &str,
) -> Vec<(String, Vec<String>)> {
    let mut wanted = Vec::new();
    if classification
        .statements
        .iter()
        .all(|s| s.sample_from.is_empty())
    {
        return wanted;
    }
    if !policy
        .rules()
        .iter()
        .any(|r| r.transforms == Some(Transforms::MaskedColumns))
    {
        return wanted;
    }
    let known = columns.read();
    for statement in &classification.statements {
        let unknown: Vec<String> = statement
            .transformed
            .iter()
            .filter(|c| !Known::Learned(&known).flagged(c))
            .cloned()
            .collect();
        if unknown.is_empty() {
            continue;
        }
        for table in &statement.sample_from {
            if !wanted.iter().any(|(t, _)| t == table) && !sampled.is_fresh(database, table) {
                wanted.push((table.clone(), unknown.clone()));
            }
        }
    }
    wanted
}

/// Samples each of `tables` (with the unknown columns read through a
/// transform) and learns from what masking finds. False when a sample
/// could not be taken: the statement is then decided as if every column
/// it transforms held sensitive values.
pub async fn learn_from_samples(
    tables: Vec<(String, Vec<String>)>,
    sampler: &dyn Sampler,
    engine: Arc<Masker>,
    dialect: Dialect,
    database: &str,
    columns: &MaskedColumns,
    sampled: &Sampled,
) -> bool {
    let take = |sql: String| {
        let engine = engine.clone();
        async move {
            // The connection's own wait and the server's timeout, with room
            // for both; what takes longer is not known.
            match tokio::time::timeout(SAMPLE_TIME * 2, sampler.sample(database, &sql, engine))
                .await
            {
                Ok(taken) => taken,
                Err(_) => Err(SampleError::Failed("the sample took too long".into())),
            }
        }
    };
    // Past the limit what the other tables hold is not known: a statement
    // cannot hide a table behind others it reads.
    let mut complete = tables.len() <= MAX_TABLES;
    for (table, unknown) in tables.into_iter().take(MAX_TABLES) {
        let mut found = false;
        let mut known = true;
        // The name as the sample's own connection resolves it, unless the
        // session may resolve it to another table of that name.
        let mut names = sampler.namesakes(&table).await;
        if names.len() > MAX_TABLES {
            names.truncate(MAX_TABLES);
            known = false;
        }
        if names.is_empty() {
            names.push(table.clone());
        }
        for name in &names {
            match sample_one(&take, name, &unknown, dialect, columns).await {
                Ok(()) => found = true,
                Err(SampleError::Missing(_)) => {}
                Err(why) => {
                    tracing::warn!(table = %name, %why, "cannot sample a table");
                    known = false;
                }
            }
        }
        if !found {
            // Nowhere to be seen: a table of the session's own (temporary)
            // or one it resolves otherwise.
            tracing::info!(%table, "no table to sample under this name");
            known = false;
        }
        if known {
            sampled.mark(database, &table);
        }
        complete &= known;
    }
    complete
}

/// Samples `table` whole or, when the server refuses `*` (a column
/// privilege), the `unknown` columns one at a time. `Ok` once the server
/// has answered about the table.
async fn sample_one<F, Fut>(
    take: &F,
    table: &str,
    unknown: &[String],
    dialect: Dialect,
    columns: &MaskedColumns,
) -> Result<(), SampleError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<MaskStats, SampleError>>,
{
    match take(format!("SELECT * FROM {table} LIMIT {SAMPLE_ROWS}")).await {
        Ok(stats) => {
            columns.learn(&stats);
            Ok(())
        }
        Err(SampleError::Refused(why)) => {
            tracing::debug!(%table, %why, "cannot sample the table whole; sampling its columns");
            for column in unknown
                .iter()
                .filter(|c| *c != crate::sql::transforms::EVERY_COLUMN)
                .take(MAX_COLUMNS)
            {
                let name = crate::sql::transforms::quoted_name(column, dialect);
                match take(format!("SELECT {name} FROM {table} LIMIT {SAMPLE_ROWS}")).await {
                    Ok(stats) => columns.learn(&stats),
                    Err(SampleError::Refused(_)) => {}
                    Err(other) => return Err(other),
                }
            }
            Ok(())
        }
        Err(other) => Err(other),
    }
}
