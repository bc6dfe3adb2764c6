//! `datapath run`: the long-running node agent. It loads the eBPF object with its maps pinned,
//! attaches the XDP load balancer and the backend TC programs to the configured interfaces, and
//! keeps the maps equal to the configured services: Maglev tables through
//! [`Reconciler::apply`], next-hop MACs through [`neighbour`], this node's address/MAC/MTU from
//! the XDP interface. It reloads on SIGHUP or when the file changes, and on SIGTERM/SIGINT
//! detaches the programs and removes its pins (unless `keepPinnedMaps`).
//!
//! [`desired`] is pure (config + local addresses + known MACs → service specs). The I/O boundary
//! is [`Agent`]: the [`Loader`] (bpf), [`neighbour`] (procfs, getifaddrs, sysfs), the config file
//! and a signalfd. Time only paces the loop; nothing decides on it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datapath_common::Config;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::config::{self, RunConfig, XdpMode};
use crate::error::{Error, Result};
use crate::loader::{self, LoadConfig, Loader, programs};
use crate::neighbour;
use crate::reconcile::{BackendSpec, Reconciler, ServiceSpec, service_key};

/// How often the loop looks at signals and the config file.
const TICK: Duration = Duration::from_millis(200);
/// Refresh interval while something is still missing (node address, a next hop).
const RETRY: Duration = Duration::from_secs(1);
/// How long one next-hop resolution may wait for ARP.
const ARP_WAIT: Duration = Duration::from_secs(1);

/// Command-line options of `datapath run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The config file.
    pub config: PathBuf,
    /// Overrides the file's `pinDir` (the lab runner gives each node its own).
    pub pin_dir: Option<PathBuf>,
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
pub fn remote_nodes(cfg: &RunConfig, local: &BTreeSet<Ipv4Addr>) -> BTreeSet<Ipv4Addr> {
    cfg.services
        .iter()
        .flat_map(|s| s.value.backends.iter().map(|b| b.value.node))
        .filter(|n| !local.contains(n))
        .collect()
}

/// The desired service specs: a backend whose node is one of `local` is local (DNAT only); a
/// remote one needs the next-hop MAC towards its node in `macs`, and is left out (and listed in
/// [`Desired::unresolved`]) until that is known.
pub fn desired(
    cfg: &RunConfig,
    local: &BTreeSet<Ipv4Addr>,
    macs: &BTreeMap<Ipv4Addr, [u8; 6]>,
) -> Desired {
    let mut out = Desired::default();
    for s in &cfg.services {
        let s = &s.value;
        let mut backends = Vec::new();
        for b in &s.backends {
            let b = &b.value;
            let is_local = local.contains(&b.node);
            let mac = if is_local {
                Some([0; 6])
            } else {
                macs.get(&b.node).copied()
            };
            match mac {
                Some(next_hop_mac) => backends.push(BackendSpec {
                    addr: b.address,
                    weight: b.weight,
                    node: b.node,
                    next_hop_mac,
                    local: is_local,
                }),
                None => out.unresolved.push((s.name.clone(), b.address, b.node)),
            }
        }
        out.services.push(ServiceSpec {
            vip: s.vip,
            port: s.port,
            proto: s.protocol.proto(),
            affinity: s.session_affinity,
            backends,
        });
    }
    out
}

/// Identifies a version of the config file, to notice edits (also editors' write-and-rename).
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// A running agent: loaded programs, attached interfaces, applied state.
pub struct Agent {
    path: PathBuf,
    config: RunConfig,
    pin_dir: PathBuf,
    loader: Loader,
    reconciler: Reconciler,
    identity: Option<NodeIdentity>,
    macs: BTreeMap<Ipv4Addr, [u8; 6]>,
    /// Pins from an earlier agent were found: entries it left are swept after the first apply.
    sweep_pending: bool,
    stamp: Option<FileStamp>,
    /// Last problem reported by a refresh, so a persisting one is logged once.
    last_problem: Option<String>,
}

impl Agent {
    /// Loads the config and the eBPF object (maps pinned), and attaches the programs.
    pub fn start(opts: &RunOptions) -> Result<Self> {
        let config = config::load(&opts.config)?;
        let pin_dir = opts
            .pin_dir
            .clone()
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
            stamp: stamp(&opts.config),
            path: opts.config.clone(),
            reconciler: Reconciler::new(config.table_size(), seed)?,
            config,
            pin_dir,
            loader,
            identity: None,
            macs: BTreeMap::new(),
            sweep_pending: stale,
            last_problem: None,
        })
    }

    /// The loaded configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Reads this node's identity from the XDP interface (address from the config when given).
    fn read_identity(&self) -> Result<Option<NodeIdentity>> {
        let Some(iface) = self.config.xdp_interface() else {
            return Ok(None);
        };
        let name = iface.name.value.as_str();
        let addr = match self.config.node.address {
            Some(a) => a,
            None => match neighbour::interface_ipv4(name)? {
                Some(a) => a,
                None => {
                    return Err(Error::Neighbour(format!(
                        "{name} has no IPv4 address yet (node.address not configured)"
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

    /// One reconcile pass: node identity, next hops, maps. Returns whether everything the
    /// config asks for is programmed (false: retry soon).
    pub fn refresh(&mut self) -> Result<bool> {
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
        for node in remote_nodes(&self.config, &local) {
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
        let want = desired(&self.config, &local, &self.macs);
        self.reconciler.apply(&want.services, &mut self.loader)?;
        if self.sweep_pending {
            self.sweep(&want.services)?;
            self.sweep_pending = false;
        }
        let problem = if !want.unresolved.is_empty() {
            Some(format!(
                "backends waiting for a next hop: {}",
                want.unresolved
                    .iter()
                    .map(|(s, b, n)| format!("{s}/{b} on {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else if self.identity.is_none() && self.config.xdp_interface().is_some() {
            Some("node identity unknown".to_owned())
        } else {
            None
        };
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
            self.last_problem = problem.clone();
        }
        Ok(problem.is_none())
    }

    /// Removes map entries a previous agent left that the current config does not have.
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

    /// Reads the config file again. Services, backends and the node section apply at once;
    /// changes to pinning, interfaces or Maglev parameters need a restart and are refused (the
    /// running config stays).
    pub fn reload(&mut self) -> Result<()> {
        self.stamp = stamp(&self.path);
        let new = config::load(&self.path)?;
        if new.restart_key() != self.config.restart_key() {
            return Err(Error::Config {
                path: self.path.display().to_string(),
                line: 0,
                key: "pinDir/interfaces/maglev".into(),
                message: "changed: needs a restart of `datapath run`; reload not applied".into(),
            });
        }
        self.config = new;
        // Node address or MTU may have changed.
        self.identity = None;
        tracing::info!(file = %self.path.display(), "config reloaded");
        Ok(())
    }

    /// Whether the config file changed since it was last read.
    fn file_changed(&self) -> bool {
        match stamp(&self.path) {
            Some(s) => Some(s) != self.stamp,
            None => false,
        }
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

/// Runs the agent until SIGTERM or SIGINT. SIGHUP and edits of the file reload it.
pub fn run(opts: &RunOptions) -> Result<()> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    // Blocked before anything else, so the signals queue on the signalfd instead of killing us.
    mask.thread_block().map_err(|e| Error::Io(e.into()))?;
    let signals =
        SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK).map_err(|e| Error::Io(e.into()))?;
    let mut agent = Agent::start(opts)?;
    let mut next_refresh = Instant::now();
    loop {
        let mut reload = false;
        while let Some(info) = signals.read_signal().map_err(|e| Error::Io(e.into()))? {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGHUP) => reload = true,
                Ok(sig) => {
                    tracing::info!(?sig, "stopping");
                    return agent.shutdown();
                }
                Err(_) => {}
            }
        }
        if reload || agent.file_changed() {
            match agent.reload() {
                Ok(()) => next_refresh = Instant::now(),
                Err(e) => tracing::error!("{e}"),
            }
        }
        if Instant::now() >= next_refresh {
            let ok = match agent.refresh() {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!("refresh failed (retrying): {e}");
                    false
                }
            };
            let every = Duration::from_secs(agent.config().neighbour_refresh_seconds);
            next_refresh = Instant::now() + if ok { every } else { RETRY };
        }
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "\
interfaces:
  - name: eth1
    tc: true
maglev: { tableSize: 251 }
services:
  - name: web
    vip: 10.200.0.10
    port: 80
    backends:
      - { address: 10.244.1.10:8080, node: 10.0.1.2 }
      - { address: 10.244.2.10:8080, node: 10.0.2.2, weight: 7 }
      - { address: 10.244.3.10:8080, node: 10.0.3.2 }
";

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn own_node_is_local_and_others_need_a_mac() {
        let cfg = config::parse(CFG, "t").expect("valid");
        let local: BTreeSet<_> = [ip("10.0.1.2"), ip("127.0.0.1")].into();
        assert_eq!(
            remote_nodes(&cfg, &local),
            [ip("10.0.2.2"), ip("10.0.3.2")].into()
        );
        let macs: BTreeMap<_, _> = [(ip("10.0.2.2"), [2, 0, 0, 0, 0, 2])].into();
        let d = desired(&cfg, &local, &macs);
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
        let cfg = config::parse(CFG, "t").expect("valid");
        let local: BTreeSet<_> = [ip("10.0.3.2")].into();
        let macs: BTreeMap<_, _> = [
            (ip("10.0.1.2"), [2, 0, 0, 0, 0, 1]),
            (ip("10.0.2.2"), [2, 0, 0, 0, 0, 2]),
        ]
        .into();
        let d = desired(&cfg, &local, &macs);
        assert!(d.unresolved.is_empty());
        let locals: Vec<bool> = d.services[0].backends.iter().map(|b| b.local).collect();
        assert_eq!(locals, [false, false, true]);
    }
}
