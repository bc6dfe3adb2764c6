//! The composition root of the node agent: the one place that starts, reloads and stops it.
//!
//! Both sources feed the same steps. A source yields a configuration and the services it knows
//! (the standalone file with lb-ipam's allocations — [`standalone`]; or the Kubernetes objects
//! watched by `sources::kube` — `kube`). From them one pure step derives the desired state
//! ([`desired`]): the datapath's service table, and the services BGP and L2 may announce, gated
//! by what the kernel serves ([`serving`]). The datapath runs on its own thread ([`datapath`]);
//! BGP and L2 run as their own tasks (`bgp::io::instance`, `l2`). The control socket and the
//! metrics/health endpoint ([`servers`]) only read what runs.

pub mod datapath;
pub mod desired;
pub mod health;
#[cfg(feature = "kubernetes")]
pub mod kube;
pub mod preflight;
pub mod servers;
pub mod serving;
pub mod standalone;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ipam::ServiceStatus;
use serving::Serving;

/// How long start-up waits for the datapath's first apply before BGP and L2 start anyway
/// (announcing only what is served by then).
pub const FIRST_APPLY: Duration = Duration::from_secs(10);

/// What the datapath serves, as `herald services` and `herald datapath status` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServingView {
    /// A datapath runs on this node (else addresses are announced without one).
    pub enabled: bool,
    /// Its programs are attached.
    pub attached: bool,
    /// Why it is not attached, or why its last apply failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Entries (address:port/protocol) in the desired table.
    pub entries: usize,
    /// Backends over all entries of the desired table.
    #[serde(default)]
    pub backends: usize,
    /// Wall time of the last apply of a new table (Maglev rebuilds and map writes), µs.
    #[serde(default)]
    pub last_apply_micros: u64,
    /// Addresses served (and so announced).
    pub served: Vec<IpAddr>,
    /// Addresses not served, and why.
    pub not_served: BTreeMap<IpAddr, String>,
    /// The datapath's own problems (backends waiting for a next hop) and the table's
    /// (endpoints on unknown nodes).
    pub problems: Vec<String>,
}

impl ServingView {
    /// A snapshot of `serving`.
    pub fn new(serving: &Serving) -> Self {
        let Some(state) = serving.state() else {
            return Self::default();
        };
        let mut problems = serving.table().problems.clone();
        problems.extend(state.problems.iter().cloned());
        Self {
            enabled: true,
            attached: state.attached,
            error: state.error.clone(),
            entries: serving.table().services.len(),
            backends: serving
                .table()
                .services
                .iter()
                .map(|s| s.backends.len())
                .sum(),
            last_apply_micros: state.last_apply_micros,
            served: serving.served().unwrap_or_default().into_iter().collect(),
            not_served: serving.unserved_reasons(),
            problems,
        }
    }

    /// One line per reason an address is not served (and so not announced) from this node, for
    /// status objects: the datapath's error, then each unserved address.
    pub fn problem_lines(&self) -> Vec<String> {
        if !self.enabled {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(error) = &self.error {
            out.push(error.clone());
        }
        out.extend(
            self.not_served
                .iter()
                .map(|(addr, why)| format!("{addr} not announced from this node: {why}")),
        );
        out
    }

    /// Adds the not-served addresses (and why) to `herald services` rows.
    pub fn annotate(&self, rows: &mut [ServiceStatus]) {
        for row in rows {
            row.not_served = row
                .addresses
                .iter()
                .filter_map(|a| self.not_served.get(a).map(|why| (*a, why.clone())))
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_lines_name_the_error_and_each_unserved_address() {
        let view = ServingView {
            enabled: true,
            error: Some("datapath not attached: no interface eth9".into()),
            not_served: [(
                "10.200.0.10".parse().expect("ip"),
                "no ready backend this node may use".to_owned(),
            )]
            .into(),
            ..ServingView::default()
        };
        assert_eq!(
            view.problem_lines(),
            [
                "datapath not attached: no interface eth9",
                "10.200.0.10 not announced from this node: no ready backend this node may use",
            ]
        );
        assert!(
            ServingView::default().problem_lines().is_empty(),
            "no datapath, no lines"
        );
    }
}
