//! Reversible transforms of masked columns, end to end with the shipped
//! default policy: once masking has found values in a column, reading that
//! column through `reverse()`, an encoding, a digest, arithmetic or a
//! substring waits for a DBA (refused at once here: approvals are off),
//! on PostgreSQL and MariaDB, and the learned columns survive a restart.

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
fn pg_transforms_of_a_masked_column_are_held_once_it_is_known() {
    let db = TestDb::create("xform");
    pg_table(&db);
    let gateway = default_policy_gateway();
    // Before masking has seen the column, nothing marks it.
    let first = psql(&gateway, &db.name, "SELECT reverse(email) FROM people");
    assert!(first.is_ok(), "{first:?}");
    // A plain read is masked and teaches the gateway both columns.
    let plain = psql(&gateway, &db.name, "SELECT email, card FROM people").expect("plain read");
    assert!(!plain.contains(EMAIL) && !plain.contains(CARD), "{plain}");
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
    // What the gateway learned survives a restart.
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
fn mysql_transforms_of_a_masked_column_are_held_once_it_is_known() {
    let db = MyDb::create("xform");
    mariadb_direct(
        &db.name,
        &format!(
            "CREATE TABLE people (id int, nick text, email text, card bigint);
             INSERT INTO people VALUES (1, 'ada', '{EMAIL}', {CARD});"
        ),
    );
    let gateway = Gateway::start_with(Options {
        policy: Some(support::gateway::default_policy()),
        ..Default::default()
    });
    let run = |sql: &str| {
        let out = mariadb_through(
            &gateway.mysql_addr,
            AGENT,
            AGENT_PASSWORD,
            &db.name,
            sql,
            &[],
        );
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    };
    let plain = run("SELECT email, card FROM people").expect("plain read");
    assert!(!plain.contains(EMAIL) && !plain.contains(CARD), "{plain}");
    for sql in [
        "SELECT HEX(email) FROM people",
        "SELECT TO_BASE64(email) FROM people",
        "SELECT REVERSE(`email`) FROM people",
        "SELECT CONVERT(email USING utf16) FROM people",
        "SELECT card DIV 1 + 0 FROM people",
        "SELECT GROUP_CONCAT(card SEPARATOR '') FROM people",
        "SELECT MID(email, 2, 5) FROM people",
        "SELECT CAST(email AS BINARY) FROM people",
    ] {
        held(run(sql), sql);
    }
    assert!(run("SELECT HEX(nick), id + 1 FROM people").is_ok());
}
