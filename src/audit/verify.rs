//! Verification of a log on disk: every link, every hash, every
//! checkpoint signature, and how the log ends.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{Map, Value};

use super::chain::{self, Hash, GENESIS};
use super::log::segments;

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
    /// No record verifies with the chain key given.
    WrongKey,
    /// A checkpoint's signature does not verify with the public key.
    BadSignature,
    /// A line is not a record at all.
    Unreadable,
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
        }
    }
}

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
                 (records were removed from the end, or the gateway crashed and was not restarted)",
            ),
            Problem::WrongKey => f.write_str("wrong key: no record verifies with this chain key"),
            Problem::BadSignature => {
                f.write_str("bad signature: the checkpoint does not verify with the public key")
            }
            Problem::Unreadable => f.write_str("unreadable: the line is not an audit record"),
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

#[derive(Debug, Default)]
pub struct Report {
    pub segments: usize,
    pub records: u64,
    pub checkpoints: u64,
    pub repairs: u64,
    /// The log is still open: a gateway holds the writer lock.
    pub open: bool,
    pub broken: Option<Broken>,
}

/// The file a running writer holds; verification uses it to tell a log
/// that is being written from one cut short.
pub const WRITER_LOCK: &str = "writer.pid";

/// Verifies the log under `dir`. With `key`, every record's hash is
/// checked; without it, links, sequence and signatures are. With
/// `public_key`, checkpoint signatures are checked against it (a third
/// party's trusted copy); otherwise against the key each checkpoint names.
pub fn verify(
    dir: &Path,
    key: Option<&Hash>,
    public_key: Option<&[u8; 32]>,
) -> Result<Report, String> {
    let mut report = Report::default();
    let segs = segments(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
    report.segments = segs.len();
    let mut prev: Hash = GENESIS;
    let mut last_seq = 0u64;
    let mut last_kind_final = false;
    let mut verified_any = false;
    for (_, path) in &segs {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line = line.map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            let at = |problem: Problem, seq: Option<u64>| Broken {
                file: path.clone(),
                line: index + 1,
                seq,
                problem,
            };
            let Ok(record) = serde_json::from_slice::<Map<String, Value>>(&line) else {
                report.broken = Some(at(Problem::Unreadable, None));
                return Ok(report);
            };
            let field_hash = |name: &str| {
                record
                    .get(name)
                    .and_then(Value::as_str)
                    .and_then(chain::unhex::<32>)
            };
            let (Some(seq), Some(rec_prev), Some(rec_hash)) = (
                record.get("seq").and_then(Value::as_u64),
                field_hash("prev"),
                field_hash("hash"),
            ) else {
                report.broken = Some(at(Problem::Unreadable, None));
                return Ok(report);
            };
            if let Some(key) = key {
                if chain::record_hash(key, &rec_prev, &chain::canonical(&record)) != rec_hash {
                    // Nothing has verified yet: the key is the likelier culprit.
                    let problem = if !verified_any {
                        Problem::WrongKey
                    } else {
                        Problem::Edited
                    };
                    report.broken = Some(at(problem, Some(seq)));
                    return Ok(report);
                }
                verified_any = true;
            }
            // A record moved elsewhere leaves a gap where it was, found
            // below as a jump; a number seen already is a copy put in.
            if seq <= last_seq && last_seq > 0 {
                report.broken = Some(at(Problem::Inserted, Some(seq)));
                return Ok(report);
            }
            if seq > last_seq + 1 {
                // The missing record further on means the order was changed.
                let later = std::fs::read(path).ok().is_some_and(|bytes| {
                    bytes.split(|&b| b == b'\n').skip(index + 1).any(|l| {
                        serde_json::from_slice::<Map<String, Value>>(l)
                            .ok()
                            .and_then(|r| r.get("seq").and_then(Value::as_u64))
                            == Some(last_seq + 1)
                    })
                });
                let problem = if later {
                    Problem::Reordered
                } else {
                    Problem::Deleted {
                        missing_from: last_seq + 1,
                        missing_to: seq - 1,
                    }
                };
                report.broken = Some(at(problem, Some(seq)));
                return Ok(report);
            }
            if rec_prev != prev {
                report.broken = Some(at(Problem::Inserted, Some(seq)));
                return Ok(report);
            }
            let kind = record.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind == "checkpoint" {
                report.checkpoints += 1;
                let signed_ok = (|| {
                    let signed_seq = record.get("signed_seq")?.as_u64()?;
                    let signed_hash = field_hash("signed_hash")?;
                    let signature = chain::unhex::<64>(record.get("signature")?.as_str()?)?;
                    let named = field_hash("public_key")?;
                    let key = VerifyingKey::from_bytes(public_key.unwrap_or(&named)).ok()?;
                    let message = chain::checkpoint_message(signed_seq, &signed_hash);
                    let genuine = key
                        .verify(&message, &Signature::from_bytes(&signature))
                        .is_ok();
                    Some(genuine && signed_seq == last_seq && signed_hash == prev)
                })();
                if signed_ok != Some(true) {
                    report.broken = Some(at(Problem::BadSignature, Some(seq)));
                    return Ok(report);
                }
            }
            if kind == "repair" {
                report.repairs += 1;
            }
            last_kind_final =
                kind == "checkpoint" && record.get("final").and_then(Value::as_bool) == Some(true);
            prev = rec_hash;
            last_seq = seq;
            report.records += 1;
        }
    }
    report.open = writer_running(dir);
    if report.records > 0 && !last_kind_final && !report.open {
        let (file, line) = segs.last().map(|(_, p)| (p.clone(), 0)).unwrap_or_default();
        report.broken = Some(Broken {
            file,
            line,
            seq: Some(last_seq),
            problem: Problem::Truncated,
        });
    }
    Ok(report)
}

/// Whether the process named in the writer lock is alive.
pub fn writer_running(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(WRITER_LOCK)) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return false;
    };
    Path::new(&format!("/proc/{pid}")).exists()
}
