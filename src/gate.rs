//! The seam between the wire and the decision: both proxies hand every
//! statement to the [`Gate`] before it may reach the upstream, and take
//! from it the [`RowMasker`] that every result row passes through and the
//! [`AuditSink`] every event is recorded in.
//!
//! The gate owns no sockets and knows no wire format. It answers *whether*
//! a statement may run; the proxy decides *how* to say so to its client.

use crate::audit::{AuditEvent, AuditSink};
use crate::identity::Role;
use crate::mask::RowMasker;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which wire protocol a session speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Postgres,
    Mysql,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
        })
    }
}

/// A session identifier, unique within this gateway process and readable in
/// logs (`s-<start time>-<counter>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(pub String);

impl SessionId {
    pub fn next() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let epoch = EPOCH.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
        Self(format!(
            "s-{epoch:x}-{}",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the gate knows about the session a statement comes from.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub id: SessionId,
    pub identity: String,
    pub role: Role,
    pub client_addr: SocketAddr,
    pub application_name: Option<String>,
    pub database: String,
    pub protocol: Protocol,
    pub tls: bool,
}

/// How a statement reached the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A simple-protocol query (`Q` / COM_QUERY); may hold several statements.
    SimpleQuery,
    /// An extended-protocol Parse / COM_STMT_PREPARE.
    Prepare,
}

/// The gate's answer for one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused; the reason is shown to the client.
    Deny {
        rule: String,
        reason: String,
    },
}

/// The decision point shared by every session of every protocol.
pub struct Gate {
    audit: Arc<dyn AuditSink>,
}

impl Gate {
    pub fn new(audit: Arc<dyn AuditSink>) -> Self {
        Self { audit }
    }

    /// Decides whether `sql` may run for `session`, and records the
    /// statement and verdict. Until classification and policy land, every
    /// statement is allowed; the pipeline around this call is already the
    /// one that holds and denies.
    pub async fn check(&self, session: &SessionInfo, sql: &str, origin: Origin) -> Verdict {
        let verdict = Verdict::Allow;
        self.audit.record(AuditEvent::Statement {
            session: session.id.clone(),
            sql,
            origin,
            verdict: &verdict,
        });
        verdict
    }

    /// The masker for a new session's result rows.
    pub fn masker_for(&self, _session: &SessionInfo) -> RowMasker {
        RowMasker::pass_through()
    }

    pub fn audit(&self) -> &Arc<dyn AuditSink> {
        &self.audit
    }
}
