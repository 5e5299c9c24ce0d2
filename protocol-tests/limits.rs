//! Fair limits (`[limits]`) through the real gateway, with real clients on
//! both protocols: an idle-socket flood never keeps agents out, one
//! identity cannot take the upstream pool, statement rates are refused
//! with each protocol's own code, a stranger cannot lock out a real
//! identity, and the statement timeout is set on the server where the
//! agent cannot raise it.

mod support;

use std::process::Output;
use std::time::Duration;

use support::gateway::{psql_through, Gateway, Options, AGENT, AGENT_PASSWORD};
use support::mysql::mariadb_through;
use support::wire::{server_error, Frontend, Wire};
use tokio::io::AsyncReadExt;

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A second agent identity, `other`, besides the harness's `agent`.
const OTHER: &str = "\n[[identity]]\nname = \"other\"\nrole = \"agent\"\npassword = \"other-pw\"\n";

async fn select_one(wire: &mut Wire) {
    let rows = wire.simple_query("SELECT 1").await.expect("query");
    assert!(
        rows.iter().any(|m| m.data_row().is_some()),
        "{:?}",
        rows.iter().map(|m| m.type_name()).collect::<Vec<_>>()
    );
}

/// `count` idle TCP connections to `addr` from `source` (a loopback
/// address other than the agents'), which never send a byte.
async fn flood(addr: &str, source: &str, count: usize) -> Vec<tokio::net::TcpStream> {
    let target: std::net::SocketAddr = addr.parse().expect("address");
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{source}:0").parse().expect("source"))
            .expect("bind the flood's source address");
        match socket.connect(target).await {
            Ok(s) => sockets.push(s),
            Err(e) => panic!("flood connection failed: {e}"),
        }
    }
    sockets
}

/// Whether the gateway closed `s` (EOF, a reset, or a refusal followed by
/// EOF) within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A refusal's error message; the close follows.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn an_idle_socket_flood_never_keeps_agents_out() {
    // Without pre-authentication limits, 1000 idle sockets would take all
    // 50 of the gateway's connections and lock every agent out.
    let gateway = Gateway::start_with(Options {
        toml: "[server]\nmax_connections = 50\n\
               [limits]\npreauth_per_address = 20\npreauth_total = 100\nhandshake_timeout_secs = 2\n"
            .into(),
        ..Default::default()
    });
    let mut logged_in = gateway.agent_session("test").await;
    let mut sockets = flood(&gateway.addr, "127.0.0.2", 1000).await;
    // The MySQL listener shares the pre-auth count but not the sessions'.
    let mut mysql_flood = flood(&gateway.mysql_addr, "127.0.0.3", 200).await;

    // The agent that was in keeps working; a new one gets in.
    select_one(&mut logged_in).await;
    let mut fresh = gateway.agent_session("test").await;
    select_one(&mut fresh).await;
    let out = psql_through(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        "test",
        &["-c", "SELECT 'in'"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        "",
        "SELECT 'in'",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Idle sockets are closed fast: those beyond the address's share at
    // once, those within it at the handshake timeout.
    let (first, rest) = sockets.split_at_mut(1);
    assert!(closed_within(&mut first[0], Duration::from_secs(10)).await);
    assert!(closed_within(rest.last_mut().unwrap(), Duration::from_secs(10)).await);
    assert!(closed_within(&mut mysql_flood[0], Duration::from_secs(10)).await);
    select_one(&mut logged_in).await;
    let log = gateway.stderr();
    assert!(
        log.contains("too many not logged in"),
        "the refusals are logged"
    );
}

#[tokio::test]
async fn a_flood_from_many_addresses_fills_only_the_pre_auth_total() {
    let gateway = Gateway::start_with(Options {
        toml:
            "[server]\nmax_connections = 20\n\
               [limits]\npreauth_per_address = 50\npreauth_total = 30\nhandshake_timeout_secs = 3\n"
                .into(),
        ..Default::default()
    });
    let mut agents = Vec::new();
    for _ in 0..5 {
        agents.push(gateway.agent_session("test").await);
    }
    let mut held = Vec::new();
    for source in ["127.0.0.4", "127.0.0.5", "127.0.0.6"] {
        held.extend(flood(&gateway.addr, source, 30).await);
    }
    // Logged-in agents are untouched by a full pre-auth count.
    for agent in &mut agents {
        select_one(agent).await;
    }
    // Once the idle sockets time out, new logins succeed again.
    assert!(closed_within(&mut held[0], Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut fresh = gateway.agent_session("test").await;
    select_one(&mut fresh).await;
}

#[tokio::test]
async fn one_identity_filling_its_upstream_share_leaves_the_pool_to_others() {
    // A pool of 2: without a per-identity share, the agent's two sessions
    // would take it and `other` would find no upstream connection.
    let gateway = Gateway::start_with(Options {
        toml: format!(
            "[postgres]\nlisten = \"127.0.0.1:0\"\npool_size = 2\nacquire_timeout_secs = 1\n\
             [limits.identity.agent]\nupstream_per_identity = 1\n{OTHER}"
        ),
        ..Default::default()
    });
    let mut first = gateway.agent_session("test").await;
    // A held or long statement pins its session's connection: the share
    // counts connections, whatever they are doing.
    first
        .send(Frontend::query("SELECT pg_sleep(1.5)"))
        .await
        .unwrap();
    let err = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, "test", &[])
        .await
        .err()
        .expect("the agent's second session is refused");
    let server = server_error(&err).expect("a server error");
    assert_eq!(server.code(), "53300");
    assert!(
        server.message().contains("limits.upstream_per_identity"),
        "{}",
        server.message()
    );
    let mut other = Wire::connect(&gateway.addr, "other", "other-pw", "test", &[])
        .await
        .expect("another identity still gets a connection");
    select_one(&mut other).await;
    first.recv_until_ready().await.unwrap();
    // The share is freed with the session.
    first.terminate().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = gateway.agent_session("test").await;
    select_one(&mut again).await;
}

#[tokio::test]
async fn sessions_per_identity_are_limited_on_both_protocols() {
    let gateway = Gateway::start_with(Options {
        toml: format!("[limits]\nsessions_per_identity = 2\n{OTHER}"),
        ..Default::default()
    });
    let _a = gateway.agent_session("test").await;
    let _b = gateway.agent_session("test").await;
    let err = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, "test", &[])
        .await
        .err()
        .expect("a third session is refused");
    let server = server_error(&err).unwrap();
    assert_eq!(server.code(), "53300");
    assert!(server.message().contains("limits.sessions_per_identity"));
    // The count is per identity, across protocols.
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        "",
        "SELECT 1",
        &[],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("ERROR 1203"), "{}", text(&out));
    let out = mariadb_through(
        &gateway.mysql_addr,
        "other",
        "other-pw",
        "",
        "SELECT 1",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn the_statement_rate_is_refused_with_each_protocols_code() {
    let gateway = Gateway::start_with(Options {
        toml: format!(
            "[limits.identity.agent]\nstatements_per_second = 1\nstatement_burst = 3\n{OTHER}"
        ),
        ..Default::default()
    });
    // PostgreSQL: psql runs each -c as its own query.
    let mut args = vec!["-v", "VERBOSITY=verbose"];
    for _ in 0..6 {
        args.extend(["-c", "SELECT 1"]);
    }
    let out = psql_through(&gateway.addr, AGENT, AGENT_PASSWORD, "test", &args);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("ERROR:  53400"), "{said}");
    assert!(said.contains("limits.statements_per_second"), "{said}");
    // The other identity has its own bucket.
    let out = psql_through(&gateway.addr, "other", "other-pw", "test", &args);
    assert!(out.status.success(), "{}", text(&out));

    // A prepared statement executed again and again counts each run.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut wire = gateway.agent_session("test").await;
    wire.send_all(&[Frontend::parse("s", "SELECT 1", &[]), Frontend::Sync])
        .await
        .unwrap();
    wire.recv_until_ready().await.unwrap();
    let mut codes = Vec::new();
    for _ in 0..6 {
        wire.send_all(&[
            Frontend::bind("", "s", &[], Vec::new(), &[]),
            Frontend::execute("", 0),
            Frontend::Sync,
        ])
        .await
        .unwrap();
        let reply = wire.recv_until_ready().await.unwrap();
        codes.extend(reply.iter().filter_map(|m| m.sqlstate()));
    }
    assert!(codes.iter().any(|c| c == "53400"), "{codes:?}");

    // MySQL: the mariadb client sends each statement as its own COM_QUERY.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        "",
        "SELECT 1; SELECT 2; SELECT 3; SELECT 4; SELECT 5; SELECT 6",
        &[],
    );
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("ERROR 1226 (42000)"), "{said}");
    // Recorded in the audit log as a refusal by the rate rule.
    let audit = std::fs::read_dir(gateway.path("var/audit"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect::<String>();
    assert!(audit.contains("statement rate limit"));
}

#[tokio::test]
async fn a_stranger_spraying_names_cannot_lock_out_a_real_identity() {
    let gateway = Gateway::start_with(Options {
        toml: "[auth]\nmax_failures = 3\nlockout_secs = 60\n".into(),
        ..Default::default()
    });
    for name in ["root", "admin", "postgres", "nobody", "agent2"] {
        let err = Wire::connect(&gateway.addr, name, "guess", "test", &[])
            .await
            .err()
            .unwrap();
        let code = server_error(&err).unwrap().code().to_string();
        assert!(code == "28P01" || code == "28000", "{code}");
    }
    for name in ["root", "admin", "nobody"] {
        let out = mariadb_through(&gateway.mysql_addr, name, "guess", "", "SELECT 1", &[]);
        assert!(!out.status.success());
    }
    // The unknown names' bucket is locked…
    let err = Wire::connect(&gateway.addr, "someone", "guess", "test", &[])
        .await
        .err()
        .unwrap();
    assert!(server_error(&err)
        .unwrap()
        .message()
        .contains("too many failed logins"));
    // …the real identity on the same address is not, on either protocol.
    let mut wire = gateway.agent_session("test").await;
    select_one(&mut wire).await;
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        "",
        "SELECT 1",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    // Guesses at the real name's password still lock that name out
    // (MySQL: refused even with the right password, ER 1129).
    for _ in 0..3 {
        let out = mariadb_through(&gateway.mysql_addr, AGENT, "wrong", "", "SELECT 1", &[]);
        assert!(!out.status.success());
    }
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        "",
        "SELECT 1",
        &[],
    );
    assert!(text(&out).contains("ERROR 1129"), "{}", text(&out));
}

#[tokio::test]
async fn the_statement_timeout_is_enforced_upstream_and_cannot_be_raised() {
    let gateway = Gateway::start_with(Options {
        toml: "[limits]\nstatement_timeout_ms = 400\n".into(),
        ..Default::default()
    });
    let mut wire = gateway.agent_session("test").await;
    let shown = wire.simple_query("SHOW statement_timeout").await.unwrap();
    let value = shown
        .iter()
        .find_map(|m| m.data_row())
        .and_then(|r| r[0].clone())
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&value), "400ms");
    let reply = wire.simple_query("SELECT pg_sleep(3)").await.unwrap();
    assert!(
        reply
            .iter()
            .any(|m| m.sqlstate().as_deref() == Some("57014")),
        "the server cancels it"
    );
    for sql in [
        "SET statement_timeout = 0",
        "SET SESSION statement_timeout TO DEFAULT",
        "RESET statement_timeout",
        "RESET ALL",
        "SELECT set_config('statement_timeout', '0', false)",
        "BEGIN; SET LOCAL statement_timeout = 0; SELECT pg_sleep(1); COMMIT",
    ] {
        let reply = wire.simple_query(sql).await.unwrap();
        let codes: Vec<_> = reply.iter().filter_map(|m| m.sqlstate()).collect();
        assert_eq!(codes, ["42501"], "{sql}");
        let reply = wire.simple_query("ROLLBACK").await.unwrap();
        drop(reply);
    }
    let shown = wire.simple_query("SHOW statement_timeout").await.unwrap();
    let value = shown.iter().find_map(|m| m.data_row()).unwrap()[0].clone();
    assert_eq!(String::from_utf8_lossy(&value.unwrap()), "400ms");

    // MariaDB: max_statement_time, set by Airlock, cannot be changed.
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        "",
        "SELECT @@max_statement_time",
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0.400000");
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        "",
        "SELECT SLEEP(3)",
        &[],
    );
    let said = text(&out);
    assert!(
        said.contains("ERROR 1969") || said.trim() == "1",
        "interrupted by the server: {said}"
    );
    for sql in [
        "SET max_statement_time = 0",
        "SET @@session.max_statement_time = 0",
        "SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(1)",
    ] {
        let out = mariadb_through(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, "", sql, &[]);
        assert!(text(&out).contains("ERROR 1227"), "{sql}: {}", text(&out));
    }
}
