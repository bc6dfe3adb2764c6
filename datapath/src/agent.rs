//! The datapath as the node agent drives it: [`Datapath::start`] loads the eBPF object with its
//! maps pinned and attaches the XDP load balancer and the backend TC programs to the configured
//! interfaces; [`Datapath::apply`] makes the maps hold exactly the services the agent derived
//! (Maglev tables through [`Reconciler::apply`], next-hop MACs through [`neighbour`], this node's
//! address/MAC/MTU from the XDP interface) and reports which entries the kernel serves;
//! [`Datapath::refresh`] re-resolves identity and next hops; [`Datapath::shutdown`] leaves the
//! programs and pinned maps in place with `keepPinnedMaps` (the default) or removes them.
//!
//! [`desired`] is pure (services + local addresses + known MACs → service specs). The I/O
//! boundary is [`Datapath`]: the [`Loader`] (bpf) and [`neighbour`] (procfs, getifaddrs, sysfs).
//! There is no loop here and no clock: the caller paces refreshes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use datapath_common::Config;

use crate::config::{DatapathConfig, XdpMode};
use crate::error::{Error, Result};
use crate::loader::{self, LoadConfig, Loader, programs};
use crate::maglev::Proto;
use crate::neighbour;
use crate::reconcile::{BackendSpec, Reconciler, ServiceSpec, service_key};
use crate::status::Status;

/// How long one next-hop resolution may wait for ARP.
const ARP_WAIT: Duration = Duration::from_secs(1);

/// One service entry (address, port, protocol) with its backends, as the agent derives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInput {
    /// A name for logs (`namespace/name`).
    pub name: String,
    /// Service address.
    pub vip: IpAddr,
    /// Service port.
    pub port: u16,
    /// L4 protocol.
    pub proto: Proto,
    /// Leave the client port out of the hash (ClientIP session affinity).
    pub affinity: bool,
    /// Backends.
    pub backends: Vec<BackendInput>,
}

/// One backend of a service entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInput {
    /// Backend (pod) address and port.
    pub addr: SocketAddr,
    /// Underlay IPv4 address of the node the backend runs on; when it is one of this node's
    /// addresses the backend is local (DNAT, no encapsulation).
    pub node: Ipv4Addr,
    /// Maglev weight (0: no new flows).
    pub weight: u16,
}

/// What an apply or refresh achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Entries in the kernel with at least one backend, with the XDP program attached.
    pub served: BTreeSet<(IpAddr, u16, Proto)>,
    /// Backends left out because no next-hop MAC towards their node is known yet.
    pub unresolved: Vec<(String, SocketAddr, Ipv4Addr)>,
    /// Problems in words (unresolved next hops, unknown node identity).
    pub problems: Vec<String>,
}

/// This node's underlay identity, as the XDP program needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Outer source address.
    pub addr: Ipv4Addr,
    /// Uplink MAC (outer source MAC).
    pub mac: [u8; 6],
    /// Uplink MTU.
    pub mtu: u16,
}

/// The services to program and what kept backends out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Service specs for [`Reconciler::apply`].
    pub services: Vec<ServiceSpec>,
    /// Backends left out because no next-hop MAC towards their node is known yet:
    /// (service name, backend, node).
    pub unresolved: Vec<(String, SocketAddr, Ipv4Addr)>,
}

/// The remote nodes whose next hop must be resolved: every backend node that is not local.
pub fn remote_nodes(services: &[ServiceInput], local: &BTreeSet<Ipv4Addr>) -> BTreeSet<Ipv4Addr> {
    services
        .iter()
        .flat_map(|s| s.backends.iter().map(|b| b.node))
        .filter(|n| !local.contains(n))
        .collect()
}

/// The desired service specs: a backend whose node is one of `local` is local (DNAT only); a
/// remote one needs the next-hop MAC towards its node in `macs`, and is left out (and listed in
/// [`Desired::unresolved`]) until that is known.
pub fn desired(
    services: &[ServiceInput],
    local: &BTreeSet<Ipv4Addr>,
    macs: &BTreeMap<Ipv4Addr, [u8; 6]>,
) -> Desired {
    let mut out = Desired::default();
    for s in services {
        let mut backends = Vec::new();
        for b in &s.backends {
            let is_local = local.contains(&b.node);
            let mac = if is_local {
                Some([0; 6])
            } else {
                macs.get(&b.node).copied()
            };
            match mac {
                Some(next_hop_mac) => backends.push(BackendSpec {
                    addr: b.addr,
                    weight: b.weight,
                    node: b.node,
                    next_hop_mac,
                    local: is_local,
                }),
                None => out.unresolved.push((s.name.clone(), b.addr, b.node)),
            }
        }
        out.services.push(ServiceSpec {
            vip: s.vip,
            port: s.port,
            proto: s.proto,
            affinity: s.affinity,
            backends,
        });
    }
    out
}

/// The loaded and attached datapath and what it has applied.
pub struct Datapath {
    config: DatapathConfig,
    pin_dir: PathBuf,
    loader: Loader,
    reconciler: Reconciler,
    /// Overrides the XDP interface's address as the node's underlay address.
    node_addr: Option<Ipv4Addr>,
    identity: Option<NodeIdentity>,
    macs: BTreeMap<Ipv4Addr, [u8; 6]>,
    /// The services last handed to [`Datapath::apply`].
    services: Vec<ServiceInput>,
    /// Pins from an earlier agent were found: entries it left are swept after the first apply.
    sweep_pending: bool,
    /// Last problem reported, so a persisting one is logged once.
    last_problem: Option<String>,
}

impl Datapath {
    /// Loads the eBPF object (maps pinned in `pin_dir_override` or the section's `pinDir`) and
    /// attaches the programs. `node_addr` is this node's underlay address (`None`: the XDP
    /// interface's first IPv4 address).
    pub fn start(
        config: &DatapathConfig,
        pin_dir_override: Option<&Path>,
        node_addr: Option<Ipv4Addr>,
    ) -> Result<Self> {
        let pin_dir = pin_dir_override
            .map(Path::to_path_buf)
            .unwrap_or_else(|| config.pin_dir.clone());
        let stale = loader::has_pinned_maps(&pin_dir);
        let seed = config.seed()?;
        let mut loader = Loader::load(&LoadConfig {
            maglev_m: config.table_size(),
            pin_dir: Some(pin_dir.clone()),
        })?;
        for iface in &config.interfaces.value {
            let name = iface.name.value.as_str();
            if iface.xdp != XdpMode::None {
                let mode =
                    loader.attach_xdp(programs::XDP_LB, name, iface.xdp == XdpMode::Native)?;
                tracing::info!(interface = name, ?mode, "XDP load balancer attached");
            }
            if iface.tc {
                loader.attach_tc(name)?;
                tracing::info!(interface = name, "TC Geneve decap + reverse NAT attached");
            }
        }
        tracing::info!(pin_dir = %pin_dir.display(), reused = stale, "maps pinned");
        Ok(Self {
            reconciler: Reconciler::new(config.table_size(), seed)?,
            config: config.clone(),
            pin_dir,
            loader,
            node_addr: node_addr.or(config.node.address),
            identity: None,
            macs: BTreeMap::new(),
            services: Vec::new(),
            sweep_pending: stale,
            last_problem: None,
        })
    }

    /// The section the datapath was started with.
    pub fn config(&self) -> &DatapathConfig {
        &self.config
    }

    /// Reads this node's identity from the XDP interface (address from the caller when given).
    fn read_identity(&self) -> Result<Option<NodeIdentity>> {
        let Some(iface) = self.config.xdp_interface() else {
            return Ok(None);
        };
        let name = iface.name.value.as_str();
        let addr = match self.node_addr {
            Some(a) => a,
            None => match neighbour::interface_ipv4(name)? {
                Some(a) => a,
                None => {
                    return Err(Error::Neighbour(format!(
                        "{name} has no IPv4 address yet (and the node list gives none)"
                    )));
                }
            },
        };
        let mtu = match self.config.node.mtu {
            Some(m) => m,
            None => neighbour::interface_mtu(name)?,
        };
        Ok(Some(NodeIdentity {
            addr,
            mac: neighbour::interface_mac(name)?,
            mtu,
        }))
    }

    /// Makes the maps hold exactly `services`; see [`ApplyReport`] for what is served.
    pub fn apply(&mut self, services: &[ServiceInput]) -> Result<ApplyReport> {
        self.services = services.to_vec();
        self.refresh()
    }

    /// One reconcile pass over the last applied services: node identity, next hops, maps.
    pub fn refresh(&mut self) -> Result<ApplyReport> {
        let identity = self.read_identity()?;
        if identity.is_some() && identity != self.identity {
            let seed = self.config.seed()?;
            if let Some(id) = identity {
                self.loader.set_config(&Config {
                    node_addr: id.addr.octets(),
                    node_mac: id.mac,
                    mtu: id.mtu,
                    maglev_m: self.config.table_size(),
                    jhash_v4: seed.jhash_v4,
                    jhash_v6: seed.jhash_v6,
                })?;
                tracing::info!(addr = %id.addr, mtu = id.mtu, "node identity programmed");
            }
            self.identity = identity;
        }
        let local = neighbour::local_ipv4s()?;
        for node in remote_nodes(&self.services, &local) {
            match neighbour::next_hop(node, ARP_WAIT) {
                Ok(hop) => {
                    if self.macs.insert(node, hop.mac) != Some(hop.mac) {
                        tracing::info!(node = %node, via = %hop.addr, dev = hop.ifname, "next hop resolved");
                    }
                }
                // A MAC learnt before stays in use: one missed ARP must not reshuffle tables.
                Err(e) if self.macs.contains_key(&node) => {
                    tracing::debug!(node = %node, "next hop not refreshed: {e}");
                }
                Err(e) => tracing::debug!(node = %node, "next hop unknown: {e}"),
            }
        }
        let want = desired(&self.services, &local, &self.macs);
        self.reconciler.apply(&want.services, &mut self.loader)?;
        if self.sweep_pending {
            self.sweep(&want.services)?;
            self.sweep_pending = false;
        }
        let mut problems = Vec::new();
        if !want.unresolved.is_empty() {
            problems.push(format!(
                "backends waiting for a next hop: {}",
                want.unresolved
                    .iter()
                    .map(|(s, b, n)| format!("{s}/{b} on {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.identity.is_none() {
            problems.push("node identity unknown".to_owned());
        }
        let problem = (!problems.is_empty()).then(|| problems.join("; "));
        if problem != self.last_problem {
            match &problem {
                Some(p) => tracing::warn!("{p}"),
                None => tracing::info!(
                    services = want.services.len(),
                    backends = want
                        .services
                        .iter()
                        .map(|s| s.backends.len())
                        .sum::<usize>(),
                    "datapath ready: all services programmed"
                ),
            }
            self.last_problem = problem;
        }
        // Served: the entry is in the map (the reconciler wrote it) with a live backend, and
        // the node identity the program needs for encapsulation is programmed.
        let served = if self.identity.is_some() {
            want.services
                .iter()
                .filter(|s| s.backends.iter().any(|b| b.weight > 0))
                .map(|s| (s.vip, s.port, s.proto))
                .collect()
        } else {
            BTreeSet::new()
        };
        Ok(ApplyReport {
            served,
            unresolved: want.unresolved,
            problems,
        })
    }

    /// Removes map entries a previous agent left that the current services do not have.
    fn sweep(&mut self, services: &[ServiceSpec]) -> Result<()> {
        let keep: BTreeSet<_> = services
            .iter()
            .map(|s| service_key(s.vip, s.port, s.proto))
            .collect();
        for (k, _) in self.loader.services()? {
            if !keep.contains(&k) {
                self.loader.delete_service(&k)?;
            }
        }
        let used = self.reconciler.backend_ids();
        for (id, _) in self.loader.backends()? {
            if !used.contains(&id) {
                self.loader.delete_backend(id)?;
            }
        }
        Ok(())
    }

    /// Services, backends and counters in the maps.
    pub fn status(&self) -> Result<Status> {
        Status::read_pinned(&self.pin_dir)
    }

    /// Detaches the programs and, unless `keepPinnedMaps`, removes the pins.
    pub fn shutdown(self) -> Result<()> {
        let keep = self.config.keep_pinned_maps;
        let dir = self.pin_dir.clone();
        // Dropping the loader detaches every program it attached.
        drop(self.loader);
        if keep {
            tracing::info!(pin_dir = %dir.display(), "programs detached; pinned maps kept");
        } else {
            let n = loader::unpin_maps(&dir)?;
            tracing::info!(pin_dir = %dir.display(), removed = n, "programs detached; pins removed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    fn web() -> Vec<ServiceInput> {
        let backend = |addr: &str, node: &str, weight| BackendInput {
            addr: addr.parse().expect("addr"),
            node: ip(node),
            weight,
        };
        vec![ServiceInput {
            name: "web".into(),
            vip: "10.200.0.10".parse().expect("vip"),
            port: 80,
            proto: Proto::Tcp,
            affinity: false,
            backends: vec![
                backend("10.244.1.10:8080", "10.0.1.2", 100),
                backend("10.244.2.10:8080", "10.0.2.2", 7),
                backend("10.244.3.10:8080", "10.0.3.2", 100),
            ],
        }]
    }

    #[test]
    fn own_node_is_local_and_others_need_a_mac() {
        let services = web();
        let local: BTreeSet<_> = [ip("10.0.1.2"), ip("127.0.0.1")].into();
        assert_eq!(
            remote_nodes(&services, &local),
            [ip("10.0.2.2"), ip("10.0.3.2")].into()
        );
        let macs: BTreeMap<_, _> = [(ip("10.0.2.2"), [2, 0, 0, 0, 0, 2])].into();
        let d = desired(&services, &local, &macs);
        assert_eq!(d.services.len(), 1);
        let s = &d.services[0];
        assert_eq!((s.port, s.affinity), (80, false));
        assert_eq!(s.backends.len(), 2);
        assert!(s.backends[0].local);
        assert_eq!(s.backends[0].node, ip("10.0.1.2"));
        assert!(!s.backends[1].local);
        assert_eq!(s.backends[1].next_hop_mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!(s.backends[1].weight, 7);
        assert_eq!(
            d.unresolved,
            [(
                "web".to_owned(),
                "10.244.3.10:8080".parse().expect("addr"),
                ip("10.0.3.2")
            )]
        );
    }

    #[test]
    fn with_every_mac_known_nothing_is_left_out() {
        let local: BTreeSet<_> = [ip("10.0.3.2")].into();
        let macs: BTreeMap<_, _> = [
            (ip("10.0.1.2"), [2, 0, 0, 0, 0, 1]),
            (ip("10.0.2.2"), [2, 0, 0, 0, 0, 2]),
        ]
        .into();
        let d = desired(&web(), &local, &macs);
        assert!(d.unresolved.is_empty());
        let locals: Vec<bool> = d.services[0].backends.iter().map(|b| b.local).collect();
        assert_eq!(locals, [false, false, true]);
    }
}
