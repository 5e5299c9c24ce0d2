//! The record of what happened: sessions, statements, verdicts, results.
//!
//! Proxies and the gate report [`AuditEvent`]s to the [`Audit`], which
//! writes each to the chained, tamper-evident log ([`log::AuditLog`]) and
//! to the operator's structured log. Events carry no passwords and no row
//! values in clear — statements and messages are masked before they get
//! here, and results are recorded as counts, a digest of the rows exactly
//! as sent and, when capture is configured, the first masked rows.

pub mod chain;
mod digest;
mod finished;
mod journal;
pub mod layout;
pub mod log;
pub mod ocsf;
pub mod read;
pub mod record;
pub mod verify;

#[cfg(test)]
mod tests;

pub use digest::RowDigest;
pub use finished::{ResultTally, Unrecorded};

use crate::gate::{Origin, SessionId, SessionInfo};
use crate::mask::MaskStats;
use crate::sql::Classes;
use std::net::SocketAddr;
use std::time::Duration;

/// Something worth recording.
#[derive(Debug)]
pub enum AuditEvent<'a> {
    /// The policy in force from now on: at start and after each reload.
    PolicyLoaded {
        digest: &'a str,
        rules: usize,
        source: &'a str,
    },
    SessionStart {
        session: &'a SessionInfo,
    },
    /// A login that failed, before any session exists.
    AuthFailure {
        client_addr: SocketAddr,
        user: &'a str,
        reason: &'a str,
    },
    /// A query checked by the gate: its classes and objects, the verdict
    /// and the rule.
    Statement {
        session: &'a SessionId,
        sql: &'a str,
        origin: Origin,
        classes: Classes,
        objects: &'a [String],
        action: &'a str,
        rule: &'a str,
    },
    /// A statement held for approval: the request the approvers decide.
    Hold {
        session: &'a SessionId,
        request: &'a crate::approval::HoldRequest,
    },
    /// How a held statement's request ended, recorded before the statement
    /// is released (or refused).
    Decision {
        session: &'a SessionId,
        request: &'a crate::approval::HoldRequest,
    },
    /// A decision offered outside the web pages (a Slack button) that was
    /// refused: an unverifiable callback, an unknown person, or a decision
    /// the rules forbid. `user` is who claimed to decide (`slack:U…`, and
    /// the identity when known); `request` is empty when unknown.
    DecisionRefused {
        via: &'a str,
        client_addr: SocketAddr,
        user: &'a str,
        request: &'a str,
        reason: &'a str,
    },
    /// A break-glass window for `identity` was opened (until `until_ms`)
    /// or closed early, by admin `by`. The holds it approves are
    /// `decision` records whose one vote names the window.
    BreakGlass {
        action: &'a str,
        identity: &'a str,
        by: &'a str,
        reason: &'a str,
        until_ms: u64,
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
        /// BLAKE3 of the row messages exactly as sent to the client.
        digest: &'a str,
        /// The first rows as sent (masked), when capture is configured.
        captured: &'a [Vec<Option<String>>],
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

/// What became of a recorded event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Sealed into the chain under this sequence number: in the file
    /// (statements, at once; results and session records, within the
    /// batch window), and on disk once [`Audit::durable`] says so.
    Written(u64),
    /// No chained log is kept (tests and tools).
    Untracked,
    /// The log could not take it: see [`Audit::failure`].
    Failed,
}

/// Where events go: the chained log (when there is one) and the operator log.
pub struct Audit {
    log: Option<log::AuditLog>,
    /// Masked rows kept in each result record (0: none).
    capture_rows: usize,
}

impl Audit {
    /// Events go to the operator log only: no chain (tests and tools).
    pub fn log_only() -> Self {
        Self {
            log: None,
            capture_rows: 0,
        }
    }

    pub fn chained(log: log::AuditLog, capture_rows: usize) -> Self {
        Self {
            log: Some(log),
            capture_rows,
        }
    }

    pub fn capture_rows(&self) -> usize {
        self.capture_rows
    }

    /// Whether every statement's record must be on disk before it runs
    /// (`fsync = "always"`); otherwise only held and privileged ones wait.
    pub fn every_statement_durable(&self) -> bool {
        self.log
            .as_ref()
            .is_some_and(|l| l.fsync() == log::Fsync::Always)
    }

    /// Records `event`. The record is in the log file when this returns
    /// `Written`; [`Audit::durable`] waits for it to reach the disk.
    pub fn record(&self, event: AuditEvent<'_>) -> Receipt {
        trace(&event);
        let Some(log) = &self.log else {
            return Receipt::Untracked;
        };
        // What authorises or reports something about to reach the
        // upstream is written at once; what follows it (results, errors,
        // ends) goes with the next write.
        let record = record::to_record(&event);
        let seq = match event {
            AuditEvent::Result { .. }
            | AuditEvent::Error { .. }
            | AuditEvent::SessionStart { .. }
            | AuditEvent::SessionEnd { .. } => log.append_deferred(record),
            _ => log.append(record),
        };
        seq.map_or(Receipt::Failed, Receipt::Written)
    }

    /// Waits until the recorded event is on disk.
    pub async fn durable(&self, receipt: Receipt) -> Result<(), String> {
        match (receipt, &self.log) {
            (Receipt::Written(seq), Some(log)) => log.durable(seq).await,
            (Receipt::Failed, _) => Err(self
                .failure()
                .unwrap_or_else(|| "the audit log is closed".into())),
            _ => Ok(()),
        }
    }

    /// Why events cannot be recorded right now (a full disk), if so: the
    /// gate then refuses statements rather than run them unrecorded.
    pub fn failure(&self) -> Option<String> {
        self.log.as_ref().and_then(log::AuditLog::failure)
    }

    /// Ends the chained log with a final signed checkpoint.
    pub fn close(&self) {
        if let Some(log) = &self.log {
            log.close();
        }
    }
}

/// Writes `event` to the operator log (target `airlock::audit`).
fn trace(event: &AuditEvent<'_>) {
    match event {
        AuditEvent::PolicyLoaded {
            digest,
            rules,
            source,
        } => {
            tracing::info!(target: "airlock::audit", digest, rules, source, "policy loaded")
        }
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
            ..
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
            ..
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
        AuditEvent::BreakGlass {
            action,
            identity,
            by,
            reason,
            until_ms,
        } => tracing::warn!(
            target: "airlock::audit",
            action, identity, by, reason, until_ms, "break-glass window"
        ),
        AuditEvent::Hold { session, request } => tracing::info!(
            target: "airlock::audit",
            session = %session, request = %request.id, rule = %request.rule, group = %request.group,
            quorum = request.quorum, "statement held"
        ),
        AuditEvent::DecisionRefused {
            via,
            client_addr,
            user,
            request,
            reason,
        } => tracing::warn!(
            target: "airlock::audit",
            via, client = %client_addr, user, request, reason, "decision refused"
        ),
        AuditEvent::Decision { session, request } => tracing::info!(
            target: "airlock::audit",
            session = %session, request = %request.id, verdict = request.state.name(),
            approvers = ?request.votes.iter().map(|v| v.approver.as_str()).collect::<Vec<_>>(),
            "hold decided"
        ),
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
