//! The screen against phonenumber itself: every candidate phonenumber
//! accepts must pass the screen. Candidates are the metadata's example
//! numbers written the ways people write them, those numbers with a digit
//! changed, and digit strings drawn at random, for every region.

use super::*;
use crate::mask::scan::DEFAULT_REGIONS;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn valid(region: Option<Region>, text: &str) -> bool {
    phonenumber::parse(region, text).is_ok_and(|n| phonenumber::is_valid(&n))
}

fn digits(text: &str) -> Vec<u8> {
    text.bytes().filter(u8::is_ascii_digit).collect()
}

/// Example national numbers of every region and type: country code,
/// number, national prefix.
fn examples() -> Vec<(u16, String, Option<String>)> {
    let mut out = Vec::new();
    for meta in DATABASE.iter() {
        for t in number_types(meta) {
            if let Some(example) = t.example() {
                out.push((
                    meta.country_code(),
                    example.to_owned(),
                    meta.national_prefix().map(str::to_owned),
                ));
            }
        }
    }
    out
}

/// The ways a number is written: grouped by spaces, hyphens or not at all.
fn written(rng: &mut StdRng, digits: &str) -> String {
    let sep = [" ", "-", "", "."][rng.gen_range(0..4)];
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % rng.gen_range(2..5) == 0 {
            out.push_str(sep);
        }
        out.push(c);
    }
    out
}

/// Seven to fifteen random digits.
fn random_digits(rng: &mut StdRng) -> String {
    let n = rng.gen_range(7..16);
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// `number` with one digit changed at random.
fn mutated(rng: &mut StdRng, number: &str) -> String {
    let mut changed: Vec<u8> = number.bytes().collect();
    let at = rng.gen_range(0..changed.len());
    changed[at] = b'0' + rng.gen_range(0..10u8);
    String::from_utf8(changed).expect("digits")
}

/// What phonenumber and the screen said of the candidates tried.
#[derive(Default)]
struct Tally {
    accepted: usize,
    screened_out: usize,
}

impl Tally {
    /// Fails when phonenumber accepts what the screen rejects.
    fn check(&mut self, text: &str, valid: bool, passes: bool) {
        if valid {
            self.accepted += 1;
            assert!(passes, "{text} is valid but the screen rejects it");
        } else if !passes {
            self.screened_out += 1;
        }
    }

    /// The test would prove nothing if nothing were valid or nothing
    /// screened out.
    fn assert_both(&self, accepted: usize, screened_out: usize) {
        assert!(self.accepted > accepted, "{} valid", self.accepted);
        assert!(
            self.screened_out > screened_out,
            "{} screened out",
            self.screened_out
        );
    }
}

#[test]
fn every_international_number_phonenumber_accepts_passes_the_screen() {
    let mut rng = StdRng::seed_from_u64(0x5eed_1234_abcd_0001);
    let mut tally = Tally::default();
    for (code, national, _) in examples() {
        let mut variants = vec![national.clone(), format!("0{national}")];
        for _ in 0..3 {
            variants.push(mutated(&mut rng, &national));
        }
        for v in variants {
            let text = format!("+{code} {}", written(&mut rng, &v));
            tally.check(
                &text,
                valid(None, &text),
                may_be_international(&digits(&text)),
            );
        }
    }
    for _ in 0..4_000 {
        let number = random_digits(&mut rng);
        let text = format!("+{}", written(&mut rng, &number));
        tally.check(
            &text,
            valid(None, &text),
            may_be_international(&digits(&text)),
        );
    }
    eprintln!(
        "international: {} valid, {} screened out",
        tally.accepted, tally.screened_out
    );
    tally.assert_both(1_000, 3_000);
}

#[test]
fn every_national_number_phonenumber_accepts_passes_the_screen() {
    let mut rng = StdRng::seed_from_u64(0x5eed_1234_abcd_0002);
    // The default regions, and some whose prefixes parse differently.
    let more = [Region::AR, Region::MX, Region::JP, Region::AU, Region::CH];
    let regions: Vec<National> = DEFAULT_REGIONS
        .iter()
        .chain(&more)
        .map(|&r| National::new(r))
        .collect();
    let examples = examples();
    let mut tally = Tally::default();
    for r in &regions {
        let code = DATABASE
            .by_id(r.region.as_ref())
            .expect("region")
            .country_code();
        let mut candidates = Vec::new();
        for (c, national, prefix) in examples.iter().filter(|e| e.0 == code) {
            let prefix = prefix.as_deref().unwrap_or("");
            candidates.push(national.clone());
            candidates.push(format!("{prefix}{national}"));
            candidates.push(format!("{c}{national}"));
            candidates.push(format!("00{c}{national}"));
            candidates.push(format!("{prefix}{}", mutated(&mut rng, national)));
        }
        for _ in 0..600 {
            let lead = ["", "0", "00", "011", "90"][rng.gen_range(0..5)];
            candidates.push(format!("{lead}{}", random_digits(&mut rng)));
        }
        for c in candidates {
            let text = written(&mut rng, &c);
            let valid = valid(Some(r.region), &text);
            tally.check(
                &format!("{text} in {:?}", r.region),
                valid,
                r.may_be(&digits(&text)),
            );
        }
    }
    eprintln!(
        "national: {} valid, {} screened out",
        tally.accepted, tally.screened_out
    );
    tally.assert_both(500, 5_000);
}

#[test]
fn unassigned_country_codes_are_screened_out() {
    assert!(!may_be_international(b"9991234567"));
    assert!(!may_be_international(b"2801234567"));
    // +44 numbers do not start with 0 after the code…
    assert!(!may_be_international(b"440123456789"));
    // …but a national prefix written after it is taken off: `+44 (0) 20…`.
    assert!(may_be_international(b"4402079460123"));
    assert!(may_be_international(b"442079460123"));
}

#[test]
fn a_lent_memo_validates_each_candidate_once_and_only_for_its_session() {
    let calls = std::cell::Cell::new(0);
    let validate = || {
        calls.set(calls.get() + 1);
        true
    };
    // Nothing lent: every candidate is validated.
    assert!(remembered(false, b"030 1234567", validate));
    assert!(remembered(false, b"030 1234567", validate));
    assert_eq!(calls.get(), 2);

    let mut first = Memo::default();
    let lent = lend(&mut first);
    assert!(remembered(false, b"030 1234567", validate));
    assert!(remembered(false, b"030 1234567", validate));
    assert_eq!(calls.get(), 3);
    // Read as international it is another candidate.
    assert!(remembered(true, b"030 1234567", validate));
    assert_eq!(calls.get(), 4);
    // A nested lend (a value masked inside a row) keeps the row's memo.
    let mut inner = Memo::default();
    let nested = lend(&mut inner);
    assert!(remembered(false, b"030 1234567", validate));
    assert_eq!(calls.get(), 4);
    nested.give_back(&mut inner);
    assert!(inner.verdicts.is_empty());
    lent.give_back(&mut first);
    assert_eq!(first.verdicts.len(), 2);
    // A debug print counts the verdicts and shows no number.
    assert_eq!(format!("{first:?}"), "Memo { 2 verdicts }");

    // Another session's memo starts empty and does not see the first's.
    let mut second = Memo::default();
    let lent = lend(&mut second);
    assert!(remembered(false, b"030 1234567", validate));
    assert_eq!(calls.get(), 5);
    // Dropped without being given back (a panic mid-row), the memo is
    // discarded, not left for the next session on the thread.
    drop(lent);
    assert!(remembered(false, b"030 1234567", validate));
    assert_eq!(calls.get(), 6);

    // Given back, the first session's verdicts are there again.
    let lent = lend(&mut first);
    assert!(remembered(false, b"030 1234567", validate));
    assert_eq!(calls.get(), 6);
    lent.give_back(&mut first);
}

#[test]
fn the_memo_is_bounded() {
    let mut memo = Memo::default();
    let lent = lend(&mut memo);
    for i in 0..MEMO_ENTRIES * 3 {
        remembered(false, format!("{i:012}").as_bytes(), || false);
    }
    lent.give_back(&mut memo);
    assert!(memo.verdicts.len() <= MEMO_ENTRIES);
}
