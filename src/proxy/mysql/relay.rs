//! One MySQL session after login: commands from the agent, checked by the
//! gate, relayed to the session's own upstream connection, and the
//! responses relayed back with their rows masked.
//!
//! MySQL is strictly request–response, so one loop carries the session:
//! read a command, decide, forward it, relay its whole response, repeat.
//! Sequence ids are numbered per leg (each side's counter restarts with
//! every command), so a row that masking makes longer or shorter — even
//! across the 16 MiB chunk boundary — never desynchronises either side.
//! Column definitions and OK / EOF packets pass through unchanged; ERR
//! messages are masked (servers quote offending values in them).
//!
//! Refused outright, with a clear ERR: identity switches
//! (COM_CHANGE_USER), replication (COM_BINLOG_DUMP, COM_REGISTER_SLAVE…),
//! COM_PROCESS_KILL, server administration commands (COM_SHUTDOWN,
//! COM_DEBUG, COM_REFRESH…) and `LOAD DATA LOCAL INFILE`: the statement is
//! refused by the gate before it reaches the server (ERR 1148, see
//! [`crate::sql::local_infile`]), and the capability is never negotiated —
//! a server asking for a file anyway gets an empty one and the agent an
//! error.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;

use super::handshake::{
    ends_result_set, is_eof, ErrPacket, OkPacket, CLIENT_DEPRECATE_EOF, ERR_HEADER,
    MARIADB_CLIENT_EXTENDED_METADATA, OK_HEADER, SERVER_MORE_RESULTS_EXISTS,
};
use super::packet::{text_values, Fields, Packet, PacketError, PacketStream};
use super::upstream::{self, Upstream};
use super::{KillMap, MysqlShared};
use crate::audit::{AuditEvent, ResultTally, Unrecorded};
use crate::gate::{
    Checked, Gate, Origin, Refusal, Released, SessionInfo, SessionStatements, LOCAL_INFILE_RULE,
};
use crate::identity::Identity;
use crate::mask::mysql::{parse_column_definition_with, MysqlColumn, MysqlRowMasker};
use crate::proxy::Stream;
use crate::sql::{Dialect, StatementClass};

// Command bytes (the first byte of a command packet).
const COM_SLEEP: u8 = 0x00;
const COM_QUIT: u8 = 0x01;
const COM_INIT_DB: u8 = 0x02;
const COM_QUERY: u8 = 0x03;
const COM_FIELD_LIST: u8 = 0x04;
const COM_STATISTICS: u8 = 0x09;
const COM_PROCESS_KILL: u8 = 0x0c;
const COM_PING: u8 = 0x0e;
const COM_CHANGE_USER: u8 = 0x11;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_STMT_CLOSE: u8 = 0x19;
const COM_STMT_RESET: u8 = 0x1a;
const COM_SET_OPTION: u8 = 0x1b;
const COM_STMT_FETCH: u8 = 0x1c;
const COM_RESET_CONNECTION: u8 = 0x1f;

/// How MariaDB names COM_STMT_EXECUTE in its errors.
const EXECUTE: &str = "mysqld_stmt_execute";

/// SERVER_STATUS_CURSOR_EXISTS: an execute opened a cursor; rows come with
/// COM_STMT_FETCH.
const SERVER_STATUS_CURSOR_EXISTS: u16 = 1 << 6;

/// The first byte of a LOCAL INFILE request in place of a result.
const LOCAL_INFILE_HEADER: u8 = 0xFB;

/// Flush to the client once this much is buffered, so a large result
/// streams instead of piling up.
const FLUSH_AT: usize = 256 << 10;

/// Prepared statements one session may hold (the server's own limit,
/// max_prepared_stmt_count, is global).
const MAX_PREPARED: usize = 10_000;

/// Commands kept while a held statement waits; beyond this the client is
/// not read until the wait ends.
const MAX_STASHED: usize = 16;

/// How long the impact estimate of a held statement may take; the hold
/// is made without one after that.
const IMPACT_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Quit,
    ClientGone,
    ProtocolError,
    UpstreamGone,
    Shutdown,
}

impl End {
    pub fn reason(self) -> &'static str {
        match self {
            End::Quit => "client terminated",
            End::ClientGone => "client disconnected",
            End::ProtocolError => "client protocol violation",
            End::UpstreamGone => "upstream connection lost",
            End::Shutdown => "gateway shutdown",
        }
    }
}

/// A statement prepared through the gate: its verdict (enforced at each
/// execute) and its result columns (for the rows of executes and fetches).
struct Prepared {
    checked: Checked,
    sql: Vec<u8>,
    columns: Vec<MysqlColumn>,
}

/// Which row format a response carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    Text,
    Binary,
}

pub struct Relay {
    pub client: PacketStream<Stream>,
    pub upstream: Upstream,
    /// Capabilities of the session, the same on both legs.
    pub capabilities: u32,
    pub session: SessionInfo,
    pub identity: Identity,
    pub gate: Arc<Gate>,
    pub shared: Arc<MysqlShared>,
    pub shutdown: watch::Receiver<bool>,
    pub masker: MysqlRowMasker,
    /// This session's entry in the kill map (its gateway connection id).
    pub connection_id: u32,
    pub cancelled: watch::Receiver<u64>,
    statements: SessionStatements,
    prepared: HashMap<u32, Prepared>,
    capture_rows: usize,
    /// Commands the client sent while a held statement waited, with the
    /// sequence id after each: handled in order after the wait, as the
    /// server itself would (it reads the next command only when done).
    stash: VecDeque<(Packet, u8)>,
    /// The approval that released the statement being answered, which is
    /// told what the statement did.
    released: Option<Released>,
    /// Statements that finished since the client was last written to.
    finished: Unrecorded,
}

/// Why a command could not be completed with the upstream.
enum Broken {
    Client,
    Upstream,
}

impl From<Broken> for End {
    fn from(b: Broken) -> End {
        match b {
            Broken::Client => End::ClientGone,
            Broken::Upstream => End::UpstreamGone,
        }
    }
}

type Step = Result<(), Broken>;

impl Relay {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: PacketStream<Stream>,
        upstream: Upstream,
        capabilities: u32,
        session: SessionInfo,
        identity: Identity,
        shared: Arc<MysqlShared>,
        shutdown: watch::Receiver<bool>,
        connection_id: u32,
        cancelled: watch::Receiver<u64>,
    ) -> Self {
        let gate = shared.gate.clone();
        let masker = match gate.masking_for(&session) {
            Some(engine) => MysqlRowMasker::new(engine),
            None => MysqlRowMasker::pass_through(),
        };
        let capture_rows = gate.audit().capture_rows();
        Relay {
            client,
            upstream,
            capabilities,
            session,
            identity,
            gate,
            shared,
            shutdown,
            masker,
            connection_id,
            cancelled,
            statements: SessionStatements::default(),
            prepared: HashMap::new(),
            capture_rows,
            stash: VecDeque::new(),
            released: None,
            finished: Unrecorded::default(),
        }
    }

    /// Carries the session until the client quits or either side goes.
    pub async fn run(&mut self) -> End {
        loop {
            self.client.reset();
            let read = match self.stash.pop_front() {
                Some((packet, seq)) => {
                    self.client.set_seq(seq);
                    Ok(Some(packet))
                }
                None => tokio::select! {
                    _ = self.shutdown.wait_for(|s| *s) => return End::Shutdown,
                    r = self.client.read() => r,
                },
            };
            let packet = match read {
                Ok(Some(p)) => p,
                Ok(None) => return End::ClientGone,
                Err(e) => {
                    self.protocol_error(&e).await;
                    return End::ProtocolError;
                }
            };
            let Some(&command) = packet.payload.first() else {
                self.protocol_error(&PacketError::Malformed("an empty command packet"))
                    .await;
                return End::ProtocolError;
            };
            let step = match command {
                COM_QUIT => return End::Quit,
                COM_QUERY => self.query(packet.payload).await,
                COM_INIT_DB => self.init_db(packet.payload).await,
                COM_PING | COM_STATISTICS | COM_SET_OPTION => {
                    self.forward_single(&packet.payload).await
                }
                COM_FIELD_LIST => self.field_list(&packet.payload).await,
                // It would reset the identity's role and read-only mode
                // (see crate::confinement).
                COM_RESET_CONNECTION if self.session.confinement.is_confined() => {
                    self.refuse(
                        1227,
                        "42000",
                        "Airlock does not relay COM_RESET_CONNECTION for an identity with upstream_role, read_only or a statement timeout (it would reset them); open a new connection instead",
                    )
                    .await
                }
                COM_RESET_CONNECTION => {
                    self.prepared.clear();
                    self.forward_single(&packet.payload).await
                }
                COM_STMT_PREPARE => self.prepare(packet.payload).await,
                COM_STMT_EXECUTE => self.execute(packet.payload).await,
                COM_STMT_FETCH => self.fetch(&packet.payload).await,
                COM_STMT_SEND_LONG_DATA => self.send_long_data(&packet.payload).await,
                COM_STMT_CLOSE => self.close_statement(&packet.payload).await,
                COM_STMT_RESET => match self.statement_id(&packet.payload) {
                    Some(_) => self.forward_single(&packet.payload).await,
                    None => {
                        self.unknown_statement(&packet.payload, "mysqld_stmt_reset")
                            .await
                    }
                },
                COM_CHANGE_USER => {
                    self.refuse(
                        1227,
                        "42000",
                        "Airlock does not allow changing the user of a connection (COM_CHANGE_USER); open a new connection as the other identity",
                    )
                    .await
                }
                COM_PROCESS_KILL => {
                    self.refuse(
                        1227,
                        "42000",
                        "Airlock does not relay COM_PROCESS_KILL; cancel your own statement with KILL QUERY <connection id>",
                    )
                    .await
                }
                0x12 | 0x13 | 0x14 | 0x15 | 0x1e => {
                    self.refuse(
                        1227,
                        "42000",
                        "replication commands are not allowed through Airlock",
                    )
                    .await
                }
                other => {
                    let message = format!(
                        "command {other:#04x} ({}) is not allowed through Airlock",
                        command_name(other)
                    );
                    self.refuse(1047, "08S01", &message).await
                }
            };
            if let Err(broken) = step {
                return broken.into();
            }
        }
    }

    // ---- commands -----------------------------------------------------

    async fn query(&mut self, payload: Bytes) -> Step {
        let sql = &payload[1..];
        if let Some(kill) = self.cancel_request(sql) {
            return self.kill(kill).await;
        }
        let checked = self
            .gate
            .check(
                &self.session,
                &mut self.statements,
                sql,
                Origin::SimpleQuery,
            )
            .await;
        let uses = checked.classification.mysql_databases();
        if let Some(db) = uses.iter().find(|db| !self.identity.may_use_database(db)) {
            let message = self.database_refused(db);
            return self.refuse(1044, "42000", &message).await;
        }
        if let Some(kill) = kill_statement(&checked.classification) {
            if checked.allowed() {
                return self.kill(kill).await;
            }
        }
        if let Some(why) = local_infile_refused(&checked) {
            return self.refuse(1148, "42000", why).await;
        }
        if let Err(refusal) = self.clear(&checked, sql).await {
            return self.refuse_with(&refusal).await;
        }
        self.send_upstream(&payload).await?;
        let ok = self.relay_results(Rows::Text, None).await?;
        self.report_released();
        if ok {
            if let Some(db) = uses.last() {
                self.session.database = db.clone();
            }
        }
        Ok(())
    }

    async fn init_db(&mut self, payload: Bytes) -> Step {
        let db = String::from_utf8_lossy(&payload[1..]).into_owned();
        if let Some(error) = super::system_database_refusal(&db) {
            return self.refuse(error.code, "42000", &error.message).await;
        }
        if !self.identity.may_use_database(&db) {
            let message = self.database_refused(&db);
            return self.refuse(1044, "42000", &message).await;
        }
        self.send_upstream(&payload).await?;
        let reply = self.read_upstream().await?;
        if reply.payload.first() == Some(&OK_HEADER) {
            self.session.database = db;
        }
        self.relay_single(reply).await
    }

    async fn field_list(&mut self, payload: &[u8]) -> Step {
        // Column definitions then EOF (or ERR): metadata only, no rows.
        self.send_upstream(payload).await?;
        loop {
            let packet = self.read_upstream().await?;
            let last = packet.payload.first() == Some(&ERR_HEADER) || is_eof(&packet.payload);
            if packet.payload.first() == Some(&ERR_HEADER) {
                return self.relay_single(packet).await;
            }
            self.client.write_packet(&packet.payload);
            if last {
                return self.flush_client().await;
            }
        }
    }

    async fn prepare(&mut self, payload: Bytes) -> Step {
        let sql = payload[1..].to_vec();
        let checked = self
            .gate
            .check(&self.session, &mut self.statements, &sql, Origin::Prepare)
            .await;
        let uses = checked.classification.mysql_databases();
        if let Some(db) = uses.iter().find(|db| !self.identity.may_use_database(db)) {
            let message = self.database_refused(db);
            return self.refuse(1044, "42000", &message).await;
        }
        if let Some(why) = local_infile_refused(&checked) {
            return self.refuse(1148, "42000", why).await;
        }
        // A held statement is prepared (the agent needs its metadata) and
        // held when executed; anything else refused is never prepared.
        if !checked.allowed() && !self.gate.waits_for_approval(&checked) {
            let refusal = checked.refusal().unwrap_or_else(not_allowed);
            return self.refuse_with(&refusal).await;
        }
        if self.prepared.len() >= MAX_PREPARED {
            return self
                .refuse(
                    1461,
                    "42000",
                    "this session holds too many prepared statements; close some (COM_STMT_CLOSE)",
                )
                .await;
        }
        self.send_upstream(&payload).await?;
        let first = self.read_upstream().await?;
        if first.payload.first() != Some(&OK_HEADER) {
            return self.relay_single(first).await;
        }
        let mut fields = Fields::new(&first.payload[1..]);
        let (Ok(id), Ok(columns), Ok(params)) = (fields.u32(), fields.u16(), fields.u16()) else {
            return Err(Broken::Upstream);
        };
        self.client.write_packet(&first.payload);
        let eof = self.capabilities & CLIENT_DEPRECATE_EOF == 0;
        for _ in 0..params {
            let p = self.read_upstream().await?;
            self.client.write_packet(&p.payload);
        }
        if params > 0 && eof {
            let p = self.read_upstream().await?;
            self.client.write_packet(&p.payload);
        }
        let mut described = Vec::with_capacity(columns as usize);
        for _ in 0..columns {
            let p = self.read_upstream().await?;
            described.push(column_of(&p.payload, self.extended_metadata()));
            self.write_column_definition(&p.payload);
        }
        if columns > 0 && eof {
            let p = self.read_upstream().await?;
            self.client.write_packet(&p.payload);
        }
        self.prepared.insert(
            id,
            Prepared {
                checked,
                sql,
                columns: described,
            },
        );
        self.flush_client().await
    }

    async fn execute(&mut self, payload: Bytes) -> Step {
        let Some(id) = self.statement_id(&payload) else {
            return self.unknown_statement(&payload, EXECUTE).await;
        };
        // The common case — an allowed statement — copies nothing; a held
        // or refused one takes its verdict and text along into the wait.
        let pending = match self.prepared.get(&id) {
            Some(p) if p.checked.allowed() => None,
            Some(p) => Some((p.checked.clone(), p.sql.clone())),
            None => return self.unknown_statement(&payload, EXECUTE).await,
        };
        if let Some((checked, sql)) = pending {
            if let Err(refusal) = self.clear(&checked, &sql).await {
                return self.refuse_with(&refusal).await;
            }
        } else if let Err(refusal) = self.gate.admit_execution(&self.session) {
            return self.refuse_with(&refusal).await;
        }
        self.send_upstream(&payload).await?;
        self.relay_results(Rows::Binary, Some(id)).await?;
        self.report_released();
        Ok(())
    }

    fn report_released(&mut self) {
        if let Some(released) = self.released.take() {
            released.report(&self.gate);
        }
    }

    async fn fetch(&mut self, payload: &[u8]) -> Step {
        let Some(id) = self.statement_id(payload) else {
            return self.unknown_statement(payload, "mysqld_stmt_fetch").await;
        };
        self.send_upstream(payload).await?;
        let columns = self.prepared.get(&id).map_or(&[][..], |p| &p.columns);
        self.masker.set_columns(columns);
        let started = Instant::now();
        let mut tally = ResultTally::default();
        loop {
            let packet = self.read_upstream().await?;
            match packet.payload.first() {
                Some(&ERR_HEADER) => {
                    self.record_error(&packet.payload);
                    return self.relay_single(packet).await;
                }
                _ if ends_result_set(&packet.payload, self.capabilities) => {
                    self.client.write_packet(&packet.payload);
                    self.record_result("FETCH", &mut tally, started);
                    return self.flush_client().await;
                }
                _ => {
                    self.relay_row(&packet.payload, Rows::Binary, &mut tally)
                        .await?
                }
            }
        }
    }

    async fn send_long_data(&mut self, payload: &[u8]) -> Step {
        // No response, whatever happens: the server reports a problem at
        // the execute. Data for a statement Airlock never prepared is
        // dropped; the execute then fails as unknown.
        if self.statement_id(payload).is_some() {
            self.send_upstream(payload).await?;
        }
        Ok(())
    }

    async fn close_statement(&mut self, payload: &[u8]) -> Step {
        if let Some(id) = self.statement_id(payload) {
            self.prepared.remove(&id);
            self.send_upstream(payload).await?;
        }
        Ok(())
    }

    /// A query that is exactly `KILL QUERY <id>`: MySQL's way to cancel a
    /// statement (drivers send it on a second connection), so it is
    /// Airlock's CancelRequest and not judged as server administration. It
    /// is recorded as such; whether the id is the identity's own is checked
    /// by [`Relay::kill`].
    fn cancel_request(&self, sql: &[u8]) -> Option<Kill> {
        // Every query passes here: only one that names KILL at all is
        // classified (the gate's cached classification comes later).
        if !crate::sql::contains_ignore_case(sql, b"kill") {
            return None;
        }
        let text = std::str::from_utf8(sql).ok()?;
        let classification = crate::sql::classify(text, crate::sql::Dialect::Mysql);
        let kill = kill_statement(&classification).filter(|k| k.query_only)?;
        let logged = self
            .gate
            .masker()
            .mask_statement(text, crate::sql::Dialect::Mysql);
        self.gate.audit().record(AuditEvent::Statement {
            session: &self.session.id,
            sql: &logged,
            origin: Origin::SimpleQuery,
            classes: classification.classes(),
            objects: &[],
            action: "allow",
            rule: "(cancel of the identity's own statement)",
        });
        Some(kill)
    }

    /// `KILL QUERY <id>` of one of the identity's own connections to this
    /// gateway: the statement running for it upstream (or its hold) is
    /// cancelled. Anything else KILL asks for is refused.
    async fn kill(&mut self, kill: Kill) -> Step {
        let Kill { query_only, id } = kill;
        let target = self.shared.kills.lookup(id);
        match target {
            Some((upstream_id, identity, cancel)) if query_only && identity == self.identity.name => {
                cancel.send_modify(|n| *n += 1);
                if let Err(e) = super::upstream::kill_query(&self.shared.upstream, upstream_id).await
                {
                    tracing::warn!(error = %e, "KILL QUERY could not reach the upstream");
                }
                self.ok_to_client(0).await
            }
            Some(_) if !query_only => {
                self.refuse(
                    1095,
                    "HY000",
                    &format!("Airlock allows only KILL QUERY of your own connections, not KILL CONNECTION {id}"),
                )
                .await
            }
            // No such gateway connection: the server's own answer, word for
            // word, so that drivers which treat "already gone" as success
            // (a cancel racing the end of its statement) behave as directly.
            None => {
                self.refuse(1094, "HY000", &format!("Unknown thread id: {id}"))
                    .await
            }
            Some(_) => {
                let message = format!(
                    "You are not owner of thread {id} (Airlock lets an identity kill only its own connections' queries)"
                );
                self.refuse(1095, "HY000", &message).await
            }
        }
    }

    // ---- holds --------------------------------------------------------

    /// Whether `checked` may run now; for a held statement, waits for its
    /// decision (the query simply waits: MySQL has no notice channel).
    async fn clear(&mut self, checked: &Checked, sql: &[u8]) -> Result<(), Refusal> {
        if checked.allowed() {
            return Ok(());
        }
        let id = self.release(checked, sql).await?;
        self.released = Some(Released::new(id));
        Ok(())
    }

    /// Waits for a held statement's decision; the id of the request that
    /// released it.
    async fn release(&mut self, checked: &Checked, sql: &[u8]) -> Result<String, Refusal> {
        if !self.gate.waits_for_approval(checked) {
            return Err(checked.refusal().unwrap_or_else(not_allowed));
        }
        if Gate::is_deferred(checked) {
            return self
                .gate
                .release_deferred(
                    &self.session,
                    checked,
                    sql,
                    self.impact(checked, sql),
                    &self.statements,
                )
                .await;
        }
        let impact = self.impact(checked, sql).await;
        let (request, _notice) = self
            .gate
            .hold(&self.session, checked, sql, impact, &self.statements)
            .await?;
        let reply_seq = self.client.seq();
        let Relay {
            client,
            upstream,
            shutdown,
            cancelled,
            gate,
            session,
            stash,
            ..
        } = self;
        cancelled.borrow_and_update();
        let withdraw = async {
            loop {
                tokio::select! {
                    _ = cancelled.changed() => return "the client cancelled the statement (KILL QUERY)".to_string(),
                    _ = shutdown.wait_for(|stop| *stop) => return "Airlock is shutting down".to_string(),
                    // The server sends nothing unasked on an idle connection
                    // but its last words (an error such as "connection was
                    // killed", or the close itself): the held statement could
                    // no longer run there.
                    _ = upstream.packets.read() => {
                        session.ending.set("the database connection was lost");
                        return "the database connection was lost".to_string();
                    }
                    read = next_command(client), if stash.len() < MAX_STASHED => match read {
                        Ok(Some(packet)) => {
                            let quit = packet.payload.first() == Some(&COM_QUIT);
                            stash.push_back((packet, client.seq()));
                            if quit {
                                return "the client quit".to_string();
                            }
                        }
                        Ok(None) | Err(_) => return "the client disconnected".to_string(),
                    },
                }
            }
        };
        let released = gate.await_release(session, &request, withdraw).await;
        self.client.set_seq(reply_seq);
        released
    }

    /// What the server plans for a held statement, for the approvers:
    /// `EXPLAIN` on another connection, for the statements
    /// [`crate::sql::explainable`] admits; values in the plan masked like
    /// the statement. `None` when not safe or not possible.
    async fn impact(&self, checked: &Checked, sql: &[u8]) -> Option<String> {
        let text = crate::sql::explainable(&checked.classification, sql, Dialect::Mysql)?;
        let read_only = !checked
            .classification
            .classes()
            .contains(StatementClass::Write);
        let database = Some(self.session.database.as_str());
        let plan = upstream::explain(
            &self.shared.upstream,
            database,
            text,
            read_only,
            IMPACT_LIMIT,
        )
        .await;
        match plan {
            Ok(plan) => Some(self.gate.masker().mask_sql_literals(&plan)),
            Err(e) => {
                tracing::debug!(session = %self.session.id, error = %e, "no impact estimate");
                None
            }
        }
    }

    // ---- responses ----------------------------------------------------

    /// Relays a whole response to COM_QUERY or COM_STMT_EXECUTE: result
    /// sets and OKs, as many as the server announces. Returns whether it
    /// ended without an error.
    async fn relay_results(&mut self, rows: Rows, statement: Option<u32>) -> Result<bool, Broken> {
        loop {
            let started = Instant::now();
            let first = self.read_upstream().await?;
            match first.payload.first() {
                Some(&OK_HEADER) => {
                    let mut ok = OkPacket::parse(&first.payload, self.capabilities)
                        .map_err(|_| Broken::Upstream)?;
                    // The human-readable info ("Rows matched: 1 …") is
                    // the server's text, and tracked session state holds
                    // values the session computed: both masked as the
                    // server's messages are.
                    let info = self.masker.mask_message_text(&ok.info);
                    let state = ok
                        .session_state
                        .as_deref()
                        .and_then(|s| self.masker.mask_session_state(s));
                    if info.is_some() || state.is_some() {
                        if let Some(info) = info {
                            ok.info = info;
                        }
                        if let Some(state) = state {
                            ok.session_state = Some(state);
                        }
                        self.client
                            .write_with(|b| ok.write(b, self.capabilities, false));
                    } else {
                        self.client.write_packet(&first.payload);
                    }
                    let tag = format!("OK {} rows affected", ok.affected_rows);
                    self.record_result(&tag, &mut ResultTally::default(), started);
                    if ok.status & SERVER_MORE_RESULTS_EXISTS == 0 {
                        self.flush_client().await?;
                        return Ok(true);
                    }
                }
                Some(&ERR_HEADER) => {
                    self.record_error(&first.payload);
                    self.relay_single(first).await?;
                    return Ok(false);
                }
                Some(&LOCAL_INFILE_HEADER) => {
                    self.refuse_local_infile().await?;
                    return Ok(false);
                }
                _ => {
                    let more = self
                        .relay_result_set(first, rows, statement, started)
                        .await?;
                    match more {
                        Some(true) => {}
                        Some(false) => {
                            self.flush_client().await?;
                            return Ok(true);
                        }
                        None => return Ok(false),
                    }
                }
            }
        }
    }

    /// One result set after its column count; `Some(more results follow)`,
    /// or `None` when it ended in an error.
    async fn relay_result_set(
        &mut self,
        first: Packet,
        rows: Rows,
        statement: Option<u32>,
        started: Instant,
    ) -> Result<Option<bool>, Broken> {
        let count = Fields::new(&first.payload)
            .lenenc_int()
            .map_err(|_| Broken::Upstream)?;
        self.client.write_packet(&first.payload);
        let mut columns = Vec::with_capacity(count.min(4096) as usize);
        for _ in 0..count {
            let p = self.read_upstream().await?;
            columns.push(column_of(&p.payload, self.extended_metadata()));
            self.write_column_definition(&p.payload);
        }
        if self.capabilities & CLIENT_DEPRECATE_EOF == 0 {
            let eof = self.read_upstream().await?;
            self.client.write_packet(&eof.payload);
            // An execute that opened a cursor: rows come with fetches.
            if status_of(&eof.payload) & SERVER_STATUS_CURSOR_EXISTS != 0 {
                self.remember_columns(statement, columns);
                return Ok(Some(false));
            }
        }
        self.masker.set_columns(&columns);
        let mut tally = ResultTally::default();
        loop {
            let packet = self.read_upstream().await?;
            match packet.payload.first() {
                // An ERR in place of a row: the statement was interrupted
                // (KILL QUERY) or failed half-way.
                Some(&ERR_HEADER) => {
                    self.record_error(&packet.payload);
                    self.relay_single(packet).await?;
                    return Ok(None);
                }
                _ if ends_result_set(&packet.payload, self.capabilities) => {
                    let status = status_of(&packet.payload);
                    self.client.write_packet(&packet.payload);
                    if status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                        self.remember_columns(statement, columns);
                    }
                    self.record_result(&format!("SELECT {}", tally.rows), &mut tally, started);
                    return Ok(Some(status & SERVER_MORE_RESULTS_EXISTS != 0));
                }
                _ => self.relay_row(&packet.payload, rows, &mut tally).await?,
            }
        }
    }

    async fn relay_row(&mut self, payload: &Bytes, rows: Rows, tally: &mut ResultTally) -> Step {
        let outcome = match rows {
            Rows::Text => self.masker.mask_text_row(payload),
            Rows::Binary => self.masker.mask_binary_row(payload),
        };
        let sent = outcome.frame_or(payload);
        tally.row(sent);
        if rows == Rows::Text && tally.captured.len() < self.capture_rows {
            tally.captured.push(text_values(sent));
        }
        self.client.write_packet(sent);
        if self.client.pending() >= FLUSH_AT {
            self.flush_client().await?;
        }
        Ok(())
    }

    /// Forwards a column definition with its names masked.
    fn write_column_definition(&mut self, payload: &Bytes) {
        match self.masker.mask_column_definition(payload) {
            Some(masked) => self.client.write_packet(&masked),
            None => self.client.write_packet(payload),
        }
    }

    fn remember_columns(&mut self, statement: Option<u32>, columns: Vec<MysqlColumn>) {
        if let Some(p) = statement.and_then(|id| self.prepared.get_mut(&id)) {
            p.columns = columns;
        }
    }

    /// The server asked for a local file although the capability was never
    /// negotiated: it gets an empty file, the agent an error.
    async fn refuse_local_infile(&mut self) -> Step {
        self.upstream.packets.write_packet(&[]);
        self.upstream
            .packets
            .flush()
            .await
            .map_err(|_| Broken::Upstream)?;
        let _ = self.read_upstream().await?;
        self.refuse(
            1148,
            "42000",
            "LOAD DATA LOCAL INFILE is not allowed through Airlock",
        )
        .await
    }

    async fn forward_single(&mut self, payload: &[u8]) -> Step {
        self.send_upstream(payload).await?;
        let reply = self.read_upstream().await?;
        self.relay_single(reply).await
    }

    /// Sends one upstream packet to the client (an ERR with its message
    /// masked) and flushes.
    async fn relay_single(&mut self, packet: Packet) -> Step {
        if packet.payload.first() == Some(&ERR_HEADER) {
            if let Ok(mut err) = ErrPacket::parse(&packet.payload) {
                if let Some(masked) = self.masker.mask_message_text(err.message.as_bytes()) {
                    err.message = String::from_utf8_lossy(&masked).into_owned();
                    self.client.write_with(|b| err.write(b, self.capabilities));
                    return self.flush_client().await;
                }
            }
        }
        self.client.write_packet(&packet.payload);
        self.flush_client().await
    }

    // ---- plumbing -----------------------------------------------------

    async fn send_upstream(&mut self, payload: &[u8]) -> Step {
        self.upstream.packets.reset();
        self.upstream.packets.write_packet(payload);
        crate::metrics::get().relayed(
            crate::gate::Protocol::Mysql,
            crate::metrics::Direction::ToUpstream,
            self.upstream.packets.pending(),
        );
        self.upstream
            .packets
            .flush()
            .await
            .map_err(|_| Broken::Upstream)
    }

    async fn read_upstream(&mut self) -> Result<Packet, Broken> {
        match self.upstream.packets.read().await {
            Ok(Some(p)) => Ok(p),
            Ok(None) | Err(_) => {
                // Tell the agent why its statement did not finish.
                let err = ErrPacket::new(
                    2013,
                    "HY000",
                    "Airlock lost the connection to the upstream server during the query",
                );
                self.client.write_with(|b| err.write(b, self.capabilities));
                let _ = self.client.flush().await;
                Err(Broken::Upstream)
            }
        }
    }

    async fn flush_client(&mut self) -> Step {
        crate::metrics::get().relayed(
            crate::gate::Protocol::Mysql,
            crate::metrics::Direction::ToClient,
            self.client.pending(),
        );
        let flushed = self.client.flush().await.map_err(|_| Broken::Client);
        self.record_finished();
        flushed
    }

    async fn ok_to_client(&mut self, affected: u64) -> Step {
        let ok = OkPacket {
            affected_rows: affected,
            last_insert_id: 0,
            status: self.upstream.status,
            warnings: 0,
            info: Vec::new(),
            session_state: None,
        };
        self.client
            .write_with(|b| ok.write(b, self.capabilities, false));
        self.flush_client().await
    }

    async fn refuse(&mut self, code: u16, sqlstate: &str, message: &str) -> Step {
        let err = ErrPacket::new(code, sqlstate, message);
        self.client.write_with(|b| err.write(b, self.capabilities));
        self.flush_client().await
    }

    async fn refuse_with(&mut self, refusal: &Refusal) -> Step {
        let (code, sqlstate) = mysql_error_of(refusal);
        self.refuse(code, sqlstate, &refusal.message).await
    }

    /// The server's own refusal of a statement id it does not know, word
    /// for word (`what` names the command as MariaDB does), so that drivers
    /// which match on it behave as they would directly.
    async fn unknown_statement(&mut self, payload: &[u8], what: &str) -> Step {
        let id = payload
            .get(1..)
            .and_then(|rest| Fields::new(rest).u32().ok())
            .unwrap_or(0);
        let message = format!("Unknown prepared statement handler ({id}) given to {what}");
        self.refuse(1243, "HY000", &message).await
    }

    async fn protocol_error(&mut self, e: &PacketError) {
        let err = match e {
            PacketError::TooLarge { len, limit } => ErrPacket::new(
                1153,
                "08S01",
                format!("Got a packet bigger than Airlock's limit ({len} > {limit} bytes; mysql.max_packet_bytes)"),
            ),
            PacketError::SequenceMismatch { expected, got } => ErrPacket::new(
                1156,
                "08S01",
                format!("Got packets out of order (sequence id {got}, expected {expected})"),
            ),
            PacketError::Io(_) => return,
            other => ErrPacket::new(1047, "08S01", format!("Malformed packet: {other}")),
        };
        self.client.reset();
        self.client.write_with(|b| err.write(b, self.capabilities));
        let _ = self.client.flush().await;
    }

    /// Whether column definitions carry MariaDB's extended metadata block.
    fn extended_metadata(&self) -> bool {
        self.upstream.mariadb_capabilities & MARIADB_CLIENT_EXTENDED_METADATA != 0
    }

    fn statement_id(&self, payload: &[u8]) -> Option<u32> {
        let id = Fields::new(payload.get(1..)?).u32().ok()?;
        self.prepared.contains_key(&id).then_some(id)
    }

    fn database_refused(&self, db: &str) -> String {
        format!(
            "Access denied for user '{}' to database '{db}' (not among the identity's databases in Airlock)",
            self.identity.name
        )
    }

    /// Notes a result for its audit record, written once the client has
    /// been sent it (see [`Unrecorded`]).
    fn record_result(&mut self, tag: &str, tally: &mut ResultTally, started: Instant) {
        let took = started.elapsed();
        if let Some(released) = &mut self.released {
            released.ran(format!("{tag} in {:.1} ms", took.as_secs_f64() * 1000.0));
        }
        let masked = self.masker.take_stats();
        // Learned now, before the client's next statement: only the
        // record waits.
        self.gate.learn_masked(&masked);
        self.finished.result(tag.to_string(), took, masked, tally);
        if self.finished.is_full() {
            self.record_finished();
        }
    }

    fn record_error(&mut self, payload: &[u8]) {
        let Ok(err) = ErrPacket::parse(payload) else {
            return;
        };
        let message = self.gate.masker().mask_sql_literals(&err.message);
        let code = format!("{} ({})", err.code, err.sqlstate());
        if let Some(released) = &mut self.released {
            released.failed(format!("{code} {message}"));
        }
        self.finished.error(code, message);
        if self.finished.is_full() {
            self.record_finished();
        }
    }

    /// Writes the audit records of the statements that finished: after
    /// each write to the client, and when the session ends.
    pub fn record_finished(&mut self) {
        self.finished.record(self.gate.audit(), &self.session.id);
    }
}

/// The client's next command, read while a statement waits for approval.
async fn next_command(client: &mut PacketStream<Stream>) -> Result<Option<Packet>, PacketError> {
    client.reset();
    client.read().await
}

/// The (code, SQLSTATE) a MySQL client sees for a gate refusal.
fn mysql_error_of(refusal: &Refusal) -> (u16, &'static str) {
    match refusal.code {
        "42501" => (1227, "42000"),
        "57014" => (1317, "70100"),
        "53100" => (1290, "HY000"),
        // ER_USER_LIMIT_REACHED: over the identity's statement rate.
        "53400" => (1226, "42000"),
        // ER_NOT_SUPPORTED_YET: a client character set Airlock cannot read.
        "0A000" => (1235, "42000"),
        _ => (1105, "HY000"),
    }
}

/// Airlock's own refusal of `LOAD DATA LOCAL INFILE` (see
/// [`crate::sql::local_infile`]), answered as MariaDB answers a command
/// it does not allow: ER_NOT_ALLOWED_COMMAND, before the server could ask
/// the client for a file.
fn local_infile_refused(checked: &Checked) -> Option<&str> {
    (checked.decision.rule == LOCAL_INFILE_RULE)
        .then_some(checked.unsupported.as_deref())
        .flatten()
}

fn not_allowed() -> Refusal {
    Refusal {
        code: "42501",
        message: "statement not allowed".into(),
    }
}

fn column_of(payload: &[u8], extended_metadata: bool) -> MysqlColumn {
    // A definition Airlock cannot read is given an unknown type, so its
    // values are masked by content (fail closed), never skipped.
    parse_column_definition_with(payload, extended_metadata)
        .unwrap_or_else(|| MysqlColumn::unknown("(unreadable column)"))
}

/// Status flags of an EOF packet or of an OK that ends a result set.
fn status_of(payload: &[u8]) -> u16 {
    if is_eof(payload) && payload.len() >= 5 {
        return u16::from_le_bytes([payload[3], payload[4]]);
    }
    let mut f = Fields::new(payload.get(1..).unwrap_or_default());
    let _ = f.lenenc_int();
    let _ = f.lenenc_int();
    f.u16().unwrap_or(0)
}

/// A `KILL [QUERY | CONNECTION] <id>` statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kill {
    query_only: bool,
    id: u32,
}

/// The query's KILL, when it is exactly one KILL statement. A KILL among
/// other statements is left to the gate (and refused by default policy).
fn kill_statement(classification: &crate::sql::Classification) -> Option<Kill> {
    let [one] = classification.statements.as_slice() else {
        return None;
    };
    let rest = strip_keyword(&one.text, "KILL")?;
    let rest = rest.trim().trim_end_matches(';').trim();
    let (query_only, id) = if let Some(r) = strip_keyword(rest, "QUERY") {
        (true, r.trim())
    } else if let Some(r) = strip_keyword(rest, "CONNECTION") {
        (false, r.trim())
    } else {
        (false, rest)
    };
    Some(Kill {
        query_only,
        id: id.parse().ok()?,
    })
}

/// The rest of `text` after a leading keyword (any case, then a space).
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(|c: char| c.is_ascii_whitespace()))
        .then_some(rest)
}

fn command_name(command: u8) -> &'static str {
    match command {
        COM_SLEEP => "COM_SLEEP",
        0x05 => "COM_CREATE_DB",
        0x06 => "COM_DROP_DB",
        0x07 => "COM_REFRESH",
        0x08 => "COM_SHUTDOWN",
        0x0a => "COM_PROCESS_INFO",
        0x0b => "COM_CONNECT",
        0x0d => "COM_DEBUG",
        0x0f => "COM_TIME",
        0x10 => "COM_DELAYED_INSERT",
        0x1d => "COM_DAEMON",
        0xfa => "COM_STMT_BULK_EXECUTE",
        _ => "unknown",
    }
}

impl KillMap {
    /// (upstream connection id, identity, cancel signal) of a gateway
    /// connection id.
    fn lookup(&self, id: u32) -> Option<(u32, String, watch::Sender<u64>)> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .map(|e| (e.upstream_id, e.identity.clone(), e.cancel.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_need_a_space_after_them() {
        assert_eq!(strip_keyword("use db", "USE"), Some(" db"));
        assert_eq!(strip_keyword("USEdb", "USE"), None);
        assert_eq!(strip_keyword("US", "USE"), None);
        assert_eq!(strip_keyword("ÜSE db", "USE"), None);
    }

    #[test]
    fn text_rows_decode_for_capture() {
        let row = [3, b'a', b'b', b'c', 0xFB, 0];
        assert_eq!(
            text_values(&row),
            vec![Some("abc".to_string()), None, Some(String::new())]
        );
    }
}
