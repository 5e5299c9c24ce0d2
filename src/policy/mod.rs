//! The policy: which statements run, which wait for approval, which are
//! refused — decided from their [classification](crate::sql) and who sends
//! them.
//!
//! The policy owns the rule files and the evaluation of a request against
//! them. It never looks at SQL text (that is the classifier's job) and never
//! performs an action: it returns a [`Decision`] and the gate carries it out.
//!
//! # Files
//!
//! Rules live in `<dir>/*.toml`. Files are read in file-name order (byte
//! order: `10-team.toml` comes before `9-x.toml`, so use two-digit prefixes),
//! and rules in the order they appear in each file. Every regular file whose
//! name ends in `.toml` is read; a file that cannot be read or parsed stops
//! the load. When the folder does not exist the gateway uses
//! [`Policy::builtin_default`], a copy of `policies/default.toml`.
//!
//! ```toml
//! [[rule]]
//! name = "reporting-reads"              # required, unique across all files
//! classes = ["read", "session"]         # optional; absent = any class
//! identities = ["reporting-*"]          # optional, globs on the identity name
//! roles = ["agent"]                     # optional: agent | approver | auditor | admin
//! databases = ["prod*"]                 # optional, globs on the database name
//! objects = ["reporting.*"]             # optional, globs on tables, views, …
//! functions = ["pg_sleep"]              # optional, globs on function names
//! transforms = "masked-columns"         # optional, hold/deny only: the statement reads
//!                                       # a column masking has flagged (or "any-column")
//!                                       # through a reversible transform
//! action = "allow"                      # required: allow | hold | deny
//! # hold only:
//! group = "dba"                         # approver group (default "dba")
//! quorum = 1                            # approvals needed (default 1, at least 1)
//! expiry = "1h"                         # "90s", "30m", "1h", "2d" (default "1h")
//! mode = "wait"                         # wait | defer (default wait)
//! # deny only, required:
//! reason = "shown to the agent"
//! ```
//!
//! One table (in any file of the folder, at most once) tells the classifier
//! what it cannot see for itself:
//!
//! ```toml
//! [classify]
//! # A call of a function that is not a built-in of the server (or is
//! # qualified with a schema other than pg_catalog) counts as this class:
//! # "unknown" (default: held by the default policy), "read" or "write".
//! user_functions = "unknown"
//! ```
//!
//! A key given as an empty list (`objects = []`) is refused: it would match
//! nothing. Keys of another action (`quorum` on an allow rule, `reason` on a
//! hold rule) are refused too: they are usually left over from a rule whose
//! action was changed.
//!
//! # Globs
//!
//! `*` matches any run of characters (dots included), `?` exactly one;
//! there is no escape. Every comparison ignores case. For `objects` and
//! `functions`, a pattern without a dot also matches a qualified name by
//! its last part: `users` matches `users`, `public.users` and
//! `db.public.users`; `pg_sleep` matches `pg_catalog.pg_sleep`. A pattern
//! with a dot matches only names written with a qualifier: `hr.*` matches
//! `hr.salaries` but not a bare `salaries`, because the schema a bare name
//! resolves to depends on the server's search path. To catch a table
//! however it is written, list both (`["hr.*", "salaries"]`).
//!
//! # Evaluation (the contract)
//!
//! 1. A query with no statements is allowed without a rule.
//! 2. Each class of each statement is decided on its own: by the *first*
//!    rule (files in order, rules in order) that
//!    * lists that class in `classes`, or has no `classes`;
//!    * lists a glob matching the identity in `identities`, or has none;
//!    * lists the identity's role in `roles`, or has none;
//!    * lists a glob matching the database in `databases`, or has none;
//!    * satisfies its `objects` and `functions` conditions, read cautiously
//!      for its action:
//!      - an **allow** rule needs *every* object (function) of the
//!        statement to match one of its globs, and the statement to have at
//!        least one — an allow on `reporting.*` never allows a join with
//!        `hr.salaries`, nor a statement that names no table;
//!      - a **hold** or **deny** rule needs *any* object (function) to
//!        match — a deny on `hr.*` catches every statement that touches it.
//!
//!    A statement without classes is decided as `unknown`.
//! 3. When no rule decides a class, that class is denied with the reason
//!    "no policy rule matches class X" (fail closed).
//! 4. A statement's verdict is the strictest of its classes' verdicts, the
//!    query's the strictest of its statements' (deny > hold > allow). Among
//!    equally strict verdicts the first found wins, in statement order and
//!    then class order (read, write, export, ddl, privilege, admin,
//!    session, unknown). [`Decision`] names that rule, statement and class,
//!    and its `trace` records the decision of every class of every
//!    statement.

mod explain;
mod glob;
mod masking;
mod rule;
#[cfg(test)]
mod tests;

pub use explain::explain;
pub use glob::Glob;
pub use masking::MaskingPolicy;
pub use rule::{format_expiry, parse_expiry, Rule, DEFAULT_EXPIRY, DEFAULT_GROUP};

use crate::identity::Role;
use crate::sql::{Classes, Classification, StatementClass, UserFunctions};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The rule name in a [`Decision`] that no rule made.
pub const NO_RULE: &str = "(no rule)";

/// The policy shipped with Airlock, used when the policy folder is absent.
const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");

/// A loaded, validated set of rules.
#[derive(Clone, Debug)]
pub struct Policy {
    rules: Vec<Rule>,
    masking: MaskingPolicy,
    /// `[classify] user_functions`: what a call of a function that is not a
    /// built-in counts as.
    user_functions: UserFunctions,
    /// `(file name, text)` in load order.
    sources: Vec<(String, String)>,
    digest: String,
}

/// What the policy is asked about: one query from one session.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub identity: &'a str,
    pub role: Role,
    pub database: &'a str,
    pub classification: &'a Classification,
    /// Columns masking has found sensitive values in, for rules with a
    /// `transforms` condition.
    pub masked_columns: MaskedColumns<'a>,
}

/// What is known of the columns masking has found sensitive values in.
#[derive(Clone, Copy, Debug)]
pub enum MaskedColumns<'a> {
    /// The names the gateway has learned (lower-case).
    Learned(&'a std::collections::HashSet<String>),
    /// Not known (`airlock policy check`): any column may be one, so a
    /// `transforms = "masked-columns"` rule matches every transform.
    Unknown,
}

impl MaskedColumns<'_> {
    /// Whether a column of this name (lower-case, or
    /// [`crate::sql::transforms::EVERY_COLUMN`]) may hold sensitive values.
    pub fn flagged(&self, column: &str) -> bool {
        match self {
            MaskedColumns::Unknown => true,
            MaskedColumns::Learned(names) => {
                if column == crate::sql::transforms::EVERY_COLUMN {
                    !names.is_empty()
                } else {
                    names.contains(column)
                }
            }
        }
    }
}

/// A rule's `transforms` condition: which reversible transforms
/// (`reverse(email)`, `card + 1`; see [`crate::sql::transforms`]) make the
/// rule apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transforms {
    /// A transform of a column masking has found sensitive values in.
    MaskedColumns,
    /// A transform of any column.
    AnyColumn,
}

impl Transforms {
    pub const NAMES: &'static str = "\"masked-columns\", \"any-column\"";

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "masked-columns" => Some(Self::MaskedColumns),
            "any-column" => Some(Self::AnyColumn),
            _ => None,
        }
    }

    /// Whether a statement transforming `columns` meets the condition.
    pub fn matches(self, columns: &[String], masked: MaskedColumns) -> bool {
        match self {
            Transforms::AnyColumn => !columns.is_empty(),
            Transforms::MaskedColumns => columns.iter().any(|c| masked.flagged(c)),
        }
    }
}

/// The verdict on a whole query, and how it was reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The name of the rule that decided, or [`NO_RULE`].
    pub rule: String,
    /// The statement (index into the classification) that decided; `None`
    /// for a query without statements.
    pub statement: Option<usize>,
    /// The class of that statement that decided.
    pub class: Option<StatementClass>,
    /// Every class of every statement, in evaluation order.
    pub trace: Vec<ClassDecision>,
}

impl Decision {
    /// A refusal that is Airlock's own, not any rule's: no policy can
    /// allow what it refuses (e.g. a switch to a client encoding Airlock
    /// cannot read, see [`crate::sql::encoding`]).
    pub fn refused_by_airlock(rule: &str, reason: String) -> Self {
        Decision {
            action: Action::Deny { reason },
            rule: rule.to_string(),
            statement: None,
            class: None,
            trace: Vec::new(),
        }
    }
}

/// How one class of one statement was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassDecision {
    pub statement: usize,
    pub class: StatementClass,
    /// The rule that matched, or [`NO_RULE`].
    pub rule: String,
    pub action: Action,
}

/// What happens to a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// Wait for approval.
    Hold(HoldSpec),
    /// Refuse, telling the agent why.
    Deny {
        reason: String,
    },
}

impl Action {
    /// `allow`, `hold` or `deny`: the word used in policy files.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Hold(_) => "hold",
            Action::Deny { .. } => "deny",
        }
    }

    /// deny > hold > allow.
    fn strictness(&self) -> u8 {
        match self {
            Action::Allow => 0,
            Action::Hold(_) => 1,
            Action::Deny { .. } => 2,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow => f.write_str("allow"),
            Action::Hold(h) => write!(f, "hold: {h}"),
            Action::Deny { reason } => write!(f, "deny: {reason}"),
        }
    }
}

/// Who must approve a held query, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldSpec {
    /// The approver group.
    pub group: String,
    /// Approvals needed (at least 1).
    pub quorum: u32,
    /// How long the hold waits before it is refused.
    pub expiry: Duration,
    pub mode: HoldMode,
    /// `impact = "dry-run"`: a write that qualifies is run in a transaction
    /// that is always rolled back, and the approvers see the exact count of
    /// rows it would change (see [`crate::sql::dry_run_refusal`]).
    pub dry_run: bool,
}

impl fmt::Display for HoldSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.quorum == 1 { "" } else { "s" };
        write!(
            f,
            "{} approval{plural} from group {}, expires after {}, mode {}",
            self.quorum,
            self.group,
            format_expiry(self.expiry),
            self.mode.name()
        )
    }
}

/// What the agent's session does while a query is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldMode {
    /// The statement blocks until approved, refused or expired.
    Wait,
    /// The statement returns at once with a hold id to check on later.
    Defer,
}

impl HoldMode {
    pub fn name(self) -> &'static str {
        match self {
            HoldMode::Wait => "wait",
            HoldMode::Defer => "defer",
        }
    }
}

/// A problem with the policy files: the file, the line and rule when known,
/// and what is wrong.
///
/// Displayed as `policies/10-team.toml: line 7: rule "x": unknown class
/// "reed" (expected one of read, write, …)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The file (or folder) the problem is in.
    pub file: String,
    /// 1-based.
    pub line: Option<usize>,
    /// The rule's name, when the problem is inside a named rule.
    pub rule: Option<String>,
    pub problem: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule \"{rule}\": ")?;
        }
        f.write_str(&self.problem)
    }
}

impl std::error::Error for PolicyError {}

impl Policy {
    /// Loads every `*.toml` file of `dir`. The folder must exist and hold at
    /// least one such file. Errors name files by their path under `dir`.
    pub fn load_dir(dir: &Path) -> Result<Policy, PolicyError> {
        let dir_error = |problem: String| PolicyError {
            file: dir.display().to_string(),
            line: None,
            rule: None,
            problem,
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| dir_error(format!("cannot read the policy folder: {e}")))?;
        let mut sources = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| dir_error(format!("cannot read the policy folder: {e}")))?;
            let path = entry.path();
            let name = entry.file_name();
            if !name.to_string_lossy().ends_with(".toml") || !path.is_file() {
                continue;
            }
            // Skipping a policy file could skip a deny rule: refuse instead.
            let name = name.into_string().map_err(|_| PolicyError {
                file: path.display().to_string(),
                line: None,
                rule: None,
                problem: "the file name is not UTF-8; rename it".into(),
            })?;
            let text = std::fs::read_to_string(&path).map_err(|e| PolicyError {
                file: path.display().to_string(),
                line: None,
                rule: None,
                problem: format!("cannot read: {e}"),
            })?;
            sources.push((name, text));
        }
        if sources.is_empty() {
            return Err(dir_error("no *.toml policy files in this folder".into()));
        }
        Self::from_sources(&sources).map_err(|mut e| {
            e.file = dir.join(&e.file).display().to_string();
            e
        })
    }

    /// Builds a policy from `(file name, text)` pairs, ordered by file name
    /// as [`load_dir`](Self::load_dir) does. Errors name files as given.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Policy, PolicyError> {
        if sources.is_empty() {
            return Err(PolicyError {
                file: "policy".into(),
                line: None,
                rule: None,
                problem: "no policy files".into(),
            });
        }
        let mut sources = sources.to_vec();
        sources.sort_by(|a, b| a.0.cmp(&b.0));

        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut masking: Option<(MaskingPolicy, String, usize)> = None;
        let mut user_functions: Option<(UserFunctions, String, usize)> = None;
        for (file, text) in &sources {
            let parsed = rule::parse_file(file, text)?;
            if let Some((u, line)) = parsed.user_functions {
                if let Some((_, first_file, first_line)) = &user_functions {
                    return Err(PolicyError {
                        file: file.clone(),
                        line: Some(line),
                        rule: None,
                        problem: format!(
                            "[classify] user_functions is already set in {first_file} line \
                             {first_line}; a policy sets it once"
                        ),
                    });
                }
                user_functions = Some((u, file.clone(), line));
            }
            if let Some((m, line)) = parsed.masking {
                if let Some((_, first_file, first_line)) = &masking {
                    return Err(PolicyError {
                        file: file.clone(),
                        line: Some(line),
                        rule: None,
                        problem: format!(
                            "[masking] is already set in {first_file} line {first_line}; \
                             a policy has one [masking] table"
                        ),
                    });
                }
                masking = Some((m, file.clone(), line));
            }
            for rule in parsed.rules {
                if let Some(&first) = seen.get(&rule.name) {
                    let first = &rules[first];
                    return Err(PolicyError {
                        file: file.clone(),
                        line: Some(rule.line),
                        rule: Some(rule.name.clone()),
                        problem: format!(
                            "a rule with this name is already defined at {} line {}; \
                             rule names must be unique across files",
                            first.file, first.line
                        ),
                    });
                }
                seen.insert(rule.name.clone(), rules.len());
                rules.push(rule);
            }
        }

        let digest = digest_of(&sources);
        Ok(Policy {
            rules,
            masking: masking.map(|(m, _, _)| m).unwrap_or_default(),
            user_functions: user_functions.map(|(u, _, _)| u).unwrap_or_default(),
            sources,
            digest,
        })
    }

    /// The policy in `policies/default.toml`, built into the binary.
    pub fn builtin_default() -> Policy {
        // The embedded file is checked by the tests; failing here is a bug in
        // the build, not a problem a user can cause.
        Self::from_sources(&[("default.toml".to_string(), DEFAULT_POLICY.to_string())])
            .expect("the built-in policies/default.toml is valid")
    }

    /// Hex SHA-256 over the files that make up the policy, for the audit
    /// log: each `(file name, text)` pair in load order, each part
    /// preceded by its length in bytes as a big-endian u64. Depends only on
    /// file names and contents, not on the folder they are in.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// How result rows are masked.
    pub fn masking(&self) -> &MaskingPolicy {
        &self.masking
    }

    /// What the classifier counts a call of a user-defined function as
    /// (`[classify] user_functions`, `unknown` when no file sets it).
    pub fn user_functions(&self) -> UserFunctions {
        self.user_functions
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The `(file name, text)` pairs the policy was built from, in load
    /// order.
    pub fn sources(&self) -> &[(String, String)] {
        &self.sources
    }

    /// Decides `request`, following the contract in the module docs.
    pub fn evaluate(&self, request: &Request) -> Decision {
        let mut decision = Decision {
            action: Action::Allow,
            rule: NO_RULE.to_string(),
            statement: None,
            class: None,
            trace: Vec::new(),
        };
        for (index, statement) in request.classification.statements.iter().enumerate() {
            // A statement nobody could classify must not pass unexamined.
            let classes = if statement.classes.is_empty() {
                Classes::of(&[StatementClass::Unknown])
            } else {
                statement.classes
            };
            for class in classes.iter() {
                let (rule, action) = match self
                    .rules
                    .iter()
                    .find(|r| r.matches(class, request, statement))
                {
                    Some(r) => (r.name.clone(), r.action.clone()),
                    None => (
                        NO_RULE.to_string(),
                        Action::Deny {
                            reason: format!("no policy rule matches class {class}"),
                        },
                    ),
                };
                // Strictly stricter replaces: among equals the first stays.
                if decision.statement.is_none()
                    || action.strictness() > decision.action.strictness()
                {
                    decision.action = action.clone();
                    decision.rule = rule.clone();
                    decision.statement = Some(index);
                    decision.class = Some(class);
                }
                decision.trace.push(ClassDecision {
                    statement: index,
                    class,
                    rule,
                    action,
                });
            }
        }
        decision
    }
}

fn digest_of(sources: &[(String, String)]) -> String {
    let mut hash = Sha256::new();
    for (name, text) in sources {
        for part in [name.as_bytes(), text.as_bytes()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
    }
    crate::hex::encode(&hash.finalize())
}
