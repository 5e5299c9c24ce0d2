//! Lower-case hexadecimal, for keys, hashes and tokens written to files
//! and logs.

/// `bytes` as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
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
