//! The scanner: finds sensitive values in a byte string.
//!
//! Speed comes from never running a detector where it cannot match. A value
//! is looked at in these passes:
//!
//! 1. one exact-case Aho-Corasick pass over literal markers: vendor
//!    prefixes of secrets, `eyJ` for JWTs, `-----BEGIN` for keys, and the
//!    hot words that make a 40-character string an AWS secret key (exact
//!    case keeps the automaton on its SIMD prefilter);
//! 2. one memchr pass for `@` (email), `:` (credentials in URLs) and `$`
//!    (password hashes), and one for `:` looking for IPv6 addresses;
//! 3. one pass for digits (eight bytes at a time); each word that holds a
//!    digit is handed to the numeric detectors, longest reading first, and
//!    a long one that none of them claims to the decoder (`encoded`), which
//!    scans what a base64 or hex run decodes to when that is text.
//!
//! Each candidate is then confirmed by its validator (check digits, issuer
//! tables, entropy, a decoded JWT header, a real top-level domain…), so that
//! look-alikes are not flagged. Word boundaries are ASCII: a letter or digit
//! on either side of a number means it is part of a longer token. Overlaps
//! are resolved by [`Kind`] priority. A value with no candidate costs the
//! passes and nothing else: no allocation, no regex (regular expressions
//! run only inside phone-number validation).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use phonenumber::country::Id as Region;

use super::checks;
use super::json::{self, InvalidJson, Leaf};
use super::kind::{Detectors, Finding, Kind};
use super::tld;

mod encoded;
mod fold;
mod hashes;
mod person;
mod phones;
mod spaced;
mod words;

pub(super) use fold::fold as fold_to_ascii;
pub use phones::{lend as lend_phone_memo, Lent as LentPhoneMemo, Memo as PhoneMemo};
use words::alnum_len;

/// What a literal marker found by the first pass leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    AwsKeyId,
    AwsSecretHint,
    Github,
    GithubPat,
    Slack,
    SlackWebhook,
    Stripe,
    Gitlab,
    Google,
    OpenaiInfix,
    Anthropic,
    Npm,
    Pypi,
    Jwt,
    Pem,
    /// `at` written out for `@` (`jane at example dot com`, `jane [at]
    /// example.com`).
    SpokenAt,
}

const MARKERS: &[(&str, Marker)] = &[
    ("AKIA", Marker::AwsKeyId),
    ("ASIA", Marker::AwsKeyId),
    ("ABIA", Marker::AwsKeyId),
    ("ACCA", Marker::AwsKeyId),
    ("A3T", Marker::AwsKeyId),
    // Matching is exact-case (it keeps the automaton on its fast SIMD
    // path), so the hot words are listed in the spellings people use.
    ("aws_secret", Marker::AwsSecretHint),
    ("AWS_SECRET", Marker::AwsSecretHint),
    ("Aws_Secret", Marker::AwsSecretHint),
    ("aws secret", Marker::AwsSecretHint),
    ("AWS secret", Marker::AwsSecretHint),
    ("AWS Secret", Marker::AwsSecretHint),
    ("AWS SECRET", Marker::AwsSecretHint),
    ("secret_access_key", Marker::AwsSecretHint),
    ("SECRET_ACCESS_KEY", Marker::AwsSecretHint),
    ("secretaccesskey", Marker::AwsSecretHint),
    ("SecretAccessKey", Marker::AwsSecretHint),
    ("secretAccessKey", Marker::AwsSecretHint),
    ("SECRETACCESSKEY", Marker::AwsSecretHint),
    ("secret access key", Marker::AwsSecretHint),
    ("Secret Access Key", Marker::AwsSecretHint),
    ("Secret access key", Marker::AwsSecretHint),
    ("secret-access-key", Marker::AwsSecretHint),
    ("ghp_", Marker::Github),
    ("gho_", Marker::Github),
    ("ghu_", Marker::Github),
    ("ghs_", Marker::Github),
    ("ghr_", Marker::Github),
    ("github_pat_", Marker::GithubPat),
    ("xoxb-", Marker::Slack),
    ("xoxp-", Marker::Slack),
    ("xoxa-", Marker::Slack),
    ("xoxr-", Marker::Slack),
    ("xoxs-", Marker::Slack),
    ("xoxe-", Marker::Slack),
    ("hooks.slack.com/", Marker::SlackWebhook),
    ("sk_live_", Marker::Stripe),
    ("rk_live_", Marker::Stripe),
    ("sk_test_", Marker::Stripe),
    ("rk_test_", Marker::Stripe),
    ("glpat-", Marker::Gitlab),
    ("AIza", Marker::Google),
    ("T3BlbkFJ", Marker::OpenaiInfix),
    ("sk-ant-", Marker::Anthropic),
    ("npm_", Marker::Npm),
    ("pypi-AgEI", Marker::Pypi),
    ("eyJ", Marker::Jwt),
    ("-----BEGIN", Marker::Pem),
    (" at ", Marker::SpokenAt),
    (" AT ", Marker::SpokenAt),
    ("(at)", Marker::SpokenAt),
    ("[at]", Marker::SpokenAt),
    ("{at}", Marker::SpokenAt),
    ("<at>", Marker::SpokenAt),
    ("(AT)", Marker::SpokenAt),
    ("[AT]", Marker::SpokenAt),
];

/// Finds sensitive values. Build one per policy and share it: scanning
/// takes `&self` and keeps no state between calls.
#[derive(Debug)]
pub struct Scanner {
    detectors: Detectors,
    markers: AhoCorasick,
    regions: Vec<phones::National>,
    /// Whether any detector reads words with digits (the digit pass runs
    /// regardless, for encoded runs).
    numeric: bool,
}

/// How many encodings deep a value is decoded: base64 of hex of an email is
/// found, a value encoded three times over is not.
const MAX_DECODE_DEPTH: u8 = 2;

/// The longest cell in other forms read as a national phone number: 24
/// characters of three bytes each (fullwidth), and room for a few that
/// show nothing.
const NATIONAL_CELL_BYTES: usize = 96;

/// The phone metadata's patterns are compiled on demand into one shared
/// cache of 100 regexes; validating numbers against a dozen regions cycles
/// through more than that, so every check recompiled patterns under the
/// cache's lock and sessions queued behind each other. With room for all
/// of them each pattern is compiled once.
fn enlarge_phone_regex_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cache = phonenumber::metadata::DATABASE.cache();
        *cache.lock().unwrap_or_else(|e| e.into_inner()) = regex_cache::RegexCache::new(16_384);
    });
}

/// Regions whose national phone formats are tried for numbers written
/// without a country code: those of the locales Airlock is tested with.
const DEFAULT_REGIONS: &[Region] = &[
    Region::US,
    Region::GB,
    Region::DE,
    Region::FR,
    Region::ES,
    Region::IT,
    Region::NL,
    Region::PL,
    Region::BR,
    Region::SE,
    Region::FI,
    Region::IN,
];

impl Scanner {
    pub fn new(detectors: &Detectors) -> Scanner {
        enlarge_phone_regex_cache();
        if detectors.contains(Kind::Person) {
            person::warm();
        }
        let markers = AhoCorasickBuilder::new()
            .ascii_case_insensitive(false)
            .match_kind(MatchKind::LeftmostFirst)
            .build(MARKERS.iter().map(|(text, _)| text))
            .expect("literal markers build");
        let numeric = [
            Kind::Card,
            Kind::Iban,
            Kind::UsSsn,
            Kind::Phone,
            Kind::Ipv4,
            Kind::PasswordHash,
        ]
        .into_iter()
        .chain(Kind::NATIONAL_IDS)
        .any(|k| detectors.contains(k));
        Scanner {
            detectors: *detectors,
            markers,
            regions: DEFAULT_REGIONS
                .iter()
                .map(|&r| phones::National::new(r))
                .collect(),
            numeric,
        }
    }

    pub fn detectors(&self) -> Detectors {
        self.detectors
    }

    fn on(&self, kind: Kind) -> bool {
        self.detectors.contains(kind)
    }

    /// Finds every sensitive value in `text`. `out` is cleared first and
    /// holds the findings sorted by position, without overlaps.
    pub fn scan(&self, text: &[u8], out: &mut Vec<Finding>) {
        out.clear();
        self.scan_into(text, 0, out);
        resolve_overlaps(out);
    }

    /// Appends the findings of `text` to `out` with offsets moved by
    /// `base`, without resolving overlaps (the caller does, once).
    pub(crate) fn scan_into(&self, text: &[u8], base: usize, out: &mut Vec<Finding>) {
        self.scan_layer(text, base, out, 0);
    }

    /// [`Scanner::scan_into`] on text that was decoded `depth` times.
    fn scan_layer(&self, text: &[u8], base: usize, out: &mut Vec<Finding>, depth: u8) {
        let first = out.len();
        // Names are short ("Bo Li"): they are looked for below the others'
        // minimum length.
        if self.on(Kind::Person) {
            person::scan(text, out);
        }
        if text.len() < 6 || self.detectors.is_empty() {
            return self.shift(out, first, base);
        }
        self.scan_markers(text, out);
        // The digit pass runs whatever the detectors: it also hands
        // encoded runs to the decoder.
        self.scan_digits(text, out, depth);
        self.scan_padded_runs(text, out, depth);
        self.scan_punctuation(text, out);
        if depth < MAX_DECODE_DEPTH {
            // Nearly every value is ASCII: one check, no call.
            if !text.is_ascii() {
                self.scan_folded(text, out, depth);
            }
            self.scan_spaced(text, out, depth);
        }
        self.shift(out, first, base);
    }

    /// Values spelled out a character at a time with one separator
    /// (`j a n e @ e x a m p l e . c o m`, see [`spaced`]): read without
    /// the separators, and what is found there masks the run. Out of line,
    /// as it was measured (benches/RESULTS.md, "Respelled values").
    #[inline(never)]
    fn scan_spaced(&self, text: &[u8], out: &mut Vec<Finding>, depth: u8) {
        let mut inner = Vec::new();
        spaced::spaced_runs(text, |run| self.scan_reading(&run, &mut inner, out, depth));
    }

    /// Values written in characters that stand for ASCII: fullwidth forms
    /// (`０３－１２３４－５６７８`), other scripts' digits (`٠٥٠١٢٣٤٥٦٧`),
    /// no-break spaces and dashes other than `-` (see [`fold`]). The text
    /// is read as that ASCII, and what is found there masks the original
    /// bytes.
    fn scan_folded(&self, text: &[u8], out: &mut Vec<Finding>, depth: u8) {
        let mut inner = Vec::new();
        fold::fold_windows(text, |folded| {
            self.scan_reading(&folded, &mut inner, out, depth)
        });
    }

    /// Scans a reading of the text one layer down and adds what it finds
    /// to `out` at the original bytes it came from.
    fn scan_reading(
        &self,
        reading: &fold::Folded,
        inner: &mut Vec<Finding>,
        out: &mut Vec<Finding>,
        depth: u8,
    ) {
        inner.clear();
        self.scan_layer(&reading.text, 0, inner, depth + 1);
        out.extend(inner.iter().map(|f| Finding {
            kind: f.kind,
            start: reading.origin[f.start],
            end: reading.origin[f.end],
        }));
    }

    fn shift(&self, out: &mut [Finding], first: usize, base: usize) {
        if base != 0 {
            for f in &mut out[first..] {
                f.start += base;
                f.end += base;
            }
        }
    }

    /// Finds every sensitive value in the string and number leaves of a
    /// JSON document, with offsets into the raw text (a value inside an
    /// escaped string maps back through its escapes). With
    /// [`Kind::JsonSecret`] enabled, the string under a member name such as
    /// `password` is a finding whatever it looks like.
    pub fn scan_json(&self, doc: &[u8], out: &mut Vec<Finding>) -> Result<(), InvalidJson> {
        out.clear();
        let (mut decoded, mut offsets, mut inner) = (Vec::new(), Vec::new(), Vec::new());
        json::walk(doc, |leaf, key| {
            let (range, escaped, is_value) = match &leaf {
                Leaf::String {
                    range,
                    escaped,
                    is_key,
                } => (range.clone(), *escaped, !is_key),
                Leaf::Number { range } => (range.clone(), false, true),
            };
            let raw = &doc[range.clone()];
            let before = out.len();
            if !escaped {
                self.scan_into(raw, range.start, out);
            } else {
                json::unescape(raw, &mut decoded, &mut offsets);
                inner.clear();
                self.scan_into(&decoded, 0, &mut inner);
                for f in &inner {
                    let start = range.start + offsets[f.start];
                    let end = range.start + json::end_offset(raw, &offsets, f.end);
                    out.push(Finding {
                        kind: f.kind,
                        start,
                        end,
                    });
                }
            }
            if out.len() == before && is_value {
                let key = key.map(|k| &doc[k]);
                if let Some(kind) = self.secret_under_key(key, raw) {
                    out.push(Finding {
                        kind,
                        start: range.start,
                        end: range.end,
                    });
                }
            }
        })?;
        resolve_overlaps(out);
        Ok(())
    }

    /// The kind of a JSON value no detector recognised, judged by the
    /// member name it sits under: an AWS secret key under
    /// `SecretAccessKey`, or (when enabled) any secret under `password`,
    /// `api_key`, `token`…
    pub(crate) fn secret_under_key(&self, key: Option<&[u8]>, value: &[u8]) -> Option<Kind> {
        let key = key?;
        if self.on(Kind::AwsSecretKey) && json::is_aws_secret_key(key) && value.len() == 40 {
            let is_key_char = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
            if value.iter().all(is_key_char) && plausible_secret(value, 4.0) {
                return Some(Kind::AwsSecretKey);
            }
        }
        (self.on(Kind::JsonSecret) && json::is_secret_key(key) && json::is_secret_value(value))
            .then_some(Kind::JsonSecret)
    }

    // ---- pass 1: literal markers ------------------------------------------

    fn scan_markers(&self, text: &[u8], out: &mut Vec<Finding>) {
        let mut resume = 0;
        for m in self.markers.find_iter(text) {
            if m.start() < resume {
                continue;
            }
            let marker = MARKERS[m.pattern().as_usize()].1;
            let found = match marker {
                Marker::Pem => self.private_key(text, m.start()),
                Marker::Jwt => self.jwt(text, m.start()),
                Marker::SpokenAt => self.spoken_email(text, m.start(), m.end()),
                Marker::AwsKeyId => self.aws_key_id(text, m.start(), out),
                Marker::AwsSecretHint => self.aws_secret_after(text, m.end(), 120),
                Marker::OpenaiInfix => self.openai(text, m.start()),
                _ => self.prefixed_token(marker, text, m.start(), m.end()),
            };
            if let Some(f) = found {
                resume = f.end;
                out.push(f);
            }
        }
    }

    fn email(&self, text: &[u8], at: usize) -> Option<Finding> {
        if !self.on(Kind::Email) {
            return None;
        }
        let is_local =
            |b: u8| b.is_ascii_alphanumeric() || b >= 0x80 || b"!#$%&'*+/=?^_`{|}~.-".contains(&b);
        let mut start = at;
        while start > 0 && is_local(text[start - 1]) && at - start < 64 {
            start -= 1;
        }
        // Quotes and symbols are legal in a local part but in running text
        // they are usually punctuation around the address: 'jane@x.org'.
        while start < at
            && !(text[start].is_ascii_alphanumeric() || text[start] == b'_' || text[start] >= 0x80)
        {
            start += 1;
        }
        if start == at {
            return None;
        }
        // An internationalised domain (`exämple.de`) has non-ASCII letters
        // in its labels; when that reading fails (`jane@x.org」`), the
        // ASCII one is tried.
        let Some(end) =
            email_domain_end(text, at, true).or_else(|| email_domain_end(text, at, false))
        else {
            return reversed_email(text, at);
        };
        Some(Finding {
            kind: Kind::Email,
            start,
            end,
        })
    }

    /// An address with `at` and `dot` written out (`jane at example dot
    /// com`, `jane(at)example(dot)com`, `jane [at] example.com`): the
    /// word before `at` as its local part, then labels joined by dots or
    /// `dot` words, ending in a real top-level domain.
    fn spoken_email(&self, text: &[u8], at: usize, after: usize) -> Option<Finding> {
        if !self.on(Kind::Email) {
            return None;
        }
        let spaces = |mut i: usize, forward: bool| {
            for _ in 0..2 {
                match forward {
                    true if text.get(i) == Some(&b' ') => i += 1,
                    false if i > 0 && text[i - 1] == b' ' => i -= 1,
                    _ => break,
                }
            }
            i
        };
        let local_end = spaces(at + usize::from(text[at] == b' '), false);
        let is_local = |b: u8| b.is_ascii_alphanumeric() || b"._+-".contains(&b);
        let mut start = local_end;
        while start > 0 && is_local(text[start - 1]) && local_end - start < 64 {
            start -= 1;
        }
        while start < local_end && !text[start].is_ascii_alphanumeric() {
            start += 1;
        }
        // A local part with its dots written out too (`jane dot doe at …`):
        // where the word before a `dot` ending at `end` ends.
        let before_dot = |end: usize| {
            SPOKEN_DOTS[1..].iter().find_map(|dot| {
                let bracketed = dot[0] != b' ';
                let pad = usize::from(bracketed && text[..end].ends_with(b" "));
                let at = (end - pad).checked_sub(dot.len())?;
                text[at..]
                    .starts_with(dot)
                    .then(|| at - usize::from(bracketed && at > 0 && text[at - 1] == b' '))
            })
        };
        while let Some(word_end) = before_dot(start) {
            let mut word = word_end;
            while word > 0 && is_local(text[word - 1]) && word_end - word < 64 {
                word -= 1;
            }
            if word == word_end || !text[word].is_ascii_alphanumeric() {
                break;
            }
            start = word;
        }
        if start == local_end || (start > 0 && text[start - 1] >= 0x80) {
            return None;
        }
        let after = spaces(after - usize::from(text[after - 1] == b' '), true);
        let end = spoken_domain_end(text, after)?;
        Some(Finding {
            kind: Kind::Email,
            start,
            end,
        })
    }

    fn url_credentials(&self, text: &[u8], sep: usize) -> Option<Finding> {
        if !self.on(Kind::UrlCredentials) {
            return None;
        }
        // The scheme before `://` must be a real scheme name.
        let mut s = sep;
        while s > 0 && (text[s - 1].is_ascii_alphanumeric() || b"+.-".contains(&text[s - 1])) {
            s -= 1;
        }
        if s == sep || !text[s].is_ascii_alphabetic() {
            return None;
        }
        let auth_start = sep + 3;
        let mut auth_end = auth_start;
        let mut at = None;
        while auth_end < text.len() {
            let b = text[auth_end];
            if matches!(b, b'/' | b'?' | b'#') || b.is_ascii_whitespace() || b == b'"' || b == b'\''
            {
                break;
            }
            if b == b'@' {
                at = Some(auth_end);
            }
            auth_end += 1;
        }
        let at = at?;
        let colon = auth_start + text[auth_start..at].iter().position(|&b| b == b':')?;
        let password = &text[colon + 1..at];
        if password.is_empty() || checks::is_placeholder(password) {
            return None;
        }
        Some(Finding {
            kind: Kind::UrlCredentials,
            start: colon + 1,
            end: at,
        })
    }

    fn private_key(&self, text: &[u8], begin: usize) -> Option<Finding> {
        if !self.on(Kind::PrivateKey) {
            return None;
        }
        let header_end = begin + 10 + find(&text[begin + 10..], b"-----")? + 5;
        let label = &text[begin + 10..header_end - 5];
        if label.len() > 40 || find(label, b"PRIVATE KEY").is_none() {
            return None;
        }
        let end = match find(&text[header_end..], b"-----END") {
            Some(e) => {
                let end_marker = header_end + e + 8;
                match find(&text[end_marker..], b"-----") {
                    Some(close) if close <= 48 => end_marker + close + 5,
                    _ => text.len(),
                }
            }
            // A key cut short (a truncated column) is still a key.
            None => text.len(),
        };
        let body = &text[header_end..end];
        let base64_chars = body
            .iter()
            .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
            .count();
        if base64_chars < 40 {
            return None;
        }
        Some(Finding {
            kind: Kind::PrivateKey,
            start: begin,
            end,
        })
    }

    fn jwt(&self, text: &[u8], start: usize) -> Option<Finding> {
        if !self.on(Kind::Jwt) || !boundary_before(text, start) {
            return None;
        }
        let seg = |from: usize| from + text[from..].iter().take_while(|b| is_b64url(**b)).count();
        let header_end = seg(start);
        if header_end - start < 10 || text.get(header_end) != Some(&b'.') {
            return None;
        }
        let payload_end = seg(header_end + 1);
        if payload_end - header_end < 3 || text.get(payload_end) != Some(&b'.') {
            return None;
        }
        let end = seg(payload_end + 1);
        if end < text.len() && text[end].is_ascii_alphanumeric() {
            return None;
        }
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&text[start..header_end])
            .ok()?;
        let value: serde_json::Value = serde_json::from_slice(&header).ok()?;
        value.get("alg")?;
        Some(Finding {
            kind: Kind::Jwt,
            start,
            end,
        })
    }

    /// An AWS access key id; a secret key near it is looked for too.
    fn aws_key_id(&self, text: &[u8], start: usize, out: &mut Vec<Finding>) -> Option<Finding> {
        if !boundary_before(text, start) {
            return None;
        }
        let end = start + 20;
        let id = text.get(start..end)?;
        let body_ok = id[4..]
            .iter()
            .all(|&b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
        let prefix_ok = if &id[..3] == b"A3T" {
            id[3].is_ascii_uppercase() || id[3].is_ascii_digit()
        } else {
            id[..4].iter().all(u8::is_ascii_uppercase)
        };
        if !prefix_ok || !body_ok || !boundary_after(text, end) || checks::is_placeholder(id) {
            return None;
        }
        if checks::entropy(&id[4..]) < 2.5 {
            return None;
        }
        // The secret key usually sits right after the key id (a CSV line, a
        // credentials file); a secret before the id is found by its hot word.
        if let Some(secret) = self.aws_secret_after(text, end, 200) {
            out.push(secret);
        }
        self.on(Kind::AwsAccessKey).then_some(Finding {
            kind: Kind::AwsAccessKey,
            start,
            end,
        })
    }

    /// A 40-character AWS secret access key within `window` bytes of `from`.
    fn aws_secret_after(&self, text: &[u8], from: usize, window: usize) -> Option<Finding> {
        if !self.on(Kind::AwsSecretKey) {
            return None;
        }
        let limit = (from + window).min(text.len());
        let is_key = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        let mut i = from;
        while i < limit {
            if !is_key(text[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < text.len() && is_key(text[i]) {
                i += 1;
            }
            let token = &text[start..i];
            if token.len() == 40 && text.get(i) != Some(&b'=') && plausible_secret(token, 4.0) {
                return Some(Finding {
                    kind: Kind::AwsSecretKey,
                    start,
                    end: i,
                });
            }
        }
        None
    }

    fn openai(&self, text: &[u8], marker: usize) -> Option<Finding> {
        if !self.on(Kind::OpenaiKey) {
            return None;
        }
        let is_tok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        let mut start = marker;
        while start > 0 && is_tok(text[start - 1]) && marker - start < 200 {
            start -= 1;
        }
        if text.get(start..start + 3) != Some(b"sk-") {
            return None;
        }
        let mut end = marker + 8;
        while end < text.len() && is_tok(text[end]) {
            end += 1;
        }
        if end - start < 40 || checks::is_placeholder(&text[start..end]) {
            return None;
        }
        Some(Finding {
            kind: Kind::OpenaiKey,
            start,
            end,
        })
    }

    /// Secrets recognised by a vendor prefix and a fixed alphabet and length.
    fn prefixed_token(
        &self,
        marker: Marker,
        text: &[u8],
        start: usize,
        body: usize,
    ) -> Option<Finding> {
        // Prefixes are matched without regard to case by the first pass;
        // vendors issue them in lower case (Google's `AIza` excepted).
        let prefix = &text[start..body];
        let exact_case = match marker {
            Marker::Google => prefix == b"AIza",
            Marker::Pypi => prefix == b"pypi-AgEI",
            Marker::SlackWebhook => true,
            _ => prefix.iter().all(|b| !b.is_ascii_uppercase()),
        };
        if !exact_case || (marker != Marker::SlackWebhook && !boundary_before(text, start)) {
            return None;
        }
        let run = |from: usize, ok: fn(u8) -> bool| {
            from + text[from..].iter().take_while(|b| ok(**b)).count()
        };
        let (kind, end) = match marker {
            Marker::Github => {
                let end = run(body, |b| b.is_ascii_alphanumeric());
                let token = &text[body..end];
                // The checksum proves a token; a token typed or generated
                // without one is still a credential-shaped secret.
                if token.len() != 36 || !(github_checksum(token) || plausible_secret(token, 3.5)) {
                    return None;
                }
                (Kind::GithubToken, end)
            }
            Marker::GithubPat => {
                let end = run(body, |b| b.is_ascii_alphanumeric() || b == b'_');
                if !(70..=100).contains(&(end - body)) || !plausible_secret(&text[body..end], 3.5) {
                    return None;
                }
                (Kind::GithubToken, end)
            }
            Marker::Slack => {
                let end = run(body, |b| b.is_ascii_alphanumeric() || b == b'-');
                let token = &text[body..end];
                if token.len() < 20
                    || !token.iter().any(u8::is_ascii_digit)
                    || checks::is_placeholder(token)
                {
                    return None;
                }
                (Kind::SlackToken, end)
            }
            Marker::SlackWebhook => {
                let rest = &text[body..];
                if !rest.starts_with(b"services/") && !rest.starts_with(b"workflows/") {
                    return None;
                }
                let end = run(body, |b| b.is_ascii_alphanumeric() || b == b'/');
                if end - body < 30 {
                    return None;
                }
                (Kind::SlackToken, end)
            }
            Marker::Stripe => {
                let end = run(body, |b| b.is_ascii_alphanumeric());
                if !(16..=120).contains(&(end - body)) || !plausible_secret(&text[body..end], 3.0) {
                    return None;
                }
                (Kind::StripeKey, end)
            }
            Marker::Gitlab => {
                let end = run(body, |b| {
                    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
                });
                if !(20..=300).contains(&(end - body)) || !plausible_secret(&text[body..end], 3.0) {
                    return None;
                }
                (Kind::GitlabToken, end)
            }
            Marker::Google => {
                let end = run(body, |b| {
                    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
                });
                if end - body != 35 || !plausible_secret(&text[body..end], 3.0) {
                    return None;
                }
                (Kind::GoogleApiKey, end)
            }
            Marker::Anthropic => {
                let end = run(body, |b| {
                    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
                });
                if end - body < 32 || !plausible_secret(&text[body..end], 3.5) {
                    return None;
                }
                (Kind::AnthropicKey, end)
            }
            Marker::Npm => {
                let end = run(body, |b| b.is_ascii_alphanumeric());
                if end - body != 36 || !plausible_secret(&text[body..end], 3.5) {
                    return None;
                }
                (Kind::NpmToken, end)
            }
            Marker::Pypi => {
                let end = run(body, |b| {
                    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
                });
                if end - body < 50 || !text[body..].starts_with(b"cHlwaS5vcmc") {
                    return None;
                }
                (Kind::PypiToken, end)
            }
            _ => return None,
        };
        if !self.on(kind) || (end < text.len() && text[end].is_ascii_alphanumeric()) {
            return None;
        }
        Some(Finding { kind, start, end })
    }

    // ---- pass 2: digits ----------------------------------------------------

    fn scan_digits(&self, text: &[u8], out: &mut Vec<Finding>, depth: u8) {
        let mut i = 0;
        // Encoded runs already tried end here: each is decoded once.
        let mut decoded_to = 0;
        let mut base64_tried = [0, 0];
        while let Some(p) = find_digit(text, i) {
            let mut ws = p;
            while ws > i && text[ws - 1].is_ascii_alphanumeric() {
                ws -= 1;
            }
            if let Some(f) = self.numeric.then(|| self.numeric_at(text, ws)).flatten() {
                i = f.end;
                out.push(f);
                continue;
            }
            i = p + alnum_len(&text[p..]);
            if depth < MAX_DECODE_DEPTH && ws >= decoded_to && i - ws >= encoded::MIN_RUN / 2 {
                if let Some((rs, re, decoded)) =
                    encoded::decode_around(text, ws, i, &mut base64_tried)
                {
                    decoded_to = re;
                    if let Some(f) = self.inside_encoding(&decoded, rs, re, depth) {
                        out.push(f);
                        i = re;
                    }
                }
            }
        }
    }

    /// Padded base64 runs without a digit, which the digit pass never
    /// hands over (about one encoded value in fifteen of 16 characters):
    /// found from their `=` padding.
    fn scan_padded_runs(&self, text: &[u8], out: &mut Vec<Finding>, depth: u8) {
        if depth >= MAX_DECODE_DEPTH {
            return;
        }
        let is_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
        let mut done_to = 0;
        for at in memchr::memchr_iter(b'=', text) {
            if at < done_to || at == 0 || !is_char(text[at - 1]) {
                continue;
            }
            let mut rs = at;
            while rs > 0 && is_char(text[rs - 1]) {
                rs -= 1;
            }
            let run = &text[rs..at];
            // Runs with a digit were tried by the digit pass.
            if run.len() < encoded::MIN_RUN || run.iter().any(u8::is_ascii_digit) {
                continue;
            }
            let mut tried = [0, 0];
            if let Some((rs, re, decoded)) = encoded::decode_around(text, at - 1, at, &mut tried) {
                done_to = re;
                if let Some(f) = self.inside_encoding(&decoded, rs, re, depth) {
                    out.push(f);
                }
            }
        }
    }

    /// The finding an encoded run `rs..re` makes when its decoded text holds
    /// a value: the whole run, as the strongest kind found inside.
    fn inside_encoding(&self, decoded: &[u8], rs: usize, re: usize, depth: u8) -> Option<Finding> {
        let mut inner = Vec::new();
        self.scan_layer(decoded, 0, &mut inner, depth + 1);
        let kind = inner.iter().map(|f| f.kind).min()?;
        Some(Finding {
            kind,
            start: rs,
            end: re,
        })
    }

    /// The numeric value starting at word `ws`, if one is there.
    fn numeric_at(&self, text: &[u8], ws: usize) -> Option<Finding> {
        // The rest of a token of numbers (`83868641912-28773972837`,
        // `2024-05-03`): a word glued to a number before it by `-`, `_`,
        // `.` or `#` is a value only after a label of letters (see
        // `glued_to_label`, which this stands for and must follow), and a
        // digit before the glue is none.
        if ws >= 2
            && text[ws].is_ascii_digit()
            && matches!(text[ws - 1], b'-' | b'_' | b'.' | b'#')
            && text[ws - 2].is_ascii_digit()
        {
            return None;
        }
        // PostgreSQL's `md5…` and MySQL's `*…` password hashes are words
        // with digits; the first byte tells whether to look.
        // LDAP's `{SSHA}…` too, found from a digit in its base64 (one
        // hash in a hundred has none and is missed) at no pass of its own:
        // the word follows `}`, or `+` or `/` inside the base64.
        if self.on(Kind::PasswordHash) && ws > 0 && matches!(text[ws - 1], b'}' | b'+' | b'/') {
            if let Some(f) = self.password_hash(hashes::ldap_around(text, ws)) {
                return Some(f);
            }
        }
        if self.on(Kind::PasswordHash) && (text[ws] == b'm' || (ws > 0 && text[ws - 1] == b'*')) {
            let word_end = ws + alnum_len(&text[ws..]);
            if hashes::mysql_native(text, ws, word_end) {
                return self.password_hash(Some((ws - 1, word_end)));
            }
            if boundary_before(text, ws) && hashes::postgres_md5(&text[ws..word_end]) {
                return self.password_hash(Some((ws, word_end)));
            }
        }
        if text[ws].is_ascii_alphabetic() {
            return self.letter_led(text, ws);
        }
        // After `+` only a phone number can start; inside a longer token
        // (ORD-2024-…, a UUID's groups) nothing does.
        if ws > 0 && text[ws - 1] == b'+' {
            return self.phone(text, ws);
        }
        if joined_before(text, ws) {
            return self.glued_to_label(text, ws);
        }
        // Every other reading needs seven digits or more, but for an IPv4
        // address and a National Insurance number written in pairs
        // (`AB 12 34 56 C`): the short numbers of table data (quantities,
        // times, the parts of a date) end here.
        if !has_digits(text, ws, 7) {
            let nino = ws >= 3
                && text[ws - 1] == b' '
                && text[ws - 2].is_ascii_uppercase()
                && text[ws - 3].is_ascii_uppercase();
            let found = self.ipv4(text, ws).or_else(|| {
                nino.then(|| self.spaced_nino(text, &Chunk::read(text, ws)))
                    .flatten()
            });
            return found.filter(|f| self.on(f.kind));
        }
        let chunk = Chunk::read(text, ws);
        let found = self
            .fixed_formats(text, ws)
            .or_else(|| self.grouped_digits(text, &chunk))
            .or_else(|| self.ipv4(text, ws))
            .or_else(|| self.spaced_nino(text, &chunk))
            .or_else(|| self.phone(text, ws));
        found.filter(|f| self.on(f.kind))
    }

    /// A value glued to a word before it by `#`, `_`, `/`, `.` or `-`
    /// (`cc#4111…`, `user_4111…`, `SSN#536-22-8714`): only the kinds a
    /// checksum or a field name proves are taken from inside a token, so
    /// that order numbers and build ids (`ORD-2024-…`) stay whole.
    fn glued_to_label(&self, text: &[u8], ws: usize) -> Option<Finding> {
        let sep = ws - 1;
        let mut ls = sep;
        while ls > 0 && text[ls - 1].is_ascii_alphabetic() {
            ls -= 1;
        }
        // The label is one word of letters, standing on its own.
        if !(2..=16).contains(&(sep - ls)) || (ls > 0 && text[ls - 1].is_ascii_alphanumeric()) {
            return None;
        }
        let label = &text[ls..sep];
        if self.on(Kind::UsSsn)
            && SSN_WORDS
                .list
                .iter()
                .any(|w| w.as_bytes().eq_ignore_ascii_case(label))
        {
            let found = self
                .fixed_formats(text, ws)
                .filter(|f| f.kind == Kind::UsSsn);
            if found.is_some() {
                return found;
            }
        }
        if !self.on(Kind::Card) {
            return None;
        }
        let chunk = Chunk::read(text, ws);
        self.grouped_digits(text, &chunk)
            .filter(|f| f.kind == Kind::Card)
    }

    fn password_hash(&self, span: Option<(usize, usize)>) -> Option<Finding> {
        let (start, end) = span?;
        self.on(Kind::PasswordHash).then_some(Finding {
            kind: Kind::PasswordHash,
            start,
            end,
        })
    }

    /// Identifiers that start with letters: IBAN, codice fiscale, NIE, NINO.
    fn letter_led(&self, text: &[u8], ws: usize) -> Option<Finding> {
        let word_end = ws
            + text[ws..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
        let word = &text[ws..word_end];
        // IBANs are printed in capitals but typed in either case.
        if self.on(Kind::Iban)
            && word.len() >= 4
            && (word[..2].iter().all(u8::is_ascii_uppercase)
                || word[..2].iter().all(u8::is_ascii_lowercase))
            && word[2..4].iter().all(u8::is_ascii_digit)
        {
            if let Some(f) = iban_at(text, ws) {
                return Some(f);
            }
        }
        if self.on(Kind::ItFiscalCode) && word.len() == 16 && checks::it_fiscal_code(word) {
            return Some(Finding {
                kind: Kind::ItFiscalCode,
                start: ws,
                end: word_end,
            });
        }
        if self.on(Kind::EsNie) {
            if let Some(end) = nie_at(text, ws) {
                return Some(Finding {
                    kind: Kind::EsNie,
                    start: ws,
                    end,
                });
            }
        }
        if self.on(Kind::UkNino)
            && word.len() == 9
            && word[..2].iter().all(u8::is_ascii_uppercase)
            && word[2..8].iter().all(u8::is_ascii_digit)
            && checks::uk_nino([word[0], word[1]], word[8])
        {
            return Some(Finding {
                kind: Kind::UkNino,
                start: ws,
                end: word_end,
            });
        }
        None
    }

    /// Formats with fixed punctuation: SSN, CPF, HETU, personnummer, DNI.
    fn fixed_formats(&self, text: &[u8], ws: usize) -> Option<Finding> {
        // Each format opens with a fixed number of digits and then a
        // byte that is not one: the count rules out all but a few.
        let lead = text[ws..].iter().take_while(|b| b.is_ascii_digit()).count();
        // The leads below, and the Corsican NIR's six digits before `A`/`B`:
        // every other number is done with here.
        if !matches!(lead, 3 | 6 | 8 | 17 | 18) {
            return None;
        }
        let at = |pattern: &[u8]| {
            let pattern_lead = pattern.iter().take_while(|&&p| p == b'd').count();
            (pattern_lead == lead)
                .then(|| shape_at(text, ws, pattern))
                .flatten()
        };
        let digits_of = |end: usize| -> ([u8; 16], usize) {
            let mut buf = [0u8; 16];
            let mut n = 0;
            for &b in &text[ws..end] {
                if b.is_ascii_digit() && n < 16 {
                    buf[n] = b;
                    n += 1;
                }
            }
            (buf, n)
        };
        if self.on(Kind::UsSsn) {
            for shape in [&b"ddd-dd-dddd"[..], b"ddd dd dddd"] {
                if let Some(end) = at(shape) {
                    let (d, n) = digits_of(end);
                    if checks::us_ssn(&d[..n]) {
                        return Some(Finding {
                            kind: Kind::UsSsn,
                            start: ws,
                            end,
                        });
                    }
                }
            }
        }
        if self.on(Kind::BrCpf) {
            if let Some(end) = at(b"ddd.ddd.ddd-dd") {
                let (d, n) = digits_of(end);
                if checks::br_cpf(&d[..n]) {
                    return Some(Finding {
                        kind: Kind::BrCpf,
                        start: ws,
                        end,
                    });
                }
            }
        }
        if self.on(Kind::FiHetu)
            && lead == 6
            && text.len() >= ws + 11
            && checks::fi_hetu(&text[ws..ws + 11])
            && boundary_after(text, ws + 11)
        {
            return Some(Finding {
                kind: Kind::FiHetu,
                start: ws,
                end: ws + 11,
            });
        }
        if self.on(Kind::SePersonnummer) {
            for shape in [&b"dddddd-dddd"[..], b"dddddd+dddd", b"dddddddd-dddd"] {
                if let Some(end) = at(shape) {
                    let (d, n) = digits_of(end);
                    if checks::se_personnummer(&d[n - 10..n]) {
                        return Some(Finding {
                            kind: Kind::SePersonnummer,
                            start: ws,
                            end,
                        });
                    }
                }
            }
        }
        if self.on(Kind::EsDni) {
            for shape in [&b"ddddddddL"[..], b"dddddddd-L"] {
                if let Some(end) = at(shape) {
                    if checks::es_dni(&text[ws..ws + 8], text[end - 1]) {
                        return Some(Finding {
                            kind: Kind::EsDni,
                            start: ws,
                            end,
                        });
                    }
                }
            }
        }
        if self.on(Kind::KrRrn) {
            if let Some(end) = at(b"dddddd-ddddddd") {
                if checks::kr_rrn(&text[ws..end]) {
                    return Some(Finding {
                        kind: Kind::KrRrn,
                        start: ws,
                        end,
                    });
                }
            }
        }
        if self.on(Kind::CnResidentId) {
            let end = (at(b"dddddddddddddddddd"))
                .or_else(|| at(b"dddddddddddddddddX"))
                .or_else(|| at(b"dddddddddddddddddx"));
            if let Some(end) = end {
                if checks::cn_resident_id(&text[ws..end]) {
                    return Some(Finding {
                        kind: Kind::CnResidentId,
                        start: ws,
                        end,
                    });
                }
            }
        }
        if self.on(Kind::FrNir) {
            // Corsica: 2A/2B in the department digits make it letter-bearing.
            let word_end = ws
                + text[ws..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric())
                    .count();
            if word_end - ws == 15 && checks::fr_nir_corsica(&text[ws..word_end]) {
                return Some(Finding {
                    kind: Kind::FrNir,
                    start: ws,
                    end: word_end,
                });
            }
        }
        None
    }

    /// Numbers written as digit groups: cards, national ids, Aadhaar…
    /// Readings with more groups are tried first.
    fn grouped_digits(&self, text: &[u8], chunk: &Chunk) -> Option<Finding> {
        if !chunk.may_read_as_groups(text) {
            return None;
        }
        let mut digits = [0u8; GROUPED_DIGITS_AT_MOST];
        // How many leading groups are all digits with one kind of separator.
        let mut usable = 0;
        let mut len = 0;
        let mut lens = [0usize; MAX_GROUPS];
        for (g, &(s, e)) in chunk.groups[..chunk.n].iter().enumerate() {
            let word = &text[s..e];
            if !word.iter().all(u8::is_ascii_digit) || len + word.len() > digits.len() {
                break;
            }
            if g > 0 && chunk.seps[g - 1] != chunk.seps[0] {
                break;
            }
            digits[len..len + word.len()].copy_from_slice(word);
            len += word.len();
            lens[g] = word.len();
            usable = g + 1;
        }
        let mut counted = [0usize; MAX_GROUPS + 1];
        for g in 0..usable {
            counted[g + 1] = counted[g] + lens[g];
        }
        for k in (1..=usable).rev() {
            let n = counted[k];
            if n < 9 {
                break;
            }
            let d = &digits[..n];
            let groups = &lens[..k];
            let sep = if k > 1 { chunk.seps[0] } else { 0 };
            // `5092-4788-9804-564b…` is one token, not a number and a tail;
            // but a whole card number may carry an expiry or cents
            // (`4111111111111111/12/27`, `4111111111111111.00`).
            let tail = k < chunk.n && chunk.seps[k - 1] != b' ';
            if tail && !card_with_tail(text, chunk, k) {
                continue;
            }
            let end = chunk.groups[k - 1].1;
            let start = chunk.groups[0].0;
            if let Some(kind) = self.digit_groups_kind(text, start, d, groups, sep) {
                if tail && kind != Kind::Card {
                    continue;
                }
                return Some(Finding { kind, start, end });
            }
        }
        None
    }

    fn digit_groups_kind(
        &self,
        text: &[u8],
        start: usize,
        d: &[u8],
        groups: &[usize],
        sep: u8,
    ) -> Option<Kind> {
        let n = d.len();
        let single = groups.len() == 1;
        let spaced = sep == b' ' || sep == b'-';
        let grouped_as = |pattern: &[usize]| groups == pattern;
        if self.on(Kind::Card) && (12..=19).contains(&n) && (single || spaced || sep == b'.') {
            // `4111.1111.1111.1111` too, but no other dotted layout: those
            // are versions and amounts.
            let layout_ok = single
                || (sep == b'.' && grouped_as(&[4, 4, 4, 4]))
                || (sep != b'.'
                    && (groups[..groups.len() - 1].iter().all(|&g| g == 4)
                        || grouped_as(&[4, 6, 5])
                        || grouped_as(&[4, 6, 4])));
            if layout_ok
                && checks::card_issuer(d)
                && checks::luhn(d)
                && !checks::is_filler_digits(d)
            {
                return Some(Kind::Card);
            }
        }
        if self.on(Kind::FrNir)
            && n == 15
            && (single || grouped_as(&[1, 2, 2, 2, 3, 3, 2]))
            && checks::fr_nir(d)
        {
            return Some(Kind::FrNir);
        }
        // A bare run counts where the policy asks for bare runs of that
        // identifier, or after a word naming one.
        let bare = |kind: Kind| {
            self.detectors.takes_bare(kind) || has_context_word(text, start, &NATIONAL_ID_WORDS)
        };
        if n == 11 && single {
            if self.on(Kind::BrCpf) && checks::br_cpf(d) && bare(Kind::BrCpf) {
                return Some(Kind::BrCpf);
            }
            if self.on(Kind::PlPesel) && checks::pl_pesel(d) && bare(Kind::PlPesel) {
                return Some(Kind::PlPesel);
            }
        }
        if self.on(Kind::DeTaxId)
            && n == 11
            && (grouped_as(&[2, 3, 3, 3]) || (single && bare(Kind::DeTaxId)))
            && checks::de_tax_id(d)
        {
            return Some(Kind::DeTaxId);
        }
        if self.on(Kind::InAadhaar)
            && n == 12
            && ((spaced && grouped_as(&[4, 4, 4])) || (single && bare(Kind::InAadhaar)))
            && d[0] >= b'2'
            && checks::verhoeff(d)
            && !checks::is_filler_digits(d)
        {
            return Some(Kind::InAadhaar);
        }
        if self.on(Kind::SePersonnummer)
            && n == 12
            && single
            && (d[..2] == *b"19" || d[..2] == *b"20")
            && checks::se_personnummer(&d[2..])
            && bare(Kind::SePersonnummer)
        {
            return Some(Kind::SePersonnummer);
        }
        if n == 9 {
            if self.on(Kind::CaSin)
                && spaced
                && grouped_as(&[3, 3, 3])
                && !matches!(d[0], b'0' | b'8')
                && checks::luhn(d)
            {
                return Some(Kind::CaSin);
            }
            if single
                && self.on(Kind::UsSsn)
                && checks::us_ssn(d)
                && has_context_word(text, start, &SSN_WORDS)
            {
                return Some(Kind::UsSsn);
            }
            if single
                && self.on(Kind::CaSin)
                && !matches!(d[0], b'0' | b'8')
                && checks::luhn(d)
                && has_context_word(text, start, &SIN_WORDS)
            {
                return Some(Kind::CaSin);
            }
            if single
                && self.on(Kind::NlBsn)
                && checks::nl_bsn(d)
                && !checks::is_filler_digits(d)
                && bare(Kind::NlBsn)
            {
                return Some(Kind::NlBsn);
            }
        }
        None
    }

    /// UK NINO written in groups: `AB 12 34 56 C` or `AB 123456 C`.
    fn spaced_nino(&self, text: &[u8], chunk: &Chunk) -> Option<Finding> {
        if !self.on(Kind::UkNino) || chunk.n < 2 || chunk.groups[0].0 < 3 {
            return None;
        }
        let ws = chunk.groups[0].0;
        let len = |g: usize| chunk.groups[g].1 - chunk.groups[g].0;
        let digit_groups = match chunk.n {
            4.. if (len(0), len(1), len(2), len(3)) == (2, 2, 2, 1) => 3,
            2.. if (len(0), len(1)) == (6, 1) => 1,
            _ => return None,
        };
        if chunk.seps[..digit_groups].iter().any(|&c| c != b' ') || text[ws - 1] != b' ' {
            return None;
        }
        let prefix = [text[ws - 3], text[ws - 2]];
        let letters_ok = prefix.iter().all(u8::is_ascii_uppercase)
            && (ws == 3 || !text[ws - 4].is_ascii_alphanumeric());
        let digits_ok = (0..digit_groups).all(|g| {
            text[chunk.groups[g].0..chunk.groups[g].1]
                .iter()
                .all(u8::is_ascii_digit)
        });
        let suffix = text[chunk.groups[digit_groups].0];
        if letters_ok && digits_ok && checks::uk_nino(prefix, suffix) {
            return Some(Finding {
                kind: Kind::UkNino,
                start: ws - 3,
                end: chunk.groups[digit_groups].1,
            });
        }
        None
    }

    #[inline]
    fn ipv4(&self, text: &[u8], ws: usize) -> Option<Finding> {
        // Most numbers are no address from their first byte past one to
        // three digits: only those with a dot there are read further.
        let lead = text[ws..]
            .iter()
            .take(4)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !self.on(Kind::Ipv4) || !(1..=3).contains(&lead) || text.get(ws + lead) != Some(&b'.') {
            return None;
        }
        self.dotted_quad(text, ws)
    }

    fn dotted_quad(&self, text: &[u8], ws: usize) -> Option<Finding> {
        let mut i = ws;
        for part in 0..4 {
            let start = i;
            while i < text.len() && text[i].is_ascii_digit() && i - start < 4 {
                i += 1;
            }
            let octet = &text[start..i];
            if octet.is_empty() || octet.len() > 3 || (octet.len() > 1 && octet[0] == b'0') {
                return None;
            }
            let v: u32 = octet.iter().fold(0, |a, &b| a * 10 + u32::from(b - b'0'));
            if v > 255 {
                return None;
            }
            if part < 3 {
                if text.get(i) != Some(&b'.') {
                    return None;
                }
                i += 1;
            }
        }
        // Versions and OIDs: more dotted parts on either side, or a `v`.
        let dotted_after =
            text.get(i) == Some(&b'.') && text.get(i + 1).is_some_and(u8::is_ascii_digit);
        let dotted_before = ws >= 2 && text[ws - 1] == b'.' && text[ws - 2].is_ascii_digit();
        if dotted_after
            || dotted_before
            || !boundary_after(text, i)
            || has_context_word(text, ws, &VERSION_WORDS)
        {
            return None;
        }
        // The loopback and unspecified addresses identify no one.
        if matches!(&text[ws..i], b"127.0.0.1" | b"0.0.0.0") {
            return None;
        }
        Some(Finding {
            kind: Kind::Ipv4,
            start: ws,
            end: i,
        })
    }

    fn phone(&self, text: &[u8], ws: usize) -> Option<Finding> {
        if !self.on(Kind::Phone) || joined_before(text, ws) {
            return None;
        }
        // The number may open with `+`, `(` or `(+`.
        let mut start = ws;
        if start > 0 && text[start - 1] == b'+' {
            start -= 1;
        }
        if start > 0 && text[start - 1] == b'(' {
            start -= 1;
        }
        let mut end = start;
        // The digit groups are read as the number is walked: the layout
        // tests and the validators' screens below take them from here.
        let mut read = DigitGroups::new();
        let (mut group, mut longest_group) = (0, 0);
        let mut open = 0i32;
        let mut digits_after_close = false;
        let mut closed = false;
        // A number spans at most 32 bytes from where it opens.
        let limit = text.len().min(start + 32);
        while end < limit {
            let b = text[end];
            if b.is_ascii_digit() {
                // A run of digits at once: one group, or the rest of one.
                let run = text[end..limit]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                // No number has more than fifteen digits.
                if read.digits.len + run > 15 {
                    return None;
                }
                read.push_run(&text[end..end + run], group == 0);
                group += run;
                longest_group = longest_group.max(group);
                digits_after_close |= closed;
                end += run;
                continue;
            }
            let next = text.get(end + 1).copied().unwrap_or(b'x');
            match b {
                // Each separator must lead to the next part of the number.
                b' ' if next.is_ascii_digit() || next == b'(' => group = 0,
                b'-' | b'.' | b'/' if next.is_ascii_digit() => group = 0,
                b'(' if open == 0 && (next.is_ascii_digit() || next == b'+') => {
                    open += 1;
                    group = 0;
                }
                b'+' if end == start || (end == start + 1 && text[start] == b'(') => {}
                b')' if open == 1 && matches!(next, b' ' | b'-' | b'0'..=b'9') => {
                    open -= 1;
                    closed = true;
                    group = 0;
                }
                _ => break,
            }
            end += 1;
        }
        while end > start && !text[end - 1].is_ascii_digit() {
            end -= 1;
        }
        // `(+47 21 21 43 56)`: the opening bracket is punctuation around it.
        if text[start] == b'(' && (open != 0 || !closed) {
            start += 1;
        }
        let (digits, groups) = (read.digits.len, read.n);
        if !(7..=15).contains(&digits)
            || end <= start
            || (joined_after(text, end) && extension_len(&text[end..]) == 0)
        {
            return None;
        }
        let candidate = &text[start..end];
        let international = candidate[0] == b'+' || candidate.starts_with(b"00");
        let bracketed = closed && digits_after_close;
        // Dotted groups longer than four digits are versions and build numbers.
        let longest_allowed = if holds(candidate, b'.') { 4 } else { 5 };
        // Written without a trunk `0`, national numbers have at most 11
        // digits (US 10, Spain and Poland 9, Italy and Brazil up to 11);
        // twelve digits in groups are reference numbers.
        let trunk = candidate
            .strip_prefix(b"(")
            .unwrap_or(candidate)
            .starts_with(b"0");
        let layout = national_layout(candidate, &read);
        let grouped = groups >= 2
            && digits >= 9
            && (trunk || digits <= 11)
            && longest_group <= longest_allowed
            && layout
            && !looks_like_date_or_amount(candidate, &read)
            && !is_isbn(candidate, &read);
        // A context word does not make a version or an address a phone
        // number: the layout must still be one. (Looked for last: it is
        // the costliest test.)
        if !(international
            || bracketed
            || grouped
            || (layout && has_context_word(text, start, &PHONE_WORDS)))
        {
            return None;
        }
        let candidate = std::str::from_utf8(candidate).ok()?;
        let valid = phones::remembered(international, candidate.as_bytes(), || {
            self.validate_phone(candidate, international, &read.digits)
        });
        // An extension belongs to the number: `x123`, ` ext. 44`.
        let end = if valid {
            end + extension_len(&text[end..])
        } else {
            end
        };
        valid.then_some(Finding {
            kind: Kind::Phone,
            start,
            end,
        })
    }

    /// `digits` are the candidate's digits, at most 15 of them.
    fn validate_phone(&self, candidate: &str, international: bool, digits: &[u8]) -> bool {
        if international {
            // `00` is the international call prefix most of the world dials.
            let plus;
            let e164 = match candidate.strip_prefix("00") {
                Some(rest) => {
                    plus = format!("+{rest}");
                    plus.as_str()
                }
                None => candidate,
            };
            // Without the `+` or `00`: the country code and the number.
            let number = &digits[usize::from(candidate.starts_with("00")) * 2..];
            phones::may_be_international(number)
                && phonenumber::parse(None, e164).is_ok_and(|n| phonenumber::is_valid(&n))
        } else {
            self.valid_national(candidate, digits)
        }
    }

    /// Whether `candidate`, written without a country code, is a number
    /// one of the default regions issues, written as that region writes
    /// it: where national numbers are dialled with a trunk `0` (Britain,
    /// Germany, France, the Netherlands, Sweden, Finland, India) they are
    /// written with it, so `8091 0761 4283` is no German number.
    fn valid_national(&self, candidate: &str, digits: &[u8]) -> bool {
        let trunk = candidate.trim_start_matches('(').starts_with('0');
        self.regions.iter().any(|r| {
            let needs_trunk = matches!(
                r.region,
                Region::GB | Region::DE | Region::FR | Region::NL | Region::SE | Region::FI
            );
            (trunk || !needs_trunk)
                && r.may_be(digits)
                && phonenumber::parse(Some(r.region), candidate)
                    .is_ok_and(|n| phonenumber::is_valid(&n))
        })
    }

    /// A cell that is, as a whole, a phone number in a national format: a
    /// trunk `0` or an area code in brackets, digit groups, and a number
    /// some default region issues (`030 1234567`, `098765 43210`,
    /// `(11) 91234-5678`). Not a finding by itself — invoice numbers look
    /// the same — but the masker's column memory makes it one in a column
    /// of such values. Cells of digits alone are left out: a column of
    /// bare digit strings holds ids more often than phone numbers.
    pub(crate) fn national_phone_cell(&self, value: &[u8]) -> Option<Finding> {
        // Longer than a number in any form: told before the value is read
        // (keys and text of a hundred bytes and more are most cells).
        if value.trim_ascii().len() > NATIONAL_CELL_BYTES {
            return None;
        }
        if value.is_ascii() {
            return self.national_phone_cell_ascii(value);
        }
        // A cell written in other digits or forms (`０３０ １２３４５６７`,
        // `030\u{a0}1234567`) is judged by the ASCII it stands for. Such a
        // number is a few dozen bytes: longer text is not read again.
        if value.len() > NATIONAL_CELL_BYTES {
            return None;
        }
        let folded = fold::fold(value)?;
        let f = self.national_phone_cell_ascii(&folded.text)?;
        Some(Finding {
            kind: f.kind,
            start: folded.origin[f.start],
            end: folded.origin[f.end],
        })
    }

    fn national_phone_cell_ascii(&self, value: &[u8]) -> Option<Finding> {
        let cell = value.trim_ascii();
        if !self.on(Kind::Phone) || !matches!(cell.first(), Some(b'0' | b'(')) || cell.len() > 24 {
            return None;
        }
        let digits = cell.iter().filter(|b| b.is_ascii_digit()).count();
        let shape_ok = cell
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.' | b'/' | b'(' | b')'));
        if !shape_ok
            || !(7..=15).contains(&digits)
            || digits == cell.len()
            || cell.starts_with(b"00")
        {
            return None;
        }
        let read = DigitGroups::of(cell);
        if looks_like_date_or_amount(cell, &read) || is_isbn(cell, &read) {
            return None;
        }
        let candidate = std::str::from_utf8(cell).ok()?;
        let valid =
            phones::remembered(false, cell, || self.valid_national(candidate, &read.digits));
        let start = cell.as_ptr() as usize - value.as_ptr() as usize;
        valid.then_some(Finding {
            kind: Kind::Phone,
            start,
            end: start + cell.len(),
        })
    }

    // ---- pass 3: IPv6 ------------------------------------------------------

    /// `@` (email), `:` (credentials in URLs, IPv6) and `$` (password
    /// hashes), found with memchr: single bytes would slow the marker
    /// automaton down.
    fn scan_punctuation(&self, text: &[u8], out: &mut Vec<Finding>) {
        let mut resume = 0;
        for at in memchr::memchr3_iter(b'@', b':', b'$', text) {
            if at < resume {
                continue;
            }
            let found = match text[at] {
                b'@' => self.email(text, at),
                b'$' => self.password_hash(hashes::at_dollar(text, at)),
                _ if text[at..].starts_with(b"://") => self.url_credentials(text, at),
                _ => None,
            };
            if let Some(f) = found {
                resume = f.end;
                out.push(f);
            }
        }
        if self.on(Kind::Ipv6) {
            self.scan_ipv6(text, out);
        }
    }

    fn scan_ipv6(&self, text: &[u8], out: &mut Vec<Finding>) {
        let is_v6 = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
        let mut from = 0;
        while let Some(off) = memchr::memchr(b':', &text[from..]) {
            let colon = from + off;
            let mut start = colon;
            while start > from && is_v6(text[start - 1]) {
                start -= 1;
            }
            let mut end = colon;
            while end < text.len() && is_v6(text[end]) {
                end += 1;
            }
            from = end.max(colon + 1);
            let token = &text[start..end];
            let token = trim_dots(token);
            let start = start + (token.as_ptr() as usize - text[start..].as_ptr() as usize);
            let end = start + token.len();
            // Written in full an address has seven colons (six before an
            // IPv4 tail); with fewer it must hold `::`. Times (`14:22:07`)
            // have neither.
            let colons = token.iter().filter(|&&b| b == b':').count();
            if colons < 2 || token.len() < 6 || (colons < 6 && find(token, b"::").is_none()) {
                continue;
            }
            if !boundary_before(text, start)
                || (end < text.len() && text[end].is_ascii_alphanumeric())
            {
                continue;
            }
            let Ok(s) = std::str::from_utf8(token) else {
                continue;
            };
            if let Ok(addr) = s.parse::<std::net::Ipv6Addr>() {
                if !addr.is_unspecified() && !addr.is_loopback() {
                    // The digit pass read the IPv4 tail as an address of
                    // its own; the whole token is this one.
                    if token.contains(&b'.') {
                        out.retain(|f| f.kind != Kind::Ipv4 || f.end <= start || f.start >= end);
                    }
                    out.push(Finding {
                        kind: Kind::Ipv6,
                        start,
                        end,
                    });
                }
            }
        }
    }
}

/// An address written backwards (`moc.elpmaxe@enaj`, what `reverse()`
/// makes of one): a domain before the `@` that reads as one under a real
/// top-level domain when reversed, and a local part after it.
fn reversed_email(text: &[u8], at: usize) -> Option<Finding> {
    let is_domain = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
    let before = text[..at]
        .iter()
        .rev()
        .take_while(|b| is_domain(b))
        .take(253)
        .count();
    let is_local = |b: &u8| b.is_ascii_alphanumeric() || b"._+-".contains(b);
    let mut after = text[at + 1..]
        .iter()
        .take_while(|b| is_local(b))
        .take(64)
        .count();
    while after > 0 && !text[at + after].is_ascii_alphanumeric() {
        after -= 1;
    }
    if before == 0 || after == 0 {
        return None;
    }
    let start = at - before;
    let mut forward = Vec::with_capacity(before + 1);
    forward.push(b'@');
    forward.extend(text[start..at].iter().rev());
    let whole = email_domain_end(&forward, 0, false) == Some(forward.len());
    whole.then_some(Finding {
        kind: Kind::Email,
        start,
        end: at + 1 + after,
    })
}

/// A dot as an address may be written with it spelled out; the plain
/// one first.
const SPOKEN_DOTS: [&[u8]; 10] = [
    b".", b" dot ", b" DOT ", b" . ", b"(dot)", b"[dot]", b"{dot}", b"<dot>", b"(DOT)", b"[DOT]",
];

/// Where a domain written with dots or `dot` words from `from` ends
/// (`example dot com`, `example(dot)co [dot] uk`, `example.com`), if it
/// has two labels or more and the last is a real top-level domain.
fn spoken_domain_end(text: &[u8], from: usize) -> Option<usize> {
    let label_end = |i: usize| {
        let len = text
            .get(i..)?
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        (1..=63).contains(&len).then_some(i + len)
    };
    let mut end = label_end(from)?;
    let (mut labels, mut last) = (1, from);
    loop {
        // A bracketed `dot` may have a space on either side.
        let space = usize::from(text.get(end) == Some(&b' '));
        let Some((dot, at)) = SPOKEN_DOTS.iter().find_map(|dot| {
            let bracketed = !matches!(dot[0], b'.' | b' ');
            [end, end + space * usize::from(bracketed)]
                .into_iter()
                .find(|&i| text.get(i..).is_some_and(|t| t.starts_with(dot)))
                .map(|i| (dot, i))
        }) else {
            break;
        };
        let mut next = at + dot.len();
        if !matches!(dot[0], b'.' | b' ') && text.get(next) == Some(&b' ') {
            next += 1;
        }
        let Some(label) = label_end(next) else {
            break;
        };
        (last, end, labels) = (next, label, labels + 1);
    }
    (labels >= 2 && tld::is_tld(&text[last..end])).then_some(end)
}

/// Where the domain of an email whose `@` is at `at` ends, if it is a
/// domain under a real top-level domain.
fn email_domain_end(text: &[u8], at: usize, non_ascii: bool) -> Option<usize> {
    let mut end = at + 1;
    while end < text.len()
        && (text[end].is_ascii_alphanumeric()
            || text[end] == b'-'
            || text[end] == b'.'
            || (non_ascii && text[end] >= 0x80))
    {
        end += 1;
    }
    while end > at + 1 && matches!(text[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &text[at + 1..end];
    let tld_start = domain.iter().rposition(|&b| b == b'.')? + 1;
    let labels_ok = domain
        .split(|&b| b == b'.')
        .all(|l| !l.is_empty() && l.len() <= 63 && l[0] != b'-' && l[l.len() - 1] != b'-');
    (labels_ok && tld::is_tld(&domain[tld_start..])).then_some(end)
}

fn trim_dots(mut t: &[u8]) -> &[u8] {
    while let [b'.', rest @ ..] = t {
        t = rest;
    }
    while let [rest @ .., b'.'] = t {
        t = rest;
    }
    t
}

const MAX_GROUPS: usize = 10;

/// The alphanumeric words from a start position joined by single
/// separators (`4111 1111 1111 1111`, `1 85 05 78 006 084 36`).
struct Chunk {
    groups: [(usize, usize); MAX_GROUPS],
    seps: [u8; MAX_GROUPS],
    n: usize,
}

/// The most digits a reading of digit groups takes, separators aside (a
/// card, a national id or an Aadhaar number fits well within it).
const GROUPED_DIGITS_AT_MOST: usize = 40;

impl Chunk {
    /// Reads the words from `start`, up to [`MAX_GROUPS`] of them, and
    /// stops after the first word that takes the words' bytes (without
    /// separators) past [`GROUPED_DIGITS_AT_MOST`]: no reading of digit
    /// groups takes that word, and having read it tells that the chunk
    /// goes on. Keys of many digit groups (`83868641912-28773972837-…`)
    /// are read four words deep instead of ten.
    fn read(text: &[u8], start: usize) -> Chunk {
        let mut chunk = Chunk {
            groups: [(0, 0); MAX_GROUPS],
            seps: [0; MAX_GROUPS],
            n: 0,
        };
        let mut i = start;
        let mut word_bytes = 0;
        while chunk.n < MAX_GROUPS {
            let s = i;
            i += alnum_len(&text[i..]);
            if i == s {
                break;
            }
            chunk.groups[chunk.n] = (s, i);
            chunk.n += 1;
            word_bytes += i - s;
            if word_bytes > GROUPED_DIGITS_AT_MOST {
                break;
            }
            match (text.get(i), text.get(i + 1)) {
                (Some(&sep), Some(next))
                    if matches!(sep, b' ' | b'-' | b'.' | b'/') && next.is_ascii_alphanumeric() =>
                {
                    chunk.seps[chunk.n - 1] = sep;
                    i += 1;
                }
                _ => break,
            }
        }
        chunk
    }

    /// Whether a reading of the leading groups as digit groups can be
    /// tried: the first `k` groups take nine digits or more and at most
    /// [`GROUPED_DIGITS_AT_MOST`], all joined by the first separator, and
    /// they end the chunk, or are followed by a space, or are a card
    /// number with an expiry or cents. Told from the groups' bounds before
    /// their bytes are read, so it stands for the tests of
    /// `grouped_digits` and must widen with them: keys of digit groups
    /// joined by `-` have no such reading.
    fn may_read_as_groups(&self, text: &[u8]) -> bool {
        let mut len = 0;
        for k in 1..=self.n {
            let (s, e) = self.groups[k - 1];
            len += e - s;
            if len > GROUPED_DIGITS_AT_MOST || (k > 1 && self.seps[k - 2] != self.seps[0]) {
                return false;
            }
            let tail = k < self.n && self.seps[k - 1] != b' ';
            if len >= 9 && (!tail || card_with_tail(text, self, k)) {
                return true;
            }
        }
        false
    }
}

/// Matches `pattern` at `at`: `d` a digit, `L` an ASCII letter, anything
/// else itself; the match must end at a word boundary.
fn shape_at(text: &[u8], at: usize, pattern: &[u8]) -> Option<usize> {
    let slice = text.get(at..at + pattern.len())?;
    let ok = slice.iter().zip(pattern).all(|(&b, &p)| match p {
        b'd' => b.is_ascii_digit(),
        b'L' => b.is_ascii_alphabetic(),
        _ => b == p,
    });
    let end = at + pattern.len();
    let continues = text.get(end).is_some_and(|b| b.is_ascii_alphanumeric())
        || (matches!(text.get(end), Some(b'-' | b'.'))
            && text.get(end + 1).is_some_and(u8::is_ascii_digit));
    (ok && !continues).then_some(end)
}

/// Whether the single group of a chunk is a card number followed by an
/// expiry or cents: 12 to 19 digits, then `/`, `.` or `-` and at most four
/// digits.
fn card_with_tail(text: &[u8], chunk: &Chunk, k: usize) -> bool {
    if k != 1 || chunk.n < 2 || !matches!(chunk.seps[0], b'/' | b'.' | b'-') {
        return false;
    }
    let (s, e) = chunk.groups[0];
    let (ts, te) = chunk.groups[1];
    (12..=19).contains(&(e - s)) && te - ts <= 4 && text[ts..te].iter().all(u8::is_ascii_digit)
}

struct DigitBuf {
    digits: [u8; 32],
    len: usize,
}

impl std::ops::Deref for DigitBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

/// Whether `at` starts a run of letters, digits and the separators numbers
/// are written with that holds at least `wanted` digits in its first 64
/// bytes: no reading of a number spans more (the longest, forty digits in
/// groups, spans 49).
fn has_digits(text: &[u8], at: usize, wanted: usize) -> bool {
    let mut found = 0;
    for &b in text[at..].iter().take(64) {
        if b.is_ascii_digit() {
            found += 1;
            if found >= wanted {
                return true;
            }
        } else if !(b.is_ascii_alphabetic()
            || matches!(b, b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'+'))
        {
            return false;
        }
    }
    false
}

fn iban_at(text: &[u8], ws: usize) -> Option<Finding> {
    let country = [
        text[ws].to_ascii_uppercase(),
        text[ws + 1].to_ascii_uppercase(),
    ];
    let expected = checks::iban_expected_length(&country)?;
    let lower = text[ws].is_ascii_lowercase();
    let mut code = [0u8; 34];
    let mut n = 0;
    let mut i = ws;
    let mut last_end = ws;
    while i < text.len() && n < expected {
        let b = text[i];
        // One case throughout: `De89…` or `DE89abc…` is a word, not an IBAN.
        if b.is_ascii_alphabetic() && b.is_ascii_lowercase() != lower {
            break;
        }
        if b.is_ascii_alphanumeric() {
            code[n] = b.to_ascii_uppercase();
            n += 1;
            i += 1;
            last_end = i;
        } else if b == b' ' && n % 4 == 0 && text.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
        {
            i += 1;
        } else {
            break;
        }
    }
    if n != expected
        || text.get(last_end).is_some_and(u8::is_ascii_alphanumeric)
        || !checks::iban(&code[..n])
    {
        return None;
    }
    Some(Finding {
        kind: Kind::Iban,
        start: ws,
        end: last_end,
    })
}

fn nie_at(text: &[u8], ws: usize) -> Option<usize> {
    for shape in [&b"LdddddddL"[..], b"L-ddddddd-L"] {
        if let Some(end) = shape_at(text, ws, shape) {
            let digits: Vec<u8> = text[ws + 1..end - 1]
                .iter()
                .copied()
                .filter(u8::is_ascii_digit)
                .collect();
            if checks::es_nie(text[ws], &digits, text[end - 1]) {
                return Some(end);
            }
        }
    }
    None
}

fn github_checksum(token: &[u8]) -> bool {
    const UPPER_FIRST: &[u8; 62] =
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const LOWER_FIRST: &[u8; 62] =
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let (random, check) = token.split_at(30);
    let crc = crc32fast::hash(random);
    [UPPER_FIRST, LOWER_FIRST].iter().any(|alphabet| {
        let mut encoded = [b'0'; 6];
        let mut v = crc;
        for slot in encoded.iter_mut().rev() {
            *slot = alphabet[(v % 62) as usize];
            v /= 62;
        }
        encoded == check
    })
}

/// High-entropy, mixed-class, not a template: what a generated key is like.
fn plausible_secret(token: &[u8], min_entropy: f64) -> bool {
    let upper = token.iter().any(u8::is_ascii_uppercase);
    let lower = token.iter().any(u8::is_ascii_lowercase);
    let digit = token.iter().any(u8::is_ascii_digit);
    let classes = usize::from(upper) + usize::from(lower) + usize::from(digit);
    classes >= 2 && checks::entropy(token) >= min_entropy && !checks::is_placeholder(token)
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether the word at `at` continues a longer token: `ORD-2024`,
/// `v1.2`, `/api/7`, a UUID's middle groups.
fn joined_before(text: &[u8], at: usize) -> bool {
    at >= 2
        && matches!(text[at - 1], b'-' | b'_' | b'/' | b'.' | b'#')
        && text[at - 2].is_ascii_alphanumeric()
}

/// Whether a value ending at `at` is followed by more of the same token.
fn joined_after(text: &[u8], at: usize) -> bool {
    match text.get(at) {
        Some(b) if b.is_ascii_alphanumeric() => true,
        Some(b'-' | b'_' | b'/' | b'.' | b':') => {
            text.get(at + 1).is_some_and(u8::is_ascii_alphanumeric)
        }
        _ => false,
    }
}

/// The length of a phone extension at the start of `rest`.
fn extension_len(rest: &[u8]) -> usize {
    let mut i = 0;
    if rest.first() == Some(&b' ') {
        i += 1;
    }
    let head = &rest[i..];
    let starts = |word: &[u8]| {
        head.get(..word.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(word))
    };
    let marker = if starts(b"ext.") {
        4
    } else if starts(b"ext") {
        3
    } else if starts(b"x") {
        1
    } else {
        return 0;
    };
    i += marker;
    if rest.get(i) == Some(&b' ') {
        i += 1;
    }
    let digits = rest[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=6).contains(&digits) || rest.get(i + digits).is_some_and(u8::is_ascii_alphanumeric) {
        return 0;
    }
    i + digits
}

/// The digit groups of a phone-shaped candidate, read once for the layout
/// tests below: each group's length, and the digits themselves.
struct DigitGroups {
    lens: [u8; 16],
    /// How many groups there are; only the first 16 are in `lens`.
    n: usize,
    digits: DigitBuf,
}

impl DigitGroups {
    /// Candidates hold at most 15 digits by the time they are read here,
    /// so at most 15 groups and no digit past the buffer.
    fn of(candidate: &[u8]) -> DigitGroups {
        let mut groups = DigitGroups::new();
        let mut in_group = false;
        for &b in candidate {
            if !b.is_ascii_digit() {
                in_group = false;
                continue;
            }
            groups.push(b, !in_group);
            in_group = true;
        }
        groups
    }

    fn new() -> DigitGroups {
        DigitGroups {
            lens: [0; 16],
            n: 0,
            digits: DigitBuf {
                digits: [0; 32],
                len: 0,
            },
        }
    }

    /// Adds digit `b`, which opens a new group or continues the last one.
    fn push(&mut self, b: u8, opens_group: bool) {
        if opens_group {
            self.n += 1;
        }
        if let Some(len) = self.lens.get_mut(self.n - 1) {
            *len += 1;
        }
        if let Some(slot) = self.digits.digits.get_mut(self.digits.len) {
            *slot = b;
            self.digits.len += 1;
        }
    }

    /// Adds a run of at most 15 digits, which opens a new group or
    /// continues the last one; the buffer holds 15 digits at least.
    fn push_run(&mut self, run: &[u8], opens_group: bool) {
        if opens_group {
            self.n += 1;
        }
        if let Some(len) = self.lens.get_mut(self.n - 1) {
            *len += run.len() as u8;
        }
        let at = self.digits.len;
        let fits = run.len().min(self.digits.digits.len() - at);
        self.digits.digits[at..at + fits].copy_from_slice(&run[..fits]);
        self.digits.len += fits;
    }

    fn lens(&self) -> &[u8] {
        &self.lens[..self.n.min(self.lens.len())]
    }
}

/// Whether a short slice (a number of at most 32 bytes) holds `b`: a plain
/// loop, where `contains` pays memchr's setup for long slices.
#[allow(clippy::manual_contains)]
fn holds(short: &[u8], b: u8) -> bool {
    short.iter().any(|&c| c == b)
}

/// Whether digit groups joined by dots or slashes are laid out as phone
/// numbers are: dotted only as `415.555.2671` or `01.23.45.67.89` (or
/// after a trunk `0`), slashed only after a trunk `0` (`030/1234567`).
/// Other dotted and slashed groups are versions, addresses and invoice
/// numbers (`3.19.98.8109`, `77.2316.158.143`, `14730/9973`).
fn national_layout(candidate: &[u8], groups: &DigitGroups) -> bool {
    let dotted = holds(candidate, b'.');
    let slashed = holds(candidate, b'/');
    if !dotted && !slashed {
        return true;
    }
    let trunk = candidate[0] == b'0' && candidate.get(1).is_some_and(u8::is_ascii_digit);
    if slashed {
        return trunk && !dotted;
    }
    if groups.n > 8 {
        return false;
    }
    let lens = groups.lens();
    lens == [3, 3, 4] || lens == [2, 2, 2, 2, 2] || (trunk && lens.iter().all(|&l| l >= 2))
}

/// ISBN-10 and ISBN-13 written with hyphens: grouped digits that are
/// book numbers, not phone numbers.
fn is_isbn(candidate: &[u8], groups: &DigitGroups) -> bool {
    if !holds(candidate, b'-') {
        return false;
    }
    let d = groups.digits.iter().map(|&b| u32::from(b - b'0'));
    match groups.digits.len() {
        10 => d.enumerate().map(|(i, v)| (10 - i as u32) * v).sum::<u32>() % 11 == 0,
        13 => {
            (groups.digits[..3] == *b"978" || groups.digits[..3] == *b"979")
                && d.enumerate()
                    .map(|(i, v)| if i % 2 == 0 { v } else { 3 * v })
                    .sum::<u32>()
                    % 10
                    == 0
        }
        _ => false,
    }
}

fn boundary_before(text: &[u8], at: usize) -> bool {
    at == 0 || !text[at - 1].is_ascii_alphanumeric()
}

fn boundary_after(text: &[u8], at: usize) -> bool {
    at >= text.len() || !text[at].is_ascii_alphanumeric()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Dates (2024-01-31, 31.01.2024, 01/31/2024) and amounts with thousands
/// separators (1.234.567) are grouped digits that are not phone numbers.
fn looks_like_date_or_amount(candidate: &[u8], groups: &DigitGroups) -> bool {
    let lens = groups.lens();
    let date = matches!(
        lens,
        [4, 2, 2]
            | [2, 2, 4]
            | [1, 2, 4]
            | [2, 1, 4]
            | [1, 1, 4]
            | [4, 1, 1]
            | [4, 2, 1]
            | [4, 1, 2]
    );
    let thousands = holds(candidate, b'.')
        && groups.n >= 2
        && groups.n <= lens.len()
        && lens[1..].iter().all(|&l| l == 3)
        && lens[0] <= 3;
    date || thousands
}

static SSN_WORDS: Words = Words::new(&["ssn", "social security", "ss#", "ss #", "taxpayer", "tin"]);
static SIN_WORDS: Words = Words::new(&["sin", "social insurance", "nas", "assurance sociale"]);
/// Words that name a national identifier written as a bare digit run.
static NATIONAL_ID_WORDS: Words = Words::new(&[
    "cpf",
    "pesel",
    "bsn",
    "burgerservicenummer",
    "sofinummer",
    "steuer-id",
    "steuerid",
    "steueridentifikationsnummer",
    "idnr",
    "tax id",
    "aadhaar",
    "aadhar",
    "personnummer",
    "national id",
    "national identity",
    "identity number",
    "id number",
    "id no",
    "id-nr",
]);
static PHONE_WORDS: Words = Words::new(&[
    "phone",
    "tel",
    "mobile",
    "cell",
    "fax",
    "call",
    "whatsapp",
    "sms",
    "handy",
    "telefon",
    "téléphone",
    "tél",
    "portable",
    "móvil",
    "movil",
    "telefono",
    "teléfono",
    "cellulare",
    "puhelin",
    "nummer",
    "numero",
    "número",
    "contact",
    "kontakt",
    "rufnummer",
    "mobiel",
    "telefoon",
    "celular",
    "komórka",
    "ph:",
    "ph.",
    "ph#",
    "電話",
    "携帯",
    "телефон",
]);
static VERSION_WORDS: Words = Words::new(&["version", "ver", "release", "build"]);

/// A list of context words, indexed by their first two bytes.
struct Words {
    list: &'static [&'static str],
    /// For each byte (words are lower case), the words that start with it,
    /// as bits of their index in `list`.
    first: [u64; 256],
    /// For each byte, the words whose second byte it is.
    second: [u64; 256],
}

impl Words {
    const fn new(list: &'static [&'static str]) -> Words {
        assert!(
            list.len() <= 64,
            "a word list is indexed by the bits of a u64"
        );
        let mut first = [0u64; 256];
        let mut second = [0u64; 256];
        let mut i = 0;
        while i < list.len() {
            let word = list[i].as_bytes();
            assert!(word.len() >= 2, "a context word has two bytes or more");
            first[word[0] as usize] |= 1 << i;
            second[word[1] as usize] |= 1 << i;
            i += 1;
        }
        Words {
            list,
            first,
            second,
        }
    }
}

/// Whether one of `words` appears as a word (or the start of one: `tel.`,
/// `telephone`) in the 24 bytes before `at`, ignoring ASCII case.
fn has_context_word(text: &[u8], at: usize, words: &Words) -> bool {
    // Only word starts are compared, and only with the words that begin
    // with those two letters (or UTF-8 bytes: 電話): rarely more than one
    // comparison per number.
    let from = at.saturating_sub(24);
    for i in from..at.saturating_sub(1) {
        let first = words.first[usize::from(text[i].to_ascii_lowercase())];
        if first == 0 {
            continue;
        }
        let mut candidates = first & words.second[usize::from(text[i + 1].to_ascii_lowercase())];
        if candidates == 0 || (i > 0 && text[i - 1].is_ascii_alphanumeric()) {
            continue;
        }
        while candidates != 0 {
            let w = words.list[candidates.trailing_zeros() as usize].as_bytes();
            candidates &= candidates - 1;
            if i + w.len() <= at && text[i..i + w.len()].eq_ignore_ascii_case(w) {
                return true;
            }
        }
    }
    false
}

/// The position of the first ASCII digit at or after `from`, eight bytes
/// at a time.
fn find_digit(text: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while i + 8 <= text.len() {
        let w = u64::from_le_bytes(text[i..i + 8].try_into().expect("eight bytes"));
        // Per byte, on the low seven bits (no carry can cross a byte): adding
        // 0x50 sets the high bit from '0' up, adding 0x46 from ':' up; bytes
        // with the high bit set are not ASCII and never digits.
        let low7 = w & (0x7f * LO);
        let at_least_0 = low7 + 0x50 * LO;
        let above_9 = low7 + 0x46 * LO;
        let hits = at_least_0 & !above_9 & !w & HI;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    (i..text.len()).find(|&j| text[j].is_ascii_digit())
}

/// Keeps the strongest of overlapping findings and sorts by position.
pub(crate) fn resolve_overlaps(found: &mut Vec<Finding>) {
    if found.len() < 2 {
        return;
    }
    if found.len() > 64 {
        // Long documents: one sweep in position order, each overlap won by
        // the stronger kind, in O(n log n).
        found.sort_unstable_by_key(|f| (f.start, f.kind));
        let mut kept = 0;
        for i in 1..found.len() {
            let f = found[i];
            let last = found[kept];
            if f.start < last.end {
                if f.kind < last.kind {
                    found[kept] = f;
                }
            } else {
                kept += 1;
                found[kept] = f;
            }
        }
        found.truncate(kept + 1);
        return;
    }
    found.sort_unstable_by_key(|f| (f.kind, f.start));
    let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found.iter() {
        if !kept.iter().any(|k| k.start < f.end && f.start < k.end) {
            kept.push(*f);
        }
    }
    kept.sort_unstable_by_key(|f| f.start);
    *found = kept;
}

#[cfg(test)]
mod tests;
