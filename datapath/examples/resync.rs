//! Reconcile cost into the real kernel maps (root):
//! `cargo run --release -p datapath --example resync`.
//!
//! (a) full resync of 10,000 services × 10 backends at M = 1021: first load, the same list again
//!     (nothing to do), and a restarted agent adopting the maps and applying the same list;
//! (b) 1,000 services × 10 backends at M = 16381;
//! (c) one service with 100 backends: remove one, time until the kernel table is updated;
//! (d) one service with 1,000 ports × 4 backends: one backend changes across all ports.
//!
//! Prints wall time per case, this process's RSS and the kernel memory charged for the maps
//! (`memlock` of every map fd in `/proc/self/fdinfo`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use datapath::loader::{LoadConfig, Loader};
use datapath::maglev::{Proto, Seed};
use datapath::reconcile::{ApplyStats, BackendSpec, Reconciler, ServiceSpec};

const NEXT_HOP_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn backend(i: u32, port: u16) -> BackendSpec {
    BackendSpec {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0af4_0000 + i)), port),
        weight: 100,
        node: Ipv4Addr::new(10, 0, (i % 200) as u8, 2).into(),
        next_hop_mac: NEXT_HOP_MAC,
        local: false,
    }
}

/// `n` services on distinct VIPs, port 80, each with `per` backends of its own.
fn services(n: u32, per: u32) -> Vec<ServiceSpec> {
    (0..n)
        .map(|s| ServiceSpec {
            vip: IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + s)),
            port: 80,
            proto: Proto::Tcp,
            affinity: false,
            backends: (0..per).map(|b| backend(s * per + b, 8080)).collect(),
        })
        .collect()
}

/// One VIP with `ports` ports, all served by the same backends (each on the port's number).
fn multi_port(ports: u16, backends: &[u32]) -> Vec<ServiceSpec> {
    (0..ports)
        .map(|p| ServiceSpec {
            vip: IpAddr::V4(Ipv4Addr::new(10, 97, 0, 1)),
            port: 10000 + p,
            proto: Proto::Tcp,
            affinity: false,
            backends: backends.iter().map(|b| backend(*b, 8080)).collect(),
        })
        .collect()
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn load(m: u32, max_services: u32, max_backends: u32) -> anyhow::Result<Loader> {
    Loader::load(&LoadConfig {
        maglev_m: m,
        max_services,
        max_backends,
        pin_dir: None,
    })
    .context("loading the eBPF object (root needed)")
}

fn report(case: &str, took: Duration, stats: ApplyStats, l: &Loader) -> anyhow::Result<()> {
    println!(
        "{case:<58} {:>9.1} ms  built {:>5} written {:>5} svc {:>5} be +{}/-{}  RSS {:>6.1} MiB  maps {:>6.1} MiB",
        took.as_secs_f64() * 1e3,
        stats.tables_built,
        stats.tables_written,
        stats.services_written,
        stats.backends_written,
        stats.backends_deleted,
        rss_mib(),
        l.map_memory()? as f64 / (1024.0 * 1024.0),
    );
    Ok(())
}

fn timed(
    r: &mut Reconciler,
    l: &mut Loader,
    desired: &[ServiceSpec],
) -> anyhow::Result<(Duration, ApplyStats)> {
    let t = Instant::now();
    let stats = r.apply(desired, l)?;
    Ok((t.elapsed(), stats))
}

fn main() -> anyhow::Result<()> {
    let seed = Seed::default();

    // (a) 10,000 services × 10 backends at M = 1021.
    {
        let (m, n, per) = (1021, 10_000, 10);
        let mut l = load(m, 10_240, 131_072)?;
        let desired = services(n, per);
        let mut r = Reconciler::new(m, seed, 10_240, 131_072)?;
        let (t, s) = timed(&mut r, &mut l, &desired)?;
        report("(a) 10k svc x 10 be, M=1021: first full sync", t, s, &l)?;
        let (t, s) = timed(&mut r, &mut l, &desired)?;
        report("(a) same list again (no change)", t, s, &l)?;
        let t = Instant::now();
        let mut adopted = Reconciler::new(m, seed, 10_240, 131_072)?;
        adopted.adopt(&l)?;
        let s = adopted.apply(&desired, &mut l)?;
        report(
            "(a) restarted agent: adopt + full resync",
            t.elapsed(),
            s,
            &l,
        )?;
    }

    // (b) 1,000 services × 10 backends at M = 16381.
    {
        let (m, n, per) = (16381, 1_000, 10);
        let mut l = load(m, 1_024, 16_384)?;
        let desired = services(n, per);
        let mut r = Reconciler::new(m, seed, 1_024, 16_384)?;
        let (t, s) = timed(&mut r, &mut l, &desired)?;
        report("(b) 1k svc x 10 be, M=16381: first full sync", t, s, &l)?;
        let t = Instant::now();
        let mut adopted = Reconciler::new(m, seed, 1_024, 16_384)?;
        adopted.adopt(&l)?;
        let s = adopted.apply(&desired, &mut l)?;
        report(
            "(b) restarted agent: adopt + full resync",
            t.elapsed(),
            s,
            &l,
        )?;
    }

    // (c) one service with 100 backends: one removed, until the kernel table is updated.
    for m in [1021, 16381] {
        let mut l = load(m, 16, 1_024)?;
        let mut r = Reconciler::new(m, seed, 16, 1_024)?;
        let mut desired = services(1, 100);
        r.apply(&desired, &mut l)?;
        let mut worst = Duration::ZERO;
        let mut last = ApplyStats::default();
        for _ in 0..5 {
            let removed = desired[0].backends.pop().context("a backend")?;
            let (t, s) = timed(&mut r, &mut l, &desired)?;
            worst = worst.max(t);
            last = s;
            desired[0].backends.push(removed);
            r.apply(&desired, &mut l)?;
        }
        report(
            &format!("(c) 1 svc x 100 be, M={m}: remove one (worst of 5)"),
            worst,
            last,
            &l,
        )?;
    }

    // (d) one service with 1,000 ports × 4 backends: one backend changes across all ports.
    for m in [1021, 16381] {
        let mut l = load(m, 1_024, 1_024)?;
        let mut r = Reconciler::new(m, seed, 1_024, 1_024)?;
        r.apply(&multi_port(1_000, &[0, 1, 2, 3]), &mut l)?;
        let mut worst = Duration::ZERO;
        let mut last = ApplyStats::default();
        for round in 0..5u32 {
            let (t, s) = timed(&mut r, &mut l, &multi_port(1_000, &[0, 1, 2, 4 + round]))?;
            worst = worst.max(t);
            last = s;
        }
        report(
            &format!("(d) 1 svc x 1000 ports x 4 be, M={m}: one be (worst of 5)"),
            worst,
            last,
            &l,
        )?;
    }
    Ok(())
}
