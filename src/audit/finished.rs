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

impl Unrecorded {
    /// Notes a result from `tally`, which starts over for the next one
    /// (reset in place: its hasher's state is two kilobytes, too much to
    /// move for every statement).
    pub fn result(
        &mut self,
        tag: String,
        took: Duration,
        masked: MaskStats,
        tally: &mut ResultTally,
    ) {
        let mut digest = [0u8; 64];
        tally.digest.finish_hex(&mut digest);
        tally.digest.reset();
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
