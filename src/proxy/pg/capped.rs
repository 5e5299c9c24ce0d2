//! One statement run on a pooled upstream connection with caps (see
//! [`crate::proxy::capped`]).
//!
//! The statement goes in one extended-protocol Parse (the server refuses
//! more than one statement there, so nothing Airlock misread in the text
//! can run a second), bound with text results, and executed a batch of
//! rows at a time: when a cap is reached Airlock stops asking, and the
//! Sync that follows ends the implicit transaction and drops the portal.
//! The server never produces, and Airlock never holds, more than one batch
//! past the cap.

use super::codec::{self, error_fields, Fields, Message, MessageReader};
use super::relay::row_description;
use super::upstream::{Pool, PoolKey, Pooled, UpstreamError};
use crate::mask::{Column, RowMasker};
use crate::proxy::capped::{masked_text, CappedError, CappedResult, Caps, ResultColumn, StoppedBy};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Rows asked for per Execute: enough to keep round trips few, few enough
/// that a cap overshoots by little.
const BATCH_ROWS: u64 = 500;

/// Extra time past the server's statement timeout before Airlock cancels
/// the statement itself and drops the connection.
const GRACE: Duration = Duration::from_secs(5);

/// Runs `sql` on a connection for `key` (confined by `setup`, see
/// [`Pool::acquire_confined`]), masking every row with `masker`.
pub async fn run(
    pool: &Arc<Pool>,
    key: &PoolKey,
    setup: Option<&str>,
    sql: &str,
    masker: &mut RowMasker,
    caps: Caps,
) -> Result<CappedResult, CappedError> {
    if sql.as_bytes().contains(&0) {
        return Err(CappedError::Unsupported(
            "the statement contains a NUL byte".into(),
        ));
    }
    let mut pooled = pool
        .acquire_confined(key, setup)
        .await
        .map_err(upstream_error)?;
    pool.before_statement(sql.as_bytes());
    let backend = pooled.conn.backend_key;
    let work = converse(&mut pooled, sql, masker, caps);
    match tokio::time::timeout(caps.timeout + GRACE, work).await {
        Ok(Ok((result, reusable))) => {
            if reusable {
                pool.release(pooled);
            }
            result
        }
        // The conversation broke off: the connection's state is unknown,
        // so it is closed with its slot (dropped), never reused.
        Ok(Err(e)) => Err(e),
        Err(_) => {
            let _ = pool.settings().cancel(backend).await;
            Err(CappedError::Timeout(caps.timeout))
        }
    }
}

/// The gate's samples (see [`crate::mask::sample`]) for one session: on
/// pooled connections of the session's login and parameters, confined as
/// the session is, read-only, under the session's `application_name` with
/// `:sample`.
pub struct Sampler {
    pool: Arc<Pool>,
    key: PoolKey,
    setup: String,
}

impl Sampler {
    pub fn new(
        pool: Arc<Pool>,
        key: PoolKey,
        confinement: &crate::confinement::Confinement,
        identity: &str,
        session: &str,
    ) -> Self {
        let named = crate::sql::application_name::value(
            &crate::sql::application_name::prefix(identity, session),
            Some("sample"),
        );
        let mut setup = confinement
            .postgres_setup()
            .map(|confine| format!("{confine}; "))
            .unwrap_or_default();
        setup.push_str(&format!(
            "SET SESSION application_name = '{named}'; SET SESSION default_transaction_read_only = on"
        ));
        Self { pool, key, setup }
    }
}

impl crate::mask::sample::Sampler for Sampler {
    fn sample<'a>(
        &'a self,
        _database: &'a str,
        sql: &'a str,
        engine: Arc<crate::mask::Masker>,
    ) -> crate::mask::sample::Sample<'a> {
        use crate::mask::sample::{SampleError, SAMPLE_BYTES, SAMPLE_ROWS, SAMPLE_TIME};
        Box::pin(async move {
            let mut masker = RowMasker::new(engine);
            let caps = Caps {
                max_rows: SAMPLE_ROWS,
                max_bytes: SAMPLE_BYTES,
                timeout: SAMPLE_TIME,
            };
            match run(
                &self.pool,
                &self.key,
                Some(&self.setup),
                sql,
                &mut masker,
                caps,
            )
            .await
            {
                Ok(result) => Ok(result.stats),
                Err(CappedError::Server { code, message })
                    if matches!(code.as_str(), "42P01" | "3F000") =>
                {
                    Err(SampleError::Missing(format!("{code}: {message}")))
                }
                // No such column, not a table, no privilege.
                Err(CappedError::Server { code, message })
                    if matches!(code.as_str(), "42703" | "42809" | "42501") =>
                {
                    Err(SampleError::Refused(format!("{code}: {message}")))
                }
                // A timeout, a failing view, a lost connection: what the
                // table holds is not known.
                Err(e) => Err(SampleError::Failed(e.to_string())),
            }
        })
    }

    fn namesakes<'a>(
        &'a self,
        table: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send + 'a>> {
        Box::pin(async move {
            // Only a name without a schema: `"people"`, quotes doubled inside.
            let Some(inner) = table.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
                return Vec::new();
            };
            if inner.replace("\"\"", "").contains('"') {
                return Vec::new();
            }
            match self
                .pool
                .namesakes(&self.key, &inner.replace("\"\"", "\""))
                .await
            {
                Ok(names) => names,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot list the tables a name may mean");
                    Vec::new()
                }
            }
        })
    }
}

/// The exchange itself. `Ok((result, reusable))`: the connection is idle
/// again (and outside any transaction) when `reusable`.
async fn converse(
    pooled: &mut Pooled,
    sql: &str,
    masker: &mut RowMasker,
    caps: Caps,
) -> Result<(Result<CappedResult, CappedError>, bool), CappedError> {
    let conn = &mut pooled.conn;
    // A value larger than the byte cap is not read whole either.
    let limit = usize::try_from(caps.max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_mul(2)
        .max(1 << 20)
        .saturating_add(1024);
    let first_batch = (caps.max_rows + 1).min(BATCH_ROWS);
    let mut request = BytesMut::new();
    // Session-level, undone by the DISCARD ALL that resets the connection
    // when it goes back to the pool.
    request.extend_from_slice(&codec::frontend::query(&format!(
        "SET statement_timeout = {}",
        caps.timeout.as_millis().max(1)
    )));
    request.extend_from_slice(&message(b'P', |b| {
        b.put_u8(0);
        b.extend_from_slice(sql.as_bytes());
        b.put_u8(0);
        b.put_i16(0);
    }));
    request.extend_from_slice(&message(b'B', |b| {
        b.put_u8(0);
        b.put_u8(0);
        b.put_i16(0);
        b.put_i16(0);
        // All results in text format.
        b.put_i16(0);
    }));
    request.extend_from_slice(&message(b'D', |b| {
        b.put_u8(b'P');
        b.put_u8(0);
    }));
    request.extend_from_slice(&execute(first_batch));
    request.extend_from_slice(&message(b'H', |_| {}));
    send(conn, &request).await?;

    let buffered = std::mem::take(&mut conn.buffered);
    let mut reader = MessageReader::with_buffer(&mut conn.stream, buffered, limit);
    let mut result = CappedResult::default();
    let mut columns: Vec<Column> = Vec::new();
    let mut bytes: u64 = 0;
    let mut asked = first_batch;
    let mut failure: Option<CappedError> = None;
    // The SET's own exchange ends with ReadyForQuery; the statement's
    // answer follows it.
    let mut set_done = false;
    loop {
        let msg = reader.read().await.map_err(frame_error)?;
        match msg.tag() {
            b'Z' if !set_done => set_done = true,
            b'E' => {
                failure = Some(server_error(masker, &msg));
                if set_done {
                    break;
                }
            }
            b'T' => {
                columns = row_description(msg.body()).unwrap_or_default();
                masker.set_columns(&columns);
                result.columns = columns
                    .iter()
                    .map(|c| ResultColumn {
                        // Names can carry data (`SELECT … AS` a value):
                        // masked as the wire listener masks them.
                        name: masked_text(
                            masker.mask_message_text(c.name.as_bytes()),
                            c.name.clone(),
                        ),
                        type_name: type_name(c.type_oid),
                    })
                    .collect();
            }
            b'D' => {
                if result.stopped_by.is_some() {
                    // The rest of a batch already past a cap: read, not kept.
                    continue;
                }
                if result.rows.len() as u64 >= caps.max_rows {
                    result.stopped_by = Some(StoppedBy::MaxRows);
                    continue;
                }
                let outcome = masker.mask_row(msg.frame());
                let frame = outcome.frame_or(msg.frame());
                let (row, size) = row_values(frame, &columns);
                if bytes + size > caps.max_bytes {
                    result.stopped_by = Some(StoppedBy::MaxBytes);
                    continue;
                }
                bytes += size;
                result.rows.push(row);
            }
            b's' => {
                // PortalSuspended: the batch is done and rows remain.
                if result.stopped_by.is_some() {
                    break;
                }
                let wanted = caps.max_rows + 1 - asked.min(caps.max_rows + 1);
                if wanted == 0 {
                    result.stopped_by = Some(StoppedBy::MaxRows);
                    break;
                }
                let batch = wanted.min(BATCH_ROWS);
                asked += batch;
                let mut more = BytesMut::new();
                more.extend_from_slice(&execute(batch));
                more.extend_from_slice(&message(b'H', |_| {}));
                send_via(&mut reader, &more).await?;
            }
            b'C' if set_done => {
                let tag = Fields::new(msg.body()).cstr().unwrap_or_default();
                result.command = Some(String::from_utf8_lossy(tag).into_owned());
                break;
            }
            b'I' if set_done => break,
            b'G' | b'H' | b'W' => {
                return Err(CappedError::Unsupported(
                    "COPY does not run through this endpoint; use a wire client".into(),
                ))
            }
            // ParseComplete, BindComplete, NoData, notices, parameter
            // reports and the SET's CommandComplete.
            _ => {}
        }
    }
    // Sync ends the implicit transaction: a truncated portal is dropped, a
    // failed one rolled back.
    send_via(&mut reader, &codec::frontend::sync()).await?;
    let status = loop {
        let msg = reader.read().await.map_err(frame_error)?;
        match msg.tag() {
            b'Z' => break msg.body().first().copied(),
            b'E' if failure.is_none() => failure = Some(server_error(masker, &msg)),
            _ => {}
        }
    };
    let (_, rest) = reader.into_parts();
    conn.buffered = rest;
    result.stats = masker.take_stats();
    // A statement that opened a transaction block (BEGIN) leaves it open:
    // the connection is not reused, so the block dies with it.
    let reusable = status == Some(b'I');
    let outcome = match failure {
        Some(e) => Err(e),
        None if !reusable => Err(CappedError::Unsupported(
            "each tool call is its own transaction: transaction control statements are not kept across calls".into(),
        )),
        None => Ok(result),
    };
    Ok((outcome, reusable))
}

fn message(tag: u8, body: impl FnOnce(&mut BytesMut)) -> Bytes {
    codec::backend::frame(tag, body)
}

fn execute(rows: u64) -> Bytes {
    message(b'E', |b| {
        b.put_u8(0);
        b.put_i32(i32::try_from(rows).unwrap_or(i32::MAX));
    })
}

async fn send(conn: &mut super::upstream::UpstreamConn, bytes: &[u8]) -> Result<(), CappedError> {
    conn.stream
        .write_all(bytes)
        .await
        .map_err(|e| CappedError::Upstream(e.to_string()))?;
    conn.stream
        .flush()
        .await
        .map_err(|e| CappedError::Upstream(e.to_string()))
}

async fn send_via(
    reader: &mut MessageReader<&mut crate::proxy::Stream>,
    bytes: &[u8],
) -> Result<(), CappedError> {
    let stream = reader.get_mut();
    stream
        .write_all(bytes)
        .await
        .map_err(|e| CappedError::Upstream(e.to_string()))?;
    stream
        .flush()
        .await
        .map_err(|e| CappedError::Upstream(e.to_string()))
}

fn frame_error(e: codec::FrameError) -> CappedError {
    match e {
        codec::FrameError::TooLarge { limit, .. } => CappedError::Unsupported(format!(
            "a result row is larger than {limit} bytes; it was not read (raise [mcp] max_bytes or select fewer columns)"
        )),
        other => CappedError::Upstream(other.to_string()),
    }
}

fn upstream_error(e: UpstreamError) -> CappedError {
    match e {
        UpstreamError::Rejected { code, message }
        | UpstreamError::Confinement { code, message } => CappedError::Server { code, message },
        other => CappedError::Upstream(other.to_string()),
    }
}

/// The server's error, its texts masked: servers quote offending values.
fn server_error(masker: &mut RowMasker, msg: &Message) -> CappedError {
    let fields = error_fields(msg.body());
    let get = |c: u8| {
        fields
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let message = get(b'M');
    let mut message = masked_text(masker.mask_message_text(message.as_bytes()), message);
    let code = get(b'C');
    if code == "57014" {
        message = format!("{message} (the statement timeout is [mcp] statement_timeout_secs)");
    }
    CappedError::Server { code, message }
}

/// The values of one DataRow as JSON, and their size in bytes.
fn row_values(frame: &Bytes, columns: &[Column]) -> (Vec<serde_json::Value>, u64) {
    let mut f = Fields::new(frame.get(5..).unwrap_or_default());
    let count = f.i16().unwrap_or(0).max(0) as usize;
    let mut row = Vec::with_capacity(count);
    let mut size = 0u64;
    for i in 0..count {
        let Some(len) = f.i32() else { break };
        if len < 0 {
            row.push(serde_json::Value::Null);
            continue;
        }
        let Some(raw) = f.take(len as usize) else {
            break;
        };
        size += raw.len() as u64;
        let oid = columns.get(i).map_or(0, |c| c.type_oid);
        row.push(json_value(oid, raw));
    }
    (row, size)
}

/// A text-format value as JSON: integers and booleans typed, the rest
/// (numerics, floats, JSON documents…) as the server wrote them, so that
/// no precision is lost on the way.
fn json_value(oid: u32, raw: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(raw);
    match oid {
        16 => match raw {
            b"t" => true.into(),
            b"f" => false.into(),
            _ => text.into_owned().into(),
        },
        20 | 21 | 23 | 26 => text
            .parse::<i64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| text.into_owned().into()),
        _ => text.into_owned().into(),
    }
}

/// PostgreSQL's name of a built-in type; `oid <n>` for the others.
fn type_name(oid: u32) -> String {
    let name = match oid {
        16 => "bool",
        17 => "bytea",
        18 => "char",
        19 => "name",
        20 => "int8",
        21 => "int2",
        23 => "int4",
        25 => "text",
        26 => "oid",
        114 => "json",
        142 => "xml",
        700 => "float4",
        701 => "float8",
        790 => "money",
        869 => "inet",
        1042 => "bpchar",
        1043 => "varchar",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1184 => "timestamptz",
        1186 => "interval",
        1700 => "numeric",
        2950 => "uuid",
        3802 => "jsonb",
        1009 => "text[]",
        1007 => "int4[]",
        1016 => "int8[]",
        _ => return format!("oid {oid}"),
    };
    name.to_string()
}
