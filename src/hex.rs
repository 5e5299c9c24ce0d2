//! Lower-case hexadecimal, for keys, hashes and tokens written to files
//! and logs.

/// `bytes` as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    encode_into(bytes, &mut out).to_string()
}

/// Writes `bytes` as lower-case hex digits into `out`, which holds exactly
/// twice as many bytes, and returns them: hex without an allocation.
pub fn encode_into<'a>(bytes: &[u8], out: &'a mut [u8]) -> &'a str {
    assert_eq!(out.len(), bytes.len() * 2, "hex output of the wrong length");
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = b"0123456789abcdef"[usize::from(b >> 4)];
        pair[1] = b"0123456789abcdef"[usize::from(b & 15)];
    }
    std::str::from_utf8(out).expect("hex digits are ASCII")
}

/// Exactly `N` bytes written as `2N` hex digits (either case).
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Digits only: `from_str_radix` alone would also take a sign.
    if text.len() != N * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_rejects_bad_input() {
        let bytes = [0x00, 0xab, 0x7f, 0xff];
        assert_eq!(super::encode(&bytes), "00ab7fff");
        assert_eq!(super::decode::<4>("00AB7fff"), Some(bytes));
        assert_eq!(super::decode::<4>("00ab7f"), None);
        assert_eq!(super::decode::<2>("zz00"), None);
        assert_eq!(super::decode::<2>("+a00"), None);
    }
}
