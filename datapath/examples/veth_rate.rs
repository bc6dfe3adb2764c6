//! veth packet rate: encapsulating load balancer + XDP_TX against a plain XDP_TX bounce. Root.
//! Run through `datapath/benches/veth_rate.sh` (or
//! `cargo run --release -p datapath --features bench --example veth_rate -- [FRAMES] [ROUNDS]`).
//!
//! Two namespaces joined by one veth pair, `gen:eth0` ⇄ `dut:eth0`, both with native XDP:
//! - the generator is `BPF_PROG_RUN` in live-frames mode on `gen:eth0` (an XDP program that
//!   returns `XDP_TX`, so each copy of the frame is transmitted to the DUT from kernel context);
//! - the DUT runs either `herald_xdp_tx` (bounce) or `herald_xdp_lb` (service lookup, Maglev,
//!   flow LRU, DNAT, Geneve + DSR encapsulation, `XDP_TX`) on `dut:eth0`;
//! - `gen:eth0` runs `herald_xdp_drop`, the sink for the frames coming back.
//!
//! The rate is frames that came back to `gen:eth0` (its veth `xdp_packets` counter) divided by
//! the generator's wall time. Generator, DUT and sink share the machine's CPUs, so both numbers
//! include the generator's cost; the ratio is what the ≥ 85 % target is about.
//!
//! Live-frames mode recycles pages without restoring their contents, so the service's backend is
//! given the service's own address and port (DNAT rewrites bytes to their own values) and every
//! recycled frame is still a service frame. The DUT's `encap` counter is checked against the
//! returned frames.

use std::time::{Duration, Instant};

use datapath::loader::{LoadConfig, Loader, programs};
use datapath::neighbour;
use herald_tests::{Netns, TestLab, VethPair, in_netns};

mod bench_support;
use bench_support::{BenchNode, VIP, encap_count, program_self_service, tcp_frame};

const M: u32 = 1021;

/// A veth counter from `ethtool -S` (summed over queues), e.g. `xdp_packets`.
fn veth_stat(ns: &Netns, dev: &str, name: &str) -> anyhow::Result<u64> {
    let out = ns.exec("ethtool", &["-S", dev])?;
    let mut sum = 0;
    for line in out.lines() {
        let Some((k, v)) = line.trim().split_once(':') else {
            continue;
        };
        if k.starts_with("rx_queue_") && k.ends_with(&format!("_{name}")) {
            sum += v.trim().parse::<u64>()?;
        }
    }
    Ok(sum)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let frames: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let lab = TestLab::new("veth_rate")?;
    let gen_ns = lab.netns("gen")?;
    let dut = lab.netns("dut")?;
    // No IPv6 router/neighbour chatter mixed into the counted frames.
    for ns in [&gen_ns, &dut] {
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
    }
    let _link = VethPair::create(&gen_ns, "eth0", &dut, "eth0")?;
    gen_ns.addr_add("eth0", "192.168.77.1/24")?;
    dut.addr_add("eth0", "192.168.77.2/24")?;
    let gen_mac = in_netns(&gen_ns, || neighbour::interface_mac("eth0"))?;
    let dut_mac = in_netns(&dut, || neighbour::interface_mac("eth0"))?;
    let gen_ifindex: u32 = in_netns(&gen_ns, || {
        nix::net::if_::if_nametoindex("eth0").map_err(std::io::Error::from)
    })?;

    let load = || {
        Loader::load(&LoadConfig {
            maglev_m: M,
            pin_dir: None,
            ..LoadConfig::default()
        })
    };
    // Generator and sink on gen:eth0.
    let mut generator = in_netns(&gen_ns, || -> anyhow::Result<Loader> {
        let mut l = load()?;
        let mode = l.attach_xdp(programs::XDP_DROP, "eth0", true)?;
        anyhow::ensure!(
            mode == aya::programs::XdpMode::Driver,
            "native XDP on gen:eth0"
        );
        Ok(l)
    })?;

    // A refused live-frames run is an environment limit, not a bug of the program under test:
    // say so instead of failing in the middle of the first round.
    let probe = tcp_frame(dut_mac, gen_mac, [172, 16, 0, 5], VIP, 40000, 80, 0x10);
    if let Err(e) = in_netns(&gen_ns, || {
        generator.xdp_live_tx(programs::XDP_DROP, &probe, gen_ifindex, 1, 1)
    }) {
        let e = anyhow::Error::from(e);
        let eperm = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.raw_os_error() == Some(nix::libc::EPERM))
        });
        if eperm {
            anyhow::bail!(
                "this kernel refuses BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (EPERM) even \
                 for a one-frame XDP_DROP run, while plain BPF_PROG_RUN works: live frames are \
                 not available to this process (check its capability bounding set, \
                 `grep Cap /proc/self/status`, and any LSM policy); the rate cannot be measured \
                 here: {e:#}"
            );
        }
        return Err(e);
    }

    // One TCP ACK from a client to the service, addressed to the DUT.
    let frame = tcp_frame(dut_mac, gen_mac, [172, 16, 0, 5], VIP, 40000, 80, 0x10);
    println!(
        "frames {frames} per round, {rounds} rounds, {}-byte frame; load average {}",
        frame.len(),
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    println!(
        "{:16} {:>14} {:>14} {:>14} {:>9}",
        "DUT program", "kernel ns/pkt", "kernel Mpps", "wall Mpps", "returned"
    );
    let progs = [programs::XDP_TX, programs::XDP_LB];
    // Rounds alternate between the two programs so both see the same background load.
    let mut kernel_ns: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut wall: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut returned = [0u64; 2];
    for _ in 0..rounds {
        for (i, prog) in progs.iter().enumerate() {
            let dut_loader = in_netns(&dut, || -> anyhow::Result<Loader> {
                let mut l = load()?;
                if *prog == programs::XDP_LB {
                    let node = BenchNode {
                        addr: [192, 168, 77, 2],
                        mac: dut_mac,
                        backend_node: [192, 168, 77, 1],
                        next_hop_mac: gen_mac,
                    };
                    program_self_service(&mut l, &node, M)?;
                }
                let mode = l.attach_xdp(prog, "eth0", true)?;
                anyhow::ensure!(
                    mode == aya::programs::XdpMode::Driver,
                    "native XDP on dut:eth0"
                );
                Ok(l)
            })?;
            let back0 = veth_stat(&gen_ns, "eth0", "xdp_packets")?;
            let encap0 = encap_count(&dut_loader)?;
            let t = Instant::now();
            let per_frame = in_netns(&gen_ns, || {
                generator.xdp_live_tx(programs::XDP_TX, &frame, gen_ifindex, frames, 64)
            })?;
            let elapsed = t.elapsed();
            // Let the last frames in flight arrive.
            std::thread::sleep(Duration::from_millis(100));
            let back = veth_stat(&gen_ns, "eth0", "xdp_packets")? - back0;
            if *prog == programs::XDP_LB {
                let encap = encap_count(&dut_loader)? - encap0;
                // A stray frame of the DUT's own (ARP) may come back too.
                anyhow::ensure!(
                    encap + 8 >= back,
                    "{back} frames came back but only {encap} were encapsulated"
                );
            }
            returned[i] += back;
            kernel_ns[i].push(per_frame.as_nanos() as f64);
            wall[i].push(back as f64 / elapsed.as_secs_f64() / 1e6);
            drop(dut_loader);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut kpps = [0.0; 2];
    for (i, prog) in progs.iter().enumerate() {
        let ns = median(&mut kernel_ns[i]);
        kpps[i] = 1e3 / ns;
        println!(
            "{prog:16} {ns:>14.0} {:>14.3} {:>14.3} {:>8.1}%",
            kpps[i],
            median(&mut wall[i]),
            100.0 * returned[i] as f64 / (f64::from(frames) * rounds as f64)
        );
    }
    println!(
        "encap + XDP_TX / plain bounce (kernel time): {:.1}% (target >= 85%)",
        100.0 * kpps[1] / kpps[0]
    );
    Ok(())
}
