//! The HTTP side for approvers and auditors: web pages ([`web`]) and the
//! JSON API over held requests (this module), with bearer tokens from
//! `[[identity]] api_token_hash`. Agents have no way in: the configuration
//! gives them no token and no inbox password, and a token or login that
//! maps to an agent is refused all the same.
//!
//! ```text
//! GET  /api/requests?state=pending|approved|denied|expired|withdrawn|all&limit=N
//! GET  /api/requests/{id}
//! POST /api/requests/{id}/approve   {"reason": "…"}   (body optional)
//! POST /api/requests/{id}/deny      {"reason": "…"}   (reason required)
//! POST /slack/interactions           Slack's signed callback (see [`slack`])
//! GET  /api/breakglass               open break-glass windows
//! POST /api/breakglass               {"identity": "…", "for": "30m", "reason": "…"}   (admins)
//! POST /api/breakglass/{identity}/close                                       (admins)
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::approval::store::{Approvals, Decided};
use crate::approval::{State, VoteError};
use crate::identity::{Identities, Identity, LoginThrottle, Role};

pub mod breakglass;
pub mod notify;
pub mod oidc;
pub mod slack;
pub mod web;

/// What every handler needs.
#[derive(Clone)]
pub struct Inbox {
    pub approvals: Approvals,
    pub identities: Arc<Identities>,
    pub web: Arc<web::WebSessions>,
    pub throttle: Arc<LoginThrottle>,
    /// Cookies are marked Secure when the inbox is served over https.
    pub secure_cookies: bool,
    /// The audit log, for the session views and requests' recent statements.
    pub audit_dir: Option<PathBuf>,
    /// The keys the replay view verifies the chain with: the trusted
    /// public key (`audit.public_key`, else this gateway's own) and the
    /// chain key of format-1 records, if any.
    pub audit_trust: crate::audit::verify::Trust,
    /// Verification resumed page view after page view, not redone.
    pub audit_verifier: Arc<std::sync::Mutex<crate::audit::verify::Incremental>>,
    /// The session browser's index, read on from where the last view left it.
    pub audit_sessions: Arc<std::sync::Mutex<crate::audit::read::SessionIndex>>,
    /// Single sign-on through an OpenID Connect provider (`[inbox.oidc]`).
    pub sso: Option<Arc<oidc::Sso>>,
    /// Where refused decisions from outside the web pages are recorded.
    pub audit: Option<Arc<crate::audit::Audit>>,
    /// The Slack app, when configured: its callbacks decide requests.
    pub slack: Option<Arc<slack::Slack>>,
    /// Break-glass windows, shared with the gate.
    pub break_glass: Arc<crate::approval::breakglass::BreakGlass>,
}

pub fn router(inbox: Inbox) -> Router {
    Router::new()
        .route("/", get(web::pending))
        .route("/login", get(web::login_form).post(web::login))
        .route("/login/oidc", get(oidc::start))
        .route("/login/oidc/callback", get(oidc::callback))
        .route("/logout", post(web::logout))
        .route("/pending-rows", get(web::pending_fragment))
        .route("/events", get(web::events))
        .route("/history", get(web::history))
        .route("/requests/{id}", get(web::request_page))
        .route("/requests/{id}/state", get(web::request_state))
        .route("/requests/{id}/decide", post(web::decide))
        .route("/batch", post(web::batch))
        .route("/sessions", get(web::sessions))
        .route("/sessions.csv", get(web::sessions_download))
        .route("/sessions.jsonl", get(web::sessions_download))
        .route("/sessions/{id}", get(web::replay))
        .route("/sessions/{id}/{file}", get(web::transcript_download))
        .route("/api/requests", get(list))
        .route("/api/requests/{id}", get(show))
        .route("/api/requests/{id}/approve", post(approve))
        .route("/api/requests/{id}/deny", post(deny))
        .route("/slack/interactions", post(slack::interactions))
        .route(
            "/breakglass",
            get(breakglass::page_view).post(breakglass::page_open),
        )
        .route("/breakglass/{identity}/close", post(breakglass::page_close))
        .route(
            "/api/breakglass",
            get(breakglass::api_list).post(breakglass::api_open),
        )
        .route(
            "/api/breakglass/{identity}/close",
            post(breakglass::api_close),
        )
        .with_state(inbox)
}

/// Serves the inbox on `listener` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    inbox: Inbox,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let app = router(inbox).into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "the inbox stopped");
    }
}

/// A request as the API shows it: its fields, plus every `…_ms` instant
/// also as ISO 8601 UTC (`created_at`, `expires_at`, votes' `at`,
/// `consumed_at`, the outcome's `at`).
fn with_times(request: &crate::approval::HoldRequest) -> serde_json::Value {
    let iso = |ms: u64| crate::audit::chain::timestamp(std::time::Duration::from_millis(ms));
    let mut v = serde_json::to_value(request).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("created_at".into(), iso(request.created_ms).into());
        o.insert("expires_at".into(), iso(request.expires_ms).into());
        if let Some(ms) = request.consumed_ms {
            o.insert("consumed_at".into(), iso(ms).into());
        }
        if let (Some(out), Some(outcome)) = (o.get_mut("outcome"), &request.outcome) {
            if let Some(out) = out.as_object_mut() {
                out.insert("at".into(), iso(outcome.at_ms).into());
            }
        }
        if let Some(votes) = o.get_mut("votes").and_then(|v| v.as_array_mut()) {
            for (vote, at) in votes.iter_mut().zip(request.votes.iter().map(|v| v.at_ms)) {
                if let Some(vote) = vote.as_object_mut() {
                    vote.insert("at".into(), iso(at).into());
                }
            }
        }
    }
    v
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Why a caller is turned away.
struct Refused(StatusCode, &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        problem(self.0, self.1)
    }
}

/// The identity behind the request's bearer token.
fn caller(inbox: &Inbox, headers: &HeaderMap) -> Result<Arc<Identity>, Refused> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(Refused(
            StatusCode::UNAUTHORIZED,
            "an API token is needed: Authorization: Bearer <token>",
        ));
    };
    match inbox.identities.by_token(token) {
        None => Err(Refused(StatusCode::UNAUTHORIZED, "unknown API token")),
        Some(i) if i.role == Role::Agent => Err(Refused(
            StatusCode::FORBIDDEN,
            "agents have no access to the inbox",
        )),
        Some(i) => Ok(i),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
}

async fn list(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(r) = caller(&inbox, &headers) {
        return r.into_response();
    }
    let state = match q.state.as_deref().unwrap_or("pending") {
        "all" => None,
        "pending" => Some(State::Pending),
        "approved" => Some(State::Approved),
        "denied" => Some(State::Denied),
        "expired" => Some(State::Expired),
        "withdrawn" => Some(State::Withdrawn),
        other => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown state `{other}`: pending, approved, denied, expired, withdrawn or all"
                ),
            )
        }
    };
    match inbox
        .approvals
        .list(state, q.limit.unwrap_or(100).min(1000))
        .await
    {
        Ok(requests) => Json(requests.iter().map(with_times).collect::<Vec<_>>()).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn show(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = caller(&inbox, &headers) {
        return r.into_response();
    }
    match inbox.approvals.get(&id).await {
        Ok(Some(r)) => Json(with_times(&r)).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            format!("request {id} does not exist"),
        ),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn approve(
    inbox: Extract<Inbox>,
    headers: HeaderMap,
    id: Path<String>,
    body: Bytes,
) -> Response {
    decide(inbox, headers, id, body, true).await
}

async fn deny(
    inbox: Extract<Inbox>,
    headers: HeaderMap,
    id: Path<String>,
    body: Bytes,
) -> Response {
    decide(inbox, headers, id, body, false).await
}

#[derive(Deserialize, Default)]
struct Reason {
    #[serde(default)]
    reason: String,
}

async fn decide(
    Extract(inbox): Extract<Inbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
    approve: bool,
) -> Response {
    let who = match caller(&inbox, &headers) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    if who.role == Role::Auditor {
        return problem(
            StatusCode::FORBIDDEN,
            "auditors read requests; they do not decide them",
        );
    }
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        Reason::default()
    } else {
        match serde_json::from_slice::<Reason>(&body) {
            Ok(r) => r,
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    format!("the body must be JSON like {{\"reason\": \"…\"}}: {e}"),
                )
            }
        }
    };
    if reason.reason.len() > 2000 {
        return problem(
            StatusCode::BAD_REQUEST,
            "the reason is longer than 2000 bytes",
        );
    }
    if !approve && reason.reason.trim().is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "a denial needs a reason (the agent is shown it): {\"reason\": \"…\"}",
        );
    }
    match inbox
        .approvals
        .vote(
            &id,
            &who.name,
            who.role,
            &who.groups,
            approve,
            reason.reason.trim(),
        )
        .await
    {
        Ok(request) => {
            tracing::info!(request = %id, approver = %who.name, approve, state = request.state.name(), "decision recorded");
            Json(with_times(&request)).into_response()
        }
        Err(Decided::Refused(e)) => {
            let status = match e {
                VoteError::NotFound(_) => StatusCode::NOT_FOUND,
                VoteError::Agent | VoteError::OwnRequest | VoteError::NotInGroup(_) => {
                    StatusCode::FORBIDDEN
                }
                VoteError::AlreadyVoted | VoteError::Closed(_) | VoteError::Expired => {
                    StatusCode::CONFLICT
                }
            };
            problem(status, e.to_string())
        }
        Err(Decided::Store(e)) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
