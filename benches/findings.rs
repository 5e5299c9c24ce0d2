//! Every finding of the scanner, for telling two builds apart: four
//! detector sets (standard, all, phone alone, card alone) over the three
//! masking corpora and 240,000 generated strings of digits, separators,
//! context words and prefixes, and 40,000 values hidden in base64 or hex
//! among other runs, one line per cell that has findings. A
//! change meant to make the scanner faster and nothing else leaves this
//! output byte for byte the same:
//!
//!     cargo bench --bench findings > before.txt     # on the old build
//!     cargo bench --bench findings > after.txt      # on the new one
//!     cmp before.txt after.txt

use std::io::Write;

use airlock::mask::{Detectors, Kind, Scanner};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Detector sets whose findings are written: the defaults, everything,
/// and two detectors alone (the costliest and the most checked).
fn detector_sets() -> [(&'static str, Detectors); 4] {
    [
        ("standard", Detectors::standard()),
        ("all", Detectors::all()),
        ("phone", Detectors::none().with(Kind::Phone)),
        ("card", Detectors::none().with(Kind::Card)),
    ]
}

/// Every text of the masking corpora: cells' `text`, and the `values` of
/// the column corpus.
fn corpus_cells() -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cells = Vec::new();
    for name in [
        "masking.jsonl",
        "masking-shapes.jsonl",
        "masking-columns.jsonl",
    ] {
        let path = format!("{root}/protocol-tests/corpus/{name}");
        let data = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        for line in data.lines().filter(|l| !l.trim().is_empty()) {
            let cell: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{path}: {e}"));
            let values = cell["values"].as_array().into_iter().flatten();
            cells.extend(
                std::iter::once(&cell["text"])
                    .chain(values)
                    .filter_map(|v| v.as_str().map(str::to_owned)),
            );
        }
    }
    cells
}

/// Strings of digits, separators and the words numbers are read next to,
/// and digit groups in the shapes numbers take (with a prefix or a tail
/// now and then): what the numeric readings decide on.
fn generated_cells() -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let alphabet: &[u8] =
        b"0123456789012345678901234567890123456789 -./()+:#_,;xXeEtTlLaAbBsSnN|*}{$=@";
    let words = [
        "tel ", "phone: ", "ssn ", "cpf ", "version ", "sin ", "id no ", "pesel ", "call ", "AB ",
        "DE", "GB", "ES", "+", "00", "(0", "ORD-", "#", "x", " ext. ",
    ];
    let mut cells = Vec::new();
    for _ in 0..120_000 {
        let len = rng.gen_range(1..=48);
        let mut cell = String::new();
        while cell.len() < len {
            if rng.gen_range(0..8) == 0 {
                cell.push_str(words[rng.gen_range(0..words.len())]);
            } else {
                cell.push(char::from(alphabet[rng.gen_range(0..alphabet.len())]));
            }
        }
        cells.push(cell);
    }
    for _ in 0..120_000 {
        let sep = [" ", "-", ".", "/", " ", ""][rng.gen_range(0..6)];
        let mut cell = String::new();
        if rng.gen_range(0..4) == 0 {
            cell.push_str(["+", "(", "00", "+(", "tel ", "x", "AB "][rng.gen_range(0..7)]);
        }
        for g in 0..rng.gen_range(1..=7) {
            if g > 0 {
                cell.push_str(sep);
            }
            for _ in 0..rng.gen_range(1..=8) {
                cell.push(char::from(b'0' + rng.gen_range(0..10u8)));
            }
        }
        if rng.gen_range(0..4) == 0 {
            cell.push_str([":12", ".00", "/12/27", " C", "X", "-L", " kg"][rng.gen_range(0..7)]);
        }
        cells.push(cell);
    }
    cells
}

/// Values hidden in base64 (both alphabets, padded or not) or hex, and
/// the runs they are mistaken for: random tokens, keys of digit groups
/// joined by `-`, paths and `key=value` pairs, with text around them.
fn encoded_cells() -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    let mut rng = StdRng::seed_from_u64(0x05ee_db64);
    let values = [
        "jane.doe@example.com",
        "+44 20 7946 0958",
        "4111 1111 1111 1111",
        "536-22-8714",
        "call 030 1234567 now",
        "192.168.10.44",
        "ssn 078051120",
        "AKIAIOSFODNN7EXAMPLE",
        "nothing here at all",
        "order 2024-000123",
    ];
    let around = ["", "x=", "token ", "/", "-", "+", "a-", "id:", "("];
    let after = ["", "=", "==", " end", "-", "/x", ".", ")"];
    let token = |rng: &mut StdRng, alphabet: &[u8], lens: std::ops::Range<usize>| -> String {
        let len = rng.gen_range(lens);
        (0..len)
            .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
            .collect()
    };
    let mut cells = Vec::new();
    for _ in 0..40_000 {
        let mut cell = String::from(around[rng.gen_range(0..around.len())]);
        match rng.gen_range(0..7) {
            0..=3 => {
                let mut plain = values[rng.gen_range(0..values.len())].to_owned();
                if rng.gen_range(0..2) == 0 {
                    plain.push_str(&token(&mut rng, b"abc xyz 0123456789", 0..12));
                }
                let bytes = plain.as_bytes();
                cell.push_str(&match rng.gen_range(0..6) {
                    0 => STANDARD.encode(bytes),
                    1 => STANDARD_NO_PAD.encode(bytes),
                    2 => URL_SAFE.encode(bytes),
                    3 => URL_SAFE_NO_PAD.encode(bytes),
                    4 => bytes.iter().map(|b| format!("{b:02x}")).collect(),
                    _ => bytes.iter().map(|b| format!("{b:02X}")).collect(),
                });
            }
            4 => {
                let groups = rng.gen_range(1..=10);
                let keys: Vec<String> = (0..groups)
                    .map(|_| token(&mut rng, b"0123456789", 11..12))
                    .collect();
                cell.push_str(&keys.join("-"));
            }
            5 => cell.push_str(&token(
                &mut rng,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_",
                8..64,
            )),
            _ => cell.push_str(&token(&mut rng, b"0123456789-_+/", 8..64)),
        }
        cell.push_str(after[rng.gen_range(0..after.len())]);
        cells.push(cell);
    }
    cells
}

fn main() {
    let mut cells = corpus_cells();
    cells.extend(generated_cells());
    cells.extend(encoded_cells());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut found = Vec::new();
    for (set, detectors) in detector_sets() {
        let scanner = Scanner::new(&detectors);
        for (i, cell) in cells.iter().enumerate() {
            scanner.scan(cell.as_bytes(), &mut found);
            if found.is_empty() {
                continue;
            }
            write!(out, "{set} {i}").expect("stdout");
            for f in &found {
                write!(out, " {}:{}-{}", f.kind, f.start, f.end).expect("stdout");
            }
            writeln!(out).expect("stdout");
        }
    }
}
