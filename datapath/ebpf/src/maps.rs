//! The BPF maps the programs share with the loader. Names and value types come from
//! `datapath-common`; sizes are defaults the loader may override before loading.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use datapath_common::{
    BPF_F_MMAPABLE, BackendValue, COUNTERS, Config, FlowKey, FlowKey4, FlowValue, MAX_BACKENDS,
    MAX_FLOWS, MAX_LB_NODES, MAX_REVNAT, MAX_REVNAT_NEW, MAX_SERVICES, MaglevPair, RevNatValue,
    SVC4_FILTER_WORDS, ServiceCounters, ServiceKey, ServiceKey4, ServiceValue, TABLES_PER_SERVICE,
};

/// IPv4 services by (VIP, port, proto): compact key (see `datapath_common::MAP_SERVICES4`).
#[map(name = "HERALD_SVC4")]
pub static SERVICES4: HashMap<ServiceKey4, ServiceValue> =
    HashMap::with_max_entries(MAX_SERVICES, 0);

/// Prefilter of `SERVICES4` (see `datapath_common::MAP_SVC4_FILTER`): an array, so the lookup
/// is inlined and nothing is hashed by the kernel.
#[map(name = "HERALD_SVC4F")]
pub static SVC4_FILTER: Array<u64> = Array::with_max_entries(SVC4_FILTER_WORDS, 0);

/// IPv6 services by (VIP, port, proto).
#[map(name = "HERALD_SVC")]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::with_max_entries(MAX_SERVICES, 0);

/// Backends by id. An array, not a hash: ids are dense and small, and the JIT inlines array
/// lookups (no key hashing on the per-packet path). A free slot is all zeroes (`family` 0).
#[map(name = "HERALD_BE")]
pub static BACKENDS: Array<BackendValue> = Array::with_max_entries(MAX_BACKENDS, 0);

/// Flattened Maglev tables, two slots per element (see `datapath_common::MAP_MAGLEV`). The
/// loader sizes it to `max_services * TABLES_PER_SERVICE * M / 2` elements.
#[map(name = "HERALD_MAGLEV")]
pub static MAGLEV: Array<MaglevPair> =
    Array::with_max_entries(MAX_SERVICES * TABLES_PER_SERVICE * 251 / 2, BPF_F_MMAPABLE);

/// Node configuration at index 0.
#[map(name = "HERALD_CFG")]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// IPv6 flows seen by this LB node.
#[map(name = "HERALD_FLOWS")]
pub static FLOWS: LruHashMap<FlowKey, FlowValue> = LruHashMap::with_max_entries(MAX_FLOWS, 0);

/// IPv4 TCP flows seen by this LB node (compact key: see `datapath_common::MAP_FLOWS4_TCP`).
#[map(name = "HERALD_FLOWS4T")]
pub static FLOWS4_TCP: LruHashMap<FlowKey4, FlowValue> = LruHashMap::with_max_entries(MAX_FLOWS, 0);

/// IPv4 UDP flows seen by this LB node.
#[map(name = "HERALD_FLOWS4U")]
pub static FLOWS4_UDP: LruHashMap<FlowKey4, FlowValue> = LruHashMap::with_max_entries(MAX_FLOWS, 0);

/// Reply tuple → service address of established flows, on the backend node (only the egress
/// program inserts; see `datapath_common::MAP_REVNAT`).
#[map(name = "HERALD_RNAT")]
pub static REVNAT: LruHashMap<FlowKey, RevNatValue> = LruHashMap::with_max_entries(MAX_REVNAT, 0);

/// Reply tuple → service address of flows not answered yet (see
/// `datapath_common::MAP_REVNAT_NEW`).
#[map(name = "HERALD_RNATNEW")]
pub static REVNAT_NEW: LruHashMap<FlowKey, RevNatValue> =
    LruHashMap::with_max_entries(MAX_REVNAT_NEW, 0);

/// Underlay addresses of the load-balancer nodes allowed to send us Geneve.
#[map(name = "HERALD_LBNODES")]
pub static LB_NODES: HashMap<[u8; 4], u32> = HashMap::with_max_entries(MAX_LB_NODES, 0);

/// Underlay IPv6 addresses of the load-balancer nodes allowed to send us Geneve over IPv6.
#[map(name = "HERALD_LBNODES6")]
pub static LB_NODES6: HashMap<[u8; 16], u32> = HashMap::with_max_entries(MAX_LB_NODES, 0);

/// Global counters.
#[map(name = "HERALD_CNT")]
pub static COUNTERS_MAP: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS, 0);

/// Per-service counters.
#[map(name = "HERALD_SVCCNT")]
pub static SVC_COUNTERS: PerCpuArray<ServiceCounters> =
    PerCpuArray::with_max_entries(MAX_SERVICES, 0);

/// Per-CPU scratch for the XDP program's encapsulation plan (keeps it off the 512-byte stack).
#[map(name = "HERALD_SCRATCH")]
pub static SCRATCH: PerCpuArray<crate::geneve::Encap> = PerCpuArray::with_max_entries(1, 0);

/// Adds one to a global counter.
#[inline(always)]
pub fn count(c: datapath_common::Counter) {
    if let Some(p) = COUNTERS_MAP.get_ptr_mut(c as u32) {
        // SAFETY: per-CPU slot, valid for the program's run; no other writer on this CPU.
        unsafe { *p += 1 };
    }
}

/// Adds a packet of `bytes` to a service's counters.
#[inline(always)]
pub fn count_service(id: u32, bytes: u64) {
    if let Some(p) = SVC_COUNTERS.get_ptr_mut(id) {
        // SAFETY: per-CPU slot, valid for the program's run; no other writer on this CPU.
        unsafe {
            (*p).packets += 1;
            (*p).bytes += bytes;
        }
    }
}
