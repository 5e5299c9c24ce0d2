//! A deliberately dumb PostgreSQL v3 protocol client for byte-level tests.
//!
//! Ordinary drivers interpret, buffer, merge and retry; a differential test of a
//! wire-protocol relay needs the opposite: every backend message exactly as it
//! arrived, in order, with nothing hidden. So this client only frames messages,
//! performs authentication (which the tests do not compare, because a gateway
//! may legitimately authenticate its clients differently from the upstream),
//! and otherwise hands raw `(tag, body)` pairs to the caller.
//!
//! Plaintext TCP only: the byte streams under test are the same with or without
//! TLS, and leaving TLS out keeps this file small enough to trust.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single wait on the network may take before the test gives up.
/// Long enough for a debug-build gateway on a loaded CI machine, short enough
/// that a gateway which swallows a message fails the test instead of hanging it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Result formats / parameter formats, spelled out so call sites read clearly.
pub const TEXT: i16 = 0;
pub const BINARY: i16 = 1;

// ---------------------------------------------------------------------------
// Frontend messages
// ---------------------------------------------------------------------------

/// One frontend message. Builders below take borrowed data for brevity at call
/// sites; the enum owns its data so a test corpus can be built once and replayed
/// against several endpoints.
#[derive(Clone, PartialEq, Eq)]
pub enum Frontend {
    Query(String),
    Parse {
        name: String,
        sql: String,
        param_types: Vec<u32>,
    },
    Bind {
        portal: String,
        statement: String,
        param_formats: Vec<i16>,
        params: Vec<Option<Vec<u8>>>,
        result_formats: Vec<i16>,
    },
    /// `kind` is `b'S'` (statement) or `b'P'` (portal).
    Describe {
        kind: u8,
        name: String,
    },
    Execute {
        portal: String,
        max_rows: i32,
    },
    Sync,
    Flush,
    /// `kind` is `b'S'` (statement) or `b'P'` (portal).
    Close {
        kind: u8,
        name: String,
    },
    CopyData(Vec<u8>),
    CopyDone,
    CopyFail(String),
    FunctionCall {
        oid: u32,
        arg_formats: Vec<i16>,
        args: Vec<Option<Vec<u8>>>,
        result_format: i16,
    },
    Terminate,
}

impl Frontend {
    pub fn query(sql: &str) -> Self {
        Frontend::Query(sql.to_owned())
    }

    pub fn parse(name: &str, sql: &str, param_types: &[u32]) -> Self {
        Frontend::Parse {
            name: name.to_owned(),
            sql: sql.to_owned(),
            param_types: param_types.to_vec(),
        }
    }

    pub fn bind(
        portal: &str,
        statement: &str,
        param_formats: &[i16],
        params: Vec<Option<Vec<u8>>>,
        result_formats: &[i16],
    ) -> Self {
        Frontend::Bind {
            portal: portal.to_owned(),
            statement: statement.to_owned(),
            param_formats: param_formats.to_vec(),
            params,
            result_formats: result_formats.to_vec(),
        }
    }

    pub fn describe(kind: u8, name: &str) -> Self {
        Frontend::Describe {
            kind,
            name: name.to_owned(),
        }
    }

    pub fn describe_statement(name: &str) -> Self {
        Self::describe(b'S', name)
    }

    pub fn describe_portal(name: &str) -> Self {
        Self::describe(b'P', name)
    }

    pub fn execute(portal: &str, max_rows: i32) -> Self {
        Frontend::Execute {
            portal: portal.to_owned(),
            max_rows,
        }
    }

    pub fn close(kind: u8, name: &str) -> Self {
        Frontend::Close {
            kind,
            name: name.to_owned(),
        }
    }

    pub fn close_statement(name: &str) -> Self {
        Self::close(b'S', name)
    }

    pub fn close_portal(name: &str) -> Self {
        Self::close(b'P', name)
    }

    pub fn copy_data(data: &[u8]) -> Self {
        Frontend::CopyData(data.to_vec())
    }

    pub fn copy_fail(message: &str) -> Self {
        Frontend::CopyFail(message.to_owned())
    }

    pub fn function_call(
        oid: u32,
        arg_formats: &[i16],
        args: Vec<Option<Vec<u8>>>,
        result_format: i16,
    ) -> Self {
        Frontend::FunctionCall {
            oid,
            arg_formats: arg_formats.to_vec(),
            args,
            result_format,
        }
    }

    /// Appends the wire encoding of this message to `buf`.
    ///
    /// Fails only for values the protocol cannot carry (a NUL inside a
    /// C string, more than 32767 parameters), so a test that hits it has a bug.
    pub fn encode(&self, buf: &mut BytesMut) -> io::Result<()> {
        match self {
            Frontend::Query(sql) => frontend::query(sql, buf),
            Frontend::Parse {
                name,
                sql,
                param_types,
            } => frontend::parse(name, sql, param_types.iter().copied(), buf),
            Frontend::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            } => frontend::bind(
                portal,
                statement,
                param_formats.iter().copied(),
                params.iter(),
                |value, buf| match value {
                    Some(bytes) => {
                        buf.put_slice(bytes);
                        Ok(IsNull::No)
                    }
                    None => Ok(IsNull::Yes),
                },
                result_formats.iter().copied(),
                buf,
            )
            .map_err(|e| match e {
                frontend::BindError::Conversion(e) => {
                    io::Error::new(io::ErrorKind::InvalidInput, e)
                }
                frontend::BindError::Serialization(e) => e,
            }),
            Frontend::Describe { kind, name } => frontend::describe(*kind, name, buf),
            Frontend::Execute { portal, max_rows } => frontend::execute(portal, *max_rows, buf),
            Frontend::Sync => {
                frontend::sync(buf);
                Ok(())
            }
            Frontend::Flush => {
                frontend::flush(buf);
                Ok(())
            }
            Frontend::Close { kind, name } => frontend::close(*kind, name, buf),
            Frontend::CopyData(data) => {
                frontend::CopyData::new(&data[..])?.write(buf);
                Ok(())
            }
            Frontend::CopyDone => {
                frontend::copy_done(buf);
                Ok(())
            }
            Frontend::CopyFail(message) => frontend::copy_fail(message, buf),
            Frontend::FunctionCall {
                oid,
                arg_formats,
                args,
                result_format,
            } => {
                // postgres-protocol has no builder for the (legacy but still
                // supported) FunctionCall message, so it is framed by hand.
                let mut body = Vec::new();
                body.extend_from_slice(&oid.to_be_bytes());
                body.extend_from_slice(&count_i16(arg_formats.len())?.to_be_bytes());
                for f in arg_formats {
                    body.extend_from_slice(&f.to_be_bytes());
                }
                body.extend_from_slice(&count_i16(args.len())?.to_be_bytes());
                for arg in args {
                    match arg {
                        Some(bytes) => {
                            let len = i32::try_from(bytes.len()).map_err(|_| too_big())?;
                            body.extend_from_slice(&len.to_be_bytes());
                            body.extend_from_slice(bytes);
                        }
                        None => body.extend_from_slice(&(-1i32).to_be_bytes()),
                    }
                }
                body.extend_from_slice(&result_format.to_be_bytes());
                buf.put_slice(&frame(b'F', &body));
                Ok(())
            }
            Frontend::Terminate => {
                frontend::terminate(buf);
                Ok(())
            }
        }
    }

    /// The encoded message as a fresh byte vector (handy for `send_raw` tests
    /// that split or concatenate messages themselves).
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf)?;
        Ok(buf.to_vec())
    }
}

/// Frames an arbitrary message: `tag`, Int32 length (self-inclusive), `body`.
/// For tests that need bytes no builder would produce (non-UTF-8 SQL text,
/// unknown tags, ...).
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn count_i16(n: usize) -> io::Result<i16> {
    i16::try_from(n).map_err(|_| too_big())
}

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "value too large for the protocol",
    )
}

/// Debug output is what a failing test prints as "the step that produced this",
/// so large payloads are abbreviated instead of flooding the log.
impl fmt::Debug for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frontend::Query(sql) => write!(f, "Query({})", abbreviate_str(sql)),
            Frontend::Parse {
                name,
                sql,
                param_types,
            } => write!(
                f,
                "Parse({name:?}, {}, {param_types:?})",
                abbreviate_str(sql)
            ),
            Frontend::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            } => {
                write!(
                    f,
                    "Bind(portal {portal:?}, stmt {statement:?}, formats {param_formats:?}, ["
                )?;
                for (i, p) in params.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match p {
                        Some(b) => f.write_str(&escape_bytes(b, 60))?,
                        None => f.write_str("NULL")?,
                    }
                }
                write!(f, "], results {result_formats:?})")
            }
            Frontend::Describe { kind, name } => {
                write!(f, "Describe({}, {name:?})", *kind as char)
            }
            Frontend::Execute { portal, max_rows } => {
                write!(f, "Execute({portal:?}, {max_rows})")
            }
            Frontend::Sync => f.write_str("Sync"),
            Frontend::Flush => f.write_str("Flush"),
            Frontend::Close { kind, name } => write!(f, "Close({}, {name:?})", *kind as char),
            Frontend::CopyData(d) => write!(f, "CopyData({})", escape_bytes(d, 60)),
            Frontend::CopyDone => f.write_str("CopyDone"),
            Frontend::CopyFail(m) => write!(f, "CopyFail({m:?})"),
            Frontend::FunctionCall {
                oid,
                arg_formats,
                args,
                result_format,
            } => write!(
                f,
                "FunctionCall({oid}, {arg_formats:?}, {} args, result {result_format})",
                args.len()
            ),
            Frontend::Terminate => f.write_str("Terminate"),
        }
    }
}

fn abbreviate_str(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        format!("{s:?}")
    } else {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{:?}... ({} bytes total)", &s[..cut], s.len())
    }
}

/// Renders bytes as an ASCII string with `\xNN` escapes, cut after `max` input
/// bytes. Used for every diagnostic in the suite so that differences in
/// invisible bytes (a trailing NUL, a length prefix) are visible.
pub fn escape_bytes(bytes: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(max) + 2);
    out.push('"');
    for &b in bytes.iter().take(max) {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    if bytes.len() > max {
        out.push_str(&format!("... ({} bytes total)", bytes.len()));
    }
    out
}

// ---------------------------------------------------------------------------
// Backend messages
// ---------------------------------------------------------------------------

/// One backend message exactly as received: the tag byte and the body after the
/// length word. Accessors parse on demand and return `None` for a message of
/// another kind or a malformed one, so a test can never crash on bad bytes
/// from the system under test; it fails an assertion instead.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendMsg {
    pub tag: u8,
    pub body: Vec<u8>,
}

/// A NotificationResponse, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub process_id: i32,
    pub channel: String,
    pub payload: String,
}

impl BackendMsg {
    pub fn tag_char(&self) -> char {
        self.tag as char
    }

    /// Human name of the message type, for diagnostics.
    pub fn type_name(&self) -> &'static str {
        backend_type_name(self.tag)
    }

    /// The message re-framed as it was on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        frame(self.tag, &self.body)
    }

    pub fn is_error(&self) -> bool {
        self.tag == b'E'
    }

    pub fn is_notice(&self) -> bool {
        self.tag == b'N'
    }

    /// Fields of an ErrorResponse or NoticeResponse keyed by field type byte
    /// (`b'S'` severity, `b'C'` SQLSTATE, `b'M'` message, `b'D'` detail, ...).
    pub fn fields(&self) -> Option<BTreeMap<u8, String>> {
        if self.tag != b'E' && self.tag != b'N' {
            return None;
        }
        parse_fields(&self.body)
    }

    /// SQLSTATE of an ErrorResponse/NoticeResponse.
    pub fn sqlstate(&self) -> Option<String> {
        self.fields()?.remove(&b'C')
    }

    /// Transaction status of a ReadyForQuery: `b'I'`, `b'T'` or `b'E'`.
    pub fn ready_status(&self) -> Option<u8> {
        match (self.tag, self.body.as_slice()) {
            (b'Z', [status]) => Some(*status),
            _ => None,
        }
    }

    /// Tag of a CommandComplete, e.g. `"SELECT 5"`.
    pub fn command_tag(&self) -> Option<String> {
        if self.tag != b'C' {
            return None;
        }
        let mut cur = Cursor::new(&self.body);
        let tag = cur.cstr()?;
        cur.at_end().then(|| tag.to_owned())
    }

    /// Values of a DataRow; `None` inside for SQL NULL.
    pub fn data_row(&self) -> Option<Vec<Option<Vec<u8>>>> {
        if self.tag != b'D' {
            return None;
        }
        let mut cur = Cursor::new(&self.body);
        let n = cur.i16()?;
        let mut values = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            let len = cur.i32()?;
            if len < 0 {
                values.push(None);
            } else {
                values.push(Some(cur.bytes(len as usize)?.to_vec()));
            }
        }
        cur.at_end().then_some(values)
    }

    /// Name/value of a ParameterStatus.
    pub fn parameter_status(&self) -> Option<(String, String)> {
        if self.tag != b'S' {
            return None;
        }
        let mut cur = Cursor::new(&self.body);
        let name = cur.cstr()?.to_owned();
        let value = cur.cstr()?.to_owned();
        cur.at_end().then_some((name, value))
    }

    pub fn notification(&self) -> Option<Notification> {
        if self.tag != b'A' {
            return None;
        }
        let mut cur = Cursor::new(&self.body);
        let process_id = cur.i32()?;
        let channel = cur.cstr()?.to_owned();
        let payload = cur.cstr()?.to_owned();
        cur.at_end().then_some(Notification {
            process_id,
            channel,
            payload,
        })
    }

    /// Payload of a CopyData.
    pub fn copy_data(&self) -> Option<&[u8]> {
        (self.tag == b'd').then_some(self.body.as_slice())
    }

    /// Column names and type OIDs of a RowDescription.
    pub fn row_description(&self) -> Option<Vec<(String, u32)>> {
        if self.tag != b'T' {
            return None;
        }
        let mut cur = Cursor::new(&self.body);
        let n = cur.i16()?;
        let mut cols = Vec::new();
        for _ in 0..n {
            let name = cur.cstr()?.to_owned();
            let _table = cur.i32()?;
            let _attnum = cur.i16()?;
            let type_oid = cur.i32()? as u32;
            let _typlen = cur.i16()?;
            let _typmod = cur.i32()?;
            let _format = cur.i16()?;
            cols.push((name, type_oid));
        }
        cur.at_end().then_some(cols)
    }
}

impl fmt::Debug for BackendMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' {} ({} bytes) {}",
            self.tag_char().escape_default(),
            self.type_name(),
            self.body.len(),
            escape_bytes(&self.body, 400)
        )?;
        if let Some(fields) = self.fields() {
            f.write_str(" {")?;
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}: {}", *k as char, abbreviate_str(v))?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

pub fn backend_type_name(tag: u8) -> &'static str {
    match tag {
        b'1' => "ParseComplete",
        b'2' => "BindComplete",
        b'3' => "CloseComplete",
        b'A' => "NotificationResponse",
        b'C' => "CommandComplete",
        b'c' => "CopyDone",
        b'D' => "DataRow",
        b'd' => "CopyData",
        b'E' => "ErrorResponse",
        b'G' => "CopyInResponse",
        b'H' => "CopyOutResponse",
        b'I' => "EmptyQueryResponse",
        b'K' => "BackendKeyData",
        b'N' => "NoticeResponse",
        b'n' => "NoData",
        b'R' => "Authentication",
        b'S' => "ParameterStatus",
        b's' => "PortalSuspended",
        b'T' => "RowDescription",
        b't' => "ParameterDescription",
        b'V' => "FunctionCallResponse",
        b'v' => "NegotiateProtocolVersion",
        b'W' => "CopyBothResponse",
        b'Z' => "ReadyForQuery",
        _ => "unknown",
    }
}

fn parse_fields(body: &[u8]) -> Option<BTreeMap<u8, String>> {
    let mut cur = Cursor::new(body);
    let mut fields = BTreeMap::new();
    loop {
        let kind = cur.u8()?;
        if kind == 0 {
            return cur.at_end().then_some(fields);
        }
        let value = cur.cstr_bytes()?;
        fields.insert(kind, String::from_utf8_lossy(value).into_owned());
    }
}

/// Bounds-checked reader over a message body; every accessor returns `None`
/// instead of panicking on truncated input.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf }
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.bytes(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.bytes(4)?.try_into().ok()?))
    }

    fn cstr_bytes(&mut self) -> Option<&'a [u8]> {
        let end = self.buf.iter().position(|&b| b == 0)?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Some(s)
    }

    fn cstr(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.cstr_bytes()?).ok()
    }

    fn at_end(&self) -> bool {
        self.buf.is_empty()
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// An ErrorResponse received where the client cannot continue (during startup).
/// Travels inside an `io::Error` so `connect` keeps a plain `io::Result`
/// signature; recover it with [`server_error`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerError {
    pub fields: BTreeMap<u8, String>,
}

impl ServerError {
    pub fn code(&self) -> &str {
        self.field(b'C').unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.field(b'M').unwrap_or("")
    }

    pub fn severity(&self) -> &str {
        self.field(b'V').or_else(|| self.field(b'S')).unwrap_or("")
    }

    pub fn field(&self, kind: u8) -> Option<&str> {
        self.fields.get(&kind).map(String::as_str)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity(), self.code(), self.message())?;
        if let Some(detail) = self.field(b'D') {
            write!(f, " (detail: {detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

/// The server's ErrorResponse inside an error returned by [`Wire::connect`],
/// if that is what the failure was (as opposed to a network problem).
pub fn server_error(err: &io::Error) -> Option<&ServerError> {
    err.get_ref()?.downcast_ref::<ServerError>()
}

fn protocol_error(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn timed_out(what: &str, timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what}: nothing within {timeout:?}"),
    )
}

// ---------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------

/// A started session: authentication done, parameters collected, and the
/// server (or gateway) has sent its first ReadyForQuery.
pub struct Wire {
    stream: TcpStream,
    rbuf: BytesMut,
    addr: String,
    params: HashMap<String, String>,
    backend_key: (i32, i32),
    startup_messages: Vec<BackendMsg>,
    timeout: Duration,
}

impl Wire {
    /// Connects and runs the startup handshake up to the first ReadyForQuery.
    ///
    /// Authentication requests the client can answer: none (trust), cleartext,
    /// MD5 and SASL SCRAM-SHA-256 (without channel binding, as there is no TLS).
    /// An ErrorResponse during startup comes back as an `io::Error` carrying a
    /// [`ServerError`].
    pub async fn connect(
        addr: &str,
        user: &str,
        password: &str,
        database: &str,
        extra_params: &[(&str, &str)],
    ) -> io::Result<Wire> {
        let timeout = DEFAULT_TIMEOUT;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out(&format!("connecting to {addr}"), timeout))??;
        // Tests send some messages one byte at a time on purpose; Nagle would
        // glue those writes back together and defeat the point.
        stream.set_nodelay(true)?;
        let mut wire = Wire {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            addr: addr.to_owned(),
            params: HashMap::new(),
            backend_key: (0, 0),
            startup_messages: Vec::new(),
            timeout,
        };
        wire.startup(user, password, database, extra_params).await?;
        Ok(wire)
    }

    async fn startup(
        &mut self,
        user: &str,
        password: &str,
        database: &str,
        extra_params: &[(&str, &str)],
    ) -> io::Result<()> {
        let mut params = vec![("user", user), ("database", database)];
        params.extend_from_slice(extra_params);
        let mut buf = BytesMut::new();
        frontend::startup_message(params, &mut buf)?;
        self.send_raw(&buf).await?;

        let mut scram: Option<ScramSha256> = None;
        loop {
            let msg = self.recv().await?;
            match msg.tag {
                b'R' => {
                    let mut cur = Cursor::new(&msg.body);
                    let code = cur
                        .i32()
                        .ok_or_else(|| protocol_error("truncated Authentication".into()))?;
                    let rest = &msg.body[4..];
                    let mut out = BytesMut::new();
                    match code {
                        0 => {}
                        3 => {
                            frontend::password_message(password.as_bytes(), &mut out)?;
                        }
                        5 => {
                            let salt: [u8; 4] = rest.try_into().map_err(|_| {
                                protocol_error("malformed AuthenticationMD5Password".into())
                            })?;
                            let hash = md5_hash(user.as_bytes(), password.as_bytes(), salt);
                            frontend::password_message(hash.as_bytes(), &mut out)?;
                        }
                        10 => {
                            let offered: Vec<&[u8]> =
                                rest.split(|&b| b == 0).filter(|m| !m.is_empty()).collect();
                            if !offered.contains(&SCRAM_SHA_256.as_bytes()) {
                                return Err(protocol_error(format!(
                                    "server offers no SASL mechanism this client supports: {}",
                                    escape_bytes(rest, 200)
                                )));
                            }
                            let s = ScramSha256::new(
                                password.as_bytes(),
                                ChannelBinding::unsupported(),
                            );
                            frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                protocol_error("SASLContinue without SASL start".into())
                            })?;
                            s.update(rest)?;
                            frontend::sasl_response(s.message(), &mut out)?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                protocol_error("SASLFinal without SASL start".into())
                            })?;
                            // Verifies the server signature: a gateway that
                            // terminates SCRAM itself must still prove it knows
                            // the password.
                            s.finish(rest)?;
                        }
                        other => {
                            return Err(io::Error::new(
                                io::ErrorKind::Unsupported,
                                format!(
                                    "authentication request {other} not supported by test client"
                                ),
                            ));
                        }
                    }
                    if !out.is_empty() {
                        self.send_raw(&out).await?;
                    }
                }
                b'K' => {
                    let mut cur = Cursor::new(&msg.body);
                    match (cur.i32(), cur.i32(), cur.at_end()) {
                        (Some(pid), Some(key), true) => self.backend_key = (pid, key),
                        _ => return Err(protocol_error("malformed BackendKeyData".into())),
                    }
                }
                b'E' => {
                    let fields = msg.fields().ok_or_else(|| {
                        protocol_error(format!("malformed ErrorResponse {msg:?}"))
                    })?;
                    return Err(io::Error::other(ServerError { fields }));
                }
                b'Z' => {
                    self.startup_messages.push(msg);
                    return Ok(());
                }
                _ => {
                    if let Some((name, value)) = msg.parameter_status() {
                        self.params.insert(name, value);
                    }
                    self.startup_messages.push(msg);
                }
            }
        }
    }

    /// Server parameters reported during startup (later ParameterStatus
    /// messages are part of the normal message stream and are not folded in,
    /// so tests see them where they occur).
    pub fn params(&self) -> &HashMap<String, String> {
        &self.params
    }

    /// (process id, secret key) from BackendKeyData; (0, 0) if none was sent.
    pub fn backend_key(&self) -> (i32, i32) {
        self.backend_key
    }

    /// Everything the server sent during startup after authentication, in
    /// order, minus Authentication* and BackendKeyData (which legitimately
    /// differ between a gateway and its upstream): ParameterStatus, notices,
    /// NegotiateProtocolVersion, and the final ReadyForQuery.
    pub fn startup_messages(&self) -> &[BackendMsg] {
        &self.startup_messages
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Per-wait time limit for every later read and write.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub async fn send(&mut self, msg: Frontend) -> io::Result<()> {
        self.send_all(std::slice::from_ref(&msg)).await
    }

    /// Encodes all messages into one buffer and writes it at once, so they
    /// typically reach the peer in a single TCP segment: the way pipelining
    /// drivers behave, and what a relay must not choke on.
    pub async fn send_all(&mut self, msgs: &[Frontend]) -> io::Result<()> {
        let mut buf = BytesMut::new();
        for m in msgs {
            m.encode(&mut buf)?;
        }
        self.send_raw(&buf).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| timed_out("writing to server", timeout))?
    }

    /// Writes `bytes` in pieces of at most `chunk` bytes with a short pause in
    /// between, so that message boundaries fall in the middle of reads on the
    /// other side. `pause` of zero still yields between writes.
    pub async fn send_raw_chunked(
        &mut self,
        bytes: &[u8],
        chunk: usize,
        pause: Duration,
    ) -> io::Result<()> {
        for piece in bytes.chunks(chunk.max(1)) {
            self.send_raw(piece).await?;
            if pause.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(pause).await;
            }
        }
        Ok(())
    }

    /// Next backend message; a clean end of stream is an `UnexpectedEof` error.
    pub async fn recv(&mut self) -> io::Result<BackendMsg> {
        self.recv_or_eof().await?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")
        })
    }

    /// Next backend message, or `None` if the server closed the connection
    /// cleanly between messages (expected after Terminate or a FATAL error).
    pub async fn recv_or_eof(&mut self) -> io::Result<Option<BackendMsg>> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.read_message()).await {
            Ok(result) => result,
            Err(_) => Err(timed_out(
                &format!(
                    "waiting for a backend message ({} bytes of a partial one buffered)",
                    self.rbuf.len()
                ),
                timeout,
            )),
        }
    }

    /// Reads through the next ReadyForQuery, inclusive.
    pub async fn recv_until_ready(&mut self) -> io::Result<Vec<BackendMsg>> {
        self.recv_until(b'Z').await
    }

    /// Reads through the first message with tag `tag`, inclusive.
    pub async fn recv_until(&mut self, tag: u8) -> io::Result<Vec<BackendMsg>> {
        let mut out = Vec::new();
        loop {
            let msg = self.recv().await?;
            let done = msg.tag == tag;
            out.push(msg);
            if done {
                return Ok(out);
            }
        }
    }

    /// Sends a simple Query and collects the reply through ReadyForQuery.
    pub async fn simple_query(&mut self, sql: &str) -> io::Result<Vec<BackendMsg>> {
        self.send(Frontend::query(sql)).await?;
        self.recv_until_ready().await
    }

    /// Sends a CancelRequest for this session on a separate connection to the
    /// same address, and waits until the server has closed that connection,
    /// i.e. has taken the request in. Whether the cancel hits anything is
    /// observable only on this session's own stream.
    pub async fn cancel(&self) -> io::Result<()> {
        let (pid, key) = self.backend_key;
        let mut buf = BytesMut::new();
        frontend::cancel_request(pid, key, &mut buf);
        let timeout = self.timeout;
        let work = async {
            let mut s = TcpStream::connect(&self.addr).await?;
            s.write_all(&buf).await?;
            let mut sink = [0u8; 64];
            while s.read(&mut sink).await? != 0 {}
            Ok(())
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| timed_out("cancel request", timeout))?
    }

    /// Sends Terminate and waits for the server to close the connection,
    /// returning anything it still sent before closing.
    pub async fn terminate(mut self) -> io::Result<Vec<BackendMsg>> {
        self.send(Frontend::Terminate).await?;
        let mut rest = Vec::new();
        while let Some(msg) = self.recv_or_eof().await? {
            rest.push(msg);
        }
        Ok(rest)
    }

    async fn read_message(&mut self) -> io::Result<Option<BackendMsg>> {
        loop {
            if self.rbuf.len() >= 5 {
                let len =
                    u32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]]);
                if len < 4 || len > i32::MAX as u32 {
                    return Err(protocol_error(format!(
                        "invalid length {len} in backend message with tag {:?}",
                        self.rbuf[0] as char
                    )));
                }
                let total = 1 + len as usize;
                if self.rbuf.len() >= total {
                    let frame = self.rbuf.split_to(total);
                    return Ok(Some(BackendMsg {
                        tag: frame[0],
                        body: frame[5..].to_vec(),
                    }));
                }
                self.rbuf.reserve(total - self.rbuf.len());
            } else {
                self.rbuf.reserve(64 * 1024);
            }
            // read_buf is cancel-safe, which matters because the caller wraps
            // this in a timeout: bytes already read are kept in rbuf.
            let n = self.stream.read_buf(&mut self.rbuf).await?;
            if n == 0 {
                if self.rbuf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "server closed the connection in the middle of a message ({} bytes buffered: {})",
                        self.rbuf.len(),
                        escape_bytes(&self.rbuf, 40)
                    ),
                ));
            }
        }
    }
}
