//! `airlock.toml` → a typed, validated [`Config`].
//!
//! The file's shape is public interface: operators script it. Every key has
//! a default (so `airlock serve` runs with no file at all), every error names
//! where the bad value came from — the file and key, or the environment
//! variable or flag that overrode it — and what is wrong with it.
//!
//! Overrides: `AIRLOCK_<SECTION>_<KEY>` (e.g. `AIRLOCK_POSTGRES_POOL_SIZE`)
//! or `AIRLOCK_<KEY>` for top-level keys, then command-line flags. Their
//! values are read as TOML scalars (`32`, `true`) and fall back to strings.

use crate::identity::{Identity, MysqlCredentials, Role, ScramVerifier, DEFAULT_SCRAM_ITERATIONS};
use crate::proxy::mysql::auth::NativeHash;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The longest `postgres.idle_timeout_secs`: an idle connection holds a
/// backend (and its database) on the server; a day is more than any pool
/// needs.
const MAX_IDLE_TIMEOUT_SECS: u64 = 86_400;

/// Sections that `AIRLOCK_<SECTION>_<KEY>` variables may address.
const SECTIONS: &[&str] = &[
    "postgres", "mysql", "tls", "auth", "log", "server", "audit", "approval", "inbox", "slack",
    "metrics", "mcp", "limits",
];

/// A configuration problem, always naming its source and key.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {key}{problem}")]
pub struct ConfigError {
    /// The file, environment variable or flag the value came from.
    pub source_name: String,
    /// `key `postgres.pool_size`: ` or empty for whole-file problems.
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    fn new(source_name: impl Into<String>, key: &str, problem: impl Into<String>) -> Self {
        let key = if key.is_empty() {
            String::new()
        } else {
            format!("key `{key}`: ")
        };
        Self {
            source_name: source_name.into(),
            key,
            problem: problem.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Folder of policy files.
    pub policies: PathBuf,
    /// Where Airlock keeps its state (audit segments, approval store, …).
    pub state_dir: PathBuf,
    pub postgres: PostgresConfig,
    pub mysql: MysqlConfig,
    pub tls: Option<TlsConfig>,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub server: ServerConfig,
    pub audit: AuditConfig,
    pub approval: ApprovalConfig,
    pub inbox: InboxConfig,
    pub metrics: MetricsConfig,
    pub mcp: McpConfig,
    /// Where approver groups are told of new requests (`[[notify]]`).
    pub notify: Vec<crate::inbox::notify::Target>,
    /// The Slack app: its API, bot token and signing secret (`[slack]`).
    pub slack: crate::inbox::slack::Settings,
    pub identities: Vec<Identity>,
    /// Fair limits per address and identity (`[limits]`).
    pub limits: crate::limits::LimitsConfig,
    /// Identities whose password was given in clear (dev only, warned about).
    pub plaintext_identities: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct PostgresConfig {
    pub listen: SocketAddr,
    pub upstream: UpstreamUrl,
    pub pool_size: usize,
    pub upstream_tls: UpstreamTls,
    pub upstream_ca: Option<PathBuf>,
    /// The largest message a client may send (bytes).
    pub max_message_bytes: usize,
    pub connect_timeout_secs: u64,
    /// How long a new session waits for a free upstream connection.
    pub acquire_timeout_secs: u64,
    /// How long an upstream connection may stay idle in the pool before
    /// it is closed.
    pub idle_timeout_secs: u64,
}

/// The MySQL / MariaDB listener (`[mysql]`).
#[derive(Clone, Debug)]
pub struct MysqlConfig {
    /// Off: no MySQL listener.
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Airlock's service account; its database (if any) is only a default
    /// for clients that name none.
    pub upstream: UpstreamUrl,
    pub upstream_tls: UpstreamTls,
    pub upstream_ca: Option<PathBuf>,
    /// The largest packet a client may send (bytes, after joining 16 MiB
    /// pieces).
    pub max_packet_bytes: usize,
    pub connect_timeout_secs: u64,
}

/// Airlock's own login to the upstream database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
}

impl UpstreamUrl {
    /// Parses `postgresql://user[:password]@host[:port]/database`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("postgresql://")
            .or_else(|| text.strip_prefix("postgres://"))
            .ok_or("must start with postgresql://")?;
        if rest.contains('?') {
            return Err("query parameters are not supported; use postgres.upstream_tls and postgres.upstream_ca".into());
        }
        let (authority, database) = rest
            .split_once('/')
            .ok_or("must name a database: postgresql://user@host/database")?;
        let url = Self::parse_authority(authority, 5432, database)?;
        if url.database.is_empty() {
            return Err("host, user and database must not be empty".into());
        }
        Ok(url)
    }

    /// Parses `mysql://user[:password]@host[:port][/database]`; the
    /// database may be left out.
    pub fn parse_mysql(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("mysql://")
            .or_else(|| text.strip_prefix("mariadb://"))
            .ok_or("must start with mysql://")?;
        if rest.contains('?') {
            return Err(
                "query parameters are not supported; use mysql.upstream_tls and mysql.upstream_ca"
                    .into(),
            );
        }
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        Self::parse_authority(authority, 3306, database)
    }

    fn parse_authority(authority: &str, default_port: u16, database: &str) -> Result<Self, String> {
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or("must name a user: postgresql://user@host/database")?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (percent_decode(u)?, Some(percent_decode(p)?)),
            None => (percent_decode(userinfo)?, None),
        };
        // `[v6]:port`, `[v6]`, `host:port` or `host`.
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or("unclosed `[` in host")?;
                (h.to_string(), after.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            },
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("invalid port `{p}`"))?,
            None => default_port,
        };
        if host.is_empty() || user.is_empty() {
            return Err("host and user must not be empty".into());
        }
        Ok(Self {
            host,
            port,
            user,
            password,
            database: percent_decode(database)?,
        })
    }

    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("invalid percent-encoding")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "invalid percent-encoding")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding is not UTF-8".to_string())
}

/// How Airlock protects its connection to the upstream database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    /// Plaintext.
    Disable,
    /// Encrypted, server certificate not verified.
    Require,
    /// Encrypted, certificate chain verified against `upstream_ca` and the
    /// host name checked.
    VerifyFull,
}

impl UpstreamTls {
    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            UpstreamTls::Disable => "disable",
            UpstreamTls::Require => "require",
            UpstreamTls::VerifyFull => "verify-full",
        }
    }
}

#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Refuse clients that do not negotiate TLS.
    pub require: bool,
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Failed logins from one address within `failure_window_secs` before
    /// that address is refused for `lockout_secs`.
    pub max_failures: u32,
    pub failure_window_secs: u64,
    pub lockout_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `airlock=debug`.
    pub level: String,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// On SIGTERM, how long running statements may take to finish.
    pub shutdown_timeout_secs: u64,
    /// How long a client may take to log in.
    pub startup_timeout_secs: u64,
    pub max_connections: usize,
    /// Threads that run sessions.
    pub workers: usize,
}

/// The default for `[server] workers`: one on a host of two cores or
/// fewer, where the clients and often the database share the cores and a
/// second worker mostly wakes and steals from the first (a futex wake and
/// a context switch per statement, measured); else one per core.
pub fn default_workers() -> usize {
    match std::thread::available_parallelism().map_or(1, usize::from) {
        n if n <= 2 => 1,
        n => n,
    }
}

/// The chained audit log (`[audit]`).
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// Segments directory; default `<state_dir>/audit`.
    pub dir: PathBuf,
    pub fsync: Fsync,
    /// With `fsync = "batch"`, the longest a written record waits for fsync.
    pub batch_window_ms: u64,
    /// A segment is closed and the next begun beyond this size.
    pub segment_bytes: u64,
    /// A signed checkpoint after this many records…
    pub checkpoint_every: u64,
    /// …or this many seconds, whichever comes first.
    pub checkpoint_secs: u64,
    /// Memory for records the disk refuses (full), before they are counted lost.
    pub backlog_bytes: usize,
    /// The key of format-1 (keyed) records, written before format 2: given
    /// (hex, e.g. from `AIRLOCK_AUDIT_CHAIN_KEY`), or read from this file
    /// when it exists. Only needed to check such records; never created.
    pub chain_key: Option<[u8; 32]>,
    pub chain_key_file: PathBuf,
    /// The Ed25519 checkpoint signing key: given, or kept in this file
    /// (created on first start, mode 0600).
    pub signing_key: Option<[u8; 32]>,
    pub signing_key_file: PathBuf,
    /// The key that signed the log before `signing_key` replaced it: the
    /// gateway writes a key rotation record signed with it.
    pub previous_signing_key_file: Option<PathBuf>,
    /// The trusted checkpoint public key auditors pin (`audit verify
    /// --config`): the key the log's signatures must start from.
    pub public_key: Option<[u8; 32]>,
    /// Masked rows kept in each result record (0: none, the default).
    pub capture_rows: usize,
}

pub use crate::audit::log::Fsync;

/// Holds (`[approval]`).
#[derive(Clone, Debug)]
pub struct ApprovalConfig {
    /// Off: held statements are refused at once, as no one could approve them.
    pub enabled: bool,
    pub store: StoreLocation,
    /// The key every stored request is sealed with (HMAC-SHA256): given
    /// (hex, `store_key`), or kept in `store_key_file` (default
    /// `<state_dir>/approval-store-key`, created on first start, mode
    /// 0600). Every gateway sharing one store must hold the same key: a
    /// row sealed under another is ignored.
    pub store_key: Option<[u8; 32]>,
    pub store_key_file: PathBuf,
}

impl ApprovalConfig {
    /// The database of a shared store that may live on the server at
    /// `host:port`: agents must never reach it there, whatever their
    /// `databases`, or they could write their own approvals. "May" is
    /// decided failing closed: same port, and hosts that are equal, both
    /// loopback, or not both IP addresses (two names, or a name and an
    /// address, may be one server).
    pub fn store_database_on(&self, host: &str, port: u16) -> Option<String> {
        let StoreLocation::Shared(url) = &self.store else {
            return None;
        };
        let config: tokio_postgres::Config = url.parse().ok()?;
        // libpq's defaults: the database is named after the user.
        let database = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
            .to_string();
        let ports = config.get_ports();
        let hosts = config.get_hosts();
        let loopback = |h: &str| {
            h.eq_ignore_ascii_case("localhost")
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        };
        let near = hosts.iter().enumerate().any(|(i, h)| {
            let store_port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let store_host = match h {
                tokio_postgres::config::Host::Tcp(name) => {
                    name.trim_matches(['[', ']']).to_string()
                }
                // A Unix socket is this host.
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(_) => "localhost".to_string(),
            };
            let host = host.trim_matches(['[', ']']);
            let both_ips = store_host.parse::<std::net::IpAddr>().is_ok()
                && host.parse::<std::net::IpAddr>().is_ok();
            store_port == port
                && (store_host.eq_ignore_ascii_case(host)
                    || (loopback(&store_host) && loopback(host))
                    || !both_ips)
        });
        (near || hosts.is_empty()).then_some(database)
    }
}

/// Where hold requests are kept (`[approval] store`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded store: a SQLite file, by default
    /// `<state_dir>/approvals.sqlite3`. One gateway, or several on one host.
    Embedded(PathBuf),
    /// A PostgreSQL database (`postgresql://…`) that several gateways share,
    /// so that one inbox decides what any of them holds.
    Shared(String),
}

/// The inbox and its API (`[inbox]`).
#[derive(Clone, Debug)]
pub struct InboxConfig {
    pub listen: SocketAddr,
    /// The address people open, for links in notices and notifications;
    /// `None`: `http://` and the address the inbox listens on.
    pub public_url: Option<String>,
    /// Single sign-on (`[inbox.oidc]`).
    pub oidc: Option<crate::inbox::oidc::OidcConfig>,
}

/// The metrics and health endpoint (`[metrics]`).
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// `None`: off (the default). Serves `/metrics`, `/healthz`, `/readyz`.
    pub listen: Option<SocketAddr>,
}

/// Where `[metrics]` listens when it is enabled without an address.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9187";

/// The MCP endpoint (`[mcp]`): agents that speak the Model Context
/// Protocol reach the same gate as the wire listeners through it.
#[derive(Clone, Debug)]
pub struct McpConfig {
    /// Whether the Streamable HTTP endpoint listens. Default: on when some
    /// `[[identity]]` has an `mcp_token_hash` (without one nobody could
    /// use it, and a gateway that never asked for MCP opens no new port).
    pub enabled: bool,
    pub listen: SocketAddr,
    /// The address agents use, for the OAuth protected-resource metadata;
    /// `None`: `http://` and the address the endpoint listens on.
    pub public_url: Option<String>,
    /// Rows a `query` returns at most, unless the identity says otherwise.
    pub max_rows: u64,
    /// Bytes of values a `query` returns at most.
    pub max_bytes: u64,
    /// How long one statement may run on the server.
    pub statement_timeout_secs: u64,
    /// How long one tool call may wait for an approval.
    pub max_wait_secs: u64,
}

// ---- the file as written -------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    policies: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    postgres: RawPostgres,
    #[serde(default)]
    mysql: RawMysql,
    tls: Option<RawTls>,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    approval: RawApproval,
    #[serde(default)]
    inbox: RawInbox,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    mcp: RawMcp,
    #[serde(default)]
    notify: Vec<RawNotify>,
    #[serde(default)]
    slack: RawSlack,
    #[serde(default)]
    identity: Vec<RawIdentity>,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    preauth_per_address: Option<usize>,
    preauth_total: Option<usize>,
    handshake_timeout_secs: Option<u64>,
    sessions_per_identity: Option<usize>,
    upstream_per_identity: Option<usize>,
    statements_per_second: Option<u32>,
    statement_burst: Option<u32>,
    statement_timeout_ms: Option<u64>,
    #[serde(default)]
    identity: BTreeMap<String, RawIdentityLimits>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIdentityLimits {
    sessions_per_identity: Option<usize>,
    upstream_per_identity: Option<usize>,
    statements_per_second: Option<u32>,
    statement_burst: Option<u32>,
    statement_timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    listen: Option<String>,
    upstream: Option<String>,
    pool_size: Option<usize>,
    upstream_tls: Option<UpstreamTls>,
    upstream_ca: Option<PathBuf>,
    max_message_bytes: Option<usize>,
    connect_timeout_secs: Option<u64>,
    acquire_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMysql {
    enabled: Option<bool>,
    listen: Option<String>,
    upstream: Option<String>,
    upstream_tls: Option<UpstreamTls>,
    upstream_ca: Option<PathBuf>,
    max_packet_bytes: Option<usize>,
    connect_timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    require: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    max_failures: Option<u32>,
    failure_window_secs: Option<u64>,
    lockout_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    shutdown_timeout_secs: Option<u64>,
    startup_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    workers: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    enabled: Option<bool>,
    store: Option<String>,
    store_key: Option<String>,
    store_key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    group: String,
    kind: String,
    url: Option<String>,
    /// Slack: the channel the app's bot posts to (instead of `url`).
    channel: Option<String>,
    secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    api_url: Option<String>,
    bot_token_file: Option<PathBuf>,
    signing_secret_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawInbox {
    listen: Option<String>,
    public_url: Option<String>,
    oidc: Option<RawOidc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    client_id: String,
    client_secret_file: Option<PathBuf>,
    redirect_url: Option<String>,
    scopes: Option<Vec<String>>,
    groups_claim: Option<String>,
    label: Option<String>,
    #[serde(default)]
    map: Vec<RawOidcMap>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidcMap {
    claim_group: String,
    role: Role,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enabled: Option<bool>,
    listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMcp {
    enabled: Option<bool>,
    listen: Option<String>,
    public_url: Option<String>,
    max_rows: Option<u64>,
    max_bytes: Option<u64>,
    statement_timeout_secs: Option<u64>,
    max_wait_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    dir: Option<PathBuf>,
    fsync: Option<Fsync>,
    batch_window_ms: Option<u64>,
    segment_bytes: Option<u64>,
    checkpoint_every: Option<u64>,
    checkpoint_secs: Option<u64>,
    backlog_bytes: Option<usize>,
    chain_key: Option<String>,
    chain_key_file: Option<PathBuf>,
    signing_key: Option<String>,
    signing_key_file: Option<PathBuf>,
    previous_signing_key_file: Option<PathBuf>,
    public_key: Option<String>,
    capture_rows: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    name: String,
    role: Role,
    #[serde(default)]
    groups: Vec<String>,
    password: Option<String>,
    scram_verifier: Option<String>,
    api_token_hash: Option<String>,
    mcp_token_hash: Option<String>,
    mcp_oauth_subject: Option<String>,
    mcp_max_rows: Option<u64>,
    mcp_max_bytes: Option<u64>,
    inbox_password_hash: Option<String>,
    mysql_native_hash: Option<String>,
    databases: Option<Vec<String>>,
    upstream_role: Option<String>,
    read_only: Option<bool>,
    database_login: Option<bool>,
    oidc_subject: Option<String>,
    oidc_email: Option<String>,
    slack_user: Option<String>,
}

/// One override of a key, from the environment or a flag.
#[derive(Clone, Debug)]
pub struct Override {
    /// `postgres.listen`, `policies`, …
    pub key: String,
    pub value: String,
    /// `environment variable AIRLOCK_POSTGRES_LISTEN`, `flag --listen`.
    pub source: String,
}

/// Collects `AIRLOCK_*` variables as overrides. `AIRLOCK_CONFIG` names the
/// file rather than a key.
pub fn env_overrides(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Override>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("AIRLOCK_") else {
            continue;
        };
        // Not configuration keys: the config file's path, and the token
        // `airlock mcp --stdio` serves (see `crate::mcp::serve_stdio`).
        if rest == "CONFIG" || rest == "MCP_TOKEN" {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let key = match SECTIONS
            .iter()
            .find(|s| lower.starts_with(&format!("{s}_")))
        {
            Some(section) => format!("{section}.{}", &lower[section.len() + 1..]),
            None => lower,
        };
        out.push(Override {
            key,
            value,
            source: format!("environment variable {name}"),
        });
    }
    Ok(out)
}

impl Config {
    /// Loads `path` (or the defaults when `None`), applies overrides in
    /// order, and validates the result.
    pub fn load(path: Option<&Path>, overrides: &[Override]) -> Result<Self, ConfigError> {
        let (source_name, text) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ConfigError::new(p.display().to_string(), "", format!("cannot read: {e}"))
                })?;
                (p.display().to_string(), text)
            }
            None => ("built-in defaults".to_string(), String::new()),
        };
        Self::from_toml(&source_name, &text, overrides)
    }

    pub fn from_toml(
        source_name: &str,
        text: &str,
        overrides: &[Override],
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new(
                source_name,
                "",
                format!("{} {}", e.message(), line_of(text, e.span())),
            )
        })?;
        let mut origin = BTreeMap::new();
        for o in overrides {
            apply_override(&mut table, o)?;
            origin.insert(o.key.clone(), o.source.clone());
        }
        // Which source to blame for a key: the override that set it, else the file.
        let blame = |key: &str| -> String {
            origin
                .iter()
                .find(|(k, _)| key == k.as_str() || key.starts_with(&format!("{k}.")))
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| source_name.to_string())
        };
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let key = if key == "." { String::new() } else { key };
                ConfigError::new(blame(&key), &key, e.into_inner().message().to_string())
            })?;
        validate(raw, &blame)
    }
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => format!(
            "(line {})",
            text[..span.start.min(text.len())].matches('\n').count() + 1
        ),
        None => String::new(),
    }
}

fn apply_override(table: &mut toml::Table, o: &Override) -> Result<(), ConfigError> {
    let value = scalar(&o.value);
    let (section, key) = match o.key.split_once('.') {
        Some((s, k)) => (Some(s), k),
        None => (None, o.key.as_str()),
    };
    let target = match section {
        None => table,
        Some(s) => table
            .entry(s)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| ConfigError::new(&o.source, s, "is not a table in the file"))?,
    };
    target.insert(key.to_string(), value);
    Ok(())
}

fn scalar(text: &str) -> toml::Value {
    if let Ok(i) = text.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match text {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(text.to_string()),
    }
}

/// `<section>.upstream_ca` must exist, and `verify-full` needs it.
fn check_upstream_tls(
    section: &str,
    mode: UpstreamTls,
    ca: Option<&Path>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if let Some(ca) = ca {
        if !ca.is_file() {
            return Err(err(
                &format!("{section}.upstream_ca"),
                format!("file `{}` does not exist", ca.display()),
            ));
        }
    }
    if mode == UpstreamTls::VerifyFull && ca.is_none() {
        return Err(err(
            &format!("{section}.upstream_tls"),
            format!("verify-full needs {section}.upstream_ca (a PEM file of trusted CAs)"),
        ));
    }
    Ok(())
}

fn validate(raw: RawConfig, blame: &dyn Fn(&str) -> String) -> Result<Config, ConfigError> {
    let err = |key: &str, problem: String| ConfigError::new(blame(key), key, problem);

    let pg = raw.postgres;
    let listen_text = pg.listen.unwrap_or_else(|| "127.0.0.1:6432".into());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        err(
            "postgres.listen",
            format!("`{listen_text}` is not an address like 127.0.0.1:6432"),
        )
    })?;
    let upstream_text = pg
        .upstream
        .unwrap_or_else(|| "postgresql://postgres@127.0.0.1:5432/test".into());
    let upstream = UpstreamUrl::parse(&upstream_text).map_err(|p| err("postgres.upstream", p))?;
    let pool_size = pg.pool_size.unwrap_or(32);
    if pool_size == 0 {
        return Err(err("postgres.pool_size", "must be at least 1".into()));
    }
    let idle_timeout_secs = pg.idle_timeout_secs.unwrap_or(300);
    if !(1..=MAX_IDLE_TIMEOUT_SECS).contains(&idle_timeout_secs) {
        return Err(err(
            "postgres.idle_timeout_secs",
            format!(
                "must be between 1 and {MAX_IDLE_TIMEOUT_SECS} (seconds an unused upstream connection is kept)"
            ),
        ));
    }
    let upstream_tls = pg.upstream_tls.unwrap_or(UpstreamTls::Disable);
    check_upstream_tls("postgres", upstream_tls, pg.upstream_ca.as_deref(), &err)?;
    let max_message_bytes = pg.max_message_bytes.unwrap_or(64 << 20);
    if max_message_bytes < 1024 {
        return Err(err(
            "postgres.max_message_bytes",
            "must be at least 1024".into(),
        ));
    }

    let my = raw.mysql;
    let my_listen_text = my.listen.unwrap_or_else(|| "127.0.0.1:3307".into());
    let my_listen: SocketAddr = my_listen_text.parse().map_err(|_| {
        err(
            "mysql.listen",
            format!("`{my_listen_text}` is not an address like 127.0.0.1:3307"),
        )
    })?;
    let my_upstream_text = my
        .upstream
        .unwrap_or_else(|| "mysql://root@127.0.0.1:3306".into());
    let my_upstream =
        UpstreamUrl::parse_mysql(&my_upstream_text).map_err(|p| err("mysql.upstream", p))?;
    let my_upstream_tls = my.upstream_tls.unwrap_or(UpstreamTls::Disable);
    check_upstream_tls("mysql", my_upstream_tls, my.upstream_ca.as_deref(), &err)?;
    let max_packet_bytes = my.max_packet_bytes.unwrap_or(64 << 20);
    if max_packet_bytes < 1024 {
        return Err(err(
            "mysql.max_packet_bytes",
            "must be at least 1024".into(),
        ));
    }
    let mysql = MysqlConfig {
        enabled: my.enabled.unwrap_or(true),
        listen: my_listen,
        upstream: my_upstream,
        upstream_tls: my_upstream_tls,
        upstream_ca: my.upstream_ca,
        max_packet_bytes,
        connect_timeout_secs: my.connect_timeout_secs.unwrap_or(10),
    };

    let tls = match raw.tls {
        None => None,
        Some(t) => {
            for (key, path) in [("tls.cert", &t.cert), ("tls.key", &t.key)] {
                if !path.is_file() {
                    return Err(err(
                        key,
                        format!("file `{}` does not exist", path.display()),
                    ));
                }
            }
            Some(TlsConfig {
                cert: t.cert,
                key: t.key,
                require: t.require,
            })
        }
    };

    let mut identities = Vec::new();
    let mut plaintext_identities = Vec::new();
    let mut oidc_subjects: HashMap<String, String> = HashMap::new();
    let mut oidc_emails: HashMap<String, String> = HashMap::new();
    let mut mcp_subjects: HashMap<String, String> = HashMap::new();
    for (i, id) in raw.identity.into_iter().enumerate() {
        let key = |field: &str| format!("identity[{i}].{field}");
        for (field, value, taken) in [
            ("oidc_subject", &id.oidc_subject, &mut oidc_subjects),
            ("oidc_email", &id.oidc_email, &mut oidc_emails),
        ] {
            let Some(value) = value else { continue };
            if raw.inbox.oidc.is_none() {
                return Err(err(
                    &key(field),
                    "needs single sign-on: there is no [inbox.oidc] section".into(),
                ));
            }
            if id.role == Role::Agent {
                return Err(err(
                    &key(field),
                    "agents do not use the inbox; only approvers, auditors and admins sign in"
                        .into(),
                ));
            }
            let value = if field == "oidc_email" {
                value.trim().to_lowercase()
            } else {
                value.clone()
            };
            if value.trim().is_empty() {
                return Err(err(&key(field), "must not be empty".into()));
            }
            if let Some(other) = taken.insert(value.clone(), id.name.clone()) {
                return Err(err(
                    &key(field),
                    format!("`{value}` is already given to identity `{other}`: one account, one identity"),
                ));
            }
        }
        if id.name.is_empty() || id.name.contains(['\0', ' ']) {
            return Err(err(
                &key("name"),
                "must be non-empty, without spaces".into(),
            ));
        }
        // Votes and the audit log tell people signed in by single sign-on
        // apart by this prefix: no configured identity may wear it.
        if id.name.starts_with("sso:") {
            return Err(err(
                &key("name"),
                format!(
                    "`{}`: names starting with `sso:` are kept for people signed in by single sign-on",
                    id.name
                ),
            ));
        }
        if identities.iter().any(|x: &Identity| x.name == id.name) {
            return Err(err(&key("name"), format!("`{}` is defined twice", id.name)));
        }
        let mut mysql = match &id.password {
            Some(p) => MysqlCredentials::from_password(p),
            None => MysqlCredentials::default(),
        };
        if let Some(hash) = &id.mysql_native_hash {
            if id.password.is_some() {
                return Err(err(
                    &key("mysql_native_hash"),
                    "not needed with password (Airlock derives it)".into(),
                ));
            }
            mysql.native = Some(NativeHash::parse(hash).map_err(|e| {
                err(
                    &key("mysql_native_hash"),
                    format!("{e} (see `airlock identity hash --mysql`)"),
                )
            })?);
        }
        let databases = match id.databases {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|g| {
                        crate::policy::Glob::new(g).ok_or_else(|| {
                            err(
                                &key("databases"),
                                format!("`{g}` is not a valid name pattern"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        // Approvers and auditors work in the inbox: they need no database
        // credentials and, unless told, may not use the database listeners.
        let database_login = id
            .database_login
            .unwrap_or(matches!(id.role, Role::Agent | Role::Admin));
        let verifier = match (id.password, id.scram_verifier) {
            (None, None) if !database_login => {
                // Nothing can match it: the identity has no database login.
                let unusable: [u8; 32] = rand::random();
                ScramVerifier::generate(&crate::hex::encode(&unusable), DEFAULT_SCRAM_ITERATIONS)
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    &key("password"),
                    "give either password or scram_verifier, not both".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    &key("scram_verifier"),
                    "missing: give scram_verifier (see `airlock identity hash`) or password".into(),
                ))
            }
            (Some(p), None) => {
                if p.is_empty() {
                    return Err(err(&key("password"), "must not be empty".into()));
                }
                plaintext_identities.push(id.name.clone());
                ScramVerifier::generate(&p, DEFAULT_SCRAM_ITERATIONS)
            }
            (None, Some(v)) => {
                ScramVerifier::parse(&v).map_err(|e| err(&key("scram_verifier"), e.to_string()))?
            }
        };
        let api_token_hash = id
            .api_token_hash
            .map(|h| {
                crate::hex::decode::<32>(h.trim()).ok_or_else(|| {
                    err(
                        &key("api_token_hash"),
                        "must be 64 hex digits (see `airlock identity token`)".into(),
                    )
                })
            })
            .transpose()?;
        let mcp_token_hash = id
            .mcp_token_hash
            .map(|h| {
                crate::hex::decode::<32>(h.trim()).ok_or_else(|| {
                    err(
                        &key("mcp_token_hash"),
                        "must be 64 hex digits (see `airlock identity token --mcp`)".into(),
                    )
                })
            })
            .transpose()?;
        if mcp_token_hash.is_some() && !database_login {
            return Err(err(
                &key("mcp_token_hash"),
                "this identity may not use the database (database_login = false), so it cannot query through MCP either".into(),
            ));
        }
        let mcp_oauth_subject = match id.mcp_oauth_subject {
            None => None,
            Some(_) if raw.inbox.oidc.is_none() => {
                return Err(err(
                    &key("mcp_oauth_subject"),
                    "needs an OpenID provider to issue the tokens: there is no [inbox.oidc] section"
                        .into(),
                ))
            }
            Some(_) if !database_login => {
                return Err(err(
                    &key("mcp_oauth_subject"),
                    "this identity may not use the database (database_login = false), so it cannot query through MCP either".into(),
                ))
            }
            Some(s) if s.trim().is_empty() => {
                return Err(err(&key("mcp_oauth_subject"), "must not be empty".into()))
            }
            Some(s) => {
                if let Some(other) = mcp_subjects.insert(s.clone(), id.name.clone()) {
                    return Err(err(
                        &key("mcp_oauth_subject"),
                        format!("`{s}` is already given to identity `{other}`: one account, one identity"),
                    ));
                }
                Some(s)
            }
        };
        if mcp_token_hash.is_some() && mcp_token_hash == api_token_hash {
            return Err(err(
                &key("mcp_token_hash"),
                "must not be the same token as api_token_hash: an MCP token is handed to programs"
                    .into(),
            ));
        }
        for (field, value) in [
            ("mcp_max_rows", id.mcp_max_rows),
            ("mcp_max_bytes", id.mcp_max_bytes),
        ] {
            if value == Some(0) {
                return Err(err(&key(field), "must be at least 1".into()));
            }
        }
        let mcp_limits = crate::identity::McpLimits {
            max_rows: id.mcp_max_rows,
            max_bytes: id.mcp_max_bytes,
        };
        if let Some(phc) = &id.inbox_password_hash {
            if id.role == Role::Agent {
                return Err(err(
                    &key("inbox_password_hash"),
                    "agents do not use the inbox; only approvers, auditors and admins log in"
                        .into(),
                ));
            }
            if !phc.starts_with("$argon2") {
                return Err(err(
                    &key("inbox_password_hash"),
                    "must be an Argon2 hash (see `airlock identity inbox-password`)".into(),
                ));
            }
        }
        if api_token_hash.is_some() && id.role == Role::Agent {
            return Err(err(
                &key("api_token_hash"),
                "agents do not use the inbox; only approvers, auditors and admins have API tokens"
                    .into(),
            ));
        }
        let upstream_role = id
            .upstream_role
            .as_deref()
            .map(|r| {
                crate::confinement::RoleName::parse(r)
                    .map_err(|e| err(&key("upstream_role"), format!("`{r}`: {e}")))
            })
            .transpose()?;
        let confinement = crate::confinement::Confinement {
            upstream_role,
            read_only: id.read_only.unwrap_or(false),
            // From `[limits]`, once those are read.
            statement_timeout: None,
        };
        if let Some(user) = &id.slack_user {
            if id.role == Role::Agent {
                return Err(err(
                    &key("slack_user"),
                    "agents do not decide requests; only approvers and admins have a Slack user"
                        .into(),
                ));
            }
            if user.is_empty() || !user.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(err(
                    &key("slack_user"),
                    format!("`{user}` is not a Slack user id such as U0123ABCD"),
                ));
            }
            if let Some(other) = identities
                .iter()
                .find(|x: &&Identity| x.slack_user.as_deref() == Some(user))
            {
                return Err(err(
                    &key("slack_user"),
                    format!("`{user}` is already the Slack user of `{}`", other.name),
                ));
            }
        }
        identities.push(Identity {
            name: id.name,
            role: id.role,
            groups: id.groups,
            verifier,
            api_token_hash,
            mcp_token_hash,
            mcp_oauth_subject,
            mcp_limits,
            inbox_password_hash: id.inbox_password_hash,
            mysql,
            databases,
            confinement,
            database_login,
            slack_user: id.slack_user,
        });
    }

    let auth = AuthConfig {
        max_failures: raw.auth.max_failures.unwrap_or(5),
        failure_window_secs: raw.auth.failure_window_secs.unwrap_or(60),
        lockout_secs: raw.auth.lockout_secs.unwrap_or(60),
    };
    if auth.max_failures == 0 {
        return Err(err("auth.max_failures", "must be at least 1".into()));
    }
    let level = raw.log.level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(err(
            "log.level",
            format!("`{level}` is not a log filter such as `info` or `airlock=debug`"),
        ));
    }
    let server = ServerConfig {
        shutdown_timeout_secs: raw.server.shutdown_timeout_secs.unwrap_or(30),
        startup_timeout_secs: raw.server.startup_timeout_secs.unwrap_or(60),
        max_connections: raw.server.max_connections.unwrap_or(1000),
        workers: raw.server.workers.unwrap_or_else(default_workers),
    };
    if server.max_connections == 0 {
        return Err(err("server.max_connections", "must be at least 1".into()));
    }
    if server.workers == 0 || server.workers > 1024 {
        return Err(err("server.workers", "must be between 1 and 1024".into()));
    }

    let state_dir: PathBuf = raw.state_dir.unwrap_or_else(|| "var".into());
    let audit = validate_audit(raw.audit, &state_dir, &err)?;
    let approval = ApprovalConfig {
        enabled: raw.approval.enabled.unwrap_or(true),
        store: match raw.approval.store {
            None => StoreLocation::Embedded(state_dir.join("approvals.sqlite3")),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                url.parse::<tokio_postgres::Config>().map_err(|e| {
                    // The parser's message never repeats the URL, so no
                    // password reaches the error.
                    err(
                        "approval.store",
                        format!("not a usable PostgreSQL URL: {e}"),
                    )
                })?;
                StoreLocation::Shared(url)
            }
            Some(path) if path.contains("://") => {
                return Err(err(
                    "approval.store",
                    "expected a file path or a postgresql:// URL".into(),
                ))
            }
            Some(path) => StoreLocation::Embedded(path.into()),
        },
        store_key: raw
            .approval
            .store_key
            .map(|hex| {
                crate::hex::decode::<32>(hex.trim()).ok_or_else(|| {
                    err(
                        "approval.store_key",
                        "must be 64 hex digits (32 bytes)".into(),
                    )
                })
            })
            .transpose()?,
        store_key_file: raw
            .approval
            .store_key_file
            .unwrap_or_else(|| state_dir.join("approval-store-key")),
    };
    let inbox_listen = raw.inbox.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let inbox_addr: SocketAddr = inbox_listen.parse().map_err(|_| {
        err(
            "inbox.listen",
            format!("`{inbox_listen}` is not an address like 127.0.0.1:8080"),
        )
    })?;
    let public_url = raw.inbox.public_url;
    if let Some(url) = &public_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(err(
                "inbox.public_url",
                format!("`{url}` must start with http:// or https://"),
            ));
        }
    }
    let oidc = raw
        .inbox
        .oidc
        .map(|o| validate_oidc(o, oidc_subjects, oidc_emails, &err))
        .transpose()?;
    let inbox = InboxConfig {
        listen: inbox_addr,
        public_url,
        oidc,
    };
    let slack = validate_slack(raw.slack, &err)?;
    let metrics = validate_metrics(raw.metrics, &err)?;
    let mcp = validate_mcp(raw.mcp, &identities, &err)?;
    let mut notify = Vec::new();
    for (i, n) in raw.notify.into_iter().enumerate() {
        use crate::inbox::notify::{Channel, Target};
        let key = |field: &str| format!("notify[{i}].{field}");
        if let Some(url) = &n.url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(err(
                    &key("url"),
                    "must start with https:// or http://".into(),
                ));
            }
        }
        if n.secret.is_some() && n.kind != "webhook" {
            return Err(err(
                &key("secret"),
                "only a webhook is signed with a secret".into(),
            ));
        }
        if n.channel.is_some() && n.kind != "slack" {
            return Err(err(
                &key("channel"),
                "only Slack posts to a channel; other kinds take a url".into(),
            ));
        }
        let url = |url: Option<String>| {
            url.ok_or_else(|| {
                err(
                    &key("url"),
                    "missing: where to send the notification".into(),
                )
            })
        };
        let channel = match n.kind.as_str() {
            "webhook" => Channel::Webhook {
                url: url(n.url)?,
                secret: n.secret,
            },
            "slack" => match (n.url, n.channel) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        &key("channel"),
                        "give either url (an incoming webhook) or channel (posted by the [slack] app), not both".into(),
                    ))
                }
                (Some(url), None) => Channel::Slack { url },
                (None, Some(channel)) => {
                    if slack.bot_token.is_none() {
                        return Err(err(
                            &key("channel"),
                            "posting to a channel needs the Slack app's bot token: set [slack] bot_token_file".into(),
                        ));
                    }
                    if channel.is_empty() || channel.contains(char::is_whitespace) {
                        return Err(err(
                            &key("channel"),
                            format!("`{channel}` is not a Slack channel id such as C0123ABCD"),
                        ));
                    }
                    Channel::SlackApp { channel }
                }
                (None, None) => {
                    return Err(err(
                        &key("channel"),
                        "missing: give channel (posted by the [slack] app, with Approve and Deny buttons) or url (an incoming webhook)".into(),
                    ))
                }
            },
            "teams" => Channel::Teams { url: url(n.url)? },
            other => {
                return Err(err(
                    &key("kind"),
                    format!("`{other}` is not one of webhook, slack, teams"),
                ))
            }
        };
        if n.group.is_empty() {
            return Err(err(&key("group"), "must name an approver group".into()));
        }
        notify.push(Target {
            group: n.group,
            channel,
        });
    }
    let limits = validate_limits(raw.limits, &mut identities, &err)?;
    Ok(Config {
        limits,
        policies: raw.policies.unwrap_or_else(|| "policies".into()),
        state_dir,
        mysql,
        postgres: PostgresConfig {
            listen,
            upstream,
            pool_size,
            upstream_tls,
            upstream_ca: pg.upstream_ca,
            max_message_bytes,
            connect_timeout_secs: pg.connect_timeout_secs.unwrap_or(10),
            acquire_timeout_secs: pg.acquire_timeout_secs.unwrap_or(30),
            idle_timeout_secs,
        },
        tls,
        auth,
        log: LogConfig {
            format: raw.log.format.unwrap_or(LogFormat::Text),
            level,
        },
        server,
        audit,
        approval,
        inbox,
        metrics,
        mcp,
        notify,
        slack,
        identities,
        plaintext_identities,
    })
}

/// `[inbox.oidc]`: the provider, the client and who may sign in.
fn validate_oidc(
    o: RawOidc,
    subjects: HashMap<String, String>,
    emails: HashMap<String, String>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<crate::inbox::oidc::OidcConfig, ConfigError> {
    use openidconnect::{ClientId, ClientSecret, IssuerUrl, RedirectUrl};
    let url_problem = |key: &str, url: &str| {
        if url.starts_with("https://") || url.starts_with("http://") {
            None
        } else {
            Some(err(
                key,
                format!("`{url}` must start with https:// or http://"),
            ))
        }
    };
    if let Some(e) = url_problem("inbox.oidc.issuer", &o.issuer) {
        return Err(e);
    }
    let issuer = IssuerUrl::new(o.issuer.clone()).map_err(|e| {
        err(
            "inbox.oidc.issuer",
            format!("`{}` is not a URL: {e}", o.issuer),
        )
    })?;
    if o.client_id.trim().is_empty() {
        return Err(err("inbox.oidc.client_id", "must not be empty".into()));
    }
    let client_secret = match o.client_secret_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                err(
                    "inbox.oidc.client_secret_file",
                    format!("cannot read `{}`: {e}", path.display()),
                )
            })?;
            let secret = text.trim();
            if secret.is_empty() {
                return Err(err(
                    "inbox.oidc.client_secret_file",
                    format!("`{}` is empty", path.display()),
                ));
            }
            Some(ClientSecret::new(secret.to_string()))
        }
    };
    let redirect_url = match o.redirect_url {
        None => None,
        Some(url) => {
            if let Some(e) = url_problem("inbox.oidc.redirect_url", &url) {
                return Err(e);
            }
            if !url.trim_end_matches('/').ends_with("/login/oidc/callback") {
                return Err(err(
                    "inbox.oidc.redirect_url",
                    format!("`{url}` must be the inbox's address followed by /login/oidc/callback"),
                ));
            }
            Some(RedirectUrl::new(url.clone()).map_err(|e| {
                err(
                    "inbox.oidc.redirect_url",
                    format!("`{url}` is not a URL: {e}"),
                )
            })?)
        }
    };
    let mut scopes: Vec<String> = o
        .scopes
        .unwrap_or_else(|| vec!["email".into(), "profile".into()]);
    if let Some(bad) = scopes
        .iter()
        .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(err(
            "inbox.oidc.scopes",
            format!("`{bad}` is not a scope name (one word each)"),
        ));
    }
    // `openid` is always asked for; the client library adds it.
    scopes.retain(|s| s != "openid");
    let groups_claim = o.groups_claim.unwrap_or_else(|| "groups".into());
    if groups_claim.trim().is_empty() {
        return Err(err("inbox.oidc.groups_claim", "must not be empty".into()));
    }
    let mut map = Vec::new();
    for (i, rule) in o.map.into_iter().enumerate() {
        let key = |field: &str| format!("inbox.oidc.map[{i}].{field}");
        if rule.claim_group.is_empty() {
            return Err(err(&key("claim_group"), "must not be empty".into()));
        }
        match rule.role {
            Role::Approver => {
                if rule.groups.is_empty() || rule.groups.iter().any(|g| g.is_empty()) {
                    return Err(err(
                        &key("groups"),
                        "an approver rule names the approver groups it grants, e.g. [\"dba\"]"
                            .into(),
                    ));
                }
            }
            Role::Auditor => {
                if !rule.groups.is_empty() {
                    return Err(err(
                        &key("groups"),
                        "auditors decide nothing: approver groups apply to approver rules only"
                            .into(),
                    ));
                }
            }
            Role::Admin | Role::Agent => {
                return Err(err(
                    &key("role"),
                    format!(
                        "`{}` cannot come from a group claim: approver or auditor (an admin is an [[identity]] with oidc_subject or oidc_email)",
                        rule.role
                    ),
                ))
            }
        }
        map.push(crate::inbox::oidc::ClaimGrant {
            claim_group: rule.claim_group,
            role: rule.role,
            groups: rule.groups,
        });
    }
    Ok(crate::inbox::oidc::OidcConfig {
        issuer,
        client_id: ClientId::new(o.client_id),
        client_secret,
        redirect_url,
        scopes,
        groups_claim,
        label: o.label.unwrap_or_else(|| "single sign-on".into()),
        subjects,
        emails,
        map,
    })
}

/// `[slack]`: the API address and the app's secrets, read from their files
/// now so that a missing or empty file stops the start, naming the key.
fn validate_slack(
    s: RawSlack,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<crate::inbox::slack::Settings, ConfigError> {
    let api_url = s
        .api_url
        .unwrap_or_else(|| crate::inbox::slack::DEFAULT_API_URL.into());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return Err(err(
            "slack.api_url",
            format!("`{api_url}` must start with https:// or http://"),
        ));
    }
    let secret = |key: &str, path: Option<PathBuf>| -> Result<Option<String>, ConfigError> {
        let Some(path) = path else { return Ok(None) };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| err(key, format!("cannot read `{}`: {e}", path.display())))?;
        let text = text.trim();
        if text.is_empty() || text.contains(char::is_whitespace) {
            return Err(err(
                key,
                format!(
                    "`{}` must hold the secret alone, on one line",
                    path.display()
                ),
            ));
        }
        Ok(Some(text.to_string()))
    };
    Ok(crate::inbox::slack::Settings {
        api_url: api_url.trim_end_matches('/').to_string(),
        bot_token: secret("slack.bot_token_file", s.bot_token_file)?,
        signing_secret: secret("slack.signing_secret_file", s.signing_secret_file)?,
    })
}

/// `[metrics]`: off unless `enabled = true` or a `listen` address is given
/// (an address alone means "serve here"; `enabled = false` beside one
/// keeps it off).
fn validate_metrics(
    m: RawMetrics,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<MetricsConfig, ConfigError> {
    if !m.enabled.unwrap_or(m.listen.is_some()) {
        return Ok(MetricsConfig { listen: None });
    }
    let listen = m
        .listen
        .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_string());
    let addr: SocketAddr = listen.parse().map_err(|_| {
        err(
            "metrics.listen",
            format!("`{listen}` is not an address like {DEFAULT_METRICS_LISTEN}"),
        )
    })?;
    Ok(MetricsConfig { listen: Some(addr) })
}

fn validate_mcp(
    raw: RawMcp,
    identities: &[Identity],
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<McpConfig, ConfigError> {
    let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8090".into());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        err(
            "mcp.listen",
            format!("`{listen_text}` is not an address like 127.0.0.1:8090"),
        )
    })?;
    if let Some(url) = &raw.public_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(err(
                "mcp.public_url",
                format!("`{url}` must start with http:// or https://"),
            ));
        }
    }
    let positive = |key: &str, value: Option<u64>, default: u64| match value {
        Some(0) => Err(err(key, "must be at least 1".into())),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    let any_token = identities
        .iter()
        .any(|i| i.mcp_token_hash.is_some() || i.mcp_oauth_subject.is_some());
    let enabled = raw.enabled.unwrap_or(any_token);
    if enabled && !any_token && !identities.is_empty() {
        return Err(err(
            "mcp.enabled",
            "no [[identity]] has an mcp_token_hash or an mcp_oauth_subject, so nobody could use the MCP endpoint (see `airlock identity token --mcp`)".into(),
        ));
    }
    Ok(McpConfig {
        enabled,
        listen,
        public_url: raw.public_url.map(|u| u.trim_end_matches('/').to_string()),
        max_rows: positive("mcp.max_rows", raw.max_rows, 1000)?,
        max_bytes: positive("mcp.max_bytes", raw.max_bytes, 1 << 20)?,
        statement_timeout_secs: positive(
            "mcp.statement_timeout_secs",
            raw.statement_timeout_secs,
            30,
        )?,
        max_wait_secs: positive("mcp.max_wait_secs", raw.max_wait_secs, 300)?,
    })
}

/// The longest statement timeout: a day; longer is no limit at all.
const MAX_STATEMENT_TIMEOUT_MS: u64 = 86_400_000;

/// `[limits]`, with each identity's statement timeout written into its
/// confinement (the server enforces it).
fn validate_limits(
    raw: RawLimits,
    identities: &mut [Identity],
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<crate::limits::LimitsConfig, ConfigError> {
    use crate::limits::{IdentityLimits, LimitsConfig};
    let base = LimitsConfig::default();
    let at_least_one = |key: &str, v: Option<usize>| match v {
        Some(0) => Err(err(key, "must be at least 1".into())),
        v => Ok(v),
    };
    let identity_limits =
        |prefix: &str, r: &RawIdentityLimits| -> Result<IdentityLimits, ConfigError> {
            let key = |k: &str| format!("{prefix}{k}");
            let rate = |k: &str, v: Option<u32>| match v {
                None => Ok(None),
                Some(n) => std::num::NonZeroU32::new(n)
                    .map(Some)
                    .ok_or_else(|| err(&key(k), "must be at least 1".into())),
            };
            let timeout = match r.statement_timeout_ms {
                None => None,
                Some(0) => {
                    return Err(err(
                        &key("statement_timeout_ms"),
                        "must be at least 1 (leave it out for no timeout)".into(),
                    ))
                }
                Some(ms) if ms > MAX_STATEMENT_TIMEOUT_MS => {
                    return Err(err(
                        &key("statement_timeout_ms"),
                        format!("must be at most {MAX_STATEMENT_TIMEOUT_MS} (a day)"),
                    ))
                }
                Some(ms) => Some(std::time::Duration::from_millis(ms)),
            };
            Ok(IdentityLimits {
                sessions: at_least_one(&key("sessions_per_identity"), r.sessions_per_identity)?,
                upstream: at_least_one(&key("upstream_per_identity"), r.upstream_per_identity)?,
                statements_per_second: rate("statements_per_second", r.statements_per_second)?,
                statement_burst: rate("statement_burst", r.statement_burst)?,
                statement_timeout: timeout,
            })
        };
    let defaults = identity_limits(
        "limits.",
        &RawIdentityLimits {
            sessions_per_identity: raw.sessions_per_identity,
            upstream_per_identity: raw.upstream_per_identity,
            statements_per_second: raw.statements_per_second,
            statement_burst: raw.statement_burst,
            statement_timeout_ms: raw.statement_timeout_ms,
        },
    )?;
    let mut per_identity = std::collections::HashMap::new();
    for (name, over) in &raw.identity {
        let prefix = format!("limits.identity.{name}.");
        if !identities.iter().any(|i| &i.name == name) {
            return Err(err(
                &format!("limits.identity.{name}"),
                format!("no [[identity]] is named `{name}`"),
            ));
        }
        let over = identity_limits(&prefix, over)?;
        per_identity.insert(name.clone(), defaults.overridden_by(&over));
    }
    let handshake = raw
        .handshake_timeout_secs
        .unwrap_or(base.handshake_timeout.as_secs());
    if handshake == 0 {
        return Err(err(
            "limits.handshake_timeout_secs",
            "must be at least 1".into(),
        ));
    }
    let config = LimitsConfig {
        preauth_per_address: at_least_one("limits.preauth_per_address", raw.preauth_per_address)?
            .unwrap_or(base.preauth_per_address),
        preauth_total: at_least_one("limits.preauth_total", raw.preauth_total)?
            .unwrap_or(base.preauth_total),
        handshake_timeout: std::time::Duration::from_secs(handshake),
        defaults,
        identities: per_identity,
    };
    for identity in identities.iter_mut() {
        identity.confinement.statement_timeout = config.of(&identity.name).statement_timeout;
    }
    Ok(config)
}

fn validate_audit(
    a: RawAudit,
    state_dir: &Path,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<AuditConfig, ConfigError> {
    let key = |name: &str, given: Option<String>| -> Result<Option<[u8; 32]>, ConfigError> {
        given
            .map(|hex| {
                crate::hex::decode::<32>(hex.trim())
                    .ok_or_else(|| err(name, "must be 64 hex digits (32 bytes)".into()))
            })
            .transpose()
    };
    let at_least = |name: &str, value: u64, min: u64| {
        if value < min {
            Err(err(name, format!("must be at least {min}")))
        } else {
            Ok(value)
        }
    };
    Ok(AuditConfig {
        dir: a.dir.unwrap_or_else(|| state_dir.join("audit")),
        fsync: a.fsync.unwrap_or(Fsync::Batch),
        batch_window_ms: at_least("audit.batch_window_ms", a.batch_window_ms.unwrap_or(10), 1)?,
        segment_bytes: at_least(
            "audit.segment_bytes",
            a.segment_bytes.unwrap_or(64 << 20),
            4096,
        )?,
        checkpoint_every: at_least(
            "audit.checkpoint_every",
            a.checkpoint_every.unwrap_or(10_000),
            1,
        )?,
        checkpoint_secs: at_least("audit.checkpoint_secs", a.checkpoint_secs.unwrap_or(60), 1)?,
        backlog_bytes: at_least(
            "audit.backlog_bytes",
            a.backlog_bytes.unwrap_or(64 << 20) as u64,
            64 << 10,
        )? as usize,
        chain_key: key("audit.chain_key", a.chain_key)?,
        chain_key_file: a
            .chain_key_file
            .unwrap_or_else(|| state_dir.join("audit-chain-key")),
        signing_key: key("audit.signing_key", a.signing_key)?,
        signing_key_file: a
            .signing_key_file
            .unwrap_or_else(|| state_dir.join("audit-signing-key")),
        previous_signing_key_file: a.previous_signing_key_file,
        public_key: key("audit.public_key", a.public_key)?,
        capture_rows: a.capture_rows.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_toml("airlock.toml", text, &[]).map_err(|e| e.to_string())
    }

    fn oidc(extra: &str) -> String {
        format!("[inbox.oidc]\nissuer = \"https://idp.example\"\nclient_id = \"airlock\"\n{extra}")
    }

    #[test]
    fn workers_are_sized_to_the_host_unless_set() {
        assert_eq!(load("").unwrap().server.workers, default_workers());
        assert_eq!(load("[server]\nworkers = 3\n").unwrap().server.workers, 3);
        for bad in ["0", "5000"] {
            let e = load(&format!("[server]\nworkers = {bad}\n")).unwrap_err();
            assert!(e.contains("key `server.workers`"), "{e}");
        }
        let e = load("[server]\nworkers = \"many\"\n").unwrap_err();
        assert!(e.contains("workers"), "{e}");
    }

    #[test]
    fn single_sign_on_maps_only_what_the_file_says() {
        let c = load(&format!(
            "{}\n[[inbox.oidc.map]]\nclaim_group = \"ops\"\nrole = \"approver\"\ngroups = [\"dba\"]\n\n[[identity]]\nname = \"boss\"\nrole = \"admin\"\npassword = \"pw\"\noidc_subject = \"s-1\"\noidc_email = \"Boss@Example.com\"\n",
            oidc("scopes = [\"openid\", \"email\", \"groups\"]\n")
        ))
        .unwrap();
        let o = c.inbox.oidc.unwrap();
        assert_eq!(o.scopes, ["email", "groups"]);
        assert_eq!(o.groups_claim, "groups");
        assert_eq!(o.subjects["s-1"], "boss");
        assert_eq!(o.emails["boss@example.com"], "boss");
        assert_eq!(o.map[0].groups, ["dba"]);
        assert!(o.client_secret.is_none());
        assert!(load("").unwrap().inbox.oidc.is_none());
    }

    #[test]
    fn single_sign_on_config_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let cases = [
            (
                "[inbox.oidc]\nissuer = \"idp.example\"\nclient_id = \"a\"\n".to_string(),
                "key `inbox.oidc.issuer`: `idp.example` must start with https:// or http://",
            ),
            (
                "[inbox.oidc]\nissuer = \"https://idp.example\"\nclient_id = \" \"\n".into(),
                "key `inbox.oidc.client_id`: must not be empty",
            ),
            (
                "[inbox.oidc]\nissuer = \"https://idp.example\"\n".into(),
                "key `inbox.oidc`: missing field `client_id`",
            ),
            (
                oidc("client_secret_file = \"/nonexistent/secret\"\n"),
                "key `inbox.oidc.client_secret_file`: cannot read `/nonexistent/secret`",
            ),
            (
                oidc(&format!("client_secret_file = \"{}\"\n", empty.display())),
                "key `inbox.oidc.client_secret_file`: `",
            ),
            (
                oidc("redirect_url = \"https://airlock.example/elsewhere\"\n"),
                "key `inbox.oidc.redirect_url`: `https://airlock.example/elsewhere` must be the inbox's address followed by /login/oidc/callback",
            ),
            (
                oidc("scopes = [\"email groups\"]\n"),
                "key `inbox.oidc.scopes`: `email groups` is not a scope name",
            ),
            (
                oidc("groups_claim = \"\"\n"),
                "key `inbox.oidc.groups_claim`: must not be empty",
            ),
            (
                oidc("clientid = \"x\"\n"),
                "unknown field `clientid`",
            ),
            (
                oidc("[[inbox.oidc.map]]\nclaim_group = \"ops\"\nrole = \"admin\"\n"),
                "key `inbox.oidc.map[0].role`: `admin` cannot come from a group claim",
            ),
            (
                oidc("[[inbox.oidc.map]]\nclaim_group = \"ops\"\nrole = \"agent\"\n"),
                "key `inbox.oidc.map[0].role`: `agent` cannot come from a group claim",
            ),
            (
                oidc("[[inbox.oidc.map]]\nclaim_group = \"ops\"\nrole = \"approver\"\n"),
                "key `inbox.oidc.map[0].groups`: an approver rule names the approver groups",
            ),
            (
                oidc("[[inbox.oidc.map]]\nclaim_group = \"ops\"\nrole = \"auditor\"\ngroups = [\"dba\"]\n"),
                "key `inbox.oidc.map[0].groups`: auditors decide nothing",
            ),
            (
                oidc("[[inbox.oidc.map]]\nclaim_group = \"\"\nrole = \"auditor\"\n"),
                "key `inbox.oidc.map[0].claim_group`: must not be empty",
            ),
            (
                "[[identity]]\nname = \"sso:alice@example.com\"\nrole = \"approver\"\n".into(),
                "key `identity[0].name`: `sso:alice@example.com`: names starting with `sso:` are kept",
            ),
            (
                "[[identity]]\nname = \"a\"\nrole = \"approver\"\noidc_subject = \"s\"\n".into(),
                "key `identity[0].oidc_subject`: needs single sign-on: there is no [inbox.oidc] section",
            ),
            (
                oidc("\n[[identity]]\nname = \"a\"\nrole = \"agent\"\npassword = \"p\"\noidc_email = \"a@example.com\"\n"),
                "key `identity[0].oidc_email`: agents do not use the inbox",
            ),
            (
                oidc("\n[[identity]]\nname = \"a\"\nrole = \"approver\"\noidc_subject = \"s\"\n[[identity]]\nname = \"b\"\nrole = \"auditor\"\noidc_subject = \"s\"\n"),
                "key `identity[1].oidc_subject`: `s` is already given to identity `a`",
            ),
            (
                oidc("\n[[identity]]\nname = \"a\"\nrole = \"approver\"\noidc_email = \"A@x.org\"\n[[identity]]\nname = \"b\"\nrole = \"auditor\"\noidc_email = \"a@X.org\"\n"),
                "key `identity[1].oidc_email`: `a@x.org` is already given to identity `a`",
            ),
        ];
        for (text, expected) in cases {
            let e = load(&text).unwrap_err();
            assert!(e.contains(expected), "{text}\n→ {e}\nexpected: {expected}");
            assert!(e.starts_with("airlock.toml: "), "{e}");
        }
    }

    #[test]
    fn slack_settings_and_users_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        let secret = dir.path().join("secret");
        let empty = dir.path().join("empty");
        std::fs::write(&token, "xoxb-1-2-abc\n").unwrap();
        std::fs::write(&secret, "s3cret\n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        let app = format!(
            "[slack]\napi_url = \"http://127.0.0.1:9/api/\"\nbot_token_file = {:?}\nsigning_secret_file = {:?}\n",
            token.display().to_string(),
            secret.display().to_string()
        );
        let channel = "[[notify]]\ngroup = \"dba\"\nkind = \"slack\"\nchannel = \"C0123\"\n";
        let c = load(&format!("{app}{channel}")).unwrap();
        assert_eq!(c.slack.api_url, "http://127.0.0.1:9/api");
        assert_eq!(c.slack.bot_token.as_deref(), Some("xoxb-1-2-abc"));
        assert_eq!(c.slack.signing_secret.as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}").contains("xoxb-1-2-abc"));

        let cases = [
            (channel.to_string(), "key `notify[0].channel`: posting to a channel needs the Slack app's bot token"),
            (format!("{app}[[notify]]\ngroup = \"dba\"\nkind = \"slack\"\n"), "key `notify[0].channel`: missing"),
            (format!("{app}[[notify]]\ngroup = \"dba\"\nkind = \"slack\"\nchannel = \"C1\"\nurl = \"https://hooks.slack.com/x\"\n"), "not both"),
            (format!("{app}[[notify]]\ngroup = \"dba\"\nkind = \"webhook\"\nchannel = \"C1\"\n"), "key `notify[0].channel`: only Slack"),
            (format!("{app}[[notify]]\ngroup = \"dba\"\nkind = \"teams\"\n"), "key `notify[0].url`: missing"),
            ("[slack]\napi_url = \"ftp://x\"\n".to_string(), "key `slack.api_url`"),
            ("[slack]\nbot_token_file = \"/nonexistent/token\"\n".to_string(), "key `slack.bot_token_file`: cannot read `/nonexistent/token`"),
            (format!("[slack]\nsigning_secret_file = {:?}\n", empty.display().to_string()), "key `slack.signing_secret_file`: "),
            ("[slack]\nsigning_secret = \"inline\"\n".to_string(), "signing_secret"),
        ];
        for (text, expected) in cases {
            let e = load(&text).unwrap_err();
            assert!(e.contains(expected), "{text}\n→ {e}");
        }

        let person = |name: &str, role: &str, user: &str| {
            format!("[[identity]]\nname = \"{name}\"\nrole = \"{role}\"\ngroups = [\"dba\"]\npassword = \"x\"\nslack_user = \"{user}\"\n")
        };
        let c = load(&person("dba1", "approver", "U0123")).unwrap();
        assert_eq!(c.identities[0].slack_user.as_deref(), Some("U0123"));
        let e =
            load(&(person("dba1", "approver", "U1") + &person("dba2", "admin", "U1"))).unwrap_err();
        assert!(
            e.contains("key `identity[1].slack_user`: `U1` is already the Slack user of `dba1`"),
            "{e}"
        );
        let e = load(&person("bot", "agent", "U2")).unwrap_err();
        assert!(
            e.contains("key `identity[0].slack_user`: agents do not decide"),
            "{e}"
        );
        for bad in ["", "U 1", "<@U1>"] {
            let e = load(&person("dba1", "approver", bad)).unwrap_err();
            assert!(e.contains("is not a Slack user id"), "{e}");
        }
    }

    #[test]
    fn metrics_are_off_by_default_and_on_where_asked() {
        assert_eq!(load("").unwrap().metrics.listen, None);
        let on = load("[metrics]\nenabled = true").unwrap();
        assert_eq!(
            on.metrics.listen.unwrap().to_string(),
            DEFAULT_METRICS_LISTEN
        );
        let at = load("[metrics]\nlisten = \"127.0.0.1:9999\"").unwrap();
        assert_eq!(at.metrics.listen.unwrap().to_string(), "127.0.0.1:9999");
        let off = load("[metrics]\nenabled = false\nlisten = \"127.0.0.1:9999\"").unwrap();
        assert_eq!(off.metrics.listen, None);
    }

    #[test]
    fn a_bad_metrics_section_names_file_and_key() {
        let e = load("[metrics]\nlisten = \"localhost\"").unwrap_err();
        assert!(
            e.starts_with("airlock.toml: key `metrics.listen`: `localhost` is not an address"),
            "{e}"
        );
        let e = load("[metrics]\nport = 9187").unwrap_err();
        assert!(e.contains("unknown field `port`"), "{e}");
        let e = load("[metrics]\nenabled = \"yes\"").unwrap_err();
        assert!(e.contains("metrics.enabled"), "{e}");
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.postgres.listen.to_string(), "127.0.0.1:6432");
        assert_eq!(c.postgres.upstream.address(), "127.0.0.1:5432");
        assert_eq!(c.postgres.upstream.database, "test");
        assert_eq!(c.postgres.pool_size, 32);
        assert_eq!(c.policies, PathBuf::from("policies"));
        assert_eq!(c.state_dir, PathBuf::from("var"));
        assert!(c.tls.is_none());
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let e = load("[postgres]\npool_size = \"many\"\n").unwrap_err();
        assert!(
            e.starts_with("airlock.toml: key `postgres.pool_size`: invalid type"),
            "{e}"
        );
        let e = load("[postgres]\nlisten = \"nowhere\"\n").unwrap_err();
        assert_eq!(
            e,
            "airlock.toml: key `postgres.listen`: `nowhere` is not an address like 127.0.0.1:6432"
        );
        assert_eq!(load("").unwrap().postgres.idle_timeout_secs, 300);
        assert_eq!(
            load("[postgres]\nidle_timeout_secs = 1\n")
                .unwrap()
                .postgres
                .idle_timeout_secs,
            1
        );
        for bad in ["0", "86401", "9223372036854775807"] {
            let e = load(&format!("[postgres]\nidle_timeout_secs = {bad}\n")).unwrap_err();
            assert!(
                e.starts_with(
                    "airlock.toml: key `postgres.idle_timeout_secs`: must be between 1 and 86400"
                ),
                "{bad}: {e}"
            );
        }
        let e = load("[postgres]\nidle_timeout_secs = -1\n").unwrap_err();
        assert!(
            e.starts_with("airlock.toml: key `postgres.idle_timeout_secs`: invalid value"),
            "{e}"
        );
        let e = load("[postgres]\npool_sise = 3\n").unwrap_err();
        assert!(
            e.starts_with("airlock.toml: key `postgres.pool_sise`: unknown field `pool_sise`"),
            "{e}"
        );
        let e =
            load("[[identity]]\nname = \"a\"\nrole = \"boss\"\npassword = \"x\"\n").unwrap_err();
        assert!(
            e.starts_with("airlock.toml: key `identity[0].role`: unknown variant `boss`"),
            "{e}"
        );
        let e = load("[[identity]]\nname = \"a\"\nrole = \"agent\"\nscram_verifier = \"md5x\"\n")
            .unwrap_err();
        assert!(
            e.starts_with("airlock.toml: key `identity[0].scram_verifier`: expected the form"),
            "{e}"
        );
        let e = load("[postgres]\nupstream = \"mysql://x@y/z\"\n").unwrap_err();
        assert_eq!(
            e,
            "airlock.toml: key `postgres.upstream`: must start with postgresql://"
        );
        let e =
            load("[tls]\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.pem\"\n").unwrap_err();
        assert_eq!(
            e,
            "airlock.toml: key `tls.cert`: file `/nonexistent.pem` does not exist"
        );
        let e = load("[postgres\n").unwrap_err();
        assert!(
            e.starts_with("airlock.toml: ") && e.contains("(line 1)"),
            "{e}"
        );
        let e = load("[postgres]\nupstream_tls = \"verify-full\"\n").unwrap_err();
        assert!(
            e.contains("key `postgres.upstream_tls`: verify-full needs postgres.upstream_ca"),
            "{e}"
        );
    }

    #[test]
    fn limits_are_read_merged_and_validated() {
        let ids = "[[identity]]\nname = \"a\"\nrole = \"agent\"\npassword = \"x\"\n\
                   [[identity]]\nname = \"b\"\nrole = \"agent\"\npassword = \"x\"\n";
        let c = load(ids).unwrap();
        assert_eq!(c.limits, crate::limits::LimitsConfig::default());
        assert!(!c.identities[0].confinement.is_confined());
        let c = load(&format!(
            "{ids}[limits]\npreauth_per_address = 4\npreauth_total = 9\nhandshake_timeout_secs = 3\n\
             sessions_per_identity = 5\nstatements_per_second = 10\nstatement_timeout_ms = 2000\n\
             [limits.identity.b]\nsessions_per_identity = 1\nupstream_per_identity = 1\n"
        ))
        .unwrap();
        assert_eq!(c.limits.preauth_per_address, 4);
        assert_eq!(c.limits.preauth_total, 9);
        assert_eq!(c.limits.handshake_timeout.as_secs(), 3);
        assert_eq!(c.limits.of("a").sessions, Some(5));
        assert_eq!(c.limits.of("a").upstream, None);
        assert_eq!(c.limits.of("b").sessions, Some(1));
        assert_eq!(c.limits.of("b").upstream, Some(1));
        assert_eq!(c.limits.of("b").statements_per_second.unwrap().get(), 10);
        let two_s = Some(std::time::Duration::from_secs(2));
        assert_eq!(c.identities[0].confinement.statement_timeout, two_s);
        assert_eq!(c.identities[1].confinement.statement_timeout, two_s);
        for (toml, key, problem) in [
            (
                "[limits]\npreauth_total = 0\n",
                "limits.preauth_total",
                "at least 1",
            ),
            (
                "[limits]\nstatements_per_second = 0\n",
                "limits.statements_per_second",
                "at least 1",
            ),
            (
                "[limits]\nstatement_timeout_ms = 0\n",
                "limits.statement_timeout_ms",
                "at least 1",
            ),
            (
                "[limits]\nstatement_timeout_ms = 86400001\n",
                "limits.statement_timeout_ms",
                "at most",
            ),
            (
                "[limits]\nhandshake_timeout_secs = 0\n",
                "limits.handshake_timeout_secs",
                "at least 1",
            ),
            (
                "[limits.identity.nobody]\nsessions_per_identity = 1\n",
                "limits.identity.nobody",
                "no [[identity]]",
            ),
            (
                "[limits.identity.a]\nsessions_per_identity = 0\n",
                "limits.identity.a.sessions_per_identity",
                "at least 1",
            ),
        ] {
            let e = load(&format!("{ids}{toml}")).unwrap_err();
            assert!(
                e.contains(&format!("key `{key}`")) && e.contains(problem),
                "{toml}: {e}"
            );
        }
        let e = load(&format!("{ids}[limits]\nsessions = 1\n")).unwrap_err();
        assert!(e.contains("sessions"), "{e}");
    }

    #[test]
    fn identity_confinement_is_validated() {
        let base = "[[identity]]\nname = \"a\"\nrole = \"agent\"\npassword = \"x\"\n";
        let c = load(&format!(
            "{base}upstream_role = \"Agent RO\"\nread_only = true\n"
        ))
        .unwrap();
        let conf = &c.identities[0].confinement;
        assert_eq!(conf.upstream_role.as_ref().unwrap().as_str(), "Agent RO");
        assert!(conf.read_only);
        let c = load(base).unwrap();
        assert!(!c.identities[0].confinement.is_confined());
        for (value, problem) in [
            ("\"\"", "must not be empty"),
            ("\"none\"", "reserved word"),
            ("\"CURRENT_USER\"", "reserved word"),
            ("\"a\\nb\"", "control characters"),
            (&format!("\"{}\"", "r".repeat(64)), "at most 63 bytes"),
        ] {
            let e = load(&format!("{base}upstream_role = {value}\n")).unwrap_err();
            assert!(
                e.starts_with("airlock.toml: key `identity[0].upstream_role`: ")
                    && e.contains(problem),
                "{value}: {e}"
            );
        }
        for value in ["\"yes\"", "1", "\"true\""] {
            let e = load(&format!("{base}read_only = {value}\n")).unwrap_err();
            assert!(
                e.starts_with("airlock.toml: key `identity[0].read_only`: ") && e.contains("bool"),
                "{value}: {e}"
            );
        }
        let e = load(&format!("{base}upstream_roles = \"x\"\n")).unwrap_err();
        assert!(e.contains("upstream_roles"), "{e}");
    }

    #[test]
    fn identities_need_exactly_one_credential_and_unique_names() {
        let e = load("[[identity]]\nname = \"a\"\nrole = \"agent\"\n").unwrap_err();
        assert!(
            e.contains("key `identity[0].scram_verifier`: missing"),
            "{e}"
        );
        let two = "[[identity]]\nname = \"a\"\nrole = \"agent\"\npassword = \"x\"\n";
        let e = load(&format!("{two}{two}")).unwrap_err();
        assert!(
            e.contains("key `identity[1].name`: `a` is defined twice"),
            "{e}"
        );
        let c = load(two).unwrap();
        assert_eq!(c.plaintext_identities, vec!["a".to_string()]);
    }

    #[test]
    fn overrides_win_and_are_blamed_by_name() {
        let env = env_overrides([
            ("AIRLOCK_POSTGRES_POOL_SIZE".to_string(), "4".to_string()),
            (
                "AIRLOCK_POLICIES".to_string(),
                "/etc/airlock/policies".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ])
        .unwrap();
        let c = Config::from_toml("airlock.toml", "[postgres]\npool_size = 9\n", &env).unwrap();
        assert_eq!(c.postgres.pool_size, 4);
        assert_eq!(c.policies, PathBuf::from("/etc/airlock/policies"));

        let env = env_overrides([("AIRLOCK_POSTGRES_POOL_SIZE".to_string(), "zero".to_string())])
            .unwrap();
        let e = Config::from_toml("airlock.toml", "", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "environment variable AIRLOCK_POSTGRES_POOL_SIZE: key `postgres.pool_size`"
            ),
            "{e}"
        );
        let env = env_overrides([("AIRLOCK_POSTGRES_LISTN".to_string(), "x".to_string())]).unwrap();
        let e = Config::from_toml("airlock.toml", "", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "environment variable AIRLOCK_POSTGRES_LISTN: key `postgres.listn`: unknown field"
            ),
            "{e}"
        );
    }

    #[test]
    fn the_store_key_is_hex_or_kept_in_a_file() {
        let c = load("").unwrap();
        assert_eq!(c.approval.store_key, None);
        assert_eq!(
            c.approval.store_key_file,
            PathBuf::from("var/approval-store-key")
        );
        let c = load(&format!(
            "[approval]\nstore_key = \"{}\"\n",
            "ab".repeat(32)
        ))
        .unwrap();
        assert_eq!(c.approval.store_key, Some([0xab; 32]));
        let e = load("[approval]\nstore_key = \"abc\"\n").unwrap_err();
        assert!(e.contains("approval.store_key"), "{e}");
    }

    /// The store's database is closed to agents wherever it may be on the
    /// upstream server; only a provably different server keeps it open.
    #[test]
    fn the_store_database_is_reserved_on_its_own_server() {
        let on = |url: &str, host: &str, port: u16| {
            load(&format!("[approval]\nstore = \"{url}\"\n"))
                .unwrap()
                .approval
                .store_database_on(host, port)
        };
        let store = "postgresql://postgres@127.0.0.1:5432/approvals";
        assert_eq!(on(store, "127.0.0.1", 5432).as_deref(), Some("approvals"));
        assert_eq!(on(store, "localhost", 5432).as_deref(), Some("approvals"));
        assert_eq!(on(store, "::1", 5432).as_deref(), Some("approvals"));
        assert_eq!(on(store, "db.internal", 5432).as_deref(), Some("approvals"));
        assert_eq!(on(store, "10.0.0.7", 5432), None);
        assert_eq!(on(store, "127.0.0.1", 5433), None);
        // No port: PostgreSQL's; no database: the user's name.
        assert_eq!(
            on("postgresql://airlock@db.internal", "db.internal", 5432).as_deref(),
            Some("airlock")
        );
        assert_eq!(
            on(
                "postgresql://airlock@DB.internal:5432/a",
                "db.internal",
                5432
            )
            .as_deref(),
            Some("a")
        );
        assert_eq!(
            load("")
                .unwrap()
                .approval
                .store_database_on("127.0.0.1", 5432),
            None
        );
    }

    #[test]
    fn the_approval_store_is_a_file_or_a_postgresql_url() {
        let c = load("").unwrap();
        assert_eq!(
            c.approval.store,
            StoreLocation::Embedded("var/approvals.sqlite3".into())
        );
        let c = load("[approval]\nstore = \"/srv/airlock/holds.db\"\n").unwrap();
        assert_eq!(
            c.approval.store,
            StoreLocation::Embedded("/srv/airlock/holds.db".into())
        );
        let url = "postgresql://airlock:s3cret@db.internal:5432/airlock";
        let c = load(&format!("[approval]\nstore = \"{url}\"\n")).unwrap();
        assert_eq!(c.approval.store, StoreLocation::Shared(url.into()));
        let e = load("[approval]\nstore = \"postgresql://u:s3cret@h:notaport/db\"\n").unwrap_err();
        assert!(
            e.starts_with("airlock.toml: key `approval.store`: not a usable PostgreSQL URL"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "the password stays out: {e}");
        let e = load("[approval]\nstore = \"mysql://h/db\"\n").unwrap_err();
        assert_eq!(
            e,
            "airlock.toml: key `approval.store`: expected a file path or a postgresql:// URL"
        );
    }

    #[test]
    fn audit_section_defaults_and_errors() {
        let c = load("state_dir = \"/srv/airlock\"\n").unwrap();
        assert_eq!(c.audit.dir, PathBuf::from("/srv/airlock/audit"));
        assert_eq!(c.audit.fsync, Fsync::Batch);
        assert_eq!(
            c.audit.chain_key_file,
            PathBuf::from("/srv/airlock/audit-chain-key")
        );
        assert_eq!(c.audit.capture_rows, 0);
        let cases = [
            (
                "[audit]\nfsync = \"sometimes\"\n",
                "airlock.toml: key `audit.fsync`: unknown variant `sometimes`",
            ),
            (
                "[audit]\nsegment_bytes = 100\n",
                "airlock.toml: key `audit.segment_bytes`: must be at least 4096",
            ),
            (
                "[audit]\nchain_key = \"abc\"\n",
                "airlock.toml: key `audit.chain_key`: must be 64 hex digits (32 bytes)",
            ),
            (
                "[audit]\ncheckpoint_every = 0\n",
                "airlock.toml: key `audit.checkpoint_every`: must be at least 1",
            ),
            (
                "[audit]\ncapture = 5\n",
                "airlock.toml: key `audit.capture`: unknown field `capture`",
            ),
        ];
        for (text, expected) in cases {
            let e = load(text).unwrap_err();
            assert!(e.starts_with(expected), "{e}");
        }
        let overrides =
            env_overrides([("AIRLOCK_AUDIT_CHAIN_KEY".to_string(), "zz".repeat(32))]).unwrap();
        let e = Config::from_toml("airlock.toml", "", &overrides)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("environment variable AIRLOCK_AUDIT_CHAIN_KEY: key `audit.chain_key`"),
            "{e}"
        );
    }

    #[test]
    fn upstream_urls() {
        let u = UpstreamUrl::parse("postgresql://svc:p%40ss@db.internal:6543/prod").unwrap();
        assert_eq!(
            (
                u.user.as_str(),
                u.password.as_deref(),
                u.host.as_str(),
                u.port
            ),
            ("svc", Some("p@ss"), "db.internal", 6543)
        );
        assert_eq!(
            UpstreamUrl::parse("postgres://a@[::1]/d")
                .unwrap()
                .address(),
            "[::1]:5432"
        );
        assert!(UpstreamUrl::parse("postgresql://a@h/d?sslmode=require").is_err());
        assert!(UpstreamUrl::parse("postgresql://h/d").is_err());
    }

    #[test]
    fn mcp_settings_are_validated_and_on_only_with_a_token() {
        let hash = "ab".repeat(32);
        let agent = |extra: &str| {
            format!("[[identity]]\nname = \"a\"\nrole = \"agent\"\npassword = \"x\"\n{extra}")
        };
        let c = load(&agent("")).unwrap();
        assert!(!c.mcp.enabled, "no token: no endpoint");
        let c = load(&agent(&format!("mcp_token_hash = \"{hash}\"\n"))).unwrap();
        assert!(c.mcp.enabled);
        assert_eq!(c.mcp.listen.to_string(), "127.0.0.1:8090");
        assert_eq!((c.mcp.max_rows, c.mcp.max_bytes), (1000, 1 << 20));
        let e = load(&agent("mcp_token_hash = \"xyz\"\n")).unwrap_err();
        assert!(
            e.contains("key `identity[0].mcp_token_hash`: must be 64 hex digits"),
            "{e}"
        );
        let e = load(&format!("[mcp]\nenabled = true\n{}", agent(""))).unwrap_err();
        assert!(e.contains("key `mcp.enabled`"), "{e}");
        let e = load(&format!(
            "[mcp]\nmax_rows = 0\n{}",
            agent(&format!("mcp_token_hash = \"{hash}\"\n"))
        ))
        .unwrap_err();
        assert!(e.contains("key `mcp.max_rows`: must be at least 1"), "{e}");
        let e = load(&format!("[mcp]\nlisten = \"nowhere\"\n{}", agent(""))).unwrap_err();
        assert!(e.contains("key `mcp.listen`"), "{e}");
        let e = load(&format!("[mcp]\npublic_url = \"ftp://x\"\n{}", agent(""))).unwrap_err();
        assert!(e.contains("key `mcp.public_url`"), "{e}");
        let e = load(&agent("mcp_max_bytes = 0\n")).unwrap_err();
        assert!(e.contains("key `identity[0].mcp_max_bytes`"), "{e}");
        // An approver has no database login, so no MCP either.
        let e = load(&format!(
            "[[identity]]\nname = \"d\"\nrole = \"approver\"\nmcp_token_hash = \"{hash}\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("key `identity[0].mcp_token_hash`"), "{e}");
        let e = load(&format!("[mcp]\nsurprise = 1\n{}", agent(""))).unwrap_err();
        assert!(e.contains("surprise"), "{e}");
        // OAuth subjects need the provider, a database login, and one
        // identity each.
        let e = load(&agent("mcp_oauth_subject = \"svc\"\n")).unwrap_err();
        assert!(
            e.contains("key `identity[0].mcp_oauth_subject`") && e.contains("[inbox.oidc]"),
            "{e}"
        );
        let sso = "[approval]\nenabled = true\n[inbox.oidc]\nissuer = \"https://idp.example\"\nclient_id = \"c\"\n";
        let c = load(&format!("{sso}{}", agent("mcp_oauth_subject = \"svc\"\n"))).unwrap();
        assert!(c.mcp.enabled, "an OAuth subject opens the endpoint");
        let e = load(&format!(
            "{sso}{}[[identity]]\nname = \"b\"\nrole = \"agent\"\npassword = \"y\"\nmcp_oauth_subject = \"svc\"\n",
            agent("mcp_oauth_subject = \"svc\"\n")
        ))
        .unwrap_err();
        assert!(
            e.contains("key `identity[1].mcp_oauth_subject`") && e.contains("already"),
            "{e}"
        );
        let e = load(&format!(
            "{sso}[[identity]]\nname = \"d\"\nrole = \"approver\"\nmcp_oauth_subject = \"svc\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("key `identity[0].mcp_oauth_subject`"), "{e}");
    }

    #[test]
    fn the_stdio_token_is_not_a_configuration_key() {
        let o = env_overrides([
            ("AIRLOCK_MCP_TOKEN".to_string(), "amcp_x".to_string()),
            ("AIRLOCK_MCP_MAX_ROWS".to_string(), "5".to_string()),
        ])
        .unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].key, "mcp.max_rows");
    }
}
