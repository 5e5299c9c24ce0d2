//! The MCP front door with real MCP clients: the official Python SDK over
//! Streamable HTTP and stdio, and the TypeScript SDK over Streamable HTTP,
//! against the real binary and the real PostgreSQL server.
//!
//! What is checked: the tools and their annotations; masking of result
//! values; the row cap (`truncated`) on a large table without the
//! gateway's memory growing; a held DROP answered with its request, the
//! approval in the inbox's API and the statement run exactly once; a
//! denial naming rule, approver and reason; the statement timeout; bad
//! tokens (none, unknown, an inbox API token); a database outside the
//! identity's `databases`; and, with the server's statement log as the
//! witness, that statements the gate holds or denies never reach it.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;
use support::gateway::{psql_direct, Gateway, Options, TestDb};
use support::inbox::{exchange, http, inbox};
use support::pglog::{log_contains, logged_database, run_marker, server_log};

const POLICY: &str = r#"
[[rule]]
name = "hold-ddl"
classes = ["ddl"]
action = "hold"
group = "dba"
quorum = 1
expiry = "60s"

[[rule]]
name = "deny-privilege"
classes = ["privilege"]
action = "deny"
reason = "grants go through the platform team"

[[rule]]
name = "allow-everyday"
classes = ["read", "write", "session"]
action = "allow"
"#;

const AGENT_TOKEN: &str = "amcp_agent-test-token";
const NARROW_TOKEN: &str = "amcp_narrow-test-token";
const DBA_TOKEN: &str = "dba1-token";

fn hash(token: &str) -> String {
    airlock::hex::encode(blake3::hash(token.as_bytes()).as_bytes())
}

/// A gateway whose `agent` has an MCP token and may use `databases`
/// (glob list), a `narrow` agent limited to `nothing_*`, and an approver.
fn gateway(databases: &str, mcp: &str) -> Gateway {
    let toml = format!(
        "[approval]\nenabled = true\n\
         [mcp]\nlisten = \"127.0.0.1:0\"\n{mcp}\n\
         [[identity]]\nname = \"agent\"\nrole = \"agent\"\npassword = \"agent-secret\"\n\
         mcp_token_hash = \"{}\"\ndatabases = {databases}\n\
         [[identity]]\nname = \"narrow\"\nrole = \"agent\"\npassword = \"narrow-secret\"\n\
         mcp_token_hash = \"{}\"\ndatabases = [\"nothing_*\"]\n\
         [[identity]]\nname = \"dba1\"\nrole = \"approver\"\ngroups = [\"dba\"]\napi_token_hash = \"{}\"\n",
        hash(AGENT_TOKEN),
        hash(NARROW_TOKEN),
        hash(DBA_TOKEN),
    );
    Gateway::start_with(Options {
        toml,
        policy: Some(POLICY.into()),
        no_identity: true,
        ..Default::default()
    })
}

fn mcp_url(gateway: &Gateway) -> String {
    let addr = gateway
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("mcp listening on "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the mcp line");
    format!("http://{addr}/mcp")
}

fn driver(name: &str) -> String {
    format!(
        "{}/protocol-tests/drivers/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// One Python SDK session over Streamable HTTP making `calls`.
fn python_http(gateway: &Gateway, token: &str, calls: Value) -> Value {
    run_json(
        Command::new("python3")
            .arg(driver("mcp_session.py"))
            .arg("http")
            .arg(mcp_url(gateway))
            .arg(token)
            .arg(calls.to_string()),
    )
}

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("run the MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no JSON from the client: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).expect("the client's JSON")
}

fn calls(session: &Value) -> &Vec<Value> {
    session["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("the session failed: {session}"))
}

fn query(sql: &str, database: &str) -> Value {
    json!({"tool": "query", "args": {"sql": sql, "database": database}})
}

#[test]
fn tools_are_listed_with_schemas_and_annotations() {
    let gw = gateway("[\"*\"]", "");
    let session = python_http(&gw, AGENT_TOKEN, json!([]));
    let tools = session["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for expected in [
        "query",
        "list_databases",
        "list_tables",
        "describe_table",
        "explain",
        "approval_status",
        "wait_for_approval",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let tool = |n: &str| tools.iter().find(|t| t["name"] == n).expect("tool");
    assert_eq!(tool("query")["annotations"]["destructiveHint"], true);
    assert_eq!(tool("query")["annotations"]["readOnlyHint"], false);
    assert_eq!(tool("list_tables")["annotations"]["readOnlyHint"], true);
    let schema = &tool("query")["inputSchema"];
    assert_eq!(schema["type"], "object");
    assert!(schema["properties"]["sql"].is_object(), "{schema}");
    assert_eq!(schema["required"], json!(["sql"]), "{schema}");
    // Nothing in the MCP surface approves or changes anything.
    for forbidden in ["approve", "deny", "vote", "policy", "identity"] {
        assert!(
            !names.iter().any(|n| n.contains(forbidden)),
            "{forbidden}: {names:?}"
        );
    }
}

#[test]
fn results_are_masked_and_typed() {
    let db = TestDb::create("mcp_mask");
    psql_direct(
        &db.name,
        "CREATE TABLE customers (id int PRIMARY KEY, email text, card text, active bool); \
         INSERT INTO customers VALUES \
           (1, 'jane.doe@example.com', '4111 1111 1111 1111', true), \
           (2, 'contact: bob.smith@example.org', '5500 0000 0000 0004', false)",
    );
    let gw = gateway("[\"*\"]", "");
    let session = python_http(
        &gw,
        AGENT_TOKEN,
        json!([
            query("SELECT id, email, card, active FROM customers ORDER BY id", &db.name),
            {"tool": "describe_table", "args": {"table": "customers", "database": db.name}},
            {"tool": "list_tables", "args": {"database": db.name}},
        ]),
    );
    let raw = session.to_string();
    for secret in [
        "jane.doe@example.com",
        "bob.smith@example.org",
        "4111 1111 1111 1111",
        "5500 0000 0000 0004",
    ] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
    let result = &calls(&session)[0];
    assert_eq!(result["is_error"], false, "{result}");
    let s = &result["structured"];
    assert_eq!(s["status"], "ok");
    assert_eq!(s["row_count"], 2);
    assert_eq!(s["truncated"], false);
    assert!(s["elapsed_ms"].is_u64());
    assert_eq!(s["columns"][0], json!({"name": "id", "type": "int4"}));
    assert_eq!(s["rows"][0][0], 1);
    assert_eq!(s["rows"][0][3], true);
    assert_eq!(
        s["rows"][1][1].as_str().map(|v| v.starts_with("contact: ")),
        Some(true),
        "{s}"
    );
    let described = &calls(&session)[1]["structured"];
    assert_eq!(described["rows"][0][0], "id", "{described}");
    assert_eq!(described["rows"][0][4], "primary key", "{described}");
    let tables = &calls(&session)[2]["structured"];
    assert_eq!(
        tables["rows"],
        json!([["public", "customers", "BASE TABLE"]])
    );
}

/// Resident memory of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[test]
fn the_row_cap_truncates_a_million_rows_without_reading_them() {
    let db = TestDb::create("mcp_big");
    psql_direct(
        &db.name,
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS filler \
         FROM generate_series(1, 1000000) g",
    );
    let gw = gateway("[\"*\"]", "max_rows = 100\nmax_bytes = 1000000\n");
    // Warm up: connection pool, code paths.
    python_http(&gw, AGENT_TOKEN, json!([query("SELECT 1", &db.name)]));
    let before = rss_kb(gw.pid());
    let session = python_http(
        &gw,
        AGENT_TOKEN,
        json!([
            query("SELECT id, filler FROM big", &db.name),
            {"tool": "query", "args": {"sql": "SELECT id FROM big ORDER BY id", "database": db.name, "max_rows": 7}},
            {"tool": "query", "args": {"sql": "SELECT id FROM big", "database": db.name, "max_rows": 100000}},
        ]),
    );
    let after = rss_kb(gw.pid());
    let results = calls(&session);
    let first = &results[0]["structured"];
    assert_eq!(first["row_count"], 100, "{}", results[0]);
    assert_eq!(first["truncated"], true);
    assert_eq!(first["truncated_by"], "max_rows");
    let second = &results[1]["structured"];
    assert_eq!(second["rows"], json!([[1], [2], [3], [4], [5], [6], [7]]));
    assert_eq!(second["truncated"], true);
    // An agent cannot raise the cap.
    assert_eq!(results[2]["structured"]["row_count"], 100);
    // 1M rows of ~70 bytes would be ~70 MB read; the gateway grew by
    // far less than that.
    assert!(
        after < before + 30_000,
        "the gateway's memory grew from {before} kB to {after} kB"
    );
}

#[test]
fn the_byte_cap_truncates_too() {
    let gw = gateway("[\"*\"]", "max_bytes = 1000\n");
    let session = python_http(
        &gw,
        AGENT_TOKEN,
        json!([query(
            "SELECT repeat('x', 100) FROM generate_series(1, 50)",
            "test"
        )]),
    );
    let s = &calls(&session)[0]["structured"];
    assert_eq!(s["truncated"], true, "{s}");
    assert_eq!(s["truncated_by"], "max_bytes");
    assert_eq!(s["row_count"], 10);
}

fn table_exists(database: &str, table: &str) -> bool {
    psql_direct(
        database,
        &format!("SELECT count(*) FROM pg_tables WHERE tablename = '{table}'"),
    ) == "1"
}

fn decide(inbox: &str, id: &str, verdict: &str, reason: &str) -> (u16, Value) {
    http(
        inbox,
        "POST",
        &format!("/api/requests/{id}/{verdict}"),
        Some(DBA_TOKEN),
        &json!({ "reason": reason }).to_string(),
    )
}

#[test]
fn a_held_drop_answers_with_its_request_and_runs_once_after_approval() {
    let db = logged_database("mcp_hold");
    let log = server_log();
    let marker = run_marker("mcp_hold");
    psql_direct(&db.name, "CREATE TABLE doomed (x int)");
    let gw = gateway("[\"*\"]", "");
    let inbox = inbox(&gw);
    let drop = format!("DROP TABLE doomed /* {marker} */");

    let first = python_http(&gw, AGENT_TOKEN, json!([query(&drop, &db.name)]));
    let held = &calls(&first)[0];
    assert_eq!(held["is_error"], false, "{held}");
    let s = &held["structured"];
    assert_eq!(s["status"], "pending_approval", "{s}");
    assert_eq!(s["rule"], "hold-ddl");
    let id = s["request_id"].as_str().expect("request id").to_string();
    assert_eq!(
        s["inbox_url"].as_str(),
        Some(format!("http://{inbox}/requests/{id}").as_str())
    );
    assert!(s["expires_at"].is_string());
    assert!(
        s.get("elicitation").is_none(),
        "a client without elicitation is not asked: {s}"
    );
    assert_eq!(first["elicitations"], json!([]));
    assert!(table_exists(&db.name, "doomed"), "nothing ran yet");
    assert!(
        !log_contains(&log, &marker),
        "the held DROP reached the server"
    );

    // The agent's own view of its request; it cannot see anybody else's.
    let status = python_http(
        &gw,
        AGENT_TOKEN,
        json!([
            {"tool": "approval_status", "args": {"request_id": id}},
            {"tool": "approval_status", "args": {"request_id": "r-nonexistent"}},
        ]),
    );
    assert_eq!(calls(&status)[0]["structured"]["state"], "pending");
    assert_eq!(calls(&status)[1]["is_error"], true);
    let other = python_http(
        &gw,
        NARROW_TOKEN,
        json!([{"tool": "approval_status", "args": {"request_id": id}}]),
    );
    assert_eq!(calls(&other)[0]["is_error"], true, "{other}");

    // Re-sent before approval: the same request, still not run.
    let again = python_http(&gw, AGENT_TOKEN, json!([query(&drop, &db.name)]));
    assert_eq!(calls(&again)[0]["structured"]["request_id"], id.as_str());
    assert!(table_exists(&db.name, "doomed"));

    let (code, decided) = decide(&inbox, &id, "approve", "cleanup");
    assert_eq!(code, 200, "{decided}");
    // wait_for_approval sees the approval; the statement has not run.
    let waited = python_http(
        &gw,
        AGENT_TOKEN,
        json!([{"tool": "wait_for_approval", "args": {"request_id": id, "timeout_s": 5}}]),
    );
    assert_eq!(
        calls(&waited)[0]["structured"]["state"],
        "approved",
        "{waited}"
    );
    assert!(table_exists(&db.name, "doomed"));

    // Re-sent after approval: runs, once.
    let run = python_http(&gw, AGENT_TOKEN, json!([query(&drop, &db.name)]));
    let ran = &calls(&run)[0]["structured"];
    assert_eq!(ran["status"], "ok", "{run}");
    assert_eq!(ran["command"], "DROP TABLE");
    assert_eq!(ran["request_id"], id.as_str());
    assert!(!table_exists(&db.name, "doomed"));
    // A second send is a new request, not a second run of the approval.
    psql_direct(&db.name, "CREATE TABLE doomed (x int)");
    let twice = python_http(&gw, AGENT_TOKEN, json!([query(&drop, &db.name)]));
    let s = &calls(&twice)[0]["structured"];
    assert_eq!(s["status"], "pending_approval", "{twice}");
    assert_ne!(s["request_id"], id.as_str());
    assert!(table_exists(&db.name, "doomed"));
    // The same approval does not serve another identity either.
    let narrow = python_http(&gw, NARROW_TOKEN, json!([query(&drop, &db.name)]));
    assert_eq!(calls(&narrow)[0]["is_error"], true);

    // The audit log names the door.
    let audit = read_audit(&gw);
    assert!(
        audit.contains("\"protocol\":\"mcp\"") && audit.contains("\"server\":\"postgres\""),
        "{audit}"
    );
}

fn read_audit(gw: &Gateway) -> String {
    let dir = gw.path("var/audit");
    let mut text = String::new();
    for entry in std::fs::read_dir(&dir).expect("audit dir").flatten() {
        text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    text
}

#[test]
fn a_denied_request_is_a_tool_error_naming_rule_approver_and_reason() {
    let db = TestDb::create("mcp_deny");
    psql_direct(&db.name, "CREATE TABLE kept (x int)");
    let gw = gateway("[\"*\"]", "");
    let inbox = inbox(&gw);
    let drop = "DROP TABLE kept";
    let first = python_http(&gw, AGENT_TOKEN, json!([query(drop, &db.name)]));
    let id = calls(&first)[0]["structured"]["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    let (code, _) = decide(&inbox, &id, "deny", "not during business hours");
    assert_eq!(code, 200);
    let waited = python_http(
        &gw,
        AGENT_TOKEN,
        json!([{"tool": "wait_for_approval", "args": {"request_id": id, "timeout_s": 5}}]),
    );
    let result = &calls(&waited)[0];
    assert_eq!(result["is_error"], true, "{result}");
    let s = &result["structured"];
    assert_eq!(s["status"], "denied");
    assert_eq!(s["approver"], "dba1");
    assert_eq!(s["rule"], "hold-ddl");
    let message = s["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("dba1")
            && message.contains("hold-ddl")
            && message.contains("not during business hours"),
        "{message}"
    );
    assert!(table_exists(&db.name, "kept"));
}

#[test]
fn a_wait_in_the_query_call_sends_progress_and_runs_on_approval() {
    let db = TestDb::create("mcp_wait");
    psql_direct(&db.name, "CREATE TABLE waited (x int)");
    let gw = gateway("[\"*\"]", "");
    let inbox = inbox(&gw);
    let approver = std::thread::spawn(move || {
        // Approve whatever appears, once.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, list) = http(&inbox, "GET", "/api/requests", Some(DBA_TOKEN), "");
            if let Some(id) = list
                .as_array()
                .and_then(|a| a.first())
                .and_then(|r| r["id"].as_str())
            {
                // Long enough for a progress notification or two.
                std::thread::sleep(Duration::from_secs(6));
                return decide(&inbox, id, "approve", "ok").0;
            }
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let session = python_http(
        &gw,
        AGENT_TOKEN,
        json!([{"tool": "query", "args": {"sql": "DROP TABLE waited", "database": db.name, "wait_s": 60}}]),
    );
    assert_eq!(approver.join().expect("approver"), 200);
    let result = &calls(&session)[0];
    assert_eq!(result["structured"]["status"], "ok", "{result}");
    assert!(
        !result["progress"].as_array().expect("progress").is_empty(),
        "no progress notification: {result}"
    );
    assert!(!table_exists(&db.name, "waited"));
}

#[test]
fn the_statement_timeout_cancels_a_long_query() {
    let gw = gateway("[\"*\"]", "statement_timeout_secs = 1\n");
    let session = python_http(
        &gw,
        AGENT_TOKEN,
        json!([
            query("SELECT pg_sleep(5)", "test"),
            query("SELECT 2 AS two", "test")
        ]),
    );
    let timed_out = &calls(&session)[0];
    assert_eq!(timed_out["is_error"], true, "{timed_out}");
    assert_eq!(timed_out["structured"]["status"], "timeout");
    assert_eq!(timed_out["structured"]["code"], "57014");
    // The next call works: the connection's state did not leak.
    assert_eq!(calls(&session)[1]["structured"]["rows"], json!([[2]]));
}

#[test]
fn calls_without_a_valid_token_are_refused() {
    let gw = gateway("[\"*\"]", "");
    for token in ["", "amcp_wrong", DBA_TOKEN, &hash(AGENT_TOKEN)] {
        let session = python_http(&gw, token, json!([query("SELECT 1", "test")]));
        assert!(
            session["refused"].is_string(),
            "token {token:?} was accepted: {session}"
        );
    }
    // What a client that discovers authorization sees.
    let url = mcp_url(&gw);
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    let (status, head, _) = exchange(&addr, "POST", "/mcp", "", "application/json", body);
    assert_eq!(status, 401);
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("www-authenticate: bearer resource_metadata=\"http://"),
        "{head}"
    );
    let (status, head, _) = exchange(
        &addr,
        "POST",
        "/mcp",
        "Authorization: Bearer amcp_wrong\r\n",
        "application/json",
        body,
    );
    assert_eq!(status, 401);
    assert!(head.contains("invalid_token"), "{head}");
    let (status, meta) = http(
        &addr,
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        None,
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(meta["resource"], url.as_str());
    assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
}

#[test]
fn a_database_outside_the_identitys_list_is_refused_before_the_server() {
    let db = logged_database("mcp_outside");
    let log = server_log();
    let marker = run_marker("mcp_outside");
    let gw = gateway("[\"test\"]", "");
    let sql = format!("SELECT '{marker}'");
    let session = python_http(
        &gw,
        AGENT_TOKEN,
        json!([
            query(&sql, &db.name),
            {"tool": "list_tables", "args": {"database": db.name}},
            {"tool": "list_databases", "args": {}},
        ]),
    );
    let results = calls(&session);
    assert_eq!(results[0]["is_error"], true, "{}", results[0]);
    assert_eq!(results[0]["structured"]["code"], "42501");
    assert_eq!(results[1]["is_error"], true);
    let listed = results[2]["structured"]["rows"].to_string();
    assert_eq!(listed, "[[\"test\"]]", "{listed}");
    assert!(!log_contains(&log, &marker));
}

#[test]
fn statements_the_gate_holds_or_denies_never_reach_the_server() {
    let db = logged_database("mcp_witness");
    let log = server_log();
    let marker = run_marker("mcp_witness");
    psql_direct(&db.name, "CREATE TABLE t (x int)");
    let gw = gateway("[\"*\"]", "");
    let refused = [
        format!("DROP TABLE t /* {marker}-1 */"),
        format!("GRANT SELECT ON t TO PUBLIC /* {marker}-2 */"),
        format!("SELEC garbage /* {marker}-3 */"),
        format!("SELECT 1; DROP TABLE t /* {marker}-4 */"),
        format!("ALTER TABLE t ADD COLUMN y int /* {marker}-5 */"),
        format!("CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql /* {marker}-6 */"),
        format!("TRUNCATE t /* {marker}-7 */"),
    ];
    let mut list: Vec<Value> = refused.iter().map(|s| query(s, &db.name)).collect();
    // The positive control: an allowed statement is in the log.
    list.push(query(
        &format!("SELECT count(*) FROM t /* {marker}-ok */"),
        &db.name,
    ));
    list.push(json!({"tool": "explain", "args": {"sql": format!("DROP TABLE t /* {marker}-8 */"), "database": db.name}}));
    let session = python_http(&gw, AGENT_TOKEN, Value::Array(list));
    let results = calls(&session);
    for (i, sql) in refused.iter().enumerate() {
        let status = results[i]["structured"]["status"]
            .as_str()
            .unwrap_or_default();
        assert!(
            status == "pending_approval" || status == "denied",
            "{sql} was not held or denied: {}",
            results[i]
        );
    }
    assert_eq!(results[refused.len()]["structured"]["status"], "ok");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !log_contains(&log, &format!("{marker}-ok")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the control never reached the log"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // (8, the EXPLAIN of a DROP, may reach the server: plain EXPLAIN does not run it.)
    for i in 1..=7 {
        assert!(
            !log_contains(&log, &format!("{marker}-{i} ")),
            "statement {i} reached the server"
        );
    }
    assert!(table_exists(&db.name, "t"));
}

#[test]
fn stdio_serves_the_same_tools_for_the_tokens_identity() {
    let db = TestDb::create("mcp_stdio");
    psql_direct(
        &db.name,
        "CREATE TABLE people (email text); INSERT INTO people VALUES ('jane.doe@example.com')",
    );
    // A gateway's config, run by the client as `airlock mcp --stdio`.
    let gw = gateway("[\"*\"]", "");
    let config = gw.path("airlock.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    // Its own state and ports: the HTTP gateway keeps running beside it.
    let stdio_dir = gw.path("stdio");
    std::fs::create_dir_all(&stdio_dir).expect("dir");
    let stdio_config = stdio_dir.join("airlock.toml");
    std::fs::write(
        &stdio_config,
        text.replace(
            &format!("state_dir = \"{}\"", gw.path("var").display()),
            &format!("state_dir = \"{}\"", stdio_dir.join("var").display()),
        ),
    )
    .expect("write");
    let session = run_json(
        Command::new("python3")
            .arg(driver("mcp_session.py"))
            .arg("stdio")
            .arg(support::gateway::binary())
            .arg(&stdio_config)
            .arg(AGENT_TOKEN)
            .arg(
                json!([
                    query("SELECT email FROM people", &db.name),
                    query("DROP TABLE people", &db.name)
                ])
                .to_string(),
            ),
    );
    let results = calls(&session);
    assert_eq!(results[0]["structured"]["row_count"], 1, "{session}");
    assert!(!session.to_string().contains("jane.doe@example.com"));
    assert_eq!(results[1]["structured"]["status"], "pending_approval");
    assert_eq!(session["tools"].as_array().map(Vec::len), Some(7));
    // A bad token gets no session.
    let refused = run_json(
        Command::new("python3")
            .arg(driver("mcp_session.py"))
            .arg("stdio")
            .arg(support::gateway::binary())
            .arg(&stdio_config)
            .arg("amcp_wrong")
            .arg("[]"),
    );
    assert!(refused["refused"].is_string(), "{refused}");
}

#[test]
fn the_typescript_sdk_client_gets_the_same_answers() {
    let db = TestDb::create("mcp_ts");
    psql_direct(
        &db.name,
        "CREATE TABLE people (email text); INSERT INTO people VALUES ('jane.doe@example.com'); \
         CREATE TABLE gone (x int)",
    );
    let gw = gateway("[\"*\"]", "");
    let out = Command::new("node")
        .arg(driver("node/mcp_session.mjs"))
        .arg(mcp_url(&gw))
        .arg(AGENT_TOKEN)
        .arg(
            json!([
                query("SELECT email FROM people", &db.name),
                query("DROP TABLE gone", &db.name),
            ])
            .to_string(),
        )
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert!(!stdout.contains("jane.doe@example.com"), "{stdout}");
    let results = calls(&session);
    assert_eq!(results[0]["structured"]["row_count"], 1, "{stdout}");
    assert_eq!(results[1]["structured"]["status"], "pending_approval");
    assert_eq!(session["tools"].as_array().map(Vec::len), Some(7));
    // Without a token, the SDK's transport is refused with 401.
    let refused = Command::new("node")
        .arg(driver("node/mcp_session.mjs"))
        .arg(mcp_url(&gw))
        .arg("")
        .arg("[]")
        .output()
        .expect("node");
    assert!(!refused.status.success());
    assert!(table_exists(&db.name, "gone"));
}

/// The classification corpus's PostgreSQL cases through the `query` tool
/// under the shipped default policy: every case the policy (or Airlock
/// itself) would not allow is answered `pending_approval` or `denied`, and
/// the server's statement log never sees it.
#[test]
fn the_classification_corpus_through_query_never_reaches_the_server_when_refused() {
    let cases: Vec<String> = support::corpus::classification_sql("postgres")
        .into_iter()
        // A second of sleep each is the corpus's business, not this test's.
        .filter(|sql| !sql.contains("pg_sleep(1)"))
        .collect();
    assert!(cases.len() > 200, "{} PostgreSQL cases", cases.len());

    let db = logged_database("mcp_corpus");
    let log = server_log();
    let run = run_marker("mcp_corpus");
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let default_policy = std::fs::read_to_string(policies.join("default.toml")).unwrap();
    let policy = airlock::policy::Policy::load_dir(&policies).unwrap();
    let toml = format!(
        "[approval]\nenabled = true\n[mcp]\nlisten = \"127.0.0.1:0\"\n\
         [[identity]]\nname = \"agent\"\nrole = \"agent\"\npassword = \"agent-secret\"\n\
         mcp_token_hash = \"{}\"\n",
        hash(AGENT_TOKEN),
    );
    let gw = Gateway::start_with(Options {
        toml,
        policy: Some(default_policy),
        no_identity: true,
        ..Default::default()
    });
    let dialect = airlock::sql::Dialect::Postgres;
    let mut expected_refused = Vec::new();
    let mut calls_all = Vec::new();
    for (i, sql) in cases.iter().enumerate() {
        let classification = airlock::sql::classify(sql, dialect);
        let decision = policy.evaluate(&airlock::policy::Request {
            identity: "agent",
            role: airlock::identity::Role::Agent,
            database: &db.name,
            classification: &classification,
            masked_columns: support::corpus::columns_known_to_a_fresh_gateway(&classification),
        });
        let by_airlock = airlock::sql::encoding::encoding_change(sql.as_bytes(), dialect).is_some();
        expected_refused.push(by_airlock || decision.action != airlock::policy::Action::Allow);
        calls_all.push(query(&format!("/* {run}c{i}x */ {sql}"), &db.name));
    }
    let mut results = Vec::new();
    for batch in calls_all.chunks(120) {
        let session = python_http(&gw, AGENT_TOKEN, Value::Array(batch.to_vec()));
        results.extend(calls(&session).iter().cloned());
    }
    assert_eq!(results.len(), cases.len());
    let logged = support::pglog::log_text(&log);
    let (mut refused, mut allowed, mut witnessed) = (0, 0, 0);
    for (i, r) in results.iter().enumerate() {
        let tag = format!("{run}c{i}x ");
        let status = r["structured"]["status"].as_str().unwrap_or_default();
        if expected_refused[i] {
            assert!(
                status == "pending_approval" || status == "denied",
                "case {i} ({}) should be held or denied: {r}",
                cases[i]
            );
            assert!(
                !logged.contains(&tag),
                "a refused statement reached the server: {}",
                cases[i]
            );
            refused += 1;
        } else {
            allowed += 1;
            if logged.contains(&tag) {
                witnessed += 1;
            }
        }
    }
    // The log is a working witness: most allowed statements are in it
    // (some fail before the server logs them, or are answered by Airlock).
    assert!(
        witnessed * 2 >= allowed,
        "{witnessed} of {allowed} allowed statements in the log"
    );
    eprintln!("{refused} held or denied, none reached the server; {allowed} allowed, {witnessed} in its log");
}

/// A client that supports URL-mode elicitation is asked to show its user
/// the request's page ("approval needed: open …"); what the user does is
/// reported and decides nothing.
#[test]
fn a_client_with_url_elicitation_shows_its_user_the_request() {
    let db = TestDb::create("mcp_elicit");
    psql_direct(&db.name, "CREATE TABLE kept (x int)");
    let gw = gateway("[\"*\"]", "");
    let inbox = inbox(&gw);
    for (answer, reported) in [("accept", "accept"), ("decline", "decline")] {
        let session = run_json(
            Command::new("python3")
                .arg(driver("mcp_session.py"))
                .arg("http")
                .arg(mcp_url(&gw))
                .arg(AGENT_TOKEN)
                .arg(json!([query("DROP TABLE kept", &db.name)]).to_string())
                .env("MCP_ELICIT", answer),
        );
        let s = &calls(&session)[0]["structured"];
        assert_eq!(s["status"], "pending_approval", "{session}");
        assert_eq!(s["elicitation"], reported, "{s}");
        let id = s["request_id"].as_str().unwrap();
        let asked = &session["elicitations"][0];
        assert_eq!(asked["mode"], "url", "{asked}");
        assert_eq!(asked["elicitationId"], id, "{asked}");
        assert_eq!(
            asked["url"].as_str(),
            Some(format!("http://{inbox}/requests/{id}").as_str())
        );
        assert!(
            asked["message"]
                .as_str()
                .unwrap()
                .starts_with("Approval needed"),
            "{asked}"
        );
        // Accepting it approves nothing.
        let (_, request) = http(
            &inbox,
            "GET",
            &format!("/api/requests/{id}"),
            Some(DBA_TOKEN),
            "",
        );
        assert_eq!(request["state"], "pending", "{request}");
        assert!(table_exists(&db.name, "kept"));
    }
}

fn my_query(sql: &str, database: &str) -> Value {
    json!({"tool": "query", "args": {"sql": sql, "database": database, "server": "mysql"}})
}

#[test]
fn mysql_results_are_masked_typed_capped_and_described() {
    use support::mysql::{mariadb_direct, MyDb};
    let db = MyDb::create("mcpmask");
    mariadb_direct(
        &db.name,
        "CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(80), card VARCHAR(40), \
           n BIGINT UNSIGNED, blobby VARBINARY(8)); \
         INSERT INTO customers VALUES \
           (1, 'jane.doe@example.com', '4111 1111 1111 1111', 18446744073709551615, X'FF00'), \
           (2, 'contact: bob.smith@example.org', '5500 0000 0000 0004', 7, NULL); \
         CREATE TABLE orders (id INT PRIMARY KEY, customer INT, FOREIGN KEY (customer) REFERENCES customers (id)); \
         CREATE TABLE seq (id INT); \
         SET SESSION max_recursive_iterations = 10000; INSERT INTO seq WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 5000) SELECT i FROM g",
    );
    let gw = gateway("[\"*\"]", "max_rows = 100\n");
    let session = python_http(
        &gw,
        AGENT_TOKEN,
        json!([
            my_query("SELECT id, email, card, n, blobby FROM customers ORDER BY id", &db.name),
            {"tool": "describe_table", "args": {"table": "orders", "database": db.name, "server": "mysql"}},
            {"tool": "list_tables", "args": {"database": db.name, "server": "mysql"}},
            {"tool": "list_databases", "args": {"server": "mysql"}},
            my_query("SELECT id FROM seq ORDER BY id", &db.name),
            {"tool": "query", "args": {"sql": "SELECT id FROM seq ORDER BY id", "database": db.name, "server": "mysql", "max_rows": 3}},
            {"tool": "explain", "args": {"sql": "SELECT * FROM customers WHERE id = 1", "database": db.name, "server": "mysql"}},
            my_query("UPDATE customers SET n = 8 WHERE id = 2", &db.name),
            my_query("SELECT no_such_column FROM customers", &db.name),
            my_query("SELECT 1 AS `jane.doe@example.com`", &db.name),
            {"tool": "describe_table", "args": {"table": "nope", "database": db.name, "server": "mysql"}},
        ]),
    );
    let raw = session.to_string();
    for secret in [
        "jane.doe@example.com",
        "bob.smith@example.org",
        "4111 1111 1111 1111",
        "5500 0000 0000 0004",
    ] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
    let results = calls(&session);
    let s = &results[0]["structured"];
    assert_eq!(s["status"], "ok", "{}", results[0]);
    assert_eq!(s["row_count"], 2);
    assert_eq!(s["columns"][0], json!({"name": "id", "type": "int"}));
    assert_eq!(s["columns"][3]["type"], "bigint unsigned");
    assert_eq!(s["rows"][0][0], 1);
    assert_eq!(s["rows"][0][3], json!(18446744073709551615u64));
    assert_eq!(s["rows"][0][4], "\\xff00");
    assert_eq!(s["rows"][1][4], Value::Null);
    assert!(
        s["rows"][1][1]
            .as_str()
            .is_some_and(|v| v.starts_with("contact: ")),
        "{s}"
    );
    let described = &results[1]["structured"];
    assert_eq!(described["rows"][0][0], "id", "{described}");
    assert_eq!(described["rows"][0][4], "primary key", "{described}");
    assert!(
        described["rows"][1][4]
            .as_str()
            .is_some_and(|k| k.contains("foreign key: references") && k.contains(".customers(id)")),
        "{described}"
    );
    assert_eq!(
        results[2]["structured"]["rows"],
        json!([
            [db.name, "customers", "BASE TABLE"],
            [db.name, "orders", "BASE TABLE"],
            [db.name, "seq", "BASE TABLE"]
        ])
    );
    let listed = results[3]["structured"]["rows"].to_string();
    assert!(listed.contains(&db.name), "{listed}");
    assert!(!listed.contains("\"mysql\""), "{listed}");
    let capped = &results[4]["structured"];
    assert_eq!(capped["row_count"], 100, "{capped}");
    assert_eq!(capped["truncated"], true);
    assert_eq!(capped["truncated_by"], "max_rows");
    assert_eq!(
        results[5]["structured"]["rows"],
        json!([[1], [2], [3]]),
        "{}",
        results[5]
    );
    assert_eq!(results[6]["structured"]["status"], "ok", "{}", results[6]);
    assert_eq!(
        results[7]["structured"]["command"], "OK 1",
        "{}",
        results[7]
    );
    assert_eq!(
        mariadb_direct(&db.name, "SELECT n FROM customers WHERE id = 2"),
        "8"
    );
    assert_eq!(results[8]["is_error"], true);
    assert_eq!(results[8]["structured"]["code"], "42S22", "{}", results[8]);
    assert_eq!(results[9]["structured"]["status"], "ok", "{}", results[9]);
    assert_eq!(results[10]["is_error"], true);
    std::thread::sleep(Duration::from_millis(300));
    // Nothing of the session is left on the server once a call ends.
    let left = mariadb_direct(
        "",
        "SELECT count(*) FROM information_schema.processlist WHERE command <> 'Daemon' \
         AND info LIKE '%FROM seq%' AND info NOT LIKE '%processlist%'",
    );
    assert_eq!(left, "0");
    let audit = read_audit(&gw);
    assert!(audit.contains("\"server\":\"mysql\""), "{audit}");
}

#[test]
fn mysql_holds_refusals_and_other_databases_never_reach_the_server() {
    use support::mysql::{mariadb_direct, marker, GeneralLog, MyDb};
    let db = MyDb::create("mcpmine");
    let other = MyDb::create("mcpother");
    mariadb_direct(&db.name, "CREATE TABLE doomed (x INT)");
    mariadb_direct(
        &other.name,
        "CREATE TABLE secrets (v VARCHAR(40)); INSERT INTO secrets VALUES ('top')",
    );
    let log = GeneralLog::on();
    let mark = marker("mcpmy");
    let gw = gateway(&format!("[\"{}\"]", db.name), "");
    let inbox = inbox(&gw);
    let o = &other.name;
    let refused = [
        format!("GRANT SELECT ON doomed TO PUBLIC /* {mark}-1 */"),
        format!("SELEC garbage /* {mark}-2 */"),
        format!("SELECT 1; DROP TABLE doomed /* {mark}-3 */"),
        format!("SELECT * FROM {o}.secrets /* {mark}-4 */"),
        format!("SELECT (SELECT v FROM `{o}`.secrets) /* {mark}-5 */"),
        format!("USE {o} /* {mark}-6 */"),
        format!("SELECT * FROM doomed INTO OUTFILE '/tmp/{mark}' /* {mark}-7 */"),
    ];
    let mut list: Vec<Value> = refused.iter().map(|s| my_query(s, &db.name)).collect();
    list.push(my_query(&format!("SELECT 1 /* {mark}-ok */"), &db.name));
    list.push(my_query(&format!("SELECT 1 /* {mark}-8 */"), o));
    list.push(json!({"tool": "describe_table", "args": {"table": format!("{o}.secrets"), "database": db.name, "server": "mysql"}}));
    let drop = format!("DROP TABLE doomed /* {mark}-drop */");
    list.push(my_query(&drop, &db.name));
    let session = python_http(&gw, AGENT_TOKEN, Value::Array(list));
    let results = calls(&session);
    for (i, sql) in refused.iter().enumerate() {
        let status = results[i]["structured"]["status"]
            .as_str()
            .unwrap_or_default();
        assert!(
            status == "pending_approval" || status == "denied",
            "{sql} was not held or denied: {}",
            results[i]
        );
    }
    let n = refused.len();
    assert_eq!(results[n]["structured"]["status"], "ok", "{}", results[n]);
    assert_eq!(results[n + 1]["structured"]["status"], "denied");
    assert_eq!(results[n + 2]["structured"]["status"], "denied");
    let held = &results[n + 3]["structured"];
    assert_eq!(held["status"], "pending_approval", "{held}");
    let id = held["request_id"].as_str().expect("request id").to_string();
    assert!(log.contains(&format!("{mark}-ok")), "the log is a witness");
    for i in 1..=8 {
        assert!(
            !log.contains(&format!("{mark}-{i} ")),
            "statement {i} reached the server"
        );
    }
    assert!(!log.contains(&format!("{mark}-drop")));

    // Approved in the inbox, re-sent: it runs once.
    let (code, decided) = decide(&inbox, &id, "approve", "cleanup");
    assert_eq!(code, 200, "{decided}");
    let run = python_http(&gw, AGENT_TOKEN, json!([my_query(&drop, &db.name)]));
    let ran = &calls(&run)[0]["structured"];
    assert_eq!(ran["status"], "ok", "{run}");
    assert_eq!(ran["request_id"], id.as_str());
    assert_eq!(mariadb_direct(&db.name, "SHOW TABLES LIKE 'doomed'"), "");
    mariadb_direct(&db.name, "CREATE TABLE doomed (x INT)");
    let twice = python_http(&gw, AGENT_TOKEN, json!([my_query(&drop, &db.name)]));
    assert_eq!(calls(&twice)[0]["structured"]["status"], "pending_approval");
    assert_eq!(
        mariadb_direct(&db.name, "SHOW TABLES LIKE 'doomed'"),
        "doomed"
    );
}

#[test]
fn mysql_statement_timeout_stops_the_statement_on_the_server() {
    use support::mysql::{mariadb_direct, marker};
    let gw = gateway("[\"*\"]", "statement_timeout_secs = 1\n");
    let mark = marker("mcpsleep");
    let started = std::time::Instant::now();
    let session = python_http(
        &gw,
        AGENT_TOKEN,
        json!([my_query(&format!("SELECT SLEEP(30) /* {mark} */"), "test")]),
    );
    let result = &calls(&session)[0];
    assert!(started.elapsed() < Duration::from_secs(15), "{result}");
    // MariaDB's max_statement_time ends it with an error, or SLEEP
    // returns 1 when interrupted.
    let s = &result["structured"];
    assert!(
        s["status"] == "timeout" || s["rows"] == json!([[1]]),
        "{result}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let running = mariadb_direct(
        "",
        &format!(
            "SELECT count(*) FROM information_schema.processlist WHERE info LIKE '%{mark}%' \
             AND info NOT LIKE '%processlist%'"
        ),
    );
    assert_eq!(running, "0");
}
