use super::*;

fn masker(strategy: Strategy) -> Masker {
    Masker::new(&MaskSettings {
        detectors: Detectors::all(),
        default_strategy: strategy,
        json_secret_keys: true,
        token_key: [7; 32],
        ..MaskSettings::default()
    })
}

fn text(m: &Masker, input: &str) -> Masked {
    m.mask_text(
        input.as_bytes(),
        &mut Scratch::default(),
        &mut Tally::default(),
    )
}

fn replaced(outcome: Masked) -> String {
    match outcome {
        Masked::Replaced(v) => String::from_utf8(v).unwrap(),
        other => panic!("expected a replacement, got {other:?}"),
    }
}

#[test]
fn strategies_in_free_text() {
    let input = "mail jane.doe@example.com card 4111 1111 1111 1111 key AKIAQWERTYUIOPASDFGH";
    assert_eq!(
        replaced(text(&masker(Strategy::Redact), input)),
        "mail <EMAIL> card <CARD> key <AWS_ACCESS_KEY>"
    );
    assert_eq!(
        replaced(text(&masker(Strategy::Partial), input)),
        "mail j***@example.com card **** **** **** 1111 key <AWS_ACCESS_KEY>"
    );
    let tokens = replaced(text(&masker(Strategy::Token), input));
    assert!(
        tokens.starts_with("mail EMAIL_") && tokens.contains(" card CARD_"),
        "{tokens}"
    );
    assert_eq!(text(&masker(Strategy::Null), input), Masked::Null);
    assert_eq!(
        text(
            &masker(Strategy::Redact),
            "nothing to see here, order 12345"
        ),
        Masked::Unchanged
    );
}

#[test]
fn tokens_are_stable_per_value_and_key() {
    let m = masker(Strategy::Token);
    let a = replaced(text(&m, "4111 1111 1111 1111"));
    let b = replaced(text(&m, "4111-1111-1111-1111"));
    let c = replaced(text(&m, "5555555555554444"));
    assert_eq!(a, b, "one card written two ways has one token");
    assert_ne!(a, c);
    let other_key = Masker::new(&MaskSettings {
        detectors: Detectors::all(),
        default_strategy: Strategy::Token,
        token_key: [8; 32],
        ..MaskSettings::default()
    });
    assert_ne!(a, replaced(text(&other_key, "4111 1111 1111 1111")));
}

#[test]
fn json_is_masked_at_its_leaves_and_stays_valid() {
    let m = masker(Strategy::Redact);
    let doc = r#"{"id": 7, "contact": {"email": "a.b@example.org", "note": "call +1 415-555-2671"}, "cards": [4111111111111111, "x"], "password": "hunter2hunter2", "escaped": "mail\u0020x@example.net \"q\""}"#;
    let out = replaced(m.mask_json(
        doc.as_bytes(),
        &mut Scratch::default(),
        &mut Tally::default(),
    ));
    let value: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(value["id"], 7);
    assert_eq!(value["contact"]["email"], "<EMAIL>");
    assert_eq!(value["contact"]["note"], "call <PHONE>");
    assert_eq!(value["cards"][0], 0);
    assert_eq!(value["password"], "<SECRET>");
    assert_eq!(value["escaped"], "mail <EMAIL> \"q\"");
    // Formatting and key order are kept.
    assert!(
        out.starts_with(r#"{"id": 7, "contact": {"email": "<EMAIL>""#),
        "{out}"
    );

    let nulls = masker(Strategy::Null);
    let out = replaced(nulls.mask_json(
        br#"{"e": "a.b@example.org", "n": 4111111111111111}"#,
        &mut Scratch::default(),
        &mut Tally::default(),
    ));
    assert_eq!(out, r#"{"e": null, "n": null}"#);
}

#[test]
fn json_that_does_not_parse_is_masked_as_text() {
    let m = masker(Strategy::Redact);
    let out = replaced(m.mask_json(
        br#"{"email": "a.b@example.org""#,
        &mut Scratch::default(),
        &mut Tally::default(),
    ));
    assert_eq!(out, r#"{"email": "<EMAIL>""#);
}

#[test]
fn scan_json_maps_escaped_findings_to_raw_offsets() {
    let m = masker(Strategy::Redact);
    let doc = r#"{"a": "x\u0020jane@example.org\n"}"#;
    let mut found = Vec::new();
    m.scanner().scan_json(doc.as_bytes(), &mut found).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(&doc[found[0].start..found[0].end], "jane@example.org");
}

#[test]
fn numbers_get_numeric_substitutes() {
    let m = masker(Strategy::Partial);
    let mut s = Scratch::default();
    let mut t = Tally::default();
    assert_eq!(
        m.mask_number(b"4111111111111111", &mut s, &mut t),
        Masked::Replaced(b"1111".to_vec())
    );
    let tok = masker(Strategy::Token).mask_number(b"4111111111111111", &mut s, &mut t);
    match tok {
        Masked::Replaced(v) => {
            assert!(v.len() == 16 && v.iter().all(u8::is_ascii_digit) && v[0] != b'0')
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(m.mask_number(b"12345", &mut s, &mut t), Masked::Unchanged);
    assert_eq!(t.counts().collect::<Vec<_>>(), vec![(Kind::Card, 2)]);
}

#[test]
fn sql_literals_are_masked_for_the_log() {
    let m = masker(Strategy::Token);
    let sql =
        "SELECT * FROM users WHERE email = 'jane@example.org' AND card = 4111111111111111 -- é";
    assert_eq!(
        m.mask_sql_literals(sql),
        "SELECT * FROM users WHERE email = '<EMAIL>' AND card = <CARD> -- é"
    );
    assert_eq!(m.mask_sql_literals("SELECT 1"), "SELECT 1");
}

#[test]
fn json_in_sql_literals_is_masked_as_json() {
    let m = masker(Strategy::Redact);
    // Only the key says the value is a secret: the JSON walk finds it.
    let sql = r#"INSERT INTO cfg VALUES ('{"db": {"password": "hunter2-Blue"}, "mail": "a@example.com"}', 'it''s')"#;
    assert_eq!(
        m.mask_sql_literals(sql),
        r#"INSERT INTO cfg VALUES ('{"db": {"password": "<SECRET>"}, "mail": "<EMAIL>"}', 'it''s')"#
    );
    // A server message quotes the document in double quotes it does not escape.
    let message = r#"invalid input syntax for type integer: "{"api_key": "Zq!v9#Lm2$x"}""#;
    assert_eq!(
        m.mask_sql_literals(message),
        r#"invalid input syntax for type integer: "{"api_key": "<SECRET>"}""#
    );
    let mut scratch = Scratch::default();
    match m.mask_delimited(message.as_bytes(), &mut scratch, &mut Tally::default()) {
        Masked::Replaced(v) => assert!(!String::from_utf8(v).unwrap().contains("Zq!v9")),
        other => panic!("{other:?}"),
    }
    // Unbalanced and pathological brackets cost little and break nothing.
    let odd = format!(
        "SELECT 1 -- don't {}\n, '{{\"token\": \"zz\"' ",
        "[{".repeat(50_000)
    );
    assert!(!m.mask_sql_literals(&odd).is_empty());
}
