//! Which held writes may be dry-run for their approvers (`impact =
//! "dry-run"` on a hold rule): run inside a transaction that is always
//! rolled back, to show the exact number of rows they would change.
//!
//! A rollback undoes what the transaction did and nothing else, so a
//! statement qualifies only when the text alone shows it can do nothing
//! outside it: one UPDATE or DELETE, classed write (and read) alone, that
//! calls no function but a few pure built-ins ([`PURE_BUILTINS`], resolved
//! with `pg_catalog` first on the search path; sequences, notifications,
//! dblink, file and large-object access and any user function are all
//! reached through calls),
//! uses no operator of its own (an operator runs a function), no `DEFAULT`
//! (a column default may call `nextval`) and no data-modifying `WITH`.
//! What the text cannot show — triggers, rules, row-level security
//! policies, views and foreign tables among the tables it touches, or
//! reaches through cascading foreign keys — the gateway checks on the
//! server, in the dry run's own transaction, before running it
//! ([`PG_TABLES_QUALIFY`]).

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, Statement as Ast, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::{Classes, Classification, Dialect, StatementClass};

/// The statement text to dry-run, or why it may not be.
pub fn dry_run_refusal<'a>(
    classification: &Classification,
    sql: &'a [u8],
    dialect: Dialect,
) -> Result<&'a str, &'static str> {
    if dialect != Dialect::Postgres {
        return Err("dry runs are made on PostgreSQL only");
    }
    let [statement] = classification.statements.as_slice() else {
        return Err("only a single statement is dry-run");
    };
    let reads_and_writes = Classes::of(&[StatementClass::Write, StatementClass::Read]);
    if !statement.classes.contains(StatementClass::Write)
        || statement
            .classes
            .iter()
            .any(|c| !reads_and_writes.contains(c))
    {
        return Err("only writes (and the reads they make) are dry-run");
    }
    if !statement.functions.iter().all(|f| pure(f)) {
        return Err("it calls functions, which may act outside the transaction");
    }
    let text = std::str::from_utf8(sql)
        .map_err(|_| "its text is not UTF-8")?
        .trim()
        .trim_end_matches(';');
    let parsed = Parser::parse_sql(&PostgreSqlDialect {}, text)
        .map_err(|_| "Airlock cannot parse it fully")?;
    let [ast] = parsed.as_slice() else {
        return Err("only a single statement is dry-run");
    };
    match ast {
        Ast::Update { .. } | Ast::Delete(_) => {}
        _ => return Err("only UPDATE and DELETE are dry-run (an INSERT may advance sequences)"),
    }
    let mut scan = Unsafe::default();
    let _ = ast.visit(&mut scan);
    if let Some(why) = scan.0 {
        return Err(why);
    }
    // `SET col = DEFAULT` and a WITH clause do not show as expressions.
    let words = text
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .map(str::to_ascii_lowercase);
    for word in words {
        match word.as_str() {
            "default" => return Err("it uses DEFAULT, which may call nextval"),
            "with" => return Err("it has a WITH clause"),
            _ => {}
        }
    }
    if statement.objects.is_empty() {
        return Err("it names no table");
    }
    Ok(text)
}

/// Built-in functions that only compute: a dry run may call them (with
/// `pg_catalog` first on its search path, so a function of the same name
/// elsewhere is not the one called).
pub const PURE_BUILTINS: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "localtimestamp",
    "lower",
    "upper",
    "length",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "abs",
    "round",
    "trim",
    "btrim",
    "date_trunc",
    "count",
    "max",
    "min",
    "sum",
    "avg",
];

fn pure(name: &str) -> bool {
    let name = name.strip_prefix("pg_catalog.").unwrap_or(name);
    PURE_BUILTINS.contains(&name)
}

/// The first thing in a statement that could run code of its own.
#[derive(Default)]
struct Unsafe(Option<&'static str>);

impl Visitor for Unsafe {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        let why = match expr {
            Expr::Function(f) if pure(&f.name.to_string().to_ascii_lowercase()) => {
                return ControlFlow::Continue(())
            }
            Expr::Function(_) => "it calls functions, which may act outside the transaction",
            Expr::BinaryOp {
                op: BinaryOperator::Custom(_) | BinaryOperator::PGCustomBinaryOperator(_),
                ..
            } => "it uses an operator of its own, which runs a function",
            _ => return ControlFlow::Continue(()),
        };
        self.0 = Some(why);
        ControlFlow::Break(())
    }
}

/// Run on the dry run's connection, inside its transaction, with `$1` the
/// statement's tables: how many of them are *not* plain tables free of
/// triggers, rules and row-level security, counting every table their
/// foreign keys cascade to. A change also runs the table's index
/// expressions and predicates, check constraints and generated columns,
/// and a domain's checks. The server requires index expressions and
/// generated columns to be immutable, but records no dependency on its
/// own built-in functions, so: a table whose such parts call a function or
/// operator outside `pg_catalog` or use a sequence, whose check constraints
/// call any function at all (a check may call `nextval` or `pg_notify`),
/// or that has a column of a domain type, does not qualify either. Zero
/// means the dry run may go ahead.
pub const PG_TABLES_QUALIFY: &str = "WITH RECURSIVE named AS ( \
       SELECT n, to_regclass(n) AS oid FROM unnest($1::text[]) AS n \
     ), reached(oid) AS ( \
       SELECT oid FROM named WHERE oid IS NOT NULL \
       UNION \
       SELECT k.conrelid FROM pg_constraint k JOIN reached r ON k.confrelid = r.oid \
        WHERE k.contype = 'f' \
     ) \
     SELECT (SELECT count(*) FROM named WHERE oid IS NULL) + count(*) FROM reached r \
       JOIN pg_class c ON c.oid = r.oid \
      WHERE c.relkind NOT IN ('r', 'p') OR c.relrowsecurity \
         OR EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) \
         OR EXISTS (SELECT 1 FROM pg_rewrite w WHERE w.ev_class = c.oid AND w.rulename <> '_RETURN') \
         OR EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND t.typtype = 'd') \
         OR EXISTS (SELECT 1 FROM pg_depend d \
                     LEFT JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid \
                     LEFT JOIN pg_operator o ON d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid \
                     WHERE ((d.classid = 'pg_class'::regclass AND d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = c.oid)) \
                         OR (d.classid = 'pg_constraint'::regclass AND d.objid IN (SELECT oid FROM pg_constraint WHERE conrelid = c.oid)) \
                         OR (d.classid = 'pg_attrdef'::regclass AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = c.oid))) \
                       AND ((p.oid IS NOT NULL AND (p.pronamespace <> 'pg_catalog'::regnamespace OR p.provolatile = 'v')) \
                         OR (o.oid IS NOT NULL AND o.oprnamespace <> 'pg_catalog'::regnamespace) \
                         OR (d.refclassid = 'pg_class'::regclass \
                             AND (SELECT relkind FROM pg_class WHERE oid = d.refobjid) = 'S'))) \
         OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c' \
                       AND pg_get_constraintdef(k.oid) ~* '\\m(?!(check|in|any|all|array|not|and|or)\\M)[a-z_][a-z0-9_$]*\\s*\\(')";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{classify, Dialect};

    fn check(sql: &str) -> Result<&str, &'static str> {
        let c = classify(sql, Dialect::Postgres);
        dry_run_refusal(&c, sql.as_bytes(), Dialect::Postgres)
    }

    #[test]
    fn plain_updates_and_deletes_qualify() {
        for sql in [
            "UPDATE accounts SET active = false WHERE last_seen < '2020-01-01'",
            "DELETE FROM sessions WHERE id IN (SELECT id FROM expired)",
            "delete from t;",
            "UPDATE t SET n = n + 1 FROM u WHERE t.id = u.id",
            "UPDATE t SET seen = now() WHERE lower(name) = 'x'",
            "UPDATE t SET n = (SELECT max(n) FROM u)",
        ] {
            assert!(check(sql).is_ok(), "{sql}: {:?}", check(sql));
        }
    }

    #[test]
    fn anything_that_could_act_outside_the_transaction_does_not() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET id = nextval('s')",
            "UPDATE t SET n = DEFAULT",
            "DELETE FROM t WHERE pg_notify('c', 'x') IS NOT NULL",
            "UPDATE t SET n = 1 WHERE public.lower(name) = 'x'",
            "UPDATE t SET n = 1 WHERE evil(name)",
            "UPDATE t SET n = 1 WHERE a === b",
            "WITH d AS (DELETE FROM u RETURNING id) UPDATE t SET n = 1 WHERE id IN (SELECT id FROM d)",
            "UPDATE t SET n = 1; DELETE FROM u",
            "SELECT * FROM t",
            "DROP TABLE t",
            "TRUNCATE t",
            "COPY t FROM '/tmp/x'",
            "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
        ] {
            assert!(check(sql).is_err(), "{sql} would be dry-run");
        }
    }

    #[test]
    fn mysql_is_never_dry_run() {
        let sql = "UPDATE t SET n = 1";
        let c = classify(sql, Dialect::Mysql);
        assert!(dry_run_refusal(&c, sql.as_bytes(), Dialect::Mysql).is_err());
    }
}
