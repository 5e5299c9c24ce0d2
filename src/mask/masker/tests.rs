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
fn values_in_fullwidth_forms_are_replaced_as_their_ascii_reading() {
    let input = "カード ４１１１ １１１１ １１１１ １１１１ メール ｊａｎｅ＠ｍａｉｌ．ｅｘａｍｐｌｅ．ｃｏ．ｕｋ";
    assert_eq!(
        replaced(text(&masker(Strategy::Redact), input)),
        "カード <CARD> メール <EMAIL>"
    );
    // Partial keeps ASCII parts and would copy fullwidth digits as
    // punctuation: it works on the reading.
    assert_eq!(
        replaced(text(&masker(Strategy::Partial), input)),
        "カード **** **** **** 1111 メール j***@mail.example.co.uk"
    );
    // One card in either width has one token.
    let m = masker(Strategy::Token);
    assert_eq!(
        replaced(text(&m, "４１１１ １１１１ １１１１ １１１１")),
        replaced(text(&m, "4111 1111 1111 1111"))
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

const KEY_BODY: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

/// The structure of `sql` as the server reads it: every token but string
/// literals and numbers (the values masking may change), with each label
/// that replaced a number (`<CARD>`, three tokens) left out.
fn structure(sql: &str, dialect: Dialect) -> Option<Vec<String>> {
    let statements = lexer::lex(sql, dialect).ok()?;
    let mut out = Vec::new();
    for s in statements {
        let tokens: Vec<_> = s
            .tokens
            .into_iter()
            .filter(|t| !matches!(t.kind, lexer::Kind::String | lexer::Kind::Number))
            .collect();
        let mut i = 0;
        while i < tokens.len() {
            let label = tokens.get(i + 1).map(|t| format!("<{}>", t.text));
            if tokens[i].is_punct('<')
                && tokens.get(i + 2).is_some_and(|t| t.is_punct('>'))
                && Kind::ALL
                    .iter()
                    .any(|k| Some(k.label()) == label.as_deref())
            {
                i += 3;
                continue;
            }
            out.push(format!("{:?}:{}", tokens[i].kind, tokens[i].text));
            i += 1;
        }
        out.push(";".into());
    }
    Some(out)
}

/// Texts an agent could send to hide part of a statement from approvers
/// behind a value that masking replaces, with what must stay visible.
fn attacks() -> Vec<(Dialect, String, Vec<&'static str>)> {
    use Dialect::{Mysql, Postgres};
    let pem = format!("-----BEGIN PRIVATE KEY----- {KEY_BODY}");
    let closed_pem = format!("{pem} -----END PRIVATE KEY-----");
    vec![
        // The example: an unterminated key in a closed comment.
        (
            Postgres,
            format!("ALTER TABLE t ADD COLUMN c text /* {pem} */; DROP TABLE t"),
            vec!["ALTER TABLE t ADD COLUMN c text", "*/; DROP TABLE t"],
        ),
        (
            Mysql,
            format!("ALTER TABLE t ADD COLUMN c text /* {pem} */; DROP TABLE t"),
            vec!["*/; DROP TABLE t"],
        ),
        // In a line comment, the next line is code.
        (
            Postgres,
            format!("SELECT 1 -- {pem}\n; DROP TABLE t"),
            vec!["SELECT 1 --", "\n; DROP TABLE t"],
        ),
        (
            Mysql,
            format!("SELECT 1 # {pem}\nDROP TABLE t"),
            vec!["\nDROP TABLE t"],
        ),
        // In closed strings of every form.
        (
            Postgres,
            format!("INSERT INTO k VALUES ('{pem}'); DROP TABLE k"),
            vec!["INSERT INTO k VALUES ('", "'); DROP TABLE k"],
        ),
        (
            Postgres,
            format!("INSERT INTO k VALUES (E'\\'{pem}'); DROP TABLE k"),
            vec!["'); DROP TABLE k"],
        ),
        (
            Postgres,
            format!("SELECT $k$ {pem} $k$; DROP TABLE t; SELECT $$ {closed_pem} $$"),
            vec!["$k$; DROP TABLE t; SELECT $$", "$$"],
        ),
        (
            Mysql,
            format!("SELECT \"{pem}\"; DROP TABLE t"),
            vec!["\"; DROP TABLE t"],
        ),
        (
            Mysql,
            format!("SELECT '{pem}' /*!50000 ; DROP TABLE t */"),
            vec!["' /*!50000 ; DROP TABLE t */"],
        ),
        // A comment inside a comment: PostgreSQL nests them, MySQL does not.
        (
            Mysql,
            format!("SELECT 1 /* /* {pem} */ DROP TABLE t"),
            vec!["*/ DROP TABLE t"],
        ),
        // Tokens against keywords without spaces.
        (
            Postgres,
            format!("SELECT'{JWT}'FROM t;DROP TABLE t"),
            vec!["SELECT'", "'FROM t;DROP TABLE t"],
        ),
        (
            Mysql,
            "SELECT'AKIAQWERTYUIOPASDFGH'FROM t;DROP TABLE t".into(),
            vec!["'FROM t;DROP TABLE t"],
        ),
        // A value split over literals.
        (
            Postgres,
            "SELECT 'jane.doe@exa' || 'mple.org' FROM t; DELETE FROM t".into(),
            vec!["' || '", "' FROM t; DELETE FROM t"],
        ),
        (
            Mysql,
            "SELECT '4111 1111' ' 1111 1111', 4111111111111111; TRUNCATE t".into(),
            vec!["' '", "; TRUNCATE t"],
        ),
        // Several statements, values in comments between them.
        (
            Postgres,
            "-- mail jane@example.org\nDELETE FROM t; /* a.b@example.com */ TRUNCATE u".into(),
            vec!["\nDELETE FROM t; /*", "*/ TRUNCATE u"],
        ),
    ]
}

#[test]
fn statement_structure_survives_masking() {
    let m = masker(Strategy::Redact);
    for (dialect, sql, visible) in attacks() {
        let masked = m.mask_statement(&sql, dialect);
        assert_ne!(masked, sql, "nothing masked in {sql:?}");
        for needle in visible {
            assert!(masked.contains(needle), "{needle:?} hidden in {masked:?}");
        }
        for secret in [KEY_BODY, "jane", "4111", "AKIA", "eyJ"] {
            assert!(!masked.contains(secret), "{secret} shown in {masked:?}");
        }
        let before = structure(&sql, dialect).expect("the attack lexes");
        assert_eq!(
            structure(&masked, dialect),
            Some(before),
            "{sql:?} became {masked:?}"
        );
    }
}

/// Text the lexer cannot finish: values are masked, and everything that
/// could be code under another reading stays.
#[test]
fn unfinished_statements_keep_every_possible_keyword() {
    let m = masker(Strategy::Redact);
    let pem = format!("-----BEGIN PRIVATE KEY----- {KEY_BODY}");
    for (dialect, sql, visible) in [
        // PostgreSQL nests comments: this one never ends.
        (
            Dialect::Postgres,
            format!("SELECT 1 /* /* {pem} */ DROP TABLE t"),
            "*/ DROP TABLE t",
        ),
        (
            Dialect::Postgres,
            format!("SELECT 1; DROP TABLE t /* {pem}"),
            "SELECT 1; DROP TABLE t /*",
        ),
        (
            Dialect::Postgres,
            format!("SELECT '{pem}; DROP TABLE t"),
            "; DROP TABLE t",
        ),
        (
            Dialect::Postgres,
            format!("SELECT $q$ {pem} $; DROP TABLE t"),
            "$; DROP TABLE t",
        ),
        (
            Dialect::Mysql,
            format!("SELECT \"{pem}'; DROP TABLE t"),
            "'; DROP TABLE t",
        ),
        // Backslashes: one reading ends the string early, the other does
        // not; what is code in either stays.
        (
            Dialect::Postgres,
            format!("SELECT 'a\\'; DROP TABLE t; -- {pem} '"),
            "'a\\'; DROP TABLE t; --",
        ),
        (
            Dialect::Mysql,
            format!("SELECT 'a\\'; DROP TABLE t; -- {pem} '"),
            "'a\\'; DROP TABLE t; --",
        ),
    ] {
        let masked = m.mask_statement(&sql, dialect);
        assert!(masked.contains(visible), "{visible:?} hidden in {masked:?}");
        assert!(!masked.contains(KEY_BODY), "key shown in {masked:?}");
    }
}

#[test]
fn statement_values_are_masked_inside_their_literals() {
    let m = masker(Strategy::Redact);
    let sql = r#"INSERT INTO cfg VALUES ('{"db": {"password": "hunter2-Blue"}}', 'it''s jane@example.org', x'00') -- ip 10.1.2.3"#;
    assert_eq!(
        m.mask_statement(sql, Dialect::Postgres),
        r#"INSERT INTO cfg VALUES ('{"db": {"password": "<SECRET>"}}', 'it''s <EMAIL>', x'00') -- ip <IPV4>"#
    );
    // Identifiers stay: approvers must see which object is touched.
    assert_eq!(
        m.mask_statement(
            "SELECT \"jane@example.org\" FROM `a@example.org`",
            Dialect::Postgres
        ),
        "SELECT \"jane@example.org\" FROM `a@example.org`"
    );
    assert_eq!(
        m.mask_statement("SELECT * FROM `a@example.org`", Dialect::Mysql),
        "SELECT * FROM `a@example.org`"
    );
    assert_eq!(
        m.mask_statement("SELECT 'é jane@example.org'", Dialect::Mysql),
        "SELECT 'é <EMAIL>'"
    );
    assert_eq!(m.mask_statement("SELECT 1", Dialect::Postgres), "SELECT 1");
}

#[test]
fn a_column_of_national_phone_numbers_is_masked_from_its_second_cell() {
    let masker = Masker::new(&MaskSettings::default());
    let mut scratch = Scratch::default();
    let mut tally = Tally::default();
    // Each alone is a digit group no rule calls a phone number.
    let column = ["030 1234567", "089 4711223", "040 3089611", "0221 9876543"];
    let masked: Vec<Masked> = column
        .iter()
        .map(|v| masker.mask_cell(v.as_bytes(), &mut scratch, &mut tally))
        .collect();
    assert_eq!(
        masked[0],
        Masked::Unchanged,
        "the first cell has no column yet"
    );
    for m in &masked[1..] {
        assert_eq!(*m, Masked::Replaced(b"<PHONE>".to_vec()));
    }
    assert_eq!(tally.counts().collect::<Vec<_>>(), vec![(Kind::Phone, 3)]);
    // Free text is never judged by its column.
    let mut other = Tally::default();
    for v in column {
        assert_eq!(
            masker.mask_text(v.as_bytes(), &mut scratch, &mut other),
            Masked::Unchanged
        );
    }
}

#[test]
fn a_column_of_national_phone_numbers_in_other_forms_is_masked_too() {
    let masker = Masker::new(&MaskSettings::default());
    let mut scratch = Scratch::default();
    let columns: &[&[&str]] = &[
        // Fullwidth digits and space, as Japanese input writes them.
        &[
            "０３０　１２３４５６７",
            "０８９　４７１１２２３",
            "０４０　３０８９６１１",
        ],
        // Arabic-Indic digits.
        &["٠٣٠ ١٢٣٤٥٦٧", "٠٨٩ ٤٧١١٢٢٣", "٠٤٠ ٣٠٨٩٦١١"],
        // A no-break space, and a fullwidth digit among ASCII ones.
        &["030\u{a0}1234567", "089\u{a0}4711223", "0４0 3089611"],
    ];
    for column in columns {
        let mut tally = Tally::default();
        let masked: Vec<Masked> = column
            .iter()
            .map(|v| masker.mask_cell(v.as_bytes(), &mut scratch, &mut tally))
            .collect();
        for (v, m) in column.iter().zip(&masked).skip(1) {
            assert_eq!(*m, Masked::Replaced(b"<PHONE>".to_vec()), "{v}");
        }
    }
}

#[test]
fn columns_of_look_alikes_are_not_phone_columns() {
    let masker = Masker::new(&MaskSettings::default());
    let mut scratch = Scratch::default();
    let columns: &[&[&str]] = &[
        // Invoice numbers, zero-padded ids, dates, amounts, times.
        &["INV 0301 234567", "INV 0301 234568", "INV 0301 234569"],
        &["0001234567", "0001234568", "0301234569"],
        &["2024-12-31", "2025-01-02", "2025-01-03"],
        &["01.234.567", "02.345.678", "03.456.789"],
        &["01:23:45.678", "02:34:56.789", "03:45:01.234"],
    ];
    for column in columns {
        let mut tally = Tally::default();
        for v in *column {
            assert_eq!(
                masker.mask_cell(v.as_bytes(), &mut scratch, &mut tally),
                Masked::Unchanged,
                "{v}"
            );
        }
    }
    // A column that is mostly something else does not turn on.
    let mut tally = Tally::default();
    let mixed = ["ref A", "ref B", "ref C", "030 1234567", "089 4711223"];
    for v in mixed {
        assert_eq!(
            masker.mask_cell(v.as_bytes(), &mut scratch, &mut tally),
            Masked::Unchanged,
            "{v}"
        );
    }
}

/// A name alone in a cell is masked as a cell of its own; quoted in the
/// server's error message (as the audit log and the client get it) it must
/// be judged the same way, not as a word in running text.
#[test]
fn values_quoted_in_messages_are_judged_as_cells() {
    let m = masker(Strategy::Redact);
    for cell in [
        "Pietra Leão",
        "Mai Hayashi",
        "Ottone di Silvestri",
        "Jennifer",
    ] {
        let sql = format!("SELECT '{cell}'::int");
        assert!(
            !m.mask_statement(&sql, Dialect::Postgres).contains(cell),
            "{cell} in the statement"
        );
        for message in [
            format!("invalid input syntax for type integer: \"{cell}\""),
            format!("Truncated incorrect DOUBLE value: '{cell}'"),
            format!("Duplicate entry '{cell}' for key 'people.name'"),
            format!("Key (name)=({cell}) already exists."),
        ] {
            let logged = m.mask_sql_literals(&message);
            assert!(!logged.contains(cell), "{logged}");
            assert!(logged.contains("<PERSON>"), "{logged}");
            let sent = m.mask_delimited(
                message.as_bytes(),
                &mut Scratch::default(),
                &mut Tally::default(),
            );
            assert!(!replaced(sent).contains(cell), "{message}");
        }
    }
    // The words around a quoted value are not part of it.
    assert_eq!(
        m.mask_sql_literals("column \"Jennifer\" does not exist"),
        "column \"<PERSON>\" does not exist"
    );
    assert_eq!(
        m.mask_sql_literals("relation \"orders\" does not exist"),
        "relation \"orders\" does not exist"
    );
}

#[test]
fn numbers_of_fewer_than_seven_digits_hold_nothing_to_find() {
    // `mask_number` returns such numbers unscanned: the scanner, with
    // every detector, must find nothing in them either. Every number of
    // up to four digits, every third of five and every seventeenth of
    // six, in the forms a column prints (signs, points, group
    // separators).
    let scanner = Scanner::new(&Detectors::all());
    let mut found = Vec::new();
    let mut forms = 0;
    for width in 1..=6u32 {
        let stride = match width {
            6 => 17,
            5 => 3,
            _ => 1,
        };
        for n in (0..10u32.pow(width)).step_by(stride) {
            let digits = format!("{n:0width$}", width = width as usize);
            for text in [
                digits.clone(),
                format!("-{digits}"),
                format!("+{digits}"),
                format!(
                    "{}.{}",
                    &digits[..width as usize / 2],
                    &digits[width as usize / 2..]
                ),
                format!(
                    "{},{}",
                    &digits[..width as usize / 2],
                    &digits[width as usize / 2..]
                ),
                format!(
                    "-{}.{}",
                    &digits[..width as usize / 2],
                    &digits[width as usize / 2..]
                ),
            ] {
                assert!(too_few_digits(text.as_bytes()), "{text}");
                scanner.scan(text.as_bytes(), &mut found);
                assert!(found.is_empty(), "{text}: {found:?}");
                forms += 1;
            }
        }
    }
    assert!(forms > 400_000);
    // An exponent or a seventh digit is scanned.
    for text in ["4e15", "4E15", "1234567", "-1,234,567", "1.23456e7"] {
        assert!(!too_few_digits(text.as_bytes()), "{text}");
    }
}

#[test]
fn short_numbers_in_statements_are_left_and_everything_longer_is_read() {
    // The statement's short numbers are not scanned (the test above
    // proves nothing is there to find); what only looks like one, or is
    // one only when joined, still is.
    let m = masker(Strategy::Redact);
    for sql in [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 48213",
        "SELECT 1 WHERE x = -12.5 AND y = '+004' AND z = 0.5",
    ] {
        assert_eq!(m.mask_statement(sql, Dialect::Postgres), sql);
    }
    for (sql, masked) in [
        ("SELECT '10.0.0.1'", "SELECT '<IPV4>'"),
        ("SELECT 4111111111111111", "SELECT <CARD>"),
        ("SELECT '+44 20 7946 0123'", "SELECT '<PHONE>'"),
        (
            "SELECT '411111' || '1111111111'",
            "SELECT '<CARD>' || '<CARD>'",
        ),
    ] {
        assert_eq!(m.mask_statement(sql, Dialect::Postgres), masked, "{sql}");
    }
    assert!(short_number(b"-12.5") && short_number(b"48213") && short_number(b"+1"));
    for text in ["1.2.3", "1234567", "12e5", "1,234", "--1", "12a"] {
        assert!(!short_number(text.as_bytes()), "{text}");
    }
}

#[test]
fn cards_written_as_floats_or_money_inside_text_are_masked() {
    // `card::float8::text`, `card::money::text`, a float in an array or
    // a sentence: the number stands for the card.
    let m = masker(Strategy::Redact);
    for (input, masked) in [
        ("4.111111111111111e+15", "<CARD>"),
        ("4.111111111111111E15", "<CARD>"),
        ("$4,111,111,111,111,111.00", "$<CARD>"),
        (
            "{4.111111111111111e+15,5.500000000000004e+15}",
            "{<CARD>,<CARD>}",
        ),
        (
            "paid with 4.111111111111111e+15 today",
            "paid with <CARD> today",
        ),
    ] {
        assert_eq!(text(&m, input), Masked::Replaced(masked.into()), "{input}");
    }
    // An array's text and a JSON document take the same reading.
    for doc in ["{4.111111111111111e+15}", "[4.111111111111111e+15]"] {
        let masked = m.mask_json(
            doc.as_bytes(),
            &mut Scratch::default(),
            &mut Tally::default(),
        );
        assert!(
            matches!(&masked, Masked::Replaced(out) if !out.windows(5).any(|w| w == b"4.111")),
            "{doc}: {masked:?}"
        );
    }
    // Amounts, constants and floats that are no card stay.
    for input in [
        "total 1,234,567,890.00 EUR",
        "2.718281828459045",
        "6.02214076e+23 per mole",
        "3.0e+10",
        "4.111111111111112e+15",
        "1,2,3",
        "e,e",
    ] {
        assert_eq!(text(&m, input), Masked::Unchanged, "{input}");
    }
}

/// Values masked with one session's scratch, where earlier values are
/// recalled, against each masked with a scratch of its own: the same
/// outcome and the same counts, for repeats, values that differ in one
/// byte, lengths around the recall's bounds, and more values than it has
/// slots (so that slots are taken over).
#[test]
fn recalled_values_are_masked_exactly_as_scanned_ones() {
    let m = masker(Strategy::Redact);
    let mut values: Vec<String> = vec![
        "refund to card 4111 1111 1111 1111; call back on +44 20 7946 0958".into(),
        "refund to card 4111 1111 1111 1112; call back on +44 20 7946 0958".into(),
        "paid from IBAN DE89 3704 0044 0532 0130 00, receipt sent".into(),
        "delivered on time, signed for at the front desk".into(),
        "jane.doe@example.com".into(),
        "{\"password\": \"hunter2-hunter2\", \"n\": 1}".into(),
        // Eleven, twelve, 256 and 257 bytes.
        "a@b.co x 12".into(),
        "a@b.co x 123".into(),
        format!("{}4111111111111111", "x ".repeat(120)),
        format!("{}4111111111111111 ", "x ".repeat(120)),
    ];
    for i in 0..600 {
        values.push(format!("order {i} shipped, contact user{i}@example.com"));
    }
    let mut session = Scratch::default();
    let mut column = Tally::default();
    for round in 0..3 {
        for value in &values {
            let mut fresh = Tally::default();
            let expected = m.mask_text(value.as_bytes(), &mut Scratch::default(), &mut fresh);
            let mut before = column.clone();
            let got = m.mask_text(value.as_bytes(), &mut session, &mut column);
            assert_eq!(got, expected, "round {round}: {value:?}");
            before.merge(&fresh);
            assert_eq!(
                column.counts().collect::<Vec<_>>(),
                before.counts().collect::<Vec<_>>(),
                "round {round}: counts after {value:?}"
            );
        }
    }
}

#[test]
fn a_debug_print_of_the_scratch_shows_no_remembered_value() {
    let mut scratch = Scratch::default();
    let m = masker(Strategy::Redact);
    // Plain, and base64 of "card 4111 1111 1111 1111" (decoded into the
    // scratch to be scanned).
    for value in [
        "refund to card 4111 1111 1111 1111 for jane.doe@example.com",
        "token Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx end",
    ] {
        assert_ne!(
            m.mask_text(value.as_bytes(), &mut scratch, &mut Tally::default()),
            Masked::Unchanged,
            "{value}"
        );
    }
    let printed = format!("{scratch:?}");
    assert!(printed.contains("2 of 256 slots used"), "{printed}");
    for raw in ["4111", "jane", "Y2Fy", "card"] {
        assert!(!printed.contains(raw), "{printed}");
    }
}

#[test]
fn a_column_whose_values_do_not_repeat_stops_being_looked_up() {
    let mut unique = RecallUse::default();
    for _ in 0..RecallUse::TRIAL {
        assert!(unique.worth_it());
        unique.note(false);
    }
    assert!(!unique.worth_it());
    let mut repeating = RecallUse::default();
    for i in 0..1000 {
        assert!(repeating.worth_it(), "lookup {i}");
        repeating.note(i % 4 == 0);
    }
}
