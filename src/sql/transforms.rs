//! Which columns a statement passes through a reversible transform.
//!
//! Content detection sees values as the server sends them. A statement that
//! sends `reverse(email)`, `encode(card::text::bytea, 'base64')`,
//! `left(card, 8)` and `right(card, 8)` in two columns, or `card + 1`, hands
//! the agent a value no detector recognises and that it can turn back into
//! the original. This module names the columns such expressions read, so
//! that a policy rule can hold or deny them when masking has found
//! sensitive values in a column of that name (see `transforms` in
//! policies/README.md).
//!
//! What counts as a transform is deliberately broad — encodings, digests
//! (a card number's digest is reversed by trying every number), substrings,
//! padding, reversal, character maps, concatenation, arithmetic and bitwise
//! operators, casts to binary types and charset conversions, aggregation
//! that glues values together without a separator — because a false
//! finding costs a hold on a column already known to hold sensitive data,
//! while a missed one lets it out.

use sqlparser::ast::{
    BinaryOperator, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, ObjectName, Select, SelectItem, SetExpr, SetOperator, SetQuantifier,
    Statement, TableAliasColumnDef, TableFactor, UnaryOperator, Value, Visitor,
};
use std::ops::ControlFlow;

/// A transformed whole row (`reverse(t::text)`, `md5(p.*::text)`): every
/// column of the table is read through the transform.
pub const EVERY_COLUMN: &str = "*";

/// Functions whose result spells their input in another form, or a part of
/// it, on PostgreSQL or MySQL/MariaDB (lower-case, unqualified).
const TRANSFORMS: &[&str] = &[
    // Encodings and charset conversions.
    "encode",
    "decode",
    "to_hex",
    "hex",
    "unhex",
    "to_base64",
    "from_base64",
    "convert_to",
    "convert_from",
    "convert",
    "textsend",
    "bin",
    "oct",
    "conv",
    "compress",
    "aes_encrypt",
    "des_encrypt",
    "encrypt",
    "pgp_sym_encrypt",
    "quote",
    "quote_literal",
    "quote_nullable",
    // A setting keeps the value outside any table, to be read back with
    // `current_setting` under no column's name; an advisory lock keeps
    // its key where every session reads it, a bigint split into two
    // integers (`pg_locks.classid`, `objid`) no detector sees as a card;
    // a named lock keeps its name in the lock tables; a sequence keeps
    // its value for `nextval` to hand back one higher (no longer a valid
    // card), as does MySQL's `LAST_INSERT_ID(expr)` for `LAST_INSERT_ID()
    // + 1`; a large object is named by the number it is created with.
    "setval",
    "last_insert_id",
    "lo_create",
    "set_config",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "get_lock",
    // Digests: a short or structured value is recovered by trying them all.
    "md5",
    "sha",
    "sha1",
    "sha2",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "digest",
    "hmac",
    "crc32",
    "password",
    "old_password",
    "bit_count",
    "hashtext",
    // MariaDB's sort keys, formatter and packed columns: a number spelled
    // with its length in front (`NATURAL_SORT_KEY`), in any base
    // (`SFORMAT('{:x}', card)`), as collation weights, or in binary.
    "natural_sort_key",
    "sformat",
    "weight_string",
    "column_create",
    "uuid_to_bin",
    "uncompress",
    "aes_decrypt",
    "des_decrypt",
    // Parts, order and character maps.
    "reverse",
    "translate",
    "replace",
    "regexp_replace",
    "overlay",
    "insert",
    "substr",
    "substring",
    "substring_index",
    "mid",
    "left",
    "right",
    "split_part",
    "lpad",
    "rpad",
    "repeat",
    "ascii",
    "ord",
    "chr",
    "char",
    "string_to_array",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "regexp_substr",
    "concat",
    "concat_ws",
    "format",
    "to_char",
    "export_set",
    "make_set",
    "elt",
    // Questions about the value, asked a character at a time: where a
    // string occurs in it, whether it matches a pattern, how close it is
    // to a guess, which of it and a guess sorts first.
    "position",
    "strpos",
    "instr",
    "locate",
    "starts_with",
    "regexp_like",
    "regexp_instr",
    "regexp_count",
    "regexp_match",
    "regexp_matches",
    "strcmp",
    "find_in_set",
    "field",
    "greatest",
    "least",
    "levenshtein",
    "levenshtein_less_equal",
    "similarity",
    "word_similarity",
    "strict_word_similarity",
    "soundex",
    "difference",
    "metaphone",
    "dmetaphone",
    "dmetaphone_alt",
    "array_position",
    "array_positions",
    "width_bucket",
    // Membership and containment by function: a list of guesses in one
    // JSON or array value (`JSON_CONTAINS('["a", "b", …]', JSON_QUOTE(email))`,
    // `arraycontains(ARRAY[…], ARRAY[email])`, the function forms of
    // `@>`, `<@`, `&&`, `?` and `@@`).
    "json_contains",
    "json_contains_path",
    "json_search",
    "json_overlaps",
    "jsonb_contains",
    "jsonb_contained",
    "jsonb_exists",
    "jsonb_exists_any",
    "jsonb_exists_all",
    "jsonb_path_exists",
    "jsonb_path_match",
    "jsonb_path_query",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "jsonb_path_exists_tz",
    "jsonb_path_match_tz",
    "jsonb_path_query_tz",
    "jsonb_path_query_array_tz",
    "jsonb_path_query_first_tz",
    "arraycontains",
    "arraycontained",
    "arrayoverlap",
    "ts_match_vq",
    "ts_match_tq",
    "ts_match_tt",
    "ts_match_qv",
    // Rounding and arithmetic by name: `round(card, -4)` keeps twelve of
    // a card's sixteen digits, `mod(card, 10^8)` its last eight, and
    // `sqrt(card)` squares back.
    "round",
    "trunc",
    "truncate",
    "floor",
    "ceil",
    "ceiling",
    "mod",
    "div",
    "gcd",
    "lcm",
    "sqrt",
    "cbrt",
    "exp",
    "ln",
    "log",
    "log2",
    "log10",
    "power",
    "pow",
    // Scaled (`degrees(card)` is card × 180/π) and the float functions
    // behind the operators (`dsqrt`, `dpow`).
    "degrees",
    "radians",
    "dsqrt",
    "dcbrt",
    "dexp",
    "dlog1",
    "dlog10",
    "dpow",
    "dround",
    "dtrunc",
    "get_byte",
    "get_bit",
    "textcat",
    // Parsers whose errors quote a part of their input (`to_date(email,
    // 'YYYY')` fails with `invalid value "ada." for "YYYY"`).
    "to_date",
    "to_timestamp",
    "to_number",
    "parse_ident",
    // Numbers spelled another way: in words (`cash_words(card::money)`),
    // as an address, a duration or a date (`inet_ntoa(card)`,
    // `sec_to_time(card)`, `make_interval(secs => card)`).
    "cash_words",
    "inet_ntoa",
    "inet6_ntoa",
    "inet_aton",
    "inet6_aton",
    "sec_to_time",
    "from_unixtime",
    "from_days",
    "makedate",
    "maketime",
    "make_interval",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "date_add",
    "date_sub",
    "adddate",
    "subdate",
    "timestampadd",
];

/// Trimming functions that take the characters to trim: with them, a
/// character map (`rtrim(email, 'moc.elpmaxe@')` leaves the local part).
const TRIMS: &[&str] = &["ltrim", "rtrim", "btrim"];

/// Aggregates that glue values together: a transform only when nothing
/// that a detector treats as a boundary separates the values.
const GLUING_AGGREGATES: &[&str] = &["string_agg", "group_concat", "array_to_string", "listagg"];

/// The columns read through a reversible transform anywhere in
/// `statements`, lower-cased and unqualified (`p.card` → `card`), sorted
/// and without repeats; [`EVERY_COLUMN`] for a whole row.
pub fn transformed_columns(statements: &[Statement], dialect: super::Dialect) -> Vec<String> {
    let mut finder = Finder {
        postgres: dialect == super::Dialect::Postgres,
        ..Finder::default()
    };
    for statement in statements {
        finder.top_level_next = matches!(statement, Statement::Query(_));
        let _ = sqlparser::ast::Visit::visit(statement, &mut finder);
    }
    let tables = finder.tables;
    // Values checked one by one add up over the statement: twelve
    // `email = '…'` joined by OR ask as much as one IN list of twelve.
    let mut named = finder.columns;
    named.extend(
        finder
            .checks
            .into_iter()
            .filter(|(_, values)| *values > MAX_CHECKED_VALUES)
            .map(|(column, _)| column),
    );
    // A transform of an alias is a transform of what the alias names:
    // `reverse(x) FROM (SELECT email AS x …)` reads email.
    let mut i = 0;
    while i < named.len() && named.len() < 10_000 {
        let name = named[i].clone();
        for (alias, sources) in &finder.aliases {
            if *alias == name {
                named.extend(
                    sources
                        .iter()
                        .filter(|s| !named.contains(s))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
            }
        }
        i += 1;
    }
    let mut columns: Vec<String> = named
        .into_iter()
        .map(|c| {
            if tables.contains(&c) {
                EVERY_COLUMN.to_string()
            } else {
                c
            }
        })
        .collect();
    columns.sort();
    columns.dedup();
    columns
}

/// The tables and views `statements` read (not the names of their own
/// `WITH` queries), each written as a name to put in a query for
/// `dialect`: every part quoted, PostgreSQL's unquoted parts folded to
/// lower case as the server folds them. What the gateway samples to learn
/// which columns hold sensitive values before a transform of one runs.
pub fn relations_read(statements: &[Statement], dialect: super::Dialect) -> Vec<String> {
    /// `WITH` names and the tables named in FROM, JOIN, UPDATE and DELETE
    /// (not calls: `FROM generate_series(1, 3)`).
    #[derive(Default)]
    struct Relations {
        ctes: Vec<String>,
        tables: Vec<ObjectName>,
    }
    impl Visitor for Relations {
        type Break = ();
        fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                self.ctes
                    .extend(with.cte_tables.iter().map(|c| c.alias.name.value.clone()));
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name, args: None, ..
            } = factor
            {
                self.tables.push(name.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let mut found = Relations::default();
    for statement in statements {
        let _ = sqlparser::ast::Visit::visit(statement, &mut found);
    }
    let mut out: Vec<String> = found
        .tables
        .iter()
        .filter(|name| match name.0.as_slice() {
            [only] => only.as_ident().is_none_or(|i| {
                let dual = dialect == super::Dialect::Mysql && i.value.eq_ignore_ascii_case("dual");
                !(dual || found.ctes.contains(&i.value))
            }),
            _ => true,
        })
        .filter_map(|name| {
            let parts: Option<Vec<String>> = name
                .0
                .iter()
                .map(|part| part.as_ident().map(|ident| quoted(ident, dialect)))
                .collect();
            parts.map(|p| p.join("."))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One part of a name, quoted for `dialect` so that it names exactly what
/// the statement named.
fn quoted(ident: &sqlparser::ast::Ident, dialect: super::Dialect) -> String {
    if ident.quote_style.is_none() && dialect == super::Dialect::Postgres {
        quoted_name(&ident.value.to_ascii_lowercase(), dialect)
    } else {
        quoted_name(&ident.value, dialect)
    }
}

/// `name` quoted as an identifier for `dialect`.
pub fn quoted_name(name: &str, dialect: super::Dialect) -> String {
    match dialect {
        super::Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        super::Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
    }
}

/// The outputs of the queries in `statements` whose name differs from the
/// columns they read, each with those columns (through aliases, CTE and
/// derived-table column lists and every set-operation branch), lower-cased
/// and sorted: `SELECT email AS e` gives `e → [email]`.
pub fn output_sources(statements: &[Statement]) -> Vec<(String, Vec<String>)> {
    let mut finder = Finder::default();
    for statement in statements {
        let _ = sqlparser::ast::Visit::visit(statement, &mut finder);
    }
    let mut out = Vec::new();
    for statement in statements {
        let Statement::Query(query) = statement else {
            continue;
        };
        for (name, reads) in outputs(&query.body) {
            let Some(name) = name else {
                continue;
            };
            let mut sources = reads;
            let mut i = 0;
            while i < sources.len() && sources.len() < 1_000 {
                let current = sources[i].clone();
                for (alias, more) in &finder.aliases {
                    if *alias == current {
                        for m in more {
                            if !sources.contains(m) {
                                sources.push(m.clone());
                            }
                        }
                    }
                }
                i += 1;
            }
            sources.retain(|s| *s != name);
            sources.sort();
            sources.dedup();
            if !sources.is_empty() {
                out.push((name, sources));
            }
        }
    }
    out
}

#[derive(Default)]
struct Finder {
    /// How many transforms enclose the expression being visited.
    depth: usize,
    columns: Vec<String>,
    /// Table names and aliases: a bare one inside a transform is a whole
    /// row (`reverse(p::text)`).
    tables: Vec<String>,
    /// Output aliases (`expr AS x`) and the columns their expression reads.
    aliases: Vec<(String, Vec<String>)>,
    /// Each column compared for equality with constants, and with how
    /// many values over the whole statement.
    checks: Vec<(String, usize)>,
    /// The next query visited is a statement's own (not a subquery, a
    /// CTE or an INSERT's source): its UNION ALL only lists rows.
    top_level_next: bool,
    /// PostgreSQL's reading of the statement: `::char` is `character(1)`.
    postgres: bool,
}

impl Visitor for Finder {
    type Break = ();

    /// Every statement, nested ones too: `PREPARE p AS INSERT …`,
    /// `EXPLAIN ANALYZE UPDATE …`, `WITH c AS (INSERT … RETURNING …)`.
    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        stored_columns(statement, &mut self.columns);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> ControlFlow<()> {
        let top_level = std::mem::take(&mut self.top_level_next);
        // Rows of two sources compared with each other: INTERSECT, EXCEPT
        // and UNION match each row against the other branch (`SELECT e
        // FROM guesses INTERSECT SELECT email FROM users`, counted, says
        // which guesses are right), and so does a UNION ALL whose rows a
        // query around it groups, sorts or counts. Every output column of
        // every branch is asked about.
        if let SetExpr::SetOperation {
            op, set_quantifier, ..
        } = query.body.as_ref()
        {
            // Sorted, the rows of both branches interleave: where each
            // masked value falls among the guesses shows through the
            // columns beside it.
            let lists_only = *op == SetOperator::Union
                && matches!(
                    set_quantifier,
                    SetQuantifier::All | SetQuantifier::AllByName
                )
                && top_level
                && query.order_by.is_none();
            if !lists_only {
                for (_, reads) in outputs(&query.body) {
                    self.columns.extend(reads);
                }
            }
        }
        // `JOIN … USING (email)` and NATURAL JOIN compare columns of two
        // tables for equality, as `ON a.email = b.email` does.
        let mut selects = Vec::new();
        branches_of(&query.body, &mut selects);
        for select in selects {
            for table in &select.from {
                joined_columns(table, &mut self.columns);
            }
        }
        // Output names and what they read, by position over every branch
        // of a UNION/INTERSECT/EXCEPT: the first branch names a column, any
        // branch fills it (`SELECT 'a' AS x UNION SELECT email …` reads
        // email under x).
        for (name, reads) in outputs(&query.body) {
            if let Some(name) = name {
                self.aliases.push((name, reads));
            }
        }
        // A CTE's column list renames its query's outputs by position:
        // `WITH s(x) AS (SELECT email …)`.
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.rename(&cte.alias.columns, &cte.query.body);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        // `FROM (SELECT email …) AS s(x)`: the column list renames too.
        match factor {
            TableFactor::Derived {
                subquery,
                alias: Some(alias),
                ..
            } => self.rename(&alias.columns, &subquery.body),
            // `people AS p(i, n, e)` renames the table's columns by
            // position, which the statement does not show: each name may be
            // any column.
            TableFactor::Table {
                alias: Some(alias),
                args: None,
                ..
            } => {
                for column in &alias.columns {
                    self.aliases.push((
                        column.name.value.to_lowercase(),
                        vec![EVERY_COLUMN.to_string()],
                    ));
                }
            }
            // A set-returning function (`unnest(ARRAY[email]) AS u(x)`,
            // `LATERAL f(email)`): each output name, and the alias itself
            // used as a value, may be any column its arguments read.
            TableFactor::Table {
                alias: Some(alias), ..
            }
            | TableFactor::Function {
                alias: Some(alias), ..
            }
            | TableFactor::TableFunction {
                alias: Some(alias), ..
            }
            | TableFactor::UNNEST {
                alias: Some(alias), ..
            } => {
                let mut reads = Reads::default();
                let _ = sqlparser::ast::Visit::visit(factor, &mut reads);
                for name in alias
                    .columns
                    .iter()
                    .map(|c| &c.name)
                    .chain(std::iter::once(&alias.name))
                {
                    self.aliases
                        .push((name.value.to_lowercase(), reads.0.clone()));
                }
            }
            _ => {}
        }
        if let TableFactor::Table { name, alias, .. } = factor {
            if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                self.tables.push(last.value.to_lowercase());
            }
            if let Some(alias) = alias {
                self.tables.push(alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        self.count_checks(expr);
        if self.transforms(expr) {
            self.depth += 1;
            // Wildcards are function arguments, not expressions: the
            // visitor never reaches them on its own.
            if let Expr::Function(f) = expr {
                if has_wildcard(f) {
                    self.columns.push(EVERY_COLUMN.to_string());
                }
            }
            // MySQL's `MATCH (email) AGAINST (…)` names its columns, not
            // expressions the visitor reaches.
            if let Expr::MatchAgainst { columns, .. } = expr {
                self.columns.extend(columns.iter().map(last_name));
            }
        }
        if self.depth > 0 {
            match expr {
                Expr::Identifier(ident) => self.columns.push(ident.value.to_lowercase()),
                Expr::CompoundIdentifier(parts) => {
                    if let Some(last) = parts.last() {
                        self.columns.push(last.value.to_lowercase());
                    }
                }
                Expr::QualifiedWildcard(..) | Expr::Wildcard(..) => {
                    self.columns.push(EVERY_COLUMN.to_string())
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.transforms(expr) {
            self.depth = self.depth.saturating_sub(1);
        }
        ControlFlow::Continue(())
    }
}

impl Finder {
    /// [`is_transform`], and on PostgreSQL a cast to `char` or `character`
    /// without a length, which is `character(1)` there: the first
    /// character (MySQL's `CAST(x AS CHAR)` keeps the whole value).
    fn transforms(&self, expr: &Expr) -> bool {
        is_transform(expr)
            || (self.postgres
                && matches!(
                    expr,
                    Expr::Cast {
                        data_type: DataType::Char(None) | DataType::Character(None),
                        ..
                    }
                ))
    }

    /// Counts the constants a column is compared with for equality
    /// (`email = 'a'`, `email IN ('a', 'b')`, `CASE email WHEN 'a' …`,
    /// `nullif(email, 'a')`).
    fn count_checks(&mut self, expr: &Expr) {
        let mut count = |checked: &Expr, values: usize| {
            let mut reads = Reads::default();
            let _ = sqlparser::ast::Visit::visit(checked, &mut reads);
            for column in reads.0 {
                match self.checks.iter_mut().find(|(c, _)| *c == column) {
                    Some((_, n)) => *n += values,
                    None => self.checks.push((column, values)),
                }
            }
        };
        match expr {
            Expr::BinaryOp { left, op, right } if equality(op) => {
                if let Some(checked) = checked_against_constant(left, right) {
                    count(checked, 1);
                }
            }
            Expr::IsDistinctFrom(left, right) | Expr::IsNotDistinctFrom(left, right) => {
                if let Some(checked) = checked_against_constant(left, right) {
                    count(checked, 1);
                }
            }
            Expr::InList { expr, list, .. } => count(expr, list.len()),
            Expr::AnyOp { left, right, .. } | Expr::AllOp { left, right, .. } => {
                if let Expr::Array(array) = right.as_ref() {
                    count(left, array.elem.len());
                }
            }
            Expr::Case {
                operand: Some(operand),
                conditions,
                ..
            } => count(operand, conditions.len()),
            Expr::Function(f) if last_name(&f.name) == "nullif" => {
                if let Some([first, second]) = function_args(f).as_deref() {
                    if let Some(checked) = checked_against_constant(first, second) {
                        count(checked, 1);
                    }
                }
            }
            _ => {}
        }
    }

    /// Maps each name of a column list to what the query's output at the
    /// same position reads.
    fn rename(&mut self, columns: &[TableAliasColumnDef], body: &SetExpr) {
        if columns.is_empty() {
            return;
        }
        let outputs = outputs(body);
        for (column, (_, reads)) in columns.iter().zip(outputs) {
            self.aliases.push((column.name.value.to_lowercase(), reads));
        }
    }
}

/// Columns whose values a statement keeps where masking no longer knows
/// them by that column: copied into rows (`INSERT INTO notes SELECT
/// email …`, `UPDATE notes SET body = (SELECT card …)`, MERGE, an upsert's
/// update) or into a session variable (`SET @e = (SELECT email …)`; `@e
/// := email` and `set_config` are transforms). Read back under the new
/// name, a transform of the copy (`substr(body, 1, 3)`) would not be asked
/// about the column it came from, and a variable is no table to sample:
/// so the copy itself counts as asking about the column.
fn stored_columns(statement: &Statement, out: &mut Vec<String>) {
    use sqlparser::ast::{MergeAction, OnConflict, OnConflictAction, OnInsert, Set};
    fn read(node: &impl sqlparser::ast::Visit, reads: &mut Reads) {
        let _ = node.visit(reads);
    }
    let mut reads = Reads::default();
    let reads = &mut reads;
    match statement {
        Statement::Insert(insert) => {
            if let Some(source) = &insert.source {
                projected_columns(&source.body, out);
            }
            for a in &insert.assignments {
                read(&a.value, reads);
            }
            match &insert.on {
                Some(OnInsert::DuplicateKeyUpdate(assignments))
                | Some(OnInsert::OnConflict(OnConflict {
                    action: OnConflictAction::DoUpdate(sqlparser::ast::DoUpdate { assignments, .. }),
                    ..
                })) => {
                    for a in assignments {
                        read(&a.value, reads);
                    }
                }
                _ => {}
            }
        }
        Statement::Update(update) => {
            for a in &update.assignments {
                read(&a.value, reads);
            }
        }
        Statement::Merge(merge) => {
            for clause in &merge.clauses {
                if matches!(
                    clause.action,
                    MergeAction::Insert(_) | MergeAction::Update(_)
                ) {
                    read(&clause.action, reads);
                }
            }
        }
        Statement::Set(set) => {
            let values: Vec<&Expr> = match set {
                Set::SingleAssignment { values, .. }
                | Set::ParenthesizedAssignments { values, .. } => values.iter().collect(),
                Set::MultipleAssignments { assignments } => {
                    assignments.iter().map(|a| &a.value).collect()
                }
                _ => Vec::new(),
            };
            // A bare name is a setting's value (`SET search_path = app`):
            // SET reads a column only through a subquery.
            for value in values {
                if !matches!(value, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                    read(value, reads);
                }
            }
        }
        _ => {}
    }
    out.append(&mut reads.0);
}

/// Every column a query body's rows carry: each branch's outputs and
/// VALUES rows, what its `*` outputs carry ([`wildcard_columns`]), and
/// every column of a `TABLE t` branch.
fn projected_columns(body: &SetExpr, out: &mut Vec<String>) {
    fn whole_table(body: &SetExpr) -> bool {
        match body {
            SetExpr::Table(_) => true,
            SetExpr::SetOperation { left, right, .. } => whole_table(left) || whole_table(right),
            SetExpr::Query(query) => whole_table(&query.body),
            _ => false,
        }
    }
    if whole_table(body) {
        out.push(EVERY_COLUMN.to_string());
    }
    let mut reads = Reads::default();
    let mut branches = Vec::new();
    branches_of(body, &mut branches);
    for select in branches {
        for item in &select.projection {
            match item {
                SelectItem::ExprWithAlias { expr, .. } | SelectItem::UnnamedExpr(expr) => {
                    let _ = sqlparser::ast::Visit::visit(expr, &mut reads);
                }
                _ => wildcard_columns(select, out),
            }
        }
    }
    let mut values = Vec::new();
    values_of(body, &mut values);
    for v in values {
        let _ = sqlparser::ast::Visit::visit(v, &mut reads);
    }
    out.extend(reads.0);
}

/// What a `*` output of `select` carries: every column of a table or
/// WITH query it reads, what a subquery's rows carry, and what a
/// function's arguments read (`jsonb_to_record($1)` carries only the
/// parameter).
fn wildcard_columns(select: &Select, out: &mut Vec<String>) {
    fn factor(f: &TableFactor, out: &mut Vec<String>) {
        match f {
            TableFactor::Derived { subquery, .. } => projected_columns(&subquery.body, out),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => tables(table_with_joins, out),
            TableFactor::Table { args: None, .. } => out.push(EVERY_COLUMN.to_string()),
            TableFactor::Table { .. }
            | TableFactor::Function { .. }
            | TableFactor::TableFunction { .. }
            | TableFactor::UNNEST { .. } => {
                let mut reads = Reads::default();
                let _ = sqlparser::ast::Visit::visit(f, &mut reads);
                out.extend(reads.0);
            }
            _ => out.push(EVERY_COLUMN.to_string()),
        }
    }
    fn tables(t: &sqlparser::ast::TableWithJoins, out: &mut Vec<String>) {
        factor(&t.relation, out);
        for join in &t.joins {
            factor(&join.relation, out);
        }
    }
    for t in &select.from {
        tables(t, out);
    }
}

/// The outputs of a query body by position: the name the first branch
/// gives each (an alias, or the column it reads unchanged), and the columns
/// every branch reads there. A `*` output stops the list: what follows it
/// has no known position.
fn outputs(body: &SetExpr) -> Vec<(Option<String>, Vec<String>)> {
    let mut branches = Vec::new();
    branches_of(body, &mut branches);
    let mut out: Vec<(Option<String>, Vec<String>)> = Vec::new();
    // `(VALUES (email), …) AS v(x)`: each row fills its position.
    let mut values = Vec::new();
    values_of(body, &mut values);
    for v in values {
        for row in &v.rows {
            for (k, expr) in row.content.iter().enumerate() {
                let mut reads = Reads::default();
                let _ = sqlparser::ast::Visit::visit(expr, &mut reads);
                if out.len() <= k {
                    out.resize(k + 1, (None, Vec::new()));
                }
                out[k].1.extend(reads.0);
            }
        }
    }
    if !out.is_empty() {
        // A VALUES branch first names no output; a SELECT branch after it
        // still fills the positions.
        for select in &branches {
            for (k, item) in select.projection.iter().enumerate() {
                let expr = match item {
                    SelectItem::ExprWithAlias { expr, .. } | SelectItem::UnnamedExpr(expr) => expr,
                    _ => break,
                };
                let mut reads = Reads::default();
                let _ = sqlparser::ast::Visit::visit(expr, &mut reads);
                if let Some(slot) = out.get_mut(k) {
                    slot.1.extend(reads.0);
                }
            }
        }
        return out;
    }
    for (b, select) in branches.iter().enumerate() {
        for (k, item) in select.projection.iter().enumerate() {
            let (name, expr) = match item {
                SelectItem::ExprWithAlias { expr, alias } => {
                    (Some(alias.value.to_lowercase()), expr)
                }
                SelectItem::UnnamedExpr(expr) => (column_name(expr), expr),
                _ => break,
            };
            let mut reads = Reads::default();
            let _ = sqlparser::ast::Visit::visit(expr, &mut reads);
            if b == 0 {
                out.push((name, reads.0));
            } else if let Some(slot) = out.get_mut(k) {
                slot.1.extend(reads.0);
            }
        }
    }
    out
}

fn branches_of<'a>(body: &'a SetExpr, out: &mut Vec<&'a Select>) {
    match body {
        SetExpr::Select(select) => out.push(select),
        // VALUES rows are handled by `outputs`.
        SetExpr::SetOperation { left, right, .. } => {
            branches_of(left, out);
            branches_of(right, out);
        }
        SetExpr::Query(query) => branches_of(&query.body, out),
        _ => {}
    }
}

fn values_of<'a>(body: &'a SetExpr, out: &mut Vec<&'a sqlparser::ast::Values>) {
    match body {
        SetExpr::Values(v) => out.push(v),
        SetExpr::SetOperation { left, right, .. } => {
            values_of(left, out);
            values_of(right, out);
        }
        SetExpr::Query(query) => values_of(&query.body, out),
        _ => {}
    }
}

/// The name a result gives an unaliased output that is a column.
fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(ident.value.to_lowercase()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.to_lowercase()),
        Expr::Nested(inner) => column_name(inner),
        _ => None,
    }
}

/// Every column an expression names.
#[derive(Default)]
struct Reads(Vec<String>);

impl Visitor for Reads {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => self.0.push(ident.value.to_lowercase()),
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    self.0.push(last.value.to_lowercase());
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn is_transform(expr: &Expr) -> bool {
    match expr {
        Expr::Function(f) => {
            let name = last_name(&f.name);
            TRANSFORMS.contains(&name.as_str())
                // PostgreSQL's binary output functions (`int8send(card)`,
                // `numeric_send`, `uuid_send`) show the value as bytes;
                // its hash functions (`hashint8`, `hash_numeric`,
                // `jsonb_hash_extended`) are digests, reversed by trying
                // every card of a known issuer.
                || name.ends_with("send")
                || name.starts_with("hash")
                || name.contains("_hash")
                || operator_function(&name)
                || (GLUING_AGGREGATES.contains(&name.as_str()) && glues(f))
                || (TRIMS.contains(&name.as_str()) && argument_count(f) >= 2)
                // `nullif(u.email, g.guess) IS NULL` is an equality join.
                || (name == "nullif"
                    && function_args(f).is_none_or(|args| !args.iter().all(|a| constant(a))))
        }
        Expr::Trim {
            trim_what,
            trim_characters,
            ..
        } => trim_what.is_some() || trim_characters.is_some(),
        Expr::BinaryOp { op, .. } if asks_about(op) => true,
        // Equality between two values neither of which is a constant
        // (`u.email = g.guess` in a join, `email = (SELECT …)`,
        // `EXISTS (… WHERE g.e = u.email)`): one statement checks every
        // guess a table, VALUES list or `generate_series` can hold.
        Expr::BinaryOp { left, op, right } if equality(op) => !constant(left) && !constant(right),
        Expr::IsDistinctFrom(left, right) | Expr::IsNotDistinctFrom(left, right) => {
            !constant(left) && !constant(right)
        }
        // `email IN (SELECT guess FROM …)` and `email = ANY (SELECT …)`
        // likewise; so does a list or array of values that are not
        // constants.
        Expr::InSubquery { .. } => true,
        Expr::AnyOp {
            compare_op, right, ..
        }
        | Expr::AllOp {
            compare_op, right, ..
        } => {
            asks_about(compare_op)
                || match right.as_ref() {
                    Expr::Array(a) => {
                        a.elem.len() > MAX_CHECKED_VALUES || !a.elem.iter().all(constant)
                    }
                    // An array whose length the text does not show: a
                    // literal (`'{a,b,…}'::text[]`), a parameter, a split
                    // string, a subquery.
                    _ => true,
                }
        }
        Expr::InList { list, .. } => list.len() > MAX_CHECKED_VALUES || !list.iter().all(constant),
        Expr::Case {
            operand: Some(_),
            conditions,
            ..
        } => !conditions.iter().all(|c| constant(&c.condition)),
        Expr::MatchAgainst { .. } => true,
        // Patterns and ranges (`email LIKE 'j%'`, `card BETWEEN '4' AND
        // '5'`) read a value out a character at a time, a count or a row
        // per question.
        Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::RLike { .. }
        | Expr::Between { .. }
        | Expr::Position { .. } => true,
        Expr::BinaryOp { op, .. } => matches!(
            op,
            BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::Modulo
                | BinaryOperator::StringConcat
                | BinaryOperator::BitwiseOr
                | BinaryOperator::BitwiseAnd
                | BinaryOperator::BitwiseXor
                | BinaryOperator::MyIntegerDivide
                | BinaryOperator::PGBitwiseXor
                | BinaryOperator::PGBitwiseShiftLeft
                | BinaryOperator::PGBitwiseShiftRight
                | BinaryOperator::PGExp
                // MySQL's `@e := email` keeps the value in a variable,
                // where masking cannot tell it from any other.
                | BinaryOperator::Assignment
        ),
        // `~card` prints 2⁶⁴ − 1 − card (MySQL) or −card − 1: the digits
        // change, the value does not; roots and factorials likewise.
        Expr::UnaryOp { op, .. } => matches!(
            op,
            UnaryOperator::BitwiseNot
                | UnaryOperator::PGSquareRoot
                | UnaryOperator::PGCubeRoot
                | UnaryOperator::PGPostfixFactorial
                | UnaryOperator::PGPrefixFactorial
        ),
        Expr::Substring { .. } | Expr::Overlay { .. } => true,
        Expr::Convert {
            charset, data_type, ..
        } => {
            charset.is_some()
                || data_type
                    .as_ref()
                    .is_some_and(|t| binary_type(t) || reshaping_type(t))
        }
        Expr::Cast { data_type, .. } => binary_type(data_type) || reshaping_type(data_type),
        _ => false,
    }
}

/// Operators that match a value against a pattern or order it against a
/// guess: each answer narrows the value down (equality only confirms a
/// value already known, and is left alone).
fn asks_about(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
            | BinaryOperator::Regexp
            | BinaryOperator::PGRegexMatch
            | BinaryOperator::PGRegexIMatch
            | BinaryOperator::PGRegexNotMatch
            | BinaryOperator::PGRegexNotIMatch
            | BinaryOperator::PGLikeMatch
            | BinaryOperator::PGILikeMatch
            | BinaryOperator::PGNotLikeMatch
            | BinaryOperator::PGNotILikeMatch
            | BinaryOperator::PGStartsWith
            | BinaryOperator::Match
            | BinaryOperator::Glob
            // Full-text match, containment and key tests (`to_tsvector(email)
            // @@ 'jane'`, `ARRAY[email] && ARRAY[…]`, `doc ? 'k'`).
            | BinaryOperator::AtAt
            | BinaryOperator::AtArrow
            | BinaryOperator::ArrowAt
            | BinaryOperator::AtQuestion
            | BinaryOperator::Question
            | BinaryOperator::QuestionAnd
            | BinaryOperator::QuestionPipe
            | BinaryOperator::PGOverlap
            // An operator named in full (`OPERATOR(pg_catalog.~~)`) or of the
            // server's own: whatever it asks, it asks of the value.
            | BinaryOperator::PGCustomBinaryOperator(_)
            | BinaryOperator::Custom(_)
    )
}

/// Values guessed at once past which a list (`email IN ('a', 'b', …)`,
/// `email = ANY(ARRAY[…])`) is a search rather than a check of values the
/// agent already has.
const MAX_CHECKED_VALUES: usize = 10;

/// A cast whose text output spells the value's bytes (PostgreSQL shows
/// `bytea` as hex).
fn binary_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Bytea | DataType::Binary(_) | DataType::Varbinary(_) | DataType::Blob(_)
    )
}

/// A cast whose result keeps a part of the value or shows one in its
/// error: a length (`email::varchar(12)` is the local part), a precision
/// or scale (`card::numeric(20, -4)` rounds away four digits and keeps
/// twelve), single precision floats (seven digits), bit strings, and the
/// JSON types (whose parse errors quote the token they stopped at).
fn reshaping_type(data_type: &DataType) -> bool {
    use sqlparser::ast::ExactNumberInfo;
    match data_type {
        DataType::Character(n)
        | DataType::Char(n)
        | DataType::CharacterVarying(n)
        | DataType::CharVarying(n)
        | DataType::Varchar(n)
        | DataType::Nvarchar(n) => n.is_some(),
        DataType::String(n) => n.is_some(),
        DataType::Numeric(info)
        | DataType::Decimal(info)
        | DataType::Dec(info)
        | DataType::BigNumeric(info)
        | DataType::BigDecimal(info) => *info != ExactNumberInfo::None,
        DataType::Float(_) | DataType::Float4 | DataType::Real => true,
        DataType::Bit(_) | DataType::BitVarying(_) => true,
        DataType::JSON | DataType::JSONB => true,
        // Object-name types parse the text as a qualified name, and their
        // errors quote the parts (`schema "ada@example" does not exist`).
        DataType::Regclass => true,
        DataType::Custom(name, modifiers) => {
            let name = last_name(name);
            !modifiers.is_empty()
                // `"char"` is one byte; MAC addresses print sixteen hex
                // digits (a card's) in pairs.
                || matches!(
                    name.as_str(),
                    "jsonpath"
                        | "bpchar"
                        | "varbit"
                        | "float4"
                        | "char"
                        | "macaddr"
                        | "macaddr8"
                        // 32 bits: the low part of a card, which its
                        // issuer and checksum complete.
                        | "xid"
                        | "cid"
                )
                || (name.starts_with("reg") && name.len() > 3)
        }
        _ => false,
    }
}

/// The functions behind PostgreSQL's comparison, pattern and arithmetic
/// operators, called by name: `text_lt(email, 'm')` asks what `email <
/// 'm'` asks, `texteq(u.email, g.e)` joins as `=` does, `int8pl(card, 1)`
/// adds. Named `<type><operation>` or `<type>_<operation>`, and the
/// B-tree comparators `bt<type>cmp`.
fn operator_function(name: &str) -> bool {
    const TYPES: &[&str] = &[
        "text",
        "bpchar",
        "varchar",
        "name",
        "char",
        "bytea",
        "int2",
        "int4",
        "int8",
        "int24",
        "int42",
        "int28",
        "int82",
        "int48",
        "int84",
        "numeric",
        "float4",
        "float8",
        "float48",
        "float84",
        "cash",
        "uuid",
        "jsonb",
        "inet",
        "network",
        "oid",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "bit",
        "varbit",
        "tsvector",
        "tsquery",
        "array",
        "record",
        "citext",
    ];
    const OPERATIONS: &[&str] = &[
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "cmp",
        "larger",
        "smaller",
        "like",
        "nlike",
        "iclike",
        "icnlike",
        "regexeq",
        "regexne",
        "icregexeq",
        "icregexne",
        "pl",
        "mi",
        "mul",
        "div",
        "mod",
        "um",
        "and",
        "or",
        "xor",
        "shl",
        "shr",
        "not",
        "cat",
        // `int8inc(card)`, `numeric_inc`: one higher, past the Luhn check.
        "inc",
        "dec",
        "sqrt",
        "exp",
        "ln",
        "log",
        "power",
        "div_trunc",
        "pattern_lt",
        "pattern_le",
        "pattern_gt",
        "pattern_ge",
        "starts_with",
    ];
    if let Some(inner) = name.strip_prefix("bt").and_then(|n| n.strip_suffix("cmp")) {
        return !inner.is_empty();
    }
    if matches!(
        name,
        "like" | "notlike" | "ilike" | "notilike" | "like_escape"
    ) {
        return true;
    }
    TYPES.iter().any(|t| {
        name.strip_prefix(t).is_some_and(|rest| {
            let rest = rest.strip_prefix('_').unwrap_or(rest);
            OPERATIONS.contains(&rest)
        })
    })
}

/// Of two compared values, the one that is not a constant, when the other
/// is.
fn checked_against_constant<'a>(a: &'a Expr, b: &'a Expr) -> Option<&'a Expr> {
    match (constant(a), constant(b)) {
        (true, false) => Some(b),
        (false, true) => Some(a),
        _ => None,
    }
}

/// Functions that return a set of rows: in a select list, one call is as
/// many values as it returns (`email = generate_series(1, 1000)::text`,
/// `email = unnest(ARRAY[…])` compare every one of them).
const SET_RETURNING: &[&str] = &[
    "generate_series",
    "generate_subscripts",
    "unnest",
    "regexp_split_to_table",
    "regexp_matches",
    "string_to_table",
    "json_array_elements",
    "json_array_elements_text",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "json_each",
    "json_each_text",
    "jsonb_each",
    "jsonb_each_text",
    "json_object_keys",
    "jsonb_object_keys",
    "json_populate_recordset",
    "jsonb_populate_recordset",
    "json_to_recordset",
    "jsonb_to_recordset",
    "jsonb_path_query",
    "jsonb_path_query_tz",
    "ts_stat",
    "pg_ls_dir",
];

/// Operators that test two values for being the same.
fn equality(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq | BinaryOperator::NotEq | BinaryOperator::Spaceship
    )
}

/// Whether an expression's value is one value fixed by the statement's
/// text and its parameters: it reads no column, runs no subquery, no
/// aggregate or window over rows and no set-returning function.
fn constant(expr: &Expr) -> bool {
    struct Variable;
    impl Visitor for Variable {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::Identifier(_)
                | Expr::CompoundIdentifier(_)
                | Expr::CompoundFieldAccess { .. }
                | Expr::Wildcard(_)
                | Expr::QualifiedWildcard(..)
                | Expr::Subquery(_)
                | Expr::Exists { .. }
                | Expr::InSubquery { .. } => ControlFlow::Break(()),
                Expr::Function(f) if f.over.is_some() || has_wildcard(f) => ControlFlow::Break(()),
                Expr::Function(f) if matches!(f.args, FunctionArguments::Subquery(_)) => {
                    ControlFlow::Break(())
                }
                Expr::Function(f) if SET_RETURNING.contains(&last_name(&f.name).as_str()) => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    sqlparser::ast::Visit::visit(expr, &mut Variable).is_continue()
}

/// A call's plain positional arguments, when it has only those.
fn function_args(f: &Function) -> Option<Vec<&Expr>> {
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

/// The columns a FROM item's joins compare by name: `USING (email)`, and
/// every column of a NATURAL JOIN.
fn joined_columns(table: &sqlparser::ast::TableWithJoins, out: &mut Vec<String>) {
    use sqlparser::ast::{JoinConstraint, JoinOperator};
    nested_joins(&table.relation, out);
    for join in &table.joins {
        nested_joins(&join.relation, out);
        let constraint = match &join.join_operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c)
            | JoinOperator::CrossJoin(c)
            | JoinOperator::Semi(c)
            | JoinOperator::LeftSemi(c)
            | JoinOperator::RightSemi(c)
            | JoinOperator::Anti(c)
            | JoinOperator::LeftAnti(c)
            | JoinOperator::RightAnti(c)
            | JoinOperator::StraightJoin(c) => Some(c),
            _ => None,
        };
        match constraint {
            Some(JoinConstraint::Using(names)) => {
                out.extend(names.iter().map(last_name));
            }
            Some(JoinConstraint::Natural) => out.push(EVERY_COLUMN.to_string()),
            _ => {}
        }
    }
}

fn nested_joins(factor: &TableFactor, out: &mut Vec<String>) {
    if let TableFactor::NestedJoin {
        table_with_joins, ..
    } = factor
    {
        joined_columns(table_with_joins, out);
    }
}

fn argument_count(f: &Function) -> usize {
    match &f.args {
        FunctionArguments::List(list) => list.args.len(),
        _ => 0,
    }
}

/// Whether an aggregate's separator leaves neighbouring values glued: no
/// separator (GROUP_CONCAT's default is a comma, STRING_AGG requires one),
/// or one without any character that is not a letter or digit.
fn glues(f: &Function) -> bool {
    let FunctionArguments::List(list) = &f.args else {
        return false;
    };
    let separator = list.clauses.iter().find_map(|c| match c {
        FunctionArgumentClause::Separator(v) => Some(&v.value),
        _ => None,
    });
    let name = last_name(&f.name);
    let separator = match separator {
        Some(v) => Some(v.clone()),
        None if name == "group_concat" => return false,
        None => list.args.get(1).and_then(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => Some(v.value.clone()),
            _ => None,
        }),
    };
    match separator {
        Some(Value::SingleQuotedString(s)) | Some(Value::DoubleQuotedString(s)) => {
            s.chars().all(char::is_alphanumeric)
        }
        // An expression or parameter may be '' at run time.
        _ => true,
    }
}

fn has_wildcard(f: &Function) -> bool {
    let FunctionArguments::List(list) = &f.args else {
        return false;
    };
    list.args.iter().any(|a| {
        matches!(
            a,
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard)
                | FunctionArg::Unnamed(FunctionArgExpr::QualifiedWildcard(_))
        )
    })
}

fn last_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
    use sqlparser::parser::Parser;

    fn pg(sql: &str) -> Vec<String> {
        transformed_columns(
            &Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap(),
            crate::sql::Dialect::Postgres,
        )
    }

    fn my(sql: &str) -> Vec<String> {
        transformed_columns(
            &Parser::parse_sql(&MySqlDialect {}, sql).unwrap(),
            crate::sql::Dialect::Mysql,
        )
    }

    #[test]
    fn plain_reads_transform_nothing() {
        assert!(pg("SELECT card, email FROM payments WHERE id = 1").is_empty());
        assert!(pg("SELECT count(*), max(card) FROM payments").is_empty());
        assert!(pg("SELECT string_agg(email, ', ') FROM users").is_empty());
        assert!(my("SELECT GROUP_CONCAT(email) FROM users").is_empty());
        assert!(pg("SELECT lower(email) FROM users").is_empty());
    }

    #[test]
    fn encodings_parts_and_arithmetic_name_their_columns() {
        assert_eq!(pg("SELECT reverse(email) FROM users"), ["email"]);
        assert_eq!(
            pg("SELECT encode(p.card::text::bytea, 'base64') FROM payments p"),
            ["card"]
        );
        assert_eq!(
            pg("SELECT left(card, 6), right(\"Card\", 10) FROM payments"),
            ["card"]
        );
        assert_eq!(pg("SELECT card + 1 FROM payments"), ["card"]);
        assert_eq!(pg("SELECT card::text || '0' FROM payments"), ["card"]);
        assert_eq!(
            pg("SELECT substring(ssn from 1 for 3) FROM people"),
            ["ssn"]
        );
        assert_eq!(pg("SELECT card::bytea FROM payments"), ["card"]);
        assert_eq!(pg("SELECT md5(email) FROM users"), ["email"]);
        assert_eq!(
            pg("SELECT translate(email, 'abc', 'xyz') FROM users"),
            ["email"]
        );
        assert_eq!(
            my("SELECT HEX(card), TO_BASE64(email) FROM t"),
            ["card", "email"]
        );
        assert_eq!(my("SELECT CONVERT(email USING utf16) FROM t"), ["email"]);
        assert_eq!(my("SELECT CAST(card AS BINARY) FROM t"), ["card"]);
        assert_eq!(my("SELECT ~card FROM t"), ["card"]);
        assert_eq!(pg("SELECT ~card, |/ card, ||/ card FROM t"), ["card"]);
        for sql in [
            "SELECT int8inc(card) FROM t",
            "SELECT numeric_inc(card) FROM t",
            "SELECT int8dec(card) FROM t",
            "SELECT degrees(card) FROM t",
            "SELECT dsqrt(card) FROM t",
            "SELECT numeric_sqrt(card) FROM t",
            "SELECT hashint8(card) FROM t",
            "SELECT hash_numeric_extended(card, 0) FROM t",
            "SELECT jsonb_hash(to_jsonb(card)) FROM t",
        ] {
            assert_eq!(pg(sql), ["card"], "{sql}");
        }
        // A sign keeps every digit for the detectors.
        assert!(pg("SELECT -card, +card, NOT flag FROM t").is_empty());
    }

    #[test]
    fn aggregates_glue_only_without_a_separator() {
        assert_eq!(pg("SELECT string_agg(email, '') FROM users"), ["email"]);
        assert_eq!(pg("SELECT string_agg(email, $1) FROM users"), ["email"]);
        assert_eq!(
            my("SELECT GROUP_CONCAT(card SEPARATOR '') FROM t"),
            ["card"]
        );
        assert!(my("SELECT GROUP_CONCAT(card SEPARATOR ' | ') FROM t").is_empty());
    }

    #[test]
    fn a_transformed_row_reads_every_column() {
        assert_eq!(pg("SELECT md5(p::text) FROM payments p"), [EVERY_COLUMN]);
        assert_eq!(
            pg("SELECT reverse(payments::text) FROM payments"),
            [EVERY_COLUMN]
        );
        assert_eq!(my("SELECT MD5(CONCAT_WS(',', t.*)) FROM t"), [EVERY_COLUMN]);
    }

    #[test]
    fn a_transformed_alias_is_a_transform_of_what_it_names() {
        assert_eq!(
            pg("SELECT reverse(x) FROM (SELECT email AS x FROM users) s"),
            ["email", "x"]
        );
        assert_eq!(
            pg("WITH s AS (SELECT lower(email) AS y FROM users) SELECT md5(y) FROM s"),
            ["email", "y"]
        );
    }

    #[test]
    fn column_lists_and_set_operation_branches_name_their_sources() {
        // A CTE's column list.
        assert!(
            pg("WITH s(x) AS (SELECT email FROM users) SELECT reverse(x) FROM s")
                .contains(&"email".to_string())
        );
        assert!(
            pg("WITH s(a, x) AS (SELECT id, u.email FROM users u) SELECT md5(x) FROM s")
                .contains(&"email".to_string())
        );
        // A derived table's column list.
        assert!(
            pg("SELECT reverse(x) FROM (SELECT email FROM users) AS s(x)")
                .contains(&"email".to_string())
        );
        // Any branch of a UNION fills the column the first branch names.
        for sql in [
            "SELECT reverse(x) FROM (SELECT 'a' AS x UNION SELECT email FROM users) s",
            "SELECT reverse(x) FROM (SELECT email AS x FROM users UNION ALL SELECT 'a') s",
            "WITH s(x) AS (SELECT 'a' UNION SELECT email FROM users) SELECT reverse(x) FROM s",
            "SELECT reverse(x) FROM (SELECT 'a' AS x EXCEPT (SELECT email FROM users)) s",
        ] {
            assert!(pg(sql).contains(&"email".to_string()), "{sql}");
        }
        assert!(
            my("SELECT HEX(x) FROM (SELECT 1 AS x UNION SELECT card FROM t) s")
                .contains(&"card".to_string())
        );
        // VALUES rows, set-returning functions and renamed tables.
        for sql in [
            "SELECT reverse(x) FROM people p, LATERAL (VALUES (p.email)) AS v(x)",
            "SELECT reverse(x) FROM people, unnest(ARRAY[email]) AS u(x)",
            "SELECT reverse(u::text) FROM people, unnest(ARRAY[email]) u",
            "SELECT md5(x) FROM people, LATERAL regexp_split_to_table(email, '@') AS r(x)",
        ] {
            assert!(
                pg(sql).contains(&"email".to_string()),
                "{sql}: {:?}",
                pg(sql)
            );
        }
        assert!(
            pg("SELECT reverse(e) FROM people AS p(i, n, e)").contains(&EVERY_COLUMN.to_string())
        );
        // Names at other positions are left alone.
        assert!(
            !pg("WITH s(x, y) AS (SELECT email, id FROM users) SELECT reverse(y) FROM s")
                .contains(&"email".to_string())
        );
    }

    #[test]
    fn outputs_name_the_columns_they_read() {
        let sources =
            |sql: &str| output_sources(&Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap());
        assert_eq!(
            sources("SELECT id, email AS e FROM users"),
            [("e".to_string(), vec!["email".to_string()])]
        );
        assert_eq!(
            sources("WITH s(x) AS (SELECT u.email FROM users u) SELECT x AS y FROM s"),
            [("y".to_string(), vec!["email".to_string(), "x".to_string()])]
        );
        assert_eq!(
            sources("SELECT 'a' AS c UNION SELECT card FROM payments"),
            [("c".to_string(), vec!["card".to_string()])]
        );
        assert!(sources("SELECT email, id FROM users").is_empty());
        assert!(sources("UPDATE users SET email = 'x'").is_empty());
    }

    #[test]
    fn transforms_in_subqueries_and_where_clauses_count() {
        assert_eq!(
            pg("SELECT x FROM (SELECT reverse(email) AS x FROM users) s"),
            ["email"]
        );
        // A predicate on a transform answers questions about the value.
        assert_eq!(
            pg("SELECT id FROM payments WHERE left(card, 1) = '4'"),
            ["card"]
        );
    }

    #[test]
    fn patterns_ranges_and_positions_asked_of_a_column_count() {
        for sql in [
            "SELECT count(*) FROM users WHERE email LIKE 'j%'",
            "SELECT id FROM users WHERE email ILIKE 'J%'",
            "SELECT id FROM users WHERE email NOT LIKE 'j%'",
            "SELECT id FROM users WHERE email SIMILAR TO 'j%'",
            "SELECT id FROM users WHERE email ~ '^j'",
            "SELECT id FROM users WHERE email ~* '^J'",
            "SELECT id FROM users WHERE email !~ '^j'",
            "SELECT id FROM users WHERE email ~~ 'j%'",
            "SELECT id FROM users WHERE email ^@ 'j'",
            "SELECT id FROM users WHERE email LIKE ANY (ARRAY['j%', 'k%'])",
            "SELECT id FROM users WHERE email ~ ANY (ARRAY['^j'])",
            "SELECT id FROM users WHERE email > 'j'",
            "SELECT id FROM users WHERE 'j' <= email",
            "SELECT id FROM users WHERE email BETWEEN 'j' AND 'k'",
            "SELECT position('a' IN email) FROM users",
            "SELECT strpos(email, 'a') FROM users",
            "SELECT id FROM users WHERE starts_with(email, 'j')",
            "SELECT greatest(email, 'm') FROM users",
            "SELECT levenshtein(email, 'jane@example.com') FROM users",
            "SELECT CASE WHEN email LIKE 'j%' THEN 1 ELSE 0 END FROM users",
        ] {
            assert_eq!(pg(sql), ["email"], "{sql}");
        }
        for sql in [
            "SELECT id FROM users WHERE email LIKE 'j%'",
            "SELECT id FROM users WHERE email REGEXP '^j'",
            "SELECT id FROM users WHERE email RLIKE '^j'",
            "SELECT id FROM users WHERE email > 'j'",
            "SELECT LOCATE('a', email) FROM users",
            "SELECT INSTR(email, 'a') FROM users",
            "SELECT STRCMP(email, 'j') FROM users",
        ] {
            assert_eq!(my(sql), ["email"], "{sql}");
        }
        // Equality confirms a value the agent already has. A range asks
        // about the column it reads and no other: `id` here, held only if
        // masking has found values in a column of that name.
        assert!(pg("SELECT id FROM users WHERE email = 'jane@example.com'").is_empty());
        assert_eq!(
            pg("SELECT email FROM users WHERE id > 5 ORDER BY id"),
            ["id"]
        );
    }

    #[test]
    fn full_text_containment_custom_operators_and_long_lists_count() {
        let eleven = (0..11)
            .map(|i| format!("'a{i}@example.com'"))
            .collect::<Vec<_>>()
            .join(", ");
        for sql in [
            "SELECT id FROM users WHERE to_tsvector(email) @@ to_tsquery('jane')".to_string(),
            "SELECT id FROM users WHERE ARRAY[email] && ARRAY['a@example.com']".to_string(),
            "SELECT id FROM users WHERE ARRAY[email] <@ ARRAY['a@example.com']".to_string(),
            "SELECT id FROM users WHERE ARRAY['x'] @> ARRAY[email]".to_string(),
            "SELECT id FROM users WHERE to_jsonb(email) ? 'x'".to_string(),
            "SELECT id FROM users WHERE email OPERATOR(pg_catalog.~~) 'j%'".to_string(),
            format!("SELECT id FROM users WHERE email IN ({eleven})"),
            format!("SELECT id FROM users WHERE email NOT IN ({eleven})"),
            format!("SELECT id FROM users WHERE email = ANY(ARRAY[{eleven}])"),
        ] {
            assert_eq!(pg(&sql), ["email"], "{sql}");
        }
        assert_eq!(
            my("SELECT id FROM users WHERE MATCH (email) AGAINST ('jane')"),
            ["email"]
        );
        assert_eq!(
            my(&format!("SELECT id FROM users WHERE email IN ({eleven})")),
            ["email"]
        );
        // A short list checks values the agent already has.
        assert!(
            pg("SELECT id FROM users WHERE email IN ('a@example.com', 'b@example.com')").is_empty()
        );
        assert!(pg("SELECT id FROM users WHERE email = ANY(ARRAY['a@example.com'])").is_empty());
    }

    #[test]
    fn matching_a_column_against_another_source_counts() {
        // Joins, subqueries and set operations check every guess a table,
        // VALUES list or series holds in one statement.
        for sql in [
            "SELECT u.id FROM users u JOIN guesses g ON u.email = g.e",
            "SELECT u.id FROM users u, guesses g WHERE g.e = u.email",
            "SELECT u.id FROM users u JOIN (VALUES ('a'), ('b')) g(e) ON u.email = g.e",
            "SELECT g FROM generate_series(1, 99) g JOIN users u ON u.email = g::text",
            "SELECT id FROM users WHERE email IN (SELECT e FROM guesses)",
            "SELECT id FROM users WHERE email NOT IN (SELECT e FROM guesses)",
            "SELECT id FROM users WHERE email = ANY (SELECT e FROM guesses)",
            "SELECT id FROM users WHERE email <> ALL (SELECT e FROM guesses)",
            "SELECT id FROM users WHERE email = ANY (ARRAY(SELECT e FROM guesses))",
            "SELECT id FROM users WHERE email = ANY ('{a,b,c,d,e,f,g,h,i,j,k}'::text[])",
            "SELECT id FROM users WHERE email = ANY (string_to_array('a,b,c', ','))",
            "SELECT id FROM users WHERE email = ANY ($1)",
            "SELECT id, email = generate_series(1, 100)::text FROM users",
            "SELECT id, email = 'p' || generate_series(1, 100) || '@example.com' FROM users",
            "SELECT id, email = unnest(ARRAY['a', 'b']) FROM users",
            "SELECT id, email IN (jsonb_array_elements_text('[\"a\"]')) FROM users",
            "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM guesses g WHERE g.e = u.email)",
            "SELECT id FROM users WHERE email = (SELECT e FROM guesses LIMIT 1)",
            "SELECT g.e, (SELECT count(*) FROM users u WHERE u.email = g.e) FROM guesses g",
            "SELECT id FROM users u, guesses g WHERE u.email IS NOT DISTINCT FROM g.e",
            "SELECT id FROM users u, guesses g WHERE u.email IN (g.e, g.f)",
            "SELECT id FROM users u, guesses g WHERE nullif(u.email, g.e) IS NULL",
            "SELECT CASE u.email WHEN g.e THEN 1 END FROM users u, guesses g",
            "SELECT id FROM users u JOIN guesses g USING (email)",
            "SELECT e FROM guesses INTERSECT SELECT email FROM users",
            "SELECT e FROM guesses EXCEPT SELECT email FROM users",
            "SELECT count(*) FROM (SELECT e FROM guesses UNION SELECT email FROM users) s",
            "SELECT count(DISTINCT x) FROM (SELECT e AS x FROM guesses UNION ALL SELECT email FROM users) s",
            "WITH s AS (SELECT e FROM guesses UNION ALL SELECT email FROM users) SELECT count(DISTINCT e) FROM s",
        ] {
            assert!(pg(sql).contains(&"email".to_string()), "{sql}");
        }
        assert_eq!(
            pg("SELECT u.id FROM users u NATURAL JOIN guesses g"),
            [EVERY_COLUMN]
        );
        for sql in [
            "SELECT u.id FROM users u JOIN guesses g ON u.email = g.e",
            "SELECT id FROM users WHERE email IN (SELECT e FROM guesses)",
            "SELECT id FROM users u WHERE u.email <=> (SELECT e FROM guesses LIMIT 1)",
            "SELECT e FROM guesses INTERSECT SELECT email FROM users",
        ] {
            assert!(my(sql).contains(&"email".to_string()), "{sql}");
        }
        assert!(pg(
            "SELECT 'g', n, e FROM guesses UNION ALL SELECT 'u', id, email FROM users ORDER BY 3"
        )
        .contains(&"email".to_string()));
        // A statement's own UNION ALL only lists rows, each masked as it
        // leaves; equality with constants and parameters confirms values
        // the agent has.
        assert!(pg("SELECT email FROM users UNION ALL SELECT email FROM staff").is_empty());
        assert!(pg("SELECT id FROM users WHERE email = $1 OR email = lower('A@B.C')").is_empty());
        assert!(pg("SELECT id FROM users WHERE email IS DISTINCT FROM 'a'").is_empty());
        // A join on keys asks about the keys, not about what it returns.
        assert_eq!(
            pg("SELECT u.email FROM users u JOIN orders o ON o.user_id = u.id"),
            ["id", "user_id"]
        );
    }

    #[test]
    fn numbers_spelled_another_way_and_name_parsers_count() {
        for (sql, column) in [
            ("SELECT cash_words(card::int8::money) FROM t", "card"),
            ("SELECT int8send(card::int8) FROM t", "card"),
            (
                "SELECT pg_catalog.numeric_send(card::numeric) FROM t",
                "card",
            ),
            ("SELECT make_interval(secs => card::int8) FROM t", "card"),
            ("SELECT email::regclass FROM t", "email"),
            ("SELECT email::regtype FROM t", "email"),
            ("SELECT CAST(email AS regnamespace) FROM t", "email"),
            ("SELECT parse_ident(email) FROM t", "email"),
        ] {
            assert!(pg(sql).contains(&column.to_string()), "{sql}");
        }
        // Casts to other types show the value whole, to be masked.
        assert!(pg("SELECT email::text, card::int8, email::name FROM t").is_empty());
        for sql in [
            "SELECT INET_NTOA(card) FROM t",
            "SELECT SEC_TO_TIME(card) FROM t",
            "SELECT FROM_UNIXTIME(card) FROM t",
            "SELECT DATE_ADD('2000-01-01', INTERVAL card SECOND) FROM t",
        ] {
            assert_eq!(my(sql), ["card"], "{sql}");
        }
    }

    #[test]
    fn operators_and_containment_called_as_functions_count() {
        for sql in [
            "SELECT id FROM users WHERE text_lt(email, 'm')",
            "SELECT id FROM users u, guesses g WHERE texteq(u.email, g.e)",
            "SELECT id FROM users WHERE textlike(email, 'j%')",
            "SELECT id FROM users WHERE pg_catalog.texticregexeq(email, '^j')",
            "SELECT id FROM users WHERE bttextcmp(email, 'm') < 0",
            "SELECT int8pl(card::int8, 1) FROM users",
            "SELECT id FROM users WHERE like(email, 'j%')",
            "SELECT id FROM users WHERE arraycontains(ARRAY['a', 'b'], ARRAY[email])",
            "SELECT id FROM users WHERE jsonb_exists_any(to_jsonb(email), ARRAY['a'])",
            "SELECT id FROM users WHERE jsonb_path_exists('[\"a\"]', '$[*] ? (@ == $e)', \
             jsonb_build_object('e', email))",
        ] {
            assert!(
                pg(sql).contains(&"email".to_string()) || pg(sql).contains(&"card".to_string()),
                "{sql}"
            );
        }
        for sql in [
            "SELECT id FROM users WHERE JSON_CONTAINS(JSON_ARRAY('a', 'b'), JSON_QUOTE(email))",
            "SELECT id FROM users WHERE JSON_SEARCH(JSON_ARRAY('a'), 'one', email) IS NOT NULL",
            "SELECT id FROM users WHERE JSON_OVERLAPS('[\"a\"]', JSON_ARRAY(email))",
        ] {
            assert_eq!(my(sql), ["email"], "{sql}");
        }
        // Names that only look alike are not operators.
        for name in [
            "upper",
            "date_trunc",
            "textlen",
            "timestamp",
            "interval",
            "btrim",
            "cmp",
            "bool_and",
            "bool_or",
        ] {
            assert!(!operator_function(name), "{name}");
        }
    }

    #[test]
    fn values_checked_one_by_one_add_up_over_the_statement() {
        let ors = (0..11)
            .map(|i| format!("email = 'a{i}@example.com'"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let whens = (0..11)
            .map(|i| format!("WHEN 'a{i}@example.com' THEN {i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let selects = (0..11)
            .map(|i| format!("email = 'a{i}@example.com'"))
            .collect::<Vec<_>>()
            .join(", ");
        for sql in [
            format!("SELECT id FROM users WHERE {ors}"),
            format!("SELECT id, CASE email {whens} END FROM users"),
            format!("SELECT id, {selects} FROM users"),
            "SELECT id FROM users WHERE email IN ('a', 'b', 'c', 'd', 'e', 'f') \
             OR email IN ('g', 'h', 'i', 'j', 'k')"
                .to_string(),
        ] {
            assert_eq!(pg(&sql), ["email"], "{sql}");
        }
        let ten = (0..10)
            .map(|i| format!("email = 'a{i}@example.com'"))
            .collect::<Vec<_>>()
            .join(" OR ");
        assert!(pg(&format!("SELECT id FROM users WHERE {ten}")).is_empty());
        // Split over the statements of one query string, still one count.
        let split = (0..11)
            .map(|i| format!("SELECT id FROM users WHERE email = 'a{i}'"))
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(pg(&split), ["email"]);
    }

    #[test]
    fn values_copied_into_rows_or_variables_count() {
        // Copied, a masked value is read back under another name
        // (`substr(body, 1, 3) FROM notes`) or from no table at all.
        for sql in [
            "INSERT INTO notes SELECT 3, email FROM users",
            "INSERT INTO notes (id, body) SELECT id, lower(email) AS x FROM users",
            "INSERT INTO notes SELECT x FROM (SELECT email AS x FROM users) s",
            "INSERT INTO notes VALUES (3, (SELECT email FROM users LIMIT 1))",
            "UPDATE notes SET body = (SELECT email FROM users WHERE users.id = 1)",
            "UPDATE notes SET body = u.email FROM users u WHERE u.id = notes.id",
            "INSERT INTO notes VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET body = (SELECT email FROM users LIMIT 1)",
            "MERGE INTO notes n USING users u ON n.id = u.id WHEN NOT MATCHED THEN INSERT VALUES (u.id, u.email)",
            "MERGE INTO notes n USING users u ON n.id = u.id WHEN MATCHED THEN UPDATE SET body = u.email",
            "SELECT set_config('x.e', email, false) FROM users",
            "PREPARE p AS INSERT INTO notes SELECT 3, email FROM users",
            "EXPLAIN ANALYZE UPDATE notes SET body = (SELECT email FROM users LIMIT 1)",
            "WITH c AS (INSERT INTO notes SELECT 3, email FROM users RETURNING id) SELECT * FROM c",
        ] {
            assert!(pg(sql).contains(&"email".to_string()), "{sql}: {:?}", pg(sql));
        }
        for sql in [
            "SELECT GET_LOCK(email, 0) FROM users",
            "SELECT LAST_INSERT_ID(email) FROM users",
            "SELECT @e := email FROM users",
            "SET @e = (SELECT email FROM users WHERE id = 1)",
            "SET @a = 1, @e = (SELECT email FROM users LIMIT 1)",
            "INSERT INTO notes SET body = (SELECT email FROM users LIMIT 1)",
            "INSERT INTO notes SELECT 3, email FROM users ON DUPLICATE KEY UPDATE body = VALUES(body)",
            "REPLACE INTO notes SELECT id, email FROM users",
        ] {
            assert!(my(sql).contains(&"email".to_string()), "{sql}: {:?}", my(sql));
        }
        for sql in [
            "SELECT pg_advisory_lock(card::bigint) FROM users",
            "SELECT pg_try_advisory_xact_lock(hashtext('x'), card::int) FROM users",
            "SELECT setval('users_id_seq', card::bigint) FROM users",
            "SELECT lo_create(card::oid) FROM users",
        ] {
            assert_eq!(pg(sql), ["card"], "{sql}");
        }
        // A copied row carries every column.
        assert_eq!(pg("INSERT INTO archive SELECT * FROM users"), ["*"]);
        assert_eq!(pg("INSERT INTO archive SELECT u.* FROM users u"), ["*"]);
        assert_eq!(my("INSERT INTO archive TABLE users"), ["*"]);
        assert_eq!(
            pg("WITH s AS (SELECT email FROM users) INSERT INTO notes SELECT * FROM s"),
            ["*"]
        );
        // `*` of a subquery carries what the subquery's rows carry; of a
        // function or VALUES, what their arguments read.
        assert_eq!(
            pg("INSERT INTO notes SELECT * FROM (SELECT 3, email AS x FROM users) s"),
            ["email"]
        );
        for sql in [
            "INSERT INTO notes SELECT * FROM jsonb_to_record($1) AS x(id int, body text)",
            "INSERT INTO notes SELECT * FROM (VALUES (1, 'x')) v(id, body)",
            "INSERT INTO notes SELECT * FROM unnest($1::int[], $2::text[])",
        ] {
            assert!(pg(sql).is_empty(), "{sql}: {:?}", pg(sql));
        }
        // Constants, parameters and settings' names copy no column; a
        // filter is not a copy.
        for sql in [
            "INSERT INTO notes VALUES (1, 'x'), ($1, $2)",
            "INSERT INTO notes SELECT 1, 'x' FROM users WHERE email = 'a@b.c'",
            "UPDATE notes SET body = 'x' WHERE id = 1",
            "SET search_path = app, public",
            "SET application_name = 'loader'",
        ] {
            assert!(pg(sql).is_empty(), "{sql}: {:?}", pg(sql));
        }
        assert!(my("SET @a = 1, @b = 'x'").is_empty());
    }

    #[test]
    fn truncating_casts_rounding_trims_and_quoting_parsers_count() {
        for sql in [
            "SELECT email::char(12) FROM users",
            "SELECT email::varchar(12) FROM users",
            "SELECT CAST(email AS character varying(12)) FROM users",
            "SELECT email::bpchar(3) FROM users",
            "SELECT card::numeric(20, -4) FROM users",
            "SELECT card::float4 FROM users",
            "SELECT card::real FROM users",
            "SELECT card::bit(64) FROM users",
            "SELECT email::json FROM users",
            "SELECT email::jsonb FROM users",
            "SELECT email::jsonpath FROM users",
            "SELECT round(card::numeric, -4) FROM users",
            "SELECT mod(card::bigint, 100000000) FROM users",
            "SELECT trunc(card::numeric, -4) FROM users",
            "SELECT sqrt(card::float8) FROM users",
            "SELECT rtrim(email, 'moc.elpmaxe@') FROM users",
            "SELECT btrim(email, 'ad') FROM users",
            "SELECT trim(trailing 'moc.elpmaxe@' from email) FROM users",
            "SELECT to_date(email, 'YYYY') FROM users",
            "SELECT to_timestamp(email, 'MON') FROM users",
            "SELECT array_position(ARRAY['a', 'b'], email) FROM users",
            "SELECT email::char FROM users",
            "SELECT CAST(email AS character) FROM users",
            "SELECT email::\"char\" FROM users",
            "SELECT card::macaddr8 FROM users",
            "SELECT card::macaddr FROM users",
            "SELECT card::text::xid FROM users",
            "SELECT card::text::cid FROM users",
        ] {
            let named: Vec<&str> = ["card", "email"]
                .into_iter()
                .filter(|c| sql.contains(c))
                .collect();
            assert_eq!(pg(sql), named, "{sql}");
        }
        for sql in [
            "SELECT CAST(email AS CHAR(12)) FROM users",
            "SELECT CONVERT(email, CHAR(12)) FROM users",
            "SELECT CAST(card AS DECIMAL(20, 0)) FROM users",
            "SELECT CAST(card AS FLOAT) FROM users",
            "SELECT TRUNCATE(card, -4) FROM users",
            "SELECT TRIM(TRAILING '.com' FROM email) FROM users",
        ] {
            assert!(!my(sql).is_empty(), "{sql}");
        }
        // Whitespace trims, full-precision and unbounded text casts keep
        // the value whole for the detectors.
        assert!(pg("SELECT trim(email), rtrim(email), email::text, email::varchar, card::float8, card::numeric FROM users").is_empty());
        // MySQL's CHAR without a length is the whole string.
        assert!(my("SELECT CAST(email AS CHAR), CONVERT(email, CHAR) FROM users").is_empty());
    }

    #[test]
    fn the_tables_read_are_named_as_the_server_would_resolve_them() {
        use super::super::Dialect;
        let read = |sql: &str, dialect: Dialect| {
            let parsed = match dialect {
                Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
                Dialect::Mysql => Parser::parse_sql(&MySqlDialect {}, sql),
            };
            relations_read(&parsed.unwrap(), dialect)
        };
        assert_eq!(
            read(
                "WITH s AS (SELECT email FROM People) SELECT reverse(email) FROM s JOIN app.\"Odd\"\"Name\" o ON true",
                Dialect::Postgres
            ),
            ["\"app\".\"Odd\"\"Name\"", "\"people\""]
        );
        assert_eq!(
            read(
                "SELECT reverse(email) FROM shop.`we``ird` JOIN Users u ON true",
                Dialect::Mysql
            ),
            ["`Users`", "`shop`.`we``ird`"]
        );
    }
}
