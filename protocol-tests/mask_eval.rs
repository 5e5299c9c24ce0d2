//! Precision and recall of the masking detectors on a labelled corpus.
//!
//! `corpus/masking.jsonl` holds 14,000 cells written by
//! `scripts/mask-corpus/generate.py` (how each value is made and checked is
//! described there): bare values, sentences with one to three values, and
//! JSON documents, in thirteen locales (person names also romanised from
//! Japanese, Chinese, Urdu and Turkish), plus hard-negative cells (hashes,
//! UUIDs, ISBNs, Luhn-failing integers, placeholder secrets, ...) on which
//! nothing may be found. Every cell goes through a [`Scanner`] with all
//! detectors on: free text and bare values through `scan`, JSON documents
//! through `scan_json`.
//!
//! Matching is by overlap: a finding is a true positive when it overlaps a
//! label of its own kind, and a label is recalled when a finding of its kind
//! overlaps it. The gates:
//! * precision and recall at least 0.99 for every kind, except phone: phone
//!   numbers have no checksum and the corpus includes national formats a
//!   reader only knows by their shape, so phone needs precision 0.90 and its
//!   recall is reported;
//! * no finding at all on a hard-negative cell;
//! * at least 50 labels of every kind (30 for json_secret, which only
//!   occurs in JSON): fewer is a corpus defect, since a 0.99 gate over a
//!   handful of values says nothing.
//!
//! The report (per-kind table, confusions, examples, per-shape and
//! per-locale summaries) is printed to stdout, visible with
//! `cargo test --test mask_eval -- --nocapture`, and is repeated in the
//! failure message when a gate is missed. Examples are shown per kind: false
//! positives (FP), misses (FN) and values found with other bounds (~);
//! `MASK_EVAL_EXAMPLES=n` changes how many of each (5).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};

use airlock::mask::{Detectors, Finding, MaskSettings, Masked, Masker, Scanner, Scratch, Tally};
use serde::Deserialize;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/protocol-tests/corpus/masking.jsonl"
);

/// Shapes the main corpus does not draw, by family, with hard negatives
/// of the same shapes: `scripts/mask-corpus/shapes.py`.
const SHAPES_CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/protocol-tests/corpus/masking-shapes.jsonl"
);

/// Result columns of national phone numbers and of look-alikes, from the
/// same script.
const COLUMNS_CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/protocol-tests/corpus/masking-columns.jsonl"
);

/// Every kind the shapes corpus labels.
const SHAPES_KINDS: &[&str] = &["card", "iban", "us_ssn", "email", "password_hash", "phone"];

/// Every kind the corpus labels; each must have enough labels.
const CORPUS_KINDS: &[&str] = &[
    "email",
    "card",
    "iban",
    "phone",
    "ipv4",
    "ipv6",
    "us_ssn",
    "uk_nino",
    "de_tax_id",
    "fr_nir",
    "es_dni",
    "es_nie",
    "it_fiscal_code",
    "nl_bsn",
    "pl_pesel",
    "br_cpf",
    "in_aadhaar",
    "ca_sin",
    "se_personnummer",
    "fi_hetu",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "slack_token",
    "stripe_key",
    "gitlab_token",
    "google_api_key",
    "openai_key",
    "npm_token",
    "pypi_token",
    "jwt",
    "private_key",
    "url_credentials",
    "json_secret",
    "person",
];

const MIN_LABELS: usize = 50;
const MIN_LABELS_JSON_SECRET: usize = 30;
const MIN_PRECISION: f64 = 0.99;
const MIN_RECALL: f64 = 0.99;
const MIN_PRECISION_PHONE: f64 = 0.90;
/// Names have no checksum: the person detector is held to precision 0.90,
/// recall 0.85 on names whose words are all in its lexicon (a title and a
/// surname alone aside), and person findings on at most 1 % of the other
/// families' hard-negative cells (whose JSON documents carry street and
/// town names). The person_* families (places, brands, sentences that open
/// with a word that is also a name, months, column names, company names)
/// are reported apiece.
const MIN_PRECISION_PERSON: f64 = 0.90;
const MIN_RECALL_PERSON: f64 = 0.85;
/// On names with a word the lexicon was built without (held out from the
/// same lists), recall is reported and held to this floor, below what the
/// detector reaches, so that a change that loses the structural cues
/// (titles, context words, a known given name beside an unknown surname)
/// shows.
const MIN_RECALL_PERSON_HELD_OUT: f64 = 0.70;
const MAX_PERSON_NEGATIVE_RATE: f64 = 0.01;
/// The person_* families are lists chosen to look like names (Aston
/// Martin, Jasmine Rice, Dr Pepper, a town called Marion): held to the
/// same 1 %. (The phrase gazetteer lists some of those brands by hand, see
/// `src/mask/scan/person/README.md`: the figure there is not independent.)
const MAX_PERSON_NEGATIVE_RATE_NAME_SHAPED: f64 = 0.01;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cell {
    id: u64,
    shape: String,
    locale: String,
    text: String,
    labels: Vec<Label>,
    #[serde(default)]
    negative: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Label {
    kind: String,
    start: usize,
    end: usize,
    /// person: how the name is written (full, caps, comma, initial,
    /// particle, title).
    #[serde(default)]
    form: Option<String>,
    /// person: a word of the name is not in the detector's lexicon.
    #[serde(default)]
    held_out: bool,
}

#[derive(Default)]
struct KindStats {
    labels: usize,
    /// Findings that overlap a label of their kind.
    tp: usize,
    /// Findings that overlap no label of their kind.
    fp: usize,
    /// Labels that no finding of their kind overlaps.
    missed: usize,
    /// Labels found with exactly their bounds.
    exact: usize,
    label_bytes: usize,
    /// Label bytes covered by a finding of any kind: what a mask would hide.
    masked_bytes: usize,
    fp_examples: Vec<String>,
    fn_examples: Vec<String>,
    /// Labels found, but with other bounds: label, then the finding.
    bounds_examples: Vec<String>,
}

impl KindStats {
    fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    fn recall(&self) -> Option<f64> {
        ratio(self.labels - self.missed, self.labels)
    }
}

#[derive(Default)]
struct GroupStats {
    cells: usize,
    labels: usize,
    recalled: usize,
    findings: usize,
    fp: usize,
}

impl GroupStats {
    fn merge(&mut self, other: &GroupStats) {
        self.cells += other.cells;
        self.labels += other.labels;
        self.recalled += other.recalled;
        self.findings += other.findings;
        self.fp += other.fp;
    }
}

#[derive(Default)]
struct NegativeStats {
    cells: usize,
    cells_hit: usize,
    findings: usize,
    /// Cells with a person finding, and those findings.
    person_cells_hit: usize,
    person_findings: usize,
    examples: Vec<String>,
}

#[derive(Default)]
struct PersonGroup {
    labels: usize,
    recalled: usize,
    tp: usize,
    fp: usize,
    /// Hard-negative cells, and those with a person finding.
    negatives: usize,
    negatives_hit: usize,
}

#[derive(Default)]
struct Report {
    /// The corpus file, for the title.
    corpus: &'static str,
    /// The kinds that must have enough labels.
    required_kinds: &'static [&'static str],
    /// By kind name. A kind the scanner reports but the corpus never
    /// labels shows up too, with false positives only.
    kinds: BTreeMap<String, KindStats>,
    /// (finding kind, label kind) -> overlapping pairs.
    confusion: BTreeMap<(String, String), usize>,
    shapes: BTreeMap<String, GroupStats>,
    locales: BTreeMap<String, GroupStats>,
    negatives: BTreeMap<String, NegativeStats>,
    /// person labels by (form, held out): (labels, recalled).
    person_forms: BTreeMap<(String, bool), (usize, usize)>,
    /// The person detector by locale and by shape (`bare`, `text`,
    /// `json`): precision, recall and hard-negative rate in each.
    person_groups: BTreeMap<String, PersonGroup>,
    /// Broken contracts: scan_json errors, panics, unsorted or overlapping
    /// findings, offsets outside the text.
    errors: Vec<String>,
    examples: usize,
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

fn overlaps(a_start: usize, a_end: usize, b_start: usize, b_end: usize) -> bool {
    a_start < b_end && b_start < a_end
}

/// `text[start..end]` with some context, escaped and shortened, for the
/// examples. Offsets come from the scanner and may be wrong: slicing is on
/// bytes and decoding is lossy.
fn excerpt(text: &str, start: usize, end: usize) -> String {
    let bytes = text.as_bytes();
    let end = end.min(bytes.len());
    let start = start.min(end);
    let clip = |b: &[u8], max: usize, keep_tail: bool| -> String {
        let s = String::from_utf8_lossy(b);
        let chars: Vec<char> = s.chars().collect();
        if chars.len() <= max {
            return s.into_owned();
        }
        if keep_tail {
            format!("…{}", chars[chars.len() - max..].iter().collect::<String>())
        } else {
            format!("{}…", chars[..max].iter().collect::<String>())
        }
    };
    let before = clip(&bytes[start.saturating_sub(40)..start], 24, true);
    let value = clip(&bytes[start..end], 90, false);
    let after = clip(&bytes[end..(end + 40).min(bytes.len())], 24, false);
    format!("{before:?} [{value:?}] {after:?}")
}

fn load(corpus: &str) -> Vec<Cell> {
    let data = std::fs::read_to_string(corpus).unwrap_or_else(|e| {
        panic!("cannot read {corpus}: {e} (regenerate it with scripts/mask-corpus/)")
    });
    let mut cells = Vec::new();
    for (n, line) in data.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cell: Cell = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{corpus}:{}: not a corpus cell: {e}", n + 1));
        for label in &cell.labels {
            assert!(
                label.start < label.end
                    && label.end <= cell.text.len()
                    && cell.text.is_char_boundary(label.start)
                    && cell.text.is_char_boundary(label.end),
                "{corpus}:{}: label {}..{} does not fit the text: a corpus bug",
                n + 1,
                label.start,
                label.end
            );
        }
        assert!(
            cell.negative.is_none() || cell.labels.is_empty(),
            "{corpus}:{}: a hard-negative cell with labels",
            n + 1
        );
        cells.push(cell);
    }
    cells
}

/// Runs the scanner on one cell, turning a panic or a rejected JSON
/// document into a recorded error.
fn scan_cell(scanner: &Scanner, cell: &Cell, found: &mut Vec<Finding>) -> Result<(), String> {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        if cell.shape == "json" {
            scanner
                .scan_json(cell.text.as_bytes(), found)
                .map_err(|e| format!("scan_json rejected it: {e:?}"))
        } else {
            scanner.scan(cell.text.as_bytes(), found);
            Ok(())
        }
    }));
    match outcome {
        Ok(result) => result,
        Err(_) => {
            found.clear();
            Err("the scanner panicked".to_string())
        }
    }
}

fn check_contract(cell: &Cell, found: &[Finding]) -> Result<(), String> {
    let mut last_end = 0;
    for (i, f) in found.iter().enumerate() {
        if f.start >= f.end || f.end > cell.text.len() {
            return Err(format!(
                "finding {} {}..{} is outside the text",
                f.kind.name(),
                f.start,
                f.end
            ));
        }
        if i > 0 && f.start < last_end {
            return Err(format!(
                "findings are unsorted or overlap at {} {}..{}",
                f.kind.name(),
                f.start,
                f.end
            ));
        }
        last_end = f.end;
    }
    Ok(())
}

impl Report {
    fn kind(&mut self, name: &str) -> &mut KindStats {
        self.kinds.entry(name.to_string()).or_default()
    }

    fn add(&mut self, cell: &Cell, found: &[Finding]) {
        let at = format!("#{} {} {}", cell.id, cell.shape, cell.locale);
        let mut group = GroupStats {
            cells: 1,
            labels: cell.labels.len(),
            findings: found.len(),
            ..GroupStats::default()
        };

        for f in found {
            let name = f.kind.name();
            let hit = cell
                .labels
                .iter()
                .any(|l| l.kind == name && overlaps(f.start, f.end, l.start, l.end));
            for l in &cell.labels {
                if l.kind != name && overlaps(f.start, f.end, l.start, l.end) {
                    *self
                        .confusion
                        .entry((name.to_string(), l.kind.clone()))
                        .or_default() += 1;
                }
            }
            let examples = self.examples;
            let stats = self.kind(name);
            if hit {
                stats.tp += 1;
            } else {
                stats.fp += 1;
                group.fp += 1;
                if stats.fp_examples.len() < examples {
                    stats
                        .fp_examples
                        .push(format!("{at}: {}", excerpt(&cell.text, f.start, f.end)));
                }
            }
        }

        for l in &cell.labels {
            let same_kind: Vec<&Finding> = found
                .iter()
                .filter(|f| f.kind.name() == l.kind && overlaps(f.start, f.end, l.start, l.end))
                .collect();
            let masked = covered_bytes(found, l.start, l.end);
            if l.kind == "person" {
                let form = l.form.clone().unwrap_or_default();
                let entry = self.person_forms.entry((form, l.held_out)).or_default();
                entry.0 += 1;
                entry.1 += usize::from(!same_kind.is_empty());
            }
            let examples = self.examples;
            let stats = self.kind(&l.kind);
            stats.labels += 1;
            stats.label_bytes += l.end - l.start;
            stats.masked_bytes += masked;
            if same_kind.is_empty() {
                stats.missed += 1;
                if stats.fn_examples.len() < examples {
                    let other: Vec<String> = found
                        .iter()
                        .filter(|f| overlaps(f.start, f.end, l.start, l.end))
                        .map(|f| format!("found as {}", f.kind.name()))
                        .collect();
                    let other = if other.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", other.join(", "))
                    };
                    stats.fn_examples.push(format!(
                        "{at}: {}{other}",
                        excerpt(&cell.text, l.start, l.end)
                    ));
                }
            } else {
                group.recalled += 1;
                if same_kind
                    .iter()
                    .any(|f| f.start == l.start && f.end == l.end)
                {
                    stats.exact += 1;
                } else if stats.bounds_examples.len() < examples {
                    let f = same_kind[0];
                    stats.bounds_examples.push(format!(
                        "{at}: {}\n       found {}",
                        excerpt(&cell.text, l.start, l.end),
                        excerpt(&cell.text, f.start, f.end)
                    ));
                }
            }
        }

        if let Some(family) = &cell.negative {
            let examples = self.examples;
            let neg = self.negatives.entry(family.clone()).or_default();
            neg.cells += 1;
            let person = found.iter().filter(|f| f.kind.name() == "person").count();
            neg.person_findings += person;
            neg.person_cells_hit += usize::from(person > 0);
            if found.len() > person {
                neg.cells_hit += 1;
                neg.findings += found.len() - person;
            }
            if !found.is_empty() {
                for f in found {
                    if neg.examples.len() < examples {
                        neg.examples.push(format!(
                            "{at}: {} {}",
                            f.kind.name(),
                            excerpt(&cell.text, f.start, f.end)
                        ));
                    }
                }
            }
        }

        for key in [
            format!("locale {}", cell.locale),
            format!("shape {}", cell.shape),
        ] {
            let g = self.person_groups.entry(key).or_default();
            for f in found.iter().filter(|f| f.kind.name() == "person") {
                let hit = cell
                    .labels
                    .iter()
                    .any(|l| l.kind == "person" && overlaps(f.start, f.end, l.start, l.end));
                g.tp += usize::from(hit);
                g.fp += usize::from(!hit);
            }
            for l in cell.labels.iter().filter(|l| l.kind == "person") {
                g.labels += 1;
                g.recalled += usize::from(found.iter().any(|f| {
                    f.kind.name() == "person" && overlaps(f.start, f.end, l.start, l.end)
                }));
            }
            if cell.negative.is_some() {
                g.negatives += 1;
                g.negatives_hit += usize::from(found.iter().any(|f| f.kind.name() == "person"));
            }
        }
        self.shapes
            .entry(cell.shape.clone())
            .or_default()
            .merge(&group);
        self.locales
            .entry(cell.locale.clone())
            .or_default()
            .merge(&group);
    }

    fn render(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.4}", v));
        let mut out = String::new();
        let _ = writeln!(out, "## Masking detectors on {}\n", self.corpus);
        let _ = writeln!(
            out,
            "| kind | labels | TP | FP | FN | precision | recall | exact bounds | label bytes masked |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut total = KindStats::default();
        for (name, s) in &self.kinds {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.labels,
                s.tp,
                s.fp,
                s.missed,
                pct(s.precision()),
                pct(s.recall()),
                pct(ratio(s.exact, s.labels)),
                pct(ratio(s.masked_bytes, s.label_bytes)),
            );
            total.labels += s.labels;
            total.tp += s.tp;
            total.fp += s.fp;
            total.missed += s.missed;
            total.exact += s.exact;
            total.label_bytes += s.label_bytes;
            total.masked_bytes += s.masked_bytes;
        }
        let _ = writeln!(
            out,
            "| **all** | {} | {} | {} | {} | {} | {} | {} | {} |",
            total.labels,
            total.tp,
            total.fp,
            total.missed,
            pct(total.precision()),
            pct(total.recall()),
            pct(ratio(total.exact, total.labels)),
            pct(ratio(total.masked_bytes, total.label_bytes)),
        );

        for (title, groups) in [("shape", &self.shapes), ("locale", &self.locales)] {
            let _ = writeln!(
                out,
                "\n| {title} | cells | labels | recall | findings | false positives |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
            for (name, g) in groups {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} | {} | {} |",
                    g.cells,
                    g.labels,
                    pct(ratio(g.recalled, g.labels)),
                    g.findings,
                    g.fp
                );
            }
        }

        if self.person_groups.values().any(|g| g.labels > 0) {
            let _ = writeln!(
                out,
                "\n### person by locale and shape (precision, recall, hard-negative cells with a person finding)\n"
            );
            let _ = writeln!(
                out,
                "| group | labels | precision | recall | false positives | hard negatives | with person | rate |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
            for (key, g) in &self.person_groups {
                let _ = writeln!(
                    out,
                    "| {key} | {} | {} | {} | {} | {} | {} | {} |",
                    g.labels,
                    pct(ratio(g.tp, g.tp + g.fp)),
                    pct(ratio(g.recalled, g.labels)),
                    g.fp,
                    g.negatives,
                    g.negatives_hit,
                    pct(ratio(g.negatives_hit, g.negatives)),
                );
            }
        }
        let _ = writeln!(out, "\n### person recall by form (in lexicon / held out)\n");
        let _ = writeln!(
            out,
            "| form | labels | recall | held-out labels | held-out recall |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let forms: std::collections::BTreeSet<&String> =
            self.person_forms.keys().map(|(f, _)| f).collect();
        for form in forms {
            let get = |h: bool| {
                self.person_forms
                    .get(&(form.clone(), h))
                    .copied()
                    .unwrap_or((0, 0))
            };
            let ((n, r), (hn, hr)) = (get(false), get(true));
            let _ = writeln!(
                out,
                "| {form} | {n} | {} | {hn} | {} |",
                pct(ratio(r, n)),
                pct(ratio(hr, hn))
            );
        }
        let (full, held) = (self.person_recall(false), self.person_recall(true));
        let _ = writeln!(
            out,
            "\nperson recall on full names in the lexicon: {} of {} ({}); with a held-out word: {} of {} ({})",
            full.1,
            full.0,
            pct(ratio(full.1, full.0)),
            held.1,
            held.0,
            pct(ratio(held.1, held.0))
        );

        let _ = writeln!(
            out,
            "\n### Hard negatives (cells with any finding must be 0; person_* families: at most 1 %)\n"
        );
        let _ = writeln!(
            out,
            "| family | cells | cells with findings (not person) | findings | cells with person findings | person findings |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for (family, n) in &self.negatives {
            let _ = writeln!(
                out,
                "| {family} | {} | {} | {} | {} | {} |",
                n.cells, n.cells_hit, n.findings, n.person_cells_hit, n.person_findings
            );
        }
        for (name, person_families) in [("person_* families", true), ("other families", false)] {
            let (cells, hit) = self.person_negative_rate(person_families);
            let _ = writeln!(
                out,
                "\nperson findings on hard negatives, {name}: {hit} of {cells} cells ({})",
                pct(ratio(hit, cells))
            );
        }

        let _ = writeln!(
            out,
            "\n### Confusions (finding kind ← label kind, overlapping)\n"
        );
        if self.confusion.is_empty() {
            let _ = writeln!(out, "none");
        }
        for ((found, label), n) in &self.confusion {
            let _ = writeln!(out, "- {found} ← {label}: {n}");
        }

        let _ = writeln!(out, "\n### Examples");
        for (name, s) in &self.kinds {
            if s.fp_examples.is_empty() && s.fn_examples.is_empty() && s.bounds_examples.is_empty()
            {
                continue;
            }
            let _ = writeln!(out, "\n{name}:");
            for e in &s.fp_examples {
                let _ = writeln!(out, "  FP {e}");
            }
            for e in &s.fn_examples {
                let _ = writeln!(out, "  FN {e}");
            }
            for e in &s.bounds_examples {
                let _ = writeln!(out, "  ~  {e}");
            }
        }
        for (family, n) in &self.negatives {
            for e in &n.examples {
                let _ = writeln!(out, "  negative {family}: {e}");
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\n### Contract errors ({})", self.errors.len());
            for e in self.errors.iter().take(20) {
                let _ = writeln!(out, "- {e}");
            }
        }
        out
    }

    /// (labels, recalled) of person names other than a title and a lone
    /// surname, in the lexicon or with a held-out word.
    fn person_recall(&self, held_out: bool) -> (usize, usize) {
        self.person_forms
            .iter()
            .filter(|((form, h), _)| *h == held_out && form != "title")
            .fold((0, 0), |(n, r), (_, (ln, lr))| (n + ln, r + lr))
    }

    /// (cells, cells with a person finding) over the person_* families or
    /// over the others.
    fn person_negative_rate(&self, person_families: bool) -> (usize, usize) {
        self.negatives
            .iter()
            .filter(|(family, _)| family.starts_with("person_") == person_families)
            .fold((0, 0), |(c, h), (_, n)| {
                (c + n.cells, h + n.person_cells_hit)
            })
    }

    fn gate_failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for name in self.required_kinds {
            let need = if *name == "json_secret" {
                MIN_LABELS_JSON_SECRET
            } else {
                MIN_LABELS
            };
            let have = self.kinds.get(*name).map_or(0, |s| s.labels);
            if have < need {
                failures.push(format!(
                    "corpus defect: {name} has {have} labels, needs {need}"
                ));
            }
        }
        // Person gates need person labels: a corpus without names (the
        // shapes corpus) reports person findings as false positives in its
        // table and hard-negative rates, not as a precision of nothing.
        let has_names = self.kinds.get("person").is_some_and(|s| s.labels > 0);
        for (name, s) in &self.kinds {
            if name == "person" && !has_names {
                continue;
            }
            let (min_p, min_r) = if name == "phone" {
                (MIN_PRECISION_PHONE, None)
            } else if name == "person" {
                (MIN_PRECISION_PERSON, None)
            } else {
                (MIN_PRECISION, Some(MIN_RECALL))
            };
            if let Some(p) = s.precision() {
                if p < min_p {
                    failures.push(format!(
                        "{name}: precision {p:.4} < {min_p} ({} false positives)",
                        s.fp
                    ));
                }
            }
            if let (Some(r), Some(min_r)) = (s.recall(), min_r) {
                if r < min_r {
                    failures.push(format!(
                        "{name}: recall {r:.4} < {min_r} ({} of {} missed)",
                        s.missed, s.labels
                    ));
                }
            }
        }
        for (held_out, min) in [
            (false, MIN_RECALL_PERSON),
            (true, MIN_RECALL_PERSON_HELD_OUT),
        ]
        .into_iter()
        .filter(|_| has_names)
        {
            let (n, r) = self.person_recall(held_out);
            match ratio(r, n) {
                Some(recall) if recall >= min => {}
                recall => failures.push(format!(
                    "person: recall {recall:?} < {min} on full names (held out: {held_out}; {r} of {n})"
                )),
            }
        }
        for (person_families, max) in [
            (true, MAX_PERSON_NEGATIVE_RATE_NAME_SHAPED),
            (false, MAX_PERSON_NEGATIVE_RATE),
        ] {
            let (cells, hit) = self.person_negative_rate(person_families);
            let rate = ratio(hit, cells).unwrap_or(0.0);
            if rate > max {
                failures.push(format!(
                    "hard negatives: person findings in {hit} of {cells} cells ({rate:.4} > {max}; person_* families: {person_families})"
                ));
            }
        }
        for (family, n) in &self.negatives {
            if n.findings > 0 {
                failures.push(format!(
                    "hard negatives: {} findings in {} of {} {family} cells",
                    n.findings, n.cells_hit, n.cells
                ));
            }
        }
        for e in &self.errors {
            failures.push(e.clone());
        }
        failures
    }
}

fn covered_bytes(found: &[Finding], start: usize, end: usize) -> usize {
    // Findings do not overlap each other, so their intersections add up.
    found
        .iter()
        .map(|f| f.end.min(end).saturating_sub(f.start.max(start)))
        .sum()
}

#[test]
fn masking_precision_and_recall() {
    evaluate(CORPUS, CORPUS_KINDS);
}

/// The same gates on the shapes corpus: values glued to labels, dotted
/// and lower-case forms, password hashes, encoded runs, national phone
/// numbers after context words; the `shape` table gives recall per family.
#[test]
fn masking_precision_and_recall_on_shapes() {
    evaluate(SHAPES_CORPUS, SHAPES_KINDS);
}

fn evaluate(corpus: &'static str, required_kinds: &'static [&'static str]) {
    let cells = load(corpus);
    let scanner = Scanner::new(&Detectors::all());
    let mut report = Report {
        corpus,
        required_kinds,
        examples: std::env::var("MASK_EVAL_EXAMPLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5),
        ..Report::default()
    };
    let mut found: Vec<Finding> = Vec::new();
    for cell in &cells {
        if let Err(e) =
            scan_cell(&scanner, cell, &mut found).and_then(|()| check_contract(cell, &found))
        {
            report
                .errors
                .push(format!("#{} {} {}: {e}", cell.id, cell.shape, cell.locale));
        }
        report.add(cell, &found);
    }

    let rendered = report.render();
    println!("{rendered}");
    let failures = report.gate_failures();
    assert!(
        failures.is_empty(),
        "\n{rendered}\n### {} gate(s) missed\n- {}\n",
        failures.len(),
        failures.join("\n- ")
    );
}

// ---- phone columns ----------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnCase {
    id: u64,
    locale: String,
    kind: Option<String>,
    negative: Option<String>,
    cells: Vec<String>,
}

#[derive(Default)]
struct ColumnStats {
    columns: usize,
    cells: usize,
    /// Cells masked whole as a phone number with the column memory.
    masked: usize,
    /// Cells the scanner alone masks, without the column.
    scanner_alone: usize,
    examples: Vec<String>,
}

/// National phone numbers alone in the cells of a result column, through
/// [`Masker::mask_cell`] with one [`Tally`] per column as the row maskers
/// keep them: recall per region, with and without the column memory, and
/// columns of look-alikes in which the column memory may mask nothing the
/// scanner alone does not (for those, the last column counts the cells the
/// scanner alone masks: `00` reads as an international prefix). The first cell
/// of a column has no column behind it yet, so recall stays below 1 by
/// design; the gate is 0.85.
#[test]
fn phone_numbers_in_columns() {
    const MIN_COLUMN_RECALL: f64 = 0.85;
    let data = std::fs::read_to_string(COLUMNS_CORPUS)
        .unwrap_or_else(|e| panic!("cannot read {COLUMNS_CORPUS}: {e}"));
    // The standard detectors, as a policy has them: national identifiers
    // are opt-in and would claim some zero-padded ids on their own.
    let masker = Masker::new(&MaskSettings::default());
    let mut scratch = Scratch::default();
    let mut by_group: BTreeMap<String, ColumnStats> = BTreeMap::new();
    for (n, line) in data.lines().enumerate() {
        let case: ColumnCase = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{COLUMNS_CORPUS}:{}: {e}", n + 1));
        let group = match (&case.kind, &case.negative) {
            (Some(kind), None) => format!("{kind} {}", case.locale),
            (None, Some(family)) => format!("negative {family}"),
            _ => panic!(
                "{COLUMNS_CORPUS}:{}: a column is a kind or a negative",
                n + 1
            ),
        };
        let stats = by_group.entry(group).or_default();
        stats.columns += 1;
        let mut tally = Tally::default();
        let mut alone = Tally::default();
        for cell in &case.cells {
            stats.cells += 1;
            let masked = masker.mask_cell(cell.as_bytes(), &mut scratch, &mut tally);
            let found = masker.mask_text(cell.as_bytes(), &mut scratch, &mut alone);
            if case.kind.is_some() {
                let whole = masked == Masked::Replaced(b"<PHONE>".to_vec());
                stats.masked += usize::from(whole);
                stats.scanner_alone += usize::from(found == Masked::Replaced(b"<PHONE>".to_vec()));
                if !whole && stats.examples.len() < 3 {
                    stats.examples.push(format!("#{} {cell:?}", case.id));
                }
            } else {
                stats.masked += usize::from(masked != Masked::Unchanged);
                stats.scanner_alone += usize::from(found != Masked::Unchanged);
                if masked != Masked::Unchanged && stats.examples.len() < 3 {
                    stats
                        .examples
                        .push(format!("#{} {cell:?} -> {masked:?}", case.id));
                }
            }
        }
    }
    let pct = |a: usize, b: usize| ratio(a, b).map_or("—".into(), |v| format!("{v:.4}"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Phone numbers in result columns ({COLUMNS_CORPUS})\n"
    );
    let _ = writeln!(
        out,
        "| columns | count | cells | masked (column memory) | recall | scanner alone |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let (mut cells, mut masked, mut fp, mut fp_alone) = (0, 0, 0, 0);
    for (group, s) in &by_group {
        let is_negative = group.starts_with("negative");
        let _ = writeln!(
            out,
            "| {group} | {} | {} | {} | {} | {} |",
            s.columns,
            s.cells,
            s.masked,
            if is_negative {
                "—".into()
            } else {
                pct(s.masked, s.cells)
            },
            if is_negative {
                s.scanner_alone.to_string()
            } else {
                pct(s.scanner_alone, s.cells)
            },
        );
        if is_negative {
            fp += s.masked;
            fp_alone += s.scanner_alone;
        } else {
            cells += s.cells;
            masked += s.masked;
        }
    }
    let recall = ratio(masked, cells).unwrap_or(0.0);
    let _ = writeln!(
        out,
        "\nphone columns: recall {recall:.4}; look-alike cells masked: {fp} \
         ({fp_alone} by the scanner alone)"
    );
    for (group, s) in &by_group {
        for e in &s.examples {
            let _ = writeln!(out, "  {group}: {e}");
        }
    }
    println!("{out}");
    // The column memory may add no masked look-alike to what the scanner
    // masks without it.
    assert!(
        fp == fp_alone && recall >= MIN_COLUMN_RECALL,
        "\n{out}\nthe column memory may mask no look-alike cell, and recall must be \
         at least {MIN_COLUMN_RECALL}"
    );
}
