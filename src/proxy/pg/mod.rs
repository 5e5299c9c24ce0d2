//! The PostgreSQL side of the gateway.
//!
//! * [`codec`] — message framing and the few messages Airlock writes itself;
//! * [`frontend`] — TLS, startup packet and SCRAM login of the client;
//! * [`upstream`] — Airlock's own connections to the server, and their pool
//!   (which keeps no connection longer than it is useful);
//! * [`relay`] — the two loops that carry a session;
//! * [`cancel`] — CancelRequest routing: the server's pid, Airlock's own secret.
//!
//! [`PgListener`] ties them together: it accepts connections, caps their
//! number, and drains them on shutdown.

pub mod cancel;
pub mod capped;
pub mod codec;
pub mod frontend;
pub mod names;
pub mod relay;
pub mod upstream;

use crate::audit::AuditEvent;
use crate::gate::{Gate, Protocol, SessionId, SessionInfo, SessionStatements};
use crate::identity::{LoginKey, LoginThrottle};
use crate::limits::{Limits, Share};
use crate::proxy::{serve_sessions, Admission, SessionLimits, Stream};
use cancel::{Cancel, CancelMap};
use codec::MessageReader;
use frontend::{LoginSettings, Opening, StartupError};
use relay::{Back, BackEnd, Front, FrontEnd};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;
use upstream::{Pool, PoolKey, UpstreamError};

/// Everything a Postgres session needs, shared by all of them.
pub struct PgShared {
    pub login: LoginSettings,
    pub gate: Arc<Gate>,
    pub pool: Arc<Pool>,
    pub cancels: Arc<CancelMap>,
    pub throttle: LoginThrottle<LoginKey>,
    /// Fair limits (`[limits]`), shared with the other listener.
    pub limits: Arc<Limits>,
    /// How long a session waits for one of its identity's upstream
    /// connections (`postgres.acquire_timeout_secs`).
    pub acquire_timeout: Duration,
    pub max_message_bytes: usize,
    pub startup_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_connections: usize,
    /// The database used when a client names none.
    pub default_database: String,
    /// Databases no agent may open whatever its `databases` say: the
    /// shared approval store's, when it may be on the upstream server.
    pub reserved_databases: Vec<String>,
}

pub struct PgListener {
    listener: TcpListener,
    shared: Arc<PgShared>,
}

impl PgListener {
    pub async fn bind(addr: SocketAddr, shared: Arc<PgShared>) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
            shared,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
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
            crate::metrics::get().refused(
                Protocol::Postgres,
                crate::metrics::Refusal::TooManyConnections,
            );
            let error = StartupError {
                code: "53300",
                message: "too many connections to Airlock".into(),
                auth_failure: false,
            };
            frontend::refuse(&mut Stream::Plain(tcp), &error).await;
        };
        let session =
            move |tcp, peer, admission, stop| handle(tcp, peer, admission, shared.clone(), stop);
        serve_sessions(
            &self.listener,
            "postgres",
            limits,
            shutdown,
            refuse,
            session,
        )
        .await;
    }
}

async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    mut admission: Admission,
    shared: Arc<PgShared>,
    shutdown: watch::Receiver<bool>,
) {
    let opening = tokio::time::timeout(
        shared.startup_timeout,
        frontend::open(tcp, shared.login.tls.as_ref(), shared.login.require_tls),
    )
    .await;
    let startup = match opening {
        Err(_) => return,
        Ok(Err((mut stream, error))) => {
            tracing::info!(client = %peer, code = error.code, reason = %error.message, "connection refused at startup");
            frontend::refuse(&mut stream, &error).await;
            return;
        }
        Ok(Ok(Opening::Cancel { key, mut stream })) => {
            match shared.cancels.cancel(key, peer.ip()) {
                Cancel::Forward(upstream_key) => {
                    tracing::info!(client = %peer, "forwarding cancel request");
                    if let Err(e) = shared.pool.settings().cancel(upstream_key).await {
                        tracing::warn!(error = %e, "cancel request could not reach the upstream");
                    }
                }
                Cancel::NoSession => {
                    tracing::info!(client = %peer, "cancel request for no live session ignored");
                }
                Cancel::Throttled => {
                    tracing::warn!(client = %peer, "cancel request ignored: too many from this address named no session");
                }
            }
            // As the server does: nothing is answered, the connection is
            // closed once the request is handled. Over TLS the shutdown
            // sends close_notify first; without it libpq reports "SSL
            // error: unexpected eof" although the cancel worked.
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.shutdown()).await;
            return;
        }
        Ok(Ok(Opening::Session(s))) => s,
    };
    let span = tracing::info_span!("session", client = %peer, user = %startup.user);
    let login = tokio::time::timeout(
        shared.startup_timeout,
        log_in(startup, peer, &mut admission, &shared),
    );
    let Ok(Some((session, stream, pooled, negotiate, _share))) =
        login.instrument(span.clone()).await
    else {
        return;
    };
    let span = tracing::info_span!("session", id = %session.id, client = %peer, identity = %session.identity);
    run_session(session, stream, pooled, negotiate, shared, shutdown)
        .instrument(span)
        .await;
}

/// A logged-in session, and its places in the limits (held for its life).
type LoggedIn = (
    SessionInfo,
    Stream,
    upstream::Pooled,
    Option<bytes::Bytes>,
    Share,
);

async fn log_in(
    startup: frontend::Startup,
    peer: SocketAddr,
    admission: &mut Admission,
    shared: &PgShared,
) -> Option<LoggedIn> {
    let frontend::Startup {
        mut stream,
        user,
        database,
        params,
        dropped,
        protocol_options,
        minor_version,
    } = startup;
    let throttled = LoginKey::new(peer.ip(), &user, &shared.login.identities);
    if let Err(remaining) = shared.throttle.check(&throttled) {
        crate::metrics::get().refused(Protocol::Postgres, crate::metrics::Refusal::LockedOut);
        let error = StartupError {
            code: "28000",
            message: format!(
                "too many failed logins for this user from this address; try again in {} s",
                remaining.as_secs().max(1)
            ),
            auth_failure: false,
        };
        frontend::refuse(&mut stream, &error).await;
        return None;
    }
    let identity = match frontend::authenticate(&mut stream, &shared.login.identities, &user).await
    {
        Ok(identity) => identity,
        Err(error) => {
            if error.auth_failure {
                shared.throttle.record_failure(&throttled);
                let metrics = crate::metrics::get();
                metrics.auth_failure(Protocol::Postgres);
                // This failure is the one that locked the name out here.
                if shared.throttle.check(&throttled).is_err() {
                    metrics.lockout(Protocol::Postgres);
                }
                let audit = shared.gate.audit();
                audit.record(AuditEvent::AuthFailure {
                    client_addr: peer,
                    user: &user,
                    reason: &error.message,
                });
            }
            frontend::refuse(&mut stream, &error).await;
            return None;
        }
    };
    shared.throttle.record_success(&throttled);
    if !admission.logged_in() {
        let error = StartupError {
            code: "53300",
            message: "too many sessions through Airlock (server.max_connections); try again later"
                .into(),
            auth_failure: false,
        };
        frontend::refuse(&mut stream, &error).await;
        return None;
    }
    if !dropped.is_empty() {
        tracing::warn!(parameters = ?dropped, "startup parameters not forwarded to the upstream");
    }

    let database = database.unwrap_or_else(|| shared.default_database.clone());
    // Whatever the identity: Airlock reaches its store directly, never
    // through its own listener, so no session needs it.
    if shared.reserved_databases.contains(&database) {
        tracing::warn!(identity = %identity.name, database = %database, "login to the approval store's database refused");
        let error = StartupError {
            code: "42501",
            message: format!(
                "database \"{database}\" holds Airlock's approval store; no session through Airlock may use it"
            ),
            auth_failure: false,
        };
        frontend::refuse(&mut stream, &error).await;
        return None;
    }
    if let Some(message) = identity.database_login_refusal() {
        tracing::warn!(identity = %identity.name, "database login refused: the identity works in the inbox");
        let error = StartupError {
            code: "28000",
            message,
            auth_failure: false,
        };
        frontend::refuse(&mut stream, &error).await;
        return None;
    }
    if !identity.may_use_database(&database) {
        let error = StartupError {
            code: "42501",
            message: format!(
                "identity \"{}\" may not use database \"{database}\" (its [[identity]] databases)",
                identity.name
            ),
            auth_failure: false,
        };
        frontend::refuse(&mut stream, &error).await;
        return None;
    }
    // The client's own application_name is not a startup parameter
    // upstream: connections start as `airlock:<identity>` (what RESET
    // returns to) and every checkout sets the session's full name (see
    // sql::application_name), so connections serve clients of any name.
    let (application_name, mut params): (Vec<_>, Vec<_>) = params
        .into_iter()
        .partition(|(k, _)| k == "application_name");
    let application_name = application_name.into_iter().next().map(|(_, v)| v);
    params.push((
        "application_name".into(),
        crate::sql::application_name::identity_default(&identity.name),
    ));
    params.sort();
    let key = PoolKey {
        database: database.clone(),
        params,
    };
    let share = match shared
        .limits
        .claim(&identity.name, shared.acquire_timeout)
        .await
    {
        Ok(share) => share,
        Err(e) => {
            tracing::warn!(identity = %identity.name, reason = %e, "session refused by a limit");
            let error = StartupError {
                code: "53300",
                message: e.to_string(),
                auth_failure: false,
            };
            frontend::refuse(&mut stream, &error).await;
            return None;
        }
    };
    let id = SessionId::next();
    let named = crate::sql::application_name::value(
        &crate::sql::application_name::prefix(&identity.name, &id.0),
        application_name.as_deref(),
    );
    // One implicit transaction with the confinement set-up: both or neither.
    let setup = Some(match identity.confinement.postgres_setup() {
        Some(confine) => format!("{confine}; SET SESSION application_name = '{named}'"),
        None => format!("SET SESSION application_name = '{named}'"),
    });
    let pooled = match shared.pool.acquire_confined(&key, setup.as_deref()).await {
        Ok(p) => p,
        Err(e) => {
            crate::metrics::get().refused(
                Protocol::Postgres,
                crate::metrics::Refusal::UpstreamUnavailable,
            );
            frontend::refuse(&mut stream, &upstream_error(&e)).await;
            return None;
        }
    };
    // A role's or database's default (ALTER ROLE … SET client_encoding)
    // applies at login: the server reports it before the first query.
    if let Some((_, value)) = pooled.conn.params.iter().find(|(n, v)| {
        crate::sql::encoding::reported_parameter_refusal(n.as_bytes(), v.as_bytes()).is_some()
    }) {
        tracing::warn!(client_encoding = %value, "session refused: the server's client encoding for it is not ASCII-safe");
        frontend::refuse(&mut stream, &frontend::unsafe_encoding(value)).await;
        return None;
    }
    let sampler = capped::Sampler::new(
        shared.pool.clone(),
        key.clone(),
        &identity.confinement,
        &identity.name,
        &id.0,
    );
    let session = SessionInfo {
        door: Default::default(),
        id,
        identity: identity.name,
        role: identity.role,
        client_addr: peer,
        application_name,
        database,
        protocol: Protocol::Postgres,
        confinement: identity.confinement.clone(),
        tls: stream.is_tls(),
        ending: Default::default(),
        sampler: Some(crate::mask::sample::Sampling(Arc::new(sampler))),
    };
    // A client asking for a newer minor version or for protocol options is
    // told what this session speaks: 3.0, no options.
    let negotiate = (minor_version > 0 || !protocol_options.is_empty())
        .then(|| codec::backend::negotiate_protocol_version(0, &protocol_options));
    Some((session, stream, pooled, negotiate, share))
}

/// What the client is told when the upstream cannot serve it. Upstream
/// errors that concern the client's request (an unknown database) are
/// passed on; anything about Airlock's own login is not.
fn upstream_error(e: &UpstreamError) -> StartupError {
    tracing::warn!(error = %e, "upstream connection failed");
    match e {
        UpstreamError::Rejected { code, message } if code == "3D000" => StartupError {
            code: "3D000",
            message: message.clone(),
            auth_failure: false,
        },
        // A setting the client asked for (a startup parameter or one in
        // `options`) that the server finds invalid: the message is about
        // the client's own value.
        UpstreamError::Rejected { code, message } if code == "22023" => StartupError {
            code: "22023",
            message: message.clone(),
            auth_failure: false,
        },
        UpstreamError::Rejected { code, .. } if code == "53300" => StartupError {
            code: "53300",
            message: "the upstream database has no free connections".into(),
            auth_failure: false,
        },
        // The detail (a missing role, a grant the service login lacks) is
        // for the administrator, in the gateway's log, not for the agent.
        UpstreamError::Confinement { .. } => StartupError {
            code: "42501",
            message: "Airlock could not start this session under the identity's upstream_role / read_only \
                      setting; the gateway's log says why"
                .into(),
            auth_failure: false,
        },
        UpstreamError::Exhausted(n) => StartupError {
            code: "53300",
            message: format!(
                "all {n} upstream connections are in use; try again later (postgres.pool_size)"
            ),
            auth_failure: false,
        },
        _ => StartupError {
            code: "08001",
            message: "Airlock could not connect to the upstream database".into(),
            auth_failure: false,
        },
    }
}

async fn run_session(
    session: SessionInfo,
    mut client: Stream,
    pooled: upstream::Pooled,
    negotiate: Option<bytes::Bytes>,
    shared: Arc<PgShared>,
    shutdown: watch::Receiver<bool>,
) {
    let audit = shared.gate.audit().clone();
    audit.record(AuditEvent::SessionStart { session: &session });
    let _open = crate::metrics::get().session_opened(Protocol::Postgres, &session.identity);
    let upstream::Pooled { conn, permit } = pooled;
    let upstream::UpstreamConn {
        stream: upstream_stream,
        buffered,
        params,
        backend_key,
        key,
    } = conn;
    let cancel_key = shared.cancels.register(backend_key);

    let mut masker = shared.gate.masker_for(&session);
    // The values the server reported at startup go through the masker as
    // later ParameterStatus messages do: a role's or database's defaults
    // (`ALTER ROLE … SET application_name = …`) are values too.
    let shown: Vec<(String, String)> = params
        .iter()
        .map(|(name, value)| {
            let value = masker.mask_message_text(value.as_bytes()).map_or_else(
                || value.clone(),
                |v| String::from_utf8_lossy(&v).into_owned(),
            );
            (name.clone(), value)
        })
        .collect();
    let mut welcome = frontend::welcome(&shown, cancel_key.key(), negotiate);
    if codec::write_out(&mut client, &mut welcome).await.is_err() {
        audit.record(AuditEvent::SessionEnd {
            session: &session.id,
            reason: "client left during startup",
        });
        return;
    }

    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream_stream);
    let (tx, rx) = relay::queue();
    let names = Arc::new(names::Names::default());
    let progress = Arc::new(relay::Progress::default());
    let mut front = Front {
        reader: MessageReader::new(client_read, shared.max_message_bytes),
        upstream: upstream_write,
        queue: tx,
        gate: shared.gate.clone(),
        session: session.clone(),
        shutdown,
        sql_statements: SessionStatements::confirmed_by_relay(),
        names: names.clone(),
        segment: Default::default(),
        segment_no: 0,
        progress: progress.clone(),
        barrier: None,
        stash: Default::default(),
        cancelled: cancel_key.cancelled(),
        pool: shared.pool.clone(),
        pool_key: key.clone(),
    };
    let mut back = Back {
        reader: MessageReader::with_buffer(upstream_read, buffered, usize::MAX),
        client: client_write,
        queue: rx,
        masker,
        gate: shared.gate.clone(),
        session: session.clone(),
        reported: Vec::new(),
        status: b'I',
        fatal_forwarded: false,
        names,
        loaded: None,
        failed_segment: None,
        broken: None,
        progress,
        capture_rows: shared.gate.audit().capture_rows(),
        finished: Default::default(),
    };

    let (front_end, back_end) = {
        let front_run = front.run();
        let back_run = back.run();
        tokio::pin!(front_run, back_run);
        tokio::select! {
            f = &mut front_run => {
                // Let the back loop deliver what is in flight (and any FATAL
                // queued for the client) — unless nobody is there to read it.
                let b = if f == FrontEnd::ClientGone {
                    None
                } else {
                    let grace = if f == FrontEnd::Shutdown { shared.shutdown_timeout } else { Duration::from_secs(5) };
                    tokio::time::timeout(grace, &mut back_run).await.ok()
                };
                (Some(f), b)
            }
            b = &mut back_run => {
                // The front loop is dropped with this block, perhaps in
                // the middle of a hold: say why, for the request it leaves.
                session.ending.set(match b {
                    BackEnd::UpstreamGone => "the database connection was lost",
                    BackEnd::ClientGone => "the client disconnected",
                    _ => "the session ended",
                });
                (None, Some(b))
            }
        }
    };

    // The back loop writes its statements' records after the client's
    // writes; whatever finished before it ended (or was stopped) is
    // written now, before the session's end.
    back.record_finished();
    let reason = match (&front_end, &back_end) {
        (Some(FrontEnd::Terminated), _) => "client terminated",
        (Some(FrontEnd::ClientGone), _) => "client disconnected",
        (Some(FrontEnd::ProtocolError), _) => "client protocol violation",
        (Some(FrontEnd::Shutdown), _) => "gateway shutdown",
        (_, Some(BackEnd::UpstreamGone)) | (Some(FrontEnd::UpstreamGone), _) => {
            "upstream connection lost"
        }
        (_, Some(BackEnd::ClientGone)) => "client disconnected",
        _ => "session ended",
    };
    audit.record(AuditEvent::SessionEnd {
        session: &session.id,
        reason,
    });

    let reusable = front_end == Some(FrontEnd::Terminated)
        && back_end == Some(BackEnd::Drained { status: b'I' })
        && !back.reader.has_buffered_message();
    let Front {
        reader: client_reader,
        upstream: upstream_write,
        ..
    } = front;
    let Back {
        reader: upstream_reader,
        client: client_write,
        reported,
        ..
    } = back;
    let mut client = client_reader.into_parts().0.unsplit(client_write);
    let _ = client.shutdown().await;

    // Before the connection can serve anyone else: a CancelRequest with
    // this session's key must find nothing from now on.
    drop(cancel_key);
    let (upstream_read, leftover) = upstream_reader.into_parts();
    let upstream_stream = upstream_read.unsplit(upstream_write);
    // Whether the server may still be working for this session: unless the
    // back loop saw the answer to everything sent, it may be.
    let upstream_busy = !matches!(
        back_end,
        Some(BackEnd::Drained { .. }) | Some(BackEnd::UpstreamGone)
    ) && front_end != Some(FrontEnd::UpstreamGone);
    if reusable && leftover.is_empty() {
        let mut conn = upstream::UpstreamConn {
            stream: upstream_stream,
            buffered: leftover,
            params,
            backend_key,
            key,
        };
        for (name, value) in reported {
            conn.set_param(&name, &value);
        }
        shared.pool.release(upstream::Pooled::new(conn, permit));
    } else if upstream_busy {
        // The upstream may still be running the client's last statement
        // (the client left mid-query, or sent Terminate and did not wait):
        // stop it rather than let it finish for nobody. Closing the socket
        // alone would not: a backend notices only when it next writes.
        drop(upstream_stream);
        let settings = shared.pool.settings().clone();
        tokio::spawn(async move {
            let _ = settings.cancel(backend_key).await;
            drop(permit);
        });
    }
}
