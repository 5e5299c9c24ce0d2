//! Values spelled out a character at a time, the same separator between
//! every two: `j a n e @ e x a m p l e . c o m`, `4-1-1-1-1-1-…`,
//! `j, a, n, e`. A query makes them with one call
//! (`regexp_replace(email, '(.)', '\1 ', 'g')`) and a reader reads them
//! whole, but no detector finds a value in them. Such a run is read again
//! without its separators, and what is found there masks the run.
//!
//! A run is found on three equal bytes a separator's length apart (eight
//! positions tested at once), which ordinary text seldom has: a run of one
//! repeated byte is not a run of separators, and letters and digits never
//! separate.

use super::fold::Folded;

/// The separators' lengths read: one byte (`j a n`) and two (`j, a, n`);
/// a stride is a separator and a character.
const STRIDES: [usize; 2] = [2, 3];

/// Hands each run of single characters spelled out with one separator,
/// read without the separators, to `each`, in order.
pub(super) fn spaced_runs(text: &[u8], mut each: impl FnMut(Folded)) {
    if text.len() < 2 * MIN_SEPARATORS + 1 {
        return;
    }
    let mut at = 0;
    while let Some(p) = next_candidate(text, at) {
        at = p + 1;
        for stride in STRIDES {
            let Some((first, last, read)) = run_through(text, p, stride) else {
                continue;
            };
            // Every candidate inside the run leads to it again: a long
            // run of one byte is walked once.
            at = at.max(last + 1);
            if read {
                each(read_run(text, first, last, stride));
                break;
            }
        }
    }
}

/// How many positions [`next_candidate`] tests at once, and how far past
/// them it reads: two of the widest strides.
const BLOCK: usize = 32;
const LOOK: usize = 6;

/// The first position at or after `from` that may be a separator: a byte
/// that is no letter or digit, repeated one and two strides on. Each block
/// of positions is tested in one branch-free loop that vectorizes.
fn next_candidate(text: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + BLOCK + LOOK <= text.len() {
        let bytes: &[u8; BLOCK + LOOK] = text[i..i + BLOCK + LOOK].try_into().expect("a block");
        if let Some(k) = first_candidate(bytes) {
            return Some(i + k);
        }
        i += BLOCK;
    }
    // The last positions, one at a time: most cells are shorter than a
    // block.
    (i..text.len()).find(|&j| candidate(text, j))
}

/// The first position of the block that may be a separator. Each
/// position's test is computed into a byte, all alike, then the bytes are
/// or-ed: both loops vectorize, and the search runs only on a hit.
#[inline(always)]
fn first_candidate(bytes: &[u8; BLOCK + LOOK]) -> Option<usize> {
    let mut hits = [0u8; BLOCK];
    for (k, hit) in hits.iter_mut().enumerate() {
        let b = bytes[k];
        let two = (b == bytes[k + 2]) & (b == bytes[k + 4]);
        let three = (b == bytes[k + 3]) & (b == bytes[k + 6]);
        let alnum = ((b | 0x20).wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10);
        let sep = !alnum & (b != 0) & (b < 0x80);
        *hit = u8::from((two | three) & sep);
    }
    if hits.iter().fold(0, |any, &h| any | h) == 0 {
        return None;
    }
    hits.iter().position(|&h| h != 0)
}

/// Whether the byte at `j` may be a separator (see [`next_candidate`]).
fn candidate(text: &[u8], j: usize) -> bool {
    let at = |j: usize| text.get(j).copied();
    let b = text[j];
    let repeated = (at(j + 2) == Some(b) && at(j + 4) == Some(b))
        || (at(j + 3) == Some(b) && at(j + 6) == Some(b));
    repeated && b != 0 && b.is_ascii() && !b.is_ascii_alphanumeric()
}

/// Fewest separators in a run that is read again: six characters, the
/// shortest value a detector finds.
const MIN_SEPARATORS: usize = 5;

/// Whether `sep` is a separator: no letter, no digit, no byte outside
/// ASCII, and no NUL (text in UTF-16 has one before or after each ASCII
/// character; it is read as such where it may be).
fn separator(sep: &[u8]) -> bool {
    sep.iter()
        .all(|&b| b.is_ascii() && b != 0 && !b.is_ascii_alphanumeric())
}

/// Letters and digits a run must read as, at least: a run of one repeated
/// byte (`------`, padding) or of punctuation is no value.
const MIN_ALNUM: usize = 4;

/// The run of separators through the separator candidate at `p` (a byte
/// repeated a stride and two on): its first and last separator, each the
/// same bytes with one ASCII character between two, and whether it is
/// read (at least [`MIN_SEPARATORS`], reading as [`MIN_ALNUM`] letters
/// and digits).
fn run_through(text: &[u8], p: usize, stride: usize) -> Option<(usize, usize, bool)> {
    let len = stride - 1;
    // The candidate may be any byte of the separator: its start is one of
    // the `len` positions up to `p`.
    (0..len)
        .filter_map(|back| p.checked_sub(back))
        .find_map(|start| {
            let sep = text.get(start..start + len)?;
            if !separator(sep) {
                return None;
            }
            let is_sep = |at: usize| text.get(at..at + len) == Some(sep);
            let is_char = |at: usize| text.get(at).is_some_and(u8::is_ascii);
            if !is_char(start + len) || start == 0 || !is_char(start - 1) {
                return None;
            }
            let mut first = start;
            while first > stride && is_sep(first - stride) && is_char(first - stride - 1) {
                first -= stride;
            }
            let mut last = start;
            while is_sep(last + stride) && is_char(last + stride + len) {
                last += stride;
            }
            // A character at either end with a letter or digit beyond it ends
            // or starts a word (`mail j a n e`): it is not spelled out.
            let alnum_at = |at: Option<usize>| {
                at.and_then(|at| text.get(at))
                    .is_some_and(u8::is_ascii_alphanumeric)
            };
            if alnum_at((first - 1).checked_sub(1)) && last > first {
                first += stride;
            }
            if alnum_at(Some(last + len + 1)) && last > first {
                last -= stride;
            }
            let count = (last - first) / stride + 1;
            let alnum = std::iter::once(first - 1)
                .chain((first..=last).step_by(stride).map(|s| s + len))
                .filter(|&at| text[at].is_ascii_alphanumeric())
                .count();
            Some((first, last, count >= MIN_SEPARATORS && alnum >= MIN_ALNUM))
        })
}

/// The characters of the run whose separators are `first..=last`, with
/// where each was.
fn read_run(text: &[u8], first: usize, last: usize, stride: usize) -> Folded {
    let len = stride - 1;
    let positions =
        std::iter::once(first - 1).chain((first..=last).step_by(stride).map(|s| s + len));
    let mut folded = Folded {
        text: Vec::with_capacity((last - first) / stride + 2),
        origin: Vec::with_capacity((last - first) / stride + 3),
    };
    for at in positions {
        folded.text.push(text[at]);
        folded.origin.push(at);
    }
    folded.origin.push(last + len + 1);
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(text: &str) -> Vec<(String, usize, usize)> {
        let mut found = Vec::new();
        spaced_runs(text.as_bytes(), |f| {
            let start = f.origin[0];
            let end = *f.origin.last().expect("an end");
            found.push((String::from_utf8(f.text).expect("ASCII"), start, end));
        });
        found
    }

    #[test]
    fn characters_spelled_out_with_one_separator_are_read_together() {
        for (text, reading, spelled) in [
            (
                "mail j a n e @ e x a m p l e . c o m ok",
                "jane@example.com",
                "j a n e @ e x a m p l e . c o m",
            ),
            ("4-1-1-1-1-1-1-1", "41111111", "4-1-1-1-1-1-1-1"),
            (
                "x j, a, n, e, @, x, ., i, o y",
                "jane@x.io",
                "j, a, n, e, @, x, ., i, o",
            ),
            // A dot between the characters, and dots among them.
            (
                "e.x.a.m.p.l.e...c.o.m",
                "example.com",
                "e.x.a.m.p.l.e...c.o.m",
            ),
        ] {
            let found = runs(text);
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            let (read, start, end) = &found[0];
            assert_eq!(read, reading, "{text}");
            assert_eq!(&text[*start..*end], spelled, "{text}");
        }
    }

    #[test]
    fn ordinary_text_has_no_run() {
        for text in [
            "the shipment was sent on 2025-11-03, a b c, and I a m",
            "------ ====== 000000 ...... ||||||",
            "| a | b | c |",
            "1.2.3.4",
            "",
            "ab",
        ] {
            assert_eq!(runs(text), Vec::new(), "{text}");
        }
    }
}
