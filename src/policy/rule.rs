//! One policy file's text → validated [`Rule`]s.
//!
//! Parsing is two steps: serde reads the file into [`RawRule`]s, keeping
//! every value's position ([`toml::Spanned`]); validation then turns names
//! into types (classes, roles, actions) and reports each problem at the
//! line of the value that causes it.

use super::glob::Glob;
use super::{Action, HoldMode, HoldSpec, PolicyError, Request, Transforms};
use crate::identity::Role;
use crate::sql::{Classes, Statement, StatementClass, UserFunctions};
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// The approver group of a `hold` rule that names none.
pub const DEFAULT_GROUP: &str = "dba";
/// How long a hold waits for approval when the rule does not say.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(3600);

/// One rule of the policy, as loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// The file the rule came from (its name, without the directory).
    pub file: String,
    /// The line of the rule's `[[rule]]` header.
    pub line: usize,
    /// `None`: any class.
    pub classes: Option<Classes>,
    /// `None`: any identity.
    pub identities: Option<Vec<Glob>>,
    /// `None`: any role.
    pub roles: Option<Vec<Role>>,
    /// `None`: any database.
    pub databases: Option<Vec<Glob>>,
    /// `None`: objects are not looked at.
    pub objects: Option<Vec<Glob>>,
    /// `None`: functions are not looked at.
    pub functions: Option<Vec<Glob>>,
    /// `None`: reversible transforms are not looked at.
    pub transforms: Option<Transforms>,
    pub action: Action,
}

impl Rule {
    /// Whether this rule decides `class` of `statement` for `request`: see
    /// the contract in the [module docs](super).
    pub fn matches(&self, class: StatementClass, request: &Request, statement: &Statement) -> bool {
        if self.classes.is_some_and(|c| !c.contains(class)) {
            return false;
        }
        if let Some(globs) = &self.identities {
            if !globs.iter().any(|g| g.matches(request.identity)) {
                return false;
            }
        }
        if let Some(roles) = &self.roles {
            if !roles.contains(&request.role) {
                return false;
            }
        }
        if let Some(globs) = &self.databases {
            if !globs.iter().any(|g| g.matches(request.database)) {
                return false;
            }
        }
        let allow = matches!(self.action, Action::Allow);
        if let Some(globs) = &self.objects {
            if !names_match(globs, &statement.objects, allow) {
                return false;
            }
        }
        if let Some(globs) = &self.functions {
            if !names_match(globs, &statement.functions, allow) {
                return false;
            }
        }
        if let Some(transforms) = self.transforms {
            if !transforms.matches(&statement.transformed, request.masked_columns) {
                return false;
            }
        }
        true
    }
}

/// The cautious reading of an object (function) list for each action: an
/// `allow` must cover *every* name (and there must be one: allowing "only
/// reporting tables" says nothing about a statement that names none); a
/// `hold` or `deny` needs *one* name to catch the statement.
fn names_match(globs: &[Glob], names: &[String], allow: bool) -> bool {
    let covered = |name: &String| globs.iter().any(|g| g.matches_qualified(name));
    if allow {
        !names.is_empty() && names.iter().all(covered)
    } else {
        names.iter().any(covered)
    }
}

// ---- the file as written -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
    masking: Option<Spanned<super::masking::RawMasking>>,
    classify: Option<Spanned<RawClassify>>,
}

/// `[classify]`: how the classifier treats what it cannot see.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassify {
    user_functions: Option<Spanned<String>>,
}

type List = Option<Spanned<Vec<Spanned<String>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<Spanned<String>>,
    classes: List,
    identities: List,
    roles: List,
    databases: List,
    objects: List,
    functions: List,
    transforms: Option<Spanned<String>>,
    action: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    quorum: Option<Spanned<i64>>,
    expiry: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    impact: Option<Spanned<String>>,
    reason: Option<Spanned<String>>,
}

/// The same file read leniently, only to name the rule an error is in when
/// the strict reading fails.
#[derive(Deserialize)]
struct LooseFile {
    #[serde(default)]
    rule: Vec<Spanned<LooseRule>>,
}

#[derive(Deserialize)]
struct LooseRule {
    name: Option<toml::Value>,
}

/// The 1-based line of byte offset `at` in `text`.
pub(super) fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// What one policy file holds.
pub(super) struct ParsedFile {
    pub rules: Vec<Rule>,
    /// The `[masking]` table and the line it starts on.
    pub masking: Option<(super::masking::MaskingPolicy, usize)>,
    /// The `[classify] user_functions` setting and the line of the table.
    pub user_functions: Option<(UserFunctions, usize)>,
}

/// Reads the rules of one file. `file` is the name used in errors and kept
/// in each [`Rule`].
pub(super) fn parse_file(file: &str, text: &str) -> Result<ParsedFile, PolicyError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        // toml's messages may span lines ("invalid string\nexpected …").
        let mut problem = e.message().trim().replace('\n', "; ");
        if single_rule_table(text) {
            problem = "write each rule as [[rule]] (double brackets), not [rule]".into();
        }
        let rule = e.span().and_then(|s| rule_around(text, s.start));
        PolicyError {
            file: file.to_string(),
            line,
            rule,
            problem,
        }
    })?;
    let masking = raw
        .masking
        .map(|m| super::masking::validate(file, text, m))
        .transpose()?;
    let user_functions = match raw.classify {
        None => None,
        Some(table) => {
            let line = line_of(text, table.span().start);
            match table.into_inner().user_functions {
                None => None,
                Some(value) => match UserFunctions::from_name(value.get_ref()) {
                    Some(u) => Some((u, line)),
                    None => {
                        return Err(PolicyError {
                            file: file.to_string(),
                            line: Some(line_of(text, value.span().start)),
                            rule: None,
                            problem: format!(
                                "[classify]: unknown user_functions \"{}\" (expected one of {})",
                                value.get_ref(),
                                UserFunctions::NAMES
                            ),
                        })
                    }
                },
            }
        }
    };
    let rules = raw
        .rule
        .into_iter()
        .map(|r| {
            let line = line_of(text, r.span().start);
            Validator {
                file,
                text,
                line,
                name: None,
            }
            .rule(r.into_inner())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedFile {
        rules,
        masking,
        user_functions,
    })
}

/// Whether the file says `[rule]` where it means `[[rule]]`, the most
/// common slip, which serde reports only as "expected a sequence".
fn single_rule_table(text: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|t| matches!(t.get("rule"), Some(toml::Value::Table(_))))
}

/// The name of the rule whose table contains byte offset `at`, if the file
/// can be read that far.
fn rule_around(text: &str, at: usize) -> Option<String> {
    let loose: LooseFile = toml::from_str(text).ok()?;
    loose
        .rule
        .into_iter()
        .find(|r| r.span().contains(&at))
        .and_then(|r| match r.into_inner().name {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Some(s),
            _ => None,
        })
}

/// Validation of one rule, carrying what every error message names.
struct Validator<'a> {
    file: &'a str,
    text: &'a str,
    /// The rule's header line: where problems without a value of their own
    /// (a missing key) are reported.
    line: usize,
    name: Option<String>,
}

impl Validator<'_> {
    fn err(&self, at: Option<usize>, problem: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.file.to_string(),
            line: Some(at.map_or(self.line, |at| line_of(self.text, at))),
            rule: self.name.clone(),
            problem: problem.into(),
        }
    }

    fn rule(mut self, mut raw: RawRule) -> Result<Rule, PolicyError> {
        let name = match &raw.name {
            None => return Err(self.err(None, "rule has no name: add name = \"…\"")),
            Some(n) if n.get_ref().trim().is_empty() => {
                return Err(self.err(Some(n.span().start), "rule name is empty"))
            }
            Some(n) => n.get_ref().clone(),
        };
        self.name = Some(name.clone());

        let class = Kind::Name {
            what: "class",
            expected: CLASSES,
        };
        let classes = self
            .list(
                "classes",
                raw.classes.take(),
                class,
                StatementClass::from_name,
            )?
            .map(|v| Classes::of(&v));
        let role_kind = Kind::Name {
            what: "role",
            expected: ROLES,
        };
        let roles = self.list("roles", raw.roles.take(), role_kind, role)?;
        let identities = self.list(
            "identities",
            raw.identities.take(),
            Kind::Pattern,
            Glob::new,
        )?;
        let databases = self.list("databases", raw.databases.take(), Kind::Pattern, Glob::new)?;
        let objects = self.list("objects", raw.objects.take(), Kind::Pattern, Glob::new)?;
        let functions = self.list("functions", raw.functions.take(), Kind::Pattern, Glob::new)?;

        let transforms = match &raw.transforms {
            None => None,
            Some(t) => Some(Transforms::from_name(t.get_ref()).ok_or_else(|| {
                self.err(
                    Some(t.span().start),
                    format!(
                        "unknown transforms \"{}\" (expected one of {})",
                        t.get_ref(),
                        Transforms::NAMES
                    ),
                )
            })?),
        };

        let Some(action) = &raw.action else {
            return Err(self.err(
                None,
                "rule has no action (expected one of allow, hold, deny)",
            ));
        };
        let action = match action.get_ref().as_str() {
            "allow" => {
                self.only_for("allow", "hold", &raw)?;
                self.only_for("allow", "deny", &raw)?;
                // An allow that applies only when a masked column is
                // transformed would let exactly those statements through.
                if let Some(t) = &raw.transforms {
                    return Err(self.err(
                        Some(t.span().start),
                        "transforms applies only to hold and deny rules, and this rule is allow",
                    ));
                }
                Action::Allow
            }
            "deny" => {
                self.only_for("deny", "hold", &raw)?;
                let reason = match &raw.reason {
                    None => {
                        return Err(self.err(
                            Some(action.span().start),
                            "a deny rule needs a reason (it is shown to the agent)",
                        ))
                    }
                    Some(r) if r.get_ref().trim().is_empty() => {
                        return Err(self.err(Some(r.span().start), "reason is empty"))
                    }
                    Some(r) => r.get_ref().clone(),
                };
                Action::Deny { reason }
            }
            "hold" => {
                self.only_for("hold", "deny", &raw)?;
                Action::Hold(self.hold(&raw)?)
            }
            other => {
                return Err(self.err(
                    Some(action.span().start),
                    format!("unknown action \"{other}\" (expected one of allow, hold, deny)"),
                ))
            }
        };

        Ok(Rule {
            name,
            file: self.file.to_string(),
            line: self.line,
            classes,
            identities,
            roles,
            databases,
            objects,
            functions,
            transforms,
            action,
        })
    }

    /// Refuses keys that belong to another action: a `quorum` on an allow
    /// rule is a mistake (often a rule whose action was changed), not
    /// something to ignore.
    fn only_for(&self, action: &str, owner: &str, raw: &RawRule) -> Result<(), PolicyError> {
        let keys: &[(&str, Option<usize>)] = match owner {
            "hold" => &[
                ("group", raw.group.as_ref().map(|s| s.span().start)),
                ("quorum", raw.quorum.as_ref().map(|s| s.span().start)),
                ("expiry", raw.expiry.as_ref().map(|s| s.span().start)),
                ("mode", raw.mode.as_ref().map(|s| s.span().start)),
                ("impact", raw.impact.as_ref().map(|s| s.span().start)),
            ],
            _ => &[("reason", raw.reason.as_ref().map(|s| s.span().start))],
        };
        match keys.iter().find(|(_, at)| at.is_some()) {
            Some((key, at)) => Err(self.err(
                *at,
                format!("{key} applies only to {owner} rules, and this rule is {action}"),
            )),
            None => Ok(()),
        }
    }

    fn hold(&self, raw: &RawRule) -> Result<HoldSpec, PolicyError> {
        let group = match &raw.group {
            None => DEFAULT_GROUP.to_string(),
            Some(g) if g.get_ref().trim().is_empty() => {
                return Err(self.err(Some(g.span().start), "group is empty"))
            }
            Some(g) => g.get_ref().clone(),
        };
        let quorum = match &raw.quorum {
            None => 1,
            Some(q) => {
                let at = Some(q.span().start);
                match *q.get_ref() {
                    n if n < 1 => return Err(self.err(at, "quorum must be at least 1")),
                    n => u32::try_from(n)
                        .map_err(|_| self.err(at, format!("quorum {n} is too large")))?,
                }
            }
        };
        let expiry = match &raw.expiry {
            None => DEFAULT_EXPIRY,
            Some(e) => parse_expiry(e.get_ref()).ok_or_else(|| {
                self.err(
                    Some(e.span().start),
                    format!(
                        "bad expiry \"{}\" (expected a positive number and a unit s, m, h or d, \
                         such as \"90s\", \"30m\", \"1h\", \"2d\")",
                        e.get_ref()
                    ),
                )
            })?,
        };
        let mode = match raw.mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "wait")) => HoldMode::Wait,
            Some((_, "defer")) => HoldMode::Defer,
            Some((m, other)) => {
                return Err(self.err(
                    Some(m.span().start),
                    format!("unknown mode \"{other}\" (expected one of wait, defer)"),
                ))
            }
        };
        let dry_run = match raw.impact.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "estimate")) => false,
            Some((_, "dry-run")) => true,
            Some((m, other)) => {
                return Err(self.err(
                    Some(m.span().start),
                    format!("unknown impact \"{other}\" (expected estimate or dry-run)"),
                ))
            }
        };
        Ok(HoldSpec {
            group,
            quorum,
            expiry,
            mode,
            dry_run,
        })
    }

    /// A list of patterns or names, each turned into a `T` by `parse`.
    fn list<T>(
        &self,
        key: &str,
        raw: List,
        kind: Kind,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<Vec<T>>, PolicyError> {
        let Some(list) = raw else {
            return Ok(None);
        };
        if list.get_ref().is_empty() {
            return Err(self.err(
                Some(list.span().start),
                format!(
                    "{key} is an empty list, which matches nothing; remove the key to match any"
                ),
            ));
        }
        let mut out = Vec::with_capacity(list.get_ref().len());
        for item in list.into_inner() {
            let at = Some(item.span().start);
            match parse(item.get_ref()) {
                Some(v) => out.push(v),
                None => {
                    let problem = match kind {
                        Kind::Pattern => format!("empty pattern in {key}"),
                        Kind::Name { what, expected } => format!(
                            "unknown {what} \"{}\" (expected one of {expected})",
                            item.get_ref()
                        ),
                    };
                    return Err(self.err(at, problem));
                }
            }
        }
        Ok(Some(out))
    }
}

/// What a list holds, for its error messages.
#[derive(Clone, Copy)]
enum Kind {
    Pattern,
    Name {
        what: &'static str,
        expected: &'static str,
    },
}

const CLASSES: &str = "read, write, export, ddl, privilege, admin, session, unknown";
pub(super) const ROLES: &str = "agent, approver, auditor, admin";

pub(super) fn role(name: &str) -> Option<Role> {
    match name {
        "agent" => Some(Role::Agent),
        "approver" => Some(Role::Approver),
        "auditor" => Some(Role::Auditor),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}

/// `"90s"`, `"30m"`, `"1h"`, `"2d"` → a positive duration.
pub fn parse_expiry(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let number = &text[..text.len() - unit.len_utf8()];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

/// The inverse of [`parse_expiry`]: the largest unit that divides evenly.
pub fn format_expiry(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_string(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}
