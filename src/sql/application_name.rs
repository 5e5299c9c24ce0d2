//! Airlock's claim on a PostgreSQL session's `application_name`.
//!
//! Every upstream session runs with `application_name` =
//! `airlock:<identity>:<session>:<the client's own name>`, so that
//! `pg_stat_activity` and the server's log (`%a` in `log_line_prefix`)
//! say which agent ran what. The agent may change the part after the
//! prefix, never the prefix: this module refuses, before they run, the
//! statements that would set it to anything else —
//!
//! * `SET [SESSION | LOCAL] application_name {TO | =} …` unless the value is
//!   one string literal that keeps the prefix (also as the SET clause of
//!   `ALTER ROLE`, `ALTER DATABASE`, `ALTER SYSTEM`, `CREATE FUNCTION`);
//!   `SET application_name FROM CURRENT`;
//! * `set_config('application_name', …)` (a `set_config` whose setting name
//!   is not a literal is already refused by [`super::encoding`]);
//! * a string literal that both names `application_name` and says `SET`,
//!   `RESET` or `set_config`: the body of a `DO` block or a function that
//!   would run it as dynamic SQL.
//!
//! `RESET application_name`, `RESET ALL` and `DISCARD ALL` are allowed
//! (asyncpg's pool runs `RESET ALL` on every release): they return to the
//! connection's default, [`identity_default`] — `airlock:<identity>`, set
//! at login — so the server still names the agent, though no longer the
//! session.
//!
//! What a statement assembles at run time from pieces (`'applic' ||
//! 'ation_name'`) is not visible here; the relay is the second wall: a
//! value the server reports without the prefix ends the session (see
//! `proxy::pg::relay`). A change that is undone before the server reports
//! it (inside one function call) can show in `pg_stat_activity` meanwhile.

use super::lexer::{self, Kind, LexedStatement, Token};
use super::Dialect;

/// The longest `application_name` PostgreSQL keeps (NAMEDATALEN - 1);
/// longer values are cut.
pub const MAX_LEN: usize = 63;

/// The value's prefix as the server will report it: bytes outside
/// printable ASCII become `?` (as the server does) and the whole is cut to
/// what the server keeps.
pub fn prefix(identity: &str, session: &str) -> String {
    let mut p = sanitize(&format!("airlock:{identity}:{session}"));
    p.truncate(MAX_LEN);
    p
}

/// The connection's own `application_name` (its startup value, which
/// `RESET` returns to): `airlock:<identity>`, as the server keeps it.
pub fn identity_default(identity: &str) -> String {
    let mut d = sanitize(&format!("airlock:{identity}"));
    d.truncate(MAX_LEN);
    d
}

/// The full value for a session: the prefix, then `:` and the client's own
/// name when it gave one, cut to [`MAX_LEN`].
pub fn value(prefix: &str, client: Option<&str>) -> String {
    let mut v = match client.filter(|c| !c.is_empty()) {
        Some(c) => format!("{prefix}:{}", sanitize(c)),
        None => prefix.to_string(),
    };
    v.truncate(MAX_LEN);
    v
}

/// What PostgreSQL keeps of an `application_name`: printable ASCII, other
/// characters as `?`. Also makes the value safe inside `'…'`: quotes and
/// backslashes become `?` too.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\'' | '\\' => '?',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// Why `sql` would take the session's `application_name` away from
/// `prefix`, if it would. `prefix` is asked for only when `sql` could
/// concern the setting: most statements cost one scan and no allocation.
pub fn change(sql: &[u8], prefix: impl FnOnce() -> String) -> Option<String> {
    // Fast path: every statement refused here names one of these (a `U&`
    // identifier could spell the setting's name).
    const NEEDLES: [&[u8]; 2] = [b"application_name", b"u&"];
    if !NEEDLES.iter().any(|n| super::contains_ignore_case(sql, n)) {
        return None;
    }
    let text = String::from_utf8_lossy(sql);
    let statements = match lexer::lex(&text, Dialect::Postgres) {
        Ok(s) => s,
        Err(_) if super::contains_ignore_case(sql, b"application_name") => {
            return Some(refusal("a query it cannot split into statements names it"));
        }
        Err(_) => return None,
    };
    let prefix = prefix();
    statements.iter().find_map(|s| check(s, &prefix))
}

/// `SET [SESSION | LOCAL] application_name {TO | =} '<name>'`, alone in
/// `sql`, with a name that does not keep the prefix — what drivers send on
/// their own (pgjdbc does on every connection): the statement Airlock
/// forwards instead, with the name behind the prefix. `None` for anything
/// else, which [`change`] then judges.
pub fn rewrite(sql: &[u8], prefix: impl FnOnce() -> String) -> Option<String> {
    if !super::contains_ignore_case(sql, b"application_name") {
        return None;
    }
    let prefix = &prefix();
    let text = std::str::from_utf8(sql).ok()?;
    let statements = lexer::lex(text, Dialect::Postgres).ok()?;
    let [statement] = statements.as_slice() else {
        return None;
    };
    let t = &statement.tokens;
    if !t.first()?.is_word("SET") {
        return None;
    }
    let mut i = 1;
    let mut scope = "SESSION";
    while let Some(word) = t
        .get(i)
        .filter(|x| x.is_word("SESSION") || x.is_word("LOCAL"))
    {
        if word.is_word("LOCAL") {
            scope = "LOCAL";
        }
        i += 1;
    }
    let assigns = t
        .get(i + 1)
        .is_some_and(|x| x.is_word("TO") || x.is_punct('='));
    let literal = t.get(i + 2).filter(|v| v.kind == Kind::String)?;
    let ends = t.get(i + 3).is_none_or(|x| x.is_punct(';')) && t.get(i + 4).is_none();
    if !(names_setting(t.get(i)?) && assigns && ends) || literal_keeps(literal, prefix) {
        return None;
    }
    Some(format!(
        "SET {scope} application_name = '{}'",
        value(prefix, Some(&literal.text))
    ))
}

fn refusal(what: &str) -> String {
    format!(
        "Airlock names this session in the database's logs by its application_name \
         (airlock:<identity>:<session>:<your name>); only the part after the prefix may change: {what}"
    )
}

fn check(statement: &LexedStatement, prefix: &str) -> Option<String> {
    let t = &statement.tokens;
    let word = |i: usize, kw: &str| t.get(i).is_some_and(|x| x.is_word(kw));
    let is_name = |i: usize| t.get(i).is_some_and(names_setting);
    for i in 0..t.len() {
        if t[i].is_word("SET") {
            let mut j = i + 1;
            while word(j, "SESSION") || word(j, "LOCAL") {
                j += 1;
            }
            if is_name(j) && !keeps_prefix(t, j + 1, prefix) {
                return Some(refusal(
                    "SET application_name must keep the prefix, as one string literal",
                ));
            }
        }
        // `set_config(` in any schema or spelling.
        if t[i].kind != Kind::String
            && names(&t[i], "set_config")
            && t.get(i + 1).is_some_and(|x| x.is_punct('('))
            && t.get(i + 2).is_some_and(|x| {
                x.kind == Kind::String && x.text.eq_ignore_ascii_case("application_name")
            })
            && !(t.get(i + 3).is_some_and(|x| x.is_punct(','))
                && t.get(i + 4).is_some_and(|v| literal_keeps(v, prefix)))
        {
            return Some(refusal(
                "set_config('application_name', …) must start its value with the prefix, as a string literal",
            ));
        }
        if t[i].kind == Kind::String
            && super::contains_ignore_case(t[i].text.as_bytes(), b"application_name")
        {
            let body = t[i].text.as_bytes();
            if [b"set".as_slice(), b"set_config"]
                .iter()
                .any(|w| super::contains_ignore_case(body, w))
            {
                return Some(refusal(
                    "a string that would set application_name when run as SQL",
                ));
            }
        }
    }
    None
}

/// `{TO | =} '<prefix>…'` and nothing after it in the statement.
fn keeps_prefix(t: &[Token], i: usize, prefix: &str) -> bool {
    let assigns = t.get(i).is_some_and(|x| x.is_word("TO") || x.is_punct('='));
    assigns
        && t.get(i + 1).is_some_and(|v| literal_keeps(v, prefix))
        && t.get(i + 2).is_none_or(|x| x.is_punct(';'))
}

/// A string literal that is the prefix or starts with it and `:`. (What
/// follows a literal in an expression — `'<prefix>:' || x` — can only
/// add to it, or make it NULL, which the relay catches as a reset.)
fn literal_keeps(v: &Token, prefix: &str) -> bool {
    v.kind == Kind::String && (v.text == prefix || v.text.starts_with(&format!("{prefix}:")))
}

fn names_setting(t: &Token) -> bool {
    names(t, "application_name")
}

/// Whether the token is the identifier `name` as the server resolves it
/// (setting and function names are compared without regard to case).
fn names(t: &Token, name: &str) -> bool {
    matches!(t.kind, Kind::Word | Kind::QuotedIdent) && t.text.eq_ignore_ascii_case(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "airlock:agent:s-1-7";

    fn refused(sql: &str) -> bool {
        change(sql.as_bytes(), || P.to_string()).is_some()
    }

    #[test]
    fn a_plain_set_is_put_behind_the_prefix() {
        let r = |sql: &str| rewrite(sql.as_bytes(), || P.to_string());
        assert_eq!(
            r("SET application_name = 'PostgreSQL JDBC Driver'").as_deref(),
            Some("SET SESSION application_name = 'airlock:agent:s-1-7:PostgreSQL JDBC Driver'")
        );
        assert_eq!(
            r("set local Application_Name to 'x';").as_deref(),
            Some("SET LOCAL application_name = 'airlock:agent:s-1-7:x'")
        );
        assert_eq!(
            r("SET application_name = 'it''s'").as_deref(),
            Some("SET SESSION application_name = 'airlock:agent:s-1-7:it?s'")
        );
        assert_eq!(
            r("SET application_name = ''").as_deref(),
            Some("SET SESSION application_name = 'airlock:agent:s-1-7'")
        );
        for other in [
            "SET application_name = 'airlock:agent:s-1-7:x'",
            "SET application_name = 'a' || 'b'",
            "SET application_name = 'a'; SELECT 1",
            "SET application_name FROM CURRENT",
            "SELECT set_config('application_name', 'x', false)",
            "SET search_path = 'x'",
        ] {
            assert_eq!(r(other), None, "{other}");
        }
        // What is rewritten passes the guard.
        let rewritten = r("SET application_name = 'x'").unwrap();
        assert!(!refused(&rewritten));
    }

    #[test]
    fn every_spelling_that_drops_the_prefix_is_refused() {
        for sql in [
            "SET application_name = 'x'",
            "set application_name to 'x'",
            "SET SESSION application_name = 'x'",
            "SET LOCAL application_name = 'x'",
            "SET \"application_name\" = 'x'",
            "SET \"APPLICATION_NAME\" = 'x'",
            "SET U&\"applic\\0061tion_name\" = 'x'",
            "SET application_name = DEFAULT",
            "SET application_name FROM CURRENT",
            "SET application_name = 'airlock:agent:s-1-70'",
            "SET application_name = 'airlock:agent:s-1-7', 'x'",
            "SET application_name = E'\\x61irlock:agent:s-1-7'",
            "SELECT set_config('application_name', 'x', false)",
            "SELECT pg_catalog.set_config('APPLICATION_NAME', 'x', true)",
            "SELECT \"set_config\"('application_name', 'x', false)",
            "SELECT set_config('application_name', 'airlock:agent:s-1-70', false)",
            "SELECT set_config('application_name', x || 'airlock:agent:s-1-7:', false)",
            "SELECT 1; SET application_name = 'x'",
            "ALTER ROLE agent SET application_name = 'x'",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET application_name = 'x' AS 'SELECT 1'",
            "DO $$ BEGIN EXECUTE 'SET application_name = ''x'''; END $$",
            "DO $$ BEGIN PERFORM set_config('application_name', 'x', false); END $$",
            "SET application_name = 'x' /* unterminated",
        ] {
            assert!(refused(sql), "{sql}");
        }
    }

    #[test]
    fn keeping_the_prefix_and_reading_the_setting_are_allowed() {
        for sql in [
            "SET application_name = 'airlock:agent:s-1-7:my tool'",
            "SET application_name TO 'airlock:agent:s-1-7'",
            "SET LOCAL application_name = 'airlock:agent:s-1-7:x';",
            "SHOW application_name",
            "SELECT set_config('application_name', 'airlock:agent:s-1-7:' || email, false) FROM t",
            "SELECT application_name FROM pg_stat_activity",
            "SELECT current_setting('application_name')",
            "RESET search_path",
            "RESET application_name",
            "reset ALL",
            "DISCARD ALL",
            "DISCARD PLANS",
            "SET search_path = public",
            "SELECT 'application_name'",
            "SELECT 1",
        ] {
            assert!(!refused(sql), "{sql}");
        }
    }

    #[test]
    fn the_prefix_is_what_the_server_keeps() {
        assert_eq!(prefix("agent", "s-1-7"), "airlock:agent:s-1-7");
        assert_eq!(prefix("agënt'", "s"), "airlock:ag?nt?:s");
        assert_eq!(value("airlock:a:s", Some("psql")), "airlock:a:s:psql");
        assert_eq!(value("airlock:a:s", Some("")), "airlock:a:s");
        assert_eq!(value("airlock:a:s", None), "airlock:a:s");
        assert_eq!(value("airlock:a:s", Some("it's\\")), "airlock:a:s:it?s?");
        let long = value(&prefix("agent", "s-1"), Some(&"x".repeat(200)));
        assert_eq!(long.len(), MAX_LEN);
        assert!(long.starts_with("airlock:agent:s-1:x"));
        assert_eq!(prefix(&"i".repeat(100), "s").len(), MAX_LEN);
        assert_eq!(identity_default("agënt"), "airlock:ag?nt");
    }
}
