//! Per-packet cost through `BPF_PROG_TEST_RUN`. Needs root.
//! `cargo run --release -p datapath --example xdp_cost -- [REPEAT]`.
//!
//! Caveat: without live-frames mode the kernel reruns the program on the same buffer, so after
//! the first encapsulation the frame is no longer a service packet. Hence three lines: the no-op
//! program and the parse-only path (non-service frame) with `REPEAT`, and the full encapsulation
//! path once per fresh run (`ENCAP_RUNS` single runs, median; includes timer overhead).

use datapath::loader::{LoadConfig, Loader, programs};
use datapath::maglev::Seed;
use datapath_common::{BackendValue, Config, FAMILY_V4, ServiceKey, ServiceValue, csum};

fn main() -> anyhow::Result<()> {
    let repeat: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let m = 16381;
    let seed = Seed::default();
    let mut l = Loader::load(&LoadConfig {
        maglev_m: m,
        pin_dir: None,
    })?;
    l.set_config(&Config {
        node_addr: [192, 168, 0, 10],
        node_mac: [2, 0, 0, 0, 0, 2],
        mtu: 1500,
        maglev_m: m,
        jhash_v4: seed.jhash_v4,
        jhash_v6: seed.jhash_v6,
    })?;
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[10, 244, 1, 10]);
    l.put_backend(
        0,
        &BackendValue {
            addr,
            node_addr: [192, 168, 1, 20],
            port: 8080,
            family: FAMILY_V4,
            flags: 0,
            next_hop_mac: [2, 0, 0, 0, 0, 3],
            _pad: [0; 2],
        },
    )?;
    l.write_table(0, &vec![0; m as usize])?;
    let mut vip = [0u8; 16];
    vip[..4].copy_from_slice(&[10, 96, 0, 1]);
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
    let frame = tcp_frame([172, 16, 0, 5], [10, 96, 0, 1], 40000, 80, 0x10);
    let other = tcp_frame([172, 16, 0, 5], [10, 96, 0, 2], 40000, 80, 0x10);
    for (name, prog, f) in [
        ("xdp_pass (no-op)", programs::XDP_PASS, &frame),
        ("xdp_lb, non-service frame", programs::XDP_LB, &other),
    ] {
        let r = l.run_xdp(prog, f, repeat)?;
        println!(
            "{name:28} verdict={} {} ns/packet (repeat {repeat})",
            r.verdict, r.nanos
        );
    }
    const ENCAP_RUNS: usize = 2001;
    let mut single = Vec::with_capacity(ENCAP_RUNS);
    let mut pass = Vec::with_capacity(ENCAP_RUNS);
    for _ in 0..ENCAP_RUNS {
        let r = l.run_xdp(programs::XDP_LB, &frame, 1)?;
        anyhow::ensure!(r.verdict == 3, "expected XDP_TX, got {}", r.verdict);
        single.push(r.nanos);
        pass.push(l.run_xdp(programs::XDP_PASS, &frame, 1)?.nanos);
    }
    single.sort_unstable();
    pass.sort_unstable();
    println!(
        "{:28} median {} ns, no-op median {} ns (single runs, {ENCAP_RUNS} each)",
        "xdp_lb, encap + XDP_TX",
        single[ENCAP_RUNS / 2],
        pass[ENCAP_RUNS / 2]
    );
    for (c, v) in l.counters()? {
        if v > 0 {
            println!("  {:18} {v}", c.name());
        }
    }
    Ok(())
}

fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
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
