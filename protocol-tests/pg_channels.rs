//! Every way a value can travel from PostgreSQL to a client through the
//! gateway, checked for values the masker would mask: not only DataRow and
//! COPY data but ParameterStatus, the fields of notices and errors, column
//! names, and values of every type in text and binary formats (floats,
//! money, numeric, ranges, multiranges, row types, arrays of records,
//! domains, bytea holding UTF-16 text), read by raw wire, psycopg (binary
//! and text cursors) and asyncpg. Also: a statement redefined with other
//! column types is never masked with the old description.
//!
//! The channels and what the relay does with each:
//!
//! | server message | treatment |
//! |---|---|
//! | DataRow, CopyData (COPY OUT) | masked by column type and format |
//! | ParameterStatus (startup and later) | value masked, name kept |
//! | ErrorResponse, NoticeResponse | every field masked but severity, SQLSTATE, positions and source location |
//! | NotificationResponse | payload masked |
//! | RowDescription | column names masked (dynamic SQL names columns by data) |
//! | CommandComplete | forwarded: a tag and row counts, no values |
//! | CopyBothResponse, FunctionCallResponse | the session ends (replication and fastpath are refused before them) |

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::gateway::{
    psql_direct, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD, ALLOW_ALL_POLICY, UPSTREAM_ADDR,
};
use support::wire::{BackendMsg, Frontend};

const EMAIL: &str = "jane.doe@example.org";
const CARD: &str = "4111111111111111";

fn masking_gateway() -> Gateway {
    Gateway::start_with(Options {
        policy: Some(format!(
            "{ALLOW_ALL_POLICY}\n[masking]\ndetectors = [\"all\"]\nstrategy = \"partial\"\n"
        )),
        ..Default::default()
    })
}

/// A database with one row holding an email and a card, and the types the
/// checks read them through.
fn payments_db(label: &str) -> TestDb {
    let db = TestDb::create(label);
    psql_direct(
        &db.name,
        &format!(
            "CREATE TABLE payments (id int, card int8, email text, amount numeric);
             INSERT INTO payments VALUES (1, {CARD}, '{EMAIL}', 12.50);
             CREATE DOMAIN card_d AS int8;
             CREATE DOMAIN card_f AS float8;
             CREATE TYPE holder AS (name text, cards int8[]);
             CREATE TYPE mood AS ENUM ('calm', 'busy');"
        ),
    );
    db
}

/// Every byte the client received, as text for searching.
fn all_bytes(msgs: &[BackendMsg]) -> String {
    let bytes: Vec<u8> = msgs.iter().flat_map(BackendMsg::to_bytes).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn leaks(text: &str) -> Vec<&'static str> {
    [EMAIL, CARD, "4.111111111111111", "4111111111111111.0"]
        .into_iter()
        .filter(|v| text.contains(v))
        .collect()
}

#[tokio::test]
async fn parameter_status_notice_fields_and_column_names_are_masked() {
    let db = payments_db("chan_msgs");
    let gateway = masking_gateway();
    let mut wire = gateway.agent_session(&db.name).await;

    // The row is masked; the ParameterStatus that follows carries the same
    // value and must be masked too, under its own name.
    // (Airlock's prefix stays in front: only what follows is the agent's.)
    let prefix = wire
        .params()
        .get("application_name")
        .expect("application_name at startup")
        .clone();
    assert!(
        prefix.len() + 1 + EMAIL.len() <= 63,
        "the email fits: {prefix}"
    );
    let msgs = wire
        .simple_query(&format!(
            "SELECT set_config('application_name', '{prefix}:' || email, false) FROM payments"
        ))
        .await
        .expect("set_config");
    assert!(
        msgs.iter().all(|m| !m.is_error()),
        "{:?}",
        msgs.iter().map(BackendMsg::fields).collect::<Vec<_>>()
    );
    let reported: Vec<(String, String)> = msgs
        .iter()
        .filter_map(BackendMsg::parameter_status)
        .collect();
    assert!(
        reported
            .iter()
            .any(|(n, v)| n == "application_name" && !v.is_empty()),
        "no application_name reported: {reported:?}"
    );
    assert_eq!(leaks(&all_bytes(&msgs)), Vec::<&str>::new(), "{reported:?}");

    // A new session on the same pooled connection is told the setting at
    // startup: masked as well.
    let second = gateway.agent_session(&db.name).await;
    let startup = all_bytes(second.startup_messages());
    assert_eq!(
        leaks(&startup),
        Vec::<&str>::new(),
        "startup ParameterStatus"
    );
    drop(second);

    // RAISE … USING puts any value in any field of a notice or an error.
    let raise = |level: &str| {
        format!(
            "DO $$ DECLARE v text := (SELECT email FROM payments); BEGIN \
             RAISE {level} 'note' USING DETAIL = v, HINT = v, COLUMN = v, CONSTRAINT = v, \
             DATATYPE = v, TABLE = v, SCHEMA = v; END $$"
        )
    };
    for level in ["NOTICE", "EXCEPTION"] {
        let msgs = wire.simple_query(&raise(level)).await.expect("raise");
        let fields: Vec<_> = msgs
            .iter()
            .filter(|m| m.is_error() || m.is_notice())
            .filter_map(BackendMsg::fields)
            .collect();
        assert!(
            fields
                .iter()
                .any(|f| f.contains_key(&b'c') && f.contains_key(&b't')),
            "{level}: the fields must stay: {fields:?}"
        );
        assert_eq!(
            leaks(&all_bytes(&msgs)),
            Vec::<&str>::new(),
            "{level}: {fields:?}"
        );
    }

    // A cursor on dynamic SQL names its column by data. Each time: a
    // description found clean before (`SELECT 1 AS note`) is not scanned
    // again, and that must not spare the one that follows.
    for round in 0..2 {
        let clean = wire
            .simple_query("SELECT 1 AS note")
            .await
            .expect("clean description");
        assert!(clean.iter().any(|m| m.row_description().is_some()));
        let msgs = wire
            .simple_query(
                "BEGIN; DO $$ DECLARE c refcursor := 'c'; BEGIN \
                 OPEN c FOR EXECUTE format('SELECT 1 AS %I', (SELECT email FROM payments)); END $$; \
                 FETCH ALL FROM c; COMMIT",
            )
            .await
            .expect("dynamic cursor");
        let described: Vec<_> = msgs
            .iter()
            .filter_map(BackendMsg::row_description)
            .collect();
        assert!(!described.is_empty() && msgs.iter().all(|m| !m.is_error()));
        assert_eq!(
            leaks(&all_bytes(&msgs)),
            Vec::<&str>::new(),
            "round {round}: {described:?}"
        );
    }

    // Fastpath calls are refused, so no FunctionCallResponse can come back.
    wire.send(Frontend::function_call(1598, &[], Vec::new(), 0))
        .await
        .expect("send fastpath");
    let msgs = wire.recv_until_ready().await.expect("fastpath answer");
    assert!(msgs.iter().any(BackendMsg::is_error));
    assert!(msgs.iter().all(|m| m.tag != b'V'));
}

/// Every string in a JSON value, as the driver wrote it, one per line
/// (serialised JSON would double the backslashes of Python's reprs).
fn strings(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s}\n"),
        Value::Array(a) => a.iter().map(strings).collect(),
        Value::Object(o) => o.values().map(strings).collect(),
        _ => String::new(),
    }
}

/// Where a driver connects, and as whom.
struct Login<'a> {
    addr: &'a str,
    user: &'a str,
    password: &'a str,
}

fn agent(gateway: &Gateway) -> Login<'_> {
    Login {
        addr: &gateway.addr,
        user: AGENT,
        password: AGENT_PASSWORD,
    }
}

/// The upstream itself, as the tests' superuser.
fn direct_login() -> Login<'static> {
    Login {
        addr: UPSTREAM_ADDR,
        user: "postgres",
        password: "",
    }
}

/// Runs `statements` through a driver program; returns its JSON lines.
fn driver_lines(login: Login, db: &TestDb, driver: &str, statements: &[String]) -> Vec<Value> {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let (host, port) = login.addr.rsplit_once(':').expect("host:port");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/drivers");
    let run = Command::new("python3")
        .args(["channels_read.py", driver])
        .arg(out.path())
        .current_dir(dir)
        .env("PGHOST", host)
        .env("PGPORT", port)
        .env("PGUSER", login.user)
        .env("PGPASSWORD", login.password)
        .env("PGDATABASE", &db.name)
        .env("PGSSLMODE", "disable")
        .env(
            "AIRLOCK_SQL",
            serde_json::to_string(statements).expect("json"),
        )
        .env("AIRLOCK_SETTINGS", "application_name")
        .output()
        .expect("run python3 (run .ci/install-test-deps.sh)");
    assert!(
        run.status.success(),
        "{driver}: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(out.path())
        .expect("driver output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The statements whose values are numbers or composites holding the card.
fn typed_statements() -> Vec<String> {
    [
        "SELECT card::float8, card::numeric, card::float4, card::numeric::money FROM payments",
        "SELECT card::numeric(20,1), (card::float8)::text::float8 FROM payments",
        "SELECT p FROM payments p",
        "SELECT int8range(card, card + 1), numrange(card, card + 1) FROM payments",
        "SELECT int8multirange(int8range(card, card + 1)) FROM payments",
        "SELECT ARRAY[ROW(1, card)] FROM payments",
        "SELECT ROW(ARRAY[card], email), ROW(card::float8) FROM payments",
        "SELECT card::card_d, card::card_f, ROW(email, ARRAY[card])::holder FROM payments",
        "SELECT ARRAY[card::float8], ARRAY[card::numeric::money] FROM payments",
        "SELECT 'calm'::mood, ROW(id, 'busy'::mood, card) FROM payments",
        "SELECT card::bit(64), card::bit(64)::varbit FROM payments",
        // Geometric values: float8 coordinates.
        "SELECT point(card, 0), box(point(card, 1), point(2, 3)), circle(point(card, 0), 2) FROM payments",
        "SELECT lseg(point(0, card), point(1, 1)), path(polygon(box(point(card, 1), point(2, 3)))), polygon(box(point(card, 1), point(2, 3))) FROM payments",
        // UTF-16 text built as bytes.
        "SELECT decode(regexp_replace(encode(convert_to(email, 'UTF8'), 'hex'), '(..)', '00\\1', 'g'), 'hex') FROM payments",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

#[test]
fn numbers_and_composites_are_masked_in_every_driver_and_format() {
    let db = payments_db("chan_types");
    let gateway = masking_gateway();
    let statements = typed_statements();
    // The UTF-16 bytes as Python writes them: NUL before each character.
    let wide_email: String = EMAIL.chars().map(|c| format!("\\x00{c}")).collect();
    let mut problems = Vec::new();
    for driver in ["psycopg", "psycopg-text", "asyncpg"] {
        let lines = driver_lines(agent(&gateway), &db, driver, &statements);
        // What the driver makes of the server's own answers: a type it
        // cannot decode directly is no masking fault.
        let direct = driver_lines(direct_login(), &db, driver, &statements);
        assert_eq!(lines.len(), statements.len());
        for (line, direct) in lines.iter().zip(&direct) {
            let sql = line["sql"].as_str().unwrap_or_default();
            if let Some(e) = line.get("error") {
                if direct.get("error").is_none() {
                    problems.push(format!("{driver}: {sql}: {e}"));
                }
                continue;
            }
            let text = strings(&line["rows"]);
            let mut found = leaks(&text);
            if text.contains(&wide_email[4..]) {
                found.push("UTF-16 email");
            }
            if !found.is_empty() {
                problems.push(format!("{driver}: {sql}: {found:?} in {text}"));
            }
            if line["rows"].as_array().is_none_or(Vec::is_empty) {
                problems.push(format!("{driver}: {sql}: no rows"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_first_statement_is_read_as_driver_baseline() {
    // Without the gateway the same statements show the card: the checks
    // above look for the forms the server really sends.
    let db = payments_db("chan_base");
    let lines = driver_lines(direct_login(), &db, "asyncpg", &typed_statements()[..1]);
    let text = strings(&lines[0]["rows"]);
    assert!(!leaks(&text).is_empty(), "{text}");
}

#[test]
fn statements_redefined_with_other_types_are_masked_by_their_own_columns() {
    let db = TestDb::create("chan_redefine");
    psql_direct(
        &db.name,
        &format!(
            "CREATE TABLE t (v text); INSERT INTO t VALUES ('{CARD}');
             CREATE TABLE u (v int8); INSERT INTO u VALUES ({CARD});"
        ),
    );
    let gateway = masking_gateway();
    // asyncpg caches the prepared statement by its SQL; after the column's
    // type changes it prepares again (binary results, new description).
    // psycopg's binary cursor runs SQL-level PREPARE / EXECUTE, redefined
    // between executions with another result type.
    let statements: Vec<String> = [
        "SELECT v FROM t",
        "ALTER TABLE t ALTER COLUMN v TYPE int8 USING v::int8",
        "SELECT v FROM t",
        "ALTER TABLE t ALTER COLUMN v TYPE float8 USING v::float8",
        "SELECT v FROM t",
        "PREPARE s AS SELECT v::text FROM u",
        "EXECUTE s",
        "DEALLOCATE s",
        "PREPARE s AS SELECT v FROM u",
        "EXECUTE s",
        "DEALLOCATE s",
        "PREPARE s AS SELECT v::float8 FROM u",
        "EXECUTE s",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // The card as an int8 and as a float8, in the hex of the bytes a
    // driver failed to decode.
    let card: i64 = CARD.parse().expect("card");
    let binary_forms = [
        format!("{card:016x}"),
        format!("{:016x}", (card as f64).to_bits()),
    ];
    for driver in ["asyncpg", "psycopg"] {
        let reset =
            format!("DROP TABLE t; CREATE TABLE t (v text); INSERT INTO t VALUES ('{CARD}')");
        psql_direct(&db.name, &reset);
        let direct = driver_lines(direct_login(), &db, driver, &statements);
        psql_direct(&db.name, &reset);
        let lines = driver_lines(agent(&gateway), &db, driver, &statements);
        if driver == "asyncpg" {
            let seen: String = direct
                .iter()
                .map(|l| format!("{} {}", l["rows"], l["raw"]))
                .collect();
            assert!(
                binary_forms.iter().any(|f| seen.contains(f.as_str())),
                "the check must be able to see the card's bytes: {seen}"
            );
        }
        for (line, direct) in lines.iter().zip(&direct) {
            let sql = line["sql"].as_str().unwrap_or_default();
            // asyncpg runs its cached `EXECUTE s` with the old description
            // and cannot always decode the new type: so it goes without
            // Airlock, and the bytes it choked on are the card's.
            assert!(
                line.get("error").is_none() || direct.get("error").is_some(),
                "{driver}: {sql}: {line} / directly: {direct}"
            );
            let text = format!("{} {}", strings(&line["rows"]), strings(&line["raw"]));
            assert_eq!(leaks(&text), Vec::<&str>::new(), "{driver}: {sql}: {text}");
            for form in &binary_forms {
                assert!(
                    !text.contains(form.as_str()),
                    "{driver}: {sql}: {form} in {text}"
                );
            }
        }
    }
}
