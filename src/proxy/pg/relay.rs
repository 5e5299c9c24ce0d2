//! The relay between an authenticated client and its upstream connection.
//!
//! Two loops run side by side for a session:
//!
//! * **front** reads client messages, asks the [`Gate`] about every
//!   statement, forwards the client's own frames upstream, and tells the
//!   back loop — through an ordered queue of [`Expect`]ations — which
//!   responses to expect for each message it forwarded;
//! * **back** reads upstream messages, passes every DataRow through the
//!   session's [`RowMasker`], and forwards them to the client.
//!
//! Which statement a name runs is decided by [`Names`]: the back loop
//! applies a Parse, Bind, Close, `PREPARE` or `DEALLOCATE` there only when
//! the server confirms it, and the front loop waits for those answers when
//! a name's meaning depends on one still outstanding.
//!
//! Nothing is decoded and re-encoded: frames travel as the bytes received.
//! When Airlock itself must answer (a refused statement, a fastpath call),
//! the front loop queues the answer as an [`Expect::Inject`]; the back loop
//! writes it once every earlier response has gone out, so the client sees
//! messages in exactly the order a server would send them.
//!
//! Two loops rather than one `select!` because either side may block on a
//! write (a client not reading a large result, a server not reading a large
//! COPY) while the other direction must keep moving. They share one task,
//! and the queue between them wakes the back loop only when it has
//! something to do that no upstream message will prompt (see [`queue`]).

use super::codec::{
    backend, backend::Severity, write_out, Fields, FrameError, Message, MessageReader,
};
use super::names::{
    self, Change, Executed, Lookup, Names, PortalDef, PortalGate, Segment, Source, StatementDef,
};
use crate::audit::{ResultTally, Unrecorded};
use crate::gate::Protocol;
use crate::gate::{Checked, Gate, Origin, Refusal, Released, SessionInfo, SessionStatements};
use crate::mask::{Column, RowMasker};
use crate::metrics::Direction;
use crate::proxy::Stream;
use crate::sql::Dialect;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::sync::Notify;

/// Output is flushed when this much is buffered even if more input is
/// waiting, so a long result streams instead of piling up in memory.
const FLUSH_AT: usize = 64 * 1024;

/// How long a dry run's statement may run (`impact = "dry-run"`); its row
/// locks are held that long at most.
const DRY_RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many forwarded-but-unanswered messages a client may have in flight
/// before the front loop waits; bounds memory under deep pipelining.
const QUEUE_DEPTH: usize = 4096;

/// A Flush message: the server sends what it has buffered, and nothing else.
const FLUSH: [u8; 5] = [b'H', 0, 0, 0, 4];

const SYNC: [u8; 5] = [b'S', 0, 0, 0, 4];

/// A Bind that fails at the server without touching any name a client can
/// use: the statement name is random per process and long enough that its
/// first 63 bytes (all the server compares) cannot be guessed.
fn failing_bind() -> Vec<u8> {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let name = NAME.get_or_init(|| {
        format!(
            "airlock-refused-{}",
            crate::hex::encode(&rand::random::<[u8; 20]>())
        )
    });
    let mut body = Vec::with_capacity(2 * name.len() + 10);
    for _ in 0..2 {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
    }
    // No parameter formats, no parameters, no result formats.
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut frame = vec![b'B'];
    frame.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Prepared statements and portals one session may have open at once.
const MAX_NAMES: usize = 10_000;

/// Bind parameters shown to approvers of a held run, and how much of each.
const SHOWN_PARAMETERS: usize = 100;
const SHOWN_PARAMETER_BYTES: usize = 2048;

/// How far the back loop has got through what the front loop queued: the
/// front waits on it before a statement that must not be sent while an
/// earlier, opaque one may still change the session under Airlock.
#[derive(Default)]
pub struct Progress {
    /// Expectations the front loop queued.
    pushed: AtomicU64,
    /// Expectations the back loop had taken when it last had nothing left
    /// to wait for.
    drained: AtomicU64,
    idle: Notify,
}

/// What the back loop should expect from the upstream for one message, and
/// the segment (messages up to a Sync) it belongs to: after an error the
/// server skips the rest of the segment, and so does the back loop.
#[derive(Debug)]
pub struct Pending {
    pub segment: u64,
    pub expect: Expect,
}

/// A statement of a simple query that changes the statement namespace, by
/// its position among the query's statements and the command tag that
/// confirms it.
#[derive(Debug)]
pub struct QueryChange {
    pub index: usize,
    pub change: Change,
    pub tag: &'static str,
}

/// What the back loop should expect from the upstream, in order.
#[derive(Debug)]
pub enum Expect {
    /// A simple Query: everything through ReadyForQuery.
    Query {
        started: Instant,
        /// PREPARE / DEALLOCATE / DISCARD ALL statements in it.
        changes: VecDeque<QueryChange>,
        /// CommandCompletes seen so far.
        completed: usize,
        /// The query destroys the unnamed statement and portal.
        unnamed: [Change; 2],
        /// The approval that released the query, if one did.
        released: Option<Released>,
    },
    Parse {
        change: Change,
    },
    Bind {
        change: Change,
        portal: Arc<PortalDef>,
    },
    /// Describe of a statement; its definition when Airlock is sure which
    /// one the server describes.
    DescribeStatement {
        def: Option<Arc<StatementDef>>,
    },
    DescribePortal {
        def: Option<Arc<PortalDef>>,
    },
    /// A Describe Airlock sent itself so that the masker knows the result
    /// types of every statement a client may bind; its answer is not
    /// forwarded.
    HiddenDescribe {
        def: Arc<StatementDef>,
    },
    /// Rows, then CommandComplete / EmptyQuery / PortalSuspended (or COPY).
    Execute {
        started: Instant,
        portal: Arc<PortalDef>,
        /// The approval that released the execution, if one did.
        released: Option<Released>,
    },
    Close {
        change: Change,
    },
    /// A Close of the unnamed statement Airlock sent itself in place of a
    /// Parse of it that it refused: the server drops the unnamed statement
    /// when a Parse of it fails, and so must the session here. Its
    /// CloseComplete is not forwarded.
    HiddenClose {
        change: Change,
    },
    Sync,
    /// Airlock refused a message and made the server fail in its place
    /// ([`failing_bind`]): the server's ErrorResponse is replaced by
    /// `frames`, and the rest of the segment is skipped.
    Refused {
        frames: Bytes,
    },
    /// Airlock's own messages for the client, sent when reached. With
    /// `ready`, a ReadyForQuery carrying the current transaction status
    /// follows (the end of a refused simple query).
    Inject {
        frames: Bytes,
        ready: bool,
    },
    /// The client said Terminate: finish what is in flight, then stop.
    End,
}

impl Expect {
    fn is_extended(&self) -> bool {
        matches!(
            self,
            Expect::Parse { .. }
                | Expect::Bind { .. }
                | Expect::DescribeStatement { .. }
                | Expect::DescribePortal { .. }
                | Expect::HiddenDescribe { .. }
                | Expect::Execute { .. }
                | Expect::Close { .. }
                | Expect::HiddenClose { .. }
                | Expect::Refused { .. }
        )
    }

    /// Tells `names` how the server answered this message: `applied` when
    /// it succeeded, not when it failed or was skipped.
    fn settle(&self, names: &Names, applied: bool) {
        match self {
            Expect::Parse { change }
            | Expect::Bind { change, .. }
            | Expect::Close { change }
            | Expect::HiddenClose { change } => names.settle(change, applied),
            Expect::Query {
                changes, unnamed, ..
            } => {
                for c in changes {
                    names.settle(&c.change, false);
                }
                for c in unnamed {
                    names.settle(c, applied);
                }
            }
            _ => {}
        }
    }
}

/// How the front loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum FrontEnd {
    /// Terminate received; the back loop finishes the queue.
    Terminated,
    /// The client vanished without Terminate.
    ClientGone,
    /// The client broke the protocol; a FATAL is queued.
    ProtocolError,
    /// The gateway is shutting down; a FATAL is queued.
    Shutdown,
    /// The upstream stopped accepting writes.
    UpstreamGone,
}

/// How the back loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum BackEnd {
    /// Reached [`Expect::End`] with every response delivered.
    Drained {
        status: u8,
    },
    UpstreamGone,
    ClientGone,
    /// The front loop ended without queueing an End.
    Abandoned,
}

pub struct Front {
    pub reader: MessageReader<ReadHalf<Stream>>,
    pub upstream: WriteHalf<Stream>,
    pub queue: QueueSender,
    pub gate: Arc<Gate>,
    pub session: SessionInfo,
    pub shutdown: watch::Receiver<bool>,
    /// The session's recent statements for approvers, and the classes of
    /// the prepared statements an `EXECUTE` about to be checked runs.
    pub sql_statements: SessionStatements,
    /// What the server has confirmed about statements and portals.
    pub names: Arc<Names>,
    /// This segment's changes, laid over `names`.
    pub segment: Segment,
    /// Numbers segments: incremented at each Sync.
    pub segment_no: u64,
    /// Shared with the back loop.
    pub progress: Arc<Progress>,
    /// Set after forwarding a statement Airlock cannot see into (`unknown`:
    /// a user function, `DO`, `CALL`): it may change the session's
    /// encoding or role where the classifier cannot see, so the next
    /// statement waits until its answers — and any ParameterStatus that
    /// ends the session — are in. After an extended-protocol Execute the
    /// server reports changed settings only at the next Sync, so a
    /// statement in the same segment behind it is refused; one after the
    /// Sync waits.
    pub barrier: Option<Barrier>,
    /// Messages the client sent while a held statement waited, in order.
    pub stash: VecDeque<Message>,
    /// Changes with each CancelRequest for this session.
    pub cancelled: watch::Receiver<u64>,
    /// For the impact estimate of held statements (EXPLAIN on another
    /// connection for this session's database and settings).
    pub pool: Arc<super::upstream::Pool>,
    pub pool_key: super::upstream::PoolKey,
}

/// Messages kept while a held statement waits; beyond this the client is
/// simply not read until the wait ends.
const MAX_STASHED: usize = 1024;

/// What the front loop does with one message.
enum Step {
    Forward(Expect),
    /// Refuse it with an ErrorResponse; `ready` ends a simple query, else
    /// everything up to Sync is discarded.
    Refuse {
        code: &'static str,
        message: String,
        ready: bool,
    },
}

/// The ordered queue of [`Expect`]ations from the front loop to the back
/// loop.
///
/// The back loop takes what is queued whenever it wakes anyway: for an
/// upstream message, whose expectation is already here because the front
/// loop queues each one before the frame it answers is written upstream.
/// So queueing wakes the back loop only when it must act with no upstream
/// message to come: Airlock's own answers ([`Expect::Inject`]), the end of
/// the session, the front loop going away, and [`QueueSender::kick`]. A
/// wake-up per message, as a channel gives, costs every statement a
/// re-poll of the session's task and, on a multi-thread runtime, a futex
/// wake of another worker.
///
/// Bounded: the front loop waits while [`QUEUE_DEPTH`] expectations are
/// queued or taken and not yet answered.
///
/// The back loop looks at the queue for every upstream message, a result
/// row included; it takes the lock only when the front loop changed
/// something since it last looked ([`Shared::changes`]) or when it has
/// answered some of what it took.
pub fn queue() -> (QueueSender, QueueReceiver) {
    let shared = Arc::new(Shared::default());
    (
        QueueSender(shared.clone()),
        QueueReceiver {
            shared,
            seen: AtomicU64::new(0),
            told_backlog: AtomicUsize::new(0),
            front_open: AtomicBool::new(true),
        },
    )
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Pending>,
    /// Expectations the back loop took and has not answered yet.
    backlog: usize,
    /// Something the back loop must act on without upstream input.
    signalled: bool,
    front_closed: bool,
    back_closed: bool,
    back_waker: Option<std::task::Waker>,
    front_waker: Option<std::task::Waker>,
}

#[derive(Default)]
struct Shared {
    state: std::sync::Mutex<QueueState>,
    /// Counts the front loop's changes to `state`, each made under its
    /// lock.
    changes: AtomicU64,
}

type SharedQueue = Arc<Shared>;

fn lock(q: &SharedQueue) -> std::sync::MutexGuard<'_, QueueState> {
    q.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a change the front loop made; called with the lock held.
fn note_change(q: &SharedQueue) {
    q.changes.fetch_add(1, Ordering::Release);
}

/// The front loop's end of [`queue`].
pub struct QueueSender(SharedQueue);

/// The back loop's end of [`queue`].
pub struct QueueReceiver {
    shared: SharedQueue,
    // Only the back loop's task touches these (atomics because the task
    // holds `&self` across awaits and must be `Send`).
    /// [`Shared::changes`] when the back loop last took the lock.
    seen: AtomicU64,
    /// The backlog the front loop was last told.
    told_backlog: AtomicUsize,
    front_open: AtomicBool,
}

impl QueueSender {
    /// Queues `pending`, waiting while the queue is full; `Err` when the
    /// back loop is gone.
    pub async fn send(&self, pending: Pending) -> Result<(), ()> {
        let mut pending = Some(pending);
        std::future::poll_fn(|cx| {
            let mut state = lock(&self.0);
            if state.back_closed {
                return std::task::Poll::Ready(Err(()));
            }
            if state.items.len() + state.backlog >= QUEUE_DEPTH {
                note_change(&self.0);
                state.front_waker = Some(cx.waker().clone());
                // The back loop must look even if no upstream message
                // comes: what is queued may be the rest of a segment the
                // server skips, which only the back loop can settle.
                state.signalled = true;
                let waker = state.back_waker.take();
                drop(state);
                if let Some(w) = waker {
                    w.wake();
                }
                return std::task::Poll::Pending;
            }
            let Some(p) = pending.take() else {
                return std::task::Poll::Ready(Ok(()));
            };
            let urgent = matches!(p.expect, Expect::Inject { .. } | Expect::End);
            state.items.push_back(p);
            note_change(&self.0);
            let waker = if urgent {
                state.signalled = true;
                state.back_waker.take()
            } else {
                None
            };
            drop(state);
            if let Some(w) = waker {
                w.wake();
            }
            std::task::Poll::Ready(Ok(()))
        })
        .await
    }

    /// Makes the back loop take what is queued now, though no upstream
    /// message may come for it (the rest of a segment the server skips).
    pub fn kick(&self) {
        signal_back(&self.0, |_| {});
    }
}

impl Drop for QueueSender {
    fn drop(&mut self) {
        signal_back(&self.0, |state| state.front_closed = true);
    }
}

/// Applies `change` and signals the back loop, waking it if it waits.
fn signal_back(q: &SharedQueue, change: impl FnOnce(&mut QueueState)) {
    let waker = {
        let mut state = lock(q);
        change(&mut state);
        state.signalled = true;
        note_change(q);
        state.back_waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

impl QueueReceiver {
    /// Moves what is queued to the end of `pending`, and records how much
    /// of it is still unanswered; false once the front loop is gone and
    /// nothing is left to take.
    pub fn take_into(&self, pending: &mut VecDeque<Pending>) -> bool {
        if self.shared.changes.load(Ordering::Acquire) == self.seen.load(Ordering::Relaxed)
            && pending.len() == self.told_backlog.load(Ordering::Relaxed)
        {
            return self.front_open.load(Ordering::Relaxed);
        }
        let waker = {
            let mut state = lock(&self.shared);
            self.seen.store(
                self.shared.changes.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            pending.extend(state.items.drain(..));
            state.backlog = pending.len();
            self.told_backlog.store(pending.len(), Ordering::Relaxed);
            state.signalled = false;
            self.front_open
                .store(!state.front_closed, Ordering::Relaxed);
            if state.backlog < QUEUE_DEPTH {
                state.front_waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
        self.front_open.load(Ordering::Relaxed)
    }

    /// Records how much the back loop has not answered yet, after it
    /// settled some; wakes the front loop if it waits for room.
    pub fn note_backlog(&self, unanswered: usize) {
        // A front loop waiting for room has changed the queue since.
        if unanswered == self.told_backlog.load(Ordering::Relaxed)
            && self.shared.changes.load(Ordering::Acquire) == self.seen.load(Ordering::Relaxed)
        {
            return;
        }
        let waker = {
            let mut state = lock(&self.shared);
            state.backlog = unanswered;
            self.told_backlog.store(unanswered, Ordering::Relaxed);
            if state.items.len() + unanswered < QUEUE_DEPTH {
                state.front_waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Resolves when the back loop must take what is queued without
    /// waiting for the upstream (see [`queue`]).
    pub async fn signalled(&self) {
        std::future::poll_fn(|cx| {
            let mut state = lock(&self.shared);
            if state.signalled {
                state.signalled = false;
                return std::task::Poll::Ready(());
            }
            state.back_waker = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }
}

impl Drop for QueueReceiver {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.shared);
            state.back_closed = true;
            state.front_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What the front loop must wait for before the next statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// A simple query: its ReadyForQuery brings any changed settings.
    Query,
    /// An Execute in this segment: only the segment's Sync does.
    Execute(u64),
}

/// Whether a statement may act where Airlock cannot see (see
/// [`Front::barrier`]).
fn opaque(checked: &Checked) -> bool {
    checked
        .classification
        .classes()
        .contains(crate::sql::StatementClass::Unknown)
}

/// Why a name cannot be used, as the client is told.
fn lost_names(why: &str) -> String {
    format!(
        "Airlock cannot tell which statement this name refers to ({why}), so it runs none; \
         reconnect to start a fresh session"
    )
}

impl Front {
    pub async fn run(&mut self) -> FrontEnd {
        let mut out = BytesMut::with_capacity(16 * 1024);
        // After Airlock refuses an extended-protocol message, it behaves as a
        // server does after an error: everything up to Sync is discarded.
        let mut skipping_to_sync = false;
        loop {
            let flush = !self.reader.has_buffered_message() || out.len() >= FLUSH_AT;
            if flush {
                crate::metrics::get().relayed(Protocol::Postgres, Direction::ToUpstream, out.len());
                if write_out(&mut self.upstream, &mut out).await.is_err() {
                    return FrontEnd::UpstreamGone;
                }
            }
            let msg = match self.stash.pop_front() {
                Some(m) => Some(Ok(m)),
                // A message already read whole is taken without waiting:
                // the shutdown signal is looked at once per read from the
                // socket, not once per message a client pipelines.
                None if self.reader.has_buffered_message() => Some(self.reader.read().await),
                None => tokio::select! {
                    biased;
                    _ = self.shutdown.wait_for(|stop| *stop) => None,
                    msg = self.reader.read() => Some(msg),
                },
            };
            let Some(msg) = msg else {
                let _ = write_out(&mut self.upstream, &mut out).await;
                self.inject_fatal("57P01", "terminating connection: Airlock is shutting down")
                    .await;
                return FrontEnd::Shutdown;
            };
            let msg = match msg {
                Ok(m) => m,
                Err(FrameError::Closed) | Err(FrameError::Io(_)) | Err(FrameError::Truncated) => {
                    return FrontEnd::ClientGone;
                }
                Err(e @ FrameError::TooLarge { .. }) => {
                    let _ = write_out(&mut self.upstream, &mut out).await;
                    self.inject_fatal("08P01", &format!("{e} (postgres.max_message_bytes)"))
                        .await;
                    return FrontEnd::ProtocolError;
                }
                Err(e) => {
                    let _ = write_out(&mut self.upstream, &mut out).await;
                    self.inject_fatal("08P01", &format!("invalid message: {e}"))
                        .await;
                    return FrontEnd::ProtocolError;
                }
            };
            if skipping_to_sync && msg.tag() != b'S' {
                continue;
            }
            if let Some(barrier) = self
                .barrier
                .filter(|_| matches!(msg.tag(), b'Q' | b'P' | b'B' | b'E'))
            {
                if barrier == Barrier::Execute(self.segment_no) {
                    skipping_to_sync = true;
                    let frames = backend::error(
                        Severity::Error,
                        "0A000",
                        "Airlock runs no statement pipelined behind one it cannot see into (a user function, \
                         DO or CALL) before that one's Sync: the server reports what it changed in the \
                         session only then. Send Sync first.",
                        None,
                    );
                    out.extend_from_slice(&failing_bind());
                    if !self.push(Expect::Refused { frames }).await {
                        return FrontEnd::UpstreamGone;
                    }
                    continue;
                }
                self.barrier = None;
                if !self.drain(&mut out).await {
                    return FrontEnd::UpstreamGone;
                }
            }
            // A statement Airlock forwards in place of the client's (see
            // `sql::application_name::rewrite`).
            let mut replaced: Option<Bytes> = None;
            let step = match msg.tag() {
                b'Q' => {
                    let Some(sql) = query_text(msg.body()) else {
                        self.inject_fatal("08P01", "invalid Query message").await;
                        return FrontEnd::ProtocolError;
                    };
                    let rewritten = crate::sql::application_name::rewrite(sql, || {
                        self.session.application_name_prefix()
                    });
                    if let Some(text) = &rewritten {
                        replaced = Some(query_frame(text));
                    }
                    let sql = rewritten.as_ref().map_or(sql, |t| t.as_bytes());
                    if self.resolve_executes(sql, &mut out).await.is_none() {
                        return FrontEnd::UpstreamGone;
                    }
                    let checked = self.gate.check(&self.session, &mut self.sql_statements, sql, Origin::SimpleQuery).await;
                    let verdict = if self.gate.waits_for_approval(&checked) {
                        if write_out(&mut self.upstream, &mut out).await.is_err() {
                            return FrontEnd::UpstreamGone;
                        }
                        self.wait_for_approval(&checked, sql).await.map(Some)
                    } else {
                        checked.refusal().map_or(Ok(None), Err)
                    };
                    match verdict {
                        Ok(released) => {
                            // DROP/CREATE/ALTER DATABASE must not find idle
                            // pooled connections in their way.
                            self.pool.before_statement(sql);
                            if opaque(&checked) {
                                self.barrier = Some(Barrier::Query);
                            }
                            let mut expect = self.query_expect(&checked);
                            if let Expect::Query { released: r, .. } = &mut expect {
                                *r = released;
                            }
                            Step::Forward(expect)
                        }
                        Err(r) => Step::Refuse { code: r.code, message: r.message, ready: true },
                    }
                }
                b'P' => {
                    let Some((name, sql)) = parse_text(msg.body()) else {
                        self.inject_fatal("08P01", "invalid Parse message").await;
                        return FrontEnd::ProtocolError;
                    };
                    let rewritten = crate::sql::application_name::rewrite(sql, || {
                        self.session.application_name_prefix()
                    });
                    if let Some(text) = &rewritten {
                        replaced = Some(parse_frame(msg.body(), name, sql, text));
                    }
                    let sql = rewritten.as_ref().map_or(sql, |t| t.as_bytes());
                    // Its EXECUTEs are judged by what their names mean when
                    // the server parses it; each run checks they still do.
                    let Some(executes) = self.resolve_executes(sql, &mut out).await else {
                        return FrontEnd::UpstreamGone;
                    };
                    let checked = self.gate.check(&self.session, &mut self.sql_statements, sql, Origin::Prepare).await;
                    // A held statement is parsed (nothing runs at Parse)
                    // and waits for its approvers at each Execute.
                    let held = self.gate.waits_for_approval(&checked);
                    let refusal = if held { None } else { checked.refusal() };
                    match refusal {
                        Some(r) => {
                            if name.is_empty() {
                                let change = Change::Statement(Vec::new(), None);
                                self.names.ask(&mut self.segment, &change);
                                out.extend_from_slice(&close_statement(b""));
                                if !self.push(Expect::HiddenClose { change }).await {
                                    return FrontEnd::UpstreamGone;
                                }
                            }
                            Step::Refuse { code: r.code, message: r.message, ready: false }
                        }
                        None if self.names.counts().0 >= MAX_NAMES => Step::Refuse {
                            code: "54000",
                            message: format!("too many prepared statements in this session (Airlock allows {MAX_NAMES})"),
                            ready: false,
                        },
                        None => {
                            self.pool.before_statement(sql);
                            let def = StatementDef::parsed(checked, sql.to_vec(), held, executes);
                            let change = Change::Statement(names::key(name), Some(def));
                            self.names.ask(&mut self.segment, &change);
                            Step::Forward(Expect::Parse { change })
                        }
                    }
                }
                b'B' => {
                    let Some((portal_name, statement)) = bind_names(msg.body()) else {
                        self.inject_fatal("08P01", "invalid Bind message").await;
                        return FrontEnd::ProtocolError;
                    };
                    let Some(formats) = bind_result_formats(msg.body()) else {
                        self.inject_fatal("08P01", "invalid Bind message").await;
                        return FrontEnd::ProtocolError;
                    };
                    let key = names::key(statement);
                    let Some(def) = self.settled(&mut out, |n, s| n.statement(s, &key)).await else {
                        return FrontEnd::UpstreamGone;
                    };
                    match def {
                        Err(why) => Step::Refuse { code: "26000", message: lost_names(&why), ready: false },
                        Ok(None) => Step::Refuse {
                            code: "26000",
                            message: format!(
                                "prepared statement \"{}\" was not prepared through Airlock in this session",
                                String::from_utf8_lossy(statement)
                            ),
                            ready: false,
                        },
                        Ok(Some(_)) if self.names.counts().1 >= MAX_NAMES => Step::Refuse {
                            code: "54000",
                            message: format!("too many portals in this session (Airlock allows {MAX_NAMES})"),
                            ready: false,
                        },
                        Ok(Some(def)) => match self.portal_gate(&def, &mut out).await {
                            Err(r) => Step::Refuse { code: r.code, message: r.message, ready: false },
                            Ok(gate) => {
                                // A statement prepared with SQL PREPARE has not
                                // been described to Airlock: describe it before
                                // the client binds it.
                                if def.columns.get().is_none() && matches!(def.source, Source::SqlPrepare { .. }) {
                                    out.extend_from_slice(&describe_statement(statement));
                                    if !self.push(Expect::HiddenDescribe { def: def.clone() }).await {
                                        return FrontEnd::UpstreamGone;
                                    }
                                }
                                let (parameters, digest) = match gate {
                                    PortalGate::Allowed => (Vec::new(), None),
                                    PortalGate::Held(_) => match shown_parameters(msg.body()) {
                                        Some(shown) => (shown.parameters, shown.digest),
                                        None => {
                                            self.inject_fatal("08P01", "invalid Bind message").await;
                                            return FrontEnd::ProtocolError;
                                        }
                                    },
                                };
                                let portal = PortalDef::new(def, formats, gate, parameters, digest);
                                let change = Change::Portal(names::key(portal_name), Some(portal.clone()));
                                self.names.ask(&mut self.segment, &change);
                                Step::Forward(Expect::Bind { change, portal })
                            }
                        },
                    }
                }
                b'D' => match (msg.body().first(), Fields::new(&msg.body()[1.min(msg.body().len())..]).cstr()) {
                    // Describing runs nothing: when the name's meaning is not
                    // settled, the answer is forwarded but not learned from.
                    (Some(b'S'), Some(name)) => Step::Forward(Expect::DescribeStatement {
                        def: match self.names.statement(&self.segment, &names::key(name)) {
                            Lookup::Known(def) => def,
                            _ => None,
                        },
                    }),
                    (Some(b'P'), Some(name)) => Step::Forward(Expect::DescribePortal {
                        def: match self.names.portal(&self.segment, &names::key(name)) {
                            Lookup::Known(def) => def,
                            _ => None,
                        },
                    }),
                    _ => {
                        self.inject_fatal("08P01", "invalid Describe message").await;
                        return FrontEnd::ProtocolError;
                    }
                },
                b'E' => {
                    let Some(portal) = Fields::new(msg.body()).cstr() else {
                        self.inject_fatal("08P01", "invalid Execute message").await;
                        return FrontEnd::ProtocolError;
                    };
                    let key = names::key(portal);
                    let Some(def) = self.settled(&mut out, |n, s| n.portal(s, &key)).await else {
                        return FrontEnd::UpstreamGone;
                    };
                    // A statement that EXECUTEs another runs what that name
                    // means now: the verdict given at Parse holds only if
                    // that is still the statement it was judged with.
                    let redefined = match &def {
                        Ok(Some(portal)) if !portal.statement.executes().is_empty() => {
                            let statement = portal.statement.clone();
                            match self.executes_unchanged(&statement, &mut out).await {
                                None => return FrontEnd::UpstreamGone,
                                Some(unchanged) => !unchanged,
                            }
                        }
                        _ => false,
                    };
                    // Execute enforces the verdict given at Parse: only portals
                    // bound from approved statements run.
                    match def {
                        Ok(Some(_)) if redefined => Step::Refuse {
                            code: "0A000",
                            message: "a prepared statement this statement EXECUTEs was redefined (or closed) since \
                                      Airlock judged it at Parse, so it runs none; parse it again"
                                .into(),
                            ready: false,
                        },
                        Err(why) => Step::Refuse { code: "34000", message: lost_names(&why), ready: false },
                        Ok(None) => Step::Refuse {
                            code: "34000",
                            message: format!("portal \"{}\" was not bound through Airlock in this session", String::from_utf8_lossy(portal)),
                            ready: false,
                        },
                        Ok(Some(def)) => match &def.gate {
                            PortalGate::Held(held) if !def.released.load(std::sync::atomic::Ordering::Relaxed) => {
                                // What is already queued goes first, so the client
                                // has its earlier answers while the statement waits;
                                // a Flush makes the server send its answers to them
                                // now rather than at the Sync, and the hold's notice
                                // follows them at once.
                                out.extend_from_slice(&FLUSH);
                                if write_out(&mut self.upstream, &mut out).await.is_err() {
                                    return FrontEnd::UpstreamGone;
                                }
                                let sql = with_parameters(&held.1, &def.parameters, def.parameters_digest.as_deref());
                                match self.wait_for_approval(&held.0, &sql).await {
                                    Ok(released) => {
                                        if def.statement.opaque() {
                                    self.barrier = Some(Barrier::Execute(self.segment_no));
                                }
                                        def.released.store(true, std::sync::atomic::Ordering::Relaxed);
                                        Step::Forward(Expect::Execute { started: Instant::now(), portal: def.clone(), released: Some(released) })
                                    }
                                    Err(r) => Step::Refuse { code: r.code, message: r.message, ready: false },
                                }
                            }
                            _ => match self.gate.admit_execution(&self.session) {
                                Err(r) => Step::Refuse { code: r.code, message: r.message, ready: false },
                                Ok(()) => {
                                    if def.statement.opaque() {
                                        self.barrier = Some(Barrier::Execute(self.segment_no));
                                    }
                                    Step::Forward(Expect::Execute { started: Instant::now(), portal: def.clone(), released: None })
                                }
                            },
                        },
                    }
                }
                b'C' => {
                    let mut f = Fields::new(msg.body());
                    let change = match (f.u8(), f.cstr()) {
                        (Some(b'S'), Some(name)) => Change::Statement(names::key(name), None),
                        (Some(b'P'), Some(name)) => Change::Portal(names::key(name), None),
                        _ => {
                            self.inject_fatal("08P01", "invalid Close message").await;
                            return FrontEnd::ProtocolError;
                        }
                    };
                    self.names.ask(&mut self.segment, &change);
                    Step::Forward(Expect::Close { change })
                }
                b'S' => {
                    skipping_to_sync = false;
                    Step::Forward(Expect::Sync)
                }
                // Flush and COPY sub-protocol messages have no response of their own.
                b'H' | b'd' | b'c' | b'f' => {
                    out.extend_from_slice(msg.frame());
                    continue;
                }
                // Fastpath calls run a function by OID with raw arguments,
                // invisible to statement classification: a side door.
                b'F' => Step::Refuse {
                    code: "42501",
                    message: "function call (fastpath) messages are not allowed through Airlock; \
                              call the function in a SQL statement instead (large-object client functions are not available)"
                        .into(),
                    ready: true,
                },
                b'X' => {
                    let _ = write_out(&mut self.upstream, &mut out).await;
                    self.push(Expect::End).await;
                    return FrontEnd::Terminated;
                }
                other => {
                    let _ = write_out(&mut self.upstream, &mut out).await;
                    self.inject_fatal("08P01", &format!("invalid frontend message type {other}")).await;
                    return FrontEnd::ProtocolError;
                }
            };
            let expect = match step {
                Step::Forward(expect) => expect,
                Step::Refuse {
                    code,
                    message,
                    ready,
                } => {
                    // After an error a server discards everything up to Sync;
                    // Airlock does the same for the errors it raises itself.
                    skipping_to_sync = !ready;
                    let frames = backend::error(Severity::Error, code, &message, None);
                    // The server must fail too, so that a refusal inside a
                    // transaction leaves it failed as a server error would
                    // (a later COMMIT rolls back): Airlock sends a Bind of
                    // a statement no client can have named, and answers the
                    // client with its own error in place of the server's.
                    out.extend_from_slice(&failing_bind());
                    if !self.push(Expect::Refused { frames }).await {
                        return FrontEnd::UpstreamGone;
                    }
                    if ready {
                        // A simple query's refusal ends with ReadyForQuery:
                        // the server's answer to Airlock's own Sync.
                        out.extend_from_slice(&SYNC);
                        if !self.push(Expect::Sync).await {
                            return FrontEnd::UpstreamGone;
                        }
                        self.segment.end();
                        self.segment_no += 1;
                    }
                    continue;
                }
            };
            // Every statement parsed is described right away, in the same
            // pipeline: drivers that describe once and then only bind and
            // execute (or never describe) still get their rows masked by
            // column type.
            let describe_after = match &expect {
                Expect::Parse {
                    change: Change::Statement(_, Some(def)),
                } => Some(def.clone()),
                _ => None,
            };
            let sync = matches!(expect, Expect::Sync);
            out.extend_from_slice(replaced.as_deref().unwrap_or(msg.frame()));
            if !self.push(expect).await {
                return FrontEnd::UpstreamGone;
            }
            if let Some(def) = describe_after {
                let name = parse_text(msg.body()).map_or(&b""[..], |(n, _)| n);
                out.extend_from_slice(&describe_statement(name));
                if !self.push(Expect::HiddenDescribe { def }).await {
                    return FrontEnd::UpstreamGone;
                }
            }
            if sync {
                self.segment.end();
                self.segment_no += 1;
            }
        }
    }

    /// The expectation for a simple query about to be forwarded, with the
    /// changes its statements make to the statement namespace. Their
    /// effect is not certain until confirmed (a failed statement in a
    /// simple query does not make the server skip later messages), so
    /// they are asked, not laid over this segment.
    fn query_expect(&mut self, checked: &Checked) -> Expect {
        let mut changes = VecDeque::new();
        for (index, statement) in checked.classification.statements.iter().enumerate() {
            if let Some((change, tag)) = names::sql_change(statement) {
                self.names.ask_unsettled(&mut self.segment, &change);
                changes.push_back(QueryChange { index, change, tag });
            }
        }
        let unnamed = [
            Change::Statement(Vec::new(), None),
            Change::Portal(Vec::new(), None),
        ];
        for change in &unnamed {
            self.names.ask(&mut self.segment, change);
        }
        Expect::Query {
            started: Instant::now(),
            changes,
            completed: 0,
            unnamed,
            released: None,
        }
    }

    /// Gives the gate the classes of the prepared statements the
    /// statement's `EXECUTE`s run, as the server will have them when it
    /// reaches this message: waits for answers still outstanding. Returns
    /// the definitions found (for a Parse, whose portals run later); `None`
    /// when the upstream is gone.
    async fn resolve_executes(&mut self, sql: &[u8], out: &mut BytesMut) -> Option<Vec<Executed>> {
        // An EXECUTE statement spells its keyword in ASCII (keywords cannot
        // be quoted or escaped): most statements need no second look.
        if !crate::sql::contains_ignore_case(sql, b"execute") {
            self.sql_statements.resolve(HashMap::new());
            return Some(Vec::new());
        }
        let executes: Vec<String> = self
            .gate
            .classify(&self.session, sql)
            .statements
            .iter()
            .filter_map(|s| s.executes.clone())
            .collect();
        let mut resolved = HashMap::new();
        let mut found = Vec::with_capacity(executes.len());
        for name in executes {
            let key = names::sql_key(&name);
            let def = self.settled(out, |n, s| n.statement(s, &key)).await?;
            // Unknown, lost or undefined: the EXECUTE stays `unknown`.
            let def = def.ok().flatten();
            if let Some(def) = &def {
                resolved.insert(name, def.classes());
            }
            found.push(Executed::new(key, def.as_ref()));
        }
        self.sql_statements.resolve(resolved);
        Some(found)
    }

    /// Whether every statement `def`'s `EXECUTE`s named still has the
    /// definition it was judged with (or none: the server then refuses
    /// the run itself), when the server reaches this message. `None` when
    /// the upstream is gone.
    async fn executes_unchanged(&mut self, def: &StatementDef, out: &mut BytesMut) -> Option<bool> {
        for executed in def.executes() {
            let now = self
                .settled(out, |n, s| n.statement(s, &executed.name))
                .await?;
            match now {
                Ok(now) if executed.runs_as_judged(now.as_ref()) => {}
                _ => return Some(false),
            }
        }
        Some(true)
    }

    /// What a name means when the server reaches the message being
    /// handled (`lookup` asks [`Names`] for a statement or a portal),
    /// waiting for outstanding answers that decide it. `None` when the
    /// upstream is gone; `Err` when Airlock lost track.
    async fn settled<T>(
        &mut self,
        out: &mut BytesMut,
        lookup: impl Fn(&Names, &Segment) -> Lookup<T>,
    ) -> Option<Result<Option<T>, String>> {
        let names = self.names.clone();
        loop {
            let settled = names.settled();
            tokio::pin!(settled);
            settled.as_mut().enable();
            match lookup(&names, &self.segment) {
                Lookup::Known(def) => return Some(Ok(def)),
                Lookup::Lost(why) => return Some(Err(why)),
                Lookup::Unsettled => {
                    // The answers we wait for follow a Sync already sent; what
                    // is buffered must reach the server for them to come.
                    write_out(&mut self.upstream, out).await.ok()?;
                    // Answers the server skips (after an error) are
                    // settled by the back loop without any message.
                    self.queue.kick();
                    settled.await;
                }
            }
        }
    }

    /// How Executes of a portal bound from `def` are judged. A statement
    /// from a Parse carries the verdict given then; one prepared with SQL
    /// `PREPARE` is judged as `EXECUTE name` would be.
    async fn portal_gate(
        &mut self,
        def: &StatementDef,
        out: &mut BytesMut,
    ) -> Result<PortalGate, Refusal> {
        match &def.source {
            Source::Parse { checked, sql, .. } => Ok(if def.held {
                PortalGate::Held(Arc::new((checked.clone(), sql.clone())))
            } else {
                PortalGate::Allowed
            }),
            Source::SqlPrepare { name, classes } => {
                let sql = format!("EXECUTE \"{}\"", name.replace('"', "\"\""));
                self.sql_statements
                    .resolve(HashMap::from([(name.clone(), *classes)]));
                let checked = self
                    .gate
                    .check(
                        &self.session,
                        &mut self.sql_statements,
                        sql.as_bytes(),
                        Origin::Prepare,
                    )
                    .await;
                if self.gate.waits_for_approval(&checked) {
                    let _ = write_out(&mut self.upstream, out).await;
                    return Ok(PortalGate::Held(Arc::new((checked, sql.into_bytes()))));
                }
                match checked.refusal() {
                    Some(r) => Err(r),
                    None => Ok(PortalGate::Allowed),
                }
            }
        }
    }

    /// Puts a held statement before the approvers, tells the client at
    /// once (a NoticeResponse naming the request and where it is decided),
    /// and waits. A CancelRequest, the client going away or the gateway
    /// shutting down withdraws the request; what the client pipelines
    /// meanwhile is kept and handled, in order, after the wait.
    async fn wait_for_approval(
        &mut self,
        checked: &Checked,
        sql: &[u8],
    ) -> Result<Released, Refusal> {
        if Gate::is_deferred(checked) {
            let impact = self.impact(checked, sql);
            return self
                .gate
                .release_deferred(&self.session, checked, sql, impact, &self.sql_statements)
                .await
                .map(Released::new);
        }
        let impact = self.impact(checked, sql).await;
        let (request, notice) = self
            .gate
            .hold(&self.session, checked, sql, impact, &self.sql_statements)
            .await?;
        let told = self
            .push(Expect::Inject {
                frames: backend::notice(&notice),
                ready: false,
            })
            .await;
        let Front {
            reader,
            stash,
            cancelled,
            shutdown,
            gate,
            session,
            ..
        } = self;
        cancelled.borrow_and_update();
        let withdraw = async {
            if !told {
                return "the client connection is closing".to_string();
            }
            loop {
                tokio::select! {
                    changed = cancelled.changed() => {
                        return match changed {
                            Ok(()) => "the client cancelled the statement".to_string(),
                            Err(_) => "the session ended".to_string(),
                        };
                    }
                    _ = shutdown.wait_for(|stop| *stop) => return "Airlock is shutting down".to_string(),
                    msg = reader.read(), if stash.len() < MAX_STASHED => match msg {
                        Ok(m) => stash.push_back(m),
                        Err(_) => return "the client disconnected".to_string(),
                    },
                }
            }
        };
        gate.await_release(session, &request, withdraw)
            .await
            .map(Released::new)
    }

    /// What PostgreSQL plans for a held statement, for the approvers:
    /// `EXPLAIN` (which runs nothing) on another connection, for the
    /// statements [`crate::sql::explainable`] admits; values in the plan
    /// masked like the statement. `None` when not safe or not possible.
    async fn impact(&self, checked: &Checked, sql: &[u8]) -> Option<String> {
        let dry_run = match &checked.decision.action {
            crate::policy::Action::Hold(spec) if spec.dry_run => {
                Some(self.dry_run(checked, sql).await)
            }
            _ => None,
        };
        let estimate = self.estimate(checked, sql).await;
        match (dry_run, estimate) {
            (Some(dry), Some(estimate)) => Some(format!("{dry}\n\n{estimate}")),
            (Some(dry), None) => Some(dry),
            (None, estimate) => estimate,
        }
    }

    /// The exact row count of a dry run (`impact = "dry-run"`), or why
    /// there was none.
    async fn dry_run(&self, checked: &Checked, sql: &[u8]) -> String {
        use crate::proxy::pg::upstream::DryRun;
        let text =
            match crate::sql::dry_run_refusal(&checked.classification, sql, Dialect::Postgres) {
                Ok(text) => text,
                Err(why) => return format!("Not dry-run: {why}."),
            };
        let tables: Vec<String> = checked
            .classification
            .statements
            .iter()
            .flat_map(|s| s.objects.iter().cloned())
            .collect();
        let setup = self.confined_setup("dry-run");
        let started = std::time::Instant::now();
        let ran = tokio::time::timeout(
            DRY_RUN_TIMEOUT + std::time::Duration::from_secs(3),
            self.pool
                .dry_run(&self.pool_key, Some(&setup), text, &tables, DRY_RUN_TIMEOUT),
        )
        .await;
        match ran {
            Ok(Ok(DryRun::Rows(n))) => format!(
                "Dry run (in a transaction that was rolled back): the statement changed exactly {n} row{} in {:.1} ms.",
                if n == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64() * 1e3
            ),
            Ok(Ok(DryRun::NotEligible)) => "Not dry-run: a table it touches (or reaches through a cascading foreign key) is not a plain table, or has triggers, rules, row-level security, a column of a domain type, checks that call functions, or indexes or generated columns that call functions of their own.".into(),
            Ok(Err(e)) => {
                tracing::info!(session = %self.session.id, error = %e, "dry run failed");
                format!(
                    "Dry run failed, nothing was kept: {}",
                    self.gate.masker().mask_sql_literals(&e.to_string())
                )
            }
            Err(_) => "Dry run did not finish in time; nothing was kept.".into(),
        }
    }

    /// The set-up of a connection that works for this session's statement
    /// beside it (an estimate, a dry run): the agent's own role and
    /// read-only setting, and a name in the server's logs that says whose
    /// and what for.
    fn confined_setup(&self, what: &str) -> String {
        let named = crate::sql::application_name::value(
            &crate::sql::application_name::prefix(&self.session.identity, &self.session.id.0),
            Some(what),
        );
        match self.session.confinement.postgres_setup() {
            Some(confine) => format!("{confine}; SET SESSION application_name = '{named}'"),
            None => format!("SET SESSION application_name = '{named}'"),
        }
    }

    /// The planner's estimate, or facts about the tables a schema change
    /// touches.
    async fn estimate(&self, checked: &Checked, sql: &[u8]) -> Option<String> {
        let Some(text) = crate::sql::explainable(&checked.classification, sql, Dialect::Postgres)
        else {
            return self.ddl_facts(checked).await;
        };
        let plan = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            self.pool
                .explain(&self.pool_key, Some(&self.confined_setup("estimate")), text),
        )
        .await;
        let mut impact = match plan {
            Ok(Ok(lines)) => self.gate.masker().mask_sql_literals(&lines.join("\n")),
            Ok(Err(e)) => {
                tracing::debug!(session = %self.session.id, error = %e, "no impact estimate");
                return None;
            }
            Err(_) => return None,
        };
        // Row counts above are the planner's guesses: say how old the
        // statistics behind them are.
        let tables: Vec<String> = checked
            .classification
            .statements
            .iter()
            .flat_map(|s| s.objects.iter().cloned())
            .collect();
        let ages = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.pool.statistics_age(&self.pool_key, &tables),
        )
        .await;
        if let Ok(Ok(lines)) = ages {
            if !lines.is_empty() {
                impact.push_str("\n\nStatistics behind the estimate:\n");
                impact.push_str(&lines.join("\n"));
            }
        }
        Some(impact)
    }

    /// For a held schema change, which EXPLAIN cannot plan: the lock it
    /// takes and facts about the tables it touches.
    async fn ddl_facts(&self, checked: &Checked) -> Option<String> {
        let [statement] = checked.classification.statements.as_slice() else {
            return None;
        };
        if !statement.classes.contains(crate::sql::StatementClass::Ddl) {
            return None;
        }
        let mut facts = Vec::new();
        if let Some(lock) = crate::sql::pg_ddl_lock(statement) {
            facts.push(format!("Lock: {lock}."));
        }
        let tables = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.pool.table_facts(&self.pool_key, &statement.objects),
        )
        .await;
        match tables {
            Ok(Ok(lines)) if !lines.is_empty() => {
                facts.push("Tables (as they are now):".into());
                facts.extend(lines);
            }
            _ => {}
        }
        (!facts.is_empty()).then(|| facts.join("\n"))
    }

    async fn push(&self, expect: Expect) -> bool {
        let segment = self.segment_no;
        self.progress.pushed.fetch_add(1, Ordering::Relaxed);
        self.queue.send(Pending { segment, expect }).await.is_ok()
    }

    /// Waits until the back loop has answered everything queued so far
    /// (the server is asked to flush what it holds). False when the
    /// upstream is gone.
    async fn drain(&mut self, out: &mut BytesMut) -> bool {
        out.extend_from_slice(&FLUSH);
        if write_out(&mut self.upstream, out).await.is_err() {
            return false;
        }
        let target = self.progress.pushed.load(Ordering::Relaxed);
        // A server skipping to Sync after an error answers none of what
        // is queued, not even the Flush: the back loop must settle it
        // without an upstream message.
        self.queue.kick();
        let progress = self.progress.clone();
        loop {
            let idle = progress.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if progress.drained.load(Ordering::Relaxed) >= target {
                return true;
            }
            idle.await;
        }
    }

    async fn inject_fatal(&self, code: &str, message: &str) {
        let frames = backend::error(Severity::Fatal, code, message, None);
        self.push(Expect::Inject {
            frames,
            ready: false,
        })
        .await;
        self.push(Expect::End).await;
    }
}

fn is_fatal(error_body: &[u8]) -> bool {
    super::codec::error_fields(error_body)
        .iter()
        .any(|(k, v)| *k == b'V' && (v == "FATAL" || v == "PANIC"))
}

/// The SQL of a Query message, if well formed.
fn query_text(body: &[u8]) -> Option<&[u8]> {
    let mut f = Fields::new(body);
    let sql = f.cstr()?;
    f.remaining().is_empty().then_some(sql)
}

/// A Query message carrying `text`.
fn query_frame(text: &str) -> Bytes {
    backend::frame(b'Q', |buf| {
        buf.put_slice(text.as_bytes());
        buf.put_u8(0);
    })
}

/// The Parse message `body` (naming `name`, with `sql`) carrying `text`
/// instead, its parameter types kept.
fn parse_frame(body: &[u8], name: &[u8], sql: &[u8], text: &str) -> Bytes {
    let rest = &body[name.len() + 1 + sql.len() + 1..];
    backend::frame(b'P', |buf| {
        buf.put_slice(name);
        buf.put_u8(0);
        buf.put_slice(text.as_bytes());
        buf.put_u8(0);
        buf.put_slice(rest);
    })
}

/// The statement name and SQL of a Parse message, if well formed.
fn parse_text(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut f = Fields::new(body);
    let name = f.cstr()?;
    let sql = f.cstr()?;
    Some((name, sql))
}

/// A ParameterStatus with its value masked (any parameter: a custom
/// setting holds whatever was put in it); `None` to forward it as it came.
/// The name is kept: clients key their settings by it.
fn masked_parameter(masker: &mut RowMasker, name: &[u8], value: &[u8]) -> Option<Bytes> {
    let value = masker.mask_message_text(value)?;
    Some(backend::frame(b'S', |buf| {
        buf.put_slice(name);
        buf.put_u8(0);
        buf.put_slice(&value);
        buf.put_u8(0);
    }))
}

/// A RowDescription with its column names masked; `None` to forward it as
/// it came. Names are written in the statement, but a cursor opened on
/// dynamic SQL (`OPEN c FOR EXECUTE format('SELECT 1 AS %I', email)`)
/// describes columns named by data. One that cannot be read is forwarded
/// with no columns rather than unread.
fn masked_row_description(masker: &mut RowMasker, msg: &Message) -> Option<Bytes> {
    if !masker.is_active() || masker.is_clean_description(msg.body()) {
        return None;
    }
    let mut fields = Fields::new(msg.body());
    let Some(count) = fields.i16() else {
        return Some(backend::frame(b'T', |buf| buf.put_i16(0)));
    };
    // Per column: the masked name if it changed, the name, the fixed fields.
    type Part<'a> = (Option<Vec<u8>>, &'a [u8], &'a [u8]);
    let mut parts: Vec<Part> = Vec::new();
    let mut changed = false;
    for _ in 0..count.max(0) {
        let (Some(name), Some(rest)) = (fields.cstr(), fields.take(18)) else {
            return Some(backend::frame(b'T', |buf| buf.put_i16(0)));
        };
        let masked = masker.mask_message_text(name);
        changed |= masked.is_some();
        parts.push((masked, name, rest));
    }
    if !changed {
        masker.note_clean_description(msg.body());
    }
    changed.then(|| {
        backend::frame(b'T', |buf| {
            buf.put_i16(count);
            for (masked, name, rest) in &parts {
                buf.put_slice(masked.as_deref().unwrap_or(name));
                buf.put_u8(0);
                buf.put_slice(rest);
            }
        })
    })
}

/// An ErrorResponse or NoticeResponse with the values in its texts masked;
/// `None` to forward it as it came. Every field is masked but severity,
/// SQLSTATE, positions and the server's source location: PL/pgSQL's
/// `RAISE … USING DETAIL | HINT | COLUMN | TABLE | CONSTRAINT | DATATYPE |
/// SCHEMA = <expression>` puts any value in any of the others.
fn masked_notice(masker: &mut RowMasker, msg: &Message) -> Option<Bytes> {
    if !masker.is_active() {
        return None;
    }
    let mut fields = Fields::new(msg.body());
    let mut parts: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut changed = false;
    while let Some(code) = fields.u8().filter(|&c| c != 0) {
        // A field without its terminator ends the message: what was read is
        // kept, the rest is not forwarded unread.
        let Some(value) = fields.cstr() else {
            changed = true;
            break;
        };
        let masked = (!matches!(code, b'S' | b'V' | b'C' | b'P' | b'p' | b'F' | b'L' | b'R'))
            .then(|| masker.mask_message_text(value))
            .flatten();
        changed |= masked.is_some();
        parts.push((code, masked.unwrap_or_else(|| value.to_vec())));
    }
    changed.then(|| {
        backend::frame(msg.tag(), |buf| {
            for (code, value) in &parts {
                buf.put_u8(*code);
                buf.put_slice(value);
                buf.put_u8(0);
            }
            buf.put_u8(0);
        })
    })
}

/// A NotificationResponse with its payload masked (`pg_notify` can carry
/// any value); `None` to forward it as it came. One that cannot be read is
/// dropped rather than forwarded unscanned.
fn masked_notification(masker: &mut RowMasker, msg: &Message) -> Option<Bytes> {
    if !masker.is_active() {
        return None;
    }
    let mut fields = Fields::new(msg.body());
    let (Some(pid), Some(channel), Some(payload)) = (fields.i32(), fields.cstr(), fields.cstr())
    else {
        return Some(Bytes::new());
    };
    let payload = masker.mask_message_text(payload)?;
    Some(backend::frame(b'A', |buf| {
        buf.put_i32(pid);
        buf.put_slice(channel);
        buf.put_u8(0);
        buf.put_slice(&payload);
        buf.put_u8(0);
    }))
}

/// A Close (statement) message.
fn close_statement(name: &[u8]) -> Vec<u8> {
    let mut frame = describe_statement(name);
    frame[0] = b'C';
    frame
}

/// A Describe (statement) message.
fn describe_statement(name: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(name.len() + 7);
    frame.push(b'D');
    frame.extend_from_slice(&((name.len() + 6) as u32).to_be_bytes());
    frame.push(b'S');
    frame.extend_from_slice(name);
    frame.push(0);
    frame
}

/// The result-column format codes of a Bind message, after checking that
/// the message is well formed. Its values are stepped over, not read: most
/// portals run without approvers, and a Bind may carry megabytes.
fn bind_result_formats(body: &[u8]) -> Option<Vec<i16>> {
    let mut f = Fields::new(body);
    f.cstr()?;
    f.cstr()?;
    let n = f.i16()?;
    for _ in 0..n.max(0) {
        f.i16()?;
    }
    for _ in 0..f.i16()?.max(0) {
        let len = f.i32()?;
        if len >= 0 {
            f.take(len as usize)?;
        }
    }
    let n = f.i16()?;
    (0..n.max(0)).map(|_| f.i16()).collect()
}

/// The parameters of a Bind message as approvers of a held statement see
/// them.
struct Shown {
    /// Parameter values as text (`None` for NULL), binary ones as `\x…`
    /// hex; at most [`SHOWN_PARAMETERS`], each cut short.
    parameters: Vec<Option<String>>,
    /// When not every value is shown whole: a BLAKE3 digest of all of them,
    /// so that the approval still binds exactly the values that run.
    digest: Option<String>,
}

/// Reads the parameters of a Bind message that [`bind_result_formats`]
/// accepted; only for portals that wait for approvers.
fn shown_parameters(body: &[u8]) -> Option<Shown> {
    let mut f = Fields::new(body);
    f.cstr()?;
    f.cstr()?;
    let n = f.i16()?;
    let param_formats = (0..n.max(0)).map(|_| f.i16()).collect::<Option<Vec<_>>>()?;
    let values = f.i16()?;
    let mut parameters = Vec::new();
    let mut all = blake3::Hasher::new();
    let mut cut = values.max(0) as usize > SHOWN_PARAMETERS;
    for i in 0..values.max(0) as usize {
        let len = f.i32()?;
        let value = if len >= 0 {
            Some(f.take(len as usize)?)
        } else {
            None
        };
        all.update(&len.to_be_bytes());
        all.update(value.unwrap_or_default());
        cut |= value.is_some_and(|v| v.len() > SHOWN_PARAMETER_BYTES);
        if i >= SHOWN_PARAMETERS {
            continue;
        }
        let binary = match param_formats.as_slice() {
            [] => false,
            [one] => *one == 1,
            many => many.get(i).is_some_and(|f| *f == 1),
        };
        parameters.push(value.map(|v| {
            let shown = &v[..v.len().min(SHOWN_PARAMETER_BYTES)];
            match (binary, std::str::from_utf8(shown)) {
                (false, Ok(text)) => text.to_string(),
                _ => format!("\\x{}", crate::hex::encode(shown)),
            }
        }));
    }
    Some(Shown {
        parameters,
        digest: cut.then(|| crate::hex::encode(all.finalize().as_bytes())),
    })
}

/// A held statement's text as approvers see it and the approval binds:
/// with the values of its parameters, as literals the display masks.
fn with_parameters(sql: &[u8], parameters: &[Option<String>], digest: Option<&str>) -> Vec<u8> {
    if parameters.is_empty() && digest.is_none() {
        return sql.to_vec();
    }
    let mut text = sql.to_vec();
    text.extend_from_slice(b"\n/* parameters:");
    for (i, p) in parameters.iter().enumerate() {
        let value = match p {
            None => "NULL".to_string(),
            // A comment cannot be closed from inside a quoted value shown
            // here: `*/` is broken up.
            Some(v) => format!(
                "'{}'",
                v.replace('\'', "''")
                    .replace("*/", "* /")
                    .replace("/*", "/ *")
            ),
        };
        text.extend_from_slice(format!(" ${} = {value}", i + 1).as_bytes());
        if i + 1 < parameters.len() {
            text.push(b',');
        }
    }
    if let Some(digest) = digest {
        text.extend_from_slice(
            format!("; values shown cut short, all of them: blake3 {digest}").as_bytes(),
        );
    }
    text.extend_from_slice(b" */");
    text
}
/// The columns of a RowDescription.
pub(crate) fn row_description(body: &[u8]) -> Option<Vec<Column>> {
    let mut f = Fields::new(body);
    let n = f.i16()?;
    (0..n.max(0))
        .map(|_| {
            let name = String::from_utf8_lossy(f.cstr()?).into_owned();
            f.take(6)?;
            let type_oid = f.i32()? as u32;
            f.take(6)?;
            let format = f.i16()?;
            Some(Column {
                name,
                type_oid,
                format,
            })
        })
        .collect()
}

/// The portal and statement names of a Bind message.
fn bind_names(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut f = Fields::new(body);
    let portal = f.cstr()?;
    let statement = f.cstr()?;
    Some((portal, statement))
}

pub struct Back {
    pub reader: MessageReader<ReadHalf<Stream>>,
    pub client: WriteHalf<Stream>,
    pub queue: QueueReceiver,
    pub masker: RowMasker,
    pub gate: Arc<Gate>,
    pub session: SessionInfo,
    /// ParameterStatus values reported during the session.
    pub reported: Vec<(String, String)>,
    /// Transaction status from the last ReadyForQuery.
    pub status: u8,
    /// Whether the upstream already told the client why it is going away.
    pub fatal_forwarded: bool,
    /// What the server has confirmed about statements and portals; this
    /// loop is the one that applies its answers.
    pub names: Arc<Names>,
    /// The portal whose columns the masker holds.
    pub loaded: Option<u64>,
    /// The segment in which the server reported an error: it skips the
    /// rest of it, up to Sync.
    pub failed_segment: Option<u64>,
    /// Rows of each result kept in its audit record.
    pub capture_rows: usize,
    /// Set when the server reports a setting under which Airlock can no
    /// longer vouch for the session: it ends, with this reason.
    pub broken: Option<(&'static str, String)>,
    /// Shared with the front loop.
    pub progress: Arc<Progress>,
    /// Statements that finished since the client was last written to,
    /// their audit records not yet written (see [`Back::record_finished`]).
    pub finished: Unrecorded,
}

/// Whether a statement's result columns are decided only when it runs, so
/// that the description of an earlier run (or of the statement when it was
/// described) may not be this run's. `EXECUTE name` and `FETCH … cursor`
/// return what the prepared statement or cursor is *now*, and PostgreSQL
/// does not check it against the description it gave: a client that
/// redefines the statement and runs its cached `EXECUTE` gets rows of the
/// new types. Their rows are masked by content (types unknown, formats as
/// bound), unless the portal itself was described.
fn shape_decided_at_run(sql: &[u8]) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(b"--") {
            rest = after
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |n| &after[n..]);
        } else if rest.starts_with(b"/*") {
            // PostgreSQL's block comments nest.
            let mut depth = 0usize;
            let mut i = 0;
            while i + 1 < rest.len() {
                match &rest[i..i + 2] {
                    b"/*" => {
                        depth += 1;
                        i += 2;
                    }
                    b"*/" => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => i += 1,
                }
            }
            if depth != 0 {
                return true;
            }
            rest = &rest[i..];
        } else if let Some(after) = rest.strip_prefix(b"(") {
            rest = after;
        } else {
            break;
        }
    }
    let word_len = rest
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let word = &rest[..word_len];
    ["execute", "fetch", "move", "call"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k.as_bytes()))
}

fn with_formats(columns: &[Column], formats: &[i16]) -> Vec<Column> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| Column {
            format: match formats {
                [] => 0,
                [one] => *one,
                many => many.get(i).copied().unwrap_or(0),
            },
            ..c.clone()
        })
        .collect()
}

/// A DataRow's values for the audit capture: text where the bytes are
/// readable text, `\\x…` hex otherwise, `None` for NULL.
fn row_values(frame: &[u8]) -> Option<Vec<Option<String>>> {
    let mut f = Fields::new(frame.get(5..)?);
    let n = f.i16()?.max(0);
    let mut values = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = f.i32()?;
        if len < 0 {
            values.push(None);
            continue;
        }
        let bytes = f.take(len as usize)?;
        let text = std::str::from_utf8(bytes).ok().filter(|t| {
            !t.chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        });
        values.push(Some(match text {
            Some(t) => t.to_string(),
            None => format!("\\x{}", crate::hex::encode(bytes)),
        }));
    }
    Some(values)
}

impl Back {
    pub async fn run(&mut self) -> BackEnd {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut out = BytesMut::with_capacity(64 * 1024);
        let mut count = ResultTally::default();
        let mut front_open = true;
        let mut taken = 0u64;
        loop {
            let before = pending.len();
            front_open = self.queue.take_into(&mut pending) && front_open;
            taken += (pending.len() - before) as u64;
            if pending.is_empty() && self.progress.drained.load(Ordering::Relaxed) != taken {
                self.progress.drained.store(taken, Ordering::Relaxed);
                self.progress.idle.notify_waiters();
            }
            while let Some(head) = pending.front() {
                // The rest of a segment the server is skipping gets no
                // answers: messages the front loop forwarded after the
                // error, and Airlock's own answers queued among them.
                if self.failed_segment == Some(head.segment)
                    && !matches!(head.expect, Expect::Sync | Expect::End)
                {
                    if let Some(skipped) = pending.pop_front() {
                        skipped.expect.settle(&self.names, false);
                    }
                    continue;
                }
                // Airlock's own answers go out as soon as everything before them has.
                match &head.expect {
                    Expect::Inject { .. } => {
                        if let Some(Pending {
                            expect: Expect::Inject { frames, ready },
                            ..
                        }) = pending.pop_front()
                        {
                            out.extend_from_slice(&frames);
                            if ready {
                                out.extend_from_slice(&backend::ready_for_query(self.status));
                            }
                        }
                    }
                    Expect::End => {
                        let _ = write_out(&mut self.client, &mut out).await;
                        return BackEnd::Drained {
                            status: self.status,
                        };
                    }
                    _ => break,
                }
            }
            self.queue.note_backlog(pending.len());
            let flush = !self.reader.has_buffered_message() || out.len() >= FLUSH_AT;
            if flush {
                crate::metrics::get().relayed(Protocol::Postgres, Direction::ToClient, out.len());
                if write_out(&mut self.client, &mut out).await.is_err() {
                    return BackEnd::ClientGone;
                }
                self.record_finished();
            }
            // A message already buffered is read at once: a signal still
            // set is seen on the next wait, and what was queued is taken
            // below either way.
            let msg = if self.reader.has_buffered_message() {
                self.reader.read().await
            } else {
                tokio::select! {
                    biased;
                    // Airlock's own answers, the end, or a kick: taken at the
                    // top of the loop.
                    _ = self.queue.signalled(), if front_open => continue,
                    msg = self.reader.read() => msg,
                }
            };
            // The expectation for `msg` was queued before its frame went
            // upstream: it is here now.
            let before = pending.len();
            front_open = self.queue.take_into(&mut pending) && front_open;
            taken += (pending.len() - before) as u64;
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::info!(session = %self.session.id, error = %e, "upstream connection lost");
                    // After the server's own FATAL the client knows why; a
                    // second error would be one more than PostgreSQL sends.
                    if !self.fatal_forwarded {
                        let text = "the upstream database connection was lost";
                        out.extend_from_slice(&backend::error(
                            Severity::Fatal,
                            "08006",
                            text,
                            None,
                        ));
                    }
                    let _ = write_out(&mut self.client, &mut out).await;
                    self.names.lose("the upstream connection was lost");
                    return BackEnd::UpstreamGone;
                }
            };
            self.on_upstream(msg, &mut pending, &mut out, &mut count);
            if let Some((code, why)) = self.broken.take() {
                tracing::warn!(session = %self.session.id, reason = %why, "session ended by Airlock");
                self.names.lose(&why);
                out.extend_from_slice(&backend::error(Severity::Fatal, code, &why, None));
                let _ = write_out(&mut self.client, &mut out).await;
                return BackEnd::UpstreamGone;
            }
            if !front_open && pending.is_empty() {
                let _ = write_out(&mut self.client, &mut out).await;
                return BackEnd::Abandoned;
            }
        }
    }

    fn on_upstream(
        &mut self,
        msg: Message,
        pending: &mut VecDeque<Pending>,
        out: &mut BytesMut,
        count: &mut ResultTally,
    ) {
        let tag = msg.tag();
        match tag {
            // Asynchronous messages may arrive at any point.
            b'N' | b'A' => {
                let masked = if tag == b'N' {
                    masked_notice(&mut self.masker, &msg)
                } else {
                    masked_notification(&mut self.masker, &msg)
                };
                out.extend_from_slice(masked.as_ref().unwrap_or(msg.frame()));
                return;
            }
            b'S' => {
                let mut f = Fields::new(msg.body());
                if let (Some(n), Some(v)) = (f.cstr(), f.cstr()) {
                    if let Some(broken) = self.guard_parameter(n, v) {
                        self.broken = Some(broken);
                        return;
                    }
                    // The latest value per name: a session that keeps
                    // changing settings must not grow this list.
                    let (name, value) = (
                        String::from_utf8_lossy(n),
                        String::from_utf8_lossy(v).into_owned(),
                    );
                    match self.reported.iter_mut().find(|(k, _)| *k == name) {
                        Some(entry) => entry.1 = value,
                        None => self.reported.push((name.into_owned(), value)),
                    }
                    // `set_config('application_name', email, false)` puts a
                    // value here as surely as in a row.
                    if let Some(masked) = masked_parameter(&mut self.masker, n, v) {
                        out.extend_from_slice(&masked);
                        return;
                    }
                } else if self.masker.is_active() {
                    // Not forwarded unread.
                    return;
                }
                out.extend_from_slice(msg.frame());
                return;
            }
            b'D' => {
                if let Some(Expect::Execute { portal, .. }) = pending.front().map(|p| &p.expect) {
                    let portal = portal.clone();
                    self.load_portal(&portal, msg.frame());
                }
                let start = out.len();
                if !self.masker.mask_row_into(msg.frame(), out) {
                    out.extend_from_slice(msg.frame());
                }
                let frame = &out[start..];
                count.row(frame);
                if count.captured.len() < self.capture_rows {
                    count.captured.extend(row_values(frame));
                }
                return;
            }
            b'd' => {
                let outcome = self.masker.mask_copy_data(msg.frame());
                let frame = outcome.frame_or(msg.frame());
                count.sent(frame);
                out.extend_from_slice(frame);
                return;
            }
            _ => {}
        }
        if tag == b'3'
            && matches!(
                pending.front().map(|p| &p.expect),
                Some(Expect::HiddenClose { .. })
            )
        {
            if let Some(done) = pending.pop_front() {
                done.expect.settle(&self.names, true);
            }
            return;
        }
        if let Some(Expect::HiddenDescribe { def }) = pending.front().map(|p| &p.expect) {
            // Airlock's own Describe: recorded, not forwarded.
            match tag {
                b't' => return,
                b'T' | b'n' => {
                    let columns = if tag == b'T' {
                        row_description(msg.body())
                    } else {
                        Some(Vec::new())
                    };
                    if let Some(columns) = columns {
                        let _ = def.columns.set(columns);
                    }
                    pending.pop_front();
                    return;
                }
                _ => {}
            }
        }
        if let Some(Expect::Refused { frames }) = pending.front().map(|p| &p.expect) {
            if tag == b'E' {
                out.extend_from_slice(frames);
                if let Some(head) = pending.pop_front() {
                    self.skip_segment(head.segment, pending);
                }
                return;
            }
        }
        // Messages that would carry a value past the masker, were they
        // forwarded: COPY BOTH exists only for replication (refused at
        // startup), FunctionCallResponse only for fastpath calls (refused
        // by the front loop).
        if matches!(tag, b'W' | b'V') {
            self.broken = Some((
                "08P01",
                format!(
                    "terminating connection: the server sent a {} message, which Airlock does not relay",
                    if tag == b'W' {
                        "CopyBothResponse"
                    } else {
                        "FunctionCallResponse"
                    }
                ),
            ));
            return;
        }
        let masked = match tag {
            b'E' => masked_notice(&mut self.masker, &msg),
            b'T' => masked_row_description(&mut self.masker, &msg),
            _ => None,
        };
        out.extend_from_slice(masked.as_ref().unwrap_or(msg.frame()));
        if tag == b'E' && is_fatal(msg.body()) {
            self.fatal_forwarded = true;
        }
        let Some(head) = pending.front_mut() else {
            if tag != b'E' {
                tracing::warn!(session = %self.session.id, tag = %(tag as char), "unsolicited upstream message");
                self.names
                    .lose("the server sent an answer Airlock did not expect");
            }
            return;
        };
        self.note_description(&head.expect, tag, msg.body());
        let segment = head.segment;
        let done = match (&mut head.expect, tag) {
            (
                Expect::Query {
                    started,
                    changes,
                    completed,
                    released,
                    ..
                },
                b'C',
            ) => {
                let started = *started;
                self.confirm_query_statement(changes, completed, msg.body());
                let took = self.record_result(msg.body(), started, count);
                if let Some(r) = released {
                    r.ran(ran_summary(msg.body(), took));
                }
                false
            }
            (
                Expect::Execute {
                    started, released, ..
                },
                b'C',
            ) => {
                let started = *started;
                let took = self.record_result(msg.body(), started, count);
                if let Some(mut r) = released.take() {
                    r.ran(ran_summary(msg.body(), took));
                    r.report(&self.gate);
                }
                true
            }
            (Expect::Query { released, .. }, b'Z') => {
                self.status = msg.body().first().copied().unwrap_or(b'I');
                if let Some(r) = released.take() {
                    r.report(&self.gate);
                }
                true
            }
            (Expect::Sync, b'Z') => {
                self.status = msg.body().first().copied().unwrap_or(b'I');
                self.failed_segment = None;
                true
            }
            (
                Expect::Query {
                    changes, released, ..
                },
                b'E',
            ) => {
                // The rest of the query's statements do not run.
                for c in changes.drain(..) {
                    self.names.settle(&c.change, false);
                }
                let error = self.record_error(msg.body(), count);
                if let Some(r) = released {
                    r.failed(error);
                }
                false
            }
            (Expect::Query { .. }, _) => false,
            (Expect::Execute { released, .. }, b'I' | b's') => {
                if let Some(mut r) = released.take() {
                    r.ran(if tag == b's' {
                        "a first batch of rows (portal suspended)".into()
                    } else {
                        "an empty query".into()
                    });
                    r.report(&self.gate);
                }
                true
            }
            (Expect::Execute { .. }, b'T' | b'H' | b'G' | b'd' | b'c') => false,
            (Expect::Parse { .. }, b'1')
            | (Expect::Bind { .. }, b'2')
            | (Expect::Close { .. }, b'3') => true,
            (Expect::DescribeStatement { .. }, b't') => false,
            (Expect::DescribeStatement { .. } | Expect::DescribePortal { .. }, b'T' | b'n') => true,
            (e, b'E') if e.is_extended() => {
                let error = self.record_error(msg.body(), count);
                if let Expect::Execute { released, .. } = e {
                    if let Some(mut r) = released.take() {
                        r.failed(error);
                        r.report(&self.gate);
                    }
                }
                // The server now skips everything up to Sync, and so do we —
                // including what the front loop forwards after this point.
                self.skip_segment(segment, pending);
                return;
            }
            (e, t) => {
                tracing::warn!(session = %self.session.id, expected = ?e, got = %(t as char), "unexpected upstream message");
                self.names
                    .lose("the server sent an answer Airlock did not expect");
                false
            }
        };
        if done {
            if let Some(finished) = pending.pop_front() {
                finished.expect.settle(&self.names, true);
            }
        }
    }

    /// The server reports a setting changed (however it was changed: a
    /// function, a procedure, a setting's side effect). Some settings
    /// Airlock's gate relies on: an encoding in which it reads statements
    /// as the server does, and for confined identities the role the
    /// session runs under. When one moves, the session cannot go on.
    fn guard_parameter(&self, name: &[u8], value: &[u8]) -> Option<(&'static str, String)> {
        if let Some(why) = crate::sql::encoding::reported_parameter_refusal(name, value) {
            return Some(("0A000", format!("terminating connection: {why}")));
        }
        let value = String::from_utf8_lossy(value);
        match name {
            // The gate refuses what would change it; this catches what it
            // cannot read (SQL assembled at run time).
            b"application_name" => {
                let prefix = self.session.application_name_prefix();
                // RESET returns to the connection's `airlock:<identity>`.
                let kept = value == prefix
                    || value.starts_with(&format!("{prefix}:"))
                    || value
                        == crate::sql::application_name::identity_default(&self.session.identity);
                (!kept).then(|| {
                    (
                        "42501",
                        format!(
                            "terminating connection: the session's application_name must keep the \
                             prefix \"{prefix}\" that names it in the database's logs"
                        ),
                    )
                })
            }
            b"session_authorization" | b"is_superuser"
                if self.session.confinement.is_confined() =>
            {
                let changed = match name {
                    b"is_superuser" => value == "on",
                    _ => true,
                };
                changed.then(|| {
                    (
                        "42501",
                        format!(
                            "terminating connection: the session's {} changed to {value}, but identity \
                             \"{}\" is confined to its upstream role",
                            String::from_utf8_lossy(name),
                            self.session.identity
                        ),
                    )
                })
            }
            _ => None,
        }
    }

    /// After an error the server skips the rest of `segment`, up to Sync.
    fn skip_segment(&mut self, segment: u64, pending: &mut VecDeque<Pending>) {
        self.failed_segment = Some(segment);
        while pending.front().is_some_and(|p| {
            p.segment == segment && !matches!(p.expect, Expect::Sync | Expect::End)
        }) {
            if let Some(skipped) = pending.pop_front() {
                skipped.expect.settle(&self.names, false);
            }
        }
    }

    /// A CommandComplete of a simple query: if the statement that ended is
    /// one that changes the statement namespace, the change now holds —
    /// provided the server confirms the very command Airlock expected there.
    fn confirm_query_statement(
        &mut self,
        changes: &mut VecDeque<QueryChange>,
        completed: &mut usize,
        body: &[u8],
    ) {
        let index = *completed;
        *completed += 1;
        let tag = Fields::new(body).cstr().unwrap_or_default();
        let expected = changes.front().filter(|c| c.index == index).map(|c| c.tag);
        let names_changing = [
            &b"PREPARE"[..],
            b"DEALLOCATE",
            b"DEALLOCATE ALL",
            b"DISCARD ALL",
        ];
        match expected {
            Some(want) if want.as_bytes() == tag => {
                if let Some(c) = changes.pop_front() {
                    self.names.settle(&c.change, true);
                }
            }
            Some(_) => {
                self.names.lose(
                    "a statement of a simple query completed as another command than expected",
                );
                if let Some(c) = changes.pop_front() {
                    self.names.settle(&c.change, false);
                }
            }
            None if names_changing.contains(&tag) => {
                self.names
                    .lose("the server reported a PREPARE or DEALLOCATE Airlock did not see");
            }
            None => {}
        }
    }

    /// Keeps track of result columns as the upstream answers Bind and
    /// Describe, and tells the masker about those of a simple query's rows
    /// and of COPY output.
    fn note_description(&mut self, head: &Expect, tag: u8, body: &[u8]) {
        match (head, tag) {
            (Expect::Query { .. }, b'T') => {
                self.loaded = None;
                match row_description(body) {
                    Some(columns) => self.masker.set_columns(&columns),
                    None => self.masker.set_unknown_columns(&[], 0),
                }
            }
            (Expect::Query { .. } | Expect::Execute { .. }, b'H') => {
                self.masker.start_copy(body.first() == Some(&1));
            }
            (Expect::DescribeStatement { def: Some(def) }, b'T') => {
                if let Some(columns) = row_description(body) {
                    let _ = def.columns.set(columns);
                }
            }
            (Expect::DescribeStatement { def: Some(def) }, b'n') => {
                let _ = def.columns.set(Vec::new());
            }
            (Expect::DescribePortal { def: Some(def) }, b'T') => {
                if let Some(columns) = row_description(body) {
                    let _ = def.columns.set(columns);
                    self.loaded = None;
                }
            }
            (Expect::Bind { portal, .. }, b'2') => {
                let shape_fixed = match &portal.statement.source {
                    Source::Parse { sql, .. } => !shape_decided_at_run(sql),
                    Source::SqlPrepare { .. } => true,
                };
                if let Some(columns) = portal.statement.columns.get().filter(|_| shape_fixed) {
                    let _ = portal.columns.set(with_formats(columns, &portal.formats));
                }
            }
            _ => {}
        }
    }

    /// Gives the masker the columns of the portal an Execute runs.
    fn load_portal(&mut self, portal: &PortalDef, row: &[u8]) {
        if self.loaded == Some(portal.id) {
            return;
        }
        match portal.columns.get() {
            Some(columns) => self.masker.set_columns(columns),
            // Bound from a statement never described: the format codes are
            // known, the types are not.
            None => {
                let count = row
                    .get(5..7)
                    .map_or(0, |n| u16::from_be_bytes([n[0], n[1]]) as usize);
                self.masker.set_unknown_columns(&portal.formats, count);
            }
        }
        self.loaded = Some(portal.id);
    }

    /// Notes a statement's result (`body` is its CommandComplete) for its
    /// audit record; returns how long it took.
    fn record_result(
        &mut self,
        body: &[u8],
        started: Instant,
        count: &mut ResultTally,
    ) -> Duration {
        let took = started.elapsed();
        let masked = self.masker.take_stats();
        // What was masked is learned now, before the client can send its
        // next statement: the record can wait, the learning cannot.
        self.gate.learn_masked(&masked);
        self.finished
            .result(command_tag(body).into_owned(), took, masked, count);
        if self.finished.is_full() {
            self.record_finished();
        }
        took
    }

    /// Notes a statement's error for its audit record; rows it sent before
    /// failing are not carried into the next statement's result.
    fn record_error(&mut self, body: &[u8], count: &mut ResultTally) -> String {
        *count = ResultTally::default();
        self.masker.take_stats();
        let fields = super::codec::error_fields(body);
        let get = |c: u8| {
            fields
                .iter()
                .find(|(k, _)| *k == c)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        // Server messages quote values ("Key (email)=(…) already exists"):
        // the log gets them masked like statements.
        let message = self.gate.masker().mask_sql_literals(get(b'M'));
        let summary = format!("{} {message}", get(b'C'));
        self.finished.error(get(b'C').to_string(), message);
        if self.finished.is_full() {
            self.record_finished();
        }
        summary
    }

    /// Writes the audit records of the statements that finished: once
    /// what came with them is on its way to the client, and when the loop
    /// ends, however it ends (see [`Unrecorded`]).
    pub fn record_finished(&mut self) {
        self.finished.record(self.gate.audit(), &self.session.id);
    }
}

/// The command tag of a CommandComplete message body.
fn command_tag(body: &[u8]) -> std::borrow::Cow<'_, str> {
    Fields::new(body)
        .cstr()
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
}

/// What a released statement did, for its approvers: `UPDATE 3 in 1.2 ms`.
fn ran_summary(body: &[u8], took: Duration) -> String {
    format!(
        "{} in {:.1} ms",
        command_tag(body),
        took.as_secs_f64() * 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::shape_decided_at_run;
    use super::{queue, Expect, Pending, QUEUE_DEPTH};
    use std::collections::VecDeque;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    /// A waker that counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn sync(segment: u64) -> Pending {
        Pending {
            segment,
            expect: Expect::Sync,
        }
    }

    #[test]
    fn a_full_queue_holds_the_front_loop_until_the_back_loop_answers() {
        let (tx, rx) = queue();
        let (front, front_waker) = counting();
        let (back, back_waker) = counting();
        let mut front_cx = Context::from_waker(&front_waker);
        let mut back_cx = Context::from_waker(&back_waker);
        let mut pending = VecDeque::new();

        // Queued expectations wake nobody: the back loop takes them when
        // the upstream answers.
        let mut signalled = std::pin::pin!(rx.signalled());
        assert!(signalled.as_mut().poll(&mut back_cx).is_pending());
        for segment in 0..QUEUE_DEPTH as u64 {
            let mut send = std::pin::pin!(tx.send(sync(segment)));
            assert_eq!(send.as_mut().poll(&mut front_cx), Poll::Ready(Ok(())));
        }
        assert_eq!(back.0.load(Ordering::SeqCst), 0);
        assert!(rx.take_into(&mut pending));
        assert_eq!(pending.len(), QUEUE_DEPTH);
        // Nothing changed: taken again without the lock, nothing new.
        assert!(rx.take_into(&mut pending));
        assert_eq!(pending.len(), QUEUE_DEPTH);

        // Full: the front loop waits and the back loop is told to look.
        {
            let mut send = std::pin::pin!(tx.send(sync(u64::MAX)));
            assert!(send.as_mut().poll(&mut front_cx).is_pending());
            assert_eq!(back.0.load(Ordering::SeqCst), 1);
            assert!(signalled.as_mut().poll(&mut back_cx).is_ready());
            // Still nothing answered: taking again frees no room.
            assert!(rx.take_into(&mut pending));
            assert!(send.as_mut().poll(&mut front_cx).is_pending());
            assert_eq!(front.0.load(Ordering::SeqCst), 0);

            // One answered: the front loop is woken and its message queued,
            // and the back loop sees it on its next look.
            pending.pop_front();
            rx.note_backlog(pending.len());
            assert_eq!(front.0.load(Ordering::SeqCst), 1);
            assert_eq!(send.as_mut().poll(&mut front_cx), Poll::Ready(Ok(())));
            assert!(rx.take_into(&mut pending));
            assert_eq!(pending.len(), QUEUE_DEPTH);
            assert_eq!(pending.back().map(|p| p.segment), Some(u64::MAX));
        }

        // The front loop gone: the back loop is woken, and told so once
        // nothing is left to take.
        let mut signalled = std::pin::pin!(rx.signalled());
        assert!(signalled.as_mut().poll(&mut back_cx).is_pending());
        drop(tx);
        assert_eq!(back.0.load(Ordering::SeqCst), 2);
        assert!(!rx.take_into(&mut pending));
    }

    #[test]
    fn statements_whose_columns_are_decided_at_run() {
        for sql in [
            "EXECUTE s",
            "  execute s(1)",
            "-- run it\nEXECUTE s",
            "/* a /* nested */ comment */ FETCH ALL FROM c",
            "/* unterminated",
            "(EXECUTE s)",
            "CALL p()",
        ] {
            assert!(shape_decided_at_run(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "SELECT v FROM t",
            "/* /* */ EXECUTE */ SELECT 1",
            "executed",
            "WITH x AS (SELECT 1) SELECT * FROM x",
        ] {
            assert!(!shape_decided_at_run(sql.as_bytes()), "{sql}");
        }
    }
}
