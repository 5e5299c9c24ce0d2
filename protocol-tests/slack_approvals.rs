//! Deciding held statements from Slack, end to end: the real gateway, psql
//! and PostgreSQL, a Slack Web API played by a local HTTP server written
//! here, and interactivity callbacks signed exactly as Slack signs them.
//! A signed click approves and psql returns; unsigned, stale, unmapped,
//! outsider and self-approving clicks decide nothing and are audited; Deny
//! asks for a reason in a dialog; the posted message is edited when the
//! request is decided, expires or is withdrawn.

mod support;

use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::gateway::{psql_direct, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD};
use support::inbox::{exchange, http, inbox};

const SECRET: &str = "slack-signing-secret-for-tests";
const BOT_TOKEN: &str = "xoxb-test-bot-token";

const POLICY: &str = r#"
[[rule]]
name = "hold-ddl"
classes = ["ddl"]
action = "hold"
group = "dba"
quorum = 1
expiry = "60s"

[[rule]]
name = "hold-exports-briefly"
classes = ["export"]
action = "hold"
group = "dba"
quorum = 1
expiry = "2s"

[[rule]]
name = "allow-everyday"
classes = ["read", "write", "session"]
action = "allow"
"#;

/// (name, role, groups, Slack user). dba1 also sends statements.
const PEOPLE: &[(&str, &str, &str, &str)] = &[
    ("dba1", "approver", "[\"dba\"]", "UDBA1"),
    ("dba2", "admin", "[\"dba\"]", "UDBA2"),
    ("fin1", "approver", "[\"finance\"]", "UFIN1"),
    ("aud1", "auditor", "[]", "UAUD1"),
];

/// One call the gateway made to the fake Slack API.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    authorization: String,
    body: Value,
}

type Calls = Arc<Mutex<Vec<Call>>>;

/// The Slack Web API as the gateway uses it: every method answers
/// `ok`, chat.postMessage with a channel and a fresh `ts`.
fn fake_slack() -> (String, Calls) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let calls: Calls = Arc::new(Mutex::new(Vec::new()));
    let keep = calls.clone();
    std::thread::spawn(move || {
        let mut posted = 0u32;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 8192];
            let (head, body) = loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                data.extend_from_slice(&buf[..n]);
                let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&data[..end]).to_string();
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
            };
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let method = path.trim_start_matches("/api/").to_string();
            let authorization = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("authorization")
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let answer = if method == "chat.postMessage" {
                posted += 1;
                json!({"ok": true, "channel": body["channel"], "ts": format!("1700000000.{posted:06}")})
            } else {
                json!({"ok": true})
            }
            .to_string();
            keep.lock().unwrap().push(Call {
                method,
                authorization,
                body,
            });
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (addr, calls)
}

struct Setup {
    gateway: Gateway,
    inbox: String,
    calls: Calls,
    _secrets: tempfile::TempDir,
}

fn setup() -> Setup {
    let (slack, calls) = fake_slack();
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("bot-token");
    let secret = secrets.path().join("signing-secret");
    std::fs::write(&token, format!("{BOT_TOKEN}\n")).unwrap();
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let mut toml = format!(
        "[approval]\nenabled = true\n\
         [slack]\napi_url = \"http://{slack}/api\"\nbot_token_file = \"{}\"\nsigning_secret_file = \"{}\"\n\
         [[notify]]\ngroup = \"dba\"\nkind = \"slack\"\nchannel = \"CDBA\"\n",
        token.display(),
        secret.display()
    );
    for (name, role, groups, user) in PEOPLE {
        toml.push_str(&format!(
            "\n[[identity]]\nname = \"{name}\"\nrole = \"{role}\"\ngroups = {groups}\npassword = \"{name}-pw\"\nslack_user = \"{user}\"\napi_token_hash = \"{}\"\n{}",
            airlock::hex::encode(blake3::hash(format!("{name}-token").as_bytes()).as_bytes()),
            if *name == "dba1" { "database_login = true\n" } else { "" }
        ));
    }
    let gateway = Gateway::start_with(Options {
        toml,
        policy: Some(POLICY.into()),
        ..Default::default()
    });
    let inbox = inbox(&gateway);
    Setup {
        gateway,
        inbox,
        calls,
        _secrets: secrets,
    }
}

fn psql_spawn(gateway: &Gateway, user: &str, password: &str, database: &str, sql: &str) -> Child {
    let (host, port) = gateway.addr.rsplit_once(':').unwrap();
    Command::new("psql")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h", host, "-p", port, "-U", user, "-d", database, "-c", sql,
        ])
        .env("PGPASSWORD", password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run psql")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until a call satisfies `found`; returns it.
fn call_where(calls: &Calls, what: &str, found: impl Fn(&Call) -> bool) -> Call {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(c) = calls.lock().unwrap().iter().find(|c| found(c)) {
            return c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {what}: {:#?}",
            calls.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The message posted for the newest request not in `seen`: its request id
/// and `ts`.
fn posted(calls: &Calls, seen: &[&str]) -> (String, String, Value) {
    let call = call_where(calls, "chat.postMessage", |c| {
        c.method == "chat.postMessage" && !seen.iter().any(|s| c.body.to_string().contains(s))
    });
    let buttons = &call.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap()["elements"];
    let id = buttons[0]["value"].as_str().unwrap().to_string();
    // The fake API numbers its posts in order.
    let number = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .position(|c| c.body == call.body)
        .unwrap()
        + 1;
    let ts = format!("1700000000.{number:06}");
    (id, ts, call.body)
}

/// A `block_actions` payload: `user` clicked `action` on request `id`.
fn click(user: &str, action: &str, id: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase()},
        "trigger_id": format!("trigger-{user}-{id}"),
        "channel": {"id": "CDBA"},
        "container": {"type": "message", "channel_id": "CDBA", "message_ts": "1700000000.000001"},
        "actions": [{"action_id": action, "block_id": "airlock_decide", "value": id, "type": "button"}],
    })
}

/// The Deny dialog sent with `reason`, from `view` as views.open got it.
fn deny_submission(user: &str, view: &Value, reason: &str) -> Value {
    json!({
        "type": "view_submission",
        "user": {"id": user},
        "view": {
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}},
        },
    })
}

/// The form body Slack posts: `payload=<JSON>`.
fn form(payload: &Value) -> String {
    let json = payload.to_string();
    let mut out = String::from("payload=");
    for b in json.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Posts `body` to the callback with the given timestamp and signature
/// headers (`None` leaves a header out).
fn callback_raw(
    inbox: &str,
    body: &str,
    timestamp: Option<u64>,
    signature: Option<&str>,
) -> (u16, String) {
    let mut headers = String::new();
    if let Some(t) = timestamp {
        headers.push_str(&format!("X-Slack-Request-Timestamp: {t}\r\n"));
    }
    if let Some(s) = signature {
        headers.push_str(&format!("X-Slack-Signature: {s}\r\n"));
    }
    let (status, _, body) = exchange(
        inbox,
        "POST",
        "/slack/interactions",
        &headers,
        "application/x-www-form-urlencoded",
        body,
    );
    (status, body)
}

/// A callback signed as Slack signs it, now.
fn callback(inbox: &str, payload: &Value) -> (u16, String) {
    let body = form(payload);
    let t = now();
    let signature = airlock::inbox::slack::sign(SECRET, t, body.as_bytes());
    callback_raw(inbox, &body, Some(t), Some(&signature))
}

fn request(inbox: &str, id: &str) -> Value {
    http(
        inbox,
        "GET",
        &format!("/api/requests/{id}"),
        Some("dba1-token"),
        "",
    )
    .1
}

/// The ephemeral note Slack user `user` got whose text contains `says`.
fn told(calls: &Calls, user: &str, says: &str) -> String {
    call_where(calls, &format!("a note to {user} saying {says}"), |c| {
        c.method == "chat.postEphemeral"
            && c.body["user"] == user
            && c.body["text"].as_str().unwrap_or("").contains(says)
    })
    .body["text"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The audit log's `decision_refused` records: (user, request, reason).
fn refusals_logged(dir: &std::path::Path) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    airlock::audit::read::for_each(&dir.join("var/audit"), |_, r| {
        if r["kind"] == "decision_refused" {
            assert_eq!(r["via"], "slack", "{r:?}");
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            found.push((s("user"), s("request"), s("reason")));
        }
        true
    })
    .unwrap();
    found
}

fn decisions_logged(dir: &std::path::Path, id: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    airlock::audit::read::for_each(&dir.join("var/audit"), |_, r| {
        if r["kind"] == "decision" && r["request"] == id {
            found.push((
                r["verdict"].as_str().unwrap_or("").to_string(),
                r["approver"].as_str().unwrap_or("").to_string(),
            ));
        }
        true
    })
    .unwrap();
    found
}

fn table_exists(database: &str, table: &str) -> bool {
    psql_direct(
        database,
        &format!("SELECT count(*) FROM pg_tables WHERE tablename = '{table}'"),
    ) == "1"
}

/// The newest chat.update of message `ts` whose text contains `says`.
fn updated(calls: &Calls, ts: &str, says: &str) -> Value {
    call_where(calls, &format!("chat.update of {ts} saying {says}"), |c| {
        c.method == "chat.update" && c.body["ts"] == ts && c.body.to_string().contains(says)
    })
    .body
}

#[test]
fn a_signed_slack_click_approves_and_forged_or_unentitled_clicks_decide_nothing() {
    let db = TestDb::create("slack_approve");
    let mut s = setup();
    let psql = psql_spawn(
        &s.gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE slack_t (x int)",
    );
    let (id, ts, message) = posted(&s.calls, &[]);
    let post = call_where(&s.calls, "the post", |c| c.method == "chat.postMessage");
    assert_eq!(post.authorization, format!("Bearer {BOT_TOKEN}"));
    assert_eq!(message["channel"], "CDBA");
    let shown = message.to_string();
    assert!(
        shown.contains("CREATE TABLE slack_t")
            && shown.contains("airlock_approve")
            && shown.contains("airlock_deny")
            && shown.contains(&format!("/requests/{id}")),
        "{shown}"
    );

    // Forged, replayed-late and unsigned callbacks: 401, nothing decided.
    let body = form(&click("UDBA2", "airlock_approve", &id));
    let t = now();
    let good = airlock::inbox::slack::sign(SECRET, t, body.as_bytes());
    let forged = airlock::inbox::slack::sign("not-the-secret", t, body.as_bytes());
    let stale = now() - 301;
    let stale_sig = airlock::inbox::slack::sign(SECRET, stale, body.as_bytes());
    let tampered = form(&click("UDBA2", "airlock_approve", &format!("{id} ")));
    for (what, body, t, sig) in [
        (
            "wrong secret",
            body.as_str(),
            Some(t),
            Some(forged.as_str()),
        ),
        (
            "stale",
            body.as_str(),
            Some(stale),
            Some(stale_sig.as_str()),
        ),
        ("no signature", body.as_str(), Some(t), None),
        ("no timestamp", body.as_str(), None, Some(good.as_str())),
        (
            "other body",
            tampered.as_str(),
            Some(t),
            Some(good.as_str()),
        ),
        ("garbage", body.as_str(), Some(t), Some("v0=zz")),
    ] {
        let (status, said) = callback_raw(&s.inbox, body, t, sig);
        assert_eq!(status, 401, "{what}: {said}");
    }
    // Signed, but by people who may not decide it.
    assert_eq!(
        callback(&s.inbox, &click("UNOBODY", "airlock_approve", &id)).0,
        200
    );
    told(&s.calls, "UNOBODY", "not an Airlock approver");
    callback(&s.inbox, &click("UFIN1", "airlock_approve", &id));
    told(&s.calls, "UFIN1", "members of group \"dba\"");
    callback(&s.inbox, &click("UAUD1", "airlock_approve", &id));
    told(&s.calls, "UAUD1", "Auditors read requests");
    callback(&s.inbox, &click("UFIN1", "airlock_deny", &id));
    told(&s.calls, "UFIN1", "members of group");
    assert!(!s
        .calls
        .lock()
        .unwrap()
        .iter()
        .any(|c| c.method == "views.open"));
    assert_eq!(request(&s.inbox, &id)["state"], "pending");
    assert!(!table_exists(&db.name, "slack_t"));

    // The real thing.
    let (status, _) = callback(&s.inbox, &click("UDBA2", "airlock_approve", &id));
    assert_eq!(status, 200);
    let out = psql.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(table_exists(&db.name, "slack_t"));
    let after = updated(&s.calls, &ts, "Approved by dba2");
    assert_eq!(after["channel"], "CDBA");
    assert!(!after.to_string().contains("airlock_approve"), "{after}");
    updated(&s.calls, &ts, "ran: CREATE TABLE");
    // A second click on an old message: the request has ended.
    callback(&s.inbox, &click("UDBA1", "airlock_approve", &id));
    told(&s.calls, "UDBA1", "already approved");

    s.gateway.terminate(Duration::from_secs(10));
    let refusals = refusals_logged(s.gateway.dir.path());
    let reasons: Vec<&str> = refusals.iter().map(|r| r.2.as_str()).collect();
    let unverified = reasons
        .iter()
        .filter(|r| r.starts_with("unverified Slack callback"))
        .count();
    assert_eq!(unverified, 6, "{refusals:#?}");
    assert!(reasons.iter().any(|r| r.contains("five minutes")));
    for (user, says) in [
        ("slack:UNOBODY", "not an Airlock approver"),
        ("slack:UFIN1 (fin1)", "members of group"),
        ("slack:UAUD1 (aud1)", "Auditors read requests"),
        ("slack:UDBA1 (dba1)", "already approved"),
    ] {
        assert!(
            refusals
                .iter()
                .any(|r| r.0 == user && r.1 == id && r.2.contains(says)),
            "{user}: {refusals:#?}"
        );
    }
    assert_eq!(
        decisions_logged(s.gateway.dir.path(), &id),
        [("approved".to_string(), "dba2".to_string())]
    );
}

#[test]
fn deny_from_slack_needs_a_reason_and_nobody_decides_their_own_request() {
    let db = TestDb::create("slack_deny");
    let mut s = setup();
    // dba1 sends the statement themself.
    let psql = psql_spawn(
        &s.gateway,
        "dba1",
        "dba1-pw",
        &db.name,
        "CREATE TABLE denied_t (x int)",
    );
    let (id, ts, _) = posted(&s.calls, &[]);
    callback(&s.inbox, &click("UDBA1", "airlock_approve", &id));
    told(&s.calls, "UDBA1", "own request");
    callback(&s.inbox, &click("UDBA1", "airlock_deny", &id));
    assert_eq!(
        s.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == "chat.postEphemeral" && c.body["user"] == "UDBA1")
            .count(),
        2,
        "the deny click is refused before any dialog"
    );
    assert_eq!(request(&s.inbox, &id)["state"], "pending");

    // Someone else: Deny opens the reason dialog.
    callback(&s.inbox, &click("UDBA2", "airlock_deny", &id));
    let open = call_where(&s.calls, "views.open", |c| c.method == "views.open");
    assert_eq!(open.body["trigger_id"], format!("trigger-UDBA2-{id}"));
    let view = open.body["view"].clone();
    assert!(view.to_string().contains("CREATE TABLE denied_t"), "{view}");
    // A blank reason keeps the dialog open with the problem shown.
    let (status, said) = callback(&s.inbox, &deny_submission("UDBA2", &view, "   "));
    assert_eq!(status, 200);
    let said: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(said["response_action"], "errors", "{said}");
    assert!(said["errors"]["reason"]
        .as_str()
        .unwrap()
        .contains("needs a reason"));
    // The dialog sent by someone not entitled, or unsigned: refused.
    let (_, said) = callback(&s.inbox, &deny_submission("UFIN1", &view, "no"));
    assert!(said.contains("members of group"), "{said}");
    let body = form(&deny_submission("UDBA2", &view, "forged"));
    assert_eq!(
        callback_raw(&s.inbox, &body, Some(now()), Some("v0=00")).0,
        401
    );
    assert_eq!(request(&s.inbox, &id)["state"], "pending");

    let (status, said) = callback(
        &s.inbox,
        &deny_submission("UDBA2", &view, "not on a Friday"),
    );
    assert_eq!((status, said.as_str()), (200, ""), "the dialog closes");
    let out = psql.wait_with_output().unwrap();
    let said = text(&out);
    assert!(
        !out.status.success() && said.contains("dba2") && said.contains("not on a Friday"),
        "{said}"
    );
    assert!(!table_exists(&db.name, "denied_t"));
    let after = updated(&s.calls, &ts, "Denied by dba2: not on a Friday");
    assert!(!after.to_string().contains("airlock_deny"), "{after}");

    s.gateway.terminate(Duration::from_secs(10));
    let refusals = refusals_logged(s.gateway.dir.path());
    assert_eq!(
        refusals
            .iter()
            .filter(|r| r.0 == "slack:UDBA1 (dba1)" && r.2.contains("own request"))
            .count(),
        2,
        "{refusals:#?}"
    );
    assert!(refusals
        .iter()
        .any(|r| r.0 == "slack:UDBA2 (dba2)" && r.2.contains("needs a reason")));
    assert_eq!(
        decisions_logged(s.gateway.dir.path(), &id),
        [("denied".to_string(), "dba2".to_string())]
    );
}

#[test]
fn slack_messages_show_expired_and_withdrawn_requests() {
    let db = TestDb::create("slack_ended");
    psql_direct(&db.name, "CREATE TABLE src (x int)");
    let s = setup();
    // An export held for two seconds, with nobody deciding.
    let psql = psql_spawn(
        &s.gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "COPY src TO STDOUT",
    );
    let (expired, expired_ts, _) = posted(&s.calls, &[]);
    let out = psql.wait_with_output().unwrap();
    assert!(text(&out).contains("expired"), "{}", text(&out));
    let after = updated(&s.calls, &expired_ts, "Expired");
    assert!(!after.to_string().contains("airlock_approve"), "{after}");

    // A held statement whose client goes away.
    let mut psql = psql_spawn(
        &s.gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE gone_t (x int)",
    );
    let (withdrawn, withdrawn_ts, _) = posted(&s.calls, &["COPY src"]);
    assert_ne!(withdrawn, expired);
    psql.kill().unwrap();
    let _ = psql.wait();
    let after = updated(&s.calls, &withdrawn_ts, "Withdrawn");
    assert!(!after.to_string().contains("airlock_approve"), "{after}");
    // Clicking the old buttons now is refused as ended.
    callback(&s.inbox, &click("UDBA2", "airlock_approve", &withdrawn));
    told(&s.calls, "UDBA2", "withdrawn");
    assert_eq!(request(&s.inbox, &withdrawn)["state"], "withdrawn");
}
