//! Datapath user space, a library of the node agent: loads and attaches the XDP/TC programs, owns
//! the BPF maps, builds Maglev tables and reconciles the agent's services into the maps.

pub mod agent;
pub mod config;
pub mod error;
pub mod loader;
pub mod maglev;
pub mod neighbour;
pub mod reconcile;
pub mod status;

pub use agent::{ApplyReport, BackendInput, Datapath, ServiceInput};
pub use error::{Error, Result};
