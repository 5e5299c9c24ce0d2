use super::super::Scanner;
use super::*;
use crate::mask::Detectors;

fn names(text: &str) -> Vec<String> {
    let scanner = Scanner::new(&Detectors::none().with(Kind::Person));
    let mut out = Vec::new();
    scanner.scan(text.as_bytes(), &mut out);
    out.iter()
        .map(|f| text[f.start..f.end].to_string())
        .collect()
}

#[track_caller]
fn finds(text: &str, expected: &[&str]) {
    assert_eq!(names(text), expected, "in {text:?}");
}

#[test]
fn full_names_in_cells_and_text() {
    finds("John Smith", &["John Smith"]);
    finds("JOHN SMITH", &["JOHN SMITH"]);
    finds("Smith, John", &["Smith, John"]);
    finds("\"Łukasz Nowak\"", &["Łukasz Nowak"]);
    finds("Lukasz Nowak", &["Lukasz Nowak"]);
    finds("Please ask Maria García to call back.", &["Maria García"]);
    finds("Ticket closed by Hans Müller yesterday", &["Hans Müller"]);
    finds("Jean-Luc Martin a signé", &["Jean-Luc Martin"]);
    finds(
        "Mary O'Brien and Ronald McDonald met",
        &["Mary O'Brien", "Ronald McDonald"],
    );
    finds("Jan van der Berg", &["Jan van der Berg"]);
    finds("Maria de la Cruz", &["Maria de la Cruz"]);
    finds("met J. Smith there", &["J. Smith"]);
    finds("Bo Li", &["Bo Li"]);
    finds("John Smith's order", &["John Smith"]);
    // A cell holding one given name that is no common word or place: a
    // first_name column. A lone surname is as often a firm or a town.
    finds("Kowalski", &[]);
    finds("Jennifer", &["Jennifer"]);
    finds("Jean-Luc", &["Jean-Luc"]);
    finds("Smith said so", &[]);
}

#[test]
fn titles_and_context_words_make_one_name_enough() {
    finds("Dear Mr Smith, thanks", &["Smith"]);
    finds("Herr Müller ruft an", &["Müller"]);
    finds("Bonjour Mme Dubois", &["Dubois"]);
    finds("Sr. Fernández llamó", &["Fernández"]);
    finds("Name: Schmidt", &["Schmidt"]);
    finds("customer Jennifer called", &["Jennifer"]);
    finds("Dr. Xiomara Quispehuaman", &["Xiomara Quispehuaman"]);
}

#[test]
fn common_words_places_and_brands_are_not_names() {
    for text in [
        "Will you send it?",
        "May I ask a question",
        "Mark the box as done",
        "Paris",
        "We met in Paris last May.",
        "Washington Street",
        "12 Washington Street",
        "Victoria Station",
        "Kingston upon Thames",
        "Ford Focus",
        "Tesla Model 3",
        "Johnson & Johnson",
        "first_name",
        "FirstName",
        "CUSTOMER_NAME",
        "Monday",
        "The Shipment Arrived",
        "Port Thomas",
        "Lake Jessica",
        "New York",
        "San Francisco",
        "C:\\Users\\Jennifer\\Documents\\report.pdf",
        "Die Lieferung kam verspätet",
    ] {
        finds(text, &[]);
    }
}

#[test]
fn a_name_in_json_is_found_leaf_by_leaf() {
    let scanner = Scanner::new(&Detectors::none().with(Kind::Person));
    let doc = br#"{"name":"Anna Kowalska","city":"Paris","note":"call Dr Nowak"}"#;
    let mut out = Vec::new();
    scanner.scan_json(doc, &mut out).expect("valid json");
    let found: Vec<&str> = out
        .iter()
        .map(|f| std::str::from_utf8(&doc[f.start..f.end]).expect("utf-8"))
        .collect();
    assert_eq!(found, ["Anna Kowalska", "Nowak"]);
}

#[test]
fn capital_finder_sees_ascii_and_latin_capitals_only() {
    assert_eq!(find_capital(b"all lower case words here", 0), None);
    assert_eq!(find_capital(b"all lower case Words here", 0), Some(15));
    assert_eq!(find_capital("łódź Łódź".as_bytes(), 0), Some(0));
    assert_eq!(find_capital("привет мир и всё".as_bytes(), 0), None);
    assert_eq!(find_capital(b"abc", 0), None);
    assert_eq!(find_capital(b"abcdefghijklmnoZ", 0), Some(15));
}

#[test]
fn odd_bytes_do_not_panic() {
    let scanner = Scanner::new(&Detectors::none().with(Kind::Person));
    let mut out = Vec::new();
    for text in [
        &b"\xc3"[..],
        b"\xc3 Smith",
        b"John \xff Smith",
        b"John Smith\xc3",
        b"J.",
        b"J. ",
        b"Mr",
        b"Mr ",
        b"Smith, ",
        b"Smith,",
        b"A B C D E F G H I J K L M N O P",
        b"'s",
        b"O'",
        b"-Smith",
    ] {
        scanner.scan(text, &mut out);
    }
    let long = "Anna ".repeat(1000);
    scanner.scan(long.as_bytes(), &mut out);
}

#[test]
fn a_surname_that_is_also_a_place_word_follows_a_given_name() {
    // Found with a cue only: Park ends a place's name.
    finds("Jennifer Park", &[]);
    finds("Victoria Park", &[]);
    finds("Calle Azucena Lasa 22", &[]);
    finds("Paseo de Armida Gallardo 32", &[]);
    finds("959 Lisa Brooks", &[]);
    finds("28, avenue Isabelle Becker", &[]);
    finds("Clerc-la-Forêt", &[]);
    finds("Baird-Fox", &[]);
}

#[test]
fn names_end_where_the_sentence_goes_on() {
    finds(
        "Kunde: Diethard Schlosser Sollen dunkel",
        &["Diethard Schlosser"],
    );
    finds("Nom : Adèle Verdier. Tél. : 0102", &["Adèle Verdier"]);
    finds("Elisabeth van Beek", &["Elisabeth van Beek"]);
    finds("Jake van Leuvenhoek", &["Jake van Leuvenhoek"]);
    finds("Prof. Dr. Hans Müller", &["Hans Müller"]);
    finds("Dr. Smith called", &["Smith"]);
}

#[test]
fn a_json_string_value_is_a_cell_of_its_own_in_the_whole_document() {
    // The masker scans a document whole first; a name that is all of a
    // value must be found there as in the leaf.
    finds(
        r#"{"assignee": "Jan van der Berg", "car": "Ford Focus"}"#,
        &["Jan van der Berg"],
    );
    finds(r#"["Jennifer", "Paris"]"#, &["Jennifer"]);
    finds(r#"{"note": "a \"Jan Berg\" b"}"#, &[]);
}

/// Brands, foods, vehicles and lines shaped like names, and firms opened by
/// a word such as `Grupa`: the phrase gazetteer keeps them, and the names
/// beside them are still found.
#[test]
fn phrases_that_name_no_one() {
    for text in [
        "Aston Martin",
        "drives an Aston Martin Vantage",
        "Dr Pepper",
        "sold by Dr. Martens.",
        "Jasmine Rice",
        "note: Jasmine Rice thanks",
        "office in Elizabeth Line",
        "Land Rover",
        "Gabinety Pancerz",
        "supplier: Grupa Kowalski",
        "Stichting Jansen",
    ] {
        finds(text, &[]);
    }
    finds("Dr Smith", &["Smith"]);
    finds("Martin Aston", &["Martin Aston"]);
    finds("Jasmine Kowalski", &["Jasmine Kowalski"]);
    finds("Aston Martin sold to Jennifer Smith", &["Jennifer Smith"]);
    finds("Elizabeth Taylor", &["Elizabeth Taylor"]);
}
