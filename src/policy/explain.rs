//! The report behind `airlock policy check`: what each statement is, which
//! rule decided each of its classes, and the verdict.
//!
//! # JSON shape
//!
//! With `json = true` the report is one object; keys are always present
//! (`null` when they do not apply), so scripts need no existence checks:
//!
//! ```json
//! {
//!   "verdict": "deny",                    // "allow" | "hold" | "deny"
//!   "rule": "no-hr",                      // the deciding rule, or "(no rule)"
//!   "statement": 0,                       // index into "statements"; null when there are none
//!   "class": "read",                      // the deciding class; null when there are no statements
//!   "reason": "HR data is off limits",    // deny only, else null
//!   "hold": null,                         // hold only: {"group", "quorum", "expiry_secs", "mode"}
//!   "statements": [
//!     {
//!       "index": 0,
//!       "text": "SELECT * FROM hr.salaries",
//!       "classes": ["read"],
//!       "objects": ["hr.salaries"],
//!       "functions": [],
//!       "notes": [],
//!       "decisions": [
//!         {"class": "read", "rule": "no-hr", "verdict": "deny",
//!          "reason": "HR data is off limits", "hold": null}
//!       ]
//!     }
//!   ]
//! }
//! ```
//!
//! Statement indexes are 0-based in JSON and 1-based in the text report.

use super::{Action, ClassDecision, Decision, NO_RULE};
use crate::sql::Classification;
use serde_json::{json, Value};
use std::fmt::Write;

/// Renders `decision` on `classification` for a person (`json = false`) or
/// a script (`json = true`, see the module docs for the shape).
pub fn explain(classification: &Classification, decision: &Decision, json: bool) -> String {
    if json {
        let value = to_json(classification, decision);
        // Serialising a `Value` cannot fail.
        serde_json::to_string_pretty(&value).unwrap_or_default()
    } else {
        to_text(classification, decision)
    }
}

fn to_text(classification: &Classification, decision: &Decision) -> String {
    let mut out = String::new();
    if classification.statements.is_empty() {
        out.push_str("no statements\n\nverdict: allow (an empty query needs no rule)\n");
        return out;
    }
    for (i, s) in classification.statements.iter().enumerate() {
        let text = s.text.replace('\n', "\n             ");
        let _ = writeln!(out, "statement {}: {text}", i + 1);
        let _ = writeln!(out, "  classes:   {}", or_none(&s.classes.to_string()));
        let _ = writeln!(out, "  objects:   {}", or_none(&s.objects.join(", ")));
        let _ = writeln!(out, "  functions: {}", or_none(&s.functions.join(", ")));
        for note in &s.notes {
            let _ = writeln!(out, "  note:      {note}");
        }
        for d in decision.trace.iter().filter(|d| d.statement == i) {
            let _ = writeln!(
                out,
                "  {:<10} {} {}{}",
                format!("{}:", d.class),
                d.action.name(),
                rule_label(&d.rule),
                detail(&d.action)
            );
        }
        out.push('\n');
    }
    let _ = write!(
        out,
        "verdict: {} {}",
        decision.action.name(),
        rule_label(&decision.rule)
    );
    if let (Some(statement), Some(class)) = (decision.statement, decision.class) {
        let _ = write!(out, " on statement {}, class {class}", statement + 1);
    }
    let _ = writeln!(out, "{}", detail(&decision.action));
    out
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "(none)"
    } else {
        s
    }
}

fn rule_label(rule: &str) -> String {
    if rule == NO_RULE {
        "(no rule)".to_string()
    } else {
        format!("(rule \"{rule}\")")
    }
}

fn detail(action: &Action) -> String {
    match action {
        Action::Allow => String::new(),
        Action::Hold(h) => format!(": {h}"),
        Action::Deny { reason } => format!(": {reason}"),
    }
}

fn to_json(classification: &Classification, decision: &Decision) -> Value {
    let statements: Vec<Value> = classification
        .statements
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let decisions: Vec<Value> = decision
                .trace
                .iter()
                .filter(|d| d.statement == i)
                .map(class_json)
                .collect();
            json!({
                "index": i,
                "text": s.text,
                "classes": s.classes.iter().map(|c| c.name()).collect::<Vec<_>>(),
                "objects": s.objects,
                "functions": s.functions,
                "notes": s.notes,
                "decisions": decisions,
            })
        })
        .collect();
    let mut top = action_json(&decision.action);
    top.insert("rule".into(), json!(decision.rule));
    top.insert("statement".into(), json!(decision.statement));
    top.insert("class".into(), json!(decision.class.map(|c| c.name())));
    top.insert("statements".into(), Value::Array(statements));
    Value::Object(top)
}

fn class_json(d: &ClassDecision) -> Value {
    let mut obj = action_json(&d.action);
    obj.insert("class".into(), json!(d.class.name()));
    obj.insert("rule".into(), json!(d.rule));
    Value::Object(obj)
}

/// `verdict`, `reason` and `hold` of an action.
fn action_json(action: &Action) -> serde_json::Map<String, Value> {
    let (reason, hold) = match action {
        Action::Allow => (Value::Null, Value::Null),
        Action::Deny { reason } => (json!(reason), Value::Null),
        Action::Hold(h) => (
            Value::Null,
            json!({
                "group": h.group,
                "quorum": h.quorum,
                "expiry_secs": h.expiry.as_secs(),
                "mode": h.mode.name(),
            }),
        ),
    };
    let mut obj = serde_json::Map::new();
    obj.insert("verdict".into(), json!(action.name()));
    obj.insert("reason".into(), reason);
    obj.insert("hold".into(), hold);
    obj
}
