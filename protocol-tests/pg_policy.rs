//! Classification and policy in the gateway, against the real server: the
//! shipped default policy's verdicts on the wire, extended-protocol
//! enforcement, reload on SIGHUP, `airlock policy check`, and — with the
//! server's own statement log as the witness — that refused statements
//! never reach the upstream.

mod support;

use std::time::{Duration, Instant};
use support::gateway::{psql_direct, write, Gateway, Options, TestDb};
use support::pglog::{log_contains, logged_database, run_marker, server_log};
use support::wire::{Frontend, Wire};

/// A fresh database whose every statement the server logs, the log file,
/// and a marker unique to this run (pid and wall-clock time: markers from
/// earlier runs in the same log must never match).
fn logged_db(label: &str) -> (TestDb, String, String) {
    let db = logged_database(label);
    let marker = run_marker(label);
    (db, server_log(), marker)
}

/// What the client saw for one query: the SQLSTATE and message of its error, if any.
async fn run(wire: &mut Wire, sql: &str) -> Option<(String, String)> {
    let replies = wire.simple_query(sql).await.expect("query round trip");
    replies.iter().find(|m| m.is_error()).map(|e| {
        let fields = e.fields().unwrap();
        (fields[&b'C'].clone(), fields[&b'M'].clone())
    })
}

#[tokio::test]
async fn default_policy_verdicts_and_the_server_log_as_witness() {
    let (db, log, run_id) = logged_db("policy");
    psql_direct(&db.name, "CREATE TABLE items (id int, secret text)");
    let gateway = Gateway::with_default_policy();
    let mut wire = gateway.agent_session(&db.name).await;

    // (sql, expected: None = runs, Some((code, words in message)))
    let cases: &[(&str, Option<&str>)] = &[
        ("SELECT id FROM items", None),
        ("INSERT INTO items VALUES (1, 'a')", None),
        ("SET work_mem = '8MB'", None),
        ("BEGIN; UPDATE items SET id = 2; COMMIT", None),
        (
            "SELECT 'DROP TABLE items; GRANT ALL ON items TO public'",
            None,
        ),
        ("CREATE TABLE more_items (x int)", Some("held")),
        ("COPY items TO STDOUT", Some("held")),
        ("SELECT * INTO copied FROM items", Some("held")),
        ("GRANT SELECT ON items TO PUBLIC", Some("held")),
        ("SET ROLE postgres", Some("held")),
        ("SELECT set_config('role', 'postgres', false)", Some("held")),
        (
            "DO $$ BEGIN EXECUTE 'DROP TABLE items'; END $$",
            Some("held"),
        ),
        ("SELECT pg_read_file('/etc/passwd')", Some("held")),
        ("SELECT 1; DROP TABLE items", Some("held")),
        ("/* /* nested */ */ DROP TABLE items", Some("held")),
        (
            "WITH gone AS (DELETE FROM items RETURNING *) SELECT * FROM gone",
            None,
        ),
        ("EXECUTE never_prepared", Some("held")),
        ("this is not sql", Some("held")),
        ("ALTER SYSTEM SET work_mem = '1MB'", Some("denied")),
        (
            "SELECT pg_terminate_backend(pg_backend_pid())",
            Some("denied"),
        ),
        ("COPY items TO '/tmp/airlock-exfil'", Some("denied")),
        ("LOAD 'plpgsql'", Some("denied")),
    ];
    let mut refused_markers = Vec::new();
    let mut allowed_markers = Vec::new();
    for (i, (sql, expected)) in cases.iter().enumerate() {
        let marker = format!("{run_id}c{i}");
        let tagged = format!("/* {marker} */ {sql}");
        let got = run(&mut wire, &tagged).await;
        match (expected, &got) {
            (None, None) => allowed_markers.push(marker),
            (Some(word), Some((code, message))) => {
                assert_eq!(code, "42501", "{sql}: {message}");
                assert!(
                    message.contains(word),
                    "{sql}: expected `{word}` in {message:?}"
                );
                assert!(
                    message.contains("Airlock rule \""),
                    "{sql}: the message names the rule: {message:?}"
                );
                refused_markers.push(marker);
            }
            _ => panic!("{sql}: expected {expected:?}, got {got:?}"),
        }
    }
    // The log must show the allowed statements (so it is a working witness)…
    let deadline = Instant::now() + Duration::from_secs(10);
    while !allowed_markers.iter().all(|m| log_contains(&log, m)) {
        assert!(
            Instant::now() < deadline,
            "allowed statements never appeared in {log}: is log_statement on?"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // …and none of the refused ones.
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    for marker in &refused_markers {
        assert!(
            !text.contains(marker.as_str()),
            "a refused statement reached the upstream: {marker}"
        );
    }
}

#[tokio::test]
async fn extended_protocol_is_classified_at_parse_and_enforced_at_execute() {
    let (db, log, marker) = logged_db("policy_ext");
    let gateway = Gateway::with_default_policy();
    let mut wire = gateway.agent_session(&db.name).await;

    // A held statement in a pipeline: the Parse is refused, Bind and Execute
    // are skipped up to Sync, and the session goes on.
    wire.send_all(&[
        Frontend::parse(
            "",
            &format!("/* {marker} */ CREATE TABLE pipeline_t (x int)"),
            &[],
        ),
        Frontend::bind("", "", &[], vec![], &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0].sqlstate().as_deref(), Some("42501"));
    assert_eq!(replies[1].ready_status(), Some(b'I'));

    // An allowed statement runs normally afterwards.
    wire.send_all(&[
        Frontend::parse("ok", "SELECT 41 + 1", &[]),
        Frontend::bind("", "ok", &[], vec![], &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert!(
        replies.iter().any(|m| m
            .data_row()
            .is_some_and(|r| r[0].as_deref() == Some(&b"42"[..]))),
        "{replies:?}"
    );

    // Bind of a statement never parsed through Airlock, Execute of a portal never bound.
    wire.send_all(&[
        Frontend::bind("", "smuggled", &[], vec![], &[]),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_eq!(
        replies[0].sqlstate().as_deref(),
        Some("26000"),
        "{replies:?}"
    );
    wire.send_all(&[Frontend::execute("nowhere", 0), Frontend::Sync])
        .await
        .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_eq!(
        replies[0].sqlstate().as_deref(),
        Some("34000"),
        "{replies:?}"
    );

    // A refused Parse of the unnamed statement also forgets the previous one:
    // a later Bind of "" cannot run the old statement.
    wire.send_all(&[Frontend::parse("", "SELECT 1", &[]), Frontend::Sync])
        .await
        .unwrap();
    wire.recv_until_ready().await.unwrap();
    wire.send_all(&[
        Frontend::parse("", "GRANT ALL ON SCHEMA public TO PUBLIC", &[]),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    wire.recv_until_ready().await.unwrap();
    wire.send_all(&[
        Frontend::bind("", "", &[], vec![], &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_eq!(
        replies[0].sqlstate().as_deref(),
        Some("26000"),
        "{replies:?}"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !log_contains(&log, &marker),
        "the held Parse reached the upstream"
    );
}

#[tokio::test]
async fn sql_prepare_and_execute_are_judged_by_what_they_run() {
    let policy = r#"
[[rule]]
name = "reads"
classes = ["read", "session"]
action = "allow"

[[rule]]
name = "no-writes"
classes = ["write"]
action = "deny"
reason = "this agent is read-only"

[[rule]]
name = "rest"
action = "hold"
"#;
    let gateway = Gateway::start_with(Options {
        policy: Some(policy.into()),
        ..Default::default()
    });
    let mut wire = gateway.agent_session("test").await;
    assert_eq!(run(&mut wire, "PREPARE q AS SELECT 1").await, None);
    assert_eq!(run(&mut wire, "EXECUTE q").await, None);
    // A statement from an allowed SQL PREPARE may be bound by name too.
    wire.send_all(&[
        Frontend::bind("", "q", &[], vec![], &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert!(
        replies.iter().any(|m| m.data_row().is_some()),
        "{replies:?}"
    );
    // …but only by the name the server stores (`q`): a Bind of "Q" names a
    // different statement, one Airlock never saw prepared.
    wire.send_all(&[
        Frontend::bind("", "Q", &[], vec![], &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let replies = wire.recv_until_ready().await.unwrap();
    assert_eq!(
        replies[0].sqlstate().as_deref(),
        Some("26000"),
        "{replies:?}"
    );
    assert!(
        replies[0].fields().unwrap()[&b'M'].contains("Airlock"),
        "refused by Airlock, not forwarded to the server: {replies:?}"
    );
    let (code, message) = run(&mut wire, "PREPARE w AS DELETE FROM pg_class")
        .await
        .unwrap();
    assert_eq!(code, "42501");
    assert!(
        message.contains("no-writes") && message.contains("read-only"),
        "{message}"
    );
    // `w` was never prepared upstream, and Airlock does not vouch for it.
    let (_, message) = run(&mut wire, "EXECUTE w").await.unwrap();
    assert!(message.contains("\"rest\""), "{message}");
}

#[test]
fn policy_reloads_on_sighup_and_a_bad_reload_keeps_the_old_policy() {
    let gateway = Gateway::start_with(Options { policy: Some("[[rule]]\nname = \"ddl\"\nclasses = [\"ddl\"]\naction = \"deny\"\nreason = \"no schema changes\"\n\n[[rule]]\nname = \"rest\"\naction = \"allow\"\n".into()), ..Default::default() });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pid = gateway.pid();
    let policy_file = gateway.path("policies/00-test.toml");
    let attempt =
        |sql: &str| rt.block_on(async { run(&mut gateway.agent_session("test").await, sql).await });
    let name = format!("airlock_reload_{}", std::process::id());
    assert!(attempt(&format!("CREATE TEMP TABLE {name} (x int)")).is_some());

    std::fs::write(
        &policy_file,
        "[[rule]]\nname = \"everything\"\naction = \"allow\"\n",
    )
    .unwrap();
    hangup(pid);
    wait_until(|| attempt(&format!("CREATE TEMP TABLE {name} (x int)")).is_none());

    std::fs::write(
        &policy_file,
        "[[rule]]\nname = \"broken\"\naction = \"maybe\"\n",
    )
    .unwrap();
    hangup(pid);
    wait_until(|| gateway.stderr().contains("policy reload failed"));
    assert!(
        attempt(&format!("CREATE TEMP TABLE {name} (x int)")).is_none(),
        "the previous policy stays in force"
    );
    assert!(
        gateway.stderr().contains("00-test.toml"),
        "the error names the file"
    );
}

fn hangup(pid: u32) {
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_invalid_policy_stops_the_gateway_with_file_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    write(
        &policies,
        "10-team.toml",
        "[[rule]]\nname = \"x\"\n\nclasses = [\"reed\"]\naction = \"allow\"\n",
    );
    let out = std::process::Command::new(support::gateway::binary())
        .args(["serve"])
        .current_dir(dir.path())
        .env("AIRLOCK_POSTGRES_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("10-team.toml") && err.contains("line 4") && err.contains("reed"),
        "{err}"
    );
}

#[test]
fn policy_check_explains_decisions_for_people_and_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let check = |args: &[&str]| {
        std::process::Command::new(support::gateway::binary())
            .args(["policy", "check"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    // No policy folder here: the built-in default decides.
    let out = check(&["SELECT * FROM users"]);
    assert_eq!(out.status.code(), Some(0));
    let out = check(&["SELECT 1; DROP TABLE users"]);
    assert_eq!(out.status.code(), Some(3), "held");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DROP TABLE users") && text.contains("ddl") && text.contains("hold"),
        "{text}"
    );
    let out = check(&["--json", "ALTER SYSTEM SET x = 1"]);
    assert_eq!(out.status.code(), Some(4), "denied");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(json["verdict"], "deny", "{json}");
    let out = check(&[
        "--dialect",
        "mysql",
        "--json",
        "SELECT * FROM t INTO OUTFILE '/tmp/x'",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(json["verdict"], "hold", "{json}");
}
