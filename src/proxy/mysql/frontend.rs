//! The agent's side of a MySQL connection, up to the first command: our
//! greeting with a fresh nonce, TLS, and the agent's login against
//! Airlock's own identities.
//!
//! Airlock greets with `caching_sha2_password` (what current clients
//! expect) and accepts `mysql_native_password`; it switches plugin when
//! the client answered with one it cannot check for that identity. What a
//! login can be checked against:
//!
//! * `caching_sha2_password` fast path: SHA256(SHA256(password)), known when
//!   the config gives the password, or remembered from an earlier full
//!   authentication of the same identity in this process;
//! * full authentication (the password itself, sent only over TLS): checked
//!   against the identity's SCRAM verifier, then remembered as above;
//! * `mysql_native_password`: SHA1(SHA1(password)), from the password or
//!   `mysql_native_hash` in the config.
//!
//! Whatever fails — unknown name, wrong password, no way to check — the
//! agent sees the same ERR 1045, so names cannot be probed. This module
//! never talks to the upstream.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::auth::{
    NativeHash, Scramble, Sha2Hash, CACHING_SHA2_PASSWORD, FAST_AUTH_SUCCESS, NATIVE_PASSWORD,
    PERFORM_FULL_AUTHENTICATION,
};
use super::handshake::{
    write_auth_more_data, AuthSwitchRequest, ClientReply, ErrPacket, HandshakeResponse,
    ServerHandshake, CLIENT_COMPRESS, CLIENT_LONG_PASSWORD, CLIENT_PLUGIN_AUTH, CLIENT_SSL,
    CLIENT_ZSTD_COMPRESSION_ALGORITHM, REQUIRED, SERVER_STATUS_AUTOCOMMIT, UTF8MB4_GENERAL_CI,
};
use super::packet::{PacketError, PacketStream};
use crate::identity::{Identities, Identity};
use crate::proxy::Stream;

/// The largest packet accepted before the login completes.
const MAX_LOGIN_PACKET: usize = 64 << 10;

/// Exchanges allowed before the login must be decided.
const MAX_AUTH_ROUNDS: usize = 3;

/// What the greeting announces.
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    /// Capabilities offered (without `SSL`, added when TLS is configured).
    pub capabilities: u32,
    /// MariaDB extended capabilities offered, when the upstream is MariaDB:
    /// the greeting then clears bit 0 as MariaDB's own does.
    pub mariadb_capabilities: Option<u32>,
}

/// How logins are checked, shared by every connection of the listener.
pub struct LoginSettings {
    pub identities: std::sync::Arc<Identities>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub require_tls: bool,
    /// SHA256(SHA256(password)) of identities that completed a full
    /// authentication, for their later fast-path logins.
    pub sha2_cache: Mutex<HashMap<String, Sha2Hash>>,
}

/// A client that logged in.
pub struct LoggedIn {
    pub packets: PacketStream<Stream>,
    pub identity: Identity,
    pub response: HandshakeResponse,
    /// What the client and Airlock agreed on.
    pub capabilities: u32,
    /// The MariaDB extended capabilities agreed on (0 for a MySQL client).
    pub mariadb_capabilities: u32,
}

/// Why a connection ends during login: the ERR to send (if the client is
/// still there) and whether it counts as a failed password.
pub struct Refused {
    pub packets: Option<PacketStream<Stream>>,
    pub error: ErrPacket,
    pub auth_failure: bool,
    /// The name the client gave, for the audit record.
    pub user: String,
}

/// Greets `tcp`, upgrades it to TLS when the client asks, and checks its
/// login. The caller sends the final OK (after reaching the upstream).
pub async fn log_in(
    tcp: TcpStream,
    greeting: &Greeting,
    settings: &LoginSettings,
) -> Result<LoggedIn, Refused> {
    let scramble = Scramble::generate();
    let mut capabilities = greeting.capabilities | CLIENT_LONG_PASSWORD;
    if greeting.mariadb_capabilities.is_some() {
        capabilities &= !CLIENT_LONG_PASSWORD;
    }
    let mariadb_offered = greeting.mariadb_capabilities.unwrap_or(0);
    if settings.tls.is_some() {
        capabilities |= CLIENT_SSL;
    } else {
        capabilities &= !CLIENT_SSL;
    }
    let hello = ServerHandshake {
        server_version: greeting.server_version.as_bytes().to_vec(),
        connection_id: greeting.connection_id,
        scramble: scramble.as_bytes().to_vec(),
        capabilities,
        mariadb_capabilities: mariadb_offered,
        charset: UTF8MB4_GENERAL_CI,
        status: SERVER_STATUS_AUTOCOMMIT,
        auth_plugin: CACHING_SHA2_PASSWORD.as_bytes().to_vec(),
    };
    let mut tcp = tcp;
    let mut out = BytesMut::new();
    hello.write(&mut out);
    let refused = |error: ErrPacket| Refused {
        packets: None,
        error,
        auth_failure: false,
        user: String::new(),
    };
    if write_raw(&mut tcp, 0, &out).await.is_err() {
        return Err(refused(protocol_error("the client left")));
    }
    // The first answer is read exactly, with nothing buffered beyond it:
    // after an SSLRequest the client's TLS ClientHello follows at once, and
    // it belongs to the TLS handshake, not to a packet reader.
    let first = match read_raw(&mut tcp, 1).await {
        Ok(p) => p,
        Err(e) => return Err(refused_plain(tcp, protocol_error(&e.to_string())).await),
    };
    let reply = match ClientReply::parse(&first) {
        Ok(r) => r,
        Err(e) => return Err(refused_plain(tcp, protocol_error(&e.to_string())).await),
    };
    let (mut packets, response) = match reply {
        ClientReply::Ssl(_) => {
            let Some(acceptor) = &settings.tls else {
                let error =
                    protocol_error("the client asked for TLS, which this listener does not offer");
                return Err(refused_plain(tcp, error).await);
            };
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => return Err(refused(protocol_error(&format!("TLS handshake: {e}")))),
            };
            let mut packets = PacketStream::new(Stream::ServerTls(Box::new(tls)), MAX_LOGIN_PACKET);
            packets.set_seq(2);
            let login = match packets.read().await {
                Ok(Some(p)) => p,
                Ok(None) => return Err(refused(protocol_error("the client left"))),
                Err(e) => return Err(with(packets, protocol_error(&e.to_string()))),
            };
            match HandshakeResponse::parse(&login.payload) {
                Ok(r) => (packets, r),
                Err(e) => return Err(with(packets, protocol_error(&e.to_string()))),
            }
        }
        ClientReply::Login(response) => {
            let mut packets = PacketStream::new(Stream::Plain(tcp), MAX_LOGIN_PACKET);
            packets.set_seq(2);
            (packets, response)
        }
    };
    let user = String::from_utf8_lossy(&response.user).into_owned();
    let deny = |packets, message: String, auth_failure| Refused {
        packets: Some(packets),
        error: ErrPacket::new(1045, "28000", message),
        auth_failure,
        user: user.clone(),
    };
    if response.capabilities & REQUIRED != REQUIRED {
        return Err(deny(
            packets,
            "this client is too old for Airlock: it must support the 4.1 protocol and pluggable authentication".into(),
            false,
        ));
    }
    // Compression is never offered (the relay reads packets, not a
    // compressed stream), yet some drivers ask for it anyway and then
    // compress everything after the login, which would leave both sides
    // waiting for packets the other cannot read. Refused while the client
    // still reads plain packets, with what to do.
    let unoffered_compression = response.capabilities
        & !capabilities
        & (CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION_ALGORITHM);
    if unoffered_compression != 0 {
        return Err(Refused {
            packets: Some(packets),
            error: ErrPacket::new(
                1043,
                "08S01",
                "Airlock does not support the compressed protocol (it is not offered): connect without compression",
            ),
            auth_failure: false,
            user,
        });
    }
    if settings.require_tls && !packets.get_ref().is_tls() {
        return Err(Refused {
            packets: Some(packets),
            error: ErrPacket::new(
                3159,
                "HY000",
                "Airlock requires TLS: connect with TLS (e.g. --ssl-mode=REQUIRED)",
            ),
            auth_failure: false,
            user,
        });
    }
    let identity = settings.identities.get(&user).map(|i| Identity::clone(&i));
    let checked = authenticate(
        &mut packets,
        &scramble,
        &response,
        identity.as_ref(),
        settings,
    )
    .await;
    match (checked, identity) {
        (Ok(true), Some(identity)) => Ok(LoggedIn {
            packets,
            identity,
            capabilities: response.capabilities & capabilities,
            // A client that sets bit 0 speaks MySQL: the field is filler.
            mariadb_capabilities: if response.capabilities & CLIENT_LONG_PASSWORD == 0 {
                response.mariadb_capabilities & mariadb_offered
            } else {
                0
            },
            response,
        }),
        (Err(e), _) => Err(deny(packets, format!("login failed: {e}"), false)),
        (_, identity) => {
            let why = match identity.as_ref().map(|i| how_to_log_in(i, &packets)) {
                Some(Some(hint)) => format!(" ({hint})"),
                _ => String::new(),
            };
            let message = format!(
                "Access denied for user '{user}' (using password: {}){why}",
                if response.auth_response.is_empty() {
                    "NO"
                } else {
                    "YES"
                }
            );
            Err(deny(packets, message, true))
        }
    }
}

/// Runs the plugin exchange; `Ok(true)` when the password is right.
async fn authenticate(
    packets: &mut PacketStream<Stream>,
    scramble: &Scramble,
    response: &HandshakeResponse,
    identity: Option<&Identity>,
    settings: &LoginSettings,
) -> Result<bool, PacketError> {
    let tls = packets.get_ref().is_tls();
    let cached = identity.and_then(|i| {
        i.mysql.sha2.clone().or_else(|| {
            settings
                .sha2_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&i.name)
                .cloned()
        })
    });
    let native = identity.and_then(|i| i.mysql.native.clone());
    let client_plugin = match &response.auth_plugin {
        Some(p) if response.capabilities & CLIENT_PLUGIN_AUTH != 0 => {
            String::from_utf8_lossy(p).into_owned()
        }
        _ => NATIVE_PASSWORD.to_string(),
    };
    let mut plugin = client_plugin.as_str();
    let mut token = response.auth_response.clone();
    let mut switched = false;
    for _ in 0..MAX_AUTH_ROUNDS {
        // In clear, a caching_sha2 answer for an identity with no fast-path
        // hash cannot be checked, and its password may not be asked for;
        // a native hash can check a native answer: switch to it below.
        let sha2_checkable = cached.is_some() || tls || native.is_none() || switched;
        match plugin {
            CACHING_SHA2_PASSWORD if sha2_checkable => {
                if let Some(hash) = &cached {
                    let ok = hash.verify(scramble, &token);
                    if ok {
                        packets.write_with(|b| write_auth_more_data(b, &[FAST_AUTH_SUCCESS]));
                    }
                    return Ok(ok);
                }
                let Some(identity) = identity.filter(|_| tls) else {
                    // Nothing to check a fast-path answer against, and the
                    // password may not travel in clear.
                    return Ok(false);
                };
                packets.write_with(|b| write_auth_more_data(b, &[PERFORM_FULL_AUTHENTICATION]));
                packets.flush().await?;
                let Some(answer) = packets.read().await? else {
                    return Err(PacketError::Malformed("the client left during login"));
                };
                let password = answer.payload.strip_suffix(&[0]).unwrap_or(&answer.payload);
                let Ok(password) = std::str::from_utf8(password) else {
                    return Ok(false);
                };
                let ok = identity.verifier.matches_password(password)
                    || native
                        .as_ref()
                        .is_some_and(|n| n == &NativeHash::from_password(password.as_bytes()));
                if ok {
                    settings
                        .sha2_cache
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(
                            identity.name.clone(),
                            Sha2Hash::from_password(password.as_bytes()),
                        );
                }
                return Ok(ok);
            }
            // A client whose own default plugin differs from the greeting's
            // may answer with an empty token and expect to be switched to
            // its plugin (libmariadb with --default-auth does).
            NATIVE_PASSWORD if native.is_some() && (switched || !token.is_empty()) => {
                return Ok(native.as_ref().is_some_and(|n| n.verify(scramble, &token)));
            }
            _ => {
                // A plugin Airlock does not check, or native for an identity
                // whose native hash is unknown: switch to the plugin that
                // can decide (with the same nonce, as servers do).
                let next = if native.is_some()
                    && (plugin == NATIVE_PASSWORD || (cached.is_none() && !tls))
                {
                    NATIVE_PASSWORD
                } else {
                    CACHING_SHA2_PASSWORD
                };
                if switched {
                    return Ok(false);
                }
                switched = true;
                plugin = next;
                let switch = AuthSwitchRequest {
                    plugin: plugin.as_bytes().to_vec(),
                    data: [scramble.as_bytes().as_slice(), &[0]].concat(),
                };
                packets.write_with(|b| switch.write(b));
                packets.flush().await?;
                let Some(answer) = packets.read().await? else {
                    return Err(PacketError::Malformed("the client left during login"));
                };
                token = answer.payload.to_vec();
            }
        }
    }
    Ok(false)
}

/// A hint for a refused login that could not have succeeded as attempted.
fn how_to_log_in(identity: &Identity, packets: &PacketStream<Stream>) -> Option<&'static str> {
    let fast = identity.mysql.sha2.is_some() || identity.mysql.native.is_some();
    (!fast && !packets.get_ref().is_tls()).then_some(
        "Airlock knows this identity's password only as a SCRAM verifier: log in once over TLS, or configure mysql_native_hash",
    )
}

/// Sends `error` on a connection that has no packet stream yet (the
/// client's first answer was unusable) and gives up on it.
async fn refused_plain(mut tcp: TcpStream, error: ErrPacket) -> Refused {
    let mut out = BytesMut::new();
    error.write(&mut out, REQUIRED);
    let _ = write_raw(&mut tcp, 2, &out).await;
    let _ = tcp.shutdown().await;
    Refused {
        packets: None,
        error,
        auth_failure: false,
        user: String::new(),
    }
}

fn with(packets: PacketStream<Stream>, error: ErrPacket) -> Refused {
    Refused {
        packets: Some(packets),
        error,
        auth_failure: false,
        user: String::new(),
    }
}

/// ER_HANDSHAKE_ERROR: the client broke the connection phase.
pub fn protocol_error(why: &str) -> ErrPacket {
    ErrPacket::new(1043, "08S01", format!("Bad handshake: {why}"))
}

/// Sends `error` to a client Airlock is refusing, and closes.
pub async fn refuse(refused: Refused) {
    if let Some(mut packets) = refused.packets {
        packets.write_with(|b| refused.error.write(b, REQUIRED));
        let _ = packets.flush().await;
        let _ = packets.get_mut().shutdown().await;
    }
}

/// Refuses a connection before any greeting (too many connections).
pub async fn refuse_at_once(mut tcp: TcpStream, error: &ErrPacket) {
    let mut out = BytesMut::new();
    error.write(&mut out, 0);
    let _ = write_raw(&mut tcp, 0, &out).await;
    let _ = tcp.shutdown().await;
}

async fn write_raw(tcp: &mut TcpStream, seq: u8, payload: &[u8]) -> std::io::Result<()> {
    let len = payload.len() as u32;
    let mut frame = Vec::with_capacity(payload.len() + 4);
    frame.extend_from_slice(&len.to_le_bytes()[..3]);
    frame.push(seq);
    frame.extend_from_slice(payload);
    tcp.write_all(&frame).await
}

/// Reads one packet of at most [`MAX_LOGIN_PACKET`] bytes, and not a byte
/// more, checking its sequence id.
async fn read_raw(tcp: &mut TcpStream, seq: u8) -> Result<Vec<u8>, PacketError> {
    let mut header = [0u8; 4];
    tcp.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if header[3] != seq {
        return Err(PacketError::SequenceMismatch {
            expected: seq,
            got: header[3],
        });
    }
    if len > MAX_LOGIN_PACKET {
        return Err(PacketError::TooLarge {
            len,
            limit: MAX_LOGIN_PACKET,
        });
    }
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await?;
    Ok(payload)
}
