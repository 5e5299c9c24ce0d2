//! One statement run by Airlock itself on an upstream connection, for a
//! caller that is not a wire client (the MCP endpoint): the result comes
//! back as values, read only up to a row and a byte cap, every value
//! through the session's masker.
//!
//! The wire formats stay in `proxy/pg` and `proxy/mysql`; this file holds
//! what both answer with.

use serde::Serialize;
use std::time::Duration;

/// How much of a result is read, and for how long a statement may run.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// Rows returned at most; one more is read to know whether there are more.
    pub max_rows: u64,
    /// Bytes of (masked) values returned at most.
    pub max_bytes: u64,
    /// How long the server may run the statement.
    pub timeout: Duration,
}

/// One result column.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ResultColumn {
    pub name: String,
    /// The server's type name (`int4`, `text`, `varchar`…).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// `text` after a masker's `mask_message_text`, which answers `None`
/// when it changed nothing.
pub fn masked_text(masked: Option<Vec<u8>>, text: String) -> String {
    match masked {
        Some(m) => String::from_utf8_lossy(&m).into_owned(),
        None => text,
    }
}

/// Why reading stopped before the end of the result.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoppedBy {
    MaxRows,
    MaxBytes,
}

/// What a statement returned, masked.
#[derive(Clone, Debug, Default)]
pub struct CappedResult {
    pub columns: Vec<ResultColumn>,
    /// Values as JSON: numbers and booleans where the type says so,
    /// strings otherwise, `null` for SQL NULL.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Set when rows were left unread.
    pub stopped_by: Option<StoppedBy>,
    /// The server's command tag (`SELECT 3`, `UPDATE 1`), when it ran to the end.
    pub command: Option<String>,
    /// Masking counts, for the masked-column memory of `transforms` rules.
    pub stats: crate::mask::MaskStats,
}

#[derive(Debug, thiserror::Error)]
pub enum CappedError {
    /// The server refused or failed the statement (masked message).
    #[error("{code}: {message}")]
    Server { code: String, message: String },
    #[error("the statement ran longer than {0:?} and was cancelled")]
    Timeout(Duration),
    #[error("cannot reach the upstream server: {0}")]
    Upstream(String),
    #[error("{0}")]
    Unsupported(String),
}
