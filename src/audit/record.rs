//! Audit events as log records: the JSON fields of each kind.

use serde_json::{Map, Value};

use super::chain::Record;
use super::AuditEvent;
use crate::gate::Origin;

/// The record for `event`, without the chain fields (`v`, `seq`, `ts`,
/// `prev`, `hash`), which the writer adds.
pub fn to_record(event: &AuditEvent<'_>) -> Record {
    match event {
        AuditEvent::PolicyLoaded {
            digest,
            rules,
            source,
        } => {
            let mut r = Record::new("policy_loaded");
            r.str("policy_digest", digest)
                .u64("rules", *rules as u64)
                .str("source", source);
            r
        }
        AuditEvent::SessionStart { session } => {
            let mut r = Record::new("session_start");
            r.session(&session.id.0)
                .str("identity", &session.identity)
                .str("role", &session.role.to_string())
                .str("client", &session.client_addr.to_string());
            match &session.application_name {
                Some(name) => r.str("application", name),
                None => r.null("application"),
            };
            r.str("database", &session.database);
            // An MCP session names its door, and the server it reaches.
            match session.door {
                crate::gate::Door::Wire => r.str("protocol", &session.protocol.to_string()),
                crate::gate::Door::Mcp => r
                    .str("protocol", "mcp")
                    .str("server", &session.protocol.to_string()),
            };
            r.bool("tls", session.tls);
            r
        }
        AuditEvent::AuthFailure {
            client_addr,
            user,
            reason,
        } => {
            let mut r = Record::new("auth_failure");
            r.str("client", &client_addr.to_string())
                .str("user", user)
                .str("reason", reason);
            r
        }
        AuditEvent::Statement {
            session,
            sql,
            origin,
            classes,
            objects,
            action,
            rule,
        } => {
            let mut r = Record::new("statement");
            let origin = match origin {
                Origin::SimpleQuery => "simple_query",
                Origin::Prepare => "prepare",
            };
            r.session(&session.0)
                .str("sql", sql)
                .str("origin", origin)
                .strs("classes", classes.iter().map(|c| c.name()))
                .strs("objects", objects.iter().map(String::as_str))
                .str("verdict", action)
                .str("rule", rule);
            r
        }
        AuditEvent::Result {
            session,
            tag,
            rows,
            bytes,
            duration,
            masked,
            digest,
            captured,
        } => {
            let mut r = Record::new("result");
            r.session(&session.0)
                .str("tag", tag)
                .u64("rows", *rows)
                .u64("bytes", *bytes)
                .u64("duration_us", duration.as_micros() as u64);
            let mut columns = Map::new();
            for (column, counts) in &masked.columns {
                let kinds: Map<String, Value> = counts
                    .iter()
                    .map(|(k, n)| (k.name().to_string(), Value::from(*n)))
                    .collect();
                columns.insert(column.clone(), Value::Object(kinds));
            }
            r.value("masked", &Value::Object(columns));
            r.str("digest", digest);
            if !captured.is_empty() {
                let rows = captured
                    .iter()
                    .map(|row| {
                        row.iter()
                            .map(|v| v.as_deref().map_or(Value::Null, Value::from))
                            .collect()
                    })
                    .collect();
                r.value("captured", &Value::Array(rows));
            }
            r
        }
        AuditEvent::Error {
            session,
            code,
            message,
        } => {
            let mut r = Record::new("error");
            r.session(&session.0)
                .str("code", code)
                .str("message", message);
            r
        }
        AuditEvent::Hold { session, request } => {
            let mut r = Record::new("hold");
            r.session(&session.0)
                .str("request", request.id.as_str())
                .str("rule", request.rule.as_str())
                .str("group", request.group.as_str())
                .u64("quorum", u64::from(request.quorum))
                .str("sql_hash", request.sql_hash.as_str())
                .str("expires", &millis_timestamp(request.expires_ms));
            r
        }
        AuditEvent::Decision { session, request } => {
            let mut r = Record::new("decision");
            r.session(&session.0)
                .str("request", request.id.as_str())
                .str("verdict", request.state.name());
            // Who decided: the approvers, or the one who denied.
            let deciders: Vec<&str> = match request.denial() {
                Some(deny) => vec![deny.approver.as_str()],
                None => request
                    .votes
                    .iter()
                    .filter(|v| v.approve)
                    .map(|v| v.approver.as_str())
                    .collect(),
            };
            r.str("approver", &deciders.join(", "));
            let reason = match request.denial() {
                Some(deny) => deny.reason.clone(),
                None => request.ended_because.clone().unwrap_or_else(|| {
                    request
                        .votes
                        .iter()
                        .map(|v| v.reason.as_str())
                        .filter(|r| !r.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ")
                }),
            };
            r.str("reason", &reason);
            let votes = request
                .votes
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "approver": v.approver,
                        "approve": v.approve,
                        "reason": v.reason,
                        "at": millis_timestamp(v.at_ms),
                    })
                })
                .collect();
            r.value("votes", &Value::Array(votes));
            r
        }
        AuditEvent::DecisionRefused {
            via,
            client_addr,
            user,
            request,
            reason,
        } => {
            let mut r = Record::new("decision_refused");
            r.str("via", via)
                .str("client", &client_addr.to_string())
                .str("user", user)
                .str("request", request)
                .str("reason", reason);
            r
        }
        AuditEvent::BreakGlass {
            action,
            identity,
            by,
            reason,
            until_ms,
        } => {
            let mut r = Record::new("break_glass");
            r.str("action", action)
                .str("identity", identity)
                .str("by", by)
                .str("reason", reason)
                .str("until", &millis_timestamp(*until_ms));
            r
        }
        AuditEvent::SessionEnd { session, reason } => {
            let mut r = Record::new("session_end");
            r.session(&session.0).str("reason", reason);
            r
        }
    }
}

fn millis_timestamp(ms: u64) -> String {
    super::chain::timestamp(std::time::Duration::from_millis(ms))
}
