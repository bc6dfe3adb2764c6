//! Loads Herald's eBPF object, owns its maps, attaches the programs to interfaces and runs them
//! through `BPF_PROG_TEST_RUN`. This is the crate's kernel boundary: every bpf() syscall made by
//! the datapath goes through here (via aya), and the Maglev map is written through a shared
//! memory mapping of it (`BPF_F_MMAPABLE`).
//!
//! Capacity (services, backends, Maglev M) is set at load time. Maps pinned by an earlier process
//! are reused when their geometry matches; the service-sized group (services, Maglev tables,
//! per-service counters) is unpinned and recreated when it does not. Program attachments can be
//! pinned links ([`Loader::attach_xdp_pinned`], [`Loader::attach_tc_pinned`]): they survive the
//! process (also `kill -9`), and a later process takes them over by replacing their program
//! atomically (`bpf_link_update`), so forwarding never stops.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapInfo, PerCpuArray},
    programs::{
        SchedClassifier, TcAttachType, TestRun, TestRunOptions, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
        xdp::XdpLink,
    },
};
use datapath_common::{
    BPF_F_MMAPABLE, BackendValue, COUNTERS, Config, Counter, MAP_BACKENDS, MAP_CONFIG,
    MAP_COUNTERS, MAP_FLOWS, MAP_FLOWS4_TCP, MAP_FLOWS4_UDP, MAP_LB_NODES, MAP_LB_NODES6,
    MAP_MAGLEV, MAP_REVNAT, MAP_REVNAT_NEW, MAP_SERVICES, MAP_SERVICES4, MAP_SVC_COUNTERS,
    MAP_SVC4_FILTER, MAX_BACKENDS, MAX_LB_NODES, MAX_SERVICES, MaglevPair, RevNatValue,
    SVC4_FILTER_WORDS, ServiceCounters, ServiceKey, ServiceKey4, ServiceValue, TABLES_PER_SERVICE,
    svc4_filter_slot,
};

use crate::error::{Error, Result};

/// The compiled eBPF object (empty when the build skipped it with `AYA_BUILD_SKIP`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/herald-datapath"));

/// Program names in the object.
pub mod programs {
    /// The XDP load balancer.
    pub const XDP_LB: &str = "herald_xdp_lb";
    /// Benchmark twin of [`XDP_LB`] that undoes its encapsulation so repeated test runs see the
    /// original frame (not for attaching). Only with the `bench` feature.
    #[cfg(feature = "bench")]
    pub const XDP_LB_BENCH: &str = "herald_xdp_lb_bench";
    /// XDP_PASS everything (baseline, veth peer helper).
    pub const XDP_PASS: &str = "herald_xdp_pass";
    /// XDP_DROP everything (benchmark traffic sink). Only with the `bench` feature.
    #[cfg(feature = "bench")]
    pub const XDP_DROP: &str = "herald_xdp_drop";
    /// XDP_TX everything (bounce baseline). Only with the `bench` feature.
    #[cfg(feature = "bench")]
    pub const XDP_TX: &str = "herald_xdp_tx";
    /// TC ingress on the backend node.
    pub const TC_INGRESS: &str = "herald_tc_ingress";
    /// TC egress on the backend node.
    pub const TC_EGRESS: &str = "herald_tc_egress";
}

/// Where bpffs is expected.
pub const BPFFS: &str = "/sys/fs/bpf";

/// How to load the object.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Maglev table size M (sizes the Maglev map).
    pub maglev_m: u32,
    /// Service capacity: sizes the service maps, per-service counters and the Maglev map
    /// (`max_services * 2 * maglev_m` slots).
    pub max_services: u32,
    /// Backend capacity (backend ids are `0..max_backends`).
    pub max_backends: u32,
    /// Pin (or reuse) every map under this bpffs directory, so a restarted agent keeps state and
    /// traffic keeps flowing; `None` keeps maps private to this process.
    pub pin_dir: Option<PathBuf>,
}

impl Default for LoadConfig {
    /// The object's compiled-in capacity (256 services, 4096 backends), M = 251, maps private.
    fn default() -> Self {
        Self {
            maglev_m: 251,
            max_services: MAX_SERVICES,
            max_backends: MAX_BACKENDS,
            pin_dir: None,
        }
    }
}

/// Bytes of kernel memory the Maglev map takes for `max_services` at table size `m`
/// (`max_services × 2 tables × M × 4 bytes`; two slots per 8-byte element).
pub fn maglev_map_bytes(max_services: u32, m: u32) -> u64 {
    u64::from(max_services) * u64::from(TABLES_PER_SERVICE) * u64::from(m) * MAGLEV_STRIDE as u64
}

/// Bytes between two Maglev slots in the map's memory: elements are [`MaglevPair`]s of two
/// `u32`, laid out back to back, so the map is one contiguous `u32` array.
const MAGLEV_STRIDE: usize = 4;

/// The Maglev map mapped into this process (`BPF_F_MMAPABLE`): slot `i` is the `u32` at byte
/// `i * MAGLEV_STRIDE`.
struct MaglevMmap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; access goes through `&self` /
// `&mut self` of the owning `Loader`, so moving it to another thread is fine.
unsafe impl Send for MaglevMmap {}

impl MaglevMmap {
    fn new(fd: std::os::fd::BorrowedFd<'_>, entries: u32) -> Result<Self> {
        let len = entries as usize * std::mem::size_of::<MaglevPair>();
        // SAFETY: a fresh shared mapping of a BPF array map created with BPF_F_MMAPABLE, of at
        // most its size; the kernel checks both and fails otherwise. Nothing aliases it.
        let ptr = unsafe {
            nix::libc::mmap(
                std::ptr::null_mut(),
                len,
                nix::libc::PROT_READ | nix::libc::PROT_WRITE,
                nix::libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == nix::libc::MAP_FAILED {
            return Err(Error::Io(std::io::Error::last_os_error()));
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    fn write(&mut self, first_slot: usize, slots: &[u32]) -> Result<()> {
        let end = (first_slot + slots.len()) * MAGLEV_STRIDE;
        if end > self.len {
            return Err(Error::InvalidBackend(format!(
                "Maglev slots {first_slot}.. beyond the map"
            )));
        }
        for (i, id) in slots.iter().enumerate() {
            // SAFETY: in bounds (checked above) and 4-byte aligned (page-aligned base, 4-byte
            // stride). Volatile: the kernel's programs read this memory concurrently; a 4-byte
            // aligned store is atomic, and a reader only uses its own half of a pair.
            unsafe {
                self.ptr
                    .add((first_slot + i) * MAGLEV_STRIDE)
                    .cast::<u32>()
                    .write_volatile(*id);
            }
        }
        // The slots must be visible before the service entry that points at them is updated.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn read(&self, first_slot: usize, n: usize) -> Result<Vec<u32>> {
        if (first_slot + n) * MAGLEV_STRIDE > self.len {
            return Err(Error::InvalidBackend(format!(
                "Maglev slots {first_slot}.. beyond the map"
            )));
        }
        Ok((0..n)
            .map(|i| {
                // SAFETY: in bounds and aligned, as in `write`.
                unsafe {
                    self.ptr
                        .add((first_slot + i) * MAGLEV_STRIDE)
                        .cast::<u32>()
                        .read_volatile()
                }
            })
            .collect())
    }
}

impl Drop for MaglevMmap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` created; nothing refers to it afterwards.
        unsafe {
            nix::libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// What one `BPF_PROG_TEST_RUN` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// Program return value (XDP action or TC verdict).
    pub verdict: u32,
    /// The packet as the program left it.
    pub data: Vec<u8>,
    /// Average nanoseconds per run, as the kernel measured it.
    pub nanos: u64,
}

/// A loaded datapath object.
pub struct Loader {
    ebpf: Ebpf,
    maglev_m: u32,
    max_services: u32,
    max_backends: u32,
    maglev: MaglevMmap,
    /// Pinned program attachments this process created or took over.
    links: Vec<PinnedLink>,
    /// Pins removed at load because their geometry did not fit the configuration.
    recreated: Vec<String>,
}

/// Maps whose size follows the service capacity or M: recreated together when that changes.
const SERVICE_SIZED: [&str; 4] = [MAP_SERVICES, MAP_SERVICES4, MAP_MAGLEV, MAP_SVC_COUNTERS];

const MAP_NAMES: [&str; 15] = [
    MAP_SERVICES,
    MAP_SERVICES4,
    MAP_SVC4_FILTER,
    MAP_BACKENDS,
    MAP_MAGLEV,
    MAP_CONFIG,
    MAP_FLOWS,
    MAP_FLOWS4_TCP,
    MAP_FLOWS4_UDP,
    MAP_REVNAT,
    MAP_REVNAT_NEW,
    MAP_LB_NODES,
    MAP_LB_NODES6,
    MAP_COUNTERS,
    MAP_SVC_COUNTERS,
];

impl Loader {
    /// Loads (but does not attach) the programs and creates or reuses the maps.
    pub fn load(cfg: &LoadConfig) -> Result<Self> {
        if OBJECT.is_empty() {
            return Err(Error::NotImplemented(
                "eBPF object not built (AYA_BUILD_SKIP was set)",
            ));
        }
        crate::maglev::check_table_size(cfg.maglev_m)?;
        if cfg.max_services == 0 || cfg.max_backends == 0 {
            return Err(Error::InvalidBackend(
                "service and backend capacity must be at least 1".into(),
            ));
        }
        // Elements of two slots; the slot count (max_services × 2 × M) is even.
        let tables = u32::try_from(
            u64::from(cfg.max_services) * u64::from(TABLES_PER_SERVICE) * u64::from(cfg.maglev_m)
                / 2,
        )
        .map_err(|_| {
            Error::InvalidBackend(format!(
                "{} services at M={} need more than 2^32 Maglev slots",
                cfg.max_services, cfg.maglev_m
            ))
        })?;
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(MAP_MAGLEV, tables);
        loader.map_max_entries(MAP_SERVICES, cfg.max_services);
        loader.map_max_entries(MAP_SERVICES4, cfg.max_services);
        loader.map_max_entries(MAP_SVC_COUNTERS, cfg.max_services);
        loader.map_max_entries(MAP_BACKENDS, cfg.max_backends);
        let mut recreated = Vec::new();
        let pins: Vec<(&str, PathBuf)> = match &cfg.pin_dir {
            Some(dir) => {
                ensure_bpffs(dir)?;
                recreated = drop_misfit_pins(dir, cfg, tables)?;
                MAP_NAMES.iter().map(|n| (*n, dir.join(n))).collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(OBJECT)?;
        for name in [programs::XDP_LB, programs::XDP_PASS] {
            xdp_mut(&mut ebpf, name)?.load()?;
        }
        #[cfg(feature = "bench")]
        for name in [programs::XDP_LB_BENCH, programs::XDP_DROP, programs::XDP_TX] {
            xdp_mut(&mut ebpf, name)?.load()?;
        }
        for name in [programs::TC_INGRESS, programs::TC_EGRESS] {
            tc_mut(&mut ebpf, name)?.load()?;
        }
        let maglev = {
            let data = map_data(&ebpf, MAP_MAGLEV)?;
            MaglevMmap::new(data.fd().as_fd(), tables)?
        };
        let mut this = Self {
            ebpf,
            maglev_m: cfg.maglev_m,
            max_services: cfg.max_services,
            max_backends: cfg.max_backends,
            maglev,
            links: Vec::new(),
            recreated,
        };
        // Before any program of this object is attached: a filter missing a pinned service's
        // bit (a pin from a build without the filter, say) would pass its traffic to the stack.
        this.rebuild_svc4_filter()?;
        Ok(this)
    }

    /// Rewrites the IPv4 service prefilter from the IPv4 service map: every service's bit set,
    /// stale bits (of deleted services) cleared.
    fn rebuild_svc4_filter(&mut self) -> Result<()> {
        let mut words = vec![0u64; SVC4_FILTER_WORDS as usize];
        {
            let m4: HashMap<&MapData, ServiceKey4, ServiceValue> =
                HashMap::try_from(map(&self.ebpf, MAP_SERVICES4)?)?;
            for k in m4.keys() {
                let k = k?;
                let slot = svc4_filter_slot(k.addr, k.port, k.proto);
                // Always a hit: slots are below `SVC4_FILTER_WORDS * 64` by construction.
                if let Some(word) = words.get_mut((slot >> 6) as usize) {
                    *word |= 1 << (slot & 63);
                }
            }
        }
        let mut f: Array<&mut MapData, u64> =
            Array::try_from(map_mut(&mut self.ebpf, MAP_SVC4_FILTER)?)?;
        for (i, w) in words.iter().enumerate() {
            if f.get(&(i as u32), 0)? != *w {
                f.set(i as u32, w, 0)?;
            }
        }
        Ok(())
    }

    /// Maglev table size M the maps were sized for.
    pub fn maglev_m(&self) -> u32 {
        self.maglev_m
    }

    /// Service capacity the maps were sized for.
    pub fn max_services(&self) -> u32 {
        self.max_services
    }

    /// Backend capacity the maps were sized for.
    pub fn max_backends(&self) -> u32 {
        self.max_backends
    }

    /// Pinned maps [`Loader::load`] found with a geometry that did not fit and recreated empty
    /// (their entries were lost).
    pub fn recreated_pins(&self) -> &[String] {
        &self.recreated
    }

    /// The node configuration (index 0 of the config map).
    pub fn config(&self) -> Result<Config> {
        let a: Array<&MapData, Config> = Array::try_from(map(&self.ebpf, MAP_CONFIG)?)?;
        Ok(a.get(&0, 0)?)
    }

    /// Kernel memory charged for the maps (sum of `memlock` in `/proc/self/fdinfo`), in bytes.
    pub fn map_memory(&self) -> Result<u64> {
        let mut total = 0;
        for name in MAP_NAMES {
            let fd = map_data(&self.ebpf, name)?.fd().as_fd().as_raw_fd();
            let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?;
            total += text
                .lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    }

    /// Writes the node configuration.
    pub fn set_config(&mut self, cfg: &Config) -> Result<()> {
        let mut a: Array<&mut MapData, Config> =
            Array::try_from(map_mut(&mut self.ebpf, MAP_CONFIG)?)?;
        a.set(0, cfg, 0)?;
        Ok(())
    }

    /// Makes the load-balancer node maps (the underlay addresses, IPv4 and IPv6, the TC
    /// ingress program accepts Geneve from) hold exactly `nodes`: new ones are added before
    /// stale ones go, so a node present in both sets is never missing.
    pub fn set_lb_nodes(&mut self, nodes: &[IpAddr]) -> Result<()> {
        let v4: BTreeSet<[u8; 4]> = nodes
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(a.octets()),
                IpAddr::V6(_) => None,
            })
            .collect();
        let v6: BTreeSet<[u8; 16]> = nodes
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(a) => Some(a.octets()),
                IpAddr::V4(_) => None,
            })
            .collect();
        for n in [v4.len(), v6.len()] {
            if n > MAX_LB_NODES as usize {
                return Err(Error::InvalidBackend(format!(
                    "{n} load-balancer nodes of one address family; at most {MAX_LB_NODES} fit"
                )));
            }
        }
        sync_set(map_mut(&mut self.ebpf, MAP_LB_NODES)?, &v4)?;
        sync_set(map_mut(&mut self.ebpf, MAP_LB_NODES6)?, &v6)
    }

    /// The load-balancer node maps' addresses, sorted (IPv4 first).
    pub fn lb_nodes(&self) -> Result<Vec<IpAddr>> {
        let m4: HashMap<&MapData, [u8; 4], u32> =
            HashMap::try_from(map(&self.ebpf, MAP_LB_NODES)?)?;
        let m6: HashMap<&MapData, [u8; 16], u32> =
            HashMap::try_from(map(&self.ebpf, MAP_LB_NODES6)?)?;
        let mut out = m4
            .keys()
            .map(|k| k.map(|a| IpAddr::from(Ipv4Addr::from(a))))
            .chain(
                m6.keys()
                    .map(|k| k.map(|a| IpAddr::from(Ipv6Addr::from(a)))),
            )
            .collect::<std::result::Result<Vec<_>, _>>()?;
        out.sort();
        Ok(out)
    }

    /// The reverse-NAT entry for a reply tuple: `(established, not yet answered)` map entries.
    pub fn revnat(
        &self,
        key: &datapath_common::FlowKey,
    ) -> Result<(Option<RevNatValue>, Option<RevNatValue>)> {
        let get = |name| -> Result<Option<RevNatValue>> {
            let m: HashMap<&MapData, datapath_common::FlowKey, RevNatValue> =
                HashMap::try_from(map(&self.ebpf, name)?)?;
            match m.get(key, 0) {
                Ok(v) => Ok(Some(v)),
                Err(aya::maps::MapError::KeyNotFound) => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        Ok((get(MAP_REVNAT)?, get(MAP_REVNAT_NEW)?))
    }

    /// Entries in the (established, not yet answered) reverse-NAT maps.
    pub fn revnat_len(&self) -> Result<(usize, usize)> {
        let len = |name| -> Result<usize> {
            let m: HashMap<&MapData, datapath_common::FlowKey, RevNatValue> =
                HashMap::try_from(map(&self.ebpf, name)?)?;
            Ok(m.keys().count())
        };
        Ok((len(MAP_REVNAT)?, len(MAP_REVNAT_NEW)?))
    }

    /// Inserts or replaces a service entry (one atomic map update). IPv4 services go to the
    /// compact-key map the XDP program looks them up in.
    pub fn put_service(&mut self, key: &ServiceKey, value: &ServiceValue) -> Result<()> {
        if let Some(k4) = key.to_v4() {
            // The prefilter bit first, so the XDP program never skips a service it has.
            let slot = svc4_filter_slot(k4.addr, k4.port, k4.proto);
            let mut f: Array<&mut MapData, u64> =
                Array::try_from(map_mut(&mut self.ebpf, MAP_SVC4_FILTER)?)?;
            let w = f.get(&(slot >> 6), 0)?;
            let bit = 1u64 << (slot & 63);
            if w & bit == 0 {
                f.set(slot >> 6, w | bit, 0)?;
            }
            let mut m: HashMap<&mut MapData, ServiceKey4, ServiceValue> =
                HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES4)?)?;
            m.insert(k4, value, 0)?;
        } else {
            let mut m: HashMap<&mut MapData, ServiceKey, ServiceValue> =
                HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES)?)?;
            m.insert(key, value, 0)?;
        }
        Ok(())
    }

    /// Removes a service entry; absent is fine. Its IPv4 prefilter bit stays set (another
    /// service may share it; a stale bit only costs the hash lookup) until the next load.
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<()> {
        let r = if let Some(k4) = key.to_v4() {
            let mut m: HashMap<&mut MapData, ServiceKey4, ServiceValue> =
                HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES4)?)?;
            m.remove(&k4)
        } else {
            let mut m: HashMap<&mut MapData, ServiceKey, ServiceValue> =
                HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES)?)?;
            m.remove(key)
        };
        match r {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// All service entries (IPv4 and IPv6).
    pub fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>> {
        let m4: HashMap<&MapData, ServiceKey4, ServiceValue> =
            HashMap::try_from(map(&self.ebpf, MAP_SERVICES4)?)?;
        let m6: HashMap<&MapData, ServiceKey, ServiceValue> =
            HashMap::try_from(map(&self.ebpf, MAP_SERVICES)?)?;
        let mut out = Vec::new();
        for item in m4.iter() {
            let (k, v) = item?;
            out.push((k.to_key(), v));
        }
        for item in m6.iter() {
            out.push(item?);
        }
        Ok(out)
    }

    /// Inserts or replaces a backend (`id < MAX_BACKENDS`; `value.family` must be set).
    pub fn put_backend(&mut self, id: u32, value: &BackendValue) -> Result<()> {
        if value.family == 0 {
            return Err(Error::InvalidBackend(format!(
                "backend {id} has no address family"
            )));
        }
        let mut a: Array<&mut MapData, BackendValue> =
            Array::try_from(map_mut(&mut self.ebpf, MAP_BACKENDS)?)?;
        a.set(id, value, 0)?;
        Ok(())
    }

    /// Removes a backend (zeroes its slot); absent is fine.
    pub fn delete_backend(&mut self, id: u32) -> Result<()> {
        let mut a: Array<&mut MapData, BackendValue> =
            Array::try_from(map_mut(&mut self.ebpf, MAP_BACKENDS)?)?;
        a.set(id, BackendValue::default(), 0)?;
        Ok(())
    }

    /// All backends (slots in use).
    pub fn backends(&self) -> Result<Vec<(u32, BackendValue)>> {
        let a: Array<&MapData, BackendValue> = Array::try_from(map(&self.ebpf, MAP_BACKENDS)?)?;
        backends_in(&a)
    }

    /// Writes Maglev table number `table` (backend ids, one per slot; length M).
    pub fn write_table(&mut self, table: u32, slots: &[u32]) -> Result<()> {
        let m = self.maglev_m;
        if slots.len() != m as usize || table >= self.max_services * TABLES_PER_SERVICE {
            return Err(Error::InvalidBackend(format!(
                "table {table} of {} slots does not fit M={m}",
                slots.len()
            )));
        }
        self.maglev.write(table as usize * m as usize, slots)
    }

    /// Reads Maglev table number `table`.
    pub fn read_table(&self, table: u32) -> Result<Vec<u32>> {
        let m = self.maglev_m;
        if table >= self.max_services * TABLES_PER_SERVICE {
            return Err(Error::InvalidBackend(format!(
                "table {table} beyond {} services",
                self.max_services
            )));
        }
        self.maglev.read(table as usize * m as usize, m as usize)
    }

    /// Global counters summed over CPUs, in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        let a: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map(&self.ebpf, MAP_COUNTERS)?)?;
        let mut out = Vec::with_capacity(COUNTERS as usize);
        for c in Counter::ALL {
            let v = a.get(&(c as u32), 0)?;
            out.push((c, v.iter().sum()));
        }
        Ok(out)
    }

    /// One service's counters summed over CPUs.
    pub fn service_counters(&self, id: u32) -> Result<ServiceCounters> {
        let a: PerCpuArray<&MapData, ServiceCounters> =
            PerCpuArray::try_from(map(&self.ebpf, MAP_SVC_COUNTERS)?)?;
        let v = a.get(&id, 0)?;
        Ok(v.iter()
            .fold(ServiceCounters::default(), |acc, c| ServiceCounters {
                packets: acc.packets + c.packets,
                bytes: acc.bytes + c.bytes,
            }))
    }

    /// Attaches an XDP program; `Driver` mode first when `native` is asked for, else `Skb`.
    pub fn attach_xdp(&mut self, program: &str, ifname: &str, native: bool) -> Result<XdpMode> {
        let prog = xdp_mut(&mut self.ebpf, program)?;
        if native && prog.attach(ifname, XdpMode::Driver).is_ok() {
            return Ok(XdpMode::Driver);
        }
        prog.attach(ifname, XdpMode::Skb)?;
        Ok(XdpMode::Skb)
    }

    /// Attaches the backend-node TC programs (ingress decap, egress reverse NAT) through tcx.
    pub fn attach_tc(&mut self, ifname: &str) -> Result<()> {
        tc_mut(&mut self.ebpf, programs::TC_INGRESS)?.attach(ifname, TcAttachType::Ingress)?;
        tc_mut(&mut self.ebpf, programs::TC_EGRESS)?.attach(ifname, TcAttachType::Egress)?;
        Ok(())
    }

    /// Attaches the XDP load balancer to `ifname` through a bpf_link pinned at `pin` (which
    /// survives this process, also `kill -9`). When `pin` already holds a live link (an earlier
    /// process's), its program is replaced atomically (`bpf_link_update`) instead, keeping that
    /// link's mode: no packet meets the interface without the load balancer. A pinned link that
    /// cannot be taken over (its interface is gone) is unpinned and a fresh one attached.
    pub fn attach_xdp_pinned(
        &mut self,
        ifname: &str,
        native: bool,
        pin: &Path,
    ) -> Result<Attachment> {
        let prog = xdp_mut(&mut self.ebpf, programs::XDP_LB)?;
        if let Some(old) = open_pinned_link(pin)? {
            let taken = XdpLink::try_from(FdLink::from(old))
                .map_err(Error::from)
                .and_then(|link| Ok(prog.attach_to_link(link)?));
            match taken {
                Ok(id) => {
                    // The kernel link is still pinned at `pin`: hold it through the pin.
                    drop(FdLink::try_from(prog.take_link(id)?)?);
                    self.links.push(PinnedLink::from_pin(pin)?);
                    return Ok(Attachment::TakenOver);
                }
                Err(e) => {
                    tracing::warn!(pin = %pin.display(), "pinned XDP link not taken over ({e}); attaching afresh");
                    remove_pin(pin)?;
                }
            }
        }
        let id = match native {
            true => match prog.attach(ifname, XdpMode::Driver) {
                Ok(id) => id,
                Err(_) => prog.attach(ifname, XdpMode::Skb)?,
            },
            false => prog.attach(ifname, XdpMode::Skb)?,
        };
        let link = FdLink::try_from(prog.take_link(id)?).map_err(|_| not_a_bpf_link(ifname))?;
        self.links.push(link.pin(pin)?);
        Ok(Attachment::Attached)
    }

    /// Attaches one backend-node TC program (`Ingress`: Geneve decap, `Egress`: reverse NAT)
    /// to `ifname` through a tcx link pinned at `pin`, or takes over the link pinned there, as
    /// [`Loader::attach_xdp_pinned`] does.
    pub fn attach_tc_pinned(
        &mut self,
        ifname: &str,
        direction: TcAttachType,
        pin: &Path,
    ) -> Result<Attachment> {
        let name = match direction {
            TcAttachType::Egress => programs::TC_EGRESS,
            _ => programs::TC_INGRESS,
        };
        let prog = tc_mut(&mut self.ebpf, name)?;
        if let Some(old) = open_pinned_link(pin)? {
            let taken = SchedClassifierLink::try_from(FdLink::from(old))
                .map_err(Error::from)
                .and_then(|link| Ok(prog.attach_to_link(link)?));
            match taken {
                Ok(id) => {
                    drop(FdLink::try_from(prog.take_link(id)?)?);
                    self.links.push(PinnedLink::from_pin(pin)?);
                    return Ok(Attachment::TakenOver);
                }
                Err(e) => {
                    tracing::warn!(pin = %pin.display(), "pinned TC link not taken over ({e}); attaching afresh");
                    remove_pin(pin)?;
                }
            }
        }
        let id = prog.attach(ifname, direction)?;
        let link = FdLink::try_from(prog.take_link(id)?).map_err(|_| not_a_bpf_link(ifname))?;
        self.links.push(link.pin(pin)?);
        Ok(Attachment::Attached)
    }

    /// Detaches every pinned attachment this loader holds and removes its pin.
    pub fn detach_pinned(&mut self) -> Result<()> {
        for link in self.links.drain(..) {
            // Unpinning leaves our fd as the last reference; dropping it detaches.
            drop(link.unpin()?);
        }
        Ok(())
    }

    /// Runs an XDP program once (or `repeat` times) on `input` with `BPF_PROG_TEST_RUN`.
    pub fn run_xdp(&mut self, program: &str, input: &[u8], repeat: u32) -> Result<RunResult> {
        let prog = xdp_mut(&mut self.ebpf, program)?;
        run(prog, input, repeat)
    }

    /// Runs a TC program on `input` with `BPF_PROG_TEST_RUN`.
    pub fn run_tc(&mut self, program: &str, input: &[u8], repeat: u32) -> Result<RunResult> {
        let prog = tc_mut(&mut self.ebpf, program)?;
        run(prog, input, repeat)
    }
}

impl Loader {
    /// Transmits `repeat` copies of `frame` out of interface `ifindex` (of the calling thread's
    /// network namespace) with `BPF_PROG_RUN` in live-frames mode: `program` runs on each copy
    /// and its `XDP_TX` sends it. A packet generator for benchmarks; returns the kernel's time
    /// per repetition.
    pub fn xdp_live_tx(
        &mut self,
        program: &str,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
        batch: u32,
    ) -> Result<std::time::Duration> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex (u32 each); the kernel wants data_end = frame length, no metadata.
        let mut ctx = [0u8; 24];
        let len = u32::try_from(frame.len())
            .map_err(|_| Error::InvalidBackend(format!("{}-byte frame", frame.len())))?;
        ctx[4..8].copy_from_slice(&len.to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let prog = xdp_mut(&mut self.ebpf, program)?;
        let r = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat: repeat.max(1),
            attrs: aya::programs::TestRunAttrs::new().xdp_live_frames(batch),
            ..TestRunOptions::default()
        })?;
        Ok(r.duration)
    }
}

/// How [`Loader::attach_xdp_pinned`] / [`Loader::attach_tc_pinned`] got the program attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// A new link was created and pinned.
    Attached,
    /// The link an earlier process pinned now runs this process's program.
    TakenOver,
}

fn open_pinned_link(pin: &Path) -> Result<Option<PinnedLink>> {
    if !pin.exists() {
        return Ok(None);
    }
    Ok(Some(PinnedLink::from_pin(pin)?))
}

fn remove_pin(pin: &Path) -> Result<()> {
    match std::fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn not_a_bpf_link(ifname: &str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "{ifname}: the kernel attached through netlink, not a bpf_link: cannot pin the attachment"
    )))
}

/// Makes the set map `m` (key → 1) hold exactly `want`: additions first, then removals.
fn sync_set<K: aya::Pod + Ord>(m: &mut aya::maps::Map, want: &BTreeSet<K>) -> Result<()> {
    let mut m: HashMap<&mut MapData, K, u32> = HashMap::try_from(m)?;
    let have = m.keys().collect::<std::result::Result<Vec<_>, _>>()?;
    for a in want {
        if !have.contains(a) {
            m.insert(a, 1, 0)?;
        }
    }
    for a in have.iter().filter(|a| !want.contains(*a)) {
        match m.remove(a) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes pinned maps under `dir` whose size does not fit `cfg` (the whole service-sized group
/// when one of them misfits, since service ids index all of them). Returns their names.
fn drop_misfit_pins(dir: &Path, cfg: &LoadConfig, tables: u32) -> Result<Vec<String>> {
    // Maps whose value grew (IPv6 underlay addresses in the config and backend values): a pin
    // of an earlier version with the smaller value is recreated (the agent rewrites both).
    let value_fits = |name: &str, size: usize| -> Result<bool> {
        let path = dir.join(name);
        Ok(!path.exists() || MapInfo::from_pin(&path)?.value_size() as usize == size)
    };
    let config_misfits = !value_fits(MAP_CONFIG, std::mem::size_of::<Config>())?;
    if config_misfits {
        remove_pin(&dir.join(MAP_CONFIG))?;
    }
    let backends_fit = value_fits(MAP_BACKENDS, std::mem::size_of::<BackendValue>())?;
    let fits = |name: &str, want: u32| -> Result<bool> {
        let path = dir.join(name);
        if !path.exists() {
            return Ok(true);
        }
        let info = MapInfo::from_pin(&path)?;
        Ok(info.max_entries() == want
            && (name != MAP_MAGLEV
                || (info.map_flags() & BPF_F_MMAPABLE != 0
                    && info.value_size() as usize == std::mem::size_of::<MaglevPair>())))
    };
    let mut group_fits = fits(MAP_SERVICES, cfg.max_services)?
        && fits(MAP_SERVICES4, cfg.max_services)?
        && fits(MAP_SVC_COUNTERS, cfg.max_services)?
        && fits(MAP_MAGLEV, tables)?;
    // Same slot count with another M (say 2×M and half the services) still misfits.
    let cfg_pin = dir.join(MAP_CONFIG);
    if group_fits && cfg_pin.exists() {
        let a: Array<MapData, Config> =
            Array::try_from(aya::maps::Map::Array(MapData::from_pin(&cfg_pin)?))?;
        let m = a.get(&0, 0)?.maglev_m;
        group_fits = m == 0 || m == cfg.maglev_m;
    }
    let mut removed = Vec::new();
    if config_misfits {
        removed.push(MAP_CONFIG.to_owned());
    }
    let mut drop_pin = |name: &str| -> Result<()> {
        let path = dir.join(name);
        if path.exists() {
            remove_pin(&path)?;
            removed.push(name.to_owned());
        }
        Ok(())
    };
    if !group_fits {
        for name in SERVICE_SIZED {
            drop_pin(name)?;
        }
    }
    if !backends_fit || !fits(MAP_BACKENDS, cfg.max_backends)? {
        drop_pin(MAP_BACKENDS)?;
    }
    // An object with more counters than the pinned map holds: the new slots would be missing.
    if !fits(MAP_COUNTERS, COUNTERS)? {
        drop_pin(MAP_COUNTERS)?;
    }
    if !removed.is_empty() {
        tracing::warn!(pin_dir = %dir.display(), maps = ?removed, "pinned maps of another size recreated empty");
    }
    Ok(removed)
}

/// The in-use slots of a backend array.
pub(crate) fn backends_in<T: std::borrow::Borrow<MapData>>(
    a: &Array<T, BackendValue>,
) -> Result<Vec<(u32, BackendValue)>> {
    let mut out = Vec::new();
    for (id, v) in a.iter().enumerate() {
        let v = v?;
        if v.family != 0 {
            out.push((id as u32, v));
        }
    }
    Ok(out)
}

fn run<P>(prog: &mut P, input: &[u8], repeat: u32) -> Result<RunResult>
where
    for<'a> P: TestRun<Opts<'a> = TestRunOptions<'a>, Result = aya::programs::TestRunResult>,
{
    // Room for the encapsulation headers the program may push.
    let mut out = vec![0u8; input.len() + 256];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(input),
        data_out: Some(&mut out),
        repeat: repeat.max(1),
        ..TestRunOptions::default()
    })?;
    out.truncate(r.data_size_out as usize);
    Ok(RunResult {
        verdict: r.return_value,
        data: out,
        nanos: r.duration.as_nanos() as u64,
    })
}

fn map<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a aya::maps::Map> {
    ebpf.map(name)
        .ok_or_else(|| Error::MissingObject(name.to_string()))
}

fn map_data<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a MapData> {
    use aya::maps::Map;
    match map(ebpf, name)? {
        Map::Array(d) | Map::HashMap(d) | Map::LruHashMap(d) | Map::PerCpuArray(d) => Ok(d),
        _ => Err(Error::MissingObject(format!(
            "{name} (unexpected map type)"
        ))),
    }
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| Error::MissingObject(name.to_string()))
}

fn xdp_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::MissingObject(name.to_string()))?;
    Ok(p.try_into()?)
}

fn tc_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::MissingObject(name.to_string()))?;
    Ok(p.try_into()?)
}

/// Makes `dir` usable for pinning: it must lie on a bpf filesystem. A directory under
/// `/sys/fs/bpf` gets bpffs mounted there when it is missing (a fresh mount namespace, such as
/// `ip netns exec` makes, has none); any other directory must already be on a bpffs mount (the
/// lab runner mounts one per lab). Creates `dir`.
pub fn ensure_bpffs(dir: &Path) -> Result<()> {
    if !on_bpffs(dir)? {
        if !dir.starts_with(BPFFS) {
            return Err(Error::Io(std::io::Error::other(format!(
                "{} is not on a bpf filesystem (mount one with `mount -t bpf bpf DIR`)",
                dir.display()
            ))));
        }
        let status = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf", BPFFS])
            .status()?;
        if !status.success() {
            return Err(Error::Io(std::io::Error::other(format!(
                "mount -t bpf bpf {BPFFS} failed: {status}"
            ))));
        }
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Whether the nearest existing ancestor of `dir` (or `dir` itself) is on a bpf filesystem.
fn on_bpffs(dir: &Path) -> Result<bool> {
    let mut p = dir;
    loop {
        if p.exists() {
            let st = nix::sys::statfs::statfs(p).map_err(|e| Error::Io(e.into()))?;
            return Ok(st.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC);
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return Ok(false),
        }
    }
}

/// Removes the maps [`Loader::load`] pinned under `dir`, then `dir` itself when that leaves it
/// empty. Pins that are absent are fine. Returns how many pins were removed.
pub fn unpin_maps(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for name in MAP_NAMES {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(removed)
}

/// Removes the program links pinned under `dir` (`link_*`), which detaches those programs.
/// Returns how many were removed.
pub fn unpin_links(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(LINK_PIN_PREFIX)
        {
            remove_pin(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// File-name prefix of pinned program links in a pin directory.
pub const LINK_PIN_PREFIX: &str = "link_";

/// Whether any map is pinned under `dir` (a previous agent's state).
pub fn has_pinned_maps(dir: &Path) -> bool {
    MAP_NAMES.iter().any(|n| dir.join(n).exists())
}
