//! Statement classification: what a piece of SQL would do if it ran.
//!
//! [`classify`] splits a query into statements with a dialect-aware
//! [`lexer`] of our own (comments, every quoting form, MySQL executable
//! comments), then classifies each statement from its leading keywords, a
//! scan of every token for functions with side effects, and — for objects,
//! functions and nested writes — the sqlparser AST.
//!
//! **Fail closed**: a statement whose leading keywords are not in the
//! classifier's table, that sqlparser cannot parse, whose quoting is
//! ambiguous, or that the lexer cannot finish, is [`StatementClass::Unknown`]
//! (together with whatever dangerous class was still recognised). The
//! default policy holds `unknown`.
//!
//! # The classes
//!
//! | class | meaning | examples |
//! |---|---|---|
//! | `read` | reads data, changes nothing | `SELECT`, `VALUES`, `TABLE t`, `EXPLAIN` (no ANALYZE), `SHOW CREATE`, cursors `FETCH` |
//! | `write` | changes rows (or sequences, large objects) | `INSERT`/`UPDATE`/`DELETE`/`MERGE`/`REPLACE`, `COPY … FROM STDIN`, `nextval()`, `LOCK`, data-modifying CTEs (with `read`) |
//! | `export` | moves data out of the reach of masking and audit: to files, programs, other servers, new tables, or as a bulk stream | `COPY … TO`, `SELECT … INTO t`, `CREATE TABLE … AS`, `INTO OUTFILE/DUMPFILE`, `LOAD DATA INFILE`, `pg_read_file()`, `lo_export()`, `LOAD_FILE()`, dblink, foreign servers, FEDERATED |
//! | `ddl` | changes the schema or stored code | `CREATE/ALTER/DROP` of tables, views, indexes, functions, procedures, triggers, events, rules; `TRUNCATE`, `RENAME`, `COMMENT`, `VACUUM`/`CLUSTER`/`REINDEX` |
//! | `privilege` | changes who may do what, or who the session is | `GRANT`, `REVOKE`, `CREATE/ALTER/DROP ROLE/USER`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `RESET ROLE`/`RESET ALL`, `set_config('role', …)`, `SET PASSWORD`, `ALTER DEFAULT PRIVILEGES`, policies and row-level security, `OWNER TO` |
//! | `admin` | operates the server itself | `ALTER SYSTEM`, `SET GLOBAL`, `INSTALL PLUGIN/SONAME`, `CREATE EXTENSION`, `KILL`, `pg_terminate_backend()`, `LOAD 'lib'`, COPY to/from server files or programs, `SHUTDOWN` |
//! | `session` | changes only this session's state | `SET` (other settings), `SHOW`, `BEGIN`/`COMMIT`/`ROLLBACK`/`SAVEPOINT`, `DISCARD`, `LISTEN`, `USE`, `DEALLOCATE` |
//! | `unknown` | cannot be analysed: unparseable, ambiguous, or opaque code | parse failures, `DO` blocks, `CALL`, `EXECUTE` of a statement not seen prepared, `PREPARE … FROM @var`, dynamic-SQL functions (`query_to_xml`) |
//!
//! A statement can have several classes: `WITH d AS (DELETE …) SELECT …` is
//! `read` + `write`; `SELECT pg_read_file('…')` is `read` + `export`;
//! `COPY t TO '/tmp/f'` is `export` + `admin`. Words inside literals,
//! quoted identifiers and comments never count: `SELECT 'DROP TABLE t'` and
//! `SELECT "grant" FROM t` are `read`.

pub mod classify;
pub mod lexer;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Which SQL dialect a statement is written in (from the listener it came to).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    Postgres,
    Mysql,
}

/// What a statement does. See the module docs for the exact meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatementClass {
    Read,
    Write,
    Export,
    Ddl,
    Privilege,
    Admin,
    Session,
    Unknown,
}

impl StatementClass {
    pub const ALL: [StatementClass; 8] = [
        StatementClass::Read,
        StatementClass::Write,
        StatementClass::Export,
        StatementClass::Ddl,
        StatementClass::Privilege,
        StatementClass::Admin,
        StatementClass::Session,
        StatementClass::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StatementClass::Read => "read",
            StatementClass::Write => "write",
            StatementClass::Export => "export",
            StatementClass::Ddl => "ddl",
            StatementClass::Privilege => "privilege",
            StatementClass::Admin => "admin",
            StatementClass::Session => "session",
            StatementClass::Unknown => "unknown",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for StatementClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of classes (a bit set: classification runs on every statement).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Classes(u8);

impl Classes {
    pub fn of(classes: &[StatementClass]) -> Self {
        let mut set = Self::default();
        for &c in classes {
            set.insert(c);
        }
        set
    }

    pub fn insert(&mut self, class: StatementClass) {
        self.0 |= class.bit();
    }

    pub fn remove(&mut self, class: StatementClass) {
        self.0 &= !class.bit();
    }

    pub fn contains(self, class: StatementClass) -> bool {
        self.0 & class.bit() != 0
    }

    pub fn union(self, other: Classes) -> Classes {
        Classes(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = StatementClass> {
        StatementClass::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

impl fmt::Debug for Classes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(|c| c.name()))
            .finish()
    }
}

impl fmt::Display for Classes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(|c| c.name()).collect();
        f.write_str(&names.join("+"))
    }
}

/// One classified statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The statement's code: comments removed, MySQL executable comments
    /// unwrapped, surrounding whitespace trimmed.
    pub text: String,
    pub classes: Classes,
    /// Tables, views and other objects touched, schema-qualified where the
    /// statement says so; unquoted names lower-cased.
    pub objects: Vec<String>,
    /// Functions called, lower-cased, schema-qualified where written so.
    pub functions: Vec<String>,
    /// Why the statement is `unknown` or has a class a reader might not
    /// expect (shown by `airlock policy check`).
    pub notes: Vec<String>,
    /// For `PREPARE name …`: the name, so that a later `EXECUTE name` can be
    /// given the prepared statement's classes.
    pub prepares: Option<String>,
    /// For `EXECUTE name`: the name of the prepared statement it runs.
    pub executes: Option<String>,
}

/// A whole query, split into statements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classification {
    pub statements: Vec<Statement>,
}

impl Classification {
    /// Every class of every statement.
    pub fn classes(&self) -> Classes {
        self.statements
            .iter()
            .fold(Classes::default(), |acc, s| acc.union(s.classes))
    }
}

/// Classifies `sql`. Never panics; never fails: whatever cannot be
/// analysed is `unknown`.
pub fn classify(sql: &str, dialect: Dialect) -> Classification {
    classify::classify_query(sql, dialect)
}

/// Results cached by statement text: agents repeat the same statements, and
/// a cache hit costs a hash, a lookup and a reference-count increment.
pub struct ClassifierCache {
    /// One map per dialect, so a lookup needs only the `&str`.
    entries: Mutex<[HashMap<String, Arc<Classification>>; 2]>,
    capacity: usize,
}

impl ClassifierCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new([HashMap::new(), HashMap::new()]),
            capacity: capacity.max(1),
        }
    }

    /// The classification of `sql`, from the cache when seen before. The
    /// cache is bounded: when full it is emptied (statements an agent
    /// really repeats come back within a moment).
    pub fn classify(&self, sql: &str, dialect: Dialect) -> Arc<Classification> {
        let slot = dialect as usize;
        if let Some(hit) = self.lock()[slot].get(sql) {
            return hit.clone();
        }
        let result = Arc::new(classify(sql, dialect));
        let mut entries = self.lock();
        let map = &mut entries[slot];
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(sql.to_string(), result.clone());
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [HashMap<String, Arc<Classification>>; 2]> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
