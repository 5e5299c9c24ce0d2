//! The MySQL differential suite: every case runs on a fresh session
//! directly against MariaDB and again through Airlock, and the packets that
//! come back must be byte-for-byte the same — sequence ids, column
//! definitions, text and binary rows, OK packets (affected rows, last insert
//! id, status, warnings, info, session state) and ERR packets (code,
//! SQLSTATE, message).
//!
//! The client here is Airlock's own upstream login (it is a complete MySQL
//! client), so both sessions ask for exactly the same capabilities; each
//! case also runs a second time without `CLIENT_DEPRECATE_EOF`, where every
//! result set has its EOF packets. The reply reader is written from the
//! protocol documentation, independently of the relay's.
//!
//! Tables are TEMPORARY, so the two sessions of a case start from the same
//! state and auto-increment ids agree. The only normalisation is the text of
//! COM_STATISTICS (uptime and counters move between sessions).
//! `DIFF_CASES=a,b` runs only the cases whose names contain one of them.

mod support;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use airlock::config::UpstreamTls;
use airlock::proxy::mysql::handshake::{
    CLIENT_DEPRECATE_EOF, CLIENT_FOUND_ROWS, CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS,
    CLIENT_PS_MULTI_RESULTS, CLIENT_SESSION_TRACK, DEFAULT_CLIENT, EOF_HEADER, ERR_HEADER,
    OK_HEADER,
};
use airlock::proxy::mysql::packet::{put_lenenc_bytes, Fields, Packet, MAX_CHUNK};
use airlock::proxy::mysql::upstream::{self, Upstream, UpstreamSettings};
use airlock::proxy::tls;
use support::gateway::{tls_section, Gateway, Options, AGENT, AGENT_PASSWORD, ALLOW_ALL_POLICY};
use support::mysql::{mariadb_direct, LargePackets, MyDb, MYSQL_HOST, MYSQL_PORT};

const COM_QUIT: u8 = 0x01;
const COM_INIT_DB: u8 = 0x02;
const COM_QUERY: u8 = 0x03;
const COM_FIELD_LIST: u8 = 0x04;
const COM_STATISTICS: u8 = 0x09;
const COM_PING: u8 = 0x0e;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;
const COM_STMT_RESET: u8 = 0x1a;
const COM_SET_OPTION: u8 = 0x1b;
const COM_STMT_FETCH: u8 = 0x1c;
const COM_RESET_CONNECTION: u8 = 0x1f;

const CURSOR_TYPE_READ_ONLY: u8 = 1;
const SERVER_MORE_RESULTS_EXISTS: u16 = 1 << 3;
const SERVER_STATUS_CURSOR_EXISTS: u16 = 1 << 6;

/// What a command's reply looks like on the wire, for reading all of it.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// COM_QUERY and COM_STMT_EXECUTE: result sets and OKs, as many as
    /// `SERVER_MORE_RESULTS_EXISTS` announces, or an ERR.
    Results,
    /// COM_STMT_PREPARE: OK with parameter and column definitions, or ERR.
    Prepared,
    /// COM_STMT_FETCH: rows up to a terminator, or ERR.
    Fetched,
    /// COM_FIELD_LIST: column definitions up to a terminator, or ERR.
    FieldList,
    /// One packet (OK, ERR, EOF or COM_STATISTICS's text).
    Single,
    /// COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA answer nothing.
    Nothing,
}

/// What the direct session must show for a step: the corpus checks itself,
/// so a case that silently stopped exercising what it names fails.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Ok,
    Err(u16),
}

type Build = Box<dyn Fn(&[u32]) -> Vec<u8> + Send + Sync>;

struct Step {
    label: String,
    /// The command's payload, given the statement ids this session's
    /// prepares got so far (a failed prepare counts as id 0).
    build: Build,
    reply: Reply,
    outcome: Outcome,
}

struct Case {
    name: String,
    /// Added to and removed from [`DEFAULT_CLIENT`] for both sessions.
    with: u32,
    without: u32,
    steps: Vec<Step>,
}

impl Case {
    fn new(name: &str, steps: Vec<Step>) -> Self {
        Case {
            name: name.to_string(),
            with: 0,
            without: 0,
            steps,
        }
    }

    fn with(mut self, capabilities: u32) -> Self {
        self.with |= capabilities;
        self
    }

    fn without(mut self, capabilities: u32) -> Self {
        self.without |= capabilities;
        self
    }

    fn capabilities(&self) -> u32 {
        (DEFAULT_CLIENT | self.with) & !self.without
    }
}

// ---- steps ----------------------------------------------------------------

fn command(label: String, payload: Vec<u8>, reply: Reply, outcome: Outcome) -> Step {
    Step {
        label,
        build: Box::new(move |_| payload.clone()),
        reply,
        outcome,
    }
}

fn with_sql(code: u8, sql: &str) -> Vec<u8> {
    let mut payload = vec![code];
    payload.extend_from_slice(sql.as_bytes());
    payload
}

fn short(sql: &str) -> String {
    let mut label: String = sql.chars().take(90).collect();
    if label.len() < sql.len() {
        label.push('…');
    }
    label
}

fn query(sql: &str) -> Step {
    command(
        format!("query {}", short(sql)),
        with_sql(COM_QUERY, sql),
        Reply::Results,
        Outcome::Ok,
    )
}

fn query_err(sql: &str, code: u16) -> Step {
    command(
        format!("query {}", short(sql)),
        with_sql(COM_QUERY, sql),
        Reply::Results,
        Outcome::Err(code),
    )
}

fn prepare(sql: &str) -> Step {
    command(
        format!("prepare {}", short(sql)),
        with_sql(COM_STMT_PREPARE, sql),
        Reply::Prepared,
        Outcome::Ok,
    )
}

fn prepare_err(sql: &str, code: u16) -> Step {
    command(
        format!("prepare {}", short(sql)),
        with_sql(COM_STMT_PREPARE, sql),
        Reply::Prepared,
        Outcome::Err(code),
    )
}

fn by_statement(
    label: String,
    nth: usize,
    reply: Reply,
    outcome: Outcome,
    build: impl Fn(u32) -> Vec<u8> + Send + Sync + 'static,
) -> Step {
    Step {
        label,
        build: Box::new(move |ids| build(ids.get(nth).copied().unwrap_or(0))),
        reply,
        outcome,
    }
}

/// A binary-protocol parameter value, with the type a driver would bind.
#[derive(Clone, Debug)]
enum Param {
    Null,
    Tiny(i8),
    Short(i16),
    Long(i32),
    LongLong(i64),
    ULongLong(u64),
    Float(f32),
    Double(f64),
    Text(String),
    Blob(Vec<u8>),
    Decimal(&'static str),
    Date(u16, u8, u8),
    DateTime(u16, u8, u8, u8, u8, u8, u32),
    /// negative, days, hours, minutes, seconds, microseconds
    Time(bool, u32, u8, u8, u8, u32),
    /// Bound as a blob whose value came with COM_STMT_SEND_LONG_DATA.
    Sent,
}

impl Param {
    fn text(s: &str) -> Self {
        Param::Text(s.to_string())
    }

    /// The type and flag bytes of the parameter's binding.
    fn binding(&self) -> [u8; 2] {
        match self {
            Param::Null => [0x06, 0],
            Param::Tiny(_) => [0x01, 0],
            Param::Short(_) => [0x02, 0],
            Param::Long(_) => [0x03, 0],
            Param::LongLong(_) => [0x08, 0],
            Param::ULongLong(_) => [0x08, 0x80],
            Param::Float(_) => [0x04, 0],
            Param::Double(_) => [0x05, 0],
            Param::Text(_) => [0xfd, 0],
            Param::Blob(_) | Param::Sent => [0xfc, 0],
            Param::Decimal(_) => [0xf6, 0],
            Param::Date(..) => [0x0a, 0],
            Param::DateTime(..) => [0x0c, 0],
            Param::Time(..) => [0x0b, 0],
        }
    }

    fn write_value(&self, out: &mut Vec<u8>) {
        match self {
            Param::Null | Param::Sent => {}
            Param::Tiny(v) => out.extend_from_slice(&v.to_le_bytes()),
            Param::Short(v) => out.extend_from_slice(&v.to_le_bytes()),
            Param::Long(v) => out.extend_from_slice(&v.to_le_bytes()),
            Param::LongLong(v) => out.extend_from_slice(&v.to_le_bytes()),
            Param::ULongLong(v) => out.extend_from_slice(&v.to_le_bytes()),
            Param::Float(v) => out.extend_from_slice(&v.to_le_bytes()),
            Param::Double(v) => out.extend_from_slice(&v.to_le_bytes()),
            Param::Text(s) => put_lenenc_bytes(out, s.as_bytes()),
            Param::Blob(b) => put_lenenc_bytes(out, b),
            Param::Decimal(s) => put_lenenc_bytes(out, s.as_bytes()),
            Param::Date(y, m, d) => {
                out.push(4);
                out.extend_from_slice(&y.to_le_bytes());
                out.extend_from_slice(&[*m, *d]);
            }
            Param::DateTime(y, mo, d, h, mi, s, us) => {
                out.push(11);
                out.extend_from_slice(&y.to_le_bytes());
                out.extend_from_slice(&[*mo, *d, *h, *mi, *s]);
                out.extend_from_slice(&us.to_le_bytes());
            }
            Param::Time(negative, days, h, m, s, us) => {
                out.push(12);
                out.push(u8::from(*negative));
                out.extend_from_slice(&days.to_le_bytes());
                out.extend_from_slice(&[*h, *m, *s]);
                out.extend_from_slice(&us.to_le_bytes());
            }
        }
    }
}

/// COM_STMT_EXECUTE of the `nth` prepared statement. `bind` sends the
/// parameter types (a driver's first execute); without it the server
/// reuses the previous execute's.
fn execute_payload(id: u32, flags: u8, params: &[Param], bind: bool) -> Vec<u8> {
    let mut out = vec![COM_STMT_EXECUTE];
    out.extend_from_slice(&id.to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&1u32.to_le_bytes());
    if !params.is_empty() {
        let mut nulls = vec![0u8; params.len().div_ceil(8)];
        for (i, p) in params.iter().enumerate() {
            if matches!(p, Param::Null) {
                nulls[i / 8] |= 1 << (i % 8);
            }
        }
        out.extend_from_slice(&nulls);
        out.push(u8::from(bind));
        if bind {
            for p in params {
                out.extend_from_slice(&p.binding());
            }
        }
        for p in params {
            p.write_value(&mut out);
        }
    }
    out
}

fn execute_as(nth: usize, flags: u8, params: Vec<Param>, bind: bool, outcome: Outcome) -> Step {
    let label = format!(
        "execute #{nth} flags {flags} {}{params:?}",
        if bind { "bound " } else { "" }
    );
    by_statement(label, nth, Reply::Results, outcome, move |id| {
        execute_payload(id, flags, &params, bind)
    })
}

fn execute(nth: usize, params: Vec<Param>) -> Step {
    execute_as(nth, 0, params, true, Outcome::Ok)
}

fn fetch(nth: usize, rows: u32, outcome: Outcome) -> Step {
    by_statement(
        format!("fetch #{nth} {rows} rows"),
        nth,
        Reply::Fetched,
        outcome,
        move |id| {
            let mut out = vec![COM_STMT_FETCH];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&rows.to_le_bytes());
            out
        },
    )
}

fn long_data(nth: usize, param: u16, data: Vec<u8>) -> Step {
    by_statement(
        format!("long data #{nth} param {param} ({} bytes)", data.len()),
        nth,
        Reply::Nothing,
        Outcome::Ok,
        move |id| {
            let mut out = vec![COM_STMT_SEND_LONG_DATA];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&param.to_le_bytes());
            out.extend_from_slice(&data);
            out
        },
    )
}

fn on_statement(code: u8, name: &str, nth: usize, reply: Reply, outcome: Outcome) -> Step {
    by_statement(format!("{name} #{nth}"), nth, reply, outcome, move |id| {
        let mut out = vec![code];
        out.extend_from_slice(&id.to_le_bytes());
        out
    })
}

fn reset(nth: usize) -> Step {
    on_statement(COM_STMT_RESET, "reset", nth, Reply::Single, Outcome::Ok)
}

fn close(nth: usize) -> Step {
    on_statement(COM_STMT_CLOSE, "close", nth, Reply::Nothing, Outcome::Ok)
}

fn simple(label: &str, payload: Vec<u8>, reply: Reply, outcome: Outcome) -> Step {
    command(label.to_string(), payload, reply, outcome)
}

// ---- the corpus -----------------------------------------------------------

/// Every column type MariaDB has, in a temporary table of the session.
const KINDS: &str = "CREATE TEMPORARY TABLE kinds (
    id INT AUTO_INCREMENT PRIMARY KEY,
    ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, i INT, iu INT UNSIGNED,
    bi BIGINT, bu BIGINT UNSIGNED, dc DECIMAL(30,10), f FLOAT, d DOUBLE, bt BIT(12),
    bo BOOLEAN, dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(3), y YEAR,
    c CHAR(8), vc VARCHAR(64), bn BINARY(4), vb VARBINARY(16), tx TEXT, bl BLOB,
    e ENUM('small','medium','large'), st SET('red','green','blue'), js JSON,
    u UUID, pt POINT
) DEFAULT CHARSET = utf8mb4";

const KINDS_ROWS: &str = "INSERT INTO kinds (ti, tu, si, mi, i, iu, bi, bu, dc, f, d, bt, bo,
    dt, dtm, ts, tm, y, c, vc, bn, vb, tx, bl, e, st, js, u, pt) VALUES
 (-128, 0, -32768, -8388608, -2147483648, 0, -9223372036854775808, 0,
  -99999999999999999999.9999999999, -3.40282e38, -1.7976931348623157e308, b'0', 0,
  '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-02 00:00:01.000', '-838:59:59.000',
  1901, '', '', x'00000000', x'', '', x'', 'small', '', '[]',
  '00000000-0000-0000-0000-000000000000', ST_GeomFromText('POINT(0 0)')),
 (127, 255, 32767, 8388607, 2147483647, 4294967295, 9223372036854775807,
  18446744073709551615, 99999999999999999999.9999999999, 3.40282e38,
  1.7976931348623157e308, b'111111111111', 1, '9999-12-31', '9999-12-31 23:59:59.999999',
  '2038-01-18 03:14:07.999', '838:59:59.000', 2155, 'zzzzzzzz',
  'Grüße, 世界 🙂 ñandú', x'FFFFFFFF', x'00FF7F80',
  'The quick brown fox jumps over the lazy dog. Tab\there, newline\nthere, a \\\\ and a ''quote''.',
  x'DEADBEEF00C0FFEE', 'large', 'red,green,blue', '{\"k\": [1, 2.5, \"v\", null, true]}',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', ST_GeomFromText('POINT(1.5 -2.25)')),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (7, 8, 300, 70000, 123456, 123456789, 1234567890123, 12345678901234567890, 3.1415926535,
  0.5, 2.718281828459045, b'101', 1, '2024-02-29', '2024-02-29 12:34:56.789012',
  '2024-02-29 12:34:56.789', '12:34:56.789', 2024, 'abc', 'plain words', x'01020304', x'0A0B',
  'a paragraph of ordinary prose', x'00', 'medium', 'green', '{\"a\": {\"b\": \"c\"}}',
  '123e4567-e89b-12d3-a456-426614174000', ST_GeomFromText('POINT(10 20)'))";

fn with_kinds(mut steps: Vec<Step>) -> Vec<Step> {
    let mut all = vec![query(KINDS), query(KINDS_ROWS)];
    all.append(&mut steps);
    all
}

fn text_cases() -> Vec<Case> {
    vec![
        Case::new(
            "text_every_type",
            with_kinds(vec![
                query("SELECT * FROM kinds ORDER BY id"),
                query("SELECT id, bt + 0, HEX(bn), ST_AsText(pt), CAST(js AS CHAR) FROM kinds ORDER BY id"),
                query("SELECT * FROM kinds WHERE id < 0"),
            ]),
        ),
        Case::new(
            "text_expressions",
            vec![
                query("SELECT 1, -1.5, 1e300, NULL, 'x', X'00ff', CAST(1 AS UNSIGNED), 1/3, 10 DIV 3"),
                query("SELECT CAST('2024-01-01' AS DATE), CAST('12:00' AS TIME), CAST('2024-01-01 10:00:00.5' AS DATETIME(3))"),
                query("SELECT JSON_OBJECT('a', 1, 'b', JSON_ARRAY(1, 'two')) AS doc, CONVERT('é' USING latin1) AS l1"),
                query("SELECT 'ünïcödé' AS `列`, '' AS empty, REPEAT('ab', 3000) AS long_text"),
                query("SELECT 1 AS a UNION ALL SELECT 2 UNION ALL SELECT 3"),
                query("SELECT seq FROM seq_1_to_2000"),
            ],
        ),
        Case::new(
            "text_ok_packets",
            with_kinds(vec![
                query("INSERT INTO kinds (ti, vc) VALUES (1, 'one')"),
                query("INSERT INTO kinds (ti, vc) VALUES (2, 'two'), (3, 'three'), (4, 'four')"),
                query("UPDATE kinds SET vc = 'same' WHERE ti IN (1, 2)"),
                query("UPDATE kinds SET vc = 'same' WHERE ti IN (1, 2)"),
                query("DELETE FROM kinds WHERE ti = 4"),
                query("INSERT INTO kinds (id, vc) VALUES (1, 'dup') ON DUPLICATE KEY UPDATE vc = 'updated'"),
                query("REPLACE INTO kinds (id, vc) VALUES (2, 'replaced')"),
                query("INSERT IGNORE INTO kinds (id, vc) VALUES (1, 'ignored')"),
                query("INSERT INTO kinds (id, vc) VALUES (900, 'explicit id')"),
                query("INSERT INTO kinds (vc) VALUES ('after 900')"),
                query("SELECT LAST_INSERT_ID(), ROW_COUNT()"),
                query("UPDATE kinds SET ti = ti WHERE id < 0"),
            ]),
        ),
        Case::new(
            "text_ok_packets_found_rows",
            with_kinds(vec![
                query("UPDATE kinds SET vc = 'same' WHERE id IN (1, 2)"),
                query("UPDATE kinds SET vc = 'same' WHERE id IN (1, 2)"),
                query("INSERT INTO kinds (id, vc) VALUES (1, 'same') ON DUPLICATE KEY UPDATE vc = 'same'"),
            ]),
        )
        .with(CLIENT_FOUND_ROWS),
        Case::new(
            "text_errors_and_warnings",
            with_kinds(vec![
                query_err("INSERT INTO kinds (id) VALUES (1)", 1062),
                query_err("SELECT nope FROM kinds", 1054),
                query_err("SELECT * FROM no_such_table", 1146),
                query_err("INSERT INTO kinds (c) VALUES ('far too long for eight')", 1406),
                query_err("INSERT INTO kinds (ti) VALUES (1000)", 1264),
                query_err("INSERT INTO kinds (i) VALUES ('abc')", 1366),
                query_err("SELECT * FROM kinds WHERE id = (SELECT id FROM kinds)", 1242),
                query("SELECT CAST('12abc' AS SIGNED), 1/0"),
                query("SHOW WARNINGS"),
                query("SELECT @@warning_count, @@error_count"),
                query("SET SESSION sql_mode = ''"),
                query("INSERT INTO kinds (ti, c, dt) VALUES (1000, 'far too long for eight', '2024-13-45')"),
                query("SHOW WARNINGS"),
                query("SELECT ti, c, dt FROM kinds WHERE id = LAST_INSERT_ID()"),
            ]),
        ),
        Case::new(
            "text_session_state",
            with_kinds(vec![
                query("SET @v = 'a user variable', @n = 42"),
                query("SELECT @v, @n, @unset"),
                query("SET autocommit = 0"),
                query("INSERT INTO kinds (vc) VALUES ('in a transaction')"),
                query("SELECT COUNT(*) FROM kinds"),
                query("ROLLBACK"),
                query("SET autocommit = 1"),
                query("BEGIN"),
                query("UPDATE kinds SET vc = 'committed' WHERE id = 4"),
                query("COMMIT"),
                query("SET NAMES latin1"),
                query("SELECT vc, 'ñ' FROM kinds ORDER BY id"),
                query("SET NAMES utf8mb4"),
                query("SET time_zone = '+05:30'"),
                query("SELECT ts FROM kinds ORDER BY id"),
                query("SET SESSION sql_mode = 'ANSI_QUOTES'"),
                query("SELECT \"vc\" FROM kinds ORDER BY id"),
            ]),
        ),
        Case::new(
            "text_commands",
            with_kinds(vec![
                simple("ping", vec![COM_PING], Reply::Single, Outcome::Ok),
                simple(
                    "field list",
                    [&[COM_FIELD_LIST][..], b"kinds\0"].concat(),
                    Reply::FieldList,
                    Outcome::Ok,
                ),
                simple(
                    "field list of a missing table",
                    [&[COM_FIELD_LIST][..], b"nope\0"].concat(),
                    Reply::FieldList,
                    Outcome::Err(1146),
                ),
                simple("statistics", vec![COM_STATISTICS], Reply::Single, Outcome::Ok),
                simple(
                    "init db of a missing database",
                    with_sql(COM_INIT_DB, "airlock_no_such_database"),
                    Reply::Single,
                    Outcome::Err(1049),
                ),
                query("SELECT DATABASE()"),
                query("SET @kept = 1"),
                simple("reset connection", vec![COM_RESET_CONNECTION], Reply::Single, Outcome::Ok),
                query("SELECT @kept"),
                query_err("SELECT * FROM kinds", 1146),
            ]),
        ),
        Case::new(
            "text_multi_statements",
            with_kinds(vec![
                query("SELECT 1 AS a; SELECT 'two' AS b, 2.5 AS c; INSERT INTO kinds (ti) VALUES (1); UPDATE kinds SET ti = 2 WHERE id < 0; SELECT * FROM kinds ORDER BY id"),
                query_err("SELECT 1; SELECT * FROM no_such_table; SELECT 3", 1146),
                query("SELECT 'still in step'"),
                simple("multi-statements off", vec![COM_SET_OPTION, 1, 0], Reply::Single, Outcome::Ok),
                query_err("SELECT 1; SELECT 2", 1064),
                simple("multi-statements on", vec![COM_SET_OPTION, 0, 0], Reply::Single, Outcome::Ok),
                query("SELECT 1; SELECT 2"),
            ]),
        )
        .with(CLIENT_MULTI_STATEMENTS),
    ]
}

fn kinds_params() -> Vec<Param> {
    vec![
        Param::Tiny(-5),
        Param::Short(200),
        Param::Short(-1234),
        Param::Long(-70000),
        Param::Long(i32::MIN),
        Param::LongLong(4_000_000_000),
        Param::LongLong(i64::MIN),
        Param::ULongLong(u64::MAX),
        Param::Decimal("-12345.6789012345"),
        Param::Float(1.25),
        Param::Double(-0.1),
        Param::Long(0b1010_1010),
        Param::Tiny(1),
        Param::Date(2025, 12, 31),
        Param::DateTime(2025, 12, 31, 23, 59, 58, 123_456),
        Param::DateTime(2001, 2, 3, 4, 5, 6, 789_000),
        Param::Time(true, 3, 4, 5, 6, 700_000),
        Param::Short(1999),
        Param::text("chars"),
        Param::text("Grüße 🙂"),
        Param::Blob(vec![0, 1, 2, 3]),
        Param::Blob(vec![0xff, 0x00, 0x80]),
        Param::text("text parameter"),
        Param::Blob(vec![0, 0xfe, 0xff, 0x10]),
        Param::text("large"),
        Param::text("red,blue"),
        Param::text("{\"bound\": true}"),
        Param::text("0e9b2c3a-58c1-4f2e-9a77-5b6f1d2e3c4a"),
    ]
}

const KINDS_INSERT: &str = "INSERT INTO kinds (ti, tu, si, mi, i, iu, bi, bu, dc, f, d, bt, bo,
    dt, dtm, ts, tm, y, c, vc, bn, vb, tx, bl, e, st, js, u, pt)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, POINT(3, 4))";

fn binary_cases() -> Vec<Case> {
    let nulls = vec![Param::Null; 28];
    let mut changed = kinds_params();
    changed[0] = Param::Tiny(99);
    changed[19] = Param::text("second execute, same types");
    vec![
        Case::new(
            "binary_every_type",
            with_kinds(vec![
                prepare("SELECT * FROM kinds ORDER BY id"),
                execute(0, vec![]),
                execute(0, vec![]),
                prepare("SELECT id, ti, vc FROM kinds WHERE id = ? OR vc = ? ORDER BY id"),
                execute(1, vec![Param::Long(2), Param::text("plain words")]),
                execute_as(
                    1,
                    0,
                    vec![Param::Long(4), Param::text("")],
                    false,
                    Outcome::Ok,
                ),
                execute(1, vec![Param::Null, Param::Null]),
                close(1),
                close(0),
            ]),
        ),
        Case::new(
            "binary_bound_parameters",
            with_kinds(vec![
                prepare(KINDS_INSERT),
                execute(0, kinds_params()),
                execute_as(0, 0, changed, false, Outcome::Ok),
                execute(0, nulls),
                prepare("SELECT * FROM kinds WHERE id > 4 ORDER BY id"),
                execute(1, vec![]),
                query("SELECT * FROM kinds WHERE id > 4 ORDER BY id"),
                prepare("SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"),
                execute(
                    2,
                    vec![
                        Param::Tiny(-1),
                        Param::Short(i16::MAX),
                        Param::Long(i32::MAX),
                        Param::LongLong(i64::MAX),
                        Param::ULongLong(u64::MAX),
                        Param::Float(-2.5),
                        Param::Double(1e-300),
                        Param::text("text"),
                        Param::Blob(b"\0blob\xff".to_vec()),
                        Param::Decimal("0.000000001"),
                        Param::Date(1000, 1, 1),
                        Param::DateTime(9999, 12, 31, 23, 59, 59, 999_999),
                        Param::Time(false, 0, 0, 0, 0, 0),
                    ],
                ),
            ]),
        ),
        Case::new(
            "binary_long_data_and_reset",
            with_kinds(vec![
                prepare("INSERT INTO kinds (tx, bl, vc) VALUES (?, ?, ?)"),
                long_data(0, 0, b"first piece of text, ".to_vec()),
                long_data(0, 0, b"second piece".to_vec()),
                long_data(0, 1, (0..=255u8).cycle().take(60_000).collect()),
                execute(
                    0,
                    vec![Param::Sent, Param::Sent, Param::text("with long data")],
                ),
                long_data(0, 0, b"discarded by the reset".to_vec()),
                reset(0),
                execute(
                    0,
                    vec![
                        Param::text("after reset"),
                        Param::Null,
                        Param::text("plain"),
                    ],
                ),
                query("SELECT id, tx, LENGTH(bl), MD5(bl), vc FROM kinds WHERE id > 4 ORDER BY id"),
                prepare("SELECT id, tx, bl FROM kinds WHERE id > 4 ORDER BY id"),
                execute(1, vec![]),
            ]),
        ),
        Case::new(
            "binary_cursor_fetch",
            with_kinds(vec![
                prepare("SELECT id, vc, dtm, d FROM kinds ORDER BY id"),
                execute_as(0, CURSOR_TYPE_READ_ONLY, vec![], true, Outcome::Ok),
                fetch(0, 1, Outcome::Ok),
                fetch(0, 2, Outcome::Ok),
                fetch(0, 5, Outcome::Ok),
                fetch(0, 5, Outcome::Err(1421)),
                execute_as(0, CURSOR_TYPE_READ_ONLY, vec![], true, Outcome::Ok),
                fetch(0, 100, Outcome::Ok),
                reset(0),
                fetch(0, 1, Outcome::Err(1421)),
                prepare("SELECT seq, seq * 2 FROM seq_1_to_1000"),
                execute_as(1, CURSOR_TYPE_READ_ONLY, vec![], true, Outcome::Ok),
                fetch(1, 333, Outcome::Ok),
                fetch(1, 1000, Outcome::Ok),
                close(1),
                fetch(1, 1, Outcome::Err(1243)),
            ]),
        ),
        Case::new(
            "binary_errors",
            with_kinds(vec![
                prepare_err("SELECT * FROM no_such_table", 1146),
                prepare_err("SELECT nope FROM kinds", 1054),
                prepare("INSERT INTO kinds (id, ti) VALUES (?, ?)"),
                execute_as(
                    2,
                    0,
                    vec![Param::Long(1), Param::Tiny(1)],
                    true,
                    Outcome::Err(1062),
                ),
                execute_as(
                    2,
                    0,
                    vec![Param::Long(77), Param::Long(1000)],
                    true,
                    Outcome::Err(1264),
                ),
                execute(2, vec![Param::Long(78), Param::Tiny(8)]),
                execute_as(7, 0, vec![], true, Outcome::Err(1243)),
                on_statement(
                    COM_STMT_RESET,
                    "reset unknown",
                    7,
                    Reply::Single,
                    Outcome::Err(1243),
                ),
                prepare("SELECT CAST(? AS SIGNED), 1/0"),
                execute(3, vec![Param::text("12abc")]),
                query("SHOW WARNINGS"),
            ]),
        ),
    ]
}

/// Stored procedures, created once in the case database (MariaDB has no
/// temporary procedures).
const PROCEDURES: &str = "DELIMITER //
CREATE PROCEDURE two_sets() BEGIN SELECT 1 AS one; SELECT 'x' AS x, 2.5 AS two; END //
CREATE PROCEDURE doubled(IN a INT, OUT b INT, INOUT c VARCHAR(20))
    BEGIN SET b = a * 2; SET c = CONCAT(c, '!'); END //
CREATE PROCEDURE failing()
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'a failure raised by the procedure' //
CREATE PROCEDURE fails_after_a_set()
    BEGIN SELECT 'before'; SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'after one result'; END //
";

fn procedure_cases() -> Vec<Case> {
    vec![
        Case::new(
            "procedures_text",
            vec![
                query("CALL two_sets()"),
                query_err("CALL failing()", 1644),
                query_err("CALL fails_after_a_set()", 1644),
                query("SET @c = 'hi'"),
                query("CALL doubled(21, @b, @c)"),
                query("SELECT @b, @c"),
            ],
        ),
        Case::new(
            "procedures_binary",
            vec![
                prepare("CALL two_sets()"),
                execute(0, vec![]),
                prepare("CALL doubled(?, ?, ?)"),
                execute(1, vec![Param::Long(21), Param::Null, Param::text("hi")]),
                prepare("CALL failing()"),
                execute_as(2, 0, vec![], true, Outcome::Err(1644)),
            ],
        ),
    ]
}

/// Sessions that leave out capabilities drivers commonly do without.
fn capability_cases() -> Vec<Case> {
    vec![
        Case::new(
            "untracked_session_state",
            with_kinds(vec![
                query("SET autocommit = 0"),
                query("SET NAMES latin1"),
                query("USE information_schema"),
                query("SELECT DATABASE()"),
            ]),
        )
        .without(CLIENT_SESSION_TRACK),
        Case::new(
            "without_multi_results",
            vec![
                query_err("CALL two_sets()", 1312),
                query("SELECT 'the session goes on'"),
            ],
        )
        .without(
            CLIENT_MULTI_RESULTS
                | CLIENT_PS_MULTI_RESULTS,
        ),
        Case::new(
            "metadata_statements",
            with_kinds(vec![
                query("SHOW COLUMNS FROM kinds"),
                query("DESCRIBE kinds"),
                query("SHOW CREATE TABLE kinds"),
                query("SHOW INDEX FROM kinds"),
                query("SHOW VARIABLES LIKE 'max_allowed_packet'"),
                query("SHOW PROCEDURE STATUS WHERE Db = DATABASE()"),
                query("SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 1"),
                query("EXPLAIN SELECT * FROM kinds WHERE id = 1"),
                query("SELECT @@version_comment, @@character_set_client, @@collation_connection"),
            ]),
        ),
        Case::new(
            "many_rows",
            vec![
                query("SELECT seq, REPEAT('r', seq % 300), seq * 1.5, DATE_ADD('2020-01-01', INTERVAL seq MINUTE) FROM seq_1_to_50000"),
                prepare("SELECT seq, REPEAT('r', seq % 300), seq * 1.5, DATE_ADD('2020-01-01', INTERVAL seq MINUTE) FROM seq_1_to_50000"),
                execute(0, vec![]),
            ],
        ),
    ]
}

fn base_cases() -> Vec<Case> {
    [
        text_cases(),
        binary_cases(),
        procedure_cases(),
        capability_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The corpus, plus each case again without `CLIENT_DEPRECATE_EOF`.
fn corpus() -> Vec<Case> {
    let mut cases = base_cases();
    cases.extend(base_cases().into_iter().map(|mut c| {
        c.name = format!("{}_with_eof", c.name);
        c.without |= CLIENT_DEPRECATE_EOF;
        c
    }));
    selected(cases)
}

fn selected(mut cases: Vec<Case>) -> Vec<Case> {
    let only = std::env::var("DIFF_CASES").unwrap_or_default();
    if !only.is_empty() {
        cases.retain(|c| only.split(',').any(|s| c.name.contains(s)));
    }
    cases
}

// ---- running a case ---------------------------------------------------------

struct Endpoint {
    address: String,
    user: String,
    password: String,
    database: String,
    /// TLS to the endpoint (encryption only: the test's certificate is
    /// self-signed), or plaintext.
    tls: Option<Arc<rustls::ClientConfig>>,
}

struct Recorded {
    label: String,
    packets: Vec<Packet>,
}

async fn connect(ep: &Endpoint, capabilities: u32) -> Upstream {
    let mut settings = UpstreamSettings::new(ep.address.clone(), ep.user.clone());
    settings.password = ep.password.clone();
    settings.database = Some(ep.database.clone());
    settings.capabilities = capabilities;
    settings.tls = ep.tls.clone();
    match upstream::connect(&settings).await {
        Ok(up) => {
            assert_eq!(up.is_tls(), ep.tls.is_some(), "TLS as asked");
            up
        }
        Err(e) => panic!("login to {} as {} failed: {e}", ep.address, ep.user),
    }
}

async fn run_session(ep: &Endpoint, case: &Case) -> Result<Vec<Recorded>, String> {
    let mut conn = connect(ep, case.capabilities()).await;
    let deprecate_eof = conn.capabilities & CLIENT_DEPRECATE_EOF != 0;
    let mut ids = Vec::new();
    let mut transcript = Vec::new();
    for step in &case.steps {
        conn.packets.reset();
        conn.packets.write_packet(&(step.build)(&ids));
        conn.packets
            .flush()
            .await
            .map_err(|e| format!("{}: send: {e}", step.label))?;
        let packets = tokio::time::timeout(
            Duration::from_secs(30),
            read_reply(&mut conn, step.reply, deprecate_eof),
        )
        .await
        .map_err(|_| format!("{}: no complete reply within 30 s", step.label))?
        .map_err(|e| format!("{}: {e}", step.label))?;
        if let Reply::Prepared = step.reply {
            ids.push(match packets.first() {
                Some(p) if p.payload.first() == Some(&OK_HEADER) => {
                    u32::from_le_bytes(p.payload[1..5].try_into().expect("statement id"))
                }
                _ => 0,
            });
        }
        transcript.push(Recorded {
            label: step.label.clone(),
            packets,
        });
    }
    conn.packets.reset();
    conn.packets.write_packet(&[COM_QUIT]);
    let _ = conn.packets.flush().await;
    Ok(transcript)
}

async fn next(conn: &mut Upstream) -> Result<Packet, String> {
    match conn.packets.read().await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err("the connection closed mid-reply".into()),
        Err(e) => Err(format!("read: {e}")),
    }
}

fn status(terminator: &[u8]) -> u16 {
    // EOF: header, warnings, status. OK: header, two length-encoded
    // integers, status.
    let mut f = Fields::new(terminator);
    let _ = f.u8();
    if terminator.len() == 5 {
        let _ = f.u16();
        return f.u16().unwrap_or(0);
    }
    let _ = f.lenenc_int();
    let _ = f.lenenc_int();
    f.u16().unwrap_or(0)
}

fn is_terminator(payload: &[u8], deprecate_eof: bool) -> bool {
    payload.first() == Some(&EOF_HEADER)
        && if deprecate_eof {
            payload.len() < MAX_CHUNK
        } else {
            payload.len() < 9
        }
}

async fn read_reply(
    conn: &mut Upstream,
    reply: Reply,
    deprecate_eof: bool,
) -> Result<Vec<Packet>, String> {
    let mut packets = Vec::new();
    match reply {
        Reply::Nothing => {}
        Reply::Single => packets.push(next(conn).await?),
        Reply::Fetched | Reply::FieldList => loop {
            let p = next(conn).await?;
            let end =
                p.payload.first() == Some(&ERR_HEADER) || is_terminator(&p.payload, deprecate_eof);
            packets.push(p);
            if end {
                break;
            }
        },
        Reply::Prepared => {
            let first = next(conn).await?;
            let ok = first.payload.first() == Some(&OK_HEADER);
            let (columns, params) = if ok {
                let mut f = Fields::new(&first.payload[5..]);
                (
                    f.u16().map_err(|e| e.to_string())?,
                    f.u16().map_err(|e| e.to_string())?,
                )
            } else {
                (0, 0)
            };
            packets.push(first);
            for count in [params, columns] {
                for _ in 0..count {
                    packets.push(next(conn).await?);
                }
                if count > 0 && !deprecate_eof {
                    packets.push(next(conn).await?);
                }
            }
        }
        Reply::Results => loop {
            let first = next(conn).await?;
            match first.payload.first() {
                Some(&ERR_HEADER) => {
                    packets.push(first);
                    break;
                }
                Some(&OK_HEADER) => {
                    let more = status(&first.payload) & SERVER_MORE_RESULTS_EXISTS != 0;
                    packets.push(first);
                    if !more {
                        break;
                    }
                }
                _ => {
                    let columns = Fields::new(&first.payload)
                        .lenenc_int()
                        .map_err(|e| e.to_string())?;
                    packets.push(first);
                    for _ in 0..columns {
                        packets.push(next(conn).await?);
                    }
                    if !deprecate_eof {
                        let eof = next(conn).await?;
                        let cursor = status(&eof.payload) & SERVER_STATUS_CURSOR_EXISTS != 0;
                        packets.push(eof);
                        if cursor {
                            break;
                        }
                    }
                    let more = loop {
                        let p = next(conn).await?;
                        if p.payload.first() == Some(&ERR_HEADER) {
                            packets.push(p);
                            break None;
                        }
                        if is_terminator(&p.payload, deprecate_eof) {
                            let s = status(&p.payload);
                            packets.push(p);
                            break Some(s & SERVER_MORE_RESULTS_EXISTS != 0);
                        }
                        packets.push(p);
                    };
                    if more != Some(true) {
                        break;
                    }
                }
            }
        },
    }
    Ok(packets)
}

/// The error code of the first ERR packet, if any.
fn error_code(packets: &[Packet]) -> Option<u16> {
    packets
        .iter()
        .find(|p| p.payload.first() == Some(&ERR_HEADER) && p.payload.len() >= 3)
        .map(|p| u16::from_le_bytes([p.payload[1], p.payload[2]]))
}

/// What differs between two sessions on one server whatever sits between:
/// COM_STATISTICS's counters, and statement ids — MariaDB numbers prepared
/// statements server-wide, so each id is replaced by its order of
/// appearance in the session, in the prepare's OK and in error messages
/// that quote it.
fn normalise(transcript: &mut [Recorded]) {
    let mut ids: Vec<u32> = Vec::new();
    for step in transcript {
        for p in &mut step.packets {
            let payload = &p.payload;
            if step.label == "statistics" && payload.starts_with(b"Uptime: ") {
                p.payload = bytes::Bytes::from_static(b"Uptime: (normalised)");
            } else if step.label.starts_with("prepare ")
                && payload.first() == Some(&OK_HEADER)
                && payload.len() == 12
            {
                let id = u32::from_le_bytes(payload[1..5].try_into().expect("4 bytes"));
                ids.push(id);
                let mut rewritten = payload.to_vec();
                rewritten[1..5].copy_from_slice(&(ids.len() as u32).to_le_bytes());
                p.payload = rewritten.into();
            } else if payload.first() == Some(&ERR_HEADER) {
                let mut bytes = payload.to_vec();
                for (n, id) in ids.iter().enumerate() {
                    let quoted = format!("({id})");
                    let ordinal = format!("(statement #{})", n + 1);
                    bytes = replace_bytes(&bytes, quoted.as_bytes(), ordinal.as_bytes());
                }
                p.payload = bytes.into();
            }
        }
    }
}

fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn show(p: &Packet) -> String {
    let mut s = format!("seq {} len {}: ", p.seq, p.payload.len());
    for &b in p.payload.iter().take(160) {
        if b.is_ascii_graphic() || b == b' ' {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    if p.payload.len() > 160 {
        s.push('…');
    }
    s
}

fn compare(case: &Case, direct: &[Recorded], through: &[Recorded]) -> Result<(), String> {
    for (step, (d, t)) in case.steps.iter().zip(direct.iter().zip(through)) {
        let got = error_code(&d.packets);
        let expected = match step.outcome {
            Outcome::Ok => None,
            Outcome::Err(code) => Some(code),
        };
        if got != expected {
            return Err(format!(
                "step `{}`: the corpus expects {:?} directly, MariaDB answered {:?}: {}",
                d.label,
                step.outcome,
                got,
                d.packets.first().map(show).unwrap_or_default()
            ));
        }
        let (dp, tp) = (&d.packets, &t.packets);
        for (i, pair) in dp.iter().zip(tp).enumerate() {
            if pair.0 != pair.1 {
                return Err(format!(
                    "step `{}`, packet {i}:\n  direct:  {}\n  airlock: {}",
                    d.label,
                    show(pair.0),
                    show(pair.1)
                ));
            }
        }
        if dp.len() != tp.len() {
            return Err(format!(
                "step `{}`: {} packets directly, {} through Airlock (first extra: {})",
                d.label,
                dp.len(),
                tp.len(),
                dp.get(tp.len())
                    .or(tp.get(dp.len()))
                    .map(show)
                    .unwrap_or_default()
            ));
        }
    }
    Ok(())
}

async fn run_case(direct: &Endpoint, through: &Endpoint, case: &Case) -> Result<(), String> {
    let mut d = run_session(direct, case)
        .await
        .map_err(|e| format!("direct: {e}"))?;
    let mut t = run_session(through, case)
        .await
        .map_err(|e| format!("through Airlock: {e}"))?;
    normalise(&mut d);
    normalise(&mut t);
    compare(case, &d, &t)
}

async fn run_cases(direct: &Endpoint, through: &Endpoint, cases: &[Case]) {
    assert!(!cases.is_empty(), "no cases selected");
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = run_case(direct, through, case).await {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Direct as root, and through the gateway as the agent, over TLS or not.
fn endpoints(gateway: &Gateway, db: &MyDb, tls: bool) -> (Endpoint, Endpoint) {
    let direct = Endpoint {
        address: format!("{MYSQL_HOST}:{MYSQL_PORT}"),
        user: "root".into(),
        password: String::new(),
        database: db.name.clone(),
        tls: None,
    };
    let through = Endpoint {
        address: gateway.mysql_addr.clone(),
        user: AGENT.into(),
        password: AGENT_PASSWORD.into(),
        database: db.name.clone(),
        tls: tls.then(|| {
            tls::upstream_config(UpstreamTls::Require, None)
                .expect("TLS client")
                .expect("TLS on")
        }),
    };
    (direct, through)
}

/// A gateway that relays as is (masking off) and offers TLS.
fn relaying_gateway() -> Gateway {
    let dir = tempfile::tempdir().expect("temp dir");
    Gateway::start_with(Options {
        toml: tls_section(dir.path()),
        policy: Some(format!("{ALLOW_ALL_POLICY}\n[masking]\nenabled = false\n")),
        ..Options::default()
    })
}

fn case_database(label: &str) -> MyDb {
    let db = MyDb::create(label);
    mariadb_direct(&db.name, PROCEDURES);
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_through_airlock_are_identical_in_clear_and_over_tls() {
    let db = case_database("diff");
    // The relay itself must be transparent; what masking changes is tested
    // in the masking suites, and below for rows with nothing to mask.
    let gateway = relaying_gateway();
    for tls in [false, true] {
        let (direct, through) = endpoints(&gateway, &db, tls);
        run_cases(&direct, &through, &corpus()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_leaves_rows_with_nothing_sensitive_byte_identical() {
    let db = case_database("diffmask");
    let gateway = Gateway::start();
    let (direct, through) = endpoints(&gateway, &db, false);
    run_cases(&direct, &through, &corpus()).await;
}

/// Packets of 16 MiB and more travel as several chunks, each with its own
/// sequence id; both ways, at the boundary and past it, they must come out
/// as MariaDB sends and takes them. A value of 16777211 bytes makes a row
/// of exactly 0xFFFFFF bytes: one full chunk and an empty one.
fn large_cases() -> Vec<Case> {
    let exact = MAX_CHUNK - 4;
    let big: i32 = 20_000_000;
    let literal = "d".repeat(17 << 20);
    vec![
        Case::new(
            "large_rows_from_the_server",
            vec![
                query(&format!("SELECT REPEAT('a', {exact})")),
                query(&format!("SELECT REPEAT('b', {big}), 'after'")),
                query(&format!(
                    "SELECT REPEAT('c', {big}) UNION ALL SELECT 'small' UNION ALL SELECT REPEAT('e', {exact})"
                )),
                prepare("SELECT REPEAT('f', ?), ?"),
                execute(0, vec![Param::Long(big), Param::text("after")]),
                execute(0, vec![Param::Long(exact as i32 - 4), Param::Null]),
            ],
        ),
        Case::new(
            "large_packets_from_the_client",
            vec![
                query(&format!("SELECT LENGTH('{literal}'), MD5('{literal}')")),
                prepare("SELECT LENGTH(?), MD5(?)"),
                execute(
                    0,
                    vec![
                        Param::Blob(vec![b'g'; 17 << 20]),
                        Param::Blob(vec![b'g'; 1 << 20]),
                    ],
                ),
                long_data(0, 0, vec![b'h'; 17 << 20]),
                long_data(0, 1, vec![b'i'; 3]),
                execute(0, vec![Param::Sent, Param::Sent]),
            ],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_past_16_mib_are_split_and_joined_as_mariadb_does() {
    let _large = LargePackets::allow();
    let db = case_database("difflarge");
    let gateway = relaying_gateway();
    for tls in [false, true] {
        let (direct, through) = endpoints(&gateway, &db, tls);
        run_cases(&direct, &through, &selected(large_cases())).await;
    }
}
