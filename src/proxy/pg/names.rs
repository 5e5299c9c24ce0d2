//! What one session's server has confirmed about its prepared statements
//! and portals — the relay's only source for "which statement does this
//! name run".
//!
//! PostgreSQL keeps one namespace of prepared statements, shared by the
//! protocol's Parse and SQL `PREPARE`, and one of portals. A name changes
//! meaning only when the server says so: ParseComplete, BindComplete,
//! CloseComplete, or the CommandComplete of `PREPARE` / `DEALLOCATE` /
//! `DISCARD ALL`. A client that pipelines can send a Bind before the
//! answer to an earlier Parse is in, so the front loop asks [`Names`]
//! with the changes of its current *segment* (the messages since the last
//! Sync or Query) laid over the confirmed state:
//!
//! * a change made earlier in the same segment is certain if the later
//!   message is reached at all — after any error the server skips to Sync;
//! * a change from an earlier segment that is not yet answered may have
//!   failed, so the name is [`Lookup::Unsettled`] and the front waits for
//!   the answer before deciding;
//! * anything Airlock cannot account for marks the model lost, and every
//!   later use of a name is refused.
//!
//! Names are kept the way the server's hash tables key them: the first
//! `NAMEDATALEN - 1` bytes.

use crate::gate::Checked;
use crate::mask::Column;
use crate::sql::Classes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::sync::Notify;

/// PostgreSQL compares statement and portal names on their first 63 bytes
/// (`NAMEDATALEN - 1`): two longer names with that prefix are one name.
pub const NAME_BYTES: usize = 63;

/// A name as the server keys it.
pub fn key(name: &[u8]) -> Vec<u8> {
    name[..name.len().min(NAME_BYTES)].to_vec()
}

/// Where a prepared statement came from, and so how its runs are judged.
#[derive(Debug)]
pub enum Source {
    /// A protocol Parse, judged when it arrived.
    Parse {
        checked: Checked,
        sql: Vec<u8>,
        /// The statements its SQL `EXECUTE`s named, as they were when it
        /// was judged. The server looks them up only when a portal of it
        /// runs: a run after any of them changed is not the run judged.
        executes: Vec<Executed>,
    },
    /// A SQL `PREPARE name AS …` in a simple query; a Bind of it is judged
    /// as `EXECUTE name` would be.
    SqlPrepare { name: String, classes: Classes },
}

/// A prepared statement named by an `EXECUTE` in a Parse: its key, and the
/// definition it had then (`None` when it was not defined). Weak, so that
/// the definition is not kept alive, yet never mistaken for a newer one:
/// the allocation stays while a `Weak` points at it.
#[derive(Debug)]
pub struct Executed {
    pub name: Vec<u8>,
    pub def: Option<Weak<StatementDef>>,
}

impl Executed {
    pub fn new(name: Vec<u8>, def: Option<&Arc<StatementDef>>) -> Self {
        Self {
            name,
            def: def.map(Arc::downgrade),
        }
    }

    /// Whether a run with the name defined as `now` runs what was judged:
    /// the same definition, or none at all (the server then answers that
    /// the statement does not exist, and runs nothing).
    pub fn runs_as_judged(&self, now: Option<&Arc<StatementDef>>) -> bool {
        match (&self.def, now) {
            (_, None) => true,
            (Some(then), Some(now)) => Weak::ptr_eq(then, &Arc::downgrade(now)),
            (None, Some(_)) => false,
        }
    }
}

/// One definition of a prepared statement. A name that is redefined gets a
/// new `StatementDef`; nothing learned about the old one carries over.
#[derive(Debug)]
pub struct StatementDef {
    pub source: Source,
    /// Whether each run waits for approvers (a held Parse).
    pub held: bool,
    /// Result columns, once the server has described this definition.
    pub columns: OnceLock<Vec<Column>>,
}

impl StatementDef {
    pub fn parsed(
        checked: Checked,
        sql: Vec<u8>,
        held: bool,
        executes: Vec<Executed>,
    ) -> Arc<Self> {
        Arc::new(Self {
            source: Source::Parse {
                checked,
                sql,
                executes,
            },
            held,
            columns: OnceLock::new(),
        })
    }

    pub fn sql_prepared(name: String, classes: Classes) -> Arc<Self> {
        Arc::new(Self {
            source: Source::SqlPrepare { name, classes },
            held: false,
            columns: OnceLock::new(),
        })
    }

    /// Whether running it may act where Airlock cannot see.
    pub fn opaque(&self) -> bool {
        let classes = match &self.source {
            Source::Parse { checked, .. } => checked.classification.classes(),
            Source::SqlPrepare { classes, .. } => *classes,
        };
        classes.contains(crate::sql::StatementClass::Unknown)
    }

    /// The classes an `EXECUTE` of this statement runs with. A Parse whose
    /// own text is an `EXECUTE` runs whatever its inner name means at
    /// that moment, which an outer `EXECUTE` cannot check: unknown.
    pub fn classes(&self) -> Classes {
        match &self.source {
            Source::Parse {
                checked, executes, ..
            } if !executes.is_empty() => checked
                .classification
                .classes()
                .union(Classes::of(&[crate::sql::StatementClass::Unknown])),
            Source::Parse { checked, .. } => checked.classification.classes(),
            Source::SqlPrepare { classes, .. } => *classes,
        }
    }

    /// The statements its `EXECUTE`s named when it was judged.
    pub fn executes(&self) -> &[Executed] {
        match &self.source {
            Source::Parse { executes, .. } => executes,
            Source::SqlPrepare { .. } => &[],
        }
    }
}

/// How an Execute of a portal is judged.
#[derive(Debug)]
pub enum PortalGate {
    Allowed,
    /// Waits for approval of this statement (and text) at its first Execute.
    Held(Arc<(Checked, Vec<u8>)>),
}

/// One binding of a portal.
#[derive(Debug)]
pub struct PortalDef {
    pub statement: Arc<StatementDef>,
    pub formats: Vec<i16>,
    pub gate: PortalGate,
    /// Set once a held portal's approval was given: later Executes of the
    /// same portal continue the one approved run.
    pub released: AtomicBool,
    /// The Bind message's parameters as text, for approvers of a held run.
    pub parameters: Vec<Option<String>>,
    /// A digest of every parameter value when `parameters` shows them cut
    /// short: the approval binds all of them.
    pub parameters_digest: Option<String>,
    /// Result columns with this binding's formats, once known.
    pub columns: OnceLock<Vec<Column>>,
    /// Unique in the process: which portal the masker's columns are for.
    pub id: u64,
}

impl PortalDef {
    pub fn new(
        statement: Arc<StatementDef>,
        formats: Vec<i16>,
        gate: PortalGate,
        parameters: Vec<Option<String>>,
        parameters_digest: Option<String>,
    ) -> Arc<Self> {
        static IDS: AtomicU64 = AtomicU64::new(0);
        Arc::new(Self {
            statement,
            formats,
            gate,
            released: AtomicBool::new(false),
            parameters,
            parameters_digest,
            columns: OnceLock::new(),
            id: IDS.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// A change the front loop asked of the server, applied here only when the
/// server confirms it.
#[derive(Clone, Debug)]
pub enum Change {
    Statement(Vec<u8>, Option<Arc<StatementDef>>),
    Portal(Vec<u8>, Option<Arc<PortalDef>>),
    /// `DEALLOCATE ALL`.
    ClearStatements,
    /// `DISCARD ALL`: statements and portals.
    ClearAll,
}

/// The answer to "what does this name mean when the server reaches it".
#[derive(Debug)]
pub enum Lookup<T> {
    /// The definition, or `None` when the name is not defined.
    Known(Option<T>),
    /// An earlier, unanswered change may or may not have taken effect.
    Unsettled,
    /// Airlock lost track of the session's names; the reason.
    Lost(String),
}

/// A map keyed by statement or portal name. The unnamed one, which nearly
/// every query uses, has a slot of its own: an empty key in a hash map is
/// compared with `memcmp` on the empty vector's dangling pointer, and in
/// the profile those calls cost about 0.7 µs per transaction (4 % of the
/// gateway's user time), most likely a stall of the masked load `memcmp`
/// issues even for zero bytes.
#[derive(Debug)]
struct ByName<V> {
    unnamed: Option<V>,
    named: HashMap<Vec<u8>, V>,
}

impl<V> Default for ByName<V> {
    fn default() -> Self {
        Self {
            unnamed: None,
            named: HashMap::new(),
        }
    }
}

impl<V> ByName<V> {
    fn get(&self, name: &[u8]) -> Option<&V> {
        match name {
            [] => self.unnamed.as_ref(),
            _ => self.named.get(name),
        }
    }

    fn get_mut(&mut self, name: &[u8]) -> Option<&mut V> {
        match name {
            [] => self.unnamed.as_mut(),
            _ => self.named.get_mut(name),
        }
    }

    fn contains_key(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    fn insert(&mut self, name: &[u8], value: V) -> Option<V> {
        match name {
            [] => self.unnamed.replace(value),
            _ => self.named.insert(name.to_vec(), value),
        }
    }

    fn remove(&mut self, name: &[u8]) -> Option<V> {
        match name {
            [] => self.unnamed.take(),
            _ => self.named.remove(name),
        }
    }

    /// The value of `name`, inserted as the default when absent.
    fn get_or_default(&mut self, name: &[u8]) -> &mut V
    where
        V: Default,
    {
        match name {
            [] => self.unnamed.get_or_insert_with(V::default),
            _ => {
                // Looked up first: the key is copied only when new.
                if !self.named.contains_key(name) {
                    self.named.insert(name.to_vec(), V::default());
                }
                self.named.get_mut(name).expect("present")
            }
        }
    }

    fn clear(&mut self) {
        self.unnamed = None;
        self.named.clear();
    }

    fn len(&self) -> usize {
        self.named.len() + usize::from(self.unnamed.is_some())
    }
}

#[derive(Default)]
struct Confirmed {
    statements: ByName<Arc<StatementDef>>,
    portals: ByName<Arc<PortalDef>>,
    /// Unanswered changes per name, and of the clearing kinds.
    in_flight_statements: ByName<u32>,
    in_flight_portals: ByName<u32>,
    in_flight_clears: u32,
    lost: Option<String>,
}

/// The confirmed names of one session, shared by its front and back loops.
#[derive(Default)]
pub struct Names {
    confirmed: Mutex<Confirmed>,
    /// Woken whenever a change is settled.
    settled: Notify,
}

/// The front loop's changes in the current segment, laid over [`Names`].
#[derive(Default)]
pub struct Segment {
    statements: ByName<Option<Arc<StatementDef>>>,
    portals: ByName<Option<Arc<PortalDef>>>,
}

impl Segment {
    /// A Sync or a Query ends the segment.
    pub fn end(&mut self) {
        *self = Segment::default();
    }
}

impl Names {
    fn lock(&self) -> std::sync::MutexGuard<'_, Confirmed> {
        self.confirmed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `change` as asked of the server and lays it over `segment`.
    pub fn ask(&self, segment: &mut Segment, change: &Change) {
        let mut c = self.lock();
        match change {
            Change::Statement(name, def) => {
                *c.in_flight_statements.get_or_default(name) += 1;
                segment.statements.insert(name, def.clone());
            }
            Change::Portal(name, def) => {
                *c.in_flight_portals.get_or_default(name) += 1;
                segment.portals.insert(name, def.clone());
            }
            Change::ClearStatements | Change::ClearAll => {
                drop(c);
                self.ask_unsettled(segment, change);
            }
        }
    }

    /// Counts `change` as asked of the server without laying it over
    /// `segment`: later messages must wait for its answer (a statement of
    /// a simple query, whose failure does not make the server skip them).
    pub fn ask_unsettled(&self, segment: &mut Segment, change: &Change) {
        let mut c = self.lock();
        match change {
            Change::Statement(name, _) => {
                *c.in_flight_statements.get_or_default(name) += 1;
                segment.statements.remove(name);
            }
            Change::Portal(name, _) => {
                *c.in_flight_portals.get_or_default(name) += 1;
                segment.portals.remove(name);
            }
            Change::ClearStatements => {
                c.in_flight_clears += 1;
                segment.statements.clear();
            }
            Change::ClearAll => {
                c.in_flight_clears += 1;
                segment.statements.clear();
                segment.portals.clear();
            }
        }
    }

    /// The server answered `change`: it took effect when `applied`.
    pub fn settle(&self, change: &Change, applied: bool) {
        let mut guard = self.lock();
        let c = &mut *guard;
        let done = |map: &mut ByName<u32>, name: &[u8]| {
            if let Some(n) = map.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    map.remove(name);
                }
            }
        };
        match change {
            Change::Statement(name, def) => {
                done(&mut c.in_flight_statements, name);
                if applied {
                    match def {
                        Some(d) => c.statements.insert(name, d.clone()),
                        None => c.statements.remove(name),
                    };
                }
            }
            Change::Portal(name, def) => {
                done(&mut c.in_flight_portals, name);
                if applied {
                    match def {
                        Some(d) => c.portals.insert(name, d.clone()),
                        None => c.portals.remove(name),
                    };
                }
            }
            Change::ClearStatements | Change::ClearAll => {
                c.in_flight_clears = c.in_flight_clears.saturating_sub(1);
                if applied {
                    c.statements.clear();
                    if matches!(change, Change::ClearAll) {
                        c.portals.clear();
                    }
                }
            }
        }
        drop(guard);
        self.settled.notify_waiters();
    }

    /// Something happened that Airlock cannot account for: from now on no
    /// name is trusted.
    pub fn lose(&self, why: &str) {
        let mut c = self.lock();
        if c.lost.is_none() {
            tracing::warn!(
                reason = why,
                "lost track of the session's prepared statements"
            );
            c.lost = Some(why.to_string());
        }
        drop(c);
        self.settled.notify_waiters();
    }

    pub fn statement(&self, segment: &Segment, name: &[u8]) -> Lookup<Arc<StatementDef>> {
        if let Some(def) = segment.statements.get(name) {
            return Lookup::Known(def.clone());
        }
        let c = self.lock();
        if let Some(why) = &c.lost {
            return Lookup::Lost(why.clone());
        }
        if c.in_flight_clears > 0 || c.in_flight_statements.contains_key(name) {
            return Lookup::Unsettled;
        }
        Lookup::Known(c.statements.get(name).cloned())
    }

    pub fn portal(&self, segment: &Segment, name: &[u8]) -> Lookup<Arc<PortalDef>> {
        if let Some(def) = segment.portals.get(name) {
            return Lookup::Known(def.clone());
        }
        let c = self.lock();
        if let Some(why) = &c.lost {
            return Lookup::Lost(why.clone());
        }
        if c.in_flight_clears > 0 || c.in_flight_portals.contains_key(name) {
            return Lookup::Unsettled;
        }
        Lookup::Known(c.portals.get(name).cloned())
    }

    /// How many statements and portals the server holds for the session.
    pub fn counts(&self) -> (usize, usize) {
        let c = self.lock();
        (c.statements.len(), c.portals.len())
    }

    /// Resolves when some change settles (or the model is lost); the caller
    /// looks again. Register before looking to miss no wake-up.
    pub fn settled(&self) -> tokio::sync::futures::Notified<'_> {
        self.settled.notified()
    }
}

/// What a statement of a simple query does to the statement namespace,
/// with the command tag the server confirms it by.
pub fn sql_change(statement: &crate::sql::Statement) -> Option<(Change, &'static str)> {
    if let Some(name) = &statement.prepares {
        let def = StatementDef::sql_prepared(name.clone(), statement.classes);
        return Some((Change::Statement(sql_key(name), Some(def)), "PREPARE"));
    }
    // Only DISCARD and DEALLOCATE change names, and keywords are spelled
    // in ASCII: a statement without either word needs no second lexing.
    let text = statement.text.as_bytes();
    if !crate::sql::contains_ignore_case(text, b"discard")
        && !crate::sql::contains_ignore_case(text, b"deallocate")
    {
        return None;
    }
    let lexed = crate::sql::lexer::lex(&statement.text, crate::sql::Dialect::Postgres).ok()?;
    let tokens = &lexed.first()?.tokens;
    let word = |i: usize| {
        tokens
            .get(i)
            .filter(|t| t.kind == crate::sql::lexer::Kind::Word)
    };
    match (word(0), tokens.get(1)) {
        (Some(lead), Some(t)) if lead.is_word("DISCARD") && t.is_word("ALL") => {
            Some((Change::ClearAll, "DISCARD ALL"))
        }
        (Some(lead), Some(_)) if lead.is_word("DEALLOCATE") => {
            let at = if tokens[1].is_word("PREPARE") { 2 } else { 1 };
            let target = tokens.get(at)?;
            if target.is_word("ALL") {
                return Some((Change::ClearStatements, "DEALLOCATE ALL"));
            }
            let name = match target.kind {
                crate::sql::lexer::Kind::QuotedIdent => target.text.clone(),
                crate::sql::lexer::Kind::Word => target.text.to_ascii_lowercase(),
                _ => return None,
            };
            Some((Change::Statement(sql_key(&name), None), "DEALLOCATE"))
        }
        _ => None,
    }
}

/// A SQL identifier as the server stores it: truncated to fewer than
/// NAMEDATALEN bytes on a character boundary.
pub fn sql_key(name: &str) -> Vec<u8> {
    let mut end = name.len().min(NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.as_bytes()[..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> Arc<StatementDef> {
        StatementDef::sql_prepared("s".into(), Classes::default())
    }

    fn known(l: Lookup<Arc<StatementDef>>) -> Option<Arc<StatementDef>> {
        match l {
            Lookup::Known(d) => d,
            other => panic!("expected a settled answer, got {other:?}"),
        }
    }

    #[test]
    fn a_change_counts_only_once_confirmed() {
        let names = Names::default();
        let mut seg = Segment::default();
        let first = def();
        let parse = Change::Statement(b"s1".to_vec(), Some(first.clone()));
        names.ask(&mut seg, &parse);
        // Same segment: the Bind is reached only if the Parse succeeded.
        assert!(Arc::ptr_eq(
            &known(names.statement(&seg, b"s1")).unwrap(),
            &first
        ));
        seg.end();
        // Next segment: the Parse may have failed.
        assert!(matches!(names.statement(&seg, b"s1"), Lookup::Unsettled));
        names.settle(&parse, true);
        assert!(Arc::ptr_eq(
            &known(names.statement(&seg, b"s1")).unwrap(),
            &first
        ));

        // A redefinition the server refuses (42P05) leaves the first.
        let second = Change::Statement(b"s1".to_vec(), Some(def()));
        names.ask(&mut seg, &second);
        seg.end();
        names.settle(&second, false);
        assert!(Arc::ptr_eq(
            &known(names.statement(&seg, b"s1")).unwrap(),
            &first
        ));
    }

    #[test]
    fn clears_unsettle_every_name() {
        let names = Names::default();
        let mut seg = Segment::default();
        let p = Change::Statement(b"a".to_vec(), Some(def()));
        names.ask(&mut seg, &p);
        names.settle(&p, true);
        seg.end();
        names.ask(&mut seg, &Change::ClearStatements);
        assert!(matches!(names.statement(&seg, b"a"), Lookup::Unsettled));
        seg.end();
        assert!(matches!(names.statement(&seg, b"a"), Lookup::Unsettled));
        names.settle(&Change::ClearStatements, true);
        assert!(known(names.statement(&seg, b"a")).is_none());
    }

    #[test]
    fn a_lost_model_answers_nothing() {
        let names = Names::default();
        names.lose("test");
        assert!(matches!(
            names.statement(&Segment::default(), b"x"),
            Lookup::Lost(_)
        ));
    }

    #[test]
    fn names_are_keyed_like_the_server() {
        let long = [b'a'; 80];
        assert_eq!(key(&long).len(), NAME_BYTES);
        assert_eq!(key(b"s1"), b"s1");
        let name = format!("{}é", "a".repeat(62));
        assert_eq!(sql_key(&name).len(), 62);
    }

    #[test]
    fn discard_and_deallocate_are_seen_however_written() {
        let change = |sql: &str| {
            let c = crate::sql::classify(sql, crate::sql::Dialect::Postgres);
            c.statements
                .first()
                .and_then(sql_change)
                .map(|(_, tag)| tag)
        };
        assert_eq!(change("/* first */ DEALLOCATE ALL"), Some("DEALLOCATE ALL"));
        assert_eq!(change("deallocate prepare \"S\""), Some("DEALLOCATE"));
        assert_eq!(change("  DiScArD  all"), Some("DISCARD ALL"));
        assert_eq!(change("PREPARE p AS SELECT 1"), Some("PREPARE"));
        assert_eq!(change("SELECT 'deallocate all'"), None);
        assert_eq!(change("SELECT 1"), None);
    }
}
