//! What an operator sees of a running gateway: the OpenMetrics endpoint
//! (scraped after a scripted session and parsed with the Python
//! `prometheus_client` OpenMetrics parser, so the text is valid, not just
//! plausible), `/healthz` and `/readyz`, and the agent's identity in the
//! database's own view of the session (`pg_stat_activity`), which the agent
//! cannot take away.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use support::gateway::{
    default_policy, psql_direct, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD,
};
use support::inbox::exchange;
use support::wire::{BackendMsg, Frontend, Wire};

const METRICS: &str = "[metrics]\nlisten = \"127.0.0.1:0\"\n";
const EMAIL: &str = "jane.doe@example.org";

/// The metrics endpoint's address, from the gateway's start-up lines.
fn metrics_addr(gateway: &Gateway) -> String {
    gateway
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("metrics on http://"))
        .and_then(|rest| rest.split_once('/'))
        .map(|(addr, _)| addr.to_string())
        .unwrap_or_else(|| panic!("no metrics line in {}", gateway.stdout))
}

fn get(addr: &str, path: &str) -> (u16, String, String) {
    exchange(addr, "GET", path, "", "text/plain", "")
}

/// Every sample, keyed `name{label="v",…}` with labels sorted, as the
/// Python `prometheus_client` OpenMetrics parser reads the text (it
/// rejects text that is not valid OpenMetrics, `# EOF` included).
fn scrape(addr: &str) -> HashMap<String, f64> {
    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s{%s} %r" % (s.name, labels, s.value))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (run .ci/install-test-deps.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write metrics to the parser");
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "not valid OpenMetrics: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().expect("a number")))
        .collect()
}

fn sample(samples: &HashMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

fn rows(msgs: &[BackendMsg]) -> Vec<String> {
    msgs.iter()
        .filter_map(BackendMsg::data_row)
        .map(|r| String::from_utf8_lossy(r[0].as_deref().unwrap_or_default()).into_owned())
        .collect()
}

fn error_code(msgs: &[BackendMsg]) -> Option<String> {
    msgs.iter()
        .find(|m| m.is_error())
        .and_then(BackendMsg::sqlstate)
}

#[tokio::test]
async fn a_scripted_session_moves_the_counters_it_must() {
    let db = TestDb::create("metrics");
    psql_direct(
        &db.name,
        &format!("CREATE TABLE people (email text); INSERT INTO people VALUES ('{EMAIL}')"),
    );
    let gateway = Gateway::start_with(Options {
        toml: METRICS.into(),
        policy: Some(default_policy()),
        ..Default::default()
    });
    let addr = metrics_addr(&gateway);
    let before = scrape(&addr);

    let wrong = Wire::connect(&gateway.addr, AGENT, "not-the-password", &db.name, &[]).await;
    assert!(wrong.is_err(), "a wrong password logged in");
    let mut wire = gateway.agent_session(&db.name).await;
    let read = wire.simple_query("SELECT email FROM people").await.unwrap();
    assert_eq!(rows(&read).len(), 1);
    assert!(
        !rows(&read)[0].contains(EMAIL),
        "not masked: {:?}",
        rows(&read)
    );
    // DDL is held; approvals are off here, so it is refused at once.
    let held = wire.simple_query("CREATE TABLE t (a int)").await.unwrap();
    assert_eq!(error_code(&held).as_deref(), Some("42501"));
    // Admin statements are denied by the default policy.
    let denied = wire
        .simple_query("ALTER SYSTEM SET work_mem = '8MB'")
        .await
        .unwrap();
    assert_eq!(error_code(&denied).as_deref(), Some("42501"));

    let during = scrape(&addr);
    let moved = |key: &str| sample(&during, key) - sample(&before, key);
    let pg = r#"protocol="postgres""#;
    for (key, by) in [
        (format!("airlock_auth_failures_total{{{pg}}}"), 1.0),
        (
            format!(r#"airlock_sessions_total{{identity="agent",{pg}}}"#),
            1.0,
        ),
        (
            format!(r#"airlock_sessions_open{{identity="agent",{pg}}}"#),
            1.0,
        ),
        (
            format!(r#"airlock_statements_total{{class="read",{pg},verdict="allow"}}"#),
            1.0,
        ),
        (
            format!(r#"airlock_statements_total{{class="ddl",{pg},verdict="hold"}}"#),
            1.0,
        ),
        (
            format!(r#"airlock_statements_total{{class="admin",{pg},verdict="deny"}}"#),
            1.0,
        ),
        (
            format!(r#"airlock_refusals_total{{{pg},reason="denied"}}"#),
            1.0,
        ),
        (
            format!(r#"airlock_refusals_total{{{pg},reason="held_without_approvals"}}"#),
            1.0,
        ),
        (
            r#"airlock_masked_values_total{kind="email"}"#.to_string(),
            1.0,
        ),
    ] {
        assert_eq!(moved(&key), by, "{key}: {:?}", during.get(&key));
    }
    for key in [
        format!(r#"airlock_relayed_bytes_total{{direction="to_client",{pg}}}"#),
        format!(r#"airlock_relayed_bytes_total{{direction="to_upstream",{pg}}}"#),
        format!("airlock_gateway_added_seconds_count{{{pg}}}"),
        "airlock_audit_append_seconds_count{}".to_string(),
    ] {
        assert!(moved(&key) > 0.0, "{key} did not move");
    }
    assert!(
        sample(
            &during,
            &format!(r#"airlock_upstream_connections{{{pg},state="in_use"}}"#)
        ) >= 1.0,
        "the session's upstream connection is not counted"
    );
    // No label carries SQL text or a value.
    let (_, _, text) = get(&addr, "/metrics");
    for secret in [EMAIL, "people", "work_mem", "not-the-password"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    wire.terminate().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let open = format!(r#"airlock_sessions_open{{identity="agent",{pg}}}"#);
    while sample(&scrape(&addr), &open) != sample(&before, &open) {
        assert!(
            std::time::Instant::now() < deadline,
            "the session stays open in the metrics"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let (status, _, body) = get(&addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get(&addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("postgres upstream 127.0.0.1:5432: reachable"),
        "{body}"
    );
    assert!(body.contains("audit log: writable"), "{body}");
}

#[tokio::test]
async fn readiness_fails_while_the_upstream_is_unreachable() {
    // Port 1 on loopback: nothing listens, connections are refused.
    let gateway = Gateway::start_with(Options {
        toml: format!(
            "[postgres]\nlisten = \"127.0.0.1:0\"\nupstream = \"postgresql://postgres@127.0.0.1:1/test\"\n{METRICS}"
        ),
        ..Default::default()
    });
    let addr = metrics_addr(&gateway);
    let (status, _, body) = get(&addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready"), "{body}");
    assert!(
        body.contains("postgres upstream 127.0.0.1:1: unreachable"),
        "{body}"
    );
    assert!(body.contains("audit log: writable"), "{body}");
    // The process itself is fine.
    let (status, _, body) = get(&addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = get(&addr, "/nothing-here");
    assert_eq!(status, 404);
}

#[test]
fn metrics_are_off_unless_configured() {
    let gateway = Gateway::start();
    assert!(!gateway.stdout.contains("metrics on"), "{}", gateway.stdout);
}

/// The session's name as the server shows it, read directly.
fn activity_name(db: &str) -> String {
    psql_direct(
        "test",
        &format!(
            "SELECT application_name FROM pg_stat_activity \
             WHERE datname = '{db}' AND application_name LIKE 'airlock:%'"
        ),
    )
}

#[tokio::test]
async fn the_database_names_the_agent_and_its_session_and_the_agent_cannot_change_that() {
    let db = TestDb::create("appname");
    let gateway = Gateway::start();
    let mut wire = Wire::connect(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &[("application_name", "nightly-report")],
    )
    .await
    .expect("login");
    let named = activity_name(&db.name);
    assert!(
        named.starts_with("airlock:agent:s-") && named.ends_with(":nightly-report"),
        "{named}"
    );
    // The session id is the one in the audit log and the gateway's log.
    let session = named
        .strip_prefix("airlock:agent:")
        .and_then(|r| r.strip_suffix(":nightly-report"))
        .expect("a session id")
        .to_string();
    let prefix = format!("airlock:agent:{session}");
    let log = std::fs::read_dir(gateway.path("var/audit"))
        .expect("audit dir")
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        log.contains(&format!("\"session\":\"{session}\"")),
        "{session} not in the audit log"
    );

    // A plain SET (what pgjdbc sends on every connection) is put behind
    // the prefix: the name changes, the prefix stays.
    for (sql, name) in [
        ("SET application_name = 'innocent'", "innocent"),
        ("SET SESSION application_name TO 'plain'", "plain"),
        ("SET \"Application_Name\" = 'quoted'", "quoted"),
    ] {
        let msgs = wire.simple_query(sql).await.unwrap();
        assert_eq!(error_code(&msgs), None, "{sql}");
        assert_eq!(
            activity_name(&db.name),
            format!("{prefix}:{name}"),
            "after {sql}"
        );
    }
    wire.simple_query(&format!("SET application_name = '{named}'"))
        .await
        .unwrap();
    assert_eq!(activity_name(&db.name), named);
    for sql in [
        "BEGIN; SET LOCAL application_name = 'innocent'; SELECT 1; COMMIT",
        "SELECT set_config('application_name', 'innocent', false)",
        "SELECT pg_catalog.set_config('application_name', 'innocent', true)",
        "DO $$ BEGIN EXECUTE 'SET application_name = ''innocent'''; END $$",
    ] {
        let msgs = wire.simple_query(sql).await.unwrap();
        assert_eq!(error_code(&msgs).as_deref(), Some("0A000"), "{sql}");
        wire.simple_query("ROLLBACK").await.unwrap();
        assert_eq!(activity_name(&db.name), named, "after {sql}");
    }
    // RESET returns to the connection's own name, which still names the
    // agent (asyncpg's pool runs RESET ALL on every release).
    for sql in ["RESET application_name", "RESET ALL", "DISCARD ALL"] {
        let msgs = wire.simple_query(sql).await.unwrap();
        assert_eq!(error_code(&msgs), None, "{sql}");
        assert_eq!(activity_name(&db.name), "airlock:agent", "after {sql}");
    }
    // The part after the prefix is the agent's to change.
    let renamed = format!("{prefix}:renamed");
    let msgs = wire
        .simple_query(&format!("SET application_name = '{renamed}'"))
        .await
        .unwrap();
    assert_eq!(error_code(&msgs), None);
    assert_eq!(activity_name(&db.name), renamed);

    // What the gate cannot read — SQL assembled at run time — the server
    // reports, and the relay ends the session.
    psql_direct(
        &db.name,
        "CREATE FUNCTION rename_me() RETURNS void LANGUAGE plpgsql AS \
         $$ BEGIN EXECUTE 'SET application_' || 'name = ''innocent'''; END $$",
    );
    wire.send(Frontend::query("SELECT rename_me()"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(msg) = wire.recv_or_eof().await.unwrap_or(None) {
        seen.push(msg);
    }
    let fatal = seen
        .iter()
        .find(|m| m.is_error())
        .and_then(BackendMsg::fields);
    let fatal = fatal.unwrap_or_else(|| panic!("no error before the close: {seen:?}"));
    assert_eq!(
        fatal.get(&b'C').map(String::as_str),
        Some("42501"),
        "{fatal:?}"
    );
    assert_eq!(
        fatal.get(&b'S').map(String::as_str),
        Some("FATAL"),
        "{fatal:?}"
    );
    assert!(
        fatal.get(&b'M').is_some_and(|m| m.contains(&prefix)),
        "{fatal:?}"
    );
    assert!(
        !seen.iter().any(|m| m.ready_status().is_some()),
        "the session went on after a rename: {seen:?}"
    );
}
