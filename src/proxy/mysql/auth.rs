//! The arithmetic of MySQL's two password plugins that Airlock speaks,
//! `mysql_native_password` and `caching_sha2_password`, on both sides: the
//! token a client computes from a password and the server's nonce (used
//! when Airlock logs in upstream), and the server's check of such a token
//! against a stored hash (used when an agent logs in to Airlock).
//!
//! Pure functions only: no I/O, no packets (the handshake module carries
//! the bytes), and no stored secret ever leaves a value of this module in
//! clear. Comparisons of secrets are constant-time.

use crate::identity::constant_time_eq;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fmt;

/// The length of the nonce a server sends in its handshake.
pub const SCRAMBLE_LEN: usize = 20;

pub const NATIVE_PASSWORD: &str = "mysql_native_password";
pub const CACHING_SHA2_PASSWORD: &str = "caching_sha2_password";

/// First byte of an AuthMoreData packet.
pub const AUTH_MORE_DATA: u8 = 0x01;
/// caching_sha2_password, after AuthMoreData: the fast path succeeded; an
/// OK packet follows.
pub const FAST_AUTH_SUCCESS: u8 = 0x03;
/// caching_sha2_password, after AuthMoreData: the server has no cached hash
/// and wants the password itself (in clear over TLS, or RSA-encrypted).
pub const PERFORM_FULL_AUTHENTICATION: u8 = 0x04;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("a mysql_native_password hash is `*` and 40 hexadecimal digits")]
    NativeHashShape,
    #[error("a caching_sha2_password hash is 64 hexadecimal digits")]
    Sha2HashShape,
    #[error("the server's nonce has {0} bytes, not 20")]
    ScrambleLength(usize),
}

/// The per-connection nonce a server sends in its handshake and mixes into
/// every password token, so that a token seen once cannot be replayed.
#[derive(Clone, PartialEq, Eq)]
pub struct Scramble([u8; SCRAMBLE_LEN]);

impl Scramble {
    /// A fresh nonce from the operating system's generator. Bytes are in
    /// 1..=127 and never `$`, as MySQL servers make them: clients treat
    /// the nonce as a NUL-terminated string in places, and MySQL's stored
    /// SHA-2 hashes use `$` as a separator.
    pub fn generate() -> Self {
        use rand::Rng;
        let mut rng = rand::rngs::OsRng;
        let mut out = [0u8; SCRAMBLE_LEN];
        for b in &mut out {
            *b = loop {
                let c: u8 = rng.gen_range(1..=127);
                if c != b'$' {
                    break c;
                }
            };
        }
        Self(out)
    }

    /// A nonce received from a server.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, AuthError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| AuthError::ScrambleLength(bytes.len()))
    }

    pub fn as_bytes(&self) -> &[u8; SCRAMBLE_LEN] {
        &self.0
    }

    /// The first 8 bytes, sent in the fixed part of the handshake.
    pub fn part1(&self) -> &[u8] {
        &self.0[..8]
    }

    /// The last 12 bytes, sent after the capability flags.
    pub fn part2(&self) -> &[u8] {
        &self.0[8..]
    }
}

impl fmt::Debug for Scramble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scramble(..)")
    }
}

/// What a server stores for `mysql_native_password`: SHA1(SHA1(password)).
/// MySQL shows it as `*` and 40 uppercase hex digits
/// (`mysql.user.authentication_string`, `PASSWORD()`).
#[derive(Clone, PartialEq, Eq)]
pub struct NativeHash([u8; 20]);

impl NativeHash {
    pub fn from_password(password: &[u8]) -> Self {
        Self(Sha1::digest(Sha1::digest(password)).into())
    }

    pub fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// Parses MySQL's `*` + 40 hex digits form (either case).
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let hex = s.strip_prefix('*').ok_or(AuthError::NativeHashShape)?;
        crate::hex::decode(hex)
            .map(Self)
            .ok_or(AuthError::NativeHashShape)
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Checks a client's token: the token XOR SHA1(scramble ‖ stored) must
    /// be SHA1(password), whose SHA1 is the stored hash. An account with a
    /// hash always has a password, so an empty token is refused.
    pub fn verify(&self, scramble: &Scramble, token: &[u8]) -> bool {
        let Ok(token) = <[u8; 20]>::try_from(token) else {
            return false;
        };
        let mask: [u8; 20] = Sha1::new()
            .chain_update(scramble.as_bytes())
            .chain_update(self.0)
            .finalize()
            .into();
        let stage1 = xor(&token, &mask);
        let candidate: [u8; 20] = Sha1::digest(stage1).into();
        constant_time_eq(&candidate, &self.0)
    }
}

impl fmt::Display for NativeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*")?;
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NativeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NativeHash(..)")
    }
}

/// The `mysql_native_password` token a client sends:
/// SHA1(pw) XOR SHA1(scramble ‖ SHA1(SHA1(pw))); empty for an empty password.
pub fn native_token(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1: [u8; 20] = Sha1::digest(password).into();
    let stage2 = Sha1::digest(stage1);
    let mask: [u8; 20] = Sha1::new()
        .chain_update(scramble)
        .chain_update(stage2)
        .finalize()
        .into();
    xor(&stage1, &mask).to_vec()
}

/// What a `caching_sha2_password` server keeps in its cache for the fast
/// path: SHA256(SHA256(password)).
#[derive(Clone, PartialEq, Eq)]
pub struct Sha2Hash([u8; 32]);

impl Sha2Hash {
    pub fn from_password(password: &[u8]) -> Self {
        Self(Sha256::digest(Sha256::digest(password)).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hex digits (either case).
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        crate::hex::decode(s)
            .map(Self)
            .ok_or(AuthError::Sha2HashShape)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The fast-path check: the token XOR SHA256(stored ‖ scramble) must be
    /// SHA256(password), whose SHA256 is the stored hash.
    pub fn verify(&self, scramble: &Scramble, token: &[u8]) -> bool {
        let Ok(token) = <[u8; 32]>::try_from(token) else {
            return false;
        };
        let mask: [u8; 32] = Sha256::new()
            .chain_update(self.0)
            .chain_update(scramble.as_bytes())
            .finalize()
            .into();
        let stage1 = xor(&token, &mask);
        let candidate: [u8; 32] = Sha256::digest(stage1).into();
        constant_time_eq(&candidate, &self.0)
    }
}

impl fmt::Debug for Sha2Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sha2Hash(..)")
    }
}

/// The `caching_sha2_password` token a client sends:
/// SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ scramble); empty for an
/// empty password.
pub fn caching_sha2_token(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1: [u8; 32] = Sha256::digest(password).into();
    let stage2 = Sha256::digest(stage1);
    let mask: [u8; 32] = Sha256::new()
        .chain_update(stage2)
        .chain_update(scramble)
        .finalize()
        .into();
    xor(&stage1, &mask).to_vec()
}

fn xor<const N: usize>(a: &[u8; N], b: &[u8; N]) -> [u8; N] {
    let mut out = [0u8; N];
    for i in 0..N {
        out[i] = a[i] ^ b[i];
    }
    out
}

/// Equal-length comparison whose time does not depend on where the inputs
/// differ.
#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with Python's hashlib, for
    // the password "secret" and the nonce 0x01, 0x02, …, 0x14; the stored
    // native hash is also what MariaDB's PASSWORD('secret') returns.
    const NONCE: [u8; 20] = [
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    ];
    const NATIVE_STORED: &str = "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7";
    const NATIVE_TOKEN: &str = "b32bb3a583e1340c0a1108d58b1be49781ad8c2f";
    const SHA2_STORED: &str = "3881219d087dd9c634373fd33dfa33a2cb6bfc6c520b64b8bb60ef2ceb534ae7";
    const SHA2_TOKEN: &str = "746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9";

    fn nonce() -> Scramble {
        Scramble::from_slice(&NONCE).unwrap()
    }

    #[test]
    fn native_hash_matches_mysql() {
        assert_eq!(
            NativeHash::from_password(b"secret").to_string(),
            NATIVE_STORED
        );
        // MariaDB's own PASSWORD('password').
        assert_eq!(
            NativeHash::from_password(b"password").to_string(),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
    }

    #[test]
    fn native_hash_parse_round_trips_and_refuses_other_shapes() {
        let h = NativeHash::parse(NATIVE_STORED).unwrap();
        assert_eq!(h, NativeHash::from_password(b"secret"));
        assert_eq!(NativeHash::parse(&NATIVE_STORED.to_lowercase()).unwrap(), h);
        for bad in [
            "",
            "*",
            "14E65567ABDB5135D0CFD9A70B3032C179A49EE7",
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE",
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7A",
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EEG",
            "*é4E65567ABDB5135D0CFD9A70B3032C179A49EE",
        ] {
            assert!(NativeHash::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn native_token_matches_the_vector() {
        assert_eq!(
            crate::hex::encode(&native_token(b"secret", &NONCE)),
            NATIVE_TOKEN
        );
        assert!(native_token(b"", &NONCE).is_empty());
    }

    #[test]
    fn native_verify_accepts_the_right_password_only() {
        let stored = NativeHash::parse(NATIVE_STORED).unwrap();
        assert!(stored.verify(&nonce(), &native_token(b"secret", &NONCE)));
        assert!(!stored.verify(&nonce(), &native_token(b"Secret", &NONCE)));
        assert!(!stored.verify(&nonce(), b""));
        assert!(!stored.verify(&nonce(), &[0u8; 19]));
        // The same token under another nonce is a replay.
        let other = Scramble::generate();
        assert!(!stored.verify(&other, &native_token(b"secret", &NONCE)));
        assert!(stored.verify(&other, &native_token(b"secret", other.as_bytes())));
    }

    #[test]
    fn caching_sha2_token_matches_the_vector() {
        assert_eq!(
            crate::hex::encode(&caching_sha2_token(b"secret", &NONCE)),
            SHA2_TOKEN
        );
        assert!(caching_sha2_token(b"", &NONCE).is_empty());
        assert_eq!(
            crate::hex::encode(Sha2Hash::from_password(b"secret").as_bytes()),
            SHA2_STORED
        );
    }

    #[test]
    fn caching_sha2_fast_path_verifies() {
        let stored = Sha2Hash::parse(SHA2_STORED).unwrap();
        assert!(stored.verify(&nonce(), &caching_sha2_token(b"secret", &NONCE)));
        assert!(!stored.verify(&nonce(), &caching_sha2_token(b"secreT", &NONCE)));
        assert!(!stored.verify(&nonce(), &[]));
        assert!(!stored.verify(&nonce(), &[0u8; 33]));
        assert!(Sha2Hash::parse("abc").is_err());
    }

    #[test]
    fn scrambles_are_fresh_and_in_range() {
        let a = Scramble::generate();
        let b = Scramble::generate();
        assert_ne!(a, b);
        for _ in 0..200 {
            let s = Scramble::generate();
            assert!(s
                .as_bytes()
                .iter()
                .all(|&c| (1..=127).contains(&c) && c != b'$'));
        }
        assert_eq!(a.part1().len() + a.part2().len(), SCRAMBLE_LEN);
        assert!(matches!(
            Scramble::from_slice(&[1; 21]),
            Err(AuthError::ScrambleLength(21))
        ));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let s = format!(
            "{:?} {:?} {:?}",
            Scramble::generate(),
            NativeHash::from_password(b"x"),
            Sha2Hash::from_password(b"x")
        );
        assert_eq!(s, "Scramble(..) NativeHash(..) Sha2Hash(..)");
    }
}
