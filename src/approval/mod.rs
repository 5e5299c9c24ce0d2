//! Holds: a statement a policy rule holds waits for approvers' decisions.
//!
//! A [`HoldRequest`] records who asked for what, under which rule, and how
//! many approvers of which group must agree before when. [`vote`] is the one
//! place the approval rules live: quorum of distinct approvers from the
//! rule's group, one decision each, any deny ends it, and no one — admin
//! included — decides a request they made; agents never decide. The store
//! ([`store::Approvals`]) keeps requests so that the gateway holding the
//! statement and whoever decides it (inbox, API, another gateway) agree.

pub mod breakglass;
pub mod store;

use crate::identity::Role;
use serde::{Deserialize, Serialize};

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Denied,
    /// No quorum before `expires`: refused by the gateway.
    Expired,
    /// The requester gave up (cancel, disconnect) before a decision.
    Withdrawn,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Withdrawn => "withdrawn",
        }
    }
}

/// One approver's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub approver: String,
    pub approve: bool,
    pub reason: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A held statement waiting for (or past) its decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    pub id: String,
    pub requester: String,
    pub requester_role: Role,
    pub session: String,
    pub application: Option<String>,
    pub client: String,
    pub database: String,
    pub protocol: String,
    /// The statement with detected values masked, for display.
    pub sql: String,
    /// BLAKE3 of the statement as sent (hex): what defer mode matches on.
    pub sql_hash: String,
    pub classes: Vec<String>,
    pub objects: Vec<String>,
    pub rule: String,
    pub group: String,
    pub quorum: u32,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub state: State,
    pub votes: Vec<Vote>,
    /// Why it ended, for expired and withdrawn requests.
    pub ended_because: Option<String>,
    /// Defer mode: when the approved statement was re-sent and ran (an
    /// approval runs the statement once).
    #[serde(default)]
    pub consumed_ms: Option<u64>,
    /// PostgreSQL's plan for the statement (values masked), when Airlock
    /// could ask for one safely.
    #[serde(default)]
    pub impact: Option<String>,
    /// The requester's last statements in this session (masked, as
    /// logged), oldest first, the held one last: context that travels with
    /// the request to whichever gateway's inbox shows it.
    #[serde(default)]
    pub recent: Vec<Recent>,
    /// The gateway whose session waits on the request (its id, kept in
    /// its state directory): a gateway that restarts withdraws the requests
    /// its previous run left pending, whose statements can no longer run.
    #[serde(default)]
    pub gateway: Option<String>,
    /// What the released statement did, once it ran ("DELETE 222 in
    /// 7.8 ms", "failed: 23505 …"), as the gateway that ran it saw it.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Whether the agent's statement waits on its connection for the
    /// decision (wait mode) rather than being re-sent later (defer mode).
    #[serde(default)]
    pub waiting: bool,
}

/// What an approved statement did when it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Whether it completed without an error.
    pub ok: bool,
    /// Command tags and times, or the error (values masked).
    pub summary: String,
}

/// One statement of the requester's session and what Airlock decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub sql: String,
    pub verdict: String,
}

impl HoldRequest {
    pub fn approvals(&self) -> usize {
        self.votes.iter().filter(|v| v.approve).count()
    }

    /// The deciding deny, if any.
    pub fn denial(&self) -> Option<&Vote> {
        self.votes.iter().find(|v| !v.approve)
    }
}

/// Who is deciding.
#[derive(Clone, Debug)]
pub struct Approver<'a> {
    pub name: &'a str,
    pub role: Role,
    pub groups: &'a [String],
}

/// Why a decision was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    #[error("request {0} does not exist")]
    NotFound(String),
    #[error("agents cannot decide requests")]
    Agent,
    #[error("nobody can decide their own request, whatever their role")]
    OwnRequest,
    #[error("only members of group \"{0}\" decide this request")]
    NotInGroup(String),
    #[error("you have already decided this request")]
    AlreadyVoted,
    /// The request ended before this decision: the state and, for a
    /// request that will never run, why.
    #[error("the request is already {0}; this decision was not recorded")]
    Closed(String),
    #[error("the request expired")]
    Expired,
}

/// Applies `approver`'s decision to `request` at `now_ms`; on success the
/// request's state says whether it is now decided.
pub fn vote(
    request: &mut HoldRequest,
    approver: &Approver<'_>,
    approve: bool,
    reason: &str,
    now_ms: u64,
) -> Result<(), VoteError> {
    if approver.role == Role::Agent {
        return Err(VoteError::Agent);
    }
    if approver.name == request.requester {
        return Err(VoteError::OwnRequest);
    }
    if !approver.groups.contains(&request.group) {
        return Err(VoteError::NotInGroup(request.group.clone()));
    }
    if request.state != State::Pending {
        let state = match (&request.state, &request.ended_because) {
            (State::Withdrawn | State::Expired, Some(why)) => {
                format!(
                    "{} ({why}) and its statement will never run",
                    request.state.name()
                )
            }
            (state, _) => state.name().to_string(),
        };
        return Err(VoteError::Closed(state));
    }
    if now_ms >= request.expires_ms {
        request.state = State::Expired;
        request.ended_because = Some("no quorum before it expired".into());
        return Err(VoteError::Expired);
    }
    if request.votes.iter().any(|v| v.approver == approver.name) {
        return Err(VoteError::AlreadyVoted);
    }
    request.votes.push(Vote {
        approver: approver.name.to_string(),
        approve,
        reason: reason.to_string(),
        at_ms: now_ms,
    });
    if !approve {
        request.state = State::Denied;
    } else if request.approvals() >= request.quorum.max(1) as usize {
        request.state = State::Approved;
    }
    Ok(())
}

/// A new request id: `r-` and ten characters a person can read out.
pub fn new_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("r-{tail}")
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn request(quorum: u32) -> HoldRequest {
        HoldRequest {
            id: new_id(),
            requester: "agent".into(),
            requester_role: Role::Agent,
            session: "s-1".into(),
            application: None,
            client: "127.0.0.1:5000".into(),
            database: "test".into(),
            protocol: "postgres".into(),
            sql: "DROP TABLE t".into(),
            sql_hash: "00".into(),
            classes: vec!["ddl".into()],
            objects: vec!["t".into()],
            rule: "hold-for-dba".into(),
            group: "dba".into(),
            quorum,
            created_ms: 1_000,
            expires_ms: 100_000,
            state: State::Pending,
            votes: Vec::new(),
            ended_because: None,
            consumed_ms: None,
            gateway: None,
            outcome: None,
            waiting: true,
            impact: None,
            recent: Vec::new(),
        }
    }

    fn dba(name: &str) -> (String, Vec<String>) {
        (name.to_string(), vec!["dba".to_string()])
    }

    #[test]
    fn quorum_of_distinct_approvers_from_the_group() {
        let mut r = request(2);
        let (a, groups) = dba("ana");
        let ana = Approver {
            name: &a,
            role: Role::Approver,
            groups: &groups,
        };
        vote(&mut r, &ana, true, "ok", 2_000).unwrap();
        assert_eq!(r.state, State::Pending);
        assert_eq!(
            vote(&mut r, &ana, true, "again", 2_001),
            Err(VoteError::AlreadyVoted)
        );
        let (b, groups_b) = dba("bo");
        let bo = Approver {
            name: &b,
            role: Role::Admin,
            groups: &groups_b,
        };
        vote(&mut r, &bo, true, "", 2_002).unwrap();
        assert_eq!(r.state, State::Approved);
        let (c, groups_c) = dba("cy");
        let cy = Approver {
            name: &c,
            role: Role::Approver,
            groups: &groups_c,
        };
        assert_eq!(
            vote(&mut r, &cy, false, "late", 2_003),
            Err(VoteError::Closed("approved".into()))
        );
    }

    #[test]
    fn any_deny_ends_it() {
        let mut r = request(3);
        let (a, groups) = dba("ana");
        let ana = Approver {
            name: &a,
            role: Role::Approver,
            groups: &groups,
        };
        vote(&mut r, &ana, false, "not in business hours", 2_000).unwrap();
        assert_eq!(r.state, State::Denied);
        assert_eq!(r.denial().unwrap().reason, "not in business hours");
    }

    #[test]
    fn nobody_decides_their_own_request_and_agents_decide_nothing() {
        let mut r = request(1);
        r.requester = "root".into();
        let groups = vec!["dba".to_string()];
        let root = Approver {
            name: "root",
            role: Role::Admin,
            groups: &groups,
        };
        assert_eq!(
            vote(&mut r, &root, true, "", 2_000),
            Err(VoteError::OwnRequest)
        );
        let bot = Approver {
            name: "bot",
            role: Role::Agent,
            groups: &groups,
        };
        assert_eq!(vote(&mut r, &bot, true, "", 2_000), Err(VoteError::Agent));
        let outsider = Approver {
            name: "eve",
            role: Role::Admin,
            groups: &[],
        };
        assert_eq!(
            vote(&mut r, &outsider, true, "", 2_000),
            Err(VoteError::NotInGroup("dba".into()))
        );
        assert_eq!(r.state, State::Pending);
        assert!(r.votes.is_empty());
    }

    #[test]
    fn a_vote_after_expiry_expires_the_request() {
        let mut r = request(1);
        let (a, groups) = dba("ana");
        let ana = Approver {
            name: &a,
            role: Role::Approver,
            groups: &groups,
        };
        assert_eq!(
            vote(&mut r, &ana, true, "", 100_000),
            Err(VoteError::Expired)
        );
        assert_eq!(r.state, State::Expired);
    }
}
