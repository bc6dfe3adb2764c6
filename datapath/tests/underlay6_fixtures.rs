//! Fixture tables through `BPF_PROG_TEST_RUN` for the IPv6 underlay (issue 16): an LB node
//! with an IPv6 underlay address encapsulates IPv4 and IPv6 services' packets to backends on
//! IPv6-addressed nodes in outer IPv6 + UDP + Geneve with the DSR option of the service's
//! family, and a backend node with an IPv6 underlay address decapsulates such packets from
//! known LB nodes only. Needs root; skipped with a message otherwise. Expected bytes are built
//! here, independently of the programs.

use std::net::{IpAddr, Ipv6Addr};

use datapath::loader::{LoadConfig, Loader, programs};
use datapath::maglev::Seed;
use datapath_common::{
    BE_F_NODE_V6, BackendValue, Config, Counter, FAMILY_V4, FAMILY_V6, FlowKey, RevNatValue,
    ServiceKey, ServiceValue, hash,
};

mod frames;
use frames::*;

/// This (LB and backend) node's underlay address.
const NODE6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 1, 0, 0, 0, 0, 2);
/// The backend node's underlay address.
const BE_NODE6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0x11, 0, 0, 0, 0, 2);
/// The IPv4 service's backend (on `BE_NODE6`: IPv4 in IPv6).
const BE4: [u8; 4] = [10, 244, 1, 10];

/// The IPv6 service's backend (on `BE_NODE6`: IPv6 in IPv6).
fn be6() -> [u8; 16] {
    Ipv6Addr::new(0xfd00, 0x244, 1, 0, 0, 0, 0, 0x10).octets()
}

fn v4key(a: [u8; 4]) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(&a);
    k
}

/// A node with the IPv6 underlay address `NODE6` and underlay MTU `mtu`, serving VIP4:80 with
/// backend 0 (`BE4:8080`) and VIP6:443 with backend 1 (`be6():8443`), both on `BE_NODE6`.
fn node(mtu: u16) -> Loader {
    let mut l = Loader::load(&LoadConfig {
        maglev_m: M,
        pin_dir: None,
        ..LoadConfig::default()
    })
    .expect("load eBPF object");
    let seed = Seed::default();
    l.set_config(&Config {
        node_mac: NODE_MAC,
        mtu,
        maglev_m: M,
        jhash_v4: seed.jhash_v4,
        jhash_v6: seed.jhash_v6,
        node_addr6: NODE6.octets(),
        ..Config::default()
    })
    .expect("config");
    let services = [
        (v4key(BE4), 8080, FAMILY_V4, v4key(VIP4), 80),
        (be6(), 8443, FAMILY_V6, vip6(), 443),
    ];
    for (id, (addr, port, family, vip, vport)) in services.into_iter().enumerate() {
        let id = id as u32;
        l.put_backend(
            id,
            &BackendValue {
                addr,
                port,
                family,
                flags: BE_F_NODE_V6,
                next_hop_mac: ROUTER_MAC,
                node_addr6: BE_NODE6.octets(),
                ..BackendValue::default()
            },
        )
        .expect("backend");
        l.write_table(2 * id, &vec![id; M as usize]).expect("table");
        l.put_service(
            &ServiceKey {
                addr: vip,
                port: vport,
                proto: 6,
                family,
            },
            &ServiceValue {
                id,
                table: 2 * id,
                flags: 0,
                backends: 1,
            },
        )
        .expect("service");
    }
    l
}

/// Checks an encapsulated frame's outer Ethernet/IPv6/UDP/Geneve headers and DSR option
/// (`vip`, `port`) field by field; returns the inner frame.
fn check_outer6(out: &[u8], vip: &[u8], port: u16, hash: u32) -> Vec<u8> {
    assert_eq!(&out[0..6], &ROUTER_MAC, "outer dst MAC");
    assert_eq!(&out[6..12], &NODE_MAC, "outer src MAC");
    assert_eq!(&out[12..14], &[0x86, 0xdd], "outer EtherType IPv6");
    let ip = &out[14..54];
    assert_eq!(ip[0] >> 4, 6, "version");
    let label = u32::from_be_bytes([0, ip[1] & 0x0f, ip[2], ip[3]]);
    assert_eq!(label, hash & 0xf_ffff, "flow label from the flow hash");
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[4], ip[5]])),
        out.len() - 54,
        "payload length"
    );
    assert_eq!(ip[6], 17, "next header UDP");
    assert_eq!(ip[7], 64, "hop limit");
    assert_eq!(&ip[8..24], &NODE6.octets(), "source: this node");
    assert_eq!(
        &ip[24..40],
        &BE_NODE6.octets(),
        "destination: the backend's node"
    );
    let udp = &out[54..62];
    assert_eq!(
        u16::from_be_bytes([udp[0], udp[1]]),
        0xc000 | (hash as u16 & 0x3fff),
        "source port from the flow hash"
    );
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 6081, "Geneve port");
    assert_eq!(
        usize::from(u16::from_be_bytes([udp[4], udp[5]])),
        out.len() - 54
    );
    assert_eq!(
        &udp[6..8],
        &[0, 0],
        "zero UDP checksum (RFC 6935 tunnel mode)"
    );
    let g = &out[62..70];
    assert_eq!(g[0] >> 6, 0, "Geneve version 0");
    assert_eq!(u16::from_be_bytes([g[2], g[3]]), 0x6558, "inner Ethernet");
    let opt_len = usize::from(g[0] & 0x3f) * 4;
    let o = &out[70..70 + opt_len];
    assert_eq!(u16::from_be_bytes([o[0], o[1]]), 0x014b, "option class");
    assert_eq!(o[2], 0x81, "option type");
    let words = if vip.len() == 4 { 2 } else { 5 };
    assert_eq!(o[3] & 0x1f, words, "option length");
    assert_eq!(opt_len, 4 + 4 * usize::from(words));
    assert_eq!(&o[4..4 + vip.len()], vip, "option VIP");
    assert_eq!(
        u16::from_be_bytes([o[4 + vip.len()], o[5 + vip.len()]]),
        port,
        "option port"
    );
    assert_eq!(&o[6 + vip.len()..], &[0, 0], "option padding");
    out[70 + opt_len..].to_vec()
}

#[test]
fn an_ipv4_service_reaches_a_backend_on_an_ipv6_node_in_outer_ipv6() {
    if !root() {
        return;
    }
    let mut l = node(1600);
    let input = frame_v4(CLIENT4, VIP4, 6, 40000, 80, 0x02, b"", None);
    let r = l.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    let h = hash::packet_hash_v4(
        CLIENT4,
        40000u16.to_be_bytes(),
        80u16.to_be_bytes(),
        6,
        Seed::default().jhash_v4,
    );
    let inner = check_outer6(&r.data, &VIP4, 80, h);
    assert_eq!(
        inner,
        frame_v4(CLIENT4, BE4, 6, 40000, 8080, 0x02, b"", None),
        "inner frame after DNAT"
    );
    assert_eq!(counter(&l, Counter::Encap), 1);
    assert_eq!(counter(&l, Counter::DsrOption), 1);
}

#[test]
fn an_ipv6_service_reaches_a_backend_on_an_ipv6_node_with_the_five_word_option() {
    if !root() {
        return;
    }
    let mut l = node(1600);
    let input = frame_v6(client6(), vip6(), 41000, 443, 0x02, b"");
    let r = l.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    let h = hash::packet_hash_v6(
        client6(),
        41000u16.to_be_bytes(),
        443u16.to_be_bytes(),
        6,
        Seed::default().jhash_v6,
    );
    let inner = check_outer6(&r.data, &vip6(), 443, h);
    assert_eq!(inner, frame_v6(client6(), be6(), 41000, 8443, 0x02, b""));
}

#[test]
fn too_big_counts_the_outer_ipv6_header() {
    if !root() {
        return;
    }
    let mut l = node(1500);
    // 1438-byte frame: fits a 1500-byte underlay in outer IPv4 (36 + 12 bytes), not in outer
    // IPv6 (56 + 12): fragmentation-needed with the MTU that fits, 1500 − 56 − 12 − 14.
    let input = frame_v4(CLIENT4, VIP4, 6, 40002, 80, 0x02, &[7; 1384], None);
    assert_eq!(input.len(), 1438);
    let r = l.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX, "answered");
    assert_eq!(&r.data[12..14], &[0x08, 0x00]);
    assert_eq!(r.data[14 + 9], 1, "ICMP");
    let icmp = &r.data[34..42];
    assert_eq!((icmp[0], icmp[1]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1418, "next-hop MTU");
    assert_eq!(counter(&l, Counter::IcmpTooBig), 1);
    assert_eq!(counter(&l, Counter::Encap), 0);
}

/// A Geneve frame as an LB node with an IPv6 underlay address sends it, built here: outer
/// IPv6 `src` → `dst`, UDP 6081 with a zero checksum, the DSR option (VIP, port) around the
/// inner frame `inner`.
fn geneve6(src: Ipv6Addr, dst: Ipv6Addr, opt: (&[u8], u16), inner: &[u8]) -> Vec<u8> {
    let (vip, port) = opt;
    let opt_len = 4 + vip.len() + 4;
    let mut f = Vec::new();
    f.extend_from_slice(&NODE_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&[0x86, 0xdd]);
    let payload = 8 + 8 + opt_len + inner.len();
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload as u16).to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&0xc123u16.to_be_bytes());
    f.extend_from_slice(&6081u16.to_be_bytes());
    f.extend_from_slice(&(payload as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[(opt_len / 4) as u8, 0, 0x65, 0x58, 0, 0, 0, 0]);
    let words = if vip.len() == 4 { 2 } else { 5 };
    f.extend_from_slice(&[0x01, 0x4b, 0x81, words]);
    f.extend_from_slice(vip);
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(inner);
    f
}

/// A backend node with the IPv6 underlay address `BE_NODE6` that accepts Geneve from `NODE6`.
fn backend_node(mtu: u16) -> Loader {
    let mut l = node(mtu);
    let mut cfg = l.config().expect("config");
    cfg.node_addr6 = BE_NODE6.octets();
    l.set_config(&cfg).expect("config");
    l.set_lb_nodes(&[IpAddr::V6(NODE6)]).expect("LB nodes");
    assert_eq!(l.lb_nodes().expect("LB nodes"), [IpAddr::V6(NODE6)]);
    l
}

fn reply_key(saddr: [u8; 16], daddr: [u8; 16], sport: u16, dport: u16, family: u8) -> FlowKey {
    FlowKey {
        saddr,
        daddr,
        sport,
        dport,
        proto: 6,
        family,
        _pad: [0; 2],
    }
}

#[test]
fn geneve_in_outer_ipv6_from_a_known_lb_node_is_decapsulated_with_reverse_nat() {
    if !root() {
        return;
    }
    let mut l = backend_node(1600);
    // IPv4 in IPv6.
    let syn4 = frame_v4(CLIENT4, BE4, 6, 41000, 8080, 0x02, b"", None);
    let r = l
        .run_tc(
            programs::TC_INGRESS,
            &geneve6(NODE6, BE_NODE6, (&VIP4, 80), &syn4),
            1,
        )
        .expect("tc ingress");
    assert_eq!(r.verdict, TC_ACT_OK);
    assert_eq!(
        &r.data[12..14],
        &[0x08, 0x00],
        "EtherType of the inner IPv4"
    );
    assert_eq!(&r.data[14..], &syn4[14..], "outer headers stripped");
    let key4 = reply_key(v4key(BE4), v4key(CLIENT4), 8080, 41000, FAMILY_V4);
    let vip80 = RevNatValue {
        vip: v4key(VIP4),
        port: 80,
        family: FAMILY_V4,
        _pad: 0,
    };
    assert_eq!(l.revnat(&key4).expect("revnat"), (None, Some(vip80)));
    // IPv6 in IPv6.
    let syn6 = frame_v6(client6(), be6(), 41001, 8443, 0x02, b"");
    let r = l
        .run_tc(
            programs::TC_INGRESS,
            &geneve6(NODE6, BE_NODE6, (&vip6(), 443), &syn6),
            1,
        )
        .expect("tc ingress");
    assert_eq!(r.verdict, TC_ACT_OK);
    assert_eq!(
        &r.data[12..14],
        &[0x86, 0xdd],
        "EtherType of the inner IPv6"
    );
    assert_eq!(&r.data[14..], &syn6[14..], "outer headers stripped");
    let key6 = reply_key(be6(), client6(), 8443, 41001, FAMILY_V6);
    let vip443 = RevNatValue {
        vip: vip6(),
        port: 443,
        family: FAMILY_V6,
        _pad: 0,
    };
    assert_eq!(l.revnat(&key6).expect("revnat"), (None, Some(vip443)));
    assert_eq!(counter(&l, Counter::Decap), 2);
    // The replies leave from the service addresses.
    let reply = frame_v4(BE4, CLIENT4, 6, 8080, 41000, 0x10, b"", None);
    let r = l.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc egress");
    assert_eq!(
        r.data,
        frame_v4(VIP4, CLIENT4, 6, 80, 41000, 0x10, b"", None)
    );
    let reply = frame_v6(be6(), client6(), 8443, 41001, 0x10, b"");
    let r = l.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc egress");
    assert_eq!(r.data, frame_v6(vip6(), client6(), 443, 41001, 0x10, b""));
}

#[test]
fn geneve_in_outer_ipv6_from_an_unknown_host_is_dropped_and_creates_no_reverse_nat() {
    if !root() {
        return;
    }
    let mut l = backend_node(1600);
    let syn = frame_v4(CLIENT4, BE4, 6, 41002, 8080, 0x02, b"", None);
    let strangers = [
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9),
        BE_NODE6,
        Ipv6Addr::new(0xfd00, 0, 1, 0, 0, 0, 0, 3),
    ];
    for src in strangers {
        let r = l
            .run_tc(
                programs::TC_INGRESS,
                &geneve6(src, BE_NODE6, (&VIP4, 80), &syn),
                1,
            )
            .expect("tc ingress");
        assert_eq!(r.verdict, TC_ACT_SHOT, "Geneve from {src} is dropped");
    }
    assert_eq!(l.revnat_len().expect("len"), (0, 0), "no reverse-NAT entry");
    assert_eq!(counter(&l, Counter::DropGeneveUnknownNode), 3);
    assert_eq!(counter(&l, Counter::Decap), 0);
    // From a known LB node but to another address (or over IPv4, which this node has none
    // of): not ours, passed up untouched.
    let other = geneve6(
        NODE6,
        Ipv6Addr::new(0xfd00, 0, 0x11, 0, 0, 0, 0, 3),
        (&VIP4, 80),
        &syn,
    );
    let r = l
        .run_tc(programs::TC_INGRESS, &other, 1)
        .expect("tc ingress");
    assert_eq!((r.verdict, &r.data), (TC_ACT_OK, &other));
    assert_eq!(counter(&l, Counter::GeneveNotLocal), 1);
    assert_eq!(l.revnat_len().expect("len"), (0, 0));
}

#[test]
fn syn_ack_mss_is_lowered_for_an_outer_ipv6_header() {
    if !root() {
        return;
    }
    let mut l = backend_node(1500);
    let syn = frame_v4(CLIENT4, BE4, 6, 41003, 8080, 0x02, b"", None);
    let r = l
        .run_tc(
            programs::TC_INGRESS,
            &geneve6(NODE6, BE_NODE6, (&VIP4, 80), &syn),
            1,
        )
        .expect("tc ingress");
    assert_eq!(r.verdict, TC_ACT_OK);
    // 1500 − outer IPv6/UDP/Geneve 56 − DSR option 12 − inner Ethernet 14 − IPv4 20 − TCP 20.
    const MAX: u16 = 1378;
    let mss = |m: u16| {
        let b = m.to_be_bytes();
        [2, 4, b[0], b[1]]
    };
    let reply = with_tcp_options(
        &frame_v4(BE4, CLIENT4, 6, 8080, 41003, 0x12, b"", None),
        &mss(1460),
    );
    let r = l.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc egress");
    assert_eq!(r.verdict, TC_ACT_OK);
    let want = with_tcp_options(
        &frame_v4(VIP4, CLIENT4, 6, 80, 41003, 0x12, b"", None),
        &mss(MAX),
    );
    assert_eq!(r.data, want, "SYN-ACK leaves from VIP:80 with MSS {MAX}");
    assert_eq!(counter(&l, Counter::MssClamped), 1);
}

/// An independent decoder (scapy) reads what the XDP program sends for the IPv6 service over
/// the IPv6 underlay: outer IPv6 (UDP, hop limit 64, our addresses, payload length), UDP 6081
/// with a zero checksum, Geneve with the five-word DSR option, and the inner IPv6 packet to
/// the backend.
#[test]
fn scapy_decodes_geneve_in_outer_ipv6() {
    if !root() {
        return;
    }
    let mut l = node(1600);
    let input = frame_v6(client6(), vip6(), 41005, 443, 0x02, b"");
    let out = l.run_xdp(programs::XDP_LB, &input, 1).expect("run").data;
    let script = r#"
import sys, ipaddress
from scapy.layers.l2 import Ether
from scapy.layers.inet import UDP, TCP
from scapy.layers.inet6 import IPv6
from scapy.contrib.geneve import GENEVE
frame = Ether(bytes.fromhex(sys.argv[1]))
outer = frame[IPv6]
assert outer.nh == 17 and outer.hlim == 64, (outer.nh, outer.hlim)
assert outer.plen == len(bytes(outer.payload)), (outer.plen, len(bytes(outer.payload)))
u = frame[UDP]
assert u.dport == 6081 and u.chksum == 0, (u.dport, u.chksum)
g = frame[GENEVE]
assert g.proto == 0x6558, hex(g.proto)
raw = bytes(g.options[0])
cls = int.from_bytes(raw[0:2], "big"); typ = raw[2]; length = raw[3] & 0x1f
vip = ipaddress.IPv6Address(raw[4:20]); port = int.from_bytes(raw[20:22], "big")
inner = Ether(bytes(g.payload))
print(f"outer={outer.src}>{outer.dst} class={cls:#06x} type={typ:#04x} len={length} vip={vip} port={port} inner={inner[IPv6].dst}:{inner[TCP].dport}")
"#;
    let stdout = scapy_decode(script, &out);
    assert_eq!(
        stdout.trim_end(),
        "outer=fd00:0:1::2>fd00:0:11::2 class=0x014b type=0x81 len=5 vip=fd00:96::1 port=443 \
         inner=fd00:244:1::10:8443"
    );
}

/// An upgrade over maps pinned by the IPv4-only layout (config and backend values 16 bytes
/// shorter, without the IPv6 node addresses): those pins are recreated at load, with the new
/// value sizes, and reported, instead of being reused with values the programs would read past.
#[test]
fn pins_of_the_ipv4_only_layout_are_recreated_at_load() {
    if !root() {
        return;
    }
    let pins = PinDir::new("v4layout");
    datapath::loader::ensure_bpffs(&pins.0).expect("bpffs");
    let old = [("HERALD_CFG", "24", "1"), ("HERALD_BE", "32", "4096")];
    for (name, value, entries) in old {
        let path = pins.0.join(name);
        let path = path.to_string_lossy();
        let args = [
            "map", "create", &path, "type", "array", "key", "4", "value", value, "entries",
            entries, "name", name,
        ];
        let out = std::process::Command::new("bpftool")
            .args(args)
            .output()
            .expect("bpftool");
        assert!(out.status.success(), "bpftool {args:?}: {out:?}");
    }
    let l = Loader::load(&LoadConfig {
        maglev_m: M,
        pin_dir: Some(pins.0.clone()),
        ..LoadConfig::default()
    })
    .expect("load over the old pins");
    let mut recreated = l.recreated_pins().to_vec();
    recreated.sort();
    assert_eq!(recreated, ["HERALD_BE", "HERALD_CFG"]);
    for (name, size) in [
        ("HERALD_CFG", std::mem::size_of::<Config>()),
        ("HERALD_BE", std::mem::size_of::<BackendValue>()),
    ] {
        let info = aya::maps::MapInfo::from_pin(pins.0.join(name)).expect("pinned again");
        assert_eq!(info.value_size() as usize, size, "{name}");
    }
    assert_eq!(l.config().expect("config"), Config::default());
}
