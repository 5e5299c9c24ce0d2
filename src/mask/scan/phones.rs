//! A necessary condition for phonenumber's validation, checked first.
//!
//! phonenumber validates a candidate by parsing it (nom, allocations) and
//! matching its metadata's patterns through a regex cache keyed by each
//! pattern's source text, under one process-wide lock: 1 to 12 µs a
//! number, most of the masking time of digit-heavy data. Almost every
//! candidate the scanner hands over (reference numbers, dates written with
//! spaces, `+44 0…` typos) is a number no country issues, which the same
//! patterns, compiled once here, tell in tens of nanoseconds.
//!
//! What the screen relies on, from how phonenumber validates:
//! - every step between a candidate and the national number it checks
//!   takes digits off the front: the international call prefix, the
//!   country code, the national prefix, a carrier code (a transform rule
//!   that is one group reference leaves a suffix too); leading zeros are
//!   kept;
//! - a number is valid only if one of its country's type patterns (fixed
//!   line, mobile, toll free…) matches at the start of that national
//!   number (phonenumber's descriptor test is a prefix match).
//!
//! So when no type pattern of the country matches at any of the first K
//! digits, K bounding what those steps can take off, phonenumber would
//! reject the candidate. Where K has no bound (a transform rule that adds
//! digits, an unbounded prefix pattern) or a pattern does not compile here,
//! the screen passes the candidate on: it only ever saves phonenumber work,
//! never decides that a number is one. A test holds the screen to that
//! against phonenumber itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use phonenumber::country::Id as Region;
use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::{Hir, HirKind, Look};

/// Country calling codes have at most three digits.
const CODES: usize = 1000;

/// National significant numbers have at most 17 digits.
const MAX_NATIONAL: usize = 17;

/// What the screen knows of one country calling code.
enum Country {
    /// No region uses the code: phonenumber rejects it.
    Unassigned,
    /// The screen cannot bound what parsing strips: ask phonenumber.
    Unscreened,
    Screened(Box<Patterns>),
}

/// The type patterns of a code's regions, by the length of national
/// number each type allows (a type is only a match at its own lengths).
struct Patterns {
    /// The most digits parsing may take off before the national number.
    skip: usize,
    /// Candidates of at most this many digits may be local numbers some
    /// region completes: they pass.
    local: usize,
    /// All of what it may take off: the country code (a number written
    /// without `+` may start with it), then a national or carrier prefix,
    /// then the national prefix again.
    stripped: Regex,
    by_length: [Option<Regex>; MAX_NATIONAL + 1],
}

impl Patterns {
    /// Whether `digits` may end in a national number some type allows,
    /// after digits parsing may take off.
    fn may_match(&self, digits: &[u8]) -> bool {
        let n = digits.len();
        if n <= self.local {
            return true;
        }
        (n.saturating_sub(self.skip)..=n.min(MAX_NATIONAL)).any(|len| {
            self.by_length[len].as_ref().is_some_and(|r| {
                r.is_match(&digits[n - len..]) && self.stripped.is_match(&digits[..n - len])
            })
        })
    }
}

fn countries() -> &'static [OnceLock<Country>] {
    static COUNTRIES: OnceLock<Vec<OnceLock<Country>>> = OnceLock::new();
    COUNTRIES.get_or_init(|| (0..CODES).map(|_| OnceLock::new()).collect())
}

fn country(code: usize) -> &'static Country {
    countries()[code].get_or_init(|| build(code as u16))
}

fn build(code: u16) -> Country {
    let Some(regions) = DATABASE.by_code(&code) else {
        return Country::Unassigned;
    };
    let mut strip = 0;
    let mut local = 0;
    let mut prefixes = Vec::new();
    let mut by_length: [Vec<String>; MAX_NATIONAL + 1] = Default::default();
    for meta in regions {
        let Some(found) = national_prefixes(meta) else {
            return Country::Unscreened;
        };
        strip = strip.max(found.longest);
        local = local.max(found.local);
        prefixes.push(found.pattern);
        for t in number_types(meta) {
            let pattern = format!("(?:{})", t.national_number().as_str());
            for (len, patterns) in by_length.iter_mut().enumerate() {
                let lengths = t.possible_length();
                if lengths.is_empty() || lengths.contains(&(len as u16)) {
                    patterns.push(pattern.clone());
                }
            }
        }
    }
    let digits = code.to_string();
    let stripped = format!("^(?:{digits})?(?:{})$", prefixes.join("|"));
    let Ok(stripped) = compile(&stripped) else {
        return Country::Unscreened;
    };
    let mut compiled: [Option<Regex>; MAX_NATIONAL + 1] = Default::default();
    for (len, patterns) in by_length.iter().enumerate() {
        if patterns.is_empty() {
            continue;
        }
        // phonenumber's descriptor test is a match at the start of the
        // national number, not of all of it.
        let source = format!("^(?:{})", patterns.join("|"));
        match compile(&source) {
            Ok(regex) => compiled[len] = Some(regex),
            Err(_) => return Country::Unscreened,
        }
    }
    Country::Screened(Box::new(Patterns {
        skip: digits.len() + strip,
        local: if local > 0 { local + digits.len() } else { 0 },
        stripped,
        by_length: compiled,
    }))
}

/// Every country's patterns compiled take about 30 MiB (a process that
/// meets numbers of all of them); the limits bound what one country's, and
/// the lazy DFA each thread builds while matching, can take. A country
/// whose patterns do not fit is not screened.
/// The descriptors phonenumber's validation tries: a number is valid only
/// if one of them matches it.
fn number_types(meta: &Metadata) -> impl Iterator<Item = &Descriptor> {
    let d = meta.descriptors();
    [
        d.premium_rate(),
        d.toll_free(),
        d.shared_cost(),
        d.voip(),
        d.personal_number(),
        d.pager(),
        d.uan(),
        d.voicemail(),
        d.fixed_line(),
        d.mobile(),
    ]
    .into_iter()
    .flatten()
}

fn compile(source: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(source)
        .ignore_whitespace(true)
        .unicode(false)
        .size_limit(16 << 20)
        .dfa_size_limit(1 << 20)
        .build()
}

/// What parsing may take off the front of a region's numbers after the
/// country code.
struct Prefixes {
    /// The most digits.
    longest: usize,
    /// The digits as a pattern: the national prefix (or what the prefix
    /// pattern matches, carrier code included), then the national prefix
    /// once more.
    pattern: String,
    /// Numbers of at most this many digits may be local numbers that a
    /// transform rule completes with an area code (`268$1` makes a
    /// seven-digit Antiguan number ten); those are not screened.
    local: usize,
}

fn national_prefixes(meta: &Metadata) -> Option<Prefixes> {
    let prefix = meta.national_prefix().unwrap_or("");
    if !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let again = format!("(?:{prefix})?");
    let Some(parsing) = meta.national_prefix_for_parsing() else {
        return Some(Prefixes {
            longest: 2 * prefix.len(),
            pattern: format!("{again}{again}"),
            local: 0,
        });
    };
    let hir = regex_syntax::ParserBuilder::new()
        .ignore_whitespace(true)
        .unicode(false)
        .utf8(false)
        .build()
        .parse(parsing.as_str())
        .ok()?;
    let rule = meta.national_prefix_transform_rule();
    let (stripped, local) = match rule.map(|r| r.split_once('$')) {
        // What the pattern matches is taken off.
        None => (hir, 0),
        // `$2`: what the pattern matches up to that group is taken off,
        // at most all of it.
        Some(Some(("", group))) if is_number(group) => {
            let longest = hir.properties().maximum_len()?;
            return Some(Prefixes {
                longest: longest + prefix.len(),
                pattern: format!("[0-9]{{0,{longest}}}{again}"),
                local: 0,
            });
        }
        // `268$1`: a whole local number is completed; otherwise the
        // pattern's other alternatives are taken off.
        Some(Some((area, group))) if is_number(area) && is_number(group) => {
            let (local, rest) = split_local(&hir, group.parse().ok()?)?;
            let stripped = if rest.is_empty() {
                Hir::empty()
            } else {
                Hir::alternation(rest)
            };
            (stripped, local)
        }
        Some(_) => return None,
    };
    let longest = stripped.properties().maximum_len()?;
    Some(Prefixes {
        longest: longest + prefix.len(),
        pattern: format!("(?:{stripped})?{again}"),
        local,
    })
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The prefix pattern of a region whose rule completes local numbers,
/// `([2-9]\d{6})$|1`: the longest local number the group takes when it is
/// the whole rest of the number, and the other alternatives. `None` when
/// the pattern is not of that form.
fn split_local(hir: &Hir, group: u32) -> Option<(usize, Vec<Hir>)> {
    let alternatives = match hir.kind() {
        HirKind::Alternation(all) => all.as_slice(),
        _ => std::slice::from_ref(hir),
    };
    let mut local = None;
    let mut rest = Vec::new();
    for alternative in alternatives {
        if let HirKind::Concat(parts) = alternative.kind() {
            if let [capture, end] = parts.as_slice() {
                if let (HirKind::Capture(c), HirKind::Look(Look::End)) =
                    (capture.kind(), end.kind())
                {
                    if c.index == group {
                        local = Some(c.sub.properties().maximum_len()?);
                        continue;
                    }
                }
            }
        }
        if alternative.properties().explicit_captures_len() > 0 {
            return None;
        }
        rest.push(alternative.clone());
    }
    Some((local?, rest))
}

/// Whether `digits`, written after `+` or `00`, may be a number some
/// country issues.
pub(super) fn may_be_international(digits: &[u8]) -> bool {
    // A number after `+` that starts with 0 takes another path through
    // the parser (an international call prefix after the plus).
    if digits.first().is_none_or(|&d| d == b'0') {
        return true;
    }
    // The country code is the first one to three digits that are one.
    for len in 1..=3.min(digits.len()) {
        let code = digits[..len]
            .iter()
            .fold(0, |n, &d| n * 10 + usize::from(d - b'0'));
        match country(code) {
            Country::Unassigned => continue,
            Country::Unscreened => return true,
            Country::Screened(patterns) => return patterns.may_match(&digits[len..]),
        }
    }
    false
}

/// One default region, ready to screen numbers written without a country
/// code.
#[derive(Debug)]
pub(super) struct National {
    pub(super) region: Region,
    /// The region's country code, when its numbers can be screened (a
    /// known region whose call prefix compiles here).
    code: Option<usize>,
    /// Digits that make the number international when dialled from the
    /// region (`00`, `011`): any country's code then follows.
    call_prefix: Option<Regex>,
}

impl National {
    pub(super) fn new(region: Region) -> National {
        let meta = DATABASE.by_id(region.as_ref());
        let call_prefix = meta
            .and_then(|m| m.international_prefix())
            .map(|p| compile(&format!("^(?:{})", p.as_str())));
        let code = match (meta, &call_prefix) {
            (Some(meta), None | Some(Ok(_))) => Some(usize::from(meta.country_code())),
            _ => None,
        }
        .filter(|&c| c < CODES);
        // Compiled now rather than on the first number a session meets.
        if let Some(code) = code {
            country(code);
        }
        National {
            region,
            code,
            call_prefix: call_prefix.and_then(Result::ok),
        }
    }

    /// Whether `digits`, written without a country code, may be a number
    /// when read as this region reads it.
    pub(super) fn may_be(&self, digits: &[u8]) -> bool {
        let Some(code) = self.code else {
            return true;
        };
        if self
            .call_prefix
            .as_ref()
            .is_some_and(|p| p.is_match(digits))
        {
            return true;
        }
        match country(code) {
            Country::Unassigned => false,
            Country::Unscreened => true,
            Country::Screened(patterns) => patterns.may_match(digits),
        }
    }
}

/// Verdicts on phone candidates one session has had validated, so that a
/// number repeated down a result (a customer's number on each of their
/// orders) is validated once: a valid number costs phonenumber 10 to
/// 20 µs. One memo per session, never shared: how fast a number is
/// confirmed must not tell one session what another has seen.
#[derive(Default)]
pub struct Memo {
    /// Keyed by the candidate as written, after a byte that says whether
    /// it was read as international.
    verdicts: HashMap<Box<[u8]>, bool>,
}

/// The keys are phone numbers as the database sent them: a debug print
/// of a session's masker must not show them.
impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memo {{ {} verdicts }}", self.verdicts.len())
    }
}

/// Enough for the distinct numbers of a large result; past it the memo
/// starts again (about 64 KiB at most).
const MEMO_ENTRIES: usize = 1024;

thread_local! {
    /// The memo of the session whose rows this thread is masking: masking
    /// a row never awaits, so no other session's rows interleave.
    static CURRENT: RefCell<Option<Memo>> = const { RefCell::new(None) };
}

/// Lends `memo` to the scanner until [`Lent::give_back`].
pub fn lend(memo: &mut Memo) -> Lent {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        if current.is_some() {
            // Already lent by an enclosing call.
            return Lent { owner: false };
        }
        *current = Some(std::mem::take(memo));
        Lent { owner: true }
    })
}

/// A memo lent to the scanner. Dropped without being given back (a panic
/// while masking), the memo is discarded rather than left for the next
/// session on the thread.
#[must_use]
pub struct Lent {
    owner: bool,
}

impl Lent {
    pub fn give_back(mut self, memo: &mut Memo) {
        if self.owner {
            self.owner = false;
            if let Some(lent) = CURRENT.with(|c| c.borrow_mut().take()) {
                *memo = lent;
            }
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if self.owner {
            CURRENT.with(|c| c.borrow_mut().take());
        }
    }
}

/// `validate`'s verdict on `candidate`, from the lent memo when it has one.
pub(super) fn remembered(
    international: bool,
    candidate: &[u8],
    validate: impl FnOnce() -> bool,
) -> bool {
    let mut key = [0u8; 64];
    if candidate.len() >= key.len() {
        return validate();
    }
    key[0] = u8::from(international);
    key[1..=candidate.len()].copy_from_slice(candidate);
    let key = &key[..=candidate.len()];
    let known = CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .map(|memo| memo.verdicts.get(key).copied())
    });
    match known {
        // No memo lent: validate every time.
        None => validate(),
        Some(Some(verdict)) => verdict,
        Some(None) => {
            let verdict = validate();
            CURRENT.with(|c| {
                if let Some(memo) = c.borrow_mut().as_mut() {
                    if memo.verdicts.len() >= MEMO_ENTRIES {
                        memo.verdicts.clear();
                    }
                    memo.verdicts.insert(key.into(), verdict);
                }
            });
            verdict
        }
    }
}

#[cfg(test)]
mod tests;
