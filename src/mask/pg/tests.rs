use super::*;
use crate::mask::{Detectors, MaskSettings};

fn engine(strategy: Strategy) -> Arc<Masker> {
    Arc::new(Masker::new(&MaskSettings {
        detectors: Detectors::all(),
        default_strategy: strategy,
        token_key: [1; 32],
        ..MaskSettings::default()
    }))
}

fn row(values: &[Option<&[u8]>]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(b'D');
    out.put_u32(0);
    out.put_u16(values.len() as u16);
    for v in values {
        match v {
            None => out.put_i32(-1),
            Some(v) => {
                out.put_i32(v.len() as i32);
                out.put_slice(v);
            }
        }
    }
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    out.freeze()
}

fn col(name: &str, oid: u32, format: i16) -> Column {
    Column {
        name: name.into(),
        type_oid: oid,
        format,
    }
}

fn values(frame: &Bytes) -> Vec<Option<Vec<u8>>> {
    DataRow::parse(frame)
        .unwrap()
        .into_iter()
        .map(|v| v.map(<[u8]>::to_vec))
        .collect()
}

#[test]
fn rows_without_findings_are_forwarded_untouched() {
    let mut m = RowMasker::new(engine(Strategy::Redact));
    m.set_columns(&[col("id", 23, 0), col("name", 25, 0)]);
    assert_eq!(
        m.mask_row(&row(&[Some(b"42"), Some(b"blue")])),
        RowOutcome::Unchanged
    );
    assert!(m.take_stats().is_empty());
}

#[test]
fn text_json_and_numbers_are_masked_by_type_in_text_format() {
    let mut m = RowMasker::new(engine(Strategy::Redact));
    m.set_columns(&[
        col("note", 25, 0),
        col("doc", 3802, 0),
        col("pan", 20, 0),
        col("ip", 869, 0),
        col("when", 1184, 0),
    ]);
    let out = m.mask_row(&row(&[
        Some(b"mail jane@example.org"),
        Some(br#"{"card": "4111 1111 1111 1111"}"#),
        Some(b"4111111111111111"),
        Some(b"203.0.113.9/32"),
        Some(b"2024-01-31 12:00:00+00"),
        None,
    ]));
    let RowOutcome::Rewritten(frame) = out else {
        panic!("expected a rewrite")
    };
    let v = values(&frame);
    assert_eq!(v[0].as_deref(), Some(&b"mail <EMAIL>"[..]));
    assert_eq!(v[1].as_deref(), Some(&br#"{"card": "<CARD>"}"#[..]));
    assert_eq!(v[2].as_deref(), Some(&b"0"[..]));
    assert_eq!(v[3].as_deref(), Some(&b"0.0.0.0/32"[..]));
    assert_eq!(v[4].as_deref(), Some(&b"2024-01-31 12:00:00+00"[..]));
    assert_eq!(v[5], None);
    let stats = m.take_stats();
    assert_eq!(stats.total(), 4);
    assert_eq!(
        stats.columns[0],
        ("note".to_string(), vec![(Kind::Email, 1)])
    );
}

#[test]
fn binary_values_stay_valid_for_their_type() {
    let mut m = RowMasker::new(engine(Strategy::Partial));
    let card: i64 = 4111111111111111;
    let mut jsonb = vec![1u8];
    jsonb.extend_from_slice(br#"{"e": "jane@example.org"}"#);
    let numeric = integer_to_numeric(b"4111111111111111");
    m.set_columns(&[
        col("pan", 20, 1),
        col("doc", 3802, 1),
        col("num", 1700, 1),
        col("small", 23, 1),
        col("ip", 869, 1),
    ]);
    let out = m.mask_row(&row(&[
        Some(&card.to_be_bytes()),
        Some(&jsonb),
        Some(&numeric),
        Some(&7i32.to_be_bytes()),
        Some(&[2, 32, 0, 4, 203, 0, 113, 9]),
    ]));
    let RowOutcome::Rewritten(frame) = out else {
        panic!("expected a rewrite")
    };
    let v = values(&frame);
    assert_eq!(v[0].as_deref(), Some(&1111i64.to_be_bytes()[..]));
    assert_eq!(
        v[1].as_deref(),
        Some(&b"\x01{\"e\": \"j***@example.org\"}"[..])
    );
    assert_eq!(
        numeric_to_text(v[2].as_deref().unwrap()).as_deref(),
        Some("1111")
    );
    assert_eq!(v[3].as_deref(), Some(&7i32.to_be_bytes()[..]));
    assert_eq!(v[4].as_deref(), Some(&[2, 32, 0, 4, 203, 0, 0, 0][..]));
}

#[test]
fn binary_arrays_are_masked_element_by_element() {
    let mut m = RowMasker::new(engine(Strategy::Null));
    let mut array = Vec::new();
    array.extend_from_slice(&1i32.to_be_bytes()); // ndim
    array.extend_from_slice(&0i32.to_be_bytes()); // has nulls
    array.extend_from_slice(&25u32.to_be_bytes()); // text
    array.extend_from_slice(&2i32.to_be_bytes()); // size
    array.extend_from_slice(&1i32.to_be_bytes()); // lower bound
    for e in [&b"ok"[..], b"jane@example.org"] {
        array.extend_from_slice(&(e.len() as i32).to_be_bytes());
        array.extend_from_slice(e);
    }
    m.set_columns(&[col("tags", 1009, 1)]);
    let RowOutcome::Rewritten(frame) = m.mask_row(&row(&[Some(&array)])) else {
        panic!()
    };
    let v = values(&frame)[0].clone().unwrap();
    assert_eq!(&v[4..8], &1i32.to_be_bytes(), "has-nulls flag set");
    assert_eq!(&v[v.len() - 4..], &(-1i32).to_be_bytes(), "element nulled");
}

#[test]
fn numeric_binary_round_trips() {
    for text in [
        "0",
        "1",
        "9999",
        "10000",
        "4111111111111111",
        "123456789012345678",
    ] {
        let encoded = integer_to_numeric(text.as_bytes());
        assert_eq!(numeric_to_text(&encoded).as_deref(), Some(text), "{text}");
    }
    // 12.50 with dscale 2: digits [12, 5000], weight 0.
    let mut v = Vec::new();
    for w in [2i16, 0, 0, 2, 12, 5000] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    assert_eq!(numeric_to_text(&v).as_deref(), Some("12.50"));
}

#[test]
fn unknown_binary_types_fail_closed() {
    let mut m = RowMasker::new(engine(Strategy::Redact));
    m.set_columns(&[col("blob", 99999, 1), col("txt", 99999, 1)]);
    let mut blob = vec![0u8, 1, 2];
    blob.extend_from_slice(b"jane@example.org");
    let RowOutcome::Rewritten(frame) = m.mask_row(&row(&[Some(&blob), Some(b"jane@example.org")]))
    else {
        panic!()
    };
    let v = values(&frame);
    assert_eq!(v[0], None);
    assert_eq!(v[1].as_deref(), Some(&b"<EMAIL>"[..]));
}

#[test]
fn copy_output_is_masked_in_text_and_binary() {
    let mut m = RowMasker::new(engine(Strategy::Redact));
    m.start_copy(false);
    let frame = |body: &[u8]| {
        let mut out = BytesMut::new();
        out.put_u8(b'd');
        out.put_u32(body.len() as u32 + 4);
        out.put_slice(body);
        out.freeze()
    };
    let RowOutcome::Rewritten(f) =
        m.mask_copy_data(&frame(b"1\tjane@example.org\t4111111111111111\n"))
    else {
        panic!()
    };
    assert_eq!(&f[5..], b"1\t<EMAIL>\t0\n");

    m.start_copy(true);
    let mut body = b"PGCOPY\n\xff\r\n\0".to_vec();
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&2i16.to_be_bytes());
    body.extend_from_slice(&8i32.to_be_bytes());
    body.extend_from_slice(&4111111111111111i64.to_be_bytes());
    body.extend_from_slice(&16i32.to_be_bytes());
    body.extend_from_slice(b"jane@example.org");
    let RowOutcome::Rewritten(f) = m.mask_copy_data(&frame(&body)) else {
        panic!()
    };
    let out = &f[5..];
    assert_eq!(&out[19..21], &2i16.to_be_bytes());
    assert_eq!(&out[21..25], &8i32.to_be_bytes());
    assert_eq!(&out[25..33], &0i64.to_be_bytes());
    assert_eq!(&out[37..], b"<EMAIL>");
}

#[test]
fn pass_through_changes_nothing() {
    let mut m = RowMasker::pass_through();
    m.set_columns(&[col("e", 25, 0)]);
    assert_eq!(
        m.mask_row(&row(&[Some(b"jane@example.org")])),
        RowOutcome::Unchanged
    );
}

#[test]
fn message_texts_are_masked_and_counted_apart_from_columns() {
    let mut m = RowMasker::new(engine(Strategy::Redact));
    let masked =
        m.mask_message_text(b"invalid input syntax for type integer: \"jane@example.org\"");
    assert_eq!(
        masked.as_deref(),
        Some(&b"invalid input syntax for type integer: \"<EMAIL>\""[..])
    );
    assert_eq!(
        m.mask_message_text(b"relation \"users\" does not exist"),
        None
    );
    let stats = m.take_stats();
    assert_eq!(
        stats.columns,
        vec![("(messages)".to_string(), vec![(Kind::Email, 1)])]
    );
    assert_eq!(
        RowMasker::pass_through().mask_message_text(b"jane@example.org"),
        None
    );
}

/// The one value of the masked row in column 0.
fn masked_one(m: &mut RowMasker, value: &[u8]) -> Option<Option<Vec<u8>>> {
    match m.mask_row(&row(&[Some(value)])) {
        RowOutcome::Unchanged => None,
        RowOutcome::Rewritten(frame) => Some(values(&frame).remove(0)),
    }
}

#[test]
fn numbers_are_masked_in_every_decimal_form_and_type() {
    let card = 4111111111111111i64;
    let mut m = RowMasker::new(engine(Strategy::Partial));
    // Text forms of float8, float4, numeric and money.
    for (oid, text) in [
        (701, &b"4.111111111111111e+15"[..]),
        (701, b"4111111111111111"),
        (1700, b"4111111111111111.0"),
        (1700, b"4111111111111111.000"),
        (790, b"$4,111,111,111,111,111.00"),
        (790, b"4.111.111.111.111.111,00 EUR"),
    ] {
        m.set_columns(&[col("n", oid, 0)]);
        assert_eq!(
            masked_one(&mut m, text),
            Some(Some(b"1111".to_vec())),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
    // Binary float8 keeps its width and stays a float.
    m.set_columns(&[col("n", 701, 1)]);
    let out = masked_one(&mut m, &(card as f64).to_be_bytes());
    assert_eq!(out, Some(Some(1111f64.to_be_bytes().to_vec())));
    // Binary money: cents.
    m.set_columns(&[col("n", 790, 1)]);
    let out = masked_one(&mut m, &(card * 100).to_be_bytes());
    assert_eq!(out, Some(Some(111100i64.to_be_bytes().to_vec())));
    // Binary numeric with a scale.
    let mut scaled = Vec::new();
    for w in [4i16, 3, 0, 1, 4111, 1111, 1111, 1111] {
        scaled.extend_from_slice(&w.to_be_bytes());
    }
    m.set_columns(&[col("n", 1700, 1)]);
    let Some(Some(out)) = masked_one(&mut m, &scaled) else {
        panic!("numeric with a scale passed")
    };
    assert_eq!(numeric_to_text(&out).as_deref(), Some("1111"));
    // float4 keeps seven digits: no card is left in it, and amounts are no
    // identifiers.
    m.set_columns(&[col("n", 700, 1)]);
    assert_eq!(masked_one(&mut m, &(card as f32).to_be_bytes()), None);
    m.set_columns(&[col("n", 701, 0), col("m", 1700, 0), col("e", 701, 1)]);
    assert_eq!(
        m.mask_row(&row(&[
            Some(b"1234567.89"),
            Some(b"2.718281828459045"),
            Some(&std::f64::consts::E.to_be_bytes()),
        ])),
        RowOutcome::Unchanged
    );
}

/// A binary record of (oid, value) fields.
fn record(fields: &[(u32, Option<&[u8]>)]) -> Vec<u8> {
    let mut out = (fields.len() as i32).to_be_bytes().to_vec();
    for (oid, value) in fields {
        out.extend_from_slice(&oid.to_be_bytes());
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

/// A binary range with both bounds.
fn range(lower: &[u8], upper: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02];
    for b in [lower, upper] {
        out.extend_from_slice(&(b.len() as i32).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

#[test]
fn composite_binary_values_are_masked_inside() {
    let card = 4111111111111111i64.to_be_bytes();
    let sub = 1111i64.to_be_bytes();
    let mut m = RowMasker::new(engine(Strategy::Partial));
    // A table row type (an OID Airlock does not know) holding an int8, a
    // float8 and a record holding an int8range.
    let inner = record(&[(3926, Some(&range(&card, &card)))]);
    let row_value = record(&[
        (23, Some(&7i32.to_be_bytes())),
        (20, Some(&card)),
        (701, Some(&4111111111111111f64.to_be_bytes())),
        (2249, Some(&inner)),
        (25, None),
    ]);
    m.set_columns(&[col("p", 16_385, 1)]);
    let Some(Some(out)) = masked_one(&mut m, &row_value) else {
        panic!("row type passed")
    };
    let expected = record(&[
        (23, Some(&7i32.to_be_bytes())),
        (20, Some(&sub)),
        (701, Some(&1111f64.to_be_bytes())),
        (2249, Some(&record(&[(3926, Some(&range(&sub, &sub)))]))),
        (25, None),
    ]);
    assert_eq!(out, expected);
    // int8range and int8multirange by their OIDs.
    m.set_columns(&[col("r", 3926, 1)]);
    assert_eq!(
        masked_one(&mut m, &range(&card, &7i64.to_be_bytes())),
        Some(Some(range(&sub, &7i64.to_be_bytes())))
    );
    let mut multi = 1i32.to_be_bytes().to_vec();
    let r = range(&7i64.to_be_bytes(), &card);
    multi.extend_from_slice(&(r.len() as i32).to_be_bytes());
    multi.extend_from_slice(&r);
    m.set_columns(&[col("r", 4536, 1)]);
    let Some(Some(out)) = masked_one(&mut m, &multi) else {
        panic!("multirange passed")
    };
    assert!(out.ends_with(&sub), "{out:?}");
    // A domain over int8 comes with an OID Airlock does not know.
    m.set_columns(&[col("d", 16_400, 1)]);
    assert_eq!(masked_one(&mut m, &card), Some(Some(sub.to_vec())));
    // An enum label is text.
    m.set_columns(&[col("e", 16_401, 1)]);
    assert_eq!(masked_one(&mut m, b"active"), None);
}

#[test]
fn composite_text_values_keep_their_syntax() {
    let mut m = RowMasker::new(engine(Strategy::Partial));
    for (oid, text, expected) in [
        (
            16_385,
            &b"(7,4111111111111111,\"jane@example.org\")"[..],
            &b"(7,1111,\"j***@example.org\")"[..],
        ),
        (16_385, b"(7,4.111111111111111e+15)", b"(7,1111)"),
        (
            3926,
            b"[4111111111111111,4111111111111112)",
            b"[1111,4111111111111112)",
        ),
        (4536, b"{[7,4111111111111111)}", b"{[7,1111)}"),
        (2287, b"{\"(7,4111111111111111)\"}", b"{\"(7,1111)\"}"),
    ] {
        m.set_columns(&[col("v", oid, 0)]);
        assert_eq!(
            masked_one(&mut m, text).map(|v| String::from_utf8_lossy(&v.unwrap()).into_owned()),
            Some(String::from_utf8_lossy(expected).into_owned()),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn bytea_holding_wide_text_is_masked() {
    let mut m = RowMasker::new(engine(Strategy::Redact));
    let utf16be: Vec<u8> = "mail jane@example.org"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let utf16le: Vec<u8> = "4111111111111111"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    m.set_columns(&[col("b", 17, 1), col("c", 17, 1)]);
    let RowOutcome::Rewritten(frame) = m.mask_row(&row(&[Some(&utf16be), Some(&utf16le)])) else {
        panic!("wide text passed")
    };
    let v = values(&frame);
    let be: Vec<u8> = "mail <EMAIL>"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    assert_eq!(v[0].as_deref(), Some(&be[..]));
    assert!(v[1].as_ref().is_some_and(|b| b != &utf16le));
    // The same in hex text format.
    let hex = format!("\\x{}", crate::hex::encode(&utf16be));
    m.set_columns(&[col("b", 17, 0)]);
    let expected = format!("\\x{}", crate::hex::encode(&be));
    assert_eq!(
        masked_one(&mut m, hex.as_bytes()),
        Some(Some(expected.into_bytes()))
    );
}

#[test]
fn bit_strings_are_masked_as_the_numbers_they_cast_from() {
    let card = 4111111111111111u64;
    let mut m = RowMasker::new(engine(Strategy::Partial));
    m.set_columns(&[col("b", 1560, 0)]);
    let text = format!("{card:064b}");
    assert_eq!(
        masked_one(&mut m, text.as_bytes()),
        Some(Some(format!("{:064b}", 1111).into_bytes()))
    );
    m.set_columns(&[col("b", 1562, 1)]);
    let mut binary = 64i32.to_be_bytes().to_vec();
    binary.extend_from_slice(&card.to_be_bytes());
    let mut expected = 64i32.to_be_bytes().to_vec();
    expected.extend_from_slice(&1111u64.to_be_bytes());
    assert_eq!(masked_one(&mut m, &binary), Some(Some(expected)));
    // Flags are no identifiers.
    m.set_columns(&[col("b", 1560, 0)]);
    assert_eq!(masked_one(&mut m, b"10101010"), None);
}

#[test]
fn only_single_numbers_are_read_as_numbers() {
    for yes in [
        "4111111111111111",
        "-1.5",
        "4.111111111111111e+15",
        ".5",
        "1E9",
    ] {
        assert!(super::is_number_text(yes.as_bytes()), "{yes}");
    }
    for no in [
        "203.0.113.7",
        "2024-01-02",
        "1.2.3",
        "e5",
        "-",
        "1e",
        "12-34",
    ] {
        assert!(!super::is_number_text(no.as_bytes()), "{no}");
    }
}

#[test]
fn geometric_coordinates_are_masked_in_text_and_binary() {
    let card = 4111111111111111f64;
    let mut m = RowMasker::new(engine(Strategy::Redact));
    // point, box, polygon and circle in text; point, lseg, path and polygon in binary.
    m.set_columns(&[
        col("p", 600, 0),
        col("b", 603, 0),
        col("poly", 604, 0),
        col("c", 718, 0),
    ]);
    let RowOutcome::Rewritten(frame) = m.mask_row(&row(&[
        Some(b"(4.111111111111111e+15,0)"),
        Some(b"(4.111111111111111e+15,2),(1,1.5)"),
        Some(b"((0,0),(4111111111111111,1))"),
        Some(b"<(4.111111111111111e+15,2),3>"),
    ])) else {
        panic!("nothing masked")
    };
    for v in values(&frame) {
        let v = String::from_utf8(v.unwrap()).unwrap();
        assert!(
            !v.contains("4.111111111111111e+15") && !v.contains("4111111111111111"),
            "{v}"
        );
    }
    let doubles = |xs: &[f64]| xs.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    let point = doubles(&[card, 2.0]);
    let lseg = doubles(&[1.0, card, 3.0, 4.0]);
    let mut path = vec![1u8];
    path.extend_from_slice(&2i32.to_be_bytes());
    path.extend_from_slice(&doubles(&[1.0, 2.0, card, 4.0]));
    let mut polygon = 1i32.to_be_bytes().to_vec();
    polygon.extend_from_slice(&doubles(&[card, 0.5]));
    m.set_columns(&[
        col("p", 600, 1),
        col("l", 601, 1),
        col("path", 602, 1),
        col("poly", 604, 1),
        col("bad", 600, 1),
    ]);
    let RowOutcome::Rewritten(frame) = m.mask_row(&row(&[
        Some(&point),
        Some(&lseg),
        Some(&path),
        Some(&polygon),
        Some(&[1, 2, 3]),
    ])) else {
        panic!("nothing masked")
    };
    let v = values(&frame);
    let f = |b: &[u8], at: usize| f64::from_be_bytes(b[at..at + 8].try_into().unwrap());
    let p = v[0].as_ref().unwrap();
    assert_eq!((p.len(), f(p, 8)), (16, 2.0), "the other coordinate stays");
    assert_ne!(f(p, 0), card);
    assert_ne!(f(v[1].as_ref().unwrap(), 8), card);
    let path = v[2].as_ref().unwrap();
    assert_eq!((path.len(), f(path, 5)), (37, 1.0));
    assert_ne!(f(path, 21), card);
    assert_ne!(f(v[3].as_ref().unwrap(), 4), card);
    assert_eq!(v[4], None, "a value that is no point fails closed");
    // Coordinates that are no one's card pass unchanged.
    m.set_columns(&[col("p", 600, 1), col("t", 600, 0)]);
    assert_eq!(
        m.mask_row(&row(&[Some(&doubles(&[1.5, -2.25])), Some(b"(1.5,-2.25)")])),
        RowOutcome::Unchanged
    );
}

#[test]
fn a_number_repeated_down_a_result_is_masked_in_every_row() {
    // The second and later rows take the verdict from the session's memo.
    let mut m = RowMasker::new(engine(Strategy::Redact));
    m.set_columns(&[col("note", 25, 0), col("ref", 25, 0)]);
    for _ in 0..3 {
        let out = m.mask_row(&row(&[
            Some(b"call back on +44 20 7946 0123"),
            Some(b"+44 0123 456789"),
        ]));
        let RowOutcome::Rewritten(frame) = out else {
            panic!("the phone number was not masked: {out:?}");
        };
        let values = values(&frame);
        assert_eq!(values[0].as_deref(), Some(&b"call back on <PHONE>"[..]));
        // An unissued number stays, from the memo too.
        assert_eq!(values[1].as_deref(), Some(&b"+44 0123 456789"[..]));
    }
}
