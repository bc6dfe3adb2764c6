//! The datapath driven by its caller (the node agent): [`Datapath::start`] loads the eBPF object
//! with its maps pinned and attaches the XDP load balancer and the backend TC programs through
//! pinned links (taking over the links an earlier agent left, so forwarding never stops);
//! [`Datapath::apply`] makes the maps hold exactly the services the caller derived from its own
//! service model; [`Datapath::refresh`] re-reads this node's identity and the next-hop MACs and
//! re-applies; [`Datapath::set_lb_nodes`] names the load-balancer nodes whose Geneve the
//! backend TC program accepts; [`Datapath::shutdown`] leaves everything in the kernel (`keepPinnedMaps`) or
//! detaches and unpins. Synchronous and tokio-free: the caller owns threads and timers, and
//! calls `refresh` every [`Datapath::neighbour_refresh`] (sooner when a report says
//! `retry_soon`).
//!
//! [`desired`] is pure (services + local addresses + known MACs → service specs). The I/O
//! boundary is [`Datapath`]: the [`Loader`] (bpf) and [`neighbour`] (procfs, getifaddrs, ioctl).
//! All of it acts in the calling thread's network namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aya::programs::TcAttachType;
use datapath_common::Config;

use crate::config::{DatapathConfig, XdpMode};
use crate::error::{Error, Result};
use crate::loader::{self, Attachment, LINK_PIN_PREFIX, LoadConfig, Loader};
use crate::maglev::Proto;
use crate::neighbour;
use crate::reconcile::{ApplyStats, BackendSpec, Reconciler, ServiceSpec, service_of};
use crate::status::Status;

/// How long one next-hop resolution may wait for ARP.
const ARP_WAIT: Duration = Duration::from_secs(1);

/// One service port as the caller's service model has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInput {
    /// A name for logs and reports (e.g. `namespace/name:port`).
    pub name: String,
    /// Service address (the VIP).
    pub vip: IpAddr,
    /// Service port.
    pub port: u16,
    /// L4 protocol.
    pub proto: Proto,
    /// ClientIP session affinity: the client port is left out of the hash.
    pub affinity: bool,
    /// The endpoints.
    pub backends: Vec<BackendInput>,
}

/// One endpoint of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInput {
    /// Backend (pod) address and port; same address family as the VIP.
    pub addr: SocketAddr,
    /// Underlay address of the node it runs on: one of this node's addresses makes it local
    /// (DNAT, no encapsulation), any other is reached through Geneve over that address's
    /// family (IPv4 or IPv6, whatever the backend's own family).
    pub node: IpAddr,
    /// Maglev weight (0: no new flows).
    pub weight: u16,
}

/// This node's underlay identity, as the XDP program needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Outer source address (its family is the node's underlay family).
    pub addr: IpAddr,
    /// Uplink MAC (outer source MAC).
    pub mac: [u8; 6],
    /// Uplink MTU.
    pub mtu: u16,
}

/// A backend left out because no next-hop MAC towards its node is known yet.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unresolved {
    /// [`ServiceInput::name`].
    pub service: String,
    /// The backend.
    pub backend: SocketAddr,
    /// Its node.
    pub node: IpAddr,
}

/// The specs to program and what was left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Service specs for [`Reconciler::apply`].
    pub services: Vec<ServiceSpec>,
    /// Backends waiting for a next-hop MAC.
    pub unresolved: Vec<Unresolved>,
    /// Backends refused outright (address family differs from the VIP's).
    pub problems: Vec<String>,
}

/// The remote nodes whose next hop must be resolved: every backend node that is not local.
pub fn remote_nodes(services: &[ServiceInput], local: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
    services
        .iter()
        .flat_map(|s| s.backends.iter().map(|b| b.node))
        .filter(|n| !local.contains(n))
        .collect()
}

/// The desired service specs: a backend whose node is one of `local` is local (DNAT only); a
/// remote one needs the next-hop MAC towards its node in `macs`, and is left out (and listed in
/// [`Desired::unresolved`]) until that is known. A remote backend whose node's address is of
/// another family than this node's underlay address `own` is refused (the outer header needs a
/// source of the destination's family; one underlay address per node).
pub fn desired(
    services: &[ServiceInput],
    local: &BTreeSet<IpAddr>,
    macs: &BTreeMap<IpAddr, [u8; 6]>,
    own: Option<IpAddr>,
) -> Desired {
    let mut out = Desired::default();
    let mut seen = BTreeMap::new();
    for s in services {
        let key = (s.vip, s.port, s.proto);
        if let Some(first) = seen.get(&key) {
            out.problems.push(format!(
                "{}: {}:{}/{} is already the service {first}; ignored",
                s.name, s.vip, s.port, s.proto
            ));
            continue;
        }
        seen.insert(key, &s.name);
        let mut backends = Vec::with_capacity(s.backends.len());
        for b in &s.backends {
            if b.addr.is_ipv4() != s.vip.is_ipv4() {
                out.problems.push(format!(
                    "{}: backend {} and VIP {} are of different address families",
                    s.name, b.addr, s.vip
                ));
                continue;
            }
            let is_local = local.contains(&b.node);
            if let Some(own) = own
                && !is_local
                && own.is_ipv4() != b.node.is_ipv4()
            {
                out.problems.push(format!(
                    "{}: backend {} left out: not implemented: its node {} and this node ({own}) \
                     have underlay addresses of different families",
                    s.name, b.addr, b.node
                ));
                continue;
            }
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
                None => out.unresolved.push(Unresolved {
                    service: s.name.clone(),
                    backend: b.addr,
                    node: b.node,
                }),
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

/// What [`Datapath::apply`] / [`Datapath::refresh`] achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Services that forward: the XDP program is attached and the service's entry, with at least
    /// one backend, is in the kernel map.
    pub served: BTreeSet<(IpAddr, u16, Proto)>,
    /// Backends waiting for a next-hop MAC (their services are served by the others).
    pub unresolved: Vec<Unresolved>,
    /// Everything else that keeps the datapath from doing all it was asked, one line each.
    pub problems: Vec<String>,
    /// Something may resolve by itself (a next hop, the node address): call
    /// [`Datapath::refresh`] again within a second or so rather than after the full interval.
    pub retry_soon: bool,
    /// What this pass wrote.
    pub stats: ApplyStats,
}

/// A started datapath: loaded programs, pinned attachments, applied state.
pub struct Datapath {
    config: DatapathConfig,
    pin_dir: PathBuf,
    node_addr: Option<IpAddr>,
    loader: Loader,
    reconciler: Reconciler,
    xdp_attached: bool,
    taken_over: bool,
    identity: Option<NodeIdentity>,
    macs: BTreeMap<IpAddr, [u8; 6]>,
    /// Nodes a resolution was tried for (an `apply` waits only for new ones).
    tried: BTreeSet<IpAddr>,
    last: Vec<ServiceInput>,
    /// Problems found at start, reported with every later report until they go away.
    start_problems: Vec<String>,
}

fn link_pin(dir: &Path, kind: &str, ifname: &str) -> PathBuf {
    dir.join(format!("{LINK_PIN_PREFIX}{kind}_{ifname}"))
}

impl Datapath {
    /// Loads the object (maps pinned in `pin_dir_override` or the config's `pinDir`) and attaches
    /// XDP/TC to the configured interfaces through pinned links. When an earlier agent left
    /// pinned maps and links, their state is adopted and their links take this process's
    /// programs atomically. `node_addr`: this node's underlay address, IPv4 or IPv6 (`None`:
    /// the first IPv4 of the XDP interface).
    pub fn start(
        cfg: &DatapathConfig,
        pin_dir_override: Option<&Path>,
        node_addr: Option<IpAddr>,
    ) -> Result<Self> {
        cfg.validate("datapath config")?;
        let pin_dir = pin_dir_override.map_or_else(|| cfg.pin_dir.clone(), Path::to_path_buf);
        let had_maps = loader::has_pinned_maps(&pin_dir);
        let mut loader = Loader::load(&LoadConfig {
            maglev_m: cfg.table_size(),
            max_services: cfg.max_services(),
            max_backends: cfg.max_backends(),
            pin_dir: Some(pin_dir.clone()),
        })?;
        let mut reconciler = Reconciler::new(
            cfg.table_size(),
            cfg.seed()?,
            cfg.max_services(),
            cfg.max_backends(),
        )?;
        let mut macs = BTreeMap::new();
        if had_maps {
            reconciler.adopt(&loader)?;
            // The previous agent's next hops stay in use until a refresh re-resolves them, so
            // the first apply neither waits for ARP nor drops a backend whose MAC is not back
            // yet.
            macs = reconciler.next_hops();
        }
        let mut start_problems: Vec<String> = loader
            .recreated_pins()
            .iter()
            .map(|m| format!("pinned map {m} had another size and was recreated empty"))
            .collect();
        let mut wanted_links = BTreeSet::new();
        let mut xdp_attached = false;
        let mut taken_over = false;
        for iface in &cfg.interfaces.value {
            let name = iface.name.value.as_str();
            if iface.xdp != XdpMode::None {
                let pin = link_pin(&pin_dir, "xdp", name);
                let how = loader.attach_xdp_pinned(name, iface.xdp == XdpMode::Native, &pin)?;
                tracing::info!(interface = name, ?how, "XDP load balancer attached");
                taken_over |= how == Attachment::TakenOver;
                xdp_attached = true;
                wanted_links.insert(pin);
            }
            if iface.tc {
                for (kind, dir) in [
                    ("tc_ingress", TcAttachType::Ingress),
                    ("tc_egress", TcAttachType::Egress),
                ] {
                    let pin = link_pin(&pin_dir, kind, name);
                    let how = loader.attach_tc_pinned(name, dir, &pin)?;
                    tracing::info!(interface = name, kind, ?how, "TC program attached");
                    taken_over |= how == Attachment::TakenOver;
                    wanted_links.insert(pin);
                }
            }
        }
        // Links an earlier agent pinned for interfaces no longer configured: detach them.
        for entry in std::fs::read_dir(&pin_dir)? {
            let path = entry?.path();
            let is_link = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(LINK_PIN_PREFIX));
            if is_link && !wanted_links.contains(&path) {
                std::fs::remove_file(&path)?;
                tracing::info!(pin = %path.display(), "stale program link detached");
            }
        }
        if !xdp_attached {
            start_problems.push("no interface has the XDP load balancer: nothing is served".into());
        }
        let mut dp = Self {
            config: cfg.clone(),
            pin_dir,
            node_addr,
            loader,
            reconciler,
            xdp_attached,
            taken_over,
            identity: None,
            macs,
            tried: BTreeSet::new(),
            last: Vec::new(),
            start_problems,
        };
        if let Err(e) = dp.update_identity() {
            // The previous identity (pinned config map) stays in force; refresh retries.
            tracing::warn!("node identity not read yet: {e}");
        }
        Ok(dp)
    }

    /// Makes the kernel maps hold exactly `services`: local backends are DNATed, remote ones
    /// reached through Geneve to their node, next-hop MACs resolved (new nodes wait up to a
    /// second each) and cached. Returns what is served.
    pub fn apply(&mut self, services: &[ServiceInput]) -> Result<ApplyReport> {
        self.last = services.to_vec();
        self.reconcile(false)
    }

    /// Makes the set of load-balancer nodes whose Geneve packets this node's TC ingress program
    /// decapsulates exactly `nodes` (their underlay addresses, IPv4 or IPv6; the caller passes
    /// every node of its node list). Geneve to this node from any other source is dropped. The
    /// set is kept in the pinned maps across agent restarts.
    pub fn set_lb_nodes(&mut self, nodes: &[IpAddr]) -> Result<()> {
        self.loader.set_lb_nodes(nodes)
    }

    /// Periodic: re-reads this node's identity and every next-hop MAC, then re-applies the last
    /// services.
    pub fn refresh(&mut self) -> Result<ApplyReport> {
        let identity = self.update_identity();
        let mut report = self.reconcile(true)?;
        if let Err(e) = identity {
            report.problems.push(format!("node identity: {e}"));
            report.retry_soon = true;
        }
        Ok(report)
    }

    /// The maps as the kernel holds them.
    pub fn status(&self) -> Result<Status> {
        Status::read_pinned(&self.pin_dir)
    }

    /// How often the caller should call [`Datapath::refresh`].
    pub fn neighbour_refresh(&self) -> Duration {
        self.config.neighbour_refresh()
    }

    /// The bpffs directory holding the maps and links.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Whether [`Datapath::start`] took over program links an earlier agent pinned.
    pub fn taken_over(&self) -> bool {
        self.taken_over
    }

    /// This node's identity as programmed (`None` until it could be read).
    pub fn identity(&self) -> Option<NodeIdentity> {
        self.identity
    }

    /// Backend id of (address, protocol) in the maps, if applied.
    pub fn backend_id(&self, addr: SocketAddr, proto: Proto) -> Option<u32> {
        self.reconciler.backend_id(addr, proto)
    }

    /// Kernel memory charged for the maps, in bytes.
    pub fn map_memory(&self) -> Result<u64> {
        self.loader.map_memory()
    }

    /// Stops. With `keepPinnedMaps` the pinned maps and program links stay: the kernel keeps
    /// forwarding with the current maps until the next agent takes over. Otherwise the programs
    /// are detached and every pin removed. (Without `shutdown`, e.g. after `kill -9`, the
    /// pins stay as with `keepPinnedMaps`.)
    pub fn shutdown(self) -> Result<()> {
        let Self {
            config,
            pin_dir,
            mut loader,
            ..
        } = self;
        if config.keep_pinned_maps {
            drop(loader);
            tracing::info!(pin_dir = %pin_dir.display(), "datapath left running; pins kept");
            return Ok(());
        }
        loader.detach_pinned()?;
        drop(loader);
        let links = loader::unpin_links(&pin_dir)?;
        let maps = loader::unpin_maps(&pin_dir)?;
        tracing::info!(pin_dir = %pin_dir.display(), links, maps, "programs detached; pins removed");
        Ok(())
    }

    fn read_identity(&self) -> Result<Option<NodeIdentity>> {
        // A backend-only node (TC, no XDP) needs its address too: the TC ingress program
        // decapsulates only Geneve addressed to it.
        let Some(iface) = self
            .config
            .xdp_interface()
            .or_else(|| self.config.interfaces.value.iter().find(|i| i.tc))
        else {
            return Ok(None);
        };
        let name = iface.name.value.as_str();
        let addr = match self.node_addr {
            Some(a) => a,
            None => IpAddr::V4(neighbour::interface_ipv4(name)?.ok_or_else(|| {
                Error::Neighbour(format!(
                    "{name} has no IPv4 address yet (and no node address was given)"
                ))
            })?),
        };
        let mtu = match &self.config.mtu {
            Some(m) => m.value,
            None => neighbour::interface_mtu(name)?,
        };
        Ok(Some(NodeIdentity {
            addr,
            mac: neighbour::interface_mac(name)?,
            mtu,
        }))
    }

    fn update_identity(&mut self) -> Result<()> {
        let identity = self.read_identity()?;
        if let Some(id) = identity
            && identity != self.identity
        {
            let seed = self.config.seed()?;
            let (node_addr, node_addr6) = match id.addr {
                IpAddr::V4(a) => (a.octets(), [0; 16]),
                IpAddr::V6(a) => ([0; 4], a.octets()),
            };
            let cfg = Config {
                node_addr,
                node_mac: id.mac,
                mtu: id.mtu,
                maglev_m: self.config.table_size(),
                jhash_v4: seed.jhash_v4,
                jhash_v6: seed.jhash_v6,
                node_addr6,
            };
            if self.loader.config()? != cfg {
                self.loader.set_config(&cfg)?;
                tracing::info!(addr = %id.addr, mtu = id.mtu, "node identity programmed");
            }
            self.identity = identity;
        }
        Ok(())
    }

    fn reconcile(&mut self, resolve_all: bool) -> Result<ApplyReport> {
        let mut local = neighbour::local_addrs()?;
        if let Some(id) = self.identity {
            local.insert(id.addr);
        }
        for node in remote_nodes(&self.last, &local) {
            if !resolve_all && (self.macs.contains_key(&node) || self.tried.contains(&node)) {
                continue;
            }
            self.tried.insert(node);
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
        let own = self.identity.map(|i| i.addr);
        let want = desired(&self.last, &local, &self.macs, own);
        let stats = self.reconciler.apply(&want.services, &mut self.loader)?;
        let served = if self.xdp_attached {
            self.reconciler
                .applied()
                .filter(|(_, v)| v.backends > 0)
                .filter_map(|(k, _)| service_of(k))
                .collect()
        } else {
            BTreeSet::new()
        };
        let mut problems = self.start_problems.clone();
        problems.extend(want.problems);
        if !want.unresolved.is_empty() {
            problems.push(format!(
                "backends waiting for a next hop: {}",
                want.unresolved
                    .iter()
                    .map(|u| format!("{}/{} on {}", u.service, u.backend, u.node))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let identity_missing = self.identity.is_none()
            && (self.xdp_attached || self.config.interfaces.value.iter().any(|i| i.tc));
        if identity_missing {
            problems.push("node identity unknown".into());
        }
        Ok(ApplyReport {
            served,
            retry_soon: !want.unresolved.is_empty() || identity_missing,
            unresolved: want.unresolved,
            problems,
            stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn web() -> ServiceInput {
        let b = |a: &str, n: &str, weight| BackendInput {
            addr: a.parse().expect("backend"),
            node: ip(n),
            weight,
        };
        ServiceInput {
            name: "default/web:http".into(),
            vip: "10.200.0.10".parse().expect("vip"),
            port: 80,
            proto: Proto::Tcp,
            affinity: false,
            backends: vec![
                b("10.244.1.10:8080", "10.0.1.2", 100),
                b("10.244.2.10:8080", "10.0.2.2", 7),
                b("10.244.3.10:8080", "10.0.3.2", 100),
            ],
        }
    }

    #[test]
    fn own_node_is_local_and_others_need_a_mac() {
        let services = [web()];
        let local: BTreeSet<_> = [ip("10.0.1.2"), ip("127.0.0.1")].into();
        assert_eq!(
            remote_nodes(&services, &local),
            [ip("10.0.2.2"), ip("10.0.3.2")].into()
        );
        let macs: BTreeMap<_, _> = [(ip("10.0.2.2"), [2, 0, 0, 0, 0, 2])].into();
        let d = desired(&services, &local, &macs, None);
        assert_eq!(d.services.len(), 1);
        let s = &d.services[0];
        assert_eq!((s.port, s.affinity), (80, false));
        assert_eq!(s.backends.len(), 2);
        assert!(s.backends[0].local && s.backends[0].next_hop_mac == [0; 6]);
        assert!(!s.backends[1].local && s.backends[1].next_hop_mac == [2, 0, 0, 0, 0, 2]);
        assert_eq!(s.backends[1].weight, 7);
        assert_eq!(
            d.unresolved,
            [Unresolved {
                service: "default/web:http".into(),
                backend: "10.244.3.10:8080".parse().expect("addr"),
                node: ip("10.0.3.2"),
            }]
        );
    }

    #[test]
    fn a_backend_of_the_other_family_is_refused() {
        let mut s = web();
        s.backends[0].addr = "[fd00::1]:8080".parse().expect("addr");
        let local: BTreeSet<_> = [ip("10.0.1.2")].into();
        let d = desired(&[s], &local, &BTreeMap::new(), None);
        assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
        assert!(d.problems[0].contains("different address families"));
        assert!(d.services[0].backends.is_empty());
    }

    #[test]
    fn a_second_service_on_the_same_vip_port_and_protocol_is_ignored() {
        let mut again = web();
        again.name = "other/web:http".into();
        again.backends.truncate(1);
        let local: BTreeSet<_> = [ip("10.0.1.2")].into();
        let d = desired(&[web(), again], &local, &BTreeMap::new(), None);
        assert_eq!(d.services.len(), 1);
        assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
        assert!(
            d.problems[0].starts_with("other/web:http:")
                && d.problems[0].contains("default/web:http"),
            "{:?}",
            d.problems
        );
    }

    #[test]
    fn a_service_with_every_backend_unresolved_stays_with_none() {
        let d = desired(&[web()], &BTreeSet::new(), &BTreeMap::new(), None);
        assert!(d.services[0].backends.is_empty());
        assert_eq!(d.unresolved.len(), 3);
    }

    #[test]
    fn backends_on_ipv6_nodes_are_kept_for_an_ipv6_node_and_refused_for_an_ipv4_one() {
        let mut s = web();
        s.backends[0].node = ip("fd00:0:1::2");
        s.backends[1].node = ip("fd00:0:2::2");
        s.backends[2].node = ip("fd00:0:3::2");
        let local: BTreeSet<_> = [ip("fd00:0:1::2")].into();
        let macs: BTreeMap<_, _> = [
            (ip("fd00:0:2::2"), [2, 0, 0, 0, 0, 2]),
            (ip("fd00:0:3::2"), [2, 0, 0, 0, 0, 3]),
        ]
        .into();
        // An IPv6 node: IPv4 backends on IPv6 nodes are reached in outer IPv6.
        let d = desired(&[s.clone()], &local, &macs, Some(ip("fd00:0:1::2")));
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        let nodes: Vec<IpAddr> = d.services[0].backends.iter().map(|b| b.node).collect();
        assert_eq!(
            nodes,
            [ip("fd00:0:1::2"), ip("fd00:0:2::2"), ip("fd00:0:3::2")]
        );
        assert!(d.services[0].backends[0].local);
        // An IPv4 node has no IPv6 source for them: refused and reported, not sent from `::`.
        let d = desired(&[s], &[ip("10.0.9.2")].into(), &macs, Some(ip("10.0.9.2")));
        assert!(d.services[0].backends.is_empty());
        assert_eq!(d.problems.len(), 3, "{:?}", d.problems);
        assert!(
            d.problems[0].contains("not implemented"),
            "{:?}",
            d.problems
        );
    }
}
