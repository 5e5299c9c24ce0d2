//! The inbox's web pages: server-rendered HTML with a little plain
//! JavaScript (the live pending list), readable on a laptop and a phone.
//!
//! Login with the Argon2 password in `[[identity]] inbox_password_hash`;
//! the session is a random id in an HttpOnly, SameSite=Strict cookie
//! (Secure when the inbox is served over https), kept in memory for eight
//! hours; every form carries the session's CSRF token; failed logins count
//! against the client address like the gateway's own. Agents cannot log
//! in. Everything a page shows is HTML-escaped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Form, Path, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Inbox;
use crate::approval::store::Decided;
use crate::approval::{now_ms, HoldRequest, State};
use crate::identity::{inbox_password_matches, Identity, Role};

const COOKIE: &str = "airlock_session";
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// Logged-in browser sessions.
#[derive(Default)]
pub struct WebSessions {
    by_id: Mutex<HashMap<String, WebSession>>,
}

#[derive(Clone)]
struct WebSession {
    identity: String,
    csrf: String,
    expires: Instant,
}

fn random_token() -> String {
    crate::hex::encode(&rand::random::<[u8; 32]>())
}

impl WebSessions {
    fn open(&self, identity: &str) -> (String, WebSession) {
        let session = WebSession {
            identity: identity.to_string(),
            csrf: random_token(),
            expires: Instant::now() + SESSION_LIFETIME,
        };
        let id = random_token();
        let mut all = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| s.expires > Instant::now());
        all.insert(id.clone(), session.clone());
        (id, session)
    }

    fn get(&self, id: &str) -> Option<WebSession> {
        let all = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        all.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    fn close(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The logged-in identity and its session, or a redirect to the login page.
fn signed_in<'a>(
    inbox: &'a Inbox,
    headers: &HeaderMap,
) -> Result<(&'a Identity, WebSession, String), Redirect> {
    let found = cookie_value(headers, COOKIE).and_then(|id| {
        let session = inbox.web.get(id)?;
        let identity = inbox.identities.get(&session.identity)?;
        Some((identity, session, id.to_string()))
    });
    found.ok_or_else(|| Redirect::to("/login"))
}

fn page(title: &str, who: Option<(&Identity, &WebSession)>, body: &str) -> Html<String> {
    let nav = match who {
        Some((identity, session)) => {
            let auditor_links = if matches!(identity.role, Role::Auditor | Role::Admin) {
                r#"<a href="/sessions">Sessions</a>"#
            } else {
                ""
            };
            format!(
                r#"<nav><a href="/">Pending</a><a href="/history">History</a>{auditor_links}
<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{csrf}">
<button type="submit">Log out {name}</button></form></nav>"#,
                csrf = escape(&session.csrf),
                name = escape(&identity.name),
            )
        }
        None => String::new(),
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Airlock</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}}
header{{background:#1b1f24;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:center}}
header b{{font-size:1.1rem}} nav{{display:flex;flex-wrap:wrap;gap:1rem;align-items:center}}
nav a{{color:#cfe3ff}} main{{padding:1rem;max-width:70rem;margin:auto}}
table{{border-collapse:collapse;width:100%;background:#fff}} th,td{{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #e3e6ea;vertical-align:top}}
pre{{background:#fff;border:1px solid #e3e6ea;padding:.6rem;white-space:pre-wrap;word-break:break-word}}
.inline{{display:inline}} .error{{color:#a40000;font-weight:600}} .ok{{color:#0a6b2b;font-weight:600}}
.facts th{{width:9rem;color:#555}} button{{padding:.35rem .8rem;min-height:44px}} textarea{{width:100%;min-height:3rem}}
.verdicts{{display:flex;justify-content:space-between;gap:2rem;flex-wrap:wrap}}
button.approve{{background:#0a6b2b;color:#fff;border:0;border-radius:4px;font-weight:600}}
button.deny{{background:#fff;color:#a40000;border:2px solid #a40000;border-radius:4px;font-weight:600}}
button:disabled{{opacity:.45}} .why{{color:#555;font-style:italic}}
@media (max-width:40rem){{td.wide,th.wide{{display:none}}}}
</style></head>
<body><header><b>Airlock</b>{nav}</header><main>
<h1>{title}</h1>
{body}
</main></body></html>"#,
        title = escape(title),
    ))
}

// ---- login -----------------------------------------------------------------

pub async fn login_form() -> Html<String> {
    login_page("")
}

fn login_page(error: &str) -> Html<String> {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="error" id="login-error">{}</p>"#, escape(error))
    };
    page(
        "Log in",
        None,
        &format!(
            r#"{error}<form method="post" action="/login" id="login">
<p><label>Name<br><input name="username" autocomplete="username" required></label></p>
<p><label>Password<br><input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button type="submit">Log in</button></p></form>"#
        ),
    )
}

#[derive(Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

pub async fn login(
    Extract(inbox): Extract<Inbox>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<Login>,
) -> Response {
    if let Err(wait) = inbox.throttle.check(&peer.ip()) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            login_page(&format!(
                "Too many failed logins from this address; try again in {} s.",
                wait.as_secs().max(1)
            )),
        )
            .into_response();
    }
    let identity = inbox.identities.get(&form.username);
    let hash = identity.and_then(|i| i.inbox_password_hash.as_deref());
    // Unknown names cost the same Argon2 work as known ones.
    let matches = inbox_password_matches(hash.unwrap_or_else(|| decoy_hash()), &form.password)
        && hash.is_some();
    let identity = match identity {
        Some(i) if matches && i.role != Role::Agent => i,
        _ => {
            inbox.throttle.record_failure(&peer.ip());
            tracing::warn!(client = %peer, user = %form.username, "inbox login failed");
            return (
                StatusCode::UNAUTHORIZED,
                login_page("Wrong name or password."),
            )
                .into_response();
        }
    };
    inbox.throttle.record_success(&peer.ip());
    let (id, _) = inbox.web.open(&identity.name);
    tracing::info!(client = %peer, user = %identity.name, "inbox login");
    let secure = if inbox.secure_cookies { "; Secure" } else { "" };
    (
        [(
            header::SET_COOKIE,
            format!(
                "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                SESSION_LIFETIME.as_secs()
            ),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

/// An Argon2 hash of a random password, checked when the name is unknown
/// so that the time a login takes does not tell names apart.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| crate::identity::inbox_password_hash(&random_token()))
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn logout(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Ok((_, session, id)) = signed_in(&inbox, &headers) {
        if constant_eq(&session.csrf, &form.csrf) {
            inbox.web.close(&id);
        }
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

// ---- pending, history, request ---------------------------------------------

/// An instant as people read it on any device: the absolute time with its
/// zone (UTC; the `datetime` attribute is ISO 8601) and how long ago or
/// ahead it is.
fn when(at_ms: u64, now_ms: u64) -> String {
    let iso = crate::audit::chain::timestamp(std::time::Duration::from_millis(at_ms));
    // 2026-12-05T01:02:03.456789Z → 2026-12-05 01:02:03 UTC
    let shown = format!("{} {} UTC", &iso[..10], &iso[11..19]);
    let relative = if at_ms <= now_ms {
        format!("{} ago", age(now_ms - at_ms))
    } else {
        format!("in {}", age(at_ms - now_ms))
    };
    format!(r#"<time datetime="{iso}">{shown}</time> ({relative})"#)
}

fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The rows of the pending table (also served alone for live updates).
fn pending_rows(requests: &[HoldRequest]) -> String {
    let now = now_ms();
    let mut rows = String::new();
    for r in requests {
        let _ = write!(
            rows,
            r#"<tr class="request" data-id="{id}"><td><input type="checkbox" name="ids" value="{id}" form="batch" aria-label="select {id}"></td>
<td><a class="open" href="/requests/{id}">{id}</a></td><td>{who}</td><td class="wide"><code>{sql}</code></td>
<td>{rule}</td><td>{created}</td><td>{expires}</td></tr>"#,
            id = escape(&r.id),
            who = escape(&r.requester),
            sql = escape(&shorten(&r.sql, 120)),
            rule = escape(&r.rule),
            created = when(r.created_ms, now),
            expires = when(r.expires_ms, now),
        );
    }
    if requests.is_empty() {
        rows.push_str(r#"<tr class="empty"><td colspan="7">Nothing is waiting.</td></tr>"#);
    }
    rows
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

pub async fn pending(Extract(inbox): Extract<Inbox>, headers: HeaderMap) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let requests = match inbox.approvals.list(Some(State::Pending), 500).await {
        Ok(r) => r,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let decides = matches!(identity.role, Role::Approver | Role::Admin);
    let batch = if decides {
        format!(
            r#"<form method="post" action="/batch" id="batch"><input type="hidden" name="csrf" value="{csrf}">
{no_enter}<p><label>Reason (required to deny) <input name="reason" size="40" maxlength="2000"></label></p>
<p class="verdicts"><button type="submit" name="verdict" value="approve" id="batch-approve" class="approve">Approve selected…</button>
<button type="submit" name="verdict" value="deny" id="batch-deny" class="deny">Deny selected…</button></p>
<p class="why">Both ask you to confirm, with the list of statements, before anything is decided.</p></form>"#,
            csrf = escape(&session.csrf),
            no_enter = NO_IMPLICIT_SUBMIT,
        )
    } else {
        r#"<p class="why" id="why-no-decision">You are an auditor: you can read requests but not decide them.</p>"#.to_string()
    };
    let body = format!(
        r#"{batch}
<table id="pending"><thead><tr><th></th><th>Request</th><th>Requester</th><th class="wide">Statement</th><th>Rule</th><th>Held at</th><th>Expires</th></tr></thead>
<tbody id="pending-rows">{rows}</tbody></table>
<p><small id="live">Live: the list updates by itself.</small></p>
<script>
(function () {{
  var events = new EventSource('/events');
  function refresh() {{
    fetch('/pending-rows', {{credentials: 'same-origin'}}).then(function (r) {{ return r.ok ? r.text() : null; }})
      .then(function (html) {{ if (html !== null) document.getElementById('pending-rows').innerHTML = html; }});
  }}
  events.addEventListener('changed', refresh);
  events.onerror = function () {{ document.getElementById('live').textContent = 'Live updates paused; reload to resume.'; }};
}})();
</script>"#,
        rows = pending_rows(&requests),
    );
    page("Pending requests", Some((identity, &session)), &body).into_response()
}

pub async fn pending_fragment(Extract(inbox): Extract<Inbox>, headers: HeaderMap) -> Response {
    if signed_in(&inbox, &headers).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match inbox.approvals.list(Some(State::Pending), 500).await {
        Ok(r) => Html(pending_rows(&r)).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// Server-sent events: `changed` with a request id whenever one changes.
pub async fn events(Extract(inbox): Extract<Inbox>, headers: HeaderMap) -> Response {
    use tokio_stream::StreamExt;
    if signed_in(&inbox, &headers).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // A receiver that lagged missed some ids: one `changed` covers them all.
    let stream =
        tokio_stream::wrappers::BroadcastStream::new(inbox.approvals.subscribe()).map(|item| {
            Ok::<_, std::convert::Infallible>(
                Event::default()
                    .event("changed")
                    .data(item.unwrap_or_default()),
            )
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub async fn history(Extract(inbox): Extract<Inbox>, headers: HeaderMap) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let requests = match inbox.approvals.list(None, 500).await {
        Ok(r) => r,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let mut rows = String::new();
    for r in requests.iter().filter(|r| r.state != State::Pending) {
        let deciders: Vec<String> = r
            .votes
            .iter()
            .map(|v| {
                format!(
                    "{} {}",
                    v.approver,
                    if v.approve { "approved" } else { "denied" }
                )
            })
            .collect();
        let _ = write!(
            rows,
            r#"<tr><td><a href="/requests/{id}">{id}</a><br><small>{held}</small></td><td>{state}<br><small>{happened}</small></td><td>{who}</td><td class="wide"><code>{sql}</code></td><td>{votes}</td></tr>"#,
            held = when(r.created_ms, now_ms()),
            id = escape(&r.id),
            state = r.state.name(),
            happened = escape(&what_happened(r)),
            who = escape(&r.requester),
            sql = escape(&shorten(&r.sql, 120)),
            votes = escape(&if deciders.is_empty() {
                r.ended_because.clone().unwrap_or_default()
            } else {
                deciders.join(", ")
            }),
        );
    }
    let body = format!(
        r#"<table id="history"><thead><tr><th>Request</th><th>Outcome</th><th>Requester</th><th class="wide">Statement</th><th>Decisions</th></tr></thead><tbody>{rows}</tbody></table>"#
    );
    page("History", Some((identity, &session)), &body).into_response()
}

/// What became of a request's statement, in one line: what it did if it
/// ran, why not if it never did.
fn what_happened(r: &HoldRequest) -> String {
    if let Some(o) = &r.outcome {
        return if o.ok {
            format!("ran: {}", o.summary)
        } else {
            format!("ran and {}", o.summary)
        };
    }
    match r.state {
        State::Pending => "not run yet: waiting for a decision".into(),
        State::Approved if r.waiting => "approved; the result is not recorded yet".into(),
        State::Approved if r.consumed_ms.is_some() => {
            "approved; re-sent and released (result not recorded)".into()
        }
        State::Approved => "approved; not run yet: the agent has to re-send it".into(),
        State::Denied => "never ran: denied".into(),
        State::Expired => "never ran: expired without a decision".into(),
        State::Withdrawn => format!(
            "never ran: withdrawn because {}",
            r.ended_because.as_deref().unwrap_or("the agent gave up")
        ),
    }
}

#[derive(Deserialize)]
pub struct RequestPageQuery {
    #[serde(default)]
    decided: Option<String>,
}

pub async fn request_page(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<RequestPageQuery>,
) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let request = match inbox.approvals.get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page(
                    "Not found",
                    Some((identity, &session)),
                    "<p>No such request.</p>",
                ),
            )
                .into_response()
        }
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let flash = if query.decided.is_some() {
        format!(
            r#"<p class="ok" id="flash" aria-live="polite">Your decision on {} is recorded.</p>"#,
            escape(&request.id)
        )
    } else {
        String::new()
    };
    page(
        &format!("Request {}", request.id),
        Some((identity, &session)),
        &request_body(&request, identity, &session, &flash),
    )
    .into_response()
}

/// Percent-encodes `s` for a URL path or query.
fn form_urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn request_body(r: &HoldRequest, identity: &Identity, session: &WebSession, flash: &str) -> String {
    let now = now_ms();
    let fact =
        |name: &str, value: &str| format!("<tr><th>{name}</th><td>{}</td></tr>", escape(value));
    let mut facts = String::new();
    facts.push_str(&fact("State", r.state.name()));
    facts.push_str(&fact(
        "Requester",
        &format!("{} ({})", r.requester, r.requester_role),
    ));
    facts.push_str(&fact(
        "From",
        &format!(
            "{} via {}",
            r.client,
            r.application.as_deref().unwrap_or("an unnamed application")
        ),
    ));
    facts.push_str(&fact(
        "Database",
        &format!("{} ({})", r.database, r.protocol),
    ));
    facts.push_str(&fact("Session", &r.session));
    facts.push_str(&fact("Classes", &r.classes.join(", ")));
    facts.push_str(&fact("Objects", &r.objects.join(", ")));
    facts.push_str(&fact("Rule", &r.rule));
    facts.push_str(&fact(
        "Needs",
        &format!(
            "{} approval{} from group {} ({} so far)",
            r.quorum,
            if r.quorum == 1 { "" } else { "s" },
            r.group,
            r.approvals()
        ),
    ));
    // Times are markup (<time>), built from numbers only.
    let _ = write!(
        facts,
        "<tr><th>Held at</th><td>{}</td></tr><tr><th>Expires</th><td>{}</td></tr>",
        when(r.created_ms, now),
        if r.state == State::Pending {
            when(r.expires_ms, now)
        } else {
            "—".into()
        }
    );
    if let Some(o) = &r.outcome {
        let _ = write!(
            facts,
            "<tr><th>Ran at</th><td>{}</td></tr>",
            when(o.at_ms, now)
        );
    }
    if let Some(why) = &r.ended_because {
        facts.push_str(&fact("Ended", why));
    }
    facts.push_str(&fact("What happened", &what_happened(r)));
    if r.state == State::Pending {
        facts.push_str(&fact(
            "Agent",
            if r.waiting {
                "waiting: its statement waits on its connection for this decision"
            } else {
                "not waiting (defer mode): it re-sends the statement once approved"
            },
        ));
    }
    let mut votes = String::new();
    for v in &r.votes {
        let _ = write!(
            votes,
            "<li>{} {} at {}{}</li>",
            escape(&v.approver),
            if v.approve { "approved" } else { "denied" },
            when(v.at_ms, now),
            if v.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&v.reason))
            }
        );
    }
    let recent = recent_statements(r);
    let forms = match why_not_decider(r, identity) {
        None => format!(
            r#"<form method="post" action="/requests/{id}/decide" id="decide"><input type="hidden" name="csrf" value="{csrf}">
{no_enter}<p><label>Reason (required to deny; the agent is shown it)<br><textarea name="reason" id="reason" maxlength="2000"></textarea></label></p>
<p class="verdicts"><button type="submit" name="verdict" value="approve" id="approve" class="approve">Approve and run</button>
<button type="submit" name="verdict" value="deny" id="deny" class="deny">Deny</button></p></form>
<p id="decided-elsewhere" class="why" aria-live="polite"></p>
<script>
(function () {{
  var id = {id_js};
  var events = new EventSource('/events');
  events.addEventListener('changed', function (e) {{
    if (e.data !== id) return;
    fetch('/requests/' + encodeURIComponent(id) + '/state', {{credentials: 'same-origin'}})
      .then(function (r) {{ return r.ok ? r.json() : null; }})
      .then(function (s) {{
        if (!s || s.state === 'pending') return;
        document.querySelectorAll('#decide button').forEach(function (b) {{ b.disabled = true; }});
        document.getElementById('decided-elsewhere').textContent =
          'This request is now ' + s.state + ' (' + s.what_happened + '); your decision is no longer needed.';
      }});
  }});
}})();
</script>"#,
            id = escape(&r.id),
            id_js = json_string(&r.id),
            csrf = escape(&session.csrf),
            no_enter = NO_IMPLICIT_SUBMIT,
        ),
        Some(why) => format!(
            r#"<p class="why" id="why-no-decision">{}</p>"#,
            escape(&why)
        ),
    };
    format!(
        r#"{flash}<h2>Statement</h2><pre id="statement">{sql}</pre>
<table class="facts">{facts}</table>
<h2>Impact</h2>{impact}
<h2>Decisions</h2><ul id="votes">{votes}</ul>
{forms}
<h2>Recent statements in this session</h2>{recent}"#,
        flash = flash,
        sql = escape(&r.sql),
        impact = impact_section(r),
    )
}

/// The impact section, labelled for what it is: a planner's estimate on
/// the request's own server, never a count.
fn impact_section(r: &HoldRequest) -> String {
    let server = if r.protocol == "mysql" {
        "MySQL / MariaDB"
    } else {
        "PostgreSQL"
    };
    match &r.impact {
        Some(facts) if r.classes.iter().any(|c| c == "ddl") => format!(
            r#"<p id="impact-label"><strong>Schema change facts</strong> from {server} (nothing ran): the lock it takes and the tables it touches as they are now.</p><pre id="impact">{}</pre>"#,
            escape(facts)
        ),
        Some(plan) => format!(
            r#"<p id="impact-label"><strong>{server} planner estimate</strong> (EXPLAIN, nothing ran): row counts are the optimizer's guesses from table statistics, not counts.</p><pre id="impact">{}</pre>"#,
            escape(plan)
        ),
        None => format!(
            "<p id=\"impact-label\">No estimate: Airlock asks {server} for a plan only for a single statement that reads, writes or exports.</p>"
        ),
    }
}

/// A form's first submit button, disabled: pressing Enter in a field
/// submits a form through its first submit button, and a disabled one
/// submits nothing — Enter never approves.
const NO_IMPLICIT_SUBMIT: &str =
    r#"<button type="submit" disabled hidden aria-hidden="true" tabindex="-1"></button>"#;

/// Why `identity` cannot decide `r`, in a sentence; `None` when it can.
fn why_not_decider(r: &HoldRequest, identity: &Identity) -> Option<String> {
    if r.state != State::Pending {
        return Some(format!(
            "This request is {}: there is nothing left to decide.",
            r.state.name()
        ));
    }
    match identity.role {
        Role::Auditor => {
            return Some("You are an auditor: you can read requests but not decide them.".into())
        }
        Role::Agent => return Some("Agents do not decide requests.".into()),
        Role::Approver | Role::Admin => {}
    }
    if identity.name == r.requester {
        return Some("This is your own request: someone else decides it.".into());
    }
    if !identity.groups.contains(&r.group) {
        return Some(format!(
            "Only members of group \"{}\" decide this request, and you are not one.",
            r.group
        ));
    }
    None
}

/// `s` as a JavaScript string literal, safe inside a `<script>` element.
fn json_string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A request's state for the live request page (signed-in sessions).
pub async fn request_state(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if signed_in(&inbox, &headers).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match inbox.approvals.get(&id).await {
        Ok(Some(r)) => axum::Json(serde_json::json!({
            "state": r.state.name(),
            "what_happened": what_happened(&r),
        }))
        .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// The requester's last statements in the session (masked, as logged),
/// newest first; they travel with the request, so any gateway sharing the
/// store shows them.
fn recent_statements(r: &HoldRequest) -> String {
    if r.recent.is_empty() {
        return "<p>None recorded.</p>".into();
    }
    let statements: Vec<String> = r
        .recent
        .iter()
        .rev()
        .map(|s| {
            format!(
                "<li><code>{}</code> — {}</li>",
                escape(&s.sql),
                escape(&s.verdict)
            )
        })
        .collect();
    format!(r#"<ol id="recent">{}</ol>"#, statements.join(""))
}

#[derive(Deserialize)]
pub struct Decision {
    csrf: String,
    verdict: String,
    #[serde(default)]
    reason: String,
}

pub async fn decide(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Decision>,
) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if !constant_eq(&session.csrf, &form.csrf) {
        return (StatusCode::FORBIDDEN, "invalid CSRF token; reload the page").into_response();
    }
    let flash = match cast(&inbox, identity, &id, &form.verdict, &form.reason).await {
        // Post, redirect, get: a reload does not send the decision again.
        Ok(()) => {
            return axum::response::Redirect::to(&format!(
                "/requests/{}?decided=1",
                form_urlencode(&id)
            ))
            .into_response()
        }
        Err(why) => format!(r#"<p class="error" id="flash">{}</p>"#, escape(&why)),
    };
    match inbox.approvals.get(&id).await {
        Ok(Some(r)) => page(
            &format!("Request {}", r.id),
            Some((identity, &session)),
            &request_body(&r, identity, &session, &flash),
        )
        .into_response(),
        _ => (StatusCode::NOT_FOUND, "no such request").into_response(),
    }
}

async fn cast(
    inbox: &Inbox,
    identity: &Identity,
    id: &str,
    verdict: &str,
    reason: &str,
) -> Result<(), String> {
    if identity.role == Role::Auditor {
        return Err("Auditors read requests; they do not decide them.".into());
    }
    let approve = match verdict {
        "approve" => true,
        "deny" => false,
        _ => return Err("Choose approve or deny.".into()),
    };
    if reason.len() > 2000 {
        return Err("The reason is longer than 2000 bytes.".into());
    }
    // A stray Enter or space around the reason is not part of it.
    let reason = reason.trim();
    if !approve && reason.is_empty() {
        return Err("A denial needs a reason: the agent is shown it.".into());
    }
    match inbox
        .approvals
        .vote(
            id,
            &identity.name,
            identity.role,
            &identity.groups,
            approve,
            reason,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(Decided::Refused(e)) => Err(e.to_string()),
        Err(Decided::Store(e)) => Err(e.to_string()),
    }
}

pub async fn batch(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    // `ids` repeats, which a struct form cannot hold: read the pairs.
    let pairs: Vec<(String, String)> = form_urlencoded(&body);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    if !constant_eq(&session.csrf, get("csrf")) {
        return (StatusCode::FORBIDDEN, "invalid CSRF token; reload the page").into_response();
    }
    let (verdict, reason) = (get("verdict").to_string(), get("reason").to_string());
    let ids: Vec<&String> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v)
        .collect();
    if get("confirm") != "yes" {
        return batch_confirmation(&inbox, identity, &session, &ids, &verdict, &reason).await;
    }
    let mut results = String::new();
    for id in ids {
        let outcome = match cast(&inbox, identity, id, &verdict, &reason).await {
            Ok(()) => "recorded".to_string(),
            Err(why) => why,
        };
        let _ = write!(results, "<li>{}: {}</li>", escape(id), escape(&outcome));
    }
    if results.is_empty() {
        results.push_str("<li>No request was selected.</li>");
    }
    page(
        "Batch decision",
        Some((identity, &session)),
        &format!(r#"<ul id="batch-results">{results}</ul><p><a href="/">Back to pending</a></p>"#),
    )
    .into_response()
}

/// The first step of a batch decision: what would be decided, statement by
/// statement, and one button that confirms exactly that list.
async fn batch_confirmation(
    inbox: &Inbox,
    identity: &Identity,
    session: &WebSession,
    ids: &[&String],
    verdict: &str,
    reason: &str,
) -> Response {
    let back = r#"<p><a href="/">Back to pending</a></p>"#;
    let problem = match verdict {
        _ if ids.is_empty() => Some("No request was selected."),
        "approve" | "deny" => None,
        _ => Some("Choose approve or deny."),
    }
    .or((verdict == "deny" && reason.trim().is_empty())
        .then_some("A denial needs a reason: the agent is shown it."));
    if let Some(problem) = problem {
        return page(
            "Batch decision",
            Some((identity, session)),
            &format!(r#"<p class="error" id="flash">{problem}</p>{back}"#),
        )
        .into_response();
    }
    let mut items = String::new();
    let mut hidden = String::new();
    for id in ids {
        let line = match inbox.approvals.get(id).await {
            Ok(Some(r)) => format!(
                "<li><a href=\"/requests/{id}\">{id}</a> — {who}, rule {rule}, {state}<pre>{sql}</pre></li>",
                id = escape(&r.id),
                who = escape(&r.requester),
                rule = escape(&r.rule),
                state = r.state.name(),
                sql = escape(&r.sql),
            ),
            _ => format!("<li>{}: no such request</li>", escape(id)),
        };
        items.push_str(&line);
        let _ = write!(
            hidden,
            r#"<input type="hidden" name="ids" value="{}">"#,
            escape(id)
        );
    }
    let (class, action) = if verdict == "approve" {
        ("approve", "Approve and run")
    } else {
        ("deny", "Deny")
    };
    let body = format!(
        r#"<p>{action} these {n} request{s}{reason_note}?</p><ol id="batch-list">{items}</ol>
<form method="post" action="/batch" id="batch-confirm"><input type="hidden" name="csrf" value="{csrf}">{hidden}
<input type="hidden" name="verdict" value="{verdict}"><input type="hidden" name="reason" value="{reason}"><input type="hidden" name="confirm" value="yes">
<p class="verdicts"><button type="submit" id="batch-confirm-button" class="{class}">{action}: {n} request{s}</button> <a href="/">Cancel</a></p></form>"#,
        n = ids.len(),
        s = if ids.len() == 1 { "" } else { "s" },
        reason_note = if reason.is_empty() {
            String::new()
        } else {
            format!(", giving the reason “{}”", escape(reason))
        },
        csrf = escape(&session.csrf),
        verdict = escape(verdict),
        reason = escape(reason),
    );
    page("Confirm batch decision", Some((identity, session)), &body).into_response()
}

/// `application/x-www-form-urlencoded` pairs, repeated names kept.
fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    let decode = |part: &[u8]| -> String {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < part.len() => {
                    match std::str::from_utf8(&part[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(eq) => (decode(&p[..eq]), decode(&p[eq + 1..])),
            None => (decode(p), String::new()),
        })
        .collect()
}

// ---- auditors: sessions and replay ------------------------------------------

pub async fn sessions(Extract(inbox): Extract<Inbox>, headers: HeaderMap) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if !matches!(identity.role, Role::Auditor | Role::Admin) {
        return (
            StatusCode::FORBIDDEN,
            page(
                "Not allowed",
                Some((identity, &session)),
                "<p>Sessions are for auditors.</p>",
            ),
        )
            .into_response();
    }
    let Some(dir) = inbox.audit_dir.clone() else {
        return page(
            "Sessions",
            Some((identity, &session)),
            "<p>No audit log.</p>",
        )
        .into_response();
    };
    let listed = tokio::task::spawn_blocking(move || {
        crate::audit::read::sessions(&dir, &Default::default())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let mut rows = String::new();
    for s in listed.unwrap_or_default().iter().rev().take(500) {
        let _ = write!(
            rows,
            r#"<tr><td><a href="/sessions/{id}">{id}</a></td><td>{who}</td><td>{started}</td><td>{statements}</td><td class="wide">{end}</td></tr>"#,
            id = escape(&s.session),
            who = escape(&s.identity),
            started = escape(&s.started),
            statements = s.statements,
            end = escape(s.end_reason.as_deref().unwrap_or("open")),
        );
    }
    page(
        "Sessions",
        Some((identity, &session)),
        &format!(r#"<table id="sessions"><thead><tr><th>Session</th><th>Identity</th><th>Started</th><th>Statements</th><th class="wide">End</th></tr></thead><tbody>{rows}</tbody></table>"#),
    )
    .into_response()
}

/// Records per replay page.
const REPLAY_PAGE: usize = 1000;

#[derive(Deserialize)]
pub struct ReplayQuery {
    page: Option<usize>,
}

pub async fn replay(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<ReplayQuery>,
) -> Response {
    let (identity, session, _) = match signed_in(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if !matches!(identity.role, Role::Auditor | Role::Admin) {
        return (StatusCode::FORBIDDEN, "sessions are for auditors").into_response();
    }
    let Some(dir) = inbox.audit_dir.clone() else {
        return page("Replay", Some((identity, &session)), "<p>No audit log.</p>").into_response();
    };
    let number = query.page.unwrap_or(1).max(1);
    let (trust, verifier, wanted) = (
        inbox.audit_trust.clone(),
        inbox.audit_verifier.clone(),
        id.clone(),
    );
    let (found, verified) = tokio::task::spawn_blocking(move || {
        let found = crate::audit::read::session_page(
            &dir,
            &wanted,
            (number - 1) * REPLAY_PAGE,
            REPLAY_PAGE,
        );
        let verified = verifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .verify(&dir, &trust);
        (found, verified)
    })
    .await
    .unwrap_or_else(|e| (Err(e.to_string()), Err(String::new())));
    let found = found.unwrap_or_default();
    if found.total == 0 {
        return (
            StatusCode::NOT_FOUND,
            page(
                "Replay",
                Some((identity, &session)),
                "<p>No such session.</p>",
            ),
        )
            .into_response();
    }
    // Record positions only: the server's file paths stay on the server.
    let (status, broken_seq) = match &verified {
        Ok(report) => match &report.broken {
            None if report.vouched() => (
                format!(
                    "Chain verified: every link, hash and checkpoint signature up to record {}{}.",
                    report.signed_through,
                    if report.signed_through < report.last_seq {
                        format!(
                            "; the {} records since are not signed yet (the log is being written)",
                            report.last_seq - report.signed_through
                        )
                    } else {
                        String::new()
                    }
                ),
                None,
            ),
            None => (
                format!(
                    "Chain consistent but not fully verified: {}",
                    report
                        .unchecked()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                None,
            ),
            Some(b) => {
                let at = b.seq.unwrap_or(report.last_seq);
                (
                    format!("CHAIN BROKEN at record {at}: {}", b.problem),
                    Some(at),
                )
            }
        },
        Err(_) => (
            "Chain not verified: the log cannot be read.".to_string(),
            None,
        ),
    };
    // Whether this session's records are on the verified side of a break.
    let session_status = match broken_seq {
        None => String::new(),
        Some(at) => {
            let first = found
                .records
                .first()
                .and_then(|(_, r)| r.get("seq").and_then(serde_json::Value::as_u64));
            match first {
                Some(first) if first >= at => " This session's records on this page come at or after the break: none of them is verified.".to_string(),
                _ => " Records of this session before the break are verified; the break and what follows are not.".to_string(),
            }
        }
    };
    let class = if status.starts_with("Chain verified") {
        "ok"
    } else {
        "error"
    };
    let mut transcript = String::new();
    for record in &found.records {
        let seq = record.1.get("seq").and_then(serde_json::Value::as_u64);
        let text = escape(&crate::audit::read::transcript(std::slice::from_ref(
            record,
        )));
        match (seq, broken_seq) {
            (Some(seq), Some(at)) if seq == at => {
                let _ = write!(
                    transcript,
                    r#"<mark id="broken" class="broken">BROKEN HERE (record {seq}) — </mark>{text}"#
                );
            }
            _ => transcript.push_str(&text),
        }
    }
    let pages = found.total.div_ceil(REPLAY_PAGE);
    let mut nav = format!(
        "Records {}–{} of {}",
        ((number - 1) * REPLAY_PAGE + 1).min(found.total),
        ((number - 1) * REPLAY_PAGE + found.records.len()).min(found.total),
        found.total
    );
    let link = |n: usize, label: &str| {
        format!(
            r#" <a href="/sessions/{}?page={n}">{label}</a>"#,
            escape(&id)
        )
    };
    if number > 1 {
        nav.push_str(&link(1, "first"));
        nav.push_str(&link(number - 1, "previous"));
    }
    if number < pages {
        nav.push_str(&link(number + 1, "next"));
        nav.push_str(&link(pages, "last"));
    }
    page(
        &format!("Session {id}"),
        Some((identity, &session)),
        &format!(
            r#"<p class="{class}" id="chain">{}{}</p><p id="pages">{nav}</p><pre id="transcript">{transcript}</pre>"#,
            escape(&status),
            escape(&session_status),
        ),
    )
    .into_response()
}
