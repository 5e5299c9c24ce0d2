//! Every way a value can travel from MariaDB to a client through the
//! gateway besides plain text columns, checked with real drivers (PyMySQL,
//! mysql-connector-python's text and prepared cursors):
//!
//! * session-state tracking: with `CLIENT_SESSION_TRACK` negotiated (drivers
//!   rely on it) and `session_track_system_variables = '*'`, `SET
//!   sql_select_limit = (SELECT card …)` puts the card in the OK packet's
//!   state changes: Airlock masks it there;
//! * warnings (`SHOW WARNINGS` quotes the value a cast choked on);
//! * wide character sets: `CONVERT(… USING utf16 | ucs2 | utf16le)`,
//!   `CAST(… AS CHAR CHARACTER SET utf32)` and columns stored in them, sent
//!   as they are under `character_set_results = NULL`;
//! * numbers: DOUBLE, FLOAT, DECIMAL with a scale, BIGINT UNSIGNED, in the
//!   text and binary protocols;
//! * column names built by dynamic SQL (`PREPARE … FROM @s`).

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::gateway::{Gateway, Options, AGENT, AGENT_PASSWORD, ALLOW_ALL_POLICY};
use support::mysql::{mariadb_direct, MyDb};

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

fn payments_db(label: &str) -> MyDb {
    let db = MyDb::create(label);
    mariadb_direct(
        &db.name,
        &format!(
            "CREATE TABLE payments (id INT, card BIGINT UNSIGNED, email VARCHAR(64));
             INSERT INTO payments VALUES (1, {CARD}, '{EMAIL}');
             CREATE TABLE wide (e16 VARCHAR(64) CHARACTER SET utf16, e32 VARCHAR(64) CHARACTER SET utf32,
                                u2 VARCHAR(64) CHARACTER SET ucs2, le VARCHAR(64) CHARACTER SET utf16le);
             INSERT INTO wide VALUES ('{EMAIL}', '{CARD}', '{EMAIL}', '{CARD}');
             DELIMITER //
             CREATE PROCEDURE named() BEGIN
               SET @s = (SELECT CONCAT('SELECT 1 AS `', email, '`') FROM payments);
               PREPARE st FROM @s; EXECUTE st; DEALLOCATE PREPARE st;
             END //
             DELIMITER ;"
        ),
    );
    db
}

/// Where a driver connects, and as whom.
struct Login<'a> {
    addr: &'a str,
    user: &'a str,
    password: &'a str,
}

fn agent(gateway: &Gateway) -> Login<'_> {
    Login {
        addr: &gateway.mysql_addr,
        user: AGENT,
        password: AGENT_PASSWORD,
    }
}

fn direct() -> Login<'static> {
    Login {
        addr: "127.0.0.1:3306",
        user: "root",
        password: "",
    }
}

/// Every string in a JSON value, as the driver wrote it, one per line.
fn strings(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s}\n"),
        Value::Array(a) => a.iter().map(strings).collect(),
        Value::Object(o) => o.values().map(strings).collect(),
        _ => String::new(),
    }
}

fn driver_lines(login: Login, db: &MyDb, driver: &str, statements: &[&str]) -> Vec<Value> {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let (host, port) = login.addr.rsplit_once(':').expect("host:port");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/drivers");
    let run = Command::new("python3")
        .args(["my_channels_read.py", driver])
        .arg(out.path())
        .current_dir(dir)
        .env("MYSQL_HOST", host)
        .env("MYSQL_PORT", port)
        .env("MYSQL_USER", login.user)
        .env("MYSQL_PASSWORD", login.password)
        .env("MYSQL_DATABASE", &db.name)
        .env(
            "AIRLOCK_SQL",
            serde_json::to_string(statements).expect("json"),
        )
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

/// The forms in which the email or the card would be the value itself:
/// plain, as a float rendering, and as UTF-16/UTF-32 text (Python's repr
/// of a string decoded byte by byte, and the hex of OK packet bytes).
fn leaks(text: &str) -> Vec<String> {
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let mut forms = vec![
        EMAIL.to_string(),
        CARD.to_string(),
        "4.111111111111111".to_string(),
        hex(EMAIL),
        hex(CARD),
    ];
    for v in [EMAIL, CARD] {
        // UTF-16 as PyMySQL shows it when it decodes the bytes as UTF-8:
        // a NUL before or after each character.
        forms.push(v.chars().map(|c| format!("\\x00{c}")).collect::<String>()[4..].to_string());
        forms.push(v.chars().map(|c| format!("{c}\\x00\\x00\\x00")).collect());
        forms.push(v.chars().map(|c| format!("{c}\\x00")).collect());
    }
    forms
        .into_iter()
        .filter(|f| text.contains(f.as_str()))
        .collect()
}

#[test]
fn tracked_session_state_carries_no_values() {
    let db = payments_db("chan_track");
    let gateway = masking_gateway();
    let statements = [
        "SET SESSION session_track_system_variables = '*'",
        "SET SESSION session_track_state_change = ON",
        "SET SESSION session_track_schema = ON",
        "SET SESSION session_track_transaction_info = CHARACTERISTICS",
        "SET SESSION sql_select_limit = (SELECT card FROM payments)",
        "SET @@session.max_join_size = (SELECT card FROM payments)",
        "SELECT @@sql_select_limit",
    ];
    // Directly, PyMySQL gets the tracked value in the OK packet: the check
    // can see it.
    let baseline = driver_lines(direct(), &db, "pymysql", &statements);
    let seen: String = baseline.iter().map(|l| strings(&l["message"])).collect();
    assert!(!leaks(&seen).is_empty(), "directly: {seen}");

    let lines = driver_lines(agent(&gateway), &db, "pymysql", &statements);
    let capabilities = lines[0]["capabilities"].as_u64().expect("capabilities");
    assert_ne!(
        capabilities & (1 << 23),
        0,
        "CLIENT_SESSION_TRACK not negotiated: the channel is not exercised"
    );
    for line in &lines[1..] {
        assert!(line.get("error").is_none(), "{line}");
        let text = strings(line);
        assert_eq!(leaks(&text), Vec::<String>::new(), "{text}");
    }
}

#[test]
fn warnings_wide_character_sets_and_numbers_are_masked_in_both_protocols() {
    let db = payments_db("chan_types");
    let gateway = masking_gateway();
    let statements = [
        // Warnings quote the value a cast choked on.
        "SELECT CAST(email AS DOUBLE) FROM payments",
        "SHOW WARNINGS",
        // Numbers.
        "SELECT CAST(card AS DOUBLE), CAST(card AS FLOAT), CAST(card AS DECIMAL(20,0)), \
         CAST(card AS DECIMAL(20,2)), card * 1.0, card / 1, card FROM payments",
        // Wide character sets, as the results' character set…
        "SELECT CONVERT(email USING utf16), CONVERT(card USING ucs2), CONVERT(email USING utf16le), \
         CAST(email AS CHAR CHARACTER SET utf32) FROM payments",
        "SELECT e16, e32, u2, le FROM wide",
        // …and as they are stored.
        "SET character_set_results = NULL",
        "SELECT CONVERT(email USING utf16), CONVERT(card USING ucs2), CONVERT(email USING utf16le), \
         CAST(email AS CHAR CHARACTER SET utf32) FROM payments",
        "SELECT e16, e32, u2, le FROM wide",
        "SELECT CAST(CONVERT(email USING utf16) AS BINARY) FROM payments",
        "SET character_set_results = utf8mb4",
        // Dynamic SQL names a column by data (Airlock refuses it from the
        // agent; a procedure runs it).
        "CALL named()",
        // Column definitions found clean are not scanned again; that must
        // not spare the next one.
        "SELECT 1 AS note",
        "CALL named()",
    ];
    // The gateway refuses statements its classifier holds; the baseline
    // shows what each driver decodes without it.
    let mut problems = Vec::new();
    for driver in ["pymysql", "connector", "connector-prepared"] {
        let lines = driver_lines(agent(&gateway), &db, driver, &statements);
        let baseline = driver_lines(direct(), &db, driver, &statements);
        let skip = usize::from(driver == "pymysql");
        let seen: String = baseline[skip..]
            .iter()
            .map(|l| strings(&l["rows"]))
            .collect();
        assert!(!leaks(&seen).is_empty(), "{driver} directly: {seen}");
        for (line, base) in lines[skip..].iter().zip(&baseline[skip..]) {
            let sql = line["sql"].as_str().unwrap_or_default();
            if let Some(e) = line.get("error") {
                if base.get("error").is_none() {
                    problems.push(format!("{driver}: {sql}: {e}"));
                }
                continue;
            }
            let text = strings(&line["rows"]) + &strings(&line["columns"]);
            let found = leaks(&text);
            if !found.is_empty() {
                problems.push(format!("{driver}: {sql}: {found:?} in {text}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Decodes every coordinate of the GEOMETRY values a query returns, with
/// PyMySQL in the text protocol and mysql-connector in the binary one:
/// prints one float per line.
const GEOMETRY_READER: &str = r#"
import struct, sys
host, port, user, password, db, how, sql = sys.argv[1:8]

def coordinates(v, at, out):
    little = v[at] == 1
    e = "<" if little else ">"
    kind, = struct.unpack_from(e + "I", v, at + 1)
    at += 5
    def n():
        nonlocal at
        x, = struct.unpack_from(e + "I", v, at)
        at += 4
        return x
    def points(k):
        nonlocal at
        for _ in range(2 * k):
            out.append(struct.unpack_from(e + "d", v, at)[0])
            at += 8
    if kind == 1:
        points(1)
    elif kind == 2:
        points(n())
    elif kind == 3:
        for _ in range(n()):
            points(n())
    else:
        for _ in range(n()):
            at = coordinates(v, at, out)
    return at

if how == "binary":
    import mysql.connector
    conn = mysql.connector.connect(host=host, port=int(port), user=user, password=password,
                                   database=db, use_pure=True)
    cur = conn.cursor(prepared=True)
else:
    import pymysql
    conn = pymysql.connect(host=host, port=int(port), user=user, password=password, database=db)
    cur = conn.cursor()
cur.execute(sql)
for row in cur.fetchall():
    for v in row:
        if v is None:
            print("NULL")
            continue
        out = []
        coordinates(bytes(v), 4, out)
        for x in out:
            print(repr(x))
"#;

#[test]
fn geometry_coordinates_are_masked_in_both_protocols() {
    let db = payments_db("chan_geo");
    let gateway = masking_gateway();
    let sql = "SELECT POINT(card, 0), \
               ST_GeomFromText(CONCAT('LINESTRING(1 2, ', card, ' 4)')), \
               ST_GeomFromText(CONCAT('GEOMETRYCOLLECTION(POINT(1 1), POLYGON((0 0, ', card, ' 0, 0 1, 0 0)))')) \
               FROM payments";
    let read = |login: &Login, how: &str| {
        let (host, port) = login.addr.rsplit_once(':').unwrap();
        let out = Command::new("python3")
            .arg("-c")
            .arg(GEOMETRY_READER)
            .args([host, port, login.user, login.password, &db.name, how, sql])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for how in ["text", "binary"] {
        let seen = read(&direct(), how);
        assert!(
            seen.contains("4111111111111111.0"),
            "directly ({how}): {seen}"
        );
        let masked = read(&agent(&gateway), how);
        assert!(!masked.contains("4111111111111111"), "{how}: {masked}");
        // The other coordinates are the server's.
        assert!(
            masked.contains("\n2.0\n") && masked.contains("\n4.0\n"),
            "{how}: {masked}"
        );
    }
}
