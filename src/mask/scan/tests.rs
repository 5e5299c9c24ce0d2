use super::*;

fn kinds(text: &str) -> Vec<(&'static str, String)> {
    let scanner = Scanner::new(&Detectors::all());
    let mut out = Vec::new();
    scanner.scan(text.as_bytes(), &mut out);
    out.iter()
        .map(|f| (f.kind.name(), text[f.start..f.end].to_string()))
        .collect()
}

fn one(text: &str) -> (&'static str, String) {
    let found = kinds(text);
    assert_eq!(found.len(), 1, "{text:?} gave {found:?}");
    found[0].clone()
}

fn none(text: &str) {
    let found = kinds(text);
    assert!(found.is_empty(), "{text:?} gave {found:?}");
}

#[test]
fn finds_each_kind_with_exact_spans() {
    let cases: &[(&str, &str, &str)] = &[
        ("mail jane.doe+x@mail.example.co.uk now", "email", "jane.doe+x@mail.example.co.uk"),
        ("card 4111 1111 1111 1111.", "card", "4111 1111 1111 1111"),
        ("4111-1111-1111-1111", "card", "4111-1111-1111-1111"),
        ("amex 3782 822463 10005", "card", "3782 822463 10005"),
        ("pan=5555555555554444;", "card", "5555555555554444"),
        ("IBAN DE89 3704 0044 0532 0130 00 paid", "iban", "DE89 3704 0044 0532 0130 00"),
        ("GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
        ("ssn: 536-90-4399", "us_ssn", "536-90-4399"),
        ("SSN 536904399", "us_ssn", "536904399"),
        ("NI AB 12 34 56 C ok", "uk_nino", "AB 12 34 56 C"),
        ("JG103759A", "uk_nino", "JG103759A"),
        ("Steuer-ID 86095742719", "de_tax_id", "86095742719"),
        ("NIR 2 55 08 14 168 025 38", "fr_nir", "2 55 08 14 168 025 38"),
        ("DNI 12345678Z", "es_dni", "12345678Z"),
        ("NIE X1234567L", "es_nie", "X1234567L"),
        ("CF RSSMRA85T10A562S", "it_fiscal_code", "RSSMRA85T10A562S"),
        ("BSN 111222333", "nl_bsn", "111222333"),
        ("PESEL 44051401359", "pl_pesel", "44051401359"),
        ("CPF 529.982.247-25", "br_cpf", "529.982.247-25"),
        ("aadhaar 2341 2341 2346", "in_aadhaar", "2341 2341 2346"),
        ("SIN 130 692 544", "ca_sin", "130 692 544"),
        ("pnr 811228-9874", "se_personnummer", "811228-9874"),
        ("hetu 131052-308T", "fi_hetu", "131052-308T"),
        ("call +1 415-555-2671 today", "phone", "+1 415-555-2671"),
        ("Tel. +49 30 901820", "phone", "+49 30 901820"),
        ("(415) 555-2671", "phone", "(415) 555-2671"),
        ("from 203.0.113.7 at", "ipv4", "203.0.113.7"),
        ("addr 2001:db8:85a3::8a2e:370:7334,", "ipv6", "2001:db8:85a3::8a2e:370:7334"),
        ("AKIAQWERTYUIOPASDFGH", "aws_access_key", "AKIAQWERTYUIOPASDFGH"),
        ("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", "github_token", "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"),
        ("xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token", "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("glpat-Zx8vY2kQ9mN4pL7rT1sW", "gitlab_token", "glpat-Zx8vY2kQ9mN4pL7rT1sW"),
        ("AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW", "google_api_key", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"),
        ("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", "openai_key", "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"),
        ("npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "npm_token", "npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
        (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
        ("dsn postgres://app:s3cr3tPass@db.internal:5432/prod", "url_credentials", "s3cr3tPass"),
    ];
    for (text, kind, span) in cases {
        assert_eq!(one(text), (*kind, span.to_string()), "{text}");
    }
}

#[test]
fn aws_secret_needs_a_key_id_or_hot_word() {
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8F3kLm2Q";
    let found = kinds(&format!("aws_secret_access_key = {secret}"));
    assert_eq!(found, vec![("aws_secret_key", secret.to_string())]);
    let found = kinds(&format!("AKIAQWERTYUIOPASDFGH,{secret}"));
    assert_eq!(found.len(), 2, "{found:?}");
    none(&format!("blob {secret}"));
}

#[test]
fn private_key_block_is_masked_whole_even_when_cut_short() {
    let body = "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi7aS3v7zR2oa0uJ7gFqkzZ2w5X";
    let pem =
        format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n{body}\n-----END RSA PRIVATE KEY-----");
    assert_eq!(
        one(&format!("key: {pem} end")),
        ("private_key", pem.clone())
    );
    let cut = format!("-----BEGIN PRIVATE KEY-----\n{body}");
    assert_eq!(one(&cut), ("private_key", cut.clone()));
    none("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----");
}

#[test]
fn look_alikes_are_not_flagged() {
    for text in [
        "550e8400-e29b-41d4-a716-446655440000",
        "d41d8cd98f00b204e9800998ecf8427e",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "978-3-16-148410-0",
        "9783161484100",
        "4111111111111112",
        "1234567890123456",
        "order 2024-01-31 shipped",
        "31.01.2024",
        "01/31/2024",
        "20240131",
        "2024-01-31T12:30:45Z",
        "version 1.2.3.4",
        "v2.10.4",
        "10.0.19045.2965",
        "1.2.3",
        "ORD-2024-000123",
        "1,234.56",
        "1.234.567",
        "12:30:45",
        "00:1A:2B:3C:4D:5E",
        "user@localhost",
        "@decorator.method",
        "AKIAIOSFODNN7EXAMPLE",
        "${API_KEY}",
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
        "postgres://user:${DB_PASSWORD}@host/db",
        "https://example.com/path?q=1",
        "eyJub3QganNvbi4uLi4uLi4.eyJ4IjoxfQ.c2lnbmF0dXJl",
        "123456789",
        "536904399",
        "::",
        "::1",
        "1700000000",
        "SGVsbG8gV29ybGQhIFRoaXMgaXMgYSBiYXNlNjQgYmxvYiBvZiB0ZXh0Lg==",
    ] {
        none(text);
    }
}

#[test]
fn overlaps_go_to_the_stronger_detector() {
    // A card's digits also parse as a phone number somewhere.
    assert_eq!(one("4111 1111 1111 1111").0, "card");
    // An SSN is not a phone number.
    assert_eq!(one("536-90-4399").0, "us_ssn");
}

#[test]
fn several_values_in_free_text() {
    let found =
        kinds("Kontakt: anna.schmidt@web.de, Tel. +49 30 901820, IBAN DE89370400440532013000.");
    let names: Vec<_> = found.iter().map(|f| f.0).collect();
    assert_eq!(names, ["email", "phone", "iban"]);
}

#[test]
fn non_ascii_text_and_invalid_utf8_are_scanned_as_bytes() {
    assert_eq!(one("Größe: 4111111111111111 €").0, "card");
    let mut bytes = b"\xff\xfe card 4111111111111111 \xc3".to_vec();
    bytes.extend_from_slice(b" jane@example.org");
    let scanner = Scanner::new(&Detectors::all());
    let mut out = Vec::new();
    scanner.scan(&bytes, &mut out);
    assert_eq!(
        out.iter().map(|f| f.kind).collect::<Vec<_>>(),
        [Kind::Card, Kind::Email]
    );
}

#[test]
fn disabled_detectors_find_nothing() {
    let scanner = Scanner::new(&Detectors::standard());
    let mut out = Vec::new();
    scanner.scan(b"BSN 111222333 PESEL 44051401359", &mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn digit_finder_agrees_with_a_plain_search() {
    let text: Vec<u8> = (0u8..=255).chain(b"abc/:9".iter().copied()).collect();
    for from in 0..text.len() {
        assert_eq!(
            find_digit(&text, from),
            (from..text.len()).find(|&i| text[i].is_ascii_digit()),
            "{from}"
        );
    }
}

#[test]
fn long_documents_resolve_overlaps_in_one_sweep() {
    let text: String = (0..200)
        .map(|i| format!("user{i}@example.org 4111 1111 1111 1111 "))
        .collect();
    let found = kinds(&text);
    assert_eq!(found.len(), 400);
    assert!(found.iter().step_by(2).all(|f| f.0 == "email"));
    assert!(found
        .iter()
        .skip(1)
        .step_by(2)
        .all(|f| f.0 == "card" && f.1 == "4111 1111 1111 1111"));
}

#[test]
fn phone_formats_people_write() {
    for (text, span) in [
        ("(415)555-2671", "(415)555-2671"),
        ("415.555.2671", "415.555.2671"),
        ("001-415-555-2671", "001-415-555-2671"),
        ("+1-415-555-2671x123 ok", "+1-415-555-2671x123"),
        ("call 415-555-2671 ext. 44", "415-555-2671 ext. 44"),
        ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
        ("+33 6 12 34 56 78", "+33 6 12 34 56 78"),
        ("Tel: 0221 1234567", "0221 1234567"),
    ] {
        assert_eq!(one(text), ("phone", span.to_string()), "{text}");
    }
}
