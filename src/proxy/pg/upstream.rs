//! Airlock's connections to the upstream PostgreSQL server, and the bounded
//! pool they live in.
//!
//! Airlock logs in with its own service credentials; agents never see them.
//! A connection serves one client session at a time. When the session ends
//! cleanly the connection is reset with `DISCARD ALL` and kept for the next
//! session that asks for the same database and startup parameters — the
//! parameters a connection was opened with are its defaults, which `DISCARD
//! ALL` restores, so only sessions that agree on them may share it.
//!
//! An idle connection still holds a backend in its database, and the server
//! refuses `DROP DATABASE`, `CREATE DATABASE … TEMPLATE` and a rename while
//! any backend is in the database concerned. So the pool keeps nothing
//! longer than it is useful: idle connections close after the idle timeout
//! (`postgres.idle_timeout_secs`); connections to the template databases
//! (which `CREATE DATABASE` copies) are never kept; a statement that needs
//! a database to itself closes every idle connection before it is
//! forwarded ([`Pool::before_statement`]); and when the server says it has
//! no free connection slot, idle connections make room.

use super::codec::{self, error_fields, FrameError, MessageReader};
use crate::config::UpstreamUrl;
use crate::proxy::Stream;
use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use rustls::pki_types::ServerName;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long an upstream connection stays idle in the pool when the
/// configuration does not say (`postgres.idle_timeout_secs`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Databases `CREATE DATABASE` copies: the server refuses to copy one while
/// any other session is connected to it, so the pool never keeps a
/// connection to them. (template0 does not accept connections; it is here
/// in case an administrator allowed them.)
const TEMPLATE_DATABASES: &[&str] = &["template0", "template1"];

/// The frontend Terminate message: a connection closed with it ends its
/// backend at once and without a complaint in the server's log.
const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// Upstream messages can be as large as the server produces (a DataRow may
/// carry a 1 GB value); this bounds a single message, not the connection.
const MAX_UPSTREAM_MESSAGE: usize = (1 << 30) + 1024;

/// What identifies interchangeable connections.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub database: String,
    /// Allowlisted startup parameters, sorted by name.
    pub params: Vec<(String, String)>,
}

/// An authenticated upstream connection, ready for a query.
pub struct UpstreamConn {
    pub stream: Stream,
    /// Bytes read past the last complete message.
    pub buffered: BytesMut,
    /// The server's ParameterStatus values, in the order first reported.
    pub params: Vec<(String, String)>,
    pub backend_key: (i32, i32),
    pub key: PoolKey,
}

impl UpstreamConn {
    /// Records a ParameterStatus value reported by the server.
    pub fn set_param(&mut self, name: &str, value: &str) {
        match self.params.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.params.push((name.to_string(), value.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the upstream server: {0}")]
    Connect(std::io::Error),
    #[error("timed out connecting to the upstream server")]
    Timeout,
    #[error("TLS with the upstream server failed: {0}")]
    Tls(String),
    /// The server answered with an ErrorResponse.
    #[error("upstream refused: {code} {message}")]
    Rejected { code: String, message: String },
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    #[error("all {0} upstream connections are in use")]
    Exhausted(usize),
    /// The server refused the identity's upstream role or read-only set-up.
    #[error("the upstream refused the identity's confinement: {code} {message}")]
    Confinement { code: String, message: String },
}

impl From<FrameError> for UpstreamError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(io) => UpstreamError::Connect(io),
            other => UpstreamError::Protocol(other.to_string()),
        }
    }
}

/// How to reach and log in to the upstream.
pub struct UpstreamSettings {
    pub url: UpstreamUrl,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
}

impl UpstreamSettings {
    /// Opens a TCP connection, upgraded to TLS when configured.
    pub async fn open_stream(&self) -> Result<Stream, UpstreamError> {
        let tcp =
            tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.url.address()))
                .await
                .map_err(|_| UpstreamError::Timeout)?
                .map_err(UpstreamError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let mut tcp = tcp;
        tcp.write_all(&codec::frontend::ssl_request())
            .await
            .map_err(UpstreamError::Connect)?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer)
            .await
            .map_err(UpstreamError::Connect)?;
        if answer[0] != b'S' {
            return Err(UpstreamError::Tls(
                "the server does not accept TLS connections".into(),
            ));
        }
        let name = ServerName::try_from(self.url.host.clone())
            .map_err(|e| UpstreamError::Tls(e.to_string()))?;
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        let stream = tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(|e| UpstreamError::Tls(e.to_string()))?;
        Ok(Stream::ClientTls(Box::new(stream)))
    }

    /// Connects and logs in, returning a connection at ReadyForQuery.
    pub async fn connect(&self, key: PoolKey) -> Result<UpstreamConn, UpstreamError> {
        let login = async {
            let mut stream = self.open_stream().await?;
            let mut startup = vec![
                ("user".to_string(), self.url.user.clone()),
                ("database".to_string(), key.database.clone()),
            ];
            startup.extend(key.params.iter().cloned());
            stream
                .write_all(&codec::frontend::startup(&startup))
                .await
                .map_err(UpstreamError::Connect)?;
            let mut reader = MessageReader::new(stream, MAX_UPSTREAM_MESSAGE);
            self.authenticate(&mut reader).await?;
            let mut params = Vec::new();
            let mut backend_key = (0, 0);
            loop {
                let msg = reader.read().await?;
                let mut f = codec::Fields::new(msg.body());
                match msg.tag() {
                    b'S' => {
                        if let (Some(n), Some(v)) = (f.cstr(), f.cstr()) {
                            params.push((
                                String::from_utf8_lossy(n).into_owned(),
                                String::from_utf8_lossy(v).into_owned(),
                            ));
                        }
                    }
                    b'K' => backend_key = (f.i32().unwrap_or(0), f.i32().unwrap_or(0)),
                    b'N' => {}
                    b'Z' => break,
                    b'E' => return Err(rejected(msg.body())),
                    other => {
                        return Err(UpstreamError::Protocol(format!(
                            "unexpected message `{}` during startup",
                            other as char
                        )))
                    }
                }
            }
            let (stream, buffered) = reader.into_parts();
            Ok(UpstreamConn {
                stream,
                buffered,
                params,
                backend_key,
                key,
            })
        };
        tokio::time::timeout(self.connect_timeout * 3, login)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    async fn authenticate(&self, reader: &mut MessageReader<Stream>) -> Result<(), UpstreamError> {
        let password = || {
            self.url.password.as_deref().ok_or_else(|| {
                UpstreamError::Protocol(
                    "the upstream asks for a password but postgres.upstream has none".into(),
                )
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let msg = reader.read().await?;
            if msg.tag() == b'E' {
                return Err(rejected(msg.body()));
            }
            if msg.tag() != b'R' {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message `{}` during login",
                    msg.tag() as char
                )));
            }
            let mut f = codec::Fields::new(msg.body());
            let reply: Bytes = match f.i32() {
                Some(0) => return Ok(()),
                Some(3) => {
                    let mut body = password()?.as_bytes().to_vec();
                    body.push(0);
                    codec::frontend::password_message(&body)
                }
                Some(5) => {
                    let salt: [u8; 4] = f
                        .take(4)
                        .and_then(|s| s.try_into().ok())
                        .ok_or_else(|| UpstreamError::Protocol("short MD5 salt".into()))?;
                    let mut body = postgres_protocol::authentication::md5_hash(
                        self.url.user.as_bytes(),
                        password()?.as_bytes(),
                        salt,
                    )
                    .into_bytes();
                    body.push(0);
                    codec::frontend::password_message(&body)
                }
                Some(10) => {
                    let mut offered = Vec::new();
                    while let Some(m) = f.cstr().filter(|m| !m.is_empty()) {
                        offered.push(m);
                    }
                    if !offered.contains(&SCRAM_SHA_256.as_bytes()) {
                        return Err(UpstreamError::Protocol(
                            "the upstream offers no SASL mechanism Airlock supports".into(),
                        ));
                    }
                    let s = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                    let mut body = Vec::new();
                    body.extend_from_slice(SCRAM_SHA_256.as_bytes());
                    body.push(0);
                    body.extend_from_slice(&(s.message().len() as i32).to_be_bytes());
                    body.extend_from_slice(s.message());
                    scram = Some(s);
                    codec::frontend::password_message(&body)
                }
                Some(11) => {
                    let s = scram.as_mut().ok_or_else(|| {
                        UpstreamError::Protocol("SASL continue without start".into())
                    })?;
                    s.update(f.remaining())
                        .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                    codec::frontend::password_message(s.message())
                }
                Some(12) => {
                    let mut s = scram.take().ok_or_else(|| {
                        UpstreamError::Protocol("SASL final without start".into())
                    })?;
                    s.finish(f.remaining()).map_err(|_| {
                        UpstreamError::Protocol("the upstream's SCRAM signature is invalid".into())
                    })?;
                    continue;
                }
                other => {
                    return Err(UpstreamError::Protocol(format!(
                        "unsupported authentication request {other:?}"
                    )))
                }
            };
            reader
                .get_mut()
                .write_all(&reply)
                .await
                .map_err(UpstreamError::Connect)?;
        }
    }

    /// Asks the server to cancel whatever `key` is running.
    pub async fn cancel(&self, key: (i32, i32)) -> Result<(), UpstreamError> {
        let mut stream = self.open_stream().await?;
        stream
            .write_all(&codec::frontend::cancel_request(key.0, key.1))
            .await
            .map_err(UpstreamError::Connect)?;
        stream.flush().await.map_err(UpstreamError::Connect)?;
        // The server closes the connection when it has read the request.
        let mut sink = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut sink)).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
        Ok(())
    }
}

fn rejected(body: &[u8]) -> UpstreamError {
    let fields = error_fields(body);
    let get = |c: u8| {
        fields
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    UpstreamError::Rejected {
        code: get(b'C'),
        message: get(b'M'),
    }
}

/// A connection checked out of the pool, with its slot.
pub struct Pooled {
    pub conn: UpstreamConn,
    pub permit: OwnedSemaphorePermit,
}

impl Pooled {
    pub fn new(conn: UpstreamConn, permit: OwnedSemaphorePermit) -> Self {
        Self { conn, permit }
    }
}

/// A bounded set of upstream connections. The semaphore counts every open
/// connection, idle or busy, so the upstream never sees more than
/// `pool_size` connections from this gateway.
pub struct Pool {
    settings: Arc<UpstreamSettings>,
    size: usize,
    slots: Arc<Semaphore>,
    idle: Mutex<IdleSet>,
    /// Woken when a connection goes back to idle, for sessions waiting on a
    /// full pool.
    returned: Notify,
    acquire_timeout: Duration,
    idle_timeout: Duration,
}

/// The idle connections, oldest first.
#[derive(Default)]
struct IdleSet {
    conns: Vec<Idle>,
    /// Counts evictions of every idle connection: a connection that was
    /// being reset while one happened is closed rather than kept, since
    /// the eviction was meant for it too.
    evictions: u64,
}

struct Idle {
    pooled: Pooled,
    since: Instant,
}

impl Pool {
    /// A pool whose idle connections close after [`DEFAULT_IDLE_TIMEOUT`].
    pub fn new(
        settings: Arc<UpstreamSettings>,
        size: usize,
        acquire_timeout: Duration,
    ) -> Arc<Self> {
        Self::with_idle_timeout(settings, size, acquire_timeout, DEFAULT_IDLE_TIMEOUT)
    }

    /// A pool whose idle connections close after `idle_timeout`. Must be
    /// called inside a Tokio runtime, which runs the task that closes them.
    pub fn with_idle_timeout(
        settings: Arc<UpstreamSettings>,
        size: usize,
        acquire_timeout: Duration,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            settings,
            size,
            slots: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(IdleSet::default()),
            returned: Notify::new(),
            acquire_timeout,
            idle_timeout,
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(expire_idle(Arc::downgrade(&pool)));
            }
            Err(_) => tracing::warn!("no runtime: idle upstream connections will not expire"),
        }
        pool
    }

    /// Connections serving a session now, and idle ones.
    pub fn usage(&self) -> (usize, usize) {
        let idle = self.idle_count();
        let open = self.size.saturating_sub(self.slots.available_permits());
        (open.saturating_sub(idle), idle)
    }

    pub fn settings(&self) -> &Arc<UpstreamSettings> {
        &self.settings
    }

    /// A connection for `key`: an idle one that passes a round-trip check,
    /// else a new one. Waits up to the acquire timeout on a full pool.
    pub async fn acquire(&self, key: &PoolKey) -> Result<Pooled, UpstreamError> {
        self.acquire_confined(key, None).await
    }

    /// Like [`Pool::acquire`], and then runs `setup` (a confined
    /// identity's `SET SESSION ROLE …`, see
    /// [`crate::confinement::Confinement::postgres_setup`]) on the
    /// connection before handing it out. Idle connections were reset with
    /// `DISCARD ALL`, which drops any role an earlier session ran under, so
    /// the set-up runs on every checkout; it doubles as the idle
    /// connection's liveness check. A set-up the server refuses is
    /// [`UpstreamError::Confinement`], and the connection goes back to the
    /// pool (it is unchanged: the set-up is one implicit transaction).
    pub async fn acquire_confined(
        &self,
        key: &PoolKey,
        setup: Option<&str>,
    ) -> Result<Pooled, UpstreamError> {
        let mut pooled = self.acquire_unconfined(key).await?;
        let Some(setup) = setup else {
            return Ok(pooled);
        };
        match roundtrip(&mut pooled.conn, codec::frontend::query(setup)).await {
            Ok(()) => Ok(pooled),
            Err(UpstreamError::Rejected { code, message }) => {
                // The connection is idle and unchanged; it can serve others.
                // (A connection that failed otherwise is dropped with its slot.)
                self.put_back(pooled);
                Err(UpstreamError::Confinement { code, message })
            }
            Err(e) => Err(e),
        }
    }

    async fn acquire_unconfined(&self, key: &PoolKey) -> Result<Pooled, UpstreamError> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        loop {
            while let Some(mut pooled) = self.take_idle(key) {
                if ping(&mut pooled.conn).await.is_ok() {
                    return Ok(pooled);
                }
                tracing::debug!("discarding an idle upstream connection that failed its check");
            }
            let permit = match self.slots.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                // Full: make room by closing an idle connection opened for other parameters.
                Err(_) => self.evict_one_idle(),
            };
            if let Some(permit) = permit {
                let conn = self.connect_making_room(key).await?;
                return Ok(Pooled { conn, permit });
            }
            let _waiting =
                crate::metrics::get().upstream_guard(crate::gate::Protocol::Postgres, "waiting");
            let waited = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    permit = self.slots.clone().acquire_owned() => permit.ok(),
                    _ = self.returned.notified() => None,
                }
            })
            .await;
            match waited {
                Err(_) => return Err(UpstreamError::Exhausted(self.size)),
                Ok(Some(permit)) => {
                    let conn = self.connect_making_room(key).await?;
                    return Ok(Pooled { conn, permit });
                }
                Ok(None) => continue,
            }
        }
    }

    /// Connects; when the server says it is full (53300: its
    /// `max_connections`, or the database's or role's connection limit)
    /// while this pool holds idle connections, those are closed and the
    /// connection is tried again as their backends exit.
    async fn connect_making_room(&self, key: &PoolKey) -> Result<UpstreamConn, UpstreamError> {
        let mut retries = 0;
        loop {
            match self.settings.connect(key.clone()).await {
                Err(UpstreamError::Rejected { code, .. })
                    if code == "53300"
                        && retries < 20
                        && (retries > 0 || self.evict_idle(|_| true) > 0) =>
                {
                    if retries == 0 {
                        tracing::info!("the upstream is full: closed the pool's idle connections");
                    }
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// An idle connection for `key`, the most recently used one; expired
    /// ones met on the way are closed.
    fn take_idle(&self, key: &PoolKey) -> Option<Pooled> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let i = idle.conns.iter().rposition(|p| &p.pooled.conn.key == key)?;
            let Idle { pooled, since } = idle.conns.remove(i);
            if since.elapsed() < self.idle_timeout {
                return Some(pooled);
            }
            close(pooled);
        }
    }

    fn evict_one_idle(&self) -> Option<OwnedSemaphorePermit> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.conns.is_empty() {
            return None;
        }
        // The oldest: the least likely to be asked for again.
        let Pooled { conn, permit } = idle.conns.remove(0).pooled;
        tokio::spawn(terminate(conn));
        Some(permit)
    }

    /// Closes the idle connections whose key matches; how many.
    fn evict_idle(&self, matches: impl Fn(&PoolKey) -> bool) -> usize {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.evictions += 1;
        let (evicted, kept) = std::mem::take(&mut idle.conns)
            .into_iter()
            .partition::<Vec<_>, _>(|i| matches(&i.pooled.conn.key));
        idle.conns = kept;
        let n = evicted.len();
        for i in evicted {
            close(i.pooled);
        }
        n
    }

    /// To be called by the relay before it forwards a client's query
    /// (simple Query) or statement (Parse) to the upstream, with its text.
    ///
    /// The server runs `DROP DATABASE`, `CREATE DATABASE … TEMPLATE`,
    /// `ALTER DATABASE … RENAME` and the like only while no other backend
    /// is in the database concerned, and waits only a few seconds for them
    /// to leave. Before such a statement, every idle connection of the
    /// pool is closed — not just those to the database it names: the
    /// pooled connections cost a reconnect at most, and not reading names
    /// leaves no spelling of one to get wrong.
    pub fn before_statement(&self, sql: &[u8]) {
        if needs_database_alone(sql) {
            let n = self.evict_idle(|_| true);
            if n > 0 {
                tracing::debug!(
                    closed = n,
                    "closed idle upstream connections before a database-level statement"
                );
            }
        }
    }

    /// Takes back a connection whose session ended cleanly: resets it in the
    /// background and keeps it if the reset succeeds. Connections to the
    /// template databases are closed instead.
    pub fn release(self: &Arc<Self>, mut pooled: Pooled) {
        if TEMPLATE_DATABASES.contains(&pooled.conn.key.database.as_str()) {
            close(pooled);
            return;
        }
        let evictions = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .evictions;
        let pool = self.clone();
        tokio::spawn(async move {
            match reset(&mut pooled.conn).await {
                Ok(()) => {
                    let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                    if idle.evictions != evictions {
                        drop(idle);
                        close(pooled);
                        return;
                    }
                    idle.conns.push(Idle {
                        pooled,
                        since: Instant::now(),
                    });
                    drop(idle);
                    pool.returned.notify_one();
                }
                Err(e) => tracing::debug!(error = %e, "upstream connection not reusable"),
            }
        });
    }

    fn put_back(&self, pooled: Pooled) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conns
            .push(Idle {
                pooled,
                since: Instant::now(),
            });
        self.returned.notify_one();
    }

    /// Whether the service login (`postgres.upstream`'s user) is a
    /// superuser, from the `is_superuser` the server reports at login: a
    /// fresh connection, so no session's role is in effect.
    pub async fn service_login_is_superuser(&self, key: &PoolKey) -> Result<bool, UpstreamError> {
        let conn = self.settings.connect(key.clone()).await?;
        let superuser = conn
            .params
            .iter()
            .any(|(n, v)| n == "is_superuser" && v == "on");
        terminate(conn).await;
        Ok(superuser)
    }

    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conns
            .len()
    }

    /// Closes the idle connections older than the idle timeout; when the
    /// next one is due.
    fn expire(&self) -> Instant {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let timeout = self.idle_timeout;
        let (expired, kept) = std::mem::take(&mut idle.conns)
            .into_iter()
            .partition::<Vec<_>, _>(|i| now.duration_since(i.since) >= timeout);
        idle.conns = kept;
        if !expired.is_empty() {
            tracing::debug!(closed = expired.len(), "closed idle upstream connections");
        }
        for i in expired {
            close(i.pooled);
        }
        // Connections go idle in time order, so the first is due first;
        // with none, any that comes is due a full timeout from now.
        idle.conns
            .first()
            .map_or(now + timeout, |i| i.since + timeout)
    }
}

/// Closes the pool's idle connections as they expire, for as long as the
/// pool exists.
async fn expire_idle(pool: Weak<Pool>) {
    loop {
        let Some(due) = pool.upgrade().map(|p| p.expire()) else {
            return;
        };
        tokio::time::sleep_until(due).await;
    }
}

/// Closes a connection (politely, in the background), then frees its slot.
fn close(pooled: Pooled) {
    let Pooled { conn, permit } = pooled;
    tokio::spawn(async move {
        terminate(conn).await;
        drop(permit);
    });
}

/// Sends Terminate and closes the connection.
async fn terminate(mut conn: UpstreamConn) {
    let bye = async {
        conn.stream.write_all(&TERMINATE).await?;
        conn.stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
}

/// Whether `sql` holds a statement the server runs only while no other
/// backend is in the database it concerns: `DROP DATABASE`, `CREATE
/// DATABASE` (its template) and `ALTER DATABASE` (a rename, a new
/// tablespace). Errs on the side of yes: a query Airlock cannot lex counts.
pub fn needs_database_alone(sql: &[u8]) -> bool {
    // Fast path: every such statement spells the keyword DATABASE out (a
    // keyword cannot be quoted or escaped), so a query without it is none.
    let mentions = sql.windows(8).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(b"database")
            && !sql
                .get(i.wrapping_sub(1))
                .is_some_and(|b| is_ident_byte(*b))
            && !sql.get(i + 8).is_some_and(|b| is_ident_byte(*b))
    });
    if !mentions {
        return false;
    }
    let text = String::from_utf8_lossy(sql);
    match crate::sql::lexer::lex(&text, crate::sql::Dialect::Postgres) {
        Ok(statements) => statements.iter().any(|s| {
            let mut words = s.tokens.iter();
            let verb = words.next();
            let object = words.next();
            verb.is_some_and(|v| v.is_word("DROP") || v.is_word("CREATE") || v.is_word("ALTER"))
                && object.is_some_and(|o| o.is_word("DATABASE"))
        }),
        Err(_) => true,
    }
}

/// Bytes that continue an unquoted PostgreSQL identifier (any non-ASCII
/// byte can be part of one).
fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Runs `DISCARD ALL`, which drops prepared statements, portals, temporary
/// tables, LISTENs, advisory locks and session settings.
async fn reset(conn: &mut UpstreamConn) -> Result<(), UpstreamError> {
    roundtrip(conn, codec::frontend::query("DISCARD ALL")).await
}

/// A Sync round trip: proves an idle connection is still alive and idle.
async fn ping(conn: &mut UpstreamConn) -> Result<(), UpstreamError> {
    roundtrip(conn, codec::frontend::sync()).await
}

async fn roundtrip(conn: &mut UpstreamConn, request: Bytes) -> Result<(), UpstreamError> {
    query_rows(conn, request).await.map(drop)
}

impl Pool {
    /// The plan PostgreSQL gives for `sql` (`EXPLAIN`, which does not run
    /// it), one line per row, on a connection of this pool for `key`.
    ///
    /// `sql` is the agent's text: it goes in one extended-protocol Parse,
    /// which the server refuses if it holds more than one statement — so
    /// whatever Airlock misread in it, at most the one EXPLAIN runs.
    pub async fn explain(
        self: &Arc<Self>,
        key: &PoolKey,
        setup: Option<&str>,
        sql: &str,
    ) -> Result<Vec<String>, UpstreamError> {
        let request = codec::frontend::extended_query(&format!("EXPLAIN {sql}"))
            .ok_or_else(|| UpstreamError::Protocol("the statement contains a NUL byte".into()))?;
        // As the agent's own sessions run (its role, read-only setting):
        // the planner evaluates immutable functions while planning, and
        // they must not run with the service login's rights.
        let mut pooled = self.acquire_confined(key, setup).await?;
        let plan = query_rows(&mut pooled.conn, request).await;
        match &plan {
            Ok(_) => self.release(pooled),
            // An error leaves the connection idle; anything else drops it.
            Err(UpstreamError::Rejected { .. }) => self.release(pooled),
            Err(_) => {}
        }
        plan
    }
}

/// How old the planner's statistics are for the tables in `$1`.
/// Tables, views, materialized and foreign tables and partitioned tables
/// named `$1` in any schema but the system's and temporary ones.
const NAMESAKES: &str = "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relname = ANY ($1::name[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname !~ '^pg_(temp|toast)' ORDER BY 1 LIMIT 16";

const STATISTICS_AGE: &str = "SELECT format('%s.%s: %s rows live, statistics %s', schemaname, relname, n_live_tup, \
     coalesce('from ' || to_char(greatest(last_analyze, last_autoanalyze), 'YYYY-MM-DD HH24:MI TZ') \
     || ' (' || justify_interval(date_trunc('minute', now() - greatest(last_analyze, last_autoanalyze))) || ' ago)', \
     'never gathered (estimates are defaults)')) \
     FROM pg_stat_user_tables WHERE relname = ANY ($1::name[]) ORDER BY 1";

/// Size, estimated rows and dependent objects of the tables in `$1`.
const TABLE_FACTS: &str =
    "SELECT format('%s.%s: %s on disk, about %s rows, %s', n.nspname, c.relname, \
       pg_size_pretty(pg_total_relation_size(c.oid)), greatest(c.reltuples, 0)::bigint, \
       coalesce((SELECT count(*) || ' dependent object(s): ' || string_agg(DISTINCT \
           pg_describe_object(d.classid, d.objid, d.objsubid), ', ') \
         FROM pg_depend d WHERE d.refobjid = c.oid AND d.deptype = 'n' \
           AND d.classid <> 'pg_type'::regclass HAVING count(*) > 0), 'no dependent objects')) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relname = ANY ($1::name[]) AND c.relkind IN ('r', 'p', 'm', 'v', 'i') \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1";

impl Pool {
    /// How old the planner's statistics are for `tables` (names as the
    /// classifier reports them; the last part is matched), one line per
    /// table: approvers weigh a row estimate by it.
    pub async fn statistics_age(
        self: &Arc<Self>,
        key: &PoolKey,
        tables: &[String],
    ) -> Result<Vec<String>, UpstreamError> {
        self.table_lines(key, STATISTICS_AGE, tables).await
    }

    /// Facts about `tables` for a held schema change: size, estimated rows
    /// and the views, foreign keys and other objects that depend on each.
    pub async fn table_facts(
        self: &Arc<Self>,
        key: &PoolKey,
        tables: &[String],
    ) -> Result<Vec<String>, UpstreamError> {
        self.table_lines(key, TABLE_FACTS, tables).await
    }

    /// Every table, view or foreign table named `table` (the name itself,
    /// unquoted) in a schema of the database, schema-qualified and quoted:
    /// what the name may mean to a session that set its own search path.
    pub async fn namesakes(
        self: &Arc<Self>,
        key: &PoolKey,
        table: &str,
    ) -> Result<Vec<String>, UpstreamError> {
        self.table_lines(key, NAMESAKES, &[table.to_string()]).await
    }

    /// One line per table of `tables` from `sql`, which takes their names
    /// as `$1`.
    async fn table_lines(
        self: &Arc<Self>,
        key: &PoolKey,
        sql: &str,
        tables: &[String],
    ) -> Result<Vec<String>, UpstreamError> {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        let names = name_array(tables);
        let request = codec::frontend::extended_query_with(sql, &[&names])
            .ok_or_else(|| UpstreamError::Protocol("a table name contains a NUL byte".into()))?;
        let mut pooled = self.acquire(key).await?;
        let lines = query_rows(&mut pooled.conn, request).await;
        match &lines {
            // An error leaves the connection idle; anything else drops it.
            Ok(_) | Err(UpstreamError::Rejected { .. }) => self.release(pooled),
            Err(_) => {}
        }
        lines
    }
}

/// What a dry run found: the number of rows the statement changed before
/// it was rolled back, or why it was not run.
#[derive(Debug)]
pub enum DryRun {
    Rows(u64),
    /// The server's checks refused it (a trigger, a rule, a view…).
    NotEligible,
}

impl Pool {
    /// Runs the write `sql` on a connection set up as the agent's own
    /// sessions are (`setup`: its role and read-only setting), inside a
    /// transaction that is always rolled back, under `timeout` and a short
    /// lock timeout; first checks there that `tables` qualify
    /// ([`crate::sql::dry_run::PG_TABLES_QUALIFY`]). `sql` goes in one
    /// extended-protocol Parse, so the server runs at most one statement.
    /// A connection whose transaction did not end as expected is closed,
    /// never reused.
    pub async fn dry_run(
        self: &Arc<Self>,
        key: &PoolKey,
        setup: Option<&str>,
        sql: &str,
        tables: &[String],
        timeout: Duration,
    ) -> Result<DryRun, UpstreamError> {
        let begin = format!(
            "BEGIN; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = 1000; \
             SELECT set_config('search_path', 'pg_catalog, ' || current_setting('search_path'), true)",
            timeout.as_millis().max(1)
        );
        let quoted: Vec<String> = tables
            .iter()
            .map(|t| format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let names = format!("{{{}}}", quoted.join(","));
        let check =
            codec::frontend::extended_query_with(crate::sql::dry_run::PG_TABLES_QUALIFY, &[&names])
                .ok_or_else(|| {
                    UpstreamError::Protocol("a table name contains a NUL byte".into())
                })?;
        let statement = codec::frontend::extended_query(sql)
            .ok_or_else(|| UpstreamError::Protocol("the statement contains a NUL byte".into()))?;
        let mut pooled = self.acquire_confined(key, setup).await?;
        let conn = &mut pooled.conn;
        let ran = async {
            let (_, _, status) = exchange(conn, codec::frontend::query(&begin)).await?;
            if status != Some(b'T') {
                return Err(UpstreamError::Protocol(
                    "the dry run's transaction did not begin".into(),
                ));
            }
            let (rows, _, _) = exchange(conn, check).await?;
            if rows.first().map(String::as_str) != Some("0") {
                return Ok(DryRun::NotEligible);
            }
            let (_, tag, status) = exchange(conn, statement).await?;
            // Still inside the transaction: nothing the statement did is kept.
            if status != Some(b'T') {
                return Err(UpstreamError::Protocol(
                    "the dry run's transaction ended before its rollback".into(),
                ));
            }
            let rows = tag
                .as_deref()
                .and_then(|t| t.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| UpstreamError::Protocol("the dry run gave no row count".into()))?;
            Ok(DryRun::Rows(rows))
        }
        .await;
        // Always rolled back, whatever happened above; the connection goes
        // back only when the server says it is idle again.
        let rolled_back = exchange(conn, codec::frontend::query("ROLLBACK")).await;
        match (&ran, rolled_back) {
            (_, Ok((_, _, Some(b'I')))) => self.release(pooled),
            (_, other) => {
                tracing::warn!(rollback = ?other.map(|r| r.2), "closing a dry run's connection that did not end idle");
                close(pooled);
            }
        }
        ran
    }
}

/// The last part of each of `tables` as a PostgreSQL array literal, for a
/// `name[]` parameter: the names never enter a statement's text (nor the
/// server's statement log).
fn name_array(tables: &[String]) -> String {
    let quoted: Vec<String> = tables
        .iter()
        .map(|t| t.rsplit('.').next().unwrap_or(t))
        .map(|t| format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// Sends one request (a simple query, or extended-protocol messages ending
/// in Sync); the first column of every row, as text.
async fn query_rows(conn: &mut UpstreamConn, request: Bytes) -> Result<Vec<String>, UpstreamError> {
    let (rows, _, status) = exchange(conn, request).await?;
    if status != Some(b'I') {
        return Err(UpstreamError::Protocol("connection is not idle".into()));
    }
    Ok(rows)
}

/// Sends one request (a simple query, or extended-protocol messages ending
/// in Sync): the first column of every row as text, the last command tag,
/// and the transaction status the server is in after it. A server error is
/// an `Err`, read to the end (the connection is left as the status says).
async fn exchange(
    conn: &mut UpstreamConn,
    request: Bytes,
) -> Result<(Vec<String>, Option<String>, Option<u8>), UpstreamError> {
    let mut rows = Vec::new();
    let mut tag = None;
    let work = async {
        conn.stream
            .write_all(&request)
            .await
            .map_err(UpstreamError::Connect)?;
        conn.stream.flush().await.map_err(UpstreamError::Connect)?;
        let buffered = std::mem::take(&mut conn.buffered);
        let mut reader =
            MessageReader::with_buffer(&mut conn.stream, buffered, MAX_UPSTREAM_MESSAGE);
        let mut failure = None;
        let mut reported = Vec::new();
        loop {
            let msg = reader.read().await?;
            match msg.tag() {
                b'E' => failure = Some(rejected(msg.body())),
                b'S' => {
                    let mut f = codec::Fields::new(msg.body());
                    if let (Some(n), Some(v)) = (f.cstr(), f.cstr()) {
                        reported.push((
                            String::from_utf8_lossy(n).into_owned(),
                            String::from_utf8_lossy(v).into_owned(),
                        ));
                    }
                }
                b'D' => {
                    let mut f = codec::Fields::new(msg.body());
                    if let (Some(n), Some(len)) = (f.i16(), f.i32()) {
                        if n >= 1 && len >= 0 {
                            if let Some(v) = f.take(len as usize) {
                                rows.push(String::from_utf8_lossy(v).into_owned());
                            }
                        }
                    }
                }
                b'C' => {
                    let body = msg.body();
                    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                    tag = Some(String::from_utf8_lossy(&body[..end]).into_owned());
                }
                b'Z' => {
                    let status = msg.body().first().copied();
                    let (_, rest) = reader.into_parts();
                    conn.buffered = rest;
                    for (n, v) in reported {
                        conn.set_param(&n, &v);
                    }
                    if let Some(e) = failure {
                        return Err(e);
                    }
                    return Ok((rows, tag, status));
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_level_statements_are_recognised_in_every_spelling() {
        for sql in [
            "DROP DATABASE x",
            "drop database if exists \"X y\"",
            "  /* c */ DrOp\n\tDaTaBaSe x WITH (FORCE)",
            "-- comment\nCREATE DATABASE y TEMPLATE x",
            "create database y",
            "ALTER DATABASE x RENAME TO y",
            "alter database x set tablespace t",
            "SELECT 1; DROP DATABASE x",
            "DROP/**/DATABASE x",
            "DROP DATABASE U&\"d\\0061t\"",
            // Text Airlock cannot lex counts as one.
            "DROP DATABASE x; SELECT 'unterminated",
            "SELECT database FROM t WHERE 'unterminated",
        ] {
            assert!(needs_database_alone(sql.as_bytes()), "{sql}");
        }
        assert!(needs_database_alone(b"DROP DATABASE caf\xe9"));
    }

    #[test]
    fn other_statements_leave_the_pool_alone() {
        for sql in [
            "SELECT 1",
            "SELECT current_database()",
            "SELECT datname FROM pg_database",
            "SELECT 'DROP DATABASE x'",
            "SELECT 1 -- DROP DATABASE x",
            "/* DROP DATABASE x */ SELECT 1",
            "SELECT $$DROP DATABASE x$$",
            "SELECT \"database\" FROM t",
            "GRANT CONNECT ON DATABASE x TO r",
            "COMMENT ON DATABASE x IS 'y'",
            "REINDEX DATABASE x",
            "CREATE TABLE database (id int)",
            "DROP TABLE databases",
            "",
        ] {
            assert!(!needs_database_alone(sql.as_bytes()), "{sql}");
        }
    }
}
