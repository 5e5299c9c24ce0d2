//! The MySQL listener against the real MariaDB: logins with both password
//! plugins, queries and their results, policy verdicts (with MariaDB's
//! general log as the witness that refused statements never reach it),
//! an identity's databases, KILL, holds, and bad input.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway::{Gateway, Options, AGENT, AGENT_PASSWORD};
use support::inbox::{http, inbox};
use support::mysql::{mariadb_command, mariadb_direct, mariadb_through, marker, GeneralLog, MyDb};

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a Python program (`python3 -c`) with `args`, feeding it `input`;
/// its standard output, or a panic with everything it said.
fn python(script: &str, args: &[&str], input: &str) -> String {
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("feed python3");
    drop(stdin);
    let out = child.wait_with_output().expect("python3 output");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `sql` through the gateway as the agent; panics on failure.
fn agent_ok(gateway: &Gateway, database: &str, sql: &str) -> String {
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        database,
        sql,
        &[],
    );
    assert!(out.status.success(), "{sql}: {}", text(&out));
    stdout(&out)
}

/// Runs `sql` through the gateway as the agent; the error it must fail with.
fn agent_err(gateway: &Gateway, database: &str, sql: &str) -> String {
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        database,
        sql,
        &[],
    );
    assert!(!out.status.success(), "{sql} ran: {}", text(&out));
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn the_mariadb_client_logs_in_with_either_plugin_and_gets_the_servers_answers() {
    let db = MyDb::create("basics");
    let gateway = Gateway::start();
    let addr = &gateway.mysql_addr;
    for plugin in ["caching_sha2_password", "mysql_native_password"] {
        let auth = format!("--default-auth={plugin}");
        let out = mariadb_through(
            addr,
            AGENT,
            AGENT_PASSWORD,
            &db.name,
            "SELECT CONCAT('via ', 'airlock')",
            &[&auth],
        );
        assert!(out.status.success(), "{plugin}: {}", text(&out));
        assert_eq!(stdout(&out), "via airlock");
        let out = mariadb_through(addr, AGENT, "wrong", &db.name, "SELECT 1", &[&auth]);
        assert!(!out.status.success());
        assert!(
            text(&out).contains("ERROR 1045 (28000)"),
            "{plugin}: {}",
            text(&out)
        );
    }
    // An unknown name is refused exactly like a wrong password.
    let out = mariadb_through(addr, "nobody", AGENT_PASSWORD, &db.name, "SELECT 1", &[]);
    assert!(
        text(&out).contains("ERROR 1045 (28000): Access denied for user 'nobody'"),
        "{}",
        text(&out)
    );

    // Writes, their counts and ids, multi-statements and several results.
    let out = agent_ok(
        &gateway,
        &db.name,
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(8,2), at DATETIME(6));\
         INSERT INTO t (name, amount, at) VALUES ('ana', 12.50, '2026-01-02 03:04:05.123456'), ('bo', NULL, NULL);\
         SELECT ROW_COUNT(), LAST_INSERT_ID();\
         UPDATE t SET amount = 1 WHERE name = 'bo';\
         SELECT ROW_COUNT();\
         SELECT id, name, amount, at FROM t ORDER BY id",
    );
    assert_eq!(
        out,
        "2\t1\n1\n1\tana\t12.50\t2026-01-02 03:04:05.123456\n2\tbo\t1.00\tNULL"
    );
    // The server's errors come through with their codes; the session goes on.
    let out = mariadb_through(
        addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "SELECT * FROM no_such_table",
        &[],
    );
    assert!(text(&out).contains("ERROR 1146 (42S02)"), "{}", text(&out));
    let out = mariadb_through(
        addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "INSERT INTO t (id) VALUES (1)",
        &[],
    );
    assert!(text(&out).contains("ERROR 1062 (23000)"), "{}", text(&out));
    let out = mariadb_through(
        addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "SELECT 1; SELECT * FROM no_such_table; SELECT 2",
        &["--force"],
    );
    assert_eq!(
        stdout(&out),
        "1",
        "the batch stops at the error: {}",
        text(&out)
    );
    // A large result arrives whole.
    let out = agent_ok(
        &gateway,
        &db.name,
        "SELECT COUNT(*), SUM(seq) FROM seq_1_to_100000",
    );
    assert_eq!(out, "100000\t5000050000");
    let rows = agent_ok(
        &gateway,
        &db.name,
        "SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000",
    );
    assert_eq!(rows.lines().count(), 20_000);
    // The session is recorded with the MySQL protocol.
    let dir = gateway.stop();
    let mut protocols = Vec::new();
    airlock::audit::read::for_each(&dir.path().join("var/audit"), |_, r| {
        if r["kind"] == "session_start" {
            protocols.push(r["protocol"].as_str().unwrap_or("").to_string());
        }
        true
    })
    .unwrap();
    assert!(
        !protocols.is_empty() && protocols.iter().all(|p| p == "mysql"),
        "{protocols:?}"
    );
}

const DENY_DDL: &str = r#"
[[rule]]
name = "no-ddl"
classes = ["ddl"]
action = "deny"
reason = "schema changes go through migrations"

[[rule]]
name = "allow-the-rest"
classes = ["read", "write", "session"]
action = "allow"
"#;

#[test]
fn refused_statements_never_reach_mariadb() {
    let db = MyDb::create("refused");
    mariadb_direct(&db.name, "CREATE TABLE kept (x INT)");
    let log = GeneralLog::on();
    let gateway = Gateway::start_with(Options {
        policy: Some(DENY_DDL.into()),
        ..Default::default()
    });
    let mark = marker("mydeny");
    let err = agent_err(&gateway, &db.name, &format!("DROP TABLE kept /* {mark} */"));
    assert!(err.contains("ERROR 1227 (42000)"), "{err}");
    assert!(
        err.contains("no-ddl") && err.contains("migrations"),
        "{err}"
    );
    // Hidden behind an allowed statement, or in a prepared statement.
    let err = agent_err(
        &gateway,
        &db.name,
        &format!("SELECT 1; DROP TABLE kept /* {mark}-multi */"),
    );
    assert!(err.contains("ERROR 1227"), "{err}");
    // Unparseable: unknown, which this policy does not allow.
    let err = agent_err(
        &gateway,
        &db.name,
        &format!("FROBNICATE kept /* {mark}-unknown */"),
    );
    assert!(err.contains("ERROR 1227"), "{err}");
    let allowed = marker("myallow");
    agent_ok(&gateway, &db.name, &format!("SELECT '{allowed}'"));
    assert!(log.contains(&allowed), "the log is a working witness");
    assert!(!log.contains(&mark), "a refused statement reached MariaDB");
    assert_eq!(mariadb_direct(&db.name, "SHOW TABLES"), "kept");
}

#[test]
fn an_identitys_databases_bound_its_logins_and_use() {
    let mine = MyDb::create("mine");
    let other = MyDb::create("other");
    let gateway = Gateway::start_with(Options {
        toml: "[[identity]]\nname = \"bounded\"\nrole = \"agent\"\npassword = \"bounded-pw\"\ndatabases = [\"airlock_my_mine_*\"]\n".into(),
        ..Default::default()
    });
    let addr = &gateway.mysql_addr;
    let run = |db: &str, sql: &str| mariadb_through(addr, "bounded", "bounded-pw", db, sql, &[]);
    let out = run(&mine.name, "SELECT DATABASE()");
    assert_eq!(stdout(&out), mine.name, "{}", text(&out));
    let out = run(&other.name, "SELECT 1");
    assert!(text(&out).contains("ERROR 1044 (42000)"), "{}", text(&out));
    let out = run(&mine.name, &format!("USE {}", other.name));
    assert!(text(&out).contains("ERROR 1044 (42000)"), "{}", text(&out));
    let out = run(&mine.name, &format!("SELECT 1; USE `{}`", other.name));
    assert!(text(&out).contains("ERROR 1044 (42000)"), "{}", text(&out));
    // COM_INIT_DB, as the client's `use` command sends it.
    let mut cmd = mariadb_command(addr, "bounded", "bounded-pw", &mine.name, &[]);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("use {}\nSELECT DATABASE();\n", other.name).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(text(&out).contains("ERROR 1044 (42000)"), "{}", text(&out));
    assert!(!stdout(&out).contains(&other.name), "{}", text(&out));

    // The other database's tables, named from inside this one: every
    // place a table can be named is another way in.
    let secret = marker("crossdb");
    mariadb_direct(
        &other.name,
        &format!("CREATE TABLE secrets (v VARCHAR(60)); INSERT INTO secrets VALUES ('{secret}')"),
    );
    mariadb_direct(&mine.name, "CREATE TABLE own (v VARCHAR(60))");
    let o = &other.name;
    let log = GeneralLog::on();
    let attempts = [
        format!("SELECT * FROM {o}.secrets"),
        format!("SELECT * FROM `{o}`.`secrets`"),
        format!("SELECT * FROM {o} . secrets"),
        format!("SELECT * FROM /* c */ `{o}`/**/.secrets"),
        format!("/*!50000 SELECT * FROM {o}.secrets */"),
        format!("SELECT (SELECT v FROM {o}.secrets LIMIT 1)"),
        format!("SELECT * FROM own WHERE v IN (SELECT v FROM {o}.secrets)"),
        format!("SELECT * FROM own UNION SELECT * FROM {o}.secrets"),
        format!("WITH c AS (SELECT * FROM {o}.secrets) SELECT * FROM c"),
        format!("TABLE {o}.secrets"),
        format!("INSERT INTO own SELECT * FROM {o}.secrets"),
        format!("DELETE FROM {o}.secrets"),
        format!("PREPARE s FROM 'SELECT * FROM {o}.secrets'"),
        format!("SELECT 1; SELECT * FROM {o}.secrets"),
    ];
    let probe = marker("crossprobe");
    for sql in &attempts {
        let out = run(&mine.name, &format!("{sql} /* {probe} */"));
        assert!(
            text(&out).contains("ERROR 1044 (42000)") && !text(&out).contains(&secret),
            "{sql}: {}",
            text(&out)
        );
    }
    // Through COM_STMT_PREPARE too.
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = python(
        LOCAL_INFILE_RUNNER,
        &[host, port, "bounded", "bounded-pw", &mine.name, "prepare"],
        &format!("SELECT * FROM {o}.secrets /* {probe} */\n"),
    );
    assert!(out.starts_with("1044 "), "{out}");
    assert!(
        !log.contains(&probe),
        "a statement naming the other database reached MariaDB"
    );
    // The session's own database, and metadata, still work.
    let out = run(
        &mine.name,
        &format!("SELECT count(*) FROM {}.own", mine.name),
    );
    assert_eq!(stdout(&out), "0", "{}", text(&out));
    let out = run(
        &mine.name,
        "SELECT count(*) > 0 FROM information_schema.tables WHERE table_schema = DATABASE()",
    );
    assert_eq!(stdout(&out), "1", "{}", text(&out));
}

#[test]
fn kill_and_side_doors_are_refused_clearly() {
    let db = MyDb::create("kill");
    let gateway = Gateway::start();
    let err = agent_err(&gateway, &db.name, "KILL 1");
    assert!(err.contains("ERROR 1095"), "{err}");
    // No such connection: the server's own answer, as directly.
    let err = agent_err(&gateway, &db.name, "KILL QUERY 999999");
    assert!(
        err.contains("ERROR 1094 (HY000)") && err.contains("Unknown thread id: 999999"),
        "{err}"
    );
}

/// Reads one statement per input line through the gateway with PyMySQL
/// (multi-statements and LOCAL INFILE offered by the client) and, with
/// `prepare` as the fifth argument, with mysql-connector's server-side
/// prepared statements; prints `code message` of each error, or `ok`.
const LOCAL_INFILE_RUNNER: &str = r#"
import sys
host, port, user, password, db, how = sys.argv[1:7]
for line in sys.stdin.read().splitlines():
    try:
        if how == "prepare":
            import mysql.connector
            conn = mysql.connector.connect(host=host, port=int(port), user=user,
                password=password, database=db, allow_local_infile=True, use_pure=True)
            cur = conn.cursor(prepared=True)
            cur.execute(line)
        else:
            import pymysql
            from pymysql.constants import CLIENT
            conn = pymysql.connect(host=host, port=int(port), user=user, password=password,
                database=db, local_infile=True, client_flag=CLIENT.MULTI_STATEMENTS)
            conn.cursor().execute(line)
        print("ok")
    except Exception as e:
        args = getattr(e, "args", ())
        code = getattr(e, "errno", None) or (args[0] if args else None)
        print(code, getattr(e, "msg", None) or (args[1] if len(args) > 1 else str(e)))
"#;

/// `LOAD DATA LOCAL INFILE` is Airlock's to refuse, whatever the policy
/// (this gateway allows everything) and however it is spelt: ERR 1148
/// with Airlock's reason, before MariaDB sees the statement — never the
/// server's puzzling 4166 after it asked the client for a file.
#[test]
fn load_data_local_infile_is_refused_by_airlock_before_the_server_sees_it() {
    let db = MyDb::create("infile");
    mariadb_direct(&db.name, "CREATE TABLE x (line TEXT)");
    let log = GeneralLog::on();
    let gateway = Gateway::start();
    let mark = marker("infile");
    // The mariadb client offers the capability (--local-infile=1).
    let spellings = [
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE x",
        "load data local infile '/etc/passwd' into table x",
        "LOAD /* c */ DATA LOCAL INFILE '/etc/passwd' INTO TABLE x",
        "LOAD DATA /*! LOCAL */ INFILE '/etc/passwd' INTO TABLE x",
        "/*!40000 LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE x */",
        "LOAD XML LOCAL INFILE '/etc/passwd' INTO TABLE x",
        "LOAD DATA CONCURRENT LOCAL INFILE '/etc/passwd' IGNORE INTO TABLE x",
        "LOAD DATA LOW_PRIORITY LOCAL INFILE '/etc/passwd' REPLACE INTO TABLE x",
    ];
    for (n, sql) in spellings.iter().enumerate() {
        let out = mariadb_through(
            &gateway.mysql_addr,
            AGENT,
            AGENT_PASSWORD,
            &db.name,
            &format!("{sql} /* {mark}-{n} */"),
            &["--local-infile=1"],
        );
        let err = text(&out);
        assert!(
            err.contains("ERROR 1148 (42000)") && err.contains("not allowed through Airlock"),
            "{sql}: {err}"
        );
    }
    // Behind an allowed statement of the same query, and as a prepared
    // statement (COM_STMT_PREPARE).
    let (host, port) = gateway.mysql_addr.rsplit_once(':').unwrap();
    for how in ["query", "prepare"] {
        let input = format!(
            "SELECT '{mark}-multi'; LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE x\n\
             LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE x /* {mark}-{how} */\n"
        );
        let out = python(
            LOCAL_INFILE_RUNNER,
            &[host, port, AGENT, AGENT_PASSWORD, &db.name, how],
            &input,
        );
        for line in out.lines() {
            assert!(
                line.starts_with("1148 ") && line.contains("not allowed through Airlock"),
                "{how}: {out}"
            );
        }
        assert_eq!(out.lines().count(), 2, "{how}: {out}");
    }
    let allowed = marker("infile_ok");
    agent_ok(&gateway, &db.name, &format!("SELECT '{allowed}'"));
    assert!(log.contains(&allowed), "the log is a working witness");
    assert!(!log.contains(&mark), "a LOAD DATA LOCAL reached MariaDB");
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM x"), "0");
}

/// Raw bytes to the listener: what comes back before the connection closes.
fn raw_exchange(addr: &str, send: &[u8], read_greeting: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if read_greeting {
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let mut greeting = vec![0u8; len];
        s.read_exact(&mut greeting).unwrap();
    }
    let _ = s.write_all(send);
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    back
}

#[test]
fn bad_packets_get_an_error_and_a_closed_connection_while_others_go_on() {
    let db = MyDb::create("bad");
    let gateway = Gateway::start_with(Options {
        toml: "[mysql]\nlisten = \"127.0.0.1:0\"\nmax_packet_bytes = 1048576\n".into(),
        ..Default::default()
    });
    let addr = &gateway.mysql_addr;
    // Garbage instead of a login (an HTTP request, say).
    let back = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true);
    assert!(
        String::from_utf8_lossy(&back).contains("Bad handshake"),
        "{back:?}"
    );
    // A login packet with a wrong sequence id.
    let back = raw_exchange(addr, &[5, 0, 0, 7, 1, 2, 3, 4, 5], true);
    assert!(
        String::from_utf8_lossy(&back).contains("Bad handshake"),
        "{back:?}"
    );
    // A login that announces 16 MiB.
    let back = raw_exchange(addr, &[0xff, 0xff, 0xff, 1], true);
    assert!(
        String::from_utf8_lossy(&back).contains("Bad handshake"),
        "{back:?}"
    );
    // Bytes, then silence: the startup timeout ends it; meanwhile others log in.
    let out = agent_ok(&gateway, &db.name, "SELECT 'still serving'");
    assert_eq!(out, "still serving");
    // A packet over mysql.max_packet_bytes after login: ERR 1153, closed.
    let big = format!("SELECT LENGTH('{}');\n", "x".repeat(2 << 20));
    let mut client = mariadb_command(
        addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &["--max-allowed-packet=64M"],
    )
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let _ = client.stdin.take().unwrap().write_all(big.as_bytes());
    let out = client.wait_with_output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    let tail = &said[said.len().saturating_sub(300)..];
    assert!(said.contains("ERROR 1153 (08S01)"), "{tail}");
    assert_eq!(agent_ok(&gateway, &db.name, "SELECT 'after'"), "after");
}

const HOLD_WRITES: &str = r#"
[[rule]]
name = "hold-writes"
classes = ["write"]
action = "hold"
group = "dba"
quorum = 1
expiry = "60s"

[[rule]]
name = "hold-exports-briefly"
classes = ["export", "unknown"]
action = "hold"
group = "dba"
quorum = 1
expiry = "2s"

[[rule]]
name = "allow-reads"
classes = ["read", "session", "ddl"]
action = "allow"
"#;

fn holding_gateway() -> Gateway {
    let toml = format!(
        "[approval]\nenabled = true\n[[identity]]\nname = \"dba1\"\nrole = \"approver\"\ngroups = [\"dba\"]\npassword = \"dba1-pw\"\napi_token_hash = \"{}\"\n",
        airlock::hex::encode(blake3::hash(b"dba1-token").as_bytes())
    );
    Gateway::start_with(Options {
        toml,
        policy: Some(HOLD_WRITES.into()),
        ..Default::default()
    })
}

/// A JSON API call as the approver `dba1`; the body as JSON.
fn api(inbox: &str, method: &str, path: &str, body: &str) -> Value {
    http(inbox, method, path, Some("dba1-token"), body).1
}

fn pending_id(inbox: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = api(inbox, "GET", "/api/requests", "");
        if let Some(id) = list
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r["id"].as_str())
        {
            return id.to_string();
        }
        assert!(Instant::now() < deadline, "no request appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_held_statement_waits_on_its_connection_until_decided() {
    let db = MyDb::create("holds");
    mariadb_direct(&db.name, "CREATE TABLE h (x INT)");
    let gateway = holding_gateway();
    let inbox = inbox(&gateway);
    let spawn = |sql: &str| {
        mariadb_command(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, &db.name, &[])
            .args(["-e", sql])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Approved: it runs, and its result comes back on the same connection.
    let client = spawn("INSERT INTO h VALUES (1); SELECT ROW_COUNT()");
    let id = pending_id(&inbox);
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM h"), "0");
    let decided = api(
        &inbox,
        "POST",
        &format!("/api/requests/{id}/approve"),
        r#"{"reason":"ok"}"#,
    );
    assert_eq!(decided["state"], "approved", "{decided}");
    assert_eq!(decided["protocol"], "mysql", "{decided}");
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), "1");
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM h"), "1");
    // What it did is on the request.
    let deadline = Instant::now() + Duration::from_secs(15);
    let outcome = loop {
        let request = api(&inbox, "GET", &format!("/api/requests/{id}"), "");
        if !request["outcome"].is_null() {
            break request["outcome"].clone();
        }
        assert!(Instant::now() < deadline, "no outcome: {request}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(outcome["ok"], true, "{outcome}");
    assert!(
        outcome["summary"]
            .as_str()
            .unwrap()
            .starts_with("OK 1 rows affected in "),
        "{outcome}"
    );

    // Denied: ERR 1227 naming the approver and the reason.
    let client = spawn("INSERT INTO h VALUES (2)");
    let id2 = loop {
        let id2 = pending_id(&inbox);
        if id2 != id {
            break id2;
        }
    };
    api(
        &inbox,
        "POST",
        &format!("/api/requests/{id2}/deny"),
        r#"{"reason":"not today"}"#,
    );
    let out = client.wait_with_output().unwrap();
    let said = text(&out);
    assert!(
        said.contains("ERROR 1227 (42000)") && said.contains("dba1") && said.contains("not today"),
        "{said}"
    );
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM h"), "1");

    // Expired: ERR 1317.
    let out = mariadb_through(
        &gateway.mysql_addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "SELECT * FROM h INTO OUTFILE '/tmp/airlock-never-written'",
        &[],
    );
    assert!(text(&out).contains("ERROR 1317 (70100)"), "{}", text(&out));
}

/// A MariaDB account that can do anything in one database and nothing
/// elsewhere: what the gateway logs in with when a test lets statements
/// the classifier might misjudge reach the server.
struct ServiceAccount {
    name: String,
}

impl ServiceAccount {
    fn for_database(db: &str) -> Self {
        let name = format!("airlock_svc_{}", std::process::id());
        mariadb_direct(
            "",
            &format!(
                "CREATE OR REPLACE USER '{name}'@'127.0.0.1' IDENTIFIED BY 'svc-pw'; \
                 CREATE OR REPLACE USER '{name}'@'localhost' IDENTIFIED BY 'svc-pw'; \
                 GRANT ALL ON `{db}`.* TO '{name}'@'127.0.0.1'; \
                 GRANT ALL ON `{db}`.* TO '{name}'@'localhost'"
            ),
        );
        ServiceAccount { name }
    }
}

impl Drop for ServiceAccount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!(
                "DROP USER IF EXISTS '{0}'@'127.0.0.1'; DROP USER IF EXISTS '{0}'@'localhost'",
                self.name
            ))
            .output();
    }
}

/// Runs each `{marker, sql}` line of stdin on one PyMySQL connection (with
/// multi-statements) and prints `{marker, code, message}` per statement.
const CORPUS_RUNNER: &str = r#"
import json, sys, pymysql
from pymysql.constants import CLIENT
args = dict(host=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3], password=sys.argv[4],
            database=sys.argv[5], client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True,
            connect_timeout=10, read_timeout=30)
conn = pymysql.connect(**args)
for line in sys.stdin:
    case = json.loads(line)
    code, message = 0, ""
    try:
        with conn.cursor() as cur:
            cur.execute(case["sql"])
            while cur.nextset():
                pass
    except pymysql.err.MySQLError as e:
        code = e.args[0] if e.args and isinstance(e.args[0], int) else -1
        message = str(e.args[1]) if len(e.args) > 1 else str(e)
    except Exception as e:
        code, message = -2, repr(e)
    if not conn.open or code in (-1, -2, 2006, 2013, 2014):
        try:
            conn.close()
        except Exception:
            pass
        conn = pymysql.connect(**args)
    print(json.dumps({"marker": case["marker"], "code": code, "message": message}), flush=True)
"#;

#[test]
fn the_classification_corpus_mysql_cases_never_reach_mariadb_when_refused() {
    let cases: Vec<String> = support::corpus::classification_sql("mysql")
        .into_iter()
        .collect();
    assert!(cases.len() > 200, "{} MySQL cases", cases.len());

    let db = MyDb::create("corpus");
    let account = ServiceAccount::for_database(&db.name);
    let log = GeneralLog::on();
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let policy = airlock::policy::Policy::load_dir(&policies).unwrap();
    let gateway = Gateway::start_with(Options {
        toml: format!(
            "[mysql]\nlisten = \"127.0.0.1:0\"\nupstream = \"mysql://{}:svc-pw@127.0.0.1:3306/{}\"\n",
            account.name, db.name
        ),
        policy: Some(std::fs::read_to_string(policies.join("default.toml")).unwrap()),
        ..Default::default()
    });
    let run = marker("corpus");
    let mut input = String::new();
    let mut refused_expected = std::collections::HashMap::new();
    for (i, sql) in cases.iter().enumerate() {
        let classification = airlock::sql::classify(sql, airlock::sql::Dialect::Mysql);
        let decision = policy.evaluate(&airlock::policy::Request {
            identity: AGENT,
            role: airlock::identity::Role::Agent,
            database: &db.name,
            classification: &classification,
            masked_columns: support::corpus::columns_known_to_a_fresh_gateway(&classification),
        });
        let tag = format!("{run}c{i}x");
        // Refused by the policy, or by Airlock whatever the policy says.
        let d = airlock::sql::Dialect::Mysql;
        let by_airlock = airlock::sql::encoding::encoding_change(sql.as_bytes(), d).is_some()
            || airlock::sql::local_infile(sql.as_bytes(), d).is_some();
        refused_expected.insert(
            tag.clone(),
            by_airlock || decision.action != airlock::policy::Action::Allow,
        );
        input.push_str(
            &serde_json::json!({"marker": tag, "sql": format!("/* {tag} */ {sql}")}).to_string(),
        );
        input.push('\n');
    }
    let (host, port) = gateway.mysql_addr.rsplit_once(':').unwrap();
    let out = python(
        CORPUS_RUNNER,
        &[host, port, AGENT, AGENT_PASSWORD, &db.name],
        &input,
    );
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), cases.len(), "{out}");
    let logged = std::fs::read(&log.file)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap();
    let (mut refused, mut allowed) = (0, 0);
    for r in &results {
        let tag = r["marker"].as_str().unwrap();
        let message = r["message"].as_str().unwrap_or("");
        // 1095: a KILL of a connection that is not the identity's own;
        // 1235: a statement that may switch the client encoding; 1148:
        // LOAD DATA LOCAL INFILE — both refused by Airlock whatever the policy.
        // 1094: a KILL QUERY of an id that is no gateway connection,
        // answered by Airlock in the server's own words.
        let by_airlock = [1227, 1095, 1235, 1148].iter().any(|c| r["code"] == *c)
            && message.contains("Airlock")
            || r["code"] == 1094 && message.starts_with("Unknown thread id: ");
        if refused_expected[tag] {
            assert!(by_airlock, "{tag} should be refused by Airlock: {r}");
            assert!(
                !logged.contains(&format!("{tag} ")),
                "a refused statement reached MariaDB: {r}"
            );
            refused += 1;
        } else {
            assert!(!by_airlock, "{tag} should run: {r}");
            allowed += 1;
        }
    }
    // The log is a working witness: allowed statements are in it.
    let witnessed = results
        .iter()
        .filter(|r| !refused_expected[r["marker"].as_str().unwrap()])
        .filter(|r| logged.contains(&format!("{} ", r["marker"].as_str().unwrap())))
        .count();
    assert!(
        witnessed * 10 >= allowed * 9,
        "{witnessed} of {allowed} allowed statements in the log"
    );
    eprintln!("{refused} refused, none reached MariaDB; {allowed} allowed, {witnessed} in its log");
    drop(gateway);
}

/// Loads `{id, body}` lines of stdin into `corpus` (directly, as root).
const CORPUS_LOADER: &str = r#"
import json, sys, pymysql
conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=sys.argv[1],
                       charset="utf8mb4", autocommit=True)
rows = [json.loads(l) for l in sys.stdin]
with conn.cursor() as cur:
    cur.execute("CREATE TABLE corpus (id INT PRIMARY KEY, body LONGTEXT, doc JSON)")
    cur.executemany("INSERT INTO corpus VALUES (%s, %s, %s)",
                    [(r["id"], r["body"], r["doc"]) for r in rows])
"#;

/// Reads the corpus table through the gateway, in the text protocol
/// (PyMySQL) or the binary protocol (mysql-connector's server-side
/// prepared statements), and prints `{id, body, doc}` lines.
const CORPUS_READER: &str = r#"
import json, sys
host, port, user, password, db, protocol = sys.argv[1:7]
if protocol == "text":
    import pymysql
    conn = pymysql.connect(host=host, port=int(port), user=user, password=password, database=db,
                           charset="utf8mb4")
    cur = conn.cursor()
    cur.execute("SELECT id, body, doc FROM corpus ORDER BY id")
else:
    import mysql.connector
    conn = mysql.connector.connect(host=host, port=int(port), user=user, password=password,
                                   database=db, use_pure=True, ssl_disabled=True)
    cur = conn.cursor(prepared=True)
    cur.execute("SELECT id, body, doc FROM corpus WHERE id >= ? ORDER BY id", (0,))
def text(v):
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else v
for (i, body, doc) in cur.fetchall():
    print(json.dumps({"id": i, "body": text(body), "doc": text(doc)}))
"#;

#[test]
fn the_masking_corpus_comes_back_masked_through_mysql_clients() {
    use support::corpus::load_corpus;
    let cells: Vec<_> = load_corpus()
        .into_iter()
        .filter(|c| c.id % 4 == 1)
        .collect();
    let db = MyDb::create("masking");
    let mut rows = String::new();
    for cell in &cells {
        let doc = cell.is_json().then_some(cell.text.as_str());
        rows.push_str(
            &serde_json::json!({"id": cell.id, "body": cell.text, "doc": doc}).to_string(),
        );
        rows.push('\n');
    }
    python(CORPUS_LOADER, &[&db.name], &rows);
    let gateway =
        masking_gateway("detectors = [\"all\"]\njson_secret_keys = true\nstrategy = \"redact\"\n");
    let (host, port) = gateway.mysql_addr.rsplit_once(':').unwrap();
    for protocol in ["text", "binary"] {
        let out = python(
            CORPUS_READER,
            &[host, port, AGENT, AGENT_PASSWORD, &db.name, protocol],
            "",
        );
        let got: std::collections::HashMap<u64, Value> = out
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["id"].as_u64().unwrap(), v)
            })
            .collect();
        assert_eq!(got.len(), cells.len(), "{protocol}: every row came back");
        let (mut checked, mut leaks, mut untouched) = (0, Vec::new(), 0);
        for cell in &cells {
            let row = &got[&u64::from(cell.id)];
            let body = row["body"].as_str().unwrap_or("");
            let doc = row["doc"].as_str().unwrap_or("");
            // A cell a detector flags falsely is masked: mask_eval's
            // business, not the gateway's.
            if cell.labels.is_empty() && !cell.falsely_detected() {
                assert_eq!(
                    body, cell.text,
                    "{protocol}: cell {} has nothing to mask",
                    cell.id
                );
                untouched += 1;
            }
            for label in cell.labels.iter().filter(|l| cell.detected(l)) {
                checked += 1;
                for form in cell.forms(label) {
                    if body.contains(&form) || doc.contains(&form) {
                        leaks.push(format!("cell {} {}: {form}", cell.id, label.kind));
                    }
                }
            }
        }
        assert!(
            leaks.is_empty(),
            "{protocol}: {} values in clear: {:?}",
            leaks.len(),
            &leaks[..leaks.len().min(10)]
        );
        assert!(
            checked > 1000,
            "{protocol}: {checked} detected values checked"
        );
        eprintln!("{protocol} protocol: {checked} detected values masked, {untouched} cells without labels unchanged");
    }
}

/// Connection A sleeps (or waits on a hold); connection B, the same
/// identity, sends `KILL QUERY <A's connection id as Airlock gave it>`.
/// Prints A's error code and how long it waited.
const KILL_RUNNER: &str = r#"
import json, sys, threading, time, pymysql
host, port, user, password, db, sql = sys.argv[1:7]
args = dict(host=host, port=int(port), user=user, password=password, database=db, read_timeout=60)
a = pymysql.connect(**args)
result = {}
def run():
    started = time.time()
    try:
        with a.cursor() as cur:
            cur.execute(sql)
            result["rows"] = [list(r) for r in cur.fetchall()]
    except pymysql.err.MySQLError as e:
        result["code"] = e.args[0]
        result["message"] = str(e.args[1]) if len(e.args) > 1 else ""
    result["seconds"] = time.time() - started
t = threading.Thread(target=run)
t.start()
time.sleep(1.5)
b = pymysql.connect(**args)
with b.cursor() as cur:
    cur.execute("KILL QUERY %d" % a.thread_id())
t.join(30)
result["a_thread_id"] = a.thread_id()
print(json.dumps(result))
"#;

fn kill_from_another_connection(gateway: &Gateway, db: &str, sql: &str) -> Value {
    let (host, port) = gateway.mysql_addr.rsplit_once(':').unwrap();
    let out = python(
        KILL_RUNNER,
        &[host, port, AGENT, AGENT_PASSWORD, db, sql],
        "",
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn kill_query_from_another_connection_cancels_a_statement_or_withdraws_a_hold() {
    let db = MyDb::create("killq");
    mariadb_direct(&db.name, "CREATE TABLE h (x INT)");
    let gateway = holding_gateway();
    // A running statement: MariaDB interrupts it (ERR 1317) long before it ends.
    let r = kill_from_another_connection(&gateway, &db.name, "SELECT SLEEP(20)");
    assert!(
        r["code"] == 1317 || r["rows"] == serde_json::json!([[1]]),
        "{r}"
    );
    assert!(r["seconds"].as_f64().unwrap() < 10.0, "{r}");
    // A held statement: the request is withdrawn and the client told so.
    let r = kill_from_another_connection(&gateway, &db.name, "INSERT INTO h VALUES (1)");
    assert_eq!(r["code"], 1317, "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("withdrawn")
            || r["message"].as_str().unwrap().contains("cancel"),
        "{r}"
    );
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM h"), "0");
    let inbox = inbox(&gateway);
    let list = api(&inbox, "GET", "/api/requests?state=withdrawn", "");
    assert!(
        list.as_array()
            .is_some_and(|a| a.iter().any(|r| r["state"] == "withdrawn")),
        "{list}"
    );
}

/// Approvers see MariaDB's plan for a held write (EXPLAIN FORMAT=JSON on
/// another connection), its values masked. MariaDB evaluates derived
/// tables while it explains, so a statement that calls a stored function
/// gets no plan — and the function does not run before the decision.
#[test]
fn a_held_write_comes_with_mariadbs_plan_and_explaining_it_runs_nothing() {
    let db = MyDb::create("holds_impact");
    mariadb_direct(
        &db.name,
        "CREATE TABLE accounts (id INT PRIMARY KEY, email TEXT, note TEXT); \
         INSERT INTO accounts VALUES (1, 'ana.lima@example.com', ''), (2, 'bo@example.com', ''); \
         CREATE TABLE calls (n INT) ENGINE=Aria TRANSACTIONAL=0",
    );
    // Non-transactional on purpose: a rollback would not undo its writes.
    let created = std::process::Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-D",
            &db.name,
            "--delimiter=//",
            "-e",
        ])
        .arg(
            "CREATE FUNCTION noisy() RETURNS INT MODIFIES SQL DATA \
             BEGIN INSERT INTO calls VALUES (1); RETURN 1; END//",
        )
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", text(&created));
    let gateway = holding_gateway();
    let inbox = inbox(&gateway);
    let spawn = |sql: &str| {
        mariadb_command(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, &db.name, &[])
            .args(["-e", sql])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    let client = spawn("UPDATE accounts SET note = 'checked' WHERE email = 'ana.lima@example.com'");
    let id = pending_id(&inbox);
    let request = api(&inbox, "GET", &format!("/api/requests/{id}"), "");
    let impact = request["impact"].as_str().expect("a plan").to_string();
    assert!(impact.contains(r#""table_name": "accounts""#), "{impact}");
    assert!(impact.contains("\"rows\""), "{impact}");
    assert!(!impact.contains("ana.lima"), "{impact}");
    api(&inbox, "POST", &format!("/api/requests/{id}/approve"), "");
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        mariadb_direct(&db.name, "SELECT note FROM accounts WHERE id = 1"),
        "checked"
    );

    let client =
        spawn("UPDATE accounts SET note = 'x' WHERE id IN (SELECT a FROM (SELECT noisy() AS a) d)");
    let id2 = loop {
        let next = pending_id(&inbox);
        if next != id {
            break next;
        }
    };
    let request = api(&inbox, "GET", &format!("/api/requests/{id2}"), "");
    assert!(request["impact"].is_null(), "{request}");
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM calls"), "0");
    api(&inbox, "POST", &format!("/api/requests/{id2}/deny"), "");
    let _ = client.wait_with_output();
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM calls"), "0");
}

/// A client that does not wait for its held statement: `pipeline` sends a
/// second query behind it, `quit` hangs up (COM_QUIT) while it waits.
const PIPELINE_RUNNER: &str = r#"
import json, sys, time, pymysql
from pymysql.constants import COMMAND
from pymysql.connections import MySQLResult
host, port, user, password, db, mode, held = sys.argv[1:8]
conn = pymysql.connect(host=host, port=int(port), user=user, password=password, database=db, read_timeout=60, autocommit=True)
conn._execute_command(COMMAND.COM_QUERY, held)
if mode == "quit":
    time.sleep(0.5)
    conn.close()
    print(json.dumps({"quit": True}))
    sys.exit(0)
conn._execute_command(COMMAND.COM_QUERY, "SELECT COUNT(*) FROM h")
print("sent", flush=True)
# Both commands were sent; each reply starts at sequence id 1.
conn._next_seq_id = 1
first = MySQLResult(conn)
first.read()
conn._next_seq_id = 1
second = MySQLResult(conn)
second.read()
print(json.dumps({"affected": first.affected_rows, "rows": [list(r) for r in second.rows]}))
"#;

#[test]
fn what_a_client_sends_behind_a_held_statement_waits_its_turn_and_a_quit_withdraws_it() {
    let db = MyDb::create("holds_pipeline");
    mariadb_direct(&db.name, "CREATE TABLE h (x INT)");
    let gateway = holding_gateway();
    let inbox = inbox(&gateway);
    let (host, port) = gateway.mysql_addr.rsplit_once(':').unwrap();
    let run = |mode: &str| {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(PIPELINE_RUNNER)
            .args([host, port, AGENT, AGENT_PASSWORD, &db.name, mode])
            .arg("INSERT INTO h VALUES (1)")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    // The query behind the held one is answered after it, in order: it
    // sees the row the approved insert wrote.
    let client = run("pipeline");
    let id = pending_id(&inbox);
    std::thread::sleep(Duration::from_millis(500));
    let request = api(&inbox, "GET", &format!("/api/requests/{id}"), "");
    assert_eq!(request["state"], "pending", "{request}");
    api(&inbox, "POST", &format!("/api/requests/{id}/approve"), "");
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = stdout(&out);
    let result: Value = serde_json::from_str(said.lines().last().unwrap()).unwrap();
    assert_eq!(result["affected"], 1, "{said}");
    assert_eq!(result["rows"], serde_json::json!([[1]]), "{said}");

    // A client that quits while its statement waits withdraws it.
    let client = run("quit");
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = api(&inbox, "GET", "/api/requests?state=withdrawn", "");
        if list.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "not withdrawn: {list}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM h"), "1");
}

#[test]
fn a_hold_whose_database_connection_is_killed_is_withdrawn_and_cannot_be_approved() {
    let db = MyDb::create("holds_killed");
    mariadb_direct(&db.name, "CREATE TABLE h (x INT)");
    let gateway = holding_gateway();
    let inbox = inbox(&gateway);
    let client = mariadb_command(&gateway.mysql_addr, AGENT, AGENT_PASSWORD, &db.name, &[])
        .args(["-e", "INSERT INTO h VALUES (1)"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = pending_id(&inbox);
    // The gateway's upstream connection for the session is the one in the
    // test's database.
    let ids = mariadb_direct(
        "",
        &format!(
            "SELECT id FROM information_schema.processlist WHERE db = '{}' AND id <> CONNECTION_ID()",
            db.name
        ),
    );
    for upstream in ids.lines() {
        mariadb_direct("", &format!("KILL CONNECTION {upstream}"));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let request = loop {
        let request = api(&inbox, "GET", &format!("/api/requests/{id}"), "");
        if request["state"] == "withdrawn" {
            break request;
        }
        assert!(Instant::now() < deadline, "not withdrawn: {request}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        request["ended_because"]
            .as_str()
            .unwrap_or("")
            .contains("database connection was lost"),
        "{request}"
    );
    let (status, refused) = http(
        &inbox,
        "POST",
        &format!("/api/requests/{id}/approve"),
        Some("dba1-token"),
        "{}",
    );
    assert_eq!(status, 409, "{refused}");
    let out = client.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("withdrawn"), "{}", text(&out));
    assert_eq!(mariadb_direct(&db.name, "SELECT COUNT(*) FROM h"), "0");
}

/// A card turned into fullwidth or Arabic-Indic digits, or spread out with
/// zero-width spaces, by the agent's own query comes back masked as the
/// card it still is.
#[test]
fn values_rewritten_into_other_digits_by_the_query_are_masked() {
    let db = MyDb::create("masking_fold");
    mariadb_direct(
        &db.name,
        "CREATE TABLE cards (card VARCHAR(32)); INSERT INTO cards VALUES ('4111 1111 1111 1111')",
    );
    let gateway = masking_gateway("strategy = \"redact\"\n");
    let rewrite = |to: &str| {
        (0..10).fold("card".to_string(), |expr, d| {
            let digit: String = to.chars().nth(d).into_iter().collect();
            format!("REPLACE({expr}, '{d}', '{digit}')")
        })
    };
    for expr in [
        rewrite("０１２３４５６７８９"),
        rewrite("٠١٢٣٤٥٦٧٨٩"),
        "REGEXP_REPLACE(card, '([0-9])', CONCAT('\\\\1', _utf8mb4 0xE2808B))".to_string(),
    ] {
        let sql = format!("SELECT {expr} AS v FROM cards");
        let direct = mariadb_direct(&db.name, &sql);
        assert!(
            direct.chars().filter(|c| c.is_numeric()).count() >= 16,
            "{sql} directly: {direct}"
        );
        let got = agent_ok(&gateway, &db.name, &sql);
        assert!(got.contains("<CARD>"), "{sql}: {got}");
        assert!(!got.chars().any(char::is_numeric), "{sql}: {got}");
    }
}

/// An address spelled out a character at a time by the agent's own query
/// (with spaces, ` . `, a middle dot, or after its letters were swapped
/// for Cyrillic ones drawn alike), with `at` and `dot` written out, or
/// written backwards, comes back masked whole.
#[test]
fn addresses_spelled_out_or_respelled_by_the_query_are_masked() {
    let db = MyDb::create("masking_spelled");
    mariadb_direct(
        &db.name,
        "CREATE TABLE people (id INT, email VARCHAR(64)); \
         INSERT INTO people VALUES (1, 'ace@co.co'), (2, 'jane.doe@example.com')",
    );
    let gateway = masking_gateway("strategy = \"redact\"\n");
    let cyrillic = "aceopxy"
        .chars()
        .zip("асеорху".chars())
        .fold("email".to_string(), |expr, (latin, look_alike)| {
            format!("REPLACE({expr}, '{latin}', '{look_alike}')")
        });
    for expr in [
        "REGEXP_REPLACE(email, '(.)', '\\\\1 ')".to_string(),
        "REGEXP_REPLACE(email, '(.)', '\\\\1 . ')".to_string(),
        "REGEXP_REPLACE(email, '(.)', CONCAT('\\\\1', _utf8mb4 0xC2B7))".to_string(),
        format!("REGEXP_REPLACE({cyrillic}, '(.)', '\\\\1, ')"),
        format!("REGEXP_REPLACE({cyrillic}, '(.)', '\\\\1-')"),
        "REPLACE(REPLACE(email, '@', ' at '), '.', ' dot ')".to_string(),
        "REVERSE(email)".to_string(),
    ] {
        let sql = format!("SELECT {expr} AS v FROM people ORDER BY id");
        let direct = mariadb_direct(&db.name, &sql);
        assert_eq!(direct.lines().count(), 2, "{sql} directly: {direct}");
        assert!(
            direct.contains("@") || direct.contains(" at "),
            "{sql} directly: {direct}"
        );
        let got = agent_ok(&gateway, &db.name, &sql);
        let cells: Vec<&str> = got.lines().skip_while(|l| *l == "v").collect();
        assert_eq!(cells.len(), 2, "{sql}: {got}");
        for cell in cells {
            let shown = cell.trim_end_matches([' ', ',', '-', '.', '·']);
            assert_eq!(shown, "<EMAIL>", "{sql}: {got}");
        }
    }
}

/// A session remembers what it found in a value and reuses it when the
/// value comes again down a result: every copy is still masked, and the
/// result's audit record still counts every one.
#[test]
fn values_repeated_down_results_are_masked_and_counted_every_time() {
    const ROWS: usize = 1200;
    let db = MyDb::create("masking_repeat");
    mariadb_direct(
        &db.name,
        &format!(
            "CREATE TABLE notes AS SELECT seq AS id, CASE seq % 3 \
             WHEN 0 THEN 'refund to card 4111 1111 1111 1111, call +44 20 7946 0958' \
             WHEN 1 THEN CONCAT('refund to card 4111 1111 1111 111', seq % 10, ', note ', seq) \
             ELSE CONCAT('shipped to user', seq, '@example.org') END AS body \
             FROM seq_1_to_{ROWS}"
        ),
    );
    let gateway = masking_gateway("strategy = \"redact\"\n");
    let sql = "SELECT body FROM notes ORDER BY id";
    let direct = mariadb_direct(&db.name, sql);
    for round in 0..2 {
        let got = agent_ok(&gateway, &db.name, sql);
        assert_eq!(got.lines().count(), ROWS, "round {round}");
        for (got, stored) in got.lines().zip(direct.lines()) {
            assert!(
                !got.contains("4111 1111 1111 1111")
                    && !got.contains("7946 0958")
                    && !got.contains("@example.org"),
                "round {round}: {stored:?} came back as {got:?}"
            );
            if stored.ends_with("+44 20 7946 0958") {
                assert_eq!(got, "refund to card <CARD>, call <PHONE>", "round {round}");
            }
        }
    }
    // 400 cards and phones from the repeated note, the cards of the others
    // that pass the checksum (one in ten), 400 addresses: in each record.
    let dir = gateway.stop();
    let counted = support::gateway::masked_counts_of_results(dir.path(), ROWS as u64, "body");
    let luhn_ok = (1..=ROWS).filter(|g| g % 3 == 1 && g % 10 == 1).count();
    assert_eq!(counted.len(), 2, "{counted:?}");
    for masked in &counted {
        assert_eq!(masked["card"], (ROWS / 3 + luhn_ok) as u64, "{masked}");
        assert_eq!(masked["phone"], (ROWS / 3) as u64, "{masked}");
        assert_eq!(masked["email"], (ROWS / 3) as u64, "{masked}");
    }
}

/// One multi-statement query answers with many results in one write. Their
/// records are written after the answer, or before it once more than a
/// few dozen are held: either way every result and the error that ends
/// the query are recorded once, in order, before the session's end.
#[test]
fn every_result_of_a_multi_statement_query_is_recorded_once_in_order() {
    const STATEMENTS: usize = 150;
    let db = MyDb::create("many_results");
    let gateway = Gateway::start();
    let (host, port) = gateway.mysql_addr.rsplit_once(':').unwrap();
    let mut sql: Vec<String> = (0..STATEMENTS)
        .map(|i| format!("SELECT {i} AS n"))
        .collect();
    sql.push("SELECT * FROM no_such_table".into());
    let out = python(
        MULTI_RESULTS_RUNNER,
        &[host, port, AGENT, AGENT_PASSWORD, &db.name],
        &sql.join("; "),
    );
    assert_eq!(out.trim(), format!("{STATEMENTS} 1146"), "{out}");

    let dir = gateway.stop();
    let mut kinds = Vec::new();
    let mut session = None;
    airlock::audit::read::for_each(&dir.path().join("var/audit"), |_, r| {
        let of = r.get("session").and_then(|s| s.as_str());
        if r["kind"] == "session_start" && r["identity"] == AGENT {
            session = of.map(str::to_string);
        }
        if session.is_some() && of == session.as_deref() {
            let kind = r["kind"].as_str().unwrap_or("").to_string();
            kinds.push(match kind.as_str() {
                "result" => format!("result {}", r["tag"].as_str().unwrap_or("")),
                "error" => format!("error {}", r["code"].as_str().unwrap_or("")),
                _ => kind,
            });
        }
        true
    })
    .expect("read the audit log");
    // PyMySQL's own settings at connect are the session's first results.
    let selects = |k: &&String| *k == "result SELECT 1";
    assert_eq!(
        kinds.iter().filter(selects).count(),
        STATEMENTS,
        "{kinds:?}"
    );
    let error = kinds
        .iter()
        .position(|k| k.starts_with("error 1146"))
        .expect("the error");
    assert_eq!(
        kinds.iter().rposition(|k| selects(&k)),
        Some(error - 1),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("session_end"),
        "{kinds:?}"
    );
}

/// Runs stdin as one multi-statement query with PyMySQL, reads every
/// result set, and prints how many it read and the error that ended it.
const MULTI_RESULTS_RUNNER: &str = r#"
import sys, pymysql
from pymysql.constants import CLIENT
host, port, user, password, db = sys.argv[1:6]
conn = pymysql.connect(host=host, port=int(port), user=user, password=password,
    database=db, client_flag=CLIENT.MULTI_STATEMENTS)
cur = conn.cursor()
sets, code = 0, 0
try:
    cur.execute(sys.stdin.read())
    sets += 1
    while cur.nextset():
        sets += 1
except pymysql.err.MySQLError as e:
    code = e.args[0]
print(sets, code)
conn.close()
"#;

/// A gateway that lets every statement through and masks results with the
/// `[masking]` settings given.
fn masking_gateway(masking: &str) -> Gateway {
    Gateway::start_with(Options {
        policy: Some(format!(
            "{}\n[masking]\n{masking}",
            support::gateway::ALLOW_ALL_POLICY
        )),
        ..Default::default()
    })
}
