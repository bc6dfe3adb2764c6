//! Datapath user space, a library driven by the node agent: [`driver::Datapath`] loads and
//! attaches the XDP/TC programs through pinned links, owns the BPF maps and keeps them equal to
//! the services the caller hands it (Maglev tables, backends, next hops); [`config`] is the
//! `datapath:` section of the agent's YAML; [`status`] and [`maglev`] serve the CLI.
//!
//! Nothing here panics on input: `unwrap`, `expect` and unchecked indexing are denied outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod config;
pub mod driver;
pub mod error;
pub mod loader;
pub mod maglev;
pub mod neighbour;
pub mod reconcile;
pub mod status;

pub use config::DatapathConfig;
pub use driver::{ApplyReport, BackendInput, Datapath, ServiceInput, Unresolved};
pub use error::{Error, Result};
pub use maglev::Proto;
