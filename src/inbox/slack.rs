//! Slack as a place to decide: the app's bot posts each new request to a
//! channel with Approve and Deny buttons, Slack calls the inbox back when
//! someone clicks (`POST /slack/interactions`), and the message is edited
//! as the request is decided, expires or is withdrawn.
//!
//! What a click may do is decided here exactly as in the web inbox:
//!
//! - the callback counts only if Slack's signature verifies: `v0=` and
//!   HMAC-SHA256 over `v0:{timestamp}:{body}` with the app's signing
//!   secret, compared in constant time, the timestamp within five minutes
//!   of now. Whoever reaches the inbox without the secret decides nothing;
//! - the Slack user must be mapped to an Airlock identity
//!   (`slack_user = "U…"` on its `[[identity]]`), and the decision is
//!   that identity's, through the inbox's own rules (auditors, agents,
//!   one's own request, the group, quorum, a reason to deny, ended
//!   requests);
//! - Deny opens a dialog that asks for the reason the agent is shown.
//!
//! Every refused callback is written to the audit log
//! (`decision_refused`). Accepted ones become votes like any other and
//! reach the log with the request's decision.
//!
//! This module never decides on its own and never follows a URL found in
//! a callback: it talks only to the configured Slack API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::Inbox;
use crate::approval::store::Approvals;
use crate::approval::{HoldRequest, State};
use crate::audit::AuditEvent;

/// Slack's Web API.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

/// How far a callback's timestamp may be from now: Slack's own advice,
/// and the window in which a captured callback could be replayed.
const MAX_SKEW_SECS: u64 = 5 * 60;

/// Slack refuses a section whose text is longer than 3000 characters.
const MAX_SECTION_CHARS: usize = 2800;

/// The button and dialog ids this module puts in messages.
const APPROVE: &str = "airlock_approve";
const DENY: &str = "airlock_deny";
const DENY_DIALOG: &str = "airlock_deny_reason";

/// `[slack]`: the API address and the app's secrets.
#[derive(Clone, Default)]
pub struct Settings {
    /// Without the trailing slash, e.g. `https://slack.com/api`.
    pub api_url: String,
    /// The bot's token (`xoxb-…`): posts and edits messages, opens dialogs.
    pub bot_token: Option<String>,
    /// Signs Slack's callbacks; without it, buttons are not offered and
    /// callbacks are refused.
    pub signing_secret: Option<String>,
}

// Secrets never reach a log line, even in debug output.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_url", &self.api_url)
            .field("bot_token", &self.bot_token.as_ref().map(|_| "…"))
            .field("signing_secret", &self.signing_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Why a call to Slack did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("no bot token: set [slack] bot_token_file")]
    NoToken,
    #[error("cannot reach Slack: {0}")]
    Transport(String),
    #[error("Slack answered HTTP {0}")]
    Status(u16),
    #[error("Slack's answer is not JSON: {0}")]
    Answer(String),
    #[error("Slack refused {method}: {error}")]
    Refused { method: String, error: String },
}

impl SlackError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SlackError::Transport(_) => true,
            SlackError::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            SlackError::Refused { error, .. } => {
                matches!(
                    error.as_str(),
                    "ratelimited" | "service_unavailable" | "internal_error" | "fatal_error"
                )
            }
            SlackError::NoToken | SlackError::Answer(_) => false,
        }
    }
}

/// Why a callback was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("the X-Slack-Request-Timestamp or X-Slack-Signature header is missing")]
    Missing,
    #[error("the request timestamp is more than five minutes from now")]
    Stale,
    #[error("the signature does not match the body")]
    Signature,
}

/// Checks Slack's signature of a callback: `signature` is the
/// `X-Slack-Signature` header (`v0=<hex>`), `timestamp` the
/// `X-Slack-Request-Timestamp` one, `now_secs` the current Unix time.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: u64,
) -> Result<(), Unverified> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Unverified::Missing);
    };
    let at: u64 = timestamp.trim().parse().map_err(|_| Unverified::Stale)?;
    if at.abs_diff(now_secs) > MAX_SKEW_SECS {
        return Err(Unverified::Stale);
    }
    let given = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(crate::hex::decode::<32>)
        .ok_or(Unverified::Signature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"v0:");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).map_err(|_| Unverified::Signature)
}

/// The `X-Slack-Signature` value Slack would send for `body` at
/// `timestamp` (what [`verify`] recomputes; tests sign with it).
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", crate::hex::encode(&mac.finalize().into_bytes()))
}

/// One message the bot posted for a request.
#[derive(Clone, Debug)]
struct Posted {
    channel: String,
    ts: String,
}

/// The Slack app: its API client, secrets, and the messages it posted
/// that still have to follow their requests.
pub struct Slack {
    settings: Settings,
    http: reqwest::Client,
    /// Request id → its messages. The async lock puts the edits of one
    /// request in order, so an older state never overwrites a newer one.
    posted: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Vec<Posted>>>>>,
}

impl Slack {
    pub fn new(settings: Settings, http: reqwest::Client) -> Slack {
        Slack {
            settings,
            http,
            posted: Mutex::new(HashMap::new()),
        }
    }

    /// Whether callbacks can be verified, and so buttons offered.
    pub fn interactive(&self) -> bool {
        self.settings.signing_secret.is_some() && self.settings.bot_token.is_some()
    }

    /// Calls Web API `method` with a JSON body; Slack's answer when `ok`.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        let token = self
            .settings
            .bot_token
            .as_deref()
            .ok_or(SlackError::NoToken)?;
        let response = self
            .http
            .post(format!("{}/{method}", self.settings.api_url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| SlackError::Transport(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(SlackError::Status(status));
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|e| SlackError::Answer(e.without_url().to_string()))?;
        if answer["ok"] != Value::Bool(true) {
            return Err(SlackError::Refused {
                method: method.to_string(),
                error: answer["error"].as_str().unwrap_or("unknown").to_string(),
            });
        }
        Ok(answer)
    }

    /// Posts `request` to `channel` and remembers the message, so that it
    /// is edited as the request changes.
    pub async fn post(
        &self,
        channel: &str,
        request: &HoldRequest,
        link: &str,
    ) -> Result<(), SlackError> {
        let mut body = message(request, link, self.interactive());
        body["channel"] = channel.into();
        let answer = self.call("chat.postMessage", &body).await?;
        let posted = Posted {
            channel: answer["channel"].as_str().unwrap_or(channel).to_string(),
            ts: answer["ts"]
                .as_str()
                .ok_or_else(|| SlackError::Answer("chat.postMessage gave no ts".into()))?
                .to_string(),
        };
        let entry = self
            .posted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(request.id.clone())
            .or_default()
            .clone();
        entry.lock().await.push(posted);
        Ok(())
    }

    /// Posts `text` (escaped) to `channel`: an announcement with nothing
    /// to edit later.
    pub async fn post_text(&self, channel: &str, text: &str) -> Result<(), SlackError> {
        self.call(
            "chat.postMessage",
            &json!({"channel": channel, "text": escape(text)}),
        )
        .await
        .map(|_| ())
    }

    /// Edits the messages of request `id` to show it as it now is; once it
    /// has nothing left to show, forgets them.
    pub async fn refresh(&self, approvals: &Approvals, id: &str, base: &str) {
        let Some(entry) = self
            .posted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
        else {
            return;
        };
        let posts = entry.lock().await;
        let request = match approvals.get(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(request = %id, error = %e, "cannot read the request to update its Slack message");
                return;
            }
        };
        let link = format!("{base}/requests/{}", request.id);
        let body = message(&request, &link, self.interactive());
        for post in posts.iter() {
            let mut update = body.clone();
            update["channel"] = post.channel.as_str().into();
            update["ts"] = post.ts.as_str().into();
            if let Err(e) = self.call("chat.update", &update).await {
                tracing::warn!(request = %id, error = %e, "cannot update the Slack message");
            }
        }
        if settled(&request) {
            drop(posts);
            self.posted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        }
    }

    /// Follows the store's changes and keeps the posted messages true to
    /// their requests, until the store goes away.
    pub async fn keep_updated(
        self: Arc<Self>,
        approvals: Approvals,
        mut changes: tokio::sync::broadcast::Receiver<String>,
        base: String,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let ids = match changes.recv().await {
                Ok(id) => vec![id],
                // Some changes were missed: look at every message kept.
                Err(RecvError::Lagged(_)) => self
                    .posted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .cloned()
                    .collect(),
                Err(RecvError::Closed) => return,
            };
            for id in ids {
                let known = self
                    .posted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&id);
                if known {
                    let (this, approvals, base) = (self.clone(), approvals.clone(), base.clone());
                    tokio::spawn(async move { this.refresh(&approvals, &id, &base).await });
                }
            }
        }
    }
}

/// Whether a request's message will not change again: it ended without
/// running, or it ran and the outcome is known, or it waits for a re-send
/// that may never come (defer mode).
fn settled(r: &HoldRequest) -> bool {
    match r.state {
        State::Pending => false,
        State::Approved => r.outcome.is_some() || !r.waiting,
        State::Denied | State::Expired | State::Withdrawn => true,
    }
}

/// Slack mrkdwn treats `&`, `<` and `>` as markup.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text})
}

/// The message for `request`: what it is, and either the buttons (pending,
/// `buttons`) or what became of it. Also what an incoming webhook gets
/// (without buttons: nothing verifies who would click them).
pub fn message(r: &HoldRequest, link: &str, buttons: bool) -> Value {
    let summary = format!(
        "{} wants to run a statement held by rule \"{}\" ({} approval{} from {} needed)",
        r.requester,
        r.rule,
        r.quorum,
        if r.quorum == 1 { "" } else { "s" },
        r.group
    );
    let expires = crate::audit::chain::timestamp(Duration::from_millis(r.expires_ms));
    let facts = format!(
        "*Request* {}\n*From* {} ({}) via {} at {}\n*Database* {} ({})\n*Classes* {}\n*Objects* {}\n*Expires* {}",
        escape(&r.id),
        escape(&r.requester),
        r.requester_role,
        escape(r.application.as_deref().unwrap_or("?")),
        escape(&r.client),
        escape(&r.database),
        r.protocol,
        r.classes.join(", "),
        escape(&r.objects.join(", ")),
        expires,
    );
    let statement = format!("```{}```", escape(&shorten(&r.sql, MAX_SECTION_CHARS)));
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(&summary)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": statement}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": facts}}),
    ];
    let open = json!({"type": "button", "action_id": "airlock_open", "text": plain("Open request"), "url": link});
    let text = if r.state == State::Pending {
        if r.approvals() > 0 {
            let so_far: Vec<&str> = r
                .votes
                .iter()
                .filter(|v| v.approve)
                .map(|v| v.approver.as_str())
                .collect();
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                "Approved so far by {} ({} of {})", escape(&so_far.join(", ")), r.approvals(), r.quorum
            )}]}));
        }
        let mut elements = Vec::new();
        if buttons {
            elements.push(json!({
                "type": "button", "action_id": APPROVE, "style": "primary", "value": r.id,
                "text": plain("Approve"),
                "confirm": {
                    "title": plain("Approve and run?"),
                    "text": {"type": "mrkdwn", "text": format!("The statement of request {} runs as soon as the approvals needed are in.", escape(&r.id))},
                    "confirm": plain("Approve and run"),
                    "deny": plain("Cancel"),
                }
            }));
            elements.push(json!({
                "type": "button", "action_id": DENY, "style": "danger", "value": r.id,
                "text": plain("Deny…"),
            }));
        }
        elements.push(open);
        blocks.push(json!({"type": "actions", "block_id": "airlock_decide", "elements": elements}));
        format!("{summary}: {link}")
    } else {
        let outcome = ended_line(r);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", escape(&outcome))}}));
        blocks.push(json!({"type": "actions", "block_id": "airlock_decide", "elements": [open]}));
        format!("Request {}: {outcome}", r.id)
    };
    json!({"text": text, "blocks": blocks})
}

/// What became of an ended request, in one line.
fn ended_line(r: &HoldRequest) -> String {
    let approvers: Vec<&str> = r
        .votes
        .iter()
        .filter(|v| v.approve)
        .map(|v| v.approver.as_str())
        .collect();
    match r.state {
        State::Pending => "pending".into(),
        State::Approved => {
            let ran = match &r.outcome {
                Some(o) if o.ok => format!("; ran: {}", o.summary),
                Some(o) => format!("; ran and {}", o.summary),
                None if r.waiting => "; running".into(),
                None => "; runs when the agent re-sends it".into(),
            };
            format!("Approved by {}{ran}", approvers.join(", "))
        }
        State::Denied => match r.denial() {
            Some(v) => format!("Denied by {}: {}", v.approver, v.reason),
            None => "Denied".into(),
        },
        State::Expired => format!(
            "Expired without a decision; never ran ({})",
            r.ended_because.as_deref().unwrap_or("no quorum in time")
        ),
        State::Withdrawn => format!(
            "Withdrawn; never ran: {}",
            r.ended_because.as_deref().unwrap_or("the agent gave up")
        ),
    }
}

/// The Deny dialog for request `r`; the channel travels in its metadata
/// so a refusal can be said where the button was clicked.
fn deny_dialog(r: &HoldRequest, channel: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": DENY_DIALOG,
        "private_metadata": json!({"request": r.id, "channel": channel}).to_string(),
        "title": plain("Deny request"),
        "submit": plain("Deny"),
        "close": plain("Cancel"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!(
                "Deny request {} from {}? The agent is shown your reason.\n```{}```",
                escape(&r.id), escape(&r.requester), escape(&shorten(&r.sql, 2000))
            )}},
            {"type": "input", "block_id": "reason", "label": plain("Reason"),
             "element": {"type": "plain_text_input", "action_id": "reason", "multiline": true,
                         "min_length": 1, "max_length": 2000}}
        ]
    })
}

// ---- the callback ------------------------------------------------------------

/// `POST /slack/interactions`: a click on a button, or the Deny dialog sent.
pub async fn interactions(
    Extract(inbox): Extract<Inbox>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(slack) = inbox.slack.clone().filter(|s| s.interactive()) else {
        return (
            StatusCode::NOT_FOUND,
            "Slack interactivity is not configured ([slack] bot_token_file and signing_secret_file)",
        )
            .into_response();
    };
    let secret = slack.settings.signing_secret.as_deref().unwrap_or_default();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = crate::approval::now_ms() / 1000;
    if let Err(why) = verify(
        secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        now,
    ) {
        refused(
            &inbox,
            peer,
            "",
            "",
            &format!("unverified Slack callback: {why}"),
        );
        return (StatusCode::UNAUTHORIZED, why.to_string()).into_response();
    }
    let payload = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .and_then(|(_, v)| serde_json::from_str::<Value>(&v).ok());
    let Some(payload) = payload else {
        return (StatusCode::BAD_REQUEST, "no JSON payload").into_response();
    };
    let user = payload["user"]["id"].as_str().unwrap_or("").to_string();
    match payload["type"].as_str() {
        Some("block_actions") => {
            let action = &payload["actions"][0];
            let id = action["value"].as_str().unwrap_or("").to_string();
            let channel = payload["channel"]["id"]
                .as_str()
                .or(payload["container"]["channel_id"].as_str())
                .unwrap_or("")
                .to_string();
            match action["action_id"].as_str() {
                Some(APPROVE) => {
                    if let Err(why) = decide(&inbox, peer, &user, &id, true, "").await {
                        slack.tell(&channel, &user, &why).await;
                    }
                }
                Some(DENY) => {
                    // The rules are checked now too, so nobody types a
                    // reason for a decision that cannot be taken.
                    let trigger = payload["trigger_id"].as_str().unwrap_or("");
                    match may_decide(&inbox, &user, &id).await {
                        Ok(request) => {
                            let view = deny_dialog(&request, &channel);
                            let opened = slack
                                .call("views.open", &json!({"trigger_id": trigger, "view": view}))
                                .await;
                            if let Err(e) = opened {
                                tracing::warn!(request = %id, error = %e, "cannot open the Slack deny dialog");
                                slack.tell(&channel, &user, &format!("The deny dialog could not be opened ({e}); deny in the inbox instead.")).await;
                            }
                        }
                        Err(why) => {
                            refused(&inbox, peer, &slack_who(&inbox, &user), &id, &why);
                            slack.tell(&channel, &user, &why).await;
                        }
                    }
                }
                // The "Open request" link button also calls back.
                _ => {}
            }
            StatusCode::OK.into_response()
        }
        Some("view_submission") if payload["view"]["callback_id"] == DENY_DIALOG => {
            let meta: Value = payload["view"]["private_metadata"]
                .as_str()
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default();
            let id = meta["request"].as_str().unwrap_or("");
            let reason = payload["view"]["state"]["values"]["reason"]["reason"]["value"]
                .as_str()
                .unwrap_or("");
            match decide(&inbox, peer, &user, id, false, reason).await {
                // An empty answer closes the dialog.
                Ok(()) => StatusCode::OK.into_response(),
                Err(why) => axum::Json(json!({
                    "response_action": "errors",
                    "errors": {"reason": why},
                }))
                .into_response(),
            }
        }
        _ => StatusCode::OK.into_response(),
    }
}

/// Who a Slack user is, as the audit log names them.
fn slack_who(inbox: &Inbox, user: &str) -> String {
    match inbox.identities.by_slack_user(user) {
        Some(i) => format!("slack:{user} ({})", i.name),
        None => format!("slack:{user}"),
    }
}

/// Writes a refused callback to the audit log.
fn refused(inbox: &Inbox, peer: SocketAddr, user: &str, request: &str, why: &str) {
    tracing::warn!(client = %peer, user, request, reason = why, "Slack decision refused");
    if let Some(audit) = &inbox.audit {
        audit.record(AuditEvent::DecisionRefused {
            via: "slack",
            client_addr: peer,
            user,
            request,
            reason: why,
        });
    }
}

/// The request, if Slack user `user` may decide it now.
async fn may_decide(inbox: &Inbox, user: &str, id: &str) -> Result<HoldRequest, String> {
    let identity = inbox
        .identities
        .by_slack_user(user)
        .ok_or_else(|| unmapped(user))?;
    let request = match inbox.approvals.get(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(format!("Request {id} does not exist.")),
        Err(e) => return Err(e.to_string()),
    };
    match super::web::why_not_decider(&request, &identity) {
        Some(why) => Err(why),
        None => Ok(request),
    }
}

fn unmapped(user: &str) -> String {
    format!("Your Slack user {user} is not an Airlock approver: an administrator maps it with slack_user on an [[identity]].")
}

/// Casts Slack user `user`'s decision through the inbox's rules; why
/// not, in a sentence, when refused (and then audited).
async fn decide(
    inbox: &Inbox,
    peer: SocketAddr,
    user: &str,
    id: &str,
    approve: bool,
    reason: &str,
) -> Result<(), String> {
    let outcome = match inbox.identities.by_slack_user(user) {
        None => Err(unmapped(user)),
        Some(identity) => {
            let verdict = if approve { "approve" } else { "deny" };
            super::web::cast(inbox, &identity, id, verdict, reason)
                .await
                .inspect(|()| {
                    tracing::info!(request = %id, approver = %identity.name, slack_user = user, approve, "decision recorded from Slack")
                })
        }
    };
    if let Err(why) = &outcome {
        refused(inbox, peer, &slack_who(inbox, user), id, why);
    }
    outcome
}

impl Slack {
    /// Tells `user` alone, in `channel`, why their click did nothing.
    async fn tell(&self, channel: &str, user: &str, text: &str) {
        if channel.is_empty() || user.is_empty() {
            return;
        }
        let body = json!({"channel": channel, "user": user, "text": text});
        if let Err(e) = self.call("chat.postEphemeral", &body).await {
            tracing::warn!(error = %e, "cannot tell a Slack user why their decision was refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

    #[test]
    fn a_signed_callback_verifies_and_any_change_does_not() {
        let body = b"payload=%7B%7D";
        let now = 1_700_000_000;
        let good = sign(SECRET, now, body);
        let ts = now.to_string();
        assert_eq!(verify(SECRET, Some(&ts), Some(&good), body, now), Ok(()));
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&good), body, now + MAX_SKEW_SECS),
            Ok(())
        );
        // Another body, secret, timestamp, or a mangled header.
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&good), b"payload=%7B%20%7D", now),
            Err(Unverified::Signature)
        );
        let other = sign("another-secret", now, body);
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&other), body, now),
            Err(Unverified::Signature)
        );
        let later = (now + 1).to_string();
        assert_eq!(
            verify(SECRET, Some(&later), Some(&good), body, now),
            Err(Unverified::Signature)
        );
        for mangled in [
            &good[3..],
            &good[..good.len() - 1],
            "v1=00",
            "",
            &good.replace("v0=", "v1="),
        ] {
            assert_eq!(
                verify(SECRET, Some(&ts), Some(mangled), body, now),
                Err(Unverified::Signature),
                "{mangled}"
            );
        }
    }

    #[test]
    fn old_future_and_missing_timestamps_are_refused() {
        let body = b"payload=%7B%7D";
        let now = 1_700_000_000;
        for at in [now - MAX_SKEW_SECS - 1, now + MAX_SKEW_SECS + 1, 0] {
            let sig = sign(SECRET, at, body);
            assert_eq!(
                verify(SECRET, Some(&at.to_string()), Some(&sig), body, now),
                Err(Unverified::Stale)
            );
        }
        let sig = sign(SECRET, now, body);
        assert_eq!(
            verify(SECRET, Some("-1"), Some(&sig), body, now),
            Err(Unverified::Stale)
        );
        assert_eq!(
            verify(SECRET, None, Some(&sig), body, now),
            Err(Unverified::Missing)
        );
        assert_eq!(
            verify(SECRET, Some(&now.to_string()), None, body, now),
            Err(Unverified::Missing)
        );
    }

    #[test]
    fn settings_never_print_their_secrets() {
        let s = Settings {
            api_url: DEFAULT_API_URL.into(),
            bot_token: Some("xoxb-secret-token".into()),
            signing_secret: Some(SECRET.into()),
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("xoxb-secret-token") && !shown.contains(SECRET));
    }
}
