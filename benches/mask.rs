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
//! printed: the prose, the table data and the digit groups are meant to
//! have none with the standard detectors, so their figures are the cost of looking.

use std::sync::Arc;

use airlock::mask::mysql::types as mysql_types;
use airlock::mask::{
    Column, Detectors, Finding, Kind, MaskSettings, Masker, MysqlColumn, MysqlRowMasker, RowMasker,
    RowOutcome, Scanner, Strategy,
};
use bytes::{BufMut, Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// How much text each generated input holds, cut into cells.
const INPUT_BYTES: usize = 64 * 1024;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/protocol-tests/corpus/masking.jsonl"
);

/// xorshift64*: enough randomness for test data, and the same every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|i| {
                let d = if i == 0 {
                    1 + self.below(9)
                } else {
                    self.below(10)
                };
                char::from(b'0' + d as u8)
            })
            .collect()
    }
}

/// Words of ten languages, four of them outside Latin script; no digits,
/// no `@`.
const LANGUAGES: &[&[&str]] = &[
    &[
        "the",
        "shipment",
        "arrived",
        "late",
        "because",
        "of",
        "weather",
        "customer",
        "asked",
        "for",
        "a",
        "refund",
        "and",
        "we",
        "agreed",
        "please",
        "review",
        "notes",
        "before",
        "closing",
        "ticket",
        "warehouse",
        "confirmed",
        "delivery",
        "window",
        "next",
        "week",
    ],
    &[
        "die",
        "Lieferung",
        "kam",
        "verspätet",
        "weil",
        "Straße",
        "gesperrt",
        "war",
        "Kunde",
        "möchte",
        "Rückerstattung",
        "über",
        "Bestellung",
        "größer",
        "als",
        "erwartet",
        "bitte",
        "prüfen",
        "Lager",
        "bestätigt",
        "nächste",
        "Woche",
        "schön",
        "Grüße",
    ],
    &[
        "la",
        "commande",
        "été",
        "expédiée",
        "après",
        "délai",
        "prévu",
        "client",
        "très",
        "mécontent",
        "remboursement",
        "demandé",
        "hôtel",
        "réservé",
        "où",
        "élève",
        "garçon",
        "déjà",
        "payé",
        "reçu",
        "façon",
        "à",
        "vérifier",
        "entrepôt",
    ],
    &[
        "el",
        "pedido",
        "llegó",
        "tarde",
        "por",
        "mañana",
        "cliente",
        "pidió",
        "devolución",
        "también",
        "según",
        "almacén",
        "envío",
        "número",
        "señor",
        "año",
        "próxima",
        "semana",
        "gracias",
        "atención",
        "revisión",
        "pendiente",
    ],
    &[
        "zamówienie",
        "zostało",
        "wysłane",
        "późno",
        "klient",
        "prosi",
        "zwrot",
        "pieniędzy",
        "dostawa",
        "jutro",
        "magazyn",
        "potwierdził",
        "uwagi",
        "proszę",
        "sprawdzić",
        "wiadomość",
        "żółty",
        "łódź",
        "święto",
        "gęś",
    ],
    &[
        "beställningen",
        "skickades",
        "försenad",
        "kunden",
        "vill",
        "återbetalning",
        "lager",
        "bekräftat",
        "leverans",
        "nästa",
        "vecka",
        "tack",
        "för",
        "hjälpen",
        "överens",
        "ärende",
        "stängt",
        "må",
        "väl",
    ],
    &[
        "заказ",
        "отправлен",
        "с",
        "опозданием",
        "клиент",
        "просит",
        "возврат",
        "склад",
        "подтвердил",
        "доставку",
        "на",
        "следующей",
        "неделе",
        "спасибо",
        "за",
        "терпение",
        "примечание",
        "проверить",
    ],
    &[
        "η",
        "παραγγελία",
        "στάλθηκε",
        "με",
        "καθυστέρηση",
        "ο",
        "πελάτης",
        "ζητά",
        "επιστροφή",
        "χρημάτων",
        "αποθήκη",
        "επιβεβαίωσε",
        "παράδοση",
        "την",
        "επόμενη",
        "εβδομάδα",
        "ευχαριστούμε",
    ],
    &[
        "注文は",
        "遅れて",
        "発送されました",
        "お客様が",
        "返金を",
        "希望しています",
        "倉庫で",
        "確認済み",
        "来週",
        "配送予定",
        "よろしく",
        "お願いします",
    ],
    &[
        "il",
        "pacco",
        "è",
        "arrivato",
        "in",
        "ritardo",
        "cliente",
        "chiede",
        "rimborso",
        "magazzino",
        "conferma",
        "consegna",
        "settimana",
        "prossima",
        "perché",
        "città",
        "più",
        "già",
        "così",
    ],
];

/// Prose cells of about 200 bytes (120 to 280), in one language each.
fn prose_cells(rng: &mut Rng) -> Vec<String> {
    let mut cells = Vec::new();
    let mut total = 0;
    while total < INPUT_BYTES {
        let words = LANGUAGES[rng.below(LANGUAGES.len())];
        let target = 120 + rng.below(161);
        let mut cell = String::new();
        while cell.len() < target {
            let sentence_len = 5 + rng.below(10);
            for i in 0..sentence_len {
                let word = rng.pick(words);
                if i == 0 && !cell.is_empty() {
                    cell.push(' ');
                }
                if i > 0 {
                    cell.push_str(match rng.below(12) {
                        0 => ", ",
                        1 if i + 2 < sentence_len => ": ",
                        _ => " ",
                    });
                }
                let mut chars = word.chars();
                if let (0, Some(first)) = (i, chars.next()) {
                    cell.extend(first.to_uppercase());
                    cell.push_str(chars.as_str());
                } else {
                    cell.push_str(word);
                }
            }
            cell.push_str(rng.pick(&[".", ".", ".", "!", "?", "…"]));
        }
        total += cell.len();
        cells.push(cell);
    }
    cells
}

/// People as a CRM's notes or a ticket log mention them, in several
/// spellings: full names, titles, initials, particles, all capitals.
const PEOPLE: &[&str] = &[
    "Maria García",
    "Hans Müller",
    "Dr. Smith",
    "Łukasz Nowak",
    "Jean-Luc Martin",
    "Anna Kowalska",
    "J. Brown",
    "Herr Schneider",
    "Mme Dubois",
    "Giulia Rossi",
    "Jan van der Berg",
    "Mary O'Brien",
    "JOHN WILLIAMS",
    "Sig. Bianchi",
    "Fernanda Oliveira",
    "Yuki Tanaka",
    "Wei Zhang",
    "Ahmed Khan",
];

/// Prose cells like [`prose_cells`] with a person named every eight words
/// or so: the cost of finding names where there are many.
fn names_cells(rng: &mut Rng) -> Vec<String> {
    let mut cells = Vec::new();
    let mut total = 0;
    while total < INPUT_BYTES {
        // The Latin-script languages: names are written in them.
        let words = LANGUAGES[rng.below(LANGUAGES.len().min(6))];
        let target = 120 + rng.below(161);
        let mut cell = String::new();
        while cell.len() < target {
            if !cell.is_empty() {
                cell.push(' ');
            }
            if rng.below(8) == 0 {
                cell.push_str(rng.pick(PEOPLE));
            } else {
                cell.push_str(rng.pick(words));
            }
        }
        cell.push('.');
        total += cell.len();
        cells.push(cell);
    }
    cells
}

/// Cells of order and ledger data as a notes or log column holds it: ids,
/// amounts, dates, timestamps, order and invoice numbers, versions,
/// durations, and digit groups shaped like phone numbers that no region
/// issues. Nothing the standard detectors should report. (With all of
/// them, a `ref` that is a date and four digits passes the Swedish
/// personnummer check one time in ten: opt-in detectors cost precision.)
fn table_cells(rng: &mut Rng) -> Vec<String> {
    let mut cells = Vec::new();
    let mut total = 0;
    while total < INPUT_BYTES {
        let target = 150 + rng.below(101);
        let mut fields: Vec<String> = Vec::new();
        let mut len = 0;
        while len < target {
            let year = 2019 + rng.below(8);
            let (month, day) = (1 + rng.below(12), 1 + rng.below(28));
            let (h, m, s) = (rng.below(24), rng.below(60), rng.below(60));
            let field = match rng.below(16) {
                0 => format!("order ORD-{year}-{}", rng.digits(6)),
                1 => format!("customer #{}", rng.digits(6)),
                2 => format!("placed {year}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}"),
                3 => format!(
                    "updated {year}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{}Z",
                    rng.digits(3)
                ),
                4 => format!(
                    "total {},{}.{:02} EUR",
                    1 + rng.below(99),
                    rng.digits(3),
                    rng.below(100)
                ),
                5 => format!(
                    "qty {} x {}.{:02}",
                    1 + rng.below(20),
                    rng.below(500),
                    rng.below(100)
                ),
                6 => format!("sku SKU-{}", rng.digits(5)),
                7 => format!("invoice INV/{year}/{}", rng.digits(6)),
                8 => format!("batch {}", rng.digits(8)),
                9 => format!("due {day:02}.{month:02}.{year}"),
                10 => format!("v{}.{}.{}", rng.below(5), rng.below(30), rng.below(200)),
                11 => format!("took {:02}:{m:02}:{s:02}", rng.below(3)),
                12 => format!("discount {}.{}%", rng.below(40), rng.below(10)),
                13 => format!("weight {}.{} kg", rng.below(80), rng.digits(3)),
                // Phone-shaped but never issued: +999 is no country code,
                // and UK numbers after +44 do not start with 0.
                14 => match rng.below(2) {
                    0 => format!("+999 {} {}", rng.digits(3), rng.digits(4)),
                    _ => format!("+44 0{} {}", rng.digits(3), rng.digits(6)),
                },
                _ => format!("ref {year}{month:02}{day:02}-{}", rng.digits(4)),
            };
            len += field.len() + 2;
            fields.push(field);
        }
        let cell = fields.join(rng.pick(&[", ", "; ", " | "]));
        total += cell.len();
        cells.push(cell);
    }
    cells
}

/// Keys of digit groups joined by `-`, as sysbench fills its `c` (ten
/// groups) and `pad` (five groups) columns: the rows of the MySQL
/// benchmark, and of any table of generated reference strings.
fn digit_group_cells(rng: &mut Rng) -> Vec<String> {
    let mut cells = Vec::new();
    let mut total = 0;
    while total < INPUT_BYTES {
        let groups = if cells.len() % 2 == 0 { 10 } else { 5 };
        let cell = (0..groups)
            .map(|_| rng.digits(11))
            .collect::<Vec<_>>()
            .join("-");
        total += cell.len();
        cells.push(cell);
    }
    cells
}

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

fn bytes_of(cells: &[String]) -> u64 {
    cells.iter().map(|c| c.len() as u64).sum()
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

/// A generated input: its name and its cells.
type Input = (&'static str, Vec<String>);

/// The generated inputs, the same every run.
fn inputs() -> [Input; 4] {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    [
        ("prose", prose_cells(&mut rng)),
        ("table_data", table_cells(&mut rng)),
        ("names", names_cells(&mut rng)),
        ("digit_groups", digit_group_cells(&mut rng)),
    ]
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
