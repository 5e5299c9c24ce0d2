//! Airlock's logins to the upstream MySQL / MariaDB server, as a client with
//! its own service account.
//!
//! [`connect`] runs the connection phase — greeting, optional TLS upgrade,
//! HandshakeResponse41, auth switches, the `caching_sha2_password`
//! exchange — and hands back an [`Upstream`] ready for its first command.
//! [`kill_query`] opens a second connection to interrupt a running
//! statement, MySQL's only way to cancel.
//!
//! Agents never see the service credentials: nothing here may put the
//! password, a token derived from it, or the server's nonce into an error
//! or a log. The password leaves Airlock in clear only inside TLS (the
//! `caching_sha2_password` full authentication); without TLS that exchange
//! is refused rather than done with RSA.

use super::auth::{self, CACHING_SHA2_PASSWORD, NATIVE_PASSWORD};
use super::handshake::{
    self, AuthSwitchRequest, ErrPacket, HandshakeError, HandshakeResponse, OkPacket,
    ServerHandshake, SslRequest, CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB,
    CLIENT_DEPRECATE_EOF, CLIENT_LOCAL_FILES, CLIENT_LONG_PASSWORD, CLIENT_SSL, ERR_HEADER,
    OK_HEADER, REQUIRED, SUPPORTED,
};
use super::packet::{text_values, Fields, PacketError, PacketStream};
use crate::proxy::Stream;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// The largest packet Airlock reads from the server: MySQL's own ceiling
/// for `max_allowed_packet` (1 GiB).
pub const MAX_UPSTREAM_PACKET: usize = 1 << 30;

/// Auth switches and extra rounds a login may take before Airlock gives up
/// on a server that keeps asking.
const MAX_AUTH_ROUNDS: usize = 4;

/// COM_QUERY and COM_QUIT command bytes.
pub const COM_QUERY: u8 = 0x03;
pub const COM_QUIT: u8 = 0x01;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the upstream server: {0}")]
    Connect(std::io::Error),
    #[error("timed out connecting to the upstream server")]
    Timeout,
    #[error("TLS with the upstream server failed: {0}")]
    Tls(String),
    /// The server answered with an ERR packet.
    #[error("upstream refused: {code} ({sqlstate}) {message}")]
    Rejected {
        code: u16,
        sqlstate: String,
        message: String,
    },
    #[error(
        "the upstream account uses the `{0}` authentication plugin; Airlock logs in with \
         mysql_native_password or caching_sha2_password only"
    )]
    UnsupportedPlugin(String),
    #[error(
        "the upstream asks for caching_sha2_password full authentication, which sends the \
         password and is done only over TLS: set the upstream TLS mode to `require` or \
         `verify-full`"
    )]
    FullAuthWithoutTls,
    #[error("upstream protocol error: {0}")]
    Protocol(String),
}

impl From<PacketError> for UpstreamError {
    fn from(e: PacketError) -> Self {
        match e {
            PacketError::Io(io) => UpstreamError::Connect(io),
            other => UpstreamError::Protocol(other.to_string()),
        }
    }
}

impl From<HandshakeError> for UpstreamError {
    fn from(e: HandshakeError) -> Self {
        UpstreamError::Protocol(e.to_string())
    }
}

impl From<ErrPacket> for UpstreamError {
    fn from(e: ErrPacket) -> Self {
        UpstreamError::Rejected {
            code: e.code,
            sqlstate: e.sqlstate().to_string(),
            message: e.message,
        }
    }
}

/// How to reach and log in to the upstream.
#[derive(Clone)]
pub struct UpstreamSettings {
    /// `host:port`; the host also names the server for TLS verification.
    pub address: String,
    pub user: String,
    pub password: String,
    pub database: Option<String>,
    /// From [`crate::proxy::tls::upstream_config`]; `None` is plaintext.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
    /// What the session may use — normally what the agent asked for. It is
    /// masked to [`SUPPORTED`] and to what the server offers, and always
    /// gets [`REQUIRED`]; `LOCAL_FILES` never passes.
    pub capabilities: u32,
    /// The collation id to log in with (the agent's choice, so that the
    /// server encodes results the way the agent expects).
    pub charset: u8,
    /// MariaDB extended capabilities to ask for (what the agent took); only
    /// those of [`handshake::MARIADB_SUPPORTED`] a MariaDB server offers
    /// are used.
    pub mariadb_capabilities: u32,
    /// Connection attributes sent after Airlock's own `_client_name` and
    /// `_client_version`: the session's identity and id, so that the
    /// server's `performance_schema.session_connect_attrs` names the agent
    /// (see [`session_attributes`]).
    pub attributes: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The connection attributes that name an agent's session on the server:
/// `program_name` = `airlock:<identity>:<session>` (what MySQL tools show
/// as the program), plus `airlock_identity` and `airlock_session` on their
/// own. They are set at login, so the agent cannot change them afterwards.
pub fn session_attributes(identity: &str, session: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (
            b"program_name".to_vec(),
            format!("airlock:{identity}:{session}").into_bytes(),
        ),
        (b"airlock_identity".to_vec(), identity.as_bytes().to_vec()),
        (b"airlock_session".to_vec(), session.as_bytes().to_vec()),
    ]
}

impl UpstreamSettings {
    pub fn new(address: impl Into<String>, user: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            user: user.into(),
            password: String::new(),
            database: None,
            tls: None,
            connect_timeout: Duration::from_secs(10),
            capabilities: handshake::DEFAULT_CLIENT,
            charset: handshake::UTF8MB4_GENERAL_CI,
            mariadb_capabilities: 0,
            attributes: Vec::new(),
        }
    }

    /// The host part of `address`, brackets of an IPv6 literal removed.
    fn host(&self) -> &str {
        let host = match self.address.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => &self.address,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// A logged-in upstream connection, between commands.
pub struct Upstream {
    /// The connection's packets; call `reset()` before each command.
    pub packets: PacketStream<Stream>,
    /// The server's thread id for this connection (what `KILL` takes).
    pub connection_id: u32,
    /// As the server reports it (MariaDB prefixes `5.5.5-`).
    pub server_version: String,
    pub server_capabilities: u32,
    /// MariaDB's extended capabilities as offered.
    pub server_mariadb_capabilities: u32,
    /// The MariaDB extended capabilities this connection uses.
    pub mariadb_capabilities: u32,
    /// What this connection uses: requested ∩ offered.
    pub capabilities: u32,
    /// The plugin that finally authenticated.
    pub auth_plugin: String,
    /// Server status flags from the final OK.
    pub status: u16,
}

impl Upstream {
    pub fn is_tls(&self) -> bool {
        self.packets.get_ref().is_tls()
    }

    /// Whether the server is MariaDB (it clears bit 0 of its capabilities).
    pub fn is_mariadb(&self) -> bool {
        self.server_capabilities & CLIENT_LONG_PASSWORD == 0
    }
}

/// Connects and logs in, returning a connection ready for a command.
pub async fn connect(settings: &UpstreamSettings) -> Result<Upstream, UpstreamError> {
    tokio::time::timeout(settings.connect_timeout * 3, login(settings))
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

async fn login(settings: &UpstreamSettings) -> Result<Upstream, UpstreamError> {
    let tcp = tokio::time::timeout(
        settings.connect_timeout,
        TcpStream::connect(settings.address.as_str()),
    )
    .await
    .map_err(|_| UpstreamError::Timeout)?
    .map_err(UpstreamError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let mut packets = PacketStream::new(Stream::Plain(tcp), MAX_UPSTREAM_PACKET);

    let greeting = packets
        .read()
        .await?
        .ok_or_else(|| UpstreamError::Protocol("the server closed before its greeting".into()))?;
    // A server that refuses at once (too many connections, host not
    // allowed) sends ERR instead of a greeting.
    if greeting.payload.first() == Some(&ERR_HEADER) {
        return Err(ErrPacket::parse(&greeting.payload)?.into());
    }
    let hs = ServerHandshake::parse(&greeting.payload)?;
    if hs.capabilities & REQUIRED != REQUIRED {
        return Err(UpstreamError::Protocol(format!(
            "the server lacks capabilities Airlock needs (offers {:#010x})",
            hs.capabilities
        )));
    }

    let mut caps = ((settings.capabilities & SUPPORTED) | REQUIRED) & hs.capabilities;
    caps &= !(CLIENT_LOCAL_FILES | CLIENT_CONNECT_WITH_DB | CLIENT_SSL);
    if settings.database.is_some() {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    if settings.tls.is_some() {
        caps |= CLIENT_SSL;
    }
    // Towards MariaDB, asked-for extended capabilities go where the server
    // reads them only when bit 0 is clear; otherwise Airlock is a MySQL
    // client (bit 0 set). See the handshake module.
    let mariadb = if hs.capabilities & CLIENT_LONG_PASSWORD == 0 {
        settings.mariadb_capabilities & hs.mariadb_capabilities & handshake::MARIADB_SUPPORTED
    } else {
        0
    };
    if mariadb != 0 {
        caps &= !CLIENT_LONG_PASSWORD;
    } else {
        caps |= CLIENT_LONG_PASSWORD;
    }

    let mut response = HandshakeResponse {
        capabilities: caps,
        max_packet: MAX_UPSTREAM_PACKET as u32,
        charset: settings.charset,
        mariadb_capabilities: mariadb,
        user: settings.user.as_bytes().to_vec(),
        auth_response: Vec::new(),
        database: settings.database.as_ref().map(|d| d.as_bytes().to_vec()),
        auth_plugin: None,
        attributes: Vec::new(),
    };
    if caps & CLIENT_CONNECT_ATTRS != 0 {
        response.attributes = vec![
            (b"_client_name".to_vec(), b"airlock".to_vec()),
            (
                b"_client_version".to_vec(),
                env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
            ),
        ];
        response
            .attributes
            .extend(settings.attributes.iter().cloned());
    }

    if let Some(tls) = &settings.tls {
        if hs.capabilities & CLIENT_SSL == 0 {
            return Err(UpstreamError::Tls(
                "the server does not accept TLS connections (is `have_ssl` DISABLED?)".into(),
            ));
        }
        packets = start_tls(packets, response.ssl_request(), settings, tls).await?;
    }

    // Answer with the server's default plugin when Airlock knows it, else
    // with native: a server whose account uses another plugin says so with
    // an auth switch.
    let mut plugin = match std::str::from_utf8(&hs.auth_plugin) {
        Ok(CACHING_SHA2_PASSWORD) => CACHING_SHA2_PASSWORD,
        _ => NATIVE_PASSWORD,
    };
    response.auth_response = token(plugin, settings.password.as_bytes(), &hs.scramble);
    response.auth_plugin = Some(plugin.as_bytes().to_vec());
    packets.write_with(|buf| response.write(buf));
    packets.flush().await?;

    let tls = packets.get_ref().is_tls();
    for _ in 0..MAX_AUTH_ROUNDS {
        let reply = packets
            .read()
            .await?
            .ok_or_else(|| UpstreamError::Protocol("the server closed during login".into()))?;
        let payload = &reply.payload[..];
        match payload.first() {
            Some(&OK_HEADER) => {
                let ok = OkPacket::parse(payload, caps)?;
                packets.reset();
                return Ok(Upstream {
                    packets,
                    connection_id: hs.connection_id,
                    server_version: String::from_utf8_lossy(&hs.server_version).into_owned(),
                    server_capabilities: hs.capabilities,
                    server_mariadb_capabilities: hs.mariadb_capabilities,
                    mariadb_capabilities: mariadb,
                    capabilities: caps,
                    auth_plugin: plugin.to_string(),
                    status: ok.status,
                });
            }
            Some(&ERR_HEADER) => return Err(ErrPacket::parse(payload)?.into()),
            Some(&handshake::AUTH_SWITCH_HEADER) => {
                let switch = AuthSwitchRequest::parse(payload)?;
                plugin = match std::str::from_utf8(&switch.plugin) {
                    Ok(NATIVE_PASSWORD) => NATIVE_PASSWORD,
                    Ok(CACHING_SHA2_PASSWORD) => CACHING_SHA2_PASSWORD,
                    _ => {
                        return Err(UpstreamError::UnsupportedPlugin(
                            String::from_utf8_lossy(&switch.plugin).into_owned(),
                        ))
                    }
                };
                let answer = token(plugin, settings.password.as_bytes(), switch.scramble());
                packets.write_packet(&answer);
                packets.flush().await?;
            }
            Some(&auth::AUTH_MORE_DATA) if plugin == CACHING_SHA2_PASSWORD => {
                match handshake::parse_auth_more_data(payload)? {
                    [auth::FAST_AUTH_SUCCESS] => {}
                    [auth::PERFORM_FULL_AUTHENTICATION] if tls => {
                        let mut clear = settings.password.as_bytes().to_vec();
                        clear.push(0);
                        packets.write_packet(&clear);
                        packets.flush().await?;
                    }
                    [auth::PERFORM_FULL_AUTHENTICATION] => {
                        return Err(UpstreamError::FullAuthWithoutTls)
                    }
                    _ => {
                        return Err(UpstreamError::Protocol(
                            "unexpected caching_sha2_password data from the server".into(),
                        ))
                    }
                }
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected packet {:?} during login",
                    other.map(|b| format!("0x{b:02X}"))
                )))
            }
        }
    }
    Err(UpstreamError::Protocol(
        "the server kept asking for authentication".into(),
    ))
}

/// The first token for `plugin`.
fn token(plugin: &str, password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if plugin == CACHING_SHA2_PASSWORD {
        auth::caching_sha2_token(password, scramble)
    } else {
        auth::native_token(password, scramble)
    }
}

/// Sends SSLRequest and runs the TLS handshake; the login continues inside
/// TLS with the next sequence id.
async fn start_tls(
    mut packets: PacketStream<Stream>,
    request: SslRequest,
    settings: &UpstreamSettings,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<PacketStream<Stream>, UpstreamError> {
    packets.write_with(|buf| request.write(buf));
    packets.flush().await?;
    let seq = packets.seq();
    let (stream, leftover) = packets.into_parts();
    // The server says nothing between SSLRequest and the TLS handshake;
    // bytes here would be plaintext injected ahead of it.
    if !leftover.is_empty() {
        return Err(UpstreamError::Tls(
            "the server sent data before the TLS handshake".into(),
        ));
    }
    let Stream::Plain(tcp) = stream else {
        return Err(UpstreamError::Tls(
            "the connection is already upgraded".into(),
        ));
    };
    let name = ServerName::try_from(settings.host().to_string())
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let stream = tokio::time::timeout(settings.connect_timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| UpstreamError::Timeout)?
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    let mut packets = PacketStream::new(Stream::ClientTls(Box::new(stream)), MAX_UPSTREAM_PACKET);
    packets.set_seq(seq);
    Ok(packets)
}

/// Runs a statement that answers with OK or ERR (no result set).
pub async fn execute(upstream: &mut Upstream, sql: &str) -> Result<OkPacket, UpstreamError> {
    let packets = &mut upstream.packets;
    packets.reset();
    packets.write_with(|buf| {
        buf.extend_from_slice(&[COM_QUERY]);
        buf.extend_from_slice(sql.as_bytes());
    });
    packets.flush().await?;
    let reply = packets
        .read()
        .await?
        .ok_or_else(|| UpstreamError::Protocol("the server closed the connection".into()))?;
    match reply.payload.first() {
        Some(&OK_HEADER) => Ok(OkPacket::parse(&reply.payload, upstream.capabilities)?),
        Some(&ERR_HEADER) => Err(ErrPacket::parse(&reply.payload)?.into()),
        _ => Err(UpstreamError::Protocol(
            "expected OK or ERR, got a result set".into(),
        )),
    }
}

/// Interrupts the statement running on the server's connection `id`
/// (`KILL QUERY`), from a connection of its own; the session stays open.
pub async fn kill_query(settings: &UpstreamSettings, id: u32) -> Result<(), UpstreamError> {
    let mut control = settings.clone();
    control.database = None;
    control.capabilities = REQUIRED;
    let mut upstream = connect(&control).await?;
    let killed = tokio::time::timeout(
        settings.connect_timeout,
        execute(&mut upstream, &format!("KILL QUERY {id}")),
    )
    .await
    .map_err(|_| UpstreamError::Timeout)?;
    upstream.packets.reset();
    upstream.packets.write_packet(&[COM_QUIT]);
    let _ = upstream.packets.flush().await;
    killed.map(drop)
}

/// What the server plans for `sql` (`EXPLAIN FORMAT=JSON`), for the
/// approvers of a held statement: asked on a connection of its own in
/// `database`, inside a transaction that is rolled back — read-only for a
/// statement that only reads, so that nothing the optimiser evaluates can
/// write. Past `limit` the server is told to stop (`KILL QUERY`).
pub async fn explain(
    settings: &UpstreamSettings,
    database: Option<&str>,
    sql: &str,
    read_only: bool,
    limit: Duration,
) -> Result<String, UpstreamError> {
    // No CLIENT_MULTI_STATEMENTS (REQUIRED lacks it): the server refuses a
    // second statement in the text. utf8mb4, set again after login in case
    // the server ignores the handshake's character set: the server reads
    // the text as the classifier did.
    let mut own = settings.clone();
    own.database = database.filter(|d| !d.is_empty()).map(str::to_string);
    own.capabilities = REQUIRED;
    own.charset = handshake::UTF8MB4_GENERAL_CI;
    let mut upstream = tokio::time::timeout(limit, connect(&own))
        .await
        .map_err(|_| UpstreamError::Timeout)??;
    let begin = if read_only {
        "START TRANSACTION READ ONLY"
    } else {
        "START TRANSACTION"
    };
    let planned = tokio::time::timeout(limit, async {
        execute(&mut upstream, "SET NAMES utf8mb4").await?;
        execute(&mut upstream, begin).await?;
        let rows = text_rows(&mut upstream, &format!("EXPLAIN FORMAT=JSON {sql}")).await?;
        execute(&mut upstream, "ROLLBACK").await?;
        Ok::<_, UpstreamError>(rows)
    })
    .await;
    let Ok(rows) = planned else {
        let id = upstream.connection_id;
        tokio::spawn(async move {
            // Closing alone would not stop a statement already running.
            let _ = kill_query(&own, id).await;
            drop(upstream);
        });
        return Err(UpstreamError::Timeout);
    };
    upstream.packets.reset();
    upstream.packets.write_packet(&[COM_QUIT]);
    let _ = upstream.packets.flush().await;
    Ok(rows?
        .into_iter()
        .flatten()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Whether the connection's login holds global superuser rights: a
/// `SHOW GRANTS` line granting `ALL PRIVILEGES` or `SUPER` on `*.*`.
pub async fn login_is_superuser(upstream: &mut Upstream) -> Result<bool, UpstreamError> {
    let rows = text_rows(upstream, "SHOW GRANTS").await?;
    Ok(rows
        .iter()
        .flatten()
        .flatten()
        .any(|line| grants_superuser(line)))
}

fn grants_superuser(line: &str) -> bool {
    let upper = line.to_ascii_uppercase();
    let Some((privileges, rest)) = upper.split_once(" ON ") else {
        return false;
    };
    let global = rest.trim_start().starts_with("*.*");
    global
        && (privileges.contains("ALL PRIVILEGES")
            || privileges.split([',', ' ']).any(|p| p == "SUPER"))
}

/// Runs a query and returns its rows' values (text protocol).
async fn text_rows(
    upstream: &mut Upstream,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, UpstreamError> {
    let capabilities = upstream.capabilities;
    let packets = &mut upstream.packets;
    packets.reset();
    packets.write_with(|buf| {
        buf.extend_from_slice(&[COM_QUERY]);
        buf.extend_from_slice(sql.as_bytes());
    });
    packets.flush().await?;
    let mut next = async || {
        packets
            .read()
            .await?
            .ok_or_else(|| UpstreamError::Protocol("the server closed the connection".into()))
    };
    let first = next().await?;
    let columns = match first.payload.first() {
        Some(&ERR_HEADER) => return Err(ErrPacket::parse(&first.payload)?.into()),
        Some(&OK_HEADER) => return Ok(Vec::new()),
        _ => Fields::new(&first.payload)
            .lenenc_int()
            .map_err(|_| UpstreamError::Protocol("a malformed column count".into()))?,
    };
    for _ in 0..columns {
        next().await?;
    }
    if capabilities & CLIENT_DEPRECATE_EOF == 0 {
        next().await?;
    }
    let mut rows = Vec::new();
    loop {
        let row = next().await?;
        if handshake::ends_result_set(&row.payload, capabilities) {
            return Ok(rows);
        }
        if row.payload.first() == Some(&ERR_HEADER) {
            return Err(ErrPacket::parse(&row.payload)?.into());
        }
        rows.push(text_values(&row.payload));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superuser_grants_are_recognised() {
        assert!(grants_superuser(
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"
        ));
        assert!(grants_superuser("GRANT SELECT, SUPER ON *.* TO `a`@`%`"));
        assert!(!grants_superuser("GRANT USAGE ON *.* TO `airlock`@`%`"));
        assert!(!grants_superuser(
            "GRANT ALL PRIVILEGES ON `app`.* TO `airlock`@`%`"
        ));
        assert!(!grants_superuser("GRANT `agent_ro` TO `airlock`@`%`"));
    }

    #[test]
    fn host_is_taken_from_the_address() {
        let host = |a: &str| UpstreamSettings::new(a, "u").host().to_string();
        assert_eq!(host("db.example.com:3306"), "db.example.com");
        assert_eq!(host("127.0.0.1:3306"), "127.0.0.1");
        assert_eq!(host("[::1]:3306"), "::1");
        assert_eq!(host("localhost"), "localhost");
    }

    #[test]
    fn errors_never_carry_the_password() {
        let e = UpstreamError::from(ErrPacket::new(1045, "28000", "Access denied for user"));
        assert_eq!(
            e.to_string(),
            "upstream refused: 1045 (28000) Access denied for user"
        );
        assert!(UpstreamError::FullAuthWithoutTls
            .to_string()
            .contains("TLS"));
    }

    /// One step of a scripted server.
    enum Step {
        /// Read a packet from the client and keep it.
        Read,
        /// Send a payload.
        Send(Vec<u8>),
    }

    fn greeting(plugin: &str, scramble: &auth::Scramble) -> Vec<u8> {
        let mut buf = Vec::new();
        ServerHandshake {
            server_version: b"8.0.36".to_vec(),
            connection_id: 9,
            scramble: scramble.as_bytes().to_vec(),
            capabilities: SUPPORTED | CLIENT_LOCAL_FILES,
            mariadb_capabilities: 0,
            charset: 45,
            status: 2,
            auth_plugin: plugin.as_bytes().to_vec(),
        }
        .write(&mut buf);
        buf
    }

    fn ok() -> Vec<u8> {
        let mut buf = Vec::new();
        OkPacket::default().write(&mut buf, SUPPORTED, false);
        buf
    }

    /// A server on an ephemeral port that plays `script` to one client and
    /// returns what it read.
    async fn scripted(script: Vec<Step>) -> (UpstreamSettings, JoinHandle) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut p = PacketStream::new(tcp, 1 << 20);
            let mut read = Vec::new();
            for step in script {
                match step {
                    Step::Read => read.push(p.read().await?.expect("a packet").payload.to_vec()),
                    Step::Send(payload) => {
                        p.write_packet(&payload);
                        p.flush().await?;
                    }
                }
            }
            Ok(read)
        });
        let mut settings = UpstreamSettings::new(address, "svc");
        settings.password = "pw".into();
        settings.connect_timeout = Duration::from_secs(5);
        (settings, server)
    }

    type JoinHandle = tokio::task::JoinHandle<Result<Vec<Vec<u8>>, PacketError>>;

    #[tokio::test]
    async fn caching_sha2_fast_path() {
        let nonce = auth::Scramble::generate();
        let (settings, server) = scripted(vec![
            Step::Send(greeting(CACHING_SHA2_PASSWORD, &nonce)),
            Step::Read,
            Step::Send(vec![auth::AUTH_MORE_DATA, auth::FAST_AUTH_SUCCESS]),
            Step::Send(ok()),
        ])
        .await;
        let up = connect(&settings).await.expect("login");
        assert_eq!(up.auth_plugin, CACHING_SHA2_PASSWORD);
        assert_eq!(up.connection_id, 9);
        assert_eq!(up.packets.seq(), 0, "ready for a command");
        let read = server.await.unwrap().unwrap();
        let login = HandshakeResponse::parse(&read[0]).unwrap();
        // What Airlock sends is what a server's fast path accepts.
        assert!(auth::Sha2Hash::from_password(b"pw").verify(&nonce, &login.auth_response));
        assert_eq!(login.capabilities & CLIENT_LOCAL_FILES, 0);
    }

    #[tokio::test]
    async fn caching_sha2_full_authentication_needs_tls() {
        let nonce = auth::Scramble::generate();
        let (settings, server) = scripted(vec![
            Step::Send(greeting(CACHING_SHA2_PASSWORD, &nonce)),
            Step::Read,
            Step::Send(vec![
                auth::AUTH_MORE_DATA,
                auth::PERFORM_FULL_AUTHENTICATION,
            ]),
        ])
        .await;
        match connect(&settings).await {
            Err(UpstreamError::FullAuthWithoutTls) => {}
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("logged in"),
        }
        drop(server.await);
    }

    #[tokio::test]
    async fn follows_a_switch_to_native_with_the_new_nonce() {
        let first = auth::Scramble::generate();
        let second = auth::Scramble::generate();
        let mut switch = Vec::new();
        AuthSwitchRequest {
            plugin: NATIVE_PASSWORD.as_bytes().to_vec(),
            data: [&second.as_bytes()[..], &[0]].concat(),
        }
        .write(&mut switch);
        let (settings, server) = scripted(vec![
            Step::Send(greeting(CACHING_SHA2_PASSWORD, &first)),
            Step::Read,
            Step::Send(switch),
            Step::Read,
            Step::Send(ok()),
        ])
        .await;
        let up = connect(&settings).await.expect("login");
        assert_eq!(up.auth_plugin, NATIVE_PASSWORD);
        let read = server.await.unwrap().unwrap();
        assert!(auth::NativeHash::from_password(b"pw").verify(&second, &read[1]));
    }

    #[tokio::test]
    async fn an_err_instead_of_a_greeting_is_surfaced() {
        let (settings, server) = scripted(vec![Step::Send(
            b"\xFF\x10\x04Too many connections".to_vec(),
        )])
        .await;
        match connect(&settings).await {
            Err(UpstreamError::Rejected { code, message, .. }) => {
                assert_eq!((code, message.as_str()), (1040, "Too many connections"))
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("logged in"),
        }
        drop(server.await);
    }

    #[tokio::test]
    async fn refuses_an_unknown_plugin_switch() {
        let nonce = auth::Scramble::generate();
        let mut switch = Vec::new();
        AuthSwitchRequest {
            plugin: b"client_ed25519".to_vec(),
            data: b"x".to_vec(),
        }
        .write(&mut switch);
        let (mut settings, server) = scripted(vec![
            Step::Send(greeting(NATIVE_PASSWORD, &nonce)),
            Step::Read,
            Step::Send(switch),
        ])
        .await;
        settings.capabilities = SUPPORTED | CLIENT_LOCAL_FILES;
        match connect(&settings).await {
            Err(UpstreamError::UnsupportedPlugin(p)) => assert_eq!(p, "client_ed25519"),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("logged in"),
        }
        let read = server.await.unwrap().unwrap();
        let parsed = HandshakeResponse::parse(&read[0]).unwrap();
        assert_eq!(parsed.user, b"svc");
        assert_eq!(parsed.capabilities & CLIENT_LOCAL_FILES, 0);
        assert_eq!(parsed.capabilities & REQUIRED, REQUIRED);
        assert_eq!(
            parsed.auth_plugin.as_deref(),
            Some(NATIVE_PASSWORD.as_bytes())
        );
        assert!(auth::NativeHash::from_password(b"pw").verify(&nonce, &parsed.auth_response));
    }
}
