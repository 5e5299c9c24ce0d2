//! Client encodings: which ones Airlock can read the way the server does,
//! and which statements would switch a session to one it cannot.
//!
//! The classifier reads a query as UTF-8. That is the server's reading
//! only while the session's client encoding is *ASCII-safe*: every byte
//! below 0x80 is the ASCII character it looks like, never the second half
//! of a multi-byte character. In SJIS, BIG5, GBK, GB18030, UHC and JOHAB
//! (MySQL: sjis, cp932, big5, gbk, gb18030) a lead byte swallows the
//! following `\` or `'`, so a string that is closed to a UTF-8 reader is
//! open to the server — or the reverse — and text the classifier took for
//! a literal runs as a second statement. UTF-16/32 and swe7 are worse
//! still. Airlock does not transcode: it refuses such encodings, at login
//! (see the proxies) and in every statement that would switch to one
//! ([`encoding_change`]), whatever the policy says.
//!
//! Names are compared the way the servers compare them: PostgreSQL drops
//! every non-alphanumeric character and folds case (`Shift-JIS` is
//! `shiftjis`); MySQL folds case. Only names on the allowlists below pass:
//! a name Airlock does not know is refused, as is a value Airlock cannot
//! evaluate (an expression, a parameter, a variable).
//!
//! This module must never decide *that a statement may run*; it only
//! finds the ones that must not.

use super::lexer::{self, Kind, LexedStatement, Token};
use super::Dialect;

/// Why a statement is refused. The text is what the agent is told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    #[error(
        "Airlock refuses the client encoding \"{value}\" ({setting}): in it, bytes that look like \
         quotes or backslashes can be part of multi-byte characters, so Airlock cannot read \
         statements the way the server does; use UTF8 (MySQL: utf8mb4)"
    )]
    Unsafe { setting: String, value: String },
    #[error(
        "Airlock refuses to set {setting} to a value it cannot evaluate before it runs \
         (only a literal encoding name is accepted); use UTF8 (MySQL: utf8mb4)"
    )]
    NotLiteral { setting: String },
    #[error(
        "Airlock refuses {what}: it cannot tell whether this changes the client encoding, \
         and an encoding other than UTF8 would let statements be read differently by the server"
    )]
    Opaque { what: String },
}

/// PostgreSQL encoding names (and aliases) that are ASCII-safe, in
/// PostgreSQL's normalised spelling (ASCII alphanumerics, lower case).
/// Left out on purpose: SJIS, SHIFT_JIS_2004, BIG5, GBK, GB18030, UHC,
/// JOHAB and their aliases (mskanji, shiftjis, win932, windows932,
/// win936, windows936, cp936, win949, windows949, win950, windows950…).
const PG_SAFE: &[&str] = &[
    "sqlascii",
    "utf8",
    "unicode",
    "euccn",
    "eucjp",
    "eucjis2004",
    "euckr",
    "euctw",
    "muleinternal",
    "latin1",
    "latin2",
    "latin3",
    "latin4",
    "latin5",
    "latin6",
    "latin7",
    "latin8",
    "latin9",
    "latin10",
    "iso88591",
    "iso88592",
    "iso88593",
    "iso88594",
    "iso88595",
    "iso88596",
    "iso88597",
    "iso88598",
    "iso88599",
    "iso885910",
    "iso885913",
    "iso885914",
    "iso885915",
    "iso885916",
    "koi8",
    "koi8r",
    "koi8u",
    "win",
    "alt",
    "abc",
    "tcvn",
    "tcvn5712",
    "vscii",
    "win866",
    "win874",
    "win1250",
    "win1251",
    "win1252",
    "win1253",
    "win1254",
    "win1255",
    "win1256",
    "win1257",
    "win1258",
    "windows866",
    "windows874",
    "windows1250",
    "windows1251",
    "windows1252",
    "windows1253",
    "windows1254",
    "windows1255",
    "windows1256",
    "windows1257",
    "windows1258",
];

/// MySQL/MariaDB character sets that are ASCII-safe (single-byte with
/// ASCII below 0x80, or multi-byte with every trailing byte ≥ 0x80).
/// Left out: big5, cp932, gbk, gb18030, sjis (trailing bytes below 0x80),
/// ucs2, utf16, utf16le, utf32 (not ASCII-based at all) and swe7 (7-bit,
/// `\` and `[]{}|` are letters), plus any name not known here.
const MYSQL_SAFE: &[&str] = &[
    "armscii8", "ascii", "binary", "cp1250", "cp1251", "cp1256", "cp1257", "cp850", "cp852",
    "cp866", "dec8", "eucjpms", "euckr", "gb2312", "geostd8", "greek", "hebrew", "hp8", "keybcs2",
    "koi8r", "koi8u", "latin1", "latin2", "latin5", "latin7", "macce", "macroman", "tis620",
    "ujis", "utf8", "utf8mb3", "utf8mb4",
];

/// Collation ids (the handshake's one-byte character set) of the safe
/// character sets, as MariaDB 10.11 and MySQL 8 number them. Ids MySQL
/// gives gb18030 (248–250) and every id neither server assigns to a safe
/// set are absent.
const MYSQL_SAFE_IDS: &[std::ops::RangeInclusive<u8>] = &[
    2..=9,     // latin2, dec8, cp850, latin1, hp8, koi8r, latin1, latin2
    11..=12,   // ascii, ujis
    14..=27, // cp1251, latin1, hebrew, (17 unused), tis620, euckr, latin7, latin2, koi8u, cp1251, gb2312, greek, cp1250, latin2
    29..=34, // cp1257, latin5, latin1, armscii8, utf8mb3, cp1250
    36..=53, // cp866, keybcs2, macce, macroman, cp852, latin7, latin7, macce, cp1250, utf8mb4, utf8mb4, latin1…, cp1251, macroman
    57..=59, // cp1256, cp1257, cp1257
    63..=81, // binary, armscii8, ascii, cp1250, cp1256, cp866, dec8, greek, hebrew, hp8, keybcs2, koi8r, koi8u, utf8mb3 (MySQL 76), latin2, latin5, latin7, cp850, cp852
    83..=83, // utf8mb3
    85..=86, // euckr, gb2312
    89..=89, // tis620
    91..=94, // ujis, geostd8, geostd8, latin1
    97..=99, // eucjpms, eucjpms, cp1250
    192..=215, // utf8mb3
    223..=247, // utf8mb3, utf8mb4
    255..=255, // utf8mb4 (MySQL 8's utf8mb4_0900_ai_ci)
];

/// Whether PostgreSQL's client encoding `name` (any spelling or alias
/// the server accepts) is ASCII-safe. Unknown names are not.
pub fn is_ascii_safe_pg(name: &str) -> bool {
    // PostgreSQL's clean_encoding_name: keep alphanumerics, fold case.
    // Non-ASCII bytes are kept here, so such a name never matches.
    let clean: String = name
        .chars()
        .filter(|c| !c.is_ascii() || c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    PG_SAFE.contains(&clean.as_str())
}

/// Whether the MySQL/MariaDB character set `name` is ASCII-safe.
pub fn is_ascii_safe_mysql_charset(name: &str) -> bool {
    MYSQL_SAFE.contains(&name.to_ascii_lowercase().as_str())
}

/// Whether the collation `name` belongs to an ASCII-safe character set
/// (a MySQL collation name begins with its character set's name and an
/// underscore; `binary` is its own).
pub fn is_ascii_safe_mysql_collation(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower == "binary" {
        return true;
    }
    lower
        .split_once('_')
        .is_some_and(|(charset, _)| is_ascii_safe_mysql_charset(charset))
}

/// Whether the collation id a MySQL client announces at login (or in
/// COM_CHANGE_USER) belongs to an ASCII-safe character set.
pub fn is_ascii_safe_mysql_collation_id(id: u16) -> bool {
    u8::try_from(id).is_ok_and(|id| MYSQL_SAFE_IDS.iter().any(|r| r.contains(&id)))
}

/// For the PostgreSQL relay: the reason to end the session when the
/// server reports (ParameterStatus) `name` = `value` and that is a client
/// encoding Airlock cannot read — set by something the classifier could
/// not see (a function, a `DO` block, a role default). `None` otherwise.
pub fn reported_parameter_refusal(name: &[u8], value: &[u8]) -> Option<String> {
    if !name.eq_ignore_ascii_case(b"client_encoding") {
        return None;
    }
    let value = String::from_utf8_lossy(value);
    (!is_ascii_safe_pg(&value)).then(|| {
        EncodingError::Unsafe {
            setting: "reported by the server".into(),
            value: value.into_owned(),
        }
        .to_string()
    })
}

/// The reason to refuse `sql` when it sets a client encoding that is not
/// ASCII-safe, or sets one to a value Airlock cannot evaluate; `None`
/// when it changes no client encoding (or only to a safe one).
///
/// Covered, PostgreSQL: `SET [SESSION|LOCAL] client_encoding`, `SET
/// NAMES`, the `SET` clause of `ALTER ROLE|DATABASE|SYSTEM` and `CREATE
/// FUNCTION`, `set_config()` in any spelling (a setting name that is not
/// a literal is refused), `UPDATE pg_settings`. MySQL: `SET NAMES`, `SET
/// CHARACTER SET`, `SET CHARSET`, `character_set_client`,
/// `character_set_connection`, `character_set_results` and
/// `collation_connection` in every `SET` spelling, also inside executable
/// comments, `PREPARE … FROM '…'` / `EXECUTE IMMEDIATE '…'` (their text
/// is checked; any other source is refused).
pub fn encoding_change(sql: &[u8], dialect: Dialect) -> Option<String> {
    check(sql, dialect).err().map(|e| e.to_string())
}

/// [`encoding_change`] with the typed reason.
pub fn check(sql: &[u8], dialect: Dialect) -> Result<(), EncodingError> {
    // Fast path: every statement this module refuses names one of these
    // words (or, in PostgreSQL, uses a `U&` identifier that could spell
    // one). Most queries name none and are not lexed a second time.
    let needles: &[&[u8]] = match dialect {
        Dialect::Postgres => &[b"encoding", b"names", b"set_config", b"pg_settings", b"u&"],
        Dialect::Mysql => &[
            b"names",
            b"charset",
            b"character",
            b"collation",
            b"prepare",
            b"immediate",
        ],
    };
    if !needles.iter().any(|n| super::contains_ignore_case(sql, n)) {
        return Ok(());
    }
    // Invalid UTF-8 is replaced character by character; ASCII bytes, which
    // carry the statement's structure, are kept as they are.
    let text = String::from_utf8_lossy(sql);
    let statements = match lexer::lex(&text, dialect) {
        Ok(statements) => statements,
        // The classifier holds such a query as `unknown`; it is refused
        // here only if it names an encoding setting somewhere, which no
        // approver should be asked to read through.
        Err(e) => {
            let named: &[&[u8]] = match dialect {
                Dialect::Postgres => &[
                    b"client_encoding",
                    b"names",
                    b"set_config",
                    b"pg_settings",
                    b"u&",
                ],
                Dialect::Mysql => &[
                    b"names",
                    b"charset",
                    b"character_set",
                    b"character set",
                    b"collation_connection",
                ],
            };
            if named.iter().any(|n| super::contains_ignore_case(sql, n)) {
                return Err(EncodingError::Opaque {
                    what: format!("a query it cannot split into statements ({e})"),
                });
            }
            return Ok(());
        }
    };
    for statement in &statements {
        match dialect {
            Dialect::Postgres => check_pg(statement)?,
            Dialect::Mysql => check_mysql(statement)?,
        }
    }
    Ok(())
}

/// A value as Airlock can evaluate it.
#[derive(Debug, PartialEq, Eq)]
enum Value {
    /// An encoding / character set / collation name.
    Name(String),
    Number(String),
    Default,
    Null,
    /// Anything else: an expression, a parameter, an escape Airlock does
    /// not decode.
    Opaque,
}

/// Reads the tokens of one statement with access to their source text.
struct Cursor<'a> {
    statement: &'a LexedStatement,
    dialect: Dialect,
}

impl<'a> Cursor<'a> {
    fn token(&self, i: usize) -> Option<&'a Token> {
        self.statement.tokens.get(i)
    }

    fn is_word(&self, i: usize, kw: &str) -> bool {
        self.token(i).is_some_and(|t| t.is_word(kw))
    }

    fn is_punct(&self, i: usize, c: char) -> bool {
        self.token(i).is_some_and(|t| t.is_punct(c))
    }

    /// The token's source text (with its prefix and quotes).
    fn raw(&self, i: usize) -> &'a str {
        let code = &self.statement.code;
        let Some(t) = self.token(i) else { return "" };
        let end = self
            .token(i + 1)
            .map_or(code.len(), |n| n.start)
            .min(code.len());
        code.get(t.start..end).unwrap_or("")
    }

    /// An identifier as the server resolves it, lower-cased (both servers
    /// compare setting and function names without regard to case).
    /// Returns the name and the index after it; `None` if not an
    /// identifier or not decodable.
    fn ident(&self, i: usize) -> Option<(String, usize)> {
        let t = self.token(i)?;
        match t.kind {
            Kind::Word => Some((t.text.to_ascii_lowercase(), i + 1)),
            // The lexer has decoded `U&"…"` (and its UESCAPE clause).
            Kind::QuotedIdent => Some((t.text.to_ascii_lowercase(), i + 1)),
            _ => None,
        }
    }

    /// The value at `i` and the index after it.
    fn value(&self, i: usize) -> (Value, usize) {
        let Some(t) = self.token(i) else {
            return (Value::Opaque, i);
        };
        match t.kind {
            Kind::Word if t.is_word("DEFAULT") => (Value::Default, i + 1),
            Kind::Word if t.is_word("NULL") => (Value::Null, i + 1),
            Kind::Word | Kind::QuotedIdent => match self.ident(i) {
                Some((name, next)) => (Value::Name(name), next),
                None => (Value::Opaque, i + 1),
            },
            Kind::Number if t.text.bytes().all(|b| b.is_ascii_digit()) => {
                (Value::Number(t.text.clone()), i + 1)
            }
            Kind::String => match self.string(i) {
                Some((s, next)) => (Value::Name(s), next),
                None => (Value::Opaque, i + 1),
            },
            _ => (Value::Opaque, i + 1),
        }
    }

    /// A string literal's exact content, when Airlock can be sure of it.
    fn string(&self, i: usize) -> Option<(String, usize)> {
        let t = self.token(i).filter(|t| t.kind == Kind::String)?;
        let raw = self.raw(i);
        let first = raw.bytes().next()?.to_ascii_uppercase();
        if matches!(first, b'E' | b'N') && raw.as_bytes().get(1) != Some(&b'\'') {
            return None;
        }
        match (self.dialect, first) {
            // Dollar quotes: the content is exactly as written.
            (Dialect::Postgres, b'$') => Some((t.text.clone(), i + 1)),
            // `U&'…'`: the lexer has decoded it, UESCAPE clause included.
            (Dialect::Postgres, b'U') if is_unicode_prefixed(raw) => Some((t.text.clone(), i + 1)),
            // Plain, E'' and N'' strings: a backslash means something
            // that depends on session settings or an escape the lexer
            // does not decode — not worth reading, so not trusted.
            (_, b'\'' | b'"' | b'E' | b'N') if !raw.contains('\\') => Some((t.text.clone(), i + 1)),
            _ => None,
        }
    }

    /// Whether the value that ended before `i` is a whole value: what
    /// follows it is not an operator or another literal (which would
    /// make it part of an expression or, in PostgreSQL, a string
    /// continued on the next line).
    fn value_ends(&self, i: usize, allowed_words: &[&str]) -> bool {
        match self.token(i) {
            None => true,
            Some(t) if t.is_punct(',') => true,
            Some(t) if t.kind == Kind::Word => match self.dialect {
                // In PostgreSQL a SET clause may be followed by the rest of
                // CREATE FUNCTION (AS, LANGUAGE…); words are never operators.
                Dialect::Postgres => true,
                Dialect::Mysql => allowed_words.iter().any(|w| t.is_word(w)),
            },
            Some(_) => false,
        }
    }
}

fn is_unicode_prefixed(raw: &str) -> bool {
    raw.len() >= 3 && raw[..2].eq_ignore_ascii_case("u&")
}

/// The content of a quoted token that starts right after its opening
/// quote: doubled quotes collapsed, up to the closing quote.
fn quoted_content(after_quote: &str, quote: char) -> Option<String> {
    let mut out = String::new();
    let mut chars = after_quote.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote {
            if chars.peek() == Some(&quote) {
                chars.next();
                out.push(quote);
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// Whether `value` is a client encoding PostgreSQL reads like Airlock.
fn pg_value_ok(value: &Value) -> bool {
    match value {
        Value::Default => true,
        Value::Name(n) => is_ascii_safe_pg(n),
        _ => false,
    }
}

fn refuse_pg(setting: &str, value: &Value) -> EncodingError {
    match value {
        Value::Name(n) => EncodingError::Unsafe {
            setting: setting.into(),
            value: n.clone(),
        },
        Value::Number(n) => EncodingError::Unsafe {
            setting: setting.into(),
            value: n.clone(),
        },
        _ => EncodingError::NotLiteral {
            setting: setting.into(),
        },
    }
}

/// Checks a comma-separated list of values from `i`.
fn pg_values(c: &Cursor<'_>, mut i: usize, setting: &str) -> Result<(), EncodingError> {
    loop {
        let (value, next) = c.value(i);
        if !pg_value_ok(&value) {
            return Err(refuse_pg(setting, &value));
        }
        if !c.value_ends(next, &[]) {
            return Err(EncodingError::NotLiteral {
                setting: setting.into(),
            });
        }
        if !c.is_punct(next, ',') {
            return Ok(());
        }
        i = next + 1;
    }
}

fn check_pg(statement: &LexedStatement) -> Result<(), EncodingError> {
    let c = Cursor {
        statement,
        dialect: Dialect::Postgres,
    };
    let n = statement.tokens.len();
    for i in 0..n {
        // `SET [SESSION|LOCAL] client_encoding {TO|=} …`, `SET NAMES …`,
        // also as the SET clause of ALTER ROLE/DATABASE/SYSTEM and CREATE
        // FUNCTION (which change the encoding of later sessions or calls).
        if c.is_word(i, "SET") {
            let mut j = i + 1;
            while c.is_word(j, "SESSION") || c.is_word(j, "LOCAL") {
                j += 1;
            }
            if c.is_word(j, "NAMES") && !c.is_punct(j + 1, '=') && !c.is_word(j + 1, "TO") {
                if c.token(j + 1).is_some() {
                    pg_values(&c, j + 1, "SET NAMES")?;
                }
                continue;
            }
            let Some((name, next)) = c.ident(j) else {
                if c.token(j).is_some_and(|t| t.kind == Kind::QuotedIdent) {
                    return Err(EncodingError::Opaque {
                        what: "a SET of a setting whose name it cannot decode".into(),
                    });
                }
                continue;
            };
            if name != "client_encoding" || c.is_punct(next, '.') {
                continue;
            }
            if c.is_word(next, "TO") || c.is_punct(next, '=') {
                pg_values(&c, next + 1, "client_encoding")?;
            } else if !c.is_word(next, "FROM") {
                return Err(EncodingError::NotLiteral {
                    setting: "client_encoding".into(),
                });
            }
        }
        // `set_config(name, value, is_local)` in any spelling or schema.
        if matches!(
            c.token(i).map(|t| t.kind),
            Some(Kind::Word | Kind::QuotedIdent)
        ) && c.is_punct(i + 1, '(')
        {
            let Some((name, _)) = c.ident(i) else {
                // A U& name that does not decode could be set_config.
                return Err(EncodingError::Opaque {
                    what: "a call to a function whose name it cannot decode".into(),
                });
            };
            if name == "set_config" {
                check_set_config(&c, i + 2)?;
            }
        }
        // The pg_settings view turns UPDATE into set_config().
        if c.is_word(i, "UPDATE") {
            let mut j = i + 1;
            if c.is_word(j, "ONLY") {
                j += 1;
            }
            if let Some((first, after)) = c.ident(j) {
                let target = if c.is_punct(after, '.') {
                    c.ident(after + 1).map(|(t, _)| t)
                } else {
                    Some(first)
                };
                if target.as_deref().is_none_or(|t| t == "pg_settings") {
                    return Err(EncodingError::Opaque {
                        what: "UPDATE of pg_settings (it changes settings, client_encoding among them)"
                            .into(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The arguments of `set_config(` starting at `i`.
fn check_set_config(c: &Cursor<'_>, i: usize) -> Result<(), EncodingError> {
    let setting = "client_encoding (via set_config)";
    let (name, next) = match c.string(i) {
        Some((s, next)) if c.is_punct(next, ',') => (s, next),
        _ => {
            return Err(EncodingError::Opaque {
                what: "set_config() with a setting name that is not a plain literal".into(),
            })
        }
    };
    if !name.eq_ignore_ascii_case("client_encoding") {
        return Ok(());
    }
    let (value, after) = match c.string(next + 1) {
        Some((s, after)) => (Value::Name(s), after),
        None => (Value::Opaque, next + 2),
    };
    if !c.is_punct(after, ',') && !c.is_punct(after, ')') {
        return Err(EncodingError::NotLiteral {
            setting: setting.into(),
        });
    }
    if pg_value_ok(&value) {
        Ok(())
    } else {
        Err(refuse_pg(setting, &value))
    }
}

/// MySQL settings that decide how the server reads (or encodes) text.
/// Only `character_set_client` decides how a statement is parsed; the
/// others are held to the same rule so that no session runs with a
/// character set Airlock cannot read.
const MYSQL_CHARSET_VARS: &[&str] = &[
    "character_set_client",
    "character_set_connection",
    "character_set_results",
];

fn check_mysql(statement: &LexedStatement) -> Result<(), EncodingError> {
    let c = Cursor {
        statement,
        dialect: Dialect::Mysql,
    };
    let n = statement.tokens.len();
    for i in 0..n {
        let after_set = i > 0 && (c.is_word(i - 1, "SET") || c.is_punct(i - 1, ','));
        let assigned = |j: usize| {
            if c.is_punct(j, '=') {
                Some(j + 1)
            } else if c.is_punct(j, ':') && c.is_punct(j + 1, '=') {
                Some(j + 2)
            } else {
                None
            }
        };
        // SET NAMES x [COLLATE y] | DEFAULT
        if after_set && c.is_word(i, "NAMES") && assigned(i + 1).is_none() {
            mysql_charset(&c, i + 1, "SET NAMES", &["COLLATE", "FOR"])?;
            continue;
        }
        // SET CHARACTER SET x | SET CHARSET x
        if after_set && c.is_word(i, "CHARACTER") && c.is_word(i + 1, "SET") {
            mysql_charset(&c, i + 2, "SET CHARACTER SET", &["FOR"])?;
            continue;
        }
        if after_set && c.is_word(i, "CHARSET") && assigned(i + 1).is_none() {
            mysql_charset(&c, i + 1, "SET CHARSET", &["FOR"])?;
            continue;
        }
        // character_set_client = x, @@session.character_set_client := x, …
        let Some((name, next)) = c.ident(i) else {
            continue;
        };
        let Some(value_at) = assigned(next) else {
            continue;
        };
        if MYSQL_CHARSET_VARS.contains(&name.as_str()) {
            let (value, after) = c.value(value_at);
            let ok = match &value {
                Value::Default => true,
                // No conversion of results: the driver gets column bytes.
                Value::Null => name == "character_set_results",
                Value::Name(n) => is_ascii_safe_mysql_charset(n),
                Value::Number(n) => n.parse().is_ok_and(is_ascii_safe_mysql_collation_id),
                Value::Opaque => false,
            };
            mysql_verdict(&c, ok, &value, after, &name, &["FOR"])?;
        } else if name == "collation_connection" {
            let (value, after) = c.value(value_at);
            let ok = match &value {
                Value::Default => true,
                Value::Name(n) => is_ascii_safe_mysql_collation(n),
                Value::Number(n) => n.parse().is_ok_and(is_ascii_safe_mysql_collation_id),
                _ => false,
            };
            mysql_verdict(&c, ok, &value, after, &name, &["FOR"])?;
        }
    }
    // Dynamic SQL: the text it runs must be visible to be checked.
    let dynamic = if c.is_word(0, "PREPARE") && c.is_word(2, "FROM") {
        Some(3)
    } else if c.is_word(0, "EXECUTE") && c.is_word(1, "IMMEDIATE") {
        Some(2)
    } else {
        None
    };
    if let Some(at) = dynamic {
        let opaque = || EncodingError::Opaque {
            what: "dynamic SQL whose text is not a literal".into(),
        };
        let literal = c
            .token(at)
            .filter(|t| t.kind == Kind::String && c.token(at + 1).is_none());
        let Some(t) = literal else {
            return Err(opaque());
        };
        // The text as read with backslash escapes and without (the
        // session's sql_mode decides): both readings must pass.
        check(t.text.as_bytes(), Dialect::Mysql)?;
        let raw = c.raw(at).trim_end();
        let quote = raw.chars().next().ok_or_else(opaque)?;
        if raw.contains('\\') && matches!(quote, '\'' | '"') {
            let plain = quoted_content(&raw[1..], quote).ok_or_else(opaque)?;
            check(plain.as_bytes(), Dialect::Mysql)?;
        }
    }
    Ok(())
}

/// The character set named at `i` after SET NAMES / CHARACTER SET.
fn mysql_charset(
    c: &Cursor<'_>,
    i: usize,
    setting: &str,
    followers: &[&str],
) -> Result<(), EncodingError> {
    let (value, after) = c.value(i);
    let ok = match &value {
        Value::Default => true,
        Value::Name(n) => is_ascii_safe_mysql_charset(n),
        _ => false,
    };
    mysql_verdict(c, ok, &value, after, setting, followers)
}

fn mysql_verdict(
    c: &Cursor<'_>,
    ok: bool,
    value: &Value,
    after: usize,
    setting: &str,
    followers: &[&str],
) -> Result<(), EncodingError> {
    if !ok {
        return Err(refuse_pg(setting, value));
    }
    if !c.value_ends(after, followers) {
        return Err(EncodingError::NotLiteral {
            setting: setting.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(sql: &str) -> Option<String> {
        encoding_change(sql.as_bytes(), Dialect::Postgres)
    }

    fn my(sql: &str) -> Option<String> {
        encoding_change(sql.as_bytes(), Dialect::Mysql)
    }

    #[test]
    fn postgres_names_are_normalised_like_the_server() {
        for safe in [
            "UTF8",
            "utf-8",
            "Unicode",
            "LATIN1",
            "iso-8859-1",
            "EUC_JP",
            "SQL_ASCII",
            "WIN1252",
            "windows-1251",
            "KOI8-R",
            "mule_internal",
        ] {
            assert!(is_ascii_safe_pg(safe), "{safe}");
        }
        for unsafe_ in [
            "SJIS",
            "sjis",
            "Shift_JIS",
            "shift-jis-2004",
            "MsKanji",
            "WIN932",
            "windows-932",
            "BIG5",
            "win950",
            "GBK",
            "CP936",
            "win936",
            "GB18030",
            "UHC",
            "WIN949",
            "Windows-949",
            "JOHAB",
            "auto",
            "",
            "utf８",
        ] {
            assert!(!is_ascii_safe_pg(unsafe_), "{unsafe_}");
        }
    }

    #[test]
    fn mysql_names_and_ids() {
        for safe in [
            "utf8mb4", "UTF8", "utf8mb3", "latin1", "ascii", "binary", "ujis", "euckr",
        ] {
            assert!(is_ascii_safe_mysql_charset(safe), "{safe}");
        }
        for unsafe_ in [
            "gbk", "GBK", "big5", "sjis", "cp932", "gb18030", "ucs2", "utf16", "utf16le", "utf32",
            "swe7", "filename", "",
        ] {
            assert!(!is_ascii_safe_mysql_charset(unsafe_), "{unsafe_}");
        }
        for id in [8u16, 33, 45, 46, 63, 83, 224, 246, 255] {
            assert!(is_ascii_safe_mysql_collation_id(id), "{id}");
        }
        for id in [
            0u16, 1, 10, 13, 28, 35, 54, 56, 60, 62, 84, 87, 88, 95, 96, 128, 160, 248, 249, 250,
            256, 1000,
        ] {
            assert!(!is_ascii_safe_mysql_collation_id(id), "{id}");
        }
        assert!(is_ascii_safe_mysql_collation("utf8mb4_unicode_ci"));
        assert!(!is_ascii_safe_mysql_collation("gbk_chinese_ci"));
        assert!(!is_ascii_safe_mysql_collation("uca1400_ai_ci"));
    }

    #[test]
    fn postgres_every_way_to_switch_is_refused() {
        for sql in [
            "SET client_encoding = 'SJIS'",
            "SET client_encoding TO sjis",
            "set CLIENT_ENCODING to 'Shift_JIS'",
            "SET SESSION client_encoding TO 'BIG5'",
            "SET LOCAL client_encoding = 'GBK'",
            "SET \"client_encoding\" = 'GB18030'",
            "SET \"CLIENT_ENCODING\" = 'UHC'",
            "SET U&\"client\\005fencoding\" TO 'JOHAB'",
            "SET U&\"client!005fencoding\" UESCAPE '!' TO 'win932'",
            "SET client_encoding = 'UTF8', 'SJIS'",
            "SET client_encoding = $$SJIS$$",
            "SET client_encoding = U&'\\0053JIS'",
            "SET client_encoding = E'S\\x4aIS'",
            "SET client_encoding = 'S'\n'JIS'",
            "SET client_encoding = $1",
            "SET NAMES 'SJIS'",
            "set names win936",
            "SELECT 1; SET client_encoding = 'SJIS'",
            "/* x */ SET client_encoding = 'SJIS'",
            "SELECT set_config('client_encoding', 'SJIS', false)",
            "SELECT pg_catalog.set_config('CLIENT_ENCODING', 'BIG5', true)",
            "SELECT \"set_config\"('client_encoding', 'GBK', false)",
            "SELECT U&\"set\\005fconfig\"('client_encoding', 'GBK', false)",
            "SELECT set_config(U&'client\\005fencoding', 'GBK', false)",
            "SELECT set_config($$client_encoding$$, $$SJIS$$, false)",
            "SELECT set_config('client_encoding', 'S' || 'JIS', false)",
            "SELECT set_config('client_encoding', $1, false)",
            "SELECT set_config(name, 'SJIS', false) FROM (VALUES ('client_encoding')) v(name)",
            "SELECT set_config(E'client\\x5fencoding', 'SJIS', false)",
            "SELECT set_config($1, $2, false)",
            "SELECT set_config(setting_name => 'client_encoding', new_value => 'SJIS', is_local => false)",
            "ALTER ROLE agent SET client_encoding = 'SJIS'",
            "ALTER ROLE agent IN DATABASE test SET client_encoding TO 'GBK'",
            "ALTER DATABASE test SET client_encoding = 'BIG5'",
            "ALTER SYSTEM SET client_encoding = 'SJIS'",
            "CREATE FUNCTION f() RETURNS int SET client_encoding = 'SJIS' AS 'select 1' LANGUAGE sql",
            "UPDATE pg_settings SET setting = 'SJIS' WHERE name = 'client_encoding'",
            "UPDATE pg_catalog.pg_settings SET setting = 'x' WHERE name LIKE 'client%'",
            "WITH u AS (UPDATE ONLY \"pg_settings\" SET setting = 'x' RETURNING 1) SELECT 1",
        ] {
            assert!(pg(sql).is_some(), "not refused: {sql}");
        }
    }

    #[test]
    fn postgres_safe_changes_and_ordinary_statements_pass() {
        for sql in [
            "SELECT 1",
            "SET client_encoding = 'UTF8'",
            "SET client_encoding TO 'LATIN1'",
            "SET client_encoding TO DEFAULT",
            "RESET client_encoding",
            "SET NAMES 'UTF8'",
            "SET NAMES",
            "SET search_path = public",
            "SELECT set_config('work_mem', '1MB', false)",
            "SELECT set_config('client_encoding', 'UTF8', false)",
            "SELECT current_setting('client_encoding')",
            "SHOW client_encoding",
            "SELECT * FROM pg_settings WHERE name = 'client_encoding'",
            "UPDATE t SET names = 'x'",
            "SELECT 'SET client_encoding = SJIS'",
            "CREATE FUNCTION f() RETURNS int SET client_encoding FROM CURRENT AS 'select 1' LANGUAGE sql",
            "SET standard_conforming_strings = off",
            "SET backslash_quote = on",
            "SET escape_string_warning = off",
        ] {
            assert_eq!(pg(sql), None, "refused: {sql}");
        }
    }

    #[test]
    fn mysql_every_way_to_switch_is_refused() {
        for sql in [
            "SET NAMES gbk",
            "SET NAMES 'sjis'",
            "SET NAMES \"big5\"",
            "SET NAMES `cp932`",
            "set names GB18030",
            "SET NAMES gbk COLLATE gbk_bin",
            "SET NAMES utf16",
            "SET CHARACTER SET gbk",
            "SET CHARSET sjis",
            "SET character_set_client = gbk",
            "SET @@character_set_client = 'big5'",
            "SET @@session.character_set_client := sjis",
            "SET SESSION character_set_client = gbk",
            "SET LOCAL character_set_client = gbk",
            "SET GLOBAL character_set_client = gbk",
            "SET `character_set_client` = gbk",
            "SET character_set_client = 28",
            "SET character_set_client = @v",
            "SET character_set_client = (SELECT 'gbk')",
            "SET character_set_client = CONCAT('g', 'bk')",
            "SET character_set_client = 'g' 'bk'",
            "SET character_set_client = 'g\\bk'",
            "SET character_set_connection = gbk",
            "SET collation_connection = gbk_chinese_ci",
            "SET character_set_results = utf16",
            "SET a = 1, NAMES gbk",
            "SET @x = 1, character_set_client = sjis",
            "/*!40101 SET NAMES gbk */",
            "/*!40101 SET character_set_client = gbk */",
            "/*M!100100 SET NAMES sjis */",
            "SELECT 1; SET NAMES gbk",
            "SET STATEMENT character_set_client = gbk FOR SELECT 1",
            "PREPARE s FROM 'SET NAMES gbk'",
            "PREPARE s FROM @q",
            "EXECUTE IMMEDIATE 'SET NAMES sjis'",
            "EXECUTE IMMEDIATE CONCAT('SET NAMES ', 'gbk')",
            "CREATE PROCEDURE p() BEGIN SET NAMES gbk; END",
            "SELECT 'a\\'' ; SET NAMES gbk",
        ] {
            assert!(my(sql).is_some(), "not refused: {sql}");
        }
    }

    #[test]
    fn mysql_safe_changes_and_ordinary_statements_pass() {
        for sql in [
            "SELECT 1",
            "SET NAMES utf8mb4",
            "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
            "SET NAMES 'latin1'",
            "SET NAMES DEFAULT",
            "/*!40101 SET NAMES utf8 */",
            "SET CHARACTER SET utf8mb4",
            "SET character_set_client = DEFAULT",
            "SET character_set_results = NULL",
            "SET @@session.character_set_client = utf8mb4",
            "SET collation_connection = utf8mb4_general_ci",
            "SET autocommit = 1, NAMES utf8mb4",
            "SELECT @@character_set_client",
            "CREATE TABLE t (a varchar(10) CHARACTER SET gbk)",
            "ALTER TABLE t CONVERT TO CHARACTER SET gbk",
            "CREATE DATABASE d DEFAULT CHARSET = gbk",
            "SELECT CONVERT(a USING gbk) FROM t",
            "UPDATE t SET names = 'x'",
            "PREPARE s FROM 'SELECT 1'",
            "EXECUTE IMMEDIATE 'SELECT ?'",
            "SELECT 'SET NAMES gbk'",
            "PREPARE s FROM 'SELECT \\'x\\''; EXECUTE s",
        ] {
            assert_eq!(my(sql), None, "refused: {sql}");
        }
    }

    #[test]
    fn refusals_name_the_encoding_and_the_way_out() {
        let why = pg("SET client_encoding = 'SJIS'").unwrap_or_default();
        assert!(
            why.contains("\"sjis\"") || why.contains("\"SJIS\""),
            "{why}"
        );
        assert!(why.contains("UTF8"), "{why}");
        let why = my("SET NAMES gbk").unwrap_or_default();
        assert!(why.contains("gbk") && why.contains("utf8mb4"), "{why}");
    }

    #[test]
    fn the_server_reports_an_unsafe_encoding() {
        assert!(reported_parameter_refusal(b"client_encoding", b"SJIS").is_some());
        assert!(reported_parameter_refusal(b"client_encoding", b"UTF8").is_none());
        assert!(reported_parameter_refusal(b"TimeZone", b"SJIS").is_none());
    }
}
