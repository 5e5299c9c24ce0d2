//! Masking of PostgreSQL result rows (DataRow) and COPY output, by column
//! type and format, so that a masked value is still a valid value of its
//! type in the format the client asked for.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::kind::Kind;
use super::masker::{Masked, Masker, Scratch, Strategy, Tally};
use super::value::{
    fail_closed, fit_int, int_max, is_printable, looks_like_json, mask_float, mask_message,
    mask_number_forms, mask_text_value, mask_wide_text, may_be_wide, CleanDescriptions, MaskStats,
    RowOutcome,
};

/// One result column as described by RowDescription (or the statement's
/// description plus the format codes of Bind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// How Airlock treats a column, from its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Cannot hold a detectable value: booleans, dates, UUIDs…
    Skip,
    Text,
    Json,
    Jsonb,
    Xml,
    Int(u8),
    /// float4 (4) and float8 (8): IEEE values, read by their decimal forms.
    Float(u8),
    /// Cents in an int8; text in the session's lc_monetary.
    Money,
    /// bit(n) and varbit: a number written in binary digits.
    Bits,
    Numeric,
    Bytea,
    Inet,
    Array,
    Record,
    /// A range of the element type named (0: not known).
    Range(u32),
    /// A multirange of the range type named.
    Multirange(u32),
    /// The geometric types (point, lseg, path, box, polygon, line,
    /// circle): float8 coordinates, in text as numbers in brackets.
    Geometric,
    /// A type Airlock does not know (extensions, domains, enums, table row
    /// types): read by what its bytes can be, failing closed.
    Other,
}

fn class_of(oid: u32) -> Class {
    match oid {
        16 | 1082 | 1083 | 1114 | 1184 | 1186 | 1266 | 2950 | 829 | 774 | 3220 | 2278 => {
            Class::Skip
        }
        // `ssn::oid` is a cast: object identifiers are unsigned integers.
        26 | 28 | 29 => Class::Int(4),
        5069 => Class::Int(8),
        // `card::bit(64)` is a cast too.
        1560 | 1562 => Class::Bits,
        25 | 1043 | 1042 | 19 | 705 | 18 => Class::Text,
        114 => Class::Json,
        3802 => Class::Jsonb,
        142 => Class::Xml,
        21 => Class::Int(2),
        23 => Class::Int(4),
        20 => Class::Int(8),
        700 => Class::Float(4),
        701 => Class::Float(8),
        790 => Class::Money,
        1700 => Class::Numeric,
        17 => Class::Bytea,
        869 | 650 => Class::Inet,
        // The array types of the classes above.
        1009 | 1015 | 1014 | 1003 | 199 | 3807 | 143 | 1005 | 1007 | 1016 | 1231 | 1001 | 1041
        | 651 | 1002 | 1021 | 1022 | 791 | 2287 | 3905 | 3907 | 3909 | 3911 | 3913 | 3927
        | 6150 | 6151 | 6152 | 6153 | 6155 | 6157 => Class::Array,
        2249 => Class::Record,
        3904 => Class::Range(23),
        3906 => Class::Range(1700),
        3908 => Class::Range(1114),
        3910 => Class::Range(1184),
        3912 => Class::Range(1082),
        3926 => Class::Range(20),
        4451 => Class::Multirange(3904),
        4532 => Class::Multirange(3906),
        4533 => Class::Multirange(3908),
        4534 => Class::Multirange(3910),
        4535 => Class::Multirange(3912),
        4536 => Class::Multirange(3926),
        600 | 601 | 602 | 603 | 604 | 628 | 718 => Class::Geometric,
        _ => Class::Other,
    }
}

/// The per-session hook every result row passes through.
#[derive(Debug, Default)]
pub struct RowMasker {
    engine: Option<Arc<Masker>>,
    columns: Vec<Column>,
    tallies: Vec<Tally>,
    /// Findings in COPY output, whose columns are not described.
    copy_tally: Tally,
    /// Findings in error, notice and notification texts.
    message_tally: Tally,
    copy_binary: Option<bool>,
    copy_header_seen: bool,
    scratch: Scratch,
    rows_seen: u64,
    clean_descriptions: CleanDescriptions,
    /// A row's changed values, kept between rows for its capacity.
    edits: Vec<(usize, Masked)>,
}

impl RowMasker {
    /// A masker with no detectors: every row is forwarded unchanged (roles
    /// exempted by the policy).
    pub fn pass_through() -> Self {
        Self::default()
    }

    pub fn new(engine: Arc<Masker>) -> Self {
        RowMasker {
            engine: Some(engine),
            ..Self::default()
        }
    }

    pub fn is_active(&self) -> bool {
        self.engine.is_some()
    }

    /// Whether the RowDescription `body` was found before to name nothing
    /// to mask.
    pub fn is_clean_description(&self, body: &[u8]) -> bool {
        self.clean_descriptions.contains(body)
    }

    /// Remembers a RowDescription whose names held nothing to mask.
    pub fn note_clean_description(&mut self, body: &[u8]) {
        self.clean_descriptions.insert(body);
    }

    /// The columns of the rows that follow.
    pub fn set_columns(&mut self, columns: &[Column]) {
        if self.columns.as_slice() != columns {
            self.columns = columns.to_vec();
        }
        self.copy_binary = None;
    }

    /// Rows follow whose columns are not known (an Execute of a statement
    /// the client never described): values are treated by their content.
    pub fn set_unknown_columns(&mut self, formats: &[i16], count: usize) {
        let columns: Vec<Column> = (0..count)
            .map(|i| Column {
                name: format!("column{}", i + 1),
                type_oid: 0,
                format: match formats {
                    [] => 0,
                    [one] => *one,
                    many => many.get(i).copied().unwrap_or(0),
                },
            })
            .collect();
        self.set_columns(&columns);
    }

    /// COPY … TO STDOUT output follows, in text (or CSV) or binary format.
    pub fn start_copy(&mut self, binary: bool) {
        self.copy_binary = Some(binary);
        self.copy_header_seen = false;
    }

    pub fn rows_seen(&self) -> u64 {
        self.rows_seen
    }

    /// The masking counts since the last call, by column name.
    pub fn take_stats(&mut self) -> MaskStats {
        let mut stats = MaskStats::default();
        let columns = &self.columns;
        stats.take_columns(&mut self.tallies, |i| {
            columns.get(i).map(|c| c.name.as_str())
        });
        stats.take_named("(messages)", &mut self.message_tally);
        stats.take_named("(copy)", &mut self.copy_tally);
        stats
    }

    /// Inspects one row. `row` is the complete DataRow frame as received.
    pub fn mask_row(&mut self, row: &Bytes) -> RowOutcome {
        let mut out = BytesMut::new();
        if self.mask_row_into(row, &mut out) {
            RowOutcome::Rewritten(out.freeze())
        } else {
            RowOutcome::Unchanged
        }
    }

    /// Masks a DataRow frame as [`RowMasker::mask_row`] does, appending
    /// the rewritten frame to `out` (the relay's output buffer: no frame of
    /// its own to allocate and copy); false, and nothing appended, when
    /// the row goes as it is.
    pub fn mask_row_into(&mut self, row: &Bytes, out: &mut BytesMut) -> bool {
        self.rows_seen += 1;
        let RowMasker {
            engine,
            columns,
            tallies,
            scratch,
            edits,
            ..
        } = self;
        let Some(engine) = engine.as_deref() else {
            return false;
        };
        let Some(count) = DataRow::count(row) else {
            // The relay only hands over frames with a 'D' tag and a
            // consistent length; a body that does not parse is masked
            // whole rather than forwarded unread.
            out.extend_from_slice(&empty_row());
            return true;
        };
        if tallies.len() < count {
            tallies.resize(count, Tally::default());
        }
        // A row with nothing to mask costs the scan and no allocation.
        edits.clear();
        let lent = scratch.lend_phone_memo();
        for (i, value) in DataRow::values(row).enumerate() {
            let Some(value) = value else { continue };
            let (oid, format) = columns.get(i).map_or((0, 0), |c| (c.type_oid, c.format));
            let outcome = mask_value(engine, oid, format, value, scratch, &mut tallies[i]);
            if outcome != Masked::Unchanged {
                edits.push((i, outcome));
            }
        }
        scratch.return_phone_memo(lent);
        if edits.is_empty() {
            return false;
        }
        let start = out.len();
        out.reserve(row.len() + 64);
        out.put_u8(b'D');
        out.put_u32(0);
        out.put_u16(count as u16);
        let mut edits = edits.drain(..).peekable();
        for (i, value) in DataRow::values(row).enumerate() {
            let edit = match edits.peek() {
                Some((at, _)) if *at == i => edits.next().map(|(_, m)| m),
                _ => None,
            };
            match (edit, value) {
                (Some(Masked::Null), _) | (_, None) => out.put_i32(-1),
                (Some(Masked::Replaced(v)), _) => {
                    out.put_i32(v.len() as i32);
                    out.put_slice(&v);
                }
                (Some(Masked::Unchanged) | None, Some(v)) => {
                    out.put_i32(v.len() as i32);
                    out.put_slice(v);
                }
            }
        }
        let len = (out.len() - start - 1) as u32;
        out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
        true
    }

    /// Masks a text the server wrote for the client outside result rows:
    /// the message and detail of an error or notice (servers quote
    /// offending values: "invalid input syntax for type integer:
    /// \"jane@example.org\"") and NOTIFY payloads. `None` when nothing
    /// changes. The relay owns the framing of those messages.
    pub fn mask_message_text(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        let RowMasker {
            engine,
            scratch,
            message_tally,
            ..
        } = self;
        mask_message(engine.as_deref()?, text, scratch, message_tally)
    }

    /// Inspects one CopyData frame of COPY … TO STDOUT output.
    pub fn mask_copy_data(&mut self, frame: &Bytes) -> RowOutcome {
        let Some(engine) = self.engine.clone() else {
            return RowOutcome::Unchanged;
        };
        let body = &frame[5..];
        let masked = if self.copy_binary == Some(true) {
            self.mask_binary_copy(&engine, body)
        } else {
            // Text and CSV rows: the detected spans are replaced in place;
            // labels contain no tab, comma, quote or backslash.
            let lent = self.scratch.lend_phone_memo();
            let masked = mask_copy_text(&engine, body, &mut self.scratch, &mut self.copy_tally);
            self.scratch.return_phone_memo(lent);
            masked
        };
        match masked {
            None => RowOutcome::Unchanged,
            Some(body) => {
                let mut out = BytesMut::with_capacity(body.len() + 5);
                out.put_u8(b'd');
                out.put_u32(body.len() as u32 + 4);
                out.put_slice(&body);
                RowOutcome::Rewritten(out.freeze())
            }
        }
    }

    /// Binary COPY: a header on the first frame, then tuples of
    /// length-prefixed fields. The column types are not sent, so each
    /// field is read as what its bytes can be: text, or an integer or
    /// numeric of its width. A field with a finding that cannot be
    /// rewritten as such becomes NULL.
    fn mask_binary_copy(&mut self, engine: &Masker, body: &[u8]) -> Option<Vec<u8>> {
        const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
        let mut at = 0;
        if !self.copy_header_seen {
            if !body.starts_with(SIGNATURE) || body.len() < 19 {
                return Some(unreadable_copy());
            }
            let ext = u32::from_be_bytes(body[15..19].try_into().expect("four bytes")) as usize;
            at = 19 + ext;
            self.copy_header_seen = true;
        }
        let mut out = body[..at.min(body.len())].to_vec();
        let mut changed = false;
        while at + 2 <= body.len() {
            let fields = i16::from_be_bytes([body[at], body[at + 1]]);
            out.extend_from_slice(&body[at..at + 2]);
            at += 2;
            if fields < 0 {
                break;
            }
            for _ in 0..fields {
                let Some(len_bytes) = body.get(at..at + 4) else {
                    return Some(unreadable_copy());
                };
                let len = i32::from_be_bytes(len_bytes.try_into().expect("four bytes"));
                at += 4;
                if len < 0 {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    continue;
                }
                let Some(value) = body.get(at..at + len as usize) else {
                    // A field cut across frames: not what PostgreSQL sends.
                    return Some(unreadable_copy());
                };
                at += len as usize;
                match guess_binary(engine, value, &mut self.scratch, &mut self.copy_tally) {
                    Masked::Unchanged => {
                        out.extend_from_slice(len_bytes);
                        out.extend_from_slice(value);
                    }
                    Masked::Null => {
                        changed = true;
                        out.extend_from_slice(&(-1i32).to_be_bytes());
                    }
                    Masked::Replaced(v) => {
                        changed = true;
                        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        out.extend_from_slice(&v);
                    }
                }
            }
        }
        out.extend_from_slice(&body[at.min(body.len())..]);
        changed.then_some(out)
    }
}

/// One row of COPY text or CSV output. The format is not announced (CSV
/// is "textual" too), so a row with a tab or without a comma is read as
/// text format, others as CSV. Each field is unescaped, masked by its
/// content as a value of unknown type, and written back escaped.
fn mask_copy_text(
    engine: &Masker,
    row: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Option<Vec<u8>> {
    // Every field is masked as the cell it is: detectors judge a value by
    // its bounds (a name alone in a cell), which a scan of the joined row
    // does not see, so there is no whole-row shortcut.
    let (line, newline) = match row.strip_suffix(b"\n") {
        Some(l) => (l, &b"\n"[..]),
        None => (row, &b""[..]),
    };
    let csv = !line.contains(&b'\t') && line.contains(&b',');
    let mut out = Vec::with_capacity(row.len() + 16);
    let mut changed = false;
    let fields: Vec<(Vec<u8>, bool)> = if csv {
        csv_fields(line)
    } else {
        text_fields(line)
    };
    for (n, (field, quoted_or_null)) in fields.iter().enumerate() {
        if n > 0 {
            out.push(if csv { b',' } else { b'\t' });
        }
        let null_text = !csv && *quoted_or_null;
        let masked = if null_text {
            Masked::Unchanged
        } else {
            mask_by_content(engine, field, scratch, tally)
        };
        let value: Option<&[u8]> = match &masked {
            Masked::Unchanged => Some(field),
            Masked::Replaced(v) => Some(v),
            Masked::Null => None,
        };
        if !matches!(masked, Masked::Unchanged) {
            changed = true;
        }
        match (value, csv) {
            (None, false) => out.extend_from_slice(b"\\N"),
            (None, true) => {}
            (Some(v), false) if null_text => out.extend_from_slice(v),
            (Some(v), false) => escape_copy_text(v, &mut out),
            (Some(v), true) => {
                let quote =
                    *quoted_or_null || v.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
                if quote {
                    out.push(b'"');
                    for &c in v {
                        if c == b'"' {
                            out.push(b'"');
                        }
                        out.push(c);
                    }
                    out.push(b'"');
                } else {
                    out.extend_from_slice(v);
                }
            }
        }
    }
    out.extend_from_slice(newline);
    changed.then_some(out)
}

/// Text-format fields, unescaped; the flag marks `\N` (NULL).
fn text_fields(line: &[u8]) -> Vec<(Vec<u8>, bool)> {
    line.split(|&b| b == b'\t')
        .map(|raw| {
            if raw == b"\\N" {
                return (raw.to_vec(), true);
            }
            let mut v = Vec::with_capacity(raw.len());
            let mut i = 0;
            while i < raw.len() {
                if raw[i] == b'\\' && i + 1 < raw.len() {
                    v.push(match raw[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'f' => 12,
                        b'v' => 11,
                        other => other,
                    });
                    i += 2;
                } else {
                    v.push(raw[i]);
                    i += 1;
                }
            }
            (v, false)
        })
        .collect()
}

fn escape_copy_text(v: &[u8], out: &mut Vec<u8>) {
    for &c in v {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            11 => out.extend_from_slice(b"\\v"),
            _ => out.push(c),
        }
    }
}

/// CSV fields, unquoted; the flag marks fields that were quoted.
fn csv_fields(line: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        if line.get(i) == Some(&b'"') {
            let mut v = Vec::new();
            i += 1;
            while i < line.len() {
                if line[i] == b'"' {
                    if line.get(i + 1) == Some(&b'"') {
                        v.push(b'"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                v.push(line[i]);
                i += 1;
            }
            // Anything between the closing quote and the comma is kept.
            while i < line.len() && line[i] != b',' {
                v.push(line[i]);
                i += 1;
            }
            fields.push((v, true));
        } else {
            let start = i;
            while i < line.len() && line[i] != b',' {
                i += 1;
            }
            fields.push((line[start..i].to_vec(), false));
        }
        if i >= line.len() {
            break;
        }
        i += 1;
    }
    fields
}

/// Binary COPY data Airlock cannot take apart is not forwarded unscanned:
/// the frame goes out empty (the client's parser then reports the stream
/// as damaged) and the loss is logged.
fn unreadable_copy() -> Vec<u8> {
    tracing::warn!("binary COPY data that Airlock cannot read was withheld from the client");
    Vec::new()
}

fn empty_row() -> Bytes {
    Bytes::from_static(&[b'D', 0, 0, 0, 6, 0, 0])
}

/// Reading a DataRow frame in place.
struct DataRow;

impl DataRow {
    /// The column count, if the frame's fields add up to its length.
    fn count(frame: &[u8]) -> Option<usize> {
        let body = frame.get(5..)?;
        let count = u16::from_be_bytes(body.get(..2)?.try_into().ok()?) as usize;
        let mut at = 2;
        for _ in 0..count {
            let len = i32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?);
            at += 4;
            if len > 0 {
                at += len as usize;
            }
        }
        (at == body.len()).then_some(count)
    }

    /// The values of a frame [`DataRow::count`] accepted.
    fn values(frame: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
        let body = &frame[5..];
        let count = u16::from_be_bytes([body[0], body[1]]) as usize;
        let mut at = 2;
        (0..count).map(move |_| {
            let len = i32::from_be_bytes(body[at..at + 4].try_into().expect("checked by count"));
            at += 4;
            if len < 0 {
                None
            } else {
                let v = &body[at..at + len as usize];
                at += len as usize;
                Some(v)
            }
        })
    }

    #[cfg(test)]
    fn parse(frame: &[u8]) -> Option<Vec<Option<&[u8]>>> {
        DataRow::count(frame)?;
        Some(DataRow::values(frame).collect())
    }
}

/// Masks one value of type `oid` in `format`.
fn mask_value(
    engine: &Masker,
    oid: u32,
    format: i16,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let class = class_of(oid);
    if format == 0 {
        return match class {
            Class::Skip => Masked::Unchanged,
            Class::Text => mask_text_value(engine, value, scratch, tally),
            Class::Json | Class::Jsonb => engine.mask_json(value, scratch, tally),
            Class::Xml => mask_xml(engine, value, scratch, tally),
            Class::Int(width) => fit_int(
                engine.mask_number(value, scratch, tally),
                int_max(width, false),
            ),
            Class::Float(_) | Class::Numeric | Class::Money => {
                mask_number_forms(engine, value, scratch, tally)
            }
            Class::Bytea => mask_bytea_text(engine, value, scratch, tally),
            Class::Bits => mask_bits_text(engine, value, scratch, tally),
            Class::Inet => mask_inet_text(engine, value, scratch, tally),
            Class::Array => match element_oid(oid) {
                Some(element) => mask_text_array(engine, element, value, scratch, tally),
                None => mask_by_content(engine, value, scratch, tally),
            },
            Class::Range(element) => mask_text_composite(engine, element, value, scratch, tally),
            Class::Multirange(range) => {
                let element = match class_of(range) {
                    Class::Range(element) => element,
                    _ => 0,
                };
                mask_text_composite(engine, element, value, scratch, tally)
            }
            Class::Geometric => mask_geometric_text(engine, value, scratch, tally),
            Class::Record | Class::Other => mask_by_content(engine, value, scratch, tally),
        };
    }
    match class {
        Class::Skip => Masked::Unchanged,
        Class::Text => mask_text_value(engine, value, scratch, tally),
        Class::Bytea => mask_bytes(engine, value, scratch, tally),
        Class::Json => engine.mask_json(value, scratch, tally),
        Class::Jsonb => match value.split_first() {
            Some((1, doc)) => match engine.mask_json(doc, scratch, tally) {
                Masked::Replaced(v) => {
                    let mut out = Vec::with_capacity(v.len() + 1);
                    out.push(1);
                    out.extend_from_slice(&v);
                    Masked::Replaced(out)
                }
                other => other,
            },
            // A jsonb version Airlock cannot read.
            _ => fail_closed(engine, value, scratch, tally),
        },
        Class::Xml => mask_xml(engine, value, scratch, tally),
        Class::Int(width) => mask_int_binary(engine, value, width, scratch, tally),
        Class::Float(width) => mask_float_binary(engine, value, width, scratch, tally),
        Class::Money => mask_money_binary(engine, value, scratch, tally),
        Class::Bits => mask_bits_binary(engine, value, scratch, tally),
        Class::Numeric => mask_numeric_binary(engine, value, scratch, tally),
        Class::Inet => mask_inet_binary(engine, value, scratch, tally),
        Class::Array => mask_array_binary(engine, value, scratch, tally),
        Class::Record => mask_record_binary(engine, value, scratch, tally),
        Class::Range(element) => mask_range_binary(engine, element, value, scratch, tally),
        Class::Multirange(range) => mask_multirange_binary(engine, range, value, scratch, tally),
        Class::Geometric => mask_geometric_binary(engine, oid, value, scratch, tally),
        Class::Other => guess_binary(engine, value, scratch, tally),
    }
}

/// A geometric value in text (`(4.1e+15,0)`, `((1,2),(3,4))`,
/// `<(1,2),3>`, `{1,2,3}`): each number in it is masked by what it stands
/// for, as a float8 column's value is (a card cast to a coordinate is
/// still a card).
fn mask_geometric_text(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let is_number_byte =
        |b: u8| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-');
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < value.len() {
        let starts = is_number_byte(value[i])
            && !matches!(value[i], b'e' | b'E')
            && (i == 0 || matches!(value[i - 1], b'(' | b'[' | b'{' | b'<' | b',' | b' '));
        if !starts {
            i += 1;
            continue;
        }
        let end = value[i..]
            .iter()
            .position(|&b| !is_number_byte(b))
            .map_or(value.len(), |n| i + n);
        if let Masked::Replaced(v) = mask_number_forms(engine, &value[i..end], scratch, tally) {
            let o = out.get_or_insert_with(|| Vec::with_capacity(value.len() + 16));
            o.extend_from_slice(&value[copied..i]);
            o.extend_from_slice(&v);
            copied = end;
        } else if !is_number_text(&value[i..end]) {
            // Not a number where a geometric value has only numbers: read
            // the whole value as one of unknown type.
            return mask_by_content(engine, value, scratch, tally);
        }
        i = end;
    }
    match out {
        Some(mut o) => {
            o.extend_from_slice(&value[copied..]);
            Masked::Replaced(o)
        }
        None => Masked::Unchanged,
    }
}

/// A geometric value in binary: float8 coordinates at places its type
/// fixes (a path and a polygon count their points first), each masked as
/// a float8 is. A value whose length does not add up fails closed (NULL).
fn mask_geometric_binary(
    engine: &Masker,
    oid: u32,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let count_at = |at: usize| {
        value
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes(b.try_into().expect("four bytes")))
            .filter(|n| *n >= 0)
            .map(|n| n as usize)
    };
    // (where the doubles start, how many there are)
    let layout = match oid {
        600 => Some((0, 2)),
        601 | 603 => Some((0, 4)),
        628 | 718 => Some((0, 3)),
        // path: closed flag, point count, points.
        602 => count_at(1).map(|n| (5, n.saturating_mul(2))),
        // polygon: point count, points.
        604 => count_at(0).map(|n| (4, n.saturating_mul(2))),
        _ => None,
    };
    let Some((start, doubles)) = layout.filter(|(start, n)| {
        n.checked_mul(8).and_then(|b| b.checked_add(*start)) == Some(value.len())
    }) else {
        // Coordinates Airlock cannot find may be anything: none pass.
        return Masked::Null;
    };
    let mut out: Option<Vec<u8>> = None;
    for k in 0..doubles {
        let at = start + 8 * k;
        match mask_float_binary(engine, &value[at..at + 8], 8, scratch, tally) {
            Masked::Replaced(v) if v.len() == 8 => {
                out.get_or_insert_with(|| value.to_vec())[at..at + 8].copy_from_slice(&v);
            }
            Masked::Unchanged => {}
            // A coordinate that cannot be written back: the whole value goes.
            _ => return Masked::Null,
        }
    }
    out.map_or(Masked::Unchanged, Masked::Replaced)
}

/// The element type of the array types Airlock knows.
fn element_oid(array_oid: u32) -> Option<u32> {
    Some(match array_oid {
        1009 => 25,
        1015 => 1043,
        1014 => 1042,
        1003 => 19,
        199 => 114,
        3807 => 3802,
        143 => 142,
        1005 => 21,
        1007 => 23,
        1016 => 20,
        1231 => 1700,
        1001 => 17,
        1041 => 869,
        651 => 650,
        1002 => 18,
        1021 => 700,
        1022 => 701,
        791 => 790,
        3905 => 3904,
        3907 => 3906,
        3909 => 3908,
        3911 => 3910,
        3913 => 3912,
        3927 => 3926,
        6150 => 4451,
        6151 => 4532,
        6152 => 4533,
        6153 => 4534,
        6155 => 4535,
        6157 => 4536,
        2287 => 2249,
        _ => return None,
    })
}

/// An array in text format (`{a,"b c",NULL,{d}}`): each element is masked
/// as a value of the element type and written back quoted as needed.
fn mask_text_array(
    engine: &Masker,
    element: u32,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    mask_text_structured(engine, element, value, false, scratch, tally)
}

/// A record, range or multirange in text format (`(1,"a b")`,
/// `[4111111111111111,4111111111111112)`, `{[1,2),[5,6)}`): each field or
/// bound is masked as a value of `element` (0: by its content), so numbers
/// stay numbers and the literal still parses.
fn mask_text_composite(
    engine: &Masker,
    element: u32,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    mask_text_structured(engine, element, value, true, scratch, tally)
}

/// Whether a number in `value` is written in a form (`4.1e+15`,
/// `4111111111111111.0`) in which the scanner does not see its digits as
/// one run: such literals are taken apart even when a scan of the whole
/// finds nothing.
fn has_number_form(value: &[u8]) -> bool {
    value.windows(3).any(|w| {
        w[0].is_ascii_digit()
            && matches!(w[1], b'.' | b'e' | b'E')
            && (w[2].is_ascii_digit() || matches!(w[2], b'+' | b'-'))
    })
}

/// Takes apart a text literal whose elements are separated by `{},` and
/// spaces (and, with `parens`, by `()[]`), masks each element as a value of
/// `element`, and writes it back quoted as needed.
fn mask_text_structured(
    engine: &Masker,
    element: u32,
    value: &[u8],
    parens: bool,
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    // Cheap exit: nothing in the whole literal (addresses are found by
    // their column type, not always by the scanner; numbers in float
    // forms by their digits).
    let mut findings = Vec::new();
    engine.scanner().scan(value, &mut findings);
    if findings.is_empty() && class_of(element) != Class::Inet && !has_number_form(value) {
        return Masked::Unchanged;
    }
    let structural = |b: u8| {
        matches!(b, b'{' | b'}' | b',' | b' ') || (parens && matches!(b, b'(' | b')' | b'[' | b']'))
    };
    let mut out = Vec::with_capacity(value.len() + 16);
    let mut changed = false;
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if structural(b) {
            out.push(b);
            i += 1;
            continue;
        }
        // One element, quoted or not.
        let (raw_end, element_text, quoted) = if b == b'"' {
            let mut text = Vec::new();
            let mut j = i + 1;
            while j < value.len() {
                if value[j] == b'"' {
                    // Records double a quote inside a quoted field.
                    if parens && value.get(j + 1) == Some(&b'"') {
                        text.push(b'"');
                        j += 2;
                        continue;
                    }
                    break;
                }
                if value[j] == b'\\' && j + 1 < value.len() {
                    j += 1;
                }
                text.push(value[j]);
                j += 1;
            }
            (j + 1, text, true)
        } else {
            let mut j = i;
            while j < value.len()
                && !matches!(value[j], b',' | b'}')
                && !(parens && matches!(value[j], b')' | b']'))
            {
                j += 1;
            }
            (j, value[i..j].to_vec(), false)
        };
        let raw_end = raw_end.min(value.len());
        if !quoted && element_text == b"NULL" {
            out.extend_from_slice(b"NULL");
            i = raw_end;
            continue;
        }
        match mask_value(engine, element, 0, &element_text, scratch, tally) {
            Masked::Unchanged => out.extend_from_slice(&value[i..raw_end]),
            Masked::Null => {
                changed = true;
                out.extend_from_slice(b"NULL");
            }
            Masked::Replaced(v)
                if !quoted
                    && !v.is_empty()
                    && v != b"NULL"
                    && !v.iter().any(|&c| {
                        structural(c) || matches!(c, b'"' | b'\\' | b'(' | b')' | b'[' | b']')
                    }) =>
            {
                changed = true;
                out.extend_from_slice(&v);
            }
            Masked::Replaced(v) => {
                changed = true;
                out.push(b'"');
                for c in v {
                    if c == b'"' || c == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(c);
                }
                out.push(b'"');
            }
        }
        i = raw_end;
    }
    if changed {
        Masked::Replaced(out)
    } else {
        Masked::Unchanged
    }
}

/// A text value whose type is not known: numbers stay numbers and JSON
/// stays JSON; everything else is masked as text.
fn mask_by_content(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    if is_number_text(value) {
        // A number of unknown type may also be an identifier written in
        // digits (a CPF, an SSN): read as text when no number form is.
        return match mask_number_forms(engine, value, scratch, tally) {
            Masked::Unchanged => engine.mask_text(value, scratch, tally),
            masked => masked,
        };
    }
    let json =
        looks_like_json(value) && serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok();
    if json {
        return engine.mask_json(value, scratch, tally);
    }
    // A record, range or multirange literal — or free text in brackets.
    if matches!(value.first(), Some(b'(' | b'[')) && matches!(value.last(), Some(b')' | b']')) {
        let masked = mask_text_composite(engine, 0, value, scratch, tally);
        return then_as_text(engine, value, masked, scratch, tally);
    }
    // `{…}` that is not JSON is an array (or a record) literal: masked
    // element by element, so numbers stay numbers.
    if value.first() == Some(&b'{') && value.last() == Some(&b'}') {
        let masked = mask_text_array(engine, 0, value, scratch, tally);
        return then_as_text(engine, value, masked, scratch, tally);
    }
    if value.starts_with(b"\\x")
        && value.len().is_multiple_of(2)
        && value[2..].iter().all(u8::is_ascii_hexdigit)
    {
        return mask_bytea_text(engine, value, scratch, tally);
    }
    engine.mask_text(value, scratch, tally)
}

/// A literal masked element by element (numbers stay numbers) is read
/// again whole, as text: split at its commas, free text that only looks
/// like a literal ("(call (020) 7946 0958, ask for Ann Lee)") loses the
/// context its detectors need, and what they find then is masked too.
fn then_as_text(
    engine: &Masker,
    value: &[u8],
    masked: Masked,
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    match masked {
        Masked::Null => Masked::Null,
        Masked::Unchanged => engine.mask_text(value, scratch, tally),
        Masked::Replaced(v) => match engine.mask_text(&v, scratch, tally) {
            Masked::Unchanged => Masked::Replaced(v),
            again => again,
        },
    }
}

/// Whether `value` is written as one number: an optional sign, digits with
/// at most one decimal point, an optional exponent. `203.0.113.7` and
/// `2024-01-02` are not numbers: they are scanned as text, where the
/// address and date detectors see them.
fn is_number_text(value: &[u8]) -> bool {
    let mut rest = value.strip_prefix(b"-").unwrap_or(value);
    let mantissa_end = rest
        .iter()
        .position(|&b| b == b'e' || b == b'E')
        .unwrap_or(rest.len());
    let (mantissa, exponent) = rest.split_at(mantissa_end);
    let digits = mantissa.iter().filter(|b| b.is_ascii_digit()).count();
    let points = mantissa.iter().filter(|&&b| b == b'.').count();
    if digits == 0 || points > 1 || digits + points != mantissa.len() {
        return false;
    }
    if exponent.is_empty() {
        return true;
    }
    rest = &exponent[1..];
    rest = rest
        .strip_prefix(b"-")
        .or_else(|| rest.strip_prefix(b"+"))
        .unwrap_or(rest);
    !rest.is_empty() && rest.iter().all(u8::is_ascii_digit)
}

/// XML text: replacements are escaped so the document stays well formed.
fn mask_xml(engine: &Masker, value: &[u8], scratch: &mut Scratch, tally: &mut Tally) -> Masked {
    match engine.mask_text(value, scratch, tally) {
        Masked::Replaced(v) => {
            // Only the labels Airlock inserted contain `<` or `>` next to an
            // upper-case letter or underscore; escape them.
            let mut out = Vec::with_capacity(v.len() + 16);
            let mut i = 0;
            while i < v.len() {
                let label_end = (v[i] == b'<')
                    .then(|| {
                        Kind::ALL
                            .iter()
                            .map(|k| k.label().as_bytes())
                            .find(|l| v[i..].starts_with(l))
                    })
                    .flatten();
                match label_end {
                    Some(label) => {
                        out.extend_from_slice(b"&lt;");
                        out.extend_from_slice(&label[1..label.len() - 1]);
                        out.extend_from_slice(b"&gt;");
                        i += label.len();
                    }
                    None => {
                        out.push(v[i]);
                        i += 1;
                    }
                }
            }
            Masked::Replaced(out)
        }
        other => other,
    }
}

fn mask_int_binary(
    engine: &Masker,
    value: &[u8],
    width: u8,
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let n: i64 = match value.len() {
        2 => i64::from(i16::from_be_bytes(value.try_into().expect("two bytes"))),
        4 => i64::from(i32::from_be_bytes(value.try_into().expect("four bytes"))),
        8 => i64::from_be_bytes(value.try_into().expect("eight bytes")),
        _ => return fail_closed(engine, value, scratch, tally),
    };
    let text = n.to_string();
    match fit_int(
        engine.mask_number(text.as_bytes(), scratch, tally),
        int_max(width, false),
    ) {
        Masked::Replaced(v) => {
            let n: i64 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Masked::Replaced(match value.len() {
                2 => (n as i16).to_be_bytes().to_vec(),
                4 => (n as i32).to_be_bytes().to_vec(),
                _ => n.to_be_bytes().to_vec(),
            })
        }
        other => other,
    }
}

/// Decodes PostgreSQL's binary numeric (base-10000 digits) to its decimal
/// text; `None` for NaN, infinities and malformed values.
fn numeric_to_text(value: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> {
        Some(i16::from_be_bytes(value.get(i..i + 2)?.try_into().ok()?))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = word(2)?;
    let sign = word(4)? as u16;
    let dscale = word(6)?;
    if value.len() != 8 + 2 * ndigits || !(sign == 0 || sign == 0x4000) || dscale < 0 {
        return None;
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Option<_>>()?;
    if digits.iter().any(|&d| !(0..10000).contains(&d)) {
        return None;
    }
    let mut int = String::new();
    for pos in 0..=i32::from(weight).max(-1) {
        let d = digits.get(pos as usize).copied().unwrap_or(0);
        if int.is_empty() {
            if d != 0 {
                int.push_str(&d.to_string());
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    for pos in (i32::from(weight) + 1).max(0).. {
        if frac.len() >= dscale as usize {
            break;
        }
        let idx = pos as usize;
        let d = if idx < digits.len() && pos > i32::from(weight) {
            digits[idx]
        } else {
            0
        };
        frac.push_str(&format!("{d:04}"));
    }
    frac.truncate(dscale as usize);
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    text.push_str(&int);
    if !frac.is_empty() {
        text.push('.');
        text.push_str(&frac);
    }
    Some(text)
}

/// Encodes a non-negative integer (decimal digits) as binary numeric.
fn integer_to_numeric(digits: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = digits.iter().copied().skip_while(|&d| d == b'0').collect();
    let mut groups: Vec<i16> = Vec::new();
    let mut end = trimmed.len();
    while end > 0 {
        let start = end.saturating_sub(4);
        let v = trimmed[start..end]
            .iter()
            .fold(0i16, |a, &b| a * 10 + i16::from(b - b'0'));
        groups.push(v);
        end = start;
    }
    groups.reverse();
    let weight = groups.len() as i16 - 1;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&(if groups.is_empty() { 0 } else { weight }).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

fn mask_numeric_binary(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let Some(text) = numeric_to_text(value) else {
        // NaN and infinities hold nothing; a malformed value is not passed.
        return if value.len() == 8 {
            Masked::Unchanged
        } else {
            Masked::Null
        };
    };
    match mask_number_forms(engine, text.as_bytes(), scratch, tally) {
        Masked::Replaced(v) => Masked::Replaced(integer_to_numeric(&v)),
        other => other,
    }
}

/// bytes (bytea): scanned as text, and — when they have the zero bytes of
/// UTF-16 or UTF-32 text — as that text too (`convert_to` cannot produce
/// it, but bytes can be built to be it).
fn mask_bytes(engine: &Masker, value: &[u8], scratch: &mut Scratch, tally: &mut Tally) -> Masked {
    match engine.mask_text(value, scratch, tally) {
        Masked::Unchanged if may_be_wide(value) => mask_wide_text(engine, value, scratch, tally),
        other => other,
    }
}

/// bytea in hex text format (`\x4a6f…`): the decoded bytes are scanned and
/// re-encoded.
fn mask_bytea_text(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let Some(hex) = value.strip_prefix(b"\\x") else {
        // The escape output format is text-like already.
        return engine.mask_text(value, scratch, tally);
    };
    let decoded: Option<Vec<u8>> = hex
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
        })
        .collect();
    let Some(decoded) = decoded else {
        return Masked::Null;
    };
    match mask_bytes(engine, &decoded, scratch, tally) {
        Masked::Replaced(v) => {
            let mut out = Vec::with_capacity(2 + v.len() * 2);
            out.extend_from_slice(b"\\x");
            out.extend_from_slice(crate::hex::encode(&v).as_bytes());
            Masked::Replaced(out)
        }
        other => other,
    }
}

/// An address standing in for a detected one, valid for inet and cidr.
fn inet_substitute(
    engine: &Masker,
    kind: Kind,
    addr: std::net::IpAddr,
) -> Option<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    Some(match (engine.strategy(kind), addr) {
        (Strategy::Null, _) => return None,
        (Strategy::Partial, IpAddr::V4(a)) => {
            let o = a.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], 0, 0))
        }
        (Strategy::Partial, IpAddr::V6(a)) => {
            let s = a.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], 0, 0, 0, 0, 0, 0))
        }
        (Strategy::Token, IpAddr::V4(a)) => {
            let digits = engine.number_substitute(
                kind,
                Strategy::Token,
                &a.to_bits().to_string().into_bytes(),
            );
            let n: u32 = std::str::from_utf8(&digits)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0) as u32;
            // 10.0.0.0/8: never a real public address.
            IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 | (n & 0x00ff_ffff)))
        }
        (Strategy::Token, IpAddr::V6(a)) => {
            let digits = engine.number_substitute(
                kind,
                Strategy::Token,
                &a.to_bits().to_string().into_bytes(),
            );
            let n: u128 = std::str::from_utf8(&digits)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from_bits(
                (0xfd00u128 << 112) | (n & ((1u128 << 112) - 1)),
            ))
        }
        (_, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (_, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    })
}

/// Clears the host bits of `addr` beyond `bits`: cidr values must have none.
fn network_of(addr: std::net::IpAddr, bits: u8) -> std::net::IpAddr {
    use std::net::IpAddr;
    match addr {
        IpAddr::V4(a) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits.min(32)))
            };
            IpAddr::V4((a.to_bits() & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits.min(128)))
            };
            IpAddr::V6((a.to_bits() & mask).into())
        }
    }
}

fn mask_inet_text(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let text = std::str::from_utf8(value).unwrap_or("");
    let (addr_text, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let Ok(addr) = addr_text.parse::<std::net::IpAddr>() else {
        return engine.mask_text(value, scratch, tally);
    };
    let kind = if addr.is_ipv4() {
        Kind::Ipv4
    } else {
        Kind::Ipv6
    };
    if !engine.scanner().detectors().contains(kind) || addr.is_unspecified() || addr.is_loopback() {
        return Masked::Unchanged;
    }
    tally.add(kind);
    match inet_substitute(engine, kind, addr) {
        None => Masked::Null,
        Some(new) => {
            let new = match prefix.and_then(|p| p.parse::<u8>().ok()) {
                Some(bits) => network_of(new, bits),
                None => new,
            };
            let mut s = new.to_string();
            if let Some(p) = prefix {
                s.push('/');
                s.push_str(p);
            }
            Masked::Replaced(s.into_bytes())
        }
    }
}

fn mask_inet_binary(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    use std::net::IpAddr;
    let addr = match value {
        [2, _, _, 4, a @ ..] if a.len() == 4 => {
            IpAddr::from(<[u8; 4]>::try_from(a).expect("four bytes"))
        }
        [3, _, _, 16, a @ ..] if a.len() == 16 => {
            IpAddr::from(<[u8; 16]>::try_from(a).expect("sixteen bytes"))
        }
        _ => return fail_closed(engine, value, scratch, tally),
    };
    let kind = if addr.is_ipv4() {
        Kind::Ipv4
    } else {
        Kind::Ipv6
    };
    if !engine.scanner().detectors().contains(kind) || addr.is_unspecified() || addr.is_loopback() {
        return Masked::Unchanged;
    }
    tally.add(kind);
    match inet_substitute(engine, kind, addr) {
        None => Masked::Null,
        Some(new) => {
            // A cidr value (flag byte set) keeps no host bits.
            let new = if value[2] == 1 {
                network_of(new, value[1])
            } else {
                new
            };
            let mut out = value[..4].to_vec();
            match new {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
            Masked::Replaced(out)
        }
    }
}

/// Binary array: header, dimensions, then length-prefixed elements of the
/// element type, each masked by that type.
fn mask_array_binary(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let word = |i: usize| -> Option<i32> {
        Some(i32::from_be_bytes(value.get(i..i + 4)?.try_into().ok()?))
    };
    let (Some(ndim), Some(elem_oid)) = (word(0), word(8)) else {
        return fail_closed(engine, value, scratch, tally);
    };
    if !(0..=6).contains(&ndim) {
        return fail_closed(engine, value, scratch, tally);
    }
    let header = 12 + 8 * ndim as usize;
    if value.len() < header {
        return fail_closed(engine, value, scratch, tally);
    }
    let mut out = value[..header].to_vec();
    // The has-nulls flag must be set when an element becomes NULL.
    let mut nulled = false;
    match mask_elements(
        engine,
        &value[header..],
        |_| elem_oid as u32,
        false,
        &mut out,
        &mut nulled,
        scratch,
        tally,
    ) {
        Some(true) => {
            if nulled {
                out[4..8].copy_from_slice(&1i32.to_be_bytes());
            }
            Masked::Replaced(out)
        }
        Some(false) => Masked::Unchanged,
        None => fail_closed(engine, value, scratch, tally),
    }
}

/// Binary record: a field count, then each field's type OID and value.
fn mask_record_binary(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    if value.len() < 4 {
        return fail_closed(engine, value, scratch, tally);
    }
    let mut out = value[..4].to_vec();
    let mut nulled = false;
    match mask_elements(
        engine,
        &value[4..],
        |_| 0,
        true,
        &mut out,
        &mut nulled,
        scratch,
        tally,
    ) {
        Some(true) => Masked::Replaced(out),
        Some(false) => Masked::Unchanged,
        None => fail_closed(engine, value, scratch, tally),
    }
}

/// Masks a run of length-prefixed binary values (optionally each preceded
/// by its type OID) into `out`. Returns whether anything changed, or `None`
/// when the bytes do not have that structure.
#[allow(clippy::too_many_arguments)]
fn mask_elements(
    engine: &Masker,
    mut rest: &[u8],
    oid_of: impl Fn(usize) -> u32,
    with_oids: bool,
    out: &mut Vec<u8>,
    nulled: &mut bool,
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Option<bool> {
    let mut changed = false;
    let mut index = 0;
    while !rest.is_empty() {
        let oid = if with_oids {
            let oid = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
            out.extend_from_slice(&rest[..4]);
            rest = &rest[4..];
            oid
        } else {
            oid_of(index)
        };
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = &rest[4..];
        if len < 0 {
            out.extend_from_slice(&(-1i32).to_be_bytes());
        } else {
            let element = rest.get(..len as usize)?;
            rest = &rest[len as usize..];
            match mask_value(engine, oid, 1, element, scratch, tally) {
                Masked::Unchanged => {
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(element);
                }
                Masked::Null => {
                    changed = true;
                    *nulled = true;
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                }
                Masked::Replaced(v) => {
                    changed = true;
                    out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    out.extend_from_slice(&v);
                }
            }
        }
        index += 1;
    }
    Some(changed)
}

/// A binary float4 or float8, masked by the decimal forms of its value; a
/// substitute is a float of the same width.
fn mask_float_binary(
    engine: &Masker,
    value: &[u8],
    width: u8,
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let n = match (width, value.len()) {
        (4, 4) => f64::from(f32::from_be_bytes(value.try_into().expect("four bytes"))),
        (8, 8) => f64::from_be_bytes(value.try_into().expect("eight bytes")),
        _ => return fail_closed(engine, value, scratch, tally),
    };
    match mask_float(engine, n, width == 4, scratch, tally) {
        Some(Masked::Replaced(digits)) => {
            let n: f64 = std::str::from_utf8(&digits)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0);
            Masked::Replaced(if width == 4 {
                (n as f32).to_be_bytes().to_vec()
            } else {
                n.to_be_bytes().to_vec()
            })
        }
        Some(other) => other,
        // A value Airlock could not render is not passed unread.
        None => Masked::Null,
    }
}

/// The number `bits` holds (at most 64 of them), masked; the substitute in
/// as many bits (its low bits, should it not fit), big-endian in 8 bytes.
fn mask_bit_number(
    engine: &Masker,
    n: u64,
    bits: u32,
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Option<Masked> {
    use std::io::Write;
    let mut buf = [0u8; 24];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "{n}").ok()?;
    let len = cursor.position() as usize;
    Some(match engine.mask_number(&buf[..len], scratch, tally) {
        Masked::Replaced(digits) => {
            let sub: u64 = std::str::from_utf8(&digits)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let mask = if bits >= 64 {
                u64::MAX
            } else {
                (1 << bits) - 1
            };
            Masked::Replaced((sub & mask).to_be_bytes().to_vec())
        }
        other => other,
    })
}

/// bit / varbit in text format: a string of `0` and `1`.
fn mask_bits_text(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let bits = value.len() as u32;
    if bits == 0 || bits > 64 || !value.iter().all(|&b| b == b'0' || b == b'1') {
        return Masked::Unchanged;
    }
    let n = value
        .iter()
        .fold(0u64, |n, &b| (n << 1) | u64::from(b - b'0'));
    match mask_bit_number(engine, n, bits, scratch, tally) {
        Some(Masked::Replaced(be)) => {
            let sub = u64::from_be_bytes(be.try_into().unwrap_or([0; 8]));
            let text = (0..bits)
                .rev()
                .map(|i| if (sub >> i) & 1 == 1 { b'1' } else { b'0' })
                .collect();
            Masked::Replaced(text)
        }
        Some(other) => other,
        None => Masked::Null,
    }
}

/// bit / varbit in binary format: a bit count, then the bits, high first,
/// padded to whole bytes.
fn mask_bits_binary(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    let Some(count) = value
        .get(..4)
        .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    else {
        return Masked::Null;
    };
    let bytes = &value[4..];
    let Ok(bits) = u32::try_from(count) else {
        return Masked::Null;
    };
    if bits == 0 || bits > 64 || bytes.len() != bits.div_ceil(8) as usize {
        return Masked::Unchanged;
    }
    let padding = bytes.len() as u32 * 8 - bits;
    let n = bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)) >> padding;
    match mask_bit_number(engine, n, bits, scratch, tally) {
        Some(Masked::Replaced(be)) => {
            let sub = u64::from_be_bytes(be.try_into().unwrap_or([0; 8])) << padding;
            let mut out = value[..4].to_vec();
            out.extend_from_slice(&sub.to_be_bytes()[8 - bytes.len()..]);
            Masked::Replaced(out)
        }
        Some(other) => other,
        None => Masked::Null,
    }
}

/// Binary money: cents in an int8. Masked by the decimal forms of its
/// amount; a substitute is a whole amount.
fn mask_money_binary(
    engine: &Masker,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    use std::io::Write;
    let Ok(bytes) = <[u8; 8]>::try_from(value) else {
        return fail_closed(engine, value, scratch, tally);
    };
    let cents = i64::from_be_bytes(bytes);
    let mut buf = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let (whole, part) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
    if write!(cursor, "{whole}.{part:02}").is_err() {
        return Masked::Null;
    }
    let len = cursor.position() as usize;
    match mask_number_forms(engine, &buf[..len], scratch, tally) {
        Masked::Replaced(digits) => {
            let n: i64 = std::str::from_utf8(&digits)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Masked::Replaced(n.saturating_mul(100).to_be_bytes().to_vec())
        }
        other => other,
    }
}

/// The flags of a binary range: empty, lower and upper bound inclusive,
/// lower and upper bound infinite.
const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;

/// The bounds a binary range carries, from its flags.
fn range_bounds(flags: u8) -> [bool; 2] {
    let empty = flags & RANGE_EMPTY != 0;
    [
        !empty && flags & RANGE_LB_INF == 0,
        !empty && flags & RANGE_UB_INF == 0,
    ]
}

/// Whether `value` has the layout of a binary range: a flags byte and
/// each bound it announces, length-prefixed, and nothing more.
fn range_parses(value: &[u8]) -> bool {
    let Some((&flags, mut rest)) = value.split_first() else {
        return false;
    };
    if flags & !0x1f != 0 || (flags & RANGE_EMPTY != 0 && flags != RANGE_EMPTY) {
        return false;
    }
    for present in range_bounds(flags) {
        if !present {
            continue;
        }
        let Some(len) = rest
            .get(..4)
            .map(|l| i32::from_be_bytes([l[0], l[1], l[2], l[3]]))
        else {
            return false;
        };
        let Some(next) = usize::try_from(len)
            .ok()
            .and_then(|len| rest.get(4 + len..))
        else {
            return false;
        };
        rest = next;
    }
    rest.is_empty()
}

/// Binary range: each bound masked as a value of `element` (0: not known,
/// read by what its bytes can be). A bound that would become NULL makes
/// the whole range NULL: a range has no NULL bounds.
fn mask_range_binary(
    engine: &Masker,
    element: u32,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    if !range_parses(value) {
        return fail_closed(engine, value, scratch, tally);
    }
    let flags = value[0];
    let mut rest = &value[1..];
    let mut out = vec![flags];
    let mut changed = false;
    for present in range_bounds(flags) {
        if !present {
            continue;
        }
        let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let bound = &rest[4..4 + len];
        rest = &rest[4 + len..];
        let masked = if element == 0 {
            guess_binary(engine, bound, scratch, tally)
        } else {
            mask_value(engine, element, 1, bound, scratch, tally)
        };
        if !push_part(&mut out, bound, masked, &mut changed) {
            return Masked::Null;
        }
    }
    finished(out, changed)
}

/// Appends a range's bound or a multirange's range, length-prefixed:
/// masked, or `raw` as it came. `false` when it became NULL, which a range
/// cannot hold: the whole value must then be NULL.
fn push_part(out: &mut Vec<u8>, raw: &[u8], masked: Masked, changed: &mut bool) -> bool {
    let part = match &masked {
        Masked::Unchanged => raw,
        Masked::Replaced(v) => {
            *changed = true;
            v.as_slice()
        }
        Masked::Null => return false,
    };
    out.extend_from_slice(&(part.len() as i32).to_be_bytes());
    out.extend_from_slice(part);
    true
}

/// The rebuilt value when a part changed.
fn finished(out: Vec<u8>, changed: bool) -> Masked {
    if changed {
        Masked::Replaced(out)
    } else {
        Masked::Unchanged
    }
}

/// Whether `value` has the layout of a binary multirange: a count, then
/// that many length-prefixed ranges.
fn multirange_parses(value: &[u8]) -> bool {
    let Some(count) = value
        .get(..4)
        .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    else {
        return false;
    };
    let mut rest = &value[4..];
    for _ in 0..count.max(0) {
        let Some(len) = rest
            .get(..4)
            .map(|l| i32::from_be_bytes([l[0], l[1], l[2], l[3]]))
        else {
            return false;
        };
        let Some(range) = usize::try_from(len).ok().and_then(|l| rest.get(4..4 + l)) else {
            return false;
        };
        if !range_parses(range) {
            return false;
        }
        rest = &rest[4 + range.len()..];
    }
    count >= 0 && rest.is_empty()
}

/// Binary multirange: each range masked by [`mask_range_binary`].
fn mask_multirange_binary(
    engine: &Masker,
    range_oid: u32,
    value: &[u8],
    scratch: &mut Scratch,
    tally: &mut Tally,
) -> Masked {
    if !multirange_parses(value) {
        return fail_closed(engine, value, scratch, tally);
    }
    let element = match class_of(range_oid) {
        Class::Range(element) => element,
        _ => 0,
    };
    let mut out = value[..4].to_vec();
    let mut rest = &value[4..];
    let mut changed = false;
    while rest.len() >= 4 {
        let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let range = &rest[4..4 + len];
        rest = &rest[4 + len..];
        let masked = mask_range_binary(engine, element, range, scratch, tally);
        if !push_part(&mut out, range, masked, &mut changed) {
            return Masked::Null;
        }
    }
    finished(out, changed)
}

/// Whether `value` has the layout of a binary record: a field count, then
/// that many fields of type OID, length (-1: NULL) and bytes, and nothing
/// more.
fn record_parses(value: &[u8]) -> bool {
    let Some(count) = value
        .get(..4)
        .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    else {
        return false;
    };
    // PostgreSQL's limit on the columns of a row.
    if !(0..=1664).contains(&count) {
        return false;
    }
    let mut rest = &value[4..];
    for _ in 0..count {
        let Some(len) = rest
            .get(4..8)
            .map(|l| i32::from_be_bytes([l[0], l[1], l[2], l[3]]))
        else {
            return false;
        };
        rest = &rest[8..];
        if len < -1 {
            return false;
        }
        if len > 0 {
            let Some(next) = rest.get(len as usize..) else {
                return false;
            };
            rest = next;
        }
    }
    rest.is_empty()
}

/// Whether `value` has the layout of a binary array: dimensions, a
/// has-nulls flag, an element type and that many length-prefixed elements.
fn array_parses(value: &[u8]) -> bool {
    let word = |i: usize| -> Option<i32> {
        Some(i32::from_be_bytes(value.get(i..i + 4)?.try_into().ok()?))
    };
    let (Some(ndim), Some(flags)) = (word(0), word(4)) else {
        return false;
    };
    if !(0..=6).contains(&ndim) || !(0..=1).contains(&flags) || value.len() < 12 {
        return false;
    }
    let mut elements: u64 = if ndim == 0 { 0 } else { 1 };
    for d in 0..ndim as usize {
        match word(12 + 8 * d) {
            Some(n) if n >= 0 => elements = elements.saturating_mul(n as u64),
            _ => return false,
        }
    }
    let mut at = 12 + 8 * ndim as usize;
    for _ in 0..elements {
        match word(at) {
            Some(-1) => at += 4,
            Some(len) if len >= 0 => at += 4 + len as usize,
            _ => return false,
        }
    }
    at == value.len()
}

/// A binary value of a type Airlock does not know (a binary COPY field, a
/// domain, a table row type, an extension's type): read as whatever its
/// bytes can be — integers by width, layouts that describe themselves
/// (inet, records, arrays, ranges, multirange, jsonb, numeric), a float —
/// and otherwise as text, failing closed.
fn guess_binary(engine: &Masker, value: &[u8], scratch: &mut Scratch, tally: &mut Tally) -> Masked {
    // Only integers below 10^18 are read as such: the bit patterns of
    // floats and of text are larger, and reading them as numbers would find
    // cards in them.
    let small_int = match value.len() {
        4 => {
            (0..1_000_000_000).contains(&i32::from_be_bytes(value.try_into().expect("four bytes")))
        }
        8 => (0..1_000_000_000_000_000_000)
            .contains(&i64::from_be_bytes(value.try_into().expect("eight bytes"))),
        _ => false,
    };
    if small_int {
        if let Masked::Replaced(v) =
            mask_int_binary(engine, value, value.len() as u8, scratch, tally)
        {
            return Masked::Replaced(v);
        }
    }
    // Layouts that describe themselves: inet/cidr, arrays, jsonb, JSON text.
    if matches!(
        value,
        [2, 0..=32, 0 | 1, 4, _, _, _, _] | [3, _, 0 | 1, 16, ..]
    ) && value.len() == 4 + value[3] as usize
    {
        return mask_inet_binary(engine, value, scratch, tally);
    }
    // The layouts are checked whole (every length adds up to the value's),
    // so text or a number is not taken for one.
    if record_parses(value) {
        return mask_record_binary(engine, value, scratch, tally);
    }
    if array_parses(value) {
        return mask_array_binary(engine, value, scratch, tally);
    }
    if range_parses(value) {
        return mask_range_binary(engine, 0, value, scratch, tally);
    }
    if multirange_parses(value) {
        return mask_multirange_binary(engine, 0, value, scratch, tally);
    }
    if let Some((1, doc)) = value.split_first() {
        if looks_like_json(doc) {
            return mask_value(engine, 3802, 1, value, scratch, tally);
        }
    }
    if looks_like_json(value) {
        return engine.mask_json(value, scratch, tally);
    }
    if value.len() >= 8 && numeric_to_text(value).is_some() {
        if let Masked::Replaced(v) = mask_numeric_binary(engine, value, scratch, tally) {
            return Masked::Replaced(v);
        }
    }
    // Eight bytes that are no small integer: a float8 (a domain over one).
    if value.len() == 8 && !small_int {
        if let Masked::Replaced(v) = mask_float_binary(engine, value, 8, scratch, tally) {
            return Masked::Replaced(v);
        }
    }
    match fail_closed(engine, value, scratch, tally) {
        Masked::Unchanged if may_be_wide(value) && !is_printable(value) => {
            match mask_wide_text(engine, value, scratch, tally) {
                // Wide text in a type Airlock cannot rewrite.
                Masked::Replaced(_) => Masked::Null,
                other => other,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
