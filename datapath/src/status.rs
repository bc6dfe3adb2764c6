//! Datapath status (for the `herald` CLI and `Datapath::status`): reads the pinned maps of a
//! running datapath (no programs loaded) and renders services, backends and counters as text or
//! JSON. I/O: bpf() reads of pinned maps only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray};
use datapath_common::{
    BackendValue, Config, Counter, FAMILY_V4, MAP_BACKENDS, MAP_CONFIG, MAP_COUNTERS, MAP_SERVICES,
    MAP_SERVICES4, MAP_SVC_COUNTERS, ServiceCounters, ServiceKey, ServiceKey4, ServiceValue,
};
use serde_json::json;

use crate::error::Result;

/// A snapshot of the datapath's maps.
#[derive(Debug, Default)]
pub struct Status {
    /// Services with their per-service counters.
    pub services: Vec<(ServiceKey, ServiceValue, ServiceCounters)>,
    /// Backends by id.
    pub backends: Vec<(u32, BackendValue)>,
    /// Global counters summed over CPUs.
    pub counters: Vec<(Counter, u64)>,
    /// The underlay MTU the programs work with (`Config::mtu`; 0 before the node identity is
    /// programmed).
    pub mtu: u16,
    /// Whether this node's identity has an IPv6 underlay address (`Config::node_addr6`).
    pub node_addr6: bool,
}

fn ip(addr: &[u8; 16], family: u8) -> IpAddr {
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*addr))
    }
}

impl Status {
    /// Reads the maps pinned under `dir` by [`crate::loader::Loader`].
    pub fn read_pinned(dir: &Path) -> Result<Self> {
        let svc: HashMap<MapData, ServiceKey, ServiceValue> =
            HashMap::try_from(Map::HashMap(MapData::from_pin(dir.join(MAP_SERVICES))?))?;
        let svc4: HashMap<MapData, ServiceKey4, ServiceValue> =
            HashMap::try_from(Map::HashMap(MapData::from_pin(dir.join(MAP_SERVICES4))?))?;
        let be: Array<MapData, BackendValue> =
            Array::try_from(Map::Array(MapData::from_pin(dir.join(MAP_BACKENDS))?))?;
        let cnt: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(Map::PerCpuArray(MapData::from_pin(dir.join(MAP_COUNTERS))?))?;
        let scnt: PerCpuArray<MapData, ServiceCounters> = PerCpuArray::try_from(Map::PerCpuArray(
            MapData::from_pin(dir.join(MAP_SVC_COUNTERS))?,
        ))?;
        let cfg: Array<MapData, Config> =
            Array::try_from(Map::Array(MapData::from_pin(dir.join(MAP_CONFIG))?))?;
        let c = cfg.get(&0, 0)?;
        let mut out = Status {
            mtu: c.mtu,
            node_addr6: c.node_addr6 != [0; 16],
            ..Status::default()
        };
        let v4 = svc4.iter().map(|item| item.map(|(k, v)| (k.to_key(), v)));
        for item in v4.chain(svc.iter()) {
            let (k, v) = item?;
            let per_cpu = scnt.get(&v.id, 0)?;
            let c = per_cpu
                .iter()
                .fold(ServiceCounters::default(), |a, c| ServiceCounters {
                    packets: a.packets + c.packets,
                    bytes: a.bytes + c.bytes,
                });
            out.services.push((k, v, c));
        }
        out.services.sort_by_key(|(k, _, _)| *k);
        out.backends = crate::loader::backends_in(&be)?;
        out.backends.sort_by_key(|(id, _)| *id);
        for c in Counter::ALL {
            out.counters
                .push((c, cnt.get(&(c as u32), 0)?.iter().sum()));
        }
        Ok(out)
    }

    /// A warning when the underlay MTU cannot carry full-size client packets once encapsulated
    /// (in outer IPv6 headers when this node or a remote backend's node has an IPv6 underlay
    /// address).
    pub fn mtu_warning(&self) -> Option<String> {
        if self.mtu == 0 {
            return None;
        }
        let outer6 = self.node_addr6
            || self
                .backends
                .iter()
                .any(|(_, b)| b.flags & datapath_common::BE_F_NODE_V6 != 0);
        crate::config::encap_mtu_warning("underlay", self.mtu, outer6)
    }

    /// Human-readable rendering.
    pub fn to_text(&self) -> String {
        let mut s = format!("MTU {}\n", self.mtu);
        if let Some(w) = self.mtu_warning() {
            s += &format!("WARNING {w}\n");
        }
        s += "SERVICES\n";
        for (k, v, c) in &self.services {
            s += &format!(
                "  {}:{} proto {} id {} table {} backends {} affinity {} packets {} bytes {}\n",
                ip(&k.addr, k.family),
                k.port,
                k.proto,
                v.id,
                v.table,
                v.backends,
                v.flags & datapath_common::SVC_F_AFFINITY != 0,
                c.packets,
                c.bytes
            );
        }
        s += "BACKENDS\n";
        for (id, b) in &self.backends {
            s += &format!(
                "  {id}: {}:{} node {} local {}\n",
                ip(&b.addr, b.family),
                b.port,
                crate::reconcile::node_of(b),
                b.flags & datapath_common::BE_F_LOCAL != 0
            );
        }
        s += "COUNTERS\n";
        for (c, v) in &self.counters {
            s += &format!("  {:18} {v}\n", c.name());
        }
        s
    }

    /// JSON rendering.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "mtu": self.mtu,
            "warnings": self.mtu_warning().into_iter().collect::<Vec<_>>(),
            "services": self.services.iter().map(|(k, v, c)| json!({
                "vip": ip(&k.addr, k.family).to_string(),
                "port": k.port,
                "proto": k.proto,
                "id": v.id,
                "table": v.table,
                "backends": v.backends,
                "affinity": v.flags & datapath_common::SVC_F_AFFINITY != 0,
                "packets": c.packets,
                "bytes": c.bytes,
            })).collect::<Vec<_>>(),
            "backends": self.backends.iter().map(|(id, b)| json!({
                "id": id,
                "addr": ip(&b.addr, b.family).to_string(),
                "port": b.port,
                "node": crate::reconcile::node_of(b).to_string(),
                "local": b.flags & datapath_common::BE_F_LOCAL != 0,
            })).collect::<Vec<_>>(),
            "counters": self.counters.iter().map(|(c, v)| (c.name().to_string(), json!(v)))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_underlay_mtu_too_small_for_the_encapsulation_is_warned_about() {
        let st = Status {
            mtu: 1500,
            ..Status::default()
        };
        let text = st.to_text();
        assert!(
            text.starts_with("MTU 1500\nWARNING underlay: MTU 1500 cannot carry"),
            "{text}"
        );
        assert_eq!(st.to_json()["warnings"].as_array().map(Vec::len), Some(1));
        for mtu in [0, 1574, 9000] {
            let st = Status {
                mtu,
                ..Status::default()
            };
            assert!(!st.to_text().contains("WARNING"), "MTU {mtu}");
            assert_eq!(st.to_json()["warnings"], json!([]), "MTU {mtu}");
        }
    }
}
