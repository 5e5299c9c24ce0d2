//! Masking of MySQL / MariaDB result rows, by column type, in the text
//! protocol (COM_QUERY) and the binary protocol (COM_STMT_EXECUTE), so
//! that a masked value is still a valid value of its column.
//!
//! This module owns the value encodings inside a row payload and the
//! reading of column definitions. It never sees packet headers: the relay
//! in `proxy::mysql` strips the framing, hands over logical payloads and
//! re-frames what comes back, so a value may change length. It never
//! rewrites a column definition, and it never forwards bytes it did not
//! read: a row that does not parse against its columns goes out as a row
//! of NULLs.
//!
//! # Rules per column type
//!
//! | type | text protocol | binary protocol |
//! |---|---|---|
//! | VARCHAR, VAR_STRING, STRING, ENUM, SET, TINY/MEDIUM/LONG/BLOB with a text charset | free text; JSON-looking text as JSON; text in UTF-16/UTF-32 (ucs2, utf16, utf16le, utf32: a column's charset, `CONVERT(… USING utf16)`, `character_set_results = NULL`) decoded, masked and encoded back | same |
//! | the same with charset `binary` (63) | printable UTF-8 as text, UTF-16/32 text as such, other bytes with a finding become NULL | same |
//! | JSON | JSON leaves | same |
//! | TINY, SHORT, INT24, LONG, LONGLONG | a number that fits the width and sign | same width, little-endian |
//! | DECIMAL, NEWDECIMAL | by its decimal forms; a number with the value's integer digits at most and its scale | same (sent as text) |
//! | FLOAT, DOUBLE | by the decimal forms of the value (`4.111111111111111e15`); a number | a float of the same width |
//! | BIT | the big-endian number; a number of the same byte length | same |
//! | DATE, TIME, DATETIME, TIMESTAMP, YEAR, GEOMETRY, NULL | not scanned | not scanned |
//! | anything else | by content, failing closed | unless NULL, the row cannot be read past it and becomes NULLs |
//!
//! Replacements are the engine's: labels (`<EMAIL>`), partial values and
//! tokens. In a CHAR(n), ENUM or SET column one may be longer than the
//! column's declared length (a `<SE_PERSONNUMMER>` label in a CHAR(13)).
//! Drivers read string values by their length prefix and none checks the
//! declared length; cutting a label or token to fit would make it
//! unreadable or make tokens collide, so they are kept whole.

use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::masker::{Masked, Masker, Scratch, Tally};
use super::value::{
    fail_closed, fit_int, int_max, is_printable, mask_float, mask_message, mask_number_forms,
    mask_text_value, mask_wide_text, may_be_wide, CleanDescriptions, MaskStats, RowOutcome,
};

/// The column types of the protocol (`enum_field_types`).
pub mod types {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
    /// MySQL's marker for "no valid type"; never sent by a server.
    pub const INVALID: u8 = 243;
}

/// Column flag: the integer column is unsigned.
pub const UNSIGNED_FLAG: u16 = 32;
/// Column flag: the integer is shown padded with zeros to its width.
pub const ZEROFILL_FLAG: u16 = 64;
/// The collation id of the `binary` character set: raw bytes, not text.
pub const BINARY_CHARSET: u16 = 63;

/// What Airlock reads of one column definition (ColumnDefinition41).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlColumn {
    /// The column's name as the client sees it (its alias).
    pub name: String,
    /// The table column it comes from (`org_name`), empty for an
    /// expression: `SELECT email AS e` masks under `e` and flags `email`.
    pub org_name: String,
    pub column_type: u8,
    /// The collation id the values are encoded in.
    pub charset: u16,
    pub flags: u16,
    /// The scale of a DECIMAL; the fractional digits of temporal types.
    pub decimals: u8,
}

impl MysqlColumn {
    /// A column whose definition could not be read: its values are masked
    /// as a type Airlock does not know, so they fail closed.
    pub fn unknown(name: impl Into<String>) -> MysqlColumn {
        MysqlColumn {
            name: name.into(),
            org_name: String::new(),
            column_type: types::INVALID,
            charset: BINARY_CHARSET,
            flags: 0,
            decimals: 0,
        }
    }
}

/// Reads a ColumnDefinition41 payload: six length-encoded strings
/// (catalog, schema, table, org_table, name, org_name), the length of the
/// fixed fields (always 12), then charset, column length, type, flags,
/// decimals and two filler bytes. Bytes after those (the default value
/// that COM_FIELD_LIST appends) are ignored. `None` when the payload is
/// not one; such a column is best described as [`MysqlColumn::unknown`],
/// whose values fail closed.
///
/// MariaDB's extended metadata (a type name before the fixed fields) has
/// no place here: Airlock never negotiates it.
pub fn parse_column_definition(payload: &[u8]) -> Option<MysqlColumn> {
    parse_column_definition_with(payload, false)
}

/// [`parse_column_definition`] for a session that negotiated MariaDB's
/// `MARIADB_CLIENT_EXTENDED_METADATA`: a length-encoded block of extended
/// type information (`format=json`, a geometry's type name…) follows the
/// original column name. It must be skipped by its length: read as the
/// fixed block's length marker instead, a block of 12 bytes would make the
/// type and character set come from the wrong bytes.
pub fn parse_column_definition_with(
    payload: &[u8],
    extended_metadata: bool,
) -> Option<MysqlColumn> {
    let mut at = 0;
    let (mut name, mut org_name) = (&[][..], &[][..]);
    let strings = if extended_metadata { 7 } else { 6 };
    for i in 0..strings {
        let range = lenenc_str(payload, &mut at)?;
        match i {
            4 => name = &payload[range],
            5 => org_name = &payload[range],
            _ => {}
        }
    }
    if lenenc_int(payload, &mut at)? != 0x0c {
        return None;
    }
    let fixed = payload.get(at..at.checked_add(12)?)?;
    Some(MysqlColumn {
        name: String::from_utf8_lossy(name).into_owned(),
        org_name: String::from_utf8_lossy(org_name).into_owned(),
        charset: u16::from_le_bytes([fixed[0], fixed[1]]),
        column_type: fixed[6],
        flags: u16::from_le_bytes([fixed[7], fixed[8]]),
        decimals: fixed[9],
    })
}

/// How Airlock masks a column, from its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Cannot hold a detectable value in a form the detectors read.
    Skip,
    /// Text in the column's (text) character set.
    Text,
    /// A string or blob in the `binary` character set.
    Binary,
    Json,
    /// An integer of `width` bytes (INT24: 3, though sent in 4).
    Int {
        width: u8,
        unsigned: bool,
        zerofill: bool,
    },
    Decimal,
    /// FLOAT (4) or DOUBLE (8).
    Float {
        width: u8,
    },
    /// BIT(n): up to eight bytes, a big-endian number.
    Bit,
    /// GEOMETRY: an SRID and WKB, whose coordinates are doubles.
    Geometry,
    /// A type Airlock does not know.
    Other,
}

/// Where a value ends in a binary-protocol row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Little-endian, this many bytes.
    Fixed(usize),
    /// A length byte, one of these values, then that many bytes.
    Temporal(&'static [u8]),
    /// A length-encoded string.
    LenEnc,
    /// No bytes at all (the NULL type, when not flagged NULL).
    Empty,
    /// Not known: a row with such a value cannot be read past it.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    class: Class,
    layout: Layout,
}

fn plan_of(column: &MysqlColumn) -> Plan {
    use types::*;
    let int = |width: u8| Class::Int {
        width,
        unsigned: column.flags & UNSIGNED_FLAG != 0,
        zerofill: column.flags & ZEROFILL_FLAG != 0,
    };
    let string = if column.charset == BINARY_CHARSET {
        Class::Binary
    } else {
        Class::Text
    };
    let (class, layout) = match column.column_type {
        TINY => (int(1), Layout::Fixed(1)),
        SHORT => (int(2), Layout::Fixed(2)),
        INT24 => (int(3), Layout::Fixed(4)),
        LONG => (int(4), Layout::Fixed(4)),
        LONGLONG => (int(8), Layout::Fixed(8)),
        DECIMAL | NEWDECIMAL => (Class::Decimal, Layout::LenEnc),
        JSON => (Class::Json, Layout::LenEnc),
        VARCHAR | VAR_STRING | STRING | ENUM | SET | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | BLOB => {
            (string, Layout::LenEnc)
        }
        // Floats hold integers exactly up to 2^53: `CAST(card AS DOUBLE)`
        // is the card. They are read by their shortest decimal rendering,
        // the digits a client prints, in both protocols.
        FLOAT => (Class::Float { width: 4 }, Layout::Fixed(4)),
        DOUBLE => (Class::Float { width: 8 }, Layout::Fixed(8)),
        // Not scanned, as PostgreSQL's dates and geometric types are not:
        // - YEAR: four digits at most.
        YEAR => (Class::Skip, Layout::Fixed(2)),
        // - DATE, DATETIME, TIMESTAMP, TIME: calendar fields, which the
        //   detectors leave alone by design; in the binary protocol a
        //   length byte (0, 4, 7 or 11; TIME 0, 8 or 12) and fields.
        DATE | DATETIME | TIMESTAMP => (Class::Skip, Layout::Temporal(&[0, 4, 7, 11])),
        TIME => (Class::Skip, Layout::Temporal(&[0, 8, 12])),
        // BIT(64) holds a card as a big-endian number.
        BIT => (Class::Bit, Layout::LenEnc),
        // GEOMETRY: an SRID and WKB; `POINT(card, 0)` carries the card
        // as a coordinate.
        GEOMETRY => (Class::Geometry, Layout::LenEnc),
        // - NULL: has no value.
        NULL => (Class::Skip, Layout::Empty),
        // NEWDATE and the *2 temporal types are server-internal; VECTOR and
        // whatever comes next are not known here.
        _ => (Class::Other, Layout::Unknown),
    };
    Plan { class, layout }
}

/// The per-session hook every MySQL result row passes through.
#[derive(Debug, Default)]
pub struct MysqlRowMasker {
    engine: Option<Arc<Masker>>,
    columns: Vec<MysqlColumn>,
    plans: Vec<Plan>,
    tallies: Vec<Tally>,
    /// Findings in error messages.
    message_tally: Tally,
    scratch: Scratch,
    rows_seen: u64,
    clean_definitions: CleanDescriptions,
}

impl MysqlRowMasker {
    /// A masker with no detectors: every row is forwarded unchanged (roles
    /// exempted by the policy).
    pub fn pass_through() -> Self {
        Self::default()
    }

    pub fn new(engine: Arc<Masker>) -> Self {
        MysqlRowMasker {
            engine: Some(engine),
            ..Self::default()
        }
    }

    pub fn is_active(&self) -> bool {
        self.engine.is_some()
    }

    /// The columns of the rows that follow, from the column definitions of
    /// a result set (or of COM_STMT_PREPARE's answer, for the rows of its
    /// executions).
    pub fn set_columns(&mut self, columns: &[MysqlColumn]) {
        if self.columns.as_slice() != columns {
            self.columns = columns.to_vec();
            self.plans = columns.iter().map(plan_of).collect();
        }
        if self.tallies.len() < columns.len() {
            self.tallies.resize(columns.len(), Tally::default());
        }
    }

    pub fn rows_seen(&self) -> u64 {
        self.rows_seen
    }

    /// The masking counts since the last call, by column name.
    pub fn take_stats(&mut self) -> MaskStats {
        let mut stats = MaskStats::default();
        let columns = &self.columns;
        // The original name of each masked column whose label differs.
        for (c, tally) in columns.iter().zip(&self.tallies) {
            if !tally.is_empty() && !c.org_name.is_empty() && c.org_name != c.name {
                stats.originals.push(c.org_name.clone());
            }
        }
        stats.take_columns(&mut self.tallies, |i| {
            columns.get(i).map(|c| c.name.as_str())
        });
        stats.take_named("(messages)", &mut self.message_tally);
        stats
    }

    /// Masks the message of an ERR packet: servers quote offending values
    /// ("Duplicate entry 'jane@example.org' for key 'email'", "Incorrect
    /// integer value: '4111…'"). `None` when nothing changes. The relay
    /// owns the rest of the packet.
    pub fn mask_message_text(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        let MysqlRowMasker {
            engine,
            scratch,
            message_tally,
            ..
        } = self;
        mask_message(engine.as_deref()?, text, scratch, message_tally)
    }

    /// An OK packet's session-state changes (`CLIENT_SESSION_TRACK`) with
    /// the values in them masked: a tracked system variable's new value can
    /// be any value the session computed (`SET @@session.sql_select_limit =
    /// (SELECT card …)`). `None` to forward them as they came; state that
    /// cannot be read is dropped whole (`Some` of nothing), never passed
    /// unscanned.
    pub fn mask_session_state(&mut self, state: &[u8]) -> Option<Vec<u8>> {
        let MysqlRowMasker {
            engine,
            scratch,
            message_tally,
            ..
        } = self;
        let engine = engine.as_deref()?;
        let mut out = BytesMut::with_capacity(state.len() + 16);
        let mut changed = false;
        let mut at = 0;
        while at < state.len() {
            let kind = state[at];
            at += 1;
            let Some(data) = lenenc_str(state, &mut at) else {
                return Some(Vec::new());
            };
            let body = &state[data];
            // Every entry's strings are scanned: a system variable's name
            // and value, a schema name, transaction characteristics.
            let mut rebuilt = BytesMut::with_capacity(body.len());
            let mut inner = 0;
            if kind == 2 || kind == 3 {
                // State-change flag ("1") and GTIDs: no values.
                rebuilt.put_slice(body);
                inner = body.len();
            }
            while inner < body.len() {
                let Some(range) = lenenc_str(body, &mut inner) else {
                    return Some(Vec::new());
                };
                match mask_message(engine, &body[range.clone()], scratch, message_tally) {
                    Some(masked) => {
                        changed = true;
                        put_lenenc_str(&mut rebuilt, &masked);
                    }
                    None => put_lenenc_str(&mut rebuilt, &body[range]),
                }
            }
            out.put_u8(kind);
            put_lenenc_str(&mut out, &rebuilt);
        }
        changed.then(|| out.to_vec())
    }

    /// A column definition with its names masked (catalog, schema, table,
    /// original table, name, original name); `None` to forward it as it
    /// came. Names are written in statements, but a statement built by
    /// dynamic SQL (`PREPARE s FROM CONCAT('SELECT 1 AS `', email, '`')`)
    /// names columns and tables by data. One that cannot be read is
    /// forwarded as it came: its values fail closed by
    /// [`MysqlColumn::unknown`], and a name Airlock cannot find is no
    /// value it would mask.
    pub fn mask_column_definition(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let MysqlRowMasker {
            engine,
            scratch,
            message_tally,
            clean_definitions,
            ..
        } = self;
        let engine = engine.as_deref()?;
        if clean_definitions.contains(payload) {
            return None;
        }
        let mut at = 0;
        let mut names: [Option<Range<usize>>; 6] = Default::default();
        for name in &mut names {
            *name = Some(lenenc_str(payload, &mut at)?);
        }
        let mut masked: [Option<Vec<u8>>; 6] = Default::default();
        let mut changed = false;
        for (range, out) in names.iter().zip(&mut masked) {
            let range = range.clone()?;
            *out = mask_message(engine, &payload[range], scratch, message_tally);
            changed |= out.is_some();
        }
        if !changed {
            clean_definitions.insert(payload);
            return None;
        }
        let mut out = BytesMut::with_capacity(payload.len() + 16);
        for (range, masked) in names.iter().zip(&masked) {
            let range = range.clone()?;
            put_lenenc_str(&mut out, masked.as_deref().unwrap_or(&payload[range]));
        }
        out.put_slice(&payload[at..]);
        Some(out.to_vec())
    }

    /// Inspects one text-protocol row: each value a length-encoded string,
    /// or `0xFB` for NULL. `row` is the packet payload.
    pub fn mask_text_row(&mut self, row: &Bytes) -> RowOutcome {
        self.rows_seen += 1;
        let MysqlRowMasker {
            engine,
            plans,
            tallies,
            scratch,
            ..
        } = self;
        let Some(engine) = engine.as_deref() else {
            return RowOutcome::Unchanged;
        };
        if !text_row_parses(row, plans.len()) {
            return unreadable_row(plans.len(), false);
        }
        // A row with nothing to mask costs the scan and no allocation:
        // `edits` allocates on its first push.
        let mut edits: Vec<(usize, Masked)> = Vec::new();
        let mut at = 0;
        let lent = scratch.lend_phone_memo();
        for (i, plan) in plans.iter().enumerate() {
            let Some(Some(value)) = text_value(row, &mut at) else {
                continue;
            };
            let outcome =
                mask_text_encoded(engine, plan.class, &row[value], scratch, &mut tallies[i]);
            if outcome != Masked::Unchanged {
                edits.push((i, outcome));
            }
        }
        scratch.return_phone_memo(lent);
        if edits.is_empty() {
            return RowOutcome::Unchanged;
        }
        let mut out = BytesMut::with_capacity(row.len() + 64);
        let mut edits = edits.into_iter().peekable();
        let mut at = 0;
        for i in 0..plans.len() {
            let start = at;
            let _ = text_value(row, &mut at);
            match edits.next_if(|(e, _)| *e == i) {
                Some((_, Masked::Null)) => out.put_u8(NULL_VALUE),
                Some((_, Masked::Replaced(v))) => put_lenenc_str(&mut out, &v),
                // Unchanged values (and NULLs) are copied with their prefix.
                _ => out.put_slice(&row[start..at]),
            }
        }
        RowOutcome::Rewritten(out.freeze())
    }

    /// Inspects one binary-protocol row: a `0x00` header, a NULL bitmap
    /// whose first two bits are reserved, then each non-NULL value in its
    /// type's encoding. `row` is the packet payload.
    pub fn mask_binary_row(&mut self, row: &Bytes) -> RowOutcome {
        self.rows_seen += 1;
        let MysqlRowMasker {
            engine,
            plans,
            tallies,
            scratch,
            ..
        } = self;
        let Some(engine) = engine.as_deref() else {
            return RowOutcome::Unchanged;
        };
        let n = plans.len();
        let values_at = 1 + bitmap_len(n);
        if !binary_row_parses(row, plans) {
            return unreadable_row(n, true);
        }
        let mut edits: Vec<(usize, Masked)> = Vec::new();
        let mut at = values_at;
        let lent = scratch.lend_phone_memo();
        for (i, plan) in plans.iter().enumerate() {
            if is_null(row, i) {
                continue;
            }
            let Some(value) = binary_value(row, plan.layout, &mut at) else {
                continue;
            };
            let outcome = match (plan.class, plan.layout) {
                (
                    Class::Int {
                        width, unsigned, ..
                    },
                    Layout::Fixed(_),
                ) => mask_int_binary(
                    engine,
                    &row[value],
                    width,
                    unsigned,
                    scratch,
                    &mut tallies[i],
                ),
                (Class::Float { width }, Layout::Fixed(_)) => {
                    mask_float_binary(engine, &row[value], width, scratch, &mut tallies[i])
                }
                (class, Layout::LenEnc) => {
                    let mut start = value.start;
                    let content = match lenenc_str(row, &mut start) {
                        Some(content) => content,
                        None => continue,
                    };
                    mask_text_encoded(engine, class, &row[content], scratch, &mut tallies[i])
                }
                _ => Masked::Unchanged,
            };
            if outcome != Masked::Unchanged {
                edits.push((i, outcome));
            }
        }
        scratch.return_phone_memo(lent);
        if edits.is_empty() {
            return RowOutcome::Unchanged;
        }
        let mut out = BytesMut::with_capacity(row.len() + 64);
        out.put_slice(&row[..values_at]);
        let mut edits = edits.into_iter().peekable();
        let mut at = values_at;
        for (i, plan) in plans.iter().enumerate() {
            if is_null(row, i) {
                continue;
            }
            let start = at;
            let _ = binary_value(row, plan.layout, &mut at);
            match edits.next_if(|(e, _)| *e == i) {
                Some((_, Masked::Null)) => set_null(&mut out, i),
                Some((_, Masked::Replaced(v))) if plan.layout == Layout::LenEnc => {
                    put_lenenc_str(&mut out, &v)
                }
                // A fixed-width substitute has the width of the value.
                Some((_, Masked::Replaced(v))) => out.put_slice(&v),
                _ => out.put_slice(&row[start..at]),
            }
        }
        RowOutcome::Rewritten(out.freeze())
    }
}

/// The marker of a NULL value in a text-protocol row.
const NULL_VALUE: u8 = 0xFB;

/// Masks one value sent as text (every value of a text-protocol row, and
/// the length-encoded values of a binary-protocol row).
fn mask_text_encoded(
    engine: &Masker,
    class: Class,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    match class {
        Class::Skip => Masked::Unchanged,
        Class::Text => match mask_text_value(engine, value, scratch, tally) {
            // A wide character set: ASCII has zero bytes beside it there.
            Masked::Unchanged if may_be_wide(value) => {
                mask_wide_text(engine, value, scratch, tally)
            }
            other => other,
        },
        Class::Binary => mask_binary_string(engine, value, scratch, tally),
        Class::Json => engine.mask_json(value, scratch, tally),
        Class::Int {
            width,
            unsigned,
            zerofill,
        } => {
            let fitted = fit_int(
                engine.mask_number(value, scratch, tally),
                int_max(width, unsigned),
            );
            match fitted {
                // ZEROFILL columns are shown padded to their width; the
                // substitute is padded as the value was.
                Masked::Replaced(v) if zerofill && v.len() < value.len() => {
                    let mut padded = vec![b'0'; value.len() - v.len()];
                    padded.extend_from_slice(&v);
                    Masked::Replaced(padded)
                }
                other => other,
            }
        }
        Class::Decimal => fit_decimal(mask_number_forms(engine, value, scratch, tally), value),
        Class::Float { .. } => mask_number_forms(engine, value, scratch, tally),
        Class::Bit => mask_bit(engine, value, scratch, tally),
        Class::Geometry => mask_geometry(engine, value, scratch, tally),
        Class::Other => {
            let numeric = !value.is_empty()
                && value
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b.is_ascii_digit() || (i == 0 && b == b'-') || b == b'.');
            if numeric {
                engine.mask_number(value, scratch, tally)
            } else {
                mask_binary_string(engine, value, scratch, tally)
            }
        }
    }
}

/// A value in the `binary` character set (BINARY, VARBINARY, BLOB): text
/// kept as bytes is masked as text; anything else with a finding becomes
/// NULL, since a replacement spliced into it would corrupt it. BINARY(n)
/// pads with zero bytes; the padding is kept after the text it follows.
fn mask_binary_string(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let text_len = value.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let (text, padding) = value.split_at(text_len);
    if !is_printable(text) {
        return match fail_closed(engine, value, scratch, tally) {
            Masked::Unchanged if may_be_wide(value) => {
                mask_wide_text(engine, value, scratch, tally)
            }
            other => other,
        };
    }
    match mask_text_value(engine, text, scratch, tally) {
        Masked::Replaced(mut v) => {
            v.extend_from_slice(padding);
            Masked::Replaced(v)
        }
        other => other,
    }
}

/// A DECIMAL substitute that fits its column: no more integer digits than
/// the value had (so no more than the precision allows) and the value's
/// scale — the server writes exactly `decimals` fractional digits.
fn fit_decimal(masked: Masked, original: &[u8]) -> Masked {
    let Masked::Replaced(digits) = masked else {
        return masked;
    };
    let (int_part, fraction) = match original.iter().position(|&b| b == b'.') {
        Some(dot) => (&original[..dot], &original[dot + 1..]),
        None => (original, &[][..]),
    };
    let int_digits = int_part
        .iter()
        .filter(|b| b.is_ascii_digit())
        .count()
        .max(1);
    let kept = &digits[digits.len().saturating_sub(int_digits)..];
    let start = kept
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(kept.len().saturating_sub(1));
    let mut out = Vec::with_capacity(int_digits + fraction.len() + 1);
    out.extend_from_slice(&kept[start..]);
    if out.is_empty() {
        out.push(b'0');
    }
    if !fraction.is_empty() {
        out.push(b'.');
        out.resize(out.len() + fraction.len(), b'0');
    }
    Masked::Replaced(out)
}

/// A binary-protocol integer (little-endian, 1, 2, 4 or 8 bytes): its
/// decimal text is masked as a number, and a substitute goes back in the
/// same width, since a fixed-width value cannot change length.
fn mask_int_binary(
    engine: &Masker,
    value: &[u8],
    width: u8,
    unsigned: bool,
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    // Formatted on the stack: this runs for every integer of every row.
    let mut buf = [0u8; 21];
    let Some(text) = le_int_decimal(value, unsigned, &mut buf) else {
        return Masked::Null;
    };
    match fit_int(
        engine.mask_number(text, scratch, tally),
        int_max(width, unsigned),
    ) {
        Masked::Replaced(v) => {
            let n: u64 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Masked::Replaced(n.to_le_bytes()[..value.len()].to_vec())
        }
        other => other,
    }
}

/// A binary-protocol FLOAT or DOUBLE (little-endian IEEE): masked by the
/// decimal forms of its value; a substitute is a float of the same width.
fn mask_float_binary(
    engine: &Masker,
    value: &[u8],
    width: u8,
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let n = match (width, value.len()) {
        (4, 4) => f64::from(f32::from_le_bytes([value[0], value[1], value[2], value[3]])),
        (8, 8) => f64::from_le_bytes(value.try_into().expect("eight bytes")),
        _ => return Masked::Null,
    };
    match mask_float(engine, n, width == 4, scratch, tally) {
        Some(Masked::Replaced(digits)) => {
            let n: f64 = std::str::from_utf8(&digits)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0);
            Masked::Replaced(if width == 4 {
                (n as f32).to_le_bytes().to_vec()
            } else {
                n.to_le_bytes().to_vec()
            })
        }
        Some(other) => other,
        None => Masked::Null,
    }
}

/// A GEOMETRY value (the same bytes in both protocols): a four-byte SRID,
/// then WKB. Every coordinate is a double and is masked as a DOUBLE
/// column's value is, in the byte order its geometry names; WKB that does
/// not parse to its last byte fails closed (NULL).
fn mask_geometry(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let mut coordinates = Vec::new();
    let parsed = value.len() >= 4 && {
        let mut at = 4;
        wkb_coordinates(value, &mut at, 0, &mut coordinates) && at == value.len()
    };
    if !parsed {
        return if value.is_empty() {
            Masked::Unchanged
        } else {
            Masked::Null
        };
    }
    let mut out: Option<Vec<u8>> = None;
    for (at, little) in coordinates {
        let mut bytes: [u8; 8] = value[at..at + 8].try_into().expect("eight bytes");
        if !little {
            bytes.reverse();
        }
        match mask_float_binary(engine, &bytes, 8, scratch, tally) {
            Masked::Unchanged => {}
            Masked::Replaced(v) if v.len() == 8 => {
                let mut v: [u8; 8] = v.try_into().expect("eight bytes");
                if !little {
                    v.reverse();
                }
                out.get_or_insert_with(|| value.to_vec())[at..at + 8].copy_from_slice(&v);
            }
            _ => return Masked::Null,
        }
    }
    out.map_or(Masked::Unchanged, Masked::Replaced)
}

/// Walks one WKB geometry at `at`, noting where each coordinate is and
/// its byte order; false when the bytes are not WKB. Collections nest a
/// few levels at most.
fn wkb_coordinates(wkb: &[u8], at: &mut usize, depth: usize, out: &mut Vec<(usize, bool)>) -> bool {
    if depth > 8 {
        return false;
    }
    let little = match wkb.get(*at) {
        Some(1) => true,
        Some(0) => false,
        _ => return false,
    };
    *at += 1;
    let u32_at = |at: &mut usize| -> Option<usize> {
        let b: [u8; 4] = wkb.get(*at..*at + 4)?.try_into().ok()?;
        *at += 4;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize)
    };
    let Some(kind) = u32_at(at) else {
        return false;
    };
    let points = |at: &mut usize, n: usize, out: &mut Vec<(usize, bool)>| -> bool {
        let Some(end) = n.checked_mul(16).and_then(|b| b.checked_add(*at)) else {
            return false;
        };
        if end > wkb.len() {
            return false;
        }
        for k in 0..n * 2 {
            out.push((*at + 8 * k, little));
        }
        *at = end;
        true
    };
    match kind {
        1 => points(at, 1, out),
        2 => u32_at(at).is_some_and(|n| points(at, n, out)),
        3 => match u32_at(at) {
            Some(rings) if rings <= wkb.len() => {
                (0..rings).all(|_| u32_at(at).is_some_and(|n| points(at, n, out)))
            }
            _ => false,
        },
        4..=7 => match u32_at(at) {
            Some(n) if n <= wkb.len() => (0..n).all(|_| wkb_coordinates(wkb, at, depth + 1, out)),
            _ => false,
        },
        _ => false,
    }
}

/// A BIT(n) value (the same bytes in both protocols): read as the
/// unsigned big-endian number it is; a substitute keeps its byte length.
fn mask_bit(engine: &Masker, value: &[u8], scratch: &mut Scratch, tally: &mut Tally) -> Masked {
    if value.is_empty() || value.len() > 8 {
        return Masked::Unchanged;
    }
    let n = value.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
    let mut buf = [0u8; 21];
    match engine.mask_number(decimal(false, n, &mut buf), scratch, tally) {
        Masked::Replaced(digits) => {
            let n: u64 = std::str::from_utf8(&digits)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Masked::Replaced(n.to_be_bytes()[8 - value.len()..].to_vec())
        }
        other => other,
    }
}

/// The decimal text of a little-endian integer of 1 to 8 bytes, written
/// into `buf`; `None` for any other width.
fn le_int_decimal<'a>(value: &[u8], unsigned: bool, buf: &'a mut [u8; 21]) -> Option<&'a [u8]> {
    if value.is_empty() {
        return None;
    }
    let mut raw = [0u8; 8];
    raw.get_mut(..value.len())?.copy_from_slice(value);
    let bits = value.len() as u32 * 8;
    let n = u64::from_le_bytes(raw);
    let negative = !unsigned && (n >> (bits - 1)) & 1 == 1;
    let magnitude = if negative {
        // Sign-extended to 64 bits, then negated: the magnitude.
        let extended = if bits == 64 {
            n
        } else {
            n | (u64::MAX << bits)
        };
        extended.wrapping_neg()
    } else {
        n
    };
    Some(decimal(negative, magnitude, buf))
}

/// `magnitude` (negated when `negative`) in decimal, written into `buf`.
fn decimal(negative: bool, mut magnitude: u64, buf: &mut [u8; 21]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// A row that does not parse against its columns is not forwarded: it is
/// replaced by a row of as many NULLs as the columns announced, and the
/// loss is logged. (PostgreSQL's DataRow carries its own lengths, so a
/// short row there makes the client's parser report the damage; a MySQL
/// binary row carries none, and libmysqlclient reads one without bounds
/// checks, so a short row would make C clients read past the packet. A row
/// of NULLs is the replacement every driver reads safely.) A client sees
/// NULL in every column of that row.
fn unreadable_row(columns: usize, binary: bool) -> RowOutcome {
    tracing::warn!(
        columns,
        binary,
        "a MySQL row that Airlock cannot read against its columns was replaced by NULLs"
    );
    let mut out = BytesMut::with_capacity(columns + 2);
    if binary {
        out.put_u8(0);
        out.put_bytes(0, bitmap_len(columns));
        for i in 0..columns {
            set_null(&mut out, i);
        }
    } else {
        out.put_bytes(NULL_VALUE, columns);
    }
    RowOutcome::Rewritten(out.freeze())
}

/// The length of a binary row's NULL bitmap: one bit per column, after two
/// reserved bits.
fn bitmap_len(columns: usize) -> usize {
    (columns + 7 + 2) / 8
}

/// Whether column `i` is flagged NULL in a binary row whose bitmap has
/// been checked to be there.
fn is_null(row: &[u8], i: usize) -> bool {
    let bit = i + 2;
    row.get(1 + bit / 8)
        .is_some_and(|b| b & (1 << (bit % 8)) != 0)
}

/// Flags column `i` NULL in a binary row being built (header and bitmap
/// already written).
fn set_null(out: &mut BytesMut, i: usize) {
    let bit = i + 2;
    if let Some(b) = out.get_mut(1 + bit / 8) {
        *b |= 1 << (bit % 8);
    }
}

/// Whether a text row holds exactly `columns` values and nothing after.
fn text_row_parses(row: &[u8], columns: usize) -> bool {
    let mut at = 0;
    for _ in 0..columns {
        if text_value(row, &mut at).is_none() {
            return false;
        }
    }
    at == row.len()
}

/// Whether a binary row has its header, its bitmap, a value for each
/// column not flagged NULL, and nothing after.
fn binary_row_parses(row: &[u8], plans: &[Plan]) -> bool {
    let values_at = 1 + bitmap_len(plans.len());
    if row.first() != Some(&0) || row.len() < values_at {
        return false;
    }
    let mut at = values_at;
    for (i, plan) in plans.iter().enumerate() {
        if !is_null(row, i) && binary_value(row, plan.layout, &mut at).is_none() {
            return false;
        }
    }
    at == row.len()
}

/// The next value of a text row: `Some(None)` for NULL, the value's
/// content otherwise; `None` when the bytes run out.
fn text_value(row: &[u8], at: &mut usize) -> Option<Option<Range<usize>>> {
    if row.get(*at) == Some(&NULL_VALUE) {
        *at += 1;
        return Some(None);
    }
    lenenc_str(row, at).map(Some)
}

/// The bytes of the next binary-row value in `layout`, length prefix
/// included; `None` when they are not there or cannot be known.
fn binary_value(row: &[u8], layout: Layout, at: &mut usize) -> Option<Range<usize>> {
    let start = *at;
    let end = match layout {
        Layout::Fixed(n) => start.checked_add(n)?,
        Layout::Temporal(lengths) => {
            let len = *row.get(start)?;
            if !lengths.contains(&len) {
                return None;
            }
            start + 1 + usize::from(len)
        }
        Layout::LenEnc => {
            let mut cursor = start;
            lenenc_str(row, &mut cursor)?.end
        }
        Layout::Empty => start,
        Layout::Unknown => return None,
    };
    if end > row.len() {
        return None;
    }
    *at = end;
    Some(start..end)
}

/// A length-encoded integer. `0xFB` (NULL) and `0xFF` are not integers.
fn lenenc_int(buf: &[u8], at: &mut usize) -> Option<u64> {
    let first = *buf.get(*at)?;
    let width = match first {
        0..=0xFA => {
            *at += 1;
            return Some(u64::from(first));
        }
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        _ => return None,
    };
    let bytes = buf.get(*at + 1..*at + 1 + width)?;
    let mut raw = [0u8; 8];
    raw[..width].copy_from_slice(bytes);
    *at += 1 + width;
    Some(u64::from_le_bytes(raw))
}

/// A length-encoded string: the range of its content.
fn lenenc_str(buf: &[u8], at: &mut usize) -> Option<Range<usize>> {
    let mut cursor = *at;
    let len = usize::try_from(lenenc_int(buf, &mut cursor)?).ok()?;
    let end = cursor.checked_add(len)?;
    if end > buf.len() {
        return None;
    }
    *at = end;
    Some(cursor..end)
}

fn put_lenenc_str(out: &mut BytesMut, value: &[u8]) {
    let len = value.len() as u64;
    match len {
        0..=0xFA => out.put_u8(len as u8),
        0xFB..=0xFFFF => {
            out.put_u8(0xFC);
            out.put_u16_le(len as u16);
        }
        0x1_0000..=0xFF_FFFF => {
            out.put_u8(0xFD);
            out.put_uint_le(len, 3);
        }
        _ => {
            out.put_u8(0xFE);
            out.put_u64_le(len);
        }
    }
    out.put_slice(value);
}

#[cfg(test)]
mod tests;
