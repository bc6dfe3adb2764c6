//! Herald's network-namespace lab: the primitives that build a topology on one Linux host (network
//! namespaces, veth pairs, bridges, addresses, fault injection, tracked child processes, FRR) and the
//! containerlab runner built on them (`lab up|down|status|exec`).
//!
//! Every resource is an RAII guard that removes what it created on drop, even while a panic unwinds.
//! A guard can be disarmed with `keep()` when the resource must outlive the process (the runner records
//! it on disk instead so `lab down` can remove it later). All I/O goes through `ip`, `tc`, `sysctl` and
//! the daemons' own CLIs (see [`cmd`]); nothing here touches interfaces outside namespaces it created.

pub mod clab;
pub mod cmd;
pub mod demo;
pub mod dsr_proof;
pub mod error;
pub mod frr;
pub mod link;
pub mod netns;
pub mod paced_get;
pub mod process;
pub mod runner;
pub mod wait;

pub use error::{Error, Result};
pub use frr::{Frr, FrrConfig, FrrDaemon};
pub use link::{Blackhole, Bridge, VethPair};
pub use netns::Netns;
pub use process::{ChildProcess, ProcessId};
pub use wait::{wait_until, wait_until_ok};
