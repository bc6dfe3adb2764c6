//! Fixture tables through `BPF_PROG_TEST_RUN`: input frame → expected verdict and output frame,
//! for the XDP load balancer and the backend node's TC programs. Needs root (CI runs as root);
//! skipped with a message otherwise. Frames are built by hand here and checked field by field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use datapath::loader::{LoadConfig, Loader, programs};
use datapath::maglev::{self, Backend, Proto, Seed};
use datapath_common::{
    BE_F_LOCAL, BackendValue, Config, Counter, FAMILY_V4, FAMILY_V6, FlowKey, MAP_SVC4_FILTER,
    MAX_REVNAT, MAX_REVNAT_NEW, RevNatValue, SVC4_FILTER_WORDS, ServiceKey, ServiceValue, csum,
    hash,
};

mod frames;
use frames::*;

struct Lab {
    loader: Loader,
    backends: Vec<(Backend, BackendValue)>,
    table: Vec<u32>,
}

/// Loads the object and programs one IPv4 TCP service (VIP4:80) with two remote backends, one
/// UDP service (VIP4:53) with a local backend, and an IPv6 TCP service with one remote backend.
fn lab(mtu: u16) -> Lab {
    let mut loader = Loader::load(&LoadConfig {
        maglev_m: M,
        pin_dir: None,
        ..LoadConfig::default()
    })
    .expect("load eBPF object");
    let seed = Seed::default();
    loader
        .set_config(&Config {
            node_addr: NODE_IP,
            node_mac: NODE_MAC,
            mtu,
            maglev_m: M,
            jhash_v4: seed.jhash_v4,
            jhash_v6: seed.jhash_v6,
            node_addr6: [0; 16],
        })
        .expect("config");
    let specs = [
        Backend::new("10.244.1.10:8080".parse().expect("addr"), Proto::Tcp),
        Backend::new("10.244.2.10:8080".parse().expect("addr"), Proto::Tcp),
    ];
    let mut backends = Vec::new();
    for (i, b) in specs.iter().enumerate() {
        let IpAddr::V4(ip) = b.addr.ip() else {
            unreachable!()
        };
        let v = BackendValue {
            addr: v4key(ip.octets()),
            node_addr: [
                BE_NODE_IP[0],
                BE_NODE_IP[1],
                BE_NODE_IP[2],
                BE_NODE_IP[3] + i as u8,
            ],
            port: b.addr.port(),
            family: FAMILY_V4,
            flags: 0,
            next_hop_mac: ROUTER_MAC,
            _pad: [0; 2],
            node_addr6: [0; 16],
        };
        loader.put_backend(i as u32, &v).expect("backend");
        backends.push((*b, v));
    }
    let table = maglev::build(M, &seed, &specs)
        .expect("maglev")
        .slots()
        .to_vec();
    loader.write_table(0, &table).expect("table");
    loader
        .put_service(
            &ServiceKey {
                addr: v4key(VIP4),
                port: 80,
                proto: 6,
                family: FAMILY_V4,
            },
            &ServiceValue {
                id: 0,
                table: 0,
                flags: 0,
                backends: 2,
            },
        )
        .expect("service");
    // Local UDP backend: DNAT and pass.
    loader
        .put_backend(
            10,
            &BackendValue {
                addr: v4key([10, 244, 0, 7]),
                node_addr: NODE_IP,
                port: 5353,
                family: FAMILY_V4,
                flags: BE_F_LOCAL,
                next_hop_mac: [0; 6],
                _pad: [0; 2],
                node_addr6: [0; 16],
            },
        )
        .expect("local backend");
    loader.write_table(2, &vec![10; M as usize]).expect("table");
    loader
        .put_service(
            &ServiceKey {
                addr: v4key(VIP4),
                port: 53,
                proto: 17,
                family: FAMILY_V4,
            },
            &ServiceValue {
                id: 1,
                table: 2,
                flags: 0,
                backends: 1,
            },
        )
        .expect("service");
    // IPv6 service with one remote backend.
    loader
        .put_backend(
            20,
            &BackendValue {
                addr: Ipv6Addr::new(0xfd00, 0, 0, 2, 0, 0, 0, 0x10).octets(),
                node_addr: BE_NODE_IP,
                port: 8443,
                family: FAMILY_V6,
                flags: 0,
                next_hop_mac: ROUTER_MAC,
                _pad: [0; 2],
                node_addr6: [0; 16],
            },
        )
        .expect("v6 backend");
    loader.write_table(4, &vec![20; M as usize]).expect("table");
    loader
        .put_service(
            &ServiceKey {
                addr: vip6(),
                port: 443,
                proto: 6,
                family: FAMILY_V6,
            },
            &ServiceValue {
                id: 2,
                table: 4,
                flags: 0,
                backends: 1,
            },
        )
        .expect("service");
    Lab {
        loader,
        backends,
        table,
    }
}

/// Checks an encapsulated frame: outer headers, DSR option, and returns the inner frame.
fn check_outer(out: &[u8], be: &BackendValue, opt: Option<(&[u8], u16)>, hash: u32) -> Vec<u8> {
    assert_eq!(&out[0..6], &ROUTER_MAC, "outer dst MAC");
    assert_eq!(&out[6..12], &NODE_MAC, "outer src MAC");
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    let ip = &out[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(ip[9], 17);
    assert_eq!(&ip[12..16], &NODE_IP);
    assert_eq!(&ip[16..20], &be.node_addr);
    let mut ipz: [u8; 20] = ip.try_into().expect("20");
    ipz[10] = 0;
    ipz[11] = 0;
    assert_eq!(
        csum::ipv4_header(&ipz).to_be_bytes(),
        [ip[10], ip[11]],
        "outer IP checksum"
    );
    assert_eq!(
        u16::from_be_bytes([ip[2], ip[3]]) as usize,
        out.len() - 14,
        "outer total length"
    );
    let udp = &out[34..42];
    assert_eq!(
        u16::from_be_bytes([udp[0], udp[1]]),
        0xc000 | (hash as u16 & 0x3fff),
        "source port from flow hash"
    );
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 6081);
    assert_eq!(
        u16::from_be_bytes([udp[4], udp[5]]) as usize,
        out.len() - 34
    );
    let g = &out[42..50];
    assert_eq!(u16::from_be_bytes([g[2], g[3]]), 0x6558);
    let opt_len = usize::from(g[0] & 0x3f) * 4;
    match opt {
        Some((vip, port)) => {
            let o = &out[50..50 + opt_len];
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
        }
        None => assert_eq!(opt_len, 0, "no option expected"),
    }
    out[50 + opt_len..].to_vec()
}

#[test]
fn ipv4_tcp_syn_is_encapsulated_with_dsr_option() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    let input = frame_v4(CLIENT4, VIP4, 6, 40000, 80, 0x02, b"", None);
    let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    let seed = Seed::default();
    let h = hash::packet_hash_v4(
        CLIENT4,
        40000u16.to_be_bytes(),
        80u16.to_be_bytes(),
        6,
        seed.jhash_v4,
    );
    let be_idx = l.table[(h % M) as usize] as usize;
    let be = l.backends[be_idx].1;
    let inner = check_outer(&r.data, &be, Some((&VIP4, 80)), h);
    // Inner frame: the original with destination rewritten to the backend, checksums valid.
    assert_eq!(inner.len(), input.len());
    let mut expect = input.clone();
    let IpAddr::V4(bip) = l.backends[be_idx].0.addr.ip() else {
        unreachable!()
    };
    let fixed = frame_v4(CLIENT4, bip.octets(), 6, 40000, 8080, 0x02, b"", None);
    expect.copy_from_slice(&fixed);
    assert_eq!(inner, expect, "inner frame after DNAT");
    assert_eq!(counter(&l.loader, Counter::Encap), 1);
    assert_eq!(counter(&l.loader, Counter::DsrOption), 1);
    assert_eq!(l.loader.service_counters(0).expect("svc").packets, 1);
}

#[test]
fn mid_flow_packet_of_unseen_flow_carries_option_but_seen_flow_does_not() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    // First packet this node sees is an ACK (the SYN went through another LB node).
    let ack = frame_v4(CLIENT4, VIP4, 6, 40001, 80, 0x10, b"hello", None);
    let r1 = l.loader.run_xdp(programs::XDP_LB, &ack, 1).expect("run");
    assert_eq!(r1.verdict, XDP_TX);
    let g0 = r1.data[42];
    assert_eq!(
        g0 & 0x3f,
        3,
        "first packet of an unseen flow has the DSR option"
    );
    let r2 = l.loader.run_xdp(programs::XDP_LB, &ack, 1).expect("run");
    assert_eq!(r2.verdict, XDP_TX);
    assert_eq!(r2.data[42] & 0x3f, 0, "later packets of a seen flow do not");
    assert_eq!(r2.data.len() + 12, r1.data.len());
}

#[test]
fn udp_to_local_backend_is_dnated_and_passed() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    let input = frame_v4(CLIENT4, VIP4, 17, 5000, 53, 0, b"query", None);
    let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_PASS);
    let expect = frame_v4(CLIENT4, [10, 244, 0, 7], 17, 5000, 5353, 0, b"query", None);
    assert_eq!(r.data, expect);
    assert_eq!(counter(&l.loader, Counter::Local), 1);
    // The local backend's reply leaves through the stack; egress rewrites it to VIP:53 from the
    // reverse-NAT entry the XDP program recorded.
    let reply = frame_v4([10, 244, 0, 7], CLIENT4, 17, 5353, 5000, 0, b"answer", None);
    let r = l
        .loader
        .run_tc(programs::TC_EGRESS, &reply, 1)
        .expect("tc egress");
    assert_eq!(r.verdict, TC_ACT_OK);
    assert_eq!(
        r.data,
        frame_v4(VIP4, CLIENT4, 17, 53, 5000, 0, b"answer", None),
        "local backend's reply leaves from VIP:53"
    );
    assert_eq!(counter(&l.loader, Counter::RevNat), 1);
}

#[test]
fn vlan_tagged_syn_keeps_its_tag_outside() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    let input = frame_v4(CLIENT4, VIP4, 6, 40002, 80, 0x02, b"", Some(0x0064));
    let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    assert_eq!(&r.data[12..18], &[0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
    // Inner frame still tagged, destination rewritten.
    let inner = &r.data[r.data.len() - input.len()..];
    assert_eq!(&inner[12..16], &[0x81, 0x00, 0x00, 0x64]);
    assert_eq!(&inner[18 + 16..18 + 18], &[10, 244]);
}

#[test]
fn ipv6_tcp_syn_gets_five_word_option() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    let input = frame_v6(client6(), vip6(), 41000, 443, 0x02, b"");
    let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    let seed = Seed::default();
    let h = hash::packet_hash_v6(
        client6(),
        41000u16.to_be_bytes(),
        443u16.to_be_bytes(),
        6,
        seed.jhash_v6,
    );
    let be = l
        .loader
        .backends()
        .expect("backends")
        .into_iter()
        .find(|(id, _)| *id == 20)
        .expect("be")
        .1;
    let inner = check_outer(&r.data, &be, Some((&vip6(), 443)), h);
    let expect = frame_v6(client6(), be.addr, 41000, 8443, 0x02, b"");
    assert_eq!(inner, expect);
}

#[test]
fn non_service_and_non_ip_traffic_is_untouched() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    let other_port = frame_v4(CLIENT4, VIP4, 6, 40000, 22, 0x02, b"", None);
    let other_ip = frame_v4(CLIENT4, [10, 96, 0, 2], 17, 1, 53, 0, b"x", None);
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    for input in [other_port, other_ip, arp] {
        let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
        assert_eq!(r.verdict, XDP_PASS);
        assert_eq!(r.data, input);
    }
    assert_eq!(counter(&l.loader, Counter::NotService), 3);
}

#[test]
fn truncated_and_malformed_frames_pass_untouched() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    let good = frame_v4(CLIENT4, VIP4, 6, 40000, 80, 0x02, b"", None);
    let mut bad_version = good.clone();
    bad_version[14] = 0x55;
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43;
    let mut fragment = good.clone();
    fragment[20] = 0x20; // more fragments
    let cases: Vec<Vec<u8>> = vec![
        good[..14].to_vec(),
        good[..30].to_vec(),
        good[..40].to_vec(), // IP header but TCP cut short
        bad_version,
        bad_ihl,
        fragment,
        vec![0u8; 14],
    ];
    for input in cases {
        let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
        assert_eq!(r.verdict, XDP_PASS, "input {input:02x?}");
        assert_eq!(r.data, input);
    }
    assert!(counter(&l.loader, Counter::Malformed) >= 4);
    assert_eq!(counter(&l.loader, Counter::PassUnsupported), 1);
}

#[test]
fn service_without_backends_drops() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    l.loader
        .put_service(
            &ServiceKey {
                addr: v4key(VIP4),
                port: 81,
                proto: 6,
                family: FAMILY_V4,
            },
            &ServiceValue {
                id: 3,
                table: 6,
                flags: 0,
                backends: 0,
            },
        )
        .expect("service");
    let input = frame_v4(CLIENT4, VIP4, 6, 40000, 81, 0x02, b"", None);
    let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_DROP);
    assert_eq!(counter(&l.loader, Counter::DropNoBackend), 1);
}

#[test]
fn oversized_ipv4_packet_gets_fragmentation_needed() {
    if !root() {
        return;
    }
    let mtu = 1500u16;
    let mut l = lab(mtu);
    // 1500-byte IP packet: fits the wire but not once encapsulated.
    let input = frame_v4(CLIENT4, VIP4, 6, 40003, 80, 0x10, &[0xab; 1460], None);
    let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    let out = &r.data;
    assert_eq!(out.len(), 14 + 20 + 8 + 28);
    assert_eq!(&out[0..6], &CLIENT_MAC);
    assert_eq!(&out[6..12], &NODE_MAC);
    let ip = &out[14..34];
    assert_eq!(ip[9], 1);
    assert_eq!(&ip[12..16], &VIP4, "from the service address");
    assert_eq!(&ip[16..20], &CLIENT4);
    let icmp = &out[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    // Outer IPv4+UDP+Geneve (36) + DSR option (12, first packet of the flow) + inner Ethernet (14).
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), mtu - 36 - 12 - 14);
    assert_eq!(
        csum::fold(csum::sum_words(icmp, 0)),
        0xffff,
        "ICMP checksum"
    );
    assert_eq!(&icmp[8..28], &input[14..34], "quotes the original header");
    assert_eq!(counter(&l.loader, Counter::IcmpTooBig), 1);
}

#[test]
fn oversized_ipv6_packet_gets_packet_too_big() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    let input = frame_v6(client6(), vip6(), 41001, 443, 0x10, &[0xcd; 1440]);
    let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    let out = &r.data;
    assert_eq!(out.len(), 14 + 40 + 8 + 48);
    let ip = &out[14..54];
    assert_eq!(ip[6], 58);
    assert_eq!(&ip[8..24], &vip6());
    assert_eq!(&ip[24..40], &client6());
    let icmp = &out[54..];
    assert_eq!(icmp[0], 2);
    assert_eq!(
        u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
        1500 - 36 - 24 - 14
    );
    let mut sum = csum::sum_words(&ip[8..40], 0);
    sum += 58 + icmp.len() as u32;
    assert_eq!(
        csum::fold(csum::sum_words(icmp, sum)),
        0xffff,
        "ICMPv6 checksum"
    );
}

#[test]
fn backend_tc_decaps_and_reverse_nats_the_reply() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    let input = frame_v4(CLIENT4, VIP4, 6, 40004, 80, 0x02, b"", None);
    let encap = l
        .loader
        .run_xdp(programs::XDP_LB, &input, 1)
        .expect("run")
        .data;
    // The backend node (the encapsulation's outer destination) accepts the LB node's Geneve.
    be_node(&mut l.loader, encap[30..34].try_into().expect("4"));
    let r = l
        .loader
        .run_tc(programs::TC_INGRESS, &encap, 1)
        .expect("tc ingress");
    assert_eq!(r.verdict, TC_ACT_OK);
    let inner_ip = &encap[encap.len() - input.len() + 14..];
    assert_eq!(
        &r.data[14..],
        inner_ip,
        "outer IP/UDP/Geneve and inner Ethernet stripped"
    );
    assert_eq!(&r.data[12..14], &[0x08, 0x00]);
    assert_eq!(counter(&l.loader, Counter::Decap), 1);
    // The backend answers from its own address; egress must rewrite it to VIP:80.
    let bip: [u8; 4] = inner_ip[16..20].try_into().expect("4");
    let reply = frame_v4(bip, CLIENT4, 6, 8080, 40004, 0x12, b"", None);
    let r = l
        .loader
        .run_tc(programs::TC_EGRESS, &reply, 1)
        .expect("tc egress");
    assert_eq!(r.verdict, TC_ACT_OK);
    let expect = frame_v4(VIP4, CLIENT4, 6, 80, 40004, 0x12, b"", None);
    assert_eq!(
        r.data, expect,
        "reply leaves from VIP:port with valid checksums"
    );
    assert_eq!(counter(&l.loader, Counter::RevNat), 1);
    // An unrelated reply is left alone.
    let other = frame_v4(bip, CLIENT4, 6, 8080, 40005, 0x12, b"", None);
    assert_eq!(
        l.loader
            .run_tc(programs::TC_EGRESS, &other, 1)
            .expect("tc")
            .data,
        other
    );
}

#[test]
fn maglev_table_swap_moves_new_flows() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    // Point the service's standby table (1) at backend 1 only and swap.
    l.loader
        .write_table(1, &vec![1; M as usize])
        .expect("table");
    l.loader
        .put_service(
            &ServiceKey {
                addr: v4key(VIP4),
                port: 80,
                proto: 6,
                family: FAMILY_V4,
            },
            &ServiceValue {
                id: 0,
                table: 1,
                flags: 0,
                backends: 2,
            },
        )
        .expect("swap");
    for sport in 42000..42010u16 {
        let input = frame_v4(CLIENT4, VIP4, 6, sport, 80, 0x02, b"", None);
        let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
        assert_eq!(r.verdict, XDP_TX);
        assert_eq!(
            &r.data[30..34],
            &l.backends[1].1.node_addr,
            "all new flows to backend 1"
        );
    }
}

/// Decodes the XDP program's output with scapy's Geneve layer (an independent decoder) and
/// checks the DSR option's class, type, length, VIP and port.
#[test]
fn scapy_decodes_geneve_dsr_option() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    let input = frame_v4(CLIENT4, VIP4, 6, 40010, 80, 0x02, b"", None);
    let out = l
        .loader
        .run_xdp(programs::XDP_LB, &input, 1)
        .expect("run")
        .data;
    let script = r#"
import sys
from scapy.layers.l2 import Ether
from scapy.layers.inet import IP, UDP, TCP
from scapy.contrib.geneve import GENEVE
frame = Ether(bytes.fromhex(sys.argv[1]))
g = frame[GENEVE]
assert frame[UDP].dport == 6081, frame[UDP].dport
assert g.proto == 0x6558, hex(g.proto)
assert g.optionlen == 3, g.optionlen
opt = g.options[0]
raw = bytes(opt)
cls = int.from_bytes(raw[0:2], "big"); typ = raw[2]; length = raw[3] & 0x1f
vip = ".".join(str(b) for b in raw[4:8]); port = int.from_bytes(raw[8:10], "big")
inner = Ether(bytes(g.payload))
print(f"class={cls:#06x} type={typ:#04x} len={length} vip={vip} port={port} inner_dst={inner[IP].dst}:{inner[TCP].dport}")
"#;
    let stdout = scapy_decode(script, &out);
    assert!(
        stdout.starts_with("class=0x014b type=0x81 len=2 vip=10.96.0.1 port=80 inner_dst=10.244."),
        "scapy saw: {stdout}"
    );
    assert!(stdout.trim_end().ends_with(":8080"), "scapy saw: {stdout}");
}

/// A bpffs directory for one test's pins, removed when the test ends (even on failure).
/// Maps pinned in bpffs survive the loader (an agent restart): a second loader reuses them, and
/// `Status::read_pinned` reads them.
#[test]
fn pinned_maps_survive_reload_and_status_reads_them() {
    if !root() {
        return;
    }
    let pins = PinDir::new("pinned");
    let dir = pins.0.clone();
    let key = ServiceKey {
        addr: v4key(VIP4),
        port: 8080,
        proto: 6,
        family: FAMILY_V4,
    };
    {
        let mut first = Loader::load(&LoadConfig {
            maglev_m: M,
            pin_dir: Some(dir.clone()),
            ..LoadConfig::default()
        })
        .expect("load pinned");
        first
            .put_service(
                &key,
                &ServiceValue {
                    id: 7,
                    table: 14,
                    flags: 0,
                    backends: 1,
                },
            )
            .expect("service");
    }
    let second = Loader::load(&LoadConfig {
        maglev_m: M,
        pin_dir: Some(dir.clone()),
        ..LoadConfig::default()
    })
    .expect("reload pinned");
    let services = second.services().expect("services");
    assert_eq!(services.len(), 1, "service survived the reload");
    assert_eq!(services[0].1.id, 7);
    let v = datapath::status::Status::read_pinned(&dir)
        .expect("status from the pins")
        .to_json();
    assert_eq!(v["services"][0]["vip"], "10.96.0.1");
    assert_eq!(v["services"][0]["port"], 8080);
    assert_eq!(v["services"][0]["id"], 7);
    assert!(v["counters"]["xdp_rx"].is_u64());
}

/// The IPv4 service prefilter (`HERALD_SVC4F`) is rebuilt from the service map at load: a
/// pinned service whose bit is missing (a pin left by a build without the filter) is served by
/// the reloaded object, and a deleted service's bit is gone after the next load.
#[test]
fn the_ipv4_service_prefilter_is_rebuilt_from_the_pinned_services_at_load() {
    if !root() {
        return;
    }
    let pins = PinDir::new("prefilter");
    let dir = pins.0.clone();
    let cfg = LoadConfig {
        maglev_m: M,
        pin_dir: Some(dir.clone()),
        ..LoadConfig::default()
    };
    let key = ServiceKey {
        addr: v4key(VIP4),
        port: 80,
        proto: 6,
        family: FAMILY_V4,
    };
    let filter_words = || -> Vec<u64> {
        let data =
            aya::maps::MapData::from_pin(dir.join(MAP_SVC4_FILTER)).expect("pinned prefilter");
        let a: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(aya::maps::Map::Array(data)).expect("array");
        a.iter().map(|w| w.expect("word")).collect()
    };
    let syn = frame_v4(CLIENT4, VIP4, 6, 40000, 80, 0x02, b"", None);
    {
        let mut first = Loader::load(&cfg).expect("load pinned");
        let seed = Seed::default();
        first
            .set_config(&Config {
                node_addr: NODE_IP,
                node_mac: NODE_MAC,
                mtu: 1500,
                maglev_m: M,
                jhash_v4: seed.jhash_v4,
                jhash_v6: seed.jhash_v6,
                node_addr6: [0; 16],
            })
            .expect("config");
        first
            .put_backend(
                0,
                &BackendValue {
                    addr: v4key([10, 244, 1, 10]),
                    node_addr: BE_NODE_IP,
                    port: 8080,
                    family: FAMILY_V4,
                    flags: 0,
                    next_hop_mac: ROUTER_MAC,
                    _pad: [0; 2],
                    node_addr6: [0; 16],
                },
            )
            .expect("backend");
        first.write_table(0, &vec![0; M as usize]).expect("table");
        first
            .put_service(
                &key,
                &ServiceValue {
                    id: 0,
                    table: 0,
                    flags: 0,
                    backends: 1,
                },
            )
            .expect("service");
        assert_eq!(
            first
                .run_xdp(programs::XDP_LB, &syn, 1)
                .expect("run")
                .verdict,
            XDP_TX
        );
        assert_eq!(
            filter_words().iter().map(|w| w.count_ones()).sum::<u32>(),
            1,
            "one service, one bit"
        );
        // Lose the bit, as a pin from a build without the filter would have it.
        let data = aya::maps::MapData::from_pin(dir.join(MAP_SVC4_FILTER)).expect("pin");
        let mut a: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(aya::maps::Map::Array(data)).expect("array");
        for i in 0..SVC4_FILTER_WORDS {
            a.set(i, 0, 0).expect("clear");
        }
        assert_eq!(
            first
                .run_xdp(programs::XDP_LB, &syn, 1)
                .expect("run")
                .verdict,
            XDP_PASS,
            "without its bit the service is skipped"
        );
    }
    let mut second = Loader::load(&cfg).expect("reload pinned");
    assert_eq!(
        second
            .run_xdp(programs::XDP_LB, &syn, 1)
            .expect("run")
            .verdict,
        XDP_TX,
        "the reload rebuilt the bit"
    );
    second.delete_service(&key).expect("delete");
    assert_eq!(
        filter_words().iter().map(|w| w.count_ones()).sum::<u32>(),
        1,
        "kept on delete"
    );
    drop(second);
    let _third = Loader::load(&cfg).expect("reload pinned");
    assert!(
        filter_words().iter().all(|w| *w == 0),
        "stale bit dropped at load"
    );
}

/// Turns the lab's loader into backend node `addr`'s: its identity is `addr`, and the lab's LB
/// node (`NODE_IP`) is the one node allowed to send it Geneve.
fn be_node(loader: &mut Loader, addr: [u8; 4]) {
    let mut cfg = loader.config().expect("config");
    cfg.node_addr = addr;
    loader.set_config(&cfg).expect("config");
    loader
        .set_lb_nodes(&[Ipv4Addr::from(NODE_IP).into()])
        .expect("LB nodes");
    assert_eq!(
        loader.lb_nodes().expect("LB nodes"),
        [IpAddr::from(Ipv4Addr::from(NODE_IP))]
    );
}

/// A Geneve frame as an LB node sends it, built here independently of the XDP program:
/// outer IPv4 `src` → `dst`, UDP 6081, and the DSR option naming `opt` (VIP, port) when given,
/// around the inner frame `inner`.
fn geneve(src: [u8; 4], dst: [u8; 4], opt: Option<([u8; 4], u16)>, inner: &[u8]) -> Vec<u8> {
    let opt_len = if opt.is_some() { 12 } else { 0 };
    let mut f = Vec::new();
    f.extend_from_slice(&NODE_MAC);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = 20 + 8 + 8 + opt_len + inner.len();
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = csum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&0xc123u16.to_be_bytes());
    f.extend_from_slice(&6081u16.to_be_bytes());
    f.extend_from_slice(&((total - 20) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[(opt_len / 4) as u8, 0, 0x65, 0x58, 0, 0, 0, 0]);
    if let Some((vip, port)) = opt {
        f.extend_from_slice(&[0x01, 0x4b, 0x81, 2]);
        f.extend_from_slice(&vip);
        f.extend_from_slice(&port.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(inner);
    f
}

/// The backend the fixtures' backend node serves VIP4:80 with.
const BE4: [u8; 4] = [10, 244, 1, 10];

/// The reverse-NAT key of the reply of `client:sport` → `BE4:8080` (TCP).
fn reply_key(client: [u8; 4], sport: u16) -> FlowKey {
    FlowKey {
        saddr: v4key(BE4),
        daddr: v4key(client),
        sport: 8080,
        dport: sport,
        proto: 6,
        family: FAMILY_V4,
        _pad: [0; 2],
    }
}

fn vip80() -> RevNatValue {
    RevNatValue {
        vip: v4key(VIP4),
        port: 80,
        family: FAMILY_V4,
        _pad: 0,
    }
}

/// The client's SYN to VIP4:80 as the LB node forwards it (DNATed to `BE4:8080`).
fn inner_syn(client: [u8; 4], sport: u16) -> Vec<u8> {
    frame_v4(client, BE4, 6, sport, 8080, 0x02, b"", None)
}

#[test]
fn geneve_from_an_unknown_host_is_dropped_and_creates_no_reverse_nat() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    be_node(&mut l.loader, BE_NODE_IP);
    let inner = inner_syn(CLIENT4, 41000);
    for src in [[203, 0, 113, 9], BE_NODE_IP, [192, 168, 0, 11]] {
        let input = geneve(src, BE_NODE_IP, Some((VIP4, 80)), &inner);
        let r = l
            .loader
            .run_tc(programs::TC_INGRESS, &input, 1)
            .expect("tc ingress");
        assert_eq!(r.verdict, TC_ACT_SHOT, "Geneve from {src:?} is dropped");
    }
    assert_eq!(
        l.loader.revnat(&reply_key(CLIENT4, 41000)).expect("revnat"),
        (None, None),
        "no reverse-NAT entry from an unknown sender"
    );
    assert_eq!(l.loader.revnat_len().expect("len"), (0, 0));
    assert_eq!(counter(&l.loader, Counter::DropGeneveUnknownNode), 3);
    assert_eq!(counter(&l.loader, Counter::Decap), 0);
    // Its reply is not rewritten either.
    let reply = frame_v4(BE4, CLIENT4, 6, 8080, 41000, 0x12, b"", None);
    let r = l.loader.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc");
    assert_eq!(r.data, reply);
}

#[test]
fn geneve_from_a_known_node_to_another_address_is_passed_up_undecapsulated() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    be_node(&mut l.loader, BE_NODE_IP);
    let inner = inner_syn(CLIENT4, 41001);
    for dst in [[192, 168, 1, 99], VIP4] {
        let input = geneve(NODE_IP, dst, Some((VIP4, 80)), &inner);
        let r = l
            .loader
            .run_tc(programs::TC_INGRESS, &input, 1)
            .expect("tc ingress");
        assert_eq!(r.verdict, TC_ACT_OK);
        assert_eq!(r.data, input, "to {dst:?}: left as it was");
    }
    assert_eq!(l.loader.revnat_len().expect("len"), (0, 0));
    assert_eq!(counter(&l.loader, Counter::GeneveNotLocal), 2);
    assert_eq!(counter(&l.loader, Counter::Decap), 0);
    // Without a node identity nothing is local.
    be_node(&mut l.loader, [0; 4]);
    let input = geneve(NODE_IP, BE_NODE_IP, Some((VIP4, 80)), &inner);
    let r = l
        .loader
        .run_tc(programs::TC_INGRESS, &input, 1)
        .expect("tc");
    assert_eq!((r.verdict, r.data), (TC_ACT_OK, input));
    assert_eq!(l.loader.revnat_len().expect("len"), (0, 0));
}

#[test]
fn geneve_naming_an_unconfigured_service_is_dropped_and_creates_no_reverse_nat() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    be_node(&mut l.loader, BE_NODE_IP);
    let tcp = inner_syn(CLIENT4, 41002);
    let udp = frame_v4(CLIENT4, BE4, 17, 41002, 8080, 0, b"q", None);
    // Another VIP, another port, and VIP4:53 which is a UDP service (the inner packet is TCP);
    // then a UDP packet naming the TCP service VIP4:80.
    let cases = [
        (([10, 96, 0, 99], 80), &tcp),
        ((VIP4, 81), &tcp),
        ((VIP4, 53), &tcp),
        ((VIP4, 80), &udp),
    ];
    for (opt, inner) in cases {
        let input = geneve(NODE_IP, BE_NODE_IP, Some(opt), inner);
        let r = l
            .loader
            .run_tc(programs::TC_INGRESS, &input, 1)
            .expect("tc ingress");
        assert_eq!(r.verdict, TC_ACT_SHOT, "option {opt:?} is refused");
    }
    assert_eq!(l.loader.revnat_len().expect("len"), (0, 0));
    assert_eq!(counter(&l.loader, Counter::DropGeneveUnknownService), 4);
    assert_eq!(counter(&l.loader, Counter::Decap), 0);
}

#[test]
fn a_known_nodes_geneve_is_decapsulated_and_its_entry_becomes_established_on_the_reply() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    be_node(&mut l.loader, BE_NODE_IP);
    let inner = inner_syn(CLIENT4, 41003);
    let input = geneve(NODE_IP, BE_NODE_IP, Some((VIP4, 80)), &inner);
    let r = l
        .loader
        .run_tc(programs::TC_INGRESS, &input, 1)
        .expect("tc ingress");
    assert_eq!(r.verdict, TC_ACT_OK);
    assert_eq!(&r.data[14..], &inner[14..], "outer headers stripped");
    let key = reply_key(CLIENT4, 41003);
    assert_eq!(
        l.loader.revnat(&key).expect("revnat"),
        (None, Some(vip80()))
    );
    // A mid-flow packet without the option is decapsulated too.
    let ack = frame_v4(CLIENT4, BE4, 6, 41003, 8080, 0x10, b"GET", None);
    let r = l
        .loader
        .run_tc(
            programs::TC_INGRESS,
            &geneve(NODE_IP, BE_NODE_IP, None, &ack),
            1,
        )
        .expect("tc ingress");
    assert_eq!((r.verdict, &r.data[14..]), (TC_ACT_OK, &ack[14..]));
    assert_eq!(counter(&l.loader, Counter::Decap), 2);
    // SYN-ACK: rewritten, the entry stays new; the first established reply moves it.
    for flags in [0x12, 0x10, 0x18] {
        let reply = frame_v4(BE4, CLIENT4, 6, 8080, 41003, flags, b"", None);
        let r = l.loader.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc");
        assert_eq!(
            r.data,
            frame_v4(VIP4, CLIENT4, 6, 80, 41003, flags, b"", None),
            "reply with flags {flags:#x} leaves from VIP:80"
        );
        let want = if flags == 0x12 {
            (None, Some(vip80()))
        } else {
            (Some(vip80()), None)
        };
        assert_eq!(l.loader.revnat(&key).expect("revnat"), want);
    }
    assert_eq!(counter(&l.loader, Counter::RevNatEstablished), 1);
    assert_eq!(counter(&l.loader, Counter::RevNat), 3);
}

/// A flood of SYNs through a validated LB node, more than both reverse-NAT maps hold, must not
/// evict the entry of an established flow that stays idle throughout.
#[test]
fn a_syn_flood_does_not_evict_an_established_flows_reverse_nat() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    be_node(&mut l.loader, BE_NODE_IP);
    let key = reply_key(CLIENT4, 41004);
    let syn = geneve(
        NODE_IP,
        BE_NODE_IP,
        Some((VIP4, 80)),
        &inner_syn(CLIENT4, 41004),
    );
    assert_eq!(
        l.loader
            .run_tc(programs::TC_INGRESS, &syn, 1)
            .expect("tc")
            .verdict,
        TC_ACT_OK
    );
    for flags in [0x12, 0x10] {
        let reply = frame_v4(BE4, CLIENT4, 6, 8080, 41004, flags, b"", None);
        l.loader.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc");
    }
    assert_eq!(
        l.loader.revnat(&key).expect("revnat"),
        (Some(vip80()), None)
    );

    // Valid SYNs (known node, local destination, configured service) from other clients.
    let n = MAX_REVNAT + MAX_REVNAT_NEW + 4096;
    let mut frame = geneve(NODE_IP, BE_NODE_IP, Some((VIP4, 80)), &inner_syn([0; 4], 0));
    let inner = frame.len() - 54;
    for i in 0..n {
        let client = [100, 64 + (i >> 16) as u8, (i >> 8) as u8, i as u8];
        frame[inner + 26..inner + 30].copy_from_slice(&client);
        frame[inner + 34..inner + 36].copy_from_slice(&(1024 + (i % 50000) as u16).to_be_bytes());
        let r = l
            .loader
            .run_tc(programs::TC_INGRESS, &frame, 1)
            .expect("tc");
        assert_eq!(r.verdict, TC_ACT_OK);
    }
    assert!(counter(&l.loader, Counter::Decap) > u64::from(n));
    let (established, new) = l.loader.revnat_len().expect("len");
    assert!(
        new > MAX_REVNAT_NEW as usize / 2,
        "the flood filled the new-flow map ({new})"
    );
    assert_eq!(established, 1, "the flood created no established entry");
    assert_eq!(
        l.loader.revnat(&key).expect("revnat").0,
        Some(vip80()),
        "the established flow's entry survived"
    );
    let reply = frame_v4(BE4, CLIENT4, 6, 8080, 41004, 0x18, b"data", None);
    let r = l.loader.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc");
    assert_eq!(
        r.data,
        frame_v4(VIP4, CLIENT4, 6, 80, 41004, 0x18, b"data", None),
        "its replies still leave from VIP:80"
    );
}

/// Recomputes an untagged IPv4 frame's total length, header checksum and TCP/UDP checksum
/// after bytes were spliced in.
/// `f` (an untagged IPv4 frame from [`frame_v4`]) with IP options `opts` (a multiple of 4
/// bytes) after its fixed header.
fn with_ip_options(f: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut g = f[..34].to_vec();
    g[14] = 0x40 | (5 + opts.len() / 4) as u8;
    g.extend_from_slice(opts);
    g.extend_from_slice(&f[34..]);
    fix_v4(&mut g);
    g
}

/// Router alert (RFC 2113) and a NOP/EOL tail: 8 bytes of IPv4 options.
const IP_OPTIONS: [u8; 8] = [0x94, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00];

#[test]
fn syn_ack_mss_is_lowered_to_what_fits_the_underlay_once_encapsulated() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    be_node(&mut l.loader, BE_NODE_IP);
    // 1500 − outer IPv4/UDP/Geneve 36 − DSR option 12 − inner Ethernet 14 − IPv4 20 − TCP 20.
    const MAX: u16 = 1398;
    // Options as Linux writes them (MSS first), and with the MSS after NOPs and timestamps.
    fn linux(mss: u16) -> Vec<u8> {
        let m = mss.to_be_bytes();
        vec![
            2, 4, m[0], m[1], 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ]
    }
    fn late(mss: u16) -> Vec<u8> {
        let m = mss.to_be_bytes();
        vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 2, 4, m[0], m[1]]
    }
    type Options = fn(u16) -> Vec<u8>;
    let cases: [(u16, Options, u16); 4] = [
        (41010, linux, 1460),
        (41011, late, 1460),
        (41012, linux, 1200),
        (41013, late, MAX),
    ];
    let mut clamped = 0;
    for (sport, opts, mss) in cases {
        let syn = inner_syn(CLIENT4, sport);
        let r = l
            .loader
            .run_tc(
                programs::TC_INGRESS,
                &geneve(NODE_IP, BE_NODE_IP, Some((VIP4, 80)), &syn),
                1,
            )
            .expect("tc ingress");
        assert_eq!(r.verdict, TC_ACT_OK);
        let reply = with_tcp_options(
            &frame_v4(BE4, CLIENT4, 6, 8080, sport, 0x12, b"", None),
            &opts(mss),
        );
        let r = l.loader.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc");
        assert_eq!(r.verdict, TC_ACT_OK);
        let want_mss = mss.min(MAX);
        // Independently built: the SYN-ACK from VIP:80 with the lowered MSS and all checksums
        // computed from scratch.
        let want = with_tcp_options(
            &frame_v4(VIP4, CLIENT4, 6, 80, sport, 0x12, b"", None),
            &opts(want_mss),
        );
        assert_eq!(
            r.data, want,
            "SYN-ACK with MSS {mss} leaves with MSS {want_mss}"
        );
        let tcp = &r.data[34..];
        let mut sum = csum::sum_words(&VIP4, 0);
        sum = csum::sum_words(&CLIENT4, sum);
        sum += 6 + tcp.len() as u32;
        assert_eq!(
            csum::fold(csum::sum_words(tcp, sum)),
            0xffff,
            "TCP checksum"
        );
        if want_mss != mss {
            clamped += 1;
        }
    }
    assert_eq!(counter(&l.loader, Counter::MssClamped), clamped);
    assert_eq!(clamped, 2);
}

#[test]
fn syn_ack_mss_is_left_alone_when_the_mtu_is_unknown() {
    if !root() {
        return;
    }
    let mut l = lab(0);
    be_node(&mut l.loader, BE_NODE_IP);
    let syn = inner_syn(CLIENT4, 41020);
    let g = geneve(NODE_IP, BE_NODE_IP, Some((VIP4, 80)), &syn);
    l.loader
        .run_tc(programs::TC_INGRESS, &g, 1)
        .expect("tc ingress");
    let opts = [2, 4, 0x05, 0xb4];
    let reply = with_tcp_options(
        &frame_v4(BE4, CLIENT4, 6, 8080, 41020, 0x12, b"", None),
        &opts,
    );
    let r = l.loader.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc");
    let want = with_tcp_options(
        &frame_v4(VIP4, CLIENT4, 6, 80, 41020, 0x12, b"", None),
        &opts,
    );
    assert_eq!(r.data, want);
    assert_eq!(counter(&l.loader, Counter::MssClamped), 0);
}

/// Adds a UDP service VIP4:443 with one remote backend to the lab.
fn remote_udp_service(l: &mut Lab) {
    l.loader
        .put_backend(
            30,
            &BackendValue {
                addr: v4key([10, 244, 3, 10]),
                node_addr: BE_NODE_IP,
                port: 4443,
                family: FAMILY_V4,
                flags: 0,
                next_hop_mac: ROUTER_MAC,
                _pad: [0; 2],
                node_addr6: [0; 16],
            },
        )
        .expect("backend");
    l.loader
        .write_table(6, &vec![30; M as usize])
        .expect("table");
    l.loader
        .put_service(
            &ServiceKey {
                addr: v4key(VIP4),
                port: 443,
                proto: 17,
                family: FAMILY_V4,
            },
            &ServiceValue {
                id: 3,
                table: 6,
                flags: 0,
                backends: 1,
            },
        )
        .expect("service");
}

/// Checks an ICMP fragmentation-needed reply to `input`: addresses, IP header checksum, ICMP
/// type/code/MTU/checksum, and that it quotes `quote` bytes of the original IP packet.
fn check_frag_needed(out: &[u8], input: &[u8], mtu: u16, quote: usize) {
    assert_eq!(out.len(), 14 + 20 + 8 + quote);
    assert_eq!(&out[0..6], &CLIENT_MAC);
    assert_eq!(&out[6..12], &NODE_MAC);
    let ip = &out[14..34];
    assert_eq!(ip[0], 0x45);
    assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, 20 + 8 + quote);
    assert_eq!(ip[9], 1);
    assert_eq!(&ip[12..16], &VIP4, "from the service address");
    assert_eq!(&ip[16..20], &CLIENT4);
    assert_eq!(csum::fold(csum::sum_words(ip, 0)), 0xffff, "IP checksum");
    let icmp = &out[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), mtu);
    assert_eq!(
        csum::fold(csum::sum_words(icmp, 0)),
        0xffff,
        "ICMP checksum"
    );
    assert_eq!(
        &icmp[8..],
        &input[14..14 + quote],
        "quotes the original packet"
    );
}

#[test]
fn oversized_udp_to_a_remote_backend_gets_fragmentation_needed() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    remote_udp_service(&mut l);
    // Fits: 1500 − 36 − 12 (option on every non-TCP packet) − 14 = 1438-byte IP packet.
    let fits = frame_v4(CLIENT4, VIP4, 17, 5001, 443, 0, &[0x11; 1438 - 28], None);
    let r = l.loader.run_xdp(programs::XDP_LB, &fits, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    assert_eq!(r.data.len(), 1500 + 14);
    let big = frame_v4(CLIENT4, VIP4, 17, 5001, 443, 0, &[0x11; 1439 - 28], None);
    let r = l.loader.run_xdp(programs::XDP_LB, &big, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    check_frag_needed(&r.data, &big, 1438, 28);
    assert_eq!(counter(&l.loader, Counter::IcmpTooBig), 1);
}

#[test]
fn oversized_packet_with_ip_options_is_answered_quoting_the_whole_header() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    remote_udp_service(&mut l);
    let tcp = with_ip_options(
        &frame_v4(CLIENT4, VIP4, 6, 40010, 80, 0x10, &[0xab; 1460], None),
        &IP_OPTIONS,
    );
    let udp = with_ip_options(
        &frame_v4(CLIENT4, VIP4, 17, 5002, 443, 0, &[0x22; 1440], None),
        &IP_OPTIONS,
    );
    for input in [tcp, udp] {
        let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
        assert_eq!(r.verdict, XDP_TX);
        // The 28-byte header and 40 bytes of data: the longest header plus 64 bits fit.
        check_frag_needed(&r.data, &input, 1500 - 36 - 12 - 14, 68);
    }
    assert_eq!(counter(&l.loader, Counter::IcmpTooBig), 2);
}

#[test]
fn packets_with_ip_options_are_balanced() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    // Local backend: DNAT with both checksums right, passed up.
    let input = with_ip_options(
        &frame_v4(CLIENT4, VIP4, 17, 5003, 53, 0, b"query", None),
        &IP_OPTIONS,
    );
    let r = l.loader.run_xdp(programs::XDP_LB, &input, 1).expect("run");
    assert_eq!(r.verdict, XDP_PASS);
    let expect = with_ip_options(
        &frame_v4(CLIENT4, [10, 244, 0, 7], 17, 5003, 5353, 0, b"query", None),
        &IP_OPTIONS,
    );
    assert_eq!(r.data, expect);
    // Remote backend: encapsulated, the inner packet keeps its options.
    let syn = with_ip_options(
        &frame_v4(CLIENT4, VIP4, 6, 40011, 80, 0x02, b"", None),
        &IP_OPTIONS,
    );
    let r = l.loader.run_xdp(programs::XDP_LB, &syn, 1).expect("run");
    assert_eq!(r.verdict, XDP_TX);
    let hash = hash::packet_hash_v4(
        CLIENT4,
        40011u16.to_be_bytes(),
        80u16.to_be_bytes(),
        6,
        Seed::default().jhash_v4,
    );
    let (_, be) = l.backends[l.table[(hash % M) as usize] as usize];
    let inner = check_outer(&r.data, &be, Some((&VIP4, 80)), hash);
    let IpAddr::V4(be_ip) = l.backends[l.table[(hash % M) as usize] as usize]
        .0
        .addr
        .ip()
    else {
        unreachable!()
    };
    let want = with_ip_options(
        &frame_v4(CLIENT4, be_ip.octets(), 6, 40011, be.port, 0x02, b"", None),
        &IP_OPTIONS,
    );
    assert_eq!(inner, want);
    assert_eq!(counter(&l.loader, Counter::Malformed), 0);
}

/// `f` (an IPv6 TCP frame from [`frame_v6`]) with TCP options `opts` (a multiple of 4 bytes)
/// after its fixed header, payload length and TCP checksum recomputed.
fn with_tcp_options_v6(f: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut g = f[..74].to_vec();
    g[66] = ((5 + opts.len() / 4) as u8) << 4;
    g.extend_from_slice(opts);
    g.extend_from_slice(&f[74..]);
    let plen = (g.len() - 54) as u16;
    g[18..20].copy_from_slice(&plen.to_be_bytes());
    g[70..72].copy_from_slice(&[0, 0]);
    let src: [u8; 16] = g[22..38].try_into().expect("16");
    let dst: [u8; 16] = g[38..54].try_into().expect("16");
    let c = l4_checksum_v6(&src, &dst, 6, &g[54..]);
    g[70..72].copy_from_slice(&c.to_be_bytes());
    g
}

#[test]
fn ipv6_syn_ack_mss_is_lowered_too() {
    if !root() {
        return;
    }
    let mut l = lab(1500);
    // A local IPv6 backend: the XDP program records the reverse-NAT entry its SYN-ACK needs.
    let be6 = Ipv6Addr::new(0xfd00, 0, 0, 9, 0, 0, 0, 0x10).octets();
    l.loader
        .put_backend(
            40,
            &BackendValue {
                addr: be6,
                node_addr: NODE_IP,
                port: 8443,
                family: FAMILY_V6,
                flags: BE_F_LOCAL,
                next_hop_mac: [0; 6],
                _pad: [0; 2],
                node_addr6: [0; 16],
            },
        )
        .expect("backend");
    l.loader
        .write_table(8, &vec![40; M as usize])
        .expect("table");
    l.loader
        .put_service(
            &ServiceKey {
                addr: vip6(),
                port: 8443,
                proto: 6,
                family: FAMILY_V6,
            },
            &ServiceValue {
                id: 4,
                table: 8,
                flags: 0,
                backends: 1,
            },
        )
        .expect("service");
    let syn = frame_v6(client6(), vip6(), 42000, 8443, 0x02, b"");
    let r = l.loader.run_xdp(programs::XDP_LB, &syn, 1).expect("run");
    assert_eq!(r.verdict, XDP_PASS);
    // 1500 − 36 − DSR option 24 − 14 − IPv6 40 − TCP 20.
    const MAX: u16 = 1366;
    let opts = |mss: u16| {
        let m = mss.to_be_bytes();
        [2, 4, m[0], m[1], 1, 1, 4, 2]
    };
    let reply = with_tcp_options_v6(
        &frame_v6(be6, client6(), 8443, 42000, 0x12, b""),
        &opts(1440),
    );
    let r = l.loader.run_tc(programs::TC_EGRESS, &reply, 1).expect("tc");
    assert_eq!(r.verdict, TC_ACT_OK);
    let want = with_tcp_options_v6(
        &frame_v6(vip6(), client6(), 8443, 42000, 0x12, b""),
        &opts(MAX),
    );
    assert_eq!(r.data, want, "SYN-ACK from the VIP with MSS {MAX}");
    assert_eq!(counter(&l.loader, Counter::MssClamped), 1);
}
