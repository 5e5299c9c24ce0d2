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
        // Checksum wrong (typed by hand, or generated): still a token.
        ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "github_token", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
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
    let scanner = Scanner::new(
        &Detectors::standard()
            .without(Kind::NlBsn)
            .without(Kind::PlPesel),
    );
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

#[test]
fn finds_password_hashes_in_every_stored_format() {
    let cases: &[&str] = &[
        // PostgreSQL: SCRAM verifier and the old md5 form.
        "SCRAM-SHA-256$4096:Wz2U5sRgmYq6Jv8TDd1uvA==$Jc4Tj1eZc3jmpH5uQzDkw9pLuXxhzKtSqgP1c7Xx3hA=:XGfOpf6pPqZyCqWmi5nRkCk3sJx1HNDsOJAbk1DjxQQ=",
        "md5a3556571e93b0d20722ba62be61e8c2d",
        // MySQL / MariaDB: mysql_native_password and caching_sha2_password.
        "*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9",
        "$A$005$aaaaaaaaaaaaaaaaaaaaDjXnYnhj8h2vy1MjzOAfdCtIdtxWTyd9X6ER9KV/vGA",
        // crypt(3) and PHC strings.
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "$2y$10$abcdefghijklmnopqrstuuJ8wO0W7zE3bZzqM1y6bK1QeI2Sgl7yG",
        "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
        "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        "$7$C6..../....SodiumChloride$kBGj9fHznVYFQMEn/qDCfrDevf9YDtcDdKvEqHJLV8D",
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7",
        "$5$rounds=80000$wnsT7Yr92oJoP28r$cKhJImk5mfuSKV9b3mumNzlbstFUplKtQXXMo4G6Ep5",
        "$6$saltsalt$Yt8wfKx4mC8Xo0U8O1jnp3J1iHcrjEDNbAcGBFVzOMZyt6b0bVxpErkaHxw5mV.9ZtL0WXmRW6tLgCq0d5tRf1",
        "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/",
        "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/",
        // Django and LDAP.
        "pbkdf2_sha256$260000$aBcDeFgHiJkLmNoP$Q2hhbmdlTWVQbGVhc2VUaGlzSXNBSGFzaDEyMw=",
        "argon2$argon2id$v=19$m=102400,t=2,p=8$Y0FYRnhUTWtJQmJY$Ul3kZ0uC2Bbr2vqYsKk8Zw",
        "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
        "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
        // The first digit only after a `+` or `/` of the base64.
        "{SHA}zLlR+NmDD5e2oL6Wx8MUpWGfcW4=",
        "{SSHA}/p5EgOZRC2Zt4Pfr9lrxZSGCX7L3u58oNNjQeA==",
        "{CRYPT}$6$saltsalt$Yt8wfKx4mC8Xo0U8O1jnp3J1iHcrjEDNbAcGBFVzOMZyt6b0bVxpErkaHxw5mV.9ZtL0WXmRW6tLgCq0d5tRf1",
    ];
    for hash in cases {
        assert_eq!(one(hash), ("password_hash", hash.to_string()), "{hash}");
        let found = kinds(&format!("user alice: {hash}, active"));
        assert_eq!(
            found,
            vec![("password_hash", hash.to_string())],
            "{hash} in text"
        );
    }
}

#[test]
fn caching_sha2_with_a_binary_salt_masks_the_rest_of_the_value() {
    // The salt is any 7-bit byte but NUL and `$`: here quotes, a space and
    // a control byte, which no alphabet bounds.
    let value = "$A$005$\x01' \"\x7f;ab\tcd:ef=gh  trailing text";
    let found = kinds(value);
    assert_eq!(found, vec![("password_hash", value.to_string())]);
}

#[test]
fn digests_and_look_alikes_are_not_password_hashes() {
    none("commit 3f786850e387550fdab836ed7c6dc249bb7ed8aa");
    none("sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    none("checksum d41d8cd98f00b204e9800998ecf8427e");
    none("md5 a3556571e93b0d20722ba62be61e8c2d");
    none("costs $12.50 or $1$ each, $2a and $6");
    none("PATH=$HOME/bin:$PATH");
    none("2*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9");
    none("*6bb4837eb74329105ee4568dda7dc67ed2ca2ad9");
    none("{SHA} and {SSHA} are LDAP schemes");
    none("SCRAM-SHA-256$4096:short$x:y");
}

#[test]
fn finds_values_glued_to_their_label() {
    let cases: &[(&str, &str, &str)] = &[
        ("cc#4111111111111111", "card", "4111111111111111"),
        ("user_4111111111111111", "card", "4111111111111111"),
        ("card/5555555555554444", "card", "5555555555554444"),
        ("pan.4111 1111 1111 1111", "card", "4111 1111 1111 1111"),
        ("4111111111111111/12/27", "card", "4111111111111111"),
        ("4111111111111111/1227", "card", "4111111111111111"),
        ("4111111111111111.00", "card", "4111111111111111"),
        ("4111.1111.1111.1111", "card", "4111.1111.1111.1111"),
        ("SSN#536-22-8714", "us_ssn", "536-22-8714"),
        ("ssn_536-22-8714", "us_ssn", "536-22-8714"),
        ("ssn:536228714", "us_ssn", "536228714"),
        (
            "de89 3704 0044 0532 0130 00",
            "iban",
            "de89 3704 0044 0532 0130 00",
        ),
        (
            "iban: gb82west12345698765432",
            "iban",
            "gb82west12345698765432",
        ),
        ("email:john@example.com", "email", "john@example.com"),
        ("jöhn@exämple.de", "email", "jöhn@exämple.de"),
        ("write to jane@example.org」", "email", "jane@example.org"),
    ];
    for (text, kind, span) in cases {
        assert_eq!(one(text), (*kind, span.to_string()), "{text}");
    }
}

#[test]
fn glued_look_alikes_stay_whole() {
    // Order numbers, versions, timestamps, dotted numbers and tokens.
    none("ORD-2021-012649");
    none("INV-2024-4111111111111112");
    none("ORD-123-45-6789");
    none("v4.1.11.1111");
    none("4.1.11.1111");
    none("20241231235959123");
    none("4111.111.1111.1111");
    none("4111111111111111-abc");
    none("a1b2-4111111111111111");
    none("4111111111111111.12345");
    none("De89370400440532013000");
}

#[test]
fn finds_values_inside_base64_and_hex() {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let plain = "contact john.doe@example.com or card 4111 1111 1111 1111";
    let std = STANDARD.encode(plain);
    let url = URL_SAFE_NO_PAD.encode(format!("{plain}??>>"));
    let hex = crate::hex::encode(plain.as_bytes());
    for encoded in [&std, &url, &hex, &hex.to_ascii_uppercase()] {
        let text = format!("blob={encoded}; ok");
        let found = kinds(&text);
        assert_eq!(found.len(), 1, "{text}: {found:?}");
        assert_eq!(found[0].1, *encoded, "the whole run is masked");
    }
    // Twice encoded.
    let twice = STANDARD.encode(crate::hex::encode(b"jane@example.org"));
    assert_eq!(one(&twice).1, twice);
    // A run glued by `-` to words before it: the URL-safe reading spans
    // them all and fails; the standard reading of the run itself is still
    // tried.
    let glued = STANDARD.encode("contact john.doe@example.com, thanks");
    let text = format!("ref-12345678-{glued}");
    assert_eq!(one(&text), ("email", glued.clone()), "{text}");
    // Padded runs without a single digit, which the digit pass never sees.
    for value in ["jane@example.com", "lisa@example.com"] {
        let encoded = STANDARD.encode(value);
        assert!(
            encoded.ends_with('=') && !encoded.bytes().any(|b| b.is_ascii_digit()),
            "{encoded}"
        );
        assert_eq!(one(&format!("v: {encoded}")), ("email", encoded.clone()));
    }
}

#[test]
fn encoded_runs_without_values_are_left_alone() {
    use base64::engine::general_purpose::STANDARD;
    none(&STANDARD.encode("just some harmless words, nothing else"));
    none(&crate::hex::encode(b"order 1234 shipped"));
    // Random bytes, keys and hashes decode to no text.
    none("dGhpcyBpcyBub3QgYSByZWFsIGtleSBhdCBhbGw9PT0");
    none("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    none("/usr/local/lib/python3.12/site-packages");
    none("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA");
}

#[test]
fn phone_numbers_keep_their_national_layouts_and_look_alikes_do_not() {
    let found = [
        ("Rufnummer 030 127750", "030 127750"),
        ("mobiel 06 12343929", "06 12343929"),
        ("Ph: 074104 14761", "074104 14761"),
        ("電話 03-1234-5678", "03-1234-5678"),
        ("415.555.2671", "415.555.2671"),
        ("01.23.45.67.89", "01.23.45.67.89"),
        ("Tel. 030/1234567", "030/1234567"),
    ];
    for (text, span) in found {
        assert_eq!(one(text), ("phone", span.to_string()), "{text}");
    }
    // Versions, IP-like numbers, invoice numbers and reference groups that
    // some region's rules would accept.
    for text in [
        "version 3.19.98.8109",
        "3.13.74.6063",
        "call 207.176.7264.61",
        "77.2316.158.143",
        "Rechnung Nr. 14730/9973",
        "8091 0761 4283",
        "9030 0223 4748",
    ] {
        none(text);
    }
}

#[test]
fn standard_set_finds_national_ids_in_printed_forms_and_bare_runs_by_name() {
    let scanner = Scanner::new(&Detectors::standard());
    let found = |text: &str| {
        let mut out = Vec::new();
        scanner.scan(text.as_bytes(), &mut out);
        out.iter()
            .map(|f| (f.kind.name(), text[f.start..f.end].to_string()))
            .collect::<Vec<_>>()
    };
    for (text, kind, value) in [
        ("VRCCCL47R16G698J", "it_fiscal_code", "VRCCCL47R16G698J"),
        ("12345678Z", "es_dni", "12345678Z"),
        ("X1234567L", "es_nie", "X1234567L"),
        ("250384-608U", "fi_hetu", "250384-608U"),
        ("870805-6067", "se_personnummer", "870805-6067"),
        ("175091730037964", "fr_nir", "175091730037964"),
        ("529.982.247-25", "br_cpf", "529.982.247-25"),
        ("2341 2341 2346", "in_aadhaar", "2341 2341 2346"),
        ("AB 12 34 56 C", "uk_nino", "AB 12 34 56 C"),
        ("PESEL: 83071982596", "pl_pesel", "83071982596"),
        ("BSN 111222333", "nl_bsn", "111222333"),
        ("CPF 52998224725", "br_cpf", "52998224725"),
        ("980215-1979190", "kr_rrn", "980215-1979190"),
        ("451424198708058253", "cn_resident_id", "451424198708058253"),
        (
            "ID 11010519491231002X.",
            "cn_resident_id",
            "11010519491231002X",
        ),
    ] {
        assert_eq!(found(text), vec![(kind, value.to_string())], "{text:?}");
    }
    // Bare runs that happen to pass a check digit: ids, not identities.
    for text in [
        "83071982596",
        "111222333",
        "52998224725",
        "order 234123412346",
    ] {
        assert!(found(text).is_empty(), "{text:?} gave {:?}", found(text));
    }
    // A policy that names the detector takes bare runs anywhere.
    let bare = Scanner::new(&Detectors::standard().with_bare_national_ids(&[Kind::PlPesel]));
    let mut out = Vec::new();
    bare.scan(b"83071982596", &mut out);
    assert_eq!(out.len(), 1);
    bare.scan(b"111222333", &mut out);
    assert!(out.is_empty(), "only the named identifier is taken bare");
}

#[test]
fn cards_in_the_whole_35_block_and_unionpay_81_are_cards() {
    assert_eq!(one("3519355019374996"), ("card", "3519355019374996".into()));
    assert_eq!(one("8169247178993314"), ("card", "8169247178993314".into()));
}

#[test]
fn readings_with_fewer_than_seven_digits_are_still_found() {
    // Short numbers skip every reading that needs seven digits; these two
    // kinds need fewer.
    assert_eq!(one("host 1.2.3.4 is up"), ("ipv4", "1.2.3.4".into()));
    assert_eq!(one("ip=10.0.0.1;"), ("ipv4", "10.0.0.1".into()));
    assert_eq!(one("NI AB 123456 C"), ("uk_nino", "AB 123456 C".into()));
    assert_eq!(
        one("ni: AB 12 34 56 C."),
        ("uk_nino", "AB 12 34 56 C".into())
    );
    none("qty 12 x 345.67, took 01:33:45, due 05.03.2024, 12.5%");
}

#[test]
fn ipv6_addresses_in_every_text_form_and_times_are_not_one() {
    for addr in [
        "2001:db8:85a3:0:0:8a2e:370:7334",
        "2001:db8::7334",
        "fe80::1",
        "2001:DB8:0:0:1::1",
        // With an IPv4 tail the whole address is one IPv6 value, not an
        // IPv4 address with a prefix left in clear.
        "::ffff:192.0.2.128",
        "64:ff9b::203.0.113.7",
        "2001:db8:0:0:0:0:192.0.2.33",
    ] {
        assert_eq!(one(&format!("from {addr} ok")), ("ipv6", addr.to_string()));
    }
    none("placed at 14:22:07, updated 2025-11-03T14:22:07.123Z, took 01:33:45");
}

#[test]
fn digit_groups_past_the_buffers_are_counted_but_not_kept() {
    let read = DigitGroups::of(b"+44 20 7946 0123");
    assert_eq!(
        (read.lens(), &*read.digits),
        (&[2, 2, 4, 4][..], &b"442079460123"[..])
    );
    let long = DigitGroups::of(&[b'1'; 33]);
    assert_eq!((long.n, long.lens(), long.digits.len), (1, &[33][..], 32));
    let many = DigitGroups::of("1-".repeat(20).as_bytes());
    assert_eq!((many.n, many.lens().len(), many.digits.len), (20, 16, 20));
}

#[test]
fn values_written_in_characters_that_stand_for_ascii_are_found_over_their_original_bytes() {
    for (text, kind, value) in [
        (
            "電話 ＋８１ ３－１２３４－５６７８ まで",
            "phone",
            "＋８１ ３－１２３４－５６７８",
        ),
        (
            "カード ４１１１　１１１１　１１１１　１１１１ です",
            "card",
            "４１１１　１１１１　１１１１　１１１１",
        ),
        (
            "メール ｊａｎｅ．ｄｏｅ＠ｍａｉｌ．ｅｘａｍｐｌｅ．ｃｏ．ｕｋ まで",
            "email",
            "ｊａｎｅ．ｄｏｅ＠ｍａｉｌ．ｅｘａｍｐｌｅ．ｃｏ．ｕｋ",
        ),
        // ASCII digits with a dash other than `-`, or no-break spaces.
        ("call +44 20 7946−0123 today", "phone", "+44 20 7946−0123"),
        ("ssn 536–22–8714", "us_ssn", "536–22–8714"),
        (
            "tél. +33\u{202F}1\u{202F}42\u{202F}68\u{202F}53\u{202F}00",
            "phone",
            "+33\u{202F}1\u{202F}42\u{202F}68\u{202F}53\u{202F}00",
        ),
        // Other scripts' digits.
        ("هاتف +٩٦٦ ٥٠ ١٢٣ ٤٥٦٧ شكرا", "phone", "+٩٦٦ ٥٠ ١٢٣ ٤٥٦٧"),
        ("کارت ۴۱۱۱ ۱۱۱۱ ۱۱۱۱ ۱۱۱۱", "card", "۴۱۱۱ ۱۱۱۱ ۱۱۱۱ ۱۱۱۱"),
        ("आधार २३४१ २३४१ २३४६", "in_aadhaar", "२३४१ २३४१ २३४६"),
        ("card 𝟒𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏", "card", "𝟒𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏"),
        // Characters that show nothing, between the digits.
        (
            "card 4\u{200B}111\u{200B}1111\u{2060}1111\u{AD}1111 ok",
            "card",
            "4\u{200B}111\u{200B}1111\u{2060}1111\u{AD}1111",
        ),
    ] {
        assert_eq!(one(text), (kind, value.to_string()), "{text}");
    }
    // However many characters that show nothing stand between the digits.
    for filler in ["\u{200B}", "\u{332}"] {
        let spread: String = "4111111111111111"
            .chars()
            .flat_map(|d| std::iter::once(d).chain(filler.chars().cycle().take(1500)))
            .collect();
        let text = format!("card {spread} ok");
        let found = kinds(&text);
        assert!(
            found
                .iter()
                .any(|(kind, value)| *kind == "card" && value.starts_with('4')),
            "{filler:?}: {:?}",
            found.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
        );
    }
    // Beside an ASCII value, each is found once.
    assert_eq!(
        kinds("jane@mail.example.co.uk ｊａｎｅ＠ｍａｉｌ．ｅｘａｍｐｌｅ．ｃｏ．ｕｋ").len(),
        2
    );
    none("全角の数字 １２３ と ２０２５－１１－０３ の日付");
}

#[test]
fn values_spelled_with_cyrillic_and_greek_letters_drawn_like_latin_ones_are_found() {
    // `а`, `е`, `о`, `р`, `с` (Cyrillic) and `Ο`, `Ε` (Greek) in place of
    // ASCII letters: a reader sees the ASCII value.
    for (text, kind, value) in [
        (
            "mail jаne.dое@exаmple.cоm ok",
            "email",
            "jаne.dое@exаmple.cоm",
        ),
        // Every letter that has a look-alike replaced, the TLD included.
        ("mail ja@mail.со ok", "email", "ja@mail.со"),
        ("to асе@ехаmрlе.org", "email", "асе@ехаmрlе.org"),
        (
            "IBAN DЕ89 3704 0044 0532 0130 00",
            "iban",
            "DЕ89 3704 0044 0532 0130 00",
        ),
        (
            "key ΑΚΙΑQWERTYUIOPASDFGH",
            "aws_access_key",
            "ΑΚΙΑQWERTYUIOPASDFGH",
        ),
    ] {
        assert_eq!(one(text), (kind, value.to_string()), "{text}");
    }
    // Wherever the address falls against the blocks the text is tested in.
    for pad in 0..70 {
        let text = format!("{}ja@mail.со всё хорошо, спасибо большое", "ы".repeat(pad));
        assert_eq!(kinds(&text).len(), 1, "{pad}: {text}");
    }
    // Text in those scripts is not read as Latin.
    none("Привет, как дела? Это обычный текст: всё хорошо, Анна.");
    none("Καλημέρα κόσμε. Ο Νίκος έρχεται αύριο.");
    none("Почта: Москва, ул. Тверская, д. 7, кв. 12");
}

#[test]
fn values_spelled_in_modifier_letters_ligatures_letterlike_symbols_and_flags_are_found() {
    // Characters a reader reads as ASCII letters and digits, each the
    // compatibility form of one, put in by a query's translate().
    for (text, kind, value) in [
        // Superscript and modifier letters.
        ("mail ʲᵃⁿᵉ@ᵉˣᵃᵐᵖˡᵉ.ᶜᵒᵐ ok", "email", "ʲᵃⁿᵉ@ᵉˣᵃᵐᵖˡᵉ.ᶜᵒᵐ"),
        // A ligature, a letterlike e, a Roman numeral i.
        (
            "mail ﬁnance@exampl\u{212F}.com ok",
            "email",
            "ﬁnance@exampl\u{212F}.com",
        ),
        ("mail jⅰm@example.com ok", "email", "jⅰm@example.com"),
        // The long s in a token.
        (
            "token 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",
            "github_token",
            "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",
        ),
        (
            "token ghp_ſ6C7e42F292c6912E7710c838347Ae4H2Y7G",
            "github_token",
            "ghp_ſ6C7e42F292c6912E7710c838347Ae4H2Y7G",
        ),
        // Circled numbers past twenty, each two digits.
        ("card ㊶⑪ ⑪⑪ ⑪⑪ ⑪⑪ ok", "card", "㊶⑪ ⑪⑪ ⑪⑪ ⑪⑪"),
        // Regional indicators, which show a flag two at a time.
        (
            "IBAN 🇩🇪89 3704 0044 0532 0130 00",
            "iban",
            "🇩🇪89 3704 0044 0532 0130 00",
        ),
    ] {
        assert_eq!(one(text), (kind, value.to_string()), "{text}");
    }
    // Text that uses them as they are meant is no value.
    none("Der Preis: 12 € pro ㎏, 3 ℓ, № 7, 1º piso, ™ and ® apply.");
    none("Flags 🇩🇪 🇫🇷 and the ﬁrst ﬂoor, 🇯🇵 Tokyo.");
}

#[test]
fn addresses_of_look_alike_letters_broken_by_characters_that_show_nothing_are_found() {
    // An address with no ASCII letter in it: only `@`, and the dot with
    // ASCII beside it, say it is not Cyrillic. Characters that show
    // nothing between its parts, and `@` or `.` in other forms, must not
    // hide that.
    let nothing = [
        "\u{200B}", "\u{AD}", "\u{301}", "\u{FE0F}", "\u{2060}", "\u{200E}", "\u{FEFF}",
    ];
    for (parts, whole) in [
        (["асе", "@", "со", ".", "со"], "асе@со.со"),
        (["ja", "@", "mail", ".", "со"], "ja@mail.со"),
        (["асе", "＠", "со", "．", "со"], "асе＠со．со"),
        (["асе", "﹫", "со", ".", "со"], "асе﹫со.со"),
        (["jane", "@", "example", ".", "com"], "jane@example.com"),
    ] {
        for gap in 1..parts.len() {
            for (k, run) in nothing
                .iter()
                .map(|c| c.to_string())
                .chain([2, 31, 33, 400].map(|n| "\u{200B}".repeat(n)))
                .enumerate()
            {
                // Between every two parts, or only between one pair.
                let join = |at: usize| {
                    if k % 2 == 0 || at == gap {
                        run.as_str()
                    } else {
                        ""
                    }
                };
                let mut address = String::new();
                for (at, part) in parts.iter().enumerate() {
                    if at > 0 {
                        address.push_str(join(at));
                    }
                    address.push_str(part);
                }
                let text = format!("пишите на {address} завтра");
                assert_eq!(
                    one(&text),
                    ("email", address.clone()),
                    "{whole}: {address:?}"
                );
            }
        }
    }
    // Text in those scripts with the same characters in it is still not
    // read as Latin.
    none("При\u{200B}вет, как\u{AD} дела? Всё\u{301} хоро\u{FE0F}шо, Ан\u{2060}на.");
    none("Καλη\u{200B}μέρα κό\u{AD}σμε. Ο Νί\u{200B}κος.");
}

#[test]
fn values_spelled_out_a_character_at_a_time_are_found_whole() {
    for (text, kind, value) in [
        (
            "to j a n e @ e x a m p l e . c o m ok",
            "email",
            "j a n e @ e x a m p l e . c o m",
        ),
        (
            "to j\ta\tn\te\t@\te\tx\t.\ti\to ok",
            "email",
            "j\ta\tn\te\t@\te\tx\t.\ti\to",
        ),
        (
            "to j\na\nn\ne\n@\ne\nx\n.\ni\no",
            "email",
            "j\na\nn\ne\n@\ne\nx\n.\ni\no",
        ),
        (
            "to j  a  n  e  @  e  x  .  i  o ok",
            "email",
            "j  a  n  e  @  e  x  .  i  o",
        ),
        (
            "card 4,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
            "card",
            "4,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
        ),
        (
            "key A_K_I_A_Q_W_E_R_T_Y_U_I_O_P_A_S_D_F_G_H end",
            "aws_access_key",
            "A_K_I_A_Q_W_E_R_T_Y_U_I_O_P_A_S_D_F_G_H",
        ),
        // Fullwidth and spelled out: read as ASCII, then without the spaces.
        (
            "to ｊ ａ ｎ ｅ ＠ ｅ ｘ ． ｉ ｏ ok",
            "email",
            "ｊ ａ ｎ ｅ ＠ ｅ ｘ ． ｉ ｏ",
        ),
        (
            "to ｊ，ａ，ｎ，ｅ，＠，ｅ，ｘ，．，ｉ，ｏ ok",
            "email",
            "ｊ，ａ，ｎ，ｅ，＠，ｅ，ｘ，．，ｉ，ｏ",
        ),
        // Separators of three and four bytes, and outside ASCII.
        (
            "to j . a . n . e . @ . e . x . . . i . o ok",
            "email",
            "j . a . n . e . @ . e . x . . . i . o",
        ),
        (
            "to j -- a -- n -- e -- @ -- e -- x -- . -- i -- o ok",
            "email",
            "j -- a -- n -- e -- @ -- e -- x -- . -- i -- o",
        ),
        ("to j·a·n·e·@·e·x·.·i·o ok", "email", "j·a·n·e·@·e·x·.·i·o"),
        ("to j → a → n → e → @ → x → . → i → o ok", "email", "j → a → n → e → @ → x → . → i → o"),
        (
            "card 4\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1",
            "card",
            "4\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1\u{2009}1",
        ),
        // Letters drawn like Latin ones, spelled out with two bytes between.
        ("to а, с, е, @, с, о, ., с, о ok", "email", "а, с, е, @, с, о, ., с, о"),
        ("to а · с · е · @ · с · о · . · с · о", "email", "а · с · е · @ · с · о · . · с · о"),
        // An accent on every character.
        (
            "to j\u{301} a\u{301} n\u{301} e\u{301} @\u{301} x\u{301} .\u{301} i\u{301} o\u{301} ok",
            "email",
            "j\u{301} a\u{301} n\u{301} e\u{301} @\u{301} x\u{301} .\u{301} i\u{301} o\u{301}",
        ),
        // A different separator between every two letters.
        (
            "to j+a-n_e @ e-x-a_m+p-l_e . c-o-m ok",
            "email",
            "j+a-n_e @ e-x-a_m+p-l_e . c-o-m",
        ),
        (
            "key A-K_I+A Q-W_E+R T-Y_U+I O-P_A+S D-F_G+H end",
            "aws_access_key",
            "A-K_I+A Q-W_E+R T-Y_U+I O-P_A+S D-F_G+H",
        ),
    ] {
        assert_eq!(one(text), (kind, value.to_string()), "{text:?}");
    }
    // Lists, padding, tables and initials are no values.
    none("a, b, c, d, e, f and g; - - - - - -; |  |  |  |  |  |");
    none("flags: y n y y n n y n y");
    none("| a | b | c | d | e | f | g |");
    none("J. R. R. Tolkien, C. S. Lewis, G. K. Chesterton, T. S. Eliot");
    none("1. a) b) c) 2. d) e) f)");
    none("Ответ: а, б, в, г, д, е.");
}

#[test]
fn addresses_with_at_and_dot_written_out_or_written_backwards_are_found() {
    for (text, value) in [
        (
            "write to jane at example dot com today",
            "jane at example dot com",
        ),
        (
            "jane.doe [at] example [dot] co [dot] uk",
            "jane.doe [at] example [dot] co [dot] uk",
        ),
        ("mail: jane(at)example(dot)com.", "jane(at)example(dot)com"),
        ("JANE AT EXAMPLE DOT COM", "JANE AT EXAMPLE DOT COM"),
        ("reach jane at example.com or call", "jane at example.com"),
        ("jane {at} mail.example.org", "jane {at} mail.example.org"),
        ("jane at example . com", "jane at example . com"),
        (
            "to jane dot doe at example dot com",
            "jane dot doe at example dot com",
        ),
        (
            "to jane [dot] doe [at] example [dot] com",
            "jane [dot] doe [at] example [dot] com",
        ),
        // What `reverse()` makes of an address.
        ("mail moc.elpmaxe@eod.enaj ok", "moc.elpmaxe@eod.enaj"),
        ("ku.oc.liam@enaj", "ku.oc.liam@enaj"),
    ] {
        assert_eq!(one(text), ("email", value.to_string()), "{text:?}");
    }
    none("Meet at home. It was late, and at 5.30 we left at St. Mary's.");
    none("look at the data dot by dot; we met at noon dot.");
    none("@user said hi to v2.ed@host and x@y");
}
