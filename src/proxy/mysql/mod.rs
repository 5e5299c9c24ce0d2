//! The MySQL / MariaDB side of the gateway.
//!
//! * [`packet`] — packet framing, sequence ids, and the field encodings
//!   inside payloads;
//! * [`auth`] — the password plugins' arithmetic (`mysql_native_password`,
//!   `caching_sha2_password`) and connection nonces;
//! * [`handshake`] — the connection-phase packets and OK / EOF / ERR;
//! * [`upstream`] — Airlock's own logins to the real server.

pub mod auth;
pub mod handshake;
pub mod packet;
pub mod upstream;
