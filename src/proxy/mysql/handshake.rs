//! The connection-phase packets of the MySQL protocol — the server's
//! greeting (HandshakeV10), the client's SSLRequest and HandshakeResponse41,
//! the authentication exchanges (AuthSwitchRequest, AuthMoreData) — and the
//! generic OK, EOF and ERR packets, built and parsed for both legs.
//!
//! This module owns payload layouts only: framing and sequence ids are
//! [`super::packet`]'s, and deciding who may log in is the frontend's. It
//! must never panic on what a client or server sends: every parser returns
//! an error for truncated or garbage input.
//!
//! # Why not `mysql_common` for these packets
//!
//! The design names `mysql_common` for protocol types. For these few
//! packets it does not fit a gateway, and they are small enough to write:
//! its HandshakeV10 parser computes the second nonce length in `i8`
//! arithmetic that overflows (a panic under overflow checks) for an
//! announced length of 0x80 or more; its HandshakeResponse constructor
//! picks the character set from the server version, so the agent's choice
//! could not be forwarded upstream; connection attributes go through a
//! hash map, losing order and duplicates that the audit log should see as
//! sent. As a dependency it is heavy for eight small packets: with its
//! default features off neither 0.37 nor 0.38 builds (`flate2` needs a
//! compression backend that only a direct `flate2` dependency could pick),
//! with them on it links zlib, and 0.38 brings second copies of
//! `sha1`/`sha2`/`getrandom`.
//!
//! # MariaDB extended capabilities
//!
//! MariaDB servers clear capability bit 0 (`CLIENT_LONG_PASSWORD`, which
//! MariaDB calls `CLIENT_MYSQL`) and put 32 more capability bits in the
//! last 4 bytes of the greeting's reserved filler; a client that also
//! clears bit 0 answers with its own in the same place of its response.
//! Towards agents Airlock presents itself as the upstream does: a MariaDB
//! upstream's greeting is repeated with bit 0 clear and the extended
//! capabilities of [`MARIADB_SUPPORTED`] it offers (extended column
//! metadata only); the upstream leg then asks for exactly what the agent
//! took. Bulk execution, progress reports and cached metadata are never
//! offered, so they never appear in a session and the relay need not
//! understand them.

use super::packet::{put_lenenc_bytes, put_lenenc_int, Fields, PacketError};
use bytes::BufMut;

// Capability flags (the lower 32 bits; both directions).
pub const CLIENT_LONG_PASSWORD: u32 = 1;
pub const CLIENT_FOUND_ROWS: u32 = 1 << 1;
pub const CLIENT_LONG_FLAG: u32 = 1 << 2;
pub const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
pub const CLIENT_NO_SCHEMA: u32 = 1 << 4;
pub const CLIENT_COMPRESS: u32 = 1 << 5;
pub const CLIENT_ODBC: u32 = 1 << 6;
pub const CLIENT_LOCAL_FILES: u32 = 1 << 7;
pub const CLIENT_IGNORE_SPACE: u32 = 1 << 8;
pub const CLIENT_PROTOCOL_41: u32 = 1 << 9;
pub const CLIENT_INTERACTIVE: u32 = 1 << 10;
pub const CLIENT_SSL: u32 = 1 << 11;
pub const CLIENT_IGNORE_SIGPIPE: u32 = 1 << 12;
pub const CLIENT_TRANSACTIONS: u32 = 1 << 13;
pub const CLIENT_RESERVED: u32 = 1 << 14;
pub const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
pub const CLIENT_MULTI_STATEMENTS: u32 = 1 << 16;
pub const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
pub const CLIENT_PS_MULTI_RESULTS: u32 = 1 << 18;
pub const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
pub const CLIENT_CONNECT_ATTRS: u32 = 1 << 20;
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
pub const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS: u32 = 1 << 22;
pub const CLIENT_SESSION_TRACK: u32 = 1 << 23;
pub const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;
pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u32 = 1 << 25;
pub const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u32 = 1 << 26;
pub const CLIENT_QUERY_ATTRIBUTES: u32 = 1 << 27;
pub const CLIENT_MULTI_FACTOR_AUTHENTICATION: u32 = 1 << 28;
pub const CLIENT_SSL_VERIFY_SERVER_CERT: u32 = 1 << 30;
pub const CLIENT_REMEMBER_OPTIONS: u32 = 1 << 31;

// MariaDB's extended capabilities (the 4 bytes after the filler).
pub const MARIADB_CLIENT_PROGRESS: u32 = 1;
pub const MARIADB_CLIENT_COM_MULTI: u32 = 1 << 1;
pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: u32 = 1 << 2;
pub const MARIADB_CLIENT_EXTENDED_METADATA: u32 = 1 << 3;
pub const MARIADB_CLIENT_CACHE_METADATA: u32 = 1 << 4;
pub const MARIADB_CLIENT_BULK_UNIT_RESULTS: u32 = 1 << 5;

/// MariaDB extended capabilities a session may use: extended column
/// metadata only (drivers learn from it that a LONGTEXT holds JSON). The
/// others change what commands and results look like — bulk execution,
/// progress packets inside results, result sets without column
/// definitions — and the relay does not speak them.
pub const MARIADB_SUPPORTED: u32 = MARIADB_CLIENT_EXTENDED_METADATA;

/// Capabilities every Airlock connection uses: 4.1 packets and pluggable
/// authentication with length-encoded tokens.
pub const REQUIRED: u32 = CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;

/// Capabilities Airlock lets a session use. Left out on purpose:
/// `LOCAL_FILES` (the server could ask the client for any file),
/// compression (the relay reads packets, not a compressed stream),
/// `QUERY_ATTRIBUTES` (COM_QUERY would carry values ahead of the SQL text),
/// optional result metadata and multi-factor authentication (the relay and
/// the frontend do not speak them). `SESSION_TRACK` is kept: drivers follow
/// the session's character set and schema through it (Connector/C decodes
/// text by the tracked `character_set_client`), and clients that assume it
/// read OK packets in its layout. With it, every OK packet can carry the
/// new value of any session variable (`session_track_system_variables =
/// '*'` and `SET @@session.x = (SELECT email …)`): the relay masks those
/// values as it masks the server's messages. `SSL` and `CONNECT_WITH_DB` are set per
/// connection. Multi-statements are allowed because the gate classifies
/// every statement of a COM_QUERY, not just the first.
pub const SUPPORTED: u32 = REQUIRED
    | CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_NO_SCHEMA
    | CLIENT_ODBC
    | CLIENT_IGNORE_SPACE
    | CLIENT_INTERACTIVE
    | CLIENT_IGNORE_SIGPIPE
    | CLIENT_TRANSACTIONS
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_CONNECT_ATTRS
    | CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS
    | CLIENT_SESSION_TRACK
    | CLIENT_DEPRECATE_EOF;

/// What Airlock asks for when it speaks for itself rather than for an
/// agent — libmysqlclient's defaults. Left out: flags that change what
/// statements mean (`FOUND_ROWS` changes affected-row counts,
/// `IGNORE_SPACE` the parsing of function names, `NO_SCHEMA` refuses
/// `db.table` names — MariaDB then answers "No database selected" —,
/// `INTERACTIVE` the idle timeout); they are passed on only when an agent
/// asks for them.
pub const DEFAULT_CLIENT: u32 = REQUIRED
    | CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_TRANSACTIONS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_CONNECT_ATTRS
    | CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS
    | CLIENT_SESSION_TRACK
    | CLIENT_DEPRECATE_EOF;

// Server status flags used here.
pub const SERVER_STATUS_IN_TRANS: u16 = 1;
pub const SERVER_STATUS_AUTOCOMMIT: u16 = 1 << 1;
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 1 << 3;
pub const SERVER_SESSION_STATE_CHANGED: u16 = 1 << 14;

/// First payload bytes that tell packets apart.
pub const OK_HEADER: u8 = 0x00;
pub const EOF_HEADER: u8 = 0xFE;
pub const ERR_HEADER: u8 = 0xFF;
pub const AUTH_SWITCH_HEADER: u8 = 0xFE;

/// The collation a fresh connection announces: utf8mb4_general_ci, known to
/// every server since MySQL 5.5 and MariaDB 5.5.
pub const UTF8MB4_GENERAL_CI: u8 = 45;

/// Length of SSLRequest and of the fixed part of HandshakeResponse41.
const FIXED_RESPONSE_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        source: PacketError,
    },
    #[error("unsupported protocol version {0} in the server greeting")]
    ProtocolVersion(u8),
    #[error("clients older than MySQL 4.1 are not supported")]
    OldClient,
    #[error("expected {expected}, got a packet starting with 0x{got:02X}")]
    Unexpected { expected: &'static str, got: u8 },
    #[error("empty packet where {0} was expected")]
    Empty(&'static str),
}

fn malformed(what: &'static str) -> impl Fn(PacketError) -> HandshakeError {
    move |source| HandshakeError::Malformed { what, source }
}

fn expect_header<'a>(
    payload: &'a [u8],
    header: u8,
    expected: &'static str,
) -> Result<Fields<'a>, HandshakeError> {
    match payload.split_first() {
        Some((&h, rest)) if h == header => Ok(Fields::new(rest)),
        Some((&got, _)) => Err(HandshakeError::Unexpected { expected, got }),
        None => Err(HandshakeError::Empty(expected)),
    }
}

/// The server's greeting (protocol version 10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHandshake {
    pub server_version: Vec<u8>,
    /// The server's thread id for this connection (what `KILL` takes).
    pub connection_id: u32,
    /// The nonce, both parts joined, without the trailing NUL.
    pub scramble: Vec<u8>,
    pub capabilities: u32,
    /// Meaningful only when `capabilities` lacks `CLIENT_LONG_PASSWORD`.
    pub mariadb_capabilities: u32,
    pub charset: u8,
    pub status: u16,
    pub auth_plugin: Vec<u8>,
}

impl ServerHandshake {
    pub fn parse(payload: &[u8]) -> Result<Self, HandshakeError> {
        let m = malformed("server greeting");
        let mut f = Fields::new(payload);
        let version = f.u8().map_err(&m)?;
        if version != 10 {
            return Err(HandshakeError::ProtocolVersion(version));
        }
        let server_version = f.nul_bytes().map_err(&m)?.to_vec();
        let connection_id = f.u32().map_err(&m)?;
        let mut scramble = f.bytes(8).map_err(&m)?.to_vec();
        f.u8().map_err(&m)?;
        let mut capabilities = u32::from(f.u16().map_err(&m)?);
        let mut hs = Self {
            server_version,
            connection_id,
            scramble: Vec::new(),
            capabilities,
            mariadb_capabilities: 0,
            charset: 0,
            status: 0,
            auth_plugin: Vec::new(),
        };
        if f.is_empty() {
            // A pre-4.1 greeting ends here.
            hs.scramble = scramble;
            return Ok(hs);
        }
        hs.charset = f.u8().map_err(&m)?;
        hs.status = f.u16().map_err(&m)?;
        capabilities |= u32::from(f.u16().map_err(&m)?) << 16;
        let auth_data_len = usize::from(f.u8().map_err(&m)?);
        f.bytes(6).map_err(&m)?;
        hs.mariadb_capabilities = f.u32().map_err(&m)?;
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            // The second part is at least 13 bytes (12 + NUL) whatever the
            // announced total says.
            let len = auth_data_len.saturating_sub(8).max(13);
            let part2 = f.bytes(len).map_err(&m)?;
            let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
            scramble.extend_from_slice(part2);
        }
        if capabilities & CLIENT_PLUGIN_AUTH != 0 {
            hs.auth_plugin = f.nul_bytes_or_rest().to_vec();
        }
        hs.capabilities = capabilities;
        hs.scramble = scramble;
        Ok(hs)
    }

    /// Writes the greeting. The nonce must be 20 bytes (it is split 8 + 12);
    /// `SECURE_CONNECTION` and `PLUGIN_AUTH` are assumed.
    pub fn write(&self, buf: &mut impl BufMut) {
        let (part1, part2) = self.scramble.split_at(self.scramble.len().min(8));
        buf.put_u8(10);
        buf.put_slice(&self.server_version);
        buf.put_u8(0);
        buf.put_u32_le(self.connection_id);
        buf.put_slice(part1);
        buf.put_bytes(0, 8 - part1.len());
        buf.put_u8(0);
        buf.put_u16_le(self.capabilities as u16);
        buf.put_u8(self.charset);
        buf.put_u16_le(self.status);
        buf.put_u16_le((self.capabilities >> 16) as u16);
        buf.put_u8((self.scramble.len() + 1).min(255) as u8);
        buf.put_bytes(0, 6);
        let mariadb = if self.capabilities & CLIENT_LONG_PASSWORD == 0 {
            self.mariadb_capabilities
        } else {
            0
        };
        buf.put_u32_le(mariadb);
        buf.put_slice(part2);
        // Pad to the 13 bytes clients read, NUL included.
        buf.put_bytes(0, 13usize.saturating_sub(part2.len()).max(1));
        buf.put_slice(&self.auth_plugin);
        buf.put_u8(0);
    }
}

/// The fixed head of a client's answer to the greeting; on its own (32
/// bytes, `CLIENT_SSL` set) it is an SSLRequest, after which TLS starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SslRequest {
    pub capabilities: u32,
    pub max_packet: u32,
    pub charset: u8,
    pub mariadb_capabilities: u32,
}

impl SslRequest {
    fn parse_fixed(f: &mut Fields<'_>) -> Result<Self, HandshakeError> {
        let m = malformed("handshake response");
        let capabilities = f.u32().map_err(&m)?;
        if capabilities & CLIENT_PROTOCOL_41 == 0 {
            return Err(HandshakeError::OldClient);
        }
        let max_packet = f.u32().map_err(&m)?;
        let charset = f.u8().map_err(&m)?;
        f.bytes(19).map_err(&m)?;
        let mariadb_capabilities = f.u32().map_err(&m)?;
        Ok(Self {
            capabilities,
            max_packet,
            charset,
            mariadb_capabilities,
        })
    }

    pub fn write(&self, buf: &mut impl BufMut) {
        buf.put_u32_le(self.capabilities);
        buf.put_u32_le(self.max_packet);
        buf.put_u8(self.charset);
        buf.put_bytes(0, 19);
        buf.put_u32_le(self.mariadb_capabilities);
    }
}

/// HandshakeResponse41: who the client is and its first auth token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandshakeResponse {
    pub capabilities: u32,
    pub max_packet: u32,
    pub charset: u8,
    pub mariadb_capabilities: u32,
    pub user: Vec<u8>,
    pub auth_response: Vec<u8>,
    /// Present when `CLIENT_CONNECT_WITH_DB` is set.
    pub database: Option<Vec<u8>>,
    /// Present when `CLIENT_PLUGIN_AUTH` is set.
    pub auth_plugin: Option<Vec<u8>>,
    /// Connection attributes in the order sent (`CLIENT_CONNECT_ATTRS`).
    pub attributes: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a client sends after the greeting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientReply {
    Ssl(SslRequest),
    Login(HandshakeResponse),
}

impl ClientReply {
    pub fn parse(payload: &[u8]) -> Result<Self, HandshakeError> {
        let mut f = Fields::new(payload);
        let head = SslRequest::parse_fixed(&mut f)?;
        if payload.len() == FIXED_RESPONSE_LEN && head.capabilities & CLIENT_SSL != 0 {
            return Ok(Self::Ssl(head));
        }
        HandshakeResponse::parse_rest(head, &mut f).map(Self::Login)
    }
}

impl HandshakeResponse {
    /// Parses a HandshakeResponse41 (not an SSLRequest: see
    /// [`ClientReply::parse`] where either may come).
    pub fn parse(payload: &[u8]) -> Result<Self, HandshakeError> {
        let mut f = Fields::new(payload);
        let head = SslRequest::parse_fixed(&mut f)?;
        Self::parse_rest(head, &mut f)
    }

    fn parse_rest(head: SslRequest, f: &mut Fields<'_>) -> Result<Self, HandshakeError> {
        let m = malformed("handshake response");
        let caps = head.capabilities;
        let user = f.nul_bytes().map_err(&m)?.to_vec();
        let auth_response = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            f.lenenc_bytes()
        } else if caps & CLIENT_SECURE_CONNECTION != 0 {
            f.u8().and_then(|n| f.bytes(n.into()))
        } else {
            f.nul_bytes()
        }
        .map_err(&m)?
        .to_vec();
        // Trailing optional fields: a flag whose field is missing at the
        // very end of the packet counts as absent, as servers treat it.
        let database = (caps & CLIENT_CONNECT_WITH_DB != 0 && !f.is_empty())
            .then(|| f.nul_bytes_or_rest().to_vec());
        let auth_plugin = (caps & CLIENT_PLUGIN_AUTH != 0 && !f.is_empty())
            .then(|| f.nul_bytes_or_rest().to_vec());
        let mut attributes = Vec::new();
        if caps & CLIENT_CONNECT_ATTRS != 0 && !f.is_empty() {
            let mut attrs = Fields::new(f.lenenc_bytes().map_err(&m)?);
            while !attrs.is_empty() {
                let key = attrs.lenenc_bytes().map_err(&m)?;
                let value = attrs.lenenc_bytes().map_err(&m)?;
                attributes.push((key.to_vec(), value.to_vec()));
            }
        }
        Ok(Self {
            capabilities: caps,
            max_packet: head.max_packet,
            charset: head.charset,
            mariadb_capabilities: head.mariadb_capabilities,
            user,
            auth_response,
            database,
            auth_plugin,
            attributes,
        })
    }

    /// The fixed head, which is also the SSLRequest sent before it.
    pub fn ssl_request(&self) -> SslRequest {
        SslRequest {
            capabilities: self.capabilities,
            max_packet: self.max_packet,
            charset: self.charset,
            mariadb_capabilities: self.mariadb_capabilities,
        }
    }

    /// Writes the response as `capabilities` says: the optional fields
    /// appear exactly when their flag is set (a missing value as empty).
    pub fn write(&self, buf: &mut impl BufMut) {
        let caps = self.capabilities;
        self.ssl_request().write(buf);
        buf.put_slice(&self.user);
        buf.put_u8(0);
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            put_lenenc_bytes(buf, &self.auth_response);
        } else if caps & CLIENT_SECURE_CONNECTION != 0 {
            let token = &self.auth_response[..self.auth_response.len().min(255)];
            buf.put_u8(token.len() as u8);
            buf.put_slice(token);
        } else {
            buf.put_slice(&self.auth_response);
            buf.put_u8(0);
        }
        if caps & CLIENT_CONNECT_WITH_DB != 0 {
            buf.put_slice(self.database.as_deref().unwrap_or_default());
            buf.put_u8(0);
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            buf.put_slice(self.auth_plugin.as_deref().unwrap_or_default());
            buf.put_u8(0);
        }
        if caps & CLIENT_CONNECT_ATTRS != 0 {
            let mut attrs = Vec::new();
            for (k, v) in &self.attributes {
                put_lenenc_bytes(&mut attrs, k);
                put_lenenc_bytes(&mut attrs, v);
            }
            put_lenenc_bytes(buf, &attrs);
        }
    }
}

/// The server asks the client to authenticate again with another plugin
/// and a fresh nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    pub plugin: Vec<u8>,
    /// Plugin data as sent; for the password plugins, the nonce and a NUL.
    pub data: Vec<u8>,
}

impl AuthSwitchRequest {
    pub fn parse(payload: &[u8]) -> Result<Self, HandshakeError> {
        let mut f = expect_header(payload, AUTH_SWITCH_HEADER, "an auth switch request")?;
        if f.is_empty() {
            // The pre-4.1 form: switch to the old, broken password hash.
            return Ok(Self {
                plugin: b"mysql_old_password".to_vec(),
                data: Vec::new(),
            });
        }
        let plugin = f
            .nul_bytes()
            .map_err(malformed("auth switch request"))?
            .to_vec();
        Ok(Self {
            plugin,
            data: f.rest().to_vec(),
        })
    }

    /// The nonce in `data`, without its trailing NUL.
    pub fn scramble(&self) -> &[u8] {
        self.data.strip_suffix(&[0]).unwrap_or(&self.data)
    }

    pub fn write(&self, buf: &mut impl BufMut) {
        buf.put_u8(AUTH_SWITCH_HEADER);
        buf.put_slice(&self.plugin);
        buf.put_u8(0);
        buf.put_slice(&self.data);
    }
}

/// Extra authentication data from the server (`0x01` + data).
pub fn parse_auth_more_data(payload: &[u8]) -> Result<&[u8], HandshakeError> {
    expect_header(payload, super::auth::AUTH_MORE_DATA, "auth more data").map(|mut f| f.rest())
}

pub fn write_auth_more_data(buf: &mut impl BufMut, data: &[u8]) {
    buf.put_u8(super::auth::AUTH_MORE_DATA);
    buf.put_slice(data);
}

/// An OK packet, or the OK that ends a result set under
/// `CLIENT_DEPRECATE_EOF` (header `0xFE`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OkPacket {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
    pub info: Vec<u8>,
    /// Session state changes (`CLIENT_SESSION_TRACK` and
    /// `SERVER_SESSION_STATE_CHANGED`), raw.
    pub session_state: Option<Vec<u8>>,
}

impl OkPacket {
    /// Parses an OK packet in either form under the session's `capabilities`.
    pub fn parse(payload: &[u8], capabilities: u32) -> Result<Self, HandshakeError> {
        let m = malformed("OK packet");
        let mut f = match payload.first() {
            Some(&EOF_HEADER) => expect_header(payload, EOF_HEADER, "an OK packet")?,
            _ => expect_header(payload, OK_HEADER, "an OK packet")?,
        };
        let mut ok = Self {
            affected_rows: f.lenenc_int().map_err(&m)?,
            last_insert_id: f.lenenc_int().map_err(&m)?,
            ..Self::default()
        };
        if capabilities & CLIENT_PROTOCOL_41 != 0 {
            ok.status = f.u16().map_err(&m)?;
            ok.warnings = f.u16().map_err(&m)?;
        } else if capabilities & CLIENT_TRANSACTIONS != 0 {
            ok.status = f.u16().map_err(&m)?;
        }
        if capabilities & CLIENT_SESSION_TRACK != 0 {
            if !f.is_empty() {
                ok.info = f.lenenc_bytes().map_err(&m)?.to_vec();
            }
            if ok.status & SERVER_SESSION_STATE_CHANGED != 0 && !f.is_empty() {
                ok.session_state = Some(f.lenenc_bytes().map_err(&m)?.to_vec());
            }
        } else {
            ok.info = f.rest().to_vec();
        }
        Ok(ok)
    }

    /// Writes the packet with header `0x00`, or `0xFE` when it ends a
    /// result set for a `CLIENT_DEPRECATE_EOF` client.
    pub fn write(&self, buf: &mut impl BufMut, capabilities: u32, ends_result_set: bool) {
        buf.put_u8(if ends_result_set {
            EOF_HEADER
        } else {
            OK_HEADER
        });
        put_lenenc_int(buf, self.affected_rows);
        put_lenenc_int(buf, self.last_insert_id);
        if capabilities & CLIENT_PROTOCOL_41 != 0 {
            buf.put_u16_le(self.status);
            buf.put_u16_le(self.warnings);
        } else if capabilities & CLIENT_TRANSACTIONS != 0 {
            buf.put_u16_le(self.status);
        }
        if capabilities & CLIENT_SESSION_TRACK != 0 {
            let state = self
                .session_state
                .as_deref()
                .filter(|_| self.status & SERVER_SESSION_STATE_CHANGED != 0);
            // Servers omit an empty info unless state changes follow it.
            if !self.info.is_empty() || state.is_some() {
                put_lenenc_bytes(buf, &self.info);
            }
            if let Some(state) = state {
                put_lenenc_bytes(buf, state);
            }
        } else {
            buf.put_slice(&self.info);
        }
    }
}

/// Whether a payload is a classic EOF packet (not a row that happens to
/// start with `0xFE`: those are at least 9 bytes long).
pub fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&EOF_HEADER) && payload.len() < 9
}

/// Whether a payload in a result set's row stream ends it: an EOF, or under
/// `CLIENT_DEPRECATE_EOF` an OK with header `0xFE`. That OK may carry info
/// and session state, so it can be longer than 9 bytes; a row starting with
/// `0xFE` announces a value of 16 MiB or more, so it never fits one chunk.
pub fn ends_result_set(payload: &[u8], capabilities: u32) -> bool {
    if capabilities & CLIENT_DEPRECATE_EOF != 0 {
        payload.first() == Some(&EOF_HEADER) && payload.len() < super::packet::MAX_CHUNK
    } else {
        is_eof(payload)
    }
}

/// The EOF packet of clients without `CLIENT_DEPRECATE_EOF`.
pub fn write_eof(buf: &mut impl BufMut, warnings: u16, status: u16) {
    buf.put_u8(EOF_HEADER);
    buf.put_u16_le(warnings);
    buf.put_u16_le(status);
}

/// An error: code, SQLSTATE and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrPacket {
    pub code: u16,
    pub sqlstate: [u8; 5],
    pub message: String,
}

impl ErrPacket {
    pub fn new(code: u16, sqlstate: &str, message: impl Into<String>) -> Self {
        let mut state = *b"HY000";
        if sqlstate.len() == 5 {
            state.copy_from_slice(sqlstate.as_bytes());
        }
        Self {
            code,
            sqlstate: state,
            message: message.into(),
        }
    }

    pub fn sqlstate(&self) -> &str {
        std::str::from_utf8(&self.sqlstate).unwrap_or("HY000")
    }

    /// Parses an ERR packet. The SQLSTATE is read when its `#` marker is
    /// there, not from the capabilities: a server refusing a connection
    /// before the handshake (too many connections, host not allowed) sends
    /// none. The message is decoded leniently; it is for humans.
    pub fn parse(payload: &[u8]) -> Result<Self, HandshakeError> {
        let m = malformed("error packet");
        let mut f = expect_header(payload, ERR_HEADER, "an error packet")?;
        let code = f.u16().map_err(&m)?;
        let mut sqlstate = *b"HY000";
        if f.peek_u8() == Some(b'#') {
            f.u8().map_err(&m)?;
            sqlstate = f.array().map_err(&m)?;
            if !sqlstate.iter().all(u8::is_ascii_alphanumeric) {
                return Err(m(PacketError::Malformed("SQLSTATE is not 5 characters")));
            }
        }
        Ok(Self {
            code,
            sqlstate,
            message: String::from_utf8_lossy(f.rest()).into_owned(),
        })
    }

    pub fn write(&self, buf: &mut impl BufMut, capabilities: u32) {
        buf.put_u8(ERR_HEADER);
        buf.put_u16_le(self.code);
        if capabilities & CLIENT_PROTOCOL_41 != 0 {
            buf.put_u8(b'#');
            buf.put_slice(&self.sqlstate);
        }
        buf.put_slice(self.message.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A greeting captured from MariaDB 10.11 on 127.0.0.1 (see the
    /// upstream tests), with the nonce replaced.
    fn mariadb_greeting() -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(b"5.5.5-10.11.19-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&42u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        p.extend_from_slice(&0xF7FEu16.to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&0x81BFu16.to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&0x1Du32.to_le_bytes());
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"mysql_native_password\0");
        p
    }

    #[test]
    fn parses_a_mariadb_greeting() {
        let hs = ServerHandshake::parse(&mariadb_greeting()).unwrap();
        assert_eq!(hs.server_version, b"5.5.5-10.11.19-MariaDB-0+deb12u1");
        assert_eq!(hs.connection_id, 42);
        assert_eq!(hs.scramble, b"abcdefghijklmnopqrst");
        assert_eq!(hs.capabilities, 0x81BF_F7FE);
        assert_eq!(hs.capabilities & CLIENT_LONG_PASSWORD, 0);
        assert_eq!(hs.mariadb_capabilities, 0x1D);
        assert_eq!((hs.charset, hs.status), (45, 2));
        assert_eq!(hs.auth_plugin, b"mysql_native_password");
    }

    #[test]
    fn greeting_round_trips() {
        let hs = ServerHandshake {
            server_version: b"8.0.36-airlock".to_vec(),
            connection_id: 7,
            scramble: b"01234567890123456789".to_vec(),
            capabilities: SUPPORTED | CLIENT_SSL,
            mariadb_capabilities: 0,
            charset: UTF8MB4_GENERAL_CI,
            status: SERVER_STATUS_AUTOCOMMIT,
            auth_plugin: b"caching_sha2_password".to_vec(),
        };
        let mut buf = Vec::new();
        hs.write(&mut buf);
        assert_eq!(ServerHandshake::parse(&buf).unwrap(), hs);
    }

    #[test]
    fn greeting_with_a_huge_nonce_length_does_not_panic() {
        let mut p = mariadb_greeting();
        let at = p.iter().position(|&b| b == 21).unwrap();
        for len in [0u8, 0x80, 0x88, 0xFF] {
            p[at] = len;
            let _ = ServerHandshake::parse(&p);
        }
    }

    fn login() -> HandshakeResponse {
        HandshakeResponse {
            capabilities: SUPPORTED,
            max_packet: 16 << 20,
            charset: 255,
            mariadb_capabilities: 0,
            user: b"agent".to_vec(),
            auth_response: (1..=20).collect(),
            database: Some(b"shop".to_vec()),
            auth_plugin: Some(b"mysql_native_password".to_vec()),
            attributes: vec![
                (b"_client_name".to_vec(), b"libmariadb".to_vec()),
                (b"_pid".to_vec(), b"123".to_vec()),
                (b"_pid".to_vec(), b"again".to_vec()),
            ],
        }
    }

    #[test]
    fn handshake_response_round_trips() {
        let r = login();
        let mut buf = Vec::new();
        r.write(&mut buf);
        assert_eq!(HandshakeResponse::parse(&buf).unwrap(), r);
        assert_eq!(ClientReply::parse(&buf).unwrap(), ClientReply::Login(r));
    }

    #[test]
    fn handshake_response_token_forms() {
        for caps in [
            CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION,
            CLIENT_PROTOCOL_41,
        ] {
            let r = HandshakeResponse {
                capabilities: caps,
                user: b"u".to_vec(),
                auth_response: b"tok".to_vec(),
                ..HandshakeResponse::default()
            };
            let mut buf = Vec::new();
            r.write(&mut buf);
            assert_eq!(HandshakeResponse::parse(&buf).unwrap(), r);
        }
    }

    #[test]
    fn missing_trailing_fields_count_as_absent() {
        let mut r = login();
        r.capabilities &= !(CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS | CLIENT_CONNECT_WITH_DB);
        let mut buf = Vec::new();
        r.write(&mut buf);
        // Flags set after writing: the fields they announce are missing.
        buf[..4].copy_from_slice(&(SUPPORTED).to_le_bytes());
        let parsed = HandshakeResponse::parse(&buf).unwrap();
        assert_eq!(parsed.database, None);
        assert_eq!(parsed.auth_plugin, None);
        assert!(parsed.attributes.is_empty());
    }

    #[test]
    fn ssl_request_is_recognised() {
        let req = SslRequest {
            capabilities: SUPPORTED | CLIENT_SSL,
            max_packet: 1 << 24,
            charset: 45,
            mariadb_capabilities: 0,
        };
        let mut buf = Vec::new();
        req.write(&mut buf);
        assert_eq!(buf.len(), FIXED_RESPONSE_LEN);
        assert_eq!(ClientReply::parse(&buf).unwrap(), ClientReply::Ssl(req));
    }

    #[test]
    fn pre_41_clients_are_refused() {
        let mut buf = Vec::new();
        let mut r = login();
        r.capabilities &= !CLIENT_PROTOCOL_41;
        r.write(&mut buf);
        assert!(matches!(
            ClientReply::parse(&buf),
            Err(HandshakeError::OldClient)
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        login().write(&mut buf);
        let full = HandshakeResponse::parse(&buf).unwrap();
        for cut in 0..buf.len() {
            // Cuts inside the trailing optional fields may still parse
            // (the fields count as absent); they must never yield the full
            // value, nor panic.
            if let Ok(r) = HandshakeResponse::parse(&buf[..cut]) {
                assert_ne!(r, full, "cut at {cut}");
            }
        }
        let greeting = mariadb_greeting();
        // Protocol byte, version and NUL, id, first nonce part and filler,
        // lower capabilities: where a pre-4.1 greeting may end.
        let pre41 = 1 + 33 + 4 + 9 + 2;
        // Up to the end of the nonce; a cut plugin name may still parse.
        let nonce_end = greeting.len() - b"mysql_native_password\0".len();
        for cut in (0..nonce_end).filter(|&c| c != pre41) {
            assert!(
                ServerHandshake::parse(&greeting[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert!(ServerHandshake::parse(&greeting[..pre41]).is_ok());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..120);
            let mut p: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let _ = ClientReply::parse(&p);
            let _ = ServerHandshake::parse(&p);
            let _ = AuthSwitchRequest::parse(&p);
            let _ = parse_auth_more_data(&p);
            let _ = ErrPacket::parse(&p);
            let _ = OkPacket::parse(&p, SUPPORTED);
            let _ = OkPacket::parse(&p, 0);
            // Also with plausible heads, to get past the first checks.
            if p.len() > 4 {
                p[0] = 10;
                let _ = ServerHandshake::parse(&p);
                p[..4].copy_from_slice(&(SUPPORTED | rng.gen::<u32>()).to_le_bytes());
                let _ = ClientReply::parse(&p);
            }
        }
    }

    #[test]
    fn auth_switch_round_trips_and_old_form() {
        let s = AuthSwitchRequest {
            plugin: b"caching_sha2_password".to_vec(),
            data: b"01234567890123456789\0".to_vec(),
        };
        let mut buf = Vec::new();
        s.write(&mut buf);
        let parsed = AuthSwitchRequest::parse(&buf).unwrap();
        assert_eq!(parsed, s);
        assert_eq!(parsed.scramble(), b"01234567890123456789");
        assert_eq!(
            AuthSwitchRequest::parse(&[0xFE]).unwrap().plugin,
            b"mysql_old_password"
        );
        assert!(matches!(
            AuthSwitchRequest::parse(&[0x00]),
            Err(HandshakeError::Unexpected { got: 0, .. })
        ));
    }

    #[test]
    fn auth_more_data() {
        let mut buf = Vec::new();
        write_auth_more_data(&mut buf, &[super::super::auth::FAST_AUTH_SUCCESS]);
        assert_eq!(buf, [0x01, 0x03]);
        assert_eq!(parse_auth_more_data(&buf).unwrap(), [0x03]);
        assert!(parse_auth_more_data(&[]).is_err());
    }

    #[test]
    fn ok_packet_bytes() {
        let ok = OkPacket {
            affected_rows: 3,
            last_insert_id: 300,
            status: SERVER_STATUS_AUTOCOMMIT,
            warnings: 1,
            ..OkPacket::default()
        };
        let mut buf = Vec::new();
        ok.write(&mut buf, CLIENT_PROTOCOL_41, false);
        assert_eq!(buf, [0x00, 3, 0xFC, 0x2C, 0x01, 2, 0, 1, 0]);
        assert_eq!(OkPacket::parse(&buf, CLIENT_PROTOCOL_41).unwrap(), ok);
        let mut eof = Vec::new();
        ok.write(&mut eof, CLIENT_PROTOCOL_41, true);
        assert_eq!(eof[0], 0xFE);
        assert!(ends_result_set(
            &eof,
            CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF
        ));
        assert!(!ends_result_set(&eof, CLIENT_PROTOCOL_41));
        assert_eq!(OkPacket::parse(&eof, CLIENT_PROTOCOL_41).unwrap(), ok);
    }

    #[test]
    fn ok_packet_with_session_tracking() {
        let caps = CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK;
        let plain = OkPacket::default();
        let mut buf = Vec::new();
        plain.write(&mut buf, caps, false);
        assert_eq!(buf, [0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(OkPacket::parse(&buf, caps).unwrap(), plain);
        let tracked = OkPacket {
            status: SERVER_SESSION_STATE_CHANGED,
            info: b"Rows matched: 1".to_vec(),
            session_state: Some(vec![1, 5, 4, b's', b'h', b'o', b'p']),
            ..OkPacket::default()
        };
        let mut buf = Vec::new();
        tracked.write(&mut buf, caps, false);
        assert_eq!(OkPacket::parse(&buf, caps).unwrap(), tracked);
        // Without session tracking the info is the rest of the packet.
        let mut buf = Vec::new();
        let info = OkPacket {
            info: b"hello".to_vec(),
            ..OkPacket::default()
        };
        info.write(&mut buf, CLIENT_PROTOCOL_41, false);
        assert!(buf.ends_with(b"\0\0\0\0hello"));
        assert_eq!(OkPacket::parse(&buf, CLIENT_PROTOCOL_41).unwrap(), info);
    }

    #[test]
    fn eof_packet() {
        let mut buf = Vec::new();
        write_eof(&mut buf, 0, SERVER_STATUS_AUTOCOMMIT);
        assert_eq!(buf, [0xFE, 0, 0, 2, 0]);
        assert!(is_eof(&buf));
        assert!(!is_eof(&[0xFE, 1, 2, 3, 4, 5, 6, 7, 8]));
    }

    #[test]
    fn err_packet_bytes() {
        let e = ErrPacket::new(1227, "42000", "denied by rule `no-ddl`");
        let mut buf = Vec::new();
        e.write(&mut buf, CLIENT_PROTOCOL_41);
        assert_eq!(&buf[..9], b"\xFF\xCB\x04#42000");
        assert_eq!(&buf[9..], b"denied by rule `no-ddl`");
        assert_eq!(ErrPacket::parse(&buf).unwrap(), e);
        assert_eq!(e.sqlstate(), "42000");
        // Before the handshake there is no SQLSTATE marker.
        let early = b"\xFF\x69\x04Host 'x' is not allowed to connect";
        let parsed = ErrPacket::parse(early).unwrap();
        assert_eq!((parsed.code, parsed.sqlstate()), (1129, "HY000"));
        assert!(parsed.message.starts_with("Host"));
        assert!(ErrPacket::parse(b"\xFF\x01").is_err());
        assert!(ErrPacket::parse(b"\xFF\x01\x00#42").is_err());
        assert_eq!(ErrPacket::new(1, "bad", "m").sqlstate(), "HY000");
    }
}
