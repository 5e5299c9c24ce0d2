//! The MySQL / MariaDB side of the gateway.
//!
//! * [`packet`] — packet framing, sequence ids, and the field encodings
//!   inside payloads;
//! * [`auth`] — the password plugins' arithmetic (`mysql_native_password`,
//!   `caching_sha2_password`) and connection nonces;
//! * [`handshake`] — the connection-phase packets and OK / EOF / ERR;
//! * [`frontend`] — the agent's login: greeting, TLS, password check;
//! * [`upstream`] — Airlock's own logins to the real server;
//! * [`relay`] — the command loop of a session.
//!
//! [`MysqlListener`] ties them together: it accepts connections, caps their
//! number, gives each session its own upstream connection (MySQL sessions
//! carry state — the database, variables, prepared statements — that
//! cannot be shared), and drains them on shutdown.

pub mod auth;
pub mod capped;
pub mod frontend;
pub mod handshake;
pub mod packet;
pub mod relay;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;

use crate::audit::AuditEvent;
use crate::gate::{Gate, Protocol, SessionId, SessionInfo};
use crate::identity::{LoginKey, LoginThrottle};
use crate::limits::{Limits, Share};
use crate::proxy::{serve_sessions, Admission, SessionLimits};
use frontend::{Greeting, LoggedIn, LoginSettings};
use handshake::{ErrPacket, OkPacket, CLIENT_DEPRECATE_EOF, MARIADB_SUPPORTED, SUPPORTED};
use upstream::{UpstreamError, UpstreamSettings};

/// Everything a MySQL session needs, shared by all of them.
pub struct MysqlShared {
    pub login: LoginSettings,
    pub gate: Arc<Gate>,
    /// Airlock's service account; `database` is the default for clients
    /// that name none.
    pub upstream: UpstreamSettings,
    pub throttle: LoginThrottle<LoginKey>,
    /// Fair limits (`[limits]`), shared with the other listener.
    pub limits: Arc<Limits>,
    pub max_packet_bytes: usize,
    pub startup_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_connections: usize,
    pub kills: KillMap,
    /// What the upstream server said of itself when last reached: the
    /// greeting repeats its version, and offers only what it offers.
    pub server: Mutex<ServerFacts>,
}

/// The upstream's version and capabilities.
#[derive(Clone, Debug)]
pub struct ServerFacts {
    pub version: String,
    pub capabilities: u32,
    /// MariaDB's extended capabilities offered, or `None` when the server
    /// is not MariaDB (it sets capability bit 0).
    pub mariadb_capabilities: Option<u32>,
}

impl Default for ServerFacts {
    fn default() -> Self {
        ServerFacts {
            version: "8.0.0-airlock".into(),
            capabilities: SUPPORTED,
            mariadb_capabilities: None,
        }
    }
}

/// Gateway connection ids (what agents see as their connection id and
/// pass to `KILL QUERY`) and the upstream connections they stand for.
#[derive(Default)]
pub struct KillMap {
    next: AtomicU32,
    entries: Mutex<HashMap<u32, KillEntry>>,
}

struct KillEntry {
    upstream_id: u32,
    identity: String,
    /// Bumped to withdraw the session's held statement.
    cancel: watch::Sender<u64>,
}

impl KillMap {
    /// A fresh gateway connection id (never 0, which clients treat as none).
    pub fn next_id(&self) -> u32 {
        loop {
            let id = self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if id != 0 {
                return id;
            }
        }
    }

    fn register(&self, id: u32, upstream_id: u32, identity: &str) -> watch::Receiver<u64> {
        let (cancel, cancelled) = watch::channel(0);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                KillEntry {
                    upstream_id,
                    identity: identity.to_string(),
                    cancel,
                },
            );
        cancelled
    }

    fn remove(&self, id: u32) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

pub struct MysqlListener {
    listener: TcpListener,
    shared: Arc<MysqlShared>,
}

impl MysqlListener {
    pub async fn bind(addr: SocketAddr, shared: Arc<MysqlShared>) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            shared,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Learns the upstream's version and capabilities (so that the first
    /// agent is greeted like the server would greet it); a server that
    /// cannot be reached yet is not an error — sessions connect on login.
    pub async fn probe_upstream(&self) {
        match upstream::connect(&self.shared.upstream).await {
            Ok(mut up) => {
                remember_server(&self.shared, &up);
                if let Ok(true) = upstream::login_is_superuser(&mut up).await {
                    crate::proxy::warn_superuser_login("mysql", &self.shared.upstream.user);
                }
            }
            Err(e) => tracing::warn!(error = %e, "the MySQL upstream cannot be reached yet"),
        }
    }

    /// Serves until `shutdown` turns true, then lets running statements
    /// finish (up to the shutdown timeout) and closes every session.
    pub async fn serve(self, shutdown: watch::Receiver<bool>) {
        let shared = self.shared.clone();
        let limits = SessionLimits {
            max_connections: shared.max_connections,
            shutdown_timeout: shared.shutdown_timeout,
            limits: shared.limits.clone(),
        };
        let refuse = |tcp| async move {
            crate::metrics::get()
                .refused(Protocol::Mysql, crate::metrics::Refusal::TooManyConnections);
            let error = ErrPacket::new(1040, "08004", "Too many connections to Airlock");
            frontend::refuse_at_once(tcp, &error).await;
        };
        let session =
            move |tcp, peer, admission, stop| handle(tcp, peer, admission, shared.clone(), stop);
        serve_sessions(&self.listener, "mysql", limits, shutdown, refuse, session).await;
    }
}

fn remember_server(shared: &MysqlShared, up: &upstream::Upstream) {
    let mut facts = shared.server.lock().unwrap_or_else(|e| e.into_inner());
    facts.version = up.server_version.clone();
    facts.capabilities = up.server_capabilities;
    facts.mariadb_capabilities = up.is_mariadb().then_some(up.server_mariadb_capabilities);
}

async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    mut admission: Admission,
    shared: Arc<MysqlShared>,
    shutdown: watch::Receiver<bool>,
) {
    let connection_id = shared.kills.next_id();
    let span = tracing::info_span!("mysql", client = %peer, connection = connection_id);
    let opened = tokio::time::timeout(
        shared.startup_timeout,
        open(tcp, peer, connection_id, &mut admission, &shared),
    )
    .instrument(span.clone())
    .await;
    let Ok(Some((session, logged_in, upstream, _share))) = opened else {
        return;
    };
    let span = tracing::info_span!("session", id = %session.id, client = %peer, identity = %session.identity);
    run_session(
        session,
        logged_in,
        upstream,
        connection_id,
        shared,
        shutdown,
    )
    .instrument(span)
    .await;
}

/// Login and upstream connection; `None` when the client was refused.
async fn open(
    tcp: TcpStream,
    peer: SocketAddr,
    connection_id: u32,
    admission: &mut Admission,
    shared: &MysqlShared,
) -> Option<(SessionInfo, LoggedIn, upstream::Upstream, Share)> {
    let locked_out = |remaining: Duration| {
        ErrPacket::new(
            1129,
            "HY000",
            format!(
                "too many failed logins for this user from this address; try again in {} s",
                remaining.as_secs().max(1)
            ),
        )
    };
    let facts = shared
        .server
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let greeting = Greeting {
        server_version: facts.version,
        connection_id,
        capabilities: SUPPORTED & facts.capabilities,
        mariadb_capabilities: facts
            .mariadb_capabilities
            .map(|offered| offered & MARIADB_SUPPORTED),
    };
    // The name is known only from the handshake response: the lockout is
    // checked once the client has answered, and a locked-out name is
    // refused whether or not its password was right (so guessing on
    // teaches nothing).
    let mut logged_in = match frontend::log_in(tcp, &greeting, &shared.login).await {
        Ok(l) => {
            let key = LoginKey::new(peer.ip(), &l.identity.name, &shared.login.identities);
            if let Err(remaining) = shared.throttle.check(&key) {
                crate::metrics::get().refused(Protocol::Mysql, crate::metrics::Refusal::LockedOut);
                refuse_logged_in(l, locked_out(remaining)).await;
                return None;
            }
            shared.throttle.record_success(&key);
            l
        }
        Err(mut refused) => {
            let key = LoginKey::new(peer.ip(), &refused.user, &shared.login.identities);
            if let Err(remaining) = shared.throttle.check(&key) {
                crate::metrics::get().refused(Protocol::Mysql, crate::metrics::Refusal::LockedOut);
                refused.error = locked_out(remaining);
                refused.auth_failure = false;
            }
            if refused.auth_failure {
                shared.throttle.record_failure(&key);
                let metrics = crate::metrics::get();
                metrics.auth_failure(Protocol::Mysql);
                // This failure is the one that locked the name out here.
                if shared.throttle.check(&key).is_err() {
                    metrics.lockout(Protocol::Mysql);
                }
                shared.gate.audit().record(AuditEvent::AuthFailure {
                    client_addr: peer,
                    user: &refused.user,
                    reason: &refused.error.message,
                });
            }
            tracing::info!(code = refused.error.code, reason = %refused.error.message, "login refused");
            frontend::refuse(refused).await;
            return None;
        }
    };
    if !admission.logged_in() {
        let error = ErrPacket::new(
            1040,
            "08004",
            "Too many sessions through Airlock (server.max_connections); try again later",
        );
        refuse_logged_in(logged_in, error).await;
        return None;
    }
    let identity = &logged_in.identity;
    let database = logged_in
        .response
        .database
        .as_ref()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .or_else(|| shared.upstream.database.clone());
    if let Some(message) = identity.database_login_refusal() {
        tracing::warn!(identity = %identity.name, "database login refused: the identity works in the inbox");
        refuse_logged_in(logged_in, ErrPacket::new(1045, "28000", message)).await;
        return None;
    }
    if let Some(db) = &database {
        if let Some(error) = system_database_refusal(db) {
            refuse_logged_in(logged_in, error).await;
            return None;
        }
        if !identity.may_use_database(db) {
            let error = ErrPacket::new(
                1044,
                "42000",
                format!(
                    "Access denied for user '{}' to database '{db}' (not among the identity's databases in Airlock)",
                    identity.name
                ),
            );
            refuse_logged_in(logged_in, error).await;
            return None;
        }
    }
    // The handshake's collation id is the session's character set: one
    // Airlock cannot read as the server does is refused (see sql::encoding).
    if !crate::sql::encoding::is_ascii_safe_mysql_collation_id(u16::from(
        logged_in.response.charset,
    )) {
        let error = ErrPacket::new(
            1235,
            "42000",
            format!(
                "Airlock does not accept the character set of collation id {}: in it, bytes that look like \
                 quotes or backslashes can be part of multi-byte characters, so Airlock cannot read statements \
                 the way the server does; connect with the utf8mb4 character set",
                logged_in.response.charset
            ),
        );
        refuse_logged_in(logged_in, error).await;
        return None;
    }
    let share = match shared
        .limits
        .claim(&identity.name, shared.upstream.connect_timeout)
        .await
    {
        Ok(share) => share,
        Err(e) => {
            tracing::warn!(identity = %identity.name, reason = %e, "session refused by a limit");
            // ER_TOO_MANY_USER_CONNECTIONS, as the server's own
            // max_user_connections says it.
            refuse_logged_in(logged_in, ErrPacket::new(1203, "42000", e.to_string())).await;
            return None;
        }
    };
    let mut settings = shared.upstream.clone();
    settings.database = database.clone();
    // A least-privilege service login may reach the database only through
    // the identity's role, which is not active yet at login: a confined
    // session logs in without a database and enters it after `SET ROLE`.
    let setup = logged_in.identity.confinement.mysql_setup();
    let enter_after_setup = match &database {
        Some(db) if !setup.is_empty() => {
            settings.database = None;
            Some(format!("USE `{}`", db.replace('`', "``")))
        }
        _ => None,
    };
    settings.capabilities = logged_in.capabilities;
    settings.mariadb_capabilities = logged_in.mariadb_capabilities;
    settings.charset = logged_in.response.charset;
    let id = SessionId::next();
    settings.attributes = upstream::session_attributes(&logged_in.identity.name, &id.0);
    let mut upstream = match upstream::connect(&settings).await {
        Ok(u) => u,
        Err(e) => {
            crate::metrics::get().refused(
                Protocol::Mysql,
                crate::metrics::Refusal::UpstreamUnavailable,
            );
            let error = upstream_error(&e);
            refuse_logged_in(logged_in, error).await;
            return None;
        }
    };
    // Both legs must read column definitions alike: an upstream that no
    // longer offers what the agent was promised (a failover to another
    // server since the greeting) cannot carry this session.
    if upstream.mariadb_capabilities != logged_in.mariadb_capabilities {
        remember_server(shared, &upstream);
        let error = ErrPacket::new(
            1043,
            "08S01",
            "the upstream server changed its capabilities during the login; connect again",
        );
        refuse_logged_in(logged_in, error).await;
        return None;
    }
    // The identity's upstream role and read-only mode, before the agent's
    // first command. The server's reason (a role not granted to the
    // service login…) is for the administrator's log only.
    let timeout = logged_in
        .identity
        .confinement
        .mysql_timeout_setup(upstream.is_mariadb());
    for sql in setup.into_iter().chain(enter_after_setup).chain(timeout) {
        if let Err(e) = upstream::execute(&mut upstream, &sql).await {
            tracing::warn!(error = %e, statement = %sql, "the upstream refused the identity's upstream_role / read_only set-up");
            let error = ErrPacket::new(
                1227,
                "42000",
                "Airlock could not start this session under the identity's upstream_role / read_only setting; the gateway's log says why",
            );
            refuse_logged_in(logged_in, error).await;
            return None;
        }
    }
    remember_server(shared, &upstream);
    // Rows are relayed as they come: both legs must frame result sets the
    // same way.
    if upstream.capabilities & CLIENT_DEPRECATE_EOF != logged_in.capabilities & CLIENT_DEPRECATE_EOF
    {
        let error = ErrPacket::new(
            1105,
            "HY000",
            "the upstream server changed its capabilities; reconnect",
        );
        refuse_logged_in(logged_in, error).await;
        return None;
    }
    let application = logged_in
        .response
        .attributes
        .iter()
        .find(|(k, _)| k == b"program_name" || k == b"_program_name")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let sampler = capped::Sampler::new(
        shared.upstream.clone(),
        logged_in.identity.confinement.clone(),
        &logged_in.identity.name,
        &id.0,
    );
    let session = SessionInfo {
        door: Default::default(),
        id,
        identity: logged_in.identity.name.clone(),
        role: logged_in.identity.role,
        client_addr: peer,
        application_name: application,
        database: database.unwrap_or_default(),
        protocol: Protocol::Mysql,
        confinement: logged_in.identity.confinement.clone(),
        tls: logged_in.packets.get_ref().is_tls(),
        ending: Default::default(),
        sampler: Some(crate::mask::sample::Sampling(Arc::new(sampler))),
    };
    let ok = OkPacket {
        affected_rows: 0,
        last_insert_id: 0,
        status: upstream.status,
        warnings: 0,
        info: Vec::new(),
        session_state: None,
    };
    let caps = logged_in.capabilities;
    logged_in.packets.write_with(|b| ok.write(b, caps, false));
    if logged_in.packets.flush().await.is_err() {
        return None;
    }
    Some((session, logged_in, upstream, share))
}

async fn refuse_logged_in(logged_in: LoggedIn, error: ErrPacket) {
    tracing::info!(code = error.code, reason = %error.message, "session refused");
    frontend::refuse(frontend::Refused {
        packets: Some(logged_in.packets),
        error,
        auth_failure: false,
        user: String::new(),
    })
    .await;
}

/// What the agent is told when the upstream cannot serve it: errors about
/// its own request (an unknown database) pass on; anything about
/// Airlock's service account does not.
fn upstream_error(e: &UpstreamError) -> ErrPacket {
    tracing::warn!(error = %e, "upstream connection failed");
    match e {
        UpstreamError::Rejected {
            code: code @ (1049 | 1044),
            message,
            ..
        } => ErrPacket::new(*code, "42000", message.clone()),
        UpstreamError::Rejected { code: 1040, .. } => ErrPacket::new(
            1040,
            "08004",
            "the upstream server has too many connections",
        ),
        _ => ErrPacket::new(
            1105,
            "HY000",
            "Airlock could not connect to the upstream database",
        ),
    }
}

async fn run_session(
    session: SessionInfo,
    logged_in: LoggedIn,
    mut upstream: upstream::Upstream,
    connection_id: u32,
    shared: Arc<MysqlShared>,
    shutdown: watch::Receiver<bool>,
) {
    let audit = shared.gate.audit().clone();
    audit.record(AuditEvent::SessionStart { session: &session });
    let metrics = crate::metrics::get();
    let _open = metrics.session_opened(Protocol::Mysql, &session.identity);
    // MySQL sessions each have their own upstream connection, for as long
    // as the session lives.
    let _upstream = metrics.upstream_guard(Protocol::Mysql, "in_use");
    let cancelled = shared.kills.register(
        connection_id,
        upstream.connection_id,
        &logged_in.identity.name,
    );
    let LoggedIn {
        mut packets,
        identity,
        capabilities,
        ..
    } = logged_in;
    packets.set_limit(shared.max_packet_bytes);
    upstream.packets.reset();
    let mut relay = relay::Relay::new(
        packets,
        upstream,
        capabilities,
        session.clone(),
        identity,
        shared.clone(),
        shutdown,
        connection_id,
        cancelled,
    );
    let end = relay.run().await;
    // Whatever finished before the end is recorded before the end is.
    relay.record_finished();
    shared.kills.remove(connection_id);
    audit.record(AuditEvent::SessionEnd {
        session: &session.id,
        reason: end.reason(),
    });
    let stream = relay.client.get_mut();
    let _ = tokio::io::AsyncWriteExt::shutdown(stream).await;
    if end == relay::End::ProtocolError {
        drain(stream).await;
    }
}

/// Reads and drops what a refused client is still sending (the rest of an
/// oversized packet, say) for a moment: closing a socket with unread bytes
/// makes the kernel reset the connection, and the client would lose the
/// ERR that says why.
async fn drain(stream: &mut crate::proxy::Stream) {
    use tokio::io::AsyncReadExt;
    let mut sink = vec![0u8; 64 << 10];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut left: usize = 256 << 20;
    while left > 0 {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// The server's own schemas: with one of them as the session's default
/// database, an unqualified `INSERT INTO user …` writes the grant tables,
/// and the classifier (which reads names as written) cannot tell. Agents
/// may still read them with qualified names, which the classifier judges.
fn system_database_refusal(db: &str) -> Option<ErrPacket> {
    const SYSTEM: [&str; 3] = ["mysql", "performance_schema", "sys"];
    SYSTEM
        .iter()
        .any(|s| s.eq_ignore_ascii_case(db.trim()))
        .then(|| {
            ErrPacket::new(
                1044,
                "42000",
                format!(
                    "Access denied to database '{db}': Airlock does not let a session work inside the server's \
                     system schemas; qualify names (e.g. {db}.table) instead"
                ),
            )
        })
}

#[cfg(test)]
mod system_database_tests {
    #[test]
    fn system_schemas_are_refused_in_any_case() {
        for db in ["mysql", "MySQL", "performance_schema", "SYS", " mysql"] {
            assert!(super::system_database_refusal(db).is_some(), "{db}");
        }
        for db in ["test", "mysqlx", "sysadmin", "information_schema"] {
            assert!(super::system_database_refusal(db).is_none(), "{db}");
        }
    }
}
