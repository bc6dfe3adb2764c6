//! Herald's node agent as a library: configuration, BGP instance, advertisements and the ops
//! surface. `main.rs` only parses the command line and calls in here.
//!
//! Nothing here panics on input: `unwrap`, `expect` and unchecked indexing are denied outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod advertise;
pub mod api;
pub mod bfd;
pub mod bgp;
pub mod bmp;
pub mod config;
pub mod daemon;
pub mod error;
pub mod fib;
pub mod import_policy;
pub mod ipam;
pub mod l2;
pub mod sanitize;
pub mod sources;
mod task;
pub mod unnumbered;

pub use error::{Error, Result};
