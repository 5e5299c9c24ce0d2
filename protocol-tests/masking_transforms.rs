//! Reversible transforms of masked columns, end to end with the shipped
//! default policy: reading a column that holds sensitive values through
//! `reverse()`, an encoding, a digest, arithmetic, a substring or a
//! pattern waits for a DBA (refused at once here: approvals are off), on
//! PostgreSQL and MariaDB — from the very first statement, before anyone
//! has read the column through the gateway (the gateway samples the table
//! first) — and the learned columns survive a restart.

mod support;

use support::gateway::{
    psql_direct, psql_through, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD,
};
use support::mysql::{mariadb_direct, mariadb_through, MyDb};

const EMAIL: &str = "ada.lovelace@example.com";
const CARD: &str = "4111111111111111";

fn default_policy_gateway() -> Gateway {
    Gateway::with_default_policy()
}

/// psql through the gateway: `Ok(output)` or `Err(stderr)`.
fn psql(gateway: &Gateway, db: &str, sql: &str) -> Result<String, String> {
    let out = psql_through(&gateway.addr, AGENT, AGENT_PASSWORD, db, &["-c", sql]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() && stderr.is_empty() {
        Ok(stdout)
    } else {
        Err(stderr)
    }
}

/// The mariadb client through the gateway: `Ok(output)` or `Err(stderr)`.
fn mariadb(gateway: &Gateway, db: &str, sql: &str) -> Result<String, String> {
    let out = mariadb_through(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, db, sql, &[]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn held(result: Result<String, String>, what: &str) {
    match result {
        Ok(out) => panic!("{what} ran: {out}"),
        Err(e) => assert!(
            e.contains("hold-transforms-of-masked-columns"),
            "{what}: not refused by the transforms rule: {e}"
        ),
    }
}

fn pg_table(db: &TestDb) {
    psql_direct(
        &db.name,
        &format!(
            "CREATE TABLE people (id int, nick text, email text, card bigint);
             INSERT INTO people VALUES (1, 'ada', '{EMAIL}', {CARD});"
        ),
    );
}

#[test]
fn pg_transforms_of_a_masked_column_are_held_from_the_first() {
    let db = TestDb::create("xform");
    pg_table(&db);
    let gateway = default_policy_gateway();
    // Nobody has read the column through this gateway: it samples the
    // table before deciding, and the very first transform waits.
    held(
        psql(&gateway, &db.name, "SELECT reverse(email) FROM people"),
        "the first transform",
    );
    // A plain read is masked.
    let plain = psql(&gateway, &db.name, "SELECT email, card FROM people").expect("plain read");
    assert!(!plain.contains(EMAIL) && !plain.contains(CARD), "{plain}");
    // Cast to a float or money and then to text, the card is a number
    // rendering inside text: still masked.
    let rendered = psql(
        &gateway,
        &db.name,
        "SELECT card::float8::text, card::numeric::money::text, ARRAY[card::float8]::text FROM people",
    )
    .expect("renderings");
    assert!(
        !rendered.contains("4.111111111111111e+15") && !rendered.contains("4,111,111"),
        "{rendered}"
    );
    for sql in [
        "SELECT reverse(email) FROM people",
        "SELECT encode(convert_to(email, 'UTF8'), 'base64') FROM people",
        "SELECT encode(p.card::text::bytea, 'hex') FROM people p",
        "SELECT card + 1 FROM people",
        "SELECT left(card::text, 8), right(card::text, 8) FROM people",
        "SELECT md5(email) FROM people",
        "SELECT string_agg(email, '') FROM people",
        "SELECT id FROM people WHERE substr(email, 1, 1) = 'a'",
        "SELECT translate(\"email\", 'a', 'b') FROM people",
        "SELECT md5(p::text) FROM people p",
        "WITH x AS (SELECT card * 2 AS c FROM people) SELECT c FROM x",
        // Through an alias: the transform reads what the alias names.
        "SELECT reverse(x) FROM (SELECT email AS x FROM people) s",
        // Truncating casts, rounding, trims of chosen characters, and
        // parsers whose errors quote part of the value.
        "SELECT email::varchar(12) FROM people",
        "SELECT round(card::numeric, -4) FROM people",
        "SELECT mod(card, 100000000) FROM people",
        "SELECT card::float4 FROM people",
        "SELECT rtrim(email, 'moc.elpmaxe@') FROM people",
        "SELECT to_date(email, 'YYYY') FROM people",
        "SELECT email::json FROM people",
        // Numbers spelled in words or as bytes; names parsed into parts.
        "SELECT cash_words(card::money) FROM people",
        "SELECT int8send(card) FROM people",
        "SELECT email::regclass FROM people",
        // A card as a MAC address; the first character alone.
        "SELECT card::text::macaddr8 FROM people",
        "SELECT card::text::xid FROM people",
        "SELECT email::char FROM people",
        "SELECT email::\"char\" FROM people",
        "SELECT ~card FROM people",
        // One higher: no longer a valid card.
        "SELECT int8inc(card) FROM people",
        "SELECT degrees(card) FROM people",
        // A digest, reversed by trying every card of a known issuer.
        "SELECT hashint8(card) FROM people",
    ] {
        held(psql(&gateway, &db.name, sql), sql);
    }
    // Columns masking never flagged, and plain reads, still run.
    for sql in [
        "SELECT reverse(nick), id + 1 FROM people",
        "SELECT email, upper(nick) FROM people",
        "SELECT string_agg(email, ', ') FROM people",
    ] {
        assert!(psql(&gateway, &db.name, sql).is_ok(), "{sql}");
    }
    // What the gateway learned survives a restart: with the values gone
    // from the table, a new sample finds nothing, and the column is still
    // known.
    psql_direct(&db.name, "UPDATE people SET email = 'none', card = 1");
    let dir = gateway.stop();
    let config = dir.path().join("airlock.toml");
    let again = Gateway::spawn(
        dir,
        &["serve", "--config", config.to_str().expect("utf-8 path")],
        &[],
    );
    held(
        psql(&again, &db.name, "SELECT reverse(email) FROM people"),
        "after a restart",
    );
}

#[test]
fn pg_patterns_and_transforms_asked_first_of_any_table_are_held() {
    let db = TestDb::create("xfirst");
    psql_direct(
        &db.name,
        &format!(
            "CREATE SCHEMA crm;
             CREATE TABLE crm.\"Contact List\" (id int, nick text, \"E-Mail\" text, phone text);
             INSERT INTO crm.\"Contact List\" VALUES (1, 'ada', '{EMAIL}', '+44 20 7946 0958');
             CREATE TABLE cards (id int, pan text);
             INSERT INTO cards VALUES (1, '{CARD}');
             CREATE VIEW card_view AS SELECT id, pan FROM cards;
             CREATE TABLE notes (id int, body text);
             INSERT INTO notes VALUES (1, 'call back on Tuesday');"
        ),
    );
    // Each statement is the first to name its table, on a gateway of its
    // own: nothing was learned from an earlier result.
    for sql in [
        "SELECT id FROM crm.\"Contact List\" WHERE \"E-Mail\" LIKE 'a%'",
        "SELECT count(*) FROM crm.\"Contact List\" c WHERE c.\"E-Mail\" > 'm'",
        "SELECT encode(convert_to(phone, 'UTF8'), 'base64') FROM crm.\"Contact List\"",
        "WITH c AS (SELECT pan FROM cards) SELECT reverse(pan) FROM c",
        "SELECT left(pan, 8), right(pan, 8) FROM card_view",
        "SELECT id FROM cards WHERE to_tsvector(pan) @@ to_tsquery('4111')",
    ] {
        let gateway = default_policy_gateway();
        held(psql(&gateway, &db.name, sql), sql);
    }
    // The table that matters cannot hide behind more tables than the
    // gateway samples for one statement.
    let decoys: Vec<String> = (0..9).map(|i| format!("a{i}")).collect();
    for d in &decoys {
        psql_direct(
            &db.name,
            &format!("CREATE TABLE {d} (x int); INSERT INTO {d} VALUES (1)"),
        );
    }
    let gateway = default_policy_gateway();
    let hidden = format!("SELECT reverse(c.pan) FROM {}, cards c", decoys.join(", "));
    held(
        psql(&gateway, &db.name, &hidden),
        "a transform behind nine tables",
    );
    // A table whose sample holds nothing sensitive is not held, and the
    // sampled connection goes back to the pool able to write.
    let gateway = default_policy_gateway();
    assert!(
        psql(&gateway, &db.name, "SELECT reverse(body) FROM notes").is_ok(),
        "a transform of a column without sensitive values"
    );
    for _ in 0..3 {
        let wrote = psql(&gateway, &db.name, "INSERT INTO notes VALUES (2, 'x')");
        assert!(wrote.is_ok(), "{wrote:?}");
    }
}

#[test]
fn pg_a_name_the_session_resolves_through_its_own_search_path_is_sampled() {
    let db = TestDb::create("xpath");
    psql_direct(
        &db.name,
        &format!(
            "CREATE SCHEMA vault;
             CREATE TABLE vault.people (id int, email text);
             INSERT INTO vault.people VALUES (1, '{EMAIL}');
             CREATE TABLE public.people (id int, email text);
             INSERT INTO public.people VALUES (1, 'nobody');"
        ),
    );
    let gateway = default_policy_gateway();
    // On the default search path `people` is a decoy without sensitive
    // values; the session means another table of that name. The gateway
    // samples every table the name may mean.
    held(
        psql(
            &gateway,
            &db.name,
            "SET search_path = vault; SELECT encode(convert_to(email, 'UTF8'), 'hex') FROM people",
        ),
        "a transform through the session's own search path",
    );
    // A name that means no table at all cannot be sampled: held, not run
    // unexamined.
    let gateway = default_policy_gateway();
    held(
        psql(&gateway, &db.name, "SELECT reverse(email) FROM nowhere"),
        "a transform of a table that is not there",
    );
}

#[test]
fn pg_a_column_privilege_is_sampled_a_column_at_a_time() {
    let db = TestDb::create("xpriv");
    pg_table(&db);
    let role = format!("airlock_xpriv_{}", std::process::id());
    psql_direct(
        &db.name,
        &format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} NOLOGIN;
             GRANT SELECT (id, nick, email) ON people TO {role};"
        ),
    );
    let gateway = Gateway::start_with(Options {
        policy: Some(support::gateway::default_policy()),
        toml: format!(
            "[[identity]]\nname = \"narrow\"\nrole = \"agent\"\npassword = \"{AGENT_PASSWORD}\"\nupstream_role = \"{role}\"\n"
        ),
        ..Default::default()
    });
    let out = psql_through(
        &gateway.addr,
        "narrow",
        AGENT_PASSWORD,
        &db.name,
        &["-c", "SELECT md5(email) FROM people"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // `SELECT *` is refused (no privilege on card); the column alone is
    // not, and its sample holds an address.
    assert!(
        stderr.contains("hold-transforms-of-masked-columns"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    drop(gateway);
    psql_direct(
        &db.name,
        &format!("REVOKE ALL ON people FROM {role}; DROP ROLE {role};"),
    );
}

#[test]
fn mysql_transforms_of_a_masked_column_are_held_from_the_first() {
    let db = MyDb::create("xform");
    mariadb_direct(
        &db.name,
        &format!(
            "CREATE TABLE people (id int, nick text, email text, card bigint);
             INSERT INTO people VALUES (1, 'ada', '{EMAIL}', {CARD});"
        ),
    );
    let gateway = default_policy_gateway();
    let run = |sql: &str| mariadb(&gateway, &db.name, sql);
    // The first statement of all, before any result taught the gateway.
    held(
        run("SELECT id FROM people WHERE email LIKE 'a%'"),
        "the first pattern",
    );
    held(
        run("SELECT CONV(card, 10, 36) FROM people"),
        "the first transform of card",
    );
    let plain = run("SELECT email, card FROM people").expect("plain read");
    assert!(!plain.contains(EMAIL) && !plain.contains(CARD), "{plain}");
    for sql in [
        "SELECT id FROM people WHERE email REGEXP '^a'",
        "SELECT id FROM people WHERE MATCH (email) AGAINST ('ada')",
        "SELECT HEX(email) FROM people",
        "SELECT TO_BASE64(email) FROM people",
        "SELECT REVERSE(`email`) FROM people",
        "SELECT CONVERT(email USING utf16) FROM people",
        "SELECT card DIV 1 + 0 FROM people",
        "SELECT GROUP_CONCAT(card SEPARATOR '') FROM people",
        "SELECT MID(email, 2, 5) FROM people",
        "SELECT CAST(email AS BINARY) FROM people",
        "SELECT CAST(email AS CHAR(12)) FROM people",
        "SELECT TRUNCATE(card, -4) FROM people",
        "SELECT MOD(card, 100000000) FROM people",
        "SELECT TRIM(TRAILING 'example.com' FROM email) FROM people",
        "SELECT INET_NTOA(card) FROM people",
        "SELECT SEC_TO_TIME(card) FROM people",
        "SELECT NATURAL_SORT_KEY(card) FROM people",
        "SELECT SFORMAT('{:x}', card) FROM people",
        "SELECT WEIGHT_STRING(email) FROM people",
        "SELECT BIT_COUNT(card) FROM people",
        // 2⁶⁴ − 1 − card: every digit changed.
        "SELECT ~card FROM people",
    ] {
        held(run(sql), sql);
    }
    assert!(run("SELECT HEX(nick), id + 1 FROM people").is_ok());
}

/// A table of guesses matched against a masked column — joined, looked up
/// in a subquery, intersected, or listed value by value past the limit —
/// says which guesses are right in one statement: each waits, from the
/// first statement on. Joins on other columns still run.
#[test]
fn pg_matching_a_masked_column_against_guesses_is_held() {
    let db = TestDb::create("xguess");
    pg_table(&db);
    psql_direct(
        &db.name,
        &format!(
            "CREATE TABLE guesses (n int, e text);
             INSERT INTO guesses VALUES (1, 'nobody@example.com'), (2, '{EMAIL}');
             CREATE TABLE visits (person int, day date);
             INSERT INTO visits VALUES (1, '2026-01-01');"
        ),
    );
    let gateway = default_policy_gateway();
    let ors = (0..11)
        .map(|i| format!("email = 'guess{i}@example.com'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    for sql in [
        "SELECT g.n FROM people p JOIN guesses g ON p.email = g.e".to_string(),
        "SELECT n FROM guesses g WHERE g.e IN (SELECT email FROM people)".to_string(),
        "SELECT n FROM guesses g WHERE EXISTS (SELECT 1 FROM people p WHERE p.email = g.e)"
            .to_string(),
        "SELECT count(*) FROM (SELECT e FROM guesses INTERSECT SELECT email FROM people) s"
            .to_string(),
        "SELECT g - 4111111111111000 FROM generate_series(4111111111111000, 4111111111111999) g \
         JOIN people p ON p.card = g"
            .to_string(),
        format!("SELECT id FROM people WHERE {ors}"),
        format!(
            "SELECT id FROM people WHERE email = ANY ('{{{}}}'::text[])",
            (0..11)
                .map(|i| format!("g{i}@example.com"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        "SELECT 'g', e FROM guesses UNION ALL SELECT 'p', email FROM people ORDER BY 2".to_string(),
        "SELECT g.n FROM people p, guesses g WHERE texteq(p.email, g.e)".to_string(),
        "SELECT id, email = 'guess' || generate_series(1, 500) || '@example.com' FROM people"
            .to_string(),
        "SELECT id FROM people WHERE text_lt(email, 'm')".to_string(),
        "SELECT id FROM people WHERE arraycontains(ARRAY['a@b.c', 'd@e.f'], ARRAY[email])"
            .to_string(),
    ] {
        held(psql(&gateway, &db.name, &sql), &sql);
    }
    for sql in [
        "SELECT p.nick, v.day FROM people p JOIN visits v ON v.person = p.id",
        "SELECT id FROM people WHERE email = 'nobody@example.com'",
    ] {
        assert!(psql(&gateway, &db.name, sql).is_ok(), "{sql}");
    }
}

#[test]
fn mysql_matching_a_masked_column_against_guesses_is_held() {
    let db = MyDb::create("xguess");
    mariadb_direct(
        &db.name,
        &format!(
            "CREATE TABLE people (id int, nick text, email text);
             INSERT INTO people VALUES (1, 'ada', '{EMAIL}');
             CREATE TABLE guesses (n int, e text);
             INSERT INTO guesses VALUES (1, 'nobody@example.com'), (2, '{EMAIL}');"
        ),
    );
    let gateway = default_policy_gateway();
    let run = |sql: &str| mariadb(&gateway, &db.name, sql);
    for sql in [
        "SELECT g.n FROM people p JOIN guesses g ON p.email = g.e",
        "SELECT g.n FROM people p JOIN guesses g ON p.email <=> g.e",
        "SELECT n FROM guesses WHERE e IN (SELECT email FROM people)",
        "SELECT n FROM guesses g WHERE EXISTS (SELECT 1 FROM people p WHERE p.email = g.e)",
        "SELECT id FROM people WHERE JSON_CONTAINS(JSON_ARRAY('a@b.c', 'd@e.f'), JSON_QUOTE(email))",
        "SELECT id FROM people WHERE JSON_SEARCH(JSON_ARRAY('a@b.c'), 'one', email) IS NOT NULL",
    ] {
        held(run(sql), sql);
    }
    assert!(run("SELECT p.nick FROM people p JOIN guesses g ON g.n = p.id").is_ok());
}

#[test]
fn pg_copying_a_masked_column_into_rows_or_settings_is_held() {
    // Copied into a table of the agent's own, or into a setting, the
    // value would come back under a name masking never saw it under:
    // `substr(body, 1, 3)` of the copy, a few characters at a time.
    let db = TestDb::create("xcopy");
    pg_table(&db);
    psql_direct(
        &db.name,
        "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'hello');
         CREATE SEQUENCE seq",
    );
    let gateway = default_policy_gateway();
    let run = |sql: &str| psql(&gateway, &db.name, sql);
    // A transform of the innocent table first: sampled, nothing found.
    assert_eq!(
        run("SELECT substr(body, 1, 3) FROM notes").expect("notes"),
        "hel\n"
    );
    for sql in [
        "INSERT INTO notes SELECT 2, email FROM people",
        "INSERT INTO notes (id, body) SELECT id + 10, email FROM people",
        "UPDATE notes SET body = (SELECT email FROM people LIMIT 1) WHERE id = 1",
        "UPDATE notes SET body = p.email FROM people p WHERE p.id = notes.id",
        "INSERT INTO notes VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET body = (SELECT email FROM people LIMIT 1)",
        "MERGE INTO notes n USING people p ON n.id = p.id WHEN MATCHED THEN UPDATE SET body = p.email",
        "SELECT set_config('x.e', email, false) FROM people",
        "PREPARE p AS INSERT INTO notes SELECT 3, email FROM people",
        "EXPLAIN ANALYZE UPDATE notes SET body = (SELECT email FROM people LIMIT 1)",
        "WITH c AS (INSERT INTO notes SELECT 3, email FROM people RETURNING id) SELECT * FROM c",
        // Another session reads the key in `pg_locks`, split in two.
        "SELECT pg_advisory_lock(card) FROM people",
        // `nextval` would hand it back one higher: no longer a valid card.
        "SELECT setval('seq', card) FROM people",
    ] {
        held(run(sql), sql);
    }
    // In one session, as an agent would try it: nothing was copied.
    let out = run("SELECT set_config('x.e', email, false) FROM people; SELECT substr(current_setting('x.e', true), 1, 3)");
    assert!(out.is_err(), "{out:?}");
    let copied = psql_direct(&db.name, "SELECT count(*) FROM notes WHERE body LIKE '%@%'");
    assert_eq!(copied.trim(), "0");
    // Keys and constants still copy freely.
    assert!(run("INSERT INTO notes SELECT id + 100, 'x' FROM people").is_ok());
    assert!(run("UPDATE notes SET body = 'y' WHERE id = 1").is_ok());
}

#[test]
fn mysql_copying_a_masked_column_into_rows_or_variables_is_held() {
    let db = MyDb::create("xcopy");
    mariadb_direct(
        &db.name,
        &format!(
            "CREATE TABLE people (id int, nick text, email text, card bigint);
             INSERT INTO people VALUES (1, 'ada', '{EMAIL}', {CARD});
             CREATE TABLE notes (id int PRIMARY KEY, body text);
             INSERT INTO notes VALUES (1, 'hello');
             CREATE SEQUENCE seq;"
        ),
    );
    let gateway = default_policy_gateway();
    let run = |sql: &str| mariadb(&gateway, &db.name, sql);
    for sql in [
        "SELECT @e := email FROM people",
        "SET @e = (SELECT email FROM people LIMIT 1)",
        "SET @a = 1, @e = (SELECT email FROM people LIMIT 1)",
        "INSERT INTO notes SELECT 2, email FROM people",
        "REPLACE INTO notes SELECT id, email FROM people",
        "INSERT INTO notes SET id = 3, body = (SELECT email FROM people LIMIT 1)",
        "SELECT GET_LOCK(email, 0) FROM people",
        "SELECT SETVAL(seq, card) FROM people",
        // `SELECT LAST_INSERT_ID() + 1` would hand it back.
        "SELECT LAST_INSERT_ID(card) FROM people",
    ] {
        held(run(sql), sql);
    }
    // A multi-table UPDATE waits for a DBA whatever it copies.
    assert!(
        run("UPDATE notes, people SET notes.body = people.email WHERE notes.id = people.id")
            .is_err()
    );
    // The variable was never set: what the agent reads back is NULL.
    assert_eq!(
        run("SELECT @e := email FROM people; SELECT substr(@e, 1, 3)")
            .map_err(|e| e.contains("hold-transforms")),
        Err(true)
    );
    let copied = mariadb_direct(&db.name, "SELECT count(*) FROM notes WHERE body LIKE '%@%'");
    assert_eq!(copied.trim(), "0");
    assert!(run("SET @a = 1").is_ok());
    assert!(run("INSERT INTO notes SELECT id + 100, nick FROM people").is_ok());
}
