//! Values glued inside a longer token: `x4111111111111111`,
//! `1-4111111111111111`, `7_4111 1111 1111 1111`, `4111111111111111x`,
//! `ref-536-90-4399`, `cust9DE89370400440532013000`. One concatenation in a
//! query makes them, from a column or from free text, and a reader sees the
//! value whole; but the readings of a word (`numeric_at`) take a value only
//! where a word starts or after a label of letters, so that order numbers
//! and build ids stay whole.
//!
//! Inside a token only what a checksum or a fixed punctuation proves is
//! read, and only where the value's digits are bounded by non-digits: a
//! card number (issuer and Luhn, as one run or in its printed groups), the
//! formats with fixed punctuation and a check (SSN, CPF, personnummer, RRN,
//! DNI, HETU) unless a number comes before them, a French NIR, and the ids
//! that open with letters (IBAN, NIE, NINO, codice fiscale). A number
//! glued to digits with no separator (`94111111111111111`) is another
//! number, a decimal fraction (`0.4111111111111111`, a double's rendering)
//! is a fraction, and a digest's hex holds no number.

use super::{checks, digit_len, find_digit, Finding, Kind, Scanner};

/// The most significant digits a double is printed with: a fraction that
/// leaves the whole number within them is a rendering of a double.
const DOUBLE_DIGITS: usize = 17;

/// The longest card number.
const CARD_DIGITS_AT_MOST: usize = 19;

/// The most groups a card number is printed in (`4111 1111 1111 1111 111`).
const CARD_GROUPS_AT_MOST: usize = 5;

impl Scanner {
    /// The first value proven inside the word `ws..word_end`, looking at
    /// each run of digits from `from` on. Called once the readings of the
    /// word as a whole found nothing.
    pub(super) fn inside_token(
        &self,
        text: &[u8],
        ws: usize,
        from: usize,
        word_end: usize,
    ) -> Option<Finding> {
        if is_digest_hex(&text[ws..word_end]) {
            return None;
        }
        let mut q = from;
        while let Some(run) = find_digit(text, q).filter(|&at| at < word_end) {
            let end = run + digit_len(&text[run..]);
            let found = self
                .run_inside_token(text, ws, run, end)
                .filter(|f| self.on(f.kind));
            if found.is_some() {
                return found;
            }
            q = end;
        }
        None
    }

    fn run_inside_token(&self, text: &[u8], ws: usize, q: usize, e: usize) -> Option<Finding> {
        let n = e - q;
        let digits = &text[q..e];
        let found = |kind| {
            Some(Finding {
                kind,
                start: q,
                end: e,
            })
        };
        // Twelve digits inside a token are too often hex: Maestro's
        // shortest numbers are read where a word starts.
        if (13..=CARD_DIGITS_AT_MOST).contains(&n)
            && !is_fraction(text, q, n)
            && checks::card_issuer(digits)
            && checks::luhn(digits)
            && !checks::is_filler_digits(digits)
        {
            return found(Kind::Card);
        }
        // After a digit and a separator the run is one group of a longer
        // number (`656-790-92-3673`, a key, a phone number).
        let after_digits =
            q >= 2 && !text[q - 1].is_ascii_alphanumeric() && text[q - 2].is_ascii_digit();
        if n == 15 && !after_digits && checks::fr_nir(digits) {
            return found(Kind::FrNir);
        }
        if n == 4 {
            if let Some(f) = self.card_groups_inside_token(text, q) {
                return Some(f);
            }
        }
        if matches!(n, 3 | 6 | 8) && !after_digits {
            if let Some(f) = self.fixed_formats(text, q, true) {
                return Some(f);
            }
        }
        // Ids that open with letters, where those letters are glued to
        // something before them: IBAN and NINO two, NIE one, codice
        // fiscale six. At the word's start they were read already.
        for letters in [2, 1, 6] {
            let Some(at) = q.checked_sub(letters).filter(|&at| at > ws) else {
                continue;
            };
            if text[at..q].iter().all(u8::is_ascii_alphabetic) {
                if let Some(f) = self.letter_led(text, at) {
                    return Some(f);
                }
            }
        }
        None
    }

    /// A card number printed in groups (`4111 1111 1111 1111`,
    /// `4111-1111-1111-1111`, `3782-822463-10005`) from the four digits at
    /// `q`. Groups joined by `-` or `.` must be all of the token's groups:
    /// `1234-5678-9012-3456-7890` is a key and `8002885c-5610-4136-8313-62fb…`
    /// a UUID, and no four of their groups are a card.
    fn card_groups_inside_token(&self, text: &[u8], q: usize) -> Option<Finding> {
        let sep = *text.get(q + 4)?;
        let digit_at = |at: usize| text.get(at).is_some_and(u8::is_ascii_digit);
        if !matches!(sep, b' ' | b'-' | b'.') || !digit_at(q + 5) {
            return None;
        }
        // Groups that go on a longer token's groups (a UUID's, a key's).
        if q >= 2 && text[q - 1] == sep && text[q - 2].is_ascii_alphanumeric() {
            return None;
        }
        let mut digits = [0u8; CARD_DIGITS_AT_MOST];
        let mut lens = [0usize; CARD_GROUPS_AT_MOST];
        let (mut k, mut len, mut at, mut end) = (0, 0, q, q);
        loop {
            let group = digit_len(&text[at..]);
            if k == CARD_GROUPS_AT_MOST || len + group > CARD_DIGITS_AT_MOST {
                // Words after a space are the text going on.
                if sep == b' ' {
                    break;
                }
                return None;
            }
            digits[len..len + group].copy_from_slice(&text[at..at + group]);
            lens[k] = group;
            k += 1;
            len += group;
            end = at + group;
            if text.get(end) != Some(&sep) || !digit_at(end + 1) {
                break;
            }
            at = end + 1;
        }
        // A card is printed in three groups or more.
        if len < 12 || k < 3 {
            return None;
        }
        let kind = self.digit_groups_kind(text, q, &digits[..len], &lens[..k], sep)?;
        (kind == Kind::Card).then_some(Finding {
            kind,
            start: q,
            end,
        })
    }
}

/// Whether a word is a digest written in hex (MD5, SHA-1, SHA-2): its
/// digits are no number.
fn is_digest_hex(word: &[u8]) -> bool {
    matches!(word.len(), 32 | 40 | 56 | 64 | 96 | 128)
        && word.iter().all(u8::is_ascii_hexdigit)
        && word.iter().any(u8::is_ascii_alphabetic)
}

/// Whether the `n` digits at `q` are the fraction of a decimal number
/// (`0.4111111111111111`): a digit and `.` before them, and the number's
/// significant digits within a double's.
fn is_fraction(text: &[u8], q: usize, n: usize) -> bool {
    if q < 2 || text[q - 1] != b'.' || !text[q - 2].is_ascii_digit() {
        return false;
    }
    let whole = text[..q - 1]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let leading_zeros = text[q - 1 - whole..q - 1]
        .iter()
        .take_while(|&&b| b == b'0')
        .count();
    whole - leading_zeros + n <= DOUBLE_DIGITS
}
