//! Values hidden by a reversible encoding: a run of base64 (standard or
//! URL-safe, padded or not) or of hex digits that decodes to readable text.
//!
//! The digit pass hands over each long word that holds a digit and that no
//! numeric detector claimed; nearly every encoded run of 16 characters or
//! more has a digit in it. A run is decoded only as far as needed to tell
//! text from random bytes: the first twelve bytes are decoded on the stack
//! and must be printable UTF-8, which a hash, a key or a random token fails
//! at once (each byte has about a one-in-three chance). Only a run that
//! passes is decoded whole, into a buffer, and scanned; what is found there
//! masks the whole encoded run.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

/// Shorter runs are words and identifiers more often than encodings, and
/// hold too little to carry a value the scanner finds (six bytes at least).
pub(super) const MIN_RUN: usize = 16;

/// How many bytes are decoded before deciding whether a run is text.
const PROBE: usize = 12;

const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

/// An encoded run around the word `ws..we`: its bounds and its decoded
/// bytes, when they are text.
///
/// `tried` is where the base64 runs already tried in this text end, in
/// the standard and the URL-safe alphabet: every word inside one lies in
/// the same run of that alphabet and reads the same, so it is not tried
/// again. (A value of many words joined by `-` — `83868641912-2877397283…`
/// — is one URL-safe run; trying it for each word made the scan quadratic
/// in its length.)
#[inline]
pub(super) fn decode_around(
    text: &[u8],
    ws: usize,
    we: usize,
    tried: &mut [usize; 2],
) -> Option<(usize, usize, Vec<u8>)> {
    // Most words are too short to be hex and lie inside a base64 run
    // already tried, or are too short and alone in the alphabet: told
    // here, inline in the digit pass, before anything is measured.
    let open = [false, true]
        .map(|url| ws >= tried[usize::from(url)] && !alone_and_short(text, ws, we, url));
    if we - ws < MIN_RUN && open == [false, false] {
        return None;
    }
    decode_open_runs(text, ws, we, open, tried)
}

/// [`decode_around`] for a word that may be hex, or that lies in a base64
/// run not tried yet in the alphabets `open` marks.
#[inline(never)]
fn decode_open_runs(
    text: &[u8],
    ws: usize,
    we: usize,
    open: [bool; 2],
    tried: &mut [usize; 2],
) -> Option<(usize, usize, Vec<u8>)> {
    if let Some(decoded) = hex_text(&text[ws..we]) {
        return Some((ws, we, decoded));
    }
    // The run under each alphabet not tried yet; the longer reading is
    // tried first, so that a URL-safe run is not cut at its first `-`.
    let mut runs: [Option<(usize, usize, usize, bool)>; 2] = [None, None];
    for (k, url) in [(0, false), (1, true)] {
        if open[k] {
            let run = run_bounds(text, ws, we, url);
            tried[k] = run.2;
            runs[k] = Some(run);
        }
    }
    let len = |r: &Option<(usize, usize, usize, bool)>| r.map_or(0, |(rs, end, _, _)| end - rs);
    if len(&runs[1]) > len(&runs[0]) {
        runs.swap(0, 1);
    }
    for (rs, body_end, re, url) in runs.into_iter().flatten() {
        if body_end - rs < MIN_RUN || text.get(re).is_some_and(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        if let Some(decoded) = base64_text(url, &text[rs..body_end]) {
            return Some((rs, re, decoded));
        }
        if text[rs..body_end].iter().all(u8::is_ascii_alphanumeric) {
            // Both alphabets read a run of letters and digits the same way.
            break;
        }
    }
    None
}

/// Whether the word `ws..we` is by itself the whole run of an alphabet
/// (no character of the run on either side of it) and too short to be
/// tried: the words of `83868641912-28773972837-…` in the standard
/// alphabet, found without measuring the run.
#[inline]
fn alone_and_short(text: &[u8], ws: usize, we: usize, url: bool) -> bool {
    let extends = |b: Option<&u8>| b.is_some_and(|&b| in_alphabet(b, url));
    we - ws < MIN_RUN
        && !extends(ws.checked_sub(1).and_then(|i| text.get(i)))
        && !extends(text.get(we))
}

/// The base64 run around `ws..we` in one alphabet: its start, the end of
/// its characters, its end with padding, and the alphabet.
fn run_bounds(text: &[u8], ws: usize, we: usize, url: bool) -> (usize, usize, usize, bool) {
    let extra = |b: u8| {
        if url {
            b == b'-' || b == b'_'
        } else {
            b == b'+' || b == b'/'
        }
    };
    let values = alphabet_values(url);
    let is_char = |b: u8| values[usize::from(b)] != INVALID;
    let mut rs = ws;
    while rs > 0 && is_char(text[rs - 1]) {
        rs -= 1;
    }
    let mut body_end = we;
    while body_end < text.len() && is_char(text[body_end]) {
        body_end += 1;
    }
    // A path or a key=value pair may open with the extra characters; an
    // encoding of text rarely does.
    while rs < ws && extra(text[rs]) {
        rs += 1;
    }
    let mut re = body_end;
    while re - body_end < 2 && text.get(re) == Some(&b'=') {
        re += 1;
    }
    (rs, body_end, re, url)
}

/// Whether `b` is a character of the alphabet (its padding aside).
fn in_alphabet(b: u8, url: bool) -> bool {
    alphabet_values(url)[usize::from(b)] != INVALID
}

fn alphabet_values(url: bool) -> &'static [u8; 256] {
    if url {
        &URL_SAFE_VALUES
    } else {
        &STANDARD_VALUES
    }
}

/// A run of hex digits in one case, of an even length, that decodes to text.
fn hex_text(word: &[u8]) -> Option<Vec<u8>> {
    if word.len() < MIN_RUN
        || !word.len().is_multiple_of(2)
        || !word.iter().all(u8::is_ascii_hexdigit)
    {
        return None;
    }
    let upper = word.iter().any(u8::is_ascii_uppercase);
    let lower = word.iter().any(u8::is_ascii_lowercase);
    if upper && lower {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        _ => (b | 0x20) - b'a' + 10,
    };
    let byte = |i: usize| nibble(word[2 * i]) << 4 | nibble(word[2 * i + 1]);
    let mut probe = [0u8; PROBE];
    let probed = PROBE.min(word.len() / 2);
    for (i, slot) in probe[..probed].iter_mut().enumerate() {
        *slot = byte(i);
    }
    if !printable_prefix(&probe[..probed]) {
        return None;
    }
    let decoded: Vec<u8> = (0..word.len() / 2).map(byte).collect();
    printable(&decoded).then_some(decoded)
}

fn base64_text(url: bool, run: &[u8]) -> Option<Vec<u8>> {
    if run.len() % 4 == 1 {
        return None;
    }
    // Sixteen characters are twelve bytes exactly. Most runs stop here,
    // so they are read by table: the engine's setup costs more than the
    // decoding of sixteen characters.
    if !printable_prefix(&probe(&run[..16], url)?) {
        return None;
    }
    let engine = if url { &URL_SAFE } else { &STANDARD };
    let decoded = engine.decode(run).ok()?;
    printable(&decoded).then_some(decoded)
}

/// The twelve bytes sixteen base64 characters stand for; `None` if one is
/// not of the alphabet.
fn probe(chars: &[u8], url: bool) -> Option<[u8; PROBE]> {
    let table = alphabet_values(url);
    let mut out = [0u8; PROBE];
    for (quad, bytes) in chars.chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        let mut bits = 0u32;
        for &c in quad {
            let v = table[usize::from(c)];
            if v == INVALID {
                return None;
            }
            bits = bits << 6 | u32::from(v);
        }
        bytes.copy_from_slice(&bits.to_be_bytes()[1..]);
    }
    Some(out)
}

const INVALID: u8 = 0xff;
const STANDARD_VALUES: [u8; 256] = values(b'+', b'/');
const URL_SAFE_VALUES: [u8; 256] = values(b'-', b'_');

/// Each byte's six-bit value in the alphabet whose last two characters are
/// `c62` and `c63`.
const fn values(c62: u8, c63: u8) -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut i = 0u8;
    while i < 26 {
        table[(b'A' + i) as usize] = i;
        table[(b'a' + i) as usize] = 26 + i;
        if i < 10 {
            table[(b'0' + i) as usize] = 52 + i;
        }
        i += 1;
    }
    table[c62 as usize] = 62;
    table[c63 as usize] = 63;
    table
}

/// Whether `bytes` can begin printable UTF-8 text (a character may be cut
/// at the end).
fn printable_prefix(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && valid
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
}

fn printable(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| {
        s.chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_probe_reads_sixteen_characters_as_the_engine_does() {
        let mut rng = StdRng::seed_from_u64(16);
        for (url, engine, extra) in [(false, &STANDARD, b"+/="), (true, &URL_SAFE, b"-_=")] {
            let alphabet: Vec<u8> = (b'A'..=b'Z')
                .chain(b'a'..=b'z')
                .chain(b'0'..=b'9')
                .chain(extra.iter().copied())
                .collect();
            for _ in 0..20_000 {
                let chars: Vec<u8> = (0..16)
                    .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                    .collect();
                let mut want = [0u8; PROBE];
                let want = engine
                    .decode_slice(&chars, &mut want)
                    .ok()
                    .filter(|&n| n == PROBE)
                    .map(|_| want);
                assert_eq!(
                    probe(&chars, url),
                    want,
                    "{:?}",
                    String::from_utf8_lossy(&chars)
                );
            }
        }
    }
}
