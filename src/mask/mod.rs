//! Masking of result rows by the content of their values.
//!
//! Every row a client receives passes through the session's [`RowMasker`].
//! The relay hands it whole DataRow frames so that a row with nothing to
//! mask is forwarded as the very bytes the upstream sent: no decoding, no
//! copy. Detectors and strategies plug in behind this type.

mod checks;
mod json;
mod kind;
mod masker;
mod scan;
mod tld;

pub use json::InvalidJson;
pub use kind::{Detectors, Finding, Kind};
pub use masker::{MaskSettings, Masked, Masker, Scratch, Strategy, Tally};
pub use scan::Scanner;

use bytes::Bytes;

/// The per-session hook every result row passes through.
#[derive(Debug, Default)]
pub struct RowMasker {
    rows_seen: u64,
}

/// What the masker did to one row.
#[derive(Debug, PartialEq, Eq)]
pub enum RowOutcome {
    /// Forward the original bytes.
    Unchanged,
    /// Forward this rewritten frame instead.
    Rewritten(Bytes),
}

impl RowMasker {
    /// A masker with no detectors: every row is forwarded unchanged.
    pub fn pass_through() -> Self {
        Self::default()
    }

    /// Inspects one row. `row` is the complete DataRow frame as received.
    pub fn mask_row(&mut self, _row: &Bytes) -> RowOutcome {
        self.rows_seen += 1;
        RowOutcome::Unchanged
    }

    pub fn rows_seen(&self) -> u64 {
        self.rows_seen
    }
}
