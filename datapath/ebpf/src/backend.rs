//! The backend node's TC programs: ingress strips Geneve (recording a reverse-NAT entry from the
//! DSR option), egress rewrites replies' source to the service address so they go straight to
//! the client, and lowers the MSS option of SYN-ACKs so the client's segments fit the underlay
//! once an LB node encapsulates them (`mss.rs`).
//!
//! Whom ingress believes. A Geneve packet (UDP 6081 over IPv4, or over IPv6 without extension
//! headers) is ours only when its outer destination is this node's underlay address of that
//! family (`Config::node_addr` / `node_addr6`, the identity user space programs): anything
//! else is passed up untouched (`geneve_not_local`), since it is not addressed to this
//! datapath (another tunnel, or a packet being routed through). Ours and from a source that is
//! not in the load-balancer node map of that family (`HERALD_LBNODES` / `HERALD_LBNODES6`,
//! written by user space from the node list): dropped (`drop_geneve_unknown_node`). Passing it up would gain
//! nothing (Herald's kernels have no Geneve device: the stack would answer with ICMP port
//! unreachable, a reflection) and decapsulating it would let anyone inject packets with
//! forged inner sources and reverse-NAT entries. Ours, from an LB node, but with a DSR option
//! that names no configured service (VIP, port, inner protocol in the service map): dropped
//! (`drop_geneve_unknown_service`), so an entry can only ever turn replies into the address of
//! a service this cluster serves. Packets without the option (mid-flow, after the LB's first
//! packet) are decapsulated and create nothing. An unknown node identity (address 0) accepts
//! nothing: the node address is read at start, before any service is applied.
//!
//! Why two reverse-NAT maps. Entries are created from the DSR option, which the LB node adds
//! to TCP SYNs, to the first packet of a flow it has not seen and to every non-TCP packet: a
//! SYN flood to a VIP, relayed by honest LB nodes (or forged by a hostile one), creates one
//! entry per packet. In one LRU those would evict the entries of established flows, whose
//! replies would then leave with the backend's address. So ingress writes only the
//! not-yet-answered LRU (`HERALD_RNATNEW`; a TCP SYN may replace an entry, any other packet
//! only adds a missing one, an RST adds nothing), and the egress program moves an entry to
//! the established LRU (`HERALD_RNAT`) when this node's own stack sends a reply that is not a
//! SYN or RST: for TCP that happens only after the kernel accepted the handshake's final ACK
//! (SYN cookies included), which a flood of SYNs, or of ACKs with made-up tuples, never earns.
//! A flood therefore evicts only other half-open entries; established ones compete only with
//! established ones (the LRU still evicts the oldest of those past `MAX_REVNAT` concurrent
//! flows, as before). A plain hash that refuses inserts when full was rejected: it needs a
//! garbage collector for closed flows, and when full it fails new flows as well. Per-LB-node
//! LRUs were rejected: an honest LB node relays a client's flood too. For UDP "established"
//! means "the service answered", which a flood of requests to a service that answers each
//! one also earns: the guarantee is TCP's.
//!
//! Egress looks up the established map first (one lookup per reply of an established flow, as
//! before), except for a SYN-ACK: the kernel answers a SYN with a SYN-ACK only when no
//! connection holds the tuple, so the new entry wins and a stale established one (a reused
//! tuple, possibly towards another VIP) is removed. A forged SYN for an established tuple gets
//! a challenge ACK instead, which keeps the established entry.

use aya_ebpf::{
    bindings::{
        BPF_ANY, BPF_F_ADJ_ROOM_DECAP_L3_IPV4, BPF_F_ADJ_ROOM_DECAP_L3_IPV6, BPF_NOEXIST,
        TC_ACT_OK, TC_ACT_SHOT, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    },
    programs::TcContext,
};
use datapath_common::{
    Counter, ETH_P_IP, ETH_P_IPV6, FAMILY_V4, FlowKey, GENEVE_PORT, IPPROTO_TCP, IPPROTO_UDP,
    RevNatValue, ServiceKey, ServiceKey4,
};

use crate::{
    geneve::{self, Dsr},
    maps::{CONFIG, LB_NODES, LB_NODES6, REVNAT, REVNAT_NEW, SERVICES, SERVICES4, count},
    mss, nat,
    parse::{self, Headers, read},
};

const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// What the outer headers of a frame say about it.
enum Outer {
    /// Not Geneve over IP: none of our business.
    Other,
    /// Geneve not addressed to this node.
    NotLocal,
    /// Geneve to this node from a host that is not a known load-balancer node.
    UnknownNode,
    /// Geneve to this node from a load-balancer node: the Geneve header's offset.
    Ours(usize),
}

/// Classifies an IPv4 outer header (at offset 14).
#[inline(always)]
fn outer_v4(start: usize, end: usize) -> Outer {
    let Some(ip) = read::<20>(start, end, 14) else {
        return Outer::Other;
    };
    if ip[0] != 0x45 || ip[9] != IPPROTO_UDP || (u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff) != 0 {
        return Outer::Other;
    }
    let Some(udp) = read::<8>(start, end, 34) else {
        return Outer::Other;
    };
    if u16::from_be_bytes([udp[2], udp[3]]) != GENEVE_PORT {
        return Outer::Other;
    }
    let node = match CONFIG.get(0) {
        Some(c) => c.node_addr,
        None => [0; 4],
    };
    let daddr = [ip[16], ip[17], ip[18], ip[19]];
    if node == [0; 4] || daddr != node {
        return Outer::NotLocal;
    }
    let saddr = [ip[12], ip[13], ip[14], ip[15]];
    if LB_NODES.get_ptr(&saddr).is_none() {
        return Outer::UnknownNode;
    }
    Outer::Ours(42)
}

/// Classifies an IPv6 outer header (at offset 14). Only UDP directly after the fixed header:
/// Herald's LB nodes send no extension headers, and walking them is not worth the verifier's
/// trouble for traffic we do not send. The zero UDP checksum we send is accepted (see
/// `geneve.rs`); the checks below are RFC 6936 §5's safeguards.
#[inline(never)]
fn outer_v6(start: usize, end: usize) -> Outer {
    let Some(ip) = read::<40>(start, end, 14) else {
        return Outer::Other;
    };
    if ip[0] >> 4 != 6 || ip[6] != IPPROTO_UDP {
        return Outer::Other;
    }
    let Some(udp) = read::<8>(start, end, 54) else {
        return Outer::Other;
    };
    if u16::from_be_bytes([udp[2], udp[3]]) != GENEVE_PORT {
        return Outer::Other;
    }
    let Some(cfg) = CONFIG.get(0) else {
        return Outer::NotLocal;
    };
    let mut daddr = [0u8; 16];
    daddr.copy_from_slice(&ip[24..40]);
    if cfg.node_addr6 == [0; 16] || daddr != cfg.node_addr6 {
        return Outer::NotLocal;
    }
    let mut saddr = [0u8; 16];
    saddr.copy_from_slice(&ip[8..24]);
    if LB_NODES6.get_ptr(&saddr).is_none() {
        return Outer::UnknownNode;
    }
    Outer::Ours(62)
}

/// TC ingress: decapsulates Geneve frames from a load-balancer node to this node (UDP 6081)
/// and records reverse NAT for the services their DSR option names (see the module header).
#[inline(always)]
pub fn ingress(ctx: &TcContext) -> i32 {
    let start = ctx.data();
    let end = ctx.data_end();
    let Some(eth) = read::<14>(start, end, 0) else {
        return TC_ACT_OK;
    };
    let ether = u16::from_be_bytes([eth[12], eth[13]]);
    let outer = if ether == ETH_P_IP {
        outer_v4(start, end)
    } else if ether == ETH_P_IPV6 {
        outer_v6(start, end)
    } else {
        Outer::Other
    };
    let geneve_off = match outer {
        Outer::Other => return TC_ACT_OK,
        Outer::NotLocal => {
            count(Counter::GeneveNotLocal);
            return TC_ACT_OK;
        }
        Outer::UnknownNode => {
            count(Counter::DropGeneveUnknownNode);
            return TC_ACT_SHOT;
        }
        Outer::Ours(off) => off,
    };
    // A constant per outer family, so the verifier sees a known offset.
    let geneve_off = if geneve_off == 62 { 62 } else { 42 };
    let Some((inner, dsr)) = geneve::parse(start, end, geneve_off) else {
        return TC_ACT_OK;
    };
    let Ok(h) = parse::parse(start, end, inner) else {
        return TC_ACT_OK;
    };
    if let Some(d) = dsr {
        if !is_service(&d, &h) {
            count(Counter::DropGeneveUnknownService);
            return TC_ACT_SHOT;
        }
        record(&h, &d);
    }
    // Strip everything between our MAC header and the inner IP header.
    let remove = (h.l3 - 14) as i32;
    let (flag, ether) = if h.family == FAMILY_V4 {
        (BPF_F_ADJ_ROOM_DECAP_L3_IPV4, ETH_P_IP)
    } else {
        (BPF_F_ADJ_ROOM_DECAP_L3_IPV6, ETH_P_IPV6)
    };
    if ctx
        .adjust_room(-remove, BPF_ADJ_ROOM_MAC, u64::from(flag))
        .is_err()
    {
        count(Counter::DropInternal);
        return TC_ACT_SHOT;
    }
    if ctx.store(12, &ether.to_be_bytes(), 0).is_err() {
        count(Counter::DropInternal);
        return TC_ACT_SHOT;
    }
    count(Counter::Decap);
    TC_ACT_OK
}

/// Whether the DSR option names a configured service: (VIP, port, the inner packet's protocol)
/// in the service map, of the inner packet's family.
#[inline(never)]
fn is_service(d: &Dsr, h: &Headers) -> bool {
    if d.family != h.family {
        return false;
    }
    if d.family == FAMILY_V4 {
        let key = ServiceKey4 {
            addr: [d.vip[0], d.vip[1], d.vip[2], d.vip[3]],
            port: d.port,
            proto: h.proto,
            _pad: 0,
        };
        SERVICES4.get_ptr(&key).is_some()
    } else {
        let key = ServiceKey {
            addr: d.vip,
            port: d.port,
            proto: h.proto,
            family: d.family,
        };
        SERVICES.get_ptr(&key).is_some()
    }
}

/// The reply's key: backend → client, the way the egress program sees it.
#[inline(always)]
fn reply_key(h: &Headers) -> FlowKey {
    FlowKey {
        saddr: h.daddr,
        daddr: h.saddr,
        sport: u16::from_be_bytes(h.dport),
        dport: u16::from_be_bytes(h.sport),
        proto: h.proto,
        family: h.family,
        _pad: [0; 2],
    }
}

/// Records a not-yet-answered reverse-NAT entry: a TCP SYN may replace one (a new connection
/// on a reused tuple), any other packet only adds a missing one and never touches an
/// established entry; an RST adds nothing.
#[inline(never)]
fn record(h: &Headers, d: &Dsr) {
    let key = reply_key(h);
    let value = RevNatValue {
        vip: d.vip,
        port: d.port,
        family: d.family,
        _pad: 0,
    };
    if h.proto == IPPROTO_TCP {
        if h.tcp_flags & TCP_RST != 0 {
            return;
        }
        if h.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            let _ = REVNAT_NEW.insert(&key, &value, u64::from(BPF_ANY));
            return;
        }
    }
    if REVNAT.get_ptr(&key).is_none() {
        let _ = REVNAT_NEW.insert(&key, &value, u64::from(BPF_NOEXIST));
    }
}

/// TC egress: a reply whose 5-tuple has a reverse-NAT entry leaves with the service address;
/// the first established reply moves its entry to the established map (see the module header).
#[inline(always)]
pub fn egress(ctx: &TcContext) -> i32 {
    let start = ctx.data();
    let end = ctx.data_end();
    let Ok(h) = parse::parse(start, end, 0) else {
        return TC_ACT_OK;
    };
    let key = FlowKey {
        saddr: h.saddr,
        daddr: h.daddr,
        sport: u16::from_be_bytes(h.sport),
        dport: u16::from_be_bytes(h.dport),
        proto: h.proto,
        family: h.family,
        _pad: [0; 2],
    };
    let syn = h.proto == IPPROTO_TCP && h.tcp_flags & TCP_SYN != 0;
    let rn = if syn {
        syn_ack_entry(&key)
    } else {
        // SAFETY: copied out at once; LRU values are freed by RCU after the program returns.
        match unsafe { REVNAT.get(&key) }.copied() {
            Some(v) => Some(v),
            None => promote(&key, h.proto == IPPROTO_TCP && h.tcp_flags & TCP_RST != 0),
        }
    };
    let Some(rn) = rn else {
        return TC_ACT_OK;
    };
    if rn.family != h.family {
        return TC_ACT_OK;
    }
    if nat::snat_tc(ctx, &h, &rn.vip, rn.port).is_err() {
        count(Counter::DropInternal);
        return TC_ACT_SHOT;
    }
    count(Counter::RevNat);
    if syn {
        // The client's segments to the service get encapsulated by an LB node: announce an
        // MSS that fits the underlay after that (see `mss.rs`).
        let (mtu, outer6) = CONFIG
            .get(0)
            .map_or((0, false), |c| (c.mtu, c.node_addr6 != [0; 16]));
        if let Some(max) = mss::max_mss(mtu, h.family, outer6)
            && mss::clamp(ctx, &h, max).is_err()
        {
            count(Counter::DropInternal);
            return TC_ACT_SHOT;
        }
    }
    TC_ACT_OK
}

/// The entry for a SYN-ACK: the new one if there is one (the kernel answers a SYN with a
/// SYN-ACK only when no connection holds the tuple, so an established entry for it is stale
/// and goes), else the established one.
#[inline(never)]
fn syn_ack_entry(key: &FlowKey) -> Option<RevNatValue> {
    // SAFETY: copied out at once; LRU values are freed by RCU after the program returns.
    match unsafe { REVNAT_NEW.get(key) }.copied() {
        Some(v) => {
            let _ = REVNAT.remove(key);
            Some(v)
        }
        // SAFETY: as above.
        None => unsafe { REVNAT.get(key) }.copied(),
    }
}

/// The not-yet-answered entry for a reply that is not a SYN-ACK; unless the reply is an RST,
/// the flow is established and the entry moves to the established map.
#[inline(never)]
fn promote(key: &FlowKey, rst: bool) -> Option<RevNatValue> {
    // SAFETY: copied out at once; LRU values are freed by RCU after the program returns.
    let v = unsafe { REVNAT_NEW.get(key) }.copied()?;
    if !rst && REVNAT.insert(key, &v, u64::from(BPF_ANY)).is_ok() {
        let _ = REVNAT_NEW.remove(key);
        count(Counter::RevNatEstablished);
    }
    Some(v)
}
