//! An upstream that misbehaves: a compromised or broken server must not be
//! able to read files through the gateway, slip unreadable rows past
//! masking, or take other sessions down with it.
//!
//! The upstream here is a scripted server in the test (the real MariaDB
//! does none of this); the gateway and its client are real. The script
//! answers by the text of each query:
//!
//! - `SELECT 'infile'`: asks for `/etc/passwd` (LOCAL INFILE), although the
//!   capability was never negotiated — what a hostile server does to read
//!   the client host's files.
//! - `SELECT 'malformed'`: a row whose value claims more bytes than the
//!   packet has.
//! - `SELECT 'vanish'`: a column count, then the connection closes.
//! - `SELECT 'out of sequence'`: an OK with the wrong sequence id.
//! - anything else: one row, `fine`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock::proxy::mysql::handshake::{
    HandshakeResponse, OkPacket, ServerHandshake, CLIENT_DEPRECATE_EOF, CLIENT_LOCAL_FILES,
    DEFAULT_CLIENT, EOF_HEADER, ERR_HEADER, SUPPORTED,
};
use airlock::proxy::mysql::packet::{put_lenenc_bytes, Fields, Packet, PacketStream};
use airlock::proxy::mysql::upstream::{self, Upstream, UpstreamSettings};
use airlock::proxy::Stream;
use support::gateway::{Gateway, Options, AGENT, AGENT_PASSWORD};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted server saw, for the assertions.
#[derive(Default)]
struct Seen {
    /// The payloads that came back after a LOCAL INFILE request.
    infile_replies: Vec<Vec<u8>>,
}

async fn scripted_server(listener: TcpListener, seen: Arc<Mutex<Seen>>) {
    let mut id = 100;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        id += 1;
        tokio::spawn(serve_one(tcp, id, seen.clone()));
    }
}

async fn serve_one(tcp: TcpStream, id: u32, seen: Arc<Mutex<Seen>>) {
    let mut packets = PacketStream::new(Stream::Plain(tcp), 64 << 20);
    let greeting = ServerHandshake {
        server_version: b"8.0.99-scripted".to_vec(),
        connection_id: id,
        scramble: b"0123456789abcdefghij".to_vec(),
        capabilities: SUPPORTED | CLIENT_LOCAL_FILES,
        mariadb_capabilities: 0,
        charset: 45,
        status: 2,
        auth_plugin: b"mysql_native_password".to_vec(),
    };
    packets.write_with(|b| greeting.write(b));
    if packets.flush().await.is_err() {
        return;
    }
    let Ok(Some(login)) = packets.read().await else {
        return;
    };
    let Ok(response) = HandshakeResponse::parse(&login.payload) else {
        return;
    };
    let caps = response.capabilities;
    let ok = |affected: u64| OkPacket {
        affected_rows: affected,
        last_insert_id: 0,
        status: 2,
        warnings: 0,
        info: Vec::new(),
        session_state: None,
    };
    packets.write_with(|b| ok(0).write(b, caps, false));
    if packets.flush().await.is_err() {
        return;
    }
    loop {
        packets.reset();
        let Ok(Some(command)) = packets.read().await else {
            return;
        };
        let payload = &command.payload[..];
        match payload.first() {
            Some(0x01) | None => return,
            Some(0x03) => {}
            Some(_) => {
                packets.write_with(|b| ok(0).write(b, caps, false));
                if packets.flush().await.is_err() {
                    return;
                }
                continue;
            }
        }
        let sql = String::from_utf8_lossy(&payload[1..]).into_owned();
        if sql.contains("'infile'") {
            let mut request = vec![0xFB];
            request.extend_from_slice(b"/etc/passwd");
            packets.write_packet(&request);
            if packets.flush().await.is_err() {
                return;
            }
            // A client sends the file's contents, then an empty packet.
            loop {
                let Ok(Some(p)) = packets.read().await else {
                    return;
                };
                let empty = p.payload.is_empty();
                seen.lock().unwrap().infile_replies.push(p.payload.to_vec());
                if empty {
                    break;
                }
            }
            packets.write_with(|b| ok(0).write(b, caps, false));
        } else if sql.contains("'vanish'") {
            packets.write_packet(&[1]);
            let _ = packets.flush().await;
            return;
        } else if sql.contains("'out of sequence'") {
            packets.set_seq(7);
            packets.write_with(|b| ok(0).write(b, caps, false));
        } else {
            let value: &[u8] = if sql.contains("'malformed'") {
                // Claims 200 bytes, carries 5.
                b"\xC8bytes"
            } else {
                b"\x04fine"
            };
            packets.write_packet(&[1]);
            packets.write_with(|b| column_definition(b, "v"));
            if caps & CLIENT_DEPRECATE_EOF == 0 {
                packets.write_packet(&[EOF_HEADER, 0, 0, 2, 0]);
            }
            packets.write_packet(value);
            if caps & CLIENT_DEPRECATE_EOF == 0 {
                packets.write_packet(&[EOF_HEADER, 0, 0, 2, 0]);
            } else {
                packets.write_with(|b| ok(0).write(b, caps, true));
            }
        }
        if packets.flush().await.is_err() {
            return;
        }
    }
}

/// A VARCHAR column of utf8mb4 text.
fn column_definition(b: &mut bytes::BytesMut, name: &str) {
    for part in ["def", "scripted", "t", "t", name, name] {
        put_lenenc_bytes(b, part.as_bytes());
    }
    b.extend_from_slice(&[0x0c, 45, 0]);
    b.extend_from_slice(&255u32.to_le_bytes());
    b.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0]);
}

async fn client(gateway: &Gateway) -> Upstream {
    let mut settings = UpstreamSettings::new(gateway.mysql_addr.clone(), AGENT);
    settings.password = AGENT_PASSWORD.into();
    settings.capabilities = DEFAULT_CLIENT;
    upstream::connect(&settings)
        .await
        .expect("login through the gateway")
}

/// Sends a query and reads its reply up to the end of the first result set
/// (or an ERR, or a closed connection: `None` then ends the list).
async fn query(conn: &mut Upstream, sql: &str) -> Vec<Option<Packet>> {
    conn.packets.reset();
    conn.packets.write_with(|b| {
        b.extend_from_slice(&[0x03]);
        b.extend_from_slice(sql.as_bytes());
    });
    if conn.packets.flush().await.is_err() {
        return vec![None];
    }
    let mut got = Vec::new();
    let mut columns = None;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), conn.packets.read())
            .await
            .expect("a reply within 10 s");
        let Ok(Some(p)) = next else {
            got.push(None);
            return got;
        };
        let first = p.payload.first().copied();
        got.push(Some(p.clone()));
        match (columns, first) {
            (_, Some(ERR_HEADER)) => return got,
            (None, Some(0x00)) => return got,
            (None, _) => columns = Some(Fields::new(&p.payload).lenenc_int().unwrap_or(0)),
            (Some(_), Some(EOF_HEADER)) if p.payload.len() < 9 + 0xFF_FFFF => {
                let rows_started = got.len() > 2 + columns.unwrap_or(0) as usize;
                if rows_started || conn.capabilities & CLIENT_DEPRECATE_EOF != 0 {
                    return got;
                }
            }
            _ => {}
        }
    }
}

fn err_code(p: &Option<Packet>) -> Option<u16> {
    let p = p.as_ref()?;
    (p.payload.first() == Some(&ERR_HEADER))
        .then(|| u16::from_le_bytes([p.payload[1], p.payload[2]]))
}

fn last_row(reply: &[Option<Packet>]) -> Vec<u8> {
    // Column count, one definition, then the row (DEPRECATE_EOF).
    reply
        .get(2)
        .and_then(|p| p.as_ref())
        .map(|p| p.payload.to_vec())
        .unwrap_or_default()
}

async fn start() -> (Gateway, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    tokio::spawn(scripted_server(listener, seen.clone()));
    let gateway = tokio::task::spawn_blocking(move || {
        Gateway::start_with(Options {
            toml: format!(
                "[mysql]\nlisten = \"127.0.0.1:0\"\nupstream = \"mysql://scripted@127.0.0.1:{port}/scripted\"\n"
            ),
            ..Options::default()
        })
    })
    .await
    .expect("gateway");
    (gateway, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_asking_for_a_local_file_gets_none_and_the_client_an_error() {
    let (gateway, seen) = start().await;
    let mut conn = client(&gateway).await;
    assert_eq!(
        last_row(&query(&mut conn, "SELECT 'before'").await),
        b"\x04fine"
    );
    let reply = query(&mut conn, "SELECT 'infile'").await;
    assert_eq!(err_code(&reply[0]), Some(1148), "{reply:?}");
    let message = String::from_utf8_lossy(&reply[0].as_ref().unwrap().payload).into_owned();
    assert!(message.contains("LOCAL INFILE"), "{message}");
    // The server got an empty file: no byte of any file left the gateway.
    assert_eq!(seen.lock().unwrap().infile_replies, vec![Vec::<u8>::new()]);
    // And the session goes on.
    assert_eq!(
        last_row(&query(&mut conn, "SELECT 'after'").await),
        b"\x04fine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_row_reaches_the_client_as_nulls_never_as_sent() {
    let (gateway, _) = start().await;
    let mut conn = client(&gateway).await;
    let reply = query(&mut conn, "SELECT 'malformed'").await;
    // 0xFB is NULL in a text row.
    assert_eq!(last_row(&reply), vec![0xFB], "{reply:?}");
    assert_eq!(
        last_row(&query(&mut conn, "SELECT 'after'").await),
        b"\x04fine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_breaks_off_ends_that_session_only() {
    let (gateway, _) = start().await;
    let mut bystander = client(&gateway).await;
    for sql in ["SELECT 'vanish'", "SELECT 'out of sequence'"] {
        let mut conn = client(&gateway).await;
        let reply = query(&mut conn, sql).await;
        let err = reply.iter().find_map(err_code);
        assert_eq!(err, Some(2013), "{sql}: {reply:?}");
        // The session is over: the next read sees the connection closed.
        let after = query(&mut conn, "SELECT 'after'").await;
        assert!(
            after.iter().all(|p| p.is_none() || err_code(p).is_some()),
            "{sql}: {after:?}"
        );
        assert_eq!(
            last_row(&query(&mut bystander, "SELECT 'still here'").await),
            b"\x04fine",
            "after {sql}"
        );
    }
}
