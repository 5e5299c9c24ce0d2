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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::approval::HoldRequest;

/// Where one group's notifications go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Our own JSON; `secret` signs it (`X-Airlock-Signature`).
    Webhook {
        url: String,
        secret: Option<String>,
    },
    Slack {
        url: String,
    },
    Teams {
        url: String,
    },
}

impl Channel {
    pub fn url(&self) -> &str {
        match self {
            Channel::Webhook { url, .. } | Channel::Slack { url } | Channel::Teams { url } => url,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Slack { .. } => "slack",
            Channel::Teams { .. } => "teams",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub channel: Channel,
}

/// Sends notifications and keeps count.
pub struct Notifier {
    targets: Vec<Target>,
    tls: tokio_rustls::TlsConnector,
    /// Attempts between which the delay doubles from `first_backoff`.
    attempts: u32,
    first_backoff: Duration,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Notifier {
    pub fn new(targets: Vec<Target>) -> Notifier {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Notifier {
            targets,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
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

    /// Follows `created` (the store's feed of new requests) until the
    /// store goes away, telling each request's group; links point into
    /// the inbox at `inbox_url`.
    pub async fn run(
        self: Arc<Self>,
        mut created: tokio::sync::broadcast::Receiver<HoldRequest>,
        inbox_url: String,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        let base = inbox_url.trim_end_matches('/').to_string();
        loop {
            match created.recv().await {
                Ok(request) => {
                    self.request_created(&request, &format!("{base}/requests/{}", request.id))
                }
                Err(RecvError::Lagged(missed)) => {
                    self.failed.fetch_add(missed, Ordering::Relaxed);
                    tracing::warn!(missed, "new requests came faster than notifications could be started; those wait in the inbox unannounced");
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Tells the request's group, in the background; `link` is the
    /// request's page in the inbox.
    pub fn request_created(self: &Arc<Self>, request: &HoldRequest, link: &str) {
        for target in self.targets.iter().filter(|t| t.group == request.group) {
            let (body, headers) = message(&target.channel, request, link);
            let (this, channel, id) = (self.clone(), target.channel.clone(), request.id.clone());
            tokio::spawn(async move { this.deliver(&channel, &id, &body, &headers).await });
        }
    }

    async fn deliver(
        &self,
        channel: &Channel,
        id: &str,
        body: &[u8],
        headers: &[(String, String)],
    ) {
        let mut delay = self.first_backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match post(&self.tls, channel.url(), body, headers).await {
                Ok(status) if (200..300).contains(&status) => {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(request = %id, kind = channel.kind(), attempt, "approvers notified");
                    return;
                }
                // The receiver refuses this message: sending it again will not help.
                Ok(status) if (400..500).contains(&status) && status != 408 && status != 429 => {
                    last = format!("HTTP {status}");
                    break;
                }
                Ok(status) => last = format!("HTTP {status}"),
                Err(e) => last = e,
            }
            if attempt < self.attempts {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        self.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            request = %id, kind = channel.kind(), url = %redact_url(channel.url()), error = %last,
            failed_total = self.failed.load(Ordering::Relaxed),
            "approvers could not be notified; the request waits in the inbox all the same"
        );
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
        Channel::Slack { .. } => {
            let facts = format!(
                "*Request* {}\n*From* {} ({}) via {} at {}\n*Database* {} ({})\n*Classes* {}\n*Objects* {}\n*Expires* {}",
                slack_escape(&r.id),
                slack_escape(&r.requester),
                r.requester_role,
                slack_escape(r.application.as_deref().unwrap_or("?")),
                slack_escape(&r.client),
                slack_escape(&r.database),
                r.protocol,
                r.classes.join(", "),
                slack_escape(&r.objects.join(", ")),
                expires,
            );
            let body = serde_json::to_vec(&json!({
                "text": format!("{summary}: {link}"),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(&summary)}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": format!("```{}```", slack_escape(&r.sql))}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": facts}},
                    {"type": "actions", "elements": [
                        {"type": "button", "text": {"type": "plain_text", "text": "Open request"}, "url": link}
                    ]}
                ]
            }))
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

/// HMAC-SHA256 over `<timestamp>.<body>`, hex: what a receiver recomputes
/// with the shared secret (and rejects if the timestamp is old).
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    crate::hex::encode(&mac.finalize().into_bytes())
}

/// Slack mrkdwn treats `&`, `<` and `>` as markup.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// POSTs `body` as JSON to an http or https URL; the response status.
async fn post(
    tls: &tokio_rustls::TlsConnector,
    url: &str,
    body: &[u8],
    headers: &[(String, String)],
) -> Result<u16, String> {
    let (https, rest) = match url.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => return Err("the URL must start with http:// or https://".into()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>()
                .map_err(|_| format!("invalid port in {authority}"))?,
        ),
        _ => (authority, if https { 443 } else { 80 }),
    };
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: airlock/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("invalid host {host}: {e}"))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {authority}: {e}"))?;
            exchange(stream, request.as_bytes(), body).await
        } else {
            exchange(tcp, request.as_bytes(), body).await
        }
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("{authority} did not answer within 10 s"))?
}

async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    head: &[u8],
    body: &[u8],
) -> Result<u16, String> {
    stream.write_all(head).await.map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut response = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // The status line is all that is read; a receiver's body is not ours.
    while !response.windows(2).any(|w| w == b"\r\n") && response.len() < 8192 {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&response);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "the receiver's answer is not HTTP".to_string())
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
