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
use std::borrow::Cow;

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
    let mut line = Vec::with_capacity(256);
    let hash = Record::from(&*record).seal_into(prev, &mut line);
    record.insert("hash".into(), Value::String(hex(&hash)));
    (line, hash)
}

/// One field of a [`Record`]: its key, and where it starts in the buffer,
/// where its value starts and where it ends.
#[derive(Debug)]
struct Field {
    key: Cow<'static, str>,
    /// The key's first eight bytes, big-endian (zeros after a shorter
    /// key): comparing these orders most keys as their bytes do, in one
    /// comparison.
    rank: u64,
    start: u32,
    value: u32,
    end: u32,
}

/// A record as it is built for the log: each field already serialized as
/// compact JSON, exactly as serde_json writes it, so that sealing is one
/// pass of copying in key order. Building a `serde_json::Map` per
/// statement cost a tree of owned keys and values, then a walk to
/// serialize it; this costs one buffer.
#[derive(Debug, Default)]
pub struct Record {
    /// Each field as it is written, `"key":value`, back to back.
    values: Vec<u8>,
    /// The fields in the order put. A key put again replaces the earlier
    /// value, as a map's insert would (the later field wins when the
    /// record is sealed).
    fields: Vec<Field>,
}

impl Record {
    pub fn new(kind: &'static str) -> Self {
        let mut r = Self {
            values: Vec::with_capacity(512),
            fields: Vec::with_capacity(16),
        };
        r.str("kind", kind);
        r
    }

    /// The session this record is part of (`session` in the record).
    pub fn session(&mut self, id: &str) -> &mut Self {
        self.str("session", id)
    }

    /// The session of the record, when its `session` is a string: the
    /// transcript the record joins, however the field was put.
    pub fn session_id(&self) -> Option<Cow<'_, str>> {
        let json = self.get("session")?;
        let body = json.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        if body.contains(&b'\\') {
            return serde_json::from_slice::<String>(json).ok().map(Cow::Owned);
        }
        std::str::from_utf8(body).ok().map(Cow::Borrowed)
    }

    pub fn str(&mut self, key: impl Into<Cow<'static, str>>, value: &str) -> &mut Self {
        self.put(key.into(), |out| write_str(out, value))
    }

    pub fn u64(&mut self, key: impl Into<Cow<'static, str>>, value: u64) -> &mut Self {
        self.put(key.into(), |out| {
            serde_json::to_writer(out, &value).expect("a number serializes")
        })
    }

    pub fn bool(&mut self, key: impl Into<Cow<'static, str>>, value: bool) -> &mut Self {
        self.put(key.into(), |out| {
            out.extend_from_slice(if value { b"true" } else { b"false" })
        })
    }

    pub fn null(&mut self, key: impl Into<Cow<'static, str>>) -> &mut Self {
        self.put(key.into(), |out| out.extend_from_slice(b"null"))
    }

    /// An array of strings.
    pub fn strs<'s>(
        &mut self,
        key: impl Into<Cow<'static, str>>,
        values: impl IntoIterator<Item = &'s str>,
    ) -> &mut Self {
        self.put(key.into(), |out| {
            out.push(b'[');
            for (i, v) in values.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, v);
            }
            out.push(b']');
        })
    }

    /// Any JSON value (its maps serialize with sorted keys, as the whole
    /// record does).
    pub fn value(&mut self, key: impl Into<Cow<'static, str>>, value: &Value) -> &mut Self {
        self.put(key.into(), |out| {
            serde_json::to_writer(out, value).expect("a JSON value serializes")
        })
    }

    /// The value of `key`, as JSON.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .rev()
            .find(|f| f.key == key)
            .map(|f| &self.values[f.value as usize..f.end as usize])
    }

    pub fn remove(&mut self, key: &str) {
        self.fields.retain(|f| f.key != key);
    }

    fn put(&mut self, key: Cow<'static, str>, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        let start = self.values.len() as u32;
        match &key {
            // Airlock's own keys are plain words: copied, not scanned.
            Cow::Borrowed(word) => {
                debug_assert!(word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
                self.values.push(b'"');
                self.values.extend_from_slice(word.as_bytes());
                self.values.extend_from_slice(b"\":");
            }
            Cow::Owned(key) => {
                write_str(&mut self.values, key);
                self.values.push(b':');
            }
        }
        let value = self.values.len() as u32;
        write(&mut self.values);
        self.fields.push(Field {
            rank: rank(key.as_bytes()),
            key,
            start,
            value,
            end: self.values.len() as u32,
        });
        self
    }

    /// The compact JSON of the record with its keys in sorted order,
    /// appended to `out`. Returns where `"hash":"…"` goes (an offset in
    /// `out`) and how: `Some(true)` before the first key, `Some(false)`
    /// after a key (at the comma or brace that follows it), `None` into an
    /// empty object.
    fn canonical_into(&mut self, out: &mut Vec<u8>) -> (usize, Option<bool>) {
        // Latest first, so that after a stable sort the first of equal
        // keys is the one put last.
        self.fields.reverse();
        self.fields.sort_by(|a, b| {
            a.rank
                .cmp(&b.rank)
                .then_with(|| key_order(a.key.as_bytes(), b.key.as_bytes()))
        });
        self.fields.dedup_by(|later, first| later.key == first.key);
        out.reserve(self.values.len() + self.fields.len() + 2);
        out.push(b'{');
        let mut hash_at = None;
        for (i, field) in self.fields.iter().enumerate() {
            if hash_at.is_none() && field.key.as_ref() > "hash" {
                hash_at = Some((out.len(), Some(i == 0)));
            }
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&self.values[field.start as usize..field.end as usize]);
        }
        let end = (out.len(), (!self.fields.is_empty()).then_some(false));
        out.push(b'}');
        hash_at.unwrap_or(end)
    }

    /// The record's canonical bytes: what its hash (and, without
    /// `signature`, a signature) covers.
    pub fn canonical(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.values.len() + self.fields.len() + 2);
        self.canonical_into(&mut out);
        out
    }

    /// What a signature over the record covers: `domain`, then its
    /// canonical bytes without `hash` and `signature` (as
    /// [`signed_message`] for a parsed record).
    pub fn signed_message(&mut self, domain: &[u8]) -> Vec<u8> {
        self.remove("hash");
        self.remove("signature");
        let mut message = domain.to_vec();
        self.canonical_into(&mut message);
        message
    }

    /// Hashes the record linked to `prev` and appends its line (the
    /// canonical bytes with `"hash":"…"` spliced in where the sorted keys
    /// put it, no newline) to `out`. Returns the hash.
    pub fn seal_into(&mut self, prev: &Hash, out: &mut Vec<u8>) -> Hash {
        self.remove("hash");
        let begin = out.len();
        let (at, place) = self.canonical_into(out);
        let hash = record_hash(prev, &out[begin..]);
        let mut field = [0u8; 74];
        let (body, splice) = match place {
            Some(true) => {
                field[73] = b',';
                (0, &mut field[..])
            }
            Some(false) => {
                field[0] = b',';
                (1, &mut field[..])
            }
            None => (0, &mut field[..73]),
        };
        splice[body..body + 8].copy_from_slice(b"\"hash\":\"");
        crate::hex::encode_into(&hash, &mut splice[body + 8..body + 72]);
        splice[body + 72] = b'"';
        let tail = out.len() - at;
        out.resize(out.len() + splice.len(), 0);
        out.copy_within(at..at + tail, at + splice.len());
        out[at..at + splice.len()].copy_from_slice(splice);
        hash
    }
}

/// A key's first eight bytes as a number whose order is theirs: a key
/// that is a prefix of another ranks lower or equal, and equal ranks are
/// ordered by [`key_order`].
fn rank(key: &[u8]) -> u64 {
    key.iter()
        .take(8)
        .enumerate()
        .fold(0, |rank, (i, &b)| rank | u64::from(b) << (56 - 8 * i))
}

/// Byte order of two keys, as a sorted map orders them (a loop: keys are
/// a few bytes, shorter than a call to `memcmp` is worth).
fn key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// A JSON string exactly as serde_json writes it: the common case (nothing
/// to escape) is one copy.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // A fold rather than `any`: without the early exit it vectorizes.
    let escapes = s.bytes().fold(false, |seen, b| {
        seen | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if escapes {
        serde_json::to_writer(out, s).expect("a string serializes");
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

impl From<&Map<String, Value>> for Record {
    fn from(map: &Map<String, Value>) -> Self {
        let mut r = Record::default();
        for (key, value) in map {
            r.value(Cow::Owned(key.clone()), value);
        }
        r
    }
}

impl From<Map<String, Value>> for Record {
    fn from(map: Map<String, Value>) -> Self {
        Record::from(&map)
    }
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

/// [`timestamp`] for a writer that stamps records many times a second:
/// the date and time of day are worked out when the second changes, and
/// only the microseconds in between.
#[derive(Debug, Default)]
pub struct Stamp {
    secs: u64,
    text: String,
}

impl Stamp {
    pub fn at(&mut self, since_epoch: std::time::Duration) -> &str {
        const MICROS: std::ops::Range<usize> = 20..26;
        if since_epoch.as_secs() != self.secs || self.text.len() != 27 {
            self.secs = since_epoch.as_secs();
            self.text = timestamp(since_epoch);
            return &self.text;
        }
        let mut micros = *b"000000";
        let mut n = since_epoch.subsec_micros();
        for digit in micros.iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.text
            .replace_range(MICROS, std::str::from_utf8(&micros).expect("ASCII digits"));
        &self.text
    }
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
    fn a_built_record_seals_to_serde_jsons_bytes_of_the_same_map() {
        let mut r = Record::new("statement");
        r.session("s-1")
            .str("sql", "SELECT 'é' -- \"q\" \\ \n\t\u{1}\u{7f}\u{1b}[2J")
            .strs("classes", ["read", "a\"b"])
            .strs("objects", [])
            .u64("rows", u64::MAX)
            .bool("tls", false)
            .null("application")
            .value(
                "masked",
                &serde_json::json!({"z": {"b": 1, "a": 2}, "a": []}),
            )
            .str("rows", "replaced")
            .str("aa", "x")
            .str("zz", "y");
        r.remove("aa");
        for prev in [GENESIS, [7; 32]] {
            let mut line = Vec::new();
            let hash = r.seal_into(&prev, &mut line);
            let parsed: Map<String, Value> = serde_json::from_slice(&line).unwrap();
            assert_eq!(serde_json::to_vec(&parsed).unwrap(), line);
            assert_eq!(record_hash(&prev, &canonical(&parsed)), hash);
            assert_eq!(parsed["rows"], "replaced");
            assert_eq!(parsed["hash"], hex(&hash));
            assert!(!parsed.contains_key("aa"));
            assert_eq!(r.session_id().as_deref(), Some("s-1"));
        }
        // What a signature covers is what the verifier recomputes from the
        // parsed line.
        let mut line = Vec::new();
        r.seal_into(&GENESIS, &mut line);
        let parsed: Map<String, Value> = serde_json::from_slice(&line).unwrap();
        r.str("signature", "00");
        assert_eq!(
            r.signed_message(CHECKPOINT_DOMAIN),
            signed_message(CHECKPOINT_DOMAIN, &parsed)
        );
        // The transcript follows the field, escaped or not, however put.
        let mut escaped = Record::new("x");
        escaped.str("session", "s-\"1\"");
        assert_eq!(escaped.session_id().as_deref(), Some("s-\"1\""));
        assert_eq!(Record::new("x").session_id(), None);
        let mut numeric = Record::new("x");
        numeric.u64("session", 7);
        assert_eq!(numeric.session_id(), None);
        // A record whose only keys sort after `hash`, and one with none.
        for mut r in [Record::new("x"), Record::default()] {
            let mut line = b"prefix".to_vec();
            let hash = r.seal_into(&GENESIS, &mut line);
            let parsed: Map<String, Value> = serde_json::from_slice(&line[6..]).unwrap();
            assert_eq!(serde_json::to_vec(&parsed).unwrap(), &line[6..]);
            assert_eq!(record_hash(&GENESIS, &canonical(&parsed)), hash);
        }
    }

    #[test]
    fn keys_sort_as_a_map_sorts_them_whatever_they_share() {
        use rand::{Rng, SeedableRng};
        // Keys from a small alphabet with NUL and bytes past ASCII, of
        // lengths around eight, so that prefixes, shared first eight
        // bytes and zero padding all come up.
        let alphabet = ["\0", "a", "b", "é", "~"];
        let mut rng = rand::rngs::StdRng::seed_from_u64(22);
        for _ in 0..2_000 {
            let mut map = Map::new();
            let mut r = Record::default();
            for _ in 0..rng.gen_range(0..12) {
                let len = rng.gen_range(0..11);
                let key: String = (0..len)
                    .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                    .collect();
                let value = rng.gen_range(0..1000u64);
                map.insert(key.clone(), Value::from(value));
                r.u64(key, value);
            }
            assert_eq!(
                r.canonical(),
                serde_json::to_vec(&map).unwrap(),
                "keys {:?}",
                map.keys().collect::<Vec<_>>()
            );
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
    fn a_stamp_reads_as_the_timestamp_of_the_same_time() {
        let mut stamp = Stamp::default();
        let base = 1_764_000_000u64;
        for (secs, micros) in [
            (0, 0),
            (base, 0),
            (base, 999_999),
            (base, 17),
            (base + 1, 5),
            (base + 1, 5),
            (base + 86_399, 123_456),
            (253_402_300_800, 1),
            (base, 42),
        ] {
            let t = std::time::Duration::new(secs, micros * 1000);
            assert_eq!(stamp.at(t), timestamp(t), "{secs}.{micros:06}");
        }
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
