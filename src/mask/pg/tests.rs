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
