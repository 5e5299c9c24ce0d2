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
pub(super) fn decode_around(
    text: &[u8],
    ws: usize,
    we: usize,
    tried: &mut [usize; 2],
) -> Option<(usize, usize, Vec<u8>)> {
    if let Some(decoded) = hex_text(&text[ws..we]) {
        return Some((ws, we, decoded));
    }
    // The run under each alphabet not tried yet; the longer reading is
    // tried first, so that a URL-safe run is not cut at its first `-`.
    let mut runs: [Option<(usize, usize, usize, bool)>; 2] = [None, None];
    for (k, url) in [(0, false), (1, true)] {
        if ws >= tried[k] && !alone_and_short(text, ws, we, url) {
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
        let engine = if url { &URL_SAFE } else { &STANDARD };
        if let Some(decoded) = base64_text(engine, &text[rs..body_end]) {
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
fn alone_and_short(text: &[u8], ws: usize, we: usize, url: bool) -> bool {
    let extends = |b: Option<&u8>| {
        b.is_some_and(|&b| {
            b.is_ascii_alphanumeric()
                || if url {
                    b == b'-' || b == b'_'
                } else {
                    b == b'+' || b == b'/'
                }
        })
    };
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
    let is_char = |b: u8| b.is_ascii_alphanumeric() || extra(b);
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

fn base64_text(engine: &GeneralPurpose, run: &[u8]) -> Option<Vec<u8>> {
    if run.len() % 4 == 1 {
        return None;
    }
    // Sixteen characters are twelve bytes exactly.
    let mut probe = [0u8; PROBE];
    let n = engine.decode_slice(&run[..16], &mut probe).ok()?;
    if n != PROBE || !printable_prefix(&probe) {
        return None;
    }
    let decoded = engine.decode(run).ok()?;
    printable(&decoded).then_some(decoded)
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
