//! The record of what happened: sessions, statements, verdicts, results.
//!
//! Proxies and the gate report [`AuditEvent`]s to an [`AuditSink`]. The
//! sink here writes them to the structured log; the chained, tamper-evident
//! writer plugs in behind the same trait. Events carry no passwords and no
//! row values — only counts and digests of results.

pub mod chain;
pub mod log;
pub mod record;
pub mod verify;

#[cfg(test)]
mod tests;

use crate::gate::{Origin, SessionId, SessionInfo};
use crate::mask::MaskStats;
use crate::sql::Classes;
use std::net::SocketAddr;
use std::time::Duration;

/// Something worth recording.
#[derive(Debug)]
pub enum AuditEvent<'a> {
    SessionStart {
        session: &'a SessionInfo,
    },
    /// A login that failed, before any session exists.
    AuthFailure {
        client_addr: SocketAddr,
        user: &'a str,
        reason: &'a str,
    },
    /// A query checked by the gate: its classes, the action and the rule.
    Statement {
        session: SessionId,
        sql: &'a str,
        origin: Origin,
        classes: Classes,
        action: &'a str,
        rule: &'a str,
    },
    /// A statement finished: its command tag, rows and bytes sent to the client.
    Result {
        session: &'a SessionId,
        tag: &'a str,
        rows: u64,
        bytes: u64,
        duration: Duration,
        /// What masking replaced in the rows sent, by column and kind.
        masked: &'a MaskStats,
    },
    Error {
        session: &'a SessionId,
        code: &'a str,
        message: &'a str,
    },
    SessionEnd {
        session: &'a SessionId,
        reason: &'a str,
    },
}

/// Where events go.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: AuditEvent<'_>);

    /// Why events cannot be recorded right now (a full disk), if so: the
    /// gate then refuses statements rather than run them unrecorded.
    fn failure(&self) -> Option<String> {
        None
    }
}

/// The chained log, with each event also written to the structured log
/// for operators.
pub struct ChainSink {
    pub log: log::AuditLog,
}

impl AuditSink for ChainSink {
    fn record(&self, event: AuditEvent<'_>) {
        self.log.append(record::to_record(&event));
        LogSink.record(event);
    }

    fn failure(&self) -> Option<String> {
        self.log.failure()
    }
}

/// Writes events to the `tracing` log (target `airlock::audit`).
pub struct LogSink;

impl AuditSink for LogSink {
    fn record(&self, event: AuditEvent<'_>) {
        match event {
            AuditEvent::SessionStart { session } => tracing::info!(
                target: "airlock::audit",
                session = %session.id, identity = %session.identity, role = %session.role,
                client = %session.client_addr, application = session.application_name.as_deref().unwrap_or(""),
                database = %session.database, protocol = %session.protocol, tls = session.tls,
                "session start"
            ),
            AuditEvent::AuthFailure {
                client_addr,
                user,
                reason,
            } => {
                tracing::warn!(target: "airlock::audit", client = %client_addr, user, reason, "authentication failed")
            }
            AuditEvent::Statement {
                session,
                sql,
                origin,
                classes,
                action,
                rule,
            } => tracing::debug!(
                target: "airlock::audit",
                session = %session, origin = ?origin, classes = %classes, action, rule, sql_len = sql.len(),
                "statement"
            ),
            AuditEvent::Result {
                session,
                tag,
                rows,
                bytes,
                duration,
                masked,
            } => tracing::debug!(
                target: "airlock::audit",
                session = %session, tag, rows, bytes, micros = duration.as_micros() as u64,
                masked = masked.total(), masked_columns = %describe_masked(masked),
                "result"
            ),
            AuditEvent::Error {
                session,
                code,
                message,
            } => {
                tracing::debug!(target: "airlock::audit", session = %session, code, message, "error")
            }
            AuditEvent::SessionEnd { session, reason } => {
                tracing::info!(target: "airlock::audit", session = %session, reason, "session end")
            }
        }
    }
}

/// `email:3,card:1 in contact; phone:2 in notes`, for the log line.
fn describe_masked(stats: &MaskStats) -> String {
    stats
        .columns
        .iter()
        .map(|(column, counts)| {
            let kinds: Vec<String> = counts.iter().map(|(k, n)| format!("{k}:{n}")).collect();
            format!("{} in {column}", kinds.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
