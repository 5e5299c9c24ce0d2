//! The chain: how a record is turned into bytes, hashed, linked and signed.
//!
//! A record is a JSON object. Its canonical bytes are its compact JSON
//! serialization with the keys in sorted order and without `hash`. Because
//! serde_json's map is ordered, parsing a line and serializing it again
//! gives back exactly the bytes that were hashed. `docs/audit-format.md`
//! specifies all of it for other implementations.
//!
//! Format 2 (written today): a record's hash is
//! `SHA-256("airlock-audit-record-v2\n" ‖ prev ‖ canonical)`, computable by
//! anyone, and Ed25519 checkpoints sign their own canonical bytes (which
//! name the chain head as `prev`): the signature, not a secret, is what
//! makes an edit detectable. SHA-256 rather than BLAKE3 so that any
//! standard library can check a log (Python's `hashlib` has no BLAKE3).
//!
//! Format 1 (logs written before): the hash was keyed,
//! `BLAKE3-keyed(chain_key, prev ‖ canonical)`, so only a holder of the
//! chain key — who could also forge — could check content. Such records
//! are still read, and verified when the chain key is given.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The version of the record format written, as `"v"` in every record.
pub const VERSION: u64 = 2;

/// The first format: keyed BLAKE3 hashes.
pub const KEYED_VERSION: u64 = 1;

pub type Hash = [u8; 32];

pub const GENESIS: Hash = [0; 32];

/// Domain-separation prefixes: a hash or signature made for one purpose can
/// never be taken for another.
pub const RECORD_DOMAIN: &[u8] = b"airlock-audit-record-v2\n";
pub const SESSION_DOMAIN: &[u8] = b"airlock-audit-session-v2\n";
pub const CHECKPOINT_DOMAIN: &[u8] = b"airlock-audit-checkpoint-v2\n";
pub const ROTATION_DOMAIN: &[u8] = b"airlock-audit-key-rotation-v2\n";

pub use crate::hex::{decode as unhex, encode as hex};

/// The bytes a record's hash covers: the record without `hash`.
pub fn canonical(record: &Map<String, Value>) -> Vec<u8> {
    canonical_without(record, &["hash"])
}

/// The record's canonical bytes without the fields named.
pub fn canonical_without(record: &Map<String, Value>, leave_out: &[&str]) -> Vec<u8> {
    if !leave_out.iter().any(|k| record.contains_key(*k)) {
        return serde_json::to_vec(record).expect("a JSON map serializes");
    }
    let mut without = record.clone();
    for k in leave_out {
        without.remove(*k);
    }
    serde_json::to_vec(&Value::Object(without)).expect("a JSON map serializes")
}

/// A format-2 record hash: no key, anyone can compute it.
pub fn record_hash(prev: &Hash, canonical: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(RECORD_DOMAIN);
    h.update(prev);
    h.update(canonical);
    h.finalize().into()
}

/// A format-1 record hash, keyed with the chain key.
pub fn keyed_record_hash(key: &Hash, prev: &Hash, canonical: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(prev);
    h.update(canonical);
    *h.finalize().as_bytes()
}

/// The next transcript root of a session after one more of its records:
/// `SHA-256("airlock-audit-session-v2\n" ‖ root ‖ record hash)`, from
/// all zeros. A checkpoint signs each session's root and record count, so
/// a session's records can be proved complete with that checkpoint alone.
pub fn session_root(root: &Hash, record: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(SESSION_DOMAIN);
    h.update(root);
    h.update(record);
    h.finalize().into()
}

/// What a signature over a record covers: the domain, then the record's
/// canonical bytes without `hash` and `signature` (so its position —
/// `seq`, `prev` — and every other field are signed).
pub fn signed_message(domain: &[u8], record: &Map<String, Value>) -> Vec<u8> {
    let mut m = domain.to_vec();
    m.extend_from_slice(&canonical_without(record, &["hash", "signature"]));
    m
}

/// Completes `record` (which already has `v` and `prev`) with its hash and
/// returns the line to write (without the newline) and the hash.
pub fn seal(prev: &Hash, record: &mut Map<String, Value>) -> (Vec<u8>, Hash) {
    record.remove("hash");
    // Serialized once: the line is the canonical bytes with `"hash":"…"`
    // spliced in where the sorted keys put it.
    let mut canonical = Vec::with_capacity(256);
    canonical.push(b'{');
    let mut at = None;
    for (i, (key, value)) in record.iter().enumerate() {
        if at.is_none() && key.as_str() > "hash" {
            at = Some((canonical.len(), i == 0));
        }
        if i > 0 {
            canonical.push(b',');
        }
        serde_json::to_writer(&mut canonical, key).expect("a string serializes");
        canonical.push(b':');
        serde_json::to_writer(&mut canonical, value).expect("a JSON value serializes");
    }
    let (at, first) = at.unwrap_or((canonical.len(), record.is_empty()));
    canonical.push(b'}');
    let hash = record_hash(prev, &canonical);
    let hex_hash = hex(&hash);
    let mut line = Vec::with_capacity(canonical.len() + 76);
    line.extend_from_slice(&canonical[..at]);
    // Before a later key, the splice brings its own comma; after the last
    // key (or into an empty object) it takes one from what precedes it.
    let before_later_key = at < canonical.len() - 1;
    if before_later_key && !first {
        // `at` points at the comma before the later key.
        line.extend_from_slice(b",\"hash\":\"");
        line.extend_from_slice(hex_hash.as_bytes());
        line.push(b'"');
        line.extend_from_slice(&canonical[at..]);
    } else if before_later_key {
        // The later key is the first one: no comma precedes it.
        line.extend_from_slice(b"\"hash\":\"");
        line.extend_from_slice(hex_hash.as_bytes());
        line.extend_from_slice(b"\",");
        line.extend_from_slice(&canonical[at..]);
    } else {
        if !first {
            line.push(b',');
        }
        line.extend_from_slice(b"\"hash\":\"");
        line.extend_from_slice(hex_hash.as_bytes());
        line.extend_from_slice(b"\"}");
    }
    record.insert("hash".into(), Value::String(hex_hash));
    (line, hash)
}

/// The message a format-1 checkpoint's signature covers: the sequence
/// number and hash of the record it vouches for.
pub fn checkpoint_message_v1(seq: u64, hash: &Hash) -> Vec<u8> {
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
    if !(0..=9999).contains(&year) {
        return format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        );
    }
    // Written digit by digit: this runs for every record.
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, (rem / 3600) as u64);
    put(14, 2, ((rem / 60) % 60) as u64);
    put(17, 2, (rem % 60) as u64);
    put(20, 6, u64::from(micros));
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsed_line_gives_back_the_bytes_that_were_hashed() {
        let mut record = Map::new();
        record.insert("v".into(), Value::from(VERSION));
        record.insert("seq".into(), Value::from(1u64));
        record.insert("kind".into(), Value::from("statement"));
        record.insert(
            "sql".into(),
            Value::from("SELECT 'é' -- \"quoted\"\n\u{1b}[2J"),
        );
        record.insert("prev".into(), Value::from(hex(&GENESIS)));
        let (line, hash) = seal(&GENESIS, &mut record);
        let parsed: Map<String, Value> = serde_json::from_slice(&line).unwrap();
        assert_eq!(record_hash(&GENESIS, &canonical(&parsed)), hash);
        assert_eq!(serde_json::to_vec(&Value::Object(parsed)).unwrap(), line);
        assert_ne!(record_hash(&[1; 32], &canonical(&record)), hash);
    }

    #[test]
    fn a_sealed_line_is_the_records_own_serialization() {
        let cases: [&[(&str, Value)]; 5] = [
            &[],
            &[("a", Value::from(1))],
            &[("z", Value::from("x"))],
            &[
                ("a", Value::from(1)),
                ("kind", Value::from("s")),
                ("v", Value::from(2)),
            ],
            &[
                ("ha", Value::from(1)),
                ("hash", Value::from("stale")),
                ("hb", Value::from(2)),
            ],
        ];
        for fields in cases {
            let mut record: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let (line, hash) = seal(&GENESIS, &mut record);
            assert_eq!(line, serde_json::to_vec(&record).unwrap(), "{record:?}");
            assert_eq!(record_hash(&GENESIS, &canonical(&record)), hash);
        }
    }

    #[test]
    fn the_record_hash_is_domain_separated_sha256() {
        // Any SHA-256 implementation gives the same: no secret, no BLAKE3.
        let mut h = Sha256::new();
        h.update(b"airlock-audit-record-v2\n");
        h.update([0u8; 32]);
        h.update(b"{}");
        let expected: Hash = h.finalize().into();
        assert_eq!(record_hash(&GENESIS, b"{}"), expected);
        assert_ne!(session_root(&GENESIS, &expected), expected);
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
