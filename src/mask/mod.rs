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
mod pg;
mod scan;
mod tld;

pub use json::InvalidJson;
pub use kind::{Detectors, Finding, Kind};
pub use masker::{MaskSettings, Masked, Masker, Scratch, Strategy, Tally};
pub use pg::{Column, MaskStats, RowMasker, RowOutcome};
pub use scan::Scanner;

#[cfg(test)]
mod robustness;
