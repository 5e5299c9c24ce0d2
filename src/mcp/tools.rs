//! The MCP tools. Every one that touches the database goes through
//! [`Tools::run_statement`]: a session of its own in the audit log, the
//! gate's check, the hold path, the capped and masked run. The catalog
//! tools (`list_tables`, …) are fixed statements that take that same path,
//! so they are classified, audited and limited to the identity's databases
//! like any other.

use super::auth::Agent;
use super::Mcp;
use crate::approval::{HoldRequest, State};
use crate::audit::AuditEvent;
use crate::gate::{Deferred, Door, Origin, Protocol, SessionId, SessionInfo, SessionStatements};
use crate::identity::Identity;
use crate::mask::mysql::MysqlRowMasker;
use crate::proxy::capped::{CappedError, CappedResult, Caps};
use crate::proxy::pg::upstream::PoolKey;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ProgressNotificationParam, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The database server a call is for.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    #[default]
    Postgres,
    Mysql,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QueryArgs {
    /// One SQL statement.
    pub sql: String,
    /// The database to run it in (default: the gateway's upstream database).
    #[serde(default)]
    pub database: Option<String>,
    /// Which server: "postgres" (default) or "mysql".
    #[serde(default)]
    pub server: Option<Server>,
    /// Rows to return at most (never more than the gateway's cap).
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// When the statement is held: seconds to wait for the approvers
    /// before answering with the pending request (0, the default: answer
    /// at once). An approval within the wait runs the statement.
    #[serde(default)]
    pub wait_s: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DatabaseArgs {
    /// The database (default: the gateway's upstream database).
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub server: Option<Server>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ServerArgs {
    #[serde(default)]
    pub server: Option<Server>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TableArgs {
    /// The table's name, optionally schema-qualified (`public.users`).
    pub table: String,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub server: Option<Server>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ExplainArgs {
    /// The statement to explain (it is not run).
    pub sql: String,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub server: Option<Server>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RequestArgs {
    /// The request id a held `query` answered with.
    pub request_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WaitArgs {
    /// The request id a held `query` answered with.
    pub request_id: String,
    /// Seconds to wait at most (capped by the gateway's [mcp] max_wait_secs).
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

/// The MCP server: one per MCP session (HTTP) or process (stdio).
#[derive(Clone)]
pub struct Tools {
    mcp: Arc<Mcp>,
    /// The identity of a stdio server, proved once at start; HTTP calls
    /// carry theirs in each request.
    stdio_agent: Option<Arc<Identity>>,
    tool_router: ToolRouter<Self>,
}

/// What a tool answers: a structured result, or a structured tool error.
type Answer = Result<CallToolResult, ErrorData>;

/// How long the client's user has to answer the approval elicitation
/// before the tool call goes on without it.
const ELICIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A pending answer marked with what the user did when the client showed
/// them the request (URL-mode elicitation), if it was asked.
fn with_elicitation(mut result: CallToolResult, elicited: Option<&str>) -> CallToolResult {
    if let (Some(action), Some(Value::Object(fields))) =
        (elicited, result.structured_content.as_mut())
    {
        fields.insert("elicitation".into(), action.into());
    }
    result
}

fn failure(kind: &str, code: &str, message: impl Into<String>, extra: Value) -> CallToolResult {
    let mut v = json!({"status": kind, "code": code, "message": message.into()});
    if let (Some(o), Value::Object(more)) = (v.as_object_mut(), extra) {
        o.extend(more);
    }
    CallToolResult::structured_error(v)
}

#[tool_router]
impl Tools {
    pub fn new(mcp: Arc<Mcp>, stdio_agent: Option<Arc<Identity>>) -> Self {
        Self {
            mcp,
            stdio_agent,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Run one SQL statement through Airlock: it is classified and checked against the policy, held for human approval when the policy says so (the answer is then status \"pending_approval\" with the request id and inbox URL), audited, and its result rows come back masked (sensitive values replaced) as columns and rows, with row_count, truncated and elapsed_ms. Each call is its own transaction.",
        annotations(
            title = "Run SQL",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn query(
        &self,
        Parameters(args): Parameters<QueryArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Answer {
        let agent = self.agent(&ctx)?;
        let wait = Duration::from_secs(
            args.wait_s
                .unwrap_or(0)
                .min(self.mcp.settings.max_wait_secs),
        );
        self.run_statement(
            &agent,
            &ctx,
            args.server.unwrap_or_default(),
            args.database.as_deref(),
            &args.sql,
            args.max_rows,
            wait,
        )
        .await
    }

    #[tool(
        description = "List the databases this identity may use on the server.",
        annotations(
            title = "List databases",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_databases(
        &self,
        Parameters(args): Parameters<ServerArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Answer {
        let agent = self.agent(&ctx)?;
        let server = args.server.unwrap_or_default();
        let sql = match server {
            Server::Postgres => {
                "SELECT datname AS database FROM pg_catalog.pg_database \
                 WHERE datallowconn AND NOT datistemplate ORDER BY 1"
            }
            Server::Mysql => {
                "SELECT schema_name AS `database` FROM information_schema.schemata \
                 WHERE schema_name NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys') \
                 ORDER BY 1"
            }
        };
        let answer = self
            .run_statement(&agent, &ctx, server, None, sql, None, Duration::ZERO)
            .await?;
        // Only the databases the identity may use are shown.
        Ok(filter_rows(answer, |row| {
            row.first()
                .and_then(Value::as_str)
                .is_some_and(|db| self.database_refusal(&agent, server, db).is_none())
        }))
    }

    #[tool(
        description = "List the tables and views of a database (schema, name, kind).",
        annotations(
            title = "List tables",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_tables(
        &self,
        Parameters(args): Parameters<DatabaseArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Answer {
        let agent = self.agent(&ctx)?;
        let server = args.server.unwrap_or_default();
        let sql = match server {
            Server::Postgres => {
                "SELECT table_schema AS schema, table_name AS name, table_type AS kind \
                 FROM information_schema.tables \
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
            }
            // A MySQL database is one schema: the call's own.
            Server::Mysql => {
                "SELECT table_schema AS `schema`, table_name AS name, table_type AS kind \
                 FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1, 2"
            }
        };
        self.run_statement(
            &agent,
            &ctx,
            server,
            args.database.as_deref(),
            sql,
            None,
            Duration::ZERO,
        )
        .await
    }

    #[tool(
        description = "Describe a table: its columns (name, type, nullable, default), primary and foreign keys, and the planner's row estimate.",
        annotations(
            title = "Describe table",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn describe_table(
        &self,
        Parameters(args): Parameters<TableArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Answer {
        let agent = self.agent(&ctx)?;
        let server = args.server.unwrap_or_default();
        if server == Server::Mysql {
            return self.describe_mysql_table(&agent, &ctx, &args).await;
        }
        let Some(name) = literal(&args.table) else {
            return Ok(failure(
                "error",
                "22023",
                "the table name contains a NUL byte",
                json!({}),
            ));
        };
        // `to_regclass` resolves the name as the server would (search
        // path, quoting); the name is a literal, never spliced as SQL.
        let sql = format!(
            "SELECT a.attname AS column, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, \
             NOT a.attnotnull AS nullable, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default, \
             (SELECT string_agg(CASE c.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique' \
                WHEN 'f' THEN 'foreign key: ' || pg_catalog.pg_get_constraintdef(c.oid) END, '; ') \
              FROM pg_catalog.pg_constraint c WHERE c.conrelid = a.attrelid AND a.attnum = ANY (c.conkey) \
                AND c.contype IN ('p', 'u', 'f')) AS keys, \
             GREATEST(r.reltuples, 0)::bigint AS row_estimate \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class r ON r.oid = a.attrelid \
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = pg_catalog.to_regclass({name}) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum"
        );
        let answer = self
            .run_statement(
                &agent,
                &ctx,
                server,
                args.database.as_deref(),
                &sql,
                None,
                Duration::ZERO,
            )
            .await?;
        Ok(no_table_when_empty(answer, &args.table))
    }

    #[tool(
        description = "Show the server's plan for a statement (plain EXPLAIN: the statement is not run). The EXPLAIN goes through the same policy as any statement.",
        annotations(
            title = "Explain",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn explain(
        &self,
        Parameters(args): Parameters<ExplainArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Answer {
        let agent = self.agent(&ctx)?;
        let sql = format!("EXPLAIN {}", args.sql);
        self.run_statement(
            &agent,
            &ctx,
            args.server.unwrap_or_default(),
            args.database.as_deref(),
            &sql,
            None,
            Duration::ZERO,
        )
        .await
    }

    #[tool(
        description = "The state of an approval request this identity made: pending, approved, denied, expired or withdrawn, with the rule, votes and expiry. After approval, send the identical statement with `query` again: it runs once.",
        annotations(
            title = "Approval status",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn approval_status(
        &self,
        Parameters(args): Parameters<RequestArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Answer {
        let agent = self.agent(&ctx)?;
        match self.own_request(&agent, &args.request_id).await {
            Ok(request) => Ok(self.request_answer(&request)),
            Err(e) => Ok(e),
        }
    }

    #[tool(
        description = "Wait (up to timeout_s seconds, with progress notifications) until an approval request this identity made is decided. Approved: send the identical statement with `query` again and it runs once. Denied or expired: a tool error naming the rule, the approver and the reason.",
        annotations(
            title = "Wait for approval",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn wait_for_approval(
        &self,
        Parameters(args): Parameters<WaitArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Answer {
        let agent = self.agent(&ctx)?;
        let request = match self.own_request(&agent, &args.request_id).await {
            Ok(r) => r,
            Err(e) => return Ok(e),
        };
        let limit = args
            .timeout_s
            .unwrap_or(self.mcp.settings.max_wait_secs)
            .min(self.mcp.settings.max_wait_secs);
        let request = match self
            .wait_decided(&request, Duration::from_secs(limit), &ctx)
            .await
        {
            Ok(r) => r,
            Err(e) => return Ok(e),
        };
        Ok(self.request_answer(&request))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "Airlock is a database gateway: every statement is checked against the operator's policy, \
             risky ones wait for human approval (answered with status \"pending_approval\", a request id \
             and an inbox URL; re-send the identical statement after approval), and sensitive values in \
             results are masked. You cannot approve requests or change policy from here.",
        )
    }
}

impl Tools {
    /// The identity of this call.
    fn agent(&self, ctx: &RequestContext<RoleServer>) -> Result<Arc<Identity>, ErrorData> {
        if let Some(agent) = &self.stdio_agent {
            return Ok(agent.clone());
        }
        ctx.extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Agent>())
            .map(|a| a.0.clone())
            // The middleware lets no request through without one; a call
            // that still has none is refused, never served anonymously.
            .ok_or_else(|| ErrorData::invalid_request("not authenticated", None))
    }

    fn client_addr(&self, ctx: &RequestContext<RoleServer>) -> std::net::SocketAddr {
        ctx.extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| {
                p.extensions
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            })
            .map(|c| c.0)
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Why `identity` may not use `database`, if so.
    fn database_refusal(
        &self,
        identity: &Identity,
        server: Server,
        database: &str,
    ) -> Option<String> {
        if let Some(why) = identity.database_login_refusal() {
            return Some(why);
        }
        if server == Server::Postgres && self.mcp.reserved_databases.iter().any(|d| d == database) {
            return Some(format!(
                "database \"{database}\" holds Airlock's approval store; no agent may use it"
            ));
        }
        (!identity.may_use_database(database)).then(|| {
            format!(
                "identity \"{}\" may not use database \"{database}\" (see its databases in [[identity]])",
                identity.name
            )
        })
    }

    /// The request `id`, if `agent` made it. Requests of other identities
    /// are answered as unknown: their existence is none of this caller's
    /// business.
    async fn own_request(&self, agent: &Identity, id: &str) -> Result<HoldRequest, CallToolResult> {
        let Some(approvals) = self.mcp.gate.approvals() else {
            return Err(failure(
                "error",
                "58000",
                "approvals are not enabled on this gateway",
                json!({}),
            ));
        };
        match approvals.get(id).await {
            Ok(Some(r)) if r.requester == agent.name => Ok(r),
            Ok(_) => Err(failure(
                "error",
                "42704",
                format!("no request {id} of identity \"{}\"", agent.name),
                json!({}),
            )),
            Err(e) => Err(failure(
                "error",
                "58000",
                format!("the approval store is unavailable: {e}"),
                json!({}),
            )),
        }
    }

    /// Waits until `request` is decided or `limit` passes, telling the
    /// client it is still waiting (progress notifications keep the stream
    /// alive). The caller's cancellation ends the wait, not the request.
    async fn wait_decided(
        &self,
        request: &HoldRequest,
        limit: Duration,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<HoldRequest, CallToolResult> {
        let Some(approvals) = self.mcp.gate.approvals() else {
            return Err(failure(
                "error",
                "58000",
                "approvals are not enabled on this gateway",
                json!({}),
            ));
        };
        let started = tokio::time::Instant::now();
        let deadline = started + limit;
        let token = ctx.meta.get_progress_token();
        let mut current = request.clone();
        let mut step = 0u32;
        while current.state == State::Pending && tokio::time::Instant::now() < deadline {
            let next = deadline.min(tokio::time::Instant::now() + Duration::from_secs(5));
            current = tokio::select! {
                r = approvals.wait(&request.id, next) => match r {
                    Ok(r) => r,
                    Err(e) => return Err(failure("error", "58000", format!("the approval store is unavailable: {e}"), json!({}))),
                },
                _ = ctx.ct.cancelled() => break,
            };
            step += 1;
            if let (Some(token), State::Pending) = (&token, current.state) {
                let param = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_message(format!(
                        "waiting for approval of request {} ({} of {} approvals)",
                        current.id,
                        current.approvals(),
                        current.quorum
                    ));
                let _ = ctx.peer.notify_progress(param).await;
            }
        }
        Ok(current)
    }

    /// The answer for a request's state: pending and approved are results,
    /// denied, expired and withdrawn tool errors.
    fn request_answer(&self, r: &HoldRequest) -> CallToolResult {
        let iso = |ms: u64| crate::audit::chain::timestamp(Duration::from_millis(ms));
        let url = format!("{}/requests/{}", self.mcp.gate.inbox_url(), r.id);
        let base = json!({
            "request_id": r.id,
            "state": r.state.name(),
            "rule": r.rule,
            "group": r.group,
            "quorum": r.quorum,
            "approvals": r.approvals(),
            "inbox_url": url,
            "expires_at": iso(r.expires_ms),
            "used": r.consumed_ms.is_some(),
        });
        match r.state {
            State::Pending | State::Approved => {
                let mut v = base;
                let message = if r.state == State::Pending {
                    format!("request {} is waiting for approval at {url}", r.id)
                } else if r.consumed_ms.is_some() {
                    format!("request {} was approved and its statement has run", r.id)
                } else {
                    format!(
                        "request {} is approved: send the identical statement with `query` again (before {}) and it runs once",
                        r.id,
                        iso(r.expires_ms)
                    )
                };
                v["status"] = json!(r.state.name());
                v["message"] = json!(message);
                CallToolResult::structured(v)
            }
            State::Denied => {
                let deny = r.denial();
                let approver = deny.map_or("an approver", |d| d.approver.as_str());
                let reason = deny
                    .map(|d| d.reason.as_str())
                    .filter(|s| !s.is_empty())
                    .unwrap_or("no reason given");
                failure(
                    "denied",
                    "42501",
                    format!(
                        "statement denied by {approver} (request {}, Airlock rule \"{}\"): {reason}",
                        r.id, r.rule
                    ),
                    json!({"request_id": r.id, "rule": r.rule, "approver": approver, "reason": reason}),
                )
            }
            State::Expired | State::Withdrawn => failure(
                r.state.name(),
                "57014",
                format!(
                    "request {} {} without approval (Airlock rule \"{}\"){}; the statement was not run",
                    r.id,
                    if r.state == State::Expired { "expired" } else { "was withdrawn" },
                    r.rule,
                    r.ended_because
                        .as_deref()
                        .map(|b| format!(": {b}"))
                        .unwrap_or_default()
                ),
                json!({"request_id": r.id, "rule": r.rule}),
            ),
        }
    }

    /// One statement through the whole pipeline.
    #[allow(clippy::too_many_arguments)]
    async fn run_statement(
        &self,
        agent: &Identity,
        ctx: &RequestContext<RoleServer>,
        server: Server,
        database: Option<&str>,
        sql: &str,
        max_rows: Option<u64>,
        wait: Duration,
    ) -> Answer {
        if server == Server::Mysql && self.mcp.mysql.is_none() {
            return Ok(failure(
                "error",
                "0A000",
                "this gateway has no MySQL/MariaDB upstream ([mysql] enabled = false)",
                json!({}),
            ));
        }
        let default = match server {
            Server::Postgres => &self.mcp.default_database,
            Server::Mysql => &self.mcp.mysql_default_database,
        };
        let database = database
            .filter(|d| !d.is_empty())
            .unwrap_or(default)
            .to_string();
        if let Some(why) = self.database_refusal(agent, server, &database) {
            return Ok(failure(
                "denied",
                "42501",
                why,
                json!({"database": database}),
            ));
        }
        let gate = &self.mcp.gate;
        let id = SessionId::next();
        let sampler: Arc<dyn crate::mask::sample::Sampler> = match (server, &self.mcp.mysql) {
            (Server::Mysql, Some(settings)) => Arc::new(crate::proxy::mysql::capped::Sampler::new(
                settings.clone(),
                agent.confinement.clone(),
                &agent.name,
                &id.0,
            )),
            _ => Arc::new(crate::proxy::pg::capped::Sampler::new(
                self.mcp.pool.clone(),
                PoolKey {
                    database: database.clone(),
                    params: Vec::new(),
                },
                &agent.confinement,
                &agent.name,
                &id.0,
            )),
        };
        let session = SessionInfo {
            id,
            identity: agent.name.clone(),
            role: agent.role,
            client_addr: self.client_addr(ctx),
            application_name: ctx
                .peer
                .peer_info()
                .map(|i| format!("mcp: {}", i.client_info.name)),
            database: database.clone(),
            protocol: match server {
                Server::Postgres => Protocol::Postgres,
                Server::Mysql => Protocol::Mysql,
            },
            door: Door::Mcp,
            tls: false,
            confinement: agent.confinement.clone(),
            ending: Default::default(),
            sampler: Some(crate::mask::sample::Sampling(sampler)),
        };
        gate.audit()
            .record(AuditEvent::SessionStart { session: &session });
        let answer = self
            .checked_run(agent, &session, ctx, sql, max_rows, wait)
            .await;
        gate.audit().record(AuditEvent::SessionEnd {
            session: &session.id,
            reason: "MCP tool call ended",
        });
        answer
    }

    async fn checked_run(
        &self,
        agent: &Identity,
        session: &SessionInfo,
        ctx: &RequestContext<RoleServer>,
        sql: &str,
        max_rows: Option<u64>,
        wait: Duration,
    ) -> Answer {
        let gate = &self.mcp.gate;
        let mut statements = SessionStatements::default();
        // Origin::Prepare: the text goes in one Parse, as one statement.
        let checked = gate
            .check(session, &mut statements, sql.as_bytes(), Origin::Prepare)
            .await;
        // In MySQL a table of another database is a qualified name away.
        if session.protocol == Protocol::Mysql {
            let named = checked.classification.mysql_databases();
            if let Some(why) = named
                .iter()
                .find_map(|db| self.database_refusal(agent, Server::Mysql, db))
            {
                return Ok(failure("denied", "42501", why, json!({})));
            }
        }
        let mut released = None;
        if !checked.allowed() {
            if !gate.waits_for_approval(&checked) {
                let refusal = checked.refusal().unwrap_or(crate::gate::Refusal {
                    code: "42501",
                    message: "statement not allowed".into(),
                });
                return Ok(failure(
                    "denied",
                    refusal.code,
                    refusal.message,
                    json!({"rule": checked.decision.rule}),
                ));
            }
            let impact = async { None };
            match gate
                .claim_or_hold(session, &checked, sql.as_bytes(), impact, &statements)
                .await
            {
                Ok(Deferred::Released(id)) => released = Some(id),
                Ok(Deferred::Pending(request)) => {
                    let elicited = self.elicit_approval(&request, ctx).await;
                    let decided = match self.wait_decided(&request, wait, ctx).await {
                        Ok(r) => r,
                        Err(e) => return Ok(e),
                    };
                    match decided.state {
                        State::Approved => {
                            match gate
                                .claim_or_hold(
                                    session,
                                    &checked,
                                    sql.as_bytes(),
                                    async { None },
                                    &statements,
                                )
                                .await
                            {
                                Ok(Deferred::Released(id)) => released = Some(id),
                                Ok(Deferred::Pending(again)) => {
                                    return Ok(with_elicitation(self.pending(&again), elicited))
                                }
                                Err(r) => {
                                    return Ok(failure("error", r.code, r.message, json!({})))
                                }
                            }
                        }
                        State::Pending => {
                            return Ok(with_elicitation(self.pending(&decided), elicited))
                        }
                        _ => return Ok(self.request_answer(&decided)),
                    }
                }
                Err(r) => return Ok(failure("error", r.code, r.message, json!({}))),
            }
        }

        let limits = agent.mcp_limits;
        let settings = &self.mcp.settings;
        let cap_rows = limits.max_rows.unwrap_or(settings.max_rows);
        let caps = Caps {
            max_rows: max_rows.map_or(cap_rows, |m| m.min(cap_rows)),
            max_bytes: limits.max_bytes.unwrap_or(settings.max_bytes),
            timeout: Duration::from_secs(settings.statement_timeout_secs),
        };
        let started = Instant::now();
        let ran = self.run_capped(agent, session, sql, caps).await;
        let elapsed = started.elapsed();
        match ran {
            Ok(result) => {
                self.record_result(session, &result, elapsed);
                if let Some(id) = &released {
                    gate.record_outcome(
                        id.clone(),
                        true,
                        result
                            .command
                            .clone()
                            .unwrap_or_else(|| "ran (truncated)".into()),
                    );
                }
                Ok(result_answer(result, elapsed, &session.database, released))
            }
            Err(e) => {
                let (code, message) = match &e {
                    CappedError::Server { code, message } => (code.clone(), message.clone()),
                    CappedError::Timeout(_) => ("57014".to_string(), e.to_string()),
                    CappedError::Upstream(_) => ("08006".to_string(), e.to_string()),
                    CappedError::Unsupported(_) => ("0A000".to_string(), e.to_string()),
                };
                gate.audit().record(AuditEvent::Error {
                    session: &session.id,
                    code: &code,
                    message: &message,
                });
                if let Some(id) = &released {
                    gate.record_outcome(id.clone(), false, format!("{code} {message}"));
                }
                let kind = if code == "57014" { "timeout" } else { "error" };
                Ok(failure(
                    kind,
                    &code,
                    message,
                    json!({"database": session.database}),
                ))
            }
        }
    }

    /// `describe_table` on MySQL/MariaDB: the information schema, the name
    /// given as literals (hex, so that no `sql_mode` can change how they
    /// read).
    async fn describe_mysql_table(
        &self,
        agent: &Identity,
        ctx: &RequestContext<RoleServer>,
        args: &TableArgs,
    ) -> Answer {
        let (schema, table) = split_mysql_name(&args.table);
        let schema_sql = match &schema {
            Some(db) => {
                if let Some(why) = self.database_refusal(agent, Server::Mysql, db) {
                    return Ok(failure("denied", "42501", why, json!({"database": db})));
                }
                mysql_literal(db)
            }
            None => "DATABASE()".to_string(),
        };
        let name = mysql_literal(&table);
        let sql = format!(
            "SELECT c.column_name AS `column`, c.column_type AS `type`, \
             c.is_nullable = 'YES' AS nullable, c.column_default AS `default`, \
             NULLIF(CONCAT_WS('; ', CASE c.column_key WHEN 'PRI' THEN 'primary key' WHEN 'UNI' THEN 'unique' END, \
               (SELECT GROUP_CONCAT(CONCAT('foreign key: references ', k.referenced_table_schema, '.', \
                  k.referenced_table_name, '(', k.referenced_column_name, ')') SEPARATOR '; ') \
                FROM information_schema.key_column_usage k \
                WHERE k.table_schema = c.table_schema AND k.table_name = c.table_name \
                  AND k.column_name = c.column_name AND k.referenced_table_name IS NOT NULL)), '') AS `keys`, \
             t.table_rows AS row_estimate \
             FROM information_schema.columns c JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = {schema_sql} AND c.table_name = {name} \
             ORDER BY c.ordinal_position"
        );
        let answer = self
            .run_statement(
                agent,
                ctx,
                Server::Mysql,
                args.database.as_deref(),
                &sql,
                None,
                Duration::ZERO,
            )
            .await?;
        Ok(no_table_when_empty(answer, &args.table))
    }

    /// Runs an allowed statement on the session's server, capped and masked.
    async fn run_capped(
        &self,
        agent: &Identity,
        session: &SessionInfo,
        sql: &str,
        caps: Caps,
    ) -> Result<CappedResult, CappedError> {
        let gate = &self.mcp.gate;
        match (session.protocol, &self.mcp.mysql) {
            (Protocol::Mysql, Some(settings)) => {
                let mut masker = match gate.masking_for(session) {
                    Some(engine) => MysqlRowMasker::new(engine),
                    None => MysqlRowMasker::pass_through(),
                };
                let target = crate::proxy::mysql::capped::Target {
                    settings,
                    confinement: &agent.confinement,
                    database: &session.database,
                    identity: &agent.name,
                    session: &session.id.0,
                    read_only: false,
                };
                crate::proxy::mysql::capped::run(target, sql, &mut masker, caps).await
            }
            (Protocol::Mysql, None) => Err(CappedError::Unsupported(
                "this gateway has no MySQL/MariaDB upstream".into(),
            )),
            _ => {
                let key = PoolKey {
                    database: session.database.clone(),
                    params: Vec::new(),
                };
                let setup = session.confinement.postgres_setup();
                let mut masker = gate.masker_for(session);
                crate::proxy::pg::capped::run(
                    &self.mcp.pool,
                    &key,
                    setup.as_deref(),
                    sql,
                    &mut masker,
                    caps,
                )
                .await
            }
        }
    }

    /// A held statement's answer: not an error — the statement waits.
    /// Asks the agent's client to show its user the request's page
    /// (URL-mode elicitation), when the client supports that: "approval
    /// needed: open …". What the user did (`accept`: they went to open
    /// it), or `None` when the client cannot be asked. The answer decides
    /// nothing: approvers decide in the inbox.
    async fn elicit_approval(
        &self,
        r: &HoldRequest,
        ctx: &RequestContext<RoleServer>,
    ) -> Option<&'static str> {
        use rmcp::model::ElicitationAction;
        use rmcp::service::ElicitationError;
        let url = format!("{}/requests/{}", self.mcp.gate.inbox_url(), r.id);
        let parsed = url::Url::parse(&url).ok()?;
        let message = format!(
            "Approval needed: Airlock holds this statement as request {} (rule \"{}\", {} approval{} from group \"{}\"). Open {url} to follow it; an approver decides it there.",
            r.id,
            r.rule,
            r.quorum,
            if r.quorum == 1 { "" } else { "s" },
            r.group
        );
        let asked = ctx
            .peer
            .elicit_url_with_timeout(message, parsed, r.id.clone(), Some(ELICIT_TIMEOUT))
            .await;
        match asked {
            Ok(ElicitationAction::Accept) => Some("accept"),
            Ok(ElicitationAction::Decline) | Err(ElicitationError::UserDeclined) => Some("decline"),
            Ok(ElicitationAction::Cancel) | Err(ElicitationError::UserCancelled) => Some("cancel"),
            Ok(_) => Some("other"),
            Err(ElicitationError::CapabilityNotSupported) => None,
            Err(e) => {
                tracing::debug!(request = %r.id, error = %e, "the client did not answer the approval elicitation");
                Some("unanswered")
            }
        }
    }

    fn pending(&self, r: &HoldRequest) -> CallToolResult {
        let iso = |ms: u64| crate::audit::chain::timestamp(Duration::from_millis(ms));
        let url = format!("{}/requests/{}", self.mcp.gate.inbox_url(), r.id);
        CallToolResult::structured(json!({
            "status": "pending_approval",
            "request_id": r.id,
            "inbox_url": url,
            "rule": r.rule,
            "group": r.group,
            "quorum": r.quorum,
            "expires_at": iso(r.expires_ms),
            "message": format!(
                "approval needed: the statement is held as request {} by Airlock rule \"{}\" ({} approval{} from group \"{}\"). \
                 Open {url}. Once approved, send the identical statement again (before {}) and it runs once; \
                 wait_for_approval waits for the decision.",
                r.id, r.rule, r.quorum, if r.quorum == 1 { "" } else { "s" }, r.group, iso(r.expires_ms)
            ),
        }))
    }

    fn record_result(&self, session: &SessionInfo, result: &CappedResult, elapsed: Duration) {
        let gate = &self.mcp.gate;
        gate.learn_masked(&result.stats);
        let rows_json = serde_json::to_vec(&result.rows).unwrap_or_default();
        let digest = crate::hex::encode(blake3::hash(&rows_json).as_bytes());
        let capture = gate.audit().capture_rows();
        let captured: Vec<Vec<Option<String>>> = result
            .rows
            .iter()
            .take(capture)
            .map(|row| {
                row.iter()
                    .map(|v| match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    })
                    .collect()
            })
            .collect();
        let tag = result
            .command
            .clone()
            .unwrap_or_else(|| format!("SELECT {} (truncated)", result.rows.len()));
        gate.audit().record(AuditEvent::Result {
            session: &session.id,
            tag: &tag,
            rows: result.rows.len() as u64,
            bytes: rows_json.len() as u64,
            duration: elapsed,
            masked: &result.stats,
            digest: &digest,
            captured: &captured,
        });
    }
}

fn result_answer(
    result: CappedResult,
    elapsed: Duration,
    database: &str,
    released: Option<String>,
) -> CallToolResult {
    let row_count = result.rows.len();
    let mut v = json!({
        "status": "ok",
        "database": database,
        "columns": result.columns,
        "rows": result.rows,
        "row_count": row_count,
        "truncated": result.stopped_by.is_some(),
        "elapsed_ms": elapsed.as_millis() as u64,
    });
    if let Some(by) = result.stopped_by {
        v["truncated_by"] = json!(by);
    }
    if let Some(command) = result.command {
        v["command"] = json!(command);
    }
    if let Some(id) = released {
        v["request_id"] = json!(id);
    }
    CallToolResult::structured(v)
}

/// `answer` with only the rows `keep` accepts.
fn filter_rows(mut answer: CallToolResult, keep: impl Fn(&[Value]) -> bool) -> CallToolResult {
    if answer.is_error == Some(true) {
        return answer;
    }
    if let Some(v) = answer.structured_content.as_mut() {
        if let Some(rows) = v.get_mut("rows").and_then(Value::as_array_mut) {
            rows.retain(|r| r.as_array().is_some_and(|r| keep(r)));
            let n = rows.len();
            v["row_count"] = json!(n);
        }
        answer.content = vec![rmcp::model::ContentBlock::text(v.to_string())];
    }
    answer
}

/// A table-describing answer, or an error saying there is no such table
/// when it has no rows.
fn no_table_when_empty(answer: CallToolResult, table: &str) -> CallToolResult {
    let empty = answer
        .structured_content
        .as_ref()
        .and_then(|v| v.get("row_count"))
        .and_then(Value::as_u64)
        == Some(0);
    if empty && answer.is_error != Some(true) {
        return failure(
            "error",
            "42P01",
            format!("no table or view `{table}` is visible in this database"),
            json!({}),
        );
    }
    answer
}

/// `db.table`, `` `db`.`table` `` or `table`: the database (if named) and
/// the table, quotes removed.
fn split_mysql_name(name: &str) -> (Option<String>, String) {
    let unquote = |part: &str| {
        let part = part.trim();
        part.strip_prefix('`')
            .and_then(|p| p.strip_suffix('`'))
            .map(|p| p.replace("``", "`"))
            .unwrap_or_else(|| part.to_string())
    };
    // A dot inside backquotes belongs to the name.
    let mut quoted = false;
    let split = name.char_indices().find_map(|(i, c)| {
        if c == '`' {
            quoted = !quoted;
        }
        (c == '.' && !quoted).then_some(i)
    });
    match split {
        Some(i) => (Some(unquote(&name[..i])), unquote(&name[i + 1..])),
        None => (None, unquote(name)),
    }
}

/// `text` as a MySQL utf8mb4 string: a hex literal reads the same under
/// every `sql_mode` (backslashes, ANSI quotes) and cannot end early.
fn mysql_literal(text: &str) -> String {
    if text.is_empty() {
        return "''".into();
    }
    format!(
        "CONVERT(X'{}' USING utf8mb4)",
        crate::hex::encode(text.as_bytes())
    )
}

/// `text` as a PostgreSQL string literal (standard conforming strings);
/// `None` when it holds a NUL, which no literal can.
fn literal(text: &str) -> Option<String> {
    if text.contains('\0') {
        return None;
    }
    Some(format!("'{}'", text.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes_and_refuse_nul() {
        assert_eq!(literal("users").as_deref(), Some("'users'"));
        assert_eq!(literal("o'brien").as_deref(), Some("'o''brien'"));
        assert_eq!(literal("a\\'b").as_deref(), Some("'a\\''b'"));
        assert_eq!(literal("a\0b"), None);
    }

    #[test]
    fn mysql_names_split_outside_backquotes() {
        assert_eq!(split_mysql_name("t"), (None, "t".into()));
        assert_eq!(split_mysql_name("db.t"), (Some("db".into()), "t".into()));
        assert_eq!(
            split_mysql_name("`a.b`.`c``d`"),
            (Some("a.b".into()), "c`d".into())
        );
        assert_eq!(split_mysql_name("`x.y`"), (None, "x.y".into()));
        assert_eq!(mysql_literal("o'b\\"), "CONVERT(X'6f27625c' USING utf8mb4)");
    }
}
