//! Identities reloaded on SIGHUP with the real binary, psql and
//! PostgreSQL: an added approver decides at once, a removed one cannot,
//! a removed agent's open session carries on while new logins are
//! refused, a held statement keeps waiting through the reload and runs
//! when approved; a bad file changes nothing and its error names the key.

mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway::{psql_direct, Gateway, Options, TestDb, AGENT, AGENT_PASSWORD};
use support::inbox::{http, inbox};

const POLICY: &str = r#"
[[rule]]
name = "hold-ddl"
classes = ["ddl"]
action = "hold"
group = "dba"
quorum = 1
expiry = "60s"

[[rule]]
name = "allow-everyday"
classes = ["read", "write", "session"]
action = "allow"
"#;

fn approver(name: &str) -> String {
    format!(
        "\n[[identity]]\nname = \"{name}\"\nrole = \"approver\"\ngroups = [\"dba\"]\napi_token_hash = \"{}\"\n",
        airlock::hex::encode(blake3::hash(format!("{name}-token").as_bytes()).as_bytes())
    )
}

const LEAVER: &str =
    "\n[[identity]]\nname = \"leaver\"\nrole = \"agent\"\npassword = \"leaver-pw\"\n";

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

fn pending(inbox: &str, token: &str) -> Vec<Value> {
    let (status, list) = http(inbox, "GET", "/api/requests", Some(token), "");
    assert_eq!(status, 200, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

fn hangup(gateway: &Gateway) {
    Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .unwrap();
}

fn wait_for_log(gateway: &Gateway, says: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while gateway.stderr().matches(says).count() < times {
        assert!(Instant::now() < deadline, "{}", gateway.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_identities_without_dropping_holds_or_sessions() {
    let db = TestDb::create("identity_reload");
    let gateway = Gateway::start_with(Options {
        toml: format!(
            "[approval]\nenabled = true\n{}{}{LEAVER}",
            approver("dba1"),
            approver("olddba")
        ),
        policy: Some(POLICY.into()),
        ..Default::default()
    });
    let inbox = inbox(&gateway);
    let held = psql_spawn(
        &gateway,
        AGENT,
        AGENT_PASSWORD,
        &db.name,
        "CREATE TABLE reload_t (x int)",
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let id = loop {
        if let Some(r) = pending(&inbox, "olddba-token").first() {
            break r["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no request");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The leaver's session is open (and busy) across the reload.
    let busy = psql_spawn(
        &gateway,
        "leaver",
        "leaver-pw",
        &db.name,
        "SELECT pg_sleep(3); SELECT 'still here'",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while psql_direct(
        &db.name,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%'",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the leaver's session never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        http(&inbox, "GET", "/api/requests", Some("newdba-token"), "").0,
        401
    );

    // olddba and leaver out, newdba in.
    let config = gateway.dir.path().join("airlock.toml");
    let before = std::fs::read_to_string(&config).unwrap();
    let after = before
        .replace(&approver("olddba"), &approver("newdba"))
        .replace(LEAVER, "");
    assert_ne!(before, after);
    std::fs::write(&config, &after).unwrap();
    hangup(&gateway);
    wait_for_log(&gateway, "identities reloaded", 1);

    assert_eq!(
        http(&inbox, "GET", "/api/requests", Some("olddba-token"), "").0,
        401
    );
    let list = pending(&inbox, "newdba-token");
    assert_eq!(list.len(), 1, "the hold survived: {list:?}");
    assert_eq!(list[0]["id"], id.as_str());
    // The removed agent: its open session finishes, a new login is refused.
    let out = busy.wait_with_output().unwrap();
    assert!(
        out.status.success() && text(&out).contains("still here"),
        "{}",
        text(&out)
    );
    let again = psql_spawn(&gateway, "leaver", "leaver-pw", &db.name, "SELECT 1")
        .wait_with_output()
        .unwrap();
    assert!(!again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("password authentication failed"),
        "{}",
        text(&again)
    );

    // A bad file: refused with its key named; the identities stay.
    std::fs::write(
        &config,
        after.replace("role = \"approver\"", "role = \"boss\""),
    )
    .unwrap();
    hangup(&gateway);
    wait_for_log(&gateway, "identity reload failed", 1);
    assert!(
        gateway
            .stderr()
            .contains("airlock.toml: key `identity[0].role`"),
        "{}",
        gateway.stderr()
    );
    // A file without identities is refused too.
    let none = after
        .replace(&approver("dba1"), "")
        .replace(&approver("newdba"), "")
        .split("\n[[identity]]\nname = \"agent\"")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&config, none).unwrap();
    hangup(&gateway);
    wait_for_log(&gateway, "identity reload refused", 1);

    let (status, decided) = http(
        &inbox,
        "POST",
        &format!("/api/requests/{id}/approve"),
        Some("newdba-token"),
        "",
    );
    assert_eq!(status, 200, "{decided}");
    let out = held.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        psql_direct(
            &db.name,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'reload_t'"
        ),
        "1"
    );
}
