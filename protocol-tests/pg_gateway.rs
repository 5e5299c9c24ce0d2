//! The Postgres gateway's own behaviour, driven through the real binary:
//! zero-config start, configuration errors, login, side doors, bad input,
//! cancel, pooling, upstream failures and shutdown.

mod support;

use std::time::{Duration, Instant};
use support::gateway::{
    psql_direct, psql_through, write, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD,
};
use support::wire::{server_error, Frontend, Wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn login(gateway: &Gateway, database: &str) -> Wire {
    Wire::connect(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        database,
        &[("application_name", "protocol-tests")],
    )
    .await
    .expect("login through airlock")
}

/// Reads what the server sends until it closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("server closes the connection");
    out
}

/// The SQLSTATE of the first ErrorResponse in raw backend bytes.
fn sqlstate_in(bytes: &[u8]) -> Option<String> {
    let start = bytes.iter().position(|&b| b == b'E')?;
    let body = &bytes[start + 5..];
    let mut fields = body.split(|&b| b == 0);
    fields.find_map(|f| {
        f.strip_prefix(b"C")
            .map(|c| String::from_utf8_lossy(c).into_owned())
    })
}

fn message_in(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---- running with zero configuration ---------------------------------------

#[test]
fn zero_config_serve_prints_how_to_connect_and_keeps_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "AIRLOCK_POSTGRES_LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        (
            "AIRLOCK_INBOX_LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        (
            "AIRLOCK_MYSQL_LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
    ];
    let gateway = Gateway::spawn(dir, &["serve"], &env);
    assert!(
        gateway
            .stdout
            .contains("upstream 127.0.0.1:5432 database test"),
        "{}",
        gateway.stdout
    );
    let password_file = gateway.path("var/dev-identity");
    let password = std::fs::read_to_string(&password_file).unwrap();
    assert!(
        gateway.stdout.contains(&format!(
            "postgresql://agent:{password}@{}/test",
            gateway.addr
        )),
        "{}",
        gateway.stdout
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&password_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let out = psql_through(
        &gateway.addr,
        "agent",
        &password,
        "test",
        &["-c", "SELECT 40 + 2"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "42");

    // A restart with the same state directory keeps the same password.
    let DirOnly { dir } = gateway_into_dir(gateway);
    let again = Gateway::spawn(dir, &["serve"], &env);
    assert_eq!(
        std::fs::read_to_string(again.path("var/dev-identity")).unwrap(),
        password
    );
}

/// Stops a gateway but keeps its directory for the next one.
fn gateway_into_dir(mut gateway: Gateway) -> DirOnly {
    gateway.terminate(Duration::from_secs(10));
    let dir = std::mem::replace(&mut gateway.dir, tempfile::tempdir().unwrap());
    DirOnly { dir }
}

struct DirOnly {
    dir: tempfile::TempDir,
}

#[test]
fn config_check_names_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.toml", "[postgres]\npool_size = \"lots\"\n");
    let out = std::process::Command::new(support::gateway::binary())
        .args(["config", "check", &bad])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("{bad}: key `postgres.pool_size`: invalid type")),
        "{err}"
    );

    let unknown = write(
        dir.path(),
        "unknown.toml",
        "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nrequire = true\nciphers = 3\n",
    );
    let out = std::process::Command::new(support::gateway::binary())
        .args(["config", "check", &unknown])
        .output()
        .unwrap();
    assert!(
        stderr_of(&out).contains("key `tls.ciphers`: unknown field"),
        "{}",
        stderr_of(&out)
    );

    let good = write(dir.path(), "good.toml", "[postgres]\npool_size = 4\n[[identity]]\nname = \"a\"\nrole = \"agent\"\npassword = \"x\"\n");
    let out = std::process::Command::new(support::gateway::binary())
        .args(["config", "check", &good])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("OK"));
    // The default policy holds for group dba, and nobody here can approve.
    assert!(
        stdout_of(&out).contains("warning: hold group \"dba\" has nobody who can approve"),
        "{}",
        stdout_of(&out)
    );

    // An approver who cannot sign in, and no agent: both said.
    let lonely = write(
        dir.path(),
        "lonely.toml",
        "[[identity]]\nname = \"ann\"\nrole = \"approver\"\ngroups = [\"dba\"]\npassword = \"x\"\n",
    );
    let out = std::process::Command::new(support::gateway::binary())
        .args(["config", "check", &lonely])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = stdout_of(&out);
    assert!(said.contains("no identity has role \"agent\""), "{said}");
    assert!(
        said.contains("identity \"ann\" (approver) cannot sign in"),
        "{said}"
    );

    // Serving with a bad file fails the same way, before listening.
    let out = std::process::Command::new(support::gateway::binary())
        .args(["serve", "--config", &bad])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("key `postgres.pool_size`"));

    // So does a bad override, naming the variable.
    let out = std::process::Command::new(support::gateway::binary())
        .args(["serve", "--config", &good])
        .env("AIRLOCK_POSTGRES_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(
        stderr_of(&out)
            .contains("environment variable AIRLOCK_POSTGRES_LISTEN: key `postgres.listen`"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn identity_hash_prints_a_verifier_agents_can_log_in_with() {
    let mut child = std::process::Command::new(support::gateway::binary())
        .args(["identity", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let verifier = stdout_of(&out);
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    assert!(!verifier.contains("correct horse"));

    let gateway = Gateway::start_with(Options {
        toml: format!(
            "[[identity]]\nname = \"hashed\"\nrole = \"agent\"\nscram_verifier = \"{verifier}\"\n"
        ),
        ..Default::default()
    });
    let out = psql_through(
        &gateway.addr,
        "hashed",
        "correct horse",
        "test",
        &["-c", "SELECT current_user IS NOT NULL"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = psql_through(
        &gateway.addr,
        "hashed",
        "wrong horse",
        "test",
        &["-c", "SELECT 1"],
    );
    assert!(!out.status.success());
}

// ---- login -------------------------------------------------------------------

#[tokio::test]
async fn wrong_password_and_unknown_user_both_get_28p01_and_are_logged() {
    let gateway = Gateway::start();
    for (user, password) in [(AGENT, "not-the-password"), ("nobody", AGENT_PASSWORD)] {
        let err = Wire::connect(&gateway.addr, user, password, "test", &[])
            .await
            .err()
            .expect("login must fail");
        let server =
            server_error(&err).unwrap_or_else(|| panic!("expected an ErrorResponse, got {err}"));
        assert_eq!(server.code(), "28P01");
        assert_eq!(server.severity(), "FATAL");
        assert_eq!(
            server.message(),
            format!("password authentication failed for user \"{user}\"")
        );
    }
    let log = gateway.stderr();
    assert!(
        log.contains("authentication failed") && log.contains("nobody"),
        "{log}"
    );
    assert!(
        !log.contains("not-the-password"),
        "the log must never hold a password"
    );
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_locked_out() {
    let gateway = Gateway::start_with(Options {
        toml: "[auth]\nmax_failures = 3\nlockout_secs = 60\n".into(),
        ..Default::default()
    });
    for _ in 0..3 {
        let err = Wire::connect(&gateway.addr, AGENT, "wrong", "test", &[])
            .await
            .err()
            .unwrap();
        assert_eq!(server_error(&err).unwrap().code(), "28P01");
    }
    // Even the right password is refused while the address is locked out.
    let err = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, "test", &[])
        .await
        .err()
        .unwrap();
    let server = server_error(&err).unwrap();
    assert_eq!(server.code(), "28000");
    assert!(
        server.message().contains("too many failed logins"),
        "{}",
        server.message()
    );
}

#[tokio::test]
async fn agents_never_see_the_upstream_backend_key_or_credentials() {
    let gateway = Gateway::start();
    let mut wire = login(&gateway, "test").await;
    let rows = wire.simple_query("SELECT pg_backend_pid()").await.unwrap();
    let pid: i32 = rows
        .iter()
        .find_map(|m| m.data_row())
        .map(|r| {
            String::from_utf8(r[0].clone().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .unwrap();
    // The client is told the server's pid (pg_stat_activity and NOTIFY
    // agree with it), with a secret of Airlock's: the key it holds cancels
    // nothing when sent to the server directly.
    let (key_pid, secret) = wire.backend_key();
    assert_eq!(key_pid, pid, "the client sees its backend's pid");
    wire.send(Frontend::query("SELECT pg_sleep(1)"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut cancel = TcpStream::connect(support::gateway::UPSTREAM_ADDR)
        .await
        .unwrap();
    let request = [
        &16i32.to_be_bytes()[..],
        &80_877_102i32.to_be_bytes()[..],
        &key_pid.to_be_bytes()[..],
        &secret.to_be_bytes()[..],
    ]
    .concat();
    cancel.write_all(&request).await.unwrap();
    let _ = read_to_close(&mut cancel).await;
    let replies = wire.recv_until_ready().await.unwrap();
    assert!(
        !replies.iter().any(|m| m.is_error()),
        "the client's key is the server's own: {replies:?}"
    );
    // The session runs upstream as Airlock's service login, not as the agent.
    let rows = wire.simple_query("SELECT current_user").await.unwrap();
    let user = rows.iter().find_map(|m| m.data_row()).unwrap();
    assert_eq!(user[0].as_deref(), Some(&b"postgres"[..]));
    // The upstream's own ParameterStatus values reach the client.
    assert!(
        wire.params()
            .get("server_version")
            .is_some_and(|v| !v.contains("pgwire")),
        "{:?}",
        wire.params()
    );
}

// ---- side doors -------------------------------------------------------------

#[tokio::test]
async fn startup_options_and_replication_are_refused() {
    let gateway = Gateway::start();
    let err = Wire::connect(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        "test",
        &[("options", "-c role=pg_read_server_files")],
    )
    .await
    .err()
    .unwrap();
    let server = server_error(&err).unwrap();
    assert_eq!(server.code(), "42501");
    assert!(server.message().contains("options"), "{}", server.message());

    for mode in ["database", "true"] {
        let err = Wire::connect(
            &gateway.addr,
            AGENT,
            AGENT_PASSWORD,
            "test",
            &[("replication", mode)],
        )
        .await
        .err()
        .unwrap();
        assert_eq!(server_error(&err).unwrap().code(), "42501");
    }
}

#[tokio::test]
async fn only_allowlisted_startup_parameters_reach_the_upstream() {
    let gateway = Gateway::start();
    let mut wire = Wire::connect(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        "test",
        &[
            ("application_name", "allowlist-check"),
            ("TimeZone", "Asia/Tokyo"),
            ("work_mem", "77MB"),
            ("session_authorization", "nobody"),
        ],
    )
    .await
    .unwrap();
    let show = |rows: Vec<support::wire::BackendMsg>| {
        rows.iter()
            .find_map(|m| m.data_row())
            .map(|r| String::from_utf8(r[0].clone().unwrap()).unwrap())
            .unwrap()
    };
    // Behind the prefix that names the agent's session in the server's logs.
    let name = show(wire.simple_query("SHOW application_name").await.unwrap());
    assert!(
        name.starts_with("airlock:agent:s-") && name.ends_with(":allowlist-check"),
        "{name}"
    );
    assert_eq!(
        show(wire.simple_query("SHOW TimeZone").await.unwrap()),
        "Asia/Tokyo"
    );
    assert_ne!(
        show(wire.simple_query("SHOW work_mem").await.unwrap()),
        "77MB"
    );
    assert!(
        gateway.stderr().contains("work_mem"),
        "dropped parameters are logged"
    );
}

#[tokio::test]
async fn fastpath_function_calls_are_refused_and_the_session_goes_on() {
    let gateway = Gateway::start();
    let mut wire = login(&gateway, "test").await;
    // lo_creat(0): OID 957.
    wire.send(Frontend::function_call(
        957,
        &[],
        vec![Some(0i32.to_be_bytes().to_vec())],
        0,
    ))
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    let error = replies
        .iter()
        .find(|m| m.is_error())
        .expect("an ErrorResponse");
    assert_eq!(error.sqlstate().as_deref(), Some("42501"));
    assert!(error.fields().unwrap()[&b'M'].contains("fastpath"));
    assert_eq!(replies.last().unwrap().ready_status(), Some(b'I'));
    let rows = wire.simple_query("SELECT 1").await.unwrap();
    assert!(rows.iter().any(|m| m.data_row().is_some()));
}

#[test]
fn psql_lo_import_fails_cleanly() {
    let gateway = Gateway::start();
    let file = write(gateway.dir.path(), "blob.txt", "large object");
    let out = psql_through(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        "test",
        &["-c", &format!("\\lo_import {file}")],
    );
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("fastpath"), "{}", stderr_of(&out));
}

// ---- bad input --------------------------------------------------------------

#[tokio::test]
async fn garbage_and_malformed_startup_packets_get_a_protocol_error() {
    let gateway = Gateway::start();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "http request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("length too small", vec![0, 0, 0, 2, 0, 3, 0, 0]),
        (
            "length too large",
            [&100_000i32.to_be_bytes()[..], &[0u8; 64]].concat(),
        ),
        (
            "unknown protocol",
            [&8i32.to_be_bytes()[..], &0x0009_0000i32.to_be_bytes()[..]].concat(),
        ),
        (
            "no terminator",
            [
                &17i32.to_be_bytes()[..],
                &196_608i32.to_be_bytes()[..],
                b"user\0agent",
            ]
            .concat(),
        ),
        (
            "tls hello without tls",
            vec![0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3],
        ),
    ];
    for (name, bytes) in cases {
        let mut stream = TcpStream::connect(&gateway.addr).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        let reply = read_to_close(&mut stream).await;
        let code = sqlstate_in(&reply);
        assert!(
            matches!(code.as_deref(), Some("08P01") | Some("0A000")),
            "{name}: got {:?}",
            message_in(&reply)
        );
    }
    // The gateway keeps serving.
    let mut wire = login(&gateway, "test").await;
    assert!(wire.simple_query("SELECT 1").await.is_ok());
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_startup_timeout() {
    let gateway = Gateway::start_with(Options {
        toml: "[server]\nstartup_timeout_secs = 1\n".into(),
        ..Default::default()
    });
    let mut stream = TcpStream::connect(&gateway.addr).await.unwrap();
    let started = Instant::now();
    read_to_close(&mut stream).await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn oversized_unknown_and_truncated_messages_close_only_that_session() {
    let gateway = Gateway::start_with(Options {
        toml: "[postgres]\nlisten = \"127.0.0.1:0\"\nmax_message_bytes = 4096\n".into(),
        ..Default::default()
    });
    let mut bystander = login(&gateway, "test").await;
    bystander.simple_query("BEGIN").await.unwrap();

    // A Query larger than max_message_bytes: FATAL 08P01 before the body is read.
    let mut wire = login(&gateway, "test").await;
    let header = [&[b'Q'][..], &(10_000_000i32).to_be_bytes()[..]].concat();
    wire.send_raw(&header).await.unwrap();
    let reply = wire.recv().await.unwrap();
    assert_eq!(reply.sqlstate().as_deref(), Some("08P01"));
    assert!(reply.fields().unwrap()[&b'M'].contains("max_message_bytes"));
    assert!(
        wire.recv_or_eof().await.unwrap().is_none(),
        "connection closed"
    );

    // An unknown message type.
    let mut wire = login(&gateway, "test").await;
    wire.send_raw(&[b'!', 0, 0, 0, 4]).await.unwrap();
    let reply = wire.recv().await.unwrap();
    assert_eq!(reply.sqlstate().as_deref(), Some("08P01"));

    // A negative length.
    let mut wire = login(&gateway, "test").await;
    wire.send_raw(&[b'Q', 0xff, 0xff, 0xff, 0xf0])
        .await
        .unwrap();
    assert_eq!(
        wire.recv().await.unwrap().sqlstate().as_deref(),
        Some("08P01")
    );

    // A Query that is not NUL-terminated.
    let mut wire = login(&gateway, "test").await;
    wire.send_raw(&[
        b'Q', 0, 0, 0, 12, b'S', b'E', b'L', b'E', b'C', b'T', b' ', b'1',
    ])
    .await
    .unwrap();
    assert_eq!(
        wire.recv().await.unwrap().sqlstate().as_deref(),
        Some("08P01")
    );

    // Half a message, then the client shuts its write side.
    let mut stream = TcpStream::connect(&gateway.addr).await.unwrap();
    drop(stream.write_all(b"\0\0").await);
    stream.shutdown().await.unwrap();
    read_to_close(&mut stream).await;

    // The bystander's transaction is untouched.
    let rows = bystander.simple_query("SELECT 7").await.unwrap();
    assert_eq!(rows.last().unwrap().ready_status(), Some(b'T'));
    bystander.simple_query("COMMIT").await.unwrap();
}

#[tokio::test]
async fn password_messages_after_login_are_a_protocol_violation() {
    let gateway = Gateway::start();
    let mut wire = login(&gateway, "test").await;
    wire.send_raw(&[b'p', 0, 0, 0, 8, b'p', b'w', b'd', 0])
        .await
        .unwrap();
    assert_eq!(
        wire.recv().await.unwrap().sqlstate().as_deref(),
        Some("08P01")
    );
}

#[tokio::test]
async fn oversized_sasl_messages_are_refused() {
    let gateway = Gateway::start();
    let mut stream = TcpStream::connect(&gateway.addr).await.unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608i32.to_be_bytes());
    startup.extend_from_slice(b"user\0agent\0database\0test\0\0");
    let len = (startup.len() + 4) as i32;
    stream
        .write_all(&[&len.to_be_bytes()[..], &startup].concat())
        .await
        .unwrap();
    let mut sasl = [0u8; 64];
    let _ = stream.read(&mut sasl).await.unwrap();
    stream
        .write_all(&[&[b'p'][..], &(1_000_000i32).to_be_bytes()[..]].concat())
        .await
        .unwrap();
    let reply = read_to_close(&mut stream).await;
    assert_eq!(
        sqlstate_in(&reply).as_deref(),
        Some("08P01"),
        "{}",
        message_in(&reply)
    );
}

// ---- cancel -----------------------------------------------------------------

#[tokio::test]
async fn a_cancelled_pg_sleep_ends_within_a_second() {
    let gateway = Gateway::start();
    let mut wire = login(&gateway, "test").await;
    let (pid, secret) = wire.backend_key();
    wire.send(Frontend::query("SELECT pg_sleep(30)"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut cancel = TcpStream::connect(&gateway.addr).await.unwrap();
    let request = [
        &16i32.to_be_bytes()[..],
        &80_877_102i32.to_be_bytes()[..],
        &pid.to_be_bytes()[..],
        &secret.to_be_bytes()[..],
    ]
    .concat();
    cancel.write_all(&request).await.unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    let elapsed = started.elapsed();
    let error = replies
        .iter()
        .find(|m| m.is_error())
        .expect("the query is cancelled");
    assert_eq!(error.sqlstate().as_deref(), Some("57014"));
    assert!(elapsed < Duration::from_secs(1), "cancel took {elapsed:?}");
}

#[tokio::test]
async fn a_cancel_with_a_wrong_key_cancels_nothing() {
    let gateway = Gateway::start();
    let mut wire = login(&gateway, "test").await;
    let (pid, secret) = wire.backend_key();
    wire.send(Frontend::query("SELECT pg_sleep(1)"))
        .await
        .unwrap();
    let mut cancel = TcpStream::connect(&gateway.addr).await.unwrap();
    let request = [
        &16i32.to_be_bytes()[..],
        &80_877_102i32.to_be_bytes()[..],
        &pid.to_be_bytes()[..],
        &secret.wrapping_add(1).to_be_bytes()[..],
    ]
    .concat();
    cancel.write_all(&request).await.unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert!(!replies.iter().any(|m| m.is_error()), "{replies:?}");
}

// ---- pooling and upstream failures -------------------------------------------

#[tokio::test]
async fn pooled_connections_are_reset_before_reuse() {
    let db = TestDb::create("pool");
    let gateway = Gateway::start_with(Options {
        toml: "[postgres]\nlisten = \"127.0.0.1:0\"\npool_size = 1\n".into(),
        ..Default::default()
    });
    let mut first = login(&gateway, &db.name).await;
    let pid = |rows: Vec<support::wire::BackendMsg>| {
        rows.iter()
            .find_map(|m| m.data_row())
            .map(|r| r[0].clone().unwrap())
            .unwrap()
    };
    let first_pid = pid(first.simple_query("SELECT pg_backend_pid()").await.unwrap());
    first.simple_query("SET work_mem = '99MB'; CREATE TEMP TABLE leftover(x int); PREPARE stale AS SELECT 1; LISTEN chan").await.unwrap();
    first.send(Frontend::Terminate).await.unwrap();
    assert!(first.recv_or_eof().await.unwrap().is_none());

    // Give the background reset a moment, then take the only connection again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = login(&gateway, &db.name).await;
    assert_eq!(
        pid(second
            .simple_query("SELECT pg_backend_pid()")
            .await
            .unwrap()),
        first_pid,
        "the connection is reused"
    );
    assert_ne!(
        pid(second.simple_query("SHOW work_mem").await.unwrap()),
        b"99MB".to_vec()
    );
    let rows = second
        .simple_query("SELECT count(*) FROM pg_prepared_statements")
        .await
        .unwrap();
    assert_eq!(pid(rows), b"0".to_vec());
    let rows = second.simple_query("SELECT * FROM leftover").await.unwrap();
    assert_eq!(
        rows.iter()
            .find(|m| m.is_error())
            .and_then(|m| m.sqlstate())
            .as_deref(),
        Some("42P01")
    );
    let rows = second
        .simple_query("SELECT count(*) FROM pg_listening_channels()")
        .await
        .unwrap();
    assert_eq!(pid(rows), b"0".to_vec());
}

#[tokio::test]
async fn a_full_pool_gives_53300_after_the_acquire_timeout() {
    let gateway = Gateway::start_with(Options {
        toml: "[postgres]\nlisten = \"127.0.0.1:0\"\npool_size = 1\nacquire_timeout_secs = 1\n"
            .into(),
        ..Default::default()
    });
    let _holder = login(&gateway, "test").await;
    let err = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, "test", &[])
        .await
        .err()
        .unwrap();
    let server = server_error(&err).unwrap();
    assert_eq!(server.code(), "53300");
    assert!(
        server.message().contains("pool_size"),
        "{}",
        server.message()
    );
}

#[tokio::test]
async fn an_unreachable_upstream_gives_08001_without_hanging() {
    // Port 9 (discard) is closed on this machine.
    let gateway = Gateway::start_with(Options {
        toml: "[postgres]\nlisten = \"127.0.0.1:0\"\nupstream = \"postgresql://postgres@127.0.0.1:9/test\"\nconnect_timeout_secs = 2\n".into(),
        ..Default::default()
    });
    let started = Instant::now();
    let err = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, "test", &[])
        .await
        .err()
        .unwrap();
    assert_eq!(server_error(&err).unwrap().code(), "08001");
    assert!(
        !server_error(&err)
            .unwrap()
            .message()
            .contains("127.0.0.1:9"),
        "upstream details are not shown to agents"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn an_unknown_database_is_reported_as_such() {
    let gateway = Gateway::start();
    let err = Wire::connect(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        "airlock_no_such_db",
        &[],
    )
    .await
    .err()
    .unwrap();
    assert_eq!(server_error(&err).unwrap().code(), "3D000");
}

#[tokio::test]
async fn an_upstream_that_dies_mid_query_gives_an_error_and_others_carry_on() {
    let gateway = Gateway::start();
    let mut victim = login(&gateway, "test").await;
    let mut bystander = login(&gateway, "test").await;
    victim
        .send(Frontend::query("SELECT pg_sleep(20) /* airlock-victim */"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    psql_direct(
        "test",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%airlock-victim%' AND pid <> pg_backend_pid()",
    );
    let started = Instant::now();
    let mut codes = Vec::new();
    while let Ok(Some(msg)) = victim.recv_or_eof().await {
        if let Some(code) = msg.sqlstate() {
            codes.push(code);
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        codes.iter().any(|c| c == "57P01" || c == "08006"),
        "{codes:?}"
    );
    let rows = bystander.simple_query("SELECT 1").await.unwrap();
    assert!(rows.iter().any(|m| m.data_row().is_some()));
    // New sessions still work.
    let mut fresh = login(&gateway, "test").await;
    assert!(fresh.simple_query("SELECT 1").await.is_ok());
}

// ---- shutdown ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_statements_finish_then_closes_sessions() {
    let mut gateway = Gateway::start();
    let mut busy = login(&gateway, "test").await;
    let mut idle = login(&gateway, "test").await;
    busy.send(Frontend::query("SELECT pg_sleep(1), 'finished'"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = tokio::task::block_in_place(|| gateway.terminate(Duration::from_secs(15)));
    assert!(status.success(), "{status:?}");

    let replies = busy.recv_until_ready().await.unwrap();
    let row = replies
        .iter()
        .find_map(|m| m.data_row())
        .expect("the running statement completes");
    assert_eq!(row[1].as_deref(), Some(&b"finished"[..]));
    let fatal = busy.recv().await.unwrap();
    assert_eq!(fatal.sqlstate().as_deref(), Some("57P01"));
    let fatal = idle.recv().await.unwrap();
    assert_eq!(fatal.sqlstate().as_deref(), Some("57P01"));
    assert!(
        TcpStream::connect(&gateway.addr).await.is_err(),
        "no longer listening"
    );
}

/// `airlock identity add` prints a whole `[[identity]]` block that the
/// config accepts: an agent with its database verifiers, an approver with
/// an inbox password and a token (on stderr) and no database login. The
/// password is asked twice; two different ones are refused.
#[test]
fn identity_add_prints_a_block_the_config_accepts() {
    use std::io::Write as _;
    let add = |args: &[&str], input: &str| {
        let mut child = std::process::Command::new(support::gateway::binary())
            .args(["identity", "add"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let agent = add(&["bot", "--role", "agent"], "bot-password\nbot-password\n");
    assert!(agent.status.success(), "{}", stderr_of(&agent));
    let agent_block = stdout_of(&agent);
    assert!(
        agent_block.contains("scram_verifier = \"SCRAM-SHA-256$")
            && agent_block.contains("mysql_native_hash = \"*"),
        "{agent_block}"
    );
    let approver = add(
        &["ann", "--role", "approver", "--groups", "dba"],
        "ann-password\nann-password\n",
    );
    assert!(approver.status.success(), "{}", stderr_of(&approver));
    let approver_block = stdout_of(&approver);
    assert!(stderr_of(&approver).contains("API token for ann"));
    assert!(
        approver_block.contains("inbox_password_hash = \"$argon2")
            && !approver_block.contains("scram_verifier"),
        "{approver_block}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "airlock.toml",
        &format!("{agent_block}\n{approver_block}\n"),
    );
    let out = std::process::Command::new(support::gateway::binary())
        .args(["config", "check", &config])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("2 identities"),
        "{}",
        stdout_of(&out)
    );
    assert!(!stdout_of(&out).contains("warning"), "{}", stdout_of(&out));
    // The agent logs in with the password it was given.
    let gateway = Gateway::start_with(Options {
        toml: agent_block.clone(),
        no_identity: true,
        ..Default::default()
    });
    let out = psql_through(
        &gateway.addr,
        "bot",
        "bot-password",
        "test",
        &["-c", "SELECT 1"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));

    let mismatch = add(
        &["x", "--role", "agent"],
        "first-password\nsecond-password\n",
    );
    assert!(!mismatch.status.success());
    assert!(
        stderr_of(&mismatch).contains("differ"),
        "{}",
        stderr_of(&mismatch)
    );
}
