//! L2 announcements for Herald: ARP and NDP wire types ([`wire`]), the pure reply decision
//! ([`decide`]), leader election per service IP ([`election`]), takeover announcements
//! ([`takeover`]), AF_PACKET and rtnetlink I/O ([`io`]) and the tokio driver that ties them together
//! ([`runtime`]), with a status snapshot and Prometheus rendering ([`status`]).
//!
//! The speaker embeds this crate through [`runtime::L2Responder`]; `herald-l2` is a small standalone
//! binary over the same API, used by the end-to-end tests until the speaker lands.
//!
//! Nothing here panics on input: `unwrap`, `expect` and unchecked indexing are denied outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod config;
pub mod decide;
pub mod election;
pub mod error;
pub mod frames;
pub mod io;
pub mod runtime;
pub mod status;
pub mod takeover;
pub mod wire;

pub use error::{Error, Result};
