//! Break-glass: an admin opens a time-boxed emergency window for one
//! identity, during which that identity's *held* statements are approved
//! at once — each approval recorded in the audit chain as a break-glass
//! decision (the request's one vote names the window and the admin who
//! opened it) and announced to every notification channel.
//!
//! What it never does: turn a denial into anything else (only holds are
//! approved), apply to the opening admin's own sessions, or outlive its
//! window (it is checked against the clock at each use, so it ends by
//! itself). Windows live in the gateway's memory: a restart closes them,
//! which fails closed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::approval::now_ms;

/// The longest window an admin may open.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// One open window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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

/// The open windows, by identity.
pub struct BreakGlass {
    windows: Mutex<HashMap<String, Window>>,
    announce: tokio::sync::broadcast::Sender<Announcement>,
}

impl Default for BreakGlass {
    fn default() -> Self {
        Self {
            windows: Default::default(),
            announce: tokio::sync::broadcast::channel(256).0,
        }
    }
}

impl BreakGlass {
    /// Openings and uses, for the notifier.
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

    /// Opens (or replaces) the window of `identity` for `duration`.
    /// `identity_is_agent` says whether it names a configured agent.
    pub fn open(
        &self,
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
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(identity.to_string(), window.clone());
        let _ = self.announce.send(Announcement::Opened(window.clone()));
        Ok(window)
    }

    /// Closes `identity`'s window early, as admin `by`; the window that
    /// was open, if any.
    pub fn close(&self, identity: &str, by: &str) -> Option<Window> {
        let closed = self
            .windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(identity)
            .filter(|w| w.until_ms > now_ms())?;
        let _ = self
            .announce
            .send(Announcement::Closed(closed.clone(), by.to_string()));
        Some(closed)
    }

    /// The window open for `identity` now, if any. A window whose time is
    /// up is forgotten here: it ends by itself.
    pub fn active(&self, identity: &str) -> Option<Window> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        match windows.get(identity) {
            Some(w) if w.until_ms > now => Some(w.clone()),
            Some(_) => {
                windows.remove(identity);
                None
            }
            None => None,
        }
    }

    /// Every window still open.
    pub fn list(&self) -> Vec<Window> {
        let now = now_ms();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.retain(|_, w| w.until_ms > now);
        let mut list: Vec<Window> = windows.values().cloned().collect();
        list.sort_by(|a, b| a.identity.cmp(&b.identity));
        list
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

    #[test]
    fn windows_are_refused_for_the_admin_and_for_non_agents() {
        let bg = BreakGlass::default();
        let d = Duration::from_secs(60);
        assert_eq!(
            bg.open("root", true, "root", true, d, "x"),
            Err(BreakGlassError::OwnIdentity)
        );
        assert_eq!(
            bg.open("dba", false, "bot", true, d, "x"),
            Err(BreakGlassError::NotAdmin)
        );
        assert!(matches!(
            bg.open("root", true, "nobody", false, d, "x"),
            Err(BreakGlassError::UnknownIdentity(_))
        ));
        assert_eq!(
            bg.open("root", true, "bot", true, d, " "),
            Err(BreakGlassError::NoReason)
        );
        assert_eq!(
            bg.open(
                "root",
                true,
                "bot",
                true,
                Duration::from_secs(25 * 3600),
                "x"
            ),
            Err(BreakGlassError::BadDuration)
        );
        assert!(bg.active("bot").is_none());
        let w = bg.open("root", true, "bot", true, d, "outage").unwrap();
        assert_eq!(bg.active("bot"), Some(w));
        assert!(bg.active("other").is_none());
        assert!(bg.close("bot", "root").is_some());
        assert!(bg.close("bot", "root").is_none());
        assert!(bg.active("bot").is_none());
    }

    #[test]
    fn a_window_ends_by_itself() {
        let bg = BreakGlass::default();
        bg.open("root", true, "bot", true, Duration::from_secs(1), "x")
            .unwrap();
        assert!(bg.active("bot").is_some());
        std::thread::sleep(Duration::from_millis(1100));
        assert!(bg.active("bot").is_none());
        assert!(bg.list().is_empty());
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
