//! Classification of lexed statements.
//!
//! Three passes, each able only to *add* classes:
//!
//! 1. **Leading keywords** decide what kind of statement it is, from a table
//!    of every form Airlock knows. A form not in the table is `unknown` —
//!    the table is an allowlist, so a new or exotic statement fails closed.
//! 2. **Every token** is scanned for calls of functions with side effects
//!    (server files, other servers, backends, roles, dynamic SQL) and for
//!    writes nested in queries, wherever they sit in the statement.
//! 3. **The sqlparser AST** must exist (a statement it cannot parse is
//!    `unknown`) and supplies the objects and functions touched.

use super::forms;
use super::functions::{self, UserFunctions};
use super::lexer::{self, Kind, LexedStatement, Token};
use super::settings::{mysql_variable_class, pg_setting_class};
use super::{Classes, Classification, Dialect, Statement, StatementClass as C};
use sqlparser::ast::{visit_relations, ObjectName, ObjectNamePart};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;
use std::collections::HashMap;
use std::ops::ControlFlow;

/// How deep PREPARE/EXPLAIN/literal SQL may nest before Airlock stops
/// looking and calls the statement unknown.
const MAX_DEPTH: usize = 4;

pub fn classify_query(sql: &str, dialect: Dialect, user: UserFunctions) -> Classification {
    classify_nested(sql, dialect, user, 0)
}

fn classify_nested(
    sql: &str,
    dialect: Dialect,
    user: UserFunctions,
    depth: usize,
) -> Classification {
    let lexed = match lexer::lex(sql, dialect) {
        Ok(s) => s,
        Err(e) => {
            return Classification {
                statements: vec![Statement {
                    text: sql.trim().to_string(),
                    classes: Classes::of(&[C::Unknown]),
                    objects: Vec::new(),
                    schemas: Vec::new(),
                    functions: Vec::new(),
                    notes: vec![e.to_string()],
                    prepares: None,
                    executes: None,
                    transformed: Vec::new(),
                    sample_from: Vec::new(),
                    outputs: Vec::new(),
                }],
            }
        }
    };
    let mut prepared = HashMap::new();
    let statements = lexed
        .iter()
        .map(|s| classify_statement(s, dialect, user, depth, &mut prepared))
        .collect();
    Classification { statements }
}

struct Builder<'a> {
    /// Set for queries (SELECT/WITH/…), whose tokens are searched for
    /// nested data-modifying statements.
    is_query: bool,
    tokens: &'a [Token],
    code: &'a str,
    dialect: Dialect,
    /// What a call of a function that is not a built-in counts as.
    user: UserFunctions,
    depth: usize,
    out: Statement,
}

impl Builder<'_> {
    fn add(&mut self, class: C) {
        self.out.classes.insert(class);
    }

    fn unknown(&mut self, note: impl Into<String>) {
        self.out.classes.insert(C::Unknown);
        self.out.notes.push(note.into());
    }

    fn note(&mut self, note: impl Into<String>) {
        self.out.notes.push(note.into());
    }

    /// Upper-cased word at `i` (empty for non-words).
    fn kw(&self, i: usize) -> String {
        match self.tokens.get(i) {
            Some(t) if t.kind == Kind::Word => t.text.to_ascii_uppercase(),
            _ => String::new(),
        }
    }

    fn has_word(&self, kw: &str) -> bool {
        self.tokens.iter().any(|t| t.is_word(kw))
    }

    /// The identifier at `i` as the server resolves it (see
    /// [`Token::ident`]). In MySQL a `"…"` string counts too: under
    /// `ANSI_QUOTES`, which a client may switch on, it is an identifier.
    fn ident(&self, i: usize) -> Option<String> {
        let t = self.tokens.get(i)?;
        if self.dialect == Dialect::Mysql
            && t.kind == Kind::String
            && self.code[t.start..].starts_with('"')
        {
            return Some(t.text.to_lowercase());
        }
        t.ident(self.dialect)
    }

    /// A setting's name at `i`: settings are looked up case-insensitively
    /// whether quoted or not (`SET "ROLE" = …` is `SET role`), and may be
    /// qualified (`SET app.tenant = …`). The name and the index after it.
    fn setting_name(&self, mut i: usize) -> Option<(String, usize)> {
        let part = |t: &Token| match t.kind {
            Kind::Word | Kind::QuotedIdent => Some(t.text.to_ascii_lowercase()),
            _ => None,
        };
        let mut name = part(self.tokens.get(i)?)?;
        i += 1;
        while self.tokens.get(i).is_some_and(|t| t.is_punct('.')) {
            name.push('.');
            name.push_str(&part(self.tokens.get(i + 1)?)?);
            i += 2;
        }
        Some((name, i))
    }

    /// Classifies the statement that starts at token `i` (EXPLAIN ANALYZE
    /// x, PREPARE p AS x) and merges its classes in.
    fn merge_inner(&mut self, i: usize, prepared: &mut HashMap<String, Classes>) -> Classes {
        let Some(start) = self.tokens.get(i).map(|t| t.start) else {
            self.unknown("statement expected");
            return Classes::of(&[C::Unknown]);
        };
        let code = self.code;
        self.merge_sql(&code[start..], prepared)
    }

    fn merge_sql(&mut self, sql: &str, _prepared: &mut HashMap<String, Classes>) -> Classes {
        if self.depth >= MAX_DEPTH {
            self.unknown("statements nested too deeply");
            return Classes::of(&[C::Unknown]);
        }
        let inner = classify_nested(sql, self.dialect, self.user, self.depth + 1);
        let classes = inner.classes();
        for s in inner.statements {
            self.out.classes = self.out.classes.union(s.classes);
            self.out.objects.extend(s.objects);
            self.out.schemas.extend(s.schemas);
            self.out.functions.extend(s.functions);
            self.out.notes.extend(s.notes);
            self.out.transformed.extend(s.transformed);
            self.out.sample_from.extend(s.sample_from);
        }
        classes
    }
}

fn classify_statement(
    stmt: &LexedStatement,
    dialect: Dialect,
    user: UserFunctions,
    depth: usize,
    prepared: &mut HashMap<String, Classes>,
) -> Statement {
    let mut b = Builder {
        is_query: false,
        tokens: &stmt.tokens,
        code: &stmt.code,
        dialect,
        user,
        depth,
        out: Statement {
            text: stmt.code.clone(),
            classes: Classes::default(),
            objects: Vec::new(),
            schemas: Vec::new(),
            functions: Vec::new(),
            notes: Vec::new(),
            prepares: None,
            executes: None,
            transformed: Vec::new(),
            sample_from: Vec::new(),
            outputs: Vec::new(),
        },
    };
    let parsed_inner = leading_keywords(&mut b, prepared);
    scan_tokens(&mut b);
    catalog_writes(&mut b);
    if !parsed_inner {
        from_ast(&mut b);
    }
    if let Some(name) = &b.out.prepares {
        prepared.insert(name.clone(), b.out.classes);
    }
    b.out.objects.sort();
    b.out.objects.dedup();
    b.out.schemas.sort();
    b.out.schemas.dedup();
    b.out.functions.sort();
    b.out.functions.dedup();
    b.out.transformed.sort();
    b.out.transformed.dedup();
    b.out.sample_from.sort();
    b.out.sample_from.dedup();
    b.out
}

/// Pass 1. Returns true when the statement's body was classified as a
/// nested query (PREPARE … FROM 'sql'), whose own AST pass already ran.
fn leading_keywords(b: &mut Builder, prepared: &mut HashMap<String, Classes>) -> bool {
    // A parenthesised query: `(SELECT …) UNION (…)`.
    let first = b.tokens.iter().position(|t| !t.is_punct('(')).unwrap_or(0);
    let lead = b.kw(first);
    let next = b.kw(first + 1);
    let pg = b.dialect == Dialect::Postgres;
    match lead.as_str() {
        "SELECT" | "VALUES" | "WITH" => query(b, first),
        "TABLE" => {
            query(b, first);
            if let Some((name, _)) = object_at(b.tokens, first + 1) {
                b.out.objects.push(name);
            }
            // `TABLE other.t`: sqlparser keeps this name as plain strings,
            // out of the AST pass's reach.
            if let (Some(t), Some(dot)) = (b.tokens.get(first + 1), b.tokens.get(first + 2)) {
                if dot.is_punct('.') && matches!(t.kind, Kind::Word | Kind::QuotedIdent) {
                    b.out.schemas.push(t.text.clone());
                }
            }
        }
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "REPLACE" | "UPSERT" => {
            b.add(C::Write);
            if b.has_word("SELECT") {
                b.add(C::Read);
            }
        }
        "COPY" if pg => copy(b),
        "CREATE" => create(b, first + 1),
        "ALTER" => alter(b, first + 1),
        "DROP" if next == "PREPARE" => b.add(C::Session),
        "DROP" => drop_statement(b, first + 1),
        "TRUNCATE" => {
            b.add(C::Ddl);
            b.add(C::Write);
            // TRUNCATE [TABLE] [ONLY] a, b
            let at = if next == "TABLE" { first + 1 } else { first };
            ddl_objects(b, at);
        }
        "RENAME" => b.add(if next == "USER" { C::Privilege } else { C::Ddl }),
        "GRANT" | "REVOKE" | "REASSIGN" => b.add(C::Privilege),
        "SECURITY" if next == "LABEL" => b.add(C::Privilege),
        "COMMENT" => b.add(C::Ddl),
        "SET" => set(b, first + 1, prepared),
        "RESET" if !pg => match next.as_str() {
            "MASTER" | "SLAVE" | "REPLICA" | "QUERY" | "PERSIST" | "BINARY" => b.add(C::Admin),
            _ => b.unknown("RESET of something MariaDB has no RESET for"),
        },
        "RESET" => match (next.as_str(), b.setting_name(first + 1)) {
            ("SESSION", _) if b.kw(first + 2) == "AUTHORIZATION" => b.add(C::Privilege),
            // RESET ALL leaves the role and the session authorization
            // alone (they are exempt from it); drivers' pools send it on
            // every release.
            ("ALL", _) => b.add(C::Session),
            ("TIME", _) if b.kw(first + 2) == "ZONE" => b.add(C::Session),
            // Resetting a superuser setting needs superuser too. The
            // target may be quoted: RESET "role" is RESET role.
            (_, Some((name, _))) => b.add(pg_setting_class(&name)),
            (_, None) => b.unknown("RESET without a setting"),
        },
        "DISCARD" => {
            b.add(C::Session);
            if next == "ALL" {
                // DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT,
                // which puts the login role back (undoing a SET ROLE).
                b.add(C::Privilege);
            }
        }
        "SHOW" if next == "CREATE" => b.add(C::Read),
        "USE" if !pg && b.ident(first + 1).is_some_and(|db| is_mysql_catalog(&db)) => {
            b.add(C::Privilege);
            b.note("after USE of a system database, unqualified names are its tables");
        }
        // MariaDB XA PREPARE: as PREPARE TRANSACTION (the prepared XA
        // transaction outlives the connection).
        "XA" if next == "PREPARE" => {
            b.add(C::Session);
            b.add(C::Write);
            b.note("XA PREPARE keeps the transaction's locks until it is committed or rolled back");
        }
        "SHOW" | "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE"
        | "LISTEN" | "UNLISTEN" | "NOTIFY" | "DEALLOCATE" | "USE" | "XA" | "UNLOCK" | "HELP"
        | "SIGNAL" | "RESIGNAL" | "GET" => b.add(C::Session),
        "START" => match next.as_str() {
            "TRANSACTION" => b.add(C::Session),
            _ => b.add(C::Admin),
        },
        // Locks block other sessions' writes: treated as a write.
        "LOCK" => b.add(C::Write),
        "FETCH" | "MOVE" | "CLOSE" | "HANDLER" | "DESCRIBE" | "DESC" | "CHECKSUM" => b.add(C::Read),
        "CHECK" if !pg => b.add(C::Read),
        "DECLARE" if pg => {
            // DECLARE name [options] CURSOR [options] FOR query
            match b.tokens.iter().position(|t| t.is_word("FOR")) {
                Some(i) if b.has_word("CURSOR") => {
                    b.add(C::Read);
                    b.merge_inner(i + 1, prepared);
                }
                _ => b.unknown("DECLARE without CURSOR … FOR"),
            }
        }
        "EXPLAIN" => explain(b, first + 1, prepared),
        // MariaDB `ANALYZE [FORMAT=JSON] stmt` runs the statement.
        "ANALYZE" if !pg && !matches!(next.as_str(), "TABLE" | "NO_WRITE_TO_BINLOG" | "LOCAL") => {
            b.add(C::Ddl);
            let mut i = first + 1;
            if b.kw(i) == "FORMAT" {
                i += 3;
            }
            b.note("ANALYZE runs the statement");
            b.merge_inner(i, prepared);
        }
        "PREPARE" => return prepare(b, first + 1, prepared),
        "EXECUTE" => execute(b, first + 1, prepared),
        "CALL" => b.unknown("CALL runs a procedure whose body Airlock cannot see"),
        "DO" if pg => b.unknown("DO runs an anonymous code block Airlock cannot see"),
        "DO" => b.add(C::Read),
        "VACUUM" | "ANALYZE" | "ANALYSE" | "CLUSTER" | "REINDEX" | "REFRESH" | "OPTIMIZE"
        | "REPAIR" => b.add(C::Ddl),
        "CHECKPOINT" | "KILL" | "SHUTDOWN" | "RESTART" | "INSTALL" | "UNINSTALL" | "FLUSH"
        | "PURGE" | "CHANGE" | "STOP" | "BINLOG" | "CACHE" => b.add(C::Admin),
        "LOAD" => match next.as_str() {
            "DATA" | "XML" if !pg => {
                b.add(C::Write);
                b.add(C::Export);
            }
            _ => b.add(C::Admin),
        },
        "IMPORT" => {
            b.add(C::Ddl);
            if next == "FOREIGN" {
                b.add(C::Export);
            }
        }
        "" => b.unknown("statement does not start with a keyword"),
        other => b.unknown(format!("`{other}` is not a statement Airlock knows")),
    }
    false
}

/// SELECT / VALUES / TABLE / WITH.
fn query(b: &mut Builder, first: usize) {
    b.add(C::Read);
    b.is_query = true;
    let mut depth = 0i32;
    let mut main_verb = b.kw(first);
    for i in first..b.tokens.len() {
        let t = &b.tokens[i];
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth -= 1;
        }
        // After WITH's CTEs, the main statement may itself be a write.
        if depth == 0 && main_verb == "WITH" && t.kind == Kind::Word {
            let w = t.text.to_ascii_uppercase();
            if matches!(
                w.as_str(),
                "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "VALUES" | "TABLE"
            ) {
                main_verb = w;
            }
        }
        if depth == 0 && t.is_word("INTO") && !matches!(main_verb.as_str(), "INSERT" | "MERGE") {
            select_into(b, i);
        }
    }
}

/// `SELECT … INTO target`: a new table in PostgreSQL; in MySQL a file
/// (OUTFILE/DUMPFILE) or variables.
fn select_into(b: &mut Builder, into: usize) {
    match b.dialect {
        Dialect::Postgres => {
            b.add(C::Ddl);
            b.add(C::Write);
            b.add(C::Export);
            b.note("SELECT … INTO creates a table from the result");
        }
        Dialect::Mysql => match b.kw(into + 1).as_str() {
            "OUTFILE" | "DUMPFILE" => {
                b.add(C::Export);
                b.note("SELECT … INTO OUTFILE/DUMPFILE writes a file on the database server");
            }
            _ => {}
        },
    }
}

fn copy(b: &mut Builder) {
    // COPY target [(cols)] | (query)  TO|FROM  STDOUT|STDIN|PROGRAM '…'|'file'
    let mut depth = 0i32;
    let mut direction = None;
    for i in 1..b.tokens.len() {
        let t = &b.tokens[i];
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth -= 1;
        } else if depth == 0 && (t.is_word("TO") || t.is_word("FROM")) {
            direction = Some((t.is_word("TO"), i));
            break;
        }
    }
    let Some((to, i)) = direction else {
        b.unknown("COPY without TO or FROM");
        return;
    };
    let target = b.kw(i + 1);
    let endpoint = match (target.as_str(), b.tokens.get(i + 1).map(|t| t.kind)) {
        ("STDOUT" | "STDIN", _) => None,
        ("PROGRAM", _) => Some("runs a program on the database server"),
        (_, Some(Kind::String)) => Some("reads or writes a file on the database server"),
        _ => {
            b.unknown("COPY to or from an unrecognised endpoint");
            return;
        }
    };
    b.add(if to { C::Export } else { C::Write });
    if to && b.tokens.get(1).is_some_and(|t| t.is_punct('(')) {
        b.add(C::Read);
        // COPY (DELETE … RETURNING *) TO STDOUT writes too.
        b.is_query = true;
    } else if let Some((name, _)) = object_at(b.tokens, 1) {
        b.out.objects.push(name);
    }
    if let Some(why) = endpoint {
        b.add(C::Admin);
        b.note(format!("COPY {why}"));
    }
}

/// Skips CREATE/ALTER/DROP modifiers and returns the index of the object kind.
fn object_kind(b: &Builder, mut i: usize) -> usize {
    loop {
        match b.kw(i).as_str() {
            "OR" if matches!(b.kw(i + 1).as_str(), "REPLACE" | "ALTER") => i += 2,
            "TEMP" | "TEMPORARY" | "GLOBAL" | "LOCAL" | "UNLOGGED" | "UNIQUE" | "RECURSIVE"
            | "TRUSTED" | "PROCEDURAL" | "CONSTRAINT" | "ONLINE" | "OFFLINE" | "IGNORE"
            | "NONCLUSTERED" | "SPATIAL" | "FULLTEXT" => i += 1,
            // MySQL: ALGORITHM = x, DEFINER = user@host, SQL SECURITY x
            "ALGORITHM" | "DEFINER" => {
                i += 1;
                while i < b.tokens.len() && !is_object_kind(&b.kw(i)) {
                    i += 1;
                }
            }
            "SQL" if b.kw(i + 1) == "SECURITY" => i += 3,
            // CREATE DEFAULT CONVERSION, but ALTER DEFAULT PRIVILEGES.
            "DEFAULT" if b.kw(i + 1) != "PRIVILEGES" => i += 1,
            _ => return i,
        }
    }
}

fn is_object_kind(word: &str) -> bool {
    matches!(
        word,
        "TABLE"
            | "VIEW"
            | "MATERIALIZED"
            | "FUNCTION"
            | "PROCEDURE"
            | "TRIGGER"
            | "EVENT"
            | "RULE"
            | "INDEX"
            | "SCHEMA"
            | "DATABASE"
            | "USER"
            | "ROLE"
    )
}

fn create(b: &mut Builder, after: usize) {
    let i = object_kind(b, after);
    let kind = b.kw(i);
    let next = b.kw(i + 1);
    if names_objects(&kind) {
        ddl_objects(b, i);
    }
    if kind == "SCHEMA" && b.has_word("GRANT") {
        // CREATE SCHEMA s … GRANT … runs the GRANT as part of the statement.
        b.add(C::Privilege);
    }
    match kind.as_str() {
        "TABLE" => {
            b.add(C::Ddl);
            // `AS query` (PostgreSQL, MySQL) or a bare `SELECT …` (MySQL).
            let as_query = b.has_word("SELECT")
                || b.tokens.windows(2).any(|w| {
                    w[0].is_word("AS")
                        && ["TABLE", "VALUES", "EXECUTE", "WITH"]
                            .iter()
                            .any(|k| w[1].is_word(k))
                });
            if as_query {
                b.add(C::Write);
                b.add(C::Export);
                b.add(C::Read);
                b.note("CREATE TABLE … AS copies a result into a new table");
            }
            federated(b);
        }
        "MATERIALIZED" => {
            b.add(C::Ddl);
            b.add(C::Write);
            b.add(C::Export);
            b.add(C::Read);
        }
        "FOREIGN" | "SERVER" => {
            b.add(C::Ddl);
            b.add(C::Export);
        }
        "USER" if next == "MAPPING" => {
            b.add(C::Ddl);
            b.add(C::Export);
        }
        "ROLE" | "USER" | "GROUP" | "POLICY" => b.add(C::Privilege),
        "EXTENSION" | "LANGUAGE" | "TABLESPACE" | "ACCESS" | "TRANSFORM" => b.add(C::Admin),
        "PUBLICATION" | "SUBSCRIPTION" => {
            b.add(C::Admin);
            b.add(C::Export);
        }
        "VIEW" | "FUNCTION" | "PROCEDURE" | "TRIGGER" | "EVENT" | "RULE" | "INDEX" | "SCHEMA"
        | "DATABASE" | "SEQUENCE" | "TYPE" | "DOMAIN" | "AGGREGATE" | "OPERATOR" | "CAST"
        | "COLLATION" | "CONVERSION" | "TEXT" | "STATISTICS" | "SPATIAL" => b.add(C::Ddl),
        other => b.unknown(format!("CREATE {other} is not a statement Airlock knows")),
    }
}

/// MySQL FEDERATED tables (and CONNECTION=) read and write another server.
fn federated(b: &mut Builder) {
    let federated = b.tokens.windows(3).any(|w| {
        w[0].is_word("ENGINE") && (w[2].is_word("FEDERATED") || w[1].is_word("FEDERATED"))
    }) || b.tokens.iter().any(|t| t.is_word("CONNECTION"));
    if federated {
        b.add(C::Export);
        b.note("a FEDERATED table connects to another server");
    }
}

fn alter(b: &mut Builder, after: usize) {
    let i = object_kind(b, after);
    let kind = b.kw(i);
    let next = b.kw(i + 1);
    if names_objects(&kind) {
        ddl_objects(b, i);
    }
    match kind.as_str() {
        "USER" if next == "MAPPING" => b.add(C::Ddl),
        "ROLE" | "USER" | "GROUP" | "POLICY" => b.add(C::Privilege),
        "DEFAULT" if next == "PRIVILEGES" => b.add(C::Privilege),
        "SYSTEM" | "EXTENSION" | "INSTANCE" | "LANGUAGE" | "TABLESPACE" | "PUBLICATION"
        | "SUBSCRIPTION" => b.add(C::Admin),
        "SERVER" | "FOREIGN" => {
            b.add(C::Ddl);
            if next != "TABLE" {
                b.add(C::Export);
            }
        }
        "LARGE" => b.add(C::Privilege),
        "TABLE" | "VIEW" | "MATERIALIZED" | "FUNCTION" | "PROCEDURE" | "TRIGGER" | "EVENT"
        | "RULE" | "INDEX" | "SCHEMA" | "DATABASE" | "SEQUENCE" | "TYPE" | "DOMAIN"
        | "AGGREGATE" | "OPERATOR" | "COLLATION" | "CONVERSION" | "TEXT" | "STATISTICS"
        | "ROUTINE" => {
            b.add(C::Ddl);
            if kind == "TABLE" {
                federated(b);
            }
        }
        other => b.unknown(format!("ALTER {other} is not a statement Airlock knows")),
    }
    // Ownership and row-level security decide who sees what.
    let owner = b
        .tokens
        .windows(2)
        .any(|w| w[0].is_word("OWNER") && w[1].is_word("TO"));
    let rls = b
        .tokens
        .windows(2)
        .any(|w| w[0].is_word("LEVEL") && w[1].is_word("SECURITY"));
    if owner || rls || b.has_word("SECURITY") && b.has_word("INVOKER") {
        b.add(C::Privilege);
    }
    // ALTER DATABASE/FUNCTION … SET x = v applies x to later sessions or
    // calls: a superuser setting there is as privileged as in SET.
    if b.dialect == Dialect::Postgres
        && matches!(
            kind.as_str(),
            "DATABASE" | "FUNCTION" | "PROCEDURE" | "ROUTINE"
        )
    {
        for j in i..b.tokens.len() {
            let Some((name, after)) = b.setting_name(j + 1) else {
                continue;
            };
            let assigns = matches!(b.kw(after).as_str(), "TO" | "FROM")
                || b.tokens.get(after).is_some_and(|t| t.is_punct('='));
            if b.tokens[j].is_word("SET") && assigns
                || b.tokens[j].is_word("RESET") && name != "all"
            {
                let class = pg_setting_class(&name);
                if class != C::Session {
                    b.add(class);
                }
            }
        }
    }
}

/// A possibly qualified, possibly quoted name starting at token `i`, as
/// `schema.name` (unquoted parts lower-cased), and the index after it.
fn object_at(tokens: &[Token], mut i: usize) -> Option<(String, usize)> {
    let part = |t: &Token| match t.kind {
        Kind::Word => Some(t.text.to_ascii_lowercase()),
        Kind::QuotedIdent => Some(t.text.clone()),
        _ => None,
    };
    let mut name = part(tokens.get(i)?)?;
    i += 1;
    while tokens.get(i).is_some_and(|t| t.is_punct('.')) {
        name.push('.');
        name.push_str(&part(tokens.get(i + 1)?)?);
        i += 2;
    }
    Some((name, i))
}

/// Object kinds whose statements name tables or other objects a policy may
/// list (`objects = [...]`).
fn names_objects(kind: &str) -> bool {
    matches!(
        kind,
        "TABLE"
            | "VIEW"
            | "MATERIALIZED"
            | "FOREIGN"
            | "INDEX"
            | "SEQUENCE"
            | "SCHEMA"
            | "DATABASE"
            | "TYPE"
    )
}

/// The objects a DDL statement names: after the kind word(s) at `kind`,
/// `IF [NOT] EXISTS` and `ONLY`, a comma-separated list of names.
fn ddl_objects(b: &mut Builder, kind: usize) {
    let mut i = kind + 1;
    if matches!(b.kw(kind).as_str(), "MATERIALIZED" | "FOREIGN") {
        i += 1;
    }
    while matches!(
        b.kw(i).as_str(),
        "IF" | "NOT" | "EXISTS" | "ONLY" | "CONCURRENTLY"
    ) {
        i += 1;
    }
    while let Some((name, next)) = object_at(b.tokens, i) {
        b.out.objects.push(name);
        if !b.tokens.get(next).is_some_and(|t| t.is_punct(',')) {
            break;
        }
        i = next + 1;
    }
}

fn drop_statement(b: &mut Builder, after: usize) {
    let i = object_kind(b, after);
    if names_objects(&b.kw(i)) {
        ddl_objects(b, i);
    }
    match b.kw(i).as_str() {
        "ROLE" | "USER" | "GROUP" | "POLICY" | "OWNED" => b.add(C::Privilege),
        "EXTENSION" | "LANGUAGE" | "TABLESPACE" | "PUBLICATION" | "SUBSCRIPTION" | "ACCESS"
        | "TRANSFORM" => b.add(C::Admin),
        "" => b.unknown("DROP without an object kind"),
        _ => b.add(C::Ddl),
    }
}

fn set(b: &mut Builder, after: usize, prepared: &mut HashMap<String, Classes>) {
    if b.dialect == Dialect::Mysql {
        return mysql_set(b, after, prepared);
    }
    let mut i = after;
    while matches!(b.kw(i).as_str(), "SESSION" | "LOCAL") && b.kw(i + 1) != "CHARACTERISTICS" {
        if b.kw(i + 1) == "AUTHORIZATION" {
            b.add(C::Privilege);
            return;
        }
        i += 1;
    }
    // The grammar's own forms (keywords, never quoted) map to settings
    // ordinary users may change or to no setting at all.
    match (b.kw(i).as_str(), b.kw(i + 1).as_str()) {
        ("ROLE", _) => return b.add(C::Privilege),
        ("TIME", "ZONE")
        | ("SCHEMA" | "NAMES" | "SEED" | "CATALOG" | "TRANSACTION" | "CONSTRAINTS", _)
        | ("XML", "OPTION")
        | ("SESSION", "CHARACTERISTICS") => return b.add(C::Session),
        _ => {}
    }
    // Otherwise `name {TO | =} value`; the name may be quoted or
    // qualified and is compared case-insensitively, like the server does.
    match b.setting_name(i) {
        Some((name, next)) => {
            b.add(pg_setting_class(&name));
            if name == "search_path" && functions::shadows_catalog(b.dialect, b.tokens.get(next..))
            {
                b.unknown("search_path puts a schema before pg_catalog: its functions can shadow built-ins");
            }
        }
        None => b.unknown("SET without a setting name"),
    }
}

/// MySQL/MariaDB `SET`: a list of assignments, each of which may name a
/// scope (`GLOBAL x`, `@@global.x` change the server for everyone) and a
/// variable only privileged users may set (`sql_log_bin` hides the session
/// from replication and binary-log audit). A user variable `@x` is the
/// session's own. MariaDB's `SET STATEMENT … FOR stmt` also runs `stmt`.
fn mysql_set(b: &mut Builder, after: usize, prepared: &mut HashMap<String, Classes>) {
    let mut end = b.tokens.len();
    if b.kw(after) == "STATEMENT" {
        let mut depth = 0i32;
        let body = (after + 1..b.tokens.len()).find(|&j| {
            let t = &b.tokens[j];
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                depth -= 1;
            }
            depth == 0 && t.is_word("FOR")
        });
        let Some(body) = body else {
            b.unknown("SET STATEMENT without FOR");
            return;
        };
        b.note("SET STATEMENT … FOR runs the statement after FOR");
        b.merge_inner(body + 1, prepared);
        end = body;
    }
    let start = if b.kw(after) == "STATEMENT" {
        after + 1
    } else {
        after
    };
    match (b.kw(start).as_str(), b.kw(start + 1).as_str()) {
        ("PASSWORD" | "ROLE", _) | ("DEFAULT", "ROLE") => return b.add(C::Privilege),
        ("TRANSACTION", _) => return b.add(C::Session),
        _ => {}
    }
    // Assignments are separated by top-level commas.
    let mut depth = 0i32;
    let mut from = start;
    for j in start..=end {
        let t = b.tokens.get(j).filter(|_| j < end);
        match t {
            Some(t) if t.is_punct('(') => depth += 1,
            Some(t) if t.is_punct(')') => depth -= 1,
            Some(t) if !(depth == 0 && t.is_punct(',')) => {}
            _ => {
                let class = mysql_assignment(b, from);
                b.add(class);
                from = j + 1;
            }
        }
    }
}

/// The class of one MySQL assignment starting at token `i`.
fn mysql_assignment(b: &Builder, mut i: usize) -> C {
    match b.kw(i).as_str() {
        "GLOBAL" | "PERSIST" | "PERSIST_ONLY" => return C::Admin,
        "SESSION" | "LOCAL" => i += 1,
        _ => {}
    }
    if b.tokens.get(i).is_some_and(|t| t.is_punct('@')) {
        if !b.tokens.get(i + 1).is_some_and(|t| t.is_punct('@')) {
            return C::Session; // @user_variable
        }
        i += 2;
        if b.tokens.get(i + 1).is_some_and(|t| t.is_punct('.')) {
            match b.ident(i).as_deref() {
                Some("global" | "persist" | "persist_only") => return C::Admin,
                Some("session" | "local") => i += 2,
                _ => {}
            }
        }
    }
    let Some(name) = b.ident(i) else {
        return C::Unknown;
    };
    if b.tokens.get(i + 1).is_some_and(|t| t.is_punct('.')) {
        // `keycache.key_buffer_size`: structured variables are global.
        return C::Admin;
    }
    match name.as_str() {
        "names" | "character" | "charset" => C::Session,
        "password" | "role" => C::Privilege,
        _ => mysql_variable_class(&name),
    }
}

fn explain(b: &mut Builder, after: usize, prepared: &mut HashMap<String, Classes>) {
    b.add(C::Read);
    let mut i = after;
    let mut analyze = false;
    // EXPLAIN (option [value], …) stmt
    if b.tokens.get(i).is_some_and(|t| t.is_punct('(')) {
        let mut depth = 0;
        let mut option = i + 1;
        while let Some(t) = b.tokens.get(i) {
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') || depth == 1 && t.is_punct(',') {
                if depth == 1 {
                    analyze |= explain_option_runs(b, option, i);
                    option = i + 1;
                }
                if t.is_punct(')') {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
            }
            i += 1;
        }
        if depth != 0 {
            b.unknown("EXPLAIN options without a closing parenthesis");
            return;
        }
    }
    // EXPLAIN ANALYZE VERBOSE … / MySQL EXPLAIN FORMAT=x …
    loop {
        match b.kw(i).as_str() {
            "ANALYZE" | "ANALYSE" => {
                analyze = true;
                i += 1;
            }
            "VERBOSE" | "EXTENDED" | "PARTITIONS" => i += 1,
            "FORMAT" => i += 3,
            _ => break,
        }
    }
    if i >= b.tokens.len() {
        return;
    }
    if analyze {
        b.note("EXPLAIN ANALYZE runs the statement");
        b.merge_inner(i, prepared);
    } else if b.tokens.get(i).is_some_and(|t| t.kind == Kind::Word)
        && b.dialect == Dialect::Mysql
        && i + 1 == b.tokens.len()
    {
        // MySQL `EXPLAIN table` describes a table.
    }
}

/// Whether the EXPLAIN option in tokens `from..to` makes EXPLAIN run the
/// statement. The server compares option names after folding unquoted ones
/// (`"analyze"` is ANALYZE, `"ANALYZE"` an error); here any spelling of
/// analyze counts, quoted or not, so that what the server would reject is
/// treated as running. It is off only for a value the server reads as false
/// — `false`/`off` however quoted or cased, or the integer 0; every other
/// value is true (`on`, `1`, `'true'`) or an error.
fn explain_option_runs(b: &Builder, from: usize, to: usize) -> bool {
    let name = match b.tokens.get(from) {
        Some(t) if matches!(t.kind, Kind::Word | Kind::QuotedIdent) => t.text.to_ascii_lowercase(),
        _ => return false,
    };
    if name != "analyze" && name != "analyse" {
        return false;
    }
    let off = match &b.tokens[from + 1..to.max(from + 1)] {
        [value] => match value.kind {
            // Only a string whose text is certain: no escapes to decode.
            Kind::String if !b.code[value.start..].starts_with(['\'', '$']) => false,
            Kind::Word | Kind::QuotedIdent | Kind::String => {
                !value.text.contains('\\')
                    && (value.text.eq_ignore_ascii_case("false")
                        || value.text.eq_ignore_ascii_case("off"))
            }
            Kind::Number => value.text == "0",
            _ => false,
        },
        _ => false,
    };
    !off
}

/// Returns true when the prepared body was classified from a literal.
fn prepare(b: &mut Builder, after: usize, prepared: &mut HashMap<String, Classes>) -> bool {
    if b.kw(after) == "TRANSACTION" {
        // Two-phase commit (psycopg's tpc_prepare, pgJDBC's XA): the
        // transaction leaves the session and keeps its locks and writes
        // pending on the server until someone commits or rolls it back.
        b.add(C::Session);
        b.add(C::Write);
        b.note("PREPARE TRANSACTION keeps the transaction's locks until it is committed or rolled back");
        return false;
    }
    b.out.prepares = b.tokens.get(after).map(statement_name);
    match b.dialect {
        Dialect::Postgres => match b.tokens.iter().position(|t| t.is_word("AS")) {
            Some(i) => {
                b.merge_inner(i + 1, prepared);
            }
            None => b.unknown("PREPARE without AS"),
        },
        Dialect::Mysql => match (b.kw(after + 1).as_str(), b.tokens.get(after + 2)) {
            ("FROM", Some(t)) if t.kind == Kind::String && after + 3 == b.tokens.len() => {
                let sql = t.text.clone();
                b.note("PREPARE … FROM runs the SQL in the string");
                b.merge_sql(&sql, prepared);
                return true;
            }
            _ => b.unknown("PREPARE … FROM a variable: the SQL is not known until it runs"),
        },
    }
    false
}

fn execute(b: &mut Builder, after: usize, prepared: &mut HashMap<String, Classes>) {
    // MariaDB: EXECUTE IMMEDIATE 'sql'
    if b.kw(after) == "IMMEDIATE" {
        match b.tokens.get(after + 1) {
            Some(t) if t.kind == Kind::String && after + 2 == b.tokens.len() => {
                let sql = t.text.clone();
                b.merge_sql(&sql, prepared);
            }
            _ => b.unknown("EXECUTE IMMEDIATE of a non-literal"),
        }
        return;
    }
    let Some(name) = b.tokens.get(after).map(statement_name) else {
        b.unknown("EXECUTE without a name");
        return;
    };
    b.out.executes = Some(name.clone());
    match prepared.get(&name) {
        Some(classes) => b.out.classes = b.out.classes.union(*classes),
        None => b.unknown(format!("EXECUTE of `{name}`, not prepared in this query")),
    }
}

/// A prepared statement's name as the server stores it: unquoted names
/// are folded to lower case, quoted ones kept.
fn statement_name(token: &Token) -> String {
    match token.kind {
        Kind::QuotedIdent => token.text.clone(),
        _ => token.text.to_ascii_lowercase(),
    }
}

/// Words that are followed by `(` without being function calls.
fn is_structural(word: &str) -> bool {
    matches!(
        word,
        "IN" | "EXISTS"
            | "VALUES"
            | "AS"
            | "ANY"
            | "ALL"
            | "SOME"
            | "ON"
            | "USING"
            | "INTO"
            | "TABLE"
            | "FROM"
            | "WHERE"
            | "AND"
            | "OR"
            | "NOT"
            | "SELECT"
            | "OVER"
            | "FILTER"
            | "WITHIN"
            | "ROW"
            | "ARRAY"
            | "LATERAL"
            | "JOIN"
            | "WITH"
            | "RETURNING"
            | "SET"
            | "WHEN"
            | "THEN"
            | "ELSE"
            | "BY"
            | "DISTINCT"
            | "CHECK"
            | "KEY"
            | "REFERENCES"
            | "UNIQUE"
            | "DEFAULT"
            | "INSERT"
            | "UPDATE"
            | "DELETE"
            | "TO"
            | "VIEW"
            | "INDEX"
            | "FUNCTION"
            | "PROCEDURE"
            | "TYPE"
            | "CALL"
            | "RETURNS"
            | "LIKE"
            | "INCLUDE"
            | "PARTITION"
            | "OPTIONS"
            | "EXPLAIN"
            | "COPY"
            | "GROUPS"
            | "ROWS"
            | "RANGE"
            | "CUBE"
            | "ROLLUP"
            | "GROUPING"
            | "SETS"
            | "TABLESAMPLE"
            | "PRIMARY"
            | "FOREIGN"
            | "CONSTRAINT"
            | "EXCLUDE"
            | "GENERATED"
            | "STORED"
            | "WINDOW"
            | "DO"
            | "CONFLICT"
            | "DECLARE"
            | "PREPARE"
            | "EXECUTE"
            | "UNION"
            | "INTERSECT"
            | "EXCEPT"
            | "LIMIT"
            | "OFFSET"
            | "HAVING"
            | "MATERIALIZED"
            | "RECURSIVE"
            | "CASE"
            | "IS"
            | "BETWEEN"
            | "ORDER"
            | "GROUP"
            | "OF"
            | "NULLS"
    )
}

/// Pass 2: function calls with side effects and writes nested in queries.
fn scan_tokens(b: &mut Builder) {
    let tokens = b.tokens;
    for (i, t) in tokens.iter().enumerate() {
        if !tokens.get(i + 1).is_some_and(|n| n.is_punct('(')) {
            continue;
        }
        if t.kind == Kind::Word && is_structural(&t.text.to_ascii_uppercase()) {
            continue;
        }
        // Names as the server resolves them: `"set_config"`,
        // `U&"pg_r\0065ad_file"`, `pg_catalog."x"`, MySQL `` `db`.`fn` ``.
        let Some(name) = b.ident(i) else {
            continue;
        };
        let qualified = match (
            i.checked_sub(2).and_then(|j| b.ident(j)),
            i.checked_sub(1).and_then(|j| tokens.get(j)),
        ) {
            (Some(schema), Some(dot)) if dot.is_punct('.') => format!("{schema}.{name}"),
            _ => name.clone(),
        };
        // Names after these are the object being defined or written, not calls.
        let defines = i
            .checked_sub(if qualified.contains('.') { 3 } else { 1 })
            .and_then(|j| tokens.get(j))
            .is_some_and(|p| {
                [
                    "TABLE",
                    "INTO",
                    "VIEW",
                    "INDEX",
                    "FUNCTION",
                    "PROCEDURE",
                    "TYPE",
                    "REFERENCES",
                    "ON",
                    "EXISTS",
                    "TRIGGER",
                    "AGGREGATE",
                    "UPDATE",
                    "ONLY",
                    "CALL",
                    "EXECUTE",
                    "PREPARE",
                ]
                .iter()
                .any(|k| p.is_word(k))
            });
        // What the function's name alone tells (see sql::functions).
        let effect = functions::lexical_effect(b.dialect, tokens, i);
        if !effect.classes.is_empty() {
            b.out.functions.push(qualified.clone());
            b.out.classes = b.out.classes.union(effect.classes);
            b.out.notes.extend(effect.note);
        } else if name == "set_config" {
            b.out.functions.push(qualified.clone());
            // Only a plain '…' literal naming another setting is harmless:
            // E'rol\x65', U&'rol\0065' or an expression may spell `role`.
            let setting = tokens
                .get(i + 2)
                .filter(|a| a.kind == Kind::String && b.code[a.start..].starts_with('\''))
                .filter(|a| !a.text.contains('\\'))
                .map(|a| a.text.trim().to_ascii_lowercase());
            match setting.as_deref() {
                Some("search_path")
                    if functions::shadows_catalog(b.dialect, tokens.get(i + 3..i + 5)) =>
                {
                    b.add(C::Session);
                    b.unknown("search_path puts a schema before pg_catalog: its functions can shadow built-ins");
                }
                Some(name) => b.add(pg_setting_class(name)),
                None => b.add(C::Privilege),
            }
        } else if b.tokens.first().is_some_and(|f| f.is_word("CALL")) && !defines {
            b.out.functions.push(qualified.clone());
        } else if !defines && t.kind == Kind::Word {
            // Recorded only when the AST is unavailable; see from_ast.
            b.out.functions.push(qualified);
        }
    }
    // MySQL `SELECT @a := 1` sets a user variable of this session.
    if b.dialect == Dialect::Mysql
        && tokens
            .windows(2)
            .any(|w| w[0].is_punct(':') && w[1].is_punct('='))
    {
        b.add(C::Session);
    }
    // Writes inside a query: data-modifying CTEs, or DML the lead missed.
    if b.is_query && !b.out.classes.contains(C::Write) {
        for (i, t) in tokens.iter().enumerate() {
            let prev = i.checked_sub(1).and_then(|j| tokens.get(j));
            let after_dot = prev.is_some_and(|p| p.is_punct('.'));
            let is_call = tokens.get(i + 1).is_some_and(|n| n.is_punct('('));
            if after_dot || is_call {
                continue;
            }
            let write = t.is_word("INSERT")
                || t.is_word("DELETE")
                || t.is_word("MERGE")
                || t.is_word("UPDATE")
                    && !prev
                        .is_some_and(|p| p.is_word("FOR") || p.is_word("KEY") || p.is_word("DO"));
            if write {
                b.add(C::Write);
                b.note("the query contains a data-modifying statement");
                break;
            }
        }
    }
}

/// MySQL/MariaDB schemas that are the server's own: its accounts and
/// grants (`mysql`), instrumentation (`performance_schema`, `sys`) and
/// metadata (`information_schema`).
fn is_mysql_catalog(schema: &str) -> bool {
    matches!(
        schema,
        "mysql" | "performance_schema" | "sys" | "information_schema"
    )
}

/// Whether the resolved, possibly qualified name `parts` is a table of the
/// server's own catalogs. Compared case-insensitively: a spelling the
/// server would not resolve to the catalog only errors there.
fn is_catalog_table(parts: &[String], dialect: Dialect) -> bool {
    let lower: Vec<String> = parts.iter().map(|p| p.to_lowercase()).collect();
    match (dialect, lower.as_slice()) {
        // Unqualified names find pg_catalog first (it is searched before
        // the search_path unless listed later in it), and every table and
        // view there is called pg_*: `UPDATE pg_authid` is the catalog's.
        (Dialect::Postgres, [name]) => name.starts_with("pg_"),
        // schema.name or database.schema.name
        (Dialect::Postgres, [.., schema, _]) => {
            matches!(schema.as_str(), "pg_catalog" | "information_schema")
                || schema.starts_with("pg_toast")
        }
        (Dialect::Mysql, [.., schema, _]) => is_mysql_catalog(schema),
        _ => false,
    }
}

/// Pass 4: rows written or locked in the server's catalogs. Writing
/// `pg_authid` makes a superuser, `mysql.global_priv` an account, and
/// locking `pg_database` stalls every new connection: not ordinary work
/// but `privilege`. Every writing verb of the statement counts, wherever
/// it sits (CTEs, rules' actions, multi-table MySQL forms).
fn catalog_writes(b: &mut Builder) {
    if !b.out.classes.contains(C::Write) {
        return;
    }
    let tokens = b.tokens;
    let mut targets: Vec<Vec<String>> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != Kind::Word
            || tokens.get(i + 1).is_some_and(|n| n.is_punct('('))
            || i.checked_sub(1).is_some_and(|j| tokens[j].is_punct('.'))
        {
            continue;
        }
        let prev = i.checked_sub(1).map(|j| b.kw(j)).unwrap_or_default();
        let verb = t.text.to_ascii_uppercase();
        let after_modifiers = |mut j: usize| {
            while matches!(
                b.kw(j).as_str(),
                "LOW_PRIORITY"
                    | "DELAYED"
                    | "HIGH_PRIORITY"
                    | "IGNORE"
                    | "QUICK"
                    | "INTO"
                    | "ONLY"
                    | "TABLE"
                    | "TABLES"
                    | "FROM"
            ) {
                j += 1;
            }
            j
        };
        match verb.as_str() {
            "INSERT" | "REPLACE" | "MERGE" | "UPSERT" => {
                targets.extend(catalog_name_at(b, after_modifiers(i + 1)));
            }
            // Not the verbs of `FOR [NO KEY] UPDATE`, `ON DUPLICATE KEY
            // UPDATE`, `ON CONFLICT DO UPDATE`, triggers and foreign keys.
            "UPDATE" | "DELETE"
                if !matches!(
                    prev.as_str(),
                    "FOR" | "KEY" | "DO" | "NO" | "OF" | "ON" | "OR" | "BEFORE" | "AFTER"
                ) =>
            {
                let stop: &[&str] = if verb == "UPDATE" {
                    &["SET"]
                } else {
                    &["WHERE", "ORDER", "LIMIT", "RETURNING"]
                };
                if b.dialect == Dialect::Postgres {
                    targets.extend(catalog_name_at(b, after_modifiers(i + 1)));
                } else {
                    // MySQL multi-table forms: any table named before SET
                    // (UPDATE) or WHERE (DELETE) may be the one written.
                    targets.extend(names_until(b, i + 1, stop));
                }
            }
            "TRUNCATE" | "LOCK" if i == 0 => targets.extend(names_until(b, i + 1, &["IN"])),
            "COPY" if i == 0 && tokens.iter().any(|t| t.is_word("FROM")) => {
                targets.extend(catalog_name_at(b, 1));
            }
            // LOAD DATA … INTO TABLE name
            "INTO" if tokens.first().is_some_and(|f| f.is_word("LOAD")) => {
                targets.extend(catalog_name_at(b, after_modifiers(i + 1)));
            }
            _ => {}
        }
    }
    let catalog: Vec<String> = targets
        .into_iter()
        .filter(|parts| is_catalog_table(parts, b.dialect))
        .map(|parts| parts.join("."))
        .collect();
    if !catalog.is_empty() {
        b.add(C::Privilege);
        b.note(format!(
            "writes or locks the server's catalog: {}",
            catalog.join(", ")
        ));
    }
}

/// The resolved parts of the (possibly qualified) name at `i`, as a
/// one-element list when there is one.
fn catalog_name_at(b: &Builder, i: usize) -> Option<Vec<String>> {
    let mut parts = vec![b.ident(i)?];
    let mut j = i + 1;
    while b.tokens.get(j).is_some_and(|t| t.is_punct('.')) {
        match b.ident(j + 1) {
            Some(part) => parts.push(part),
            None => break, // `t.*`
        }
        j += 2;
    }
    Some(parts)
}

/// Every name from `i` up to the first of `stop` at the top level.
fn names_until(b: &Builder, mut i: usize, stop: &[&str]) -> Vec<Vec<String>> {
    let mut names = Vec::new();
    let mut depth = 0i32;
    while let Some(t) = b.tokens.get(i) {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth -= 1;
        } else if depth == 0 && stop.iter().any(|k| t.is_word(k)) {
            break;
        }
        let after_dot = i > 0 && b.tokens[i - 1].is_punct('.');
        if !after_dot {
            if let Some(name) = catalog_name_at(b, i) {
                names.push(name);
            }
        }
        i += 1;
    }
    names
}

/// Pass 3: the statement must parse; objects and functions come from the AST.
fn from_ast(b: &mut Builder) {
    let code = with_target_list(b);
    let parsed = match b.dialect {
        Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, &code),
        Dialect::Mysql => Parser::parse_sql(&MySqlDialect {}, &code),
    };
    let statements = match parsed {
        Ok(s) => s,
        // A form without expressions, matched to its last token: the
        // parser would have found nothing the other passes missed.
        Err(_) if forms::understood(b.tokens, b.code, b.dialect) => return,
        Err(e) => {
            // Keep the lexical function names: the best information there is.
            b.unknown(format!("could not parse: {e}"));
            return;
        }
    };
    if statements.len() != 1 {
        b.unknown("the parser and the lexer disagree on where statements end");
        return;
    }
    // The AST knows calls precisely: replace the lexical guesses, keeping
    // the side-effect functions found by the token scan.
    b.out.functions.retain(|f| {
        let last = f.rsplit('.').next().unwrap_or(f);
        !functions::reviewed_effect(last).classes.is_empty() || f.ends_with("set_config")
    });
    let mut objects = Vec::new();
    let mut schemas = Vec::new();
    let _ = visit_relations(&statements, |name| {
        objects.push(object_name(name));
        if let Some(schema) = qualifier(name) {
            schemas.push(schema);
        }
        ControlFlow::<()>::Continue(())
    });
    b.out.objects.extend(objects);
    b.out.schemas.extend(schemas);
    b.out.transformed = super::transforms::transformed_columns(&statements, b.dialect);
    b.out.outputs = super::transforms::output_sources(&statements);
    if !b.out.transformed.is_empty() {
        b.out.sample_from = super::transforms::relations_read(&statements, b.dialect);
    }
    // Every call — in expressions and in FROM — must be known harmless for
    // the statement to stay a read.
    for call in functions::ast_calls(&statements) {
        let effect = functions::judge(b.dialect, &call, b.user);
        b.out.classes = b.out.classes.union(effect.classes);
        b.out.notes.extend(effect.note);
        b.out.functions.push(call.display());
    }
    b.out.notes.dedup();
}

/// The statement's code for the parser. PostgreSQL allows a `SELECT`
/// with no target list (`SELECT FROM t WHERE …`, `SELECT`: drivers and
/// ORMs send it to test existence or a connection), which sqlparser does
/// not; given a constant target, `NULL`, it parses the same query — the
/// same tables, calls and clauses — so nothing the AST pass looks for is
/// added or lost.
fn with_target_list<'a>(b: &Builder<'a>) -> std::borrow::Cow<'a, str> {
    const AFTER_TARGETS: &[&str] = &[
        "FROM",
        "WHERE",
        "GROUP",
        "HAVING",
        "WINDOW",
        "ORDER",
        "LIMIT",
        "OFFSET",
        "FETCH",
        "FOR",
        "UNION",
        "INTERSECT",
        "EXCEPT",
    ];
    let empty = b.dialect == Dialect::Postgres
        && b.tokens.first().is_some_and(|t| t.is_word("SELECT"))
        && b.tokens
            .get(1)
            .is_none_or(|t| AFTER_TARGETS.iter().any(|k| t.is_word(k)));
    match b.tokens.first() {
        Some(select) if empty => {
            let at = select.start + select.text.len();
            match (b.code.get(..at), b.code.get(at..)) {
                (Some(head), Some(tail)) => format!("{head} NULL{tail}").into(),
                _ => b.code.into(),
            }
        }
        _ => b.code.into(),
    }
}

/// The part before the last of a qualified name (`db` of `db.t`, `s` of
/// `catalog.s.t`), as written.
fn qualifier(name: &ObjectName) -> Option<String> {
    let at = name.0.len().checked_sub(2)?;
    Some(match &name.0[at] {
        ObjectNamePart::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    })
}

/// `schema.name` with unquoted parts lower-cased.
fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) if ident.quote_style.is_some() => ident.value.clone(),
            ObjectNamePart::Identifier(ident) => ident.value.to_ascii_lowercase(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::super::{classify, Dialect};

    fn classes(sql: &str, d: Dialect) -> String {
        classify(sql, d).classes().to_string()
    }

    #[test]
    fn spot_checks() {
        use Dialect::{Mysql as M, Postgres as P};
        let cases: &[(&str, Dialect, &str)] = &[
            ("SELECT 1", P, "read"),
            ("SELECT 'DROP TABLE t'", P, "read"),
            ("SELECT \"grant\" FROM t", P, "read"),
            ("/* /* */ DROP TABLE t */ SELECT 1", P, "read"),
            ("SELECT 1; DROP TABLE t", P, "read+ddl"),
            ("SeLeCt/**/pg_read_file('/etc/passwd')", P, "read+export"),
            ("SELECT pg_catalog.pg_read_file('x')", P, "read+export"),
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                P,
                "read+write",
            ),
            ("SELECT * FROM t FOR UPDATE", P, "read"),
            ("COPY t TO STDOUT", P, "export"),
            (
                "COPY (SELECT * FROM users) TO PROGRAM 'curl x'",
                P,
                "read+export+admin",
            ),
            ("COPY t FROM STDIN", P, "write"),
            ("SELECT * INTO new_t FROM t", P, "read+write+export+ddl"),
            (
                "CREATE TABLE x AS SELECT * FROM t",
                P,
                "read+write+export+ddl",
            ),
            ("SET ROLE postgres", P, "privilege"),
            ("SET search_path = x", P, "session"),
            ("SELECT set_config('role', 'x', false)", P, "read+privilege"),
            (
                "SELECT set_config('work_mem', '1MB', false)",
                P,
                "read+session",
            ),
            ("DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", P, "unknown"),
            ("EXPLAIN ANALYZE DELETE FROM t", P, "read+write"),
            ("EXPLAIN DELETE FROM t", P, "read"),
            ("PREPARE p AS DELETE FROM t; EXECUTE p", P, "write"),
            ("EXECUTE p", P, "unknown"),
            ("ALTER SYSTEM SET work_mem = '1GB'", P, "admin+unknown"),
            ("GRANT admin TO bob", P, "privilege+unknown"),
            ("TRUNCATE t", P, "write+ddl"),
            ("SELECT 1 /*! ; DROP TABLE t */", M, "read+ddl"),
            (
                "SELECT * FROM t INTO OUTFILE '/tmp/x'",
                M,
                "read+export+unknown",
            ),
            ("SELECT 1 INTO @a", M, "read"),
            ("SET GLOBAL general_log = 1", M, "admin"),
            ("PREPARE s FROM 'DROP TABLE t'", M, "ddl"),
            ("PREPARE s FROM @q", M, "unknown"),
            ("SELECT 'a\\'; DROP TABLE t; -- '", M, "unknown"),
            ("", P, ""),
            (";", P, ""),
            ("SELECT 'x", P, "unknown"),
            ("frobnicate the database", P, "unknown"),
            // Found by the fuzzer (panicked before the fix).
            ("EXPLAIN ANALYZE \u{3000}", P, "read+unknown"),
            ("PREPARE AS \x0b", P, "unknown"),
        ];
        let mut wrong = Vec::new();
        for (sql, d, want) in cases {
            let got = classes(sql, *d);
            if got != *want {
                wrong.push(format!("{d:?} {sql:?}: want {want}, got {got}"));
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }
}

#[cfg(test)]
mod hostile_spelling_tests {
    use super::super::{classify, Dialect};
    use Dialect::{Mysql as M, Postgres as P};

    fn check(cases: &[(&str, Dialect, &str)]) {
        let mut wrong = Vec::new();
        for (sql, d, want) in cases {
            let got = classify(sql, *d).classes().to_string();
            if got != *want {
                wrong.push(format!("{d:?} {sql:?}: want {want}, got {got}"));
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    #[test]
    fn names_are_compared_as_the_server_resolves_them() {
        // The AST pass reads U& and quoted names as sqlparser gives them
        // (undecoded): such a call is also a user function, `unknown` —
        // stricter than the resolved name's class alone, never looser.
        check(&[
            (
                r#"SELECT U&"pg_r\0065ad_file"('/etc/hostname')"#,
                P,
                "read+export+unknown",
            ),
            (
                r#"SELECT u&"pg_r\+000065ad_file"('/etc/hostname')"#,
                P,
                "read+export+unknown",
            ),
            (
                r#"SELECT U&"pg_r!0065ad_file" UESCAPE '!' ('x')"#,
                P,
                "read+export+unknown",
            ),
            (
                r#"SELECT U&"pg_r!!0065ad_file" UESCAPE '!' ('x')"#,
                P,
                "read+unknown",
            ),
            (
                r#"SELECT U&"pg_r#0065ad_file" /* c */ UESCAPE /* d */ '#' ('x')"#,
                P,
                "read+export+unknown",
            ),
            (
                r#"SELECT "pg_catalog"."pg_read_file"('x')"#,
                P,
                "read+export",
            ),
            (
                r#"SELECT U&"pg_c\0061talog".U&"lo_\0065xport"(1, 'x')"#,
                P,
                "read+export+unknown",
            ),
            (r#"SELECT U&"x\00" FROM t"#, P, "unknown"),
            (r#"SELECT U&"x\D800" FROM t"#, P, "unknown"),
            (r#"SELECT U&"x" UESCAPE 'a' FROM t"#, P, "unknown"),
            (
                r#"SELECT "set_config"('role', 'x', false)"#,
                P,
                "read+privilege",
            ),
            (
                r#"SELECT pg_catalog."set_config"('role', 'x', false)"#,
                P,
                "read+privilege",
            ),
            (
                r#"SELECT U&"set_c\006Fnfig"('role', 'x', false)"#,
                P,
                "read+privilege+unknown",
            ),
            (
                r#"SELECT set_config('ROLE', 'x', false)"#,
                P,
                "read+privilege",
            ),
            (
                r#"SELECT set_config(U&'r\006Fle', 'x', false)"#,
                P,
                "read+privilege",
            ),
            (
                r#"SELECT set_config('work_mem', '1MB', false)"#,
                P,
                "read+session",
            ),
            (r#"SET "role" = 'postgres'"#, P, "privilege"),
            (r#"SET "ROLE" = 'postgres'"#, P, "privilege"),
            (r#"SET U&"r\006Fle" = 'postgres'"#, P, "privilege+unknown"),
            (
                r#"SET LOCAL "session_authorization" TO 'postgres'"#,
                P,
                "privilege",
            ),
            (r#"RESET "role""#, P, "privilege"),
            (r#"RESET U&"ro\006Ce""#, P, "privilege+unknown"),
            ("SELECT `load_file`('/etc/passwd')", M, "read+export"),
            (
                "SELECT `mysql`.`load_file`('/etc/passwd')",
                M,
                "read+export+unknown",
            ),
            ("SELECT LOAD_FILE('/etc/passwd')", M, "read+export"),
            (
                r#"SELECT "load_file"('/etc/passwd')"#,
                M,
                "read+export+unknown",
            ),
            (
                "SELECT 1 /*!50000 , load_file('/etc/passwd') */",
                M,
                "read+export",
            ),
        ]);
    }

    #[test]
    fn explain_runs_the_statement_for_every_spelling_of_analyze() {
        check(&[
            (
                r#"EXPLAIN ("analyze") CREATE TABLE x AS SELECT 1"#,
                P,
                "read+write+export+ddl",
            ),
            (r#"EXPLAIN ("ANALYZE") DELETE FROM t"#, P, "read+write"),
            (
                r#"EXPLAIN (U&"an\0061lyze") DELETE FROM t"#,
                P,
                "read+write+unknown",
            ),
            ("EXPLAIN (analyze 'on') DELETE FROM t", P, "read+write"),
            ("EXPLAIN (analyze yes) DELETE FROM t", P, "read+write"),
            ("EXPLAIN (analyze 1) DELETE FROM t", P, "read+write"),
            ("EXPLAIN (analyze true) DELETE FROM t", P, "read+write"),
            ("EXPLAIN (analyze \"true\") DELETE FROM t", P, "read+write"),
            (
                "EXPLAIN (costs off, ANALYSE) DELETE FROM t",
                P,
                "read+write",
            ),
            (
                "EXPLAIN (format json, analyze, buffers) DELETE FROM t",
                P,
                "read+write",
            ),
            (
                "EXPLAIN (analyze E'of\\x66') DELETE FROM t",
                P,
                "read+write",
            ),
            ("EXPLAIN (analyze 'OFF') DELETE FROM t", P, "read"),
            ("EXPLAIN (analyze \"off\") DELETE FROM t", P, "read"),
            ("EXPLAIN (analyze false, verbose) DELETE FROM t", P, "read"),
            ("EXPLAIN (analyze 0) DELETE FROM t", P, "read"),
            (
                "EXPLAIN (generic_plan) DELETE FROM t WHERE id = $1",
                P,
                "read",
            ),
            ("EXPLAIN (verbose) DELETE FROM t", P, "read"),
            ("EXPLAIN (analyze DELETE FROM t", P, "read+unknown"),
        ]);
    }

    #[test]
    fn catalog_writes_and_locks_are_privilege() {
        check(&[
            ("UPDATE pg_catalog.pg_authid SET rolsuper = true WHERE rolname = 'a'", P, "write+privilege"),
            ("UPDATE pg_authid SET rolsuper = true", P, "write+privilege"),
            (r#"UPDATE "pg_catalog"."pg_authid" SET rolsuper = true"#, P, "write+privilege"),
            (r#"UPDATE U&"pg_\0061uthid" SET rolsuper = true"#, P, "write+privilege+unknown"),
            ("UPDATE ONLY pg_catalog . pg_class SET relname = 'x'", P, "write+privilege+unknown"),
            ("DELETE FROM pg_catalog.pg_database WHERE datname = 'x'", P, "write+privilege"),
            ("INSERT INTO pg_catalog.pg_namespace VALUES (1)", P, "write+privilege"),
            ("INSERT INTO information_schema.sql_features VALUES ('x')", P, "write+privilege"),
            ("LOCK pg_catalog.pg_database", P, "write+privilege"),
            ("LOCK TABLE ONLY pg_authid IN ACCESS EXCLUSIVE MODE", P, "write+privilege"),
            ("TRUNCATE pg_catalog.pg_statistic", P, "write+ddl+privilege"),
            ("COPY pg_authid FROM STDIN", P, "write+privilege"),
            ("MERGE INTO pg_authid a USING t ON true WHEN MATCHED THEN DELETE", P, "write+privilege"),
            ("WITH x AS (UPDATE pg_authid SET rolsuper = true RETURNING 1) SELECT * FROM x", P, "read+write+privilege"),
            ("UPDATE pg_settings SET setting = 'replica' WHERE name = 'session_replication_role'", P, "write+privilege"),
            ("UPDATE test.pg_catalog.pg_authid SET rolsuper = true", P, "write+privilege"),
            ("UPDATE t SET a = 1 FROM pg_class c WHERE c.oid = t.id", P, "write"),
            ("INSERT INTO t SELECT relname FROM pg_class", P, "read+write"),
            ("INSERT INTO mysql.global_priv VALUES ('%', 'x', '{}')", M, "write+privilege"),
            ("INSERT INTO `mysql`.`global_priv` VALUES ('%', 'x', '{}')", M, "write+privilege"),
            ("INSERT INTO mysql . user VALUES ()", M, "write+privilege"),
            ("INSERT INTO MySQL.User VALUES ()", M, "write+privilege"),
            (r#"INSERT INTO "mysql"."user" VALUES ()"#, M, "write+privilege"),
            ("REPLACE INTO mysql.proxies_priv VALUES ()", M, "write+privilege"),
            ("UPDATE t JOIN mysql.user u ON u.User = t.a SET u.Password = ''", M, "write+privilege"),
            ("UPDATE t, mysql.user SET mysql.user.Host = '%'", M, "write+privilege+unknown"),
            ("DELETE u FROM mysql.user u WHERE u.User = 'x'", M, "write+privilege"),
            ("DELETE FROM mysql.user USING mysql.user WHERE User = 'x'", M, "write+privilege"),
            ("UPDATE performance_schema.setup_instruments SET ENABLED = 'NO'", M, "write+privilege"),
            ("LOCK TABLES mysql.user WRITE", M, "write+privilege+unknown"),
            ("LOAD DATA INFILE '/tmp/x' INTO TABLE mysql.user", M, "write+export+privilege+unknown"),
            ("/*!40000 INSERT INTO mysql.db VALUES () */", M, "write+privilege"),
            ("PREPARE s FROM 'UPDATE mysql.user SET Host = ''%'''", M, "write+privilege"),
            ("USE mysql", M, "privilege"),
            ("USE `mysql`", M, "privilege"),
            ("USE shop", M, "session"),
            ("INSERT INTO t SELECT * FROM mysql.user", M, "read+write"),
        ]);
    }

    #[test]
    fn drivers_own_statements_are_classified_without_unknown() {
        check(&[
            (
                "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
                P,
                "session",
            ),
            ("MOVE ABSOLUTE 0 FROM \"srv\"", P, "read"),
            ("MOVE FORWARD 1 __asyncpg_portal_7__", P, "read"),
            ("PREPARE TRANSACTION 'g'", P, "write+session"),
            (
                "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL",
                P,
                "read+session",
            ),
            ("SELECT FROM t", P, "read"),
            ("SELECT", P, "read"),
            (
                "SELECT FROM t WHERE pg_read_file('x') = ''",
                P,
                "read+export",
            ),
            ("SELECT FROM t WHERE f(id) = 1", P, "read+unknown"),
            (
                "SELECT information_schema._pg_expandarray(ARRAY[1])",
                P,
                "read",
            ),
            ("SELECT _pg_expandarray(ARRAY[1])", P, "read+unknown"),
            (
                "SELECT other_schema._pg_expandarray(ARRAY[1])",
                P,
                "read+unknown",
            ),
            ("START TRANSACTION WITH CONSISTENT SNAPSHOT", M, "session"),
            ("SET @`a` = 1", M, "session"),
            ("SET @`a` = 1, GLOBAL general_log = 1", M, "admin+session"),
            ("XA PREPARE 'g'", M, "write+session"),
            ("XA RECOVER", M, "session"),
            ("MOVE FORWARD (SELECT 1) FROM c", P, "read+unknown"),
            ("PREPARE TRANSACTION 'g' || f()", P, "write+session+unknown"),
        ]);
    }

    #[test]
    fn only_settings_ordinary_users_may_change_are_session() {
        check(&[
            ("SET session_replication_role = replica", P, "privilege"),
            (
                "SET SESSION session_replication_role TO 'replica'",
                P,
                "privilege",
            ),
            ("SET LOCAL log_statement = 'none'", P, "privilege"),
            ("SET \"log_min_duration_statement\" = -1", P, "privilege"),
            ("SET Log_Statement = 'none'", P, "privilege"),
            ("SET pgaudit.log = 'none'", P, "privilege"),
            ("RESET session_replication_role", P, "privilege"),
            (
                "SELECT set_config('session_replication_role', 'replica', false)",
                P,
                "read+privilege",
            ),
            (
                "SELECT set_config('log_statement', 'none', true)",
                P,
                "read+privilege",
            ),
            (
                "ALTER DATABASE d SET log_statement = 'none'",
                P,
                "ddl+privilege+unknown",
            ),
            (
                "ALTER FUNCTION f() SET session_replication_role TO replica",
                P,
                "ddl+privilege",
            ),
            ("ALTER ROLE a SET log_statement = 'none'", P, "privilege"),
            ("SET work_mem = '8MB'", P, "session"),
            ("SET search_path TO app, public", P, "session"),
            ("SET TIME ZONE 'UTC'", P, "session"),
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                P,
                "session",
            ),
            ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", P, "session"),
            ("SET app.tenant_id = '42'", P, "session"),
            ("SET statement_timeout = 0", P, "session"),
            ("RESET ALL", P, "session"),
            ("RESET work_mem", P, "session"),
            ("DISCARD ALL", P, "privilege+session"),
            ("ALTER DATABASE d SET work_mem = '1MB'", P, "ddl+unknown"),
            ("SET sql_log_bin = 0", M, "admin"),
            ("SET SESSION sql_log_off = 1", M, "admin"),
            ("SET @@session.sql_log_bin = 0", M, "admin"),
            ("SET @@SQL_LOG_BIN = 0", M, "admin"),
            ("SET `sql_log_bin` = 0", M, "admin"),
            (
                "SET autocommit = 1, pseudo_thread_id = 7",
                M,
                "admin+session",
            ),
            ("SET gtid_seq_no = 10", M, "admin"),
            ("SET /*!40101 sql_log_bin = 0 */", M, "admin"),
            (
                "SET STATEMENT sql_log_bin = 0 FOR INSERT INTO t VALUES (1)",
                M,
                "write+admin+unknown",
            ),
            (
                "SET STATEMENT max_statement_time = 1 FOR DROP TABLE t",
                M,
                "ddl+session+unknown",
            ),
            (
                "SET STATEMENT max_statement_time = 1 FOR SELECT 1",
                M,
                "read+session+unknown",
            ),
            ("SET @sql_log_bin = 0", M, "session"),
            ("SET NAMES utf8mb4", M, "session"),
            ("SET sql_mode = 'ANSI_QUOTES', autocommit = 0", M, "session"),
            (
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                M,
                "session",
            ),
            ("SET GLOBAL max_connections = 10", M, "admin"),
            ("SET @@global.max_connections = 10", M, "admin"),
        ]);
    }
}
