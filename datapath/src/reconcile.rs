//! Reconciles the desired services (VIP, port, protocol, backends) into the datapath maps through
//! idempotent operations: a pure diff decides what to write, a [`MapWriter`] writes it (the
//! [`Loader`](crate::loader::Loader) in production, an in-memory fake in tests). Maglev tables are
//! double-buffered per service: the standby table is written first, then the service entry is
//! replaced in one map update, so packets see either the old or the new table, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use datapath_common::{
    BE_F_LOCAL, BackendValue, FAMILY_V4, FAMILY_V6, MAX_BACKENDS, MAX_SERVICES, SVC_F_AFFINITY,
    ServiceKey, ServiceValue, TABLES_PER_SERVICE,
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
    /// Underlay IPv4 address of the backend's node.
    pub node: Ipv4Addr,
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
    BackendValue {
        addr,
        node_addr: b.node.octets(),
        port: b.addr.port(),
        family,
        flags: if b.local { BE_F_LOCAL } else { 0 },
        next_hop_mac: b.next_hop_mac,
        _pad: [0; 2],
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Applied {
    id: u32,
    value: ServiceValue,
    table: Vec<u32>,
}

/// Tracks what has been applied and turns desired state into map writes.
pub struct Reconciler {
    m: u32,
    seed: Seed,
    services: BTreeMap<ServiceKey, Applied>,
    /// Backend ids by (address, protocol); shared by services that use the same backend.
    backend_ids: BTreeMap<(SocketAddr, Proto), u32>,
    backends: BTreeMap<u32, BackendValue>,
}

impl Reconciler {
    /// A reconciler for tables of size `m` built with `seed`; nothing applied yet.
    pub fn new(m: u32, seed: Seed) -> Result<Self> {
        maglev::check_table_size(m)?;
        Ok(Self {
            m,
            seed,
            services: BTreeMap::new(),
            backend_ids: BTreeMap::new(),
            backends: BTreeMap::new(),
        })
    }

    /// Backend ids the applied state uses.
    pub fn backend_ids(&self) -> BTreeSet<u32> {
        self.backends.keys().copied().collect()
    }

    /// Makes the maps hold exactly `desired`. Writes only what changed; on error the applied
    /// state reflects what was written, so calling again retries the rest.
    pub fn apply(&mut self, desired: &[ServiceSpec], w: &mut impl MapWriter) -> Result<()> {
        let mut wanted_backends: BTreeMap<(SocketAddr, Proto), BackendValue> = BTreeMap::new();
        for s in desired {
            for b in &s.backends {
                wanted_backends.insert((b.addr, s.proto), backend_value(b));
            }
        }
        // Backends first, so every table entry written below resolves.
        for (k, v) in &wanted_backends {
            let id = match self.backend_ids.get(k) {
                Some(id) => *id,
                None => {
                    let id = (0..MAX_BACKENDS)
                        .find(|i| !self.backends.contains_key(i))
                        .ok_or_else(|| Error::InvalidBackend("backend map full".into()))?;
                    self.backend_ids.insert(*k, id);
                    id
                }
            };
            if self.backends.get(&id) != Some(v) {
                w.put_backend(id, v)?;
                self.backends.insert(id, *v);
            }
        }
        let mut keep = BTreeSet::new();
        for s in desired {
            let key = service_key(s.vip, s.port, s.proto);
            keep.insert(key);
            self.apply_service(key, s, w)?;
        }
        let gone: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect();
        for k in gone {
            w.delete_service(&k)?;
            self.services.remove(&k);
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
            self.backend_ids.remove(&k);
            self.backends.remove(&id);
        }
        Ok(())
    }

    fn apply_service(
        &mut self,
        key: ServiceKey,
        s: &ServiceSpec,
        w: &mut impl MapWriter,
    ) -> Result<()> {
        let maglev_backends: Vec<Backend> = s
            .backends
            .iter()
            .map(|b| Backend {
                addr: b.addr,
                proto: s.proto,
                weight: b.weight,
            })
            .collect();
        let ids: Vec<u32> = s
            .backends
            .iter()
            .map(|b| {
                self.backend_ids
                    .get(&(b.addr, s.proto))
                    .copied()
                    .unwrap_or(u32::MAX)
            })
            .collect();
        let live = s.backends.iter().filter(|b| b.weight > 0).count() as u32;
        let table: Vec<u32> = if live == 0 {
            Vec::new()
        } else {
            maglev::build(self.m, &self.seed, &maglev_backends)?
                .slots()
                .iter()
                .map(|i| ids[*i as usize])
                .collect()
        };
        let (id, active, old_table) = match self.services.get(&key) {
            Some(a) => (a.id, a.value.table, a.table.clone()),
            None => {
                let used: BTreeSet<u32> = self.services.values().map(|a| a.id).collect();
                let id = (0..MAX_SERVICES)
                    .find(|i| !used.contains(i))
                    .ok_or_else(|| Error::InvalidBackend("service map full".into()))?;
                // New service: its "active" table is the second one, so the first write goes to
                // the first.
                (id, id * TABLES_PER_SERVICE + 1, Vec::new())
            }
        };
        let mut value = ServiceValue {
            id,
            table: active,
            flags: if s.affinity { SVC_F_AFFINITY } else { 0 },
            backends: live,
        };
        if !table.is_empty() && table != old_table {
            let base = id * TABLES_PER_SERVICE;
            let standby = if active == base { base + 1 } else { base };
            w.write_table(standby, &table)?;
            value.table = standby;
        }
        let changed = self.services.get(&key).map(|a| a.value) != Some(value);
        if changed {
            w.put_service(&key, &value)?;
        }
        self.services.insert(key, Applied { id, value, table });
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
                    node: Ipv4Addr::new(192, 168, 1, 1),
                    next_hop_mac: [2, 0, 0, 0, 0, 1],
                    local: false,
                })
                .collect(),
        }
    }

    #[test]
    fn applying_twice_writes_nothing_the_second_time() {
        let mut r = Reconciler::new(251, Seed::default()).expect("reconciler");
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
        let mut r = Reconciler::new(251, Seed::default()).expect("reconciler");
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
        let mut r = Reconciler::new(251, Seed::default()).expect("reconciler");
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
        let mut r = Reconciler::new(251, Seed::default()).expect("reconciler");
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
}
