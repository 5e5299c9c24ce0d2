//! Real MySQL drivers, differentially: each probe under
//! protocol-tests/drivers/ runs the same session twice — directly against
//! MariaDB as root, then through an allow-everything Airlock with masking
//! off — and prints everything its driver reports (values and their decoded
//! types, column metadata, row counts, insert ids, warning counts, info
//! strings, status flags the driver exposes, errors, what survives a reset).
//! The two transcripts must be identical line for line: a driver must not
//! be able to tell Airlock from the server.
//!
//! Both runs use the same fresh database one after the other (the probes
//! drop and recreate their objects), so auto-increment ids and error
//! messages naming the database agree.

mod support;

use std::path::Path;
use std::process::Command;
use support::gateway::{Gateway, Options, AGENT, AGENT_PASSWORD, ALLOW_ALL_POLICY};
use support::mysql::{mariadb_direct, LargePackets, MyDb, MYSQL_HOST, MYSQL_PORT};

/// Allow everything and mask nothing: what is left to differ is the relay.
fn transparent_gateway() -> Gateway {
    Gateway::start_with(Options {
        policy: Some(format!("{ALLOW_ALL_POLICY}\n[masking]\nenabled = false\n")),
        ..Default::default()
    })
}

/// One run of a probe; its transcript (stdout).
fn run_probe(
    program: &str,
    args: &[&str],
    addr: (&str, &str),
    login: (&str, &str),
    db: &str,
) -> String {
    let drivers = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/drivers");
    let out = Command::new(program)
        .args(args)
        .current_dir(&drivers)
        .env("MYSQL_HOST", addr.0)
        .env("MYSQL_PORT", addr.1)
        .env("MYSQL_USER", login.0)
        .env("MYSQL_PASSWORD", login.1)
        .env("MYSQL_DATABASE", db)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (run .ci/install-test-deps.sh)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Every probe's last line is its `end` step.
    let finished = stdout
        .lines()
        .last()
        .is_some_and(|l| l.replace(' ', "").contains(r#""step":"end""#));
    assert!(
        out.status.success() && finished,
        "{program} {args:?} did not finish ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `program args` directly and through Airlock; panics with every
/// differing step. `enforced` names the steps where Airlock refuses on
/// purpose (see the relay's module doc): through Airlock each must fail
/// with Airlock's own error, and the steps named `<step>.…` that only make
/// sense after it succeeded may be missing.
fn differential(label: &str, program: &str, args: &[&str], enforced: &[&str]) {
    let _large = LargePackets::allow();
    let db = MyDb::create(label);
    let gateway = transparent_gateway();
    let direct = run_probe(
        program,
        args,
        (MYSQL_HOST, MYSQL_PORT),
        ("root", ""),
        &db.name,
    );
    let (host, port) = gateway.mysql_addr.rsplit_once(':').expect("host:port");
    let through = run_probe(
        program,
        args,
        (host, port),
        (AGENT, AGENT_PASSWORD),
        &db.name,
    );
    let direct = steps(&direct);
    let through = steps(&through);
    let mut report = String::new();
    let is_enforced = |key: &str| {
        enforced.iter().any(|e| {
            key.strip_prefix(e)
                .is_some_and(|r| r.starts_with('#') || r.starts_with('.'))
        })
    };
    for (key, d) in &direct {
        if is_enforced(key) {
            if let Some((_, t)) = through.iter().find(|(k, _)| k == key) {
                if enforced
                    .iter()
                    .any(|e| key.strip_prefix(e).is_some_and(|r| r.starts_with('#')))
                {
                    assert!(
                        t.contains("Airlock"),
                        "{label}: {key} should be refused by Airlock: {t}"
                    );
                }
            }
            continue;
        }
        match through.iter().find(|(k, _)| k == key) {
            Some((_, t)) if t == d => {}
            Some((_, t)) => report.push_str(&format!(
                "--- direct   {}\n+++ airlock  {}\n",
                clip(d),
                clip(t)
            )),
            None => report.push_str(&format!("--- direct only  {}\n", clip(d))),
        }
    }
    for (key, t) in &through {
        if !direct.iter().any(|(k, _)| k == key) && !is_enforced(key) {
            report.push_str(&format!("+++ airlock only {}\n", clip(t)));
        }
    }
    assert!(
        report.is_empty(),
        "{label}: the driver saw a difference through Airlock:\n{report}"
    );
    // A probe that printed nothing would compare equal: make sure it ran.
    assert!(direct.len() > 50, "{label}: only {} steps", direct.len());
}

/// A transcript's lines keyed by step name (a repeated name gets its
/// occurrence number), so that one step more or less on one side shows as
/// that step, not as every line after it.
fn steps(transcript: &str) -> Vec<(String, String)> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    transcript
        .lines()
        .map(|line| {
            let name = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("(unparsed) {line}"));
            let n = seen.entry(name.clone()).or_default();
            *n += 1;
            (format!("{name}#{n}"), line.to_string())
        })
        .collect()
}

fn clip(line: &str) -> String {
    const MAX: usize = 1500;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &line[..end], line.len())
}

/// COM_CHANGE_USER switches the identity a connection runs as: Airlock
/// refuses it (ERR 1227) whatever the policy; drivers' pools reset with
/// COM_RESET_CONNECTION instead, which is relayed.
const CHANGE_USER: &str = "change_user";

/// Airlock does not offer the compressed protocol. Drivers that honour the
/// greeting then talk uncompressed (the Connector/J, C-extension and mysql2
/// probes ask for compression and see no difference); mysql-connector's
/// pure driver compresses anyway, which Airlock refuses at login with ERR
/// 1043 instead of leaving both sides waiting.
const COMPRESS: &str = "compress";

#[test]
fn pymysql_sees_no_difference() {
    differential("prbpym", "python3", &["mysql_probe.py", "pymysql"], &[]);
}

#[test]
fn mysql_connector_pure_sees_no_difference() {
    differential(
        "prbpure",
        "python3",
        &["mysql_probe.py", "pure"],
        &[CHANGE_USER, COMPRESS],
    );
}

#[test]
fn mysql_connector_c_extension_sees_no_difference() {
    differential(
        "prbcext",
        "python3",
        &["mysql_probe.py", "cext"],
        &[CHANGE_USER],
    );
}

#[test]
fn node_mysql2_sees_no_difference() {
    differential("prbnode", "node", &["node/mysql_probe.js"], &[CHANGE_USER]);
}

#[test]
fn mariadb_connector_j_sees_no_difference() {
    differential("prbjdbc", "bash", &["jdbc/mariadb_probe.sh"], &[]);
}

/// A statement Airlock refuses inside a transaction leaves the transaction
/// as MariaDB leaves it when it refuses a statement for want of privilege:
/// the statement fails alone, the transaction stays open with the rows
/// written so far, and COMMIT commits them (ROLLBACK discards them).
/// Compared with the same session run directly as a MariaDB account that
/// lacks the FILE privilege.
///
/// One difference is kept on purpose: a refused DDL never reaches the
/// server, so it does not commit the open transaction implicitly, whereas
/// MariaDB commits before it checks the DDL's privileges. Under Airlock
/// the transaction stays open and a ROLLBACK still discards its rows.
#[test]
fn a_refusal_inside_a_transaction_leaves_it_as_a_server_refusal_does() {
    let db = MyDb::create("prbtx");
    mariadb_direct(&db.name, "CREATE TABLE tx_items (v VARCHAR(20))");
    let user = format!("prbtx_{}", std::process::id());
    mariadb_direct(
        "",
        &format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT, INSERT, DELETE ON {}.* TO '{user}'@'%'",
            db.name
        ),
    );
    let script = ["mysql_tx_refusal.py"];
    let direct = run_lines(
        "python3",
        &script,
        (MYSQL_HOST, MYSQL_PORT),
        (&user, "pw"),
        &db.name,
    );
    mariadb_direct("", &format!("DROP USER '{user}'@'%'"));
    mariadb_direct(&db.name, "DELETE FROM tx_items");
    let gateway = Gateway::with_default_policy();
    let (host, port) = gateway.mysql_addr.rsplit_once(':').expect("host:port");
    let through = run_lines(
        "python3",
        &script,
        (host, port),
        (AGENT, AGENT_PASSWORD),
        &db.name,
    );
    let round = |rounds: &[serde_json::Value], name: &str| {
        let mut r = rounds
            .iter()
            .find(|r| r["round"] == name)
            .unwrap_or_else(|| panic!("no round {name} in {rounds:?}"))
            .clone();
        // Refused on both sides, each with its own error code.
        assert!(r["refused"].is_u64(), "{name} was not refused: {r}");
        r["refused"] = serde_json::Value::Null;
        r
    };
    for name in ["export_commit", "export_rollback"] {
        assert_eq!(round(&direct, name), round(&through, name), "{name}");
    }
    // MariaDB commits before it checks a DDL's privileges; Airlock's refusal
    // never reaches the server, so the transaction stays open.
    let ddl = round(&direct, "ddl_rollback");
    assert_eq!(
        (
            ddl["in_transaction"].as_u64(),
            ddl["after_rollback"].as_u64()
        ),
        (Some(0), Some(1)),
        "{ddl}"
    );
    let ddl = round(&through, "ddl_rollback");
    assert_eq!(
        (
            ddl["in_transaction"].as_u64(),
            ddl["after_rollback"].as_u64()
        ),
        (Some(1), Some(0)),
        "{ddl}"
    );
    assert_eq!(
        mariadb_direct(&db.name, "SELECT COUNT(*) FROM tx_items"),
        "1",
        "only the committed export round's row is left"
    );
}

/// The JSON lines a script printed, its `end` line left out.
fn run_lines(
    program: &str,
    args: &[&str],
    addr: (&str, &str),
    login: (&str, &str),
    db: &str,
) -> Vec<serde_json::Value> {
    run_probe(program, args, addr, login, db)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["step"] != "end")
        .collect()
}
