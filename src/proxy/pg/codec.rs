//! Framing of PostgreSQL v3 protocol messages.
//!
//! The relay forwards messages as the exact bytes it received, so a
//! [`Message`] keeps the whole frame (tag, length, body) as one `Bytes` and
//! only exposes views into it. Reading is cancellation-safe: partial frames
//! stay in the reader's buffer, which is what lets the relay `select!` over
//! a socket without losing bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest startup packet accepted, as in PostgreSQL itself
/// (`MAX_STARTUP_PACKET_LENGTH`): startup parameters are small, and a client
/// that sends more is either broken or probing.
pub const MAX_STARTUP_PACKET: usize = 10_000;

/// One framed protocol message, exactly as read from the wire.
#[derive(Clone, Debug)]
pub struct Message {
    frame: Bytes,
}

impl Message {
    /// The message type byte (`Q`, `P`, `D`, …).
    pub fn tag(&self) -> u8 {
        self.frame[0]
    }

    /// The payload after the tag and length.
    pub fn body(&self) -> &[u8] {
        &self.frame[5..]
    }

    /// The whole frame, to forward unchanged.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    pub fn into_frame(self) -> Bytes {
        self.frame
    }

    /// Wraps a complete frame produced elsewhere (a masked row, say).
    pub fn from_frame(frame: Bytes) -> Self {
        debug_assert!(frame.len() >= 5);
        Self { frame }
    }
}

/// Why a frame could not be read. Every variant ends the connection: after a
/// framing error the byte stream can no longer be trusted.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("connection closed in the middle of a message")]
    Truncated,
    #[error("invalid message length {0}")]
    BadLength(i64),
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads framed messages from one half of a connection.
pub struct MessageReader<R> {
    inner: R,
    buf: BytesMut,
    limit: usize,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        Self::with_buffer(inner, BytesMut::with_capacity(16 * 1024), limit)
    }

    /// Starts from bytes already read off the socket (during startup).
    pub fn with_buffer(inner: R, buf: BytesMut, limit: usize) -> Self {
        Self { inner, buf, limit }
    }

    /// Whether a complete message is already buffered, i.e. the next
    /// [`read`](Self::read) will not touch the socket. The relay flushes its
    /// output only when this is false, so a burst of messages costs one write.
    pub fn has_buffered_message(&self) -> bool {
        matches!(self.frame_len(), Ok(Some(n)) if self.buf.len() >= n)
    }

    fn frame_len(&self) -> Result<Option<usize>, FrameError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let declared = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        if declared < 4 {
            return Err(FrameError::BadLength(declared.into()));
        }
        let len = declared as usize + 1;
        if len > self.limit {
            return Err(FrameError::TooLarge {
                len,
                limit: self.limit,
            });
        }
        Ok(Some(len))
    }

    /// Reads the next message. Cancellation-safe.
    pub async fn read(&mut self) -> Result<Message, FrameError> {
        loop {
            if let Some(len) = self.frame_len()? {
                if self.buf.len() >= len {
                    return Ok(Message {
                        frame: self.buf.split_to(len).freeze(),
                    });
                }
                self.buf.reserve(len - self.buf.len());
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() {
                    FrameError::Closed
                } else {
                    FrameError::Truncated
                });
            }
        }
    }

    pub fn into_parts(self) -> (R, BytesMut) {
        (self.inner, self.buf)
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Reads one untagged startup-phase packet (StartupMessage, SSLRequest,
/// CancelRequest…): a length that includes itself, then the payload.
pub async fn read_startup_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Bytes, FrameError> {
    let mut len_bytes = [0u8; 4];
    match reader.read_exact(&mut len_bytes).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let declared = i32::from_be_bytes(len_bytes);
    if declared < 8 {
        return Err(FrameError::BadLength(declared.into()));
    }
    let len = declared as usize;
    if len > MAX_STARTUP_PACKET {
        return Err(FrameError::TooLarge {
            len,
            limit: MAX_STARTUP_PACKET,
        });
    }
    let mut payload = vec![0u8; len - 4];
    match reader.read_exact(&mut payload).await {
        Ok(_) => Ok(Bytes::from(payload)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(e.into()),
    }
}

/// A cursor over a message body for the few fields the relay reads.
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }

    /// A NUL-terminated string; `None` when the terminator is missing.
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let end = self.rest.iter().position(|&b| b == 0)?;
        let s = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        Some(s)
    }

    pub fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    pub fn i16(&mut self) -> Option<i16> {
        let bytes = self.take(2)?;
        Some(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub fn i32(&mut self) -> Option<i32> {
        let bytes = self.take(4)?;
        Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

/// Builds backend (server → client) messages that Airlock itself originates.
pub mod backend {
    use super::*;

    /// A frame with `tag` and the body `body` writes, its length filled in.
    pub fn frame(tag: u8, body: impl FnOnce(&mut BytesMut)) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u8(tag);
        buf.put_i32(0);
        body(&mut buf);
        let len = (buf.len() - 1) as i32;
        buf[1..5].copy_from_slice(&len.to_be_bytes());
        buf.freeze()
    }

    fn put_cstr(buf: &mut BytesMut, s: &str) {
        // A NUL inside would end the field early and desynchronise the client.
        buf.extend(s.bytes().filter(|&b| b != 0));
        buf.put_u8(0);
    }

    /// Severity of an ErrorResponse Airlock sends.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Severity {
        Error,
        Fatal,
    }

    /// An ErrorResponse. `code` is a SQLSTATE.
    pub fn error(severity: Severity, code: &str, message: &str, hint: Option<&str>) -> Bytes {
        let sev = match severity {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        };
        frame(b'E', |b| {
            b.put_u8(b'S');
            put_cstr(b, sev);
            b.put_u8(b'V');
            put_cstr(b, sev);
            b.put_u8(b'C');
            put_cstr(b, code);
            b.put_u8(b'M');
            put_cstr(b, message);
            if let Some(hint) = hint {
                b.put_u8(b'H');
                put_cstr(b, hint);
            }
            b.put_u8(0);
        })
    }

    /// A NoticeResponse with severity NOTICE.
    pub fn notice(message: &str) -> Bytes {
        frame(b'N', |b| {
            for (field, value) in [
                (b'S', "NOTICE"),
                (b'V', "NOTICE"),
                (b'C', "00000"),
                (b'M', message),
            ] {
                b.put_u8(field);
                put_cstr(b, value);
            }
            b.put_u8(0);
        })
    }

    pub fn ready_for_query(status: u8) -> Bytes {
        frame(b'Z', |b| b.put_u8(status))
    }

    pub fn authentication_ok() -> Bytes {
        frame(b'R', |b| b.put_i32(0))
    }

    pub fn authentication_sasl(mechanisms: &[&str]) -> Bytes {
        frame(b'R', |b| {
            b.put_i32(10);
            for m in mechanisms {
                put_cstr(b, m);
            }
            b.put_u8(0);
        })
    }

    pub fn authentication_sasl_continue(data: &[u8]) -> Bytes {
        frame(b'R', |b| {
            b.put_i32(11);
            b.extend_from_slice(data);
        })
    }

    pub fn authentication_sasl_final(data: &[u8]) -> Bytes {
        frame(b'R', |b| {
            b.put_i32(12);
            b.extend_from_slice(data);
        })
    }

    pub fn parameter_status(name: &str, value: &str) -> Bytes {
        frame(b'S', |b| {
            put_cstr(b, name);
            put_cstr(b, value);
        })
    }

    pub fn backend_key_data(pid: i32, secret: i32) -> Bytes {
        frame(b'K', |b| {
            b.put_i32(pid);
            b.put_i32(secret);
        })
    }

    /// NegotiateProtocolVersion: the newest minor version we speak and the
    /// protocol options (`_pq_.*`) we did not recognise.
    pub fn negotiate_protocol_version(minor: i32, unrecognised: &[String]) -> Bytes {
        frame(b'v', |b| {
            b.put_i32(minor);
            b.put_i32(unrecognised.len() as i32);
            for option in unrecognised {
                put_cstr(b, option);
            }
        })
    }
}

/// Builds the frontend (client → server) messages Airlock sends upstream on
/// its own behalf: its login, the reset before a connection is reused.
pub mod frontend {
    use super::*;

    pub fn startup(params: &[(String, String)]) -> Bytes {
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i32(0);
        buf.put_i32(196_608);
        for (k, v) in params {
            buf.extend_from_slice(k.as_bytes());
            buf.put_u8(0);
            buf.extend_from_slice(v.as_bytes());
            buf.put_u8(0);
        }
        buf.put_u8(0);
        let len = buf.len() as i32;
        buf[0..4].copy_from_slice(&len.to_be_bytes());
        buf.freeze()
    }

    pub fn ssl_request() -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&8i32.to_be_bytes());
        out[4..].copy_from_slice(&80_877_103i32.to_be_bytes());
        out
    }

    pub fn cancel_request(pid: i32, secret: i32) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&16i32.to_be_bytes());
        out[4..8].copy_from_slice(&80_877_102i32.to_be_bytes());
        out[8..12].copy_from_slice(&pid.to_be_bytes());
        out[12..].copy_from_slice(&secret.to_be_bytes());
        out
    }

    pub fn query(sql: &str) -> Bytes {
        let mut buf = BytesMut::with_capacity(sql.len() + 6);
        buf.put_u8(b'Q');
        buf.put_i32((sql.len() + 5) as i32);
        buf.extend_from_slice(sql.as_bytes());
        buf.put_u8(0);
        buf.freeze()
    }

    /// One statement through the extended protocol — Parse, Bind,
    /// Execute (all rows, text format) of the unnamed statement, and Sync
    /// — for Airlock's own queries that carry text it did not write: the
    /// server refuses a Parse that holds more than one statement, so no
    /// splitting mistake can make it run a second. `None` when `sql`
    /// contains a NUL (it would end the field early).
    pub fn extended_query(sql: &str) -> Option<Bytes> {
        extended_query_with(sql, &[])
    }

    /// [`extended_query`] with text parameters `$1`, `$2`, … : values are
    /// sent apart from the statement, never spliced into its text.
    pub fn extended_query_with(sql: &str, params: &[&str]) -> Option<Bytes> {
        if sql.as_bytes().contains(&0) {
            return None;
        }
        let message = |tag: u8, body: &[u8]| {
            let mut buf = BytesMut::with_capacity(body.len() + 5);
            buf.put_u8(tag);
            buf.put_i32((body.len() + 4) as i32);
            buf.extend_from_slice(body);
            buf.freeze()
        };
        let mut parse = BytesMut::with_capacity(sql.len() + 4);
        parse.put_u8(0); // unnamed statement
        parse.extend_from_slice(sql.as_bytes());
        parse.put_u8(0);
        parse.put_i16(0); // no parameter types
                          // Unnamed portal and statement, text parameters, text
                          // results.
        let mut bind = BytesMut::new();
        bind.put_u8(0);
        bind.put_u8(0);
        bind.put_i16(0);
        bind.put_i16(i16::try_from(params.len()).ok()?);
        for p in params {
            bind.put_i32(i32::try_from(p.len()).ok()?);
            bind.extend_from_slice(p.as_bytes());
        }
        bind.put_i16(0);
        // Unnamed portal, no row limit.
        let execute = [0u8, 0, 0, 0, 0];
        let mut out = BytesMut::new();
        out.extend_from_slice(&message(b'P', &parse));
        out.extend_from_slice(&message(b'B', &bind));
        out.extend_from_slice(&message(b'E', &execute));
        out.extend_from_slice(&sync());
        Some(out.freeze())
    }

    pub fn sync() -> Bytes {
        Bytes::from_static(&[b'S', 0, 0, 0, 4])
    }

    /// A password or SASL message (tag `p`) with an arbitrary body.
    pub fn password_message(body: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(body.len() + 5);
        buf.put_u8(b'p');
        buf.put_i32((body.len() + 4) as i32);
        buf.extend_from_slice(body);
        buf.freeze()
    }
}

/// Fields of an ErrorResponse or NoticeResponse body.
pub fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut fields = Fields::new(body);
    while let Some(code) = fields.u8() {
        if code == 0 {
            break;
        }
        match fields.cstr() {
            Some(v) => out.push((code, String::from_utf8_lossy(v).into_owned())),
            None => break,
        }
    }
    out
}

/// Writes buffered output and flushes. Kept here so both relay directions
/// share one definition of "send what we have".
pub async fn write_out<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    if out.has_remaining() {
        writer.write_all(out).await?;
        out.clear();
    }
    writer.flush().await
}
