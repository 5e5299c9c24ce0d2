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
use std::sync::{Arc, Mutex};
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
pub(super) struct WebSession {
    identity: String,
    /// Who a single sign-on made this person for this session only
    /// (`[[inbox.oidc.map]]`); `None`: the configured identity named above.
    granted: Option<Arc<Identity>>,
    pub(super) csrf: String,
    expires: Instant,
}

fn random_token() -> String {
    crate::hex::encode(&rand::random::<[u8; 32]>())
}

impl WebSessions {
    /// A session for the configured identity `identity`.
    pub(super) fn open(&self, identity: &str) -> (String, WebSession) {
        self.insert(identity.to_string(), None)
    }

    /// A session for an identity that exists only in it.
    pub(super) fn open_for(&self, identity: Identity) -> (String, WebSession) {
        self.insert(identity.name.clone(), Some(Arc::new(identity)))
    }

    fn insert(&self, identity: String, granted: Option<Arc<Identity>>) -> (String, WebSession) {
        let session = WebSession {
            identity,
            granted,
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

pub(super) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
pub(super) fn signed_in(
    inbox: &Inbox,
    headers: &HeaderMap,
) -> Result<(Arc<Identity>, WebSession, String), Redirect> {
    let found = cookie_value(headers, COOKIE).and_then(|id| {
        let session = inbox.web.get(id)?;
        let identity = match &session.granted {
            Some(granted) => granted.clone(),
            None => inbox.identities.get(&session.identity)?,
        };
        Some((identity, session, id.to_string()))
    });
    found.ok_or_else(|| Redirect::to("/login"))
}

pub(super) fn page(title: &str, who: Option<(&Identity, &WebSession)>, body: &str) -> Html<String> {
    let nav = match who {
        Some((identity, session)) => {
            let auditor_links = if matches!(identity.role, Role::Auditor | Role::Admin) {
                r#"<a href="/sessions">Sessions</a>"#
            } else {
                ""
            };
            format!(
                r#"<nav><a href="/">Pending</a><a href="/history">History</a>{auditor_links}<a href="/breakglass">Break-glass</a>
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
a.button{{display:inline-block;padding:.6rem 1rem;min-height:44px;box-sizing:border-box;background:#1b1f24;color:#fff;border-radius:4px;font-weight:600;text-decoration:none}}
button:disabled{{opacity:.45}} .why{{color:#555;font-style:italic}}
.filters label{{display:inline-block;margin:0 .6rem .4rem 0}} .filters input,.filters select{{min-height:2rem}}
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

pub async fn login_form(Extract(inbox): Extract<Inbox>) -> Html<String> {
    login_page(&inbox, "")
}

fn login_page(inbox: &Inbox, error: &str) -> Html<String> {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="error" id="login-error">{}</p>"#, escape(error))
    };
    let sso = match inbox.sso.as_deref() {
        Some(sso) => format!(
            r#"<p><a class="button" id="sso" href="/login/oidc">Sign in with {}</a></p><p>or with a local password:</p>"#,
            escape(sso.label())
        ),
        None => String::new(),
    };
    page(
        "Log in",
        None,
        &format!(
            r#"{error}{sso}<form method="post" action="/login" id="login">
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
            login_page(
                &inbox,
                &format!(
                    "Too many failed logins from this address; try again in {} s.",
                    wait.as_secs().max(1)
                ),
            ),
        )
            .into_response();
    }
    let identity = inbox.identities.get(&form.username);
    let hash = identity
        .as_ref()
        .and_then(|i| i.inbox_password_hash.as_deref());
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
                login_page(&inbox, "Wrong name or password."),
            )
                .into_response();
        }
    };
    inbox.throttle.record_success(&peer.ip());
    let (id, _) = inbox.web.open(&identity.name);
    tracing::info!(client = %peer, user = %identity.name, "inbox login");
    (
        [(header::SET_COOKIE, session_cookie(&inbox, &id))],
        Redirect::to("/"),
    )
        .into_response()
}

/// The cookie that carries session `id`.
pub(super) fn session_cookie(inbox: &Inbox, id: &str) -> String {
    let secure = if inbox.secure_cookies { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    )
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

pub(super) fn constant_eq(a: &str, b: &str) -> bool {
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
    let identity: &Identity = &identity;
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
        r#"{banner}{batch}
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
        banner = super::breakglass::banner(&inbox).await,
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
    let identity: &Identity = &identity;
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
    let identity: &Identity = &identity;
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
pub(super) fn form_urlencode(s: &str) -> String {
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
    // Auditors go from the request to the session's replay at its hold.
    let replay = if matches!(identity.role, Role::Auditor | Role::Admin) && !r.session.is_empty() {
        format!(
            r#"<p><a id="replay-link" href="/sessions/{}?request={}">Replay the session at this request</a></p>"#,
            form_urlencode(&r.session),
            form_urlencode(&r.id)
        )
    } else {
        String::new()
    };
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
<table class="facts">{facts}</table>{replay}
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
pub(super) const NO_IMPLICIT_SUBMIT: &str =
    r#"<button type="submit" disabled hidden aria-hidden="true" tabindex="-1"></button>"#;

/// Why `identity` cannot decide `r`, in a sentence; `None` when it can.
pub(super) fn why_not_decider(r: &HoldRequest, identity: &Identity) -> Option<String> {
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
    let identity: &Identity = &identity;
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

pub(super) async fn cast(
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
    let identity: &Identity = &identity;
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

/// The signed-in identity when it may read the audit log (auditors and
/// admins); otherwise the response that turns it away.
fn auditor(
    inbox: &Inbox,
    headers: &HeaderMap,
) -> Result<(Arc<Identity>, WebSession), Box<Response>> {
    let (identity, session, _) =
        signed_in(inbox, headers).map_err(|r| Box::new(r.into_response()))?;
    if !matches!(identity.role, Role::Auditor | Role::Admin) {
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                page(
                    "Not allowed",
                    Some((&*identity, &session)),
                    "<p>Sessions are for auditors.</p>",
                ),
            )
                .into_response(),
        ));
    }
    Ok((identity, session))
}

/// Sessions per page of the session list.
const SESSIONS_PAGE: usize = 100;

/// The filters that may be given, in the order the form shows them.
const FILTERS: &[&str] = &[
    "identity",
    "since",
    "until",
    "verdict",
    "outcome",
    "database",
    "application",
];

/// The session list's query: the filter, the page, and the filters as
/// given (for the form and for links that keep them).
#[derive(Debug, Default)]
struct Browse {
    filter: crate::audit::read::SessionFilter,
    page: usize,
    given: Vec<(&'static str, String)>,
}

impl Browse {
    fn given(&self, name: &str) -> &str {
        self.given
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The filters as a query string (no page), for links.
    fn query(&self) -> String {
        self.given
            .iter()
            .map(|(n, v)| format!("{n}={}", form_urlencode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Reads and checks the session list's query string. Empty values are
/// filters not given (what an empty form field sends).
fn browse_query(raw: Option<&str>, paged: bool) -> Result<Browse, String> {
    use crate::audit::read;
    let mut browse = Browse {
        page: 1,
        ..Default::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded(raw.unwrap_or("").as_bytes()) {
        if seen.contains(&name) {
            return Err(format!("`{}` is given twice.", shorten(&name, 40)));
        }
        seen.push(name.clone());
        // Control, bidirectional and separator characters: what could
        // disguise a filter in the form or in a bookmarked link.
        let disguised = matches!(
            crate::audit::read::escape_terminal(&value),
            std::borrow::Cow::Owned(_)
        ) || value.contains('\n');
        let value = value.trim().to_string();
        if name == "page" && paged {
            browse.page = match value.parse::<usize>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "page `{}` is not a page number (1, 2, …).",
                        shorten(&value, 40)
                    ))
                }
            };
            continue;
        }
        let Some(known) = FILTERS.iter().find(|f| **f == name) else {
            return Err(format!(
                "`{}` is not a filter: the filters are {}.",
                shorten(&name, 40),
                FILTERS.join(", ")
            ));
        };
        if value.is_empty() {
            continue;
        }
        if value.len() > 200 || disguised {
            return Err(format!(
                "{known}: give at most 200 characters and no control characters."
            ));
        }
        let f = &mut browse.filter;
        let choice = |allowed: &[&str]| -> Result<Option<String>, String> {
            if allowed.contains(&value.as_str()) {
                Ok(Some(value.clone()))
            } else {
                Err(format!(
                    "{known} `{}` is not one of {}.",
                    shorten(&value, 40),
                    allowed.join(", ")
                ))
            }
        };
        match *known {
            "identity" => f.identity = Some(value.clone()),
            "database" => f.database = Some(value.clone()),
            "application" => f.application = Some(value.clone()),
            "verdict" => f.verdict = choice(read::VERDICTS)?,
            "outcome" => f.outcome = choice(read::OUTCOMES)?,
            "since" => {
                f.since = Some(read::time_bound(&value, false).map_err(|e| format!("since: {e}"))?)
            }
            _ => f.until = Some(read::time_bound(&value, true).map_err(|e| format!("until: {e}"))?),
        }
        browse.given.push((known, value));
    }
    if let (Some(since), Some(until)) = (&browse.filter.since, &browse.filter.until) {
        if since > until {
            return Err("since is after until: nothing can match.".into());
        }
    }
    Ok(browse)
}

/// The filter form, filled in with what was given.
fn filter_form(browse: &Browse) -> String {
    use crate::audit::read;
    let text = |name: &str, label: &str, hint: &str| {
        format!(
            r#"<label>{label}<br><input name="{name}" id="filter-{name}" value="{value}" placeholder="{hint}" maxlength="200"></label> "#,
            value = escape(browse.given(name)),
        )
    };
    let select = |name: &str, label: &str, choices: &[&str]| {
        let mut options = String::from(r#"<option value="">any</option>"#);
        for c in choices {
            let _ = write!(
                options,
                r#"<option value="{c}"{selected}>{c}</option>"#,
                selected = if browse.given(name) == *c {
                    " selected"
                } else {
                    ""
                }
            );
        }
        format!(
            r#"<label>{label}<br><select name="{name}" id="filter-{name}">{options}</select></label> "#
        )
    };
    format!(
        r#"<form method="get" action="/sessions" id="filters" class="filters">{}{}{}{}{}{}{}
<button type="submit" id="filter-apply">Filter</button> <a href="/sessions">Clear</a></form>"#,
        text("identity", "Identity", "exact name"),
        text("since", "Since (UTC)", "2026-11-22, 2026-11-22T10:30 or 2h"),
        text("until", "Until (UTC)", "2026-11-22 or 2026-11-22T18:00"),
        select("verdict", "Statement verdict", read::VERDICTS),
        select("outcome", "Outcome", read::OUTCOMES),
        text("database", "Database", "exact name"),
        text("application", "Application", "exact name"),
    )
}

fn requests_links(requests: &[String]) -> String {
    requests
        .iter()
        .map(|r| {
            format!(
                r#"<a class="request" href="/requests/{}">{}</a>"#,
                form_urlencode(r),
                escape(r)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads what was appended to the log into the inbox's session index and
/// runs `with` on it, off the async threads. The error is for the
/// operator log only: it names server paths.
async fn with_index<T: Send + 'static>(
    inbox: &Inbox,
    with: impl FnOnce(&crate::audit::read::SessionIndex) -> T + Send + 'static,
) -> Result<T, String> {
    let Some(dir) = inbox.audit_dir.clone() else {
        return Err("no audit log is configured".into());
    };
    let index = inbox.audit_sessions.clone();
    tokio::task::spawn_blocking(move || {
        let mut index = index.lock().unwrap_or_else(|e| e.into_inner());
        index.refresh(&dir)?;
        Ok(with(&index))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()))
}

/// What the browser is told when the log cannot be read: the details,
/// which name server paths, go to the operator log.
fn unreadable(e: &str) -> &'static str {
    tracing::warn!(error = %e, "the inbox cannot read the audit log");
    "The audit log cannot be read; the gateway's log says why."
}

pub async fn sessions(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let (identity, session) = match auditor(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let identity: &Identity = &identity;
    let browse = match browse_query(raw.as_deref(), true) {
        Ok(b) => b,
        Err(problem) => {
            let given = Browse::default();
            return (
                StatusCode::BAD_REQUEST,
                page(
                    "Sessions",
                    Some((identity, &session)),
                    &format!(
                        r#"<p class="error" id="filter-error">{}</p>{}"#,
                        escape(&problem),
                        filter_form(&given)
                    ),
                ),
            )
                .into_response();
        }
    };
    let (filter, number) = (browse.filter.clone(), browse.page);
    let listed = with_index(&inbox, move |index| {
        let total = index.matching(&filter).count();
        let shown: Vec<_> = index
            .matching(&filter)
            .rev()
            .skip((number - 1) * SESSIONS_PAGE)
            .take(SESSIONS_PAGE)
            .cloned()
            .collect();
        (total, shown)
    })
    .await;
    let (total, shown) = match listed {
        Ok(l) => l,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                page(
                    "Sessions",
                    Some((identity, &session)),
                    &format!(r#"<p class="error">{}</p>"#, unreadable(&e)),
                ),
            )
                .into_response()
        }
    };
    let mut rows = String::new();
    for s in &shown {
        let _ = write!(
            rows,
            r#"<tr class="session"><td><a class="replay" href="/sessions/{link}">{id}</a></td><td>{who}</td><td class="wide">{app}</td><td>{database}</td><td>{started}</td><td class="wide">{end}</td><td>{statements}<br><small>{verdicts}</small></td><td>{requests}<br><small>{outcomes}</small></td><td>{errors}</td></tr>"#,
            link = form_urlencode(&s.session),
            id = escape(&s.session),
            who = escape(&s.identity),
            app = escape(&crate::audit::read::escape_terminal(
                s.application.as_deref().unwrap_or("")
            )),
            database = escape(&crate::audit::read::escape_terminal(&s.database)),
            started = escape(&s.started),
            end = escape(&crate::audit::read::escape_terminal(&format!(
                "{} ({})",
                s.ended.as_deref().unwrap_or("open"),
                s.end_reason.as_deref().unwrap_or("no end recorded")
            ))),
            statements = s.statements,
            verdicts = escape(&counts(&s.verdicts)),
            requests = requests_links(&s.requests),
            outcomes = escape(&counts(&s.outcomes)),
            errors = s.errors,
        );
    }
    if shown.is_empty() {
        rows.push_str(r#"<tr class="empty"><td colspan="9">No session matches.</td></tr>"#);
    }
    let query = browse.query();
    let link = |n: usize, label: &str| {
        let sep = if query.is_empty() { "" } else { "&" };
        format!(r#" <a href="/sessions?{query}{sep}page={n}">{label}</a>"#)
    };
    let pages = total.div_ceil(SESSIONS_PAGE).max(1);
    let mut nav = format!(
        "Sessions {}–{} of {total}, newest first.",
        ((number - 1) * SESSIONS_PAGE + 1).min(total),
        ((number - 1) * SESSIONS_PAGE + shown.len()).min(total),
    );
    if number > 1 {
        nav.push_str(&link(1, "first"));
        nav.push_str(&link(number - 1, "previous"));
    }
    if number < pages {
        nav.push_str(&link(number + 1, "next"));
        nav.push_str(&link(pages, "last"));
    }
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    page(
        "Sessions",
        Some((identity, &session)),
        &format!(
            r#"{form}
<p id="pages">{nav}</p>
<p id="downloads">Download the {total} matching sessions: <a id="download-csv" href="/sessions.csv{q}">CSV</a> · <a id="download-jsonl" href="/sessions.jsonl{q}">JSON lines</a></p>
<table id="sessions"><thead><tr><th>Session</th><th>Identity</th><th class="wide">Application</th><th>Database</th><th>Started</th><th class="wide">Ended</th><th>Statements</th><th>Requests</th><th>Errors</th></tr></thead><tbody>{rows}</tbody></table>"#,
            form = filter_form(&browse),
        ),
    )
    .into_response()
}

/// One CSV cell, quoted: quotes doubled; control characters written as
/// visible escapes (`\x1b`, `\n`) so that a cell is one line and cannot
/// drive a terminal; and a cell a spreadsheet would read as a formula
/// (starting with `=`, `+`, `-` or `@`) prefixed with `'`.
pub fn csv_cell(value: &str) -> String {
    let shown = crate::audit::read::escape_terminal(value).replace('\n', "\\n");
    let shown = if shown.starts_with(['=', '+', '-', '@']) {
        format!("'{shown}")
    } else {
        shown
    };
    format!("\"{}\"", shown.replace('"', "\"\""))
}

fn csv_row(out: &mut String, cells: &[&str]) {
    let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
    out.push_str(&row.join(","));
    out.push_str("\r\n");
}

/// A download: the body, its type and a file name made of safe characters.
fn download(body: String, content_type: &str, name: &str) -> Response {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

const SESSION_COLUMNS: &[&str] = &[
    "session",
    "started",
    "ended",
    "end_reason",
    "identity",
    "role",
    "client",
    "application",
    "protocol",
    "database",
    "tls",
    "statements",
    "allow",
    "hold",
    "deny",
    "errors",
    "rows",
    "masked",
    "records",
    "requests",
    "approved",
    "denied",
    "expired",
    "withdrawn",
];

/// The (filtered) session list as a file: `/sessions.csv` and
/// `/sessions.jsonl`, with the list page's filters.
pub async fn sessions_download(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    if let Err(r) = auditor(&inbox, &headers) {
        return *r;
    }
    let csv = match uri.path() {
        "/sessions.csv" => true,
        "/sessions.jsonl" => false,
        _ => return (StatusCode::NOT_FOUND, "no such page").into_response(),
    };
    let browse = match browse_query(raw.as_deref(), false) {
        Ok(b) => b,
        Err(problem) => return (StatusCode::BAD_REQUEST, problem).into_response(),
    };
    let filter = browse.filter;
    let body = with_index(&inbox, move |index| {
        let mut out = String::new();
        if csv {
            csv_row(&mut out, SESSION_COLUMNS);
        }
        for s in index.matching(&filter) {
            if !csv {
                out.push_str(&serde_json::to_string(s).unwrap_or_default());
                out.push('\n');
                continue;
            }
            let n = |m: &std::collections::BTreeMap<String, u64>, k: &str| {
                m.get(k).copied().unwrap_or(0).to_string()
            };
            csv_row(
                &mut out,
                &[
                    &s.session,
                    &s.started,
                    s.ended.as_deref().unwrap_or(""),
                    s.end_reason.as_deref().unwrap_or(""),
                    &s.identity,
                    &s.role,
                    &s.client,
                    s.application.as_deref().unwrap_or(""),
                    &s.protocol,
                    &s.database,
                    if s.tls { "true" } else { "false" },
                    &s.statements.to_string(),
                    &n(&s.verdicts, "allow"),
                    &n(&s.verdicts, "hold"),
                    &n(&s.verdicts, "deny"),
                    &s.errors.to_string(),
                    &s.rows.to_string(),
                    &s.masked.to_string(),
                    &s.records.to_string(),
                    &s.requests.join(" "),
                    &n(&s.outcomes, "approved"),
                    &n(&s.outcomes, "denied"),
                    &n(&s.outcomes, "expired"),
                    &n(&s.outcomes, "withdrawn"),
                ],
            );
        }
        out
    })
    .await;
    match body {
        Ok(body) if csv => download(body, "text/csv; charset=utf-8", "airlock-sessions.csv"),
        Ok(body) => download(body, "application/x-ndjson", "airlock-sessions.jsonl"),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, unreadable(&e)).into_response(),
    }
}

const TRANSCRIPT_COLUMNS: &[&str] = &[
    "seq", "ts", "kind", "verdict", "rule", "classes", "objects", "request", "sql", "tag", "rows",
    "masked", "code", "message", "approver", "reason", "hash",
];

/// A session's records as a file: `/sessions/{id}/transcript.jsonl` (the
/// lines exactly as written, so hashes can be checked) or
/// `/sessions/{id}/transcript.csv`.
pub async fn transcript_download(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    use serde_json::Value;
    if let Err(r) = auditor(&inbox, &headers) {
        return *r;
    }
    let csv = match file.as_str() {
        "transcript.csv" => true,
        "transcript.jsonl" => false,
        _ => return (StatusCode::NOT_FOUND, "no such page").into_response(),
    };
    let Some(dir) = inbox.audit_dir.clone() else {
        return (StatusCode::NOT_FOUND, "no audit log").into_response();
    };
    let wanted = id.clone();
    let body = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        let mut records = 0usize;
        if csv {
            csv_row(&mut out, TRANSCRIPT_COLUMNS);
        }
        crate::audit::read::session_each(&dir, &wanted, |line, r| {
            records += 1;
            if !csv {
                out.push_str(line);
                out.push('\n');
                return;
            }
            let s = |k: &str| match r.get(k) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(" "),
                Some(other) => other.to_string(),
            };
            let cells: Vec<String> = TRANSCRIPT_COLUMNS.iter().map(|k| s(k)).collect();
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            csv_row(&mut out, &cells);
        })
        .map(|()| (records, out))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match body {
        Ok((0, _)) => (StatusCode::NOT_FOUND, "no such session").into_response(),
        Ok((_, body)) if csv => download(
            body,
            "text/csv; charset=utf-8",
            &format!("airlock-session-{id}.csv"),
        ),
        Ok((_, body)) => download(
            body,
            "application/x-ndjson",
            &format!("airlock-session-{id}.jsonl"),
        ),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, unreadable(&e)).into_response(),
    }
}

/// Records per replay page.
const REPLAY_PAGE: usize = 1000;

/// The replay's query: `page=N`, or `request=ID` for the page that holds
/// that request's `hold` record.
fn replay_query(raw: Option<&str>) -> Result<(usize, Option<String>), String> {
    let (mut number, mut request) = (1, None);
    for (name, value) in form_urlencoded(raw.unwrap_or("").as_bytes()) {
        match name.as_str() {
            "page" => {
                number = match value.trim().parse::<usize>() {
                    Ok(n) if (1..=1_000_000).contains(&n) => n,
                    _ => {
                        return Err(format!(
                            "page `{}` is not a page number (1, 2, …).",
                            shorten(&value, 40)
                        ))
                    }
                }
            }
            "request" if !value.is_empty() && value.len() <= 200 => request = Some(value),
            "request" => return Err("request: give a request id.".into()),
            other => {
                return Err(format!(
                    "`{}` is not a replay parameter: give page or request.",
                    shorten(other, 40)
                ))
            }
        }
    }
    Ok((number, request))
}

pub async fn replay(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let (identity, session) = match auditor(&inbox, &headers) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let identity: &Identity = &identity;
    let Some(dir) = inbox.audit_dir.clone() else {
        return page("Replay", Some((identity, &session)), "<p>No audit log.</p>").into_response();
    };
    let (number, request) = match replay_query(raw.as_deref()) {
        Ok(q) => q,
        Err(problem) => {
            return (
                StatusCode::BAD_REQUEST,
                page(
                    "Replay",
                    Some((identity, &session)),
                    &format!(
                        r#"<p class="error" id="replay-error">{}</p>"#,
                        escape(&problem)
                    ),
                ),
            )
                .into_response()
        }
    };
    if let Some(request) = request {
        let wanted = request.clone();
        let place = with_index(&inbox, move |index| index.request(&wanted).cloned()).await;
        return match place {
            Ok(Some(place)) => Redirect::to(&format!(
                "/sessions/{}?page={}#request-{}",
                form_urlencode(&place.session),
                place.position as usize / REPLAY_PAGE + 1,
                form_urlencode(&request),
            ))
            .into_response(),
            Ok(None) => (
                StatusCode::NOT_FOUND,
                page(
                    "Replay",
                    Some((identity, &session)),
                    &format!(
                        r#"<p class="error" id="replay-error">The log has no hold record of request {}.</p>"#,
                        escape(&request)
                    ),
                ),
            )
                .into_response(),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, unreadable(&e)).into_response(),
        };
    }
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
        // Each record can be linked to (`#seq-N`); a hold or a decision
        // links to its request's page, and a hold is the place a
        // request's "replay" link lands on (`#request-ID`).
        let request = record
            .1
            .get("request")
            .and_then(serde_json::Value::as_str)
            .filter(|_| {
                matches!(
                    record.1.get("kind").and_then(serde_json::Value::as_str),
                    Some("hold" | "decision")
                )
            });
        let anchor = match (request, record.1.get("kind").and_then(|k| k.as_str())) {
            (Some(r), Some("hold")) => format!(r#" id="request-{}""#, escape(r)),
            _ => seq.map(|s| format!(r#" id="seq-{s}""#)).unwrap_or_default(),
        };
        let text = match request {
            Some(r) => format!(
                r#"{} <a class="request" href="/requests/{}">open request {}</a>
"#,
                text.trim_end_matches('\n'),
                form_urlencode(r),
                escape(r)
            ),
            None => text,
        };
        let _ = write!(transcript, r#"<span class="record"{anchor}>"#);
        match (seq, broken_seq) {
            (Some(seq), Some(at)) if seq == at => {
                let _ = write!(
                    transcript,
                    r#"<mark id="broken" class="broken">BROKEN HERE (record {seq}) — </mark>{text}"#
                );
            }
            _ => transcript.push_str(&text),
        }
        transcript.push_str("</span>");
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
            form_urlencode(&id)
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
            r#"<p class="{class}" id="chain">{}{}</p><p id="pages">{nav}</p>
<p id="downloads">Download this session: <a id="download-csv" href="/sessions/{link}/transcript.csv">CSV</a> · <a id="download-jsonl" href="/sessions/{link}/transcript.jsonl">JSON lines, as written</a> · <a href="/sessions">all sessions</a></p>
<pre id="transcript">{transcript}</pre>"#,
            escape(&status),
            escape(&session_status),
            link = form_urlencode(&id),
        ),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_inert_and_one_line() {
        assert_eq!(csv_cell("plain"), "\"plain\"");
        assert_eq!(csv_cell("say \"hi\", then"), "\"say \"\"hi\"\", then\"");
        for formula in ["=1+2", "+1", "-1", "@SUM(A1)"] {
            assert_eq!(csv_cell(formula), format!("\"'{formula}\""));
        }
        // Control characters are written visibly, so a leading tab or CR
        // cannot hide a formula and a cell stays on one line.
        assert_eq!(csv_cell("\t=1"), "\"\\t=1\"");
        assert_eq!(csv_cell("\r=1"), "\"\\r=1\"");
        assert_eq!(csv_cell("a\nb"), "\"a\\nb\"");
        assert_eq!(csv_cell("\u{1b}[31mred"), "\"\\x1b[31mred\"");
        assert_eq!(csv_cell("\u{202e}txt"), "\"\\u{202e}txt\"");
        assert_eq!(csv_cell(""), "\"\"");
    }

    #[test]
    fn the_session_list_query_is_checked() {
        let b = browse_query(
            Some("identity=agent&since=2026-11-22&verdict=hold&outcome=denied&database=app&application=my+app&page=3"),
            true,
        )
        .unwrap();
        assert_eq!(b.page, 3);
        assert_eq!(b.filter.identity.as_deref(), Some("agent"));
        assert_eq!(
            b.filter.since.as_deref(),
            Some("2026-11-22T00:00:00.000000Z")
        );
        assert_eq!(b.filter.application.as_deref(), Some("my app"));
        assert_eq!(
            b.query(),
            "identity=agent&since=2026-11-22&verdict=hold&outcome=denied&database=app&application=my%20app"
        );
        assert_eq!(browse_query(None, true).unwrap().filter, Default::default());
        assert_eq!(
            browse_query(Some("identity=&verdict="), true)
                .unwrap()
                .filter,
            Default::default()
        );
        for (bad, says) in [
            ("verdict=perhaps", "is not one of"),
            ("outcome=pending", "is not one of"),
            ("since=tomorrow", "is not a time"),
            ("until=2026-02-30T25:00", "is not a time"),
            ("since=2026-11-23&until=2026-11-22", "since is after until"),
            ("page=-1", "is not a page number"),
            ("page=0", "is not a page number"),
            ("role=admin", "is not a filter"),
            ("database=a&database=b", "given twice"),
            ("identity=%00", "no control characters"),
            ("identity=a%E2%80%AEb", "no control characters"),
        ] {
            let e = browse_query(Some(bad), true).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // Downloads take no page.
        assert!(browse_query(Some("page=2"), false)
            .unwrap_err()
            .contains("is not a filter"));
    }

    #[test]
    fn replay_queries_are_checked() {
        assert_eq!(replay_query(None).unwrap(), (1, None));
        assert_eq!(replay_query(Some("page=4")).unwrap(), (4, None));
        assert_eq!(
            replay_query(Some("request=r-1")).unwrap(),
            (1, Some("r-1".to_string()))
        );
        for bad in ["page=x", "page=0", "request=", "seq=3"] {
            assert!(replay_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
