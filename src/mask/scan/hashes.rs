//! Password hashes and verifiers: the shapes servers and applications store
//! credentials in.
//!
//! The scanner reaches these through its cheap passes: a `$` found
//! by the punctuation memchr (crypt(3) formats, SCRAM, Django, MySQL's
//! caching_sha2), a digit-bearing word (PostgreSQL's `md5` + 32 hex, MySQL's
//! `*` + 40 hex, and LDAP's `{SSHA}` + base64 after its `}`). Each function here confirms one candidate by its exact layout
//! and returns the span to mask.
//!
//! A bare hex digest (a file's sha256 in a `checksum` column, a git commit
//! id, an ETag) is never a finding: nothing tells an unsalted hash of a
//! password from a hash of content, and masking every digest would hide the
//! identifiers agents join on. Only formats that say what they are — a
//! scheme prefix or tag — are reported.

/// The alphabet of crypt(3) salts and hashes.
fn is_crypt64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'/'
}

/// Standard base64 with its padding.
fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

fn run(text: &[u8], from: usize, ok: fn(u8) -> bool) -> usize {
    from + text
        .get(from..)
        .map_or(0, |t| t.iter().take_while(|&&b| ok(b)).count())
}

/// `end` moved back over separators a field list may end with
/// (`…,p=4$salt$hash,` in running text).
fn trim_separators(text: &[u8], from: usize, mut end: usize) -> usize {
    while end > from && matches!(text[end - 1], b',' | b'-' | b'$') {
        end -= 1;
    }
    end
}

fn ends_token(text: &[u8], at: usize) -> bool {
    text.get(at).is_none_or(|b| !b.is_ascii_alphanumeric())
}

/// A hash whose scheme word or `$` is at `dollar`: the span to mask.
pub(super) fn at_dollar(text: &[u8], dollar: usize) -> Option<(usize, usize)> {
    // A scheme name written before the `$`: SCRAM, Django.
    let mut s = dollar;
    while s > 0 && (text[s - 1].is_ascii_alphanumeric() || matches!(text[s - 1], b'-' | b'_')) {
        s -= 1;
    }
    if s < dollar {
        let word = &text[s..dollar];
        if s > 0 && text[s - 1].is_ascii_alphanumeric() {
            return None;
        }
        if word == b"SCRAM-SHA-256" || word == b"SCRAM-SHA-1" {
            return scram(text, dollar).map(|end| (s, end));
        }
        if DJANGO.contains(&word) {
            return django(text, dollar).map(|end| (s, end));
        }
        return None;
    }
    // `{CRYPT}$6$…`: LDAP's wrapper belongs to the hash.
    let (start, end) = modular_crypt(text, dollar)?;
    let wrapped = start >= 7 && text[start - 7..start].eq_ignore_ascii_case(b"{CRYPT}");
    Some((if wrapped { start - 7 } else { start }, end))
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as in
/// `pg_authid.rolpassword`.
fn scram(text: &[u8], dollar: usize) -> Option<usize> {
    let iter_end = run(text, dollar + 1, |b| b.is_ascii_digit());
    if iter_end == dollar + 1 || text.get(iter_end) != Some(&b':') {
        return None;
    }
    let salt_end = run(text, iter_end + 1, is_b64);
    if salt_end - iter_end < 9 || text.get(salt_end) != Some(&b'$') {
        return None;
    }
    let stored_end = run(text, salt_end + 1, is_b64);
    if stored_end - salt_end < 21 || text.get(stored_end) != Some(&b':') {
        return None;
    }
    let server_end = run(text, stored_end + 1, is_b64);
    (server_end - stored_end >= 21 && ends_token(text, server_end)).then_some(server_end)
}

/// The algorithm names Django (and passlib's Django handlers) write before
/// the first `$`.
const DJANGO: &[&[u8]] = &[
    b"pbkdf2_sha256",
    b"pbkdf2_sha1",
    b"argon2",
    b"bcrypt_sha256",
    b"bcrypt",
    b"scrypt",
    b"sha1",
    b"md5",
    b"unsalted_sha1",
    b"crypt",
];

/// `<algorithm>$<params…>$<salt>$<hash>`: `$`-separated fields ending in a
/// hash of at least 20 characters.
fn django(text: &[u8], dollar: usize) -> Option<usize> {
    let end = run(text, dollar, |b| {
        is_crypt64(b) || matches!(b, b'$' | b'+' | b'=' | b',' | b'-')
    });
    let end = trim_separators(text, dollar, end);
    let body = &text[dollar..end];
    let fields = body.iter().filter(|&&b| b == b'$').count();
    let last = body.rsplit(|&b| b == b'$').next()?;
    (fields >= 2 && last.len() >= 20 && ends_token(text, end) && mixed(last)).then_some(end)
}

/// crypt(3) and PHC strings that open with `$id$`, and MySQL's
/// caching_sha2 `$A$005$…`.
fn modular_crypt(text: &[u8], start: usize) -> Option<(usize, usize)> {
    if start > 0 && (text[start - 1].is_ascii_alphanumeric() || text[start - 1] == b'$') {
        return None;
    }
    let id_end = run(text, start + 1, |b| b.is_ascii_alphanumeric() || b == b'-');
    if text.get(id_end) != Some(&b'$') {
        return None;
    }
    let id = &text[start + 1..id_end];
    let body = id_end + 1;
    let end = match id {
        b"2a" | b"2b" | b"2y" | b"2x" => {
            // bcrypt: two cost digits, then 22 characters of salt and 31 of
            // hash.
            let cost = text.get(body..body + 3)?;
            if !(cost[0].is_ascii_digit() && cost[1].is_ascii_digit() && cost[2] == b'$') {
                return None;
            }
            let end = run(text, body + 3, is_crypt64);
            (end - (body + 3) == 53).then_some(end)?
        }
        b"5" | b"6" | b"1" | b"apr1" | b"md5" => {
            let mut at = body;
            if text[at..].starts_with(b"rounds=") {
                at = run(text, at + 7, |b| b.is_ascii_digit());
                if text.get(at) != Some(&b'$') {
                    return None;
                }
                at += 1;
            }
            let salt_end = run(text, at, is_crypt64);
            if salt_end == at || salt_end - at > 16 || text.get(salt_end) != Some(&b'$') {
                return None;
            }
            let end = run(text, salt_end + 1, is_crypt64);
            let want: &[usize] = match id {
                b"5" => &[43],
                b"6" => &[86],
                _ => &[22],
            };
            want.contains(&(end - salt_end - 1)).then_some(end)?
        }
        b"A" => return caching_sha2(text, start, body),
        b"argon2id" | b"argon2i" | b"argon2d" | b"scrypt" | b"7" | b"y" | b"gy" | b"pbkdf2"
        | b"pbkdf2-sha256" | b"pbkdf2-sha512" | b"pbkdf2-sha1" | b"sha1" => {
            let end = run(text, body, |b| {
                is_crypt64(b) || matches!(b, b'$' | b'+' | b'=' | b',' | b'-')
            });
            let end = trim_separators(text, body, end);
            let last = text[body..end].rsplit(|&b| b == b'$').next()?;
            (last.len() >= 16 && mixed(last)).then_some(end)?
        }
        _ => return None,
    };
    ends_token(text, end).then_some((start, end))
}

/// MySQL's caching_sha2_password: `$A$` + three digits of rounds + `$`,
/// 20 bytes of salt that may be any 7-bit byte but NUL and `$`, then 43
/// characters of hash. A salt that is not text cannot be bounded by its
/// alphabet, so when the layout does not check out the rest of the value
/// is masked.
fn caching_sha2(text: &[u8], start: usize, body: usize) -> Option<(usize, usize)> {
    let rounds = text.get(body..body + 4)?;
    if !(rounds[..3].iter().all(u8::is_ascii_digit) && rounds[3] == b'$') {
        return None;
    }
    let salt = body + 4;
    let hash = salt + 20;
    let end = hash + 43;
    let exact = text
        .get(hash..end)
        .is_some_and(|h| h.iter().all(|&b| is_crypt64(b)))
        && ends_token(text, end);
    Some((start, if exact { end } else { text.len() }))
}

/// PostgreSQL's `md5` + 32 lower-case hex digits, the word at `ws`.
pub(super) fn postgres_md5(word: &[u8]) -> bool {
    word.len() == 35
        && word.starts_with(b"md5")
        && word[3..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// MySQL's native password, `*` + 40 upper-case hex digits: the word at
/// `ws`, with `*` before it.
pub(super) fn mysql_native(text: &[u8], ws: usize, word_end: usize) -> bool {
    ws >= 1
        && text[ws - 1] == b'*'
        && (ws == 1 || !text[ws - 2].is_ascii_alphanumeric())
        && word_end - ws == 40
        && text[ws..word_end]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
}

/// LDAP's `{SCHEME}base64` around the base64 word at `ws`: back over
/// base64 characters to the `}`, then to its `{`.
pub(super) fn ldap_around(text: &[u8], ws: usize) -> Option<(usize, usize)> {
    let mut b = ws;
    while b > 0
        && ws - b < 96
        && matches!(text[b - 1], b'+' | b'/' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z')
    {
        b -= 1;
    }
    if b == 0 || text[b - 1] != b'}' {
        return None;
    }
    let from = b.saturating_sub(18);
    let brace = from + text[from..b].iter().rposition(|&c| c == b'{')?;
    ldap(text, brace)
}

/// LDAP's `{SCHEME}base64`, the `{` at `start`. `{CRYPT}` before a crypt(3)
/// hash is taken in by [`at_dollar`].
pub(super) fn ldap(text: &[u8], start: usize) -> Option<(usize, usize)> {
    const SCHEMES: &[&[u8]] = &[
        b"SHA",
        b"SSHA",
        b"SHA256",
        b"SSHA256",
        b"SHA384",
        b"SSHA384",
        b"SHA512",
        b"SSHA512",
        b"MD5",
        b"SMD5",
        b"CRYPT",
        b"PBKDF2",
        b"PBKDF2-SHA256",
        b"PBKDF2-SHA512",
        b"PBKDF2-SHA1",
        b"ARGON2",
    ];
    // Most `{` open JSON objects and templates: the next byte tells.
    if !matches!(
        text.get(start + 1).map(u8::to_ascii_uppercase),
        Some(b'S' | b'M' | b'C' | b'P' | b'A')
    ) {
        return None;
    }
    let close = start + 1 + text[start + 1..].iter().take(16).position(|&b| b == b'}')?;
    let scheme = &text[start + 1..close];
    if !SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return None;
    }
    let body = close + 1;
    let crypt_like = scheme.eq_ignore_ascii_case(b"CRYPT")
        || scheme.eq_ignore_ascii_case(b"ARGON2")
        || scheme.len() >= 6 && scheme[..6].eq_ignore_ascii_case(b"PBKDF2");
    let end = if crypt_like {
        run(text, body, |b| {
            is_crypt64(b) || matches!(b, b'$' | b'+' | b'=' | b',' | b'-')
        })
    } else {
        run(text, body, is_b64)
    };
    let end = trim_separators(text, body, end);
    (end - body >= 13 && ends_token(text, end)).then_some((start, end))
}

/// At least two of upper case, lower case and digits: what an encoded
/// hash is like and a word is not.
fn mixed(s: &[u8]) -> bool {
    let upper = s.iter().any(u8::is_ascii_uppercase);
    let lower = s.iter().any(u8::is_ascii_lowercase);
    let digit = s.iter().any(u8::is_ascii_digit);
    usize::from(upper) + usize::from(lower) + usize::from(digit) >= 2
}
