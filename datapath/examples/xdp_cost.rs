//! Per-packet cost through `BPF_PROG_TEST_RUN` with a repeat count. Needs root.
//! `cargo run --release -p datapath --example xdp_cost -- [REPEAT] [ROUNDS]`.
//!
//! Non-live `BPF_PROG_TEST_RUN` reruns the program on the same buffer without resetting it, so
//! the encapsulating path is timed with `herald_xdp_lb_bench`, which runs the real load balancer
//! and then undoes the `bpf_xdp_adjust_head` of the encapsulation, against a backend whose
//! address and port equal the service's (the DNAT rewrites bytes to their own values). Every
//! repetition then takes the full path: parse, service lookup, flow hash, flow LRU, backend
//! lookup, DNAT checksum arithmetic, Geneve encapsulation, `XDP_TX`. The example checks that it
//! did: the output frame equals the input and the `encap` counter grew by exactly the repeat
//! count. Each line is the median (and minimum) over ROUNDS runs of REPEAT repetitions.

use datapath::loader::{LoadConfig, Loader, programs};
use datapath::maglev::Seed;
use datapath_common::{BackendValue, Config, Counter, FAMILY_V4, ServiceKey, ServiceValue, csum};

const VIP: [u8; 4] = [10, 96, 0, 1];
const XDP_TX: u32 = 3;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let repeat: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
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
    let mut vip = [0u8; 16];
    vip[..4].copy_from_slice(&VIP);
    // The backend "is" the service address and port: DNAT is then idempotent (see above).
    l.put_backend(
        0,
        &BackendValue {
            addr: vip,
            node_addr: [192, 168, 1, 20],
            port: 80,
            family: FAMILY_V4,
            flags: 0,
            next_hop_mac: [2, 0, 0, 0, 0, 3],
            _pad: [0; 2],
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
    let ack = tcp_frame([172, 16, 0, 5], VIP, 40000, 80, 0x10);
    let syn = tcp_frame([172, 16, 0, 5], VIP, 40001, 80, 0x02);
    let other = tcp_frame([172, 16, 0, 5], [10, 96, 0, 2], 40000, 80, 0x10);

    println!("repeat {repeat}, {rounds} rounds; ns/packet as the kernel measured it");
    println!("{:52} {:>7} {:>7}", "path", "median", "min");
    let cases: [(&str, &str, &Vec<u8>, bool); 5] = [
        ("no-op XDP_PASS", programs::XDP_PASS, &ack, false),
        ("plain XDP_TX bounce", programs::XDP_TX, &ack, false),
        ("xdp_lb, non-service frame", programs::XDP_LB, &other, false),
        (
            "xdp_lb, known flow: full path + encap, XDP_TX",
            programs::XDP_LB_BENCH,
            &ack,
            true,
        ),
        (
            "xdp_lb, TCP SYN: full path + encap + DSR option",
            programs::XDP_LB_BENCH,
            &syn,
            true,
        ),
    ];
    for (name, prog, frame, encap) in cases {
        let mut ns = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let before = encap_count(&l)?;
            let r = l.run_xdp(prog, frame, repeat)?;
            if encap {
                anyhow::ensure!(r.verdict == XDP_TX, "{name}: verdict {}", r.verdict);
                anyhow::ensure!(&r.data == frame, "{name}: frame not restored");
                let done = encap_count(&l)? - before;
                anyhow::ensure!(
                    done == u64::from(repeat),
                    "{name}: {done} encapsulations for {repeat} repetitions"
                );
            }
            ns.push(r.nanos);
        }
        ns.sort_unstable();
        println!("{name:52} {:>7} {:>7}", ns[rounds / 2], ns[0]);
    }
    Ok(())
}

fn encap_count(l: &Loader) -> anyhow::Result<u64> {
    Ok(l.counters()?
        .into_iter()
        .find(|(c, _)| *c == Counter::Encap)
        .map_or(0, |(_, v)| v))
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
