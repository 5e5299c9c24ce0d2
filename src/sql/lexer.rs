//! A dialect-aware SQL lexer: splits a query into statements and tokens the
//! way the *server* will, which is what classification must follow.
//!
//! It exists because a general parser's tokenizer is not the server's:
//! PostgreSQL nests `/* */` comments and has dollar quotes, `E''` and `U&''`
//! strings; MySQL has `#` comments, `--` that is a comment only when a space
//! follows, backslash escapes, and executable comments `/*! … */` /
//! `/*M! … */` whose content the server runs as code. Whatever the lexer
//! cannot finish (an unterminated string, comment or dollar quote) is an
//! error, and the statement is `unknown`.
//!
//! Backslashes in plain `'…'` strings are the one thing the server decides
//! by a session setting (`standard_conforming_strings`, MySQL's
//! `NO_BACKSLASH_ESCAPES`), which a client can change. [`lex`] therefore
//! lexes such queries both ways and reports [`LexError::Ambiguous`] when the
//! two readings split the query differently.

use std::ops::Range;

use super::Dialect;

/// What a token is. Comments and whitespace produce no tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A keyword or unquoted identifier; `text` is as written.
    Word,
    /// A quoted identifier; `text` is the name it resolves to: quotes
    /// unescaped and, for PostgreSQL `U&"…"`, Unicode escapes decoded.
    QuotedIdent,
    /// A string literal of any form; `text` is its content, unescaped
    /// as far as classification needs (quotes and backslash escapes).
    String,
    Number,
    /// `$1`, `?`
    Param,
    /// Any other character (operators, punctuation), one per token.
    Punct,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub text: String,
    /// Byte offset of the token in its statement's [`LexedStatement::code`].
    pub start: usize,
}

impl Token {
    /// Whether this is the keyword `kw` (given in upper case).
    pub fn is_word(&self, kw: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(kw)
    }

    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct && self.text.len() == 1 && self.text.starts_with(c)
    }

    /// The name this token stands for where the server expects an
    /// identifier, as the server resolves it: PostgreSQL folds unquoted
    /// names to lower case (ASCII only, as in a UTF-8 database), keeps
    /// quoted ones exactly, and truncates both to 63 bytes; MySQL compares
    /// function and schema names case-insensitively, quoted or not.
    /// `None` for tokens that are not names.
    pub fn ident(&self, dialect: Dialect) -> Option<String> {
        match (self.kind, dialect) {
            (Kind::Word, Dialect::Postgres) => Some(truncate_pg(self.text.to_ascii_lowercase())),
            (Kind::QuotedIdent, Dialect::Postgres) => Some(truncate_pg(self.text.clone())),
            (Kind::Word | Kind::QuotedIdent, Dialect::Mysql) => Some(self.text.to_lowercase()),
            _ => None,
        }
    }
}

/// PostgreSQL's identifier limit (NAMEDATALEN - 1): longer names are
/// truncated, at a character boundary, before they are looked up.
const PG_MAX_IDENT_BYTES: usize = 63;

fn truncate_pg(mut name: String) -> String {
    if name.len() > PG_MAX_IDENT_BYTES {
        let mut end = PG_MAX_IDENT_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// One statement of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexedStatement {
    pub tokens: Vec<Token>,
    /// The statement's code as the server will read it: comments replaced
    /// by a space, executable comments unwrapped, trimmed.
    pub code: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    #[error("unterminated string literal")]
    UnterminatedString,
    #[error("unterminated quoted identifier")]
    UnterminatedIdent,
    #[error("unterminated comment")]
    UnterminatedComment,
    #[error("unterminated dollar-quoted string")]
    UnterminatedDollar,
    #[error("comment inside a MySQL executable comment")]
    NestedExecutableComment,
    #[error(
        "the query splits differently depending on how the server treats backslashes in strings"
    )]
    Ambiguous,
    #[error("invalid Unicode escape in a U& literal or identifier, or in its UESCAPE clause")]
    BadUnicodeEscape,
    #[error("zero-length quoted identifier")]
    EmptyIdent,
}

/// Lexes `sql` into statements (empty statements are dropped).
pub fn lex(sql: &str, dialect: Dialect) -> Result<Vec<LexedStatement>, LexError> {
    read(sql, dialect).statements
}

/// What one pass of the lexer learns about a query: its statements (as
/// [`lex`] gives them) and the spans that hold values (as [`value_spans`]
/// gives them). The gate needs both for every statement: one reading
/// serves the classification cache's key and the masking of the logged
/// text.
#[derive(Debug)]
pub struct Reading {
    pub statements: Result<Vec<LexedStatement>, LexError>,
    pub values: Vec<Range<usize>>,
}

/// Reads `sql` once (twice when backslashes make its reading depend on a
/// session setting: the other reading must agree on every token, or the
/// query means different things under different settings; and only what
/// is a value under both readings counts as one).
pub fn read(sql: &str, dialect: Dialect) -> Reading {
    let default_escapes = dialect == Dialect::Mysql;
    let (statements, values, saw_backslash) = one_reading(sql, dialect, default_escapes);
    if !saw_backslash {
        return Reading { statements, values };
    }
    let (other, other_values, _) = one_reading(sql, dialect, !default_escapes);
    let statements = match (statements, other) {
        (Err(e), _) => Err(e),
        (Ok(a), Ok(b)) if same_shape(&a, &b) => Ok(a),
        _ => Err(LexError::Ambiguous),
    };
    Reading {
        statements,
        values: intersect(&values, &other_values),
    }
}

fn same_shape(a: &[LexedStatement], b: &[LexedStatement]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.tokens.len() == y.tokens.len()
                && x.tokens
                    .iter()
                    .zip(&y.tokens)
                    .all(|(s, t)| s.kind == t.kind && (s.kind == Kind::String || s.text == t.text))
        })
}

struct Lexer<'a> {
    sql: &'a str,
    src: &'a [u8],
    pos: usize,
    dialect: Dialect,
    /// Whether `\` escapes the next character in plain `'…'` strings.
    backslash_escapes: bool,
    saw_backslash: bool,
    statements: Vec<LexedStatement>,
    tokens: Vec<Token>,
    code: String,
    /// Inside a MySQL executable comment: its `*/` ends it, not a statement.
    in_executable_comment: bool,
    /// The source bytes inside each literal and comment, in order (see
    /// [`value_spans`]).
    values: Vec<Range<usize>>,
    /// Where the construct that could not be finished begins.
    failed_at: Option<usize>,
    /// Indices in `tokens` of PostgreSQL `U&` literals and identifiers whose
    /// escapes are decoded when the statement ends (a `UESCAPE 'c'` clause
    /// after one changes its escape character).
    unicode: Vec<usize>,
}

/// The byte ranges of `sql` that hold values rather than structure, for
/// masking a statement for display: the inside of every string literal
/// (all forms, dollar-quoted bodies and MySQL `"…"` included), the text of
/// every comment, and every number. Everything else — keywords,
/// identifiers (quoted ones too: approvers must see which object is
/// touched), operators, `;`, the code of MySQL `/*! … */` — is structure
/// and must stay visible. Ranges are sorted, disjoint, and never include
/// a delimiter, so a detector run on one range can never cross a token
/// boundary.
///
/// Nothing here fails. Text the lexer cannot finish (an unterminated
/// string, comment or dollar quote) is a value from its opener to the end
/// as far as the lexer can tell; since the server may read it otherwise,
/// that tail is cut at every character that could end a literal or a
/// statement (`;`, quotes, `$`, `/*`, `*/`), so a value there is masked
/// but no structure can hide behind one. When backslashes make the
/// reading depend on a session setting, only what is a value under both
/// readings counts as one.
pub fn value_spans(sql: &str, dialect: Dialect) -> Vec<Range<usize>> {
    read(sql, dialect).values
}

/// One run of the lexer with backslash escapes on or off: the statements,
/// the value spans, and whether a backslash was seen in a plain string.
#[allow(clippy::type_complexity)]
fn one_reading(
    sql: &str,
    dialect: Dialect,
    escapes: bool,
) -> (
    Result<Vec<LexedStatement>, LexError>,
    Vec<Range<usize>>,
    bool,
) {
    let mut lexer = Lexer::new(sql, dialect, escapes);
    let finished = lexer.run();
    let mut spans = std::mem::take(&mut lexer.values);
    if let (Err(_), Some(from)) = (&finished, lexer.failed_at) {
        spans.retain(|r| r.end <= from);
        spans.extend(unfinished_pieces(sql.as_bytes(), from));
    }
    spans.retain(|r| !r.is_empty());
    let statements = finished.map(|()| std::mem::take(&mut lexer.statements));
    (statements, spans, lexer.saw_backslash)
}

/// The tail of `src` from `from`, split at every byte that could close a
/// literal or comment or end a statement (those bytes left out).
fn unfinished_pieces(src: &[u8], from: usize) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = from;
    let mut i = from;
    while i < src.len() {
        let boundary = match src[i] {
            b';' | b'\'' | b'"' | b'`' | b'$' => 1,
            b'/' | b'*' if matches!(src.get(i + 1), Some(b'*' | b'/')) && src[i] != src[i + 1] => 2,
            _ => 0,
        };
        if boundary > 0 {
            pieces.push(start..i);
            i += boundary;
            start = i;
        } else {
            i += 1;
        }
    }
    pieces.push(start..src.len().max(start));
    pieces
}

/// The ranges covered by both sorted, disjoint lists.
fn intersect(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if start < end {
            out.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str, dialect: Dialect, backslash_escapes: bool) -> Lexer<'a> {
        Lexer {
            sql,
            src: sql.as_bytes(),
            pos: 0,
            dialect,
            backslash_escapes,
            saw_backslash: false,
            statements: Vec::new(),
            tokens: Vec::new(),
            code: String::new(),
            in_executable_comment: false,
            values: Vec::new(),
            failed_at: None,
            unicode: Vec::new(),
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    /// The source from `start` to `end`: a plain slice when both are
    /// character boundaries (they nearly always are: tokens begin and end
    /// at ASCII bytes), replacement characters where one splits a
    /// character.
    fn slice(&self, start: usize, end: usize) -> std::borrow::Cow<'a, str> {
        match self.sql.get(start..end) {
            Some(text) => std::borrow::Cow::Borrowed(text),
            None => String::from_utf8_lossy(&self.src[start..end]),
        }
    }

    fn text(&self, start: usize, end: usize) -> String {
        self.slice(start, end).into_owned()
    }

    /// Records a token; the code keeps its source bytes, so the parser
    /// sees it exactly as written.
    fn push(&mut self, kind: Kind, text: String, start: usize) {
        let offset = self.code.len();
        self.code.push_str(&self.slice(start, self.pos));
        self.tokens.push(Token {
            kind,
            text,
            start: offset,
        });
    }

    fn end_statement(&mut self) -> Result<(), LexError> {
        self.resolve_unicode()?;
        if !self.tokens.is_empty() {
            // Only Airlock's own separator spaces are trimmed: Unicode-aware
            // trimming would also cut characters that are tokens here.
            let mut code = std::mem::take(&mut self.code);
            code.truncate(code.trim_end_matches(' ').len());
            self.statements.push(LexedStatement {
                tokens: std::mem::take(&mut self.tokens),
                code,
            });
        }
        self.code.clear();
        Ok(())
    }

    /// Decodes the statement's `U&'…'` and `U&"…"` tokens the way
    /// PostgreSQL does, so that a name is compared as the server resolves
    /// it (`U&"pg_r\0065ad_file"` is `pg_read_file`). A `UESCAPE 'c'`
    /// clause after one sets its escape character and is dropped from the
    /// tokens (the code keeps it). Whatever the server would reject is an
    /// error: the statement is then `unknown`.
    fn resolve_unicode(&mut self) -> Result<(), LexError> {
        let pending = std::mem::take(&mut self.unicode);
        let mut clauses = Vec::new();
        for &i in &pending {
            let mut escape = '\\';
            if self.tokens.get(i + 1).is_some_and(|t| t.is_word("UESCAPE")) {
                let Some(t) = self.tokens.get(i + 2) else {
                    return Err(LexError::BadUnicodeEscape);
                };
                // Only a plain one-character '…' literal: PostgreSQL wants
                // a string constant here and forbids hex digits, `+`,
                // quotes and white space as the escape.
                let plain = t.kind == Kind::String && self.code[t.start..].starts_with('\'');
                let mut chars = t.text.chars();
                escape = match (plain, chars.next(), chars.next()) {
                    (true, Some(c), None)
                        if !c.is_ascii_hexdigit()
                            && !matches!(c, '+' | '\'' | '"')
                            && !c.is_whitespace() =>
                    {
                        c
                    }
                    _ => return Err(LexError::BadUnicodeEscape),
                };
                clauses.push(i + 1);
            }
            let token = &mut self.tokens[i];
            token.text = decode_unicode(&token.text, escape).ok_or(LexError::BadUnicodeEscape)?;
            if token.kind == Kind::QuotedIdent && token.text.is_empty() {
                return Err(LexError::EmptyIdent);
            }
        }
        for &i in clauses.iter().rev() {
            self.tokens.drain(i..i + 2);
        }
        Ok(())
    }

    /// Whitespace and comments become one space between tokens (none
    /// before the first), so token offsets stay valid in the code.
    fn separator(&mut self) {
        if !self.code.is_empty() && !self.code.ends_with(' ') {
            self.code.push(' ');
        }
    }

    fn run(&mut self) -> Result<(), LexError> {
        while let Some(b) = self.peek(0) {
            let start = self.pos;
            self.failed_at = Some(start);
            match b {
                // Both servers also count vertical tab as whitespace.
                b if b.is_ascii_whitespace() || b == 0x0b => {
                    self.pos += 1;
                    self.separator();
                }
                // Also inside `/*! … */`: the server splits there too.
                b';' => {
                    self.pos += 1;
                    self.end_statement()?;
                }
                b'-' if self.peek(1) == Some(b'-') && self.dash_comment() => self.line_comment(2),
                b'#' if self.dialect == Dialect::Mysql => self.line_comment(1),
                b'/' if self.peek(1) == Some(b'*') => self.block_comment()?,
                b'*' if self.in_executable_comment && self.peek(1) == Some(b'/') => {
                    self.pos += 2;
                    self.in_executable_comment = false;
                    self.separator();
                }
                b'\'' => self.string(start, self.backslash_escapes)?,
                b'"' if self.dialect == Dialect::Mysql => self.mysql_double_quoted(start)?,
                b'"' => self.quoted_ident(start, b'"')?,
                b'`' if self.dialect == Dialect::Mysql => self.quoted_ident(start, b'`')?,
                b'$' if self.dialect == Dialect::Postgres => self.dollar(start)?,
                b'?' if self.dialect == Dialect::Mysql => {
                    self.pos += 1;
                    self.push(Kind::Param, "?".into(), start);
                }
                b if b.is_ascii_digit()
                    || (b == b'.' && self.peek(1).is_some_and(|c| c.is_ascii_digit())) =>
                {
                    while self
                        .peek(0)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
                    {
                        self.pos += 1;
                    }
                    let text = self.text(start, self.pos);
                    self.values.push(start..self.pos);
                    self.push(Kind::Number, text, start);
                }
                b if is_ident_start(b) => self.word(start)?,
                _ => {
                    // One character, decoded whole so multi-byte input stays valid.
                    let len = utf8_len(b);
                    self.pos = (self.pos + len).min(self.src.len());
                    let text = self.text(start, self.pos);
                    self.push(Kind::Punct, text, start);
                }
            }
        }
        self.failed_at = None;
        if self.in_executable_comment {
            return Err(LexError::UnterminatedComment);
        }
        self.end_statement()
    }

    /// `--` starts a comment in PostgreSQL always; in MySQL only when a
    /// space, control character or the end follows (else it is `- -x`).
    fn dash_comment(&self) -> bool {
        match self.dialect {
            Dialect::Postgres => true,
            Dialect::Mysql => self.peek(2).is_none_or(|c| c <= b' '),
        }
    }

    /// A comment from its opener (`opener` bytes long) to the line's end.
    fn line_comment(&mut self, opener: usize) {
        let body = (self.pos + opener).min(self.src.len());
        while self.peek(0).is_some_and(|b| b != b'\n') {
            self.pos += 1;
        }
        self.values.push(body..self.pos.max(body));
        self.separator();
    }

    fn block_comment(&mut self) -> Result<(), LexError> {
        if self.dialect == Dialect::Mysql {
            if self.in_executable_comment {
                return Err(LexError::NestedExecutableComment);
            }
            // `/*!` and `/*M!`, optionally followed by a version number.
            let bang = match (self.peek(2), self.peek(3)) {
                (Some(b'!'), _) => Some(3),
                (Some(b'M'), Some(b'!')) => Some(4),
                _ => None,
            };
            if let Some(skip) = bang {
                self.pos += skip;
                while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                self.in_executable_comment = true;
                self.separator();
                return Ok(());
            }
            // Ordinary MySQL comments do not nest.
            self.pos += 2;
            let body = self.pos;
            loop {
                match (self.peek(0), self.peek(1)) {
                    (Some(b'*'), Some(b'/')) => {
                        self.values.push(body..self.pos);
                        self.pos += 2;
                        break;
                    }
                    (Some(_), _) => self.pos += 1,
                    (None, _) => return Err(LexError::UnterminatedComment),
                }
            }
        } else {
            // PostgreSQL comments nest.
            self.pos += 2;
            let body = self.pos;
            let mut depth = 1;
            while depth > 0 {
                match (self.peek(0), self.peek(1)) {
                    (Some(b'/'), Some(b'*')) => {
                        depth += 1;
                        self.pos += 2;
                    }
                    (Some(b'*'), Some(b'/')) => {
                        depth -= 1;
                        self.pos += 2;
                    }
                    (Some(_), _) => self.pos += 1,
                    (None, _) => return Err(LexError::UnterminatedComment),
                }
            }
            self.values.push(body..self.pos - 2);
        }
        self.separator();
        Ok(())
    }

    /// A `'…'` string starting at `self.pos` (the quote). Doubled quotes
    /// escape a quote; with `escapes`, so does a backslash.
    fn string(&mut self, start: usize, escapes: bool) -> Result<(), LexError> {
        self.pos += 1;
        let body = self.pos;
        let content = self.quoted_body(b'\'', escapes, LexError::UnterminatedString)?;
        self.values.push(body..self.pos - 1);
        self.push(Kind::String, content, start);
        Ok(())
    }

    fn quoted_body(
        &mut self,
        quote: u8,
        escapes: bool,
        unterminated: LexError,
    ) -> Result<String, LexError> {
        let mut content = Vec::new();
        loop {
            match self.peek(0) {
                None => return Err(unterminated),
                Some(b'\\') => {
                    self.saw_backslash |= quote == b'\'' || self.dialect == Dialect::Mysql;
                    if escapes {
                        match self.peek(1) {
                            Some(c) => {
                                content.push(c);
                                self.pos += 2;
                            }
                            None => return Err(unterminated),
                        }
                    } else {
                        content.push(b'\\');
                        self.pos += 1;
                    }
                }
                Some(c) if c == quote => {
                    if self.peek(1) == Some(quote) {
                        content.push(quote);
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                        return Ok(String::from_utf8_lossy(&content).into_owned());
                    }
                }
                Some(c) => {
                    content.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// MySQL's `"…"` is a string (unless ANSI_QUOTES, where it is an
    /// identifier; either way one token with the same boundaries).
    fn mysql_double_quoted(&mut self, start: usize) -> Result<(), LexError> {
        self.pos += 1;
        let body = self.pos;
        let content =
            self.quoted_body(b'"', self.backslash_escapes, LexError::UnterminatedString)?;
        self.values.push(body..self.pos - 1);
        self.push(Kind::String, content, start);
        Ok(())
    }

    fn quoted_ident(&mut self, start: usize, quote: u8) -> Result<(), LexError> {
        self.pos += 1;
        let content = self.quoted_body(quote, false, LexError::UnterminatedIdent)?;
        self.push(Kind::QuotedIdent, content, start);
        Ok(())
    }

    /// `$1` parameters and `$tag$…$tag$` strings (PostgreSQL).
    fn dollar(&mut self, start: usize) -> Result<(), LexError> {
        if self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            let text = self.text(start, self.pos);
            self.push(Kind::Param, text, start);
            return Ok(());
        }
        // A tag is an identifier without `$`, possibly empty.
        let mut end = self.pos + 1;
        if self.src.get(end).is_some_and(|&c| is_ident_start(c)) {
            while self
                .src
                .get(end)
                .is_some_and(|&c| is_ident_char(c) && c != b'$')
            {
                end += 1;
            }
        }
        if self.src.get(end) != Some(&b'$') {
            self.pos += 1;
            self.push(Kind::Punct, "$".into(), start);
            return Ok(());
        }
        let delimiter = self.src[self.pos..=end].to_vec();
        let body_start = end + 1;
        let Some(offset) = find(&self.src[body_start..], &delimiter) else {
            return Err(LexError::UnterminatedDollar);
        };
        let content = self.text(body_start, body_start + offset);
        self.values.push(body_start..body_start + offset);
        self.pos = body_start + offset + delimiter.len();
        self.push(Kind::String, content, start);
        Ok(())
    }

    /// A word, or a string with a prefix: `E'…'`, `U&'…'`, `B'…'`, `X'…'`,
    /// `N'…'` (both dialects as they allow), MySQL `_charset'…'` is a word
    /// followed by a string and needs nothing special.
    fn word(&mut self, start: usize) -> Result<(), LexError> {
        let b = self.src[self.pos];
        let next = self.peek(1);
        match (self.dialect, b.to_ascii_uppercase(), next) {
            (Dialect::Postgres, b'E', Some(b'\'')) => {
                self.pos += 1;
                return self.string(start, true);
            }
            (Dialect::Postgres, b'U', Some(b'&'))
                if matches!(self.peek(2), Some(b'\'') | Some(b'"')) =>
            {
                self.pos += 2;
                if self.peek(0) == Some(b'\'') {
                    self.string(start, false)?;
                } else {
                    self.quoted_ident(start, b'"')?;
                }
                self.unicode.push(self.tokens.len() - 1);
                return Ok(());
            }
            (_, b'B' | b'X' | b'N', Some(b'\'')) => {
                self.pos += 1;
                return self.string(start, self.backslash_escapes);
            }
            _ => {}
        }
        while self.peek(0).is_some_and(is_ident_char) {
            self.pos += 1;
        }
        let text = self.text(start, self.pos);
        self.push(Kind::Word, text, start);
        Ok(())
    }
}

/// The text of a `U&` literal or identifier with its escapes decoded:
/// `<e>XXXX`, `<e>+XXXXXX` (a UTF-16 surrogate pair as two escapes) and
/// `<e><e>` for the escape character itself. `None` where PostgreSQL
/// reports an error (a malformed escape, a lone surrogate, U+0000, a code
/// point beyond Unicode).
pub fn decode_unicode(body: &str, escape: char) -> Option<String> {
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::with_capacity(body.len());
    let mut high: Option<u32> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != escape {
            if high.is_some() {
                return None;
            }
            out.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&escape) {
            if high.is_some() {
                return None;
            }
            out.push(escape);
            i += 2;
            continue;
        }
        let (skip, digits) = if chars.get(i + 1) == Some(&'+') {
            (2, 6)
        } else {
            (1, 4)
        };
        let hex = chars.get(i + skip..i + skip + digits)?;
        if !hex.iter().all(char::is_ascii_hexdigit) {
            return None;
        }
        let code = u32::from_str_radix(&hex.iter().collect::<String>(), 16).ok()?;
        i += skip + digits;
        match (code, high.take()) {
            (0xD800..=0xDBFF, None) => high = Some(code),
            (0xDC00..=0xDFFF, Some(h)) => out.push(char::from_u32(
                0x10000 + ((h - 0xD800) << 10) + (code - 0xDC00),
            )?),
            (_, Some(_)) | (0xDC00..=0xDFFF, None) | (0, None) => return None,
            (_, None) => out.push(char::from_u32(code)?),
        }
    }
    high.is_none().then_some(out)
}

/// How many bytes the UTF-8 character that starts with `first` has (one
/// for a byte that starts none).
pub(crate) fn utf8_len(first: u8) -> usize {
    match first {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str, d: Dialect) -> Vec<Vec<String>> {
        lex(sql, d)
            .unwrap()
            .into_iter()
            .map(|s| s.tokens.into_iter().map(|t| t.text).collect())
            .collect()
    }

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let s = lex(
            "select ';'; select 2 -- ; no\n; /* ; */ select 3",
            Dialect::Postgres,
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].code, "select ';'");
        assert_eq!(s[2].code, "select 3");
    }

    #[test]
    fn postgres_comments_nest_and_dollar_quotes_hide_semicolons() {
        assert_eq!(
            words("/* a /* b */ DROP TABLE t */ SELECT 1", Dialect::Postgres),
            vec![vec!["SELECT", "1"]]
        );
        let s = lex("SELECT $f$ a; $$ b $f$, $1, a$b", Dialect::Postgres).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].tokens[1].kind, s[0].tokens[1].text.as_str()),
            (Kind::String, " a; $$ b ")
        );
        assert_eq!(s[0].tokens[3].kind, Kind::Param);
        assert_eq!(s[0].tokens[5].text, "a$b");
        assert_eq!(
            lex("SELECT $x$ open", Dialect::Postgres),
            Err(LexError::UnterminatedDollar)
        );
    }

    #[test]
    fn postgres_escape_strings() {
        let s = lex(r"SELECT E'it\'s; DROP', U&'d\0061t'", Dialect::Postgres).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].tokens[1].text, "it's; DROP");
    }

    #[test]
    fn mysql_comments_and_executable_comments() {
        assert_eq!(
            words("SELECT 1 # x; DROP TABLE t", Dialect::Mysql),
            vec![vec!["SELECT", "1"]]
        );
        assert_eq!(
            words("SELECT 1 --1", Dialect::Mysql),
            vec![vec!["SELECT", "1", "-", "-", "1"]]
        );
        assert_eq!(
            words("SELECT 1 -- x", Dialect::Mysql),
            vec![vec!["SELECT", "1"]]
        );
        assert_eq!(
            words("SELECT 1 /*!50001 ; DROP TABLE t */", Dialect::Mysql),
            vec![vec!["SELECT", "1"], vec!["DROP", "TABLE", "t"]]
        );
        assert_eq!(
            words("SELECT /*M! 2 */ 1", Dialect::Mysql),
            vec![vec!["SELECT", "2", "1"]]
        );
        assert_eq!(
            lex("SELECT /*! /* x */ */ 1", Dialect::Mysql),
            Err(LexError::NestedExecutableComment)
        );
    }

    #[test]
    fn ambiguous_backslashes_are_reported() {
        // With backslash escapes this is one string; without, two statements.
        assert_eq!(
            lex(r"SELECT 'a\'; DROP TABLE t; -- '", Dialect::Mysql),
            Err(LexError::Ambiguous)
        );
        assert_eq!(
            lex(r"SELECT 'a\'; DROP TABLE t; -- '", Dialect::Postgres),
            Err(LexError::Ambiguous)
        );
        // A backslash that does not change the split is fine.
        assert!(lex(r"SELECT 'C:\temp'", Dialect::Postgres).is_ok());
    }

    #[test]
    fn unterminated_input_is_an_error() {
        assert_eq!(
            lex("SELECT 'x", Dialect::Postgres),
            Err(LexError::UnterminatedString)
        );
        assert_eq!(
            lex("SELECT \"x", Dialect::Postgres),
            Err(LexError::UnterminatedIdent)
        );
        assert_eq!(
            lex("SELECT /* x", Dialect::Postgres),
            Err(LexError::UnterminatedComment)
        );
        assert_eq!(
            lex("SELECT /*! 1", Dialect::Mysql),
            Err(LexError::UnterminatedComment)
        );
    }

    // Found by the fuzzer: characters that Unicode calls whitespace (U+3000)
    // or that the servers do (vertical tab) must not shift token offsets.
    #[test]
    fn token_offsets_stay_inside_the_code() {
        for sql in [
            "EXPLAIN ANALYZE \u{3000}",
            "PREPARE AS \x0b",
            "SELECT 1\u{3000}",
            "SELECT\x0b1",
        ] {
            for d in [Dialect::Postgres, Dialect::Mysql] {
                for s in lex(sql, d).unwrap() {
                    assert!(s.tokens.iter().all(|t| t.start < s.code.len()), "{sql:?}");
                }
            }
        }
        assert_eq!(
            words("SELECT\x0b1", Dialect::Postgres),
            vec![vec!["SELECT", "1"]]
        );
    }

    #[test]
    fn unicode_identifiers_and_strings_are_decoded_as_the_server_does() {
        let tokens = |sql: &str| lex(sql, Dialect::Postgres).map(|s| s[0].tokens.clone());
        let t = tokens(r#"SELECT U&"pg_r\0065ad_file"('x')"#).unwrap();
        assert_eq!(
            (t[1].kind, t[1].text.as_str()),
            (Kind::QuotedIdent, "pg_read_file")
        );
        assert!(t[2].is_punct('('));
        // UESCAPE: the clause goes, the name is decoded with its escape.
        let t = tokens(r#"SELECT U&"a!0062!!" /* c */ UESCAPE '!' FROM t"#).unwrap();
        assert_eq!(t[1].text, "ab!");
        assert!(t[2].is_word("FROM"));
        assert_eq!(
            tokens(r#"SELECT U&'\+01F600\D83D\DE00'"#).unwrap()[1].text,
            "😀😀"
        );
        for bad in [
            r#"SELECT U&"\00""#,
            r#"SELECT U&"\0000""#,
            r#"SELECT U&"\D800""#,
            r#"SELECT U&"\DE00""#,
            r#"SELECT U&"\zzzz""#,
            r#"SELECT U&"a" UESCAPE 'b'"#,
            r#"SELECT U&"a" UESCAPE '+'"#,
            r#"SELECT U&"a" UESCAPE '!!'"#,
            r#"SELECT U&"a" UESCAPE"#,
            r#"SELECT U&"""#,
        ] {
            assert!(tokens(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Token {
                kind: Kind::Word,
                text: "PG_Read_File".into(),
                start: 0
            }
            .ident(Dialect::Postgres),
            Some("pg_read_file".into())
        );
        assert_eq!(
            Token {
                kind: Kind::QuotedIdent,
                text: "PG_Read_File".into(),
                start: 0
            }
            .ident(Dialect::Postgres),
            Some("PG_Read_File".into())
        );
        assert_eq!(
            Token {
                kind: Kind::QuotedIdent,
                text: "LOAD_File".into(),
                start: 0
            }
            .ident(Dialect::Mysql),
            Some("load_file".into())
        );
        let long = "a".repeat(70);
        assert_eq!(
            Token {
                kind: Kind::Word,
                text: long,
                start: 0
            }
            .ident(Dialect::Postgres)
            .map(|n| n.len()),
            Some(63)
        );
    }

    #[test]
    fn code_keeps_tokens_as_written_and_drops_comments() {
        let s = lex("SELECT/**/a,\n\t\"B\" -- c\nFROM t", Dialect::Postgres).unwrap();
        assert_eq!(s[0].code, "SELECT a, \"B\" FROM t");
    }
}
