//! The digest of a result's rows exactly as sent, for its audit record.
//!
//! Rows are a few dozen to a few hundred bytes each. BLAKE3 fed one row at
//! a time compresses one 64-byte block after another; fed whole 1 KiB
//! chunks several at a time it hashes them side by side with the CPU's
//! vector instructions. So rows are gathered into a small buffer and
//! handed over in whole chunks: the digest is the same either way, since
//! BLAKE3 does not depend on how its input is split.

/// BLAKE3's chunk: the unit it can hash several of at once.
const CHUNK: usize = 1024;

/// How much is gathered before it is hashed: eight chunks, as many as the
/// widest vector path hashes at once.
const GATHER: usize = 8 * CHUNK;

#[derive(Clone)]
pub struct RowDigest {
    hasher: blake3::Hasher,
    gathered: Vec<u8>,
}

impl Default for RowDigest {
    fn default() -> Self {
        Self {
            hasher: blake3::Hasher::new(),
            gathered: Vec::new(),
        }
    }
}

impl RowDigest {
    pub fn update(&mut self, bytes: &[u8]) {
        if self.gathered.is_empty() && bytes.len() >= GATHER {
            // Large enough to be hashed as it is, but for its last part
            // chunk: whole chunks keep the hasher's own buffer empty.
            let whole = bytes.len() / CHUNK * CHUNK;
            self.hasher.update(&bytes[..whole]);
            self.gathered.extend_from_slice(&bytes[whole..]);
            return;
        }
        // No buffer is set aside up front: most results are a row or a
        // few, and a 9 KiB allocation per result is past the allocator's
        // per-thread cache (a fresh block and a free that consolidates,
        // for every statement). The buffer grows with what is gathered.
        self.gathered.extend_from_slice(bytes);
        if self.gathered.len() >= GATHER {
            let whole = self.gathered.len() / CHUNK * CHUNK;
            self.hasher.update(&self.gathered[..whole]);
            self.gathered.drain(..whole);
        }
    }

    /// The digest of everything given, as lower-case hex into `out`; the
    /// digest then starts over, for the next result. (In place: the
    /// hasher's state is two kilobytes, not worth a copy per statement.)
    pub fn take_hex<'a>(&mut self, out: &'a mut [u8; 64]) -> &'a str {
        self.hasher.update(&self.gathered);
        let hex = crate::hex::encode_into(self.hasher.finalize().as_bytes(), out);
        self.hasher.reset();
        self.gathered.clear();
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_blake3_of_everything_however_it_arrives() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let expected = blake3::hash(&data).to_hex().to_string();
        // Row sizes around and across the gathering thresholds.
        for sizes in [
            &[1usize][..],
            &[63, 64, 65],
            &[100, 1024, 3000],
            &[GATHER - 1, 1, GATHER + 1],
            &[20_000],
            &[5, 20_000, 7],
        ] {
            let mut digest = RowDigest::default();
            let (mut at, mut i) = (0, 0);
            while at < data.len() {
                let end = (at + sizes[i % sizes.len()]).min(data.len());
                digest.update(&data[at..end]);
                at = end;
                i += 1;
            }
            let mut out = [0u8; 64];
            assert_eq!(digest.take_hex(&mut out), expected, "row sizes {sizes:?}");
        }
        let mut out = [0u8; 64];
        assert_eq!(
            RowDigest::default().take_hex(&mut out),
            blake3::hash(b"").to_hex().to_string()
        );
    }

    #[test]
    fn a_taken_digest_starts_over() {
        let mut digest = RowDigest::default();
        // Past the gathering buffer and the hasher's own chunk, so both
        // hold something when it is taken.
        digest.update(&[7u8; GATHER + CHUNK + 5]);
        digest.update(b"row");
        let mut out = [0u8; 64];
        let mut first = vec![7u8; GATHER + CHUNK + 5];
        first.extend_from_slice(b"row");
        assert_eq!(
            digest.take_hex(&mut out),
            blake3::hash(&first).to_hex().to_string()
        );
        digest.update(b"next result");
        assert_eq!(
            digest.take_hex(&mut out),
            blake3::hash(b"next result").to_hex().to_string()
        );
    }
}
