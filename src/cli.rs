//! The `airlock` command line: `serve`, `config check`, `identity hash`.

use crate::approval::store::{Approvals, StoreKey};
use crate::audit::{self, Audit, AuditEvent};
use crate::config::{env_overrides, Config, ConfigError, LogFormat, Override};
use crate::gate::Gate;
use crate::identity::{
    Identities, Identity, LoginThrottle, Role, ScramVerifier, DEFAULT_SCRAM_ITERATIONS,
};
use crate::policy::Policy;
use crate::proxy::mysql::{
    frontend::LoginSettings as MysqlLogin, upstream::UpstreamSettings as MysqlUpstream,
    MysqlListener, MysqlShared,
};
use crate::proxy::pg::{
    cancel::CancelMap, frontend::LoginSettings, upstream, PgListener, PgShared,
};
use crate::proxy::tls;
use clap::{Parser, Subcommand};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    about = "A database gateway for AI agents: classify, hold, mask, audit."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Work with identities.
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Work with policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run the gateway with its MCP endpoint on standard input and output
    /// (for an agent that starts Airlock as a local MCP server). The
    /// identity is the one whose MCP token is in AIRLOCK_MCP_TOKEN.
    Mcp(McpArgs),
    /// Emergency windows during which one agent's held statements are
    /// approved at once (admins only; asks the running gateway's inbox).
    Breakglass {
        #[command(subcommand)]
        command: BreakglassCommand,
    },
}

#[derive(Subcommand)]
enum BreakglassCommand {
    /// Opens a window: every statement of IDENTITY that a rule holds is
    /// approved at once, recorded as a break-glass decision and announced
    /// to every notification channel. Denials still deny. It ends by itself.
    Open {
        /// The agent identity the window is for (never your own).
        #[arg(long)]
        identity: String,
        /// How long: 30m, 2h, 90s, 1h30m (at most 24h).
        #[arg(long = "for")]
        duration: String,
        /// Why, for the audit log and the announcement.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        inbox: InboxArgs,
    },
    /// Closes IDENTITY's window before its time.
    Close {
        #[arg(long)]
        identity: String,
        #[command(flatten)]
        inbox: InboxArgs,
    },
    /// Lists the open windows.
    List {
        #[command(flatten)]
        inbox: InboxArgs,
    },
}

/// Where the running gateway's inbox is, and the admin's API token.
#[derive(clap::Args)]
struct InboxArgs {
    /// The inbox's URL.
    #[arg(
        long,
        env = "AIRLOCK_INBOX_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    inbox: String,
    /// An admin's API token (`airlock identity token`).
    #[arg(long, env = "AIRLOCK_API_TOKEN", hide_env_values = true)]
    token: String,
}

/// Calls the inbox's break-glass API as the token's identity and prints
/// its answer.
fn breakglass(command: BreakglassCommand) -> ExitCode {
    let (inbox, path, body) = match command {
        BreakglassCommand::Open {
            identity,
            duration,
            reason,
            inbox,
        } => (
            inbox,
            "/api/breakglass".to_string(),
            Some(serde_json::json!({"identity": identity, "for": duration, "reason": reason})),
        ),
        BreakglassCommand::Close { identity, inbox } => (
            inbox,
            format!("/api/breakglass/{}/close", url_path_segment(&identity)),
            Some(serde_json::json!({})),
        ),
        BreakglassCommand::List { inbox } => (inbox, "/api/breakglass".to_string(), None),
    };
    let url = format!("{}{path}", inbox.inbox.trim_end_matches('/'));
    let call = async {
        let client = crate::inbox::notify::http_client()?;
        let request = match &body {
            Some(b) => client.post(&url).json(b),
            None => client.get(&url),
        };
        let answer = request
            .bearer_auth(&inbox.token)
            .send()
            .await
            .map_err(|e| format!("cannot reach the inbox at {}: {e}", inbox.inbox))?;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        Ok::<_, String>((status, text))
    };
    let answered = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(call));
    match answered {
        Ok((status, text)) if status.is_success() => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok((status, text)) => {
            let why = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            eprintln!("error: the inbox refused (HTTP {}): {why}", status.as_u16());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `text` as one path segment: anything but unreserved characters escaped.
fn url_path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(clap::Args)]
struct McpArgs {
    /// Speak MCP on standard input/output (the only mode of this command;
    /// the HTTP endpoint runs with `airlock serve`).
    #[arg(long, required = true)]
    stdio: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every link, hash, checkpoint signature, key rotation and
    /// session transcript root of the log, from the pinned public key.
    /// Prints what was checked and OK, or the first broken record and why.
    /// Exit code: 0 intact and vouched for, 10 edited, 11 deleted,
    /// 12 inserted, 13 reordered, 14 truncated, 15 wrong chain key, 16 bad
    /// signature, 17 unreadable, 18 bad key rotation, 19 session mismatch,
    /// 20 intact as far as checked but not everything could be (no trusted
    /// key, format-1 records without the chain key), 2 on error.
    Verify {
        /// The log's directory.
        #[arg(long, default_value = "var/audit")]
        dir: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Verify a file written by `audit export`: its links, hashes,
    /// signatures and the sessions it holds whole. Exit codes as `verify`;
    /// 20 also when records at its end are covered by no checkpoint.
    VerifyExport {
        /// The export file (JSON lines).
        file: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// One line per session: when, who, from where, statements by
    /// verdict, errors, rows and masked values.
    Sessions {
        #[arg(long, default_value = "var/audit")]
        dir: PathBuf,
        /// Only this identity's sessions.
        #[arg(long)]
        identity: Option<String>,
        /// Sessions open at or after this time: a UTC date (2026-11-22),
        /// date-time (2026-11-22T10:30:00Z) or age (15m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Sessions started at or before this time.
        #[arg(long)]
        until: Option<String>,
        /// Only sessions with a statement of this verdict.
        #[arg(long, value_parser = ["allow", "hold", "deny"])]
        verdict: Option<String>,
        /// Only sessions with a held statement whose request ended so, or
        /// (`error`) in which the server returned an error.
        #[arg(long, value_parser = ["approved", "denied", "expired", "withdrawn", "error"])]
        outcome: Option<String>,
        /// Only sessions connected to this database.
        #[arg(long)]
        database: Option<String>,
        /// Only sessions whose client gave this application name.
        #[arg(long)]
        application: Option<String>,
        /// One JSON object per session.
        #[arg(long)]
        json: bool,
    },
    /// A session as a transcript: connection, statements with their
    /// verdicts, holds and decisions, results (and captured masked rows),
    /// errors, disconnection — under the log's verification status.
    Replay {
        #[arg(long, default_value = "var/audit")]
        dir: PathBuf,
        #[arg(long)]
        session: String,
        /// The session's records as written (JSON lines), chain fields included.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Records of a period as JSON lines for a SIEM, exactly as written:
    /// an unbroken stretch of the chain, carried on to the first
    /// checkpoint after the period so that a signature covers every
    /// record (`audit verify-export` checks it).
    Export {
        #[arg(long, default_value = "var/audit")]
        dir: PathBuf,
        /// From the first record at or after this time (date, date-time or age).
        #[arg(long)]
        since: Option<String>,
        /// To the last record at or before this time.
        #[arg(long)]
        until: Option<String>,
        /// `jsonl`: the records exactly as written, verifiable with
        /// `audit verify-export`. `ocsf`: one OCSF 1.3 event per line
        /// (Authentication, Datastore Activity, Detection Finding) for a
        /// SIEM; see docs/ocsf.md.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "ocsf"])]
        format: String,
    },
}

/// The keys an auditor trusts, given on the command line or by a
/// configuration file — never taken from the log.
#[derive(clap::Args)]
struct TrustArgs {
    /// The Ed25519 public key (64 hex digits) the log's checkpoints start
    /// from; key rotations signed by it are followed.
    #[arg(long)]
    pubkey: Option<String>,
    /// A configuration file whose `audit.public_key` (or, failing that,
    /// the public half of its signing key) is the trusted key, and whose
    /// chain key checks format-1 records.
    #[arg(long)]
    config: Option<PathBuf>,
    /// File holding the chain key of format-1 (keyed) records, written
    /// before format 2 (64 hex digits).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Without a trusted key, check only that the log agrees with itself
    /// (signatures against the keys it names) and exit 0 if it does.
    #[arg(long)]
    self_check: bool,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Explain what the policy decides for each query: its statements,
    /// classes, objects and functions, the rule that matched and the verdict.
    /// Exit code: 0 all allowed, 3 some held, 4 some denied, 2 on error.
    Check(PolicyCheckArgs),
}

#[derive(clap::Args)]
struct PolicyCheckArgs {
    /// Configuration file, for its `policies` folder and identities.
    #[arg(long, env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Policy folder (overrides the configuration's `policies`).
    #[arg(long)]
    policies: Option<PathBuf>,
    #[arg(long, value_parser = ["postgres", "mysql"], default_value = "postgres")]
    dialect: String,
    /// The identity the query comes from; its role is taken from the configuration.
    #[arg(long, default_value = "agent")]
    identity: String,
    /// The role, for an identity not in the configuration.
    #[arg(long, value_parser = ["agent", "approver", "auditor", "admin"])]
    role: Option<String>,
    #[arg(long, default_value = "test")]
    database: String,
    /// Machine-readable output, one JSON object per query.
    #[arg(long)]
    json: bool,
    /// The queries, one per argument; read from standard input when none is given.
    sql: Vec<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Configuration file (default: none, built-in defaults).
    #[arg(long, env = "AIRLOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `postgres.listen`.
    #[arg(long)]
    listen: Option<String>,
    /// Overrides `postgres.upstream`.
    #[arg(long)]
    upstream: Option<String>,
    /// Overrides `state_dir`.
    #[arg(long)]
    state_dir: Option<String>,
    /// Overrides `log.format` (`text` or `json`).
    #[arg(long)]
    log_format: Option<String>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file; errors name the file, key and problem.
    Check {
        /// The file to check.
        #[arg(default_value = "airlock.toml")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// Read a password on standard input and print its SCRAM-SHA-256
    /// verifier, for `scram_verifier = "…"` in `[[identity]]`.
    Hash {
        #[arg(long, default_value_t = DEFAULT_SCRAM_ITERATIONS)]
        iterations: u32,
        /// Print MySQL's `mysql_native_hash` (SHA1(SHA1(password)), for
        /// `mysql_native_password` logins) instead.
        #[arg(long)]
        mysql: bool,
    },
    /// Make a new API token for the inbox: prints the token (give it to
    /// the approver or auditor) and the `api_token_hash = "…"` line for
    /// their `[[identity]]`. With `--mcp`: a token for an agent's MCP
    /// client and the `mcp_token_hash = "…"` line.
    Token {
        #[arg(long)]
        mcp: bool,
    },
    /// Read a password on standard input and print the
    /// `inbox_password_hash = "…"` line (Argon2id) for the inbox's login.
    InboxPassword,
    /// Print a whole `[[identity]]` block for a new identity, asking for
    /// its password twice (hidden when typed at a terminal): an agent gets
    /// its database verifiers, an approver, auditor or admin an inbox
    /// password hash and an API token (the token goes to standard error,
    /// the block to standard output, ready to append to airlock.toml).
    Add {
        name: String,
        /// agent, approver, auditor or admin.
        #[arg(long)]
        role: String,
        /// Approver groups, comma-separated (e.g. `dba`).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Databases the identity may use (globs, comma-separated).
        #[arg(long, value_delimiter = ',')]
        databases: Vec<String>,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check(&file),
        Command::Identity {
            command: IdentityCommand::Hash { iterations, mysql },
        } => identity_hash(iterations, mysql),
        Command::Identity {
            command: IdentityCommand::InboxPassword,
        } => identity_inbox_password(),
        Command::Identity {
            command: IdentityCommand::Token { mcp },
        } => identity_token(mcp),
        Command::Mcp(args) => mcp_stdio(args),
        Command::Breakglass { command } => breakglass(command),
        Command::Identity {
            command:
                IdentityCommand::Add {
                    name,
                    role,
                    groups,
                    databases,
                },
        } => identity_add(&name, &role, &groups, &databases),
        Command::Policy {
            command: PolicyCommand::Check(args),
        } => policy_check(args),
        Command::Audit { command } => match command {
            AuditCommand::Verify { dir, trust } => audit_verify(&dir, &trust, false),
            AuditCommand::VerifyExport { file, trust } => audit_verify(&file, &trust, true),
            AuditCommand::Sessions {
                dir,
                identity,
                since,
                until,
                verdict,
                outcome,
                database,
                application,
                json,
            } => audit_sessions(
                &dir,
                read_filter(identity, verdict, outcome, database, application),
                since,
                until,
                json,
            ),
            AuditCommand::Replay {
                dir,
                session,
                json,
                trust,
            } => audit_replay(&dir, &session, json, &trust),
            AuditCommand::Export {
                dir,
                since,
                until,
                format,
            } => audit_export(&dir, since, until, &format),
        },
    }
}

/// The filter of `audit sessions`, without its period.
fn read_filter(
    identity: Option<String>,
    verdict: Option<String>,
    outcome: Option<String>,
    database: Option<String>,
    application: Option<String>,
) -> crate::audit::read::SessionFilter {
    crate::audit::read::SessionFilter {
        identity,
        verdict,
        outcome,
        database,
        application,
        ..Default::default()
    }
}

fn audit_sessions(
    dir: &Path,
    filter: crate::audit::read::SessionFilter,
    since: Option<String>,
    until: Option<String>,
    json: bool,
) -> ExitCode {
    use crate::audit::read;
    let bound = |given: Option<String>, end| given.map(|g| read::time_bound(&g, end)).transpose();
    let filter = match (bound(since, false), bound(until, true)) {
        (Ok(since), Ok(until)) => read::SessionFilter {
            since,
            until,
            ..filter
        },
        (Err(e), _) => return fail(&format!("--since: {e}")),
        (_, Err(e)) => return fail(&format!("--until: {e}")),
    };
    let sessions = match read::sessions(dir, &filter) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    for s in &sessions {
        if json {
            println!("{}", serde_json::to_string(s).unwrap_or_default());
        } else {
            println!("{}", s.line());
        }
    }
    if !json {
        eprintln!("{} sessions", sessions.len());
    }
    ExitCode::SUCCESS
}

fn audit_replay(dir: &Path, session: &str, json: bool, trust: &TrustArgs) -> ExitCode {
    use crate::audit::{read, verify};
    let (keys, source) = match audit_trust(trust) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    let records = match read::session_page(dir, session, 0, usize::MAX) {
        Ok(page) => page.records,
        Err(e) => return fail(&e),
    };
    if records.is_empty() {
        return fail(&format!("no session `{session}` in `{}`", dir.display()));
    }
    if json {
        for (line, _) in &records {
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    let status = match verify::verify(dir, &keys) {
        Ok(report) => match &report.broken {
            None if report.vouched() => format!(
                "chain verified: every link, hash and signature up to record {}, from the key \
                 pinned by {}{}",
                report.signed_through,
                source.as_deref().unwrap_or("?"),
                if report.signed_through < report.last_seq {
                    "; the records since are not signed yet (the log is being written)"
                } else {
                    ""
                }
            ),
            None => format!(
                "chain consistent, but NOT fully verified: {}",
                report
                    .unchecked()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Some(b) => format!(
                "CHAIN BROKEN at {} line {}: {} — do not rely on this transcript",
                b.file.display(),
                b.line,
                b.problem
            ),
        },
        Err(e) => format!("chain not verified: {e}"),
    };
    println!(
        "session {}: {} records; {}",
        read::escape_terminal(session),
        records.len(),
        read::escape_terminal(&status)
    );
    print!("{}", read::transcript(&records));
    ExitCode::SUCCESS
}

fn audit_export(
    dir: &Path,
    since: Option<String>,
    until: Option<String>,
    format: &str,
) -> ExitCode {
    use crate::audit::read;
    let since = match since.map(|s| read::time_bound(&s, false)).transpose() {
        Ok(s) => s,
        Err(e) => return fail(&format!("--since: {e}")),
    };
    let until = match until.map(|u| read::time_bound(&u, true)).transpose() {
        Ok(u) => u,
        Err(e) => return fail(&format!("--until: {e}")),
    };
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let (exported, what) = if format == "ocsf" {
        (
            crate::audit::ocsf::export(dir, since.as_deref(), until.as_deref(), stdout),
            "OCSF events",
        )
    } else {
        (
            read::export(dir, since.as_deref(), until.as_deref(), stdout),
            "records",
        )
    };
    match exported {
        Ok(n) => {
            eprintln!("{n} {what}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// A 32-byte key written as 64 hex digits.
fn read_key_file(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    crate::hex::decode::<32>(text.trim())
        .ok_or_else(|| format!("`{}`: not a key (64 hex digits expected)", path.display()))
}

/// The keys an auditor gave, and where the trusted public key came from.
fn audit_trust(args: &TrustArgs) -> Result<(crate::audit::verify::Trust, Option<String>), String> {
    let config = args
        .config
        .as_deref()
        .map(|path| Config::load(Some(path), &[]).map_err(|e| e.to_string()))
        .transpose()?;
    let (pinned, source) = match (&args.pubkey, &config) {
        (Some(text), _) => match crate::hex::decode::<32>(text.trim()) {
            Some(k) => (Some(k), Some("--pubkey".to_string())),
            None => {
                return Err(
                    "--pubkey: not an Ed25519 public key (64 hex digits expected)".to_string(),
                )
            }
        },
        (None, Some(c)) => {
            let path = args.config.as_deref().unwrap_or(Path::new("")).display();
            if let Some(k) = c.audit.public_key {
                (Some(k), Some(format!("audit.public_key in {path}")))
            } else {
                let signing = match c.audit.signing_key {
                    Some(k) => Some(k),
                    None => match std::fs::read_to_string(&c.audit.signing_key_file) {
                        Ok(text) => {
                            Some(crate::hex::decode::<32>(text.trim()).ok_or_else(|| {
                                format!(
                                    "`{}`: not a signing key (64 hex digits expected)",
                                    c.audit.signing_key_file.display()
                                )
                            })?)
                        }
                        Err(_) => None,
                    },
                };
                match signing {
                    Some(k) => (
                        Some(
                            *ed25519_dalek::SigningKey::from_bytes(&k)
                                .verifying_key()
                                .as_bytes(),
                        ),
                        Some(format!("the signing key configured in {path}")),
                    ),
                    None => {
                        return Err(format!(
                            "{path} names no audit.public_key and its signing key `{}` cannot be \
                             read: give --pubkey",
                            c.audit.signing_key_file.display()
                        ))
                    }
                }
            }
        }
        (None, None) => (None, None),
    };
    let chain_key = match (&args.key_file, &config) {
        (Some(path), _) => Some(read_key_file(path)?),
        (None, Some(c)) => match c.audit.chain_key {
            Some(k) => Some(k),
            None if c.audit.chain_key_file.exists() => {
                Some(read_key_file(&c.audit.chain_key_file)?)
            }
            None => None,
        },
        (None, None) => None,
    };
    Ok((crate::audit::verify::Trust { pinned, chain_key }, source))
}

/// `audit verify` of a directory, or `audit verify-export` of a file.
fn audit_verify(target: &Path, args: &TrustArgs, export: bool) -> ExitCode {
    use crate::audit::{chain, verify};
    let (trust, source) = match audit_trust(args) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let verified = if export {
        verify::verify_export(target, &trust)
    } else {
        verify::verify(target, &trust)
    };
    let report = match verified {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let what = if export { "export" } else { "log" };
    println!("{what}: {}", target.display());
    if !export {
        println!(
            "  {} segments{}",
            report.segments,
            if report.open {
                ", still being written (a gateway holds the writer lock)"
            } else {
                ""
            }
        );
    }
    match report.first_seq {
        Some(first) => println!(
            "  records: {} (seq {first} to {}), from {} to {}",
            report.records, report.last_seq, report.first_ts, report.last_ts
        ),
        None => println!("  records: none"),
    }
    let keyed = if report.keyed_records == 0 {
        String::new()
    } else if report.keyed_checked {
        format!(
            "; {} in format 1, their keyed hashes checked with the chain key",
            report.keyed_records
        )
    } else {
        format!(
            "; {} in format 1, their keyed hashes NOT checked",
            report.keyed_records
        )
    };
    println!(
        "  hashes: every record's{keyed}; links and sequence unbroken{}",
        if export {
            " from the export's first record"
        } else {
            " from the first record"
        }
    );
    println!(
        "  checkpoints: {} signature{} verified, {} key rotation{}, {} repair{}",
        report.checkpoints,
        if report.checkpoints == 1 { "" } else { "s" },
        report.rotations,
        if report.rotations == 1 { "" } else { "s" },
        report.repairs,
        if report.repairs == 1 { "" } else { "s" },
    );
    for (i, k) in report.keys.iter().enumerate() {
        let origin = match (i, k.introduced_at, &source) {
            (0, None, Some(source)) => format!("pinned by {source}"),
            (0, None, None) => "named by the log itself (not pinned)".to_string(),
            (_, Some(seq), _) => format!("introduced by the rotation at seq {seq}"),
            _ => String::new(),
        };
        println!(
            "  key {}: {origin}; signed {} checkpoints",
            chain::hex(&k.key),
            k.checkpoints
        );
    }
    println!(
        "  sessions: {} transcript roots matched signed checkpoints; {} sessions proved complete",
        report.session_roots, report.sessions_proved
    );
    if report.signed_through > 0 {
        println!(
            "  signatures cover every record up to seq {}",
            report.signed_through
        );
    }
    if let Some(b) = &report.broken {
        let seq = b.seq.map(|s| format!(" (seq {s})")).unwrap_or_default();
        println!(
            "BROKEN at {} line {}{seq}: {}",
            b.file.display(),
            b.line,
            b.problem
        );
        return ExitCode::from(b.problem.exit_code());
    }
    let mut failing = false;
    for limit in report.unchecked() {
        let fatal = match limit {
            verify::Unchecked::NoPinnedKey => !args.self_check,
            verify::Unchecked::KeyedRecords(_) => true,
            verify::Unchecked::UnsignedTail { open, .. } => !open,
        };
        failing |= fatal;
        println!("NOT CHECKED: {limit}");
    }
    if failing {
        println!("NOT VOUCHED FOR: intact as far as checked, but not everything asked could be");
        ExitCode::from(verify::NOT_VOUCHED)
    } else if report.pinned {
        println!("OK");
        ExitCode::SUCCESS
    } else {
        println!("OK (self-check only: consistent with itself, not vouched for by a trusted key)");
        ExitCode::SUCCESS
    }
}

fn overrides(args: &ServeArgs) -> Result<Vec<Override>, ConfigError> {
    let mut all = env_overrides(std::env::vars())?;
    let flags = [
        ("postgres.listen", &args.listen, "--listen"),
        ("postgres.upstream", &args.upstream, "--upstream"),
        ("state_dir", &args.state_dir, "--state-dir"),
        ("log.format", &args.log_format, "--log-format"),
    ];
    for (key, value, flag) in flags {
        if let Some(value) = value {
            all.push(Override {
                key: key.into(),
                value: value.clone(),
                source: format!("flag {flag}"),
            });
        }
    }
    Ok(all)
}

/// What would leave a configured gateway unable to do its job although
/// it starts: a hold group nobody can approve, approvers who cannot sign
/// in, no agent at all. Empty for the zero-identity development setup.
fn setup_warnings(
    identities: &[Identity],
    policy: &crate::policy::Policy,
    approvals: bool,
    sso: Option<&crate::inbox::oidc::OidcConfig>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if identities.is_empty() {
        return warnings;
    }
    // Single sign-on signs in the identities it names, and its map rules
    // make approvers of their own.
    let by_sso = |i: &Identity| {
        sso.is_some_and(|o| {
            o.subjects
                .values()
                .chain(o.emails.values())
                .any(|n| n == &i.name)
        })
    };
    if !identities.iter().any(|i| i.role == Role::Agent) {
        warnings.push("no identity has role \"agent\": no agent can log in".to_string());
    }
    let can_sign_in =
        |i: &Identity| i.inbox_password_hash.is_some() || i.api_token_hash.is_some() || by_sso(i);
    for i in identities {
        if matches!(i.role, Role::Approver | Role::Admin | Role::Auditor) && !can_sign_in(i) {
            warnings.push(format!(
                "identity \"{}\" ({}) cannot sign in to the inbox: give it inbox_password_hash, api_token_hash or (with [inbox.oidc]) oidc_subject or oidc_email",
                i.name, i.role
            ));
        }
    }
    if approvals {
        let mut groups: Vec<&str> = policy
            .rules()
            .iter()
            .filter_map(|r| match &r.action {
                crate::policy::Action::Hold(spec) => Some(spec.group.as_str()),
                _ => None,
            })
            .collect();
        groups.sort();
        groups.dedup();
        for group in groups {
            let deciders = identities.iter().filter(|i| {
                matches!(i.role, Role::Approver | Role::Admin)
                    && i.groups.iter().any(|g| g == group)
                    && can_sign_in(i)
            });
            let mapped = sso.is_some_and(|o| {
                o.map
                    .iter()
                    .any(|r| r.role == Role::Approver && r.groups.iter().any(|g| g == group))
            });
            if deciders.count() == 0 && !mapped {
                warnings.push(format!(
                    "hold group \"{group}\" has nobody who can approve (an approver or admin in the group who can sign in): its holds can only expire"
                ));
            }
        }
    }
    warnings
}

fn config_check(file: &Path) -> ExitCode {
    let overrides = match env_overrides(std::env::vars()) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    match Config::load(Some(file), &overrides) {
        Ok(c) => {
            println!(
                "{}: OK — postgres {} → {}/{}, {} identities, tls {}",
                file.display(),
                c.postgres.listen,
                c.postgres.upstream.address(),
                c.postgres.upstream.database,
                c.identities.len(),
                if c.tls.is_some() { "on" } else { "off" }
            );
            match load_policy(&c.policies) {
                Ok(policy) => {
                    for w in setup_warnings(
                        &c.identities,
                        &policy,
                        c.approval.enabled,
                        c.inbox.oidc.as_ref(),
                    ) {
                        println!("warning: {w}");
                    }
                }
                Err(e) => println!("warning: {e}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn policy_check(args: PolicyCheckArgs) -> ExitCode {
    use crate::policy::{explain, Action, Request};
    use crate::sql::{classify_with, Dialect};
    let config = match env_overrides(std::env::vars())
        .and_then(|o| Config::load(args.config.as_deref(), &o))
    {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let dir = args
        .policies
        .clone()
        .unwrap_or_else(|| config.policies.clone());
    let policy = match load_policy(&dir) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let role = match (
        &args.role,
        config.identities.iter().find(|i| i.name == args.identity),
    ) {
        (Some(r), _) => match r.as_str() {
            "approver" => Role::Approver,
            "auditor" => Role::Auditor,
            "admin" => Role::Admin,
            _ => Role::Agent,
        },
        (None, Some(identity)) => identity.role,
        (None, None) => Role::Agent,
    };
    let dialect = if args.dialect == "mysql" {
        Dialect::Mysql
    } else {
        Dialect::Postgres
    };
    let queries = if args.sql.is_empty() {
        let mut text = String::new();
        if std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).is_err() {
            return fail(&"cannot read the query from standard input");
        }
        vec![text]
    } else {
        args.sql.clone()
    };
    let mut worst = 0u8;
    for sql in &queries {
        let classification = classify_with(sql, dialect, policy.user_functions());
        // As the gate does: a switch to an encoding Airlock cannot read is
        // refused whatever the policy says.
        let decision = match crate::sql::encoding::encoding_change(sql.as_bytes(), dialect) {
            Some(why) => {
                crate::policy::Decision::refused_by_airlock(crate::gate::ENCODING_RULE, why)
            }
            None => policy.evaluate(&Request {
                identity: &args.identity,
                role,
                database: &args.database,
                classification: &classification,
                // Not known here: a `transforms = "masked-columns"` rule is
                // shown as it would decide once the column is flagged.
                masked_columns: crate::policy::MaskedColumns::Unknown,
            }),
        };
        worst = worst.max(match decision.action {
            Action::Allow => 0,
            Action::Hold(_) => 3,
            Action::Deny { .. } => 4,
        });
        println!("{}", explain(&classification, &decision, args.json));
    }
    ExitCode::from(worst)
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// A password typed (or piped) on standard input, without its newline.
fn read_password() -> Result<String, ExitCode> {
    eprint!("password: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return Err(fail(&"cannot read the password from standard input"));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// A new password, asked twice: hidden at a terminal, two lines when
/// piped.
fn read_new_password() -> Result<String, String> {
    use std::io::IsTerminal;
    let ask = |prompt: &str| -> Result<String, String> {
        if std::io::stdin().is_terminal() {
            rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))
        } else {
            eprint!("{prompt}");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the password: {e}"))?;
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        }
    };
    let password = ask("password: ")?;
    if password.len() < 8 {
        return Err("the password must be at least 8 characters".into());
    }
    if ask("again: ")? != password {
        return Err("the two passwords differ".into());
    }
    Ok(password)
}

fn identity_add(name: &str, role: &str, groups: &[String], databases: &[String]) -> ExitCode {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let role = match role {
        "agent" => Role::Agent,
        "approver" => Role::Approver,
        "auditor" => Role::Auditor,
        "admin" => Role::Admin,
        other => {
            return fail(&format!(
                "unknown role `{other}` (expected agent, approver, auditor or admin)"
            ))
        }
    };
    if name.trim().is_empty() {
        return fail(&"the name is empty");
    }
    if role == Role::Agent && !groups.is_empty() {
        return fail(&"agents belong to no approver group");
    }
    let password = match read_new_password() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let mut block = format!("[[identity]]\nname = {}\nrole = \"{role}\"\n", quote(name));
    if !groups.is_empty() {
        block.push_str(&format!("groups = {}\n", list(groups)));
    }
    if !databases.is_empty() {
        block.push_str(&format!("databases = {}\n", list(databases)));
    }
    if matches!(role, Role::Agent | Role::Admin) {
        block.push_str(&format!(
            "scram_verifier = \"{}\"\nmysql_native_hash = \"{}\"\n",
            ScramVerifier::generate(&password, DEFAULT_SCRAM_ITERATIONS),
            crate::proxy::mysql::auth::NativeHash::from_password(password.as_bytes())
        ));
    }
    if role != Role::Agent {
        let secret: [u8; 32] = rand::random();
        let token = format!("alk_{}", crate::hex::encode(&secret));
        eprintln!("API token for {name} (shown once; keep it secret): {token}");
        block.push_str(&format!(
            "inbox_password_hash = \"{}\"\napi_token_hash = \"{}\"\n",
            crate::identity::inbox_password_hash(&password),
            crate::hex::encode(blake3::hash(token.as_bytes()).as_bytes())
        ));
    }
    print!("{block}");
    ExitCode::SUCCESS
}

fn identity_hash(iterations: u32, mysql: bool) -> ExitCode {
    if iterations == 0 {
        return fail(&"--iterations must be at least 1");
    }
    let password = match read_password() {
        Ok(p) => p,
        Err(code) => return code,
    };
    if password.is_empty() {
        return fail(&"the password is empty");
    }
    if mysql {
        println!(
            "{}",
            crate::proxy::mysql::auth::NativeHash::from_password(password.as_bytes())
        );
    } else {
        println!("{}", ScramVerifier::generate(&password, iterations));
    }
    ExitCode::SUCCESS
}

fn identity_inbox_password() -> ExitCode {
    let password = match read_password() {
        Ok(p) => p,
        Err(code) => return code,
    };
    if password.len() < 8 {
        return fail(&"the password must be at least 8 characters");
    }
    println!(
        "inbox_password_hash = \"{}\"",
        crate::identity::inbox_password_hash(&password)
    );
    ExitCode::SUCCESS
}

fn identity_token(mcp: bool) -> ExitCode {
    let secret: [u8; 32] = rand::random();
    // A different prefix, so that a token pasted in the wrong place is
    // recognised for what it is.
    let (prefix, key) = match mcp {
        true => ("amcp_", "mcp_token_hash"),
        false => ("alk_", "api_token_hash"),
    };
    let token = format!("{prefix}{}", crate::hex::encode(&secret));
    println!("token: {token}");
    println!(
        "{key} = \"{}\"",
        crate::hex::encode(blake3::hash(token.as_bytes()).as_bytes())
    );
    ExitCode::SUCCESS
}

fn init_logging(config: &Config) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    serve_mode(args, None)
}

/// `airlock mcp --stdio`: the gateway, with standard output reserved for
/// MCP (everything else it says goes to standard error).
fn mcp_stdio(args: McpArgs) -> ExitCode {
    let _ = args.stdio;
    let token = match std::env::var("AIRLOCK_MCP_TOKEN") {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => return fail(&"AIRLOCK_MCP_TOKEN must hold the identity's MCP token (see `airlock identity token --mcp`)"),
    };
    serve_mode(args.serve, Some(token))
}

fn serve_mode(args: ServeArgs, stdio_token: Option<String>) -> ExitCode {
    let config = match overrides(&args).and_then(|o| Config::load(args.config.as_deref(), &o)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    init_logging(&config);
    // One worker is a single-threaded runtime: the multi-thread scheduler
    // with one worker still pays for work stealing and reads the clock
    // around every task it polls (to tune its queue), per message here.
    let mut builder = match config.server.workers {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    // SIGHUP reads the file (and the same overrides) again for identities.
    let reload = move || {
        overrides(&args)
            .and_then(|o| Config::load(args.config.as_deref(), &o))
            .map_err(|e| e.to_string())
    };
    match runtime.block_on(serve_with(config, Arc::new(reload), stdio_token)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The identity a zero-configuration gateway lets agents log in with. Its
/// password is kept under the state directory (mode 0600) so that restarts
/// do not change it.
/// This gateway's id, kept in `<state_dir>/gateway-id` (created on first
/// start): what its hold requests carry, so that after a restart it knows
/// which pending requests were its own.
fn gateway_id(state_dir: &Path) -> Result<String, String> {
    let path = state_dir.join("gateway-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    }
    std::fs::create_dir_all(state_dir)
        .map_err(|e| format!("cannot create state_dir `{}`: {e}", state_dir.display()))?;
    let id = format!("g-{}", crate::hex::encode(&rand::random::<[u8; 8]>()));
    std::fs::write(&path, &id).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(id)
}

/// A development password kept in `<state_dir>/<file>` (mode 0600),
/// created on first start.
fn development_password(state_dir: &Path, file: &str) -> Result<String, String> {
    let path = state_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(p) if !p.trim().is_empty() => Ok(p.trim().to_string()),
        _ => {
            use rand::Rng;
            let password: String = rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect();
            std::fs::create_dir_all(state_dir)
                .map_err(|e| format!("cannot create state_dir `{}`: {e}", state_dir.display()))?;
            write_private(&path, &password)
                .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
            Ok(password)
        }
    }
}

/// With no identity configured, the development approver `dba` (group
/// `dba`, the default policy's hold group): a newcomer's first held
/// statement can be approved in the inbox. It has no database login.
fn development_approver(state_dir: &Path) -> Result<(Identity, String), String> {
    let password = development_password(state_dir, "dev-approver")?;
    let unusable: [u8; 32] = rand::random();
    let identity = Identity {
        name: "dba".into(),
        role: Role::Approver,
        groups: vec![crate::policy::DEFAULT_GROUP.to_string()],
        verifier: ScramVerifier::generate(&crate::hex::encode(&unusable), DEFAULT_SCRAM_ITERATIONS),
        api_token_hash: None,
        mcp_token_hash: None,
        mcp_oauth_subject: None,
        mcp_limits: Default::default(),
        inbox_password_hash: Some(crate::identity::inbox_password_hash(&password)),
        mysql: crate::identity::MysqlCredentials::from_password(&crate::hex::encode(&unusable)),
        databases: Some(Vec::new()),
        confinement: Default::default(),
        database_login: false,
        slack_user: None,
    };
    Ok((identity, password))
}

fn development_identity(state_dir: &Path) -> Result<(Identity, String), String> {
    let password = development_password(state_dir, "dev-identity")?;
    let identity = Identity {
        name: "agent".into(),
        role: Role::Agent,
        groups: Vec::new(),
        verifier: ScramVerifier::generate(&password, DEFAULT_SCRAM_ITERATIONS),
        api_token_hash: None,
        mcp_token_hash: None,
        mcp_oauth_subject: None,
        mcp_limits: Default::default(),
        inbox_password_hash: None,
        mysql: crate::identity::MysqlCredentials::from_password(&password),
        databases: None,
        confinement: Default::default(),
        database_login: true,
        slack_user: None,
    };
    Ok((identity, password))
}

/// A 32-byte secret kept as hex in `path` (mode 0600), created on first
/// start. Such keys must outlive restarts: a new masking key gives every
/// value a new token, a new chain key starts a log no one can verify.
fn state_key(path: &Path, what: &str) -> Result<[u8; 32], String> {
    match std::fs::read_to_string(path) {
        Ok(text) => crate::hex::decode::<32>(text.trim())
            .ok_or_else(|| format!("`{}`: not {what} (64 hex digits expected)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
            }
            write_private(path, &crate::hex::encode(&key))
                .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
    }
}

/// Opens the chained audit log as `[audit]` says; returns it with the
/// checkpoint public key (hex) auditors verify with, and the chain key of
/// format-1 records when there is one.
fn open_audit(
    config: &crate::config::AuditConfig,
) -> Result<(Audit, String, Option<[u8; 32]>), String> {
    // Only logs begun before format 2 have a chain key; none is made now.
    let chain_key = match config.chain_key {
        Some(k) => Some(k),
        None if config.chain_key_file.exists() => {
            Some(state_key(&config.chain_key_file, "an audit chain key")?)
        }
        None => None,
    };
    let signing_key = match config.signing_key {
        Some(k) => k,
        None => state_key(&config.signing_key_file, "an audit signing key")?,
    };
    let previous_signing_key = match &config.previous_signing_key_file {
        Some(path) => Some(read_key_file(path).map_err(|e| format!("audit: {e}"))?),
        None => None,
    };
    let public = crate::hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&signing_key)
            .verifying_key()
            .as_bytes(),
    );
    let log = audit::log::AuditLog::open(
        audit::log::LogSettings {
            dir: config.dir.clone(),
            chain_key,
            signing_key,
            previous_signing_key,
            fsync: config.fsync,
            window: Duration::from_millis(config.batch_window_ms),
            segment_bytes: config.segment_bytes,
            checkpoint_every: config.checkpoint_every,
            checkpoint_secs: config.checkpoint_secs,
            backlog_bytes: config.backlog_bytes,
        },
        Vec::new(),
    )
    .map_err(|e| format!("audit: {e}"))?;
    Ok((Audit::chained(log, config.capture_rows), public, chain_key))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

/// Reads the configuration again, as at start.
type Reload = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

async fn serve_with(
    config: Config,
    reload: Reload,
    stdio_token: Option<String>,
) -> Result<(), String> {
    // In stdio mode standard output carries MCP: the banner goes to
    // standard error.
    let stdio = stdio_token.is_some();
    if let Some(token) = &stdio_token {
        // Refused before anything starts: a stdio gateway serves one identity.
        let known = Identities::new(config.identities.clone());
        if known
            .by_mcp_token(token)
            .filter(|i| i.database_login)
            .is_none()
        {
            return Err(crate::mcp::McpError::BadToken.to_string());
        }
    }
    macro_rules! say {
        ($($arg:tt)*) => {
            if stdio { eprintln!($($arg)*) } else { println!($($arg)*) }
        };
    }
    for name in &config.plaintext_identities {
        tracing::warn!(identity = %name, "plaintext password in the config: use scram_verifier (airlock identity hash) outside development");
    }
    let mut identities = config.identities.clone();
    let mut generated = None;
    if identities.is_empty() {
        let (identity, password) = development_identity(&config.state_dir)?;
        identities.push(identity);
        let (approver, approver_password) = development_approver(&config.state_dir)?;
        identities.push(approver);
        generated = Some((password, approver_password));
    }

    let tls_acceptor = match &config.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            tls::server_config(&t.cert, &t.key).map_err(|e| format!("tls: {e}"))?,
        )),
        None => None,
    };
    let upstream_tls = tls::upstream_config(
        config.postgres.upstream_tls,
        config.postgres.upstream_ca.as_deref(),
    )
    .map_err(|e| format!("postgres.upstream_ca: {e}"))?;
    let settings = Arc::new(upstream::UpstreamSettings {
        url: config.postgres.upstream.clone(),
        tls: upstream_tls,
        connect_timeout: Duration::from_secs(config.postgres.connect_timeout_secs),
    });
    let pool = upstream::Pool::with_idle_timeout(
        settings,
        config.postgres.pool_size,
        Duration::from_secs(config.postgres.acquire_timeout_secs),
        Duration::from_secs(config.postgres.idle_timeout_secs),
    );
    // In the background: an upstream that is not up yet must not delay
    // the start, and the warning matters whenever it can be given.
    {
        let pool = pool.clone();
        let key = upstream::PoolKey {
            database: config.postgres.upstream.database.clone(),
            params: Vec::new(),
        };
        let user = config.postgres.upstream.user.clone();
        tokio::spawn(async move {
            if let Ok(true) = pool.service_login_is_superuser(&key).await {
                crate::proxy::warn_superuser_login("postgres", &user);
            }
        });
    }
    let policy = load_policy(&config.policies)?;
    for w in setup_warnings(
        &config.identities,
        &policy,
        config.approval.enabled,
        config.inbox.oidc.as_ref(),
    ) {
        tracing::warn!("{w}");
    }
    let mask_key = state_key(&config.state_dir.join("mask-key"), "a masking key")?;
    let (audit, public_key, audit_chain_key) = open_audit(&config.audit)?;
    let masked_columns_file = config.state_dir.join("masked-columns");
    let masked_columns = crate::mask::MaskedColumns::open(&masked_columns_file).map_err(|e| {
        format!(
            "cannot open the masked-column list `{}`: {e}",
            masked_columns_file.display()
        )
    })?;
    let limits = crate::limits::Limits::new(config.limits.clone());
    // Announces windows; the windows themselves are in the approval store.
    let break_glass = Arc::new(crate::approval::breakglass::BreakGlass::default());
    let mut gate = Gate::with_mask_key(Arc::new(audit), policy, mask_key)
        .with_masked_columns(masked_columns)
        .with_limits(limits.clone())
        .with_break_glass(break_glass.clone());
    crate::metrics::get().set_identities(identities.iter().map(|i| i.name.clone()));
    let identities = Arc::new(Identities::new(identities));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    let mut inbox_line = None;
    let mut mcp_sso = None;
    if config.approval.enabled {
        let store_key = match config.approval.store_key {
            Some(k) => k,
            None => state_key(&config.approval.store_key_file, "an approval store key")?,
        };
        let approvals = Approvals::open(&config.approval.store, StoreKey::new(store_key))
            .await
            .map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind(config.inbox.listen)
            .await
            .map_err(|e| {
                format!(
                    "inbox.listen: cannot listen on {}: {e}",
                    config.inbox.listen
                )
            })?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let url = config
            .inbox
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let http = crate::inbox::notify::http_client()?;
        let slack = Arc::new(crate::inbox::slack::Slack::new(
            config.slack.clone(),
            http.clone(),
        ));
        if !config.notify.is_empty() {
            let notifier = Arc::new(crate::inbox::notify::Notifier::new(
                config.notify.clone(),
                http,
                slack.clone(),
            ));
            tokio::spawn(
                notifier
                    .clone()
                    .run_break_glass(break_glass.subscribe(), url.clone()),
            );
            tokio::spawn(notifier.run(approvals.clone(), url.clone()));
        }
        let gateway_id = gateway_id(&config.state_dir)?;
        match approvals.withdraw_orphans(&gateway_id).await {
            Ok(orphans) => {
                for request in &orphans {
                    gate.audit().record(crate::audit::AuditEvent::Decision {
                        session: &crate::gate::SessionId(request.session.clone()),
                        request,
                    });
                }
                if !orphans.is_empty() {
                    tracing::info!(
                        count = orphans.len(),
                        "withdrew the requests a previous run left pending"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot withdraw the requests a previous run left pending")
            }
        }
        let sso = match &config.inbox.oidc {
            None => None,
            Some(oidc) => Some(Arc::new(
                crate::inbox::oidc::Sso::new(oidc.clone(), &url)
                    .map_err(|e| format!("inbox.oidc: {e}"))?,
            )),
        };
        mcp_sso = sso.clone();
        gate = gate
            .with_gateway_id(gateway_id)
            .with_approvals(approvals.clone(), &url);
        tokio::spawn(crate::inbox::serve(
            listener,
            crate::inbox::Inbox {
                approvals,
                identities: identities.clone(),
                web: Default::default(),
                throttle: Arc::new(LoginThrottle::new(
                    config.auth.max_failures,
                    Duration::from_secs(config.auth.failure_window_secs),
                    Duration::from_secs(config.auth.lockout_secs),
                )),
                secure_cookies: url.starts_with("https://"),
                audit_dir: Some(config.audit.dir.clone()),
                audit_trust: crate::audit::verify::Trust {
                    pinned: Some(config.audit.public_key.unwrap_or_else(|| {
                        crate::hex::decode::<32>(&public_key).unwrap_or_default()
                    })),
                    chain_key: audit_chain_key,
                },
                audit_verifier: Default::default(),
                audit_sessions: Default::default(),
                sso,
                audit: Some(gate.audit().clone()),
                slack: Some(slack),
                break_glass: break_glass.clone(),
            },
            stop_rx.clone(),
        ));
        inbox_line = Some(format!("inbox listening on {bound} ({url})"));
    }
    let gate = Arc::new(gate);
    record_policy(&gate, &config.policies);
    reload_policy_on_sighup(gate.clone(), config.policies.clone());
    reload_identities_on_sighup(
        identities.clone(),
        reload,
        gate.clone(),
        config.approval.enabled,
    );
    // Agents reaching the store's table could write their own approvals.
    let reserved = config.approval.store_database_on(
        &config.postgres.upstream.host,
        config.postgres.upstream.port,
    );
    if let Some(db) = &reserved {
        if *db == config.postgres.upstream.database {
            tracing::warn!(database = %db, "the shared approval store is in the upstream's default database: agents that name no database will be refused; put the store in a database of its own");
        }
    }
    let mcp = Arc::new(crate::mcp::Mcp {
        gate: gate.clone(),
        pool: pool.clone(),
        identities: identities.clone(),
        settings: config.mcp.clone(),
        default_database: config.postgres.upstream.database.clone(),
        reserved_databases: reserved.iter().cloned().collect(),
        mysql: match config.mysql.enabled {
            true => Some(mysql_upstream(&config)?),
            false => None,
        },
        mysql_default_database: config.mysql.upstream.database.clone(),
        sso: mcp_sso,
    });
    let shared = Arc::new(PgShared {
        login: LoginSettings {
            identities: identities.clone(),
            tls: tls_acceptor.clone(),
            require_tls: config.tls.as_ref().is_some_and(|t| t.require),
        },
        gate: gate.clone(),
        pool,
        cancels: Arc::new(CancelMap::default()),
        throttle: LoginThrottle::new(
            config.auth.max_failures,
            Duration::from_secs(config.auth.failure_window_secs),
            Duration::from_secs(config.auth.lockout_secs),
        ),
        limits: limits.clone(),
        acquire_timeout: Duration::from_secs(config.postgres.acquire_timeout_secs),
        max_message_bytes: config.postgres.max_message_bytes,
        startup_timeout: Duration::from_secs(config.server.startup_timeout_secs),
        shutdown_timeout: Duration::from_secs(config.server.shutdown_timeout_secs),
        max_connections: config.server.max_connections,
        default_database: config.postgres.upstream.database.clone(),
        reserved_databases: reserved.into_iter().collect(),
    });
    let mysql = match config.mysql.enabled {
        true => Some(mysql_listener(&config, &identities, &gate, &limits, tls_acceptor).await?),
        false => None,
    };
    let pool = shared.pool.clone();
    let listener = PgListener::bind(config.postgres.listen, shared)
        .await
        .map_err(|e| {
            format!(
                "postgres.listen: cannot listen on {}: {e}",
                config.postgres.listen
            )
        })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut metrics_line = None;
    if let Some(metrics_listener) = metrics_listener {
        let bound = metrics_listener.local_addr().map_err(|e| e.to_string())?;
        let mut upstreams = vec![("postgres", config.postgres.upstream.address())];
        if config.mysql.enabled {
            upstreams.push(("mysql", config.mysql.upstream.address()));
        }
        let probes = crate::metrics::Probes {
            audit: gate.audit().clone(),
            upstreams,
            pool: Some(pool),
            approvals: gate.approvals().cloned(),
        };
        tokio::spawn(crate::metrics::serve(
            metrics_listener,
            probes,
            stop_rx.clone(),
        ));
        metrics_line = Some(format!(
            "metrics on http://{bound}/metrics (health: /healthz, readiness: /readyz)"
        ));
    }
    let mcp_listener = match config.mcp.enabled && !stdio {
        true => Some(
            tokio::net::TcpListener::bind(config.mcp.listen)
                .await
                .map_err(|e| {
                    crate::mcp::McpError::Listen {
                        addr: config.mcp.listen,
                        source: e,
                    }
                    .to_string()
                })?,
        ),
        false => None,
    };

    // The "listening" line comes last: scripts wait for it as the sign
    // that the gateway is ready.
    let up = &config.postgres.upstream;
    say!("airlock {}", env!("CARGO_PKG_VERSION"));
    if let Some((password, approver_password)) = &generated {
        say!("no [[identity]] configured: agents log in as the development identity `agent`");
        say!(
            "  password is in {}",
            config.state_dir.join("dev-identity").display()
        );
        say!(
            "  psql \"postgresql://agent:{password}@{addr}/{}\"",
            up.database
        );
        say!(
            "  held statements are approved in the inbox by the development approver `dba` (group dba), password {approver_password} (in {})",
            config.state_dir.join("dev-approver").display()
        );
    }
    match inbox_line {
        Some(line) => say!("{line}"),
        None => say!("approvals off ([approval] enabled = false): held statements are refused"),
    }
    if let Some(line) = &metrics_line {
        say!("{line}");
    }
    say!(
        "audit log in {} (fsync {}), checkpoints signed by {public_key}",
        config.audit.dir.display(),
        match config.audit.fsync {
            audit::log::Fsync::Always => "always",
            audit::log::Fsync::Batch => "batch",
        }
    );
    if let Some(my) = &mysql {
        let up = &config.mysql.upstream;
        say!(
            "mysql listening on {} -> upstream {}{} (client TLS: {}, upstream TLS: {})",
            my.local_addr().map_err(|e| e.to_string())?,
            up.address(),
            if up.database.is_empty() {
                String::new()
            } else {
                format!(" database {}", up.database)
            },
            match &config.tls {
                Some(t) if t.require => "required",
                Some(_) => "optional",
                None => "off",
            },
            config.mysql.upstream_tls.name()
        );
    }
    if let Some(l) = &mcp_listener {
        let bound = l.local_addr().map_err(|e| e.to_string())?;
        say!(
            "mcp listening on {bound} ({}/mcp)",
            crate::mcp::base_url(&config.mcp, bound)
        );
    }
    say!(
        "postgres listening on {addr} -> upstream {} database {} (client TLS: {}, upstream TLS: {})",
        up.address(),
        up.database,
        match &config.tls {
            Some(t) if t.require => "required",
            Some(_) => "optional",
            None => "off",
        },
        config.postgres.upstream_tls.name()
    );
    let _ = std::io::stdout().flush();

    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            let _ = stop_tx.send(true);
        });
    }
    let mysql_served = mysql.map(|my| tokio::spawn(my.serve(stop_rx.clone())));
    if let Some(l) = mcp_listener {
        let (mcp, stop) = (mcp.clone(), stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::mcp::serve_http(l, mcp, stop).await {
                tracing::error!(error = %e, "the MCP endpoint stopped");
            }
        });
    }
    if let Some(token) = stdio_token {
        // The gateway lives as long as its MCP client: when the client
        // closes standard input, everything stops.
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::mcp::serve_stdio(mcp, &token).await {
                tracing::error!(error = %e, "MCP over stdio ended");
            }
            let _ = stop_tx.send(true);
        });
    }
    listener.serve(stop_rx).await;
    if let Some(served) = mysql_served {
        let _ = served.await;
    }
    gate.audit().close();
    tracing::info!("stopped");
    Ok(())
}

/// How to reach and log in to the MySQL/MariaDB upstream.
fn mysql_upstream(config: &Config) -> Result<MysqlUpstream, String> {
    let my = &config.mysql;
    let upstream_tls = tls::upstream_config(my.upstream_tls, my.upstream_ca.as_deref())
        .map_err(|e| format!("mysql.upstream_ca: {e}"))?;
    let mut upstream = MysqlUpstream::new(my.upstream.address(), my.upstream.user.clone());
    upstream.password = my.upstream.password.clone().unwrap_or_default();
    upstream.database = Some(my.upstream.database.clone()).filter(|d| !d.is_empty());
    upstream.tls = upstream_tls;
    upstream.connect_timeout = Duration::from_secs(my.connect_timeout_secs);
    Ok(upstream)
}

/// The MySQL listener, bound, with the upstream probed for its version.
async fn mysql_listener(
    config: &Config,
    identities: &Arc<Identities>,
    gate: &Arc<Gate>,
    limits: &Arc<crate::limits::Limits>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<MysqlListener, String> {
    let my = &config.mysql;
    let upstream = mysql_upstream(config)?;
    let shared = Arc::new(MysqlShared {
        login: MysqlLogin {
            identities: identities.clone(),
            tls,
            require_tls: config.tls.as_ref().is_some_and(|t| t.require),
            sha2_cache: Default::default(),
        },
        gate: gate.clone(),
        upstream,
        throttle: LoginThrottle::new(
            config.auth.max_failures,
            Duration::from_secs(config.auth.failure_window_secs),
            Duration::from_secs(config.auth.lockout_secs),
        ),
        limits: limits.clone(),
        max_packet_bytes: my.max_packet_bytes,
        startup_timeout: Duration::from_secs(config.server.startup_timeout_secs),
        shutdown_timeout: Duration::from_secs(config.server.shutdown_timeout_secs),
        max_connections: config.server.max_connections,
        kills: Default::default(),
        server: Default::default(),
    });
    let listener = MysqlListener::bind(my.listen, shared)
        .await
        .map_err(|e| format!("mysql.listen: cannot listen on {}: {e}", my.listen))?;
    listener.probe_upstream().await;
    Ok(listener)
}

/// The policy from the configured folder, or the built-in default when the
/// folder does not exist. An invalid policy stops the gateway from starting.
fn load_policy(dir: &Path) -> Result<Policy, String> {
    if !dir.exists() {
        tracing::info!(folder = %dir.display(), "no policy folder: using the built-in default policy");
        return Ok(Policy::builtin_default());
    }
    let policy = Policy::load_dir(dir).map_err(|e| e.to_string())?;
    tracing::info!(folder = %dir.display(), rules = policy.rules().len(), digest = policy.digest(), "policy loaded");
    Ok(policy)
}

/// Records the policy in force (its digest) in the audit log.
fn record_policy(gate: &Gate, dir: &Path) {
    let policy = gate.policy();
    let source = if dir.exists() {
        dir.display().to_string()
    } else {
        "built-in default".to_string()
    };
    gate.audit().record(AuditEvent::PolicyLoaded {
        digest: policy.digest(),
        rules: policy.rules().len(),
        source: &source,
    });
}

/// Reloads the policy on SIGHUP; an invalid new policy leaves the old one in force.
fn reload_policy_on_sighup(gate: Arc<Gate>, dir: PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match load_policy(&dir) {
                Ok(policy) => {
                    gate.replace_policy(policy);
                    record_policy(&gate, &dir);
                    tracing::info!("policy reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "policy reload failed; the previous policy stays in force")
                }
            }
        }
    });
}

/// On SIGHUP, reads the configuration file again and puts its identities
/// in force: new logins, inbox pages, API calls and Slack clicks see them
/// at once; open sessions keep the identity they logged in with, and held
/// statements keep waiting. A file that does not load, or that names no
/// identity, changes nothing: the error (file, key, problem) is logged and
/// the identities in force stay. Other settings take a restart.
fn reload_identities_on_sighup(
    identities: Arc<Identities>,
    reload: Reload,
    gate: Arc<Gate>,
    approvals: bool,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // Reading files is blocking work: off the runtime's thread.
            let read = reload.clone();
            let loaded = tokio::task::spawn_blocking(move || read())
                .await
                .unwrap_or_else(|e| Err(format!("the reload failed: {e}")));
            let config = match loaded {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "identity reload failed; the identities in force stay");
                    continue;
                }
            };
            if config.identities.is_empty() {
                tracing::error!("identity reload refused: the file names no [[identity]]; the identities in force stay");
                continue;
            }
            for name in &config.plaintext_identities {
                tracing::warn!(identity = %name, "plaintext password in the config: use scram_verifier (airlock identity hash) outside development");
            }
            for w in setup_warnings(
                &config.identities,
                &gate.policy(),
                approvals,
                config.inbox.oidc.as_ref(),
            ) {
                tracing::warn!("{w}");
            }
            let before: std::collections::BTreeSet<String> =
                identities.all().iter().map(|i| i.name.clone()).collect();
            let after: std::collections::BTreeSet<String> =
                config.identities.iter().map(|i| i.name.clone()).collect();
            let added: Vec<&String> = after.difference(&before).collect();
            let removed: Vec<&String> = before.difference(&after).collect();
            identities.replace(config.identities);
            tracing::info!(count = after.len(), ?added, ?removed, "identities reloaded");
        }
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
