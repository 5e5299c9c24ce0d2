//! Telling approvers that a request waits for them: a webhook (JSON body
//! signed with HMAC-SHA256), a Slack incoming webhook, or a Microsoft Teams
//! Adaptive Card — configured per approver group (`[[notify]]`).
//!
//! A notification never blocks, approves or denies anything: the notifier
//! follows the approval store's feed of new requests, each message is sent
//! by its own task, retried with backoff, and a failure is logged and
//! counted. The request itself is already stored and the statement already
//! waiting when the first attempt starts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::slack::Slack;
use crate::approval::breakglass::Announcement;
use crate::approval::store::Approvals;
use crate::approval::HoldRequest;

/// Where one group's notifications go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Our own JSON; `secret` signs it (`X-Airlock-Signature`).
    Webhook {
        url: String,
        secret: Option<String>,
    },
    /// A Slack incoming webhook: the message and a link, no buttons.
    Slack {
        url: String,
    },
    /// A channel the Slack app's bot posts to: Approve and Deny buttons
    /// (with `[slack] signing_secret_file`), and the message edited as the
    /// request is decided, expires or is withdrawn.
    SlackApp {
        channel: String,
    },
    Teams {
        url: String,
    },
}

impl Channel {
    /// Where it is sent, as the log may show it.
    fn shown(&self) -> String {
        match self {
            Channel::Webhook { url, .. } | Channel::Slack { url } | Channel::Teams { url } => {
                redact_url(url)
            }
            Channel::SlackApp { channel } => format!("slack channel {channel}"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Slack { .. } | Channel::SlackApp { .. } => "slack",
            Channel::Teams { .. } => "teams",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub channel: Channel,
}

/// The HTTP client for notifications and Slack's API: rustls with the
/// webpki roots, no redirects (a receiver that moves is misconfigured, and
/// a redirect must not carry a signed body elsewhere), ten seconds a call.
pub fn http_client() -> Result<reqwest::Client, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS for notifications: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("airlock/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client for notifications: {e}"))
}

/// What one notification tells.
#[derive(Clone, Copy)]
enum News<'a> {
    /// A request waits for the group; `link` is its page.
    Request(&'a HoldRequest, &'a str),
    /// A break-glass window opened, closed or approved a request; `base` is
    /// the inbox's address.
    BreakGlass(&'a Announcement, &'a str),
}

impl News<'_> {
    /// What the log names it by.
    fn id(&self) -> String {
        match self {
            News::Request(r, _) => r.id.clone(),
            News::BreakGlass(a, _) => a.id(),
        }
    }
}

/// What one delivery attempt came to.
enum Attempt {
    Delivered,
    /// Worth trying again: the receiver is down or busy.
    Retry(String),
    /// The receiver refuses this message: sending it again will not help.
    GiveUp(String),
}

/// Sends notifications and keeps count.
pub struct Notifier {
    targets: Vec<Target>,
    http: reqwest::Client,
    slack: Arc<Slack>,
    /// Attempts between which the delay doubles from `first_backoff`.
    attempts: u32,
    first_backoff: Duration,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Notifier {
    pub fn new(targets: Vec<Target>, http: reqwest::Client, slack: Arc<Slack>) -> Notifier {
        Notifier {
            targets,
            http,
            slack,
            attempts: 4,
            first_backoff: Duration::from_millis(500),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Notifications delivered, and those given up on after every retry.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    /// Follows the store's feed of new requests until the store goes away,
    /// telling each request's group (links point into the inbox at
    /// `inbox_url`), and keeps the Slack app's messages up to date.
    pub async fn run(self: Arc<Self>, approvals: Approvals, inbox_url: String) {
        use tokio::sync::broadcast::error::RecvError;
        let base = inbox_url.trim_end_matches('/').to_string();
        let mut created = approvals.subscribe_created();
        if self
            .targets
            .iter()
            .any(|t| matches!(t.channel, Channel::SlackApp { .. }))
        {
            tokio::spawn(self.slack.clone().keep_updated(
                approvals.clone(),
                approvals.subscribe(),
                base.clone(),
            ));
        }
        loop {
            match created.recv().await {
                Ok(request) => self.request_created(&approvals, &request, &base),
                Err(RecvError::Lagged(missed)) => {
                    self.failed.fetch_add(missed, Ordering::Relaxed);
                    tracing::warn!(missed, "new requests came faster than notifications could be started; those wait in the inbox unannounced");
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Follows break-glass openings, closings and uses, telling *every*
    /// channel whatever group it serves: an emergency window is everyone's
    /// news.
    pub async fn run_break_glass(
        self: Arc<Self>,
        mut announced: tokio::sync::broadcast::Receiver<Announcement>,
        inbox_url: String,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        let base = inbox_url.trim_end_matches('/').to_string();
        loop {
            match announced.recv().await {
                Ok(announcement) => {
                    for target in &self.targets {
                        let (this, channel) = (self.clone(), target.channel.clone());
                        let (announcement, base) = (announcement.clone(), base.clone());
                        tokio::spawn(async move {
                            this.deliver(&channel, News::BreakGlass(&announcement, &base))
                                .await
                        });
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    self.failed.fetch_add(missed, Ordering::Relaxed);
                    tracing::warn!(
                        missed,
                        "break-glass announcements came faster than they could be sent"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Tells the request's group, in the background; `base` is the inbox's
    /// address.
    fn request_created(self: &Arc<Self>, approvals: &Approvals, request: &HoldRequest, base: &str) {
        let link = format!("{base}/requests/{}", request.id);
        for target in self.targets.iter().filter(|t| t.group == request.group) {
            let (this, channel) = (self.clone(), target.channel.clone());
            let (request, link, approvals, base) = (
                request.clone(),
                link.clone(),
                approvals.clone(),
                base.to_string(),
            );
            tokio::spawn(async move {
                if this.deliver(&channel, News::Request(&request, &link)).await {
                    if let Channel::SlackApp { .. } = channel {
                        // Decided while it was being posted: show it now.
                        this.slack.refresh(&approvals, &request.id, &base).await;
                    }
                }
            });
        }
    }

    /// Sends one notification with retries; whether it arrived.
    async fn deliver(&self, channel: &Channel, news: News<'_>) -> bool {
        let mut delay = self.first_backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.attempt(channel, news).await {
                Attempt::Delivered => {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(about = %news.id(), kind = channel.kind(), attempt, "approvers notified");
                    return true;
                }
                Attempt::GiveUp(why) => {
                    last = why;
                    break;
                }
                Attempt::Retry(why) => last = why,
            }
            if attempt < self.attempts {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        self.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            about = %news.id(), kind = channel.kind(), to = %channel.shown(), error = %last,
            failed_total = self.failed.load(Ordering::Relaxed),
            "approvers could not be notified; the request waits in the inbox all the same"
        );
        false
    }

    async fn attempt(&self, channel: &Channel, news: News<'_>) -> Attempt {
        let url = match channel {
            Channel::SlackApp { channel } => {
                let posted = match news {
                    News::Request(request, link) => self.slack.post(channel, request, link).await,
                    News::BreakGlass(a, base) => {
                        self.slack
                            .post_text(channel, &break_glass_text(a, base))
                            .await
                    }
                };
                return match posted {
                    Ok(()) => Attempt::Delivered,
                    Err(e) if e.is_transient() => Attempt::Retry(e.to_string()),
                    Err(e) => Attempt::GiveUp(e.to_string()),
                };
            }
            Channel::Webhook { url, .. } | Channel::Slack { url } | Channel::Teams { url } => url,
        };
        let (body, headers) = match news {
            News::Request(request, link) => message(channel, request, link),
            News::BreakGlass(a, base) => break_glass_message(channel, a, base),
        };
        let mut post = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            post = post.header(name, value);
        }
        match post.send().await {
            // The status is all that is read; a receiver's body is not ours.
            Ok(r) if r.status().is_success() => Attempt::Delivered,
            Ok(r) => {
                let status = r.status().as_u16();
                if (400..500).contains(&status) && status != 408 && status != 429 {
                    Attempt::GiveUp(format!("HTTP {status}"))
                } else {
                    Attempt::Retry(format!("HTTP {status}"))
                }
            }
            // Without the URL: webhook paths carry their secret.
            Err(e) => Attempt::Retry(e.without_url().to_string()),
        }
    }
}

/// The URL without its path (webhook paths carry their secret).
fn redact_url(url: &str) -> String {
    match url.find("://").map(|i| i + 3) {
        Some(start) => match url[start..].find('/') {
            Some(slash) => format!("{}/…", &url[..start + slash]),
            None => url.to_string(),
        },
        None => "(invalid url)".into(),
    }
}

/// The body and extra headers of the notification for `channel`.
pub fn message(channel: &Channel, r: &HoldRequest, link: &str) -> (Vec<u8>, Vec<(String, String)>) {
    let summary = format!(
        "{} wants to run a statement held by rule \"{}\" ({} approval{} from {} needed)",
        r.requester,
        r.rule,
        r.quorum,
        if r.quorum == 1 { "" } else { "s" },
        r.group
    );
    let expires = crate::audit::chain::timestamp(Duration::from_millis(r.expires_ms));
    match channel {
        Channel::Webhook { secret, .. } => {
            let body = serde_json::to_vec(&json!({
                "event": "request.created",
                "request": r,
                "url": link,
            }))
            .expect("JSON serializes");
            let mut headers = Vec::new();
            if let Some(secret) = secret {
                let timestamp = crate::approval::now_ms() / 1000;
                headers.push(("X-Airlock-Timestamp".into(), timestamp.to_string()));
                headers.push((
                    "X-Airlock-Signature".into(),
                    format!("sha256={}", signature(secret, timestamp, &body)),
                ));
            }
            (body, headers)
        }
        Channel::Slack { .. } | Channel::SlackApp { .. } => {
            let body = serde_json::to_vec(&super::slack::message(r, link, false))
                .expect("JSON serializes");
            (body, Vec::new())
        }
        Channel::Teams { .. } => {
            let fact = |title: &str, value: String| json!({"title": title, "value": value});
            let body = serde_json::to_vec(&json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": "Approval needed", "weight": "Bolder", "size": "Medium"},
                            {"type": "TextBlock", "text": summary, "wrap": true},
                            {"type": "TextBlock", "text": r.sql, "wrap": true, "fontType": "Monospace"},
                            {"type": "FactSet", "facts": [
                                fact("Request", r.id.clone()),
                                fact("From", format!("{} ({}) at {}", r.requester, r.requester_role, r.client)),
                                fact("Application", r.application.clone().unwrap_or_default()),
                                fact("Database", format!("{} ({})", r.database, r.protocol)),
                                fact("Classes", r.classes.join(", ")),
                                fact("Objects", r.objects.join(", ")),
                                fact("Expires", expires),
                            ]}
                        ],
                        "actions": [{"type": "Action.OpenUrl", "title": "Open request", "url": link}]
                    }
                }]
            }))
            .expect("JSON serializes");
            (body, Vec::new())
        }
    }
}

/// What a break-glass announcement says, in one line.
pub fn break_glass_text(a: &Announcement, base: &str) -> String {
    let until = |w: &crate::approval::breakglass::Window| {
        crate::audit::chain::timestamp(Duration::from_millis(w.until_ms))
    };
    match a {
        Announcement::Opened(w) => format!(
            "BREAK-GLASS: {} opened an emergency window for {} until {}: statements of {} that rules hold are approved without approvers. Reason: {}",
            w.opened_by, w.identity, until(w), w.identity, w.reason
        ),
        Announcement::Closed(w, by) => format!(
            "Break-glass window for {} (opened by {}) closed early by {}",
            w.identity, w.opened_by, by
        ),
        Announcement::Used(w, r) => format!(
            "BREAK-GLASS: request {} of {} ({}) approved by the window {} opened ({}): {base}/requests/{}",
            r.id, r.requester, r.classes.join(", "), w.opened_by, w.reason, r.id
        ),
    }
}

/// The body and extra headers of a break-glass announcement for `channel`.
pub fn break_glass_message(
    channel: &Channel,
    a: &Announcement,
    base: &str,
) -> (Vec<u8>, Vec<(String, String)>) {
    let text = break_glass_text(a, base);
    match channel {
        Channel::Webhook { secret, .. } => {
            let payload = match a {
                Announcement::Opened(w) => json!({"event": "breakglass.opened", "window": w, "text": text}),
                Announcement::Closed(w, by) => {
                    json!({"event": "breakglass.closed", "window": w, "closed_by": by, "text": text})
                }
                Announcement::Used(w, r) => json!({
                    "event": "breakglass.used",
                    "window": w,
                    "request": r,
                    "url": format!("{base}/requests/{}", r.id),
                    "text": text,
                }),
            };
            let body = serde_json::to_vec(&payload).expect("JSON serializes");
            let mut headers = Vec::new();
            if let Some(secret) = secret {
                let timestamp = crate::approval::now_ms() / 1000;
                headers.push(("X-Airlock-Timestamp".into(), timestamp.to_string()));
                headers.push((
                    "X-Airlock-Signature".into(),
                    format!("sha256={}", signature(secret, timestamp, &body)),
                ));
            }
            (body, headers)
        }
        Channel::Slack { .. } | Channel::SlackApp { .. } => (
            serde_json::to_vec(&json!({"text": super::slack::escape(&text)}))
                .expect("JSON serializes"),
            Vec::new(),
        ),
        Channel::Teams { .. } => (
            serde_json::to_vec(&json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": "Break-glass", "weight": "Bolder", "size": "Medium", "color": "Attention"},
                            {"type": "TextBlock", "text": text, "wrap": true}
                        ]
                    }
                }]
            }))
            .expect("JSON serializes"),
            Vec::new(),
        ),
    }
}

/// HMAC-SHA256 over `<timestamp>.<body>`, hex: what a receiver recomputes
/// with the shared secret (and rejects if the timestamp is old).
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    crate::hex::encode(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_timestamp_and_the_body() {
        let a = signature("s3cret", 1_700_000_000, b"{\"a\":1}");
        assert_eq!(a.len(), 64);
        assert_ne!(a, signature("s3cret", 1_700_000_001, b"{\"a\":1}"));
        assert_ne!(a, signature("other", 1_700_000_000, b"{\"a\":1}"));
        assert_ne!(a, signature("s3cret", 1_700_000_000, b"{\"a\":2}"));
    }

    #[test]
    fn urls_are_logged_without_their_paths() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
    }
}
