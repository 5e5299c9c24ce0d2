//! A validating walk over a JSON document that reports its string and
//! number leaves by byte range, so that a masked document can be rebuilt
//! from the original bytes with only the leaves changed: key order,
//! spacing, duplicate keys and number spellings all stay as they were.

use std::ops::Range;

/// One leaf of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// A string; `range` covers its content between the quotes.
    String {
        range: Range<usize>,
        escaped: bool,
        is_key: bool,
    },
    Number {
        range: Range<usize>,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub struct InvalidJson;

/// Nesting deeper than this is refused rather than walked: PostgreSQL's own
/// limit is lower, and an unbounded depth would let one value use unbounded
/// memory here.
const MAX_DEPTH: usize = 1024;

/// Walks `json`, calling `visit(leaf, key)` for every string and number;
/// `key` is the content range of the member name a value sits under.
/// Returns an error, having visited only part of it, when `json` is not a
/// single valid JSON value.
pub fn walk(
    json: &[u8],
    mut visit: impl FnMut(Leaf, Option<Range<usize>>),
) -> Result<(), InvalidJson> {
    #[derive(Clone, Copy, PartialEq)]
    enum Frame {
        Object,
        Array,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut keys: Vec<Option<Range<usize>>> = Vec::new();
    let mut i = skip_ws(json, 0);
    // Whether a value is expected next (as opposed to `,` or a closer).
    let mut want_value = true;
    loop {
        if want_value {
            let key = keys.last().cloned().flatten();
            match json.get(i) {
                Some(&open @ (b'{' | b'[')) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(InvalidJson);
                    }
                    let (frame, close) = if open == b'{' {
                        (Frame::Object, b'}')
                    } else {
                        (Frame::Array, b']')
                    };
                    stack.push(frame);
                    // Elements of an array stand under the array's member
                    // name; an object's members bring their own.
                    keys.push(if frame == Frame::Array { key } else { None });
                    i = skip_ws(json, i + 1);
                    if json.get(i) == Some(&close) {
                        stack.pop();
                        keys.pop();
                        i += 1;
                        want_value = false;
                    } else if frame == Frame::Object {
                        i = member_name(json, i, &mut visit, keys.last_mut().expect("pushed"))?;
                    }
                    continue;
                }
                Some(b'"') => {
                    let (end, escaped) = string_end(json, i)?;
                    visit(
                        Leaf::String {
                            range: i + 1..end - 1,
                            escaped,
                            is_key: false,
                        },
                        key,
                    );
                    i = end;
                }
                Some(b't') if json[i..].starts_with(b"true") => i += 4,
                Some(b'f') if json[i..].starts_with(b"false") => i += 5,
                Some(b'n') if json[i..].starts_with(b"null") => i += 4,
                Some(b'-' | b'0'..=b'9') => {
                    let end = number_end(json, i)?;
                    visit(Leaf::Number { range: i..end }, key);
                    i = end;
                }
                _ => return Err(InvalidJson),
            }
            want_value = false;
            continue;
        }
        i = skip_ws(json, i);
        let Some(top) = stack.last().copied() else {
            return if i == json.len() {
                Ok(())
            } else {
                Err(InvalidJson)
            };
        };
        match (top, json.get(i)) {
            (_, Some(b',')) => {
                i = skip_ws(json, i + 1);
                if top == Frame::Object {
                    i = member_name(
                        json,
                        i,
                        &mut visit,
                        keys.last_mut().expect("object has a key slot"),
                    )?;
                }
                want_value = true;
            }
            (Frame::Object, Some(b'}')) | (Frame::Array, Some(b']')) => {
                stack.pop();
                keys.pop();
                i += 1;
            }
            _ => return Err(InvalidJson),
        }
    }

    /// Reads `"name" :` and leaves the walk expecting the member's value.
    fn member_name(
        json: &[u8],
        i: usize,
        visit: &mut impl FnMut(Leaf, Option<Range<usize>>),
        slot: &mut Option<Range<usize>>,
    ) -> Result<usize, InvalidJson> {
        if json.get(i) != Some(&b'"') {
            return Err(InvalidJson);
        }
        let (end, escaped) = string_end(json, i)?;
        visit(
            Leaf::String {
                range: i + 1..end - 1,
                escaped,
                is_key: true,
            },
            None,
        );
        *slot = Some(i + 1..end - 1);
        let colon = skip_ws(json, end);
        if json.get(colon) != Some(&b':') {
            return Err(InvalidJson);
        }
        // The caller's loop continues with want_value still true.
        Ok(skip_ws(json, colon + 1))
    }
}

/// Where JSON objects or arrays may sit inside other text (a statement's
/// literal, a server message quoting a value, a log line): each `{` or `[`
/// with the bracket that balances it, strings skipped. The ranges are
/// candidates: the caller validates them by walking them. Work is bounded
/// by a few passes over the text whatever its shape.
pub fn embedded(text: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let mut budget = text.len().saturating_mul(4).max(4096);
    let mut i = 0;
    while let Some(p) = memchr::memchr2(b'{', b'[', &text[i..]) {
        let start = i + p;
        match balanced_end(text, start, &mut budget) {
            Some(end) => {
                found.push(start..end);
                i = end;
            }
            None if budget == 0 => break,
            None => i = start + 1,
        }
    }
    found
}

/// The end of the bracketed span opening at `start`, if it closes.
fn balanced_end(text: &[u8], start: usize, budget: &mut usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < text.len() {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        match text[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while i < json.len() && matches!(json[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index after the closing quote of the string opening at `start`.
fn string_end(json: &[u8], start: usize) -> Result<(usize, bool), InvalidJson> {
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        let off = memchr::memchr3(b'"', b'\\', 0, &json[i..]).ok_or(InvalidJson)?;
        // Control characters must be escaped inside JSON strings.
        if json[i..i + off].iter().any(|&b| b < 0x20) {
            return Err(InvalidJson);
        }
        i += off;
        match json[i] {
            b'"' => return Ok((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                match json.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u')
                        if json
                            .get(i + 2..i + 6)
                            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                    {
                        i += 6
                    }
                    _ => return Err(InvalidJson),
                }
            }
            _ => return Err(InvalidJson),
        }
    }
}

fn number_end(json: &[u8], start: usize) -> Result<usize, InvalidJson> {
    let mut i = start;
    if json[i] == b'-' {
        i += 1;
    }
    let int_start = i;
    while i < json.len() && json[i].is_ascii_digit() {
        i += 1;
    }
    let int = &json[int_start..i];
    if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
        return Err(InvalidJson);
    }
    if json.get(i) == Some(&b'.') {
        i += 1;
        let s = i;
        while i < json.len() && json[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return Err(InvalidJson);
        }
    }
    if matches!(json.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(json.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let s = i;
        while i < json.len() && json[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return Err(InvalidJson);
        }
    }
    Ok(i)
}

/// Decodes the content of an escaped JSON string; `offsets[k]` is the
/// position in `raw` of the escape or character that produced decoded byte
/// `k` (with one extra entry for the end).
pub fn unescape(raw: &[u8], decoded: &mut Vec<u8>, offsets: &mut Vec<usize>) {
    decoded.clear();
    offsets.clear();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            decoded.push(raw[i]);
            offsets.push(i);
            i += 1;
            continue;
        }
        let start = i;
        let simple = match raw.get(i + 1) {
            Some(b'"') => Some(b'"'),
            Some(b'\\') => Some(b'\\'),
            Some(b'/') => Some(b'/'),
            Some(b'b') => Some(8),
            Some(b'f') => Some(12),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            _ => None,
        };
        if let Some(b) = simple {
            decoded.push(b);
            offsets.push(start);
            i += 2;
            continue;
        }
        // \uXXXX, possibly a surrogate pair.
        let hex = |at: usize| -> Option<u32> {
            let h = raw.get(at..at + 4)?;
            u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
        };
        let mut code = hex(i + 2).unwrap_or(0xFFFD);
        i += 6;
        if (0xD800..0xDC00).contains(&code) && raw.get(i..i + 2) == Some(b"\\u") {
            if let Some(low) = hex(i + 2).filter(|l| (0xDC00..0xE000).contains(l)) {
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            }
        }
        let ch = char::from_u32(code).unwrap_or('\u{FFFD}');
        let mut buf = [0u8; 4];
        for &b in ch.encode_utf8(&mut buf).as_bytes() {
            decoded.push(b);
            offsets.push(start);
        }
    }
    offsets.push(raw.len());
}

/// Appends `text` to `out` as JSON string content (without quotes).
pub fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
}

/// Member names whose string value is a secret whatever it looks like
/// (compared without case, `_` and `-`, as a suffix: `db_password`).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "apikey",
    "token",
    "privatekey",
    "secretkey",
    "accesskey",
    "passphrase",
    "credentials",
    "authorization",
];

/// The raw offset just after the source of decoded byte `end - 1`.
pub(crate) fn end_offset(raw: &[u8], offsets: &[usize], end: usize) -> usize {
    let last = offsets[end - 1];
    if raw[last] != b'\\' {
        return last + 1;
    }
    // An escape: find where it ends (the next decoded byte's source, or for
    // the final byte, the end of the escape sequence).
    offsets[end..]
        .iter()
        .copied()
        .find(|&o| o > last)
        .unwrap_or(raw.len())
}

/// Whether a member name says its value is an AWS secret access key.
pub(crate) fn is_aws_secret_key(key: &[u8]) -> bool {
    let norm: Vec<u8> = key
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase)
        .collect();
    norm.windows(15).any(|w| w == b"secretaccesskey") || norm.starts_with(b"awssecret")
}

pub(crate) fn is_secret_key(key: &[u8]) -> bool {
    let mut norm = [0u8; 64];
    let mut n = 0;
    for &b in key {
        if b == b'_' || b == b'-' || b == b' ' {
            continue;
        }
        if n == norm.len() {
            return false;
        }
        norm[n] = b.to_ascii_lowercase();
        n += 1;
    }
    let norm = &norm[..n];
    SECRET_KEYS.iter().any(|k| norm.ends_with(k.as_bytes()))
}

pub(crate) fn is_secret_value(value: &[u8]) -> bool {
    // Passwords may hold any punctuation; only whole-value templates and
    // sample words mark a placeholder here.
    value.len() >= 6
        && !super::checks::is_template(value)
        && !super::checks::has_placeholder_word(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(json: &str) -> Result<Vec<(String, Option<String>)>, InvalidJson> {
        let mut found = Vec::new();
        walk(json.as_bytes(), |leaf, key| {
            let range = match &leaf {
                Leaf::String { range, .. } | Leaf::Number { range } => range.clone(),
            };
            found.push((json[range].to_string(), key.map(|k| json[k].to_string())));
        })?;
        Ok(found)
    }

    #[test]
    fn reports_leaves_with_their_member_names() {
        let got = leaves(r#" {"a": "x", "b": [1, {"c": -2.5e3}], "d": {}, "e": [], "f": null} "#)
            .unwrap();
        let want: Vec<(String, Option<String>)> = vec![
            ("a".into(), None),
            ("x".into(), Some("a".into())),
            ("b".into(), None),
            ("1".into(), Some("b".into())),
            ("c".into(), None),
            ("-2.5e3".into(), Some("c".into())),
            ("d".into(), None),
            ("e".into(), None),
            ("f".into(), None),
        ];
        assert_eq!(got, want);
        assert_eq!(
            leaves(r#""alone""#).unwrap(),
            vec![("alone".to_string(), None)]
        );
    }

    #[test]
    fn rejects_invalid_documents() {
        for bad in [
            "",
            "{",
            "}",
            "[1,]",
            "{\"a\" 1}",
            "{\"a\":}",
            "01",
            "1.",
            "\"\\x\"",
            "\"a\nb\"",
            "[1] 2",
            "{'a':1}",
            "tru",
            "nul",
            "[\"\\u12\"]",
        ] {
            assert_eq!(leaves(bad), Err(InvalidJson), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(leaves(&deep), Err(InvalidJson));
    }

    #[test]
    fn unescape_maps_back_to_raw_positions() {
        let raw = br#"a\"b\u00e9\ud83d\ude00c"#;
        let (mut decoded, mut offsets) = (Vec::new(), Vec::new());
        unescape(raw, &mut decoded, &mut offsets);
        assert_eq!(std::str::from_utf8(&decoded).unwrap(), "a\"bé😀c");
        assert_eq!(offsets.len(), decoded.len() + 1);
        assert_eq!(offsets[1], 1);
        assert_eq!(offsets[decoded.len() - 1], raw.len() - 1);
        let mut out = Vec::new();
        escape_into("q\"\\\n\u{1}".as_bytes(), &mut out);
        assert_eq!(out, br#"q\"\\\n\u0001"#);
    }
}
