//! Verification of a log on disk, or of an export: every link, every
//! hash, every checkpoint signature and key rotation from the pinned key,
//! every session's transcript root, and how the log ends — and an account
//! of exactly what was checked, so that nothing unchecked reads as OK.
//!
//! `docs/audit-format.md` specifies what is checked; `tools/audit_verify.py`
//! is a second implementation that must reach the same verdicts.

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use serde_json::{Map, Value};

use sha2::{Digest, Sha256};

use super::chain::{self, Hash, GENESIS};
use super::layout::{segments, writer_running};

/// What is wrong with a log, in the order verification finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A record's content no longer matches its hash.
    Edited,
    /// Records are missing: the sequence jumps.
    Deleted { missing_from: u64, missing_to: u64 },
    /// A record that does not belong: a repeated sequence number or a link
    /// to the wrong predecessor.
    Inserted,
    /// Records out of order.
    Reordered,
    /// The log ends without the final checkpoint of a clean shutdown and
    /// no writer is running: records were removed from the end (or the
    /// gateway crashed and has not been restarted, which appends a repair
    /// record).
    Truncated,
    /// No format-1 record verifies with the chain key given.
    WrongKey,
    /// A checkpoint's signature does not verify with the key in force.
    BadSignature,
    /// A line is not a record at all (or of a format not known here).
    Unreadable,
    /// A key rotation not signed by the key in force.
    BadRotation,
    /// A signed checkpoint's transcript root of a session does not match
    /// the session's records.
    SessionMismatch,
}

impl Problem {
    /// The process exit code `airlock audit verify` uses for this problem.
    pub fn exit_code(&self) -> u8 {
        match self {
            Problem::Edited => 10,
            Problem::Deleted { .. } => 11,
            Problem::Inserted => 12,
            Problem::Reordered => 13,
            Problem::Truncated => 14,
            Problem::WrongKey => 15,
            Problem::BadSignature => 16,
            Problem::Unreadable => 17,
            Problem::BadRotation => 18,
            Problem::SessionMismatch => 19,
        }
    }

    /// The word both verifiers print for it.
    pub fn name(&self) -> &'static str {
        match self {
            Problem::Edited => "edited",
            Problem::Deleted { .. } => "deleted",
            Problem::Inserted => "inserted",
            Problem::Reordered => "reordered",
            Problem::Truncated => "truncated",
            Problem::WrongKey => "wrong-key",
            Problem::BadSignature => "bad-signature",
            Problem::Unreadable => "unreadable",
            Problem::BadRotation => "bad-rotation",
            Problem::SessionMismatch => "session-mismatch",
        }
    }
}

/// The exit code when nothing is broken but not everything asked could be
/// checked (no trusted key, format-1 records without the chain key, an
/// export whose end no signature covers).
pub const NOT_VOUCHED: u8 = 20;

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Edited => f.write_str("edited: the record does not match its hash"),
            Problem::Deleted {
                missing_from,
                missing_to,
            } => {
                write!(
                    f,
                    "deleted: records {missing_from} to {missing_to} are missing"
                )
            }
            Problem::Inserted => {
                f.write_str("inserted: the record does not link to the one before it")
            }
            Problem::Reordered => f.write_str("reordered: the record comes out of sequence"),
            Problem::Truncated => f.write_str(
                "truncated: the log ends without a final checkpoint and no gateway is writing it \
                 (records were removed from the end, or the gateway crashed and was not restarted; \
                 a restart appends the records its journal kept)",
            ),
            Problem::WrongKey => {
                f.write_str("wrong key: no format-1 record verifies with this chain key")
            }
            Problem::BadSignature => f.write_str(
                "bad signature: the checkpoint is not signed by the key in force (the pinned key \
                 or the last one a rotation introduced)",
            ),
            Problem::Unreadable => f.write_str("unreadable: the line is not an audit record"),
            Problem::BadRotation => {
                f.write_str("bad rotation: the key rotation is not signed by the key in force")
            }
            Problem::SessionMismatch => f.write_str(
                "session mismatch: a checkpoint's transcript root of a session does not match \
                 that session's records",
            ),
        }
    }
}

/// Where a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub file: PathBuf,
    pub line: usize,
    pub seq: Option<u64>,
    pub problem: Problem,
}

/// The keys verification trusts, given by the auditor (never by the log).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The Ed25519 public key checkpoints start from. `None`: no trusted
    /// key — signatures are checked against the key the log itself names,
    /// which shows only that the log agrees with itself.
    pub pinned: Option<[u8; 32]>,
    /// The chain key of format-1 records; without it their hashes are
    /// not checked.
    pub chain_key: Option<Hash>,
}

/// A signing key met in the log, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    pub key: [u8; 32],
    /// The seq of the rotation record that introduced it; `None` for the
    /// key verification started from.
    pub introduced_at: Option<u64>,
    pub checkpoints: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub segments: usize,
    pub records: u64,
    pub checkpoints: u64,
    pub repairs: u64,
    pub rotations: u64,
    pub first_seq: Option<u64>,
    pub last_seq: u64,
    pub first_ts: String,
    pub last_ts: String,
    /// Format-1 (keyed) records, and whether their hashes were checked.
    pub keyed_records: u64,
    pub keyed_checked: bool,
    /// The keys that signed, from the one verification started with.
    pub keys: Vec<KeyUse>,
    /// Whether the first key was the pinned one (else the log's own).
    pub pinned: bool,
    /// The seq of the last record a valid checkpoint covers.
    pub signed_through: u64,
    /// Session transcript roots compared with signed checkpoints.
    pub session_roots: u64,
    /// Sessions whose final root (after their end) a checkpoint signed.
    pub sessions_proved: u64,
    /// The log is still open: a gateway holds the writer lock.
    pub open: bool,
    /// The last record is a final checkpoint (a clean shutdown).
    pub last_final: bool,
    pub broken: Option<Broken>,
}

/// Something asked of verification that it could not check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unchecked {
    /// No trusted key: signatures were checked against the keys the log
    /// names, which shows only that the log agrees with itself.
    NoPinnedKey,
    /// Format-1 records whose keyed hashes could not be checked.
    KeyedRecords(u64),
    /// Records after the last checkpoint, which no signature covers yet.
    UnsignedTail {
        after: u64,
        records: u64,
        open: bool,
    },
}

impl fmt::Display for Unchecked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unchecked::NoPinnedKey => f.write_str(
                "no trusted public key was given (--pubkey, or audit.public_key with --config): \
                 signatures were checked only against the keys the log itself names, which anyone \
                 able to rewrite the files can also produce — the content is not vouched for",
            ),
            Unchecked::KeyedRecords(n) => write!(
                f,
                "{n} format-1 records: their hashes are keyed and no chain key was given \
                 (--key-file), so their content was not checked"
            ),
            Unchecked::UnsignedTail {
                after,
                records,
                open: true,
            } => write!(
                f,
                "the last {records} records (after seq {after}) are not yet covered by a \
                 checkpoint: the log is still being written"
            ),
            Unchecked::UnsignedTail { after, records, .. } => write!(
                f,
                "the last {records} records (after seq {after}) are covered by no checkpoint"
            ),
        }
    }
}

impl Report {
    /// Nothing broken and everything vouched for from the pinned key,
    /// except records a log still being written has not signed yet.
    pub fn vouched(&self) -> bool {
        self.broken.is_none()
            && self
                .unchecked()
                .iter()
                .all(|u| matches!(u, Unchecked::UnsignedTail { open: true, .. }))
    }

    /// What was asked but could not be checked; empty when everything was.
    pub fn unchecked(&self) -> Vec<Unchecked> {
        let mut out = Vec::new();
        if !self.pinned {
            out.push(Unchecked::NoPinnedKey);
        }
        if self.keyed_records > 0 && !self.keyed_checked {
            out.push(Unchecked::KeyedRecords(self.keyed_records));
        }
        let after = self
            .signed_through
            .max(self.first_seq.unwrap_or(1).saturating_sub(1));
        if self.broken.is_none() && self.records > 0 && after < self.last_seq {
            out.push(Unchecked::UnsignedTail {
                after,
                records: self.last_seq - after,
                open: self.open,
            });
        }
        out
    }
}

/// Verifies the log under `dir` from its first record.
pub fn verify(dir: &Path, trust: &Trust) -> Result<Report, String> {
    let segs = segments(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
    let files: Vec<PathBuf> = segs.into_iter().map(|(_, p)| p).collect();
    let (report, _) = run(&files, trust, false, None)?;
    Ok(finish(dir, &files, report))
}

/// Marks a log that ends without a final checkpoint, no writer running.
fn finish(dir: &Path, files: &[PathBuf], mut report: Report) -> Report {
    report.open = writer_running(dir);
    if report.broken.is_none() && report.records > 0 && !report.open && !ends_final(&report) {
        let file = files.last().cloned().unwrap_or_default();
        report.broken = Some(Broken {
            file,
            line: 0,
            seq: Some(report.last_seq),
            problem: Problem::Truncated,
        });
    }
    report
}

/// Verification that goes on from where it last stood instead of starting
/// over: the inbox's replay verifies the log on every page view, and a log
/// of millions of records would otherwise be re-checked each time.
///
/// It resumes after the last checkpoint it verified, once it has checked
/// that every byte it verified before is still the same (a SHA-256 of each
/// segment's verified prefix: reading is far cheaper than parsing and
/// re-serializing every record). Anything changed, or other keys given,
/// and it verifies from the start again.
#[derive(Default)]
pub struct Incremental {
    resume: Option<Resume>,
}

impl Incremental {
    pub fn verify(&mut self, dir: &Path, trust: &Trust) -> Result<Report, String> {
        let segs = segments(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
        let files: Vec<PathBuf> = segs.into_iter().map(|(_, p)| p).collect();
        let resume = self
            .resume
            .take()
            .filter(|r| r.pinned == trust.pinned && r.chain_key == trust.chain_key);
        let (report, resume) = run(&files, trust, false, resume)?;
        self.resume = resume;
        Ok(finish(dir, &files, report))
    }

    /// The seq verification will resume after, if any.
    pub fn resumes_after(&self) -> Option<u64> {
        self.resume.as_ref().map(|r| r.report.last_seq)
    }
}

/// Where verification stood just after a checkpoint it verified.
#[derive(Clone)]
struct Resume {
    /// Each segment read: its path, the bytes verified and their SHA-256.
    files: Vec<(PathBuf, u64, Hash)>,
    /// Lines read in the last of them.
    line: usize,
    state: State,
    report: Report,
    pinned: Option<[u8; 32]>,
    chain_key: Option<Hash>,
}

/// Whether every byte `resume` verified is still there, unchanged; if so,
/// the hasher of the last segment's prefix, to go on with.
fn still_valid(files: &[PathBuf], resume: &Resume) -> Option<Sha256> {
    use std::io::Read;
    let mut last = None;
    for (i, (path, len, digest)) in resume.files.iter().enumerate() {
        if files.get(i) != Some(path) {
            return None;
        }
        let mut file = std::fs::File::open(path).ok()?.take(*len);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut read = 0u64;
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            read += n as u64;
        }
        if read != *len || <[u8; 32]>::from(hasher.clone().finalize()) != *digest {
            return None;
        }
        last = Some(hasher);
    }
    last
}

/// Verifies an `audit export` file: an unbroken stretch of the chain from
/// wherever it starts. Its records are vouched for up to its last
/// checkpoint; a session is proved complete when its start and a signed
/// root after its end are both in the stretch.
pub fn verify_export(file: &Path, trust: &Trust) -> Result<Report, String> {
    run(&[file.to_path_buf()], trust, true, None).map(|(report, _)| report)
}

fn ends_final(report: &Report) -> bool {
    report.signed_through == report.last_seq && report.last_final
}

/// Per-session state: records so far, the root over their hashes, and
/// whether the session's start was seen (an export may begin mid-session).
#[derive(Default, Clone)]
struct SessionState {
    records: u64,
    root: Hash,
    started_here: bool,
}

fn run(
    files: &[PathBuf],
    trust: &Trust,
    export: bool,
    resume: Option<Resume>,
) -> Result<(Report, Option<Resume>), String> {
    use std::io::{Seek, SeekFrom};
    let resumed = resume.and_then(|r| still_valid(files, &r).map(|hasher| (r, hasher)));
    // Until a later checkpoint is verified, the place to resume stays put.
    let mut last_resume = resumed.as_ref().map(|(r, _)| r.clone());
    let (mut report, mut state, mut done, start, mut hasher) = match resumed {
        Some((r, hasher)) => {
            let mut done = r.files;
            let current = done.pop().map(|(p, len, _)| (p, len, r.line));
            (r.report, r.state, done, current, hasher)
        }
        None => {
            let mut report = Report {
                pinned: trust.pinned.is_some(),
                keyed_checked: trust.chain_key.is_some(),
                ..Default::default()
            };
            if let Some(k) = trust.pinned {
                report.keys.push(KeyUse {
                    key: k,
                    introduced_at: None,
                    checkpoints: 0,
                });
            }
            let state = State {
                prev: GENESIS,
                last_seq: 0,
                seen_format2: false,
                keyed_verified: false,
                key: trust.pinned,
                sessions: HashMap::new(),
                run_seen: false,
                export,
            };
            (report, state, Vec::new(), None, Sha256::new())
        }
    };
    report.segments = files.len();
    let mut line = Vec::new();
    for path in &files[done.len()..] {
        let mut file = std::fs::File::open(path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        let (mut offset, mut index) = (0u64, 0usize);
        match &start {
            // The segment verification stopped in: on from where it stood.
            Some((p, len, lines)) if p == path => {
                file.seek(SeekFrom::Start(*len))
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                (offset, index) = (*len, *lines);
            }
            _ => hasher = Sha256::new(),
        }
        let mut reader = BufReader::new(file);
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&line);
            offset += n as u64;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let checkpoints = report.checkpoints;
            if let Err((problem, seq)) = state.record(&line, trust, &mut report, path, index) {
                report.broken = Some(Broken {
                    file: path.clone(),
                    line: index + 1,
                    seq,
                    problem,
                });
                return Ok((report, last_resume));
            }
            index += 1;
            if report.checkpoints > checkpoints {
                let mut files = done.clone();
                files.push((path.clone(), offset, hasher.clone().finalize().into()));
                last_resume = Some(Resume {
                    files,
                    line: index,
                    state: state.clone(),
                    report: report.clone(),
                    pinned: trust.pinned,
                    chain_key: trust.chain_key,
                });
            }
        }
        done.push((path.clone(), offset, hasher.clone().finalize().into()));
    }
    Ok((report, last_resume))
}

#[derive(Clone)]
struct State {
    prev: Hash,
    last_seq: u64,
    seen_format2: bool,
    keyed_verified: bool,
    /// The key checkpoints must be signed with now.
    key: Option<[u8; 32]>,
    sessions: HashMap<String, SessionState>,
    /// A `writer_start` was met: sessions first seen after it are whole.
    run_seen: bool,
    export: bool,
}

type Found = (Problem, Option<u64>);

impl State {
    fn record(
        &mut self,
        line: &[u8],
        trust: &Trust,
        report: &mut Report,
        path: &Path,
        index: usize,
    ) -> Result<(), Found> {
        let record = serde_json::from_slice::<Map<String, Value>>(line)
            .map_err(|_| (Problem::Unreadable, None))?;
        let field_hash = |name: &str| {
            record
                .get(name)
                .and_then(Value::as_str)
                .and_then(chain::unhex::<32>)
        };
        let (Some(seq), Some(rec_prev), Some(rec_hash), Some(version)) = (
            record.get("seq").and_then(Value::as_u64),
            field_hash("prev"),
            field_hash("hash"),
            record.get("v").and_then(Value::as_u64),
        ) else {
            return Err((Problem::Unreadable, None));
        };
        let canonical = chain::canonical(&record);
        match version {
            chain::VERSION => {
                if chain::record_hash(&rec_prev, &canonical) != rec_hash {
                    return Err((Problem::Edited, Some(seq)));
                }
                self.seen_format2 = true;
            }
            chain::KEYED_VERSION => {
                // The writer never goes back to format 1: a keyed record
                // after a format-2 one is an edit passing itself off as old.
                if self.seen_format2 {
                    return Err((Problem::Edited, Some(seq)));
                }
                report.keyed_records += 1;
                if let Some(key) = &trust.chain_key {
                    if chain::keyed_record_hash(key, &rec_prev, &canonical) != rec_hash {
                        // Nothing has verified yet: the key is the likelier culprit.
                        let problem = if self.keyed_verified {
                            Problem::Edited
                        } else {
                            Problem::WrongKey
                        };
                        return Err((problem, Some(seq)));
                    }
                    self.keyed_verified = true;
                }
            }
            _ => return Err((Problem::Unreadable, Some(seq))),
        }
        let first = report.first_seq.is_none();
        if first && self.export {
            // An export starts wherever it starts: its first link is taken
            // as given, everything after it is checked.
            self.prev = rec_prev;
            self.last_seq = seq.saturating_sub(1);
        }
        // A record moved elsewhere leaves a gap where it was, found below
        // as a jump; a number seen already is a copy put in.
        if seq <= self.last_seq && self.last_seq > 0 {
            return Err((Problem::Inserted, Some(seq)));
        }
        if seq > self.last_seq + 1 {
            return Err((self.jump(seq, path, index), Some(seq)));
        }
        if rec_prev != self.prev {
            return Err((Problem::Inserted, Some(seq)));
        }
        let kind = record.get("kind").and_then(Value::as_str).unwrap_or("");
        let mut is_final = false;
        match kind {
            "checkpoint" => {
                report.checkpoints += 1;
                let named = field_hash("public_key");
                let key = self.key_in_force(named, report);
                let genuine = match (version, key) {
                    (chain::VERSION, Some(key)) => signed_by(
                        &key,
                        &chain::signed_message(chain::CHECKPOINT_DOMAIN, &record),
                        &record,
                    ),
                    (_, Some(key)) => (|| {
                        let signed_seq = record.get("signed_seq")?.as_u64()?;
                        let signed_hash = field_hash("signed_hash")?;
                        let message = chain::checkpoint_message_v1(signed_seq, &signed_hash);
                        Some(
                            signed_by(&key, &message, &record)
                                && signed_seq == self.last_seq
                                && signed_hash == self.prev,
                        )
                    })()
                    .unwrap_or(false),
                    (_, None) => false,
                };
                if !genuine {
                    return Err((Problem::BadSignature, Some(seq)));
                }
                if let Some(k) = report.keys.last_mut() {
                    k.checkpoints += 1;
                }
                if version == chain::VERSION {
                    self.check_sessions(&record, report)
                        .map_err(|p| (p, Some(seq)))?;
                }
                report.signed_through = seq;
                is_final = record.get("final").and_then(Value::as_bool) == Some(true);
            }
            "key_rotation" => {
                let named = field_hash("public_key");
                let key = self.key_in_force(named, report);
                let new_key = field_hash("new_public_key");
                let genuine = match (key, new_key) {
                    (Some(key), Some(_)) => signed_by(
                        &key,
                        &chain::signed_message(chain::ROTATION_DOMAIN, &record),
                        &record,
                    ),
                    _ => false,
                };
                let Some(new_key) = new_key.filter(|_| genuine && version == chain::VERSION) else {
                    return Err((Problem::BadRotation, Some(seq)));
                };
                self.key = Some(new_key);
                report.rotations += 1;
                report.keys.push(KeyUse {
                    key: new_key,
                    introduced_at: Some(seq),
                    checkpoints: 0,
                });
            }
            "repair" => report.repairs += 1,
            _ => {}
        }
        if kind == "writer_start" {
            // A new run of the writer: its transcripts start afresh, and
            // every session met from here on is whole in what follows.
            self.sessions.clear();
            self.run_seen = true;
        }
        if let Some(session) = record.get("session").and_then(Value::as_str) {
            let s = self.sessions.entry(session.to_string()).or_default();
            if s.records == 0 && (kind == "session_start" || self.run_seen) {
                s.started_here = true;
            }
            s.records += 1;
            s.root = chain::session_root(&s.root, &rec_hash);
        }
        let ts = record.get("ts").and_then(Value::as_str).unwrap_or("");
        if first {
            report.first_seq = Some(seq);
            report.first_ts = ts.to_string();
        }
        report.last_ts = ts.to_string();
        report.last_final = is_final;
        self.prev = rec_hash;
        self.last_seq = seq;
        report.last_seq = seq;
        report.records += 1;
        Ok(())
    }

    /// The key a checkpoint or rotation must be signed with. Without a
    /// pinned key, the first key the log names is taken (self-consistency
    /// only; the report says so), and rotations are followed from it.
    fn key_in_force(&mut self, named: Option<[u8; 32]>, report: &mut Report) -> Option<[u8; 32]> {
        if self.key.is_none() {
            self.key = named;
            if let Some(k) = named {
                report.keys.push(KeyUse {
                    key: k,
                    introduced_at: None,
                    checkpoints: 0,
                });
            }
        }
        self.key
    }

    /// Compares a checkpoint's signed transcript roots with the sessions'
    /// records. In an export, a session begun before it cannot be compared.
    fn check_sessions(
        &mut self,
        record: &Map<String, Value>,
        report: &mut Report,
    ) -> Result<(), Problem> {
        let Some(signed) = record.get("sessions").and_then(Value::as_object) else {
            return Err(Problem::SessionMismatch);
        };
        for (id, entry) in signed {
            let records = entry.get("records").and_then(Value::as_u64);
            let root = entry
                .get("root")
                .and_then(Value::as_str)
                .and_then(chain::unhex::<32>);
            let ended = entry.get("ended").and_then(Value::as_bool) == Some(true);
            let Some(s) = self.sessions.get(id.as_str()) else {
                if self.export {
                    continue;
                }
                return Err(Problem::SessionMismatch);
            };
            if self.export && !s.started_here {
                continue;
            }
            if records != Some(s.records) || root != Some(s.root) {
                return Err(Problem::SessionMismatch);
            }
            report.session_roots += 1;
            if ended {
                report.sessions_proved += 1;
                self.sessions.remove(id.as_str());
            }
        }
        Ok(())
    }

    /// A jump in the sequence: reordered when the missing record comes
    /// later in the same file, deleted otherwise.
    fn jump(&self, seq: u64, path: &Path, index: usize) -> Problem {
        let wanted = self.last_seq + 1;
        let later = std::fs::read(path).ok().is_some_and(|bytes| {
            bytes.split(|&b| b == b'\n').skip(index + 1).any(|l| {
                serde_json::from_slice::<Map<String, Value>>(l)
                    .ok()
                    .and_then(|r| r.get("seq").and_then(Value::as_u64))
                    == Some(wanted)
            })
        });
        if later {
            Problem::Reordered
        } else {
            Problem::Deleted {
                missing_from: wanted,
                missing_to: seq - 1,
            }
        }
    }
}

fn signed_by(key: &[u8; 32], message: &[u8], record: &Map<String, Value>) -> bool {
    let Some(signature) = record
        .get("signature")
        .and_then(Value::as_str)
        .and_then(chain::unhex::<64>)
    else {
        return false;
    };
    VerifyingKey::from_bytes(key).is_ok_and(|k| {
        k.verify(message, &Signature::from_bytes(&signature))
            .is_ok()
    })
}
