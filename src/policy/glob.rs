//! Name patterns for policy rules: `*` (any run of characters, dots
//! included) and `?` (exactly one character), compared case-insensitively.
//! There is no escape: a literal `*` or `?` in a name cannot be matched on
//! its own.
//!
//! Objects and functions have one more rule: a pattern without a dot also
//! matches a schema-qualified name by its last part, so `users` matches
//! `public.users` and `pg_sleep` matches `pg_catalog.pg_sleep`. A pattern
//! with a dot matches only names written with a qualifier: `hr.*` does not
//! match a bare `salaries`, because which schema a bare name resolves to is
//! decided by the server's search path, not by the text.

/// One compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    /// The pattern as written in the policy file.
    text: String,
    /// The pattern, case-folded character by character.
    pattern: Vec<char>,
    /// Whether the pattern names a qualifier: has a dot outside quotes.
    qualified: bool,
}

impl Glob {
    /// Compiles `text`. `None` when it is empty: an empty pattern matches
    /// only the empty name, which is never what a rule means.
    pub fn new(text: &str) -> Option<Glob> {
        if text.is_empty() {
            return None;
        }
        Some(Glob {
            text: text.to_string(),
            pattern: text.chars().map(fold).collect(),
            qualified: last_part(text).is_some(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` (an identity or database name) matches as a whole.
    pub fn matches(&self, name: &str) -> bool {
        wildcard(&self.pattern, name)
    }

    /// Whether an object or function name matches: as a whole, or — for a
    /// pattern without a dot — by the last part of a qualified name.
    pub fn matches_qualified(&self, name: &str) -> bool {
        if self.matches(name) {
            return true;
        }
        if self.qualified {
            return false;
        }
        match last_part(name) {
            Some(last) => self.matches(last),
            None => false,
        }
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Case folding for one character. Characters whose lower case is several
/// characters (rare, e.g. `İ`) are compared as written; folding both sides
/// the same way keeps matching symmetric.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// The part of `name` after its last dot that is outside quotes (`"…"` or
/// `` `…` ``), or `None` when the name is not qualified. Quoted parts may
/// contain dots (`"odd.name"`), which do not separate anything.
fn last_part(name: &str) -> Option<&str> {
    let mut quote: Option<char> = None;
    let mut last_dot = None;
    for (i, c) in name.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '`' => quote = Some(c),
            None if c == '.' => last_dot = Some(i),
            None => {}
        }
    }
    last_dot.map(|i| &name[i + 1..])
}

/// Wildcard matching with single-star backtracking: linear for typical
/// patterns, at worst `pattern × text`, and no allocation (this runs for
/// every rule condition of every statement).
fn wildcard(pattern: &[char], text: &str) -> bool {
    let mut p = 0;
    let mut t = 0;
    // After a `*`: the pattern index following it and the text position it
    // was tried at, so a mismatch can let the star take one more character.
    let mut star: Option<(usize, usize)> = None;
    while let Some(c) = text[t..].chars().next() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(&pc) if pc == '?' || pc == fold(c) => {
                p += 1;
                t += c.len_utf8();
            }
            _ => match star {
                Some((after_star, tried)) => {
                    let next = tried + text[tried..].chars().next().map_or(1, char::len_utf8);
                    star = Some((after_star, next));
                    p = after_star;
                    t = next;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    fn q(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches_qualified(name)
    }

    #[test]
    fn star_and_question_mark() {
        assert!(m("*", ""));
        assert!(m("*", "anything.at.all"));
        assert!(m("prod*", "prod"));
        assert!(m("prod*", "production"));
        assert!(!m("prod*", "preprod"));
        assert!(m("*prod", "preprod"));
        assert!(m("a*b*c", "aXXbYYbc"));
        assert!(!m("a*b*c", "aXXbYYb"));
        assert!(m("db?", "db1"));
        assert!(!m("db?", "db"));
        assert!(!m("db?", "db12"));
        assert!(m("reporting-*", "reporting-nightly"));
        assert!(!m("reporting-*", "reporting"));
        assert!(m("**x", "x"));
        assert!(m("é?", "éé"));
    }

    #[test]
    fn case_insensitive() {
        assert!(m("Reporting-*", "REPORTING-bot"));
        assert!(m("public.users", "Public.Users"));
        assert!(m("ÉTÉ", "été"));
    }

    #[test]
    fn unqualified_patterns_match_qualified_names_by_last_part() {
        assert!(q("users", "users"));
        assert!(q("users", "public.users"));
        assert!(q("users", "db.public.users"));
        assert!(q("user*", "public.users"));
        assert!(!q("users", "public.users_old"));
        assert!(q("pg_sleep", "pg_catalog.pg_sleep"));
        // A quoted dot separates nothing.
        assert!(q("\"b.c\"", "a.\"b.c\""));
        assert!(!q("c\"", "a.\"b.c\""));
    }

    #[test]
    fn qualified_patterns_need_the_qualifier() {
        assert!(q("hr.*", "hr.salaries"));
        assert!(!q("hr.*", "salaries"));
        assert!(!q("hr.*", "public.hr"));
        assert!(q("*.salaries", "hr.salaries"));
        assert!(!m("users", "public.users"));
    }

    #[test]
    fn empty_patterns_are_refused() {
        assert!(Glob::new("").is_none());
    }
}
