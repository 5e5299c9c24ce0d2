//! What a PostgreSQL session through Airlock looks like to the server and
//! to the client's driver around the statements themselves: the backend
//! identity the client is given (its pid is the server's), cancel (also
//! over TLS), the startup `options` parameter, and the hygiene of the
//! upstream pool — backends never outlive their clients, idle connections
//! expire, template databases are never held, and a server that is full
//! gets its idle connections back. `pg_stat_activity`, read directly on the
//! server, is the witness.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::gateway::{
    psql_direct, tls_section, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD, UPSTREAM_ADDR,
};
use support::wire::{server_error, BackendMsg, Frontend, Wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn login(addr: &str, database: &str, params: &[(&str, &str)]) -> Wire {
    Wire::connect(addr, AGENT, AGENT_PASSWORD, database, params)
        .await
        .expect("login through airlock")
}

/// The first column of the first row.
fn first_value(rows: &[BackendMsg]) -> String {
    let row = rows
        .iter()
        .find_map(|m| m.data_row())
        .unwrap_or_else(|| panic!("no row in {rows:?}"));
    String::from_utf8(row[0].clone().expect("not NULL")).expect("utf-8")
}

async fn value(wire: &mut Wire, sql: &str) -> String {
    first_value(&wire.simple_query(sql).await.expect("query"))
}

/// A CancelRequest for `(pid, secret)` sent to `addr`, waiting until the
/// receiver has closed the connection (it has acted on it by then).
async fn send_cancel(addr: &str, pid: i32, secret: i32) {
    let mut stream = TcpStream::connect(addr).await.expect("connect for cancel");
    let request = [
        &16i32.to_be_bytes()[..],
        &80_877_102i32.to_be_bytes()[..],
        &pid.to_be_bytes()[..],
        &secret.to_be_bytes()[..],
    ]
    .concat();
    stream.write_all(&request).await.expect("send cancel");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
}

/// How many backends the server has that match `condition` (SQL over
/// `pg_stat_activity`).
fn backends(condition: &str) -> usize {
    psql_direct(
        "test",
        &format!("SELECT count(*) FROM pg_stat_activity WHERE {condition}"),
    )
    .parse()
    .expect("a count")
}

/// Polls until `backends(condition)` is `want`, for at most `within`.
fn wait_for_backends(condition: &str, want: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let n = backends(condition);
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} backends (want {want}) where {condition}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---- backend identity ---------------------------------------------------------

#[tokio::test]
async fn the_client_is_given_the_server_pid_of_its_session() {
    let gateway = Gateway::start();
    let mut wire = login(&gateway.addr, "test", &[("application_name", "pid-check")]).await;
    let (pid, _) = wire.backend_key();
    assert_eq!(
        value(&mut wire, "SELECT pg_backend_pid()").await,
        pid.to_string()
    );
    // The session finds itself in pg_stat_activity by that pid.
    let name = value(
        &mut wire,
        &format!("SELECT application_name FROM pg_stat_activity WHERE pid = {pid}"),
    )
    .await;
    assert!(
        name.starts_with("airlock:agent:") && name.ends_with(":pid-check"),
        "{name}"
    );
    // A NOTIFY names its sender by the same pid.
    wire.simple_query("LISTEN pid_check").await.unwrap();
    let replies = wire
        .simple_query("NOTIFY pid_check, 'hello'")
        .await
        .unwrap();
    let note = replies
        .iter()
        .find_map(|m| m.notification())
        .expect("a notification");
    assert_eq!((note.process_id, note.payload.as_str()), (pid, "hello"));

    // Another session is told its own pid, and sees the first one's
    // notifications under the first one's pid.
    let mut other = login(&gateway.addr, "test", &[]).await;
    let (other_pid, _) = other.backend_key();
    assert_ne!(other_pid, pid);
    assert_eq!(
        value(&mut other, "SELECT pg_backend_pid()").await,
        other_pid.to_string()
    );
    other.simple_query("LISTEN pid_check").await.unwrap();
    wire.simple_query("NOTIFY pid_check, 'again'")
        .await
        .unwrap();
    let replies = other.simple_query("SELECT 1").await.unwrap();
    let note = replies
        .iter()
        .find_map(|m| m.notification())
        .expect("a notification");
    assert_eq!(note.process_id, pid);

    // pg_terminate_backend with the pid the client was given ends that
    // session, and only that one.
    assert_eq!(
        value(&mut other, &format!("SELECT pg_terminate_backend({pid})")).await,
        "t"
    );
    let replies = wire.simple_query("SELECT 1").await;
    let ended = match replies {
        Err(_) => true,
        Ok(rows) => rows
            .iter()
            .any(|m| m.sqlstate().as_deref() == Some("57P01")),
    };
    assert!(ended, "the terminated session goes on");
    assert_eq!(value(&mut other, "SELECT 2").await, "2");
}

#[tokio::test]
async fn cancel_needs_the_pid_and_airlocks_secret() {
    let gateway = Gateway::start();
    let mut wire = login(&gateway.addr, "test", &[]).await;
    let (pid, secret) = wire.backend_key();
    wire.send(Frontend::query("SELECT pg_sleep(1.5)"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Right pid, wrong secret (five ways), through Airlock; and the key the
    // client holds sent straight to the server, which does not know the
    // secret Airlock made up.
    for wrong in [secret.wrapping_add(1), secret ^ i32::MIN, !secret, 0, -1] {
        send_cancel(&gateway.addr, pid, wrong).await;
    }
    send_cancel(&gateway.addr, pid.wrapping_add(1), secret).await;
    send_cancel(UPSTREAM_ADDR, pid, secret).await;
    let replies = wire.recv_until_ready().await.unwrap();
    assert!(
        !replies.iter().any(|m| m.is_error()),
        "a wrong key cancelled the query: {replies:?}"
    );

    // The right key still cancels.
    wire.send(Frontend::query("SELECT pg_sleep(30)"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    send_cancel(&gateway.addr, pid, secret).await;
    let replies = wire.recv_until_ready().await.unwrap();
    let error = replies.iter().find(|m| m.is_error()).expect("cancelled");
    assert_eq!(error.sqlstate().as_deref(), Some("57014"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_session_on_a_reused_connection_has_its_own_secret() {
    let db = TestDb::create("reuse");
    let gateway = Gateway::start_with(Options {
        toml: "[postgres]\nlisten = \"127.0.0.1:0\"\npool_size = 1\n".into(),
        ..Default::default()
    });
    let first = login(&gateway.addr, &db.name, &[]).await;
    let old = first.backend_key();
    first.terminate().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = login(&gateway.addr, &db.name, &[]).await;
    let new = second.backend_key();
    assert_eq!(
        new.0, old.0,
        "the pooled connection (and its pid) is reused"
    );
    assert_ne!(new.1, old.1);
    second
        .send(Frontend::query("SELECT pg_sleep(1)"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The first session's key is dead although its pid lives on.
    send_cancel(&gateway.addr, old.0, old.1).await;
    let replies = second.recv_until_ready().await.unwrap();
    assert!(!replies.iter().any(|m| m.is_error()), "{replies:?}");
}

// ---- cancel over TLS ------------------------------------------------------------

/// libpq 17+ sends its cancel over TLS when the session uses TLS, and
/// reports a connection that ends without a TLS close_notify as "SSL error:
/// unexpected eof while reading", although the cancel worked.
#[test]
fn a_cancel_over_tls_ends_cleanly_for_libpq() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start_with(Options {
        toml: tls_section(dir.path()),
        ..Default::default()
    });
    let (host, port) = gateway.addr.rsplit_once(':').unwrap();
    let script = r#"
import os, sys, threading, time
import psycopg
conn = psycopg.connect(host=os.environ["H"], port=os.environ["P"], user=os.environ["U"],
                       password=os.environ["W"], dbname="test", sslmode="require",
                       connect_timeout=10, autocommit=True)
assert conn.info.backend_pid == conn.execute("SELECT pg_backend_pid()").fetchone()[0]
assert conn.pgconn.ssl_in_use
failures = []
def cancel():
    time.sleep(0.5)
    try:
        conn.cancel_safe(timeout=5)
    except Exception as e:
        failures.append(repr(e))
for attempt in range(3):
    t = threading.Thread(target=cancel)
    t.start()
    try:
        conn.execute("SELECT pg_sleep(20)")
        print("not cancelled")
        sys.exit(1)
    except psycopg.errors.QueryCanceled:
        pass
    t.join()
if failures:
    print("cancel failed:", failures)
    sys.exit(1)
print("cancelled cleanly", psycopg.pq.version())
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .env("H", host)
        .env("P", port)
        .env("U", AGENT)
        .env("W", AGENT_PASSWORD)
        .env_remove("PGSSLMODE")
        .output()
        .expect("python3 with psycopg (run .ci/install-test-deps.sh)");
    let (stdout, stderr) = (stdout_of(&out), stderr_of(&out));
    assert!(
        out.status.success() && stdout.starts_with("cancelled cleanly"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stderr.contains("SSL"), "{stderr}");
}

// ---- startup options --------------------------------------------------------------

fn psql_with_options(gateway: &Gateway, options: &str, sql: &str) -> Output {
    let (host, port) = gateway.addr.rsplit_once(':').unwrap();
    Command::new("psql")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", host, "-p", port, "-U", AGENT, "-d", "test", "-c", sql])
        .env("PGPASSWORD", AGENT_PASSWORD)
        .env("PGOPTIONS", options)
        .env("PGSSLMODE", "disable")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql")
}

#[test]
fn libpq_options_set_allowlisted_parameters() {
    let gateway = Gateway::start();
    let out = psql_with_options(
        &gateway,
        "-c search_path=foo -c statement_timeout=5000",
        "SHOW search_path; SHOW statement_timeout",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "foo\n5s");

    // Every spelling the server reads: --name=value, -cname=value,
    // escaped spaces, `-` for `_`, any case.
    let out = psql_with_options(
        &gateway,
        r#"--search-path="my\ schema",public -cLock_Timeout=1500 --DateStyle=SQL,\ DMY"#,
        "SHOW search_path; SHOW lock_timeout; SHOW DateStyle",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), "\"my schema\",public\n1500ms\nSQL, DMY");

    // A setting the server would really apply: a short statement_timeout
    // cancels a slow statement.
    let out = psql_with_options(&gateway, "-c statement_timeout=200", "SELECT pg_sleep(3)");
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("statement timeout"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn libpq_options_that_change_who_the_session_is_are_refused() {
    let gateway = Gateway::start();
    for options in [
        "-c role=postgres",
        "-c search_path=foo -c role=postgres",
        "--role=postgres",
        "-c session_authorization=postgres",
        "--session-authorization=postgres",
        "-c default_transaction_read_only=off",
        "-c log_statement=none",
        "-c session_replication_role=replica",
        "-D /tmp",
        "-P",
        "-c client_encoding=SJIS",
    ] {
        let out = psql_with_options(&gateway, options, "SELECT current_user");
        let stderr = stderr_of(&out);
        assert!(!out.status.success(), "{options}: {}", stdout_of(&out));
        assert!(
            stderr.contains("`options`") || stderr.contains("client encoding"),
            "{options}: {stderr}"
        );
    }
}

#[tokio::test]
async fn options_reach_the_server_only_as_allowlisted_parameters() {
    let gateway = Gateway::start();
    let mut wire = login(
        &gateway.addr,
        "test",
        &[(
            "options",
            r#"-c application_name=opt\ app -c search_path="a\ -c\ role=postgres""#,
        )],
    )
    .await;
    // The escaped "-c role=…" is part of the search_path value, as the
    // server reads it; the session's role is unchanged.
    assert_eq!(value(&mut wire, "SELECT current_user").await, "postgres");
    assert_eq!(
        value(&mut wire, "SHOW search_path").await,
        "\"a -c role=postgres\""
    );
    let name = wire.params().get("application_name").unwrap();
    assert!(name.ends_with(":opt app"), "{name}");
    let err = Wire::connect(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        "test",
        &[("options", "-c role=pg_read_server_files")],
    )
    .await
    .err()
    .expect("refused");
    let server = server_error(&err).expect("an ErrorResponse");
    assert_eq!(server.code(), "42501");
    assert!(
        server.message().contains("`options`"),
        "{}",
        server.message()
    );
}

// ---- pool hygiene -----------------------------------------------------------------

#[tokio::test]
async fn a_client_that_leaves_mid_query_takes_its_backend_along() {
    let db = TestDb::create("leave");
    let gateway = Gateway::start();
    // Vanishing without a word, and sending Terminate without waiting for
    // the answer: either way the statement must not run on for nobody.
    for terminate in [false, true] {
        let mut wire = login(&gateway.addr, &db.name, &[]).await;
        let (pid, _) = wire.backend_key();
        wire.send(Frontend::query("SELECT pg_sleep(60)"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            backends(&format!("pid = {pid} AND state = 'active'")),
            1,
            "the statement runs"
        );
        if terminate {
            wire.send(Frontend::Terminate).await.unwrap();
        }
        drop(wire);
        let within = if terminate { 9 } else { 4 };
        wait_for_backends(&format!("pid = {pid}"), 0, Duration::from_secs(within));
    }
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let db = TestDb::create("idle");
    let gateway = Gateway::start_with(Options {
        toml: "[postgres]\nlisten = \"127.0.0.1:0\"\nidle_timeout_secs = 1\n".into(),
        ..Default::default()
    });
    let in_db = format!("datname = '{}'", db.name);
    let mut wire = login(&gateway.addr, &db.name, &[]).await;
    assert_eq!(value(&mut wire, "SELECT 1").await, "1");
    wire.terminate().await.unwrap();
    // Pooled for a moment, then closed…
    assert_eq!(backends(&in_db), 1, "the connection is kept at first");
    wait_for_backends(&in_db, 0, Duration::from_secs(4));
    // …so the database can be dropped directly, without FORCE.
    psql_direct("test", &format!("DROP DATABASE {}", db.name));
}

#[tokio::test]
async fn connections_to_template1_are_never_kept() {
    let gateway = Gateway::start();
    let app = format!("airlock-t-template-{}", std::process::id());
    let mine = format!("datname = 'template1' AND application_name LIKE '%:{app}'");
    let mut wire = login(&gateway.addr, "template1", &[("application_name", &app)]).await;
    assert_eq!(value(&mut wire, "SELECT 1").await, "1");
    wire.terminate().await.unwrap();
    wait_for_backends(&mine, 0, Duration::from_secs(2));
    // CREATE DATABASE copies template1: no connection of Airlock's is in
    // its way.
    let copy = TestDb::create("fromtemplate");
    assert_eq!(
        psql_direct(
            "test",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{}'",
                copy.name
            )
        ),
        "1"
    );
}

#[tokio::test]
async fn a_full_server_gets_the_pools_idle_connections_back() {
    // A service login that may hold one connection: the server refuses a
    // second with 53300 (superusers are exempt from the limit, so the
    // gateway logs in as a role of its own).
    let role = format!("airlock_t_limit_{}", std::process::id());
    psql_direct("test", &format!("DROP ROLE IF EXISTS {role}"));
    psql_direct(
        "test",
        &format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 1"),
    );
    struct DropRole(String);
    impl Drop for DropRole {
        fn drop(&mut self) {
            let _ = Command::new("psql")
                .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c"])
                .arg(format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{0}'; DROP ROLE IF EXISTS {0}",
                    self.0
                ))
                .output();
        }
    }
    let _cleanup = DropRole(role.clone());
    let gateway = Gateway::start_with(Options {
        toml: format!(
            "[postgres]\nlisten = \"127.0.0.1:0\"\nupstream = \"postgresql://{role}@127.0.0.1:5432/test\"\n"
        ),
        ..Default::default()
    });
    // The gateway's own check of its login at start takes the one slot
    // for a moment.
    wait_for_backends(&format!("usename = '{role}'"), 0, Duration::from_secs(5));
    let mut first = login(&gateway.addr, "test", &[("TimeZone", "UTC")]).await;
    assert_eq!(value(&mut first, "SELECT 1").await, "1");
    first.terminate().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backends(&format!("usename = '{role}'")), 1, "kept idle");
    // Other startup parameters: the idle connection cannot serve this
    // session, and the server has no room for another — until the pool
    // gives its idle connection up.
    let mut second = login(&gateway.addr, "test", &[("TimeZone", "Asia/Tokyo")]).await;
    assert_eq!(value(&mut second, "SHOW TimeZone").await, "Asia/Tokyo");
}

/// Needs the relay to call `Pool::before_statement` with each query's and
/// Parse's text before forwarding it (see the pool's module doc).
#[tokio::test]
async fn database_level_statements_are_not_blocked_by_idle_connections() {
    let gateway = Gateway::start();
    let source = TestDb::create("dropsrc");
    let victim = TestDb::create("dropme");
    for db in [&source, &victim] {
        let mut wire = login(&gateway.addr, &db.name, &[]).await;
        assert_eq!(value(&mut wire, "SELECT 1").await, "1");
        wire.terminate().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        backends(&format!(
            "datname IN ('{}', '{}')",
            source.name, victim.name
        )),
        2,
        "both kept idle"
    );
    let mut admin = login(&gateway.addr, "test", &[]).await;
    let copy = format!("{}_copy", source.name);
    for sql in [
        format!("CREATE DATABASE {copy} TEMPLATE {}", source.name),
        format!("DROP DATABASE {copy}"),
        format!("/* spelled */ drop\n DataBase \"{}\"", victim.name),
    ] {
        let replies = admin.simple_query(&sql).await.unwrap();
        assert!(!replies.iter().any(|m| m.is_error()), "{sql}: {replies:?}");
    }
}
