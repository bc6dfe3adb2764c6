//! What the datapath benchmarks share: the one-service setup both of them time, a TCP frame
//! builder, and the `encap` counter that proves the load balancer took the full path.
//!
//! Benchmarks rerun a program on the same bytes (`BPF_PROG_TEST_RUN` repeats, live-frames page
//! recycling), so the service's only backend is the service's own address and port: the DNAT then
//! rewrites bytes to their own values and every repetition is still a service frame.

use datapath::loader::Loader;
use datapath::maglev::Seed;
use datapath_common::{BackendValue, Config, Counter, FAMILY_V4, ServiceKey, ServiceValue, csum};

/// The benchmarked service address (TCP port 80).
pub(crate) const VIP: [u8; 4] = [10, 96, 0, 1];

/// The node running the load balancer, and where its encapsulated frames go.
pub(crate) struct BenchNode {
    pub(crate) addr: [u8; 4],
    pub(crate) mac: [u8; 6],
    /// Underlay address of the backend's node (the Geneve destination).
    pub(crate) backend_node: [u8; 4],
    pub(crate) next_hop_mac: [u8; 6],
}

/// Programs `l` with the node config and `VIP:80/tcp` whose single backend is `VIP:80` on
/// `node.backend_node`, with a Maglev table of size `m`.
pub(crate) fn program_self_service(l: &mut Loader, node: &BenchNode, m: u32) -> anyhow::Result<()> {
    let seed = Seed::default();
    l.set_config(&Config {
        node_addr: node.addr,
        node_mac: node.mac,
        mtu: 1500,
        maglev_m: m,
        jhash_v4: seed.jhash_v4,
        jhash_v6: seed.jhash_v6,
        node_addr6: [0; 16],
    })?;
    let mut vip = [0u8; 16];
    vip[..4].copy_from_slice(&VIP);
    l.put_backend(
        0,
        &BackendValue {
            addr: vip,
            node_addr: node.backend_node,
            port: 80,
            family: FAMILY_V4,
            flags: 0,
            next_hop_mac: node.next_hop_mac,
            _pad: [0; 2],
            node_addr6: [0; 16],
        },
    )?;
    l.write_table(0, &vec![0; m as usize])?;
    l.put_service(
        &ServiceKey {
            addr: vip,
            port: 80,
            proto: 6,
            family: FAMILY_V4,
        },
        &ServiceValue {
            id: 0,
            table: 0,
            flags: 0,
            backends: 1,
        },
    )?;
    Ok(())
}

/// Frames the load balancer has encapsulated so far.
pub(crate) fn encap_count(l: &Loader) -> anyhow::Result<u64> {
    Ok(l.counters()?
        .into_iter()
        .find(|(c, _)| *c == Counter::Encap)
        .map_or(0, |(_, v)| v))
}

/// Ethernet + IPv4 (valid header checksum) + a 20-byte TCP header with `flags`, no payload.
pub(crate) fn tcp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = csum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = flags;
    f.extend_from_slice(&tcp);
    f
}
