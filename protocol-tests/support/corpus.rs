//! The labelled masking corpus (`corpus/masking.jsonl`): cells of text or
//! JSON with the byte ranges of the sensitive values in them.

use std::sync::OnceLock;

use airlock::mask::{Detectors, Finding, Scanner};
use serde::Deserialize;

pub const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/protocol-tests/corpus/masking.jsonl"
);

#[derive(Deserialize)]
pub struct Cell {
    pub id: u32,
    pub shape: String,
    pub text: String,
    pub labels: Vec<Label>,
}

#[derive(Deserialize)]
pub struct Label {
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

impl Cell {
    pub fn is_json(&self) -> bool {
        self.shape == "json"
    }

    /// The labelled value as stored, and for JSON also as a client decodes
    /// the string it sits in (escapes resolved).
    pub fn forms(&self, label: &Label) -> Vec<String> {
        let raw = &self.text[label.start..label.end];
        let mut forms = vec![raw.to_string()];
        if self.is_json() {
            if let Ok(decoded) = serde_json::from_str::<String>(&format!("\"{raw}\"")) {
                if decoded != raw {
                    forms.push(decoded);
                }
            }
        }
        forms
    }

    /// Whether the detectors find anything overlapping `label` in the
    /// stored text: free text with `scan`, a JSON document with `scan_json`.
    pub fn detected(&self, label: &Label) -> bool {
        self.findings()
            .iter()
            .any(|f| f.start < label.end && label.start < f.end)
    }

    /// Whether the detectors find anything in a cell without labels: a
    /// false positive (mask_eval measures those), which a gateway masks as
    /// it should.
    pub fn falsely_detected(&self) -> bool {
        self.labels.is_empty() && !self.findings().is_empty()
    }

    fn findings(&self) -> Vec<Finding> {
        static SCANNER: OnceLock<Scanner> = OnceLock::new();
        let scanner = SCANNER.get_or_init(|| Scanner::new(&Detectors::all()));
        let mut found: Vec<Finding> = Vec::new();
        let bytes = self.text.as_bytes();
        if !self.is_json() || scanner.scan_json(bytes, &mut found).is_err() {
            found.clear();
            scanner.scan(bytes, &mut found);
        }
        found
    }
}

pub fn load_corpus() -> Vec<Cell> {
    let data = std::fs::read_to_string(CORPUS).expect("read the corpus");
    data.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a corpus cell"))
        .collect()
}

/// The SQL of the classification corpus's cases for `dialect`
/// (`"postgres"` or `"mysql"`), in file order.
pub fn classification_sql(dialect: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Corpus {
        case: Vec<toml::Value>,
    }
    let written = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/protocol-tests/corpus/classification.toml"
    ))
    .expect("the classification corpus");
    let corpus: Corpus = toml::from_str(&written).expect("the corpus is TOML");
    corpus
        .case
        .iter()
        .filter(|c| c["dialect"].as_str() == Some(dialect))
        .filter_map(|c| c["sql"].as_str().map(str::to_string))
        .collect()
}

/// What a fresh gateway knows of masked columns when it decides
/// `classification` in a database without the statement's tables (only
/// the system catalogs, which hold nothing sensitive): a statement that
/// transforms a column of another table is decided as if the column held
/// sensitive values (the sample the gateway takes first finds no table to
/// read), any other as if nothing were known.
pub fn columns_known_to_a_fresh_gateway(
    classification: &airlock::sql::Classification,
) -> airlock::policy::MaskedColumns<'static> {
    static NOTHING: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    let catalog = |table: &str| {
        let t = table.to_ascii_lowercase();
        [
            "\"pg_",
            "`pg_",
            "\"information_schema\".",
            "`information_schema`.",
            "`mysql`.",
            "`performance_schema`.",
        ]
        .iter()
        .any(|p| t.starts_with(p))
    };
    let unsampled = classification
        .statements
        .iter()
        .any(|s| !s.transformed.is_empty() && s.sample_from.iter().any(|t| !catalog(t)));
    if unsampled {
        airlock::policy::MaskedColumns::Unknown
    } else {
        airlock::policy::MaskedColumns::Learned(NOTHING.get_or_init(Default::default))
    }
}
