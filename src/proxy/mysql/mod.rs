//! The MySQL / MariaDB side of the gateway.
//!
//! * [`packet`] — packet framing, sequence ids, and the field encodings
//!   inside payloads.

pub mod packet;
