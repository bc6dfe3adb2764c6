//! The agent's one desired state, derived in one pure step from the services it knows: the
//! datapath's service table (every service address × port → Maglev backends on their nodes) and
//! the gate that lets BGP and L2 announce a service address only once this node's datapath serves
//! it. No I/O: the daemon feeds it the services (standalone file or Kubernetes), the node list and
//! what the datapath reports as served.
//!
//! Rules (pinned by the tests below):
//! - A service's addresses are its lb-ipam allocation (or, without one, its requested
//!   `loadBalancerIP`s), its `externalIPs`, and its cluster IPs when an advertisement announces
//!   cluster IPs. Each address × service port is one datapath entry.
//! - Backends are the *ready* endpoints that serve the port (matched by name and protocol), each
//!   on the underlay address of its node (`nodes:` or the Node's InternalIP; IPv4 or IPv6, the
//!   outer family of the Geneve packets to it, whatever the endpoint's). An endpoint whose node
//!   has no known address, or whose family differs from the address's, is left out; reported
//!   unless the service has an address of the endpoint's family (a dual-stack service).
//! - `externalTrafficPolicy: Local`: only this node's endpoints, so a flow is never sent to
//!   another node and the client address reaches the pod. Without one, the address gets no entry:
//!   it is not served here and so not announced from here.
//! - An address is *served* when every one of its entries is in the kernel with at least one
//!   backend; only served addresses survive [`gate`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use datapath::maglev::{DEFAULT_WEIGHT, Proto};
use datapath::{BackendInput, ServiceInput};

use crate::advertise::{ServiceState, ServiceView, TrafficPolicy};

/// One datapath entry's identity: service address, port, protocol.
pub type EntryKey = (IpAddr, u16, Proto);

/// What the datapath should hold, and what could not be put in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    /// One entry per service address × port, sorted by address, port and protocol.
    pub services: Vec<ServiceInput>,
    /// Backends left out and why (sorted, without duplicates).
    pub problems: Vec<String>,
}

impl ServiceTable {
    /// Every address the table has an entry for, with the entries each needs to be served.
    pub fn entries_by_address(&self) -> BTreeMap<IpAddr, BTreeSet<EntryKey>> {
        let mut out: BTreeMap<IpAddr, BTreeSet<EntryKey>> = BTreeMap::new();
        for s in &self.services {
            out.entry(s.vip)
                .or_default()
                .insert((s.vip, s.port, s.proto));
        }
        out
    }

    /// The addresses whose every entry is in `served`.
    pub fn served_addresses(&self, served: &BTreeSet<EntryKey>) -> BTreeSet<IpAddr> {
        self.entries_by_address()
            .into_iter()
            .filter(|(_, entries)| entries.is_subset(served))
            .map(|(addr, _)| addr)
            .collect()
    }
}

/// Everything [`service_table`] reads.
#[derive(Debug, Clone, Copy)]
pub struct TableInputs<'a> {
    /// This node's name (endpoints' `nodeName` compared with it).
    pub node_name: &'a str,
    /// Node name → underlay address.
    pub nodes: &'a BTreeMap<String, IpAddr>,
    /// Services and lb-ipam's allocations.
    pub state: &'a ServiceState,
    /// Program the cluster IPs too (an advertisement announces them).
    pub cluster_ips: bool,
}

fn proto(p: lb_ipam::Protocol) -> Proto {
    match p {
        lb_ipam::Protocol::TCP => Proto::Tcp,
        lb_ipam::Protocol::UDP => Proto::Udp,
        lb_ipam::Protocol::SCTP => Proto::Sctp,
    }
}

/// The addresses a service is reached on through this node's datapath.
pub fn service_addresses(
    service: &ServiceView,
    state: &ServiceState,
    cluster_ips: bool,
) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = match state.allocations.get(&service.key()) {
        Some(allocated) if !allocated.is_empty() => allocated.clone(),
        _ => service.load_balancer_ips.clone(),
    };
    out.extend(service.external_ips.iter().copied());
    if cluster_ips {
        out.extend(service.cluster_ips.iter().copied());
    }
    out.sort();
    out.dedup();
    out
}

/// The datapath's service table (see the module header for the rules).
pub fn service_table(inputs: &TableInputs<'_>) -> ServiceTable {
    let mut table = ServiceTable::default();
    let mut problems = BTreeSet::new();
    for service in &inputs.state.services {
        let addresses = service_addresses(service, inputs.state, inputs.cluster_ips);
        if addresses.is_empty() {
            continue;
        }
        let local_only = service.external_traffic_policy == TrafficPolicy::Local;
        for port in &service.ports {
            for vip in &addresses {
                let mut backends = Vec::new();
                for endpoint in service.endpoints.iter().filter(|e| e.ready) {
                    let Some(target) = endpoint.port_for(port) else {
                        continue;
                    };
                    let node_name = endpoint.node_name.as_deref().unwrap_or_default();
                    if local_only && node_name != inputs.node_name {
                        continue;
                    }
                    if endpoint.ip.is_ipv4() != vip.is_ipv4() {
                        // A dual-stack service's endpoints of the other family serve its
                        // address of that family: nothing wrong with them here.
                        let served_elsewhere = addresses
                            .iter()
                            .any(|a| a.is_ipv4() == endpoint.ip.is_ipv4());
                        if served_elsewhere {
                            continue;
                        }
                        problems.insert(format!(
                            "{}/{}: endpoint {} left out of {vip}: address family differs",
                            service.namespace, service.name, endpoint.ip
                        ));
                        continue;
                    }
                    // The node's underlay address, of either family: Geneve to it goes in
                    // outer headers of that family, whatever the endpoint's own.
                    let node = match inputs.nodes.get(node_name) {
                        Some(addr) => *addr,
                        None => {
                            problems.insert(format!(
                                "{}/{}: endpoint {} left out: node {:?} has no known underlay \
                                 address",
                                service.namespace, service.name, endpoint.ip, node_name
                            ));
                            continue;
                        }
                    };
                    backends.push(BackendInput {
                        addr: SocketAddr::new(endpoint.ip, target),
                        node,
                        weight: DEFAULT_WEIGHT,
                    });
                }
                if backends.is_empty() {
                    // Nothing to serve with: no entry, so the address is neither served nor
                    // announced from this node.
                    continue;
                }
                backends.sort_by_key(|b| (b.addr, b.node));
                backends.dedup_by_key(|b| b.addr);
                table.services.push(ServiceInput {
                    name: format!("{}/{}", service.namespace, service.name),
                    vip: *vip,
                    port: port.port,
                    proto: proto(port.protocol),
                    affinity: service.session_affinity,
                    backends,
                });
            }
        }
    }
    table
        .services
        .sort_by_key(|s| (s.vip, s.port, s.proto.number()));
    // Two services claiming one address and port (a sharing key with a port conflict lb-ipam
    // let through, or an externalIP naming another's address): the first keeps it.
    let mut seen = BTreeSet::new();
    table.services.retain(|s| {
        let fresh = seen.insert((s.vip, s.port, s.proto.number()));
        if !fresh {
            problems.insert(format!(
                "{}: {}:{}/{:?} is already served by another service; left out",
                s.name, s.vip, s.port, s.proto
            ));
        }
        fresh
    });
    table.problems = problems.into_iter().collect();
    table
}

/// `state` with every datapath-served address the datapath does not serve (yet) removed, so BGP
/// and L2 announce only what `served` holds: allocations, requested, external and cluster IPs
/// alike. Addresses that are not in `table` at all (no entry: no endpoints here, or a kind the
/// table does not program) are removed too: what this node cannot serve it does not announce.
pub fn gate(state: &ServiceState, served: &BTreeSet<IpAddr>) -> ServiceState {
    let keep = |ips: &[IpAddr]| -> Vec<IpAddr> {
        ips.iter()
            .copied()
            .filter(|ip| served.contains(ip))
            .collect()
    };
    ServiceState {
        services: state
            .services
            .iter()
            .map(|s| ServiceView {
                cluster_ips: keep(&s.cluster_ips),
                external_ips: keep(&s.external_ips),
                load_balancer_ips: keep(&s.load_balancer_ips),
                ..s.clone()
            })
            .collect(),
        allocations: state
            .allocations
            .iter()
            .map(|(k, ips)| (k.clone(), keep(ips)))
            .filter(|(_, ips)| !ips.is_empty())
            .collect(),
    }
}

/// The underlay address of this node from the node list, when it is IPv4.
pub fn own_address(node_name: &str, nodes: &BTreeMap<String, IpAddr>) -> Option<IpAddr> {
    nodes.get(node_name).copied()
}

#[cfg(test)]
mod tests;
