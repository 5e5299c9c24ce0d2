//! Who may connect through Airlock: agents, approvers, auditors and admins,
//! and the credential each one proves.
//!
//! Credentials are kept only as SCRAM-SHA-256 verifiers (the same format as
//! PostgreSQL's `pg_authid.rolpassword`), so a leaked config or memory dump
//! does not reveal a password and cannot be replayed as one. A plaintext
//! `password` in the config is turned into a verifier when the config loads.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::proxy::mysql::auth::{NativeHash, Sha2Hash};

type HmacSha256 = Hmac<Sha256>;

/// PostgreSQL's default iteration count for new verifiers.
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 4096;

/// What an identity is allowed to be in Airlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Approver,
    Auditor,
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Agent => "agent",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        })
    }
}

/// One configured identity.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// Approver groups (e.g. `dba`) this identity belongs to.
    pub groups: Vec<String>,
    pub verifier: ScramVerifier,
    /// BLAKE3 of the bearer token this identity uses with the inbox's API.
    pub api_token_hash: Option<[u8; 32]>,
    /// BLAKE3 of the bearer token this identity's agents present to the
    /// MCP endpoint (`airlock identity token --mcp`).
    pub mcp_token_hash: Option<[u8; 32]>,
    /// The `sub` of OAuth access tokens that the inbox's OpenID provider
    /// issues for the MCP endpoint on this identity's behalf.
    pub mcp_oauth_subject: Option<String>,
    /// This identity's own MCP result caps, overriding `[mcp] max_rows`
    /// and `max_bytes`.
    pub mcp_limits: McpLimits,
    /// Argon2 hash (PHC string) of the password for the inbox's web pages.
    pub inbox_password_hash: Option<String>,
    /// MySQL logins: what checks a `mysql_native_password` or a
    /// `caching_sha2_password` fast-path answer. Known when the config
    /// gives the password or the hash; a `caching_sha2_password` login over
    /// TLS with only the SCRAM verifier known checks the password sent in
    /// full and remembers its hash for the session's fast path.
    pub mysql: MysqlCredentials,
    /// Databases this identity may use (globs); `None`: any.
    pub databases: Option<Vec<crate::policy::Glob>>,
    /// Whether it may log in to the database listeners at all (`false` by
    /// default for approvers and auditors, who work in the inbox).
    pub database_login: bool,
    /// What the database enforces for this identity's sessions: the
    /// upstream role they run under, read-only.
    pub confinement: crate::confinement::Confinement,
    /// The Slack user id (`U…`) whose clicks on a notification's Approve
    /// and Deny buttons decide as this identity.
    pub slack_user: Option<String>,
}

/// Per-identity overrides of the MCP endpoint's result caps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct McpLimits {
    pub max_rows: Option<u64>,
    pub max_bytes: Option<u64>,
}

/// The MySQL protocol's password hashes of one identity.
#[derive(Clone, Debug, Default)]
pub struct MysqlCredentials {
    pub native: Option<NativeHash>,
    pub sha2: Option<Sha2Hash>,
}

impl MysqlCredentials {
    /// Both hashes, from a password given in clear.
    pub fn from_password(password: &str) -> Self {
        MysqlCredentials {
            native: Some(NativeHash::from_password(password.as_bytes())),
            sha2: Some(Sha2Hash::from_password(password.as_bytes())),
        }
    }
}

impl Identity {
    /// Why this identity may not log in to a database listener, if so.
    pub fn database_login_refusal(&self) -> Option<String> {
        (!self.database_login).then(|| {
            format!(
                "identity \"{}\" is an {}: it signs in to the inbox, not to the database (set database_login = true on its [[identity]] to allow it)",
                self.name, self.role
            )
        })
    }

    /// Whether this identity may work in `database`.
    pub fn may_use_database(&self, database: &str) -> bool {
        self.databases
            .as_ref()
            .is_none_or(|globs| globs.iter().any(|g| g.matches(database)))
    }
}

/// Checks `password` against an Argon2 PHC string; false on any mismatch
/// or malformed hash.
pub fn inbox_password_matches(phc: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// An Argon2id PHC string for `password`, with a fresh salt.
pub fn inbox_password_hash(password: &str) -> String {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 hashes any password")
        .to_string()
}

/// A SCRAM-SHA-256 verifier: what the server keeps to check a proof of the
/// password without knowing the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

// Never print key material, even in debug output.
impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifierError {
    #[error("expected the form SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>")]
    Shape,
    #[error("iteration count must be a positive integer")]
    Iterations,
    #[error("salt is not valid base64")]
    Salt,
    #[error("keys must be base64 of 32 bytes each")]
    Keys,
}

impl ScramVerifier {
    /// Derives a verifier from a password with a fresh random salt.
    pub fn generate(password: &str, iterations: u32) -> Self {
        let mut salt = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::derive(password, salt, iterations)
    }

    /// Derives a verifier from a password and a given salt (RFC 5802 §3).
    /// The password is used as its UTF-8 bytes; PostgreSQL applies SASLprep
    /// first, which changes only passwords with unusual Unicode (see README).
    pub fn derive(password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2::<HmacSha256>(password.as_bytes(), &salt, iterations, &mut salted)
            .expect("HMAC accepts keys of any length");
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted, b"Server Key");
        Self {
            iterations,
            salt,
            stored_key,
            server_key,
        }
    }

    /// Whether `password` is the one this verifier was made from (for
    /// protocols that send the password itself, over TLS).
    pub fn matches_password(&self, password: &str) -> bool {
        let derived = Self::derive(password, self.salt.clone(), self.iterations);
        constant_time_eq(&derived.stored_key, &self.stored_key)
    }

    /// Parses PostgreSQL's `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(text: &str) -> Result<Self, VerifierError> {
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(VerifierError::Shape)?;
        let (params, keys) = rest.split_once('$').ok_or(VerifierError::Shape)?;
        let (iter, salt) = params.split_once(':').ok_or(VerifierError::Shape)?;
        let (stored, server) = keys.split_once(':').ok_or(VerifierError::Shape)?;
        let iterations: u32 = iter.parse().map_err(|_| VerifierError::Iterations)?;
        if iterations == 0 {
            return Err(VerifierError::Iterations);
        }
        let salt = B64.decode(salt).map_err(|_| VerifierError::Salt)?;
        if salt.is_empty() {
            return Err(VerifierError::Salt);
        }
        let key = |s: &str| -> Result<[u8; 32], VerifierError> {
            B64.decode(s)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or(VerifierError::Keys)
        };
        Ok(Self {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    /// Checks a client proof for `auth_message` (RFC 5802 §3): the proof XOR
    /// the client signature must hash to the stored key. Constant-time in
    /// the comparison, so timing reveals nothing about the stored key.
    pub fn verify_proof(&self, auth_message: &[u8], proof: &[u8]) -> bool {
        if proof.len() != 32 {
            return false;
        }
        let signature = hmac(&self.stored_key, auth_message);
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ signature[i];
        }
        let candidate: [u8; 32] = Sha256::digest(client_key).into();
        constant_time_eq(&candidate, &self.stored_key)
    }

    /// The server's signature, which proves to the client that the server
    /// knew the verifier (mutual authentication).
    pub fn server_signature(&self, auth_message: &[u8]) -> [u8; 32] {
        hmac(&self.server_key, auth_message)
    }
}

impl fmt::Display for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq<const N: usize>(a: &[u8; N], b: &[u8; N]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The configured identities, looked up by the name a client logs in with.
///
/// The table can be replaced while the gateway runs (SIGHUP): each lookup
/// hands out its own `Arc<Identity>`, which stays valid across awaits
/// whatever replaces the table meanwhile. Sessions keep the identity they
/// logged in with; the inbox looks its caller up again on every request,
/// so a removed approver can no longer decide.
#[derive(Debug, Default)]
pub struct Identities {
    table: arc_swap::ArcSwap<HashMap<String, Arc<Identity>>>,
    /// Salt for the decoy exchange given to unknown names, so that the
    /// exchange looks the same for a name that exists and one that does not.
    decoy_key: [u8; 32],
}

fn table(list: Vec<Identity>) -> HashMap<String, Arc<Identity>> {
    list.into_iter()
        .map(|i| (i.name.clone(), Arc::new(i)))
        .collect()
}

impl Identities {
    pub fn new(list: Vec<Identity>) -> Self {
        let mut decoy_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut decoy_key);
        Self {
            table: arc_swap::ArcSwap::from_pointee(table(list)),
            decoy_key,
        }
    }

    /// Puts `list` in force for every lookup from now on.
    pub fn replace(&self, list: Vec<Identity>) {
        self.table.store(Arc::new(table(list)));
    }

    pub fn get(&self, name: &str) -> Option<Arc<Identity>> {
        self.table.load().get(name).cloned()
    }

    pub fn len(&self) -> usize {
        self.table.load().len()
    }

    /// The identity whose API token is `token`.
    pub fn by_token(&self, token: &str) -> Option<Arc<Identity>> {
        let hash = blake3::hash(token.as_bytes());
        // blake3::Hash compares in constant time.
        self.table
            .load()
            .values()
            .find(|i| {
                i.api_token_hash
                    .is_some_and(|h| blake3::Hash::from(h) == hash)
            })
            .cloned()
    }

    /// The identity the Slack user `user` (`U…`) decides as.
    pub fn by_slack_user(&self, user: &str) -> Option<Arc<Identity>> {
        self.table
            .load()
            .values()
            .find(|i| i.slack_user.as_deref() == Some(user))
            .cloned()
    }

    /// The identity whose MCP bearer token is `token`. MCP tokens and
    /// inbox API tokens are separate hashes: an approver's inbox token
    /// never opens the MCP endpoint, nor an agent's MCP token the inbox.
    pub fn by_mcp_token(&self, token: &str) -> Option<Arc<Identity>> {
        let hash = blake3::hash(token.as_bytes());
        self.table
            .load()
            .values()
            .find(|i| {
                i.mcp_token_hash
                    .is_some_and(|h| blake3::Hash::from(h) == hash)
            })
            .cloned()
    }

    /// The identity whose `mcp_oauth_subject` is `subject`.
    pub fn by_mcp_oauth_subject(&self, subject: &str) -> Option<Arc<Identity>> {
        self.table
            .load()
            .values()
            .find(|i| i.mcp_oauth_subject.as_deref() == Some(subject))
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Identity>> {
        self.table.load().values().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.table.load().is_empty()
    }

    /// A verifier no password matches, stable per name for this process:
    /// repeated probes for an unknown name see the same salt, as they would
    /// for a real identity.
    pub fn decoy_verifier(&self, name: &str) -> ScramVerifier {
        let salt = hmac(&self.decoy_key, name.as_bytes())[..16].to_vec();
        let mut stored_key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut stored_key);
        ScramVerifier {
            iterations: DEFAULT_SCRAM_ITERATIONS,
            salt,
            stored_key,
            server_key: [0; 32],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_round_trips_through_text() {
        let v = ScramVerifier::derive("secret", b"0123456789abcdef".to_vec(), 4096);
        let parsed = ScramVerifier::parse(&v.to_string()).unwrap();
        assert_eq!(parsed, v);
    }

    #[test]
    fn parse_rejects_malformed_verifiers() {
        assert_eq!(ScramVerifier::parse("md5abc"), Err(VerifierError::Shape));
        assert_eq!(
            ScramVerifier::parse("SCRAM-SHA-256$x:YWJj$a:b"),
            Err(VerifierError::Iterations)
        );
        assert_eq!(
            ScramVerifier::parse("SCRAM-SHA-256$0:YWJj$a:b"),
            Err(VerifierError::Iterations)
        );
        assert_eq!(
            ScramVerifier::parse("SCRAM-SHA-256$4096:!!$a:b"),
            Err(VerifierError::Salt)
        );
        assert_eq!(
            ScramVerifier::parse("SCRAM-SHA-256$4096:YWJj$YWJj:YWJj"),
            Err(VerifierError::Keys)
        );
    }

    #[test]
    fn proof_from_the_right_password_verifies_and_a_wrong_one_does_not() {
        let v = ScramVerifier::derive("pencil", b"saltsaltsaltsalt".to_vec(), 4096);
        let auth_message = b"n=user,r=abc,r=abcdef,s=c2FsdA==,i=4096,c=biws,r=abcdef";
        let proof_for = |password: &str| {
            let w = ScramVerifier::derive(password, v.salt.clone(), 4096);
            let mut salted = [0u8; 32];
            pbkdf2::pbkdf2::<HmacSha256>(password.as_bytes(), &w.salt, 4096, &mut salted).unwrap();
            let client_key = hmac(&salted, b"Client Key");
            let signature = hmac(&w.stored_key, auth_message);
            client_key
                .iter()
                .zip(signature)
                .map(|(a, b)| a ^ b)
                .collect::<Vec<u8>>()
        };
        assert!(v.verify_proof(auth_message, &proof_for("pencil")));
        assert!(!v.verify_proof(auth_message, &proof_for("pencil2")));
        assert!(!v.verify_proof(auth_message, &[0u8; 31]));
    }

    #[test]
    fn debug_output_hides_keys() {
        let v = ScramVerifier::generate("x", 16);
        assert!(!format!("{v:?}").contains(&B64.encode(v.stored_key)));
    }
}

/// Slows down password guessing: after `max_failures` failed logins for one
/// key within `window`, that key is refused for `lockout`. The inbox keys
/// by address; the database listeners by [`LoginKey`] (address and name).
pub struct LoginThrottle<K = std::net::IpAddr> {
    max_failures: u32,
    window: std::time::Duration,
    lockout: std::time::Duration,
    state: std::sync::Mutex<HashMap<K, Failures>>,
}

/// Whom a failed database login counts against: the address *and* the
/// name tried, with every name that is no identity in one bucket per
/// address. A stranger spraying made-up names locks out only that bucket,
/// never a real identity; guesses at a real identity's password lock that
/// identity out from that address only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LoginKey {
    ip: std::net::IpAddr,
    /// `None`: a name that is no configured identity.
    name: Option<String>,
}

impl LoginKey {
    pub fn new(ip: std::net::IpAddr, user: &str, identities: &Identities) -> Self {
        Self {
            ip,
            name: identities.get(user).map(|i| i.name.clone()),
        }
    }
}

struct Failures {
    recent: std::collections::VecDeque<std::time::Instant>,
    locked_until: Option<std::time::Instant>,
}

/// How many addresses the throttle remembers before it forgets stale ones;
/// bounds its memory under a spray of addresses.
const THROTTLE_PRUNE_AT: usize = 10_000;

impl<K: std::hash::Hash + Eq + Clone> LoginThrottle<K> {
    pub fn new(
        max_failures: u32,
        window: std::time::Duration,
        lockout: std::time::Duration,
    ) -> Self {
        Self {
            max_failures,
            window,
            lockout,
            state: Default::default(),
        }
    }

    /// `Err(remaining)` while `key` is locked out.
    pub fn check(&self, key: &K) -> Result<(), std::time::Duration> {
        let now = std::time::Instant::now();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.get(key).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, key: &K) {
        let now = std::time::Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.len() >= THROTTLE_PRUNE_AT {
            let window = self.window.max(self.lockout);
            state.retain(|_, f| {
                f.recent
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let f = state.entry(key.clone()).or_insert_with(|| Failures {
            recent: Default::default(),
            locked_until: None,
        });
        while f
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            f.recent.pop_front();
        }
        f.recent.push_back(now);
        if f.recent.len() >= self.max_failures as usize {
            f.locked_until = Some(now + self.lockout);
            f.recent.clear();
        }
    }

    pub fn record_success(&self, key: &K) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn locks_out_after_repeated_failures_and_only_that_address() {
        let t: LoginThrottle =
            LoginThrottle::new(3, Duration::from_secs(60), Duration::from_secs(60));
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        t.record_failure(&a);
        t.record_failure(&a);
        assert!(t.check(&a).is_ok());
        t.record_failure(&a);
        assert!(t.check(&a).is_err());
        assert!(t.check(&b).is_ok());
    }

    #[test]
    fn a_stranger_spraying_names_never_locks_out_a_real_identity() {
        let identities = Identities::new(vec![Identity {
            name: "bot".into(),
            role: Role::Agent,
            groups: Vec::new(),
            verifier: ScramVerifier::generate("pw", 16),
            api_token_hash: None,
            mcp_token_hash: None,
            mcp_oauth_subject: None,
            mcp_limits: Default::default(),
            slack_user: None,
            inbox_password_hash: None,
            mysql: Default::default(),
            databases: None,
            database_login: true,
            confinement: Default::default(),
        }]);
        let t: LoginThrottle<LoginKey> =
            LoginThrottle::new(3, Duration::from_secs(60), Duration::from_secs(60));
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        for name in ["nobody", "root", "admin", "postgres"] {
            t.record_failure(&LoginKey::new(ip, name, &identities));
        }
        assert!(t.check(&LoginKey::new(ip, "anyone", &identities)).is_err());
        assert!(t.check(&LoginKey::new(ip, "bot", &identities)).is_ok());
        // Guesses at the real name lock that name out from that address only.
        for _ in 0..3 {
            t.record_failure(&LoginKey::new(ip, "bot", &identities));
        }
        assert!(t.check(&LoginKey::new(ip, "bot", &identities)).is_err());
        let other: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        assert!(t.check(&LoginKey::new(other, "bot", &identities)).is_ok());
    }

    #[test]
    fn success_clears_the_count() {
        let t: LoginThrottle =
            LoginThrottle::new(2, Duration::from_secs(60), Duration::from_secs(60));
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        t.record_failure(&a);
        t.record_success(&a);
        t.record_failure(&a);
        assert!(t.check(&a).is_ok());
    }
}
