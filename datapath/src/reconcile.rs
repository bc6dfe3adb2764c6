//! Reconciles the desired services (VIP, port, protocol, backends) into the datapath maps through
//! idempotent operations: a pure diff decides what to write, a [`MapWriter`] writes it (the
//! [`Loader`](crate::loader::Loader) in production, an in-memory fake in tests). Maglev tables are
//! double-buffered per service: the standby table is written first, then the service entry is
//! replaced in one map update, so packets see either the old or the new table, never a mix.
//!
//! Cost: ids come from free lists (O(1) each); a service whose backends (address, weight, id)
//! did not change is skipped without a Maglev build, and consecutive services with the same
//! backends (the ports of one Kubernetes service) share one build. [`Reconciler::adopt`] takes
//! over what pinned maps hold after a restart (service ids, active tables, backend ids), so an
//! unchanged service is not rewritten and flows keep their backends.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use datapath_common::{
    BE_F_LOCAL, BE_F_NODE_V6, BackendValue, FAMILY_V4, FAMILY_V6, SVC_F_AFFINITY, ServiceKey,
    ServiceValue, TABLES_PER_SERVICE,
};

use crate::error::{Error, Result};
use crate::maglev::{self, Backend, Proto, Seed};

/// One backend of a service as the control plane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    /// Backend address and port.
    pub addr: SocketAddr,
    /// Maglev weight (0: no new flows).
    pub weight: u16,
    /// Underlay address of the backend's node (IPv4 or IPv6: the outer family of the Geneve
    /// packets to it, independent of the backend's own family).
    pub node: IpAddr,
    /// MAC of the next hop towards `node`.
    pub next_hop_mac: [u8; 6],
    /// The backend runs on this node.
    pub local: bool,
}

/// A service to program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Service address.
    pub vip: IpAddr,
    /// Service port.
    pub port: u16,
    /// L4 protocol.
    pub proto: Proto,
    /// Session affinity (client port left out of the hash).
    pub affinity: bool,
    /// Backends.
    pub backends: Vec<BackendSpec>,
}

/// The map operations reconcile needs. Every operation is idempotent.
pub trait MapWriter {
    /// Inserts or replaces a service entry.
    fn put_service(&mut self, key: &ServiceKey, value: &ServiceValue) -> Result<()>;
    /// Removes a service entry (absent is fine).
    fn delete_service(&mut self, key: &ServiceKey) -> Result<()>;
    /// Inserts or replaces a backend.
    fn put_backend(&mut self, id: u32, value: &BackendValue) -> Result<()>;
    /// Removes a backend (absent is fine).
    fn delete_backend(&mut self, id: u32) -> Result<()>;
    /// Writes Maglev table `table`.
    fn write_table(&mut self, table: u32, slots: &[u32]) -> Result<()>;
}

impl MapWriter for crate::loader::Loader {
    fn put_service(&mut self, key: &ServiceKey, value: &ServiceValue) -> Result<()> {
        crate::loader::Loader::put_service(self, key, value)
    }
    fn delete_service(&mut self, key: &ServiceKey) -> Result<()> {
        crate::loader::Loader::delete_service(self, key)
    }
    fn put_backend(&mut self, id: u32, value: &BackendValue) -> Result<()> {
        crate::loader::Loader::put_backend(self, id, value)
    }
    fn delete_backend(&mut self, id: u32) -> Result<()> {
        crate::loader::Loader::delete_backend(self, id)
    }
    fn write_table(&mut self, table: u32, slots: &[u32]) -> Result<()> {
        crate::loader::Loader::write_table(self, table, slots)
    }
}

/// What [`Reconciler::adopt`] reads from maps an earlier process left.
pub trait MapReader {
    /// All service entries.
    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>>;
    /// All backends in use.
    fn backends(&self) -> Result<Vec<(u32, BackendValue)>>;
    /// Maglev table `table`.
    fn read_table(&self, table: u32) -> Result<Vec<u32>>;
}

impl MapReader for crate::loader::Loader {
    fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>> {
        crate::loader::Loader::services(self)
    }
    fn backends(&self) -> Result<Vec<(u32, BackendValue)>> {
        crate::loader::Loader::backends(self)
    }
    fn read_table(&self, table: u32) -> Result<Vec<u32>> {
        crate::loader::Loader::read_table(self, table)
    }
}

/// (VIP, port, protocol) of a service map key, or `None` for an unknown protocol number.
pub fn service_of(key: &ServiceKey) -> Option<(IpAddr, u16, Proto)> {
    Some((ip_of(&key.addr, key.family), key.port, proto_of(key.proto)?))
}

fn ip_of(addr: &[u8; 16], family: u8) -> IpAddr {
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*addr))
    }
}

fn proto_of(number: u8) -> Option<Proto> {
    [Proto::Tcp, Proto::Udp, Proto::Sctp]
        .into_iter()
        .find(|p| p.number() == number)
}

/// The service map key for a spec.
pub fn service_key(vip: IpAddr, port: u16, proto: Proto) -> ServiceKey {
    let (addr, family) = addr16(vip);
    ServiceKey {
        addr,
        port,
        proto: proto.number(),
        family,
    }
}

fn addr16(ip: IpAddr) -> ([u8; 16], u8) {
    match ip {
        IpAddr::V4(v4) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&v4.octets());
            (a, FAMILY_V4)
        }
        IpAddr::V6(v6) => (v6.octets(), FAMILY_V6),
    }
}

fn backend_value(b: &BackendSpec) -> BackendValue {
    let (addr, family) = addr16(b.addr.ip());
    let local = if b.local { BE_F_LOCAL } else { 0 };
    let (node_addr, node_addr6, node_flag) = match b.node {
        IpAddr::V4(n) => (n.octets(), [0; 16], 0),
        IpAddr::V6(n) => ([0; 4], n.octets(), BE_F_NODE_V6),
    };
    BackendValue {
        addr,
        node_addr,
        port: b.addr.port(),
        family,
        flags: local | node_flag,
        next_hop_mac: b.next_hop_mac,
        _pad: [0; 2],
        node_addr6,
    }
}

/// The underlay address of a backend value's node.
pub fn node_of(b: &BackendValue) -> IpAddr {
    if b.flags & BE_F_NODE_V6 != 0 {
        IpAddr::V6(Ipv6Addr::from(b.node_addr6))
    } else {
        IpAddr::V4(Ipv4Addr::from(b.node_addr))
    }
}

/// Ids `0..max`: never-used ids first (counting up), then released ones oldest first, so an id
/// a flow may still remember is reused as late as possible.
#[derive(Clone, Debug)]
struct IdPool {
    next: u32,
    max: u32,
    free: VecDeque<u32>,
}

impl IdPool {
    fn new(max: u32) -> Self {
        Self {
            next: 0,
            max,
            free: VecDeque::new(),
        }
    }

    /// A pool where `used` are taken: ids above the highest are fresh, gaps below are free.
    fn with_used(max: u32, used: &BTreeSet<u32>) -> Self {
        let next = used.last().map_or(0, |h| h + 1).min(max);
        let free = (0..next).filter(|i| !used.contains(i)).collect();
        Self { next, max, free }
    }

    fn alloc(&mut self) -> Option<u32> {
        if self.next < self.max {
            self.next += 1;
            return Some(self.next - 1);
        }
        self.free.pop_front()
    }

    fn release(&mut self, id: u32) {
        self.free.push_back(id);
    }
}

/// What decides a service's Maglev table: its backends' address, weight and id, in order.
type Fingerprint = Vec<(SocketAddr, u16, u32)>;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Applied {
    value: ServiceValue,
    /// `None` after adoption: the next apply builds the table once and compares.
    fingerprint: Option<Fingerprint>,
    /// Hash of the active table's slots (`None`: no table written).
    table_hash: Option<u64>,
}

fn table_hash(slots: &[u32]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    slots.hash(&mut h);
    h.finish()
}

/// What one [`Reconciler::apply`] wrote (for logs and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Maglev tables built.
    pub tables_built: usize,
    /// Maglev tables written to the map.
    pub tables_written: usize,
    /// Service entries inserted or replaced.
    pub services_written: usize,
    /// Service entries deleted.
    pub services_deleted: usize,
    /// Backends inserted or replaced.
    pub backends_written: usize,
    /// Backends deleted.
    pub backends_deleted: usize,
}

/// Tracks what has been applied and turns desired state into map writes.
pub struct Reconciler {
    m: u32,
    seed: Seed,
    services: HashMap<ServiceKey, Applied>,
    service_ids: IdPool,
    /// Backend ids by (address, protocol); shared by services that use the same backend.
    backend_ids: HashMap<(SocketAddr, Proto), u32>,
    backends: HashMap<u32, BackendValue>,
    backend_pool: IdPool,
    /// Adopted backends no table refers to, so their protocol is unknown: claimed by address
    /// on the next apply, deleted if nothing claims them.
    orphans: HashMap<SocketAddr, Vec<u32>>,
}

impl Reconciler {
    /// A reconciler for tables of size `m` built with `seed`, for maps of `max_services` services
    /// and `max_backends` backends; nothing applied yet.
    pub fn new(m: u32, seed: Seed, max_services: u32, max_backends: u32) -> Result<Self> {
        maglev::check_table_size(m)?;
        Ok(Self {
            m,
            seed,
            services: HashMap::new(),
            service_ids: IdPool::new(max_services),
            backend_ids: HashMap::new(),
            backends: HashMap::new(),
            backend_pool: IdPool::new(max_backends),
            orphans: HashMap::new(),
        })
    }

    /// Takes over what maps written by an earlier process hold: service entries with their ids
    /// and active tables, backends with their ids. Call once, before the first [`apply`]; that
    /// apply then rewrites only what differs and deletes what is no longer wanted.
    ///
    /// [`apply`]: Reconciler::apply
    pub fn adopt(&mut self, r: &impl MapReader) -> Result<()> {
        let max_services = self.service_ids.max;
        let max_backends = self.backend_pool.max;
        let mut proto_of_backend: HashMap<u32, Proto> = HashMap::new();
        let mut used_services = BTreeSet::new();
        for (key, value) in r.services()? {
            if value.id >= max_services || value.table / TABLES_PER_SERVICE != value.id {
                return Err(Error::InvalidBackend(format!(
                    "pinned service entry with id {} / table {} does not fit {max_services} services",
                    value.id, value.table
                )));
            }
            let table_hash = if value.backends > 0 {
                let slots = r.read_table(value.table)?;
                if let Some(p) = proto_of(key.proto) {
                    for id in &slots {
                        proto_of_backend.insert(*id, p);
                    }
                }
                Some(table_hash(&slots))
            } else {
                None
            };
            used_services.insert(value.id);
            self.services.insert(
                key,
                Applied {
                    value,
                    fingerprint: None,
                    table_hash,
                },
            );
        }
        let mut used_backends = BTreeSet::new();
        for (id, value) in r.backends()? {
            if id >= max_backends {
                continue;
            }
            let addr = SocketAddr::new(ip_of(&value.addr, value.family), value.port);
            match proto_of_backend.get(&id) {
                Some(p) => {
                    self.backend_ids.insert((addr, *p), id);
                }
                None => self.orphans.entry(addr).or_default().push(id),
            }
            self.backends.insert(id, value);
            used_backends.insert(id);
        }
        self.service_ids = IdPool::with_used(max_services, &used_services);
        self.backend_pool = IdPool::with_used(max_backends, &used_backends);
        Ok(())
    }

    /// Next-hop MACs the applied remote backends carry, by node: after [`Reconciler::adopt`],
    /// what the previous agent had resolved.
    pub fn next_hops(&self) -> BTreeMap<IpAddr, [u8; 6]> {
        self.backends
            .values()
            .filter(|b| b.flags & BE_F_LOCAL == 0)
            .map(|b| (node_of(b), b.next_hop_mac))
            .collect()
    }

    /// Backend ids the applied state uses.
    pub fn backend_ids(&self) -> BTreeSet<u32> {
        self.backends.keys().copied().collect()
    }

    /// The backend id of (address, protocol), if applied.
    pub fn backend_id(&self, addr: SocketAddr, proto: Proto) -> Option<u32> {
        self.backend_ids.get(&(addr, proto)).copied()
    }

    /// Service entries as applied (what the service maps hold).
    pub fn applied(&self) -> impl Iterator<Item = (&ServiceKey, &ServiceValue)> {
        self.services.iter().map(|(k, a)| (k, &a.value))
    }

    /// Makes the maps hold exactly `desired`. Writes only what changed; on error the applied
    /// state reflects what was written, so calling again retries the rest.
    pub fn apply(&mut self, desired: &[ServiceSpec], w: &mut impl MapWriter) -> Result<ApplyStats> {
        let mut stats = ApplyStats::default();
        let mut wanted_backends: HashMap<(SocketAddr, Proto), BackendValue> = HashMap::new();
        for s in desired {
            for b in &s.backends {
                wanted_backends.insert((b.addr, s.proto), backend_value(b));
            }
        }
        // New and changed backends first, so every table entry written below resolves (stale
        // ones go last: a table being replaced may still name them). Sorted, so ids are handed
        // out in a reproducible order.
        let mut wanted: Vec<_> = wanted_backends.iter().collect();
        wanted.sort_unstable_by_key(|(k, _)| **k);
        for (k, v) in wanted {
            let id = match self.backend_ids.get(k) {
                Some(id) => *id,
                None => {
                    let id = match self.orphans.get_mut(&k.0).and_then(Vec::pop) {
                        Some(id) => id,
                        None => self.backend_pool.alloc().ok_or_else(|| {
                            Error::InvalidBackend(format!(
                                "backend map full ({} backends): raise maxBackends",
                                self.backend_pool.max
                            ))
                        })?,
                    };
                    self.backend_ids.insert(*k, id);
                    id
                }
            };
            if self.backends.get(&id) != Some(v) {
                w.put_backend(id, v)?;
                stats.backends_written += 1;
                self.backends.insert(id, *v);
            }
        }
        // Services no longer wanted go first, so their ids are free for new services at full
        // capacity (a freed id is reused only after every fresh one, see `IdPool`).
        let keep: std::collections::HashSet<ServiceKey> = desired
            .iter()
            .map(|s| service_key(s.vip, s.port, s.proto))
            .collect();
        let gone: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect();
        for k in gone {
            w.delete_service(&k)?;
            stats.services_deleted += 1;
            if let Some(a) = self.services.remove(&k) {
                self.service_ids.release(a.value.id);
            }
        }
        let mut last_build: Option<(Fingerprint, Vec<u32>, u64)> = None;
        for s in desired {
            let key = service_key(s.vip, s.port, s.proto);
            self.apply_service(key, s, w, &mut last_build, &mut stats)?;
        }
        // Backends no service refers to any more go last.
        let stale: Vec<((SocketAddr, Proto), u32)> = self
            .backend_ids
            .iter()
            .filter(|(k, _)| !wanted_backends.contains_key(k))
            .map(|(k, id)| (*k, *id))
            .collect();
        for (k, id) in stale {
            w.delete_backend(id)?;
            stats.backends_deleted += 1;
            self.backend_ids.remove(&k);
            self.backends.remove(&id);
            self.backend_pool.release(id);
        }
        // Adopted backends nothing claimed: one at a time, so an error leaves the rest tracked.
        while let Some(addr) = self.orphans.keys().next().copied() {
            let ids = self
                .orphans
                .get_mut(&addr)
                .map(std::mem::take)
                .unwrap_or_default();
            let mut rest = ids.as_slice();
            while let Some((&id, tail)) = rest.split_first() {
                if let Err(e) = w.delete_backend(id) {
                    self.orphans.insert(addr, rest.to_vec());
                    return Err(e);
                }
                stats.backends_deleted += 1;
                self.backends.remove(&id);
                self.backend_pool.release(id);
                rest = tail;
            }
            self.orphans.remove(&addr);
        }
        Ok(stats)
    }

    fn apply_service(
        &mut self,
        key: ServiceKey,
        s: &ServiceSpec,
        w: &mut impl MapWriter,
        last_build: &mut Option<(Fingerprint, Vec<u32>, u64)>,
        stats: &mut ApplyStats,
    ) -> Result<()> {
        let fingerprint: Fingerprint = s
            .backends
            .iter()
            .map(|b| {
                let id = self
                    .backend_ids
                    .get(&(b.addr, s.proto))
                    .copied()
                    .unwrap_or(u32::MAX);
                (b.addr, b.weight, id)
            })
            .collect();
        let live = s.backends.iter().filter(|b| b.weight > 0).count() as u32;
        let flags = if s.affinity { SVC_F_AFFINITY } else { 0 };
        let old = self.services.get(&key);
        if let Some(a) = old
            && a.fingerprint.as_ref() == Some(&fingerprint)
            && a.value.flags == flags
            && a.value.backends == live
        {
            return Ok(());
        }
        let (id, active, old_hash) = match old {
            Some(a) => (a.value.id, a.value.table, a.table_hash),
            None => {
                let id = self.service_ids.alloc().ok_or_else(|| {
                    Error::InvalidBackend(format!(
                        "service map full ({} services): raise maxServices",
                        self.service_ids.max
                    ))
                })?;
                // New service: its "active" table is the second one, so the first write goes to
                // the first.
                (id, id * TABLES_PER_SERVICE + 1, None)
            }
        };
        let mut value = ServiceValue {
            id,
            table: active,
            flags,
            backends: live,
        };
        let mut new_hash = old_hash;
        if live > 0 {
            let reuse = matches!(last_build, Some((fp, _, _)) if *fp == fingerprint);
            if !reuse {
                let maglev_backends: Vec<Backend> = s
                    .backends
                    .iter()
                    .map(|b| Backend {
                        addr: b.addr,
                        proto: s.proto,
                        weight: b.weight,
                    })
                    .collect();
                // Maglev numbers backends by their place in `maglev_backends`, which is
                // `fingerprint`'s order: map each slot to the backend id.
                let table: Vec<u32> = maglev::build(self.m, &self.seed, &maglev_backends)?
                    .slots()
                    .iter()
                    .map(|i| {
                        fingerprint.get(*i as usize).map(|f| f.2).ok_or_else(|| {
                            Error::InvalidBackend(format!(
                                "Maglev slot names backend {i} of {}",
                                fingerprint.len()
                            ))
                        })
                    })
                    .collect::<Result<_>>()?;
                stats.tables_built += 1;
                let h = table_hash(&table);
                *last_build = Some((fingerprint.clone(), table, h));
            }
            if let Some((_, table, h)) = last_build.as_ref()
                && Some(*h) != old_hash
            {
                let base = id * TABLES_PER_SERVICE;
                let standby = if active == base { base + 1 } else { base };
                w.write_table(standby, table)?;
                stats.tables_written += 1;
                value.table = standby;
                new_hash = Some(*h);
            }
        }
        if old.map(|a| a.value) != Some(value) {
            w.put_service(&key, &value)?;
            stats.services_written += 1;
        }
        self.services.insert(
            key,
            Applied {
                value,
                fingerprint: Some(fingerprint),
                table_hash: new_hash,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In-memory map writer that records every operation.
    #[derive(Default)]
    struct FakeMaps {
        services: BTreeMap<ServiceKey, ServiceValue>,
        backends: BTreeMap<u32, BackendValue>,
        tables: BTreeMap<u32, Vec<u32>>,
        ops: Vec<String>,
    }

    impl MapWriter for FakeMaps {
        fn put_service(&mut self, key: &ServiceKey, value: &ServiceValue) -> Result<()> {
            self.ops
                .push(format!("put_service {} table {}", key.port, value.table));
            self.services.insert(*key, *value);
            Ok(())
        }
        fn delete_service(&mut self, key: &ServiceKey) -> Result<()> {
            self.ops.push(format!("delete_service {}", key.port));
            self.services.remove(key);
            Ok(())
        }
        fn put_backend(&mut self, id: u32, value: &BackendValue) -> Result<()> {
            self.ops.push(format!("put_backend {id}"));
            self.backends.insert(id, *value);
            Ok(())
        }
        fn delete_backend(&mut self, id: u32) -> Result<()> {
            self.ops.push(format!("delete_backend {id}"));
            self.backends.remove(&id);
            Ok(())
        }
        fn write_table(&mut self, table: u32, slots: &[u32]) -> Result<()> {
            self.ops.push(format!("write_table {table}"));
            self.tables.insert(table, slots.to_vec());
            Ok(())
        }
    }

    impl MapReader for FakeMaps {
        fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>> {
            Ok(self.services.iter().map(|(k, v)| (*k, *v)).collect())
        }
        fn backends(&self) -> Result<Vec<(u32, BackendValue)>> {
            Ok(self.backends.iter().map(|(k, v)| (*k, *v)).collect())
        }
        fn read_table(&self, table: u32) -> Result<Vec<u32>> {
            Ok(self.tables.get(&table).cloned().unwrap_or_default())
        }
    }

    fn spec(port: u16, backends: &[&str]) -> ServiceSpec {
        ServiceSpec {
            vip: "10.96.0.1".parse().expect("vip"),
            port,
            proto: Proto::Tcp,
            affinity: false,
            backends: backends
                .iter()
                .map(|a| BackendSpec {
                    addr: a.parse().expect("backend"),
                    weight: 100,
                    node: Ipv4Addr::new(192, 168, 1, 1).into(),
                    next_hop_mac: [2, 0, 0, 0, 0, 1],
                    local: false,
                })
                .collect(),
        }
    }

    #[test]
    fn applying_twice_writes_nothing_the_second_time() {
        let mut r = Reconciler::new(251, Seed::default(), 256, 4096).expect("reconciler");
        let mut maps = FakeMaps::default();
        let desired = [spec(80, &["10.0.0.1:8080", "10.0.0.2:8080"])];
        r.apply(&desired, &mut maps).expect("apply");
        assert_eq!(
            maps.ops,
            [
                "put_backend 0",
                "put_backend 1",
                "write_table 0",
                "put_service 80 table 0"
            ]
        );
        maps.ops.clear();
        r.apply(&desired, &mut maps).expect("apply");
        assert!(maps.ops.is_empty(), "{:?}", maps.ops);
    }

    #[test]
    fn backend_change_writes_standby_table_then_swaps() {
        let mut r = Reconciler::new(251, Seed::default(), 256, 4096).expect("reconciler");
        let mut maps = FakeMaps::default();
        r.apply(&[spec(80, &["10.0.0.1:8080", "10.0.0.2:8080"])], &mut maps)
            .expect("apply");
        maps.ops.clear();
        r.apply(&[spec(80, &["10.0.0.1:8080"])], &mut maps)
            .expect("apply");
        assert_eq!(
            maps.ops,
            [
                "write_table 1",
                "put_service 80 table 1",
                "delete_backend 1"
            ]
        );
        let t = &maps.tables[&1];
        assert!(t.iter().all(|id| *id == 0), "only backend 0 left");
        // The old table is untouched until the next swap.
        assert!(maps.tables[&0].contains(&1));
    }

    #[test]
    fn removed_service_is_deleted_before_its_backends() {
        let mut r = Reconciler::new(251, Seed::default(), 256, 4096).expect("reconciler");
        let mut maps = FakeMaps::default();
        r.apply(
            &[spec(80, &["10.0.0.1:8080"]), spec(81, &["10.0.0.9:9"])],
            &mut maps,
        )
        .expect("apply");
        maps.ops.clear();
        r.apply(&[spec(80, &["10.0.0.1:8080"])], &mut maps)
            .expect("apply");
        assert_eq!(maps.ops, ["delete_service 81", "delete_backend 1"]);
        assert_eq!(maps.services.len(), 1);
        assert_eq!(maps.backends.len(), 1);
    }

    #[test]
    fn table_entries_are_backend_ids_in_maglev_order() {
        let mut r = Reconciler::new(251, Seed::default(), 256, 4096).expect("reconciler");
        let mut maps = FakeMaps::default();
        let s = spec(80, &["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"]);
        r.apply(std::slice::from_ref(&s), &mut maps).expect("apply");
        let by_index = maglev::build(
            251,
            &Seed::default(),
            &s.backends
                .iter()
                .map(|b| Backend::new(b.addr, Proto::Tcp))
                .collect::<Vec<_>>(),
        )
        .expect("build");
        // Backend ids were allocated in address order, which is the spec order here.
        assert_eq!(maps.tables[&0], by_index.slots());
    }

    fn reconciler() -> Reconciler {
        Reconciler::new(251, Seed::default(), 256, 4096).expect("reconciler")
    }

    #[test]
    fn an_adopting_reconciler_rewrites_nothing_that_is_unchanged() {
        let mut maps = FakeMaps::default();
        let desired = [
            spec(80, &["10.0.0.1:8080", "10.0.0.2:8080"]),
            spec(81, &["10.0.0.3:9000"]),
        ];
        let mut first = reconciler();
        first.apply(&desired, &mut maps).expect("apply");
        // A backend change after the first write puts port 80 on its second table.
        let moved = [
            spec(80, &["10.0.0.1:8080", "10.0.0.4:8080"]),
            spec(81, &["10.0.0.3:9000"]),
        ];
        first.apply(&moved, &mut maps).expect("apply");
        let ids: Vec<_> = ["10.0.0.1:8080", "10.0.0.3:9000", "10.0.0.4:8080"]
            .iter()
            .map(|a| first.backend_id(a.parse().expect("addr"), Proto::Tcp))
            .collect();
        let before = (maps.services.clone(), maps.backends.clone());
        maps.ops.clear();

        let mut second = reconciler();
        second.adopt(&maps).expect("adopt");
        let stats = second.apply(&moved, &mut maps).expect("apply");
        assert!(maps.ops.is_empty(), "{:?}", maps.ops);
        assert_eq!(stats.tables_written, 0);
        assert_eq!((maps.services.clone(), maps.backends.clone()), before);
        let again: Vec<_> = ["10.0.0.1:8080", "10.0.0.3:9000", "10.0.0.4:8080"]
            .iter()
            .map(|a| second.backend_id(a.parse().expect("addr"), Proto::Tcp))
            .collect();
        assert_eq!(ids, again);
    }

    #[test]
    fn an_adopting_reconciler_removes_what_is_no_longer_wanted() {
        let mut maps = FakeMaps::default();
        let mut first = reconciler();
        first
            .apply(
                &[spec(80, &["10.0.0.1:8080"]), spec(81, &["10.0.0.9:9"])],
                &mut maps,
            )
            .expect("apply");
        maps.ops.clear();
        let mut second = reconciler();
        second.adopt(&maps).expect("adopt");
        second
            .apply(&[spec(80, &["10.0.0.1:8080"])], &mut maps)
            .expect("apply");
        assert_eq!(maps.ops, ["delete_service 81", "delete_backend 1"]);
    }

    #[test]
    fn an_adopted_backend_no_table_names_keeps_its_id_by_address() {
        let mut maps = FakeMaps::default();
        let mut s = spec(80, &["10.0.0.1:8080", "10.0.0.2:8080"]);
        s.backends[1].weight = 0;
        let mut first = reconciler();
        first
            .apply(std::slice::from_ref(&s), &mut maps)
            .expect("apply");
        let drained = first.backend_id("10.0.0.2:8080".parse().expect("addr"), Proto::Tcp);
        maps.ops.clear();
        let mut second = reconciler();
        second.adopt(&maps).expect("adopt");
        second
            .apply(std::slice::from_ref(&s), &mut maps)
            .expect("apply");
        assert!(maps.ops.is_empty(), "{:?}", maps.ops);
        assert_eq!(
            second.backend_id("10.0.0.2:8080".parse().expect("addr"), Proto::Tcp),
            drained
        );
    }

    #[test]
    fn unchanged_services_are_skipped_without_a_maglev_build() {
        let mut r = reconciler();
        let mut maps = FakeMaps::default();
        let desired: Vec<_> = (0..50)
            .map(|p| spec(1000 + p, &["10.0.0.1:8080", "10.0.0.2:8080"]))
            .collect();
        r.apply(&desired, &mut maps).expect("apply");
        let stats = r.apply(&desired, &mut maps).expect("apply");
        assert_eq!(stats, ApplyStats::default());
    }

    #[test]
    fn ports_with_the_same_backends_share_one_build() {
        let mut r = reconciler();
        let mut maps = FakeMaps::default();
        let desired: Vec<_> = (0..50)
            .map(|p| spec(1000 + p, &["10.0.0.1:8080", "10.0.0.2:8080"]))
            .collect();
        let stats = r.apply(&desired, &mut maps).expect("apply");
        assert_eq!((stats.tables_built, stats.tables_written), (1, 50));
        let changed: Vec<_> = (0..50)
            .map(|p| spec(1000 + p, &["10.0.0.1:8080", "10.0.0.3:8080"]))
            .collect();
        let stats = r.apply(&changed, &mut maps).expect("apply");
        assert_eq!((stats.tables_built, stats.tables_written), (1, 50));
        assert_eq!(stats.services_written, 50);
    }

    #[test]
    fn released_ids_are_reused_only_after_fresh_ones_run_out() {
        let mut pool = IdPool::new(3);
        assert_eq!([pool.alloc(), pool.alloc()], [Some(0), Some(1)]);
        pool.release(0);
        assert_eq!(pool.alloc(), Some(2));
        assert_eq!(pool.alloc(), Some(0));
        assert_eq!(pool.alloc(), None);
        let used: BTreeSet<u32> = [1, 4].into();
        let mut adopted = IdPool::with_used(8, &used);
        let got: Vec<_> = std::iter::from_fn(|| adopted.alloc()).collect();
        assert_eq!(got, [5, 6, 7, 0, 2, 3]);
    }

    #[test]
    fn a_full_service_map_names_the_setting() {
        let mut r = Reconciler::new(251, Seed::default(), 1, 16).expect("reconciler");
        let mut maps = FakeMaps::default();
        let e = r
            .apply(
                &[spec(80, &["10.0.0.1:1"]), spec(81, &["10.0.0.1:1"])],
                &mut maps,
            )
            .expect_err("one service fits");
        assert!(e.to_string().contains("maxServices"), "{e}");
    }

    #[test]
    fn a_full_service_map_can_be_replaced_in_one_apply() {
        let mut r = Reconciler::new(251, Seed::default(), 2, 16).expect("reconciler");
        let mut maps = FakeMaps::default();
        r.apply(
            &[spec(80, &["10.0.0.1:1"]), spec(81, &["10.0.0.1:1"])],
            &mut maps,
        )
        .expect("two fit");
        r.apply(
            &[spec(90, &["10.0.0.1:1"]), spec(91, &["10.0.0.1:1"])],
            &mut maps,
        )
        .expect("the old two are deleted before the new two get their ids");
        let ports: BTreeSet<u16> = maps.services.keys().map(|k| k.port).collect();
        assert_eq!(ports, [90, 91].into());
    }
}
