//! Framing of MySQL protocol packets, and the field encodings used inside
//! their payloads.
//!
//! On the wire every packet is a 4-byte header — a 3-byte little-endian
//! payload length and a 1-byte sequence id — followed by the payload. A
//! payload of 16 MiB − 1 (`0xFFFFFF`) bytes or more is sent as several
//! chunks: every full chunk says "more follows", and the first shorter chunk
//! (possibly empty) ends the *logical* packet. [`PacketStream`] reads and
//! writes logical packets and checks the sequence ids, which count up from 0
//! at the start of each command across both directions: the server's first
//! reply continues the number after the client's request.
//!
//! This module owns bytes and framing only. It must never interpret what a
//! payload means (commands, results, authentication live in the sibling
//! modules), and it must never trust a length from the wire before checking
//! it against the configured limit.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest payload one chunk can carry; a chunk of exactly this length
/// announces a continuation.
pub const MAX_CHUNK: usize = 0xFF_FFFF;

const HEADER: usize = 4;

/// The least room the read buffer has before each read.
const READ_CHUNK: usize = 32 << 10;

/// Why a packet could not be read or a field could not be decoded. Framing
/// errors end the connection: after one, the byte stream cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("connection closed in the middle of a packet")]
    Truncated,
    #[error("packet out of sequence: expected id {expected}, got {got}")]
    SequenceMismatch { expected: u8, got: u8 },
    #[error("packet of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    /// A field inside a payload is cut short or invalid.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
}

/// One logical packet: the sequence id of its first chunk and the joined
/// payload. Forwarding it with [`PacketStream::forward`] keeps the id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub payload: Bytes,
}

/// Reads and writes logical packets on one connection, buffered both ways.
///
/// Writes only append to the output buffer; nothing reaches the socket
/// before [`flush`](Self::flush). That lets a relay answer a burst of
/// packets with one write, and lets handshake code build several packets
/// before a single round trip.
pub struct PacketStream<S> {
    io: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The sequence id the next chunk, read or written, must carry.
    seq: u8,
    limit: usize,
    /// Chunks of a multi-chunk packet consumed so far. Kept here, not on
    /// the stack of `read`, so that a cancelled read loses nothing.
    partial: Option<Partial>,
}

struct Partial {
    seq: u8,
    payload: BytesMut,
}

impl<S> PacketStream<S> {
    /// Wraps a connection. `limit` bounds one logical payload.
    pub fn new(io: S, limit: usize) -> Self {
        Self::with_buffer(io, BytesMut::with_capacity(16 * 1024), limit)
    }

    /// Starts from bytes already read off the connection.
    pub fn with_buffer(io: S, rbuf: BytesMut, limit: usize) -> Self {
        Self {
            io,
            rbuf,
            wbuf: BytesMut::with_capacity(16 * 1024),
            seq: 0,
            limit,
            partial: None,
        }
    }

    /// Starts a new command: the next packet, either way, carries id 0.
    pub fn reset(&mut self) {
        self.seq = 0;
    }

    /// The id the next packet read or written must carry.
    pub fn seq(&self) -> u8 {
        self.seq
    }

    /// Sets the next id; for relays whose two legs number packets apart.
    pub fn set_seq(&mut self, seq: u8) {
        self.seq = seq;
    }

    /// Changes the largest logical payload accepted from now on.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes written but not yet flushed.
    pub fn pending(&self) -> usize {
        self.wbuf.len()
    }

    /// Whether a read would return without touching the socket: a whole
    /// chunk that ends a packet is already buffered.
    pub fn has_buffered_packet(&self) -> bool {
        match header(&self.rbuf) {
            Some((len, _)) => len < MAX_CHUNK && self.rbuf.len() >= HEADER + len,
            None => false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Gives back the connection and the bytes read past the last packet,
    /// e.g. to start TLS. Unflushed output is dropped: flush first.
    pub fn into_parts(self) -> (S, BytesMut) {
        debug_assert!(self.wbuf.is_empty(), "into_parts with unflushed output");
        (self.io, self.rbuf)
    }

    /// Appends one logical packet, split into chunks as needed, numbered
    /// from the current sequence id.
    pub fn write_packet(&mut self, payload: &[u8]) {
        let mut rest = payload;
        loop {
            let n = rest.len().min(MAX_CHUNK);
            self.wbuf.reserve(HEADER + n);
            self.put_header(n);
            self.wbuf.put_slice(&rest[..n]);
            rest = &rest[n..];
            if n < MAX_CHUNK {
                return;
            }
        }
    }

    /// Appends a packet whose payload `build` writes straight into the
    /// output buffer, so building a reply costs no allocation of its own.
    pub fn write_with(&mut self, build: impl FnOnce(&mut BytesMut)) {
        let start = self.wbuf.len();
        self.wbuf.put_bytes(0, HEADER);
        build(&mut self.wbuf);
        let len = self.wbuf.len() - start - HEADER;
        if len < MAX_CHUNK {
            let seq = self.next_seq();
            self.wbuf[start..start + HEADER].copy_from_slice(&encode_header(len, seq));
        } else {
            // Rare (a 16 MiB reply): take the payload out and chunk it.
            let payload = self.wbuf.split_off(start + HEADER);
            self.wbuf.truncate(start);
            self.write_packet(&payload);
        }
    }

    /// Appends a packet read elsewhere, keeping its own sequence id; the
    /// counter continues after it.
    pub fn forward(&mut self, packet: &Packet) {
        self.seq = packet.seq;
        self.write_packet(&packet.payload);
    }

    fn put_header(&mut self, len: usize) {
        let seq = self.next_seq();
        self.wbuf.put_slice(&encode_header(len, seq));
    }

    fn next_seq(&mut self) -> u8 {
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        seq
    }
}

impl<S: AsyncWrite + Unpin> PacketStream<S> {
    /// Sends everything written so far.
    pub async fn flush(&mut self) -> Result<(), PacketError> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        self.io.flush().await?;
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> PacketStream<S> {
    /// Reads the next logical packet; `None` when the peer closed the
    /// connection between packets. Cancellation-safe.
    pub async fn read(&mut self) -> Result<Option<Packet>, PacketError> {
        loop {
            if let Some((len, got)) = header(&self.rbuf) {
                if got != self.seq {
                    return Err(PacketError::SequenceMismatch {
                        expected: self.seq,
                        got,
                    });
                }
                let so_far = self.partial.as_ref().map_or(0, |p| p.payload.len());
                // Checked on the header alone, before any of the payload
                // is buffered: a client cannot make us hold 16 MiB just by
                // announcing it.
                let total = so_far + len;
                if total > self.limit {
                    return Err(PacketError::TooLarge {
                        len: total,
                        limit: self.limit,
                    });
                }
                if self.rbuf.len() >= HEADER + len {
                    self.rbuf.advance(HEADER);
                    let chunk = self.rbuf.split_to(len);
                    self.seq = got.wrapping_add(1);
                    if let Some(packet) = self.take_chunk(got, chunk) {
                        return Ok(Some(packet));
                    }
                    continue;
                }
                self.rbuf.reserve(HEADER + len - self.rbuf.len());
            }
            // Read in large pieces: a result set is many small packets,
            // and a read per packet (or per 64 bytes, BytesMut's default
            // growth) costs a syscall and a wake-up each.
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK {
                self.rbuf.reserve(READ_CHUNK);
            }
            if self.io.read_buf(&mut self.rbuf).await? == 0 {
                if self.rbuf.is_empty() && self.partial.is_none() {
                    return Ok(None);
                }
                return Err(PacketError::Truncated);
            }
        }
    }

    /// Adds one chunk; the packet when it was the last one.
    fn take_chunk(&mut self, seq: u8, chunk: BytesMut) -> Option<Packet> {
        let full = chunk.len() == MAX_CHUNK;
        match (self.partial.take(), full) {
            // The common case: one chunk, handed out without a copy.
            (None, false) => Some(Packet {
                seq,
                payload: chunk.freeze(),
            }),
            (None, true) => {
                self.partial = Some(Partial {
                    seq,
                    payload: chunk,
                });
                None
            }
            (Some(mut p), full) => {
                p.payload.extend_from_slice(&chunk);
                if full {
                    self.partial = Some(p);
                    None
                } else {
                    Some(Packet {
                        seq: p.seq,
                        payload: p.payload.freeze(),
                    })
                }
            }
        }
    }
}

fn header(buf: &[u8]) -> Option<(usize, u8)> {
    match buf {
        [a, b, c, seq, ..] => Some((u32::from_le_bytes([*a, *b, *c, 0]) as usize, *seq)),
        _ => None,
    }
}

fn encode_header(len: usize, seq: u8) -> [u8; HEADER] {
    debug_assert!(len <= MAX_CHUNK);
    let l = (len as u32).to_le_bytes();
    [l[0], l[1], l[2], seq]
}

/// A cursor over a payload. Every getter returns an error rather than
/// panicking when the payload is cut short: payloads come from the network.
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// Everything left, consumed.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], PacketError> {
        if self.buf.len() < n {
            return Err(PacketError::Malformed("field runs past the end"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], PacketError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, PacketError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, PacketError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u24(&mut self) -> Result<u32, PacketError> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    pub fn u32(&mut self) -> Result<u32, PacketError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, PacketError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A length-encoded integer. `0xFB` (NULL in a row) and `0xFF` (an
    /// error packet's marker) are not integers and are refused here.
    pub fn lenenc_int(&mut self) -> Result<u64, PacketError> {
        match self.u8()? {
            n @ 0..=0xFA => Ok(n.into()),
            0xFC => Ok(self.u16()?.into()),
            0xFD => Ok(self.u24()?.into()),
            0xFE => self.u64(),
            _ => Err(PacketError::Malformed("invalid length-encoded integer")),
        }
    }

    /// A length-encoded string.
    pub fn lenenc_bytes(&mut self) -> Result<&'a [u8], PacketError> {
        let len = self.lenenc_int()?;
        let len = usize::try_from(len)
            .map_err(|_| PacketError::Malformed("length-encoded string too long"))?;
        self.bytes(len)
    }

    /// A NUL-terminated string, without its terminator.
    pub fn nul_bytes(&mut self) -> Result<&'a [u8], PacketError> {
        let end = memchr::memchr(0, self.buf)
            .ok_or(PacketError::Malformed("string without its NUL terminator"))?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// A NUL-terminated string, or the rest when the terminator is missing
    /// (servers are known to omit it on the last field of a packet).
    pub fn nul_bytes_or_rest(&mut self) -> &'a [u8] {
        match memchr::memchr(0, self.buf) {
            Some(end) => {
                let s = &self.buf[..end];
                self.buf = &self.buf[end + 1..];
                s
            }
            None => self.rest(),
        }
    }
}

/// Appends a length-encoded integer.
pub fn put_lenenc_int(buf: &mut impl BufMut, n: u64) {
    match n {
        0..=0xFA => buf.put_u8(n as u8),
        0xFB..=0xFFFF => {
            buf.put_u8(0xFC);
            buf.put_u16_le(n as u16);
        }
        0x1_0000..=0xFF_FFFF => {
            buf.put_u8(0xFD);
            let b = (n as u32).to_le_bytes();
            buf.put_slice(&b[..3]);
        }
        _ => {
            buf.put_u8(0xFE);
            buf.put_u64_le(n);
        }
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_bytes(buf: &mut impl BufMut, s: &[u8]) {
    put_lenenc_int(buf, s.len() as u64);
    buf.put_slice(s);
}

/// The values of a text-protocol row as text (lossily: for the audit
/// capture and the impact estimate, never for relaying).
pub fn text_values(row: &[u8]) -> Vec<Option<String>> {
    let mut values = Vec::new();
    let mut f = Fields::new(row);
    while !f.is_empty() {
        if f.peek_u8() == Some(0xFB) {
            let _ = f.u8();
            values.push(None);
            continue;
        }
        match f.lenenc_bytes() {
            Ok(v) => values.push(Some(String::from_utf8_lossy(v).into_owned())),
            Err(_) => break,
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{duplex, DuplexStream};

    const BIG: usize = 64 * 1024 * 1024;

    fn pair(limit: usize) -> (PacketStream<DuplexStream>, PacketStream<DuplexStream>) {
        let (a, b) = duplex(64 * 1024);
        (PacketStream::new(a, limit), PacketStream::new(b, limit))
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Writes `payload` from one end (in a task, as the duplex pipe is
    /// small) and reads it back at the other.
    async fn roundtrip(len: usize) -> (Packet, u8, Vec<u8>) {
        let (mut w, mut r) = pair(BIG);
        let payload = pattern(len);
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            w.write_packet(&sent);
            let wire = w.wbuf.clone().to_vec();
            w.flush().await.map(|()| wire)
        });
        let packet = r.read().await.unwrap().unwrap();
        let wire = writer.await.unwrap().unwrap();
        assert_eq!(packet.payload.len(), payload.len());
        assert!(packet.payload[..] == payload[..]);
        (packet, r.seq(), wire)
    }

    /// The (length, id) of every chunk header in `wire`.
    fn chunks(wire: &[u8]) -> Vec<(usize, u8)> {
        let mut out = Vec::new();
        let mut rest = wire;
        while let Some((len, seq)) = header(rest) {
            out.push((len, seq));
            rest = &rest[HEADER + len..];
        }
        assert!(rest.is_empty());
        out
    }

    #[tokio::test]
    async fn empty_packet_is_one_empty_chunk() {
        let (p, next, wire) = roundtrip(0).await;
        assert_eq!(p.seq, 0);
        assert_eq!(next, 1);
        assert_eq!(wire, [0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn small_packet() {
        let (p, next, wire) = roundtrip(5).await;
        assert_eq!((p.seq, next), (0, 1));
        assert_eq!(chunks(&wire), [(5, 0)]);
    }

    #[tokio::test]
    async fn exactly_one_full_chunk_needs_an_empty_trailer() {
        let (p, next, wire) = roundtrip(MAX_CHUNK).await;
        assert_eq!((p.seq, next), (0, 2));
        assert_eq!(chunks(&wire), [(MAX_CHUNK, 0), (0, 1)]);
    }

    #[tokio::test]
    async fn one_byte_over_a_chunk() {
        let (p, next, wire) = roundtrip(MAX_CHUNK + 1).await;
        assert_eq!((p.seq, next), (0, 2));
        assert_eq!(chunks(&wire), [(MAX_CHUNK, 0), (1, 1)]);
    }

    #[tokio::test]
    async fn two_full_chunks() {
        let (p, next, wire) = roundtrip(2 * MAX_CHUNK).await;
        assert_eq!((p.seq, next), (0, 3));
        assert_eq!(chunks(&wire), [(MAX_CHUNK, 0), (MAX_CHUNK, 1), (0, 2)]);
    }

    #[tokio::test]
    async fn write_with_matches_write_packet_and_splits_big_payloads() {
        for len in [0, 7, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 3] {
            let (a, _b) = duplex(8);
            let mut s1 = PacketStream::new(a, BIG);
            s1.set_seq(250);
            s1.write_packet(&pattern(len));
            let (a, _b) = duplex(8);
            let mut s2 = PacketStream::new(a, BIG);
            s2.set_seq(250);
            s2.write_with(|buf| buf.extend_from_slice(&pattern(len)));
            assert!(s1.wbuf == s2.wbuf, "len {len}");
            assert_eq!(s1.seq(), s2.seq());
        }
    }

    #[tokio::test]
    async fn replies_continue_the_request_sequence() {
        let (mut client, mut server) = pair(1024);
        client.reset();
        client.write_packet(b"\x03SELECT 1");
        client.flush().await.unwrap();
        server.reset();
        let req = server.read().await.unwrap().unwrap();
        assert_eq!(req.seq, 0);
        server.write_packet(b"\x01");
        server.write_packet(b"col");
        server.flush().await.unwrap();
        assert_eq!(client.read().await.unwrap().unwrap().seq, 1);
        assert_eq!(client.read().await.unwrap().unwrap().seq, 2);
        assert_eq!(client.seq(), 3);
    }

    #[tokio::test]
    async fn forward_keeps_the_packet_id_and_ids_wrap() {
        let (mut a, mut b) = pair(1024);
        a.forward(&Packet {
            seq: 255,
            payload: Bytes::from_static(b"x"),
        });
        a.write_packet(b"y");
        a.flush().await.unwrap();
        b.set_seq(255);
        assert_eq!(b.read().await.unwrap().unwrap().seq, 255);
        let next = b.read().await.unwrap().unwrap();
        assert_eq!((next.seq, &next.payload[..]), (0, &b"y"[..]));
    }

    #[tokio::test]
    async fn wrong_sequence_id_names_both() {
        let (mut raw, b) = duplex(1024);
        let mut r = PacketStream::new(b, 1024);
        raw.write_all(&[1, 0, 0, 3, b'x']).await.unwrap();
        match r.read().await {
            Err(PacketError::SequenceMismatch {
                expected: 0,
                got: 3,
            }) => {}
            other => panic!("{other:?}"),
        }
        let e = PacketError::SequenceMismatch {
            expected: 0,
            got: 3,
        };
        assert_eq!(
            e.to_string(),
            "packet out of sequence: expected id 0, got 3"
        );
    }

    #[tokio::test]
    async fn continuation_with_wrong_id_is_refused() {
        let (mut raw, b) = duplex(1024);
        let mut r = PacketStream::new(b, BIG);
        let writer = tokio::spawn(async move {
            raw.write_all(&encode_header(MAX_CHUNK, 0)).await?;
            raw.write_all(&pattern(MAX_CHUNK)).await?;
            raw.write_all(&encode_header(0, 7)).await?;
            Ok::<_, std::io::Error>(raw)
        });
        match r.read().await {
            Err(PacketError::SequenceMismatch {
                expected: 1,
                got: 7,
            }) => {}
            other => panic!("{other:?}"),
        }
        drop(writer.await);
    }

    #[tokio::test]
    async fn oversized_header_is_refused_before_the_payload() {
        let (mut raw, b) = duplex(1024);
        let mut r = PacketStream::new(b, 1000);
        // Only the header is ever sent: the reader must not wait for the
        // payload to decide.
        raw.write_all(&encode_header(1001, 0)).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), r.read())
            .await
            .expect("the reader waited for the payload");
        match got {
            Err(
                e @ PacketError::TooLarge {
                    len: 1001,
                    limit: 1000,
                },
            ) => assert_eq!(
                e.to_string(),
                "packet of 1001 bytes exceeds the limit of 1000"
            ),
            other => panic!("{other:?}"),
        }
        drop(raw);
    }

    #[tokio::test]
    async fn limit_counts_the_joined_payload() {
        let (mut raw, b) = duplex(1024);
        let mut r = PacketStream::new(b, MAX_CHUNK + 10);
        let writer = tokio::spawn(async move {
            raw.write_all(&encode_header(MAX_CHUNK, 0)).await?;
            raw.write_all(&pattern(MAX_CHUNK)).await?;
            raw.write_all(&encode_header(11, 1)).await?;
            Ok::<_, std::io::Error>(raw)
        });
        let got = tokio::time::timeout(Duration::from_secs(20), r.read())
            .await
            .expect("the reader waited for the payload");
        assert!(matches!(got, Err(PacketError::TooLarge { len, .. }) if len == MAX_CHUNK + 11));
        drop(writer.await);
    }

    #[tokio::test]
    async fn eof_between_packets_is_none() {
        let (mut raw, b) = duplex(1024);
        let mut r = PacketStream::new(b, 1024);
        raw.write_all(&[2, 0, 0, 0, b'h', b'i']).await.unwrap();
        drop(raw);
        assert_eq!(&r.read().await.unwrap().unwrap().payload[..], b"hi");
        assert!(r.read().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn eof_mid_header_is_an_error() {
        let (mut raw, b) = duplex(1024);
        let mut r = PacketStream::new(b, 1024);
        raw.write_all(&[5, 0]).await.unwrap();
        drop(raw);
        assert!(matches!(r.read().await, Err(PacketError::Truncated)));
    }

    #[tokio::test]
    async fn eof_mid_payload_is_an_error() {
        let (mut raw, b) = duplex(1024);
        let mut r = PacketStream::new(b, 1024);
        raw.write_all(&[5, 0, 0, 0, b'a', b'b']).await.unwrap();
        drop(raw);
        assert!(matches!(r.read().await, Err(PacketError::Truncated)));
    }

    #[tokio::test]
    async fn eof_between_chunks_is_an_error() {
        let (mut raw, b) = duplex(1024);
        let mut r = PacketStream::new(b, BIG);
        tokio::spawn(async move {
            raw.write_all(&encode_header(MAX_CHUNK, 0)).await?;
            raw.write_all(&pattern(MAX_CHUNK)).await
        });
        assert!(matches!(r.read().await, Err(PacketError::Truncated)));
    }

    #[tokio::test]
    async fn a_cancelled_read_loses_nothing() {
        let (mut raw, b) = duplex(1024);
        let mut r = PacketStream::new(b, 1024);
        raw.write_all(&[3, 0, 0, 0, b'a']).await.unwrap();
        let first = tokio::time::timeout(Duration::from_millis(50), r.read()).await;
        assert!(first.is_err(), "the packet is not complete yet");
        assert!(!r.has_buffered_packet());
        raw.write_all(b"bc").await.unwrap();
        assert_eq!(&r.read().await.unwrap().unwrap().payload[..], b"abc");
    }

    #[test]
    fn lenenc_round_trip_at_every_boundary() {
        for n in [
            0u64,
            0xFA,
            0xFB,
            0xFFFF,
            0x1_0000,
            0xFF_FFFF,
            0x100_0000,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_lenenc_int(&mut buf, n);
            let mut f = Fields::new(&buf);
            assert_eq!(f.lenenc_int().unwrap(), n);
            assert!(f.is_empty());
        }
        assert!(Fields::new(&[0xFB]).lenenc_int().is_err());
        assert!(Fields::new(&[0xFF]).lenenc_int().is_err());
        assert!(Fields::new(&[0xFC, 1]).lenenc_int().is_err());
    }

    #[test]
    fn fields_refuse_short_input() {
        let mut f = Fields::new(b"\x05abc");
        assert!(f.clone().lenenc_bytes().is_err());
        assert!(f.u32().is_ok());
        assert!(f.u8().is_err());
        assert!(Fields::new(b"no terminator").nul_bytes().is_err());
        let mut f = Fields::new(b"ab\0cd");
        assert_eq!(f.nul_bytes().unwrap(), b"ab");
        assert_eq!(f.nul_bytes_or_rest(), b"cd");
        assert!(f.is_empty());
        // A huge declared length must fail, not allocate or panic.
        let mut buf = vec![0xFE];
        buf.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(Fields::new(&buf).lenenc_bytes().is_err());
    }
}
