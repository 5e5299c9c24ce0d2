//! What the PostgreSQL and MySQL row maskers share: the outcome of masking
//! a row, the per-column counts they report, and the value rules that do
//! not depend on a wire format (text that may be JSON, bytes that may not
//! be text, integers that must fit their column).
//!
//! Nothing here knows a protocol's encodings; `pg` and `mysql` decode
//! their rows and call these rules per value. Nothing here may pass a
//! value it could not scan: the rules return `Null` before they return
//! bytes they did not read.

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

#[cfg(test)]
mod tests {
    use super::*;

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
