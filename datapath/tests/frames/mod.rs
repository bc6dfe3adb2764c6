//! Frame builders and constants the `BPF_PROG_TEST_RUN` fixture tables share
//! (`xdp_fixtures.rs`, `underlay6_fixtures.rs`): hand-built Ethernet/IP/TCP/UDP frames with
//! correct checksums, the fixtures' addresses and MACs, and counter reads.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::Ipv6Addr;

use datapath::loader::Loader;
use datapath_common::{Counter, csum};

pub(crate) const XDP_DROP: u32 = 1;
pub(crate) const XDP_PASS: u32 = 2;
pub(crate) const XDP_TX: u32 = 3;
pub(crate) const TC_ACT_OK: u32 = 0;
pub(crate) const TC_ACT_SHOT: u32 = 2;

pub(crate) const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub(crate) const NODE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub(crate) const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
pub(crate) const NODE_IP: [u8; 4] = [192, 168, 0, 10];
pub(crate) const BE_NODE_IP: [u8; 4] = [192, 168, 1, 20];
pub(crate) const VIP4: [u8; 4] = [10, 96, 0, 1];
pub(crate) const CLIENT4: [u8; 4] = [172, 16, 0, 5];
pub(crate) const M: u32 = 251;

pub(crate) fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc_geteuid() };
    if euid != 0 {
        eprintln!("skipping: BPF_PROG_TEST_RUN needs root");
    }
    euid == 0
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

pub(crate) fn v4key(addr: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&addr);
    a
}

/// Builds Ethernet(+VLAN)/IPv4/TCP-or-UDP with correct checksums.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per header field keeps fixtures readable"
)]
pub(crate) fn frame_v4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    payload: &[u8],
    vlan: Option<u16>,
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&NODE_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    if let Some(tci) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let l4_len = if proto == 6 { 20 } else { 8 } + payload.len();
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = csum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        l4.extend_from_slice(&1u32.to_be_bytes());
        l4.extend_from_slice(&0u32.to_be_bytes());
        l4.push(0x50);
        l4.push(tcp_flags);
        l4.extend_from_slice(&0xffffu16.to_be_bytes());
        l4.extend_from_slice(&[0, 0, 0, 0]);
    } else {
        l4.extend_from_slice(&(l4_len as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(payload);
    let csum_off = if proto == 6 { 16 } else { 6 };
    let c = l4_checksum_v4(&src, &dst, proto, &l4);
    l4[csum_off..csum_off + 2].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&l4);
    f
}

pub(crate) fn l4_checksum_v4(src: &[u8; 4], dst: &[u8; 4], proto: u8, l4: &[u8]) -> u16 {
    let mut sum = csum::sum_words(src, 0);
    sum = csum::sum_words(dst, sum);
    sum += u32::from(proto) + l4.len() as u32;
    let c = !csum::fold(csum::sum_words(l4, sum));
    if c == 0 { 0xffff } else { c }
}

pub(crate) fn l4_checksum_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4: &[u8]) -> u16 {
    let mut sum = csum::sum_words(src, 0);
    sum = csum::sum_words(dst, sum);
    sum += u32::from(proto) + l4.len() as u32;
    let c = !csum::fold(csum::sum_words(l4, sum));
    if c == 0 { 0xffff } else { c }
}

pub(crate) fn frame_v6(
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&NODE_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    let l4_len = 20 + payload.len();
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    ip[6] = 6;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src);
    ip[24..40].copy_from_slice(&dst);
    f.extend_from_slice(&ip);
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&1u32.to_be_bytes());
    l4.extend_from_slice(&0u32.to_be_bytes());
    l4.push(0x50);
    l4.push(tcp_flags);
    l4.extend_from_slice(&0xffffu16.to_be_bytes());
    l4.extend_from_slice(&[0, 0, 0, 0]);
    l4.extend_from_slice(payload);
    let c = l4_checksum_v6(&src, &dst, 6, &l4);
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&l4);
    f
}

pub(crate) fn vip6() -> [u8; 16] {
    Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 1).octets()
}

pub(crate) fn client6() -> [u8; 16] {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5).octets()
}

pub(crate) fn counter(l: &Loader, c: Counter) -> u64 {
    l.counters()
        .expect("counters")
        .into_iter()
        .find(|(k, _)| *k == c)
        .map(|(_, v)| v)
        .unwrap_or(0)
}

pub(crate) fn fix_v4(f: &mut [u8]) {
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let c = !csum::fold(csum::sum_words(&f[14..14 + ihl], 0));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let proto = f[23];
    let src: [u8; 4] = f[26..30].try_into().expect("4");
    let dst: [u8; 4] = f[30..34].try_into().expect("4");
    let l4 = 14 + ihl;
    let off = l4 + if proto == 6 { 16 } else { 6 };
    f[off..off + 2].copy_from_slice(&[0, 0]);
    let c = l4_checksum_v4(&src, &dst, proto, &f[l4..]);
    f[off..off + 2].copy_from_slice(&c.to_be_bytes());
}

/// `f` (an untagged IPv4 TCP frame from [`frame_v4`]) with TCP options `opts` (a multiple of 4
/// bytes) after its fixed header.
pub(crate) fn with_tcp_options(f: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut g = f[..54].to_vec();
    g[46] = ((5 + opts.len() / 4) as u8) << 4;
    g.extend_from_slice(opts);
    g.extend_from_slice(&f[54..]);
    fix_v4(&mut g);
    g
}

/// A pin directory under `/sys/fs/bpf` unique to this test process, removed on drop.
pub(crate) struct PinDir(pub(crate) std::path::PathBuf);

impl PinDir {
    pub(crate) fn new(tag: &str) -> Self {
        Self(std::path::PathBuf::from(format!(
            "/sys/fs/bpf/herald-test-{tag}-{}",
            std::process::id()
        )))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `script` (Python with scapy) with the frame as a hex argument; returns what it printed.
/// An independent decoder of what the programs wrote.
pub(crate) fn scapy_decode(script: &str, frame: &[u8]) -> String {
    let hexframe: String = frame.iter().map(|b| format!("{b:02x}")).collect();
    let res = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script, &hexframe])
        .output()
        .expect("run python3");
    assert!(
        res.status.success(),
        "scapy failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    String::from_utf8_lossy(&res.stdout).into_owned()
}
