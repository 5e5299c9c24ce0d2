//! Byte-level differential testing of two PostgreSQL endpoints.
//!
//! The claim under test is "a client cannot tell the gateway from the database
//! by what comes back on the wire". So every case replays the same frontend
//! byte sequence on a fresh session against each endpoint and demands the same
//! backend messages, tag and body, in the same order. The few places where two
//! sessions on one server *must* differ are normalised (see [`normalise`]);
//! everything else is strict, including error texts, notices and the
//! ParameterStatus messages a SET produces.
//!
//! The corpus avoids what would differ for reasons that have nothing to do with
//! a relay: it never calls now(), random() or pg_backend_pid() in a way that
//! reaches the output, every table or type it creates is TEMP, and its
//! LISTEN/NOTIFY channel name is unique per `corpus()` call, so sessions (and
//! concurrent test runs on the same server) do not see each other.
//!
//! Cases run one after the other, the direct session fully before the
//! gateway session, so the two sessions of a case never overlap.
//! Set `DIFF_CASES=substring[,substring...]` to run only the cases whose
//! names contain one of the substrings.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use super::wire::{escape_bytes, BackendMsg, Frontend, Wire, BINARY, TEXT};

/// Where to connect and as whom. The two endpoints of a comparison may use
/// different credentials and database names (a gateway may have its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: String,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl Endpoint {
    pub fn new(addr: &str, user: &str, password: &str, database: &str) -> Self {
        Endpoint {
            addr: addr.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
            database: database.to_owned(),
        }
    }

    pub async fn connect(&self, extra_params: &[(&str, &str)]) -> io::Result<Wire> {
        Wire::connect(
            &self.addr,
            &self.user,
            &self.password,
            &self.database,
            extra_params,
        )
        .await
    }
}

/// One scripted action on a session. Sends and receives are separate steps
/// because protocol behaviour that matters (Flush, COPY, pipelining) depends
/// on what the client sends *before* it has read the reply.
#[derive(Clone, Debug)]
pub enum Step {
    /// Encode all messages into one buffer and write it in one go.
    Send(Vec<Frontend>),
    /// Write bytes exactly as given.
    SendRaw(Vec<u8>),
    /// Write bytes in pieces of `chunk` bytes with a 1 ms pause in between.
    SendChunked {
        bytes: Vec<u8>,
        chunk: usize,
    },
    /// Record messages through the next ReadyForQuery.
    UntilReady,
    /// Record messages through the first one with this tag.
    UntilTag(u8),
    /// Record exactly this many messages.
    Count(usize),
    /// Record messages until the server closes the connection.
    UntilClosed,
    /// On a separate session to the same endpoint, run `NOTIFY channel, payload`.
    /// That session's own messages are not recorded.
    NotifyFromOtherSession {
        channel: String,
        payload: String,
    },
    /// Send a CancelRequest for this session (over a new connection).
    Cancel,
    Sleep(Duration),
}

/// A named script. Each case gets a fresh session per endpoint, started with
/// `startup` as extra startup parameters.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub startup: Vec<(String, String)>,
    pub steps: Vec<Step>,
}

/// What a session produced: a backend message, or the server closing the
/// connection.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    Msg(BackendMsg),
    Closed,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Msg(m) => m.fmt(f),
            Event::Closed => f.write_str("<connection closed by server>"),
        }
    }
}

/// An event plus the index of the step that produced it (for diagnostics only;
/// not compared). Index `steps.len()` is the implicit final Terminate.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub step: usize,
    pub event: Event,
}

/// Everything observed on one endpoint for one case.
#[derive(Debug)]
pub struct Transcript {
    pub params: HashMap<String, String>,
    /// Startup messages other than ParameterStatus (notices, ReadyForQuery...).
    pub startup_other: Vec<BackendMsg>,
    pub events: Vec<Recorded>,
    /// Whether the startup handshake completed.
    pub connected: bool,
    /// The step at which the session broke off, and why.
    pub failure: Option<(usize, String)>,
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// Runs every corpus case against both endpoints and panics listing each case
/// whose normalised message streams differ.
pub async fn run_corpus(direct: &Endpoint, through: &Endpoint) {
    run_cases(direct, through, corpus()).await;
}

/// Like [`run_corpus`] for a caller-chosen set of cases (e.g. the corpus minus
/// cases for features the gateway deliberately refuses). Honours
/// `DIFF_CASES`.
pub async fn run_cases(direct: &Endpoint, through: &Endpoint, cases: Vec<Case>) {
    let filters: Vec<String> = std::env::var("DIFF_CASES")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.name.contains(f.as_str())))
        .collect();
    assert!(
        !cases.is_empty(),
        "no differential case to run (DIFF_CASES={filters:?})"
    );
    let mut failures = Vec::new();
    for case in &cases {
        match run_case(direct, through, case).await {
            Ok(()) => eprintln!("differential case {} ok", case.name),
            Err(report) => {
                eprintln!("differential case {} FAILED", case.name);
                failures.push(report);
            }
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} differential cases failed:\n\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n\n")
        );
    }
}

/// Runs one case on both endpoints; `Err` carries a readable report.
pub async fn run_case(direct: &Endpoint, through: &Endpoint, case: &Case) -> Result<(), String> {
    let mut d = run_session(direct, case).await;
    if let Some((step, err)) = &d.failure {
        return Err(format!(
            "case `{}`: failed against the DIRECT endpoint at {}: {err}\n\
             (a corpus or environment problem, not a gateway difference)",
            case.name,
            step_label(case, *step)
        ));
    }
    let mut t = run_session(through, case).await;
    normalise(&mut d.events);
    normalise(&mut t.events);
    compare(case, &d, &t, direct.user == through.user)
}

/// Plays `case` against one endpoint and records everything it sends back.
pub async fn run_session(ep: &Endpoint, case: &Case) -> Transcript {
    let startup: Vec<(&str, &str)> = case
        .startup
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut transcript = Transcript {
        params: HashMap::new(),
        startup_other: Vec::new(),
        events: Vec::new(),
        connected: false,
        failure: None,
    };
    let mut wire = match ep.connect(&startup).await {
        Ok(w) => w,
        Err(e) => {
            transcript.failure = Some((0, format!("connect to {}: {e}", ep.addr)));
            return transcript;
        }
    };
    transcript.connected = true;
    transcript.params = wire.params().clone();
    transcript.startup_other = wire
        .startup_messages()
        .iter()
        .filter(|m| m.tag != b'S')
        .cloned()
        .collect();

    let mut closed = false;
    for (i, step) in case.steps.iter().enumerate() {
        if let Err(e) = run_step(ep, &mut wire, step, i, &mut transcript.events, &mut closed).await
        {
            transcript.failure = Some((i, e.to_string()));
            return transcript;
        }
    }
    // End every case with Terminate and read to EOF, so that stray trailing
    // messages and a relay that does not close the connection both show up.
    if !closed {
        let end = case.steps.len();
        let result = async {
            wire.send(Frontend::Terminate).await?;
            record_until_closed(&mut wire, end, &mut transcript.events).await
        }
        .await;
        if let Err(e) = result {
            transcript.failure = Some((end, e.to_string()));
        }
    }
    transcript
}

async fn run_step(
    ep: &Endpoint,
    wire: &mut Wire,
    step: &Step,
    i: usize,
    events: &mut Vec<Recorded>,
    closed: &mut bool,
) -> io::Result<()> {
    let record = |events: &mut Vec<Recorded>, msg: BackendMsg| {
        events.push(Recorded {
            step: i,
            event: Event::Msg(msg),
        })
    };
    match step {
        Step::Send(msgs) => wire.send_all(msgs).await?,
        Step::SendRaw(bytes) => wire.send_raw(bytes).await?,
        Step::SendChunked { bytes, chunk } => {
            wire.send_raw_chunked(bytes, *chunk, Duration::from_millis(1))
                .await?
        }
        Step::UntilReady | Step::UntilTag(_) => {
            let tag = match step {
                Step::UntilTag(t) => *t,
                _ => b'Z',
            };
            loop {
                let msg = wire.recv().await?;
                let done = msg.tag == tag;
                record(events, msg);
                if done {
                    break;
                }
            }
        }
        Step::Count(n) => {
            for _ in 0..*n {
                record(events, wire.recv().await?);
            }
        }
        Step::UntilClosed => {
            record_until_closed(wire, i, events).await?;
            *closed = true;
        }
        Step::NotifyFromOtherSession { channel, payload } => {
            let mut side = ep.connect(&[]).await?;
            let sql = format!("NOTIFY {channel}, '{}'", payload.replace('\'', "''"));
            let reply = side.simple_query(&sql).await?;
            if let Some(err) = reply.iter().find(|m| m.is_error()) {
                return Err(io::Error::other(format!(
                    "side session NOTIFY failed: {err:?}"
                )));
            }
            side.terminate().await?;
        }
        Step::Cancel => wire.cancel().await?,
        Step::Sleep(d) => tokio::time::sleep(*d).await,
    }
    Ok(())
}

async fn record_until_closed(
    wire: &mut Wire,
    step: usize,
    events: &mut Vec<Recorded>,
) -> io::Result<()> {
    loop {
        match wire.recv_or_eof().await {
            Ok(Some(msg)) => events.push(Recorded {
                step,
                event: Event::Msg(msg),
            }),
            Ok(None) => break,
            // The server may reset rather than close after a FATAL error
            // while our Terminate is in flight; that is still "closed".
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    events.push(Recorded {
        step,
        event: Event::Closed,
    });
    Ok(())
}

// ---------------------------------------------------------------------------
// Normalisation and comparison
// ---------------------------------------------------------------------------

/// OIDs at or above this are assigned at run time (FirstNormalObjectId);
/// below it they are fixed by initdb and identical for every session.
const FIRST_NORMAL_OID: u32 = 16384;

/// Rewrites, in place, the parts of a transcript that legitimately differ
/// between two sessions on the same server:
///
/// * NotificationResponse sender pid → 0 (every session has its own backend).
/// * `pg_temp_<n>` / `pg_toast_temp_<n>` in ErrorResponse/NoticeResponse
///   (schema field and texts) → `pg_temp_N`: the temp schema is per backend slot.
/// * OIDs >= 16384 in RowDescription (table and type OIDs) and
///   ParameterDescription → renumbered in order of first appearance. TEMP
///   tables and pg_temp types get new OIDs in every session; renumbering keeps
///   the structure (same OID in two places stays the same) comparable.
///
/// BackendKeyData never reaches a transcript (it is consumed at startup).
pub fn normalise(events: &mut [Recorded]) {
    let mut oids: HashMap<u32, u32> = HashMap::new();
    for rec in events.iter_mut() {
        let Event::Msg(msg) = &mut rec.event else {
            continue;
        };
        match msg.tag {
            b'A' if msg.body.len() >= 4 => msg.body[..4].copy_from_slice(&[0; 4]),
            b'E' | b'N' => msg.body = mask_temp_schema(&msg.body),
            b'T' => renumber_row_description(&mut msg.body, &mut oids),
            b't' => renumber_parameter_description(&mut msg.body, &mut oids),
            _ => {}
        }
    }
}

fn renumber(oid: u32, oids: &mut HashMap<u32, u32>) -> u32 {
    if oid < FIRST_NORMAL_OID {
        return oid;
    }
    let next = FIRST_NORMAL_OID + oids.len() as u32;
    *oids.entry(oid).or_insert(next)
}

fn rewrite_u32(body: &mut [u8], at: usize, oids: &mut HashMap<u32, u32>) -> Option<()> {
    let bytes: [u8; 4] = body.get(at..at + 4)?.try_into().ok()?;
    let new = renumber(u32::from_be_bytes(bytes), oids);
    body[at..at + 4].copy_from_slice(&new.to_be_bytes());
    Some(())
}

/// Malformed bodies are left alone: the comparison will then show them as-is.
fn renumber_row_description(body: &mut [u8], oids: &mut HashMap<u32, u32>) {
    let mut work = body.to_vec();
    let ok = (|| {
        let n = i16::from_be_bytes(work.get(0..2)?.try_into().ok()?);
        let mut pos = 2;
        for _ in 0..n {
            pos += work.get(pos..)?.iter().position(|&b| b == 0)? + 1; // name
            rewrite_u32(&mut work, pos, oids)?; // table oid
            rewrite_u32(&mut work, pos + 6, oids)?; // type oid (after attnum)
            pos += 4 + 2 + 4 + 2 + 4 + 2;
        }
        (pos == work.len()).then_some(())
    })();
    if ok.is_some() {
        body.copy_from_slice(&work);
    }
}

fn renumber_parameter_description(body: &mut [u8], oids: &mut HashMap<u32, u32>) {
    let mut work = body.to_vec();
    let ok = (|| {
        let n = i16::from_be_bytes(work.get(0..2)?.try_into().ok()?);
        for i in 0..n.max(0) as usize {
            rewrite_u32(&mut work, 2 + 4 * i, oids)?;
        }
        (2 + 4 * n.max(0) as usize == work.len()).then_some(())
    })();
    if ok.is_some() {
        body.copy_from_slice(&work);
    }
}

fn mask_temp_schema(body: &[u8]) -> Vec<u8> {
    const PREFIXES: [&[u8]; 2] = [b"pg_toast_temp_", b"pg_temp_"];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    'outer: while i < body.len() {
        for p in PREFIXES {
            if body[i..].starts_with(p) {
                let digits = body[i + p.len()..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits > 0 {
                    out.extend_from_slice(p);
                    out.push(b'N');
                    i += p.len() + digits;
                    continue 'outer;
                }
            }
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// Whether `through` is the gateway's own ErrorResponse for the condition
/// the server reported in `direct`: the same SQLSTATE, and none of the
/// server's source-location fields (F, L, R), which only a server sets. The
/// gateway refuses some requests itself rather than forwarding them.
fn same_refusal(direct: &Event, through: &Event) -> bool {
    let (Event::Msg(d), Event::Msg(t)) = (direct, through) else {
        return false;
    };
    if !(d.is_error() && t.is_error()) {
        return false;
    }
    let (Some(df), Some(tf)) = (d.fields(), t.fields()) else {
        return false;
    };
    df.get(&b'C') == tf.get(&b'C') && ![b'F', b'L', b'R'].iter().any(|k| tf.contains_key(k))
}

fn compare(case: &Case, d: &Transcript, t: &Transcript, same_user: bool) -> Result<(), String> {
    let name = &case.name;
    if !t.connected {
        let err = t
            .failure
            .as_ref()
            .map_or("unknown error", |(_, e)| e.as_str());
        return Err(format!(
            "case `{name}`: through endpoint refused the session that direct accepted: {err}\n  \
             startup parameters: {:?}",
            case.startup
        ));
    }
    let mut report = String::new();

    // Startup: the gateway may authenticate differently, but what follows
    // authentication must look the same. If the endpoints use different user
    // names, session_authorization necessarily differs.
    let mut keys: Vec<&String> = d.params.keys().chain(t.params.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if !same_user && k == "session_authorization" {
            continue;
        }
        let (dv, tv) = (d.params.get(k), t.params.get(k));
        // Airlock names the agent's session in front of the client's own
        // application_name (airlock:<identity>:<session>[:<client's>]).
        if k == "application_name" {
            let kept = match (dv.map(String::as_str), tv) {
                (Some("") | None, Some(tv)) => {
                    tv.starts_with("airlock:") && tv.matches(':').count() == 2
                }
                (Some(dv), Some(tv)) => {
                    tv.starts_with("airlock:") && tv.ends_with(&format!(":{dv}"))
                }
                (_, None) => false,
            };
            if !kept {
                let _ = writeln!(
                    report,
                    "  startup ParameterStatus {k:?}: direct {dv:?}, through {tv:?} (want airlock:<identity>:<session>[:direct])"
                );
            }
            continue;
        }
        if dv != tv {
            let _ = writeln!(
                report,
                "  startup ParameterStatus {k:?}: direct {dv:?}, through {tv:?}"
            );
        }
    }
    if d.startup_other != t.startup_other {
        let _ = writeln!(
            report,
            "  startup messages (besides ParameterStatus) differ:\n    direct : {:?}\n    through: {:?}",
            d.startup_other, t.startup_other
        );
    }
    if !report.is_empty() {
        return Err(format!("case `{name}`: startup differs\n{report}"));
    }

    let first_diff = d
        .events
        .iter()
        .zip(&t.events)
        .position(|(a, b)| a.event != b.event && !same_refusal(&a.event, &b.event));
    let context = |upto: usize| -> String {
        let mut s = String::new();
        let from = upto.saturating_sub(3);
        if upto > 0 {
            let _ = writeln!(s, "  preceding messages (identical on both sides):");
            for (i, r) in d.events[from..upto].iter().enumerate() {
                let _ = writeln!(s, "    #{}: {:?}", from + i, r.event);
            }
        }
        s
    };

    if let Some(i) = first_diff {
        let (a, b) = (&d.events[i], &t.events[i]);
        let mut s = format!(
            "case `{name}`: backend message streams differ at message #{i}\n  \
             produced by {}\n  direct : {:?}\n  through: {:?}\n",
            step_label(case, a.step),
            a.event,
            b.event
        );
        if let (Event::Msg(x), Event::Msg(y)) = (&a.event, &b.event) {
            if x.tag == y.tag {
                if let Some(at) = x.body.iter().zip(&y.body).position(|(p, q)| p != q) {
                    let from = at.saturating_sub(16);
                    let _ = writeln!(
                        s,
                        "  first differing body byte: offset {at}; direct {} vs through {}",
                        escape_bytes(&x.body[from..], 48),
                        escape_bytes(&y.body[from..], 48)
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "  bodies agree on their common prefix; lengths {} vs {}",
                        x.body.len(),
                        y.body.len()
                    );
                }
            }
        }
        s.push_str(&context(i));
        if let Some((step, err)) = &t.failure {
            let _ = writeln!(
                s,
                "  (through later failed at {}: {err})",
                step_label(case, *step)
            );
        }
        return Err(s);
    }

    let common = d.events.len().min(t.events.len());
    if let Some((step, err)) = &t.failure {
        let mut s = format!(
            "case `{name}`: through endpoint failed at {} after {common} matching messages: {err}\n",
            step_label(case, *step)
        );
        match d.events.get(common) {
            Some(next) => {
                let _ = writeln!(
                    s,
                    "  direct continued with: {:?} (from {})",
                    next.event,
                    step_label(case, next.step)
                );
            }
            None => {
                let _ = writeln!(s, "  direct had nothing further at that point");
            }
        }
        s.push_str(&context(common));
        return Err(s);
    }
    if d.events.len() != t.events.len() {
        let (who, extra) = if d.events.len() > t.events.len() {
            ("direct", &d.events[common])
        } else {
            ("through", &t.events[common])
        };
        return Err(format!(
            "case `{name}`: streams agree on {common} messages, then only {who} has: {:?} (from {})\n{}",
            extra.event,
            step_label(case, extra.step),
            context(common)
        ));
    }
    Ok(())
}

fn step_label(case: &Case, step: usize) -> String {
    match case.steps.get(step) {
        Some(s) => {
            let text = format!("{s:?}");
            let text = if text.len() > 600 {
                let mut cut = 600;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("{}...", &text[..cut])
            } else {
                text
            };
            format!("step #{step} {text}")
        }
        None if step == case.steps.len() => format!("step #{step} (implicit final Terminate)"),
        None => format!("step #{step}"),
    }
}

// ---------------------------------------------------------------------------
// Corpus construction helpers
// ---------------------------------------------------------------------------

/// Fluent builder so each case reads like the conversation it scripts.
struct B {
    case: Case,
}

impl B {
    fn new(name: &str) -> B {
        B {
            case: Case {
                name: name.to_owned(),
                startup: Vec::new(),
                steps: Vec::new(),
            },
        }
    }

    fn startup(mut self, key: &str, value: &str) -> B {
        self.case.startup.push((key.to_owned(), value.to_owned()));
        self
    }

    fn step(mut self, step: Step) -> B {
        self.case.steps.push(step);
        self
    }

    fn send(self, msgs: Vec<Frontend>) -> B {
        self.step(Step::Send(msgs))
    }

    fn ready(self) -> B {
        self.step(Step::UntilReady)
    }

    fn until(self, tag: u8) -> B {
        self.step(Step::UntilTag(tag))
    }

    /// Simple Query through ReadyForQuery.
    fn q(self, sql: &str) -> B {
        self.send(vec![Frontend::query(sql)]).ready()
    }

    /// Unnamed statement and portal: Parse, Bind, Describe portal, Execute
    /// all rows, Sync; through ReadyForQuery.
    fn ext(self, sql: &str, result_formats: &[i16]) -> B {
        self.ext_params(sql, &[], &[], Vec::new(), result_formats)
    }

    fn ext_params(
        self,
        sql: &str,
        param_types: &[u32],
        param_formats: &[i16],
        params: Vec<Option<Vec<u8>>>,
        result_formats: &[i16],
    ) -> B {
        self.send(vec![
            Frontend::parse("", sql, param_types),
            Frontend::bind("", "", param_formats, params, result_formats),
            Frontend::describe_portal(""),
            Frontend::execute("", 0),
            Frontend::Sync,
        ])
        .ready()
    }

    /// The same query as simple Query, extended with text results and
    /// extended with binary results.
    fn all_formats(self, sql: &str) -> B {
        self.q(sql).ext(sql, &[TEXT]).ext(sql, &[BINARY])
    }

    fn build(self) -> Case {
        self.case
    }
}

fn t(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

fn be_i16(v: i16) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn be_i32(v: i32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// Body of a binary-format COPY stream: signature, flags, header extension,
/// tuples, trailer.
fn binary_copy(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
    let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
    out.extend_from_slice(&be_i32(0)); // flags
    out.extend_from_slice(&be_i32(0)); // header extension length
    for row in rows {
        out.extend_from_slice(&be_i16(row.len() as i16));
        for field in row {
            match field {
                Some(v) => {
                    out.extend_from_slice(&be_i32(v.len() as i32));
                    out.extend_from_slice(v);
                }
                None => out.extend_from_slice(&be_i32(-1)),
            }
        }
    }
    out.extend_from_slice(&be_i16(-1));
    out
}

/// CopyData messages carrying `data` in pieces of `chunk` bytes, cut without
/// regard to row boundaries (the protocol allows that, and relays must too).
fn copy_chunks(data: &[u8], chunk: usize) -> Vec<Frontend> {
    data.chunks(chunk).map(Frontend::copy_data).collect()
}

/// LISTEN/NOTIFY channels are server-wide, so two corpus runs at the same time
/// (parallel tests, parallel CI jobs on one server) would hear each other.
/// Each `corpus()` call therefore gets its own channel name; both endpoints of
/// a comparison replay the same `Case`, so they still use the same name.
fn unique_channel() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "airlock_diff_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// Fixed OIDs of built-in functions (stable since initdb) for FunctionCall.
const OID_INT4PL: u32 = 177;
const OID_UPPER_TEXT: u32 = 871;
const OID_TEXTLEN: u32 = 1257;

// Built-in type OIDs for Parse parameter types.
const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const INT8: u32 = 20;
const INT4: u32 = 23;
const TEXT_OID: u32 = 25;
const FLOAT8: u32 = 701;
const UUID: u32 = 2950;

// ---------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------

/// All cases, in a fixed order.
pub fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(type_cases());
    cases.extend(error_cases());
    cases.extend(simple_protocol_cases());
    cases.extend(session_state_cases());
    cases.extend(transaction_cases());
    cases.extend(extended_protocol_cases());
    cases.extend(copy_cases());
    cases.extend(notify_cases());
    cases.extend(misc_protocol_cases());
    cases.extend(large_cases());
    cases
}

const Q_INTS: &str = "SELECT 0::int2 AS i2, 32767::int2, (-32768)::int2, 0::int4 AS i4, \
    2147483647::int4, (-2147483648)::int4, 9223372036854775807::int8 AS i8, \
    (-9223372036854775808)::int8, 42 AS untyped";

const Q_NUMERIC: &str = "SELECT 0::numeric AS zero, 1.5::numeric, (-123.4500)::numeric, \
    'NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric, \
    123456789012345678901234567890.123456789012345678901234567890::numeric AS big, \
    0.000000000000000000000000000001::numeric AS tiny, 10::numeric(10,4), \
    10::numeric ^ 300 AS huge, (-1.5)::numeric(3,1), 1::numeric / 3 AS third";

const Q_FLOATS: &str = "SELECT 1.5::float4 AS f4, 'Infinity'::float4, '-Infinity'::float4, \
    'NaN'::float4, 3.4028235e38::float4, 1.4e-45::float4, '-0'::float4, \
    0.1::float8 AS f8, 'Infinity'::float8, '-Infinity'::float8, 'NaN'::float8, \
    '-0'::float8, 1.7976931348623157e308::float8, 5e-324::float8, pi()";

const Q_TEXT: &str = r#"SELECT 'hello'::text AS t, 'héllo wörld ✓ 日本語 🐘'::text AS utf8, ''::text AS empty,
    'quote''s "double" back\slash'::text AS quoting, E'tab\there\nnewline\\'::text AS esc,
    'abc'::varchar(10) AS vc10, 'abc'::varchar AS vc, 'ab'::char(5) AS bpchar5, 'x'::bpchar AS bp,
    'pg'::name AS nm, 'q'::"char" AS ch, repeat('ü', 1000) AS long_utf8"#;

const Q_BYTEA: &str = r"SELECT '\x00ff10'::bytea AS b, ''::bytea AS empty, 'abc\\def'::bytea AS esc,
    decode(repeat('00ff7f80', 1000), 'hex') AS long, NULL::bytea AS null";

const Q_MISC: &str = r"SELECT true AS t, false AS f, NULL::bool AS n,
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '00000000-0000-0000-0000-000000000000'::uuid,
    B'1010'::bit(4) AS bits, B'10110'::varbit AS vbits,
    'a fat cat sat'::tsvector AS tsv, 'fat & (rat | cat)'::tsquery AS tsq,
    '(1,2)'::point AS pt, '((0,0),(1,1))'::box AS bx, '<(0,0),1.5>'::circle AS ci,
    '[(0,0),(1,1)]'::lseg AS ls, '((0,0),(1,1),(2,0))'::polygon AS pg, '[(0,0),(1,1)]'::path AS pa,
    '{1,2,3}'::line AS li";

const Q_NET: &str = "SELECT '192.168.0.1'::inet AS a, '192.168.0.1/24'::inet, '10.0.0.0/8'::cidr, \
    '::1'::inet, '2001:db8::/32'::cidr, '::ffff:1.2.3.4'::inet, \
    '08:00:2b:01:02:03'::macaddr, '08:00:2b:01:02:03:04:05'::macaddr8";

const Q_MONEY_OID: &str = "SELECT 12.34::money AS m, (-1234567.89)::money, 0::money, \
    1234::oid AS o, 4294967295::oid, 'int4'::regtype AS rt, 'pg_class'::regclass AS rc, \
    'upper(text)'::regprocedure AS rp, '(1,2)'::tid AS tid, '42'::xid AS xid, '7'::cid AS cid";

const Q_JSON: &str = r#"SELECT '{"a": [1, 2.50, "x"], "b": null}'::json AS j,
    '{"b": 1, "a": [true, {"c": "日本"}]}'::jsonb AS jb, '[]'::jsonb, 'null'::json, '"str"'::jsonb,
    jsonb_build_object('k', 1.0, 'arr', ARRAY[1,2]) AS built, '$.a[*] ? (@ > 1)'::jsonpath AS jp"#;

const Q_XML: &str = r#"SELECT '<a b="c">text &amp; more</a>'::xml AS x,
    xmlelement(name foo, xmlattributes('bar' AS baz), 'content') AS el,
    '<?xml version="1.0"?><r/>'::xml AS decl, xmlcomment('c') AS cmt"#;

const Q_ARRAYS: &str = r#"SELECT ARRAY[1,2,3]::int4[] AS ints,
    ARRAY['a','b c','"q"','',NULL,'NULL']::text[] AS texts, ARRAY[[1,2],[3,4]]::int8[] AS nested,
    '{}'::int4[] AS empty, ARRAY[ARRAY['x','y'],ARRAY['z',NULL]] AS nested_text,
    '[0:2]={1,2,3}'::int[] AS lower_bound, ARRAY[1.5,NULL,'NaN']::numeric[] AS nums,
    ARRAY['2024-01-01'::date,'infinity'] AS dates, ARRAY['{"a":1}'::jsonb] AS jsons,
    ARRAY[true,false] AS bools, ARRAY['\x01'::bytea] AS byteas, '{{{1}},{{2}}}'::int[] AS three_d,
    ARRAY[ROW(1,'a')] AS records"#;

const Q_RANGES: &str = "SELECT int4range(1,10) AS r4, int8range(5, NULL) AS r8, \
    numrange(1.5, 2.5, '[]') AS rn, 'empty'::int4range AS e, \
    daterange('2024-01-01','2024-02-01','[]') AS rd, \
    tsrange('2024-01-01 10:00','2024-01-01 12:00') AS rts, \
    tstzrange('2024-01-01 10:00+00','2024-01-01 12:00+00') AS rtstz, \
    '{[1,3),[5,7)}'::int4multirange AS mr, '{}'::nummultirange AS emr, int4range(NULL,NULL) AS unb";

const Q_RECORDS: &str = "SELECT ROW(1, 'a b', NULL, ARRAY[1,2], ROW(true, 'x')) AS rec, \
    ROW() AS empty_rec, (SELECT t FROM (VALUES (1, 'x'::text)) t(a, b)) AS sub";

const Q_NULLS: &str = "SELECT NULL AS n, NULL::int4, NULL::text, NULL::bytea, NULL::int4[], \
    ARRAY[NULL]::int[], NULL::jsonb, ROW(NULL, NULL) AS rn, NULL::timestamptz, NULL::numeric";

const Q_DATETIME: &str = "SELECT '2024-02-29'::date AS d, 'infinity'::date, '-infinity'::date, \
    '0044-03-15 BC'::date AS bc, '13:37:00.123456'::time AS t, '24:00:00'::time, \
    '13:37:00+05:30'::timetz AS ttz, '13:37:00-08'::timetz, \
    '2024-02-29 13:37:00.5'::timestamp AS ts, 'infinity'::timestamp, \
    '1999-12-31 23:59:59.999999'::timestamp, \
    '2024-02-29 13:37:00.5+00'::timestamptz AS tstz, \
    '2024-07-01 00:00:00 America/New_York'::timestamptz AS summer, \
    '2024-01-01 00:00:00+00'::timestamptz AS winter, \
    '1900-01-01 00:00:00+00'::timestamptz AS lmt, '-infinity'::timestamptz, \
    '1 year 2 mons 3 days 04:05:06.789'::interval AS iv, '-1 day +02:03'::interval, \
    '1000000 hours'::interval, '0'::interval, \
    '2024-03-10 12:00+00'::timestamptz AT TIME ZONE 'America/Los_Angeles' AS at_tz";

fn type_cases() -> Vec<Case> {
    let mut cases = vec![
        B::new("types_ints").all_formats(Q_INTS).build(),
        B::new("types_numeric").all_formats(Q_NUMERIC).build(),
        B::new("types_floats")
            .all_formats(Q_FLOATS)
            .q("SET extra_float_digits = 0")
            .all_formats(Q_FLOATS)
            .q("SET extra_float_digits = 3")
            .q(Q_FLOATS)
            .build(),
        B::new("types_text_varchar_bpchar")
            .all_formats(Q_TEXT)
            .build(),
        B::new("types_bytea")
            .all_formats(Q_BYTEA)
            .q("SET bytea_output = 'escape'")
            .all_formats(Q_BYTEA)
            .build(),
        B::new("types_bool_uuid_bits_geometry_tsearch")
            .all_formats(Q_MISC)
            .build(),
        B::new("types_inet_cidr_macaddr").all_formats(Q_NET).build(),
        B::new("types_money_oid_reg")
            .all_formats(Q_MONEY_OID)
            .build(),
        B::new("types_json_jsonb").all_formats(Q_JSON).build(),
        B::new("types_xml").all_formats(Q_XML).build(),
        B::new("types_arrays").all_formats(Q_ARRAYS).build(),
        B::new("types_ranges").all_formats(Q_RANGES).build(),
        B::new("types_records").all_formats(Q_RECORDS).build(),
        B::new("types_nulls").all_formats(Q_NULLS).build(),
        B::new("types_composite_enum_domain_temp")
            .q("CREATE TEMP TABLE comp (a int PRIMARY KEY, b text, c numeric[])")
            .q("INSERT INTO comp VALUES (1, 'one', '{1.5,2}'), (2, NULL, NULL)")
            .all_formats("SELECT r FROM comp r ORDER BY a")
            .all_formats("SELECT * FROM comp ORDER BY a")
            .q("CREATE TYPE pg_temp.mood AS ENUM ('sad', 'ok', 'happy')")
            .q("CREATE DOMAIN pg_temp.posint AS int CHECK (VALUE > 0)")
            .all_formats("SELECT 'ok'::pg_temp.mood AS m, 5::pg_temp.posint AS p")
            .q("SELECT (-1)::pg_temp.posint")
            .q("SELECT 'angry'::pg_temp.mood")
            .build(),
        B::new("types_datetime_styles")
            .q("SET TimeZone = 'UTC'")
            .all_formats(Q_DATETIME)
            .q("SET DateStyle = 'SQL, DMY'")
            .q("SET IntervalStyle = 'postgres_verbose'")
            .all_formats(Q_DATETIME)
            .q("SET DateStyle = 'German'")
            .q("SET IntervalStyle = 'sql_standard'")
            .q(Q_DATETIME)
            .q("SET DateStyle = 'Postgres, MDY'")
            .q("SET IntervalStyle = 'iso_8601'")
            .q(Q_DATETIME)
            .build(),
    ];
    for zone in [
        "UTC",
        "America/New_York",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "Europe/Berlin",
    ] {
        let name = format!(
            "types_datetime_tz_{}",
            zone.to_lowercase().replace('/', "_")
        );
        cases.push(
            B::new(&name)
                .q(&format!("SET TimeZone = '{zone}'"))
                .all_formats(Q_DATETIME)
                .build(),
        );
    }
    cases.push(
        B::new("types_mixed_result_formats")
            .ext(
                "SELECT 1::int4 AS a, 'x'::text AS b, 2.5::float8 AS c",
                &[TEXT, BINARY, TEXT],
            )
            .ext("SELECT 1::int4 AS a, 'x'::text AS b", &[BINARY, TEXT])
            .build(),
    );
    cases.push(
        B::new("types_binary_cursor_simple_protocol")
            .q("BEGIN")
            .q("DECLARE c BINARY CURSOR FOR SELECT g, g::text, g * 1.5 FROM generate_series(1, 4) g")
            .q("FETCH 2 FROM c")
            .q("FETCH ALL FROM c")
            .q("CLOSE c")
            .q("COMMIT")
            .build(),
    );
    cases
}

fn error_cases() -> Vec<Case> {
    vec![
        B::new("error_syntax")
            .q("SELEC 1")
            .q("SELECT 1 +")
            .q("SELECT 'unterminated")
            .ext("SELEC 1", &[])
            .build(),
        B::new("error_division_by_zero")
            .q("SELECT 1/0")
            .ext("SELECT 1/0", &[])
            .ext("SELECT 1/0", &[BINARY])
            .build(),
        B::new("error_undefined_table_column_function")
            .q("SELECT * FROM no_such_table_airlock")
            .q("SELECT nope FROM (SELECT 1 AS a) s")
            .q("SELECT aa FROM (SELECT 1 AS a) s")
            .q("SELECT no_such_function_airlock(1)")
            .q("SELECT 'x' + 1")
            .build(),
        B::new("error_constraint_violations")
            .q("CREATE TEMP TABLE p (id int PRIMARY KEY, v text NOT NULL CHECK (v <> ''))")
            .q("CREATE TEMP TABLE c (pid int REFERENCES p(id))")
            .q("INSERT INTO p VALUES (1, 'a')")
            .q("INSERT INTO p VALUES (1, 'b')")
            .q("INSERT INTO p VALUES (2, NULL)")
            .q("INSERT INTO p VALUES (3, '')")
            .q("INSERT INTO c VALUES (9)")
            .q("INSERT INTO c VALUES (1)")
            .q("DELETE FROM p")
            .build(),
        B::new("error_plpgsql_raise_all_fields")
            .q("DO $$ BEGIN RAISE EXCEPTION 'custom % failure', 42 \
                USING ERRCODE = 'Z9999', DETAIL = 'the detail', HINT = 'the hint', \
                COLUMN = 'col', CONSTRAINT = 'con', DATATYPE = 'typ', TABLE = 'tab', \
                SCHEMA = 'sch'; END $$")
            .q("DO $$ BEGIN PERFORM 1/0; END $$")
            .q("DO $$ BEGIN EXECUTE 'SELECT * FROM no_such_table_airlock'; END $$")
            .build(),
        B::new("error_long_and_non_ascii_messages")
            .q(&format!("SELECT '{}'::int", "x".repeat(10_000)))
            .q("SELECT 'ünïcødé ✓'::int")
            .q("DO $$ BEGIN RAISE EXCEPTION 'fehler: äöü 日本語'; END $$")
            .build(),
        B::new("error_statement_timeout")
            // Generous margin so parse/plan never hit the limit: the error
            // must come from inside pg_sleep, after RowDescription.
            .q("SET statement_timeout = '200ms'")
            .q("SELECT pg_sleep(10)")
            .q("RESET statement_timeout")
            .q("SELECT 1")
            .build(),
        B::new("error_fatal_terminate_own_backend")
            .q("SELECT 1")
            .send(vec![Frontend::query(
                "SELECT pg_terminate_backend(pg_backend_pid())",
            )])
            .step(Step::UntilClosed)
            .build(),
    ]
}

fn simple_protocol_cases() -> Vec<Case> {
    vec![
        B::new("simple_multi_statement")
            .q("SELECT 1 AS a; SELECT 'two' AS b, 2.0 AS c; VALUES (1), (2)")
            .q("SELECT 1; ; SELECT 2")
            .build(),
        B::new("simple_multi_statement_error_in_middle")
            .q("SELECT 1 AS first; SELECT 1/0; SELECT 3 AS never")
            .q("CREATE TEMP TABLE m (x int); INSERT INTO m VALUES (1); SELECT 1/0")
            .q("SELECT * FROM m")
            .build(),
        B::new("simple_empty_query")
            .q("")
            .q(";")
            .q("   ")
            .q("-- just a comment")
            .q("/* block */")
            .build(),
        B::new("simple_notices_and_warnings")
            .q("DO $$ BEGIN RAISE NOTICE 'x'; END $$")
            .q("DO $$ BEGIN RAISE NOTICE 'n1'; RAISE WARNING 'w1'; RAISE INFO 'i1'; \
                RAISE LOG 'not sent'; RAISE NOTICE 'with extras' USING DETAIL = 'd', HINT = 'h'; END $$")
            .q("DROP TABLE IF EXISTS no_such_table_airlock")
            .q("CREATE TEMP TABLE IF NOT EXISTS twice (x int); CREATE TEMP TABLE IF NOT EXISTS twice (x int)")
            .q("COMMIT")
            .q("ROLLBACK")
            .q("SET client_min_messages = warning")
            .q("DO $$ BEGIN RAISE NOTICE 'suppressed'; RAISE WARNING 'kept'; END $$")
            .q("RESET client_min_messages")
            .ext("DO $$ BEGIN RAISE NOTICE 'from extended'; END $$", &[])
            .build(),
        B::new("simple_command_tags")
            .q("CREATE TEMP TABLE tags (x int)")
            .q("INSERT INTO tags SELECT generate_series(1, 3)")
            .q("UPDATE tags SET x = x + 1 WHERE x > 1")
            .q("DELETE FROM tags WHERE x = 4")
            .q("SELECT * FROM tags ORDER BY x")
            .q("CREATE TEMP TABLE tags2 AS SELECT * FROM tags")
            .q("MERGE INTO tags t USING tags2 s ON t.x = s.x WHEN MATCHED THEN UPDATE SET x = s.x")
            .q("TRUNCATE tags")
            .q("VALUES (1, 'a'), (2, 'b')")
            .q("TABLE tags2")
            .q("EXPLAIN (COSTS OFF) SELECT 1")
            .q("DROP TABLE tags, tags2")
            .build(),
        B::new("simple_coalesced_queries")
            .send(vec![
                Frontend::query("SELECT 1 AS first"),
                Frontend::query("SELECT 1/0"),
                Frontend::query("SELECT 3 AS third"),
            ])
            .ready()
            .ready()
            .ready()
            .build(),
        B::new("simple_cursors")
            .q("BEGIN")
            .q("DECLARE c SCROLL CURSOR FOR SELECT g FROM generate_series(1, 5) g")
            .q("FETCH 2 FROM c")
            .q("FETCH BACKWARD 1 FROM c")
            .q("MOVE FORWARD 2 IN c")
            .q("FETCH ALL FROM c")
            .q("CLOSE c")
            .q("COMMIT")
            .build(),
    ]
}

fn session_state_cases() -> Vec<Case> {
    vec![
        B::new("session_set_show_parameter_status")
            .q("SET TimeZone = 'Asia/Tokyo'")
            .q("SHOW TimeZone")
            // application_name is Airlock's (it names the agent in the
            // server's logs): pg_enforcement_state tests it.
            .q("SET extra_float_digits = 1")
            .q("SHOW extra_float_digits")
            .q("SET DateStyle = 'ISO, DMY'")
            .q("SET IntervalStyle = 'sql_standard'")
            .q("SET search_path = pg_catalog, public")
            .q("SHOW search_path")
            .q("SET TimeZone = 'Asia/Tokyo'")
            .q("SELECT set_config('TimeZone', 'Europe/Lisbon', false)")
            .q("SET TimeZone = 'UTC'; SET TimeZone = 'Europe/Paris'")
            .q("RESET TimeZone")
            .q("SHOW TimeZone")
            .ext("SET TimeZone = 'America/Sao_Paulo'", &[])
            .ext("SHOW TimeZone", &[BINARY])
            .build(),
        B::new("session_set_in_transactions")
            .q("BEGIN")
            .q("SET TimeZone = 'Asia/Tokyo'")
            .q("ROLLBACK")
            .q("SHOW TimeZone")
            .q("BEGIN")
            .q("SET LOCAL lock_timeout = '7s'")
            .q("SHOW lock_timeout")
            .q("COMMIT")
            .q("BEGIN; SET TimeZone = 'Asia/Tokyo'; SELECT 1/0")
            .q("ROLLBACK")
            .build(),
        B::new("session_standard_conforming_strings")
            .q(r"SELECT 'a\b' AS s")
            .q("SET standard_conforming_strings = off")
            .q(r"SELECT 'a\\b' AS s")
            .q("SET escape_string_warning = off")
            .q(r"SELECT 'a\\b' AS s")
            // Not RESET ALL: it would drop the application_name prefix
            // Airlock names the session by, and is refused.
            .q("RESET standard_conforming_strings")
            .build(),
        B::new("session_client_encoding_latin1")
            .q("SET client_encoding = 'LATIN1'")
            .step(Step::SendRaw(raw_query(
                b"SELECT 'caf\xe9' AS w, length('\xfc\xdf') AS l",
            )))
            .ready()
            .q("SELECT 'ascii only'")
            .step(Step::SendRaw(raw_query(b"SELECT 'caf\xe9'::int")))
            .ready()
            .q("SELECT chr(26085)")
            .q("RESET client_encoding")
            .q("SELECT 'café' AS w")
            .build(),
        B::new("session_startup_parameters")
            .startup("application_name", "airlock_diff_startup")
            .startup("DateStyle", "SQL, DMY")
            .startup("TimeZone", "Asia/Kolkata")
            .startup("extra_float_digits", "1")
            // application_name is compared with the startup messages:
            // through Airlock it carries the session's prefix.
            .q("SHOW extra_float_digits")
            .q("SELECT '2024-02-29 13:37+00'::timestamptz, 0.1::float8")
            .build(),
        // Separate from the case above because a gateway may refuse the
        // `options` parameter on purpose (it smuggles arbitrary -c settings).
        B::new("session_startup_options")
            .startup(
                "options",
                "-c statement_timeout=5000 -c extra_float_digits=1",
            )
            .q("SHOW statement_timeout")
            .q("SHOW extra_float_digits")
            .build(),
        // Every spelling the server reads, escaped spaces included; a
        // reported parameter (DateStyle) shows in the startup messages.
        B::new("session_startup_options_spellings")
            .startup(
                "options",
                r#"--search-path="my\ schema",public -cLock_Timeout=1500 --DateStyle=SQL,\ DMY  -c  application_name=a\ b"#,
            )
            .q("SHOW search_path")
            .q("SHOW lock_timeout")
            .q("SHOW DateStyle")
            .build(),
        B::new("session_startup_client_encoding")
            .startup("client_encoding", "LATIN1")
            .q("SHOW client_encoding")
            .q("SELECT 'é' AS e")
            .build(),
    ]
}

/// A Query message whose SQL is given as raw bytes (e.g. not UTF-8).
fn raw_query(sql: &[u8]) -> Vec<u8> {
    let mut body = sql.to_vec();
    body.push(0);
    super::wire::frame(b'Q', &body)
}

fn transaction_cases() -> Vec<Case> {
    vec![
        B::new("tx_commit")
            .q("BEGIN")
            .q("CREATE TEMP TABLE tx (x int)")
            .q("INSERT INTO tx VALUES (1), (2)")
            .q("COMMIT")
            .q("SELECT * FROM tx ORDER BY x")
            .build(),
        B::new("tx_rollback")
            .q("CREATE TEMP TABLE tx (x int)")
            .q("BEGIN")
            .q("INSERT INTO tx VALUES (1)")
            .q("ROLLBACK")
            .q("SELECT count(*) FROM tx")
            .q("START TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .q("SHOW transaction_isolation")
            .q("ABORT")
            .build(),
        B::new("tx_error_in_transaction")
            .q("BEGIN")
            .q("SELECT 1/0")
            .q("SELECT 1")
            .ext("SELECT 1", &[])
            .q("COMMIT")
            .q("SELECT 'after' AS s")
            .build(),
        B::new("tx_savepoints")
            .q("BEGIN")
            .q("CREATE TEMP TABLE sp (x int)")
            .q("INSERT INTO sp VALUES (1)")
            .q("SAVEPOINT a")
            .q("INSERT INTO sp VALUES (2)")
            .q("SELECT 1/0")
            .q("ROLLBACK TO SAVEPOINT a")
            .q("RELEASE SAVEPOINT a")
            .q("RELEASE SAVEPOINT nope")
            .q("ROLLBACK")
            .q("BEGIN")
            .q("SAVEPOINT b")
            .q("SELECT 1")
            .q("ROLLBACK TO b")
            .q("COMMIT")
            .build(),
        B::new("tx_read_only_and_warnings")
            .q("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY")
            .q("CREATE TEMP TABLE ro (x int)")
            .q("ROLLBACK")
            .q("BEGIN")
            .q("BEGIN")
            .q("COMMIT")
            .q("COMMIT")
            .build(),
        B::new("tx_inside_multi_statement_query")
            .q("BEGIN; SELECT 1 AS a; COMMIT; SELECT 2 AS b")
            .q("BEGIN; SELECT 1 AS a")
            .q("SELECT 2 AS b; COMMIT")
            .q("BEGIN; SELECT 1/0; COMMIT")
            .q("ROLLBACK")
            .build(),
        B::new("tx_extended_protocol")
            .ext("BEGIN", &[])
            .ext("SELECT 1/0", &[])
            .ext("SELECT 1", &[])
            .ext("ROLLBACK", &[])
            .send(vec![
                Frontend::parse("", "BEGIN", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::parse("", "SELECT 2 AS two", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
                Frontend::parse("", "COMMIT", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
            ])
            .ready()
            .ready()
            .build(),
    ]
}

fn extended_protocol_cases() -> Vec<Case> {
    let int4 = |v: i32| Some(be_i32(v));
    vec![
        B::new("ext_unnamed_statement_and_portal")
            .ext("SELECT 1 AS one, 'two' AS two", &[])
            .ext("SELECT g FROM generate_series(1, 3) g", &[BINARY])
            .send(vec![
                Frontend::parse("", "SELECT $1::text || '!' AS bang", &[]),
                Frontend::describe_statement(""),
                Frontend::bind("", "", &[], vec![t("hey")], &[]),
                Frontend::execute("", 0),
                Frontend::bind("", "", &[], vec![t("again")], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
            ])
            .ready()
            .build(),
        B::new("ext_named_statements_and_portals")
            .send(vec![
                Frontend::parse(
                    "s1",
                    "SELECT $1::int4 * 2 AS doubled, $2::text AS label",
                    &[INT4, TEXT_OID],
                ),
                Frontend::parse("s2", "SELECT g FROM generate_series(1, $1::int4) g", &[]),
                Frontend::describe_statement("s1"),
                Frontend::describe_statement("s2"),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![
                Frontend::bind("p1", "s1", &[TEXT], vec![t("21"), t("a")], &[TEXT]),
                Frontend::bind("p2", "s2", &[BINARY], vec![int4(3)], &[BINARY]),
                Frontend::describe_portal("p1"),
                Frontend::describe_portal("p2"),
                Frontend::execute("p2", 0),
                Frontend::execute("p1", 0),
                Frontend::Sync,
            ])
            .ready()
            // Named statements survive Sync; portals do not (outside a transaction).
            .send(vec![
                Frontend::bind("p1", "s1", &[], vec![t("5"), None], &[BINARY]),
                Frontend::execute("p1", 0),
                Frontend::execute("p2", 0),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![
                Frontend::close_statement("s1"),
                Frontend::close_portal("p1"),
                Frontend::close_statement("never_existed"),
                Frontend::close_portal("never_existed"),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![
                Frontend::bind("", "s1", &[], vec![t("1"), t("x")], &[]),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![
                Frontend::parse("s2", "SELECT 'duplicate'", &[]),
                Frontend::Sync,
            ])
            .ready()
            .q("DEALLOCATE s2")
            .q("PREPARE viasql (int) AS SELECT $1 + 1 AS n")
            .send(vec![
                Frontend::describe_statement("viasql"),
                Frontend::bind("", "viasql", &[], vec![t("41")], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
            ])
            .ready()
            .q("EXECUTE viasql(1)")
            .build(),
        B::new("ext_describe_variants")
            .q("CREATE TEMP TABLE dv (id int, name text)")
            .send(vec![
                Frontend::parse("ins", "INSERT INTO dv VALUES ($1, $2)", &[]),
                Frontend::describe_statement("ins"),
                Frontend::parse("sel", "SELECT * FROM dv WHERE id = $1", &[]),
                Frontend::describe_statement("sel"),
                Frontend::parse("noparams", "SELECT 1", &[]),
                Frontend::describe_statement("noparams"),
                Frontend::parse("empty", "", &[]),
                Frontend::describe_statement("empty"),
                Frontend::bind("ep", "empty", &[], vec![], &[]),
                Frontend::describe_portal("ep"),
                Frontend::execute("ep", 0),
                Frontend::bind("bp", "sel", &[], vec![t("1")], &[BINARY]),
                Frontend::describe_portal("bp"),
                Frontend::bind("mp", "sel", &[], vec![t("1")], &[TEXT, BINARY]),
                Frontend::describe_portal("mp"),
                Frontend::describe_statement("nope"),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![Frontend::describe_portal("nope"), Frontend::Sync])
            .ready()
            .build(),
        B::new("ext_binary_and_null_parameters")
            .ext_params(
                "SELECT $1::int4 + 1 AS a, $2::text || '!' AS b, length($3::bytea) AS c, \
                 $4::int8 * 2 AS d, NOT $5::bool AS e, $6::float8 / 2 AS f, $7::uuid AS g",
                &[INT4, TEXT_OID, BYTEA, INT8, BOOL, FLOAT8, UUID],
                &[BINARY],
                vec![
                    int4(41),
                    t("héllo"),
                    Some(vec![0, 1, 2, 255]),
                    Some(9_000_000_000i64.to_be_bytes().to_vec()),
                    Some(vec![1]),
                    Some(3.0f64.to_be_bytes().to_vec()),
                    Some((0u8..16).collect()),
                ],
                &[BINARY],
            )
            .ext_params(
                "SELECT $1::int4 AS a, $2::text AS b, $3::int4 IS NULL AS c",
                &[],
                &[TEXT, BINARY, BINARY],
                vec![t("7"), t("bin"), None],
                &[TEXT],
            )
            .ext_params(
                "SELECT $1 || 'x' AS inferred, $2 + 1 AS plus",
                &[],
                &[],
                vec![t("a"), t("1")],
                &[],
            )
            .ext_params(
                "SELECT $1::int4",
                &[INT4],
                &[BINARY],
                vec![Some(vec![0, 0, 1])],
                &[],
            )
            .ext_params("SELECT $1::int4", &[INT4], &[], vec![t("12abc")], &[])
            .ext_params("SELECT $1::int4, $2::int4", &[], &[], vec![t("1")], &[])
            .ext_params(
                "SELECT $1::int4",
                &[],
                &[BINARY, BINARY],
                vec![int4(1)],
                &[],
            )
            .ext_params("SELECT 1", &[], &[], vec![], &[2])
            .build(),
        B::new("ext_parse_errors")
            .send(vec![
                Frontend::parse("", "SELECT 1; SELECT 2", &[]),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![
                Frontend::parse("bad", "SELEC 1", &[]),
                Frontend::bind("", "bad", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![
                Frontend::parse("", "SELECT $1::int4", &[999_999]),
                Frontend::Sync,
            ])
            .ready()
            .ext("", &[])
            .build(),
        B::new("ext_portal_suspension_with_flush")
            .send(vec![
                Frontend::parse(
                    "",
                    "SELECT g, 'row ' || g AS label FROM generate_series(1, 5) g",
                    &[],
                ),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::describe_portal(""),
                Frontend::execute("", 2),
                Frontend::Flush,
            ])
            .until(b's')
            .send(vec![Frontend::execute("", 2), Frontend::Flush])
            .until(b's')
            .send(vec![Frontend::execute("", 2), Frontend::Sync])
            .ready()
            // The unnamed portal died with the implicit transaction at Sync.
            .send(vec![Frontend::execute("", 1), Frontend::Sync])
            .ready()
            .build(),
        B::new("ext_portal_suspension_single_write")
            .send(vec![
                Frontend::parse("", "SELECT g FROM generate_series(1, 5) g", &[]),
                Frontend::bind("", "", &[], vec![], &[BINARY]),
                Frontend::execute("", 2),
                Frontend::execute("", 2),
                Frontend::execute("", 2),
                Frontend::execute("", 2),
                Frontend::Sync,
            ])
            .ready()
            .q("CREATE TEMP TABLE ins (x int)")
            .send(vec![
                Frontend::parse("", "INSERT INTO ins SELECT generate_series(1, 5)", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 2),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![
                Frontend::parse(
                    "",
                    "INSERT INTO ins SELECT generate_series(1, 3) RETURNING x",
                    &[],
                ),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 1),
                Frontend::execute("", 1),
                Frontend::Sync,
            ])
            .ready()
            .build(),
        B::new("ext_named_portal_across_syncs_in_transaction")
            .q("BEGIN")
            .send(vec![
                Frontend::parse("ps", "SELECT g FROM generate_series(1, 5) g", &[]),
                Frontend::bind("cur", "ps", &[], vec![], &[]),
                Frontend::execute("cur", 2),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![Frontend::execute("cur", 2), Frontend::Sync])
            .ready()
            .q("FETCH ALL FROM cur")
            .send(vec![
                Frontend::execute("cur", 0),
                Frontend::close_portal("cur"),
                Frontend::Sync,
            ])
            .ready()
            .q("COMMIT")
            .build(),
        B::new("ext_pipeline_several_groups_one_sync")
            .send(vec![
                Frontend::parse("", "SELECT 1 AS a", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::parse("n2", "SELECT $1::text AS b", &[]),
                Frontend::bind("", "n2", &[], vec![t("second")], &[BINARY]),
                Frontend::describe_portal(""),
                Frontend::execute("", 0),
                Frontend::parse("", "SELECT g FROM generate_series(1, 3) g", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
            ])
            .ready()
            .build(),
        B::new("ext_pipeline_error_in_middle")
            .q("CREATE TEMP TABLE pl (x int)")
            .send(vec![
                Frontend::parse("", "INSERT INTO pl VALUES (1)", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::parse("", "SELECT 1/0", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::parse("", "INSERT INTO pl VALUES (2)", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::describe_statement("does_not_matter"),
                Frontend::Sync,
            ])
            .ready()
            .q("SELECT count(*) FROM pl")
            .build(),
        B::new("ext_pipeline_multiple_syncs")
            .send(vec![
                Frontend::parse("", "SELECT 1 AS a", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
                Frontend::parse("", "SELECT 1/0", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
                Frontend::parse("", "SELEC", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
                Frontend::parse("", "SELECT 3 AS c", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
            ])
            .ready()
            .ready()
            .ready()
            .ready()
            .build(),
        B::new("ext_flush_without_sync")
            .send(vec![
                Frontend::parse("f", "SELECT 'flushed' AS x", &[]),
                Frontend::Flush,
            ])
            .until(b'1')
            .send(vec![
                Frontend::bind("", "f", &[], vec![], &[]),
                Frontend::Flush,
            ])
            .until(b'2')
            .send(vec![
                Frontend::describe_portal(""),
                Frontend::execute("", 0),
                Frontend::Flush,
            ])
            .until(b'C')
            .send(vec![Frontend::parse("", "SELEC", &[]), Frontend::Flush])
            .until(b'E')
            .send(vec![
                Frontend::bind("", "f", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
            ])
            .ready()
            .send(vec![Frontend::Sync])
            .ready()
            .send(vec![Frontend::Flush, Frontend::Sync])
            .ready()
            .build(),
        B::new("ext_function_call")
            .send(vec![Frontend::function_call(
                OID_INT4PL,
                &[BINARY],
                vec![int4(2), int4(40)],
                BINARY,
            )])
            .ready()
            .send(vec![Frontend::function_call(
                OID_TEXTLEN,
                &[TEXT],
                vec![t("héllo")],
                TEXT,
            )])
            .ready()
            // Fast-path calls carry no collation, so upper(text) fails.
            .send(vec![Frontend::function_call(
                OID_UPPER_TEXT,
                &[TEXT],
                vec![t("héllo")],
                TEXT,
            )])
            .ready()
            .send(vec![Frontend::function_call(
                OID_TEXTLEN,
                &[],
                vec![None],
                BINARY,
            )])
            .ready()
            .send(vec![Frontend::function_call(
                OID_INT4PL,
                &[BINARY],
                vec![int4(i32::MAX), int4(1)],
                BINARY,
            )])
            .ready()
            .send(vec![Frontend::function_call(1, &[], vec![], TEXT)])
            .ready()
            .build(),
        B::new("ext_query_message_inside_unsynced_extended")
            .send(vec![
                Frontend::parse("pending", "SELECT 1", &[]),
                Frontend::query("SELECT 2 AS simple"),
            ])
            .ready()
            .send(vec![
                Frontend::bind("", "pending", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Sync,
            ])
            .ready()
            .build(),
    ]
}

fn copy_cases() -> Vec<Case> {
    let copy_ci = "CREATE TEMP TABLE ci (a int, b text, c bytea)";
    let select_ci = "SELECT * FROM ci ORDER BY a";
    let bin_rows = vec![
        vec![Some(be_i32(1)), t("one"), Some(vec![0, 1, 2])],
        vec![Some(be_i32(2)), None, Some(Vec::new())],
        vec![Some(be_i32(3)), t("drei ✓"), None],
    ];
    vec![
        B::new("copy_to_stdout_text_csv_binary")
            .q("COPY (SELECT g, 'row ' || g, NULL, E'tab\\there' FROM generate_series(1, 5) g) TO STDOUT")
            .q("COPY (SELECT g, 'row, \"' || g || '\"', NULL FROM generate_series(1, 5) g) TO STDOUT (FORMAT csv, HEADER)")
            .q("COPY (SELECT g, 'row ' || g, NULL::int, '\\x00ff'::bytea FROM generate_series(1, 5) g) TO STDOUT (FORMAT binary)")
            .q("CREATE TEMP TABLE ct AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 10) g")
            .q("COPY ct TO STDOUT")
            .q("COPY ct (h) TO STDOUT WITH (FORMAT csv, DELIMITER '|', FORCE_QUOTE *)")
            .q("COPY (SELECT 1/0) TO STDOUT")
            .q("COPY no_such_table_airlock TO STDOUT")
            .build(),
        B::new("copy_to_stdout_extended_protocol")
            .ext("COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT", &[])
            .ext("COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT (FORMAT binary)", &[BINARY])
            .build(),
        B::new("copy_from_stdin_text")
            .q(copy_ci)
            .send(vec![Frontend::query("COPY ci FROM STDIN")])
            .until(b'G')
            .send({
                let mut m = copy_chunks(b"1\tone\t\\\\x0001\n2\t\\N\t\\N\n3\tthr", 7);
                m.extend(copy_chunks(b"ee \xe2\x9c\x93\t\\\\x\n", 5));
                m.push(Frontend::CopyDone);
                m
            })
            .ready()
            .q(select_ci)
            .send(vec![Frontend::query("COPY ci (a) FROM STDIN")])
            .until(b'G')
            .send(vec![
                Frontend::copy_data(b"10\n11\n\\.\n"),
                Frontend::CopyDone,
            ])
            .ready()
            .q("SELECT count(*) FROM ci")
            .build(),
        B::new("copy_from_stdin_csv")
            .q(copy_ci)
            .send(vec![Frontend::query("COPY ci FROM STDIN (FORMAT csv, HEADER)")])
            .until(b'G')
            .send(vec![
                Frontend::copy_data(b"a,b,c\n1,\"hello, world\",\\x00\n2,\"multi\nline\"\"q\"\"\",\n"),
                Frontend::copy_data(b"3,,\\x"),
                Frontend::copy_data(b"ff\n"),
                Frontend::CopyDone,
            ])
            .ready()
            .q(select_ci)
            .build(),
        B::new("copy_from_stdin_binary")
            .q(copy_ci)
            .send(vec![Frontend::query("COPY ci FROM STDIN (FORMAT binary)")])
            .until(b'G')
            .send({
                let mut m = copy_chunks(&binary_copy(&bin_rows), 11);
                m.push(Frontend::CopyDone);
                m
            })
            .ready()
            .q(select_ci)
            .ext(select_ci, &[BINARY])
            .build(),
        B::new("copy_fail_and_bad_data")
            .q(copy_ci)
            .send(vec![Frontend::query("COPY ci FROM STDIN")])
            .until(b'G')
            .send(vec![
                Frontend::copy_data(b"1\tkept?\t\\N\n"),
                Frontend::copy_fail("client changed its mind"),
            ])
            .ready()
            .send(vec![Frontend::query("COPY ci FROM STDIN")])
            .until(b'G')
            .send(vec![
                Frontend::copy_data(b"1\tok\t\\N\nnot_an_int\tbad\t\\N\n3\tlater\t\\N\n"),
                Frontend::CopyDone,
            ])
            .ready()
            .send(vec![Frontend::query("COPY ci FROM STDIN (FORMAT binary)")])
            .until(b'G')
            .send(vec![Frontend::copy_data(b"NOT A BINARY COPY HEADER"), Frontend::CopyDone])
            .ready()
            .q("SELECT count(*) FROM ci")
            .build(),
        B::new("copy_from_stdin_extended_protocol")
            .q(copy_ci)
            .send(vec![
                Frontend::parse("", "COPY ci (a, b) FROM STDIN", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Flush,
            ])
            .until(b'G')
            .send(vec![
                Frontend::copy_data(b"1\text\n"),
                Frontend::CopyDone,
                Frontend::Sync,
            ])
            .ready()
            .send(vec![
                Frontend::parse("", "COPY ci (a, b) FROM STDIN", &[]),
                Frontend::bind("", "", &[], vec![], &[]),
                Frontend::execute("", 0),
                Frontend::Flush,
            ])
            .until(b'G')
            .send(vec![Frontend::copy_fail("nope"), Frontend::Sync])
            .ready()
            .q(select_ci)
            .build(),
        B::new("copy_from_stdin_pipelined_with_query")
            .q(copy_ci)
            // Data sent before CopyInResponse arrives: legal, and a relay
            // that waits for 'G' before forwarding would deadlock here.
            .send(vec![
                Frontend::query("COPY ci (a, b) FROM STDIN"),
                Frontend::copy_data(b"1\tearly\n2\tbird\n"),
                Frontend::CopyDone,
                Frontend::query("SELECT count(*) FROM ci"),
            ])
            .ready()
            .ready()
            .build(),
    ]
}

fn notify_cases() -> Vec<Case> {
    let channel = unique_channel();
    let chan = channel.as_str();
    vec![
        B::new("notify_self")
            .q(&format!("LISTEN {chan}"))
            .q(&format!("NOTIFY {chan}, 'hello'"))
            .q(&format!("NOTIFY {chan}"))
            .q(&format!("SELECT pg_notify('{chan}', 'from select ✓')"))
            .q("BEGIN")
            .q(&format!("NOTIFY {chan}, 'a'"))
            .q(&format!("NOTIFY {chan}, 'a'"))
            .q(&format!("NOTIFY {chan}, 'b'"))
            .q("COMMIT")
            .q("BEGIN")
            .q(&format!("NOTIFY {chan}, 'rolled back'"))
            .q("ROLLBACK")
            .ext(&format!("NOTIFY {chan}, 'extended'"), &[])
            .q(&format!("UNLISTEN {chan}"))
            .q(&format!("NOTIFY {chan}, 'not delivered'"))
            .q("SELECT 'end' AS marker")
            .build(),
        B::new("notify_from_other_session")
            .q(&format!("LISTEN {chan}"))
            .step(Step::NotifyFromOtherSession {
                channel: channel.clone(),
                payload: "while idle".to_owned(),
            })
            .step(Step::Count(1))
            .q("BEGIN")
            .step(Step::NotifyFromOtherSession {
                channel: channel.clone(),
                payload: "while in transaction".to_owned(),
            })
            .q("SELECT 1 AS in_tx")
            .q("COMMIT")
            .q("UNLISTEN *")
            .build(),
    ]
}

fn misc_protocol_cases() -> Vec<Case> {
    let extended_bytes = {
        let mut v = Vec::new();
        for m in [
            Frontend::parse("", "SELECT $1::text AS fragmented", &[]),
            Frontend::bind("", "", &[], vec![t("pieces")], &[]),
            Frontend::describe_portal(""),
            Frontend::execute("", 0),
            Frontend::Sync,
        ] {
            v.extend(m.to_bytes().expect("static message encodes"));
        }
        v
    };
    vec![
        B::new("misc_fragmented_messages")
            .step(Step::SendChunked {
                bytes: Frontend::query("SELECT 1 AS one, 'frag' AS two")
                    .to_bytes()
                    .expect("static message encodes"),
                chunk: 1,
            })
            .ready()
            .step(Step::SendChunked {
                bytes: extended_bytes,
                chunk: 3,
            })
            .ready()
            .build(),
        B::new("misc_cancel_request")
            // Cancelling an idle session must be harmless.
            .step(Step::Cancel)
            .step(Step::Sleep(Duration::from_millis(300)))
            .q("SELECT 'still fine' AS s")
            .send(vec![Frontend::query("SELECT pg_sleep(30)")])
            .step(Step::Sleep(Duration::from_millis(500)))
            .step(Step::Cancel)
            .ready()
            .q("SELECT 'after cancel' AS s")
            .build(),
        B::new("misc_terminate")
            .q("SELECT 1")
            .send(vec![Frontend::Terminate])
            .step(Step::UntilClosed)
            .build(),
    ]
}

fn large_cases() -> Vec<Case> {
    let big_rows = "SELECT g, md5(g::text) AS h, repeat('x', g % 100) AS pad \
                    FROM generate_series(1, 50000) g";
    let copy_in: Vec<u8> = (1..=20_000)
        .flat_map(|i| format!("{i}\trow number {i} ✓\t\\\\x{:08x}\n", i * 7919).into_bytes())
        .collect();
    vec![
        B::new("large_result_50k_rows")
            .q(big_rows)
            .ext(big_rows, &[BINARY])
            .build(),
        B::new("large_single_values")
            .all_formats("SELECT repeat('y', 8 * 1024 * 1024) AS eight_mib")
            .q("SELECT decode(repeat('ab', 3 * 1024 * 1024), 'hex') AS bytes")
            .build(),
        B::new("large_query_text_and_parameter")
            .q(&format!("SELECT length('{}') AS len", "q".repeat(2 * 1024 * 1024)))
            .ext_params(
                "SELECT length($1::bytea) AS len, md5($1::bytea) AS h",
                &[BYTEA],
                &[BINARY],
                vec![Some((0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect())],
                &[],
            )
            .build(),
        B::new("large_copy_out_and_in")
            .q("COPY (SELECT g, md5(g::text) FROM generate_series(1, 50000) g) TO STDOUT")
            .q("CREATE TEMP TABLE big (a int, b text, c bytea)")
            .send(vec![Frontend::query("COPY big FROM STDIN")])
            .until(b'G')
            .send({
                let mut m = copy_chunks(&copy_in, 65_521);
                m.push(Frontend::CopyDone);
                m
            })
            .ready()
            .q("SELECT count(*), sum(a), md5(string_agg(b || encode(c, 'hex'), ',' ORDER BY a)) FROM big")
            .build(),
    ]
}
