//! Allocation and release throughput of the pure allocator: 50k and 1M services over an IPv4
//! /11 and an IPv6 /64 pool (IPv4 only, IPv6 only, and half/half). Requests are built outside the
//! timed section; only `upsert` / `remove` are measured.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lb_ipam::{Allocator, Block, IpFamily, Pool, PoolSpec, Request, ServiceKey};

fn pools() -> Vec<Pool> {
    let mk = |name: &str, cidr: &str| {
        Pool::new(
            name,
            PoolSpec {
                blocks: vec![Block::Cidr {
                    cidr: cidr.parse().expect("bench cidr"),
                }],
                auto_assign: true,
                ..Default::default()
            },
        )
        .expect("bench pool")
    };
    vec![mk("v4", "10.0.0.0/11"), mk("v6", "2001:db8::/64")]
}

#[derive(Clone, Copy)]
enum Mix {
    V4,
    V6,
    Half,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Self::V4 => "ipv4",
            Self::V6 => "ipv6",
            Self::Half => "mixed",
        }
    }
}

fn requests(n: usize, mix: Mix) -> Vec<Request> {
    (0..n)
        .map(|i| {
            let mut r = Request::new(ServiceKey::new(format!("ns{}", i % 64), format!("svc-{i}")));
            let v6 = match mix {
                Mix::V4 => false,
                Mix::V6 => true,
                Mix::Half => i % 2 == 1,
            };
            r.families = vec![if v6 { IpFamily::IPv6 } else { IpFamily::IPv4 }];
            r
        })
        .collect()
}

fn filled(reqs: &[Request]) -> Allocator {
    let mut a = Allocator::new();
    a.set_pools(pools()).expect("pools");
    for r in reqs {
        a.upsert(r.clone());
    }
    a
}

fn bench(c: &mut Criterion) {
    for (n, mixes) in [
        (50_000usize, &[Mix::V4, Mix::V6, Mix::Half][..]),
        (1_000_000, &[Mix::Half][..]),
    ] {
        let mut group = c.benchmark_group(format!("allocator/{n}"));
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if n > 100_000 { 20 } else { 5 }));
        for &mix in mixes {
            let reqs = requests(n, mix);
            group.bench_function(format!("allocate/{}", mix.name()), |b| {
                b.iter_batched(
                    || {
                        let mut a = Allocator::new();
                        a.set_pools(pools()).expect("pools");
                        (a, reqs.clone())
                    },
                    |(mut a, reqs)| {
                        for r in reqs {
                            black_box(a.upsert(r));
                        }
                        a
                    },
                    BatchSize::PerIteration,
                );
            });
            let full = filled(&reqs);
            let keys: Vec<ServiceKey> = reqs.iter().map(|r| r.key.clone()).collect();
            group.bench_function(format!("release/{}", mix.name()), |b| {
                b.iter_batched(
                    || full.clone(),
                    |mut a| {
                        for k in &keys {
                            a.remove(k);
                        }
                        a
                    },
                    BatchSize::PerIteration,
                );
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
