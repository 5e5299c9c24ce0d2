//! Defence in depth against the real PostgreSQL: identities with an
//! `upstream_role` or `read_only` are confined by the server itself, so a
//! statement the policy allowed (every test here runs under a policy that
//! allows everything) is still refused by the server; the statements that
//! would undo the confinement are refused by Airlock and, with the server's
//! statement log as the witness, never reach it; the role is applied on
//! every checkout of a pooled connection and never leaks to another
//! identity's session.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use support::gateway::{psql_direct, Gateway, Options, TestDb};
use support::pglog::{log_contains, logged_database, run_marker, server_log};
use support::wire::{Frontend, Wire};

const PASSWORD: &str = "defence-secret";

/// A role without privileges, dropped (with what it owns) on drop.
struct TestRole {
    name: String,
}

impl TestRole {
    fn create(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "airlock_r_{label}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        psql_direct("test", &format!("CREATE ROLE {name} NOLOGIN"));
        Self { name }
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
            ])
            .args(["-c", &format!("DROP ROLE IF EXISTS {}", self.name)])
            .output();
    }
}

/// A database whose every statement the server logs, with one table `t`
/// owned by the service login, and a marker unique to this run.
fn logged_db(label: &str) -> (TestDb, String, String) {
    let db = logged_database(label);
    psql_direct(
        &db.name,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    );
    let marker = run_marker(label);
    (db, server_log(), marker)
}

/// A gateway (policy: allow everything) with one pooled upstream
/// connection, so that sessions demonstrably reuse it, and these identities.
fn gateway(identities: &[(&str, &str)]) -> Gateway {
    let mut toml = String::from("[postgres]\nlisten = \"127.0.0.1:0\"\npool_size = 1\n");
    for (name, extra) in identities {
        toml.push_str(&format!(
            "\n[[identity]]\nname = \"{name}\"\nrole = \"agent\"\npassword = \"{PASSWORD}\"\n{extra}\n"
        ));
    }
    Gateway::start_with(Options {
        toml,
        ..Default::default()
    })
}

async fn login(gateway: &Gateway, user: &str, database: &str) -> Wire {
    Wire::connect(&gateway.addr, user, PASSWORD, database, &[])
        .await
        .expect("login through airlock")
}

/// The first column of the first row, or the error's (SQLSTATE, message).
async fn run(wire: &mut Wire, sql: &str) -> Result<Option<String>, (String, String)> {
    let replies = wire.simple_query(sql).await.expect("query round trip");
    if let Some(e) = replies.iter().find(|m| m.is_error()) {
        let f = e.fields().expect("error fields");
        return Err((f[&b'C'].clone(), f[&b'M'].clone()));
    }
    Ok(replies
        .iter()
        .find_map(|m| m.data_row())
        .and_then(|row| row.into_iter().next().flatten())
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

async fn value(wire: &mut Wire, sql: &str) -> String {
    run(wire, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .unwrap_or_default()
}

/// Refused by the server itself (not by Airlock) with `code`.
async fn server_refuses(wire: &mut Wire, sql: &str, code: &str) {
    match run(wire, sql).await {
        Err((c, m)) => {
            assert_eq!(c, code, "{sql}: {m}");
            assert!(
                !m.contains("Airlock"),
                "{sql}: refused by Airlock, not the server: {m}"
            );
        }
        Ok(v) => panic!("{sql} ran: {v:?}"),
    }
}

/// Refused by Airlock (42501, naming the confinement).
async fn airlock_refuses(wire: &mut Wire, sql: &str, names: &str) {
    match run(wire, sql).await {
        // Some spellings are refused first because they could also switch
        // the client encoding (0A000): refused by Airlock all the same.
        Err((c, m)) if c == "0A000" => {
            assert!(m.contains("Airlock refuses"), "{sql}: {m}");
        }
        Err((c, m)) => {
            assert_eq!(c, "42501", "{sql}: {m}");
            assert!(
                m.contains("identity confinement") && m.contains(names),
                "{sql}: {m}"
            );
        }
        Ok(v) => panic!("{sql} ran: {v:?}"),
    }
}

#[tokio::test]
async fn an_upstream_role_is_enforced_by_the_server_and_cannot_be_dropped() {
    let (db, log, marker) = logged_db("role");
    let role = TestRole::create("bare");
    let gateway = gateway(&[
        ("confined", &format!("upstream_role = \"{}\"", role.name)),
        ("plain", ""),
    ]);
    let mut wire = login(&gateway, "confined", &db.name).await;
    assert_eq!(value(&mut wire, "SELECT current_user").await, role.name);
    let pid = value(&mut wire, "SELECT pg_backend_pid()").await;

    // The policy allows all of these; the role has no privilege for any.
    for sql in [
        "DELETE FROM t",
        "SELECT * FROM t",
        "INSERT INTO t VALUES (2)",
        "UPDATE t SET id = 3",
        "TRUNCATE t",
        "CREATE TABLE t2 (a int)",
        "DROP TABLE t",
        "SELECT pg_read_file('/etc/hostname')",
        "COPY t TO STDOUT",
        "ALTER TABLE t ADD COLUMN c int",
        "SELECT pg_reload_conf()",
        "CREATE ROLE airlock_should_not_exist",
    ] {
        server_refuses(&mut wire, sql, "42501").await;
    }
    // Extended protocol too: the server refuses the statement at Execute.
    wire.send_all(&[
        Frontend::parse("", "DELETE FROM t", &[]),
        Frontend::bind("", "", &[], Vec::new(), &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .expect("send");
    let replies = wire.recv_until_ready().await.expect("replies");
    let error = replies.iter().find(|m| m.is_error()).expect("an error");
    assert_eq!(error.sqlstate().as_deref(), Some("42501"));

    // Switching the role off is refused by Airlock and never reaches the
    // server (the marker rides in a comment the server would log).
    let needle = format!("upstream role \"{}\"", role.name);
    for (i, sql) in [
        "RESET ROLE",
        "SET ROLE postgres",
        "SET ROLE NONE",
        "SET SESSION ROLE postgres",
        "set local role postgres",
        "SET \"role\" = 'postgres'",
        "SET SESSION AUTHORIZATION postgres",
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET SESSION AUTHORIZATION",
        "RESET ALL",
        "DISCARD ALL",
        "SELECT set_config('role', 'postgres', false)",
        "SELECT pg_catalog.set_config('role', 'postgres', false)",
        "SELECT \"set_config\"('role', 'postgres', false)",
        "SELECT set_config('ro' || 'le', 'postgres', false)",
        "SELECT set_config(E'rol\\x65', 'postgres', false)",
        "SELECT U&\"set\\005fconfig\"('role', 'postgres', false)",
        "SET U&\"r\\006fle\" = 'postgres'",
        "DO $$ BEGIN EXECUTE 'RESET ROLE'; END $$",
        "SELECT 1; RESET ROLE",
    ]
    .iter()
    .enumerate()
    {
        airlock_refuses(&mut wire, &format!("{sql} /* {marker}-{i} */"), &needle).await;
    }
    // And through Parse as well.
    wire.send_all(&[
        Frontend::parse("s", &format!("RESET ROLE /* {marker}-parse */"), &[]),
        Frontend::Sync,
    ])
    .await
    .expect("send");
    let replies = wire.recv_until_ready().await.expect("replies");
    let error = replies.iter().find(|m| m.is_error()).expect("an error");
    assert_eq!(error.sqlstate().as_deref(), Some("42501"));

    assert_eq!(value(&mut wire, "SELECT current_user").await, role.name);
    // A marker that did reach the server proves the log is being written.
    let reached = format!("{marker}-reached");
    value(&mut wire, &format!("SELECT 1 /* {reached} */")).await;
    wire.terminate().await.expect("terminate");

    // Pooled connections are kept per identity (each starts as
    // `airlock:<identity>`, its name in the server's logs): another
    // identity gets a connection of its own, without the role.
    let mut other = login(&gateway, "plain", &db.name).await;
    assert_ne!(value(&mut other, "SELECT pg_backend_pid()").await, pid);
    assert_eq!(value(&mut other, "SELECT current_user").await, "postgres");
    assert_eq!(value(&mut other, "SELECT count(*) FROM t").await, "1");
    // Unconfined identities are judged by the policy alone.
    value(&mut other, "SET ROLE NONE").await;
    other.terminate().await.expect("terminate");

    // … and again the confined identity (its pooled connection made room
    // for the other's): the role is applied on the new one.
    let mut again = login(&gateway, "confined", &db.name).await;
    let again_pid = value(&mut again, "SELECT pg_backend_pid()").await;
    assert_eq!(value(&mut again, "SELECT current_user").await, role.name);
    // RESET ALL is refused, and the role survives what is allowed.
    value(&mut again, "SET statement_timeout = 5000").await;
    value(&mut again, "RESET statement_timeout").await;
    value(&mut again, "DISCARD PLANS").await;
    assert_eq!(value(&mut again, "SELECT current_user").await, role.name);
    server_refuses(&mut again, "DELETE FROM t", "42501").await;
    again.terminate().await.expect("terminate");

    // The same connection, reset (DISCARD ALL drops the role) and taken
    // again by the confined identity: the role is applied again.
    let mut reused = login(&gateway, "confined", &db.name).await;
    assert_eq!(
        value(&mut reused, "SELECT pg_backend_pid()").await,
        again_pid
    );
    assert_eq!(value(&mut reused, "SELECT current_user").await, role.name);
    reused.terminate().await.expect("terminate");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_contains(&log, &reached) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        log_contains(&log, &reached),
        "the server log is not written"
    );
    let log_text = String::from_utf8_lossy(&std::fs::read(&log).expect("log")).into_owned();
    for i in 0..20 {
        assert!(
            !log_text.contains(&format!("{marker}-{i} ")),
            "refused statement {i} reached the server"
        );
    }
    assert!(!log_text.contains(&format!("{marker}-parse")));
    assert_eq!(psql_direct(&db.name, "SELECT count(*) FROM t"), "1");
    drop(gateway);
    drop(db);
}

#[tokio::test]
async fn a_read_only_identity_is_read_only_in_the_server() {
    let (db, log, marker) = logged_db("ro");
    let gateway = gateway(&[("reader", "read_only = true")]);
    let mut wire = login(&gateway, "reader", &db.name).await;
    assert_eq!(
        value(&mut wire, "SHOW default_transaction_read_only").await,
        "on"
    );
    assert_eq!(value(&mut wire, "SELECT count(*) FROM t").await, "1");
    for sql in [
        "INSERT INTO t VALUES (2)",
        "DELETE FROM t",
        "CREATE TABLE t2 (a int)",
        "UPDATE t SET id = 2",
        "TRUNCATE t",
    ] {
        server_refuses(&mut wire, sql, "25006").await;
    }
    for (i, sql) in [
        "SET default_transaction_read_only = off",
        "SET SESSION default_transaction_read_only TO off",
        "SET \"default_transaction_read_only\" = off",
        "SET transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "BEGIN READ WRITE",
        "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE",
        "START TRANSACTION READ WRITE",
        "SET TRANSACTION READ WRITE",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT set_config('transaction_read_only', 'off', false)",
        "RESET default_transaction_read_only",
        "RESET ALL",
        "DISCARD ALL",
        "UPDATE pg_settings SET setting = 'off' WHERE name = 'default_transaction_read_only'",
        "SET U&\"default_transaction_read_onl\\0079\" = off",
    ]
    .iter()
    .enumerate()
    {
        airlock_refuses(&mut wire, &format!("{sql} /* {marker}-{i} */"), "read-only").await;
    }
    // Inside an explicit transaction, too.
    value(&mut wire, "BEGIN").await;
    airlock_refuses(&mut wire, "SET TRANSACTION READ WRITE", "read-only").await;
    value(&mut wire, "ROLLBACK").await;
    value(&mut wire, "BEGIN").await;
    server_refuses(&mut wire, "INSERT INTO t VALUES (2)", "25006").await;
    value(&mut wire, "ROLLBACK").await;
    server_refuses(&mut wire, "INSERT INTO t VALUES (2)", "25006").await;
    let reached = format!("{marker}-reached");
    value(&mut wire, &format!("SELECT 1 /* {reached} */")).await;
    wire.terminate().await.expect("terminate");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_contains(&log, &reached) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log_text = String::from_utf8_lossy(&std::fs::read(&log).expect("log")).into_owned();
    assert!(log_text.contains(&reached), "the server log is not written");
    for i in 0..16 {
        assert!(
            !log_text.contains(&format!("{marker}-{i} ")),
            "refused statement {i} reached the server"
        );
    }
    assert_eq!(psql_direct(&db.name, "SELECT count(*) FROM t"), "1");
}

#[tokio::test]
async fn a_role_the_server_refuses_refuses_the_login_and_superusers_are_warned_about() {
    let db = TestDb::create("ghost");
    let gateway = gateway(&[("ghost", "upstream_role = \"airlock_no_such_role_anywhere\"")]);
    let err = Wire::connect(&gateway.addr, "ghost", PASSWORD, &db.name, &[])
        .await
        .err()
        .expect("the login is refused");
    let server = support::wire::server_error(&err).expect("an ErrorResponse");
    assert_eq!(server.code(), "42501");
    assert!(
        server.message().contains("upstream_role"),
        "{}",
        server.message()
    );
    assert!(!server.message().contains("airlock_no_such_role_anywhere"));
    // The tests' service login is `postgres`, a superuser.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway.stderr().contains("is a superuser") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gateway
            .stderr()
            .contains("postgres upstream login `postgres` is a superuser"),
        "{}",
        gateway.stderr()
    );
}

/// A client that pipelines thousands of messages behind a failed one,
/// before any Sync: the server answers none of them, so the gateway must
/// settle them itself — the queue between its loops fills — and still
/// read the Sync and answer it, as the server would.
#[tokio::test]
async fn a_deep_pipeline_behind_an_error_without_sync_does_not_wedge_the_session() {
    let db = TestDb::create("deep_skip");
    let gateway = Gateway::start();
    let mut wire = gateway.agent_session(&db.name).await;
    wire.send(Frontend::parse("ok", "SELECT 1", &[]))
        .await
        .unwrap();
    let mut msgs = vec![Frontend::parse("", "SELEC broken", &[])];
    for _ in 0..9000 {
        msgs.push(Frontend::describe_statement("ok"));
    }
    msgs.push(Frontend::Sync);
    msgs.push(Frontend::query("SELECT 41 + 1"));
    let answered = tokio::time::timeout(Duration::from_secs(30), async {
        wire.send_all(&msgs).await?;
        let first = wire.recv_until_ready().await?;
        let second = wire.recv_until_ready().await?;
        Ok::<_, std::io::Error>((first, second))
    })
    .await
    .expect("the session answered within 30 s");
    let (first, second) = answered.expect("the session stayed open");
    assert!(
        first.iter().any(|m| m.is_error()),
        "the failed Parse is reported"
    );
    let row = second
        .iter()
        .find_map(|m| m.data_row())
        .expect("the next query runs");
    assert_eq!(row[0].as_deref(), Some(&b"42"[..]));
}
