//! The records of statements that finished, held until the client has
//! been written to.
//!
//! A statement's result or error is recorded when the server has answered
//! it, and nothing waits on that record: it is a deferred record, written
//! with the next statement's or by the syncing thread. Building and
//! sealing it (fields, canonical bytes, hashes) is work the client need not
//! wait for, so the relays note what finished while they answer and write
//! the records once the answer is on its way. The order of a session's
//! records is the order its statements finished, and a session's end
//! writes whatever is still held before its own record.

use std::time::Duration;

use super::{Audit, AuditEvent, RowDigest};
use crate::gate::SessionId;
use crate::mask::MaskStats;

/// The counts of one result as sent to the client.
#[derive(Default)]
pub struct ResultTally {
    pub rows: u64,
    pub bytes: u64,
    /// Of the row messages as sent to the client.
    pub digest: RowDigest,
    /// The first rows as sent, when the audit captures rows.
    pub captured: Vec<Vec<Option<String>>>,
}

impl ResultTally {
    /// Counts one row message as sent.
    pub fn row(&mut self, frame: &[u8]) {
        self.rows += 1;
        self.sent(frame);
    }

    /// Counts a message of the result that is not a row (COPY data).
    pub fn sent(&mut self, frame: &[u8]) {
        self.bytes += frame.len() as u64;
        self.digest.update(frame);
    }
}

enum Finished {
    Result {
        tag: String,
        took: Duration,
        masked: MaskStats,
        rows: u64,
        bytes: u64,
        /// The rows' digest, in hex.
        digest: [u8; 64],
        captured: Vec<Vec<Option<String>>>,
    },
    Error {
        code: String,
        message: String,
    },
}

/// A session's finished statements whose records are not written yet.
#[derive(Default)]
pub struct Unrecorded(Vec<Finished>);

/// How many finished statements are held at most. One query can finish
/// millions (a MySQL multi-statement `DO 1; DO 1; …` of 16 MiB is answered
/// in one write): past this many, the records are written before the
/// answer rather than held in memory until it.
const HELD_AT_MOST: usize = 64;

impl Unrecorded {
    /// Whether the records held should be written now, without waiting
    /// for the client's write.
    pub fn is_full(&self) -> bool {
        self.0.len() >= HELD_AT_MOST
    }

    /// Notes a result from `tally`, which starts over for the next one
    /// (in place: its hasher's state is two kilobytes, too much to move
    /// for every statement).
    pub fn result(
        &mut self,
        tag: String,
        took: Duration,
        masked: MaskStats,
        tally: &mut ResultTally,
    ) {
        let mut digest = [0u8; 64];
        tally.digest.take_hex(&mut digest);
        self.0.push(Finished::Result {
            tag,
            took,
            masked,
            rows: std::mem::take(&mut tally.rows),
            bytes: std::mem::take(&mut tally.bytes),
            digest,
            captured: std::mem::take(&mut tally.captured),
        });
    }

    /// `message` is already masked.
    pub fn error(&mut self, code: String, message: String) {
        self.0.push(Finished::Error { code, message });
    }

    /// Writes the records held, in the order the statements finished.
    pub fn record(&mut self, audit: &Audit, session: &SessionId) {
        for finished in self.0.drain(..) {
            match finished {
                Finished::Result {
                    tag,
                    took,
                    masked,
                    rows,
                    bytes,
                    digest,
                    captured,
                } => {
                    audit.record(AuditEvent::Result {
                        session,
                        tag: &tag,
                        rows,
                        bytes,
                        duration: took,
                        masked: &masked,
                        digest: std::str::from_utf8(&digest).expect("hex digits are ASCII"),
                        captured: &captured,
                    });
                }
                Finished::Error { code, message } => {
                    audit.record(AuditEvent::Error {
                        session,
                        code: &code,
                        message: &message,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_full_at_its_limit_and_empty_once_recorded() {
        let audit = Audit::log_only();
        let session = SessionId("s-1".into());
        let mut held = Unrecorded::default();
        for i in 0..HELD_AT_MOST {
            assert!(!held.is_full(), "full after {i}");
            if i % 2 == 0 {
                held.result(
                    "SELECT 1".into(),
                    Duration::ZERO,
                    MaskStats::default(),
                    &mut ResultTally::default(),
                );
            } else {
                held.error("42P01".into(), "relation does not exist".into());
            }
        }
        assert!(held.is_full());
        held.record(&audit, &session);
        assert!(!held.is_full());
        assert!(held.0.is_empty());
    }
}
