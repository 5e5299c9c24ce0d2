//! One statement run on a MySQL/MariaDB connection of Airlock's own, with
//! caps (see [`crate::proxy::capped`]).
//!
//! Each run logs in afresh as the service login, set up for the identity
//! exactly as a wire session is (upstream role, read-only, statement
//! timeout, connection attributes naming the agent), so nothing one call
//! changes in its session reaches another. The login does not ask for
//! multi-statements: the server refuses a second statement in the text,
//! so nothing Airlock misread in it can run one. Rows are read as they
//! come; at a cap Airlock stops reading, tells the server to stop the
//! statement (`KILL QUERY` from a connection of its own) and closes the
//! connection, so neither side holds more than the socket's buffers past
//! the cap.

use super::handshake::{
    self, ends_result_set, ErrPacket, OkPacket, CLIENT_CONNECT_ATTRS, CLIENT_DEPRECATE_EOF,
    CLIENT_LONG_FLAG, CLIENT_TRANSACTIONS, ERR_HEADER, OK_HEADER, REQUIRED,
};
use super::packet::Fields;
use super::upstream::{self, Upstream, UpstreamError, UpstreamSettings, COM_QUERY, COM_QUIT};
use crate::confinement::Confinement;
use crate::mask::mysql::{parse_column_definition_with, types, MysqlColumn, MysqlRowMasker};
use crate::proxy::capped::{masked_text, CappedError, CappedResult, Caps, ResultColumn, StoppedBy};
use bytes::Bytes;
use std::time::Duration;

/// Extra time past the server's statement timeout before Airlock stops
/// the statement itself.
const GRACE: Duration = Duration::from_secs(5);

/// Where and as whom a statement runs.
pub struct Target<'a> {
    pub settings: &'a UpstreamSettings,
    pub confinement: &'a Confinement,
    /// The database the statement runs in.
    pub database: &'a str,
    /// The agent and Airlock session, for the server's connection
    /// attributes (see [`upstream::session_attributes`]).
    pub identity: &'a str,
    pub session: &'a str,
    /// The call may only read (`SET SESSION TRANSACTION READ ONLY`).
    pub read_only: bool,
}

/// Runs `sql` for `target`, masking every row with `masker`.
pub async fn run(
    target: Target<'_>,
    sql: &str,
    masker: &mut MysqlRowMasker,
    caps: Caps,
) -> Result<CappedResult, CappedError> {
    let settings = settings_for(&target);
    let mut upstream = tokio::time::timeout(settings.connect_timeout, upstream::connect(&settings))
        .await
        .map_err(|_| CappedError::Upstream("the upstream did not answer the login".into()))?
        .map_err(upstream_error)?;
    if let Err(e) = set_up(&mut upstream, &target, caps).await {
        quit(upstream).await;
        return Err(e);
    }
    let id = upstream.connection_id;
    let work = converse(&mut upstream, sql, masker, caps);
    match tokio::time::timeout(caps.timeout + GRACE, work).await {
        Ok(Ok(result)) => {
            if result.stopped_by.is_some() {
                stop(settings, upstream, id);
            } else {
                quit(upstream).await;
            }
            Ok(result)
        }
        // The conversation broke off: the connection is closed with
        // whatever it was doing stopped.
        Ok(Err(e)) => {
            stop(settings, upstream, id);
            Err(e)
        }
        Err(_) => {
            stop(settings, upstream, id);
            Err(CappedError::Timeout(caps.timeout))
        }
    }
}

/// The gate's samples (see [`crate::mask::sample`]) for one session: on a
/// connection of its own in the session's current database, confined as
/// the session is, read-only.
pub struct Sampler {
    settings: UpstreamSettings,
    confinement: Confinement,
    identity: String,
    session: String,
}

impl Sampler {
    pub fn new(
        settings: UpstreamSettings,
        confinement: Confinement,
        identity: &str,
        session: &str,
    ) -> Self {
        Self {
            settings,
            confinement,
            identity: identity.to_string(),
            session: session.to_string(),
        }
    }
}

impl crate::mask::sample::Sampler for Sampler {
    fn sample<'a>(
        &'a self,
        database: &'a str,
        sql: &'a str,
        engine: std::sync::Arc<crate::mask::Masker>,
    ) -> crate::mask::sample::Sample<'a> {
        use crate::mask::sample::{SampleError, SAMPLE_BYTES, SAMPLE_ROWS, SAMPLE_TIME};
        Box::pin(async move {
            let target = Target {
                settings: &self.settings,
                confinement: &self.confinement,
                database,
                identity: &self.identity,
                session: &self.session,
                read_only: true,
            };
            let mut masker = MysqlRowMasker::new(engine);
            let caps = Caps {
                max_rows: SAMPLE_ROWS,
                max_bytes: SAMPLE_BYTES,
                timeout: SAMPLE_TIME,
            };
            match run(target, sql, &mut masker, caps).await {
                Ok(result) => Ok(result.stats),
                Err(CappedError::Server { code, message })
                    if [1049, 1146]
                        .iter()
                        .any(|n| message.starts_with(&format!("ERROR {n}:"))) =>
                {
                    Err(SampleError::Missing(format!("{code}: {message}")))
                }
                // No such column; no privilege on the table or column.
                Err(CappedError::Server { code, message })
                    if [1054, 1142, 1143]
                        .iter()
                        .any(|n| message.starts_with(&format!("ERROR {n}:"))) =>
                {
                    Err(SampleError::Refused(format!("{code}: {message}")))
                }
                // A timeout, a failing view, a lost connection: what the
                // table holds is not known.
                Err(e) => Err(SampleError::Failed(e.to_string())),
            }
        })
    }
}

/// The login for `target`: only the capabilities a single statement with
/// text results needs, utf8mb4 (the classifier read the text as UTF-8),
/// and a confined identity entering its database after `SET ROLE`, as a
/// wire session does.
fn settings_for(target: &Target<'_>) -> UpstreamSettings {
    let mut settings = target.settings.clone();
    settings.capabilities =
        REQUIRED | CLIENT_TRANSACTIONS | CLIENT_LONG_FLAG | CLIENT_CONNECT_ATTRS;
    settings.mariadb_capabilities = 0;
    settings.charset = handshake::UTF8MB4_GENERAL_CI;
    settings.attributes = upstream::session_attributes(target.identity, target.session);
    let confined = !target.confinement.mysql_setup().is_empty();
    settings.database =
        (!confined && !target.database.is_empty()).then(|| target.database.to_string());
    settings
}

async fn set_up(
    upstream: &mut Upstream,
    target: &Target<'_>,
    caps: Caps,
) -> Result<(), CappedError> {
    let mariadb = upstream.is_mariadb();
    let mut statements = target.confinement.mysql_setup();
    if !statements.is_empty() && !target.database.is_empty() {
        statements.push(format!("USE `{}`", target.database.replace('`', "``")));
    }
    statements.extend(target.confinement.mysql_timeout_setup(mariadb));
    // The endpoint's own timeout, after the identity's: the shorter wins
    // on the server, and Airlock's grace timer catches what it misses
    // (MySQL's `max_execution_time` only stops SELECTs).
    let secs = caps.timeout.as_secs_f64().max(0.001);
    let identity_limit = target.confinement.statement_timeout;
    if identity_limit.is_none_or(|t| caps.timeout < t) {
        statements.push(if mariadb {
            format!("SET SESSION max_statement_time = {secs:.3}")
        } else {
            format!(
                "SET SESSION max_execution_time = {}",
                caps.timeout.as_millis().max(1)
            )
        });
    }
    statements.push("SET NAMES utf8mb4".into());
    if target.read_only {
        statements.push("SET SESSION TRANSACTION READ ONLY".into());
    }
    for sql in statements {
        if let Err(e) = upstream::execute(upstream, &sql).await {
            tracing::warn!(error = %e, statement = %sql, "the upstream refused the identity's set-up for a capped call (an MCP call or a sample)");
            return Err(CappedError::Server {
                code: "42000".into(),
                message: "Airlock could not start this call under the identity's upstream_role / read_only setting; the gateway's log says why".into(),
            });
        }
    }
    Ok(())
}

async fn converse(
    upstream: &mut Upstream,
    sql: &str,
    masker: &mut MysqlRowMasker,
    caps: Caps,
) -> Result<CappedResult, CappedError> {
    let capabilities = upstream.capabilities;
    let packets = &mut upstream.packets;
    packets.reset();
    packets.write_with(|buf| {
        buf.extend_from_slice(&[COM_QUERY]);
        buf.extend_from_slice(sql.as_bytes());
    });
    packets.flush().await.map_err(packet_error)?;
    let mut next = async || {
        packets
            .read()
            .await
            .map_err(packet_error)?
            .ok_or_else(|| CappedError::Upstream("the server closed the connection".into()))
    };
    let mut result = CappedResult::default();
    let first = next().await?;
    let count = match first.payload.first() {
        Some(&ERR_HEADER) => return Err(server_error(masker, &first.payload)),
        Some(&OK_HEADER) => {
            let ok = OkPacket::parse(&first.payload, capabilities)
                .map_err(|e| CappedError::Upstream(e.to_string()))?;
            result.command = Some(format!("OK {}", ok.affected_rows));
            result.stats = masker.take_stats();
            return Ok(result);
        }
        _ => Fields::new(&first.payload)
            .lenenc_int()
            .map_err(|_| CappedError::Upstream("a malformed column count".into()))?,
    };
    let mut columns = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        let p = next().await?;
        let column = parse_column_definition_with(&p.payload, false)
            .unwrap_or_else(|| MysqlColumn::unknown("?"));
        columns.push(column);
    }
    if capabilities & CLIENT_DEPRECATE_EOF == 0 {
        next().await?;
    }
    masker.set_columns(&columns);
    result.columns = columns
        .iter()
        .map(|c| ResultColumn {
            // Names can carry data (`SELECT … AS` a value): masked as the
            // wire listener masks them.
            name: masked_text(masker.mask_message_text(c.name.as_bytes()), c.name.clone()),
            type_name: type_name(c),
        })
        .collect();
    let mut bytes = 0u64;
    loop {
        let row = next().await?;
        if row.payload.first() == Some(&ERR_HEADER) {
            return Err(server_error(masker, &row.payload));
        }
        if ends_result_set(&row.payload, capabilities) {
            result.command = Some(format!("SELECT {}", result.rows.len()));
            break;
        }
        if result.rows.len() as u64 >= caps.max_rows {
            result.stopped_by = Some(StoppedBy::MaxRows);
            break;
        }
        let outcome = masker.mask_text_row(&row.payload);
        let (values, size) = row_values(outcome.frame_or(&row.payload), &columns);
        if bytes + size > caps.max_bytes {
            result.stopped_by = Some(StoppedBy::MaxBytes);
            break;
        }
        bytes += size;
        result.rows.push(values);
    }
    result.stats = masker.take_stats();
    Ok(result)
}

/// Closes a connection that is idle between commands.
async fn quit(mut upstream: Upstream) {
    upstream.packets.reset();
    upstream.packets.write_packet(&[COM_QUIT]);
    let _ = upstream.packets.flush().await;
}

/// Stops whatever the connection `id` is running and closes it: closing
/// alone would let the server run a statement to its end.
fn stop(settings: UpstreamSettings, upstream: Upstream, id: u32) {
    tokio::spawn(async move {
        let _ = upstream::kill_query(&settings, id).await;
        drop(upstream);
    });
}

/// The values of one text-protocol row as JSON, and their size in bytes.
fn row_values(payload: &Bytes, columns: &[MysqlColumn]) -> (Vec<serde_json::Value>, u64) {
    let mut f = Fields::new(payload);
    let mut row = Vec::with_capacity(columns.len());
    let mut size = 0u64;
    for column in columns {
        if f.peek_u8() == Some(0xFB) {
            let _ = f.u8();
            row.push(serde_json::Value::Null);
            continue;
        }
        let Ok(raw) = f.lenenc_bytes() else { break };
        size += raw.len() as u64;
        row.push(json_value(column, raw));
    }
    (row, size)
}

/// A text value as JSON: integers typed, text as text, bytes that are not
/// UTF-8 as `\x` and their hex digits (as PostgreSQL writes bytea), the
/// rest (decimals, floats, dates…) as the server wrote them.
fn json_value(column: &MysqlColumn, raw: &[u8]) -> serde_json::Value {
    let Ok(text) = std::str::from_utf8(raw) else {
        return format!("\\x{}", crate::hex::encode(raw)).into();
    };
    let integer = matches!(
        column.column_type,
        types::TINY | types::SHORT | types::LONG | types::INT24 | types::LONGLONG
    );
    if integer {
        if let Ok(n) = text.parse::<i64>() {
            return n.into();
        }
        if let Ok(n) = text.parse::<u64>() {
            return n.into();
        }
    }
    text.into()
}

/// The server's name of a column's type.
fn type_name(column: &MysqlColumn) -> String {
    let binary = column.charset == crate::mask::mysql::BINARY_CHARSET;
    let name = match column.column_type {
        types::DECIMAL | types::NEWDECIMAL => "decimal",
        types::TINY => "tinyint",
        types::SHORT => "smallint",
        types::LONG => "int",
        types::INT24 => "mediumint",
        types::LONGLONG => "bigint",
        types::FLOAT => "float",
        types::DOUBLE => "double",
        types::NULL => "null",
        types::TIMESTAMP => "timestamp",
        types::DATE => "date",
        types::TIME => "time",
        types::DATETIME => "datetime",
        types::YEAR => "year",
        types::BIT => "bit",
        types::JSON => "json",
        types::ENUM => "enum",
        types::SET => "set",
        types::TINY_BLOB | types::MEDIUM_BLOB | types::LONG_BLOB | types::BLOB if binary => "blob",
        types::TINY_BLOB | types::MEDIUM_BLOB | types::LONG_BLOB | types::BLOB => "text",
        types::VARCHAR | types::VAR_STRING if binary => "varbinary",
        types::VARCHAR | types::VAR_STRING => "varchar",
        types::STRING if binary => "binary",
        types::STRING => "char",
        types::GEOMETRY => "geometry",
        other => return format!("type {other}"),
    };
    let unsigned = column.flags & crate::mask::mysql::UNSIGNED_FLAG != 0
        && matches!(
            column.column_type,
            types::TINY | types::SHORT | types::LONG | types::INT24 | types::LONGLONG
        );
    if unsigned {
        format!("{name} unsigned")
    } else {
        name.to_string()
    }
}

fn packet_error(e: super::packet::PacketError) -> CappedError {
    match e {
        super::packet::PacketError::TooLarge { .. } => CappedError::Unsupported(
            "a result row is larger than the gateway reads in one packet; select fewer columns"
                .into(),
        ),
        other => CappedError::Upstream(other.to_string()),
    }
}

fn upstream_error(e: UpstreamError) -> CappedError {
    match e {
        UpstreamError::Rejected {
            sqlstate, message, ..
        } => CappedError::Server {
            code: sqlstate,
            message,
        },
        other => CappedError::Upstream(other.to_string()),
    }
}

/// The server's error, its message masked: servers quote offending values.
fn server_error(masker: &mut MysqlRowMasker, payload: &[u8]) -> CappedError {
    let Ok(err) = ErrPacket::parse(payload) else {
        return CappedError::Upstream("a malformed error packet".into());
    };
    let code = err.sqlstate().to_string();
    let message = masked_text(
        masker.mask_message_text(err.message.as_bytes()),
        err.message,
    );
    // 1969 (MariaDB) and 3024 (MySQL): the statement timeout.
    let code = if matches!(err.code, 1969 | 3024) {
        "57014".to_string()
    } else {
        code
    };
    CappedError::Server {
        code,
        message: format!("ERROR {}: {message}", err.code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(column_type: u8, charset: u16, flags: u16) -> MysqlColumn {
        MysqlColumn {
            name: "c".into(),
            org_name: "c".into(),
            column_type,
            charset,
            flags,
            decimals: 0,
        }
    }

    #[test]
    fn values_are_typed_by_their_column() {
        let int = column(types::LONGLONG, 63, 0);
        assert_eq!(json_value(&int, b"-42"), serde_json::json!(-42));
        let unsigned = column(types::LONGLONG, 63, crate::mask::mysql::UNSIGNED_FLAG);
        assert_eq!(
            json_value(&unsigned, b"18446744073709551615"),
            serde_json::json!(18446744073709551615u64)
        );
        assert_eq!(type_name(&unsigned), "bigint unsigned");
        let dec = column(types::NEWDECIMAL, 63, 0);
        assert_eq!(json_value(&dec, b"1.10"), serde_json::json!("1.10"));
        let blob = column(types::BLOB, 63, 0);
        assert_eq!(json_value(&blob, b"\xff\x00"), serde_json::json!("\\xff00"));
        assert_eq!(type_name(&blob), "blob");
        assert_eq!(type_name(&column(types::BLOB, 45, 0)), "text");
        assert_eq!(type_name(&column(types::VAR_STRING, 45, 0)), "varchar");
    }

    #[test]
    fn rows_are_read_value_by_value() {
        let columns = vec![column(types::LONG, 63, 0), column(types::VAR_STRING, 45, 0)];
        let payload = Bytes::from_static(b"\x011\xfb");
        let (row, size) = row_values(&payload, &columns);
        assert_eq!(row, vec![serde_json::json!(1), serde_json::Value::Null]);
        assert_eq!(size, 1);
    }
}
