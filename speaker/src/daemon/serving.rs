//! "A VIP is announced only when this node's datapath serves it": the one place both sources
//! (file and Kubernetes) pass their services through before BGP and L2 see them.
//!
//! [`Serving::update`] takes the new services, builds the datapath's table
//! ([`super::desired::service_table`]) and returns the services *gated by what the kernel serves
//! now*: an address leaving the table is withdrawn before the datapath is told to remove its
//! entries ([`Serving::commit`]), and an address entering it is announced only once the driver
//! reports its entries served ([`Serving::changed`] wakes the caller to re-announce). Without a
//! `datapath:` section nothing is gated (announcement-only node).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use arp_responder::config::ServiceSpec as L2Service;
use datapath::config::DatapathConfig;
use tokio::sync::watch;

use super::datapath::{DatapathDriver, DatapathState, DriverConfig};
use super::desired::{ServiceTable, TableInputs, gate, own_address, service_table};
use crate::advertise::{AdvertisementKind, ServiceState};
use crate::config::Config;

/// The gate between the services a source knows and what BGP and L2 may announce.
#[derive(Debug, Default)]
pub struct Serving {
    driver: Option<DatapathDriver>,
    state_rx: Option<watch::Receiver<DatapathState>>,
    table: ServiceTable,
    /// Addresses the current table programs (an L2 service's other addresses pass ungated).
    managed: BTreeSet<IpAddr>,
    generation: u64,
}

impl Serving {
    /// Starts the datapath driver when `config` has a `datapath:` section (this node's underlay
    /// address from `nodes:`).
    pub fn start(config: &Config, pin_dir: Option<std::path::PathBuf>) -> std::io::Result<Self> {
        let nodes = crate::config::nodes::node_addresses(config);
        Self::start_with(
            config.datapath.as_ref().map(|d| &d.value),
            pin_dir,
            own_address(&config.node.name, &nodes),
        )
    }

    /// Starts the datapath driver for `section` (none: nothing is gated).
    pub fn start_with(
        section: Option<&DatapathConfig>,
        pin_dir: Option<std::path::PathBuf>,
        node_addr: Option<IpAddr>,
    ) -> std::io::Result<Self> {
        let Some(section) = section else {
            return Ok(Self::default());
        };
        let driver = DatapathDriver::start(DriverConfig {
            config: section.clone(),
            pin_dir,
            node_addr,
        })?;
        Ok(Self {
            state_rx: Some(driver.subscribe()),
            driver: Some(driver),
            ..Self::default()
        })
    }

    /// Whether a datapath runs (and so gates announcements).
    pub fn enabled(&self) -> bool {
        self.driver.is_some()
    }

    /// The datapath's state as last published (`None` without a datapath).
    pub fn state(&self) -> Option<DatapathState> {
        self.state_rx.as_ref().map(|rx| rx.borrow().clone())
    }

    /// The current service table (what `herald services` shows as programmed or not).
    pub fn table(&self) -> &ServiceTable {
        &self.table
    }

    /// The driver, for `herald datapath status`.
    pub fn driver(&self) -> Option<&DatapathDriver> {
        self.driver.as_ref()
    }

    /// Takes a new desired state: rebuilds the table and returns `state` gated by what the
    /// kernel serves now. Call [`Serving::commit`] after handing the result to BGP and L2.
    pub fn update(&mut self, config: &Config, state: &ServiceState) -> ServiceState {
        if self.driver.is_none() {
            return state.clone();
        }
        let nodes = crate::config::nodes::node_addresses(config);
        if let Some(driver) = &self.driver {
            // Every node may balance to this one: accept Geneve from each node's address.
            let lb_nodes = nodes.values().copied().collect();
            driver.set_lb_nodes(lb_nodes);
        }
        let cluster_ips = config.bgp.as_ref().is_some_and(|b| {
            b.advertisements
                .iter()
                .any(|a| a.value.kind == AdvertisementKind::ClusterIp)
        });
        self.table = service_table(&TableInputs {
            node_name: &config.node.name,
            nodes: &nodes,
            state,
            cluster_ips,
        });
        self.managed = self.table.entries_by_address().into_keys().collect();
        // Every service address is datapath-managed, programmed or not: an address without an
        // entry (no endpoint here) is not announced either.
        for s in &state.services {
            self.managed
                .extend(super::desired::service_addresses(s, state, cluster_ips));
        }
        self.regate(state)
    }

    /// `state` gated by what the kernel serves now (after [`Serving::changed`]).
    pub fn regate(&self, state: &ServiceState) -> ServiceState {
        match self.served() {
            Some(served) => gate(state, &served),
            None => state.clone(),
        }
    }

    /// L2 announcements gated like [`Serving::regate`]: addresses the datapath manages stay only
    /// while served; other addresses (fixed `l2.services`) pass; services left with no address
    /// are dropped.
    pub fn gate_l2(&self, services: Vec<L2Service>) -> Vec<L2Service> {
        let Some(served) = self.served() else {
            return services;
        };
        services
            .into_iter()
            .filter_map(|mut s| {
                s.ips
                    .retain(|ip| !self.managed.contains(ip) || served.contains(ip));
                (!s.ips.is_empty()).then_some(s)
            })
            .collect()
    }

    /// Hands the current table to the datapath (after the withdrawals went out).
    pub fn commit(&mut self) {
        if let Some(driver) = &self.driver {
            self.generation += 1;
            driver.apply(self.table.services.clone(), self.generation);
        }
    }

    /// Served addresses of the current table, `None` without a datapath.
    pub fn served(&self) -> Option<BTreeSet<IpAddr>> {
        let rx = self.state_rx.as_ref()?;
        let state = rx.borrow();
        Some(self.table.served_addresses(&state.served))
    }

    /// Why each unserved address of the table is not served (for `herald services`).
    pub fn unserved_reasons(&self) -> BTreeMap<IpAddr, String> {
        let Some(state) = self.state() else {
            return BTreeMap::new();
        };
        let served = self.table.served_addresses(&state.served);
        let reason = match (&state.error, state.attached) {
            (Some(e), _) => e.clone(),
            (None, false) => "datapath starting".to_owned(),
            (None, true) => "datapath entries not programmed yet".to_owned(),
        };
        self.managed
            .iter()
            .filter(|a| !served.contains(a))
            .map(|a| {
                let why = if self.table.entries_by_address().contains_key(a) {
                    reason.clone()
                } else {
                    "no ready backend this node may use".to_owned()
                };
                (*a, why)
            })
            .collect()
    }

    /// Waits (at most `limit`) until the datapath has applied the last committed table or
    /// reported why it cannot, so the first announcement after a start already carries what the
    /// kernel serves: with graceful restart, an End-of-RIB sent before that would make the peers
    /// drop the addresses the pinned maps still serve.
    pub async fn settled(&mut self, limit: std::time::Duration) {
        let generation = self.generation;
        let Some(rx) = self.state_rx.as_mut() else {
            return;
        };
        let wait =
            rx.wait_for(|s| s.generation >= generation || (!s.attached && s.error.is_some()));
        let _ = tokio::time::timeout(limit, wait).await;
    }

    /// Resolves when the datapath's state changes (never without a datapath).
    pub async fn changed(&mut self) {
        match self.state_rx.as_mut() {
            Some(rx) => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }

    /// Stops the driver (programs and pinned maps stay with `keepPinnedMaps`).
    pub async fn stop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.stop().await;
        }
        self.state_rx = None;
    }
}
