//! The log as OCSF 1.3 events for a SIEM (`audit export --format ocsf`):
//!
//! * `session_start`, `session_end`, `auth_failure` → Authentication
//!   (class 3002: Logon, Logoff);
//! * `statement` → Datastore Activity (class 6005), joined with the
//!   `result` or `error` record that follows it in its session;
//! * `hold`, `decision` → Detection Finding (class 2004: Create, Close),
//!   the finding being the approval request.
//!
//! Every event carries the record's `seq` and `hash` under
//! `unmapped.airlock`, so it can be traced to the signed record; the
//! export itself is not signed (the raw `jsonl` export is the one that
//! verifies). Checkpoints, policy loads and rotations have no OCSF event.
//! docs/ocsf.md shows one example per class.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Map, Value};

/// The OCSF schema version the events follow.
pub const SCHEMA_VERSION: &str = "1.3.0";

const AUTHENTICATION: u64 = 3002;
const DATASTORE_ACTIVITY: u64 = 6005;
const DETECTION_FINDING: u64 = 2004;

fn text<'a>(record: &'a Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Milliseconds since the epoch of a record timestamp
/// (`2026-11-22T10:30:00.123456Z`); `None` when it is not one.
pub fn epoch_millis(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !ts.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let fraction = ts.get(20..ts.len() - 1).unwrap_or("");
    let millis = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<3}").get(..3)?.parse::<i64>().ok()?
    };
    // Days from the civil date (Howard Hinnant's algorithm), the inverse
    // of `chain::timestamp`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis)
}

/// What a session's start said, for the events of its later records.
#[derive(Clone, Default)]
struct SessionFacts {
    identity: String,
    role: String,
    client: String,
    application: Option<String>,
    database: String,
    protocol: String,
}

/// `ip:port` (or `[v6]:port`) as an OCSF network endpoint.
fn endpoint(client: &str) -> Value {
    match client.parse::<std::net::SocketAddr>() {
        Ok(addr) => json!({"ip": addr.ip().to_string(), "port": addr.port()}),
        Err(_) if !client.is_empty() => json!({ "name": client }),
        // The session's start is not in the log (pruned, or before a
        // rotation that was not kept): say so rather than invent an address.
        Err(_) => json!({"name": "unknown: the session start is not in the log"}),
    }
}

/// The fields every event has. `activity_name` is given for activity 99.
fn base(
    record: &Map<String, Value>,
    class_uid: u64,
    activity_id: u64,
    activity_name: &str,
    severity_id: u64,
    message: String,
) -> Map<String, Value> {
    let (category_uid, category_name, class_name) = match class_uid {
        AUTHENTICATION => (3, "Identity & Access Management", "Authentication"),
        DATASTORE_ACTIVITY => (6, "Application Activity", "Datastore Activity"),
        _ => (2, "Findings", "Detection Finding"),
    };
    let severity = match severity_id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        _ => "Unknown",
    };
    let ts = text(record, "ts");
    let mut e = Map::new();
    e.insert("class_uid".into(), class_uid.into());
    e.insert("class_name".into(), class_name.into());
    e.insert("category_uid".into(), category_uid.into());
    e.insert("category_name".into(), category_name.into());
    e.insert("activity_id".into(), activity_id.into());
    e.insert("activity_name".into(), activity_name.into());
    e.insert("type_uid".into(), (class_uid * 100 + activity_id).into());
    e.insert(
        "type_name".into(),
        format!("{class_name}: {activity_name}").into(),
    );
    e.insert("severity_id".into(), severity_id.into());
    e.insert("severity".into(), severity.into());
    e.insert("time".into(), epoch_millis(ts).unwrap_or(0).into());
    e.insert("message".into(), message.into());
    e.insert(
        "metadata".into(),
        json!({
            "version": SCHEMA_VERSION,
            "product": {
                "name": "Airlock",
                "vendor_name": "Airlock",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "uid": record.get("seq").and_then(Value::as_u64).unwrap_or(0).to_string(),
            "log_name": "airlock audit log",
            "original_time": ts,
        }),
    );
    e.insert(
        "unmapped".into(),
        json!({"airlock": {
            "kind": text(record, "kind"),
            "seq": record.get("seq").cloned().unwrap_or(Value::Null),
            "hash": record.get("hash").cloned().unwrap_or(Value::Null),
        }}),
    );
    e
}

fn airlock_extra(event: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some(a) = event
        .get_mut("unmapped")
        .and_then(|u| u.get_mut("airlock"))
        .and_then(Value::as_object_mut)
    {
        a.insert(key.into(), value);
    }
}

fn service(protocol: &str) -> Value {
    let name = match protocol {
        "mysql" => "Airlock MySQL gateway",
        "postgres" => "Airlock PostgreSQL gateway",
        _ => "Airlock gateway",
    };
    json!({ "name": name })
}

fn actor(facts: &SessionFacts, session: &str) -> Value {
    let mut actor = json!({ "session": { "uid": session } });
    if !facts.identity.is_empty() {
        actor["user"] = json!({ "name": facts.identity });
    }
    if let Some(app) = facts.application.as_deref().filter(|a| !a.is_empty()) {
        actor["app_name"] = app.into();
    }
    actor
}

/// The Datastore Activity activity of a statement's classes: the most
/// consequential class names it.
fn datastore_activity(record: &Map<String, Value>) -> (u64, &'static str) {
    let classes: Vec<&str> = record
        .get("classes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let has = |c: &str| classes.contains(&c);
    if has("privilege") {
        (99, "Privilege Change")
    } else if has("ddl") {
        (99, "Schema Change")
    } else if has("admin") {
        (99, "Administration")
    } else if has("write") {
        (5, "Write")
    } else if has("export") {
        (1, "Read")
    } else if has("read") {
        (4, "Query")
    } else if has("session") {
        (99, "Session Setting")
    } else {
        (0, "Unknown")
    }
}

/// Turns records into OCSF events, in log order (a statement's event is
/// given when its result or error arrives, or the session goes on).
#[derive(Default)]
pub struct Converter {
    sessions: HashMap<String, SessionFacts>,
    /// Statement events waiting for their result or error, by session.
    open: HashMap<String, Map<String, Value>>,
}

impl Converter {
    /// Learns what a record says about its session, without an event: for
    /// records before an exported period.
    pub fn learn(&mut self, record: &Map<String, Value>) {
        match text(record, "kind") {
            "session_start" => {
                self.sessions.insert(
                    text(record, "session").into(),
                    SessionFacts {
                        identity: text(record, "identity").into(),
                        role: text(record, "role").into(),
                        client: text(record, "client").into(),
                        application: record
                            .get("application")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        database: text(record, "database").into(),
                        protocol: text(record, "protocol").into(),
                    },
                );
            }
            "session_end" => {
                self.sessions.remove(text(record, "session"));
            }
            _ => {}
        }
    }

    /// The events `record` completes.
    pub fn convert(&mut self, record: &Map<String, Value>) -> Vec<Value> {
        let session = text(record, "session").to_string();
        let mut out = Vec::new();
        let kind = text(record, "kind");
        if matches!(kind, "statement" | "session_end") {
            if let Some(open) = self.open.remove(&session) {
                out.push(Value::Object(open));
            }
        }
        if kind == "session_start" {
            self.learn(record);
        }
        let facts = self.sessions.get(&session).cloned().unwrap_or_default();
        match kind {
            "session_start" | "session_end" => {
                let logon = kind == "session_start";
                let (id, name) = if logon { (1, "Logon") } else { (2, "Logoff") };
                let mut e = base(
                    record,
                    AUTHENTICATION,
                    id,
                    name,
                    1,
                    if logon {
                        format!(
                            "{} connected to database {}",
                            facts.identity, facts.database
                        )
                    } else {
                        format!("session ended: {}", text(record, "reason"))
                    },
                );
                e.insert("status_id".into(), 1.into());
                e.insert("status".into(), "Success".into());
                if !logon {
                    e.insert("status_detail".into(), text(record, "reason").into());
                }
                e.insert("user".into(), json!({ "name": facts.identity }));
                // Airlock's roles (agent, approver, …) are not OCSF user
                // types (User, Admin, System): kept as they are.
                airlock_extra(&mut e, "role", facts.role.clone().into());
                e.insert("actor".into(), actor(&facts, &session));
                e.insert("src_endpoint".into(), endpoint(&facts.client));
                e.insert("service".into(), service(&facts.protocol));
                e.insert("session".into(), json!({ "uid": session }));
                e.insert("is_remote".into(), true.into());
                if logon {
                    airlock_extra(&mut e, "database", facts.database.clone().into());
                    airlock_extra(
                        &mut e,
                        "tls",
                        record.get("tls").cloned().unwrap_or(Value::Null),
                    );
                }
                out.push(Value::Object(e));
                if !logon {
                    self.learn(record);
                }
            }
            "auth_failure" => {
                let mut e = base(
                    record,
                    AUTHENTICATION,
                    1,
                    "Logon",
                    3,
                    format!(
                        "login as {} refused: {}",
                        text(record, "user"),
                        text(record, "reason")
                    ),
                );
                e.insert("status_id".into(), 2.into());
                e.insert("status".into(), "Failure".into());
                e.insert("status_detail".into(), text(record, "reason").into());
                e.insert("user".into(), json!({ "name": text(record, "user") }));
                e.insert("src_endpoint".into(), endpoint(text(record, "client")));
                e.insert("service".into(), service(""));
                e.insert("is_remote".into(), true.into());
                out.push(Value::Object(e));
            }
            "statement" => {
                let (id, name) = datastore_activity(record);
                let verdict = text(record, "verdict");
                let severity = match verdict {
                    "allow" => 1,
                    "hold" => 2,
                    _ => 3,
                };
                let mut e = base(
                    record,
                    DATASTORE_ACTIVITY,
                    id,
                    name,
                    severity,
                    format!(
                        "statement {} by rule {}",
                        match verdict {
                            "allow" => "allowed",
                            "hold" => "held for approval",
                            "deny" => "denied",
                            other => other,
                        },
                        text(record, "rule")
                    ),
                );
                e.insert("actor".into(), actor(&facts, &session));
                e.insert("src_endpoint".into(), endpoint(&facts.client));
                e.insert(
                    "database".into(),
                    json!({"name": facts.database, "type_id": 1, "type": "Relational"}),
                );
                e.insert("type_id".into(), 1.into());
                e.insert("type".into(), "Database".into());
                e.insert(
                    "query_info".into(),
                    json!({ "query_string": text(record, "sql") }),
                );
                if verdict == "deny" {
                    e.insert("status_id".into(), 2.into());
                    e.insert("status".into(), "Failure".into());
                    e.insert(
                        "status_detail".into(),
                        format!("denied by rule {}", text(record, "rule")).into(),
                    );
                } else {
                    e.insert("status_id".into(), 0.into());
                    e.insert("status".into(), "Unknown".into());
                }
                airlock_extra(&mut e, "role", facts.role.clone().into());
                for key in ["verdict", "rule", "classes", "objects", "origin"] {
                    airlock_extra(&mut e, key, record.get(key).cloned().unwrap_or(Value::Null));
                }
                self.open.insert(session, e);
            }
            "result" | "error" => {
                if let Some(mut e) = self.open.remove(&session) {
                    if kind == "result" {
                        e.insert("status_id".into(), 1.into());
                        e.insert("status".into(), "Success".into());
                        e.insert("status_detail".into(), text(record, "tag").into());
                        for key in ["rows", "bytes", "duration_us", "masked", "digest"] {
                            airlock_extra(
                                &mut e,
                                key,
                                record.get(key).cloned().unwrap_or(Value::Null),
                            );
                        }
                    } else {
                        e.insert("status_id".into(), 2.into());
                        e.insert("status".into(), "Failure".into());
                        e.insert("status_code".into(), text(record, "code").into());
                        e.insert("status_detail".into(), text(record, "message").into());
                    }
                    airlock_extra(
                        &mut e,
                        "outcome_seq",
                        record.get("seq").cloned().unwrap_or(Value::Null),
                    );
                    out.push(Value::Object(e));
                }
            }
            "hold" => {
                let request = text(record, "request");
                let rule = text(record, "rule");
                let mut e = base(
                    record,
                    DETECTION_FINDING,
                    1,
                    "Create",
                    3,
                    format!(
                        "statement held as request {request} by rule {rule} for group {}",
                        text(record, "group")
                    ),
                );
                e.insert("status_id".into(), 1.into());
                e.insert("status".into(), "New".into());
                e.insert(
                    "finding_info".into(),
                    json!({
                        "uid": request,
                        "title": format!("Statement held for approval by rule {rule}"),
                        "analytic": {"name": rule, "type_id": 1, "type": "Rule"},
                        "created_time": epoch_millis(text(record, "ts")).unwrap_or(0),
                        "types": ["Approval request"],
                    }),
                );
                e.insert("actor".into(), actor(&facts, &session));
                e.insert(
                    "resources".into(),
                    json!([{"type": "Database", "name": facts.database}]),
                );
                e.insert("is_alert".into(), true.into());
                for key in ["group", "quorum", "sql_hash", "expires"] {
                    airlock_extra(&mut e, key, record.get(key).cloned().unwrap_or(Value::Null));
                }
                out.push(Value::Object(e));
            }
            "decision" => {
                let request = text(record, "request");
                let verdict = text(record, "verdict");
                let mut e = base(
                    record,
                    DETECTION_FINDING,
                    3,
                    "Close",
                    1,
                    format!(
                        "request {request} {verdict}{}{}",
                        Some(text(record, "approver"))
                            .filter(|a| !a.is_empty())
                            .map(|a| format!(" by {a}"))
                            .unwrap_or_default(),
                        Some(text(record, "reason"))
                            .filter(|r| !r.is_empty())
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default(),
                    ),
                );
                e.insert("status_id".into(), 4.into());
                e.insert("status".into(), "Resolved".into());
                e.insert(
                    "finding_info".into(),
                    json!({
                        "uid": request,
                        "title": format!("Approval request {verdict}"),
                        "modified_time": epoch_millis(text(record, "ts")).unwrap_or(0),
                        "types": ["Approval request"],
                    }),
                );
                e.insert("actor".into(), actor(&facts, &session));
                e.insert(
                    "resources".into(),
                    json!([{"type": "Database", "name": facts.database}]),
                );
                for key in ["verdict", "approver", "reason", "votes"] {
                    airlock_extra(&mut e, key, record.get(key).cloned().unwrap_or(Value::Null));
                }
                out.push(Value::Object(e));
            }
            _ => {}
        }
        out
    }

    /// Statement events still waiting for an outcome, at the end.
    pub fn finish(&mut self) -> Vec<Value> {
        let mut open: Vec<Map<String, Value>> = self.open.drain().map(|(_, e)| e).collect();
        open.sort_by_key(|e| e.get("time").and_then(Value::as_i64).unwrap_or(0));
        open.into_iter().map(Value::Object).collect()
    }
}

/// The records of a period (as `read::export` picks them, without the
/// trailing checkpoint) as OCSF events, one JSON object per line. Records
/// before the period are read for what they say about their sessions.
/// Returns how many events were written.
pub fn export(
    dir: &Path,
    since: Option<&str>,
    until: Option<&str>,
    mut out: impl std::io::Write,
) -> Result<u64, String> {
    let mut converter = Converter::default();
    let mut count = 0u64;
    let mut failed: Option<std::io::Error> = None;
    let mut write = |events: Vec<Value>, out: &mut dyn std::io::Write| -> bool {
        for event in events {
            if let Err(e) = writeln!(out, "{event}") {
                failed = Some(e);
                return false;
            }
            count += 1;
        }
        true
    };
    super::read::for_each(dir, |_, record| {
        let ts = text(record, "ts");
        if since.is_some_and(|s| ts < s) {
            converter.learn(record);
            return true;
        }
        if until.is_some_and(|u| ts > u) {
            return false;
        }
        write(converter.convert(record), &mut out)
    })?;
    write(converter.finish(), &mut out);
    let _ = out.flush();
    match failed {
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(count),
        Some(e) => Err(format!("cannot write the export: {e}")),
        None => Ok(count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn record_timestamps_become_epoch_milliseconds() {
        assert_eq!(epoch_millis("1970-01-01T00:00:00.000000Z"), Some(0));
        assert_eq!(
            epoch_millis("2026-11-22T01:02:03.456789Z"),
            Some(1_795_309_323_456)
        );
        assert_eq!(
            epoch_millis("2000-02-29T00:00:00.000000Z"),
            Some(951_782_400_000)
        );
        for bad in [
            "",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "yesterday at noon!!",
        ] {
            assert_eq!(epoch_millis(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_statement_waits_for_its_result_and_carries_it() {
        let mut c = Converter::default();
        let start = c.convert(&record(
            json!({"kind": "session_start", "seq": 1, "ts": "2026-11-22T01:02:03.000000Z",
            "session": "s1", "identity": "agent", "role": "agent", "client": "127.0.0.1:5000",
            "application": "psql", "database": "app", "protocol": "postgres", "tls": false}),
        ));
        assert_eq!(start.len(), 1);
        assert_eq!(start[0]["type_uid"], 300201);
        assert_eq!(start[0]["src_endpoint"]["port"], 5000);
        let none = c.convert(&record(json!({"kind": "statement", "seq": 2, "ts": "2026-11-22T01:02:04.000000Z",
            "session": "s1", "sql": "DELETE FROM t", "classes": ["write"], "verdict": "allow", "rule": "r"})));
        assert!(none.is_empty());
        let done = c.convert(&record(
            json!({"kind": "error", "seq": 3, "ts": "2026-11-22T01:02:04.500000Z",
            "session": "s1", "code": "42P01", "message": "no table"}),
        ));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0]["type_uid"], 600505);
        assert_eq!(done[0]["status_id"], 2);
        assert_eq!(done[0]["status_code"], "42P01");
        assert_eq!(done[0]["actor"]["user"]["name"], "agent");
        assert_eq!(done[0]["database"]["name"], "app");
        assert_eq!(done[0]["query_info"]["query_string"], "DELETE FROM t");
        // A statement left without an outcome is still exported.
        c.convert(&record(json!({"kind": "statement", "seq": 4, "ts": "2026-11-22T01:02:05.000000Z",
            "session": "s1", "sql": "GRANT x TO y", "classes": ["privilege"], "verdict": "hold", "rule": "r"})));
        let end = c.convert(&record(
            json!({"kind": "session_end", "seq": 5, "ts": "2026-11-22T01:02:06.000000Z",
            "session": "s1", "reason": "client closed"}),
        ));
        assert_eq!(end.len(), 2);
        assert_eq!(end[0]["activity_id"], 99);
        assert_eq!(end[0]["activity_name"], "Privilege Change");
        assert_eq!(end[0]["type_uid"], 600599);
        assert_eq!(end[1]["type_uid"], 300202);
    }
}
