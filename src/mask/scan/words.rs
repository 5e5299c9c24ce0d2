//! Words measured eight bytes at a time: every word of a value is
//! measured, most of them by the digit pass, and a byte at a time that
//! was a tenth of the scanner's work on keys of digit groups
//! (`83868641912-28773972837-…`).

/// The length of the run of ASCII letters and digits `text` opens with.
pub(super) fn alnum_len(text: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(block) = text.get(i..i + 8) {
        let w = u64::from_le_bytes(block.try_into().expect("eight bytes"));
        // Per byte, on the low seven bits, where adding a constant below
        // 0x80 cannot carry into the next byte: a digit is from '0' (0x30)
        // to '9' (0x39); a letter, with the case bit set, from 'a' (0x61)
        // to 'z' (0x7a). A byte with the high bit set is no ASCII.
        let low7 = w & (0x7f * LO);
        let folded = (w | (0x20 * LO)) & (0x7f * LO);
        let digit = (low7 + 0x50 * LO) & !(low7 + 0x46 * LO);
        let letter = (folded + 0x1f * LO) & !(folded + 0x05 * LO);
        let stops = (!(digit | letter) | w) & HI;
        if stops != 0 {
            return i + (stops.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + text[i..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_measured_as_a_plain_count_does() {
        // Every byte value after runs of every length up to seventeen, so
        // that the stop falls at every offset of an eight-byte block and
        // in the tail.
        let run = b"aZ09mQ7xk3BcYw5p1";
        for stop in 0u8..=255 {
            for len in 0..=run.len() {
                let mut text = run[..len].to_vec();
                text.push(stop);
                text.extend_from_slice(b"abc");
                let want = text
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric())
                    .count();
                assert_eq!(alnum_len(&text), want, "{len} then {stop:#04x}");
            }
        }
    }
}
