//! `airlock::sql::classify` and `airlock::sql::lexer::lex` must never panic,
//! in either dialect, on any input.
//!
//! Input: the first byte picks the dialect (even = PostgreSQL, odd = MySQL);
//! the rest is the query, read with `String::from_utf8_lossy`.
#![no_main]

use airlock::sql::{classify, lexer, Dialect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let dialect = if first % 2 == 0 {
        Dialect::Postgres
    } else {
        Dialect::Mysql
    };
    let sql = String::from_utf8_lossy(rest);

    // The lexer on its own (the classifier calls it too, but a panic here
    // is then reported at its source). Statements it returns are never
    // empty: it drops those.
    if let Ok(statements) = lexer::lex(&sql, dialect) {
        for s in &statements {
            assert!(!s.tokens.is_empty(), "lexer returned an empty statement");
            // Token offsets index the statement's code (EXPLAIN, PREPARE and
            // DECLARE classify the code after a token).
            for t in &s.tokens {
                assert!(t.start < s.code.len(), "token offset {} past the code {:?}", t.start, s.code);
            }
        }
    }

    // The classifier: every statement it returns has at least one class
    // (fail closed: what it cannot place is `unknown`, never nothing).
    let result = classify(&sql, dialect);
    for s in &result.statements {
        assert!(
            !s.classes.is_empty(),
            "statement {:?} ({dialect:?}) classified with no class",
            s.text
        );
    }
});
