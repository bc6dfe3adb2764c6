//! Per-packet cost through `BPF_PROG_TEST_RUN` with a repeat count. Needs root.
//! `cargo run --release -p datapath --features bench --example xdp_cost -- [REPEAT] [ROUNDS]`.
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

mod bench_support;
use bench_support::{BenchNode, VIP, encap_count, program_self_service, tcp_frame};

const BENCH_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const XDP_TX: u32 = 3;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let repeat: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let m = 16381;
    let mut l = Loader::load(&LoadConfig {
        maglev_m: m,
        pin_dir: None,
        ..LoadConfig::default()
    })?;
    let node = BenchNode {
        addr: [192, 168, 0, 10],
        mac: BENCH_MAC,
        backend_node: [192, 168, 1, 20],
        next_hop_mac: [2, 0, 0, 0, 0, 3],
    };
    program_self_service(&mut l, &node, m)?;
    let frame = |dst, sport, flags| {
        tcp_frame(
            BENCH_MAC,
            CLIENT_MAC,
            [172, 16, 0, 5],
            dst,
            sport,
            80,
            flags,
        )
    };
    let ack = frame(VIP, 40000, 0x10);
    let syn = frame(VIP, 40001, 0x02);
    let other = frame([10, 96, 0, 2], 40000, 0x10);

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
