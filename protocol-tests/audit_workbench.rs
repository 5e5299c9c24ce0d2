//! The auditor's workbench against the real gateway, psql and PostgreSQL:
//!
//! * the inbox's session browser filters by identity, time, verdict,
//!   outcome, database and application (GET, bookmarkable), refuses bad
//!   values with a message, and is for auditors and admins only;
//! * the session list and a transcript download as CSV (read back by
//!   Python's `csv` module: quoting, formula prefixes, escaped control
//!   characters) and JSON lines (a transcript's lines are the log's);
//! * a request's page links to the replay at its hold record and the
//!   replay links back — over HTTP and in real Chromium;
//! * `audit export --format ocsf` of the log the gateway wrote: every
//!   event has the required attributes of its OCSF class and objects, as
//!   listed in `protocol-tests/ocsf/ocsf-1.3.0-required.json`.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway::{Gateway, Options, TestDb, AGENT, AGENT_PASSWORD};
use support::inbox::{exchange, http, inbox};

const POLICY: &str = r#"
[[rule]]
name = "hold-held-writes"
classes = ["write"]
objects = ["held_*"]
action = "hold"
group = "dba"
quorum = 1
expiry = "60s"

[[rule]]
name = "deny-grants"
classes = ["privilege"]
action = "deny"
reason = "grants go through a DBA"

[[rule]]
name = "allow-everyday"
classes = ["read", "write", "session", "ddl"]
action = "allow"
"#;

/// An approver and an auditor, each with an API token `<name>-token` and
/// the inbox password `<name>-web-pw`.
const PEOPLE: &[(&str, &str, &str)] = &[
    ("dba1", "approver", "[\"dba\"]"),
    ("auditor1", "auditor", "[]"),
];

fn gateway() -> Gateway {
    let mut toml = "[approval]\nenabled = true\n[audit]\ncheckpoint_every = 5\n".to_string();
    for (name, role, groups) in PEOPLE {
        toml.push_str(&format!(
            "\n[[identity]]\nname = \"{name}\"\nrole = \"{role}\"\ngroups = {groups}\napi_token_hash = \"{}\"\ninbox_password_hash = \"{}\"\n",
            airlock::hex::encode(blake3::hash(format!("{name}-token").as_bytes()).as_bytes()),
            airlock::identity::inbox_password_hash(&format!("{name}-web-pw")),
        ));
    }
    Gateway::start_with(Options {
        toml,
        policy: Some(POLICY.into()),
        ..Default::default()
    })
}

/// psql through the gateway as the agent, with an application name.
/// Each `;`-separated statement goes as its own query (`-c` each).
fn psql(gateway: &Gateway, database: &str, application: &str, sql: &str) -> Child {
    let (host, port) = gateway.addr.rsplit_once(':').unwrap();
    let mut command = Command::new("psql");
    command
        .args(["-X", "-A", "-t", "-h", host, "-p", port, "-U", AGENT])
        .args(["-d", database]);
    for statement in sql.split("; ") {
        command.args(["-c", statement]);
    }
    command
        .env("PGPASSWORD", AGENT_PASSWORD)
        .env("PGAPPNAME", application)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql")
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// What the scenario left in the log.
struct Scenario {
    gateway: Gateway,
    _db: TestDb,
    database: String,
    /// The request the held INSERT was approved under.
    request: String,
}

/// Application names as an agent may set them: one a spreadsheet would
/// run as a formula, with a terminal escape in it.
const HOSTILE_APP: &str = "=HYPERLINK(\"http://evil.example\",\"x\")\u{1b}[31m";

/// Three sessions of the agent: a hostile application name with a read
/// and a failing statement; a held INSERT approved by dba1 (application
/// `reporting`); a GRANT the policy denies (application `admin-tool`).
/// Plus a login with a wrong password.
fn scenario(label: &str) -> Scenario {
    let db = TestDb::create(label);
    let database = db.name.clone();
    support::gateway::psql_direct(&database, "CREATE TABLE held_t (x int)");
    let gateway = gateway();
    let inbox = inbox(&gateway);

    let out = finish(psql(
        &gateway,
        &database,
        HOSTILE_APP,
        "SELECT 1 AS one; SELECT * FROM no_such_table",
    ));
    assert!(out.contains("no_such_table"), "{out}");

    let held = psql(
        &gateway,
        &database,
        "reporting",
        "INSERT INTO held_t VALUES (7)",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let request = loop {
        let (status, list) = http(&inbox, "GET", "/api/requests", Some("dba1-token"), "");
        assert_eq!(status, 200, "{list}");
        if let Some(id) = list
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r["id"].as_str())
        {
            break id.to_string();
        }
        assert!(Instant::now() < deadline, "no request appeared");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (status, body) = http(
        &inbox,
        "POST",
        &format!("/api/requests/{request}/approve"),
        Some("dba1-token"),
        r#"{"reason": "looks fine"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let out = finish(held);
    assert!(out.contains("INSERT 0 1"), "{out}");

    let out = finish(psql(
        &gateway,
        &database,
        "admin-tool",
        "GRANT SELECT ON held_t TO PUBLIC",
    ));
    assert!(out.contains("deny-grants"), "{out}");

    let (host, port) = gateway.addr.rsplit_once(':').unwrap();
    let wrong = Command::new("psql")
        .args([
            "-X", "-h", host, "-p", port, "-U", AGENT, "-d", &database, "-c", "SELECT 1",
        ])
        .env("PGPASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert!(!wrong.status.success());

    // Session ends are written with the next batch: wait for all three.
    let deadline = Instant::now() + Duration::from_secs(15);
    while records(&gateway)
        .iter()
        .filter(|r| r["kind"] == "session_end")
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "session ends not logged");
        std::thread::sleep(Duration::from_millis(100));
    }
    Scenario {
        gateway,
        _db: db,
        database,
        request,
    }
}

fn segment_lines(gateway: &Gateway) -> Vec<String> {
    let dir = gateway.path("var/audit");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn records(gateway: &Gateway) -> Vec<Value> {
    segment_lines(gateway)
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The session whose start names `application`.
fn session_of(gateway: &Gateway, application: &str) -> String {
    records(gateway)
        .iter()
        .find(|r| r["kind"] == "session_start" && r["application"] == application)
        .and_then(|r| r["session"].as_str())
        .unwrap_or_else(|| panic!("no session of {application}"))
        .to_string()
}

fn web(addr: &str, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    exchange(addr, "GET", path, &cookie, "text/plain", "")
}

fn login(addr: &str, user: &str) -> String {
    let (status, head, body) = exchange(
        addr,
        "POST",
        "/login",
        "",
        "application/x-www-form-urlencoded",
        &format!("username={user}&password={user}-web-pw"),
    );
    assert_eq!(status, 303, "{body}");
    head.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// Sessions listed on a session-list page.
fn listed(page: &str) -> usize {
    page.matches("<tr class=\"session\">").count()
}

/// Parses CSV with Python's `csv` module: the rows, as JSON.
fn python_csv(text: &str) -> Vec<Vec<String>> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin, strict=True))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python's csv refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn header_of<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or("")
}

#[test]
fn the_session_browser_filters_downloads_and_links_requests_both_ways() {
    let s = scenario("workbench_http");
    let addr = inbox(&s.gateway);
    let server_path = s.gateway.dir.path().display().to_string();
    let hostile = session_of(&s.gateway, HOSTILE_APP);
    let reporting = session_of(&s.gateway, "reporting");
    let admin_tool = session_of(&s.gateway, "admin-tool");

    // Only auditors and admins: no login is sent to log in, an approver
    // is refused every view and download.
    let (status, head, _) = web(&addr, "/sessions", None);
    assert_eq!(status, 303, "{head}");
    let dba1 = login(&addr, "dba1");
    for path in [
        "/sessions".to_string(),
        "/sessions.csv".into(),
        "/sessions.jsonl".into(),
        format!("/sessions/{reporting}"),
        format!("/sessions/{reporting}/transcript.csv"),
        format!("/sessions/{reporting}/transcript.jsonl"),
    ] {
        let (status, _, body) = web(&addr, &path, Some(&dba1));
        assert_eq!(status, 403, "{path}: {body}");
    }
    // An approver's request page has no way into the replay.
    let (_, _, request_page) = web(&addr, &format!("/requests/{}", s.request), Some(&dba1));
    assert!(!request_page.contains("replay-link"), "{request_page}");

    let auditor = login(&addr, "auditor1");
    let get = |path: &str| {
        let (status, head, body) = web(&addr, path, Some(&auditor));
        assert!(
            !body.contains(&server_path),
            "{path} shows a server path: {body}"
        );
        (status, head, body)
    };

    // Every filter, alone and together; the form keeps what was given.
    let (status, _, all) = get("/sessions");
    assert_eq!(status, 200, "{all}");
    assert_eq!(listed(&all), 3, "{all}");
    assert!(all.contains("Sessions 1–3 of 3"), "{all}");
    let db = &s.database;
    for (query, expected) in [
        (
            "identity=agent".to_string(),
            vec![&hostile, &reporting, &admin_tool],
        ),
        ("identity=nobody".into(), vec![]),
        ("verdict=deny".into(), vec![&admin_tool]),
        ("verdict=hold".into(), vec![&reporting]),
        ("outcome=approved".into(), vec![&reporting]),
        // A denied statement is refused by Airlock, not the server.
        ("outcome=error".into(), vec![&hostile]),
        ("outcome=denied".into(), vec![]),
        (
            format!("database={db}"),
            vec![&hostile, &reporting, &admin_tool],
        ),
        ("database=elsewhere".into(), vec![]),
        ("application=reporting".into(), vec![&reporting]),
        ("application=report".into(), vec![]),
        ("since=1h".into(), vec![&hostile, &reporting, &admin_tool]),
        ("until=2000-01-01".into(), vec![]),
        (
            "since=2000-01-01&until=2999-12-31T23:59".into(),
            vec![&hostile, &reporting, &admin_tool],
        ),
        (
            format!("identity=agent&database={db}&verdict=deny&application=admin-tool"),
            vec![&admin_tool],
        ),
        // Empty fields are what a form sends for "any".
        (
            "identity=&verdict=&outcome=&application=reporting".into(),
            vec![&reporting],
        ),
    ] {
        let (status, _, page) = get(&format!("/sessions?{query}"));
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(listed(&page), expected.len(), "{query}: {page}");
        for id in expected {
            assert!(
                page.contains(&format!("/sessions/{id}\"")),
                "{query}: {page}"
            );
        }
        if expected_none(&page) {
            assert!(page.contains("No session matches"), "{query}: {page}");
        }
    }
    let (_, _, page) = get("/sessions?application=reporting&verdict=hold");
    assert!(
        page.contains(r#"id="filter-application" value="reporting""#),
        "{page}"
    );
    assert!(page.contains(r#"<option value="hold" selected>"#), "{page}");
    // Downloads keep the filters.
    assert!(
        page.contains(r#"href="/sessions.csv?verdict=hold&application=reporting""#)
            || page.contains(r#"href="/sessions.csv?application=reporting&verdict=hold""#),
        "{page}"
    );
    // The hostile application name is shown escaped, never as markup or
    // a raw escape character.
    assert!(!all.contains('\u{1b}'), "{all}");
    assert!(
        all.contains("=HYPERLINK(&quot;http://evil.example&quot;"),
        "{all}"
    );

    // Bad values: a 400 that says what is wrong, never a 500.
    for (query, says) in [
        ("verdict=maybe", "is not one of allow, hold, deny"),
        (
            "outcome=lost",
            "is not one of approved, denied, expired, withdrawn, error",
        ),
        ("since=soon", "is not a time"),
        ("until=2026-13-45", "is not a time"),
        ("since=2026-12-01&until=2026-11-01", "since is after until"),
        ("page=0", "is not a page number"),
        ("page=abc", "is not a page number"),
        ("page=99999999999999999999999", "is not a page number"),
        ("colour=red", "is not a filter"),
        ("identity=a&identity=b", "given twice"),
        ("identity=%1b%5B31m", "no control characters"),
        ("application=%E2%80%AEx%0A", "no control characters"),
    ] {
        let (status, _, page) = get(&format!("/sessions?{query}"));
        assert_eq!(status, 400, "{query}: {page}");
        assert!(page.contains(says), "{query}: {page}");
        assert!(page.contains("id=\"filter-error\""), "{query}: {page}");
    }
    let long = "x".repeat(201);
    let (status, _, page) = get(&format!("/sessions?identity={long}"));
    assert_eq!(status, 400, "{page}");
    let (status, _, body) = get("/sessions.csv?verdict=maybe");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is not one of"), "{body}");

    // The session list as CSV, read back by Python's csv module.
    let (status, head, csv) = get("/sessions.csv");
    assert_eq!(status, 200, "{csv}");
    assert!(
        header_of(&head, "content-type").starts_with("text/csv"),
        "{head}"
    );
    assert!(
        header_of(&head, "content-disposition")
            .contains("attachment; filename=\"airlock-sessions.csv\""),
        "{head}"
    );
    assert!(!csv.contains('\u{1b}'), "a raw escape in the CSV");
    let rows = python_csv(&csv);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let column = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    let app_row = rows
        .iter()
        .find(|r| r[column("session")] == hostile)
        .expect("the hostile session's row");
    // A formula is text: quoted, and the escape written visibly.
    assert_eq!(
        app_row[column("application")],
        "'=HYPERLINK(\"http://evil.example\",\"x\")\\x1b[31m"
    );
    assert_eq!(app_row[column("errors")], "1");
    let reporting_row = rows
        .iter()
        .find(|r| r[column("session")] == reporting)
        .unwrap();
    assert_eq!(reporting_row[column("requests")], s.request);
    assert_eq!(reporting_row[column("approved")], "1");
    assert_eq!(reporting_row[column("hold")], "1");
    let (_, _, csv) = get("/sessions.csv?verdict=deny");
    let rows = python_csv(&csv);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0], admin_tool);

    // And as JSON lines.
    let (status, head, jsonl) = get("/sessions.jsonl?outcome=approved");
    assert_eq!(status, 200);
    assert!(
        header_of(&head, "content-type").contains("ndjson"),
        "{head}"
    );
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{jsonl}");
    assert_eq!(lines[0]["session"], reporting.as_str());
    assert_eq!(lines[0]["requests"][0], s.request.as_str());

    // A transcript as JSON lines is the log's lines of that session, as written.
    let (status, _, transcript) = get(&format!("/sessions/{reporting}/transcript.jsonl"));
    assert_eq!(status, 200);
    let written: Vec<String> = segment_lines(&s.gateway)
        .into_iter()
        .filter(|l| l.contains(&format!("\"session\":\"{reporting}\"")))
        .collect();
    assert_eq!(transcript.lines().collect::<Vec<_>>(), written);
    assert!(
        transcript.contains("\"kind\":\"hold\"") && transcript.contains("\"kind\":\"decision\"")
    );
    // As CSV: one row per record, hostile text made inert.
    let (status, head, csv) = get(&format!("/sessions/{hostile}/transcript.csv"));
    assert_eq!(status, 200);
    assert!(
        header_of(&head, "content-disposition").contains(&format!("airlock-session-{hostile}.csv")),
        "{head}"
    );
    let rows = python_csv(&csv);
    let hostile_records = segment_lines(&s.gateway)
        .iter()
        .filter(|l| l.contains(&format!("\"session\":\"{hostile}\"")))
        .count();
    assert_eq!(rows.len(), hostile_records + 1, "{rows:?}");
    let kind = rows[0].iter().position(|c| c == "kind").unwrap();
    let sql = rows[0].iter().position(|c| c == "sql").unwrap();
    let code = rows[0].iter().position(|c| c == "code").unwrap();
    assert!(rows
        .iter()
        .any(|r| r[kind] == "statement" && r[sql] == "SELECT * FROM no_such_table"));
    assert!(rows
        .iter()
        .any(|r| r[kind] == "error" && r[code] == "42P01"));
    for (path, status_wanted) in [
        (format!("/sessions/{hostile}/transcript.pdf"), 404),
        ("/sessions/no-such-session/transcript.csv".to_string(), 404),
    ] {
        let (status, _, body) = get(&path);
        assert_eq!(status, status_wanted, "{path}: {body}");
    }

    // Request page → replay at the hold → request page.
    let (status, _, request_page) = get(&format!("/requests/{}", s.request));
    assert_eq!(status, 200);
    let replay_link = format!("/sessions/{reporting}?request={}", s.request);
    assert!(
        request_page.contains(&format!("id=\"replay-link\" href=\"{replay_link}\"")),
        "{request_page}"
    );
    let (status, head, _) = get(&replay_link);
    assert_eq!(status, 303, "{head}");
    assert_eq!(
        header_of(&head, "location"),
        format!("/sessions/{reporting}?page=1#request-{}", s.request)
    );
    let (status, _, replay) = get(&format!("/sessions/{reporting}?page=1"));
    assert_eq!(status, 200, "{replay}");
    assert!(
        replay.contains(&format!("id=\"request-{}\"", s.request)),
        "{replay}"
    );
    assert_eq!(
        replay
            .matches(&format!("href=\"/requests/{}\"", s.request))
            .count(),
        2,
        "the hold and the decision link to the request: {replay}"
    );
    assert!(
        replay.contains(&format!("href=\"/sessions/{reporting}/transcript.csv\"")),
        "{replay}"
    );
    // The list links each session's requests too.
    let (_, _, page) = get("/sessions?verdict=hold");
    assert!(
        page.contains(&format!("href=\"/requests/{}\"", s.request)),
        "{page}"
    );
    // Bad replay parameters.
    for (query, status_wanted, says) in [
        ("page=x", 400, "is not a page number"),
        ("pages=2", 400, "is not a replay parameter"),
        ("request=", 400, "give a request id"),
        (
            "request=no-such-request",
            404,
            "no hold record of request no-such-request",
        ),
    ] {
        let (status, _, page) = get(&format!("/sessions/{reporting}?{query}"));
        assert_eq!(status, status_wanted, "{query}: {page}");
        assert!(page.contains(says), "{query}: {page}");
    }

    // The index reads on: a new session appears without a restart.
    let out = finish(psql(&s.gateway, &s.database, "late-comer", "SELECT 2"));
    assert!(out.contains('2'), "{out}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, _, page) = get("/sessions?application=late-comer");
        if listed(&page) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new session never appeared: {page}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn expected_none(page: &str) -> bool {
    listed(page) == 0
}

/// Real Chromium: the auditor filters the list by application with the
/// form, opens the session, follows the hold to its request, follows the
/// request's replay link back to the hold, and downloads the filtered
/// list as CSV. Screenshots go to `target/tmp/workbench-browser/`.
#[test]
fn an_auditor_browses_filters_and_follows_a_request_in_a_browser() {
    let s = scenario("workbench_browser");
    let addr = inbox(&s.gateway);
    let reporting = session_of(&s.gateway, "reporting");
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("workbench-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/protocol-tests/drivers/node/audit_browser.js"
    );
    let out = Command::new("node")
        .arg(script)
        .arg(format!("http://{addr}"))
        .args(["auditor1", "auditor1-web-pw", "reporting"])
        .arg(&shots)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "browser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the browser's report");
    assert_eq!(report["rows"], 1, "{report}");
    assert!(
        report["list_url"].as_str().unwrap().ends_with(
            "/sessions?identity=&since=&until=&verdict=&outcome=&database=&application=reporting"
        ),
        "{report}"
    );
    assert_eq!(report["request"], s.request.as_str(), "{report}");
    assert!(
        report["replay_url"].as_str().unwrap().ends_with(&format!(
            "/sessions/{reporting}?page=1#request-{}",
            s.request
        )),
        "{report}"
    );
    assert_eq!(report["target_visible"], true, "{report}");
    let csv = report["csv"].as_str().unwrap();
    let rows = python_csv(csv);
    assert_eq!(rows.len(), 2, "{csv}");
    assert_eq!(rows[1][0], reporting);
    for name in ["sessions-filtered.png", "replay-at-request.png"] {
        let size = std::fs::metadata(shots.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 1000, "{name} was not saved");
    }
}

/// `audit export --format ocsf` of a log the gateway wrote: each event
/// has what its class and its objects require (the committed subset of
/// the OCSF 1.3.0 schema), `type_uid` and `category_uid` agree with the
/// class and activity, and every record that has an OCSF event is in the
/// export.
#[test]
fn the_ocsf_export_has_every_required_attribute_of_each_class() {
    let s = scenario("workbench_ocsf");
    let dir = s.gateway.path("var/audit");
    let out = Command::new(support::gateway::binary())
        .args(["audit", "export", "--format", "ocsf", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Kept for reading (docs/ocsf.md's examples are of this shape).
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ocsf-export.jsonl"),
        &out.stdout,
    );
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{} OCSF events", events.len())),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/protocol-tests/ocsf/ocsf-1.3.0-required.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut problems = Vec::new();
    for event in &events {
        check_event(&schema, event, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Each kind of record became its class's event.
    let log = records(&s.gateway);
    let count = |kind: &str| log.iter().filter(|r| r["kind"] == kind).count();
    let of = |class: u64, activity: u64| {
        events
            .iter()
            .filter(|e| e["class_uid"] == class && e["activity_id"] == activity)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(3002, 1).len(),
        count("session_start") + count("auth_failure")
    );
    assert_eq!(of(3002, 2).len(), count("session_end"));
    let datastore: Vec<&Value> = events.iter().filter(|e| e["class_uid"] == 6005).collect();
    assert_eq!(datastore.len(), count("statement"));
    assert_eq!(of(2004, 1).len(), count("hold"));
    assert_eq!(of(2004, 3).len(), count("decision"));
    let failure = events
        .iter()
        .find(|e| e["class_uid"] == 3002 && e["status_id"] == 2)
        .expect("the wrong password as a failed logon");
    assert_eq!(failure["user"]["name"], AGENT);
    let denied = datastore
        .iter()
        .find(|e| e["query_info"]["query_string"] == "GRANT SELECT ON held_t TO PUBLIC")
        .expect("the GRANT");
    assert_eq!(denied["status_id"], 2, "{denied}");
    assert_eq!(denied["activity_name"], "Privilege Change");
    assert_eq!(denied["database"]["name"], s.database.as_str());
    let held = datastore
        .iter()
        .find(|e| e["query_info"]["query_string"] == "INSERT INTO held_t VALUES (7)")
        .expect("the INSERT");
    assert_eq!(held["status_id"], 1, "it ran once approved: {held}");
    assert_eq!(held["status_detail"], "INSERT 0 1");
    assert_eq!(held["activity_id"], 5);
    let missing = datastore
        .iter()
        .find(|e| e["query_info"]["query_string"] == "SELECT * FROM no_such_table")
        .unwrap();
    assert_eq!(missing["status_code"], "42P01");
    let finding = &of(2004, 1)[0];
    assert_eq!(finding["finding_info"]["uid"], s.request.as_str());
    assert_eq!(
        finding["finding_info"]["analytic"]["name"],
        "hold-held-writes"
    );
    let closed = &of(2004, 3)[0];
    assert_eq!(closed["finding_info"]["uid"], s.request.as_str());
    assert!(closed["message"]
        .as_str()
        .unwrap()
        .contains("approved by dba1: looks fine"));
    // Every event traces back to its signed record.
    for e in &events {
        let seq = e["unmapped"]["airlock"]["seq"].as_u64().unwrap();
        let record = log.iter().find(|r| r["seq"] == seq).expect("its record");
        assert_eq!(e["unmapped"]["airlock"]["hash"], record["hash"]);
        assert_eq!(e["metadata"]["uid"], seq.to_string());
    }

    // A bad format is refused by name.
    let out = Command::new(support::gateway::binary())
        .args(["audit", "export", "--format", "cef", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cef"));
}

/// Checks `event` against the schema subset; problems are appended.
fn check_event(schema: &Value, event: &Value, problems: &mut Vec<String>) {
    let class = event["class_uid"].as_u64().unwrap_or(0);
    let Some(spec) = schema["classes"].get(class.to_string()) else {
        problems.push(format!("class {class} is not one Airlock emits: {event}"));
        return;
    };
    let mut missing = |what: String| problems.push(format!("{what} in {event}"));
    for name in schema["base"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .chain(spec["required"].as_array().unwrap())
    {
        let name = name.as_str().unwrap();
        if event.get(name).is_none_or(Value::is_null) {
            missing(format!("class {class}: required `{name}` missing"));
        }
    }
    for (name, kind) in schema["base"]["types"].as_object().unwrap() {
        let ok = match kind.as_str().unwrap() {
            "integer" => event[name].is_i64() || event[name].is_u64(),
            "string" => event[name].is_string(),
            _ => event[name].is_object(),
        };
        if !ok && !event[name].is_null() {
            missing(format!("`{name}` is not {kind}"));
        }
    }
    let activity = event["activity_id"].as_u64().unwrap_or(u64::MAX);
    if !spec["activity_ids"]
        .as_array()
        .unwrap()
        .contains(&Value::from(activity))
    {
        missing(format!(
            "activity_id {activity} is not one of class {class}"
        ));
    }
    if activity == 99 && event["activity_name"].as_str().unwrap_or("").is_empty() {
        missing("activity 99 without activity_name".into());
    }
    if event["type_uid"].as_u64() != Some(class * 100 + activity) {
        missing("type_uid is not class_uid * 100 + activity_id".into());
    }
    if event["category_uid"] != spec["category_uid"] {
        missing("category_uid is not the class's".into());
    }
    for key in ["severity_id", "status_id"] {
        if let Some(v) = event.get(key) {
            let allowed = spec["enums"][key]
                .as_array()
                .or(schema["base"]["enums"][key].as_array())
                .unwrap();
            if !allowed.contains(v) {
                missing(format!("{key} {v} is not in the enum"));
            }
        }
    }
    for group in spec["at_least_one"].as_array().unwrap() {
        let group: Vec<&str> = group
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if !group
            .iter()
            .any(|k| event.get(*k).is_some_and(|v| !v.is_null()))
        {
            missing(format!("class {class}: none of {group:?}"));
        }
    }
    // Objects, wherever the event has them.
    for (path, object) in schema["object_at"].as_object().unwrap() {
        let mut value = event;
        for part in path.split('.') {
            value = &value[part];
        }
        if value.is_null() {
            continue;
        }
        let spec = &schema["objects"][object.as_str().unwrap()];
        let values: Vec<&Value> = match value.as_array() {
            Some(a) => a.iter().collect(),
            None => vec![value],
        };
        for value in values {
            for name in spec["required"].as_array().unwrap() {
                let name = name.as_str().unwrap();
                if value.get(name).is_none_or(Value::is_null) {
                    missing(format!("`{path}` ({object}): required `{name}` missing"));
                }
            }
            for group in spec["at_least_one"].as_array().unwrap() {
                let group: Vec<&str> = group
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                if !group
                    .iter()
                    .any(|k| value.get(*k).is_some_and(|v| !v.is_null()))
                {
                    missing(format!("`{path}` ({object}): none of {group:?}"));
                }
            }
        }
    }
}
