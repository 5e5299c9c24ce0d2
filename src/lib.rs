//! Airlock: a wire-protocol gateway between AI agents and their databases.
//!
//! Agents connect with their ordinary drivers to Airlock as if it were the
//! database. Every statement passes the [`gate`]; every result row passes a
//! [`mask::RowMasker`]; everything is reported to an [`audit`] sink.
//!
//! Where things live:
//!
//! * [`cli`] — the `airlock` command (thin `main.rs` calls it);
//! * [`config`] — `airlock.toml` into a validated [`config::Config`];
//! * [`identity`] — who may connect and how they prove it;
//! * [`confinement`] — what the database enforces for an identity (upstream role, read-only, statement timeout);
//! * [`limits`] — fair limits per address and identity (pre-auth connections, sessions, rate);
//! * [`sql`] — statement classification (lexer, classifier);
//! * [`policy`] — rules that turn classifications into allow / hold / deny;
//! * [`gate`] — the protocol-independent decision seam;
//! * [`mask`] — result-row masking;
//! * [`audit`] — the record of sessions, statements and results;
//! * [`proxy`] — the wire protocols (only here), one module per database;
//! * [`metrics`] — the counters and the `/metrics`, `/healthz`, `/readyz` endpoint.

pub mod approval;
pub mod audit;
pub mod cli;
pub mod config;
pub mod confinement;
pub mod gate;
pub mod hex;
pub mod identity;
pub mod inbox;
pub mod limits;
pub mod mask;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod sql;
