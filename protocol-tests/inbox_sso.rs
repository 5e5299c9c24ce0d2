//! Single sign-on to the inbox against a real OpenID Connect provider: the
//! certified `oidc-provider` package, run by node
//! (`drivers/node/oidc_provider.mjs`) on an ephemeral port. Real Chromium
//! signs in through the provider's form and approves a hold; an HTTP client
//! with a cookie jar walks the same redirects for the refusals: ID tokens
//! tampered with, signed by another key or by none, expired, for another
//! issuer or audience or nonce; a state from another browser or used twice;
//! people the configuration does not map; self-approval.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway::{Gateway, Options, TestDb, AGENT, AGENT_PASSWORD};
use support::inbox::{exchange, http, inbox};

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

const CLIENT_SECRET: &str = "airlock-test-client-secret";

/// The identity provider, killed on drop.
struct Idp {
    child: Child,
    issuer: String,
    /// Holds the client secret file and the provider's log.
    dir: tempfile::TempDir,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    fn start() -> Idp {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/protocol-tests/drivers/node/oidc_provider.mjs"
        );
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("provider.log")).unwrap();
        let mut child = Command::new("node")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("run node");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout
            .read_line(&mut line)
            .expect("the provider's first line");
        // Whatever else it prints is read, so that it never writes to a
        // closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let said: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "the provider did not start: {}",
                std::fs::read_to_string(dir.path().join("provider.log")).unwrap_or_default()
            )
        });
        std::fs::write(
            dir.path().join("client-secret"),
            format!("{CLIENT_SECRET}\n"),
        )
        .unwrap();
        Idp {
            child,
            issuer: said["issuer"].as_str().unwrap().to_string(),
            dir,
        }
    }

    fn control(&self, path: &str) {
        let status = client(false)
            .post(format!("{}{path}", self.issuer))
            .send()
            .expect("the provider's control")
            .status();
        assert!(status.is_success(), "{path}: {status}");
    }

    /// The next login completes itself as `user`; `mode` alters the next
    /// ID token.
    fn next(&self, user: &str, mode: Option<&str>) {
        self.control(&format!("/__test/next?user={user}"));
        if let Some(mode) = mode {
            self.control(&format!("/__test/next?mode={mode}"));
        }
    }
}

/// Approver dba1 (signs in as the provider's `dora`, by subject; also
/// sends statements), admin dba2 (by verified email), and rules: group
/// `db-approvers` approves for `dba`, `db-readers` audits.
fn gateway(idp: &Idp, issuer: &str) -> (Gateway, String) {
    let toml = format!(
        r#"[approval]
enabled = true

[inbox]
listen = "127.0.0.1:0"

[inbox.oidc]
issuer = "{issuer}"
client_id = "airlock"
client_secret_file = "{secret}"
scopes = ["email", "profile", "groups"]
label = "Test IdP"

[[inbox.oidc.map]]
claim_group = "db-approvers"
role = "approver"
groups = ["dba"]

[[inbox.oidc.map]]
claim_group = "db-readers"
role = "auditor"

[[identity]]
name = "dba1"
role = "approver"
groups = ["dba"]
password = "dba1-pw"
database_login = true
oidc_subject = "dora-sub"

[[identity]]
name = "dba2"
role = "admin"
groups = ["dba"]
oidc_email = "dba2@example.com"
database_login = false
api_token_hash = "{token}"
"#,
        secret = idp.dir.path().join("client-secret").display(),
        token = airlock::hex::encode(blake3::hash(b"dba2-token").as_bytes()),
    );
    let gateway = Gateway::start_with(Options {
        toml,
        policy: Some(POLICY.into()),
        ..Default::default()
    });
    let inbox = inbox(&gateway);
    idp.control(&format!(
        "/__test/client?redirect_uri=http://{inbox}/login/oidc/callback"
    ));
    (gateway, inbox)
}

/// An HTTP client with a cookie jar that follows redirects, or stops at
/// the provider's redirect back to the inbox (`stop_at_callback`).
fn client(stop_at_callback: bool) -> reqwest::blocking::Client {
    let policy = if stop_at_callback {
        reqwest::redirect::Policy::custom(|a| {
            if a.url().path() == "/login/oidc/callback" {
                a.stop()
            } else {
                a.follow()
            }
        })
    } else {
        reqwest::redirect::Policy::limited(10)
    };
    reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(policy)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Signs in as `user` through the provider; the callback's status and
/// page, and the client with whatever session it got.
fn sign_in(
    inbox: &str,
    idp: &Idp,
    user: &str,
    mode: Option<&str>,
) -> (u16, String, reqwest::blocking::Client) {
    idp.next(user, mode);
    let c = client(false);
    let r = c
        .get(format!("http://{inbox}/login/oidc"))
        .send()
        .expect("sign in");
    let status = r.status().as_u16();
    (status, r.text().unwrap(), c)
}

/// Who the inbox says is signed in, or `None` when it sends to /login.
fn signed_in_as(inbox: &str, c: &reqwest::blocking::Client) -> Option<String> {
    let r = c.get(format!("http://{inbox}/")).send().unwrap();
    if r.url().path() == "/login" {
        return None;
    }
    let page = r.text().unwrap();
    let at = page.find("Log out ")? + "Log out ".len();
    Some(page[at..].split('<').next()?.to_string())
}

fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_string()
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

/// The pending request for `sql`, once it appears.
fn pending(inbox: &str, sql: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, list) = http(inbox, "GET", "/api/requests", Some("dba2-token"), "");
        assert_eq!(status, 200, "{list}");
        if let Some(r) = list
            .as_array()
            .and_then(|a| a.iter().find(|r| r["sql"].as_str() == Some(sql)))
        {
            return r.clone();
        }
        assert!(Instant::now() < deadline, "no request appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn request(inbox: &str, id: &str) -> Value {
    http(
        inbox,
        "GET",
        &format!("/api/requests/{id}"),
        Some("dba2-token"),
        "",
    )
    .1
}

/// A vote through the web form, as `c`'s session.
fn vote(inbox: &str, c: &reqwest::blocking::Client, id: &str, verdict: &str) -> (u16, String) {
    let page = c
        .get(format!("http://{inbox}/requests/{id}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let r = c
        .post(format!("http://{inbox}/requests/{id}/decide"))
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("verdict", verdict),
            ("reason", "through single sign-on"),
        ])
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().unwrap())
}

/// Real Chromium opens the inbox, signs in at the provider's own form as
/// alice (group `db-approvers`), watches the hold arrive and approves it;
/// psql gets its result and the vote is alice's. Screenshots go to
/// `target/tmp/inbox-sso/`.
#[test]
fn a_browser_signs_in_through_the_provider_and_approves_a_hold() {
    let db = TestDb::create("sso_browser");
    let idp = Idp::start();
    let (gateway, inbox) = gateway(&idp, &idp.issuer);
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inbox-sso");
    std::fs::create_dir_all(&shots).unwrap();
    for name in [
        "login-sso.png",
        "provider-login.png",
        "pending-list.png",
        "request-page.png",
    ] {
        let _ = std::fs::remove_file(shots.join(name));
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/protocol-tests/drivers/node/inbox_browser.js"
    );
    let mut browser = Command::new("node")
        .arg(script)
        .arg(format!("http://{inbox}"))
        .args(["alice", "-"])
        .arg(&shots)
        .arg("approve")
        .env("SSO_PASSWORD", "alice-idp-pw")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    let stderr = browser.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(l) if l == "ready" => break,
            Ok(l) => said.push_str(&format!("{l}\n")),
            Err(_) => panic!("the browser did not get ready: {said}"),
        }
    }
    assert!(said.contains("Log out sso:alice@example.com"), "{said}");
    let sql = "CREATE TABLE sso_approved (x int)";
    let psql = psql_spawn(&gateway, AGENT, AGENT_PASSWORD, &db.name, sql);
    let out = browser.wait_with_output().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(out.status.success(), "browser: {}", rest.join("\n"));
    let report: Value = serde_json::from_slice(&out.stdout).expect("the browser's report");
    let done = psql.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let r = request(&inbox, report["request"].as_str().unwrap());
    assert_eq!(r["state"], "approved", "{r}");
    assert_eq!(r["votes"][0]["approver"], "sso:alice@example.com", "{r}");
    for name in [
        "login-sso.png",
        "provider-login.png",
        "pending-list.png",
        "request-page.png",
    ] {
        let size = std::fs::metadata(shots.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(size > 1000, "{name} was not saved");
    }
}

/// Every ID token the gateway must not trust opens no session; the same
/// sign-in without alteration does.
#[test]
fn id_tokens_that_do_not_verify_open_no_session() {
    let idp = Idp::start();
    let (_gateway, inbox) = gateway(&idp, &idp.issuer);
    let (status, page, c) = sign_in(&inbox, &idp, "alice", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        signed_in_as(&inbox, &c).as_deref(),
        Some("sso:alice@example.com")
    );
    for (mode, why) in [
        (
            "tamper",
            "Signature verification failed: Crypto error: bad signature",
        ),
        (
            "foreign-key",
            "Signature verification failed: Crypto error: bad signature",
        ),
        (
            "alg-none",
            "Signature verification failed: No signature found",
        ),
        ("hs256", "Disallowed signature algorithm: algorithm `HS256`"),
        ("expired", "Expired: ID token expired"),
        ("wrong-issuer", "Invalid issuer"),
        (
            "wrong-audience",
            "Invalid audiences: must contain `airlock`",
        ),
        ("wrong-nonce", "Invalid nonce: nonce mismatch"),
    ] {
        // mallory would be refused anyway: the tampered token claims alice.
        let user = if mode == "tamper" { "mallory" } else { "alice" };
        let (status, page, c) = sign_in(&inbox, &idp, user, Some(mode));
        assert_eq!(status, 401, "{mode}: {page}");
        assert!(
            page.contains(&format!("the ID token was refused: {why}"))
                || (mode == "hs256" && page.contains(why)),
            "{mode}: {page}"
        );
        assert_eq!(signed_in_as(&inbox, &c), None, "{mode}");
    }
}

/// The state sends one browser off and takes that browser back, once: a
/// callback from another browser, an altered state or a replay is refused.
#[test]
fn the_state_binds_a_sign_in_to_one_browser_and_one_use() {
    let idp = Idp::start();
    let (_gateway, inbox) = gateway(&idp, &idp.issuer);
    idp.next("alice", None);
    let a = client(true);
    let r = a.get(format!("http://{inbox}/login/oidc")).send().unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        back.starts_with(&format!("http://{inbox}/login/oidc/callback?")),
        "{back}"
    );
    let state = back
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .unwrap()
        .to_string();

    // Another browser (an attacker planting their own code) is refused.
    let b = client(false);
    let r = b.get(&back).send().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("not started in this browser"));
    assert_eq!(signed_in_as(&inbox, &b), None);

    // The right browser's cookie with the state changed is refused.
    let path = back.trim_start_matches(&format!("http://{inbox}"));
    let altered = path.replace(&format!("state={state}"), "state=forged");
    let (status, _, body) = exchange(
        &inbox,
        "GET",
        &altered,
        &format!("Cookie: airlock_oidc={state}\r\n"),
        "text/plain",
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not started in this browser"), "{body}");

    // The right browser and state: signed in.
    let r = a.get(&back).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        signed_in_as(&inbox, &a).as_deref(),
        Some("sso:alice@example.com")
    );

    // The same answer again, with the state cookie put back: used up.
    let (status, _, body) = exchange(
        &inbox,
        "GET",
        path,
        &format!("Cookie: airlock_oidc={state}\r\n"),
        "text/plain",
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("expired or was already used"), "{body}");

    // A provider's error answer and a missing code open nothing either.
    let (status, _, body) = exchange(
        &inbox,
        "GET",
        &format!("/login/oidc/callback?error=access_denied&state={state}"),
        &format!("Cookie: airlock_oidc={state}\r\n"),
        "text/plain",
        "",
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("access_denied"), "{body}");

    // An answer naming another issuer (RFC 9207) is refused.
    let (status, _, body) = exchange(
        &inbox,
        "GET",
        &format!("/login/oidc/callback?code=x&state={state}&iss=http%3A%2F%2Fevil.example"),
        &format!("Cookie: airlock_oidc={state}\r\n"),
        "text/plain",
        "",
    );
    assert_eq!(status, 401, "{body}");
}

/// A gateway configured with an issuer the provider does not answer for
/// sends nobody off to sign in.
#[test]
fn a_provider_that_is_not_the_configured_issuer_is_refused() {
    let idp = Idp::start();
    // Same server, other name: the discovery document names 127.0.0.1.
    let other = idp.issuer.replace("127.0.0.1", "localhost");
    let (_gateway, inbox) = gateway(&idp, &other);
    idp.next("alice", None);
    let c = client(false);
    let r = c.get(format!("http://{inbox}/login/oidc")).send().unwrap();
    assert_eq!(r.status().as_u16(), 502);
    assert_eq!(r.url().host_str(), Some("127.0.0.1"));
    let page = r.text().unwrap();
    assert!(page.contains("unexpected issuer URI"), "{page}");
    assert_eq!(signed_in_as(&inbox, &c), None);
}

/// Only what the configuration maps opens a session: powerful-sounding
/// groups and an unverified email get nothing; a verified email and a
/// subject reach their identities; a rule's auditor reads but does not
/// decide; a rule's approver decides for the group the rule names; and an
/// identity signed in by SSO still cannot approve its own statement.
#[test]
fn only_mapped_people_decide_and_never_their_own_requests() {
    let db = TestDb::create("sso_mapping");
    let idp = Idp::start();
    let (gateway, inbox) = gateway(&idp, &idp.issuer);

    for who in ["mallory", "eve"] {
        let (status, page, c) = sign_in(&inbox, &idp, who, None);
        assert_eq!(status, 403, "{who}: {page}");
        assert!(page.contains("grants that account nothing"), "{page}");
        assert_eq!(signed_in_as(&inbox, &c), None, "{who}");
    }
    let (status, _, erin) = sign_in(&inbox, &idp, "erin", None);
    assert_eq!(status, 200);
    assert_eq!(signed_in_as(&inbox, &erin).as_deref(), Some("dba2"));

    // An agent's statement: the auditor reads it and cannot decide it.
    let sql = "CREATE TABLE sso_agent_t (x int)";
    let agent = psql_spawn(&gateway, AGENT, AGENT_PASSWORD, &db.name, sql);
    let id = pending(&inbox, sql)["id"].as_str().unwrap().to_string();
    let (status, _, olga) = sign_in(&inbox, &idp, "olga", None);
    assert_eq!(status, 200);
    assert_eq!(
        signed_in_as(&inbox, &olga).as_deref(),
        Some("sso:olga@example.com")
    );
    let (_, page) = vote(&inbox, &olga, &id, "approve");
    assert!(page.contains("Auditors read requests"), "{page}");
    assert_eq!(request(&inbox, &id)["state"], "pending");

    // dba1's own statement, and dba1 signed in through the provider as dora.
    let own_sql = "CREATE TABLE sso_own_t (x int)";
    let own = psql_spawn(&gateway, "dba1", "dba1-pw", &db.name, own_sql);
    let own_id = pending(&inbox, own_sql)["id"].as_str().unwrap().to_string();
    let (status, _, dora) = sign_in(&inbox, &idp, "dora", None);
    assert_eq!(status, 200);
    assert_eq!(signed_in_as(&inbox, &dora).as_deref(), Some("dba1"));
    let (_, page) = vote(&inbox, &dora, &own_id, "approve");
    assert!(page.contains("their own request"), "{page}");
    assert_eq!(request(&inbox, &own_id)["state"], "pending");

    // alice, an approver by rule, approves both.
    let (status, _, alice) = sign_in(&inbox, &idp, "alice", None);
    assert_eq!(status, 200);
    for request_id in [&id, &own_id] {
        let (status, page) = vote(&inbox, &alice, request_id, "approve");
        assert_eq!(status, 200, "{page}");
        let r = request(&inbox, request_id);
        assert_eq!(r["state"], "approved", "{r}");
        assert_eq!(r["votes"][0]["approver"], "sso:alice@example.com");
    }
    assert!(agent.wait_with_output().unwrap().status.success());
    assert!(own.wait_with_output().unwrap().status.success());

    // Logging out ends the session like a password login's.
    let page = alice
        .get(format!("http://{inbox}/"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let r = alice
        .post(format!("http://{inbox}/logout"))
        .form(&[("csrf", csrf_of(&page).as_str())])
        .send()
        .unwrap();
    assert_eq!(r.url().path(), "/login");
    assert_eq!(signed_in_as(&inbox, &alice), None);
}

/// `config check` counts people who sign in through the provider: an
/// approver named by `oidc_subject` can sign in, and a map rule's
/// approvers can approve for the group it names; a group no one maps is
/// still reported.
#[test]
fn config_check_counts_who_signs_in_through_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("00.toml"),
        format!(
            "{POLICY}\n[[rule]]\nname = \"hold-exports\"\nclasses = [\"export\"]\naction = \"hold\"\ngroup = \"finance\"\nquorum = 1\nexpiry = \"60s\"\n"
        ),
    )
    .unwrap();
    let config = dir.path().join("airlock.toml");
    let write = |map_group: &str| {
        std::fs::write(
            &config,
            format!(
                r#"policies = "{}"
[inbox.oidc]
issuer = "https://idp.example"
client_id = "airlock"

[[inbox.oidc.map]]
claim_group = "db-approvers"
role = "approver"
groups = ["{map_group}"]

[[identity]]
name = "agent"
role = "agent"
password = "agent-pw"

[[identity]]
name = "lead"
role = "approver"
groups = ["payments"]
oidc_subject = "lead-sub"
"#,
                policies.display()
            ),
        )
        .unwrap();
        let out = Command::new(support::gateway::binary())
            .args(["config", "check", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = write("dba");
    assert!(!said.contains("\"lead\""), "{said}");
    assert!(!said.contains("hold group \"dba\""), "{said}");
    assert!(said.contains("hold group \"finance\" has nobody"), "{said}");
    let said = write("ops");
    assert!(said.contains("hold group \"dba\" has nobody"), "{said}");
}

/// The MCP endpoint as an OAuth resource server of the same provider: the
/// metadata names it, an access token it issued for this endpoint to the
/// client an identity's `mcp_oauth_subject` names runs tools as that
/// identity, and every other token — for another resource, for a subject
/// nobody maps, altered, re-signed, expired, unsigned, a plain JWT — is
/// refused with 401 before any tool.
#[test]
fn mcp_takes_the_providers_access_tokens_for_itself_only() {
    let idp = Idp::start();
    let issuer = idp.issuer.clone();
    let toml = format!(
        r#"[approval]
enabled = true

[inbox]
listen = "127.0.0.1:0"

[inbox.oidc]
issuer = "{issuer}"
client_id = "airlock"
client_secret_file = "{secret}"

[mcp]
listen = "127.0.0.1:0"

[[identity]]
name = "robot"
role = "agent"
password = "robot-pw"
mcp_oauth_subject = "mcp-agent"
"#,
        secret = idp.dir.path().join("client-secret").display(),
    );
    let gateway = Gateway::start_with(Options {
        toml,
        policy: Some(POLICY.into()),
        no_identity: true,
        ..Default::default()
    });
    let inbox = inbox(&gateway);
    let mcp = gateway
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("mcp listening on "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the mcp line")
        .to_string();
    let resource = format!("http://{mcp}/mcp");
    idp.control(&format!(
        "/__test/client?redirect_uri=http://{inbox}/login/oidc/callback&resource={resource}"
    ));

    let meta: Value = client(false)
        .get(format!(
            "http://{mcp}/.well-known/oauth-protected-resource/mcp"
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(meta["authorization_servers"], serde_json::json!([issuer]));
    assert_eq!(meta["resource"], resource.as_str());

    let token = |client_id: &str, for_resource: &str, mode: Option<&str>| -> String {
        if let Some(mode) = mode {
            idp.control(&format!("/__test/next?mode={mode}"));
        }
        let answer: Value = client(false)
            .post(format!("{issuer}/token"))
            .basic_auth(client_id, Some(format!("{client_id}-secret")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", for_resource),
                ("scope", "mcp"),
            ])
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {answer}"))
            .to_string()
    };
    // The status of an MCP initialize carrying `token`.
    let initialize = |token: &str| -> u16 {
        client(false)
            .post(&resource)
            .bearer_auth(token)
            .header("Accept", "application/json, text/event-stream")
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "probe", "version": "1"}}
            }))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };

    let good = token("mcp-agent", &resource, None);
    assert_eq!(initialize(&good), 200);
    // A whole session through the official Python SDK client, as `robot`.
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/protocol-tests/drivers/mcp_session.py"
        ))
        .arg("http")
        .arg(&resource)
        .arg(&good)
        .arg(
            serde_json::json!([{"tool": "query", "args": {"sql": "SELECT 41 + 1 AS answer"}}])
                .to_string(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let session: Value = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        session["calls"][0]["structured"]["rows"],
        serde_json::json!([[42]]),
        "{session}"
    );

    let refused = [
        (
            "another resource's",
            token("mcp-agent", "https://elsewhere.example/mcp", None),
        ),
        (
            "an unmapped subject's",
            token("mcp-stranger", &resource, None),
        ),
        (
            "a tampered",
            token("mcp-stranger", &resource, Some("tamper")),
        ),
        (
            "a foreign-key",
            token("mcp-agent", &resource, Some("foreign-key")),
        ),
        (
            "an unknown-kid",
            token("mcp-agent", &resource, Some("unknown-kid")),
        ),
        ("an expired", token("mcp-agent", &resource, Some("expired"))),
        (
            "a wrong-issuer",
            token("mcp-agent", &resource, Some("wrong-issuer")),
        ),
        (
            "a wrong-audience",
            token("mcp-agent", &resource, Some("wrong-audience")),
        ),
        (
            "an unsigned",
            token("mcp-agent", &resource, Some("alg-none")),
        ),
        ("an HS256", token("mcp-agent", &resource, Some("hs256"))),
        (
            "a plain-JWT",
            token("mcp-agent", &resource, Some("typ-jwt")),
        ),
        ("a garbage", "a.b.c".to_string()),
    ];
    for (what, bad) in &refused {
        assert_eq!(initialize(bad), 401, "{what} token was accepted");
    }
    // The good token still works after all that.
    assert_eq!(initialize(&good), 200);
}
