//! Statement forms the classifier understands completely from their
//! tokens, so that sqlparser's failure to parse them does not make them
//! `unknown`.
//!
//! Drivers send statements on their own that sqlparser's grammar lacks —
//! `BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE` (asyncpg),
//! `MOVE ABSOLUTE 0 FROM "c"` (psycopg), `PREPARE TRANSACTION 'gid'`,
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT` and ``SET @`a` = 1``
//! (mysql-connector), `XA …`. Holding them would stall every pool.
//!
//! **Why skipping the parser is safe here.** The parser's part in
//! classification is to find the calls and objects an expression hides.
//! Each form below is matched token by token, to the end of the
//! statement, against a grammar with no expressions at all: keywords,
//! names, and single literals. Every token must have its place — one
//! unexpected token and the form does not match (the statement stays
//! `unknown` if the parser fails too). No form admits a parenthesis, so no
//! function can be called and no subquery run; a statement whose class
//! depends on its name or value (`SET role`, `SET GLOBAL x`) is still
//! classified by the leading-keyword pass, which runs in any case.
//!
//! Nothing here is a reason to call a statement harmless: a match only
//! says that the parser has nothing to add.

use super::lexer::{Kind, Token};
use super::Dialect;

/// Whether `tokens` (one statement, without its `;`, lexed from `code`)
/// is one of the forms of this module in full.
pub fn understood(tokens: &[Token], code: &str, dialect: Dialect) -> bool {
    // The grammar below has no place for one; checked first as a second
    // line under the per-form matching.
    if tokens.iter().any(|t| t.is_punct('(') || t.is_punct(')')) {
        return false;
    }
    let mut c = Cursor { tokens, code, i: 0 };
    let matched = match dialect {
        Dialect::Postgres => pg(&mut c),
        Dialect::Mysql => mysql(&mut c),
    };
    matched && c.done()
}

/// A position in a statement's tokens.
struct Cursor<'a> {
    tokens: &'a [Token],
    code: &'a str,
    i: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.i >= self.tokens.len()
    }

    fn peek(&self, kw: &str) -> bool {
        self.tokens.get(self.i).is_some_and(|t| t.is_word(kw))
    }

    /// Consumes the keyword `kw` if it is next.
    fn kw(&mut self, kw: &str) -> bool {
        let hit = self.peek(kw);
        self.i += usize::from(hit);
        hit
    }

    /// Consumes the keywords `kws` if they are all next, in order.
    fn kws(&mut self, kws: &[&str]) -> bool {
        let hit = kws
            .iter()
            .enumerate()
            .all(|(k, kw)| self.tokens.get(self.i + k).is_some_and(|t| t.is_word(kw)));
        if hit {
            self.i += kws.len();
        }
        hit
    }

    /// Consumes one of `kws` if it is next.
    fn one_of(&mut self, kws: &[&str]) -> bool {
        kws.iter().any(|kw| self.kw(kw))
    }

    fn punct(&mut self, p: char) -> bool {
        let hit = self.tokens.get(self.i).is_some_and(|t| t.is_punct(p));
        self.i += usize::from(hit);
        hit
    }

    /// A name: a word or a quoted identifier. Not a PostgreSQL `U&"…"`
    /// one: names spelt in escapes stay the parser's to refuse, so that a
    /// hostile spelling is never made quieter here.
    fn name(&mut self) -> bool {
        let hit = self.tokens.get(self.i).is_some_and(|t| match t.kind {
            Kind::Word => true,
            Kind::QuotedIdent => !self
                .code
                .get(t.start..)
                .is_some_and(|s| s.starts_with(['U', 'u'])),
            _ => false,
        });
        self.i += usize::from(hit);
        hit
    }

    /// A name qualified any number of times: `a.b.c`.
    fn dotted_name(&mut self) -> bool {
        if !self.name() {
            return false;
        }
        while self.tokens.get(self.i).is_some_and(|t| t.is_punct('.')) {
            self.i += 1;
            if !self.name() {
                return false;
            }
        }
        true
    }

    /// A string literal.
    fn string(&mut self) -> bool {
        let hit = self
            .tokens
            .get(self.i)
            .is_some_and(|t| t.kind == Kind::String);
        self.i += usize::from(hit);
        hit
    }

    /// A number, with an optional sign.
    fn number(&mut self) -> bool {
        let start = self.i;
        let _ = self.punct('-') || self.punct('+');
        let hit = self
            .tokens
            .get(self.i)
            .is_some_and(|t| t.kind == Kind::Number);
        if hit {
            self.i += 1;
        } else {
            self.i = start;
        }
        hit
    }

    /// One value of a setting: a literal or a bare word (`ON`, `DEFAULT`,
    /// `utf8mb4`, `ISO`).
    fn value(&mut self) -> bool {
        self.string() || self.number() || self.name()
    }
}

fn pg(c: &mut Cursor) -> bool {
    if c.kw("BEGIN") {
        let _ = c.one_of(&["WORK", "TRANSACTION"]);
        return pg_modes(c);
    }
    if c.kws(&["START", "TRANSACTION"]) {
        return pg_modes(c);
    }
    if c.kws(&["PREPARE", "TRANSACTION"]) {
        return c.string();
    }
    if c.one_of(&["COMMIT", "ROLLBACK"]) && c.kw("PREPARED") {
        return c.string();
    }
    c.i = 0;
    if c.one_of(&["COMMIT", "END", "ABORT", "ROLLBACK"]) {
        let rollback = c.tokens[0].is_word("ROLLBACK");
        let _ = c.one_of(&["WORK", "TRANSACTION"]);
        if rollback && c.kw("TO") {
            let _ = c.kw("SAVEPOINT");
            return c.name();
        }
        if c.kw("AND") {
            let _ = c.kw("NO");
            return c.kw("CHAIN");
        }
        return true;
    }
    if c.kw("SAVEPOINT") {
        return c.name();
    }
    if c.kw("RELEASE") {
        let _ = c.kw("SAVEPOINT");
        return c.name();
    }
    if c.one_of(&["MOVE", "FETCH"]) {
        return pg_fetch(c);
    }
    if c.kw("CLOSE") || c.kw("LISTEN") {
        return c.name();
    }
    if c.kw("UNLISTEN") {
        return c.punct('*') || c.name();
    }
    if c.kw("DEALLOCATE") {
        let _ = c.kw("PREPARE");
        return c.name();
    }
    if c.kw("DISCARD") {
        return c.one_of(&["ALL", "PLANS", "SEQUENCES", "TEMP", "TEMPORARY"]);
    }
    if c.kw("SHOW") {
        return c.kws(&["TRANSACTION", "ISOLATION", "LEVEL"])
            || c.kws(&["TIME", "ZONE"])
            || c.kws(&["SESSION", "AUTHORIZATION"])
            || c.dotted_name();
    }
    if c.kw("RESET") {
        return c.kws(&["TIME", "ZONE"]) || c.kws(&["SESSION", "AUTHORIZATION"]) || c.dotted_name();
    }
    if c.kw("SET") {
        return pg_set(c);
    }
    false
}

/// `SET …` without expressions: transaction characteristics, time zone,
/// and `name {TO | =} value [, value …]`.
fn pg_set(c: &mut Cursor) -> bool {
    if c.kws(&["SESSION", "CHARACTERISTICS", "AS", "TRANSACTION"]) {
        return pg_modes(c);
    }
    let _ = c.one_of(&["SESSION", "LOCAL"]);
    if c.kws(&["TRANSACTION", "SNAPSHOT"]) {
        return c.string();
    }
    if c.kw("TRANSACTION") {
        return pg_modes(c);
    }
    if c.kws(&["TIME", "ZONE"]) {
        return c.value();
    }
    if !c.dotted_name() || !(c.kw("TO") || c.punct('=')) {
        return false;
    }
    loop {
        if !c.value() {
            return false;
        }
        if c.done() {
            return true;
        }
        if !c.punct(',') {
            return false;
        }
    }
}

/// PostgreSQL transaction modes, to the end of the statement:
/// `ISOLATION LEVEL …`, `READ ONLY|WRITE`, `[NOT] DEFERRABLE`, separated
/// by commas or spaces.
fn pg_modes(c: &mut Cursor) -> bool {
    let mut first = true;
    while !c.done() {
        if !first {
            let _ = c.punct(',');
        }
        first = false;
        let mode = if c.kws(&["ISOLATION", "LEVEL"]) {
            c.kw("SERIALIZABLE")
                || c.kws(&["REPEATABLE", "READ"])
                || c.kws(&["READ", "COMMITTED"])
                || c.kws(&["READ", "UNCOMMITTED"])
        } else if c.kw("READ") {
            c.one_of(&["ONLY", "WRITE"])
        } else {
            let _ = c.kw("NOT");
            c.kw("DEFERRABLE")
        };
        if !mode {
            return false;
        }
    }
    true
}

/// `FETCH`/`MOVE` `[direction] [FROM | IN] cursor`.
fn pg_fetch(c: &mut Cursor) -> bool {
    if c.one_of(&["ABSOLUTE", "RELATIVE"]) {
        if !c.number() {
            return false;
        }
    } else if c.one_of(&["FORWARD", "BACKWARD"]) {
        let _ = c.number() || c.kw("ALL");
    } else if !c.number() {
        // NEXT, PRIOR, FIRST, LAST, ALL — unless the word is the cursor's
        // own name (`FETCH next`), which the end of the statement tells.
        let direction = ["NEXT", "PRIOR", "FIRST", "LAST", "ALL"]
            .iter()
            .any(|d| c.peek(d));
        if direction && c.tokens.len() > c.i + 1 {
            c.i += 1;
        }
    }
    let _ = c.one_of(&["FROM", "IN"]);
    c.name()
}

fn mysql(c: &mut Cursor) -> bool {
    if c.kw("BEGIN") {
        let _ = c.kw("WORK");
        return true;
    }
    if c.kws(&["START", "TRANSACTION"]) {
        let mut first = true;
        while !c.done() {
            if !first && !c.punct(',') {
                return false;
            }
            first = false;
            let mode = c.kws(&["WITH", "CONSISTENT", "SNAPSHOT"])
                || c.kws(&["READ", "ONLY"])
                || c.kws(&["READ", "WRITE"]);
            if !mode {
                return false;
            }
        }
        return true;
    }
    if c.one_of(&["COMMIT", "ROLLBACK"]) {
        let _ = c.kw("WORK");
        if c.tokens[0].is_word("ROLLBACK") && c.kw("TO") {
            let _ = c.kw("SAVEPOINT");
            return c.name();
        }
        if c.kw("AND") {
            let _ = c.kw("NO");
            if !c.kw("CHAIN") {
                return false;
            }
        }
        let _ = c.kw("NO");
        let _ = c.kw("RELEASE");
        return true;
    }
    if c.kw("SAVEPOINT") {
        return c.name();
    }
    if c.kws(&["RELEASE", "SAVEPOINT"]) {
        return c.name();
    }
    if c.kw("XA") {
        return mysql_xa(c);
    }
    if c.kw("SET") {
        return mysql_set(c);
    }
    false
}

/// `XA` statements: their transaction id is literals only.
fn mysql_xa(c: &mut Cursor) -> bool {
    if c.kw("RECOVER") {
        return c.done() || c.kws(&["FORMAT"]) && c.punct('=') && c.string();
    }
    let verb = ["START", "BEGIN", "END", "PREPARE", "COMMIT", "ROLLBACK"]
        .iter()
        .find(|v| c.kw(v));
    let Some(verb) = verb else {
        return false;
    };
    // xid: gtrid [, bqual [, formatID]]
    if !(c.string() || c.number()) {
        return false;
    }
    for _ in 0..2 {
        if !c.punct(',') {
            break;
        }
        if !(c.string() || c.number()) {
            return false;
        }
    }
    match *verb {
        "START" | "BEGIN" => {
            let _ = c.one_of(&["JOIN", "RESUME"]);
        }
        "END" if c.kw("SUSPEND") => {
            let _ = c.kws(&["FOR", "MIGRATE"]);
        }
        "COMMIT" => {
            let _ = c.kws(&["ONE", "PHASE"]);
        }
        _ => {}
    }
    true
}

/// MySQL `SET` of variables to single values, `SET NAMES`, `SET
/// CHARACTER SET` and `SET [scope] TRANSACTION …`.
fn mysql_set(c: &mut Cursor) -> bool {
    if c.kw("NAMES") {
        if !c.value() {
            return false;
        }
        return c.done() || c.kw("COLLATE") && c.value();
    }
    if c.kws(&["CHARACTER", "SET"]) || c.kw("CHARSET") {
        return c.value();
    }
    let start = c.i;
    let _ = c.one_of(&["GLOBAL", "SESSION", "LOCAL"]);
    if c.kw("TRANSACTION") {
        let mut first = true;
        while !c.done() {
            if !first && !c.punct(',') {
                return false;
            }
            first = false;
            let mode = if c.kws(&["ISOLATION", "LEVEL"]) {
                c.kw("SERIALIZABLE")
                    || c.kws(&["REPEATABLE", "READ"])
                    || c.kws(&["READ", "COMMITTED"])
                    || c.kws(&["READ", "UNCOMMITTED"])
            } else {
                c.kws(&["READ", "ONLY"]) || c.kws(&["READ", "WRITE"])
            };
            if !mode {
                return false;
            }
        }
        return true;
    }
    c.i = start;
    loop {
        let _ = c.one_of(&["GLOBAL", "SESSION", "LOCAL", "PERSIST", "PERSIST_ONLY"]);
        let target = if c.punct('@') {
            if c.punct('@') {
                c.dotted_name()
            } else {
                c.name() || c.string()
            }
        } else {
            c.dotted_name()
        };
        if !target || !(c.punct('=') || c.punct(':') && c.punct('=')) || !c.value() {
            return false;
        }
        if c.done() {
            return true;
        }
        if !c.punct(',') {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer;
    use super::*;

    fn understood_sql(sql: &str, dialect: Dialect) -> bool {
        let lexed = lexer::lex(sql, dialect).unwrap_or_default();
        lexed.len() == 1 && understood(&lexed[0].tokens, &lexed[0].code, dialect)
    }

    #[test]
    fn driver_forms_are_understood() {
        for sql in [
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ WRITE NOT DEFERRABLE;",
            "begin transaction isolation level read committed, read only, deferrable",
            "START TRANSACTION READ ONLY",
            "COMMIT AND CHAIN",
            "ROLLBACK AND NO CHAIN",
            "ROLLBACK TO __asyncpg_savepoint_2__",
            "ROLLBACK TRANSACTION TO SAVEPOINT \"sp\"",
            "PREPARE TRANSACTION '1_Z3RyaWQ=_YnF1YWw='",
            "COMMIT PREPARED 'x'",
            "MOVE ABSOLUTE 0 FROM \"srv\"",
            "MOVE FORWARD 1 __asyncpg_portal_7__",
            "MOVE BACKWARD ALL IN c",
            "MOVE RELATIVE -2 FROM c",
            "FETCH ALL c",
            "FETCH next",
            "FETCH NEXT FROM next",
            "FETCH 10 FROM c",
            "CLOSE ALL",
            "UNLISTEN *",
            "DEALLOCATE PREPARE s1",
            "DISCARD TEMP",
            "SHOW TRANSACTION ISOLATION LEVEL",
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET TIME ZONE 'UTC'",
            "SET LOCAL statement_timeout = '5s'",
            "SET datestyle TO ISO, MDY",
            "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
        ] {
            assert!(understood_sql(sql, Dialect::Postgres), "{sql}");
        }
        for sql in [
            "START TRANSACTION WITH CONSISTENT SNAPSHOT",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ WRITE",
            "SET @`a` = 1",
            "SET @'a' = 'x', @@session.autocommit = OFF",
            "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'",
            "SET character_set_results = NULL",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY",
            "XA START 'a', 'b', 1",
            "XA END 'a' SUSPEND FOR MIGRATE",
            "XA COMMIT 'a' ONE PHASE",
            "XA RECOVER",
            "ROLLBACK WORK AND NO CHAIN NO RELEASE",
            "RELEASE SAVEPOINT `x`",
        ] {
            assert!(understood_sql(sql, Dialect::Mysql), "{sql}");
        }
    }

    #[test]
    fn anything_with_an_expression_or_a_stray_token_is_not() {
        for sql in [
            "MOVE FORWARD (SELECT 1) FROM c",
            "CLOSE ALL, pg_sleep(1)",
            "CLOSE c d",
            "FETCH ALL FROM c WHERE f() = 1",
            "PREPARE TRANSACTION 'x' || f()",
            "PREPARE TRANSACTION f('x')",
            "BEGIN DEFERRABLE (SELECT 1)",
            "BEGIN ISOLATION LEVEL SERIALIZABLE DROP",
            "COMMIT AND CHAIN now",
            "SET work_mem = f()",
            "SET work_mem = 1 + 1",
            "SET TIME ZONE INTERVAL '1' HOUR",
            "SHOW x y",
            r#"SET U&"r\006Fle" = 'postgres'"#,
            r#"CLOSE U&"c\0061""#,
            "UNLISTEN * x",
            "DISCARD EVERYTHING",
            "SELECT 1",
        ] {
            assert!(!understood_sql(sql, Dialect::Postgres), "{sql}");
        }
        for sql in [
            "SET @`a` = load_file('/etc/passwd')",
            "SET @`a` = (SELECT 1)",
            "SET @a = 1 + f()",
            "SET @a = b c",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, f()",
            "XA START f('a')",
            "XA START 'a' 'b'",
            "XA RECOVER x",
            "SET NAMES utf8mb4 COLLATE",
            "COMMIT AND RELEASE NOW",
        ] {
            assert!(!understood_sql(sql, Dialect::Mysql), "{sql}");
        }
    }
}
