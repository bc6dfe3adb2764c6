//! Map names, sizes, and the `#[repr(C)]` keys and values of the datapath's BPF maps. Every struct
//! is laid out without implicit padding (explicit `_pad` fields), so kernel and user space agree
//! byte for byte and the verifier never sees uninitialised stack bytes in a key.

/// IPv6 services: [`ServiceKey`] → [`ServiceValue`].
pub const MAP_SERVICES: &str = "HERALD_SVC";
/// IPv4 services: [`ServiceKey4`] → [`ServiceValue`]. Separate because the kernel hashes the
/// whole key on every lookup, and every IPv4 packet on the uplink is looked up: an 8-byte key is
/// one `jhash` final mix, the 20-byte [`ServiceKey`] a mixing round more.
pub const MAP_SERVICES4: &str = "HERALD_SVC4";
/// Backends: array indexed by backend id (`0..MAX_BACKENDS`) → [`BackendValue`]; a free slot is
/// all zeroes (`family` 0).
pub const MAP_BACKENDS: &str = "HERALD_BE";
/// Maglev tables, flattened: global slot `g = table_index * M + slot` holds a backend id, two
/// slots per element ([`MaglevPair`]): element `g / 2`, half `g % 2`. The kernel stores array
/// values in 8-byte elements, so a `u32` value would waste half the map; a pair wastes nothing,
/// and in user space (mmap) the map is one contiguous `u32` array.
pub const MAP_MAGLEV: &str = "HERALD_MAGLEV";
/// One element of the Maglev map: two consecutive slots.
pub type MaglevPair = [u32; 2];
/// Node configuration: index 0 → [`Config`].
pub const MAP_CONFIG: &str = "HERALD_CFG";
/// Flows this LB node has seen: [`FlowKey`] → [`FlowValue`] (LRU).
pub const MAP_FLOWS: &str = "HERALD_FLOWS";
/// IPv4 TCP flows this LB node has seen: [`FlowKey4`] → [`FlowValue`] (LRU). IPv4 flows live in
/// two per-protocol maps, apart from the IPv6 one, because the kernel hashes the whole key on
/// every lookup: the 12-byte [`FlowKey4`] is one `jhash` final mix, the 40-byte [`FlowKey`] three
/// mixing rounds and the final.
pub const MAP_FLOWS4_TCP: &str = "HERALD_FLOWS4T";
/// IPv4 UDP flows this LB node has seen: [`FlowKey4`] → [`FlowValue`] (LRU).
pub const MAP_FLOWS4_UDP: &str = "HERALD_FLOWS4U";
/// Reverse NAT of established flows on the backend node: reply [`FlowKey`] → [`RevNatValue`]
/// (LRU). Only the egress program inserts here, when this node's own stack sends a reply that
/// shows the flow is established (see [`MAP_REVNAT_NEW`]); so a flood of first packets, which
/// only ever lands in [`MAP_REVNAT_NEW`], cannot evict these entries.
pub const MAP_REVNAT: &str = "HERALD_RNAT";
/// Reverse NAT of flows not yet answered (LRU, same key and value as [`MAP_REVNAT`]): written
/// by the TC ingress program from the DSR option of a validated Geneve packet (and by the XDP
/// program for a local backend). A flood of SYNs evicts only other entries of this map.
pub const MAP_REVNAT_NEW: &str = "HERALD_RNATNEW";
/// Underlay IPv4 addresses of the nodes allowed to send us Geneve (the load-balancer nodes):
/// `[u8; 4]` → `u32` (1). Written by user space ([`MAX_LB_NODES`] entries at most).
pub const MAP_LB_NODES: &str = "HERALD_LBNODES";
/// Underlay IPv6 addresses of the load-balancer nodes: `[u8; 16]` → `u32` (1). Apart from the
/// IPv4 map so that its key, and the pinned IPv4 map of an earlier version, stay as they are.
pub const MAP_LB_NODES6: &str = "HERALD_LBNODES6";
/// Per-CPU counters by [`Counter`] index.
pub const MAP_COUNTERS: &str = "HERALD_CNT";
/// Per-CPU per-service counters by service id → [`ServiceCounters`].
pub const MAP_SVC_COUNTERS: &str = "HERALD_SVCCNT";
/// Prefilter of the IPv4 service map: an array of [`SVC4_FILTER_WORDS`] `u64` words, one bit
/// per [`svc4_filter_slot`]. A clear bit means "no such IPv4 service", so a non-service frame
/// leaves without the hash lookup; a set bit only means "look it up". User space sets a
/// service's bit before it writes the service entry and never clears it on delete; the loader
/// rebuilds the whole filter from the service map at load (which drops stale bits).
pub const MAP_SVC4_FILTER: &str = "HERALD_SVC4F";
/// Words in [`MAP_SVC4_FILTER`] (65,536 bits, 8 KiB).
pub const SVC4_FILTER_WORDS: u32 = 1024;

/// The prefilter bit (`0..SVC4_FILTER_WORDS * 64`) of an IPv4 service (address wire bytes,
/// port in host order, protocol): a multiplicative hash, cheap enough for every packet. The XDP
/// program and user space both call this function.
#[inline(always)]
pub fn svc4_filter_slot(addr: [u8; 4], port: u16, proto: u8) -> u32 {
    let a = u32::from_le_bytes(addr);
    let x = a ^ (u32::from(port) << 16 | u32::from(proto)).rotate_left(8);
    x.wrapping_mul(0x9e37_79b1) >> 16
}

/// Service capacity compiled into the object (service ids are `0..max`). The loader overrides it
/// at load time (`maxServices`), sizing the service maps, the per-service counters and the
/// Maglev map.
pub const MAX_SERVICES: u32 = 256;
/// Backend capacity compiled into the object; the loader overrides it at load time
/// (`maxBackends`).
pub const MAX_BACKENDS: u32 = 4096;
/// `BPF_F_MMAPABLE`: the Maglev map can be mapped into user space, so the loader writes a whole
/// table with one `memcpy` instead of one `bpf()` call per slot.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// Flow LRU size on the LB node (each of the IPv4 TCP, IPv4 UDP and IPv6 flow maps).
pub const MAX_FLOWS: u32 = 65536;
/// Established reverse-NAT LRU size on the backend node.
pub const MAX_REVNAT: u32 = 65536;
/// Size of the LRU of reverse-NAT entries not answered yet (SYN seen, no established reply).
/// Half-open flows live here for as long as they are among the newest `MAX_REVNAT_NEW`; a SYN
/// flood of more than this many per handshake time costs new flows, never established ones.
pub const MAX_REVNAT_NEW: u32 = 16384;
/// Capacity of the allowed load-balancer node map.
pub const MAX_LB_NODES: u32 = 1024;
/// Maglev tables per service (two: active and standby, for atomic swaps).
pub const TABLES_PER_SERVICE: u32 = 2;

/// Service flag: session affinity (the client port is left out of the hash).
pub const SVC_F_AFFINITY: u32 = 1;
/// Backend flag: the backend runs on this node (DNAT and pass up instead of encapsulating).
pub const BE_F_LOCAL: u8 = 1;
/// Backend flag: the backend's node has an IPv6 underlay address
/// ([`BackendValue::node_addr6`]): Geneve to it goes over IPv6. A flag rather than a test of the
/// address, so the IPv4 path reads no more of the value than before.
pub const BE_F_NODE_V6: u8 = 2;

/// Key of the service map: (VIP, port, protocol).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ServiceKey {
    /// Service address; IPv4 in the first 4 bytes, the rest zero.
    pub addr: [u8; 16],
    /// Service port, host byte order.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`crate::FAMILY_V4`] or [`crate::FAMILY_V6`].
    pub family: u8,
}

impl ServiceKey {
    /// The compact IPv4 key, or `None` for an IPv6 service.
    pub fn to_v4(&self) -> Option<ServiceKey4> {
        (self.family == crate::FAMILY_V4).then(|| ServiceKey4 {
            addr: [self.addr[0], self.addr[1], self.addr[2], self.addr[3]],
            port: self.port,
            proto: self.proto,
            _pad: 0,
        })
    }
}

/// Key of the IPv4 service map: (VIP, port, protocol).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ServiceKey4 {
    /// Service address.
    pub addr: [u8; 4],
    /// Service port, host byte order.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Explicit padding.
    pub _pad: u8,
}

impl ServiceKey4 {
    /// The general (16-byte address) form of this key.
    pub fn to_key(&self) -> ServiceKey {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&self.addr);
        ServiceKey {
            addr,
            port: self.port,
            proto: self.proto,
            family: crate::FAMILY_V4,
        }
    }
}

/// Value of the service map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ServiceValue {
    /// Service id: index into the per-service counters.
    pub id: u32,
    /// Active Maglev table index (`0..MAX_SERVICES * TABLES_PER_SERVICE`).
    pub table: u32,
    /// `SVC_F_*` flags.
    pub flags: u32,
    /// Number of backends (0: drop with `NoBackend`).
    pub backends: u32,
}

/// Value of the backend map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BackendValue {
    /// Backend address (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
    /// Underlay IPv4 address of the backend's node (Geneve destination), unless
    /// [`BE_F_NODE_V6`] is set.
    pub node_addr: [u8; 4],
    /// Backend port, host byte order.
    pub port: u16,
    /// Address family of `addr`.
    pub family: u8,
    /// `BE_F_*` flags.
    pub flags: u8,
    /// MAC of the next hop towards the node's address on the uplink.
    pub next_hop_mac: [u8; 6],
    /// Explicit padding.
    pub _pad: [u8; 2],
    /// Underlay IPv6 address of the backend's node when [`BE_F_NODE_V6`] is set (zero
    /// otherwise).
    pub node_addr6: [u8; 16],
}

/// The node's datapath configuration (index 0 of the config map).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// This node's underlay IPv4 address (outer source of Geneve over IPv4; the only destination
    /// of Geneve over IPv4 the TC ingress program accepts). Zero: none.
    pub node_addr: [u8; 4],
    /// MAC of the uplink (outer source MAC).
    pub node_mac: [u8; 6],
    /// Uplink MTU: encapsulated packets above it get ICMP fragmentation-needed / packet-too-big.
    pub mtu: u16,
    /// Maglev table size M.
    pub maglev_m: u32,
    /// IPv4 packet-hash seed (bytes 4–7 of the Maglev seed).
    pub jhash_v4: u32,
    /// IPv6 packet-hash seed (bytes 8–11).
    pub jhash_v6: u32,
    /// This node's underlay IPv6 address (outer source of Geneve over IPv6, to backend nodes
    /// with IPv6 underlay addresses; the only destination of Geneve over IPv6 the TC ingress
    /// program accepts). Zero: none.
    pub node_addr6: [u8; 16],
}

/// A connection 5-tuple: key of the LB node's flow LRU and of the backend node's reverse-NAT LRU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Source address (IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
    /// Source port, host byte order.
    pub sport: u16,
    /// Destination port, host byte order.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// Address family.
    pub family: u8,
    /// Explicit padding.
    pub _pad: [u8; 2],
}

/// Key of the IPv4 flow LRUs (one map per protocol, so the protocol is not part of the key).
/// Addresses and ports are wire bytes (network order), as read from the packet.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey4 {
    /// Source (client) address.
    pub saddr: [u8; 4],
    /// Destination (service) address.
    pub daddr: [u8; 4],
    /// Source port, wire bytes.
    pub sport: [u8; 2],
    /// Destination port, wire bytes.
    pub dport: [u8; 2],
}

/// Value of the flow LRU: the backend the flow was sent to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowValue {
    /// Backend id.
    pub backend: u32,
}

/// Value of the reverse-NAT LRU: what the reply's source must become.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RevNatValue {
    /// Service address (IPv4 in the first 4 bytes).
    pub vip: [u8; 16],
    /// Service port, host byte order.
    pub port: u16,
    /// Address family.
    pub family: u8,
    /// Explicit padding.
    pub _pad: u8,
}

/// Per-service packet and byte counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ServiceCounters {
    /// Packets load-balanced.
    pub packets: u64,
    /// Bytes load-balanced (before encapsulation).
    pub bytes: u64,
}

/// Indexes of the global counter array: what happened to a packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Packets the XDP program looked at.
    XdpRx = 0,
    /// Not for a service: passed untouched.
    NotService = 1,
    /// Encapsulated to a remote backend and transmitted.
    Encap = 2,
    /// DNATed to a local backend and passed up.
    Local = 3,
    /// Dropped: the service has no backend.
    DropNoBackend = 4,
    /// Malformed or truncated IP/TCP/UDP: passed untouched for the kernel to judge.
    Malformed = 5,
    /// Too big once encapsulated: answered with ICMP fragmentation-needed / packet-too-big.
    IcmpTooBig = 6,
    /// Encapsulated with the DSR option.
    DsrOption = 7,
    /// Geneve DSR packets decapsulated by the TC ingress program.
    Decap = 8,
    /// Replies rewritten to the service address by the TC egress program.
    RevNat = 9,
    /// Dropped: a packet operation (adjust head/room) failed.
    DropInternal = 10,
    /// Passed: IP fragments or IPv6 extension headers (not load-balanced).
    PassUnsupported = 11,
    /// Dropped by TC ingress: Geneve to our node address from a host not in the LB node map.
    DropGeneveUnknownNode = 12,
    /// Passed untouched by TC ingress: Geneve (UDP 6081) to an address other than this node's.
    GeneveNotLocal = 13,
    /// Dropped by TC ingress: a DSR option naming no configured service (VIP, port, protocol).
    DropGeneveUnknownService = 14,
    /// Reverse-NAT entries moved to the established map by an established reply.
    RevNatEstablished = 15,
    /// SYN-ACKs whose MSS option the TC egress program lowered so the client's segments fit
    /// the underlay once encapsulated.
    MssClamped = 16,
}

/// Number of [`Counter`] slots.
pub const COUNTERS: u32 = 17;

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; COUNTERS as usize] = [
        Counter::XdpRx,
        Counter::NotService,
        Counter::Encap,
        Counter::Local,
        Counter::DropNoBackend,
        Counter::Malformed,
        Counter::IcmpTooBig,
        Counter::DsrOption,
        Counter::Decap,
        Counter::RevNat,
        Counter::DropInternal,
        Counter::PassUnsupported,
        Counter::DropGeneveUnknownNode,
        Counter::GeneveNotLocal,
        Counter::DropGeneveUnknownService,
        Counter::RevNatEstablished,
        Counter::MssClamped,
    ];

    /// A stable snake_case name for status output and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Counter::XdpRx => "xdp_rx",
            Counter::NotService => "not_service",
            Counter::Encap => "encap",
            Counter::Local => "local",
            Counter::DropNoBackend => "drop_no_backend",
            Counter::Malformed => "malformed",
            Counter::IcmpTooBig => "icmp_too_big",
            Counter::DsrOption => "dsr_option",
            Counter::Decap => "decap",
            Counter::RevNat => "rev_nat",
            Counter::DropInternal => "drop_internal",
            Counter::PassUnsupported => "pass_unsupported",
            Counter::DropGeneveUnknownNode => "drop_geneve_unknown_node",
            Counter::GeneveNotLocal => "geneve_not_local",
            Counter::DropGeneveUnknownService => "drop_geneve_unknown_service",
            Counter::RevNatEstablished => "rev_nat_established",
            Counter::MssClamped => "mss_clamped",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is `#[repr(C)]`, `Copy`, made of integers and byte arrays only, with
    // explicit padding fields, so every bit pattern is valid and no byte is uninitialised.
    unsafe impl aya::Pod for super::ServiceKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ServiceKey4 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ServiceValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::BackendValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowKey4 {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RevNatValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ServiceCounters {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<ServiceKey>(), 16 + 2 + 1 + 1);
        assert_eq!(size_of::<ServiceKey4>(), 4 + 2 + 1 + 1);
        assert_eq!(size_of::<ServiceValue>(), 16);
        assert_eq!(size_of::<BackendValue>(), 16 + 4 + 2 + 1 + 1 + 6 + 2 + 16);
        assert_eq!(size_of::<Config>(), 4 + 6 + 2 + 4 + 4 + 4 + 16);
        assert_eq!(size_of::<FlowKey>(), 16 + 16 + 2 + 2 + 1 + 1 + 2);
        assert_eq!(size_of::<FlowKey4>(), 4 + 4 + 2 + 2);
        assert_eq!(size_of::<RevNatValue>(), 20);
        assert_eq!(size_of::<ServiceCounters>(), 16);
    }

    #[test]
    fn service_key_v4_round_trips() {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[10, 96, 0, 1]);
        let k = ServiceKey {
            addr,
            port: 443,
            proto: crate::IPPROTO_TCP,
            family: crate::FAMILY_V4,
        };
        let k4 = k.to_v4().expect("an IPv4 key");
        assert_eq!(k4.addr, [10, 96, 0, 1]);
        assert_eq!(k4.to_key(), k);
        let k6 = ServiceKey {
            family: crate::FAMILY_V6,
            ..k
        };
        assert_eq!(k6.to_v4(), None);
    }

    #[test]
    fn counter_indexes_are_dense() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }
}
