//! Datapath user space: loads and attaches the XDP/TC programs, owns the BPF maps, builds Maglev
//! tables and reconciles services and backends into the maps.

pub mod agent;
pub mod config;
pub mod error;
pub mod loader;
pub mod maglev;
pub mod neighbour;
pub mod reconcile;
pub mod status;

pub use error::{Error, Result};
