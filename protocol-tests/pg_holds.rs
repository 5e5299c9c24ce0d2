//! Holds on the wire (wait mode) and their decisions through the inbox's
//! JSON API, with psql and the real server: a held statement waits on its
//! connection with a notice naming the request, runs once approved by
//! another identity, and is refused on a deny (42501, approver and reason),
//! an expiry or a withdrawal (57014). Quorum, self-approval, auditors and
//! agents, and the audit records of holds and decisions.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway::{psql_direct, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD};
use support::inbox::{exchange, http, inbox};

const POLICY: &str = r#"
[[rule]]
name = "hold-audited-writes"
classes = ["write"]
objects = ["audited_*"]
action = "hold"
group = "dba"
quorum = 1
expiry = "60s"

[[rule]]
name = "allow-everyday"
classes = ["read", "write", "session"]
action = "allow"

[[rule]]
name = "defer-ddl-on-deferred-tables"
classes = ["ddl"]
objects = ["deferred_*"]
action = "hold"
group = "dba"
quorum = 1
expiry = "60s"
mode = "defer"

[[rule]]
name = "hold-ddl"
classes = ["ddl"]
action = "hold"
group = "dba"
quorum = 1
expiry = "60s"

[[rule]]
name = "hold-grants-for-two"
classes = ["privilege"]
action = "hold"
group = "dba"
quorum = 2
expiry = "60s"

[[rule]]
name = "hold-exports-briefly"
classes = ["export"]
action = "hold"
group = "dba"
quorum = 1
expiry = "2s"
"#;

/// Approvers and an auditor, each with an API token (the token is the
/// name with `-token`; the config keeps its BLAKE3 hash).
const PEOPLE: &[(&str, &str, &str)] = &[
    ("dba1", "approver", "[\"dba\"]"),
    ("dba2", "admin", "[\"dba\"]"),
    ("auditor1", "auditor", "[]"),
];

fn token(name: &str) -> String {
    format!("{name}-token")
}

fn gateway() -> Gateway {
    gateway_with("")
}

fn gateway_with(extra: &str) -> Gateway {
    configured(extra, false)
}

/// With `web`, each person also gets the inbox password `<name>-web-pw`.
fn configured(extra: &str, web: bool) -> Gateway {
    let mut toml = format!("[approval]\nenabled = true\n{extra}");
    for (name, role, groups) in PEOPLE {
        // dba1 also sends statements of their own through the gateway.
        toml.push_str(&format!(
            "\n[[identity]]\nname = \"{name}\"\nrole = \"{role}\"\ngroups = {groups}\npassword = \"{name}-pw\"\napi_token_hash = \"{}\"\n{}",
            airlock::hex::encode(blake3::hash(token(name).as_bytes()).as_bytes()),
            if *name == "dba1" { "database_login = true\n" } else { "" }
        ));
        if web {
            toml.push_str(&format!(
                "inbox_password_hash = \"{}\"\n",
                airlock::identity::inbox_password_hash(&format!("{name}-web-pw"))
            ));
        }
    }
    Gateway::start_with(Options {
        toml,
        policy: Some(POLICY.into()),
        ..Default::default()
    })
}

/// psql through the gateway, running in the background.
fn psql_spawn(gateway: &Gateway, user: &str, password: &str, database: &str, sql: &str) -> Child {
    let (host, port) = gateway.addr.rsplit_once(':').unwrap();
    Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
        ])
        .args([
            "-h", host, "-p", port, "-U", user, "-d", database, "-c", sql,
        ])
        .env("PGPASSWORD", password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql")
}

/// The one pending request, once it appears.
fn pending(inbox: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, list) = http(inbox, "GET", "/api/requests", Some(&token("dba1")), "");
        assert_eq!(status, 200, "{list}");
        if let Some(first) = list.as_array().and_then(|a| a.first()) {
            return first.clone();
        }
        assert!(Instant::now() < deadline, "no request appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn decide(inbox: &str, who: &str, id: &str, verdict: &str, reason: &str) -> (u16, Value) {
    http(
        inbox,
        "POST",
        &format!("/api/requests/{id}/{verdict}"),
        Some(&token(who)),
        &serde_json::json!({ "reason": reason }).to_string(),
    )
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn table_exists(database: &str, table: &str) -> bool {
    psql_direct(
        database,
        &format!("SELECT count(*) FROM pg_tables WHERE tablename = '{table}'"),
    ) == "1"
}

#[test]
fn a_held_statement_runs_once_another_identity_approves() {
    let db = TestDb::create("holds_approve");
    let gateway = gateway();
    let inbox = inbox(&gateway);
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE approved_t (x int)",
    );
    let request = pending(&inbox);
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["requester"], "agent");
    assert_eq!(request["rule"], "hold-ddl");
    assert_eq!(request["classes"], serde_json::json!(["ddl"]));
    assert_eq!(request["state"], "pending");
    assert_eq!(request["waiting"], true, "{request}");
    // Instants also in ISO 8601 UTC.
    let created = request["created_at"].as_str().unwrap_or("");
    assert!(created.len() == 27 && created.ends_with('Z'), "{request}");
    assert!(!table_exists(&db.name, "approved_t"), "nothing ran yet");

    // No token, a wrong token: nothing is shown or decided.
    assert_eq!(http(&inbox, "GET", "/api/requests", None, "").0, 401);
    assert_eq!(
        http(&inbox, "GET", "/api/requests", Some("nope"), "").0,
        401
    );
    assert_eq!(decide(&inbox, "nobody", &id, "approve", "").0, 401);

    let (status, decided) = decide(&inbox, "dba1", &id, "approve", "looks fine");
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["state"], "approved");
    let approved_at = Instant::now();
    let out = psql.wait_with_output().unwrap();
    eprintln!(
        "psql returned {:?} after the approval",
        approved_at.elapsed()
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!("statement held for approval as request {id}")),
        "{said}"
    );
    assert!(
        said.contains(&format!("http://{inbox}/requests/{id}")),
        "{said}"
    );
    assert!(table_exists(&db.name, "approved_t"));
    // What it did is on the request, for approvers and History.
    let outcome = request_with_outcome(&inbox, &id);
    assert_eq!(outcome["ok"], true, "{outcome}");
    let summary = outcome["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("CREATE TABLE in ") && summary.ends_with(" ms"),
        "{summary}"
    );

    // The audit log has the hold and the decision, before the result.
    let dir = gateway.stop();
    let mut kinds = Vec::new();
    airlock::audit::read::for_each(&dir.path().join("var/audit"), |_, r| {
        if r.get("request").and_then(Value::as_str) == Some(id.as_str()) || r["kind"] == "result" {
            kinds.push(r["kind"].as_str().unwrap_or("").to_string());
            if r["kind"] == "decision" {
                assert_eq!(r["verdict"], "approved");
                assert_eq!(r["approver"], "dba1");
                assert_eq!(r["reason"], "looks fine");
            }
        }
        true
    })
    .unwrap();
    assert_eq!(kinds, ["hold", "decision", "result"], "{kinds:?}");
}

#[test]
fn a_deny_names_the_approver_and_the_reason() {
    let db = TestDb::create("holds_deny");
    let gateway = gateway();
    let inbox = inbox(&gateway);
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE denied_t (x int)",
    );
    let id = pending(&inbox)["id"].as_str().unwrap().to_string();
    let (status, _) = decide(&inbox, "dba2", &id, "deny", "no schema changes on Fridays");
    assert_eq!(status, 200);
    let out = psql.wait_with_output().unwrap();
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("42501"), "{said}");
    assert!(said.contains("denied by dba2"), "{said}");
    assert!(said.contains("no schema changes on Fridays"), "{said}");
    assert!(!table_exists(&db.name, "denied_t"));
    // Decided is decided.
    assert_eq!(decide(&inbox, "dba1", &id, "approve", "").0, 409);
}

#[test]
fn an_expired_request_is_refused_with_57014() {
    let db = TestDb::create("holds_expire");
    psql_direct(&db.name, "CREATE TABLE src (x int)");
    let gateway = gateway();
    let inbox = inbox(&gateway);
    let out = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "COPY src TO STDOUT",
    )
    .wait_with_output()
    .unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("57014") && said.contains("expired"), "{said}");
    let (_, list) = http(
        &inbox,
        "GET",
        "/api/requests?state=expired",
        Some(&token("auditor1")),
        "",
    );
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

#[test]
fn a_cancel_or_a_disconnect_withdraws_the_request() {
    let db = TestDb::create("holds_cancel");
    let gateway = gateway();
    let inbox = inbox(&gateway);
    // psql sends a CancelRequest on SIGINT.
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE cancelled_t (x int)",
    );
    let id = pending(&inbox)["id"].as_str().unwrap().to_string();
    Command::new("kill")
        .args(["-INT", &psql.id().to_string()])
        .status()
        .unwrap();
    let out = psql.wait_with_output().unwrap();
    let said = text(&out);
    assert!(
        said.contains("57014") && said.contains("withdrawn"),
        "{said}"
    );
    let (_, request) = http(
        &inbox,
        "GET",
        &format!("/api/requests/{id}"),
        Some(&token("dba1")),
        "",
    );
    assert_eq!(request["state"], "withdrawn", "{request}");
    assert_eq!(decide(&inbox, "dba1", &id, "approve", "").0, 409);
    assert!(!table_exists(&db.name, "cancelled_t"));

    let mut psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE gone_t (x int)",
    );
    let id = pending_other_than(&inbox, &id);
    psql.kill().unwrap();
    let _ = psql.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, request) = http(
            &inbox,
            "GET",
            &format!("/api/requests/{id}"),
            Some(&token("dba1")),
            "",
        );
        if request["state"] == "withdrawn" {
            assert!(
                request["ended_because"]
                    .as_str()
                    .unwrap()
                    .contains("disconnected"),
                "{request}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not withdrawn: {request}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!table_exists(&db.name, "gone_t"));
}

/// Request `id` as the API shows it, once `ready` says so.
fn request_when(inbox: &str, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, request) = http(
            inbox,
            "GET",
            &format!("/api/requests/{id}"),
            Some(&token("dba1")),
            "",
        );
        if ready(&request) {
            return request;
        }
        assert!(Instant::now() < deadline, "not {what}: {request}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The outcome recorded on request `id`, once there is one.
fn request_with_outcome(inbox: &str, id: &str) -> Value {
    request_when(inbox, id, "run", |r| !r["outcome"].is_null())["outcome"].clone()
}

/// Request `id` once it reaches `state`.
fn request_in_state(inbox: &str, id: &str, state: &str) -> Value {
    request_when(inbox, id, state, |r| r["state"] == state)
}

/// The verdicts of the audit log's decision records for request `id`.
fn decisions_logged(dir: &std::path::Path, id: &str) -> Vec<String> {
    let mut verdicts = Vec::new();
    airlock::audit::read::for_each(&dir.join("var/audit"), |_, r| {
        if r["kind"] == "decision" && r.get("request").and_then(Value::as_str) == Some(id) {
            verdicts.push(r["verdict"].as_str().unwrap_or("").to_string());
        }
        true
    })
    .unwrap();
    verdicts
}

#[test]
fn a_request_whose_database_connection_is_lost_is_withdrawn_and_cannot_be_approved() {
    let db = TestDb::create("holds_lost");
    let gateway = gateway();
    let inbox = inbox(&gateway);
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE lost_t (x int)",
    );
    let id = pending(&inbox)["id"].as_str().unwrap().to_string();
    // The session's upstream connection (and any idle one) to the database.
    psql_direct(
        "test",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.name
        ),
    );
    let request = request_in_state(&inbox, &id, "withdrawn");
    assert!(
        request["ended_because"]
            .as_str()
            .unwrap_or("")
            .contains("database connection was lost"),
        "{request}"
    );
    let (status, refused) = decide(&inbox, "dba1", &id, "approve", "");
    assert_eq!(status, 409, "{refused}");
    assert!(refused.to_string().contains("will never run"), "{refused}");
    let out = psql.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!table_exists(&db.name, "lost_t"));
    let dir = gateway.stop();
    assert_eq!(decisions_logged(dir.path(), &id), ["withdrawn"]);
}

#[test]
fn requests_a_crashed_gateway_left_pending_are_withdrawn_when_it_restarts() {
    let db = TestDb::create("holds_crash");
    let gateway = gateway();
    let inbox_before = inbox(&gateway);
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE crashed_t (x int)",
    );
    let id = pending(&inbox_before)["id"].as_str().unwrap().to_string();
    let dir = gateway.crash();
    let _ = psql.wait_with_output();
    let config = dir.path().join("airlock.toml");
    let again = Gateway::spawn(dir, &["serve", "--config", config.to_str().unwrap()], &[]);
    let inbox = inbox(&again);
    let request = request_in_state(&inbox, &id, "withdrawn");
    assert!(
        request["ended_because"]
            .as_str()
            .unwrap_or("")
            .contains("stopped before a decision"),
        "{request}"
    );
    assert_eq!(decide(&inbox, "dba1", &id, "approve", "").0, 409);
    assert!(!table_exists(&db.name, "crashed_t"));
    let dir = again.stop();
    assert_eq!(decisions_logged(dir.path(), &id), ["withdrawn"]);
}

fn pending_other_than(inbox: &str, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, list) = http(inbox, "GET", "/api/requests", Some(&token("dba1")), "");
        if let Some(r) = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["id"] != old)
        {
            return r["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no new request");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_quorum_of_two_needs_two_distinct_approvers() {
    let db = TestDb::create("holds_quorum");
    // Roles belong to the whole server: one per test process.
    let role = format!("holds_reader_{}", std::process::id());
    psql_direct(
        &db.name,
        &format!("CREATE TABLE t (x int); DROP ROLE IF EXISTS {role}; CREATE ROLE {role}"),
    );
    let gateway = gateway();
    let inbox = inbox(&gateway);
    let mut psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &format!("GRANT SELECT ON t TO {role}"),
    );
    let id = pending(&inbox)["id"].as_str().unwrap().to_string();
    let (status, after_one) = decide(&inbox, "dba1", &id, "approve", "");
    assert_eq!(status, 200);
    assert_eq!(after_one["state"], "pending", "{after_one}");
    assert_eq!(
        decide(&inbox, "dba1", &id, "approve", "again").0,
        409,
        "one decision each"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        psql.try_wait().unwrap().is_none(),
        "still waiting for the second approver"
    );
    let (_, after_two) = decide(&inbox, "dba2", &id, "approve", "");
    assert_eq!(after_two["state"], "approved");
    let out = psql.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let grants = psql_direct(
        &db.name,
        &format!(
            "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = '{role}'"
        ),
    );
    psql_direct(&db.name, &format!("DROP OWNED BY {role}; DROP ROLE {role}"));
    assert_eq!(grants, "1");
}

#[test]
fn nobody_approves_their_own_request_and_auditors_and_agents_decide_nothing() {
    let db = TestDb::create("holds_self");
    let gateway = gateway();
    let inbox = inbox(&gateway);
    // An approver sends DDL through the gateway: the hold is theirs.
    let psql = psql_spawn(
        &gateway,
        "dba1",
        "dba1-pw",
        &db.name,
        "CREATE TABLE own_t (x int)",
    );
    let request = pending(&inbox);
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["requester"], "dba1");
    let (status, body) = decide(&inbox, "dba1", &id, "approve", "trust me");
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("own request"),
        "{body}"
    );
    let (status, body) = decide(&inbox, "auditor1", &id, "approve", "");
    assert_eq!(status, 403, "{body}");
    let (_, still) = http(
        &inbox,
        "GET",
        &format!("/api/requests/{id}"),
        Some(&token("auditor1")),
        "",
    );
    assert_eq!(still["state"], "pending");
    assert!(still["votes"].as_array().unwrap().is_empty());
    let (status, _) = decide(&inbox, "dba2", &id, "approve", "");
    assert_eq!(status, 200);
    let out = psql.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // An agent cannot be given an API token at all.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "[[identity]]\nname = \"bot\"\nrole = \"agent\"\npassword = \"x\"\napi_token_hash = \"{}\"\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let out = Command::new(support::gateway::binary())
        .args(["config", "check"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = text(&out);
    assert!(
        said.contains("identity[0].api_token_hash") && said.contains("agents do not use the inbox"),
        "{said}"
    );
}

/// The extended protocol holds at Execute: Parse and Bind are answered,
/// the notice comes, the pipeline waits its turn, and one approval runs
/// one Execute — the same prepared statement bound again waits again.
#[tokio::test(flavor = "multi_thread")]
async fn extended_protocol_holds_at_execute_and_keeps_the_pipeline_in_order() {
    use support::wire::{Frontend, Wire};
    let db = TestDb::create("holds_ext");
    let gateway = gateway();
    let inbox = inbox(&gateway);
    let mut wire = Wire::connect(&gateway.addr, AGENT, AGENT_PASSWORD, &db.name, &[])
        .await
        .unwrap();
    wire.send_all(&[
        Frontend::parse("mk", "CREATE TABLE IF NOT EXISTS ext_t (x int)", &[]),
        Frontend::bind("", "mk", &[], vec![], &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
        // Pipelined after the held Execute: must wait, then run after it.
        Frontend::query("SELECT count(*) FROM ext_t"),
    ])
    .await
    .unwrap();
    let request = {
        let inbox = inbox.clone();
        tokio::task::spawn_blocking(move || pending(&inbox))
            .await
            .unwrap()
    };
    let id = request["id"].as_str().unwrap().to_string();
    assert!(
        !table_exists(&db.name, "ext_t"),
        "nothing ran at Parse or Bind"
    );
    let (status, _) = decide(&inbox, "dba1", &id, "approve", "");
    assert_eq!(status, 200);
    let first = wire.recv_until_ready().await.unwrap();
    let kinds: Vec<char> = first.iter().map(|m| m.tag_char()).collect();
    // ParseComplete, BindComplete, the notice, CommandComplete, ReadyForQuery.
    assert_eq!(kinds, ['1', '2', 'N', 'C', 'Z'], "{first:?}");
    let second = wire.recv_until_ready().await.unwrap();
    assert!(
        second.iter().any(|m| m
            .data_row()
            .is_some_and(|r| r[0].as_deref() == Some(&b"0"[..]))),
        "the pipelined query ran after the held one: {second:?}"
    );
    let outcome = {
        let (inbox, id) = (inbox.clone(), id.clone());
        tokio::task::spawn_blocking(move || request_with_outcome(&inbox, &id))
            .await
            .unwrap()
    };
    assert!(
        outcome["summary"]
            .as_str()
            .unwrap()
            .starts_with("CREATE TABLE in "),
        "{outcome}"
    );

    // Bound again: a new Execute, a new request; denied this time.
    wire.send_all(&[
        Frontend::bind("", "mk", &[], vec![], &[]),
        Frontend::execute("", 0),
        Frontend::Sync,
    ])
    .await
    .unwrap();
    let again = {
        let (inbox, old) = (inbox.clone(), id.clone());
        tokio::task::spawn_blocking(move || pending_other_than(&inbox, &old))
            .await
            .unwrap()
    };
    let (status, _) = decide(&inbox, "dba2", &again, "deny", "once is enough");
    assert_eq!(status, 200);
    let replies = wire.recv_until_ready().await.unwrap();
    let error = replies.iter().find(|m| m.is_error()).expect("an error");
    assert_eq!(error.sqlstate().as_deref(), Some("42501"), "{replies:?}");
    assert_eq!(replies.last().and_then(|m| m.ready_status()), Some(b'I'));
}

/// Defer mode: refused at once with the request id; once approved, the
/// identical statement from the same identity runs exactly once.
#[test]
fn defer_mode_refuses_at_once_and_runs_the_approved_statement_once() {
    let db = TestDb::create("holds_defer");
    let gateway = gateway();
    let inbox = inbox(&gateway);
    let sql = "CREATE TABLE deferred_t (x int)";
    let run = |sql: &str| {
        psql_spawn(&gateway, AGENT, AGENT_PASSWORD, &db.name, sql)
            .wait_with_output()
            .unwrap()
    };
    let first = run(sql);
    let said = text(&first);
    assert!(!first.status.success());
    assert!(
        said.contains("42501") && said.contains("send the identical"),
        "{said}"
    );
    let request = pending(&inbox);
    let id = request["id"].as_str().unwrap().to_string();
    assert!(said.contains(&id), "{said}");
    assert_eq!(request["rule"], "defer-ddl-on-deferred-tables");

    // Re-sent before approval: the same request, not a second one.
    let early = text(&run(sql));
    assert!(early.contains(&id), "{early}");
    let (_, list) = http(
        &inbox,
        "GET",
        "/api/requests?state=all",
        Some(&token("dba1")),
        "",
    );
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    assert_eq!(decide(&inbox, "dba1", &id, "approve", "").0, 200);
    // A different statement is not covered by the approval.
    let other = text(&run("CREATE TABLE deferred_other (x int)"));
    assert!(other.contains("42501"), "{other}");
    // The identical statement runs, once.
    let ran = run(sql);
    assert!(ran.status.success(), "{}", text(&ran));
    assert!(table_exists(&db.name, "deferred_t"));
    psql_direct(&db.name, "DROP TABLE deferred_t");
    let again = run(sql);
    assert!(
        !again.status.success(),
        "an approval runs the statement once"
    );
    assert!(!table_exists(&db.name, "deferred_t"));
    let (_, used) = http(
        &inbox,
        "GET",
        &format!("/api/requests/{id}"),
        Some(&token("dba1")),
        "",
    );
    assert!(used["consumed_ms"].as_u64().is_some(), "{used}");
}

/// One HTTP request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
    raw: Vec<u8>,
}

/// A local HTTP receiver: answers 500 to the first request on `/flaky`
/// and every request on `/broken`, 200 otherwise, and keeps what it got.
fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Received>::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        let mut flaky_seen = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let head = text[..end].to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if data.len() >= end + 4 + length {
                        break (head, data[end + 4..end + 4 + length].to_vec());
                    }
                }
            };
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(": "))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect();
            let fail = path == "/broken"
                || (path == "/flaky" && !std::mem::replace(&mut flaky_seen, true));
            keep.lock().unwrap().push(Received {
                path,
                headers,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                raw: body,
            });
            let status = if fail {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (addr, got)
}

#[test]
fn approvers_are_notified_and_a_failing_notifier_blocks_nothing() {
    let db = TestDb::create("holds_notify");
    let (addr, got) = receiver();
    let notify = format!(
        "[[notify]]\ngroup = \"dba\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\nsecret = \"hook-secret\"\n\
         [[notify]]\ngroup = \"dba\"\nkind = \"slack\"\nurl = \"http://{addr}/slack\"\n\
         [[notify]]\ngroup = \"dba\"\nkind = \"teams\"\nurl = \"http://{addr}/flaky\"\n\
         [[notify]]\ngroup = \"dba\"\nkind = \"webhook\"\nurl = \"http://{addr}/broken\"\n\
         [[notify]]\ngroup = \"dba\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/refused\"\n\
         [[notify]]\ngroup = \"finance\"\nkind = \"slack\"\nurl = \"http://{addr}/other-group\"\n"
    );
    let gateway = gateway_with(&notify);
    let inbox = inbox(&gateway);
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE notified_t (email text)",
    );
    let id = pending(&inbox)["id"].as_str().unwrap().to_string();
    let link = format!("http://{inbox}/requests/{id}");

    // Deciding does not wait for the notifiers, failing ones included.
    assert_eq!(decide(&inbox, "dba1", &id, "approve", "").0, 200);
    let out = psql.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let deadline = Instant::now() + Duration::from_secs(20);
    let received = loop {
        let received = got.lock().unwrap().clone();
        let broken = received.iter().filter(|r| r.path == "/broken").count();
        if broken >= 4 && received.iter().filter(|r| r.path == "/flaky").count() >= 2 {
            break received;
        }
        assert!(Instant::now() < deadline, "notifications: {received:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The webhook: our JSON, signed over the timestamp and the body.
    let hook = received
        .iter()
        .find(|r| r.path == "/hook")
        .expect("the webhook");
    assert_eq!(hook.body["event"], "request.created");
    assert_eq!(hook.body["request"]["id"], id.as_str());
    assert_eq!(hook.body["url"], link.as_str());
    let header = |r: &Received, name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let timestamp: u64 = header(hook, "x-airlock-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    let body = &hook.raw;
    assert_eq!(
        header(hook, "x-airlock-signature").unwrap(),
        format!(
            "sha256={}",
            airlock::inbox::notify::signature("hook-secret", timestamp, body)
        )
    );
    // Slack: the context and a button to the request.
    let slack = received.iter().find(|r| r.path == "/slack").expect("slack");
    let slack_text = slack.body.to_string();
    assert!(
        slack_text.contains(&link)
            && slack_text.contains("hold-ddl")
            && slack_text.contains("CREATE TABLE notified_t"),
        "{slack_text}"
    );
    // Teams: an Adaptive Card, delivered on the second attempt.
    let teams: Vec<&Received> = received.iter().filter(|r| r.path == "/flaky").collect();
    assert_eq!(teams.len(), 2, "retried after a 500");
    assert_eq!(
        teams[1].body["attachments"][0]["content"]["type"],
        "AdaptiveCard"
    );
    assert_eq!(
        teams[1].body["attachments"][0]["content"]["actions"][0]["url"],
        link.as_str()
    );
    // Another group's channel hears nothing.
    assert!(!received.iter().any(|r| r.path == "/other-group"));
    // Failures are logged, without the URL's path.
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway
        .stderr()
        .matches("approvers could not be notified")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "{}", gateway.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!gateway.stderr().contains("/broken"));
}

/// One request to the inbox's pages: status, the raw head, the body.
fn web(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: &str,
) -> (u16, String, String) {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let form_type = "application/x-www-form-urlencoded";
    exchange(addr, method, path, &cookie, form_type, form)
}

/// Logs in; the session cookie (`name=value`).
fn web_login(addr: &str, user: &str, password: &str) -> Result<String, (u16, String)> {
    let (status, head, body) = web(
        addr,
        "POST",
        "/login",
        None,
        &format!("username={user}&password={password}"),
    );
    if status != 303 {
        return Err((status, body));
    }
    let set = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("a session cookie")
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    Ok(set.split(';').next().unwrap().to_string())
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the page")
        .to_string()
}

#[test]
fn the_web_inbox_logs_in_shows_requests_escaped_and_decides_with_csrf() {
    let db = TestDb::create("holds_web");
    let gateway = configured("", true);
    let inbox = inbox(&gateway);

    // Logins: wrong password, an agent (no inbox password), then right.
    assert_eq!(web_login(&inbox, "dba1", "wrong").unwrap_err().0, 401);
    let (status, body) = web_login(&inbox, AGENT, AGENT_PASSWORD).unwrap_err();
    assert_eq!(status, 401);
    assert!(body.contains("Wrong name or password"), "{body}");
    let (status, head, _) = web(&inbox, "GET", "/", None, "");
    assert_eq!(status, 303, "pages need a login: {head}");
    let dba1 = web_login(&inbox, "dba1", "dba1-web-pw").unwrap();

    // Live updates: an open event stream hears of the new request.
    let mut events = TcpStream::connect(&inbox).unwrap();
    write!(
        events,
        "GET /events HTTP/1.1\r\nHost: {inbox}\r\nCookie: {dba1}\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let hostile = r#"CREATE TABLE "<script>alert(1)</script>" (x int)"#;
    let psql = psql_spawn(&gateway, AGENT, AGENT_PASSWORD, &db.name, hostile);
    let id = pending(&inbox)["id"].as_str().unwrap().to_string();
    events
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("event: changed") {
        let n = events.read(&mut buf).expect("an event within 10 s");
        assert!(n > 0, "the event stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains(&id), "{seen}");

    // The pending list and the request page show the statement as text.
    let (status, _, list) = web(&inbox, "GET", "/", Some(&dba1), "");
    assert_eq!(status, 200);
    assert!(list.contains(&format!("data-id=\"{id}\"")), "{list}");
    let (_, _, rows) = web(&inbox, "GET", "/pending-rows", Some(&dba1), "");
    assert!(rows.contains(&id), "{rows}");
    let (status, _, request) = web(&inbox, "GET", &format!("/requests/{id}"), Some(&dba1), "");
    assert_eq!(status, 200);
    assert!(
        !request.contains("<script>alert"),
        "statement not escaped: {request}"
    );
    assert!(
        request.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{request}"
    );
    assert!(
        request.contains("hold-ddl") && request.contains("agent (agent)"),
        "{request}"
    );
    assert!(
        request.contains("No estimate: Airlock asks PostgreSQL"),
        "{request}"
    );
    // Absolute times with their zone, and how long ago.
    assert!(
        request.contains(" UTC</time> (") && request.contains("<th>Expires</th>"),
        "{request}"
    );

    // Without the CSRF token nothing is decided; with it the statement runs.
    let (status, _, _) = web(
        &inbox,
        "POST",
        &format!("/requests/{id}/decide"),
        Some(&dba1),
        "csrf=forged&verdict=approve&reason=x",
    );
    assert_eq!(status, 403);
    let csrf = csrf_of(&request);
    // Enter in a field submits through the first submit button, which is
    // disabled; Approve and Deny are apart and look different.
    let form = request
        .split("id=\"decide\"")
        .nth(1)
        .expect("the decision form");
    let first_button = form.split("<button").nth(1).expect("a button");
    assert!(
        first_button.contains("disabled") && !first_button.contains("value=\"approve\""),
        "{form}"
    );
    assert!(form.contains("class=\"approve\"") && form.contains("class=\"deny\""));
    // A denial needs a reason.
    let (status, _, refused) = web(
        &inbox,
        "POST",
        &format!("/requests/{id}/decide"),
        Some(&dba1),
        &format!("csrf={csrf}&verdict=deny&reason=+"),
    );
    assert_eq!(status, 200);
    assert!(refused.contains("A denial needs a reason"), "{refused}");
    let (status, head, _) = web(
        &inbox,
        "POST",
        &format!("/requests/{id}/decide"),
        Some(&dba1),
        &format!("csrf={csrf}&verdict=approve&reason=checked+the+plan"),
    );
    // Post, redirect, get.
    assert_eq!(status, 303, "{head}");
    assert!(
        head.contains(&format!("location: /requests/{id}?decided=1"))
            || head.contains(&format!("Location: /requests/{id}?decided=1")),
        "{head}"
    );
    let (_, _, decided) = web(
        &inbox,
        "GET",
        &format!("/requests/{id}?decided=1"),
        Some(&dba1),
        "",
    );
    assert!(decided.contains("Your decision on"), "{decided}");
    assert!(
        decided.contains("nothing left to decide") && !decided.contains("id=\"approve\""),
        "{decided}"
    );
    let out = psql.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (_, _, history) = web(&inbox, "GET", "/history", Some(&dba1), "");
    assert!(
        history.contains(&id) && history.contains("dba1 approved"),
        "{history}"
    );

    // Batch: two held statements denied at once.
    let one = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE batch_a (x int)",
    );
    let two = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE batch_b (x int)",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let ids: Vec<String> = loop {
        let (_, list) = http(&inbox, "GET", "/api/requests", Some(&token("dba1")), "");
        let ids: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        if ids.len() == 2 {
            break ids;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    };
    let (_, _, page) = web(&inbox, "GET", "/", Some(&dba1), "");
    let form = format!(
        "csrf={}&verdict=deny&reason=not+now&ids={}&ids={}",
        csrf_of(&page),
        ids[0],
        ids[1]
    );
    // First the list of what would be decided; nothing is decided yet.
    let (status, _, confirm) = web(&inbox, "POST", "/batch", Some(&dba1), &form);
    assert_eq!(status, 200);
    assert!(
        confirm.contains("CREATE TABLE batch_a") && confirm.contains("CREATE TABLE batch_b"),
        "{confirm}"
    );
    assert!(confirm.contains("Deny: 2 requests"), "{confirm}");
    for id in &ids {
        let (_, r) = http(
            &inbox,
            "GET",
            &format!("/api/requests/{id}"),
            Some(&token("dba1")),
            "",
        );
        assert_eq!(r["state"], "pending", "{r}");
    }
    let (status, _, results) = web(
        &inbox,
        "POST",
        "/batch",
        Some(&dba1),
        &format!("{form}&confirm=yes"),
    );
    assert_eq!(status, 200);
    assert_eq!(results.matches(": recorded").count(), 2, "{results}");
    for child in [one, two] {
        let out = child.wait_with_output().unwrap();
        assert!(text(&out).contains("not now"), "{}", text(&out));
    }

    // Auditors: the session list and a replay with the chain's status.
    let auditor = web_login(&inbox, "auditor1", "auditor1-web-pw").unwrap();
    // No decision controls for auditors, and a sentence that says why.
    let (_, _, pending_page) = web(&inbox, "GET", "/", Some(&auditor), "");
    assert!(
        pending_page.contains("You are an auditor") && !pending_page.contains("id=\"batch\""),
        "{pending_page}"
    );
    let (status, _, sessions) = web(&inbox, "GET", "/sessions", Some(&auditor), "");
    assert_eq!(status, 200);
    let session = request_session(&gateway, &id);
    assert!(sessions.contains(&session), "{sessions}");
    let (status, _, replay) = web(
        &inbox,
        "GET",
        &format!("/sessions/{session}"),
        Some(&auditor),
        "",
    );
    assert_eq!(status, 200);
    assert!(replay.contains("Chain verified"), "{replay}");
    // Paged, and no server file path reaches the browser.
    assert!(replay.contains("Records 1–"), "{replay}");
    assert!(
        !replay.contains("var/audit") && !replay.contains("/tmp/"),
        "{replay}"
    );
    // Verification goes on from where the last view left it, and agrees.
    let (status, _, again) = web(
        &inbox,
        "GET",
        &format!("/sessions/{session}?page=1"),
        Some(&auditor),
        "",
    );
    assert_eq!(status, 200);
    assert!(again.contains("Chain verified"), "{again}");
    assert!(
        replay.contains("held as request") && !replay.contains("<script>alert"),
        "{replay}"
    );
    let (status, _, _) = web(&inbox, "GET", "/sessions", Some(&dba1), "");
    assert_eq!(status, 403, "approvers do not browse sessions");
}

fn request_session(gateway: &Gateway, id: &str) -> String {
    let inbox = inbox(gateway);
    let (_, r) = http(
        &inbox,
        "GET",
        &format!("/api/requests/{id}"),
        Some(&token("dba1")),
        "",
    );
    r["session"].as_str().unwrap().to_string()
}

/// Approvers see PostgreSQL's plan for a held write (EXPLAIN, which runs
/// nothing), with the values in it masked; statements EXPLAIN cannot take
/// safely (DDL) get none.
#[test]
fn a_held_write_comes_with_its_plan_as_impact_estimate() {
    let db = TestDb::create("holds_impact");
    psql_direct(
        &db.name,
        "CREATE TABLE audited_accounts (email text, note text); \
         INSERT INTO audited_accounts SELECT 'user' || g || '@example.com', '' FROM generate_series(1, 500) g",
    );
    let gateway = gateway();
    let inbox = inbox(&gateway);
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "UPDATE audited_accounts SET note = 'checked' WHERE email = 'ana.lima@example.com'",
    );
    let request = pending(&inbox);
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["rule"], "hold-audited-writes");
    let impact = request["impact"].as_str().expect("a plan").to_string();
    assert!(impact.contains("Update on audited_accounts"), "{impact}");
    assert!(impact.contains("Seq Scan on audited_accounts"), "{impact}");
    assert!(
        impact.contains("<EMAIL>") && !impact.contains("ana.lima"),
        "{impact}"
    );
    // The estimate says how old its statistics are (none gathered yet).
    assert!(
        impact.contains("Statistics behind the estimate:")
            && impact.contains("public.audited_accounts:")
            && impact.contains("never gathered"),
        "{impact}"
    );
    psql_direct(&db.name, "ANALYZE audited_accounts");
    assert_eq!(decide(&inbox, "dba1", &id, "approve", "").0, 200);
    let out = psql.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("UPDATE 0"), "{}", text(&out));

    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE no_plan_t (x int)",
    );
    let ddl = pending_other_than(&inbox, &id);
    let (_, request) = http(
        &inbox,
        "GET",
        &format!("/api/requests/{ddl}"),
        Some(&token("dba1")),
        "",
    );
    assert!(request["impact"].is_null(), "{request}");
    // A denial without a reason is refused: the agent is shown the reason.
    let (status, refused) = decide(&inbox, "dba1", &ddl, "deny", " ");
    assert_eq!(status, 400, "{refused}");
    assert_eq!(decide(&inbox, "dba1", &ddl, "deny", "no DDL today").0, 200);
    let _ = psql.wait_with_output();

    // A schema change of an existing table comes with facts, not a plan:
    // the lock it takes, the table's size and rows, what depends on it.
    psql_direct(
        &db.name,
        "CREATE VIEW accounts_view AS SELECT email FROM audited_accounts",
    );
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "DROP TABLE audited_accounts CASCADE",
    );
    let drop = pending_other_than(&inbox, &ddl);
    let (_, request) = http(
        &inbox,
        "GET",
        &format!("/api/requests/{drop}"),
        Some(&token("dba1")),
        "",
    );
    let facts = request["impact"].as_str().expect("facts").to_string();
    assert!(facts.contains("Lock: ACCESS EXCLUSIVE"), "{facts}");
    assert!(
        facts.contains("public.audited_accounts:")
            && facts.contains("about 500 rows")
            && facts.contains("accounts_view"),
        "{facts}"
    );
    assert_eq!(decide(&inbox, "dba1", &drop, "deny", "keep it").0, 200);
    let _ = psql.wait_with_output();
}

/// A real browser (Debian's Chromium through playwright-core): log in,
/// watch the held statement arrive without reloading, open it, approve it;
/// the waiting psql session gets its result. Screenshots of the pending
/// list and the request page go to `target/tmp/inbox-browser/`.
#[test]
fn a_browser_watches_the_hold_arrive_opens_it_and_approves_it() {
    let db = TestDb::create("holds_browser");
    let gateway = configured("", true);
    let inbox = inbox(&gateway);
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inbox-browser");
    std::fs::create_dir_all(&shots).unwrap();
    for name in ["pending-list.png", "request-page.png"] {
        let _ = std::fs::remove_file(shots.join(name));
    }
    // The page is open and logged in before the statement is held.
    let (browser, rx) = spawn_browser(&inbox, "dba1", "dba1-web-pw", &shots, "approve");
    browser_says(&rx, "ready");
    let hostile = r#"CREATE TABLE "<script>document.title='pwned'</script>" (x int)"#;
    let psql = psql_spawn(&gateway, AGENT, AGENT_PASSWORD, &db.name, hostile);
    let out = browser.wait_with_output().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(out.status.success(), "browser: {}", rest.join("\n"));
    let report: Value = serde_json::from_slice(&out.stdout).expect("the browser's report");
    // The statement is shown as text, script tags and all.
    assert!(
        report["statement"]
            .as_str()
            .unwrap()
            .contains("<script>document.title='pwned'</script>"),
        "{report}"
    );
    let done = psql.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", text(&done));
    let (_, request) = http(
        &inbox,
        "GET",
        &format!("/api/requests/{}", report["request"].as_str().unwrap()),
        Some(&token("dba1")),
        "",
    );
    assert_eq!(request["state"], "approved");
    assert_eq!(
        request["votes"][0]["reason"],
        "approved in the browser test"
    );
    for name in ["pending-list.png", "request-page.png"] {
        let size = std::fs::metadata(shots.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 1000, "{name} was not saved");
    }
}

// ---- the shared store: several gateways, one inbox ----------------------

/// A PostgreSQL database for a shared approval store, and its URL.
fn shared_store(label: &str) -> (TestDb, String) {
    let db = TestDb::create(label);
    let url = format!("postgresql://postgres@127.0.0.1:5432/{}", db.name);
    (db, url)
}

/// `[approval]` lines for a shared store at `url`, with the seal key every
/// gateway sharing it must hold.
fn store_section(url: &str) -> String {
    format!("store = \"{url}\"\nstore_key = \"{}\"\n", "5a".repeat(32))
}

fn pending_request(id: &str, group: &str, quorum: u32) -> airlock::approval::HoldRequest {
    let now = airlock::approval::now_ms();
    serde_json::from_value(serde_json::json!({
        "id": id, "requester": "agent", "requester_role": "agent", "session": "s-1",
        "application": null, "client": "127.0.0.1:1", "database": "db", "protocol": "postgres",
        "sql": "DROP TABLE t", "sql_hash": format!("hash-{id}"), "classes": ["ddl"],
        "objects": ["t"], "rule": "hold-ddl", "group": group, "quorum": quorum,
        "created_ms": now, "expires_ms": now + 60_000, "state": "pending", "votes": [],
        "ended_because": null
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_store_applies_decisions_from_every_gateway_once() {
    use airlock::approval::{
        store::{Approvals, StoreKey},
        State,
    };
    use airlock::config::StoreLocation;
    use airlock::identity::Role;
    let (_db, url) = shared_store("approvals_lib");
    let location = StoreLocation::Shared(url);
    let (a, b) = (
        Approvals::open(&location, StoreKey::new([5; 32]))
            .await
            .unwrap(),
        Approvals::open(&location, StoreKey::new([5; 32]))
            .await
            .unwrap(),
    );
    let dba = vec!["dba".to_string()];

    // A waits on its request; a decision taken through B wakes it.
    a.create(&pending_request("r-wake", "dba", 1))
        .await
        .unwrap();
    let waiting = {
        let a = a.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            let got = a.wait("r-wake", deadline).await.unwrap();
            (got, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let decided_at = Instant::now();
    b.vote("r-wake", "dba1", Role::Approver, &dba, true, "fine")
        .await
        .unwrap();
    let (seen, woke_at) = waiting.await.unwrap();
    assert_eq!(seen.state, State::Approved);
    let lag = woke_at.duration_since(decided_at);
    eprintln!("a decision on B woke the statement waiting on A after {lag:?}");
    assert!(
        lag < Duration::from_millis(500),
        "woken by the notification, not the once-a-second look: {lag:?}"
    );

    // Two approvers deciding at the same moment on two gateways: both
    // votes count (no lost update), and the quorum of two is met once.
    a.create(&pending_request("r-two", "dba", 2)).await.unwrap();
    let (one, two) = tokio::join!(
        a.vote("r-two", "dba1", Role::Approver, &dba, true, "one"),
        b.vote("r-two", "dba2", Role::Admin, &dba, true, "two"),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    let last = if one.votes.len() == 2 { one } else { two };
    assert_eq!(last.state, State::Approved);
    assert_eq!(last.votes.len(), 2);

    // Defer mode: the approved statement re-sent to both gateways at once
    // runs on exactly one of them.
    let (claim_a, claim_b) = tokio::join!(
        a.claim_approved("agent", "db", "hash-r-two"),
        b.claim_approved("agent", "db", "hash-r-two"),
    );
    let claims = [claim_a.unwrap(), claim_b.unwrap()];
    assert_eq!(
        claims.iter().filter(|c| c.is_some()).count(),
        1,
        "{claims:?}"
    );

    // The rules hold whatever the store: nobody decides their own request.
    a.create(&pending_request("r-own", "dba", 1)).await.unwrap();
    let refused = b
        .vote("r-own", "agent", Role::Admin, &dba, true, "")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("own request"), "{refused}");
    // Withdrawn on A, it cannot be approved on B.
    a.end("r-own", State::Withdrawn, "the client cancelled")
        .await
        .unwrap();
    let refused = b
        .vote("r-own", "dba1", Role::Approver, &dba, true, "")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("withdrawn"), "{refused}");
    let listed = b.list(None, 10).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

#[test]
fn a_statement_held_on_one_gateway_is_decided_through_another_gateways_inbox() {
    let db = TestDb::create("holds_shared");
    let (_store, url) = shared_store("approvals_shared");
    let store = store_section(&url);
    let a = configured(&store, true);
    let b = configured(&store, true);
    let (inbox_a, inbox_b) = (inbox(&a), inbox(&b));

    // Held on A after a read in the same session; B's web inbox lists it,
    // shows it with that context, and approves it.
    let (host, port) = a.addr.rsplit_once(':').unwrap();
    let psql = Command::new("psql")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", host, "-p", port, "-U", AGENT, "-d", &db.name])
        .args(["-c", "SELECT 'ana.lima@example.com' AS contact"])
        .args(["-c", "CREATE TABLE shared_approved (x int)"])
        .env("PGPASSWORD", AGENT_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = pending(&inbox_a)["id"].as_str().unwrap().to_string();
    let dba1 = web_login(&inbox_b, "dba1", "dba1-web-pw").unwrap();
    let (status, _, list) = web(&inbox_b, "GET", "/", Some(&dba1), "");
    assert_eq!(status, 200);
    assert!(
        list.contains(&id),
        "B's pending list shows A's hold: {list}"
    );
    let (status, _, page) = web(&inbox_b, "GET", &format!("/requests/{id}"), Some(&dba1), "");
    assert_eq!(status, 200);
    assert!(page.contains("CREATE TABLE shared_approved"), "{page}");
    let recent = page
        .split("id=\"recent\"")
        .nth(1)
        .expect("recent statements");
    assert!(recent.contains("AS contact</code> — allow"), "{recent}");
    assert!(!page.contains("ana.lima@example.com"), "masked: {recent}");
    let form = format!(
        "csrf={}&verdict=approve&reason=from+gateway+B",
        csrf_of(&page)
    );
    let (status, _, body) = web(
        &inbox_b,
        "POST",
        &format!("/requests/{id}/decide"),
        Some(&dba1),
        &form,
    );
    assert!(status == 303 || status == 200, "{status} {body}");
    let approved_at = Instant::now();
    let out = psql.wait_with_output().unwrap();
    eprintln!(
        "psql on gateway A returned {:?} after the approval on gateway B",
        approved_at.elapsed()
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(table_exists(&db.name, "shared_approved"));

    // The other way round: held on B, denied through A's API.
    let psql = psql_spawn(
        &b,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE shared_denied (x int)",
    );
    let id_b = pending_other_than(&inbox_b, &id);
    let (status, decided) = decide(&inbox_a, "dba2", &id_b, "deny", "not on B either");
    assert_eq!(status, 200, "{decided}");
    let out = psql.wait_with_output().unwrap();
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("42501") && said.contains("not on B either"),
        "{said}"
    );
    assert!(!table_exists(&db.name, "shared_denied"));

    // Each gateway's audit log has its own statement's hold and decision,
    // with the approver who decided elsewhere.
    for (gateway, request, verdict, approver) in
        [(a, &id, "approved", "dba1"), (b, &id_b, "denied", "dba2")]
    {
        let dir = gateway.stop();
        let mut decisions = Vec::new();
        airlock::audit::read::for_each(&dir.path().join("var/audit"), |_, r| {
            if r["kind"] == "decision" {
                decisions.push((
                    r["request"].as_str().unwrap_or("").to_string(),
                    r["verdict"].as_str().unwrap_or("").to_string(),
                    r["approver"].as_str().unwrap_or("").to_string(),
                ));
            }
            true
        })
        .unwrap();
        assert_eq!(
            decisions,
            [(request.clone(), verdict.to_string(), approver.to_string())]
        );
    }
}

#[test]
fn a_gateway_whose_shared_store_is_unreachable_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[postgres]\nlisten = \"127.0.0.1:0\"\n[inbox]\nlisten = \"127.0.0.1:0\"\n[approval]\nstore = \"postgresql://postgres:s3cret@127.0.0.1:1/airlock\"\n",
            dir.path().join("var").display()
        ),
    )
    .unwrap();
    let out = Command::new(support::gateway::binary())
        .args(["serve", "--config", config.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("approval store: cannot reach the shared store"),
        "{said}"
    );
    assert!(!said.contains("s3cret"), "{said}");
}

#[test]
fn losing_the_shared_store_refuses_what_needs_approval_and_nothing_else() {
    let db = TestDb::create("holds_store_lost");
    let (store, url) = shared_store("approvals_lost");
    let gateway = configured(&store_section(&url), false);
    psql_direct(
        "test",
        &format!("DROP DATABASE {} WITH (FORCE)", store.name),
    );
    let held = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE never_held (x int)",
    )
    .wait_with_output()
    .unwrap();
    assert!(!held.status.success());
    let said = text(&held);
    assert!(
        said.contains("58000") && said.contains("approval store is unavailable"),
        "{said}"
    );
    assert!(!table_exists(&db.name, "never_held"));
    let read = psql_spawn(&gateway, AGENT, AGENT_PASSWORD, &db.name, "SELECT 40 + 2")
        .wait_with_output()
        .unwrap();
    assert!(read.status.success(), "{}", text(&read));
    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), "42");
}

// ---- the shared store cannot be written by an agent ----------------------

/// An agent that reaches the store's table approves its own statement by
/// writing the row; the gateway must not believe the row, must say so in
/// its log, and the statement must never reach the server.
#[test]
fn a_forged_approval_in_the_shared_store_releases_nothing() {
    let db = TestDb::create("holds_forged");
    let (store, url) = shared_store("approvals_forged");
    let gateway = configured(&store_section(&url), false);
    let inbox = inbox(&gateway);
    let forgeries = [
        // The state column only.
        "UPDATE airlock_hold_requests SET state = 'approved' WHERE id = '{id}'",
        // The column and the request body alike, votes and all.
        "UPDATE airlock_hold_requests SET state = 'approved', body = replace(replace(body, '\"state\":\"pending\"', '\"state\":\"approved\"'), '\"votes\":[]', '\"votes\":[{\"approver\":\"dba1\",\"approve\":true,\"reason\":\"ok\",\"at_ms\":1}]') WHERE id = '{id}'",
        // The seal dropped as well.
        "UPDATE airlock_hold_requests SET state = 'approved', mac = NULL, body = replace(body, '\"state\":\"pending\"', '\"state\":\"approved\"') WHERE id = '{id}'",
    ];
    for (i, forgery) in forgeries.iter().enumerate() {
        let table = format!("forged_{i}");
        let held = psql_spawn(
            &gateway,
            AGENT,
            AGENT_PASSWORD,
            &db.name,
            &format!("CREATE TABLE {table} (x int)"),
        );
        let id = pending(&inbox)["id"].as_str().unwrap().to_string();
        psql_direct(&store.name, &forgery.replace("{id}", &id));
        let out = held.wait_with_output().unwrap();
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            !table_exists(&db.name, &table),
            "forgery {i} released the statement"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gateway.stderr().contains(&id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = gateway.stderr();
        assert!(
            log.lines()
                .any(|l| l.contains(&id) && l.contains("stored hold request is ignored")),
            "forgery {i} not logged: {log}"
        );
    }
    // A forged row of its own, approved, for a statement in defer mode is
    // not believed either: nothing lists it.
    let (status, list) = http(
        &inbox,
        "GET",
        "/api/requests?state=approved",
        Some(&token("dba1")),
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");
}

/// Whatever an identity's `databases`, the store's database cannot be
/// opened through the gateway.
#[test]
fn no_identity_logs_in_to_the_shared_stores_database() {
    let (store, url) = shared_store("approvals_closed");
    let extra = format!(
        "{}\n[[identity]]\nname = \"wide\"\nrole = \"agent\"\npassword = \"wide-pw\"\ndatabases = [\"*\"]\n\n[[identity]]\nname = \"named\"\nrole = \"agent\"\npassword = \"named-pw\"\ndatabases = [\"{}\"]\n",
        store_section(&url),
        store.name
    );
    let gateway = configured(&extra, false);
    for (user, password) in [
        (AGENT, AGENT_PASSWORD),
        ("wide", "wide-pw"),
        ("named", "named-pw"),
        ("dba1", "dba1-pw"),
    ] {
        for sql in [
            "SELECT count(*) FROM airlock_hold_requests",
            "UPDATE airlock_hold_requests SET state = 'approved'",
        ] {
            let out = psql_spawn(&gateway, user, password, &store.name, sql)
                .wait_with_output()
                .unwrap();
            let said = text(&out);
            assert!(!out.status.success(), "{user}: {said}");
            assert!(said.contains("approval store"), "{user}: {said}");
        }
    }
    // Other databases stay open.
    let out = psql_spawn(&gateway, "wide", "wide-pw", "test", "SELECT 1")
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

// ---- what approvers see is what runs ---------------------------------------

/// A value in a comment or a literal that masking replaces must not take
/// the statements after it out of the approver's view (nor the audit log's).
#[test]
fn approvers_see_every_statement_of_a_held_query() {
    let db = TestDb::create("holds_display");
    let gateway = gateway();
    let inbox = inbox(&gateway);
    let key = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
    let queries = [
        format!("CREATE TABLE shown_a (c text /* -----BEGIN PRIVATE KEY----- {key} */); DROP TABLE shown_gone"),
        format!("CREATE TABLE shown_b (c text DEFAULT '-----BEGIN PRIVATE KEY----- {key}'); DROP TABLE shown_gone"),
        format!("CREATE TABLE shown_c (c text DEFAULT $k$ -----BEGIN PRIVATE KEY----- {key} $k$);DROP TABLE shown_gone"),
        format!("CREATE TABLE shown_d (c text) -- -----BEGIN PRIVATE KEY----- {key}\n; DROP TABLE shown_gone"),
    ];
    for sql in &queries {
        let held = psql_spawn(&gateway, AGENT, AGENT_PASSWORD, &db.name, sql);
        let request = pending(&inbox);
        let shown = request["sql"].as_str().unwrap_or_default().to_string();
        let id = request["id"].as_str().unwrap_or_default().to_string();
        let (status, body) = decide(&inbox, "dba1", &id, "deny", "shown whole");
        assert_eq!(status, 200, "{body}");
        let out = held.wait_with_output().unwrap();
        assert!(!out.status.success());
        assert!(shown.contains("DROP TABLE shown_gone"), "{shown}");
        assert!(shown.contains("<PRIVATE_KEY>"), "{shown}");
        assert!(!shown.contains(key), "{shown}");
    }
    let log = std::fs::read_dir(gateway.path("var/audit"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect::<String>();
    assert!(!log.contains(key), "the audit log shows the key");
    assert!(log.matches("DROP TABLE shown_gone").count() >= queries.len());
}

/// `inbox_browser.js` in `mode`, signed in as `user`; its stderr lines
/// arrive on the receiver as they are written.
fn spawn_browser(
    inbox: &str,
    user: &str,
    password: &str,
    shots: &std::path::Path,
    mode: &str,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/protocol-tests/drivers/node/inbox_browser.js"
    );
    let mut browser = Command::new("node")
        .arg(script)
        .arg(format!("http://{inbox}"))
        .args([user, password])
        .arg(shots)
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    let stderr = browser.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    (browser, rx)
}

/// Waits for the browser to say `line`; what it said before, on failure.
fn browser_says(rx: &std::sync::mpsc::Receiver<String>, line: &str) {
    let mut said = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(l) if l == line => return,
            Ok(l) => said.push_str(&format!("{l}\n")),
            Err(_) => panic!("the browser did not say {line:?}: {said}"),
        }
    }
}

/// A newcomer's first run: a fresh state directory and no configuration.
/// `airlock serve` prints the agent's psql line and the development
/// approver's inbox login; psql's DROP TABLE is held by the built-in
/// default policy; the printed approver signs in to the inbox in Chromium
/// and approves; psql gets its result.
#[test]
fn a_newcomer_runs_serve_without_config_and_approves_the_first_hold_in_a_browser() {
    let db = TestDb::create("newcomer");
    psql_direct(&db.name, "CREATE TABLE first_table (x int)");
    let env: Vec<(String, String)> = [
        ("AIRLOCK_POSTGRES_LISTEN", "127.0.0.1:0"),
        ("AIRLOCK_INBOX_LISTEN", "127.0.0.1:0"),
        ("AIRLOCK_MYSQL_LISTEN", "127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let gateway = Gateway::spawn(tempfile::tempdir().unwrap(), &["serve"], &env);
    let agent_password = std::fs::read_to_string(gateway.path("var/dev-identity")).unwrap();
    let approver_password = std::fs::read_to_string(gateway.path("var/dev-approver")).unwrap();
    assert!(
        gateway.stdout.contains("development approver `dba`")
            && gateway.stdout.contains(&approver_password),
        "{}",
        gateway.stdout
    );
    let inbox = inbox(&gateway);
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inbox-newcomer");
    std::fs::create_dir_all(&shots).unwrap();
    let (browser, rx) = spawn_browser(&inbox, "dba", &approver_password, &shots, "approve");
    browser_says(&rx, "ready");
    let psql = psql_spawn(
        &gateway,
        "agent",
        &agent_password,
        &db.name,
        "DROP TABLE first_table",
    );
    let out = browser.wait_with_output().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(out.status.success(), "browser: {}", rest.join("\n"));
    let done = psql.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", text(&done));
    assert!(text(&done).contains("held for approval"), "{}", text(&done));
    assert!(!table_exists(&db.name, "first_table"));
    // The development approver has no way into the database.
    let (host, port) = gateway.addr.rsplit_once(':').unwrap();
    let denied = Command::new("psql")
        .args([
            "-X", "-h", host, "-p", port, "-U", "dba", "-d", &db.name, "-c", "SELECT 1",
        ])
        .env("PGPASSWORD", &approver_password)
        .output()
        .unwrap();
    assert!(!denied.status.success(), "{}", text(&denied));
}

/// Approvers and auditors work in the inbox: they need no database
/// password, and without `database_login = true` neither listener lets
/// them in, whatever password they have.
#[test]
fn approvers_and_auditors_do_not_log_in_to_the_database_unless_allowed() {
    let db = TestDb::create("holds_nologin");
    let gateway = configured(
        "\n[[identity]]\nname = \"ann\"\nrole = \"auditor\"\napi_token_hash = \"00000000000000000000000000000000000000000000000000000000000000aa\"\n",
        false,
    );
    // auditor1 has a password but no database_login; dba2 (admin) may.
    let out = psql_spawn(&gateway, "auditor1", "auditor1-pw", &db.name, "SELECT 1")
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("signs in to the inbox, not to the database"),
        "{}",
        text(&out)
    );
    let out = psql_spawn(&gateway, "dba2", "dba2-pw", &db.name, "SELECT 1")
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = support::mysql::mariadb_through(
        &gateway.mysql_addr,
        "auditor1",
        "auditor1-pw",
        "",
        "SELECT 1",
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signs in to the inbox"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `ann` was configured with no password at all, and the inbox works.
    let (status, _) = http(&inbox(&gateway), "GET", "/api/requests", Some("wrong"), "");
    assert_eq!(status, 401);
}

/// On a phone, an approver has a request open when another approver
/// decides it: the page shows it decided, without reloading, and its
/// buttons stop working; it never scrolls sideways.
#[test]
fn a_request_page_open_on_a_phone_shows_a_decision_made_elsewhere() {
    let db = TestDb::create("holds_phone");
    let gateway = configured("", true);
    let inbox = inbox(&gateway);
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inbox-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE phone_t (x int)",
    );
    let id = pending(&inbox)["id"].as_str().unwrap().to_string();
    let (browser, rx) = spawn_browser(&inbox, "dba1", "dba1-web-pw", &shots, "live");
    browser_says(&rx, &format!("opened {id}"));
    let (status, _) = decide(&inbox, "dba2", &id, "approve", "from the API");
    assert_eq!(status, 200);
    let out = browser.wait_with_output().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(out.status.success(), "browser: {}", rest.join("\n"));
    assert!(psql.wait_with_output().unwrap().status.success());
    let size = std::fs::metadata(shots.join("request-decided-elsewhere.png"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(size > 1000, "the screenshot was not saved");
}

/// The audit log's records of `kind`, in order.
fn records_of(gateway: &Gateway, kind: &str) -> Vec<Value> {
    let mut found = Vec::new();
    airlock::audit::read::for_each(&gateway.path("var/audit"), |_, r| {
        if r["kind"] == kind {
            found.push(Value::Object(r.clone()));
        }
        true
    })
    .unwrap();
    found
}

/// `airlock breakglass …` against the gateway's inbox as `who`.
fn breakglass_cli(inbox: &str, who: &str, args: &[&str]) -> Output {
    Command::new(support::gateway::binary())
        .arg("breakglass")
        .args(args)
        .args(["--inbox", &format!("http://{inbox}")])
        .env("AIRLOCK_API_TOKEN", token(who))
        .output()
        .expect("run airlock breakglass")
}

#[test]
fn a_break_glass_window_approves_an_agents_holds_until_it_ends_and_never_a_denial() {
    let db = TestDb::create("holds_breakglass");
    let (addr, got) = receiver();
    // A denial that no window may open, before the rules that hold.
    let policy = format!(
        "[[rule]]\nname = \"deny-forbidden\"\nclasses = [\"ddl\"]\nobjects = [\"forbidden_*\"]\naction = \"deny\"\nreason = \"forbidden tables are never made\"\n{POLICY}"
    );
    let mut toml = format!(
        "[approval]\nenabled = true\n\
         [[notify]]\ngroup = \"dba\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n\
         [[notify]]\ngroup = \"finance\"\nkind = \"slack\"\nurl = \"http://{addr}/finance-slack\"\n"
    );
    for (name, role, groups) in PEOPLE {
        toml.push_str(&format!(
            "\n[[identity]]\nname = \"{name}\"\nrole = \"{role}\"\ngroups = {groups}\npassword = \"{name}-pw\"\napi_token_hash = \"{}\"\ninbox_password_hash = \"{}\"\n",
            airlock::hex::encode(blake3::hash(token(name).as_bytes()).as_bytes()),
            airlock::identity::inbox_password_hash(&format!("{name}-web-pw")),
        ));
    }
    let gateway = Gateway::start_with(Options {
        toml,
        policy: Some(policy),
        ..Default::default()
    });
    let inbox = inbox(&gateway);
    let open = |who: &str, body: Value| {
        http(
            &inbox,
            "POST",
            "/api/breakglass",
            Some(&token(who)),
            &body.to_string(),
        )
    };

    // Who may open what.
    let asked = serde_json::json!({"identity": AGENT, "for": "30m", "reason": "outage"});
    assert_eq!(open("dba1", asked.clone()).0, 403, "an approver");
    assert_eq!(open("auditor1", asked.clone()).0, 403, "an auditor");
    let (status, why) = open(
        "dba2",
        serde_json::json!({"identity": "dba2", "for": "30m", "reason": "me"}),
    );
    assert_eq!(status, 422, "the admin's own identity: {why}");
    let (status, why) = open(
        "dba2",
        serde_json::json!({"identity": "dba1", "for": "30m", "reason": "x"}),
    );
    assert_eq!(status, 422, "not an agent: {why}");
    for (duration, reason) in [("25h", "x"), ("0m", "x"), ("soon", "x"), ("30m", "  ")] {
        let body = serde_json::json!({"identity": AGENT, "for": duration, "reason": reason});
        assert_eq!(open("dba2", body).0, 422, "{duration} {reason:?}");
    }
    let refused = breakglass_cli(
        &inbox,
        "dba1",
        &["open", "--identity", AGENT, "--for", "5m", "--reason", "x"],
    );
    assert!(!refused.status.success());
    assert!(text(&refused).contains("only admins"), "{}", text(&refused));
    assert_eq!(
        http(&inbox, "GET", "/api/breakglass", Some(&token("dba1")), "").1,
        serde_json::json!([])
    );

    // Opened from the command line for a few seconds.
    let opened = breakglass_cli(
        &inbox,
        "dba2",
        &[
            "open",
            "--identity",
            AGENT,
            "--for",
            "6s",
            "--reason",
            "incident 42: disk full",
        ],
    );
    assert!(opened.status.success(), "{}", text(&opened));
    let opened_at = Instant::now();
    let (_, windows) = http(
        &inbox,
        "GET",
        "/api/breakglass",
        Some(&token("auditor1")),
        "",
    );
    assert_eq!(windows[0]["identity"], AGENT, "{windows}");
    assert_eq!(windows[0]["opened_by"], "dba2");

    // Visible in the inbox, to every signed-in person; admins may close it.
    let cookie = web_login(&inbox, "dba1", "dba1-web-pw").unwrap();
    let (_, _, pending_page) = web(&inbox, "GET", "/", Some(&cookie), "");
    assert!(
        pending_page.contains("id=\"break-glass-banner\""),
        "{pending_page}"
    );
    assert!(pending_page.contains("incident 42: disk full"));
    let (_, _, bg_page) = web(&inbox, "GET", "/breakglass", Some(&cookie), "");
    assert!(
        bg_page.contains("why-no-break-glass") && !bg_page.contains("close-agent"),
        "{bg_page}"
    );

    // A held DDL runs at once, as an approved request with the window's vote.
    let out = support::gateway::psql_through(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &["-c", "CREATE TABLE bg_made (id int)"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("break-glass"),
        "the notice says why: {}",
        text(&out)
    );
    assert!(table_exists(&db.name, "bg_made"));
    let (_, approved) = http(
        &inbox,
        "GET",
        "/api/requests?state=approved",
        Some(&token("dba1")),
        "",
    );
    let request = approved[0].clone();
    assert_eq!(
        request["votes"][0]["approver"], "break-glass (opened by dba2)",
        "{request}"
    );
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(
        decisions_logged(gateway.path("").as_path(), &id),
        ["approved"]
    );

    // Defer mode: released on the first try.
    let out = support::gateway::psql_through(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &["-c", "CREATE TABLE deferred_bg (id int)"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(table_exists(&db.name, "deferred_bg"));

    // A denial stays a denial.
    let out = support::gateway::psql_through(
        &gateway.addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &["-c", "CREATE TABLE forbidden_bg (id int)"],
    );
    assert!(!out.status.success());
    assert!(!table_exists(&db.name, "forbidden_bg"));

    // The admin's own sessions are never covered (dba2 has no window, and
    // an approver's statement is held as before).
    // The window ends by itself: then holds wait for approvers again.
    let left = Duration::from_secs(6).saturating_sub(opened_at.elapsed());
    std::thread::sleep(left + Duration::from_millis(300));
    assert_eq!(
        http(&inbox, "GET", "/api/breakglass", Some(&token("dba1")), "").1,
        serde_json::json!([])
    );
    let held = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE bg_later (id int)",
    );
    let later = pending(&inbox);
    assert!(
        later["sql"].as_str().unwrap().contains("bg_later"),
        "{later}"
    );
    let later_id = later["id"].as_str().unwrap().to_string();
    assert_eq!(decide(&inbox, "dba1", &later_id, "deny", "not now").0, 200);
    assert!(!held.wait_with_output().unwrap().status.success());
    assert!(!table_exists(&db.name, "bg_later"));

    // Closed early by an admin in the inbox: holds wait again at once.
    let admin = web_login(&inbox, "dba2", "dba2-web-pw").unwrap();
    let (_, _, admin_page) = web(&inbox, "GET", "/breakglass", Some(&admin), "");
    let csrf = csrf_of(&admin_page);
    let (status, _, _) = web(
        &inbox,
        "POST",
        "/breakglass",
        Some(&admin),
        &format!("csrf={csrf}&identity={AGENT}&duration=30m&reason=second+incident"),
    );
    assert_eq!(status, 303);
    let (status, _, forged) = web(
        &inbox,
        "POST",
        &format!("/breakglass/{AGENT}/close"),
        Some(&admin),
        "csrf=forged",
    );
    assert_eq!(status, 403, "{forged}");
    let (status, _, _) = web(
        &inbox,
        "POST",
        &format!("/breakglass/{AGENT}/close"),
        Some(&admin),
        &format!("csrf={csrf}"),
    );
    assert_eq!(status, 303);
    let held = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE bg_closed (id int)",
    );
    let again = pending(&inbox);
    assert!(
        again["sql"].as_str().unwrap().contains("bg_closed"),
        "{again}"
    );
    let again_id = again["id"].as_str().unwrap().to_string();
    assert_eq!(decide(&inbox, "dba1", &again_id, "deny", "closed").0, 200);
    assert!(!held.wait_with_output().unwrap().status.success());

    // Recorded: the openings and the closing, in the chain.
    let windows = records_of(&gateway, "break_glass");
    let actions: Vec<_> = windows
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["opened", "opened", "closed"], "{windows:?}");
    assert_eq!(windows[0]["reason"], "incident 42: disk full");
    assert_eq!(windows[0]["by"], "dba2");
    assert_eq!(windows[2]["by"], "dba2");

    // Announced to every channel, whatever group it serves.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let received = got.lock().unwrap().clone();
        let events = |path: &str| -> Vec<String> {
            received
                .iter()
                .filter(|r| r.path == path)
                .map(|r| {
                    r.body["event"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| r.body["text"].as_str().unwrap_or("").to_string())
                })
                .collect()
        };
        let hook = events("/hook");
        let slack = events("/finance-slack");
        let used = received.iter().any(|r| {
            r.body["event"] == "breakglass.used" && r.body["request"]["id"] == id.as_str()
        });
        if used
            && hook.iter().filter(|e| *e == "breakglass.opened").count() == 2
            && hook.iter().any(|e| e == "breakglass.closed")
            && slack
                .iter()
                .filter(|t| t.starts_with("BREAK-GLASS"))
                .count()
                >= 3
        {
            break;
        }
        assert!(Instant::now() < deadline, "announcements: {received:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dry_run_shows_the_exact_row_count_and_keeps_nothing() {
    let db = TestDb::create("holds_dry_run");
    psql_direct(
        &db.name,
        "CREATE TABLE audited_accounts (id int PRIMARY KEY, active bool NOT NULL DEFAULT true); \
         INSERT INTO audited_accounts SELECT g FROM generate_series(1, 222) g; \
         CREATE TABLE audited_logged (id int); INSERT INTO audited_logged VALUES (1), (2); \
         CREATE TABLE side_effects (n int); \
         CREATE FUNCTION note_it() RETURNS trigger LANGUAGE plpgsql AS \
           $$BEGIN INSERT INTO side_effects VALUES (1); RETURN OLD; END$$; \
         CREATE TRIGGER noted BEFORE DELETE ON audited_logged FOR EACH ROW EXECUTE FUNCTION note_it(); \
         CREATE SEQUENCE audited_seq; CREATE SEQUENCE audited_checked_seq; \
         CREATE TABLE audited_checked (id int, n int CHECK (n < nextval('audited_checked_seq'))); \
         INSERT INTO audited_checked VALUES (1, 0);",
    );
    let policy = format!(
        "[[rule]]\nname = \"dry-run-audited\"\nclasses = [\"write\"]\nobjects = [\"audited_*\"]\naction = \"hold\"\ngroup = \"dba\"\nexpiry = \"60s\"\nimpact = \"dry-run\"\n{POLICY}"
    );
    let mut toml = "[approval]\nenabled = true\n".to_string();
    for (name, role, groups) in PEOPLE {
        toml.push_str(&format!(
            "\n[[identity]]\nname = \"{name}\"\nrole = \"{role}\"\ngroups = {groups}\npassword = \"{name}-pw\"\napi_token_hash = \"{}\"\n",
            airlock::hex::encode(blake3::hash(token(name).as_bytes()).as_bytes()),
        ));
    }
    let gateway = Gateway::start_with(Options {
        toml,
        policy: Some(policy),
        ..Default::default()
    });
    let inbox = inbox(&gateway);
    let checked_seq = psql_direct(&db.name, "SELECT last_value FROM audited_checked_seq");
    let active = || {
        psql_direct(
            &db.name,
            "SELECT count(*) FROM audited_accounts WHERE active",
        )
    };

    // Counted exactly, then rolled back: nothing changes until approval.
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "UPDATE audited_accounts SET active = false WHERE id <= 150",
    );
    let request = pending(&inbox);
    let id = request["id"].as_str().unwrap().to_string();
    let impact = request["impact"].as_str().unwrap_or_default().to_string();
    assert!(impact.contains("changed exactly 150 rows"), "{impact}");
    assert!(impact.contains("rolled back"), "{impact}");
    assert_eq!(active(), "222", "the dry run kept nothing");
    // Its row locks are gone: another session may write the same rows.
    psql_direct(
        &db.name,
        "SET lock_timeout = 500; UPDATE audited_accounts SET active = true WHERE id = 1",
    );
    assert_eq!(decide(&inbox, "dba1", &id, "approve", "").0, 200);
    let out = psql.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(active(), "72");

    // What could act outside the transaction is never dry-run, and says why.
    let cases = [
        ("DELETE FROM audited_logged WHERE id = 1", "triggers"),
        (
            "UPDATE audited_accounts SET id = nextval('audited_seq') WHERE id = 1",
            "calls functions",
        ),
        (
            "INSERT INTO audited_accounts VALUES (999)",
            "only UPDATE and DELETE",
        ),
        ("UPDATE audited_checked SET n = 1", "a table it touches"),
    ];
    for (sql, why) in cases {
        let psql = psql_spawn(&gateway, AGENT, AGENT_PASSWORD, &db.name, sql);
        let request = pending(&inbox);
        let id = request["id"].as_str().unwrap().to_string();
        let impact = request["impact"].as_str().unwrap_or_default().to_string();
        assert!(
            impact.starts_with("Not dry-run:") && impact.contains(why),
            "{sql}: {impact}"
        );
        assert_eq!(decide(&inbox, "dba1", &id, "deny", "test").0, 200);
        assert!(!psql.wait_with_output().unwrap().status.success());
    }
    assert_eq!(
        psql_direct(&db.name, "SELECT count(*) FROM side_effects"),
        "0"
    );
    assert_eq!(
        psql_direct(&db.name, "SELECT is_called FROM audited_seq"),
        "f"
    );
    assert_eq!(
        psql_direct(&db.name, "SELECT last_value FROM audited_checked_seq"),
        checked_seq,
        "the check constraint's nextval ran only for the setup's row"
    );
    assert_eq!(
        psql_direct(&db.name, "SELECT count(*) FROM audited_logged"),
        "2"
    );

    // Rules without `impact = "dry-run"` never run anything.
    let psql = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE made_later (id int)",
    );
    let request = pending(&inbox);
    let id = request["id"].as_str().unwrap().to_string();
    assert!(
        !request["impact"]
            .as_str()
            .unwrap_or_default()
            .contains("Dry run"),
        "{request}"
    );
    assert_eq!(decide(&inbox, "dba1", &id, "deny", "test").0, 200);
    assert!(!psql.wait_with_output().unwrap().status.success());
}

#[test]
fn impact_estimates_run_with_the_agents_role_not_the_service_logins() {
    let db = TestDb::create("holds_estimate_role");
    // Roles belong to the whole server: one per test process.
    let role = format!("holds_estimator_{}", std::process::id());
    psql_direct(
        &db.name,
        &format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role}; \
             CREATE TABLE audited_open (id int); CREATE TABLE audited_secret (id int); \
             GRANT SELECT, DELETE ON audited_open TO {role}"
        ),
    );
    let mut toml = "[approval]\nenabled = true\n".to_string();
    for (name, role, groups) in PEOPLE {
        toml.push_str(&format!(
            "\n[[identity]]\nname = \"{name}\"\nrole = \"{role}\"\ngroups = {groups}\npassword = \"{name}-pw\"\napi_token_hash = \"{}\"\n",
            airlock::hex::encode(blake3::hash(token(name).as_bytes()).as_bytes()),
        ));
    }
    toml.push_str(&format!(
        "\n[[identity]]\nname = \"confined\"\nrole = \"agent\"\npassword = \"confined-pw\"\nupstream_role = \"{role}\"\n"
    ));
    let gateway = Gateway::start_with(Options {
        toml,
        policy: Some(POLICY.into()),
        ..Default::default()
    });
    let inbox = inbox(&gateway);
    let impact_of = |sql: &str| {
        let psql = psql_spawn(&gateway, "confined", "confined-pw", &db.name, sql);
        let request = pending(&inbox);
        let id = request["id"].as_str().unwrap().to_string();
        assert_eq!(decide(&inbox, "dba1", &id, "deny", "test").0, 200);
        let _ = psql.wait_with_output();
        request["impact"].as_str().unwrap_or_default().to_string()
    };
    // The role may delete from this table: its plan is shown.
    let open = impact_of("DELETE FROM audited_open");
    assert!(open.contains("Delete on audited_open"), "{open}");
    // Not from this one: the planner, running as the role, is refused, and
    // nothing is shown (the service login could have planned it).
    let secret = impact_of("DELETE FROM audited_secret");
    assert!(!secret.contains("Delete on audited_secret"), "{secret}");
    psql_direct(&db.name, &format!("DROP OWNED BY {role}; DROP ROLE {role}"));
}

#[test]
fn a_break_glass_window_opened_through_one_gateway_covers_the_agent_on_another() {
    let db = TestDb::create("holds_shared_bg");
    let (_store, url) = shared_store("approvals_shared_bg");
    let store = store_section(&url);
    let a = configured(&store, false);
    let b = configured(&store, false);
    let (inbox_a, inbox_b) = (inbox(&a), inbox(&b));
    let (status, window) = http(
        &inbox_b,
        "POST",
        "/api/breakglass",
        Some(&token("dba2")),
        &serde_json::json!({"identity": AGENT, "for": "5m", "reason": "shared outage"}).to_string(),
    );
    assert_eq!(status, 201, "{window}");
    // Listed by A too, and A's sessions are covered.
    let (_, listed) = http(&inbox_a, "GET", "/api/breakglass", Some(&token("dba1")), "");
    assert_eq!(listed[0]["reason"], "shared outage", "{listed}");
    let out = support::gateway::psql_through(
        &a.addr,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        &["-c", "CREATE TABLE made_on_a (id int)"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(table_exists(&db.name, "made_on_a"));
    // Closed through A: B's sessions wait for approvers again.
    let (status, _) = http(
        &inbox_a,
        "POST",
        &format!("/api/breakglass/{AGENT}/close"),
        Some(&token("dba2")),
        "{}",
    );
    assert_eq!(status, 200);
    let held = psql_spawn(
        &b,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE made_on_b (id int)",
    );
    let request = pending(&inbox_b);
    let id = request["id"].as_str().unwrap().to_string();
    assert!(
        request["sql"].as_str().unwrap().contains("made_on_b"),
        "{request}"
    );
    assert_eq!(decide(&inbox_b, "dba1", &id, "deny", "closed").0, 200);
    assert!(!held.wait_with_output().unwrap().status.success());
    assert!(!table_exists(&db.name, "made_on_b"));
}
