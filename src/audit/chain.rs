//! The chain: how a record is turned into bytes, hashed and linked.
//!
//! A record is a JSON object. Its canonical bytes are its compact JSON
//! serialization with the keys in sorted order and without `hash`; its hash
//! is `BLAKE3-keyed(chain_key, prev ‖ canonical bytes)`, where `prev` is the
//! 32-byte hash of the record before it (all zeros for the first record of
//! a log). The written line is the same serialization with `hash` included.
//! Because serde_json's map is ordered, parsing a line and serializing it
//! again gives back exactly the bytes that were hashed.

use serde_json::{Map, Value};

/// The version of the record schema, written as `"v"` in every record.
pub const VERSION: u64 = 1;

pub type Hash = [u8; 32];

pub const GENESIS: Hash = [0; 32];

pub use crate::hex::{decode as unhex, encode as hex};

/// The bytes a record's hash covers: the record without `hash`.
pub fn canonical(record: &Map<String, Value>) -> Vec<u8> {
    if !record.contains_key("hash") {
        return serde_json::to_vec(record).expect("a JSON map serializes");
    }
    let mut without = record.clone();
    without.remove("hash");
    serde_json::to_vec(&Value::Object(without)).expect("a JSON map serializes")
}

pub fn record_hash(key: &Hash, prev: &Hash, canonical: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(prev);
    h.update(canonical);
    *h.finalize().as_bytes()
}

/// Completes `record` (which already has `prev`) with its hash and returns
/// the line to write (without the newline) and the hash.
pub fn seal(key: &Hash, prev: &Hash, record: &mut Map<String, Value>) -> (Vec<u8>, Hash) {
    let hash = record_hash(key, prev, &canonical(record));
    record.insert("hash".into(), Value::String(hex(&hash)));
    let line = serde_json::to_vec(&*record).expect("a JSON map serializes");
    (line, hash)
}

/// The message a checkpoint's signature covers: the sequence number and
/// hash of the record it vouches for.
pub fn checkpoint_message(seq: u64, hash: &Hash) -> Vec<u8> {
    let mut m = Vec::with_capacity(48);
    m.extend_from_slice(b"airlock-audit-checkpoint-v1");
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

/// `2026-11-22T01:02:03.456789Z` for a time since the Unix epoch.
pub fn timestamp(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let micros = since_epoch.subsec_micros();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsed_line_gives_back_the_bytes_that_were_hashed() {
        let key = [7u8; 32];
        let mut record = Map::new();
        record.insert("v".into(), Value::from(VERSION));
        record.insert("seq".into(), Value::from(1u64));
        record.insert("kind".into(), Value::from("statement"));
        record.insert("sql".into(), Value::from("SELECT 'é' -- \"quoted\"\n"));
        record.insert("prev".into(), Value::from(hex(&GENESIS)));
        let (line, hash) = seal(&key, &GENESIS, &mut record);
        let parsed: Map<String, Value> = serde_json::from_slice(&line).unwrap();
        assert_eq!(record_hash(&key, &GENESIS, &canonical(&parsed)), hash);
        assert_eq!(serde_json::to_vec(&Value::Object(parsed)).unwrap(), line);
        assert_ne!(record_hash(&[8u8; 32], &GENESIS, &canonical(&record)), hash);
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        use std::time::Duration;
        assert_eq!(
            timestamp(Duration::from_secs(0)),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            timestamp(Duration::new(1_795_309_323, 456_789_000)),
            "2026-11-22T01:02:03.456789Z"
        );
        assert_eq!(
            timestamp(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
