//! Shared test support: the real gateway binary, a raw wire client, and the
//! differential corpus. Each test crate uses a different part of it.
#![allow(dead_code)]

pub mod corpus;
pub mod differential;
pub mod gateway;
pub mod inbox;
pub mod mysql;
pub mod pglog;
pub mod wire;
