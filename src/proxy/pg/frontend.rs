//! The client side of a Postgres session up to ReadyForQuery: TLS
//! negotiation, the startup packet, and SCRAM-SHA-256 authentication of the
//! agent against Airlock's own identities.
//!
//! Side doors are closed here: replication connections are refused, the
//! `options` startup parameter (which can carry `-c role=…`) is read the
//! way the server reads it and accepted only when every setting in it is
//! one of the allowlisted startup parameters, and only allowlisted
//! parameters are ever passed to the upstream — as ordinary startup
//! parameters, never as `options`.

use super::codec::{
    self, backend, backend::Severity, read_startup_packet, FrameError, MessageReader,
};
use crate::identity::{Identities, Identity, ScramVerifier};
use crate::proxy::Stream;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use rand::RngCore;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// Startup parameters passed to the upstream. Everything here only shapes
/// how values are formatted or how long things may take; nothing changes
/// who the session runs as or what it may touch.
const FORWARDED_PARAMS: &[&str] = &[
    "application_name",
    "client_encoding",
    "datestyle",
    "timezone",
    "intervalstyle",
    "extra_float_digits",
    "search_path",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "bytea_output",
];

/// The largest SASL message a client may send during login.
const MAX_AUTH_MESSAGE: usize = 8 * 1024;

/// A failure before the session is established, with what the client is told.
#[derive(Debug)]
pub struct StartupError {
    pub code: &'static str,
    pub message: String,
    /// Whether to count it against the client's address.
    pub auth_failure: bool,
}

impl StartupError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            auth_failure: false,
        }
    }
}

/// What a client asked for at startup.
pub enum Opening {
    /// A session to authenticate.
    Session(Startup),
    /// A CancelRequest carrying a client-facing backend key, with the
    /// connection it came on: the caller closes it (with a TLS
    /// close_notify when encrypted, which libpq checks for).
    Cancel { key: (i32, i32), stream: Stream },
}

pub struct Startup {
    pub stream: Stream,
    pub user: String,
    pub database: Option<String>,
    /// Allowlisted parameters, names lower-cased, sorted.
    pub params: Vec<(String, String)>,
    /// Parameters that were dropped (names only, for the log).
    pub dropped: Vec<String>,
    /// `_pq_.*` protocol options and the minor version the client asked for.
    pub protocol_options: Vec<String>,
    pub minor_version: i32,
}

/// Negotiates TLS and reads the startup packet. Errors carry what to tell
/// the client; the caller sends it.
pub async fn open(
    tcp: TcpStream,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    require_tls: bool,
) -> Result<Opening, (Stream, StartupError)> {
    let mut stream = Stream::Plain(tcp);
    loop {
        let packet = match read_startup_packet(&mut stream).await {
            Ok(p) => p,
            Err(FrameError::BadLength(_)) | Err(FrameError::TooLarge { .. }) => {
                return Err((
                    stream,
                    StartupError::new("08P01", "invalid length of startup packet"),
                ))
            }
            Err(e) => {
                return Err((
                    stream,
                    StartupError::new("08006", format!("connection ended during startup: {e}")),
                ))
            }
        };
        let mut f = codec::Fields::new(&packet);
        let code = f.i32().unwrap_or(0);
        match code {
            SSL_REQUEST if !stream.is_tls() => match tls {
                Some(acceptor) => {
                    if stream_write(&mut stream, b"S").await.is_err() {
                        return Err((
                            stream,
                            StartupError::new("08006", "connection ended during TLS negotiation"),
                        ));
                    }
                    let Stream::Plain(tcp) = stream else {
                        unreachable!("checked above")
                    };
                    match acceptor.accept(tcp).await {
                        Ok(tls) => stream = Stream::ServerTls(Box::new(tls)),
                        Err(e) => {
                            tracing::info!(error = %e, "TLS handshake with client failed");
                            return Err((
                                Stream::Closed,
                                StartupError::new("08006", "TLS handshake failed"),
                            ));
                        }
                    }
                }
                None => {
                    if stream_write(&mut stream, b"N").await.is_err() {
                        return Err((
                            stream,
                            StartupError::new("08006", "connection ended during TLS negotiation"),
                        ));
                    }
                }
            },
            GSSENC_REQUEST if !stream.is_tls() => {
                if stream_write(&mut stream, b"N").await.is_err() {
                    return Err((
                        stream,
                        StartupError::new("08006", "connection ended during startup"),
                    ));
                }
            }
            SSL_REQUEST | GSSENC_REQUEST => {
                return Err((
                    stream,
                    StartupError::new("08P01", "encryption requested twice"),
                ));
            }
            CANCEL_REQUEST => {
                let key = (f.i32().unwrap_or(0), f.i32().unwrap_or(0));
                return Ok(Opening::Cancel { key, stream });
            }
            version if version >> 16 == 3 => {
                if require_tls && !stream.is_tls() {
                    return Err((
                        stream,
                        StartupError::new(
                            "28000",
                            "Airlock requires TLS: connect with sslmode=require (or stronger)",
                        ),
                    ));
                }
                return match parse_params(f.remaining()) {
                    Ok(startup) => Ok(Opening::Session(Startup {
                        stream,
                        minor_version: version & 0xffff,
                        ..startup
                    })),
                    Err(e) => Err((stream, e)),
                };
            }
            other => {
                let message = format!(
                    "unsupported frontend protocol {}.{}: Airlock speaks 3.0",
                    other >> 16,
                    other & 0xffff
                );
                return Err((stream, StartupError::new("0A000", message)));
            }
        }
    }
}

async fn stream_write(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

fn parse_params(body: &[u8]) -> Result<Startup, StartupError> {
    let invalid = || {
        StartupError::new(
            "08P01",
            "invalid startup packet layout: expected terminator as last byte",
        )
    };
    let mut f = codec::Fields::new(body);
    let mut user = None;
    let mut database = None;
    let mut params = Vec::new();
    let mut dropped = Vec::new();
    let mut protocol_options = Vec::new();
    // The server applies the last `options` first, then the other
    // parameters in order (a later one wins): see the end of this function.
    let mut option_settings = Vec::new();
    loop {
        let name = f.cstr().ok_or_else(invalid)?;
        if name.is_empty() {
            break;
        }
        let value = f.cstr().ok_or_else(invalid)?;
        let name = std::str::from_utf8(name).map_err(|_| invalid())?;
        let value = String::from_utf8(value.to_vec()).map_err(|_| invalid())?;
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "user" => user = Some(value),
            "database" => database = Some(value).filter(|d| !d.is_empty()),
            "replication"
                if !matches!(
                    value.to_ascii_lowercase().as_str(),
                    "false" | "off" | "no" | "0"
                ) =>
            {
                return Err(StartupError::new(
                    "42501",
                    "replication connections are not allowed through Airlock",
                ));
            }
            "replication" => {}
            "options" => option_settings = parse_options(&value)?,
            // Every value is checked (a repeated parameter is deduplicated
            // below, and the server reads the last one).
            "client_encoding" if !crate::sql::encoding::is_ascii_safe_pg(&value) => {
                return Err(unsafe_encoding(&value));
            }
            _ if lower.starts_with("_pq_.") => protocol_options.push(name.to_string()),
            _ if FORWARDED_PARAMS.contains(&lower.as_str()) => params.push((lower, value)),
            _ => dropped.push(name.to_string()),
        }
    }
    if !f.remaining().is_empty() {
        return Err(invalid());
    }
    let user = user
        .filter(|u| !u.is_empty())
        .ok_or_else(|| StartupError::new("28000", "no user name specified in startup packet"))?;
    option_settings.append(&mut params);
    let params = last_of_each(option_settings);
    Ok(Startup {
        stream: Stream::Closed,
        user,
        database,
        params,
        dropped,
        protocol_options,
        minor_version: 0,
    })
}

/// `settings` (in the order the server applies them) sorted by name, each
/// name once with the value the server ends up with: the last one given.
fn last_of_each(mut settings: Vec<(String, String)>) -> Vec<(String, String)> {
    settings.reverse();
    // Stable: among equal names the last given comes first, and stays.
    settings.sort_by(|a, b| a.0.cmp(&b.0));
    settings.dedup_by(|later, kept| later.0 == kept.0);
    settings
}

/// Splits an `options` value into words as the server does
/// (`pg_split_opts`): words are separated by whitespace, and a backslash
/// makes the next character part of the word, whatever it is (a
/// backslash at the very end vanishes). Only ASCII is accepted: the
/// server tests bytes with its locale's `isspace`, which Airlock cannot
/// know for bytes above 0x7f.
fn split_options(options: &str) -> Option<Vec<String>> {
    if !options.is_ascii() {
        return None;
    }
    let mut words = Vec::new();
    let mut chars = options.chars().peekable();
    loop {
        while chars.next_if(|c| is_c_space(*c)).is_some() {}
        if chars.peek().is_none() {
            return Some(words);
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !is_c_space(*c)) {
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    word.push(escaped);
                }
            } else {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r')
}

/// The settings in an `options` startup parameter, as (lower-case name,
/// value), in order. Only `-c name=value`, `-cname=value` and
/// `--name=value` are read (the server's `-` in a name is `_`), and only
/// for the allowlisted startup parameters: anything else — another
/// setting (`role`, `session_authorization`, a superuser-only one), another
/// switch (`-D`, `-P`, `-F`…), a stray word — refuses the session, since
/// the server would act on it.
fn parse_options(options: &str) -> Result<Vec<(String, String)>, StartupError> {
    let refuse = |what: &str| {
        StartupError::new(
            "42501",
            format!(
                "the startup parameter `options` may only set {} (as -c name=value or --name=value); \
                 {what} is not allowed through Airlock; set other parameters with SET after connecting",
                FORWARDED_PARAMS.join(", ")
            ),
        )
    };
    let words = split_options(options).ok_or_else(|| refuse("a non-ASCII character"))?;
    let mut settings = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words
                .next()
                .ok_or_else(|| refuse("`-c` without a setting"))?
                .as_str()
        } else if let Some(rest) = word.strip_prefix("--").or_else(|| word.strip_prefix("-c")) {
            rest
        } else {
            return Err(refuse(&format!("`{word}`")));
        };
        let Some((name, value)) = setting.split_once('=') else {
            return Err(refuse(&format!("`{word}` without a value")));
        };
        let name = name.replace('-', "_").to_ascii_lowercase();
        if !FORWARDED_PARAMS.contains(&name.as_str()) {
            return Err(refuse(&format!("setting `{name}`")));
        }
        if name == "client_encoding" && !crate::sql::encoding::is_ascii_safe_pg(value) {
            return Err(unsafe_encoding(value));
        }
        settings.push((name, value.to_string()));
    }
    Ok(settings)
}

/// The refusal of a session whose client encoding Airlock cannot read
/// (see [`crate::sql::encoding`]): at startup, or as the role's or
/// database's default the server reports.
pub fn unsafe_encoding(value: &str) -> StartupError {
    StartupError::new(
        "0A000",
        format!(
            "Airlock does not accept the client encoding \"{value}\": in it, bytes that look like quotes \
             or backslashes can be part of multi-byte characters, so Airlock cannot read statements the \
             way the server does; connect with client_encoding=UTF8 (PGCLIENTENCODING=UTF8)"
        ),
    )
}

/// Runs the SCRAM-SHA-256 exchange (RFC 5802 / 7677) for `user`. Unknown
/// names get a decoy exchange that fails at the same step as a wrong
/// password, so the exchange does not reveal which names exist.
pub async fn authenticate(
    stream: &mut Stream,
    identities: &Identities,
    user: &str,
) -> Result<Identity, StartupError> {
    let found = identities.get(user);
    let verifier = match &found {
        Some(identity) => identity.verifier.clone(),
        None => identities.decoy_verifier(user),
    };
    let failed = || StartupError {
        code: "28P01",
        message: format!("password authentication failed for user \"{user}\""),
        auth_failure: true,
    };
    let io_err = |_| StartupError::new("08006", "connection ended during authentication");

    stream_write(stream, &backend::authentication_sasl(&["SCRAM-SHA-256"]))
        .await
        .map_err(io_err)?;
    let mut reader = MessageReader::new(&mut *stream, MAX_AUTH_MESSAGE);

    // client-first-message, inside SASLInitialResponse.
    let first = read_password_message(&mut reader).await?;
    let mut f = codec::Fields::new(first.body());
    let mechanism = f
        .cstr()
        .ok_or_else(|| StartupError::new("08P01", "malformed SASLInitialResponse"))?;
    if mechanism != b"SCRAM-SHA-256" {
        return Err(StartupError::new(
            "28000",
            "client selected an invalid SASL authentication mechanism",
        ));
    }
    let len = f
        .i32()
        .ok_or_else(|| StartupError::new("08P01", "malformed SASLInitialResponse"))?;
    let client_first = match usize::try_from(len) {
        Ok(n) if n == f.remaining().len() => f.remaining(),
        _ => return Err(StartupError::new("08P01", "malformed SASLInitialResponse")),
    };
    let client_first = std::str::from_utf8(client_first).map_err(|_| malformed_scram())?;
    let (gs2_header, client_first_bare) = split_gs2(client_first)?;
    let client_nonce = client_first_bare
        .split(',')
        .find_map(|attr| attr.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
        .ok_or_else(malformed_scram)?;
    if client_first_bare.split(',').any(|a| a.starts_with("m=")) {
        return Err(StartupError::new(
            "28000",
            "SCRAM extensions are not supported",
        ));
    }

    let mut server_nonce = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut server_nonce);
    let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&verifier.salt),
        verifier.iterations
    );
    let continue_msg = backend::authentication_sasl_continue(server_first.as_bytes());
    stream_write(reader.get_mut(), &continue_msg)
        .await
        .map_err(io_err)?;

    // client-final-message.
    let last = read_password_message(&mut reader).await?;
    let client_final = std::str::from_utf8(last.body()).map_err(|_| malformed_scram())?;
    let (without_proof, proof) = client_final
        .rsplit_once(",p=")
        .ok_or_else(malformed_scram)?;
    let mut attrs = without_proof.split(',');
    let binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or_else(malformed_scram)?;
    let echoed_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(malformed_scram)?;
    if binding != B64.encode(gs2_header) {
        return Err(StartupError::new(
            "28000",
            "SCRAM channel binding check failed",
        ));
    }
    if echoed_nonce != nonce {
        return Err(StartupError::new("28000", "SCRAM nonce mismatch"));
    }
    let proof = B64.decode(proof).map_err(|_| malformed_scram())?;

    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let identity = match found {
        Some(identity) if verifier.verify_proof(auth_message.as_bytes(), &proof) => {
            Identity::clone(&identity)
        }
        _ => return Err(failed()),
    };
    let signature = server_final(&verifier, auth_message.as_bytes());
    stream_write(
        reader.get_mut(),
        &backend::authentication_sasl_final(signature.as_bytes()),
    )
    .await
    .map_err(io_err)?;
    Ok(identity)
}

fn server_final(verifier: &ScramVerifier, auth_message: &[u8]) -> String {
    format!("v={}", B64.encode(verifier.server_signature(auth_message)))
}

fn malformed_scram() -> StartupError {
    StartupError::new("08P01", "malformed SCRAM message")
}

/// Splits `gs2-header client-first-message-bare`. Airlock offers no
/// channel-binding mechanism, so a client that demands one (`p=`) is refused;
/// `y` (client could bind, believes we cannot) is accepted as RFC 5802 allows.
fn split_gs2(client_first: &str) -> Result<(&str, &str), StartupError> {
    let bytes = client_first.as_bytes();
    let after_flag = match bytes.first() {
        Some(b'n') | Some(b'y') if bytes.get(1) == Some(&b',') => 2,
        Some(b'p') => return Err(StartupError::new(
            "28000",
            "channel binding is not supported by Airlock; use channel_binding=prefer or disable",
        )),
        _ => return Err(malformed_scram()),
    };
    // The authzid field is empty or `a=…`; Airlock ignores it.
    let comma = client_first[after_flag..]
        .find(',')
        .ok_or_else(malformed_scram)?
        + after_flag;
    Ok((&client_first[..comma + 1], &client_first[comma + 1..]))
}

async fn read_password_message(
    reader: &mut MessageReader<&mut Stream>,
) -> Result<codec::Message, StartupError> {
    match reader.read().await {
        Ok(m) if m.tag() == b'p' => Ok(m),
        Ok(m) => Err(StartupError::new(
            "08P01",
            format!(
                "expected SASL response, got message type `{}`",
                m.tag() as char
            ),
        )),
        Err(FrameError::TooLarge { .. }) | Err(FrameError::BadLength(_)) => {
            Err(StartupError::new("08P01", "invalid SASL response length"))
        }
        Err(_) => Err(StartupError::new(
            "08006",
            "connection ended during authentication",
        )),
    }
}

/// Sends a FATAL ErrorResponse and closes the connection.
pub async fn refuse(stream: &mut Stream, error: &StartupError) {
    let msg = backend::error(Severity::Fatal, error.code, &error.message, None);
    let _ = stream_write(stream, &msg).await;
    let _ = stream.shutdown().await;
}

/// Sends the end of a successful startup: AuthenticationOk, the upstream's
/// ParameterStatus values, Airlock's own backend key, ReadyForQuery.
pub fn welcome(params: &[(String, String)], key: (i32, i32), negotiate: Option<Bytes>) -> BytesMut {
    let mut out = BytesMut::with_capacity(512);
    out.extend_from_slice(&backend::authentication_ok());
    if let Some(n) = negotiate {
        out.extend_from_slice(&n);
    }
    for (name, value) in params {
        out.extend_from_slice(&backend::parameter_status(name, value));
    }
    out.extend_from_slice(&backend::backend_key_data(key.0, key.1));
    out.extend_from_slice(&backend::ready_for_query(b'I'));
    out
}

/// Shared, immutable login settings for the listener.
pub struct LoginSettings {
    pub identities: Arc<Identities>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub require_tls: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in pairs {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out.push(0);
        out
    }

    #[test]
    fn startup_forwards_only_allowlisted_parameters() {
        let s = parse_params(&params(&[
            ("user", "agent"),
            ("database", "db"),
            ("application_name", "psql"),
            ("DateStyle", "ISO"),
            ("session_authorization", "postgres"),
            ("_pq_.compression", "on"),
        ]))
        .unwrap();
        assert_eq!(s.user, "agent");
        assert_eq!(s.database.as_deref(), Some("db"));
        assert_eq!(
            s.params,
            vec![
                ("application_name".into(), "psql".into()),
                ("datestyle".into(), "ISO".into())
            ]
        );
        assert_eq!(s.dropped, vec!["session_authorization".to_string()]);
        assert_eq!(s.protocol_options, vec!["_pq_.compression".to_string()]);
    }

    #[test]
    fn startup_refuses_encodings_airlock_cannot_read() {
        for enc in [
            "SJIS",
            "shift_jis_2004",
            "win932",
            "BIG5",
            "GBK",
            "CP936",
            "GB18030",
            "UHC",
            "Windows-949",
            "JOHAB",
            "auto",
        ] {
            let e = parse_params(&params(&[("user", "a"), ("client_encoding", enc)]))
                .err()
                .map(|e| e.code);
            assert_eq!(e, Some("0A000"), "{enc}");
        }
        // Also under another spelling of the name, and when repeated.
        let e = parse_params(&params(&[
            ("user", "a"),
            ("CLIENT_ENCODING", "UTF8"),
            ("Client_Encoding", "SJIS"),
        ]));
        assert!(e.is_err());
        for enc in ["UTF8", "utf-8", "LATIN1", "SQL_ASCII", "EUC_JP"] {
            assert!(
                parse_params(&params(&[("user", "a"), ("client_encoding", enc)])).is_ok(),
                "{enc}"
            );
        }
    }

    fn words(options: &str) -> Vec<String> {
        split_options(options).unwrap()
    }

    #[test]
    fn options_split_like_the_server() {
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words(" \t\n "), Vec::<String>::new());
        assert_eq!(
            words("-c search_path=foo -c statement_timeout=5000"),
            ["-c", "search_path=foo", "-c", "statement_timeout=5000"]
        );
        // Any run of C whitespace separates words.
        assert_eq!(
            words("\t-csearch_path=a\r\n\x0b\x0c--lock-timeout=1 "),
            ["-csearch_path=a", "--lock-timeout=1"]
        );
        // A backslash makes the next character part of the word.
        assert_eq!(
            words(r"-c search_path=my\ schema,public"),
            ["-c", "search_path=my schema,public"]
        );
        assert_eq!(
            words(r"-c application_name=a\\b"),
            ["-c", r"application_name=a\b"]
        );
        assert_eq!(words(r"a\b"), ["ab"]);
        assert_eq!(words("a\\\tb"), ["a\tb"]);
        // A trailing backslash vanishes; an escaped one at the end stays.
        assert_eq!(words(r"x\"), ["x"]);
        assert_eq!(words(r"x\\"), [r"x\"]);
        assert_eq!(words(r"\ "), [" "]);
        // Garbage is still split; what it means is judged afterwards.
        assert_eq!(words("-D /tmp -P"), ["-D", "/tmp", "-P"]);
        assert_eq!(words("=== -- -"), ["===", "--", "-"]);
        // Bytes the server's locale might call space are not guessed at.
        assert_eq!(split_options("-c search_path=caf\u{e9}"), None);
        assert_eq!(split_options("-c\u{a0}role=postgres"), None);
        assert_eq!(split_options("-c\u{85}role=postgres"), None);
    }

    fn options(value: &str) -> Result<Vec<(String, String)>, StartupError> {
        parse_params(&params(&[("user", "a"), ("options", value)])).map(|s| s.params)
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_forward_allowlisted_settings() {
        assert_eq!(
            options("-c search_path=foo -c statement_timeout=5000").unwrap(),
            pairs(&[("search_path", "foo"), ("statement_timeout", "5000")])
        );
        // Every spelling the server reads; names are case-insensitive and
        // `-` is `_`.
        assert_eq!(
            options(
                r"-cDateStyle=ISO,\ DMY --lock-timeout=10 -c TimeZone=UTC --Application_Name=x\ y"
            )
            .unwrap(),
            pairs(&[
                ("application_name", "x y"),
                ("datestyle", "ISO, DMY"),
                ("lock_timeout", "10"),
                ("timezone", "UTC"),
            ])
        );
        // An escaped space keeps a would-be switch inside the value.
        assert_eq!(
            options(r"-c search_path=foo\ -c\ role=postgres").unwrap(),
            pairs(&[("search_path", "foo -c role=postgres")])
        );
        // Empty and blank options set nothing.
        assert_eq!(options("").unwrap(), vec![]);
        assert_eq!(options("   ").unwrap(), vec![]);
        // Values may be empty or contain `=`.
        assert_eq!(
            options("-c application_name= -c search_path=a=b").unwrap(),
            pairs(&[("application_name", ""), ("search_path", "a=b")])
        );
    }

    #[test]
    fn options_and_parameters_combine_as_the_server_applies_them() {
        // The server applies `options` first, then the other parameters
        // in order: the last value of a name wins.
        let s = parse_params(&params(&[
            ("user", "a"),
            ("search_path", "from_param"),
            (
                "options",
                "-c search_path=from_options -c lock_timeout=1 -c lock_timeout=2",
            ),
            ("application_name", "z"),
            ("application_name", "b"),
        ]))
        .unwrap();
        assert_eq!(
            s.params,
            pairs(&[
                ("application_name", "b"),
                ("lock_timeout", "2"),
                ("search_path", "from_param"),
            ])
        );
        // Only the last `options` counts, but each must be acceptable.
        let s = parse_params(&params(&[
            ("user", "a"),
            ("options", "-c search_path=first"),
            ("options", "-c lock_timeout=3"),
        ]))
        .unwrap();
        assert_eq!(s.params, pairs(&[("lock_timeout", "3")]));
        assert!(parse_params(&params(&[
            ("user", "a"),
            ("options", "-c role=postgres"),
            ("options", "-c lock_timeout=3"),
        ]))
        .is_err());
    }

    #[test]
    fn options_refuse_everything_else() {
        for bad in [
            "-c role=postgres",
            "-c search_path=foo -c role=postgres",
            "--role=postgres",
            "-crole=postgres",
            "-c ROLE=postgres",
            "-c session_authorization=postgres",
            "--session-authorization=postgres",
            "-c default_transaction_read_only=off",
            "-c transaction_read_only=off",
            "-c log_statement=none",
            "-c session_replication_role=replica",
            "-c row_security=off",
            "-c allow_system_table_mods=on",
            "-c search_path",
            "--search_path",
            "-c",
            "-c search_path=foo -c",
            "-D /tmp",
            "-P",
            "-F",
            "-e",
            "-O",
            "-s",
            "-B 10",
            "-ec search_path=x",
            "--",
            "-- search_path=x",
            "-",
            "search_path=foo",
            "postgres",
            "-c =x",
            r"-c search\_path=x -P",
            "-c myext.setting=1",
            "-c search_path=caf\u{e9}",
        ] {
            let e = options(bad)
                .err()
                .unwrap_or_else(|| panic!("accepted: {bad}"));
            assert_eq!(e.code, "42501", "{bad}");
            assert!(e.message.contains("`options`"), "{bad}: {}", e.message);
        }
        // client_encoding is allowlisted, but only for encodings Airlock reads.
        for enc in ["SJIS", "BIG5", "GBK"] {
            for form in [
                format!("-c client_encoding={enc}"),
                format!("--client-encoding={enc}"),
            ] {
                assert_eq!(
                    options(&form).err().map(|e| e.code),
                    Some("0A000"),
                    "{form}"
                );
            }
        }
        assert_eq!(
            options("-c client_encoding=UTF8").unwrap(),
            pairs(&[("client_encoding", "UTF8")])
        );
    }

    #[test]
    fn startup_refuses_replication() {
        let e = parse_params(&params(&[("user", "a"), ("replication", "database")]))
            .err()
            .unwrap();
        assert_eq!(e.code, "42501");
        assert!(parse_params(&params(&[("user", "a"), ("replication", "false")])).is_ok());
    }

    #[test]
    fn startup_rejects_malformed_packets() {
        assert_eq!(parse_params(b"user\0a").err().unwrap().code, "08P01");
        assert_eq!(
            parse_params(b"user\0a\0\0junk").err().unwrap().code,
            "08P01"
        );
        assert_eq!(
            parse_params(&params(&[("database", "d")]))
                .err()
                .unwrap()
                .code,
            "28000"
        );
        assert_eq!(parse_params(b"user\0\xff\0\0").err().unwrap().code, "08P01");
    }

    #[test]
    fn gs2_headers() {
        assert_eq!(split_gs2("n,,n=,r=abc").unwrap(), ("n,,", "n=,r=abc"));
        assert_eq!(split_gs2("y,,n=u,r=abc").unwrap(), ("y,,", "n=u,r=abc"));
        assert_eq!(
            split_gs2("p=tls-server-end-point,,n=,r=x")
                .unwrap_err()
                .code,
            "28000"
        );
        assert_eq!(split_gs2("x,,n=,r=x").unwrap_err().code, "08P01");
        assert_eq!(split_gs2("n,").unwrap_err().code, "08P01");
    }
}
