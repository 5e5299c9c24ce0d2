//! Function calls through the gateway under the default policy, with
//! PostgreSQL's own statement log — and the side effects of a user
//! function — as the witness: a statement is a read only if everything it
//! calls is known harmless, so calls of functions that run SQL given as
//! text, act on the server, or are user code whose body Airlock cannot see
//! never reach the server, whatever their spelling or position, while
//! ordinary reads run.

mod support;

use std::time::{Duration, Instant};
use support::gateway::{psql_direct, Gateway, TestDb};
use support::pglog::{log_text, logged_database, run_marker, server_log};
use support::wire::{Frontend, Wire};

/// A fresh database whose every statement the server logs, with a user
/// function `app.touch()` that records each call in `app.calls`; the log
/// file; and a marker unique to this run.
fn logged_db(label: &str) -> (TestDb, String, String) {
    let db = logged_database(label);
    psql_direct(
        &db.name,
        "CREATE SCHEMA app; CREATE TABLE app.calls (at timestamptz); \
         CREATE TABLE docs (id int, body text); INSERT INTO docs VALUES (1, 'a b'); \
         CREATE FUNCTION app.touch() RETURNS int LANGUAGE sql \
           AS 'INSERT INTO app.calls VALUES (now()) RETURNING 1'; \
         CREATE FUNCTION app.rows() RETURNS SETOF int LANGUAGE sql \
           AS 'INSERT INTO app.calls VALUES (now()) RETURNING 1'",
    );
    let marker = run_marker(label);
    (db, server_log(), marker)
}

/// The SQLSTATE and message of the query's error, if any.
async fn run(wire: &mut Wire, sql: &str) -> Option<(String, String)> {
    let replies = wire.simple_query(sql).await.expect("query round trip");
    replies.iter().find(|m| m.is_error()).map(|e| {
        let fields = e.fields().unwrap_or_default();
        (
            fields.get(&b'C').cloned().unwrap_or_default(),
            fields.get(&b'M').cloned().unwrap_or_default(),
        )
    })
}

/// Waits until every allowed marker is in the log (the witness works), then
/// checks that no refused one is.
async fn witness(log: &str, allowed: &[String], refused: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !allowed.iter().all(|m| log_text(log).contains(m.as_str())) {
        assert!(
            Instant::now() < deadline,
            "allowed statements never appeared in {log}: is log_statement on?"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = log_text(log);
    for marker in refused {
        assert!(
            !text.contains(marker.as_str()),
            "a refused statement reached the server: {marker}"
        );
    }
}

/// (statement, verdict word in the refusal; None = runs)
const CASES: &[(&str, Option<&str>)] = &[
    // Reads that stay reads.
    (
        "SELECT lower(body), coalesce(body, ''), now(), count(*) OVER () FROM docs",
        None,
    ),
    (
        "SELECT string_agg(body, ','), array_agg(id), md5(string_agg(body, '')) FROM docs",
        None,
    ),
    (
        "SELECT g, to_char(now(), 'YYYY'), gen_random_uuid(), random() FROM generate_series(1, 3) g",
        None,
    ),
    ("SELECT pg_catalog.upper('x'), format('%s', 1)", None),
    // SQL given as text.
    (
        "SELECT * FROM ts_stat('SELECT to_tsvector(body) FROM docs')",
        Some("held"),
    ),
    (
        "SELECT pg_catalog.query_to_xml('SELECT app.touch()', true, false, '')",
        Some("held"),
    ),
    (
        "SELECT \"query_to_xml\"('SELECT app.touch()', true, false, '')",
        Some("held"),
    ),
    (
        "WITH x AS (SELECT query_to_xml('SELECT app.touch()', true, false, '') AS v) SELECT * FROM x",
        Some("held"),
    ),
    ("SELECT database_to_xml(true, false, '')", Some("held")),
    // User functions: their bodies are not visible.
    ("SELECT app.touch()", Some("held")),
    ("SELECT * FROM app.rows()", Some("held")),
    ("SELECT id FROM docs WHERE id = (SELECT app.touch())", Some("held")),
    ("SELECT * FROM docs, LATERAL app.rows() r", Some("held")),
    ("EXPLAIN ANALYZE SELECT app.touch()", Some("held")),
    ("SELECT \"NOW\"()", Some("held")),
    // Server state.
    ("SELECT pg_import_system_collations('app')", Some("held")),
    ("SELECT pg_stat_reset()", Some("denied")),
    ("SELECT PG_CATALOG.pg_stat_reset_shared('bgwriter')", Some("denied")),
    ("SELECT pg_replication_origin_create('airlock_evil')", Some("denied")),
    ("SELECT * FROM pg_ls_dir('.')", Some("held")),
];

#[tokio::test]
async fn only_calls_known_to_be_harmless_are_reads() {
    let (db, log, run_id) = logged_db("funcs");
    let gateway = Gateway::with_default_policy();
    let mut wire = gateway.agent_session(&db.name).await;
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for (i, (sql, expected)) in CASES.iter().enumerate() {
        let marker = format!("{run_id}c{i}");
        let got = run(&mut wire, &format!("/* {marker} */ {sql}")).await;
        match (expected, &got) {
            (None, None) => allowed.push(marker),
            (Some(word), Some((code, message))) => {
                assert_eq!(code, "42501", "{sql}: {message}");
                assert!(
                    message.contains(word),
                    "{sql}: expected `{word}` in {message:?}"
                );
                refused.push(marker);
            }
            _ => panic!("{sql}: expected {expected:?}, got {got:?}"),
        }
    }

    // The same calls through the extended protocol: refused at Parse.
    for (i, sql) in [
        "SELECT app.touch()",
        "SELECT * FROM ts_stat($1)",
        "INSERT INTO docs VALUES (1, query_to_xml('SELECT app.touch()', true, false, '')::text)",
    ]
    .iter()
    .enumerate()
    {
        let marker = format!("{run_id}e{i}");
        wire.send_all(&[
            Frontend::parse("", &format!("/* {marker} */ {sql}"), &[]),
            Frontend::bind("", "", &[], vec![], &[]),
            Frontend::execute("", 0),
            Frontend::Sync,
        ])
        .await
        .expect("send");
        let replies = wire.recv_until_ready().await.expect("replies");
        assert_eq!(
            replies[0].sqlstate().as_deref(),
            Some("42501"),
            "{sql}: {replies:?}"
        );
        refused.push(marker);
    }
    // A benign read through the extended protocol still runs.
    let marker = format!("{run_id}eok");
    wire.send_all(&[
        Frontend::parse("", &format!("/* {marker} */ SELECT lower('A'), now()"), &[]),
        Frontend::bind("", "", &[], vec![], &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .expect("send");
    let replies = wire.recv_until_ready().await.expect("replies");
    assert!(
        replies.iter().any(|m| m.data_row().is_some()),
        "{replies:?}"
    );
    allowed.push(marker);

    witness(&log, &allowed, &refused).await;
    // The user function's own witness: it never ran.
    assert_eq!(psql_direct(&db.name, "SELECT count(*) FROM app.calls"), "0");
}
