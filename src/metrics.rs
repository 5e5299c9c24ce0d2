//! The one registry of Airlock's counters, gauges and histograms, and the
//! HTTP endpoint that exports them (`[metrics] listen`): `/metrics` in the
//! OpenMetrics text format, `/healthz` (the process answers) and `/readyz`
//! (the upstreams are reachable and the audit log is writable).
//!
//! Every site that counts something calls one function here; the registry
//! is process-wide so that the relays, the gate and the audit writer need
//! no handle threaded through them.
//!
//! Two rules keep it safe to leave on in production:
//!
//! * **Bounded labels.** No label carries SQL text, an address or a value.
//!   The `identity` label is a configured identity's name or `unknown`;
//!   classes, verdicts, kinds, reasons and outcomes are fixed sets.
//! * **A cheap hot path.** The per-statement and per-flush series are
//!   resolved once into plain counters and histograms ([`Hot`]), so counting
//!   a statement or relayed bytes is an atomic add: no lock, no hashing, no
//!   allocation. Per-session series are resolved once when the session
//!   starts.

use crate::gate::Protocol;
use crate::sql::StatementClass;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

/// The label value for a session whose identity is not configured (the
/// development identity before it is registered, a test harness).
pub const UNKNOWN_IDENTITY: &str = "unknown";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    protocol: &'static str,
    identity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatementLabels {
    protocol: &'static str,
    class: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    protocol: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    protocol: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    protocol: &'static str,
    reason: &'static str,
}

/// What the gate decided for a statement, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Hold,
    Deny,
    /// Not run whatever the policy said: the audit log cannot be written.
    Refused,
}

impl Verdict {
    const ALL: [Verdict; 4] = [
        Verdict::Allow,
        Verdict::Hold,
        Verdict::Deny,
        Verdict::Refused,
    ];

    fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Hold => "hold",
            Verdict::Deny => "deny",
            Verdict::Refused => "refused",
        }
    }
}

/// Which way relayed bytes went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the agent towards the database.
    ToUpstream,
    /// From the database towards the agent.
    ToClient,
}

/// Why a connection or a statement was refused. A fixed set: the label
/// never carries a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `[server] max_connections` reached.
    TooManyConnections,
    /// A login from an address that is locked out.
    LockedOut,
    /// The upstream could not give the session a connection.
    UpstreamUnavailable,
    /// A policy rule (or an approver) denied the statement.
    Denied,
    /// A held statement on a gateway without approvals.
    HeldWithoutApprovals,
    /// A held statement's request expired or was withdrawn.
    HoldEnded,
    /// Airlock refuses the statement whatever the policy says (an
    /// unreadable client encoding, LOCAL INFILE, the session's
    /// `application_name` prefix).
    Unsupported,
    /// The audit log cannot be written.
    AuditUnavailable,
}

impl Refusal {
    fn name(self) -> &'static str {
        match self {
            Refusal::TooManyConnections => "too_many_connections",
            Refusal::LockedOut => "locked_out",
            Refusal::UpstreamUnavailable => "upstream_unavailable",
            Refusal::Denied => "denied",
            Refusal::HeldWithoutApprovals => "held_without_approvals",
            Refusal::HoldEnded => "hold_ended",
            Refusal::Unsupported => "unsupported",
            Refusal::AuditUnavailable => "audit_unavailable",
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Postgres => "postgres",
        Protocol::Mysql => "mysql",
    }
}

fn protocol_index(p: Protocol) -> usize {
    match p {
        Protocol::Postgres => 0,
        Protocol::Mysql => 1,
    }
}

const PROTOCOLS: [Protocol; 2] = [Protocol::Postgres, Protocol::Mysql];

/// Series touched per statement or per flush, resolved once.
struct Hot {
    /// `[protocol][class][verdict]`.
    statements: Vec<Vec<Vec<Counter>>>,
    /// `[protocol][direction]`.
    bytes: [[Counter; 2]; 2],
    /// `[protocol]`.
    added_latency: [Histogram; 2],
}

/// Every series Airlock exports.
pub struct Metrics {
    registry: Registry,
    hot: Hot,
    sessions_open: Family<SessionLabels, Gauge>,
    sessions: Family<SessionLabels, Counter>,
    holds_pending: Gauge,
    holds_decided: Family<OutcomeLabel, Counter>,
    decision_seconds: Histogram,
    masked: Family<KindLabel, Counter>,
    upstream: Family<UpstreamLabels, Gauge>,
    audit_append_seconds: Histogram,
    audit_fsync_seconds: Histogram,
    audit_backlog: Gauge,
    auth_failures: Family<ProtocolLabel, Counter>,
    lockouts: Family<ProtocolLabel, Counter>,
    refusals: Family<ReasonLabels, Counter>,
    identities: OnceLock<HashSet<String>>,
}

/// Sub-millisecond to a few seconds: what the gateway adds, and what an
/// audit append or fsync takes.
fn fast_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide registry.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("airlock");
        let statements = Family::<StatementLabels, Counter>::default();
        let bytes = Family::<DirectionLabels, Counter>::default();
        let added = Family::<ProtocolLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            fast_buckets,
        );
        let hot = Hot {
            statements: PROTOCOLS
                .iter()
                .map(|&p| {
                    StatementClass::ALL
                        .iter()
                        .map(|c| {
                            Verdict::ALL
                                .iter()
                                .map(|v| {
                                    statements.get_or_create_owned(&StatementLabels {
                                        protocol: protocol_name(p),
                                        class: c.name(),
                                        verdict: v.name(),
                                    })
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect(),
            bytes: PROTOCOLS.map(|p| {
                ["to_upstream", "to_client"].map(|direction| {
                    bytes.get_or_create_owned(&DirectionLabels {
                        protocol: protocol_name(p),
                        direction,
                    })
                })
            }),
            added_latency: PROTOCOLS.map(|p| {
                added.get_or_create_owned(&ProtocolLabel {
                    protocol: protocol_name(p),
                })
            }),
        };
        let m = Metrics {
            registry: Registry::default(),
            hot,
            sessions_open: Family::default(),
            sessions: Family::default(),
            holds_pending: Gauge::default(),
            holds_decided: Family::default(),
            // Approvers take seconds to hours.
            decision_seconds: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            masked: Family::default(),
            upstream: Family::default(),
            audit_append_seconds: fast_buckets(),
            audit_fsync_seconds: fast_buckets(),
            audit_backlog: Gauge::default(),
            auth_failures: Family::default(),
            lockouts: Family::default(),
            refusals: Family::default(),
            identities: OnceLock::new(),
        };
        registry.register(
            "sessions_open",
            "Agent sessions open now, by protocol and identity",
            m.sessions_open.clone(),
        );
        registry.register(
            "sessions",
            "Agent sessions started, by protocol and identity",
            m.sessions.clone(),
        );
        registry.register(
            "statements",
            "Statements decided by the gate, by protocol, class and verdict (a statement with several classes counts once per class)",
            statements,
        );
        registry.register(
            "holds_pending",
            "Approval requests waiting for a decision",
            m.holds_pending.clone(),
        );
        registry.register(
            "holds_decided",
            "Approval requests ended, by outcome",
            m.holds_decided.clone(),
        );
        registry.register(
            "hold_decision_seconds",
            "Time from a hold to its decision",
            m.decision_seconds.clone(),
        );
        registry.register(
            "masked_values",
            "Values masked in results, by detector kind",
            m.masked.clone(),
        );
        registry.register(
            "relayed_bytes",
            "Protocol bytes relayed, by protocol and direction",
            bytes,
        );
        registry.register(
            "upstream_connections",
            "Upstream connections by protocol and state (in_use, idle, waiting: sessions waiting for one)",
            m.upstream.clone(),
        );
        registry.register(
            "audit_append_seconds",
            "Time to append one record to the audit log",
            m.audit_append_seconds.clone(),
        );
        registry.register(
            "audit_fsync_seconds",
            "Time of one audit log fsync",
            m.audit_fsync_seconds.clone(),
        );
        registry.register(
            "audit_backlog_bytes",
            "Audit records sealed but not yet written to the file",
            m.audit_backlog.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed agent logins, by protocol",
            m.auth_failures.clone(),
        );
        registry.register(
            "lockouts",
            "Login lockouts that began, by protocol",
            m.lockouts.clone(),
        );
        registry.register(
            "refusals",
            "Connections and statements refused, by protocol and reason",
            m.refusals.clone(),
        );
        registry.register(
            "gateway_added_seconds",
            "Time Airlock spends deciding and recording a statement before forwarding it (approval waits excluded)",
            added,
        );
        Metrics { registry, ..m }
    }

    /// The identities that may appear as a label value; any other name is
    /// counted as [`UNKNOWN_IDENTITY`]. Set once, at start.
    pub fn set_identities(&self, names: impl IntoIterator<Item = String>) {
        let _ = self.identities.set(names.into_iter().collect());
    }

    fn identity_label(&self, name: &str) -> String {
        match self.identities.get() {
            Some(known) if known.contains(name) => name.to_string(),
            _ => UNKNOWN_IDENTITY.to_string(),
        }
    }

    /// Counts a session start; the returned guard counts it as open until
    /// it is dropped.
    pub fn session_opened(&self, protocol: Protocol, identity: &str) -> OpenSession {
        let labels = SessionLabels {
            protocol: protocol_name(protocol),
            identity: self.identity_label(identity),
        };
        self.sessions.get_or_create(&labels).inc();
        let open = self.sessions_open.get_or_create_owned(&labels);
        open.inc();
        OpenSession(open)
    }

    /// Counts one gate decision under each of the statement's classes.
    pub fn statement(&self, protocol: Protocol, classes: crate::sql::Classes, verdict: Verdict) {
        let by_class = &self.hot.statements[protocol_index(protocol)];
        let v = Verdict::ALL.iter().position(|x| *x == verdict).unwrap_or(0);
        for class in classes.iter() {
            if let Some(i) = StatementClass::ALL.iter().position(|c| *c == class) {
                by_class[i][v].inc();
            }
        }
    }

    /// What the gate added before a statement could be forwarded.
    pub fn added_latency(&self, protocol: Protocol, took: Duration) {
        self.hot.added_latency[protocol_index(protocol)].observe(took.as_secs_f64());
    }

    pub fn relayed(&self, protocol: Protocol, direction: Direction, bytes: usize) {
        let d = match direction {
            Direction::ToUpstream => 0,
            Direction::ToClient => 1,
        };
        self.hot.bytes[protocol_index(protocol)][d].inc_by(bytes as u64);
    }

    /// A request left `pending` as `outcome` (approved, denied, expired,
    /// withdrawn) `waited` after it was created.
    pub fn hold_decided(&self, outcome: &'static str, waited: Duration) {
        self.holds_decided
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.decision_seconds.observe(waited.as_secs_f64());
    }

    pub fn masked(&self, stats: &crate::mask::MaskStats) {
        for (_, kinds) in &stats.columns {
            for (kind, n) in kinds {
                self.masked
                    .get_or_create(&KindLabel { kind: kind.name() })
                    .inc_by(u64::from(*n));
            }
        }
    }

    pub fn audit_append(&self, took: Duration) {
        self.audit_append_seconds.observe(took.as_secs_f64());
    }

    pub fn audit_fsync(&self, took: Duration) {
        self.audit_fsync_seconds.observe(took.as_secs_f64());
    }

    pub fn audit_backlog(&self, bytes: usize) {
        self.audit_backlog.set(bytes as i64);
    }

    pub fn auth_failure(&self, protocol: Protocol) {
        self.auth_failures
            .get_or_create(&ProtocolLabel {
                protocol: protocol_name(protocol),
            })
            .inc();
    }

    pub fn lockout(&self, protocol: Protocol) {
        self.lockouts
            .get_or_create(&ProtocolLabel {
                protocol: protocol_name(protocol),
            })
            .inc();
    }

    pub fn refused(&self, protocol: Protocol, reason: Refusal) {
        self.refusals
            .get_or_create(&ReasonLabels {
                protocol: protocol_name(protocol),
                reason: reason.name(),
            })
            .inc();
    }

    /// Sets an upstream gauge (`in_use`, `idle`, `waiting`).
    pub fn upstream(&self, protocol: Protocol, state: &'static str, value: usize) {
        self.upstream
            .get_or_create(&UpstreamLabels {
                protocol: protocol_name(protocol),
                state,
            })
            .set(value as i64);
    }

    /// Counts one more in an upstream gauge until the guard is dropped.
    pub fn upstream_guard(&self, protocol: Protocol, state: &'static str) -> OpenSession {
        let gauge = self.upstream.get_or_create_owned(&UpstreamLabels {
            protocol: protocol_name(protocol),
            state,
        });
        gauge.inc();
        OpenSession(gauge)
    }

    /// The OpenMetrics text of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Keeps a gauge one higher while it lives (an open session, a session
/// waiting for an upstream connection).
#[derive(Debug)]
pub struct OpenSession(Gauge);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What `/readyz` checks and `/metrics` samples at scrape time.
#[derive(Clone)]
pub struct Probes {
    pub audit: Arc<crate::audit::Audit>,
    /// Upstreams by name (`postgres`, `mysql`) and address.
    pub upstreams: Vec<(&'static str, String)>,
    pub pool: Option<Arc<crate::proxy::pg::upstream::Pool>>,
    pub approvals: Option<crate::approval::store::Approvals>,
}

/// How long `/readyz` waits for an upstream to accept a connection.
const REACH_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `/metrics`, `/healthz` and `/readyz` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    probes: Probes,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use axum::routing::get as route;
    let probes = Arc::new(probes);
    let app = axum::Router::new()
        .route("/metrics", route(scrape))
        .route(
            "/healthz",
            route(|| async { "ok: the airlock process is up\n" }),
        )
        .route("/readyz", route(ready))
        .with_state(probes);
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "the metrics endpoint stopped");
    }
}

async fn scrape(
    axum::extract::State(probes): axum::extract::State<Arc<Probes>>,
) -> impl axum::response::IntoResponse {
    let m = get();
    if let Some(pool) = &probes.pool {
        let (in_use, idle) = pool.usage();
        m.upstream(Protocol::Postgres, "in_use", in_use);
        m.upstream(Protocol::Postgres, "idle", idle);
    }
    if let Some(approvals) = &probes.approvals {
        // Counted in the store, so that requests decided in the inbox, by
        // another gateway or by expiry are all seen.
        match approvals
            .list(Some(crate::approval::State::Pending), 1_000_000)
            .await
        {
            Ok(pending) => {
                m.holds_pending.set(pending.len() as i64);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count pending requests"),
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

/// Ready when every upstream accepts a TCP connection and the audit log
/// takes records; the body says which check failed and why.
async fn ready(
    axum::extract::State(probes): axum::extract::State<Arc<Probes>>,
) -> (axum::http::StatusCode, String) {
    let mut ok = true;
    let mut body = String::new();
    for (name, address) in &probes.upstreams {
        let reached =
            tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(address)).await;
        match reached {
            Ok(Ok(_)) => body.push_str(&format!("{name} upstream {address}: reachable\n")),
            Ok(Err(e)) => {
                ok = false;
                body.push_str(&format!("{name} upstream {address}: unreachable: {e}\n"));
            }
            Err(_) => {
                ok = false;
                body.push_str(&format!(
                    "{name} upstream {address}: unreachable: no answer within {} s\n",
                    REACH_TIMEOUT.as_secs()
                ));
            }
        }
    }
    match probes.audit.failure() {
        None => body.push_str("audit log: writable\n"),
        Some(why) => {
            ok = false;
            body.push_str(&format!("audit log: not writable: {why}\n"));
        }
    }
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        format!("{}\n{body}", if ok { "ready" } else { "not ready" }),
    )
}

/// Binds the endpoint's address, naming the key when it cannot.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("metrics.listen: cannot listen on {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_outside_the_configuration_share_one_label() {
        let m = Metrics::new();
        m.set_identities(["agent".to_string()]);
        assert_eq!(m.identity_label("agent"), "agent");
        assert_eq!(m.identity_label("x' OR 1=1"), UNKNOWN_IDENTITY);
        let _a = m.session_opened(Protocol::Postgres, "agent");
        let _b = m.session_opened(Protocol::Postgres, "stranger-1");
        let _c = m.session_opened(Protocol::Postgres, "stranger-2");
        let text = m.encode();
        assert!(
            text.contains(r#"airlock_sessions_open{protocol="postgres",identity="unknown"} 2"#),
            "{text}"
        );
        assert!(!text.contains("stranger"), "{text}");
    }

    #[test]
    fn an_open_session_is_counted_until_its_guard_drops() {
        let m = Metrics::new();
        m.set_identities(["agent".to_string()]);
        let open = m.session_opened(Protocol::Mysql, "agent");
        assert!(m
            .encode()
            .contains(r#"airlock_sessions_open{protocol="mysql",identity="agent"} 1"#));
        drop(open);
        let text = m.encode();
        assert!(
            text.contains(r#"airlock_sessions_open{protocol="mysql",identity="agent"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"airlock_sessions_total{protocol="mysql",identity="agent"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn statements_count_once_per_class_with_their_verdict() {
        let m = Metrics::new();
        let classes = crate::sql::Classes::of(&[StatementClass::Read, StatementClass::Write]);
        m.statement(Protocol::Postgres, classes, Verdict::Hold);
        let text = m.encode();
        for class in ["read", "write"] {
            assert!(
                text.contains(&format!(
                    r#"airlock_statements_total{{protocol="postgres",class="{class}",verdict="hold"}} 1"#
                )),
                "{text}"
            );
        }
        assert!(text.contains(
            r#"airlock_statements_total{protocol="postgres",class="ddl",verdict="hold"} 0"#
        ));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
