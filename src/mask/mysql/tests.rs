use std::cell::Cell;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::types::*;
use super::*;
use crate::mask::{Detectors, Kind, MaskSettings, Strategy};

fn engine(strategy: Strategy) -> Arc<Masker> {
    Arc::new(Masker::new(&MaskSettings {
        detectors: Detectors::all(),
        default_strategy: strategy,
        token_key: [1; 32],
        ..MaskSettings::default()
    }))
}

const UTF8MB4: u16 = 45;

fn col(name: &str, column_type: u8, charset: u16, flags: u16) -> MysqlColumn {
    MysqlColumn {
        name: name.into(),
        org_name: name.into(),
        column_type,
        charset,
        flags,
        decimals: 0,
    }
}

fn text(name: &str) -> MysqlColumn {
    col(name, VAR_STRING, UTF8MB4, 0)
}

fn lenenc(value: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_lenenc_str(&mut out, value);
    out.to_vec()
}

/// A text-protocol row payload.
fn text_row(values: &[Option<&[u8]>]) -> Bytes {
    let mut out = Vec::new();
    for v in values {
        match v {
            None => out.push(NULL_VALUE),
            Some(v) => out.extend_from_slice(&lenenc(v)),
        }
    }
    Bytes::from(out)
}

/// A binary-protocol row payload from each column's encoded value (length
/// prefix included) or NULL.
fn binary_row(values: &[Option<Vec<u8>>]) -> Bytes {
    let mut out = vec![0u8; 1 + bitmap_len(values.len())];
    for (i, v) in values.iter().enumerate() {
        match v {
            None => out[1 + (i + 2) / 8] |= 1 << ((i + 2) % 8),
            Some(v) => out.extend_from_slice(v),
        }
    }
    Bytes::from(out)
}

/// The values of a text row, which must parse.
fn text_values(row: &[u8], columns: usize) -> Vec<Option<Vec<u8>>> {
    assert!(text_row_parses(row, columns), "{row:?}");
    let mut at = 0;
    (0..columns)
        .map(|_| text_value(row, &mut at).flatten().map(|r| row[r].to_vec()))
        .collect()
}

/// The values of a binary row, which must parse: the content of
/// length-encoded values, the raw bytes of the others.
fn binary_values(row: &[u8], columns: &[MysqlColumn]) -> Vec<Option<Vec<u8>>> {
    let plans: Vec<Plan> = columns.iter().map(plan_of).collect();
    assert!(binary_row_parses(row, &plans), "{row:?}");
    let mut at = 1 + bitmap_len(plans.len());
    plans
        .iter()
        .enumerate()
        .map(|(i, plan)| {
            if is_null(row, i) {
                return None;
            }
            let range = binary_value(row, plan.layout, &mut at)?;
            if plan.layout == Layout::LenEnc {
                let mut start = range.start;
                let content = lenenc_str(row, &mut start)?;
                return Some(row[content].to_vec());
            }
            Some(row[range].to_vec())
        })
        .collect()
}

fn rewritten(outcome: RowOutcome) -> Bytes {
    match outcome {
        RowOutcome::Rewritten(row) => row,
        RowOutcome::Unchanged => panic!("expected a rewrite"),
    }
}

// Counts this thread's allocations, to hold the hot path to its promise.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's layout is passed on as received.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// A column definition captured from MariaDB 10.11 for
/// `SELECT COLLATION_NAME AS n, ID FROM information_schema.COLLATIONS`.
const MARIADB_NAME_COLUMN: &str = "0364656612696e666f726d6174696f6e5f736368656d610a434f4c4c4154494f4e530a434f4c4c4154494f4e53016e0e434f4c4c4154494f4e5f4e414d450c2d0000010000fd0110000000";
const MARIADB_ID_COLUMN: &str = "0364656612696e666f726d6174696f6e5f736368656d610a434f4c4c4154494f4e530a434f4c4c4154494f4e530249440249440c3f000b000000080010000000";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

#[test]
fn column_definitions_captured_from_mariadb_are_read() {
    let name = parse_column_definition(&unhex(MARIADB_NAME_COLUMN));
    assert_eq!(
        name,
        Some(MysqlColumn {
            name: "n".into(),
            org_name: "COLLATION_NAME".into(),
            column_type: VAR_STRING,
            charset: UTF8MB4,
            flags: 0x1001,
            decimals: 0,
        })
    );
    let id = parse_column_definition(&unhex(MARIADB_ID_COLUMN));
    assert_eq!(
        id,
        Some(MysqlColumn {
            name: "ID".into(),
            org_name: "ID".into(),
            column_type: LONGLONG,
            charset: BINARY_CHARSET,
            flags: 0x1000,
            decimals: 0,
        })
    );
    // A default value after the fixed fields (COM_FIELD_LIST) is ignored.
    let mut with_default = unhex(MARIADB_ID_COLUMN);
    with_default.extend_from_slice(&lenenc(b"0"));
    assert_eq!(parse_column_definition(&with_default), id);
}

#[test]
fn column_definitions_cut_short_or_garbled_are_refused() {
    let full = unhex(MARIADB_NAME_COLUMN);
    for len in 0..full.len() - 2 {
        assert_eq!(parse_column_definition(&full[..len]), None, "{len} bytes");
    }
    // A fixed-fields length other than 12.
    let mut odd = full.clone();
    let at = full.len() - 13;
    assert_eq!(odd[at], 0x0c);
    odd[at] = 0x0d;
    assert_eq!(parse_column_definition(&odd), None);
    // Length prefixes claiming more than there is, or invalid.
    assert_eq!(
        parse_column_definition(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        None
    );
    assert_eq!(parse_column_definition(&[0xff; 40]), None);
    assert_eq!(parse_column_definition(&[0xfb; 40]), None);
}

#[test]
fn text_rows_without_findings_are_forwarded_untouched() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    m.set_columns(&[
        col("id", LONG, BINARY_CHARSET, 0),
        text("name"),
        col("doc", JSON, BINARY_CHARSET, 0),
    ]);
    let row = text_row(&[Some(b"42"), Some(b"blue"), None]);
    assert_eq!(m.mask_text_row(&row), RowOutcome::Unchanged);
    assert!(m.take_stats().is_empty());
    assert_eq!(m.rows_seen(), 1);
}

#[test]
fn rows_with_nothing_to_mask_allocate_nothing() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    let columns = [
        col("id", LONGLONG, BINARY_CHARSET, 0),
        text("note"),
        col("doc", JSON, BINARY_CHARSET, 0),
        col("raw", BLOB, BINARY_CHARSET, 0),
        col("amount", NEWDECIMAL, BINARY_CHARSET, 0),
        col("at", DATETIME, BINARY_CHARSET, 0),
    ];
    m.set_columns(&columns);
    let blob = [0u8, 159, 146, 150, 0xff, 7, 0];
    let text = text_row(&[
        Some(b"48213"),
        Some(b"shipped, awaiting pickup"),
        Some(br#"{"plan": "pro", "seats": 12}"#),
        Some(&blob),
        Some(b"1284.50"),
        Some(b"2026-03-15 14:22:07"),
    ]);
    let binary = binary_row(&[
        Some(48213i64.to_le_bytes().to_vec()),
        Some(lenenc(b"shipped, awaiting pickup")),
        Some(lenenc(br#"{"plan": "pro", "seats": 12}"#)),
        Some(lenenc(&blob)),
        Some(lenenc(b"1284.50")),
        Some(vec![7, 0xea, 0x07, 3, 15, 14, 22, 7]),
    ]);
    // Warm the scratch buffers once.
    let _ = m.mask_text_row(&text);
    let _ = m.mask_binary_row(&binary);
    let n = allocations_during(|| {
        for _ in 0..10 {
            assert_eq!(m.mask_text_row(&text), RowOutcome::Unchanged);
            assert_eq!(m.mask_binary_row(&binary), RowOutcome::Unchanged);
        }
    });
    assert_eq!(n, 0, "allocations on the no-finding path");
}

#[test]
fn text_rows_are_masked_by_column_type() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    let columns = [
        text("email"),
        col("bio", BLOB, UTF8MB4, 0),
        col("doc", JSON, BINARY_CHARSET, 0),
        text("settings"),
        col("pan", LONGLONG, BINARY_CHARSET, 0),
        col("born", DATE, BINARY_CHARSET, 0),
        text("gone"),
    ];
    m.set_columns(&columns);
    let row = text_row(&[
        Some(b"mail jane@example.org"),
        Some(b"call +1 415-555-2671 after six"),
        Some(br#"{"aws": "AKIAQWERTYUIOPASDFGH", "n": 1}"#),
        Some(br#"[{"key": "AKIAQWERTYUIOPASDFGH"}]"#),
        Some(b"4111111111111111"),
        Some(b"1990-01-31"),
        None,
    ]);
    let out = rewritten(m.mask_text_row(&row));
    let v = text_values(&out, columns.len());
    assert_eq!(v[0].as_deref(), Some(&b"mail <EMAIL>"[..]));
    assert_eq!(v[1].as_deref(), Some(&b"call <PHONE> after six"[..]));
    assert_eq!(
        v[2].as_deref(),
        Some(&br#"{"aws": "<AWS_ACCESS_KEY>", "n": 1}"#[..])
    );
    assert_eq!(
        v[3].as_deref(),
        Some(&br#"[{"key": "<AWS_ACCESS_KEY>"}]"#[..])
    );
    assert_eq!(v[4].as_deref(), Some(&b"0"[..]));
    assert_eq!(v[5].as_deref(), Some(&b"1990-01-31"[..]));
    assert_eq!(v[6], None);
    let stats = m.take_stats();
    assert_eq!(stats.total(), 5);
    assert_eq!(
        stats.columns[0],
        ("email".to_string(), vec![(Kind::Email, 1)])
    );
    assert_eq!(stats.columns[4].0, "pan");
    assert!(m.take_stats().is_empty(), "stats are taken once");
}

#[test]
fn json_stays_json_and_long_values_get_long_prefixes() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Token));
    m.set_columns(&[col("doc", JSON, BINARY_CHARSET, 0), text("long")]);
    let doc = br#"{"users": [{"email": "jane@example.org"}, {"email": "joe@example.com"}]}"#;
    // A value whose length needs a three-byte prefix, before and after.
    let mut long = "x".repeat(70_000).into_bytes();
    long.extend_from_slice(b" jane@example.org");
    let out = rewritten(m.mask_text_row(&text_row(&[Some(doc), Some(&long)])));
    let v = text_values(&out, 2);
    let masked = v[0].clone().unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_slice(&masked).unwrap_or_default();
    assert_eq!(
        parsed["users"].as_array().map(Vec::len),
        Some(2),
        "{parsed}"
    );
    assert!(!String::from_utf8_lossy(&masked).contains("jane@"));
    let long_out = v[1].clone().unwrap_or_default();
    assert!(long_out.starts_with(&long[..70_000]));
    assert!(!String::from_utf8_lossy(&long_out).contains("jane@"));
}

#[test]
fn integers_in_text_keep_their_width_sign_and_padding() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Token));
    m.set_columns(&[
        col("pan", LONGLONG, BINARY_CHARSET, 0),
        col("upan", LONGLONG, BINARY_CHARSET, UNSIGNED_FLAG),
        col(
            "padded",
            LONGLONG,
            BINARY_CHARSET,
            UNSIGNED_FLAG | ZEROFILL_FLAG,
        ),
        col("price", NEWDECIMAL, BINARY_CHARSET, 0),
        col("plain", NEWDECIMAL, BINARY_CHARSET, 0),
    ]);
    let row = text_row(&[
        Some(b"4111111111111111"),
        Some(b"4111111111111111"),
        Some(b"00004111111111111111"),
        Some(b"4111111111111111.00"),
        Some(b"4111111111111111"),
    ]);
    let out = rewritten(m.mask_text_row(&row));
    let v: Vec<String> = text_values(&out, 5)
        .into_iter()
        .map(|v| String::from_utf8(v.unwrap_or_default()).unwrap_or_default())
        .collect();
    let signed: i64 = v[0].parse().unwrap_or(-1);
    assert!(signed >= 0 && v[0] != "4111111111111111", "{}", v[0]);
    assert!(v[1].parse::<u64>().is_ok(), "{}", v[1]);
    assert_eq!(v[0], v[1], "equal values, equal tokens");
    assert_eq!(v[2].len(), 20, "zero-filled to the width shown: {}", v[2]);
    assert!(v[2].parse::<u64>().is_ok());
    // DECIMAL(18,2): at most 16 integer digits, and the scale kept.
    let (int, frac) = v[3].split_once('.').unwrap_or_default();
    assert!(int.len() <= 16 && !int.is_empty(), "{}", v[3]);
    assert!(int.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(frac, "00");
    assert!(!v[4].contains('.') && v[4].len() <= 16, "{}", v[4]);
}

#[test]
fn decimal_substitutes_fit_precision_and_scale() {
    let fit = |digits: &[u8], original: &[u8]| match fit_decimal(
        Masked::Replaced(digits.to_vec()),
        original,
    ) {
        Masked::Replaced(v) => String::from_utf8(v).unwrap_or_default(),
        other => panic!("{other:?}"),
    };
    assert_eq!(fit(b"1111", b"4111111111111111.00"), "1111.00");
    assert_eq!(fit(b"987654321098765432", b"4111111111.5"), "1098765432.0");
    assert_eq!(fit(b"0", b"-4111111111111111"), "0");
    assert_eq!(fit(b"120000", b"9.000"), "0.000");
    assert_eq!(fit_decimal(Masked::Null, b"1.0"), Masked::Null);
}

#[test]
fn binary_integers_get_substitutes_of_the_same_width() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Partial));
    let columns = [
        col("pan", LONGLONG, BINARY_CHARSET, 0),
        col("upan", LONGLONG, BINARY_CHARSET, UNSIGNED_FLAG),
        text("email"),
        col("small", LONG, BINARY_CHARSET, 0),
        col("neg", LONGLONG, BINARY_CHARSET, 0),
        col("tiny", TINY, BINARY_CHARSET, 0),
        col("mid", INT24, BINARY_CHARSET, UNSIGNED_FLAG),
        col("short", SHORT, BINARY_CHARSET, 0),
    ];
    m.set_columns(&columns);
    let card = 4111111111111111i64;
    let row = binary_row(&[
        Some(card.to_le_bytes().to_vec()),
        Some((card as u64).to_le_bytes().to_vec()),
        Some(lenenc(b"jane@example.org")),
        Some(7i32.to_le_bytes().to_vec()),
        Some((-card).to_le_bytes().to_vec()),
        Some(vec![0xff]),
        Some(0x00ff_ffffu32.to_le_bytes().to_vec()),
        Some((-2i16).to_le_bytes().to_vec()),
    ]);
    let out = rewritten(m.mask_binary_row(&row));
    assert_eq!(
        out.len(),
        row.len() - b"jane@example.org".len() + b"j***@example.org".len()
    );
    let v = binary_values(&out, &columns);
    assert_eq!(v[0].as_deref(), Some(&1111i64.to_le_bytes()[..]));
    assert_eq!(v[1].as_deref(), Some(&1111u64.to_le_bytes()[..]));
    assert_eq!(v[2].as_deref(), Some(&b"j***@example.org"[..]));
    assert_eq!(v[3].as_deref(), Some(&7i32.to_le_bytes()[..]));
    // A negative card number is still one; its substitute is a number.
    assert_eq!(v[4].as_deref(), Some(&1111i64.to_le_bytes()[..]));
    assert_eq!(v[5].as_deref(), Some(&[0xff][..]));
    assert_eq!(v[6].as_deref(), Some(&0x00ff_ffffu32.to_le_bytes()[..]));
    assert_eq!(v[7].as_deref(), Some(&(-2i16).to_le_bytes()[..]));
}

#[test]
fn binary_integers_read_sign_and_width_right() {
    let mut buf = [0u8; 21];
    let mut text = |bytes: &[u8], unsigned: bool| {
        le_int_decimal(bytes, unsigned, &mut buf).map(|t| String::from_utf8_lossy(t).into_owned())
    };
    assert_eq!(text(&[0xff], false).as_deref(), Some("-1"));
    assert_eq!(text(&[0xff], true).as_deref(), Some("255"));
    assert_eq!(
        text(&i64::MIN.to_le_bytes(), false),
        Some(i64::MIN.to_string())
    );
    assert_eq!(
        text(&u64::MAX.to_le_bytes(), true),
        Some(u64::MAX.to_string())
    );
    assert_eq!(
        text(&(-300i16).to_le_bytes(), false).as_deref(),
        Some("-300")
    );
    assert_eq!(
        text(&(-8_388_608i32).to_le_bytes(), false).as_deref(),
        Some("-8388608")
    );
    assert_eq!(text(&[0, 0, 0, 0], false).as_deref(), Some("0"));
    assert_eq!(text(&[], false), None);
    assert_eq!(text(&[1; 9], true), None);
}

#[test]
fn a_null_strategy_sets_the_null_bit() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Null));
    let columns = [
        col("pan", LONGLONG, BINARY_CHARSET, 0),
        text("email"),
        text("name"),
    ];
    m.set_columns(&columns);
    let row = binary_row(&[
        Some(4111111111111111i64.to_le_bytes().to_vec()),
        Some(lenenc(b"jane@example.org")),
        Some(lenenc(b"blue")),
    ]);
    let out = rewritten(m.mask_binary_row(&row));
    assert_eq!(
        binary_values(&out, &columns),
        vec![None, None, Some(b"blue".to_vec())]
    );
    let out = rewritten(m.mask_text_row(&text_row(&[
        Some(b"4111111111111111"),
        Some(b"jane@example.org"),
        Some(b"blue"),
    ])));
    assert_eq!(
        &out[..],
        &[NULL_VALUE, NULL_VALUE, 4, b'b', b'l', b'u', b'e']
    );
}

#[test]
fn binary_strings_are_masked_as_text_when_they_are_text() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    let columns = [
        col("iban", VAR_STRING, BINARY_CHARSET, 0),
        col("fixed", STRING, BINARY_CHARSET, 0),
        col("plain", BLOB, BINARY_CHARSET, 0),
        col("image", BLOB, BINARY_CHARSET, 0),
    ];
    m.set_columns(&columns);
    let mut fixed = b"jane@example.org".to_vec();
    fixed.resize(24, 0);
    let mut image = vec![0x89, b'P', b'N', b'G', 0, 0, 0x1a];
    image.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 1, 2]);
    let values: [&[u8]; 4] = [
        b"pay DE89370400440532013000 now",
        &fixed,
        b"plain words",
        &image,
    ];
    for binary in [false, true] {
        let row = if binary {
            binary_row(&values.map(|v| Some(lenenc(v))))
        } else {
            text_row(&values.map(Some))
        };
        let out = rewritten(if binary {
            m.mask_binary_row(&row)
        } else {
            m.mask_text_row(&row)
        });
        let v = if binary {
            binary_values(&out, &columns)
        } else {
            text_values(&out, 4)
        };
        assert_eq!(v[0].as_deref(), Some(&b"pay <IBAN> now"[..]));
        let mut padded = b"<EMAIL>".to_vec();
        padded.resize(7 + 8, 0);
        assert_eq!(v[1].as_deref(), Some(&padded[..]), "padding kept");
        assert_eq!(v[2].as_deref(), Some(&b"plain words"[..]));
        assert_eq!(v[3].as_deref(), Some(&image[..]), "binary bytes untouched");
    }
}

#[test]
fn non_text_bytes_with_a_finding_become_null() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    let columns = [col("blob", BLOB, BINARY_CHARSET, 0), text("after")];
    m.set_columns(&columns);
    let mut blob = vec![0u8, 1, 2, 0xff];
    blob.extend_from_slice(b"jane@example.org");
    blob.extend_from_slice(&[0xfe, 3]);
    let out = rewritten(m.mask_text_row(&text_row(&[Some(&blob), Some(b"ok")])));
    assert_eq!(text_values(&out, 2), vec![None, Some(b"ok".to_vec())]);
    let row = binary_row(&[Some(lenenc(&blob)), Some(lenenc(b"ok"))]);
    let out = rewritten(m.mask_binary_row(&row));
    assert_eq!(
        binary_values(&out, &columns),
        vec![None, Some(b"ok".to_vec())]
    );
    assert_eq!(m.take_stats().total(), 2);
}

#[test]
fn nulls_in_every_position_keep_the_bitmap_offset() {
    let columns: Vec<MysqlColumn> = (0..17).map(|i| text(&format!("c{i}"))).collect();
    let nulls = [0usize, 6, 7, 8, 15];
    let value = |i: usize| -> Option<Vec<u8>> {
        if nulls.contains(&i) {
            None
        } else if i == 1 || i == 9 || i == 16 {
            Some(format!("user{i}@example.org").into_bytes())
        } else {
            Some(format!("v{i}").into_bytes())
        }
    };
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    m.set_columns(&columns);
    let row = binary_row(
        &(0..17)
            .map(|i| value(i).map(|v| lenenc(&v)))
            .collect::<Vec<_>>(),
    );
    // 17 columns + 2 reserved bits: a three-byte bitmap.
    assert_eq!(bitmap_len(17), 3);
    // Column i is bit i + 2: column 6 is the first bit of the second byte.
    assert_eq!(row[1], 0b0000_0100, "column 0");
    assert_eq!(row[2], 0b0000_0111, "columns 6, 7 and 8");
    assert_eq!(row[3], 0b0000_0010, "column 15");
    let out = rewritten(m.mask_binary_row(&row));
    assert_eq!(&out[..4], &row[..4], "header and bitmap unchanged");
    let v = binary_values(&out, &columns);
    for (i, got) in v.iter().enumerate() {
        let expected = match value(i) {
            None => None,
            Some(_) if i == 1 || i == 9 || i == 16 => Some(b"<EMAIL>".to_vec()),
            other => other,
        };
        assert_eq!(*got, expected, "column {i}");
    }
    // The same in the text protocol.
    let vals: Vec<Option<Vec<u8>>> = (0..17).map(value).collect();
    let refs: Vec<Option<&[u8]>> = vals.iter().map(Option::as_deref).collect();
    let out = rewritten(m.mask_text_row(&text_row(&refs)));
    let v = text_values(&out, 17);
    assert_eq!(v.iter().filter(|v| v.is_none()).count(), nulls.len());
    assert_eq!(v[16].as_deref(), Some(&b"<EMAIL>"[..]));
    // Nulled by the strategy, in every position, sets the right bits.
    let mut m = MysqlRowMasker::new(engine(Strategy::Null));
    m.set_columns(&columns);
    let out = rewritten(m.mask_binary_row(&row));
    let v = binary_values(&out, &columns);
    for (i, got) in v.iter().enumerate() {
        assert_eq!(
            got.is_none(),
            nulls.contains(&i) || [1, 9, 16].contains(&i),
            "column {i}"
        );
    }
}

#[test]
fn temporal_binary_values_pass_through_whatever_their_length() {
    let columns = [
        col("d0", DATE, BINARY_CHARSET, 0),
        col("d4", DATE, BINARY_CHARSET, 0),
        col("dt7", DATETIME, BINARY_CHARSET, 0),
        col("ts11", TIMESTAMP, BINARY_CHARSET, 0),
        col("t8", TIME, BINARY_CHARSET, 0),
        col("t12", TIME, BINARY_CHARSET, 0),
        col("t0", TIME, BINARY_CHARSET, 0),
        col("f", FLOAT, BINARY_CHARSET, 0),
        col("d", DOUBLE, BINARY_CHARSET, 0),
        col("y", YEAR, BINARY_CHARSET, 0),
        col("bits", BIT, BINARY_CHARSET, 0),
        col("geo", GEOMETRY, BINARY_CHARSET, 0),
        col("nothing", types::NULL, BINARY_CHARSET, 0),
        text("email"),
    ];
    let values = vec![
        Some(vec![0]),
        Some(vec![4, 0xea, 0x07, 1, 31]),
        Some(vec![7, 0xea, 0x07, 1, 31, 23, 59, 59]),
        Some(vec![11, 0xea, 0x07, 1, 31, 23, 59, 59, 0x40, 0x42, 0x0f, 0]),
        Some(vec![8, 1, 10, 0, 0, 0, 12, 30, 0]),
        Some(vec![12, 0, 0, 0, 0, 0, 12, 30, 15, 1, 0, 0, 0]),
        Some(vec![0]),
        Some(4.111_111e15f32.to_le_bytes().to_vec()),
        Some(4111111111111111f64.to_le_bytes().to_vec()),
        Some(2026u16.to_le_bytes().to_vec()),
        Some(lenenc(&4111111111111111u64.to_be_bytes())),
        Some(lenenc(b"\0\0\0\0\x01\x01\0\0\0jane@example.org")),
        None,
        Some(lenenc(b"jane@example.org")),
    ];
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    m.set_columns(&columns);
    let row = binary_row(&values);
    let out = rewritten(m.mask_binary_row(&row));
    let v = binary_values(&out, &columns);
    let original = binary_values(&row, &columns);
    assert_eq!(v[..8], original[..8], "skipped types pass through");
    // A DOUBLE holds the card exactly: masked, still eight bytes.
    assert_eq!(v[8].as_deref(), Some(&0f64.to_le_bytes()[..]));
    assert_eq!(v[9], original[9], "skipped types pass through");
    // So does a BIT(64) holding it.
    assert_eq!(v[10].as_deref(), Some(&0u64.to_be_bytes()[..]));
    assert_eq!(v[11..13], original[11..13], "skipped types pass through");
    assert_eq!(v[13].as_deref(), Some(&b"<EMAIL>"[..]), "and stay aligned");
    // The NULL type, flagged not NULL, has no bytes.
    let mut values = values;
    values[12] = Some(Vec::new());
    let out = rewritten(m.mask_binary_row(&binary_row(&values)));
    assert_eq!(
        binary_values(&out, &columns)[13].as_deref(),
        Some(&b"<EMAIL>"[..])
    );
    // A temporal length that no server sends means the row is misread.
    let mut bad = values.clone();
    bad[1] = Some(vec![5, 0xea, 0x07, 1, 31, 0]);
    let out = rewritten(m.mask_binary_row(&binary_row(&bad)));
    assert_eq!(out, unreadable(columns.len(), true));
}

fn unreadable(columns: usize, binary: bool) -> Bytes {
    rewritten(unreadable_row(columns, binary))
}

#[test]
fn unreadable_rows_become_rows_of_nulls() {
    let columns = [text("a"), col("n", LONGLONG, BINARY_CHARSET, 0)];
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    m.set_columns(&columns);
    let nulls = unreadable(2, false);
    assert_eq!(&nulls[..], &[NULL_VALUE, NULL_VALUE]);
    let text_cases: &[&[u8]] = &[
        // A two-byte length cut short.
        &[0xfc, 0x10],
        // A length claiming more than the row holds.
        &[0x05, b'j', b'a', b'n', 0xfb],
        &[
            0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, b'x', 0xfb,
        ],
        // One value too few, one too many.
        &[0x02, b'h', b'i'],
        &[0x01, b'a', 0x01, b'1', 0x01, b'2'],
        // 0xFF is no length.
        &[0xff, 0x01, b'1'],
        &[],
    ];
    for case in text_cases {
        let out = m.mask_text_row(&Bytes::copy_from_slice(case));
        assert_eq!(out, RowOutcome::Rewritten(nulls.clone()), "{case:?}");
        assert_eq!(text_values(&nulls, 2), vec![None, None]);
    }
    let bnulls = unreadable(2, true);
    assert_eq!(binary_values(&bnulls, &columns), vec![None, None]);
    let good = binary_row(&[Some(lenenc(b"hi")), Some(7i64.to_le_bytes().to_vec())]);
    let mut wrong_header = good.to_vec();
    wrong_header[0] = 0xfe;
    let mut trailing = good.to_vec();
    trailing.push(0);
    let binary_cases: Vec<Vec<u8>> = vec![
        // No bitmap at all, then a short one for 9 columns.
        vec![0],
        wrong_header,
        trailing,
        // The integer cut short.
        good[..good.len() - 1].to_vec(),
        // A string length running past the end.
        vec![0, 0, 0x09, b'h', b'i'],
        Vec::new(),
    ];
    for case in &binary_cases {
        let out = m.mask_binary_row(&Bytes::copy_from_slice(case));
        assert_eq!(out, RowOutcome::Rewritten(bnulls.clone()), "{case:?}");
    }
    // A short bitmap: nine columns need two bytes.
    let nine: Vec<MysqlColumn> = (0..9).map(|i| text(&format!("c{i}"))).collect();
    m.set_columns(&nine);
    let out = m.mask_binary_row(&Bytes::from_static(&[0, 0xff]));
    assert_eq!(out, RowOutcome::Rewritten(unreadable(9, true)));
    assert_eq!(
        binary_values(&unreadable(9, true), &nine),
        vec![None; 9],
        "every bit set, offset 2"
    );
}

#[test]
fn unknown_types_fail_closed() {
    let columns = [col("vec", 242, BINARY_CHARSET, 0), text("email")];
    assert_eq!(plan_of(&MysqlColumn::unknown("x")).class, Class::Other);
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    m.set_columns(&columns);
    // Text protocol: every value is a string; read by content.
    let mut raw = vec![0u8, 0x80, 0x3f];
    raw.extend_from_slice(b"jane@example.org");
    let out = rewritten(m.mask_text_row(&text_row(&[Some(&raw), Some(b"ok")])));
    assert_eq!(text_values(&out, 2), vec![None, Some(b"ok".to_vec())]);
    let out = rewritten(m.mask_text_row(&text_row(&[Some(b"4111111111111111"), None])));
    assert_eq!(text_values(&out, 2), vec![Some(b"0".to_vec()), None]);
    let out = rewritten(m.mask_text_row(&text_row(&[Some(b"jane@example.org"), None])));
    assert_eq!(text_values(&out, 2), vec![Some(b"<EMAIL>".to_vec()), None]);
    // Binary protocol: where the value ends is not known, so the row
    // cannot be read — unless the value is NULL.
    let row = binary_row(&[Some(lenenc(b"anything")), Some(lenenc(b"ok"))]);
    assert_eq!(
        m.mask_binary_row(&row),
        RowOutcome::Rewritten(unreadable(2, true))
    );
    let row = binary_row(&[None, Some(lenenc(b"jane@example.org"))]);
    let out = rewritten(m.mask_binary_row(&row));
    assert_eq!(
        binary_values(&out, &columns),
        vec![None, Some(b"<EMAIL>".to_vec())]
    );
}

#[test]
fn pass_through_reads_nothing() {
    let mut m = MysqlRowMasker::pass_through();
    assert!(!m.is_active());
    m.set_columns(&[text("e")]);
    let row = text_row(&[Some(b"jane@example.org")]);
    assert_eq!(m.mask_text_row(&row), RowOutcome::Unchanged);
    assert_eq!(
        m.mask_binary_row(&Bytes::from_static(b"garbage")),
        RowOutcome::Unchanged
    );
    assert_eq!(m.mask_message_text(b"jane@example.org"), None);
    assert_eq!(m.rows_seen(), 2);
    assert!(MysqlRowMasker::new(engine(Strategy::Redact)).is_active());
}

#[test]
fn error_messages_are_masked_and_counted_apart_from_columns() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    assert_eq!(
        m.mask_message_text(b"Duplicate entry 'jane@example.org' for key 'email'")
            .as_deref(),
        Some(&b"Duplicate entry '<EMAIL>' for key 'email'"[..])
    );
    assert_eq!(
        m.mask_message_text(b"Incorrect integer value: '4111111111111111' for column 'n'")
            .as_deref(),
        Some(&b"Incorrect integer value: '<CARD>' for column 'n'"[..])
    );
    assert_eq!(
        m.mask_message_text(b"Table 'test.users' doesn't exist"),
        None
    );
    assert_eq!(
        m.take_stats().columns,
        vec![(
            "(messages)".to_string(),
            vec![(Kind::Card, 1), (Kind::Email, 1)]
        )]
    );
}

/// The types a fuzzed column set draws from, unknown ones included.
const FUZZ_TYPES: &[u8] = &[
    DECIMAL,
    TINY,
    SHORT,
    LONG,
    FLOAT,
    DOUBLE,
    types::NULL,
    TIMESTAMP,
    LONGLONG,
    INT24,
    DATE,
    TIME,
    DATETIME,
    YEAR,
    14,
    VARCHAR,
    BIT,
    17,
    242,
    JSON,
    NEWDECIMAL,
    ENUM,
    SET,
    TINY_BLOB,
    MEDIUM_BLOB,
    LONG_BLOB,
    BLOB,
    VAR_STRING,
    STRING,
    GEOMETRY,
];

const FUZZ_PIECES: &[&[u8]] = &[
    b"jane@example.org",
    b"4111111111111111",
    b"DE89370400440532013000",
    b"{\"k\": \"AKIAQWERTYUIOPASDFGH\"}",
    b"[",
    b"\x00",
    b"\xff",
    b"\xfb",
    b"\xfc",
    b"x",
];

#[test]
fn random_bytes_and_random_rows_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x6d79_7371);
    for strategy in [
        Strategy::Redact,
        Strategy::Partial,
        Strategy::Token,
        Strategy::Null,
    ] {
        let mut m = MysqlRowMasker::new(engine(strategy));
        for _ in 0..500 {
            let n = rng.gen_range(0..20);
            let columns: Vec<MysqlColumn> = (0..n)
                .map(|i| MysqlColumn {
                    name: format!("c{i}"),
                    org_name: String::new(),
                    column_type: FUZZ_TYPES[rng.gen_range(0..FUZZ_TYPES.len())],
                    charset: if rng.gen_bool(0.5) {
                        BINARY_CHARSET
                    } else {
                        UTF8MB4
                    },
                    flags: rng.gen(),
                    decimals: rng.gen_range(0..40),
                })
                .collect();
            m.set_columns(&columns);
            // Random bytes: whatever comes back is a row of the columns.
            let len = rng.gen_range(0..=100);
            let garbage: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let garbage = Bytes::from(garbage);
            if let RowOutcome::Rewritten(out) = m.mask_text_row(&garbage) {
                assert!(text_row_parses(&out, n), "{garbage:?}");
            }
            let mut binary = garbage.to_vec();
            if let Some(first) = binary.first_mut() {
                *first = 0;
            }
            let binary = Bytes::from(binary);
            let plans: Vec<Plan> = columns.iter().map(plan_of).collect();
            for row in [&garbage, &binary] {
                if let RowOutcome::Rewritten(out) = m.mask_binary_row(row) {
                    assert!(binary_row_parses(&out, &plans), "{row:?}");
                }
            }
            // Well-formed rows of random values: a rewrite still parses.
            let values: Vec<Option<Vec<u8>>> = plans
                .iter()
                .map(|_| {
                    if rng.gen_bool(0.2) {
                        return None;
                    }
                    let mut v = Vec::new();
                    for _ in 0..rng.gen_range(0..4) {
                        v.extend_from_slice(FUZZ_PIECES[rng.gen_range(0..FUZZ_PIECES.len())]);
                    }
                    Some(v)
                })
                .collect();
            let refs: Vec<Option<&[u8]>> = values.iter().map(Option::as_deref).collect();
            if let RowOutcome::Rewritten(out) = m.mask_text_row(&text_row(&refs)) {
                assert!(text_row_parses(&out, n));
            }
            let encoded: Vec<Option<Vec<u8>>> = values
                .iter()
                .zip(&plans)
                .map(|(v, plan)| {
                    let v = v.as_ref()?;
                    Some(match plan.layout {
                        Layout::Fixed(w) => {
                            let mut raw = rng.gen::<u64>().to_le_bytes()[..w].to_vec();
                            if rng.gen_bool(0.3) {
                                raw = 4111111111111111u64.to_le_bytes()[..w].to_vec();
                            }
                            raw
                        }
                        Layout::Temporal(lengths) => {
                            let l = lengths[rng.gen_range(0..lengths.len())];
                            let mut raw = vec![l];
                            raw.resize(1 + usize::from(l), 1);
                            raw
                        }
                        Layout::Empty => Vec::new(),
                        Layout::LenEnc | Layout::Unknown => lenenc(v),
                    })
                })
                .collect();
            if let RowOutcome::Rewritten(out) = m.mask_binary_row(&binary_row(&encoded)) {
                assert!(binary_row_parses(&out, &plans));
            }
        }
        let _ = m.take_stats();
    }
}

#[test]
fn extended_metadata_is_skipped_by_its_length() {
    // MariaDB's extended type information (MARIADB_CLIENT_EXTENDED_METADATA)
    // sits between the original name and the fixed fields. A 12-byte block
    // (type name "linestring") has the length of the fixed fields' marker,
    // so only knowing it is there keeps the type and charset right.
    let plain = unhex(MARIADB_NAME_COLUMN);
    let fixed_at = plain.len() - 13;
    let mut block = vec![0x00, 10];
    block.extend_from_slice(b"linestring");
    assert_eq!(block.len(), 12);
    let mut extended = plain[..fixed_at].to_vec();
    extended.extend_from_slice(&lenenc(&block));
    extended.extend_from_slice(&plain[fixed_at..]);
    let expected = parse_column_definition(&plain);
    assert!(expected.is_some());
    assert_eq!(parse_column_definition_with(&extended, true), expected);
    assert_ne!(parse_column_definition_with(&extended, false), expected);
    // An empty block (a column with no extended information).
    let mut empty = plain[..fixed_at].to_vec();
    empty.push(0);
    empty.extend_from_slice(&plain[fixed_at..]);
    assert_eq!(parse_column_definition_with(&empty, true), expected);
    // Without the block where one was negotiated: refused, never misread.
    assert_eq!(parse_column_definition_with(&plain, true), None);
}

/// One session-state entry: its type, then its data as a length-encoded
/// string of length-encoded strings.
fn state_entry(kind: u8, strings: &[&[u8]]) -> Vec<u8> {
    let mut data = BytesMut::new();
    for s in strings {
        put_lenenc_str(&mut data, s);
    }
    let mut out = BytesMut::new();
    out.put_u8(kind);
    put_lenenc_str(&mut out, &data);
    out.to_vec()
}

#[test]
fn tracked_session_state_values_are_masked_and_the_layout_kept() {
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    let mut state = state_entry(0, &[b"sql_select_limit", b"4111111111111111"]);
    state.extend(state_entry(1, &[b"app"]));
    state.extend(state_entry(2, &[b"1"]));
    let masked = m.mask_session_state(&state).expect("the card is masked");
    assert!(!masked.windows(16).any(|w| w == b"4111111111111111"));
    // A number alone is masked as a number (the variable stays numeric).
    let mut expected = state_entry(0, &[b"sql_select_limit", b"0"]);
    expected.extend(state_entry(1, &[b"app"]));
    expected.extend(state_entry(2, &[b"1"]));
    assert_eq!(masked, expected);
    // Nothing to mask: forwarded as it came.
    let plain = state_entry(0, &[b"autocommit", b"ON"]);
    assert_eq!(m.mask_session_state(&plain), None);
    // State that cannot be read is dropped, never passed unscanned.
    assert_eq!(m.mask_session_state(&[0, 200, 1]), Some(Vec::new()));
}

#[test]
fn geometry_coordinates_are_masked_in_both_byte_orders() {
    let card = 4111111111111111f64;
    let mut m = MysqlRowMasker::new(engine(Strategy::Redact));
    m.set_columns(&[
        col("g", GEOMETRY, 63, 0),
        col("h", GEOMETRY, 63, 0),
        col("bad", GEOMETRY, 63, 0),
    ]);
    // SRID 0, POINT(card 2) little-endian; LINESTRING big-endian in a
    // GEOMETRYCOLLECTION.
    let mut point = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
    point.extend_from_slice(&card.to_le_bytes());
    point.extend_from_slice(&2f64.to_le_bytes());
    let mut collection = vec![0, 0, 0, 0, 1, 7, 0, 0, 0, 1, 0, 0, 0];
    collection.extend_from_slice(&[0, 0, 0, 0, 2, 0, 0, 0, 2]);
    for x in [1.0, 2.0, card, 4.0] {
        collection.extend_from_slice(&f64::to_be_bytes(x));
    }
    let bad = vec![0, 0, 0, 0, 1, 1, 0, 0, 0, 1];
    let RowOutcome::Rewritten(out) =
        m.mask_text_row(&text_row(&[Some(&point), Some(&collection), Some(&bad)]))
    else {
        panic!("nothing masked")
    };
    let values = text_values_of(&out);
    let p = values[0].as_ref().unwrap();
    assert_eq!(p.len(), 25);
    assert_ne!(f64::from_le_bytes(p[9..17].try_into().unwrap()), card);
    assert_eq!(f64::from_le_bytes(p[17..25].try_into().unwrap()), 2.0);
    let c = values[1].as_ref().unwrap();
    assert_ne!(f64::from_be_bytes(c[38..46].try_into().unwrap()), card);
    assert_eq!(f64::from_be_bytes(c[22..30].try_into().unwrap()), 1.0);
    assert_eq!(values[2], None, "WKB that does not parse fails closed");
    // A geometry holding no one's number passes unchanged.
    let mut plain = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
    plain.extend_from_slice(&1.5f64.to_le_bytes());
    plain.extend_from_slice(&2f64.to_le_bytes());
    m.set_columns(&[col("g", GEOMETRY, 63, 0)]);
    assert_eq!(
        m.mask_text_row(&text_row(&[Some(&plain)])),
        RowOutcome::Unchanged
    );
}

/// The values of a text-protocol row payload, raw.
fn text_values_of(row: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < row.len() {
        if row[at] == NULL_VALUE {
            out.push(None);
            at += 1;
            continue;
        }
        let range = lenenc_str(row, &mut at).expect("a length-encoded value");
        out.push(Some(row[range].to_vec()));
    }
    out
}
