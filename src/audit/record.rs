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
            put("protocol", session.protocol.to_string().into());
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
        AuditEvent::SessionEnd { session, reason } => {
            put("kind", "session_end".into());
            put("session", session.to_string().into());
            put("reason", (*reason).into());
        }
    }
    r
}
