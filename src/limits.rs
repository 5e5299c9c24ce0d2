//! Fair limits (`[limits]`): what one address or one identity may take of
//! the gateway, so that one misbehaving agent — or a stranger with a socket
//! flood — cannot starve the others.
//!
//! This module owns the counting and nothing else:
//!
//! * pre-authentication connections, per address and in total
//!   ([`Limits::admit`]): counted apart from logged-in sessions, so a flood
//!   of idle sockets fills only its own share and never the sessions'
//!   (`server.max_connections`);
//! * sessions per identity ([`Limits::open_session`]);
//! * upstream connections per identity ([`Limits::take_upstream`]): a
//!   session holds its upstream connection for its whole life, and a held
//!   statement keeps it (the session's transaction, temporary tables and
//!   settings live on that connection), so a session waiting for approvers
//!   counts against its own identity's share and never anyone else's;
//! * statements per second per identity ([`Limits::admit_statement`]), a
//!   token bucket shared by all the identity's sessions.
//!
//! The statement timeout is a limit the *server* enforces: it lives in
//! [`crate::confinement`], which sets it on every upstream session and
//! refuses statements that would change it. The per-(address, name) login
//! lockout is [`crate::identity::LoginThrottle`].
//!
//! It never touches sockets; the proxies ask it and answer in their own
//! protocol's words.

use governor::{DefaultDirectRateLimiter, Quota};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The rule name a rate-limited statement carries in the audit log.
pub const RATE_RULE: &str = "statement rate limit";

/// What one identity may take. `None`: no limit of that kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityLimits {
    /// Sessions open at once.
    pub sessions: Option<usize>,
    /// Upstream connections held at once.
    pub upstream: Option<usize>,
    /// Statements per second (sustained), across all the identity's sessions.
    pub statements_per_second: Option<NonZeroU32>,
    /// Statements that may arrive at once before the rate applies; default
    /// the rate itself.
    pub statement_burst: Option<NonZeroU32>,
    /// Longest a statement may run upstream (set on the server's session).
    pub statement_timeout: Option<Duration>,
}

impl IdentityLimits {
    /// `self`, with what `over` sets replacing it.
    pub fn overridden_by(&self, over: &IdentityLimits) -> IdentityLimits {
        IdentityLimits {
            sessions: over.sessions.or(self.sessions),
            upstream: over.upstream.or(self.upstream),
            statements_per_second: over.statements_per_second.or(self.statements_per_second),
            statement_burst: over.statement_burst.or(self.statement_burst),
            statement_timeout: over.statement_timeout.or(self.statement_timeout),
        }
    }
}

/// The `[limits]` section, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Connections from one address not yet logged in.
    pub preauth_per_address: usize,
    /// Connections not yet logged in, from all addresses.
    pub preauth_total: usize,
    /// How long a new connection may take to send its first message
    /// (startup packet, TLS request, MySQL handshake response) before it
    /// is closed: idle sockets do not keep their pre-auth slot for long.
    pub handshake_timeout: Duration,
    /// For every identity unless overridden.
    pub defaults: IdentityLimits,
    /// `[limits.identity.<name>]`, already merged over `defaults`.
    pub identities: HashMap<String, IdentityLimits>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            preauth_per_address: 64,
            preauth_total: 512,
            handshake_timeout: Duration::from_secs(10),
            defaults: IdentityLimits::default(),
            identities: HashMap::new(),
        }
    }
}

impl LimitsConfig {
    /// The limits of `identity`.
    pub fn of(&self, identity: &str) -> &IdentityLimits {
        self.identities.get(identity).unwrap_or(&self.defaults)
    }
}

/// Why a limit refuses; the message is what the agent is told.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("identity \"{identity}\" already has {limit} sessions open through Airlock (limits.sessions_per_identity); close one and retry")]
    Sessions { identity: String, limit: usize },
    #[error("identity \"{identity}\" holds all {limit} of its upstream connections (limits.upstream_per_identity), including sessions whose statements wait for approval; close a session and retry")]
    Upstream { identity: String, limit: usize },
    #[error("identity \"{identity}\" sent more than {rate} statements per second (limits.statements_per_second); slow down and retry")]
    Rate { identity: String, rate: NonZeroU32 },
}

/// The running counters. One per gateway, shared by every listener.
pub struct Limits {
    config: LimitsConfig,
    preauth: Mutex<PreAuthCount>,
    sessions: Arc<Mutex<HashMap<String, usize>>>,
    upstream: Mutex<HashMap<String, Arc<Semaphore>>>,
    rates: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

#[derive(Default)]
struct PreAuthCount {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            preauth: Default::default(),
            sessions: Default::default(),
            upstream: Default::default(),
            rates: Default::default(),
        })
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// A pre-authentication slot for a new connection from `ip`, or `None`
    /// when that address or all addresses have their share of unlogged
    /// connections. Dropping the slot (at login or when the connection
    /// ends) frees it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PreAuthSlot> {
        let mut count = self.preauth.lock().unwrap_or_else(|e| e.into_inner());
        let mine = count.by_address.get(&ip).copied().unwrap_or(0);
        if count.total >= self.config.preauth_total || mine >= self.config.preauth_per_address {
            return None;
        }
        count.total += 1;
        count.by_address.insert(ip, mine + 1);
        Some(PreAuthSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Connections not yet logged in, in total and from `ip`.
    pub fn preauth_open(&self, ip: IpAddr) -> (usize, usize) {
        let count = self.preauth.lock().unwrap_or_else(|e| e.into_inner());
        (count.total, count.by_address.get(&ip).copied().unwrap_or(0))
    }

    fn release_preauth(&self, ip: IpAddr) {
        let mut count = self.preauth.lock().unwrap_or_else(|e| e.into_inner());
        count.total = count.total.saturating_sub(1);
        if let Some(n) = count.by_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                count.by_address.remove(&ip);
            }
        }
    }

    /// A session slot for `identity`, held for the session's life.
    pub fn open_session(&self, identity: &str) -> Result<SessionSlot, LimitError> {
        let limit = self.config.of(identity).sessions;
        let mut open = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(identity.to_string()).or_insert(0);
        if let Some(limit) = limit {
            if *n >= limit {
                return Err(LimitError::Sessions {
                    identity: identity.to_string(),
                    limit,
                });
            }
        }
        *n += 1;
        Ok(SessionSlot {
            sessions: self.sessions.clone(),
            identity: identity.to_string(),
        })
    }

    /// One of `identity`'s upstream connections, waiting up to `wait` for
    /// one of its own to be freed; `Ok(None)` when the identity has no
    /// such limit.
    pub async fn take_upstream(
        &self,
        identity: &str,
        wait: Duration,
    ) -> Result<Option<OwnedSemaphorePermit>, LimitError> {
        let Some(limit) = self.config.of(identity).upstream else {
            return Ok(None);
        };
        let share = self
            .upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(identity.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone();
        let refused = || LimitError::Upstream {
            identity: identity.to_string(),
            limit,
        };
        match tokio::time::timeout(wait, share.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(refused()),
        }
    }

    /// What a logged-in session of `identity` holds for its life: its
    /// place among the identity's sessions and, with
    /// `upstream_per_identity`, one of the identity's upstream connections
    /// (waiting up to `wait` for one to be freed).
    pub async fn claim(&self, identity: &str, wait: Duration) -> Result<Share, LimitError> {
        let session = self.open_session(identity)?;
        let upstream = self.take_upstream(identity, wait).await?;
        Ok(Share {
            _session: session,
            _upstream: upstream,
        })
    }

    /// Whether `identity` may send one more statement now.
    pub fn admit_statement(&self, identity: &str) -> Result<(), LimitError> {
        let limits = self.config.of(identity);
        let Some(rate) = limits.statements_per_second else {
            return Ok(());
        };
        let bucket = self
            .rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(identity.to_string())
            .or_insert_with(|| {
                let burst = limits.statement_burst.unwrap_or(rate);
                Arc::new(governor::RateLimiter::direct(
                    Quota::per_second(rate).allow_burst(burst),
                ))
            })
            .clone();
        bucket.check().map_err(|_| LimitError::Rate {
            identity: identity.to_string(),
            rate,
        })
    }
}

/// A session's places in its identity's limits; dropped when it ends.
pub struct Share {
    _session: SessionSlot,
    _upstream: Option<OwnedSemaphorePermit>,
}

/// A connection's place among those not yet logged in.
pub struct PreAuthSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        self.limits.release_preauth(self.ip);
    }
}

/// An open session of one identity.
pub struct SessionSlot {
    sessions: Arc<Mutex<HashMap<String, usize>>>,
    identity: String,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.identity) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(defaults: IdentityLimits) -> Arc<Limits> {
        Limits::new(LimitsConfig {
            preauth_per_address: 2,
            preauth_total: 3,
            defaults,
            ..Default::default()
        })
    }

    #[test]
    fn preauth_is_counted_per_address_and_in_total() {
        let l = limits(IdentityLimits::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = l.admit(a).unwrap();
        let _a2 = l.admit(a).unwrap();
        assert!(l.admit(a).is_none(), "third from one address");
        let _b1 = l.admit(b).unwrap();
        assert!(l.admit(c).is_none(), "total reached");
        drop(a1);
        assert!(l.admit(c).is_some(), "a freed slot is reusable");
        assert_eq!(l.preauth_open(a), (2, 1));
    }

    #[test]
    fn sessions_per_identity_are_counted_apart() {
        let l = limits(IdentityLimits {
            sessions: Some(1),
            ..Default::default()
        });
        let one = l.open_session("a").unwrap();
        assert!(matches!(
            l.open_session("a"),
            Err(LimitError::Sessions { limit: 1, .. })
        ));
        let _other = l.open_session("b").unwrap();
        drop(one);
        assert!(l.open_session("a").is_ok());
    }

    #[tokio::test]
    async fn upstream_share_waits_then_refuses() {
        let l = limits(IdentityLimits {
            upstream: Some(1),
            ..Default::default()
        });
        let held = l.take_upstream("a", Duration::ZERO).await.unwrap();
        assert!(held.is_some());
        let wait = Duration::from_millis(20);
        assert!(l.take_upstream("a", wait).await.is_err());
        assert!(l.take_upstream("b", wait).await.unwrap().is_some());
        drop(held);
        assert!(l.take_upstream("a", wait).await.unwrap().is_some());
    }

    #[test]
    fn statement_rate_is_a_bucket_per_identity() {
        let l = limits(IdentityLimits {
            statements_per_second: NonZeroU32::new(1),
            statement_burst: NonZeroU32::new(3),
            ..Default::default()
        });
        for _ in 0..3 {
            l.admit_statement("a").unwrap();
        }
        assert!(matches!(
            l.admit_statement("a"),
            Err(LimitError::Rate { .. })
        ));
        assert!(l.admit_statement("b").is_ok(), "another identity's bucket");
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let base = IdentityLimits {
            sessions: Some(4),
            upstream: Some(2),
            ..Default::default()
        };
        let over = IdentityLimits {
            sessions: Some(9),
            ..Default::default()
        };
        let merged = base.overridden_by(&over);
        assert_eq!(merged.sessions, Some(9));
        assert_eq!(merged.upstream, Some(2));
    }
}
