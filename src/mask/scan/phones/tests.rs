//! The screen against phonenumber itself: every candidate phonenumber
//! accepts must pass the screen. Candidates are the metadata's example
//! numbers written the ways people write them, those numbers with a digit
//! changed, and digit strings drawn at random, for every region.

use super::*;

/// xorshift64*: the same candidates every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

fn valid(region: Option<Region>, text: &str) -> bool {
    phonenumber::parse(region, text).is_ok_and(|n| phonenumber::is_valid(&n))
}

fn digits(text: &str) -> Vec<u8> {
    text.bytes().filter(u8::is_ascii_digit).collect()
}

/// Example national numbers of every region and type.
fn examples() -> Vec<(u16, String, Option<String>)> {
    let mut out = Vec::new();
    for meta in DATABASE.iter() {
        let d = meta.descriptors();
        let types = [
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
        ];
        for t in types.into_iter().flatten() {
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
fn written(rng: &mut Rng, digits: &str) -> String {
    let sep = [" ", "-", "", "."][rng.below(4)];
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % (2 + rng.below(3)) == 0 {
            out.push_str(sep);
        }
        out.push(c);
    }
    out
}

#[test]
fn every_international_number_phonenumber_accepts_passes_the_screen() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut accepted, mut screened_out) = (0, 0);
    for (code, national, _) in examples() {
        let mut variants = vec![national.clone()];
        for _ in 0..3 {
            let mut changed: Vec<u8> = national.bytes().collect();
            let at = rng.below(changed.len());
            changed[at] = b'0' + rng.below(10) as u8;
            variants.push(String::from_utf8(changed).expect("digits"));
        }
        variants.push(format!("0{national}"));
        for v in variants {
            let text = format!("+{code} {}", written(&mut rng, &v));
            let passes = may_be_international(&digits(&text));
            if valid(None, &text) {
                accepted += 1;
                assert!(passes, "{text} is valid but the screen rejects it");
            } else if !passes {
                screened_out += 1;
            }
        }
    }
    for _ in 0..4_000 {
        let number = rng_digits(&mut rng);
        let text = format!("+{}", written(&mut rng, &number));
        let passes = may_be_international(&digits(&text));
        if valid(None, &text) {
            accepted += 1;
            assert!(passes, "{text} is valid but the screen rejects it");
        } else if !passes {
            screened_out += 1;
        }
    }
    eprintln!("international: {accepted} valid, {screened_out} screened out");
    // The test would prove nothing if nothing were valid or nothing
    // screened out.
    assert!(accepted > 1000, "{accepted} valid");
    assert!(screened_out > 3_000, "{screened_out} screened out");
}

fn rng_digits(rng: &mut Rng) -> String {
    let n = 7 + rng.below(9);
    rng.digits(n)
}

#[test]
fn every_national_number_phonenumber_accepts_passes_the_screen() {
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let regions: Vec<National> = [
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
        Region::AR,
        Region::MX,
        Region::JP,
        Region::AU,
        Region::CH,
    ]
    .into_iter()
    .map(National::new)
    .collect();
    let examples = examples();
    let (mut accepted, mut screened_out) = (0, 0);
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
            let mut changed: Vec<u8> = national.bytes().collect();
            let at = rng.below(changed.len());
            changed[at] = b'0' + rng.below(10) as u8;
            candidates.push(format!(
                "{prefix}{}",
                String::from_utf8(changed).expect("digits")
            ));
        }
        for _ in 0..600 {
            let lead = ["", "0", "00", "011", "90"][rng.below(5)];
            candidates.push(format!("{lead}{}", rng_digits(&mut rng)));
        }
        for c in candidates {
            let text = written(&mut rng, &c);
            let passes = r.may_be(&digits(&text));
            if valid(Some(r.region), &text) {
                accepted += 1;
                assert!(
                    passes,
                    "{text} is valid in {:?} but the screen rejects it",
                    r.region
                );
            } else if !passes {
                screened_out += 1;
            }
        }
    }
    eprintln!("national: {accepted} valid, {screened_out} screened out");
    assert!(accepted > 500, "{accepted} valid");
    assert!(screened_out > 5_000, "{screened_out} screened out");
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
