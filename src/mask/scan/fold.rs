//! Values written in characters other than ASCII, read as the ASCII they
//! stand for.
//!
//! Every detector reads ASCII digits, letters and punctuation, but values
//! are written in others:
//!
//! - East Asian input methods type fullwidth forms: a phone number
//!   `０３－１２３４－５６７８`, an address `ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ`;
//! - Arabic, Persian, Indian, Thai and other scripts have their own
//!   digits (`٠٥٠١٢٣٤٥٦٧`, `०९८७६५४३२१`);
//! - typeset text groups digits with no-break and thin spaces (French
//!   `01 23 45 67 89` with U+202F) and joins them with dashes other than
//!   `-` (U+2010–U+2015, the minus sign, the katakana prolonged sound mark);
//! - compatibility characters spell ASCII: mathematical alphanumerics
//!   (`𝟒𝟏𝟏𝟏`), enclosed and superscript digits, small form variants;
//! - and characters that show nothing (zero-width spaces and joiners,
//!   direction marks, variation selectors, combining marks) can be put
//!   between the digits of a number that still reads whole.
//!
//! The text is read once into its ASCII reading, with each byte's offset in
//! the original, so that a value found in the reading masks the original
//! bytes. Text that is all ASCII, or has nothing to fold, costs one pass.

use unicode_normalization::char::decompose_compatible;

/// Text with the characters that stand for ASCII replaced by it.
pub(in crate::mask) struct Folded {
    pub(in crate::mask) text: Vec<u8>,
    /// For each byte of `text`, where the character it came from starts
    /// in the original; one more entry, the original's length, so that a
    /// finding's end maps too.
    pub(in crate::mask) origin: Vec<usize>,
}

/// The code point of each script's zero outside ASCII; the nine after it
/// are one to nine. Every run of decimal digits (`Nd`) in Unicode 14.
const DIGIT_ZEROS: [u32; 65] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

fn digit(c: char) -> Option<u8> {
    let cp = u32::from(c);
    let after = DIGIT_ZEROS.partition_point(|&zero| zero <= cp);
    let zero = DIGIT_ZEROS[after.checked_sub(1)?];
    (cp - zero < 10).then(|| b'0' + (cp - zero) as u8)
}

/// Blocks whose compatibility decomposition spells ASCII: fullwidth
/// forms, small form variants, enclosed alphanumerics, superscripts and
/// subscripts, mathematical alphanumerics.
fn spells_ascii(c: char) -> bool {
    matches!(u32::from(c),
        0xFF01..=0xFF5E
        | 0xFE50..=0xFE6B
        | 0x2460..=0x24FF
        | 0x2070..=0x209F
        | 0x00B2 | 0x00B3 | 0x00B9
        | 0x1D400..=0x1D7FF)
}

/// Characters that show nothing (or only mark the one before them) and
/// are read as nothing: zero-width spaces and joiners, direction marks,
/// the soft hyphen, variation selectors, the keycap mark, combining
/// diacritics. Put between digits (`4\u{200B}1\u{200B}1…`) they would
/// break a number the reader still sees whole.
fn invisible(c: char) -> bool {
    matches!(u32::from(c),
        0x00AD
        | 0x0300..=0x036F
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x2069
        | 0x20D0..=0x20FF
        | 0xFE00..=0xFE0F
        | 0xFEFF)
}

/// The ASCII `c` (outside ASCII) stands for, written into `out`: its
/// length (0 for a character read as nothing), or `None` when `c` stands
/// for itself.
fn ascii_of(c: char, out: &mut [u8; 4]) -> Option<usize> {
    if let Some(d) = digit(c) {
        out[0] = d;
        return Some(1);
    }
    if invisible(c) {
        return Some(0);
    }
    let simple = match c {
        // No-break, figure, thin, narrow no-break and ideographic spaces.
        '\u{00A0}' | '\u{2007}' | '\u{2009}' | '\u{202F}' | '\u{3000}' => Some(b' '),
        // Hyphen, non-breaking hyphen, figure dash, en and em dash,
        // horizontal bar, minus sign, and the katakana prolonged sound
        // mark (full and half width) typed for a dash.
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}' | '\u{FF70}' => Some(b'-'),
        _ => None,
    };
    if let Some(b) = simple {
        out[0] = b;
        return Some(1);
    }
    if !spells_ascii(c) {
        return None;
    }
    let mut len = 0;
    let mut ascii = true;
    decompose_compatible(c, |d| {
        if d.is_ascii() && len < out.len() {
            out[len] = d as u8;
            len += 1;
        } else {
            ascii = false;
        }
    });
    (ascii && len > 0).then_some(len)
}

/// The character starting at `at`, and its length in bytes; `None` for a
/// byte that starts no valid UTF-8 character.
fn char_at(text: &[u8], at: usize) -> Option<(char, usize)> {
    let len = match text[at] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(text.get(at..at + len)?).ok()?;
    Some((s.chars().next()?, len))
}

/// The ASCII reading of `text`, or `None` when nothing in it is folded.
pub(in crate::mask) fn fold(text: &[u8]) -> Option<Folded> {
    if text.is_ascii() {
        return None;
    }
    let mut buf = [0u8; 4];
    let mut at = text.iter().position(|b| !b.is_ascii())?;
    let first = loop {
        match char_at(text, at) {
            Some((c, _)) if ascii_of(c, &mut buf).is_some() => break at,
            Some((_, len)) => at += len,
            None => at += 1,
        }
        at += text[at..].iter().position(|b| !b.is_ascii())?;
    };
    let mut folded = Folded {
        text: Vec::with_capacity(text.len()),
        origin: Vec::with_capacity(text.len() + 1),
    };
    folded.text.extend_from_slice(&text[..first]);
    folded.origin.extend(0..first);
    let mut at = first;
    while at < text.len() {
        if text[at].is_ascii() {
            folded.text.push(text[at]);
            folded.origin.push(at);
            at += 1;
            continue;
        }
        let (c, len) = char_at(text, at).unwrap_or(('\u{FFFD}', 1));
        match ascii_of(c, &mut buf) {
            Some(n) => {
                folded.text.extend_from_slice(&buf[..n]);
                folded.origin.extend(std::iter::repeat_n(at, n));
            }
            None => {
                folded.text.extend_from_slice(&text[at..at + len]);
                folded.origin.extend(at..at + len);
            }
        }
        at += len;
    }
    folded.origin.push(text.len());
    Some(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(text: &str) -> Option<String> {
        let folded = fold(text.as_bytes())?;
        assert_eq!(folded.origin.len(), folded.text.len() + 1);
        assert_eq!(folded.origin.last(), Some(&text.len()));
        // Offsets never go back, and a character's start in the reading
        // maps to a character's start in the original.
        assert!(folded.origin.windows(2).all(|w| w[0] <= w[1]));
        let read = String::from_utf8(folded.text).expect("the reading is UTF-8");
        for (i, &at) in folded.origin.iter().enumerate() {
            if read.is_char_boundary(i) {
                assert!(text.is_char_boundary(at), "{text}: {i} -> {at}");
            }
        }
        Some(read)
    }

    #[test]
    fn digits_of_every_script_and_compatibility_forms_read_as_ascii() {
        for (text, ascii) in [
            (
                "電話：０３－１２３４ー５６７８、ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",
                "電話:03-1234-5678、jane@example.com",
            ),
            ("رقم ٠٥٠١٢٣٤٥٦٧", "رقم 0501234567"),
            ("شماره ۰۹۱۲۳۴۵۶۷۸۹", "شماره 09123456789"),
            ("फ़ोन ९८७६५४३२१०", "फ़ोन 9876543210"),
            ("โทร ๐๘๑๒๓๔๕๖๗๘", "โทร 0812345678"),
            ("𝟒𝟏𝟏𝟏 𝟏𝟏𝟏𝟏", "4111 1111"),
            ("①②③ ⁴⁵ x²", "123 45 x2"),
            ("jane﹫example﹒com", "jane@example.com"),
            ("01\u{202F}23\u{A0}45\u{2009}67\u{3000}89", "01 23 45 67 89"),
            ("536–22—8714 −1 ｰ", "536-22-8714 -1 -"),
            (
                "4\u{200B}1\u{200C}1\u{200D}1\u{2060}1\u{AD}1\u{FEFF}1\u{FE0F}1\u{20E3} 4\u{332}1\u{332}",
                "41111111 41",
            ),
        ] {
            assert_eq!(reading(text).as_deref(), Some(ascii), "{text}");
        }
    }

    #[test]
    fn each_script_has_ten_digits_from_its_zero() {
        for zero in DIGIT_ZEROS {
            for d in 0..10 {
                let c = char::from_u32(zero + d).expect("a character");
                assert_eq!(digit(c), Some(b'0' + d as u8), "U+{:04X}", zero + d);
            }
        }
        assert_eq!(digit('a'), None);
        assert_eq!(digit('\u{065F}'), None);
        assert_eq!(digit('\u{066A}'), None);
    }

    #[test]
    fn text_with_nothing_to_fold_is_not_copied() {
        for text in [
            "plain ascii 030 1234567",
            "日本語のテキスト、電話",
            "José Müller, Łódź, Ελλάδα",
            "",
            "\u{FF5F}\u{FF00}½",
        ] {
            assert!(reading(text).is_none(), "{text}");
        }
        // Bytes that are not UTF-8 are kept as they are.
        assert!(fold(&[b'1', 0xEF, 0xBC]).is_none());
        let mixed = fold(&[0xFF, 0xEF, 0xBC, 0x91, 0xC3]).expect("folds");
        assert_eq!(mixed.text, [0xFF, b'1', 0xC3]);
        assert_eq!(mixed.origin, [0, 1, 4, 5]);
    }
}
