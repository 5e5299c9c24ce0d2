//! Masking of result rows by the content of their values.
//!
//! Every row a client receives passes through the session's [`RowMasker`]
//! (PostgreSQL) or [`MysqlRowMasker`] (MySQL / MariaDB). The relay hands
//! it whole DataRow frames or row payloads so that a row with nothing to
//! mask is forwarded as the very bytes the upstream sent: no decoding, no
//! copy.
//!
//! - `scan` finds values ([`Scanner`]); `checks` and `tld` are its
//!   validators; `kind` names what it finds.
//! - `masker` replaces them per strategy in text, numbers and JSON
//!   ([`Masker`]); `json` walks documents without re-serialising them.
//! - `pg` applies it to PostgreSQL values by type and format (text and
//!   binary encodings, arrays, COPY data) — value encodings only; the
//!   framing of messages stays in `proxy::pg`.
//! - `mysql` does the same for MySQL / MariaDB rows in the text and binary
//!   protocols, and reads column definitions; packet framing stays in
//!   `proxy::mysql`.
//! - `value` holds what the row maskers share: [`RowOutcome`], [`MaskStats`] and the
//!   value rules that do not depend on a wire format.
//! - `columns` remembers which columns values were found in
//!   ([`MaskedColumns`]), for policy rules on reversible transforms.

mod checks;
mod columns;
mod json;
mod kind;
mod masker;
pub mod mysql;
mod pg;
pub mod sample;
mod scan;
mod tld;
mod value;

pub use columns::MaskedColumns;
pub use json::InvalidJson;
pub use kind::{Detectors, Finding, Kind};
pub use masker::{MaskSettings, Masked, Masker, Scratch, Strategy, Tally};
pub use mysql::{MysqlColumn, MysqlRowMasker};
pub use pg::{Column, RowMasker};
pub use scan::Scanner;
pub use value::{MaskStats, RowOutcome};

#[cfg(test)]
mod robustness;
