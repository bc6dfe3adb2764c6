//! LoadBalancer IP address management: pools, a pure deterministic allocator, persisted state,
//! and (in Kubernetes mode) a controller writing Service status.
//!
//! Layout: [`pool`], [`selector`], [`request`] and [`allocator`] are the pure core;
//! [`service`] and [`config`] are the standalone YAML schema; [`store`] owns the state file;
//! [`standalone`] ties file config, allocator and store together; [`crd`] and [`controller`] are
//! the Kubernetes side.
//!
//! Nothing here panics on input: `unwrap`, `expect` and unchecked indexing are denied outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod allocator;
pub mod config;
#[cfg(feature = "kubernetes")]
pub mod controller;
#[cfg(feature = "kubernetes")]
pub mod crd;
#[cfg(feature = "http")]
pub mod endpoint;
pub mod error;
mod intervals;
pub mod pool;
pub mod request;
pub mod selector;
pub mod service;
pub mod standalone;
pub mod store;

pub use allocator::{Allocator, Held, Outcome, PoolStatus, ServiceView, Unsatisfied};
pub use config::{IpamConfig, PoolConfig, build_requests};
pub use error::{Error, Result};
pub use pool::{Block, IpFamily, Pool, PoolSpec};
pub use request::{Families, FamilyPolicy, PortProto, Protocol, Request, ServiceKey, Sharing};
pub use selector::{LabelSelector, LabelSelectorRequirement, SelectorOperator};
pub use service::ServiceSpec;
