//! Check-digit algorithms and small validators. Every function takes the
//! value's significant characters only (separators removed) as ASCII bytes.

/// Luhn (mod 10), used by payment cards, the Canadian SIN and the Swedish
/// personnummer.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// The IBAN length of each country that issues IBANs (the SWIFT registry).
fn iban_length(country: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BI", 27),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DJ", 27),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FK", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HN", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"LY", 25),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MN", 20),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NI", 28),
        (b"NL", 18),
        (b"NO", 15),
        (b"OM", 23),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"RU", 33),
        (b"SA", 24),
        (b"SC", 31),
        (b"SD", 18),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"SO", 23),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
        (b"YE", 30),
    ];
    TABLE
        .iter()
        .find(|(c, _)| c.as_slice() == country)
        .map(|(_, n)| *n)
}

/// The IBAN length for the country code at the start of `iban`, if any.
pub fn iban_expected_length(iban: &[u8]) -> Option<usize> {
    iban.get(..2).and_then(iban_length)
}

/// ISO 13616: country length and mod-97 == 1 over the rearranged code.
pub fn iban(code: &[u8]) -> bool {
    if iban_expected_length(code) != Some(code.len()) {
        return false;
    }
    if !code[2..4].iter().all(u8::is_ascii_digit) || !code.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let mut rem = 0u32;
    for &c in code[4..].iter().chain(&code[..4]) {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97;
        }
    }
    rem == 1
}

/// Verhoeff, used by Aadhaar.
pub fn verhoeff(digits: &[u8]) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let mut c = 0u8;
    for (i, d) in digits.iter().rev().enumerate() {
        c = D[c as usize][P[i % 8][(d - b'0') as usize] as usize];
    }
    c == 0
}

fn digit(b: u8) -> u32 {
    u32::from(b - b'0')
}

/// Dutch BSN: the "eleven test" with weights 9..2 and -1.
pub fn nl_bsn(d: &[u8]) -> bool {
    if d.len() != 9 || d.iter().all(|&b| b == b'0') {
        return false;
    }
    let mut sum: i64 = 0;
    for (i, &b) in d[..8].iter().enumerate() {
        sum += i64::from(digit(b)) * (9 - i as i64);
    }
    sum -= i64::from(digit(d[8]));
    sum % 11 == 0
}

/// Brazilian CPF: two mod-11 check digits; repeated digits are invalid.
pub fn br_cpf(d: &[u8]) -> bool {
    if d.len() != 11 || d.iter().all(|&b| b == d[0]) {
        return false;
    }
    let check = |n: usize| {
        let sum: u32 = d[..n]
            .iter()
            .enumerate()
            .map(|(i, &b)| digit(b) * (n as u32 + 1 - i as u32))
            .sum();
        let r = (sum * 10) % 11;
        if r == 10 {
            0
        } else {
            r
        }
    };
    check(9) == digit(d[9]) && check(10) == digit(d[10])
}

/// Polish PESEL: weighted check digit and an encoded birth date.
pub fn pl_pesel(d: &[u8]) -> bool {
    if d.len() != 11 {
        return false;
    }
    const W: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let sum: u32 = d[..10].iter().zip(W).map(|(&b, w)| digit(b) * w).sum();
    if (10 - sum % 10) % 10 != digit(d[10]) {
        return false;
    }
    // Months carry the century: +0 for the 1900s, +20 for the 2000s (the
    // other centuries' offsets describe no living person).
    let year = digit(d[0]) * 10 + digit(d[1]);
    let coded = digit(d[2]) * 10 + digit(d[3]);
    let (month, year) = match coded {
        1..=12 => (coded, 1900 + year),
        21..=32 => (coded - 20, 2000 + year),
        _ => return false,
    };
    let day = digit(d[4]) * 10 + digit(d[5]);
    day >= 1 && day <= days_in_month(year, month)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// German Steuer-ID: ISO 7064 MOD 11,10, a non-zero first digit, and in the
/// first ten digits exactly one digit repeated (twice or thrice).
pub fn de_tax_id(d: &[u8]) -> bool {
    if d.len() != 11 || d[0] == b'0' {
        return false;
    }
    let mut counts = [0u8; 10];
    for &b in &d[..10] {
        counts[(b - b'0') as usize] += 1;
    }
    let repeated = counts.iter().filter(|&&c| c > 1).count();
    let max = counts.iter().copied().max().unwrap_or(0);
    if repeated != 1 || max > 3 {
        return false;
    }
    let mut product = 10u32;
    for &b in &d[..10] {
        let mut sum = (digit(b) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    check == digit(d[10])
}

/// French NIR (numéro de sécurité sociale): 13 digits and a 2-digit key,
/// with Corsica's 2A/2B departments counted as 19 and 18.
pub fn fr_nir(d: &[u8]) -> bool {
    if d.len() != 15 || !matches!(d[0], b'1' | b'2' | b'3' | b'4' | b'7' | b'8') {
        return false;
    }
    let month = digit(d[3]) * 10 + digit(d[4]);
    if !((1..=12).contains(&month) || (20..=42).contains(&month) || (50..=99).contains(&month)) {
        return false;
    }
    let mut n: u64 = 0;
    for &b in &d[..13] {
        n = n * 10 + u64::from(digit(b));
    }
    let key = u64::from(digit(d[13]) * 10 + digit(d[14]));
    97 - n % 97 == key
}

/// Corsican NIR with 2A/2B in place of the department digits.
pub fn fr_nir_corsica(code: &[u8]) -> bool {
    if code.len() != 15 || !(code[5] == b'2' && matches!(code[6], b'A' | b'B' | b'a' | b'b')) {
        return false;
    }
    let mut digits = [0u8; 15];
    digits.copy_from_slice(code);
    digits[6] = b'0';
    let mut n: u64 = 0;
    for &b in &digits[..13] {
        if !b.is_ascii_digit() {
            return false;
        }
        n = n * 10 + u64::from(digit(b));
    }
    let shift = if code[6].eq_ignore_ascii_case(&b'A') {
        1_000_000
    } else {
        2_000_000
    };
    n -= shift;
    if !code[13..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let key = u64::from(digit(code[13]) * 10 + digit(code[14]));
    97 - n % 97 == key
}

const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Spanish DNI: 8 digits and the mod-23 letter.
pub fn es_dni(digits: &[u8], letter: u8) -> bool {
    let mut n = 0u32;
    for &b in digits {
        n = n * 10 + digit(b);
    }
    DNI_LETTERS[(n % 23) as usize] == letter.to_ascii_uppercase()
}

/// Spanish NIE: X/Y/Z stand for 0/1/2 in front of the DNI computation.
pub fn es_nie(prefix: u8, digits: &[u8], letter: u8) -> bool {
    let lead = match prefix.to_ascii_uppercase() {
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        _ => return false,
    };
    let mut n = lead;
    for &b in digits {
        n = n * 10 + digit(b);
    }
    DNI_LETTERS[(n % 23) as usize] == letter.to_ascii_uppercase()
}

/// Finnish HETU: DDMMYY, a century sign, a 3-digit individual number and a
/// mod-31 check character.
pub fn fi_hetu(code: &[u8]) -> bool {
    const CHECK: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";
    if code.len() != 11 || !matches!(code[6], b'-' | b'+' | b'A'..=b'F' | b'U'..=b'Y') {
        return false;
    }
    if !code[..6].iter().chain(&code[7..10]).all(u8::is_ascii_digit) {
        return false;
    }
    let day = digit(code[0]) * 10 + digit(code[1]);
    let month = digit(code[2]) * 10 + digit(code[3]);
    if !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return false;
    }
    let mut n = 0u64;
    for &b in code[..6].iter().chain(&code[7..10]) {
        n = n * 10 + u64::from(digit(b));
    }
    CHECK[(n % 31) as usize] == code[10].to_ascii_uppercase()
}

/// A calendar date written YYMMDD or YYYYMMDD (any year; February 29th
/// accepted).
fn plausible_date(month: &[u8], day: &[u8]) -> bool {
    let m = month.iter().fold(0, |acc, &b| acc * 10 + digit(b));
    let d = day.iter().fold(0, |acc, &b| acc * 10 + digit(b));
    let days = match m {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// Korean resident registration number `YYMMDD-SNNNNNN`: a birth date and
/// a sex/century digit. Numbers issued since October 2020 carry no check
/// digit, so none is required; the hyphenated date-led layout is the proof.
pub fn kr_rrn(code: &[u8]) -> bool {
    code.len() == 14
        && code[6] == b'-'
        && code[..6].iter().chain(&code[7..]).all(u8::is_ascii_digit)
        && (b'1'..=b'8').contains(&code[7])
        && plausible_date(&code[2..4], &code[4..6])
}

/// Chinese resident identity card number: six region digits, a birth date
/// YYYYMMDD, three sequence digits and an ISO 7064 MOD 11-2 check
/// character (a digit or X).
pub fn cn_resident_id(code: &[u8]) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    if code.len() != 18
        || !code[..17].iter().all(u8::is_ascii_digit)
        || !(b'1'..=b'8').contains(&code[0])
    {
        return false;
    }
    let year = code[6..10].iter().fold(0, |acc, &b| acc * 10 + digit(b));
    if !(1900..=2099).contains(&year) || !plausible_date(&code[10..12], &code[12..14]) {
        return false;
    }
    let sum: u32 = code[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(&b, w)| digit(b) * w)
        .sum();
    let expected = b"10X98765432"[(sum % 11) as usize];
    code[17].to_ascii_uppercase() == expected
}

/// Swedish personnummer: YYMMDD + 4 digits, Luhn over those ten digits.
pub fn se_personnummer(ten: &[u8]) -> bool {
    if ten.len() != 10 {
        return false;
    }
    let month = digit(ten[2]) * 10 + digit(ten[3]);
    let day = digit(ten[4]) * 10 + digit(ten[5]);
    // Coordination numbers add 60 to the day.
    (1..=12).contains(&month) && ((1..=31).contains(&day) || (61..=91).contains(&day)) && luhn(ten)
}

/// Italian codice fiscale: 16 characters in a fixed letter/digit pattern
/// (digits may be replaced by letters for homocodes) and a check letter.
pub fn it_fiscal_code(code: &[u8]) -> bool {
    const ODD: [u32; 36] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23, // A-Z
    ];
    if code.len() != 16 {
        return false;
    }
    let upper: Vec<u8> = code.iter().map(u8::to_ascii_uppercase).collect();
    let letters_at = [0, 1, 2, 3, 4, 5, 8, 11, 15];
    if !letters_at.iter().all(|&i| upper[i].is_ascii_uppercase()) {
        return false;
    }
    // Positions that hold digits, or the homocode letters standing for them.
    let homocode = |b: u8| b.is_ascii_digit() || b"LMNPQRSTUV".contains(&b);
    let digits_at = [6, 7, 9, 10, 12, 13, 14];
    if !digits_at.iter().all(|&i| homocode(upper[i])) || !b"ABCDEHLMPRST".contains(&upper[8]) {
        return false;
    }
    let value = |b: u8| -> usize {
        if b.is_ascii_digit() {
            (b - b'0') as usize
        } else {
            (b - b'A') as usize + 10
        }
    };
    let mut sum = 0u32;
    for (i, &b) in upper[..15].iter().enumerate() {
        sum += if i % 2 == 0 {
            ODD[value(b)]
        } else if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A')
        };
    }
    upper[15] == b'A' + (sum % 26) as u8
}

/// UK National Insurance number prefix and suffix rules (there is no check
/// digit; the letter rules are what separate it from random codes).
pub fn uk_nino(prefix: [u8; 2], suffix: u8) -> bool {
    let [a, b] = [
        prefix[0].to_ascii_uppercase(),
        prefix[1].to_ascii_uppercase(),
    ];
    if b"DFIQUV".contains(&a) || b"DFIQUVO".contains(&b) {
        return false;
    }
    let pair = [a, b];
    if [b"BG", b"GB", b"NK", b"KN", b"TN", b"NT", b"ZZ"]
        .iter()
        .any(|p| **p == pair)
    {
        return false;
    }
    matches!(suffix.to_ascii_uppercase(), b'A'..=b'D')
}

/// US SSN: area not 000, 666 or 9xx; group not 00; serial not 0000; and not
/// the numbers published in advertising.
pub fn us_ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = &d[..3];
    if area == b"000"
        || area == b"666"
        || area[0] == b'9'
        || &d[3..5] == b"00"
        || &d[5..] == b"0000"
    {
        return false;
    }
    !matches!(
        d,
        b"078051120" | b"219099999" | b"123456789" | b"111111111" | b"987654320"
    )
}

/// A payment card number's issuer prefix and length (the IIN table of the
/// major networks). Luhn is checked separately.
pub fn card_issuer(d: &[u8]) -> bool {
    let n = d.len();
    let prefix = |k: usize| -> u32 { d[..k].iter().fold(0, |acc, &b| acc * 10 + digit(b)) };
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    let p6 = prefix(6);
    match d[0] {
        b'4' => matches!(n, 13 | 16 | 19),              // Visa
        b'5' if (51..=55).contains(&p2) => n == 16,     // Mastercard
        b'2' if (2221..=2720).contains(&p4) => n == 16, // Mastercard
        b'3' if p2 == 34 || p2 == 37 => n == 15,        // Amex
        // JCB's range is 3528-3589, but 35-led test and generated numbers
        // (Faker's among them) use the whole 35 block.
        b'3' if p2 == 35 => (16..=19).contains(&n), // JCB
        b'3' if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 || p3 == 309 => {
            (14..=19).contains(&n) // Diners
        }
        b'6' if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) => (16..=19).contains(&n), // Discover
        b'6' if (622126..=622925).contains(&p6) => (16..=19).contains(&n), // Discover/UnionPay
        b'6' if p2 == 62 => (16..=19).contains(&n),                        // UnionPay
        b'8' if p2 == 81 => (16..=19).contains(&n),                        // UnionPay (81 block)
        b'5' if p2 == 50 || (56..=58).contains(&p2) => (12..=19).contains(&n), // Maestro
        b'6' if (60..=69).contains(&p2) => (12..=19).contains(&n),         // Maestro and others
        b'2' if p4 == 2131 => n == 15,                                     // JCB legacy
        b'1' if p4 == 1800 => n == 15,                                     // JCB legacy
        b'2' if (2200..=2204).contains(&p4) => (16..=19).contains(&n),     // Mir
        _ => false,
    }
}

/// Digits that are all the same, or a run counting up or down: test values
/// and fillers, not identifiers.
pub fn is_filler_digits(d: &[u8]) -> bool {
    if d.len() < 2 {
        return false;
    }
    let same = d.iter().all(|&b| b == d[0]);
    let up = d.windows(2).all(|w| (w[0] - b'0' + 1) % 10 == w[1] - b'0');
    let down = d.windows(2).all(|w| (w[1] - b'0' + 1) % 10 == w[0] - b'0');
    same || up || down
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Template and filler values that stand in for a secret in docs and config
/// templates: `${VAR}`, `{{ var }}`, `<token>`, `xxxx`, `…EXAMPLE`.
pub fn is_placeholder(s: &[u8]) -> bool {
    if s.is_empty() || has_placeholder_word(s) || is_template(s) {
        return true;
    }
    let contains = |needle: &[u8]| s.windows(needle.len()).any(|w| w == needle);
    if contains(b"****") || contains(b"${") || contains(b"{{") {
        return true;
    }
    // A long run of one character.
    let mut run = 1;
    for w in s.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        if run >= 6 {
            return true;
        }
    }
    false
}

/// Words and fillers that mark sample values: `…EXAMPLE`, `xxxx`,
/// `changeme`, `your_api_key`.
pub fn has_placeholder_word(s: &[u8]) -> bool {
    let lower: Vec<u8> = s.iter().map(u8::to_ascii_lowercase).collect();
    let contains = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    let contains_exact = |needle: &[u8]| s.windows(needle.len()).any(|w| w == needle);
    contains(b"example")
        || contains_exact(b"xxxx")
        || contains_exact(b"XXXX")
        || contains(b"changeme")
        || contains(b"placeholder")
        || contains(b"your_")
        || contains(b"your-")
        || contains(b"dummy")
        || contains(b"redacted")
        || contains(b"......")
        || contains(b"00000000")
}

/// A whole value that is a template or variable reference rather than a
/// secret: `${VAR}`, `$VAR`, `{{ var }}`, `<password>`, `%(name)s`, or one
/// character repeated.
pub fn is_template(s: &[u8]) -> bool {
    let wrapped = |open: &[u8], close: &[u8]| {
        s.len() > open.len() + close.len() && s.starts_with(open) && s.ends_with(close)
    };
    if wrapped(b"${", b"}") || wrapped(b"{{", b"}}") || wrapped(b"%(", b")s") || wrapped(b"%", b"%")
    {
        return true;
    }
    if wrapped(b"<", b">") && !s[1..s.len() - 1].iter().any(|&b| b == b'<' || b == b'>') {
        return true;
    }
    if s.len() > 1
        && s[0] == b'$'
        && s[1..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
    {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if [
        &b"changeme"[..],
        b"password",
        b"secret",
        b"redacted",
        b"placeholder",
        b"null",
        b"none",
    ]
    .contains(&lower.as_slice())
    {
        return true;
    }
    !s.is_empty() && s.iter().all(|&b| b == s[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_accept_published_examples_and_reject_neighbours() {
        assert!(luhn(b"4111111111111111") && !luhn(b"4111111111111112"));
        assert!(iban(b"DE89370400440532013000") && !iban(b"DE89370400440532013001"));
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(verhoeff(b"234123412346") && !verhoeff(b"234123412347"));
        assert!(nl_bsn(b"111222333") && !nl_bsn(b"111222334"));
        assert!(br_cpf(b"52998224725") && !br_cpf(b"52998224726") && !br_cpf(b"11111111111"));
        assert!(pl_pesel(b"44051401359") && !pl_pesel(b"44051401358"));
        assert!(de_tax_id(b"86095742719") && !de_tax_id(b"86095742718"));
        assert!(fr_nir(b"255081416802538") && !fr_nir(b"255081416802539"));
        assert!(es_dni(b"12345678", b'Z') && !es_dni(b"12345678", b'A'));
        assert!(es_nie(b'X', b"1234567", b'L') && !es_nie(b'X', b"1234567", b'M'));
        assert!(fi_hetu(b"131052-308T") && !fi_hetu(b"131052-308U"));
        assert!(se_personnummer(b"8112289874") && !se_personnummer(b"8112289875"));
        assert!(
            kr_rrn(b"980215-1979190") && !kr_rrn(b"981315-1979190") && !kr_rrn(b"980215-9979190")
        );
        assert!(cn_resident_id(b"451424198708058253") && cn_resident_id(b"11010519491231002X"));
        assert!(!cn_resident_id(b"451424198708058254") && !cn_resident_id(b"451424198713058253"));
        assert!(it_fiscal_code(b"RSSMRA85T10A562S") && !it_fiscal_code(b"RSSMRA85T10A562T"));
        assert!(us_ssn(b"536904399") && !us_ssn(b"666123456") && !us_ssn(b"078051120"));
        assert!(uk_nino(*b"AB", b'C') && !uk_nino(*b"BG", b'A') && !uk_nino(*b"AB", b'E'));
        assert!(card_issuer(b"4111111111111111") && card_issuer(b"378282246310005"));
        assert!(!card_issuer(b"9111111111111111"));
    }

    #[test]
    fn placeholders_and_fillers() {
        assert!(is_placeholder(b"AKIAIOSFODNN7EXAMPLE"));
        assert!(is_placeholder(b"${DB_PASSWORD}"));
        assert!(is_placeholder(b"xxxxxxxxxxxx"));
        assert!(!is_placeholder(b"hV9s2kQ7wLm3"));
        assert!(is_filler_digits(b"1234567890") && is_filler_digits(b"9999"));
        assert!(!is_filler_digits(b"4111111111111111"));
    }
}
