//! Audit events as log records: the JSON fields of each kind.

use serde_json::{Map, Value};

use super::AuditEvent;
use crate::gate::Origin;

/// The record for `event`, without the chain fields (`v`, `seq`, `ts`,
/// `prev`, `hash`), which the writer adds.
pub fn to_record(event: &AuditEvent<'_>) -> Map<String, Value> {
    let mut r = Map::new();
    let mut put = |k: &str, v: Value| {
        r.insert(k.to_string(), v);
    };
    match event {
        AuditEvent::PolicyLoaded {
            digest,
            rules,
            source,
        } => {
            put("kind", "policy_loaded".into());
            put("policy_digest", (*digest).into());
            put("rules", (*rules as u64).into());
            put("source", (*source).into());
        }
        AuditEvent::SessionStart { session } => {
            put("kind", "session_start".into());
            put("session", session.id.to_string().into());
            put("identity", session.identity.clone().into());
            put("role", session.role.to_string().into());
            put("client", session.client_addr.to_string().into());
            put(
                "application",
                session
                    .application_name
                    .clone()
                    .map_or(Value::Null, Value::from),
            );
            put("database", session.database.clone().into());
            // An MCP session names its door, and the server it reaches.
            match session.door {
                crate::gate::Door::Wire => put("protocol", session.protocol.to_string().into()),
                crate::gate::Door::Mcp => {
                    put("protocol", "mcp".into());
                    put("server", session.protocol.to_string().into());
                }
            }
            put("tls", session.tls.into());
        }
        AuditEvent::AuthFailure {
            client_addr,
            user,
            reason,
        } => {
            put("kind", "auth_failure".into());
            put("client", client_addr.to_string().into());
            put("user", (*user).into());
            put("reason", (*reason).into());
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
            put("kind", "statement".into());
            put("session", session.to_string().into());
            put("sql", (*sql).into());
            let origin = match origin {
                Origin::SimpleQuery => "simple_query",
                Origin::Prepare => "prepare",
            };
            put("origin", origin.into());
            put(
                "classes",
                classes.iter().map(|c| Value::from(c.name())).collect(),
            );
            put(
                "objects",
                objects.iter().map(|o| Value::from(o.as_str())).collect(),
            );
            put("verdict", (*action).into());
            put("rule", (*rule).into());
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
            put("kind", "result".into());
            put("session", session.to_string().into());
            put("tag", (*tag).into());
            put("rows", (*rows).into());
            put("bytes", (*bytes).into());
            put("duration_us", (duration.as_micros() as u64).into());
            let mut columns = Map::new();
            for (column, counts) in &masked.columns {
                let kinds: Map<String, Value> = counts
                    .iter()
                    .map(|(k, n)| (k.name().to_string(), Value::from(*n)))
                    .collect();
                columns.insert(column.clone(), Value::Object(kinds));
            }
            put("masked", Value::Object(columns));
            put("digest", (*digest).into());
            if !captured.is_empty() {
                let rows = captured
                    .iter()
                    .map(|row| {
                        row.iter()
                            .map(|v| v.as_deref().map_or(Value::Null, Value::from))
                            .collect()
                    })
                    .collect();
                put("captured", Value::Array(rows));
            }
        }
        AuditEvent::Error {
            session,
            code,
            message,
        } => {
            put("kind", "error".into());
            put("session", session.to_string().into());
            put("code", (*code).into());
            put("message", (*message).into());
        }
        AuditEvent::Hold { session, request } => {
            put("kind", "hold".into());
            put("session", session.to_string().into());
            put("request", request.id.as_str().into());
            put("rule", request.rule.as_str().into());
            put("group", request.group.as_str().into());
            put("quorum", u64::from(request.quorum).into());
            put("sql_hash", request.sql_hash.as_str().into());
            put("expires", millis_timestamp(request.expires_ms).into());
        }
        AuditEvent::Decision { session, request } => {
            put("kind", "decision".into());
            put("session", session.to_string().into());
            put("request", request.id.as_str().into());
            put("verdict", request.state.name().into());
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
            put("approver", deciders.join(", ").into());
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
            put("reason", reason.into());
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
            put("votes", Value::Array(votes));
        }
        AuditEvent::DecisionRefused {
            via,
            client_addr,
            user,
            request,
            reason,
        } => {
            put("kind", "decision_refused".into());
            put("via", (*via).into());
            put("client", client_addr.to_string().into());
            put("user", (*user).into());
            put("request", (*request).into());
            put("reason", (*reason).into());
        }
        AuditEvent::BreakGlass {
            action,
            identity,
            by,
            reason,
            until_ms,
        } => {
            put("kind", "break_glass".into());
            put("action", (*action).into());
            put("identity", (*identity).into());
            put("by", (*by).into());
            put("reason", (*reason).into());
            put("until", millis_timestamp(*until_ms).into());
        }
        AuditEvent::SessionEnd { session, reason } => {
            put("kind", "session_end".into());
            put("session", session.to_string().into());
            put("reason", (*reason).into());
        }
    }
    r
}

fn millis_timestamp(ms: u64) -> String {
    super::chain::timestamp(std::time::Duration::from_millis(ms))
}
