//! What the PostgreSQL and MySQL row maskers share: the outcome of masking
//! a row, the per-column counts they report, and the value rules that do
//! not depend on a wire format (text that may be JSON, bytes that may not
//! be text, integers that must fit their column).
//!
//! Nothing here knows a protocol's encodings; `pg` and `mysql` decode
//! their rows and call these rules per value. Nothing here may pass a
//! value it could not scan: the rules return `Null` before they return
//! bytes they did not read.

use std::collections::HashSet;

use bytes::Bytes;

use super::kind::Kind;
use super::masker::{Masked, Masker, Scratch, Tally};

/// What the masker did to one row.
#[derive(Debug, PartialEq, Eq)]
pub enum RowOutcome {
    /// Forward the original bytes.
    Unchanged,
    /// Forward these rewritten bytes instead: a whole frame for
    /// PostgreSQL, a packet payload for MySQL (whose relay frames it).
    Rewritten(Bytes),
}

impl RowOutcome {
    /// The bytes to forward: the rewritten ones, or `original`.
    pub fn frame_or<'a>(&'a self, original: &'a Bytes) -> &'a Bytes {
        match self {
            RowOutcome::Unchanged => original,
            RowOutcome::Rewritten(frame) => frame,
        }
    }
}

/// Masking counts of one statement's result: per column, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskStats {
    pub columns: Vec<(String, Vec<(Kind, u32)>)>,
    /// The original names of masked columns whose label differs, where the
    /// protocol says (MySQL's `org_name`): learned, not shown.
    pub originals: Vec<String>,
}

impl MaskStats {
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.columns
            .iter()
            .flat_map(|(_, c)| c.iter())
            .map(|(_, n)| u64::from(*n))
            .sum()
    }

    /// Moves the non-empty column tallies into the stats, in column order,
    /// and resets them all (what a column held in one result says nothing
    /// about the next). A column the masker has no name for (a row longer
    /// than its description) is `columnN`.
    pub(super) fn take_columns<'a>(
        &mut self,
        tallies: &mut [Tally],
        name_of: impl Fn(usize) -> Option<&'a str>,
    ) {
        for (i, tally) in tallies.iter_mut().enumerate() {
            if !tally.is_empty() {
                let name = name_of(i).map_or_else(|| format!("column{}", i + 1), str::to_owned);
                self.columns.push((name, tally.counts().collect()));
            }
            *tally = Tally::default();
        }
    }

    /// Moves a tally kept outside the columns (messages, COPY data) into
    /// the stats under `name`, if it counted anything, and resets it.
    pub(super) fn take_named(&mut self, name: &str, tally: &mut Tally) {
        if !tally.is_empty() {
            self.columns.push((name.into(), tally.counts().collect()));
            *tally = Tally::default();
        }
    }
}

/// A text value: a JSON document kept in a text column is masked as JSON
/// (its member names are context, not text to match), anything else as
/// a cell of its column ([`Masker::mask_cell`]).
pub(super) fn mask_text_value(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    if looks_like_json(value) {
        return engine.mask_json(value, scratch, tally);
    }
    engine.mask_cell(value, scratch, tally)
}

pub(super) fn looks_like_json(value: &[u8]) -> bool {
    let trimmed = value.trim_ascii();
    matches!(
        (trimmed.first(), trimmed.last()),
        (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
    )
}

/// Whether `value` is UTF-8 text a person could read: no control
/// characters other than whitespace. Only such bytes can take a text
/// replacement and stay what they were.
pub(super) fn is_printable(value: &[u8]) -> bool {
    std::str::from_utf8(value)
        .is_ok_and(|s| s.chars().all(|c| !c.is_control() || c.is_whitespace()))
}

/// A binary value of a type Airlock cannot rewrite: text-looking bytes are
/// masked as text; anything else with a finding becomes NULL.
pub(super) fn fail_closed(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let printable = is_printable(value);
    match engine.mask_text(value, scratch, tally) {
        Masked::Replaced(_) if !printable => Masked::Null,
        other => other,
    }
}

/// The largest value of an integer column `width` bytes wide (1 to 8).
pub(super) fn int_max(width: u8, unsigned: bool) -> u64 {
    let bits = u32::from(width.clamp(1, 8)) * 8;
    let all = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    if unsigned {
        all
    } else {
        all >> 1
    }
}

/// A masked integer must fit its column: a substitute above `max` (only a
/// token of a long value can be) keeps its low digits. Substitutes are
/// never negative, so the lower bound of a signed column needs no check.
pub(super) fn fit_int(masked: Masked, max: u64) -> Masked {
    match masked {
        Masked::Replaced(v) => {
            let n: u64 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let n = if n > max { n % (max / 10 + 1) } else { n };
            Masked::Replaced(n.to_string().into_bytes())
        }
        other => other,
    }
}

/// Masks a text the server wrote for the client outside result rows
/// (error and notice messages, notification payloads). `None` when nothing
/// changes. The text is read as delimited fields of unknown types, so a
/// value quoted whole keeps its shape.
pub(super) fn mask_message(
    engine: &Masker,
    text: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Option<Vec<u8>> {
    match engine.mask_delimited(text, scratch, tally) {
        Masked::Replaced(v) => Some(v),
        Masked::Unchanged | Masked::Null => None,
    }
}

/// Column descriptions (a PostgreSQL RowDescription, a MySQL column
/// definition) whose names were scanned and held nothing to mask. A
/// session describes the same few results statement after statement; each
/// description is scanned once, not per statement. Only descriptions that
/// masked nothing are kept, and only identical bytes are spared, so the
/// set changes no output and no tally. Bounded: emptied when full, and a
/// large description is not kept.
#[derive(Debug, Default)]
pub(super) struct CleanDescriptions(HashSet<Box<[u8]>>);

impl CleanDescriptions {
    const MAX_ENTRIES: usize = 64;
    const MAX_BYTES: usize = 4096;

    pub(super) fn contains(&self, description: &[u8]) -> bool {
        !self.0.is_empty() && self.0.contains(description)
    }

    pub(super) fn insert(&mut self, description: &[u8]) {
        if description.len() > Self::MAX_BYTES {
            return;
        }
        if self.0.len() >= Self::MAX_ENTRIES {
            self.0.clear();
        }
        self.0.insert(description.into());
    }
}

/// The longest digit string a number form is scanned as: a card has 19
/// digits at most; a longer run is no identifier the detectors know.
const FORM_DIGITS: usize = 24;

/// A digit string on the stack: number forms are built per value without
/// allocating.
pub(super) struct Digits {
    buf: [u8; FORM_DIGITS],
    len: usize,
}

impl Digits {
    fn new() -> Self {
        Digits {
            buf: [0; FORM_DIGITS],
            len: 0,
        }
    }

    /// Appends a digit; `false` once the string would be too long.
    fn push(&mut self, d: u8) -> bool {
        if self.len == FORM_DIGITS {
            return false;
        }
        self.buf[self.len] = d;
        self.len += 1;
        true
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The integer a number rendering stands for, as the digits a detector
/// reads: `4.111111111111111e+15` and `4111111111111111.0` are a card
/// cast to float or numeric, but not one run of digits between
/// boundaries. The integer part, exponent applied, when it is at most
/// [`FORM_DIGITS`] long (empty when the value is below 1). The fraction
/// is not read: any double has 16 significant digits, and reading them
/// as an identifier would mask `2.718281828459045` as a card; a card
/// divided down is arithmetic, not a cast (see the module docs). Accepts
/// what PostgreSQL and MySQL write for integers, numeric/DECIMAL, floats
/// and money (a currency sign and group separators are skipped; `,` is
/// read as a decimal point only when followed by exactly two digits at
/// the end, as in money's European renderings).
pub(super) fn integer_form(text: &[u8]) -> Option<Digits> {
    let text = text.trim_ascii();
    // An exponent is `e` after a digit and before an integer; an `E` in
    // a currency name is none.
    let exponent_at = text
        .iter()
        .position(|&b| b == b'e' || b == b'E')
        .filter(|&e| {
            e > 0
                && text[e - 1].is_ascii_digit()
                && std::str::from_utf8(&text[e + 1..]).is_ok_and(|x| x.parse::<i32>().is_ok())
        });
    let (mantissa, exponent) = match exponent_at {
        Some(e) => {
            let exp = std::str::from_utf8(&text[e + 1..])
                .ok()
                .and_then(|x| x.parse::<i32>().ok())
                .unwrap_or(0);
            (&text[..e], exp)
        }
        None => (text, 0),
    };
    if !mantissa.iter().any(u8::is_ascii_digit) {
        return None;
    }
    // The decimal point: a lone `.` after every `,` (`4,111.00`,
    // `4111.000`), or a last `,` followed by one or two digits
    // (`4.111,00 EUR`); several `.` and no `,` are group separators.
    let last_dot = mantissa.iter().rposition(|&b| b == b'.');
    let last_comma = mantissa.iter().rposition(|&b| b == b',');
    let dots = mantissa.iter().filter(|&&b| b == b'.').count();
    let point = match (last_dot, last_comma) {
        (Some(d), c) if dots == 1 && c.is_none_or(|c| c < d) => Some(d),
        (d, Some(c)) if d.is_none_or(|d| d < c) => {
            let digits = mantissa[c + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            (1..=2).contains(&digits).then_some(c)
        }
        _ => None,
    };
    let (int_text, frac_text) = match point {
        Some(p) => (&mantissa[..p], &mantissa[p + 1..]),
        None => (mantissa, &[][..]),
    };
    let int_digits = int_text.iter().copied().filter(u8::is_ascii_digit);
    let frac_digits = frac_text.iter().copied().filter(u8::is_ascii_digit);
    let int_count = int_text.iter().filter(|b| b.is_ascii_digit()).count() as i64;
    // The integer part: the first `int_count + exponent` digits of the
    // mantissa, padded with zeros when the exponent reaches past it.
    let mut int = Digits::new();
    let mut int_ok = true;
    let int_len = int_count + i64::from(exponent);
    if int_len > 0 {
        let mut all = int_digits.chain(frac_digits).chain(std::iter::repeat(b'0'));
        let mut started = false;
        for _ in 0..int_len.min(FORM_DIGITS as i64 + 1) {
            let d = all.next().unwrap_or(b'0');
            if !started && d == b'0' {
                continue;
            }
            started = true;
            int_ok &= int.push(d);
        }
        int_ok &= int_len <= 64;
    }
    if !int_ok {
        int.len = 0;
    }
    Some(int)
}

/// Masks a number by the integer it stands for (see [`integer_form`]): the
/// substitute is a number (digits only) that stands in for the whole
/// value.
pub(super) fn mask_number_forms(
    engine: &Masker,
    text: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    // Without an exponent the integer part has no more digits than the text.
    if super::masker::too_few_digits(text) {
        return Masked::Unchanged;
    }
    let Some(int) = integer_form(text) else {
        return engine.mask_number(text, scratch, tally);
    };
    if int.len == 0 {
        return Masked::Unchanged;
    }
    engine.mask_number(int.as_slice(), scratch, tally)
}

/// An IEEE float masked by the integer its shortest rendering stands for
/// (what a client prints: `4111111111111111.0`); a substitute goes back as
/// a float of the same width.
pub(super) fn mask_float(
    engine: &Masker,
    value: f64,
    single: bool,
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Option<Masked> {
    use std::io::Write;
    if !value.is_finite() {
        return Some(Masked::Unchanged);
    }
    let mut buf = [0u8; 40];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // The shortest rendering that reads back as the same value: the digits
    // a client prints.
    let written = if single {
        write!(cursor, "{:e}", value as f32)
    } else {
        write!(cursor, "{value:e}")
    };
    written.ok()?;
    let len = cursor.position() as usize;
    Some(mask_number_forms(engine, &buf[..len], scratch, tally))
}

/// Whether `value` may hold text in a wide encoding (UTF-16 or UTF-32, as
/// MySQL's ucs2/utf16/utf16le/utf32 columns or bytes built to look like
/// them): a run of ASCII characters each with the zero bytes of its code
/// unit beside it. Identifiers are ASCII; text in an ASCII-compatible
/// encoding has no zero bytes, and blobs (images, compressed data) seldom
/// have such runs, so only values that do are decoded. One pass, no
/// allocation.
pub(super) fn may_be_wide(value: &[u8]) -> bool {
    // The shortest value a detector finds (see `Scanner::scan`).
    const RUN: u32 = 6;
    if value.len() < 2 * RUN as usize || memchr::memchr(0, value).is_none() {
        return false;
    }
    let ascii = |b: u8| (0x20..0x7f).contains(&b);
    // Code units in big-endian order at either alignment: little-endian
    // text read one byte later is big-endian text.
    let mut runs16 = [0u32; 2];
    let mut runs32 = [0u32; 4];
    for i in 0..value.len() {
        let unit16 = value
            .get(i..i + 2)
            .is_some_and(|u| u[0] == 0 && ascii(u[1]));
        let r = &mut runs16[i % 2];
        *r = if unit16 { *r + 1 } else { 0 };
        let unit32 = value
            .get(i..i + 4)
            .is_some_and(|u| u[..3] == [0, 0, 0] && ascii(u[3]));
        let r32 = &mut runs32[i % 4];
        *r32 = if unit32 { *r32 + 1 } else { 0 };
        if runs16[i % 2] >= RUN || runs32[i % 4] >= RUN {
            return true;
        }
    }
    false
}

/// The wide encodings a value is tried in, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wide {
    Utf16Be,
    Utf16Le,
    Utf32Be,
    Utf32Le,
}

impl Wide {
    const ALL: [Wide; 4] = [Wide::Utf32Be, Wide::Utf32Le, Wide::Utf16Be, Wide::Utf16Le];

    fn decode(self, value: &[u8]) -> Option<String> {
        match self {
            Wide::Utf16Be | Wide::Utf16Le => {
                if !value.len().is_multiple_of(2) {
                    return None;
                }
                let units = value.chunks_exact(2).map(|p| {
                    let pair = [p[0], p[1]];
                    if self == Wide::Utf16Be {
                        u16::from_be_bytes(pair)
                    } else {
                        u16::from_le_bytes(pair)
                    }
                });
                char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .ok()
            }
            Wide::Utf32Be | Wide::Utf32Le => {
                if !value.len().is_multiple_of(4) {
                    return None;
                }
                value
                    .chunks_exact(4)
                    .map(|q| {
                        let quad = [q[0], q[1], q[2], q[3]];
                        char::from_u32(if self == Wide::Utf32Be {
                            u32::from_be_bytes(quad)
                        } else {
                            u32::from_le_bytes(quad)
                        })
                    })
                    .collect()
            }
        }
    }

    fn encode(self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() * 4);
        match self {
            Wide::Utf16Be | Wide::Utf16Le => {
                for unit in text.encode_utf16() {
                    out.extend_from_slice(&if self == Wide::Utf16Be {
                        unit.to_be_bytes()
                    } else {
                        unit.to_le_bytes()
                    });
                }
            }
            Wide::Utf32Be | Wide::Utf32Le => {
                for c in text.chars() {
                    let c = u32::from(c);
                    out.extend_from_slice(&if self == Wide::Utf32Be {
                        c.to_be_bytes()
                    } else {
                        c.to_le_bytes()
                    });
                }
            }
        }
        out
    }
}

/// Masks a value that may be text in a wide encoding (see
/// [`may_be_wide`]): each encoding it decodes in is scanned, and a
/// replacement is written back in that encoding, so the value stays text
/// of its character set. `Unchanged` when no decoding has a finding.
pub(super) fn mask_wide_text(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    for wide in Wide::ALL {
        let Some(text) = wide.decode(value) else {
            continue;
        };
        match mask_text_value(engine, text.as_bytes(), scratch, tally) {
            Masked::Unchanged => {}
            Masked::Null => return Masked::Null,
            Masked::Replaced(v) => {
                return match String::from_utf8(v) {
                    Ok(masked) => Masked::Replaced(wide.encode(&masked)),
                    Err(_) => Masked::Null,
                };
            }
        }
    }
    Masked::Unchanged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_values_with_wide_ascii_runs_are_decoded_as_wide_text() {
        let utf16le: Vec<u8> = "a@b.org"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let utf32be: Vec<u8> = "a@b.org"
            .chars()
            .flat_map(|c| u32::from(c).to_be_bytes())
            .collect();
        assert!(may_be_wide(&utf16le) && may_be_wide(&utf32be));
        // A blob with zero bytes but no such run, and plain text.
        let blob: Vec<u8> = (0..70_000usize)
            .map(|i| ((i * 7 + i / 256) % 256) as u8)
            .collect();
        assert!(!may_be_wide(&blob));
        assert!(!may_be_wide(b"plain text, no zero bytes"));
    }

    #[test]
    fn int_max_covers_every_width_and_sign() {
        assert_eq!(int_max(1, false), 127);
        assert_eq!(int_max(1, true), 255);
        assert_eq!(int_max(2, false), i16::MAX as u64);
        assert_eq!(int_max(3, false), 8_388_607);
        assert_eq!(int_max(3, true), 16_777_215);
        assert_eq!(int_max(4, true), u32::MAX as u64);
        assert_eq!(int_max(8, false), i64::MAX as u64);
        assert_eq!(int_max(8, true), u64::MAX);
    }

    #[test]
    fn fit_int_keeps_substitutes_within_the_column() {
        let fit = |v: &[u8], max| match fit_int(Masked::Replaced(v.to_vec()), max) {
            Masked::Replaced(v) => String::from_utf8(v).unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fit(b"1111", 32767), "1111");
        let small = fit(b"987654321", 127);
        assert!(small.parse::<u64>().is_ok_and(|n| n <= 127), "{small}");
        assert_eq!(fit_int(Masked::Null, 127), Masked::Null);
    }
}
