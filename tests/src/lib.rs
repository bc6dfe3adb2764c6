//! Shared fixtures for Herald's end-to-end tests: network namespaces, veth links and real BGP
//! daemons (BIRD 2, FRR, GoBGP, ExaBGP), each cleaned up on drop even when a test fails.
//!
//! The namespace, link, process and FRR primitives live in `herald-lab` (the containerlab runner uses
//! them too) and are re-exported here; this crate adds per-test naming and directories
//! ([`TestLab`]) and the launchers only tests need ([`Bird`], [`GoBgp`], [`ExaBgp`]).
//!
//! ```no_run
//! use herald_tests::{TestLab, VethPair};
//! let lab = TestLab::new("my_test").unwrap();
//! let a = lab.netns("a").unwrap();
//! let b = lab.netns("b").unwrap();
//! let _link = VethPair::create(&a, "eth1", &b, "eth1").unwrap();
//! a.addr_add("eth1", "10.0.0.1/30").unwrap();
//! ```
//! Drop order matters only for speed: declare daemons after the namespaces they run in, so they
//! stop first (a namespace's drop also kills anything left inside it).

pub mod bird;
pub mod error;
pub mod exabgp;
pub mod gobgp;
pub mod netns_runtime;
pub mod testlab;

pub use bird::{Bird, BirdProtocol, BirdRoute};
pub use error::{Error, Result};
pub use exabgp::{ExaBgp, ExaBgpNeighbor, end_of_rib_count, withdrawn_prefixes};
pub use gobgp::{GoBgp, GoBgpNeighbor, GoBgpPath};
pub use herald_lab::frr::{FrrPath, FrrPeer};
pub use herald_lab::{
    Blackhole, Bridge, ChildProcess, Frr, FrrConfig, FrrDaemon, Netns, ProcessId, VethPair,
    wait_until, wait_until_ok,
};
pub use netns_runtime::{block_on_in, in_netns, runtime_in};
pub use testlab::TestLab;
