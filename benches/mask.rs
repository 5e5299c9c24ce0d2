//! Masking throughput: the scanner on cells with nothing to find, on
//! digit-heavy table data, on prose naming many people, on keys of digit
//! groups (sysbench's `c` and `pad`), and on the PII-dense evaluation
//! corpus; the same
//! inputs with one detector at a time, to show where a scan's time goes;
//! the row masker on a typical ten-column DataRow, and the MySQL row
//! masker on the same row in the text protocol.
//!
//!     cargo bench --bench mask
//!     cargo bench --bench mask -- by_detector      # one group only
//!
//! The generated inputs are deterministic (a fixed seed), so runs compare.
//! Before measuring, the number of findings in each generated input is
//! printed: the prose and the digit groups are meant to have none with
//! the standard detectors, and the table data only its few `ref`s that
//! pass the personnummer check, so their figures are the cost of looking.

use std::sync::Arc;

use airlock::mask::mysql::types as mysql_types;
use airlock::mask::{
    Column, Detectors, Finding, Kind, MaskSettings, Masker, MysqlColumn, MysqlRowMasker, RowMasker,
    RowOutcome, Scanner, Strategy,
};
use bytes::{BufMut, Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

#[path = "support/inputs.rs"]
mod inputs;

use inputs::{bytes_of, inputs};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/protocol-tests/corpus/masking.jsonl"
);

/// The evaluation corpus: JSON cells as the scanner reads JSON, the others
/// as text.
fn corpus_cells() -> Vec<(bool, String)> {
    let data = std::fs::read_to_string(CORPUS).unwrap_or_else(|e| panic!("{CORPUS}: {e}"));
    data.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cell: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{CORPUS}: {e}"));
            let text = cell["text"].as_str().unwrap_or_default().to_owned();
            (cell["shape"] == "json", text)
        })
        .collect()
}

fn count_findings(scanner: &Scanner, cells: &[String]) -> (usize, Vec<String>) {
    let mut found = Vec::new();
    let mut total = 0;
    let mut examples = Vec::new();
    for cell in cells {
        scanner.scan(cell.as_bytes(), &mut found);
        total += found.len();
        for f in found.iter().take(3usize.saturating_sub(examples.len())) {
            let value = String::from_utf8_lossy(&cell.as_bytes()[f.start..f.end]);
            examples.push(format!("{}: {value:?}", f.kind));
        }
    }
    (total, examples)
}

fn scan_cells(scanner: &Scanner, cells: &[String], found: &mut Vec<Finding>) -> usize {
    let mut n = 0;
    for cell in cells {
        scanner.scan(black_box(cell.as_bytes()), found);
        n += found.len();
    }
    n
}

/// A named set of detectors to measure.
type DetectorSet = (&'static str, fn() -> Detectors);

/// `standard_with_person` adds the opt-in person detector to the standard
/// set: the same binary measures the detector's cost.
const DETECTOR_SETS: &[DetectorSet] = &[
    ("standard", Detectors::standard),
    ("standard_with_person", standard_with_person),
    ("all", Detectors::all),
];

fn standard_with_person() -> Detectors {
    Detectors::standard().with(Kind::Person)
}

fn scan(c: &mut Criterion) {
    let inputs = inputs();
    for (input, cells) in &inputs {
        for (set, detectors) in DETECTOR_SETS {
            let (n, examples) = count_findings(&Scanner::new(&detectors()), cells);
            eprintln!(
                "{input}: {} cells, {} bytes; {n} findings with {set} detectors {examples:?}",
                cells.len(),
                bytes_of(cells)
            );
        }
    }
    for (input, cells) in &inputs {
        let mut group = c.benchmark_group(format!("scan_{input}"));
        group.throughput(Throughput::Bytes(bytes_of(cells)));
        for (set, detectors) in DETECTOR_SETS {
            let scanner = Scanner::new(&detectors());
            let mut found = Vec::new();
            group.bench_function(*set, |b| b.iter(|| scan_cells(&scanner, cells, &mut found)));
        }
        group.finish();
    }
}

fn scan_corpus(c: &mut Criterion) {
    let corpus = corpus_cells();
    let mut group = c.benchmark_group("scan_corpus");
    // One pass over the corpus takes seconds: ten samples are enough.
    group.sample_size(10);
    group.throughput(Throughput::Bytes(
        corpus.iter().map(|(_, t)| t.len() as u64).sum(),
    ));
    for (set, detectors) in DETECTOR_SETS {
        let scanner = Scanner::new(&detectors());
        let mut found = Vec::new();
        group.bench_function(*set, |b| {
            b.iter(|| {
                let mut n = 0;
                for (json, text) in &corpus {
                    let text = black_box(text.as_bytes());
                    if *json {
                        // The corpus's JSON cells are valid documents.
                        let _ = scanner.scan_json(text, &mut found);
                    } else {
                        scanner.scan(text, &mut found);
                    }
                    n += found.len();
                }
                n
            })
        });
    }
    group.finish();
}

/// Where the time of a scan goes: one detector at a time. The literal
/// marker pass runs whatever the detectors, so `email` is its cost alone;
/// `ipv6` adds the `:` pass; each numeric kind adds the digit pass with
/// only that kind's validators.
fn scan_by_detector(c: &mut Criterion) {
    let subsets: Vec<(&str, Detectors)> = [
        Kind::Email,
        Kind::Ipv6,
        Kind::Ipv4,
        Kind::Card,
        Kind::Iban,
        Kind::UsSsn,
        Kind::Phone,
        Kind::Person,
    ]
    .into_iter()
    .map(|k| (k.name(), Detectors::none().with(k)))
    .chain([(
        "standard_without_phone",
        Detectors::standard().without(Kind::Phone),
    )])
    .collect();
    for (input, cells) in &inputs() {
        let mut group = c.benchmark_group(format!("scan_{input}_by_detector"));
        group.throughput(Throughput::Bytes(bytes_of(cells)));
        for (name, detectors) in &subsets {
            let scanner = Scanner::new(detectors);
            let mut found = Vec::new();
            group.bench_function(*name, |b| {
                b.iter(|| scan_cells(&scanner, cells, &mut found))
            });
        }
        group.finish();
    }
}

/// A complete DataRow frame: `D`, length, column count, then each value.
fn data_row(values: &[&str]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_u8(b'D');
    frame.put_u32(0);
    frame.put_u16(values.len() as u16);
    for v in values {
        frame.put_i32(v.len() as i32);
        frame.put_slice(v.as_bytes());
    }
    let len = (frame.len() - 1) as u32;
    frame[1..5].copy_from_slice(&len.to_be_bytes());
    frame.freeze()
}

/// Ten text-format columns of realistic types: int4, int8, text, varchar,
/// numeric, timestamp, uuid, bool, jsonb, varchar.
const COLUMNS: &[(&str, u32)] = &[
    ("id", 23),
    ("account_id", 20),
    ("name", 25),
    ("status", 1043),
    ("amount", 1700),
    ("created_at", 1114),
    ("request_id", 2950),
    ("active", 16),
    ("settings", 3802),
    ("city", 1043),
];

fn row_values(note: &str) -> [&str; 10] {
    [
        "48213",
        "9007199254",
        "Margarethe Oberländer",
        note,
        "1284.50",
        "2026-03-15 14:22:07.123456",
        "3f2b8c1e-9d4a-4e57-b0c6-2a71e8f5d913",
        "t",
        r#"{"plan": "pro", "seats": 12, "trial": false}"#,
        "Zürich",
    ]
}

fn mask_row(c: &mut Criterion) {
    let masker = Arc::new(Masker::new(&MaskSettings {
        detectors: Detectors::standard(),
        default_strategy: Strategy::Redact,
        ..Default::default()
    }));
    let columns: Vec<Column> = COLUMNS
        .iter()
        .map(|(name, type_oid)| Column {
            name: (*name).into(),
            type_oid: *type_oid,
            format: 0,
        })
        .collect();
    let rows = [
        ("no_pii", data_row(&row_values("shipped, awaiting pickup"))),
        (
            "one_email",
            data_row(&row_values("ask margarethe.o@example.de")),
        ),
    ];
    let mut group = c.benchmark_group("mask_row");
    for (name, row) in &rows {
        let mut rows_masker = RowMasker::new(masker.clone());
        rows_masker.set_columns(&columns);
        let rewritten = matches!(rows_masker.mask_row(row), RowOutcome::Rewritten(_));
        eprintln!(
            "mask_row {name}: {} bytes, rewritten: {rewritten}",
            row.len()
        );
        group.throughput(Throughput::Elements(1));
        group.bench_function(*name, |b| b.iter(|| rows_masker.mask_row(black_box(row))));
    }
    // The rows above repeat: from the second on, every value is recalled
    // rather than scanned (as a result's repeated values are). Here each
    // row's text values are its own, as ids, names and timestamps are.
    let distinct: Vec<Bytes> = (0..4096)
        .map(|i| {
            let name = format!("Margarethe Oberländer {i}");
            let note = format!("shipped, awaiting pickup {i}");
            let created = format!("2026-03-15 14:{:02}:{:02}.{i:06}", i / 60 % 60, i % 60);
            let request = format!("3f2b8c1e-9d4a-4e57-b0c6-{i:012x}");
            let mut values = row_values(&note);
            values[2] = &name;
            values[5] = &created;
            values[6] = &request;
            data_row(&values)
        })
        .collect();
    let mut rows_masker = RowMasker::new(masker.clone());
    rows_masker.set_columns(&columns);
    let mut next = 0;
    group.bench_function("no_pii_distinct", |b| {
        b.iter(|| {
            next = (next + 1) % distinct.len();
            rows_masker.mask_row(black_box(&distinct[next]))
        })
    });
    group.finish();
}

/// A MySQL text-protocol row payload: each value a length-encoded string
/// (all of these are shorter than 251 bytes: a one-byte length).
fn mysql_text_row(values: &[&str]) -> Bytes {
    let mut row = BytesMut::new();
    for v in values {
        row.put_u8(v.len() as u8);
        row.put_slice(v.as_bytes());
    }
    row.freeze()
}

/// The ten columns of [`COLUMNS`] as MySQL reports them: INT, BIGINT,
/// VARCHAR, VARCHAR, DECIMAL, DATETIME, CHAR(36), TINYINT(1), JSON,
/// VARCHAR (utf8mb4, or `binary` for numbers, dates and JSON).
const MYSQL_COLUMNS: &[(&str, u8, u16)] = &[
    ("id", mysql_types::LONG, 63),
    ("account_id", mysql_types::LONGLONG, 63),
    ("name", mysql_types::VAR_STRING, 45),
    ("status", mysql_types::VAR_STRING, 45),
    ("amount", mysql_types::NEWDECIMAL, 63),
    ("created_at", mysql_types::DATETIME, 63),
    ("request_id", mysql_types::STRING, 45),
    ("active", mysql_types::TINY, 63),
    ("settings", mysql_types::JSON, 63),
    ("city", mysql_types::VAR_STRING, 45),
];

fn mask_mysql_text_row(c: &mut Criterion) {
    let masker = Arc::new(Masker::new(&MaskSettings {
        detectors: Detectors::standard(),
        default_strategy: Strategy::Redact,
        ..Default::default()
    }));
    let columns: Vec<MysqlColumn> = MYSQL_COLUMNS
        .iter()
        .map(|(name, column_type, charset)| MysqlColumn {
            name: (*name).into(),
            org_name: (*name).into(),
            column_type: *column_type,
            charset: *charset,
            flags: 0,
            decimals: 0,
        })
        .collect();
    let mysql_values = |note| {
        let mut values = row_values(note);
        values[7] = "1";
        values
    };
    let rows = [
        (
            "no_pii",
            mysql_text_row(&mysql_values("shipped, awaiting pickup")),
        ),
        (
            "one_email",
            mysql_text_row(&mysql_values("ask margarethe.o@example.de")),
        ),
    ];
    let mut group = c.benchmark_group("mask_mysql_text_row");
    for (name, row) in &rows {
        let mut rows_masker = MysqlRowMasker::new(masker.clone());
        rows_masker.set_columns(&columns);
        let rewritten = matches!(rows_masker.mask_text_row(row), RowOutcome::Rewritten(_));
        eprintln!(
            "mask_mysql_text_row {name}: {} bytes, rewritten: {rewritten}",
            row.len()
        );
        group.throughput(Throughput::Elements(1));
        group.bench_function(*name, |b| {
            b.iter(|| rows_masker.mask_text_row(black_box(row)))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    scan,
    scan_corpus,
    scan_by_detector,
    mask_row,
    mask_mysql_text_row
);
criterion_main!(benches);
