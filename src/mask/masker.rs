//! Masking: what a detected value is replaced with, in text, in JSON and in
//! numbers, per the policy's strategy for its kind.

use super::json::{self, Leaf};
use super::kind::{Detectors, Finding, Kind};
use super::scan::{fold_to_ascii, LentPhoneMemo, PhoneMemo, Scanner};
use crate::sql::{lexer, Dialect};
use std::ops::Range;

/// How a detected value is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `<EMAIL>`; in a number column, `0`.
    Redact,
    /// Keep what identifies the value's owner least: the last four digits
    /// of a card, the domain of an email, the first octets of an address.
    /// Secrets are always redacted whole.
    Partial,
    /// A keyed BLAKE3 pseudonym: equal values give equal tokens, so masked
    /// columns can still be joined, grouped and counted.
    Token,
    /// The whole value becomes NULL (JSON leaves become `null`).
    Null,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Redact => "redact",
            Strategy::Partial => "partial",
            Strategy::Token => "token",
            Strategy::Null => "null",
        }
    }

    pub fn from_name(name: &str) -> Option<Strategy> {
        [
            Strategy::Redact,
            Strategy::Partial,
            Strategy::Token,
            Strategy::Null,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// The outcome of masking one value.
#[derive(Debug, PartialEq, Eq)]
pub enum Masked {
    Unchanged,
    Replaced(Vec<u8>),
    Null,
}

/// Counts of findings by kind, for one column or one statement; for a
/// column, also what its values have looked like so far in this result
/// ([`ColumnMemory`]) and how often they were repeats ([`RecallUse`]).
/// All are reset when the row masker hands its stats over at the end of a
/// result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    counts: [u32; Kind::ALL.len()],
    column: ColumnMemory,
    recall: RecallUse,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: [0; Kind::ALL.len()],
            column: ColumnMemory::default(),
            recall: RecallUse::default(),
        }
    }
}

impl Tally {
    pub fn add(&mut self, kind: Kind) {
        self.counts[kind as usize] += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&n| n == 0)
    }

    /// Non-zero counts, strongest kind first.
    pub fn counts(&self) -> impl Iterator<Item = (Kind, u32)> + '_ {
        Kind::ALL
            .into_iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
    }
}

/// What the cells of one column have looked like in the current result:
/// two saturating counters, so it costs four bytes per column and nothing
/// per row but two additions.
///
/// A national phone number written without `+` (`030 1234567`,
/// `098765 43210`) has no checksum and, alone in a cell, no context word;
/// its shape is shared with invoice and reference numbers. A column where
/// most cells are such numbers is a column of phone numbers all the same,
/// and from its second such cell on each one is masked. The first cell of
/// a result is only masked by the scanner's own rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnMemory {
    /// Non-empty cells seen.
    cells: u16,
    /// Of those, cells that were a phone number as a whole, found by the
    /// scanner or by their national shape.
    phones: u16,
}

impl ColumnMemory {
    fn saw(&mut self, phone: bool) {
        self.cells = self.cells.saturating_add(1);
        if phone {
            self.phones = self.phones.saturating_add(1);
        }
    }

    /// At least two phone numbers, and three cells in four.
    fn holds_phones(self) -> bool {
        self.phones >= 2 && u32::from(self.phones) * 4 >= u32::from(self.cells) * 3
    }
}

/// How often a column's values were found in the session's [`Recall`]
/// in the current result. A column whose values do not repeat (ids,
/// timestamps, addresses) stops being looked up after a few dozen values,
/// so that it pays for the lookups only while that is being learnt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RecallUse {
    lookups: u16,
    hits: u16,
}

impl RecallUse {
    /// Values looked up before a column's rate of repeats is judged.
    const TRIAL: u16 = 64;

    /// Whether looking the next value up is worth it: during the trial,
    /// or when one value in eight or more was a repeat.
    fn worth_it(self) -> bool {
        self.lookups < Self::TRIAL || self.hits >= self.lookups / 8
    }

    fn note(&mut self, hit: bool) {
        self.lookups = self.lookups.saturating_add(1);
        self.hits = self.hits.saturating_add(u16::from(hit));
    }
}

/// What the scanner found in values the session masked before: a value
/// that repeats down a result (a status, a template note, the same JSON
/// document) is scanned once. The scan is a function of the value's bytes
/// alone (for one [`Masker`]; a session keeps one), so recalling it gives
/// exactly what scanning again would; the findings are then counted and
/// replaced as freshly found ones are. A fixed number of slots, each
/// chosen by the value's hash and taken over by the next value that hashes
/// there: memory is bounded per session, and nothing is shared between
/// sessions.
#[derive(Default)]
struct Recall {
    slots: Vec<RecallSlot>,
    hasher: foldhash::fast::RandomState,
}

/// The slots hold values as the database sent them, before masking: a
/// debug print of a session's masker must not show them.
impl std::fmt::Debug for Recall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.slots.iter().filter(|s| !s.value.is_empty()).count();
        write!(f, "Recall {{ {used} of {} slots used }}", Self::SLOTS)
    }
}

#[derive(Default)]
struct RecallSlot {
    /// The value; empty while the slot is unused (shorter values are not
    /// kept).
    value: Vec<u8>,
    findings: Vec<Finding>,
}

impl Recall {
    const SLOTS: usize = 256;
    /// Shorter values cost less to scan than to look up; longer ones
    /// would make the session's memory grow by more than the slots'
    /// 64 KiB.
    const LENGTHS: std::ops::RangeInclusive<usize> = 12..=256;

    fn keeps(value: &[u8]) -> bool {
        Self::LENGTHS.contains(&value.len())
    }

    fn slot_of(&self, value: &[u8]) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(value) as usize) & (Self::SLOTS - 1)
    }

    /// Copies the findings of `value` into `findings` if it is remembered.
    fn recall(&self, slot: usize, value: &[u8], findings: &mut Vec<Finding>) -> bool {
        match self.slots.get(slot) {
            Some(s) if s.value == value => {
                findings.clear();
                findings.extend_from_slice(&s.findings);
                true
            }
            _ => false,
        }
    }

    fn remember(&mut self, slot: usize, value: &[u8], findings: &[Finding]) {
        if self.slots.is_empty() {
            self.slots.resize_with(Self::SLOTS, RecallSlot::default);
        }
        let s = &mut self.slots[slot];
        s.value.clear();
        s.value.extend_from_slice(value);
        s.findings.clear();
        s.findings.extend_from_slice(findings);
    }
}

/// Reusable buffers, one set per session, so that masking a row allocates
/// nothing unless something is found. Some hold values as the database
/// sent them (decoded text, recalled values, phone candidates), so a debug
/// print shows only how much the memories hold.
#[derive(Default)]
pub struct Scratch {
    findings: Vec<Finding>,
    leaf: Vec<Finding>,
    decoded: Vec<u8>,
    offsets: Vec<usize>,
    phones: PhoneMemo,
    recall: Recall,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("phones", &self.phones)
            .field("recall", &self.recall)
            .finish_non_exhaustive()
    }
}

impl Scratch {
    /// Lends the session's phone verdicts to the scanner while a row is
    /// masked; [`Scratch::return_phone_memo`] takes them back.
    pub(crate) fn lend_phone_memo(&mut self) -> LentPhoneMemo {
        super::scan::lend_phone_memo(&mut self.phones)
    }

    pub(crate) fn return_phone_memo(&mut self, lent: LentPhoneMemo) {
        lent.give_back(&mut self.phones);
    }
}

/// What masking applies: the detectors and a strategy per kind.
#[derive(Debug, Clone)]
pub struct MaskSettings {
    pub detectors: Detectors,
    pub strategies: Vec<(Kind, Strategy)>,
    pub default_strategy: Strategy,
    /// Whether the value under a JSON key like `password` is a secret.
    pub json_secret_keys: bool,
    pub token_key: [u8; 32],
}

impl Default for MaskSettings {
    fn default() -> Self {
        MaskSettings {
            detectors: Detectors::standard(),
            strategies: Vec::new(),
            default_strategy: Strategy::Redact,
            json_secret_keys: false,
            token_key: [0; 32],
        }
    }
}

/// The masking engine of one policy. Shared by every session.
#[derive(Debug)]
pub struct Masker {
    scanner: Scanner,
    strategies: [Strategy; Kind::ALL.len()],
    json_secrets: bool,
    token_key: [u8; 32],
}

impl Masker {
    pub fn new(settings: &MaskSettings) -> Masker {
        let mut strategies = [settings.default_strategy; Kind::ALL.len()];
        for (kind, strategy) in &settings.strategies {
            strategies[*kind as usize] = *strategy;
        }
        let detectors = if settings.json_secret_keys {
            settings.detectors.with(Kind::JsonSecret)
        } else {
            settings.detectors.without(Kind::JsonSecret)
        };
        Masker {
            scanner: Scanner::new(&detectors),
            strategies,
            json_secrets: settings.json_secret_keys,
            token_key: settings.token_key,
        }
    }

    pub fn scanner(&self) -> &Scanner {
        &self.scanner
    }

    pub fn strategy(&self, kind: Kind) -> Strategy {
        self.strategies[kind as usize]
    }

    /// Scans `text`, and — when `always` or `json_secret_keys` is on —
    /// each JSON document inside it leaf by leaf, so that a value only its
    /// key gives away (`"password": "…"`) or one hidden by escapes is found
    /// in a statement, a server message or a log line as in a JSON column.
    /// Overlapping findings are merged into one span (the first's kind), so
    /// no part of either is left out.
    fn scan_with_json(
        &self,
        text: &[u8],
        findings: &mut Vec<Finding>,
        leaf: &mut Vec<Finding>,
        always: bool,
    ) {
        self.scanner.scan(text, findings);
        self.cards_in_number_renderings(text, findings);
        if !(always || self.json_secrets) || memchr::memchr2(b'{', b'[', text).is_none() {
            return;
        }
        let before = findings.len();
        for doc in json::embedded(text) {
            if self.scanner.scan_json(&text[doc.clone()], leaf).is_ok() {
                findings.extend(leaf.iter().map(|f| Finding {
                    start: f.start + doc.start,
                    end: f.end + doc.start,
                    ..*f
                }));
            }
        }
        if findings.len() != before {
            merge_overlaps(findings);
        }
    }

    /// [`Masker::scan_with_json`] into `scratch.findings`, or what it found
    /// in the same value before ([`Recall`]).
    fn scan_recalled(&self, text: &[u8], scratch: &mut Scratch, tally: &mut Tally) {
        if !Recall::keeps(text) || !tally.recall.worth_it() {
            self.scan_with_json(text, &mut scratch.findings, &mut scratch.leaf, false);
            return;
        }
        let slot = scratch.recall.slot_of(text);
        let hit = scratch.recall.recall(slot, text, &mut scratch.findings);
        tally.recall.note(hit);
        if !hit {
            self.scan_with_json(text, &mut scratch.findings, &mut scratch.leaf, false);
            scratch.recall.remember(slot, text, &scratch.findings);
        }
    }

    /// Cards written as a float or money inside text: a column cast to
    /// float and then to text (`4.111111111111111e+15`), money as text
    /// (`$4,111,111,111,111,111.00`), a float inside JSON or an array.
    /// Each such number is read as the integer it stands for, as a
    /// numeric column's value is ([`value::integer_form`]); only a card
    /// (checksummed, 12 to 19 digits) is taken from it, so that big
    /// amounts in prose are not read as phone numbers.
    fn cards_in_number_renderings(&self, text: &[u8], findings: &mut Vec<Finding>) {
        // Most text has no digit at all; a fold rather than `any`, so
        // that it vectorizes.
        let digits = text.iter().fold(false, |seen, b| seen | b.is_ascii_digit());
        if !digits || !self.scanner.detectors().contains(Kind::Card) {
            return;
        }
        let part =
            |b: u8| b.is_ascii_digit() || matches!(b, b'.' | b',' | b'e' | b'E' | b'+' | b'-');
        let mut from = 0;
        while let Some(off) = memchr::memchr3(b'e', b'E', b',', &text[from..]) {
            let at = from + off;
            from = at + 1;
            // An exponent or a group separator between digits.
            let digit_before = at > 0 && text[at - 1].is_ascii_digit();
            let after = text.get(at + 1).copied().unwrap_or(b' ');
            let digit_after = after.is_ascii_digit()
                || (matches!(after, b'+' | b'-')
                    && text.get(at + 2).is_some_and(u8::is_ascii_digit));
            if !digit_before || !digit_after {
                continue;
            }
            let mut start = at;
            while start > 0 && part(text[start - 1]) {
                start -= 1;
            }
            let mut end = at + 1;
            while end < text.len() && part(text[end]) {
                end += 1;
            }
            from = from.max(end);
            // A run may hold several numbers (`{4.1e+15,5.5e+15}`): a
            // comma is a group separator only before three digits.
            let mut token = start;
            for cut in start..=end {
                let separates = cut == end
                    || (text[cut] == b','
                        && text[cut + 1..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .count()
                            != 3);
                if separates {
                    self.card_in_number(text, token, cut, findings);
                    token = cut + 1;
                }
            }
        }
    }

    /// [`Masker::cards_in_number_renderings`] for one number at
    /// `start..end` (trimmed to its digits).
    fn card_in_number(
        &self,
        text: &[u8],
        mut start: usize,
        mut end: usize,
        findings: &mut Vec<Finding>,
    ) {
        while start < end && !text[start].is_ascii_digit() {
            start += 1;
        }
        while end > start && !text[end - 1].is_ascii_digit() {
            end -= 1;
        }
        if end - start < 12 || findings.iter().any(|f| f.start < end && start < f.end) {
            return;
        }
        let Some(int) = super::value::integer_form(&text[start..end]) else {
            return;
        };
        if !(12..=19).contains(&int.as_slice().len()) {
            return;
        }
        let mut inner = Vec::new();
        self.scanner.scan(int.as_slice(), &mut inner);
        if inner.iter().any(|f| f.kind == Kind::Card) {
            findings.push(Finding {
                kind: Kind::Card,
                start,
                end,
            });
            crate::mask::scan::resolve_overlaps(findings);
        }
    }

    /// [`Masker::scan_with_json`] on a text the server wrote (an error or
    /// notice message, a plan), and each value it quotes scanned again as
    /// a cell of its own: `invalid input syntax for type integer: "Pietra
    /// Leão"`, `Duplicate entry 'Mai Hayashi'`, `Key (name)=(Jane Smith)`.
    /// Detectors that weigh context (a name alone in its cell) judge the
    /// quoted value as they judged it in the statement and the row, so what
    /// is masked there is masked in the message.
    fn scan_message(&self, text: &[u8], findings: &mut Vec<Finding>, leaf: &mut Vec<Finding>) {
        self.scan_with_json(text, findings, leaf, true);
        let before = findings.len();
        for range in quoted_values(text) {
            self.scanner.scan(&text[range.clone()], leaf);
            findings.extend(leaf.iter().map(|f| Finding {
                start: f.start + range.start,
                end: f.end + range.start,
                ..*f
            }));
        }
        if findings.len() != before {
            merge_overlaps(findings);
        }
    }

    /// Masks free text: each detected span is replaced, the rest kept.
    pub fn mask_text(&self, text: &[u8], scratch: &mut Scratch, tally: &mut Tally) -> Masked {
        self.scan_recalled(text, scratch, tally);
        if scratch.findings.is_empty() {
            return Masked::Unchanged;
        }
        if self.count_and_check_null(&scratch.findings, tally) {
            return Masked::Null;
        }
        Masked::Replaced(self.with_replacements(text, &scratch.findings))
    }

    /// Masks a text cell of a result column: as [`Masker::mask_text`], and
    /// a national phone number alone in the cell when the column's earlier
    /// cells show it to be a column of phone numbers ([`ColumnMemory`]).
    /// `tally` must be the column's own, reset between results.
    pub fn mask_cell(&self, value: &[u8], scratch: &mut Scratch, tally: &mut Tally) -> Masked {
        let masked = self.mask_text(value, scratch, tally);
        if !self.scanner.detectors().contains(Kind::Phone) {
            return masked;
        }
        let cell = value.trim_ascii();
        if cell.is_empty() {
            return masked;
        }
        if masked != Masked::Unchanged {
            let whole = cell.as_ptr() as usize - value.as_ptr() as usize;
            let is_phone = matches!(scratch.findings.as_slice(),
                [f] if f.kind == Kind::Phone && f.start == whole && f.end == whole + cell.len());
            tally.column.saw(is_phone);
            return masked;
        }
        let candidate = self.scanner.national_phone_cell(value);
        tally.column.saw(candidate.is_some());
        match candidate {
            Some(f) if tally.column.holds_phones() => {
                tally.add(Kind::Phone);
                if self.strategy(Kind::Phone) == Strategy::Null {
                    return Masked::Null;
                }
                Masked::Replaced(self.with_replacements(value, &[f]))
            }
            _ => Masked::Unchanged,
        }
    }

    /// Counts `findings` and says whether one of them makes the whole value
    /// NULL.
    fn count_and_check_null(&self, findings: &[Finding], tally: &mut Tally) -> bool {
        for f in findings {
            tally.add(f.kind);
        }
        findings
            .iter()
            .any(|f| self.strategy(f.kind) == Strategy::Null)
    }

    /// `text` with each finding replaced per its strategy.
    fn with_replacements(&self, text: &[u8], findings: &[Finding]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 16);
        let mut at = 0;
        for f in findings {
            out.extend_from_slice(&text[at..f.start]);
            self.replacement(f.kind, &text[f.start..f.end], &mut out);
            at = f.end;
        }
        out.extend_from_slice(&text[at..]);
        out
    }

    /// Masks delimited rows of unknown column types (COPY text and CSV
    /// output): a detected value that is a whole field of digits gets a
    /// number, so integer columns still load; others get their text
    /// replacement. A row cannot hold a NULL in place of a value, so the
    /// `null` strategy redacts here.
    pub fn mask_delimited(&self, text: &[u8], scratch: &mut Scratch, tally: &mut Tally) -> Masked {
        self.scan_message(text, &mut scratch.findings, &mut scratch.leaf);
        if scratch.findings.is_empty() {
            return Masked::Unchanged;
        }
        let mut out = Vec::with_capacity(text.len() + 16);
        let mut at = 0;
        for f in &scratch.findings {
            tally.add(f.kind);
            out.extend_from_slice(&text[at..f.start]);
            let value = &text[f.start..f.end];
            let field_start =
                f.start == 0 || matches!(text[f.start - 1], b'\t' | b',' | b'|' | b';');
            let field_end = f.end == text.len()
                || matches!(text[f.end], b'\t' | b',' | b'|' | b';' | b'\n' | b'\r');
            let strategy = self.strategy(f.kind);
            if value.iter().all(u8::is_ascii_digit)
                && field_start
                && field_end
                && !f.kind.is_secret()
            {
                out.extend_from_slice(&self.number_substitute(f.kind, strategy, value));
            } else if strategy == Strategy::Null {
                out.extend_from_slice(f.kind.label().as_bytes());
            } else {
                self.replacement(f.kind, value, &mut out);
            }
            at = f.end;
        }
        out.extend_from_slice(&text[at..]);
        Masked::Replaced(out)
    }

    /// Masks a decimal number (`-12`, `4111111111111111`, `12.50`) with a
    /// number: a detection anywhere in it replaces the whole value.
    pub fn mask_number(&self, text: &[u8], scratch: &mut Scratch, tally: &mut Tally) -> Masked {
        if too_few_digits(text) {
            return Masked::Unchanged;
        }
        self.scanner.scan(text, &mut scratch.findings);
        let Some(first) = scratch.findings.first().copied() else {
            return Masked::Unchanged;
        };
        for f in &scratch.findings {
            tally.add(f.kind);
        }
        match self.strategy(first.kind) {
            Strategy::Null => Masked::Null,
            strategy => Masked::Replaced(self.number_substitute(first.kind, strategy, text)),
        }
    }

    /// A number standing in for `original` (digits only in the result).
    pub fn number_substitute(&self, kind: Kind, strategy: Strategy, original: &[u8]) -> Vec<u8> {
        let digits: Vec<u8> = original
            .iter()
            .copied()
            .filter(u8::is_ascii_digit)
            .collect();
        match strategy {
            Strategy::Partial if !kind.is_secret() => {
                let keep = &digits[digits.len().saturating_sub(4)..];
                let trimmed: Vec<u8> = keep.iter().copied().skip_while(|&d| d == b'0').collect();
                if trimmed.is_empty() {
                    b"0".to_vec()
                } else {
                    trimmed
                }
            }
            Strategy::Token => {
                let hash = self.keyed_hash(kind, &digits);
                let n = digits.len().clamp(1, 18);
                let mut v = u64::from_le_bytes(hash[..8].try_into().expect("eight bytes"));
                let mut out = vec![0u8; n];
                for slot in out.iter_mut().rev() {
                    *slot = b'0' + (v % 10) as u8;
                    v /= 10;
                }
                if out[0] == b'0' {
                    out[0] = b'1' + (hash[8] % 9);
                }
                out
            }
            _ => b"0".to_vec(),
        }
    }

    /// Masks a JSON document at its string and number leaves; the result is
    /// valid JSON with everything else byte for byte as it was. A document
    /// that does not parse is masked as text.
    pub fn mask_json(&self, doc: &[u8], scratch: &mut Scratch, tally: &mut Tally) -> Masked {
        // Fast path: nothing in the raw text and no escapes that could hide
        // something, and no key-based secrets to look for.
        if !self.json_secrets && memchr::memchr(b'\\', doc).is_none() {
            self.scanner.scan(doc, &mut scratch.findings);
            self.cards_in_number_renderings(doc, &mut scratch.findings);
            if scratch.findings.is_empty() {
                return Masked::Unchanged;
            }
        }
        let mut edits: Vec<(std::ops::Range<usize>, Vec<u8>)> = Vec::new();
        let mut local = Tally::default();
        let walked = json::walk(doc, |leaf, key| {
            let (range, is_number, escaped) = match &leaf {
                Leaf::String { range, escaped, .. } => (range.clone(), false, *escaped),
                Leaf::Number { range } => (range.clone(), true, false),
            };
            if let Some(edit) =
                self.mask_leaf(doc, range, is_number, escaped, key, scratch, &mut local)
            {
                edits.push(edit);
            }
        });
        if walked.is_err() {
            return self.mask_text(doc, scratch, tally);
        }
        tally.merge(&local);
        if edits.is_empty() {
            return Masked::Unchanged;
        }
        let mut out = Vec::with_capacity(doc.len() + 16);
        let mut at = 0;
        for (range, replacement) in edits {
            out.extend_from_slice(&doc[at..range.start]);
            out.extend_from_slice(&replacement);
            at = range.end;
        }
        out.extend_from_slice(&doc[at..]);
        Masked::Replaced(out)
    }

    /// The edit for one JSON leaf, if it needs one. For strings the range
    /// returned includes the quotes when the leaf becomes `null`.
    #[allow(clippy::too_many_arguments)]
    fn mask_leaf(
        &self,
        doc: &[u8],
        range: std::ops::Range<usize>,
        is_number: bool,
        escaped: bool,
        key: Option<std::ops::Range<usize>>,
        scratch: &mut Scratch,
        tally: &mut Tally,
    ) -> Option<(std::ops::Range<usize>, Vec<u8>)> {
        let raw = &doc[range.clone()];
        if is_number {
            // `4.111111111111111e+15` is the card a float leaf stands for.
            return match super::value::mask_number_forms(self, raw, scratch, tally) {
                Masked::Unchanged => None,
                Masked::Null => Some((range, b"null".to_vec())),
                Masked::Replaced(v) => Some((range, v)),
            };
        }
        let quoted = range.start - 1..range.end + 1;
        let text: &[u8] = if escaped {
            json::unescape(raw, &mut scratch.decoded, &mut scratch.offsets);
            &scratch.decoded
        } else {
            raw
        };
        scratch.leaf.clear();
        self.scanner.scan(text, &mut scratch.leaf);
        if scratch.leaf.is_empty() {
            // A value under a secret's name that no detector recognised is
            // a secret all the same.
            let kind = self.scanner.secret_under_key(key.map(|k| &doc[k]), raw)?;
            tally.add(kind);
            return Some(match self.strategy(kind) {
                Strategy::Null => (quoted, b"null".to_vec()),
                _ => {
                    let mut plain = Vec::new();
                    self.replacement(kind, text, &mut plain);
                    let mut encoded = Vec::with_capacity(plain.len());
                    json::escape_into(&plain, &mut encoded);
                    (range, encoded)
                }
            });
        }
        if self.count_and_check_null(&scratch.leaf, tally) {
            return Some((quoted, b"null".to_vec()));
        }
        let plain = self.with_replacements(text, &scratch.leaf);
        let mut encoded = Vec::with_capacity(plain.len() + 8);
        json::escape_into(&plain, &mut encoded);
        Some((range, encoded))
    }

    /// The text standing in for a detected value.
    pub fn replacement(&self, kind: Kind, value: &[u8], out: &mut Vec<u8>) {
        // A value written in characters that stand for ASCII (fullwidth
        // forms, another script's digits) is replaced as the ASCII it was
        // found in: the strategies keep ASCII parts (a domain, the last
        // digits) and copy everything else as punctuation, which would
        // copy every one of its characters.
        let folded = fold_to_ascii(value);
        let value = folded.as_ref().map_or(value, |f| f.text.as_slice());
        let strategy = if kind.is_secret() && self.strategy(kind) == Strategy::Partial {
            Strategy::Redact
        } else {
            self.strategy(kind)
        };
        match strategy {
            Strategy::Redact | Strategy::Null => out.extend_from_slice(kind.label().as_bytes()),
            Strategy::Token => {
                let hash = self.keyed_hash(kind, &normalise(kind, value));
                let label = kind.label();
                out.extend_from_slice(&label.as_bytes()[1..label.len() - 1]);
                out.push(b'_');
                out.extend_from_slice(crate::hex::encode(&hash[..8]).as_bytes());
            }
            Strategy::Partial => partial(kind, value, out),
        }
    }

    fn keyed_hash(&self, kind: Kind, value: &[u8]) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.token_key);
        hasher.update(kind.name().as_bytes());
        hasher.update(&[0]);
        hasher.update(value);
        *hasher.finalize().as_bytes()
    }

    /// A statement as approvers and the audit log see it: every detected
    /// value inside a literal, a comment or a number replaced by its label,
    /// and everything else — each keyword, identifier, operator and `;` —
    /// byte for byte as the server will read it.
    ///
    /// Each value range of [`lexer::value_spans`] is scanned on its own, so
    /// no detector's match can run past the literal or comment it starts
    /// in: a "private key" opened in a comment cannot swallow the `DROP`
    /// that follows the comment. String literals holding a JSON document
    /// are also scanned as JSON, so that what only its key gives away
    /// (`"password": "…"`) is masked as it would be in a result. A value
    /// split over several literals joined by `||` (or written side by side)
    /// is found in their concatenation and masked piece by piece.
    pub fn mask_statement(&self, sql: &str, dialect: Dialect) -> String {
        self.mask_statement_values(sql, &lexer::value_spans(sql, dialect))
    }

    /// [`Masker::mask_statement`] with the value spans of `sql` already
    /// found ([`lexer::read`]).
    pub fn mask_statement_values(&self, sql: &str, spans: &[Range<usize>]) -> String {
        let mut edits: Vec<Range<usize>> = Vec::new();
        let mut labels: Vec<Kind> = Vec::new();
        let (mut findings, mut leaf) = (Vec::new(), Vec::new());
        for span in spans {
            // `WHERE id = 48213`: no detector finds a value in so few
            // digits (see `too_few_digits`); a number split over joined
            // literals is still read whole below.
            if short_number(&sql.as_bytes()[span.clone()]) {
                continue;
            }
            self.scan_with_json(
                &sql.as_bytes()[span.clone()],
                &mut findings,
                &mut leaf,
                true,
            );
            for f in findings.drain(..) {
                // Snap to character boundaries inside the span (a local part
                // may take in part of a multi-byte character).
                let start = floor_char_boundary(sql, span.start + f.start).max(span.start);
                let end = ceil_char_boundary(sql, span.start + f.end).min(span.end);
                edits.push(start..end);
                labels.push(f.kind);
            }
        }
        self.joined_literal_values(sql, spans, &mut edits, &mut labels);
        if edits.is_empty() {
            return sql.to_string();
        }
        let mut order: Vec<usize> = (0..edits.len()).collect();
        order.sort_by_key(|&i| (edits[i].start, std::cmp::Reverse(edits[i].end)));
        let mut out = String::with_capacity(sql.len());
        let mut at = 0;
        for i in order {
            let edit = &edits[i];
            if edit.end <= at {
                continue;
            }
            let start = edit.start.max(at);
            out.push_str(&sql[at..start]);
            // A span already partly replaced keeps its one label.
            if start == edit.start {
                out.push_str(labels[i].label());
            }
            at = edit.end;
        }
        out.push_str(&sql[at..]);
        out
    }

    /// Findings in the concatenation of string literals that sit side by
    /// side or are joined by `||` (`'jane@exa' || 'mple.org'`), each cut
    /// back to the pieces of the literals it covers.
    fn joined_literal_values(
        &self,
        sql: &str,
        spans: &[Range<usize>],
        edits: &mut Vec<Range<usize>>,
        labels: &mut Vec<Kind>,
    ) {
        let src = sql.as_bytes();
        let is_string = |r: &Range<usize>| {
            r.start > 0 && r.end < src.len() && matches!(src[r.start - 1], b'\'' | b'"')
        };
        // Only quotes, blanks and one `||` between two literals: the server
        // reads them as one value.
        let joined_by = |between: &str| {
            between.matches("||").count() <= 1
                && between
                    .chars()
                    .all(|c| matches!(c, '\'' | '"' | '|') || c.is_ascii_whitespace())
        };
        let mut i = 0;
        while i < spans.len() {
            let mut group = vec![i];
            while let Some(next) = spans.get(group[group.len() - 1] + 1) {
                let last = &spans[group[group.len() - 1]];
                if !(is_string(last) && is_string(next) && joined_by(&sql[last.end..next.start])) {
                    break;
                }
                group.push(group[group.len() - 1] + 1);
            }
            i = group[group.len() - 1] + 1;
            if group.len() < 2 {
                continue;
            }
            let mut joined = Vec::new();
            let mut origin = Vec::new();
            for &g in &group {
                origin.push((joined.len(), spans[g].start));
                joined.extend_from_slice(&src[spans[g].clone()]);
            }
            let mut findings = Vec::new();
            self.scanner.scan(&joined, &mut findings);
            for f in findings {
                for (k, &(offset, source)) in origin.iter().enumerate() {
                    let len = spans[group[k]].len();
                    let (a, b) = (f.start.max(offset), f.end.min(offset + len));
                    if a < b {
                        let start = floor_char_boundary(sql, source + a - offset).max(source);
                        let end = ceil_char_boundary(sql, source + b - offset).min(source + len);
                        edits.push(start..end);
                        labels.push(f.kind);
                    }
                }
            }
        }
    }

    /// Free text that is not a statement — a server's error message, a
    /// query plan — with every detected value replaced by its label. The
    /// whole text is scanned, and JSON documents in it leaf by leaf.
    /// Statements go through [`Masker::mask_statement`], which keeps their
    /// structure visible.
    pub fn mask_sql_literals(&self, sql: &str) -> String {
        let mut findings = Vec::new();
        self.scan_message(sql.as_bytes(), &mut findings, &mut Vec::new());
        if findings.is_empty() {
            return sql.to_string();
        }
        let mut out = String::with_capacity(sql.len());
        let mut at = 0;
        for f in &findings {
            // Findings start and end on ASCII bytes or whole UTF-8 sequences,
            // except where a local part takes in non-ASCII letters; snap to
            // character boundaries either way.
            let start = floor_char_boundary(sql, f.start).max(at);
            let end = ceil_char_boundary(sql, f.end);
            out.push_str(&sql[at..start]);
            out.push_str(f.kind.label());
            at = end;
        }
        out.push_str(&sql[at..]);
        out
    }
}

/// Sorts `findings` by position and merges those that overlap into one
/// span (the first's kind), so that no part of either is left out.
fn merge_overlaps(findings: &mut Vec<Finding>) {
    findings.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    let mut merged: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings.drain(..) {
        match merged.last_mut() {
            Some(last) if f.start < last.end => last.end = last.end.max(f.end),
            _ => merged.push(f),
        }
    }
    *findings = merged;
}

/// The values a server message quotes: between a pair of double quotes,
/// a pair of single quotes, or `=(` and `)` (a key's values in a
/// PostgreSQL detail). Quotes are paired in order, each kind on its own;
/// a stray apostrophe pairs wrongly and costs a scan of some extra text,
/// never a value left out of the message's own scan.
fn quoted_values(text: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for quote in [b'"', b'\''] {
        let mut open = None;
        for i in memchr::memchr_iter(quote, text) {
            match open.take() {
                None => open = Some(i + 1),
                Some(start) if i > start => out.push(start..i),
                Some(_) => {}
            }
        }
    }
    let mut from = 0;
    while let Some(p) = memchr::memmem::find(&text[from..], b"=(") {
        let start = from + p + 2;
        let Some(len) = memchr::memchr(b')', &text[start..]) else {
            break;
        };
        if len > 0 {
            out.push(start..start + len);
        }
        from = start + len;
    }
    out
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The form of a value its token is computed from, so that one card or
/// email written two ways gets one token.
fn normalise(kind: Kind, value: &[u8]) -> Vec<u8> {
    match kind {
        Kind::Email => value.to_ascii_lowercase(),
        k if k.is_secret() => value.to_vec(),
        Kind::Ipv4 | Kind::Ipv6 => value.to_ascii_lowercase(),
        // One person written "Jane Smith", "JANE SMITH" or "Jane  Smith".
        Kind::Person => String::from_utf8_lossy(value)
            .split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" ")
            .into_bytes(),
        _ => value
            .iter()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(u8::to_ascii_uppercase)
            .collect(),
    }
}

fn partial(kind: Kind, value: &[u8], out: &mut Vec<u8>) {
    match kind {
        Kind::Email => {
            let at = value.iter().rposition(|&b| b == b'@').unwrap_or(0);
            // The first letter, if it is ASCII (a byte of a multi-byte
            // character would leave invalid UTF-8 behind).
            if at > 0 && value[0].is_ascii_alphanumeric() {
                out.push(value[0]);
            }
            out.extend_from_slice(b"***");
            out.extend_from_slice(&value[at..]);
        }
        Kind::Ipv4 => {
            let mut parts = value.split(|&b| b == b'.');
            for _ in 0..2 {
                out.extend_from_slice(parts.next().unwrap_or(b"0"));
                out.push(b'.');
            }
            out.extend_from_slice(b"*.*");
        }
        Kind::Ipv6 => {
            let mut parts = value.split(|&b| b == b':');
            for _ in 0..2 {
                out.extend_from_slice(parts.next().unwrap_or(b""));
                out.push(b':');
            }
            out.push(b'*');
        }
        Kind::UrlCredentials => out.extend_from_slice(b"****"),
        Kind::Person => {
            // Initials: "Jane van der Berg" becomes "J. B." (the last four
            // letters of a name would give too much away).
            let text = String::from_utf8_lossy(value);
            let mut first = true;
            for word in text.split([' ', ',']).filter(|w| !w.is_empty()) {
                let Some(c) = word.chars().next() else {
                    continue;
                };
                if !c.is_uppercase() {
                    continue;
                }
                if !first {
                    out.push(b' ');
                }
                first = false;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                out.push(b'.');
            }
        }
        _ => {
            // Keep the last four letters or digits (and an IBAN's country),
            // star the rest, keep the punctuation.
            let total = value.iter().filter(|b| b.is_ascii_alphanumeric()).count();
            let keep_from = total.saturating_sub(4);
            let mut seen = 0;
            for &b in value {
                if b.is_ascii_alphanumeric() {
                    let keep = seen >= keep_from || (kind == Kind::Iban && seen < 2);
                    out.push(if keep { b } else { b'*' });
                    seen += 1;
                } else {
                    out.push(b);
                }
            }
        }
    }
}

/// A number as SQL writes it (`48213`, `-12`, `4.50`: a sign, digits, at
/// most one point) with [`too_few_digits`] to hold a value. More points
/// could be an address (`10.0.0.1`).
fn short_number(text: &[u8]) -> bool {
    let unsigned = text
        .strip_prefix(b"-")
        .or(text.strip_prefix(b"+"))
        .unwrap_or(text);
    unsigned.iter().all(|b| b.is_ascii_digit() || *b == b'.')
        && unsigned.iter().filter(|&&b| b == b'.').count() <= 1
        && too_few_digits(text)
}

/// Whether a number written as `text` holds fewer digits than the
/// shortest value any detector finds in digits alone (a phone number's
/// seven), with no exponent that could make more of them (`4e15`): the
/// ids, counts and amounts of nearly every row, which then cost one pass
/// over a few bytes instead of a scan.
pub(super) fn too_few_digits(text: &[u8]) -> bool {
    const SHORTEST: usize = 7;
    let mut digits = 0;
    for &b in text {
        if b.is_ascii_digit() {
            digits += 1;
        } else if b | 0x20 == b'e' {
            return false;
        }
    }
    digits < SHORTEST
}

#[cfg(test)]
mod tests;
