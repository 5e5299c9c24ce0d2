//! The relay's model of prepared statements and portals against a hostile
//! client: a name must run the statement the *server* holds under it, so
//! Airlock's model moves only on the server's confirmation. Each attack
//! below tries to make Airlock believe a name means an allowed statement
//! while the server keeps a held one under it; the held statement is a
//! `CREATE TABLE` whose table must never appear, and PostgreSQL's own log
//! must show no execution of it.

mod support;

use rand::{rngs::StdRng, Rng, SeedableRng};
use support::gateway::{default_policy, psql_direct, Gateway, Options, TestDb};
use support::pglog::{logged_database, run_marker, server_log};
use support::wire::{BackendMsg, Frontend, Wire};

/// The shipped policy with approvals on in defer mode: a held statement is
/// parsed upstream (nothing runs at Parse) and each Execute of it is
/// answered at once with a hold — the state in which a desync would let it
/// run.
fn default_gateway() -> Gateway {
    let policy = default_policy().replace("mode = \"wait\"", "mode = \"defer\"");
    assert!(
        policy.contains("mode = \"defer\""),
        "the default policy holds in wait mode"
    );
    Gateway::start_with(Options {
        policy: Some(policy),
        toml: "[approval]\nenabled = true\n".into(),
        ..Default::default()
    })
}

/// A database whose every statement PostgreSQL logs, and a marker unique
/// to this run.
fn logged_db(label: &str) -> (TestDb, String) {
    let db = logged_database(label);
    (db, run_marker(label))
}

/// Lines of the server log that show `needle` being executed.
fn executed_in_log(needle: &str) -> Vec<String> {
    let log = std::fs::read(server_log()).unwrap_or_default();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| l.contains(needle) && (l.contains("execute") || l.contains("statement:")))
        .map(str::to_string)
        .collect()
}

fn table_exists(db: &TestDb, table: &str) -> bool {
    psql_direct(
        &db.name,
        // Spelled apart so that this check is not itself a log line
        // naming the table.
        &format!(
            "SELECT count(*) FROM pg_class WHERE relname = '{}' || '{}'",
            &table[..table.len() / 2],
            &table[table.len() / 2..]
        ),
    )
    .trim()
        == "1"
}

/// Sends `msgs` in one write (the client pipelines everything) and reads
/// until every Sync and Query has its ReadyForQuery.
async fn pipeline(wire: &mut Wire, msgs: &[Frontend]) -> Vec<BackendMsg> {
    wire.send_all(msgs).await.expect("send");
    let mut readies = msgs
        .iter()
        .filter(|m| matches!(m, Frontend::Sync | Frontend::Query(_)))
        .count();
    let mut got = Vec::new();
    while readies > 0 {
        let m = wire.recv().await.expect("an answer for every Sync");
        if m.ready_status().is_some() {
            readies -= 1;
        }
        got.push(m);
    }
    got
}

/// Sends `msgs` one segment at a time, waiting for each ReadyForQuery.
async fn stepwise(wire: &mut Wire, msgs: &[Frontend]) -> Vec<BackendMsg> {
    let mut got = Vec::new();
    let mut batch = Vec::new();
    for m in msgs {
        batch.push(m.clone());
        if matches!(m, Frontend::Sync | Frontend::Query(_)) {
            got.extend(pipeline(wire, &batch).await);
            batch.clear();
        }
    }
    got
}

fn errors(msgs: &[BackendMsg]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.is_error())
        .filter_map(|m| m.fields())
        .map(|f| format!("{} {}", f[&b'C'], f[&b'M']))
        .collect()
}

fn bind(portal: &str, statement: &str) -> Frontend {
    Frontend::bind(portal, statement, &[], vec![], &[])
}

/// One attack: a sequence that must not create `held_<marker>`.
struct Attack {
    name: &'static str,
    build: fn(&str) -> Vec<Frontend>,
}

fn held(marker: &str) -> String {
    format!("CREATE TABLE held_{marker} (x int)")
}

fn attacks() -> Vec<Attack> {
    vec![
        Attack {
            // The issue's example: a redefinition the server refuses (42P05).
            name: "redefine_refused",
            build: |m| {
                vec![
                    Frontend::parse("s1", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::parse("s1", "SELECT 1", &[]),
                    Frontend::Sync,
                    bind("", "s1"),
                    Frontend::execute("", 0),
                    Frontend::Sync,
                ]
            },
        },
        Attack {
            // A Close the server skips (after an error in its segment) does
            // not free the name.
            name: "close_skipped_after_error",
            build: |m| {
                vec![
                    Frontend::parse("x", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::query("SELECT 1"),
                    Frontend::parse("bad", "SELECT 1/0", &[]),
                    bind("", "bad"),
                    Frontend::execute("", 0),
                    Frontend::close_statement("x"),
                    Frontend::Sync,
                    Frontend::parse("x", "SELECT 2", &[]),
                    Frontend::Sync,
                    bind("", "x"),
                    Frontend::execute("", 0),
                    Frontend::Sync,
                ]
            },
        },
        Attack {
            // One namespace: a SQL PREPARE of a taken name fails, and
            // EXECUTE runs what the protocol Parse defined.
            name: "sql_prepare_over_protocol_name",
            build: |m| {
                vec![
                    Frontend::parse("s2", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::query("PREPARE s2 AS SELECT 1"),
                    Frontend::query("EXECUTE s2"),
                ]
            },
        },
        Attack {
            // The same through a quoted name and a Bind.
            name: "sql_prepare_quoted_then_bind",
            build: |m| {
                vec![
                    Frontend::parse("Sq", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::query("PREPARE \"Sq\" AS SELECT 1"),
                    bind("", "Sq"),
                    Frontend::execute("", 0),
                    Frontend::Sync,
                ]
            },
        },
        Attack {
            // A portal redefinition the server refuses (42P03) inside a
            // transaction, where portals outlive Sync.
            name: "portal_redefine_refused",
            build: |m| {
                vec![
                    Frontend::query("BEGIN"),
                    Frontend::parse("h", &held(m), &[]),
                    bind("p", "h"),
                    Frontend::Sync,
                    Frontend::parse("a", "SELECT 1", &[]),
                    bind("p", "a"),
                    Frontend::Sync,
                    Frontend::query("ROLLBACK"),
                    Frontend::query("BEGIN"),
                    Frontend::parse("h2", &held(m), &[]),
                    bind("p2", "h2"),
                    Frontend::Sync,
                    Frontend::parse("a2", "SELECT 1", &[]),
                    bind("p2", "a2"),
                    Frontend::Sync,
                    Frontend::execute("p2", 0),
                    Frontend::Sync,
                    Frontend::query("ROLLBACK"),
                ]
            },
        },
        Attack {
            // PostgreSQL keys names on their first 63 bytes: two long names
            // with that prefix are one statement.
            name: "long_names_collide",
            build: |m| {
                let a = format!("{}A", "n".repeat(63));
                let b = format!("{}B", "n".repeat(63));
                vec![
                    Frontend::parse(&a, "SELECT 1", &[]),
                    Frontend::Sync,
                    Frontend::close_statement(&b),
                    Frontend::Sync,
                    Frontend::parse(&b, &held(m), &[]),
                    Frontend::Sync,
                    bind("", &a),
                    Frontend::execute("", 0),
                    Frontend::Sync,
                ]
            },
        },
        Attack {
            // DEALLOCATE ALL in an aborted transaction fails: the held
            // statement stays, and the later Parse of its name fails.
            name: "deallocate_all_refused",
            build: |m| {
                vec![
                    Frontend::parse("d", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::query("BEGIN"),
                    Frontend::query("SELECT 1/0"),
                    Frontend::query("DEALLOCATE ALL"),
                    Frontend::query("ROLLBACK"),
                    Frontend::parse("d", "SELECT 1", &[]),
                    Frontend::Sync,
                    bind("", "d"),
                    Frontend::execute("", 0),
                    Frontend::Sync,
                ]
            },
        },
        Attack {
            // A simple query's failing PREPARE does not make the server
            // skip the Bind after it: Airlock must not take the PREPARE
            // as done.
            name: "query_prepare_fails_midsegment",
            build: |m| {
                vec![
                    Frontend::parse("q", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::query("DEALLOCATE nope_not_there; PREPARE q AS SELECT 1"),
                    bind("", "q"),
                    Frontend::execute("", 0),
                    Frontend::Sync,
                ]
            },
        },
        Attack {
            // DEALLOCATE of a name spelled another way (quoted upper case
            // is another name) leaves the held statement in place.
            name: "deallocate_other_spelling",
            build: |m| {
                vec![
                    Frontend::parse("up", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::query("DEALLOCATE \"UP\""),
                    Frontend::parse("up", "SELECT 1", &[]),
                    Frontend::Sync,
                    bind("", "up"),
                    Frontend::execute("", 0),
                    Frontend::Sync,
                ]
            },
        },
        Attack {
            // A SQL EXECUTE inside a Parse runs what the name means when
            // the server gets there, not what it meant for an earlier
            // simple query that executed the same name.
            name: "execute_in_parse_after_redefinition",
            build: |m| {
                vec![
                    Frontend::query("PREPARE r AS SELECT 1"),
                    Frontend::query("EXECUTE r"),
                    Frontend::close_statement("r"),
                    Frontend::Sync,
                    Frontend::parse("r", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::parse("", "EXECUTE r", &[]),
                    bind("", ""),
                    Frontend::execute("", 0),
                    Frontend::Sync,
                ]
            },
        },
        Attack {
            // EXECUTE looks its name up when the portal runs: a Parse of
            // `EXECUTE n` while n is harmless, then n redefined, then the
            // portal run.
            name: "execute_in_parse_redefined_before_run",
            build: |m| {
                vec![
                    Frontend::parse("n", "SELECT 1", &[]),
                    Frontend::Sync,
                    Frontend::parse("e", "EXECUTE n", &[]),
                    Frontend::Sync,
                    Frontend::close_statement("n"),
                    Frontend::parse("n", &held(m), &[]),
                    Frontend::Sync,
                    bind("", "e"),
                    Frontend::execute("", 0),
                    Frontend::Sync,
                ]
            },
        },
        Attack {
            // The same with the portal bound before the redefinition.
            name: "execute_in_parse_portal_bound_before_redefinition",
            build: |m| {
                vec![
                    Frontend::query("BEGIN"),
                    Frontend::parse("n2", "SELECT 1", &[]),
                    Frontend::parse("e2", "EXECUTE n2", &[]),
                    bind("pe", "e2"),
                    Frontend::Sync,
                    Frontend::close_statement("n2"),
                    Frontend::parse("n2", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::execute("pe", 0),
                    Frontend::Sync,
                    Frontend::query("COMMIT"),
                ]
            },
        },
        Attack {
            // A statement whose text is itself an EXECUTE, run by a SQL
            // EXECUTE after the inner name changed.
            name: "execute_of_an_execute",
            build: |m| {
                vec![
                    Frontend::parse("n3", "SELECT 1", &[]),
                    Frontend::parse("e3", "EXECUTE n3", &[]),
                    Frontend::Sync,
                    Frontend::close_statement("n3"),
                    Frontend::parse("n3", &held(m), &[]),
                    Frontend::Sync,
                    Frontend::query("EXECUTE e3"),
                ]
            },
        },
    ]
}

#[tokio::test]
async fn names_follow_the_server_not_the_client() {
    let (db, run) = logged_db("names");
    // The witness works: a table made directly is seen.
    psql_direct(&db.name, "CREATE TABLE held_witness (x int)");
    assert!(table_exists(&db, "held_witness"));
    let gateway = default_gateway();
    let mut failures = Vec::new();
    for (i, attack) in attacks().iter().enumerate() {
        for (mode, piped) in [("stepwise", false), ("pipelined", true)] {
            let marker = format!("{run}a{i}{}", &mode[..1]);
            let msgs = (attack.build)(&marker);
            let mut wire = gateway.agent_session(&db.name).await;
            let got = if piped {
                pipeline(&mut wire, &msgs).await
            } else {
                stepwise(&mut wire, &msgs).await
            };
            // The session is still in step with the server afterwards.
            let after = wire
                .simple_query("SELECT 'still here'")
                .await
                .expect("query");
            let in_step = after
                .iter()
                .filter_map(|m| m.data_row())
                .any(|r| r[0].as_deref() == Some(&b"still here"[..]));
            let table = format!("held_{marker}");
            if table_exists(&db, &table.to_lowercase()) {
                failures.push(format!(
                    "{} ({mode}): the held statement ran; errors: {:?}",
                    attack.name,
                    errors(&got)
                ));
            }
            let executed = executed_in_log(&table);
            if !executed.is_empty() {
                failures.push(format!(
                    "{} ({mode}): the server log shows {executed:?}",
                    attack.name
                ));
            }
            if !in_step {
                failures.push(format!(
                    "{} ({mode}): out of step afterwards: {after:?}",
                    attack.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn ordinary_name_reuse_still_works() {
    let (db, _) = logged_db("reuse");
    let gateway = default_gateway();
    let mut wire = gateway.agent_session(&db.name).await;
    let row = |msgs: &[BackendMsg]| -> Vec<String> {
        msgs.iter()
            .filter_map(|m| m.data_row())
            .map(|r| String::from_utf8_lossy(r[0].as_deref().unwrap_or_default()).into_owned())
            .collect()
    };
    // Close and reparse in one pipeline, then bind the new definition.
    let got = pipeline(
        &mut wire,
        &[
            Frontend::parse("s", "SELECT 'one'", &[]),
            Frontend::Sync,
            Frontend::close_statement("s"),
            Frontend::parse("s", "SELECT 'two'", &[]),
            bind("", "s"),
            Frontend::execute("", 0),
            Frontend::Sync,
        ],
    )
    .await;
    assert_eq!(row(&got), ["two"], "{:?}", errors(&got));
    // A SQL PREPARE, its EXECUTE pipelined right behind it, a Bind of it,
    // and a DEALLOCATE + PREPARE under the same name.
    let got = pipeline(
        &mut wire,
        &[
            Frontend::query("PREPARE t AS SELECT 'three'"),
            Frontend::query("EXECUTE t"),
            bind("", "t"),
            Frontend::execute("", 0),
            Frontend::Sync,
            Frontend::query("DEALLOCATE t; PREPARE t AS SELECT 'four'"),
            Frontend::query("EXECUTE t"),
            bind("", "t"),
            Frontend::execute("", 0),
            Frontend::Sync,
            // Empty statements do not count among a query's statements.
            Frontend::query("PREPARE u AS SELECT 'five';; PREPARE v AS SELECT 'six'"),
            Frontend::query("EXECUTE v"),
            Frontend::query("DEALLOCATE ALL"),
            Frontend::parse("t", "SELECT 'seven'", &[]),
            bind("", "t"),
            Frontend::execute("", 0),
            Frontend::Sync,
        ],
    )
    .await;
    assert_eq!(
        row(&got),
        ["three", "three", "four", "four", "six", "seven"],
        "{:?}",
        errors(&got)
    );
    // The unnamed statement is gone after a simple query: Airlock says so
    // rather than guessing.
    let got = pipeline(
        &mut wire,
        &[
            Frontend::parse("", "SELECT 'eight'", &[]),
            Frontend::Sync,
            Frontend::query("SELECT 'nine'"),
            bind("", ""),
            Frontend::execute("", 0),
            Frontend::Sync,
        ],
    )
    .await;
    assert_eq!(row(&got), ["nine"]);
    assert_eq!(errors(&got).len(), 1, "{:?}", errors(&got));
}

/// Random sequences of Parse / Bind / Describe / Execute / Close / Sync and
/// SQL PREPARE / EXECUTE / DEALLOCATE over a few names, with statements that
/// succeed, fail at Parse or fail at Execute, sent pipelined. Invariant: a
/// held statement never runs (no table it would create exists, the server
/// log shows no execution of it), every Sync and Query is answered, and the
/// session stays in step with the server.
#[tokio::test]
async fn random_sequences_never_run_a_held_statement() {
    let (db, run) = logged_db("fuzz");
    let gateway = default_gateway();
    let seed: u64 = std::env::var("AIRLOCK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let long = "L".repeat(63);
    // Few names, so that redefinitions, collisions (the two long names are
    // one name to the server) and stale uses are the common case.
    let statements = ["s", "", &format!("{long}1"), &format!("{long}2")];
    let portals = ["", "p"];
    let rounds = 50;
    let mut held_tables = Vec::new();
    for round in 0..rounds {
        let mut wire = gateway.agent_session(&db.name).await;
        let mut msgs = Vec::new();
        for step in 0..rng.gen_range(5..40) {
            let name = statements[rng.gen_range(0..statements.len())];
            let portal = portals[rng.gen_range(0..portals.len())];
            let marker = format!("{run}r{round}s{step}");
            let sql = match rng.gen_range(0..5) {
                0..=1 => {
                    held_tables.push(format!("held_{marker}").to_lowercase());
                    held(&marker)
                }
                2 => "SELECT 1/0".to_string(),
                3 => "SELEC broken".to_string(),
                _ => format!("SELECT {step}"),
            };
            let sql_name = if name.is_empty() { "e" } else { name };
            let msg = match rng.gen_range(0..14) {
                0..=2 => Frontend::parse(name, &sql, &[]),
                3..=4 => bind(portal, name),
                5 => Frontend::describe_statement(name),
                6 => Frontend::describe_portal(portal),
                7..=8 => Frontend::execute(portal, 0),
                9 => Frontend::close_statement(name),
                10 => Frontend::close_portal(portal),
                11 => Frontend::query(&format!("PREPARE \"{sql_name}\" AS SELECT {step}")),
                12 => Frontend::query(&format!("DEALLOCATE \"{sql_name}\"")),
                _ => Frontend::query(if rng.gen_bool(0.5) {
                    "BEGIN"
                } else {
                    "ROLLBACK"
                }),
            };
            // A Query inside a segment the server is skipping after an
            // error gets no answer at all; the sequence keeps queries at
            // segment starts so that every one is answered.
            if matches!(msg, Frontend::Query(_))
                && !matches!(msgs.last(), None | Some(Frontend::Sync))
            {
                msgs.push(Frontend::Sync);
            }
            msgs.push(msg);
            if rng.gen_bool(0.3) {
                msgs.push(Frontend::Sync);
            }
        }
        msgs.push(Frontend::Sync);
        let got = pipeline(&mut wire, &msgs).await;
        wire.simple_query("ROLLBACK").await.expect("rollback");
        let after = wire.simple_query("SELECT 'in step'").await.expect("query");
        let in_step = after
            .iter()
            .filter_map(|m| m.data_row())
            .any(|r| r[0].as_deref() == Some(&b"in step"[..]));
        assert!(
            in_step,
            "seed {seed} round {round}: out of step after {msgs:?}\ngot {got:?}\nthen {after:?}"
        );
    }
    let mut ran = Vec::new();
    for table in &held_tables {
        if table_exists(&db, table) || !executed_in_log(table).is_empty() {
            ran.push(table.clone());
        }
    }
    assert!(
        ran.is_empty(),
        "seed {seed}: held statements ran: {ran:?} (rerun with AIRLOCK_FUZZ_SEED={seed})"
    );
}

/// A name redefined with SQL (`DEALLOCATE` + `PREPARE`) or Close + Parse
/// has the new statement's column types: rows are never masked with the
/// old ones (an int8 column's masking would pass an email through).
#[tokio::test]
async fn a_redefined_name_is_masked_with_its_own_columns() {
    let (db, _) = logged_db("stale");
    psql_direct(
        &db.name,
        "CREATE TABLE people (email text); INSERT INTO people VALUES ('alice.hostile@example.com')",
    );
    let gateway = default_gateway();
    let mut wire = gateway.agent_session(&db.name).await;
    let leaked = |msgs: &[BackendMsg]| {
        msgs.iter()
            .filter_map(|m| m.data_row())
            .flatten()
            .flatten()
            .any(|v| String::from_utf8_lossy(&v).contains("alice.hostile"))
    };
    for format in [0i16, 1] {
        let got = pipeline(
            &mut wire,
            &[
                Frontend::parse("s", "SELECT 4242::int8 AS n", &[]),
                Frontend::describe_statement("s"),
                Frontend::Sync,
                Frontend::bind("", "s", &[], vec![], &[format]),
                Frontend::execute("", 0),
                Frontend::Sync,
                Frontend::query("DEALLOCATE s; PREPARE s AS SELECT email FROM people"),
                Frontend::bind("", "s", &[], vec![], &[format]),
                Frontend::execute("", 0),
                Frontend::Sync,
                Frontend::query("DEALLOCATE s"),
                Frontend::parse("s", "SELECT 4242::int8 AS n", &[]),
                Frontend::Sync,
                Frontend::close_statement("s"),
                Frontend::parse("s", "SELECT email FROM people", &[]),
                Frontend::bind("", "s", &[], vec![], &[format]),
                Frontend::execute("", 0),
                Frontend::Sync,
                Frontend::query("DEALLOCATE ALL"),
            ],
        )
        .await;
        assert!(errors(&got).is_empty(), "{:?}", errors(&got));
        assert_eq!(got.iter().filter(|m| m.data_row().is_some()).count(), 3);
        assert!(!leaked(&got), "format {format}: {got:?}");
    }
}

/// A held extended statement's request carries its Bind parameters —
/// masked like literals — and the approval is bound to them: the same
/// statement with other values is another request.
#[tokio::test]
async fn held_bind_parameters_are_part_of_the_request() {
    let (db, _) = logged_db("params");
    let gateway = default_gateway();
    let mut wire = gateway.agent_session(&db.name).await;
    let mut ids = Vec::new();
    // The last two differ only past what approvers are shown of a value.
    let long_a = format!("{}a", "x".repeat(3000));
    let long_b = format!("{}b", "x".repeat(3000));
    for value in [
        "dora.secret@example.com",
        "other.value@example.org",
        &long_a,
        &long_b,
    ] {
        let got = pipeline(
            &mut wire,
            &[
                Frontend::parse(
                    "g",
                    "CREATE TABLE IF NOT EXISTS t AS SELECT $1::text AS v",
                    &[],
                ),
                Frontend::bind("", "g", &[], vec![Some(value.as_bytes().to_vec())], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
                Frontend::close_statement("g"),
                Frontend::Sync,
            ],
        )
        .await;
        let errs = errors(&got);
        assert!(
            errs.iter().any(|e| e.contains("held for approval")),
            "{errs:?}"
        );
        ids.push(errs.join(" "));
    }
    // What approvers see: the request as stored.
    let store = rusqlite::Connection::open(gateway.dir.path().join("var/approvals.sqlite3"))
        .expect("approval store");
    let bodies: Vec<String> = store
        .prepare("SELECT body FROM requests ORDER BY created_ms")
        .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
        .expect("requests");
    let hashes: std::collections::HashSet<String> = store
        .prepare("SELECT sql_hash FROM requests")
        .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
        .expect("hashes");
    assert_eq!(bodies.len(), 4, "one request per parameter value");
    assert_eq!(hashes.len(), 4, "the approval binds every value, whole");
    assert!(
        bodies[2].contains("values shown cut short"),
        "{}",
        bodies[2]
    );
    for body in &bodies {
        assert!(body.contains("parameters: $1 = "), "{body}");
        assert!(!body.contains("dora.secret@example.com"), "masked: {body}");
    }
    assert!(!ids.is_empty());
}

/// A held extended statement announces itself at once: the answers to the
/// messages before its Execute and the hold's notice reach the client while
/// it waits, though the client's Sync is still behind the Execute.
#[tokio::test]
async fn an_extended_hold_announces_itself_while_it_waits() {
    let (db, _) = logged_db("notice");
    let gateway = Gateway::start_with(Options {
        policy: Some(default_policy()),
        toml: "[approval]\nenabled = true\n".into(),
        ..Default::default()
    });
    let mut wire = gateway.agent_session(&db.name).await;
    wire.send_all(&[
        Frontend::parse("", "CREATE TABLE announced (x int)", &[]),
        bind("", ""),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .expect("send");
    let mut seen = Vec::new();
    loop {
        let m = wire.recv().await.expect("answers before the decision");
        let notice = m.is_notice();
        seen.push(m.tag_char());
        if notice {
            break;
        }
    }
    assert_eq!(seen, ['1', '2', 'N']);
    // Cancelling withdraws the request; the statement never runs.
    wire.cancel().await.expect("cancel");
    let rest = wire.recv_until_ready().await.expect("the withdrawal");
    assert!(
        errors(&rest).iter().any(|e| e.starts_with("57014")),
        "{:?}",
        errors(&rest)
    );
    assert!(!table_exists(&db, "announced"));
}

/// A statement Airlock refuses inside a transaction leaves it failed, as a
/// server error would: the COMMIT after it rolls back, on both protocols.
#[tokio::test]
async fn a_refusal_aborts_the_transaction_like_a_server_error() {
    let (db, _) = logged_db("abort");
    psql_direct(&db.name, "CREATE TABLE kept (x int)");
    let gateway = default_gateway();
    let mut wire = gateway.agent_session(&db.name).await;
    let tags = |msgs: &[BackendMsg]| -> Vec<String> {
        msgs.iter().filter_map(|m| m.command_tag()).collect()
    };
    // Simple protocol.
    let mut got = Vec::new();
    for sql in [
        "BEGIN",
        "INSERT INTO kept VALUES (1)",
        "CREATE TABLE nope (x int)",
    ] {
        got.extend(wire.simple_query(sql).await.expect("query"));
    }
    assert_eq!(
        got.last().and_then(|m| m.ready_status()),
        Some(b'E'),
        "{got:?}"
    );
    let commit = wire.simple_query("COMMIT").await.expect("commit");
    assert_eq!(tags(&commit), ["ROLLBACK"]);
    // Extended protocol: the refused Parse fails the transaction.
    let got = pipeline(
        &mut wire,
        &[
            Frontend::query("BEGIN"),
            Frontend::parse("", "INSERT INTO kept VALUES (2)", &[]),
            bind("", ""),
            Frontend::execute("", 0),
            Frontend::Sync,
            Frontend::parse("", "CREATE TABLE nope (x int)", &[]),
            bind("", ""),
            Frontend::execute("", 0),
            Frontend::Sync,
            Frontend::query("COMMIT"),
        ],
    )
    .await;
    assert!(
        errors(&got).iter().any(|e| e.contains("held for approval")),
        "{:?}",
        errors(&got)
    );
    assert_eq!(
        tags(&got).last().map(String::as_str),
        Some("ROLLBACK"),
        "{got:?}"
    );
    assert_eq!(
        psql_direct(&db.name, "SELECT count(*) FROM kept").trim(),
        "0"
    );
    // Outside a transaction a refusal changes nothing for what follows.
    let got = pipeline(
        &mut wire,
        &[
            Frontend::query("CREATE TABLE nope (x int)"),
            Frontend::query("INSERT INTO kept VALUES (3)"),
        ],
    )
    .await;
    assert_eq!(tags(&got), ["INSERT 0 1"]);
    assert_eq!(
        psql_direct(&db.name, "SELECT count(*) FROM kept").trim(),
        "1"
    );
}

/// Whatever changes the client encoding behind the classifier's back (here
/// a function whose body sets it), the server reports it, and a session in
/// an encoding Airlock cannot read ends before another statement runs.
#[tokio::test]
async fn a_session_whose_encoding_moves_under_it_ends() {
    let (db, run) = logged_db("enc");
    psql_direct(
        &db.name,
        "CREATE FUNCTION to_sjis() RETURNS text LANGUAGE sql AS \
         $$ SELECT set_config('client_encoding', 'SJIS', false) $$",
    );
    let gateway = Gateway::start();
    let mut wire = gateway.agent_session(&db.name).await;
    wire.send_all(&[
        Frontend::query("SELECT to_sjis()"),
        Frontend::query(&format!("SELECT 'after_{run}'")),
    ])
    .await
    .expect("send");
    let mut fatal = None;
    while let Ok(Some(m)) = wire.recv_or_eof().await {
        assert!(
            m.parameter_status()
                .is_none_or(|(n, _)| n != "client_encoding"),
            "{m:?}"
        );
        if m.is_error() {
            fatal = m.fields();
        }
    }
    let fatal = fatal.expect("a FATAL before the connection closes");
    assert_eq!(fatal[&b'C'], "0A000", "{fatal:?}");
    assert!(executed_in_log(&format!("after_{run}")).is_empty());

    // The same through the extended protocol, everything in one pipeline.
    let mut wire = gateway.agent_session(&db.name).await;
    wire.send_all(&[
        Frontend::parse("", "SELECT to_sjis()", &[]),
        bind("", ""),
        Frontend::execute("", 0),
        Frontend::parse("", &format!("SELECT 'later_{run}'"), &[]),
        bind("", ""),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .expect("send");
    let got = wire.recv_until_ready().await.expect("answers");
    let codes: Vec<String> = got.iter().filter_map(|m| m.sqlstate()).collect();
    // The statement behind the opaque one is refused until the Sync; the
    // refusal fails the segment's implicit transaction, so the encoding
    // change rolls back with it and the session goes on in UTF8.
    assert_eq!(codes, ["0A000"], "{got:?}");
    assert!(executed_in_log(&format!("later_{run}")).is_empty());
    let shown = wire
        .simple_query("SHOW client_encoding")
        .await
        .expect("show");
    let encoding = shown.iter().find_map(|m| m.data_row()).expect("a row");
    assert_eq!(encoding[0].as_deref(), Some(&b"UTF8"[..]));
}
