//! Kubernetes mode of the speaker: the custom resources ([`crd`]), the pure translation of
//! cluster objects into the desired state the standalone file also feeds ([`mod@translate`]), the
//! reflector-based watcher that drives it ([`watch`]), TCP MD5 key files from Secrets ([`md5`]),
//! the rate-bounded `BGPNodeStatus` writer ([`status`]) and arp-responder's membership store on
//! Leases ([`lease`]); [`client()`] builds the API client from `--kubeconfig` or in-cluster config.
//! `herald agent --kubernetes` itself, which applies each desired state to the datapath, the BGP
//! instance and the L2 announcer with its decisions in [`reconcile`], is `crate::daemon::kube`.
//!
//! The I/O boundaries are `watch` (list/watch), `status` (server-side apply), `lease` (Lease
//! apply/list/delete) and `md5` (key files); `crd`, `translate` and `reconcile` are pure.

pub mod client;
pub mod crd;
pub mod lease;
pub mod md5;
pub mod reconcile;
pub mod status;
pub mod translate;
pub mod watch;

pub use client::client;
pub use lease::LeaseStore;
pub use md5::KeyFiles;
pub use status::{StatusWriter, node_status};
pub use translate::{Desired, Identity, Md5Key, Snapshot, translate};
pub use watch::{SourceConfig, Watched, run};
