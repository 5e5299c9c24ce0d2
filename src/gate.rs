//! The seam between the wire and the decision: both proxies hand every
//! statement to the [`Gate`] before it may reach the upstream, and take
//! from it the [`RowMasker`] that every result row passes through and the
//! [`Audit`] every event is recorded in.
//!
//! The gate owns no sockets and knows no wire format. It answers *whether*
//! a statement may run — by classifying it ([`crate::sql`]) and asking the
//! policy in force ([`crate::policy`]) — and the proxy decides *how* to say
//! so to its client.

use crate::approval::{self, store::Approvals, HoldRequest, Recent, State};
use crate::audit::{Audit, AuditEvent, Receipt};
use crate::identity::Role;
use crate::mask::{Masker, RowMasker};
use crate::policy::{Action, Decision, MaskedColumns, Policy, Request};
use crate::sql::{Classes, Classification, ClassifierCache, Dialect, Statement, StatementClass};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The rule name recorded when a statement would switch to a client
/// encoding Airlock cannot read.
pub const ENCODING_RULE: &str = "airlock:client-encoding";

/// The rule named when Airlock refuses `LOAD DATA LOCAL INFILE` (see
/// [`crate::sql::local_infile`]).
pub const LOCAL_INFILE_RULE: &str = "airlock:local-infile";

/// The rule named when a PostgreSQL statement would take the session's
/// `application_name` away from the prefix that names its agent (see
/// [`crate::sql::application_name`]).
pub const APPLICATION_NAME_RULE: &str = "airlock:application-name";

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

/// How a session reached the gateway. The [`Protocol`] is always the
/// upstream server's (it decides the SQL dialect); an MCP session runs its
/// statements on a server of either kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Door {
    /// The PostgreSQL or MySQL wire listener.
    #[default]
    Wire,
    /// The MCP endpoint (Streamable HTTP or stdio).
    Mcp,
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
    /// How the agent reached the gateway: a wire listener or MCP.
    pub door: Door,
    pub tls: bool,
    /// What the database enforces for the identity (upstream role,
    /// read-only); statements that would undo it are refused.
    pub confinement: crate::confinement::Confinement,
    /// Why the session ended, once the relay knows: the reason a statement
    /// still waiting for approval is withdrawn.
    pub ending: EndCause,
    /// How the gate reads a few rows on a connection of the session's own
    /// (see [`crate::mask::sample`]); `None` learns from results only.
    pub sampler: Option<crate::mask::sample::Sampling>,
}

impl SessionInfo {
    /// The prefix of the session's PostgreSQL `application_name`, as the
    /// server reports it: `airlock:<identity>:<session>`.
    pub fn application_name_prefix(&self) -> String {
        crate::sql::application_name::prefix(&self.identity, &self.id.0)
    }
}

/// Why a session ended, set once by the relay that sees it end and read by
/// whatever the session leaves behind (a pending approval request).
#[derive(Clone, Debug, Default)]
pub struct EndCause(Arc<std::sync::OnceLock<String>>);

impl EndCause {
    /// Records the first cause; later ones are ignored.
    pub fn set(&self, why: &str) {
        let _ = self.0.set(why.to_string());
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// Ends a held statement's request as withdrawn when the wait for it is
/// dropped, and records how it ended: every request a session leaves
/// behind is ended, and every decision it got is in the audit log.
struct WithdrawOnDrop {
    approvals: Approvals,
    audit: Arc<Audit>,
    session: SessionInfo,
    /// `None` once the wait finished on its own.
    id: Option<String>,
}

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let approvals = self.approvals.clone();
        let audit = self.audit.clone();
        let session = self.session.clone();
        runtime.spawn(async move {
            let why = format!(
                "the session ended before a decision ({})",
                session.ending.get().unwrap_or("its connection closed")
            );
            match approvals.end(&id, State::Withdrawn, &why).await {
                // Decided or not, nobody else will record it now.
                Ok(Some(request)) => {
                    audit.record(AuditEvent::Decision {
                        session: &session.id,
                        request: &request,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(request = %id, error = %e, "cannot withdraw the request of an ended session")
                }
            }
        });
    }
}

/// The approval request that released a statement, and what the statement
/// did: reported to the request once its answers are complete, so that
/// approvers see "ran: DELETE 222 in 7.8 ms" rather than only "approved".
#[derive(Debug, Default)]
pub struct Released {
    id: String,
    results: Vec<String>,
    error: Option<String>,
}

impl Released {
    pub fn new(id: String) -> Self {
        Self {
            id,
            ..Default::default()
        }
    }

    pub fn ran(&mut self, summary: String) {
        self.results.push(summary);
    }

    pub fn failed(&mut self, error: String) {
        self.error = Some(error);
    }

    pub fn report(self, gate: &Gate) {
        if self.id.is_empty() {
            return;
        }
        let mut summary = self.results.join("; ");
        if let Some(error) = &self.error {
            if !summary.is_empty() {
                summary.push_str("; then ");
            }
            summary.push_str("failed: ");
            summary.push_str(error);
        }
        gate.record_outcome(self.id, self.error.is_none(), summary);
    }
}

/// What became of a held statement re-sent in defer mode.
#[derive(Clone, Debug)]
pub enum Deferred {
    /// An approval of it was claimed (request id): it may run, once.
    Released(String),
    /// It waits for approvers in this request (boxed: a request is large,
    /// and most answers are releases).
    Pending(Box<HoldRequest>),
}

/// How a statement reached the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A simple-protocol query (`Q` / COM_QUERY); may hold several statements.
    SimpleQuery,
    /// An extended-protocol Parse / COM_STMT_PREPARE.
    Prepare,
}

/// The gate's answer for one query.
#[derive(Clone, Debug)]
pub struct Checked {
    pub classification: Arc<Classification>,
    pub decision: Decision,
    /// Why the statement cannot be recorded (and so must not run), if so.
    pub audit_failure: Option<String>,
    /// Why Airlock refuses the statement whatever the policy says (it
    /// would switch to a client encoding Airlock cannot read, or ask the
    /// client for a file: `LOAD DATA LOCAL INFILE`), if so.
    pub unsupported: Option<String>,
}

/// Why a query is not run, as the agent is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// SQLSTATE: 42501 for a policy verdict, 53100 when the audit log
    /// cannot be written.
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    /// SQLSTATE 53400 (configuration limit exceeded); MySQL clients see
    /// ER_USER_LIMIT_REACHED.
    pub fn rate_limited(message: String) -> Self {
        Refusal {
            code: "53400",
            message,
        }
    }
}

impl Checked {
    pub fn allowed(&self) -> bool {
        self.audit_failure.is_none() && self.decision.action == Action::Allow
    }

    /// What an agent is told when the query is not run.
    pub fn refusal(&self) -> Option<Refusal> {
        if let Some(why) = &self.audit_failure {
            return Some(Refusal {
                code: "53100",
                message: format!(
                    "Airlock cannot record statements right now, so it runs none: {why}"
                ),
            });
        }
        // Over the identity's statement rate (`[limits]`): the denial says so.
        if let Action::Deny { reason } = &self.decision.action {
            if self.decision.rule == crate::limits::RATE_RULE {
                return Some(Refusal::rate_limited(reason.clone()));
            }
        }
        if let Some(why) = &self.unsupported {
            return Some(Refusal {
                code: "0A000",
                message: why.clone(),
            });
        }
        let policy = |message: String| {
            Some(Refusal {
                code: "42501",
                message,
            })
        };
        let rule = &self.decision.rule;
        match &self.decision.action {
            Action::Allow => None,
            Action::Deny { reason } => policy(format!("statement denied by Airlock rule \"{rule}\": {reason}")),
            Action::Hold(spec) => policy(format!(
                "statement held for approval by Airlock rule \"{rule}\" ({} approval{} from group \"{}\"); \
                 approvals are not enabled on this gateway yet, so it was not run",
                spec.quorum,
                if spec.quorum == 1 { "" } else { "s" },
                spec.group
            )),
        }
    }
}

/// What one session has prepared with SQL-level `PREPARE`, so that a later
/// `EXECUTE name` is judged by what it runs. Only allowed PREPAREs are
/// remembered: a refused one never reached the server.
#[derive(Debug, Default)]
pub struct SessionStatements {
    prepared: HashMap<String, Classes>,
    /// The session's last statements as logged, for approvers' context.
    recent: VecDeque<Recent>,
    /// Set when the relay learns prepared statements from the server's
    /// confirmations and hands the gate what each `EXECUTE` runs
    /// ([`SessionStatements::resolve`]) instead of the gate remembering
    /// every allowed `PREPARE` as if it had succeeded.
    confirmed_by_relay: bool,
}

impl SessionStatements {
    /// Whether `name` was prepared with an allowed SQL `PREPARE` (such
    /// statements may also be bound with the extended protocol). The match
    /// is exact: names are kept as the server stores them (unquoted folded
    /// to lower case, quoted as written), and a Bind names the stored form —
    /// `"Q"` is not `q`, and may be a statement Airlock never saw.
    pub fn contains(&self, name: &[u8]) -> bool {
        std::str::from_utf8(name).is_ok_and(|n| self.prepared.contains_key(n))
    }

    /// Statements whose prepared names the relay tracks from the server's
    /// confirmations.
    pub fn confirmed_by_relay() -> Self {
        Self {
            confirmed_by_relay: true,
            ..Self::default()
        }
    }

    /// What the prepared statements named by the next query's `EXECUTE`s
    /// run, as the server has them; names left out stay `unknown`.
    pub fn resolve(&mut self, prepared: HashMap<String, Classes>) {
        self.prepared = prepared;
    }
}

/// Statements of its session a hold request carries as context.
const RECENT_STATEMENTS: usize = 10;

/// Prepared names one session may hold; beyond this, old names are
/// forgotten and their EXECUTE is unknown again (fail closed).
const MAX_PREPARED_NAMES: usize = 10_000;

/// Classes whose statements wait for their record to be durable before
/// they run, even when the policy allows them outright.
const PRIVILEGED: Classes = Classes::of(&[
    StatementClass::Export,
    StatementClass::Ddl,
    StatementClass::Privilege,
    StatementClass::Admin,
    StatementClass::Unknown,
]);

/// The decision point shared by every session of every protocol.
pub struct Gate {
    audit: Arc<Audit>,
    /// Where held statements wait for approvers; `None` refuses them at once.
    approvals: Option<Approvals>,
    /// The inbox's address, for the notice a held statement's client gets.
    inbox_url: String,
    policy: RwLock<Arc<Policy>>,
    /// The masking engine of the policy in force; rebuilt with it.
    masker: RwLock<Arc<Masker>>,
    /// The key of the `token` strategy's pseudonyms.
    mask_key: [u8; 32],
    cache: ClassifierCache,
    /// Columns masking has found values in, for `transforms` rules.
    masked_columns: crate::mask::MaskedColumns,
    /// Tables sampled lately to learn them (see [`crate::mask::sample`]).
    sampled: crate::mask::sample::Sampled,
    /// This gateway's id in the requests it holds (see
    /// [`Approvals::withdraw_orphans`]).
    gateway_id: Option<String>,
    /// Fair limits; the statement rate per identity is enforced here.
    limits: Option<Arc<crate::limits::Limits>>,
    /// Open break-glass windows: holds of their identities are approved.
    break_glass: Option<Arc<crate::approval::breakglass::BreakGlass>>,
}

impl Gate {
    /// A gate whose masking tokens use a key that lives as long as the
    /// process (tests, tools); the gateway passes its persistent key to
    /// [`Gate::with_mask_key`].
    pub fn new(audit: Arc<Audit>, policy: Policy) -> Self {
        Self::with_mask_key(audit, policy, rand::random())
    }

    pub fn with_mask_key(audit: Arc<Audit>, policy: Policy, mask_key: [u8; 32]) -> Self {
        let masker = build_masker(&policy, mask_key);
        let user_functions = policy.user_functions();
        Self {
            audit,
            approvals: None,
            inbox_url: String::new(),
            policy: RwLock::new(Arc::new(policy)),
            masker: RwLock::new(masker),
            mask_key,
            cache: ClassifierCache::with_user_functions(8192, user_functions),
            masked_columns: crate::mask::MaskedColumns::in_memory(),
            sampled: Default::default(),
            gateway_id: None,
            limits: None,
            break_glass: None,
        }
    }

    /// Holds of identities with an open window in `windows` are approved
    /// at once (see [`crate::approval::breakglass`]).
    pub fn with_break_glass(
        mut self,
        windows: Arc<crate::approval::breakglass::BreakGlass>,
    ) -> Self {
        self.break_glass = Some(windows);
        self
    }

    /// Statements are counted against each identity's rate in `limits`.
    pub fn with_limits(mut self, limits: Arc<crate::limits::Limits>) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Whether `session`'s identity may run one more statement now: a
    /// simple query is counted by [`Gate::check`], an extended-protocol
    /// Execute / COM_STMT_EXECUTE here (a Parse runs nothing, so it is not
    /// counted; a prepared statement run again and again is).
    pub fn admit_execution(&self, session: &SessionInfo) -> Result<(), Refusal> {
        match &self.limits {
            Some(l) => l
                .admit_statement(&session.identity)
                .map_err(|e| Refusal::rate_limited(e.to_string())),
            None => Ok(()),
        }
    }

    /// Learned masked columns are kept in `columns` (see
    /// [`crate::mask::MaskedColumns`]) rather than in memory only.
    pub fn with_masked_columns(mut self, columns: crate::mask::MaskedColumns) -> Self {
        self.masked_columns = columns;
        self
    }

    /// Records what the statement of approved request `id` did when it ran,
    /// for the request page and History; in the background, so that the
    /// session's next answer does not wait on the store.
    pub fn record_outcome(&self, id: String, ok: bool, summary: String) {
        let Some(approvals) = self.approvals.clone() else {
            return;
        };
        tokio::spawn(async move {
            let outcome = crate::approval::Outcome {
                at_ms: approval::now_ms(),
                ok,
                summary,
            };
            if let Err(e) = approvals.record_outcome(&id, outcome).await {
                tracing::warn!(request = %id, error = %e, "cannot record what an approved statement did");
            }
        });
    }

    /// Remembers the columns a result's masking found values in.
    pub fn learn_masked(&self, stats: &crate::mask::MaskStats) {
        crate::metrics::get().masked(stats);
        self.masked_columns.learn(stats);
    }

    /// The requests this gateway holds carry `id` (see
    /// [`Approvals::withdraw_orphans`]).
    pub fn with_gateway_id(mut self, id: String) -> Self {
        self.gateway_id = Some(id);
        self
    }

    /// Holds wait in `approvals` for approvers who decide at `inbox_url`.
    pub fn with_approvals(mut self, approvals: Approvals, inbox_url: &str) -> Self {
        self.approvals = Some(approvals);
        self.inbox_url = inbox_url.trim_end_matches('/').to_string();
        self
    }

    pub fn approvals(&self) -> Option<&Approvals> {
        self.approvals.as_ref()
    }

    /// Whether `checked` is a hold that waits for approvers here (rather
    /// than being refused at once).
    pub fn waits_for_approval(&self, checked: &Checked) -> bool {
        checked.audit_failure.is_none()
            && self.approvals.is_some()
            && matches!(checked.decision.action, Action::Hold(_))
    }

    /// Puts a held statement before the approvers: stores the request and
    /// records the hold. Returns the request and the notice for the client.
    pub async fn hold(
        &self,
        session: &SessionInfo,
        checked: &Checked,
        sql: &[u8],
        impact: Option<String>,
        statements: &SessionStatements,
    ) -> Result<(HoldRequest, String), Refusal> {
        let (Some(approvals), Action::Hold(spec)) = (&self.approvals, &checked.decision.action)
        else {
            return Err(checked.refusal().unwrap_or(Refusal {
                code: "42501",
                message: "statement not allowed".into(),
            }));
        };
        let now = approval::now_ms();
        let text = String::from_utf8_lossy(sql);
        let request = HoldRequest {
            id: approval::new_id(),
            requester: session.identity.clone(),
            requester_role: session.role,
            session: session.id.to_string(),
            application: session.application_name.clone(),
            client: session.client_addr.to_string(),
            database: session.database.clone(),
            protocol: session.protocol.to_string(),
            // Structure stays visible: approvers see every keyword that runs.
            sql: self
                .masker()
                .mask_statement(&text, dialect_of(session.protocol)),
            sql_hash: crate::hex::encode(blake3::hash(sql).as_bytes()),
            classes: checked
                .classification
                .classes()
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
            objects: checked
                .classification
                .statements
                .iter()
                .flat_map(|s| s.objects.iter().cloned())
                .collect(),
            rule: checked.decision.rule.clone(),
            group: spec.group.clone(),
            quorum: spec.quorum,
            created_ms: now,
            expires_ms: now + spec.expiry.as_millis() as u64,
            state: State::Pending,
            votes: Vec::new(),
            ended_because: None,
            consumed_ms: None,
            gateway: self.gateway_id.clone(),
            outcome: None,
            waiting: spec.mode == crate::policy::HoldMode::Wait,
            impact,
            recent: statements.recent.iter().cloned().collect(),
        };
        if let Err(e) = approvals.create(&request).await {
            tracing::error!(error = %e, "cannot store an approval request; the statement is refused");
            return Err(store_unavailable(&e.to_string()));
        }
        self.audit.record(AuditEvent::Hold {
            session: &session.id,
            request: &request,
        });
        // Only a hold reaches here: a denial is never broken open, and only
        // agents' sessions are (a window is never for its admin). The
        // window's approval is an ordinary decision in the store, so the
        // caller's wait or claim finds it and records it in the chain.
        let window = match (&self.break_glass, session.role) {
            (Some(windows), Role::Agent) => windows.active(approvals, &session.identity).await,
            _ => None,
        };
        if let Some(window) = window {
            match approvals.approve_break_glass(&request.id, &window).await {
                Ok(Some(approved)) => {
                    tracing::warn!(request = %approved.id, identity = %session.identity, opened_by = %window.opened_by, "held statement approved by a break-glass window");
                    if let Some(windows) = &self.break_glass {
                        windows.announce_use(&window, &approved);
                    }
                    let notice = format!(
                        "statement held by Airlock rule \"{rule}\" as request {id} and approved at once by the \
                         break-glass window {by} opened for {identity} ({reason}); see {url}/requests/{id}",
                        rule = approved.rule,
                        id = approved.id,
                        by = window.opened_by,
                        identity = window.identity,
                        reason = window.reason,
                        url = self.inbox_url,
                    );
                    return Ok((approved, notice));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(request = %request.id, error = %e, "break-glass approval could not be stored; the request waits for approvers")
                }
            }
        }
        let notice = format!(
            "statement held for approval as request {id} by Airlock rule \"{rule}\" ({quorum} approval{s} \
             from group \"{group}\", expires in {expiry}); it runs when approved at {url}/requests/{id}",
            id = request.id,
            rule = request.rule,
            quorum = spec.quorum,
            s = if spec.quorum == 1 { "" } else { "s" },
            group = spec.group,
            expiry = humane(spec.expiry),
            url = self.inbox_url,
        );
        Ok((request, notice))
    }

    /// Defer mode: runs the statement if its requester re-sends it after
    /// an approval (once per approval, before the request expires);
    /// otherwise puts it before the approvers (or points at the request
    /// already pending) and refuses it at once with the request's id.
    /// `impact` is only awaited when a new request is made.
    pub async fn release_deferred(
        &self,
        session: &SessionInfo,
        checked: &Checked,
        sql: &[u8],
        impact: impl std::future::Future<Output = Option<String>>,
        statements: &SessionStatements,
    ) -> Result<String, Refusal> {
        match self
            .claim_or_hold(session, checked, sql, impact, statements)
            .await?
        {
            Deferred::Released(id) => Ok(id),
            Deferred::Pending(request) => Err(Refusal {
                code: "42501",
                message: format!(
                    "statement held for approval as request {id} by Airlock rule \"{rule}\" ({quorum} approval{s} \
                     from group \"{group}\"); once it is approved at {url}/requests/{id}, send the identical \
                     statement again (before {expires}) and it runs once",
                    id = request.id,
                    rule = request.rule,
                    quorum = request.quorum,
                    s = if request.quorum == 1 { "" } else { "s" },
                    group = request.group,
                    url = self.inbox_url,
                    expires = crate::audit::chain::timestamp(std::time::Duration::from_millis(
                        request.expires_ms
                    )),
                ),
            }),
        }
    }

    /// The decision behind [`Gate::release_deferred`], for callers that
    /// answer with the request itself (the MCP endpoint): the approved
    /// request of the same requester, database and statement text is
    /// claimed (used once, the use durable in the audit log before this
    /// returns), or else the pending request is found or a new one made.
    pub async fn claim_or_hold(
        &self,
        session: &SessionInfo,
        checked: &Checked,
        sql: &[u8],
        impact: impl std::future::Future<Output = Option<String>>,
        statements: &SessionStatements,
    ) -> Result<Deferred, Refusal> {
        let Some(approvals) = &self.approvals else {
            return Err(store_unavailable("no approval store"));
        };
        let hash = crate::hex::encode(blake3::hash(sql).as_bytes());
        if let Some(released) = self.claim(approvals, session, &hash).await? {
            return Ok(released);
        }
        let pending = match approvals
            .find_pending(&session.identity, &session.database, &hash)
            .await
        {
            Ok(p) => p,
            Err(e) => return Err(store_unavailable(&e.to_string())),
        };
        let request = match pending {
            Some(r) => r,
            None => {
                let request = self
                    .hold(session, checked, sql, impact.await, statements)
                    .await?
                    .0;
                // Approved as it was made (a break-glass window): it runs now.
                if request.state == State::Approved {
                    if let Some(released) = self.claim(approvals, session, &hash).await? {
                        return Ok(released);
                    }
                }
                request
            }
        };
        Ok(Deferred::Pending(Box::new(request)))
    }

    /// Claims the approved request of `session`'s identity and database
    /// for the statement text hashed `hash`, its use durable in the audit
    /// log before this returns; `None` when there is none to claim.
    async fn claim(
        &self,
        approvals: &crate::approval::store::Approvals,
        session: &SessionInfo,
        hash: &str,
    ) -> Result<Option<Deferred>, Refusal> {
        let approved = match approvals
            .claim_approved(&session.identity, &session.database, hash)
            .await
        {
            Ok(Some(approved)) => approved,
            Ok(None) => return Ok(None),
            Err(e) => return Err(store_unavailable(&e.to_string())),
        };
        let receipt = self.audit.record(AuditEvent::Decision {
            session: &session.id,
            request: &approved,
        });
        self.audit
            .durable(receipt)
            .await
            .map(|()| Some(Deferred::Released(approved.id.clone())))
            .map_err(|why| Refusal {
                code: "53100",
                message: format!(
                    "request {} is approved, but Airlock cannot record its use, so the statement does not run: {why}",
                    approved.id
                ),
            })
    }

    /// The inbox's address, where approvers decide held statements.
    pub fn inbox_url(&self) -> &str {
        &self.inbox_url
    }

    /// Whether `checked` is held in defer mode.
    pub fn is_deferred(checked: &Checked) -> bool {
        matches!(&checked.decision.action, Action::Hold(spec) if spec.mode == crate::policy::HoldMode::Defer)
    }

    /// Waits until the held statement's request is decided, expires or is
    /// withdrawn (when `withdraw` completes, with the reason). The decision
    /// is on disk in the audit log before this returns `Ok` — the statement
    /// may then run.
    pub async fn await_release(
        &self,
        session: &SessionInfo,
        request: &HoldRequest,
        withdraw: impl std::future::Future<Output = String>,
    ) -> Result<String, Refusal> {
        let Some(approvals) = &self.approvals else {
            return Err(store_unavailable("no approval store"));
        };
        // Dropped before the wait ends (the session's other half ended it:
        // the database connection went away, the task was stopped), the
        // request must not stay live: nobody would run it if approved.
        let mut guard = WithdrawOnDrop {
            approvals: approvals.clone(),
            audit: self.audit.clone(),
            session: session.clone(),
            id: Some(request.id.clone()),
        };
        let left = request.expires_ms.saturating_sub(approval::now_ms());
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(left);
        let waited = tokio::select! {
            r = approvals.wait(&request.id, deadline) => r,
            why = withdraw => approvals
                .end(&request.id, State::Withdrawn, &why)
                .await
                .and_then(|r| r.ok_or_else(|| crate::approval::store::StoreError::vanished(&request.id))),
        };
        guard.id = None;
        let mut ended = match waited {
            Ok(r) => r,
            Err(e) => return Err(store_unavailable(&e.to_string())),
        };
        if ended.state == State::Pending {
            ended = match approvals
                .end(&request.id, State::Expired, "no quorum before it expired")
                .await
            {
                Ok(Some(r)) => r,
                Ok(None) => return Err(store_unavailable("the request vanished")),
                Err(e) => return Err(store_unavailable(&e.to_string())),
            };
        }
        let receipt = self.audit.record(AuditEvent::Decision {
            session: &session.id,
            request: &ended,
        });
        let id = &ended.id;
        match ended.state {
            State::Approved => match self.audit.durable(receipt).await {
                Ok(()) => Ok(id.clone()),
                Err(why) => Err(Refusal {
                    code: "53100",
                    message: format!(
                        "request {id} was approved, but Airlock cannot record the decision, so the statement does not run: {why}"
                    ),
                }),
            },
            State::Denied => {
                let deny = ended.denial();
                Err(Refusal {
                    code: "42501",
                    message: format!(
                        "statement denied by {} (request {id}, Airlock rule \"{}\"): {}",
                        deny.map_or("an approver", |d| d.approver.as_str()),
                        ended.rule,
                        deny.map(|d| d.reason.as_str())
                            .filter(|r| !r.is_empty())
                            .unwrap_or("no reason given"),
                    ),
                })
            }
            State::Expired => Err(Refusal {
                code: "57014",
                message: format!(
                    "request {id} expired without approval (Airlock rule \"{}\"); the statement was not run",
                    ended.rule
                ),
            }),
            State::Withdrawn | State::Pending => Err(Refusal {
                code: "57014",
                message: format!(
                    "request {id} was withdrawn ({}); the statement was not run",
                    ended.ended_because.as_deref().unwrap_or("by the client")
                ),
            }),
        }
    }

    /// The masking engine in force.
    pub fn masker(&self) -> Arc<Masker> {
        self.masker
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts a new policy in force for every statement checked from now on.
    pub fn replace_policy(&self, policy: Policy) {
        let masker = build_masker(&policy, self.mask_key);
        // Classifications made under another [classify] setting are dropped.
        self.cache.set_user_functions(policy.user_functions());
        *self.masker.write().unwrap_or_else(|e| e.into_inner()) = masker;
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }

    /// Classifies `sql` (bytes as the client sent them) and decides whether
    /// it may run for `session`; records the statement and the decision.
    /// SQL that is not valid UTF-8 is `unknown`: in client encodings such as
    /// SJIS a quote or backslash can hide inside a multi-byte character, and
    /// Airlock would not split the query the way the server does.
    pub async fn check(
        &self,
        session: &SessionInfo,
        statements: &mut SessionStatements,
        sql: &[u8],
        origin: Origin,
    ) -> Checked {
        let started = std::time::Instant::now();
        let checked = self.decide(session, statements, sql, origin).await;
        count(
            session.protocol,
            &checked,
            self.approvals.is_some(),
            started.elapsed(),
        );
        checked
    }

    async fn decide(
        &self,
        session: &SessionInfo,
        statements: &mut SessionStatements,
        sql: &[u8],
        origin: Origin,
    ) -> Checked {
        let dialect = dialect_of(session.protocol);
        // One reading of the text keys the classification cache and
        // finds the values to mask in the logged statement.
        let read = std::str::from_utf8(sql)
            .ok()
            .map(|text| (text, crate::sql::lexer::read(text, dialect)));
        let classification = match &read {
            Some((text, reading)) => {
                resolve_executes(self.cache.classify_read(text, dialect, reading), statements)
            }
            None => Arc::new(not_utf8(sql)),
        };
        for statement in &classification.statements {
            self.masked_columns.note_outputs(&statement.outputs);
        }
        let policy = self.policy();
        let known = match &session.sampler {
            Some(sampler) => {
                self.learn_before_transforms(session, &sampler.0, &classification, &policy)
                    .await
            }
            None => true,
        };
        // Not the policy's to allow: see sql::encoding and sql::local_infile.
        let refused = crate::sql::encoding::encoding_change(sql, dialect)
            .map(|why| (ENCODING_RULE, why))
            .or_else(|| crate::sql::local_infile(sql, dialect).map(|why| (LOCAL_INFILE_RULE, why)))
            .or_else(|| match session.protocol {
                Protocol::Postgres => {
                    crate::sql::application_name::change(sql, || session.application_name_prefix())
                        .map(|why| (APPLICATION_NAME_RULE, why))
                }
                Protocol::Mysql => None,
            });
        let unsupported = refused.as_ref().map(|(_, why)| why.clone());
        let decision = match &refused {
            Some((rule, why)) => Decision::refused_by_airlock(rule, why.clone()),
            None => {
                let learned = self.masked_columns.read();
                policy.evaluate(&Request {
                    identity: &session.identity,
                    role: session.role,
                    database: &session.database,
                    classification: &classification,
                    masked_columns: if known {
                        MaskedColumns::Learned(&learned)
                    } else {
                        MaskedColumns::Unknown
                    },
                })
            }
        };
        // What would undo the identity's upstream role or read-only mode
        // is refused whatever the policy says.
        let decision = session.confinement.overrule(
            &session.identity,
            sql,
            &classification,
            dialect,
            decision,
        );
        // Over its statement rate the identity is refused whatever the
        // statement, and the refusal is recorded like any other.
        let over_rate = match (&self.limits, origin) {
            (Some(l), Origin::SimpleQuery) => l.admit_statement(&session.identity).err(),
            _ => None,
        };
        let decision = match over_rate {
            Some(why) => Decision {
                action: Action::Deny {
                    reason: why.to_string(),
                },
                rule: crate::limits::RATE_RULE.to_string(),
                ..decision
            },
            None => decision,
        };
        // Nothing runs unrecorded: while the log cannot be written, the
        // statement is refused before it is even classified as allowed.
        if let Some(why) = self.audit.failure() {
            tracing::warn!(session = %session.id, error = %why, "statement refused: the audit log cannot be written");
            return Checked {
                classification,
                decision,
                audit_failure: Some(why),
                unsupported,
            };
        }
        // The log keeps the statement with its sensitive values masked.
        let logged = match &read {
            Some((text, reading)) => self.masker().mask_statement_values(text, &reading.values),
            None => self
                .masker()
                .mask_statement(&String::from_utf8_lossy(sql), dialect),
        };
        let objects: Vec<String> = classification
            .statements
            .iter()
            .flat_map(|s| s.objects.iter().cloned())
            .collect();
        let receipt = self.audit.record(AuditEvent::Statement {
            session: &session.id,
            sql: &logged,
            origin,
            classes: classification.classes(),
            objects: &objects,
            action: decision.action.name(),
            rule: &decision.rule,
        });
        // The record that authorises a held or privileged statement is on
        // disk before the statement can reach the upstream; the others are
        // in the file (so no crash loses them) and reach the disk with the
        // next group commit.
        let privileged = classification.classes().intersects(PRIVILEGED);
        let must_wait = self.audit.every_statement_durable()
            || matches!(decision.action, Action::Hold(_))
            || (decision.action == Action::Allow && privileged);
        let recorded = if must_wait {
            self.audit.durable(receipt).await
        } else if receipt == Receipt::Failed {
            Err(self
                .audit
                .failure()
                .unwrap_or_else(|| "the audit log is closed".into()))
        } else {
            Ok(())
        };
        let audit_failure = recorded.err();
        if statements.recent.len() == RECENT_STATEMENTS {
            statements.recent.pop_front();
        }
        statements.recent.push_back(Recent {
            sql: logged,
            verdict: decision.action.name().to_string(),
        });
        if !statements.confirmed_by_relay {
            // A PREPARE that is not allowed outright may still run later
            // (approved): whatever the name meant before is then stale,
            // so its EXECUTE becomes `unknown` again rather than keep the
            // classes of an earlier, harmless definition.
            let allowed = audit_failure.is_none() && decision.action == Action::Allow;
            for s in &classification.statements {
                if let Some(name) = &s.prepares {
                    if !allowed {
                        statements.prepared.remove(name);
                        continue;
                    }
                    if statements.prepared.len() >= MAX_PREPARED_NAMES {
                        statements.prepared.clear();
                    }
                    statements.prepared.insert(name.clone(), s.classes);
                }
            }
        }
        Checked {
            classification,
            decision,
            audit_failure,
            unsupported,
        }
    }

    /// The classification `check` will give `sql` (before `EXECUTE`s are
    /// resolved), from the cache.
    pub fn classify(&self, session: &SessionInfo, sql: &[u8]) -> Arc<Classification> {
        let dialect = match session.protocol {
            Protocol::Postgres => Dialect::Postgres,
            Protocol::Mysql => Dialect::Mysql,
        };
        match std::str::from_utf8(sql) {
            Ok(text) => self.cache.classify(text, dialect),
            Err(_) => Arc::new(not_utf8(sql)),
        }
    }

    /// The masker for a new session's result rows: the policy's engine,
    /// or none for roles the policy exempts (whose sessions are still
    /// audited) and when the policy turns masking off.
    pub fn masker_for(&self, session: &SessionInfo) -> RowMasker {
        match self.masking_for(session) {
            Some(engine) => RowMasker::new(engine),
            None => RowMasker::pass_through(),
        }
    }

    /// Samples the tables a statement reads when it transforms a column not
    /// yet known to hold sensitive values (see [`crate::mask::sample`]).
    /// False when a sample could not be taken.
    async fn learn_before_transforms(
        &self,
        session: &SessionInfo,
        sampler: &Arc<dyn crate::mask::sample::Sampler>,
        classification: &Classification,
        policy: &Policy,
    ) -> bool {
        use crate::mask::sample;
        let tables = sample::tables_to_sample(
            classification,
            policy,
            &self.masked_columns,
            &self.sampled,
            &session.database,
        );
        if tables.is_empty() {
            return true;
        }
        // A role whose rows are not masked sees the values anyway.
        let Some(engine) = self.masking_for(session) else {
            return true;
        };
        tracing::info!(session = %session.id, tables = ?tables.iter().map(|(t, _)| t).collect::<Vec<_>>(), "sampling tables before a transform of columns not yet known");
        sample::learn_from_samples(
            tables,
            sampler.as_ref(),
            engine,
            dialect_of(session.protocol),
            &session.database,
            &self.masked_columns,
            &self.sampled,
        )
        .await
    }

    /// The masking engine for `session`'s rows, or `None` when the policy
    /// turns masking off or exempts the session's role.
    pub fn masking_for(&self, session: &SessionInfo) -> Option<Arc<Masker>> {
        let masking = self.policy().masking().clone();
        if !masking.enabled || masking.exempt_roles.contains(&session.role) {
            return None;
        }
        Some(self.masker())
    }

    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }
}

/// Counts one gate decision: its verdict per class, why it was refused if
/// it was, and — for a statement that runs at once — what deciding added.
fn count(protocol: Protocol, checked: &Checked, approvals: bool, took: std::time::Duration) {
    use crate::metrics::{Refusal as Why, Verdict};
    let m = crate::metrics::get();
    let (verdict, refused) = if checked.audit_failure.is_some() {
        (Verdict::Refused, Some(Why::AuditUnavailable))
    } else {
        match &checked.decision.action {
            Action::Allow => (Verdict::Allow, None),
            Action::Hold(_) => (
                Verdict::Hold,
                (!approvals).then_some(Why::HeldWithoutApprovals),
            ),
            Action::Deny { .. } if checked.unsupported.is_some() => {
                (Verdict::Deny, Some(Why::Unsupported))
            }
            Action::Deny { .. } => (Verdict::Deny, Some(Why::Denied)),
        }
    };
    m.statement(protocol, checked.classification.classes(), verdict);
    match refused {
        Some(why) => m.refused(protocol, why),
        None if verdict == Verdict::Allow => m.added_latency(protocol, took),
        None => {}
    }
}

fn store_unavailable(why: &str) -> Refusal {
    Refusal {
        code: "58000",
        message: format!(
            "the statement needs approval, but Airlock's approval store is unavailable, so it was not run: {why}"
        ),
    }
}

/// `15 min`, `90 s`, `2 h`.
fn humane(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

fn build_masker(policy: &Policy, key: [u8; 32]) -> Arc<Masker> {
    let mut settings = policy.masking().settings.clone();
    settings.token_key = key;
    Arc::new(Masker::new(&settings))
}

/// Gives `EXECUTE name` the classes of what this session prepared as `name`.
fn resolve_executes(
    classification: Arc<Classification>,
    statements: &SessionStatements,
) -> Arc<Classification> {
    let known = |s: &Statement| s.executes.as_ref().and_then(|n| statements.prepared.get(n));
    if !classification
        .statements
        .iter()
        .any(|s| known(s).is_some() && s.classes == Classes::of(&[StatementClass::Unknown]))
    {
        return classification;
    }
    let mut resolved = (*classification).clone();
    for s in &mut resolved.statements {
        if let Some(classes) = known(s).copied() {
            if s.classes == Classes::of(&[StatementClass::Unknown]) {
                s.classes = classes;
                s.notes
                    .push("EXECUTE runs a statement prepared earlier in this session".into());
            }
        }
    }
    Arc::new(resolved)
}

/// The SQL dialect a session's statements are written in.
pub fn dialect_of(protocol: Protocol) -> Dialect {
    match protocol {
        Protocol::Postgres => Dialect::Postgres,
        Protocol::Mysql => Dialect::Mysql,
    }
}

fn not_utf8(sql: &[u8]) -> Classification {
    Classification {
        statements: vec![Statement {
            text: String::from_utf8_lossy(sql).into_owned(),
            classes: Classes::of(&[StatementClass::Unknown]),
            objects: Vec::new(),
            schemas: Vec::new(),
            functions: Vec::new(),
            notes: vec!["the statement is not valid UTF-8".into()],
            prepares: None,
            executes: None,
            transformed: Vec::new(),
            sample_from: Vec::new(),
            outputs: Vec::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(protocol: Protocol) -> SessionInfo {
        SessionInfo {
            door: Default::default(),
            id: SessionId::next(),
            identity: "agent".into(),
            role: Role::Agent,
            client_addr: "127.0.0.1:1".parse().expect("address"),
            application_name: None,
            database: "test".into(),
            protocol,
            tls: false,
            confinement: Default::default(),
            ending: Default::default(),
            sampler: None,
        }
    }

    #[tokio::test]
    async fn a_prepare_not_allowed_outright_forgets_the_old_definition() {
        let gate = Gate::new(Arc::new(Audit::log_only()), Policy::builtin_default());
        let s = session(Protocol::Mysql);
        let mut statements = SessionStatements::default();
        gate.check(
            &s,
            &mut statements,
            b"PREPARE s FROM 'SELECT 1'",
            Origin::SimpleQuery,
        )
        .await;
        assert!(statements.contains(b"s"));
        let run = gate
            .check(&s, &mut statements, b"EXECUTE s", Origin::SimpleQuery)
            .await;
        assert!(run.allowed());
        // Held (and perhaps approved later): `s` may now be the DROP.
        let held = gate
            .check(
                &s,
                &mut statements,
                b"PREPARE s FROM 'DROP TABLE t'",
                Origin::SimpleQuery,
            )
            .await;
        assert!(!held.allowed());
        assert!(!statements.contains(b"s"));
        let run = gate
            .check(&s, &mut statements, b"EXECUTE s", Origin::SimpleQuery)
            .await;
        assert!(
            !run.allowed(),
            "EXECUTE of a redefined name is not allowed outright"
        );
    }

    #[tokio::test]
    async fn a_relay_that_confirms_names_decides_what_execute_runs() {
        let gate = Gate::new(Arc::new(Audit::log_only()), Policy::builtin_default());
        let s = session(Protocol::Postgres);
        let mut statements = SessionStatements::confirmed_by_relay();
        gate.check(
            &s,
            &mut statements,
            b"PREPARE s AS SELECT 1",
            Origin::SimpleQuery,
        )
        .await;
        // Not remembered until the server confirms it.
        assert!(!statements.contains(b"s"));
        let run = gate
            .check(&s, &mut statements, b"EXECUTE s", Origin::SimpleQuery)
            .await;
        assert!(!run.allowed());
        statements.resolve(HashMap::from([(
            "s".to_string(),
            Classes::of(&[StatementClass::Read]),
        )]));
        let run = gate
            .check(&s, &mut statements, b"EXECUTE s", Origin::SimpleQuery)
            .await;
        assert!(run.allowed());
    }
}
