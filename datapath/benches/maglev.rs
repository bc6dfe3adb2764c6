//! Maglev table build time: our lazy builder against a direct port of Cilium's N × M-permutation
//! method, in the same run. `cargo bench -p datapath --bench maglev`.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use datapath::maglev::{self, Backend, Proto, Seed};

fn backends(n: usize) -> Vec<Backend> {
    (0..n)
        .map(|i| {
            let ip = Ipv4Addr::from(0x0a01_0000u32 + i as u32);
            Backend::new(SocketAddr::new(ip.into(), 8080), Proto::Tcp)
        })
        .collect()
}

fn bench_build(c: &mut Criterion) {
    let seed = Seed::default();
    let mut group = c.benchmark_group("maglev_build");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for m in [16381u32, 65521, 131071] {
        for n in [10usize, 100, 1000] {
            let b = backends(n);
            let label = format!("M{m}/N{n}");
            group.bench_with_input(BenchmarkId::new("lazy", &label), &b, |bench, b| {
                bench.iter(|| maglev::build(black_box(m), &seed, black_box(b)))
            });
            group.bench_with_input(BenchmarkId::new("cilium_port", &label), &b, |bench, b| {
                bench.iter(|| maglev::reference::build(black_box(m), &seed, black_box(b)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_build);
criterion_main!(benches);
