//! The generated inputs the masking benchmarks scan: prose in ten
//! languages, digit-heavy table data, prose naming many people, and keys
//! of digit groups. Deterministic (a fixed seed), so runs and builds
//! compare; shared by `mask.rs` (time) and `scan_instructions.rs`
//! (instructions).

/// How much text each generated input holds, cut into cells.
const INPUT_BYTES: usize = 64 * 1024;

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
/// issues. A `ref` that is a full date and four digits is written as a
/// Swedish personnummer is, and one in ten passes its check: the standard
/// detectors report those (about 20 of the 310 cells), and nothing else.
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

/// A generated input: its name and its cells.
pub type Input = (&'static str, Vec<String>);

/// The generated inputs, the same every run.
pub fn inputs() -> [Input; 4] {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    [
        ("prose", prose_cells(&mut rng)),
        ("table_data", table_cells(&mut rng)),
        ("names", names_cells(&mut rng)),
        ("digit_groups", digit_group_cells(&mut rng)),
    ]
}

/// The bytes of all cells.
pub fn bytes_of(cells: &[String]) -> u64 {
    cells.iter().map(|c| c.len() as u64).sum()
}
