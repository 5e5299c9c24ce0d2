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
//! - characters that show nothing (zero-width spaces and joiners,
//!   direction marks, variation selectors, combining marks) can be put
//!   between the digits of a number that still reads whole;
//! - and Cyrillic and Greek letters drawn like Latin ones (`а`, `е`, `о`,
//!   `р`, `с`, `Α`, `Ο`…) spell an address or an account number a reader
//!   takes for the ASCII one (`jаne@exаmple.cоm`). They are read as that
//!   ASCII only inside a word that also has ASCII in it, or next to `@`:
//!   text written in those scripts is not read again.
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

/// Characters whose compatibility decomposition may spell ASCII (those
/// whose does not stand for themselves): fullwidth forms, small form
/// variants, enclosed alphanumerics and their supplement, superscripts
/// and subscripts, modifier and phonetic letters (`ʲᵃⁿᵉ`), letterlike
/// symbols and Roman numerals (`ℯ`, `ℓ`, `ⅰ`), ligatures (`ﬁ`), the long
/// s, ordinal indicators, circled numbers past twenty, unit squares,
/// mathematical and outlined alphanumerics.
fn spells_ascii(c: char) -> bool {
    matches!(u32::from(c),
        0x00AA | 0x00B2 | 0x00B3 | 0x00B9 | 0x00BA
        | 0x0132 | 0x0133 | 0x017F
        | 0x01C7..=0x01CC
        | 0x01F1..=0x01F3
        | 0x02B0..=0x02FF
        | 0x1D2C..=0x1DBF
        | 0x2070..=0x209F
        | 0x20A8
        | 0x2100..=0x218F
        | 0x2460..=0x24FF
        | 0x2C7C..=0x2C7D
        | 0x3250..=0x33FF
        | 0xA7F0..=0xA7FF
        | 0xFB00..=0xFB06
        | 0xFE50..=0xFE6B
        | 0xFF01..=0xFF5E
        | 0x10780..=0x107BF
        | 0x1CC00..=0x1CEBF
        | 0x1D400..=0x1D7FF
        | 0x1F100..=0x1F1FF)
}

/// How a folded character takes part in a value, which decides whether
/// it is worth reading its text again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A digit or a letter: a value may be written in it.
    Alnum,
    /// A space or a dash: it joins digit groups (`7946−0123`).
    JoinsDigits,
    /// Punctuation (`＠`, `．`) or a character that shows nothing between
    /// two others: it joins the parts of any value.
    JoinsWords,
    /// A combining mark: it marks the character before it (`4̲`).
    Marks,
    /// A Cyrillic or Greek letter drawn like a Latin one: it stands for
    /// that letter next to ASCII (`jаne`), not among its own script.
    LooksLatin,
}

/// Cyrillic and Greek letters drawn like ASCII letters in common fonts,
/// and the letter each is taken for; sorted.
const LOOKS_LATIN: [(u16, u8); 54] = [
    (0x0391, b'A'),
    (0x0392, b'B'),
    (0x0395, b'E'),
    (0x0396, b'Z'),
    (0x0397, b'H'),
    (0x0399, b'I'),
    (0x039A, b'K'),
    (0x039C, b'M'),
    (0x039D, b'N'),
    (0x039F, b'O'),
    (0x03A1, b'P'),
    (0x03A4, b'T'),
    (0x03A5, b'Y'),
    (0x03A7, b'X'),
    (0x03B1, b'a'),
    (0x03B9, b'i'),
    (0x03BA, b'k'),
    (0x03BD, b'v'),
    (0x03BF, b'o'),
    (0x03C1, b'p'),
    (0x03C5, b'u'),
    (0x0405, b'S'),
    (0x0406, b'I'),
    (0x0408, b'J'),
    (0x0410, b'A'),
    (0x0412, b'B'),
    (0x0415, b'E'),
    (0x041A, b'K'),
    (0x041C, b'M'),
    (0x041D, b'H'),
    (0x041E, b'O'),
    (0x0420, b'P'),
    (0x0421, b'C'),
    (0x0422, b'T'),
    (0x0425, b'X'),
    (0x0430, b'a'),
    (0x0435, b'e'),
    (0x043E, b'o'),
    (0x0440, b'p'),
    (0x0441, b'c'),
    (0x0443, b'y'),
    (0x0445, b'x'),
    (0x0455, b's'),
    (0x0456, b'i'),
    (0x0458, b'j'),
    (0x04AE, b'Y'),
    (0x04BB, b'h'),
    (0x04C0, b'I'),
    (0x04CF, b'l'),
    (0x0501, b'd'),
    (0x051A, b'Q'),
    (0x051B, b'q'),
    (0x051C, b'W'),
    (0x051D, b'w'),
];

/// The ASCII letter `c` is drawn like, if it is one of [`LOOKS_LATIN`].
fn looks_latin(c: char) -> Option<u8> {
    let cp = u16::try_from(u32::from(c)).ok()?;
    let at = LOOKS_LATIN.binary_search_by_key(&cp, |&(k, _)| k).ok()?;
    Some(LOOKS_LATIN[at].1)
}

/// What `c` (outside ASCII) is read as: its ASCII, written into `out`, and
/// its role; `None` when `c` stands for itself.
fn ascii_of(c: char, out: &mut [u8; 4]) -> Option<(usize, Role)> {
    let (b, role) = match u32::from(c) {
        // No-break, figure, thin, narrow no-break and ideographic spaces.
        0x00A0 | 0x2007 | 0x2009 | 0x202F | 0x3000 => (b' ', Role::JoinsDigits),
        // Hyphen, non-breaking hyphen, figure dash, en and em dash,
        // horizontal bar, minus sign, and the katakana prolonged sound
        // mark (full and half width) typed for a dash.
        0x2010..=0x2015 | 0x2212 | 0x30FC | 0xFF70 => (b'-', Role::JoinsDigits),
        // Characters that show nothing, read as nothing: put between
        // digits (`4\u{200B}1\u{200B}1…`) they would break a number the
        // reader still sees whole. Zero-width spaces and joiners,
        // direction marks and isolates, the soft hyphen, variation
        // selectors, the byte order mark…
        0x00AD
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x2069
        | 0xFE00..=0xFE0F
        | 0xFEFF => return Some((0, Role::JoinsWords)),
        // …and combining marks (diacritics, the keycap).
        0x0300..=0x036F | 0x20D0..=0x20FF => return Some((0, Role::Marks)),
        // Regional indicator symbols: two of them show a flag, one or
        // three a boxed letter.
        cp @ 0x1F1E6..=0x1F1FF => (b'A' + (cp - 0x1F1E6) as u8, Role::Alnum),
        _ if spells_ascii(c) => return spelled(c, out),
        _ => match looks_latin(c) {
            Some(letter) => (letter, Role::LooksLatin),
            None => (digit(c)?, Role::Alnum),
        },
    };
    out[0] = b;
    Some((1, role))
}

/// The compatibility decomposition of `c`, when it is all ASCII.
fn spelled(c: char, out: &mut [u8; 4]) -> Option<(usize, Role)> {
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
    if !ascii || len == 0 {
        return None;
    }
    let role = if out[0].is_ascii_alphanumeric() {
        Role::Alnum
    } else {
        Role::JoinsWords
    };
    Some((len, role))
}

/// Whether the character whose UTF-8 starts `b0 b1 b2`, after the byte
/// `prev`, may fold and matter (a superset of those that do): its bytes
/// are compared, with no branch and no table, so that a block of text is
/// tested in a few vector instructions. Most text outside ASCII —
/// accented Latin, Greek and Cyrillic words, Hebrew, Arabic letters,
/// kana, CJK ideographs, Hangul, emoji, quotation marks and the ellipsis
/// — is no candidate.
#[inline(always)]
fn may_fold_at(prev: u8, b0: u8, b1: u8, b2: u8) -> bool {
    // Greek and Cyrillic letters (U+0380–053F) next to ASCII that may be
    // part of a word or an address (see [`next_to_latin`]); `b2` is the
    // byte after a two-byte character.
    let wordy = |b: u8| latin_or_at(b) | (b == b'.') | (b == b'-') | (b == b'_');
    let looks_latin = within(b0, 0xCE, 0xD4) & (wordy(prev) | wordy(b2));
    // U+00A0, U+00AA, U+00AD, U+00B2–00B3, U+00B9, U+00BA; Ĳ, ĳ, the long
    // s, the digraphs U+01C7–01CC and U+01F1–01F3; modifier letters
    // U+02B0–02FF; combining marks U+0300–036F.
    let latin = ((b0 == 0xC2)
        & ((b1 == 0xA0)
            | (b1 == 0xAA)
            | (b1 == 0xAD)
            | within(b1, 0xB2, 0xB3)
            | within(b1, 0xB9, 0xBA)))
        | latin_extended(b0, b1)
        | within(b0, 0xCA, 0xCD);
    // Arabic-Indic, extended Arabic-Indic and N'Ko digits.
    let digits = ((b0 == 0xD9) & within(b1, 0xA0, 0xA9))
        | ((b0 == 0xDB) & within(b1, 0xB0, 0xB9))
        | ((b0 == 0xDF) & within(b1, 0x80, 0x89));
    // Indic, South-East Asian and other scripts with digits, phonetic
    // letters U+1D2C–1DBF; outside the Basic Multilingual Plane all but
    // emoji (U+1Fxxx but enclosed alphanumerics and regional indicators
    // U+1F100–1F1FF, and U+1FBF0–1FBF9).
    let scripts = within(b0, 0xE0, 0xE1)
        | (b0 == 0xEA)
        | ((b0 == 0xF0) & ((b1 != 0x9F) | within(b2, 0x84, 0x87) | (b2 == 0xAF)));
    // Spaces, dashes and invisible characters U+2007–2015 and U+2028–202F,
    // U+2060–2069, superscripts and subscripts U+2070–209F and U+20A8,
    // combining marks for symbols U+20C0–20FF, letterlike symbols and
    // number forms U+2100–218F, the minus sign, enclosed alphanumerics
    // U+2440–24FF, U+2C7C–2C7D.
    let punctuation = (b0 == 0xE2)
        & (((b1 == 0x80) & (within(b2, 0x87, 0x95) | within(b2, 0xA8, 0xAF)))
            | ((b1 == 0x81) & (within(b2, 0xA0, 0xA9) | within(b2, 0xB0, 0xBF)))
            | ((b1 == 0x82) & within(b2, 0x80, 0xA8))
            | (b1 == 0x83)
            | within(b1, 0x84, 0x85)
            | ((b1 == 0x86) & (b2 <= 0x8F))
            | ((b1 == 0x88) & (b2 == 0x92))
            | within(b1, 0x91, 0x93)
            | ((b1 == 0xB1) & within(b2, 0xBC, 0xBD)));
    // The ideographic space and U+30FC, circled numbers and unit squares
    // U+3250–33FF; ligatures U+FB00–FB06, variation selectors, small form
    // variants, the byte order mark, fullwidth forms U+FF00–FF70.
    let east_asian = ((b0 == 0xE3)
        & (((b1 == 0x80) & (b2 == 0x80)) | ((b1 == 0x83) & (b2 == 0xBC)) | within(b1, 0x89, 0x8F)))
        | ((b0 == 0xEF)
            & (((b1 == 0xAC) & (b2 <= 0x86))
                | within(b1, 0xB8, 0xB9)
                | ((b1 == 0xBB) & (b2 == 0xBF))
                | (b1 == 0xBC)
                | ((b1 == 0xBD) & (b2 <= 0xB0))));
    latin | digits | scripts | punctuation | east_asian | looks_latin
}

#[inline(always)]
fn within(b: u8, lo: u8, hi: u8) -> bool {
    b.wrapping_sub(lo) <= hi - lo
}

/// An ASCII letter or digit, or `@`.
#[inline(always)]
fn latin_or_at(b: u8) -> bool {
    within(b | 0x20, b'a', b'z') | within(b, b'0', b'9') | (b == b'@')
}

/// The lead bytes of the characters that may fold but Greek and Cyrillic
/// letters and those of [`latin_extended`]: most text in other scripts
/// (accented Latin, CJK, Hangul, Arabic letters) has none.
#[inline(always)]
fn lead(b: u8) -> bool {
    (b == 0xC2)
        | within(b, 0xCA, 0xCD)
        | (b == 0xD9)
        | (b == 0xDB)
        | (b == 0xDF)
        | within(b, 0xE0, 0xE3)
        | (b == 0xEA)
        | within(b, 0xEF, 0xF0)
}

/// Ĳ, ĳ, the long s, and the digraphs U+01C7–01CC and U+01F1–01F3: their
/// lead bytes start most letters of Central European languages, so they
/// are told by both bytes.
#[inline(always)]
fn latin_extended(b0: u8, b1: u8) -> bool {
    ((b0 == 0xC4) & within(b1, 0xB2, 0xB3))
        | ((b0 == 0xC5) & (b1 == 0xBF))
        | ((b0 == 0xC7) & (within(b1, 0x87, 0x8C) | within(b1, 0xB1, 0xB3)))
}

/// How many positions [`next_may_fold`] tests at once.
const BLOCK: usize = 32;

/// The bytes before and after a block that its test reads too: a
/// character's neighbours, and theirs (see [`next_to_latin`]).
const BEFORE: usize = 2;
const AFTER: usize = 3;

/// The position of the first character at or after `from` that may fold:
/// a block of ASCII is passed over on one test, any other block on one
/// branch-free test of all its positions.
fn next_may_fold(text: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    // Bytes outside the text are zeros, which are no part of a word and
    // start no character.
    let mut padded = [0u8; BEFORE + BLOCK + AFTER];
    while i + BLOCK + AFTER <= text.len() {
        let found = if i >= BEFORE {
            first_in_block(&text[i - BEFORE..i + BLOCK + AFTER])
        } else {
            padded[BEFORE - i..].copy_from_slice(&text[..i + BLOCK + AFTER]);
            first_in_block(&padded)
        };
        if let Some(k) = found {
            return Some(i + k);
        }
        i += BLOCK;
    }
    let tail = &text[i..];
    if tail.is_ascii() {
        return None;
    }
    let before = i.min(BEFORE);
    padded.fill(0);
    padded[BEFORE - before..BEFORE + tail.len()].copy_from_slice(&text[i - before..]);
    first_in_block(&padded).map(|k| i + k)
}

/// The first of the [`BLOCK`] positions of `bytes` after its first
/// [`BEFORE`] (and before its last [`AFTER`]) where a character that may
/// fold starts.
#[inline(always)]
fn first_in_block(bytes: &[u8]) -> Option<usize> {
    let block = &bytes[BEFORE..BEFORE + BLOCK];
    // Folds rather than `any`: without the early exit they vectorize.
    if block.iter().fold(0, |m, &b| m | b) < 0x80 {
        return None;
    }
    // Then on lead bytes, and the few letters of Latin Extended-A and B
    // that fold by their two bytes, which passes over most text in other
    // scripts (accented Latin, CJK, Hangul)…
    let leads = (0..BLOCK).fold(0u8, |hit, k| {
        let (b0, b1) = (bytes[BEFORE + k], bytes[BEFORE + k + 1]);
        hit | u8::from(lead(b0) | latin_extended(b0, b1))
    });
    if leads == 0 {
        // …and Greek and Cyrillic with no ASCII letter, digit or `@`
        // near: their letters matter only beside ASCII.
        let greek_or_cyrillic = block
            .iter()
            .fold(0u8, |hit, &b| hit | u8::from(within(b, 0xCE, 0xD4)));
        let latin_near = bytes
            .iter()
            .fold(0u8, |hit, &b| hit | u8::from(latin_or_at(b)));
        if greek_or_cyrillic & latin_near == 0 {
            return None;
        }
    }
    let bytes: &[u8; BEFORE + BLOCK + AFTER] = bytes.try_into().expect("a whole block");
    // One byte per position, each computed alike, then or-ed: both loops
    // vectorize (a bit mask built by shifts does not, on baseline x86-64),
    // and the search runs only on a hit.
    let mut hits = [0u8; BLOCK];
    for (k, hit) in hits.iter_mut().enumerate() {
        let at = BEFORE + k;
        *hit = u8::from(may_fold_at(
            bytes[at - 1],
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
        ));
    }
    if hits.iter().fold(0, |any, &h| any | h) == 0 {
        return None;
    }
    hits.iter().position(|&h| h != 0)
}

/// The character starting at `at`, and its length in bytes; `None` for a
/// byte that starts no valid UTF-8 character.
fn char_at(text: &[u8], at: usize) -> Option<(char, usize)> {
    let len = match *text.get(at)? {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(text.get(at..at + len)?).ok()?;
    Some((s.chars().next()?, len))
}

/// The character that ends at `end`.
fn char_before(text: &[u8], end: usize) -> Option<char> {
    let from = end.saturating_sub(4);
    let start = (from..end).rev().find(|&i| text[i] & 0xC0 != 0x80)?;
    let s = std::str::from_utf8(&text[start..end]).ok()?;
    s.chars().next()
}

/// The position of the first byte outside ASCII at or after `from`, eight
/// bytes at a time.
fn next_non_ascii(text: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 8 <= text.len() {
        let w = u64::from_le_bytes(text[i..i + 8].try_into().expect("eight bytes"));
        let high = w & 0x8080_8080_8080_8080;
        if high != 0 {
            return Some(i + (high.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    (i..text.len()).find(|&j| !text[j].is_ascii())
}

/// How many characters read as nothing are passed over to find a
/// character's neighbour. Past them the character is taken to matter: a
/// longer run only costs its text a second reading.
const NOTHING_RUN: usize = 8;

/// The character beside another that is read as something, characters
/// read as nothing (`е\u{200B}@`, `4\u{301}1`) passed over.
#[derive(Clone, Copy)]
enum Beside {
    /// The edge of the text, or a character that stands for itself.
    Nothing,
    /// A character at `at..end` read as `read` (the first byte of its
    /// ASCII); `looks_latin` when it is a letter drawn like a Latin one.
    Read {
        read: u8,
        looks_latin: bool,
        at: usize,
        end: usize,
    },
    /// Beyond more than [`NOTHING_RUN`] characters read as nothing.
    Far,
}

impl Beside {
    /// Whether this reads as an ASCII letter or digit that is no
    /// look-alike (or is too far to tell, which counts as one).
    fn latin(self, digit_only: bool) -> bool {
        match self {
            Beside::Read {
                read,
                looks_latin: false,
                ..
            } => read.is_ascii_digit() || (!digit_only && read.is_ascii_alphabetic()),
            Beside::Far => true,
            _ => false,
        }
    }

    /// A letter drawn like a Latin one that stands among ASCII.
    fn look_alike_among_latin(self, text: &[u8]) -> bool {
        match self {
            Beside::Read {
                looks_latin: true,
                at,
                end,
                ..
            } => next_to_latin(text, at, end - at),
            _ => false,
        }
    }
}

/// The character before `at` (`back`) or from `end` on that is read as
/// something.
fn beside(text: &[u8], mut at: usize, mut end: usize, back: bool) -> Beside {
    let mut buf = [0u8; 4];
    for _ in 0..=NOTHING_RUN {
        let c = if back {
            let Some(c) = char_before(text, at) else {
                return Beside::Nothing;
            };
            end = at;
            at -= c.len_utf8();
            c
        } else {
            let Some(c) = char_from(text, end) else {
                return Beside::Nothing;
            };
            at = end;
            end += c.len_utf8();
            c
        };
        let (read, looks_latin) = if c.is_ascii() {
            (c as u8, false)
        } else {
            match ascii_of(c, &mut buf) {
                None => return Beside::Nothing,
                Some((0, _)) => continue,
                Some((_, role)) => (buf[0], role == Role::LooksLatin),
            }
        };
        return Beside::Read {
            read,
            looks_latin,
            at,
            end,
        };
    }
    Beside::Far
}

/// The character (ASCII or not) starting at `at`.
fn char_from(text: &[u8], at: usize) -> Option<char> {
    match *text.get(at)? {
        b if b.is_ascii() => Some(char::from(b)),
        _ => char_at(text, at).map(|(c, _)| c),
    }
}

/// Whether the folded character at `at..at + len` may be part of a value:
/// a digit or a letter always; a dash or a space next to a digit;
/// punctuation or an invisible character next to a digit or a letter; a
/// combining mark on anything read as ASCII but a space (`j\u{301}a\u{301}@`
/// reads as the address a reader strips the accents from). A letter drawn
/// like a Latin one counts as a letter where it stands among ASCII (see
/// [`next_to_latin`]).
/// Characters read as nothing are passed over to find the neighbours, so
/// `асе\u{200B}@\u{200B}со.со` opens as `асе@со.со` does. (An em dash between
/// words, a fullwidth comma in Japanese prose or an accent on a Greek
/// letter is not.)
fn matters(text: &[u8], at: usize, len: usize, role: Role) -> bool {
    let end = at + len;
    let before = || beside(text, at, end, true);
    let after = || beside(text, at, end, false);
    let word = |b: Beside| b.latin(false) || b.look_alike_among_latin(text);
    match role {
        Role::Alnum => true,
        Role::LooksLatin => next_to_latin(text, at, len),
        Role::JoinsDigits => before().latin(true) || after().latin(true),
        Role::JoinsWords => word(before()) || word(after()),
        Role::Marks => match before() {
            Beside::Read {
                read,
                looks_latin: false,
                ..
            } => read.is_ascii_graphic(),
            on => on.latin(true) || on.look_alike_among_latin(text),
        },
    }
}

/// Whether a letter drawn like a Latin one, at `at..at + len`, stands
/// among ASCII: next to an ASCII letter or digit (or a character read as
/// one), next to `@` (or `＠`), or next to `.`, `-` or `_` with such a
/// letter or digit or `@` on their other side (`mail.со`, `е-@`), or a
/// space or comma with `@` there; characters read as
/// nothing in between are passed over. Greek and Cyrillic words are not;
/// a word that mixes scripts, or an address, is.
fn next_to_latin(text: &[u8], at: usize, len: usize) -> bool {
    let side = |back: bool| match beside(text, at, at + len, back) {
        Beside::Read {
            read,
            looks_latin: false,
            at,
            end,
        } => {
            let beyond = || beside(text, at, end, back);
            let at_sign = |b: Beside| matches!(b, Beside::Read { read: b'@', .. });
            read.is_ascii_alphanumeric()
                || read == b'@'
                || (matches!(read, b'.' | b'-' | b'_') && {
                    let b = beyond();
                    b.latin(false) || at_sign(b)
                })
                // An address spelled out with a separator (`а-с-е-@-…`).
                || (matches!(read, b' ' | b',') && at_sign(beyond()))
        }
        Beside::Far => true,
        _ => false,
    };
    side(true) || side(false)
}

/// How far around a character that matters its text is read again: no
/// value the detectors find spans more (the longest, an address in
/// fullwidth forms, is three bytes a character). The window then reaches
/// on to the next space, so that it cuts no word.
const REACH: usize = 256;
const REACH_TO_SPACE: usize = 1024;

/// The ASCII reading of each part of `text` around characters that may be
/// part of a value (see [`matters`]), handed to `each` in order; nothing
/// for text that is all ASCII or has nothing to fold (one pass, eight
/// bytes at a time over ASCII and a byte's test over most other text).
pub(in crate::mask) fn fold_windows(text: &[u8], mut each: impl FnMut(Folded)) {
    let mut window: Option<(usize, usize)> = None;
    let mut buf = [0u8; 4];
    let mut at = 0;
    while let Some(p) = next_may_fold(text, at) {
        at = p + 1;
        let Some((c, len)) = char_at(text, p) else {
            continue;
        };
        at = p + len;
        // Inside a window that already reaches this character's reach and
        // ends at a space (or the end), whether it matters changes
        // nothing: a long run of candidates costs no test each.
        if let Some((_, we)) = window {
            let settled = we == text.len() || text[we].is_ascii_whitespace();
            if p + len + REACH <= we && settled {
                continue;
            }
        }
        let Some((_, role)) = ascii_of(c, &mut buf) else {
            continue;
        };
        if !matters(text, p, len, role) {
            continue;
        }
        window = match window {
            // Its reach starts at or before the window's end: one window,
            // and the text the window's end was found across is not
            // scanned again.
            Some((ws, we)) if p.saturating_sub(REACH) <= we => {
                Some((ws, reach_on(text, p + len, we).max(we)))
            }
            Some((ws, we)) => {
                let start = reach_back(text, p);
                let end = reach_on(text, p + len, we);
                if reads_as_nothing(&text[we..start]) {
                    Some((ws, end))
                } else {
                    each(fold_range(text, ws, we));
                    Some((start, end))
                }
            }
            None => Some((reach_back(text, p), reach_on(text, p + len, 0))),
        };
    }
    if let Some((ws, we)) = window {
        each(fold_range(text, ws, we));
    }
}

/// Whether every character of `gap` is read as nothing: windows apart
/// only by thousands of zero-width characters (`4`, then a kilobyte of
/// U+200B, then `1`…) are one value in the reading, and read as one.
fn reads_as_nothing(gap: &[u8]) -> bool {
    let mut buf = [0u8; 4];
    let mut at = 0;
    while at < gap.len() {
        match char_at(gap, at) {
            Some((c, len)) if matches!(ascii_of(c, &mut buf), Some((0, _))) => at += len,
            _ => return false,
        }
    }
    true
}

/// Where the window around a character at `at` starts: [`REACH`] bytes
/// before it, then back to a space (or as far as [`REACH_TO_SPACE`]), on
/// a character boundary.
fn reach_back(text: &[u8], at: usize) -> usize {
    let mut start = at.saturating_sub(REACH);
    let limit = start.saturating_sub(REACH_TO_SPACE);
    while start > limit && !text[start - 1].is_ascii_whitespace() {
        start -= 1;
    }
    while start > 0 && text[start] & 0xC0 == 0x80 {
        start -= 1;
    }
    start
}

/// Where the window around a character that ends at `end` ends:
/// [`REACH`] bytes on, then on to a space (or as far as
/// [`REACH_TO_SPACE`]), on a character boundary. Text before `scanned`
/// was found to have no space by the scan that ended the window there,
/// which began no later than this one.
fn reach_on(text: &[u8], end: usize, scanned: usize) -> usize {
    let from = (end + REACH).min(text.len());
    let limit = (from + REACH_TO_SPACE).min(text.len());
    let mut stop = from.max(scanned.min(limit));
    while stop < limit && !text[stop].is_ascii_whitespace() {
        stop += 1;
    }
    while stop < text.len() && text[stop] & 0xC0 == 0x80 {
        stop += 1;
    }
    stop
}

/// The ASCII reading of `text`, or `None` when nothing in it is folded: a
/// whole value, as the masker replaces it.
pub(in crate::mask) fn fold(text: &[u8]) -> Option<Folded> {
    let mut buf = [0u8; 4];
    let mut at = 0;
    while let Some(p) = next_non_ascii(text, at) {
        match char_at(text, p) {
            Some((c, len))
                if ascii_of(c, &mut buf).is_some_and(|(_, role)| {
                    role != Role::LooksLatin || next_to_latin(text, p, len)
                }) =>
            {
                return Some(fold_range(text, 0, text.len()))
            }
            Some((_, len)) => at = p + len,
            None => at = p + 1,
        }
    }
    None
}

/// The reading of `text[start..end]`, every foldable character in it
/// folded; offsets are into `text`.
fn fold_range(text: &[u8], start: usize, end: usize) -> Folded {
    let mut folded = Folded {
        text: Vec::with_capacity(end - start),
        origin: Vec::with_capacity(end - start + 1),
    };
    let mut buf = [0u8; 4];
    let mut at = start;
    while at < end {
        let ascii_end = next_non_ascii(&text[..end], at).unwrap_or(end);
        folded.text.extend_from_slice(&text[at..ascii_end]);
        folded.origin.extend(at..ascii_end);
        at = ascii_end;
        if at == end {
            break;
        }
        let (c, len) = char_at(text, at)
            .filter(|&(_, len)| at + len <= end)
            .unwrap_or(('\u{FFFD}', 1));
        match ascii_of(c, &mut buf) {
            Some((n, _)) => {
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
    folded.origin.push(end);
    folded
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

    /// The readings `fold_windows` hands over, with where each starts.
    fn windows(text: &str) -> Vec<(usize, String)> {
        let mut found = Vec::new();
        fold_windows(text.as_bytes(), |f| {
            found.push((f.origin[0], String::from_utf8(f.text).expect("UTF-8")));
        });
        found
    }

    #[test]
    fn only_text_around_characters_that_may_be_part_of_a_value_is_read_again() {
        // Nothing that may be part of a value: an em dash between words,
        // Japanese punctuation, an accent on a Greek letter, emoji joiners.
        for text in [
            "the value—if any—is kept, “quoted” and … ok",
            "東京都（とうきょう）、日本。はい！",
            "Ελλα\u{301}δα",
            "family 👨\u{200D}👩\u{200D}👧 ok",
            "plain ascii 030 1234567",
            // Greek and Cyrillic words, whatever their letters look like.
            "Привет, как дела? Всё хорошо. Анна",
            "Καλημέρα κόσμε. Ο Νίκος",
        ] {
            assert_eq!(windows(text), Vec::new(), "{text}");
        }
        // A dash or a space between digits, fullwidth letters, a mark on a
        // digit, punctuation inside an address.
        for (text, reading) in [
            ("call 7946−0123", "call 7946-0123"),
            ("prix 12\u{A0}€", "prix 12 €"),
            ("ｊａｎｅ", "jane"),
            ("4\u{332}1", "41"),
            // An accent on a letter or on punctuation: stripped, it may
            // leave a value.
            ("Jose\u{301} Mu\u{308}ller", "Jose Muller"),
            ("jane＠example.com", "jane@example.com"),
            // Letters drawn like Latin ones inside an ASCII word, beside
            // `@`, or after a dot with ASCII before it.
            ("jаne", "jane"),
            ("асе@x", "ace@x"),
            ("mail.со", "mail.co"),
        ] {
            assert_eq!(windows(text), vec![(0, reading.to_string())], "{text}");
        }
        // Far apart, two windows, each cut at a space.
        let filler = "word ".repeat(200);
        let text = format!("a ４１ {filler}b ４２ c");
        let found = windows(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].1.starts_with("a 41 ") && found[0].1.ends_with("word"));
        assert!(found[1].1.ends_with("b 42 c"));
        assert_eq!(&text[found[1].0 - 1..found[1].0], " ");
    }

    #[test]
    fn every_character_that_folds_is_a_candidate() {
        let mut buf = [0u8; 4];
        let mut utf8 = [0u8; 4];
        for c in (0x80..=0x10FFFF).filter_map(char::from_u32) {
            if let Some((_, role)) = ascii_of(c, &mut buf) {
                let bytes = c.encode_utf8(&mut utf8).as_bytes();
                let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
                // A letter drawn like a Latin one is a candidate next to
                // ASCII; every other folding character whatever is before.
                let prev = if role == Role::LooksLatin { b'a' } else { 0 };
                assert!(
                    may_fold_at(prev, byte(0), byte(1), byte(2)),
                    "U+{:04X}",
                    u32::from(c)
                );
            }
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
