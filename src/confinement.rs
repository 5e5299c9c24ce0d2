//! What the database itself enforces for an identity, so that one miss of
//! the classifier is not total: the upstream role a session runs under
//! (`[[identity]] upstream_role`), a read-only session
//! (`[[identity]] read_only`) and the statement timeout
//! (`[limits] statement_timeout_ms`, see [`crate::limits`]).
//!
//! This module owns three things and nothing else:
//!
//! * the names: [`RoleName`] validates an `upstream_role` and quotes it for
//!   each dialect;
//! * the set-up Airlock runs on an upstream connection before a confined
//!   session may use it ([`Confinement::postgres_setup`],
//!   [`Confinement::mysql_setup`]);
//! * the statements a confined agent may never send, because they would
//!   undo that set-up ([`Confinement::refusal`]). The gate asks it for
//!   every statement and refuses (not holds) what it names: an approver
//!   cannot tell from the text whether a session that switched its role off
//!   is still the one the identity was meant to have.
//!
//! It never opens connections; the proxies run the set-up.

use crate::policy::{Action, Decision};
use crate::sql::lexer::{self, Kind, Token};
use crate::sql::{Classification, Dialect, Statement, StatementClass};
use std::fmt;

/// Longest role name accepted: PostgreSQL's identifier limit (NAMEDATALEN
/// − 1); MariaDB's role names are shorter still in older versions, and the
/// server reports a too-long one at set-up.
const MAX_ROLE_NAME: usize = 63;

/// Words that are not a role when written after `SET ROLE` (PostgreSQL
/// `NONE`, the SQL-standard pseudo-roles, MySQL's `ALL`/`DEFAULT`): a role
/// spelled like one of them would set up something else than configured.
const RESERVED_ROLE_NAMES: &[&str] = &[
    "none",
    "public",
    "current_user",
    "current_role",
    "session_user",
    "user",
    "all",
    "default",
];

/// The rule name a refusal of this module carries (in the agent's error
/// and the audit log).
pub const CONFINEMENT_RULE: &str = "identity confinement";

/// A validated upstream role name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfinementError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ROLE_NAME} bytes")]
    TooLong,
    #[error("must not contain control characters")]
    Control,
    #[error("`{0}` is a reserved word, not a role")]
    Reserved(String),
}

impl RoleName {
    /// Checks `name` as written in the config: the exact name of the
    /// server's role (case-sensitive; quoted when Airlock sets it).
    pub fn parse(name: &str) -> Result<Self, ConfinementError> {
        if name.is_empty() {
            return Err(ConfinementError::Empty);
        }
        if name.len() > MAX_ROLE_NAME {
            return Err(ConfinementError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(ConfinementError::Control);
        }
        if RESERVED_ROLE_NAMES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
        {
            return Err(ConfinementError::Reserved(name.to_string()));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `"name"` with embedded double quotes doubled: PostgreSQL reads it as
    /// exactly this role, never as a keyword.
    pub fn postgres_quoted(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }

    /// `` `name` `` with embedded backticks doubled (MySQL/MariaDB).
    pub fn mysql_quoted(&self) -> String {
        format!("`{}`", self.0.replace('`', "``"))
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The limits the server enforces for one identity's sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confinement {
    /// The role every session of the identity runs under.
    pub upstream_role: Option<RoleName>,
    /// Every transaction of the identity's sessions is read-only.
    pub read_only: bool,
    /// The longest any statement of the identity may run on the server.
    pub statement_timeout: Option<std::time::Duration>,
}

/// Settings a confined session must not change or reset (PostgreSQL GUC
/// names and MySQL system variables, lower case).
const ROLE_SETTINGS: &[&str] = &["role", "session_authorization"];
const READ_ONLY_SETTINGS: &[&str] = &[
    "default_transaction_read_only",
    "transaction_read_only",
    "tx_read_only",
];
/// The server-side statement timeouts: PostgreSQL's, MariaDB's
/// (`max_statement_time`, also reachable as `SET STATEMENT … FOR`) and
/// MySQL's (`max_execution_time`, and its `MAX_EXECUTION_TIME` hint).
const TIMEOUT_SETTINGS: &[&str] = &[
    "statement_timeout",
    "max_statement_time",
    "max_execution_time",
];

/// Statement leads whose privilege class is about catalog objects (who may
/// do what), which the server judges under the session's role; any other
/// privilege statement concerns who the session *is*.
const CATALOG_PRIVILEGE_LEADS: &[&str] = &[
    "GRANT", "REVOKE", "CREATE", "ALTER", "DROP", "RENAME", "REASSIGN", "SECURITY", "COMMENT",
];

impl Confinement {
    /// Whether the identity has any limit the server enforces.
    pub fn is_confined(&self) -> bool {
        self.upstream_role.is_some() || self.read_only || self.statement_timeout.is_some()
    }

    /// The query (one simple-protocol round trip) that confines a
    /// PostgreSQL connection, or `None` for an unconfined identity.
    ///
    /// `SET SESSION ROLE` survives `RESET ALL` (which does not reset the
    /// role); `DISCARD ALL` does reset it, so the pool runs this after every
    /// reset, on every checkout. `SET SESSION CHARACTERISTICS AS
    /// TRANSACTION READ ONLY` sets `default_transaction_read_only`, which
    /// `RESET ALL` and `DISCARD ALL` would reset: the agent may send
    /// neither (see [`Confinement::refusal`]).
    pub fn postgres_setup(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(role) = &self.upstream_role {
            parts.push(format!("SET SESSION ROLE {}", role.postgres_quoted()));
        }
        if self.read_only {
            parts.push("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY".to_string());
        }
        // Set for the session (DISCARD ALL on release resets it); the
        // agent may not change or reset it (see `refusal`).
        if let Some(t) = self.statement_timeout {
            parts.push(format!(
                "SET SESSION statement_timeout = {}",
                t.as_millis().max(1)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The statements that confine a MySQL/MariaDB connection, in order.
    ///
    /// MariaDB's `SET ROLE` *adds* the role's privileges to the login's own:
    /// it confines only a service login that has almost none itself (see
    /// the README's least-privilege account).
    pub fn mysql_setup(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(role) = &self.upstream_role {
            out.push(format!("SET ROLE {}", role.mysql_quoted()));
        }
        if self.read_only {
            out.push("SET SESSION TRANSACTION READ ONLY".to_string());
        }
        out
    }

    /// The statement that sets the identity's statement timeout on a
    /// MySQL/MariaDB connection, or `None` without one. MariaDB's
    /// `max_statement_time` (seconds) applies to every statement; MySQL's
    /// `max_execution_time` (milliseconds) only to `SELECT`s.
    pub fn mysql_timeout_setup(&self, mariadb: bool) -> Option<String> {
        let t = self.statement_timeout?;
        Some(if mariadb {
            format!(
                "SET SESSION max_statement_time = {:.3}",
                t.as_secs_f64().max(0.001)
            )
        } else {
            format!("SET SESSION max_execution_time = {}", t.as_millis().max(1))
        })
    }

    /// Why `classification` may not run in a session of `identity` confined
    /// like this, or `None` when the confinement has nothing against it.
    ///
    /// Refused, for any confined identity: statements the classifier cannot
    /// see into (`unknown`: `DO`, `CALL`, dynamic SQL — they could switch
    /// the limits off); `set_config()` of a setting below, or of one not
    /// named by a plain literal; writes to `pg_settings` (its update rule
    /// calls `set_config`); `DISCARD ALL`; quoted identifiers with Unicode
    /// escapes where a setting or function is named. With an upstream role:
    /// `SET`/`RESET` of the role or session authorization, `RESET ALL`, and
    /// every other statement the classifier marks `privilege` that is not a
    /// catalog change (`GRANT`, `CREATE ROLE`…). Read-only: `SET`/`RESET`
    /// of the read-only settings, `RESET ALL`, and `READ WRITE` in `SET`,
    /// `BEGIN` or `START TRANSACTION`. A `PREPARE` is judged by the
    /// statement it prepares.
    pub fn refusal(
        &self,
        identity: &str,
        classification: &Classification,
        dialect: Dialect,
    ) -> Option<String> {
        if !self.is_confined() {
            return None;
        }
        classification
            .statements
            .iter()
            .find_map(|s| self.statement_problem(s, dialect, 0))
            .map(|problem| self.explain(identity, &problem))
    }

    /// The policy's `decision`, or a denial when [`Confinement::refusal`]
    /// names a problem: a statement that would undo the confinement is
    /// refused whatever the policy says (an approval would not make it
    /// safe). The gate calls this for every query.
    pub fn overrule(
        &self,
        identity: &str,
        sql: &[u8],
        classification: &Classification,
        dialect: Dialect,
        decision: Decision,
    ) -> Decision {
        let refusal = self
            .hint_refusal(identity, sql, dialect)
            .or_else(|| self.refusal(identity, classification, dialect));
        match refusal {
            None => decision,
            Some(reason) => Decision {
                action: Action::Deny { reason },
                rule: CONFINEMENT_RULE.to_string(),
                ..decision
            },
        }
    }

    /// MySQL's `MAX_EXECUTION_TIME(…)` optimizer hint sets a statement's
    /// own timeout from inside a comment, which the classified code no
    /// longer shows: with a statement timeout, any query that names it
    /// anywhere is refused.
    pub fn hint_refusal(&self, identity: &str, sql: &[u8], dialect: Dialect) -> Option<String> {
        let applies = self.statement_timeout.is_some() && dialect == Dialect::Mysql;
        (applies && crate::sql::contains_ignore_case(sql, b"max_execution_time")).then(|| {
            self.explain(
                identity,
                "naming max_execution_time (a variable or optimizer hint) is not allowed (Airlock sets the timeout)",
            )
        })
    }

    fn explain(&self, identity: &str, problem: &str) -> String {
        let mut limits = Vec::new();
        if let Some(role) = &self.upstream_role {
            limits.push(format!("runs as upstream role \"{role}\""));
        }
        if self.read_only {
            limits.push("is read-only".to_string());
        }
        if let Some(t) = self.statement_timeout {
            limits.push(format!("has a statement timeout of {} ms", t.as_millis()));
        }
        format!(
            "identity \"{identity}\" {}, and {problem}",
            limits.join(", ")
        )
    }

    fn statement_problem(&self, s: &Statement, dialect: Dialect, depth: usize) -> Option<String> {
        if s.classes.contains(StatementClass::Unknown) {
            return Some(
                "Airlock cannot see what this statement runs, so it cannot tell whether it switches that off"
                    .into(),
            );
        }
        self.text_problem(&s.text, dialect, depth).or_else(|| {
            let lead = s
                .text
                .split(|c: char| !c.is_ascii_alphabetic())
                .find(|w| !w.is_empty())
                .unwrap_or("")
                .to_ascii_uppercase();
            (self.upstream_role.is_some()
                && s.classes.contains(StatementClass::Privilege)
                && !CATALOG_PRIVILEGE_LEADS.contains(&lead.as_str()))
            .then(|| "this statement changes who the session is".into())
        })
    }

    /// The token-level checks, on a statement's code as the server reads it.
    fn text_problem(&self, code: &str, dialect: Dialect, depth: usize) -> Option<String> {
        // Text Airlock cannot tokenise is not given the benefit of the doubt.
        let Ok(statements) = lexer::lex(code, dialect) else {
            return Some("Airlock cannot read this statement's tokens".into());
        };
        for st in &statements {
            if let Some(p) = self.tokens_problem(&st.tokens, &st.code, dialect, depth) {
                return Some(p);
            }
        }
        None
    }

    fn tokens_problem(
        &self,
        tokens: &[Token],
        code: &str,
        dialect: Dialect,
        depth: usize,
    ) -> Option<String> {
        let role = self.upstream_role.is_some();
        let word = |i: usize| {
            tokens
                .get(i)
                .filter(|t| t.kind == Kind::Word)
                .map(|t| t.text.to_ascii_uppercase())
                .unwrap_or_default()
        };
        // An identifier as the server names it: a word or quoted name, lower case.
        let ident = |t: &Token| {
            matches!(t.kind, Kind::Word | Kind::QuotedIdent).then(|| t.text.to_ascii_lowercase())
        };
        let unicode_escaped = |t: &Token| {
            t.kind == Kind::QuotedIdent
                && code
                    .get(t.start..)
                    .is_some_and(|c| c.starts_with("U&") || c.starts_with("u&"))
        };
        let first = tokens.iter().position(|t| !t.is_punct('(')).unwrap_or(0);
        let lead = word(first);
        let names = |list: &[&str]| {
            tokens
                .iter()
                .filter_map(ident)
                .any(|n| list.contains(&n.as_str()))
        };

        // Function calls anywhere in the statement.
        for (i, t) in tokens.iter().enumerate() {
            if !tokens.get(i + 1).is_some_and(|n| n.is_punct('(')) {
                continue;
            }
            if unicode_escaped(t) {
                return Some(
                    "a function named with Unicode escapes could be set_config(), which is not allowed"
                        .into(),
                );
            }
            if ident(t).as_deref() == Some("set_config") {
                // Only a plain '…' literal naming another setting, followed
                // by the comma, is known not to touch the limits.
                let setting = tokens
                    .get(i + 2)
                    .filter(|a| a.kind == Kind::String)
                    .filter(|a| code.get(a.start..).is_some_and(|c| c.starts_with('\'')))
                    .filter(|a| !a.text.contains('\\'))
                    .filter(|_| tokens.get(i + 3).is_some_and(|c| c.is_punct(',')))
                    .map(|a| a.text.trim().to_ascii_lowercase());
                match setting {
                    None => {
                        return Some(
                            "set_config() of a setting not named by a plain literal is not allowed"
                                .into(),
                        )
                    }
                    Some(s)
                        if ROLE_SETTINGS.contains(&s.as_str())
                            || READ_ONLY_SETTINGS.contains(&s.as_str())
                            || TIMEOUT_SETTINGS.contains(&s.as_str()) =>
                    {
                        return Some(format!("set_config('{s}', …) is not allowed"))
                    }
                    Some(_) => {}
                }
            }
        }
        // The timeout as a function's or role's setting (`CREATE FUNCTION …
        // SET statement_timeout = 0`, `ALTER ROLE … SET …`) would lift it
        // inside every call.
        if self.statement_timeout.is_some()
            && names(TIMEOUT_SETTINGS)
            && tokens
                .iter()
                .any(|t| t.is_word("SET") || t.is_word("RESET"))
        {
            return Some(format!(
                "{lead} of the statement timeout is not allowed (Airlock sets it)"
            ));
        }
        // pg_settings' update rule calls set_config() for each row it updates.
        if lead != "SELECT"
            && lead != "TABLE"
            && tokens.iter().filter_map(ident).any(|n| n == "pg_settings")
            && tokens.iter().any(|t| {
                ["UPDATE", "INSERT", "DELETE", "MERGE"]
                    .iter()
                    .any(|k| t.is_word(k))
            })
        {
            return Some("changing pg_settings is not allowed".into());
        }

        match lead.as_str() {
            "SET" | "RESET" => {
                if tokens.iter().any(unicode_escaped) {
                    return Some(
                        "a setting named with Unicode escapes is not allowed (it could be one of the limits)"
                            .into(),
                    );
                }
                if lead == "RESET" && word(first + 1) == "ALL" {
                    return Some("RESET ALL is not allowed (it would reset the limits)".into());
                }
                if role
                    && (names(ROLE_SETTINGS) || tokens.iter().any(|t| t.is_word("AUTHORIZATION")))
                {
                    return Some(format!(
                        "{lead} of the role or session authorization is not allowed"
                    ));
                }
                if self.read_only {
                    if names(READ_ONLY_SETTINGS) {
                        return Some(format!(
                            "{lead} of a transaction read-only setting is not allowed"
                        ));
                    }
                    if tokens.iter().any(|t| t.is_word("WRITE")) {
                        return Some("READ WRITE is not allowed".into());
                    }
                }
            }
            "BEGIN" | "START" if self.read_only && tokens.iter().any(|t| t.is_word("WRITE")) => {
                return Some("READ WRITE transactions are not allowed".into());
            }
            "DISCARD" if tokens.iter().any(|t| t.is_word("ALL")) => {
                return Some(
                    "DISCARD ALL is not allowed (it would reset the limits); DISCARD PLANS, SEQUENCES and TEMP are"
                        .into(),
                );
            }
            // PREPARE name FROM '…' (MySQL) / PREPARE name [(types)] AS … :
            // judged by what it prepares.
            "PREPARE" if depth < 4 => {
                let body = tokens
                    .iter()
                    .position(|t| t.is_word("FROM") || t.is_word("AS"))
                    .and_then(|i| tokens.get(i + 1));
                match body {
                    Some(t) if t.kind == Kind::String => {
                        if code.get(t.start..).is_some_and(|c| c.contains('\\')) {
                            return Some(
                                "a prepared text with backslash escapes is not allowed".into(),
                            );
                        }
                        return self.text_problem(&t.text, dialect, depth + 1);
                    }
                    Some(t) => {
                        let inner = code.get(t.start..).unwrap_or("");
                        return self.text_problem(inner, dialect, depth + 1);
                    }
                    None => {}
                }
            }
            "PREPARE" => return Some("nested PREPARE is not allowed".into()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::classify as classify_query;

    fn role_only() -> Confinement {
        Confinement {
            upstream_role: Some(RoleName::parse("agent_ro").unwrap()),
            read_only: false,
            statement_timeout: None,
        }
    }

    fn read_only() -> Confinement {
        Confinement {
            upstream_role: None,
            read_only: true,
            statement_timeout: None,
        }
    }

    fn timed() -> Confinement {
        Confinement {
            statement_timeout: Some(std::time::Duration::from_millis(1500)),
            ..Default::default()
        }
    }

    #[test]
    fn the_statement_timeout_is_set_up_and_cannot_be_changed() {
        let c = timed();
        assert_eq!(
            c.postgres_setup().unwrap(),
            "SET SESSION statement_timeout = 1500"
        );
        assert!(c.mysql_setup().is_empty());
        assert_eq!(
            c.mysql_timeout_setup(true).unwrap(),
            "SET SESSION max_statement_time = 1.500"
        );
        assert_eq!(
            c.mysql_timeout_setup(false).unwrap(),
            "SET SESSION max_execution_time = 1500"
        );
        assert_eq!(Confinement::default().mysql_timeout_setup(true), None);
        let pg = Dialect::Postgres;
        for sql in [
            "SET statement_timeout = 0",
            "SET statement_timeout TO DEFAULT",
            "set Statement_Timeout = '1h'",
            "SET SESSION statement_timeout = 0",
            "SET LOCAL statement_timeout = 0",
            "SET \"statement_timeout\" = 0",
            "RESET statement_timeout",
            "RESET ALL",
            "DISCARD ALL",
            "SELECT set_config('statement_timeout', '0', false)",
            "SELECT set_config('STATEMENT_TIMEOUT', '0', true)",
            "SELECT set_config(name, '0', false) FROM pg_settings",
            "UPDATE pg_settings SET setting = '0' WHERE name = 'statement_timeout'",
            "ALTER ROLE CURRENT_USER SET statement_timeout = 0",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET statement_timeout = 0 AS 'select 1'",
            "ALTER FUNCTION f() SET statement_timeout = 0",
            "DO $$ BEGIN PERFORM set_config('statement_timeout','0',false); END $$",
            "PREPARE p AS SELECT set_config('statement_timeout','0',false)",
        ] {
            assert!(refused(&c, sql, pg), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "SET search_path = public",
            "SHOW statement_timeout",
            "SELECT current_setting('statement_timeout')",
        ] {
            assert!(!refused(&c, sql, pg), "{sql}");
        }
        let my = Dialect::Mysql;
        for sql in [
            "SET max_statement_time = 0",
            "SET SESSION max_statement_time = 0",
            "SET @@max_statement_time = 0",
            "SET @@session.max_statement_time = 0",
            "SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(10)",
            "SET max_execution_time = 0",
            "SELECT /*+ MAX_EXECUTION_TIME(0) */ SLEEP(10)",
            "/*!50000 SET max_statement_time = 0 */",
            "PREPARE s FROM 'SET max_statement_time = 0'",
        ] {
            assert!(refused(&c, sql, my), "{sql}");
        }
        assert!(!refused(&c, "SELECT @@max_statement_time", my));
        let message = c
            .refusal("bot", &classify_query("SET statement_timeout = 0", pg), pg)
            .unwrap();
        assert!(
            message.contains("statement timeout of 1500 ms"),
            "{message}"
        );
    }

    fn refused(c: &Confinement, sql: &str, d: Dialect) -> bool {
        c.hint_refusal("a", sql.as_bytes(), d).is_some()
            || c.refusal("a", &classify_query(sql, d), d).is_some()
    }

    #[test]
    fn role_names_are_validated_and_quoted() {
        assert_eq!(RoleName::parse(""), Err(ConfinementError::Empty));
        assert_eq!(
            RoleName::parse(&"x".repeat(64)),
            Err(ConfinementError::TooLong)
        );
        assert_eq!(RoleName::parse("a\nb"), Err(ConfinementError::Control));
        assert_eq!(RoleName::parse("a\0b"), Err(ConfinementError::Control));
        assert!(matches!(
            RoleName::parse("NONE"),
            Err(ConfinementError::Reserved(_))
        ));
        assert!(matches!(
            RoleName::parse("Public"),
            Err(ConfinementError::Reserved(_))
        ));
        let r = RoleName::parse("we\"ird`Role").unwrap();
        assert_eq!(r.postgres_quoted(), "\"we\"\"ird`Role\"");
        assert_eq!(r.mysql_quoted(), "`we\"ird``Role`");
    }

    #[test]
    fn setup_statements() {
        assert_eq!(Confinement::default().postgres_setup(), None);
        assert!(Confinement::default().mysql_setup().is_empty());
        let both = Confinement {
            upstream_role: Some(RoleName::parse("r").unwrap()),
            read_only: true,
            statement_timeout: None,
        };
        assert_eq!(
            both.postgres_setup().unwrap(),
            "SET SESSION ROLE \"r\"; SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
        );
        assert_eq!(
            both.mysql_setup(),
            vec!["SET ROLE `r`", "SET SESSION TRANSACTION READ ONLY"]
        );
    }

    #[test]
    fn unconfined_identities_are_never_refused_here() {
        let c = Confinement::default();
        for sql in [
            "RESET ROLE",
            "SET ROLE postgres",
            "DISCARD ALL",
            "DO $$ BEGIN END $$",
        ] {
            assert!(!refused(&c, sql, Dialect::Postgres), "{sql}");
        }
    }

    #[test]
    fn role_switches_are_refused() {
        let c = role_only();
        let p = Dialect::Postgres;
        for sql in [
            "RESET ROLE",
            "reset role",
            "RESET \"role\"",
            "SET ROLE postgres",
            "SET ROLE NONE",
            "SET SESSION ROLE postgres",
            "SET LOCAL ROLE postgres",
            "set \"role\" = 'postgres'",
            "SET role TO DEFAULT",
            "SET SESSION AUTHORIZATION postgres",
            "SET SESSION AUTHORIZATION DEFAULT",
            "RESET SESSION AUTHORIZATION",
            "SET session_authorization = 'postgres'",
            "RESET ALL",
            "DISCARD ALL",
            "discard   all",
            "SELECT set_config('role', 'postgres', false)",
            "SELECT pg_catalog.set_config('role', 'postgres', false)",
            "SELECT \"set_config\"('role', 'postgres', false)",
            "SELECT set_config('ROLE', 'postgres', false)",
            "SELECT set_config(E'rol\\x65', 'postgres', false)",
            "SELECT set_config(U&'rol\\0065', 'postgres', false)",
            "SELECT set_config('ro' || 'le', 'postgres', false)",
            "SELECT set_config($$role$$, 'postgres', false)",
            "SELECT set_config('session_authorization', 'postgres', false)",
            "SELECT U&\"set\\005fconfig\"('role', 'postgres', false)",
            "SELECT 1; RESET ROLE",
            "SET U&\"r\\006fle\" = 'postgres'",
            "DO $$ BEGIN EXECUTE 'RESET ROLE'; END $$",
            "CALL p()",
            "SELECT query_to_xml('select set_config(''role'',''postgres'',false)', true, true, '')",
            "/* x */ RESET /* y */ ROLE",
            "UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'",
        ] {
            assert!(refused(&c, sql, p), "{sql}");
        }
        let m = Dialect::Mysql;
        for sql in [
            "SET ROLE NONE",
            "set role `admin`",
            "SET DEFAULT ROLE NONE",
            "SET DEFAULT ROLE ALL TO CURRENT_USER",
            "/*!50000 SET ROLE NONE */",
            "PREPARE s FROM 'SET ROLE NONE'",
        ] {
            assert!(refused(&c, sql, m), "{sql}");
        }
        // Ordinary work, and catalog privileges the server judges itself.
        for sql in [
            "SELECT 1",
            "SELECT current_user",
            "SELECT set_config('search_path', 'public', false)",
            "SET search_path = public",
            "SET statement_timeout = 1000",
            "RESET statement_timeout",
            "DISCARD PLANS",
            "BEGIN READ WRITE",
            "GRANT SELECT ON t TO someone",
            "INSERT INTO t VALUES (1)",
            "SELECT 'RESET ROLE'",
        ] {
            assert!(!refused(&c, sql, p), "{sql}");
        }
    }

    #[test]
    fn read_only_switches_are_refused() {
        let c = read_only();
        let p = Dialect::Postgres;
        for sql in [
            "SET default_transaction_read_only = off",
            "SET default_transaction_read_only TO DEFAULT",
            "SET SESSION default_transaction_read_only = 'off'",
            "SET \"default_transaction_read_only\" = off",
            "SET transaction_read_only = off",
            "SET LOCAL transaction_read_only TO off",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
            "SET TRANSACTION READ WRITE",
            "BEGIN READ WRITE",
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE",
            "START TRANSACTION READ WRITE",
            "start transaction read write",
            "RESET default_transaction_read_only",
            "RESET transaction_read_only",
            "RESET ALL",
            "DISCARD ALL",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT set_config('transaction_read_only', 'off', true)",
            "SELECT set_config(lower('DEFAULT_TRANSACTION_READ_ONLY'), 'off', false)",
            "UPDATE pg_settings SET setting = 'off' WHERE name = 'default_transaction_read_only'",
            "UPDATE pg_catalog.\"pg_settings\" SET setting = 'off' WHERE name = 'default_transaction_read_only'",
            "WITH x AS (UPDATE pg_settings SET setting = 'off' WHERE name = 'transaction_read_only' RETURNING 1) SELECT 1",
            "SET U&\"default_transaction_read_onl\\0079\" = off",
        ] {
            assert!(refused(&c, sql, p), "{sql}");
        }
        let m = Dialect::Mysql;
        for sql in [
            "SET SESSION TRANSACTION READ WRITE",
            "SET TRANSACTION READ WRITE",
            "START TRANSACTION READ WRITE",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ WRITE",
            "SET tx_read_only = 0",
            "SET transaction_read_only = OFF",
            "SET @@tx_read_only = 0",
            "SET @@session.transaction_read_only = 0",
            "SET SESSION `tx_read_only` = 0",
            "SET sql_mode = '', transaction_read_only = 0",
            "SET STATEMENT transaction_read_only = 0 FOR INSERT INTO t VALUES (1)",
            "/*!40101 SET tx_read_only = 0 */",
            "PREPARE s FROM 'SET tx_read_only = 0'",
            "PREPARE s FROM 'START TRANSACTION READ WRITE'",
        ] {
            assert!(refused(&c, sql, m), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "BEGIN",
            "START TRANSACTION READ ONLY",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET statement_timeout = 0",
            "SET ROLE other",
            "SELECT * FROM pg_settings WHERE name = 'work_mem'",
        ] {
            assert!(!refused(&c, sql, p), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "START TRANSACTION",
            "SET SESSION TRANSACTION READ ONLY",
        ] {
            assert!(!refused(&c, sql, m), "{sql}");
        }
    }

    #[test]
    fn the_refusal_names_identity_and_role() {
        let c = role_only();
        let d = Dialect::Postgres;
        let why = c
            .refusal("bot", &classify_query("RESET ROLE", d), d)
            .unwrap();
        assert!(why.contains("identity \"bot\""), "{why}");
        assert!(why.contains("upstream role \"agent_ro\""), "{why}");
    }
}
