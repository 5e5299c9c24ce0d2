//! Break-glass: an admin opens a time-boxed emergency window for one
//! identity, during which that identity's *held* statements are approved
//! at once — each approval recorded in the audit chain as a break-glass
//! decision (the request's one vote names the window and the admin who
//! opened it) and announced to every notification channel.
//!
//! What it never does: turn a denial into anything else (only holds are
//! approved), apply to the opening admin's own sessions, or outlive its
//! window (it is checked against the clock at each use, so it ends by
//! itself). Windows are kept in the approval store, sealed like requests:
//! a window opened through any gateway's inbox covers the identity's
//! sessions on every gateway sharing the store, and a window written into
//! the store by anyone else is ignored.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::approval::now_ms;
use crate::approval::store::Approvals;

/// The longest window an admin may open.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One open window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub identity: String,
    pub opened_by: String,
    pub reason: String,
    pub opened_ms: u64,
    pub until_ms: u64,
}

impl Window {
    /// The approver name its decisions carry.
    pub fn approver(&self) -> String {
        format!("break-glass (opened by {})", self.opened_by)
    }
}

/// Why a window was not opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BreakGlassError {
    #[error("only admins open break-glass windows")]
    NotAdmin,
    #[error("an admin cannot open a break-glass window for their own identity")]
    OwnIdentity,
    #[error("no agent identity is named `{0}`")]
    UnknownIdentity(String),
    #[error("a reason is required")]
    NoReason,
    #[error("the window must last between 1 second and 24 hours")]
    BadDuration,
    #[error("{0}")]
    Store(String),
}

/// What every notification channel is told.
#[derive(Clone, Debug)]
pub enum Announcement {
    Opened(Window),
    /// Closed before its time, by the admin named.
    Closed(Window, String),
    /// A held request approved by the window.
    Used(Window, Box<crate::approval::HoldRequest>),
}

impl Announcement {
    /// What logs name it by: the request, or the window's identity.
    pub fn id(&self) -> String {
        match self {
            Announcement::Used(_, r) => r.id.clone(),
            Announcement::Opened(w) | Announcement::Closed(w, _) => {
                format!("break-glass:{}", w.identity)
            }
        }
    }
}

/// Announces windows as they open, close and approve. The windows
/// themselves are in the approval store.
pub struct BreakGlass {
    announce: tokio::sync::broadcast::Sender<Announcement>,
}

impl Default for BreakGlass {
    fn default() -> Self {
        Self {
            announce: tokio::sync::broadcast::channel(256).0,
        }
    }
}

impl BreakGlass {
    /// Openings, closings and uses, for the notifier.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Announcement> {
        self.announce.subscribe()
    }

    /// Tells the channels that `window` approved `request`.
    pub fn announce_use(&self, window: &Window, request: &crate::approval::HoldRequest) {
        let _ = self.announce.send(Announcement::Used(
            window.clone(),
            Box::new(request.clone()),
        ));
    }

    /// Opens (or replaces) the window of `identity` for `duration`, in
    /// `approvals`. `identity_is_agent` says whether it names a configured
    /// agent.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        &self,
        approvals: &Approvals,
        admin: &str,
        admin_is_admin: bool,
        identity: &str,
        identity_is_agent: bool,
        duration: Duration,
        reason: &str,
    ) -> Result<Window, BreakGlassError> {
        if !admin_is_admin {
            return Err(BreakGlassError::NotAdmin);
        }
        if admin == identity {
            return Err(BreakGlassError::OwnIdentity);
        }
        if !identity_is_agent {
            return Err(BreakGlassError::UnknownIdentity(identity.to_string()));
        }
        if reason.trim().is_empty() {
            return Err(BreakGlassError::NoReason);
        }
        if duration < Duration::from_secs(1) || duration > MAX_WINDOW {
            return Err(BreakGlassError::BadDuration);
        }
        let now = now_ms();
        let window = Window {
            identity: identity.to_string(),
            opened_by: admin.to_string(),
            reason: reason.trim().to_string(),
            opened_ms: now,
            until_ms: now + duration.as_millis() as u64,
        };
        approvals
            .put_window(&window)
            .await
            .map_err(|e| BreakGlassError::Store(e.to_string()))?;
        let _ = self.announce.send(Announcement::Opened(window.clone()));
        Ok(window)
    }

    /// Closes `identity`'s window early, as admin `by`; the window that
    /// was open, if any.
    pub async fn close(
        &self,
        approvals: &Approvals,
        identity: &str,
        by: &str,
    ) -> Result<Option<Window>, BreakGlassError> {
        let taken = approvals
            .take_window(identity)
            .await
            .map_err(|e| BreakGlassError::Store(e.to_string()))?;
        let closed = taken.filter(|w| w.until_ms > now_ms());
        if let Some(w) = &closed {
            let _ = self
                .announce
                .send(Announcement::Closed(w.clone(), by.to_string()));
        }
        Ok(closed)
    }

    /// The window open for `identity` now, if any. The clock decides at
    /// each use: a window whose time is up approves nothing. A store that
    /// cannot be read opens nothing.
    pub async fn active(&self, approvals: &Approvals, identity: &str) -> Option<Window> {
        let now = now_ms();
        match approvals.windows().await {
            Ok(windows) => windows
                .into_iter()
                .find(|w| w.identity == identity && w.until_ms > now),
            Err(e) => {
                tracing::error!(error = %e, "break-glass windows cannot be read; none applies");
                None
            }
        }
    }

    /// Every window still open.
    pub async fn list(&self, approvals: &Approvals) -> Result<Vec<Window>, BreakGlassError> {
        let now = now_ms();
        let windows = approvals
            .windows()
            .await
            .map_err(|e| BreakGlassError::Store(e.to_string()))?;
        Ok(windows.into_iter().filter(|w| w.until_ms > now).collect())
    }
}

/// Reads `30m`, `2h`, `90s`, `1h30m` (and a bare number of seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    number
        .is_empty()
        .then_some(Duration::from_secs(total))
        .filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Approvals) {
        let dir = tempfile::tempdir().unwrap();
        let approvals = Approvals::open_embedded(
            &dir.path().join("approvals.sqlite3"),
            crate::approval::store::StoreKey::new([7; 32]),
        )
        .unwrap();
        (dir, approvals)
    }

    #[tokio::test]
    async fn windows_are_refused_for_the_admin_and_for_non_agents() {
        let (_dir, a) = store();
        let bg = BreakGlass::default();
        let d = Duration::from_secs(60);
        assert_eq!(
            bg.open(&a, "root", true, "root", true, d, "x").await,
            Err(BreakGlassError::OwnIdentity)
        );
        assert_eq!(
            bg.open(&a, "dba", false, "bot", true, d, "x").await,
            Err(BreakGlassError::NotAdmin)
        );
        assert!(matches!(
            bg.open(&a, "root", true, "nobody", false, d, "x").await,
            Err(BreakGlassError::UnknownIdentity(_))
        ));
        assert_eq!(
            bg.open(&a, "root", true, "bot", true, d, " ").await,
            Err(BreakGlassError::NoReason)
        );
        assert_eq!(
            bg.open(
                &a,
                "root",
                true,
                "bot",
                true,
                Duration::from_secs(25 * 3600),
                "x"
            )
            .await,
            Err(BreakGlassError::BadDuration)
        );
        assert!(bg.active(&a, "bot").await.is_none());
        let w = bg
            .open(&a, "root", true, "bot", true, d, "outage")
            .await
            .unwrap();
        assert_eq!(bg.active(&a, "bot").await, Some(w));
        assert!(bg.active(&a, "other").await.is_none());
        assert!(bg.close(&a, "bot", "root").await.unwrap().is_some());
        assert!(bg.close(&a, "bot", "root").await.unwrap().is_none());
        assert!(bg.active(&a, "bot").await.is_none());
    }

    #[tokio::test]
    async fn a_window_ends_by_itself() {
        let (_dir, a) = store();
        let bg = BreakGlass::default();
        bg.open(&a, "root", true, "bot", true, Duration::from_secs(1), "x")
            .await
            .unwrap();
        assert!(bg.active(&a, "bot").await.is_some());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(bg.active(&a, "bot").await.is_none());
        assert!(bg.list(&a).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_window_written_into_the_store_with_another_key_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approvals.sqlite3");
        let ours = Approvals::open_embedded(&path, crate::approval::store::StoreKey::new([7; 32]))
            .unwrap();
        let forger =
            Approvals::open_embedded(&path, crate::approval::store::StoreKey::new([8; 32]))
                .unwrap();
        let bg = BreakGlass::default();
        bg.open(
            &forger,
            "root",
            true,
            "bot",
            true,
            Duration::from_secs(60),
            "forged",
        )
        .await
        .unwrap();
        assert!(bg.active(&forger, "bot").await.is_some());
        assert!(bg.active(&ours, "bot").await.is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "m", "30x", "0m", "10m5", "-5m"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
