//! The backend node's TC programs: ingress strips Geneve (recording a reverse-NAT entry from the
//! DSR option), egress rewrites replies' source to the service address so they go straight to
//! the client.

use aya_ebpf::{
    bindings::{
        BPF_F_ADJ_ROOM_DECAP_L3_IPV4, BPF_F_ADJ_ROOM_DECAP_L3_IPV6, TC_ACT_OK, TC_ACT_SHOT,
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    },
    programs::TcContext,
};
use datapath_common::{
    Counter, ETH_P_IP, ETH_P_IPV6, FAMILY_V4, FlowKey, GENEVE_PORT, IPPROTO_UDP, RevNatValue,
};

use crate::{
    geneve,
    maps::{REVNAT, count},
    nat,
    parse::{self, read},
};

/// TC ingress: decapsulates Geneve frames addressed to UDP 6081 and records reverse NAT.
#[inline(always)]
pub fn ingress(ctx: &TcContext) -> i32 {
    let start = ctx.data();
    let end = ctx.data_end();
    let Some(eth) = read::<14>(start, end, 0) else {
        return TC_ACT_OK;
    };
    if u16::from_be_bytes([eth[12], eth[13]]) != ETH_P_IP {
        return TC_ACT_OK;
    }
    let Some(ip) = read::<20>(start, end, 14) else {
        return TC_ACT_OK;
    };
    if ip[0] != 0x45 || ip[9] != IPPROTO_UDP || (u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff) != 0 {
        return TC_ACT_OK;
    }
    let Some(udp) = read::<8>(start, end, 34) else {
        return TC_ACT_OK;
    };
    if u16::from_be_bytes([udp[2], udp[3]]) != GENEVE_PORT {
        return TC_ACT_OK;
    }
    let Some((inner, dsr)) = geneve::parse(start, end, 42) else {
        return TC_ACT_OK;
    };
    let Ok(h) = parse::parse(start, end, inner) else {
        return TC_ACT_OK;
    };
    if let Some(d) = dsr {
        // The reply goes backend → client: key it the way the egress program will see it.
        let key = FlowKey {
            saddr: h.daddr,
            daddr: h.saddr,
            sport: u16::from_be_bytes(h.dport),
            dport: u16::from_be_bytes(h.sport),
            proto: h.proto,
            family: h.family,
            _pad: [0; 2],
        };
        let value = RevNatValue {
            vip: d.vip,
            port: d.port,
            family: d.family,
            _pad: 0,
        };
        let _ = REVNAT.insert(&key, &value, 0);
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

/// TC egress: a reply whose 5-tuple has a reverse-NAT entry leaves with the service address.
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
    // SAFETY: copied out at once; LRU values are freed by RCU after the program returns.
    let Some(rn) = (unsafe { REVNAT.get(&key) }).copied() else {
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
    TC_ACT_OK
}
