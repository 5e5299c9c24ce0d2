//! Statement classification: what a piece of SQL would do if it ran.
//!
//! [`classify`] splits a query into statements with a dialect-aware
//! [`lexer`] of our own (comments, every quoting form, MySQL executable
//! comments), then classifies each statement from its leading keywords, a
//! scan of every token for functions with side effects, and — for objects,
//! functions and nested writes — the sqlparser AST.
//!
//! **Fail closed**: a statement whose leading keywords are not in the
//! classifier's table, that sqlparser cannot parse (unless it is one of
//! the expression-free [`forms`] matched in full), whose quoting is
//! ambiguous, or that the lexer cannot finish, is [`StatementClass::Unknown`]
//! (together with whatever dangerous class was still recognised). The
//! default policy holds `unknown`.
//!
//! # The classes
//!
//! | class | meaning | examples |
//! |---|---|---|
//! | `read` | reads data, changes nothing | `SELECT`, `VALUES`, `TABLE t`, `EXPLAIN` (no ANALYZE), `SHOW CREATE`, cursors `FETCH` |
//! | `write` | changes rows (or sequences, large objects), or keeps locks beyond the session | `INSERT`/`UPDATE`/`DELETE`/`MERGE`/`REPLACE`, `COPY … FROM STDIN`, `nextval()`, `LOCK`, `pg_advisory_lock()`, data-modifying CTEs (with `read`), `PREPARE TRANSACTION`/`XA PREPARE` (with `session`) |
//! | `export` | moves data out of the reach of masking and audit: to files, programs, other servers, new tables, or as a bulk stream | `COPY … TO`, `SELECT … INTO t`, `CREATE TABLE … AS`, `INTO OUTFILE/DUMPFILE`, `LOAD DATA INFILE`, `pg_read_file()`, `lo_export()`, `LOAD_FILE()`, dblink, foreign servers, FEDERATED |
//! | `ddl` | changes the schema or stored code | `CREATE/ALTER/DROP` of tables, views, indexes, functions, procedures, triggers, events, rules; `TRUNCATE`, `RENAME`, `COMMENT`, `VACUUM`/`CLUSTER`/`REINDEX` |
//! | `privilege` | changes who may do what, or who the session is | `GRANT`, `REVOKE`, `CREATE/ALTER/DROP ROLE/USER`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `RESET ROLE`, `DISCARD ALL`, `set_config('role', …)`, `SET PASSWORD`, `ALTER DEFAULT PRIVILEGES`, policies and row-level security, `OWNER TO`; writes and locks on the server's catalogs (`UPDATE pg_authid`, `INSERT INTO mysql.global_priv`, `LOCK pg_database`, `USE mysql`); `SET`/`RESET`/`set_config` of a PostgreSQL setting ordinary users may not change (`session_replication_role`, `log_statement`) |
//! | `admin` | operates the server itself | `ALTER SYSTEM`, `SET GLOBAL`, MySQL session variables that need SUPER (`sql_log_bin`, `sql_log_off`, `pseudo_thread_id`), `INSTALL PLUGIN/SONAME`, `CREATE EXTENSION`, `KILL`, `pg_terminate_backend()`, `LOAD 'lib'`, COPY to/from server files or programs, `SHUTDOWN` |
//! | `session` | changes only this session's state | `SET` of settings any user may change (see [`settings`]), `RESET ALL`, `SHOW`, `BEGIN`/`COMMIT`/`ROLLBACK`/`SAVEPOINT` with their transaction modes, `DISCARD`, `LISTEN`/`UNLISTEN`, `USE`, `DEALLOCATE`, `XA`, `pg_advisory_unlock_all()` (releases only the session's own locks) |
//! | `unknown` | cannot be analysed: unparseable, ambiguous, or opaque code | parse failures, `DO` blocks, `CALL`, `EXECUTE` of a statement not seen prepared, `PREPARE … FROM @var`, dynamic-SQL functions (`query_to_xml`, `ts_stat`), volatile built-ins not reviewed, user-defined functions (by default: see [`functions`]) |
//!
//! A statement can have several classes: `WITH d AS (DELETE …) SELECT …` is
//! `read` + `write`; `SELECT pg_read_file('…')` is `read` + `export`;
//! `COPY t TO '/tmp/f'` is `export` + `admin`. Words inside literals,
//! quoted identifiers and comments never count: `SELECT 'DROP TABLE t'` and
//! `SELECT "grant" FROM t` are `read`.
//!
//! Names are compared as the server resolves them: PostgreSQL `U&"…"`
//! escapes decoded (with their `UESCAPE` clause), unquoted names folded
//! to lower case and quoted ones kept, schema-qualified or not, MySQL
//! backticks and executable comments; see [`lexer::Token::ident`].

pub mod application_name;
pub mod classify;
pub mod dry_run;
pub mod encoding;
pub mod forms;
pub mod functions;
pub mod lexer;
pub mod settings;
pub mod transforms;

pub use dry_run::dry_run_refusal;
pub use functions::UserFunctions;

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
    pub const fn of(classes: &[StatementClass]) -> Self {
        let mut bits = 0u8;
        let mut i = 0;
        while i < classes.len() {
            bits |= 1 << (classes[i] as u8);
            i += 1;
        }
        Self(bits)
    }

    /// Whether the two sets share a class.
    pub fn intersects(self, other: Classes) -> bool {
        self.0 & other.0 != 0
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
    /// The qualifier of each qualified table name, as written (quotes
    /// removed, case kept): in MySQL the database a table is read or
    /// written in (`other.t`), which the session's current database does
    /// not limit.
    pub schemas: Vec<String>,
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
    /// Columns the statement reads through a reversible transform
    /// (`reverse(email)`, `card + 1`; see [`transforms`]).
    pub transformed: Vec<String>,
    /// When `transformed` is not empty: the tables and views the statement
    /// reads, as names to put in a query (see
    /// [`transforms::relations_read`]), for the gateway to sample.
    pub sample_from: Vec<String>,
    /// The statement's output names that differ from the columns they read
    /// (`email AS e`, a CTE's column list, a UNION branch), each with those
    /// columns: masking a value under `e` flags `email` too.
    pub outputs: Vec<(String, Vec<String>)>,
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

    /// The MySQL databases the statements work in besides the session's
    /// current one: those `USE` switches to and those that qualify a
    /// table (`SELECT … FROM other.t`). `information_schema` is left out:
    /// it shows every client only what its grants let it see, and drivers
    /// read it for metadata.
    pub fn mysql_databases(&self) -> Vec<String> {
        let mut names = Vec::new();
        for s in &self.statements {
            if let Some(rest) = after_keyword(&s.text, "USE") {
                let name = rest.trim().trim_end_matches(';').trim();
                names.push(
                    name.strip_prefix('`')
                        .and_then(|n| n.strip_suffix('`'))
                        .map(|n| n.replace("``", "`"))
                        .unwrap_or_else(|| name.to_string()),
                );
            }
            names.extend(s.schemas.iter().cloned());
        }
        names.retain(|n| !n.eq_ignore_ascii_case("information_schema"));
        names.sort();
        names.dedup();
        names
    }
}

/// The rest of `text` after a leading keyword (any case, then a space).
fn after_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(|c: char| c.is_ascii_whitespace()))
        .then_some(rest)
}

/// The text to ask the upstream to `EXPLAIN` for a held query, so that
/// its approvers see what it would touch; `None` when explaining it might
/// do more than plan it.
///
/// Only one statement that reads or writes rows (in PostgreSQL also one
/// that exports with a query), led by a verb `EXPLAIN` takes. MySQL and
/// MariaDB evaluate constant subqueries and derived tables while they
/// explain — running whatever functions those call, stored ones with their
/// writes included — so there every call must be to a built-in that only
/// computes a value. `sql` is the query as sent: a cached classification
/// may come from one that differed in its literals.
/// The table lock a PostgreSQL schema change takes, from its leading
/// keywords, for approvers weighing it: what it blocks while it runs.
pub fn pg_ddl_lock(statement: &Statement) -> Option<&'static str> {
    let words: Vec<String> = statement
        .text
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .take(4)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    const EXCLUSIVE: &str =
        "ACCESS EXCLUSIVE on the table: every read and write of it waits until it commits";
    match w.as_slice() {
        ["CREATE", "INDEX", "CONCURRENTLY", ..] | ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY", ..] => {
            Some("SHARE UPDATE EXCLUSIVE on the table: reads and writes go on; it waits for running transactions")
        }
        ["CREATE", "INDEX", ..] | ["CREATE", "UNIQUE", "INDEX", ..] => {
            Some("SHARE on the table: reads go on, writes wait until it commits")
        }
        ["DROP", "INDEX", "CONCURRENTLY", ..] => {
            Some("SHARE UPDATE EXCLUSIVE on the table: reads and writes go on")
        }
        ["DROP", ..] | ["TRUNCATE", ..] | ["ALTER", "TABLE", ..] | ["VACUUM", "FULL", ..]
        | ["CLUSTER", ..] | ["REINDEX", ..] | ["ALTER", "INDEX", ..] => Some(EXCLUSIVE),
        ["CREATE", "TRIGGER", ..] | ["ALTER", "TRIGGER", ..] => {
            Some("SHARE ROW EXCLUSIVE on the table: writes wait until it commits")
        }
        _ => None,
    }
}

pub fn explainable<'a>(
    classification: &Classification,
    sql: &'a [u8],
    dialect: Dialect,
) -> Option<&'a str> {
    let [statement] = classification.statements.as_slice() else {
        return None;
    };
    let routine = match dialect {
        Dialect::Postgres => Classes::of(&[
            StatementClass::Read,
            StatementClass::Write,
            StatementClass::Export,
        ]),
        Dialect::Mysql => Classes::of(&[StatementClass::Read, StatementClass::Write]),
    };
    if statement.classes.iter().any(|c| !routine.contains(c)) {
        return None;
    }
    if dialect == Dialect::Mysql
        && !statement
            .functions
            .iter()
            .all(|f| MYSQL_PURE_BUILTINS.contains(&f.as_str()))
    {
        return None;
    }
    let text = std::str::from_utf8(sql).ok()?.trim().trim_end_matches(';');
    let first = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())?
        .to_ascii_uppercase();
    let verbs: &[&str] = match dialect {
        Dialect::Postgres => &[
            "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "MERGE", "VALUES", "TABLE",
        ],
        Dialect::Mysql => &[
            "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "WITH", "VALUES", "TABLE",
        ],
    };
    verbs.contains(&first.as_str()).then_some(text)
}

/// Built-in MySQL/MariaDB functions that compute a value and do nothing
/// else (no waits, locks, sequences, files or SQL of their own), as the
/// classifier records them: lower case, unqualified — `db.count()` is a
/// stored function and not among them.
const MYSQL_PURE_BUILTINS: &[&str] = &[
    // aggregates and window functions
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "group_concat",
    "json_arrayagg",
    "json_objectagg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "std",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "var_pop",
    "var_samp",
    "variance",
    "row_number",
    "rank",
    "dense_rank",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    "percent_rank",
    "cume_dist",
    // strings
    "concat",
    "concat_ws",
    "lower",
    "upper",
    "lcase",
    "ucase",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "substring",
    "substr",
    "substring_index",
    "left",
    "right",
    "trim",
    "ltrim",
    "rtrim",
    "replace",
    "reverse",
    "repeat",
    "space",
    "lpad",
    "rpad",
    "locate",
    "instr",
    "position",
    "field",
    "find_in_set",
    "elt",
    "strcmp",
    "format",
    "hex",
    "unhex",
    "ascii",
    "char",
    "ord",
    "quote",
    "insert",
    // control flow and comparison
    "coalesce",
    "ifnull",
    "nullif",
    "if",
    "isnull",
    "greatest",
    "least",
    "interval",
    // numbers
    "abs",
    "round",
    "truncate",
    "floor",
    "ceil",
    "ceiling",
    "mod",
    "sign",
    "sqrt",
    "power",
    "pow",
    "exp",
    "ln",
    "log",
    "log2",
    "log10",
    "pi",
    "degrees",
    "radians",
    "conv",
    // dates and times
    "date",
    "time",
    "year",
    "month",
    "day",
    "dayofmonth",
    "dayofweek",
    "dayofyear",
    "week",
    "weekday",
    "weekofyear",
    "yearweek",
    "hour",
    "minute",
    "second",
    "microsecond",
    "quarter",
    "now",
    "curdate",
    "curtime",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "sysdate",
    "utc_date",
    "utc_time",
    "utc_timestamp",
    "date_add",
    "date_sub",
    "adddate",
    "subdate",
    "addtime",
    "subtime",
    "datediff",
    "timediff",
    "timestampdiff",
    "timestampadd",
    "date_format",
    "time_format",
    "str_to_date",
    "unix_timestamp",
    "from_unixtime",
    "from_days",
    "to_days",
    "last_day",
    "makedate",
    "maketime",
    "monthname",
    "dayname",
    "extract",
    // JSON
    "json_extract",
    "json_value",
    "json_query",
    "json_unquote",
    "json_contains",
    "json_contains_path",
    "json_length",
    "json_keys",
    "json_object",
    "json_array",
    "json_type",
    "json_valid",
    "json_search",
    "json_depth",
    // hashes and encodings
    "md5",
    "sha",
    "sha1",
    "sha2",
    "crc32",
    "to_base64",
    "from_base64",
    "inet_aton",
    "inet_ntoa",
    "inet6_aton",
    "inet6_ntoa",
];

/// Whether `needle` (ASCII) occurs in `haystack` without regard to ASCII
/// case. Every statement passes a dozen such checks before anything else
/// looks at it (`encoding`, `application_name`, `execute`, `discard`…),
/// and most name none of the words: each is first one pass looking for
/// the needle's first four bytes side by side, then, only if they are
/// there, a `memchr` jump to each first letter, not a comparison at every
/// offset: a 16 MiB statement costs milliseconds, not seconds.
pub fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    if !rest.is_empty() && !may_hold_start(haystack, needle) {
        return false;
    }
    let mut at = 0;
    while let Some(found) = memchr::memchr2(
        first.to_ascii_lowercase(),
        first.to_ascii_uppercase(),
        &haystack[at..],
    ) {
        let start = at + found + 1;
        if haystack
            .get(start..start + rest.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(rest))
        {
            return true;
        }
        at = start;
    }
    false
}

/// Whether `haystack` may hold the first four bytes of `needle` (its
/// first two, when it is shorter) side by side, in either case. Bytes are compared with their 0x20 bit
/// set, which makes the two cases of a letter equal and lets a few other
/// bytes through (control characters for punctuation, DEL for `_`): never
/// a false "no". Four bytes rather than two, because statements are full
/// of the common pairs (`se` in `SELECT`, `en` in `pgbench`). Blocks of
/// 4 KiB are each one pass without an early exit, which the compiler turns
/// into vector instructions.
fn may_hold_start(haystack: &[u8], needle: &[u8]) -> bool {
    const BLOCK: usize = 4096;
    let k = if needle.len() >= 4 { 4 } else { 2 };
    let [a, b, c, d] = std::array::from_fn(|i| needle.get(i).map_or(0, |&x| x | 0x20));
    let is = |x: &u8, want: u8| (x | 0x20) == want;
    let mut at = 0;
    while at + k <= haystack.len() {
        let end = (at + BLOCK + k - 1).min(haystack.len());
        let h = &haystack[at..end];
        let found = match k {
            2 => h
                .iter()
                .zip(&h[1..])
                .fold(false, |seen, (x, y)| seen | (is(x, a) & is(y, b))),
            _ => h
                .iter()
                .zip(&h[1..])
                .zip(&h[2..])
                .zip(&h[3..])
                .fold(false, |seen, (((x, y), z), w)| {
                    seen | (is(x, a) & is(y, b) & is(z, c) & is(w, d))
                }),
        };
        if found {
            return true;
        }
        at = end + 1 - k;
    }
    false
}

/// Why Airlock refuses `sql` whatever the policy says when it is a MySQL
/// `LOAD DATA|XML … LOCAL INFILE` (in any statement of the query, in
/// executable comments too): the server would answer it by asking the
/// *client* for a file, a channel Airlock never opens (its upstream
/// connections do not offer `CLIENT_LOCAL_FILES`, so the server could
/// only refuse it with its own, puzzling error). `None` otherwise — and
/// for a query that cannot be lexed, which is `unknown` anyway.
pub fn local_infile(sql: &[u8], dialect: Dialect) -> Option<String> {
    // LOCAL is a keyword: it cannot be quoted or escaped, so a query
    // without those letters needs no second lexing.
    if dialect != Dialect::Mysql || !contains_ignore_case(sql, b"local") {
        return None;
    }
    let statements = lexer::lex(std::str::from_utf8(sql).ok()?, dialect).ok()?;
    statements.iter().find_map(|s| {
        let t = &s.tokens;
        let load = t.first().is_some_and(|w| w.is_word("LOAD"))
            && t.get(1)
                .is_some_and(|w| w.is_word("DATA") || w.is_word("XML"));
        let mut i = 2;
        while t
            .get(i)
            .is_some_and(|w| w.is_word("LOW_PRIORITY") || w.is_word("CONCURRENT"))
        {
            i += 1;
        }
        (load && t.get(i).is_some_and(|w| w.is_word("LOCAL"))).then(|| {
            "LOAD DATA LOCAL INFILE is not allowed through Airlock: it would read a file \
             from the client's machine; load the rows with INSERT, or ask a DBA"
                .to_string()
        })
    })
}

/// Classifies `sql`, with calls of user-defined functions `unknown`. Never
/// panics; never fails: whatever cannot be analysed is `unknown`.
pub fn classify(sql: &str, dialect: Dialect) -> Classification {
    classify_with(sql, dialect, UserFunctions::default())
}

/// Classifies `sql`, a call of a function that is not a built-in counting
/// as `user` says (the policy's `[classify] user_functions`).
pub fn classify_with(sql: &str, dialect: Dialect, user: UserFunctions) -> Classification {
    classify::classify_query(sql, dialect, user)
}

/// Results cached by statement text: agents repeat the same statements, and
/// a cache hit costs a hash, a lookup and a reference-count increment.
///
/// Two keys: the exact text, and a *literal-blind* fingerprint under which
/// queries that differ only in plain literals (`WHERE id = 7` / `= 8`) share
/// one classification — without it, every simple-protocol query with a new
/// value would be parsed again. The fingerprint is used only where literals
/// provably cannot change the classification (see [`fingerprint`]).
/// One map from key to classification.
type CacheMap = HashMap<String, Arc<Classification>>;

pub struct ClassifierCache {
    /// `[exact, fingerprint]` per dialect.
    entries: Mutex<Entries>,
    capacity: usize,
}

/// The cached classifications and the setting they were made under.
#[derive(Default)]
struct Entries {
    user: UserFunctions,
    maps: [[CacheMap; 2]; 2],
}

impl ClassifierCache {
    pub fn new(capacity: usize) -> Self {
        Self::with_user_functions(capacity, UserFunctions::default())
    }

    /// A cache whose classifications count calls of user-defined functions
    /// as `user` says.
    pub fn with_user_functions(capacity: usize, user: UserFunctions) -> Self {
        Self {
            entries: Mutex::new(Entries {
                user,
                maps: Default::default(),
            }),
            capacity: capacity.max(1),
        }
    }

    /// Classifies from now on with `user`; forgets every classification
    /// made under another setting.
    pub fn set_user_functions(&self, user: UserFunctions) {
        let mut entries = self.lock();
        if entries.user != user {
            *entries = Entries {
                user,
                maps: Default::default(),
            };
        }
    }

    /// The classification of `sql`, from the cache when seen before. The
    /// cache is bounded: when a map is full it is emptied (statements an
    /// agent really repeats come back within a moment).
    ///
    /// A result found by fingerprint carries the statement text of the
    /// query first classified under it; callers that show statement text
    /// take it from the query itself.
    pub fn classify(&self, sql: &str, dialect: Dialect) -> Arc<Classification> {
        self.classify_lexed(sql, dialect, || fingerprint(sql, dialect))
    }

    /// [`ClassifierCache::classify`] for a query already read by the
    /// lexer: its key is made from that reading instead of a new one.
    pub fn classify_read(
        &self,
        sql: &str,
        dialect: Dialect,
        reading: &lexer::Reading,
    ) -> Arc<Classification> {
        self.classify_lexed(sql, dialect, || {
            reading
                .statements
                .as_ref()
                .ok()
                .and_then(|s| fingerprint_of(s))
        })
    }

    fn classify_lexed(
        &self,
        sql: &str,
        dialect: Dialect,
        fingerprint: impl FnOnce() -> Option<String>,
    ) -> Arc<Classification> {
        let d = dialect as usize;
        let user = {
            let entries = self.lock();
            if let Some(hit) = entries.maps[d][0].get(sql) {
                return hit.clone();
            }
            entries.user
        };
        let print = fingerprint();
        if let Some(print) = &print {
            if let Some(hit) = self.lock().maps[d][1].get(print) {
                return hit.clone();
            }
        }
        let result = Arc::new(classify_with(sql, dialect, user));
        let mut entries = self.lock();
        // The setting changed while this one was classified: do not keep it.
        if entries.user != user {
            return result;
        }
        for (slot, key) in [(0, Some(sql.to_string())), (1, print)] {
            let Some(key) = key else { continue };
            let map = &mut entries.maps[d][slot];
            if map.len() >= self.capacity {
                map.clear();
            }
            map.insert(key, result.clone());
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The query with plain literals replaced — or `None` when literals could
/// matter, and the exact text must be the key.
///
/// The key must cover everything the classifier reads, so a literal is
/// replaced only where the classifier provably ignores it:
///
/// * only in data statements (SELECT, INSERT, UPDATE, DELETE, WITH,
///   VALUES) — elsewhere literals decide classes (`EXPLAIN (ANALYZE 0)`,
///   `SET x = …`, `COPY … TO 'file'`, `PREPARE … FROM 'sql'`);
/// * never inside the parentheses of a call: the classifier reads
///   arguments (`set_config('role', …)`), whatever the function is called
///   or however its name is spelled (`"set_config"`, `U&"…"`,
///   `pg_catalog.set_config`). A parenthesis counts as a call's unless
///   the token before it is one of a few keywords that open a
///   parenthesised list or subquery (`VALUES (…)`, `IN (…)`, `AS (…)`);
///   anything else — a name, a type, a keyword not listed — keeps its
///   literals;
/// * not in statements naming any of the `SENSITIVE` words, as a second
///   line: names are compared as the server resolves them;
/// * only literals whose shape cannot change how either Airlock's lexer or
///   the parser reads the rest: digit strings with an optional fraction,
///   and `'…'` strings without backslashes.
pub fn fingerprint(sql: &str, dialect: Dialect) -> Option<String> {
    fingerprint_of(&lexer::lex(sql, dialect).ok()?)
}

/// [`fingerprint`] of a query's statements as the lexer read them.
pub fn fingerprint_of(statements: &[lexer::LexedStatement]) -> Option<String> {
    const DATA: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES"];
    const SENSITIVE: &[&str] = &[
        "EXPLAIN",
        "ANALYZE",
        "ANALYSE",
        "SET_CONFIG",
        "PREPARE",
        "EXECUTE",
        "IMMEDIATE",
        "QUERY_TO_XML",
    ];
    // Keywords after which `(` opens a list or a subquery, not a call.
    const NOT_CALLS: &[&str] = &[
        "VALUES",
        "IN",
        "AS",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "ON",
        "SELECT",
        "SET",
        "WHEN",
        "THEN",
        "ELSE",
        "EXISTS",
        "ANY",
        "ALL",
        "SOME",
        "BY",
        "HAVING",
        "FROM",
        "JOIN",
        "RETURNING",
        "BETWEEN",
        "IS",
        "LIKE",
        "UNION",
        "INTERSECT",
        "EXCEPT",
        "DISTINCT",
        "CASE",
        "LIMIT",
        "OFFSET",
    ];
    let mut out = String::with_capacity(statements.iter().map(|s| s.code.len() + 2).sum());
    let mut replaced = false;
    for s in statements {
        let data = s
            .tokens
            .first()
            .is_some_and(|t| DATA.iter().any(|k| t.is_word(k)));
        let sensitive = s.tokens.iter().any(|t| {
            matches!(t.kind, lexer::Kind::Word | lexer::Kind::QuotedIdent)
                && SENSITIVE.iter().any(|k| t.text.eq_ignore_ascii_case(k))
        });
        if !data || sensitive {
            out.push_str(&s.code);
        } else {
            // One entry per open parenthesis: whether it is a call's.
            let mut calls: Vec<bool> = Vec::new();
            for (i, t) in s.tokens.iter().enumerate() {
                let end = s.tokens.get(i + 1).map_or(s.code.len(), |n| n.start);
                let source = &s.code[t.start..end];
                if t.is_punct('(') {
                    let call =
                        i.checked_sub(1)
                            .map(|j| &s.tokens[j])
                            .is_some_and(|p| match p.kind {
                                lexer::Kind::Word => !NOT_CALLS.iter().any(|k| p.is_word(k)),
                                lexer::Kind::Punct | lexer::Kind::Number | lexer::Kind::Param => {
                                    false
                                }
                                lexer::Kind::QuotedIdent | lexer::Kind::String => true,
                            });
                    calls.push(call);
                } else if t.is_punct(')') {
                    calls.pop();
                }
                let in_call = calls.iter().any(|&c| c);
                let plain_number = t.kind == lexer::Kind::Number
                    && t.text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                let plain_string = t.kind == lexer::Kind::String
                    && source.starts_with('\'')
                    && !source.contains('\\');
                if !in_call && (plain_number || plain_string) {
                    out.push_str(if plain_number { "0" } else { "''" });
                    if source.ends_with(' ') {
                        out.push(' ');
                    }
                    replaced = true;
                } else {
                    out.push_str(source);
                }
            }
        }
        out.push_str(";\n");
    }
    // Without a replaced literal the exact text already is the key.
    replaced.then_some(out)
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn queries_differing_only_in_plain_literals_share_a_classification() {
        let cache = ClassifierCache::new(100);
        let a = cache.classify(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 17",
            Dialect::Postgres,
        );
        let b = cache.classify(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 9911",
            Dialect::Postgres,
        );
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.classify("UPDATE t SET note = 'x' WHERE id = 1", Dialect::Postgres);
        let d = cache.classify(
            "UPDATE t SET note = 'something else' WHERE id = 2",
            Dialect::Postgres,
        );
        assert!(Arc::ptr_eq(&c, &d));
    }

    #[test]
    fn literals_that_decide_a_class_are_never_blinded() {
        let cache = ClassifierCache::new(100);
        let classes = |sql: &str| cache.classify(sql, Dialect::Postgres).classes().to_string();
        assert_eq!(
            classes("SELECT set_config('work_mem', '1MB', false)"),
            "read+session"
        );
        assert_eq!(
            classes("SELECT set_config('role', 'postgres', false)"),
            "read+privilege"
        );
        assert_eq!(classes("EXPLAIN (ANALYZE 0) DELETE FROM t"), "read");
        assert_eq!(classes("EXPLAIN (ANALYZE 1) DELETE FROM t"), "read+write");
        assert!(
            fingerprint("SELECT 'a\\b', 1", Dialect::Postgres).is_none_or(|f| f.contains("a\\b"))
        );
        assert!(fingerprint("COPY t TO '/tmp/x'", Dialect::Postgres).is_none());
        assert!(fingerprint("SELECT 1", Dialect::Postgres).is_some());
        // Arguments of a call keep their literals, however the call is spelled.
        for sql in [
            r#"SELECT "set_config"('work_mem', '1MB', false)"#,
            r#"SELECT pg_catalog."set_config"('work_mem', '1MB', false)"#,
            r#"SELECT U&"set_c\006Fnfig"('work_mem', '1MB', false)"#,
            r#"SELECT anything(('work_mem'), 1)"#,
            r#"SELECT x FROM t WHERE f(a, 'k') = 1"#,
        ] {
            let print = fingerprint(sql, Dialect::Postgres);
            assert!(
                print.is_none_or(|p| p.contains("'work_mem'") || p.contains("'k'")),
                "{sql}"
            );
        }
        assert_eq!(
            fingerprint(
                "SELECT a FROM t WHERE id IN (1, 2) AND b = 'x'",
                Dialect::Postgres
            )
            .as_deref(),
            Some("SELECT a FROM t WHERE id IN (0, 0) AND b = '';\n")
        );
        // Through the one cache of this test: each pair shares a shape.
        for (a, b) in [
            (
                r#"SELECT "set_config"('work_mem', '1MB', false)"#,
                r#"SELECT "set_config"('role', 'x', false)"#,
            ),
            (
                r#"SELECT U&"set_config"('work_mem', '1MB', false)"#,
                r#"SELECT U&"set_config"('role', 'x', false)"#,
            ),
            (
                "SELECT set_config('work_mem', '1MB', false)",
                "SELECT set_config('log_statement', 'none', false)",
            ),
        ] {
            assert_eq!(classes(a), "read+session", "{a}");
            assert_eq!(classes(b), "read+privilege", "{b}");
        }
        assert_eq!(fingerprint("SELECT 1x", Dialect::Postgres), None);
    }
}

#[cfg(test)]
mod contains_tests {
    use super::contains_ignore_case as c;
    use rand::{Rng, SeedableRng};

    #[test]
    fn finds_needles_in_any_case_anywhere() {
        assert!(c(b"SELECT 1; Execute x", b"execute"));
        assert!(c(b"eexecute", b"execute"));
        assert!(c(b"LOCAL", b"local"));
        assert!(!c(b"execut", b"execute"));
        assert!(!c(b"", b"kill"));
        assert!(c(b"anything", b""));
        assert!(!c(b"lo cal", b"local"));
    }

    /// Against a comparison at every offset: needles of letters, `_` and
    /// `&`, haystacks of mixed case with the bytes the pair screen lets
    /// through (control characters, DEL), and needles that start just
    /// before, on and after the screen's 4 KiB block boundaries.
    #[test]
    fn agrees_with_a_comparison_at_every_offset() {
        let naive = |h: &[u8], n: &[u8]| {
            n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
        };
        let needles: [&[u8]; 7] = [
            b"execute",
            b"u&",
            b"set_config",
            b"kill",
            b"_x",
            b"ab",
            b"x&u",
        ];
        let alphabet = b"eExXuU&\x06_\x7fsStT cCkKiIlL;aAbB1";
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x2545_f491_4f6c_dd1d);
        for round in 0..3000 {
            let len = rng.gen_range(0..40);
            let h: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            for n in needles {
                assert_eq!(c(&h, n), naive(&h, n), "round {round}: {h:?} {n:?}");
            }
        }
        for at in [4090, 4094, 4095, 4096, 4097, 8190, 8191, 8192] {
            let mut h = vec![b'.'; 9000];
            h[at..at + 7].copy_from_slice(b"ExEcUtE");
            assert!(c(&h, b"execute"), "at {at}");
            h[at + 1] = b'.';
            assert!(!c(&h, b"execute"), "at {at}");
            let mut short = vec![b' '; 9000];
            short[at..at + 2].copy_from_slice(b"U&");
            assert!(c(&short, b"u&"), "at {at}");
            short[at + 2] = b'x';
            assert!(c(&short, b"u&x"), "at {at}");
        }
    }
}

#[cfg(test)]
mod local_infile_tests {
    use super::*;

    #[test]
    fn every_spelling_of_load_data_local_is_found() {
        for sql in [
            "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE x",
            "load data local infile '/etc/passwd' into table x",
            "LOAD /* c */ DATA -- c\n LOCAL INFILE 'f' INTO TABLE x",
            "LOAD DATA /*! LOCAL */ INFILE 'f' INTO TABLE x",
            "/*!40000 LOAD DATA LOCAL INFILE 'f' INTO TABLE x */",
            "LOAD XML LOCAL INFILE 'f' INTO TABLE x",
            "LOAD DATA LOW_PRIORITY LOCAL INFILE 'f' INTO TABLE x",
            "LOAD DATA CONCURRENT LOCAL INFILE 'f' REPLACE INTO TABLE x",
            "SELECT 1; LOAD DATA LOCAL INFILE 'f' INTO TABLE x",
        ] {
            assert!(
                local_infile(sql.as_bytes(), Dialect::Mysql).is_some(),
                "{sql}"
            );
        }
        for sql in [
            "LOAD DATA INFILE '/tmp/f' INTO TABLE x",
            "SELECT 'LOAD DATA LOCAL INFILE'",
            "SELECT `local` FROM t",
            "INSERT INTO t VALUES ('LOAD DATA LOCAL')",
        ] {
            assert!(
                local_infile(sql.as_bytes(), Dialect::Mysql).is_none(),
                "{sql}"
            );
        }
        assert!(local_infile(b"LOAD DATA LOCAL INFILE 'f'", Dialect::Postgres).is_none());
    }
}

#[cfg(test)]
mod explain_tests {
    use super::*;

    fn explainable_text(sql: &str, dialect: Dialect) -> Option<String> {
        explainable(&classify(sql, dialect), sql.as_bytes(), dialect).map(str::to_string)
    }

    #[test]
    fn only_routine_statements_are_explained() {
        let m = Dialect::Mysql;
        assert_eq!(
            explainable_text("UPDATE t SET a = 1 WHERE id = 2;", m).as_deref(),
            Some("UPDATE t SET a = 1 WHERE id = 2")
        );
        assert!(explainable_text("DELETE FROM t WHERE lower(email) = 'x'", m).is_some());
        assert!(explainable_text("REPLACE INTO t VALUES (1)", m).is_some());
        for sql in [
            "DROP TABLE t",
            "SELECT 1; DELETE FROM t",
            "SELECT * FROM t INTO OUTFILE '/tmp/x'",
            "UPDATE t SET a = 1 WHERE id IN (SELECT a FROM (SELECT noisy() AS a) d)",
            "SELECT * FROM t WHERE id = db.count(1)",
            "SELECT SLEEP(5)",
            "SELECT GET_LOCK('x', 1)",
            "SELECT 1 /*!, noisy() */",
            "CALL p()",
        ] {
            assert_eq!(explainable_text(sql, m), None, "{sql}");
        }
        // PostgreSQL's EXPLAIN runs no volatile function; only the class and
        // verb count. (A call of a user-defined function is `unknown` under
        // the default setting: the planner may evaluate it if it is declared
        // immutable.)
        let p = Dialect::Postgres;
        assert!(explainable_text("UPDATE t SET a = lower('X')", p).is_some());
        assert!(explainable_text("UPDATE t SET a = f(1)", p).is_none());
        assert!(explainable_text("CREATE TABLE t (a int)", p).is_none());
    }
}

#[cfg(test)]
mod database_tests {
    use super::*;

    fn databases(sql: &str) -> Vec<String> {
        classify(sql, Dialect::Mysql).mysql_databases()
    }

    #[test]
    fn every_database_a_query_works_in_is_named() {
        let cases: &[(&str, &[&str])] = &[
            ("SELECT * FROM t", &[]),
            ("SELECT * FROM other.t", &["other"]),
            ("SELECT * FROM `other`.`t`", &["other"]),
            ("SELECT * FROM `we``ird`.t", &["we`ird"]),
            ("SELECT * FROM `a.b`.t", &["a.b"]),
            ("SELECT * FROM Other . t", &["Other"]),
            ("SELECT * FROM /* x */ other/**/.t", &["other"]),
            ("/*!50000 SELECT * FROM other.t */", &["other"]),
            ("SELECT * FROM t JOIN other.u ON t.id = u.id", &["other"]),
            ("SELECT (SELECT max(x) FROM other.u) FROM t", &["other"]),
            (
                "SELECT * FROM t WHERE id IN (SELECT id FROM other.u)",
                &["other"],
            ),
            (
                "WITH c AS (SELECT * FROM other.u) SELECT * FROM c",
                &["other"],
            ),
            ("SELECT * FROM t UNION SELECT * FROM other.u", &["other"]),
            ("INSERT INTO other.t SELECT * FROM t", &["other"]),
            (
                "UPDATE t JOIN other.u ON t.id = u.id SET t.a = u.a",
                &["other"],
            ),
            ("DELETE FROM other.t WHERE id = 1", &["other"]),
            ("TABLE other.t", &["other"]),
            ("PREPARE s FROM 'SELECT * FROM other.t'", &["other"]),
            ("USE other", &["other"]),
            ("USE `we``ird`", &["we`ird"]),
            ("SELECT * FROM information_schema.tables", &[]),
            ("SELECT * FROM INFORMATION_SCHEMA.TABLES", &[]),
            ("SELECT * FROM mysql.user", &["mysql"]),
            ("SELECT 'other.t' FROM t", &[]),
        ];
        for (sql, want) in cases {
            assert_eq!(databases(sql), want.to_vec(), "{sql}");
        }
    }
}
