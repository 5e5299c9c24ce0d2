//! The `person` detector: personal names in free text, JSON values and bare
//! cells, in Latin script (romanised Japanese, Chinese, Indian and Arabic
//! names included).
//!
//! Names have no checksum, so a name is a capitalised word the lexicon
//! knows as a given name or a surname, *and* a second piece of evidence:
//! another name beside it (`Jane Smith`, `J. Smith`, `Jennifer Kowalczyk`),
//! a title before it (`Dr Smith`, `Frau Müller`), a context word before it
//! (`customer Jennifer`, `Name: Smith`), or a cell holding nothing else
//! (`SMITH, JOHN`). Words the lexicon marks as common words or places
//! (`May`, `Paris`, `Victoria`) need stronger evidence, and a word such as
//! `Street`, `Station` or `GmbH` right after a name makes it a place or a
//! firm.
//!
//! Speed: most text has no capital letters in it, or capitals only at
//! sentence starts and on nouns. One pass finds bytes that can start a
//! capitalised word (`A`–`Z`, or the lead byte of a Latin letter with a
//! diacritic), eight bytes at a time; a capitalised word is looked up only
//! when another capitalised word follows it, or when it is the whole cell,
//! or when the word before it may be a title or context word (a two-letter
//! prefix bitmap screens those before any lookup). Nothing is allocated
//! unless a name is found.
//!
//! The lexicon (`person/lexicon.txt`, see `person/README.md` for its source
//! and licence) is parsed once into a hash map the first time a scanner
//! with this detector is built.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::{Finding, Kind};

const LEXICON_TEXT: &str = include_str!("person/lexicon.txt");
/// Phrases shaped like names that are brands, foods, vehicles and places,
/// and words that open a firm's name (see `person/README.md`).
const PHRASES_TEXT: &str = include_str!("person/phrases.txt");

/// What the lexicon says about a word.
const GIVEN: u8 = 1;
const SURNAME: u8 = 2;
const AMBIGUOUS: u8 = 4;
const TITLE: u8 = 8;
const PARTICLE: u8 = 16;
const CONTEXT: u8 = 32;
const SUFFIX: u8 = 64;
const WORD: u8 = 128;
const NAME: u8 = GIVEN | SURNAME;

/// Longest word looked up, in bytes after folding.
const MAX_WORD: usize = 40;
/// Most words in one run of capitalised words that is evaluated.
const MAX_RUN: usize = 8;

/// A multiply-rotate hasher for short words. The table is fixed at start
/// and only lookups see outside input, so flooding is not a concern.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        self.0 = h;
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

struct Lexicon {
    words: HashMap<Box<[u8]>, u8, BuildHasherDefault<WordHasher>>,
    /// Bit [`prefix_bit`] is set when a title or context word starts with
    /// those three letters: screens the word before a lone capitalised
    /// word without a lookup.
    cue_prefixes: [u64; CUE_BITS / 64 + 1],
    /// Folded phrases of two to four words that are no one's name, words
    /// joined by one space: `aston martin`, `dr pepper`, `jasmine rice`.
    phrases: HashSet<Box<[u8]>, BuildHasherDefault<WordHasher>>,
    /// Folded words after which capitalised words name a firm: `grupa`,
    /// `stichting`.
    firm_openers: HashSet<Box<[u8]>, BuildHasherDefault<WordHasher>>,
}

impl Lexicon {
    fn parse(text: &str) -> Lexicon {
        let mut words: HashMap<Box<[u8]>, u8, BuildHasherDefault<WordHasher>> = HashMap::default();
        let mut cue_prefixes = [0u64; CUE_BITS / 64 + 1];
        let mut buf = [0u8; MAX_WORD];
        for line in text.lines() {
            let Some((word, flags)) = line.split_once('\t') else {
                continue;
            };
            let bits = flags.bytes().fold(0u8, |acc, f| {
                acc | match f {
                    b'g' => GIVEN,
                    b's' => SURNAME,
                    b'a' => AMBIGUOUS,
                    b't' => TITLE,
                    b'p' => PARTICLE,
                    b'c' => CONTEXT,
                    b'x' => SUFFIX,
                    b'w' => WORD,
                    _ => 0,
                }
            });
            let Some(len) = fold(word.as_bytes(), &mut buf) else {
                continue;
            };
            let key = &buf[..len];
            if bits & (TITLE | CONTEXT) != 0 {
                let bit = prefix_bit(key);
                cue_prefixes[bit / 64] |= 1 << (bit % 64);
            }
            *words.entry(key.into()).or_default() |= bits;
        }
        let mut phrases: HashSet<Box<[u8]>, BuildHasherDefault<WordHasher>> = HashSet::default();
        let mut firm_openers: HashSet<Box<[u8]>, BuildHasherDefault<WordHasher>> =
            HashSet::default();
        for line in PHRASES_TEXT.lines() {
            match line.split_once('\t') {
                Some((phrase, "n")) => {
                    phrases.insert(phrase.as_bytes().into());
                }
                Some((word, "f")) => {
                    firm_openers.insert(word.as_bytes().into());
                }
                _ => {}
            }
        }
        Lexicon {
            words,
            cue_prefixes,
            phrases,
            firm_openers,
        }
    }

    /// Whether the candidate name `words[from..to]` is part of a phrase
    /// that names no one (`Aston Martin`, `Dr Pepper`, `Jasmine Rice`), or
    /// of a firm's name opened by a word such as `Grupa` at or before it.
    /// The word before the run counts too (`Dr.` before `Martens` when only
    /// the word after a title was read). Runs only for a candidate about to
    /// be reported.
    fn names_no_one(&self, text: &[u8], words: &[Word], from: usize, to: usize) -> bool {
        let mut spans = [(0usize, 0usize); MAX_RUN + 1];
        let mut n = 0;
        if let Some(prev) = previous_word(text, words[0].start) {
            spans[0] = prev;
            n = 1;
        }
        let shift = n;
        for w in words {
            spans[n] = (w.start, w.end);
            n += 1;
        }
        let spans = &spans[..n];
        let (from, to) = (from + shift, to + shift);
        let mut buf = [0u8; MAX_WORD];
        let folded = |(start, end): (usize, usize), buf: &mut [u8; MAX_WORD]| -> Option<usize> {
            let raw = &text[start..end];
            fold(raw.strip_suffix(b".").unwrap_or(raw), buf)
        };
        for &span in &spans[..=from.min(n - 1)] {
            if let Some(len) = folded(span, &mut buf) {
                if self.firm_openers.contains(&buf[..len]) {
                    return true;
                }
            }
        }
        let mut key = [0u8; 4 * (MAX_WORD + 1)];
        for a in 0..n {
            let mut len = 0;
            for (b, &span) in spans.iter().enumerate().take(n.min(a + 4)).skip(a) {
                let Some(k) = folded(span, &mut buf) else {
                    break;
                };
                if len > 0 {
                    key[len] = b' ';
                    len += 1;
                }
                key[len..len + k].copy_from_slice(&buf[..k]);
                len += k;
                // A window of two words or more that overlaps the candidate.
                if b > a && a < to && b >= from && self.phrases.contains(&key[..len]) {
                    return true;
                }
            }
        }
        false
    }

    fn get() -> &'static Lexicon {
        static LEXICON: OnceLock<Lexicon> = OnceLock::new();
        LEXICON.get_or_init(|| Lexicon::parse(LEXICON_TEXT))
    }

    fn flags(&self, word: &[u8]) -> u8 {
        let mut buf = [0u8; MAX_WORD];
        let Some(len) = fold(word, &mut buf) else {
            return 0;
        };
        let key = &buf[..len];
        if let Some(&f) = self.words.get(key) {
            return f;
        }
        // A double-barrelled name is a given name when each part is one
        // (Jean-Luc), a surname when each part is one (Müller-Lüdenscheidt).
        // A part in lower case makes it a place (Clerc-la-Forêt).
        if key.contains(&b'-') {
            let mut all = NAME;
            let mut any = 0;
            for (part, original) in key.split(|&b| b == b'-').zip(word.split(|&b| b == b'-')) {
                if !original
                    .first()
                    .is_some_and(|&b| b.is_ascii_uppercase() || b >= 0x80)
                {
                    return 0;
                }
                let f = self.words.get(part).copied().unwrap_or(0);
                all &= f;
                any |= f;
            }
            return all | (any & AMBIGUOUS);
        }
        0
    }

    fn may_be_cue(&self, word: &[u8]) -> bool {
        let mut lower = [0u8; 3];
        for (l, b) in lower.iter_mut().zip(word) {
            *l = b.to_ascii_lowercase();
        }
        let len = word.len().min(3);
        let bit = prefix_bit(&lower[..len]);
        self.cue_prefixes[bit / 64] & (1 << (bit % 64)) != 0
    }
}

/// Bits of the cue prefix bitmap: 28 values (none, a–z, any other byte)
/// for each of the first three bytes.
const CUE_BITS: usize = 28 * 28 * 28;

/// The bit of a word's first three bytes, lower case; the bytes of a
/// letter outside ASCII (prénom, über) all count as one "other" value.
fn prefix_bit(word: &[u8]) -> usize {
    let mut bit = 0;
    for i in 0..3 {
        let v = match word.get(i) {
            None => 0,
            Some(b @ b'a'..=b'z') => usize::from(b - b'a') + 1,
            Some(_) => 27,
        };
        bit = bit * 28 + v;
    }
    bit
}

/// Builds the lexicon now, so that the first query does not pay for it.
pub(super) fn warm() {
    Lexicon::get();
}

/// `word` in lower case without apostrophes, into `buf`; `None` when it is
/// too long or not UTF-8.
fn fold(word: &[u8], buf: &mut [u8; MAX_WORD]) -> Option<usize> {
    let mut n = 0;
    if word.is_ascii() {
        for &b in word {
            if b == b'\'' {
                continue;
            }
            *buf.get_mut(n)? = b.to_ascii_lowercase();
            n += 1;
        }
        return Some(n);
    }
    let s = std::str::from_utf8(word).ok()?;
    for c in s.chars().flat_map(char::to_lowercase) {
        if c == '\'' || c == '\u{2019}' {
            continue;
        }
        let len = c.len_utf8();
        c.encode_utf8(buf.get_mut(n..n + len)?);
        n += len;
    }
    Some(n)
}

/// The character at `at` and its length in bytes, if `text` holds a valid
/// UTF-8 sequence there.
fn char_at(text: &[u8], at: usize) -> Option<(char, usize)> {
    let b = *text.get(at)?;
    let len = match b {
        0x00..=0x7f => return Some((char::from(b), 1)),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let s = std::str::from_utf8(text.get(at..at + len)?).ok()?;
    s.chars().next().map(|c| (c, len))
}

fn is_letter_at(text: &[u8], at: usize) -> bool {
    match text.get(at) {
        Some(b) if b.is_ascii() => b.is_ascii_alphabetic(),
        Some(_) => char_at(text, at).is_some_and(|(c, _)| c.is_alphabetic()),
        None => false,
    }
}

fn is_upper_at(text: &[u8], at: usize) -> bool {
    match text.get(at) {
        Some(b) if b.is_ascii() => b.is_ascii_uppercase(),
        Some(_) => char_at(text, at).is_some_and(|(c, _)| c.is_uppercase()),
        None => false,
    }
}

/// Whether the byte before `at` continues a word, so that `at` is not a
/// word start.
fn joined_before(text: &[u8], at: usize) -> bool {
    if at == 0 {
        return false;
    }
    let b = text[at - 1];
    if b.is_ascii() {
        return b.is_ascii_alphanumeric() || b == b'_' || b == b'\'';
    }
    // Step back to the lead byte of the character before.
    let mut s = at - 1;
    while s > 0 && at - s < 4 && text[s] & 0xc0 == 0x80 {
        s -= 1;
    }
    char_at(text, s)
        .is_some_and(|(c, len)| s + len == at && (c.is_alphanumeric() || c == '\u{2019}'))
}

/// The position of the next byte at or after `from` that can start a
/// capitalised word: `A`–`Z`, or a lead byte 0xC3–0xC9 (U+00C0–U+027F, the
/// Latin letters with diacritics), eight bytes at a time.
fn find_capital(text: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while i + 8 <= text.len() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&text[i..i + 8]);
        let w = u64::from_le_bytes(b);
        // Per byte, on the low seven bits (no carry crosses a byte):
        // adding 0x80 - x sets the high bit from x up.
        let low7 = w & (0x7f * LO);
        let upper = (low7 + 0x3f * LO) & !(low7 + 0x25 * LO) & !w;
        let lead = (low7 + 0x3d * LO) & !(low7 + 0x36 * LO) & w;
        let hits = (upper | lead) & HI;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    (i..text.len()).find(|&j| text[j].is_ascii_uppercase() || (0xc3..=0xc9).contains(&text[j]))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `Smith`, `McDonald`, `O'Brien`, `Łukasz`.
    Capitalised,
    /// `SMITH`.
    Upper,
    /// `J.`
    Initial,
    /// `van`, `de`, `al`: a lowercase particle.
    Lower,
}

#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    /// End of the word itself (a possessive `'s` and an initial's dot
    /// excluded).
    end: usize,
    /// End including an initial's or abbreviation's dot.
    next: usize,
    shape: Shape,
    flags: u8,
}

impl Word {
    fn is(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// A name the lexicon knows, and no word that is never a name.
    fn known(&self) -> bool {
        self.is(NAME)
    }

    fn given(&self) -> bool {
        self.is(GIVEN)
    }

    fn surname(&self) -> bool {
        self.is(SURNAME)
    }

    fn ambiguous(&self) -> bool {
        self.is(AMBIGUOUS | WORD)
    }

    /// Capitalised, unknown to the lexicon, and shaped like a name: it may
    /// be a name the lexicon lacks.
    fn unknown(&self) -> bool {
        self.flags == 0 && self.shape != Shape::Initial && self.shape != Shape::Lower
    }

    fn initial(&self) -> bool {
        self.shape == Shape::Initial
    }

    fn title(&self) -> bool {
        self.is(TITLE) && self.shape != Shape::Lower
    }

    /// Never a name: a month, a street suffix, a common word.
    fn not_a_name(&self) -> bool {
        // A common word that some list also has as a surname ("The") is
        // a word; one that is also a given name (May, Mark) may be either.
        (self.is(WORD) && !self.is(GIVEN)) || (self.is(SUFFIX) && !self.is(NAME))
    }
}

/// Reads the word at `start` (a letter). `None` when it holds digits or is
/// too long to be a name.
fn read_word(text: &[u8], start: usize) -> Option<Word> {
    let mut i = start;
    let mut letters = 0usize;
    let mut lower_after_first = 0usize;
    loop {
        // ASCII letters without decoding: most names are ASCII.
        if let Some(&b) = text.get(i) {
            if b.is_ascii_alphabetic() {
                if !b.is_ascii_uppercase() && letters > 0 {
                    lower_after_first += 1;
                }
                letters += 1;
                i += 1;
                if i - start > MAX_WORD {
                    return None;
                }
                continue;
            }
        }
        match char_at(text, i) {
            Some((c, len)) if c.is_alphabetic() => {
                if !c.is_uppercase() && letters > 0 {
                    lower_after_first += 1;
                }
                letters += 1;
                i += len;
            }
            // Inner apostrophes and hyphens: O'Brien, D’Angelo, Jean-Luc.
            Some(('\'' | '\u{2019}' | '-', len)) if is_letter_at(text, i + len) => {
                i += len;
            }
            _ => break,
        }
        if i - start > MAX_WORD {
            return None;
        }
    }
    if letters == 0 || (i < text.len() && (text[i].is_ascii_digit() || text[i] == b'_')) {
        return None;
    }
    let mut end = i;
    // A possessive: Smith's, Müller’s.
    for suffix in [&b"'s"[..], "\u{2019}s".as_bytes()] {
        if text[start..end].ends_with(suffix) && end - suffix.len() > start + 1 {
            end -= suffix.len();
        }
    }
    let first_upper = is_upper_at(text, start);
    let shape = if !first_upper {
        Shape::Lower
    } else if letters == 1 {
        if text.get(i) == Some(&b'.') {
            Shape::Initial
        } else {
            // A lone capital letter without a dot: "I", "A".
            return None;
        }
    } else if lower_after_first == 0 {
        Shape::Upper
    } else {
        Shape::Capitalised
    };
    // Only an initial takes its dot here; a title's is taken once the
    // lexicon says it is one (a dot after any other word ends a sentence).
    let next = if shape == Shape::Initial { i + 1 } else { i };
    Some(Word {
        start,
        end,
        next,
        shape,
        flags: 0,
    })
}

/// The start of the word that follows `word` in the same name, if the gap
/// between them is one a name has: a space, or a dot and a space after an
/// initial or title.
fn following_start(text: &[u8], word: &Word) -> Option<usize> {
    let at = word.next;
    let gap = match text.get(at..) {
        Some([b' ', ..]) => 1,
        _ => return None,
    };
    let start = at + gap;
    is_letter_at(text, start).then_some(start)
}

/// The word just before `start`, across a separator such as `: ` or ` `.
fn previous_word(text: &[u8], start: usize) -> Option<(usize, usize)> {
    let mut end = start;
    let mut gap = 0;
    while end > 0 && matches!(text[end - 1], b' ' | b':' | b'=' | b'\t' | b',' | b'.') && gap < 3 {
        end -= 1;
        gap += 1;
    }
    if gap == 0 || end == 0 {
        return None;
    }
    let mut s = end;
    while s > 0 && (text[s - 1].is_ascii_alphabetic() || text[s - 1] >= 0x80) && end - s <= 24 {
        s -= 1;
    }
    (s < end && end - s >= 2).then_some((s, end))
}

/// Whether `[start, end)` is the whole cell, give or take quotes, brackets
/// and blanks, or the whole of a JSON string value. (A JSON document is
/// first scanned whole, and leaf by leaf only when that finds something:
/// a name that is a value of its own must be seen as one either way.)
fn is_whole(text: &[u8], start: usize, end: usize) -> bool {
    let pad = |b: &u8| b.is_ascii_whitespace() || b"\"'()[]<>.,;".contains(b);
    if text[..start].iter().all(pad) && text[end..].iter().all(pad) {
        return true;
    }
    let before = text[..start]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace());
    let after = text[end..].iter().find(|b| !b.is_ascii_whitespace());
    if before != Some(&b'"') || after != Some(&b'"') {
        return false;
    }
    let quote_before = text[..start].iter().rposition(|&b| b == b'"').unwrap_or(0);
    let quote_after = end + text[end..].iter().position(|&b| b == b'"').unwrap_or(0);
    let opens = text[..quote_before]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| b":[,".contains(b));
    let closes = text[quote_after + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| b",}]".contains(b));
    opens && closes
}

/// Finds the names in `text` and appends them to `out`.
pub(super) fn scan(text: &[u8], out: &mut Vec<Finding>) {
    let lexicon = Lexicon::get();
    let mut from = 0;
    while let Some(p) = find_capital(text, from) {
        if joined_before(text, p) || !is_upper_at(text, p) {
            from = p + 1;
            continue;
        }
        let Some(first) = read_word(text, p) else {
            from = skip_word(text, p);
            continue;
        };
        from = first.next.max(p + 1);
        // The cheapest evidence first; a word with none is not looked up.
        let followed = following_start(text, &first)
            .is_some_and(|s| is_upper_at(text, s) || starts_particle_then_capital(text, s));
        let worth_a_look = followed
            || previous_word(text, first.start)
                .is_some_and(|(s, e)| lexicon.may_be_cue(&text[s..e]))
            || surname_comma_given(text, &first)
            || is_whole(text, first.start, first.next);
        if !worth_a_look {
            continue;
        }
        from = evaluate_run(lexicon, text, first, out).max(from);
    }
}

/// Whether the name-shaped words at `start` name a street: they follow a
/// house number (`959 Lisa Brooks`) or a street word (`Calle Azucena
/// Lasa`, `avenue Isabelle Becker`, `Paseo de Armida Gallardo`).
fn in_address(lexicon: &Lexicon, text: &[u8], start: usize) -> bool {
    let mut at = start;
    for _ in 0..3 {
        let mut s = at;
        while s > 0 && matches!(text[s - 1], b' ' | b',' | b'\n' | b'.') {
            s -= 1;
        }
        if s == at || s == 0 {
            return false;
        }
        if text[s - 1].is_ascii_digit() {
            return true;
        }
        let Some((ws, we)) = previous_word(text, at) else {
            return false;
        };
        let f = lexicon.flags(&text[ws..we]);
        if f & SUFFIX != 0 {
            return true;
        }
        // Skip a particle: Paseo de …, Rua das …
        if f & PARTICLE == 0 || text[ws].is_ascii_uppercase() {
            return false;
        }
        at = ws;
    }
    false
}

/// `Dr.`, `Sr.`, `Sig.`: a title's dot belongs to it, and the name goes on
/// after it.
fn take_title_dot(text: &[u8], w: &mut Word) {
    if w.is(TITLE) && w.next == w.end && text.get(w.end) == Some(&b'.') {
        w.next += 1;
    }
}

/// `de la Cruz`, `van der Berg`: a particle (or two) and then a capital.
fn starts_particle_then_capital(text: &[u8], start: usize) -> bool {
    let mut at = start;
    for _ in 0..2 {
        let len = text[at..]
            .iter()
            .take_while(|b| b.is_ascii_lowercase())
            .count();
        if !(1..=4).contains(&len) || text.get(at + len) != Some(&b' ') {
            return false;
        }
        at += len + 1;
        if is_upper_at(text, at) {
            return true;
        }
    }
    false
}

/// `Smith, John` as a whole cell.
fn surname_comma_given(text: &[u8], first: &Word) -> bool {
    text.get(first.next..first.next + 2) == Some(b", ")
        && is_upper_at(text, first.next + 2)
        && text[..first.start]
            .iter()
            .all(|b| b.is_ascii_whitespace() || b"\"'".contains(b))
}

fn skip_word(text: &[u8], mut at: usize) -> usize {
    while at < text.len()
        && (text[at].is_ascii_alphanumeric() || text[at] >= 0x80 || text[at] == b'_')
    {
        at += 1;
    }
    at.max(1)
}

/// Reads the run of name-shaped words starting with `first`, looks them
/// up, and appends the names in it. Returns where scanning goes on.
fn evaluate_run(lexicon: &Lexicon, text: &[u8], first: Word, out: &mut Vec<Finding>) -> usize {
    let mut words = [first; MAX_RUN];
    let mut n = 1;
    words[0].flags = lexicon.flags(&text[first.start..first.end]);
    take_title_dot(text, &mut words[0]);
    // "Smith, John" in a cell of its own: read past the comma once.
    let mut comma_at = None;
    loop {
        if n == MAX_RUN {
            break;
        }
        let last = words[n - 1];
        let start = match following_start(text, &last) {
            Some(s) => s,
            None if n == 1 && surname_comma_given(text, &last) => {
                comma_at = Some(1);
                last.next + 2
            }
            None => break,
        };
        let Some(mut w) = read_word(text, start) else {
            break;
        };
        if w.shape == Shape::Lower {
            w.flags = lexicon.flags(&text[w.start..w.end]);
            // Only a particle followed by a capitalised word (or by another
            // particle: van der Berg) stays.
            let then_capital = following_start(text, &w)
                .is_some_and(|s| is_upper_at(text, s) || starts_particle_then_capital(text, s));
            if !w.is(PARTICLE) || !then_capital {
                break;
            }
        } else {
            w.flags = lexicon.flags(&text[w.start..w.end]);
            take_title_dot(text, &mut w);
        }
        words[n] = w;
        n += 1;
    }
    let words = &words[..n];
    let run_end = words[n - 1].next;

    let prev_cue = previous_word(text, words[0].start).is_some_and(|(s, e)| {
        let f = lexicon.flags(&text[s..e]);
        f & (CONTEXT | TITLE) != 0
    });
    if let Some(1) = comma_at {
        // Surname, Given (Given…): a name when the cell holds nothing else.
        let (s, g) = (words[0], words.get(1));
        if let Some(g) = g {
            let end = words[n - 1].end;
            // One of the two must be a known name that is no common word
            // or place ("Paris, Texas" is neither), the other shaped like
            // one.
            let shaped = |w: &Word| w.known() || w.unknown() || w.initial();
            let anchored = (s.surname() && !s.ambiguous()) || (g.given() && !g.ambiguous());
            if is_whole(text, s.start, words[n - 1].next)
                && (anchored || prev_cue)
                && shaped(&s)
                && words[1..].iter().all(shaped)
            {
                push(out, text, s.start, end);
                return run_end;
            }
        }
        return run_end;
    }
    let all_upper = words.iter().all(|w| w.shape != Shape::Capitalised);
    let whole = is_whole(text, words[0].start, run_end);

    let mut i = 0;
    while i < n {
        let w = words[i];
        let cue = if i == 0 {
            prev_cue
        } else {
            words[i - 1].is(CONTEXT | TITLE)
        };
        let next_suffix = |end: usize| words.get(end).is_some_and(|w| w.is(SUFFIX));
        // A title: whatever capitalised words follow are the name.
        if w.title() && !w.known() || (w.title() && words.get(i + 1).is_some_and(|n| n.known())) {
            let mut j = i + 1;
            while j < n && words[j].title() && !words[j].known() {
                j += 1;
            }
            let end = name_end(words, j);
            // A common word after a title is a noun more often than a
            // name: "Herr Stunde" is no one.
            let noun = end == j + 1 && words[j].ambiguous() && !words[j].surname();
            if end > j
                && !words[j].not_a_name()
                && !next_suffix(end)
                && !noun
                && !lexicon.names_no_one(text, words, i, end)
            {
                push(out, text, words[j].start, words[end - 1].end);
                i = end;
            } else {
                i = j.max(i + 1);
            }
            continue;
        }
        if w.not_a_name() || w.shape == Shape::Lower {
            i += 1;
            continue;
        }
        let end = name_end(words, i);
        let seg = &words[i..end];
        if seg.is_empty() {
            i += 1;
            continue;
        }
        let whole = whole && i == 0 && end == n;
        if let Some(len) = judge(seg, cue, whole, all_upper, text) {
            let last = &seg[len - 1];
            // "Washington Street", "Victoria Station": a place, unless the
            // given name is no place and the last word a real surname
            // (Jennifer Park).
            let place = next_suffix(i + len)
                || in_address(lexicon, text, seg[0].start)
                || lexicon.names_no_one(text, words, i, i + len);
            if !place {
                push(out, text, seg[0].start, last.end);
            }
            i += len;
        } else {
            i += 1;
        }
    }
    run_end
}

/// The end of the name-shaped words from `i`: initials, known names,
/// unknown capitalised words and particles between them, up to four name
/// words.
fn name_end(words: &[Word], i: usize) -> usize {
    let mut j = i;
    let mut names = 0;
    while j < words.len() && names < 4 {
        let w = &words[j];
        if w.shape == Shape::Lower {
            // Particles inside a name, or opening a surname after a title
            // (Dr. van Dijk); a name never ends on one (below).
            if w.is(PARTICLE) {
                j += 1;
                continue;
            }
            break;
        }
        if w.not_a_name() || (w.title() && !w.known()) || w.is(CONTEXT) && !w.known() {
            break;
        }
        // Park, Hall, Street end a place's name (Washington Street,
        // Victoria Park) even where they are surnames too: Jennifer Park
        // is missed rather than every street named after someone found.
        if w.is(SUFFIX) {
            break;
        }
        names += 1;
        j += 1;
    }
    // Never end on a particle.
    while j > i && words[j - 1].shape == Shape::Lower {
        j -= 1;
    }
    j
}

/// How many words of `seg` (name-shaped words, see [`name_end`]) form a
/// name, if they do. `cue` is a context word or title before them, `whole`
/// that they are all the cell holds.
fn judge(seg: &[Word], cue: bool, whole: bool, all_upper: bool, text: &[u8]) -> Option<usize> {
    let first = &seg[0];
    let n = seg.len();
    let strong = cue || whole;
    let last_known_name = seg.iter().rposition(|w| w.known());
    if n == 1 {
        // One name alone: after a cue, or as a cell of its own when it is
        // a given name and no common word or place (a first_name column:
        // "Jennifer"). A lone surname in a cell is as often a firm or a
        // town (Ernst, Barros), so it is left alone.
        let ok = first.known() && (cue || (whole && first.given() && !first.ambiguous()));
        return ok.then_some(1);
    }
    // Initials, then a surname: J. Smith, J. R. R. Tolkien.
    if first.initial() {
        let k = seg.iter().position(|w| !w.initial())?;
        let rest = &seg[k..];
        return match rest.iter().rposition(|w| w.surname() || w.given()) {
            Some(sur) => Some(k + sur + 1),
            // An initial and a surname the lexicon lacks, alone in a cell
            // or after a cue.
            None => strong.then_some(n),
        };
    }
    // The first word after the first that is not a particle.
    let at = 1 + seg[1..].iter().position(|w| w.shape != Shape::Lower)?;
    let second = &seg[at];
    if first.given() {
        // Given + a known surname or given name further on.
        if let Some(last) = last_known_name.filter(|&l| l > 0) {
            // A given name that is also a common word (Stunde, May, Grace)
            // opens a name only in a cell of its own or after a cue: in
            // German every noun is capitalised (Stunde Bauer).
            if first.ambiguous() && !strong {
                return None;
            }
            let both_ambiguous =
                first.ambiguous() && seg[1..=last].iter().all(|w| w.ambiguous() || !w.known());
            // Both common words: a name after a cue, or as the whole cell
            // (Jan Berg, but not Earl Grey Tea).
            if both_ambiguous && !(cue || (whole && last == n - 1)) {
                return None;
            }
            // Trailing unknown words: a second surname the lexicon lacks
            // (García Kowalczyk) when the cell holds nothing else.
            let end = if whole { n } else { last + 1 };
            return Some(end);
        }
        // Given + an unknown capitalised word: a surname the lexicon
        // lacks, unless the given name is a common word or place.
        if second.unknown() && (!first.ambiguous() || cue) && (!all_upper || strong) {
            return Some(if whole { n } else { at + 1 });
        }
        return None;
    }
    if first.unknown() {
        // An unknown given name and a known surname: Xiomara Smith. Not at
        // the start of a sentence, where any word is capitalised.
        // (In running text a word that is also a given name is as likely
        // a second given name or a noun: Haus Bett.)
        if second.surname()
            && (whole || !second.given())
            && !second.ambiguous()
            && (!all_upper || strong)
            && (strong || !sentence_start(text, first.start))
        {
            return Some(if whole { n } else { at + 1 });
        }
        // Two or three capitalised words after a cue.
        if n <= 3 && cue {
            return Some(n);
        }
        return None;
    }
    // A surname first: two surnames, or a particle name, in a cell or after
    // a cue.
    if first.surname() && !first.ambiguous() && cue {
        return Some(n);
    }
    None
}

/// Whether `at` opens a sentence: the start of the text, or after `.`,
/// `!`, `?`, a line break or a quote.
fn sentence_start(text: &[u8], at: usize) -> bool {
    let before = text[..at]
        .iter()
        .rev()
        .find(|b| !matches!(b, b' ' | b'"' | b'\''));
    match before {
        None => true,
        Some(b) => matches!(b, b'.' | b'!' | b'?' | b'\n' | b'\r' | b':' | b'\t' | b'-'),
    }
}

fn push(out: &mut Vec<Finding>, text: &[u8], mut start: usize, end: usize) {
    // Arabic surnames written al-Hassan, el-Amin: keep the article.
    if start >= 3 && text[start - 1] == b'-' {
        let art = &text[start - 3..start - 1];
        if art.eq_ignore_ascii_case(b"al") || art.eq_ignore_ascii_case(b"el") {
            start -= 3;
        }
    }
    if end > start {
        out.push(Finding {
            kind: Kind::Person,
            start,
            end,
        });
    }
}

#[cfg(test)]
mod tests;
