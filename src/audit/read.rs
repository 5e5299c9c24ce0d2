//! Reading the log back for auditors: one line per session, the replay of
//! a session, and the records of a period for a SIEM.
//!
//! The log is read segment by segment, record by record, never whole: a
//! gateway writes millions of records a day.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::chain;
use super::layout::segments;

/// Calls `each` with every record of the log under `dir`, in order, and the
/// line exactly as written. Stops early when `each` returns `false`.
pub fn for_each(
    dir: &Path,
    mut each: impl FnMut(&str, &Map<String, Value>) -> bool,
) -> Result<(), String> {
    let segs = segments(dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
    if segs.is_empty() {
        return Err(format!("`{}` holds no audit log", dir.display()));
    }
    for (_, path) in segs {
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            if line.is_empty() {
                continue;
            }
            // A torn end of a log still being written (or crashed) is not
            // a record; `audit verify` is where a damaged log is reported.
            let Ok(record) = serde_json::from_str::<Map<String, Value>>(&line) else {
                tracing::debug!(file = %path.display(), line = n + 1, "skipping a line that is not a record");
                continue;
            };
            if !each(&line, &record) {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn text<'a>(record: &'a Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or("")
}

fn number(record: &Map<String, Value>, key: &str) -> u64 {
    record.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A point in time given on the command line: a UTC date or date-time
/// (`2026-11-22`, `2026-11-22T10:30`, `2026-11-22T10:30:00Z`) or an age
/// (`90s`, `15m`, `2h`, `7d` ago). Returned as the record timestamp it
/// compares with: from the start of what was written (`start`), or up to
/// its end (`end`), so that `--until 2026-11-22` includes that day.
pub fn time_bound(given: &str, end: bool) -> Result<String, String> {
    let given = given.trim();
    if let Some(unit) = given.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = given[..given.len() - 1].parse::<u64>() {
            let secs = n * match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86_400,
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            return Ok(chain::timestamp(
                now.saturating_sub(Duration::from_secs(secs)),
            ));
        }
    }
    let bare = given.trim_end_matches('Z').replace(' ', "T");
    // The shape of a record timestamp, digit by digit.
    let full = "0000-00-00T00:00:00.000000";
    let fits =
        bare.len() <= full.len()
            && bare.len() >= 10
            && bare.chars().zip(full.chars()).all(|(c, f)| {
                if f == '0' {
                    c.is_ascii_digit()
                } else {
                    c == f
                }
            });
    // Digits in the right places are not yet a time: 2026-13-45 is none.
    let field = |at: usize| bare.get(at..at + 2).and_then(|d| d.parse::<u32>().ok());
    let in_range =
        |at: usize, low: u32, high: u32| field(at).is_none_or(|v| (low..=high).contains(&v));
    let fits = fits
        && in_range(5, 1, 12)
        && in_range(8, 1, 31)
        && in_range(11, 0, 23)
        && in_range(14, 0, 59)
        && in_range(17, 0, 59);
    if !fits {
        return Err(format!(
            "`{given}` is not a time: give a UTC date such as 2026-11-22, a date-time such as \
             2026-11-22T10:30:00Z, or an age such as 15m, 2h or 7d"
        ));
    }
    let rest = if end {
        &"9999-99-99T23:59:59.999999"[bare.len()..]
    } else {
        &full[bare.len()..]
    };
    Ok(format!("{bare}{rest}Z"))
}

/// What the log says about one session.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SessionSummary {
    pub session: String,
    pub started: String,
    pub ended: Option<String>,
    pub end_reason: Option<String>,
    pub identity: String,
    pub role: String,
    pub client: String,
    pub application: Option<String>,
    pub protocol: String,
    pub database: String,
    pub tls: bool,
    pub statements: u64,
    /// Statements by verdict (`allow`, `hold`, `deny`).
    pub verdicts: BTreeMap<String, u64>,
    pub errors: u64,
    pub rows: u64,
    /// Values masked in what the session was sent.
    pub masked: u64,
    /// Records of the session in the log (what its replay pages through).
    pub records: u64,
    /// The approval requests its statements were held as, in order.
    pub requests: Vec<String>,
    /// How its held statements' requests ended (`approved`, `denied`,
    /// `expired`, `withdrawn`), counted.
    pub outcomes: BTreeMap<String, u64>,
}

impl SessionSummary {
    fn add(&mut self, record: &Map<String, Value>) {
        let ts = text(record, "ts");
        if self.started.is_empty() {
            self.started = ts.to_string();
        }
        self.records += 1;
        match text(record, "kind") {
            "session_start" => {
                self.started = ts.to_string();
                self.identity = text(record, "identity").into();
                self.role = text(record, "role").into();
                self.client = text(record, "client").into();
                self.application = record
                    .get("application")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                self.protocol = text(record, "protocol").into();
                self.database = text(record, "database").into();
                self.tls = record.get("tls").and_then(Value::as_bool) == Some(true);
            }
            "statement" => {
                self.statements += 1;
                *self
                    .verdicts
                    .entry(text(record, "verdict").to_string())
                    .or_default() += 1;
            }
            "result" => {
                self.rows += number(record, "rows");
                self.masked += masked_total(record);
            }
            "error" => self.errors += 1,
            "hold" => self.requests.push(text(record, "request").into()),
            "decision" => {
                *self
                    .outcomes
                    .entry(text(record, "verdict").to_string())
                    .or_default() += 1;
            }
            "session_end" => {
                self.ended = Some(ts.to_string());
                self.end_reason = Some(text(record, "reason").into());
            }
            _ => {}
        }
    }

    /// One line for a terminal, agent-supplied text escaped.
    pub fn line(&self) -> String {
        let verdicts: Vec<String> = self
            .verdicts
            .iter()
            .map(|(v, n)| format!("{n} {v}"))
            .collect();
        let line = format!(
            "{}  {} → {}  {} ({}) from {}{}  {} {}{}  {} statements{}, {} errors, {} rows, {} masked  [{}]",
            self.session,
            self.started,
            self.ended.as_deref().unwrap_or("(open)"),
            or_unknown(&self.identity),
            or_unknown(&self.role),
            or_unknown(&self.client),
            self.application
                .as_deref()
                .filter(|a| !a.is_empty())
                .map(|a| format!(" via {a}"))
                .unwrap_or_default(),
            or_unknown(&self.protocol),
            or_unknown(&self.database),
            if self.tls { " tls" } else { "" },
            self.statements,
            if verdicts.is_empty() {
                String::new()
            } else {
                format!(" ({})", verdicts.join(", "))
            },
            self.errors,
            self.rows,
            self.masked,
            self.end_reason.as_deref().unwrap_or("no end recorded"),
        );
        escape_terminal(&line.replace('\n', "\\n")).into_owned()
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "?"
    } else {
        s
    }
}

fn masked_total(record: &Map<String, Value>) -> u64 {
    record
        .get("masked")
        .and_then(Value::as_object)
        .map(|columns| {
            columns
                .values()
                .filter_map(Value::as_object)
                .flat_map(|kinds| kinds.values().filter_map(Value::as_u64))
                .sum()
        })
        .unwrap_or(0)
}

/// Statement verdicts a filter can name.
pub const VERDICTS: &[&str] = &["allow", "hold", "deny"];

/// Outcomes a filter can name: how a held statement's request ended, or
/// `error` for a session in which the server returned an error.
pub const OUTCOMES: &[&str] = &["approved", "denied", "expired", "withdrawn", "error"];

/// Which sessions `audit sessions` and the inbox's session browser list.
/// Every field given must match; text fields match exactly.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionFilter {
    pub identity: Option<String>,
    /// Record timestamps, as from [`time_bound`].
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only sessions with at least one statement of this verdict.
    pub verdict: Option<String>,
    /// Only sessions with a request that ended so (or with an error).
    pub outcome: Option<String>,
    pub database: Option<String>,
    pub application: Option<String>,
}

impl SessionFilter {
    pub fn admits(&self, s: &SessionSummary) -> bool {
        self.identity.as_ref().is_none_or(|i| *i == s.identity)
            && self.since.as_ref().is_none_or(|t| {
                s.ended.as_deref().unwrap_or("9999") >= t.as_str() || s.started >= *t
            })
            && self.until.as_ref().is_none_or(|t| s.started <= *t)
            && self
                .verdict
                .as_ref()
                .is_none_or(|v| s.verdicts.get(v).copied().unwrap_or(0) > 0)
            && self.outcome.as_ref().is_none_or(|o| {
                if o == "error" {
                    s.errors > 0
                } else {
                    s.outcomes.get(o).copied().unwrap_or(0) > 0
                }
            })
            && self.database.as_ref().is_none_or(|d| *d == s.database)
            && self
                .application
                .as_ref()
                .is_none_or(|a| s.application.as_deref() == Some(a.as_str()))
    }
}

/// The sessions in the log that pass `filter`, in the order they started.
/// A session is in a period when it was open during any part of it.
pub fn sessions(dir: &Path, filter: &SessionFilter) -> Result<Vec<SessionSummary>, String> {
    let mut index = SessionIndex::default();
    index.refresh(dir)?;
    Ok(index.matching(filter).cloned().collect())
}

/// Where a held statement's request is in the log: its session, the
/// position of its `hold` record among the session's records (from 0),
/// and the record's sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPlace {
    pub session: String,
    pub position: u64,
    pub seq: u64,
}

/// Every session's summary, kept up to date by reading only what was
/// appended since the last look: the inbox refreshes it on each view of
/// the session list, so a log of millions of records is read once, not
/// once per page view.
#[derive(Debug, Default)]
pub struct SessionIndex {
    /// The segment and byte offset read up to (complete lines only).
    segment: u64,
    offset: u64,
    summaries: Vec<SessionSummary>,
    by_id: std::collections::HashMap<String, usize>,
    requests: std::collections::HashMap<String, RequestPlace>,
}

impl SessionIndex {
    /// Reads what was appended to the log under `dir` since the last call.
    /// A log that shrank or lost the segment read last (replaced, or its
    /// torn end repaired) is read again from the start.
    pub fn refresh(&mut self, dir: &Path) -> Result<(), String> {
        let segs = segments(dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
        if segs.is_empty() {
            return Err(format!("`{}` holds no audit log", dir.display()));
        }
        let current = segs.iter().find(|(n, _)| *n == self.segment);
        let shrank = match current {
            Some((_, path)) => std::fs::metadata(path)
                .map(|m| m.len() < self.offset)
                .unwrap_or(true),
            None => self.segment != 0,
        };
        if shrank {
            *self = Self::default();
        }
        for (n, path) in segs {
            if n < self.segment {
                continue;
            }
            if n > self.segment {
                self.segment = n;
                self.offset = 0;
            }
            self.read_segment(&path)?;
        }
        Ok(())
    }

    fn read_segment(&mut self, path: &Path) -> Result<(), String> {
        use std::io::{Seek, SeekFrom};
        let mut file = std::fs::File::open(path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        file.seek(SeekFrom::Start(self.offset))
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            // A line without its newline is still being written: it is
            // read on the next refresh, whole.
            if n == 0 || line.last() != Some(&b'\n') {
                return Ok(());
            }
            self.offset += n as u64;
            if let Ok(record) = serde_json::from_slice::<Map<String, Value>>(&line) {
                self.add(&record);
            }
        }
    }

    fn add(&mut self, record: &Map<String, Value>) {
        let id = text(record, "session");
        if id.is_empty() {
            return;
        }
        let at = match self.by_id.get(id) {
            Some(at) => *at,
            None => {
                self.summaries.push(SessionSummary {
                    session: id.to_string(),
                    ..Default::default()
                });
                self.by_id.insert(id.to_string(), self.summaries.len() - 1);
                self.summaries.len() - 1
            }
        };
        let summary = &mut self.summaries[at];
        if text(record, "kind") == "hold" {
            self.requests.insert(
                text(record, "request").to_string(),
                RequestPlace {
                    session: id.to_string(),
                    position: summary.records,
                    seq: number(record, "seq"),
                },
            );
        }
        summary.add(record);
    }

    /// The sessions that pass `filter`, in the order they started.
    pub fn matching<'a>(
        &'a self,
        filter: &'a SessionFilter,
    ) -> impl DoubleEndedIterator<Item = &'a SessionSummary> + 'a {
        self.summaries.iter().filter(move |s| filter.admits(s))
    }

    pub fn session(&self, id: &str) -> Option<&SessionSummary> {
        self.by_id.get(id).map(|at| &self.summaries[*at])
    }

    /// Where the `hold` record of request `id` is.
    pub fn request(&self, id: &str) -> Option<&RequestPlace> {
        self.requests.get(id)
    }
}

/// A record with its line exactly as written.
pub type Line = (String, Map<String, Value>);

/// The records of one session, with the lines as written.
pub fn session_records(dir: &Path, session: &str) -> Result<Vec<Line>, String> {
    let mut found = Vec::new();
    for_each(dir, |line, record| {
        if text(record, "session") == session {
            found.push((line.to_string(), record.clone()));
        }
        true
    })?;
    Ok(found)
}

/// One page of a session's records, and how many it has in all.
#[derive(Debug, Default)]
pub struct SessionPage {
    pub total: usize,
    pub records: Vec<Line>,
}

/// Records `skip .. skip + limit` of a session, in order, and its total.
///
/// The log is scanned as bytes: a line is the session's when it holds
/// `"session":"<id>"` — which can only be the field itself, since a quote
/// inside any string value is escaped — and only the page's lines are
/// parsed. A session of 40,000 statements in a log of millions of records
/// opens at the speed of reading the files.
pub fn session_page(
    dir: &Path,
    session: &str,
    skip: usize,
    limit: usize,
) -> Result<SessionPage, String> {
    let needle = format!(
        "\"session\":{}",
        serde_json::to_string(session).map_err(|e| e.to_string())?
    );
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    let segs = segments(dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
    if segs.is_empty() {
        return Err(format!("`{}` holds no audit log", dir.display()));
    }
    let mut page = SessionPage::default();
    let mut line = Vec::new();
    for (_, path) in segs {
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            if finder.find(&line).is_none() {
                continue;
            }
            let wanted = page.total >= skip && page.total < skip.saturating_add(limit);
            if wanted {
                let written = String::from_utf8_lossy(&line).trim_end().to_string();
                // A torn line is not a record; `audit verify` reports it.
                let Ok(record) = serde_json::from_str::<Map<String, Value>>(&written) else {
                    continue;
                };
                if text(&record, "session") != session {
                    continue;
                }
                page.records.push((written, record));
            }
            page.total += 1;
        }
    }
    Ok(page)
}

/// Calls `each` with every record of a session, in order, and its line
/// as written; lines of other sessions are passed over unparsed, as in
/// [`session_page`].
pub fn session_each(
    dir: &Path,
    session: &str,
    mut each: impl FnMut(&str, &Map<String, Value>),
) -> Result<(), String> {
    let needle = format!(
        "\"session\":{}",
        serde_json::to_string(session).map_err(|e| e.to_string())?
    );
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    let segs = segments(dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
    let mut line = Vec::new();
    for (_, path) in segs {
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            if finder.find(&line).is_none() {
                continue;
            }
            let written = String::from_utf8_lossy(&line);
            let written = written.trim_end();
            // A torn line is not a record; `audit verify` reports it.
            let Ok(record) = serde_json::from_str::<Map<String, Value>>(written) else {
                continue;
            };
            if text(&record, "session") == session {
                each(written, &record);
            }
        }
    }
    Ok(())
}

/// `text` safe to show on a terminal or a page: every character that could
/// move the cursor, recolour, retitle, hide or reorder what is shown is
/// written as a visible escape (`\x1b`, `\r`, `\u{202e}`): C0 controls
/// except the newline, DEL, C1 controls, and the Unicode bidirectional and
/// line/paragraph separators. Agent-supplied text (statements, application
/// names, messages) reaches the auditor only through this.
pub fn escape_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    fn dangerous(c: char) -> bool {
        matches!(c,
            '\u{0}'..='\u{9}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
            | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(dangerous) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if dangerous(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if dangerous(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A session's records as a transcript a person reads, every character
/// that could control a terminal escaped ([`escape_terminal`]).
pub fn transcript(records: &[Line]) -> String {
    escape_terminal(&raw_transcript(records)).into_owned()
}

fn raw_transcript(records: &[Line]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (_, r) in records {
        let ts = text(r, "ts");
        let _ = match text(r, "kind") {
            "session_start" => writeln!(
                out,
                "{ts}  connected: {} (role {}) from {}{}, {} database {}{}",
                text(r, "identity"),
                text(r, "role"),
                text(r, "client"),
                r.get("application")
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty())
                    .map(|a| format!(" via {a}"))
                    .unwrap_or_default(),
                text(r, "protocol"),
                text(r, "database"),
                if r.get("tls").and_then(Value::as_bool) == Some(true) {
                    ", TLS"
                } else {
                    ", no TLS"
                },
            ),
            "statement" => {
                let classes: Vec<&str> = list(r, "classes");
                let objects: Vec<&str> = list(r, "objects");
                let _ = writeln!(
                    out,
                    "{ts}  statement [{}]{} → {} (rule {})",
                    classes.join(", "),
                    if objects.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", objects.join(", "))
                    },
                    verdict_word(text(r, "verdict")),
                    text(r, "rule"),
                );
                writeln!(out, "{}", indent(text(r, "sql"), "      "))
            }
            "hold" => writeln!(
                out,
                "{ts}  held as request {} for group {} (quorum {}), expires {}",
                text(r, "request"),
                text(r, "group"),
                number(r, "quorum"),
                text(r, "expires"),
            ),
            "decision" => writeln!(
                out,
                "{ts}  {} by {}{}{}",
                text(r, "verdict"),
                or_unknown(text(r, "approver")),
                r.get("reason")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default(),
                Some(text(r, "request"))
                    .filter(|s| !s.is_empty())
                    .map(|s| format!(" (request {s})"))
                    .unwrap_or_default(),
            ),
            "result" => {
                let _ = writeln!(
                    out,
                    "{ts}  result {}: {} rows, {} bytes, {:.1} ms{}; digest {}",
                    text(r, "tag"),
                    number(r, "rows"),
                    number(r, "bytes"),
                    number(r, "duration_us") as f64 / 1000.0,
                    masked_summary(r),
                    text(r, "digest"),
                );
                for row in r
                    .get("captured")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let cells: Vec<String> = row
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| v.as_str().map_or("NULL".to_string(), str::to_string))
                        .collect();
                    let _ = writeln!(out, "      | {} |", cells.join(" | "));
                }
                Ok(())
            }
            "error" => writeln!(
                out,
                "{ts}  error {}: {}",
                text(r, "code"),
                text(r, "message")
            ),
            "session_end" => writeln!(out, "{ts}  disconnected: {}", text(r, "reason")),
            other => writeln!(out, "{ts}  {other}"),
        };
    }
    out
}

fn list<'a>(r: &'a Map<String, Value>, key: &str) -> Vec<&'a str> {
    r.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn verdict_word(verdict: &str) -> &str {
    match verdict {
        "allow" => "allowed",
        "hold" => "held for approval",
        "deny" => "denied",
        other => other,
    }
}

/// `; masked email:3 in contact, card:1 in notes`
fn masked_summary(r: &Map<String, Value>) -> String {
    let Some(columns) = r.get("masked").and_then(Value::as_object) else {
        return String::new();
    };
    let parts: Vec<String> = columns
        .iter()
        .map(|(column, kinds)| {
            let kinds: Vec<String> = kinds
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, n)| format!("{k}:{n}"))
                .collect();
            format!("{} in {column}", kinds.join(","))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("; masked {}", parts.join(", "))
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of a period, as written, for a SIEM: from the first record
/// at or after `since` to the last at or before `until`, then on to the
/// first checkpoint after it, whose signature then covers every record
/// exported. The lines form an unbroken stretch of the chain, so the
/// receiver checks every link, hash and signature with the public key
/// alone (`airlock audit verify-export`).
pub fn export(
    dir: &Path,
    since: Option<&str>,
    until: Option<&str>,
    mut out: impl std::io::Write,
) -> Result<u64, String> {
    let mut started = since.is_none();
    let mut count = 0u64;
    let mut failed = None;
    for_each(dir, |line, record| {
        let ts = text(record, "ts");
        if !started {
            started = since.is_some_and(|s| ts >= s);
            if !started {
                return true;
            }
        }
        let after = until.is_some_and(|u| ts > u);
        if after && count == 0 {
            return false;
        }
        if let Err(e) = writeln!(out, "{line}") {
            failed = Some(e);
            return false;
        }
        count += 1;
        !(after && text(record, "kind") == "checkpoint")
    })?;
    match failed {
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(count),
        Some(e) => Err(format!("cannot write the export: {e}")),
        None => Ok(count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_log(dir: &Path, n: u64, lines: &[serde_json::Value]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(super::super::layout::segment_path(dir, n))
            .unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
    }

    #[test]
    fn the_session_index_reads_on_from_where_it_stopped() {
        use serde_json::json;
        let dir = tempfile::tempdir().unwrap();
        let start = |s: &str, app: &str, seq: u64| json!({"seq": seq, "ts": format!("2026-11-22T10:00:0{seq}.000000Z"), "kind": "session_start", "session": s, "identity": "agent", "database": "app", "application": app});
        write_log(
            dir.path(),
            1,
            &[
                start("s1", "one", 1),
                json!({"seq": 2, "ts": "2026-11-22T10:00:02.000000Z", "kind": "statement", "session": "s1", "verdict": "hold"}),
                json!({"seq": 3, "ts": "2026-11-22T10:00:03.000000Z", "kind": "hold", "session": "s1", "request": "r-1"}),
            ],
        );
        let mut index = SessionIndex::default();
        index.refresh(dir.path()).unwrap();
        assert_eq!(index.request("r-1").unwrap().position, 2);
        assert_eq!(index.request("r-1").unwrap().seq, 3);
        // A torn last line is left for the next refresh, then read whole.
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(super::super::layout::segment_path(dir.path(), 1))
                .unwrap();
            write!(f, "{{\"seq\": 4, \"ts\": \"2026-11-22T10:00:04.000000Z\", \"kind\": \"decision\", \"session\": \"s1\", ").unwrap();
            index.refresh(dir.path()).unwrap();
            assert!(index.session("s1").unwrap().outcomes.is_empty());
            writeln!(f, "\"verdict\": \"denied\"}}").unwrap();
        }
        write_log(dir.path(), 2, &[start("s2", "two", 5)]);
        index.refresh(dir.path()).unwrap();
        assert_eq!(
            index.session("s1").unwrap().outcomes.get("denied"),
            Some(&1)
        );
        assert_eq!(index.session("s1").unwrap().records, 4);
        let filter = SessionFilter {
            application: Some("two".into()),
            ..Default::default()
        };
        assert_eq!(index.matching(&filter).count(), 1);
        let filter = SessionFilter {
            outcome: Some("denied".into()),
            database: Some("app".into()),
            ..Default::default()
        };
        assert_eq!(
            index
                .matching(&filter)
                .map(|s| s.session.as_str())
                .collect::<Vec<_>>(),
            ["s1"]
        );
        // A log that was replaced (shorter than what was read) is read again.
        std::fs::remove_file(super::super::layout::segment_path(dir.path(), 2)).unwrap();
        std::fs::write(
            super::super::layout::segment_path(dir.path(), 1),
            format!("{}\n", start("s9", "nine", 1)),
        )
        .unwrap();
        index.refresh(dir.path()).unwrap();
        assert!(index.session("s1").is_none());
        assert!(index.session("s9").is_some());
        assert!(index.request("r-1").is_none());
    }

    #[test]
    fn time_bounds_take_dates_times_and_ages() {
        assert_eq!(
            time_bound("2026-11-22", false).unwrap(),
            "2026-11-22T00:00:00.000000Z"
        );
        assert_eq!(
            time_bound("2026-11-22", true).unwrap(),
            "2026-11-22T23:59:59.999999Z"
        );
        assert_eq!(
            time_bound("2026-11-22T10:30Z", false).unwrap(),
            "2026-11-22T10:30:00.000000Z"
        );
        assert_eq!(
            time_bound("2026-11-22 10:30:05", true).unwrap(),
            "2026-11-22T10:30:05.999999Z"
        );
        assert!(time_bound("2h", false).unwrap().ends_with('Z'));
        for bad in [
            "yesterday",
            "2026-1-2",
            "2026-11-22X10",
            "",
            "5w",
            "2026-13-01",
            "2026-11-32",
            "2026-11-22T24:00",
            "2026-11-22T10:60",
        ] {
            let e = time_bound(bad, false).unwrap_err();
            assert!(e.contains("is not a time"), "{e}");
        }
    }
}
