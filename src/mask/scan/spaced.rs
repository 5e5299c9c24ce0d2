//! Values spelled out a character at a time: `j a n e @ e x a m p l e . c o m`,
//! `4-1-1-1-1-1-…`, `j, a, n, e`, `а · с · е` in look-alike letters, or
//! with a different separator between every two (`j+a-n_e`). A query makes
//! them with one call (`regexp_replace(email, '(.)', '\1 ', 'g')`,
//! `array_to_string(regexp_split_to_array(email, ''), ' . ')`) and a reader
//! reads them whole, but no detector finds a value in them. Such a run is
//! read again without its separators, and what is found there masks the
//! run.
//!
//! A run is a string of single letters or digits (of any script) with a
//! short gap of other characters between every two. Its separator is the
//! gap seen most; where every gap is that separator with characters
//! between copies of it (`e . @ . x`), those characters are spelled too
//! and read. Where the gaps differ, a reading keeps only the `@` and the
//! dots that stand out.
//!
//! Runs are looked for where a test of 64 positions at once, as bit masks,
//! finds the same bytes repeated a stride apart, or three letters each
//! standing alone a few bytes apart: ordinary prose seldom has either, so
//! it is walked only where it does.

use super::fold::Folded;
use crate::sql::lexer::utf8_len;

/// Fewest copies of the separator in a run that is read again: six
/// characters, the shortest value a detector finds.
const MIN_SEPARATORS: usize = 5;

/// Letters and digits a run must have, at least: a run of punctuation
/// (`- - - - - -`, padding) is no value.
const MIN_ALNUM: usize = 4;

/// Longest gap between two spelled letters, in bytes: a separator of up to
/// four characters, a character and the separator again, twice (`.@`).
const MAX_GAP: usize = 24;

/// Hands each run of single characters spelled out with separators, read
/// without them, to `each`, in order.
pub(super) fn spaced_runs(text: &[u8], mut each: impl FnMut(Folded)) {
    if text.len() < 2 * MIN_SEPARATORS + 1 {
        return;
    }
    let mut run = Run::default();
    let mut at = 0;
    while let Some(p) = next_candidate(text, at) {
        // Every candidate inside the run walked leads to it again: each
        // stretch of text is walked once.
        at = run.walk(text, p, &mut each).max(p + 1);
    }
}

/// How many positions [`next_candidate`] tests at once: one bit each.
const BLOCK: usize = 64;

/// The first position at or after `from` that may be in a run. Each block
/// of 64 positions is tested as bit masks, a block's bytes read once; the
/// last positions are read from a block padded with NULs, which never
/// match.
fn next_candidate(text: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    let mut current = block_masks(text, i);
    while i < text.len() {
        let next = block_masks(text, i + BLOCK);
        let hits = candidates(&current, &next);
        if hits != 0 {
            let at = i + hits.trailing_zeros() as usize;
            return (at < text.len()).then_some(at);
        }
        current = next;
        i += BLOCK;
    }
    None
}

/// What the bytes of a block are, one bit per byte, and which bytes equal
/// the byte a stride of 2, 3 and 4 on.
#[derive(Clone, Copy, Default)]
struct Masks {
    alnum: u64,
    /// A byte in ASCII that is no letter, digit or NUL.
    ascii_gap: u64,
    /// A byte outside ASCII.
    high: u64,
    /// The second, third or fourth byte of a character.
    continuation: u64,
    /// The first of a character of two bytes.
    lead_of_two: u64,
    same: [u64; 3],
}

/// Bytes a block's masks read: the block and the widest stride past it,
/// rounded to a whole lane.
const READ: usize = BLOCK + 8;

/// The masks of the 64 bytes from `at`; bytes past the end read as NULs,
/// which match nothing.
fn block_masks(text: &[u8], at: usize) -> Masks {
    if at >= text.len() {
        return Masks::default();
    }
    let mut padded = [0u8; READ];
    let bytes: &[u8; READ] = match text.get(at..at + READ) {
        Some(whole) => whole.try_into().expect("a block"),
        None => {
            let tail = &text[at..];
            padded[..tail.len()].copy_from_slice(tail);
            &padded
        }
    };
    masks_of(bytes)
}

/// The masks of a block, a lane of bytes to a vector compare: 32 with AVX2
/// where the processor has it, else 16 with SSE2, which every x86-64
/// processor has.
#[cfg(target_arch = "x86_64")]
fn masks_of(bytes: &[u8; READ]) -> Masks {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2.
        unsafe { masks_avx2(bytes) }
    } else {
        masks_sse2(bytes)
    }
}

/// One block's masks from vector lanes; the names are the instruction
/// set's (`$v` its vector type, the rest its intrinsics), so that one body
/// serves both widths.
#[cfg(target_arch = "x86_64")]
macro_rules! lane_masks {
    ($bytes:expr, $width:expr, $v:ty, $load:ident, $set1:ident, $eq:ident, $gt:ident, $and:ident,
     $or:ident, $movemask:ident) => {{
        use std::arch::x86_64::*;
        let bytes: &[u8; READ] = $bytes;
        let mut m = Masks::default();
        let mut at = 0;
        while at < BLOCK {
            // SAFETY: every load reads `$width` bytes inside `bytes`: at
            // most `BLOCK - $width + 4 + $width <= READ`. The compares are
            // of the instruction set the caller runs with.
            let (alnum, ascii, high, continuation, lead_of_two, same) = unsafe {
                let v: $v = $load(bytes.as_ptr().add(at).cast());
                macro_rules! bits {
                    ($x:expr) => {
                        u64::from($movemask($x) as u32)
                    };
                }
                // Bytes from 0x80 are negative to the signed compares: the
                // letter and digit ranges hold ASCII only.
                macro_rules! within {
                    ($x:expr, $lo:expr, $hi:expr) => {
                        $and($gt($x, $set1($lo - 1)), $gt($set1($hi + 1), $x))
                    };
                }
                let letter = within!($or(v, $set1(0x20)), b'a' as i8, b'z' as i8);
                let digit = within!(v, b'0' as i8, b'9' as i8);
                let mut same = [0u64; 3];
                for (s, same) in same.iter_mut().enumerate() {
                    *same = bits!($eq(v, $load(bytes.as_ptr().add(at + s + 2).cast())));
                }
                (
                    bits!($or(letter, digit)),
                    bits!($gt(v, $set1(0))),
                    bits!(v),
                    // 0x80..=0xBF, and 0xC0..=0xDF, as signed bytes.
                    bits!($gt($set1(-64), v)),
                    bits!(within!(v, -64, -33)),
                    same,
                )
            };
            m.alnum |= alnum << at;
            m.ascii_gap |= (ascii & !alnum) << at;
            m.high |= high << at;
            m.continuation |= continuation << at;
            m.lead_of_two |= lead_of_two << at;
            for (all, lane) in m.same.iter_mut().zip(same) {
                *all |= lane << at;
            }
            at += $width;
        }
        m
    }};
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn masks_avx2(bytes: &[u8; READ]) -> Masks {
    lane_masks!(
        bytes,
        32,
        __m256i,
        _mm256_loadu_si256,
        _mm256_set1_epi8,
        _mm256_cmpeq_epi8,
        _mm256_cmpgt_epi8,
        _mm256_and_si256,
        _mm256_or_si256,
        _mm256_movemask_epi8
    )
}

#[cfg(target_arch = "x86_64")]
fn masks_sse2(bytes: &[u8; READ]) -> Masks {
    lane_masks!(
        bytes,
        16,
        __m128i,
        _mm_loadu_si128,
        _mm_set1_epi8,
        _mm_cmpeq_epi8,
        _mm_cmpgt_epi8,
        _mm_and_si128,
        _mm_or_si128,
        _mm_movemask_epi8
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn masks_of(bytes: &[u8; READ]) -> Masks {
    masks_bytewise(bytes)
}

/// The masks of a block, a byte at a time: where there is no vector
/// compare, and what the vector ones are tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn masks_bytewise(bytes: &[u8; READ]) -> Masks {
    let mut m = Masks::default();
    for k in 0..BLOCK {
        let b = bytes[k];
        let bit = 1u64 << k;
        let alnum = b.is_ascii_alphanumeric();
        let set = |mask: &mut u64, on: bool| *mask |= if on { bit } else { 0 };
        set(&mut m.alnum, alnum);
        set(&mut m.ascii_gap, !alnum && b != 0 && b.is_ascii());
        set(&mut m.high, !b.is_ascii());
        set(&mut m.continuation, b & 0xC0 == 0x80);
        set(&mut m.lead_of_two, b & 0xE0 == 0xC0);
        for (s, same) in m.same.iter_mut().enumerate() {
            set(same, b == bytes[k + s + 2]);
        }
    }
    m
}

/// The positions of a block that may be in a run, one bit each, from its
/// masks and the next block's:
///
/// - a separator byte repeated a stride and two strides on, with as many
///   of the separator's bytes repeated as a stride of one- or two-byte
///   characters leaves (`j a n`, `j, a, n`, `а·с·е`, `j·a·n`; letters in
///   other scripts seldom repeat two bytes so);
/// - or a gap byte before a letter standing alone (in ASCII or of two
///   bytes), with two more each at most eight bytes on (`j.a-n_e`,
///   `j → a → n`, `а, с, е`, `j . a . n`).
fn candidates(current: &Masks, next: &Masks) -> u64 {
    // A mask over this block and the next, which the tests read into.
    let wide = |f: fn(&Masks) -> u64| u128::from(f(current)) | (u128::from(f(next)) << BLOCK);
    let ascii_gap = wide(|m| m.ascii_gap);
    let alnum = wide(|m| m.alnum);
    let ascii = !wide(|m| m.high);
    let continuation = wide(|m| m.continuation);
    let lead_of_two = wide(|m| m.lead_of_two);
    let same = [
        wide(|m| m.same[0]),
        wide(|m| m.same[1]),
        wide(|m| m.same[2]),
    ];
    // The byte `offset` on equals the bytes a stride and two strides on.
    let repeats = |stride: usize, offset: usize| {
        let same = same[stride - 2];
        (same >> offset) & (same >> (offset + stride))
    };
    let two = repeats(2, 0) & ascii_gap;
    // The byte a stride-three separator ends with may be the second of a
    // character (`j·a·n`); then the characters between are ASCII, which
    // text in a script of three-byte characters never has there.
    let between_ascii = continuation & (ascii >> 1) & (ascii >> 4);
    let three = repeats(3, 0) & (ascii_gap | between_ascii);
    let four = repeats(4, 0) & repeats(4, 1) & !alnum;
    let alone = ascii_gap
        & (((alnum >> 1) & (ascii_gap >> 2))
            | ((lead_of_two >> 1) & (continuation >> 2) & (ascii_gap >> 3)));
    // Whether one stands alone within the next eight bytes.
    let mut within = alone | (alone >> 1);
    within |= within >> 2;
    within |= within >> 4;
    let loose = alone & (within >> 2) & ((within >> 4) | (within >> 11));
    (two | three | four | loose) as u64
}

/// What a character is to a run: a letter or digit, a gap character, or
/// one that ends every run (NUL and other controls, invalid UTF-8).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Alnum,
    Gap,
    Stop,
}

/// The class and length of the character that starts at `i`.
fn char_at(text: &[u8], i: usize) -> (Class, usize) {
    let b = text[i];
    if b.is_ascii() {
        let class = if b.is_ascii_alphanumeric() {
            Class::Alnum
        } else if b.is_ascii_control() && !matches!(b, b'\t' | b'\n' | b'\r') {
            Class::Stop
        } else {
            Class::Gap
        };
        return (class, 1);
    }
    let len = match b {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (Class::Stop, 1),
    };
    let Some(c) = text
        .get(i..i + len)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|s| s.chars().next())
    else {
        return (Class::Stop, 1);
    };
    let class = if alnum_outside_ascii(c) {
        Class::Alnum
    } else if c.is_control() {
        Class::Stop
    } else {
        Class::Gap
    };
    (class, len)
}

/// Whether a character outside ASCII is a letter or digit: the blocks
/// text is mostly written in are told by their range, the rest by
/// Unicode's tables.
fn alnum_outside_ascii(c: char) -> bool {
    match u32::from(c) {
        // Latin-1 letters but × and ÷, Latin Extended-A and -B.
        0xC0..=0x24F => !matches!(c, '×' | '÷'),
        // Cyrillic but its signs and combining marks.
        0x400..=0x481 | 0x48A..=0x52F => true,
        // General punctuation, spaces and marks that show nothing.
        0x2000..=0x206F => false,
        // Kana, CJK ideographs, Hangul syllables.
        0x3041..=0x3096 | 0x30A1..=0x30FA | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3 => true,
        _ => c.is_alphanumeric(),
    }
}

/// Where the character that holds byte `i` starts.
fn char_start(text: &[u8], i: usize) -> usize {
    let mut s = i;
    while s > 0 && i - s < 3 && text[s] & 0xC0 == 0x80 {
        s -= 1;
    }
    if s + char_at(text, s).1 > i {
        s
    } else {
        i
    }
}

/// The character that ends at `i`: its start and class.
fn char_before(text: &[u8], i: usize) -> (usize, Class) {
    let s = char_start(text, i - 1);
    match char_at(text, s) {
        (class, len) if s + len == i => (s, class),
        _ => (i - 1, Class::Stop),
    }
}

/// A stretch of the text read as pieces: each a run of characters of one
/// class.
#[derive(Clone, Copy)]
struct Piece {
    start: usize,
    end: usize,
    class: Class,
    chars: usize,
}

fn piece_at(text: &[u8], start: usize) -> Piece {
    let (class, len) = char_at(text, start);
    let mut piece = Piece {
        start,
        end: start + len,
        class,
        chars: 1,
    };
    if class == Class::Stop {
        return piece;
    }
    while piece.end < text.len() {
        let (next, len) = char_at(text, piece.end);
        if next != class {
            break;
        }
        piece.end += len;
        piece.chars += 1;
    }
    piece
}

/// The run being read: its single characters and the gaps between them,
/// kept between candidates so that walking allocates once.
#[derive(Default)]
struct Run {
    /// Each single character's bytes.
    singles: Vec<(usize, usize)>,
    /// The gap after each single but the last.
    gaps: Vec<(usize, usize)>,
    /// The gap before the first single, if the run has one.
    lead: Option<(usize, usize)>,
}

impl Run {
    /// Walks the run through position `p`, hands its readings to `each`,
    /// and returns where the next candidate may be looked for.
    fn walk(&mut self, text: &[u8], p: usize, each: &mut impl FnMut(Folded)) -> usize {
        let from = run_start(text, p);
        self.clear();
        let mut i = from;
        while i < text.len() {
            let piece = piece_at(text, i);
            let breaks = match piece.class {
                Class::Alnum => piece.chars > 1,
                Class::Gap => piece.end - piece.start > MAX_GAP,
                Class::Stop => true,
            };
            if breaks {
                self.read(text, each);
                self.clear();
                if piece.start > p {
                    return piece.start;
                }
            } else if piece.class == Class::Alnum {
                self.singles.push((piece.start, piece.end));
            } else if self.singles.is_empty() {
                self.lead = Some((piece.start, piece.end));
            } else {
                self.gaps.push((piece.start, piece.end));
            }
            i = piece.end;
        }
        self.read(text, each);
        text.len()
    }

    fn clear(&mut self) {
        self.singles.clear();
        self.gaps.clear();
        self.lead = None;
    }

    /// Hands the run's readings to `each`: every stretch whose gaps are all
    /// one separator with characters between its copies, or, where there
    /// is none, the whole run with its `@` and the dots that stand out.
    fn read(&mut self, text: &[u8], each: &mut impl FnMut(Folded)) {
        // A gap after the last single is no gap of the run.
        self.gaps.truncate(self.singles.len().saturating_sub(1));
        if self.singles.len() < MIN_ALNUM || self.gaps.len() + 1 < MIN_ALNUM {
            return;
        }
        let Some(sep) = most_common(text, &self.gaps) else {
            return;
        };
        let mut read_any = false;
        let mut first = 0;
        while first < self.singles.len() {
            // The stretch of singles `first..=last` whose gaps are all the
            // separator with characters between.
            let mut last = first;
            let mut copies = 0;
            while let Some(&(gs, ge)) = self.gaps.get(last) {
                let Some(n) = spelled_in(&text[gs..ge], sep) else {
                    break;
                };
                copies += n + 1;
                last += 1;
            }
            let lead = (first == 0)
                .then_some(self.lead)
                .flatten()
                .and_then(|(s, e)| lead_char(text, s, e, sep));
            if copies + usize::from(lead.is_some()) >= MIN_SEPARATORS
                && last - first + 1 >= MIN_ALNUM
            {
                each(self.spelled(text, first, last, sep, lead));
                read_any = true;
            }
            first = last + 1;
        }
        if !read_any && self.gaps.len() >= MIN_SEPARATORS {
            each(self.loose(text));
        }
    }

    /// The singles `first..=last` with the characters spelled between the
    /// separator's copies, and the character before the first.
    fn spelled(
        &self,
        text: &[u8],
        first: usize,
        last: usize,
        sep: &[u8],
        lead: Option<usize>,
    ) -> Folded {
        let mut reading = Reading::default();
        if let Some(at) = lead {
            reading.push_char(text, at);
        }
        for k in first..=last {
            reading.push_char(text, self.singles[k].0);
            if k < last {
                let (gs, ge) = self.gaps[k];
                let mut at = gs + sep.len();
                while at < ge {
                    let len = reading.push_char(text, at);
                    at += len + sep.len();
                }
            }
        }
        reading.finish(self.singles[last].1)
    }

    /// The whole run with different gaps: its singles, each gap's `@`,
    /// and its dots where fewer than half the gaps have one (a dot in
    /// every gap is a separator).
    fn loose(&self, text: &[u8]) -> Folded {
        let has = |&(s, e): &(usize, usize), b: u8| text[s..e].contains(&b);
        let dotted = self.gaps.iter().filter(|g| has(g, b'.')).count();
        let dots_stand_out = 2 * dotted < self.gaps.len();
        let mut reading = Reading::default();
        for (k, &(s, _)) in self.singles.iter().enumerate() {
            reading.push_char(text, s);
            if let Some(gap) = self.gaps.get(k) {
                if has(gap, b'@') {
                    reading.push_byte(b'@', gap.0);
                } else if dots_stand_out && has(gap, b'.') {
                    reading.push_byte(b'.', gap.0);
                }
            }
        }
        let end = self.singles.last().map_or(0, |&(_, e)| e);
        reading.finish(end)
    }
}

/// Where the walk for position `p` starts: at the last piece at or before
/// `p` that ends every run through it (a word of two letters or more, a
/// gap too long, a control), found walking back; the walk reads that piece
/// whole and goes on after it.
fn run_start(text: &[u8], p: usize) -> usize {
    let at = char_start(text, p);
    let mut i = at + char_at(text, at).1;
    let mut word = 0;
    let mut gap = 0;
    while i > 0 {
        let (s, class) = char_before(text, i);
        match class {
            Class::Alnum => {
                word += 1;
                gap = 0;
                if word > 1 {
                    return s;
                }
            }
            Class::Gap => {
                gap += i - s;
                word = 0;
                if gap > MAX_GAP {
                    return s;
                }
            }
            Class::Stop => return s,
        }
        i = s;
    }
    0
}

/// The gap seen in more than half the run's gaps, or if none is, one of
/// those seen most (a majority vote: one pass, nothing kept).
fn most_common<'t>(text: &'t [u8], gaps: &[(usize, usize)]) -> Option<&'t [u8]> {
    let mut leader: Option<&[u8]> = None;
    let mut lead = 0usize;
    for &(s, e) in gaps {
        let gap = &text[s..e];
        if lead == 0 {
            leader = Some(gap);
            lead = 1;
        } else if leader == Some(gap) {
            lead += 1;
        } else {
            lead -= 1;
        }
    }
    leader
}

/// How many characters the gap spells between copies of `sep`, if it is
/// `sep` with single characters between its copies (`.`, `.@.`, ` . . . `).
fn spelled_in(gap: &[u8], sep: &[u8]) -> Option<usize> {
    let mut rest = gap.strip_prefix(sep)?;
    let mut chars = 0;
    while !rest.is_empty() {
        let len = utf8_len(rest[0]);
        rest = rest.get(len..)?.strip_prefix(sep)?;
        chars += 1;
    }
    Some(chars)
}

/// A character spelled before the first single (`+ 4 4 …`, `_ a b`): the
/// lead gap's character just before a copy of the separator it ends with.
fn lead_char(text: &[u8], start: usize, end: usize, sep: &[u8]) -> Option<usize> {
    let before = text[start..end].strip_suffix(sep)?;
    if before.is_empty() {
        return None;
    }
    let at = char_start(text, start + before.len() - 1);
    let spaced = text[at].is_ascii_whitespace();
    (at >= start && !spaced).then_some(at)
}

/// A reading being built: its bytes and where each came from.
#[derive(Default)]
struct Reading {
    text: Vec<u8>,
    origin: Vec<usize>,
}

impl Reading {
    /// Copies the character at `at`; returns its length.
    fn push_char(&mut self, text: &[u8], at: usize) -> usize {
        let len = utf8_len(text[at]).min(text.len() - at);
        self.text.extend_from_slice(&text[at..at + len]);
        self.origin.extend(std::iter::repeat_n(at, len));
        len
    }

    fn push_byte(&mut self, b: u8, at: usize) {
        self.text.push(b);
        self.origin.push(at);
    }

    fn finish(mut self, end: usize) -> Folded {
        self.origin.push(end);
        Folded {
            text: self.text,
            origin: self.origin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(text: &str) -> Vec<(String, usize, usize)> {
        let mut found = Vec::new();
        spaced_runs(text.as_bytes(), |f| {
            let start = f.origin[0];
            let end = *f.origin.last().expect("an end");
            found.push((String::from_utf8(f.text).expect("UTF-8"), start, end));
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
            // Separators of three and four bytes, and outside ASCII.
            (
                "to j . a . n . e . @ . x . . . i . o",
                "jane@x.io",
                "j . a . n . e . @ . x . . . i . o",
            ),
            (
                "n 4 -- 1 -- 1 -- 1 -- 1 -- 1",
                "411111",
                "4 -- 1 -- 1 -- 1 -- 1 -- 1",
            ),
            ("j·a·n·e·@·x·.·i·o", "jane@x.io", "j·a·n·e·@·x·.·i·o"),
            // Letters of other scripts, and a separator of two bytes.
            (
                "а, с, е, @, с, о, ., с, о",
                "асе@со.со",
                "а, с, е, @, с, о, ., с, о",
            ),
            // A character spelled before the first letter.
            ("tel + 4 4 7 9 1 1", "+447911", "+ 4 4 7 9 1 1"),
        ] {
            let found = runs(text);
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            let (read, start, end) = &found[0];
            assert_eq!(read, reading, "{text}");
            assert_eq!(&text[*start..*end], spelled, "{text}");
        }
    }

    #[test]
    fn characters_spelled_out_with_different_separators_keep_their_at_and_dots() {
        let found = runs("to j+a-n_e @ e-x-a_m+p-l_e . c-o-m");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "jane@example.com");
    }

    #[test]
    fn ordinary_text_has_no_run() {
        for text in [
            "the shipment was sent on 2025-11-03, a b c, and I a m",
            "------ ====== 000000 ...... ||||||",
            "| a | b | c |",
            "1.2.3.4",
            "to be or not to be, that is the question",
            "Привет, как дела? Всё хорошо, спасибо.",
            "",
            "ab",
        ] {
            assert_eq!(runs(text), Vec::new(), "{text}");
        }
    }

    #[test]
    fn block_masks_read_as_the_bytes_do() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = "aZ09 ,.-_@\0\tа·→é\u{200B}\u{FF41}\u{1D41A}".as_bytes();
        for _ in 0..2000 {
            let mut bytes = [0u8; READ];
            for b in &mut bytes {
                let r = next();
                *b = if r % 3 == 0 {
                    r as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                };
            }
            let bytewise = masks_bytewise(&bytes);
            #[cfg(target_arch = "x86_64")]
            let vectors = [masks_sse2(&bytes), masks_of(&bytes)];
            #[cfg(not(target_arch = "x86_64"))]
            let vectors = [masks_of(&bytes)];
            for simd in vectors {
                assert_eq!(simd.alnum, bytewise.alnum, "{bytes:?}");
                assert_eq!(simd.ascii_gap, bytewise.ascii_gap, "{bytes:?}");
                assert_eq!(simd.continuation, bytewise.continuation, "{bytes:?}");
                assert_eq!(simd.lead_of_two, bytewise.lead_of_two, "{bytes:?}");
                assert_eq!(simd.high, bytewise.high, "{bytes:?}");
                assert_eq!(simd.same, bytewise.same, "{bytes:?}");
            }
        }
    }

    #[test]
    fn letters_outside_ascii_are_told_as_unicode_tells_them() {
        let differ: Vec<char> = ('\u{80}'..='\u{FFFF}')
            .filter(|&c| alnum_outside_ascii(c) != c.is_alphanumeric())
            .collect();
        assert_eq!(differ, Vec::<char>::new());
    }

    #[test]
    fn a_walk_from_inside_a_word_reads_the_word_whole() {
        for (text, p) in [("xyz a b c d e f", 1), ("привет а б в г д", 4), ("ab", 1)] {
            let start = run_start(text.as_bytes(), p);
            assert!(start <= p, "{text}");
            assert!(
                piece_at(text.as_bytes(), start).chars > 1,
                "{text}: {start}"
            );
        }
        assert_eq!(runs("слово а, б, в, г, д, е")[0].0, "абвгде");
    }

    #[test]
    fn walking_is_linear_in_long_runs_and_long_gaps() {
        let long = "a b ".repeat(100_000);
        let found = runs(&long);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.len(), 200_000);
        let dashes = "-".repeat(200_000);
        assert_eq!(runs(&dashes), Vec::new());
        let mixed = "a-b_".repeat(100_000);
        assert_eq!(runs(&mixed).len(), 1);
    }
}
